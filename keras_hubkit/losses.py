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
            indices = keras.ops.reshape(y_true, keras.ops.shape(y_pred)[:-1])
            y_true = keras.ops.one_hot(
                keras.ops.cast(indices, "int32"), self.num_classes
            )
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
