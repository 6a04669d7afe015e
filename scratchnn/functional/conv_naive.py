"""The readable edition: conv2d and conv_transpose2d as plain loops over every output pixel.

Read this file first, then ``conv.py``. Every formula here is the definition itself — one window
at a time — so each line can be checked by hand; ``conv.py`` computes the same numbers with
im2col and matrix products, and the tests check that the two agree (and both agree with torch).
It is slow on purpose (Python loops over batch, channels and pixels): use it to learn, not to
train. Argument checking is shared with the fast version, so both accept exactly the same calls.

Notation: x (N, C_in, H, W), weight (C_out, C_in/G, kH, kW), y (N, C_out, oH, oW). Window
(i, j) of the zero-padded input starts at (i·sH, j·sW) and its taps are spaced by the dilation.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ..autodiff import defop
from .conv import check_conv, check_conv_transpose

Array = np.ndarray

__all__ = ["conv2d_naive", "conv_transpose2d_naive"]


class NaiveCtx(NamedTuple):
    x: Array                     # (N, C_in, H, W), batched
    weight: Array
    stride: tuple[int, int]
    dilation: tuple[int, int]
    lo: tuple[int, int]          # padding before rows / columns
    padded: tuple[int, int]      # size of the padded plane the windows move over
    groups: int
    has_bias: bool
    unbatched: bool


def _ctx(x: Array, weight: Array, g: Any, bias: Array | None, unbatched: bool) -> NaiveCtx:
    padded = tuple(s + lo + hi for s, lo, hi in zip(g.size, g.lo, g.hi))
    return NaiveCtx(x, weight, g.stride, g.dilation, g.lo, padded, g.groups, bias is not None,
                    unbatched)


def _window(i: int, j: int, ctx: NaiveCtx) -> tuple[slice, slice]:
    """The rows and columns of the padded plane that window (i, j) reads."""
    (sh, sw), (dh, dw) = ctx.stride, ctx.dilation
    kh, kw = ctx.weight.shape[2:]
    return (slice(i * sh, i * sh + dh * (kh - 1) + 1, dh),
            slice(j * sw, j * sw + dw * (kw - 1) + 1, dw))


def _zero_pad(x: Array, lo: tuple[int, int], padded: tuple[int, int]) -> Array:
    xp = np.zeros(x.shape[:2] + padded, x.dtype)
    xp[:, :, lo[0]:lo[0] + x.shape[2], lo[1]:lo[1] + x.shape[3]] = x
    return xp


def conv2d_naive_forward(input: Array, weight: Array, bias: Array | None = None,
                         stride: Any = 1, padding: Any = 0, dilation: Any = 1,
                         groups: int = 1) -> tuple[Array, NaiveCtx]:
    """y[n, oc, i, j] = b[oc] + Σ_{c, a, e} W[oc, c, a, e] · x_pad[n, g·C_in/G + c,
    i·sH + a·dH, j·sW + e·dW]   (g = the group of output channel oc)

    Shapes:  as torch.nn.functional.conv2d (unbatched (C, H, W) too).
    Saves:   x and W.
    Torch:   torch.nn.functional.conv2d
    """
    x, g, unbatched = check_conv("conv2d_naive", 2, input, weight, bias, stride, padding,
                                 dilation, groups)              # the fast version's checks
    ctx = _ctx(x, weight, g, bias, unbatched)
    xp = _zero_pad(x, ctx.lo, ctx.padded)
    N, C_out = x.shape[0], weight.shape[0]
    cin_g, cout_g = weight.shape[1], C_out // groups
    y = np.zeros((N, C_out) + g.out, x.dtype)          # (N, C_out, oH, oW)
    for n in range(N):
        for oc in range(C_out):
            c0 = (oc // cout_g) * cin_g                         # first input channel of group
            for i in range(g.out[0]):
                for j in range(g.out[1]):
                    rows, cols = _window(i, j, ctx)
                    patch = xp[n, c0:c0 + cin_g, rows, cols]     # (C_in/G, kH, kW)
                    y[n, oc, i, j] = np.sum(patch * weight[oc])
            if bias is not None:
                y[n, oc] += bias[oc]
    return (y[0] if ctx.unbatched else y), ctx


def conv2d_naive_backward(ctx: NaiveCtx, dy: Array) -> tuple[Array, Array, Array | None]:
    """Every output pixel y[n, oc, i, j] = Σ patch · W[oc] sends its gradient back:

        dx_pad[n, group channels, window(i, j)] += dy[n, oc, i, j] · W[oc]
        dW[oc]                                  += dy[n, oc, i, j] · patch
        db[oc]                                  += dy[n, oc, i, j]

    dx is the padded gradient with the padding cut off.
    """
    x, w, G = ctx.x, ctx.weight, ctx.groups
    dy = dy[None] if ctx.unbatched else dy
    xp = _zero_pad(x, ctx.lo, ctx.padded)
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    cin_g, cout_g = w.shape[1], w.shape[0] // G
    for n in range(dy.shape[0]):
        for oc in range(dy.shape[1]):
            c0 = (oc // cout_g) * cin_g
            for i in range(dy.shape[2]):
                for j in range(dy.shape[3]):
                    rows, cols = _window(i, j, ctx)
                    dxp[n, c0:c0 + cin_g, rows, cols] += dy[n, oc, i, j] * w[oc]
                    dw[oc] += dy[n, oc, i, j] * xp[n, c0:c0 + cin_g, rows, cols]
    H, W = x.shape[2:]
    dx = dxp[:, :, ctx.lo[0]:ctx.lo[0] + H, ctx.lo[1]:ctx.lo[1] + W].copy()
    db = dy.sum(axis=(0, 2, 3)) if ctx.has_bias else None
    return (dx[0] if ctx.unbatched else dx), dw, db


def conv_transpose2d_naive_forward(input: Array, weight: Array, bias: Array | None = None,
                                   stride: Any = 1, padding: Any = 0, output_padding: Any = 0,
                                   groups: int = 1, dilation: Any = 1
                                   ) -> tuple[Array, NaiveCtx]:
    """Every input pixel x[n, ic, i, j] stamps the kernel W[ic] (scaled by itself) onto the
    window (i, j) of a padded output plane; the padding is then cut off:

        y_pad[n, group channels, window(i, j)] += x[n, ic, i, j] · W[ic]

    This is conv2d's dx loop with x in the place of dy.

    Shapes:  as torch.nn.functional.conv_transpose2d (weight (C_in, C_out/G, kH, kW)).
    Saves:   x and W.
    Torch:   torch.nn.functional.conv_transpose2d
    """
    x, g, unbatched = check_conv_transpose("conv_transpose2d_naive", 2, input, weight, bias,
                                           stride, padding, output_padding, groups, dilation)
    ctx = _ctx(x, weight, g, bias, unbatched)       # g describes the conv we transpose:
    N, C_in = x.shape[:2]
    cin_g, cout_g = C_in // groups, weight.shape[1]
    yp = np.zeros((N, cout_g * groups) + ctx.padded, x.dtype)   # the padded output plane
    for n in range(N):
        for ic in range(C_in):
            c0 = (ic // cin_g) * cout_g                         # first output channel of group
            for i in range(x.shape[2]):
                for j in range(x.shape[3]):
                    rows, cols = _window(i, j, ctx)
                    yp[n, c0:c0 + cout_g, rows, cols] += x[n, ic, i, j] * weight[ic]
    H, W = g.size                                   # its input side is our output
    y = yp[:, :, g.lo[0]:g.lo[0] + H, g.lo[1]:g.lo[1] + W].copy()
    if bias is not None:
        y += bias[:, None, None]
    return (y[0] if ctx.unbatched else y), ctx


def conv_transpose2d_naive_backward(ctx: NaiveCtx, dy: Array
                                    ) -> tuple[Array, Array, Array | None]:
    """Each stamp y_pad[window(i, j)] += x[n, ic, i, j] · W[ic] sends back

        dx[n, ic, i, j] = Σ dy_pad[n, group channels, window(i, j)] · W[ic]
        dW[ic]         += x[n, ic, i, j] · dy_pad[n, group channels, window(i, j)]
        db             = Σ_{n, i, j} dy

    where dy_pad is dy zero-padded back to the padded plane (padding received no output).
    """
    x, w, G = ctx.x, ctx.weight, ctx.groups
    dy = dy[None] if ctx.unbatched else dy
    dyp = _zero_pad(dy, ctx.lo, ctx.padded)
    dx, dw = np.zeros_like(x), np.zeros_like(w)
    cin_g, cout_g = x.shape[1] // G, w.shape[1]
    for n in range(x.shape[0]):
        for ic in range(x.shape[1]):
            c0 = (ic // cin_g) * cout_g
            for i in range(x.shape[2]):
                for j in range(x.shape[3]):
                    rows, cols = _window(i, j, ctx)
                    patch = dyp[n, c0:c0 + cout_g, rows, cols]   # (C_out/G, kH, kW)
                    dx[n, ic, i, j] = np.sum(patch * w[ic])
                    dw[ic] += x[n, ic, i, j] * patch
    db = dy.sum(axis=(0, 2, 3)) if ctx.has_bias else None
    return (dx[0] if ctx.unbatched else dx), dw, db


conv2d_naive = defop(conv2d_naive_forward, conv2d_naive_backward)
conv_transpose2d_naive = defop(conv_transpose2d_naive_forward, conv_transpose2d_naive_backward)
