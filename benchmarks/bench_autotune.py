"""tf.data's autotuner and an iterator read inside a compiled step.

Keras's `fit` passes the dataset's iterator into its compiled train step.
This runs a MobileNet V3 fine-tuning step the same way (a `tf.function`
that reads the iterator), over one epoch of 4 batches at a time, with the
autotuner on (tf.data's default) and off, in fresh processes taking
turns, and counts the slow epochs: wall time over 1.5x the median epoch
with the autotuner off. A slow epoch that used no more CPU time than a
normal one waited rather than worked.

    python benchmarks/bench_autotune.py [--quick]

Needs the real MobileNet V3 (HUBKIT_REAL_MODELS).
"""

import argparse
import json
import statistics
import subprocess
import sys
import time

import _common
import keras
import numpy as np
import tensorflow as tf

MOBILENET = _common.MOBILENET
N, BATCH = 128, 32


def step_on_iterator():
    """A train step that reads its batch from the iterator it is given."""
    obj = tf.saved_model.load(MOBILENET)
    head = keras.layers.Dense(2)
    head.build((None, 1024))
    variables = [*head.trainable_variables, *obj.trainable_variables]
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(variables)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def step(iterator):
        x, y = iterator.get_next()
        with tf.GradientTape() as tape:
            loss = loss_fn(y, head(obj(x, training=True)))
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables))
        return loss

    return step


def dataset(autotune):
    rng = np.random.default_rng(0)
    x = rng.random((N, 224, 224, 3), "float32")
    y = (np.arange(N) % 2).astype("int32")
    options = tf.data.Options()
    options.autotune.enabled = autotune
    return (
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(N)
        .batch(BATCH)
        .prefetch(tf.data.AUTOTUNE)
        .with_options(options)
    )


def epochs_in_one_process(autotune, epochs):
    """Wall and CPU seconds of each epoch, after a warm-up epoch."""
    step = step_on_iterator()
    data = dataset(autotune)
    float(step(iter(data)))  # trace
    wall, cpu = [], []
    for _ in range(epochs):
        iterator = iter(data)
        start, start_cpu = time.perf_counter(), time.process_time()
        for _ in range(N // BATCH):
            loss = step(iterator)
        float(loss)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return wall, cpu


def main(argv=None):
    parser = _common.parser(__doc__)
    parser.add_argument(
        "--child", choices=["on", "off"], help=argparse.SUPPRESS
    )
    parser.add_argument(
        "--epochs", type=int, default=12, help="epochs per process"
    )
    args = parser.parse_args(argv)
    _common.require_real_model()
    if args.child:
        print(
            json.dumps(epochs_in_one_process(args.child == "on", args.epochs))
        )
        return None
    # The slow epochs come and go per process: fresh processes, in turns.
    runs = 1 if args.quick else 3
    wall, cpu = {"on": [], "off": []}, {"on": [], "off": []}
    for _ in range(runs):
        for mode in wall:
            out = (
                subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--child",
                        mode,
                        "--epochs",
                        str(args.epochs),
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                .stdout.strip()
                .splitlines()[-1]
            )
            w, c = json.loads(out)
            wall[mode] += w
            cpu[mode] += c
    normal = statistics.median(wall["off"])
    results = {"processes": runs, "epochs_per_process": args.epochs}
    for mode in wall:
        slow = [i for i, t in enumerate(wall[mode]) if t > 1.5 * normal]
        results[mode] = {
            "slow_epochs": len(slow),
            "epochs": len(wall[mode]),
            "wall_s": _common.stats(wall[mode]),
            "cpu_s": _common.stats(cpu[mode]),
            "slow_cpu_over_median_cpu": [
                cpu[mode][i] / statistics.median(cpu[mode]) for i in slow
            ],
        }
        print(
            f"autotuner {mode:3}: {len(slow)} of {len(wall[mode])} epochs "
            f"slow (> 1.5x {normal * 1e3:.0f} ms); median epoch "
            f"{statistics.median(wall[mode]) * 1e3:.0f} ms wall, "
            f"{statistics.median(cpu[mode]) * 1e3:.0f} ms CPU"
        )
    _common.save("autotune", results)
    return results


if __name__ == "__main__":
    main()
