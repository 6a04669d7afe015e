"""Adadelta: the chapter's optimizer."""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from .._validate import check_float
from ..nn.module import Parameter
from ..parallel import chunked
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

    Speed: the update runs in place, through two scratch arrays kept per (shape, dtype) outside
    ``state`` (so the state_dict stays torch's), with no temporaries; it is elementwise, so a
    large parameter is split over ``scratchnn.parallel``'s threads (bit-identical to one call).
    """

    def __init__(self, params: Iterable[Any], lr: float = 1.0, rho: float = 0.9,
                 eps: float = 1e-6, weight_decay: float = 0, *, maximize: bool = False) -> None:
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay,
                                      maximize=maximize))
        self._scratch: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

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
        key = (p.data.shape, p.data.dtype)
        scratch = self._scratch.get(key)
        if scratch is None:
            scratch = self._scratch[key] = (np.empty_like(p.data), np.empty_like(p.data))
        chunked(_adadelta_step(lr, rho, eps), square_avg, acc_delta, g, *scratch, out=p.data)


def _adadelta_step(lr: float, rho: float, eps: float):
    """The update as one elementwise function ``f(v, u, g, t1, t2, out=θ)`` for ``chunked``:
    it updates v, u and θ in place, with t1 and t2 as scratch, in torch's order of operations
    (each line's torch form on the right), so every intermediate rounds as torch's does."""
    def step(v, u, g, t1, t2, out):
        v *= rho                                                  # square_avg.mul_(rho)
        np.multiply(g, 1 - rho, out=t1)                           # .addcmul_(g, g, 1 − rho):
        t1 *= g                                                   #   v + ((1 − rho)·g)·g
        v += t1
        np.add(v, eps, out=t2)                                    # std = square_avg.add(eps)
        np.sqrt(t2, out=t2)                                       #       .sqrt_()
        np.add(u, eps, out=t1)                                    # delta = acc_delta.add(eps)
        np.sqrt(t1, out=t1)                                       #         .sqrt_()
        t1 /= t2                                                  # delta.div_(std)
        t1 *= g                                                   #      .mul_(grad)
        u *= rho                                                  # acc_delta.mul_(rho)
        np.multiply(t1, 1 - rho, out=t2)                          # .addcmul_(delta, delta,
        t2 *= t1                                                  #           value=1 − rho)
        u += t2
        np.multiply(t1, -lr, out=t2)                              # param.add_(delta,
        out += t2                                                 #            alpha=−lr)
        return out
    return step
