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


def check(obj, fn, spec, variables, arguments, *, has_training, name):
    """Raises `TrainabilityError` if a training trace has no gradient.

    Cheap for most models: a scan of the op types; only a model holding a
    float op without a registered gradient is traced once more, with a
    gradient, to confirm (the op may lie off the differentiated path).

    Args:
        obj: the loaded SavedModel object (results are remembered per object).
        fn: the function the layer calls, with a `training` argument.
        spec: the `tf.TensorSpec` it was traced for, or None (a nest).
        variables: the variables fine-tuning differentiates.
        arguments: extra keyword arguments of each call.
        has_training: whether `fn` was traced for `training=True` at all.
        name: the model, as error messages show it.
    """
    if not has_training:
        return  # one trace only: inference mode would not differ
    try:
        if _CHECKED.get(obj):
            return
    except TypeError:  # not weak-referenceable: check every trace
        pass
    traced = _specs.function_of(fn)
    concretes = list(getattr(traced, "concrete_functions", []) or [])
    suspects = _compat.float_ops_without_gradient(concretes)
    if suspects and spec is not None:
        missing = _missing_gradient(fn, spec, variables, arguments)
        if missing:
            raise errors.TrainabilityError(
                "Expected a SavedModel whose training trace can be "
                f"differentiated. Received: {name!r}, whose training trace "
                f"uses an op with no gradient ({missing}), such as the random "
                "augmentation layers of a Keras 2 export. Pass "
                "`inference_only=True` to HubLayer (or bn_policy='frozen' "
                "to hk.finetune) to fine-tune its weights through the "
                "inference trace, or keep the layer frozen."
            )
    try:
        _CHECKED[obj] = True
    except TypeError:
        pass


def _missing_gradient(fn, spec, variables, arguments):
    """The LookupError's text when differentiating the training trace."""
    values = [v.value for v in variables]

    def probe(x):
        with tf.GradientTape() as tape:
            y = fn(x, training=True, **arguments)
        return tape.gradient(y, values)

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
