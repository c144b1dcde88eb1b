"""HubLayer against its peers: predict, train step and fit, per model shape.

Peers, measured in the same process, interleaved (A B C D A B C D ...):

- raw: `tf.saved_model.load` + a `tf.function` (the floor);
- hk.HubLayer in a Keras 3 model;
- keras.layers.TFSMLayer in a Keras 3 model (where it can do the job);
- tf_keras + tensorflow_hub.KerasLayer (if the `bench` extra is installed).

It also records what each path actually does when fine-tuning: trainable
variables updated, BatchNorm statistics updated, regularization losses
counted.

    python benchmarks/bench_layer.py [--quick] [--loops-only]

MobileNet V3 rows need the real models (HUBKIT_REAL_MODELS); without them
the text and tiny models are measured alone.
"""

import contextlib
import inspect
import io
import json
import math
import os
import re
import sys
import tempfile
import time

import _common
import keras
import numpy as np
import tensorflow as tf

import keras_hubkit as hk

import models

MOBILENET = _common.MOBILENET


def model_specs(workdir):
    """(name, path, make_input(batch), batches) for each model shape."""
    specs = []
    if os.path.isdir(MOBILENET):
        specs.append(
            (
                "image: MobileNetV3 (real TF Hub)",
                MOBILENET,
                lambda b: tf.random.uniform((b, 224, 224, 3)),
                (1, 32),
            )
        )
    text = models.save_text_embedding(
        os.path.join(workdir, "text", "m"), dim=64
    )
    words = np.array(models.VOCAB)
    specs.append(
        (
            "text: string embedding",
            text,
            lambda b: tf.constant(
                [" ".join(np.random.choice(words, 8)) for _ in range(b)]
            ),
            (1, 256),
        )
    )
    tiny = models.save_mul_model(os.path.join(workdir, "tiny"))
    specs.append(
        (
            "tiny: x * v (per-call overhead)",
            tiny,
            lambda b: tf.random.uniform((b, 1)),
            (1, 1024),
        )
    )
    return specs


# ------------------------------------------------------------- the paths
# `fit` over a dataset with tf.data's autotuner off. Keras reads the
# iterator inside its compiled step; with the autotuner on, the step's
# kernels now and then get one thread for a whole call on this 2-core
# machine (twice the wall time, the same CPU time), whichever layer runs.
FIT_STEADY = "fit, autotune off"
KINDS = ("predict", "train", "fit", FIT_STEADY)


def takes_training(obj):
    """Whether the SavedModel's `__call__` takes `training`. (An earlier
    check read `str(function_spec)`, which names no argument, so the floor
    never ran in training mode: no BatchNorm statistics nor updates.)"""
    spec = getattr(obj.__call__, "function_spec", None)
    argspec = getattr(spec, "fullargspec", None)
    names = list(getattr(argspec, "args", []) or [])
    names += list(getattr(argspec, "kwonlyargs", []) or [])
    return "training" in names


def raw_path(path, x, bn_updates=True, jit_compile=False):
    """The floor. With `bn_updates=False` the train step calls the model
    with `training=False` (no batch statistics, no BatchNorm updates), the
    work `TFSMLayer` does when it trains."""
    obj = tf.saved_model.load(path)
    variables = list(obj.trainable_variables)
    has_training = takes_training(obj)

    def call(inputs, training):
        return obj(inputs, training=training) if has_training else obj(inputs)

    @tf.function(jit_compile=jit_compile)
    def predict(inputs):
        return call(inputs, False)

    @tf.function(jit_compile=jit_compile)
    def train(inputs):
        with tf.GradientTape() as tape:
            out = call(inputs, bn_updates)
            loss = tf.reduce_mean(tf.square(out))
            for fn in getattr(obj, "regularization_losses", []):
                loss += fn()
        grads = tape.gradient(loss, variables)
        for v, g in zip(variables, grads):
            if g is not None:
                v.assign_sub(0.001 * g)
        return loss

    target = np.zeros(predict(x).shape, "float32")

    def five_steps():
        return [train(x) for _ in range(5)][-1].numpy()

    return {
        "predict": lambda: predict(x).numpy(),
        "train": lambda: train(x).numpy(),
        "fit": five_steps,
        FIT_STEADY: five_steps,  # no dataset: the same five steps
        "obj": obj,
        "target": target,
    }


def keras_path(layer, x, target, keras_module=None, **compile_kwargs):
    """A one-layer Sequential of `keras_module` (Keras 3 or tf_keras)."""
    if keras_module is None:
        import keras as keras_module

    model = keras_module.Sequential([layer])
    model.compile(keras_module.optimizers.SGD(0.001), "mse", **compile_kwargs)
    model.predict_on_batch(x)
    data = tf.data.Dataset.from_tensors((x, target)).repeat(5)
    # The same data with tf.data's autotuner off: see FIT_STEADY.
    options = tf.data.Options()
    options.autotune.enabled = False
    steady = data.with_options(options)
    return {
        "predict": lambda: model.predict_on_batch(x),
        "train": lambda: model.train_on_batch(x, target),
        "fit": lambda: model.fit(data, epochs=1, verbose=0, shuffle=False),
        FIT_STEADY: lambda: model.fit(
            steady, epochs=1, verbose=0, shuffle=False
        ),
        "model": model,
    }


def tf_keras_path(path, x, target):
    import tensorflow_hub as hub
    import tf_keras

    layer = hub.KerasLayer(path, trainable=True)
    return keras_path(layer, x, target, keras_module=tf_keras)


def build_paths(path, x, kind="predict"):
    import keras

    paths = {"raw": raw_path(path, x)}
    if kind != "predict":
        paths["raw_no_bn"] = raw_path(path, x, bn_updates=False)
    target = paths["raw"]["target"]
    paths["hubkit"] = keras_path(hk.HubLayer(path, trainable=True), x, target)
    try:
        tfsm = keras.layers.TFSMLayer(path, call_endpoint="__call__")
        paths["tfsm"] = keras_path(tfsm, x, target)
    except Exception as e:  # TFSMLayer refuses some models outright.
        print(f"  TFSMLayer cannot run this model: {str(e)[:120]}")
    try:
        paths["tf_keras+hub"] = tf_keras_path(path, x, target)
    except ImportError:
        print(
            "  tf_keras/tensorflow_hub not installed: pip install -e "
            "'.[bench]' to compare with hub.KerasLayer"
        )
    return paths


def traces(model):
    """How many times the Keras model's train step was traced, found in
    its `train_function`'s closure (a benchmark-only peek): 1 means no
    retrace across `fit` calls."""

    def functions(fn, depth=0):
        found = []
        for cell in getattr(fn, "__closure__", None) or []:
            value = cell.cell_contents
            if hasattr(value, "experimental_get_tracing_count"):
                found.append(value)
            elif callable(value) and depth < 3:
                found += functions(value, depth + 1)
        return found

    counts = [
        f.experimental_get_tracing_count()
        for f in functions(getattr(model, "train_function", None))
    ]
    return max(counts) if counts else None


# ------------------------------------------------------------ correctness
def what_it_does(path, x):
    """Per path: trainable variables, BN statistics updated, losses."""
    import keras

    obj = tf.saved_model.load(path)
    publisher = {id(v) for v in getattr(obj, "trainable_variables", [])}
    others = [v for v in obj.variables if id(v) not in publisher]
    found = {}
    for name in ("hubkit", "tfsm"):
        fresh = tf.saved_model.load(path)
        if name == "hubkit":
            layer = hk.HubLayer(fresh, trainable=True)
        else:
            try:
                layer = keras.layers.TFSMLayer(path, call_endpoint="__call__")
            except Exception:
                continue
        model = keras.Sequential([layer])
        try:
            out = model.predict_on_batch(x)
        except Exception as e:  # TFSMLayer fails on some inputs
            found[name] = {"error": _why_it_failed(e)}
            continue
        model.compile(keras.optimizers.SGD(0.01), "mse")
        stats = [
            v
            for v in layer.weights
            if "moving" in v.path or "mean" in v.path or "variance" in v.path
        ]
        before = [v.numpy().copy() for v in stats]
        model.train_on_batch(x, np.zeros(out.shape, "float32"))
        moved = sum(
            not np.allclose(b, v.numpy()) for b, v in zip(before, stats)
        )
        found[name] = {
            "trainable_weights": len(layer.trainable_weights),
            "publisher_trainable": len(publisher),
            "statistics": len(others),
            "statistics_updated": moved,
            "regularization_losses": len(model.losses),
            "publisher_losses": len(getattr(obj, "regularization_losses", [])),
        }
    return found


def _why_it_failed(error):
    """A short reason for the page: Keras wraps the SavedModel's own error
    under a generic first line."""
    text = str(error)
    got = re.search(r"<tf\.Tensor '[^']*' shape=\([^)]*\) dtype=(\w+)>", text)
    wanted = re.search(r"TensorSpec\(.*?dtype=tf\.(\w+)", text)
    if "matching concrete function" in text and got and wanted:
        return (
            f"{type(error).__name__}: the SavedModel takes {wanted[1]} "
            f"inputs and TFSMLayer passed {got[1]} (no function matches)"
        )
    cast = re.search(
        r"Can not cast TensorSpec\(.*?dtype=tf\.(\w+).*?\) to "
        r"TensorSpec\(.*?dtype=tf\.(\w+)",
        text,
    )
    if cast:
        return (
            f"{type(error).__name__}: the SavedModel takes {cast[2]} "
            f"inputs and TFSMLayer passed {cast[1]} (no function matches)"
        )
    lines = [line for line in text.splitlines() if line.strip()]
    return f"{type(error).__name__}: {(lines or [''])[-1][:120]}"


# -------------------------------------------------- the package's own loops
LOOP_SIZES = {  # model prefix -> (examples, batch, epochs)
    "image": (128, 32, 3),
    "text": (4096, 256, 3),
    "tiny": (4096, 32, 3),
}


def _loop_data(make, n):
    x = make(n)
    y = (np.arange(n) % 2).astype("int32")
    return x, y


def _classifier(path, model_class=keras.Sequential, name=None):
    return model_class(
        [hk.HubLayer(path, trainable=True), keras.layers.Dense(2)], name=name
    )


# The what-if row of the training loops (`_BareStepModel`).
BARE_STEP = "StagedFineTuner, bare train_step (what-if)"


def _keras_loss():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


class _OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """fastai's one-cycle rate, written by hand in TensorFlow: cosine up
    from `peak / div` over `pct_start` of the steps, then down to
    `peak / div_final`."""

    def __init__(self, peak, steps, div, div_final, pct_start):
        self.peak, self.div, self.div_final = peak, div, div_final
        self.up = max(round(steps * pct_start), 1)
        self.down = max(steps - self.up, 1)

    @staticmethod
    def _cosine(start, end, t):
        t = tf.clip_by_value(t, 0.0, 1.0)
        return end + (start - end) * 0.5 * (1.0 + tf.cos(math.pi * t))

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        return tf.where(
            step < self.up,
            self._cosine(self.peak / self.div, self.peak, step / self.up),
            self._cosine(
                self.peak,
                self.peak / self.div_final,
                (step - self.up) / self.down,
            ),
        )


class _Plan:
    """One stage of a hand-written loop: `epochs`, whether the base trains,
    whether it runs with `training=True` (BatchNorm updates), and its rates:
    a constant `lr`, or fastai's one-cycle per group (`cycle`: the
    `one_cycle` arguments; `spread`: the lowest group's rate as a fraction
    of the head's, geometric in between, as `Stage(lr_range=...)`)."""

    def __init__(
        self, epochs, train_base, bn_updates, lr, cycle=None, spread=None
    ):
        self.epochs, self.train_base, self.bn_updates = (
            epochs,
            train_base,
            bn_updates,
        )
        self.lr, self.cycle, self.spread = lr, cycle, spread

    def rates(self, groups):
        """Peak rate per group (bottom to top), then the head's."""
        if self.spread is None:
            return [self.lr] * (len(groups) + 1)
        low, points = self.lr * self.spread, len(groups) + 1
        return [
            low * (self.lr / low) ** (i / max(points - 1, 1))
            for i in range(points)
        ]

    def schedule(self, rate, steps):
        return (
            rate if self.cycle is None else _OneCycle(rate, steps, **self.cycle)
        )


def _stage_plans(epochs):
    """Each package loop's stages, for the hand-written loop to repeat."""
    return {
        # Stage(epochs, unfreeze="all", lr=1e-3), bn_policy="train".
        "StagedFineTuner": [_Plan(epochs, True, True, 1e-3)],
        # fine_tune's fastai defaults (base_lr=2e-3, lr_mult=100): a head
        # cycle at 2e-3, then everything, rates from 1e-5 to 1e-3, each
        # group its own Adam and one-cycle; BatchNorm frozen throughout.
        "fine_tune": [
            _Plan(
                1,
                False,
                False,
                2e-3,
                dict(div=25.0, div_final=1e5, pct_start=0.99),
            ),
            _Plan(
                epochs - 1,
                True,
                False,
                1e-3,
                dict(div=5.0, div_final=1e5, pct_start=0.3),
                spread=0.01,
            ),
        ],
    }


class _RawLoop:
    """A hand-written training loop: `tf.saved_model.load`, a Dense head,
    Keras's Adam (one per group with its own rate, where the package's loop
    has per-group rates), a `tf.function` step over a shuffled, batched,
    prefetched `tf.data` pipeline (autotuner off). A trained base adds the
    SavedModel's
    regularization losses. Every run makes its pipeline from the arrays and
    traces its steps afresh, as every package run does."""

    def __init__(self, path, x, y, batch, stages, epoch_times):
        self.obj = tf.saved_model.load(path)
        self.has_training = takes_training(self.obj)
        self.head = keras.layers.Dense(2)
        self.head.build(self._call(x[:1], False).shape)
        self.x, self.y, self.batch = x, y, batch
        self.steps = math.ceil(len(y) / batch)
        self.groups = _variable_groups(self.obj.trainable_variables)
        self.stages = stages
        self.epoch_times = epoch_times
        self.loss = _keras_loss()

    def _call(self, x, training):
        if self.has_training:
            return self.obj(x, training=training)
        return self.obj(x)

    def _optimizers(self, plan):
        """(optimizer, variables) pairs, one per distinct rate."""
        groups = self.groups if plan.train_base else []
        rates = plan.rates(groups)
        steps = self.steps * plan.epochs
        pairs = {}
        for rate, variables in zip(
            rates, [*groups, list(self.head.trainable_variables)]
        ):
            if rate not in pairs:
                optimizer = keras.optimizers.Adam(plan.schedule(rate, steps))
                pairs[rate] = (optimizer, [])
            pairs[rate][1].extend(variables)
        for optimizer, variables in pairs.values():
            # Built here, as a careful hand-written loop does, so the step
            # is traced once (creating variables inside it traces twice).
            optimizer.build(variables)
        return list(pairs.values())

    def _step(self, plan):
        pairs = self._optimizers(plan)
        variables = [v for _, group in pairs for v in group]
        regularizers = getattr(self.obj, "regularization_losses", [])

        @tf.function
        def step(x, y):
            with tf.GradientTape() as tape:
                features = self._call(x, plan.bn_updates)
                loss = self.loss(y, self.head(features))
                if plan.train_base:
                    loss += tf.add_n([fn() for fn in regularizers] or [0.0])
            grads = tape.gradient(loss, variables)
            start = 0
            for optimizer, group in pairs:
                end = start + len(group)
                optimizer.apply_gradients(zip(grads[start:end], group))
                start = end
            return loss

        return step

    def run(self):
        # tf.data's autotuner off, as the package's pipelines (and its
        # guide's advice): with it on, whole epochs sometimes ran on one
        # thread here (`bench_autotune.py`), whichever loop read them.
        options = tf.data.Options()
        options.autotune.enabled = False
        data = (
            tf.data.Dataset.from_tensor_slices((self.x, self.y))
            .shuffle(len(self.y))
            .batch(self.batch)
            .prefetch(tf.data.AUTOTUNE)
            .with_options(options)
        )
        for plan in self.stages:
            step = self._step(plan)
            for epoch in range(plan.epochs):
                start = time.perf_counter()
                for x, y in data:
                    loss = step(x, y)
                float(loss)
                if epoch:
                    self.epoch_times.append(time.perf_counter() - start)


def _variable_groups(variables):
    """A SavedModel's variables grouped by the first name component after
    the prefix they share, in order of first appearance (as
    `HubLayer.variable_groups`, which orders by first use; for the rates
    only the number of groups and their sizes matter)."""
    paths = [v.name.split(":")[0].split("/")[:-1] for v in variables]
    common = 0
    while paths and all(
        len(p) > common and p[common] == paths[0][common] for p in paths
    ):
        common += 1
    groups = {}
    for variable, parts in zip(variables, paths):
        key = parts[common] if len(parts) > common else variable.name
        groups.setdefault(key, []).append(variable)
    return list(groups.values())


class _BareStepModel(keras.Sequential):
    """What-if, not what the package runs: a `train_step` without Keras's
    loss container, its sample-weighted loss tracker and metric results
    (the forward pass, the compiled loss plus the layers' losses, the
    gradient, the optimizer and a plain mean of the loss), to measure how
    much of the gap to the hand-written loop a train step of our own could
    close; the rest is `fit`'s and `compile`'s own per-stage cost."""

    def train_step(self, data):
        x, y = data[0], data[1]
        with tf.GradientTape() as tape:
            loss = self.loss(y, self(x, training=True))
            if self.losses:
                loss += tf.add_n(self.losses)
        variables = self.trainable_weights
        self.optimizer.apply(tape.gradient(loss, variables), variables)
        self._loss_tracker.update_state(loss)
        return {"loss": self._loss_tracker.result()}


class _EpochTimes(keras.callbacks.Callback):
    """Records epoch times after each `fit`'s first epoch (which traces),
    and the steps per call each `fit` ran. Every `fit` sets the callbacks'
    params, also for a staged run, whose run callbacks see
    `on_train_begin` once."""

    def __init__(self, times, steps_per_call=None):
        super().__init__()
        self.times = times
        self.steps_per_call = (
            steps_per_call if steps_per_call is not None else []
        )

    def set_params(self, params):
        super().set_params(params)
        self.first = True
        if self.model is not None:
            self.steps_per_call.append(int(self.model.steps_per_execution))

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if not self.first:
            self.times.append(time.perf_counter() - self.start)
        self.first = False


def training_loops(name, path, make, quick):
    """`StagedFineTuner` (one stage, everything trained, BatchNorm
    training) and `fine_tune` (fastai's defaults: a head epoch, then
    everything, BatchNorm frozen) against a hand-written loop doing the
    same work on the same model and data: per run, and per steady epoch."""
    n, batch, epochs = LOOP_SIZES[name.split(":")[0]]
    if quick:
        n = max(batch * 2, n // 4)
    x, y = _loop_data(make, n)
    epoch_times = {}
    plans = _stage_plans(epochs)
    cases = {}
    for plan, stages in plans.items():
        raw = _RawLoop(
            path, x, y, batch, stages, epoch_times.setdefault(f"raw {plan}", [])
        )
        cases[f"raw {plan}"] = raw.run
    model_f = _classifier(path)
    model_f(x[:1])
    steps_per_call = {}
    timer_f = _EpochTimes(
        epoch_times.setdefault("fine_tune", []),
        steps_per_call.setdefault("fine_tune", []),
    )

    def staged_run(key, model_class=keras.Sequential):
        model = _classifier(
            path, model_class, name=model_class.__name__.strip("_")
        )
        model(x[:1])
        timer = _EpochTimes(
            epoch_times.setdefault(key, []), steps_per_call.setdefault(key, [])
        )

        def staged():
            hk.finetune.StagedFineTuner(
                model,
                [hk.finetune.Stage(epochs, unfreeze="all", lr=1e-3)],
                loss=_keras_loss(),
                bn_policy="train",
            ).run(x, y, batch_size=batch, verbose=0, callbacks=[timer])

        return staged

    # Steady epochs of fine_tune are timed where it takes callbacks.
    takes = inspect.signature(hk.finetune.fine_tune).parameters
    more = {"callbacks": [timer_f]} if "callbacks" in takes else {}
    more.update({"verbose": 0} if "verbose" in takes else {})

    def fine_tune():
        # Without `verbose`, keep its progress bars off the output.
        with contextlib.redirect_stdout(io.StringIO()):
            hk.finetune.fine_tune(
                model_f,
                x,
                y,
                epochs=epochs - 1,
                freeze_epochs=1,
                loss=_keras_loss(),
                batch_size=batch,
                **more,
            )

    cases["StagedFineTuner"] = staged_run("StagedFineTuner")
    cases["fine_tune"] = fine_tune
    # (package case, the hand-written loop it is compared with)
    pairs = [(plan, plan) for plan in plans]
    if not name.startswith("image"):  # MobileNet's runs are at the floor
        cases[BARE_STEP] = staged_run(BARE_STEP, _BareStepModel)
        pairs.append((BARE_STEP, "StagedFineTuner"))
    # MobileNet runs are mostly tracing and cost tens of seconds each.
    repeats = 2 if quick else (3 if name.startswith("image") else 7)
    cpu = {}
    times = _common.interleaved(cases, repeats, warmup=1, cpu=cpu)
    rows = []
    for plan, hand in pairs:
        raw = f"raw {hand}"
        epoch = {k: epoch_times[k] for k in (plan, raw)}
        steady = all(epoch.values())
        rows.append(
            {
                "model": name,
                "loop": plan,
                "raw": raw,
                "what_if": plan == BARE_STEP,
                "steps_per_call": max(steps_per_call.get(plan) or [0]) or None,
                "examples": n,
                "batch": batch,
                "epochs": epochs,
                "repeats": repeats,
                "run_ms": {
                    k: _common.stats(times[k])["median"] * 1e3
                    for k in (plan, raw)
                },
                "vs_raw_run": _common.ratio(times, plan, raw),
                "vs_raw_run_cpu": _common.ratio(cpu, plan, raw),
                "vs_raw_epoch": (
                    _common.ratio(epoch, plan, raw) if steady else None
                ),
                "epoch_ms": {
                    k: _common.stats(v)["median"] * 1e3
                    for k, v in epoch.items()
                    if v
                },
            }
        )
        row = rows[-1]
        print(
            f"  {plan:16} run {row['run_ms'][plan]:.0f} ms, raw "
            f"{row['run_ms'][raw]:.0f} ms: "
            f"{_common.fmt_ratio(row['vs_raw_run'])}; steady epoch "
            + (
                _common.fmt_ratio(row["vs_raw_epoch"])
                if steady
                else "not timed (no steady epoch)"
            )
        )
    return rows


def main(argv=None):
    parser = _common.parser(__doc__)
    parser.add_argument(
        "--loops-only",
        action="store_true",
        help="measure only the training loops; keep the other results",
    )
    args = parser.parse_args(argv)
    repeats = 7 if args.quick else 15
    if args.loops_only:
        return _loops_only(args.quick)
    results = {"cases": []}
    with tempfile.TemporaryDirectory() as workdir:
        for name, path, make, batches in model_specs(workdir):
            for batch in batches:
                x = make(batch)
                print(f"{name}, batch {batch}")
                for kind in KINDS:
                    # Fresh models per kind: Keras retraces when one model
                    # alternates between train_on_batch and fit.
                    paths = build_paths(path, x, kind)
                    cases = {p: v[kind] for p, v in paths.items()}
                    # fit: more calls than before, to tell noise from cost.
                    fit = kind.startswith("fit")
                    n = max(3, repeats // (2 if fit else 1))
                    cpu = {}
                    times = _common.interleaved(cases, n, cpu=cpu)
                    row = {
                        "model": name,
                        "batch": batch,
                        "kind": kind,
                        "ms": _common.median_ms(times),
                        "vs": {
                            p: _common.ratio(times, "hubkit", p)
                            for p in times
                            if p != "hubkit"
                        },
                        "vs_cpu": {
                            p: _common.ratio(cpu, "hubkit", p)
                            for p in cpu
                            if p != "hubkit"
                        },
                        "repeats": n,
                    }
                    if fit:
                        row["traces"] = {
                            p: traces(v["model"])
                            for p, v in paths.items()
                            if "model" in v
                        }
                    results["cases"].append(row)
                    print(
                        f"  {kind:7} "
                        + "  ".join(
                            f"{p} {ms:.2f} ms" for p, ms in row["ms"].items()
                        )
                    )
            results.setdefault("correctness", {})[name] = what_it_does(
                path, make(4)
            )
            results.setdefault("loops", []).extend(
                training_loops(name, path, make, args.quick)
            )
    results.pop("loops_environment", None)
    _common.save("layer", results)
    return results


def _loops_only(quick):
    """Measures the loops again and keeps the other results (and their
    environment: the page dates each part by its own run)."""
    found = [
        os.path.join(folder, "layer.json")
        for folder in (_common.results_folder(quick), _common.RESULTS)
    ]
    found = [p for p in found if os.path.exists(p)]
    if not found:
        sys.exit(
            "--loops-only keeps the other results of a previous run, and "
            "there is none: run python benchmarks/bench_layer.py first."
        )
    with open(found[0]) as f:
        results = json.load(f)
    results["loops"] = []
    with tempfile.TemporaryDirectory() as workdir:
        for name, handle, make, _ in model_specs(workdir):
            print(name)
            results["loops"].extend(training_loops(name, handle, make, quick))
    _common.save("layer", results, environment_key="loops_environment")
    return results


if __name__ == "__main__":
    main()
