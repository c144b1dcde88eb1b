"""`StagedFineTuner`: runs a plan of `Stage`s on a Keras model."""

import inspect
import json
import logging
import math
import os
import re

import keras
import numpy as np
import tensorflow as tf

from keras_hubkit import _compat
from keras_hubkit import errors
from keras_hubkit import schedules
from keras_hubkit.finetune import _multi_worker
from keras_hubkit.finetune import _pipeline
from keras_hubkit.finetune import callbacks as cb
from keras_hubkit.finetune import groups as grouping
from keras_hubkit.finetune.auto import AutoPlan
from keras_hubkit.finetune.stage import positive_number
from keras_hubkit.finetune.stage import whole_number
from keras_hubkit.hub_layer import HubLayer

logger = logging.getLogger(__name__)

BN_POLICIES = ("frozen", "train")

# Steps per compiled call when chosen automatically: enough to hide Keras's
# per-call cost (~0.5 ms on CPU), small enough for a lively progress bar.
AUTO_STEPS_PER_EXECUTION = 32
# What several steps per call cost and save on a 2-core CPU with
# TensorFlow 2.21 / Keras 3.15, against one step per call with the lean
# functions (`_compat.lean_step_functions`): Keras wraps the step in a
# while loop whose tracing and first run cost ~70 ms plus ~7 ms per
# variable the step carries (weights and optimizer slots; ~3.4 s for
# MobileNet V3's 494), as much again less the slots for `evaluate`'s step
# (220-390 ms for both loops of a head on a small SavedModel), and saves
# 0.3-0.8 ms per step.
# `benchmarks/bench_loop_parts.py` measures both. So a stage runs several
# steps per call only when it has enough steps.
_WRAP_MS, _WRAP_MS_PER_VARIABLE, _SAVED_MS_PER_STEP = 70.0, 7.0, 0.5


def _loop_compile_ms(model, validated):
    """What Keras's step loops cost `model` to compile, predicted: the
    train step's (it carries the weights and the optimizer's slots) and,
    with validation, the test step's (the weights)."""
    carried = len(model.weights) + 2 * len(model.trainable_weights)
    ms = _WRAP_MS + _WRAP_MS_PER_VARIABLE * carried
    if validated:
        ms += _WRAP_MS + _WRAP_MS_PER_VARIABLE * len(model.weights)
    return ms


_BATCH_HOOKS = (
    "on_batch_begin",
    "on_batch_end",
    "on_train_batch_begin",
    "on_train_batch_end",
    "on_test_batch_begin",
    "on_test_batch_end",
)


class StagedHistory(keras.callbacks.History):
    """One `History` for a whole run: continuous epochs, and per epoch the
    stage that trained it (`history.history["stage"]`).

    Attributes:
        stage_lrs: per stage, the starting learning rate of each trained
            group (`"head"` and the base groups' names).
        stage_values: per stage, the monitored validation value of the
            weights the stage ended with (after any rollback), or None.
            For `loss`/`val_loss`, without the model's regularization
            losses, which count only while a SavedModel trains.
        rollbacks: the stages that were rolled back, each a dict with
            `stage`, `name`, `value` (what the stage reached) and
            `reference` (what the stage before had).
        stopped_on_nan: whether a non-finite loss ended the run.
        stopped_by_callback: whether a callback given to the run (not a
            stage's) set `model.stop_training`, which ends the run after
            that stage (`EarlyStopping`, `TerminateOnNaN`...).
        best_epoch / best_value: the best monitored epoch of the run.
        auto_depth: with an `AutoPlan`, how many top groups stayed
            unfrozen in the kept stages (0: the head alone).
        lr_find: the `LRFindResult` when `fine_tune(base_lr="find")` ran.
    """

    def __init__(self):
        super().__init__()
        self.history = {"stage": []}
        self.epoch = []
        self.stage_lrs = []
        self.stage_values = []
        self.rollbacks = []
        self.stopped_on_nan = False
        self.stopped_by_callback = False
        self.best_epoch = None
        self.best_value = None
        self.auto_depth = None
        self.lr_find = None
        # (stage, key) -> the last value logged in that stage (a stage
        # whose epochs skipped validation, `validation_freq`, has none).
        self._last_logged = {}


class _Snapshot:
    """What a rollback restores: the weights (BatchNorm statistics
    included) and optimizer state at the end of the last kept stage."""

    def __init__(self, weights, optimizer_values, optimizer_stage, value):
        self.weights = weights
        self.optimizer_values = optimizer_values
        self.optimizer_stage = optimizer_stage
        self.value = value


class StagedFineTuner:
    """Runs a staged fine-tuning plan: per stage it sets trainability,
    builds a fresh optimizer (per-group learning rates), recompiles, and
    fits with continuous epoch numbering.

    Args:
        model: a Keras model, e.g. `Sequential([HubLayer(...), Dense(n)])`
            or a `keras.applications` backbone plus a head.
        stages: a list of `hk.finetune.Stage`, or an `hk.finetune.AutoPlan`
            (how deep to unfreeze is chosen from validation results).
        loss: the loss (as for `model.compile`); default: the loss the
            model was compiled with.
        metrics: metrics (as for `model.compile`); default: the metrics the
            model was compiled with, if `loss` is not given either.
        bn_policy: `"frozen"` (default): every `BatchNormalization` stays in
            inference mode with fixed statistics, and trainable `HubLayer`s
            call their SavedModel with `training=False` (the whole
            SavedModel's mode: its dropout is off too). `"train"`: batch
            norm layers train with their group; a SavedModel runs in
            training mode while any of its groups trains, and the moving
            statistics of its groups that are still frozen are held (put
            back before every validation, at every epoch end and at the end
            of the stage).
        base: the pretrained layers (default: every `HubLayer` and nested
            model); all other layers with weights form the head.
        monitor: the metric for early stopping, rollback and the best
            checkpoint (default `"val_loss"` with validation data, else
            `"loss"`).
        rollback: with validation data, a stage that ends worse on
            `monitor` than the stage before it is undone: weights, batch
            norm statistics, optimizer state and trainability go back to
            the end of the previous stage, bit for bit, and the run goes on
            with the next stage (`history.rollbacks` lists them). The first
            stage is never rolled back. Default True.
        steps_per_execution: training steps per compiled call. `"auto"`
            (default): per stage, several steps per call when the stage's
            steps save more than compiling Keras's step loop costs, the
            number of steps per epoch is known and no callback has
            per-batch hooks (results are the same as one step per call);
            else 1.
        checkpoint_path: where to keep the run's best weights
            (`.weights.h5`).
        backup_dir: where to write a resumable backup after each epoch and
            each stage. A run restarted with the same folder continues
            after the last completed epoch (stage, learning rate, weights
            and rollback state included).
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
        loss=None,
        metrics=None,
        bn_policy="frozen",
        base=None,
        monitor=None,
        rollback=True,
        steps_per_execution="auto",
        checkpoint_path=None,
        backup_dir=None,
        compile_kwargs=None,
    ):
        self.auto_plan = stages if isinstance(stages, AutoPlan) else None
        if self.auto_plan is None and not stages:
            raise errors.StagePlanError("A plan needs at least one Stage.")
        if bn_policy not in BN_POLICIES:
            raise errors.StagePlanError(
                f"bn_policy must be one of {BN_POLICIES}. Received: "
                f"{bn_policy!r}."
            )
        if steps_per_execution != "auto" and (
            not isinstance(steps_per_execution, int) or steps_per_execution < 1
        ):
            raise errors.StagePlanError(
                "steps_per_execution must be 'auto' or a positive int. "
                f"Received: {steps_per_execution!r}."
            )
        self.model = model
        self.stages = [] if self.auto_plan else list(stages)
        self.compile_kwargs = dict(compile_kwargs or {})
        self.loss, self.metrics = _loss_and_metrics(
            model, loss, metrics, self.compile_kwargs
        )
        self.bn_policy = bn_policy
        self.base = base
        self.monitor = monitor
        self.rollback = rollback
        self.steps_per_execution = steps_per_execution
        self.checkpoint_path = checkpoint_path
        self.backup_dir = backup_dir
        self._held = []
        self._outcomes = []
        self._optimizer_stage = None
        self._data_spec = None
        self._max_steps_per_execution = 1
        self._validation_steps = None

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
            validation_data: as for `model.fit`; turns on the rollback of
                stages that make the validation metric worse.
            batch_size: as for `model.fit`.
            steps_per_epoch: as for `model.fit` (also sizes schedules).
            callbacks: callbacks for every stage.
            verbose: as for `model.fit`.
            initial_epoch: start here (0-based, inside the plan), in the
                stage that holds this epoch (Hyperband continues promoted
                trials part-way). A backup to resume from takes precedence.
            **fit_kwargs: more `model.fit` arguments.

        Returns:
            A `StagedHistory`.

        Raises:
            StagePlanError: an `AutoPlan` without validation data, an
                `initial_epoch` outside the plan, or a backup written by
                another plan.
        """
        if batch_size is not None and not whole_number(batch_size, 1):
            raise errors.StagePlanError(
                "batch_size must be a positive int (or None for 32). "
                f"Received: batch_size={batch_size!r}."
            )
        callbacks = _run_callbacks(callbacks, fit_kwargs)
        self._check_initial_epoch(initial_epoch)
        split = fit_kwargs.get("validation_split") or 0.0
        validated = validation_data is not None or bool(split)
        monitor = self._monitor = self.monitor or (
            "val_loss" if validated else "loss"
        )
        if self.auto_plan is not None and not validated:
            raise errors.StagePlanError(
                "An AutoPlan chooses how deep to unfreeze from validation "
                "results. Received: validation_data=None. Pass "
                "validation_data=(x_val, y_val), or a list of Stages."
            )
        guarded = bool(
            self.rollback and validated and monitor.startswith("val_")
        )
        history = StagedHistory()
        guard = cb.NaNGuard()
        # The run's best epoch, kept in backups so a resumed run compares
        # with the epochs before the crash too.
        best = self._best = cb.BestWeights(monitor, self.checkpoint_path)
        steps = self._steps = steps_per_epoch or _steps_per_epoch(
            x, batch_size, split
        )
        validation_data = _validation_pipeline(
            validation_data, batch_size, fit_kwargs
        )
        # Evaluated with as many steps per call: 0 when unknown.
        self._validation_steps = (
            None
            if not validated
            else fit_kwargs.get("validation_steps")
            or _steps_per_epoch(
                x if split else validation_data,
                fit_kwargs.get("validation_batch_size") or batch_size,
                split,
                part="validation",
            )
            or 0
        )
        if steps_per_epoch is None:
            x, y, batch_size = _as_pipeline(x, y, batch_size, fit_kwargs)
        elif isinstance(x, tf.data.Dataset):
            # A dataset shuffles itself (see `_as_pipeline`).
            fit_kwargs.setdefault("shuffle", False)
        self._data_spec = (
            x.element_spec if isinstance(x, tf.data.Dataset) else None
        )
        self._max_steps_per_execution = self._choose_steps_per_execution(
            steps,
            callbacks,
            counts=(steps_per_epoch, fit_kwargs.get("validation_steps")),
        )
        self._outcomes = []
        self._monitor_warned = False
        if self.auto_plan is not None:
            self.stages = []  # made again from this run's outcomes
        start_stage, start_epoch, snapshot = self._resume(history, guarded)
        # Only a backup has optimizer state to resume; a run started at
        # `initial_epoch` (a Hyperband continuation) starts a fresh
        # optimizer, as `fit(initial_epoch=...)` does.
        from_backup = start_epoch > 0
        if not start_epoch and initial_epoch and self.auto_plan is None:
            start_stage, start_epoch = (
                self._stage_at(initial_epoch),
                initial_epoch,
            )
        first_epoch = sum(s.epochs for s in self.stages[:start_stage])
        index = start_stage
        total = (
            sum(s.epochs for s in self.stages)
            if self.auto_plan is None
            else None
        )
        run_wide = [cb.RunWide(c, total) for c in callbacks]
        stops = cb.RunStops(any(_has_batch_hooks(c) for c in callbacks))
        for stage in self.stages:  # an AutoPlan's are checked as made
            _check_stage_callbacks(stage, callbacks)
        # A resumed run that a callback had stopped has nothing left to do.
        while (
            not history.stopped_by_callback
            and (stage := self._stage(index)) is not None
        ):
            if self.auto_plan is not None:
                _check_stage_callbacks(stage, callbacks)
            end_epoch = first_epoch + stage.epochs
            resumed = index == start_stage and start_epoch > first_epoch
            if guarded and index > 0 and snapshot is None and not resumed:
                snapshot = self._snapshot(
                    history.stage_values[-1] if history.stage_values else None
                )
            self._prepare_stage(
                index, stage, steps, history, resumed and from_backup
            )
            early = _early_stopping(stage, monitor)
            logger.info(
                "Stage %d%s: %s",
                index + 1,
                f"/{len(self.stages)}" if self.auto_plan is None else "",
                _describe(stage),
            )
            self._fit(
                x,
                y,
                validation_data=validation_data,
                batch_size=batch_size,
                steps_per_epoch=steps_per_epoch,
                initial_epoch=max(start_epoch, first_epoch),
                epochs=end_epoch,
                callbacks=self._stage_callbacks(
                    index,
                    stage,
                    history,
                    guard,
                    best,
                    run_wide,
                    early,
                    stops,
                ),
                verbose=verbose,
                **fit_kwargs,
            )
            self._close_stage(index, early, guarded, snapshot, guard, history)
            first_epoch, snapshot = end_epoch, None
            if guard.stopped:
                history.stopped_on_nan = True
                break
            history.stopped_by_callback = stops.requested
            if self.backup_dir:
                self._write_stage_end(index, end_epoch, history)
            if stops.requested:
                logger.info(
                    "Stage %d: a callback stopped training; the remaining "
                    "stages are skipped.",
                    index + 1,
                )
                break
            index += 1
        for callback in run_wide:
            callback.finish()
        history.best_epoch, history.best_value = best.best_epoch, best.best
        if self.auto_plan is not None:
            history.auto_depth = self.auto_plan.chosen_depth(
                self.stages, self._outcomes
            )
        history.set_model(self.model)
        return history

    def _check_initial_epoch(self, initial_epoch):
        """`fit` trains nothing, silently, from an `initial_epoch` at or
        past its end; a plan refuses one it cannot start from."""
        if not whole_number(initial_epoch):
            raise errors.StagePlanError(
                "initial_epoch must be an int >= 0 (the 0-based epoch to "
                f"start at). Received: initial_epoch={initial_epoch!r}."
            )
        if not initial_epoch:
            return
        if self.auto_plan is not None:
            raise errors.StagePlanError(
                "An AutoPlan makes its stages from this run's validation "
                "results, so it cannot start part-way. Received: "
                f"initial_epoch={initial_epoch}. Pass backup_dir=... to "
                "resume an interrupted run, or a list of Stages."
            )
        total = sum(s.epochs for s in self.stages)
        if initial_epoch >= total:
            raise errors.StagePlanError(
                f"initial_epoch must be inside the plan's {total} epochs "
                f"(0 to {total - 1}); from there nothing would train. "
                f"Received: initial_epoch={initial_epoch}. Pass a smaller "
                "initial_epoch, or add epochs to the stages."
            )

    def _close_stage(self, index, early, guarded, snapshot, guard, history):
        """Keeps stage `index`, or (guarded) rolls it back when it ended
        worse than the stage before or on a NaN; records the outcome."""
        monitor = self._monitor
        value = _without_regularization(
            self.model, _end_value(early, history, index, monitor), monitor
        )
        logged = [k for k in history.history if k != "stage"]
        if value is None and not guard.stopped and monitor not in logged:
            if not self._monitor_warned:
                logger.warning(
                    "monitor=%r is not among the logged metrics %s: best "
                    "weights, checkpoint_path, early stopping and rollback "
                    "have nothing to compare. Pass monitor= one of them "
                    "(validation metrics need validation data).",
                    monitor,
                    logged,
                )
            self._monitor_warned = True
        elif guarded and value is None and not guard.stopped:
            logger.warning(
                "Stage %d logged no %s (validation_freq skipped its "
                "epochs): kept without comparing it with the stage before.",
                index + 1,
                monitor,
            )
        kept = not (
            guarded
            and snapshot is not None
            and (guard.stopped or _worse(value, snapshot.value, monitor))
        )
        if not kept:
            self._roll_back(index, snapshot, value, history)
            value = snapshot.value
        history.stage_values.append(value if guarded else None)
        self._outcomes.append(kept)

    def _fit(self, x, y, *, callbacks, verbose, **kwargs):
        if _multi_worker.is_multi_worker(self.model.distribute_strategy):
            _multi_worker.fit(
                self.model,
                x,
                initial_epoch=kwargs["initial_epoch"],
                epochs=kwargs["epochs"],
                callbacks=callbacks,
                validation_data=kwargs["validation_data"],
                verbose=0 if verbose == "auto" else verbose,
            )
        else:
            self.model.fit(x, y, callbacks=callbacks, verbose=verbose, **kwargs)

    def _stage(self, index):
        """Stage `index` of the plan (an `AutoPlan` makes it on demand from
        the outcomes so far); None after the last one."""
        if self.auto_plan is None:
            return self.stages[index] if index < len(self.stages) else None
        while len(self.stages) <= index:
            n_groups = len(grouping.base_groups(self.model, self.base))
            stage = self.auto_plan.next_stage(
                self.stages, self._outcomes, n_groups
            )
            if stage is None:
                return None
            self.stages.append(stage)
        return self.stages[index]

    def _choose_steps_per_execution(self, steps, callbacks, counts=()):
        """The given steps per call, or with `"auto"` the most a stage may
        run per call (each stage then decides, `_stage_steps_per_execution`).
        `counts`: step counts given to `fit` (`steps_per_epoch`,
        `validation_steps`), which the automatic choice must divide.
        """
        if "steps_per_execution" in self.compile_kwargs:
            return self.compile_kwargs["steps_per_execution"]
        if self.steps_per_execution != "auto":
            return self.steps_per_execution
        if not steps:
            return 1
        found = list(callbacks or []) + [
            c for s in self.stages for c in s.callbacks
        ]
        hooked = [c for c in found if _has_batch_hooks(c)]
        if hooked:
            logger.debug(
                "One step per call: %s run per-batch hooks.",
                [type(c).__name__ for c in hooked],
            )
            return 1
        most = min(steps, AUTO_STEPS_PER_EXECUTION)
        # Keras 3.15 runs whole calls: with `steps_per_epoch=100` and 32
        # steps per call it trains 128 steps an epoch (of a repeated
        # dataset), and evaluates all the data whatever `validation_steps`.
        given = math.gcd(*(int(c) for c in counts if c)) or most
        return max(k for k in range(1, most + 1) if given % k == 0)

    def _stage_steps_per_execution(self, stage, steps):
        """Steps per call for one stage: with `"auto"`, several only when
        the stage's steps save more per-call cost than wrapping the step in
        a loop costs once (see `_WRAP_MS`); trainability is already set."""
        most = self._max_steps_per_execution
        explicit = "steps_per_execution" in self.compile_kwargs
        if most == 1 or explicit or self.steps_per_execution != "auto":
            return most
        validated = self._validation_steps is not None
        saved_steps = (steps + (self._validation_steps or 0)) * stage.epochs
        wrap_ms = _loop_compile_ms(self.model, validated)
        if saved_steps * _SAVED_MS_PER_STEP < wrap_ms:
            logger.debug(
                "One step per call: %d steps save less than the %.0f ms "
                "that several steps per call cost to compile.",
                saved_steps,
                wrap_ms,
            )
            return 1
        return most

    # -------------------------------------------------------- trainability
    def _prepare_stage(self, index, stage, steps, history, resume_optimizer):
        groups = grouping.base_groups(self.model, self.base)
        chosen = grouping.select(groups, stage.unfreeze)
        self._set_trainable(chosen)
        rates = self._group_rates(stage, chosen)
        if history is not None:
            history.stage_lrs.append({k: _start(v) for k, v in rates.items()})
        total = steps * stage.epochs if steps else None
        kwargs = dict(self.compile_kwargs)
        kwargs["steps_per_execution"] = self._stage_steps_per_execution(
            stage, steps
        )
        with self.model.distribute_strategy.scope():
            # Keras optimizers bind to the strategy active at creation.
            optimizer = self._optimizer(stage, chosen, rates, total)
            self.model.compile(
                optimizer=optimizer,
                loss=self.loss,
                metrics=self.metrics,
                **kwargs,
            )
            _build_for_fit(self.model, self._data_spec)
        if self.model.train_function is None:  # not kept from a trial
            _compat.lean_step_functions(self.model)
        self._optimizer_stage = index
        if resume_optimizer:
            self._assign_optimizer(
                cb.load_optimizer_values(
                    self._backup_folder(), self._state_read
                )
            )

    def _set_trainable(self, chosen):
        base = (
            self.base
            if self.base is not None
            else grouping.base_layers(self.model)
        )
        chosen_ids = {id(v) for g in chosen for v in g.variables}
        chosen_layers = {id(g.layer) for g in chosen}
        self._held = []
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
            for layer in _compat.all_layers(self.model):
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
        if not layer.inference_only:
            # One training flag for the whole SavedModel: its frozen groups'
            # statistics move too, so they are held (see HoldVariables).
            self._held += [v for v in layer.weights if id(v) not in chosen_ids]

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
        for key, lr in (stage.group_lrs or {}).items():
            matched = _match_groups(key, rates)
            if not matched:
                raise errors.StagePlanError(
                    f"group_lrs keys name whole trained groups (or are "
                    f"regular expressions: re.compile(...) or 're:...'). "
                    f"Received: {key!r}, which matches none of {list(rates)}."
                    " Use one of these names."
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

    def _assign_optimizer(self, values):
        optimizer = self.model.optimizer
        with self.model.distribute_strategy.scope():
            optimizer.build(self.model.trainable_variables)
        if values is not None and len(values) == len(optimizer.variables):
            for variable, value in zip(optimizer.variables, values):
                variable.assign(value)

    # ------------------------------------------------------------ rollback
    def _snapshot(self, value):
        optimizer = getattr(self.model, "optimizer", None)
        return _Snapshot(
            self.model.get_weights(),
            [v.numpy() for v in optimizer.variables] if optimizer else None,
            self._optimizer_stage,
            value,
        )

    def _roll_back(self, index, snapshot, value, history):
        self.model.set_weights(snapshot.weights)
        stage = self.stages[index]
        previous = snapshot.optimizer_stage
        if previous is not None:
            self._prepare_stage(
                previous, self.stages[previous], self._steps, None, False
            )
            self._assign_optimizer(snapshot.optimizer_values)
        history.rollbacks.append(
            {
                "stage": index,
                "name": stage.name,
                "value": value,
                "reference": snapshot.value,
            }
        )
        logger.warning(
            "Stage %d (%s) ended with %s %s, worse than %s after the stage "
            "before it: rolled back to the weights, statistics and optimizer "
            "state the stage started from.",
            index + 1,
            stage.name or _describe(stage),
            self._monitor,
            _short(value),
            _short(snapshot.value),
        )

    # ------------------------------------------------------------ callbacks
    def _stage_callbacks(
        self, index, stage, history, guard, best, extra, early, stops
    ):
        found = [guard, best]
        if self._held:
            # First, so that every later callback sees the held values.
            found.insert(0, cb.HoldVariables(self._held))
        # The recorder after the user's callbacks, as Keras's `History`:
        # it keeps what they add to the logs (`ReduceLROnPlateau`'s
        # `learning_rate`); before `Backup`, which saves the history.
        # `stops` brackets the run's callbacks, to tell their stop (the
        # run's end) from a stage's (that stage's end).
        found += [
            stops.opening,
            *(extra or []),
            stops.closing,
            *stage.callbacks,
            _Recorder(history, index),
        ]
        if early is not None:
            found.append(early)
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

    def _state(self, epoch, stage, history):
        """The run's position: `stage` is the stage to (re-)enter."""
        return {
            "completed_epochs": epoch + 1,
            "stage": stage,
            "plan": [s.to_dict() for s in self.stages],
            "auto": self.auto_plan.to_dict() if self.auto_plan else None,
            "history": history.history,
            "epoch": history.epoch,
            "stage_lrs": history.stage_lrs,
            "stage_values": history.stage_values,
            "stopped_by_callback": history.stopped_by_callback,
            "best": [self._best.best_epoch, self._best.best],
            "rollbacks": history.rollbacks,
            "outcomes": self._outcomes,
            "snapshot": self._snapshot_named,
        }

    def _write_stage_end(self, index, end_epoch, history):
        """After a stage (early stopping and rollback done): the backup says
        the stage is finished, and keeps the state a rollback of the next
        stage returns to."""
        folder = self._backup_folder()
        snapshot = {
            "index": index,
            "optimizer_stage": self._optimizer_stage,
            "value": history.stage_values[-1],
            "files": cb.save_snapshot_files(self.model, folder),
        }
        state = self._state(end_epoch - 1, index + 1, history)
        cb.save_backup(self.model, folder, {**state, "snapshot": snapshot})
        # Named by every later backup, until the next stage's end.
        self._snapshot_named = snapshot

    def _resume(self, history, guarded):
        self._state_read = self._snapshot_named = None
        if not self.backup_dir:
            return 0, 0, None
        folder = self._backup_folder()
        state_file = cb.state_path(folder)
        if not os.path.exists(state_file):
            return 0, 0, None
        with open(state_file) as f:
            state = json.load(f)
        stage = state["stage"]
        self._outcomes = list(state.get("outcomes", []))[:stage]
        self._check_plan(state)
        # Backups of 0.1 kept the snapshot's description in a file of its own.
        self._snapshot_named = state.get("snapshot") or cb.load_snapshot_meta(
            folder
        )
        snapshot = None
        if guarded and stage > 0:
            snapshot = self._load_snapshot(folder, stage - 1)
        self.model.load_weights(cb.weights_path(folder, state))
        self._state_read = state
        done = state["completed_epochs"]
        history.history = state["history"]
        history.epoch = list(state.get("epoch", range(done)))
        history.stage_lrs = state["stage_lrs"][:stage]
        history.stage_values = list(state.get("stage_values", []))[:stage]
        history.rollbacks = [
            r for r in state.get("rollbacks", []) if r["stage"] < stage
        ]
        history.stopped_by_callback = state.get("stopped_by_callback", False)
        self._best.best_epoch, self._best.best = state.get("best", [None] * 2)
        for key, series in history.history.items():
            for value, index in zip(series, history.history["stage"]):
                if key != "stage" and not math.isnan(value):
                    history._last_logged[index, key] = value
        finished = self.auto_plan is None and stage >= len(self.stages)
        if history.stopped_by_callback or finished:
            logger.warning(
                "%r holds a run that %s after epoch %d: nothing is left to "
                "train, and the model has its weights. To train again, "
                "delete the folder or pass another backup_dir.",
                self.backup_dir,
                "a callback stopped"
                if history.stopped_by_callback
                else "ended",
                done,
            )
        else:
            logger.info("Resuming after epoch %d (stage %d).", done, stage + 1)
        return stage, done, snapshot

    def _check_plan(self, state):
        refused = errors.StagePlanError(
            f"The backup in {self.backup_dir!r} was written by another "
            "plan. Use a new backup_dir, or delete this one to start over."
        )
        if self.auto_plan is None:
            if state["plan"] != _as_json([s.to_dict() for s in self.stages]):
                raise refused
            return
        if state.get("auto") != _as_json(self.auto_plan.to_dict()):
            raise refused
        for i, saved in enumerate(state["plan"]):
            # Replays the plan's choices from the saved outcomes.
            made = self._stage(i)
            if made is None or _as_json(made.to_dict()) != saved:
                raise refused

    def _load_snapshot(self, folder, index):
        meta = self._snapshot_named
        if meta is None or meta["index"] != index:
            return None
        self.model.load_weights(cb.snapshot_weights_path(folder, meta))
        return _Snapshot(
            self.model.get_weights(),
            cb.load_optimizer_values(folder, meta, cb.SNAPSHOT),
            meta["optimizer_stage"],
            meta["value"],
        )

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
        stage = self._stage(index) if index >= 0 else self.stages[index]
        groups = grouping.base_groups(self.model, self.base)
        self._set_trainable(grouping.select(groups, stage.unfreeze))


def fine_tune(
    model,
    x=None,
    y=None,
    *,
    epochs=3,
    loss=None,
    metrics=None,
    base_lr=2e-3,
    freeze_epochs=1,
    lr_mult=100,
    plan="fastai",
    validation_data=None,
    batch_size=None,
    callbacks=None,
    verbose="auto",
    rollback=True,
    **kwargs,
):
    """Fine-tunes with fastai's defaults, for users who do not want a plan.

    `plan="fastai"` (default): stage 1 trains the head for `freeze_epochs`
    with a one-cycle rate peaking at `base_lr`; stage 2 unfreezes everything
    for `epochs` with rates spread geometrically from
    `base_lr / 2 / lr_mult` (lowest group) to `base_lr / 2` (head),
    one-cycle (`div=5`, `pct_start=0.3`). `plan="auto"`: an `AutoPlan`
    with a budget of `freeze_epochs + epochs` epochs chooses how deep to
    unfreeze from validation results. BatchNorm statistics stay frozen.
    With validation data, a stage that makes the validation metric worse
    is rolled back (`rollback=False` turns this off).

    Args:
        model: a Keras model with a pretrained base (`HubLayer`...).
        x: training data, as for `model.fit`.
        y: targets, as for `model.fit`.
        epochs: epochs of the unfrozen stage (or the rest of the budget).
        loss: as for `model.compile`; default: the compiled model's.
        metrics: as for `model.compile`; default: the compiled model's.
        base_lr: the head's peak rate in stage 1, or `"find"`: the
            suggestion of `hk.finetune.lr_find` run on the head-only stage
            (the result is `history.lr_find`).
        freeze_epochs: epochs of the head-only stage.
        lr_mult: the ratio between the head's and the lowest group's rate.
        plan: `"fastai"` or `"auto"` (needs `validation_data`).
        validation_data: as for `model.fit`.
        batch_size: as for `model.fit`.
        callbacks: Keras callbacks for every stage.
        verbose: as for `model.fit`.
        rollback: undo stages that end worse on validation.
        **kwargs: more `StagedFineTuner` arguments (`bn_policy`,
            `backup_dir`, ...) and `model.fit` arguments (`shuffle`,
            `sample_weight`, `class_weight`, ...), each passed where it
            belongs.

    Returns:
        A `StagedHistory`.

    Example:

    ```python
    history = hk.finetune.fine_tune(model, x, y, epochs=3,
                                    loss="sparse_categorical_crossentropy")
    ```
    """
    if plan not in ("fastai", "auto"):
        raise errors.StagePlanError(
            f"plan must be 'fastai' or 'auto'. Received: plan={plan!r}."
        )
    found = None
    if base_lr == "find":
        found = _find_base_lr(
            model, x, y, loss, batch_size or 32, kwargs.get("base")
        )
        base_lr = found.suggestion
    elif not positive_number(base_lr):
        raise errors.StagePlanError(
            "base_lr must be a positive number or 'find'. Received: "
            f"base_lr={base_lr!r}."
        )
    if not positive_number(lr_mult):
        raise errors.StagePlanError(
            "lr_mult (the head's rate over the lowest group's) must be a "
            f"positive number, e.g. 100. Received: lr_mult={lr_mult!r}."
        )
    if plan == "auto":
        stages = AutoPlan(
            epochs=freeze_epochs + epochs,
            head_epochs=freeze_epochs,
            lr=base_lr,
            lr_mult=lr_mult,
        )
    else:
        stages = _fastai_plan(epochs, base_lr, freeze_epochs, lr_mult)
    runner_args = inspect.signature(StagedFineTuner).parameters
    runner = StagedFineTuner(
        model,
        stages,
        loss=loss,
        metrics=metrics,
        rollback=rollback,
        **{k: v for k, v in kwargs.items() if k in runner_args},
    )
    history = runner.run(
        x,
        y,
        validation_data=validation_data,
        batch_size=batch_size,
        callbacks=callbacks,
        verbose=verbose,
        **{k: v for k, v in kwargs.items() if k not in runner_args},
    )
    history.lr_find = found
    return history


def _fastai_plan(epochs, base_lr, freeze_epochs, lr_mult):
    from keras_hubkit.finetune.stage import Stage

    def head_cycle(lr, n):
        return schedules.one_cycle(lr, _known_steps(n), pct_start=0.99)

    def body_cycle(lr, n):
        return schedules.one_cycle(lr, _known_steps(n), div=5.0, pct_start=0.3)

    half = base_lr / 2
    return [
        Stage(freeze_epochs, "head", base_lr, head_cycle, name="head"),
        Stage(
            epochs,
            "all",
            half,
            body_cycle,
            lr_range=(half / lr_mult, half),
            name="all",
        ),
    ]


def _known_steps(total_steps):
    if total_steps is None:
        raise errors.StagePlanError(
            "fine_tune's one-cycle rates need the number of steps, and the "
            "data's length is unknown (a dataset after filter(), a "
            "generator). Received: steps_per_epoch=None. Pass "
            "steps_per_epoch=... to fine_tune."
        )
    return total_steps


def _find_base_lr(model, x, y, loss, batch_size, base):
    """lr_find on the head-only stage's trainability."""
    from keras_hubkit.finetune import lr_finder
    from keras_hubkit.finetune.stage import Stage

    result, _ = lr_finder.find_for_plan(
        model, x, y, [Stage(1)], loss=loss, batch_size=batch_size, base=base
    )
    logger.info("lr_find suggests base_lr=%.3g.", result.suggestion)
    return result


class _Recorder(keras.callbacks.Callback):
    """Merges each epoch's logs into the run's history."""

    def __init__(self, history, stage):
        super().__init__()
        self.history, self.stage = history, stage

    def on_epoch_end(self, epoch, logs=None):
        self.history.epoch.append(epoch)
        self.history.history["stage"].append(self.stage)
        # Epochs without a key (before a later stage's metric appeared, or
        # that skipped validation) get NaN, so every series lines up with
        # `epoch` and `stage`.
        epochs = len(self.history.epoch)
        for key, value in (logs or {}).items():
            series = self.history.history.setdefault(key, [])
            series += [float("nan")] * (epochs - 1 - len(series))
            series.append(float(value))
            self.history._last_logged[self.stage, key] = float(value)
        for series in self.history.history.values():
            series += [float("nan")] * (epochs - len(series))


def _loss_and_metrics(model, loss, metrics, compile_kwargs):
    """`loss`/`metrics`, or those the model was compiled with."""
    if loss is not None:
        return loss, metrics
    if not getattr(model, "compiled", False) or model.loss is None:
        raise errors.StagePlanError(
            "Fine-tuning needs a loss. Received: loss=None and a model that "
            "was not compiled with one. Pass loss=..., or compile the model "
            "first."
        )
    config = model.get_compile_config() or {}
    for key in ("loss_weights", "weighted_metrics", "jit_compile"):
        if config.get(key) is not None:
            compile_kwargs.setdefault(key, _deserialize_metrics(config[key]))
    if metrics is None:
        metrics = _deserialize_metrics(config.get("metrics"))
    return model.loss, metrics


def _deserialize_metrics(value):
    if isinstance(value, dict) and "class_name" in value:
        return keras.metrics.deserialize(value)
    if isinstance(value, (list, tuple)):
        return [_deserialize_metrics(v) for v in value]
    if isinstance(value, dict):
        return {k: _deserialize_metrics(v) for k, v in value.items()}
    return value


def _early_stopping(stage, monitor):
    if stage.early_stopping is None:
        return None
    return keras.callbacks.EarlyStopping(
        monitor=monitor,
        patience=stage.early_stopping,
        restore_best_weights=True,
    )


def _end_value(early, history, index, monitor):
    """The monitored value of the weights stage `index` ended with."""
    if early is not None and early.best_weights is not None:
        return float(early.best)
    return history._last_logged.get((index, monitor))


def _without_regularization(model, value, monitor):
    """The total loss `monitor` (`loss`, `val_loss`) less the model's
    regularization losses at the weights the stage ended with.

    Keras adds `model.losses` to both. A SavedModel's regularization
    counts only while it trains (frozen, `HubLayer` gives zeros), so the
    stage that unfreezes it would compare a data loss plus a penalty with
    the frozen stage's data loss alone, and look worse even when its
    predictions are better. Stages are compared on what they predict.
    """
    if value is None or monitor not in ("loss", "val_loss"):
        return value
    penalty = sum(float(loss) for loss in model.losses)
    return value - penalty


def _short(value):
    """A monitored value as a log line shows it."""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _worse(value, reference, monitor):
    if reference is None or not math.isfinite(reference) or value is None:
        return False  # nothing to compare
    if not math.isfinite(value):
        return True
    # Equal up to float32 rounding (a loss less its penalty) is not worse.
    slack = 1e-6 * max(1.0, abs(reference))
    if cb.minimize(monitor):
        return value > reference + slack
    return value < reference - slack


def _match_groups(key, rates):
    """Group names a `group_lrs` key selects: the whole name, or a regular
    expression when asked for (`re.compile(...)`, or a `"re:"` prefix)."""
    if isinstance(key, str) and key.startswith("re:"):
        key = re.compile(key[3:])
    if isinstance(key, re.Pattern):
        return [name for name in rates if key.fullmatch(name)]
    return [key] if key in rates else []


def _run_callbacks(callbacks, fit_kwargs):
    """The run's callbacks as a list (`fit` takes one callback too), after
    refusing what the run cannot honour."""
    if "epochs" in fit_kwargs:
        raise errors.StagePlanError(
            "A staged run's epochs come from its stages (Stage(epochs=...), "
            f"or fine_tune's epochs). Received: epochs={fit_kwargs['epochs']!r}"
            " in run(). Remove it, or change the stages."
        )
    if isinstance(callbacks, keras.callbacks.Callback):
        callbacks = [callbacks]
    if isinstance(callbacks, (str, bytes)) or not (
        callbacks is None or isinstance(callbacks, (list, tuple))
    ):
        raise errors.StagePlanError(
            "callbacks must be a keras.callbacks.Callback or a list of them. "
            f"Received: callbacks={callbacks!r}."
        )
    callbacks = list(callbacks or [])
    _check_callbacks(callbacks, "callbacks")
    return callbacks


def _check_callbacks(callbacks, where):
    """Refuses what is not a Keras callback, and callbacks the staged run
    cannot honour (the run's, `where="callbacks"`, or a stage's)."""
    for callback in callbacks:
        if not isinstance(callback, keras.callbacks.Callback):
            raise errors.StagePlanError(
                f"Each of {where} must be a keras.callbacks.Callback "
                f"(subclass it, or use keras.callbacks.LambdaCallback). "
                f"Received: {callback!r}."
            )
        if isinstance(callback, keras.callbacks.BackupAndRestore):
            raise errors.StagePlanError(
                "keras.callbacks.BackupAndRestore restores one fit's epoch; "
                "a staged run is several fits, each with its own optimizer, "
                "and it would resume the wrong stage. Received: "
                f"{callback!r} in {where}. Pass backup_dir=... to the "
                "runner (or fine_tune) instead: it resumes the run's stage, "
                "epoch and optimizer."
            )


# Callbacks that set the optimizer's learning rate while training.
_RATE_CALLBACKS = (
    keras.callbacks.ReduceLROnPlateau,
    keras.callbacks.LearningRateScheduler,
)


def _check_stage_callbacks(stage, run_callbacks):
    """Refuses a stage's callbacks the run cannot honour, and a callback
    that sets the learning rate in a stage whose rate is a schedule: Keras
    refuses to set a scheduled rate, mid-run."""
    _check_callbacks(stage.callbacks, "Stage.callbacks")
    scheduled = stage.schedule != "constant" or isinstance(
        stage.lr, keras.optimizers.schedules.LearningRateSchedule
    )
    setters = [
        c
        for c in [*run_callbacks, *stage.callbacks]
        if isinstance(c, _RATE_CALLBACKS)
    ]
    if scheduled and setters:
        raise errors.StagePlanError(
            f"{type(setters[0]).__name__} sets the learning rate, but stage "
            f"{stage.name or stage.to_dict()['unfreeze']!r} follows a "
            f"schedule (schedule={stage.to_dict()['schedule']!r}; "
            "fine_tune's stages are one-cycle), and Keras cannot set a "
            "scheduled rate. Use Stage(schedule='constant') with a float lr "
            "for the stages this callback adjusts, or leave the callback "
            "out."
        )


def _has_batch_hooks(callback):
    """Whether a callback overrides a per-batch hook (it would be called
    less often with several steps per execution), in its class or, as
    `keras.callbacks.LambdaCallback` does, on the instance."""
    return any(
        hook in vars(callback)
        or getattr(type(callback), hook, None)
        is not getattr(keras.callbacks.Callback, hook)
        for hook in _BATCH_HOOKS
    )


def _set_nested(model, chosen_layers):
    model.trainable = True
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            _set_nested(layer, chosen_layers)
        else:
            layer.trainable = id(layer) in chosen_layers


def _as_pipeline(x, y, batch_size, fit_kwargs):
    """In-memory arrays as a prefetched `tf.data` pipeline (see
    `_pipeline`); `fit_kwargs` loses the arguments the pipeline took over.
    Arguments only Keras's own adapter handles keep the arrays as given."""
    if isinstance(x, tf.data.Dataset):
        # A dataset shuffles itself; Keras would warn that `fit`'s default
        # `shuffle=True` is ignored.
        fit_kwargs.setdefault("shuffle", False)
        return x, y, batch_size
    shuffle = fit_kwargs.get("shuffle", True)
    if not isinstance(shuffle, (bool, np.bool_)) and shuffle != "batch":
        raise errors.StagePlanError(
            "shuffle must be True, False or 'batch' (as for model.fit). "
            f"Received: shuffle={shuffle!r}."
        )
    if fit_kwargs.get("validation_split") or shuffle == "batch":
        return x, y, batch_size
    dataset = _pipeline.as_dataset(
        x,
        y,
        fit_kwargs.get("sample_weight"),
        batch_size=batch_size,
        shuffle=shuffle,
    )
    if dataset is None:
        return x, y, batch_size
    fit_kwargs.pop("sample_weight", None)
    # The pipeline shuffles; Keras would warn that it cannot.
    fit_kwargs["shuffle"] = False
    return dataset, None, None


def _validation_pipeline(data, batch_size, fit_kwargs):
    """Validation arrays `(x, y[, sample_weight])` as an unshuffled
    pipeline too: Keras's own adapter builds a dataset of its own for every
    `fit` (every stage, every search trial) and is slower to start every
    epoch (`benchmarks/bench_loop_parts.py`). `fit_kwargs` loses
    `validation_batch_size` when it is used here."""
    if not isinstance(data, (tuple, list)) or len(data) not in (2, 3):
        return data
    dataset = _pipeline.as_dataset(
        *data,
        batch_size=fit_kwargs.get("validation_batch_size") or batch_size,
        shuffle=False,
    )
    if dataset is None:
        return data
    fit_kwargs.pop("validation_batch_size", None)
    return dataset


def _build_for_fit(model, data_spec):
    """Creates the optimizer's and metrics' variables before `fit` traces
    its step: made inside the first trace, they make TensorFlow trace the
    whole train step twice. Needs the specs of a batch (`data_spec`); an
    input without them (a generator, a `PyDataset`) keeps Keras's way."""
    if data_spec is None:
        return
    try:
        _compat.build_for_fit(model, data_spec)
    except Exception as e:  # `fit` builds it again and reports the error
        logger.debug("Not built before fit (fit will build it): %s", e)


def _steps_per_epoch(x, batch_size, split=0.0, part="training"):
    """Batches an epoch of `x` has; with a `validation_split`, of its
    `part` ("training" or "validation"), cut where Keras cuts it."""
    if isinstance(x, tf.data.Dataset):
        n = int(x.cardinality())
        return n if n > 0 else None
    if isinstance(x, keras.utils.PyDataset):
        try:
            return len(x)
        except TypeError:
            return None
    first = tf.nest.flatten(x)[0] if x is not None else None
    if first is None or not hasattr(first, "shape"):
        return None
    n = int(first.shape[0])
    if split:
        training = math.floor(n * (1.0 - split))  # where `fit` splits
        n = training if part == "training" else n - training
    return math.ceil(n / (batch_size or 32))


def _as_json(data):
    """`data` as the backup's JSON reads it back (tuples become lists:
    `lr_range`, and `fine_tune`'s plans)."""
    return json.loads(json.dumps(data))


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
