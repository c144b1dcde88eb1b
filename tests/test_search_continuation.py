"""Hyperband continues promoted trials part-way through a plan's stage."""

import keras
import keras_tuner
import numpy as np
import pytest

from keras_hubkit.tuning import HubClassifierHyperModel


@pytest.mark.slow
def test_hyperband_continues_trials_inside_a_stage(image_model, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((24, 8, 8, 3), "float32")
    y = (x[..., 0].mean((1, 2)) > 0.5).astype(int)
    hypermodel = HubClassifierHyperModel(
        image_model,
        2,
        input_shape=(8, 8, 3),
        # A 3-epoch head stage: the bracket's second round starts at
        # epoch 2, inside it (the runner looked for a backup there).
        head_epochs=[3],
        unfreeze_groups=[1],
        dropout=[0.0],
    )
    tuner = keras_tuner.Hyperband(
        hypermodel,
        objective="val_loss",
        max_epochs=6,
        factor=3,
        hyperband_iterations=1,
        directory=str(tmp_path),
        seed=1,
    )
    keras.utils.set_random_seed(0)
    tuner.search(x, y, validation_data=(x, y), verbose=0)
    trials = list(tuner.oracle.trials.values())
    continued = [
        t for t in trials if t.hyperparameters.values.get("tuner/initial_epoch")
    ]
    assert continued, "no trial was continued"
    assert {t.status for t in trials} == {"COMPLETED"}
