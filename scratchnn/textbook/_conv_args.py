"""Argument checking for the conv family, shared by both editions (torch's rules, once).

The textbook (:mod:`scratchnn.textbook.conv`) and the fast engine (:mod:`scratchnn.functional.conv`)
accept exactly the same calls because they run these same checks: every error is a
ValueError/TypeError that names the function and the parameter, raised before any work.

A convolution is described by its :class:`ConvGeometry`: the *x side* ``(N, Cx, *size)`` is what
the windows read, the *y side* ``(N, Cy, *out)`` holds one value per window, and the weight is
``(Cy, Cx/G, *kernel)``. For ``conv`` x is the input and y the output; for ``conv_transpose`` it
is the other way round (its input is the y side of the convolution it transposes).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .._validate import check_array, check_int, check_same_dtype, ntuple
from ..window import Pads, parse_padding

Array = np.ndarray

__all__ = ["ConvGeometry", "check_conv", "check_conv_transpose", "check_pad"]


class ConvGeometry(NamedTuple):
    """Where one convolution's windows sit (per spatial dimension)."""
    groups: int
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    pads: Pads                     # (lo, hi) padding of the x side
    size: tuple[int, ...]          # x side spatial size S (unpadded)
    out: tuple[int, ...]           # y side spatial size O: one window per position


def _tuple(fn: str, name: str, v: Any, n: int, min: int) -> tuple[int, ...]:
    """torch's expand_param_if_needed: an int, a 1-sequence or an n-sequence of ints."""
    if isinstance(v, (list, tuple)) and len(v) == 1:
        v = v[0]
    return ntuple(fn, name, v, n, min=min)


class _Args(NamedTuple):
    x: Array                      # (N, C, *S): batched view of the input
    unbatched: bool
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int


def _check_common(fn: str, n: int, input: Any, weight: Any, bias: Any, stride: Any,
                  dilation: Any, groups: Any) -> _Args:
    check_array(fn, "input", input)
    check_array(fn, "weight", weight, ndim=n + 2)
    if bias is not None:
        check_array(fn, "bias", bias, ndim=1)
    check_same_dtype(fn, "input", input, weight=weight, bias=bias)
    if input.ndim not in (n + 1, n + 2):
        raise ValueError(f"{fn}(): parameter 'input' must be {n + 1}-dimensional (unbatched) "
                         f"or {n + 2}-dimensional (batched), got shape {input.shape}")
    stride = _tuple(fn, "stride", stride, n, 1)
    dilation = _tuple(fn, "dilation", dilation, n, 1)
    groups = check_int(fn, "groups", groups, min=1)
    unbatched = input.ndim == n + 1
    x = input[None] if unbatched else input
    if x.shape[1] % groups:
        raise ValueError(f"{fn}(): parameter 'groups' {groups} must divide the input's "
                         f"{x.shape[1]} channels")
    return _Args(x, unbatched, stride, dilation, groups)


def _check_bias(fn: str, bias: Array | None, channels: int) -> None:
    if bias is not None and bias.shape != (channels,):
        raise ValueError(f"{fn}(): parameter 'bias' must have shape ({channels},), one per "
                         f"output channel, got {bias.shape}")


def check_conv(fn: str, n: int, input: Any, weight: Any, bias: Any, stride: Any,
               padding: Any, dilation: Any, groups: Any) -> tuple[Array, ConvGeometry, bool]:
    """Validate a convolution call (torch's rules) and work out its windows.

    Returns ``(x, geometry, unbatched)`` with x the batched view of the input. Raises a
    ValueError/TypeError naming the parameter before any work is done."""
    a = _check_common(fn, n, input, weight, bias, stride, dilation, groups)
    x, s, d, G = a.x, a.stride, a.dilation, a.groups
    k = weight.shape[2:]
    pads = parse_padding(fn, padding, n, k, d, s)
    if weight.shape[0] % G:
        raise ValueError(f"{fn}(): parameter 'weight' has {weight.shape[0]} output channels, "
                         f"not divisible by groups={G}")
    if weight.shape[1] * G != x.shape[1]:
        raise ValueError(f"{fn}(): parameter 'weight' expects {weight.shape[1] * G} input "
                         f"channels (shape {weight.shape}, groups={G}) but 'input' has "
                         f"{x.shape[1]}")
    _check_bias(fn, bias, weight.shape[0])
    S = x.shape[2:]
    padded = tuple(si + lo + hi for si, (lo, hi) in zip(S, pads))
    span = tuple(di * (ki - 1) + 1 for di, ki in zip(d, k))
    if any(p < sp for p, sp in zip(padded, span)):
        raise ValueError(f"{fn}(): parameter 'weight' has kernel size {tuple(k)} (dilated "
                         f"{span}) larger than the padded input {padded} (input {S}, "
                         f"padding {pads})")
    out = tuple((p - sp) // si + 1 for p, sp, si in zip(padded, span, s))
    return x, ConvGeometry(G, tuple(k), s, d, pads, S, out), a.unbatched


def check_conv_transpose(fn: str, n: int, input: Any, weight: Any, bias: Any, stride: Any,
                         padding: Any, output_padding: Any, groups: Any, dilation: Any
                         ) -> tuple[Array, ConvGeometry, bool]:
    """Validate a transposed-convolution call (torch's rules) and work out the windows of the
    convolution it transposes (whose x side is our output). Returns ``(x, geometry,
    unbatched)``."""
    a = _check_common(fn, n, input, weight, bias, stride, dilation, groups)
    x, s, d, G = a.x, a.stride, a.dilation, a.groups
    if isinstance(padding, str):
        raise TypeError(f"{fn}(): parameter 'padding' must be an int or a tuple of ints "
                        f"(transposed convolutions take no 'same'/'valid'), got {padding!r}")
    p = _tuple(fn, "padding", padding, n, 0)
    op = _tuple(fn, "output_padding", output_padding, n, 0)
    for oi, si, di in zip(op, s, d):
        if not (oi < si or oi < di):
            raise ValueError(f"{fn}(): parameter 'output_padding' {op} must be smaller than "
                             f"either stride {s} or dilation {d} in every dimension")
    if weight.shape[0] != x.shape[1]:
        raise ValueError(f"{fn}(): parameter 'weight' has {weight.shape[0]} input channels "
                         f"(dimension 0 of {weight.shape}) but 'input' has {x.shape[1]}")
    _check_bias(fn, bias, weight.shape[1] * G)
    k, S = weight.shape[2:], x.shape[2:]
    out = tuple((si - 1) * st - 2 * pi + di * (ki - 1) + oi + 1
                for si, st, pi, di, ki, oi in zip(S, s, p, d, k, op))
    if any(o < 1 for o in out) or any(si < 1 for si in S):
        raise ValueError(f"{fn}(): parameter 'padding' {p} leaves an output size {out} "
                         f"for input size {S}; it must be at least 1")
    pads = tuple((pi, pi) for pi in p)                   # the x side is our output:
    return x, ConvGeometry(G, tuple(k), s, d, pads, out, tuple(S)), a.unbatched


def check_pad(fn: str, x: Array, pad: Any, mode: str, value: Any) -> tuple[int, ...]:
    """Validate an ``F.pad`` call (torch's rules); returns ``pad`` as a tuple of ints."""
    check_array(fn, "input", x)
    if mode not in ("constant", "reflect", "replicate", "circular"):
        raise ValueError(f"{fn}(): parameter 'mode' must be one of 'constant', 'reflect', "
                         f"'replicate', 'circular', got {mode!r}")
    if not isinstance(pad, (list, tuple)) or len(pad) % 2:
        raise ValueError(f"{fn}(): parameter 'pad' must be a sequence of (left, right) pairs "
                         f"(an even number of ints), got {pad!r}")
    pad = tuple(check_int(fn, "pad", v) for v in pad)
    d = len(pad) // 2
    if d > x.ndim:
        raise ValueError(f"{fn}(): parameter 'pad' pads {d} dimensions but 'input' has only "
                         f"{x.ndim}")
    if mode == "constant":
        if value is not None:
            check_float_like(fn, value)
        # torch crops (negative entries) before it pads, so the crops alone must fit
        sizes = [x.shape[x.ndim - 1 - i] + min(pad[2 * i], 0) + min(pad[2 * i + 1], 0)
                 for i in range(d)]
        if any(v < 0 for v in sizes):
            raise ValueError(f"{fn}(): parameter 'pad' {pad} crops more than the input "
                             f"{x.shape} has")
        return pad
    if value is not None and value != 0:
        raise ValueError(f"{fn}(): parameter 'value' is only used by mode='constant', got "
                         f"{value!r} with mode={mode!r}")
    if d not in (1, 2, 3) or x.ndim not in (d + 1, d + 2):
        raise ValueError(f"{fn}(): parameter 'pad' of length {len(pad)} with mode={mode!r} "
                         f"needs a {d + 1}-d or {d + 2}-d input (torch's rule), got "
                         f"shape {x.shape}")
    if any(s == 0 for s in x.shape[x.ndim - d - 1:]):
        raise ValueError(f"{fn}(): parameter 'input' {x.shape} must be non-empty in every "
                         f"dimension except the batch for mode={mode!r}")
    for i in range(d):
        size, lo, hi = x.shape[x.ndim - 1 - i], pad[2 * i], pad[2 * i + 1]
        if size + lo + hi < 1:                               # torch: "input is too small"
            raise ValueError(f"{fn}(): parameter 'pad' ({lo}, {hi}) leaves no output of the "
                             f"input's size {size} for mode={mode!r}")
        if mode == "reflect" and max(lo, hi) >= size:
            raise ValueError(f"{fn}(): parameter 'pad' ({lo}, {hi}) must be smaller than the "
                             f"input's size {size} for mode='reflect'")
        kept = size - max(0, -lo) - max(0, -hi)
        if mode == "circular" and max(lo, hi, 1) > kept:
            raise ValueError(f"{fn}(): parameter 'pad' ({lo}, {hi}) must not exceed the "
                             f"(cropped) input size {kept} for mode='circular' (it wraps at "
                             f"most once)")
    return pad


def check_float_like(fn: str, value: Any) -> None:
    """The constant of ``mode='constant'`` must be a real number (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{fn}(): parameter 'value' must be a number, got {value!r}")
