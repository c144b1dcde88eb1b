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


# --- shared: nested layers (issue 17; export.py and finetune/runner.py) ---
def all_layers(layer):
    """`layer` and every layer nested in it, each once, outer first.

    Keras 3 has no public way to walk nested layers (`Model.layers` lists
    direct children only); `Layer._flatten_layers` has done it since Keras
    3.0 (and in tf.keras before). Export collects regularization losses and
    fine-tuning sets trainability through it.
    """
    seen = {}
    for sub in [layer, *layer._flatten_layers(include_self=False)]:
        seen.setdefault(id(sub), sub)
    return list(seen.values())
