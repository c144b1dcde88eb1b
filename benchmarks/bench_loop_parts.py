"""What each part of the package's training loop costs against its
alternative.

One-stage, one-epoch `StagedFineTuner` runs on small SavedModels (a text
embedding and a one-variable model), with validation arrays, at two epoch
lengths, taking turns:

- the default (one step per call): the runner's lean step functions and
  the array pipeline that shuffles small arrays in a buffer;
- Keras's own train and test functions instead of the lean ones;
- a `gather` per batch instead of the shuffle buffer (how large arrays are
  fed);
- Keras's own adapter for the validation arrays instead of the pipeline;
- 32 steps per call (Keras's step loop; what `steps_per_execution="auto"`
  weighs).

Against the default, each alternative costs `fixed + per_step * steps`
more; the two lengths give both terms. For 32 steps per call, `fixed` is
what compiling the step loop costs (the runner predicts it from the
variables the train and test steps carry: `finetune/runner.py`,
`_loop_compile_ms`) and
`-per_step` what it saves per step.

Last, what is left against a hand-written loop: the train step `fit`
traces (Keras's `train_step`, through the lean function) against the
hand-written loop's step of `bench_layer.py` (the same model, loss and
Adam), per model: operations in the graph, time to trace, time of the
first run (TensorFlow optimizes the graph and creates its kernels), and
then both traced steps over steady epochs of 16 batches, each as its loop
runs it.

And the whole of it: `StagedFineTuner` (one stage, everything trained,
BatchNorm training, one step per call) against the hand-written loop of
`bench_layer.py` doing the same, at two run lengths (2 and 8 epochs of 16
steps), taking turns. The package costs `per_stage + per_epoch * epochs`
more: each round's two differences (package run less the loop's beside
it) give both terms for that round, reported as median and interquartile
range over the rounds. The parts of each are timed inside
those runs: preparing the stage (trainability, the optimizer,
`compile`, building its variables) and the work `fit` and the runner do
at every epoch's end and start (the median call of each). Last, both on
a longer stage (8 epochs of 128 steps), the package with its defaults (it
chooses its steps per call): the ratio itself; and `fine_tune` (a head
epoch, then 7 epochs of everything) against the loop doing the same.

    python benchmarks/bench_loop_parts.py [--quick]
"""

import collections
import contextlib
import functools
import os
import tempfile
import time
from unittest import mock

import _common
import bench_layer
import keras
import numpy as np
import tensorflow as tf

import keras_hubkit as hk
from keras_hubkit import _compat
from keras_hubkit.finetune import _pipeline
from keras_hubkit.finetune import callbacks
from keras_hubkit.finetune import runner

import models

SPE = 32
VARIANTS = {
    "keras_functions": "Keras's own train and test functions",
    "gather": "a `gather` per batch",
    "keras_validation": "Keras's adapter for validation arrays",
    "steps_per_call": f"{SPE} steps per call",
}


def specs(workdir):
    """(name, path, make_input(n), batch)."""
    words = np.array(models.VOCAB)
    text = models.save_text_embedding(
        os.path.join(workdir, "text", "m"), dim=64
    )
    tiny = models.save_mul_model(os.path.join(workdir, "tiny"))
    return [
        (
            "text: string embedding",
            text,
            lambda n: tf.constant(
                [" ".join(np.random.choice(words, 8)) for _ in range(n)]
            ),
            256,
        ),
        (
            "tiny: x * v (per-call overhead)",
            tiny,
            lambda n: tf.random.uniform((n, 1)),
            32,
        ),
    ]


def _run(model, x, y, val, batch, variant):
    patches = []
    if variant == "keras_functions":
        patches.append(
            mock.patch.object(_compat, "lean_step_functions", lambda m: False)
        )
    if variant == "gather":
        patches.append(mock.patch.object(_pipeline, "SHUFFLE_BUFFER_BYTES", 0))
    if variant == "keras_validation":
        patches.append(
            mock.patch.object(
                runner, "_validation_pipeline", lambda data, *_: data
            )
        )
    spe = SPE if variant == "steps_per_call" else 1
    for patch in patches:
        patch.start()
    try:
        hk.finetune.StagedFineTuner(
            model,
            [hk.finetune.Stage(1, unfreeze="all", lr=1e-3)],
            loss=bench_layer._keras_loss(),
            steps_per_execution=spe,
        ).run(x, y, validation_data=val, batch_size=batch, verbose=0)
    finally:
        for patch in patches:
            patch.stop()


def measure(name, path, make, batch, lengths, repeats):
    model = keras.Sequential(
        [hk.HubLayer(path, trainable=True), keras.layers.Dense(2)]
    )
    data = {}
    for steps in lengths:
        n = steps * batch
        data[steps] = (make(n), (np.arange(n) % 2).astype("int32"))
    # A quarter as many validation examples, the same for every run.
    n_val = lengths[0] * batch // 4
    val = (make(n_val), (np.arange(n_val) % 2).astype("int32"))
    model(data[lengths[0]][0][:1])
    carried = len(model.weights) + 2 * len(model.trainable_weights)
    cases = {
        f"{variant} {steps}": (
            lambda v=variant, k=steps: _run(model, *data[k], val, batch, v)
        )
        for steps in lengths
        for variant in ("default", *VARIANTS)
    }
    times = _common.interleaved(cases, repeats, warmup=1)
    ms = _common.median_ms(times)
    short, long = lengths
    row = {
        "model": name,
        "batch": batch,
        "steps": list(lengths),
        "repeats": repeats,
        "run_ms": ms,
        "carried_variables": carried,
        "predicted_wrap_ms": runner._loop_compile_ms(model, validated=True),
        "assumed_saved_ms_per_step": runner._SAVED_MS_PER_STEP,
        "extra": {},
    }
    for variant in VARIANTS:
        extra = {k: ms[f"{variant} {k}"] - ms[f"default {k}"] for k in lengths}
        per_step = (extra[long] - extra[short]) / (long - short)
        fixed = extra[short] - per_step * short
        row["extra"][variant] = {"fixed_ms": fixed, "per_step_ms": per_step}
        print(
            f"  {VARIANTS[variant]}: {fixed:+.0f} ms per run, "
            f"{per_step:+.2f} ms per step"
        )
    return row


def _timed_first_runs(function, args):
    """(operations, trace ms, first-run ms) of a fresh `tf.function`."""
    start = time.perf_counter()
    graph = function.get_concrete_function(*args).graph
    traced = time.perf_counter()
    function(*args)
    ran = time.perf_counter()
    return (
        len(graph.get_operations()),
        (traced - start) * 1e3,
        (ran - traced) * 1e3,
    )


EPOCH_STEPS = 16


def step_graphs(name, path, make, batch, repeats):
    """Keras's train step against the hand-written loop's, taking turns."""
    n = batch * 2
    x, y = make(n), (np.arange(n) % 2).astype("int32")
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)
    model = keras.Sequential(
        [hk.HubLayer(path, trainable=True), keras.layers.Dense(2)]
    )
    model(x[:1])
    hand = bench_layer._RawLoop(
        path, x, y, batch, [bench_layer._Plan(1, True, True, 1e-3)], []
    )
    loss = bench_layer._keras_loss()

    made = {}

    def keras_step():
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
        _compat.build_for_fit(model, data.element_spec)
        # The runner's lean train function, the `tf.function` `fit` calls.
        _compat.lean_step_functions(model)
        function = made["keras"] = model.train_function.on_iterator
        return _timed_first_runs(function, (iter(data),))

    def hand_step():
        step = made["hand"] = hand._step(hand.stages[0])
        return _timed_first_runs(step, next(iter(data)))

    results = {"keras train_step": [], "hand-written step": []}
    for _ in range(repeats):
        results["keras train_step"].append(keras_step())
        results["hand-written step"].append(hand_step())
    row = {"model": name, "batch": batch, "repeats": repeats}
    row["steady_epoch"] = _steady_epochs(
        made, make, batch, EPOCH_STEPS, repeats * 3
    )
    for key, runs in results.items():
        ops, trace, first = (np.median(v) for v in zip(*runs))
        row[key] = {"ops": int(ops), "trace_ms": trace, "first_run_ms": first}
        print(
            f"  {key}: {int(ops)} operations, traced in {trace:.0f} ms, "
            f"first run {first:.0f} ms"
        )
    return row


def _steady_epochs(made, make, batch, steps, repeats):
    """The traced steps again, over epochs of `steps` batches from the
    same pipeline, each as its loop runs it: Keras's function reads the
    iterator inside the step, the hand-written loop iterates in Python."""
    n = batch * steps
    x, y = make(n), (np.arange(n) % 2).astype("int32")
    epoch = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch).prefetch(1)
    keras_step, hand_step = made["keras"], made["hand"]

    def keras_epoch():
        iterator = iter(epoch)
        for _ in range(steps):
            logs = keras_step(iterator)
        float(logs["loss"])

    def hand_epoch():
        for xb, yb in epoch:
            loss = hand_step(xb, yb)
        float(loss)

    times = _common.interleaved(
        {"keras train_step": keras_epoch, "hand-written step": hand_epoch},
        repeats,
        warmup=1,
    )
    ratio = _common.ratio(times, "keras train_step", "hand-written step")
    print(
        f"  steady epochs of {steps} steps: Keras's step at "
        f"{_common.fmt_ratio(ratio)} the hand-written step's speed"
    )
    return {
        "steps": steps,
        "repeats": repeats,
        "ms": _common.median_ms(times),
        "ratio": ratio,
    }


# What the package does beyond the hand-written loop, timed inside its
# runs: (owner, method name, key, per "stage" or "epoch").
PARTS = (
    (runner.StagedFineTuner, "_prepare_stage", "prepare", "stage"),
    (keras.Model, "compile", "compile", "stage"),
    (keras.Model, "reset_metrics", "reset_metrics", "epoch"),
    (keras.Model, "_get_metrics_result_or_logs", "metric_results", "epoch"),
    (callbacks.NaNGuard, "on_epoch_end", "nan_guard", "epoch"),
    (callbacks.BestWeights, "on_epoch_end", "best_weights", "epoch"),
    (runner._Recorder, "on_epoch_end", "history", "epoch"),
    # The hand-written loop's counterpart of preparing the stage.
    (bench_layer._RawLoop, "_step", "loop_prepare", "stage"),
)
GAP_EPOCHS = (2, 8)
# A longer stage (epochs, steps per epoch), a few seconds of training.
LONG_STAGE = (8, 128)


@contextlib.contextmanager
def _timed_parts(seconds):
    """Times every call of the `PARTS` into `seconds[label]`."""

    def timed(method, label):
        @functools.wraps(method)
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                seconds[label].append(time.perf_counter() - start)

        return wrapper

    with contextlib.ExitStack() as stack:
        for owner, name, label, _ in PARTS:
            method = getattr(owner, name)
            stack.enter_context(
                mock.patch.object(owner, name, timed(method, label))
            )
        yield


def gap(name, path, make, batch, repeats):
    """`StagedFineTuner` against the hand-written loop at two run lengths:
    what the package pays beyond the loop per stage and per epoch; and on
    a longer stage, the ratio itself."""

    def arrays(steps):
        n = batch * steps
        return make(n), (np.arange(n) % 2).astype("int32")

    x, y = arrays(EPOCH_STEPS)
    model = bench_layer._classifier(path)
    model(x[:1])

    def package(x, y, epochs, steps_per_execution=1):
        hk.finetune.StagedFineTuner(
            model,
            [hk.finetune.Stage(epochs, unfreeze="all", lr=1e-3)],
            loss=bench_layer._keras_loss(),
            bn_policy="train",
            steps_per_execution=steps_per_execution,
        ).run(x, y, batch_size=batch, verbose=0)
        chosen.append(int(model.steps_per_execution))

    chosen = []

    def fine_tune(x, y, epochs):
        hk.finetune.fine_tune(
            model,
            x,
            y,
            epochs=epochs - 1,
            freeze_epochs=1,
            loss=bench_layer._keras_loss(),
            batch_size=batch,
            verbose=0,
        )
        chosen_fine_tune.append(int(model.steps_per_execution))

    chosen_fine_tune = []

    def loop(x, y, epochs, plans=None):
        plans = plans or [bench_layer._Plan(epochs, True, True, 1e-3)]
        return bench_layer._RawLoop(path, x, y, batch, plans, []).run

    seconds = collections.defaultdict(list)

    def timed(run):
        # The parts are timed in the runs that give the two terms only.
        def timed_run():
            with _timed_parts(seconds):
                run()

        return timed_run

    cases = {}
    for epochs in GAP_EPOCHS:
        cases[f"package {epochs}"] = timed(
            functools.partial(package, x, y, epochs)
        )
        cases[f"loop {epochs}"] = timed(loop(x, y, epochs))
    long_epochs, long_steps = LONG_STAGE
    x_long, y_long = arrays(long_steps)
    # The package's defaults here: it chooses its steps per call.
    cases["package long"] = functools.partial(
        package, x_long, y_long, long_epochs, "auto"
    )
    cases["loop long"] = loop(x_long, y_long, long_epochs)
    cases["fine_tune long"] = functools.partial(
        fine_tune, x_long, y_long, long_epochs
    )
    cases["loop fine_tune long"] = loop(
        x_long,
        y_long,
        long_epochs,
        bench_layer._stage_plans(long_epochs)["fine_tune"],
    )
    times = _common.interleaved(cases, repeats, warmup=1)
    ms = _common.median_ms(times)
    short, long = GAP_EPOCHS
    # Per round, each package run less the loop's run beside it (paired:
    # the machine's slow spells fall on both), and from the two lengths
    # that round's terms; their median and spread over the rounds.
    extra = {
        k: np.subtract(times[f"package {k}"], times[f"loop {k}"]) * 1e3
        for k in GAP_EPOCHS
    }
    per_epoch = (extra[long] - extra[short]) / (long - short)
    per_stage = extra[short] - per_epoch * short
    loop_epoch = (ms[f"loop {long}"] - ms[f"loop {short}"]) / (long - short)
    # Each part runs once per stage or once per epoch: the median call.
    parts = {key: float(np.median(seconds[key])) * 1e3 for key in seconds}
    row = {
        "model": name,
        "batch": batch,
        "steps_per_epoch": EPOCH_STEPS,
        "epochs": list(GAP_EPOCHS),
        "repeats": repeats,
        "run_ms": ms,
        # Median and interquartile range of the per-round estimates.
        "per_stage_ms": _common.stats(per_stage.tolist()),
        "per_epoch_ms": _common.stats(per_epoch.tolist()),
        "loop_epoch_ms": loop_epoch,
        "parts": {key: [per, parts[key]] for _, _, key, per in PARTS},
        "long_stage": {
            "epochs": long_epochs,
            "steps_per_epoch": long_steps,
            "loop_ms": ms["loop long"],
            "ratio": _common.ratio(times, "package long", "loop long"),
            # A round's last `package` run is its long stage.
            "steps_per_call": chosen[-1],
            "fine_tune_loop_ms": ms["loop fine_tune long"],
            "fine_tune_ratio": _common.ratio(
                times, "fine_tune long", "loop fine_tune long"
            ),
            # Its last stage's (the first, the head's, is one epoch).
            "fine_tune_steps_per_call": chosen_fine_tune[-1],
        },
    }
    stage, epoch = row["per_stage_ms"], row["per_epoch_ms"]
    print(
        f"  beyond the hand-written loop: {stage['median']:+.0f} ms "
        f"({stage['p25']:+.0f} to {stage['p75']:+.0f}) per stage, "
        f"{epoch['median']:+.2f} ms ({epoch['p25']:+.2f} to "
        f"{epoch['p75']:+.2f}) per epoch (the loop's epoch: "
        f"{loop_epoch:.1f} ms); a stage of {long_epochs} epochs of "
        f"{long_steps} steps ({chosen[-1]} steps per call) at "
        f"{_common.fmt_ratio(row['long_stage']['ratio'])} the loop's speed"
        ", fine_tune over as many epochs at "
        f"{_common.fmt_ratio(row['long_stage']['fine_tune_ratio'])}"
    )
    return row


def main(argv=None):
    parser = _common.parser(__doc__)
    args = parser.parse_args(argv)
    repeats = 3 if args.quick else 7
    lengths = (16, 64) if args.quick else (16, 128)
    rows, graphs, gaps = [], [], []
    with tempfile.TemporaryDirectory() as workdir:
        for name, path, make, batch in specs(workdir):
            print(name)
            rows.append(measure(name, path, make, batch, lengths, repeats))
            graphs.append(step_graphs(name, path, make, batch, repeats))
            # Differences of differences: twice the rounds.
            gaps.append(gap(name, path, make, batch, 2 * repeats))
    _common.save(
        "loop_parts",
        {
            "rows": rows,
            "spe": SPE,
            "variants": VARIANTS,
            "steps": graphs,
            "gaps": gaps,
        },
    )
    return rows


if __name__ == "__main__":
    main()
