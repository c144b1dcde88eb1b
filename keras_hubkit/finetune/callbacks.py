"""Run-level callbacks of the staged runner: NaN guard, held statistics,
best weights, atomic resumable backups, and what makes the user's
callbacks see the run as one `fit` (`RunWide`, `RunStops`). None of them
adds per-batch work of its own beyond a flag check, so the runner can run
several steps per compiled call."""

import glob
import json
import logging
import math
import os
import uuid

import keras
import numpy as np

logger = logging.getLogger(__name__)

# File-name prefixes: the last epoch's backup, and the state a rollback of
# the next stage returns to.
BACKUP, SNAPSHOT = "backup", "stage_end"
# What backups of 0.1 wrote, under fixed names.
_LEGACY_NAMES = (
    "backup.weights.h5",
    "optimizer.npz",
    f"{SNAPSHOT}.weights.h5",
    f"{SNAPSHOT}_optimizer.npz",
    f"{SNAPSHOT}.json",
)


class NaNGuard(keras.callbacks.Callback):
    """Stops on a non-finite loss and puts back the last good weights.

    Good weights are the weights at the end of the last finite epoch (or at
    the start of the run). The epoch's mean loss is checked at its end: one
    non-finite step makes it non-finite. The flag `stopped` tells the runner
    to skip the remaining stages.
    """

    def __init__(self):
        super().__init__()
        self.stopped = False
        self._good = None
        self._good_epoch = None

    def snapshot(self, epoch=None):
        self._good = self.model.get_weights()
        self._good_epoch = epoch

    def on_train_begin(self, logs=None):
        if self._good is None:
            self.snapshot()

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.stopped = True
            self.model.stop_training = True
            self.model.set_weights(self._good)
            logger.warning(
                "Stopped at epoch %d: the loss became NaN or infinite. Kept "
                "the weights %s.",
                epoch + 1,
                "the run started with"
                if self._good_epoch is None
                else f"of epoch {self._good_epoch + 1}, the last good one",
            )
        else:
            self.snapshot(epoch)


class HoldVariables(keras.callbacks.Callback):
    """Keeps variables at their values from the start of training.

    For the statistics of a SavedModel's frozen groups when the SavedModel
    runs in training mode (it has one `training` flag): training steps
    normalize with batch statistics and do not read the moving averages,
    so putting them back before every validation, at every epoch end and at
    the end of training makes evaluation, predictions, backups and saved
    weights see the values the stage started with.
    """

    def __init__(self, variables):
        super().__init__()
        self.variables = list(variables)
        self._values = None

    def on_train_begin(self, logs=None):
        self._values = [v.numpy() for v in self.variables]

    def _restore(self, *args, **kwargs):
        for variable, value in zip(self.variables, self._values or []):
            variable.assign(value)

    on_test_begin = _restore
    on_epoch_end = _restore
    on_train_end = _restore


class BestWeights(keras.callbacks.Callback):
    """Tracks the best epoch of the whole run (across stages) and saves its
    weights.

    Args:
        monitor: the metric to watch.
        path: where to save the best weights (`.weights.h5`), atomically;
            None keeps them in memory only.
    """

    def __init__(self, monitor, path=None):
        super().__init__()
        self.monitor = monitor
        self.path = path
        self.best = None
        self.best_epoch = None
        self._sign = 1.0 if minimize(monitor) else -1.0
        if path:
            remove_temporaries(path)

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not math.isfinite(float(value)):
            return
        if self.best is None or self._sign * value < self._sign * self.best:
            self.best, self.best_epoch = float(value), epoch
            if self.path:
                atomic_save_weights(self.model, self.path)


_HOOKS = tuple(
    f"on_{kind}_{moment}"
    for kind in ("epoch", "batch", "train_batch", "test", "test_batch")
    for moment in ("begin", "end")
) + tuple(
    f"on_predict{part}_{moment}"
    for part in ("", "_batch")
    for moment in ("begin", "end")
)


class RunWide(keras.callbacks.Callback):
    """A callback given to the run, shown the run as one `fit`.

    Every stage is a `fit` of its own, and Keras callbacks start afresh in
    `on_train_begin` and finish in `on_train_end`. Wrapped, a callback's
    `on_train_begin` runs at the first stage only and its `on_train_end`
    once, in `finish` at the end of the run, so what it keeps between the
    two spans the stages: an `EarlyStopping`'s patience and best weights
    (restored at the end of the run), a `CSVLogger`'s file, a
    `TensorBoard` writer. Its other hooks are its own methods, so Keras
    sees which per-batch hooks it has.
    """

    def __init__(self, callback, epochs=None):
        super().__init__()
        self.callback = callback
        self.epochs = epochs  # the run's, when the plan knows it
        self.async_safe = getattr(callback, "async_safe", False)
        self._begun = False
        self._logs = None
        for name in _HOOKS:
            setattr(self, name, getattr(callback, name))

    def set_model(self, model):
        super().set_model(model)
        self.callback.set_model(model)

    def set_params(self, params):
        if self.epochs is not None:
            params = {**params, "epochs": self.epochs}
        super().set_params(params)
        self.callback.set_params(params)

    def on_train_begin(self, logs=None):
        if not self._begun:
            self._begun = True
            self.callback.on_train_begin(logs)

    def on_train_end(self, logs=None):
        self._logs = logs

    def finish(self):
        """The end of the run: the callback's `on_train_end`."""
        if self._begun:
            self.callback.on_train_end(self._logs)


class RunStops:
    """Whether the callbacks given to the run (not a stage's) stopped
    training.

    `opening` and `closing` go before and after those callbacks: every
    event they bracket is run by them alone, so `model.stop_training`
    turning on between the two was set by one of them (an `EarlyStopping`
    of the whole run), not by a stage's own early stopping, which ends only
    its stage. Per-batch events are watched only when `batches` (a run
    callback has per-batch hooks, as `TerminateOnNaN`): a per-batch hook
    keeps Keras from dispatching them asynchronously.
    """

    def __init__(self, batches):
        self.requested = False
        self._before = False
        self.opening = _StopLook(self, True, batches)
        self.closing = _StopLook(self, False, batches)


class _StopLook(keras.callbacks.Callback):
    def __init__(self, stops, opening, batches):
        super().__init__()
        self.stops, self.opening = stops, opening
        if batches:
            self.on_train_batch_begin = self.on_train_batch_end = self._look

    def _look(self, *args, **kwargs):
        stop = bool(getattr(self.model, "stop_training", False))
        if self.opening:
            self.stops._before = stop
        elif stop and not self.stops._before:
            self.stops.requested = True

    on_train_begin = on_epoch_begin = on_epoch_end = on_test_end = _look


class Backup(keras.callbacks.Callback):
    """Writes a resumable backup after every epoch, atomically.

    Unlike `keras.callbacks.BackupAndRestore`, files are written to a
    temporary name and renamed, and the backup is never overwritten by a
    non-finite epoch nor deleted after a NaN stop.
    """

    def __init__(self, directory, runner_state, guard):
        super().__init__()
        self.directory = directory
        self.runner_state = runner_state  # a function -> dict
        self.guard = guard

    def on_epoch_end(self, epoch, logs=None):
        if self.guard.stopped:
            return
        save_backup(
            self.model, self.directory, self.runner_state(epoch, logs or {})
        )


def save_backup(model, directory, state):
    """Weights and optimizer state under new names, then the run's state
    naming them (the commit point), then what it no longer names.

    The state also names the stage-end snapshot a rollback returns to
    (`state["snapshot"]`, written by `save_snapshot_files`), so one write
    commits both: a kill at any moment leaves a state and the files it
    names, the snapshot's included.
    """
    tag = _save_tagged(model, directory, BACKUP)
    _atomic(
        state_path(directory),
        lambda p: _write_json(p, {**state, "files": tag}),
    )
    snapshot = state.get("snapshot")
    # A snapshot from a backup of 0.1 has no tag: its fixed names stay.
    legacy = snapshot is not None and not snapshot.get("files")
    _remove_unnamed(directory, {tag, (snapshot or {}).get("files")}, legacy)


def save_snapshot_files(model, directory):
    """The weights and optimizer state at a stage's end, under new names
    (what a rollback of the next stage returns to); returns their tag, for
    the state `save_backup` writes next to name them."""
    return _save_tagged(model, directory, SNAPSHOT)


def _save_tagged(model, directory, prefix):
    """Weights and optimizer state under names no earlier write used;
    returns the tag in them."""
    os.makedirs(directory, exist_ok=True)
    tag = uuid.uuid4().hex[:12]
    atomic_save_weights(model, _weights_file(directory, prefix, tag))
    _save_optimizer(model, directory, prefix, tag)
    return tag


def _remove_unnamed(directory, kept, keep_legacy_snapshot):
    """Backup and snapshot files the state does not name (`kept`: their
    tags), files of 0.1's fixed names, and temporary files a kill left
    behind."""
    for name in os.listdir(directory):
        tagged = name.startswith((f"{BACKUP}-", f"{SNAPSHOT}-"))
        named = any(t and t in name for t in kept)
        legacy = name in _LEGACY_NAMES and not (
            keep_legacy_snapshot and name.startswith(SNAPSHOT)
        )
        if (tagged and not named) or legacy or ".tmp" in name:
            os.remove(os.path.join(directory, name))


def load_snapshot_meta(directory):
    """The snapshot's description in a backup of 0.1 (its own file; newer
    backups keep it in the run's state), or None."""
    path = os.path.join(directory, f"{SNAPSHOT}.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def weights_path(directory, state):
    """The backup weights `state` (read from `state.json`) names."""
    return _weights_file(directory, BACKUP, state.get("files"))


def snapshot_weights_path(directory, meta):
    """The stage-end snapshot's weights `meta` (`state["snapshot"]`)
    names."""
    return _weights_file(directory, SNAPSHOT, meta.get("files"))


def state_path(directory):
    return os.path.join(directory, "state.json")


def _weights_file(directory, prefix, tag):
    # Backups written before tags (0.1) have one fixed set of names.
    name = f"{prefix}-{tag}.weights.h5" if tag else f"{prefix}.weights.h5"
    return os.path.join(directory, name)


def _optimizer_path(directory, prefix, tag):
    if tag:
        return os.path.join(directory, f"{prefix}-{tag}.optimizer.npz")
    name = f"{prefix}_optimizer.npz" if prefix != BACKUP else "optimizer.npz"
    return os.path.join(directory, name)


def _save_optimizer(model, directory, prefix, tag):
    optimizer = getattr(model, "optimizer", None)
    values = [v.numpy() for v in optimizer.variables] if optimizer else []
    _atomic(
        _optimizer_path(directory, prefix, tag),
        lambda p: np.savez(p, *values),
        suffix=".npz",
    )


def load_optimizer_values(directory, index, prefix=BACKUP):
    """The optimizer values `index` (a backup's state or a snapshot's
    meta) names, or None."""
    path = _optimizer_path(directory, prefix, index.get("files"))
    if not os.path.exists(path):
        return None
    with np.load(path) as data:
        return [data[f"arr_{i}"] for i in range(len(data.files))]


def remove_temporaries(path):
    """The temporary files of `_atomic` writes to `path` that a kill left
    behind (a run writes them again)."""
    for stale in glob.glob(f"{glob.escape(path)}.*.tmp*"):
        os.remove(stale)


def atomic_save_weights(model, path):
    _atomic(path, model.save_weights, suffix=".weights.h5")


def _atomic(path, write, suffix=""):
    tmp = f"{path}.{uuid.uuid4().hex[:8]}.tmp{suffix}"
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _write_json(path, data):
    with open(path, "w") as f:
        json.dump(data, f, indent=1)


def minimize(monitor):
    """Whether lower is better for `monitor` (losses and errors)."""
    name = monitor.split("val_")[-1]
    return not any(
        k in name for k in ("acc", "auc", "precision", "recall", "f1")
    )
