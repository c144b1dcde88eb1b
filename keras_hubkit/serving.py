"""Serving signatures that carry a classifier's preprocessing.

A TF Hub image model takes float pixels in [0, 1] at one size; a person
has JPEG files or uint8 arrays of any size. `classifier_signatures` wraps a
trained classifier in signatures that decode, resize and scale themselves
and return class names with probabilities, so the exported SavedModel
serves (TF Serving, `hubkit predict`, plain `tf.saved_model.load`) without
the training code, as KerasHub tasks carry their preprocessors.
"""

import tensorflow as tf

from keras_hubkit import errors

# Input names of the signatures; `hubkit predict` picks its reader by them.
IMAGE_BYTES = "image_bytes"
PIXELS = "images"
TEXT = "text"
# The float-image signature (for TFLite conversion).
FLOAT_SIGNATURE = "serving_float"


def decode_image(encoded, image_size, channels=3):
    """Encoded bytes (JPEG, PNG, GIF, BMP) to float pixels in [0, 1].

    Args:
        encoded: a scalar `tf.string` tensor, the file's content.
        image_size: `(height, width)` to resize to (bilinear).
        channels: color channels of the result (1 or 3).

    Returns:
        A float32 tensor `[height, width, channels]`.
    """
    image = tf.io.decode_image(
        encoded, channels=channels, expand_animations=False, dtype=tf.uint8
    )
    image.set_shape([None, None, channels])
    return scale_images(image, image_size)


def scale_images(images, image_size):
    """uint8 images of any size to float32 `image_size` in [0, 1]."""
    images = tf.image.resize(tf.cast(images, tf.float32), image_size)
    return images / 255.0


def classifier_signatures(model, class_names, kind="image"):
    """Serving signatures for a classifier that returns probabilities.

    For images, `serving_default` takes `image_bytes` (a batch of encoded
    files, `tf.string [batch]`) and `serving_images` takes `images` (uint8
    `[batch, height, width, channels]` of any size); both resize to the
    model's input size and scale to [0, 1]. For text, `serving_default`
    takes `text` (raw strings). Every signature returns:

    - `probabilities`: float32 `[batch, num_classes]`, in class order;
    - `classes`: the class names `[batch, num_classes]`, best first;
    - `scores`: their probabilities `[batch, num_classes]`, best first.

    Images also get `serving_float`: float32 images in [0, 1] at the
    model's size to `probabilities` only, the interface TFLite and
    `make_image_classifier` exports have.

    Args:
        model: a Keras model from images (`[batch, h, w, c]` float in
            [0, 1]) or strings to class probabilities.
        class_names: the names of the model's outputs, in order.
        kind: "image" or "text".

    Returns:
        A dict from signature name to concrete function, for
        `hk.export_saved_model(model, path, signatures=...)`.

    Raises:
        ExportError: `kind` is unknown, or the number of class names does
            not match the model's outputs.

    Example:

    ```python
    probabilities = keras.Sequential([classifier, keras.layers.Softmax()])
    hk.export_saved_model(
        probabilities,
        "served",
        signatures=classifier_signatures(probabilities, ["cat", "dog"]),
    )
    ```
    """
    names = tf.constant([str(n) for n in class_names])
    outputs = model.outputs[0].shape[-1] if model.outputs else None
    if outputs is not None and outputs != len(class_names):
        raise errors.ExportError(
            f"Expected one class name per model output ({outputs}). "
            f"Received: {len(class_names)} class names. Pass the names in "
            "the order of the model's outputs."
        )

    def respond(x):
        probabilities = tf.cast(model(x, training=False), tf.float32)
        order = tf.argsort(probabilities, axis=-1, direction="DESCENDING")
        return {
            "probabilities": probabilities,
            "classes": tf.gather(names, order),
            "scores": tf.gather(probabilities, order, batch_dims=1),
        }

    if kind == "text":
        return {
            "serving_default": tf.function(
                lambda text: respond(text),
                input_signature=[tf.TensorSpec([None], tf.string, name=TEXT)],
            ).get_concrete_function()
        }
    if kind != "image":
        raise errors.ExportError(
            f'Expected kind="image" or "text". Received: kind={kind!r}.'
        )
    height, width, channels = model.inputs[0].shape[1:]

    def from_bytes(image_bytes):
        images = tf.map_fn(
            lambda b: decode_image(b, (height, width), channels),
            image_bytes,
            fn_output_signature=tf.TensorSpec(
                [height, width, channels], tf.float32
            ),
        )
        return respond(images)

    def from_pixels(images):
        return respond(scale_images(images, (height, width)))

    def from_floats(images):
        return {"probabilities": tf.cast(model(images), tf.float32)}

    bytes_spec = tf.TensorSpec([None], tf.string, name=IMAGE_BYTES)
    pixels_spec = tf.TensorSpec([None, None, None, channels], tf.uint8, PIXELS)
    float_spec = tf.TensorSpec([None, height, width, channels], tf.float32)
    return {
        "serving_default": tf.function(
            from_bytes, input_signature=[bytes_spec]
        ).get_concrete_function(),
        "serving_images": tf.function(
            from_pixels, input_signature=[pixels_spec]
        ).get_concrete_function(),
        FLOAT_SIGNATURE: tf.function(
            from_floats, input_signature=[float_spec]
        ).get_concrete_function(),
    }
