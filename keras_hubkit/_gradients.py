"""Can a SavedModel's training trace be differentiated at all?

Keras 2 exports keep their augmentation layers (`RandomContrast`,
`RandomRotation`, ...) in the `training=True` trace, and some of their ops
have no gradient. Fine-tuning such a model then fails deep inside
`model.fit` with TensorFlow's "No gradient defined for operation". This
check finds that on the first fine-tuning call and says what to do instead:
run the SavedModel in inference mode (`inference_only=True`), whose trace
has no augmentation.
"""

import weakref

import tensorflow as tf

from keras_hubkit import _compat
from keras_hubkit import _specs
from keras_hubkit import errors

# Loaded object -> True once its training trace is known to differentiate.
_CHECKED = weakref.WeakKeyDictionary()


def check_layer(layer):
    """Raises `TrainabilityError` if `layer`'s training trace has no gradient.

    Cheap for most models: a scan of the op types; only a model holding a
    float op without a registered gradient is traced once more, with a
    gradient, to confirm (the op may lie off the differentiated path).
    """
    if not layer._has_training:
        return  # one trace only: inference mode would not differ
    obj = layer.resolved_object
    try:
        if _CHECKED.get(obj):
            return
    except TypeError:  # not weak-referenceable: check every trace
        pass
    fn = _specs.function_of(layer._callable)
    concretes = list(getattr(fn, "concrete_functions", []) or [])
    suspects = _compat.float_ops_without_gradient(concretes)
    if suspects and layer._traced_spec is not None:
        missing = _missing_gradient(layer)
        if missing:
            raise errors.TrainabilityError(
                f"Cannot fine-tune {layer._config_handle!r} in training "
                f"mode: its training trace uses an op with no gradient "
                f"({missing}), such as the random augmentation layers of a "
                "Keras 2 export. Pass "
                "`inference_only=True` to HubLayer (or bn_policy='frozen' "
                "to hk.finetune) to fine-tune its weights through the "
                "inference trace, or keep the layer frozen."
            )
    try:
        _CHECKED[obj] = True
    except TypeError:
        pass


def _missing_gradient(layer):
    """The LookupError's text when differentiating the training trace."""
    fn = layer._callable
    spec = layer._traced_spec
    variables = [v.value for v in layer.trainable_weights]

    def probe(x):
        with tf.GradientTape() as tape:
            y = fn(x, training=True, **layer.arguments)
        return tape.gradient(y, variables)

    try:
        tf.function(probe, autograph=False).get_concrete_function(
            tf.TensorSpec((None, *spec.shape[1:]), spec.dtype)
        )
    except LookupError as e:
        text = str(e)
        if "No gradient defined" not in text:
            raise
        return text.split(".")[0].replace("operation'", "operation '")
    return None
