"""Run-level callbacks of the staged runner: NaN guard, best weights,
atomic resumable backups."""

import json
import math
import os
import uuid

import keras
import numpy as np


class NaNGuard(keras.callbacks.Callback):
    """Stops on a non-finite loss and puts back the last good weights.

    Good weights are the weights at the end of the last finite epoch (or at
    the start of the run). The flag `stopped` tells the runner to skip the
    remaining stages.
    """

    def __init__(self):
        super().__init__()
        self.stopped = False
        self._good = None

    def snapshot(self):
        self._good = [np.array(w) for w in self.model.get_weights()]

    def on_train_begin(self, logs=None):
        if self._good is None:
            self.snapshot()

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.stopped = True
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.stopped:
            self.model.set_weights(self._good)
            print(
                f"\nStopped at epoch {epoch + 1}: the loss became NaN or "
                "infinite. Kept the weights of the last good epoch."
            )
        else:
            self.snapshot()


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
        self._sign = 1.0 if _minimize(monitor) else -1.0

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not math.isfinite(float(value)):
            return
        if self.best is None or self._sign * value < self._sign * self.best:
            self.best, self.best_epoch = float(value), epoch
            if self.path:
                atomic_save_weights(self.model, self.path)


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
        os.makedirs(self.directory, exist_ok=True)
        atomic_save_weights(self.model, weights_path(self.directory))
        optimizer_vars = [v.numpy() for v in self.model.optimizer.variables]
        _atomic(
            os.path.join(self.directory, "optimizer.npz"),
            lambda p: np.savez(p, *optimizer_vars),
            suffix=".npz",
        )
        state = self.runner_state(epoch, logs or {})
        _atomic(
            state_path(self.directory),
            lambda p: _write_json(p, state),
        )


def weights_path(directory):
    return os.path.join(directory, "backup.weights.h5")


def state_path(directory):
    return os.path.join(directory, "state.json")


def load_optimizer_values(directory):
    path = os.path.join(directory, "optimizer.npz")
    if not os.path.exists(path):
        return None
    with np.load(path) as data:
        return [data[f"arr_{i}"] for i in range(len(data.files))]


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


def _minimize(monitor):
    name = monitor.split("val_")[-1]
    return not any(
        k in name for k in ("acc", "auc", "precision", "recall", "f1")
    )
