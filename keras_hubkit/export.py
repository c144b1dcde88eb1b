"""`hk.export_saved_model`: fine-tuned models back to reusable SavedModels.

Keras 3's `model.save()` writes a `.keras` file and `model.export()` a
serving-only SavedModel; neither keeps the reusable interface
(`__call__(inputs, training)`, `variables`, `trainable_variables`,
`regularization_losses`) that `hk.HubLayer`, `hub.KerasLayer` and `hk.load`
consumers fine-tune. This module writes it, atomically.
"""

import contextlib
import ctypes
import ctypes.util
import logging
import os
import re
import shutil
import socket
import uuid

import keras
import tensorflow as tf

from keras_hubkit import _compat
from keras_hubkit import errors
from keras_hubkit._savedmodel import SAVED_MODEL_FILES
from keras_hubkit._savedmodel import public_signatures
from keras_hubkit.hub_layer import HubLayer
from keras_hubkit.scanner import scan_path

logger = logging.getLogger(__name__)


def export_saved_model(
    obj,
    export_dir,
    *,
    signatures=None,
    overwrite=False,
    input_signature=None,
    class_names=None,
    tflite=False,
):
    """Writes `obj` as a reusable SavedModel, atomically.

    - A `HubLayer` or an object from `hk.load` / `tf.saved_model.load` is
      re-saved with its fine-tuned variable values, keeping its `__call__`,
      signatures, assets (vocabulary files...), `trainable_variables` and
      `regularization_losses`.
    - A Keras model or layer (including a piece cut out of a larger model)
      gets `__call__` traced for `training=True` and `training=False` on its
      input spec (batch dimension `None`), `variables`, `trainable_variables`
      (those trainable now), `regularization_losses` (each weight
      regularizer, and the regularization losses of trainable `HubLayer`s
      inside, as zero-argument functions) and a `serving_default` signature
      for TF Serving and `keras.layers.TFSMLayer`. No optimizer state.

    Args:
        obj: a `HubLayer`, a loaded SavedModel object, or a Keras model/layer.
        export_dir: the folder to write.
        signatures: extra serving signatures (name -> concrete function),
            added to the defaults.
        overwrite: replace an existing non-empty `export_dir`.
        input_signature: a `tf.TensorSpec` (or nest) for a Keras layer or
            model whose inputs are not known.
        class_names: if given, written one per line to `labels.txt` beside
            `saved_model.pb` (line i is class i).
        tflite: also convert the serving signature to `model.tflite`;
            a string names the signature to convert instead.

    Returns:
        `export_dir`.

    Raises:
        ExportError: the destination exists (and `overwrite` is False), a
            weight is NaN or infinite, or the object cannot be exported.

    Example:

    ```python
    base = hk.HubLayer(handle, trainable=True)
    model = keras.Sequential([base, keras.layers.Dense(3)])
    model.fit(x, y)
    hk.export_saved_model(base, "finetuned_base")    # reusable base
    hk.export_saved_model(model, "classifier", class_names=["a", "b", "c"])
    ```
    """
    export_dir = os.path.abspath(os.fspath(export_dir))
    _check_destination(export_dir, overwrite)
    root, default_signatures = _prepare(obj, input_signature)
    _check_finite(_written_variables(root), export_dir)
    all_signatures = {**default_signatures, **(signatures or {})}
    parent = os.path.dirname(export_dir)
    os.makedirs(parent, exist_ok=True)
    remove_dead_leftovers(export_dir)
    tmp = _sibling(export_dir, "tmp")
    try:
        tf.saved_model.save(root, tmp, signatures=all_signatures or None)
        if class_names is not None:
            _write_labels(tmp, class_names)
        if tflite:
            _write_tflite(tmp, tflite if isinstance(tflite, str) else None)
        report = scan_path(tmp)
        if report.findings:
            logger.warning("The export has risky ops:\n%s", report.summary())
        _move_into_place(tmp, export_dir)
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(tmp)
    return export_dir


# ----------------------------------------------------------------- sources
def _prepare(obj, input_signature):
    if isinstance(obj, HubLayer):
        obj = obj.resolved_object
    if not isinstance(obj, keras.layers.Layer):
        if not (callable(obj) or hasattr(obj, "signatures")):
            raise errors.ExportError(
                "Expected a HubLayer, a loaded SavedModel or a Keras "
                f"model/layer. Received: {obj!r} of type {type(obj)}."
            )
        return obj, _loaded_signatures(obj)
    return _ReusableKeras(obj, _input_spec(obj, input_signature)).prepare()


def _loaded_signatures(obj):
    signatures = public_signatures(obj)
    if "serving_default" not in signatures and callable(obj):
        fn = _inference_trace(obj)
        if fn is not None:
            signatures["serving_default"] = fn
    return signatures


def _inference_trace(obj):
    """The `training=False` trace of `obj.__call__` with one tensor input."""
    for concrete in getattr(obj.__call__, "concrete_functions", []):
        args, kwargs = concrete.structured_input_signature
        if len(args) < 2 or kwargs or not isinstance(args[0], tf.TensorSpec):
            continue
        extra_tensors = [a for a in args[2:] if isinstance(a, tf.TensorSpec)]
        if args[1] is False and not extra_tensors:
            return obj.__call__.get_concrete_function(args[0], training=False)
    logger.info("No serving_default added: no single-input inference trace.")
    return None


def _input_spec(layer, input_signature):
    if input_signature is not None:
        return input_signature
    first = (getattr(layer, "layers", None) or [None])[0]
    try:
        inputs = layer.input
    except (AttributeError, ValueError) as e:
        known = getattr(layer, "inputs", None)
        if known:
            return _specs_of(known[0] if len(known) == 1 else known)
        # A Sequential built from data has no symbolic input; a HubLayer in
        # front knows what its SavedModel was traced for.
        spec = first.traced_input_spec if isinstance(first, HubLayer) else None
        if spec is not None:
            return tf.TensorSpec((None, *spec.shape[1:]), spec.dtype)
        raise errors.ExportError(
            f"Cannot tell the inputs of {layer.name!r}: it has never been "
            "called on a keras.Input. Pass "
            "`input_signature=tf.TensorSpec([None, ...], dtype)`."
        ) from e

    return _specs_of(inputs)


def _specs_of(inputs):
    def spec(t):
        shape = (None, *tuple(t.shape)[1:])
        name = getattr(t, "name", None)
        name = name.split(":")[0] if name else None
        return tf.TensorSpec(shape, t.dtype, name=name)

    return tf.nest.map_structure(spec, inputs)


class _ReusableKeras:
    """Builds the reusable-SavedModel root for a Keras model or layer."""

    def __init__(self, layer, spec):
        self.layer = layer
        self.spec = spec

    def prepare(self):
        layer = self.layer
        root = tf.train.Checkpoint()
        root.keras_layer = layer  # keeps every variable (and seed) reachable
        root.variables = [_tf_var(v) for v in layer.variables]
        root.trainable_variables = [
            _tf_var(v) for v in layer.trainable_variables
        ]
        root.regularization_losses = self._losses()

        @tf.function
        def call(inputs, training=False):
            return layer(inputs, training=training)

        root.__call__ = call
        for training in (True, False):
            call.get_concrete_function(self.spec, training=training)
        serving = call.get_concrete_function(self.spec, training=False)
        return root, {"serving_default": serving}

    def _losses(self):
        losses = []
        seen = set()
        for variable in self.layer.trainable_weights:
            regularizer = getattr(variable, "regularizer", None)
            if id(variable) not in seen and regularizer is not None:
                seen.add(id(variable))
                losses.append(_weight_loss(variable))
        for sub in _compat.all_layers(self.layer):
            if isinstance(sub, HubLayer) and sub.trainable:
                losses += [
                    _zero_arg(fn)
                    for fn in sub.saved_model_regularization_losses
                ]
        return losses


def _weight_loss(variable):
    regularizer = variable.regularizer

    @tf.function(input_signature=[])
    def loss():
        return tf.cast(regularizer(variable), tf.float32)

    return loss


def _zero_arg(fn):
    @tf.function(input_signature=[])
    def loss():
        return fn()

    return loss


def _tf_var(variable):
    value = getattr(variable, "value", variable)
    return value if isinstance(value, tf.Variable) else variable


# ----------------------------------------------------------------- checks
def _check_destination(export_dir, overwrite):
    if os.path.isfile(export_dir):
        raise errors.ExportError(
            f"Expected a folder to export to. Received: {export_dir!r}, "
            "which is a file."
        )
    if not (os.path.isdir(export_dir) and os.listdir(export_dir)):
        return
    if not overwrite:
        raise errors.OutputExistsError(
            f"{export_dir!r} exists and is not empty. Pass overwrite=True "
            "to replace it (atomically), or choose another folder."
        )
    # Replacing swaps the whole folder: only ever replace an earlier export,
    # never a folder of other files (the working directory, a home folder).
    if not any(
        os.path.isfile(os.path.join(export_dir, name))
        for name in SAVED_MODEL_FILES
    ):
        raise errors.OutputExistsError(
            "Expected a new folder, or an earlier SavedModel export to "
            f"replace. Received: {export_dir!r}, which holds other files "
            f"({sorted(os.listdir(export_dir))[:5]}); overwrite would delete "
            "them. Choose a new folder."
        )


def _written_variables(root):
    """Every variable `tf.saved_model.save(root)` writes.

    Walks the object graph as the saver does (`tf.train.TrackableView`),
    so variables are found whether or not the object lists them in a
    `variables` attribute (a loaded SavedModel need not have one).
    """
    found = {}
    for trackable in tf.train.TrackableView(root).descendants():
        if isinstance(trackable, (tf.Variable, keras.Variable)):
            variable = _tf_var(trackable)
            found.setdefault(id(variable), variable)
    return list(found.values())


def _check_finite(variables, export_dir):
    bad = []
    for v in variables:
        if not _is_finite(v):
            bad.append(v.name)
    if bad:
        raise errors.ExportError(
            f"Refusing to export to {export_dir!r}: {len(bad)} variables "
            f"hold NaN or infinite values ({', '.join(bad[:5])}). Training "
            "diverged; restore the last good weights (e.g. "
            "EarlyStopping(restore_best_weights=True)) and export again."
        )


def _is_finite(variable):
    dtype = tf.as_dtype(variable.dtype)
    if dtype.is_complex:
        value = tf.convert_to_tensor(variable)
        parts = [tf.math.real(value), tf.math.imag(value)]
    elif dtype.is_floating:
        parts = [tf.convert_to_tensor(variable)]
    else:
        return True
    return all(bool(tf.reduce_all(tf.math.is_finite(p))) for p in parts)


def _write_labels(folder, class_names):
    names = [str(n) for n in class_names]
    if any("\n" in n for n in names):
        bad = next(n for n in names if "\n" in n)
        raise errors.ExportError(
            "Expected class names on one line each. Received: "
            f"class name {bad!r}. Remove the newline from it."
        )
    with open(os.path.join(folder, "labels.txt"), "w") as f:
        f.write("\n".join(names) + "\n")


def _write_tflite(folder, signature=None):
    converter = tf.lite.TFLiteConverter.from_saved_model(
        folder, signature_keys=[signature or "serving_default"]
    )
    try:
        flatbuffer = converter.convert()
    except Exception as e:  # The converter raises many unrelated types.
        raise errors.ExportError(
            f"TFLite conversion failed: {str(e).splitlines()[0]}. Models "
            "with string inputs or ops TFLite lacks cannot be converted; "
            "export without tflite=True."
        ) from e
    with open(os.path.join(folder, "model.tflite"), "wb") as f:
        f.write(flatbuffer)


# ------------------------------------------------------------ atomic move
# A sibling of the destination is named `<dest>.<pid>.<random>.<host>.tmp`
# (or `.old`), so a later export can tell a dead process's leftovers from a
# live concurrent export's folder.
_SIBLING = re.compile(r"^(\d+)\.[0-9a-f]{8}\.(.+)\.(tmp|old)$")


def _sibling(export_dir, kind):
    host = socket.gethostname() or "localhost"
    return f"{export_dir}.{os.getpid()}.{uuid.uuid4().hex[:8]}.{host}.{kind}"


def remove_dead_leftovers(export_dir):
    """Removes what killed exports to `export_dir` left beside it.

    A `.tmp` / `.old` sibling whose process (same host) no longer runs is
    a leftover; one of a live process, or of another host, is kept.

    Returns:
        The removed paths.
    """
    parent, base = os.path.split(export_dir)
    removed = []
    try:
        names = os.listdir(parent)
    except FileNotFoundError:
        return removed
    prefix = base + "."
    here = socket.gethostname() or "localhost"
    for name in names:
        match = name.startswith(prefix) and _SIBLING.match(name[len(prefix) :])
        if not match:
            continue
        pid, host = int(match.group(1)), match.group(2)
        if host != here or _process_alive(pid):
            continue
        path = os.path.join(parent, name)
        logger.info("Removing the leftover of a killed export: %s", path)
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _move_into_place(tmp, export_dir):
    if not os.path.exists(export_dir):
        os.rename(tmp, export_dir)
        return
    if not os.listdir(export_dir):
        os.rmdir(export_dir)
        os.rename(tmp, export_dir)
        return
    # Swap old and new in one step where the kernel can (Linux renameat2),
    # so a kill leaves either the previous export or the new one.
    if _exchange(tmp, export_dir):
        shutil.rmtree(tmp)  # now holds the previous export
        return
    old = _sibling(export_dir, "old")
    os.rename(export_dir, old)
    try:
        os.rename(tmp, export_dir)
    except OSError:
        os.rename(old, export_dir)  # put the previous export back
        raise
    shutil.rmtree(old, ignore_errors=True)


def _exchange(a, b):
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = renameat2(
        at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange
    )
    return result == 0
