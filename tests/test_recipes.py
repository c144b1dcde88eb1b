"""Recipes, `hubkit train/run/export`, and bad-data errors, on tiny data."""

import csv
import json
import os
import pathlib

import numpy as np
import pytest
import tensorflow as tf

import keras_hubkit as hk
from keras_hubkit import errors
from keras_hubkit.app import cli
from keras_hubkit.app import data as data_lib
from keras_hubkit.app.recipe import load_recipe

RECIPES = pathlib.Path(__file__).resolve().parents[1] / "recipes"
WORDS = {
    "pets": ["the cat sat", "dog ran on the mat", "cat and dog"],
    "greetings": ["hello", "hello hello", "hello the world"],
}


def _write_images(folder, classes=("red", "blue"), n=6, size=8, fmt="PNG"):
    from PIL import Image

    colors = {
        "red": (220, 30, 30),
        "blue": (30, 30, 220),
        "green": (30, 200, 30),
    }
    rng = np.random.default_rng(0)
    for name in classes:
        os.makedirs(folder / name, exist_ok=True)
        for i in range(n):
            pixels = np.clip(
                np.array(colors[name]) + rng.integers(-20, 20, (size, size, 3)),
                0,
                255,
            ).astype("uint8")
            ext = "png" if fmt == "PNG" else "jpg"
            Image.fromarray(pixels).save(folder / name / f"{i}.{ext}", fmt)
    return folder


def _write_texts(folder, n=4):
    for name, sentences in WORDS.items():
        os.makedirs(folder / name, exist_ok=True)
        for i in range(n):
            (folder / name / f"{i}.txt").write_text(
                sentences[i % len(sentences)]
            )
    return folder


def _write_csv(path, n=4):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["review", "sentiment"])
        for name, sentences in WORDS.items():
            for i in range(n):
                writer.writerow([sentences[i % len(sentences)], name])
    return path


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    return _write_images(tmp_path_factory.mktemp("images") / "data")


@pytest.fixture(scope="module")
def text_dir(tmp_path_factory):
    return _write_texts(tmp_path_factory.mktemp("texts") / "data")


def _check_outputs(out, class_names, x):
    for name in (
        "labels.txt",
        "metrics.json",
        "training_curves.png",
        "confusion_matrix.png",
    ):
        assert (out / name).stat().st_size > 0, name
    assert (out / "labels.txt").read_text().split() == class_names
    assert (out / "saved_model" / "labels.txt").read_text().split() == (
        class_names
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    assert (
        np.array(metrics["confusion_matrix"]).sum()
        == (metrics["test_examples"])
    )
    exported = hk.load(str(out / "saved_model"))
    serve = exported.signatures["serving_default"]
    (name,) = serve.structured_input_signature[1]
    outputs = serve(**{name: x})
    np.testing.assert_allclose(
        np.sum(outputs["probabilities"], axis=1), 1.0, rtol=1e-5
    )
    assert set(outputs["classes"].numpy().ravel()) == {
        n.encode() for n in class_names
    }
    return outputs


def _encoded(folder, count):
    """The first `count` image files of `folder`, as serving input."""
    files = sorted(pathlib.Path(folder).rglob("*.png"))[:count]
    return tf.constant([f.read_bytes() for f in files])


def _pixels(folder, size):
    """Every image of `folder` as the trained model sees it."""
    dataset = data_lib.image_folder(str(folder))
    batches = data_lib.image_pipeline(dataset, size).as_numpy_iterator()
    return np.concatenate([x for x, _ in batches])


@pytest.mark.slow
def test_image_recipe(image_dir, image_model, tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        cli.main(
            [
                "run",
                str(RECIPES / "image_from_folders.toml"),
                "--set",
                f"data.path={image_dir}",
                "--set",
                "data.augment=true",
                "--set",
                f"model.handle={image_model}",
                "--set",
                "stages.0.epochs=2",
                "--set",
                "stages.1.epochs=1",
                "--set",
                "data.batch_size=4",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    assert "Test accuracy" in capsys.readouterr().out
    _check_outputs(out, ["blue", "red"], _encoded(image_dir, 3))


@pytest.mark.slow
def test_text_recipes(text_dir, text_model, tmp_path):
    out = tmp_path / "folders"
    assert (
        cli.main(
            [
                "run",
                str(RECIPES / "text_from_folders.toml"),
                "--set",
                f"data.path={text_dir}",
                "--set",
                f"model.handle={text_model}",
                "--set",
                "stages.0.epochs=1",
                "--set",
                "stages.1.epochs=1",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    _check_outputs(out, ["greetings", "pets"], tf.constant(["hello cat"]))

    csv_path = _write_csv(tmp_path / "reviews.csv")
    out = tmp_path / "csv"
    assert (
        cli.main(
            [
                "run",
                str(RECIPES / "text_from_csv.toml"),
                "--set",
                f"data.path={csv_path}",
                "--set",
                "data.text_column=review",
                "--set",
                "data.label_column=sentiment",
                "--set",
                f"model.handle={text_model}",
                "--set",
                "stages.0.epochs=1",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    _check_outputs(out, ["greetings", "pets"], tf.constant(["the dog"]))


def test_exported_model_predicts_like_the_trained_one(
    image_dir, image_model, tmp_path
):
    from keras_hubkit.app.train import train_classifier

    recipe = {
        "data": {
            "kind": "image_folder",
            "path": str(image_dir),
            "test_split": 0.25,
        },
        "model": {"handle": image_model},
        "stages": [{"epochs": 1, "lr": 0.01}],
    }
    result = train_classifier(recipe, str(tmp_path), verbose=0)
    x = _pixels(image_dir, (8, 8))
    trained = result["model"].predict(x, verbose=0)
    exported = hk.HubLayer(result["paths"]["saved_model"])
    np.testing.assert_allclose(exported(x), trained, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_cli_train_image_folder_and_csv(
    image_dir, image_model, text_model, tmp_path, capsys
):
    out = tmp_path / "img"
    assert (
        cli.main(
            [
                "train",
                "--data",
                str(image_dir),
                "--handle",
                image_model,
                "--output",
                str(out),
                "--epochs",
                "1",
                "--fine-tune-epochs",
                "1",
                "--tflite",
            ]
        )
        == 0
    )
    assert (out / "saved_model" / "model.tflite").exists()
    assert "saved_model" in capsys.readouterr().out
    csv_path = _write_csv(tmp_path / "r.csv")
    out = tmp_path / "csv"
    assert (
        cli.main(
            [
                "train",
                "--csv",
                str(csv_path),
                "--text-column",
                "review",
                "--label-column",
                "sentiment",
                "--handle",
                text_model,
                "--output",
                str(out),
                "--epochs",
                "1",
            ]
        )
        == 0
    )
    assert (out / "labels.txt").read_text().split() == ["greetings", "pets"]


def test_cli_export_re_saves_a_handle(image_model, tmp_path, capsys):
    dest = tmp_path / "copy"
    assert cli.main(["export", image_model, str(dest)]) == 0
    assert "reusable SavedModel" in capsys.readouterr().out
    assert hk.scan(str(dest)).safe
    assert cli.main(["export", image_model, str(dest)]) == 2  # exists
    assert "overwrite" in capsys.readouterr().err


def test_overrides_and_recipe_errors(tmp_path):
    recipe = load_recipe(
        RECIPES / "image_from_folders.toml",
        ["model.dropout=0.5", 'stages.1.unfreeze="all"', "data.path=x"],
    )
    assert recipe["model"]["dropout"] == 0.5
    assert recipe["stages"][1]["unfreeze"] == "all"
    assert recipe["data"]["path"].endswith(os.sep + "x")
    with pytest.raises(errors.RecipeError, match="key=value"):
        load_recipe(RECIPES / "text_from_csv.toml", ["model.dropout"])
    with pytest.raises(errors.RecipeError, match="Unknown recipe table"):
        load_recipe(RECIPES / "text_from_csv.toml", ["modle.dropout=1"])
    with pytest.raises(errors.RecipeError, match="does not exist"):
        load_recipe(tmp_path / "nope.toml")


# ------------------------------------------------------------- bad data
def test_empty_class_folder(tmp_path):
    folder = _write_images(tmp_path / "d")
    os.makedirs(folder / "empty")
    with pytest.raises(errors.DataError, match=r"empty has no image files"):
        data_lib.image_folder(str(folder))


def test_one_class_only(tmp_path):
    folder = _write_images(tmp_path / "d", classes=("red",))
    with pytest.raises(errors.DataError, match="at least two"):
        data_lib.image_folder(str(folder))


def test_unreadable_image(tmp_path):
    folder = _write_images(tmp_path / "d")
    (folder / "red" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(errors.DataError, match=r"broken\.png"):
        data_lib.image_folder(str(folder))


def test_images_of_any_size_stream_at_the_model_size(tmp_path):
    folder = _write_images(tmp_path / "d")
    _write_images(tmp_path / "big", classes=("blue",), n=1, size=12, fmt="JPEG")
    os.replace(tmp_path / "big" / "blue" / "0.jpg", folder / "blue" / "zz.jpg")
    dataset = data_lib.image_folder(str(folder))
    assert dataset.kind == "image" and len(dataset.x) == 13
    pipeline = data_lib.image_pipeline(dataset, (5, 7), batch_size=4)
    shapes = [x.shape for x, _ in pipeline.as_numpy_iterator()]
    assert shapes == [(4, 5, 7, 3)] * 3 + [(1, 5, 7, 3)]
    x, y = next(pipeline.as_numpy_iterator())
    assert x.dtype == np.float32 and 0.0 <= x.min() and x.max() <= 1.0
    assert y.shape == (4, 2)  # one-hot
    # Keras reads it inside the compiled step, where tf.data's autotuner
    # made epochs wait (docs/guides/finetuning.md): the pipeline runs
    # without it.
    assert pipeline.options().autotune.enabled is False


def test_augmentation_runs_only_in_training(tmp_path):
    dataset = data_lib.image_folder(str(_write_images(tmp_path / "d")))
    augment = data_lib.augmentation({"rotation": 0.25, "zoom": 0.0})
    plain = data_lib.image_pipeline(dataset, (8, 8), batch_size=12)
    augmented = data_lib.image_pipeline(
        dataset, (8, 8), batch_size=12, augment=augment
    )
    x_plain = next(plain.as_numpy_iterator())[0]
    x_augmented = next(augmented.as_numpy_iterator())[0]
    assert x_plain.shape == x_augmented.shape
    assert not np.allclose(x_plain, x_augmented)
    assert data_lib.augmentation(False) is None
    with pytest.raises(errors.RecipeError, match="shear"):
        data_lib.augmentation({"shear": 0.2})


def test_csv_without_the_named_columns(tmp_path):
    path = _write_csv(tmp_path / "r.csv")
    with pytest.raises(errors.DataError, match=r"column 'text'.*review"):
        data_lib.text_csv(str(path))


def test_cli_reports_bad_data_without_traceback(tmp_path, image_model, capsys):
    folder = _write_images(tmp_path / "d", classes=("red",))
    code = cli.main(
        [
            "train",
            "--data",
            str(folder),
            "--handle",
            image_model,
            "--output",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2
    assert "DataError" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # a failed run leaves no folder


def test_cli_train_refuses_a_full_output_folder(
    image_dir, image_model, tmp_path, capsys
):
    out = tmp_path / "o"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    args = ["train", "--data", str(image_dir), "--handle", image_model]
    assert cli.main([*args, "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "OutputExistsError" in err and "--overwrite" in err
    assert (out / "notes.txt").read_text() == "mine"


def test_cli_train_with_the_wrong_model_kind(
    text_dir, image_model, tmp_path, capsys
):
    # Text files fed to an image model: one readable line, no Keras colours.
    args = ["train", "--data", str(text_dir), "--text", "--handle", image_model]
    assert cli.main([*args, "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "\x1b[" not in err and "string" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_tuned_recipe_searches_then_retrains(image_dir, image_model, tmp_path):
    out = tmp_path / "tuned"
    assert (
        cli.main(
            [
                "run",
                str(RECIPES / "image_tuned.toml"),
                "--set",
                f"data.path={image_dir}",
                "--set",
                f"model.handle={image_model}",
                "--set",
                "search.max_trials=2",
                "--set",
                "search.epochs=2",
                "--set",
                "search.head_epochs=[1]",
                "--output",
                str(out),
            ]
        )
        == 0
    )
    assert "| trial |" in (out / "trials.md").read_text()
    assert (out / "search.png").stat().st_size > 0
    _check_outputs(out, ["blue", "red"], _encoded(image_dir, 2))


def test_lr_find_picks_the_first_rate(image_dir, image_model, tmp_path):
    """`lr = "find"` (`hubkit train --lr find`): the range test runs before
    training and its plot and numbers land beside the results."""
    from keras_hubkit.app import train as train_lib

    recipe = {
        "data": {"kind": "image_folder", "path": str(image_dir)},
        "model": {"handle": image_model},
        "stages": [
            {"epochs": 1, "lr": "find", "optimizer": "sgd", "momentum": 0.9}
        ],
        "train": {"rollback": False},
    }
    out = tmp_path / "run"
    train_lib.train_classifier(recipe, str(out), verbose=0)
    assert (out / "lr_find.png").stat().st_size > 0
    found = json.loads((out / "lr_find.json").read_text())
    assert found["suggestion"] > 0
    assert (out / "saved_model" / "saved_model.pb").exists()


def test_cli_lr_accepts_find_or_a_positive_number():
    parser = cli.build_parser()
    args = parser.parse_args(
        [
            "train",
            "--data",
            "d",
            "--handle",
            "h",
            "--output",
            "o",
            "--lr",
            "find",
        ]
    )
    assert args.lr == "find"
    with pytest.raises(SystemExit):
        parser.parse_args(
            [
                "train",
                "--data",
                "d",
                "--handle",
                "h",
                "--output",
                "o",
                "--lr",
                "-1",
            ]
        )
