"""The only place that touches private Keras APIs or checks the backend.

Keeping these in one module means a Keras upgrade that moves something
breaks one file, and tests can find every private import here.
"""

import keras

from keras_hubkit import errors


def require_tensorflow_backend(what: str) -> None:
    """Raises `BackendError` unless Keras runs on the TensorFlow backend.

    A SavedModel is a TensorFlow program: its functions can only run as
    TensorFlow ops, so there is no way to wrap one on JAX or PyTorch.
    """
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise errors.BackendError(
            f"{what} needs the TensorFlow backend to run a SavedModel. "
            f"Received: the Keras backend is {backend!r}. Set the "
            "environment variable KERAS_BACKEND=tensorflow before importing "
            "keras (or set it in ~/.keras/keras.json) and restart Python."
        )


def in_safe_mode():
    """Keras's safe-mode flag while `load_model` runs; None outside it."""
    from keras.src.saving import serialization_lib

    return serialization_lib.in_safe_mode()


def name_scope(layer):
    """The name scope Keras uses for a layer's own weights."""
    from keras.src import backend

    return backend.name_scope(layer.name, caller=layer)


def patch_keras_tuner_tensorboard():
    """Lets keras-tuner 1.4 run trials without `tensorboard` installed.

    `Tuner.run_trial` imports `tensorboard.plugins.hparams` on every trial
    to decorate TensorBoard callbacks, and TensorFlow 2.21 no longer
    installs tensorboard, so every trial fails. Without tensorboard there
    is no TensorBoard callback to decorate: skip the step then, and keep
    keras-tuner's behaviour when tensorboard is present.
    """
    import importlib.util

    from keras_tuner.src.engine import tuner as tuner_module

    original = tuner_module.Tuner._configure_tensorboard_dir
    if getattr(original, "_hubkit_patched", False):
        return

    def configure(self, callbacks, trial, execution=0):
        if importlib.util.find_spec("tensorboard") is None:
            return None
        return original(self, callbacks, trial, execution)

    configure._hubkit_patched = True
    tuner_module.Tuner._configure_tensorboard_dir = configure


# --- export (re-exporting Keras models and HubLayers) ---
def all_sublayers(layer):
    """`layer` and every layer nested in it, each once.

    Keras 3 has no public recursive listing (`Model.layers` is one level
    and plain layers do not expose theirs); `_flatten_layers` is the walk
    Keras itself uses for weights and losses (Keras 3.0 through 3.15).
    """
    seen = {}
    for sub in [layer, *layer._flatten_layers(include_self=False)]:
        seen.setdefault(id(sub), sub)
    return list(seen.values())


def hub_layer_input_spec(layer):
    """The `tf.TensorSpec` a HubLayer's SavedModel was traced for, or None.

    Uses the public `HubLayer.traced_input_spec` when the layer has it;
    until then the attribute HubLayer has kept since keras_hubkit 0.1.
    """
    if hasattr(type(layer), "traced_input_spec"):
        return layer.traced_input_spec
    return getattr(layer, "_traced_spec", None)


def hub_layer_regularization_losses(layer):
    """A HubLayer's zero-argument regularization-loss functions.

    Uses the public `HubLayer.regularization_loss_fns` when the layer has
    it; until then the attribute HubLayer has kept since keras_hubkit 0.1.
    """
    if hasattr(type(layer), "regularization_loss_fns"):
        return list(layer.regularization_loss_fns)
    return list(getattr(layer, "_reg_losses", ()))


# --- safety scan (allowlist) ---
def is_op_registered(op_type: str) -> bool:
    """Whether this process's TensorFlow knows `op_type` right now.

    `op_def_registry.get` (private, TF >= 2.4) caches only hits, so an op
    registered later (a custom-op package imported) is seen on the next
    call. The scan's memo relies on that to notice a newly imported package.
    """
    from tensorflow.python.framework import op_def_registry

    return op_def_registry.get(op_type) is not None


def registered_op_defs():
    """Every OpDef registered in this process, by op type.

    Reads TensorFlow's C registry (`TF_GetAllOpList`, private, TF >= 2.0):
    the public API has no way to list ops with their inputs, attrs and docs,
    which the allowlist test checks the list against.
    """
    from tensorflow.core.framework import op_def_pb2
    from tensorflow.python.client import pywrap_tf_session

    ops = op_def_pb2.OpList()
    ops.ParseFromString(
        pywrap_tf_session.TF_GetBuffer(pywrap_tf_session.TF_GetAllOpList())
    )
    return {op.name: op for op in ops.op}
