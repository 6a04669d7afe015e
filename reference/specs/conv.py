"""Registry entries for convolution: conv1d/2d/3d, conv_transpose1d/2d/3d and pad.

``conv2d`` etc. are the fast engine (``scratchnn.functional``); their textbook twins
(``scratchnn.textbook.conv2d``, the im2col edition) are checked against torch by the same specs
(``edition(spec, "textbook")``). The textbook's by-pixel loop editions (``conv2d_loops`` …,
``conv_transpose2d_loops`` …) are registered too, as ops of their own against the same torch ops,
with the same strategies and rejects (fewer examples: they loop over every output position).

The strategies draw the whole argument space: kernel sizes 1–3 (1–2 in 3d), stride 1–3,
dilation 1–2, padding as an int, a tuple, ``'valid'`` or ``'same'`` (even kernels and dilations
included: torch's asymmetric split), groups 1–3 (depthwise included), bias or None (omitted or
passed as None), output_padding below stride or dilation, unbatched ``(C, *S)`` inputs and empty
batches, arguments by keyword or by position (torch's positional order). Shapes stay small
(channels ≤ 6, spatial ≤ 7, 3d smaller) so the family's share of the suite stays well under a
minute. Convolution is linear: one value regime (``normal``) says everything.
"""
from __future__ import annotations

import numpy as np
import torch.nn.functional as TF
from hypothesis import strategies as st

import scratchnn.functional as F
import scratchnn.textbook as T
from reference.registry import Case, OpSpec, Reject, register
from reference.values import make, seeds


def _int_or_tuple(d, values: list[int]):
    """torch accepts an int for equal entries: pass one now and then."""
    if len(set(values)) == 1 and d(st.booleans()):
        return values[0]
    return tuple(values)


@st.composite
def _channels(d):
    """(groups, C_in, C_out): plain, grouped and depthwise (C_in = groups), all ≤ 6."""
    g = d(st.sampled_from([1, 1, 2, 3]))
    if g > 1 and d(st.booleans()):
        return g, g, g * d(st.integers(1, 2))                 # depthwise (× multiplier)
    return g, g * d(st.integers(1, 2)), g * d(st.integers(1, 2))


@st.composite
def _batch(d, c: int, spatial: list[int], nd: int):
    """(C, *S) unbatched or (N, C, *S) with N = 0 now and then."""
    if d(st.integers(0, 4)) == 0:
        return (c, *spatial)
    return (d(st.sampled_from([0, 1, 2, 2, 3] if nd < 3 else [0, 1, 2])), c, *spatial)


def _bias(d, x, w, cout: int, rng) -> tuple:
    """(x, w), (x, w, None) or (x, w, b)."""
    r = d(st.integers(0, 3))
    if r == 0:
        return (x, w)
    if r == 1:
        return (x, w, None)
    return (x, w, make((cout,), rng))


def conv_cases(nd: int):
    def cases(regime: str):
        @st.composite
        def draw(d):
            g, cin, cout = d(_channels())
            kmax, extra = (3, 4) if nd < 3 else (2, 2)
            k = [d(st.integers(1, kmax)) for _ in range(nd)]
            dil = [d(st.integers(1, 2)) for _ in range(nd)]
            style = d(st.sampled_from(["int", "tuple", "same", "valid"]))
            s = [1] * nd if style == "same" else [d(st.integers(1, 3)) for _ in range(nd)]
            p = [d(st.integers(0, 2)) if style in ("int", "tuple") else 0 for _ in range(nd)]
            if style == "int":
                p = [p[0]] * nd
            lo = [max(1, di * (ki - 1) + 1 - 2 * pi) for ki, di, pi in zip(k, dil, p)]
            size = [d(st.integers(m, min(7, m + extra))) for m in lo]
            padding = {"same": "same", "valid": "valid", "int": p[0],
                       "tuple": tuple(p)}[style]
            rng = np.random.default_rng(d(seeds))
            x = make(d(_batch(cin, size, nd)), rng, regime)
            fan_in = cin // g * int(np.prod(k))
            w = make((cout, cin // g, *k), rng, regime) / np.sqrt(fan_in)
            args = _bias(d, x, w, cout, rng)
            kw = {"stride": _int_or_tuple(d, s), "padding": padding,
                  "dilation": _int_or_tuple(d, dil), "groups": g}
            if d(st.booleans()):                              # torch's positional order
                return Case((*args, *([None] if len(args) == 2 else []), kw["stride"],
                             padding, kw["dilation"], g))
            default = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1}
            return Case(args, {n: v for n, v in kw.items()     # defaults left out now and then
                               if v != default[n] or d(st.integers(0, 3))})
        return draw()
    return cases


def conv_transpose_cases(nd: int):
    def cases(regime: str):
        @st.composite
        def draw(d):
            g, cin, cout = d(_channels())
            kmax, smax, size_max = (3, 3, 5) if nd < 3 else (2, 2, 3)
            k = [d(st.integers(1, kmax)) for _ in range(nd)]
            s = [d(st.integers(1, smax)) for _ in range(nd)]
            dil = [d(st.integers(1, 2)) for _ in range(nd)]
            size = [d(st.integers(1, size_max)) for _ in range(nd)]
            # padding p keeps the output (S−1)s − 2p + dil(k−1) + op + 1 at least 1
            op = [d(st.integers(0, max(si, di) - 1)) for si, di in zip(s, dil)]
            p = [d(st.integers(0, min(2, ((n - 1) * si + di * (ki - 1) + oi) // 2)))
                 for n, si, di, ki, oi in zip(size, s, dil, k, op)]
            rng = np.random.default_rng(d(seeds))
            x = make(d(_batch(cin, size, nd)), rng, regime)
            w = make((cin, cout // g, *k), rng, regime) / np.sqrt(cin // g * int(np.prod(k)))
            args = _bias(d, x, w, cout, rng)
            st_, pad_, op_, dil_ = (_int_or_tuple(d, v) for v in (s, p, op, dil))
            if d(st.booleans()):                              # torch's positional order:
                return Case((*args, *([None] if len(args) == 2 else []),   # ..., padding,
                             st_, pad_, op_, g, dil_))        # output_padding, groups, dilation
            return Case(args, {"stride": st_, "padding": pad_, "output_padding": op_,
                               "groups": g, "dilation": dil_})
        return draw()
    return cases


def pad_cases(regime: str):
    @st.composite
    def draw(d):
        mode = d(st.sampled_from(["constant", "reflect", "replicate", "circular"]))
        rng = np.random.default_rng(d(seeds))
        if mode == "constant":
            ndim = d(st.integers(1, 4))
            shape = [d(st.integers(0 if i == 0 else 1, 4)) for i in range(ndim)]
            npad = d(st.integers(1, ndim))
        else:
            npad = d(st.integers(1, 3))
            batched = d(st.booleans())
            shape = ([d(st.sampled_from([0, 1, 2]))] if batched else []) + \
                [d(st.integers(1, 3))] + [d(st.integers(2, 5 if npad < 3 else 3))
                                          for _ in range(npad)]
        pad: list[int] = []
        for i in range(npad):
            n = shape[len(shape) - 1 - i]
            if mode == "reflect":
                lo, hi = (d(st.integers(-1 if n > 2 else 0, n - 1)) for _ in range(2))
            elif mode == "circular":                          # crop, then wrap at most once
                lo, hi = (d(st.integers(-1, n - 1)) for _ in range(2))
                kept = n - max(0, -lo) - max(0, -hi)
                if kept == 0:
                    hi, kept = 0, 1
                lo, hi = min(lo, kept), min(hi, kept)
            else:                                             # constant, replicate
                lo = d(st.integers(-min(1, n), 3))
                kept = n - max(0, -lo) - (mode != "constant")      # torch: crops must fit;
                hi = d(st.integers(-min(1, max(kept, 0)), 3))         # replicate keeps >= 1
                if mode != "constant" and n + lo + hi < 1:
                    hi = 1 - n - lo
            pad += [lo, hi]
        x = make(tuple(shape), rng, regime)
        if mode == "constant" and d(st.booleans()):
            return Case((x, tuple(pad), mode, d(st.sampled_from([0.0, -1.5, 2.0]))))
        if mode == "constant" and d(st.booleans()):
            return Case((x, tuple(pad)))                      # the default mode
        return Case((x, tuple(pad)), {"mode": mode})
    return draw()


def _conv_rejects(nd: int) -> list[Reject]:
    z = np.zeros
    sp, k = (5,) * nd, (3,) * nd
    x, w = z((1, 2, *sp)), z((2, 2, *k))
    return [
        Reject((z((1, 3, *sp)), z((2, 1, *k))), {"groups": 2}, "groups"),       # C_in % G
        Reject((z((1, 4, *sp)), z((3, 2, *k))), {"groups": 2}, "weight"),       # C_out % G
        Reject((z((1, 3, *sp)), w), {}, "weight"),                             # channels
        Reject((z((1, 2, *(2,) * nd)), w), {}, "weight"),                      # kernel > input
        Reject((z((1, 2, *(4,) * nd)), w), {"dilation": 2, "padding": 0}, "weight"),
        Reject((x, w), {"stride": 0}, "stride"),
        Reject((x, w), {"dilation": 0}, "dilation"),
        Reject((x, w), {"padding": -1}, "padding"),
        Reject((x, w), {"padding": "same", "stride": 2}, "padding"),
        Reject((x, w), {"padding": "full"}, "padding"),
        Reject((x, w), {"groups": 0}, "groups"),
        Reject((x, w), {"stride": (1,) * (nd + 1)}, "stride"),
        Reject((z(sp), w), {}, "input"),                                       # too few dims
        Reject((z((1, 1, 2, *sp)), w), {}, "input"),                           # too many
        Reject((x, z((2, 2, *k, 1))), {}, "weight"),
        Reject((x, w, z(3)), {}, "bias"),
        Reject((x.astype(np.float32), w), {}, "weight"),                       # dtype mismatch
        Reject((x.astype(np.int64), w), {}, "input"),
    ]


def _conv_transpose_rejects(nd: int) -> list[Reject]:
    z = np.zeros
    sp, k = (3,) * nd, (3,) * nd
    x, w = z((1, 2, *sp)), z((2, 2, *k))
    return [
        Reject((x, w), {"stride": 2, "output_padding": 2}, "output_padding"),
        Reject((x, w), {"stride": 1, "dilation": 2, "output_padding": 2}, "output_padding"),
        Reject((x, w), {"output_padding": -1}, "output_padding"),
        Reject((x, w), {"padding": -1}, "padding"),
        Reject((x, w), {"padding": "same"}, "padding"),
        Reject((x, w), {"padding": 3}, "padding"),                             # output < 1
        Reject((x, z((3, 2, *k))), {}, "weight"),                              # channels
        Reject((z((1, 3, *sp)), z((3, 2, *k))), {"groups": 2}, "groups"),
        Reject((x, w), {"stride": 0}, "stride"),
        Reject((x, w), {"dilation": 0}, "dilation"),
        Reject((x, w), {"groups": 0}, "groups"),
        Reject((z(sp), w), {}, "input"),
        Reject((x, w, z(3)), {}, "bias"),
        Reject((x, z((2, 2, *k, 1))), {}, "weight"),
        Reject((x, w.astype(np.float32)), {}, "weight"),
    ]


for _n in (1, 2, 3):
    register(OpSpec(
        f"conv{_n}d", getattr(F, f"conv{_n}d"), getattr(TF, f"conv{_n}d"), conv_cases(_n),
        diff=(0, 1, 2), family="conv", examples=1.0 if _n < 3 else 0.5,
        rejects=_conv_rejects(_n)))
    register(OpSpec(
        f"conv_transpose{_n}d", getattr(F, f"conv_transpose{_n}d"),
        getattr(TF, f"conv_transpose{_n}d"), conv_transpose_cases(_n),
        diff=(0, 1, 2), family="conv", examples=1.0 if _n < 3 else 0.5,
        rejects=_conv_transpose_rejects(_n)))

for _n in (1, 2, 3):                       # the textbook's loop editions: their own ops
    for _name, _torch, _cases, _rejects in (
            (f"conv{_n}d", f"conv{_n}d", conv_cases(_n), _conv_rejects(_n)),
            (f"conv_transpose{_n}d", f"conv_transpose{_n}d", conv_transpose_cases(_n),
             _conv_transpose_rejects(_n))):
        _loops = getattr(T, f"{_name}_loops")
        register(OpSpec(
            f"{_name}_loops", _loops, getattr(TF, _torch), _cases, diff=(0, 1, 2),
            family="conv", examples=0.5 if _n < 3 else 0.25, rejects=_rejects,
            textbook=_loops, notes="the textbook's by-pixel loop edition"))

register(OpSpec(
    "pad", F.pad, TF.pad, pad_cases, diff=(0,), family="conv",
    rejects=[
        Reject((np.zeros((2, 3, 4)), (1,)), {}, "pad"),                       # odd length
        Reject((np.zeros((2, 3)), (1, 1, 1, 1, 1, 1)), {}, "pad"),            # too many dims
        Reject((np.zeros((2, 3, 4)), (1, 1)), {"mode": "wrap"}, "mode"),
        Reject((np.zeros((2, 3, 4)), (4, 1)), {"mode": "reflect"}, "pad"),    # pad >= size
        Reject((np.zeros((2, 3, 4)), (5, 0)), {"mode": "circular"}, "pad"),   # wraps twice
        Reject((np.zeros((2, 3, 4)), (1, 1)), {"mode": "reflect", "value": 1.0}, "value"),
        Reject((np.zeros((2, 3, 4, 5)), (1, 1)), {"mode": "replicate"}, "pad"),  # 4-d, 1 dim
        Reject((np.zeros((2, 3, 4)), (-3, -2)), {}, "pad"),                   # crops too much
        Reject((np.zeros((0,)), (1, -1)), {}, "pad"),                         # crop of nothing
        Reject((np.zeros((1, 2)), (-1, -1)), {"mode": "replicate"}, "pad"),   # empty output
        Reject((np.zeros((2, 0, 4)), (1, 1)), {"mode": "reflect"}, "input"),  # empty channel
    ],
))
