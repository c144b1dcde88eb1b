"""`AutoPlan`: a plan that chooses how deep to unfreeze from validation
results, within a budget of epochs.
"""

import dataclasses

from keras_hubkit import errors
from keras_hubkit import schedules
from keras_hubkit.finetune.stage import Stage


@dataclasses.dataclass
class AutoPlan:
    """Unfreezes deeper and deeper while validation improves.

    Stage 1 trains the head for `head_epochs`. Then each step unfreezes the
    top `depth` groups (1, 2, 4, ... up to all, or `depths`) for
    `step_epochs`, with rates spread geometrically from
    `base_lr / lr_mult` (lowest unfrozen group) to `base_lr` (head). Every
    step is guarded: one that ends worse on the validation metric than the
    step before is rolled back, and then deepening stops (a deeper cut
    hurt); the epochs left in the budget train at the deepest depth that
    helped (the head alone if none did). The run never uses more than
    `epochs` epochs; the chosen depth is `history.auto_depth`.

    Needs validation data (it decides from validation results).

    Args:
        epochs: the budget: total epochs of the run.
        head_epochs: epochs of the head-only stage.
        step_epochs: epochs of each deepening step.
        lr: the head-only stage's peak rate (one-cycle).
        base_lr: the unfrozen stages' peak rate for the head (default
            `lr / 2`, as fastai's `fine_tune`).
        lr_mult: ratio between the head's and the lowest group's rate.
        depths: the group counts to try, increasing (default 1, 2, 4, ...,
            all).
        optimizer: a function `lr -> keras.optimizers.Optimizer`.

    Example:

    ```python
    runner = hk.finetune.StagedFineTuner(
        model, hk.finetune.AutoPlan(epochs=8), loss=loss)
    history = runner.run(x, y, validation_data=(x_val, y_val))
    print(history.auto_depth)   # how many groups it kept unfrozen
    ```
    """

    epochs: int = 6
    head_epochs: int = 1
    step_epochs: int = 1
    lr: float = 2e-3
    base_lr: float | None = None
    lr_mult: float = 100.0
    depths: tuple | None = None
    optimizer: object = None

    def __post_init__(self):
        for name in ("epochs", "head_epochs", "step_epochs"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise errors.StagePlanError(
                    f"AutoPlan.{name} must be a positive int. Received: "
                    f"{value!r}."
                )
        if self.head_epochs > self.epochs:
            raise errors.StagePlanError(
                "AutoPlan.head_epochs must fit in the budget. Received: "
                f"head_epochs={self.head_epochs}, epochs={self.epochs}."
            )

    def to_dict(self):
        """The JSON-able fields (for backups)."""
        data = dataclasses.asdict(self)
        data.pop("optimizer")
        data["depths"] = list(self.depths) if self.depths else None
        return data

    def depth_steps(self, n_groups):
        """The group counts to try, for a base of `n_groups` groups."""
        if self.depths:
            return [min(int(d), n_groups) for d in self.depths]
        steps, depth = [], 1
        while depth < n_groups:
            steps.append(depth)
            depth *= 2
        return [*steps, n_groups] if n_groups else []

    def next_stage(self, stages, outcomes, n_groups):
        """The next stage given what ran, or None when the budget is spent.

        Args:
            stages: the stages run so far.
            outcomes: per stage run, whether it was kept (not rolled back).
            n_groups: how many groups the base has.
        """
        used = sum(s.epochs for s in stages)
        left = self.epochs - used
        if not stages:
            return self._head_stage()
        if left <= 0 or stages[-1].name == "auto: rest of budget":
            return None
        tried = [s for s in stages[1:]]
        kept = [s.unfreeze for s, ok in zip(stages[1:], outcomes[1:]) if ok]
        steps = self.depth_steps(n_groups)
        deepening = len(tried) < len(steps) and all(outcomes[1:])
        if deepening and left > self.step_epochs:
            return self._unfrozen(steps[len(tried)], self.step_epochs, "step")
        if deepening:
            return self._unfrozen(steps[len(tried)], left, "rest of budget")
        depth = kept[-1] if kept else 0
        return self._unfrozen(depth, left, "rest of budget")

    def chosen_depth(self, stages, outcomes):
        """The deepest depth that was kept (0: the head alone)."""
        kept = [s.unfreeze for s, ok in zip(stages[1:], outcomes[1:]) if ok]
        return max(kept) if kept else 0

    def _head_stage(self):
        def head_cycle(lr, n):
            return schedules.one_cycle(lr, n, pct_start=0.99)

        return Stage(
            self.head_epochs,
            unfreeze="head",
            lr=self.lr,
            schedule=head_cycle,
            optimizer=self.optimizer,
            name="auto: head",
        )

    def _unfrozen(self, depth, epochs, what):
        if depth == 0:
            return Stage(
                epochs,
                unfreeze=0,
                lr=self._base_lr(),
                schedule="cosine",
                optimizer=self.optimizer,
                name=f"auto: {what}",
            )

        def body_cycle(lr, n):
            return schedules.one_cycle(lr, n, div=5.0, pct_start=0.3)

        base = self._base_lr()
        return Stage(
            epochs,
            unfreeze=depth,
            lr=base,
            schedule=body_cycle,
            lr_range=(base / self.lr_mult, base),
            optimizer=self.optimizer,
            name=f"auto: {what}",
        )

    def _base_lr(self):
        return self.base_lr if self.base_lr is not None else self.lr / 2
