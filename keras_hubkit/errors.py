"""Every exception keras_hubkit raises.

Each error also inherits the builtin a caller would naturally catch
(`ValueError`, `FileNotFoundError`, `OSError`, ...), so code written against
`tensorflow_hub` keeps working, while `except hk.errors.HubkitError` catches
everything this package raises on purpose.

One class per kind of failure. Where a kind was split out of a broader class
(`HandleError` once covered layer arguments, output shapes, configs,
regularization losses and incomplete models), the new class subclasses the
old one, so `except HandleError` still catches what it caught before.
"""


class HubkitError(Exception):
    """Base class of all keras_hubkit errors."""


class BackendError(HubkitError, NotImplementedError):
    """A feature needs the TensorFlow backend and another one is active."""


class HandleError(HubkitError, ValueError):
    """A handle is malformed, or names something that is not a SavedModel."""


class LayerArgumentError(HandleError):
    """`HubLayer` arguments do not fit together or do not fit the handle."""


class OutputShapeError(HandleError):
    """An `output_shape` is not a shape or a nest of shapes."""


class LayerConfigError(HandleError):
    """A layer cannot be serialized.

    Its config is not JSON, or it has no handle to rebuild it from.
    """


class RegularizationLossError(HandleError, TypeError):
    """A SavedModel's `regularization_losses` holds a non-function.

    Each entry must be a zero-argument function returning a scalar.
    """


class HandleNotFoundError(HubkitError, FileNotFoundError):
    """A local handle, or a remote model, does not exist."""


class InvalidSavedModelError(HandleError):
    """A SavedModel's files are garbage, truncated, empty or missing."""


class UnsupportedSchemeError(HandleError):
    """A handle uses a URL scheme no resolver supports."""


class DownloadError(HubkitError, OSError):
    """A download failed: network fault, bad HTTP status, or a bad archive."""


class UnsafeArchiveError(DownloadError):
    """An archive holds a member that could escape or abuse the cache."""


class CacheError(HubkitError, OSError):
    """The cache is unusable: not writable, locked, or corrupt."""


class ConfigError(HubkitError, ValueError):
    """An environment variable or setting holds a value that cannot work."""


class IncompleteModelError(InvalidSavedModelError, CacheError):
    """A SavedModel folder lacks files it needs.

    A truncated download, or a cache entry whose files were deleted (by a
    temp cleaner, say).
    """


class OfflineError(HubkitError, ConnectionError):
    """Offline mode is on and the handle is not in the cache."""


class SignatureError(HubkitError, ValueError):
    """A signature, output key, or call convention does not match the model."""


class InputSpecError(HubkitError, ValueError):
    """Inputs do not match what the SavedModel's function was traced for."""


class TrainabilityError(HubkitError, ValueError):
    """Fine-tuning was asked of a model that cannot be fine-tuned."""


class UnsafeDeserializationError(HubkitError, ValueError):
    """Keras safe mode forbids rebuilding a layer that loads a SavedModel."""


class UnsafeModelError(HubkitError, PermissionError):
    """The safety scan found ops that touch files, the network or Python."""


class ExportError(HubkitError, ValueError):
    """A re-export was refused: bad destination, bad weights, or bad object."""


class OutputExistsError(ExportError, FileExistsError):
    """The output folder already holds files.

    Overwriting was not asked for (`overwrite=True`, `--overwrite`).
    """


class StagePlanError(HubkitError, ValueError):
    """A fine-tuning stage plan cannot be carried out."""


class ScheduleError(HubkitError, ValueError):
    """A learning-rate schedule's arguments are inconsistent.

    For example, `Join` boundaries that do not increase.
    """


class StrategyError(HubkitError, TypeError):
    """A distribution strategy was given something it cannot run.

    For example, NumPy arrays under `MultiWorkerMirroredStrategy`.
    """


class DataError(HubkitError, ValueError):
    """Training data is malformed (empty class folder, bad CSV, ...)."""


class RecipeError(HubkitError, ValueError):
    """A recipe file is malformed or names an unknown setting."""


class CustomOpError(HandleError):
    """The model needs ops of a custom-op package that is not imported."""
