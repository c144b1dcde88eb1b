"""Quality of transfer methods on a natural-image task built offline from
real photographs, through the real MobileNet V3 (TF Hub's
mobilenet_v3_small_075_224 feature vector).

The task: ten classes, one per photograph shipped with scikit-image
(`skimage.data`: astronaut, camera, chelsea, coffee, rocket, brick, grass,
gravel, coins, moon), in grey levels so colour alone does not give the
answer. Labelled patches (random square crops, 30-60% of the half's short
side, random flips, resized to 224x224) come from the left half of each
photograph; test patches from the right half, which no training patch
overlaps. Methods: head only (frozen base), staged fine-tuning guarded by
validation (`hk.finetune.fine_tune`, rollback on), naive full fine-tuning
(everything trainable from the first step, one rate, BatchNorm training),
and a small CNN from scratch. Every method sees the same validation patches
(10 per class): head only, naive and scratch keep their best epoch on it,
staged uses it to roll back stages that make it worse.

    pip install -e ".[bench]"       # scikit-image for the photographs
    python benchmarks/bench_quality.py --quick          # a smoke run
    python benchmarks/bench_quality.py                  # 5, 10, 30 labels
                                                        # per class, 3 seeds

Needs the real MobileNet V3 (HUBKIT_REAL_MODELS).
"""

import statistics
import time

import _common
import keras
import numpy as np
import tensorflow as tf

import keras_hubkit as hk

PHOTOS = (
    "astronaut",
    "camera",
    "chelsea",
    "coffee",
    "rocket",
    "brick",
    "grass",
    "gravel",
    "coins",
    "moon",
)
SIZE = 224
VAL_PER_CLASS = 10
TEST_PER_CLASS = 30
BATCH = 16
MODEL = _common.MOBILENET
LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
STAGED = "staged (guarded)"


# ------------------------------------------------------------------ data
def _photographs():
    """The photographs in grey levels, as float arrays in [0, 1]."""
    import skimage.color
    import skimage.data

    photos = []
    for name in PHOTOS:
        image = getattr(skimage.data, name)()
        if image.ndim == 3:
            image = skimage.color.rgb2gray(image[..., :3])
        else:
            image = image / 255.0
        photos.append(image.astype("float32"))
    return photos


def _crops(region, count, rng):
    """`count` random square crops of `region`, flipped at random, resized
    to SIZE x SIZE, as uint8 RGB."""
    height, width = region.shape
    out = np.empty((count, SIZE, SIZE, 3), "uint8")
    for i in range(count):
        side = int(rng.uniform(0.3, 0.6) * min(height, width))
        top = rng.integers(0, height - side + 1)
        left = rng.integers(0, width - side + 1)
        crop = region[top : top + side, left : left + side]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        resized = tf.image.resize(crop[..., None], (SIZE, SIZE)).numpy()
        out[i] = np.clip(resized * 255 + 0.5, 0, 255).astype("uint8")
    return out


def patches(shots, seed, photos=None):
    """Train, validation and test splits: `(x uint8, y)` each."""
    photos = photos if photos is not None else _photographs()
    rng = np.random.default_rng(seed)
    splits = {"train": [], "val": [], "test": []}
    counts = {"train": shots, "val": VAL_PER_CLASS, "test": TEST_PER_CLASS}
    for label, photo in enumerate(photos):
        half = photo.shape[1] // 2
        regions = {
            "train": photo[:, :half],
            "val": photo[:, :half],
            "test": photo[:, half:],
        }
        for split, count in counts.items():
            splits[split].append(
                (_crops(regions[split], count, rng), np.full(count, label))
            )
    return {
        split: (
            np.concatenate([x for x, _ in parts]),
            np.concatenate([y for _, y in parts]),
        )
        for split, parts in splits.items()
    }


# --------------------------------------------------------------- methods
def _transfer_model(trainable=False):
    return keras.Sequential(
        [
            keras.Input((SIZE, SIZE, 3), dtype="uint8"),
            keras.layers.Rescaling(1 / 255.0),
            hk.HubLayer(MODEL, trainable=trainable, name="base"),
            keras.layers.Dense(len(PHOTOS), name="head"),
        ]
    )


def _best_epoch(epochs):
    return [
        keras.callbacks.EarlyStopping(
            "val_loss", patience=epochs, restore_best_weights=True
        )
    ]


def _fit_best(model, data, epochs):
    """Adam 1e-3, the best validation epoch kept; the test accuracy."""
    model.compile(keras.optimizers.Adam(1e-3), LOSS, metrics=["accuracy"])
    model.fit(
        *data["train"],
        validation_data=data["val"],
        epochs=epochs,
        batch_size=BATCH,
        callbacks=_best_epoch(epochs),
        verbose=0,
    )
    return _accuracy(model, data["test"])


def head_only(data, epochs):
    """Frozen base: a linear head on the base's features (computed once,
    which is the same computation as a frozen base in inference mode)."""
    extractor = keras.Sequential(_transfer_model().layers[:-1])
    features = {
        k: (extractor.predict(x, batch_size=64, verbose=0), y)
        for k, (x, y) in data.items()
    }
    head = keras.Sequential(
        [keras.Input(features["train"][0].shape[1:]), keras.layers.Dense(10)]
    )
    return _fit_best(head, features, epochs), {}


def staged(data, epochs):
    """`hk.finetune.fine_tune(plan="auto")`: a head stage, then deeper and
    deeper unfreezing (top 1, 2, 4... groups, discriminative rates) while
    validation improves; stages that worsen it are rolled back, and the
    rest of the budget trains at the best depth."""
    model = _transfer_model()
    head_epochs = max(1, round(epochs * 2 / 3))
    history = hk.finetune.fine_tune(
        model,
        *data["train"],
        epochs=max(1, epochs - head_epochs),
        freeze_epochs=head_epochs,
        base_lr=2e-3,
        plan="auto",
        loss=LOSS,
        metrics=["accuracy"],
        validation_data=data["val"],
        batch_size=BATCH,
        verbose=0,
    )
    return _accuracy(model, data["test"]), {
        "rolled_back": len(history.rollbacks),
        "depth": history.auto_depth,
    }


def full_fine_tuning(data, epochs):
    """Naive: everything trainable from the first step, one rate."""
    return _fit_best(_transfer_model(trainable=True), data, epochs), {}


def scratch(data, epochs):
    """A small CNN trained from scratch on 64x64 inputs."""
    model = keras.Sequential(
        [
            keras.Input((SIZE, SIZE, 3), dtype="uint8"),
            keras.layers.Rescaling(1 / 255.0),
            keras.layers.Resizing(64, 64),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(64, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(128, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(len(PHOTOS)),
        ]
    )
    return _fit_best(model, data, epochs), {}


METHODS = {
    "head only": head_only,
    STAGED: staged,
    "full fine-tuning (naive)": full_fine_tuning,
    "from scratch": scratch,
}


def _accuracy(model, data):
    x, y = data
    predicted = np.argmax(model.predict(x, batch_size=64, verbose=0), 1)
    return float(np.mean(predicted == y))


# ----------------------------------------------------------------- report
def summarize(scores):
    """Mean, standard deviation, min, max per method."""
    return {
        name: {
            "mean": statistics.mean(s),
            "std": statistics.stdev(s) if len(s) > 1 else 0.0,
            "min": min(s),
            "max": max(s),
            "per_seed": s,
        }
        for name, s in scores.items()
    }


def verdict(table):
    """One honest sentence: where the staged run's lead over each other
    method is larger than the spread across seeds, and where it is not."""
    ours = table[STAGED]
    if len(ours["per_seed"]) < 2:
        return "One seed: no spread, so no verdict."
    above, within, below = [], [], []
    for name, row in table.items():
        if name == STAGED:
            continue
        gap = ours["mean"] - row["mean"]
        spread = max(ours["std"], row["std"])
        text = f"{name} ({gap:+.3f}, spread {spread:.3f})"
        if gap > spread:
            above.append(text)
        elif gap < -spread:
            below.append(text)
        else:
            within.append(text)
    parts = []
    if above:
        parts.append(
            "Staged beats by more than the spread: " + ", ".join(above)
        )
    if within:
        parts.append("within the spread of: " + ", ".join(within))
    if below:
        parts.append("worse by more than the spread than: " + ", ".join(below))
    return "; ".join(parts) + "."


def render_section(data):
    """The results page's quality section (run_all.py calls this)."""
    lines = [
        "## Quality",
        "",
        "`python benchmarks/bench_quality.py`: ten classes of patches from "
        "ten real photographs shipped with scikit-image (grey levels; "
        "training and validation patches from each photograph's left half, "
        "test patches from its right half), through the real MobileNet V3 "
        f"(TF Hub mobilenet_v3_small_075_224); {data['epochs']} epochs per "
        f"method, batch {BATCH}, {VAL_PER_CLASS} validation and "
        f"{TEST_PER_CLASS} test patches per class; test accuracy over seeds "
        f"{data['seeds']} (mean ± standard deviation, min, max)."
        + (" **Quick run: not a measurement.**" if data.get("quick") else ""),
        "",
    ]
    for shots, table in data["accuracy_by_shots"].items():
        lines += [
            f"{shots} labels per class:",
            "",
            "| method | mean ± sd | min | max |",
            "|---|---|---|---|",
        ]
        for name, row in table.items():
            lines.append(
                f"| {name} | {row['mean']:.3f} ± {row['std']:.3f} | "
                f"{row['min']:.3f} | {row['max']:.3f} |"
            )
        rolled = data.get("rolled_back", {}).get(shots)
        lines += ["", verdict(table)]
        if rolled is not None:
            lines += [
                f"Stages rolled back by the guard: {rolled} "
                f"(over {_common.plural(len(data['seeds']), 'run')})."
            ]
        lines.append("")
    return lines


def main(argv=None):
    parser = _common.parser(__doc__)
    parser.add_argument(
        "--seeds", type=int, nargs="+", help="seeds (default 0 1 2)"
    )
    parser.add_argument(
        "--shots",
        type=int,
        nargs="+",
        help="labelled patches per class (default 5 10 30)",
    )
    parser.add_argument(
        "--epochs", type=int, help="epochs per method (default 10)"
    )
    parser.add_argument(
        "--name", default="quality", help="results/<name>.json to write"
    )
    args = parser.parse_args(argv)
    _common.require_real_model()
    seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
    shots_list = args.shots or ([5] if args.quick else [5, 10, 30])
    epochs = args.epochs or (3 if args.quick else 10)
    photos = _photographs()
    scores = {(n, m): [] for n in shots_list for m in METHODS}
    rolled = {n: 0 for n in shots_list}
    started = time.perf_counter()
    for seed in seeds:
        for shots in shots_list:
            data = patches(shots, seed, photos)
            for name, method in METHODS.items():
                keras.utils.set_random_seed(seed)
                accuracy, extra = method(data, epochs)
                scores[shots, name].append(accuracy)
                rolled[shots] += extra.get("rolled_back", 0)
                print(
                    f"seed {seed}  {shots:2d} labels/class  {name:26} "
                    f"{accuracy:.3f}  ({time.perf_counter() - started:.0f} s)",
                    flush=True,
                )
    data = {
        "task": "skimage photographs, 10 classes",
        "seeds": seeds,
        "epochs": epochs,
        "quick": args.quick,
        "accuracy_by_shots": {
            str(n): summarize({m: scores[n, m] for m in METHODS})
            for n in shots_list
        },
        "rolled_back": {str(n): rolled[n] for n in shots_list},
    }
    print("\n".join(render_section(data)))
    _common.save(args.name, data)


if __name__ == "__main__":
    main()
