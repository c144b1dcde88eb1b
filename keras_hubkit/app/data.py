"""Classifier data from folders or a CSV, checked before training starts.

`image_folder` and `text_folder` follow `keras.utils.*_dataset_from_directory`
(one sub-folder per class; class names sorted; label i is `class_names[i]`),
`text_csv` reads a CSV with a text and a label column. Every problem a
person can fix (an empty class folder, one class only, an unreadable image,
images of different sizes, a missing column) raises a `DataError` that names
the file and the fix. Data is loaded into memory: recipes are for datasets
that fit in RAM.
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
            Dataset(self.x[~mask], self.y[~mask], self.class_names),
            Dataset(self.x[mask], self.y[mask], self.class_names),
        )


def image_folder(path, image_size=None):
    """Loads `path/<class>/<image>` as float32 pixels in [0, 1].

    Args:
        path: the folder with one sub-folder per class.
        image_size: `(height, width)` to resize to; when None, every image
            must already have the same size.

    Returns:
        A `Dataset` with `x` of shape `(n, height, width, 3)`.

    Raises:
        DataError: the folder is missing, a class folder is empty, there is
            one class, an image cannot be read, or sizes differ without
            `image_size`.
    """
    from PIL import Image

    class_names, files = _class_files(path, IMAGE_SUFFIXES, "image")
    images, labels, first = [], [], None
    for label, name in enumerate(class_names):
        for file in files[name]:
            try:
                with Image.open(file) as image:
                    image = image.convert("RGB")
                    if image_size is not None:
                        image = image.resize(tuple(image_size)[::-1])
                    array = np.asarray(image, "float32") / 255.0
            except (OSError, ValueError) as e:
                raise errors.DataError(
                    "Expected readable image files. Received: "
                    f"file={file}, which cannot be read ({e}). Remove or "
                    "replace the file."
                ) from e
            if first is None:
                first = (file, array.shape)
            elif array.shape != first[1]:
                raise errors.DataError(
                    "Expected images of one size. Received: "
                    f"{file} is {array.shape[1]}x{array.shape[0]} but "
                    f"{first[0]} is {first[1][1]}x{first[1][0]}. Pass an "
                    "image size (`image_size` / --image-size H W) to resize "
                    "them all."
                )
            images.append(array)
            labels.append(label)
    return Dataset(np.stack(images), np.array(labels), class_names)


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
