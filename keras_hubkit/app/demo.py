"""The offline demo: publish a model, then transfer it with few labels.

Real data that ships with scikit-learn (the UCI handwritten digits, 8x8):

1. A *publisher* trains a small convnet to recognise the ten digits on one
   half of the images and exports its feature extractor as a reusable
   SavedModel (`hk.export_saved_model`).
2. A *consumer* loads it with `hk.HubLayer` for a different task on the
   other half — is the digit even or odd? — from ten labelled examples per
   class, three ways: head only (frozen base), staged fine-tuning
   (`hk.finetune`), and the same network trained from scratch.
3. It prints a table (held-out accuracy, time), writes training curves and a
   confusion matrix as PNG files, and exports the best classifier.
"""

import os
import time

import keras
import numpy as np

import keras_hubkit as hk
from keras_hubkit.app import plots
from keras_hubkit.finetune import Stage
from keras_hubkit.finetune import StagedFineTuner

SOURCE_CLASSES = tuple(range(10))  # the publisher's task: which digit
TARGET_CLASSES = ("even", "odd")  # the consumer's task
SHOTS = 10  # labelled examples per target class
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def run(output_dir="hubkit_demo", quick=False, seed=0):
    """Runs the demo; returns the results table as a list of dicts."""
    os.makedirs(output_dir, exist_ok=True)
    keras.utils.set_random_seed(seed)
    scale = 0.25 if quick else 1.0
    x, y = _digits()
    source = np.random.default_rng(seed).random(len(y)) < 0.5
    print(
        f"Data: scikit-learn digits, {len(y)} images of 8x8 pixels, "
        "split into two halves."
    )

    published = os.path.join(output_dir, "publisher_saved_model")
    _publish(x[source], y[source], published, epochs=max(2, int(20 * scale)))

    train, test = _few_shot_split(x[~source], y[~source] % 2, seed)
    print(
        f"Consumer task: even or odd, on the other half: {len(train[1])} "
        f"labelled images ({SHOTS} per class), {len(test[1])} held out."
        "\n"
    )
    epochs = max(2, int(40 * scale))
    rows, staged = [], None
    for name, train_fn in (
        ("head only (frozen base)", _head_only),
        ("staged fine-tuning", _staged),
        ("from scratch", _scratch),
    ):
        keras.utils.set_random_seed(seed)
        started = time.perf_counter()
        model, history = train_fn(published, train, epochs)
        seconds = time.perf_counter() - started
        accuracy = _accuracy(model, test)
        rows.append({"method": name, "accuracy": accuracy, "seconds": seconds})
        if name == "staged fine-tuning":
            staged = (model, history)
    _report(rows, staged, test, published, output_dir)
    for line in verdict(rows, len(test[1])):
        print(line)
    return rows


def verdict(rows, examples):
    """Which differences the held-out set can tell apart, in words.

    One run's accuracy on `examples` held-out images varies by about
    `sqrt(p (1 - p) / n)` (its standard error) from the test sample alone;
    a difference counts only when it is larger than twice the combined
    error of the two methods.

    Args:
        rows: the results table (`method`, `accuracy`).
        examples: how many held-out examples each accuracy is measured on.

    Returns:
        Lines comparing the first method with each other one.
    """
    first = rows[0]
    lines = []
    for row in rows[1:]:
        errors_sq = [
            r["accuracy"] * (1 - r["accuracy"]) / examples for r in (first, row)
        ]
        spread = 2 * float(np.sqrt(sum(errors_sq)))
        gap = first["accuracy"] - row["accuracy"]
        if abs(gap) > spread:
            better = first if gap > 0 else row
            lines.append(
                f"{better['method']} is better than "
                f"{(row if better is first else first)['method']} by "
                f"{abs(gap):.3f}, more than the spread (±{spread:.3f})."
            )
        else:
            lines.append(
                f"{first['method']} and {row['method']} differ by "
                f"{abs(gap):.3f}, within the spread (±{spread:.3f}): this "
                "run cannot tell them apart."
            )
    return lines


def _digits():
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype("float32")[..., None]
    return x, digits.target


def _few_shot_split(x, labels, seed):
    rng = np.random.default_rng(seed)
    train_idx = []
    for label in range(len(TARGET_CLASSES)):
        idx = np.flatnonzero(labels == label)
        train_idx += list(rng.choice(idx, SHOTS, replace=False))
    test_idx = np.setdiff1d(np.arange(len(labels)), train_idx)
    return (x[train_idx], labels[train_idx]), (x[test_idx], labels[test_idx])


def _feature_extractor(name="features"):
    l2 = keras.regularizers.L2(1e-4)
    inputs = keras.Input((8, 8, 1), name="image")
    h = keras.layers.Conv2D(
        16, 3, padding="same", kernel_regularizer=l2, name="block1_conv"
    )(inputs)
    h = keras.layers.BatchNormalization(name="block1_bn")(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.Conv2D(
        32,
        3,
        padding="same",
        strides=2,
        kernel_regularizer=l2,
        name="block2_conv",
    )(h)
    h = keras.layers.BatchNormalization(name="block2_bn")(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(
        64, activation="relu", kernel_regularizer=l2, name="block3_dense"
    )(h)
    h = keras.layers.Dropout(0.2)(h)
    return keras.Model(inputs, h, name=name)


def _publish(x, y, path, epochs):
    features = _feature_extractor()
    model = keras.Sequential(
        [features, keras.layers.Dense(len(SOURCE_CLASSES))]
    )
    model.compile(keras.optimizers.Adam(3e-3), LOSS, metrics=["accuracy"])
    started = time.perf_counter()
    history = model.fit(
        x, y, epochs=epochs, batch_size=32, verbose=0, validation_split=0.1
    )
    hk.export_saved_model(features, path, overwrite=True)
    print(
        f"Publisher: learned the ten digits ({len(y)} images, {epochs} epochs,"
        f" {time.perf_counter() - started:.1f} s, validation accuracy "
        f"{history.history['val_accuracy'][-1]:.3f}); exported the feature "
        f"extractor as a reusable SavedModel:\n  {path}"
    )


def _classifier(base):
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            base,
            keras.layers.Dense(len(TARGET_CLASSES), name="head"),
        ]
    )


def _head_only(published, train, epochs):
    model = _classifier(hk.HubLayer(published, name="base"))
    history = StagedFineTuner(
        model, [Stage(epochs, lr=1e-2)], loss=LOSS, metrics=["accuracy"]
    ).run(*train, batch_size=16, verbose=0)
    return model, history


def _staged(published, train, epochs):
    model = _classifier(hk.HubLayer(published, name="base"))
    half = max(1, epochs // 2)
    plan = [
        Stage(half, lr=1e-2, name="head"),
        Stage(
            epochs - half,
            unfreeze="all",
            lr=3e-3,
            layer_decay=0.5,
            schedule="cosine",
            name="all, layer decay 0.5",
        ),
    ]
    history = StagedFineTuner(model, plan, loss=LOSS, metrics=["accuracy"]).run(
        *train, batch_size=16, verbose=0
    )
    return model, history


def _scratch(published, train, epochs):
    model = _classifier(_feature_extractor("scratch"))
    model.compile(keras.optimizers.Adam(3e-3), LOSS, metrics=["accuracy"])
    history = model.fit(*train, epochs=epochs, batch_size=16, verbose=0)
    return model, history


def _accuracy(model, data):
    x, y = data
    return float(np.mean(np.argmax(model.predict(x, verbose=0), 1) == y))


def _report(rows, staged, test, published, output_dir):
    print(f"{'method':26} {'accuracy':>9} {'time':>8}")
    for row in rows:
        print(
            f"{row['method']:26} {row['accuracy']:9.3f} {row['seconds']:7.1f}s"
        )
    model, history = staged
    curves = plots.training_curves(
        history,
        os.path.join(output_dir, "training_curves.png"),
        title="Staged fine-tuning, even/odd from 20 labels",
    )
    x, y = test
    predicted = np.argmax(model.predict(x, verbose=0), 1)
    names = list(TARGET_CLASSES)
    matrix = plots.confusion_matrix(y, predicted, names)
    confusion = plots.confusion_matrix_plot(
        matrix,
        names,
        os.path.join(output_dir, "confusion_matrix.png"),
        title="Staged fine-tuning, held-out images",
    )
    probabilities = keras.Sequential([model, keras.layers.Softmax()])
    exported = hk.export_saved_model(
        probabilities,
        os.path.join(output_dir, "classifier"),
        class_names=names,
        overwrite=True,
    )
    print("\nWritten:")
    print(f"  training curves    {curves}")
    print(f"  confusion matrix   {confusion}")
    print(f"  publisher model    {published}")
    print(f"  classifier         {exported} (with labels.txt)")
