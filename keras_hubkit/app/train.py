"""The pipeline `hubkit train` and recipes run.

Load data, train a classifier in stages, evaluate it on a held-out split,
and write the model, labels, metrics and pictures to an output folder.

Defaults follow TF Hub's `make_image_classifier`: label smoothing 0.1, SGD
0.005 with momentum 0.9, 20% of the training data held out for validation.
"""

import contextlib
import json
import os
import shutil
import sys
import time

import keras
import numpy as np

from keras_hubkit import constants
from keras_hubkit import errors
from keras_hubkit._arrays import model_input
from keras_hubkit._arrays import one_hot
from keras_hubkit.app import data as data_lib
from keras_hubkit.app import plots
from keras_hubkit.classifier import image_classifier
from keras_hubkit.classifier import text_classifier
from keras_hubkit.export import export_saved_model
from keras_hubkit.finetune import Stage
from keras_hubkit.finetune import StagedFineTuner

OPTIMIZERS = {
    "sgd": lambda lr, m: keras.optimizers.SGD(lr, momentum=m),
    "adam": lambda lr, m: keras.optimizers.Adam(lr),
    "adamw": lambda lr, m: keras.optimizers.AdamW(lr),
    "rmsprop": lambda lr, m: keras.optimizers.RMSprop(lr, momentum=m),
}

DEFAULT_STAGES = [
    {"epochs": 5, "lr": 0.005, "optimizer": "sgd", "momentum": 0.9},
]


def stages_from_config(stage_configs):
    """`Stage`s from recipe dicts (`optimizer` by name, `momentum`).

    Raises:
        RecipeError: an unknown optimizer or a stage setting `Stage` does
            not take.
    """
    stages = []
    for config in stage_configs or DEFAULT_STAGES:
        config = dict(config)
        name = config.pop("optimizer", "adam")
        momentum = config.pop("momentum", 0.0)
        if name not in OPTIMIZERS:
            raise errors.RecipeError(
                f"Expected an optimizer among {sorted(OPTIMIZERS)}. "
                f"Received: optimizer={name!r}. Fix the stage's optimizer."
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
            raise errors.RecipeError(
                f"Expected stage settings that `hk.finetune.Stage` takes. "
                f"Received: stage={config} ({e}). Fix or remove the setting."
            ) from e
    return stages


def load_data(config):
    """A `Dataset` from a recipe's `[data]` table.

    Raises:
        RecipeError: an unknown data kind.
        DataError: the data cannot be read (see `keras_hubkit.app.data`).
    """
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
        "Expected a data kind among image_folder, text_folder and text_csv. "
        f"Received: kind={kind!r}. Set [data] kind in the recipe."
    )


def split_data(config):
    """Loads a `[data]` table and splits it the one way every run does.

    Returns:
        `(dataset, train, validation, test)`; `validation` is None when the
        table's `validation_split` is 0.
    """
    dataset = load_data(config)
    seed = int(config.get("seed", 0))
    train, test = dataset.split(
        config.get("test_split", constants.TEST_SPLIT), seed
    )
    train, val = train.split(
        config.get("validation_split", constants.VALIDATION_SPLIT), seed
    )
    return dataset, train, val, test


def train_classifier(recipe, output_dir, verbose="auto", overwrite=False):
    """Trains, evaluates and exports a classifier described by `recipe`.

    Args:
        recipe: a dict with `data`, `model`, `stages`, `output` tables (see
            the recipes guide).
        output_dir: where results go; created, and removed again if the
            run fails before writing anything into it.
        verbose: Keras verbosity; "auto" shows a progress bar on a terminal
            and one line per epoch otherwise.
        overwrite: write into an `output_dir` that already holds files.

    Returns:
        A dict of results (metrics, paths).

    Raises:
        OutputExistsError: `output_dir` holds files and `overwrite` is off.
        RecipeError: the recipe is malformed.
        DataError: the data cannot be read.
    """
    with output_folder(output_dir, overwrite):
        data_config = recipe.get("data", {})
        dataset, train, val, test = split_data(data_config)
        model = build_model(recipe.get("model", {}), dataset)
        num_classes = len(dataset.class_names)
        smoothing = float(recipe.get("model", {}).get("label_smoothing", 0.1))
        loss = keras.losses.CategoricalCrossentropy(
            from_logits=True, label_smoothing=smoothing
        )
        started = time.perf_counter()
        history = StagedFineTuner(
            model,
            stages_from_config(recipe.get("stages")),
            loss=loss,
            metrics=["accuracy"],
        ).run(
            model_input(train.x),
            one_hot(train.y, num_classes),
            validation_data=(model_input(val.x), one_hot(val.y, num_classes))
            if val
            else None,
            batch_size=int(data_config.get("batch_size", 32)),
            verbose=_verbosity(verbose),
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


@contextlib.contextmanager
def output_folder(path, overwrite):
    """Creates `path` for a run; a failed run leaves no empty folder."""
    if os.path.isdir(path) and os.listdir(path) and not overwrite:
        raise errors.OutputExistsError(
            "Expected a new or empty output folder. Received: "
            f"output={path}, which holds files. Pass --overwrite (or "
            "overwrite=True), or choose another folder."
        )
    created = not os.path.exists(path)
    os.makedirs(path, exist_ok=True)
    try:
        yield
    except BaseException:
        if created and os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        raise


def build_model(model_config, dataset):
    """The classifier a recipe's `[model]` table describes, for `dataset`.

    Raises:
        RecipeError: the table has no handle.
    """
    config = dict(model_config)
    handle = config.pop("handle", None)
    if not handle:
        raise errors.RecipeError(
            "Expected a handle in the recipe's [model] table. Received: "
            "model.handle is missing. Set it (or pass --handle)."
        )
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
        probabilities.predict(model_input(test.x), verbose=0), axis=1
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


def _verbosity(verbose):
    if verbose != "auto":
        return verbose
    return 1 if sys.stdout.isatty() else 2
