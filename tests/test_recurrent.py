"""Recurrent family: RNN/LSTM/GRU modules and cells against torch.nn, beyond the registry.

The registry (reference/specs/recurrent.py, run by test_equivalence.py) covers the functional
cells and single-layer ops over their whole argument space. Here:

* every constructor combination of the modules (num_layers 1-3, bidirectional, proj_size,
  bias, batch_first, initial states given or not, lengths, relu) against torch.nn with copied
  weights, float32 and float64: outputs, final states, dx, dh0, dc0 and every parameter's grad
  for random upstream grads on the output and the final states;
* train mode: dropout between layers compared with torch fed the same masks, mask statistics,
  reproducibility; dropout=0 in train mode exactly torch's;
* cells vs torch.nn.*Cell; the fast layers vs the textbook's cell loops (lengths, reverse);
  gradcheck through modules; T=200; bad input; state_dict/init; cuda variants (cuDNN, TF32 off).
"""
from __future__ import annotations

import contextlib
import itertools
import math
import sys
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import scratchnn as snn
import scratchnn.functional as F
import scratchnn.nn as nn
import scratchnn.textbook as T
from reference.bridge import configure, state_dict_to_numpy
from reference.harness import within
from tests.conftest import examples

T_, B_, I_, H_, P_ = 4, 3, 3, 4, 2          # small sizes for the combination sweeps
TORCH_CLS = {"tanh": torch.nn.RNN, "relu": torch.nn.RNN, "gru": torch.nn.GRU,
             "lstm": torch.nn.LSTM}
OURS_CLS = {"tanh": nn.RNN, "relu": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


# -- helpers -------------------------------------------------------------------------------------

def _kwargs(mode: str, cfg: dict) -> dict:
    kw = {k: cfg[k] for k in ("num_layers", "bias", "batch_first", "bidirectional", "dropout")
          if k in cfg}
    if mode in ("tanh", "relu"):
        kw["nonlinearity"] = mode
    if cfg.get("proj_size"):
        kw["proj_size"] = cfg["proj_size"]
    return kw


def _pair(mode: str, cfg: dict, dtype: str, device: str = "cpu", seed: int = 0):
    """(ours, torch float64 module on device): torch's random init copied into ours."""
    torch.manual_seed(seed)
    tm = TORCH_CLS[mode](I_, H_, **_kwargs(mode, cfg)).double().to(device)
    ours = OURS_CLS[mode](I_, H_, dtype=dtype, **_kwargs(mode, cfg))
    ours.load_state_dict(state_dict_to_numpy(tm))
    return ours, tm


def _inputs(mode: str, cfg: dict, rng, T: int = T_, B: int = B_, unbatched: bool = False):
    """x, initial states (None when not given), lengths and upstream grads, all float64."""
    D, L = 2 if cfg.get("bidirectional") else 1, cfg.get("num_layers", 1)
    P = cfg.get("proj_size") or H_
    lead = (T,) if unbatched else ((B, T) if cfg.get("batch_first") else (T, B))
    sb = () if unbatched else (B,)
    x = rng.standard_normal(lead + (I_,))
    sizes = [P, H_] if mode == "lstm" else [P]
    states = [rng.standard_normal((D * L,) + sb + (s,)) for s in sizes] \
        if cfg.get("h0") else None
    lengths = None
    if cfg.get("lengths"):
        lengths = [int(v) for v in rng.integers(1, T + 1, B)]
        lengths[int(rng.integers(0, B))] = int(rng.integers(max(1, T - 1), T + 1))
    douts = [rng.standard_normal(lead + (D * P,))] + \
        [rng.standard_normal((D * L,) + sb + (s,)) for s in sizes]
    return x, states, lengths, douts


def _torch_forward(tm, mode, x, states, lengths, batch_first, device, dtype, n_states):
    """torch's outputs (out, h_n[, c_n]) and the leaf tensors (x, h0[, c0])."""
    tx = torch.tensor(x, dtype=dtype, device=device, requires_grad=True)
    D, L = (2 if tm.bidirectional else 1), tm.num_layers
    P = tm.proj_size or tm.hidden_size
    sb = x.shape[:1] if x.ndim == 2 else ((x.shape[0],) if batch_first else (x.shape[1],))
    sb = () if x.ndim == 2 else sb
    sizes = [P, tm.hidden_size][:n_states]
    if states is None:                         # torch's zero state, made a leaf for dh0
        states = [np.zeros((D * L,) + sb + (s,)) for s in sizes]
    ts = [torch.tensor(s, dtype=dtype, device=device, requires_grad=True) for s in states]
    inp = tx if lengths is None else pack_padded_sequence(
        tx, torch.tensor(lengths), batch_first=batch_first, enforce_sorted=False)
    out, hn = tm(inp, tuple(ts) if mode == "lstm" else ts[0])
    if lengths is not None:
        out, _ = pad_packed_sequence(out, batch_first=batch_first, total_length=x.shape[
            1 if batch_first else 0])
    outs = [out] + (list(hn) if mode == "lstm" else [hn])
    return outs, [tx] + ts


@contextlib.contextmanager
def _native_cpu_kernels():
    """torch's own CPU RNN kernels instead of oneDNN's: the same function, but oneDNN builds
    a primitive per call (~70 ms for a tiny LSTM), which would dominate the sweeps."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.backends.mkldnn.flags(enabled=False):
            yield


def torch_run(tm, mode, x, states, lengths, douts, batch_first, device="cpu",
              dtype=torch.float64):
    """Forward and backward in torch: ([out, h_n, c_n], {name: grad}) as NumPy."""
    tm = tm.to(dtype)
    n_states = 2 if mode == "lstm" else 1
    with _native_cpu_kernels():
        outs, leaves = _torch_forward(tm, mode, x, states, lengths, batch_first, device,
                                      dtype, n_states)
        params = dict(tm.named_parameters())
        grads = torch.autograd.grad(outs, leaves + list(params.values()),
                                    [torch.tensor(d, dtype=dtype, device=device)
                                     for d in douts])
    names = ["x", "h0", "c0"][:1 + n_states] + list(params)
    res = {n: g.detach().cpu().numpy() for n, g in zip(names, grads)}
    tm.double()
    return [o.detach().cpu().numpy() for o in outs], res


def ours_run(m, mode, x, states, lengths, douts, dtype):
    dt = np.dtype(dtype)
    hx = None
    if states is not None:
        hx = tuple(s.astype(dt) for s in states) if mode == "lstm" else states[0].astype(dt)
    xin = x.astype(dt)
    held = [xin] + ([] if hx is None else list(hx) if mode == "lstm" else [hx])
    before = [a.copy() for a in held]
    res = m(xin, hx, lengths=lengths)
    outs = [res[0]] + (list(res[1]) if mode == "lstm" else [res[1]])
    dd = [d.astype(dt) for d in douts]
    dx, dhx = m.backward(dd[0], tuple(dd[1:]) if mode == "lstm" else dd[1])
    grads = {"x": dx}
    grads.update(zip(["h0", "c0"], dhx if mode == "lstm" else (dhx,)))
    grads.update({k: p.grad for k, p in m.named_parameters()})
    assert all(np.array_equal(a, b) for a, b in zip(before, held)), "an input was modified"
    return outs, grads


def compare(m, tm, mode, x, states, lengths, douts, dtype, label, device="cpu"):
    """Ours vs torch with the harness's tolerance policy: float64 against torch float64;
    float32 against torch float32, else within 4× torch-float32's own error of the float64
    oracle (which gets the same float32-rounded weights and values)."""
    bf = m.batch_first
    if dtype == "float32":
        tm.float().double()
        x, douts = _round32(x), [_round32(d) for d in douts]
        states = None if states is None else [_round32(s) for s in states]
    o_ours, g_ours = ours_run(m, mode, x, states, lengths, douts, dtype)
    o_hi, g_hi = torch_run(tm, mode, x, states, lengths, douts, bf, device)
    o_same, g_same = (o_hi, g_hi) if dtype == "float64" else \
        torch_run(tm, mode, x, states, lengths, douts, bf, device, torch.float32)
    for k, (a, s, h) in enumerate(zip(o_ours, o_same, o_hi)):
        assert a.dtype == np.dtype(dtype), f"{label}: output {k} dtype {a.dtype}"
        ok, err = within(a, s, h, dtype, {})
        assert ok, f"{label}: output {k} differs from torch by {err:.3g}"
    assert set(g_ours) == set(g_hi), f"{label}: gradients {set(g_ours) ^ set(g_hi)}"
    for name in g_hi:
        g = g_ours[name]
        assert g is not None and g.dtype == np.dtype(dtype), f"{label}: grad {name}"
        ok, err = within(g, g_same[name], g_hi[name], dtype, {})
        assert ok, f"{label}: grad of {name} differs from torch by {err:.3g}"


def _round32(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float32).astype(np.float64)


def _configs(mode: str, num_layers: int):
    keys = ["bidirectional", "bias", "batch_first", "h0", "lengths"]
    projs = (0, P_) if mode == "lstm" else (0,)
    for vals in itertools.product([False, True], repeat=len(keys)):
        for proj in projs:
            yield dict(zip(keys, vals), num_layers=num_layers, proj_size=proj)


# -- every constructor combination, eval and train (dropout=0), float32/float64 ----------------

@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("mode", ["tanh", "relu", "gru", "lstm"])
def test_module_matches_torch_every_combination(mode, num_layers, dtype):
    rng = np.random.default_rng(num_layers)
    for i, cfg in enumerate(_configs(mode, num_layers)):
        if dtype == "float32" and (i // 2) % 2:   # float32: half the sweep (still every flag
            continue                               # value, train and eval); float64: all
        m, tm = _pair(mode, cfg, dtype, seed=i)
        if i % 2:                              # train mode with dropout=0 is eval mode
            m.train(), tm.train()
        else:
            m.eval(), tm.eval()
        x, states, lengths, douts = _inputs(mode, cfg, rng)
        compare(m, tm, mode, x, states, lengths, douts, dtype, f"{mode} {cfg} {dtype}")


@pytest.mark.parametrize("mode", ["tanh", "gru", "lstm"])
def test_unbatched_input(mode):
    rng = np.random.default_rng(1)
    for cfg in [dict(num_layers=2, bidirectional=True, h0=True),
                dict(num_layers=1, h0=False, batch_first=True, proj_size=P_ * (mode == "lstm"))]:
        m, tm = _pair(mode, cfg, "float64")
        x, states, _, douts = _inputs(mode, cfg, rng, unbatched=True)
        compare(m, tm, mode, x, states, None, douts, "float64", f"unbatched {mode} {cfg}")


def test_none_upstream_grads_and_grad_accumulation():
    """backward(dout, None) and backward(None, (dh_n, None)) are zeros where None; grads add up."""
    rng = np.random.default_rng(2)
    cfg = dict(num_layers=2, bidirectional=True)
    m, tm = _pair("lstm", cfg, "float64")
    x, _, _, (dy, dh, dc) = _inputs("lstm", cfg, rng)
    m(x)
    dx1, (dh1, dc1) = m.backward(dy, None)
    g1 = {k: p.grad.copy() for k, p in m.named_parameters()}
    m.zero_grad()
    m(x)
    dx2, _ = m.backward(dy, (np.zeros_like(dh), np.zeros_like(dc)))
    np.testing.assert_array_equal(dx1, dx2)
    m(x)
    m.backward(None, (dh, None))                           # accumulates into .grad
    _, g_t = torch_run(tm, "lstm", x, None, None, [np.zeros_like(dy), dh, np.zeros_like(dc)],
                       False)
    for k, p in m.named_parameters():
        np.testing.assert_allclose(p.grad, g1[k] + g_t[k], rtol=1e-9, atol=1e-12)


# -- train mode: dropout between layers --------------------------------------------------------

def _torch_stack_with_masks(mode, m, tm, x, states, masks, douts):
    """torch reference for dropout: single-layer torch modules with our layers' weights, our
    masks multiplied in between (what torch's multi-layer module does with its own masks).
    Returns ([out, h_n, c_n], {name: grad}) with torch's multi-layer parameter names."""
    D, L = 2 if m.bidirectional else 1, m.num_layers
    sd = tm.state_dict()
    tx = torch.tensor(x, requires_grad=True)
    ts = [torch.tensor(s, requires_grad=True) for s in states]
    h, finals, params = tx, [], {}
    for layer in range(L):
        one = TORCH_CLS[mode](I_ if layer == 0 else D * (m.proj_size or H_), H_,
                              **_kwargs(mode, dict(bidirectional=m.bidirectional,
                                                   proj_size=m.proj_size))).double()
        one.load_state_dict({k.replace(f"_l{layer}", "_l0"): v for k, v in sd.items()
                             if f"_l{layer}" in k})
        params.update({k.replace("_l0", f"_l{layer}"): p for k, p in one.named_parameters()})
        hx = [s[layer * D:(layer + 1) * D] for s in ts]
        h, hn = one(h, tuple(hx) if mode == "lstm" else hx[0])
        finals.append(hn if mode == "lstm" else (hn,))
        if masks[layer] is not None:
            h = h * torch.tensor(masks[layer])
    outs = [h] + [torch.cat([f[j] for f in finals]) for j in range(len(states))]
    names = ["x", "h0", "c0"][:1 + len(states)] + list(params)
    grads = torch.autograd.grad(outs, [tx] + ts + list(params.values()),
                                [torch.tensor(d) for d in douts])
    return [o.detach().numpy() for o in outs], {n: g.numpy() for n, g in zip(names, grads)}


@pytest.mark.parametrize("mode", ["tanh", "gru", "lstm"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_dropout_matches_torch_fed_the_same_masks(mode, bidirectional):
    rng = np.random.default_rng(3)
    cfg = dict(num_layers=3, dropout=0.4, bidirectional=bidirectional, h0=True,
               proj_size=P_ if mode == "lstm" else 0)
    m, tm = _pair(mode, cfg, "float64")
    m.generator = np.random.default_rng(7)
    m.train()
    x, states, _, douts = _inputs(mode, cfg, rng)
    res = m(x, tuple(states) if mode == "lstm" else states[0])
    masks = m.dropout_masks
    assert masks[-1] is None and all(k is not None for k in masks[:-1])
    outs = [res[0]] + (list(res[1]) if mode == "lstm" else [res[1]])
    dx, dhx = m.backward(douts[0], tuple(douts[1:]) if mode == "lstm" else douts[1])
    grads = {"x": dx, **dict(zip(["h0", "c0"], dhx if mode == "lstm" else (dhx,)))}
    grads.update({k: p.grad for k, p in m.named_parameters()})
    t_outs, t_grads = _torch_stack_with_masks(mode, m, tm, x, states, masks, douts)
    for a, b in zip(outs, t_outs):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11)
    assert set(grads) == set(t_grads)
    for k in grads:
        np.testing.assert_allclose(grads[k], t_grads[k], rtol=1e-9, atol=1e-11, err_msg=k)


def test_dropout_masks_statistics_and_reproducibility():
    p = 0.3
    m = nn.GRU(5, 50, num_layers=2, dropout=p, dtype=np.float64,
               generator=np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((20, 16, 5))
    m(x)
    mask = m.dropout_masks[0]
    assert mask.shape == (20, 16, 50)
    kept = mask != 0
    assert set(np.unique(mask)) == {0.0, 1 / (1 - p)}
    n = mask.size                                             # binomial: 5 sigma
    assert abs(kept.mean() - (1 - p)) < 5 * math.sqrt(p * (1 - p) / n)
    m.generator = np.random.default_rng(0)
    m.reset_parameters()                                      # same stream → same weights…
    snn.manual_seed(5)
    m.generator = None
    out_a = m(x)[0]
    snn.manual_seed(5)
    out_b = m(x)[0]                                           # …and manual_seed → same masks
    np.testing.assert_array_equal(out_a, out_b)
    m.eval()
    e1, e2 = m(x)[0], m(x)[0]
    assert m.dropout_masks[0] is None
    np.testing.assert_array_equal(e1, e2)
    m.train()
    assert not np.array_equal(m(x)[0], m(x)[0])               # fresh masks each call
    full = nn.LSTM(3, 4, num_layers=2, dropout=1.0, dtype=np.float64)
    out = full(np.ones((2, 1, 3)))[0]
    layer2_alone = snn.vjp(F.lstm_layer, np.zeros((2, 1, 4)), None, None,
                           *[p.data for k, p in full.named_parameters() if "_l1" in k])[0][0]
    np.testing.assert_allclose(out, layer2_alone)            # p = 1: layer 2 sees zeros


# -- cells -----------------------------------------------------------------------------------

CELLS = {"tanh": (nn.RNNCell, torch.nn.RNNCell), "relu": (nn.RNNCell, torch.nn.RNNCell),
         "gru": (nn.GRUCell, torch.nn.GRUCell), "lstm": (nn.LSTMCell, torch.nn.LSTMCell)}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("mode", list(CELLS))
def test_cell_modules_match_torch(mode, dtype):
    rng = np.random.default_rng(4)
    ours_cls, torch_cls = CELLS[mode]
    kw = {"nonlinearity": mode} if mode in ("tanh", "relu") else {}
    for bias, batch, given in itertools.product([True, False], [None, 0, 3], [True, False]):
        torch.manual_seed(0)
        tm = torch_cls(I_, H_, bias=bias, **kw).double()
        m = ours_cls(I_, H_, bias=bias, dtype=dtype, **kw)
        m.load_state_dict(state_dict_to_numpy(tm))
        lead = () if batch is None else (batch,)
        x = rng.standard_normal(lead + (I_,)).astype(dtype)
        n = 2 if mode == "lstm" else 1
        hs = [rng.standard_normal(lead + (H_,)).astype(dtype) for _ in range(n)]
        ds = [rng.standard_normal(lead + (H_,)).astype(dtype) for _ in range(n)]
        hx = (tuple(hs) if n == 2 else hs[0]) if given else None
        out = m(x, hx)
        dx, dh = m.backward(tuple(ds) if n == 2 else ds[0])
        tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        th = [torch.tensor(h if given else np.zeros_like(h), dtype=torch.float64,
                           requires_grad=True) for h in hs]
        tout = tm(tx, tuple(th) if n == 2 else th[0])
        touts = list(tout) if n == 2 else [tout]
        tg = torch.autograd.grad(touts, [tx] + th + list(tm.parameters()),
                                 [torch.tensor(d, dtype=torch.float64) for d in ds])
        ours = (list(out) if n == 2 else [out]) + [dx] + (list(dh) if n == 2 else [dh]) + \
            [p.grad for p in m.parameters()]
        theirs = [t.detach().numpy() for t in touts] + [g.numpy() for g in tg]
        tol = dict(rtol=1e-9, atol=1e-12) if dtype == "float64" else dict(rtol=1e-4, atol=1e-5)
        label = f"{mode} bias={bias} batch={batch} hx given={given}"
        assert len(ours) == len(theirs), label
        for a, b in zip(ours, theirs):
            assert a.dtype == np.dtype(dtype), label
            np.testing.assert_allclose(a, b, err_msg=label, **tol)


def test_vjp_differentiates_the_lstm_cell_state_tuple():
    """vjp returns a (dh, dc) tuple for the hx = (h, c) argument of lstm_cell."""
    rng = np.random.default_rng(5)
    x, h, c = rng.standard_normal((2, 3)), rng.standard_normal((2, 4)), rng.standard_normal((2, 4))
    w_ih, w_hh = rng.standard_normal((16, 3)), rng.standard_normal((16, 4))
    (h1, c1), pb = snn.vjp(F.lstm_cell, x, (h, c), w_ih, w_hh)
    grads = pb((rng.standard_normal((2, 4)), None))
    assert len(grads) == 4                                    # one entry per argument
    dx, (dh, dc), dw_ih, dw_hh = grads
    assert dh.shape == dc.shape == (2, 4) and dw_ih.shape == (16, 3)
    th, tc = torch.tensor(h, requires_grad=True), torch.tensor(c, requires_grad=True)
    _, pb2 = snn.vjp(F.lstm_cell, x, (h, c), w_ih, w_hh)
    d = rng.standard_normal((2, 4))
    th1, tc1 = torch.lstm_cell(torch.tensor(x), (th, tc), torch.tensor(w_ih), torch.tensor(w_hh))
    tdh, tdc = torch.autograd.grad(tc1, [th, tc], torch.tensor(d))
    _, (dh2, dc2), *_ = pb2((None, d))
    np.testing.assert_allclose(dh2, tdh.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dc2, tdc.numpy(), rtol=1e-10, atol=1e-12)


# -- cell vs sequence: the textbook layer is the cell loop -------------------------------------

LAYER_OPS = {"tanh": (F.rnn_tanh_layer, T.rnn_tanh_layer, 1),
             "relu": (F.rnn_relu_layer, T.rnn_relu_layer, 1),
             "gru": (F.gru_layer, T.gru_layer, 3), "lstm": (F.lstm_layer, T.lstm_layer, 4)}


def test_cells_live_once_in_the_textbook():
    """The cells are plain: scratchnn.functional re-exports the textbook's own functions."""
    for name in ("rnn_tanh_cell", "rnn_relu_cell", "lstm_cell", "gru_cell"):
        assert getattr(F, name) is getattr(T, name), name
        assert getattr(F, name).forward.__module__ == "scratchnn.textbook.recurrent"


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("mode", list(LAYER_OPS))
def test_fast_layer_equals_the_textbook_cell_loop(mode, reverse):
    """The fast layer's sorted-schedule BPTT = the textbook layer (the cell stepped over time,
    its pullbacks in reverse), lengths included; and a sequence of length l in a padded batch
    is the layer run over its own l steps alone."""
    fast, book, G = LAYER_OPS[mode]
    rng = np.random.default_rng(6)
    T_len, B, I, H = 6, 3, 3, 4
    lengths = [6, 2, 4]
    x = rng.standard_normal((T_len, B, I))
    states = [rng.standard_normal((B, H)) for _ in range(2 if mode == "lstm" else 1)]
    w = [rng.standard_normal((G * H, I)) / 2, rng.standard_normal((G * H, H)) / 2,
         rng.standard_normal(G * H), rng.standard_normal(G * H)]
    douts = (rng.standard_normal((T_len, B, H)), *[rng.standard_normal((B, H)) for _ in states])
    out_f, pb_f = snn.vjp(fast, x, *states, *w, lengths=lengths, reverse=reverse)
    out_b, pb_b = snn.vjp(book, x, *states, *w, lengths=lengths, reverse=reverse)
    for a, b in zip(out_f + pb_f(douts), out_b + pb_b(douts)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    for b, n in enumerate(lengths):                           # one sequence at a time
        assert not out_b[0][n:, b].any()                      # zeros past the end
        alone = snn.vjp(book, x[:n, b:b + 1], *[s[b:b + 1] for s in states], *w,
                        reverse=reverse)[0]
        np.testing.assert_allclose(out_b[0][:n, b:b + 1], alone[0], rtol=1e-12, atol=1e-12)
        for k in range(1, len(alone)):                        # final states
            np.testing.assert_allclose(out_b[k][b:b + 1], alone[k], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("edition", ["fast", "textbook"])
@pytest.mark.parametrize("B", [1, 3])
@pytest.mark.parametrize("mode", list(LAYER_OPS))
def test_layer_backward_leaves_upstream_grads_and_saved_state_alone(mode, B, edition):
    """The layer ops work internally on transposed (features, B) copies; with B = 1 a
    transpose is already contiguous, so a careless ``ascontiguousarray`` would alias (and
    overwrite) the caller's upstream grads. A second pullback must also give the same grads
    (the saved state is not consumed), for float32 as float64."""
    fast, book, G = LAYER_OPS[mode]
    layer = fast if edition == "fast" else book
    rng = np.random.default_rng(11)
    T, I, H = 3, 2, 4
    for dt in (np.float64, np.float32):
        x = rng.standard_normal((T, B, I)).astype(dt)
        w = [(rng.standard_normal(s) / 2).astype(dt) for s in ((G * H, I), (G * H, H), (G * H,),
                                                                (G * H,))]
        states = [rng.standard_normal((B, H)).astype(dt) for _ in range(2 if mode == "lstm"
                                                                        else 1)]
        douts = (rng.standard_normal((T, B, H)).astype(dt),
                 *[rng.standard_normal((B, H)).astype(dt) for _ in states])
        kept = [d.copy() for d in douts]
        _, pb = snn.vjp(layer, x, *states, *w)
        first = pb(douts)
        for d, k in zip(douts, kept):
            np.testing.assert_array_equal(d, k)
        for a, b in zip(first, pb(douts)):
            np.testing.assert_array_equal(a, b)
            assert a.dtype == dt


def test_lstm_cell_module_steps_like_the_lstm_module():
    rng = np.random.default_rng(7)
    lstm = nn.LSTM(I_, H_, dtype=np.float64)
    cell = nn.LSTMCell(I_, H_, dtype=np.float64)
    cell.load_state_dict({k[:-3]: v for k, v in lstm.state_dict().items()})
    x = rng.standard_normal((T_, B_, I_))
    out, (h_n, c_n) = lstm(x)
    hx = None
    for t in range(T_):
        hx = cell(x[t], hx)
        np.testing.assert_allclose(hx[0], out[t], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(hx[1], c_n[0], rtol=1e-12, atol=1e-14)


# -- gradcheck through modules; long sequences --------------------------------------------------

def _module_as_op(m, lengths=None):
    """A module's forward/backward as a defop op of (x, h0[, c0]) for gradcheck."""
    lstm = isinstance(m, nn.LSTM)

    def module_forward(x, h0, c0=None):
        out = m(x, (h0, c0) if lstm else h0, lengths=lengths)
        return (out[0], *out[1]) if lstm else out, None

    def module_backward(ctx, douts):
        dx, dhx = m.backward(douts[0], tuple(douts[1:]) if lstm else douts[1],
                              retain_graph=True)   # gradcheck: one forward, many backwards
        return (dx, *dhx) if lstm else (dx, dhx)

    return snn.defop(module_forward, module_backward)


@pytest.mark.parametrize("mode", ["tanh", "gru", "lstm"])
def test_gradcheck_through_stacked_bidirectional_modules(mode):
    cfg = dict(num_layers=2, bidirectional=True, h0=True, lengths=True,
               proj_size=1 if mode == "lstm" else 0)
    m = OURS_CLS[mode](2, 3, dtype=np.float64, generator=np.random.default_rng(0),
                       **_kwargs(mode, cfg))
    rng = np.random.default_rng(8)
    P = cfg["proj_size"] or 3
    x = rng.standard_normal((3, 2, 2))
    states = [rng.standard_normal((4, 2, P))] + ([rng.standard_normal((4, 2, 3))]
                                                 if mode == "lstm" else [])
    op = _module_as_op(m)
    assert snn.gradcheck(op, (x, *states), full_limit=64)
    lengths_op = _module_as_op(m, lengths=[3, 1])
    assert snn.gradcheck(lengths_op, (x, *states), full_limit=64)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("mode", ["tanh", "gru", "lstm"])
def test_long_sequences_stay_exact(mode, dtype):
    """T = 200: BPTT through 200 steps still agrees with torch within the tolerance policy."""
    rng = np.random.default_rng(9)
    cfg = dict(num_layers=1, bidirectional=True, h0=True, lengths=True)
    m, tm = _pair(mode, cfg, dtype)
    x, states, lengths, douts = _inputs(mode, cfg, rng, T=200, B=2)
    compare(m, tm, mode, x, states, lengths, douts, dtype, f"T=200 {mode} {dtype}")


# -- hypothesis: random sizes and flags ----------------------------------------------------------

@settings(max_examples=examples(0.5))
@given(mode=st.sampled_from(["tanh", "relu", "gru", "lstm"]), L=st.integers(1, 2),
       flags=st.lists(st.booleans(), min_size=5, max_size=5), T=st.integers(1, 6),
       B=st.integers(1, 4), seed=st.integers(0, 2**31))
def test_random_configurations(mode, L, flags, T, B, seed):
    bidir, bias, bf, h0, lengths = flags
    cfg = dict(num_layers=L, bidirectional=bidir, bias=bias, batch_first=bf, h0=h0,
               lengths=lengths, proj_size=P_ if mode == "lstm" and seed % 2 else 0)
    m, tm = _pair(mode, cfg, "float64", seed=seed % 1000)
    x, states, lens, douts = _inputs(mode, cfg, np.random.default_rng(seed), T=T, B=B)
    compare(m, tm, mode, x, states, lens, douts, "float64", f"{mode} {cfg} T={T} B={B}")


# -- construction, state_dict, init --------------------------------------------------------------

@pytest.mark.parametrize("mode", ["tanh", "gru", "lstm"])
def test_state_dict_layout_and_init_match_torch(mode):
    cfg = dict(num_layers=2, bidirectional=True, bias=True,
               proj_size=2 if mode == "lstm" else 0)
    tm = TORCH_CLS[mode](5, 8, **_kwargs(mode, cfg))
    m = OURS_CLS[mode](5, 8, generator=np.random.default_rng(0), **_kwargs(mode, cfg))
    t_sd, o_sd = tm.state_dict(), m.state_dict()
    assert list(o_sd) == list(t_sd)
    assert [v.shape for v in o_sd.values()] == [tuple(v.shape) for v in t_sd.values()]
    assert all(v.dtype == np.float32 for v in o_sd.values())
    m.load_state_dict({k: v.numpy() for k, v in t_sd.items()})   # "just works"
    for k in t_sd:
        np.testing.assert_array_equal(o_sd[k], t_sd[k].numpy())
    big = OURS_CLS[mode](64, 100, generator=np.random.default_rng(1))
    w = np.concatenate([p.data.ravel() for p in big.parameters()])
    k = 1 / math.sqrt(100)
    assert np.abs(w).max() <= k and abs(w.std() - k / math.sqrt(3)) < 0.02 * k


def test_modules_keep_torch_defaults_and_reprs():
    for ours, theirs in [(nn.RNN(3, 4), torch.nn.RNN(3, 4)), (nn.GRU(3, 4), torch.nn.GRU(3, 4)),
                         (nn.LSTM(3, 4, 2, True, True, 0.5, True, 2),
                          torch.nn.LSTM(3, 4, 2, True, True, 0.5, True, 2)),
                         (nn.RNN(3, 4, 2, "relu"), torch.nn.RNN(3, 4, 2, "relu"))]:
        assert repr(ours) == repr(theirs)
    for ours, theirs in [(nn.RNNCell(3, 4, False, "relu"), torch.nn.RNNCell(3, 4, False, "relu")),
                         (nn.LSTMCell(3, 4), torch.nn.LSTMCell(3, 4))]:
        assert repr(ours) == repr(theirs)
        assert list(ours.state_dict()) == list(theirs.state_dict())
    m = nn.GRU(3, 4, dtype=np.float64)
    assert m.weight_ih_l0.dtype == np.float64


@pytest.mark.parametrize("make, param", [
    (lambda: nn.LSTM(3, 4, num_layers=0), "num_layers"),
    (lambda: nn.GRU(3, 4, dropout=1.5), "dropout"),
    (lambda: nn.GRU(3, 4, dropout=-0.1), "dropout"),
    (lambda: nn.LSTM(3, 4, proj_size=4), "proj_size"),
    (lambda: nn.LSTM(3, 4, proj_size=-1), "proj_size"),
    (lambda: nn.RNN(3, 4, nonlinearity="sigmoid"), "nonlinearity"),
    (lambda: nn.RNNCell(3, 4, nonlinearity="gelu"), "nonlinearity"),
    (lambda: nn.GRU(3, 0), "hidden_size"),
])
def test_constructor_rejects_bad_arguments(make, param):
    with pytest.raises(ValueError, match=param):
        make()


def test_forward_rejects_bad_input():
    lstm = nn.LSTM(3, 4, num_layers=2, dtype=np.float64)
    x = np.zeros((5, 2, 3))
    bad = [(lambda: lstm(np.zeros((5, 2, 4))), ValueError, "input"),        # input_size
           (lambda: lstm(np.zeros((5, 2, 3, 1))), ValueError, "input"),
           (lambda: lstm(x, (np.zeros((2, 3, 4)), np.zeros((2, 2, 4)))), ValueError, "h0"),
           (lambda: lstm(x, (np.zeros((2, 2, 4)), np.zeros((1, 2, 4)))), ValueError, "c0"),
           (lambda: lstm(x, np.zeros((2, 2, 4))), TypeError, "hx"),
           (lambda: lstm(x, lengths=[5, 6]), ValueError, "lengths"),
           (lambda: lstm(x, lengths=[0, 2]), ValueError, "lengths"),
           (lambda: lstm(x[:, 0], lengths=[5]), ValueError, "lengths"),
           (lambda: lstm(x.astype(np.float32)), TypeError, "input"),
           (lambda: nn.GRU(3, 4, dtype=np.float64)(x, np.zeros((1, 2, 5))), ValueError, "h0"),
           (lambda: nn.GRUCell(3, 4, dtype=np.float64)(np.zeros((2, 5))), ValueError, "input"),
           (lambda: nn.LSTMCell(3, 4, dtype=np.float64)(np.zeros((2, 3)),
                                                        (np.zeros((2, 4)), np.zeros((3, 4)))),
            ValueError, "hx")]
    for i, (call, err, name) in enumerate(bad):
        with pytest.raises(err, match=name):
            call()
    with pytest.raises(RuntimeError, match="before forward"):
        nn.GRU(3, 4).backward(np.zeros((1, 1, 4)))
    lstm(x)
    with pytest.raises(ValueError, match="dout"):
        lstm.backward(np.zeros((5, 2, 3)))


# -- cuda: torch on the GPU with cuDNN, TF32 off -------------------------------------------------

@pytest.mark.cuda
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("mode", ["tanh", "relu", "gru", "lstm"])
def test_module_matches_torch_cuda(mode, dtype):
    configure("cuda")
    rng = np.random.default_rng(10)
    for i, cfg in enumerate(_configs(mode, 2)):
        if i % 3:
            continue
        m, tm = _pair(mode, cfg, dtype, device="cuda", seed=i)
        x, states, lengths, douts = _inputs(mode, cfg, rng)
        compare(m, tm, mode, x, states, lengths, douts, dtype, f"cuda {mode} {cfg}", "cuda")


def test_lstm_projection_with_lengths_never_reads_unwritten_memory():
    """Steps past every sequence's length are never computed; dW_hr must not read them (a
    regression: an uninitialised buffer gave NaN/inf now and then, found by the thorough
    profile)."""
    rng = np.random.default_rng(0)
    T, B, I, H, P = 5, 2, 2, 4, 2
    x, h0 = rng.standard_normal((T, B, I)), rng.standard_normal((B, P))
    w_ih, w_hh, w_hr = (rng.standard_normal(s) for s in ((4 * H, I), (4 * H, P), (P, H)))
    for _ in range(20):
        junk = [np.full((T, H, B), np.nan) for _ in range(8)]   # NumPy recycles small
        del junk                                                # buffers: poison them
        out, pullback = snn.vjp(F.lstm_layer, x, h0, None, w_ih, w_hh, None, None, w_hr,
                                lengths=[2, 2])
        grads = pullback((rng.standard_normal(out[0].shape), None, None))
        assert all(g is None or np.isfinite(g).all() for g in grads)


# ---- the engine's recycled buffers (scratchnn.perf.recycle) and weight-gradient chunks ----------

def test_recycled_buffer_is_reused_only_once_nothing_refers_to_it(monkeypatch):
    """A pooled array comes back only when no array, view or memoryview of it is alive."""
    from scratchnn.perf import recycle
    monkeypatch.setattr(recycle, "MIN_BYTES", 0)
    recycle.release()

    def addr(a):
        return a.__array_interface__["data"][0]

    a = recycle.empty((5, 7), np.float32)
    first = addr(a)
    assert addr(recycle.empty((5, 7), np.float32)) != first          # a still held
    view = a[1:].T
    del a
    assert addr(recycle.empty((5, 7), np.float32)) != first          # a view keeps it
    mv = memoryview(view)
    del view
    assert addr(recycle.empty((5, 7), np.float32)) != first          # so does a memoryview
    del mv
    b = recycle.empty((7, 5), np.float32)                             # same size: reused
    assert addr(b) == first and b.shape == (7, 5) and b.dtype == np.float32
    assert addr(recycle.empty((5, 7), np.float64)) != first          # another dtype: never
    z = recycle.zeros((3, 4), np.float64)
    assert not z.any()
    del b, z
    recycle.release()
    assert recycle.kept_bytes() == 0


def _poison_free_buffers():
    """Fill every free pooled buffer with NaN: a read of memory the engine did not write
    shows up as NaN in the result."""
    from scratchnn.perf import recycle
    for bufs in recycle._pools().values():
        for i in range(len(bufs)):
            if sys.getrefcount(bufs[i]) == 2:                          # list + argument: free
                bufs[i].fill(np.nan)


@pytest.mark.parametrize("proj", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
def test_lstm_on_recycled_buffers_and_one_step_chunks_equals_the_textbook(monkeypatch,
                                                                          reverse, proj):
    """Every buffer from the pool (poisoned with NaN between calls), weight gradients summed
    one step at a time, variable lengths: the same numbers as the textbook; and a forward run
    while an earlier context is alive never reuses (overwrites) that context or its output."""
    from scratchnn.functional import recurrent
    from scratchnn.perf import recycle
    monkeypatch.setattr(recycle, "MIN_BYTES", 0)
    monkeypatch.setattr(recurrent, "CHUNK_BYTES", 1)
    rng = np.random.default_rng(3)
    n_t, B, I, H = 6, 3, 3, 4
    P = 2 if proj else H
    lengths = [4, 6, 2]
    x = rng.standard_normal((n_t, B, I))
    h0, c0 = rng.standard_normal((B, P)), rng.standard_normal((B, H))
    w = [rng.standard_normal((4 * H, I)) / 2, rng.standard_normal((4 * H, P)) / 2,
         rng.standard_normal(4 * H), rng.standard_normal(4 * H),
         rng.standard_normal((P, H)) / 2 if proj else None]
    douts = (rng.standard_normal((n_t, B, P)), rng.standard_normal((B, P)),
             rng.standard_normal((B, H)))
    out_b, pb_b = snn.vjp(T.lstm_layer, x, h0, c0, *w, lengths=lengths, reverse=reverse)
    g_b = pb_b(douts)
    held = []
    for _ in range(3):
        _poison_free_buffers()
        out_f, pb_f = snn.vjp(F.lstm_layer, x, h0, c0, *w, lengths=lengths, reverse=reverse)
        held.append((out_f, pb_f))                                    # contexts stay alive
    for out_f, pb_f in reversed(held):
        _poison_free_buffers()
        for a, b in zip(out_f + pb_f(douts), out_b + g_b):
            if b is None:
                assert a is None
            else:
                np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
