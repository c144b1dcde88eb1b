"""`HubLayer`: a TF2 SavedModel as a Keras 3 layer (`hub.KerasLayer` port)."""

import json
import logging
import re
import weakref

import keras
import numpy as np
import tensorflow as tf

from keras_hubkit import _compat
from keras_hubkit import _gradients
from keras_hubkit import _specs
from keras_hubkit import errors
from keras_hubkit import image_spec
from keras_hubkit import keras_file
from keras_hubkit._redact import redact
from keras_hubkit._savedmodel import public_signatures
from keras_hubkit.loading import load
from keras_hubkit.loading import origin_of
from keras_hubkit.resolver import resolve
from keras_hubkit.scanner import scan_path

logger = logging.getLogger(__name__)

# Redacted handle -> the handle given in this process, so that
# `clone_model` and `from_config` of a config whose URL carried a token work
# in the process that built the layer (credentials are never written).
_UNREDACTED = {}
# Redacted handle -> (folder, tags) of a SavedModel copy extracted from a
# `.keras` file in this process (it lives until the process exits).
_EXTRACTED = {}
# Loaded object -> {call key: output (shape, dtype)s}, see
# `HubLayer.compute_output_spec`.
_OUTPUT_SPECS = weakref.WeakKeyDictionary()


@keras.saving.register_keras_serializable(package="keras_hubkit")
@_compat.with_extra_own_losses
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

    `model.save("m.keras")` stores a copy of the SavedModel (fine-tuned
    values and assets) in the file, and `keras.models.load_model` rebuilds
    the layer from it, also in Keras safe mode when the model passes the
    safety scan with no opt-in (see `from_config`).

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
        # autocast=False: SavedModel variables keep their own dtype.
        super().__init__(trainable=trainable, autocast=False, **kwargs)
        _compat.accept_raw_inputs(self)  # we convert to the traced dtype
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
        self._source_path = origin.path if origin else None
        self._config_handle = (
            str(handle)
            if _is_str_handle(handle)
            else (origin.handle if origin else None)
        )
        self._is_tf1 = bool(origin and origin.is_tf1_hub_module)
        self._apply_tf1_defaults()
        self._check_output_options()
        self._callable = self._get_callable()
        self._check_signature_outputs()
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
        # Like hub.KerasLayer, `trainable=True` on a model that cannot be
        # fine-tuned fails when the layer is called, not here: `trainable`
        # is mutable, so "construct, then set trainable=False" works.
        self.built = True  # the weights exist: nothing to build

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
            raise errors.LayerArgumentError(
                "`tags` and `load_options` apply only when the handle is a "
                f"path or URL. Received: handle of type {type(handle)} with "
                f"tags={tags!r}, load_options={load_options!r}. Pass them to "
                "`hk.load(...)` instead."
            )
        if not (callable(handle) or hasattr(handle, "signatures")):
            raise errors.LayerArgumentError(
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
        # Checked before the signature is looked up, as hub.KerasLayer does.
        if self.signature_outputs_as_dict and self.output_key is not None:
            raise errors.SignatureError(
                "When using a signature, either `output_key` or "
                "`signature_outputs_as_dict=True` should be set, not both. "
                f"Received: output_key={self.output_key!r}, "
                "signature_outputs_as_dict=True. Keep one of them."
            )
        if self.signature_outputs_as_dict and self.signature is None:
            raise errors.SignatureError(
                "`signature_outputs_as_dict=True` is only valid if specifying "
                "a signature (or using a legacy TF1 Hub format). Received: "
                "signature=None. Pass the name of a serving signature, or use "
                "`output_key` to pick an entry of a dict returned by "
                "`__call__`."
            )

    def _check_signature_outputs(self):
        if (
            self.signature is None
            or self.output_key is not None
            or self.signature_outputs_as_dict
        ):
            return
        outputs = getattr(self._callable, "structured_outputs", None)
        if isinstance(outputs, dict) and len(outputs) > 1:
            raise errors.SignatureError(
                "When using a signature, either `output_key` or "
                "`signature_outputs_as_dict=True` should be set. Received: "
                f"neither, and signature {self.signature!r} of "
                f"{self._redacted_handle!r} returns several outputs: "
                f"{sorted(outputs)}. Pass `output_key=` with one of them, or "
                "`signature_outputs_as_dict=True`."
            )

    def _get_callable(self):
        obj = self._obj
        if self.signature is None:
            if callable(obj):
                return obj
            available = sorted(public_signatures(obj))
            raise errors.SignatureError(
                f"The SavedModel at {self._redacted_handle!r} has no "
                "`__call__`"
                " (it is not a reusable TF2 SavedModel). Pass `signature=` "
                f"with one of its signatures: {available}."
            )
        signatures = getattr(obj, "signatures", None) or {}
        if self.signature not in signatures:
            raise errors.SignatureError(
                f"Unknown signature {self.signature!r} in "
                f"{self._redacted_handle!r}. Available signatures: "
                f"{sorted(k for k in signatures if not k.startswith('__'))}."
            )
        return signatures[self.signature]

    def _find_regularization_losses(self):
        losses = list(getattr(self._obj, "regularization_losses", []) or [])
        for fn in losses:
            if not callable(fn):
                raise errors.RegularizationLossError(
                    "Expected `regularization_losses` to hold zero-argument "
                    f"functions returning a scalar. Received: {fn!r} in "
                    f"{self._redacted_handle!r}."
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

        def wrap(tf_var, flag):
            # Shares the tf.Variable's storage (no copy) on TensorFlow.
            variable = keras.Variable(
                initializer=tf_var,
                trainable=flag,
                dtype=tf_var.dtype,
                shape=tf_var.shape,
                name=_keras_name(tf_var.name),
            )
            self._source_names[id(variable)] = _source_name(tf_var.name)
            return variable

        with _compat.name_scope(self):
            # Assigning lists tracks them (trainable ones first, so the
            # weight order is stable for `.keras` and `.weights.h5` files).
            self._publisher_trainable = [
                wrap(v, True) for v in publisher_trainable
            ]
            self._publisher_frozen = [wrap(v, False) for v in others]
        self.set_trainable_patterns(None)

    # ---------------------------------------------------------- trainable
    def _can_fine_tune(self):
        return self.signature is None and not self._is_tf1

    def _not_fine_tunable_message(self):
        why = (
            "when loading from the TF1 Hub format"
            if self._is_tf1
            else f"when calling a SavedModel signature ({self.signature!r})"
        )
        return (
            f"Setting HubLayer.trainable = True is unsupported {why}: "
            f"{self._redacted_handle!r} then exposes no trainable variables "
            "or training mode. Set `layer.trainable = False`, or load a "
            "reusable TF2 SavedModel (with `__call__`) to fine-tune."
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
        for variable in self._publisher_trainable:
            name = self._source_names[id(variable)]
            wanted = compiled is None or any(p.match(name) for p in compiled)
            variable.trainable = bool(self.trainable and wanted)

    @property
    def trainable(self):
        return _compat.base_trainable(self)

    @trainable.setter
    def trainable(self, value):
        _compat.set_base_trainable(self, value)
        if getattr(self, "_publisher_trainable", None) is not None:
            self.set_trainable_patterns(self.trainable_patterns)

    @property
    def trainable_weights(self):
        if not self.trainable:
            return []
        return [v for v in self._publisher_trainable if v.trainable]

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
        if self.trainable:
            self._check_trainability()
        fine_tuning = bool(self.trainable and training)
        if fine_tuning and not self.inference_only:
            _gradients.check(
                self._obj,
                self._callable,
                self._traced_spec,
                self.trainable_weights,
                self.arguments,
                has_training=self._has_training,
                name=self._redacted_handle,
            )
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
                f"The SavedModel at {self._redacted_handle!r} cannot be called "
                "on the inputs given. Expected: "
                f"{_specs.describe(self._traced_specs)}. Received: "
                f"{_specs.describe_structure(inputs)}. Original error: "
                f"{str(e).splitlines()[0] if str(e) else e!r}"
            ) from e
        result = self._select_output(result)
        return self._apply_output_shape(inputs, result)

    def _check_trainability(self):
        if not self._can_fine_tune():
            raise errors.TrainabilityError(self._not_fine_tunable_message())
        if not self.trainable_weights and not self._warned_no_trainable:
            self._warned_no_trainable = True
            logger.warning(
                "HubLayer %r is trainable but has zero trainable weights: "
                "the SavedModel lists no `trainable_variables` (or none "
                "match `trainable_patterns`).",
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
                f"Signature {self.signature!r} of {self._redacted_handle!r} "
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
                    "Specifying `output_key` is forbidden if output type "
                    f"{type(result).__name__} is not a dict. Received: "
                    f"output_key={self.output_key!r}. Remove `output_key`."
                )
            if self.output_key not in result:
                raise errors.SignatureError(
                    "HubLayer output does not contain the output key "
                    f"{self.output_key!r} (available: {sorted(result)}). "
                    "Pass one of them as `output_key`, or "
                    "`signature_outputs_as_dict=True`."
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

    # ------------------------------------------------------------ shapes
    def compute_output_spec(self, *args, **kwargs):
        # Keras's tracing path (it knows the output dtypes); overriding
        # `compute_output_shape` alone would switch Keras to a shape-only
        # path that assumes outputs of `compute_dtype`. Tracing MobileNet
        # V3 costs ~70 ms, paid by every model built on it (each search
        # trial builds one), so the specs are kept per loaded object and
        # call: only shapes and dtypes, returned as new `KerasTensor`s.
        key = self._output_spec_key(args, kwargs)
        specs = _OUTPUT_SPECS.setdefault(self._obj, {}) if key else {}
        if key not in specs:
            spec = _compat.trace_output_spec(self.call, *args, **kwargs)
            if not key:
                return spec
            specs[key] = keras.tree.map_structure(_OutputSpec, spec)
        return keras.tree.map_structure(lambda s: s.tensor(), specs[key])

    def _output_spec_key(self, args, kwargs):
        """What a symbolic call's output specs depend on; None when they
        cannot be keyed (the object is not weak-referenceable, or an
        argument is not a plain value)."""
        try:
            weakref.ref(self._obj)
            return repr(
                (
                    keras.tree.map_structure(_shape_and_dtype, (args, kwargs)),
                    self.signature,
                    self.output_key,
                    self.signature_outputs_as_dict,
                    self.output_shape_arg,
                    sorted(self.arguments.items()),
                    self.trainable,
                    self.inference_only,
                )
            )
        except (TypeError, AttributeError):
            return None

    def compute_output_shape(self, input_shape):
        """The output shape(s) for `input_shape` (batch dimension first).

        From `output_shape` when it was given (as `hub.KerasLayer`), else by
        tracing the SavedModel's function on a spec of that shape. This is
        what `keras.layers.TimeDistributed`, `summary()` and other shape
        inference use.
        """
        if self.output_shape_arg is not None:
            batch = _first_shape(input_shape)[:1] or (None,)
            return tf.nest.map_structure(
                lambda s: (*batch, *s.as_list()),
                self.output_shape_arg,
                check_types=False,
            )
        inputs = self._symbolic_inputs(input_shape)
        spec = self.compute_output_spec(inputs)
        return keras.tree.map_structure(lambda t: tuple(t.shape), spec)

    def _symbolic_inputs(self, input_shape):
        """KerasTensors of `input_shape` with the dtypes the model traced."""
        traced = self._traced_specs[0] if self._traced_specs else None
        shapes = keras.tree.map_shape_structure(tuple, input_shape)
        try:
            return tf.nest.map_structure(
                lambda s, t: keras.KerasTensor(s, dtype=t.dtype.name),
                shapes,
                traced,
                check_types=False,
            )
        except (TypeError, ValueError):
            dtype = self._traced_spec.dtype.name if self._traced_spec else None
            return keras.tree.map_shape_structure(
                lambda s: keras.KerasTensor(s, dtype=dtype or "float32"),
                input_shape,
            )

    # ----------------------------------------------------------- losses
    def _hub_losses(self):
        # Called by Keras whenever `losses` is read (see _compat), so the
        # values follow `trainable` without a new call. Like hub.KerasLayer,
        # a frozen layer gives one 0.0 per regularization function: the
        # list keeps its length, and `model.losses[0]` keeps working.
        if self.trainable and self._can_fine_tune():
            return [fn() for fn in self._reg_losses]
        return [tf.constant(0.0) for _ in self._reg_losses]

    # ------------------------------------------------------ public state
    @property
    def resolved_object(self):
        """The loaded SavedModel object this layer calls."""
        return self._obj

    @property
    def traced_input_spec(self):
        """The one `tf.TensorSpec` every trace of the called function takes.

        None when the function takes a nest (e.g. a dict of tensors) or its
        traces disagree on the dtype.
        """
        return self._traced_spec

    @property
    def traced_input_specs(self):
        """The input structure of each trace of the called function."""
        return list(self._traced_specs)

    @property
    def saved_model_regularization_losses(self):
        """The SavedModel's `regularization_losses` (zero-argument functions).

        These are the publisher's functions, whatever `trainable` is; the
        layer's `losses` holds their values only while it is trainable.
        """
        return list(self._reg_losses)

    # ----------------------------------------------------------- config
    @property
    def _redacted_handle(self):
        return redact(self._config_handle) if self._config_handle else None

    def get_config(self):
        if self._config_handle is None:
            raise errors.LayerConfigError(
                "A HubLayer can only be serialized when it knows its handle "
                "(path or URL). Received: a loaded object that did not come "
                "from `hk.load`. Load it with `hk.load(handle)`, or pass the "
                "handle string to HubLayer."
            )
        handle = self._redacted_handle
        _UNREDACTED[handle] = self._config_handle
        config = {
            "handle": handle,
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

    def save_assets(self, dir_path):
        """Stores the SavedModel, with its current values, in a `.keras`."""
        keras_file.write_layer_saved_model(
            dir_path,
            self._obj,
            metadata={
                "name": self.name,
                "handle": self._redacted_handle,
                "tags": self.tags,
            },
            source_path=self._source_path,
            is_tf1=self._is_tf1,
        )

    @classmethod
    def from_config(cls, config, safe_mode=None):
        """Rebuilds a HubLayer from `get_config()`.

        Inside `keras.models.load_model`, the SavedModel stored in the
        `.keras` file is used (the handle is not needed); otherwise (and for
        files written by keras_hubkit 0.1.0) the handle is loaded again, or,
        if it is gone, a copy this process read from a `.keras` file.

        In Keras safe mode (the default of `load_model`, `model_from_json`
        and `clone_model`) the SavedModel is scanned first and rebuilt only
        if the scan finds nothing and the config asks for no opt-in
        (`allow_ops`): such a model runs tensor computation only, no Python.

        Args:
            config: the dict from `get_config()`.
            safe_mode: overrides Keras's safe-mode setting.

        Raises:
            UnsafeDeserializationError: safe mode is on and the model needs
                an opt-in or cannot be scanned.
        """
        config = dict(config)
        handle = config.pop("handle")
        source = _UNREDACTED.get(handle, handle)
        trainable = config.pop("trainable", False)
        tags = config.pop("tags", None)
        effective = (
            safe_mode if safe_mode is not None else _compat.in_safe_mode()
        )
        stored = _stored_copy(config.get("name"), handle)
        if stored is None and not _resolvable(source):
            # e.g. `clone_model` of a model read from a .keras file whose
            # original SavedModel is gone: use the copy read in this process.
            stored = _EXTRACTED.get(handle)
        if stored is not None:
            path, stored_tags = stored
            if effective is not False:
                where = f"{handle} (the copy stored in the .keras file)"
                _require_safe(path, where, config)
            layer = cls(
                load(path, tags=stored_tags, allow_ops=config.get("allow_ops")),
                trainable=False,
                **config,
            )
            layer._config_handle = source
            layer.tags = tags
            layer._source_path = path
            _EXTRACTED[handle] = stored
        else:
            if effective is not False:
                _require_safe(resolve(source), handle, config)
            layer = cls(source, trainable=False, tags=tags, **config)
        layer.trainable = trainable
        return layer


def _resolvable(handle):
    try:
        resolve(handle)
    except errors.HandleNotFoundError:
        return False
    return True


def _stored_copy(name, handle):
    """(folder, tags) of the SavedModel a `.keras` being loaded holds for
    this layer, extracted for the process; None outside `load_model` or for
    files written by keras_hubkit 0.1.0."""
    archive = _compat.keras_archive_being_loaded()
    if archive is None:
        return None
    entry = keras_file.find_layer_saved_model(archive, name, handle)
    if entry is None:
        return None
    folder, metadata = entry
    return keras_file.extract_for_process(archive, folder), metadata.get("tags")


def _require_safe(path, handle, config):
    """Raises unless the SavedModel at `path` may be rebuilt in safe mode."""
    allow_ops = config.get("allow_ops")
    reasons = []
    try:
        report = scan_path(path)
    except Exception as e:  # Any failure to parse means "cannot be scanned".
        first = str(e).splitlines()[0] if str(e) else repr(e)
        reasons.append(f"it cannot be scanned ({first})")
    else:
        # `safe` is the gate (whatever the scan's rules become); the op
        # names only explain it.
        if not report.safe:
            found = sorted(
                {f.op for f in getattr(report, "findings", ())}
                | set(getattr(report, "unregistered_ops", ()))
            )
            reasons.append(f"the safety scan does not pass it: {found}")
    if allow_ops:
        reasons.append(f"its config opts in: allow_ops={allow_ops}")
    if not reasons:
        return
    why = "; ".join(reasons)
    raise errors.UnsafeDeserializationError(
        "Refusing to rebuild a HubLayer in Keras safe mode: it loads "
        f"the SavedModel {handle!r}, and loading a SavedModel runs its "
        f"TensorFlow graph (which can read and write files), and {why}. "
        "If you trust this model, load with "
        "`keras.models.load_model(path, safe_mode=False)` or call "
        "`keras.config.enable_unsafe_deserialization()` first."
    )


def _first_shape(shapes):
    """The first shape of a nest of shapes (tuples of ints/None)."""
    if isinstance(shapes, dict):
        return _first_shape(next(iter(shapes.values())))
    if (
        isinstance(shapes, (list, tuple))
        and shapes
        and not all(d is None or isinstance(d, int) for d in shapes)
    ):
        return _first_shape(shapes[0])
    return tuple(shapes)


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
            _compat.set_mean_aggregation(v)
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
    raise errors.OutputShapeError(
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
            raise errors.LayerConfigError(
                f"HubLayer(..., {key}=...) must be JSON-serializable to save "
                f"the layer. Received: {value!r}."
            ) from e


def _shape_and_dtype(value):
    """`(shape, dtype)` of a tensor or spec; other values as they are."""
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        dtype = keras.backend.standardize_dtype(value.dtype)
        return (tuple(value.shape), dtype)
    return value


class _OutputSpec:
    """What a symbolic output is made from (a leaf for `keras.tree`)."""

    __slots__ = ("dtype", "ragged", "shape", "sparse")

    def __init__(self, tensor):
        self.shape = tuple(tensor.shape)
        self.dtype = tensor.dtype
        self.sparse = getattr(tensor, "sparse", False)
        self.ragged = getattr(tensor, "ragged", False)

    def tensor(self):
        return keras.KerasTensor(
            self.shape, self.dtype, sparse=self.sparse, ragged=self.ragged
        )
