"""keras_hubkit: TF2 SavedModels and TF Hub models for Keras 3.

The public API, listed once. Import it as `import keras_hubkit as hk`.

Names load on first use (PEP 562), so `import keras_hubkit` alone costs
almost nothing and the `hubkit` command line starts without TensorFlow.
When Keras or TensorFlow is already imported, the library (everything but
`hk.tuning`) loads at once: that costs little more than Keras itself and
registers `HubLayer` and the schedules with Keras before any
`keras.models.load_model`. `hk.tuning` (keras-tuner) always loads on first
use.
"""

import importlib
import sys

from keras_hubkit.version import __version__ as __version__

# Public name -> (module, attribute); attribute None means the module.
_LAZY = {
    "HubLayer": ("keras_hubkit.hub_layer", "HubLayer"),
    "ModelCache": ("keras_hubkit.model_cache", "ModelCache"),
    "ScanReport": ("keras_hubkit.scan", "ScanReport"),
    "errors": ("keras_hubkit.errors", None),
    "export_saved_model": ("keras_hubkit.export", "export_saved_model"),
    "finetune": ("keras_hubkit.finetune", None),
    "get_expected_image_size": (
        "keras_hubkit.image_spec",
        "get_expected_image_size",
    ),
    "get_num_image_channels": (
        "keras_hubkit.image_spec",
        "get_num_image_channels",
    ),
    "image_classifier": ("keras_hubkit.classifier", "image_classifier"),
    "load": ("keras_hubkit.loading", "load"),
    "resolve": ("keras_hubkit.resolver", "resolve"),
    "scan": ("keras_hubkit.scan", "scan"),
    "schedules": ("keras_hubkit.schedules", None),
    "text_classifier": ("keras_hubkit.classifier", "text_classifier"),
    "tuning": ("keras_hubkit.tuning", None),
}

__all__ = sorted([*_LAZY, "__version__"])


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'keras_hubkit' has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__():
    return sorted({*globals(), *_LAZY})


def _load_library():
    for name in _LAZY:
        if name != "tuning":
            __getattr__(name)


if "keras" in sys.modules or "tensorflow" in sys.modules:
    _load_library()
