"""RMSprop: θ ← θ − γ g / (√ṽ + ε), ṽ the running mean of g² (centered: minus the squared
running mean of g), with optional momentum.

The plain formula is ``scratchnn.textbook.optim.rmsprop_step``; this fast edition writes the
same update into ``p.data`` and the state in place, in torch's order of operations (bit for
bit the textbook's result, except the centered ``grad_avg``, which torch updates with
``lerp_``: equal to rounding).
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from .._validate import check_float
from ..nn.module import Parameter
from ..perf.inplace import add_, addcdiv_, addcmul_, lerp_, mul_
from .optimizer import Optimizer, _scalar_step

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    """torch.optim.RMSprop, step for step; the formula is
    ``scratchnn.textbook.optim.rmsprop_step``. For each parameter θ with gradient g (γ = lr,
    α = alpha, ε = eps, μ = momentum, λ = weight_decay)::

        g ← −g                     if maximize
        g ← g + λθ                 if λ ≠ 0
        v ← αv + (1 − α)g²                         (square_avg)
        ḡ ← ḡ + (1 − α)(g − ḡ);  s ← √(v − ḡ²)      if centered (grad_avg ḡ)
        s ← √v                                     otherwise
        s ← s + ε
        b ← μb + g/s;  θ ← θ − γb                   if μ > 0 (momentum_buffer b)
        θ ← θ − γg/s                               otherwise

    State per parameter: ``step``, ``square_avg``, and ``momentum_buffer`` (μ > 0),
    ``grad_avg`` (centered).
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0, momentum: float = 0,
                 centered: bool = False, *, maximize: bool = False) -> None:
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered, maximize=maximize))

    def _check(self, fn: str, group: dict[str, Any]) -> dict[str, Any]:
        super()._check(fn, group)
        for k in ("alpha", "eps", "weight_decay", "momentum"):
            group[k] = check_float(fn, k, group[k], lo=0.0)
        group["centered"], group["maximize"] = bool(group["centered"]), bool(group["maximize"])
        return group

    def _state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("step", "square_avg") + (("momentum_buffer",) if group["momentum"] > 0 else ()) \
            + (("grad_avg",) if group["centered"] else ())

    def _update(self, p: Parameter, grad: Any, group: dict[str, Any]) -> None:
        lr, alpha, eps, wd, momentum = (group[k] for k in
                                        ("lr", "alpha", "eps", "weight_decay", "momentum"))
        state = self._state(p)
        if not state:
            state["step"] = _scalar_step()
            state["square_avg"] = np.zeros_like(p.data)
            if momentum > 0:
                state["momentum_buffer"] = np.zeros_like(p.data)
            if group["centered"]:
                state["grad_avg"] = np.zeros_like(p.data)
        square_avg = state["square_avg"]
        g = -grad if group["maximize"] else grad
        state["step"] += 1
        if wd != 0:
            g = g + wd * p.data                                   # grad.add(param, alpha=wd)
        addcmul_(mul_(square_avg, alpha), g, g, value=1 - alpha)
        if group["centered"]:
            grad_avg = lerp_(state["grad_avg"], g, 1 - alpha)
            avg = np.sqrt(addcmul_(square_avg.copy(), grad_avg, grad_avg, value=-1))
        else:
            avg = np.sqrt(square_avg)
        avg += eps
        if momentum > 0:
            buf = addcdiv_(mul_(state["momentum_buffer"], momentum), g, avg)
            add_(p.data, buf, alpha=-lr)
        else:
            addcdiv_(p.data, g, avg, value=-lr)
