"""Losses, the textbook edition: a scalar (or per-element) score of a prediction against a
target, forward and backward.

Notation: ``x`` input (prediction), ``t`` target, ``ℓ`` the per-element loss, ``L`` the reduced
output, ``g`` the upstream gradient after the reduction's backward:

* ``reduction='none'``: ``L = ℓ`` and ``g = dL``;
* ``'sum'``:  ``L = Σ ℓ`` and ``g = dL`` broadcast to ℓ's shape;
* ``'mean'``: ``L = Σ ℓ / D`` and ``g = dL / D``, where ``D`` is the number of elements — or,
  for ``nll_loss``/``cross_entropy`` with class indices, the summed weight ``Σ w[t]`` of the
  non-ignored targets, and for weighted ``mse_loss``/``l1_loss`` the summed weight (torch's
  rules). A mean over nothing is ``0/0 = nan``, as in torch.

Every op mirrors ``torch.nn.functional`` (names, positional order, keywords, defaults, the
deprecated ``size_average``/``reduce`` included) and its conventions at kinks: ``l1`` uses
sign(0) = 0, ``smooth_l1`` switches to the linear branch at ``|d| = beta`` and ``huber`` at
``|d| = delta`` (the gradient is continuous there anyway), ``binary_cross_entropy`` clamps each
log at −100, ``kl_div`` reads ``0·log 0 = 0``.

What is differentiated (``scratchnn.vjp``): always ``input``; the float ``target`` of
``mse_loss``, ``l1_loss``, ``smooth_l1_loss``, ``huber_loss``, ``binary_cross_entropy``,
``binary_cross_entropy_with_logits``, ``kl_div`` and class-probability ``cross_entropy`` (as in
torch). Integer class targets get ``None``. ``weight`` and ``pos_weight`` are options, never
differentiated (torch refuses to differentiate them for nll/cross-entropy/BCE): pass them by
keyword; passed positionally, their pullback entry is ``None``.

``cross_entropy`` is ``log_softmax`` (this package's) followed by the negative log-likelihood of
the targets, and its input gradient is the classic softmax − onehot (derived in docs/loss.md).
``scratchnn.functional`` names the same functions for every loss except ``nll_loss`` and
``cross_entropy``, whose fast editions (:mod:`scratchnn.functional.loss`) the tests prove equal
to these.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .._validate import check_array, check_choice, check_float, check_int, check_same_dtype
from ..autodiff import defop
from .activation import SoftmaxCtx, log_softmax_backward, log_softmax_forward

Array = np.ndarray

__all__ = [
    "nll_loss", "nll_loss_forward", "nll_loss_backward",
    "cross_entropy", "cross_entropy_forward", "cross_entropy_backward",
    "mse_loss", "mse_loss_forward", "mse_loss_backward",
    "l1_loss", "l1_loss_forward", "l1_loss_backward",
    "smooth_l1_loss", "smooth_l1_loss_forward", "smooth_l1_loss_backward",
    "huber_loss", "huber_loss_forward", "huber_loss_backward",
    "binary_cross_entropy", "binary_cross_entropy_forward", "binary_cross_entropy_backward",
    "binary_cross_entropy_with_logits", "binary_cross_entropy_with_logits_forward",
    "binary_cross_entropy_with_logits_backward",
    "kl_div", "kl_div_forward", "kl_div_backward",
    "legacy_reduction",
]

REDUCTIONS = ("none", "mean", "sum")


# -- shared helpers: arguments, reduction and its backward ---------------------------------------
def legacy_reduction(fn: str, size_average: Any, reduce: Any, reduction: str,
                     choices: tuple[str, ...] = REDUCTIONS) -> str:
    """The reduction string, honouring torch's deprecated ``size_average``/``reduce`` pair.

    Either one given (not None) overrides ``reduction`` exactly as torch's
    ``_Reduction.legacy_get_string``: ``reduce=False`` → 'none', else ``size_average=False`` →
    'sum', else 'mean'.
    """
    if size_average is not None or reduce is not None:
        for name, v in (("size_average", size_average), ("reduce", reduce)):
            if v is not None and not isinstance(v, (bool, np.bool_)):
                raise TypeError(f"{fn}(): parameter '{name}' must be a bool or None, got {v!r}")
        size_average = True if size_average is None else bool(size_average)
        reduce = True if reduce is None else bool(reduce)
        return "none" if not reduce else ("mean" if size_average else "sum")
    return check_choice(fn, "reduction", reduction, choices)


def reduce_loss(loss: Array, reduction: str, denom: Any = None) -> Array:
    """``loss`` itself, its sum, or its sum over ``denom`` (default: the element count)."""
    if reduction == "none":
        return np.asarray(loss)                   # 0-d arithmetic gives scalars: keep arrays
    total = np.asarray(loss.sum(), dtype=loss.dtype)
    if reduction == "sum":
        return total
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(total / (loss.size if denom is None else denom), dtype=loss.dtype)


def expand_grad(dout: Array, reduction: str, shape: tuple, denom: Any = None) -> Array:
    """The reduction's backward: ``dL`` broadcast to ℓ's shape, divided by D for 'mean'
    (default D: the element count of ``shape``)."""
    if reduction == "none":
        return dout
    if reduction == "mean":
        with np.errstate(invalid="ignore", divide="ignore"):
            dout = dout / (int(np.prod(shape)) if denom is None else denom)
    return np.broadcast_to(dout, shape)


def _check_pair(fn: str, input: Any, target: Any) -> None:
    """A float input and a float target of the same shape and dtype (no silent broadcasting)."""
    check_array(fn, "input", input)
    check_array(fn, "target", target)
    check_same_dtype(fn, "input", input, target=target)
    if target.shape != input.shape:
        raise ValueError(f"{fn}(): parameter 'target' must have the input's shape {input.shape}, "
                         f"got {target.shape}")


def _check_broadcast(fn: str, name: str, w: Any, input: Array, exact: bool = False) -> None:
    """An optional float array that broadcasts to (``exact``: equals) the input's shape."""
    if w is None:
        return
    check_array(fn, name, w)
    check_same_dtype(fn, "input", input, **{name: w})
    try:
        ok = np.broadcast_shapes(w.shape, input.shape) == input.shape
    except ValueError:
        ok = False
    if exact and w.shape != input.shape or not ok:
        how = "have" if exact else "broadcast to"
        raise ValueError(f"{fn}(): parameter '{name}' must {how} the input's shape "
                         f"{input.shape}, got {w.shape}")


def _check_class_weight(fn: str, input: Array, weight: Any) -> int:
    """The number of classes C (axis 0 of an unbatched input, else axis 1); an optional weight
    must have shape (C,)."""
    C = input.shape[0 if input.ndim == 1 else 1]
    if weight is not None:
        check_array(fn, "weight", weight, ndim=1)
        check_same_dtype(fn, "input", input, weight=weight)
        if weight.shape != (C,):
            raise ValueError(f"{fn}(): parameter 'weight' must have shape ({C},) (one weight "
                             f"per class), got {weight.shape}")
    return C


class ClassTargets(NamedTuple):
    """Class-index targets in batched form: the class axis is 1, unbatched inputs get N = 1."""
    x: Array          # (N, C, *)
    safe: Array       # (N, *) target with ignored entries replaced by class 0 (a valid index)
    keep: Array       # (N, *) bool: target != ignore_index
    w_t: Array        # (N, *) weight of each target class, 0 where ignored
    total: Array      # Σ w_t: the 'mean' denominator
    plain: bool       # no weight and nothing ignored: w_t is all ones (the fast engine's
                      # shortcut; the textbook does not need it)


def class_targets(fn: str, input: Any, target: Any, weight: Any,
                  ignore_index: Any) -> ClassTargets:
    """Validate (input, class-index target, weight, ignore_index) and gather each target's
    weight. Input (C,) with target (); (N, C) with (N,); (N, C, d1, ...) with (N, d1, ...)."""
    check_array(fn, "input", input)
    ignore_index = check_int(fn, "ignore_index", ignore_index)
    if input.ndim == 0:
        raise ValueError(f"{fn}(): parameter 'input' must have at least 1 dimension (C,) or "
                         f"(N, C, ...), got a 0-d array")
    if isinstance(target, np.integer):                  # a 0-d index taken out of an array
        target = np.asarray(target)
    if not isinstance(target, np.ndarray):
        raise TypeError(f"{fn}(): parameter 'target' must be a numpy.ndarray of class "
                        f"indices, got {type(target).__name__}")
    if target.dtype.kind not in "iu":
        raise TypeError(f"{fn}(): parameter 'target' must hold integer class indices, "
                        f"got dtype {target.dtype}")
    want = () if input.ndim == 1 else (input.shape[0],) + input.shape[2:]
    if target.shape != want:
        raise ValueError(f"{fn}(): parameter 'target' must have shape {want} for an input of "
                         f"shape {input.shape}, got {target.shape}")
    C = _check_class_weight(fn, input, weight)
    keep = target != ignore_index
    if target.size and (target.min() < 0 or target.max() >= C):       # two cheap reductions
        bad = keep & ((target < 0) | (target >= C))                    # first: usually fine
        if bad.any():
            raise ValueError(f"{fn}(): parameter 'target' holds class index "
                             f"{target[bad].flat[0]}, outside [0, {C - 1}] (and not "
                             f"ignore_index={ignore_index})")
    x = input if input.ndim >= 2 else input[None]                       # (N, C, *)
    keep = keep if input.ndim >= 2 else keep[None]                      # (N, *)
    t = target if input.ndim >= 2 else target[None]
    all_kept = bool(keep.all())
    safe = t if all_kept else np.where(keep, t, 0)
    if weight is None:
        w_t = keep.astype(input.dtype)
    else:
        w_t = np.where(keep, weight[safe], 0).astype(input.dtype, copy=False)
    return ClassTargets(x, safe, keep, w_t, np.asarray(w_t.sum(), dtype=input.dtype),
                        all_kept and weight is None)


def gather(x: Array, idx: Array) -> Array:
    """``x[n, idx[n, *], *]``: (N, C, *) at (N, *) class indices -> (N, *)."""
    return np.take_along_axis(x, idx[:, None], axis=1)[:, 0]           # (N, *)


def scatter(shape: tuple, idx: Array, values: Array, dtype: Any) -> Array:
    """The adjoint of :func:`gather`: zeros of ``shape`` (N, C, *) with ``values`` at ``idx``."""
    out = np.zeros(shape, dtype=dtype)                                  # (N, C, *)
    np.put_along_axis(out, idx[:, None], values[:, None], axis=1)
    return out


# -- nll_loss -------------------------------------------------------------------------------------
class NllLossCtx(NamedTuple):
    ct: ClassTargets
    reduction: str
    unbatched: bool


def nll_loss_forward(input: Array, target: Array, weight: Array | None = None,
                     size_average: Any = None, ignore_index: int = -100, reduce: Any = None,
                     reduction: str = "mean") -> tuple[Array, NllLossCtx]:
    """ℓ_n = −w[t_n] · x[n, t_n]  (ℓ_n = 0 where t_n = ignore_index; w = 1 without weight)

    'mean' divides Σ ℓ by Σ_n w[t_n] over the non-ignored targets (nan when that is 0).

    Shapes:  x (C,), t () -> ℓ ();  x (N, C), t (N,) -> ℓ (N,);
             x (N, C, d1, ...), t (N, d1, ...) -> ℓ (N, d1, ...); L () unless 'none'.
             t holds integer class indices in [0, C) or ignore_index.
    Saves:   the gathered target indices and weights w[t] (the gradient is −w[t] at x[n, t_n]
             and zero elsewhere, so x itself is not needed).
    Backward:
             dx[n, c] = −w[t_n] · g_n  if c = t_n (not ignored), else 0
    Torch:   torch.nn.functional.nll_loss
    """
    fn = "nll_loss"
    red = legacy_reduction(fn, size_average, reduce, reduction)
    ct = class_targets(fn, input, target, weight, ignore_index)
    picked = gather(ct.x, ct.safe)                                      # x[n, t_n]: (N, *)
    loss = np.where(ct.keep, -ct.w_t * picked, 0).astype(input.dtype)   # (N, *)
    if input.ndim == 1:
        loss = loss[0, ...]                                             # 0-d, still an array
    return reduce_loss(loss, red, ct.total), NllLossCtx(ct, red, input.ndim == 1)


def nll_loss_backward(ctx: NllLossCtx, dout: Array) -> tuple[Array, None]:
    """dx = scatter of −w[t] · g at the target classes (g = dL, or dL / Σ w[t] for 'mean')"""
    ct = ctx.ct
    if ctx.unbatched and ctx.reduction == "none":
        dout = dout[None]
    g = -expand_grad(dout, ctx.reduction, ct.w_t.shape, ct.total)      # (N, *)
    with np.errstate(invalid="ignore"):                                # 0·∞ when Σ w[t] = 0
        picked = np.where(ct.keep, ct.w_t * g, 0)                      # ∂L/∂x[n, t_n]: (N, *)
    dx = scatter(ct.x.shape, ct.safe, picked, ct.x.dtype)              # (N, C, *)
    return (dx[0] if ctx.unbatched else dx), None


nll_loss = defop(nll_loss_forward, nll_loss_backward)


# -- cross_entropy --------------------------------------------------------------------------------
class CrossEntropyTargets(NamedTuple):
    """cross_entropy's arguments, checked, in batched form (class axis 1), and the coefficients
    a of ℓ_n = −Σ_c a[n, c] · logp[n, c]: everything that does not need the logits' values."""
    x: Array                     # (N, C, *) the logits
    coef: Array                  # (N, C, *) a
    tscale: Any                  # ∂a/∂t for probability targets: w_c (1 − ε), else None
    denom: Any                   # the 'mean' denominator
    ct: Any                      # ClassTargets for class indices, None for probabilities
    wb: Any                      # the class weight as (C, 1, ...), or None
    eps: float                   # label_smoothing
    reduction: str
    unbatched: bool              # input (C,): worked on as (1, C)


def cross_entropy_targets(input: Array, target: Array, weight: Array | None = None,
                          size_average: Any = None, ignore_index: int = -100,
                          reduce: Any = None, reduction: str = "mean",
                          label_smoothing: float = 0.0) -> CrossEntropyTargets:
    """Validate cross_entropy's arguments (both editions) and build the coefficients a."""
    fn = "cross_entropy"
    red = legacy_reduction(fn, size_average, reduce, reduction)
    eps = check_float(fn, "label_smoothing", label_smoothing, lo=0.0, hi=1.0)
    prob = isinstance(target, np.ndarray) and target.dtype.kind == "f"
    ct = None
    if prob:
        check_int(fn, "ignore_index", ignore_index)
        if ignore_index >= 0:
            raise ValueError(f"{fn}(): parameter 'ignore_index' is not supported with "
                             f"class-probability (float) targets, got {ignore_index}")
        _check_pair(fn, input, target)
        if input.ndim == 0:
            raise ValueError(f"{fn}(): parameter 'input' must have at least 1 dimension")
        C = _check_class_weight(fn, input, weight)
        x = input if input.ndim >= 2 else input[None]                   # (N, C, *)
        t = target if input.ndim >= 2 else target[None]
    else:
        ct = class_targets(fn, input, target, weight, ignore_index)
        x, C = ct.x, ct.x.shape[1]
    wb = None if weight is None else weight.reshape((C,) + (1,) * (x.ndim - 2))  # (C, 1, ...)
    if prob:
        q = t * (1 - eps) + eps / C if eps > 0 else t                   # smoothed targets
        coef = q if wb is None else q * wb
        tscale = (1 - eps) * (np.ones((C,) + (1,) * (x.ndim - 2), x.dtype) if wb is None else wb)
        denom = x.size // C if C else 0
    else:
        coef = scatter(x.shape, ct.safe, (1 - eps) * ct.w_t, x.dtype)   # (1 − ε) w[t] one-hot
        if eps > 0:
            smooth = (eps / C) * (1 if wb is None else wb)
            coef = np.where(ct.keep[:, None], coef + smooth, 0).astype(x.dtype, copy=False)
        tscale, denom = None, ct.total
    return CrossEntropyTargets(x, coef, tscale, denom, ct, wb, eps, red, input.ndim == 1)


def cross_entropy_loss(ce: CrossEntropyTargets, logp: Array) -> Array:
    """The reduced loss from the log-probabilities logp (N, C, *) = log_softmax(x, dim=1)."""
    red, eps, ct, C = ce.reduction, ce.eps, ce.ct, logp.shape[1]
    if ct is None:                                                      # probabilities
        loss = -(logp * ce.coef).sum(axis=1)                            # (N, *)
    else:
        nll = np.where(ct.keep, -gather(logp, ct.safe), 0)              # −logp[n, t_n]
        loss = ct.w_t * nll
        if eps > 0:
            uniform = np.where(ct.keep, -(logp * (1 if ce.wb is None else ce.wb)).sum(axis=1), 0)
            if red != "mean":
                loss = (1 - eps) * loss + (eps / C) * uniform
    loss = loss.astype(logp.dtype, copy=False)
    if ce.unbatched:
        loss = loss[0, ...]
    if ct is not None and eps > 0 and red == "mean":   # as torch, the two terms are averaged
        nll_mean = reduce_loss(loss, red, ce.denom)     # apart: with Σ w[t_n] = 0 the first
        uniform_mean = reduce_loss(uniform.astype(logp.dtype, copy=False), red, ce.denom)
        return np.asarray((1 - eps) * nll_mean + (eps / C) * uniform_mean, logp.dtype)
    return reduce_loss(loss, red, ce.denom)                             # is 0/0 = NaN


class CrossEntropyCtx(NamedTuple):
    lsm: SoftmaxCtx              # log_softmax's context: logp (N, C, *), p = exp(logp)
    coef: Array                  # (N, C, *) a: the loss is ℓ_n = −Σ_c a[n, c] · logp[n, c]
    denom: Any                   # the 'mean' denominator
    reduction: str
    unbatched: bool
    prob_target: bool
    tscale: Any                  # ∂a/∂t for probability targets: w_c (1 − ε), else None
    keep: Any                    # (N, *) non-ignored class targets (None for probabilities)


def cross_entropy_ctx(ce: CrossEntropyTargets, lsm: SoftmaxCtx) -> CrossEntropyCtx:
    """What the backward reads: log_softmax's context and the coefficients."""
    return CrossEntropyCtx(lsm, ce.coef, ce.denom, ce.reduction, ce.unbatched, ce.ct is None,
                           ce.tscale, None if ce.ct is None else ce.ct.keep)


def cross_entropy_forward(input: Array, target: Array, weight: Array | None = None,
                          size_average: Any = None, ignore_index: int = -100,
                          reduce: Any = None, reduction: str = "mean",
                          label_smoothing: float = 0.0) -> tuple[Array, CrossEntropyCtx]:
    """ℓ_n = −Σ_c a[n, c] · logp[n, c],  logp = log_softmax(x) over the class axis

    with ε = label_smoothing, C classes, w = weight (1 without):
      class indices t: a[n, c] = (1 − ε) w[t_n] [c = t_n] + (ε / C) w_c, and a = 0 where
                       t_n = ignore_index; 'mean' divides by Σ_n w[t_n] (non-ignored),
                       the two terms apart as torch does (Σ w[t_n] = 0 gives NaN);
      probabilities t (same shape as x): a[n, c] = w_c ((1 − ε) t[n, c] + ε / C);
                       'mean' divides by the number of samples N·d1·… (torch's rule).
    Without weight and smoothing this is nll_loss(log_softmax(x, dim=1), t).

    Shapes:  x (C,) or (N, C, d1, ...); t () / (N, d1, ...) integer, or x's shape (float);
             ℓ x's shape without the class axis; L () unless 'none'.
    Saves:   log_softmax's context (logp: p = exp(logp) is all the backward needs of x), a.
    Backward:
             dx[n, c] = g_n (p[n, c] · Σ_c' a[n, c'] − a[n, c])   (= g_n (p − onehot(t_n)))
             dt[n, c] = −g_n (1 − ε) w_c logp[n, c]            (probability targets only)
    Torch:   torch.nn.functional.cross_entropy
    """
    ce = cross_entropy_targets(input, target, weight, size_average, ignore_index, reduce,
                               reduction, label_smoothing)
    logp, lsm = log_softmax_forward(ce.x, dim=1)                        # (N, C, *)
    return cross_entropy_loss(ce, logp), cross_entropy_ctx(ce, lsm)


def cross_entropy_upstream(ctx: CrossEntropyCtx, dout: Array) -> tuple[Array, Array]:
    """(g, dlogp): the reduction's backward g (N, 1, *) and dlogp = −g a (N, C, *), exactly 0
    at ignored targets (even when g = dL / 0)."""
    if ctx.unbatched and ctx.reduction == "none":
        dout = dout[None]
    logp = ctx.lsm.y
    shape = logp.shape[:1] + logp.shape[2:]
    g = expand_grad(dout, ctx.reduction, shape, ctx.denom)[:, None]     # (N, 1, *)
    with np.errstate(invalid="ignore"):                                # 0·∞ when Σ w[t] = 0
        dlogp = -g * ctx.coef                                           # (N, C, *)
        if ctx.keep is not None:
            dlogp = np.where(ctx.keep[:, None], dlogp, 0).astype(dlogp.dtype, copy=False)
    return g, dlogp


def cross_entropy_backward(ctx: CrossEntropyCtx, dout: Array) -> tuple[Array, Array | None]:
    """dlogp = −g a;  dx = dlogp − p Σ_c dlogp;  dt = −g (1 − ε) w logp (probabilities)"""
    g, dlogp = cross_entropy_upstream(ctx, dout)                       # (N, 1, *), (N, C, *)
    with np.errstate(invalid="ignore"):
        dx = log_softmax_backward(ctx.lsm, dlogp)                       # dlogp − p Σ dlogp
    dt = -g * ctx.tscale * ctx.lsm.y if ctx.prob_target else None
    if ctx.unbatched:
        dx, dt = dx[0], (None if dt is None else dt[0])
    return dx, dt


cross_entropy = defop(cross_entropy_forward, cross_entropy_backward)


# -- regression losses: mse, l1, smooth_l1, huber -------------------------------------------------
class PointwiseCtx(NamedTuple):
    """What every elementwise loss's backward reads: ∂ℓ/∂x per element, and how to expand."""
    dldx: Array                  # ∂ℓ/∂x (weight included); ∂ℓ/∂t = −∂ℓ/∂x for these losses
    reduction: str
    denom: Any


def _pointwise_backward(ctx: PointwiseCtx, dout: Array) -> tuple[Array, Array]:
    """dx = g ⊙ ∂ℓ/∂x,  dt = −dx (ℓ depends on x − t only)"""
    dx = np.asarray(expand_grad(dout, ctx.reduction, ctx.dldx.shape, ctx.denom) * ctx.dldx)
    return dx, -dx


def _difference_loss(fn: str, input: Array, target: Array, red: str, weight: Array | None,
                     elementwise: Any) -> tuple[Array, PointwiseCtx]:
    """mse/l1: (ℓ, ∂ℓ/∂x) = elementwise(x − t), times w; weighted 'mean' divides by Σ w."""
    _check_pair(fn, input, target)
    _check_broadcast(fn, "weight", weight, input, exact=True)
    loss, dldx = elementwise(input - target)
    if weight is not None:
        loss, dldx = loss * weight, dldx * weight
    denom = None if weight is None else weight.sum()
    return reduce_loss(loss, red, denom), PointwiseCtx(dldx, red, denom)


def mse_loss_forward(input: Array, target: Array, size_average: Any = None, reduce: Any = None,
                     reduction: str = "mean", weight: Array | None = None
                     ) -> tuple[Array, PointwiseCtx]:
    """ℓ = w (x − t)²;  'mean' divides by the element count, or by Σ w when weighted

    Shapes:  x (*), t (*), weight (*) (same shape) -> ℓ (*), L () unless 'none'.
    Saves:   ∂ℓ/∂x = 2 w (x − t).
    Backward:
             dx = 2 w (x − t) g,  dt = −dx
    Torch:   torch.nn.functional.mse_loss
    """
    red = legacy_reduction("mse_loss", size_average, reduce, reduction)
    return _difference_loss("mse_loss", input, target, red, weight, lambda d: (d * d, 2 * d))


def mse_loss_backward(ctx: PointwiseCtx, dout: Array) -> tuple[Array, Array]:
    """dx = 2 w (x − t) g,  dt = −dx"""
    return _pointwise_backward(ctx, dout)


mse_loss = defop(mse_loss_forward, mse_loss_backward)


def l1_loss_forward(input: Array, target: Array, size_average: Any = None, reduce: Any = None,
                    reduction: str = "mean", weight: Array | None = None
                    ) -> tuple[Array, PointwiseCtx]:
    """ℓ = w |x − t|;  'mean' divides by the element count, or by Σ w when weighted

    Shapes:  x (*), t (*), weight (*) (same shape) -> ℓ (*), L () unless 'none'.
    Saves:   ∂ℓ/∂x = w sign(x − t), with sign(0) = 0 (torch's convention at the kink).
    Backward:
             dx = w sign(x − t) g,  dt = −dx
    Torch:   torch.nn.functional.l1_loss
    """
    red = legacy_reduction("l1_loss", size_average, reduce, reduction)
    return _difference_loss("l1_loss", input, target, red, weight,
                            lambda d: (np.abs(d), np.sign(d)))


def l1_loss_backward(ctx: PointwiseCtx, dout: Array) -> tuple[Array, Array]:
    """dx = w sign(x − t) g,  dt = −dx"""
    return _pointwise_backward(ctx, dout)


l1_loss = defop(l1_loss_forward, l1_loss_backward)


def smooth_l1_loss_forward(input: Array, target: Array, size_average: Any = None,
                           reduce: Any = None, reduction: str = "mean", beta: float = 1.0
                           ) -> tuple[Array, PointwiseCtx]:
    """ℓ = 0.5 d² / β  if |d| < β,  else |d| − 0.5 β   (d = x − t; β = 0 gives l1_loss)

    Shapes:  x (*), t (*) -> ℓ (*), L () unless 'none'.
    Saves:   ∂ℓ/∂x = d / β inside (−β, β), sign(d) outside — at |d| = β both read ±1.
    Backward:
             dx = g · (d / β if |d| < β else sign(d)),  dt = −dx   (β = 0: sign(0) = 0)
    Torch:   torch.nn.functional.smooth_l1_loss
    """
    fn = "smooth_l1_loss"
    red = legacy_reduction(fn, size_average, reduce, reduction)
    beta = check_float(fn, "beta", beta, lo=0.0)
    _check_pair(fn, input, target)
    d = input - target
    z = np.abs(d)
    if beta == 0:                                  # torch dispatches to l1_loss
        return reduce_loss(z, red), PointwiseCtx(np.sign(d), red, None)
    loss = np.where(z < beta, 0.5 * z * z / beta, z - 0.5 * beta)
    dldx = np.where(d <= -beta, -1.0, np.where(d >= beta, 1.0, d / beta)).astype(d.dtype)
    return reduce_loss(loss.astype(d.dtype, copy=False), red), PointwiseCtx(dldx, red, None)


def smooth_l1_loss_backward(ctx: PointwiseCtx, dout: Array) -> tuple[Array, Array]:
    """dx = g · clip(d / β, −1, 1),  dt = −dx"""
    return _pointwise_backward(ctx, dout)


smooth_l1_loss = defop(smooth_l1_loss_forward, smooth_l1_loss_backward)


def huber_loss_forward(input: Array, target: Array, reduction: str = "mean", delta: float = 1.0,
                       weight: Array | None = None) -> tuple[Array, PointwiseCtx]:
    """ℓ = w · (0.5 d²  if |d| < δ,  else δ (|d| − 0.5 δ))   (d = x − t; = δ · smooth_l1 with β = δ)

    'mean' divides by the element count, weighted or not (torch's rule for huber).

    Shapes:  x (*), t (*), weight (*) (same shape) -> ℓ (*), L () unless 'none'.
    Saves:   ∂ℓ/∂x = w · clip(d, −δ, δ) (the branch switches at |d| = δ, where both read ±δ).
    Backward:
             dx = w g clip(d, −δ, δ),  dt = −dx
    Torch:   torch.nn.functional.huber_loss
    """
    fn = "huber_loss"
    red = check_choice(fn, "reduction", reduction, REDUCTIONS)
    delta = check_float(fn, "delta", delta, lo=0.0, lo_open=True)
    _check_pair(fn, input, target)
    _check_broadcast(fn, "weight", weight, input, exact=True)
    d = input - target
    z = np.abs(d)
    loss = np.where(z < delta, 0.5 * z * z, delta * (z - 0.5 * delta)).astype(d.dtype, copy=False)
    dldx = np.where(d <= -delta, -delta, np.where(d >= delta, delta, d)).astype(d.dtype)
    if weight is not None:
        loss, dldx = loss * weight, dldx * weight
    return reduce_loss(loss, red), PointwiseCtx(dldx, red, None)


def huber_loss_backward(ctx: PointwiseCtx, dout: Array) -> tuple[Array, Array]:
    """dx = w g clip(d, −δ, δ),  dt = −dx"""
    return _pointwise_backward(ctx, dout)


huber_loss = defop(huber_loss_forward, huber_loss_backward)


# -- binary cross-entropy -------------------------------------------------------------------------
class BinaryCtx(NamedTuple):
    dldx: Array                  # ∂ℓ/∂x
    dldt: Array                  # ∂ℓ/∂t
    reduction: str


def _binary_backward(ctx: BinaryCtx, dout: Array) -> tuple[Array, Array]:
    g = expand_grad(dout, ctx.reduction, ctx.dldx.shape)
    return np.asarray(g * ctx.dldx), np.asarray(g * ctx.dldt)


def binary_cross_entropy_forward(input: Array, target: Array, weight: Array | None = None,
                                 size_average: Any = None, reduce: Any = None,
                                 reduction: str = "mean") -> tuple[Array, BinaryCtx]:
    """ℓ = −w (t · max(log x, −100) + (1 − t) · max(log(1 − x), −100)),  x, t ∈ [0, 1]

    The clamp at −100 keeps ℓ finite at x ∈ {0, 1} (torch's convention).

    Shapes:  x (*), t (*), weight broadcastable to (*) -> ℓ (*), L () unless 'none'.
    Saves:   ∂ℓ/∂x and ∂ℓ/∂t (both read x: recomputing would need x and t anyway).
    Backward (torch's formulas, the denominator clamped at 1e-12):
             dx = w g (x − t) / max(x (1 − x), 1e-12)
             dt = −w g logit(x) = w g (log(1 − x) − log x)
    Torch:   torch.nn.functional.binary_cross_entropy
    """
    fn = "binary_cross_entropy"
    red = legacy_reduction(fn, size_average, reduce, reduction)
    _check_pair(fn, input, target)
    _check_broadcast(fn, "weight", weight, input)
    for name, a in (("input", input), ("target", target)):
        if a.size and not ((a >= 0) & (a <= 1)).all():
            raise ValueError(f"{fn}(): parameter '{name}' must hold probabilities in [0, 1], "
                             f"got values in [{a.min()}, {a.max()}]")
    x, t = input, target
    with np.errstate(divide="ignore"):
        log_x = np.maximum(np.log(x), -100.0)
        log_1mx = np.maximum(np.log1p(-x), -100.0)
        loss = (t - 1) * log_1mx - t * log_x
        dldx = (x - t) / np.maximum((1 - x) * x, 1e-12)
        dldt = -np.log(x / (1 - x))
    if weight is not None:
        loss, dldx, dldt = loss * weight, dldx * weight, dldt * weight
    return reduce_loss(loss, red), BinaryCtx(dldx, dldt, red)


def binary_cross_entropy_backward(ctx: BinaryCtx, dout: Array) -> tuple[Array, Array]:
    """dx = w g (x − t) / max(x (1 − x), 1e-12),  dt = −w g logit(x)"""
    return _binary_backward(ctx, dout)


binary_cross_entropy = defop(binary_cross_entropy_forward, binary_cross_entropy_backward)


def _log_sigmoid(x: Array) -> Array:
    """log σ(x) = min(x, 0) − log(1 + e^{−|x|}): never exp of a large positive number."""
    return np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))


def binary_cross_entropy_with_logits_forward(
        input: Array, target: Array, weight: Array | None = None, size_average: Any = None,
        reduce: Any = None, reduction: str = "mean", pos_weight: Array | None = None
) -> tuple[Array, BinaryCtx]:
    """ℓ = w ((1 − t) x − (1 + (p − 1) t) log σ(x)),   p = pos_weight (1 without)

    which is −w (p t log σ(x) + (1 − t) log σ(−x)) written without ever forming σ(x) = 0 or 1:
    stable for any finite logit x.

    Shapes:  x (*), t (*), weight and pos_weight broadcastable to (*) -> ℓ (*),
             L () unless 'none' (pos_weight is usually (C,) against (N, C)).
    Saves:   ∂ℓ/∂x and ∂ℓ/∂t.
    Backward:
             dx = w g ((p t + 1 − t) σ(x) − p t)          (= w g (σ(x) − t) without p)
             dt = w g (log σ(−x) − p log σ(x))            (= −w g x without p)
    Torch:   torch.nn.functional.binary_cross_entropy_with_logits
    """
    fn = "binary_cross_entropy_with_logits"
    red = legacy_reduction(fn, size_average, reduce, reduction)
    _check_pair(fn, input, target)
    _check_broadcast(fn, "weight", weight, input)
    _check_broadcast(fn, "pos_weight", pos_weight, input)
    x, t = input, target
    log_sig = _log_sigmoid(x)
    sig = np.exp(log_sig)
    if pos_weight is None:
        loss = (1 - t) * x - log_sig
        dldx, dldt = sig - t, -x
    else:
        loss = (1 - t) * x - ((pos_weight - 1) * t + 1) * log_sig
        pt = pos_weight * t
        dldx = (pt + 1 - t) * sig - pt
        dldt = _log_sigmoid(-x) - log_sig * pos_weight
    if weight is not None:
        loss, dldx, dldt = loss * weight, dldx * weight, dldt * weight
    return reduce_loss(loss, red), BinaryCtx(dldx, dldt, red)


def binary_cross_entropy_with_logits_backward(ctx: BinaryCtx, dout: Array
                                              ) -> tuple[Array, Array]:
    """dx = w g ((p t + 1 − t) σ(x) − p t),  dt = w g (log σ(−x) − p log σ(x))"""
    return _binary_backward(ctx, dout)


binary_cross_entropy_with_logits = defop(binary_cross_entropy_with_logits_forward,
                                         binary_cross_entropy_with_logits_backward)


# -- kl_div ---------------------------------------------------------------------------------------
class KlDivCtx(NamedTuple):
    dldx: Array
    dldt: Array
    reduction: str
    denom: Any


def kl_div_forward(input: Array, target: Array, size_average: Any = None, reduce: Any = None,
                   reduction: str = "mean", log_target: bool = False) -> tuple[Array, KlDivCtx]:
    """ℓ = t (log t − x)   (x = log q, t = p; 0 · log 0 = 0, torch's xlogy),
    or with ``log_target``: ℓ = eᵗ (t − x)   (t = log p)

    'mean' divides by the element count; 'batchmean' (the KL divergence proper) by the batch
    size x.shape[0] (0-d inputs: no division).

    Shapes:  x (*), t (*) -> ℓ (*), L () unless 'none'.
    Saves:   ∂ℓ/∂x and ∂ℓ/∂t.
    Backward:
             dx = −t g,                dt = g (log t + 1 − x)    (dt = nan at t = 0, as torch)
             log_target: dx = −eᵗ g,   dt = g eᵗ (t − x + 1)
    Torch:   torch.nn.functional.kl_div
    """
    fn = "kl_div"
    red = legacy_reduction(fn, size_average, reduce, reduction, REDUCTIONS + ("batchmean",))
    if not isinstance(log_target, (bool, np.bool_)):
        raise TypeError(f"{fn}(): parameter 'log_target' must be a bool, got {log_target!r}")
    _check_pair(fn, input, target)
    x, t = input, target
    with np.errstate(divide="ignore", invalid="ignore"):
        if log_target:
            e = np.exp(t)
            loss, dldx, dldt = e * (t - x), -e, e * (t - x + 1)
        else:
            log_t = np.log(t)
            loss = np.where(t == 0, 0, t * log_t).astype(x.dtype, copy=False) - t * x
            dldx = -t
            dldt = np.where(t == 0, np.nan, log_t + 1 - x).astype(x.dtype, copy=False)
    denom = None
    if red == "batchmean":
        red, denom = ("mean", x.shape[0]) if x.ndim else ("sum", None)
    return reduce_loss(loss, red, denom), KlDivCtx(dldx, dldt, red, denom)


def kl_div_backward(ctx: KlDivCtx, dout: Array) -> tuple[Array, Array]:
    """dx = g ∂ℓ/∂x,  dt = g ∂ℓ/∂t"""
    g = expand_grad(dout, ctx.reduction, ctx.dldx.shape, ctx.denom)
    return np.asarray(g * ctx.dldx), np.asarray(g * ctx.dldt)


kl_div = defop(kl_div_forward, kl_div_backward)
