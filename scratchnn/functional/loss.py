"""Losses, the fast engine: ℓ_n = −w[t_n] · x[n, t_n] (nll_loss) and ℓ_n = −log softmax(x_n)[t_n]
(cross_entropy), reduced by 'none', 'sum' or 'mean'; dx = g (softmax(x) − onehot(t)).

The textbook edition is :mod:`scratchnn.textbook.loss`: read it first. Every loss that is
already plain there (mse, l1, smooth_l1, huber, binary cross-entropy with and without logits,
kl_div) is re-exported here as the same function object, and so are the shared pieces
(``REDUCTIONS``, ``legacy_reduction``, the argument checks). Two losses have fast editions,
proved equal to their textbook twins by the tests:

* ``nll_loss``: without weights and with nothing ignored every target weight is 1, so the
  forward is the plain gather −x[n, t_n] and the backward the plain scatter of −g, without the
  masks and products (and a 2-d input is indexed directly, without ``take_along_axis``);
* ``cross_entropy``: the textbook's formulas around the fast ``log_softmax``
  (:mod:`scratchnn.functional.activation`: row blocks over threads on large inputs).

The route is decided in one place, :func:`choose_route`.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ..autodiff import defop
from ..textbook.loss import (  # noqa: F401  (the plain losses and shared pieces: one object)
    REDUCTIONS, BinaryCtx, ClassTargets, CrossEntropyCtx, KlDivCtx, PointwiseCtx,
    binary_cross_entropy, binary_cross_entropy_backward, binary_cross_entropy_forward,
    binary_cross_entropy_with_logits, binary_cross_entropy_with_logits_backward,
    binary_cross_entropy_with_logits_forward, class_targets, cross_entropy_ctx,
    cross_entropy_loss, cross_entropy_targets, cross_entropy_upstream, expand_grad, huber_loss,
    huber_loss_backward, huber_loss_forward, kl_div, kl_div_backward, kl_div_forward, l1_loss,
    l1_loss_backward, l1_loss_forward, legacy_reduction, mse_loss, mse_loss_backward,
    mse_loss_forward, reduce_loss, smooth_l1_loss, smooth_l1_loss_backward,
    smooth_l1_loss_forward)
from ..textbook import loss as T
from .activation import log_softmax_backward, log_softmax_forward

Array = np.ndarray

__all__ = list(T.__all__)

# route -> the settings that force it on small inputs (tests/test_textbook.py forces each);
# cross_entropy's routes are log_softmax's (scratchnn.functional.activation.ROUTES)
ROUTES: dict[str, dict[str, object]] = {
    "default": {},
    "log_softmax row blocks, 2 threads": {
        "scratchnn.functional.activation._ROW_BLOCK_BYTES": 1,
        "scratchnn.perf.threads.MIN_PARALLEL": 1, "scratchnn.perf.threads.MIN_PARALLEL_ROWS": 1,
        "scratchnn.perf.threads._threads": 2},
}


def choose_route(ct: ClassTargets) -> str:
    """The engine's one route decision, for nll_loss's class targets ``ct``:

    * ``'unweighted'`` — no weight and no target equal to ignore_index (``ct.plain``): every
      w[t_n] is 1, so ℓ = −x[n, t_n] and dx is the scatter of −g, without masks or products;
    * ``'weighted'`` — otherwise: the textbook's masked, weighted formulas.

    cross_entropy has no route of its own: its speed is log_softmax's (whose ``choose_route``
    picks row blocks for a large contiguous last axis).
    """
    return "unweighted" if ct.plain else "weighted"


def _gather(x: Array, idx: Array) -> Array:
    """``x[n, idx[n, *], *]``: (N, C, *) at (N, *) class indices -> (N, *)."""
    if x.ndim == 2:                                  # the common case, without take_along_axis
        return x[np.arange(len(idx)), idx]
    return np.take_along_axis(x, idx[:, None], axis=1)[:, 0]


def _scatter(shape: tuple, idx: Array, values: Array, dtype: Any) -> Array:
    """The adjoint of :func:`_gather`: zeros of ``shape`` (N, C, *) with ``values`` at ``idx``."""
    out = np.zeros(shape, dtype=dtype)
    if len(shape) == 2:
        out[np.arange(len(idx)), idx] = values
    else:
        np.put_along_axis(out, idx[:, None], values[:, None], axis=1)
    return out


# -- nll_loss -------------------------------------------------------------------------------------
class NllLossCtx(NamedTuple):
    ct: ClassTargets
    reduction: str
    unbatched: bool
    route: str                   # choose_route(ct)


def nll_loss_forward(input: Array, target: Array, weight: Array | None = None,
                     size_average: Any = None, ignore_index: int = -100, reduce: Any = None,
                     reduction: str = "mean") -> tuple[Array, NllLossCtx]:
    fn = "nll_loss"
    red = legacy_reduction(fn, size_average, reduce, reduction)
    ct = class_targets(fn, input, target, weight, ignore_index)
    route = choose_route(ct)
    picked = _gather(ct.x, ct.safe)                                     # (N, *)
    if route == "unweighted":                                           # w_t = 1: −1·x = −x
        loss = -picked
    else:
        loss = np.where(ct.keep, -ct.w_t * picked, 0).astype(input.dtype)
    if input.ndim == 1:
        loss = loss[0, ...]                                             # 0-d, still an array
    return reduce_loss(loss, red, ct.total), NllLossCtx(ct, red, input.ndim == 1, route)


nll_loss_forward.__doc__ = T.nll_loss_forward.__doc__


def nll_loss_backward(ctx: NllLossCtx, dout: Array) -> tuple[Array, None]:
    """dx = scatter of −w[t] · g at the target classes (g = dL, or dL / Σ w[t] for 'mean')"""
    ct = ctx.ct
    if ctx.unbatched and ctx.reduction == "none":
        dout = dout[None]
    g = -expand_grad(dout, ctx.reduction, ct.w_t.shape, ct.total)      # (N, *)
    if ctx.route == "unweighted":                                      # w_t = 1: 1·g = g
        dx = _scatter(ct.x.shape, ct.safe, g, ct.x.dtype)
    else:
        with np.errstate(invalid="ignore"):                            # 0·∞ when Σ w[t] = 0
            dx = _scatter(ct.x.shape, ct.safe, np.where(ct.keep, ct.w_t * g, 0), ct.x.dtype)
    return (dx[0] if ctx.unbatched else dx), None


nll_loss = defop(nll_loss_forward, nll_loss_backward)


# -- cross_entropy: the textbook's formulas around the fast log_softmax ---------------------------
def cross_entropy_forward(input: Array, target: Array, weight: Array | None = None,
                          size_average: Any = None, ignore_index: int = -100,
                          reduce: Any = None, reduction: str = "mean",
                          label_smoothing: float = 0.0) -> tuple[Array, CrossEntropyCtx]:
    ce = cross_entropy_targets(input, target, weight, size_average, ignore_index, reduce,
                               reduction, label_smoothing)
    logp, lsm = log_softmax_forward(ce.x, dim=1)                        # (N, C, *), fast
    return cross_entropy_loss(ce, logp), cross_entropy_ctx(ce, lsm)


cross_entropy_forward.__doc__ = T.cross_entropy_forward.__doc__


def cross_entropy_backward(ctx: CrossEntropyCtx, dout: Array) -> tuple[Array, Array | None]:
    """dlogp = −g a;  dx = dlogp − p Σ_c dlogp;  dt = −g (1 − ε) w logp (probabilities)"""
    g, dlogp = cross_entropy_upstream(ctx, dout)                       # (N, 1, *), (N, C, *)
    with np.errstate(invalid="ignore"):
        dx = log_softmax_backward(ctx.lsm, dlogp)                       # fast
    dt = -g * ctx.tscale * ctx.lsm.y if ctx.prob_target else None
    if ctx.unbatched:
        dx, dt = dx[0], (None if dt is None else dt[0])
    return dx, dt


cross_entropy = defop(cross_entropy_forward, cross_entropy_backward)
