"""Labels and inputs in the forms Keras's `fit` and `predict` accept.

NumPy only: TensorFlow is imported when a string array needs converting.
"""

import numpy as np


def one_hot(labels, num_classes):
    """Integer labels as float32 one-hot rows; other arrays pass through.

    Labels that are already one-hot (2-D) and `None` are returned as they
    are, so callers can pass whatever `fit` was given.
    """
    if labels is None:
        return None
    labels = np.asarray(labels)
    if labels.ndim != 1:
        return labels
    return np.eye(num_classes, dtype="float32")[labels.astype(int)]


def model_input(x):
    """`x` as something `Model.fit`/`predict` accept.

    Keras's array adapters reject NumPy string (object) arrays, while
    TensorFlow takes them as a list of strings; numeric arrays pass through.
    """
    if not (isinstance(x, np.ndarray) and x.dtype == object):
        return x
    import tensorflow as tf

    return tf.constant(list(x))
