"""Peak memory (RSS) of a training run: HubLayer in Keras vs the raw
SavedModel + tf.function loop, each in its own process.

    python benchmarks/bench_memory.py
"""

import json
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

MOBILENET = os.path.join(
    _common.REAL, "mobilenet_v3_small_075_224_feature_vector_5"
)


def peak(kind):
    out = subprocess.run(
        [sys.executable, "-c", CHILD, MOBILENET, kind],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    runs = {"raw": [], "hubkit": []}
    for _ in range(2):
        for kind in runs:
            runs[kind].append(peak(kind))
    raw, ours = min(runs["raw"]), min(runs["hubkit"])
    print(
        f"peak RSS: raw {raw:.0f} MB, HubLayer {ours:.0f} MB "
        f"({ours / raw:.2f}x)"
    )
    _common.save("memory", {"peak_mb": runs, "ratio": ours / raw})
    return json.dumps(runs)


if __name__ == "__main__":
    main()
