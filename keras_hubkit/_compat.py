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


# --- search (tuning) ---


def keras_tuner_checkpoint_type():
    """The class of keras-tuner's best-epoch checkpoint callback.

    keras-tuner (1.4) passes a `SaveBestEpoch` to `HyperModel.fit` among the
    callbacks and exports it nowhere public; head-only trials on cached
    features recognise it to write its checkpoint once per trial.
    """
    from keras_tuner.src.engine import tuner_utils

    return tuner_utils.SaveBestEpoch


def patch_keras_tuner_session_reset():
    """Lets light trials skip keras-tuner's session reset.

    keras-tuner 1.4's private `Tuner._try_build` calls
    `keras.backend.clear_session()` and `gc.collect()` before building
    every trial's model, to free the previous trial's graph. With
    TensorFlow and Keras loaded that is two full garbage collections, about
    0.5-1 s per trial on 2 CPUs: more than training a head on cached
    features for a few epochs. When the hypermodel's
    `_skips_session_reset(hp)` returns True (keras_hubkit's head-only
    trials on cached features, which add only a small head around one
    shared frozen base), the model is built without them; every other
    trial, and every other hypermodel, is unchanged.
    """
    from keras_tuner.src.engine import tuner as tuner_module

    original = tuner_module.Tuner._try_build
    if getattr(original, "_hubkit_patched", False):
        return

    def try_build(self, hp):
        skips = getattr(self.hypermodel, "_skips_session_reset", None)
        if skips is None or not skips(hp):
            return original(self, hp)
        backend, gc = tuner_module.keras.backend, tuner_module.gc
        clear, collect = backend.clear_session, gc.collect
        backend.clear_session = lambda *args, **kwargs: None
        gc.collect = lambda *args, **kwargs: 0
        try:
            return original(self, hp)
        finally:
            backend.clear_session, gc.collect = clear, collect

    try_build._hubkit_patched = True
    tuner_module.Tuner._try_build = try_build
