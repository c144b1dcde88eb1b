"""Reads what a restored SavedModel function expects, without calling it."""

import inspect

import tensorflow as tf


def call_input_specs(fn):
    """The input structures `fn` was traced for (first positional argument).

    Works for a restored `tf.function` (`__call__` of a reusable SavedModel)
    and for a signature `ConcreteFunction` (whose inputs are keyword-only;
    the dict of their specs is returned).
    """
    if isinstance(fn, tf.types.experimental.ConcreteFunction):
        args, kwargs = fn.structured_input_signature
        return [kwargs] if kwargs else [args]
    fn = function_of(fn)
    specs = []
    for concrete in getattr(fn, "concrete_functions", []) or []:
        args, _ = concrete.structured_input_signature
        if args:
            specs.append(args[0])
    if not specs and getattr(fn, "input_signature", None):
        specs.append(fn.input_signature[0])
    return specs


def single_tensor_spec(specs):
    """The one `TensorSpec` all traces agree on, or None."""
    tensor_specs = [s for s in specs if isinstance(s, tf.TensorSpec)]
    if not tensor_specs or len(tensor_specs) != len(specs):
        return None
    dtypes = {s.dtype for s in tensor_specs}
    return tensor_specs[0] if len(dtypes) == 1 else None


def has_training_argument(fn) -> bool:
    """Whether `fn` declares a `training` argument (signatures never do)."""
    if isinstance(fn, tf.types.experimental.ConcreteFunction):
        return False
    fn = function_of(fn)
    try:
        # A restored function keeps its Python signature, e.g.
        # (inputs, training=False, batch_norm_momentum=0.99).
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "training" in params


def function_of(obj):
    # A loaded object's `__call__` is the restored function that knows its
    # traces; `inspect.signature(obj)` itself is just (*args, **kwargs).
    if hasattr(obj, "concrete_functions") or not callable(obj):
        return obj
    return obj.__call__


def describe(specs) -> str:
    """A short human-readable list of input specs."""
    if not specs:
        return "(no traced input signature found)"
    return "; ".join(_describe_one(s) for s in specs)


def _describe_one(spec) -> str:
    return describe_structure(spec)


def describe_structure(structure) -> str:
    """`dtype[shape]` for each tensor or spec of a nest: `float32[None, 8]`."""

    def one(item):
        if hasattr(item, "dtype") and hasattr(item, "shape"):
            if item.shape.rank is None:  # traced for any shape
                return f"{item.dtype.name}[any shape]"
            return f"{item.dtype.name}{list(item.shape)}"
        return repr(item)

    return str(tf.nest.map_structure(one, structure))


def has_strings(specs) -> bool:
    """Whether any traced input is a string tensor."""
    return any(
        isinstance(s, tf.TensorSpec) and s.dtype == tf.string
        for s in tf.nest.flatten(specs)
    )
