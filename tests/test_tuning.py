"""keras-tuner search of staged fine-tuning plans."""

import os
import subprocess
import sys
import textwrap

import keras
import keras_tuner
import numpy as np
import pytest
import tensorflow as tf

import keras_hubkit as hk
from keras_hubkit.app.search import search_report
from keras_hubkit.tuning import HubClassifierHyperModel

from helpers import free_port


def _data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 8, 8, 3), "float32")
    return x, (x[..., 0].mean((1, 2)) > 0.5).astype(int)


def _search(tuner, x, y, epochs=2):
    keras.utils.set_random_seed(0)
    tuner.search(x, y, epochs=epochs, validation_data=(x, y), verbose=0)
    return tuner


def _statuses(tuner):
    return sorted(t.status for t in tuner.oracle.trials.values())


@pytest.mark.parametrize("name", ["random", "bayesian", "hyperband", "grid"])
def test_every_tuner_completes(name, image_model, tmp_path):
    hypermodel = HubClassifierHyperModel(
        image_model,
        2,
        input_shape=(8, 8, 3),
        head_epochs=[1],
        unfreeze_groups=[0, 1],
        dropout=[0.0],
    )
    tuner = hk.tuning.make_tuner(
        name, hypermodel, max_trials=2, max_epochs=3, directory=str(tmp_path)
    )
    x, y = _data()
    _search(tuner, x, y, epochs=3)
    statuses = _statuses(tuner)
    assert statuses and set(statuses) == {"COMPLETED"}
    assert tuner.get_best_hyperparameters(1)[0].values["handle"] == (
        image_model
    )


def test_unfreeze_depth_shows_in_changed_weights(image_model, tmp_path):
    hypermodel = HubClassifierHyperModel(
        image_model,
        2,
        input_shape=(8, 8, 3),
        head_epochs=[1],
        unfreeze_groups=[1],
        dropout=[0.0],
        base_lr=(1e-2, 1e-2),
        layer_decay=(1.0, 1.0),
    )
    tuner = keras_tuner.RandomSearch(
        hypermodel, objective="val_loss", max_trials=1, directory=str(tmp_path)
    )
    x, y = _data()
    _search(tuner, x, y, epochs=3)
    best = tuner.get_best_models(1)[0]
    base = best.get_layer("base")
    original = tf.saved_model.load(image_model)
    found = {base.source_name(v): v.numpy() for v in base.weights}
    assert not np.allclose(found["block2/dense/kernel"], original.head.numpy())
    np.testing.assert_allclose(
        found["block1/conv/kernel"], original.kernel.numpy()
    )
    # The model as it was at the end of its trial: block2 trainable only.
    assert base.trainable
    assert [base.source_name(v) for v in base.trainable_weights] == [
        "block2/dense/kernel"
    ]


def test_cached_features_match_uncached(image_model, tmp_path, monkeypatch):
    x, y = _data()
    counts = {"clear_session": 0, "save_weights": 0}
    clear, save = keras.backend.clear_session, keras.Model.save_weights

    def counting_clear(*args, **kwargs):
        counts["clear_session"] += 1
        return clear(*args, **kwargs)

    def counting_save(self, *args, **kwargs):
        counts["save_weights"] += 1
        return save(self, *args, **kwargs)

    monkeypatch.setattr(keras.backend, "clear_session", counting_clear)
    monkeypatch.setattr(keras.Model, "save_weights", counting_save)
    found = {}
    for cache in (False, True):
        counts.update(clear_session=0, save_weights=0)
        hypermodel = HubClassifierHyperModel(
            image_model,
            2,
            input_shape=(8, 8, 3),
            head_epochs=[3],
            unfreeze_groups=[0],
            dropout=[0.2],  # same masks both ways
            head_widths=[0, 4],
            label_smoothing=[0.0, 0.1],
            cache_features=cache,
        )
        tuner = keras_tuner.GridSearch(
            hypermodel,
            objective="val_loss",
            max_trials=4,
            directory=str(tmp_path),
            project_name=f"cache_{cache}",
        )
        _search(tuner, x, y, epochs=3)
        trials = sorted(tuner.oracle.trials.values(), key=lambda t: t.trial_id)
        assert [t.status for t in trials] == ["COMPLETED"] * 4
        best_trial = tuner.oracle.get_best_trials(1)[0]
        best = tuner.get_best_models(1)[0]
        loss = keras.losses.CategoricalCrossentropy(
            from_logits=True,
            label_smoothing=best_trial.hyperparameters["label_smoothing"],
        )
        found[cache] = {
            "scores": [t.score for t in trials],
            # get_best_models gives the best epoch's weights back.
            "reloaded": float(loss(np.eye(2)[y], best.predict(x, verbose=0))),
            # ... compiled: it evaluates on the class indices given to
            # search, to the trial's loss (label smoothing included).
            "evaluated": best.evaluate(x, y, verbose=0, return_dict=True)[
                "loss"
            ],
            "best": best_trial.score,
            **counts,
        }
    uncached, cached = found[False], found[True]
    assert cached["scores"] == pytest.approx(uncached["scores"], rel=1e-4)
    assert cached["reloaded"] == pytest.approx(cached["best"], rel=1e-4)
    assert uncached["reloaded"] == pytest.approx(uncached["best"], rel=1e-4)
    for run in (cached, uncached):
        assert run["evaluated"] == pytest.approx(run["best"], rel=1e-4)
    assert hypermodel.cached_feature_sets == 1  # computed once, reused
    # Two head shapes (linear, 4 wide): two compiled heads for 4 trials.
    assert hypermodel.compiled_heads == 2
    # Head-only trials on features skip keras-tuner's session reset and
    # write its checkpoint once per trial.
    assert uncached["clear_session"] >= 4 and cached["clear_session"] == 0
    assert cached["save_weights"] == 4 < uncached["save_weights"]


def _frozen_plan_hypermodel(image_model):
    # Three classes; the plan unfreezes both groups after 2 head epochs.
    return HubClassifierHyperModel(
        image_model,
        3,
        input_shape=(8, 8, 3),
        head_epochs=[2],
        unfreeze_groups=[2],
        dropout=[0.0],
    )


def _three_classes(n=40, seed=0):
    x, _ = _data(n, seed)
    return x, np.random.default_rng(seed).integers(0, 3, n)


def _regularization(model):
    return sum(float(loss) for loss in model.losses)


def _loss(model, x, y):
    return model.evaluate(x, y, verbose=0, return_dict=True)["loss"]


def test_best_model_is_frozen_when_its_trial_never_unfroze(
    image_model, tmp_path
):
    # 2 epochs of a plan with 2 head epochs: the base never trained.
    hypermodel = _frozen_plan_hypermodel(image_model)
    tuner = keras_tuner.RandomSearch(
        hypermodel, objective="val_loss", max_trials=1, directory=str(tmp_path)
    )
    x, y = _three_classes()
    _search(tuner, x, y, epochs=2)
    trial = tuner.oracle.get_best_trials(1)[0]
    assert [s.name for s in hypermodel.plan(trial.hyperparameters, 2)] == [
        "head"
    ]
    best = tuner.get_best_models(1)[0]
    assert not best.get_layer("base").trainable
    # The SavedModel's regularization loss counts only while it trains.
    assert _regularization(best) == 0.0
    assert _loss(best, x, y) == pytest.approx(trial.score)


def test_best_model_ends_where_a_callback_stopped_its_trial(
    image_model, tmp_path
):
    class StopAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = True

    hypermodel = HubClassifierHyperModel(
        image_model,
        3,
        input_shape=(8, 8, 3),
        head_epochs=[1],
        unfreeze_groups=[2],
        dropout=[0.0],
    )
    tuner = keras_tuner.RandomSearch(
        hypermodel, objective="val_loss", max_trials=1, directory=str(tmp_path)
    )
    x, y = _three_classes()
    keras.utils.set_random_seed(0)
    tuner.search(
        x,
        y,
        epochs=3,
        validation_data=(x, y),
        callbacks=[StopAfterFirstEpoch()],
        verbose=0,
    )
    # The plan unfreezes at epoch 2; the callback ended the trial before.
    best = tuner.get_best_models(1)[0]
    assert not best.get_layer("base").trainable
    trial = tuner.oracle.get_best_trials(1)[0]
    assert _loss(best, x, y) == pytest.approx(trial.score)


def test_hyperband_best_model_keeps_its_trainability_when_reloaded(
    image_model, tmp_path
):
    def tuner(hypermodel, overwrite):
        # One bracket: a trial of 2 epochs, which does not unfreeze.
        return keras_tuner.Hyperband(
            hypermodel,
            objective="val_loss",
            max_epochs=2,
            factor=3,
            directory=str(tmp_path),
            overwrite=overwrite,
        )

    x, y = _three_classes()
    searched = _search(tuner(_frozen_plan_hypermodel(image_model), True), x, y)
    # A new hypermodel has no record of the trial: as in a new process,
    # the trial's saved `tuner/epochs` tells.
    reloaded = tuner(_frozen_plan_hypermodel(image_model), False)
    trial = reloaded.oracle.get_best_trials(1)[0]
    assert trial.hyperparameters.values["tuner/epochs"] == 2
    for current in (searched, reloaded):
        best = current.get_best_models(1)[0]
        assert not best.get_layer("base").trainable
        assert _loss(best, x, y) == pytest.approx(trial.score)


def test_search_takes_class_indices_as_a_column(image_model, tmp_path):
    hypermodel = _frozen_plan_hypermodel(image_model)
    tuner = keras_tuner.RandomSearch(
        hypermodel, objective="val_loss", max_trials=1, directory=str(tmp_path)
    )
    x, y = _three_classes()
    column = y[:, None]
    _search(tuner, x, column, epochs=1)
    assert _statuses(tuner) == ["COMPLETED"]
    best = tuner.get_best_models(1)[0]
    trial = tuner.oracle.get_best_trials(1)[0]
    assert _loss(best, x, column) == pytest.approx(trial.score)


@pytest.mark.parametrize(
    "bad, match",
    [
        ("y", r"y to hold class indices in 0\.\.2 .* values -1\."),
        ("validation", r"validation_data to hold .* 0\.\.2 .* values 3\."),
        ("floats", r"y to hold .* values 0\.5, 7\.0\."),
        ("shape", r"Received: y of shape \(40, 2\)"),
    ],
)
def test_bad_labels_stop_the_search_before_any_training(
    bad, match, image_model, tmp_path, monkeypatch
):
    trained = []
    fit = keras.Model.fit

    def counting_fit(self, *args, **kwargs):
        trained.append(self)
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", counting_fit)
    x, y = _three_classes()
    y_val = y.copy()
    if bad == "y":
        y[5] = -1
    elif bad == "validation":
        y_val[7] = 3
    elif bad == "floats":
        y = y.astype("float32")
        y[[1, 2]] = [0.5, 7.0]
    else:
        y = np.eye(2)[y % 2]
    tuner = keras_tuner.RandomSearch(
        _frozen_plan_hypermodel(image_model),
        objective="val_loss",
        max_trials=2,
        directory=str(tmp_path),
    )
    with pytest.raises(hk.tuning.LabelError, match=match) as info:
        tuner.search(x, y, epochs=1, validation_data=(x, y_val), verbose=0)
    assert isinstance(info.value, hk.errors.DataError)
    assert isinstance(info.value, ValueError)
    assert "COMPLETED" not in _statuses(tuner)
    assert trained == []


def test_cached_and_unfrozen_trials_mix(image_model, tmp_path):
    # Head-only trials (cached, no session reset) and unfrozen trials
    # (uncached, with keras-tuner's reset) alternate in one search.
    hypermodel = HubClassifierHyperModel(
        image_model,
        2,
        input_shape=(8, 8, 3),
        head_epochs=[1],
        unfreeze_groups=[0, 1],
        dropout=[0.0],
        head_widths=[0, 4],
        cache_features=True,
    )
    tuner = keras_tuner.GridSearch(
        hypermodel, objective="val_loss", max_trials=4, directory=str(tmp_path)
    )
    x, y = _data()
    _search(tuner, x, y, epochs=2)
    assert _statuses(tuner) == ["COMPLETED"] * 4
    assert hypermodel.compiled_heads == 2
    for model in tuner.get_best_models(4):
        assert model.predict(x[:2], verbose=0).shape == (2, 2)


def test_fingerprints_follow_in_place_edits():
    from keras_hubkit.tuning import _Fingerprints

    fingerprints = _Fingerprints()
    x = np.zeros((64, 8), "float32")
    first = fingerprints.of(x)
    assert fingerprints.of(x) == first
    assert fingerprints.of(x.copy()) == first  # same content, same key
    x[5] = 1.0
    assert fingerprints.of(x) != first


def test_diverged_trial_fails_and_search_goes_on(image_model, tmp_path):
    class Diverging(HubClassifierHyperModel):
        def plan(self, hp, epochs):
            stages = super().plan(hp, epochs)
            if hp.get("dropout") == 0.2:
                stages[0].lr = float("inf")  # diverges at once
                stages[0].optimizer = lambda lr: keras.optimizers.SGD(lr)
            return stages

    hypermodel = Diverging(
        image_model,
        2,
        input_shape=(8, 8, 3),
        dropout=[0.0, 0.2],
        head_epochs=[2],
        unfreeze_groups=[0],
    )
    tuner = keras_tuner.GridSearch(
        hypermodel, objective="val_loss", max_trials=2, directory=str(tmp_path)
    )
    x, y = _data()
    _search(tuner, x, y)
    assert _statuses(tuner) == ["COMPLETED", "FAILED"]
    failed = next(
        t for t in tuner.oracle.trials.values() if t.status == "FAILED"
    )
    assert "NaN" in failed.message
    assert tuner.get_best_hyperparameters(1)[0].values["dropout"] == 0.0


@pytest.mark.parametrize("cache", [False, True])
def test_search_killed_mid_trial_resumes_without_repeats(
    cache, image_model, tmp_path
):
    calls = []
    kill = {"at_call": 2}

    class Counting(HubClassifierHyperModel):
        def fit(self, hp, model, *args, **kwargs):
            calls.append(hp.values["dropout"])
            if len(calls) == kill.get("at_call"):
                raise KeyboardInterrupt("killed mid-trial")
            return super().fit(hp, model, *args, **kwargs)

    def tuner():
        hypermodel = Counting(
            image_model,
            2,
            input_shape=(8, 8, 3),
            dropout=[0.0, 0.1, 0.2],
            head_epochs=[1],
            unfreeze_groups=[0],
            cache_features=cache,
        )
        # (GridSearch of keras-tuner 1.4.8 cannot reload its own state.)
        return keras_tuner.RandomSearch(
            hypermodel,
            objective="val_loss",
            max_trials=3,
            seed=7,
            directory=str(tmp_path),
            overwrite=False,
        )

    x, y = _data()
    with pytest.raises(KeyboardInterrupt):
        _search(tuner(), x, y)
    assert len(calls) == 2
    finished = calls[0]
    kill.clear()
    resumed = _search(tuner(), x, y)
    assert calls.count(finished) == 1  # the finished trial did not run again
    assert sorted(set(calls)) == [0.0, 0.1, 0.2]
    assert _statuses(resumed).count("COMPLETED") == 3


def test_search_report_table_and_plot(image_model, tmp_path):
    hypermodel = HubClassifierHyperModel(
        image_model,
        2,
        input_shape=(8, 8, 3),
        head_epochs=[1],
        unfreeze_groups=[0, 1],
        dropout=[0.0],
    )
    tuner = keras_tuner.GridSearch(
        hypermodel, objective="val_loss", max_trials=2, directory=str(tmp_path)
    )
    x, y = _data()
    _search(tuner, x, y)
    table = search_report(tuner, str(tmp_path / "report"))
    assert "unfreeze_groups" in table and "COMPLETED" in table
    assert (tmp_path / "report" / "search.png").stat().st_size > 0


def test_tensorboard_free_trials(image_model):
    from keras_tuner.src.engine import tuner as tuner_module

    HubClassifierHyperModel(image_model, 2, input_shape=(8, 8, 3))
    assert tuner_module.Tuner._configure_tensorboard_dir._hubkit_patched


_SEARCH = textwrap.dedent(
    """
    import os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import numpy as np, keras_tuner
    import keras_hubkit as hk
    rng = np.random.default_rng(0)
    x = rng.random((32, 8, 8, 3), "float32")
    y = (x[..., 0].mean((1, 2)) > 0.5).astype(int)
    hypermodel = hk.tuning.HubClassifierHyperModel(
        sys.argv[1], 2, input_shape=(8, 8, 3), head_epochs=[1],
        unfreeze_groups=[0, 1], dropout=[0.0, 0.2])
    tuner = keras_tuner.RandomSearch(
        hypermodel, objective="val_loss", max_trials=4,
        directory=sys.argv[2], project_name="distributed")
    tuner.search(x, y, epochs=2, validation_data=(x, y), verbose=0)
    print("DONE", os.environ["KERASTUNER_TUNER_ID"])
    """
)


@pytest.mark.slow
def test_distributed_search_chief_and_two_workers(image_model, tmp_path):
    port = str(free_port())
    procs = {}
    for tuner_id in ("chief", "tuner0", "tuner1"):
        env = {
            **os.environ,
            "KERASTUNER_TUNER_ID": tuner_id,
            "KERASTUNER_ORACLE_IP": "127.0.0.1",
            "KERASTUNER_ORACLE_PORT": port,
        }
        procs[tuner_id] = subprocess.Popen(
            [sys.executable, "-c", _SEARCH, image_model, str(tmp_path)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    outputs = {k: p.communicate(timeout=500) for k, p in procs.items()}
    for tuner_id in ("tuner0", "tuner1"):
        out, err = outputs[tuner_id]
        assert f"DONE {tuner_id}" in out, err[-3000:]
    trials = list((tmp_path / "distributed").glob("trial_*/trial.json"))
    assert len(trials) == 4
