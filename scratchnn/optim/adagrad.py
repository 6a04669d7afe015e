"""Adagrad: θ ← θ − γₜ g / (√S + ε), S the sum of squared gradients, γₜ = γ / (1 + (t − 1)η).

The plain formula is ``scratchnn.textbook.optim.adagrad_step``; this fast edition writes the
same update into ``p.data`` and ``sum`` in place, in torch's order of operations (bit for bit
the textbook's result).
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from .._validate import check_float
from ..nn.module import Parameter
from ..perf.inplace import addcdiv_, addcmul_
from .optimizer import Optimizer, _scalar_step

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    """torch.optim.Adagrad, step for step; the formula is
    ``scratchnn.textbook.optim.adagrad_step``. For each parameter θ with gradient g at step t
    (γ = lr, η = lr_decay, ε = eps, λ = weight_decay)::

        g ← −g                     if maximize
        g ← g + λθ                 if λ ≠ 0
        γₜ = γ / (1 + (t − 1)η)
        S ← S + g²                                (sum, starting at initial_accumulator_value)
        θ ← θ − γₜ g / (√S + ε)

    State per parameter (created at construction, as torch): ``step``, ``sum`` S.
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, lr_decay: float = 0,
                 weight_decay: float = 0, initial_accumulator_value: float = 0,
                 eps: float = 1e-10, *, maximize: bool = False) -> None:
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      eps=eps, maximize=maximize))
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(p, group)

    def _init_state(self, p: Parameter, group: dict[str, Any]) -> dict[str, Any]:
        state = self._state(p)
        state["step"] = _scalar_step()
        state["sum"] = np.full_like(p.data, group["initial_accumulator_value"])
        return state

    def _check(self, fn: str, group: dict[str, Any]) -> dict[str, Any]:
        super()._check(fn, group)
        for k in ("lr_decay", "weight_decay", "initial_accumulator_value", "eps"):
            group[k] = check_float(fn, k, group[k], lo=0.0)
        group["maximize"] = bool(group["maximize"])
        return group

    def _state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("step", "sum")

    def _update(self, p: Parameter, grad: Any, group: dict[str, Any]) -> None:
        lr, lr_decay, eps, wd = (group[k] for k in ("lr", "lr_decay", "eps", "weight_decay"))
        state = self.state.get(p) or self._init_state(p, group)   # a group added later
        state["step"] += 1
        step = float(state["step"])
        g = -grad if group["maximize"] else grad
        if wd != 0:
            g = g + wd * p.data                                   # grad.add(param, alpha=wd)
        clr = lr / (1 + (step - 1) * lr_decay)
        addcmul_(state["sum"], g, g, value=1)
        std = np.sqrt(state["sum"]) + eps
        addcdiv_(p.data, g, std, value=-clr)
