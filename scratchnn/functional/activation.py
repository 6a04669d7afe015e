"""Activations, the fast engine: y = f(x) elementwise (σ(x) = 1 / (1 + e^{−x}), max(x, 0), ...)
and the softmax family y_i = x_i − log Σ_j e^{x_j}; dx = dy ⊙ f'(x), dx = dy − e^y Σ dy.

The textbook edition is :mod:`scratchnn.textbook.activation`: read it first. Every op that is
already plain there (tanh, softmax, softmin, leaky_relu, elu, selu, celu, gelu, hardswish,
softsign, tanhshrink, prelu) is re-exported here as the same function object. This module adds
the fast editions of the ops whose speed needs machinery, each proved equal to its textbook twin
(values and every gradient, with each route in ``ROUTES`` forced):

* sigmoid, and the ops built on σ (silu's forward; mish's, softplus's and logsigmoid's
  backward): σ and its backward computed block by block in cache and split over threads
  (:func:`scratchnn.perf.blocks.sigmoid_into`, :func:`scratchnn.perf.threads.chunked`);
* relu: max(x, 0) as rows against a cached zero row
  (:func:`scratchnn.perf.blocks.maximum_zero_rows`); relu, hardtanh, relu6 and hardsigmoid's
  backward ``np.where(mask, dy, 0)`` as a bitwise select
  (:func:`scratchnn.perf.bitwise.mask_select`);
* log_softmax along the last axis of a large contiguous array: row blocks in cache, row ranges
  over threads (:func:`scratchnn.perf.threads.ranges`).

Which path runs is decided in one place, :func:`choose_route`. The results are those of the
textbook formulas, bit for bit where the tests say so.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .._validate import check_array, check_inplace
from ..autodiff import defop
from ..perf import threads
from ..perf.bitwise import mask_select
from ..perf.blocks import (as_rows, maximum_zero_rows, row_blocks, sigmoid_grad_into,
                           sigmoid_into)
from ..perf.threads import chunked, ranges
from ..textbook import activation as T
from ..textbook.activation import (  # noqa: F401  (the plain ops and shared pieces: one object)
    SELU_ALPHA, SELU_SCALE, EluCtx, GeluCtx, HardtanhCtx, LeakyReluCtx, MishCtx, PreluCtx,
    SiluCtx, SoftmaxCtx, SoftplusCtx, TanhshrinkCtx, XCtx, YCtx, celu, celu_backward,
    celu_forward, elu, elu_backward, elu_forward, gelu, gelu_backward, gelu_forward, hardswish,
    hardswish_backward, hardswish_forward, leaky_relu, leaky_relu_backward, leaky_relu_forward,
    log_sum_exp_parts, prelu, prelu_backward, prelu_forward, selu, selu_backward, selu_forward,
    softmax, softmax_args, softmax_backward, softmax_forward, softmin, softmin_backward,
    softmin_forward, softsign, softsign_backward, softsign_forward, stable_softplus, tanh,
    tanh_backward, tanh_forward, tanhshrink, tanhshrink_backward, tanhshrink_forward)

Array = np.ndarray

__all__ = list(T.__all__)

_SIGMOID_BLOCK = 1 << 18             # elements per block (1 MiB of float32): few calls, in cache
_ZERO_BLOCK = 8192                   # elements per row of the blocked np.maximum(x, 0)
_ROW_BLOCK_BYTES = 1 << 20           # log_softmax rows per block: about 1 MiB of each array

# route -> the settings that force it on small inputs (tests/test_textbook.py forces each)
_SMALL = {"_SIGMOID_BLOCK": 5, "_ZERO_BLOCK": 4, "_ROW_BLOCK_BYTES": 1,
          "scratchnn.perf.threads.MIN_PARALLEL": 1}
ROUTES: dict[str, dict[str, object]] = {
    "default": {},
    "blocked, 1 thread": {**_SMALL, "scratchnn.perf.threads._threads": 1},
    "blocked, 2 threads": {**_SMALL, "scratchnn.perf.threads._threads": 2},
}


def choose_route(op: str, *arrays: Array, axis: int | None = None) -> str:
    """The engine's one route decision: how ``op`` ('sigmoid', 'relu' or 'log_softmax') works
    on ``arrays`` (the input, or the saved output and ``dy`` in a backward).

    * ``'blocked'`` — sigmoid or its backward when every array is C-contiguous: blocks of
      ``_SIGMOID_BLOCK`` elements in cache, over ``get_num_threads()`` chunks from
      ``threads.MIN_PARALLEL`` elements on (:func:`~scratchnn.perf.threads.chunked`);
    * ``'zero rows'`` — relu's forward on a C-contiguous float array of at least
      ``_ZERO_BLOCK`` elements: rows against a cached zero row;
    * ``'row blocks'`` — log_softmax along the last axis of C-contiguous arrays of one dtype and
      at least ``threads.MIN_PARALLEL`` elements: blocks of about ``_ROW_BLOCK_BYTES`` rows,
      row ranges over threads (:func:`~scratchnn.perf.threads.ranges`);
    * ``'whole array'`` — otherwise: the textbook's whole-array formula.
    """
    x = arrays[0]
    contiguous = all(a.flags.c_contiguous for a in arrays)
    if op == "sigmoid":
        return "blocked" if contiguous else "whole array"
    if op == "relu":
        big = x.size >= _ZERO_BLOCK and x.dtype.kind == "f"
        return "zero rows" if contiguous and big else "whole array"
    if op == "log_softmax":
        rows = (axis in (-1, x.ndim - 1) and x.size >= threads.MIN_PARALLEL and x.shape[-1] != 0
                and all(a.dtype == x.dtype for a in arrays))
        return "row blocks" if contiguous and rows else "whole array"
    raise ValueError(f"choose_route(): parameter 'op' must be 'sigmoid', 'relu' or "
                     f"'log_softmax', got {op!r}")


# -- σ and the ops built on it -----------------------------------------------------------------

def _sigmoid(x: Array) -> Array:
    """σ(x) = max(e, [x ≥ 0]) / (1 + e), e = e^{−|x|}: the textbook's ``stable_sigmoid``, the
    same bits (``np.maximum`` picks the numerator that ``np.where`` picks there), fast."""
    out = np.empty_like(x)
    if choose_route("sigmoid", x, out) == "blocked":
        return chunked(lambda xc, out: sigmoid_into(xc, out, _SIGMOID_BLOCK), x, out=out)
    e = np.exp(-np.abs(x))                                  # in (0, 1]
    return np.divide(np.maximum(e, x >= 0), 1 + e, out=out)


def sigmoid_forward(input: Array) -> tuple[Array, YCtx]:
    """y = σ(x) = 1 / (1 + e^{−x})

    Shapes:  x (*) -> y (*)
    Saves:   y, because dσ/dx = y (1 − y).
    Torch:   torch.sigmoid / torch.nn.functional.sigmoid
    """
    check_array("sigmoid", "input", input)
    y = _sigmoid(input)
    return y, YCtx(y)


def sigmoid_backward(ctx: YCtx, dy: Array) -> Array:
    """dx = dy ⊙ (1 − y) ⊙ y   (torch's order of the products)"""
    y = ctx.y
    dy = dy.astype(y.dtype, copy=False)
    out = np.empty_like(y)
    if choose_route("sigmoid", y, dy, out) == "whole array":
        return np.multiply(np.multiply(np.subtract(1, y), dy), y, out=out)
    return chunked(lambda yc, dyc, out: sigmoid_grad_into(yc, dyc, out, _SIGMOID_BLOCK),
                   y, dy, out=out)


def silu_forward(input: Array, inplace: bool = False) -> tuple[Array, SiluCtx]:
    """y = x σ(x)   (swish)

    Shapes:  x (*) -> y (*)
    Saves:   x and σ(x).
    Torch:   torch.nn.functional.silu
    """
    check_array("silu", "input", input)
    check_inplace("silu", inplace)
    s = _sigmoid(input)
    return np.asarray(input * s), SiluCtx(input, s)


silu_backward = T.silu_backward


def mish_forward(input: Array, inplace: bool = False) -> tuple[Array, MishCtx]:
    return T.mish_forward(input, inplace)


def mish_backward(ctx: MishCtx, dy: Array) -> Array:
    """dx = dy (t + x σ(x) (1 − t²))"""
    x, t = ctx.x, ctx.t
    return dy * (t + x * _sigmoid(x) * (1 - t * t))


def softplus_forward(input: Array, beta: float = 1.0, threshold: float = 20.0
                     ) -> tuple[Array, SoftplusCtx]:
    return T.softplus_forward(input, beta, threshold)


def softplus_backward(ctx: SoftplusCtx, dy: Array) -> Array:
    """dx = dy if βx > threshold else dy σ(βx)"""
    return np.where(ctx.z > ctx.threshold, dy, dy * _sigmoid(ctx.z))


def logsigmoid_forward(input: Array) -> tuple[Array, XCtx]:
    return T.logsigmoid_forward(input)


def logsigmoid_backward(ctx: XCtx, dy: Array) -> Array:
    """dx = dy (1 − σ(x)) = dy σ(−x)"""
    return dy * _sigmoid(-ctx.x)


# -- the ReLU family: blocked maximum, bitwise-select backward --------------------------------

def relu_forward(input: Array, inplace: bool = False) -> tuple[Array, YCtx]:
    """y = max(x, 0)

    Shapes:  x (*) -> y (*)
    Saves:   y (the mask y > 0 is the derivative).
    Kink:    relu'(0) = 0 (torch: threshold_backward(dy, y, 0) passes dy only where y > 0).
    Torch:   torch.nn.functional.relu
    """
    check_array("relu", "input", input)
    check_inplace("relu", inplace)
    if choose_route("relu", input) == "zero rows":
        y = maximum_zero_rows(input, _ZERO_BLOCK)
    else:
        y = np.asarray(np.maximum(input, 0))
    return y, YCtx(y)


def relu_backward(ctx: YCtx, dy: Array) -> Array:
    """dx = dy ⊙ [not y <= 0]   (torch's threshold_backward: dy passes where y > 0 and where y
    is NaN, i.e. where the input was NaN; elsewhere dx = 0 even for an infinite or NaN dy)

    As y = max(x, 0) is never negative, [not y <= 0] is the single comparison [y ≠ 0]."""
    return mask_select(dy, np.not_equal(ctx.y, 0))


def hardtanh_forward(input: Array, min_val: float = -1.0, max_val: float = 1.0,
                     inplace: bool = False) -> tuple[Array, HardtanhCtx]:
    return T.hardtanh_forward(input, min_val, max_val, inplace)


def hardtanh_backward(ctx: HardtanhCtx, dy: Array) -> Array:
    """dx = dy if min_val < x < max_val else 0"""
    return mask_select(dy, (ctx.x > ctx.min_val) & (ctx.x < ctx.max_val))


def relu6_forward(input: Array, inplace: bool = False) -> tuple[Array, HardtanhCtx]:
    return T.relu6_forward(input, inplace)


def relu6_backward(ctx: HardtanhCtx, dy: Array) -> Array:
    """dx = dy if 0 < x < 6 else 0"""
    return hardtanh_backward(ctx, dy)


def hardsigmoid_forward(input: Array, inplace: bool = False) -> tuple[Array, XCtx]:
    return T.hardsigmoid_forward(input, inplace)


def hardsigmoid_backward(ctx: XCtx, dy: Array) -> Array:
    """dx = dy / 6 if −3 < x < 3 else 0"""
    return mask_select(dy / 6, (ctx.x > -3) & (ctx.x < 3))


# the forwards above that only hand over to the textbook show its docstring in help()
for _f in (mish_forward, softplus_forward, logsigmoid_forward, hardtanh_forward, relu6_forward,
           hardsigmoid_forward):
    _f.__doc__ = getattr(T, _f.__name__).__doc__


# -- log_softmax: row blocks over threads ---------------------------------------------------

def log_softmax_forward(input: Array, dim: int | None = None, _stacklevel: int = 3,
                        dtype: Any = None) -> tuple[Array, SoftmaxCtx]:
    """y_i = x_i − m − log Σ_j e^{x_j − m}   along ``dim``,  m = max_j x_j

    Shapes:  x (*) -> y (*); ``dim``/``dtype`` as softmax.
    Saves:   y, because softmax = e^y.
    Torch:   torch.nn.functional.log_softmax
    """
    x, axis = softmax_args("log_softmax", input, dim, _stacklevel, dtype)
    if choose_route("log_softmax", x, axis=axis) == "row blocks":
        rows = as_rows(x)                                   # (rows, n)
        y = np.empty_like(x)
        yr = y.reshape(rows.shape)

        def step(a: int, b: int) -> None:
            for i, j in row_blocks(a, b, rows.shape[1], x.itemsize, _ROW_BLOCK_BYTES):
                s, total = log_sum_exp_parts(rows[i:j], 1)
                np.subtract(s, np.log(total), out=yr[i:j])
        ranges(step, rows.shape[0], rows.size)
    else:
        s, total = log_sum_exp_parts(x, axis)
        y = s - np.log(total)
    return y.reshape(input.shape), SoftmaxCtx(y, axis, input.shape, input.dtype)


def log_softmax_backward(ctx: SoftmaxCtx, dy: Array) -> Array:
    """dx = dy − e^y ⊙ Σ_dim dy"""
    y, axis = ctx.y, ctx.axis
    dy = dy.reshape(y.shape)
    if choose_route("log_softmax", y, dy, axis=axis) == "row blocks":
        yr, dyr = as_rows(y), as_rows(dy)                   # (rows, n)
        dx = np.empty_like(y)
        dxr = dx.reshape(yr.shape)

        def step(a: int, b: int) -> None:
            for i, j in row_blocks(a, b, yr.shape[1], y.itemsize, _ROW_BLOCK_BYTES):
                np.subtract(dyr[i:j], np.exp(yr[i:j]) * dyr[i:j].sum(axis=1, keepdims=True),
                            out=dxr[i:j])
        ranges(step, yr.shape[0], yr.size)
    else:
        dx = dy - np.exp(y) * dy.sum(axis=axis, keepdims=True)
    return dx.reshape(ctx.in_shape).astype(ctx.in_dtype, copy=False)


# -- publish the fast editions ----------------------------------------------------------------

sigmoid = defop(sigmoid_forward, sigmoid_backward)
silu = defop(silu_forward, silu_backward)
mish = defop(mish_forward, mish_backward)
softplus = defop(softplus_forward, softplus_backward)
logsigmoid = defop(logsigmoid_forward, logsigmoid_backward)
relu = defop(relu_forward, relu_backward)
hardtanh = defop(hardtanh_forward, hardtanh_backward)
relu6 = defop(relu6_forward, relu6_backward)
hardsigmoid = defop(hardsigmoid_forward, hardsigmoid_backward)
log_softmax = defop(log_softmax_forward, log_softmax_backward)
