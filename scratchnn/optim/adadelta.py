"""Adadelta, the chapter's optimizer: θ ← θ − γΔ,  Δ = √(u + ε) / √(v + ε) · g.

The plain formula is ``scratchnn.textbook.optim.adadelta_step``; this fast edition computes the
same update in place, in torch's order of operations, bit for bit the textbook's result (the
tests check it, on both routes). Its one decision, :func:`choose_route`, picks between running
the elementwise update block by block (``scratchnn.perf.inplace.blocked``) and one call over the
whole array; ``ROUTES`` names the settings that force each route.
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from .._validate import check_float
from ..nn.module import Parameter
from ..perf import inplace
from .optimizer import Optimizer, _scalar_step

__all__ = ["Adadelta"]

BLOCKED = True      # False forces the whole-array route

ROUTES: dict[str, dict[str, object]] = {
    "blocked": {"BLOCKED": True, "scratchnn.perf.inplace.BLOCK": 7},   # many tiny blocks
    "whole": {"BLOCKED": False},
}


def choose_route(arrays: tuple[np.ndarray, ...]) -> str:
    """``"blocked"`` when every operand is C-contiguous (so flat views exist) and ``BLOCKED``;
    else ``"whole"``: one call over the whole arrays with full-size temporaries (rare: a
    non-contiguous parameter)."""
    if BLOCKED and all(a.flags.c_contiguous for a in arrays):
        return "blocked"
    return "whole"


class Adadelta(Optimizer):
    """torch.optim.Adadelta, step for step; the formula is
    ``scratchnn.textbook.optim.adadelta_step``. For each parameter θ with gradient g (γ = lr,
    ρ = rho, ε = eps, λ = weight_decay)::

        g ← −g                     if maximize
        g ← g + λθ                 if λ ≠ 0
        v ← ρv + (1 − ρ)g²                        (square_avg)
        Δ ← √(u + ε) / √(v + ε) · g               (u: acc_delta)
        u ← ρu + (1 − ρ)Δ²
        θ ← θ − γΔ

    State per parameter: ``step``, ``square_avg`` v, ``acc_delta`` u.

    Speed: the update is elementwise, so it runs in place over blocks of
    ``scratchnn.perf.inplace.BLOCK`` elements, with two block-sized scratch arrays kept per
    dtype outside ``state`` (the state_dict stays torch's): each block of θ, g, v, u is brought
    into cache once for all 16 passes instead of once per pass. In a training step, where the
    backward pass has just evicted the optimizer's buffers, this takes the chapter's step from
    ~0.95 to ~0.75 ms. (Splitting over threads was measured slower there: BLAS's worker threads
    still spin on the other core after the backward pass.) Every block computes the same
    formula, so the result is bit-identical to one call over the whole parameter.
    """

    def __init__(self, params: Iterable[Any], lr: float = 1.0, rho: float = 0.9,
                 eps: float = 1e-6, weight_decay: float = 0, *, maximize: bool = False) -> None:
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay,
                                      maximize=maximize))
        self._scratch: dict[np.dtype, tuple[np.ndarray, np.ndarray]] = {}

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
        step = _adadelta_step(lr, rho, eps)
        arrays = (square_avg, acc_delta, g, p.data)
        if choose_route(arrays) == "whole":
            step(square_avg, acc_delta, g, np.empty_like(g), np.empty_like(g), out=p.data)
            return
        scratch = inplace.scratch_blocks(self._scratch, p.data.dtype, 2)
        inplace.blocked(step, (square_avg, acc_delta, g), p.data, scratch)


def _adadelta_step(lr: float, rho: float, eps: float):
    """The update as one elementwise function ``f(v, u, g, t1, t2, out=θ)``:
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
