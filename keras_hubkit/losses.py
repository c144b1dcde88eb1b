"""Losses (serializable `keras.losses.Loss`es).

`ClassCrossentropy` is the loss of a hyperparameter search's trials, for
the labels the search was given (see `hk.tuning`).
"""

import keras


@keras.saving.register_keras_serializable(package="keras_hubkit")
class ClassCrossentropy(keras.losses.Loss):
    """Cross-entropy of logits against class indices or one-hot rows, with
    label smoothing: the loss of a search's trials, for the labels the
    search was given.

    `keras.losses.SparseCategoricalCrossentropy` has no label smoothing and
    `CategoricalCrossentropy` takes only one-hot rows; the trials one-hot
    their labels, so a model `get_best_models()` returns evaluates on the
    class indices given to `search` to the trial's own loss.

    Class indices (shaped `(n,)` or `(n, 1)`) must be whole numbers in
    `0..num_classes - 1`, as for `SparseCategoricalCrossentropy`: with the
    TensorFlow backend another label raises `InvalidArgumentError`, eagerly
    and in compiled `fit`/`evaluate` steps. Where that check cannot run
    (XLA-compiled steps, which drop assertions, and other backends), the
    loss of such an example is NaN, never a silent 0.

    Args:
        num_classes: how many classes.
        label_smoothing: as for `keras.losses.CategoricalCrossentropy`.

    Example:

    ```python
    loss = hk.losses.ClassCrossentropy(3, label_smoothing=0.1)
    loss([2, 0], [[0.1, 0.2, 3.0], [2.0, 0.1, 0.3]])
    ```
    """

    def __init__(self, num_classes, label_smoothing=0.0, **kwargs):
        kwargs.setdefault("name", "class_crossentropy")
        super().__init__(**kwargs)
        self.num_classes = int(num_classes)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        y_true = keras.ops.convert_to_tensor(y_true)
        if len(y_true.shape) < len(y_pred.shape) or y_true.shape[-1] == 1:
            # Class indices, as (n,) or (n, 1).
            return self._on_indices(y_true, y_pred)
        return self._crossentropy(y_true, y_pred)

    def _on_indices(self, y_true, y_pred):
        indices = keras.ops.cast(
            keras.ops.reshape(y_true, keras.ops.shape(y_pred)[:-1]),
            "float32",
        )
        valid = keras.ops.logical_and(
            keras.ops.logical_and(
                keras.ops.greater_equal(indices, 0),
                keras.ops.less(indices, self.num_classes),
            ),
            keras.ops.equal(indices, keras.ops.floor(indices)),
        )
        _assert_class_indices(valid, indices, self.num_classes)
        # Where the assertion does not run (XLA drops it, other backends
        # have none), `one_hot` would give a bad index a row of zeros and
        # the example would add 0 (smoothed: a plausible value) to the loss.
        loss = self._crossentropy(
            keras.ops.one_hot(
                keras.ops.cast(indices, "int32"), self.num_classes
            ),
            y_pred,
        )
        return keras.ops.where(valid, loss, float("nan"))

    def _crossentropy(self, y_true, y_pred):
        return keras.losses.categorical_crossentropy(
            keras.ops.cast(y_true, y_pred.dtype),
            y_pred,
            from_logits=True,
            label_smoothing=self.label_smoothing,
        )

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "label_smoothing": self.label_smoothing,
        }


def _assert_class_indices(valid, indices, num_classes):
    """With the TensorFlow backend, an assertion that every label is a
    class index, run eagerly or as part of the compiled step.

    It reports the smallest and largest bad label: two reductions, with no
    shape that depends on the data (which XLA could not compile).
    """
    if keras.backend.backend() != "tensorflow":
        return
    import tensorflow as tf

    inf = float("inf")
    tf.debugging.Assert(
        tf.reduce_all(valid),
        [
            f"ClassCrossentropy expected class indices in "
            f"0..{num_classes - 1} (num_classes={num_classes}). Received "
            "labels outside that range or not whole numbers; the smallest "
            "is",
            tf.reduce_min(tf.where(valid, inf, indices)),
            "and the largest is",
            tf.reduce_max(tf.where(valid, -inf, indices)),
            f". Map the classes to 0..{num_classes - 1}, or set "
            "num_classes to the number of classes.",
        ],
    )
