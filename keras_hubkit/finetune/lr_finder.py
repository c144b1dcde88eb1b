"""`lr_find`: the learning-rate range test (Smith 2015; fastai's
`lr_find`): train for a few hundred steps with an exponentially growing
rate, watch the smoothed loss, suggest the rate where it falls fastest.
"""

import dataclasses
import json
import logging
import math
import os

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_hubkit import errors
from keras_hubkit import schedules

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class LRFindResult:
    """What the range test saw.

    Attributes:
        rates: the learning rate of each step.
        losses: the smoothed (debiased exponential moving average) loss
            after each step.
        raw_losses: the loss of each step.
        suggestion: the rate where the loss (smoothed without lag, in
            log scale) falls fastest per unit of log rate, before its
            minimum.
        min_loss_rate: the rate at that smoothed loss's minimum, where
            divergence begins (fastai's other rule of thumb is a tenth of
            it).
    """

    rates: list
    losses: list
    raw_losses: list
    suggestion: float
    min_loss_rate: float

    def to_dict(self):
        """The result as JSON-able data."""
        return dataclasses.asdict(self)

    def plot(self, path):
        """Writes loss against learning rate (log scale) as a PNG.

        Args:
            path: the PNG file to write.

        Returns:
            `path`.
        """
        # Lazily: `import keras_hubkit` must not import matplotlib, and the
        # Agg canvas leaves pyplot's global backend alone.
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        figure = Figure(figsize=(6, 4))
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        axes.plot(self.rates, self.losses, label="smoothed loss")
        axes.axvline(
            self.suggestion,
            color="tab:red",
            linestyle="--",
            label=f"suggestion {self.suggestion:.2g}",
        )
        axes.set_xscale("log")
        axes.set_xlabel("learning rate")
        axes.set_ylabel("loss")
        axes.set_title("Learning-rate range test")
        axes.legend()
        figure.tight_layout()
        figure.savefig(path, dpi=100)
        return path

    def save(self, directory):
        """Writes `lr_find.json` and `lr_find.png` into `directory`.

        Returns:
            A dict with the two paths.
        """
        os.makedirs(directory, exist_ok=True)
        data_path = os.path.join(directory, "lr_find.json")
        with open(data_path, "w") as f:
            json.dump(self.to_dict(), f, indent=1)
        return {
            "json": data_path,
            "plot": self.plot(os.path.join(directory, "lr_find.png")),
        }


def lr_find(
    model,
    x,
    y=None,
    *,
    loss=None,
    start_lr=1e-7,
    end_lr=10.0,
    num_steps=200,
    batch_size=32,
    optimizer=None,
    smoothing=0.98,
    stop_factor=4.0,
    seed=0,
):
    """The learning-rate range test: finds a good peak learning rate.

    Trains the model's trainable variables (as they are now: freeze first
    to test the head alone) for up to `num_steps` steps while the rate grows
    exponentially from `start_lr` to `end_lr`, and stops early when the
    smoothed loss exceeds `stop_factor` times its minimum. Afterwards every
    weight (BatchNorm statistics included) is put back exactly; the
    model's own optimizer and compile state are never touched (the test
    uses its own optimizer).

    Args:
        model: a Keras model.
        x: inputs (arrays) or a batched `tf.data.Dataset` of `(x, y)`.
        y: targets, with array inputs.
        loss: a loss (name or `keras.losses.Loss`); default: the loss the
            model was compiled with.
        start_lr: the first rate.
        end_lr: the last rate.
        num_steps: steps of the sweep (fewer if the loss diverges).
        batch_size: with array inputs.
        optimizer: a function `lr -> keras.optimizers.Optimizer` (default
            `keras.optimizers.Adam`); use the one you will train with.
        smoothing: the exponential moving average's factor.
        stop_factor: stop when the smoothed loss exceeds this multiple of
            its minimum.
        seed: the shuffling seed with array inputs.

    Returns:
        An `LRFindResult`; `result.suggestion` is the rate to use,
        `result.plot("lr_find.png")` draws the curve.

    Raises:
        StagePlanError: no loss, nothing to train, or a bad range.

    Example:

    ```python
    result = hk.finetune.lr_find(model, x, y, loss=loss)
    print(result.suggestion)
    result.plot("lr_find.png")
    ```
    """
    if not 0 < start_lr < end_lr:
        raise errors.StagePlanError(
            "lr_find needs 0 < start_lr < end_lr. Received: "
            f"start_lr={start_lr!r}, end_lr={end_lr!r}."
        )
    if not isinstance(num_steps, int) or num_steps < 10:
        raise errors.StagePlanError(
            f"lr_find needs num_steps >= 10. Received: num_steps={num_steps!r}."
        )
    loss_fn = _loss_function(model, loss)
    variables = list(model.trainable_variables)
    if not variables:
        raise errors.StagePlanError(
            "lr_find trains the model's trainable variables. Received: a "
            "model with none. Unfreeze the part to test (e.g. the head)."
        )
    schedule = schedules.Exponential(start_lr, end_lr, num_steps)
    factory = optimizer or (lambda lr: keras.optimizers.Adam(learning_rate=lr))
    with model.distribute_strategy.scope():
        sweep = factory(schedule)
        sweep.build(variables)
    step = _train_step(model, loss_fn, sweep, variables)
    saved = model.get_weights()
    rates, raw, smoothed = [], [], []
    try:
        batches = iter(_batches(x, y, batch_size, seed))
        average, best = 0.0, math.inf
        for i in range(num_steps):
            features, targets = next(batches)
            rates.append(float(schedule(i)))
            value = float(step(features, targets))
            raw.append(value)
            average = smoothing * average + (1 - smoothing) * value
            smoothed.append(average / (1 - smoothing ** (i + 1)))
            if not math.isfinite(value) or smoothed[-1] > stop_factor * best:
                break
            best = min(best, smoothed[-1])
    finally:
        model.set_weights(saved)
    suggestion, at_min = _suggest(rates, raw)
    logger.info(
        "lr_find: %d steps, suggestion %.3g (minimum at %.3g).",
        len(rates),
        suggestion,
        at_min,
    )
    return LRFindResult(rates, smoothed, raw, suggestion, at_min)


def _suggest(rates, raw_losses):
    """Steepest descent of the loss against log(rate), before its minimum.

    The loss is smoothed with a centered moving average (no lag, unlike the
    plotted moving average) and, when positive, taken in log scale, so a
    fall from 2.0 to 0.2 counts like one from 20 to 2 and early noise on a
    high loss does not win.
    """
    values = np.asarray(raw_losses, dtype="float64")
    bad = np.flatnonzero(~np.isfinite(values))
    end = int(bad[0]) if bad.size else len(values)
    if end == 0:
        raise errors.StagePlanError(
            "lr_find saw no finite loss. Received: start_lr="
            f"{rates[0]:.3g}. Lower start_lr, or check the data and loss."
        )
    values, lrs = values[:end], np.asarray(rates[:end], dtype="float64")
    width = max(3, (end // 20) | 1)
    padded = np.pad(values, width // 2, mode="edge")
    smooth = np.convolve(padded, np.ones(width) / width, mode="valid")
    lowest = int(np.argmin(smooth))
    if lowest < 2:
        return float(lrs[lowest] / 10), float(lrs[lowest])
    curve = np.log(smooth) if np.all(smooth > 0) else smooth
    slope = np.gradient(curve[: lowest + 1], np.log(lrs[: lowest + 1]))
    return float(lrs[int(np.argmin(slope))]), float(lrs[lowest])


def _loss_function(model, loss):
    if loss is None:
        loss = getattr(model, "loss", None)
    if loss is None:
        raise errors.StagePlanError(
            "lr_find needs a loss. Received: loss=None and a model that was "
            "not compiled with one. Pass loss=..."
        )
    function = keras.losses.get(loss) if isinstance(loss, str) else loss
    return lambda y, pred: ops.mean(function(y, pred))


def _train_step(model, loss_fn, optimizer, variables):
    @tf.function
    def step(features, targets):
        with tf.GradientTape() as tape:
            pred = model(features, training=True)
            value = loss_fn(targets, pred)
            if model.losses:
                value = value + ops.sum(ops.stack(model.losses))
        grads = tape.gradient(value, variables)
        optimizer.apply(grads, variables)
        return value

    return step


def _batches(x, y, batch_size, seed):
    """An endless, shuffled, prefetched stream of `(x, y)` batches; arrays
    are converted to tensors once.
    """
    if isinstance(x, tf.data.Dataset):
        dataset = x.repeat()
    else:
        n = int(tf.nest.flatten(x)[0].shape[0])
        dataset = (
            tf.data.Dataset.from_tensor_slices((x, y))
            .shuffle(n, seed=seed, reshuffle_each_iteration=True)
            .repeat()
            .batch(batch_size)
        )
    return dataset.prefetch(tf.data.AUTOTUNE)


def find_for_plan(
    model,
    x,
    y,
    stages,
    *,
    loss=None,
    output_dir=None,
    batch_size=32,
    base=None,
    **kwargs,
):
    """`lr_find` for a plan: what `hubkit train --lr find` and
    `hubkit lr-find` run.

    The test runs with the first stage's trainability (usually the head
    alone). The plan comes back scaled so that the first stage's rate is
    the suggestion and every later rate (`lr`, `lr_range`, `group_lrs`)
    keeps its ratio to it.

    Args:
        model: the model the plan trains.
        x: training inputs (or a batched dataset of `(x, y)`).
        y: training targets.
        stages: the plan, a list of `Stage` with a float `lr` first.
        loss: the loss the plan trains with (default: the compiled
            model's).
        output_dir: where to write `lr_find.json` and `lr_find.png`
            (None: nothing is written).
        batch_size: with array inputs.
        base: the pretrained layers, as for `StagedFineTuner`.
        **kwargs: more `lr_find` arguments.

    Returns:
        `(result, scaled_stages)`.

    Example:

    ```python
    result, plan = hk.finetune.find_for_plan(
        model, x, y, plan, loss=loss, output_dir="out")
    StagedFineTuner(model, plan, loss=loss).run(x, y)
    ```
    """
    from keras_hubkit.finetune.runner import StagedFineTuner

    first = stages[0].lr
    if not isinstance(first, (int, float)):
        raise errors.StagePlanError(
            "lr_find scales the plan from its first stage's rate. Received: "
            f"lr={first!r}. Give the first stage a float lr."
        )
    runner = StagedFineTuner(model, stages, loss=loss, base=base)
    runner.apply_trainability(0)
    result = lr_find(
        model,
        x,
        y,
        loss=runner.loss,
        batch_size=batch_size,
        optimizer=stages[0].optimizer,
        **kwargs,
    )
    if output_dir is not None:
        result.save(output_dir)
    factor = result.suggestion / first
    return result, [_scaled(stage, factor) for stage in stages]


def _scaled(stage, factor):
    changes = {}
    if isinstance(stage.lr, (int, float)):
        changes["lr"] = stage.lr * factor
    if stage.lr_range is not None:
        changes["lr_range"] = tuple(v * factor for v in stage.lr_range)
    if stage.group_lrs:
        changes["group_lrs"] = {
            k: v * factor for k, v in stage.group_lrs.items()
        }
    return dataclasses.replace(stage, **changes)
