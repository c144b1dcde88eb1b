"""The package's own training loop against a hand-written one: median
epoch time of `StagedFineTuner` (one step per call, and the automatic
`steps_per_execution`) relative to a `tf.function` step over a prefetched
`tf.data` pipeline, on the tiny image SavedModel (conv + BatchNorm updates
+ regularization loss), everything unfrozen. The first epoch (tracing) is
left out; repetitions interleave the cases.

    python benchmarks/bench_finetune_loop.py [--quick]
"""

import argparse
import statistics
import tempfile
import time

import _common
import keras
import numpy as np
import tensorflow as tf

import keras_hubkit as hk
from keras_hubkit.finetune import Stage
from keras_hubkit.finetune import StagedFineTuner

import models

SCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


class _EpochTimes(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    repeats, epochs, n, batch = (
        (1, 3, 1024, 32) if args.quick else (3, 8, 4096, 32)
    )
    path = models.save_image_feature_vector(tempfile.mkdtemp() + "/m")
    rng = np.random.default_rng(0)
    x = rng.random((n, 8, 8, 3), "float32")
    y = (np.arange(n) % 3).astype("int64")

    def dataset():
        return (
            tf.data.Dataset.from_tensor_slices((x, y))
            .shuffle(n)
            .batch(batch)
            .prefetch(tf.data.AUTOTUNE)
        )

    def build():
        keras.utils.set_random_seed(0)
        return keras.Sequential(
            [
                keras.Input((8, 8, 3)),
                hk.HubLayer(path, name="base"),
                keras.layers.Dense(3),
            ]
        )

    def runner(spe, as_dataset):
        timer = _EpochTimes()
        StagedFineTuner(
            build(),
            [Stage(epochs, unfreeze="all", lr=1e-3)],
            loss=SCE,
            steps_per_execution=spe,
        ).run(
            *((dataset(),) if as_dataset else (x, y)),
            batch_size=None if as_dataset else batch,
            callbacks=[timer],
            verbose=0,
        )
        return timer.times[1:]

    def raw():
        model = build()
        model.layers[0].trainable = True
        optimizer = keras.optimizers.Adam(1e-3)
        variables = model.trainable_variables
        optimizer.build(variables)

        @tf.function
        def step(a, b):
            with tf.GradientTape() as tape:
                loss = SCE(b, model(a, training=True)) + tf.add_n(model.losses)
            optimizer.apply(tape.gradient(loss, variables), variables)
            return loss

        times = []
        for _ in range(epochs):
            start = time.perf_counter()
            for a, b in dataset():
                step(a, b)
            times.append(time.perf_counter() - start)
        return times[1:]

    cases = {
        "raw tf.function loop": raw,
        "runner, 1 step per call, numpy": lambda: runner(1, False),
        "runner, auto, numpy": lambda: runner("auto", False),
        "runner, auto, tf.data": lambda: runner("auto", True),
    }
    times = {name: [] for name in cases}
    for _ in range(repeats):
        for name, case in cases.items():
            times[name] += case()
    floor = statistics.median(times["raw tf.function loop"])
    results = {}
    for name, samples in times.items():
        stats = _common.stats(samples)
        results[name] = {
            "ms_per_epoch": stats["median"] * 1000,
            "ratio_vs_raw": floor / stats["median"],
            "epochs_timed": stats["n"],
        }
        print(
            f"{name:32} {stats['median'] * 1000:7.1f} ms/epoch "
            f"({n // batch} steps)  {floor / stats['median']:.2f}x raw"
        )
    _common.save("finetune_loop", {"repeats": repeats, "results": results})


if __name__ == "__main__":
    main()
