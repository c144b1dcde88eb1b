"""Quality on a real transfer task (the demo's: scikit-learn digits; a
publisher learns the ten digits on one half, the consumer learns even/odd
on the other half from 10 or 50 labels per class): staged fine-tuning vs
head-only vs naive full fine-tuning vs training from scratch, over seeds.

    python benchmarks/bench_quality.py [--quick]
"""

import argparse
import os
import statistics
import tempfile

import _common
import keras
import numpy as np

import keras_hubkit as hk
from keras_hubkit.app import demo


def full_fine_tuning(published, train, epochs):
    """Naive: everything trainable from the first step, one rate."""
    base = hk.HubLayer(published, trainable=True, name="base")
    model = demo._classifier(base)
    model.compile(keras.optimizers.Adam(1e-2), demo.LOSS)
    model.fit(*train, epochs=epochs, batch_size=16, verbose=0)
    return model, None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    seeds = [0, 1] if args.quick else [0, 1, 2, 3, 4]
    methods = {
        "head only": demo._head_only,
        "staged": demo._staged,
        "full fine-tuning (naive)": full_fine_tuning,
        "from scratch": demo._scratch,
    }
    x, y = demo._digits()
    shots = (10, 50)
    scores = {(n, m): [] for n in shots for m in methods}
    for seed in seeds:
        keras.utils.set_random_seed(seed)
        source = np.random.default_rng(seed).random(len(y)) < 0.5
        with tempfile.TemporaryDirectory() as tmp:
            published = os.path.join(tmp, "publisher")
            demo._publish(x[source], y[source], published, epochs=20)
            for n in shots:
                demo.SHOTS = n
                train, test = demo._few_shot_split(
                    x[~source], y[~source] % 2, seed
                )
                for name, fn in methods.items():
                    keras.utils.set_random_seed(seed)
                    model, _ = fn(published, train, 40)
                    scores[n, name].append(demo._accuracy(model, test))
    summary = {}
    for (n, name), s in scores.items():
        summary.setdefault(str(n), {})[name] = {
            "mean": statistics.mean(s),
            "min": min(s),
            "max": max(s),
            "per_seed": s,
        }
        print(
            f"{n} labels/class  {name:26} mean {statistics.mean(s):.3f} "
            f"(min {min(s):.3f}, max {max(s):.3f})"
        )
    _common.save("quality", {"seeds": seeds, "accuracy_by_shots": summary})


if __name__ == "__main__":
    main()
