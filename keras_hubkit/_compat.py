"""The only place that touches private Keras APIs or checks the backend.

Keeping these in one module means a Keras upgrade that moves something
breaks one file, and tests can find every private import here.
"""

import keras

from keras_hubkit import errors


def require_tensorflow_backend(what: str) -> None:
    """Raises `BackendError` unless Keras runs on the TensorFlow backend.

    A SavedModel is a TensorFlow program: its functions can only run as
    TensorFlow ops, so there is no way to wrap one on JAX or PyTorch.
    """
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise errors.BackendError(
            f"{what} needs the TensorFlow backend to run a SavedModel. "
            f"Received: the Keras backend is {backend!r}. Set the "
            "environment variable KERAS_BACKEND=tensorflow before importing "
            "keras (or set it in ~/.keras/keras.json) and restart Python."
        )


def in_safe_mode():
    """Keras's safe-mode flag while `load_model` runs; None outside it."""
    from keras.src.saving import serialization_lib

    return serialization_lib.in_safe_mode()


def name_scope(layer):
    """The name scope Keras uses for a layer's own weights."""
    from keras.src import backend

    return backend.name_scope(layer.name, caller=layer)


def patch_keras_tuner_tensorboard():
    """Lets keras-tuner 1.4 run trials without `tensorboard` installed.

    `Tuner.run_trial` imports `tensorboard.plugins.hparams` on every trial
    to decorate TensorBoard callbacks, and TensorFlow 2.21 no longer
    installs tensorboard, so every trial fails. Without tensorboard there
    is no TensorBoard callback to decorate: skip the step then, and keep
    keras-tuner's behaviour when tensorboard is present.
    """
    import importlib.util

    from keras_tuner.src.engine import tuner as tuner_module

    original = tuner_module.Tuner._configure_tensorboard_dir
    if getattr(original, "_hubkit_patched", False):
        return

    def configure(self, callbacks, trial, execution=0):
        if importlib.util.find_spec("tensorboard") is None:
            return None
        return original(self, callbacks, trial, execution)

    configure._hubkit_patched = True
    tuner_module.Tuner._configure_tensorboard_dir = configure


# --- image models and serving (h6) ---
def float_ops_without_gradient(concrete_functions):
    """Op types in the functions (and the functions they call) that take
    and give floats but have no registered gradient.

    TensorFlow differentiates a SavedModel's function as a whole, so one
    such op on the way from the inputs to the outputs (e.g.
    `AdjustContrastv2` of a Keras 2 `RandomContrast` layer) fails every
    training step with "No gradient defined". TensorFlow has no public
    gradient-registry lookup (`ops._gradient_registry`, TF 2.0+) nor a
    public op-definition registry (`op_def_registry`, TF 2.0+).
    """
    from tensorflow.python.framework import op_def_registry
    from tensorflow.python.framework import ops

    found, seen = set(), set()
    for concrete in concrete_functions:
        graph_def = concrete.graph.as_graph_def()
        nodes = list(graph_def.node)
        for function in graph_def.library.function:
            if function.signature.name not in seen:  # traces share bodies
                seen.add(function.signature.name)
                nodes += list(function.node_def)
        for node in nodes:
            if node.op in found or "PartitionedCall" in node.op:
                continue  # function calls are differentiated by body
            try:
                ops._gradient_registry.lookup(node.op)
                continue
            except LookupError:
                pass
            op_def = op_def_registry.get(node.op)
            if op_def is None:
                continue
            if _has_float(op_def.input_arg, node) and _has_float(
                op_def.output_arg, node
            ):
                found.add(node.op)
    return found


def _has_float(args, node):
    import tensorflow as tf

    types = []
    for arg in args:
        if arg.type:
            types.append(arg.type)
        elif arg.type_attr:
            types.append(node.attr[arg.type_attr].type)
        elif arg.type_list_attr:
            types += list(node.attr[arg.type_list_attr].list.type)
    return any(t and tf.dtypes.as_dtype(t).is_floating for t in types)
