"""`hk.load`: resolve a handle, check it, and load the SavedModel."""

import logging
import os
from dataclasses import dataclass

import tensorflow as tf

from keras_hubkit import _validate
from keras_hubkit import errors
from keras_hubkit._private_copy import scanned_folder
from keras_hubkit._redact import redact
from keras_hubkit.resolver import resolve
from keras_hubkit.scanner import check as check_scan
from keras_hubkit.scanner import scan_path


@dataclass(frozen=True)
class Origin:
    """Where a loaded object came from (kept beside it, not tracked by TF)."""

    handle: str
    path: str
    is_tf1_hub_module: bool


def load(
    handle,
    tags=None,
    options=None,
    *,
    allow_ops=None,
    trusted_fingerprints=None,
):
    """Loads the SavedModel that `handle` names, like `hub.load`.

    Args:
        handle: a local path or a URL (see `hk.resolve`).
        tags: MetaGraph tags to load. Defaults to the SavedModel's only
            MetaGraph (`[]` for a legacy TF1 Hub module).
        options: a `tf.saved_model.LoadOptions`.
        allow_ops: op types off the allowlist (see `hk.scan`) to accept for
            this model, e.g. `["ReadFile"]`. The opt-in is logged.
        trusted_fingerprints: `ScanReport.fingerprint`s of models to load
            whatever their ops (also `HUBKIT_TRUSTED_FINGERPRINTS`).

    Before anything runs, the MetaGraph that will be loaded is scanned
    (`hk.scan`): an op that is not on the allowlist of op types that compute
    on tensors only (and not structurally exempt, like the saver) refuses
    the load unless allowed, because a SavedModel's initializers run inside
    `tf.saved_model.load` itself. TensorFlow then loads the bytes that
    were scanned, from a private copy of the graph and of `assets/` (see
    the security guide), so a file swapped in after the scan never runs.

    Returns:
        What `tf.saved_model.load` returns for the resolved directory.

    Raises:
        HandleNotFoundError: the handle does not exist.
        HandleError: the directory holds no SavedModel, or no MetaGraph
            matches `tags`.
        CustomOpError: the model needs ops that this TensorFlow does not
            have (a custom-op package, e.g. tensorflow-text, not imported).
            Import the package and call again: the failure is not cached.
        UnsafeModelError: the scan found ops off the allowlist that were
            not allowed, or an asset became a link after the scan.
        CacheError: the private copy cannot be written (a full or
            unwritable `TMPDIR`).

    Example:

    ```python
    obj = hk.load("/models/my_text_embedding")
    vectors = obj(["hello world"])
    ```
    """
    path = resolve(handle)
    saved = _validate.check_saved_model_dir(path, handle)
    is_tf1 = tf.io.gfile.exists(os.path.join(path, "tfhub_module.pb"))
    if tags is None and is_tf1:
        tags = []
    shown = redact(str(handle))
    # The scan is redone whenever saved_model.pb or the op registry changed,
    # so a load refused for a missing custom op works once its package is
    # imported, in the same process.
    report = scan_path(path, tags=tags, saved=saved)
    check_scan(
        report,
        shown,
        allow_ops=allow_ops,
        trusted_fingerprints=trusted_fingerprints,
    )
    try:
        with _validate.load_errors(path, handle):
            obj = _load_saved_model(
                path, saved, report.fingerprint, tags, options
            )
    except (tf.errors.NotFoundError, FileNotFoundError) as e:
        # FileNotFoundError: a table initializer's missing asset file.
        raise _load_error(e, path, shown) from e
    object.__setattr__(obj, "_hubkit_origin", Origin(str(handle), path, is_tf1))
    return obj


def _load_saved_model(path, saved, digest, tags, options):
    graph = saved.proto.SerializeToString() if saved.is_text else saved.raw
    try:
        return tf.saved_model.load(
            scanned_folder(path, graph, digest), tags=tags, options=options
        )
    except AttributeError as e:
        # Keras 2 exports carry their optimizer and its slot variables;
        # without tf_keras installed the optimizer comes back as a plain
        # object that cannot take slots. Slots are training state the
        # consumer never needs, so load the graph without them.
        if "add_slot" not in str(e):
            raise
        proto = type(saved.proto)()
        proto.CopyFrom(saved.proto)
        for meta_graph in proto.meta_graphs:
            for node in meta_graph.object_graph_def.nodes:
                del node.slot_variables[:]
        tf_logger = logging.getLogger("tensorflow")
        level = tf_logger.level
        tf_logger.setLevel(logging.ERROR)  # one line per dropped slot
        try:
            return tf.saved_model.load(
                scanned_folder(
                    path, proto.SerializeToString(), ("no slots", digest)
                ),
                tags=tags,
                options=options,
            )
        finally:
            tf_logger.setLevel(level)


def origin_of(obj):
    """The `Origin` recorded by `load`, or None for other objects."""
    return getattr(obj, "_hubkit_origin", None)


def _load_error(exc, path, handle):
    """A typed error for TensorFlow's NotFoundError (or a table's
    FileNotFoundError for a missing asset) at load time."""
    import re

    from keras_hubkit import _safe_ops

    match = re.search(r"Op type not registered '([^']+)'", str(exc))
    if match:
        op = match.group(1)
        package = _safe_ops.package_for(op)
        fix = (
            f"`pip install {package}` and import it before loading"
            if package
            else "import the package that registers it before loading"
        )
        return errors.CustomOpError(
            f"Expected a model whose ops this TensorFlow knows. Received: "
            f"handle={handle!r} needs op {op!r}, which is not registered. "
            f"To fix it, {fix}; retrying in the same process works."
        )
    return errors.HandleError(
        f"Could not load the SavedModel at {path!r} (handle {handle!r}): "
        f"{_first_line(exc)}. If an op is not registered, import the "
        "library that defines it (e.g. `import tensorflow_text`) first."
    )


def _first_line(exc) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
