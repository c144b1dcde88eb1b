"""keras-tuner: head-only trials with cached features against uncached
trials (same search space, same best score), and the cost of rebuilding a
MobileNet-sized HubLayer per trial.

    python benchmarks/bench_search.py [--quick]
"""

import argparse
import os
import tempfile
import time

import _common
import keras
import keras_tuner
import numpy as np

import keras_hubkit as hk

MOBILENET = os.path.join(
    _common.REAL, "mobilenet_v3_small_075_224_feature_vector_5"
)


def search(cache, trials, x, y, directory):
    hypermodel = hk.tuning.HubClassifierHyperModel(
        MOBILENET,
        3,
        input_shape=(224, 224, 3),
        head_epochs=[2],
        unfreeze_groups=[0],
        dropout=[0.0],
        head_widths=[0, 32, 64, 128],
        cache_features=cache,
    )
    tuner = keras_tuner.GridSearch(
        hypermodel,
        objective="val_loss",
        max_trials=trials,
        directory=directory,
        project_name=f"cache_{cache}",
    )
    keras.utils.set_random_seed(0)
    start = time.perf_counter()
    tuner.search(
        x, y, epochs=2, validation_data=(x, y), verbose=0, batch_size=16
    )
    seconds = time.perf_counter() - start
    best = tuner.oracle.get_best_trials(1)[0]
    return seconds / trials, best.score


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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    trials = 2 if args.quick else 4
    n = 32 if args.quick else 256
    rng = np.random.default_rng(0)
    x = rng.random((n, 224, 224, 3), "float32")
    y = np.arange(n) % 3
    with tempfile.TemporaryDirectory() as directory:
        uncached, score_u = search(False, trials, x, y, directory)
        cached, score_c = search(True, trials, x, y, directory)
    speedup = uncached / cached
    print(
        f"head-only trial: {uncached:.2f} s uncached, {cached:.2f} s with "
        f"cached features: {speedup:.1f}x faster; best scores "
        f"{score_u:.4f} / {score_c:.4f}"
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
            "examples": n,
            "seconds_per_trial": {"uncached": uncached, "cached": cached},
            "speedup": speedup,
            "best_score": {"uncached": score_u, "cached": score_c},
            "rebuild_seconds": seconds,
            "rebuild_peak_mb": mb,
        },
    )


if __name__ == "__main__":
    main()
