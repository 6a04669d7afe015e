"""Convolution family tests beyond the registry (which checks every op — the fast engine, the
textbook's im2col edition and its loop edition — against torch, and tests/test_textbook.py the
fast engine against the textbook on every forced route):

* the adjoint identity ⟨conv(x), y⟩ = ⟨x, conv_transpose(y)⟩, and each op's input gradient
  being the other op (so the "write it once" claim is checked, not just stated), in both the
  fast and the textbook editions;
* the textbook's two editions (by-pixel loops, im2col) agree to rounding, 1-d to 3-d;
* the batch-chunked, multi-threaded path (forced on larger inputs) against torch;
* the shifted GEMM against the textbook on awkward geometries; the route decision;
* modules: vs the functional op, vs torch.nn modules with copied weights for every
  padding_mode, ConvTranspose's output_size, state_dict both ways, torch's init statistics;
* dtype preservation, repeated calls (workspace reuse), error messages.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import scratchnn
import scratchnn.functional as F
import scratchnn.functional.conv as conv_impl
import scratchnn.nn as nn
import scratchnn.textbook as T
from reference.values import seeds
from tests.conftest import examples

TF = torch.nn.functional


def _t(a: np.ndarray, grad: bool = False) -> torch.Tensor:
    return torch.tensor(a, requires_grad=grad)


@st.composite
def geometries(d, nd: int | None = None, max_size: int = 6):
    """A random valid convolution (int padding, so its transpose exists) and its sizes."""
    nd = nd or d(st.integers(1, 3))
    g = d(st.sampled_from([1, 2]))
    cin, cout = g * d(st.integers(1, 2)), g * d(st.integers(1, 3))
    k = tuple(d(st.integers(1, 3 if nd < 3 else 2)) for _ in range(nd))
    s = tuple(d(st.integers(1, 3)) for _ in range(nd))
    dil = tuple(d(st.integers(1, 2)) for _ in range(nd))
    p = tuple(d(st.integers(0, 2)) for _ in range(nd))
    size = tuple(d(st.integers(max(1, di * (ki - 1) + 1 - 2 * pi),
                               max(1, di * (ki - 1) + 1 - 2 * pi) + (max_size if nd < 3 else 2)))
                 for ki, di, pi in zip(k, dil, p))
    n = d(st.integers(0, 3))
    return dict(nd=nd, g=g, cin=cin, cout=cout, k=k, s=s, dil=dil, p=p, size=size, n=n)


def _output_padding(G: dict, out: tuple[int, ...]) -> tuple[int, ...]:
    """The output_padding that makes conv_transpose return the conv's input size."""
    return tuple(S - ((o - 1) * s - 2 * p + d * (k - 1) + 1)
                 for S, o, s, p, d, k in zip(G["size"], out, G["s"], G["p"], G["dil"], G["k"]))


# ---------------------------------------------------------------------------------------------
# adjointness: conv and conv_transpose are each other's transposes
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("edition", [F, T], ids=["fast", "textbook"])
@settings(max_examples=examples(1))
@given(G=geometries(), seed=seeds)
def test_adjoint_identity_and_gradients_are_the_other_op(edition, G, seed):
    rng = np.random.default_rng(seed)
    nd = G["nd"]
    conv, convT = getattr(edition, f"conv{nd}d"), getattr(edition, f"conv_transpose{nd}d")
    x = rng.standard_normal((G["n"], G["cin"], *G["size"]))
    w = rng.standard_normal((G["cout"], G["cin"] // G["g"], *G["k"]))
    kw = dict(stride=G["s"], padding=G["p"], dilation=G["dil"], groups=G["g"])
    y_shape = conv(x, w, **kw).shape
    y = rng.standard_normal(y_shape)
    op = _output_padding(G, y_shape[2:])
    xt = convT(y, w, None, G["s"], G["p"], op, G["g"], G["dil"])
    assert xt.shape == x.shape
    lhs, rhs = np.vdot(conv(x, w, **kw), y), np.vdot(x, xt)
    assert math.isclose(lhs, rhs, rel_tol=1e-9, abs_tol=1e-9), (lhs, rhs)
    # conv's dx IS conv_transpose(dy); conv_transpose's dx IS conv(dy)
    _, pb = scratchnn.vjp(conv, x, w, **kw)
    np.testing.assert_allclose(pb(y)[0], xt, rtol=1e-12, atol=1e-12)
    _, pbT = scratchnn.vjp(convT, y, w, None, G["s"], G["p"], op, G["g"], G["dil"])
    np.testing.assert_allclose(pbT(x)[0], conv(x, w, **kw), rtol=1e-12, atol=1e-12)
    # and both weight gradients are the same correlation of x with y
    np.testing.assert_allclose(pb(y)[1], pbT(x)[1], rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# the textbook's two editions agree (each is also checked against torch by the registry)
# ---------------------------------------------------------------------------------------------
@settings(max_examples=examples(1))
@given(G=geometries(max_size=3), seed=seeds, bias=st.booleans(), same=st.booleans())
def test_loops_edition_equals_im2col_edition(G, seed, bias, same):
    rng = np.random.default_rng(seed)
    nd = G["nd"]
    x = rng.standard_normal((G["n"], G["cin"], *G["size"]))
    w = rng.standard_normal((G["cout"], G["cin"] // G["g"], *G["k"]))
    b = rng.standard_normal(G["cout"]) if bias else None
    pad = "same" if same else G["p"]
    stride = 1 if same else G["s"]
    args = (x, w, b, stride, pad, G["dil"], G["g"])
    y = _editions_agree(getattr(T, f"conv{nd}d"), getattr(T, f"conv{nd}d_loops"), args, rng)
    # transposed: the conv's output shape as input, weight (C_in, C_out/G, *k)
    xt = rng.standard_normal(y.shape)
    op = tuple(int(v) for v in rng.integers(0, np.maximum(G["s"], G["dil"])))
    argsT = (xt, w, None if b is None else rng.standard_normal(G["cin"]), G["s"], G["p"], op,
             G["g"], G["dil"])
    try:
        scratchnn.vjp(getattr(T, f"conv_transpose{nd}d"), *argsT)
    except ValueError:                          # padding too large for this input
        return
    _editions_agree(getattr(T, f"conv_transpose{nd}d"),
                    getattr(T, f"conv_transpose{nd}d_loops"), argsT, rng)


def _editions_agree(op, loops, args, rng):
    """Two editions agree on the output and every gradient (float64, to rounding); -> y."""
    y, pb = scratchnn.vjp(op, *args)
    yl, pbl = scratchnn.vjp(loops, *args)
    dy = rng.standard_normal(y.shape)
    np.testing.assert_allclose(y, yl, rtol=1e-10, atol=1e-10)
    for a, e in zip(pb(dy), pbl(dy)):
        assert (a is None) == (e is None)
        if e is not None:
            np.testing.assert_allclose(a, e, rtol=1e-10, atol=1e-10)
    return y


def test_loops_edition_checks_arguments_like_the_fast_op():
    x, w = np.zeros((1, 2, 5, 5)), np.zeros((2, 2, 3, 3))
    with pytest.raises(ValueError, match=r"conv2d_loops\(\): parameter 'stride'"):
        T.conv2d_loops(x, w, stride=0)
    with pytest.raises(ValueError,
                       match=r"conv_transpose2d_loops\(\): parameter 'output_padding'"):
        T.conv_transpose2d_loops(x, w, stride=2, output_padding=2)


# ---------------------------------------------------------------------------------------------
# the chunked, threaded engine path (spec cases are too small to reach it)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("stride", [1, 2])     # stride 1: the flipped-kernel route for dx
@pytest.mark.parametrize("keep_cols", [True, False])   # conv's backward: saved or recomputed
def test_chunked_threaded_path_matches_torch(monkeypatch, nd, transposed, stride, keep_cols):
    if not keep_cols:
        monkeypatch.setattr(conv_impl, "SAVE_COLS_BYTES", 0)
    monkeypatch.setattr(conv_impl, "WORKSPACE_BYTES", 2048)      # many small chunks
    monkeypatch.setattr(conv_impl, "PARALLEL_MIN", 0)            # on the thread pool
    monkeypatch.setattr(conv_impl, "_THREADS", 2)
    rng = np.random.default_rng(nd)
    size = (9, 7, 5)[nd - 1]
    x = rng.standard_normal((7, 4, *(size,) * nd))
    w = rng.standard_normal((4, 3, *(3,) * nd) if transposed else (4, 2, *(3,) * nd))
    b = rng.standard_normal(6 if transposed else 4)
    name = f"conv_transpose{nd}d" if transposed else f"conv{nd}d"
    kw = dict(stride=stride, padding=1, groups=2, dilation=2 if stride == 1 else 1)
    if transposed:
        kw["output_padding"] = 1
    y, pb = scratchnn.vjp(getattr(F, name), x, w, b, **kw)
    dy = rng.standard_normal(y.shape)
    tx, tw, tb = _t(x, True), _t(w, True), _t(b, True)
    ty = getattr(TF, name)(tx, tw, tb, **kw)
    ty.backward(_t(dy))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-10)
    for ours, theirs in zip(pb(dy), (tx, tw, tb)):
        np.testing.assert_allclose(ours, theirs.grad.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", ["conv2d", "conv_transpose2d"])
def test_threaded_chunks_are_bit_identical_to_one_thread(monkeypatch, name):
    """Chunks on the shared pool (2 lanes) give exactly the single-thread numbers: the chunk
    boundaries and the order the weight-gradient parts are summed in do not depend on it."""
    monkeypatch.setattr(conv_impl, "WORKSPACE_BYTES", 2048)
    monkeypatch.setattr(conv_impl, "PARALLEL_MIN", 0)
    monkeypatch.setattr(conv_impl, "_ROUTE", "im2col")
    monkeypatch.setattr("scratchnn.perf.threads._threads", 2)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((9, 4, 7, 6), dtype=np.float32)
    w = rng.standard_normal((4, 4, 3, 3), dtype=np.float32)
    res = []
    for threads in (1, 2):
        monkeypatch.setattr(conv_impl, "_THREADS", threads)
        y, pb = scratchnn.vjp(getattr(F, name), x, w, None, 1, 1)
        res.append((y, *pb(np.ones_like(y))[:2]))
    for a, b in zip(*res):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("route", ["im2col", "shifted"])
@pytest.mark.parametrize("name", ["conv2d", "conv_transpose2d"])
def test_bias_rows_loop_with_the_same_bits(monkeypatch, name, route):
    """The bias is added over rows of H·W ≥ ROW_LOOPS_MIN with NumPy's buffer cut to one row
    (perf.blocks.row_loops) — on each route the same numbers as with the buffered add, and
    torch's (float64)."""
    from scratchnn.perf import blocks
    monkeypatch.setattr(conv_impl, "_ROUTE", route)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 16, 19, 18))                # rows of 17·16 = 272 (y) or 21·20
    w = rng.standard_normal((16, 16, 3, 3)) / 12
    b = rng.standard_normal(16)
    assert 17 * 16 >= blocks.ROW_LOOPS_MIN
    res = []
    for row_min in (blocks.ROW_LOOPS_MIN, 1 << 30):
        monkeypatch.setattr(blocks, "ROW_LOOPS_MIN", row_min)
        y, pb = scratchnn.vjp(getattr(F, name), x, w, b)
        res.append((y, *pb(np.ones_like(y))))
    for a, c in zip(*res):
        np.testing.assert_array_equal(a, c)
    _vs_torch(name, (x, w, b), {}, rng)


# ---------------------------------------------------------------------------------------------
# the two engines: im2col + GEMM and the shifted GEMM (implicit im2col), each forced
# ---------------------------------------------------------------------------------------------
def _vs_torch(name: str, args: tuple, kw: dict, rng, tol: float = 1e-10) -> None:
    """ours (value and every gradient) against torch for one op call (float64)."""
    y, pb = scratchnn.vjp(getattr(F, name), *args, **kw)
    dy = rng.standard_normal(y.shape)
    ts = [None if a is None else _t(a, True) for a in args]
    ty = getattr(TF, name)(*ts, **kw)
    ty.backward(_t(dy))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=tol, atol=tol)
    for ours, t in zip(pb(dy), ts):
        if t is not None:
            np.testing.assert_allclose(ours, t.grad.numpy(), rtol=tol, atol=tol)


@pytest.mark.parametrize("route", ["shifted", "im2col"])
@settings(max_examples=examples(2))
@given(G=geometries(), seed=seeds, bias=st.booleans())
def test_each_route_matches_torch(route, G, seed, bias):
    """Every geometry (1-3 d, stride, dilation, groups, batch 0) on each engine, both ops."""
    rng = np.random.default_rng(seed)
    nd = G["nd"]
    x = rng.standard_normal((G["n"], G["cin"], *G["size"]))
    w = rng.standard_normal((G["cout"], G["cin"] // G["g"], *G["k"]))
    b = rng.standard_normal(G["cout"]) if bias else None
    kw = dict(stride=G["s"], padding=G["p"], dilation=G["dil"], groups=G["g"])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(conv_impl, "_ROUTE", route)
        mp.setattr(conv_impl, "SHIFTED_BLOCK_BYTES", 64)        # several column blocks
        mp.setattr(conv_impl, "SHIFTED_RUN_BYTES", 64)
        mp.setattr(conv_impl, "WORKSPACE_BYTES", 256)
        _vs_torch(f"conv{nd}d", (x, w, b), kw, rng)
        y_shape = F.__dict__[f"conv{nd}d"](x, w, **kw).shape
        xt = rng.standard_normal((G["n"], G["cout"], *y_shape[2:]))
        bt = rng.standard_normal(G["cin"]) if bias else None
        kwt = dict(kw, output_padding=_output_padding(G, y_shape[2:]))
        _vs_torch(f"conv_transpose{nd}d", (xt, w, bt), kwt, rng)


@pytest.mark.parametrize("name", ["conv2d", "conv_transpose2d"])
def test_shifted_merged_runs_over_several_blocks_match_torch(monkeypatch, name):
    """Stride 1, k 3: the shifted GEMM merges each kernel row into one product; with a small
    ``SHIFTED_RUN_BYTES`` the 968 grid columns run as several blocks of 256 (the last one
    partial), forward and both gradients against torch (random dy)."""
    monkeypatch.setattr(conv_impl, "_ROUTE", "shifted")
    monkeypatch.setattr(conv_impl, "SHIFTED_RUN_BYTES", 64)
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 8, 20, 20))
    w = rng.standard_normal((8, 8, 3, 3))
    b = rng.standard_normal(8)
    kw = dict(stride=1, padding=1) if name == "conv2d" else dict(stride=1, padding=1,
                                                                 output_padding=0)
    _vs_torch(name, (x, w, b), kw, rng)


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("case", [
    dict(shape=(2, 4, 7, 6), k=(2, 4), padding="same", dilation=(2, 1), groups=2),  # asymmetric
    dict(shape=(4, 7, 6), k=(3, 3), padding=2, dilation=1, groups=1),               # unbatched
    dict(shape=(0, 4, 5, 5), k=(3, 3), padding=1, dilation=1, groups=1),            # batch 0
    dict(shape=(3, 4, 9, 8), k=(3, 2), padding=(1, 0), dilation=(2, 3), groups=4, stride=2),
])
def test_shifted_route_matches_the_textbook(monkeypatch, transposed, case):
    """The shifted GEMM against the textbook's im2col edition, on the awkward cases."""
    monkeypatch.setattr(conv_impl, "_ROUTE", "shifted")
    rng = np.random.default_rng(3)
    x = rng.standard_normal(case["shape"])
    G, cin = case["groups"], case["shape"][-3]
    stride = case.get("stride", 1)
    w = rng.standard_normal((6 if G != 4 else 8, cin // G, *case["k"]))
    b = rng.standard_normal(w.shape[0])
    if not transposed:
        args = (x, w, b, stride, case["padding"], case["dilation"], G)
        y, pb = scratchnn.vjp(F.conv2d, *args)
        yn, pbn = scratchnn.vjp(T.conv2d, *args)
    else:
        if case["padding"] == "same":
            return                                  # transposed convolutions take no 'same'
        xt = rng.standard_normal(x.shape[:-3] + (w.shape[0],) + x.shape[-2:])
        args = (xt, w, rng.standard_normal(w.shape[1] * G), stride, case["padding"], 0, G,
                case["dilation"])
        y, pb = scratchnn.vjp(F.conv_transpose2d, *args)
        yn, pbn = scratchnn.vjp(T.conv_transpose2d, *args)
    dy = rng.standard_normal(y.shape)
    np.testing.assert_allclose(y, yn, rtol=1e-10, atol=1e-10)
    for a, e in zip(pb(dy)[:3], pbn(dy)[:3]):                  # x, W, b
        np.testing.assert_allclose(a, e, rtol=1e-10, atol=1e-10)


@settings(max_examples=examples(40))
@given(data=st.data(), seed=seeds)
def test_strided_im2col_from_phases_equals_the_plain_copy(data, seed):
    """im2col of strided windows from one phase copy (``_im2col_phases``) writes the columns
    of the plain offset-by-offset copy bit for bit — every entry, padding zeros included —
    over 1-3 d, strides 1-3, kernels 1-4, dilation, padding before and after; geometries it
    does not apply to (size ≠ stride · out, a phase no offset reads) have no phase taps."""
    nd = data.draw(st.integers(1, 3), label="nd")
    dims = st.tuples(*[st.integers(1, 3)] * nd)
    s, o = data.draw(dims, label="stride"), data.draw(dims, label="out")
    k = data.draw(st.tuples(*[st.integers(1, 4)] * nd), label="kernel")
    dil = data.draw(st.tuples(*[st.integers(1, 2)] * nd), label="dilation")
    lo = tuple(data.draw(st.integers(0, d * (ki - 1)), label="lo") for d, ki in zip(dil, k))
    extra = data.draw(st.tuples(*[st.integers(0, 1)] * nd), label="size = stride·out + extra")
    size = tuple(si * oi + e for si, oi, e in zip(s, o, extra))
    g = conv_impl._geometry(1, k, s, dil, [(li, 0) for li in lo], size, o)
    reads_every_phase = all(len({(ki * d - li) % si for ki in range(kk)}) == si
                            for kk, d, li, si in zip(k, dil, lo, s))
    assert (g.phase_taps is not None) == (any(si > 1 for si in s) and not any(extra)
                                          and reads_every_phase)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 3) + size).astype(np.float32)
    x.reshape(-1)[rng.integers(x.size)] = np.nan                    # NaN bits copied as they are
    cols = {}
    for phases in (False, True):
        out = np.full((2, 3, g.K) + o, np.inf, np.float32)            # every entry is written
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(conv_impl, "_PHASE_IM2COL", phases)
            conv_impl._im2col(x, g, out)
        cols[phases] = out
    assert not np.isinf(cols[True]).any()
    np.testing.assert_array_equal(cols[True].view(np.int32), cols[False].view(np.int32))


def test_strided_benchmark_layers_take_the_phase_copy():
    """The 64-channel stride-2 layers (k 3 and the DCGAN's k 4, 32×32 -> 16×16) take the phase
    copy; a 1×1 stride-2 projection (phase 1 unread) and odd sizes do not."""
    def taps(size, k, p):
        return conv_impl.check_conv("conv2d", 2, np.zeros((1, 4, size, size)),
                                    np.zeros((4, 4, k, k)), None, 2, p, 1, 1)[1].phase_taps
    assert taps(32, 3, 1) is not None and taps(32, 4, 1) is not None
    assert taps(32, 1, 0) is None and taps(33, 3, 1) is None


def test_route_choice_and_float32():
    """Wide layers take the shifted GEMM, a one-channel first layer stays on im2col; both
    keep float32 and agree with each other (and the shifted route leaves its input alone)."""
    rng = np.random.default_rng(0)
    def geom(stride):
        return conv_impl.check_conv("conv2d", 2, np.zeros((1, 32, 32, 32)),
                                    np.zeros((32, 32, 3, 3)), None, stride, 1, 1, 1)[1]

    def use(g, cx, cy, correlate):
        return conv_impl.choose_route(g, cx, cy, 1, 4,
                                      "correlate" if correlate else "transpose").shifted
    assert use(geom(1), 32, 32, True) and use(geom(1), 32, 32, False)
    assert not use(geom(1), 1, 32, True) and not use(geom(1), 1, 32, False)
    assert use(geom(2), 32, 32, False) and not use(geom(2), 32, 32, True)
    g0 = conv_impl.check_conv("conv2d", 2, np.zeros((1, 32, 8, 8)), np.zeros((32, 32, 3, 3)),
                              None, 1, 0, 1, 1)[1]                  # grid 8×8 for 6×6 outputs
    assert use(g0, 32, 32, False) and not use(g0, 32, 32, True)
    # the rest of the route: columns kept when small, flipped kernel for stride 1 when the
    # y side is no wider, threads only when asked for and the work is large
    route = conv_impl.choose_route(geom(1), 1, 16, 8, 4, "correlate")
    assert not route.shifted and route.keep_cols and route.threads == 1
    assert not conv_impl.choose_route(geom(1), 1, 16, 10 ** 4, 4, "correlate").keep_cols
    assert conv_impl.choose_route(geom(1), 8, 4, 2, 4, "transpose").flip
    assert not conv_impl.choose_route(geom(1), 4, 8, 2, 4, "transpose").flip
    assert not conv_impl.choose_route(geom(2), 8, 4, 2, 4, "transpose").flip
    x = rng.standard_normal((3, 32, 9, 9), dtype=np.float32)
    w = rng.standard_normal((32, 32, 3, 3), dtype=np.float32) * 0.1
    keep = x.copy(), w.copy()
    res = {}
    for route in ("shifted", "im2col"):
        conv_impl._ROUTE = route
        try:
            y, pb = scratchnn.vjp(F.conv2d, x, w, None, 2, 1)
            res[route] = (y, *pb(np.ones_like(y))[:2])
        finally:
            conv_impl._ROUTE = None
        assert all(a.dtype == np.float32 for a in res[route])
    np.testing.assert_array_equal(x, keep[0])
    np.testing.assert_array_equal(w, keep[1])
    for a, e in zip(res["shifted"], res["im2col"]):
        np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-3)


def test_repeated_calls_do_not_share_workspace_memory():
    """Outputs and gradients are fresh arrays: a later call (reusing the workspace) must not
    change an earlier result."""
    rng = np.random.default_rng(0)
    x1, x2 = rng.standard_normal((2, 3, 3, 8, 8), dtype=np.float32)
    w = rng.standard_normal((5, 3, 3, 3), dtype=np.float32)
    y1, pb1 = scratchnn.vjp(F.conv2d, x1, w, padding=1)
    g1 = pb1(np.ones_like(y1))
    keep = y1.copy(), [g.copy() for g in g1 if g is not None]
    y2, pb2 = scratchnn.vjp(F.conv2d, x2, w, padding=1)
    pb2(-np.ones_like(y2))
    F.conv_transpose2d(y2, w, padding=1)
    np.testing.assert_array_equal(y1, keep[0])
    for g, k in zip([g for g in g1 if g is not None], keep[1]):
        np.testing.assert_array_equal(g, k)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", ["conv2d", "conv_transpose2d", "conv1d", "conv_transpose3d"])
def test_dtype_is_kept(op, dtype):
    nd = int(op[-2])
    x = np.ones((2, 2, *(4,) * nd), dtype)
    w = np.ones((2, 2, *(2,) * nd), dtype)
    b = np.ones(2, dtype)
    y, pb = scratchnn.vjp(getattr(F, op), x, w, b, stride=2)
    assert y.dtype == dtype
    assert all(g.dtype == dtype for g in pb(np.ones_like(y)))


# ---------------------------------------------------------------------------------------------
# modules
# ---------------------------------------------------------------------------------------------
def _copy_from_torch(m, tm) -> None:
    m.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})


def _check_module_vs_torch(m, tm, x, dtype, *, rtol=1e-10, atol=1e-10, **fwd) -> None:
    rng = np.random.default_rng(1)
    tx = _t(x, True)
    y = m(x, **fwd)
    ty = tm(tx, **fwd)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = m.backward(dy)
    ty.backward(_t(dy))
    assert y.dtype == dx.dtype == dtype
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=rtol, atol=atol)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=rtol, atol=atol)
    for name, p in m.named_parameters():
        np.testing.assert_allclose(p.grad, getattr(tm, name).grad.numpy(), rtol=rtol,
                                   atol=atol, err_msg=name)


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("padding", ["int", "tuple", "same", "valid"])
def test_conv_modules_match_torch_for_every_padding_mode(nd, mode, padding):
    rng = np.random.default_rng(nd)
    k = (2, 3, 2)[:nd] if padding == "same" else 3          # 'same' with an even kernel
    pad = {"int": 1, "tuple": (1, 2, 0)[:nd], "same": "same", "valid": "valid"}[padding]
    kw = dict(padding=pad, padding_mode=mode, groups=2, dilation=(2, 1, 1)[:nd] if
              padding == "same" else 1, stride=1 if padding == "same" else 2)
    m = getattr(nn, f"Conv{nd}d")(4, 6, k, dtype=np.float64, **kw)
    tm = getattr(torch.nn, f"Conv{nd}d")(4, 6, k, dtype=torch.float64, **kw)
    _copy_from_torch(m, tm)
    x = rng.standard_normal((2, 4, *(5, 6, 4)[:nd]))
    _check_module_vs_torch(m, tm, x, np.float64)
    _check_module_vs_torch(m, tm, x[0], np.float64)           # unbatched


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_conv_transpose_modules_match_torch(nd):
    rng = np.random.default_rng(nd)
    kw = dict(stride=2, padding=1, output_padding=1, groups=3, bias=False, dilation=1)
    m = getattr(nn, f"ConvTranspose{nd}d")(3, 6, 3, dtype=np.float32, **kw)
    tm = getattr(torch.nn, f"ConvTranspose{nd}d")(3, 6, 3, dtype=torch.float32, **kw)
    _copy_from_torch(m, tm)
    x = rng.standard_normal((2, 3, *(4, 3, 3)[:nd])).astype(np.float32)
    _check_module_vs_torch(m, tm, x, np.float32, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_conv_transpose_output_size(nd):
    rng = np.random.default_rng(0)
    m = getattr(nn, f"ConvTranspose{nd}d")(2, 3, 3, stride=3, padding=1, dtype=np.float64)
    tm = getattr(torch.nn, f"ConvTranspose{nd}d")(2, 3, 3, stride=3, padding=1,
                                                  dtype=torch.float64)
    _copy_from_torch(m, tm)
    x = rng.standard_normal((2, 2, *(3,) * nd))
    sizes = [7, 8, 9]                                         # (3−1)·3 − 2 + 2 + 1 = 7 … 7+2
    for s in sizes:
        for output_size in ([s] * nd, (2, 3, *[s] * nd)):
            y = m(x, output_size=output_size)
            assert y.shape == (2, 3, *(s,) * nd)
            _check_module_vs_torch(m, tm, x, np.float64, output_size=list(output_size))
            m.zero_grad()
            tm.zero_grad()
    assert m(x[0], [8] * nd).shape == (3, *(8,) * nd)          # unbatched, positional
    for bad in ([6] * nd, [10] * nd):
        with pytest.raises(ValueError, match="'output_size'"):
            m(x, output_size=bad)
        with pytest.raises(ValueError):                         # torch refuses too
            tm(_t(x), output_size=bad)
    with pytest.raises(ValueError, match="'output_size'"):
        m(x, output_size=[8] * (nd + 1))


@pytest.mark.parametrize("route, shape, keep", [
    ("im2col", (3, 1, 9, 8), True),          # a first layer: the forward keeps its columns
    ("im2col", (3, 4, 9, 8), False),
    ("shifted", (3, 16, 9, 8), False),
])
def test_needs_input_grad_skips_dx_and_keeps_dw_db(monkeypatch, route, shape, keep):
    """pullback(dy, needs_input_grad=(False, ...)): dx is None and never computed (its helpers
    are made to fail), dW and db are exactly those of the full backward."""
    monkeypatch.setattr(conv_impl, "_ROUTE", route)
    monkeypatch.setattr(conv_impl, "SAVE_COLS_BYTES", 1 << 30 if keep else 0)
    rng = np.random.default_rng(4)
    x = rng.standard_normal(shape)
    w = rng.standard_normal((5, shape[1], 3, 2))
    b = rng.standard_normal(5)
    y, pb = scratchnn.vjp(F.conv2d, x, w, b, 1, 1)
    dy = rng.standard_normal(y.shape)
    full = pb(dy)

    def no(*a, **k):
        raise AssertionError("dx was computed")
    for name in ("_transpose_of", "_shifted_transpose", "_scatter", "_transposed_conv"):
        monkeypatch.setattr(conv_impl, name, no)
    part = pb(dy, needs_input_grad=(False, True, True))
    assert part[0] is None and len(part) == len(full)
    np.testing.assert_array_equal(part[1], full[1])
    np.testing.assert_array_equal(part[2], full[2])


@pytest.mark.parametrize("mode", ["zeros", "reflect"])
def test_module_backward_without_input_grad(mode):
    """Conv2d.backward(dy, input_grad=False) returns None and accumulates the same grads."""
    rng = np.random.default_rng(1)
    m = nn.Conv2d(2, 3, 3, padding=1, padding_mode=mode)
    x = rng.standard_normal((2, 2, 6, 5)).astype(np.float32)
    dy = rng.standard_normal(m(x).shape).astype(np.float32)
    assert m.backward(dy).shape == x.shape
    dw, db = m.weight.grad.copy(), m.bias.grad.copy()
    m.zero_grad()
    m(x)
    assert m.backward(dy, input_grad=False) is None
    np.testing.assert_array_equal(m.weight.grad, dw)
    np.testing.assert_array_equal(m.bias.grad, db)


def test_module_matches_functional_and_accumulates_grads():
    rng = np.random.default_rng(0)
    m = nn.Conv2d(3, 4, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=1)
    x = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)
    y = m(x)
    yf, pb = scratchnn.vjp(F.conv2d, x, m.weight.data, m.bias.data, (2, 1), (1, 0), (1, 2))
    np.testing.assert_array_equal(y, yf)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = m.backward(dy)
    dxf, dwf, dbf = pb(dy)[:3]
    np.testing.assert_array_equal(dx, dxf)
    np.testing.assert_array_equal(m.weight.grad, dwf)
    np.testing.assert_array_equal(m.bias.grad, dbf)
    m(x)
    m.backward(dy)                                            # grads add up, as torch's
    np.testing.assert_allclose(m.weight.grad, 2 * dwf, rtol=1e-6)
    np.testing.assert_allclose(m.bias.grad, 2 * dbf, rtol=1e-6)


@pytest.mark.parametrize("cls", ["Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d",
                                 "ConvTranspose2d", "ConvTranspose3d"])
@pytest.mark.parametrize("bias", [True, False])
def test_state_dict_matches_torch_both_ways(cls, bias):
    m = getattr(nn, cls)(4, 6, 3, groups=2, bias=bias)
    tm = getattr(torch.nn, cls)(4, 6, 3, groups=2, bias=bias)
    ours, theirs = m.state_dict(), tm.state_dict()
    assert list(ours) == list(theirs)
    for k in theirs:
        assert ours[k].shape == tuple(theirs[k].shape) and ours[k].dtype == np.float32
    _copy_from_torch(m, tm)                                   # torch -> ours
    for k in theirs:
        np.testing.assert_array_equal(ours[k], theirs[k].numpy())
    m2 = getattr(nn, cls)(4, 6, 3, groups=2, bias=bias)
    tm.load_state_dict({k: torch.tensor(v) for k, v in m2.state_dict().items()})  # ours -> torch
    for k, v in m2.state_dict().items():
        np.testing.assert_array_equal(tm.state_dict()[k].numpy(), v)
    assert repr(m) == repr(tm)


@pytest.mark.parametrize("cls,fan_in", [("Conv2d", 8 // 2 * 9), ("ConvTranspose2d", 12 // 2 * 9),
                                        ("Conv3d", 8 // 2 * 27), ("Conv1d", 8 // 2 * 3)])
def test_default_init_follows_torch(cls, fan_in):
    """kaiming_uniform_(a=√5) gives U(±1/√fan_in); the bias U(±1/√fan_in); fan_in from the
    weight's dimension 1 (C_out/G for a transposed weight)."""
    m = getattr(nn, cls)(8, 12, 3, groups=2, generator=np.random.default_rng(0))
    bound = 1 / math.sqrt(fan_in)
    w, b = m.weight.data, m.bias.data
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.1 * bound    # uniform: σ = bound/√3
    assert np.abs(b).max() <= bound
    tm = getattr(torch.nn, cls)(8, 12, 3, groups=2)
    assert np.abs(tm.weight.detach().numpy()).max() <= bound   # torch's bound is the same


def test_generator_makes_init_reproducible():
    a = nn.Conv2d(2, 3, 3, generator=np.random.default_rng(5))
    b = nn.Conv2d(2, 3, 3, generator=np.random.default_rng(5))
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    np.testing.assert_array_equal(a.bias.data, b.bias.data)


# ---------------------------------------------------------------------------------------------
# pad on its own (also registered): the module path uses it, so check its pullback directly
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
def test_pad_float32_and_gradient_sums(mode):
    x = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    y, pb = scratchnn.vjp(F.pad, x, (2, 3), mode=mode)
    assert y.dtype == np.float32 and y.shape == (2, 3, 9)
    dx = pb(np.ones_like(y))[0]
    assert dx.dtype == np.float32
    # every output element copies exactly one input element (or is the constant)
    assert dx.sum() == (x.size if mode == "constant" else y.size)


# ---------------------------------------------------------------------------------------------
# error messages
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("call,match", [
    (lambda: F.conv2d(np.zeros((1, 3, 5, 5)), np.zeros((2, 1, 3, 3)), groups=2),
     r"conv2d\(\): parameter 'groups' 2 must divide the input's 3 channels"),
    (lambda: F.conv2d(np.zeros((1, 3, 5, 5)), np.zeros((2, 2, 3, 3))),
     r"conv2d\(\): parameter 'weight' expects 2 input channels"),
    (lambda: F.conv3d(np.zeros((1, 1, 2, 5, 5)), np.zeros((1, 1, 3, 3, 3))),
     r"conv3d\(\): parameter 'weight' has kernel size \(3, 3, 3\).*larger than the padded"),
    (lambda: F.conv1d(np.zeros((1, 1, 5)), np.zeros((1, 1, 3)), stride=0),
     r"conv1d\(\): parameter 'stride' must be >= 1"),
    (lambda: F.conv1d(np.zeros((1, 1, 5)), np.zeros((1, 1, 3)), dilation=0),
     r"conv1d\(\): parameter 'dilation' must be >= 1"),
    (lambda: F.conv2d(np.zeros((1, 1, 5, 5)), np.zeros((1, 1, 3, 3)), padding=-1),
     r"conv2d\(\): parameter 'padding' must be >= 0"),
    (lambda: F.conv2d(np.zeros((1, 1, 5, 5)), np.zeros((1, 1, 3, 3)), stride=2,
                      padding="same"),
     r"conv2d\(\): parameter 'padding' 'same' is not supported for strided"),
    (lambda: F.conv_transpose2d(np.zeros((1, 1, 5, 5)), np.zeros((1, 1, 3, 3)), stride=2,
                                output_padding=2),
     r"conv_transpose2d\(\): parameter 'output_padding' .* smaller than either stride"),
    (lambda: F.conv2d(np.zeros((5, 5)), np.zeros((1, 1, 3, 3))),
     r"conv2d\(\): parameter 'input' must be 3-dimensional \(unbatched\) or 4-dimensional"),
    (lambda: F.conv_transpose1d(np.zeros((1, 2, 5)), np.zeros((3, 1, 3))),
     r"conv_transpose1d\(\): parameter 'weight' has 3 input channels"),
    (lambda: nn.Conv2d(3, 4, 3, groups=2), r"Conv2d\(\): parameter 'groups' 2 must divide"),
    (lambda: nn.Conv2d(2, 4, 3, padding_mode="mirror"), r"Conv2d\(\): parameter 'padding_mode'"),
    (lambda: nn.Conv1d(2, 4, 3, stride=2, padding="same"), r"Conv1d\(\): parameter 'padding'"),
    (lambda: nn.ConvTranspose2d(2, 4, 3, padding_mode="reflect"),
     r"ConvTranspose2d\(\): parameter 'padding_mode' must be 'zeros'"),
    (lambda: nn.Conv3d(2, 4, (3, 3)), r"Conv3d\(\): parameter 'kernel_size'"),
    (lambda: F.pad(np.zeros((2, 3, 4)), (4, 1), mode="reflect"),
     r"pad\(\): parameter 'pad' \(4, 1\) must be smaller than the input's size 4"),
])
def test_error_messages_name_the_parameter(call, match):
    with pytest.raises(ValueError, match=match):
        call()
