"""The paper's learning-rate schedule as an nnU-Net-style scheduler: divided by 5 at each third of training."""

from __future__ import annotations

from torch.optim.lr_scheduler import _LRScheduler


def step_decay(epoch: int, num_epochs: int, initial_lr: float, factor: float = 0.2, n_steps: int = 3) -> float:
    """``initial_lr * factor ** k`` in the k-th of ``n_steps`` equal parts of ``num_epochs`` (paper: every 10 of 30)."""
    part = min(max(epoch, 0) * n_steps // max(num_epochs, 1), n_steps - 1)
    return initial_lr * factor**part


class StepLRScheduler(_LRScheduler):
    """Step schedule stepped like nnU-Net's ``PolyLRScheduler``: ``step(current_epoch)`` sets every group's LR.

    Setting every parameter group (not a list fixed at construction) keeps groups added later, such as the
    edge gate's, on the same schedule.

    Args:
        optimizer: the optimizer.
        initial_lr: LR of the first part of training.
        num_epochs: total number of epochs (the parts are thirds of it).
        factor: multiplier from one part to the next (paper: 1/5).
        n_steps: number of parts (paper: 3).
    """

    def __init__(self, optimizer, initial_lr: float, num_epochs: int, factor: float = 0.2, n_steps: int = 3):
        self.initial_lr = initial_lr
        self.num_epochs = num_epochs
        self.factor = factor
        self.n_steps = n_steps
        self.ctr = 0
        super().__init__(optimizer, -1)

    def step(self, current_step: int | None = None):
        if current_step is None or current_step == -1:
            current_step = self.ctr
            self.ctr += 1
        new_lr = step_decay(current_step, self.num_epochs, self.initial_lr, self.factor, self.n_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = new_lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self):
        return self._last_lr
