"""Linear, Identity, Flatten, Unflatten and the Module machinery against torch.nn:
forward/backward with copied weights, ``.grad`` accumulation, state_dict keys/shapes and round
trips both ways, load_state_dict errors, a small MLP through Sequential, train/eval/zero_grad,
(named_)parameters, and torch's initialisation distribution."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import scratchnn.nn as nn
from reference.bridge import state_dict_to_numpy
from reference.values import batch_shapes, seeds
from tests.conftest import examples

DTYPES = {"float32": (np.float32, torch.float32), "float64": (np.float64, torch.float64)}
# float32: the harness policy's first tier (atol 1e-5: sums of ~10-sized terms cancelling to
# ~0.04 legitimately differ by a few 1e-6 between two float32 GEMMs)
TOL = {"float32": dict(rtol=2e-5, atol=1e-5), "float64": dict(rtol=1e-12, atol=1e-12)}


def torch_twin(ours: nn.Module, theirs: torch.nn.Module) -> None:
    """Give ``ours`` exactly ``theirs``'s weights (a torch state_dict as NumPy)."""
    ours.load_state_dict(state_dict_to_numpy(theirs))


@pytest.mark.parametrize("dtype", sorted(DTYPES))
@settings(max_examples=examples(1))
@given(fin=st.integers(1, 8), fout=st.integers(1, 8), bias=st.booleans(), seed=seeds,
       data=st.data())
def test_linear_matches_torch_forward_backward_and_accumulates(dtype, fin, fout, bias, seed,
                                                               data):
    npd, td = DTYPES[dtype]
    lead = data.draw(batch_shapes(max_lead=3), label="leading dims")
    rng = np.random.default_rng(seed)
    theirs = torch.nn.Linear(fin, fout, bias=bias, dtype=td)
    ours = nn.Linear(fin, fout, bias=bias, dtype=npd)
    torch_twin(ours, theirs)
    x = rng.standard_normal(lead + (fin,)).astype(npd)
    tx = torch.tensor(x, requires_grad=True)
    for _ in range(2):                                      # a second backward accumulates
        dy = rng.standard_normal(lead + (fout,)).astype(npd)
        y = ours(x)
        dx = ours.backward(dy)
        tx.grad = None
        theirs(tx).backward(torch.tensor(dy))
        assert y.dtype == dx.dtype == npd
        np.testing.assert_allclose(y, theirs(tx).detach().numpy(), **TOL[dtype])
        np.testing.assert_allclose(dx, tx.grad.numpy(), **TOL[dtype])
    for name, p in ours.named_parameters():
        tp = dict(theirs.named_parameters())[name]
        assert p.grad.dtype == npd
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), **TOL[dtype])


def test_state_dict_keys_shapes_and_round_trips_both_ways():
    for bias in (True, False):
        theirs, ours = torch.nn.Linear(5, 3, bias=bias), nn.Linear(5, 3, bias=bias)
        assert list(ours.state_dict()) == list(theirs.state_dict())
        assert {k: v.shape for k, v in ours.state_dict().items()} == \
            {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
        assert all(v.dtype == np.float32 for v in ours.state_dict().values())
        # torch -> ours
        torch_twin(ours, theirs)
        for k, v in theirs.state_dict().items():
            np.testing.assert_array_equal(ours.state_dict()[k], v.numpy())
        # ours -> torch
        ours2 = nn.Linear(5, 3, bias=bias, generator=np.random.default_rng(7))
        theirs.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in
                                ours2.state_dict().items()})
        for k, v in ours2.state_dict().items():
            np.testing.assert_array_equal(theirs.state_dict()[k].numpy(), v)
    # a nested model: Sequential's numbered keys
    t = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(6, 4), torch.nn.ReLU(),
                            torch.nn.Linear(4, 2), torch.nn.PReLU(2))
    o = nn.Sequential(nn.Flatten(), nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 2), nn.PReLU(2))
    assert list(o.state_dict()) == list(t.state_dict())
    torch_twin(o, t)
    x = np.random.default_rng(0).standard_normal((3, 2, 3)).astype(np.float32)
    np.testing.assert_allclose(o(x), t(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_load_state_dict_errors_name_the_problem():
    m = nn.Linear(4, 3)
    before = {k: v.copy() for k, v in m.state_dict().items()}
    with pytest.raises(KeyError, match="missing keys \\['bias'\\]"):
        m.load_state_dict({"weight": np.zeros((3, 4))})
    with pytest.raises(KeyError, match="unexpected keys \\['extra'\\]"):
        m.load_state_dict({"weight": np.zeros((3, 4)), "bias": np.zeros(3), "extra": 1})
    with pytest.raises(ValueError, match="'weight' has shape \\(4, 3\\), expected \\(3, 4\\)"):
        m.load_state_dict({"weight": np.zeros((4, 3)), "bias": np.zeros(3)})
    with pytest.raises(ValueError, match="'bias'"):
        m.load_state_dict({"weight": np.zeros((3, 4)), "bias": np.zeros(4)})
    for k, v in m.state_dict().items():                     # nothing half-loaded
        np.testing.assert_array_equal(v, before[k])
    m.load_state_dict({"weight": np.ones((3, 4))}, strict=False)
    assert np.all(m.weight.data == 1) and m.weight.dtype == np.float32


@pytest.mark.parametrize("dtype", sorted(DTYPES))
def test_sequential_mlp_backward_equals_torch_autograd(dtype):
    npd, td = DTYPES[dtype]
    rng = np.random.default_rng(3)
    t = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 16), torch.nn.GELU(),
                            torch.nn.Linear(16, 8), torch.nn.Tanh(), torch.nn.Linear(8, 5),
                            torch.nn.Unflatten(1, (5, 1)), torch.nn.LogSoftmax(dim=1)).to(td)
    o = nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.GELU(), nn.Linear(16, 8), nn.Tanh(),
                      nn.Linear(8, 5), nn.Unflatten(1, (5, 1)), nn.LogSoftmax(dim=1)).to(npd)
    torch_twin(o, t)
    x = rng.standard_normal((4, 3, 4)).astype(npd)
    dy = rng.standard_normal((4, 5, 1)).astype(npd)
    y = o(x)
    dx = o.backward(dy)
    tx = torch.tensor(x, requires_grad=True)
    ty = t(tx)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, ty.detach().numpy(), **TOL[dtype])
    np.testing.assert_allclose(dx, tx.grad.numpy(), **TOL[dtype])
    tgrads = {k: p.grad.numpy() for k, p in t.named_parameters()}
    assert [k for k, _ in o.named_parameters()] == list(tgrads)
    for k, p in o.named_parameters():
        assert p.grad.dtype == npd
        np.testing.assert_allclose(p.grad, tgrads[k], **TOL[dtype], err_msg=k)


class _Scaled(nn.OpModule):
    """y = 2x with a hand-written pullback that knows nothing of needs_input_grad."""

    def _call(self, x):
        return 2 * x, lambda dy: (2 * dy,)


@pytest.mark.parametrize("first", ["linear", "nested", "flatten", "custom"])
def test_sequential_backward_without_input_grad(first):
    """backward(dy, input_grad=False) returns None and gives every parameter the same gradient
    (a first one-op module or Sequential is told to skip its dx; any other first module still
    runs, its dx dropped)."""
    head = {"linear": [nn.Linear(6, 4)], "nested": [nn.Sequential(nn.Linear(6, 4))],
            "flatten": [nn.Flatten(), nn.Linear(6, 4)], "custom": []}[first]
    o = nn.Sequential(*head, nn.ReLU(), nn.Linear(4, 2))
    if first == "custom":                   # a learner's OpModule with its own pullback
        o = nn.Sequential(_Scaled(), nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 2))
    shape = (3, 6) if first != "flatten" else (3, 2, 3)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    dy = np.ones((3, 2), np.float32)
    o(x)
    assert o.backward(dy).shape == x.shape
    grads = [p.grad.copy() for p in o.parameters()]
    o.zero_grad()
    o(x)
    assert o.backward(dy, input_grad=False) is None
    for p, g in zip(o.parameters(), grads):
        np.testing.assert_array_equal(p.grad, g)


def test_train_eval_zero_grad_parameters():
    o = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Sequential(nn.Linear(4, 2)))
    t = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(),
                            torch.nn.Sequential(torch.nn.Linear(4, 2)))
    assert [k for k, _ in o.named_parameters()] == [k for k, _ in t.named_parameters()]
    assert [p.shape for p in o.parameters()] == [tuple(p.shape) for p in t.parameters()]
    assert all(m.training for m in o.modules())
    assert o.eval() is o and not any(m.training for m in o.modules())
    o.train()
    assert all(m.training for m in o.modules())
    x = np.ones((2, 3), np.float32)
    o.backward(np.ones_like(o(x)))
    assert all(p.grad is not None for p in o.parameters())
    o.zero_grad(set_to_none=False)
    assert all(np.all(p.grad == 0) for p in o.parameters())
    o.zero_grad()
    assert all(p.grad is None for p in o.parameters())


def test_linear_init_is_torchs_distribution_and_reproducible():
    fin, fout = 400, 300
    m = nn.Linear(fin, fout, generator=np.random.default_rng(0))
    bound = 1 / math.sqrt(fin)                     # kaiming_uniform_(a=√5) = U(±1/√fan_in)
    w, b = m.weight.data, m.bias.data
    assert w.dtype == b.dtype == np.float32
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    # U(−a, a): std a/√3; 120000 draws put the sample std within 1% and the mean near 0
    assert w.std() == pytest.approx(bound / math.sqrt(3), rel=0.01)
    assert abs(w.mean()) < 0.01 * bound
    assert np.abs(w).max() > 0.99 * bound                  # fills the interval
    t = torch.nn.Linear(fin, fout)                         # torch's own, same law
    assert float(t.weight.detach().std()) == pytest.approx(float(w.std()), rel=0.02)
    same = nn.Linear(fin, fout, generator=np.random.default_rng(0))
    np.testing.assert_array_equal(same.weight.data, w)
    np.testing.assert_array_equal(same.bias.data, b)
    other = nn.Linear(fin, fout, generator=np.random.default_rng(1))
    assert not np.array_equal(other.weight.data, w)
    assert nn.Linear(2, 3, dtype=np.float64).weight.dtype == np.float64
    assert nn.Linear(0, 3).bias.data.tolist() == [0.0, 0.0, 0.0]   # fan_in 0: bound 0


def test_linear_constructor_and_input_validation():
    with pytest.raises(ValueError, match="Linear.*in_features"):
        nn.Linear(-1, 3)
    with pytest.raises(TypeError, match="Linear.*out_features"):
        nn.Linear(3, 2.5)
    with pytest.raises(TypeError, match="Linear.*bias"):
        nn.Linear(3, 2, bias="yes")
    with pytest.raises(TypeError, match="Linear.*dtype"):
        nn.Linear(3, 2, dtype=np.int32)
    with pytest.raises(ValueError, match="Linear.*device"):
        nn.Linear(3, 2, device="cuda")
    with pytest.raises(TypeError, match="Linear.*generator"):
        nn.Linear(3, 2, generator=0)
    with pytest.raises(ValueError, match="linear.*weight"):
        nn.Linear(3, 2)(np.zeros((4, 5), np.float32))
    with pytest.raises(TypeError, match="linear.*weight"):       # nothing silently promoted
        nn.Linear(3, 2)(np.zeros((4, 3), np.float64))
    assert repr(nn.Linear(3, 2, bias=False)) == repr(torch.nn.Linear(3, 2, bias=False))


def test_identity():
    m = nn.Identity(54, unused="argument")
    x = np.arange(6.0).reshape(2, 3)
    assert m(x) is x and m.backward(x) is x and repr(m) == repr(torch.nn.Identity())


FLATTEN = [((2, 3, 4, 5), 1, -1), ((2, 3, 4, 5), 0, 2), ((2, 3, 4, 5), -2, -1),
           ((2, 3, 4, 5), 2, 2), ((0, 3, 4), 1, -1), ((), 0, -1), ((7,), 0, 0)]


@pytest.mark.parametrize("shape,start,end", FLATTEN)
def test_flatten_matches_torch(shape, start, end):
    rng = np.random.default_rng(0)
    x = np.asarray(rng.standard_normal(shape))
    theirs = torch.nn.Flatten(start, end)
    ours = nn.Flatten(start, end)
    assert repr(ours) == repr(theirs)
    tx = torch.tensor(x, requires_grad=True)
    ty = theirs(tx)
    y = ours(x)
    np.testing.assert_array_equal(y, ty.detach().numpy())
    dy = np.asarray(rng.standard_normal(y.shape))
    ty.backward(torch.tensor(dy))
    np.testing.assert_array_equal(ours.backward(dy), tx.grad.numpy())


UNFLATTEN = [((2, 6), 1, (2, 3)), ((2, 6), 1, (2, -1)), ((2, 6), -1, (-1, 1, 3)),
             ((12,), 0, (3, 4)), ((0, 6), 0, (2, -1)), ((4, 0), 1, (0, 5))]


@pytest.mark.parametrize("shape,dim,sizes", UNFLATTEN)
def test_unflatten_matches_torch(shape, dim, sizes):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape)
    theirs, ours = torch.nn.Unflatten(dim, sizes), nn.Unflatten(dim, sizes)
    assert repr(ours) == repr(theirs)
    tx = torch.tensor(x, requires_grad=True)
    ty = theirs(tx)
    y = ours(x)
    np.testing.assert_array_equal(y, ty.detach().numpy())
    dy = rng.standard_normal(y.shape)
    ty.backward(torch.tensor(dy))
    np.testing.assert_array_equal(ours.backward(dy), tx.grad.numpy())


def test_shape_module_errors():
    x = np.zeros((2, 3, 4))
    with pytest.raises(ValueError, match="Flatten.*start_dim"):
        nn.Flatten(2, 1)(x)
    with pytest.raises(ValueError, match="Flatten.*start_dim"):
        nn.Flatten()(np.zeros(3))                           # torch: dim 1 out of range
    with pytest.raises(ValueError, match="Unflatten.*unflattened_size"):
        nn.Unflatten(1, (2, -1))(x)                          # 3 is not divisible by 2
    with pytest.raises(ValueError, match="Unflatten.*unflattened_size"):
        nn.Unflatten(1, (-1, -1))
    with pytest.raises(ValueError, match="Unflatten.*dim"):
        nn.Unflatten(3, (2, 2))(x)
    with pytest.raises(TypeError, match="Unflatten.*unflattened_size"):
        nn.Unflatten(1, 3)
    with pytest.raises(RuntimeError, match="before forward"):
        nn.Flatten().backward(np.zeros(3))
    m = nn.Flatten()
    m(x)
    with pytest.raises(ValueError, match="Flatten.backward.*dout"):
        m.backward(np.zeros(5))
