"""Adadelta: the chapter's optimizer."""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from .._validate import check_float
from ..nn.module import Parameter
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

    Speed: the update is elementwise, so it runs in place over blocks of ``_BLOCK`` elements,
    with two block-sized scratch arrays kept per dtype outside ``state`` (the state_dict stays
    torch's): each block of θ, g, v, u is brought into cache once for all 16 passes instead of
    once per pass. In a training step, where the backward pass has just evicted the optimizer's
    buffers, this takes the chapter's step from ~0.95 to ~0.75 ms. (Splitting over threads was
    measured slower there: BLAS's worker threads still spin on the other core after the
    backward pass.) Every block computes the same formula, so the result is bit-identical to one
    call over the whole parameter.
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
        if not all(a.flags.c_contiguous for a in arrays):                 # rare: no blocks
            step(square_avg, acc_delta, g, np.empty_like(g), np.empty_like(g), out=p.data)
            return
        scratch = self._scratch.get(p.data.dtype)
        if scratch is None:
            scratch = self._scratch[p.data.dtype] = (np.empty(_BLOCK, p.data.dtype),
                                                     np.empty(_BLOCK, p.data.dtype))
        v, u, gf, theta = (a.reshape(-1) for a in arrays)                 # views
        n = theta.size
        for i in range(0, n, _BLOCK):
            j = min(i + _BLOCK, n)
            step(v[i:j], u[i:j], gf[i:j], scratch[0][:j - i], scratch[1][:j - i], out=theta[i:j])


_BLOCK = 1 << 16      # elements per block: θ, g, v, u and two scratch blocks fit in L2 (1.5 MiB)


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
