"""Checks that a folder holds a readable SavedModel, with typed errors.

TensorFlow reports damaged SavedModel files with whatever its parser of the
moment raises (`OSError: Cannot parse file`, a `ValueError` about "0
MetaGraphs", `IndexError: Read less bytes than requested`, `OpError: not an
sstable`, ...). These functions raise `InvalidSavedModelError` instead,
naming the file, what was expected and the fix:

- `read_saved_model(path, handle)`: the parsed `saved_model.pb` (and
  `parse_saved_model` for bytes already read).
- `check_saved_model_dir(path, handle)`: the folder, the graph and the
  variables (index readable, every shard there, none shorter than the
  tensors it holds), before anything is loaded.
- `load_errors(path, handle)`: a context for `tf.saved_model.load` that
  turns the errors of damaged variable files into the same typed error.

TensorFlow is imported only when called; `tf.io.gfile` is used so `gs://`
and other TensorFlow filesystems work.
"""

import collections
import contextlib
import os

from keras_hubkit import errors
from keras_hubkit._redact import redact
from keras_hubkit._savedmodel import SAVED_MODEL_FILES

# A parsed graph file: the message, the file's bytes, and whether they are
# text (saved_model.pbtxt).
SavedGraph = collections.namedtuple("SavedGraph", "proto raw is_text")

_FIX = (
    "Download or export the model again (for a cached model: "
    "`hubkit cache remove HANDLE`, then load it again)."
)


def read_saved_model(path, handle):
    """Parses the SavedModel proto in folder `path`.

    Args:
        path: the SavedModel folder.
        handle: what the user passed, for messages (shown redacted).

    Returns:
        A `SavedGraph`: the `SavedModel` message, the file's bytes, and
        whether they are text.

    Raises:
        InvalidSavedModelError: no graph file, or it cannot be read (a
            folder of that name), is empty, truncated or not a SavedModel,
            or holds no MetaGraph.
    """
    import tensorflow as tf

    name = next(
        (
            n
            for n in SAVED_MODEL_FILES
            if tf.io.gfile.exists(os.path.join(path, n))
        ),
        None,
    )
    if name is None:
        raise _invalid(
            "a saved_model.pb",
            handle,
            path,
            f"none in {sorted(tf.io.gfile.listdir(path))[:10]}",
            "Pass the folder written by tf.saved_model.save (or "
            "hk.export_saved_model).",
        )
    file = os.path.join(path, name)
    try:
        with tf.io.gfile.GFile(file, "rb") as f:
            raw = f.read()
    except (tf.errors.OpError, OSError) as e:  # e.g. a folder of that name
        raise _invalid(
            f"{name} to be a readable file",
            handle,
            file,
            _first_line(e),
            "Replace it with the file tf.saved_model.save wrote. " + _FIX,
        ) from None
    is_text = name.endswith(".pbtxt")
    return SavedGraph(
        parse_saved_model(raw, is_text, file, handle), raw, is_text
    )


def parse_saved_model(raw, is_text, file, handle):
    """The `SavedModel` message in `raw`, the bytes of `file`.

    Raises:
        InvalidSavedModelError: they do not parse, or hold no MetaGraph.
    """
    from google.protobuf import message
    from google.protobuf import text_format
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    name = os.path.basename(file)
    try:
        if is_text:
            text_format.Parse(raw.decode("utf8"), proto)
        else:
            proto.ParseFromString(raw)
    except (
        message.DecodeError,
        text_format.ParseError,
        UnicodeError,
        RecursionError,  # text nested past Python's limit
    ) as e:
        raise _invalid(
            f"{name} to be a SavedModel protocol buffer",
            handle,
            file,
            f"{len(raw)} bytes that do not parse ({e})",
            "The file is truncated or not a SavedModel. " + _FIX,
        ) from None
    if not proto.meta_graphs:
        raise _invalid(
            f"{name} to hold at least one MetaGraph",
            handle,
            file,
            f"{len(raw)} bytes with none"
            + (" (an empty file)" if not raw else ""),
            "The file is truncated or empty. " + _FIX,
        )
    return proto


def check_saved_model_dir(path, handle):
    """Raises unless `path` is a SavedModel folder whose files are readable.

    Cheap: parses `saved_model.pb` and the variables index, and compares
    shard sizes with the tensors they must hold; it does not read the
    variable values (their checksums are checked at load, see
    `load_errors`).

    Args:
        path: the folder.
        handle: what the user passed, for messages.

    Returns:
        The `SavedGraph` read (see `read_saved_model`).

    Raises:
        InvalidSavedModelError: `path` is a file, or a file is missing,
            empty, truncated or garbage.
    """
    import tensorflow as tf

    if not tf.io.gfile.isdir(path):
        raise _invalid(
            "a SavedModel folder",
            handle,
            path,
            "a file",
            "Pass the folder that contains saved_model.pb.",
        )
    saved = read_saved_model(path, handle)
    if _has_variables(saved.proto):
        _check_variables(path, handle)
    return saved


@contextlib.contextmanager
def load_errors(path, handle):
    """Turns the errors TensorFlow raises for damaged variable files into
    `InvalidSavedModelError`; every other error passes unchanged.

    Example:

    ```python
    with load_errors(path, handle):
        obj = tf.saved_model.load(path)
    ```
    """
    import tensorflow as tf

    try:
        yield
    except errors.HubkitError:
        raise
    except (tf.errors.OpError, OSError, IndexError, ValueError) as e:
        if not _is_damage(e):
            raise
        raise _invalid(
            "readable variables",
            handle,
            os.path.join(path, "variables"),
            _first_line(e),
            "The variable files are damaged or do not match saved_model.pb. "
            + _FIX,
        ) from e


# --------------------------------------------------------------- variables
def _has_variables(proto):
    for meta_graph in proto.meta_graphs:
        nodes = meta_graph.object_graph_def.nodes
        if any(node.WhichOneof("kind") == "variable" for node in nodes):
            return True
        if not nodes and meta_graph.saver_def.restore_op_name:
            return True  # a TF1 SavedModel with a saver
    return False


def _check_variables(path, handle):
    import tensorflow as tf

    from keras_hubkit.model_cache import expected_shard_names

    folder = os.path.join(path, "variables")
    names = (
        set(tf.io.gfile.listdir(folder)) if tf.io.gfile.isdir(folder) else set()
    )
    index = os.path.join(folder, "variables.index")
    if "variables.index" not in names:
        raise _invalid(
            "variables/variables.index (the model has variables)",
            handle,
            index,
            "no such file",
            _FIX,
        )
    shards = sorted(n for n in names if n.startswith("variables.data-"))
    expected = expected_shard_names(shards)
    if expected is None or not expected <= names:
        missing = sorted(
            (expected or {"variables.data-00000-of-00001"}) - names
        )
        raise _invalid(
            "every variables data shard",
            handle,
            folder,
            f"missing {missing}",
            _FIX,
        )
    try:
        # Not tf.train.load_checkpoint: it takes some filesystems' prefixes
        # (ram://) for folders and then looks for a "checkpoint" file.
        reader = tf.compat.v1.train.NewCheckpointReader(
            os.path.join(folder, "variables")
        )
        dtypes = reader.get_variable_to_dtype_map()
        shapes = reader.get_variable_to_shape_map()
    except tf.errors.NotFoundError:
        # The index is there (listed above), but the checkpoint reader cannot
        # open this filesystem (e.g. ram://); the load itself will tell.
        return
    except (tf.errors.OpError, OSError, ValueError) as e:
        raise _invalid(
            "a readable variables/variables.index",
            handle,
            index,
            _first_line(e),
            "The file is damaged. " + _FIX,
        ) from None
    needed = sum(
        _num_elements(shapes[name]) * dtype.size
        for name, dtype in dtypes.items()
        if dtype not in (tf.string, tf.variant, tf.resource)
    )
    have = sum(tf.io.gfile.stat(os.path.join(folder, n)).length for n in shards)
    if have < needed:
        raise _invalid(
            f"variables data shards of at least {needed} bytes (the tensors "
            "the index lists)",
            handle,
            folder,
            f"{have} bytes",
            "The shards are truncated. " + _FIX,
        )


def _num_elements(shape):
    count = 1
    for dim in shape:
        count *= dim
    return count


_DAMAGE_PHRASES = (
    "variables",
    "sstable",
    "checksum",
    "read less bytes",
    "parsed past limit",
    "cannot parse file",
    "data loss",
    "corrupt",
    "truncated",
    "incompatible tensor",  # another model's checkpoint
)


def _is_damage(e):
    import tensorflow as tf

    if isinstance(e, (tf.errors.DataLossError, tf.errors.OutOfRangeError)):
        return True
    text = str(e).lower()
    return any(phrase in text for phrase in _DAMAGE_PHRASES)


def _first_line(e):
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else type(e).__name__


def _invalid(expected, handle, where, received, fix):
    return errors.InvalidSavedModelError(
        f"Expected {expected}. Received: handle={redact(handle)!r}, "
        f"{where}: {received}. {fix}"
    )
