"""Recipe overrides, data splits and labels (no TensorFlow)."""

import pathlib

import numpy as np
import pytest

from keras_hubkit import constants
from keras_hubkit import errors
from keras_hubkit._arrays import model_input
from keras_hubkit._arrays import one_hot
from keras_hubkit.app import data as data_lib
from keras_hubkit.app.plots import confusion_matrix
from keras_hubkit.app.recipe import apply_overrides
from keras_hubkit.app.recipe import load_recipe

RECIPES = pathlib.Path(__file__).resolve().parents[2] / "recipes"


def test_overrides_parse_json_and_address_stages():
    recipe = {"model": {"handle": "h"}, "stages": [{"epochs": 1}]}
    new = apply_overrides(
        recipe,
        [
            "model.dropout=0.3",
            "stages.0.epochs=4",
            "data.image_size=[8, 8]",
            "model.name=base net",
            "output.tflite=true",
        ],
    )
    assert new == {
        "model": {"handle": "h", "dropout": 0.3, "name": "base net"},
        "stages": [{"epochs": 4}],
        "data": {"image_size": [8, 8]},
        "output": {"tflite": True},
    }
    assert recipe == {"model": {"handle": "h"}, "stages": [{"epochs": 1}]}


@pytest.mark.parametrize(
    "override, match",
    [
        ("model.dropout", "key=value"),
        ("modle.dropout=1", "Unknown recipe table"),
        ("stages.first.epochs=1", "stage number"),
    ],
)
def test_bad_overrides_say_how_to_write_them(override, match):
    with pytest.raises(errors.RecipeError, match=match):
        apply_overrides({"stages": [{}]}, [override])


def test_recipe_paths_are_relative_to_the_recipe(tmp_path):
    recipe = load_recipe(
        RECIPES / "text_from_csv.toml", ["data.path=reviews.csv"]
    )
    assert recipe["data"]["path"] == str(RECIPES / "reviews.csv")
    bad = tmp_path / "bad.toml"
    bad.write_text("[data]\npath = 'x'\n[modle]\nhandle = 'h'\n")
    with pytest.raises(errors.RecipeError, match="unknown tables"):
        load_recipe(bad)
    with pytest.raises(errors.RecipeError, match="does not exist"):
        load_recipe(tmp_path / "missing.toml")


def test_split_is_stratified_and_seeded():
    y = np.array([0] * 10 + [1] * 5)
    dataset = data_lib.Dataset(np.arange(15), y, ["a", "b"])
    rest, held = dataset.split(0.2, seed=3)
    assert sorted(held.y.tolist()) == [0, 0, 1]
    assert len(rest.y) + len(held.y) == 15
    assert not set(rest.x) & set(held.x)
    again, _ = dataset.split(0.2, seed=3)
    np.testing.assert_array_equal(again.x, rest.x)
    assert dataset.split(0.0) == (dataset, None)


def test_one_split_default_for_every_run():
    # `hubkit train`, recipes and searches hold out the same fractions.
    assert constants.VALIDATION_SPLIT == 0.2
    assert constants.TEST_SPLIT == 0.2


def test_text_data_errors_name_the_fix(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("review,sentiment\ngood,pos\nbad,neg\n")
    with pytest.raises(errors.DataError, match="--text-column"):
        data_lib.text_csv(str(path))
    dataset = data_lib.text_csv(str(path), "review", "sentiment")
    assert dataset.class_names == ["neg", "pos"]
    assert dataset.y.tolist() == [1, 0]
    (tmp_path / "only" / "one").mkdir(parents=True)
    (tmp_path / "only" / "one" / "a.txt").write_text("x")
    with pytest.raises(errors.DataError, match="at least two"):
        data_lib.text_folder(str(tmp_path / "only"))
    with pytest.raises(errors.DataError, match="not a folder"):
        data_lib.text_folder(str(tmp_path / "missing"))


def test_one_hot_and_inputs():
    np.testing.assert_array_equal(one_hot([1, 0], 3), [[0, 1, 0], [1, 0, 0]])
    already = np.eye(2, dtype="float32")
    assert one_hot(already, 2) is already
    assert one_hot(None, 2) is None
    numbers = np.zeros((2, 3))
    assert model_input(numbers) is numbers


def test_confusion_matrix_counts():
    matrix = confusion_matrix([0, 0, 1, 1], [0, 1, 1, 1], ["a", "b"])
    assert matrix.tolist() == [[1, 1], [0, 2]]
