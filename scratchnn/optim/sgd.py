"""Stochastic gradient descent: θ ← θ − γd, d = g, the momentum buffer b ← μb + (1 − τ)g, or
Nesterov's g + μb; with weight decay and maximize.

The plain formula is ``scratchnn.textbook.optim.sgd_step``; this fast edition writes the same
update into ``p.data`` and the buffer in place, in torch's order of operations (bit for bit the
textbook's result).
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from .._validate import check_float
from ..nn.module import Parameter
from ..perf.inplace import add_, mul_
from .optimizer import Optimizer

__all__ = ["SGD"]


class SGD(Optimizer):
    """torch.optim.SGD, step for step; the formula is ``scratchnn.textbook.optim.sgd_step``.
    For each parameter θ with gradient g (γ = lr, μ =
    momentum, τ = dampening, λ = weight_decay)::

        g ← −g                       if maximize
        g ← g + λθ                   if λ ≠ 0
        b ← g  (first step),  else  b ← μb + (1 − τ)g      if μ ≠ 0
        g ← g + μb  if nesterov,  else  g ← b             if μ ≠ 0
        θ ← θ − γg

    State per parameter (only when μ ≠ 0): ``momentum_buffer`` b.
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, momentum: float = 0,
                 dampening: float = 0, weight_decay: float = 0, nesterov: bool = False, *,
                 maximize: bool = False) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov,
                                      maximize=maximize))

    def _check(self, fn: str, group: dict[str, Any]) -> dict[str, Any]:
        super()._check(fn, group)
        group["momentum"] = check_float(fn, "momentum", group["momentum"], lo=0.0)
        group["dampening"] = check_float(fn, "dampening", group["dampening"])
        group["weight_decay"] = check_float(fn, "weight_decay", group["weight_decay"], lo=0.0)
        group["nesterov"], group["maximize"] = bool(group["nesterov"]), bool(group["maximize"])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(f"{fn}(): parameter 'nesterov' requires momentum > 0 and "
                             f"dampening = 0, got momentum={group['momentum']}, "
                             f"dampening={group['dampening']}")
        return group

    def _state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("momentum_buffer",) if group["momentum"] != 0 else ()

    def _update(self, p: Parameter, grad: Any, group: dict[str, Any]) -> None:
        lr, momentum, wd = group["lr"], group["momentum"], group["weight_decay"]
        g = -grad if group["maximize"] else grad
        if wd != 0:
            g = g + wd * p.data                                   # grad.add(param, alpha=wd)
        if momentum != 0:
            state = self._state(p)
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = np.array(g, copy=True)   # an array, even 0-d
            else:
                add_(mul_(buf, momentum), g, alpha=1 - group["dampening"])
            g = g + momentum * buf if group["nesterov"] else buf
        add_(p.data, g, alpha=-lr)
