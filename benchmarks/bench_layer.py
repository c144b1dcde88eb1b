"""HubLayer against its peers: predict, train step and fit, per model shape.

Peers, measured in the same process, interleaved (A B C D A B C D ...):

- raw: `tf.saved_model.load` + a `tf.function` (the floor);
- hk.HubLayer in a Keras 3 model;
- keras.layers.TFSMLayer in a Keras 3 model (where it can do the job);
- tf_keras + tensorflow_hub.KerasLayer (if the `bench` extra is installed).

It also records what each path actually does when fine-tuning: trainable
variables updated, BatchNorm statistics updated, regularization losses
counted.

    python benchmarks/bench_layer.py [--quick]
"""

import argparse
import os
import tempfile

import _common
import numpy as np
import tensorflow as tf

import keras_hubkit as hk

import models

MOBILENET = os.path.join(
    _common.REAL, "mobilenet_v3_small_075_224_feature_vector_5"
)


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
def raw_path(path, x):
    obj = tf.saved_model.load(path)
    variables = list(obj.trainable_variables)
    has_training = "training" in str(getattr(obj.__call__, "function_spec", ""))

    def call(inputs, training):
        return obj(inputs, training=training) if has_training else obj(inputs)

    @tf.function
    def predict(inputs):
        return call(inputs, False)

    @tf.function
    def train(inputs):
        with tf.GradientTape() as tape:
            out = call(inputs, True)
            loss = tf.reduce_mean(tf.square(out))
            for fn in getattr(obj, "regularization_losses", []):
                loss += fn()
        grads = tape.gradient(loss, variables)
        for v, g in zip(variables, grads):
            if g is not None:
                v.assign_sub(0.001 * g)
        return loss

    target = np.zeros(predict(x).shape, "float32")
    return {
        "predict": lambda: predict(x).numpy(),
        "train": lambda: train(x).numpy(),
        "fit": lambda: [train(x) for _ in range(5)][-1].numpy(),
        "obj": obj,
        "target": target,
    }


def keras_path(layer, x, target, keras_module=None):
    """A one-layer Sequential of `keras_module` (Keras 3 or tf_keras)."""
    if keras_module is None:
        import keras as keras_module

    model = keras_module.Sequential([layer])
    model.compile(keras_module.optimizers.SGD(0.001), "mse")
    model.predict_on_batch(x)
    data = tf.data.Dataset.from_tensors((x, target)).repeat(5)
    return {
        "predict": lambda: model.predict_on_batch(x),
        "train": lambda: model.train_on_batch(x, target),
        "fit": lambda: model.fit(data, epochs=1, verbose=0),
        "model": model,
    }


def tf_keras_path(path, x, target):
    import tensorflow_hub as hub
    import tf_keras

    layer = hub.KerasLayer(path, trainable=True)
    return keras_path(layer, x, target, keras_module=tf_keras)


def build_paths(path, x):
    import keras

    paths = {"raw": raw_path(path, x)}
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
            found[name] = {"error": str(e).splitlines()[0][:160]}
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    repeats = 7 if args.quick else 25
    results = {"cases": []}
    with tempfile.TemporaryDirectory() as workdir:
        for name, path, make, batches in model_specs(workdir):
            for batch in batches:
                x = make(batch)
                print(f"{name}, batch {batch}")
                for kind in ("predict", "train", "fit"):
                    # Fresh models per kind: Keras retraces when one model
                    # alternates between train_on_batch and fit.
                    paths = build_paths(path, x)
                    cases = {p: v[kind] for p, v in paths.items()}
                    n = max(3, repeats // (5 if kind == "fit" else 1))
                    times = _common.interleaved(cases, n)
                    row = {
                        "model": name,
                        "batch": batch,
                        "kind": kind,
                        "ms": {
                            p: _common.stats(t)["median"] * 1e3
                            for p, t in times.items()
                        },
                        "vs": {
                            p: _common.ratio(times, "hubkit", p)
                            for p in times
                            if p != "hubkit"
                        },
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
    _common.save("layer", results)
    return results


if __name__ == "__main__":
    main()
