"""Adam and AdamW: θ ← θ − γ m̂ / (√v̂ + ε), the bias-corrected running mean m̂ of g over the
running root mean square √v̂ of g; AdamW decays θ itself (decoupled weight decay); AMSGrad.

The plain formulas are ``scratchnn.textbook.optim.adam_step`` and ``adamw_step``; this fast
edition writes the same update into ``p.data`` and the state in place, in torch's order of
operations (``lerp_`` for m, the bias corrections folded into the step size and the
denominator), so it agrees with the textbook formula to rounding.
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from .._validate import check_float
from ..nn.module import Parameter
from ..perf.inplace import addcdiv_, addcmul_, lerp_, mul_
from .optimizer import Optimizer, _scalar_step

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    """torch.optim.Adam, step for step; the formula is ``scratchnn.textbook.optim.adam_step``.
    For each parameter θ with gradient g at step t (γ = lr,
    β₁, β₂ = betas, λ = weight_decay, ε = eps)::

        g ← −g                                  if maximize
        θ ← θ(1 − γλ)   if decoupled_weight_decay (AdamW),  else  g ← g + λθ     if λ ≠ 0
        m ← m + (1 − β₁)(g − m)                 (lerp: the running mean of g)
        v ← β₂v + (1 − β₂)g²
        v̂ ← max(v̂, v)                           if amsgrad (v̂ replaces v below)
        θ ← θ − (γ / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)

    State per parameter: ``step`` (float32 0-d, as torch), ``exp_avg`` m, ``exp_avg_sq`` v and,
    with amsgrad, ``max_exp_avg_sq`` v̂.
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, amsgrad: bool = False, *, maximize: bool = False,
                 decoupled_weight_decay: bool = False) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize,
                                      decoupled_weight_decay=decoupled_weight_decay))

    def _check(self, fn: str, group: dict[str, Any]) -> dict[str, Any]:
        super()._check(fn, group)
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"{fn}(): parameter 'betas' must be a pair (beta1, beta2), "
                             f"got {betas!r}")
        group["betas"] = (check_float(fn, "betas[0]", betas[0], lo=0.0, hi=1.0, hi_open=True),
                          check_float(fn, "betas[1]", betas[1], lo=0.0, hi=1.0, hi_open=True))
        group["eps"] = check_float(fn, "eps", group["eps"], lo=0.0)
        group["weight_decay"] = check_float(fn, "weight_decay", group["weight_decay"], lo=0.0)
        for k in ("amsgrad", "maximize", "decoupled_weight_decay"):
            group[k] = bool(group[k])
        return group

    def _state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        keys = ("step", "exp_avg", "exp_avg_sq")
        return keys + ("max_exp_avg_sq",) if group["amsgrad"] else keys

    def _update(self, p: Parameter, grad: Any, group: dict[str, Any]) -> None:
        lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], \
            group["weight_decay"]
        state = self._state(p)
        if not state:
            state["step"] = _scalar_step()
            state["exp_avg"] = np.zeros_like(p.data)
            state["exp_avg_sq"] = np.zeros_like(p.data)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = np.zeros_like(p.data)
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        g = -grad if group["maximize"] else grad
        state["step"] += 1
        if wd != 0:
            if group["decoupled_weight_decay"]:
                mul_(p.data, 1 - lr * wd)
            else:
                g = g + wd * p.data                               # grad.add(param, alpha=wd)
        lerp_(exp_avg, g, 1 - beta1)
        addcmul_(mul_(exp_avg_sq, beta2), g, g, value=1 - beta2)
        step = float(state["step"])
        bias_correction1 = 1 - beta1 ** step
        bias_correction2 = 1 - beta2 ** step
        step_size = lr / bias_correction1
        bias_correction2_sqrt = bias_correction2 ** 0.5
        if group["amsgrad"]:
            v = np.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
        else:
            v = exp_avg_sq
        denom = np.sqrt(v) / bias_correction2_sqrt + eps
        addcdiv_(p.data, exp_avg, denom, value=-step_size)


class AdamW(Adam):
    """torch.optim.AdamW: Adam with decoupled weight decay θ ← θ(1 − γλ) (default λ = 0.01)
    applied before the moment updates; see :class:`Adam`."""

    def __init__(self, params: Iterable[Any], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         decoupled_weight_decay=True)

    def _check(self, fn: str, group: dict[str, Any]) -> dict[str, Any]:
        group["decoupled_weight_decay"] = True                  # always, as torch's AdamW
        return super()._check(fn, group)
