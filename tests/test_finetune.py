"""Staged fine-tuning: trainability, per-group rates, BN policy, resume."""

import json
import logging
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_hubkit as hk
from keras_hubkit import _compat
from keras_hubkit import errors
from keras_hubkit.finetune import Stage
from keras_hubkit.finetune import StagedFineTuner

from helpers import free_port
from helpers import image_data as _data

SCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _hub_model(image_model, seed=1):
    keras.utils.set_random_seed(seed)
    base = hk.HubLayer(image_model, name="base")
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            base,
            keras.layers.Dense(4, activation="relu", name="hidden"),
            keras.layers.Dense(3, name="logits"),
        ]
    )
    return model, base


def _backbone_model(seed=1):
    """A Keras 'pretrained' backbone (nested model with BN) plus a head."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(4, 3, name="conv_a")(inputs)
    h = keras.layers.BatchNormalization(name="bn_a")(h)
    h = keras.layers.Conv2D(4, 3, name="conv_b")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    backbone = keras.Model(inputs, h, name="backbone")
    return keras.Sequential(
        [keras.Input((8, 8, 3)), backbone, keras.layers.Dense(3, name="head")]
    )


class _Snapshots(keras.callbacks.Callback):
    """Records the SavedModel's variables before and after a stage."""

    def __init__(self, variables, store, key):
        super().__init__()
        self.variables, self.store, self.key = variables, store, key

    def on_train_begin(self, logs=None):
        self.store[self.key + "_before"] = {
            v.name: v.numpy().copy() for v in self.variables
        }

    def on_train_end(self, logs=None):
        self.store[self.key + "_after"] = {
            v.name: v.numpy().copy() for v in self.variables
        }


def _changed(store, key):
    before, after = store[key + "_before"], store[key + "_after"]
    return sorted(n for n in before if not np.allclose(before[n], after[n]))


def test_stages_change_exactly_the_intended_variables(image_model):
    model, base = _hub_model(image_model)
    obj_vars = list(base.resolved_object.variables) + [
        w.value for w in model.layers[1].weights + model.layers[2].weights
    ]
    store = {}
    plan = [
        Stage(1, lr=1e-2, callbacks=[_Snapshots(obj_vars, store, "s1")]),
        Stage(
            1,
            unfreeze=1,
            lr=1e-2,
            callbacks=[_Snapshots(obj_vars, store, "s2")],
        ),
        Stage(
            1,
            unfreeze="all",
            lr=1e-2,
            callbacks=[_Snapshots(obj_vars, store, "s3")],
        ),
    ]
    x, y = _data()
    history = StagedFineTuner(model, plan, loss=SCE).run(x, y, verbose=0)
    s1 = _changed(store, "s1")
    assert s1  # the head trained
    assert not any(n.startswith("block") for n in s1)
    assert _changed(store, "s2") and all(
        not n.startswith("block1") for n in _changed(store, "s2")
    )
    assert "block2/dense/kernel:0" in _changed(store, "s2")
    s3 = _changed(store, "s3")
    assert "block1/conv/kernel:0" in s3
    # BatchNorm statistics stay fixed under the default "frozen" policy.
    assert not any("moving" in n for n in s1 + _changed(store, "s2") + s3)
    assert history.history["stage"] == [0, 1, 2]
    assert history.epoch == [0, 1, 2]


def test_per_group_learning_rates_are_applied(image_model):
    model, base = _hub_model(image_model)
    plan = [
        Stage(
            1,
            unfreeze="all",
            lr=1e-2,
            layer_decay=0.5,
            optimizer=lambda lr: keras.optimizers.SGD(lr),
        )
    ]
    x, y = _data()
    history = StagedFineTuner(model, plan, loss=SCE).run(x, y, verbose=0)
    optimizer = model.optimizer
    assert isinstance(optimizer, keras.optimizers.MultiOptimizer)
    groups = base.variable_groups()
    rate = lambda v: float(  # noqa: E731
        _compat.optimizer_for_variable(optimizer, v).learning_rate
    )
    assert rate(groups["block2"][0]) == pytest.approx(5e-3)
    assert rate(groups["block1"][0]) == pytest.approx(2.5e-3)
    assert rate(model.layers[-1].kernel) == pytest.approx(1e-2)
    assert history.stage_lrs[0] == pytest.approx(
        {"head": 1e-2, "base/block2": 5e-3, "base/block1": 2.5e-3},
        rel=1e-5,
    )


def test_sgd_updates_follow_the_group_rates(image_model):
    """One SGD step: each group's update is its rate times its gradient."""
    model, base = _hub_model(image_model)
    plan = [
        Stage(
            1,
            unfreeze="all",
            lr_range=(1e-3, 1e-1),
            optimizer=lambda lr: keras.optimizers.SGD(lr),
        )
    ]
    x, y = _data(8)
    kernel = base.variable_groups()["block1"][0]
    before = kernel.numpy().copy()
    runner = StagedFineTuner(model, plan, loss=SCE)
    runner.apply_trainability(0)  # the stage's losses count, as in run()
    with tf.GradientTape() as tape:
        loss = SCE(y, model(x, training=True)) + tf.add_n(model.losses)
    grad = tape.gradient(loss, kernel.value)
    runner.run(x, y, batch_size=8, verbose=0, shuffle=False)
    step = before - kernel.numpy()
    # float32 differences of ~0.3-sized weights: ~3e-8 absolute noise.
    np.testing.assert_allclose(step, 1e-3 * grad.numpy(), atol=6e-8)
    assert np.abs(step).max() > 10 * 6e-8


def test_schedule_shapes_the_rate(image_model):
    model, _ = _hub_model(image_model)
    plan = [
        Stage(
            2,
            lr=1e-2,
            schedule="one_cycle",
            optimizer=lambda lr: keras.optimizers.SGD(lr),
        )
    ]
    x, y = _data()
    StagedFineTuner(model, plan, loss=SCE).run(x, y, batch_size=8, verbose=0)
    schedule = model.optimizer.learning_rate
    # 8 steps: it rises to the peak at 25% then anneals.
    assert float(model.optimizer.iterations) == 8
    assert isinstance(
        _compat.learning_rate_schedule(model.optimizer), hk.schedules.Join
    )
    assert float(schedule) == pytest.approx(1e-2 / 1e5, rel=1e-3)


def test_bn_policy_frozen_and_train_on_a_keras_backbone():
    x, y = _data()
    for policy, should_move in (("frozen", False), ("train", True)):
        model = _backbone_model()
        bn = model.layers[0].get_layer("bn_a")
        before = bn.moving_mean.numpy().copy()
        StagedFineTuner(
            model,
            [Stage(1, unfreeze="all", lr=1e-2)],
            loss=SCE,
            bn_policy=policy,
        ).run(x, y, verbose=0)
        moved = not np.allclose(before, bn.moving_mean.numpy())
        assert moved == should_move, policy
        conv = model.layers[0].get_layer("conv_a")
        assert conv.trainable


def test_keras_backbone_groups_and_top_n():
    model = _backbone_model()
    names = [g.name for g in hk.finetune.base_groups(model)]
    assert names == ["backbone/conv_a", "backbone/bn_a", "backbone/conv_b"]
    conv_a = model.layers[0].get_layer("conv_a").kernel
    conv_b = model.layers[0].get_layer("conv_b").kernel
    a, b = conv_a.numpy().copy(), conv_b.numpy().copy()
    x, y = _data()
    StagedFineTuner(model, [Stage(1, unfreeze=1, lr=1e-2)], loss=SCE).run(
        x, y, verbose=0
    )
    assert np.allclose(a, conv_a.numpy())
    assert not np.allclose(b, conv_b.numpy())


def test_keras_applications_backbone():
    keras.utils.set_random_seed(0)
    backbone = keras.applications.MobileNetV3Small(
        input_shape=(32, 32, 3),
        include_top=False,
        weights=None,
        include_preprocessing=False,
        pooling="avg",
    )
    model = keras.Sequential(
        [keras.Input((32, 32, 3)), backbone, keras.layers.Dense(2)]
    )
    rng = np.random.default_rng(0)
    x, y = rng.random((8, 32, 32, 3), "float32"), np.arange(8) % 2
    history = StagedFineTuner(
        model, [Stage(1), Stage(1, unfreeze=3, lr=1e-4)], loss=SCE
    ).run(x, y, verbose=0)
    assert history.history["stage"] == [0, 1]
    groups = hk.finetune.base_groups(model)
    top = {id(v) for g in groups[-3:] for v in g.variables}
    head = {id(v) for v in model.layers[-1].weights}
    trainable = {id(v) for v in model.trainable_variables}
    assert trainable - head and trainable - head <= top


def test_resume_after_a_crash_matches_an_uninterrupted_run(
    image_model, tmp_path
):
    x, y = _data()

    def plan(extra=()):
        return [
            Stage(2, lr=1e-2),
            Stage(
                2,
                unfreeze="all",
                # A tuple, as fine_tune's plans: the backup's JSON reads
                # it back as a list, and the plan is still the same.
                lr_range=(1e-4, 1e-3),
                schedule="cosine",
                callbacks=list(extra),
            ),
        ]

    model, _ = _hub_model(image_model)
    full = StagedFineTuner(model, plan(), loss=SCE).run(
        x, y, batch_size=8, shuffle=False, verbose=0
    )
    expected = [w.numpy().copy() for w in model.weights]

    class Crash(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt("killed")

    model, _ = _hub_model(image_model)
    backup = str(tmp_path / "backup")
    with pytest.raises(KeyboardInterrupt):
        StagedFineTuner(
            model, plan([Crash()]), loss=SCE, backup_dir=backup
        ).run(x, y, batch_size=8, shuffle=False, verbose=0)
    state = json.load(open(os.path.join(backup, "state.json")))
    assert state["completed_epochs"] == 2  # epoch 3 was lost in the crash

    model, _ = _hub_model(image_model, seed=99)  # other initial weights
    resumed = StagedFineTuner(model, plan(), loss=SCE, backup_dir=backup).run(
        x, y, batch_size=8, shuffle=False, verbose=0
    )
    assert resumed.history["stage"] == [0, 0, 1, 1]
    for got, want in zip(model.weights, expected):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        resumed.history["loss"], full.history["loss"], rtol=1e-4
    )


def test_nan_stops_the_run_and_keeps_good_weights(
    image_model, tmp_path, caplog
):
    model, _ = _hub_model(image_model)
    kept = {}

    class Keep(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            kept["w"] = [w.numpy().copy() for w in model.weights]

    plan = [
        Stage(1, lr=1e-2, callbacks=[Keep()]),
        Stage(
            1,
            unfreeze="all",
            lr=1e30,
            optimizer=lambda lr: keras.optimizers.SGD(lr),
        ),
        Stage(1, lr=1e-3),
    ]
    x, y = _data()
    backup = str(tmp_path / "backup")
    with caplog.at_level(logging.WARNING, logger="keras_hubkit"):
        history = StagedFineTuner(model, plan, loss=SCE, backup_dir=backup).run(
            x, y, batch_size=8, verbose=0
        )
    assert "Stopped at epoch 2" in caplog.text
    assert "Kept the weights of epoch 1, the last good one." in caplog.text
    assert history.stopped_on_nan
    assert 2 not in history.history["stage"]
    for got, want in zip(model.weights, kept["w"]):
        np.testing.assert_array_equal(got.numpy(), want)
    state = json.load(open(os.path.join(backup, "state.json")))
    assert state["completed_epochs"] == 1  # the backup is the good epoch


def test_nan_in_the_first_epoch_keeps_the_starting_weights(image_model, caplog):
    model, _ = _hub_model(image_model)
    start = [w.numpy().copy() for w in model.weights]
    sgd = lambda lr: keras.optimizers.SGD(lr)  # noqa: E731
    plan = [Stage(2, unfreeze="all", lr=1e30, optimizer=sgd)]
    x, y = _data()
    with caplog.at_level(logging.WARNING, logger="keras_hubkit"):
        history = StagedFineTuner(model, plan, loss=SCE).run(
            x, y, batch_size=8, verbose=0
        )
    assert history.stopped_on_nan
    assert "Kept the weights the run started with." in caplog.text
    for got, want in zip(model.weights, start):
        np.testing.assert_array_equal(got.numpy(), want)


def test_early_stopping_and_best_checkpoint(image_model, tmp_path):
    model, _ = _hub_model(image_model)
    x, y = _data()
    path = str(tmp_path / "best.weights.h5")
    history = StagedFineTuner(
        model,
        [Stage(3, lr=1e-2, early_stopping=0), Stage(1, lr=1e-3)],
        loss=SCE,
        checkpoint_path=path,
    ).run(x, y, validation_data=(x, y), verbose=0)
    assert os.path.exists(path)
    assert history.best_value == pytest.approx(min(history.history["val_loss"]))


def test_fine_tune_one_call(image_model):
    model, base = _hub_model(image_model)
    x, y = _data()
    history = hk.finetune.fine_tune(
        model, x, y, epochs=2, loss=SCE, batch_size=8
    )
    assert history.history["stage"] == [0, 1, 1]
    assert base.trainable
    lrs = history.stage_lrs[1]
    assert lrs["head"] / lrs["base/block1"] == pytest.approx(100)


def test_hub_layer_trainable_patterns(image_model):
    layer = hk.HubLayer(
        image_model, trainable=True, trainable_patterns=["block2/"]
    )
    assert [layer.source_name(v) for v in layer.trainable_weights] == [
        "block2/dense/kernel"
    ]
    layer.trainable = False
    assert layer.trainable_weights == []
    layer.trainable = True
    assert len(layer.trainable_weights) == 1
    layer.set_trainable_patterns(None)
    assert len(layer.trainable_weights) == 4


def test_plan_errors_are_clear(image_model):
    with pytest.raises(errors.StagePlanError, match="positive int"):
        Stage(0)
    with pytest.raises(errors.StagePlanError, match="at most one"):
        Stage(1, layer_decay=0.5, lr_range=(1e-4, 1e-3))
    with pytest.raises(errors.StagePlanError, match="Unknown schedule"):
        Stage(1, schedule="warp")
    model, _ = _hub_model(image_model)
    x, y = _data()
    with pytest.raises(errors.StagePlanError, match="base/block1"):
        StagedFineTuner(model, [Stage(1, unfreeze=["nope/"])], loss=SCE).run(
            x, y, verbose=0
        )


_WORKER = textwrap.dedent(
    """
    import json, os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import tensorflow as tf
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    import keras, numpy as np
    import keras_hubkit as hk
    from keras_hubkit.finetune import Stage, StagedFineTuner
    keras.utils.set_random_seed(0)
    with strategy.scope():
        base = hk.HubLayer(sys.argv[1])
        model = keras.Sequential([keras.Input((8, 8, 3)), base,
                                  keras.layers.Dense(3)])
    rng = np.random.default_rng(0)
    x, y = rng.random((32, 8, 8, 3), "float32"), np.arange(32) % 3
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    plan = [Stage(1, lr=1e-2), Stage(1, unfreeze="all", lr=1e-3)]
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    history = StagedFineTuner(model, plan, loss=loss).run(ds, verbose=0)
    total = float(sum(np.sum(w.numpy()) for w in model.weights))
    print("RESULT", json.dumps({"stages": history.history["stage"],
                                "checksum": total}))
    """
)


@pytest.mark.slow
def test_two_worker_multi_worker_mirrored_strategy(image_model):
    ports = [free_port(), free_port()]
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for index in range(2):
        env = {
            **os.environ,
            "TF_CONFIG": json.dumps(
                {"cluster": cluster, "task": {"type": "worker", "index": index}}
            ),
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", _WORKER, image_model],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=400)
        lines = [line for line in out.splitlines() if line.startswith("RESULT")]
        assert lines, err[-3000:]
        results.append(json.loads(lines[0][len("RESULT ") :]))
    assert results[0]["stages"] == results[1]["stages"] == [0, 1]
    assert results[0]["checksum"] == pytest.approx(
        results[1]["checksum"], rel=1e-6
    )
