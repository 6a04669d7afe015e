"""Learning-rate schedulers: ``StepLR`` and ``CosineAnnealingLR``, equal to torch's.

A scheduler rewrites ``group['lr']`` of every parameter group once per ``step()`` (call it after
``optimizer.step()``, once per epoch or per iteration as you choose). Like torch, each schedule
is computed *recursively* from the current lr (its ``get_lr``), which is what makes torch's
``get_last_lr()`` sequence what it is, rounding included; ``step(epoch)`` jumps with the closed
form instead. Construction records ``initial_lr`` in each group (``base_lrs``) and takes the
first step (``last_epoch`` −1 → 0).

``state_dict()`` holds every attribute except the optimizer, under torch's names, so torch's
scheduler state_dict loads directly.
"""
from __future__ import annotations

import math
from typing import Any

from .._validate import check_float, check_int, check_state_keys
from .optimizer import Optimizer

__all__ = ["LRScheduler", "StepLR", "CosineAnnealingLR"]


class LRScheduler:
    """Base class: ``step()``, ``get_last_lr()``, ``state_dict()``/``load_state_dict()``."""

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        fn = type(self).__name__
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{fn}(): parameter 'optimizer' must be a scratchnn.optim "
                            f"Optimizer, got {type(optimizer).__name__}")
        last_epoch = check_int(fn, "last_epoch", last_epoch, min=-1)
        self.optimizer = optimizer
        for i, group in enumerate(optimizer.param_groups):
            if last_epoch == -1:
                group.setdefault("initial_lr", group["lr"])
            elif "initial_lr" not in group:
                raise KeyError(f"{fn}(): parameter 'last_epoch' is {last_epoch} (resuming) but "
                               f"param_groups[{i}] has no 'initial_lr': load the optimizer's "
                               f"state_dict first")
        self.base_lrs = [g["initial_lr"] for g in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._get_lr_called_within_step = False          # kept for torch's state_dict layout
        self._step_count = 0
        self._is_initial = True
        self.step()
        self._is_initial = False

    def get_lr(self) -> list[float]:
        """The next lrs, from the current ones (the recursive form)."""
        raise TypeError(f"{type(self).__name__} defines no get_lr()")

    def _get_closed_form_lr(self) -> list[float]:
        raise TypeError(f"{type(self).__name__} defines no closed form")

    def step(self, epoch: int | None = None) -> None:
        """Advance one epoch (or jump to ``epoch`` with the closed form) and set each group's
        lr."""
        self._step_count += 1
        if epoch is None:
            self.last_epoch += 1
            values = self.get_lr()
        else:
            self.last_epoch = check_int(f"{type(self).__name__}.step", "epoch", epoch, min=0)
            values = self._get_closed_form_lr()
        for group, lr in zip(self.optimizer.param_groups, values):
            group["lr"] = lr
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        """The lrs the last ``step()`` set, one per parameter group."""
        return self._last_lr

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        fn = f"{type(self).__name__}.load_state_dict"
        if not hasattr(state_dict, "items"):
            raise TypeError(f"{fn}(): parameter 'state_dict' must be a mapping")
        own = self.state_dict()
        check_state_keys(fn, state_dict, own)
        self.__dict__.update(state_dict)


class StepLR(LRScheduler):
    """lr ← lr·γ every ``step_size`` epochs (closed form: base_lr · γ^⌊epoch / step_size⌋)."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1,
                 last_epoch: int = -1) -> None:
        self.step_size = check_int("StepLR", "step_size", step_size, min=1)
        self.gamma = check_float("StepLR", "gamma", gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return [g["lr"] for g in self.optimizer.param_groups]
        return [g["lr"] * self.gamma for g in self.optimizer.param_groups]

    def _get_closed_form_lr(self) -> list[float]:
        return [b * self.gamma ** (self.last_epoch // self.step_size) for b in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """Cosine from base_lr down to ``eta_min`` over ``T_max`` epochs (and back up after)::

        η_t = η_min + (η_base − η_min)(1 + cos(π t / T_max)) / 2          (closed form)

    ``step()`` uses torch's recursive form of the same curve,
    η_t = (1 + cos(π t/T)) / (1 + cos(π (t−1)/T)) · (η_{t−1} − η_min) + η_min, with torch's
    special cases at the start and at the turning points.
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0,
                 last_epoch: int = -1) -> None:
        self.T_max = check_int("CosineAnnealingLR", "T_max", T_max, min=1)
        self.eta_min = check_float("CosineAnnealingLR", "eta_min", eta_min)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        groups, t, T, lo = self.optimizer.param_groups, self.last_epoch, self.T_max, self.eta_min
        if self._is_initial:
            return [g["lr"] for g in groups]
        if self._step_count == 1 and t > 0:
            return [lo + (b - lo) * (1 + math.cos(t * math.pi / T)) / 2 for b in self.base_lrs]
        if (t - 1 - T) % (2 * T) == 0:
            return [g["lr"] + (b - lo) * (1 - math.cos(math.pi / T)) / 2
                    for b, g in zip(self.base_lrs, groups)]
        return [(1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T))
                * (g["lr"] - lo) + lo for g in groups]

    def _get_closed_form_lr(self) -> list[float]:
        lo = self.eta_min
        return [lo + (b - lo) * (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
                for b in self.base_lrs]
