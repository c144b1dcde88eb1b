"""Image and text classifiers from a handle: a `HubLayer` and a head.

Defaults follow TF Hub's `make_image_classifier`: dropout 0.2 and L2 1e-4
on the head. The training pipeline that writes files (what `hubkit train`
and recipes run) lives in `keras_hubkit.app.train`.
"""

import keras

from keras_hubkit.hub_layer import HubLayer


def image_classifier(
    handle,
    num_classes,
    *,
    image_size=(224, 224),
    dropout=0.2,
    l2=1e-4,
    hidden=0,
    **hub_kwargs,
):
    """A Keras classifier: `HubLayer(handle)` on images, then a head.

    Args:
        handle: an image feature vector (inputs `[batch, h, w, 3]` in
            `[0, 1]`, the TF Hub convention).
        num_classes: how many classes.
        image_size: `(height, width)` of the inputs.
        dropout: dropout before the last layer.
        l2: L2 penalty on the head's kernels.
        hidden: units of an optional hidden layer (0: none).
        **hub_kwargs: more `HubLayer` arguments.

    Returns:
        A `keras.Model` returning logits; the `HubLayer` is named "base".

    Raises:
        HubkitError: a subclass of it when the handle cannot be resolved,
            scanned or loaded (see `hk.HubLayer`).

    Example:

    ```python
    model = hk.image_classifier(handle, 5, image_size=(224, 224))
    ```
    """
    inputs = keras.Input((*image_size, 3), name="image")
    return _with_head(
        inputs, handle, num_classes, dropout, l2, hidden, hub_kwargs
    )


def text_classifier(
    handle, num_classes, *, dropout=0.2, l2=1e-4, hidden=0, **hub_kwargs
):
    """A Keras classifier: `HubLayer(handle)` on strings, then a head.

    Args:
        handle: a text embedding taking a batch of strings.
        num_classes: how many classes.
        dropout: dropout before the last layer.
        l2: L2 penalty on the head's kernels.
        hidden: units of an optional hidden layer (0: none).
        **hub_kwargs: more `HubLayer` arguments.

    Returns:
        A `keras.Model` returning logits, with a string input.

    Raises:
        HubkitError: a subclass of it when the handle cannot be resolved,
            scanned or loaded (see `hk.HubLayer`).

    Example:

    ```python
    model = hk.text_classifier(handle, 2, hidden=16)
    ```
    """
    inputs = keras.Input((), dtype="string", name="text")
    return _with_head(
        inputs, handle, num_classes, dropout, l2, hidden, hub_kwargs
    )


def _with_head(inputs, handle, num_classes, dropout, l2, hidden, hub_kwargs):
    hub_kwargs.setdefault("name", "base")
    x = HubLayer(handle, **hub_kwargs)(inputs)
    regularizer = keras.regularizers.L2(l2) if l2 else None
    if hidden:
        x = keras.layers.Dense(
            hidden,
            activation="relu",
            name="hidden",
            kernel_regularizer=regularizer,
        )(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(
        num_classes, name="logits", kernel_regularizer=regularizer
    )(x)
    return keras.Model(inputs, outputs)
