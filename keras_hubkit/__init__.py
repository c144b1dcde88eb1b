"""keras_hubkit: TF2 SavedModels and TF Hub models for Keras 3.

The public API, listed once. Import it as `import keras_hubkit as hk`.

Names load on first use (PEP 562), so `import keras_hubkit` alone costs
almost nothing and the `hubkit` command line starts without TensorFlow.
When Keras or TensorFlow is already imported, the library (everything but
`hk.tuning`) loads at once: that costs little more than Keras itself and
registers `HubLayer`, the schedules and the losses with Keras before any
`keras.models.load_model`. `hk.tuning` (keras-tuner) always loads on first
use.
"""

import importlib
import importlib.abc
import importlib.util
import sys

from keras_hubkit.version import __version__ as __version__

# Public name -> (module, attribute); attribute None means the module.
_LAZY = {
    "HubLayer": ("keras_hubkit.hub_layer", "HubLayer"),
    "ModelCache": ("keras_hubkit.model_cache", "ModelCache"),
    "ScanReport": ("keras_hubkit.scanner", "ScanReport"),
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
    "keras_file": ("keras_hubkit.keras_file", None),
    "load": ("keras_hubkit.loading", "load"),
    "losses": ("keras_hubkit.losses", None),
    "resolve": ("keras_hubkit.resolver", "resolve"),
    "scan": ("keras_hubkit.scanner", "scan"),
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


def _initializing(module):
    spec = getattr(module, "__spec__", None)
    return bool(getattr(spec, "_initializing", False))


class _LoadAfterKeras(importlib.abc.MetaPathFinder):
    """Loads the library right after `keras` itself is imported.

    `keras.models.load_model` finds `HubLayer` only once it is registered,
    and Keras imports no third-party module to look for it. So when keras
    comes after `import keras_hubkit`, register then, at Keras's cost. An
    import of keras that one of our own modules starts is left alone: that
    module is still running and will be complete when its import returns.
    """

    def find_spec(self, name, path=None, target=None):
        if name != "keras":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            busy = any(
                _initializing(m)
                for n, m in list(sys.modules.items())
                if n.startswith("keras_hubkit.")
            )
            if not busy:
                _load_library()

        spec.loader.exec_module = exec_module
        return spec


if "keras" in sys.modules or "tensorflow" in sys.modules:
    _load_library()
else:
    sys.meta_path.insert(0, _LoadAfterKeras())
