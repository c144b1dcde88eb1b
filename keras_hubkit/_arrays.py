"""Labels and inputs in the forms Keras's `fit` and `predict` accept.

NumPy only: TensorFlow is imported when a string array needs converting.
"""

import numpy as np

from keras_hubkit import errors

# How many distinct bad labels an error quotes.
_QUOTED = 10


def one_hot(labels, num_classes, name="labels"):
    """Class labels as float32 one-hot rows, checked.

    Args:
        labels: class indices shaped `(n,)` or `(n, 1)`; one-hot rows
            shaped `(n, num_classes)`, returned as they are (soft labels
            too); or `None`, returned as it is. So callers can pass
            whatever `fit` was given.
        num_classes: how many classes.
        name: what the caller calls the labels, for error messages.

    Returns:
        A float32 array of shape `(n, num_classes)`, `labels` itself when
        it already has that shape, or `None`.

    Raises:
        DataError: `labels` has another shape, or holds a class index that
            is not a whole number in `0..num_classes - 1`.
    """
    if labels is None:
        return None
    array = np.asarray(labels)
    if array.ndim == 1 or (array.ndim == 2 and array.shape[1] == 1):
        indices = _class_indices(array.reshape(-1), num_classes, name)
        return np.eye(num_classes, dtype="float32")[indices]
    if array.ndim == 2 and array.shape[1] == num_classes:
        return labels
    raise errors.DataError(
        f"Expected {name} to be class indices shaped (n,) or (n, 1), or "
        f"one-hot rows shaped (n, {num_classes}). Received: "
        f"{name} of shape {array.shape}. Pass one class index per example."
    )


def _class_indices(labels, num_classes, name="labels"):
    """1-D `labels` as integer class indices, checked.

    Indexing an identity matrix with them would turn -1 into the last
    class and fail on `num_classes` with a bare `IndexError`; this names
    the bad values instead.

    Raises:
        DataError: a label is not a whole number in `0..num_classes - 1`.
    """
    if labels.dtype.kind not in "biuf":
        raise errors.DataError(
            f"Expected {name} to hold integer class indices. Received: "
            f"dtype {labels.dtype}, e.g. {labels[:3].tolist()}. Map the "
            f"classes to 0..{num_classes - 1}, e.g. with "
            "`np.unique(labels, return_inverse=True)[1]`."
        )
    with np.errstate(invalid="ignore"):  # NaN compares False: it is bad
        valid = (labels >= 0) & (labels < num_classes)
        if labels.dtype.kind == "f":
            valid &= labels == np.floor(labels)
    if valid.all():
        return labels.astype(int)
    bad = np.unique(labels[~valid])
    quoted = ", ".join(str(v) for v in bad[:_QUOTED].tolist())
    if len(bad) > _QUOTED:
        quoted += f" and {len(bad) - _QUOTED} more"
    raise errors.DataError(
        f"Expected {name} to hold class indices in 0..{num_classes - 1} "
        f"(num_classes={num_classes}). Received: {int((~valid).sum())} "
        f"label(s) outside that range or not whole numbers, with the "
        f"values {quoted}. Map the classes to 0..{num_classes - 1} (e.g. "
        "`np.unique(labels, return_inverse=True)[1]`), or set num_classes "
        "to the number of classes."
    )


def model_input(x):
    """`x` as something `Model.fit`/`predict` accept.

    Keras's array adapters reject NumPy string (object) arrays, while
    TensorFlow takes them as a list of strings; numeric arrays pass through.
    """
    if not (isinstance(x, np.ndarray) and x.dtype == object):
        return x
    import tensorflow as tf

    return tf.constant(list(x))
