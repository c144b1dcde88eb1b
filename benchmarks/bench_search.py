"""keras-tuner: a head-only search the size of a real one, on MobileNet V3,
with cached features against the same search uncached (same trials, same
scores), the fixed cost of a cached trial in milliseconds, and the cost of
rebuilding a MobileNet-sized HubLayer per trial.

The search: GridSearch over head width and depth and label smoothing, 20
trials of 5 epochs on 1,000 training and 250 validation images (a
synthetic task: noise images whose class shows in their colour balance).
By default the whole grid also runs uncached (the base on every batch,
about 25 s a trial here): the uncached time per trial is what the
speed-up compares, and the scores are compared trial by trial with the
cached ones. `--uncached-trials N` runs only the first N uncached, for
time. The three kinds of trial (cached, hand-written, uncached) run one
after another, not in turns.

    python benchmarks/bench_search.py [--quick] [--uncached-trials N]

Needs the real MobileNet V3 (HUBKIT_REAL_MODELS).
"""

import gc
import statistics
import tempfile
import time

import _common
import keras
import keras_tuner
import numpy as np

import keras_hubkit as hk

MOBILENET = _common.MOBILENET
EPOCHS = 5
BATCH = 32

# Shared by the timing hooks below (keras-tuner deep-copies callbacks).
_TIMES = {"trials": [], "epochs": []}


class _TimedGrid(keras_tuner.GridSearch):
    """GridSearch that records each trial's wall time."""

    def on_trial_begin(self, trial):
        self._trial_start = time.perf_counter()
        super().on_trial_begin(trial)

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        _TIMES["trials"].append(time.perf_counter() - self._trial_start)


class _EpochTimer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        _TIMES["epochs"].append((epoch, time.perf_counter() - self._start))


def make_data(n, seed):
    """Images whose class shows in their colour balance, plus noise."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = rng.random((n, 224, 224, 3), "float32") * 0.6
    x[np.arange(n), :, :, y] += 0.4
    return x, y


def hypermodel(cache):
    return hk.tuning.HubClassifierHyperModel(
        MOBILENET,
        3,
        input_shape=(224, 224, 3),
        head_epochs=[EPOCHS],
        unfreeze_groups=[0],
        dropout=[0.0],
        head_widths=[0, 16, 32, 64, 128, 256],
        head_depths=[1, 2],
        label_smoothing=[0.0, 0.1],
        cache_features=cache,
    )


def search(cache, trials, train, val, directory):
    """Runs `trials` trials; returns (scores by trial, seconds per trial,
    the hypermodel)."""
    model = hypermodel(cache)
    tuner = _TimedGrid(
        model,
        objective="val_loss",
        max_trials=trials,
        directory=directory,
        project_name=f"cache_{cache}",
    )
    _TIMES["trials"].clear()
    _TIMES["epochs"].clear()
    keras.utils.set_random_seed(0)
    tuner.search(
        *train,
        epochs=EPOCHS,
        validation_data=val,
        verbose=0,
        batch_size=BATCH,
        callbacks=[_EpochTimer()],
    )
    trials_by_id = sorted(
        tuner.oracle.trials.values(), key=lambda t: t.trial_id
    )
    scores = [t.score for t in trials_by_id]
    return scores, list(_TIMES["trials"]), list(_TIMES["epochs"]), tuner


def new_head_shapes(tuner):
    """Per trial, in order: whether its head shape is new to the search
    (so it traces its head's functions)."""
    seen, new = set(), []
    trials = sorted(tuner.oracle.trials.values(), key=lambda t: t.trial_id)
    for trial in trials:
        values = trial.hyperparameters.values
        shape = (values.get("head_width"), values.get("head_depth"))
        new.append(shape not in seen)
        seen.add(shape)
    return new


def reevaluate_best(tuner, val):
    """The validation loss of `get_best_models`' model (its best epoch)."""
    model = tuner.get_best_models(1)[0]
    smoothing = tuner.get_best_hyperparameters(1)[0]["label_smoothing"]
    loss = keras.losses.CategoricalCrossentropy(
        from_logits=True, label_smoothing=smoothing
    )
    logits = model.predict(val[0], verbose=0, batch_size=256)
    return float(loss(np.eye(3, dtype="float32")[val[1]], logits))


def hand_written_trials(tuner, train, val):
    """The cached trials again as a careful hand-written loop would run
    them: features computed once, then per trial the same head (rebuilt
    from the trial's model), Keras's Adam at the plan's rate, a
    `tf.function` step over a shuffled, batched, prefetched `tf.data`
    pipeline and a `tf.function` validation loss after every epoch.
    Returns seconds per trial, in trial order."""
    base = keras.Sequential([hk.HubLayer(MOBILENET)])
    features = [
        base.predict(x, batch_size=256, verbose=0) for x, _ in (train, val)
    ]
    eye = np.eye(3, dtype="float32")
    hypermodel = tuner.hypermodel
    times = []
    trials = sorted(tuner.oracle.trials.values(), key=lambda t: t.trial_id)
    for trial in trials:
        hp = trial.hyperparameters
        model = hypermodel.build(hp)  # the trial's architecture, untimed
        start = time.perf_counter()
        _hand_written_trial(
            _head_of(model, features[0].shape[1:]),
            keras.losses.CategoricalCrossentropy(
                from_logits=True, label_smoothing=hp["label_smoothing"]
            ),
            hypermodel.plan(hp, EPOCHS)[0].lr,
            (features[0], eye[train[1]]),
            (features[1], eye[val[1]]),
        )
        times.append(time.perf_counter() - start)
    return times


def _hand_written_trial(head, loss_fn, lr, train, val):
    import tensorflow as tf

    optimizer = keras.optimizers.Adam(lr)
    optimizer.build(head.trainable_variables)
    data = (
        tf.data.Dataset.from_tensor_slices(train)
        .shuffle(len(train[1]))
        .batch(BATCH)
        .prefetch(tf.data.AUTOTUNE)
    )

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, head(x, training=True))
        grads = tape.gradient(loss, head.trainable_variables)
        optimizer.apply_gradients(zip(grads, head.trainable_variables))

    @tf.function
    def val_loss(x, y):
        return loss_fn(y, head(x, training=False))

    for _ in range(EPOCHS):
        for x, y in data:
            step(x, y)
        float(val_loss(*val))


def _head_of(model, feature_shape):
    """A fresh copy of the layers after the base, on features."""
    inputs = keras.Input(feature_shape)
    x = inputs
    for layer in model.layers:
        if isinstance(layer, (keras.layers.InputLayer, hk.HubLayer)):
            continue
        x = layer.__class__.from_config(layer.get_config())(x)
    return keras.Model(inputs, x)


def keras_tuner_cleanup_ms(repeats=5):
    """What keras-tuner's `_try_build` does before every trial."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        keras.backend.clear_session()
        gc.collect()
        times.append(time.perf_counter() - start)
    return _common.stats(times)


def rebuild_cost(repeats):
    import resource

    times = []
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(repeats):
        keras.backend.clear_session()
        start = time.perf_counter()
        hk.HubLayer(MOBILENET, trainable=True)
        times.append(time.perf_counter() - start)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss
    return _common.stats(times)["median"], grown / 1024 / repeats


def _ms(stats):
    return {k: v * 1e3 if k != "n" else v for k, v in stats.items()}


def main(argv=None):
    parser = _common.parser(__doc__)
    parser.add_argument(
        "--uncached-trials",
        type=int,
        default=None,
        help="trials of the grid also run uncached (default all 20; 2 quick)",
    )
    args = parser.parse_args(argv)
    _common.require_real_model()
    trials = 6 if args.quick else 20
    n, n_val = (200, 50) if args.quick else (1000, 250)
    uncached_trials = args.uncached_trials or (2 if args.quick else trials)
    uncached_trials = min(uncached_trials, trials)
    train, val = make_data(n, 0), make_data(n_val, 1)
    with tempfile.TemporaryDirectory() as directory:
        start = time.perf_counter()
        scores_c, times_c, epochs_c, tuner = search(
            True, trials, train, val, directory
        )
        cached_total = time.perf_counter() - start
        cleanup = keras_tuner_cleanup_ms()
        best_eval = reevaluate_best(tuner, val)
        times_h = hand_written_trials(tuner, train, val)
        scores_u, times_u, _, _ = search(
            False, uncached_trials, train, val, directory
        )
    # The first cached trial also computes the features; later ones are the
    # steady state a longer search pays per trial.
    features_s = times_c[0] - statistics.median(times_c[1:])
    cached_stats = _common.stats(times_c[1:])
    uncached_stats = _common.stats(times_u)
    per_trial_c = cached_total / trials
    # Fixed cost: a trial's time beyond its epochs (epochs after the first
    # of each trial are steady state: no tracing, no building).
    steady_epochs = [s for epoch, s in epochs_c if epoch > 0]
    epoch_s = statistics.median(steady_epochs)
    fixed = [t - EPOCHS * epoch_s for t in times_c[1:]]
    fixed_stats = _common.stats(fixed)
    new = new_head_shapes(tuner)[1:]
    fixed_by_shape = {
        kind: _common.stats([f for f, n in zip(fixed, new) if n == is_new])
        for kind, is_new in (("new_shape", True), ("seen_shape", False))
        if any(n == is_new for n in new)
    }
    speed = {
        "ratio": uncached_stats["median"] / cached_stats["median"],
        "low": uncached_stats["p25"] / cached_stats["p75"],
        "high": uncached_stats["p75"] / cached_stats["p25"],
    }
    speed_with_features = uncached_stats["median"] / per_trial_c
    # Against the hand-written loop: every trial after the first (the
    # first cached one also computed the features).
    vs_hand = _common.ratio(
        {"cached": times_c[1:], "hand": times_h[1:]}, "cached", "hand"
    )
    common = list(zip(scores_u, scores_c[:uncached_trials]))
    max_diff = max(abs(u - c) for u, c in common)
    best_u = min(scores_u)
    best_c_common = min(scores_c[:uncached_trials])
    print(
        f"search: {trials} trials x {EPOCHS} epochs, {n} training + {n_val} "
        f"validation images, batch {BATCH}"
    )
    print(
        f"cached: {cached_stats['median'] * 1e3:.0f} ms per trial (median of "
        f"{cached_stats['n']} after the first; the first also computed the "
        f"features: +{features_s:.1f} s); {per_trial_c:.2f} s per trial "
        f"over the whole search"
    )
    print(
        f"uncached: {uncached_stats['median']:.2f} s per trial (median of "
        f"{uncached_stats['n']} trials"
        + (
            f", the first {uncached_trials} of the same grid"
            if uncached_trials < trials
            else ""
        )
        + ")"
    )
    print(
        f"cached trials are {_common.fmt_ratio(speed)} faster "
        f"({speed_with_features:.1f}x counting the feature pass); "
        f"scores of the {len(common)} common trials differ by at most "
        f"{max_diff:.2e}; best {best_u:.4f} uncached / {best_c_common:.4f} "
        f"cached; best of all {trials} cached trials {min(scores_c):.4f}, "
        f"its get_best_models model re-evaluates to {best_eval:.4f}"
    )
    print(
        f"fixed cost of a cached trial: {fixed_stats['median'] * 1e3:.0f} ms "
        f"({fixed_stats['p25'] * 1e3:.0f}-{fixed_stats['p75'] * 1e3:.0f}); "
        + "; ".join(
            f"{k.replace('_', ' ')}: {v['median'] * 1e3:.0f} ms (n={v['n']})"
            for k, v in fixed_by_shape.items()
        )
        + f"; keras-tuner's clear_session + gc.collect, skipped: "
        f"{cleanup['median'] * 1e3:.0f} ms; one steady epoch: "
        f"{epoch_s * 1e3:.0f} ms"
    )
    print(
        f"cached trials against a hand-written loop on the same features: "
        f"{_common.fmt_ratio(vs_hand)} its speed (hand-written: "
        f"{statistics.median(times_h[1:]) * 1e3:.0f} ms per trial)"
    )
    seconds, mb = rebuild_cost(3)
    print(
        f"rebuilding a MobileNet HubLayer per trial: {seconds:.2f} s, "
        f"~{mb:.0f} MB peak growth each"
    )
    _common.save(
        "search",
        {
            "trials": trials,
            "uncached_trials": uncached_trials,
            "epochs": EPOCHS,
            "batch_size": BATCH,
            "examples": n,
            "validation_examples": n_val,
            "seconds_per_trial": {
                "uncached": uncached_stats,
                "cached": cached_stats,
                "cached_whole_search": per_trial_c,
            },
            "feature_pass_seconds": features_s,
            "speedup": speed,
            "speedup_with_feature_pass": speed_with_features,
            "seconds_per_trial_hand_written": _common.stats(times_h[1:]),
            "vs_hand_written": vs_hand,
            "scores": {"uncached": scores_u, "cached": scores_c},
            "max_score_difference": max_diff,
            "best_score": {"uncached": best_u, "cached": best_c_common},
            "best_model_evaluation": best_eval,
            "fixed_ms": _ms(fixed_stats),
            "fixed_ms_by_head_shape": {
                k: _ms(v) for k, v in fixed_by_shape.items()
            },
            "cleanup_ms": _ms(cleanup),
            "steady_epoch_ms": epoch_s * 1e3,
            "rebuild_seconds": seconds,
            "rebuild_peak_mb": mb,
        },
    )


if __name__ == "__main__":
    main()
