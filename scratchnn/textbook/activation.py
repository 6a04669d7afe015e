"""Activations, the textbook edition: elementwise nonlinearities and the softmax family.

Notation: ``x`` input, ``y`` output, ``dy = ∂L/∂y``, ``dx = ∂L/∂x`` (same shapes). Each op is a
``<op>_forward`` returning ``(y, ctx)`` and an ``<op>_backward(ctx, dy)`` returning ``dx``, tied
together by :func:`scratchnn.defop` under torch's name. Every op is stable for any finite input
(no overflow or invalid-value warnings at ±1e4, float32 or float64; values that truly underflow
become 0, as in torch) and keeps the input's dtype; at kinks it follows torch's convention,
written next to each backward (e.g. relu'(0) = 0, hardtanh'(±1) = 0).

``inplace``: torch's ``inplace=True`` overwrites the input. scratchnn never modifies an input, so
``inplace=True`` raises a ``ValueError`` instead of silently doing something else; ``False`` (the
default) is accepted for signature compatibility.

The plain ones (softmin, hardswish, softsign, tanhshrink, prelu) are also
``scratchnn.functional``'s (the same function objects). The fast engine
``scratchnn.functional.activation`` has its own editions of sigmoid, tanh, the relu family
(relu, leaky_relu, hardtanh, relu6, hardsigmoid), the elu family (elu, selu, celu), gelu,
softmax and log_softmax and of the ops built on σ (silu, mish, softplus, logsigmoid), proved
equal to these by the tests.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, NamedTuple

import numpy as np

from .._validate import (check_array, check_choice, check_dim, check_float, check_float_dtype,
                         check_inplace, check_same_dtype)
from ..autodiff import defop

Array = np.ndarray

__all__ = [
    "sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu", "celu", "gelu", "silu", "mish",
    "softplus", "hardtanh", "relu6", "hardsigmoid", "hardswish", "logsigmoid", "softsign",
    "tanhshrink", "softmax", "log_softmax", "softmin", "prelu",
]
__all__ += [f"{op}_{part}" for op in list(__all__) for part in ("forward", "backward")]


# -- shared pieces (the fast engine imports these too) -----------------------------------------

def stable_sigmoid(x: Array) -> Array:
    """σ(x) without ever computing exp of a large positive number.

    With e = e^{−|x|} ∈ (0, 1]:  σ(x) = 1 / (1 + e) for x ≥ 0  and  e / (1 + e) for x < 0
    (multiply the top and bottom of 1 / (1 + e^{−x}) by e^{x} when x < 0).
    """
    e = np.exp(-np.abs(x))                                  # in (0, 1]: never overflows
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def stable_softplus(z: Array) -> Array:
    """log(1 + e^z) = max(z, 0) + log1p(e^{−|z|}): exp never sees a positive argument."""
    return np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))


class XCtx(NamedTuple):
    x: Array                     # the derivative is written in the input


class YCtx(NamedTuple):
    y: Array                     # the derivative is written in the output


# -- sigmoid, tanh ---------------------------------------------------------------------------

def sigmoid_forward(input: Array) -> tuple[Array, YCtx]:
    """y = σ(x) = 1 / (1 + e^{−x})

    Shapes:  x (*) -> y (*)
    Saves:   y, because dσ/dx = y (1 − y).
    Torch:   torch.sigmoid / torch.nn.functional.sigmoid
    """
    check_array("sigmoid", "input", input)
    y = stable_sigmoid(input)                               # (*)
    return y, YCtx(y)


def sigmoid_backward(ctx: YCtx, dy: Array) -> Array:
    """dx = dy ⊙ (1 − y) ⊙ y   (torch's order of the products)

    From σ(x) = 1 / (1 + e^{−x}):  σ'(x) = e^{−x} / (1 + e^{−x})² = σ(x) (1 − σ(x)), so the
    output y is all the backward needs."""
    y = ctx.y
    return (1 - y) * dy.astype(y.dtype, copy=False) * y


def tanh_forward(input: Array) -> tuple[Array, YCtx]:
    """y = tanh(x) = (e^x − e^{−x}) / (e^x + e^{−x})

    Shapes:  x (*) -> y (*)
    Saves:   y, because d tanh/dx = 1 − y².
    Torch:   torch.tanh / torch.nn.functional.tanh
    """
    check_array("tanh", "input", input)
    y = np.asarray(np.tanh(input))                          # saturates to ±1, never overflows
    return y, YCtx(y)


def tanh_backward(ctx: YCtx, dy: Array) -> Array:
    """dx = dy ⊙ (1 − y²)"""
    return dy * (1 - ctx.y * ctx.y)


# -- the ReLU family -------------------------------------------------------------------------

def relu_forward(input: Array, inplace: bool = False) -> tuple[Array, YCtx]:
    """y = max(x, 0)

    Shapes:  x (*) -> y (*)
    Saves:   y (the mask y > 0 is the derivative).
    Kink:    relu'(0) = 0 (torch: threshold_backward(dy, y, 0) passes dy only where y > 0).
    Torch:   torch.nn.functional.relu
    """
    check_array("relu", "input", input)
    check_inplace("relu", inplace)
    y = np.asarray(np.maximum(input, 0))                   # NaN stays NaN
    return y, YCtx(y)


def relu_backward(ctx: YCtx, dy: Array) -> Array:
    """dx = dy ⊙ [not y <= 0]   (torch's threshold_backward: dy passes where y > 0 and where y
    is NaN, i.e. where the input was NaN; elsewhere dx = 0 even for an infinite or NaN dy)

    As y = max(x, 0) is never negative, [not y <= 0] is the single comparison [y ≠ 0]."""
    return np.where(ctx.y != 0, dy, 0)


class LeakyReluCtx(NamedTuple):
    x: Array
    negative_slope: float


def leaky_relu_forward(input: Array, negative_slope: float = 0.01,
                       inplace: bool = False) -> tuple[Array, LeakyReluCtx]:
    """y = x if x > 0 else negative_slope · x

    Shapes:  x (*) -> y (*)
    Saves:   x and the slope.
    Kink:    at x = 0 the gradient is negative_slope (torch: x > 0 ? dy : dy · slope).
    Torch:   torch.nn.functional.leaky_relu
    """
    fn = "leaky_relu"
    check_array(fn, "input", input)
    a = check_float(fn, "negative_slope", negative_slope)
    check_inplace(fn, inplace)
    return np.where(input > 0, input, input * a), LeakyReluCtx(input, a)


def leaky_relu_backward(ctx: LeakyReluCtx, dy: Array) -> Array:
    """dx = dy if x > 0 else negative_slope · dy"""
    return np.where(ctx.x > 0, dy, dy * ctx.negative_slope)


class EluCtx(NamedTuple):
    x: Array
    alpha: float
    scale: float
    input_scale: float


def _elu(x: Array, alpha: float, scale: float, input_scale: float) -> tuple[Array, EluCtx]:
    """torch's one kernel behind elu, selu and celu:
    y = scale · x if x > 0 else scale · α · (e^{input_scale · x} − 1)."""
    neg = np.expm1(np.minimum(x, 0) * input_scale)         # exp never sees x > 0
    y = np.where(x > 0, x * scale, neg * (alpha * scale))
    return y, EluCtx(x, alpha, scale, input_scale)


def _elu_backward(ctx: EluCtx, dy: Array) -> Array:
    """dx = dy · scale · α · input_scale · e^{input_scale · x} if x <= 0 else scale · dy
    (torch's elu_backward: x = 0 takes the first branch, a NaN x the second)."""
    x, s = ctx.x, ctx.input_scale
    neg = np.exp(np.minimum(x, 0) * s) * (ctx.alpha * ctx.scale * s)
    return np.where(x <= 0, dy * neg, dy * ctx.scale)


def elu_forward(input: Array, alpha: float = 1.0, inplace: bool = False) -> tuple[Array, EluCtx]:
    """y = x if x > 0 else α (e^x − 1)

    Shapes:  x (*) -> y (*)
    Saves:   x and α (e^x is recomputed: cheaper than saving a second array).
    Kink:    elu'(0) = α (torch takes the exponential branch for x <= 0).
    Torch:   torch.nn.functional.elu
    """
    check_array("elu", "input", input)
    alpha = check_float("elu", "alpha", alpha)
    check_inplace("elu", inplace)
    return _elu(input, alpha, 1.0, 1.0)


def elu_backward(ctx: EluCtx, dy: Array) -> Array:
    """dx = dy if x > 0 else dy · α e^x"""
    return _elu_backward(ctx, dy)


SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def selu_forward(input: Array, inplace: bool = False) -> tuple[Array, EluCtx]:
    """y = λ x if x > 0 else λ α (e^x − 1),  α ≈ 1.6733, λ ≈ 1.0507 (self-normalising)

    Shapes:  x (*) -> y (*)
    Saves:   x.
    Kink:    selu'(0) = λ α.
    Torch:   torch.nn.functional.selu
    """
    check_array("selu", "input", input)
    check_inplace("selu", inplace)
    return _elu(input, SELU_ALPHA, SELU_SCALE, 1.0)


def selu_backward(ctx: EluCtx, dy: Array) -> Array:
    """dx = λ dy if x > 0 else dy · λ α e^x"""
    return _elu_backward(ctx, dy)


def celu_forward(input: Array, alpha: float = 1.0, inplace: bool = False
                 ) -> tuple[Array, EluCtx]:
    """y = max(0, x) + min(0, α (e^{x/α} − 1))    (α ≠ 0)

    Shapes:  x (*) -> y (*)
    Saves:   x and α.
    Kink:    celu'(0) = 1 for every α (the exponential branch, α · (1/α) · e⁰).
    Torch:   torch.nn.functional.celu
    """
    check_array("celu", "input", input)
    alpha = check_float("celu", "alpha", alpha)
    if alpha == 0:
        raise ValueError("celu(): parameter 'alpha' must be non-zero (it divides x), got 0.0")
    check_inplace("celu", inplace)
    return _elu(input, alpha, 1.0, 1.0 / alpha)


def celu_backward(ctx: EluCtx, dy: Array) -> Array:
    """dx = dy if x > 0 else dy · e^{x/α}"""
    return _elu_backward(ctx, dy)


class HardtanhCtx(NamedTuple):
    x: Array
    min_val: float
    max_val: float


def _hardtanh(fn: str, x: Array, lo: float, hi: float) -> tuple[Array, HardtanhCtx]:
    return np.asarray(np.clip(x, lo, hi)), HardtanhCtx(x, lo, hi)


def hardtanh_forward(input: Array, min_val: float = -1.0, max_val: float = 1.0,
                     inplace: bool = False) -> tuple[Array, HardtanhCtx]:
    """y = clamp(x, min_val, max_val)

    Shapes:  x (*) -> y (*)
    Saves:   x and the bounds.
    Kink:    the gradient is 0 at both bounds (torch: x <= min or x >= max gives 0).
    Torch:   torch.nn.functional.hardtanh
    """
    fn = "hardtanh"
    check_array(fn, "input", input)
    lo, hi = check_float(fn, "min_val", min_val), check_float(fn, "max_val", max_val)
    if lo > hi:
        raise ValueError(f"{fn}(): parameter 'min_val' ({lo}) must not be greater than "
                         f"'max_val' ({hi})")
    check_inplace(fn, inplace)
    return _hardtanh(fn, input, lo, hi)


def hardtanh_backward(ctx: HardtanhCtx, dy: Array) -> Array:
    """dx = dy if min_val < x < max_val else 0"""
    inside = (ctx.x > ctx.min_val) & (ctx.x < ctx.max_val)  # the bounds themselves: 0
    return np.where(inside, dy, 0)


def relu6_forward(input: Array, inplace: bool = False) -> tuple[Array, HardtanhCtx]:
    """y = min(max(x, 0), 6) = hardtanh(x, 0, 6)

    Shapes:  x (*) -> y (*)
    Saves:   x.
    Kink:    relu6'(0) = relu6'(6) = 0 (torch computes it as hardtanh(x, 0, 6)).
    Torch:   torch.nn.functional.relu6
    """
    check_array("relu6", "input", input)
    check_inplace("relu6", inplace)
    return _hardtanh("relu6", input, 0.0, 6.0)


def relu6_backward(ctx: HardtanhCtx, dy: Array) -> Array:
    """dx = dy if 0 < x < 6 else 0"""
    return hardtanh_backward(ctx, dy)


def hardsigmoid_forward(input: Array, inplace: bool = False) -> tuple[Array, XCtx]:
    """y = min(max(x + 3, 0), 6) / 6

    Shapes:  x (*) -> y (*)
    Saves:   x.
    Kink:    the gradient is 0 at x = ±3 (torch: 1/6 only for −3 < x < 3).
    Torch:   torch.nn.functional.hardsigmoid
    """
    check_array("hardsigmoid", "input", input)
    check_inplace("hardsigmoid", inplace)
    return np.asarray(np.clip(input + 3, 0, 6) / 6), XCtx(input)


def hardsigmoid_backward(ctx: XCtx, dy: Array) -> Array:
    """dx = dy / 6 if −3 < x < 3 else 0"""
    return np.where((ctx.x > -3) & (ctx.x < 3), dy / 6, 0)


def hardswish_forward(input: Array, inplace: bool = False) -> tuple[Array, XCtx]:
    """y = x · min(max(x + 3, 0), 6) / 6

    Shapes:  x (*) -> y (*)
    Saves:   x.
    Kink:    hardswish'(−3) = 0 and hardswish'(3) = 1 (torch CPU: x <= −3 gives 0,
             x < 3 gives x/3 + 1/2, otherwise 1).
    Torch:   torch.nn.functional.hardswish
    """
    check_array("hardswish", "input", input)
    check_inplace("hardswish", inplace)
    return np.asarray(input * np.clip(input + 3, 0, 6) / 6), XCtx(input)


def hardswish_backward(ctx: XCtx, dy: Array) -> Array:
    """dx = 0 if x <= −3;  dy (x/3 + 1/2) if −3 < x < 3;  dy if x >= 3"""
    x = ctx.x
    return np.where(x <= -3, 0, np.where(x < 3, dy * (x / 3 + 0.5), dy))


class PreluCtx(NamedTuple):
    x: Array
    w: Array                     # the weight reshaped to broadcast over channel dim 1
    weight_shape: tuple
    sum_axes: tuple              # axes summed to reduce x ⊙ dy to the weight's shape


def prelu_forward(input: Array, weight: Array) -> tuple[Array, PreluCtx]:
    """y = x if x > 0 else w_c · x,  with one weight (w) or one per channel c = dim 1

    Shapes:  x (*), weight (1) or () -> y (*);  x (N, C, *), weight (C) -> y (N, C, *)
    Saves:   x and the broadcastable weight.
    Kink:    at x = 0: dx = w · dy and dw gets x · dy = 0 (torch: x > 0 ? dy : w · dy).
    Torch:   torch.nn.functional.prelu
    """
    fn = "prelu"
    check_array(fn, "input", input)
    check_array(fn, "weight", weight, ndim=(0, 1))
    check_same_dtype(fn, "input", input, weight=weight)
    channels = input.shape[1] if input.ndim >= 2 else 1
    if weight.size != 1 and weight.size != channels:
        raise ValueError(f"{fn}(): parameter 'weight' must have 1 element or one per channel "
                         f"(dim 1 of input, {channels}), got {weight.size}")
    if input.ndim >= 2:
        w = weight.reshape((1, weight.size) + (1,) * (input.ndim - 2))   # (1, C, 1, ...)
        sum_axes = tuple(i for i in range(input.ndim) if i != 1 or weight.size == 1)
    else:
        w = weight.reshape(())
        sum_axes = tuple(range(input.ndim))
    y = np.where(input > 0, input, w * input)
    return y, PreluCtx(input, w, weight.shape, sum_axes)


def prelu_backward(ctx: PreluCtx, dy: Array) -> tuple[Array, Array]:
    """dx = dy if x > 0 else w · dy;   dw_c = Σ_{x ≤ 0, channel c} x · dy"""
    pos = ctx.x > 0
    dx = np.where(pos, dy, ctx.w * dy)
    dw = np.where(pos, 0, ctx.x * dy).sum(axis=ctx.sum_axes)              # (C) or ()
    return dx, np.asarray(dw, dtype=dy.dtype).reshape(ctx.weight_shape)


# -- smooth activations ----------------------------------------------------------------------

# W. J. Cody's rational approximations of erf/erfc (Math. Comp. 1969; netlib specfun CALERF),
# relative error below 1e-16 in float64: NumPy has no erf and scratchnn imports only NumPy.
_ERF_A = (3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02,
          3.20937758913846947e03, 1.85777706184603153e-1)
_ERF_B = (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03,
          2.84423683343917062e03)
_ERFC_C = (5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01,
           2.98635138197400131e02, 8.81952221241769090e02, 1.71204761263407058e03,
           2.05107837782607147e03, 1.23033935479799725e03, 2.15311535474403846e-8)
_ERFC_D = (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02,
           1.62138957456669019e03, 3.29079923573345963e03, 4.36261909014324716e03,
           3.43936767414372164e03, 1.23033935480374942e03)
_ERFC_P = (3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1,
           1.60837851487422766e-2, 6.58749161529837803e-4, 1.63153871373020978e-2)
_ERFC_Q = (2.56852019228982242e00, 1.87295284992346047e00, 5.27905102951428412e-1,
           6.05183413124413191e-2, 2.33520497626869185e-3)


def _ratio(t: Array, num: tuple, den: tuple, n: int) -> Array:
    """Cody's Horner loop: (…((num[n]·t + num[0])·t + num[1])… + num[n−1]) / (same with den,
    leading coefficient 1)."""
    p, q = num[n] * t, t
    for i in range(n - 1):
        p, q = (p + num[i]) * t, (q + den[i]) * t
    return (p + num[n - 1]) / (q + den[n - 1])


def _erfc_tail(a: Array) -> Array:
    """erfc(a) for a > 0.46875 (a clipped to ≤ 30: erfc is 0 beyond, and a² stays finite)."""
    mid = _ratio(a, _ERFC_C, _ERFC_D, 8)                                  # 0.47 < a <= 4
    r = 1 / (a * a)
    big = (0.56418958354775628695 - r * _ratio(r, _ERFC_P, _ERFC_Q, 5)) / a   # a > 4
    a16 = np.trunc(a * 16) / 16                                 # e^{−a²} split to keep digits
    return np.where(a <= 4, mid, big) * (np.exp(-a16 * a16) * np.exp(-(a - a16) * (a + a16)))


def _normal_cdf(x: Array) -> Array:
    """Φ(x) = (1 + erf(x/√2)) / 2, accurate in the lower tail too (via erfc)."""
    z = x * 0.7071067811865476
    a = np.abs(z)
    small = a <= 0.46875
    zs = np.where(small, z, 0)
    erf_small = zs * _ratio(zs * zs, _ERF_A, _ERF_B, 4)
    half_erfc = 0.5 * _erfc_tail(np.clip(a, 0.46875, 30))
    return np.where(small, 0.5 + 0.5 * erf_small, np.where(z > 0, 1 - half_erfc, half_erfc))


class GeluCtx(NamedTuple):
    x: Array
    cdf: Array                   # Φ(x) ('none') or tanh(u) ('tanh')
    approximate: str


_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)


def gelu_forward(input: Array, approximate: str = "none") -> tuple[Array, GeluCtx]:
    """y = x Φ(x)                                    approximate='none' (Φ: normal cdf)
    y = ½ x (1 + tanh(u)),  u = √(2/π)(x + 0.044715 x³)   approximate='tanh'

    Shapes:  x (*) -> y (*)
    Saves:   x and Φ(x) (or tanh u).
    Torch:   torch.nn.functional.gelu
    """
    fn = "gelu"
    check_array(fn, "input", input)
    check_choice(fn, "approximate", approximate, ("none", "tanh"))
    x = input
    if approximate == "none":
        cdf = _normal_cdf(x)
        return np.asarray(x * cdf), GeluCtx(x, cdf, approximate)
    xc = np.clip(x, -100, 100)          # tanh(u) is exactly ±1 beyond; keeps x³ finite
    t = np.tanh(_SQRT_2_OVER_PI * (xc + 0.044715 * xc * xc * xc))
    return np.asarray(0.5 * x * (1 + t)), GeluCtx(x, t, approximate)


def gelu_backward(ctx: GeluCtx, dy: Array) -> Array:
    """'none':  dx = dy (Φ(x) + x φ(x)),  φ(x) = e^{−x²/2} / √(2π)
    'tanh':  dx = dy (½ (1 + t) + ½ x (1 − t²) √(2/π)(1 + 3·0.044715 x²)),  t = tanh u"""
    x = ctx.x
    xc = np.clip(x, -100, 100)          # φ and 1 − t² vanish out there; x² stays finite
    if ctx.approximate == "none":
        return dy * (ctx.cdf + x * (np.exp(-0.5 * xc * xc) * _INV_SQRT_2PI))
    t = ctx.cdf
    du = _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * xc * xc)
    return dy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du)


class SiluCtx(NamedTuple):
    x: Array
    s: Array                     # σ(x)


def silu_forward(input: Array, inplace: bool = False) -> tuple[Array, SiluCtx]:
    """y = x σ(x)   (swish)

    Shapes:  x (*) -> y (*)
    Saves:   x and σ(x).
    Torch:   torch.nn.functional.silu
    """
    check_array("silu", "input", input)
    check_inplace("silu", inplace)
    s = stable_sigmoid(input)
    return np.asarray(input * s), SiluCtx(input, s)


def silu_backward(ctx: SiluCtx, dy: Array) -> Array:
    """dx = dy σ(x) (1 + x (1 − σ(x)))"""
    return dy * ctx.s * (1 + ctx.x * (1 - ctx.s))


class MishCtx(NamedTuple):
    x: Array
    t: Array                     # tanh(softplus(x))


def mish_forward(input: Array, inplace: bool = False) -> tuple[Array, MishCtx]:
    """y = x tanh(softplus(x)) = x tanh(log(1 + e^x))

    Shapes:  x (*) -> y (*)
    Saves:   x and t = tanh(softplus(x)) (σ(x) is recomputed in backward).
    Torch:   torch.nn.functional.mish
    """
    check_array("mish", "input", input)
    check_inplace("mish", inplace)
    t = np.tanh(stable_softplus(input))
    return np.asarray(input * t), MishCtx(input, t)


def mish_backward(ctx: MishCtx, dy: Array) -> Array:
    """dx = dy (t + x σ(x) (1 − t²))"""
    x, t = ctx.x, ctx.t
    return dy * (t + x * stable_sigmoid(x) * (1 - t * t))


class SoftplusCtx(NamedTuple):
    z: Array                     # β x
    threshold: float


def softplus_args(input: Array, beta: Any, threshold: Any) -> tuple[float, float]:
    """softplus's argument checks (both editions): (beta, threshold) as floats, beta ≠ 0."""
    fn = "softplus"
    check_array(fn, "input", input)
    beta = check_float(fn, "beta", beta)
    threshold = check_float(fn, "threshold", threshold)
    if beta == 0:
        raise ValueError(f"{fn}(): parameter 'beta' must be non-zero (it divides), got 0.0")
    return beta, threshold


def softplus_forward(input: Array, beta: float = 1.0, threshold: float = 20.0
                     ) -> tuple[Array, SoftplusCtx]:
    """y = log(1 + e^{βx}) / β, reverting to y = x where βx > threshold   (β ≠ 0)

    Shapes:  x (*) -> y (*)
    Saves:   z = βx.
    Kink:    βx == threshold takes the smooth branch (torch: linear only for βx > threshold).
    Stable:  log(1 + e^z) = max(z, 0) + log1p(e^{−|z|}), so a large threshold gives the true
             (finite) value where torch's log1p(exp(z)) overflows to inf.
    Torch:   torch.nn.functional.softplus
    """
    beta, threshold = softplus_args(input, beta, threshold)
    with np.errstate(over="ignore"):        # |x|·β beyond the float range: ±inf, both limits
        z = input * beta                    # exact (linear branch, or softplus(−inf) = 0)
    y = np.where(z > threshold, input, stable_softplus(z) / beta)
    return y, SoftplusCtx(z, threshold)


def softplus_backward(ctx: SoftplusCtx, dy: Array) -> Array:
    """dx = dy if βx > threshold else dy σ(βx)"""
    return np.where(ctx.z > ctx.threshold, dy, dy * stable_sigmoid(ctx.z))


def logsigmoid_forward(input: Array) -> tuple[Array, XCtx]:
    """y = log σ(x) = −softplus(−x) = min(x, 0) − log1p(e^{−|x|})

    Shapes:  x (*) -> y (*)
    Saves:   x.
    Torch:   torch.nn.functional.logsigmoid
    """
    check_array("logsigmoid", "input", input)
    y = np.minimum(input, 0) - np.log1p(np.exp(-np.abs(input)))
    return np.asarray(y), XCtx(input)


def logsigmoid_backward(ctx: XCtx, dy: Array) -> Array:
    """dx = dy (1 − σ(x)) = dy σ(−x)"""
    return dy * stable_sigmoid(-ctx.x)


def softsign_forward(input: Array) -> tuple[Array, XCtx]:
    """y = x / (1 + |x|)

    Shapes:  x (*) -> y (*)
    Saves:   x.
    Torch:   torch.nn.functional.softsign
    """
    check_array("softsign", "input", input)
    return np.asarray(input / (1 + np.abs(input))), XCtx(input)


def softsign_backward(ctx: XCtx, dy: Array) -> Array:
    """dx = dy / (1 + |x|)²"""
    d = 1 + np.abs(ctx.x)
    return dy / (d * d)


class TanhshrinkCtx(NamedTuple):
    t: Array                     # tanh(x)


def tanhshrink_forward(input: Array) -> tuple[Array, TanhshrinkCtx]:
    """y = x − tanh(x)

    Shapes:  x (*) -> y (*)
    Saves:   t = tanh(x), because dy/dx = 1 − (1 − t²) = t².
    Torch:   torch.nn.functional.tanhshrink
    """
    check_array("tanhshrink", "input", input)
    t = np.tanh(input)
    return np.asarray(input - t), TanhshrinkCtx(t)


def tanhshrink_backward(ctx: TanhshrinkCtx, dy: Array) -> Array:
    """dx = dy t²"""
    return dy * ctx.t * ctx.t


# -- the softmax family ----------------------------------------------------------------------

class SoftmaxCtx(NamedTuple):
    y: Array                     # softmax (or log-softmax) output, at least 1-d
    axis: int
    in_shape: tuple              # the input's shape (0-d inputs are worked on as (1,))
    in_dtype: np.dtype           # gradients go back in the input's dtype


def softmax_args(fn: str, x: Any, dim: Any, stacklevel: Any, dtype: Any
                 ) -> tuple[Array, int]:
    """Validate; apply torch's implicit-dim rule and the ``dtype`` cast; return the work array
    (0-d viewed as (1,)) and the normalised axis."""
    check_array(fn, "input", x)
    dt = check_float_dtype(fn, "dtype", dtype)
    if dt is not None:
        x = x.astype(dt, copy=False)
    if dim is None:                         # torch's _get_softmax_dim, with its warning
        warnings.warn(f"Implicit dimension choice for {fn} has been deprecated. Change the "
                      f"call to include dim=X as an argument.", stacklevel=stacklevel + 1)
        dim = 0 if x.ndim in (0, 1, 3) else 1
    axis = check_dim(fn, "dim", dim, x.ndim)
    return (x.reshape(1) if x.ndim == 0 else x), axis


def exp_parts(x: Array, axis: int) -> tuple[Array, Array, Array]:
    """(x − max, e^{x − max}, Σ e^{x − max}) along ``axis``: every exponent is <= 0."""
    if x.size == 0:                         # nothing to reduce; keeps the (empty) shape
        return x - 0, x - 0, np.ones_like(x)
    s = x - x.max(axis=axis, keepdims=True)
    e = np.exp(s)
    return s, e, e.sum(axis=axis, keepdims=True)


def log_sum_exp_parts(x: Array, axis: int) -> tuple[Array, Array]:
    """(x − max, Σ e^{x − max}) along ``axis``: every exponent is <= 0."""
    s, _, total = exp_parts(x, axis)
    return s, total


def softmax_forward(input: Array, dim: int | None = None, _stacklevel: int = 3,
                    dtype: Any = None) -> tuple[Array, SoftmaxCtx]:
    """y_i = e^{x_i − m} / Σ_j e^{x_j − m}   along ``dim``,  m = max_j x_j

    Shapes:  x (*) -> y (*);  dim=None picks 0 for 0-, 1- and 3-d inputs, else 1 (torch's
             deprecated implicit rule, with its warning). ``dtype`` casts the input first.
    Saves:   y, because ∂y_i/∂x_j = y_i (δ_ij − y_j).
    Torch:   torch.nn.functional.softmax
    """
    x, axis = softmax_args("softmax", input, dim, _stacklevel, dtype)
    _, e, total = exp_parts(x, axis)
    y = np.divide(e, total, out=e)                          # e is ours: in place
    return y.reshape(input.shape), SoftmaxCtx(y, axis, input.shape, input.dtype)


def softmax_backward(ctx: SoftmaxCtx, dy: Array) -> Array:
    """dx = y ⊙ (dy − Σ_dim dy ⊙ y)"""
    y, axis = ctx.y, ctx.axis
    dy = dy.reshape(y.shape)
    dx = y * (dy - (dy * y).sum(axis=axis, keepdims=True))
    return dx.reshape(ctx.in_shape).astype(ctx.in_dtype, copy=False)


def log_softmax_forward(input: Array, dim: int | None = None, _stacklevel: int = 3,
                        dtype: Any = None) -> tuple[Array, SoftmaxCtx]:
    """y_i = x_i − m − log Σ_j e^{x_j − m}   along ``dim``,  m = max_j x_j

    Shapes:  x (*) -> y (*); ``dim``/``dtype`` as softmax.
    Saves:   y, because softmax = e^y.
    Torch:   torch.nn.functional.log_softmax
    """
    x, axis = softmax_args("log_softmax", input, dim, _stacklevel, dtype)
    s, total = log_sum_exp_parts(x, axis)                   # x − m, Σ e^{x − m}: (*), (*, 1, *)
    y = s - np.log(total)
    return y.reshape(input.shape), SoftmaxCtx(y, axis, input.shape, input.dtype)


def log_softmax_backward(ctx: SoftmaxCtx, dy: Array) -> Array:
    """dx = dy − e^y ⊙ Σ_dim dy

    From y_i = x_i − log Σ_j e^{x_j}:  ∂y_i/∂x_k = δ_ik − softmax_k, and softmax = e^y, so
    dx_k = Σ_i dy_i (δ_ik − e^{y_k}) = dy_k − e^{y_k} Σ_i dy_i."""
    y, axis = ctx.y, ctx.axis
    dy = dy.reshape(y.shape)
    dx = dy - np.exp(y) * dy.sum(axis=axis, keepdims=True)
    return dx.reshape(ctx.in_shape).astype(ctx.in_dtype, copy=False)


def softmin_forward(input: Array, dim: int | None = None, _stacklevel: int = 3,
                    dtype: Any = None) -> tuple[Array, SoftmaxCtx]:
    """y = softmax(−x)   along ``dim``

    Shapes:  x (*) -> y (*); ``dim``/``dtype`` as softmax.
    Saves:   y.
    Torch:   torch.nn.functional.softmin
    """
    x, axis = softmax_args("softmin", input, dim, _stacklevel, dtype)
    _, e, total = exp_parts(-x, axis)
    y = np.divide(e, total, out=e)
    return y.reshape(input.shape), SoftmaxCtx(y, axis, input.shape, input.dtype)


def softmin_backward(ctx: SoftmaxCtx, dy: Array) -> Array:
    """dx = −y ⊙ (dy − Σ_dim dy ⊙ y)   (softmax's backward, chained with −x)"""
    return -softmax_backward(ctx, dy)


# -- publish ---------------------------------------------------------------------------------

sigmoid = defop(sigmoid_forward, sigmoid_backward)
tanh = defop(tanh_forward, tanh_backward)
relu = defop(relu_forward, relu_backward)
leaky_relu = defop(leaky_relu_forward, leaky_relu_backward)
elu = defop(elu_forward, elu_backward)
selu = defop(selu_forward, selu_backward)
celu = defop(celu_forward, celu_backward)
gelu = defop(gelu_forward, gelu_backward)
silu = defop(silu_forward, silu_backward)
mish = defop(mish_forward, mish_backward)
softplus = defop(softplus_forward, softplus_backward)
hardtanh = defop(hardtanh_forward, hardtanh_backward)
relu6 = defop(relu6_forward, relu6_backward)
hardsigmoid = defop(hardsigmoid_forward, hardsigmoid_backward)
hardswish = defop(hardswish_forward, hardswish_backward)
logsigmoid = defop(logsigmoid_forward, logsigmoid_backward)
softsign = defop(softsign_forward, softsign_backward)
tanhshrink = defop(tanhshrink_forward, tanhshrink_backward)
softmax = defop(softmax_forward, softmax_backward)
log_softmax = defop(log_softmax_forward, log_softmax_backward)
softmin = defop(softmin_forward, softmin_backward)
prelu = defop(prelu_forward, prelu_backward)
