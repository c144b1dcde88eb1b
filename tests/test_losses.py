"""hk.losses: the search trials' loss for the labels users give."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

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


LOGITS = np.array([[0.1, 0.2, 3.0], [2.0, 0.1, 0.3], [0.5, 1.5, 0.0]])


@pytest.mark.parametrize(
    "labels, bad",
    [
        ([2, 0, 3], "3.0"),
        ([2, 0, -1], "-1.0"),
        ([2, 0.5, 1], "0.5"),
        ([[2], [0], [3]], "3.0"),  # a column of indices
    ],
)
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_class_crossentropy_rejects_labels_that_are_not_classes(
    labels, bad, smoothing
):
    loss = hk.losses.ClassCrossentropy(3, label_smoothing=smoothing)
    with pytest.raises(
        tf.errors.InvalidArgumentError, match=rf"0\.\.2 .*\n{re.escape(bad)}\n"
    ):
        loss(np.array(labels), LOGITS)


def _bad_label_fit(jit_compile):
    x = np.random.default_rng(0).random((16, 4), "float32")
    y = np.r_[np.zeros(15, int), 3]
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(
        optimizer="sgd",
        loss=hk.losses.ClassCrossentropy(3),
        jit_compile=jit_compile,
    )
    return model.fit(x, y, batch_size=8, epochs=1, verbose=0)


def test_class_crossentropy_fails_in_compiled_fit():
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"0\.\.2"):
        _bad_label_fit(jit_compile=False)


def test_class_crossentropy_is_nan_where_xla_drops_the_check():
    # XLA compiles assertions away (Keras's default on GPUs): the bad
    # label's loss is NaN, as with SparseCategoricalCrossentropy there.
    history = _bad_label_fit(jit_compile=True)
    assert np.isnan(history.history["loss"][-1])
