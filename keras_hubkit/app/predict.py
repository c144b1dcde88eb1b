"""`hubkit predict MODEL FILES...`: classify files with an exported model.

The model's `serving_default` signature (written by `hubkit train` and the
recipes, see `keras_hubkit.serving`) does the decoding, resizing and
scaling; this command reads the files and prints the top classes. No
TensorFlow import at module level: the parser is built without it.
"""

import json
import os

from keras_hubkit import errors

BATCH = 32


def add_arguments(parser):
    """Adds the `predict` arguments to its sub-command parser."""
    parser.add_argument("model", help="output folder or SavedModel folder")
    parser.add_argument("files", nargs="+", help="images, or .txt files")
    parser.add_argument(
        "--top", type=int, default=3, help="classes to show (default 3)"
    )
    parser.add_argument(
        "--json", action="store_true", help="print JSON (one object)"
    )


def run(args):
    """Runs `hubkit predict`; returns the exit code."""
    results = predict_files(
        args.model, args.files, top=args.top, allow_ops=args.allow_op
    )
    if args.json:
        print(json.dumps({"predictions": results}, indent=1))
        return 0
    for result in results:
        best = ", ".join(
            f"{c['class']} {c['score']:.3f}" for c in result["top"]
        )
        print(f"{result['file']}: {best}")
    return 0


def predict_files(model, files, top=3, allow_ops=None):
    """The top classes of each file, by the model's serving signature.

    Args:
        model: a SavedModel folder with a classifier `serving_default`, or
            a `hubkit train` output folder holding `saved_model/`.
        files: image files (for image models) or text files.
        top: how many classes to return per file.
        allow_ops: risky op types the safety scan may accept.

    Returns:
        A list of `{"file": path, "top": [{"class": name, "score": p}]}`.

    Raises:
        HandleNotFoundError: `model` or a file does not exist.
        SignatureError: the model has no classifier serving signature.
        DataError: a file cannot be decoded.
    """
    from keras_hubkit.loading import load

    signature, input_name = _signature(
        load(_saved_model_dir(model), allow_ops=allow_ops)
    )
    read = _read_text if input_name == "text" else _read_bytes
    results = []
    for start in range(0, len(files), BATCH):
        chunk = files[start : start + BATCH]
        inputs = [read(f) for f in chunk]
        outputs = _call(signature, input_name, inputs, chunk)
        for i, file in enumerate(chunk):
            classes = outputs["classes"][i][:top]
            scores = outputs["scores"][i][:top]
            results.append(
                {
                    "file": file,
                    "top": [
                        {"class": c.decode(), "score": float(s)}
                        for c, s in zip(classes, scores)
                    ],
                }
            )
    return results


def _saved_model_dir(model):
    inner = os.path.join(model, "saved_model")
    if os.path.isfile(os.path.join(inner, "saved_model.pb")):
        return inner
    if not os.path.exists(model):
        raise errors.HandleNotFoundError(
            f"Expected a model folder. Received: {model}, which does not "
            "exist. Pass the output folder of `hubkit train` (or its "
            "saved_model folder)."
        )
    return model


def _signature(obj):
    signatures = getattr(obj, "signatures", None) or {}
    signature = signatures.get("serving_default")
    inputs = signature.structured_input_signature[1] if signature else {}
    outputs = signature.structured_outputs if signature else {}
    if len(inputs) != 1 or not {"classes", "scores"} <= set(outputs):
        found = (
            f"inputs {sorted(inputs)} and outputs {sorted(outputs)}"
            if signature
            else f"no serving_default (signatures: {sorted(signatures)})"
        )
        raise errors.SignatureError(
            "Expected a classifier whose serving_default signature returns "
            "`classes` and `scores` (as `hubkit train` and the recipes "
            f"write). Received: {found}. Retrain with `hubkit train`, or "
            "call the model from Python."
        )
    return signature, next(iter(inputs))


def _read_bytes(file):
    try:
        with open(file, "rb") as f:
            return f.read()
    except FileNotFoundError as e:
        raise errors.HandleNotFoundError(
            f"Expected a file to classify. Received: {file}, which does not "
            "exist."
        ) from e


def _read_text(file):
    try:
        return _read_bytes(file).decode("utf8").strip()
    except UnicodeDecodeError as e:
        raise errors.DataError(
            f"Expected UTF-8 text. Received: {file} ({e}). Save it as UTF-8."
        ) from e


def _call(signature, input_name, inputs, files):
    import tensorflow as tf

    try:
        outputs = signature(**{input_name: tf.constant(inputs, tf.string)})
    except tf.errors.InvalidArgumentError:
        if len(inputs) > 1:  # find the file that broke the batch
            for value, file in zip(inputs, files):
                _call(signature, input_name, [value], [file])
        raise errors.DataError(
            "Expected an image file (JPEG, PNG, GIF or BMP). Received: "
            f"{files[0]}, which cannot be decoded. Remove it or convert it."
        ) from None
    return {k: v.numpy() for k, v in outputs.items()}
