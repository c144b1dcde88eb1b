"""Image and text classifiers from a handle, and the pipeline that trains,
evaluates and exports them (what `hubkit train` and recipes run).

Defaults follow TF Hub's `make_image_classifier`: dropout 0.2, L2 1e-4 on
the head, label smoothing 0.1, SGD 0.005 with momentum 0.9.
"""

import json
import os
import sys
import time

import keras
import numpy as np

from keras_hubkit import data as data_lib
from keras_hubkit import errors
from keras_hubkit import plots
from keras_hubkit.export import export_saved_model
from keras_hubkit.finetune import Stage
from keras_hubkit.finetune import StagedFineTuner
from keras_hubkit.hub_layer import HubLayer

OPTIMIZERS = {
    "sgd": lambda lr, m: keras.optimizers.SGD(lr, momentum=m),
    "adam": lambda lr, m: keras.optimizers.Adam(lr),
    "adamw": lambda lr, m: keras.optimizers.AdamW(lr),
    "rmsprop": lambda lr, m: keras.optimizers.RMSprop(lr, momentum=m),
}

DEFAULT_STAGES = [
    {"epochs": 5, "lr": 0.005, "optimizer": "sgd", "momentum": 0.9},
]


def image_classifier(
    handle,
    num_classes,
    *,
    image_size=(224, 224),
    dropout=0.2,
    l2=1e-4,
    hidden=0,
    **hub_kwargs,
):
    """A Keras classifier: `HubLayer(handle)` on images, then a head.

    Args:
        handle: an image feature vector (inputs `[batch, h, w, 3]` in
            `[0, 1]`, the TF Hub convention).
        num_classes: how many classes.
        image_size: `(height, width)` of the inputs.
        dropout: dropout before the last layer.
        l2: L2 penalty on the head's kernels.
        hidden: units of an optional hidden layer (0: none).
        **hub_kwargs: more `HubLayer` arguments.

    Returns:
        A `keras.Model` returning logits; the `HubLayer` is named "base".

    Example:

    ```python
    model = hk.image_classifier(handle, 5, image_size=(224, 224))
    ```
    """
    inputs = keras.Input((*image_size, 3), name="image")
    return _with_head(
        inputs, handle, num_classes, dropout, l2, hidden, hub_kwargs
    )


def text_classifier(
    handle, num_classes, *, dropout=0.2, l2=1e-4, hidden=0, **hub_kwargs
):
    """A Keras classifier: `HubLayer(handle)` on strings, then a head.

    Args:
        handle: a text embedding taking a batch of strings.
        num_classes: how many classes.
        dropout: dropout before the last layer.
        l2: L2 penalty on the head's kernels.
        hidden: units of an optional hidden layer (0: none).
        **hub_kwargs: more `HubLayer` arguments.

    Returns:
        A `keras.Model` returning logits, with a string input.

    Example:

    ```python
    model = hk.text_classifier(handle, 2, hidden=16)
    ```
    """
    inputs = keras.Input((), dtype="string", name="text")
    return _with_head(
        inputs, handle, num_classes, dropout, l2, hidden, hub_kwargs
    )


def _with_head(inputs, handle, num_classes, dropout, l2, hidden, hub_kwargs):
    hub_kwargs.setdefault("name", "base")
    x = HubLayer(handle, **hub_kwargs)(inputs)
    regularizer = keras.regularizers.L2(l2) if l2 else None
    if hidden:
        x = keras.layers.Dense(
            hidden,
            activation="relu",
            name="hidden",
            kernel_regularizer=regularizer,
        )(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(
        num_classes, name="logits", kernel_regularizer=regularizer
    )(x)
    return keras.Model(inputs, outputs)


def stages_from_config(stage_configs):
    """`Stage`s from recipe dicts (`optimizer` by name, `momentum`)."""
    stages = []
    for config in stage_configs or DEFAULT_STAGES:
        config = dict(config)
        name = config.pop("optimizer", "adam")
        momentum = config.pop("momentum", 0.0)
        if name not in OPTIMIZERS:
            raise errors.RecipeError(
                f"Unknown optimizer {name!r}. Expected one of "
                f"{sorted(OPTIMIZERS)}."
            )
        if "lr_range" in config:
            config["lr_range"] = tuple(config["lr_range"])
        factory = OPTIMIZERS[name]
        try:
            stages.append(
                Stage(
                    optimizer=lambda lr, f=factory, m=momentum: f(lr, m),
                    **config,
                )
            )
        except TypeError as e:
            raise errors.RecipeError(f"Bad stage {config}: {e}") from e
    return stages


def load_data(config):
    """A `data_lib.Dataset` from a recipe's `[data]` table."""
    kind = config.get("kind")
    path = config.get("path")
    if kind == "image_folder":
        size = config.get("image_size")
        return data_lib.image_folder(path, tuple(size) if size else None)
    if kind == "text_folder":
        return data_lib.text_folder(path)
    if kind == "text_csv":
        return data_lib.text_csv(
            path,
            config.get("text_column", "text"),
            config.get("label_column", "label"),
        )
    raise errors.RecipeError(
        f"Unknown data kind {kind!r}. Expected image_folder, text_folder or "
        "text_csv."
    )


def train_classifier(recipe, output_dir, verbose="auto"):
    """Trains, evaluates and exports a classifier described by `recipe`.

    Args:
        recipe: a dict with `data`, `model`, `stages`, `output` tables (see
            the recipes guide).
        output_dir: where results go.
        verbose: Keras verbosity; "auto" shows a progress bar on a terminal
            and one line per epoch otherwise.

    Returns:
        A dict of results (metrics, paths).
    """
    os.makedirs(output_dir, exist_ok=True)
    data_config = recipe.get("data", {})
    dataset = load_data(data_config)
    seed = int(data_config.get("seed", 0))
    train, test = dataset.split(data_config.get("test_split", 0.2), seed)
    train, val = train.split(data_config.get("validation_split", 0.0), seed)
    model = build_model(recipe.get("model", {}), dataset, data_config)
    num_classes = len(dataset.class_names)
    smoothing = float(recipe.get("model", {}).get("label_smoothing", 0.1))
    loss = keras.losses.CategoricalCrossentropy(
        from_logits=True, label_smoothing=smoothing
    )
    verbose = _verbosity(verbose)
    started = time.perf_counter()
    history = StagedFineTuner(
        model,
        stages_from_config(recipe.get("stages")),
        loss=loss,
        metrics=["accuracy"],
    ).run(
        _inputs(train.x),
        _one_hot(train.y, num_classes),
        validation_data=(_inputs(val.x), _one_hot(val.y, num_classes))
        if val
        else None,
        batch_size=int(data_config.get("batch_size", 32)),
        verbose=verbose,
    )
    seconds = time.perf_counter() - started
    return _finish(
        model,
        history,
        test,
        dataset.class_names,
        output_dir,
        recipe.get("output", {}),
        seconds,
    )


def build_model(model_config, dataset, data_config):
    config = dict(model_config)
    handle = config.pop("handle", None)
    if not handle:
        raise errors.RecipeError("The recipe's [model] table needs a handle.")
    config.pop("label_smoothing", None)
    num_classes = len(dataset.class_names)
    if dataset.x.dtype == object:
        return text_classifier(handle, num_classes, **config)
    return image_classifier(
        handle, num_classes, image_size=dataset.x.shape[1:3], **config
    )


def _finish(model, history, test, class_names, output_dir, output, seconds):
    probabilities = keras.Model(
        model.input, keras.layers.Softmax(name="probabilities")(model.output)
    )
    predicted = np.argmax(
        probabilities.predict(_inputs(test.x), verbose=0), axis=1
    )
    matrix = plots.confusion_matrix(test.y, predicted, class_names)
    metrics = {
        "test_accuracy": float(np.mean(predicted == test.y)),
        "test_examples": len(test.y),
        "classes": class_names,
        "confusion_matrix": matrix.tolist(),
        "train_seconds": round(seconds, 2),
        "epochs": len(history.epoch),
        "stopped_on_nan": history.stopped_on_nan,
    }
    saved = export_saved_model(
        probabilities,
        os.path.join(output_dir, "saved_model"),
        class_names=class_names,
        tflite=bool(output.get("tflite", False)),
        overwrite=True,
    )
    with open(os.path.join(output_dir, "labels.txt"), "w") as f:
        f.write("\n".join(class_names) + "\n")
    with open(os.path.join(output_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=1)
    paths = {
        "saved_model": saved,
        "labels": os.path.join(output_dir, "labels.txt"),
        "metrics": os.path.join(output_dir, "metrics.json"),
        "training_curves": plots.training_curves(
            history, os.path.join(output_dir, "training_curves.png")
        ),
        "confusion_matrix": plots.confusion_matrix_plot(
            matrix,
            class_names,
            os.path.join(output_dir, "confusion_matrix.png"),
        ),
    }
    return {**metrics, "paths": paths, "model": probabilities}


def _inputs(x):
    # Keras's array adapters reject NumPy string arrays; TF takes lists.
    if x.dtype == object:
        import tensorflow as tf

        return tf.constant(list(x))
    return x


def _one_hot(labels, num_classes):
    return np.eye(num_classes, dtype="float32")[labels]


def _verbosity(verbose):
    if verbose != "auto":
        return verbose
    return 1 if sys.stdout.isatty() else 2
