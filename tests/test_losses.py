"""hk.losses: the search trials' loss for the labels users give."""

import keras
import numpy as np
import pytest

import keras_hubkit as hk


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_class_crossentropy_takes_indices_and_one_hot(smoothing):
    logits = np.array([[0.1, 0.2, 3.0], [2.0, 0.1, 0.3], [0.5, 1.5, 0.0]])
    labels = np.array([2, 0, 0])
    one_hot = np.eye(3)[labels]
    expected = keras.losses.CategoricalCrossentropy(
        from_logits=True, label_smoothing=smoothing
    )(one_hot, logits)
    loss = hk.losses.ClassCrossentropy(3, label_smoothing=smoothing)
    for y in (labels, labels[:, None], one_hot):
        assert float(loss(y, logits)) == pytest.approx(float(expected))


def test_class_crossentropy_round_trips_in_a_keras_file(tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(loss=hk.losses.ClassCrossentropy(3, label_smoothing=0.1))
    path = tmp_path / "m.keras"
    model.save(path)
    loss = keras.models.load_model(path).loss
    assert isinstance(loss, hk.losses.ClassCrossentropy)
    assert (loss.num_classes, loss.label_smoothing) == (3, 0.1)
