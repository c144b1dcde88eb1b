"""Peak memory (RSS) of a training run: HubLayer in Keras vs the raw
SavedModel + tf.function loop, each in its own process, in turns.

    python benchmarks/bench_memory.py [--quick]

Needs the real MobileNet V3 (HUBKIT_REAL_MODELS).
"""

import os
import subprocess
import sys

import _common

CHILD = r"""
import os, resource, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, tensorflow as tf
path, kind = sys.argv[1], sys.argv[2]
x = tf.random.uniform((16, 224, 224, 3)); t = np.zeros((16, 1024), "float32")
if kind == "raw":
    obj = tf.saved_model.load(path)
    variables = list(obj.trainable_variables)
    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(obj(x, training=True)))
        for v, g in zip(variables, tape.gradient(loss, variables)):
            v.assign_sub(0.001 * g)
    for _ in range(10):
        step()
else:
    import keras, keras_hubkit as hk
    model = keras.Sequential([hk.HubLayer(path, trainable=True)])
    model.compile(keras.optimizers.SGD(0.001), "mse")
    data = tf.data.Dataset.from_tensors((x, t)).repeat(10)
    model.fit(data, epochs=1, verbose=0)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""

MOBILENET = _common.MOBILENET


def peak(kind):
    # The child measures this checkout's keras_hubkit, as the scripts do.
    path = os.pathsep.join(
        p for p in (_common.ROOT, os.environ.get("PYTHONPATH")) if p
    )
    out = subprocess.run(
        [sys.executable, "-c", CHILD, MOBILENET, kind],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": path},
    )
    if out.returncode:
        sys.exit(f"The {kind} run failed:\n{out.stderr[-3000:]}")
    return float(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    args = _common.parser(__doc__).parse_args(argv)
    _common.require_real_model()
    repeats = 1 if args.quick else 3
    runs = {"raw": [], "hubkit": []}
    for i in range(repeats):
        for kind in runs:
            print(f"run {i + 1}/{repeats}: {kind}", flush=True)
            runs[kind].append(peak(kind))
    raw, ours = min(runs["raw"]), min(runs["hubkit"])
    print(
        f"peak RSS, lowest of {repeats}: raw {raw:.0f} MB, HubLayer "
        f"{ours:.0f} MB ({ours / raw:.2f}x)"
    )
    _common.save("memory", {"peak_mb": runs, "ratio": ours / raw})
    return runs


if __name__ == "__main__":
    main()
