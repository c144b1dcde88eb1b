"""`StagedFineTuner`: runs a plan of `Stage`s on a Keras model."""

import json
import logging
import math
import os
import re

import keras
import numpy as np
import tensorflow as tf

from keras_hubkit import errors
from keras_hubkit import schedules
from keras_hubkit.finetune import _multi_worker
from keras_hubkit.finetune import callbacks as cb
from keras_hubkit.finetune import groups as grouping
from keras_hubkit.hub_layer import HubLayer

logger = logging.getLogger(__name__)

BN_POLICIES = ("frozen", "train")


class StagedHistory(keras.callbacks.History):
    """One `History` for a whole run: continuous epochs, and per epoch the
    stage that trained it (`history.history["stage"]`).

    Attributes:
        stage_lrs: per stage, the starting learning rate of each trained
            group (`"head"` and the base groups' names).
        stopped_on_nan: whether a non-finite loss ended the run.
        best_epoch / best_value: the best monitored epoch of the run.
    """

    def __init__(self):
        super().__init__()
        self.history = {"stage": []}
        self.epoch = []
        self.stage_lrs = []
        self.stopped_on_nan = False
        self.best_epoch = None
        self.best_value = None


class StagedFineTuner:
    """Runs a staged fine-tuning plan: per stage it sets trainability,
    builds a fresh optimizer (per-group learning rates), recompiles, and
    fits with continuous epoch numbering.

    Args:
        model: a Keras model, e.g. `Sequential([HubLayer(...), Dense(n)])`
            or a `keras.applications` backbone plus a head.
        stages: a list of `hk.finetune.Stage`.
        loss: the loss (as for `model.compile`).
        metrics: metrics (as for `model.compile`).
        bn_policy: `"frozen"` (default): every `BatchNormalization` stays in
            inference mode with fixed statistics, and trainable `HubLayer`s
            call their SavedModel with `training=False` (the whole
            SavedModel's mode: its dropout is off too). `"train"`: batch
            norm layers train with their group.
        base: the pretrained layers (default: every `HubLayer` and nested
            model); all other layers with weights form the head.
        monitor: the metric for early stopping and the best checkpoint
            (default `"val_loss"` with validation data, else `"loss"`).
        checkpoint_path: where to keep the run's best weights
            (`.weights.h5`).
        backup_dir: where to write a resumable backup after each epoch. A
            run restarted with the same folder continues after the last
            completed epoch (stage, learning rate and weights included).
        compile_kwargs: more `model.compile` arguments.

    Example:

    ```python
    runner = hk.finetune.StagedFineTuner(
        model,
        [hk.finetune.Stage(2, lr=1e-3),
         hk.finetune.Stage(3, unfreeze=2, lr=1e-4, layer_decay=0.5)],
        loss="sparse_categorical_crossentropy", metrics=["accuracy"],
    )
    history = runner.run(train_ds, validation_data=val_ds)
    ```
    """

    def __init__(
        self,
        model,
        stages,
        *,
        loss,
        metrics=None,
        bn_policy="frozen",
        base=None,
        monitor=None,
        checkpoint_path=None,
        backup_dir=None,
        compile_kwargs=None,
    ):
        if not stages:
            raise errors.StagePlanError("A plan needs at least one Stage.")
        if bn_policy not in BN_POLICIES:
            raise errors.StagePlanError(
                f"bn_policy must be one of {BN_POLICIES}. Received: "
                f"{bn_policy!r}."
            )
        self.model = model
        self.stages = list(stages)
        self.loss = loss
        self.metrics = metrics
        self.bn_policy = bn_policy
        self.base = base
        self.monitor = monitor
        self.checkpoint_path = checkpoint_path
        self.backup_dir = backup_dir
        self.compile_kwargs = dict(compile_kwargs or {})

    # ---------------------------------------------------------------- run
    def run(
        self,
        x=None,
        y=None,
        *,
        validation_data=None,
        batch_size=None,
        steps_per_epoch=None,
        callbacks=None,
        verbose="auto",
        initial_epoch=0,
        **fit_kwargs,
    ):
        """Runs every stage; returns a `StagedHistory`.

        Args:
            x: training data, as for `model.fit`.
            y: targets, as for `model.fit`.
            validation_data: as for `model.fit`.
            batch_size: as for `model.fit`.
            steps_per_epoch: as for `model.fit` (also sizes schedules).
            callbacks: callbacks for every stage.
            verbose: as for `model.fit`.
            initial_epoch: start here, in the stage that holds this epoch
                (Hyperband continues promoted trials part-way).
            **fit_kwargs: more `model.fit` arguments.
        """
        monitor = self.monitor or ("val_loss" if validation_data else "loss")
        history = StagedHistory()
        guard = cb.NaNGuard()
        best = cb.BestWeights(monitor, self.checkpoint_path)
        steps = steps_per_epoch or _steps_per_epoch(x, batch_size)
        start_stage, start_epoch = self._resume(history)
        if not start_epoch and initial_epoch:
            start_stage, start_epoch = (
                self._stage_at(initial_epoch),
                initial_epoch,
            )
        first_epoch = sum(s.epochs for s in self.stages[:start_stage])
        for index in range(start_stage, len(self.stages)):
            stage = self.stages[index]
            end_epoch = first_epoch + stage.epochs
            resume_optimizer = (
                index == start_stage and start_epoch > first_epoch
            )
            self._prepare_stage(index, stage, steps, history, resume_optimizer)
            stage_callbacks = self._stage_callbacks(
                index, stage, monitor, history, guard, best, callbacks
            )
            if verbose:
                print(
                    f"Stage {index + 1}/{len(self.stages)}: {_describe(stage)}"
                )
            if _multi_worker.is_multi_worker(self.model.distribute_strategy):
                _multi_worker.fit(
                    self.model,
                    x,
                    initial_epoch=max(start_epoch, first_epoch),
                    epochs=end_epoch,
                    callbacks=stage_callbacks,
                    validation_data=validation_data,
                    verbose=0 if verbose == "auto" else verbose,
                )
            else:
                self.model.fit(
                    x,
                    y,
                    validation_data=validation_data,
                    batch_size=batch_size,
                    steps_per_epoch=steps_per_epoch,
                    initial_epoch=max(start_epoch, first_epoch),
                    epochs=end_epoch,
                    callbacks=stage_callbacks,
                    verbose=verbose,
                    **fit_kwargs,
                )
            first_epoch = end_epoch
            if guard.stopped:
                history.stopped_on_nan = True
                break
        history.best_epoch, history.best_value = best.best_epoch, best.best
        history.set_model(self.model)
        return history

    # -------------------------------------------------------- trainability
    def _prepare_stage(self, index, stage, steps, history, resume_optimizer):
        groups = grouping.base_groups(self.model, self.base)
        chosen = grouping.select(groups, stage.unfreeze)
        self._set_trainable(chosen)
        rates = self._group_rates(stage, chosen)
        history.stage_lrs.append({k: _start(v) for k, v in rates.items()})
        total = steps * stage.epochs if steps else None
        with self.model.distribute_strategy.scope():
            # Keras optimizers bind to the strategy active at creation.
            optimizer = self._optimizer(stage, chosen, rates, total)
            self.model.compile(
                optimizer=optimizer,
                loss=self.loss,
                metrics=self.metrics,
                **self.compile_kwargs,
            )
        if resume_optimizer:
            self._restore_optimizer()

    def _set_trainable(self, chosen):
        base = (
            self.base
            if self.base is not None
            else grouping.base_layers(self.model)
        )
        chosen_ids = {id(v) for g in chosen for v in g.variables}
        chosen_layers = {id(g.layer) for g in chosen}
        for layer in base:
            if isinstance(layer, HubLayer):
                self._set_hub_layer(layer, chosen, chosen_ids)
            elif isinstance(layer, keras.Model):
                _set_nested(layer, chosen_layers)
            else:
                layer.trainable = id(layer) in chosen_layers
        for layer in grouping.head_layers(self.model, base):
            layer.trainable = True
        if self.bn_policy == "frozen":
            for layer in _all_layers(self.model):
                if isinstance(layer, keras.layers.BatchNormalization):
                    layer.trainable = False

    def _set_hub_layer(self, layer, chosen, chosen_ids):
        mine = [g for g in chosen if g.layer is layer]
        if not mine:
            layer.trainable = False
            return
        names = [
            layer.source_name(v) for v in layer.weights if id(v) in chosen_ids
        ]
        layer.trainable = True
        layer.set_trainable_patterns([f"^{re.escape(n)}$" for n in names])
        layer.inference_only = self.bn_policy == "frozen"

    # ------------------------------------------------------ learning rates
    def _group_rates(self, stage, chosen):
        """Learning rate (float or schedule) per trained group + "head"."""
        names = [g.name for g in chosen]
        if stage.lr_range is not None:
            low, high = stage.lr_range
            points = len(names) + 1
            values = [
                low * (high / low) ** (i / max(points - 1, 1))
                for i in range(points)
            ]
            rates = dict(zip(names, values[:-1]))
            rates["head"] = values[-1]
            return rates
        rates = {"head": stage.lr}
        for depth, name in enumerate(reversed(names), start=1):
            if stage.layer_decay is not None:
                rates[name] = _scale(stage.lr, stage.layer_decay**depth)
            else:
                rates[name] = stage.lr
        for pattern, lr in (stage.group_lrs or {}).items():
            matched = [n for n in rates if re.search(pattern, n)]
            if not matched:
                raise errors.StagePlanError(
                    f"group_lrs key {pattern!r} matches no trained group. "
                    f"Trained groups: {list(rates)}."
                )
            for name in matched:
                rates[name] = lr
        return rates

    def _optimizer(self, stage, chosen, rates, total_steps):
        factory = stage.optimizer or (
            lambda lr: keras.optimizers.Adam(learning_rate=lr)
        )
        by_rate = {}
        optimizers = {}
        for name, rate in rates.items():
            key = _rate_key(rate)
            if key not in by_rate:
                by_rate[key] = factory(stage.make_schedule(rate, total_steps))
            optimizers[name] = by_rate[key]
        if len(by_rate) == 1:
            return next(iter(by_rate.values()))
        variable_map = {
            v.path: optimizers[g.name] for g in chosen for v in g.variables
        }
        return keras.optimizers.MultiOptimizer(
            keras.optimizers.OptimizerMap(optimizers["head"], variable_map)
        )

    # ------------------------------------------------------------ callbacks
    def _stage_callbacks(
        self, index, stage, monitor, history, guard, best, extra
    ):
        recorder = _Recorder(history, index)
        found = [recorder, guard, best, *(extra or []), *stage.callbacks]
        if stage.early_stopping is not None:
            found.append(
                keras.callbacks.EarlyStopping(
                    monitor=monitor,
                    patience=stage.early_stopping,
                    restore_best_weights=True,
                )
            )
        if self.backup_dir:
            found.append(
                cb.Backup(
                    self._backup_folder(),
                    lambda epoch, logs: self._state(epoch, index, history),
                    guard,
                )
            )
        return found

    # ---------------------------------------------------------- resuming
    def _backup_folder(self):
        task = _worker_task()
        if task is None or task == ("worker", 0) or task[0] == "chief":
            return self.backup_dir
        return os.path.join(self.backup_dir, f"{task[0]}_{task[1]}")

    def _state(self, epoch, index, history):
        return {
            "completed_epochs": epoch + 1,
            "stage": index,
            "plan": [s.to_dict() for s in self.stages],
            "history": history.history,
            "stage_lrs": history.stage_lrs,
        }

    def _resume(self, history):
        if not self.backup_dir:
            return 0, 0
        state_file = cb.state_path(self._backup_folder())
        if not os.path.exists(state_file):
            return 0, 0
        with open(state_file) as f:
            state = json.load(f)
        plan = [s.to_dict() for s in self.stages]
        if state["plan"] != plan:
            raise errors.StagePlanError(
                f"The backup in {self.backup_dir!r} was written by another "
                "plan. Use a new backup_dir, or delete this one to start "
                "over."
            )
        self.model.load_weights(cb.weights_path(self._backup_folder()))
        done = state["completed_epochs"]
        history.history = state["history"]
        history.epoch = list(range(done))
        history.stage_lrs = state["stage_lrs"][: state["stage"]]
        stage = self._stage_at(done)
        print(f"Resuming after epoch {done} (stage {stage + 1}).")
        return stage, done

    def _stage_at(self, epoch):
        """The index of the stage that trains `epoch` (0-based)."""
        boundary = 0
        for index, stage in enumerate(self.stages):
            if epoch < boundary + stage.epochs:
                return index
            boundary += stage.epochs
        return len(self.stages)

    def apply_trainability(self, index=-1):
        """Sets trainability (and the BatchNorm policy) as stage `index`
        does, without training: e.g. to rebuild a model as it was at the
        end of a run."""
        stage = self.stages[index]
        groups = grouping.base_groups(self.model, self.base)
        self._set_trainable(grouping.select(groups, stage.unfreeze))

    def _restore_optimizer(self):
        values = cb.load_optimizer_values(self._backup_folder())
        optimizer = self.model.optimizer
        with self.model.distribute_strategy.scope():
            optimizer.build(self.model.trainable_variables)
        if values is not None and len(values) == len(optimizer.variables):
            for variable, value in zip(optimizer.variables, values):
                variable.assign(value)


def fine_tune(
    model,
    x=None,
    y=None,
    *,
    epochs=3,
    loss,
    metrics=None,
    base_lr=2e-3,
    freeze_epochs=1,
    lr_mult=100,
    validation_data=None,
    batch_size=None,
    **kwargs,
):
    """Fine-tunes with fastai's defaults, for users who do not want a plan.

    Stage 1 trains the head for `freeze_epochs` with a one-cycle rate
    peaking at `base_lr`; stage 2 unfreezes everything for `epochs` with
    rates spread geometrically from `base_lr / 2 / lr_mult` (lowest group)
    to `base_lr / 2` (head), one-cycle (`div=5`, `pct_start=0.3`).
    BatchNorm statistics stay frozen.

    Args:
        model: a Keras model with a pretrained base (`HubLayer`...).
        x: training data, as for `model.fit`.
        y: targets, as for `model.fit`.
        epochs: epochs of the unfrozen stage.
        loss: as for `model.compile`.
        metrics: as for `model.compile`.
        base_lr: the head's peak rate in stage 1.
        freeze_epochs: epochs of the head-only stage.
        lr_mult: the ratio between the head's and the lowest group's rate.
        validation_data: as for `model.fit`.
        batch_size: as for `model.fit`.
        **kwargs: more `StagedFineTuner` arguments.

    Returns:
        A `StagedHistory`.

    Example:

    ```python
    history = hk.finetune.fine_tune(model, x, y, epochs=3,
                                    loss="sparse_categorical_crossentropy")
    ```
    """

    def head_cycle(lr, n):
        return schedules.one_cycle(lr, n, pct_start=0.99)

    def body_cycle(lr, n):
        return schedules.one_cycle(lr, n, div=5.0, pct_start=0.3)

    half = base_lr / 2
    plan = [
        _stage(freeze_epochs, "head", base_lr, head_cycle, "head"),
        _stage(
            epochs,
            "all",
            half,
            body_cycle,
            "all",
            lr_range=(half / lr_mult, half),
        ),
    ]
    runner = StagedFineTuner(model, plan, loss=loss, metrics=metrics, **kwargs)
    return runner.run(
        x, y, validation_data=validation_data, batch_size=batch_size
    )


def _stage(epochs, unfreeze, lr, schedule, name, **kwargs):
    from keras_hubkit.finetune.stage import Stage

    return Stage(
        epochs=epochs,
        unfreeze=unfreeze,
        lr=lr,
        schedule=schedule,
        name=name,
        **kwargs,
    )


class _Recorder(keras.callbacks.Callback):
    """Merges each epoch's logs into the run's history."""

    def __init__(self, history, stage):
        super().__init__()
        self.history, self.stage = history, stage

    def on_epoch_end(self, epoch, logs=None):
        self.history.epoch.append(epoch)
        self.history.history["stage"].append(self.stage)
        for key, value in (logs or {}).items():
            series = self.history.history.setdefault(key, [])
            # Metrics that appear in a later stage are padded with NaN.
            while len(series) < len(self.history.epoch) - 1:
                series.append(float("nan"))
            series.append(float(value))


def _set_nested(model, chosen_layers):
    model.trainable = True
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            _set_nested(layer, chosen_layers)
        else:
            layer.trainable = id(layer) in chosen_layers


def _all_layers(model):
    return [model, *model._flatten_layers(include_self=False)]


def _steps_per_epoch(x, batch_size):
    if isinstance(x, tf.data.Dataset):
        n = int(x.cardinality())
        return n if n > 0 else None
    if isinstance(x, keras.utils.PyDataset):
        try:
            return len(x)
        except TypeError:
            return None
    first = tf.nest.flatten(x)[0] if x is not None else None
    if first is not None and hasattr(first, "shape"):
        return math.ceil(int(first.shape[0]) / (batch_size or 32))
    return None


def _scale(lr, factor):
    if isinstance(lr, keras.optimizers.schedules.LearningRateSchedule):
        return schedules.Scaled(lr, factor)
    return lr * factor


def _start(rate):
    if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule):
        return float(rate(0))
    return float(rate)


def _rate_key(rate):
    if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule):
        return ("schedule", id(rate))
    return ("value", float(np.float32(rate)))


def _describe(stage):
    what = stage.unfreeze if stage.unfreeze is not None else "head"
    return (
        f"{stage.epochs} epochs, unfreeze={what!r}, lr={_start_lr(stage)}"
        f", schedule={getattr(stage.schedule, '__name__', stage.schedule)}"
    )


def _start_lr(stage):
    return stage.lr_range if stage.lr_range else stage.lr


def _worker_task():
    config = os.environ.get("TF_CONFIG")
    if not config:
        return None
    task = json.loads(config).get("task", {})
    return task.get("type"), task.get("index", 0)
