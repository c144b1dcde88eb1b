"""keras_hubkit: TF2 SavedModels and TF Hub models for Keras 3.

The public API, listed once. Import it as `import keras_hubkit as hk`.
"""

from keras_hubkit import errors
from keras_hubkit import finetune
from keras_hubkit import schedules
from keras_hubkit import tuning
from keras_hubkit.classifier import image_classifier
from keras_hubkit.classifier import text_classifier
from keras_hubkit.export import export_saved_model
from keras_hubkit.hub_layer import HubLayer
from keras_hubkit.loading import load
from keras_hubkit.model_cache import ModelCache
from keras_hubkit.resolver import resolve
from keras_hubkit.scan import ScanReport
from keras_hubkit.scan import scan
from keras_hubkit.version import __version__

__all__ = [
    "HubLayer",
    "ModelCache",
    "ScanReport",
    "__version__",
    "errors",
    "export_saved_model",
    "finetune",
    "image_classifier",
    "load",
    "resolve",
    "scan",
    "schedules",
    "text_classifier",
    "tuning",
]
