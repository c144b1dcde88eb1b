"""Facts about the SavedModel format that several modules need, once.

TensorFlow-free: loading, scanning, the cache, export and the command line
all ask these questions, some before TensorFlow is imported.
"""

# The graph of a SavedModel: binary, or text (rare, but tf.saved_model
# reads both). The first one present is the one TensorFlow loads.
SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")


def public_signatures(obj):
    """The signatures of a loaded SavedModel a caller may use.

    TensorFlow stores internal functions among the signatures under names
    that start with two underscores (`__saved_model_init_op`, the
    initializer); they are not part of the model's API.

    Args:
        obj: what `tf.saved_model.load` (or `hk.load`) returned; any object
            without `signatures` has none.

    Returns:
        A dict of signature name to concrete function.
    """
    signatures = getattr(obj, "signatures", None) or {}
    return {k: v for k, v in signatures.items() if not k.startswith("__")}
