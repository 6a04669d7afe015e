"""Adadelta: the chapter's optimizer."""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from .._validate import check_float
from ..nn.module import Parameter
from ._inplace import add_, addcmul_, mul_
from .optimizer import Optimizer, _scalar_step

__all__ = ["Adadelta"]


class Adadelta(Optimizer):
    """torch.optim.Adadelta, step for step. For each parameter θ with gradient g (γ = lr,
    ρ = rho, ε = eps, λ = weight_decay)::

        g ← −g                     if maximize
        g ← g + λθ                 if λ ≠ 0
        v ← ρv + (1 − ρ)g²                        (square_avg)
        Δ ← √(u + ε) / √(v + ε) · g               (u: acc_delta)
        u ← ρu + (1 − ρ)Δ²
        θ ← θ − γΔ

    State per parameter: ``step``, ``square_avg`` v, ``acc_delta`` u.
    """

    def __init__(self, params: Iterable[Any], lr: float = 1.0, rho: float = 0.9,
                 eps: float = 1e-6, weight_decay: float = 0, *, maximize: bool = False) -> None:
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay,
                                      maximize=maximize))

    def _check(self, fn: str, group: dict[str, Any]) -> dict[str, Any]:
        super()._check(fn, group)
        group["rho"] = check_float(fn, "rho", group["rho"], lo=0.0, hi=1.0)
        group["eps"] = check_float(fn, "eps", group["eps"], lo=0.0)
        group["weight_decay"] = check_float(fn, "weight_decay", group["weight_decay"], lo=0.0)
        group["maximize"] = bool(group["maximize"])
        return group

    def _state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("step", "square_avg", "acc_delta")

    def _update(self, p: Parameter, grad: Any, group: dict[str, Any]) -> None:
        lr, rho, eps, wd = group["lr"], group["rho"], group["eps"], group["weight_decay"]
        state = self._state(p)
        if not state:
            state["step"] = _scalar_step()
            state["square_avg"] = np.zeros_like(p.data)
            state["acc_delta"] = np.zeros_like(p.data)
        square_avg, acc_delta = state["square_avg"], state["acc_delta"]
        state["step"] += 1
        g = -grad if group["maximize"] else grad
        if wd != 0:
            g = g + wd * p.data                                   # grad.add(param, alpha=wd)
        addcmul_(mul_(square_avg, rho), g, g, value=1 - rho)
        std = np.sqrt(square_avg + eps)
        delta = np.sqrt(acc_delta + eps)
        delta /= std
        delta *= g
        addcmul_(mul_(acc_delta, rho), delta, delta, value=1 - rho)
        add_(p.data, delta, alpha=-lr)
