"""A HubLayer's SavedModel inside a `.keras` file.

`model.save("m.keras")` stores, for every `HubLayer`, a reusable SavedModel
with the layer's current (fine-tuned) variable values and the model's asset
files in the archive (`assets/<layer path>/saved_model/`), next to a small
`hubkit_layer.json`. `keras.models.load_model` rebuilds the layer from that
copy, so the file can be moved or shared without the original model folder.
"""

import atexit
import contextlib
import json
import logging
import os
import shutil
import tempfile
import uuid
import zipfile

import tensorflow as tf

from keras_hubkit import errors
from keras_hubkit._savedmodel import public_signatures

logger = logging.getLogger(__name__)

SAVED_MODEL_DIR = "saved_model"
METADATA_FILE = "hubkit_layer.json"
_FORMAT = 1


# ------------------------------------------------------------------ write
def write_layer_saved_model(dir_path, obj, *, metadata, source_path, is_tf1):
    """Writes `obj` as a SavedModel into `dir_path` (a layer's asset folder).

    A reusable TF2 object is re-saved with `tf.saved_model.save`, which
    keeps `__call__`, signatures, `variables`, `trainable_variables`,
    `regularization_losses` and assets, with the current variable values.
    A TF1 Hub module (or an object TensorFlow cannot re-save) is copied
    from `source_path` as it is: its variables cannot be fine-tuned.
    """
    dest = os.path.join(dir_path, SAVED_MODEL_DIR)
    resaved = False
    if not is_tf1:
        signatures = public_signatures(obj)
        try:
            tf.saved_model.save(obj, dest, signatures=signatures or None)
            resaved = True
        except Exception as e:  # TensorFlow raises many unrelated types.
            logger.info("Copying the SavedModel as it is: %s", e)
            shutil.rmtree(dest, ignore_errors=True)
    if not resaved:
        if source_path is None:
            raise errors.HandleError(
                "Cannot store the SavedModel of HubLayer "
                f"{metadata.get('name')!r} in the .keras file: TensorFlow "
                "cannot re-save the loaded object and its folder is unknown. "
                "Pass the handle (path or URL) to HubLayer instead of an "
                "object."
            )
        shutil.copytree(source_path, dest)
    metadata = {**metadata, "format": _FORMAT, "resaved": resaved}
    if resaved:
        metadata["tags"] = None  # tf.saved_model.save writes one MetaGraph
    with open(os.path.join(dir_path, METADATA_FILE), "w") as f:
        json.dump(metadata, f)


# ------------------------------------------------------------------- read
def _entries(archive):
    """(folder inside the archive, metadata) of each stored SavedModel."""
    if isinstance(archive, zipfile.ZipFile):
        for member in archive.namelist():
            if member.startswith("assets/") and member.endswith(
                "/" + METADATA_FILE
            ):
                yield member.rsplit("/", 1)[0], json.loads(archive.read(member))
        return
    root = os.path.join(archive, "assets")
    for folder, _, files in os.walk(root):
        if METADATA_FILE in files:
            with open(os.path.join(folder, METADATA_FILE)) as f:
                yield os.path.relpath(folder, archive), json.load(f)


def find_layer_saved_model(archive, name, handle):
    """The stored entry for the layer called `name`, or None."""
    matches = [
        (folder, meta)
        for folder, meta in _entries(archive)
        if meta.get("name") == name and meta.get("handle") == handle
    ]
    if len(matches) > 1:
        logger.warning(
            "%d HubLayers named %r with handle %r in one .keras file; using "
            "the first.",
            len(matches),
            name,
            handle,
        )
    return matches[0] if matches else None


def extract(archive, folder, dest):
    """Copies `<folder>/saved_model/` out of `archive` into `dest`."""
    prefix = f"{folder}/{SAVED_MODEL_DIR}/".replace(os.sep, "/")
    if not isinstance(archive, zipfile.ZipFile):
        shutil.copytree(os.path.join(archive, folder, SAVED_MODEL_DIR), dest)
        return dest
    os.makedirs(dest, exist_ok=True)
    root = os.path.realpath(dest)
    for info in archive.infolist():
        if not info.filename.startswith(prefix) or info.is_dir():
            continue
        _check_not_a_bomb(info)
        relative = info.filename[len(prefix) :]
        target = os.path.realpath(os.path.join(root, relative))
        if os.path.isabs(relative) or not target.startswith(root + os.sep):
            raise errors.UnsafeArchiveError(
                "Expected archive members inside the HubLayer's folder. "
                f"Received: {info.filename!r}, which escapes it. The .keras "
                "file was tampered with; do not load it."
            )
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with archive.open(info) as src, open(target, "wb") as out:
            shutil.copyfileobj(src, out)
    return dest


# Keras writes archive members uncompressed, and DEFLATE cannot exceed about
# 1032:1; Keras's own guard (saving_lib, CWE-409) uses the same bounds.
_BOMB_FLOOR_BYTES = 1 << 32
_BOMB_MAX_EXPANSION = 100


def _check_not_a_bomb(info):
    if (
        info.file_size > _BOMB_FLOOR_BYTES
        and info.file_size > _BOMB_MAX_EXPANSION * max(info.compress_size, 1)
    ):
        raise errors.UnsafeArchiveError(
            f"Expected archive members of plausible size. Received: "
            f"{info.filename!r} declares {info.file_size} bytes from "
            f"{info.compress_size} stored. The .keras file was tampered "
            "with; do not load it."
        )


def extract_for_process(archive, folder):
    """Extracts to a folder that lives as long as this process.

    The loaded object keeps reading its asset files (vocabularies) from
    there, and re-saving it copies them.
    """
    dest = tempfile.mkdtemp(prefix="hubkit-keras-")
    atexit.register(shutil.rmtree, dest, ignore_errors=True)
    return extract(archive, folder, os.path.join(dest, SAVED_MODEL_DIR))


# ----------------------------------------------------------------- public
@contextlib.contextmanager
def _open(path):
    path = os.fspath(path)
    if os.path.isfile(os.path.join(path, "config.json")):
        yield path
        return
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as e:
        raise errors.HandleError(
            "Expected a .keras file written by Keras 3 (a zip archive). "
            f"Received: path={path!r} ({e}). Pass the file written by "
            "`model.save('model.keras')`."
        ) from e
    with archive:
        yield archive


def list_saved_models(path):
    """The HubLayer SavedModels stored in a `.keras` file.

    Args:
        path: a `.keras` file (or an unzipped Keras model folder).

    Returns:
        A list of dicts with `name` (the layer's name), `handle` (where the
        layer was loaded from, credentials removed), `folder` (inside the
        archive) and `resaved` (True when the copy holds the variable values
        at save time; False for a verbatim copy of a TF1 Hub module).
        Empty for files written by keras_hubkit 0.1.0, which stored only the
        handle.

    Example:

    ```python
    for entry in hk.keras_file.list_saved_models("model.keras"):
        print(entry["name"], entry["handle"])
    ```
    """
    with _open(path) as archive:
        return [
            {
                "name": meta.get("name"),
                "handle": meta.get("handle"),
                "folder": folder,
                "resaved": bool(meta.get("resaved")),
            }
            for folder, meta in _entries(archive)
        ]


def saved_model_from_keras_file(path, dest, layer_name=None, overwrite=False):
    """Writes the SavedModel of a HubLayer stored in a `.keras` file.

    Nothing is loaded or run: the files are copied out of the archive, so
    scan the result (`hk.scan(dest)`) before loading it.

    Args:
        path: a `.keras` file (or an unzipped Keras model folder).
        dest: the folder to write (created; written atomically).
        layer_name: which HubLayer, when the model has several.
        overwrite: replace an existing non-empty `dest`.

    Returns:
        `dest`.

    Raises:
        HandleError: `path` is not a `.keras` file, holds no HubLayer
            SavedModel (files written by keras_hubkit 0.1.0 hold only the
            handle), or holds several and `layer_name` does not pick one.
        ExportError: `dest` exists and is not empty (and `overwrite` is
            False).

    Example:

    ```python
    hk.keras_file.saved_model_from_keras_file("model.keras", "base_model")
    ```
    """
    dest = os.path.abspath(os.fspath(dest))
    if os.path.isdir(dest) and os.listdir(dest) and not overwrite:
        raise errors.ExportError(
            f"{dest!r} exists and is not empty. Pass overwrite=True to "
            "replace it, or choose another folder."
        )
    with _open(path) as archive:
        entries = list(_entries(archive))
        if layer_name is not None:
            entries = [e for e in entries if e[1].get("name") == layer_name]
        if len(entries) != 1:
            names = sorted(meta.get("name") for _, meta in _entries(archive))
            raise errors.HandleError(
                "Expected one HubLayer SavedModel in the .keras file. "
                f"Received: path={os.fspath(path)!r}, layer_name="
                f"{layer_name!r}; the file holds {names or 'none'}. "
                + (
                    "Pass layer_name= with one of them."
                    if names
                    else "Files written by keras_hubkit 0.1.0 store only "
                    "the handle: load the model with "
                    "keras.models.load_model and use hk.export_saved_model."
                )
            )
        folder = entries[0][0]
        tmp = f"{dest}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            extract(archive, folder, tmp)
            if os.path.isdir(dest):
                shutil.rmtree(dest)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            os.rename(tmp, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return dest
