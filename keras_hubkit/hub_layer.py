"""`HubLayer`: a TF2 SavedModel as a Keras 3 layer (`hub.KerasLayer` port)."""

import json
import logging
import re

import keras
import numpy as np
import tensorflow as tf

from keras_hubkit import _compat
from keras_hubkit import _gradients
from keras_hubkit import _specs
from keras_hubkit import errors
from keras_hubkit import image_spec
from keras_hubkit.loading import load
from keras_hubkit.loading import origin_of

logger = logging.getLogger(__name__)


@keras.saving.register_keras_serializable(package="keras_hubkit")
class HubLayer(keras.layers.Layer):
    """Wraps a TF2 SavedModel (or a TF Hub model) as a Keras 3 layer.

    A drop-in replacement for `tensorflow_hub.KerasLayer` that is a real
    `keras.layers.Layer`: it goes into `keras.Sequential`, functional and
    subclassed models, fine-tunes with any Keras optimizer, and saves to
    `.keras` files.

    The layer is frozen by default. With `trainable=True` its trainable
    weights are exactly the variables the publisher listed in the
    SavedModel's `trainable_variables`, its `losses` include the
    SavedModel's `regularization_losses`, and the SavedModel's `__call__`
    runs with `training=True` while Keras trains. A frozen layer always runs
    the SavedModel in inference mode.

    The weights ARE the SavedModel's variables (no copy): after fine-tuning,
    `tf.saved_model.save(loaded_obj, path)` writes the fine-tuned values.

    Args:
        handle: a local path, a URL (see `hk.resolve`), or an object returned
            by `hk.load` / `tf.saved_model.load`.
        trainable: whether to fine-tune the SavedModel's variables.
        arguments: a dict of extra keyword arguments passed on every call,
            e.g. `{"batch_norm_momentum": 0.997}`.
        output_shape: the output shape without the batch dimension (or a
            nest of them), for models whose output shape is unknown.
        signature: call this serving signature instead of `__call__`.
        signature_outputs_as_dict: return a signature's whole output dict.
        output_key: pick this entry of a dict output.
        load_options: a `tf.saved_model.LoadOptions` (string handles only).
        tags: MetaGraph tags to load (string handles only).
        trainable_patterns: regular expressions over the SavedModel's
            variable names (e.g. `["block5/.*"]`). When set, only matching
            publisher-trainable variables are fine-tuned. See
            `set_trainable_patterns`.
        allow_ops: risky op types the safety scan may accept for this
            model (see `hk.scan` and `hk.load`).
        inference_only: call the SavedModel with `training=False` even
            while fine-tuning: its BatchNorm statistics stay fixed (and its
            dropout is off). A SavedModel has one training flag for the
            whole model, so this is all-or-nothing. `hk.finetune` sets it for
            `bn_policy="frozen"`.
        **kwargs: base layer arguments (`name`, `dtype`, `input_shape`...).

    Example:

    ```python
    model = keras.Sequential([
        hk.HubLayer("/models/mobilenet_v3_feature_vector", trainable=True),
        keras.layers.Dense(5),
    ])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(True))
    ```
    """

    def __init__(
        self,
        handle,
        trainable=False,
        arguments=None,
        output_shape=None,
        signature=None,
        signature_outputs_as_dict=None,
        output_key=None,
        load_options=None,
        tags=None,
        trainable_patterns=None,
        allow_ops=None,
        inference_only=False,
        **kwargs,
    ):
        _compat.require_tensorflow_backend("HubLayer")
        # Popped so Keras does not build a float32 Input for string models
        # (Sequential uses `input_shape` with our `compute_dtype` instead).
        input_shape = kwargs.pop("input_shape", None)
        kwargs.pop("batch_input_shape", None)
        super().__init__(trainable=trainable, **kwargs)
        self.autocast = False  # SavedModel variables keep their own dtype.
        self._convert_input_args = False  # We convert to the traced dtype.
        self._allow_non_tensor_positional_args = True
        self._hub_input_shape = (
            tuple(input_shape) if input_shape is not None else None
        )
        self.handle = handle
        self.arguments = dict(arguments or {})
        self.output_shape_arg = _to_shapes(output_shape)
        self.signature = signature
        self.signature_outputs_as_dict = signature_outputs_as_dict
        self.output_key = output_key
        self.tags = list(tags) if tags is not None else None
        self.load_options = load_options
        self.allow_ops = sorted(allow_ops) if allow_ops else None
        self.inference_only = bool(inference_only)

        self._obj = self._load(handle, tags, load_options)
        origin = origin_of(self._obj)
        self._config_handle = (
            str(handle)
            if _is_str_handle(handle)
            else (origin.handle if origin else None)
        )
        self._is_tf1 = bool(origin and origin.is_tf1_hub_module)
        self._apply_tf1_defaults()
        self._check_output_options()
        self._callable = self._get_callable()
        self._traced_specs = _specs.call_input_specs(self._callable)
        self._traced_spec = _specs.single_tensor_spec(self._traced_specs)
        self._has_training = _specs.has_training_argument(self._callable)
        # XLA cannot compile string ops; Keras's jit_compile="auto" would
        # otherwise pick XLA on accelerators and fail to train.
        self.supports_jit = self._can_fine_tune() and not _specs.has_strings(
            self._traced_specs
        )
        self._reg_losses = self._find_regularization_losses()
        self._warned_no_trainable = False
        self._track_saved_model_variables()
        self.trainable_patterns = None
        if trainable_patterns is not None:
            self.set_trainable_patterns(trainable_patterns)
        if trainable and not self._can_fine_tune():
            raise errors.TrainabilityError(self._not_fine_tunable_message())
        self._build_at_init()

    # ----------------------------------------------------------------- load
    def _load(self, handle, tags, load_options):
        if _is_str_handle(handle):
            return load(
                handle,
                tags=tags,
                options=load_options,
                allow_ops=self.allow_ops,
            )
        if tags is not None or load_options is not None:
            raise errors.HandleError(
                "`tags` and `load_options` apply only when the handle is a "
                f"path or URL. Received: handle of type {type(handle)} with "
                f"tags={tags!r}, load_options={load_options!r}. Pass them to "
                "`hk.load(...)` instead."
            )
        if not (callable(handle) or hasattr(handle, "signatures")):
            raise errors.HandleError(
                "Expected a path, a URL, or a loaded SavedModel object. "
                f"Received: handle={handle!r} of type {type(handle)}."
            )
        return handle

    def _apply_tf1_defaults(self):
        # TF1 Hub modules are called through their "default" signature.
        if self._is_tf1 and self.signature is None:
            self.signature = "default"
            if self.output_key is None and not self.signature_outputs_as_dict:
                self.output_key = "default"

    def _check_output_options(self):
        if self.signature_outputs_as_dict and self.output_key is not None:
            raise errors.SignatureError(
                "Pass either `output_key` or `signature_outputs_as_dict=True`"
                f", not both. Received: output_key={self.output_key!r}, "
                "signature_outputs_as_dict=True."
            )
        if self.signature_outputs_as_dict and self.signature is None:
            raise errors.SignatureError(
                "`signature_outputs_as_dict=True` is only valid together with "
                "`signature=...`. Received: signature=None. Pass the name of "
                "a serving signature, or use `output_key` to pick an entry of "
                "a dict returned by `__call__`."
            )

    def _get_callable(self):
        obj = self._obj
        if self.signature is None:
            if callable(obj):
                return obj
            available = sorted(
                k
                for k in getattr(obj, "signatures", {}) or {}
                if not k.startswith("__")
            )
            raise errors.SignatureError(
                f"The SavedModel at {self._config_handle!r} has no `__call__`"
                " (it is not a reusable TF2 SavedModel). Pass `signature=` "
                f"with one of its signatures: {available}."
            )
        signatures = getattr(obj, "signatures", None) or {}
        if self.signature not in signatures:
            raise errors.SignatureError(
                f"Unknown signature {self.signature!r} in "
                f"{self._config_handle!r}. Available signatures: "
                f"{sorted(k for k in signatures if not k.startswith('__'))}."
            )
        return signatures[self.signature]

    def _find_regularization_losses(self):
        losses = list(getattr(self._obj, "regularization_losses", []) or [])
        for fn in losses:
            if not callable(fn):
                raise errors.HandleError(
                    "Expected `regularization_losses` to hold zero-argument "
                    f"functions returning a scalar. Received: {fn!r} in "
                    f"{self._config_handle!r}."
                )
        return losses

    def _track_saved_model_variables(self):
        obj = self._obj
        order = _capture_order(self._callable)
        publisher_trainable = sorted(
            getattr(obj, "trainable_variables", []) or [], key=order
        )
        trainable_ids = {id(v) for v in publisher_trainable}
        others = sorted(
            (
                v
                for v in (getattr(obj, "variables", []) or [])
                if id(v) not in trainable_ids
            ),
            key=order,
        )
        self._source_names = {}
        self._replica_statistics = _mean_aggregated(others)
        with _compat.name_scope(self):
            for tf_var, flag in [(v, True) for v in publisher_trainable] + [
                (v, False) for v in others
            ]:
                variable = keras.Variable(
                    initializer=tf_var,
                    trainable=flag,
                    dtype=tf_var.dtype,
                    shape=tf_var.shape,
                    name=_keras_name(tf_var.name),
                )
                self._source_names[id(variable)] = _source_name(tf_var.name)
                self._track_variable(variable)

    # ---------------------------------------------------------- trainable
    def _can_fine_tune(self):
        return self.signature is None and not self._is_tf1

    def _not_fine_tunable_message(self):
        why = (
            "it is a legacy TF1 Hub module"
            if self._is_tf1
            else f"it is called through the signature {self.signature!r}"
        )
        return (
            f"Cannot fine-tune {self._config_handle!r}: {why}, which does "
            "not expose trainable variables or a training mode. Use "
            "`trainable=False`, or load a reusable TF2 SavedModel (with "
            "`__call__`) to fine-tune."
        )

    def source_name(self, variable):
        """The SavedModel's own name of one of this layer's weights."""
        return self._source_names[id(variable)]

    def variable_groups(self):
        """The SavedModel's variables grouped by name, bottom to top.

        Names are split at "/"; the prefix all variables share is dropped
        and the next component names the group, so a TF Hub MobileNet gives
        `Conv`, `expanded_conv`, `expanded_conv_1`, ..., `Conv_2`. Groups are
        ordered by where the model first uses them, which is what staged
        fine-tuning ("unfreeze the top N groups") needs.

        Returns:
            A dict from group name to this layer's weights in that group.

        Example:

        ```python
        layer = hk.HubLayer(handle, trainable=True)
        top = list(layer.variable_groups())[-2:]
        layer.set_trainable_patterns([f"{g}/" for g in top])
        ```
        """
        names = [self._source_names[id(v)] for v in self.weights]
        common = _common_prefix([n.split("/")[:-1] for n in names])
        groups = {}
        for variable, name in zip(self.weights, names):
            parts = name.split("/")
            key = "/".join(parts[: common + 1]) if len(parts) > common else name
            groups.setdefault(key, []).append(variable)
        return groups

    def set_trainable_patterns(self, patterns):
        """Fine-tunes only the SavedModel variables whose names match.

        Each pattern is a regular expression matched (`re.match`) against
        the variable's name in the SavedModel, e.g. `"block5/"` or
        `".*/expand/.*"`. Variables the publisher did not list as trainable
        never become trainable. `None` restores the publisher's list.
        Recompile the model after changing this.

        Args:
            patterns: a list of regular expressions, or None.

        Example:

        ```python
        layer = hk.HubLayer(handle, trainable=True)
        layer.set_trainable_patterns([r"MobilenetV3/expanded_conv_10/.*"])
        ```
        """
        compiled = None
        if patterns is not None:
            if isinstance(patterns, str):
                patterns = [patterns]
            compiled = [re.compile(p) for p in patterns]
        self.trainable_patterns = (
            [p.pattern for p in compiled]
            if compiled
            else ([] if compiled == [] else None)
        )
        for variable in self._trainable_variables:
            name = self._source_names[id(variable)]
            wanted = compiled is None or any(p.match(name) for p in compiled)
            variable.trainable = bool(self.trainable and wanted)

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        keras.layers.Layer.trainable.fset(self, value)
        if getattr(self, "_source_names", None) is not None:
            self.set_trainable_patterns(self.trainable_patterns)

    @property
    def trainable_weights(self):
        if not self.trainable:
            return []
        return [v for v in self._trainable_variables if v.trainable]

    @property
    def non_trainable_weights(self):
        trainable_ids = {id(v) for v in self.trainable_weights}
        return [v for v in self.weights if id(v) not in trainable_ids]

    # ----------------------------------------------------------- dtypes
    @property
    def compute_dtype(self):
        # Sequential builds its implicit Input with the first layer's
        # compute dtype; a string model must get a string Input.
        spec = getattr(self, "_traced_spec", None)
        if spec is not None and not spec.dtype.is_floating:
            return spec.dtype.name
        return super().compute_dtype

    @property
    def variable_dtype(self):
        # Equal to `compute_dtype` for string models, so Keras opens no
        # autocast scope (it only accepts float targets).
        spec = getattr(self, "_traced_spec", None)
        if spec is not None and not spec.dtype.is_floating:
            return spec.dtype.name
        return super().variable_dtype

    @property
    def input_shape(self):
        if self._hub_input_shape is None:
            raise AttributeError("input_shape")
        return (None, *self._hub_input_shape)

    # ------------------------------------------------------------- call
    def __call__(self, inputs, *args, **kwargs):
        return super().__call__(self._to_tensors(inputs), *args, **kwargs)

    def _to_tensors(self, inputs):
        """Converts Python lists and NumPy arrays to tensors of the traced
        dtype, as `hub.KerasLayer` accepted `layer([10., 20.])`."""
        dtype = (
            self._traced_spec.dtype if self._traced_spec is not None else None
        )
        if isinstance(inputs, (list, tuple)) and _all_python_values(inputs):
            return tf.constant(inputs, dtype=dtype)

        def convert(x):
            if isinstance(x, (np.ndarray, np.generic, str, bytes, float, int)):
                image_spec.reject_integer_images(x, self._traced_spec)
                return tf.convert_to_tensor(x, dtype=_numpy_dtype(x, dtype))
            return x

        return tf.nest.map_structure(convert, inputs)

    def call(self, inputs, training=None):
        fine_tuning = bool(self.trainable and training)
        if fine_tuning:
            self._check_fine_tuning()
            if not self.inference_only:
                _gradients.check_layer(self)
        inputs = self._cast_inputs(inputs)
        kwargs = dict(self.arguments)
        try:
            if self.signature is not None:
                kwargs.update(self._signature_kwargs(inputs))
                result = self._callable(**kwargs)
            else:
                training_mode = fine_tuning and not self.inference_only
                if self._has_training:
                    kwargs["training"] = training_mode
                result = self._callable(inputs, **kwargs)
                if training_mode:
                    self._sync_replica_statistics(result)
        except (TypeError, ValueError) as e:
            raise errors.InputSpecError(
                f"The SavedModel at {self._config_handle!r} cannot be called "
                "on the inputs given. Expected: "
                f"{_specs.describe(self._traced_specs)}. Received: "
                f"{_specs.describe_structure(inputs)}. Original error: "
                f"{str(e).splitlines()[0] if str(e) else e!r}"
            ) from e
        result = self._select_output(result)
        return self._apply_output_shape(inputs, result)

    def _check_fine_tuning(self):
        if not self._can_fine_tune():
            raise errors.TrainabilityError(self._not_fine_tunable_message())
        if not self.trainable_weights and not self._warned_no_trainable:
            self._warned_no_trainable = True
            logger.warning(
                "HubLayer %r is trainable but has no trainable weights: the "
                "SavedModel lists no `trainable_variables` (or none match "
                "`trainable_patterns`).",
                self.name,
            )

    def _sync_replica_statistics(self, result):
        """Averages statistics the SavedModel updated (BatchNorm moving
        averages) across replicas, so every replica keeps one value."""
        context = tf.distribute.get_replica_context()
        if not self._replica_statistics or context is None:
            return
        if context.num_replicas_in_sync == 1:
            return
        with tf.control_dependencies(tf.nest.flatten(result)):
            for variable in self._replica_statistics:
                # MEAN aggregation: assigning the local value all-reduces.
                variable.assign(variable.read_value())

    def _cast_inputs(self, inputs):
        spec = self._traced_spec
        if spec is None or not spec.dtype.is_floating:
            return inputs

        def cast(x):
            image_spec.reject_integer_images(x, spec, self._config_handle)
            if (
                tf.is_tensor(x)
                and x.dtype.is_floating
                and x.dtype != spec.dtype
            ):
                return tf.cast(x, spec.dtype)
            return x

        return tf.nest.map_structure(cast, inputs)

    def _signature_kwargs(self, inputs):
        if isinstance(inputs, dict):
            return inputs
        names = sorted(self._traced_specs[0]) if self._traced_specs else []
        if len(names) != 1:
            raise errors.InputSpecError(
                f"Signature {self.signature!r} of {self._config_handle!r} "
                f"takes the inputs {names}. Received one tensor; pass a dict "
                "keyed by those names."
            )
        return {names[0]: inputs}

    def _select_output(self, result):
        if self.signature_outputs_as_dict:
            return result
        if self.output_key is not None:
            if not isinstance(result, dict):
                raise errors.SignatureError(
                    "`output_key` picks an entry of a dict output. Received: "
                    f"output_key={self.output_key!r}, but the output is a "
                    f"{type(result).__name__}. Remove `output_key`."
                )
            if self.output_key not in result:
                raise errors.SignatureError(
                    f"The output has no key {self.output_key!r}. Available "
                    f"keys: {sorted(result)}. Pass one of them as "
                    "`output_key`, or `signature_outputs_as_dict=True`."
                )
            return result[self.output_key]
        if self.signature is not None and isinstance(result, dict):
            if len(result) == 1:
                return next(iter(result.values()))
            raise errors.SignatureError(
                f"Signature {self.signature!r} returns several outputs: "
                f"{sorted(result)}. Pass `output_key=` with one of them, or "
                "`signature_outputs_as_dict=True`."
            )
        return result

    def _apply_output_shape(self, inputs, result):
        if self.output_shape_arg is None:
            return result
        batch = tf.nest.flatten(inputs)[0].shape[:1]

        def set_shape(tensor, shape):
            tensor.set_shape(batch.concatenate(shape))
            return tensor

        return tf.nest.map_structure(set_shape, result, self.output_shape_arg)

    # ----------------------------------------------------------- losses
    def _get_own_losses(self):
        losses = super()._get_own_losses()
        if self.trainable and self._can_fine_tune():
            losses = losses + [fn() for fn in self._reg_losses]
        return losses

    # ----------------------------------------------------------- config
    @property
    def resolved_object(self):
        """The loaded SavedModel object this layer calls."""
        return self._obj

    def get_config(self):
        if self._config_handle is None:
            raise errors.HandleError(
                "A HubLayer can only be serialized when it knows its handle "
                "(path or URL). Received: a loaded object that did not come "
                "from `hk.load`. Load it with `hk.load(handle)`, or pass the "
                "handle string to HubLayer."
            )
        config = {
            "handle": self._config_handle,
            "arguments": self.arguments or None,
            "output_shape": _shapes_to_json(self.output_shape_arg),
            "signature": self.signature,
            "signature_outputs_as_dict": self.signature_outputs_as_dict,
            "output_key": self.output_key,
            "tags": self.tags,
            "trainable_patterns": self.trainable_patterns,
            "allow_ops": self.allow_ops,
            "inference_only": self.inference_only,
        }
        if self._hub_input_shape is not None:
            config["input_shape"] = list(self._hub_input_shape)
        _check_json(config)
        return {**super().get_config(), **config}

    @classmethod
    def from_config(cls, config, safe_mode=None):
        effective = (
            safe_mode if safe_mode is not None else _compat.in_safe_mode()
        )
        if effective is not False:
            raise errors.UnsafeDeserializationError(
                "Refusing to rebuild a HubLayer in Keras safe mode: it loads "
                f"the SavedModel at {config.get('handle')!r}, and loading a "
                "SavedModel runs its TensorFlow graph (which can read and "
                "write files). If you trust this model, load with "
                "`keras.models.load_model(path, safe_mode=False)` or call "
                "`keras.config.enable_unsafe_deserialization()` first."
            )
        config = dict(config)
        trainable = config.pop("trainable", False)
        layer = cls(**config, trainable=False)
        layer.trainable = trainable
        return layer


def _capture_order(fn):
    """Sort key: where the function first captures a variable (its
    forward order), so weights and groups run bottom to top."""
    if hasattr(fn, "captured_inputs"):  # a signature's ConcreteFunction
        concretes = [fn]
    else:
        target = _specs.function_of(fn)
        concretes = getattr(target, "concrete_functions", None) or [target]
    captures = getattr(concretes[0], "captured_inputs", []) or []
    position = {id(c): i for i, c in enumerate(captures)}

    def key(variable):
        if isinstance(variable, tf.distribute.DistributedValues):
            variable = variable.values[0]  # .handle needs a replica context
        try:
            return position.get(id(variable.handle), len(position))
        except (AttributeError, ValueError):
            return len(position)

    return key


def _common_prefix(paths):
    if not paths:
        return 0
    length = 0
    for parts in zip(*paths):
        if len(set(parts)) != 1:
            break
        length += 1
    return length


def _mean_aggregated(variables):
    """Distributed variables the SavedModel updates itself, set to average
    across replicas (they were saved without an aggregation)."""
    distributed = [
        v for v in variables if isinstance(v, tf.distribute.DistributedValues)
    ]
    for v in distributed:
        if v.aggregation == tf.VariableAggregation.NONE:
            v._aggregation = tf.VariableAggregation.MEAN
            policy = getattr(v, "_policy", None)
            if policy is not None:
                policy._aggregation = tf.VariableAggregation.MEAN
    return distributed


def _is_str_handle(handle):
    return isinstance(handle, str) or hasattr(handle, "__fspath__")


def _source_name(name):
    return name[:-2] if name.endswith(":0") else name


def _keras_name(name):
    # Keras forbids "/" in names, and ":0" breaks optimizer slot names.
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", _source_name(name)) or "variable"


def _all_python_values(value):
    if isinstance(value, (list, tuple)):
        return len(value) > 0 and all(_all_python_values(v) for v in value)
    return isinstance(value, (int, float, str, bytes, bool))


def _numpy_dtype(x, dtype):
    kind = np.asarray(x).dtype.kind
    if dtype is not None and (kind in "fiu") == (
        dtype.is_floating or dtype.is_integer
    ):
        return dtype
    return None


def _to_shapes(output_shape):
    if output_shape is None:
        return None
    if isinstance(output_shape, dict):
        return {k: _to_shapes(v) for k, v in output_shape.items()}
    try:
        return tf.TensorShape(output_shape)
    except (TypeError, ValueError):
        pass
    if isinstance(output_shape, (list, tuple)):
        return type(output_shape)(_to_shapes(s) for s in output_shape)
    raise errors.HandleError(
        "Expected `output_shape` to be a shape (without the batch dimension)"
        f" or a nest of shapes. Received: {output_shape!r}."
    )


def _shapes_to_json(shapes):
    if shapes is None:
        return None
    if isinstance(shapes, tf.TensorShape):
        return shapes.as_list()
    if isinstance(shapes, dict):
        return {k: _shapes_to_json(v) for k, v in shapes.items()}
    return [_shapes_to_json(s) for s in shapes]


def _check_json(config):
    for key, value in config.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError) as e:
            raise errors.HandleError(
                f"HubLayer(..., {key}=...) must be JSON-serializable to save "
                f"the layer. Received: {value!r}."
            ) from e
