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


# --- shared: nested layers (issue 17; export.py and finetune/runner.py) ---
def all_layers(layer):
    """`layer` and every layer nested in it, each once, outer first.

    Keras 3 has no public way to walk nested layers (`Model.layers` lists
    direct children only); `Layer._flatten_layers` has done it since Keras
    3.0 (and in tf.keras before). Export collects regularization losses and
    fine-tuning sets trainability through it.
    """
    seen = {}
    for sub in [layer, *layer._flatten_layers(include_self=False)]:
        seen.setdefault(id(sub), sub)
    return list(seen.values())


# --- safety scan (allowlist) ---
def is_op_registered(op_type: str) -> bool:
    """Whether this process's TensorFlow knows `op_type` right now.

    `op_def_registry.get` (private, TF >= 2.4) caches only hits, so an op
    registered later (a custom-op package imported) is seen on the next
    call. The scan's memo relies on that to notice a newly imported package.
    """
    from tensorflow.python.framework import op_def_registry

    return op_def_registry.get(op_type) is not None


def registered_op_defs():
    """Every OpDef registered in this process, by op type.

    Reads TensorFlow's C registry (`TF_GetAllOpList`, private, TF >= 2.0):
    the public API has no way to list ops with their inputs, attrs and docs,
    which the allowlist test checks the list against.
    """
    from tensorflow.core.framework import op_def_pb2
    from tensorflow.python.client import pywrap_tf_session

    ops = op_def_pb2.OpList()
    ops.ParseFromString(
        pywrap_tf_session.TF_GetBuffer(pywrap_tf_session.TF_GetAllOpList())
    )
    return {op.name: op for op in ops.op}


# --- hub_layer ---
# HubLayer wraps variables and functions that already exist (a loaded
# SavedModel) instead of creating them in `build()`, which is what the
# private hooks below are needed for. Each was checked on Keras 3.15.1 and
# TensorFlow 2.21.


def accept_raw_inputs(layer):
    """Lets `layer(...)` take Python lists, scalars and strings as inputs.

    Why: `hub.KerasLayer` accepted `layer([10., 20.])` and `layer(10.)`; Keras
    3's `Layer.__call__` refuses non-tensor positional arguments and casts
    tensor inputs to the layer's dtype (strings fail). HubLayer converts to
    the SavedModel's traced dtype itself. Attributes exist since Keras 3.0
    (`_convert_input_args`) and 3.1 (`_allow_non_tensor_positional_args`).
    """
    layer._convert_input_args = False
    layer._allow_non_tensor_positional_args = True


def base_trainable(layer):
    """`keras.layers.Layer.trainable` of `layer`, bypassing an override.

    Why: HubLayer overrides the `trainable` property to re-apply
    `trainable_patterns` when it changes, and must still run Keras's own
    getter and setter (which flip every tracked variable). Since Keras 3.0.
    """
    return keras.layers.Layer.trainable.fget(layer)


def set_base_trainable(layer, value):
    """Runs Keras's own `trainable` setter on `layer` (see `base_trainable`)."""
    keras.layers.Layer.trainable.fset(layer, value)


def with_extra_own_losses(cls):
    """Class decorator: `model.losses` also holds `cls._hub_losses(self)`.

    Why: a SavedModel's `regularization_losses` are functions that must be
    evaluated each time `losses` is read (they follow `trainable` without a
    new call, as in `hub.KerasLayer`). Keras 3's `add_loss` takes tensors
    from `call()` only; `Layer.losses` and `Model.losses` collect every
    layer's private `_get_own_losses()` (Keras 3.0 to at least 3.15).
    """
    base = cls._get_own_losses

    def _get_own_losses(self):
        return base(self) + list(self._hub_losses())

    cls._get_own_losses = _get_own_losses
    return cls


def trace_output_spec(fn, *args, **kwargs):
    """What Keras's default `Layer.compute_output_spec` returns for `fn`.

    Why: Keras infers output specs by tracing `call` only while a layer does
    not override `compute_output_shape`; HubLayer overrides it (for
    `TimeDistributed` and shape inference) and keeps the tracing path for
    symbolic calls, which knows the output dtypes (a string model's
    `compute_dtype` is not its output dtype). `backend.compute_output_spec`
    is private since Keras 3.0.
    """
    from keras.src import backend

    return backend.compute_output_spec(fn, *args, **kwargs)


def set_mean_aggregation(variable):
    """Makes a distributed variable average its value across replicas.

    Why: SavedModel variables that the model updates itself (BatchNorm
    moving statistics) were saved without an aggregation; under
    `MirroredStrategy` each replica would keep its own copy. A
    `DistributedVariable` has no public setter for its aggregation
    (TensorFlow 2.x, checked on 2.21).
    """
    import tensorflow as tf

    variable._aggregation = tf.VariableAggregation.MEAN
    policy = getattr(variable, "_policy", None)
    if policy is not None:
        policy._aggregation = tf.VariableAggregation.MEAN


def keras_archive_being_loaded():
    """The `.keras` archive `keras.models.load_model` is reading, if any.

    Returns a `zipfile.ZipFile` (a `.keras` file), a folder path (an
    unzipped Keras model folder), or None outside `load_model`.

    Why: Keras rebuilds each layer from its config before it opens the
    archive's asset files (`load_assets` runs after every layer exists and
    the optimizer is built), but a HubLayer needs its SavedModel, and the
    SavedModel's variables, when it is rebuilt. Keras offers no public hook,
    so this finds the archive in `keras.src.saving.saving_lib`'s
    `_load_model_from_fileobj` (local `zf`) or `_load_model_from_dir`
    (local `dirpath`) on the call stack (both since Keras 3.1; unchanged in
    3.15). When Keras renames them this returns None, and HubLayer falls
    back to reloading from the config's handle.
    """
    import sys
    import zipfile

    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_globals.get("__name__") == "keras.src.saving.saving_lib":
            name = frame.f_code.co_name
            if name == "_load_model_from_fileobj":
                archive = frame.f_locals.get("zf")
                if isinstance(archive, zipfile.ZipFile):
                    return archive
            if name == "_load_model_from_dir":
                folder = frame.f_locals.get("dirpath")
                if isinstance(folder, str):
                    return folder
        frame = frame.f_back
    return None


# --- fine-tuning ---


def optimizer_for_variable(optimizer, variable):
    """The sub-optimizer a `keras.optimizers.MultiOptimizer` uses for
    `variable` (tests check per-group rates with it).

    `MultiOptimizer` (Keras 3.15) exposes its mapping only as the private
    `_optimizer_map` callable.
    """
    return optimizer._optimizer_map(variable)


def build_for_fit(model, data_spec):
    """Creates the optimizer's and the compiled metrics' variables from the
    specs of one batch: what `fit` would otherwise create inside its first
    traced train step, which makes TensorFlow trace the whole step
    (forward, gradients, update) twice.

    A built model with one output needs no run of the model: the optimizer
    is built on its variables and the metrics on its output's spec. Other
    models go through Keras 3.15's private `Trainer._symbolic_build`
    (which Keras itself runs only under a distribution strategy): it runs
    the model on symbolic inputs, which for MobileNet V3 costs ~0.5 s
    against ~5 s for a second trace of the step.
    """
    outputs = getattr(model, "outputs", None) or []
    y = keras.utils.unpack_x_y_sample_weight(data_spec)[1]
    built = all(layer.built for layer in all_layers(model))
    if not built or len(outputs) != 1 or y is None:
        model._symbolic_build(data_batch=data_spec)
        return
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    metrics = model._compile_metrics
    if metrics is not None and not metrics.built:
        metrics.build(_symbolic_batch(y), _symbolic_batch(outputs[0]))


def lean_step_functions(model):
    """Gives `model` the train and test functions `fit` and `evaluate`
    call once per step, made leaner than Keras's own; returns whether it
    did.

    Keras 3.15 (`TensorFlowTrainer._make_function`, private) nests the step
    in two `tf.function`s, runs it through the distribution strategy and
    wraps its logs in an `Optional` that Python unwraps after every call.
    With one step per call that machinery is most of what a `fit` step
    costs beyond a hand-written `tf.function` step, in every step and in
    tracing (`benchmarks/bench_loop_parts.py` measures both). The lean
    function reads
    the batch inside one `tf.function` and calls `train_step` (or
    `test_step`) directly: the same step, so the same results.

    Keras keeps its own functions where they do something the lean ones do
    not: several steps per call, XLA, a distribution strategy, eager runs.
    An iterator that runs out raises `OutOfRangeError`, which Keras's epoch
    iterator turns into the end of the epoch, as it does for its own.
    """
    import tensorflow as tf

    if (
        keras.backend.backend() != "tensorflow"
        or model.run_eagerly
        or model.jit_compile
        or model.steps_per_execution != 1
        or tf.distribute.has_strategy()
        or getattr(model, "_distribute_strategy", None) is not None
    ):
        return False
    model.train_function = _lean_function(model.train_step)
    model.test_function = _lean_function(model.test_step)
    return True


def _lean_function(step):
    import tensorflow as tf

    def none_for_optional(value):
        # Keras's adapters put `None`s (a generator's missing sample
        # weights) in `tf.data` as empty `Optional`s; the step wants `None`.
        return None if isinstance(value, tf.experimental.Optional) else value

    def on_batch(data):
        return step(tf.nest.map_structure(none_for_optional, data))

    # No autograph, as Keras's own: `train_step` is graph-ready code, and
    # autograph would turn the errors it raises into `StagingError`s.
    on_iterator = tf.function(
        lambda iterator: on_batch(iterator.get_next()),
        reduce_retracing=True,
        autograph=False,
    )
    on_data = tf.function(on_batch, reduce_retracing=True, autograph=False)

    def function(iterator):
        if isinstance(
            iterator, (tf.data.Iterator, tf.distribute.DistributedIterator)
        ):
            return on_iterator(iterator)
        # `train_on_batch` and `test_on_batch` hand over a Python generator
        # of one batch.
        return on_data(next(iterator))

    # What `fit` traces (benchmarks/bench_loop_parts.py times its trace).
    function.on_iterator = on_iterator
    return function


def _symbolic_batch(spec):
    """A `KerasTensor` like `spec` (a `tf.TensorSpec` or `KerasTensor`)
    with any batch size."""
    return keras.KerasTensor(
        (None, *spec.shape[1:]), keras.backend.standardize_dtype(spec.dtype)
    )


def learning_rate_schedule(optimizer):
    """The `LearningRateSchedule` behind `optimizer.learning_rate`, or the
    float rate: the public property returns the current value only (Keras
    3.0 through 3.15 keep the schedule in `_learning_rate`).
    """
    return optimizer._learning_rate


# --- search (tuning) ---


def keras_tuner_checkpoint_type():
    """The class of keras-tuner's best-epoch checkpoint callback.

    keras-tuner (1.4) passes a `SaveBestEpoch` to `HyperModel.fit` among the
    callbacks and exports it nowhere public; head-only trials on cached
    features recognise it to write its checkpoint once per trial.
    """
    from keras_tuner.src.engine import tuner_utils

    return tuner_utils.SaveBestEpoch


def patch_keras_tuner_session_reset():
    """Lets light trials skip keras-tuner's session reset.

    keras-tuner 1.4's private `Tuner._try_build` calls
    `keras.backend.clear_session()` and `gc.collect()` before building
    every trial's model, to free the previous trial's graph. With
    TensorFlow and Keras loaded that is two full garbage collections, about
    0.5-1 s per trial on 2 CPUs: more than training a head on cached
    features for a few epochs. When the hypermodel's
    `_skips_session_reset(hp)` returns True (keras_hubkit's head-only
    trials on cached features, which add only a small head around one
    shared frozen base), the model is built without them; every other
    trial, and every other hypermodel, is unchanged.
    """
    from keras_tuner.src.engine import tuner as tuner_module

    original = tuner_module.Tuner._try_build
    if getattr(original, "_hubkit_patched", False):
        return

    def try_build(self, hp):
        skips = getattr(self.hypermodel, "_skips_session_reset", None)
        if skips is None or not skips(hp):
            return original(self, hp)
        backend, gc = tuner_module.keras.backend, tuner_module.gc
        clear, collect = backend.clear_session, gc.collect
        backend.clear_session = lambda *args, **kwargs: None
        gc.collect = lambda *args, **kwargs: 0
        try:
            return original(self, hp)
        finally:
            backend.clear_session, gc.collect = clear, collect

    try_build._hubkit_patched = True
    tuner_module.Tuner._try_build = try_build


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
