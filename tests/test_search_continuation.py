"""Hyperband continues promoted trials part-way through a plan's stage."""

import keras
import keras_tuner
import numpy as np

from keras_hubkit.tuning import HubClassifierHyperModel


def test_a_trial_continues_inside_a_stage(image_model):
    """What Hyperband does with a promoted trial: `fit` with its
    `tuner/initial_epoch` and `tuner/epochs`. Here the continuation starts
    at epoch 2, inside the 3-epoch head stage (the runner looked for a
    backup there and failed)."""
    rng = np.random.default_rng(0)
    x = rng.random((24, 8, 8, 3), "float32")
    y = (x[..., 0].mean((1, 2)) > 0.5).astype(int)
    hypermodel = HubClassifierHyperModel(
        image_model,
        2,
        input_shape=(8, 8, 3),
        head_epochs=[3],
        unfreeze_groups=[1],
        dropout=[0.0],
    )
    hp = keras_tuner.HyperParameters()
    keras.utils.set_random_seed(0)
    model = hypermodel.build(hp)
    history = hypermodel.fit(
        hp,
        model,
        x,
        y,
        epochs=6,
        initial_epoch=2,
        validation_data=(x, y),
        verbose=0,
    )
    assert history.epoch == [2, 3, 4, 5]
    assert model.get_layer("base").trainable  # it reached the unfrozen stage
