"""Pooling beyond the registry sweep: tie/NaN/−inf conventions, min = −max(−x), windows that see
only padding, the lp kink, modules against torch.nn modules, and error messages — each for both
editions (``scratchnn.textbook`` and the fast ``scratchnn.functional``); then the fast engine's
own machinery (polyphase runs, threads, separable sums) against the textbook.

(The registry in ``reference/specs/pooling.py`` already compares every op with torch over the
whole argument space, float32/float64, ties included, plus gradcheck and memory layouts; and
``tests/test_textbook.py`` the two editions with every route of the engine forced.)
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as tnn
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

import scratchnn as snn
import scratchnn.functional as F
import scratchnn.nn as nn
import scratchnn.textbook as T
from reference.values import make, seeds
from tests.conftest import examples


EDITIONS = pytest.mark.parametrize("E", [F, T], ids=["fast", "textbook"])


def _ours(op, x, *args, dy=None, **kwargs):
    """(outputs as a tuple, dx) for upstream dy (random if None)."""
    out, pullback = snn.vjp(op, x, *args, **kwargs)
    outs = out if isinstance(out, tuple) else (out,)
    if dy is None:
        dy = np.random.default_rng(0).standard_normal(outs[0].shape).astype(x.dtype)
    dx = pullback((dy, None) if isinstance(out, tuple) else dy)[0]
    return outs, dx, dy


def _torch(op, x, *args, dy, **kwargs):
    xt = torch.tensor(x, requires_grad=True)
    out = op(xt, *args, **kwargs)
    outs = out if isinstance(out, tuple) else (out,)
    outs[0].backward(torch.tensor(dy))
    return [o.detach().numpy() for o in outs], xt.grad.numpy()


def assert_same_as_torch(ours, theirs, x, *args, **kwargs):
    outs, dx, dy = _ours(ours, x, *args, **kwargs)
    touts, tdx = _torch(theirs, x, *args, dy=dy, **kwargs)
    for o, t in zip(outs, touts):
        np.testing.assert_array_equal(o, t)      # max/min pooling picks, it does not compute
    np.testing.assert_allclose(dx, tdx, rtol=1e-12, atol=0)


@EDITIONS
@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("kwargs", [dict(kernel_size=3, stride=1, padding=1),
                                    dict(kernel_size=2, stride=2, ceil_mode=True),
                                    dict(kernel_size=2, stride=1, dilation=2, padding=1)])
def test_constant_input_sends_every_gradient_to_the_first_real_element(E, nd, kwargs):
    """All-equal windows: index and gradient go to the first non-padding element, as torch."""
    x = np.ones((1, 2) + (5,) * nd)
    op, top = getattr(E, f"max_pool{nd}d"), getattr(TF, f"max_pool{nd}d")
    (y, idx), dx, _ = _ours(op, x, return_indices=True, **kwargs)
    assert_same_as_torch(op, top, x, return_indices=True, **kwargs)
    # independently: window o starts at o·s − p; its first real element along each dim
    k, s, p, d = kwargs["kernel_size"], kwargs["stride"], kwargs.get("padding", 0), \
        kwargs.get("dilation", 1)
    first = [o * s - p + -(-max(0, p - o * s) // d) * d for o in range(y.shape[-1])]
    assert list(idx.reshape(-1, y.shape[-1])[0] % 5) == first


@EDITIONS
@settings(max_examples=examples(0.5))
@given(nd=st.integers(1, 3), seed=seeds, k=st.integers(1, 3), s=st.integers(1, 2),
       ceil=st.booleans(), regime=st.sampled_from(["ties", "normal"]))
def test_min_pool_is_minus_max_pool_of_minus_x(E, nd, seed, k, s, ceil, regime):
    x = make((2, 2) + (5,) * nd, np.random.default_rng(seed), regime)
    kw = dict(kernel_size=k, stride=s, padding=k // 2, ceil_mode=ceil, return_indices=True)
    (mn, i_mn), dx_mn, dy = _ours(getattr(E, f"min_pool{nd}d"), x, **kw)
    (mx, i_mx), dx_mx, _ = _ours(getattr(E, f"max_pool{nd}d"), -x, dy=-dy, **kw)
    np.testing.assert_array_equal(mn, -mx)
    np.testing.assert_array_equal(i_mn, i_mx)
    np.testing.assert_array_equal(dx_mn, -dx_mx)     # the max side saw upstream −dy
    assert np.all(np.isfinite(mn))                   # padding (+inf for min) never wins


NAN, INF = np.nan, np.inf
SPECIAL = [
    (np.array([[[1.0, NAN, 3.0, NAN, 0.0]]]), dict(kernel_size=5)),               # last NaN
    (np.array([[[1.0, NAN, 3.0, NAN, 0.0]]]), dict(kernel_size=2, stride=1, padding=1)),
    (np.array([[[-INF, -INF, 1.0]]]), dict(kernel_size=3, stride=2, padding=1)),  # real −inf
    (np.array([[[-INF, -INF, -INF, 2.0]]]), dict(kernel_size=2, stride=2, ceil_mode=True)),
    (np.array([[[[1.0, NAN, 3.0], [NAN, 0.0, INF]]]]), dict(kernel_size=(2, 3))),
    (np.array([[[[INF, 1.0], [INF, INF]]]]), dict(kernel_size=2, padding=1, stride=1)),
]


@EDITIONS
@pytest.mark.parametrize("x, kwargs", SPECIAL)
def test_nan_and_infinities_follow_torch(E, x, kwargs):
    nd = x.ndim - 2
    assert_same_as_torch(getattr(E, f"max_pool{nd}d"), getattr(TF, f"max_pool{nd}d"), x,
                         return_indices=True, **kwargs)
    min_ref = lambda t, **kw: tuple(s * o for s, o in                       # noqa: E731
                                    zip((-1, 1), getattr(TF, f"max_pool{nd}d")(-t, **kw)))
    assert_same_as_torch(getattr(E, f"min_pool{nd}d"), min_ref, x, return_indices=True,
                         **kwargs)


@EDITIONS
def test_adaptive_max_nan_follows_torch(E):
    x = np.array([[[[1.0, NAN, 3.0], [NAN, 0.0, 1.0]]]])
    assert_same_as_torch(E.adaptive_max_pool2d, TF.adaptive_max_pool2d, x, 1,
                         return_indices=True)


@EDITIONS
@pytest.mark.parametrize("nd", [1, 2])
def test_window_of_padding_only_is_minus_inf_with_torchs_index_and_no_gradient(E, nd):
    """k=2, dilation 2, padding 1 on a size-1 input: the only window sees two pad cells.
    torch returns −inf and an index past the plane (its backward then reads out of bounds, so
    only the forward is compared); we send that window's gradient nowhere."""
    x = np.full((1, 1) + (1,) * nd, 3.0)
    kw = dict(kernel_size=2, stride=1, padding=1, dilation=2, return_indices=True)
    (y, idx), dx, _ = _ours(getattr(E, f"max_pool{nd}d"), x, **kw)
    ty, tidx = getattr(TF, f"max_pool{nd}d")(torch.tensor(x), **kw)
    np.testing.assert_array_equal(y, ty.numpy())
    np.testing.assert_array_equal(idx, tidx.numpy())
    assert np.all(y == -np.inf) and np.all(dx == 0)


@EDITIONS
@pytest.mark.parametrize("p", [1, 2, 1.5])
def test_lp_pool_gradient_is_zero_where_the_window_power_sum_is_zero(E, p):
    """torch's sign(z)·relu(|z|) makes the gradient 0 at z = 0 (not inf/NaN)."""
    x = np.array([[[1.0, -1.0, 0.0, 0.0, 2.0, 0.5]]])
    if p != 1:
        x[0, 0, :2] = 0.0
    outs, dx, dy = _ours(E.lp_pool1d, x, p, 2)
    touts, tdx = _torch(TF.lp_pool1d, x, p, 2, dy=dy)
    np.testing.assert_allclose(outs[0], touts[0], rtol=1e-12)
    np.testing.assert_allclose(dx, tdx, rtol=1e-12)
    assert np.all(dx[0, 0, :4] == 0) and np.all(np.isfinite(dx))


@EDITIONS
def test_avg_pool_divisor_for_ceil_windows_past_the_padded_input(E):
    """A ceil_mode window running past input + padding counts only up to the padded end
    (count_include_pad) or only real cells (otherwise); divisor_override replaces both."""
    x = np.ones((1, 1, 5))
    y = E.avg_pool1d(x, 3, 2, 1, ceil_mode=True)
    np.testing.assert_allclose(y, [[[2 / 3, 1.0, 2 / 3]]])      # last window: [4, 5, 6) → 2
    np.testing.assert_allclose(E.avg_pool1d(x, 3, 2, 1, True, False), [[[1.0, 1.0, 1.0]]])
    y2 = E.avg_pool2d(np.ones((1, 1, 5, 5)), 3, 2, 1, ceil_mode=True, divisor_override=2)
    assert y2[0, 0, 0, 0] == 2.0 and y2[0, 0, 1, 1] == 4.5
    for kw in (dict(count_include_pad=True), dict(count_include_pad=False)):
        assert_same_as_torch(E.avg_pool1d, TF.avg_pool1d, np.arange(5.0)[None, None], 3, 2, 1,
                             True, **kw)


# ------------------------------------------------------------------------------- modules
MODULES = [
    ("MaxPool1d", (3, 2, 1), {"ceil_mode": True}, 1),
    ("MaxPool2d", (3,), {"stride": 2, "padding": 1, "return_indices": True}, 2),
    ("MaxPool3d", (2,), {"dilation": 2, "padding": 1}, 3),
    ("AvgPool1d", (3, 2, 1), {"count_include_pad": False}, 1),
    ("AvgPool2d", (3, 2, 1), {"ceil_mode": True, "divisor_override": 3}, 2),
    ("AvgPool3d", (2,), {}, 3),
    ("AdaptiveAvgPool1d", (3,), {}, 1),
    ("AdaptiveAvgPool2d", ((4, None),), {}, 2),
    ("AdaptiveAvgPool3d", (2,), {}, 3),
    ("AdaptiveMaxPool1d", (4,), {"return_indices": True}, 1),
    ("AdaptiveMaxPool2d", ((3, 5),), {}, 2),
    ("AdaptiveMaxPool3d", ((2, 3, 1),), {"return_indices": True}, 3),
    ("LPPool1d", (2, 3), {"stride": 2}, 1),
    ("LPPool2d", (1.5, 2), {"ceil_mode": True}, 2),
    ("LPPool3d", (2, 2), {}, 3),
]


@pytest.mark.parametrize("name, args, kwargs, nd", MODULES, ids=[m[0] for m in MODULES])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_module_matches_torch_module(name, args, kwargs, nd, dtype):
    rng = np.random.default_rng(1)
    x = (np.abs(rng.standard_normal((2, 3) + (6,) * nd)) + 0.1).astype(dtype)
    ours, theirs = getattr(nn, name)(*args, **kwargs), getattr(tnn, name)(*args, **kwargs)
    for mode in ("train", "eval"):                  # pooling ignores the mode
        getattr(ours, mode)()
        getattr(theirs, mode)()
        y = ours(x)
        outs = y if isinstance(y, tuple) else (y,)
        dy = rng.standard_normal(outs[0].shape).astype(dtype)
        dx = ours.backward(dy)                       # the values' gradient only
        xt = torch.tensor(x, requires_grad=True)
        t = theirs(xt)
        touts = t if isinstance(t, tuple) else (t,)
        touts[0].backward(torch.tensor(dy))
        assert outs[0].dtype == dtype and dx.dtype == dtype
        for o, to in zip(outs, touts):
            np.testing.assert_allclose(o, to.detach().numpy(), rtol=2e-6, atol=1e-6)
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=2e-6, atol=1e-6)
    assert name.split("Pool")[0] in repr(ours)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_min_pool_module_and_unpool_module(nd):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3) + (6,) * nd)
    mn = getattr(nn, f"MinPool{nd}d")(2, return_indices=True)
    mx = getattr(tnn, f"MaxPool{nd}d")(2, return_indices=True)
    y, idx = mn(x)
    ty, tidx = mx(torch.tensor(-x))
    np.testing.assert_array_equal(y, -ty.numpy())
    np.testing.assert_array_equal(idx, tidx.numpy())
    un, tun = getattr(nn, f"MaxUnpool{nd}d")(2), getattr(tnn, f"MaxUnpool{nd}d")(2)
    z = un(y, idx, output_size=x.shape)
    yt = torch.tensor(y, requires_grad=True)
    tz = tun(yt, tidx, output_size=x.shape)
    np.testing.assert_array_equal(z, tz.detach().numpy())
    dz = rng.standard_normal(z.shape)
    dy, didx = un.backward(dz)                  # two array inputs: (dx, None)
    tz.backward(torch.tensor(dz))
    assert didx is None
    np.testing.assert_array_equal(dy, yt.grad.numpy())
    # min pooling's gradient lands on the minima: a (dy, None) pair works as well
    dx = mn.backward((np.ones_like(y), None))
    assert dx.sum() == y.size and np.all(x[dx == 1] <= x.max())


# ------------------------------------------------------------------------------- errors
ERRORS = [
    (F.max_pool2d, (np.zeros((1, 1, 4, 4)), 0), {}, ValueError, "kernel_size"),
    (F.max_pool2d, (np.zeros((1, 1, 4, 4)), 2), {"stride": 0}, ValueError, "stride"),
    (F.max_pool2d, (np.zeros((1, 1, 4, 4)), 2), {"dilation": (1, 0)}, ValueError, "dilation"),
    (F.max_pool2d, (np.zeros((1, 1, 4, 4)), 3), {"padding": 2}, ValueError, "padding"),
    (F.max_pool1d, (np.zeros((1, 1, 4)), 2), {"dilation": 3, "padding": 2}, ValueError,
     "padding"),                                    # torch: pad <= kernel_size // 2
    (F.max_pool2d, (np.zeros((1, 1, 4, 4)), 5), {}, ValueError, "kernel_size"),
    (F.max_pool2d, (np.zeros((4, 4)), 2), {}, ValueError, "input"),
    (F.max_pool2d, (np.zeros((1, 0, 4, 4)), 2), {}, ValueError, "input"),
    (F.max_pool2d, (np.zeros((1, 1, 4, 4)), 2), {"return_indices": 1}, TypeError,
     "return_indices"),
    (F.min_pool3d, (np.zeros((4, 4, 4)), 2), {}, ValueError, "input"),
    (F.avg_pool2d, (np.zeros((1, 1, 4, 4)), 2), {"divisor_override": 0}, ValueError,
     "divisor_override"),
    (F.avg_pool2d, (np.zeros((1, 1, 4, 4)), 2), {"count_include_pad": None}, TypeError,
     "count_include_pad"),
    (F.avg_pool3d, (np.zeros((1, 1, 1, 4, 4)), 2), {"padding": 1}, ValueError, "kernel_size"),
    (F.adaptive_avg_pool2d, (np.zeros((1, 1, 4, 4)), 0), {}, ValueError, "output_size"),
    (F.adaptive_max_pool2d, (np.zeros((1, 1, 4, 4)), (2, 2, 2)), {}, ValueError,
     "output_size"),
    (F.max_unpool2d, (np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 2, 2), np.int64), 2),
     {"output_size": (6, 4)}, ValueError, "output_size"),
    (F.max_unpool2d, (np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 2, 2), np.int64), 2),
     {"output_size": (1, 4, 4, 4, 4)}, ValueError, "output_size"),
    (F.max_unpool2d, (np.zeros((1, 1, 2, 2)), np.full((1, 1, 2, 2), 16), 2), {}, ValueError,
     "indices"),
    (F.max_unpool2d, (np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 2, 2)), 2), {}, TypeError,
     "indices"),
    (F.lp_pool2d, (np.zeros((1, 1, 4, 4)), 0, 2), {}, ValueError, "norm_type"),
    (F.lp_pool1d, (np.zeros((1, 1, 4)), 2, 2), {"stride": -1}, ValueError, "stride"),
]


@EDITIONS
@pytest.mark.parametrize("op, args, kwargs, error, param", ERRORS,
                         ids=[f"{e[0].__name__}-{e[4]}-{i}" for i, e in enumerate(ERRORS)])
def test_bad_arguments_name_the_function_and_parameter(E, op, args, kwargs, error, param):
    op = getattr(E, op.__name__)
    with pytest.raises(error, match=rf"{op.__name__}\(\): parameter '{param}'"):
        op(*args, **kwargs)


@EDITIONS
def test_float32_stays_float32_and_inputs_are_not_written(E):
    x = np.random.default_rng(3).standard_normal((2, 3, 7, 7)).astype(np.float32)
    x.flags.writeable = False                          # any write would raise
    for op, args in [(E.max_pool2d, (3, 2, 1)), (E.avg_pool2d, (3, 2, 1)),
                     (E.adaptive_avg_pool2d, (3,)), (E.adaptive_max_pool2d, (3,)),
                     (E.lp_pool2d, (2, 3, 2)), (E.lp_pool2d, (np.inf, 3, 2))]:
        y, pullback = snn.vjp(op, x, *args)
        dx = pullback(np.ones_like(y))[0]
        assert y.dtype == np.float32 and dx.dtype == np.float32, op.__name__


@EDITIONS
def test_docstrings_give_formula_shapes_and_torch(E):
    for name in T.pooling.__all__:
        doc = getattr(E, name).__doc__
        assert all(field in doc for field in ("Shapes:", "Saves:", "Backward", "Torch:")), name


def test_textbook_has_the_fast_editions_signatures():
    """Both editions take torch's arguments: the same names, order and defaults."""
    import inspect
    for name in T.pooling.__all__:
        ours, book = inspect.signature(getattr(F, name)), inspect.signature(getattr(T, name))
        assert [(p.name, p.default) for p in book.parameters.values()] == \
            [(p.name, p.default) for p in ours.parameters.values()], name


def test_plain_pooling_ops_live_once():
    """Adaptive average pooling and max_unpool carry no machinery: one function, two names."""
    for nd in (1, 2, 3):
        for name in (f"adaptive_avg_pool{nd}d", f"max_unpool{nd}d"):
            assert getattr(F, name) is getattr(T, name), name
        assert getattr(F, f"max_pool{nd}d") is not getattr(T, f"max_pool{nd}d")


@EDITIONS
@pytest.mark.parametrize("kwargs", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1)])
def test_non_finite_upstream_gradient_reaches_only_the_winners(E, kwargs):
    """The backward selects dy by the winner mask (the textbook with np.where, the fast edition
    on the bits, :func:`scratchnn.perf.bitwise.mask_select`): an inf or NaN dy must not leak
    into the elements a window did not pick, and those get +0 as in torch, never −0 (disjoint
    and overlapping windows)."""
    x = np.random.default_rng(4).standard_normal((1, 2, 6, 6))
    y = F.max_pool2d(x, **kwargs)
    dy = np.random.default_rng(5).standard_normal(y.shape)
    dy[0, 0, 0, 0], dy[0, 1, 1, 1] = np.inf, np.nan
    _, dx, _ = _ours(E.max_pool2d, x, dy=dy, **kwargs)
    _, tdx = _torch(TF.max_pool2d, x, dy=dy, **kwargs)
    np.testing.assert_array_equal(dx, tdx)
    np.testing.assert_array_equal(np.signbit(dx), np.signbit(tdx))
    assert np.isnan(dx).sum() == 1 and np.isinf(dx).sum() == 1


# ------------------------------------------------------------------------------- fast layout
@settings(max_examples=examples(1))
@given(data=st.data(), nd=st.integers(1, 3), seed=seeds)
def test_phase_runs_are_the_offset_views_of_the_padded_input(data, nd, seed):
    """The polyphase layout's claim: offset j's flat run, at every valid grid position, is
    what the strided offset view of the ∓inf-padded input shows (the plain definition), and
    merge is split's adjoint (every input element lands in at most one phase)."""
    from scratchnn import window as _window
    from scratchnn.functional import pooling as P
    from scratchnn.perf.polyphase import polyphase, valid
    from scratchnn.textbook._pooling_args import geometry
    k = [data.draw(st.integers(1, 3)) for _ in range(nd)]
    s = [data.draw(st.integers(1, 3)) for _ in range(nd)]
    dil = [data.draw(st.integers(1, 2)) for _ in range(nd)]
    pad = [data.draw(st.integers(0, ki // 2)) for ki in k]
    size = [data.draw(st.integers(max(1, di * (ki - 1) + 1 - 2 * pi), 7))
            for ki, di, pi in zip(k, dil, pad)]
    x = np.random.default_rng(seed).standard_normal((3, 2, *size))
    g = geometry("t", x, nd, k, s, pad, dil, data.draw(st.booleans()))
    pp = polyphase(g)
    planes = P._planes(x, nd)
    flat, grids = pp.buffer(planes.shape[0], x.dtype, -np.inf)
    pp.split(planes, grids)
    xp = _window.pad(planes, g.pads, -np.inf)
    for j, (_, sl) in enumerate(_window.offset_slices(k, s, dil, g.out)):
        run = pp.run(j, flat, planes.shape[0]).reshape((-1,) + pp.grid)
        np.testing.assert_array_equal(valid(run, g.out), xp[(Ellipsis,) + sl])
    dx = np.full(planes.shape, np.nan)
    pp.merge(grids, dx)
    seen = np.zeros(planes.shape, bool)
    for box, src in pp.phases:
        assert not seen[(Ellipsis,) + src].any()
        seen[(Ellipsis,) + src] = True
    assert pp.complete == seen.all()
    np.testing.assert_array_equal(dx, np.where(seen, planes, 0.0))


@pytest.fixture
def threaded(monkeypatch):
    """Chunk even tiny inputs over 3 threads (ranges that do not start at plane 0)."""
    from scratchnn.functional import pooling as P
    before = snn.get_num_threads()
    monkeypatch.setattr(snn.perf.threads, "MIN_PARALLEL", 0)
    monkeypatch.setattr(P, "_PARALLEL_MIN", 0)
    yield lambda n: snn.set_num_threads(n)
    snn.set_num_threads(before)


THREAD_CASES = [("max_pool2d", dict(kernel_size=3, stride=2, padding=1, return_indices=True)),
                ("min_pool2d", dict(kernel_size=2, return_indices=True)),
                ("max_pool1d", dict(kernel_size=3, stride=1, dilation=2, padding=1,
                                    ceil_mode=True)),
                ("min_pool3d", dict(kernel_size=2, stride=1, padding=1)),
                ("avg_pool2d", dict(kernel_size=3, stride=2, padding=1,
                                    count_include_pad=False))]


@pytest.mark.parametrize("name, kwargs", THREAD_CASES, ids=[c[0] for c in THREAD_CASES])
def test_threaded_chunks_are_bit_identical_to_one_call_and_match_torch(threaded, name, kwargs):
    """Plane ranges on the worker pool give exactly the single-call result, ties and NaN
    included (the NaN-aware rerun is decided per range); and the threaded path is torch's."""
    nd = int(name[-2])
    rng = np.random.default_rng(6)
    x = make((3, 4) + (7,) * nd, rng, "ties")
    x[0, 1].flat[[0, 3]] = np.nan                   # NaN in some ranges only
    op = getattr(F, name)
    results = []
    for n in (1, 3, 2):
        threaded(n)
        outs, dx, dy = _ours(op, x, **kwargs)
        results.append((outs, dx))
    for outs, dx in results[1:]:
        for o, o1 in zip(outs, results[0][0]):
            np.testing.assert_array_equal(o, o1)
        np.testing.assert_array_equal(dx, results[0][1])
    if name.startswith("min"):
        top = lambda t, **kw: tuple(s * o for s, o in zip(                  # noqa: E731
            (-1, 1), _as_tuple(getattr(TF, f"max_pool{nd}d")(-t, **kw))))
    else:
        top = getattr(TF, name)
    touts, tdx = _torch(top, x, dy=dy, **kwargs)
    for o, t in zip(outs, touts):
        np.testing.assert_allclose(o, t, rtol=1e-12, atol=0)
    np.testing.assert_allclose(dx, tdx, rtol=1e-12, atol=1e-15)
    bouts, bdx, _ = _ours(getattr(T, name), x, dy=dy, **kwargs)      # and the textbook's:
    same = (np.testing.assert_array_equal if not name.startswith("avg")     # average pooling
            else lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15))
    for o, b in zip(outs, bouts):                         # sums separably, in another order
        same(o, b)
    same(dx, bdx)


def _as_tuple(out):
    return out if isinstance(out, tuple) else (out,)


# ------------------------------------------------------------------------ separable average
def _avg_variants(monkeypatch, x, dy, nd, **kwargs):
    """{name: (y, dx)} of the separable average pooling: flat runs along the last dim (the
    default), sliced passes only, and plane blocks of one and of about four planes (the last
    block partial)."""
    from scratchnn.functional import pooling as P
    op = getattr(F, f"avg_pool{nd}d")
    res = {}
    four = 4 * x[(0,) * (x.ndim - nd)].nbytes
    for name, flat, block in (("flat", True, 1 << 22), ("sliced", False, 1 << 22),
                              ("blocks of 1", True, 1), ("blocks of 4", True, four)):
        monkeypatch.setattr(P, "_FLAT_RUNS", flat)
        monkeypatch.setattr(P, "_BLOCK_BYTES", block)
        outs, dx, _ = _ours(op, x, dy=dy, **kwargs)
        res[name] = (outs[0], dx)
    return res


@settings(max_examples=examples(2), deadline=None)
@given(data=st.data(), nd=st.integers(1, 3), seed=seeds)
def test_separable_avg_is_the_sum_over_offsets_on_every_path(data, nd, seed):
    """Flat runs (with their boundary windows summed again), sliced passes and plane blocks
    give bit-identical results, equal to the textbook's plain sum over the offset slices,
    ceil_mode's overhang, count_include_pad and divisor_override included."""
    from scratchnn.textbook._pooling_args import geometry
    k = [data.draw(st.integers(1, 4)) for _ in range(nd)]
    s = [data.draw(st.integers(1, 3)) for _ in range(nd)]
    p = [data.draw(st.integers(0, ki // 2)) for ki in k]
    if data.draw(st.booleans()):        # L = O·s: the last dim takes the flat runs
        size = [ki * si + data.draw(st.integers(0, 2)) * si for ki, si in zip(k, s)]
        size[-1] = max(1, (size[-1] + 2 * p[-1] - k[-1]) // s[-1] + 1) * s[-1]
    else:
        size = [data.draw(st.integers(max(1, ki - 2 * pi), 8)) for ki, pi in zip(k, p)]
    if nd == 3:
        size = [max(n, ki) for n, ki in zip(size, k)]
    kwargs = dict(kernel_size=k, stride=s, padding=p, ceil_mode=data.draw(st.booleans()),
                  count_include_pad=data.draw(st.booleans()))
    if nd > 1 and data.draw(st.booleans()):
        kwargs["divisor_override"] = data.draw(st.integers(1, 5))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 3, *size))
    try:
        g = geometry("t", x, nd, k, s, p, 1, kwargs["ceil_mode"])
    except ValueError:
        return
    dy = rng.standard_normal((2, 3, *g.out))
    from _pytest.monkeypatch import MonkeyPatch
    with MonkeyPatch.context() as mp:
        res = _avg_variants(mp, x, dy, nd, **kwargs)
    y0, dx0 = res["flat"]
    for y, dx in res.values():
        np.testing.assert_array_equal(y, y0)
        np.testing.assert_array_equal(dx, dx0)
    (ref_y,), ref_dx, _ = _ours(getattr(T, f"avg_pool{nd}d"), x, dy=dy, **kwargs)
    np.testing.assert_allclose(y0, ref_y, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dx0, ref_dx, rtol=1e-12, atol=1e-14)


FLAT_CASES = [dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=2),
              dict(kernel_size=3, stride=1, padding=1), dict(kernel_size=(2, 3), stride=(1, 3)),
              dict(kernel_size=4, stride=2, padding=1, count_include_pad=False)]


@pytest.mark.parametrize("kwargs", FLAT_CASES, ids=str)
def test_flat_runs_are_taken_and_match_sliced_passes_and_torch(monkeypatch, kwargs):
    """The benchmark's geometries (rows of L = O·s) really take the flat runs, whose reads
    past a row's end are summed again for the boundary windows; float32 as torch."""
    from scratchnn.functional import pooling as P
    taken = []
    real = P.choose_route
    monkeypatch.setattr(P, "choose_route", lambda *a, **k: taken.append(real(*a, **k).flat[-1])
                        or real(*a, **k))
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 5, 12, 12)).astype(np.float32)
    x[0, 0, :, -1] = 1e6                 # a wrong read past the row's end would show
    y = F.avg_pool2d(x, **kwargs)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    assert all(taken) and taken
    res = _avg_variants(monkeypatch, x, dy, 2, **kwargs)
    for yv, dxv in res.values():
        np.testing.assert_array_equal(yv, res["flat"][0])
        np.testing.assert_array_equal(dxv, res["flat"][1])
    touts, tdx = _torch(TF.avg_pool2d, x, dy=dy, **kwargs)
    np.testing.assert_allclose(res["flat"][0], touts[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(res["flat"][1], tdx, rtol=1e-5, atol=1e-6)


ROUTE_CASES = [("max_pool2d", dict(kernel_size=2)),                     # disjoint: direct dx
               ("max_pool2d", dict(kernel_size=3, stride=2, padding=1)),
               ("avg_pool2d", dict(kernel_size=2))]


@pytest.mark.parametrize("name, kwargs", ROUTE_CASES, ids=str)
def test_choose_route_names_the_path_taken(name, kwargs):
    """The decision function reports what the defaults pick on a benchmark-sized case, and
    every ROUTES entry changes the decision it names."""
    from scratchnn.functional import pooling as P
    from scratchnn.textbook._pooling_args import geometry
    from _pytest.monkeypatch import MonkeyPatch
    x = np.zeros((32, 64, 32, 32), np.float32)
    g = geometry(name, x, 2, kwargs["kernel_size"], kwargs.get("stride"),
                 kwargs.get("padding", 0), 1, False)
    kind = "extreme" if name.startswith("max") else "avg"
    r = P.choose_route(kind, g, 32 * 64, 4)
    if kind == "extreme":
        assert r.direct == (kwargs.get("stride") is None)
        with MonkeyPatch.context() as mp:
            mp.setattr(P, "_DIRECT", False)
            assert not P.choose_route(kind, g, 32 * 64, 4).direct
    with MonkeyPatch.context() as mp:
        for key, v in P.ROUTES["threads"].items():
            path, attr = key.rsplit(".", 1) if "." in key else (P.__name__, key)
            mp.setattr(__import__(path, fromlist=[attr]), attr, v)
        assert P.choose_route(kind, g, 1, 4).threaded
    with MonkeyPatch.context() as mp:                    # the benchmark's size splits on 2
        mp.setattr(snn.perf.threads, "_threads", 2)
        assert P.choose_route(kind, g, 32 * 64, 4).threaded
        assert not P.choose_route(kind, g, 8 * 64, 4).threaded           # 0.5 M: one thread
        mp.setattr(snn.perf.threads, "_threads", 1)
        assert not P.choose_route(kind, g, 32 * 64, 4).threaded
    if kind == "avg":
        assert r.flat == (False, True) and 1 < r.block < 32 * 64
        with MonkeyPatch.context() as mp:
            mp.setattr(P, "_FLAT_RUNS", False)
            mp.setattr(P, "_BLOCK_BYTES", 1)
            assert P.choose_route(kind, g, 32 * 64, 4)[2:] == ((False, False), 1)
