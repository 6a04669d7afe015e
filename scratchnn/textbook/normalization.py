"""Normalization, the textbook edition: one core, five norms.

Every norm here is the same two steps over a different set of axes::

    x̂ = (x − μ) / σ,   μ = mean_A(x),  σ = √(mean_A((x − μ)²) + ε)      the core
    y = γ ⊙ x̂ + β                                                        the affine

    batch_norm     A = (N, *spatial)  per channel       γ, β of shape (C,)
    instance_norm  A = (*spatial)     per (n, c)        γ, β of shape (C,)
    group_norm     A = (C/G, *spatial) per (n, group)   γ, β of shape (C,)
    layer_norm     A = normalized_shape (trailing)      γ, β of normalized_shape
    rms_norm       A = normalized_shape, no centring (μ = 0)    γ only

so one forward (:func:`normalize_forward`) and one backward (:func:`normalize_backward`)
serve all five, and each op only chooses ``A`` and the shape γ and β broadcast in.
The backward of the core, derived in docs/normalization.md, is compact::

    dx = (1/σ) · (dx̂ − mean_A(dx̂) − x̂ · mean_A(dx̂ ⊙ x̂)),     dx̂ = γ ⊙ dy

Where the statistics are constants (batch norm in eval mode, instance norm with
``use_input_stats=False``: the running statistics) the backward is just ``dx = dx̂ / σ``.

Running statistics are the one thing an op here writes: ``batch_norm`` in training (and
``instance_norm`` with running statistics) updates ``running_mean``/``running_var`` in place,
exactly as torch does — the biased variance normalises, the unbiased one (× n/(n−1)) enters
``running_var``::

    running_mean ← (1 − momentum)·running_mean + momentum·μ
    running_var  ← (1 − momentum)·running_var  + momentum·σ²·n/(n − 1)

(``momentum=None``, a cumulative average, is the module's job: ``BatchNorm*d`` passes
``momentum = 1/num_batches_tracked``.)
"""
from __future__ import annotations

import math
import numbers
from typing import Any, NamedTuple

import numpy as np

from .._validate import check_array, check_bool, check_float, check_int, check_same_dtype
from ..autodiff import defop

Array = np.ndarray

__all__ = ["batch_norm", "layer_norm", "group_norm", "instance_norm", "rms_norm",
           "normalize_forward", "normalize_backward", "moments",
           "batch_norm_forward", "batch_norm_backward", "layer_norm_forward",
           "layer_norm_backward", "group_norm_forward", "group_norm_backward",
           "instance_norm_forward", "instance_norm_backward", "rms_norm_forward",
           "rms_norm_backward"]


# -- the core -----------------------------------------------------------------------------------
def _mean(a: Array, axes: tuple[int, ...]) -> Array:
    """mean over ``axes``, kept as size-1 axes. An empty reduction (a batch of 0) gives 0, not
    NaN: the outputs it would normalise are empty anyway."""
    n = math.prod(a.shape[i] for i in axes)
    return a.sum(axis=axes, keepdims=True) / max(n, 1)


def moments(x: Array, axes: tuple[int, ...], center: bool = True) -> tuple[Array | None, Array]:
    """μ = mean_A(x) and the biased σ² = mean_A((x − μ)²), both keepdims.
    ``center=False`` (RMS norm): μ is None and σ² = mean_A(x²), the mean square."""
    if not center:
        return None, _mean(x * x, axes)
    mean = _mean(x, axes)
    xc = x - mean
    return mean, _mean(xc * xc, axes)


class NormCtx(NamedTuple):
    xhat: Array                      # x̂: the backward is written in it
    rstd: Array                      # 1/σ, keepdims (broadcasts against x)
    axes: tuple[int, ...] | None     # the axes A the statistics came from; None: constants
    center: bool                     # False for RMS norm: μ = 0 was not subtracted


def normalize_forward(x: Array, mean: Array | None, var: Array, eps: float,
                      axes: tuple[int, ...] | None) -> tuple[Array, NormCtx]:
    """x̂ = (x − μ) / σ,   σ = √(σ² + ε)

    Shapes:  x (*), μ and σ² broadcastable to x (size 1 along the axes A) -> x̂ (*)
    Saves:   x̂ and 1/σ: the backward is written in them (no need to keep x or μ).
             ``axes`` are the axes A that μ and σ² were computed over from x itself (their
             gradient flows back into x); None when they are constants (running statistics).
             ``mean=None`` means no centring (RMS norm).
    """
    rstd = 1.0 / np.sqrt(var + eps)                     # python eps: float32 stays float32
    xhat = (x if mean is None else x - mean) * rstd
    return xhat, NormCtx(xhat, rstd, axes, mean is not None)


def normalize_backward(ctx: NormCtx, dxhat: Array) -> Array:
    """dx = (1/σ) · (dx̂ − mean_A(dx̂) − x̂ · mean_A(dx̂ ⊙ x̂))

    The three terms: the direct path through x − μ; the path through μ (every element moves
    the mean); the path through σ (∂σ/∂x = x̂/n). Without centring (RMS) the middle term is
    absent; with constant statistics only the first remains: dx = dx̂ / σ.

    x̂ is re-centred first. Exactly, mean_A(x̂) = 0; but μ was rounded (by up to half an ulp
    of μ), so the saved x̂ carries a constant offset of about ulp(μ)/σ, and on a sample of
    large mean and small spread the two projections above amplify it: a layer norm over
    K = 2 values near 2.8 (σ ≈ 0.12) in float32 gave dx off by 2.4× torch float32's own
    error before, 0.11× after (1500 random float32 cases: 1 failure of the tolerance → 0).
    """
    if ctx.axes is None:
        return dxhat * ctx.rstd
    xhat = ctx.xhat
    if ctx.center:
        xhat = xhat - _mean(xhat, ctx.axes)                   # the rounding of μ, removed
    g = dxhat - xhat * _mean(dxhat * xhat, ctx.axes)
    if ctx.center:
        g = g - _mean(dxhat, ctx.axes)
    return g * ctx.rstd


# -- the affine around it -------------------------------------------------------------------------
class AffineNormCtx(NamedTuple):
    norm: NormCtx                    # the core's context (x̂ may be a grouped view of x)
    weight: Array | None             # γ, because dx̂ = γ ⊙ dy (None: no γ)
    has_bias: bool
    pshape: tuple[int, ...]          # the shape γ and β broadcast in, e.g. (1, C, 1, 1)
    param_shape: tuple[int, ...]     # the shape of γ and β themselves, e.g. (C,)


def affine(xhat: Array, weight: Array | None, bias: Array | None,
           pshape: tuple[int, ...]) -> Array:
    """y = γ ⊙ x̂ + β, with γ and β seen in ``pshape`` (either may be None)."""
    y = xhat if weight is None else xhat * weight.reshape(pshape)
    return y if bias is None else y + bias.reshape(pshape)


def affine_norm_backward(ctx: AffineNormCtx, dy: Array
                         ) -> tuple[Array, Array | None, Array | None]:
    """Back through y = γ ⊙ x̂ + β, then through the core. Returns (dx, dγ, dβ):

        dγ = Σ dy ⊙ x̂,   dβ = Σ dy     (summed over every axis γ is broadcast along)
        dx̂ = γ ⊙ dy,     dx = normalize_backward(dx̂)
    """
    xhat = ctx.norm.xhat.reshape(dy.shape)                           # grouped view -> x's shape
    over = tuple(i for i, s in enumerate(ctx.pshape) if s == 1)      # γ's broadcast axes
    dweight = dbias = None
    dxhat = dy
    if ctx.weight is not None:
        dweight = (dy * xhat).sum(axis=over).reshape(ctx.param_shape)
        dxhat = dy * ctx.weight.reshape(ctx.pshape)
    if ctx.has_bias:
        dbias = dy.sum(axis=over).reshape(ctx.param_shape)
    dx = normalize_backward(ctx.norm, dxhat.reshape(ctx.norm.xhat.shape))
    return dx.reshape(dy.shape), dweight, dbias


def running_stats_grads(ctx: AffineNormCtx, dx: Array) -> tuple[Array | None, Array | None]:
    """(d running_mean, d running_var) where constant statistics normalised (eval):

        x̂ = (x − μ)·(σ² + ε)^(−1/2)  ⇒  dμ = −Σ dx,   dσ² = −½ Σ dx ⊙ x̂ / σ

    summed over all but the channel axis; (None, None) where the batch's own statistics did.
    """
    if ctx.norm.axes is not None:
        return None, None
    over = tuple(i for i, s in enumerate(ctx.pshape) if s == 1)
    dmean = -dx.sum(axis=over).reshape(ctx.param_shape)                     # (C,)
    dvar = -0.5 * (dx * ctx.norm.xhat).sum(axis=over).reshape(ctx.param_shape) \
        * ctx.norm.rstd.reshape(ctx.param_shape)                            # (C,)
    return dmean, dvar


# -- argument checks both editions share --------------------------------------------------------
def check_params(fn: str, x: Array, shape: tuple[int, ...], **params: Any) -> None:
    """γ/β (and running statistics) are None or float arrays of exactly ``shape`` in x's dtype."""
    for name, a in params.items():
        if a is None:
            continue
        check_array(fn, name, a)
        if a.shape != shape:
            raise ValueError(f"{fn}(): parameter '{name}' must have shape {shape} (one entry "
                             f"per {'channel' if len(shape) == 1 else 'normalized element'}), "
                             f"got {a.shape}")
        check_same_dtype(fn, "input", x, **{name: a})


def check_running(fn: str, running_mean: Any, running_var: Any) -> bool:
    """Both running statistics or neither (torch's rule); True if given."""
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{fn}(): parameters 'running_mean' and 'running_var' must both be "
                         f"None or both be arrays")
    return running_mean is not None


def check_normalized_shape(fn: str, x: Array, normalized_shape: Any) -> tuple[int, ...]:
    """``normalized_shape`` (an int or a sequence of ints) must be the input's trailing shape."""
    if isinstance(normalized_shape, numbers.Integral) and not isinstance(normalized_shape, bool):
        normalized_shape = (normalized_shape,)
    if not isinstance(normalized_shape, (tuple, list)) or not normalized_shape:
        raise TypeError(f"{fn}(): parameter 'normalized_shape' must be an int or a non-empty "
                        f"sequence of ints, got {normalized_shape!r}")
    shape = tuple(check_int(fn, "normalized_shape", s, min=0) for s in normalized_shape)
    if x.shape[x.ndim - len(shape):] != shape or len(shape) > x.ndim:
        raise ValueError(f"{fn}(): parameter 'normalized_shape' {list(shape)} must match the "
                         f"input's trailing shape: expected input of shape [*, "
                         f"{', '.join(map(str, shape))}], got {x.shape}")
    return shape


def update_running(running_mean: Array, running_var: Array, mean: Array, var: Array, n: int,
                   momentum: float) -> None:
    """In place, as torch: r ← (1 − m)·r + m·stat, with the unbiased σ²·n/(n − 1) for the
    variance. ``mean``/``var`` are per channel, shape (C,); nothing to do for an empty batch."""
    if n == 0:
        return
    running_mean[...] = momentum * mean + (1 - momentum) * running_mean
    running_var[...] = momentum * (var * (n / (n - 1))) + (1 - momentum) * running_var


def check_count(fn: str, x: Array, n: int, what: str) -> None:
    """Statistics need more than one value: n = 1 is refused, as torch ("Expected more than 1
    value per channel when training"); n = 0 (an empty batch) is allowed."""
    if n == 1:
        raise ValueError(f"{fn}(): parameter 'input' must have more than 1 {what} (torch: "
                         f"\"Expected more than 1 value per channel when training\"), got "
                         f"input of shape {x.shape}")


def check_input(fn: str, input: Any, eps: Any, *, min_ndim: int = 1) -> Array:
    """``input`` a float array of at least ``min_ndim`` dimensions; ``eps`` a number ≥ 0."""
    x = check_array(fn, "input", input)
    if x.ndim < min_ndim:
        raise ValueError(f"{fn}(): parameter 'input' must have at least {min_ndim} "
                         f"dimensions, got shape {x.shape}")
    check_float(fn, "eps", eps, lo=0.0)
    return x


# -- batch norm -----------------------------------------------------------------------------------
def check_batch_norm(input: Any, running_mean: Any, running_var: Any, weight: Any, bias: Any,
                     training: Any, momentum: Any, eps: Any) -> tuple[Array, bool, float, int]:
    """batch_norm's arguments (both editions): returns (x, training, momentum, n), n the
    number of values per channel."""
    fn = "batch_norm"
    x = check_input(fn, input, eps, min_ndim=2)
    has_running = check_running(fn, running_mean, running_var)
    C = x.shape[1]
    check_params(fn, x, (C,), running_mean=running_mean, running_var=running_var,
                 weight=weight, bias=bias)
    training = check_bool(fn, "training", training)
    momentum = check_float(fn, "momentum", momentum)
    n = x.shape[0] * math.prod(x.shape[2:])                          # values per channel
    if training:
        check_count(fn, x, n, "value per channel when training")
    elif not has_running:
        raise ValueError(f"{fn}(): parameters 'running_mean' and 'running_var' must be given "
                         f"in evaluation mode (training=False)")
    return x, training, momentum, n


def batch_norm_forward(input: Array, running_mean: Array | None, running_var: Array | None,
                       weight: Array | None = None, bias: Array | None = None,
                       training: bool = False, momentum: float = 0.1, eps: float = 1e-5
                       ) -> tuple[Array, AffineNormCtx]:
    """y = γ ⊙ (x − μ)/√(σ² + ε) + β, statistics per channel over the batch and space

    Training: μ, σ² of this batch over A = (N, *spatial) (σ² biased), and the running
    statistics, when given, are updated in place (unbiased σ², see the module docstring).
    Eval: μ, σ² are ``running_mean``/``running_var``, constants.
    Shapes:  x (N, C, *), running stats, γ, β (C,) -> y (N, C, *)
    Saves:   the core's x̂ and 1/σ, and γ.
    Torch:   torch.nn.functional.batch_norm
    """
    x, training, momentum, n = check_batch_norm(input, running_mean, running_var, weight,
                                                bias, training, momentum, eps)
    C = x.shape[1]
    axes = (0,) + tuple(range(2, x.ndim))                 # everything but the channel
    pshape = (1, C) + (1,) * (x.ndim - 2)
    if training:
        mean, var = moments(x, axes)                       # (1, C, 1, ...) each
        if running_mean is not None:
            update_running(running_mean, running_var, mean.reshape(C), var.reshape(C), n,
                           momentum)
    else:
        mean, var, axes = running_mean.reshape(pshape), running_var.reshape(pshape), None
    xhat, norm = normalize_forward(x, mean, var, eps, axes)
    y = affine(xhat, weight, bias, pshape)
    return y, AffineNormCtx(norm, weight, bias is not None, pshape, (C,))


def batch_norm_backward(ctx: AffineNormCtx, dy: Array) -> tuple:
    """dx = (γ/σ)·(dy − mean_A(dy) − x̂·mean_A(dy ⊙ x̂)) per channel (training; in eval
    dx = γ·dy/σ); dγ = Σ_A dy ⊙ x̂; dβ = Σ_A dy.

    Eval reads the running statistics, so they have a gradient like any input (torch
    computes none; the module drops it); in training they do not enter y (None)."""
    dx, dweight, dbias = affine_norm_backward(ctx, dy)
    return (dx, *running_stats_grads(ctx, dx), dweight, dbias)


batch_norm = defop(batch_norm_forward, batch_norm_backward)


# -- instance norm --------------------------------------------------------------------------------
def instance_norm_forward(input: Array, running_mean: Array | None = None,
                          running_var: Array | None = None, weight: Array | None = None,
                          bias: Array | None = None, use_input_stats: bool = True,
                          momentum: float = 0.1, eps: float = 1e-5
                          ) -> tuple[Array, AffineNormCtx]:
    """y = γ ⊙ (x − μ)/√(σ² + ε) + β, statistics per sample and channel over space

    ``use_input_stats``: μ, σ² of each (n, c) over A = (*spatial); running statistics, when
    given, move towards the batch mean of the per-instance statistics (in place, unbiased σ²).
    Otherwise μ, σ² are the running statistics, constants.
    Shapes:  x (N, C, *), running stats, γ, β (C,) -> y (N, C, *)
    Saves:   the core's x̂ and 1/σ, and γ.
    Torch:   torch.nn.functional.instance_norm
    """
    fn = "instance_norm"
    x = check_input(fn, input, eps, min_ndim=2)
    has_running = check_running(fn, running_mean, running_var)
    N, C = x.shape[:2]
    check_params(fn, x, (C,), running_mean=running_mean, running_var=running_var,
                 weight=weight, bias=bias)
    use_input_stats = check_bool(fn, "use_input_stats", use_input_stats)
    momentum = check_float(fn, "momentum", momentum)
    axes = tuple(range(2, x.ndim))                        # space only
    pshape = (1, C) + (1,) * (x.ndim - 2)
    m = math.prod(x.shape[2:])                            # values per instance
    if use_input_stats:
        check_count(fn, x, m, "spatial element when using input statistics")
        mean, var = moments(x, axes)                       # (N, C, 1, ...) each
        if has_running and N:
            update_running(running_mean, running_var, mean.reshape(N, C).mean(0),
                           var.reshape(N, C).mean(0), m, momentum)
    elif not has_running:
        raise ValueError(f"{fn}(): parameters 'running_mean' and 'running_var' must be given "
                         f"when use_input_stats is False")
    else:
        mean, var, axes = running_mean.reshape(pshape), running_var.reshape(pshape), None
    xhat, norm = normalize_forward(x, mean, var, eps, axes)
    return affine(xhat, weight, bias, pshape), AffineNormCtx(norm, weight, bias is not None,
                                                             pshape, (C,))


def instance_norm_backward(ctx: AffineNormCtx, dy: Array) -> tuple:
    """The core's backward per (n, c) over space, then dγ = Σ dy ⊙ x̂, dβ = Σ dy over
    (N, *spatial). With use_input_stats=False the running statistics get their gradient
    (see batch_norm_backward); otherwise None."""
    dx, dweight, dbias = affine_norm_backward(ctx, dy)
    return (dx, *running_stats_grads(ctx, dx), dweight, dbias)


instance_norm = defop(instance_norm_forward, instance_norm_backward)


# -- group norm -----------------------------------------------------------------------------------
def group_norm_forward(input: Array, num_groups: int, weight: Array | None = None,
                       bias: Array | None = None, eps: float = 1e-5
                       ) -> tuple[Array, AffineNormCtx]:
    """y = γ ⊙ (x − μ)/√(σ² + ε) + β, statistics per sample and group of C/G channels

    The channels are split into G groups; μ, σ² are taken per (n, g) over the group's
    channels and all of space: x seen as (N, G, C/G · spatial), A = the last axis.
    Shapes:  x (N, C, *), γ, β (C,) -> y (N, C, *)
    Saves:   the core's x̂ (grouped view) and 1/σ, and γ.
    Torch:   torch.nn.functional.group_norm
    """
    fn = "group_norm"
    x = check_input(fn, input, eps, min_ndim=2)
    G = check_int(fn, "num_groups", num_groups, min=1)
    N, C = x.shape[:2]
    if C % G:
        raise ValueError(f"{fn}(): parameter 'num_groups' ({G}) must divide the number of "
                         f"channels, got input of shape {x.shape} with {C} channels")
    check_params(fn, x, (C,), weight=weight, bias=bias)
    check_count(fn, x, N * (C // G) * math.prod(x.shape[2:]),   # torch's check, for parity
                "value per group over the batch")
    xg = x.reshape(N, G, (C // G) * math.prod(x.shape[2:]))          # (N, G, C/G·spatial)
    mean, var = moments(xg, (2,))                                     # (N, G, 1)
    xhat, norm = normalize_forward(xg, mean, var, eps, (2,))
    pshape = (1, C) + (1,) * (x.ndim - 2)
    y = affine(xhat.reshape(x.shape), weight, bias, pshape)           # (N, C, *)
    return y, AffineNormCtx(norm, weight, bias is not None, pshape, (C,))


def group_norm_backward(ctx: AffineNormCtx, dy: Array) -> tuple:
    """dx̂ = γ ⊙ dy, seen grouped (N, G, C/G · spatial), through the core over the last axis;
    dγ = Σ dy ⊙ x̂, dβ = Σ dy over (N, *spatial)."""
    dx, dweight, dbias = affine_norm_backward(ctx, dy)
    return dx, None, dweight, dbias


group_norm = defop(group_norm_forward, group_norm_backward)


# -- layer norm and RMS norm ----------------------------------------------------------------------
def layer_norm_forward(input: Array, normalized_shape: Any, weight: Array | None = None,
                       bias: Array | None = None, eps: float = 1e-5
                       ) -> tuple[Array, AffineNormCtx]:
    """y = γ ⊙ (x − μ)/√(σ² + ε) + β, statistics per sample over the trailing dimensions

    A = the last len(normalized_shape) axes; γ and β have ``normalized_shape``.
    Shapes:  x (*, *normalized_shape), γ, β normalized_shape -> y (same as x)
    Saves:   the core's x̂ and 1/σ, and γ.
    Torch:   torch.nn.functional.layer_norm
    """
    fn = "layer_norm"
    x = check_input(fn, input, eps)
    shape = check_normalized_shape(fn, x, normalized_shape)
    check_params(fn, x, shape, weight=weight, bias=bias)
    axes = tuple(range(x.ndim - len(shape), x.ndim))
    mean, var = moments(x, axes)                                      # (*, 1, ..., 1)
    xhat, norm = normalize_forward(x, mean, var, eps, axes)
    pshape = (1,) * (x.ndim - len(shape)) + shape
    return affine(xhat, weight, bias, pshape), AffineNormCtx(norm, weight, bias is not None,
                                                             pshape, shape)


def layer_norm_backward(ctx: AffineNormCtx, dy: Array) -> tuple:
    """dx = (1/σ)·(dx̂ − mean_A(dx̂) − x̂·mean_A(dx̂ ⊙ x̂)), dx̂ = γ ⊙ dy, per sample;
    dγ = Σ dy ⊙ x̂, dβ = Σ dy over the leading dimensions."""
    dx, dweight, dbias = affine_norm_backward(ctx, dy)
    return dx, None, dweight, dbias


layer_norm = defop(layer_norm_forward, layer_norm_backward)


def rms_norm_forward(input: Array, normalized_shape: Any, weight: Array | None = None,
                     eps: float | None = None) -> tuple[Array, AffineNormCtx]:
    """y = γ ⊙ x / √(mean_A(x²) + ε), over the trailing dimensions; no centring, no β

    The core with μ = 0: σ² is the mean square. ``eps=None`` is the dtype's machine epsilon
    (``np.finfo(x.dtype).eps``), as torch.
    Shapes:  x (*, *normalized_shape), γ normalized_shape -> y (same as x)
    Saves:   the core's x̂ = x/σ and 1/σ, and γ.
    Torch:   torch.nn.functional.rms_norm
    """
    fn = "rms_norm"
    x = check_array(fn, "input", input)
    eps = float(np.finfo(x.dtype).eps) if eps is None else check_float(fn, "eps", eps, lo=0.0)
    shape = check_normalized_shape(fn, x, normalized_shape)
    check_params(fn, x, shape, weight=weight)
    axes = tuple(range(x.ndim - len(shape), x.ndim))
    _, ms = moments(x, axes, center=False)                            # (*, 1, ..., 1)
    xhat, norm = normalize_forward(x, None, ms, eps, axes)
    pshape = (1,) * (x.ndim - len(shape)) + shape
    return affine(xhat, weight, None, pshape), AffineNormCtx(norm, weight, False, pshape, shape)


def rms_norm_backward(ctx: AffineNormCtx, dy: Array) -> tuple:
    """dx = (1/σ)·(dx̂ − x̂·mean_A(dx̂ ⊙ x̂)), dx̂ = γ ⊙ dy (the core without its mean term);
    dγ = Σ dy ⊙ x̂ over the leading dimensions."""
    dx, dweight, _ = affine_norm_backward(ctx, dy)
    return dx, None, dweight


rms_norm = defop(rms_norm_forward, rms_norm_backward)
