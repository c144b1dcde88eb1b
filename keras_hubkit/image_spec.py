"""What an image model takes: its input size, channels and pixel range.

`hk.get_expected_image_size` and `hk.get_num_image_channels` read the
SavedModel's own traced input signature (`__call__`, or a serving signature
for signature-only models), as `hub.get_expected_image_size` did. The
functions here only read specs: they never call the model.
"""

import tensorflow as tf

from keras_hubkit import _specs
from keras_hubkit import errors
from keras_hubkit._redact import redact


def get_expected_image_size(handle, *, signature=None, default=None):
    """The `(height, width)` an image model was traced for.

    Reads the model's input signature: `[batch, height, width, channels]`.
    A model traced for images of any size (height or width `None`) has no
    expected size: `default` is returned then, or an error says so.

    Args:
        handle: a path or URL, an object from `hk.load` /
            `tf.saved_model.load`, or an `hk.HubLayer`.
        signature: read this serving signature instead of `__call__` (the
            default for models without `__call__` is `serving_default`).
        default: `(height, width)` to return when the size is dynamic.

    Returns:
        A tuple `(height, width)` of ints.

    Raises:
        InputSpecError: the model does not take one batch of images, or its
            size is dynamic and no `default` is given.

    Example:

    ```python
    size = hk.get_expected_image_size(handle)            # (224, 224)
    size = hk.get_expected_image_size(handle, default=(224, 224))
    ```
    """
    spec, name = image_input_spec(handle, signature)
    height, width = spec.shape[1], spec.shape[2]
    if height is None or width is None:
        if default is not None:
            return tuple(int(d) for d in default)
        raise errors.InputSpecError(
            f"Expected an image model traced for one image size. Received: "
            f"{name} takes {_specs.describe_structure(spec)}, images of any "
            "size. Pass `default=(height, width)` (224x224 suits most TF Hub "
            "image models), or use the size the model's documentation gives."
        )
    return int(height), int(width)


def get_num_image_channels(handle, *, signature=None, default=None):
    """How many color channels an image model takes (3 for RGB).

    Args:
        handle: a path or URL, an object from `hk.load` /
            `tf.saved_model.load`, or an `hk.HubLayer`.
        signature: read this serving signature instead of `__call__`.
        default: the number to return when the model leaves it open.

    Returns:
        An int.

    Raises:
        InputSpecError: the model does not take one batch of images, or its
            channel count is dynamic and no `default` is given.

    Example:

    ```python
    channels = hk.get_num_image_channels(handle)          # 3
    ```
    """
    spec, name = image_input_spec(handle, signature)
    channels = spec.shape[3]
    if channels is None:
        if default is not None:
            return int(default)
        raise errors.InputSpecError(
            "Expected an image model with a fixed number of channels. "
            f"Received: {name} takes {_specs.describe_structure(spec)}. "
            "Pass `default=3` for RGB images."
        )
    return int(channels)


def image_input_spec(handle, signature=None):
    """The `TensorSpec` of an image model's input and a name for messages.

    Traces that disagree on a dimension (several sizes were traced) leave it
    `None`.

    Raises:
        InputSpecError: the model does not take one float tensor of rank 4.
    """
    fn, name = _function_of(handle, signature)
    specs = [_single(s) for s in _specs.call_input_specs(fn)]
    tensor_specs = [s for s in specs if isinstance(s, tf.TensorSpec)]
    if not tensor_specs or len(tensor_specs) != len(specs):
        raise errors.InputSpecError(
            "Expected an image model taking one tensor [batch, height, "
            f"width, channels]. Received: {name} takes "
            f"{_specs.describe(specs)}."
        )
    shape = _merged_shape([s.shape for s in tensor_specs])
    spec = tf.TensorSpec(shape, tensor_specs[0].dtype)
    if shape.rank != 4 or not spec.dtype.is_floating:
        raise errors.InputSpecError(
            "Expected an image model taking float [batch, height, width, "
            f"channels]. Received: {name} takes "
            f"{_specs.describe_structure(spec)}."
        )
    return spec, name


def reject_integer_images(x, spec, handle=None):
    """Raises when integer pixels are fed to a float image model.

    TF Hub image models take float pixels in [0, 1]; a uint8 image cast
    to float gives values up to 255 and silently wrong features.

    Args:
        x: the input (a tensor or a NumPy value); other values pass.
        spec: the `TensorSpec` the model was traced for, or None.
        handle: names the model in the message.

    Raises:
        InputSpecError: `x` holds integers and `spec` is a float image.
    """
    if spec is None or not spec.dtype.is_floating or spec.shape.rank != 4:
        return
    dtype = getattr(x, "dtype", None)
    try:
        dtype = tf.as_dtype(dtype) if dtype is not None else None
    except TypeError:  # NumPy object arrays
        return
    if dtype is None or not dtype.is_integer:
        return
    model = f" for {handle!r}" if handle else ""
    raise errors.InputSpecError(
        f"Expected float images in [0, 1] ({spec.dtype.name}), the TF Hub "
        f"image convention. Received: images of dtype {dtype.name}{model}. "
        "Scale them first: `tf.cast(images, tf.float32) / 255`"
        " (or `keras.layers.Rescaling(1 / 255)` in the model)."
    )


def _function_of(handle, signature):
    layer_object = getattr(handle, "resolved_object", None)
    if layer_object is not None:  # an hk.HubLayer
        source = handle.handle
        name = redact(source) if isinstance(source, str) else handle.name
        signature = signature or handle.signature
        handle = layer_object
    elif isinstance(handle, str) or hasattr(handle, "__fspath__"):
        from keras_hubkit.loading import load

        name, handle = str(handle), load(handle)
    else:
        name = type(handle).__name__
    signatures = getattr(handle, "signatures", None) or {}
    if signature is None and callable(handle):
        return handle, repr(name)
    signature = signature or "serving_default"
    if signature not in signatures:
        raise errors.SignatureError(
            f"Expected a callable SavedModel or a signature of it. Received: "
            f"signature={signature!r}; {name!r} has "
            f"{sorted(k for k in signatures if not k.startswith('__'))}. "
            "Pass `signature=` with one of them."
        )
    return signatures[signature], f"{name!r} (signature {signature!r})"


def _single(spec):
    # A signature's inputs come as a dict of keyword arguments.
    if isinstance(spec, dict) and len(spec) == 1:
        return next(iter(spec.values()))
    return spec


def _merged_shape(shapes):
    ranks = {s.rank for s in shapes}
    if len(ranks) != 1 or None in ranks:
        return tf.TensorShape(None)
    dims = [
        dims[0] if len(set(dims)) == 1 else None
        for dims in zip(*(s.as_list() for s in shapes))
    ]
    return tf.TensorShape(dims)
