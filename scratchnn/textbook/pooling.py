"""Pooling, the textbook edition: max, min, average, power-average (lp), adaptive, max_unpool.

Notation: input ``x`` ``(N, C, *S)`` or unbatched ``(C, *S)`` with ``d = len(S)`` spatial dims,
output ``y`` ``(N, C, *O)``; ``dz`` means ∂L/∂z. ``x_pad`` is ``x`` padded by ``p`` (and, with
ceil_mode, a little more on the high side). Window ``o`` sees, at kernel offset ``j``, the element
``x_pad[o·s + j·dil]``; one window op is::

    max pooling      y[o] = max_j x_pad[o·s + j·dil]          (x_pad padded with −∞)
    min pooling      y[o] = min_j x_pad[o·s + j·dil]          (x_pad padded with +∞)
    average pooling  y[o] = Σ_j x_pad[o·s + j] / D[o]         (x_pad padded with 0)
    lp pooling       y[o] = (Σ_j x[o·s + j]^p)^{1/p}

Every op is ONE N-d implementation that the 1d, 2d and 3d functions call, and every one reads
its windows the same way (:func:`scratchnn.window.offset_slices`): loop over the few kernel
offsets ``j``; the slice ``x_pad[..., j·dil :: s]`` holds, for every batch, channel and window
at once, what each window sees at offset ``j``. A pooling forward is a running max (min, sum)
over those slices; its backward adds into the same slices.

Conventions (torch's): a max/min tie sends the index and the gradient to the FIRST extreme
element in window order; a NaN always wins and the last NaN of a window is the one reported;
indices are flat positions in each input plane (``h·W + w`` in 2d), int64. Min pooling, which
torch lacks, has max pooling's signature and equals ``−max_pool(−x)``.

The fast edition is :mod:`scratchnn.functional.pooling`; argument checks and window geometry
both editions share live in :mod:`scratchnn.textbook._pooling_args`.
"""
from __future__ import annotations

import inspect
import math
from typing import Any, Iterable, NamedTuple

import numpy as np

from .._validate import check_bool, ntuple
from ..autodiff import defop
from ..window import offset_slices, pad, unpad
from ._pooling_args import (Geometry, adaptive_bounds, adaptive_output_size, avg_geometry,
                            check_input, check_norm_type, first_real_offset, flat_indices,
                            geometry, outer, padded_size, plane_strides, unpool_args)

Array = np.ndarray

__all__ = [
    "max_pool1d", "max_pool2d", "max_pool3d", "min_pool1d", "min_pool2d", "min_pool3d",
    "avg_pool1d", "avg_pool2d", "avg_pool3d", "lp_pool1d", "lp_pool2d", "lp_pool3d",
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
    "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
    "max_unpool1d", "max_unpool2d", "max_unpool3d",
]


def values_grad(dy: Any) -> Array:
    """The gradient of the pooled values (``dy`` is a pair when indices were returned)."""
    return dy[0] if isinstance(dy, tuple) else dy


# --------------------------------------------------------------------------- max and min
def running_extreme(views: Iterable[Array], largest: bool) -> tuple[Array, Array]:
    """``m = max_j v_j`` elementwise (min if not ``largest``) and ``kid``, the ``j`` that won.

    A later value must be strictly better to win, so a tie keeps the first extreme; a NaN
    always wins, so the last NaN is kept (torch's ``v > m || isnan(v)``)."""
    beats = np.greater if largest else np.less
    for j, v in enumerate(views):
        if j == 0:
            m, kid = v.copy(), np.zeros(v.shape, np.int64)
            continue
        wins = beats(v, m) | np.isnan(v)
        m = np.where(wins, v, m)
        kid = np.where(wins, j, kid)
    return m, kid


class MaxPoolCtx(NamedTuple):
    kid: Array                 # (N, C, *O) the kernel offset that won each window
    geom: Geometry
    shape: tuple[int, ...]     # the input's shape


def max_pool_forward(fn: str, nd: int, largest: bool, input: Array, kernel_size: Any,
                     stride: Any, padding: Any, dilation: Any, ceil_mode: Any,
                     return_indices: Any) -> tuple[Any, MaxPoolCtx]:
    """y[o] = max_j x_pad[o·s + j·dil]   (min_j for min pooling; x_pad padded with ∓∞)

    Shapes:  x (N, C, *S) or (C, *S) -> y (N, C, *O) [, indices (N, C, *O) int64]
             O = ⌊(S + 2p − dil·(k − 1) − 1) / s⌋ + 1   (⌈·⌉ with ceil_mode)
    Saves:   kid, the kernel offset that won each window: y depends on that element only.
    """
    check_input(fn, input, nd)
    g = geometry(fn, input, nd, kernel_size, stride, padding, dilation, ceil_mode)
    return_indices = check_bool(fn, "return_indices", return_indices)
    fill = -np.inf if largest else np.inf              # padding can never win
    xp = pad(input, g.pads, fill)                      # (N, C, *(S + lo + hi))
    seen = (xp[(..., *sl)] for _, sl in offset_slices(g.kernel, g.stride, g.dilation, g.out))
    y, kid = running_extreme(seen, largest)            # (N, C, *O) each
    # A window whose extreme is ∓∞ (real ∓∞ tied with the padding, or padding only):
    # torch reports the window's first real element.
    kid = np.where(y == fill, first_real_offset(g), kid)
    out = (y, flat_indices(kid, g)) if return_indices else y
    return out, MaxPoolCtx(kid, g, input.shape)


def max_pool_backward(ctx: MaxPoolCtx, dy: Any) -> Array:
    """dx_pad[o·s + j·dil] += dy[o] · [kid[o] = j]   for every kernel offset j

    Only the winner of a window gets its gradient (the max is locally a copy of it); a tied
    window sends it to the first maximum, the one the forward kept. Within one offset the
    windows see distinct elements, so ``+=`` on the slice adds each contribution once; the
    padding's gradient is dropped (``unpad``).
    """
    g, dy = ctx.geom, values_grad(dy)                  # dy (N, C, *O)
    dxp = np.zeros(ctx.shape[:-len(g.size)] + padded_size(g), dy.dtype)
    for j, (_, sl) in enumerate(offset_slices(g.kernel, g.stride, g.dilation, g.out)):
        dxp[(..., *sl)] += np.where(ctx.kid == j, dy, 0)
    return np.ascontiguousarray(unpad(dxp, g.pads))    # (N, C, *S)


# --------------------------------------------------------------------------- average
class AvgPoolCtx(NamedTuple):
    divisor: Array             # (*O) or a scalar: what each window's sum was divided by
    geom: Geometry
    shape: tuple[int, ...]     # the input's shape


def avg_pool_forward(fn: str, nd: int, input: Array, kernel_size: Any, stride: Any,
                     padding: Any, ceil_mode: Any, count_include_pad: Any,
                     divisor_override: Any) -> tuple[Array, AvgPoolCtx]:
    """y[o] = Σ_j x_pad[o·s + j] / D[o]   (x_pad padded with zeros)

    D[o] is the window's size counting the padding (count_include_pad=True), or only its real
    elements (False), or divisor_override; a ceil_mode window cut short by the end counts only
    up to the padded end (:func:`scratchnn.textbook._pooling_args.avg_divisor`).

    Shapes:  x (N, C, *S) or (C, *S) -> y (N, C, *O)
    Saves:   D (y is linear in x: the backward needs nothing else).
    """
    g, D = avg_geometry(fn, nd, input, kernel_size, stride, padding, ceil_mode,
                        count_include_pad, divisor_override)
    xp = pad(input, g.pads)                            # (N, C, *(S + lo + hi)), zeros
    total = np.zeros(input.shape[:-nd] + g.out, input.dtype)            # (N, C, *O)
    for _, sl in offset_slices(g.kernel, g.stride, (1,) * nd, g.out):
        total += xp[(..., *sl)]
    return total / D, AvgPoolCtx(D, g, input.shape)


def avg_pool_backward(ctx: AvgPoolCtx, dy: Array) -> Array:
    """dx_pad[o·s + j] += dy[o] / D[o]   for every kernel offset j

    Every element of a window gets an equal share of its gradient.
    """
    g, nd = ctx.geom, len(ctx.geom.size)
    share = dy / ctx.divisor                           # (N, C, *O)
    dxp = np.zeros(ctx.shape[:-nd] + padded_size(g), dy.dtype)
    for _, sl in offset_slices(g.kernel, g.stride, (1,) * nd, g.out):
        dxp[(..., *sl)] += share
    return np.ascontiguousarray(unpad(dxp, g.pads))    # (N, C, *S)


# --------------------------------------------------------------------------- power average
class LPPoolCtx(NamedTuple):
    x: Array                   # the input: d(x^p)/dx = p·x^(p−1)  (p = ±∞: sign(x))
    p: float
    z: Array | None            # (N, C, *O) window means of x^p (None for p = ±∞)
    K: int                     # the kernel's volume Π k
    inner: Any                 # the average-pool context (p = ±∞: the max/min-pool one)


def lp_pool_forward(fn: str, nd: int, input: Array, norm_type: Any, kernel_size: Any,
                    stride: Any, ceil_mode: Any) -> tuple[Array, LPPoolCtx]:
    """y[o] = (Σ_j x[o·s + j]^p)^{1/p} = (K · z[o])^{1/p},   z = avg_pool(x^p),  K = Π k

    No padding. p = +∞ is max pooling of |x|, p = −∞ min pooling of |x|. As torch: z divides
    by average pooling's divisor (a ceil_mode window cut short is scaled by K / its size), and
    a negative z with a fractional 1/p gives NaN.

    Shapes:  x (N, C, *S) or (C, *S) -> y (N, C, *O)
    Saves:   x, z and the average pooling's context.
    """
    check_input(fn, input, nd)
    p = check_norm_type(fn, norm_type)
    K = math.prod(ntuple(fn, "kernel_size", kernel_size, nd, min=1))
    if math.isinf(p):
        y, inner = max_pool_forward(fn, nd, p > 0, np.abs(input), kernel_size, stride, 0, 1,
                                    ceil_mode, False)
        return y, LPPoolCtx(input, p, None, K, inner)
    with np.errstate(all="ignore"):                    # x^p and b^{1/p} may be NaN, as torch
        z, inner = avg_pool_forward(fn, nd, input ** p, kernel_size, stride, 0, ceil_mode,
                                    True, None)
        y = (z * K) ** (1.0 / p)
    return y, LPPoolCtx(input, p, z, K, inner)


def lp_pool_backward(ctx: LPPoolCtx, dy: Array) -> Array:
    """With b = K·z and y = b^{1/p}:

        dz      = dy · (1/p)·b^{1/p − 1} · K,   and 0 where z = 0 (torch takes sign(z)·relu(|z|)
                                                 there, whose derivative at 0 is 0)
        d(x^p)  = average pooling's backward of dz
        dx      = d(x^p) · p·x^{p − 1}

    p = ±∞: dx = (max/min pooling's backward of dy) · sign(x), since d|x|/dx = sign(x).
    """
    if ctx.z is None:
        return max_pool_backward(ctx.inner, dy) * np.sign(ctx.x)
    p, z = ctx.p, ctx.z
    with np.errstate(all="ignore"):
        dz = dy * ((1.0 / p) * (z * ctx.K) ** (1.0 / p - 1.0)) * ctx.K
        dz = np.where(z == 0, 0, dz)
        return avg_pool_backward(ctx.inner, dz) * (p * ctx.x ** (p - 1.0))


# --------------------------------------------------------------------------- adaptive
def along(x: Array, axis: int, A: Array) -> Array:
    """Contract ``x``'s ``axis`` (length n) with ``A`` (o × n): that axis becomes length o."""
    return np.moveaxis(np.moveaxis(x, axis, -1) @ A.T, -1, axis)


class AdaptiveAvgCtx(NamedTuple):
    mats: list                 # per spatial dim, the (O_i × S_i) averaging matrix A_i


def adaptive_avg_pool_forward(fn: str, nd: int, input: Array, output_size: Any
                              ) -> tuple[Array, AdaptiveAvgCtx]:
    """y[o] = mean of x over the box Π_i [⌊o_i·S_i/O_i⌋, ⌈(o_i + 1)·S_i/O_i⌉)

    A box mean is separable: y = x ×_1 A_1 ×_2 … ×_d A_d, where A_i (O_i × S_i) holds
    1/length in row o over window o's columns: one matrix product per spatial dim.

    Shapes:  x (N, C, *S) or (C, *S) -> y (N, C, *O)
    Saves:   the matrices A_i (y is linear in x).
    """
    check_input(fn, input, nd)
    size = input.shape[-nd:]
    out = adaptive_output_size(fn, output_size, size)
    mats = []
    for n, o in zip(size, out):
        start, length = adaptive_bounds(n, o)
        cols = np.arange(n)
        inside = (cols >= start[:, None]) & (cols < (start + length)[:, None])   # (O_i, S_i)
        mats.append((inside / length[:, None]).astype(input.dtype))
    y = input
    for i, A in enumerate(mats):
        y = along(y, i - nd, A)                        # axis i: S_i -> O_i
    return np.ascontiguousarray(y), AdaptiveAvgCtx(mats)


def adaptive_avg_pool_backward(ctx: AdaptiveAvgCtx, dy: Array) -> Array:
    """dx = dy ×_1 A_1ᵀ ×_2 … ×_d A_dᵀ   (the adjoint of each matrix product)"""
    nd = len(ctx.mats)
    dx = dy
    for i, A in enumerate(ctx.mats):
        dx = along(dx, i - nd, A.T)                    # axis i: O_i -> S_i
    return np.ascontiguousarray(dx)


class AdaptiveMaxCtx(NamedTuple):
    indices: Array             # (N, C, *O) flat index of each window's winner
    shape: tuple[int, ...]     # x's shape
    nd: int


def adaptive_max_pool_forward(fn: str, nd: int, input: Array, output_size: Any,
                              return_indices: Any) -> tuple[Any, AdaptiveMaxCtx]:
    """y[o] = max of x over the box Π_i [start_i(o_i), end_i(o_i));  ties and NaN as max_pool

    start = ⌊o·S/O⌋, end = ⌈(o + 1)·S/O⌉. Windows differ in length, so offset j of window o
    reads position start(o) + min(j, length(o) − 1): a short window re-reads its last element,
    which can neither win a strict comparison nor change which NaN is last.

    Shapes:  x (N, C, *S) or (C, *S) -> y (N, C, *O) [, indices (N, C, *O) int64]
    Saves:   the flat indices of the winners.
    """
    check_input(fn, input, nd)
    return_indices = check_bool(fn, "return_indices", return_indices)
    size = input.shape[-nd:]
    out = adaptive_output_size(fn, output_size, size)
    bounds = [adaptive_bounds(n, o) for n, o in zip(size, out)]         # (start, length) per dim
    offsets = list(np.ndindex(*(int(length.max()) for _, length in bounds)))

    def read_at(j: tuple[int, ...]) -> list[Array]:
        """Per dim, the input index each window reads at offset j (a short window repeats)."""
        return [start + np.minimum(ji, length - 1) for ji, (start, length) in zip(j, bounds)]

    seen = (input[(..., *np.ix_(*read_at(j)))] for j in offsets)        # (N, C, *O) each
    y, kid = running_extreme(seen, largest=True)
    idx = np.zeros(kid.shape, np.int64)                                 # (N, C, *O)
    for n, j in enumerate(offsets):       # the flat position in the plane of offset j's reads
        flat = outer([index * P for index, P in zip(read_at(j), plane_strides(size))])  # (*O)
        idx = np.where(kid == n, flat, idx)
    return ((y, idx) if return_indices else y), AdaptiveMaxCtx(idx, input.shape, nd)


def scatter_add(indices: Array, dy: Array, shape: tuple[int, ...], nd: int) -> Array:
    """dx of ``shape`` with dx.plane[indices] += dy in every (batch, channel) plane.

    Indices may repeat (overlapping windows with one winner), so this is a weighted histogram:
    ``np.bincount`` over the flat positions, offset by plane."""
    plane, rows = math.prod(shape[-nd:]), math.prod(shape[:-nd])
    flat = (indices.reshape(rows, math.prod(indices.shape[-nd:]))
            + (np.arange(rows) * plane)[:, None]).ravel()          # (N·C·Π O,)
    dx = np.bincount(flat, weights=dy.ravel(), minlength=rows * plane)
    return dx.astype(dy.dtype, copy=False).reshape(shape)


def adaptive_max_pool_backward(ctx: AdaptiveMaxCtx, dy: Any) -> Array:
    """dx[indices[o]] += dy[o]   (windows may overlap: a repeated winner accumulates)"""
    return scatter_add(ctx.indices, values_grad(dy), ctx.shape, ctx.nd)


# --------------------------------------------------------------------------- max_unpool
class MaxUnpoolCtx(NamedTuple):
    indices: Array             # (N, C, *S) where each input element was written
    nd: int


def max_unpool_forward(fn: str, nd: int, input: Array, indices: Any, kernel_size: Any,
                       stride: Any, padding: Any, output_size: Any
                       ) -> tuple[Array, MaxUnpoolCtx]:
    """y.plane[indices[i]] = x[i], zeros elsewhere: max pooling's partial inverse.

    Shapes:  x, indices (N, C, *S) or (C, *S) -> y (N, C, *O), O from output_size (default
             (S − 1)·s − 2p + k). A repeated index keeps the last value written, as torch.
    Saves:   indices.
    """
    out = unpool_args(fn, nd, input, indices, kernel_size, stride, padding, output_size)
    plane, rows = math.prod(out), math.prod(input.shape[:-nd])
    flat_idx = indices.reshape(rows, -1) if rows else indices.reshape(0, 0)   # (N·C, Π S)
    y = np.zeros((rows, plane), input.dtype)                                  # (N·C, Π O)
    np.put_along_axis(y, flat_idx, input.reshape(flat_idx.shape), axis=1)
    return y.reshape(input.shape[:-nd] + out), MaxUnpoolCtx(indices, nd)


def max_unpool_backward(ctx: MaxUnpoolCtx, dy: Array) -> tuple[Array, None]:
    """dx[i] = dy.plane[indices[i]]   (a gather: the adjoint of the scatter; indices get no
    gradient). It is max pooling's backward, with the winners given as indices."""
    nd, idx = ctx.nd, ctx.indices
    rows = math.prod(idx.shape[:-nd])
    if rows == 0:
        return np.zeros(idx.shape, dy.dtype), None
    dx = np.take_along_axis(dy.reshape(rows, -1), idx.reshape(rows, -1), axis=1)
    return dx.reshape(idx.shape), None


# --------------------------------------------------------------------------- the 1d/2d/3d ops
def max_pool1d_forward(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                       return_indices=False):
    return max_pool_forward("max_pool1d", 1, True, input, kernel_size, stride, padding,
                            dilation, ceil_mode, return_indices)


def max_pool2d_forward(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                       return_indices=False):
    return max_pool_forward("max_pool2d", 2, True, input, kernel_size, stride, padding,
                            dilation, ceil_mode, return_indices)


def max_pool3d_forward(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                       return_indices=False):
    return max_pool_forward("max_pool3d", 3, True, input, kernel_size, stride, padding,
                            dilation, ceil_mode, return_indices)


def min_pool1d_forward(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                       return_indices=False):
    return max_pool_forward("min_pool1d", 1, False, input, kernel_size, stride, padding,
                            dilation, ceil_mode, return_indices)


def min_pool2d_forward(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                       return_indices=False):
    return max_pool_forward("min_pool2d", 2, False, input, kernel_size, stride, padding,
                            dilation, ceil_mode, return_indices)


def min_pool3d_forward(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                       return_indices=False):
    return max_pool_forward("min_pool3d", 3, False, input, kernel_size, stride, padding,
                            dilation, ceil_mode, return_indices)


def avg_pool1d_forward(input, kernel_size, stride=None, padding=0, ceil_mode=False,
                       count_include_pad=True):
    return avg_pool_forward("avg_pool1d", 1, input, kernel_size, stride, padding, ceil_mode,
                            count_include_pad, None)       # torch's avg_pool1d: no override


def avg_pool2d_forward(input, kernel_size, stride=None, padding=0, ceil_mode=False,
                       count_include_pad=True, divisor_override=None):
    return avg_pool_forward("avg_pool2d", 2, input, kernel_size, stride, padding, ceil_mode,
                            count_include_pad, divisor_override)


def avg_pool3d_forward(input, kernel_size, stride=None, padding=0, ceil_mode=False,
                       count_include_pad=True, divisor_override=None):
    return avg_pool_forward("avg_pool3d", 3, input, kernel_size, stride, padding, ceil_mode,
                            count_include_pad, divisor_override)


def lp_pool1d_forward(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    return lp_pool_forward("lp_pool1d", 1, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool2d_forward(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    return lp_pool_forward("lp_pool2d", 2, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool3d_forward(input, norm_type, kernel_size, stride=None, ceil_mode=False):
    return lp_pool_forward("lp_pool3d", 3, input, norm_type, kernel_size, stride, ceil_mode)


def adaptive_avg_pool1d_forward(input, output_size):
    return adaptive_avg_pool_forward("adaptive_avg_pool1d", 1, input, output_size)


def adaptive_avg_pool2d_forward(input, output_size):
    return adaptive_avg_pool_forward("adaptive_avg_pool2d", 2, input, output_size)


def adaptive_avg_pool3d_forward(input, output_size):
    return adaptive_avg_pool_forward("adaptive_avg_pool3d", 3, input, output_size)


def adaptive_max_pool1d_forward(input, output_size, return_indices=False):
    return adaptive_max_pool_forward("adaptive_max_pool1d", 1, input, output_size,
                                     return_indices)


def adaptive_max_pool2d_forward(input, output_size, return_indices=False):
    return adaptive_max_pool_forward("adaptive_max_pool2d", 2, input, output_size,
                                     return_indices)


def adaptive_max_pool3d_forward(input, output_size, return_indices=False):
    return adaptive_max_pool_forward("adaptive_max_pool3d", 3, input, output_size,
                                     return_indices)


def max_unpool1d_forward(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    return max_unpool_forward("max_unpool1d", 1, input, indices, kernel_size, stride, padding,
                              output_size)


def max_unpool2d_forward(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    return max_unpool_forward("max_unpool2d", 2, input, indices, kernel_size, stride, padding,
                              output_size)


def max_unpool3d_forward(input, indices, kernel_size, stride=None, padding=0, output_size=None):
    return max_unpool_forward("max_unpool3d", 3, input, indices, kernel_size, stride, padding,
                              output_size)


# help(max_pool2d) shows the N-d implementation's docstring: the formula, shapes, what is
# saved and (merged in by defop) the backward.
_DOCS = [(max_pool_forward, "max pooling", "torch.nn.functional.max_pool{}d"),
         (max_pool_forward, "min pooling",
          "none; the reference is -torch.nn.functional.max_pool{}d(-x), indices too"),
         (avg_pool_forward, "average pooling", "torch.nn.functional.avg_pool{}d"),
         (lp_pool_forward, "power-average pooling", "torch.nn.functional.lp_pool{}d"),
         (adaptive_avg_pool_forward, "adaptive average pooling",
          "torch.nn.functional.adaptive_avg_pool{}d"),
         (adaptive_max_pool_forward, "adaptive max pooling",
          "torch.nn.functional.adaptive_max_pool{}d"),
         (max_unpool_forward, "max unpooling", "torch.nn.functional.max_unpool{}d")]
_FORWARDS = [(max_pool1d_forward, max_pool2d_forward, max_pool3d_forward),
             (min_pool1d_forward, min_pool2d_forward, min_pool3d_forward),
             (avg_pool1d_forward, avg_pool2d_forward, avg_pool3d_forward),
             (lp_pool1d_forward, lp_pool2d_forward, lp_pool3d_forward),
             (adaptive_avg_pool1d_forward, adaptive_avg_pool2d_forward,
              adaptive_avg_pool3d_forward),
             (adaptive_max_pool1d_forward, adaptive_max_pool2d_forward,
              adaptive_max_pool3d_forward),
             (max_unpool1d_forward, max_unpool2d_forward, max_unpool3d_forward)]
for (_impl, _what, _torch), _fs in zip(_DOCS, _FORWARDS):
    for _n, _f in enumerate(_fs, 1):
        _f.__doc__ = (f"{_n}-d {_what}: {inspect.cleandoc(_impl.__doc__ or '')}\n"
                      f"Torch:   {_torch.format(_n)}")

max_pool1d = defop(max_pool1d_forward, max_pool_backward)
max_pool2d = defop(max_pool2d_forward, max_pool_backward)
max_pool3d = defop(max_pool3d_forward, max_pool_backward)
min_pool1d = defop(min_pool1d_forward, max_pool_backward)
min_pool2d = defop(min_pool2d_forward, max_pool_backward)
min_pool3d = defop(min_pool3d_forward, max_pool_backward)
avg_pool1d = defop(avg_pool1d_forward, avg_pool_backward)
avg_pool2d = defop(avg_pool2d_forward, avg_pool_backward)
avg_pool3d = defop(avg_pool3d_forward, avg_pool_backward)
lp_pool1d = defop(lp_pool1d_forward, lp_pool_backward)
lp_pool2d = defop(lp_pool2d_forward, lp_pool_backward)
lp_pool3d = defop(lp_pool3d_forward, lp_pool_backward)
adaptive_avg_pool1d = defop(adaptive_avg_pool1d_forward, adaptive_avg_pool_backward)
adaptive_avg_pool2d = defop(adaptive_avg_pool2d_forward, adaptive_avg_pool_backward)
adaptive_avg_pool3d = defop(adaptive_avg_pool3d_forward, adaptive_avg_pool_backward)
adaptive_max_pool1d = defop(adaptive_max_pool1d_forward, adaptive_max_pool_backward)
adaptive_max_pool2d = defop(adaptive_max_pool2d_forward, adaptive_max_pool_backward)
adaptive_max_pool3d = defop(adaptive_max_pool3d_forward, adaptive_max_pool_backward)
max_unpool1d = defop(max_unpool1d_forward, max_unpool_backward)
max_unpool2d = defop(max_unpool2d_forward, max_unpool_backward)
max_unpool3d = defop(max_unpool3d_forward, max_unpool_backward)
