"""Hyperparameter search of staged fine-tuning with keras-tuner.

`HubClassifierHyperModel` searches the model (handle among candidates, head
width and depth, dropout, label smoothing) in `build(hp)` and the plan
(head-only epochs, how many groups to unfreeze, the base learning rate and
its layer-wise decay, the last two only when something is unfrozen) in
`fit(hp, model, ...)`. It works with every keras-tuner tuner; Hyperband's
part-way continuation picks the stage from the epoch index.

Building a hypermodel or a tuner here also makes keras-tuner 1.4 skip its
TensorBoard setup when `tensorboard` is not installed (TensorFlow 2.21 no
longer installs it, and keras-tuner would otherwise fail every trial).
Importing the module changes nothing.

The search report and the recipe runner are application code:
`keras_hubkit.app.search`.
"""

import contextlib
import hashlib
import json
import logging
import random
import weakref

import keras
import keras_tuner
import numpy as np

from keras_hubkit import _compat
from keras_hubkit import errors
from keras_hubkit._arrays import one_hot
from keras_hubkit.finetune import Stage
from keras_hubkit.finetune import StagedFineTuner
from keras_hubkit.hub_layer import HubLayer
from keras_hubkit.loading import load
from keras_hubkit.losses import ClassCrossentropy
from keras_hubkit.resolver import resolve

logger = logging.getLogger(__name__)

TUNERS = {
    "random": keras_tuner.RandomSearch,
    "bayesian": keras_tuner.BayesianOptimization,
    "hyperband": keras_tuner.Hyperband,
    "grid": keras_tuner.GridSearch,
}


class TrialDivergedError(
    errors.HubkitError, keras_tuner.errors.FailedTrialError
):
    """A trial's loss became NaN or infinite.

    keras-tuner records the trial as failed (not retried) and the search
    goes on.
    """


class LabelError(errors.DataError, keras_tuner.errors.FatalValueError):
    """The labels given to `search` are not class indices (or one-hot rows)
    of the hypermodel's `num_classes` classes.

    Raised by the first trial's `fit`, before anything trains, for the
    training and the validation labels. keras-tuner stops the search at
    once: a trial failing on its data would fail again in every trial.
    """


class HubClassifierHyperModel(keras_tuner.HyperModel):
    """A `keras_tuner.HyperModel` for classifiers on a TF Hub base.

    Args:
        handles: a handle or a list of candidate handles (`hp.Choice`).
        num_classes: how many classes.
        input_shape: the input shape without batch, e.g. `(224, 224, 3)`;
            `()` (the default) means a batch of strings (a text model).
        dropout: candidate dropout rates.
        head_widths: candidate hidden widths (0: a linear head).
        head_depths: candidate numbers of hidden layers (used when the width
            is not 0).
        label_smoothing: candidate label smoothing values.
        head_epochs: candidate head-only epochs of the plan.
        unfreeze_groups: candidate numbers of top base groups to unfreeze
            after the head-only stage (0: the base stays frozen).
        base_lr: `(low, high)` range (log scale) of the unfrozen stage's rate.
        layer_decay: `(low, high)` range of the layer-wise decay.
        head_lr: the head-only stage's learning rate.
        build_head: optional `build_head(hp, features) -> logits`, to search
            your own head; the staged `fit` is reused.
        cache_features: head-only trials share one loaded SavedModel and
            train the head on base features computed once per handle and
            data, with the same results as uncached trials. Their fixed
            cost is cut too: trials with the same head shape reuse one
            compiled head (label smoothing moves into the targets, so it
            does not count), keras-tuner's checkpoint is written once per
            trial, and keras-tuner skips its session reset before them.
        metrics: metrics to compile (default `["accuracy"]`).

    Example:

    ```python
    hypermodel = hk.tuning.HubClassifierHyperModel(
        ["/models/a", "/models/b"], num_classes=5, input_shape=(224, 224, 3))
    tuner = keras_tuner.RandomSearch(
        hypermodel, objective="val_accuracy", max_trials=10)
    tuner.search(x, y, epochs=6, validation_data=(x_val, y_val))
    ```
    """

    def __init__(
        self,
        handles,
        num_classes,
        *,
        input_shape=(),
        dropout=(0.0, 0.2),
        head_widths=(0,),
        head_depths=(1,),
        label_smoothing=(0.0,),
        head_epochs=(1, 2),
        unfreeze_groups=(0, 1, 2),
        base_lr=(1e-5, 1e-3),
        layer_decay=(0.5, 0.9),
        head_lr=1e-3,
        build_head=None,
        cache_features=False,
        metrics=("accuracy",),
        name="hub_classifier",
    ):
        super().__init__(name=name)
        # The tuner that runs this hypermodel needs it; done here, not at
        # import, so importing keras_hubkit patches nothing.
        _compat.patch_keras_tuner_tensorboard()
        _compat.patch_keras_tuner_session_reset()
        self.handles = [handles] if isinstance(handles, str) else list(handles)
        # Resolve once per process: trials then find the model on disk.
        self.paths = {h: resolve(h) for h in self.handles}
        self.num_classes = num_classes
        self.input_shape = tuple(input_shape)
        self.space = {
            "dropout": list(dropout),
            "head_width": list(head_widths),
            "head_depth": list(head_depths),
            "label_smoothing": list(label_smoothing),
            "head_epochs": list(head_epochs),
            "unfreeze_groups": list(unfreeze_groups),
        }
        self.base_lr, self.layer_decay = tuple(base_lr), tuple(layer_decay)
        self.head_lr = head_lr
        self.build_head = build_head
        self.cache_features = cache_features
        self.metrics = list(metrics)
        self._feature_cache = {}
        self._fingerprints = _Fingerprints()
        self._trainers = {}  # head shape -> _HeadTrainer, cached trials
        self._frozen_bases = {}  # handle -> loaded object, frozen trials only
        # Trial hyperparameters -> (plan epochs, stage its model ended in),
        # recorded by `fit`; keras-tuner rebuilds a trial's model from the
        # same object (`get_best_models`). See `_trial_end`. Not written
        # into the hyperparameters (saved with the trial): a value added
        # after keras-tuner created the trial changes the hash it detects
        # repeated trials by, and one registered as a `Fixed` in `fit`
        # breaks `GridSearch` once a later `search` runs other epochs.
        self._trial_ends = weakref.WeakKeyDictionary()

    @property
    def cached_feature_sets(self):
        """How many base feature arrays `cache_features` holds in memory."""
        return len(self._feature_cache)

    @property
    def compiled_heads(self):
        """How many compiled heads the head-only trials on cached features
        share (one per head shape; see `cache_features`)."""
        return len(self._trainers)

    # ------------------------------------------------------------- build
    def build(self, hp):
        """The trial's model: the chosen handle as a `HubLayer`, a head.

        Args:
            hp: the trial's `keras_tuner.HyperParameters`.

        Returns:
            A `keras.Model` with the trainability its trial ended with
            (before the trial, that of its plan's last stage; for a tuner
            reloaded in a new process, see the search guide), compiled as
            keras-tuner expects, so the models
            `get_best_models()` returns can `evaluate` on the class indices
            given to `search`: the trial's loss (label smoothing included)
            and `metrics`.
        """
        handle = hp.Choice("handle", self.handles)
        inputs = self._input()
        frozen = self._skips_session_reset(hp)
        base = HubLayer(self._base(handle, frozen), name="base")
        features = base(inputs)
        if self.build_head is not None:
            logits = self.build_head(hp, features)
        else:
            logits = self._default_head(hp, features)
        model = keras.Model(inputs, logits)
        # The model as it is at the end of its trial (get_best_models);
        # fit() sets trainability again per stage.
        epochs, stage = self._trial_end(hp)
        runner = self._runner(hp, model, epochs)
        runner.apply_trainability(stage)
        # `fit` compiles every stage again; this is for the model as
        # `get_best_models()` returns it (built, then its weights loaded).
        model.compile(
            optimizer=keras.optimizers.Adam(self.head_lr),
            loss=ClassCrossentropy(
                self.num_classes, label_smoothing=runner.loss.label_smoothing
            ),
            metrics=self.metrics,
        )
        return model

    def _trial_end(self, hp):
        """`(epochs, stage)`: the plan the trial of `hp` ran, and the index
        in it of the stage whose trainability its model ended with.

        `fit` records both in this process (a callback may stop a run, and
        a rolled-back stage gives the stage before it its trainability
        back). A tuner reloaded in a new process has no record: Hyperband
        saved each trial's epochs (`tuner/epochs`); the other tuners saved
        none, and the longest plan (`fit`'s default) is assumed. The
        search guide states this limit.
        """
        recorded = self._trial_ends.get(hp)
        if recorded is not None:
            return recorded
        return hp.values.get("tuner/epochs") or self._max_epochs(hp), -1

    def _skips_session_reset(self, hp):
        """Whether the trial only trains a head on cached features: its
        model is a small head around one shared frozen base, so keras-tuner
        need not reset the Keras session and collect garbage before it
        (see `_compat.patch_keras_tuner_session_reset`)."""
        return (
            self.cache_features
            and len(self.plan(hp, self._max_epochs(hp))) == 1
        )

    def _base(self, handle, frozen):
        """The SavedModel for a trial.

        Trials that never train the base share one loaded object (nothing
        changes it); any other trial loads its own, so fine-tuned weights
        never leak between trials.
        """
        if not frozen:
            return self.paths[handle]
        if handle not in self._frozen_bases:
            self._frozen_bases[handle] = load(self.paths[handle])
        return self._frozen_bases[handle]

    def _input(self):
        if self.input_shape == ():
            return keras.Input((), dtype="string", name="text")
        return keras.Input(self.input_shape, name="image")

    def _default_head(self, hp, x):
        width = hp.Choice("head_width", self.space["head_width"])
        if width:
            with hp.conditional_scope(
                "head_width", [w for w in self.space["head_width"] if w]
            ):
                depth = hp.Choice("head_depth", self.space["head_depth"])
            for i in range(depth):
                x = keras.layers.Dense(
                    width, activation="relu", name=f"hidden_{i}"
                )(x)
        rate = hp.Choice("dropout", self.space["dropout"])
        if rate:
            x = keras.layers.Dropout(rate, name="dropout")(x)
        return keras.layers.Dense(self.num_classes, name="logits")(x)

    # --------------------------------------------------------------- fit
    def plan(self, hp, epochs):
        """The stage plan the hyperparameters `hp` choose for `epochs`.

        Args:
            hp: a `keras_tuner.HyperParameters` (during a search, or the
                best one after it, to retrain that plan).
            epochs: the total number of epochs.

        Returns:
            A list of `hk.finetune.Stage`: head-only epochs first, then the
            unfrozen stage when the plan unfreezes groups.
        """
        head = min(hp.Choice("head_epochs", self.space["head_epochs"]), epochs)
        groups = hp.Choice("unfreeze_groups", self.space["unfreeze_groups"])
        unfrozen = [g for g in self.space["unfreeze_groups"] if g]
        stages = [Stage(max(head, 1), lr=self.head_lr, name="head")]
        if unfrozen:
            with hp.conditional_scope("unfreeze_groups", unfrozen):
                lr = hp.Float("base_lr", *self.base_lr, sampling="log")
                decay = hp.Float("layer_decay", *self.layer_decay)
        if groups and epochs > head:
            stages.append(
                Stage(
                    epochs - head,
                    unfreeze=groups,
                    lr=lr,
                    layer_decay=decay,
                    schedule="cosine",
                    name="unfrozen",
                )
            )
        return stages

    def _max_epochs(self, hp):
        return max(self.space["head_epochs"]) + 1

    def _runner(self, hp, model, epochs):
        smoothing = hp.Choice("label_smoothing", self.space["label_smoothing"])
        loss = keras.losses.CategoricalCrossentropy(
            from_logits=True, label_smoothing=smoothing
        )
        return StagedFineTuner(
            model, self.plan(hp, epochs), loss=loss, metrics=self.metrics
        )

    def fit(
        self,
        hp,
        model,
        x,
        y=None,
        *,
        epochs=None,
        initial_epoch=0,
        validation_data=None,
        callbacks=None,
        verbose=0,
        **kwargs,
    ):
        """Runs the staged plan the hyperparameters choose.

        Args:
            hp: the trial's `keras_tuner.HyperParameters`.
            model: the model `build(hp)` returned.
            x: inputs.
            y: class indices in `0..num_classes - 1`, shaped `(n,)` or
                `(n, 1)`, or one-hot rows.
            epochs: total epochs (default: the longest plan's).
            initial_epoch: where Hyperband continues a trial.
            validation_data: `(x, y)`, labels as for `y`.
            callbacks: keras-tuner's callbacks.
            verbose: Keras verbosity.
            **kwargs: more `fit` arguments (`batch_size`, ...).

        Returns:
            A `keras.callbacks.History` of the whole plan.

        Raises:
            LabelError: a label of `y` or of `validation_data` is not a
                class index (keras-tuner stops the search).
            TrialDivergedError: the loss became NaN (keras-tuner records the
                trial as failed and goes on).
        """
        y, validation_data = self._one_hot_labels(y, validation_data)
        epochs = epochs or self._max_epochs(hp)
        runner = self._runner(hp, model, epochs)
        if (
            self.cache_features
            and len(runner.stages) == 1
            and not initial_epoch
            and not isinstance(x, dict)
        ):
            history = self._fit_on_features(
                hp,
                model,
                runner,
                x,
                y,
                validation_data,
                callbacks,
                verbose,
                **kwargs,
            )
        else:
            history = runner.run(
                x,
                y,
                validation_data=validation_data,
                callbacks=callbacks,
                verbose=verbose,
                initial_epoch=initial_epoch,
                **kwargs,
            )
        if history.stopped_on_nan:
            raise TrialDivergedError(
                "Expected a finite loss. Received: the loss became NaN "
                f"with hyperparameters={hp.values}. The trial is recorded as "
                "failed and the search goes on; narrow the learning-rate "
                "range if many trials fail."
            )
        self._trial_ends[hp] = (epochs, _stage_in_force(history))
        result = keras.callbacks.History()
        result.history = {
            k: v for k, v in history.history.items() if k != "stage"
        }
        result.epoch = history.epoch
        return result

    def _one_hot_labels(self, y, validation_data):
        """`y` and the validation labels as one-hot rows, checked before
        anything trains.

        Raises:
            LabelError: a label is not a class index.
        """
        try:
            y = one_hot(y, self.num_classes, name="y")
            if validation_data is not None:
                validation_data = (
                    validation_data[0],
                    one_hot(
                        validation_data[1],
                        self.num_classes,
                        name="the labels of validation_data",
                    ),
                )
        except errors.DataError as error:
            # A DataError would fail each trial in turn (keras-tuner
            # catches it) and the search would end on a RuntimeError.
            raise LabelError(str(error)) from None
        return y, validation_data

    def _fit_on_features(
        self,
        hp,
        model,
        runner,
        x,
        y,
        validation_data,
        callbacks,
        verbose,
        **kwargs,
    ):
        """Head-only trial: the frozen base runs once per handle and data,
        and the head trains on its features.

        The head trains in a per-head-shape trainer model that keeps its
        compiled functions from trial to trial (see `_HeadTrainer`); its
        weights start from this trial's freshly built head and are copied
        back into `model` after every epoch, so keras-tuner's callbacks see
        the trial's model. keras-tuner's best-epoch checkpoint is written
        once, at the end of the trial (resume and `get_best_models` need no
        more), instead of at every improving epoch.
        """
        base = model.get_layer("base")
        handle = hp.get("handle")
        features = self._features(handle, base, x)
        loss, smooth = _smoothing_as_targets(runner.loss)
        val = None
        if validation_data is not None:
            val = (
                self._features(handle, base, validation_data[0]),
                smooth(validation_data[1]),
            )
        head_layers = model.layers[model.layers.index(base) + 1 :]
        trainer = self._trainer(features.shape[1:], head_layers)
        trial_vars = _variables(head_layers)
        trainer_vars = _variables(trainer.head_layers)
        _assign(trainer_vars, trial_vars)
        extra = [_CopyWeights(trainer_vars, trial_vars)]
        for callback in callbacks or []:
            if isinstance(callback, _compat.keras_tuner_checkpoint_type()):
                extra.append(
                    _CheckpointAtEnd(callback, model, trainer_vars, trial_vars)
                )
            else:
                extra.append(_ForwardTo(model, callback))
        stage_runner = StagedFineTuner(
            trainer, runner.stages, loss=loss, metrics=self.metrics
        )
        history = stage_runner.run(
            features,
            smooth(y),
            validation_data=val,
            callbacks=extra,
            verbose=verbose,
            **kwargs,
        )
        _assign(trial_vars, trainer_vars)
        return history

    def _trainer(self, feature_shape, head_layers):
        """The `_HeadTrainer` for heads shaped like `head_layers` on
        features of `feature_shape`: one per shape, reused by every trial
        with that shape.
        """
        key = _head_key(feature_shape, head_layers)
        if key is None:
            return _HeadTrainer.wrap(feature_shape, head_layers)
        if key not in self._trainers:
            # Creating layers draws seeds from the global random state;
            # keep that state as it was, so the trials that follow get the
            # same initial weights and shuffles as in an uncached search.
            with _random_state_kept():
                try:
                    trainer = _HeadTrainer.clone(feature_shape, head_layers)
                except Exception:  # a layer from_config cannot rebuild
                    trainer = None
            if trainer is None:
                return _HeadTrainer.wrap(feature_shape, head_layers)
            self._trainers[key] = trainer
        return self._trainers[key]

    def _features(self, handle, base, x):
        key = (handle, self._fingerprints.of(x))
        if key not in self._feature_cache:
            self._feature_cache[key] = np.asarray(
                keras.Sequential([base]).predict(x, verbose=0, batch_size=256)
            )
        return self._feature_cache[key]


class _HeadTrainer(keras.Model):
    """A head on base features whose compiled train and test functions
    survive recompiling with an equal configuration.

    Tracing `fit`'s functions costs far more than training a small head on
    cached features for a few epochs. When `compile` is called again with
    the same optimizer, loss, metrics and options (compared by their Keras
    configs), the optimizer's state is reset to its freshly built values
    and the traced functions are kept: the next `fit` trains exactly as a
    freshly compiled model would. Anything else compiles as usual.
    """

    @classmethod
    def clone(cls, feature_shape, head_layers):
        inputs = keras.Input(feature_shape)
        x = inputs
        for layer in head_layers:
            x = layer.__class__.from_config(layer.get_config())(x)
        return cls(inputs, x, name="head_trainer")

    @classmethod
    def wrap(cls, feature_shape, head_layers):
        """A trainer on the trial's own layers (no reuse possible)."""
        inputs = keras.Input(feature_shape)
        x = inputs
        for layer in head_layers:
            x = layer(x)
        trainer = cls(inputs, x, name="head_trainer")
        trainer.reusable = False
        return trainer

    @property
    def head_layers(self):
        return [
            layer
            for layer in self.layers
            if not isinstance(layer, keras.layers.InputLayer)
        ]

    reusable = True

    _compile_key = None
    _fresh_optimizer_state = None

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, **kwargs):
        key = _compile_key(optimizer, loss, metrics, kwargs)
        if (
            self.reusable
            and key is not None
            and key == self._compile_key
            and self._fresh_optimizer_state is not None
        ):
            _assign(self.optimizer.variables, self._fresh_optimizer_state)
            return
        super().compile(
            optimizer=optimizer, loss=loss, metrics=metrics, **kwargs
        )
        self._compile_key = key
        self._fresh_optimizer_state = None
        if key is not None and self.reusable:
            self.optimizer.build(self.trainable_variables)
            self._fresh_optimizer_state = [
                v.numpy() for v in self.optimizer.variables
            ]
        self._build_metrics()

    def _build_metrics(self):
        """Creates the compiled metrics' variables now. Keras otherwise
        creates them (and the optimizer's) inside the first traced train
        step, and TensorFlow then traces that step a second time."""
        sample = keras.ops.zeros((1, *self.outputs[0].shape[1:]))
        for metric in self.metrics:
            if getattr(metric, "built", True) is False:
                try:
                    metric.build(sample, sample)  # targets shaped as logits
                except Exception:  # Keras builds it in the step instead.
                    pass


class _CopyWeights(keras.callbacks.Callback):
    """Copies the trainer's head weights into the trial's model after every
    epoch, before keras-tuner's callbacks look at it.
    """

    def __init__(self, source, target):
        super().__init__()
        self.source, self.target = source, target

    def on_epoch_end(self, epoch, logs=None):
        _assign(self.target, self.source)


class _CheckpointAtEnd(keras.callbacks.Callback):
    """keras-tuner's best-epoch checkpoint, written once per trial.

    keras-tuner saves the full model (the base's weights included) at every
    improving epoch; only the best epoch's file is ever read (by
    `get_best_models` and Hyperband's continued trials). This keeps the
    best epoch's head weights in memory and hands keras-tuner's callback
    that epoch alone, at the end of training.
    """

    def __init__(self, inner, model, head_vars, trial_vars):
        super().__init__()
        self.inner = inner
        self.head_vars = head_vars
        self.trial_vars = trial_vars
        inner.set_model(model)
        self.best = None
        self.best_value = None

    def set_model(self, model):
        pass

    def on_epoch_end(self, epoch, logs=None):
        objective = self.inner.objective
        logs = dict(logs or {})
        if objective.has_value(logs):
            value = objective.get_value(logs)
            if self.best is not None and not objective.better_than(
                value, self.best_value
            ):
                return
            self.best_value = value
        self.best = (epoch, logs, [v.numpy() for v in self.head_vars])

    def on_train_end(self, logs=None):
        if self.best is None:
            return
        epoch, epoch_logs, values = self.best
        final = [v.numpy() for v in self.trial_vars]
        _assign(self.trial_vars, values)
        self.inner.on_epoch_end(epoch, epoch_logs)
        _assign(self.trial_vars, final)


class _ForwardTo(keras.callbacks.Callback):
    """Runs keras-tuner's callbacks against the full model.

    The full model shares the head's weights while only the head trains.
    """

    def __init__(self, model, inner):
        super().__init__()
        self.inner = inner
        inner.set_model(model)

    def set_model(self, model):
        pass

    def __getattribute__(self, name):
        if name.startswith("on_"):
            return getattr(object.__getattribute__(self, "inner"), name)
        return object.__getattribute__(self, name)


def make_tuner(
    name, hypermodel, *, max_trials, max_epochs, objective="val_loss", **kwargs
):
    """A keras-tuner tuner by name.

    Args:
        name: "random", "bayesian", "hyperband" or "grid".
        hypermodel: the `keras_tuner.HyperModel` to search.
        max_trials: the trial budget (Hyperband ignores it).
        max_epochs: Hyperband's `max_epochs`.
        objective: what to minimise or maximise.
        **kwargs: more arguments of the tuner (`directory`, ...).

    Returns:
        The tuner.

    Raises:
        RecipeError: an unknown tuner name.
    """
    if name not in TUNERS:
        raise errors.RecipeError(
            f"Expected a tuner among {sorted(TUNERS)}. Received: "
            f"name={name!r}. Pick one of them."
        )
    _compat.patch_keras_tuner_tensorboard()
    if name == "hyperband":
        return keras_tuner.Hyperband(
            hypermodel, objective=objective, max_epochs=max_epochs, **kwargs
        )
    return TUNERS[name](
        hypermodel, objective=objective, max_trials=max_trials, **kwargs
    )


def _stage_in_force(history):
    """The index of the stage whose trainability a `StagedHistory`'s run
    ended with: the last one that trained and was kept (a rollback gives
    the stage before it its trainability back); -1 (the plan's last) when
    no epoch ran."""
    rolled_back = {r["stage"] for r in history.rollbacks}
    kept = [s for s in history.history["stage"] if s not in rolled_back]
    return kept[-1] if kept else -1


def _fingerprint(x):
    array = np.asarray(x)
    digest = hashlib.sha1(
        array.tobytes()
        if array.dtype != object
        else "\x00".join(map(str, array)).encode()
    )
    return (array.shape, digest.hexdigest())


class _Fingerprints:
    """`_fingerprint` memoised per array object.

    Hashing the inputs costs about 2 s per 1,000 images of 224x224, and a
    search passes the same arrays to every trial. An array seen before is
    recognised by identity (a weak reference, so a freed array's id cannot
    be mistaken for it) plus a checksum of a strided sample of its bytes,
    which catches the usual in-place edits between two searches.
    """

    _SAMPLE = 4096

    def __init__(self):
        self._seen = {}  # id -> (weak reference, sample checksum, fingerprint)

    def of(self, x):
        if not isinstance(x, np.ndarray) or x.dtype == object:
            return _fingerprint(x)
        sample = self._sample(x)
        found = self._seen.get(id(x))
        if found is not None and found[0]() is x and found[1] == sample:
            return found[2]
        fingerprint = _fingerprint(x)
        self._seen = {k: v for k, v in self._seen.items() if v[0]() is not None}
        self._seen[id(x)] = (weakref.ref(x), sample, fingerprint)
        return fingerprint

    def _sample(self, x):
        flat = x.reshape(-1)
        step = max(1, flat.size // self._SAMPLE)
        return hashlib.sha1(
            np.ascontiguousarray(flat[::step]).tobytes()
        ).digest()


def _smoothing_as_targets(loss):
    """`(loss, smooth)`: a categorical cross-entropy's label smoothing moved
    from the loss into the targets (`smooth(y)`), as Keras computes it, so
    trials that differ only in smoothing compile the same loss and share
    their traced functions; other losses pass through unchanged."""
    config = loss.get_config() if hasattr(loss, "get_config") else {}
    amount = config.get("label_smoothing") or 0.0
    if type(loss) is not keras.losses.CategoricalCrossentropy or not amount:
        return loss, lambda y: y

    def smooth(y):
        y = np.asarray(y, "float32")
        classes = np.float32(y.shape[-1])
        return y * np.float32(1.0 - amount) + np.float32(amount) / classes

    config["label_smoothing"] = 0.0
    return keras.losses.CategoricalCrossentropy(**config), smooth


def _variables(layers):
    """Every variable of `layers`, random seed states included."""
    return [v for layer in layers for v in layer.variables]


def _assign(targets, values):
    for target, value in zip(targets, values, strict=True):
        target.assign(value)


def _config_key(value):
    """A comparable text for a compile argument, or None when it has no
    faithful Keras config (then nothing is reused). Object names are left
    out: they differ ("adam", "adam_1") without changing what is traced."""
    try:
        config = keras.saving.serialize_keras_object(value)
        if isinstance(config, dict) and isinstance(config.get("config"), dict):
            config = {**config, "config": {**config["config"], "name": None}}
        return json.dumps(config, sort_keys=True)
    except Exception:  # no get_config, or not JSON: do not guess.
        return None


def _compile_key(optimizer, loss, metrics, kwargs):
    keys = [_config_key(v) for v in (optimizer, loss, metrics, kwargs)]
    return None if None in keys else tuple(keys)


def _head_key(feature_shape, head_layers):
    """What a head's compiled functions depend on: its layers' classes and
    configs (names aside) on features of `feature_shape`; None when a layer
    has no JSON config (then the head is not reused).
    """
    parts = [tuple(feature_shape)]
    for layer in head_layers:
        try:
            config = json.dumps({**layer.get_config(), "name": None})
        except Exception:  # custom layers without a faithful config
            return None
        parts.append((type(layer).__qualname__, config))
    return tuple(parts)


@contextlib.contextmanager
def _random_state_kept():
    """Runs the block, then puts Python's and NumPy's global random state
    back as they were.
    """
    python_state = random.getstate()
    numpy_state = np.random.get_state()
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
