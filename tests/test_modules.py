"""Forward-only custom Modules and torch's module contract (issue #16).

* The book's ConvNet, a residual block and a two-branch model, each written forward-only, equal
  torch: outputs, input gradients and every parameter gradient, float32 and float64.
* The replay refuses what it cannot see (a NumPy call on a tracked value), a second backward
  without a new forward, and names the layer's path in errors.
* Loss modules give the target's gradient where torch does; modules with several outputs take a
  backward mirroring them; forwards take torch's keyword names; pooling takes one-element tuples.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import scratchnn as snn
import scratchnn.functional as F
import scratchnn.nn as nn
from benchmarks.book import ConvNet, TorchConvNet
from reference.bridge import state_dict_to_numpy

TF = torch.nn.functional
DTYPES = {"float32": (np.float32, torch.float32), "float64": (np.float64, torch.float64)}
TOL = {"float32": dict(rtol=1e-4, atol=2e-5), "float64": dict(rtol=1e-9, atol=1e-10)}


# -- the book's ConvNet, as the book writes it (only the imports changed): benchmarks/book.py,
# the class `python -m benchmarks.train --model book` trains; TorchConvNet is the book's torch code


# -- a residual block and a two-branch model ---------------------------------------------------
class Residual(nn.Module):
    """relu(x + conv2(relu(conv1(x)))), then the same block's conv1 once more (a layer used
    twice), a residual of a residual, and a transpose/permute/indexing head."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 3, 3, padding=1)
        self.conv2 = nn.Conv2d(3, 3, 3, padding=1)
        self.fc = nn.Linear(4, 5)

    def forward(self, x):
        h = F.relu(self.conv1(x))
        h = self.conv2(h)
        x = F.relu(x + h)
        x = x + 0.5 * self.conv1(x)                     # conv1 a second time
        x = x.transpose(2, 3).permute(0, 2, 1, 3)       # (N, W, C, H)
        x = x[:, 1:, :, :]                              # indexing
        return self.fc(x)


class TorchResidual(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 3, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(3, 3, 3, padding=1)
        self.fc = torch.nn.Linear(4, 5)

    def forward(self, x):
        h = self.conv2(TF.relu(self.conv1(x)))
        x = TF.relu(x + h)
        x = x + 0.5 * self.conv1(x)
        x = x.transpose(2, 3).permute(0, 2, 1, 3)
        return self.fc(x[:, 1:, :, :])


class TwoBranch(nn.Module):
    """Two branches from one input, joined by cat, stack, element-wise products and
    quotients; a reshape and view; a Sequential inside; two outputs."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(6, 4)
        self.b = nn.Sequential(nn.Linear(6, 4), nn.Tanh())
        self.head = nn.Linear(8, 3)

    def forward(self, input, scale):
        a = F.sigmoid(self.a(input))
        b = self.b(input)
        joined = snn.cat((a, b * scale), dim=1)                   # (N, 8)
        s = snn.stack([a, b], dim=2).reshape(a.shape[0], -1)      # (N, 8)
        y = self.head(joined - s / 3.0)
        z = snn.mul(a, b).view(-1, 2, 2).flatten(1) + a.T.T
        return y, z


class TorchTwoBranch(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(6, 4)
        self.b = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.Tanh())
        self.head = torch.nn.Linear(8, 3)

    def forward(self, input, scale):
        a = torch.sigmoid(self.a(input))
        b = self.b(input)
        joined = torch.cat((a, b * scale), dim=1)
        s = torch.stack([a, b], dim=2).reshape(a.shape[0], -1)
        y = self.head(joined - s / 3.0)
        z = torch.mul(a, b).view(-1, 2, 2).flatten(1) + a.T.T
        return y, z


def _pair(ours_cls, theirs_cls, td):
    torch.manual_seed(0)
    theirs = theirs_cls().to(td)
    ours = ours_cls()
    ours.load_state_dict(state_dict_to_numpy(theirs))     # the torch keys load as they are
    return ours.to(DTYPES["float64"][0] if td == torch.float64 else np.float32), theirs


def _check_grads(ours, theirs, dtype):
    named = dict(theirs.named_parameters())
    assert sorted(n for n, _ in ours.named_parameters()) == sorted(named)
    for name, p in ours.named_parameters():
        assert p.grad is not None and p.grad.dtype == p.dtype, name
        np.testing.assert_allclose(p.grad, named[name].grad.numpy(), **TOL[dtype],
                                   err_msg=name)


@pytest.mark.parametrize("dtype", sorted(DTYPES))
def test_book_convnet_equals_torch(dtype):
    npd, td = DTYPES[dtype]
    ours, theirs = _pair(ConvNet, TorchConvNet, td)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.eval(), theirs.eval()                       # dropout is the identity: same values
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 1, 28, 28)).astype(npd)
    target = np.array([3, 0, 9])
    crit = nn.NLLLoss()
    out = ours(x)
    loss = crit(out, target)
    dx = ours.backward(crit.backward())              # the line that starts the backward
    tx = torch.tensor(x, requires_grad=True)
    tout = theirs(tx)
    tloss = TF.nll_loss(tout, torch.tensor(target))
    tloss.backward()
    assert out.dtype == dx.dtype == npd and type(out) is np.ndarray
    np.testing.assert_allclose(out, tout.detach().numpy(), **TOL[dtype])
    np.testing.assert_allclose(loss, tloss.item(), **TOL[dtype])
    np.testing.assert_allclose(dx, tx.grad.numpy(), **TOL[dtype])
    _check_grads(ours, theirs, dtype)


def test_book_convnet_trains_with_dropout_as_the_replay_of_its_layers():
    """In training mode the dropout masks are random; the replay must use the masks of this
    forward: checked against the same chain of explicit backwards."""
    m = ConvNet()
    snn.manual_seed(3)
    x = np.random.default_rng(1).standard_normal((2, 1, 28, 28)).astype(np.float32)
    out = m(x)
    d = np.random.default_rng(2).standard_normal(out.shape).astype(np.float32)
    dx = m.backward(d)
    grads = {n: p.grad.copy() for n, p in m.named_parameters()}
    m.zero_grad()
    snn.manual_seed(3)                               # the same masks, by hand
    chain = [m.cn1, nn.ReLU(), m.cn2, nn.ReLU(), nn.MaxPool2d(2), m.dp1, nn.Flatten(), m.fc1,
             nn.ReLU(), m.dp2, m.fc2, nn.LogSoftmax(dim=1)]
    seq = nn.Sequential(*chain)
    np.testing.assert_array_equal(seq(x), out)
    np.testing.assert_allclose(seq.backward(d), dx, rtol=1e-6, atol=1e-7)
    for n, p in m.named_parameters():
        np.testing.assert_allclose(p.grad, grads[n], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("dtype", sorted(DTYPES))
def test_residual_block_equals_torch(dtype):
    npd, td = DTYPES[dtype]
    ours, theirs = _pair(Residual, TorchResidual, td)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 4, 4)).astype(npd)
    y = ours(x)
    dy = rng.standard_normal(y.shape).astype(npd)
    dx = ours.backward(dy)
    tx = torch.tensor(x, requires_grad=True)
    ty = theirs(tx)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, ty.detach().numpy(), **TOL[dtype])
    np.testing.assert_allclose(dx, tx.grad.numpy(), **TOL[dtype])
    _check_grads(ours, theirs, dtype)


@pytest.mark.parametrize("dtype", sorted(DTYPES))
def test_two_branch_model_equals_torch(dtype):
    npd, td = DTYPES[dtype]
    ours, theirs = _pair(TwoBranch, TorchTwoBranch, td)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 6)).astype(npd)
    scale = rng.standard_normal((1, 4)).astype(npd)              # broadcast along the batch
    y, z = ours(x, scale=scale)                                   # a keyword input too
    dy, dz = (rng.standard_normal(a.shape).astype(npd) for a in (y, z))
    dx, dscale = ours.backward(dy, dz)
    tx, ts = (torch.tensor(a, requires_grad=True) for a in (x, scale))
    ty, tz = theirs(tx, ts)
    torch.autograd.backward((ty, tz), (torch.tensor(dy), torch.tensor(dz)))
    np.testing.assert_allclose(y, ty.detach().numpy(), **TOL[dtype])
    np.testing.assert_allclose(z, tz.detach().numpy(), **TOL[dtype])
    np.testing.assert_allclose(dx, tx.grad.numpy(), **TOL[dtype])
    np.testing.assert_allclose(dscale, ts.grad.numpy(), **TOL[dtype])
    assert dx.dtype == dscale.dtype == npd
    _check_grads(ours, theirs, dtype)
    ours.zero_grad()                                 # None for an output: no gradient from it
    ours(x, scale)
    dx_y_only = ours.backward(dy, None)[0]
    tx.grad = None
    theirs(tx, ts)[0].backward(torch.tensor(dy))
    np.testing.assert_allclose(dx_y_only, tx.grad.numpy(), **TOL[dtype])


def test_parameters_used_directly_and_nested_custom_modules():
    """A Parameter passed to an op is tracked (its .data is a constant, as torch's); a custom
    module inside a custom module and inside a Sequential both replay."""

    class Scale(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(np.array([[1.5, -2.0, 0.5]]))
            self.lin = nn.Linear(3, 3, dtype=np.float64)

        def forward(self, x):
            return F.linear(x, self.lin.weight, self.lin.bias) * self.w - x * 0.25

    class Outer(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = Scale()
            self.seq = nn.Sequential(Scale(), nn.ReLU())

        def forward(self, x):
            return self.seq(self.inner(x)) + self.inner(x)

    m = Outer()
    x = np.random.default_rng(4).standard_normal((2, 3))
    params = [p.data for p in m.parameters()]

    def f(x, *ps):
        for p, v in zip(m.parameters(), ps):
            p.data = v
        return m(x)

    dy = np.random.default_rng(5).standard_normal((2, 3))
    y = f(x, *params)
    dx = m.backward(dy)
    eps = 1e-6
    for arr, g in [(x, dx)] + [(p.data, p.grad) for p in m.parameters()]:
        num = np.zeros_like(arr)
        for i in np.ndindex(arr.shape):
            old = arr[i]
            arr[i] = old + eps
            up = (f(x, *params) * dy).sum()
            arr[i] = old - eps
            dn = (f(x, *params) * dy).sum()
            arr[i] = old
            num[i] = (up - dn) / (2 * eps)
        np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-7)
    assert y.shape == (2, 3)


def test_input_grad_false_gives_the_same_parameter_grads():
    m = ConvNet().eval()
    x = np.random.default_rng(6).standard_normal((2, 1, 28, 28)).astype(np.float32)
    d = np.random.default_rng(7).standard_normal((2, 10)).astype(np.float32)
    m(x)
    m.backward(d)
    g = {n: p.grad.copy() for n, p in m.named_parameters()}
    m.zero_grad()
    m(x)
    assert m.backward(d, input_grad=False) is None
    for n, p in m.named_parameters():
        np.testing.assert_array_equal(p.grad, g[n])


# -- what the replay refuses -------------------------------------------------------------------
def _model(body):
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 3, dtype=np.float64)

        def forward(self, x):
            return body(self.fc(x))
    return M()


@pytest.mark.parametrize("body, name", [
    (lambda h: np.exp(h), "numpy.exp"),
    (lambda h: np.concatenate([h, h], axis=1), "numpy.concatenate"),
    (lambda h: h.copy(), "ndarray.copy"),
    (lambda h: h.sum(axis=1), "numpy.add.reduce"),
    (lambda h: h @ h, "numpy.matmul"),
    (lambda h: h.astype(np.float32), "ndarray.astype"),
])
def test_an_untracked_numpy_operation_raises_naming_it(body, name):
    m = _model(body)
    with pytest.raises(nn.UntrackedOperationError, match=name.replace(".", r"\.")):
        m(np.ones((2, 3)))


def test_in_place_updates_and_unseen_values_raise():
    def inplace(h):
        h += 1.0
        return h

    with pytest.raises(nn.UntrackedOperationError, match="in-place"):
        _model(inplace)(np.ones((2, 3)))

    def setitem(h):
        h[0] = 0.0
        return h

    with pytest.raises(nn.UntrackedOperationError, match="in-place"):
        _model(setitem)(np.ones((2, 3)))
    with pytest.raises(nn.UntrackedOperationError, match="no recorded op produced"):
        _model(lambda h: F.relu(np.ndarray.__getitem__(h, slice(None))))(np.ones((2, 3)))


def test_constants_comparisons_and_detach_are_allowed():
    def body(h):
        mask = h > 0                                  # a comparison: no gradient to lose
        c = np.asarray(h)                             # a constant, as torch's detach()
        return h * mask.astype(h.dtype) + np.exp(c) * 0.0
    m = _model(body)
    y = m(np.ones((2, 3)))
    m.backward(np.ones_like(y))
    assert m.fc.weight.grad is not None


def test_backward_twice_raises_unless_retain_graph():
    m = _model(F.tanh)
    x = np.random.default_rng(8).standard_normal((2, 3))
    d = np.ones((2, 3))
    m(x)
    dx1 = m.backward(d, retain_graph=True)
    g1 = m.fc.weight.grad.copy()
    dx2 = m.backward(d)                                            # the kept recording
    np.testing.assert_allclose(dx2, dx1)
    np.testing.assert_allclose(m.fc.weight.grad, 2 * g1)           # accumulated, as torch
    with pytest.raises(RuntimeError, match="second time"):
        m.backward(d)
    m(x)                                                           # a new forward: fine again
    m.backward(d)
    seq = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.LSTMCell(2, 2), nn.MSELoss())
    assert all("retain_graph" in __import__("inspect").signature(m.backward).parameters
               for m in seq)                                       # torch's spelling accepted
    outer = _model(lambda h: seq[1](h))                            # a layer inside a model:
    outer(x)                                                       # freed with the model's tape
    outer.backward(d)
    with pytest.raises(RuntimeError, match="second time"):
        outer.backward(d)
    with pytest.raises(RuntimeError, match="before forward"):
        _model(F.tanh).backward(d)


def _leaves(g):
    """The arrays in a nested tuple of gradients (None left out)."""
    if isinstance(g, (tuple, list)):
        return [a for e in g for a in _leaves(e)]
    return [] if g is None else [g]


@pytest.mark.parametrize("make, x_shape, douts", [
    (lambda: nn.Linear(3, 2), (4, 3), lambda d: (d,)),
    (lambda: nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Flatten()), (4, 3), lambda d: (d,)),
    (lambda: nn.Flatten(), (4, 3), lambda d: (d,)),
    (lambda: nn.LSTMCell(3, 2), (4, 3), lambda d: (d, None)),
    (lambda: nn.GRU(3, 2), (5, 4, 3), lambda d: (d, None)),
    (lambda: nn.MaxPool1d(2, return_indices=True), (4, 3, 6), lambda d: (d, None)),
])
def test_built_in_layers_refuse_a_second_backward_unless_retain_graph(make, x_shape, douts):
    """As torch: a backward frees what the forward saved; retain_graph=True keeps it (and the
    second call adds into .grad again); a new forward saves it anew."""
    m = make()
    rng = np.random.default_rng(11)
    x = rng.standard_normal(x_shape)
    m.to(np.float64)
    out = m(x)
    first = out[0] if isinstance(out, tuple) else out
    d = douts(rng.standard_normal(first.shape))
    g1 = m.backward(*d, retain_graph=True)
    grads = {n: p.grad.copy() for n, p in m.named_parameters()}
    g2 = m.backward(*d)
    for a, b in zip(_leaves(g1), _leaves(g2)):
        np.testing.assert_array_equal(a, b)
    for n, p in m.named_parameters():
        np.testing.assert_allclose(p.grad, 2 * grads[n], err_msg=n)
    with pytest.raises(RuntimeError, match=r"^\w+\.backward\(\).*second time.*retain_graph=True"):
        m.backward(*d)
    m(x)
    m.backward(*d)                                                 # a new forward: fine again


def test_errors_inside_a_model_name_the_layer_path():
    m = ConvNet()                                                  # float32 parameters
    with pytest.raises(TypeError, match=r"^cn1 \(Conv2d\): conv2d\(\).*dtype"):
        m(np.zeros((1, 1, 28, 28)))                                # float64 input
    with pytest.raises(ValueError, match=r"^fc1 \(Linear\): linear\(\)"):
        m(np.zeros((1, 1, 30, 30), np.float32))                    # 5408 features, not 4608
    seq = nn.Sequential(nn.Linear(3, 4), nn.Sequential(nn.ReLU(), nn.Linear(5, 2)))
    with pytest.raises(ValueError, match=r"^1\.1 \(Linear\): linear\(\)"):
        seq(np.zeros((2, 3), np.float32))
    with pytest.raises(TypeError, match=r"^linear\(\)"):            # a layer alone: no path
        nn.Linear(3, 4)(np.zeros((2, 3)))


# -- the contract: target gradients, several outputs, keyword forwards, one-element tuples -----
def _probs(rng, shape):
    e = np.exp(rng.standard_normal(shape))
    return e / e.sum(axis=1, keepdims=True)


LOSSES = [
    ("MSELoss", {}, lambda r: r.standard_normal((3, 4))),
    ("L1Loss", {}, lambda r: r.standard_normal((3, 4))),
    ("SmoothL1Loss", {"beta": 0.5}, lambda r: r.standard_normal((3, 4))),
    ("HuberLoss", {"delta": 0.7}, lambda r: r.standard_normal((3, 4))),
    ("KLDivLoss", {"reduction": "batchmean"}, lambda r: _probs(r, (3, 4))),
    ("KLDivLoss", {"log_target": True, "reduction": "sum"}, lambda r: np.log(_probs(r, (3, 4)))),
    ("CrossEntropyLoss", {"label_smoothing": 0.1}, lambda r: _probs(r, (3, 4))),
    ("BCEWithLogitsLoss", {}, lambda r: r.uniform(0, 1, (3, 4))),
    ("MSELoss", {"reduction": "none"}, lambda r: r.standard_normal((3, 4))),
]


@pytest.mark.parametrize("dtype", sorted(DTYPES))
@pytest.mark.parametrize("name, kw, target", LOSSES, ids=lambda v: str(v)[:24])
def test_loss_modules_give_the_target_gradient_like_torch(name, kw, target, dtype):
    npd, td = DTYPES[dtype]
    rng = np.random.default_rng(9)
    x = rng.standard_normal((3, 4)).astype(npd)
    if name == "KLDivLoss":
        x = np.log(_probs(rng, (3, 4))).astype(npd)
    t = target(rng).astype(npd)
    crit = getattr(nn, name)(**kw)
    loss = crit(x, t)
    dloss = np.ones_like(loss) if loss.ndim else None
    dx, dt = crit.backward(dloss, target_grad=True, retain_graph=True)
    np.testing.assert_array_equal(crit.backward(dloss), dx)      # the one-line idiom
    tx, tt = (torch.tensor(a, requires_grad=True) for a in (x, t))
    tl = getattr(torch.nn, name)(**kw)(tx, tt)
    tl.backward(torch.ones_like(tl))
    np.testing.assert_allclose(loss, tl.detach().numpy(), **TOL[dtype])
    np.testing.assert_allclose(dx, tx.grad.numpy(), **TOL[dtype])
    assert dt is not None and dt.dtype == npd
    np.testing.assert_allclose(dt, tt.grad.numpy(), **TOL[dtype])


def test_losses_without_a_target_gradient_return_none():
    x = np.random.default_rng(10).standard_normal((3, 4))
    crit = nn.CrossEntropyLoss()
    crit(x, np.array([0, 3, 1]))
    dx, dt = crit.backward(target_grad=True)
    assert dt is None and dx.shape == x.shape


def test_a_loss_inside_a_forward_only_model_sends_the_target_gradient():
    class Distill(nn.Module):
        def __init__(self):
            super().__init__()
            self.student = nn.Linear(4, 3, dtype=np.float64)
            self.teacher = nn.Linear(4, 3, dtype=np.float64)
            self.crit = nn.MSELoss()

        def forward(self, x):
            return self.crit(self.student(x), F.tanh(self.teacher(x)))

    m = Distill()
    x = np.random.default_rng(11).standard_normal((5, 4))
    m(x)
    m.backward()                                                   # a 0-d output: d = 1
    tx = torch.tensor(x)
    ws = {k: torch.tensor(v, requires_grad=True) for k, v in m.state_dict().items()}
    tl = TF.mse_loss(TF.linear(tx, ws["student.weight"], ws["student.bias"]),
                     torch.tanh(TF.linear(tx, ws["teacher.weight"], ws["teacher.bias"])))
    tl.backward()
    for k, p in m.named_parameters():
        np.testing.assert_allclose(p.grad, ws[k].grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("ours, theirs", [
    (nn.MaxPool2d(2, return_indices=True), torch.nn.MaxPool2d(2, return_indices=True)),
    (nn.AdaptiveMaxPool2d(3, return_indices=True),
     torch.nn.AdaptiveMaxPool2d(3, return_indices=True)),
    (nn.MaxPool1d(3, 2, return_indices=True), torch.nn.MaxPool1d(3, 2, return_indices=True)),
])
def test_pooling_with_indices_takes_a_backward_mirroring_both_outputs(ours, theirs):
    rng = np.random.default_rng(12)
    shape = (2, 3, 7) if isinstance(ours, nn.MaxPool1d) else (2, 3, 6, 6)
    x = rng.standard_normal(shape)
    y, idx = ours(x)
    dy = rng.standard_normal(y.shape)
    dx = ours.backward(dy, None)
    tx = torch.tensor(x, requires_grad=True)
    ty, tidx = theirs(tx)
    ty.backward(torch.tensor(dy))
    np.testing.assert_array_equal(idx, tidx.numpy())
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match="dindices"):
        ours.backward(dy, np.zeros_like(idx))


def test_lstm_cell_takes_a_backward_mirroring_h_and_c():
    torch.manual_seed(0)
    tcell = torch.nn.LSTMCell(3, 4).double()
    cell = nn.LSTMCell(3, 4, dtype=np.float64)
    cell.load_state_dict(state_dict_to_numpy(tcell))
    rng = np.random.default_rng(13)
    x, h, c = rng.standard_normal((2, 3)), rng.standard_normal((2, 4)), rng.standard_normal((2, 4))
    dh, dc = rng.standard_normal((2, 4)), rng.standard_normal((2, 4))
    for douts in [(dh, dc), (dh, None), (None, dc)]:
        cell.zero_grad()
        cell(x, (h, c))
        dx, (dh0, dc0) = cell.backward(*douts)
        tx, th, tc = (torch.tensor(a, requires_grad=True) for a in (x, h, c))
        tcell.zero_grad()
        h1, c1 = tcell(tx, (th, tc))
        outs = [(o, torch.tensor(d)) for o, d in zip((h1, c1), douts) if d is not None]
        torch.autograd.backward([o for o, _ in outs], [d for _, d in outs])
        for ours, theirs in ((dx, tx), (dh0, th), (dc0, tc)):
            np.testing.assert_allclose(ours, theirs.grad.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(cell.weight_ih.grad, tcell.weight_ih.grad.numpy(),
                                   rtol=1e-10, atol=1e-12)
    cell(x, (h, c))
    with pytest.raises(TypeError, match="LSTMCell.backward"):
        cell.backward(dh, dc, dc)


@pytest.mark.parametrize("make, args, kwargs", [
    (lambda: nn.Linear(3, 4, dtype=np.float64), (), {"input": "x"}),
    (lambda: nn.ReLU(), (), {"input": "x"}),
    (lambda: nn.Dropout(0.5).eval(), (), {"input": "x"}),
    (lambda: nn.Flatten(), (), {"input": "x"}),
    (lambda: nn.Sequential(nn.Linear(3, 2, dtype=np.float64)), (), {"input": "x"}),
    (lambda: nn.MSELoss(), (), {"input": "x", "target": "x"}),
    (lambda: nn.LSTMCell(3, 2, dtype=np.float64), (), {"input": "x", "hx": None}),
    (lambda: nn.GRU(3, 2, dtype=np.float64), (), {"input": "x3"}),
    (lambda: nn.Conv1d(2, 2, 1, dtype=np.float64), (), {"input": "x"}),
    (lambda: nn.MaxPool1d(1), (), {"input": "x"}),
])
def test_forwards_accept_torch_keyword_names(make, args, kwargs):
    x = np.random.default_rng(14).standard_normal((2, 3))
    if isinstance(make(), nn.Conv1d) or isinstance(make(), nn.MaxPool1d):
        x = x[:, :2, None].copy()
    vals = {"x": x, "x3": x[None], None: None}
    kw = {k: vals[v] for k, v in kwargs.items()}
    m1, m2 = make(), make()
    m2.load_state_dict(m1.state_dict())
    pos, key = m1(*kw.values()), m2(**kw)
    flat = lambda v: [e for a in v for e in flat(a)] if isinstance(v, tuple) else [v]  # noqa: E731
    for a, b in zip(flat(pos), flat(key), strict=True):
        np.testing.assert_array_equal(a, b)


def test_pooling_accepts_one_element_tuples_like_torch():
    x = np.random.default_rng(15).standard_normal((1, 2, 6, 6))
    tx = torch.tensor(x)
    np.testing.assert_allclose(F.avg_pool2d(x, 3, 1, (1,)),
                               TF.avg_pool2d(tx, 3, 1, (1,)).numpy(), rtol=1e-12)
    np.testing.assert_allclose(snn.textbook.max_pool2d(x, (3,), (2,), (1,)),
                               TF.max_pool2d(tx, (3,), (2,), (1,)).numpy(), rtol=1e-12)
    np.testing.assert_allclose(nn.AvgPool2d((2,), stride=(1,))(x),
                               torch.nn.AvgPool2d((2,), stride=(1,))(tx).numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match="padding"):
        F.avg_pool2d(x, 3, 1, (1, 1, 1))


def test_a_hand_written_backward_is_never_replaced():
    class Double(nn.Module):
        def forward(self, x):
            return x * 2.0

        def backward(self, dy):
            return dy * 2.0

    m = Double()
    x = np.ones(3)
    assert type(m(x)) is np.ndarray
    np.testing.assert_array_equal(m.backward(np.ones(3)), 2.0 * np.ones(3))
    assert not Double._traced and not nn.Linear._traced


class Recurrent(nn.Module):
    """An LSTM (two outputs, one a tuple) and a pooling layer with indices inside a
    forward-only model: the replay hands each layer a backward mirroring its outputs."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 4, dtype=np.float64)
        self.pool = nn.MaxPool1d(2, return_indices=True)
        self.unpool = nn.MaxUnpool1d(2)

    def forward(self, x, h0, c0):
        out, (h, c) = self.lstm(x, (h0, c0))                      # (T, B, 4)
        p, idx = self.pool(out.permute(1, 2, 0))                  # (B, 4, T/2)
        u = self.unpool(p, idx)                                   # (B, 4, T)
        return u + c.permute(1, 2, 0), h[0] * c[0]


class TorchRecurrent(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(3, 4)
        self.pool = torch.nn.MaxPool1d(2, return_indices=True)
        self.unpool = torch.nn.MaxUnpool1d(2)

    def forward(self, x, h0, c0):
        out, (h, c) = self.lstm(x, (h0, c0))
        p, idx = self.pool(out.permute(1, 2, 0))
        return self.unpool(p, idx) + c.permute(1, 2, 0), h[0] * c[0]


def test_layers_with_several_outputs_inside_a_forward_only_model():
    torch.manual_seed(1)
    theirs = TorchRecurrent().double()
    ours = Recurrent()
    ours.load_state_dict(state_dict_to_numpy(theirs))
    rng = np.random.default_rng(16)
    args = (rng.standard_normal((6, 2, 3)), rng.standard_normal((1, 2, 4)),
            rng.standard_normal((1, 2, 4)))
    outs = ours(*args)
    douts = [rng.standard_normal(o.shape) for o in outs]
    grads = ours.backward(*douts)
    targs = [torch.tensor(a, requires_grad=True) for a in args]
    touts = theirs(*targs)
    torch.autograd.backward(touts, [torch.tensor(d) for d in douts])
    for o, t in zip(outs, touts):
        np.testing.assert_allclose(o, t.detach().numpy(), rtol=1e-10, atol=1e-12)
    for g, t in zip(grads, targs):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-10, atol=1e-12)
    _check_grads(ours, theirs, "float64")


def test_a_layer_backward_returning_too_few_gradients_is_refused():
    """A hand-written layer whose backward returns dx alone, called with a second tracked
    input: the replay refuses rather than drop that input's gradient."""
    class Scale(nn.Module):
        def forward(self, x, s):
            self._s = s
            return x * s

        def backward(self, d):
            return d * self._s                                # no gradient for s

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = Scale()

        def forward(self, x):
            return self.scale(x, F.tanh(x))

    x = np.random.default_rng(12).standard_normal((2, 3))
    m = Model()
    m(x)
    with pytest.raises(nn.UntrackedOperationError, match=r"Scale.backward\(\).*argument 1"):
        m.backward(np.random.default_rng(13).standard_normal((2, 3)))
    class Const(Model):
        def forward(self, x):
            return self.scale(x, np.asarray(F.tanh(x)))       # a constant: fine
    c = Const()
    c(x)
    d = np.random.default_rng(13).standard_normal((2, 3))
    np.testing.assert_allclose(c.backward(d), d * np.tanh(x))
