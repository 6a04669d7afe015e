"""Activations, the fast engine: y = f(x) elementwise (σ(x) = 1 / (1 + e^{−x}), max(x, 0), ...)
and the softmax family y_i = x_i − log Σ_j e^{x_j}; dx = dy ⊙ f'(x), dx = dy − e^y Σ dy.

The textbook edition is :mod:`scratchnn.textbook.activation`: read it first. Every op that is
already plain there (softmin, hardswish, softsign, tanhshrink, prelu) is
re-exported here as the same function object. This module adds the fast editions of the ops
whose speed needs machinery, each proved equal to its textbook twin (values and every
gradient, with each route in ``ROUTES`` forced):

* leaky_relu: y = max(a·x, x) (min for a > 1) block by block over the threads, two passes a
  block, saving x as the textbook does; the backward rebuilds f = 1 or a from x on the bits
  (f+b over 4 M float32: 5.0 against 6.0 ms, forward 1.6 against 3.5; 32 MiB instead of 48);
* elu, selu, celu, gelu (both forms), silu and softplus: one blocked kernel each
  (:func:`scratchnn.perf.elementwise.blocked`: cache-sized blocks over the threads) computes y
  and the derivative factor f = dy/dx in the forward and saves f alone, so the backward is the
  single product dy ⊙ f; selects are exact factors or bit selects, never ``np.where``
  (~20 ms per 4 M random elements). gelu's float32 Φ is a one-exp approximation accurate to a
  few ulp (float64 keeps the textbook's Cody erfc); elu's factor reuses the forward's expm1;
* sigmoid, and the ops built on σ (mish's and logsigmoid's backward): σ = 1 / (1 + e^{−x})
  (torch's formula: four passes, the textbook's stable form takes seven) and its backward
  computed block by block in cache and split over threads
  (:func:`scratchnn.perf.blocks.sigmoid_into`, :func:`scratchnn.perf.threads.chunked`);
  tanh likewise (``np.tanh`` over the threads; dy ⊙ (1 − y²) block by block,
  :func:`scratchnn.perf.blocks.tanh_grad_into`), both into recycled memory: the textbook's
  one-line backward made two fresh (*)-sized temporaries (f+b over 4 M float32: 8.2
  against 14.8 ms);
* relu: max(x, 0) and its backward (dy where y ≠ 0) as blocked kernels, the backward's select
  on the bits; hardtanh, relu6 and hardsigmoid's backward ``np.where(mask, dy, 0)`` as a
  bitwise select (:func:`scratchnn.perf.bitwise.mask_select`);
* log_softmax and softmax along the last axis of a large contiguous array (attention's scores:
  softmax over the keys): row blocks in cache, row ranges
  over threads (:func:`scratchnn.perf.threads.ranges`), the per-row broadcasts (x − max,
  s − log Σ) looping row by row instead of through NumPy's buffer
  (:func:`scratchnn.perf.blocks.row_loops`: (4096, 1000) forward + backward 0.93–0.97× on
  two threads, 0.87–0.88× on one).

Which path runs is decided in one place, :func:`choose_route` (the blocked kernels always run
blocked; a non-contiguous input is copied once). The results are those of the textbook
formulas, bit for bit where the tests say so.
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from .._validate import check_array, check_choice, check_float, check_inplace
from ..autodiff import defop
from ..perf import recycle, threads
from ..perf.bitwise import mask_select
from ..perf.blocks import (as_rows, block_bytes, row_blocks, row_loops, sigmoid_grad_into,
                           sigmoid_into, tanh_grad_into)
from ..perf.elementwise import bits_of, blocked, int_view, select_bits, zeros_block
from ..perf.threads import chunked, ranges
from ..perf.workspace import workspace
from ..textbook import activation as T
from ..textbook.activation import (  # noqa: F401  (the plain ops and shared pieces: one object)
    SELU_ALPHA, SELU_SCALE, HardtanhCtx, MishCtx, PreluCtx, SoftmaxCtx, TanhshrinkCtx, XCtx,
    YCtx, hardswish,
    hardswish_backward, hardswish_forward, exp_parts, log_sum_exp_parts, prelu, prelu_backward,
    prelu_forward, softmax_args, softplus_args, softmin,
    softmin_backward, softmin_forward, softsign, softsign_backward, softsign_forward,
    stable_softplus, tanhshrink, tanhshrink_backward, tanhshrink_forward)
from ..textbook.activation import _normal_cdf

Array = np.ndarray

__all__ = list(T.__all__)

_SIGMOID_BLOCK = 1 << 18             # elements per block (1 MiB of float32): few calls, in cache
_ROW_BLOCK_BYTES = 1 << 21           # (log_)softmax rows per block: at most 2 MiB of each
_ROW_BLOCK_MIN = 1 << 19             # array, at least 512 KiB (perf.blocks.block_bytes)
_KEEP_BYTES = 1 << 22                # per-thread scratch blocks up to this size are kept

# route -> the settings that force it on small inputs (tests/test_textbook.py forces each)
_SMALL = {"_SIGMOID_BLOCK": 5, "_ROW_BLOCK_BYTES": 1,
          "scratchnn.perf.elementwise.BLOCK_BYTES": 24,        # 3 float64 / 6 float32 a block
          "scratchnn.perf.threads.MIN_PARALLEL": 1,
          "scratchnn.perf.threads.MIN_PARALLEL_ROWS": 1}
ROUTES: dict[str, dict[str, object]] = {
    "default": {},
    "blocked, 1 thread": {**_SMALL, "scratchnn.perf.threads._threads": 1},
    "blocked, 2 threads": {**_SMALL, "scratchnn.perf.threads._threads": 2},
}


def choose_route(op: str, *arrays: Array, axis: int | None = None) -> str:
    """The engine's one route decision: how ``op`` ('sigmoid', 'tanh', 'relu', 'log_softmax'
    or 'softmax') works on ``arrays`` (the input, or the saved output and ``dy`` in a backward).

    * ``'blocked'`` — sigmoid or tanh, or their backward, when every array is C-contiguous
      (tanh: float, of one shape and dtype): blocks of ``_SIGMOID_BLOCK`` elements in cache,
      over ``get_num_threads()`` chunks from ``threads.MIN_PARALLEL`` elements on
      (:func:`~scratchnn.perf.threads.chunked`), into recycled memory (tanh);
    * ``'blocked'`` — also relu and its backward on float arrays
      (:func:`scratchnn.perf.elementwise.blocked`; a non-contiguous array is copied once);
    * ``'row blocks'`` — (log_)softmax along the last axis of C-contiguous arrays of one dtype and
      at least ``threads.MIN_PARALLEL`` elements: blocks of ``_ROW_BLOCK_MIN`` to
      ``_ROW_BLOCK_BYTES`` of rows (:func:`~scratchnn.perf.blocks.block_bytes`), row ranges
      over threads (:func:`~scratchnn.perf.threads.ranges`);
    * ``'whole array'`` — otherwise: the textbook's whole-array formula.
    """
    x = arrays[0]
    contiguous = all(a.flags.c_contiguous for a in arrays)
    if op == "sigmoid":
        return "blocked" if contiguous else "whole array"
    if op == "tanh":
        same = all(a.shape == x.shape and a.dtype == x.dtype for a in arrays)
        return "blocked" if contiguous and same and x.dtype.kind == "f" else "whole array"
    if op == "relu":
        return "blocked" if x.dtype.kind == "f" else "whole array"
    if op in ("log_softmax", "softmax"):
        rows = (axis in (-1, x.ndim - 1) and x.size >= threads.MIN_PARALLEL and x.shape[-1] != 0
                and all(a.dtype == x.dtype for a in arrays))
        return "row blocks" if contiguous and rows else "whole array"
    raise ValueError(f"choose_route(): parameter 'op' must be 'sigmoid', 'tanh', 'relu', "
                     f"'log_softmax' or 'softmax', got {op!r}")


# -- σ and the ops built on it -----------------------------------------------------------------

def _sigmoid(x: Array) -> Array:
    """σ(x) = 1 / (1 + e^{−x}), torch's formula: four passes where the textbook's
    ``stable_sigmoid`` takes seven (:func:`~scratchnn.perf.blocks.sigmoid_into`); equal to it
    to an ulp or two, and 0 where e^{−x} overflows (x < −88 in float32; torch's 0 too, the
    textbook's the denormal e^x). Into recycled memory: a fresh output page-faults in."""
    out = recycle.empty(x.shape, x.dtype)
    if choose_route("sigmoid", x, out) == "blocked":
        return chunked(lambda xc, out: sigmoid_into(xc, out, _SIGMOID_BLOCK), x, out=out)
    with np.errstate(over="ignore"):                        # e^{−x} = inf: σ = 0, exactly
        return np.divide(1, 1 + np.exp(-x), out=out)


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
    out = recycle.empty(y.shape, y.dtype)
    if choose_route("sigmoid", y, dy, out) == "whole array":
        return np.multiply(np.multiply(np.subtract(1, y), dy), y, out=out)
    return chunked(lambda yc, dyc, out: sigmoid_grad_into(yc, dyc, out, _SIGMOID_BLOCK),
                   y, dy, out=out)


def tanh_forward(input: Array) -> tuple[Array, YCtx]:
    """y = tanh(x) = (e^x − e^{−x}) / (e^x + e^{−x})

    Shapes:  x (*) -> y (*)
    Saves:   y, because d tanh/dx = 1 − y².
    Torch:   torch.tanh / torch.nn.functional.tanh

    On the ``'blocked'`` route ``np.tanh`` runs over the threads into recycled memory (the
    textbook's one call, chunk by chunk: the same bits)."""
    check_array("tanh", "input", input)
    if choose_route("tanh", input) == "whole array":
        return T.tanh_forward(input)
    y = chunked(np.tanh, input, out=recycle.empty(input.shape, input.dtype))
    return y, YCtx(y)


def tanh_backward(ctx: YCtx, dy: Array) -> Array:
    """dx = dy ⊙ (1 − y²): on the ``'blocked'`` route the textbook's three passes block by
    block in cache, over the threads, into recycled memory (no fresh (*)-sized temporaries);
    the same operations, so the same bits."""
    y = ctx.y
    if choose_route("tanh", y, dy) == "whole array":
        return T.tanh_backward(ctx, dy)
    return chunked(lambda yc, dyc, out: tanh_grad_into(yc, dyc, out, _SIGMOID_BLOCK), y, dy,
                   out=recycle.empty(y.shape, y.dtype))


def mish_forward(input: Array, inplace: bool = False) -> tuple[Array, MishCtx]:
    return T.mish_forward(input, inplace)


def mish_backward(ctx: MishCtx, dy: Array) -> Array:
    """dx = dy (t + x σ(x) (1 − t²))"""
    x, t = ctx.x, ctx.t
    return dy * (t + x * _sigmoid(x) * (1 - t * t))


def logsigmoid_forward(input: Array) -> tuple[Array, XCtx]:
    return T.logsigmoid_forward(input)


def logsigmoid_backward(ctx: XCtx, dy: Array) -> Array:
    """dx = dy (1 − σ(x)) = dy σ(−x)"""
    return dy * _sigmoid(-ctx.x)


# -- one blocked kernel per op: y and the derivative factor f = dy/dx, dx = dy ⊙ f -----------
#
# Each forward below computes y and f = f'(x) in one blocked pass over x
# (scratchnn.perf.elementwise.blocked: cache-sized blocks over the threads) and saves f alone,
# so the backward is the single product dy ⊙ f: no second pass over x, and the forward's
# exponential serves the derivative too. Selects are exact: by a factor that is exactly 1 or
# the slope, or on the bits (select_bits); never np.where (~20 ms per 4 M random elements).

class FactorCtx(NamedTuple):
    f: Array                     # dy/dx at every element: dx = dy ⊙ f


def _factor_op(fn: str, kernel: Any, input: Array, scratch: int) -> tuple[Array, FactorCtx]:
    """Run ``kernel(ins, (y, f), scratch)`` over ``input``'s blocks; y and f (and the
    backward's dx) in buffers from :mod:`scratchnn.perf.recycle`, already mapped memory."""
    y, f = recycle.empty(input.shape, input.dtype), recycle.empty(input.shape, input.dtype)
    blocked(kernel, (input,), (y, f), scratch)
    return y, FactorCtx(f)


def _product_kernel(ins, outs, s) -> None:
    np.multiply(ins[0], ins[1], out=outs[0])


def _factor_backward(ctx: FactorCtx, dy: Array) -> Array:
    """dx = dy ⊙ f, f = f'(x) saved by the forward: one product, blocked so that both threads
    stream it (a single ``np.multiply`` runs on one core)."""
    f = ctx.f
    dy = dy.astype(f.dtype, copy=False)
    if dy.shape != f.shape:                                   # broadcast: the plain product
        return np.multiply(dy, f)
    dx = recycle.empty(f.shape, f.dtype)
    blocked(_product_kernel, (dy, f), (dx,))
    return dx


# every op of this section has the one backward
elu_backward = selu_backward = celu_backward = _factor_backward
gelu_backward = silu_backward = softplus_backward = _factor_backward


def _mask(x: Array, out: Array, threshold: float = 0.0) -> Array:
    """[x > threshold] as all-ones (−1) / all-zeros integers in ``out``'s bits; returns the view."""
    m = int_view(out)
    np.greater(x, threshold, out=m, casting="unsafe")         # 1 / 0
    return np.negative(m, out=m)                               # −1 (all ones) / 0


def _leaky_factor(x: Array, step: int, lo: int, f: Array) -> Array:
    """f = 1 if x > 0 else a, on the bits: bits(a) + [x > 0]·(bits(1) − bits(a)) (``step``
    wraps as an integer of f's width), exactly 1 or a; returns f."""
    fi = int_view(f)
    np.greater(x, 0, out=fi, casting="unsafe")                # [x > 0]
    np.multiply(fi, step, out=fi)
    np.add(fi, lo, out=fi)                                    # the bits of 1 or a
    return f


def _leaky_bits(a: float, dtype: np.dtype) -> tuple[int, int]:
    """(step, lo) for :func:`_leaky_factor`: a's bits and bits(1) − bits(a), wrapped."""
    width = 8 * np.dtype(dtype).itemsize
    lo, one = bits_of(a, dtype), bits_of(1.0, dtype)
    return (one - lo + (1 << width - 1)) % (1 << width) - (1 << width - 1), lo


def leaky_relu_forward(input: Array, negative_slope: float = 0.01,
                       inplace: bool = False) -> tuple[Array, T.LeakyReluCtx]:
    """y = x if x > 0 else negative_slope · x

    Shapes:  x (*) -> y (*)
    Saves:   x and the slope (the textbook's context).
    Kink:    at x = 0 the gradient is negative_slope (torch: x > 0 ? dy : dy · slope).
    Torch:   torch.nn.functional.leaky_relu

    Blocked, two passes a block for 0 < a ≤ 1: y = max(a·x, x) (a·x ≥ x exactly where x ≤ 0;
    at ±0 both are the one zero, at ±inf a·x = x), min(a·x, x) for a > 1. For a ≤ 0 (where
    0·inf is NaN and a·(±0) changes the zero's sign): y = x ⊙ f with the
    backward's factor f, exactly 1 or a. Either way the textbook's np.where values bit for bit,
    and only y is written: the backward rebuilds f from x.
    """
    fn = "leaky_relu"
    check_array(fn, "input", input)
    a = check_float(fn, "negative_slope", negative_slope)
    check_inplace(fn, inplace)
    step, lo = _leaky_bits(a, input.dtype)
    pick = np.maximum if 0 < a <= 1 else np.minimum if a > 1 else None

    def kernel(ins, outs, s):
        (x,), (y,) = ins, outs
        if pick is None:
            np.multiply(x, _leaky_factor(x, step, lo, s[0]), out=y)
            return
        np.multiply(x, a, out=y)
        pick(y, x, out=y)
    y = recycle.empty(input.shape, input.dtype)
    blocked(kernel, (input,), (y,), 1 if pick is None else 0)
    return y, T.LeakyReluCtx(input, a)


def leaky_relu_backward(ctx: T.LeakyReluCtx, dy: Array) -> Array:
    """dx = dy ⊙ f, f = 1 if x > 0 else negative_slope: f rebuilt from x on the bits (exactly 1
    or a, so the textbook's np.where values bit for bit), block by block over the threads."""
    x = ctx.x
    dy = dy.astype(x.dtype, copy=False)
    if dy.shape != x.shape:                                   # broadcast: the textbook's
        return T.leaky_relu_backward(ctx, dy)
    step, lo = _leaky_bits(ctx.negative_slope, x.dtype)

    def kernel(ins, outs, s):
        (xb, dyb), (dx,) = ins, outs
        np.multiply(dyb, _leaky_factor(xb, step, lo, s[0]), out=dx)
    dx = recycle.empty(x.shape, x.dtype)
    blocked(kernel, (x, dy), (dx,), 1)
    return dx


def _elu(x: Array, alpha: float, scale: float, input_scale: float) -> tuple[Array, FactorCtx]:
    """torch's one kernel behind elu, selu and celu, as the textbook's ``_elu``:
    y = scale · max(x, 0) + scale · α · (e^{s · fmin(x, 0)} − 1)   (s = input_scale: one term
    is 0; ``fmin`` takes 0 at a NaN x, so the NaN comes from the first term alone)
    f = scale if not x <= 0 else c · e^{s·x}, c = scale · α · s, with e^{s·x} = 1 + expm1(s·x)
    from the forward (absolute error below one ulp of 1, as torch's result-based
    elu_backward). Where c rounds to scale (elu with α = 1: c = 1) the two branches are the one
    product c · (1 + expm1(s · fmin(x, 0))) — at x > 0 and at NaN x the expm1 is 0 — and no
    select is needed: six passes of the thirteen."""
    a_s, c = alpha * scale, alpha * scale * input_scale
    scale_bits = bits_of(scale, x.dtype)
    one_product = x.dtype.type(c) == x.dtype.type(scale)

    def kernel(ins, outs, s):
        (xb,), (y, f) = ins, outs
        e, tmp = s
        zeros = zeros_block(xb.dtype, xb.size)
        np.fmin(xb, zeros, out=e)
        if input_scale != 1.0:
            e *= input_scale
        np.expm1(e, out=e)                                    # e^{s·fmin(x, 0)} − 1
        np.maximum(xb, zeros, out=y)
        if scale != 1.0:
            y *= scale
        np.multiply(e, a_s, out=tmp)
        y += tmp                                              # one of the two terms is ±0
        if one_product:
            np.add(e, 1, out=f)
            if c != 1.0:
                f *= c
            return
        e += 1
        e *= c                                                # the x <= 0 branch of f
        m = int_view(f)
        np.less_equal(xb, 0, out=m, casting="unsafe")         # 1 / 0
        m -= 1                                                # 0 / −1: all ones where not x <= 0
        select_bits(m, scale_bits, int_view(e), int_view(tmp), m)   # f = scale there
    return _factor_op("elu", kernel, x, 2)


def _elu_args(fn: str, input: Array, alpha: float, inplace: bool, nonzero: bool) -> float:
    """The textbook's checks of elu/selu/celu (α a float, non-zero for celu's 1/α)."""
    check_array(fn, "input", input)
    alpha = check_float(fn, "alpha", alpha)
    if nonzero and alpha == 0:
        raise ValueError(f"{fn}(): parameter 'alpha' must be non-zero (it divides x), got 0.0")
    check_inplace(fn, inplace)
    return alpha


def elu_forward(input: Array, alpha: float = 1.0, inplace: bool = False
                ) -> tuple[Array, FactorCtx]:
    alpha = _elu_args("elu", input, alpha, inplace, nonzero=False)
    return _elu(input, alpha, 1.0, 1.0)


def selu_forward(input: Array, inplace: bool = False) -> tuple[Array, FactorCtx]:
    _elu_args("selu", input, 1.0, inplace, nonzero=False)
    return _elu(input, SELU_ALPHA, SELU_SCALE, 1.0)


def celu_forward(input: Array, alpha: float = 1.0, inplace: bool = False
                 ) -> tuple[Array, FactorCtx]:
    alpha = _elu_args("celu", input, alpha, inplace, nonzero=True)
    return _elu(input, alpha, 1.0, 1.0 / alpha)


# help() shows the textbook's docstrings, with what the fast edition saves instead
for _f, _saves in ((elu_forward, "f = dy/dx = 1 if x > 0 else α e^x."),
                   (selu_forward, "f = dy/dx = λ if x > 0 else λ α e^x."),
                   (celu_forward, "f = dy/dx = 1 if x > 0 else e^{x/α}.")):
    _doc = getattr(T, _f.__name__).__doc__
    _line = next(ln for ln in _doc.splitlines() if ln.strip().startswith("Saves:"))
    _f.__doc__ = _doc.replace(_line, _line[:_line.index("Saves:")] + "Saves:   " + _saves)


# Φ(−|x|) = ½ erfc(|x|/√2) = e^{−x²/2} · t · P(t),  t = 2√2 / (2√2 + |x|)  (float32 only):
# P of degree 8 fitted here to erfcx(a)/(2·t), a = |x|/√2 (relative error 4.4e-8 in float64;
# Φ in float32 within 8e-7 relative for |x| < 5, 2.2e-6 for |x| < 9, where Φ ≥ 1e-19).
# One exp serves Φ and φ(x) = e^{−x²/2}/√(2π). float64 keeps the textbook's Cody erfc.
_PHI_P = (0.14104223761748097, 0.1412047605544188, 0.12142709763787728, 0.10183796232763637,
          -0.014482607462653474, 0.1407321259876419, -0.24508444971224738,
          0.14300412373663454, -0.02968127267341428)
_TWO_SQRT2 = 2 * math.sqrt(2)
_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)


def _gelu_float32(ins, outs, s) -> None:
    """y = x Φ(x), f = Φ(x) + x φ(x), float32, with Φ from the one-exp formula above."""
    (x,), (y, f) = ins, outs
    t, p, q = s
    np.abs(x, out=t)
    t += _TWO_SQRT2
    np.divide(_TWO_SQRT2, t, out=t)                           # t = 2√2 / (2√2 + |x|)
    np.multiply(t, _PHI_P[-1], out=p)
    for c in _PHI_P[-2:0:-1]:                                 # Horner
        p += c
        p *= t
    p += _PHI_P[0]
    p *= t
    np.multiply(x, -0.5, out=q)
    q *= x
    np.exp(q, out=q)                                          # e^{−x²/2}
    p *= q                                                    # Φ(−|x|)
    np.greater_equal(x, 0, out=y, casting="unsafe")
    y -= p
    np.abs(y, out=y)                                          # Φ(x) = |[x ≥ 0] − Φ(−|x|)|
    q *= x
    q *= _INV_SQRT_2PI                                        # x φ(x)
    np.add(y, q, out=f)
    y *= x


def _gelu_float64(ins, outs, s) -> None:
    """y = x Φ(x), f = Φ(x) + x φ(x): the textbook's Cody Φ and formulas, block by block."""
    (x,), (y, f) = ins, outs
    cdf = _normal_cdf(x)
    np.multiply(x, cdf, out=y)
    xc = np.clip(x, -100, 100)
    np.add(cdf, x * (np.exp(-0.5 * xc * xc) * _INV_SQRT_2PI), out=f)


def _gelu_tanh(ins, outs, s) -> None:
    """y = ½x(1 + t), f = ½(1 + t) + ½x(1 − t²) u', t = tanh u, u = √(2/π)(x + 0.044715x³)"""
    (x,), (y, f) = ins, outs
    xc, u, du = s
    np.clip(x, -100, 100, out=xc)                             # keeps x³ finite; t = ±1 beyond
    np.multiply(xc, 0.044715, out=u)
    u *= xc
    u *= xc
    u += xc
    u *= _SQRT_2_OVER_PI
    np.tanh(u, out=u)                                         # t
    np.multiply(xc, 3 * 0.044715, out=du)
    du *= xc
    du += 1
    du *= _SQRT_2_OVER_PI                                     # u' = √(2/π)(1 + 3·0.044715x²)
    np.multiply(x, 0.5, out=f)                                # ½x
    np.multiply(u, u, out=xc)
    np.subtract(1, xc, out=xc)
    xc *= f
    xc *= du                                                  # ½x(1 − t²) u'
    u += 1
    np.multiply(f, u, out=y)
    np.multiply(u, 0.5, out=f)
    f += xc


def gelu_forward(input: Array, approximate: str = "none") -> tuple[Array, FactorCtx]:
    """y = x Φ(x)                                    approximate='none' (Φ: normal cdf)
    y = ½ x (1 + tanh(u)),  u = √(2/π)(x + 0.044715 x³)   approximate='tanh'

    Shapes:  x (*) -> y (*)
    Saves:   f = dy/dx = Φ(x) + x φ(x) (or the tanh form's derivative), computed in the forward.
    Torch:   torch.nn.functional.gelu
    """
    fn = "gelu"
    check_array(fn, "input", input)
    check_choice(fn, "approximate", approximate, ("none", "tanh"))
    if approximate == "tanh":
        return _factor_op(fn, _gelu_tanh, input, 3)
    if input.dtype == np.float32:
        return _factor_op(fn, _gelu_float32, input, 3)
    return _factor_op(fn, _gelu_float64, input, 0)


def silu_forward(input: Array, inplace: bool = False) -> tuple[Array, FactorCtx]:
    """y = x σ(x)   (swish)

    Shapes:  x (*) -> y (*)
    Saves:   f = dy/dx = σ(x) (1 + x (1 − σ(x))), computed as σ + y (1 − σ) (y = x σ: one
             pass fewer; the same accuracy against float64, 9.8e-7 at most over [−100, 100]).
    Torch:   torch.nn.functional.silu
    """
    check_array("silu", "input", input)
    check_inplace("silu", inplace)

    def kernel(ins, outs, s):
        (x,), (y, f) = ins, outs
        d, sg = s
        np.negative(x, out=d)
        with np.errstate(over="ignore"):                      # e^{−x} = inf: σ = 0, exactly
            np.exp(d, out=d)
        d += 1
        np.divide(1, d, out=sg)                               # σ(x) = 1 / (1 + e^{−x})
        np.multiply(x, sg, out=y)
        np.subtract(1, sg, out=f)
        f *= y
        f += sg                                               # σ + y (1 − σ)
    return _factor_op("silu", kernel, input, 2)


def softplus_forward(input: Array, beta: float = 1.0, threshold: float = 20.0
                     ) -> tuple[Array, FactorCtx]:
    """y = log(1 + e^{βx}) / β, reverting to y = x where βx > threshold   (β ≠ 0)

    Shapes:  x (*) -> y (*)
    Saves:   f = dy/dx = σ(βx), or 1 where βx > threshold.
    Kink:    βx == threshold takes the smooth branch (torch: linear only for βx > threshold).
    Stable:  log(1 + e^z) = max(z, 0) + log1p(e^{−|z|}); e^{−|z|} also gives σ(z).
    Torch:   torch.nn.functional.softplus
    """
    beta, threshold = softplus_args(input, beta, threshold)
    # float32, β = 1, threshold ≥ 17: where z > threshold the smooth branch already rounds to
    # the linear one — log1p(e^{−z}) < e^{−17} = 4.1e-8 is under half an ulp of z (≥ 9.5e-7)
    # and 1 + e^{−z} rounds to 1 (e^{−17} < 2^{−24}) — so y = x and f = 1 there without the
    # threshold's five passes (bit for bit the textbook's np.where; the default arguments)
    smooth_is_linear = beta == 1.0 and input.dtype == np.float32 and threshold >= 17.0

    def kernel(ins, outs, s):
        (x,), (y, f) = ins, outs
        z, e, m, tmp = s
        if beta == 1.0:
            z = x
        else:
            with np.errstate(over="ignore"):                  # ±inf: both limits are right
                np.multiply(x, beta, out=z)                   # z = βx
        np.abs(z, out=e)
        np.negative(e, out=e)
        np.exp(e, out=e)                                      # e^{−|z|} in (0, 1]
        np.log1p(e, out=tmp)
        np.maximum(z, zeros_block(z.dtype, z.size), out=y)
        y += tmp
        if beta != 1.0:
            y /= beta                                         # softplus(z) / β
        np.greater_equal(z, 0, out=tmp, casting="unsafe")
        np.maximum(e, tmp, out=tmp)
        e += 1
        np.divide(tmp, e, out=f)                              # σ(z) = max(e, [z ≥ 0]) / (1 + e)
        if smooth_is_linear:
            return
        np.greater(z, threshold, out=e, casting="unsafe")
        np.maximum(f, e, out=f)                               # 1 where z > threshold
        mi = _mask(z, m, threshold)
        select_bits(mi, int_view(x), int_view(y), int_view(tmp), int_view(y))   # y = x there
    return _factor_op("softplus", kernel, input, 4)


# -- the ReLU family: blocked maximum, bitwise-select backward --------------------------------

class ReluCtx(NamedTuple):
    keep: Array                  # int8, −1 (all ones) where y ≠ 0 (dy passes), 0 elsewhere


def _relu_kernel(ins, outs, s) -> None:
    """One block of relu's forward: y = max(x, 0) against a cached block of zeros (NumPy's
    array–array loop; against the scalar 0 it takes a ~3× slower one), and the byte mask
    keep = −[y ≠ 0] (all ones or 0) that the backward ANDs with dy's bits."""
    (x,), (y, keep) = ins, outs
    np.maximum(x, zeros_block(x.dtype, x.size), out=y)
    np.not_equal(y, 0, out=keep.view(np.bool_))
    np.negative(keep, out=keep)


def _relu_grad_kernel(ins, outs, s) -> None:
    """One block of relu's backward: dx = bits(dy) & keep (keep sign-extends to dy's width):
    dy exactly where y ≠ 0, +0 elsewhere, for every dy (inf, NaN); branch-free."""
    (keep, dy), (dx,) = ins, outs
    np.bitwise_and(int_view(dy), keep, out=int_view(dx))


def relu_forward(input: Array, inplace: bool = False) -> tuple[Array, YCtx | ReluCtx]:
    """y = max(x, 0)

    Shapes:  x (*) -> y (*)
    Saves:   y (the mask y > 0 is the derivative); on the blocked route only that mask, one
             byte per element (:class:`ReluCtx`).
    Kink:    relu'(0) = 0 (torch: threshold_backward(dy, y, 0) passes dy only where y > 0).
    Torch:   torch.nn.functional.relu

    Blocked (``'blocked'`` route, float input): y and the byte mask −[y ≠ 0] in one pass over
    x (:func:`_relu_kernel`), the blocks over the threads, y in already-mapped memory
    (:mod:`scratchnn.perf.recycle`). The backward then reads 5 bytes per float32 element
    instead of 8, and no comparison is left for it."""
    check_array("relu", "input", input)
    check_inplace("relu", inplace)
    if choose_route("relu", input) == "whole array":
        return T.relu_forward(input, inplace)
    y = recycle.empty(input.shape, input.dtype)
    keep = recycle.empty(input.shape, np.int8)
    blocked(_relu_kernel, (input,), (y, keep))
    return y, ReluCtx(keep)


def relu_backward(ctx: YCtx | ReluCtx, dy: Array) -> Array:
    """dx = dy ⊙ [not y <= 0]   (torch's threshold_backward: dy passes where y > 0 and where y
    is NaN, i.e. where the input was NaN; elsewhere dx = 0 even for an infinite or NaN dy)

    As y = max(x, 0) is never negative, [not y <= 0] is the single comparison [y ≠ 0]: saved
    by the blocked forward as a byte mask and applied to dy's bits block by block
    (:func:`_relu_grad_kernel`); from a saved y, :func:`~scratchnn.perf.bitwise.mask_select`
    of ``y ≠ 0``."""
    if isinstance(ctx, YCtx):
        return mask_select(dy, np.not_equal(ctx.y, 0))
    keep = ctx.keep
    if dy.shape != keep.shape:                                # broadcast, as np.where would
        return np.bitwise_and(int_view(dy), keep).view(dy.dtype)
    dx = recycle.empty(dy.shape, dy.dtype)
    blocked(_relu_grad_kernel, (keep, dy), (dx,))
    return dx


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
for _f in (mish_forward, logsigmoid_forward, hardtanh_forward, relu6_forward,
           hardsigmoid_forward):
    _f.__doc__ = getattr(T, _f.__name__).__doc__


# -- log_softmax and softmax: row blocks over threads ----------------------------------------

def _row_blocked(kernel: Any, *arrays: Array) -> Array:
    """``kernel(*blocks, out=out_block)`` over blocks of whole rows (the last axis) of
    C-contiguous ``arrays`` of one shape, 512 KiB to 2 MiB each as
    :func:`~scratchnn.perf.blocks.block_bytes` says, the row ranges over the threads
    (:func:`~scratchnn.perf.threads.ranges`); the output in already-mapped memory
    (:mod:`scratchnn.perf.recycle`), of the first array's shape and dtype. Each row is reduced
    alone, so any blocking and thread split give the bits of one whole-array call."""
    rows = [as_rows(a) for a in arrays]                     # (rows, n) each
    out = recycle.empty(arrays[0].shape, arrays[0].dtype)
    o, n = out.reshape(rows[0].shape), rows[0].shape[1]
    size = block_bytes(arrays[0].nbytes, _ROW_BLOCK_MIN, _ROW_BLOCK_BYTES)

    def step(a: int, b: int) -> None:
        with row_loops(n):
            for i, j in row_blocks(a, b, n, arrays[0].itemsize, size):
                kernel(*(r[i:j] for r in rows), out=o[i:j])
    ranges(step, rows[0].shape[0], rows[0].size, threads.MIN_PARALLEL_ROWS)
    return out


# The row kernels below are the textbook's formulas (log_sum_exp_parts, exp_parts, the
# backwards) operation for operation, so the same bits, written into ``out`` and one
# per-thread scratch block instead of fresh temporaries: a block's temporaries are 512 KiB+,
# past glibc's mmap threshold, and freeing them can hand the pages back to the system, so the
# next block page-faults them in again (log_softmax (4096, 1000) forward: 5.9 → 5.35 ms on 2
# threads, 11.2 → 10.35 on one, interleaved). The row maximum is taken with ``initial=−inf``:
# the same value (a maximum is exact; NaN still wins), and NumPy then takes a faster reduction
# loop on short rows (a block of 1024 rows of 128, attention's: 127 → 56 µs; rows of 768 or
# 1000: 38 → 27 µs and no change).
def _row_max(x: Array) -> Array:
    return x.max(axis=1, keepdims=True, initial=-np.inf)


def _log_softmax_rows(x: Array, out: Array) -> None:
    np.subtract(x, _row_max(x), out=out)                           # s = x − max
    e = np.exp(out, out=workspace(out.shape, out.dtype, "softmax e^s", _KEEP_BYTES))
    out -= np.log(e.sum(axis=1, keepdims=True))                   # s − log Σ e^s


def _log_softmax_grad_rows(y: Array, dy: Array, out: Array) -> None:
    e = np.exp(y, out=out)
    e *= dy.sum(axis=1, keepdims=True)
    np.subtract(dy, e, out=out)                                   # dy − e^y Σ dy


def _softmax_rows(x: Array, out: Array) -> None:
    np.subtract(x, _row_max(x), out=out)
    np.exp(out, out=out)
    out /= out.sum(axis=1, keepdims=True)                         # e^s / Σ e^s


def _softmax_grad_rows(y: Array, dy: Array, out: Array) -> None:
    total = np.multiply(dy, y, out=out).sum(axis=1, keepdims=True)
    np.subtract(dy, total, out=out)
    out *= y                                                # (dy − Σ dy ⊙ y) ⊙ y


def log_softmax_forward(input: Array, dim: int | None = None, _stacklevel: int = 3,
                        dtype: Any = None) -> tuple[Array, SoftmaxCtx]:
    """y_i = x_i − m − log Σ_j e^{x_j − m}   along ``dim``,  m = max_j x_j

    Shapes:  x (*) -> y (*); ``dim``/``dtype`` as softmax.
    Saves:   y, because softmax = e^y.
    Torch:   torch.nn.functional.log_softmax
    """
    x, axis = softmax_args("log_softmax", input, dim, _stacklevel, dtype)
    if choose_route("log_softmax", x, axis=axis) == "row blocks":
        y = _row_blocked(_log_softmax_rows, x)
    else:
        s, total = log_sum_exp_parts(x, axis)
        y = s - np.log(total)
    return y.reshape(input.shape), SoftmaxCtx(y, axis, input.shape, input.dtype)


def log_softmax_backward(ctx: SoftmaxCtx, dy: Array) -> Array:
    """dx = dy − e^y ⊙ Σ_dim dy"""
    y, axis = ctx.y, ctx.axis
    dy = dy.reshape(y.shape)
    if choose_route("log_softmax", y, dy, axis=axis) != "row blocks":
        return T.log_softmax_backward(ctx, dy)
    dx = _row_blocked(_log_softmax_grad_rows, y, dy)
    return dx.reshape(ctx.in_shape).astype(ctx.in_dtype, copy=False)


def softmax_forward(input: Array, dim: int | None = None, _stacklevel: int = 3,
                    dtype: Any = None) -> tuple[Array, SoftmaxCtx]:
    """y_i = e^{x_i − m} / Σ_j e^{x_j − m}   along ``dim``,  m = max_j x_j

    Shapes:  x (*) -> y (*); ``dim``/``dtype`` as the textbook's softmax.
    Saves:   y, because ∂y_i/∂x_j = y_i (δ_ij − y_j).
    Torch:   torch.nn.functional.softmax

    On the ``'row blocks'`` route (as log_softmax) each block of rows runs the textbook's
    formula in cache, the row ranges over the threads, y in already-mapped memory: the same
    operations on each row, so the same bits."""
    x, axis = softmax_args("softmax", input, dim, _stacklevel, dtype)
    if choose_route("softmax", x, axis=axis) == "row blocks":
        y = _row_blocked(_softmax_rows, x)
    else:
        _, e, total = exp_parts(x, axis)
        y = np.divide(e, total, out=e)
    return y.reshape(input.shape), SoftmaxCtx(y, axis, input.shape, input.dtype)


def softmax_backward(ctx: SoftmaxCtx, dy: Array) -> Array:
    """dx = y ⊙ (dy − Σ_dim dy ⊙ y)   (row blocks as the forward's)"""
    y, axis = ctx.y, ctx.axis
    dy = dy.reshape(y.shape)
    if choose_route("softmax", y, dy, axis=axis) != "row blocks":
        return T.softmax_backward(ctx, dy)
    dx = _row_blocked(_softmax_grad_rows, y, dy)
    return dx.reshape(ctx.in_shape).astype(ctx.in_dtype, copy=False)


# -- publish the fast editions ----------------------------------------------------------------

sigmoid = defop(sigmoid_forward, sigmoid_backward)
tanh = defop(tanh_forward, tanh_backward)
leaky_relu = defop(leaky_relu_forward, leaky_relu_backward)
elu = defop(elu_forward, elu_backward)
selu = defop(selu_forward, selu_backward)
celu = defop(celu_forward, celu_backward)
gelu = defop(gelu_forward, gelu_backward)
silu = defop(silu_forward, silu_backward)
mish = defop(mish_forward, mish_backward)
softplus = defop(softplus_forward, softplus_backward)
logsigmoid = defop(logsigmoid_forward, logsigmoid_backward)
relu = defop(relu_forward, relu_backward)
hardtanh = defop(hardtanh_forward, hardtanh_backward)
relu6 = defop(relu6_forward, relu6_backward)
hardsigmoid = defop(hardsigmoid_forward, hardsigmoid_backward)
log_softmax = defop(log_softmax_forward, log_softmax_backward)
softmax = defop(softmax_forward, softmax_backward)
