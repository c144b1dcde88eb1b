"""`Stage`: one step of a fine-tuning plan, as plain data."""

import dataclasses
import math
import numbers
import re

import keras

from keras_hubkit import errors
from keras_hubkit import schedules

SCHEDULES = (
    "constant",
    "cosine",
    "warmup_cosine",
    "one_cycle",
    "slanted_triangular",
)


@dataclasses.dataclass
class Stage:
    """One stage of a staged fine-tuning plan.

    Args:
        epochs: how many epochs the stage trains.
        unfreeze: which base groups train (the head always trains):
            `"head"` (none, the default), `"all"`, an int N (the top N
            groups), or a list of regular expressions over group names
            (see `hk.finetune.base_groups`).
        lr: the learning rate (the head's, and the base's unless a per-group
            option is given), or a `LearningRateSchedule`.
        schedule: how `lr` moves within the stage: `"constant"` (default),
            `"cosine"`, `"warmup_cosine"`, `"one_cycle"`,
            `"slanted_triangular"`, or a function
            `(lr, total_steps) -> LearningRateSchedule`.
        group_lrs: explicit rates, `{group name: lr}`. A key names one
            whole group (`"head"` is the head; a SavedModel group is
            `"<layer>/<group>"`, e.g. `"base/head"`); a regular expression
            only when asked for: a `re.compile(...)` key or a string
            starting with `"re:"`, matched against whole names
            (`re.fullmatch`).
        lr_range: `(low, high)`: geometric rates from the lowest unfrozen
            group (`low`) up to the head (`high`), like fastai's `slice`.
        layer_decay: the head trains at `lr`, the group below at
            `lr * layer_decay`, the next at `lr * layer_decay**2`...
            (ULMFiT uses 1/2.6, timm/BEiT 0.65-0.75).
        optimizer: a function `lr -> keras.optimizers.Optimizer`
            (default: `keras.optimizers.Adam`). A fresh optimizer is built
            for every stage (Keras refuses to reuse one after unfreezing).
        callbacks: Keras callbacks for this stage only.
        early_stopping: patience of an `EarlyStopping` (monitor as the run,
            `restore_best_weights=True`) for this stage, or None.
        warmup_fraction: share of steps used to warm up (`warmup_cosine`).
        name: a label for the history and logs.

    Example:

    ```python
    plan = [
        hk.finetune.Stage(epochs=2, lr=1e-3),                      # head
        hk.finetune.Stage(epochs=2, unfreeze=2, lr=1e-4,
                          layer_decay=0.5, schedule="cosine"),     # top 2
        hk.finetune.Stage(epochs=2, unfreeze="all", lr_range=(1e-6, 1e-4)),
    ]
    ```
    """

    epochs: int
    unfreeze: object = "head"
    lr: object = 1e-3
    schedule: object = "constant"
    group_lrs: dict | None = None
    lr_range: tuple | None = None
    layer_decay: float | None = None
    optimizer: object = None
    callbacks: list = dataclasses.field(default_factory=list)
    early_stopping: int | None = None
    warmup_fraction: float = 0.1
    name: str | None = None

    def __post_init__(self):
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise errors.StagePlanError(
                f"Stage.epochs must be a positive int. Received: "
                f"{self.epochs!r}."
            )
        self._check_numbers()
        chosen = [
            k
            for k in ("group_lrs", "lr_range", "layer_decay")
            if getattr(self, k) is not None
        ]
        if len(chosen) > 1:
            raise errors.StagePlanError(
                "Give at most one of group_lrs, lr_range, layer_decay. "
                f"Received: {chosen}."
            )
        if isinstance(self.schedule, str) and self.schedule not in SCHEDULES:
            raise errors.StagePlanError(
                f"Unknown schedule {self.schedule!r}. Expected one of "
                f"{SCHEDULES} or a function (lr, total_steps) -> schedule."
            )
        if self.lr_range is not None:
            low, high = self.lr_range
            if not 0 < low <= high:
                raise errors.StagePlanError(
                    f"lr_range must be (low, high) with 0 < low <= high. "
                    f"Received: {self.lr_range!r}."
                )

    def _check_numbers(self):
        """Rates, patience and fractions in their ranges: a negative rate
        would train the wrong way without a word."""
        schedule = keras.optimizers.schedules.LearningRateSchedule
        # 0 is allowed: a stage that only measures (weights unchanged).
        if not isinstance(self.lr, schedule) and not (
            self.lr == 0 or positive_number(self.lr)
        ):
            raise errors.StagePlanError(
                "Stage.lr must be a number >= 0 or a LearningRateSchedule. "
                f"Received: lr={self.lr!r}."
            )
        if self.early_stopping is not None and not whole_number(
            self.early_stopping
        ):
            raise errors.StagePlanError(
                "Stage.early_stopping is a patience in epochs: an int >= 0, "
                f"or None. Received: early_stopping={self.early_stopping!r}."
            )
        if self.layer_decay is not None and not positive_number(
            self.layer_decay
        ):
            raise errors.StagePlanError(
                "Stage.layer_decay must be a positive number (e.g. 0.65). "
                f"Received: layer_decay={self.layer_decay!r}."
            )
        fraction = self.warmup_fraction
        if not (isinstance(fraction, numbers.Real) and 0 <= fraction < 1):
            raise errors.StagePlanError(
                "Stage.warmup_fraction must be a number in [0, 1). "
                f"Received: warmup_fraction={fraction!r}."
            )

    def to_dict(self):
        """The JSON-able fields (callbacks and factories are left out)."""
        data = dataclasses.asdict(self)
        for key in ("optimizer", "callbacks"):
            data.pop(key)
        if self.group_lrs:
            data["group_lrs"] = {
                f"re:{k.pattern}" if isinstance(k, re.Pattern) else k: v
                for k, v in self.group_lrs.items()
            }
        if not isinstance(self.schedule, str):
            data["schedule"] = getattr(self.schedule, "__name__", "custom")
        if isinstance(self.lr, keras.optimizers.schedules.LearningRateSchedule):
            data["lr"] = keras.saving.serialize_keras_object(self.lr)
        return data

    def make_schedule(self, lr, total_steps):
        """`lr` shaped by this stage's schedule over `total_steps`."""
        if isinstance(lr, keras.optimizers.schedules.LearningRateSchedule):
            return lr
        if callable(self.schedule):
            return self.schedule(lr, total_steps)
        if self.schedule == "constant":
            return float(lr)
        if total_steps is None:
            raise errors.StagePlanError(
                f"schedule={self.schedule!r} needs the number of steps; pass "
                "`steps_per_epoch` to the runner (the data's length is "
                "unknown)."
            )
        if self.schedule == "cosine":
            return schedules.Cosine(lr, 0.0, total_steps)
        if self.schedule == "warmup_cosine":
            warmup = int(total_steps * self.warmup_fraction)
            return schedules.warmup_cosine(lr, total_steps, warmup)
        if self.schedule == "one_cycle":
            return schedules.one_cycle(lr, total_steps)
        return schedules.slanted_triangular(lr, total_steps)


def positive_number(value):
    """A finite real number above 0 (not a bool)."""
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and 0 < value < math.inf
    )


def whole_number(value, least=0):
    """An int (not a bool) of at least `least`."""
    return (
        isinstance(value, numbers.Integral)
        and not isinstance(value, bool)
        and value >= least
    )
