"""Classifier data from folders or a CSV, checked before training starts.

`image_folder` and `text_folder` follow `keras.utils.*_dataset_from_directory`
(one sub-folder per class; class names sorted; label i is `class_names[i]`),
`text_csv` reads a CSV with a text and a label column. Every problem a
person can fix (an empty class folder, one class only, an unreadable image,
a missing column) raises a `DataError` that names the file and the fix.
Images stay on disk: `image_pipeline` streams them through `tf.data`.
"""

import csv
import dataclasses
import os

import numpy as np

from keras_hubkit import errors

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


@dataclasses.dataclass
class Dataset:
    """Examples, integer labels and the class names (label i = names[i])."""

    x: np.ndarray
    y: np.ndarray
    class_names: list
    kind: str = "text"  # "image": `x` holds file paths

    def split(self, fraction, seed=0):
        """Two datasets: the rest and a stratified `fraction` held out."""
        if not fraction:
            return self, None
        rng = np.random.default_rng(seed)
        held = []
        for label in range(len(self.class_names)):
            idx = np.flatnonzero(self.y == label)
            rng.shuffle(idx)
            count = max(1, round(len(idx) * fraction)) if len(idx) > 1 else 0
            held += list(idx[:count])
        mask = np.zeros(len(self.y), bool)
        mask[held] = True
        return (
            Dataset(self.x[~mask], self.y[~mask], self.class_names, self.kind),
            Dataset(self.x[mask], self.y[mask], self.class_names, self.kind),
        )


def image_folder(path):
    """Lists `path/<class>/<image>` and checks every file is an image.

    Only the file headers are read here; the pixels are read, resized and
    scaled while training (see `image_pipeline`), so a dataset need not fit
    in memory.

    Args:
        path: the folder with one sub-folder per class.

    Returns:
        A `Dataset` whose `x` holds the image file paths (images are read
        later, by `image_pipeline`).

    Raises:
        DataError: the folder is missing, a class folder is empty, there is
            one class, or an image cannot be read.
    """
    from PIL import Image

    class_names, files = _class_files(path, IMAGE_SUFFIXES, "image")
    paths, labels = [], []
    for label, name in enumerate(class_names):
        for file in files[name]:
            try:
                with Image.open(file) as image:
                    image.verify()  # reads no pixels for most formats
            except (OSError, ValueError, SyntaxError) as e:
                raise errors.DataError(
                    "Expected readable image files. Received: "
                    f"file={file}, which cannot be read ({e}). Remove or "
                    "replace the file."
                ) from e
            paths.append(file)
            labels.append(label)
    return Dataset(
        np.array(paths, dtype=object), np.array(labels), class_names, "image"
    )


def image_pipeline(
    dataset,
    image_size,
    *,
    channels=3,
    batch_size=32,
    shuffle=False,
    seed=0,
    augment=None,
):
    """A `tf.data` pipeline over an image `Dataset`, read from disk.

    Each file is decoded, resized to `image_size` and scaled to [0, 1]
    (`keras_hubkit.serving.decode_image`, the same function the exported
    model's serving signature runs), in parallel, then batched and
    prefetched, with tf.data's autotuner off (see
    `keras_hubkit.finetune._pipeline.steady`). Labels come one-hot.

    Args:
        dataset: a `Dataset` from `image_folder`.
        image_size: `(height, width)`.
        channels: color channels the model takes.
        batch_size: examples per batch.
        shuffle: reshuffle the files every epoch (for training).
        seed: the shuffle seed.
        augment: a Keras layer applied to each training batch, or None.

    Returns:
        A `tf.data.Dataset` of `(images, one_hot_labels)`.
    """
    import tensorflow as tf

    from keras_hubkit.finetune._pipeline import steady
    from keras_hubkit.serving import decode_image

    num_classes = len(dataset.class_names)
    files = tf.data.Dataset.from_tensor_slices(
        ([str(p) for p in dataset.x], dataset.y.astype("int32"))
    )
    if shuffle:
        files = files.shuffle(len(dataset.y), seed=seed)

    def load(path, label):
        image = decode_image(tf.io.read_file(path), image_size, channels)
        return image, tf.one_hot(label, num_classes)

    batches = files.map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(
        batch_size
    )
    if augment is not None:
        batches = batches.map(
            lambda x, y: (augment(x, training=True), y),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    return steady(batches.prefetch(tf.data.AUTOTUNE))


def text_pipeline(dataset, *, batch_size=32, shuffle=False, seed=0):
    """A `tf.data` pipeline of `(strings, one_hot_labels)` batches."""
    import tensorflow as tf

    from keras_hubkit.finetune._pipeline import steady

    examples = tf.data.Dataset.from_tensor_slices(
        (
            tf.constant([str(t) for t in dataset.x], tf.string),
            tf.one_hot(dataset.y.astype("int32"), len(dataset.class_names)),
        )
    )
    if shuffle:
        examples = examples.shuffle(len(dataset.y), seed=seed)
    return steady(examples.batch(batch_size).prefetch(tf.data.AUTOTUNE))


def augmentation(setting, seed=0):
    """The training-only augmentation a recipe's `augment` asks for.

    Args:
        setting: false/None (none), true (flip, rotation 0.1, zoom 0.1,
            after TF Hub's `make_image_classifier`), or a dict with any of
            `flip` ("horizontal", "vertical", "horizontal_and_vertical" or
            false), `rotation` and `zoom` (fractions).
        seed: seeds the random layers.

    Returns:
        A `keras.Sequential` of random layers, or None.
    """
    if not setting:
        return None
    import keras

    options = {"flip": "horizontal", "rotation": 0.1, "zoom": 0.1}
    if isinstance(setting, dict):
        unknown = sorted(set(setting) - set(options))
        if unknown:
            raise errors.RecipeError(
                f"Expected augment settings among {sorted(options)}. "
                f"Received: {unknown}. Remove them."
            )
        options.update(setting)
    elif setting is not True:
        raise errors.RecipeError(
            "Expected augment = true, false or a table (flip, rotation, "
            f"zoom). Received: augment={setting!r}."
        )
    layers = []
    if options["flip"]:
        layers.append(keras.layers.RandomFlip(options["flip"], seed=seed))
    if options["rotation"]:
        layers.append(
            keras.layers.RandomRotation(options["rotation"], seed=seed)
        )
    if options["zoom"]:
        layers.append(keras.layers.RandomZoom(options["zoom"], seed=seed))
    return keras.Sequential(layers, name="augmentation") if layers else None


def text_folder(path):
    """Loads `path/<class>/<file>.txt`, one example per file.

    Raises:
        DataError: the folder is missing, a class folder is empty, there is
            one class, or a file is not UTF-8.
    """
    class_names, files = _class_files(path, (".txt",), "text")
    texts, labels = [], []
    for label, name in enumerate(class_names):
        for file in files[name]:
            try:
                with open(file, encoding="utf8") as f:
                    texts.append(f.read().strip())
            except (OSError, UnicodeDecodeError) as e:
                raise errors.DataError(
                    "Expected UTF-8 text files. Received: "
                    f"file={file}, which cannot be read ({e}). Save it as "
                    "UTF-8 or remove it."
                ) from e
            labels.append(label)
    return Dataset(np.array(texts, dtype=object), np.array(labels), class_names)


def text_csv(path, text_column="text", label_column="label"):
    """Loads a CSV with a text column and a label column.

    Raises:
        DataError: the file is missing, a column is missing, or there is
            one label.
    """
    if not os.path.isfile(path):
        raise errors.DataError(
            f"Expected a CSV file. Received: path={path}, which does not "
            "exist. Check the path."
        )
    with open(path, newline="", encoding="utf8") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        missing = [c for c in (text_column, label_column) if c not in columns]
        if missing:
            raise errors.DataError(
                f"Expected a column {missing[0]!r} in {path}. Received: "
                f"columns={columns}. Pass the right names (text_column / "
                "label_column, or --text-column / --label-column)."
            )
        rows = [(r[text_column], r[label_column]) for r in reader]
    class_names = sorted({label for _, label in rows})
    _check_classes(class_names, path, {n: [1] for n in class_names})
    index = {n: i for i, n in enumerate(class_names)}
    return Dataset(
        np.array([t for t, _ in rows], dtype=object),
        np.array([index[label] for _, label in rows]),
        class_names,
    )


def _class_files(path, suffixes, kind):
    if not os.path.isdir(path):
        raise errors.DataError(
            f"Expected a folder with one sub-folder per class. Received: "
            f"{path}, which is not a folder."
        )
    class_names = sorted(
        d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d))
    )
    files = {
        name: sorted(
            os.path.join(path, name, f)
            for f in os.listdir(os.path.join(path, name))
            if f.lower().endswith(suffixes)
        )
        for name in class_names
    }
    for name in class_names:
        if not files[name]:
            raise errors.DataError(
                f"Expected {kind} files ({', '.join(suffixes)}) in every "
                f"class folder. Received: {os.path.join(path, name)} has no "
                f"{kind} files. Add examples or remove the folder."
            )
    _check_classes(class_names, path, files)
    return class_names, files


def _check_classes(class_names, path, files):
    if len(class_names) < 2:
        raise errors.DataError(
            "Expected at least two classes for a classifier. Received: "
            f"{path} has {len(class_names)} class(es) {class_names}. Add a "
            "folder (or label) per class."
        )
