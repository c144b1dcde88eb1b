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
