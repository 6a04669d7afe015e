"""The textbook edition of convolution and transposed convolution (1d, 2d, 3d), and ``pad``.

One N-d implementation serves all three dimensions. Notation (per spatial dimension; ``*S``
stands for all of them): input ``x (N, C_in, *S)``, weight ``W (C_out, C_in/G, *k)``, ``G``
groups, output ``y (N, C_out, *O)``; ``K = Πk`` kernel offsets κ, ``L = ΠO`` windows o. Window
o of the zero-padded input starts at ``o·s`` and its taps are ``dil`` apart::

    y[n, o_c, o] = b[o_c] + Σ_{c ∈ group(o_c)} Σ_κ W[o_c, c, κ] · x_pad[n, c, o·s + κ·dil]
    O = ⌊(S + lo + hi − dil·(k − 1) − 1) / s⌋ + 1

(a correlation, as in torch). Read the file top to bottom:

1. **The loops** (``conv2d_loops`` …, ``conv_transpose2d_loops`` …): the definition itself, one
   output position at a time (``np.ndindex`` over O). Slow on purpose — the one place in the
   textbook that loops over pixels — so that every line can be checked by hand.
2. **im2col / col2im** under torch's names (``conv2d`` …, ``conv_transpose2d`` …): the same sums
   as matrix products. ``im2col`` copies what every window sees at each kernel offset into
   columns, so ``y = W @ cols + b``; ``col2im`` is its adjoint.
3. ``pad`` (``torch.nn.functional.pad``): the padding modes of the ``Conv*d`` modules.

Two maps, each the other's adjoint, make up the whole family:

* ``W ⋆ x`` (``conv_nd``, ``conv_loops_nd``): a convolution's forward, and a transposed
  convolution's input gradient;
* ``col2im(Wᵀ @ y)`` (``conv_transpose_nd``, ``conv_transpose_loops_nd``): a transposed
  convolution's forward, and a convolution's input gradient.

The weight gradient of both is the correlation of the input with the output gradient,
``dW = Σ_n dy[n] @ cols[n]ᵀ``. Argument checking is shared with the fast engine
(:mod:`scratchnn.textbook._conv_args`), so both editions accept exactly the same calls.
"""
from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from ..autodiff import defop
from ..window import offset_slices, unpad
from ..window import pad as zero_pad
from ._conv_args import ConvGeometry, check_conv, check_conv_transpose, check_pad

Array = np.ndarray

__all__ = ["conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
           "conv_transpose3d", "conv1d_loops", "conv2d_loops", "conv3d_loops",
           "conv_transpose1d_loops", "conv_transpose2d_loops", "conv_transpose3d_loops", "pad",
           "conv_forward", "conv_backward", "conv_transpose_forward", "conv_transpose_backward",
           "conv_loops_forward", "conv_loops_backward", "conv_transpose_loops_forward",
           "conv_transpose_loops_backward", "pad_forward", "pad_backward"]


class ConvCtx(NamedTuple):
    """What conv's backward reads (im2col edition): dW needs the columns, dx needs W."""
    cols: Array                  # (N, G, C_in/G·K, L)
    weight: Array
    geom: ConvGeometry
    has_bias: bool
    unbatched: bool              # the input had no batch axis: drop it again


class InputCtx(NamedTuple):
    """What the other backwards read (the loop editions, conv_transpose): x and W."""
    x: Array                     # (N, C_in, *S), batched
    weight: Array
    geom: ConvGeometry
    has_bias: bool
    unbatched: bool


def _unbatch(a: Array, unbatched: bool) -> Array:
    return a[0] if unbatched else a


def _bias_grad(dy: Array) -> Array:
    """db = Σ_{n, o} dy[n, :, o]: (N, C, *O) -> (C,)."""
    return dy.sum(axis=(0, *range(2, dy.ndim)))


def _padded(g: ConvGeometry) -> tuple[int, ...]:
    """The size of the zero-padded x side, S + lo + hi."""
    return tuple(s + lo + hi for s, (lo, hi) in zip(g.size, g.pads))


# ---------------------------------------------------------------------------------------------
# 1. The loops: one window at a time
# ---------------------------------------------------------------------------------------------
def window_at(o: tuple[int, ...], g: ConvGeometry) -> tuple[slice, ...]:
    """The positions of the padded x side that window o reads: ``o·s + κ·dil`` for every κ."""
    return tuple(slice(oi * si, oi * si + di * (ki - 1) + 1, di)
                 for oi, si, di, ki in zip(o, g.stride, g.dilation, g.kernel))


def conv_loops_nd(x: Array, w: Array, g: ConvGeometry) -> Array:
    """y = W ⋆ x by definition: y[n, o_c, o] = Σ (x_pad[n, group(o_c), window(o)] · W[o_c]).

    Shapes: x (N, Cx, *S), W (Cy, Cx/G, *k) -> y (N, Cy, *O)."""
    xp = zero_pad(x, g.pads)                                   # (N, Cx, *(S + lo + hi))
    N, Cy, cx_g = x.shape[0], w.shape[0], w.shape[1]
    y = np.zeros((N, Cy, *g.out), x.dtype)                     # (N, Cy, *O)
    for n in range(N):
        for oc in range(Cy):
            c0 = oc // (Cy // g.groups) * cx_g                 # first x channel of oc's group
            for o in np.ndindex(*g.out):
                patch = xp[(n, slice(c0, c0 + cx_g), *window_at(o, g))]   # (Cx/G, *k)
                y[(n, oc, *o)] = np.sum(patch * w[oc])
    return y


def conv_transpose_loops_nd(y: Array, w: Array, g: ConvGeometry) -> Array:
    """The transposed convolution by definition, the adjoint of :func:`conv_loops_nd`: every
    y[n, o_c, o] stamps ``y[n, o_c, o] · W[o_c]`` back onto the window o it belongs to,

        x_pad[n, group(o_c), window(o)] += y[n, o_c, o] · W[o_c],

    and the padding is cut off. Shapes: y (N, Cy, *O), W (Cy, Cx/G, *k) -> x (N, Cx, *S)."""
    N, Cy, cx_g = y.shape[0], w.shape[0], w.shape[1]
    xp = np.zeros((N, cx_g * g.groups, *_padded(g)), y.dtype)  # (N, Cx, *(S + lo + hi))
    for n in range(N):
        for oc in range(Cy):
            c0 = oc // (Cy // g.groups) * cx_g
            for o in np.ndindex(*g.out):
                xp[(n, slice(c0, c0 + cx_g), *window_at(o, g))] += y[(n, oc, *o)] * w[oc]
    return unpad(xp, g.pads)                                   # (N, Cx, *S)


def weight_grad_loops(dy: Array, x: Array, g: ConvGeometry, shape: tuple[int, ...]) -> Array:
    """dW[o_c] = Σ_{n, o} dy[n, o_c, o] · x_pad[n, group(o_c), window(o)]: every window's patch,
    weighted by the gradient of the output it made. Shapes: dy (N, Cy, *O), x (N, Cx, *S) -> W."""
    xp = zero_pad(x, g.pads)
    dw = np.zeros(shape, x.dtype)                              # (Cy, Cx/G, *k)
    Cy, cx_g = shape[0], shape[1]
    for n in range(x.shape[0]):
        for oc in range(Cy):
            c0 = oc // (Cy // g.groups) * cx_g
            for o in np.ndindex(*g.out):
                dw[oc] += dy[(n, oc, *o)] * xp[(n, slice(c0, c0 + cx_g), *window_at(o, g))]
    return dw


def conv_loops_forward(input: Array, weight: Array, bias: Array | None = None, stride: Any = 1,
                       padding: Any = 0, dilation: Any = 1, groups: int = 1, *, _nd: int = 2,
                       _fn: str = "conv2d_loops") -> tuple[Array, InputCtx]:
    """y[n, o_c, o] = b[o_c] + Σ_{c ∈ group(o_c)} Σ_κ W[o_c, c, κ] · x_pad[n, c, o·s + κ·dil]

    The definition, one output position at a time (``conv_loops_nd``).

    Shapes:  x (N, C_in, *S) or unbatched (C_in, *S); W (C_out, C_in/G, *k); b (C_out,)
             -> y (N, C_out, *O), O = ⌊(S + lo + hi − dil·(k − 1) − 1) / s⌋ + 1.
    Saves:   x and W.
    Torch:   torch.nn.functional.conv1d / conv2d / conv3d
    """
    x, g, unbatched = check_conv(_fn, _nd, input, weight, bias, stride, padding, dilation,
                                 groups)
    y = conv_loops_nd(x, weight, g)                            # (N, C_out, *O)
    if bias is not None:
        y += bias.reshape(-1, *(1,) * _nd)                     # b[o_c] on every window
    return _unbatch(y, unbatched), InputCtx(x, weight, g, bias is not None, unbatched)


def conv_loops_backward(ctx: InputCtx, dy: Array) -> tuple[Array, Array, Array | None]:
    """Every output y[n, o_c, o] = Σ patch · W[o_c] + b[o_c] sends its gradient back:

        dx_pad[n, group(o_c), window(o)] += dy[n, o_c, o] · W[o_c]    (conv_transpose_loops_nd)
        dW[o_c]                          += dy[n, o_c, o] · patch      (weight_grad_loops)
        db[o_c]                          += dy[n, o_c, o]

    The first line is the transposed convolution of dy: dx = conv_transpose(dy, W).
    """
    x, w, g = ctx.x, ctx.weight, ctx.geom
    dy = dy[None] if ctx.unbatched else dy                     # (N, C_out, *O)
    dx = conv_transpose_loops_nd(dy, w, g)                     # (N, C_in, *S)
    dw = weight_grad_loops(dy, x, g, w.shape)                  # (C_out, C_in/G, *k)
    db = _bias_grad(dy) if ctx.has_bias else None              # (C_out,)
    return _unbatch(dx, ctx.unbatched), dw, db


def conv_transpose_loops_forward(input: Array, weight: Array, bias: Array | None = None,
                                 stride: Any = 1, padding: Any = 0, output_padding: Any = 0,
                                 groups: int = 1, dilation: Any = 1, *, _nd: int = 2,
                                 _fn: str = "conv_transpose2d_loops") -> tuple[Array, InputCtx]:
    """y_pad[n, group(i_c), o·s + κ·dil] += x[n, i_c, o] · W[i_c, :, κ];  y = y_pad cut + b

    Every input position o stamps the kernel W[i_c], scaled by x[n, i_c, o], onto window o of
    a padded output (``conv_transpose_loops_nd``): the input gradient of the convolution with
    the same W, stride, padding and dilation (its adjoint, not its inverse).

    Shapes:  x (N, C_in, *S) or unbatched (C_in, *S); W (C_in, C_out/G, *k); b (C_out,)
             -> y (N, C_out, *O), O = (S − 1)·s − 2p + dil·(k − 1) + output_padding + 1.
    Saves:   x and W.
    Torch:   torch.nn.functional.conv_transpose1d / 2d / 3d (argument order: ..., padding,
             output_padding, groups, dilation)
    """
    x, g, unbatched = check_conv_transpose(_fn, _nd, input, weight, bias, stride, padding,
                                           output_padding, groups, dilation)
    y = conv_transpose_loops_nd(x, weight, g)                  # (N, C_out, *O)
    if bias is not None:
        y += bias.reshape(-1, *(1,) * _nd)
    return _unbatch(y, unbatched), InputCtx(x, weight, g, bias is not None, unbatched)


def conv_transpose_loops_backward(ctx: InputCtx, dy: Array) -> tuple[Array, Array, Array | None]:
    """Each stamp y_pad[window(o)] += x[n, i_c, o] · W[i_c] sends back

        dx[n, i_c, o] = Σ dy_pad[n, group(i_c), window(o)] · W[i_c]   (conv_loops_nd)
        dW[i_c]      += x[n, i_c, o] · dy_pad[n, group(i_c), window(o)] (weight_grad_loops)
        db            = Σ_{n, o} dy

    The first line is a convolution of dy with W: dx = conv(dy, W).
    """
    x, w, g = ctx.x, ctx.weight, ctx.geom
    dy = dy[None] if ctx.unbatched else dy                     # (N, C_out, *O)
    dx = conv_loops_nd(dy, w, g)                               # (N, C_in, *S)
    dw = weight_grad_loops(x, dy, g, w.shape)                  # (C_in, C_out/G, *k)
    db = _bias_grad(dy) if ctx.has_bias else None              # (C_out,)
    return _unbatch(dx, ctx.unbatched), dw, db


# ---------------------------------------------------------------------------------------------
# 2. im2col / col2im: a loop over the K kernel offsets, vectorised over batch and windows
# ---------------------------------------------------------------------------------------------
def im2col(xp: Array, kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int],
           out: Sequence[int]) -> Array:
    """cols[n, c, κ, o] = xp[n, c, o·s + κ·dil]: what window o sees at kernel offset κ.

    For a fixed κ the strided slice ``xp[..., κ·dil :: s]`` (``offset_slices``) holds, for every
    window at once, the element it sees at κ: K copies fill all the columns.
    Shapes: xp (N, C, *P) (already padded) -> cols (N, C, K, *O)."""
    cols = np.empty((*xp.shape[:2], math.prod(kernel), *out), xp.dtype)   # (N, C, K, *O)
    for i, (_, sl) in enumerate(offset_slices(kernel, stride, dilation, out)):
        cols[:, :, i] = xp[(Ellipsis, *sl)]                    # (N, C, *O)
    return cols


def col2im(cols: Array, kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int],
           padded: Sequence[int]) -> Array:
    """The adjoint of :func:`im2col`: xp[n, c, o·s + κ·dil] += cols[n, c, κ, o].

    Windows overlap, so an input element collects from several (κ, o); but within one offset κ
    the slice hits each element at most once, so a plain ``+=`` per offset is exact.
    Shapes: cols (N, C, K, *O) -> xp (N, C, *P)."""
    N, C, _, *out = cols.shape
    xp = np.zeros((N, C, *padded), cols.dtype)                 # (N, C, *P)
    for i, (_, sl) in enumerate(offset_slices(kernel, stride, dilation, out)):
        xp[(Ellipsis, *sl)] += cols[:, :, i]
    return xp


def conv_nd(x: Array, w: Array, g: ConvGeometry) -> tuple[Array, Array]:
    """y = W ⋆ x: im2col, then one matrix product per group, y[n, g] = W[g] @ cols[n, g].

    Shapes: x (N, Cx, *S), W (Cy, Cx/G, *k) -> y (N, Cy, *O) and cols (N, G, Cx/G·K, L)."""
    N, G, (Cy, cx_g) = x.shape[0], g.groups, w.shape[:2]
    K, L = math.prod(g.kernel), math.prod(g.out)
    cols = im2col(zero_pad(x, g.pads), g.kernel, g.stride, g.dilation, g.out)  # (N, Cx, K, *O)
    cols = cols.reshape(N, G, cx_g * K, L)                     # (N, G, Cx/G·K, L)
    w3 = w.reshape(G, Cy // G, cx_g * K)                       # (G, Cy/G, Cx/G·K)
    y = w3 @ cols                                              # (N, G, Cy/G, L)
    return y.reshape(N, Cy, *g.out), cols                      # (N, Cy, *O)


def conv_transpose_nd(y: Array, w: Array, g: ConvGeometry) -> Array:
    """x = col2im(Wᵀ @ y): the transposed convolution, the adjoint of :func:`conv_nd`.

    ``Wᵀ @ y`` gives every window o a column of Cx/G·K values, one per (channel, offset) it
    read; col2im adds each back onto the position it was read from; the padding is cut off.
    Shapes: y (N, Cy, *O), W (Cy, Cx/G, *k) -> x (N, Cx, *S)."""
    N, G, (Cy, cx_g) = y.shape[0], g.groups, w.shape[:2]
    K, L = math.prod(g.kernel), math.prod(g.out)
    w3 = w.reshape(G, Cy // G, cx_g * K)                       # (G, Cy/G, Cx/G·K)
    y4 = y.reshape(N, G, Cy // G, L)                           # (N, G, Cy/G, L)
    cols = w3.transpose(0, 2, 1) @ y4                          # (N, G, Cx/G·K, L)
    cols = cols.reshape(N, G * cx_g, K, *g.out)                # (N, Cx, K, *O)
    xp = col2im(cols, g.kernel, g.stride, g.dilation, _padded(g))   # (N, Cx, *(S + lo + hi))
    return unpad(xp, g.pads)                                   # (N, Cx, *S)


def weight_grad(dy: Array, cols: Array, shape: tuple[int, ...]) -> Array:
    """dW[g] = Σ_n dy[n, g] @ cols[n, g]ᵀ, the correlation of the input with dy.

    Shapes: dy (N, Cy, *O), cols (N, G, Cx/G·K, L) -> W's shape (Cy, Cx/G, *k)."""
    N, G, _, L = cols.shape
    dy4 = dy.reshape(N, G, shape[0] // G, L)                   # (N, G, Cy/G, L)
    return (dy4 @ cols.transpose(0, 1, 3, 2)).sum(axis=0).reshape(shape)   # (G, Cy/G, Cx/G·K)


def conv_forward(input: Array, weight: Array, bias: Array | None = None, stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, groups: int = 1, *, _nd: int = 2,
                 _fn: str = "conv2d") -> tuple[Array, ConvCtx]:
    """y[n, o_c, o] = b[o_c] + Σ_{c ∈ group(o_c)} Σ_κ W[o_c, c, κ] · x_pad[n, c, o·s + κ·dil]

    As matrices: cols = im2col(pad(x)) holds, in column o, the C_in/G·K values window o sees;
    then y[n, g] = W[g] @ cols[n, g] + b, W[g] a (C_out/G, C_in/G·K) matrix (``conv_nd``).

    Shapes:  x (N, C_in, *S) or unbatched (C_in, *S); W (C_out, C_in/G, *k); b (C_out,)
             -> y (N, C_out, *O), O = ⌊(S + lo + hi − dil·(k − 1) − 1) / s⌋ + 1.
             padding: int, tuple, 'valid' (0) or 'same' (O = S, stride 1; an odd total
             dil·(k − 1) puts the extra element on the high side, as torch).
    Saves:   cols (dW reads them) and W (dx reads it).
    Torch:   torch.nn.functional.conv1d / conv2d / conv3d
    """
    x, g, unbatched = check_conv(_fn, _nd, input, weight, bias, stride, padding, dilation,
                                 groups)
    y, cols = conv_nd(x, weight, g)                            # (N, C_out, *O)
    if bias is not None:
        y += bias.reshape(-1, *(1,) * _nd)                     # b[o_c] on every window
    return _unbatch(y, unbatched), ConvCtx(cols, weight, g, bias is not None, unbatched)


def conv_backward(ctx: ConvCtx, dy: Array) -> tuple[Array, Array, Array | None]:
    """dx = col2im(Wᵀ @ dy),  dW = Σ_n dy[n] @ cols[n]ᵀ,  db = Σ_{n, o} dy

    * dx: each dy[n, o_c, o] flows back, weighted by W, onto the window o it came from —
      that is, by definition, the **transposed convolution** of dy (``conv_transpose_nd``):
      ``dx = conv_transpose(dy, W)`` with the output_padding that restores S.
    * dW: the correlation of the input with dy, one (C_out/G, L) @ (L, C_in/G·K) product per
      sample and group, summed over the batch (``weight_grad``).
    * db: dy summed over the batch and every window.
    """
    cols, w, g = ctx.cols, ctx.weight, ctx.geom
    dy = dy[None] if ctx.unbatched else dy                     # (N, C_out, *O)
    dx = conv_transpose_nd(dy, w, g)                           # (N, C_in, *S)
    dw = weight_grad(dy, cols, w.shape)                        # (C_out, C_in/G, *k)
    db = _bias_grad(dy) if ctx.has_bias else None              # (C_out,)
    return _unbatch(dx, ctx.unbatched), dw, db


def conv_transpose_forward(input: Array, weight: Array, bias: Array | None = None,
                           stride: Any = 1, padding: Any = 0, output_padding: Any = 0,
                           groups: int = 1, dilation: Any = 1, *, _nd: int = 2,
                           _fn: str = "conv_transpose2d") -> tuple[Array, InputCtx]:
    """y = col2im(Wᵀ @ x) + b: the input gradient of the convolution with the same W, stride,
    padding and dilation (its adjoint, not its inverse), ``conv_transpose_nd``.

    y[n, c, o·s + κ·dil − p] += Σ_{i_c ∈ group(c)} W[i_c, c, κ] · x[n, i_c, o] for every o.

    Shapes:  x (N, C_in, *S) or unbatched (C_in, *S); W (C_in, C_out/G, *k); b (C_out,)
             -> y (N, C_out, *O), O = (S − 1)·s − 2p + dil·(k − 1) + output_padding + 1.
             output_padding (each < stride or < dilation) extends the high end: a strided
             convolution maps several sizes to S, and it says which one to give back.
    Saves:   x and W.
    Torch:   torch.nn.functional.conv_transpose1d / 2d / 3d (argument order: ..., padding,
             output_padding, groups, dilation)
    """
    x, g, unbatched = check_conv_transpose(_fn, _nd, input, weight, bias, stride, padding,
                                           output_padding, groups, dilation)
    y = conv_transpose_nd(x, weight, g)                        # (N, C_out, *O)
    if bias is not None:
        y += bias.reshape(-1, *(1,) * _nd)
    return _unbatch(y, unbatched), InputCtx(x, weight, g, bias is not None, unbatched)


def conv_transpose_backward(ctx: InputCtx, dy: Array) -> tuple[Array, Array, Array | None]:
    """dx = W ⋆ dy (a convolution),  dW = Σ_n x[n] @ cols(dy)[n]ᵀ,  db = Σ_{n, o} dy

    * dx: the adjoint of the transposed convolution is the **convolution** with the same W
      (``conv_nd``): im2col of dy, then W[g] @ cols per group.
    * dW: conv's weight gradient with the roles swapped — x is the y side, dy the x side; the
      one im2col of dy serves dx and dW.
    * db: dy summed over the batch and space.
    """
    x, w, g = ctx.x, ctx.weight, ctx.geom
    dy = dy[None] if ctx.unbatched else dy                     # (N, C_out, *O)
    dx, cols = conv_nd(dy, w, g)                               # (N, C_in, *S)
    dw = weight_grad(x, cols, w.shape)                         # (C_in, C_out/G, *k)
    db = _bias_grad(dy) if ctx.has_bias else None              # (C_out,)
    return _unbatch(dx, ctx.unbatched), dw, db


# ---------------------------------------------------------------------------------------------
# 3. pad: the padding modes of the Conv*d modules ('zeros' is the convolution's own padding)
# ---------------------------------------------------------------------------------------------
class PadCtx(NamedTuple):
    shape: tuple[int, ...]        # the input's shape
    axes: tuple                   # per padded axis: (axis, lo, hi, index map or None)
    mode: str


def _pad_index(mode: str, size: int, lo: int, hi: int) -> Array:
    """For every output position j along one axis, the input index it copies (p = j − lo)."""
    p = np.arange(-lo, size + hi)
    if mode == "reflect":                                    # … x2 x1 | x0 x1 x2 … | x1 …
        p = np.abs(p)
        return np.where(p >= size, 2 * (size - 1) - p, p)
    if mode == "replicate":                                  # x0 x0 | x0 x1 … | xL xL
        return np.clip(p, 0, size - 1)
    c0, c1 = max(0, -lo), size - max(0, -hi)                 # circular: crop first (torch),
    return c0 + (np.arange(-max(lo, 0), c1 - c0 + max(hi, 0)) % (c1 - c0))  # then wrap


def pad_forward(input: Array, pad: Sequence[int], mode: str = "constant",
                value: float | None = None) -> tuple[Array, PadCtx]:
    """y = x extended (or cropped, for negative entries) along its last ``len(pad)/2`` dims.

    ``pad = (lo_last, hi_last, lo_second_last, hi_second_last, ...)`` as torch. Along one axis
    output position j copies input index p = j − lo, brought into range by the mode:
    'constant' (``value``, default 0), 'reflect' (−p; 2(S−1) − p), 'replicate' (clamp),
    'circular' (p mod S).

    Shapes:  x (*, S_d, …, S_1) -> y (*, S_d + lo_d + hi_d, …). 'reflect', 'replicate' and
             'circular' take a (d+1)- or (d+2)-dim input for d padded dims (d ≤ 3), as torch.
    Saves:   the index map of each padded axis (the input itself is not needed).
    Torch:   torch.nn.functional.pad
    """
    fn = "pad"
    pad = check_pad(fn, input, pad, mode, value)
    axes = []
    y = input
    for i in range(len(pad) // 2):
        ax, lo, hi = input.ndim - 1 - i, pad[2 * i], pad[2 * i + 1]
        size = input.shape[ax]
        if mode == "constant":
            axes.append((ax, lo, hi, None))
            continue
        idx = _pad_index(mode, size, lo, hi)
        y = np.take(y, idx, axis=ax)                          # (…, S + lo + hi, …)
        axes.append((ax, lo, hi, idx))
    if mode == "constant":
        shape = list(input.shape)
        for ax, lo, hi, _ in axes:
            shape[ax] += lo + hi
        y = np.full(shape, 0.0 if value is None else float(value), input.dtype)
        y[_crop(input.ndim, axes, "dst")] = input[_crop(input.ndim, axes, "src")]
    elif y is input:
        y = input.copy()
    return y, PadCtx(input.shape, tuple(axes), mode)


def _crop(ndim: int, axes: Sequence, side: str) -> tuple[slice, ...]:
    """The slices matching input ('src') and output ('dst') for constant padding/cropping."""
    sl = [slice(None)] * ndim
    for ax, lo, hi, _ in axes:
        if side == "src":
            sl[ax] = slice(max(0, -lo), None if hi >= 0 else hi)
        else:
            sl[ax] = slice(max(0, lo), None if hi <= 0 else -hi)
    return tuple(sl)


def pad_backward(ctx: PadCtx, dy: Array) -> Array:
    """dx[p] = Σ_{j : index(j) = p} dy[j] along each padded axis (the last one first).

    constant: dx = dy cropped back (padding receives no gradient). Other modes: the part of dy
    that copies x unchanged goes straight back; each border position j (a loop over the few
    padding positions, whole slabs at a time) adds dy[j] into the element it copied.
    """
    if ctx.mode == "constant":
        dx = np.zeros(ctx.shape, dy.dtype)
        dx[_crop(dy.ndim, ctx.axes, "src")] = dy[_crop(dy.ndim, ctx.axes, "dst")]
        return dx
    g = dy
    for ax, lo, hi, idx in reversed(ctx.axes):
        size = ctx.shape[ax]
        shape = list(g.shape)
        shape[ax] = size
        dx = np.zeros(shape, dy.dtype)
        j0, j1 = max(0, lo), min(len(idx), lo + size)         # positions copying x[j − lo]
        at = [slice(None)] * g.ndim
        src = list(at)
        at[ax], src[ax] = slice(j0 - lo, j1 - lo), slice(j0, j1)
        dx[tuple(at)] = g[tuple(src)]
        for j in (*range(0, j0), *range(j1, len(idx))):        # the border positions
            at[ax], src[ax] = int(idx[j]), j
            dx[tuple(at)] += g[tuple(src)]
        g = dx
    return g


pad = defop(pad_forward, pad_backward)


# ---------------------------------------------------------------------------------------------
# the torch-named ops: one N-d implementation, published once per dimension
# ---------------------------------------------------------------------------------------------
def _conv_op(nd: int, forward: Callable, backward: Callable, name: str) -> Callable:
    """``conv{nd}d``-style op: torch's signature (input, weight, bias, stride, padding,
    dilation, groups) calling the N-d ``forward``."""
    def op_forward(input: Array, weight: Array, bias: Array | None = None, stride: Any = 1,
                   padding: Any = 0, dilation: Any = 1, groups: int = 1) -> tuple[Array, Any]:
        return forward(input, weight, bias, stride, padding, dilation, groups, _nd=nd, _fn=name)

    op_forward.__name__ = op_forward.__qualname__ = f"{name}_forward"
    op_forward.__doc__ = (forward.__doc__ or "").replace(
        "conv1d / conv2d / conv3d", f"conv{nd}d")              # Torch: the one it matches
    return defop(op_forward, backward, name=name)


def _conv_transpose_op(nd: int, forward: Callable, backward: Callable, name: str) -> Callable:
    """``conv_transpose{nd}d``-style op: torch's signature (input, weight, bias, stride,
    padding, output_padding, groups, dilation) calling the N-d ``forward``."""
    def op_forward(input: Array, weight: Array, bias: Array | None = None, stride: Any = 1,
                   padding: Any = 0, output_padding: Any = 0, groups: int = 1,
                   dilation: Any = 1) -> tuple[Array, Any]:
        return forward(input, weight, bias, stride, padding, output_padding, groups, dilation,
                       _nd=nd, _fn=name)

    op_forward.__name__ = op_forward.__qualname__ = f"{name}_forward"
    op_forward.__doc__ = (forward.__doc__ or "").replace(
        "conv_transpose1d / 2d / 3d", f"conv_transpose{nd}d")
    return defop(op_forward, backward, name=name)


conv1d, conv2d, conv3d = (_conv_op(n, conv_forward, conv_backward, f"conv{n}d")
                          for n in (1, 2, 3))
conv_transpose1d, conv_transpose2d, conv_transpose3d = (
    _conv_transpose_op(n, conv_transpose_forward, conv_transpose_backward,
                       f"conv_transpose{n}d") for n in (1, 2, 3))
conv1d_loops, conv2d_loops, conv3d_loops = (
    _conv_op(n, conv_loops_forward, conv_loops_backward, f"conv{n}d_loops") for n in (1, 2, 3))
conv_transpose1d_loops, conv_transpose2d_loops, conv_transpose3d_loops = (
    _conv_transpose_op(n, conv_transpose_loops_forward, conv_transpose_loops_backward,
                       f"conv_transpose{n}d_loops") for n in (1, 2, 3))
