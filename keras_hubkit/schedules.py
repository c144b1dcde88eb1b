"""Learning-rate schedules that compose (serializable `LearningRateSchedule`s).

Primitives (`Linear`, `Cosine`, `Constant`) are joined in time by `Join`
(warmup then cosine is `Join([Linear(0, lr, w), Cosine(lr, 0, n - w)], [w])`)
and scaled by `Scaled` (per-group learning rates keep one shape). The usual
fine-tuning shapes are built from them: `warmup_cosine`, `one_cycle`
(fastai), `slanted_triangular` (ULMFiT).
"""

import math

import keras
from keras import ops

from keras_hubkit import errors

_PACKAGE = "keras_hubkit"


def _step(step):
    return ops.cast(step, "float32")


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Constant(keras.optimizers.schedules.LearningRateSchedule):
    """A constant learning rate.

    Example: `Constant(1e-3)(step) == 1e-3`.
    """

    def __init__(self, value):
        self.value = float(value)

    def __call__(self, step):
        return ops.cast(self.value, "float32") + 0.0 * _step(step)

    def get_config(self):
        return {"value": self.value}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Linear(keras.optimizers.schedules.LearningRateSchedule):
    """Goes linearly from `start` to `end` in `steps`, then stays at `end`.

    Example: `Linear(0.0, 1e-3, 100)(50) == 5e-4`.
    """

    def __init__(self, start, end, steps):
        self.start, self.end, self.steps = float(start), float(end), int(steps)

    def __call__(self, step):
        t = ops.clip(_step(step) / max(self.steps, 1), 0.0, 1.0)
        return self.start + (self.end - self.start) * t

    def get_config(self):
        return {"start": self.start, "end": self.end, "steps": self.steps}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Cosine(keras.optimizers.schedules.LearningRateSchedule):
    """Half a cosine from `start` to `end` in `steps`, then stays at `end`.

    Example: `Cosine(1e-3, 0.0, 100)(50) == 5e-4`.
    """

    def __init__(self, start, end, steps):
        self.start, self.end, self.steps = float(start), float(end), int(steps)

    def __call__(self, step):
        t = ops.clip(_step(step) / max(self.steps, 1), 0.0, 1.0)
        weight = 0.5 * (1.0 + ops.cos(math.pi * t))
        return self.end + (self.start - self.end) * weight

    def get_config(self):
        return {"start": self.start, "end": self.end, "steps": self.steps}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Join(keras.optimizers.schedules.LearningRateSchedule):
    """Runs `schedules` one after another, switching at `boundaries`.

    Schedule `i` sees the step counted from its own start.

    Args:
        schedules: N schedules.
        boundaries: N - 1 increasing step numbers.

    Example:

    ```python
    warmup_then_cosine = Join(
        [Linear(0.0, 1e-3, 100), Cosine(1e-3, 0.0, 900)], [100]
    )
    ```
    """

    def __init__(self, schedules, boundaries):
        self.schedules = [_deserialize(s) for s in schedules]
        self.boundaries = [int(b) for b in boundaries]
        if len(self.boundaries) != len(self.schedules) - 1:
            raise errors.ScheduleError(
                "Expected one boundary fewer than schedules. Received: "
                f"{len(self.schedules)} schedules and "
                f"boundaries={self.boundaries}. Give a step boundary between "
                "each pair of schedules."
            )
        if self.boundaries != sorted(self.boundaries):
            raise errors.ScheduleError(
                "Expected increasing boundaries. Received: "
                f"boundaries={self.boundaries}. Sort them."
            )

    def __call__(self, step):
        step = _step(step)
        starts = [0, *self.boundaries]
        value = self.schedules[-1](step - starts[-1])
        for schedule, start, end in reversed(
            list(zip(self.schedules[:-1], starts[:-1], starts[1:]))
        ):
            value = ops.where(step < end, schedule(step - start), value)
        return value

    def get_config(self):
        return {
            "schedules": [
                keras.saving.serialize_keras_object(s) for s in self.schedules
            ],
            "boundaries": self.boundaries,
        }


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Scaled(keras.optimizers.schedules.LearningRateSchedule):
    """`schedule` times `factor` (per-group rates that keep one shape).

    Example: `Scaled(Constant(1e-3), 0.1)(0) == 1e-4`.
    """

    def __init__(self, schedule, factor):
        self.schedule = _deserialize(schedule)
        self.factor = float(factor)

    def __call__(self, step):
        return self.schedule(step) * self.factor

    def get_config(self):
        return {
            "schedule": keras.saving.serialize_keras_object(self.schedule),
            "factor": self.factor,
        }


def warmup_cosine(peak, total_steps, warmup_steps, final=0.0):
    """Linear warmup from 0 to `peak`, then cosine to `final`.

    Example: `warmup_cosine(1e-3, 1000, 100)`.
    """
    warmup_steps = min(int(warmup_steps), int(total_steps))
    return Join(
        [
            Linear(0.0, peak, warmup_steps),
            Cosine(peak, final, max(int(total_steps) - warmup_steps, 1)),
        ],
        [warmup_steps],
    )


def one_cycle(peak, total_steps, div=25.0, div_final=1e5, pct_start=0.25):
    """fastai's one-cycle: cosine up from `peak/div` to `peak` over
    `pct_start` of the steps, then cosine down to `peak/div_final`.

    Example: `one_cycle(2e-3, 500)`.
    """
    up = max(round(total_steps * pct_start), 1)
    return Join(
        [
            Cosine(peak / div, peak, up),
            Cosine(peak, peak / div_final, max(int(total_steps) - up, 1)),
        ],
        [up],
    )


def slanted_triangular(peak, total_steps, cut_frac=0.1, ratio=32.0):
    """ULMFiT's slanted triangular rate: linear up from `peak/ratio` to
    `peak` over `cut_frac` of the steps, then linear down to `peak/ratio`.

    Example: `slanted_triangular(1e-2, 1000)`.
    """
    cut = max(math.floor(total_steps * cut_frac), 1)
    low = peak / ratio
    return Join(
        [Linear(low, peak, cut), Linear(peak, low, max(total_steps - cut, 1))],
        [cut],
    )


def _deserialize(schedule):
    if isinstance(schedule, dict):
        return keras.saving.deserialize_keras_object(schedule)
    return schedule


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Exponential(keras.optimizers.schedules.LearningRateSchedule):
    """Grows geometrically from `start` to `end` in `steps`, then stays at
    `end` (the learning-rate range test's sweep).

    Example: `Exponential(1e-7, 10.0, 100)(50) == 1e-7 * 1e8**0.5`.
    """

    def __init__(self, start, end, steps):
        self.start, self.end, self.steps = float(start), float(end), int(steps)

    def __call__(self, step):
        t = ops.clip(_step(step) / max(self.steps, 1), 0.0, 1.0)
        return self.start * ops.exp(t * math.log(self.end / self.start))

    def get_config(self):
        return {"start": self.start, "end": self.end, "steps": self.steps}
