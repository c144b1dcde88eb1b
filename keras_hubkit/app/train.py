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
from keras_hubkit import serving
from keras_hubkit.app import data as data_lib
from keras_hubkit.app import plots
from keras_hubkit.classifier import image_classifier
from keras_hubkit.classifier import text_classifier
from keras_hubkit.export import export_saved_model
from keras_hubkit.finetune import Stage
from keras_hubkit.finetune import StagedFineTuner
from keras_hubkit.finetune import find_for_plan
from keras_hubkit.image_spec import get_expected_image_size

OPTIMIZERS = {
    "sgd": lambda lr, m: keras.optimizers.SGD(lr, momentum=m),
    "adam": lambda lr, m: keras.optimizers.Adam(lr),
    "adamw": lambda lr, m: keras.optimizers.AdamW(lr),
    "rmsprop": lambda lr, m: keras.optimizers.RMSprop(lr, momentum=m),
}

DEFAULT_STAGES = [
    {"epochs": 5, "lr": 0.005, "optimizer": "sgd", "momentum": 0.9},
]
# Stands in for `lr = "find"` until the range test replaces it.
FIND_PLACEHOLDER_LR = DEFAULT_STAGES[0]["lr"]


def _stages_and_find(stage_configs):
    """The plan, and whether its first rate is `"find"` (`lr_find` picks it;
    until then the default rate stands in, so later rates keep their
    ratio to it)."""
    configs = [dict(c) for c in stage_configs or DEFAULT_STAGES]
    find = bool(configs) and configs[0].get("lr") == "find"
    if find:
        configs[0]["lr"] = FIND_PLACEHOLDER_LR
    return stages_from_config(configs), find


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
        return data_lib.image_folder(path)
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

    Images are streamed from disk through `tf.data`, resized to the size
    the model was traced for (`hk.get_expected_image_size`; a recipe's
    `image_size` for models that take any size) and optionally augmented
    (`[data] augment`). The exported SavedModel serves: see
    `keras_hubkit.serving.classifier_signatures`.

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
        InputSpecError: the handle is not an image model (image data), or
            `image_size` differs from the size the model was traced for.
    """
    with output_folder(output_dir, overwrite):
        data_config = recipe.get("data", {})
        dataset, train, val, test = split_data(data_config)
        model = build_model(recipe.get("model", {}), dataset, data_config)
        smoothing = float(recipe.get("model", {}).get("label_smoothing", 0.1))
        loss = keras.losses.CategoricalCrossentropy(
            from_logits=True, label_smoothing=smoothing
        )
        started = time.perf_counter()
        training = pipeline(train, model, data_config, training=True)
        stages, find = _stages_and_find(recipe.get("stages"))
        if find:
            # The range test picks the first stage's rate; later stages
            # keep their ratio to it. Its plot lands beside the results.
            _, stages = find_for_plan(
                model, training, None, stages, loss=loss, output_dir=output_dir
            )
        history = StagedFineTuner(
            model,
            stages,
            loss=loss,
            metrics=["accuracy"],
            rollback=bool(recipe.get("train", {}).get("rollback", True)),
        ).run(
            training,
            validation_data=pipeline(val, model, data_config) if val else None,
            verbose=_verbosity(verbose),
            shuffle=False,  # the pipeline reshuffles every epoch
        )
        seconds = time.perf_counter() - started
        return _finish(
            model,
            history,
            pipeline(test, model, data_config),
            test,
            dataset.class_names,
            output_dir,
            recipe.get("output", {}),
            seconds,
        )


def pipeline(dataset, model, data_config, training=False):
    """The `tf.data` input of `model` over `dataset` (see `[data]`).

    Training data is reshuffled every epoch and augmented when the recipe
    says `augment`; images are resized to the model's input size.
    """
    batch_size = int(data_config.get("batch_size", 32))
    seed = int(data_config.get("seed", 0))
    if dataset.kind == "text":
        return data_lib.text_pipeline(
            dataset, batch_size=batch_size, shuffle=training, seed=seed
        )
    height, width, channels = model.inputs[0].shape[1:]
    augment = data_config.get("augment") if training else None
    return data_lib.image_pipeline(
        dataset,
        (height, width),
        channels=channels,
        batch_size=batch_size,
        shuffle=training,
        seed=seed,
        augment=data_lib.augmentation(augment, seed),
    )


def in_memory(recipe, *datasets):
    """Image datasets as float arrays at the model's size (for searches,
    whose cached features need arrays); text datasets as they are."""
    data_config = recipe.get("data", {})
    result = []
    for dataset in datasets:
        if dataset is None or dataset.kind != "image":
            result.append(dataset)
            continue
        size = data_config.get("image_size") or get_expected_image_size(
            recipe.get("model", {}).get("handle"), default=(224, 224)
        )
        images = data_lib.image_pipeline(dataset, tuple(size))
        x = np.concatenate([batch for batch, _ in images.as_numpy_iterator()])
        result.append(
            data_lib.Dataset(x, dataset.y, dataset.class_names, "image")
        )
    return result


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


def build_model(model_config, dataset, data_config=None):
    """The classifier a recipe's `[model]` table describes, for `dataset`.

    Raises:
        RecipeError: the table has no handle.
        InputSpecError: image data and a model that does not take images,
            or an `image_size` other than the model's.
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
    if dataset.kind == "text":
        return text_classifier(handle, num_classes, **config)
    size = (data_config or {}).get("image_size")
    return image_classifier(
        handle,
        num_classes,
        image_size=tuple(size) if size else None,
        **config,
    )


def _finish(
    model, history, test_data, test, class_names, output_dir, output, seconds
):
    probabilities = keras.Model(
        model.input, keras.layers.Softmax(name="probabilities")(model.output)
    )
    predicted = np.argmax(probabilities.predict(test_data, verbose=0), axis=1)
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
        tflite=output.get("tflite", False) and _tflite_signature(test.kind),
        overwrite=True,
        signatures=serving.classifier_signatures(
            probabilities, class_names, test.kind
        ),
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


def _tflite_signature(kind):
    # TFLite has no image decoding: convert the float-image signature.
    return serving.FLOAT_SIGNATURE if kind == "image" else "serving_default"


def _verbosity(verbose):
    if verbose != "auto":
        return verbose
    return 1 if sys.stdout.isatty() else 2
