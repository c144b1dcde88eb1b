"""The text `hubkit inspect` prints: scan report, API, variables, losses."""

import os

import tensorflow as tf

from keras_hubkit import _specs
from keras_hubkit import errors
from keras_hubkit._savedmodel import public_signatures
from keras_hubkit.loading import load
from keras_hubkit.resolver import resolve
from keras_hubkit.scanner import scan_path


def describe(handle, allow_ops=None):
    """Scans, then (if the scan allows) loads `handle` and describes it.

    Returns:
        (text, loaded): the description, and whether the model was loaded
        (False when the scan refused it; the text then says why).
    """
    path = resolve(handle)
    report = scan_path(path)
    lines = [report.summary(), ""]
    try:
        obj = load(handle, allow_ops=allow_ops)
    except errors.HubkitError as e:
        lines.append(f"Not loaded: {e}")
        return "\n".join(lines), False
    lines += _callable_lines(obj)
    lines += _signature_lines(obj)
    lines += _variable_lines(obj)
    return "\n".join(lines), True


def describe_keras_file(path, allow_ops=None):
    """Describes each HubLayer SavedModel stored in a `.keras` file.

    The stored copies are written out to a temporary folder, then scanned
    and described like any handle (nothing runs before the scan).

    Returns:
        (text, loaded): as `describe`; loaded is True when every stored
        SavedModel loaded.
    """
    import tempfile

    from keras_hubkit import keras_file

    entries = keras_file.list_saved_models(path)
    if not entries:
        return (
            f"{path}: no SavedModel stored inside (a .keras file written by "
            "keras_hubkit 0.1.0 keeps only each HubLayer's handle). Inspect "
            "the handle instead.",
            False,
        )
    parts, all_loaded = [], True
    with tempfile.TemporaryDirectory(prefix="hubkit-inspect-") as tmp:
        for i, entry in enumerate(entries):
            dest = os.path.join(tmp, str(i))
            keras_file.saved_model_from_keras_file(
                path, dest, layer_name=entry["name"]
            )
            text, loaded = describe(dest, allow_ops=allow_ops)
            all_loaded = all_loaded and loaded
            parts.append(
                f"HubLayer {entry['name']!r} (from {entry['handle']}):\n" + text
            )
    return "\n\n".join(parts), all_loaded


def _callable_lines(obj):
    if not callable(obj):
        return ["__call__: none (not a reusable TF2 SavedModel)"]
    lines = ["__call__ traces:"]
    for concrete in getattr(obj.__call__, "concrete_functions", []):
        args, kwargs = concrete.structured_input_signature
        inputs = _specs.describe([args[0]]) if args else "()"
        extra = {k: v for k, v in zip(_arg_names(obj), args[1:])}
        extra.update(kwargs)
        lines.append(f"  inputs {inputs} {_kwargs(extra)}".rstrip())
        lines.append(f"    -> {_outputs(concrete.structured_outputs)}")
    return lines


def _signature_lines(obj):
    signatures = public_signatures(obj)
    lines = [f"signatures: {len(signatures)}"]
    for name, fn in sorted(signatures.items()):
        _, kwargs = fn.structured_input_signature
        lines.append(f"  {name}: inputs {_specs.describe([kwargs])}")
        lines.append(f"    -> {_outputs(fn.structured_outputs)}")
    return lines


def _variable_lines(obj):
    variables = list(getattr(obj, "variables", []) or [])
    trainable = list(getattr(obj, "trainable_variables", []) or [])
    losses = list(getattr(obj, "regularization_losses", []) or [])
    count = sum(int(tf.size(v)) for v in variables)
    lines = [
        f"variables: {len(variables)} ({count:,} values), "
        f"trainable_variables: {len(trainable)}",
        f"regularization_losses: {len(losses)}",
    ]
    for fn in losses[:10]:
        lines.append(f"  {float(fn()):.6g}")
    return lines


def _arg_names(obj):
    import inspect

    try:
        names = list(inspect.signature(obj.__call__).parameters)
    except (TypeError, ValueError):
        return []
    return names[1:]


def _kwargs(extra):
    parts = []
    for key, value in extra.items():
        if isinstance(value, tf.TensorSpec):
            shape = "[?]" if value.shape.rank is None else list(value.shape)
            value = f"{value.dtype.name}{shape}"
        parts.append(f"{key}={value}")
    return ", ".join(parts)


def _outputs(structure):
    if isinstance(structure, dict) and len(structure) > 6:
        keys = sorted(structure)
        return f"dict of {len(keys)} outputs ({', '.join(keys[:4])}, ...)"
    return _specs.describe_structure(structure)
