"""Registry entries for pooling: max, min, avg, adaptive avg/max, max-unpool and LP, 1d/2d/3d.

Every op's strategy draws the whole argument space: kernel, stride (or the ``None`` default),
padding up to ``kernel // 2``, dilation, ``ceil_mode`` (windows that start in the padding and
windows that run past the input), ``return_indices`` (integer indices compared exactly),
``count_include_pad``/``divisor_override``, unbatched ``(C, *S)`` inputs and empty batches.
Max/min pooling runs in the ``ties`` regime too (the gradient must reach torch's element);
gradcheck uses tie-free ``distinct`` values. Min pooling is checked against ``-max_pool(-x)``.

Each entry checks both editions: the fast one (``scratchnn.functional``) and its textbook twin
``scratchnn.textbook.<name>`` (the default ``textbook=``), which ``tests/test_textbook.py`` also
compares with the fast one on every route of the engine. ``adaptive_avg_pool*d`` and
``max_unpool*d`` are plain: one function in both namespaces.
"""
from __future__ import annotations

import numpy as np
import torch.nn.functional as TF
from hypothesis import strategies as st

import scratchnn.functional as F
from reference.registry import Case, OpSpec, Reject, register
from reference.values import make, seeds

INF = float("inf")


def _int_or_tuple(d, values: list[int]):
    """torch accepts an int for equal entries: pass one now and then."""
    if len(set(values)) == 1 and d(st.booleans()):
        return values[0]
    return tuple(values)


@st.composite
def _input_shape(d, nd: int, spatial: list[int]):
    """(C, *S) unbatched or (N, C, *S) with N = 0 now and then."""
    c = d(st.integers(1, 3 if nd < 3 else 2))
    if d(st.integers(0, 3)) == 0:
        return (c, *spatial)
    return (d(st.sampled_from([0, 1, 2, 2, 3] if nd < 3 else [0, 1, 2])), c, *spatial)


@st.composite
def _windows(d, nd: int, dilation: bool = True, padding: bool = True, max_k: int = 3):
    """Window arguments and a spatial size they fit (output size >= 1)."""
    k = [d(st.integers(1, max_k)) for _ in range(nd)]
    s = [d(st.integers(1, 3)) for _ in range(nd)]
    dil = [d(st.integers(1, 2)) for _ in range(nd)] if dilation else [1] * nd
    pad = [d(st.integers(0, ki // 2)) for ki in k] if padding else [0] * nd
    extra = 5 if nd == 1 else 4 if nd == 2 else 2
    size = [d(st.integers(max(1, di * (ki - 1) + 1 - 2 * pi),
                          max(1, di * (ki - 1) + 1 - 2 * pi) + extra))
            for ki, di, pi in zip(k, dil, pad)]
    for i in range(nd):              # a window of padding only: torch's backward reads out of
        if _has_empty_window(k[i], s[i], dil[i], pad[i], size[i]):        # bounds (crashes)
            pad[i] = 0
            size[i] = max(size[i], dil[i] * (k[i] - 1) + 1)
    return k, s, dil, pad, size


def _has_empty_window(k: int, s: int, dil: int, pad: int, n: int) -> bool:
    """Does some window (ceil_mode's extra one included) see no input element?"""
    o = (n + 2 * pad - dil * (k - 1) - 1 + s - 1) // s + 1
    return any(not any(0 <= i * s - pad + j * dil < n for j in range(k)) for i in range(o))


def extreme_cases(nd: int):
    def cases(regime: str):
        @st.composite
        def draw(d):
            k, s, dil, pad, size = d(_windows(nd))
            shape = d(_input_shape(nd, size))
            x = make(shape, np.random.default_rng(d(seeds)), regime)
            kw = {}
            if d(st.booleans()):
                kw["stride"] = _int_or_tuple(d, s)
            if any(pad) or d(st.booleans()):
                kw["padding"] = _int_or_tuple(d, pad)
            if any(v > 1 for v in dil) or d(st.booleans()):
                kw["dilation"] = _int_or_tuple(d, dil)
            kw["ceil_mode"] = d(st.booleans())
            kw["return_indices"] = d(st.booleans())
            return Case((x, _int_or_tuple(d, k)), kw)
        return draw()
    return cases


def avg_cases(nd: int):
    def cases(regime: str):
        @st.composite
        def draw(d):
            k, s, _, pad, size = d(_windows(nd, dilation=False))
            if nd == 3:                          # torch's avg_pool3d: input >= kernel
                size = [max(n, ki) for n, ki in zip(size, k)]
            shape = d(_input_shape(nd, size))
            x = make(shape, np.random.default_rng(d(seeds)), regime)
            kw = {"stride": _int_or_tuple(d, s), "padding": _int_or_tuple(d, pad),
                  "ceil_mode": d(st.booleans()), "count_include_pad": d(st.booleans())}
            if nd > 1 and d(st.integers(0, 3)) == 0:
                kw["divisor_override"] = d(st.sampled_from([1, 2, 5, -3]))
            return Case((x, _int_or_tuple(d, k)), kw)
        return draw()
    return cases


def lp_cases(nd: int):
    def cases(regime: str):
        @st.composite
        def draw(d):
            k, s, _, _, size = d(_windows(nd, dilation=False, padding=False))
            shape = d(_input_shape(nd, size))
            p = d(st.sampled_from([1, 2, 3, 1.5, 2.0, INF, -INF]))
            x = make(shape, np.random.default_rng(d(seeds)), regime)
            if regime != "ties" and p not in (2, INF, -INF):
                x = np.abs(x) + 0.05          # x^p real and z away from lp's kink at 0
            kw = {"ceil_mode": d(st.booleans())}
            if d(st.booleans()):
                kw["stride"] = _int_or_tuple(d, s)
            kernel = k[0] if nd == 1 else _int_or_tuple(d, k)   # torch's lp_pool1d: int only
            return Case((x, p, kernel), kw)
        return draw()
    return cases


def adaptive_cases(nd: int, indices: bool):
    def cases(regime: str):
        @st.composite
        def draw(d):
            size = [d(st.integers(1, 7 if nd < 3 else 4)) for _ in range(nd)]
            shape = d(_input_shape(nd, size))
            x = make(shape, np.random.default_rng(d(seeds)), regime)
            out = [d(st.one_of(st.integers(1, n + 2), st.none() if nd > 1 else st.nothing()))
                   for n in size]                            # None: keep that input size
            arg = out[0] if out[0] is not None and d(st.booleans()) else tuple(out)
            kw = {"return_indices": d(st.booleans())} if indices else {}
            return Case((x, arg), kw)
        return draw()
    return cases


def unpool_cases(nd: int):
    def cases(regime: str):
        @st.composite
        def draw(d):
            k = [d(st.integers(1, 3)) for _ in range(nd)]
            s = [d(st.integers(1, 3)) for _ in range(nd)]
            pad = [d(st.integers(0, ki // 2)) for ki in k]
            size = [d(st.integers(1, 4 if nd < 3 else 2)) for _ in range(nd)]
            default = [(n - 1) * si + ki - 2 * pi for n, ki, si, pi in zip(size, k, s, pad)]
            if any(dv < n for dv, n in zip(default, size)):      # room for distinct indices
                pad = [0] * nd
                default = [(n - 1) * si + ki for n, ki, si in zip(size, k, s)]
            kw = {"stride": _int_or_tuple(d, s), "padding": _int_or_tuple(d, pad)}
            out = default
            if d(st.booleans()):
                out = [max(n, dv + d(st.integers(-si + 1, si - 1)))
                       for n, dv, si in zip(size, default, s)]
                lead = d(st.sampled_from([(), (7, 7)]))          # (N, C) may lead, ignored
                kw["output_size"] = lead + tuple(out)
            shape = d(_input_shape(nd, size))
            rng = np.random.default_rng(d(seeds))
            x = make(shape, rng, regime)
            rows, count, plane = int(np.prod(shape[:-nd])), int(np.prod(size)), int(np.prod(out))
            idx = np.argsort(rng.random((rows, plane)), axis=1)[:, :count]   # distinct per plane
            return Case((x, idx.reshape(shape).astype(np.int64), _int_or_tuple(d, k)), kw)
        return draw()
    return cases


def _neg_max(torch_max):
    """torch's min pooling: -max_pool(-x), indices unchanged."""
    def min_pool(x, *args, **kwargs):
        out = torch_max(-x, *args, **kwargs)
        return (-out[0], out[1]) if isinstance(out, tuple) else -out
    return min_pool


def _pool_rejects(nd: int) -> list[Reject]:
    x = np.zeros((1, 2) + (5,) * nd)
    return [
        Reject((x, 0), {}, "kernel_size"),
        Reject((x, 2), {"stride": 0}, "stride"),
        Reject((x, 3), {"padding": 2}, "padding"),
        Reject((x, 6), {}, "kernel_size"),                       # output size 0
        Reject((np.zeros((5,) * nd), 2), {}, "input"),           # too few dims
        Reject((np.zeros((1, 0) + (5,) * nd), 2), {}, "input"),  # no channels
        Reject((x, 2), {"ceil_mode": "yes"}, "ceil_mode"),
        Reject((x.astype(np.int64), 2), {}, "input", torch_rejects=False),  # torch: some dtypes
    ]


SIZES = {1: 1.0, 2: 1.0, 3: 0.5}
for n in (1, 2, 3):
    tmax = getattr(TF, f"max_pool{n}d")
    for name, torch_op in ((f"max_pool{n}d", tmax), (f"min_pool{n}d", _neg_max(tmax))):
        register(OpSpec(
            name, getattr(F, name), torch_op, extreme_cases(n),
            regimes=("normal", "distinct", "ties"), gradcheck_regime="distinct",
            family="pooling", examples=SIZES[n],
            rejects=_pool_rejects(n) + [
                Reject((np.zeros((1, 2) + (5,) * n), 2), {"dilation": 0}, "dilation")],
        ))
    avg_rejects = _pool_rejects(n)
    if n > 1:
        avg_rejects.append(Reject((np.zeros((1, 2) + (5,) * n), 2), {"divisor_override": 0},
                                  "divisor_override"))
    register(OpSpec(
        f"avg_pool{n}d", getattr(F, f"avg_pool{n}d"), getattr(TF, f"avg_pool{n}d"),
        avg_cases(n), regimes=("normal", "ties"), family="pooling", examples=SIZES[n],
        rejects=avg_rejects,
    ))
    register(OpSpec(
        f"adaptive_avg_pool{n}d", getattr(F, f"adaptive_avg_pool{n}d"),
        getattr(TF, f"adaptive_avg_pool{n}d"), adaptive_cases(n, indices=False),
        regimes=("normal",), family="pooling", examples=SIZES[n],
        rejects=[Reject((np.zeros((1, 2) + (5,) * n), -1), {}, "output_size"),
                 Reject((np.zeros((1, 2) + (5,) * n), 0), {}, "output_size",
                        torch_rejects=False),       # torch's forward allows 0, its backward not
                 Reject((np.zeros((1, 2) + (5,) * n), (2,) * (n + 1)), {}, "output_size"),
                 Reject((np.zeros((5,) * n), 2), {}, "input")],
    ))
    register(OpSpec(
        f"adaptive_max_pool{n}d", getattr(F, f"adaptive_max_pool{n}d"),
        getattr(TF, f"adaptive_max_pool{n}d"), adaptive_cases(n, indices=True),
        regimes=("normal", "distinct", "ties"), gradcheck_regime="distinct",
        family="pooling", examples=SIZES[n],
        rejects=[Reject((np.zeros((1, 2) + (5,) * n), -1), {}, "output_size"),
                 Reject((np.zeros((1, 2) + (5,) * n), (0,) * n), {}, "output_size",
                        torch_rejects=False),
                 Reject((np.zeros((1, 0) + (5,) * n), 2), {}, "input")],
    ))
    x_u, i_u = np.zeros((1, 2) + (2,) * n), np.zeros((1, 2) + (2,) * n, np.int64)
    register(OpSpec(
        f"max_unpool{n}d", getattr(F, f"max_unpool{n}d"), getattr(TF, f"max_unpool{n}d"),
        unpool_cases(n), regimes=("normal",), family="pooling", examples=SIZES[n],
        rejects=[Reject((x_u, i_u, 2), {"output_size": (9,) * n}, "output_size"),
                 Reject((x_u, i_u, 2), {"output_size": (4,) * (n + 1)}, "output_size"),
                 Reject((x_u, i_u + 99, 2), {}, "indices"),
                 Reject((x_u, i_u[..., :1], 2), {}, "indices"),
                 Reject((x_u, i_u, 0), {}, "kernel_size", torch_rejects=(n == 3))],
    ))

for n in (1, 2, 3):
    x_lp = np.ones((1, 2) + (4,) * n)
    register(OpSpec(
        f"lp_pool{n}d", getattr(F, f"lp_pool{n}d"), getattr(TF, f"lp_pool{n}d"), lp_cases(n),
        regimes=("normal", "distinct", "ties"), gradcheck_regime="distinct", family="pooling",
        examples=SIZES[n],
        rejects=[Reject((x_lp, 2, 0), {}, "kernel_size"),
                 Reject((x_lp, 2, 2), {"stride": 0}, "stride"),
                 Reject((x_lp, 2, 5), {}, "kernel_size"),
                 Reject((x_lp, 0, 2), {}, "norm_type", torch_rejects=False),
                 Reject((x_lp, "two", 2), {}, "norm_type")],
    ))
