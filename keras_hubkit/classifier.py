"""Image and text classifiers from a handle: a `HubLayer` and a head.

Defaults follow TF Hub's `make_image_classifier`: dropout 0.2 and L2 1e-4
on the head. The training pipeline that writes files (what `hubkit train`
and recipes run) lives in `keras_hubkit.app.train`.
"""

import keras

from keras_hubkit import errors
from keras_hubkit.hub_layer import HubLayer
from keras_hubkit.image_spec import get_expected_image_size
from keras_hubkit.image_spec import get_num_image_channels


def image_classifier(
    handle,
    num_classes,
    *,
    image_size=None,
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
        image_size: `(height, width)` of the inputs. Default: the size
            the model was traced for (`hk.get_expected_image_size`), or
            224x224 for a model that takes any size.
        dropout: dropout before the last layer.
        l2: L2 penalty on the head's kernels.
        hidden: units of an optional hidden layer (0: none).
        **hub_kwargs: more `HubLayer` arguments.

    Returns:
        A `keras.Model` returning logits; the `HubLayer` is named "base".

    Raises:
        InputSpecError: the model does not take images, or `image_size`
            differs from the size it was traced for.
        HubkitError: a subclass of it when the handle cannot be resolved,
            scanned or loaded (see `hk.HubLayer`).

    Example:

    ```python
    model = hk.image_classifier(handle, 5)  # the model's own image size
    ```
    """
    base = HubLayer(handle, **{"name": "base", **hub_kwargs})
    expected = get_expected_image_size(base, default=image_size or (224, 224))
    if image_size is not None and tuple(image_size) != expected:
        raise errors.InputSpecError(
            f"Expected image_size={expected}, the size the model was traced "
            f"for. Received: image_size={tuple(image_size)}. Remove "
            "image_size (or set it to the model's size) and resize images "
            "to it (`hubkit train` and the recipes do that)."
        )
    channels = get_num_image_channels(base, default=3)
    inputs = keras.Input((*expected, channels), name="image")
    return _with_head(inputs, base, num_classes, dropout, l2, hidden)


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
    base = HubLayer(handle, **{"name": "base", **hub_kwargs})
    return _with_head(inputs, base, num_classes, dropout, l2, hidden)


def _with_head(inputs, base, num_classes, dropout, l2, hidden):
    x = base(inputs)
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
