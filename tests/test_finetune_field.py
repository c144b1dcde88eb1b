"""The staged runner as an outsider used it: starting part-way through a
stage, a backup killed between its files, validation split off the
training arrays, arguments `fit` takes in other forms, and callbacks the
runner cannot honour."""

import json
import os

import keras
import numpy as np
import pytest

import keras_hubkit as hk
from keras_hubkit import errors
from keras_hubkit.finetune import Stage
from keras_hubkit.finetune import StagedFineTuner
from keras_hubkit.finetune import callbacks as cb

from helpers import hub_classifier as _model
from helpers import image_data as _data

SCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _weights(model):
    return [w.numpy().copy() for w in model.weights]


def test_initial_epoch_inside_a_stage_starts_there(image_model):
    # A promoted Hyperband trial continues part-way through a stage, with
    # no backup: the runner used to look for one and failed on `None`.
    x, y = _data()
    history = StagedFineTuner(
        _model(image_model),
        [Stage(2, lr=1e-2), Stage(2, unfreeze="all", lr=1e-3)],
        loss=SCE,
    ).run(x, y, batch_size=8, initial_epoch=1, verbose=0)
    assert history.epoch == [1, 2, 3]
    assert history.history["stage"] == [0, 1, 1]


def test_initial_epoch_inside_a_stage_with_an_empty_backup_dir(
    image_model, tmp_path
):
    x, y = _data()
    backup = str(tmp_path / "backup")
    history = StagedFineTuner(
        _model(image_model),
        [Stage(3, lr=1e-2)],
        loss=SCE,
        backup_dir=backup,
    ).run(x, y, batch_size=8, initial_epoch=2, verbose=0)
    assert history.epoch == [2]


@pytest.mark.parametrize(
    "initial_epoch, says",
    [(4, "inside the plan's 4 epochs"), (-1, "int >= 0"), (1.5, "int >= 0")],
)
def test_initial_epoch_outside_the_plan_is_refused(
    image_model, initial_epoch, says
):
    # `fit` trains nothing from past its end and says nothing; a user
    # continuing a run would think it trained.
    model = _model(image_model)
    before = _weights(model)
    x, y = _data()
    runner = StagedFineTuner(model, [Stage(1), Stage(3, "all")], loss=SCE)
    with pytest.raises(errors.StagePlanError, match=says):
        runner.run(x, y, batch_size=8, initial_epoch=initial_epoch)
    assert all(np.array_equal(a, b) for a, b in zip(before, _weights(model)))


def test_an_auto_plan_refuses_to_start_part_way(image_model):
    x, y = _data()
    runner = StagedFineTuner(
        _model(image_model),
        hk.finetune.AutoPlan(epochs=3),
        loss=SCE,
    )
    with pytest.raises(errors.StagePlanError, match="cannot start part-way"):
        runner.run(x, y, validation_data=(x, y), initial_epoch=1)


@pytest.mark.parametrize("killed_at", [2, 3])
def test_a_backup_killed_between_its_files_resumes_exactly(
    image_model, tmp_path, monkeypatch, killed_at
):
    """A kill after the weights are written and before the state names
    them (here: while the optimizer state is written) must leave the
    previous epoch's backup whole, so the resumed run ends where an
    uninterrupted one does."""
    x, y = _data()

    def plan():
        return [Stage(2, lr=1e-2), Stage(2, unfreeze="all", lr=1e-3)]

    def run(model, backup):
        return StagedFineTuner(
            model, plan(), loss=SCE, backup_dir=backup, rollback=False
        ).run(x, y, batch_size=8, shuffle=False, verbose=0)

    model = _model(image_model)
    run(model, str(tmp_path / "reference"))
    expected = _weights(model)

    # The optimizer state is written with `np.savez`, after the weights.
    savez, calls = np.savez, []

    def killed(*args):
        calls.append(args)
        if len(calls) == killed_at:
            raise KeyboardInterrupt("killed while writing the backup")
        return savez(*args)

    backup = str(tmp_path / "backup")
    monkeypatch.setattr(np, "savez", killed)
    with pytest.raises(KeyboardInterrupt):
        run(_model(image_model), backup)
    monkeypatch.setattr(np, "savez", savez)
    with open(cb.state_path(backup)) as f:
        state = json.load(f)
    # The state still names whole files of the epoch before the kill.
    assert os.path.exists(cb.weights_path(backup, state))

    model = _model(image_model, seed=99)  # other initial weights
    resumed = run(model, backup)
    assert resumed.epoch == [0, 1, 2, 3]
    for got, want in zip(_weights(model), expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # Only the files the last state names are left.
    with open(cb.state_path(backup)) as f:
        tag = json.load(f)["files"]
    left = [n for n in os.listdir(backup) if n.startswith("backup-")]
    assert left and all(tag in n for n in left)


def test_a_backup_from_before_tagged_files_still_resumes(image_model, tmp_path):
    """Backups of 0.1 have fixed file names and no `files` entry."""
    x, y = _data()
    backup = str(tmp_path / "backup")
    runner = StagedFineTuner(
        _model(image_model), [Stage(2, lr=1e-2)], loss=SCE, backup_dir=backup
    )
    runner.run(x, y, batch_size=8, shuffle=False, verbose=0)
    with open(cb.state_path(backup)) as f:
        state = json.load(f)
    tag = state.pop("files")
    os.replace(
        cb.weights_path(backup, {"files": tag}),
        os.path.join(backup, "backup.weights.h5"),
    )
    os.replace(
        os.path.join(backup, f"backup-{tag}.optimizer.npz"),
        os.path.join(backup, "optimizer.npz"),
    )
    # As if written after the first epoch, in the first stage.
    state["completed_epochs"], state["epoch"], state["stage"] = 1, [0], 0
    state["history"] = {k: v[:1] for k, v in state["history"].items()}
    with open(cb.state_path(backup), "w") as f:
        json.dump(state, f)
    model = _model(image_model, seed=5)
    history = StagedFineTuner(
        model, [Stage(2, lr=1e-2)], loss=SCE, backup_dir=backup
    ).run(x, y, batch_size=8, shuffle=False, verbose=0)
    assert history.epoch == [0, 1]
    assert not os.path.exists(os.path.join(backup, "backup.weights.h5"))
    assert not os.path.exists(os.path.join(backup, "optimizer.npz"))


def test_validation_split_is_validation(image_model):
    """Split off the training arrays, the validation part is monitored,
    stages are compared (rollback), and schedules are sized on the
    training part."""
    x, y = _data()
    history = StagedFineTuner(
        _model(image_model),
        [Stage(1, lr=1e-2), Stage(1, unfreeze="all", lr=1e-3)],
        loss=SCE,
    ).run(x, y, batch_size=8, validation_split=0.5, verbose=0)
    assert "val_loss" in history.history
    # Guarded: each stage's end value is kept to compare with the next.
    assert all(v is not None for v in history.stage_values)

    model = _model(image_model)
    StagedFineTuner(
        model, [Stage(2, unfreeze="all", lr=1e-2, schedule="cosine")], loss=SCE
    ).run(x, y, batch_size=8, validation_split=0.5, verbose=0)
    # 16 training examples of 8: 2 steps an epoch, 4 in the stage; the
    # cosine ends at 0 there (sized on all 32, it stopped half-way).
    assert model.optimizer.iterations.numpy() == 4
    np.testing.assert_allclose(
        float(model.optimizer.learning_rate), 0.0, atol=1e-9
    )


def test_run_refuses_what_it_cannot_honour(image_model, tmp_path):
    x, y = _data()
    model = _model(image_model)
    before = _weights(model)
    runner = StagedFineTuner(model, [Stage(1)], loss=SCE)
    with pytest.raises(errors.StagePlanError, match="backup_dir"):
        runner.run(
            x,
            y,
            verbose=0,
            callbacks=[keras.callbacks.BackupAndRestore(str(tmp_path))],
        )
    with pytest.raises(errors.StagePlanError, match="epochs come from"):
        runner.run(x, y, epochs=5, verbose=0)
    with pytest.raises(errors.StagePlanError, match="ReduceLROnPlateau"):
        hk.finetune.fine_tune(
            model,
            x,
            y,
            epochs=1,
            loss=SCE,
            verbose=0,
            callbacks=[keras.callbacks.ReduceLROnPlateau(monitor="loss")],
        )
    for got, want in zip(_weights(model), before):
        np.testing.assert_array_equal(got, want)  # refused before training


def test_a_constant_rate_stage_takes_reduce_lr_on_plateau(image_model):
    x, y = _data()
    reduce = keras.callbacks.ReduceLROnPlateau(
        monitor="loss", patience=0, min_delta=10.0, factor=0.5
    )
    history = StagedFineTuner(
        _model(image_model), [Stage(3, lr=1e-2)], loss=SCE
    ).run(x, y, batch_size=8, verbose=0, callbacks=[reduce])
    # Logged at the end of each epoch, before that epoch's reduction.
    np.testing.assert_allclose(
        history.history["learning_rate"], [1e-2, 1e-2, 5e-3]
    )


def test_one_callback_and_the_runs_epochs(image_model):
    x, y = _data()
    seen = []

    class Params(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append((epoch, self.params["epochs"]))

    StagedFineTuner(
        _model(image_model),
        [Stage(1), Stage(2, unfreeze="all", lr=1e-4)],
        loss=SCE,
    ).run(x, y, batch_size=8, verbose=0, callbacks=Params())  # not a list
    # Callbacks given to the run see the run's epochs, as one fit.
    assert seen == [(0, 3), (1, 3), (2, 3)]


def test_a_monitor_that_is_never_logged_is_named(image_model, caplog):
    x, y = _data()
    with caplog.at_level("WARNING", logger="keras_hubkit"):
        history = StagedFineTuner(
            _model(image_model),
            [Stage(1), Stage(1, unfreeze="all", lr=1e-4)],
            loss=SCE,
            metrics=["accuracy"],
            monitor="val_acc",
        ).run(x, y, batch_size=8, validation_data=(x, y), verbose=0)
    said = [r.getMessage() for r in caplog.records]
    named = [m for m in said if "monitor='val_acc'" in m]
    assert len(named) == 1 and "val_accuracy" in named[0], said
    assert not any("validation_freq" in m for m in said)
    assert history.best_epoch is None


def test_rerunning_a_finished_backup_warns(image_model, tmp_path, caplog):
    x, y = _data()
    backup = str(tmp_path / "backup")

    def run():
        return StagedFineTuner(
            _model(image_model), [Stage(1)], loss=SCE, backup_dir=backup
        ).run(x, y, batch_size=8, verbose=0)

    run()
    with caplog.at_level("WARNING", logger="keras_hubkit"):
        history = run()
    assert history.epoch == [0]  # the finished run's, nothing trained
    assert any(
        "nothing is left to train" in r.getMessage() for r in caplog.records
    )


def test_fine_tune_on_data_of_unknown_length(image_model):
    import tensorflow as tf

    x, y = _data()
    data = (
        tf.data.Dataset.from_tensor_slices((x, y))
        .filter(lambda a, b: True)  # the length is now unknown
        .batch(8)
    )
    model = _model(image_model)
    with pytest.raises(errors.StagePlanError, match="steps_per_epoch"):
        hk.finetune.fine_tune(model, data, epochs=1, loss=SCE, verbose=0)
    history = hk.finetune.fine_tune(
        model, data.repeat(), epochs=1, loss=SCE, verbose=0, steps_per_epoch=4
    )
    assert len(history.epoch) == 2


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lr": -1.0},
        {"lr": "1e-3"},
        {"lr": float("inf")},
        {"early_stopping": -1},
        {"layer_decay": 0},
        {"warmup_fraction": "0.1"},
    ],
)
def test_stage_arguments_are_checked(kwargs):
    with pytest.raises(errors.StagePlanError, match=next(iter(kwargs))):
        Stage(1, **kwargs)


def test_fine_tune_checks_lr_mult(image_model):
    x, y = _data()
    with pytest.raises(errors.StagePlanError, match="lr_mult"):
        hk.finetune.fine_tune(
            _model(image_model), x, y, loss=SCE, lr_mult=0, verbose=0
        )


def test_a_kill_between_a_stages_snapshot_and_backup_keeps_its_rollback(
    image_model, tmp_path, monkeypatch
):
    """At a stage's end the runner writes the snapshot a rollback of the
    next stage returns to, then the backup. Killed between the two, the
    resumed run must still roll back the stage the uninterrupted run rolls
    back (the snapshot it needs used to be overwritten already)."""
    x, y = _data()

    def run(backup):
        model = _model(image_model)
        history = StagedFineTuner(
            model,
            [
                Stage(1, lr=1e-2),
                Stage(1, unfreeze="all", lr=50.0),  # diverges: rolled back
                Stage(1, lr=1e-2),
            ],
            loss=SCE,
            backup_dir=backup,
        ).run(
            x, y, batch_size=8, validation_data=(x, y), shuffle=False, verbose=0
        )
        return model, history

    model, reference = run(str(tmp_path / "reference"))
    assert [r["stage"] for r in reference.rollbacks] == [1]
    expected = _weights(model)

    save_backup = cb.save_backup

    def killed(model, directory, state):
        if state.get("snapshot") and state["snapshot"]["index"] == 1:
            raise KeyboardInterrupt("killed after stage 2's snapshot")
        return save_backup(model, directory, state)

    backup = str(tmp_path / "backup")
    monkeypatch.setattr(cb, "save_backup", killed)
    with pytest.raises(KeyboardInterrupt):
        run(backup)
    monkeypatch.setattr(cb, "save_backup", save_backup)
    model, resumed = run(backup)
    assert [r["stage"] for r in resumed.rollbacks] == [1]
    for got, want in zip(_weights(model), expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_temporary_files_a_kill_left_are_removed(image_model, tmp_path):
    x, y = _data()
    checkpoint = str(tmp_path / "best.weights.h5")
    backup = tmp_path / "backup"
    backup.mkdir()
    for stale in (
        f"{checkpoint}.0123abcd.tmp.weights.h5",
        str(backup / "state.json.0123abcd.tmp"),
        str(backup / "backup-0123456789ab.weights.h5"),
    ):
        open(stale, "w").close()
    StagedFineTuner(
        _model(image_model),
        [Stage(1)],
        loss=SCE,
        checkpoint_path=checkpoint,
        backup_dir=str(backup),
    ).run(x, y, batch_size=8, verbose=0)
    assert sorted(os.listdir(tmp_path)) == ["backup", "best.weights.h5"]
    with open(cb.state_path(str(backup))) as f:
        state = json.load(f)
    tags = (state["files"], state["snapshot"]["files"])
    # What the state names, and nothing else.
    for name in os.listdir(backup):
        assert name == "state.json" or any(t in name for t in tags), name


@pytest.mark.parametrize("where", ["run", "stage"])
def test_callbacks_that_are_not_keras_callbacks_are_named(image_model, where):
    x, y = _data()
    bad = [lambda: 1]
    stage = Stage(1, callbacks=bad if where == "stage" else [])
    runner = StagedFineTuner(_model(image_model), [stage], loss=SCE)
    given = bad if where == "run" else None
    with pytest.raises(
        errors.StagePlanError, match=r"keras\.callbacks\.Callback"
    ):
        runner.run(x, y, verbose=0, callbacks=given)
    with pytest.raises(
        errors.StagePlanError, match=r"keras\.callbacks\.Callback"
    ):
        runner.run(x, y, verbose=0, callbacks="abc")


def test_backup_and_restore_in_a_stage_is_refused(image_model, tmp_path):
    x, y = _data()
    restore = keras.callbacks.BackupAndRestore(str(tmp_path))
    runner = StagedFineTuner(
        _model(image_model), [Stage(1, callbacks=[restore])], loss=SCE
    )
    with pytest.raises(errors.StagePlanError, match=r"Stage\.callbacks"):
        runner.run(x, y, verbose=0)
