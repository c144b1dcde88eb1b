"""Fine-tuning that never ends worse than the stage before: rollback, the
auto plan, resume after early stopping, whole-name group rates, held
statistics, lr_find, steps per execution, Keras-citizen `fine_tune`."""

import itertools
import json
import logging
import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_hubkit as hk
from keras_hubkit import _compat
from keras_hubkit import errors
from keras_hubkit.finetune import AutoPlan
from keras_hubkit.finetune import Stage
from keras_hubkit.finetune import StagedFineTuner
from keras_hubkit.finetune import _pipeline

from helpers import hub_classifier as _model
from helpers import image_data as _data

SCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _sgd(lr):
    return keras.optimizers.SGD(lr)


def _weights(model):
    return [w.numpy().copy() for w in model.weights]


def _assert_same(got, want):
    assert len(got) == len(want)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def _guarded_run(model, plan, **runner_kwargs):
    """Runs `plan` on `_data()` with it as validation data too."""
    x, y = _data()
    return StagedFineTuner(model, plan, loss=SCE, **runner_kwargs).run(
        x, y, validation_data=(x, y), batch_size=8, verbose=0
    )


class _Keep(keras.callbacks.Callback):
    """Records weights, optimizer state and trainable set at stage end."""

    def __init__(self, store):
        super().__init__()
        self.store = store

    def on_train_end(self, logs=None):
        self.store["weights"] = _weights(self.model)
        self.store["optimizer"] = [
            v.numpy().copy() for v in self.model.optimizer.variables
        ]
        self.store["trainable"] = [
            v.path for v in self.model.trainable_variables
        ]


class EfficientNetLike(tf.train.Checkpoint):
    """Variables named like a TF Hub EfficientNet's: `<model>/stem/...`,
    `<model>/blocks_0/...`, `<model>/head/...`."""

    def __init__(self):
        super().__init__()
        rng = np.random.default_rng(3)

        def var(shape, name):
            return tf.Variable(
                rng.normal(0, 0.3, shape).astype("float32"), name=name
            )

        self.stem = var((3, 4), "efficientnet/stem/conv2d/kernel")
        self.block = var((4, 4), "efficientnet/blocks_0/conv2d/kernel")
        self.top = var((4, 4), "efficientnet/head/conv2d/kernel")
        self.variables = [self.stem, self.block, self.top]
        self.trainable_variables = list(self.variables)
        self.regularization_losses = []

    @tf.function
    def __call__(self, x, training=False):
        h = tf.reduce_mean(x, axis=[1, 2])
        for kernel in (self.stem, self.block, self.top):
            h = tf.nn.relu(tf.matmul(h, kernel))
        return h


@pytest.fixture(scope="module")
def efficientnet_like(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("effnet") / "model")
    model = EfficientNetLike()
    for training in (True, False):
        model.__call__.get_concrete_function(
            tf.TensorSpec([None, 8, 8, 3], tf.float32), training=training
        )
    tf.saved_model.save(model, path)
    return path


# ------------------------------------------------------------- rollback
@pytest.mark.parametrize("lr", [1.0, 1e30])  # worse; NaN
def test_a_diverging_stage_is_rolled_back_bit_exactly(image_model, caplog, lr):
    model = _model(image_model)
    x, y = _data()
    kept = {}
    plan = [
        Stage(2, lr=1e-2, callbacks=[_Keep(kept)], name="head"),
        Stage(1, unfreeze="all", lr=lr, optimizer=_sgd, name="too hot"),
        Stage(1, lr=1e-9, name="after"),
    ]
    with caplog.at_level(logging.WARNING, logger="keras_hubkit"):
        history = _guarded_run(model, plan)
    diverged = lr > 1
    assert history.stopped_on_nan == diverged  # a NaN also ends the run
    assert [r["stage"] for r in history.rollbacks] == [1]
    rolled = history.rollbacks[0]
    assert diverged or rolled["value"] > rolled["reference"]
    assert history.stage_values[:2] == [rolled["reference"]] * 2
    if not diverged:  # the run went on from the rolled-back state
        assert history.history["stage"] == [0, 0, 1, 2]
        return
    assert "rolled back" in caplog.text and "ended with val_loss" in caplog.text
    _assert_same(_weights(model), kept["weights"])
    _assert_same(
        [v.numpy() for v in model.optimizer.variables], kept["optimizer"]
    )
    assert [v.path for v in model.trainable_variables] == kept["trainable"]
    # The rolled-back model scores what the head stage scored.
    loss = model.evaluate(x, y, verbose=0)
    assert loss == pytest.approx(rolled["reference"], rel=1e-5)


def test_stages_are_compared_without_regularization(image_model):
    # Unfreezing adds the SavedModel's regularization loss to Keras's
    # val_loss. A stage that changes nothing (SGD at rate 0) predicts
    # exactly what the frozen stage did, and is kept.
    model = _model(image_model)
    plan = [
        Stage(1, lr=1e-2),
        Stage(1, unfreeze="all", lr=0.0, optimizer=_sgd),
    ]
    history = _guarded_run(model, plan)
    assert history.rollbacks == []
    penalty = sum(float(loss) for loss in model.losses)
    assert penalty > 1e-4  # what Keras adds once the SavedModel trains
    val = history.history["val_loss"]
    assert val[1] == pytest.approx(val[0] + penalty, abs=1e-6)
    assert history.stage_values == pytest.approx([val[0]] * 2, abs=1e-6)


def test_rollback_can_be_switched_off(image_model):
    model = _model(image_model)
    plan = [
        Stage(2, lr=1e-2),
        Stage(1, unfreeze="all", lr=1.0, optimizer=_sgd),
    ]
    history = _guarded_run(model, plan, rollback=False)
    assert history.rollbacks == []
    assert history.history["val_loss"][2] > history.history["val_loss"][1]


def test_auto_plan_stops_deepening_when_validation_gets_worse(image_model):
    model = _model(image_model)
    x, y = _data()
    plan = AutoPlan(epochs=5, lr=1e-2, base_lr=1.0, optimizer=_sgd)
    runner = StagedFineTuner(model, plan, loss=SCE)
    history = runner.run(x, y, validation_data=(x, y), batch_size=8, verbose=0)
    assert len(history.history["stage"]) <= 5  # the budget
    assert history.rollbacks  # a deeper cut made validation worse...
    first = history.rollbacks[0]["stage"]
    stages = runner.stages
    assert [s.name for s in stages[first + 1 :]] == ["auto: rest of budget"]
    # ... so deepening stopped: the rest trains at the deepest kept depth.
    kept = [
        s.unfreeze
        for i, s in enumerate(stages[1:first], start=1)
        if i not in [r["stage"] for r in history.rollbacks]
    ]
    assert history.auto_depth == max(kept, default=0)
    values = history.stage_values
    assert all(b <= a for a, b in itertools.pairwise(values))


def test_auto_plan_goes_deeper_while_it_helps(image_model):
    model = _model(image_model)
    x, y = _data()
    history = hk.finetune.fine_tune(
        model,
        x,
        y,
        epochs=3,
        plan="auto",
        base_lr=1e-2,
        loss=SCE,
        validation_data=(x, y),
        batch_size=8,
        verbose=0,
    )
    groups = len(hk.finetune.base_groups(model))
    # A deepening stage that was rolled back stops the deepening (the
    # stage that spends the rest of the budget may be rolled back too).
    deepening = [
        r for r in history.rollbacks if r["name"] != "auto: rest of budget"
    ]
    assert history.auto_depth in range(groups + 1)
    assert len(history.history["stage"]) <= 4
    assert not deepening or history.auto_depth < groups
    with pytest.raises(errors.StagePlanError, match="validation_data"):
        StagedFineTuner(model, AutoPlan(epochs=2), loss=SCE).run(x, y)


def test_auto_plan_choices_without_training():
    plan = AutoPlan(epochs=6, head_epochs=2, step_epochs=1)
    assert plan.depth_steps(5) == [1, 2, 4, 5]
    stages, outcomes = [], []

    def step(kept):
        stage = plan.next_stage(stages, outcomes, 5)
        if stage is not None:
            stages.append(stage)
            outcomes.append(kept)
        return stage

    assert step(True).unfreeze == "head"
    assert step(True).unfreeze == 1
    assert step(False).unfreeze == 2  # this one gets rolled back ...
    rest = step(True)  # ... so the rest trains at depth 1
    assert (rest.unfreeze, rest.epochs, rest.name) == (
        1,
        2,
        "auto: rest of budget",
    )
    assert step(True) is None
    assert sum(s.epochs for s in stages) == 6
    assert plan.chosen_depth(stages, outcomes) == 1
    with pytest.raises(errors.StagePlanError, match="head_epochs"):
        AutoPlan(epochs=2, head_epochs=3)


# -------------------------------------------------- resume (defect 1)
def test_resume_after_early_stopping_and_a_crash_is_exact(
    image_model, tmp_path
):
    x, y = _data()
    # Validation labels the training labels contradict: validation gets
    # worse at once, so early stopping ends stage 1 after two epochs and
    # puts back the first epoch's weights.
    val = (x, (y + 1) % 3)

    class Crash(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 3:  # the first epoch of stage 2
                raise KeyboardInterrupt("killed")

    def plan(extra=()):
        return [
            Stage(3, lr=2e-1, early_stopping=0),
            Stage(3, unfreeze="all", lr=1e-2, callbacks=list(extra)),
        ]

    def runner(model, stages, backup=None):
        return StagedFineTuner(
            model, stages, loss=SCE, rollback=False, backup_dir=backup
        )

    def run(r):
        return r.run(
            x, y, validation_data=val, batch_size=8, shuffle=False, verbose=0
        )

    model = _model(image_model)
    full = run(runner(model, plan()))
    assert full.history["stage"] == [0, 0, 1, 1, 1]  # stage 1 stopped early
    expected = _weights(model)

    backup = str(tmp_path / "backup")
    with pytest.raises(KeyboardInterrupt):
        run(runner(_model(image_model), plan([Crash()]), backup))
    state = json.load(open(os.path.join(backup, "state.json")))
    assert (state["completed_epochs"], state["stage"]) == (3, 1)

    model = _model(image_model, seed=99)  # other initial weights
    resumed = run(runner(model, plan(), backup))
    assert resumed.history["stage"] == full.history["stage"]
    assert resumed.epoch == full.epoch
    _assert_same(_weights(model), expected)


def test_a_resumed_guarded_run_rolls_back_like_the_uninterrupted_run(
    image_model, tmp_path
):
    x, _ = _data()
    y = np.argmax(x.mean(axis=(1, 2)), axis=1)  # learnable: the head helps

    class Crash(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 3:  # mid-way through the stage that gets worse
                raise KeyboardInterrupt("killed")

    def plan(extra=()):
        return [
            Stage(2, lr=1e-1),
            Stage(2, unfreeze="all", lr=1.0, optimizer=_sgd, callbacks=extra),
        ]

    def run(model, stages, backup=None):
        return StagedFineTuner(model, stages, loss=SCE, backup_dir=backup).run(
            x, y, validation_data=(x, y), batch_size=8, shuffle=False, verbose=0
        )

    model = _model(image_model)
    full = run(model, plan())
    assert [r["stage"] for r in full.rollbacks] == [1]
    expected = _weights(model)
    backup = str(tmp_path / "backup")
    with pytest.raises(KeyboardInterrupt):
        run(_model(image_model), plan([Crash()]), backup)
    model = _model(image_model, seed=99)
    resumed = run(model, plan(), backup)
    assert resumed.rollbacks == full.rollbacks
    _assert_same(_weights(model), expected)


# --------------------------------------------- group rates (defect 2)
def test_group_lrs_keys_are_whole_group_names(efficientnet_like):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            hk.HubLayer(efficientnet_like, name="base"),
            keras.layers.Dense(3, name="head"),
        ]
    )
    groups = hk.finetune.base_groups(model)
    stem, block, top = (g.name for g in groups)
    assert top.endswith("/head") and top != "head"  # EfficientNet's naming
    x, y = _data(8)

    def rates(group_lrs):
        stage = Stage(
            1, unfreeze="all", lr=1e-3, group_lrs=group_lrs, optimizer=_sgd
        )
        StagedFineTuner(model, [stage], loss=SCE).run(x, y, verbose=0)
        variables = {"head": model.layers[1].kernel}
        variables.update({g.name: g.variables[0] for g in groups})
        return {
            name: pytest.approx(
                float(
                    _compat.optimizer_for_variable(
                        model.optimizer, variable
                    ).learning_rate
                )
            )
            for name, variable in variables.items()
        }

    got = rates({"head": 1e-1})
    assert got["head"] == 1e-1
    assert got[top] == 1e-3  # the SavedModel's "head" group is not it
    got = rates({top: 5e-1})
    assert (got[top], got["head"], got[stem]) == (5e-1, 1e-3, 1e-3)
    got = rates({re.compile(r"base/.*"): 2e-2})
    assert got[stem] == got[block] == got[top] == 2e-2
    assert got["head"] == 1e-3
    got = rates({f"re:{re.escape(stem)}|{re.escape(block)}": 3e-2})
    assert (got[stem], got[block], got[top]) == (3e-2, 3e-2, 1e-3)
    with pytest.raises(errors.StagePlanError, match="whole"):
        rates({"stem": 1e-2})  # a part of a name is not a group name
    stage = Stage(1, group_lrs={re.compile("base/.*"): 1e-2})
    assert stage.to_dict()["group_lrs"] == {"re:base/.*": 1e-2}


# --------------------------------------- held statistics (defect 3)
def test_bn_train_holds_statistics_of_frozen_savedmodel_groups(image_model):
    x, y = _data()
    model = _model(image_model)
    base = model.layers[0]
    stats = [v for v in base.weights if "moving" in base.source_name(v)]
    top = base.variable_groups()["block2"][0]
    before = [v.numpy().copy() for v in stats]
    top_before = top.numpy().copy()
    seen = []

    class Watch(keras.callbacks.Callback):
        def on_test_begin(self, logs=None):
            seen.append([v.numpy().copy() for v in stats])

        def on_epoch_end(self, epoch, logs=None):
            self.on_test_begin()

    StagedFineTuner(
        model,
        [Stage(2, unfreeze=1, lr=1e-2)],  # block2 trains, block1 is frozen
        loss=SCE,
        bn_policy="train",
    ).run(
        x,
        y,
        validation_data=(x, y),
        batch_size=8,
        callbacks=[Watch()],
        verbose=0,
    )
    assert not base.inference_only  # the SavedModel ran in training mode
    assert not np.array_equal(top.numpy(), top_before)
    assert len(seen) == 4
    for values in [*seen, [v.numpy() for v in stats]]:
        _assert_same(values, before)
    # Unfrozen, block1's statistics train with it.
    StagedFineTuner(
        model, [Stage(1, unfreeze="all", lr=1e-2)], loss=SCE, bn_policy="train"
    ).run(x, y, verbose=0)
    assert not np.allclose(stats[0].numpy(), before[0])


# --------------------------------------------------------------- lr_find
def test_lr_find_suggests_a_good_rate_on_a_convex_problem(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 4)).astype("float32")
    y = x @ np.array([1.0, -2.0, 0.5, 3.0]) + 0.1 * rng.normal(size=512)
    y = y.astype("float32")[:, None]
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(1e-3), "mse")
    model.fit(x, y, epochs=1, batch_size=64, verbose=0)  # builds its state
    weights = _weights(model)
    state = [v.numpy().copy() for v in model.optimizer.variables]
    result = hk.finetune.lr_find(
        model, x, y, optimizer=_sgd, batch_size=64, start_lr=1e-5
    )
    # Gradient descent on this quadratic converges fastest near 1/L, with
    # L the largest eigenvalue of the loss's Hessian, 2/n X^T X (+ bias).
    design = np.hstack([x, np.ones((512, 1), "float32")])
    good = 1 / np.linalg.eigvalsh(2 * design.T @ design / 512).max()
    assert good / 10 <= result.suggestion <= good * 10, result.suggestion
    assert len(result.rates) < 200  # it stopped when the loss diverged
    assert result.rates == sorted(result.rates)
    _assert_same(_weights(model), weights)
    _assert_same([v.numpy() for v in model.optimizer.variables], state)
    path = result.plot(str(tmp_path / "lr.png"))
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    saved = result.save(str(tmp_path / "out"))
    assert json.load(open(saved["json"]))["suggestion"] == result.suggestion


def test_fine_tune_base_lr_find_uses_the_suggestion(image_model):
    model = _model(image_model)
    x, y = _data()
    history = hk.finetune.fine_tune(
        model, x, y, epochs=1, loss=SCE, base_lr="find", verbose=0
    )
    found = history.lr_find
    assert found is not None
    assert history.stage_lrs[0]["head"] == pytest.approx(found.suggestion)
    assert history.stage_lrs[1]["head"] == pytest.approx(found.suggestion / 2)


def test_find_for_plan_scales_the_plan_and_writes_the_plot(
    image_model, tmp_path
):
    model = _model(image_model)
    x, y = _data()
    plan = [
        Stage(1, lr=1e-3),
        Stage(1, unfreeze="all", lr_range=(1e-5, 1e-4)),
    ]
    result, scaled = hk.finetune.find_for_plan(
        model, x, y, plan, loss=SCE, output_dir=str(tmp_path), num_steps=30
    )
    assert not model.layers[0].trainable  # it tested the first stage's head
    factor = result.suggestion / 1e-3
    assert scaled[0].lr == pytest.approx(result.suggestion)
    assert scaled[1].lr_range == pytest.approx((1e-5 * factor, 1e-4 * factor))
    assert sorted(os.listdir(tmp_path)) == ["lr_find.json", "lr_find.png"]


# --------------------------------------------------- steps per execution
class _StepsPerCall(keras.callbacks.Callback):
    """Records each stage's compiled steps per call: every stage's `fit`
    sets its callbacks' params (a run callback's `on_train_begin` comes
    once a run)."""

    def __init__(self, seen):
        super().__init__()
        self.seen = seen

    def set_params(self, params):
        super().set_params(params)
        self.seen.append(self.model.steps_per_execution)


def test_auto_steps_per_execution_gives_the_same_results(image_model):
    # 64 examples in batches of 2: 32 steps per epoch. The long head stage
    # (640 steps, few variables) saves more per-call cost than the loop
    # costs to compile; the short stage that trains everything does not.
    x, y = _data(64)
    plan = [
        Stage(20, lr=1e-2, schedule="one_cycle"),
        Stage(1, unfreeze="all", lr=1e-3, layer_decay=0.5),
    ]
    results = {}
    for spe in (1, "auto"):
        model = _model(image_model)
        seen = []
        StagedFineTuner(model, plan, loss=SCE, steps_per_execution=spe).run(
            x,
            y,
            batch_size=2,
            shuffle=False,
            verbose=0,
            callbacks=[_StepsPerCall(seen)],
        )
        results[spe] = (_weights(model), seen)
    assert results[1][1] == [1, 1]
    assert results["auto"][1] == [32, 1]
    _assert_same(results["auto"][0], results[1][0])

    class PerBatch(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            pass

    model = _model(image_model)
    seen = []
    StagedFineTuner(model, plan[:1], loss=SCE).run(
        x,
        y,
        batch_size=2,
        callbacks=[PerBatch(), _StepsPerCall(seen)],
        verbose=0,
    )
    assert seen == [1]


def test_auto_steps_per_execution_counts_the_validation_loop(image_model):
    # With validation, several steps per call wrap evaluate's step in a
    # loop too: a stage that pays for the training loop alone (12 epochs
    # of 32 steps) does not pay for both.
    x, y = _data(64)
    plan = [Stage(12, lr=1e-2)]

    def steps_per_call(**kwargs):
        seen = []
        StagedFineTuner(_model(image_model), plan, loss=SCE).run(
            x,
            y,
            batch_size=2,
            verbose=0,
            callbacks=[_StepsPerCall(seen)],
            **kwargs,
        )
        return seen

    assert steps_per_call() == [32]
    validation = {"validation_data": (x, y), "validation_batch_size": 64}
    assert steps_per_call(**validation) == [1]


def test_each_stage_traces_its_train_step_once(image_model):
    # Variables made inside the first trace (optimizer slots, metric
    # totals) would make TensorFlow trace the whole step twice.
    traces = []

    class Counting(keras.Sequential):
        def train_step(self, data):
            traces.append(self.steps_per_execution)
            return super().train_step(data)

    keras.utils.set_random_seed(1)
    model = Counting(
        [
            keras.Input((8, 8, 3)),
            hk.HubLayer(image_model, name="base"),
            keras.layers.Dense(3, name="head"),
        ]
    )
    x, y = _data()
    plan = [Stage(2, lr=1e-2), Stage(1, unfreeze="all", lr=1e-3)]
    StagedFineTuner(model, plan, loss=SCE, metrics=["accuracy"]).run(
        x, y, validation_data=(x, y), batch_size=8, verbose=0
    )
    assert len(traces) == 2


@pytest.mark.parametrize("pipeline", ["shuffle buffer", "gather per batch"])
def test_array_inputs_keep_fit_semantics(image_model, pipeline, monkeypatch):
    if pipeline == "gather per batch":  # how large arrays are fed
        monkeypatch.setattr(_pipeline, "SHUFFLE_BUFFER_BYTES", 0)
    x, y = _data()
    plan = [Stage(2, unfreeze="all", lr=1e-2, optimizer=_sgd)]

    def train(*args, **kwargs):
        model = _model(image_model)
        StagedFineTuner(model, plan, loss=SCE, rollback=False).run(
            *args, batch_size=8, verbose=0, **kwargs
        )
        return _weights(model)

    in_order = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    unshuffled = train(x, y, shuffle=False)
    _assert_same(unshuffled, train(in_order))
    shuffled = train(x, y)  # fit's default: a new order every epoch
    assert any(not np.array_equal(a, b) for a, b in zip(shuffled, unshuffled))
    # Zero sample weights: the head gets no gradient, so it does not move
    # (the base still follows its regularization loss).
    head = _model(image_model).get_layer("head").get_weights()
    _assert_same(train(x, y, sample_weight=np.zeros(len(y)))[-2:], head)


def test_validation_arrays_keep_fit_semantics(image_model):
    # Validation arrays go through the runner's pipeline: in order, in
    # batches of validation_batch_size, sample weights applied, exactly as
    # the same batches given as a dataset.
    x, y = _data()
    weights = (np.arange(len(y)) % 2).astype("float32")
    plan = [Stage(2, lr=1e-2, optimizer=_sgd)]

    def run(validation_data, **kwargs):
        model = _model(image_model)
        batches = []

        class Count(keras.callbacks.Callback):
            def on_test_batch_end(self, batch, logs=None):
                batches.append(batch)

        history = StagedFineTuner(
            model, plan, loss=SCE, metrics=["accuracy"], rollback=False
        ).run(
            x,
            y,
            validation_data=validation_data,
            batch_size=8,
            shuffle=False,
            callbacks=[Count()],
            verbose=0,
            **kwargs,
        )
        return history.history, len(batches)

    as_dataset = tf.data.Dataset.from_tensor_slices((x, y, weights)).batch(5)
    want = run(as_dataset)
    got = run((x, y, weights), validation_batch_size=5)
    assert got == want
    assert got[1] == 2 * 7  # two epochs of ceil(32 / 5) batches
    unweighted = run((x, y), validation_batch_size=5)[0]
    assert unweighted["val_loss"] != got[0]["val_loss"]


def test_lean_step_functions_train_and_evaluate_like_keras(
    image_model, capfd, tmp_path
):
    # The runner's one-step train and test functions against Keras's own,
    # on a trainable SavedModel with BatchNorm and a regularization loss.
    x, y = _data()
    in_order = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    # A dataset whose length Keras learns only by running out of data.
    unknown = in_order.filter(lambda *_: True)
    # No sample weights, as an empty `Optional` (how Keras's adapters
    # carry a `None` through `tf.data`).
    no_weights = in_order.map(
        lambda a, b: (a, b, tf.experimental.Optional.empty(None))
    )

    def fit(data, lean, **compile_kwargs):
        model = _model(image_model)
        model.get_layer("base").trainable = True
        model.compile(_sgd(1e-2), SCE, metrics=["accuracy"], **compile_kwargs)
        used = _compat.lean_step_functions(model)
        if lean:
            assert used
        history = model.fit(data, epochs=2, validation_data=data, verbose=0)
        if lean:  # a model that trained with them still saves as ever
            tf.saved_model.save(model, str(tmp_path / f"saved{len(seen)}"))
            seen.append(data)
        return used, history.history, _weights(model)

    seen = []

    _, keras_logs, keras_weights = fit(in_order, lean=False)
    for data in (in_order, unknown, no_weights):
        _, logs, weights = fit(data, lean=True)
        assert logs == keras_logs
        _assert_same(weights, keras_weights)
    # Keras keeps its own functions where the lean ones would drop work.
    assert fit(in_order, lean=False, steps_per_execution=2)[0] is False
    assert fit(in_order, lean=False, run_eagerly=True)[0] is False
    assert "OUT_OF_RANGE" not in capfd.readouterr().err


def test_list_inputs_and_targets_as_keras_reads_them(image_model):
    # A list of arrays is several inputs (or outputs), as for `model.fit`,
    # not one array to stack.
    rng = np.random.default_rng(0)
    a, b = rng.random((32, 4), "float32"), rng.random((32, 2), "float32")
    y = np.arange(32) % 3
    plan = [Stage(2, unfreeze="all", lr=1e-2, optimizer=_sgd)]

    def train(data, validation):
        keras.utils.set_random_seed(1)
        ins = [keras.Input((4,)), keras.Input((2,))]
        out = keras.layers.Dense(3, name="cls")(keras.layers.Concatenate()(ins))
        model = keras.Model(ins, [out, keras.layers.Dense(1, name="reg")(out)])
        history = StagedFineTuner(
            model, plan, loss=[SCE, "mse"], rollback=False
        ).run(
            *data,
            validation_data=validation,
            batch_size=8,
            shuffle=False,
            verbose=0,
        )
        return history.history, _weights(model)

    targets = [y, y.astype("float32")]
    got = train(([a, b], targets), ([a, b], targets))
    in_order = tf.data.Dataset.from_tensor_slices(
        ((a, b), tuple(targets))
    ).batch(8)
    want = train((in_order,), in_order)
    assert got[0] == want[0]
    _assert_same(got[1], want[1])


def test_single_batch_calls_after_a_run(image_model):
    # `train_on_batch` and `test_on_batch` hand the step functions a
    # Python generator, not a dataset iterator.
    x, y = _data()
    model = _model(image_model)
    StagedFineTuner(model, [Stage(1, lr=1e-2)], loss=SCE).run(
        x, y, batch_size=8, verbose=0
    )
    assert np.isfinite(model.train_on_batch(x[:8], y[:8]))
    evaluated = model.evaluate(x[:8], y[:8], batch_size=8, verbose=0)
    assert model.test_on_batch(x[:8], y[:8]) == pytest.approx(evaluated)


def test_typed_errors_from_the_model_reach_the_caller(image_model):
    # The step functions are traced without autograph (as Keras's own),
    # which would wrap the model's typed errors in a `StagingError`.
    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.base = hk.HubLayer(image_model)
            self.head = keras.layers.Dense(3)

        def call(self, x):
            return self.head(self.base(x))

    x, y = _data()
    with pytest.raises(errors.InputSpecError):
        StagedFineTuner(Subclassed(), [Stage(1, lr=1e-2)], loss=SCE).run(
            (x * 255).astype("uint8"), y, batch_size=8, verbose=0
        )


def test_auto_steps_per_call_divide_the_given_step_counts(image_model):
    # Keras runs whole calls: 32 steps per call would train 128 steps of a
    # 100-step epoch and evaluate all the data whatever validation_steps.
    x, y = _data(64)
    repeated = tf.data.Dataset.from_tensor_slices((x, y)).batch(2).repeat()
    seen = []
    model = _model(image_model)
    StagedFineTuner(model, [Stage(12, lr=1e-2)], loss=SCE).run(
        repeated,
        steps_per_epoch=100,
        verbose=0,
        callbacks=[_StepsPerCall(seen)],
    )
    assert seen == [25]
    assert int(model.optimizer.iterations) == 12 * 100


def test_lambda_callback_batch_hooks_keep_one_step_per_call(image_model):
    x, y = _data(64)
    batches = []
    hook = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: batches.append(batch)
    )
    StagedFineTuner(_model(image_model), [Stage(20, lr=1e-2)], loss=SCE).run(
        x, y, batch_size=2, verbose=0, callbacks=[hook]
    )
    assert len(batches) == 20 * 32


def test_a_stage_without_validation_epochs_is_kept(image_model, caplog):
    # validation_freq=2 skips the validation of a one-epoch middle stage:
    # there is nothing to compare, so it is not rolled back.
    x, y = _data()
    plan = [
        Stage(2, lr=1e-2),
        Stage(1, unfreeze="all", lr=1e-3),
        Stage(2, unfreeze="all", lr=1e-3),
    ]
    with caplog.at_level(logging.WARNING):
        history = StagedFineTuner(_model(image_model), plan, loss=SCE).run(
            x,
            y,
            validation_data=(x, y),
            validation_freq=2,
            batch_size=8,
            verbose=0,
        )
    assert history.rollbacks == []
    assert "logged no val_loss" in caplog.text
    # Every series lines up with the epochs; skipped validations are NaN.
    assert len(history.history["val_loss"]) == len(history.epoch) == 5
    assert np.isnan(history.history["val_loss"][2])


def test_history_keeps_what_callbacks_add_to_the_logs(image_model):
    x, y = _data()
    reduce = keras.callbacks.ReduceLROnPlateau(monitor="loss", patience=100)
    history = StagedFineTuner(
        _model(image_model), [Stage(2, lr=1e-2)], loss=SCE
    ).run(x, y, batch_size=8, verbose=0, callbacks=[reduce])
    assert history.history["learning_rate"] == pytest.approx([1e-2, 1e-2])


# ------------------------------------------------------- Keras citizen
def _stopper(hook):
    """A callback that asks to stop training from `hook`."""

    def stop(*args, **kwargs):
        callback.model.stop_training = True

    callback = keras.callbacks.LambdaCallback(**{hook: stop})
    return callback


@pytest.mark.parametrize("hook", ["on_epoch_end", "on_train_batch_end"])
def test_a_run_callback_that_stops_ends_the_run(image_model, hook, caplog):
    # EarlyStopping or TerminateOnNaN given to the run: the run ends after
    # the stage it stopped, as `fit` ends.
    x, y = _data()
    plan = [Stage(2, lr=1e-2), Stage(2, unfreeze="all", lr=1e-3)]
    with caplog.at_level(logging.INFO, logger="keras_hubkit"):
        history = StagedFineTuner(_model(image_model), plan, loss=SCE).run(
            x, y, batch_size=8, verbose=0, callbacks=[_stopper(hook)]
        )
    assert history.epoch == [0]
    assert history.history["stage"] == [0]
    assert history.stopped_by_callback
    assert "remaining stages are skipped" in caplog.text


def test_a_stage_callback_that_stops_ends_only_its_stage(image_model):
    x, y = _data()
    plan = [
        Stage(2, lr=1e-2, callbacks=[_stopper("on_epoch_end")]),
        Stage(2, unfreeze="all", lr=1e-3),
    ]
    history = StagedFineTuner(_model(image_model), plan, loss=SCE).run(
        x, y, batch_size=8, verbose=0
    )
    assert history.history["stage"] == [0, 1, 1]
    assert not history.stopped_by_callback


def test_run_callbacks_see_the_run_as_one_fit(image_model):
    # EarlyStopping's patience spans the stages, as in one `fit` of as many
    # epochs; train begin and end come once.
    x, y = _data()
    plan = [Stage(2, lr=1e-2), Stage(2, unfreeze="all", lr=1e-3), Stage(2)]
    never_better = keras.callbacks.EarlyStopping(
        monitor="loss", patience=2, min_delta=10
    )
    calls = []
    count = keras.callbacks.LambdaCallback(
        on_train_begin=lambda logs: calls.append("begin"),
        on_train_end=lambda logs: calls.append("end"),
    )
    history = StagedFineTuner(_model(image_model), plan, loss=SCE).run(
        x, y, batch_size=8, verbose=0, callbacks=[never_better, count]
    )
    assert history.epoch == [0, 1, 2]
    assert history.history["stage"] == [0, 0, 1]
    assert history.stopped_by_callback
    assert calls == ["begin", "end"]


def test_run_early_stopping_restores_the_runs_best_weights(image_model):
    x, y = _data()
    model = _model(image_model)
    # The second stage trains at a rate that makes every epoch worse.
    plan = [
        Stage(2, lr=1e-2),
        Stage(2, lr=50.0, optimizer=lambda lr: keras.optimizers.SGD(lr)),
    ]
    seen = {}
    keep = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: seen.__setitem__(
            epoch, (logs["loss"], _weights(model))
        )
    )
    restore = keras.callbacks.EarlyStopping(
        monitor="loss", patience=10, restore_best_weights=True
    )
    StagedFineTuner(model, plan, loss=SCE).run(
        x, y, batch_size=8, shuffle=False, verbose=0, callbacks=[keep, restore]
    )
    best = min(seen, key=lambda epoch: seen[epoch][0])
    assert best < 2 and restore.best_epoch == best
    _assert_same(_weights(model), seen[best][1])


def test_a_resumed_run_keeps_a_callback_stop_and_the_best_epoch(
    image_model, tmp_path
):
    x, y = _data()
    backup = str(tmp_path / "backup")
    plan = [Stage(1, lr=1e-2), Stage(2, unfreeze="all", lr=1e-3)]
    model = _model(image_model)
    first = StagedFineTuner(model, plan, loss=SCE, backup_dir=backup).run(
        x, y, batch_size=8, verbose=0, callbacks=[_stopper("on_epoch_end")]
    )
    assert first.stopped_by_callback and first.epoch == [0]
    weights = _weights(model)
    # Run again (a re-run job): the stop holds, nothing more is trained.
    again = StagedFineTuner(model, plan, loss=SCE, backup_dir=backup).run(
        x, y, batch_size=8, verbose=0
    )
    assert again.stopped_by_callback and again.epoch == [0]
    _assert_same(_weights(model), weights)
    assert (again.best_epoch, again.best_value) == (
        first.best_epoch,
        first.best_value,
    )


def test_a_resumed_run_compares_with_the_epochs_before_the_crash(
    image_model, tmp_path
):
    # The last stage does not move the weights (rate 0): its epochs tie,
    # and the best epoch stays the first of them, before the crash.
    x, y = _data()
    sgd = lambda lr: keras.optimizers.SGD(lr)  # noqa: E731

    def plan(extra=()):
        return [
            Stage(2, lr=1e-2),
            Stage(2, lr=0.0, optimizer=sgd, callbacks=list(extra)),
        ]

    full = StagedFineTuner(_model(image_model), plan(), loss=SCE).run(
        x, y, batch_size=8, shuffle=False, verbose=0
    )

    class Crash(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 3:
                raise KeyboardInterrupt("killed")

    backup = str(tmp_path / "backup")
    with pytest.raises(KeyboardInterrupt):
        StagedFineTuner(
            _model(image_model), plan([Crash()]), loss=SCE, backup_dir=backup
        ).run(x, y, batch_size=8, shuffle=False, verbose=0)
    resumed = StagedFineTuner(
        _model(image_model), plan(), loss=SCE, backup_dir=backup
    ).run(x, y, batch_size=8, shuffle=False, verbose=0)
    assert full.best_epoch < 3
    assert resumed.best_epoch == full.best_epoch
    assert resumed.best_value == pytest.approx(full.best_value)


def test_a_csv_logger_keeps_every_stage(image_model, tmp_path):
    # CSVLogger(append=False) starts a new file at every `fit`; a run
    # writes one file with all its epochs, and the next run a new one.
    x, y = _data()
    path = tmp_path / "log.csv"
    logger = keras.callbacks.CSVLogger(str(path))
    plan = [Stage(1, lr=1e-2), Stage(2, unfreeze="all", lr=1e-3)]
    for _ in range(2):
        StagedFineTuner(_model(image_model), plan, loss=SCE).run(
            x, y, batch_size=8, verbose=0, callbacks=[logger]
        )
        lines = path.read_text().splitlines()
        assert lines[0].split(",")[:2] == ["epoch", "loss"]
        assert [line.split(",")[0] for line in lines[1:]] == ["0", "1", "2"]
        assert logger.append is False


def test_fine_tune_takes_loss_metrics_and_callbacks(image_model, capsys):
    model = _model(image_model)
    model.compile("adam", SCE, metrics=["accuracy"])
    x, y = _data()
    epochs = []

    class Count(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            epochs.append(epoch)

    history = hk.finetune.fine_tune(
        model,
        x,
        y,
        epochs=1,
        validation_data=(x, y),
        callbacks=[Count()],
        verbose=0,
    )
    assert "val_accuracy" in history.history
    assert epochs == [0, 1]
    assert capsys.readouterr().out == ""
    with pytest.raises(errors.StagePlanError, match="loss"):
        hk.finetune.fine_tune(_model(image_model), x, y, epochs=1)


def test_fine_tune_passes_fit_arguments_to_fit(image_model):
    x, y = _data()

    def head_after(**kwargs):
        model = _model(image_model)
        hk.finetune.fine_tune(
            model, x, y, epochs=1, loss=SCE, batch_size=8, verbose=0, **kwargs
        )
        return model.get_layer("head").get_weights()

    start = _model(image_model).get_layer("head").get_weights()
    # Zero sample weights reach fit: the head gets no gradient.
    _assert_same(head_after(sample_weight=np.zeros(len(y))), start)
    _assert_same(head_after(shuffle=False), head_after(shuffle=False))
    for bad in (0, -5, 2.5):
        with pytest.raises(errors.StagePlanError, match="batch_size"):
            StagedFineTuner(_model(image_model), [Stage(1)], loss=SCE).run(
                x, y, batch_size=bad
            )
    with pytest.raises(errors.StagePlanError, match="shuffle='yes'"):
        head_after(shuffle="yes")


def test_finetune_modules_import_matplotlib_only_inside_functions():
    # Keras 3.15 itself imports matplotlib when installed, so this checks
    # the source: plotting is imported lazily, inside `LRFindResult.plot`.
    import ast
    import pathlib

    folder = pathlib.Path(hk.finetune.__file__).parent
    for path in folder.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(n.startswith("matplotlib") for n in names), path
    source = (folder / "lr_finder.py").read_text()
    assert "from matplotlib" in source  # the lazy import exists
