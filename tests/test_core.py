"""The op contract (defop, vjp), gradcheck and the shared windowing core."""
from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import scratchnn as snn
import scratchnn.functional as F
from scratchnn import window as W
from tests.conftest import examples


def _cube():
    def cube_forward(x, power_hint=3):
        return x ** 3, (x,)

    def cube_backward(ctx, dy):
        (x,) = ctx
        return 3 * x ** 2 * dy

    return snn.defop(cube_forward, cube_backward)


def _two_out():
    def split_forward(x, k):
        return (x * 2, np.argsort(x, axis=-1)), (x.dtype,)

    def split_backward(ctx, dout):
        d, none = dout
        assert none is None
        return (2 * d,)

    return snn.defop(split_forward, split_backward, name="split")


# -- defop / vjp ------------------------------------------------------------------------------
def test_defop_keeps_name_signature_and_docs():
    assert F.linear.__name__ == "linear"
    assert list(inspect.signature(F.linear).parameters) == ["input", "weight", "bias"]
    assert "Torch:" in F.linear.__doc__ and "Backward" in F.linear.__doc__
    assert snn.is_op(F.linear) and not snn.is_op(np.tanh)


def test_vjp_one_entry_per_positional_argument():
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((2, 3)), rng.standard_normal((4, 3)), rng.standard_normal(4)
    out, pb = snn.vjp(F.linear, x, w, b)
    g = pb(rng.standard_normal(out.shape))
    assert len(g) == 3 and [a.shape for a in g] == [x.shape, w.shape, b.shape]
    out, pb = snn.vjp(F.linear, x, w, bias=b)           # keywords are options: no entry
    assert len(pb(np.ones_like(out))) == 2


def test_vjp_needs_input_grad():
    """Unneeded gradients come back as None (ops that cannot skip the work compute and drop
    them); a shorter tuple leaves the rest needed; a malformed one is refused up front."""
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((2, 3)), rng.standard_normal((4, 3)), rng.standard_normal(4)
    out, pb = snn.vjp(F.linear, x, w, b)
    dy = rng.standard_normal(out.shape)
    full = pb(dy)
    part = pb(dy, needs_input_grad=(False, True, False))
    assert part[0] is None and part[2] is None
    np.testing.assert_array_equal(part[1], full[1])
    short = pb(dy, needs_input_grad=(False,))
    assert short[0] is None
    np.testing.assert_array_equal(short[2], full[2])
    assert not F.linear.skips_gradients and F.conv2d.skips_gradients
    for bad in ((True,) * 4, "no", (1, 0, 1)):
        with pytest.raises(ValueError, match="linear pullback: parameter 'needs_input_grad'"):
            pb(dy, needs_input_grad=bad)


def test_vjp_none_for_non_float_and_int_outputs():
    op = _two_out()
    x = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    (y, idx), pb = snn.vjp(op, x, 5)
    assert idx.dtype.kind == "i"
    dx, dk = pb((np.ones_like(y), None))
    assert dk is None and dx.dtype == np.float32 and np.all(dx == 2)
    dx, _ = pb(None)                                     # None for every output: zeros
    assert np.all(dx == 0)


def test_vjp_checks_dout():
    x = np.zeros((2, 3))
    out, pb = snn.vjp(F.sigmoid, x)
    with pytest.raises(ValueError, match="shape"):
        pb(np.zeros((3, 2)))
    with pytest.raises(TypeError, match="numpy.ndarray"):
        pb([[0.0] * 3] * 2)
    with pytest.raises(TypeError, match="vjp\\(\\): parameter 'f'"):
        snn.vjp(np.tanh, x)


def test_vjp_catches_backward_dtype_promotion():
    def bad_forward(x):
        return x, None

    def bad_backward(ctx, dy):
        return dy * np.float64(2.0) if dy.dtype == np.float32 else dy.astype(np.float64)

    bad = snn.defop(bad_forward, bad_backward, name="bad")
    _, pb = snn.vjp(bad, np.zeros(3, np.float32))
    with pytest.raises(RuntimeError, match="dtype"):
        pb(np.ones(3, np.float32))


# -- gradcheck --------------------------------------------------------------------------------
def test_gradcheck_passes_and_names_the_failure():
    cube = _cube()
    x = np.random.default_rng(0).standard_normal((2, 3))
    assert snn.gradcheck(cube, (x,))

    def wrong_backward(ctx, dy):
        (x,) = ctx
        return 3 * x * dy                               # forgot a power

    wrong = snn.defop(cube.forward, wrong_backward, name="wrong")
    with pytest.raises(snn.GradcheckError) as e:
        snn.gradcheck(wrong, (x,))
    msg = str(e.value)
    assert "input 0 ('x')" in msg and "analytic" in msg and "numeric" in msg
    assert not snn.gradcheck(wrong, (x,), raise_exception=False)


def test_gradcheck_large_inputs_use_directions():
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((40, 30)), rng.standard_normal((20, 30))
    assert snn.gradcheck(F.linear, (x, w), full_limit=16)

    def swapped_backward(ctx, dy):
        dx, dw, db = F.linear.backward(ctx, dy)
        return dx[::-1], dw, db                          # a permutation bug

    bad = snn.defop(F.linear.forward, swapped_backward, name="bad_linear")
    with pytest.raises(snn.GradcheckError, match="'input'"):
        snn.gradcheck(bad, (x, w), full_limit=16)


# -- windowing core ---------------------------------------------------------------------------
def test_same_padding_split_matches_torch():
    for k, d in [(2, 1), (3, 1), (4, 2), (5, 3)]:
        pads = W.parse_padding("conv1d", "same", 1, (k,), (d,), (1,))
        total = d * (k - 1)
        assert pads == ((total // 2, total - total // 2),)
        x = torch.randn(1, 1, 9)
        assert torch.nn.functional.conv1d(x, torch.randn(1, 1, k), padding="same",
                                          dilation=d).shape[-1] == 9
    with pytest.raises(ValueError, match="'padding'"):
        W.parse_padding("conv2d", "same", 2, (3, 3), (1, 1), (2, 1))


@settings(max_examples=examples(3))
@given(L=st.integers(1, 12), k=st.integers(1, 4), s=st.integers(1, 3), d=st.integers(1, 2),
       p=st.integers(0, 2), ceil=st.booleans())
def test_output_size_matches_torch_pooling(L, k, s, d, p, ceil):
    if p > k // 2 or d * (k - 1) + 1 > L + 2 * p:
        return
    want = torch.nn.functional.max_pool1d(torch.zeros(1, 1, L), k, s, p, d,
                                          ceil_mode=ceil).shape[-1]
    assert W.output_size("max_pool1d", L, k, s, d, p, p, ceil) == want


@settings(max_examples=examples(2))
@given(shape=st.lists(st.integers(1, 6), min_size=1, max_size=3), data=st.data())
def test_offset_slices_agree_with_window_view(shape, data):
    n = len(shape)
    k = tuple(data.draw(st.integers(1, s)) for s in shape)
    s = tuple(data.draw(st.integers(1, 3)) for _ in shape)
    d = tuple(1 for _ in shape)
    x = np.random.default_rng(0).standard_normal((2,) + tuple(shape))
    view = W.window_view(x, k, s, d)                    # (2, *out, *k)
    out = view.shape[1:1 + n]
    for off, sl in W.offset_slices(k, s, d, out):
        np.testing.assert_array_equal(x[(Ellipsis,) + sl], view[(Ellipsis,) + off])
    assert not view.flags.writeable


def test_pad_and_unpad_are_adjoint():
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    pads = ((1, 2), (0, 3))
    xp = W.pad(x, pads)
    assert xp.shape == (2, 3, 7, 8)
    np.testing.assert_array_equal(W.unpad(xp, pads), x)
    assert W.pad(x, ((0, 0), (0, 0))) is x


# -- randomness -------------------------------------------------------------------------------
def test_manual_seed_is_reproducible():
    a = snn.manual_seed(7).random(3)
    b = snn.manual_seed(7).random(3)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(TypeError, match="'seed'"):
        snn.manual_seed(1.5)


def _readme_cube():
    """The README's cube, without a power_hint: ``x ** 3`` of a 0-d array is a NumPy scalar."""
    def cube_forward(x):
        return x ** 3, (x,)

    def cube_backward(ctx, dy):
        (x,) = ctx
        return 3 * x ** 2 * dy

    return snn.defop(cube_forward, cube_backward, name="cube")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_zero_d_inputs_give_zero_d_arrays(dtype):
    cube = _readme_cube()
    x = np.array(0.5, dtype)
    y = cube(x)
    assert isinstance(y, np.ndarray) and y.shape == () and y.dtype == dtype
    out, pullback = snn.vjp(cube, x)
    assert isinstance(out, np.ndarray) and out.shape == () and out.dtype == dtype
    (dx,) = pullback(np.array(2.0, dtype))
    assert isinstance(dx, np.ndarray) and dx.shape == () and dx.dtype == dtype
    assert float(dx) == pytest.approx(3 * 0.25 * 2.0)
    (dx2,) = pullback(2.0)                          # a scalar dout for a 0-d output
    assert float(dx2) == float(dx)


def test_zero_d_cube_passes_gradcheck_and_failures_name_the_element():
    cube = _readme_cube()
    assert snn.gradcheck(cube, (np.array(0.5),))
    assert snn.gradcheck(cube, (np.float64(0.5),))          # a NumPy scalar is a 0-d array
    wrong = snn.defop(cube.forward, lambda ctx, dy: 2 * ctx[0] * dy, name="wrong")
    with pytest.raises(snn.GradcheckError, match=r"input 0 \('x'\).*analytic 1, numeric 0.75"):
        snn.gradcheck(wrong, (np.array(0.5),))


def test_gradcheck_of_an_op_without_float_output_is_a_clear_error():
    def argmax_forward(x):
        return np.argmax(x), None

    op = snn.defop(argmax_forward, lambda ctx, dy: None, name="argmax")
    with pytest.raises(TypeError, match="gradcheck\\(argmax\\).*no floating-point"):
        snn.gradcheck(op, (np.arange(3.0),))


def test_a_backward_returning_a_non_array_is_named():
    op = snn.defop(lambda x: (x * 2, None), lambda ctx, dy: "oops", name="bad")
    _, pullback = snn.vjp(op, np.ones(3))
    with pytest.raises(RuntimeError, match="bad: backward returned a str for argument 0"):
        pullback(np.ones(3))
