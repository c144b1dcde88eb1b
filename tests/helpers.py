"""Small helpers shared by tests."""

import os
import socket


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cache_is_clean(cache_dir):
    """Nothing but lock files: no entry, no temp folder."""
    if not os.path.isdir(cache_dir):
        return True
    return all(name.endswith(".lock") for name in os.listdir(cache_dir))


def fast_download(**kwargs):
    """`hk.resolve` keyword arguments for loopback tests: short timeouts,
    no progress bar."""
    return {
        "read_timeout": 2,
        "connect_timeout": 2,
        "progress": False,
        **kwargs,
    }


def image_data(n=32, seed=0):
    """`n` random 8x8 RGB images and labels of 3 classes, in turn."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return rng.random((n, 8, 8, 3), "float32"), np.arange(n) % 3


def hub_classifier(handle, seed=1):
    """A `HubLayer` named "base" under a 3-class Dense "head", seeded."""
    import keras

    import keras_hubkit as hk

    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            hk.HubLayer(handle, name="base"),
            keras.layers.Dense(3, name="head"),
        ]
    )
