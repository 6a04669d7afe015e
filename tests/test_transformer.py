"""The transformer layer stack (scratchnn/nn/transformer.py) and gradient clipping
(scratchnn/nn/utils.py) against torch.

Every layer gets torch's weights through load_state_dict and is compared on its output, its
input gradients and every parameter gradient, float32 (the project's tolerance policy against
torch float32 and float64) and float64, with random upstream gradients; masks of every kind,
norm_first and batch_first both ways, relu/gelu/callables, eval mode and train mode with the
dropout masks replayed.
"""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

import scratchnn.functional as F
import scratchnn.nn as nn
from benchmarks.train import TorchMaskedDropout, _replay
from scratchnn.nn import utils
from scratchnn.testing.bridge import state_dict_to_numpy
from scratchnn.testing.harness import compare

DT = {"float32": (np.float32, torch.float32), "float64": (np.float64, torch.float64)}
D, H, FF = 8, 2, 16                                       # d_model, nhead, dim_feedforward


# -- helpers ----------------------------------------------------------------------------------
def _close(name, ours, same, hi, dtype):
    c = compare(ours, same, hi, dtype, {})
    assert c.ok, f"{name}: {c.err:.3g} ({c.ratio:.3g}× tolerance; {c.tolerance}) at {c.index}"


def _pair(kind, dtype, seed=0, ours_kw=None, **kw):
    """(ours, torch in dtype, torch float64) with torch's initial weights in all three."""
    npd, td = DT[dtype]
    torch.manual_seed(seed)
    theirs = getattr(torch.nn, kind)(**kw).to(td)
    ours = getattr(nn, kind)(**{**kw, **(ours_kw or {})}, dtype=npd)
    ours.load_state_dict(state_dict_to_numpy(theirs))
    return ours, theirs, copy.deepcopy(theirs).double()


def _t(a, td, grad=False):
    if a is None:
        return None
    t = torch.from_numpy(np.array(a))
    if t.is_floating_point():
        t = t.to(td)
    return t.requires_grad_(grad)


def _run(ours, theirs, hi, dtype, seqs, masks, seed=1, n_out=None):
    """Forward + backward on all sides; compares output, sequence gradients, parameter grads."""
    npd, _ = DT[dtype]
    rng = np.random.default_rng(seed)
    out = ours(*seqs, **masks)
    dout = rng.standard_normal(out.shape).astype(npd)
    grads = ours.backward(dout)
    grads = grads if isinstance(grads, tuple) else (grads,)
    assert out.dtype == npd and type(out) is np.ndarray and len(grads) == len(seqs)
    res = []
    for side, td in ((theirs, DT[dtype][1]), (hi, torch.float64)):
        ts = [_t(s, td, True) for s in seqs]
        tout = side(*ts, **{k: _t(v, td) if isinstance(v, np.ndarray) else v
                            for k, v in masks.items()})
        tout.backward(_t(dout, td))
        res.append((tout.detach().numpy(), [t.grad.numpy() for t in ts],
                    {k: p.grad.numpy() for k, p in side.named_parameters()}))
    (o32, g32, p32), (o64, g64, p64) = res
    _close("output", out, o32, o64, dtype)
    for i, g in enumerate(grads):
        assert g.dtype == npd
        _close(f"input gradient {i}", g, g32[i], g64[i], dtype)
    named = dict(ours.named_parameters())
    assert sorted(named) == sorted(p32)
    for k, p in named.items():
        assert p.grad is not None and p.grad.dtype == npd, k
        _close(f"{k}.grad", p.grad, p32[k], p64[k], dtype)
    return out


def _seq(rng, shape, npd):
    return rng.standard_normal(shape).astype(npd)


def _shape(s, n, batch_first):
    return (n, s, D) if batch_first else (s, n, D)


# -- TransformerEncoderLayer ------------------------------------------------------------------
@pytest.mark.parametrize("dtype", sorted(DT))
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_encoder_layer_equals_torch(dtype, norm_first, activation, batch_first):
    ours, theirs, hi = _pair("TransformerEncoderLayer", dtype, d_model=D, nhead=H,
                             dim_feedforward=FF, activation=activation, norm_first=norm_first,
                             batch_first=batch_first)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for m in (ours, theirs, hi):
        m.eval()                                     # dropout 0.1: the identity in eval mode
    x = _seq(np.random.default_rng(0), _shape(5, 3, batch_first), DT[dtype][0])
    x0 = x.copy()
    _run(ours, theirs, hi, dtype, [x], {})
    np.testing.assert_array_equal(x, x0)             # the input is never modified


def _masks(kind, s, n, npd, rng):
    causal = np.triu(np.ones((s, s), bool), 1)
    pad = np.zeros((n, s), bool)
    pad[0, -2:] = True                               # the first sequence has two pad keys
    return {
        "none": {},
        "bool attn_mask": {"src_mask": (rng.random((s, s)) < 0.3) & ~np.eye(s, dtype=bool)},
        "float attn_mask": {"src_mask": rng.standard_normal((s, s)).astype(npd)},
        "3-d attn_mask": {"src_mask": rng.standard_normal((n * H, s, s)).astype(npd)},
        "bool key padding": {"src_key_padding_mask": pad},
        "float key padding": {"src_key_padding_mask": np.where(pad, -np.inf, 0.0).astype(npd)},
        "causal": {"src_mask": nn.Transformer.generate_square_subsequent_mask(s, dtype=npd),
                   "is_causal": True},
        "causal bool and padding": {"src_mask": causal, "src_key_padding_mask": pad},
    }[kind]


MASKS = ["none", "bool attn_mask", "float attn_mask", "3-d attn_mask", "bool key padding",
         "float key padding", "causal", "causal bool and padding"]


@pytest.mark.parametrize("dtype", sorted(DT))
@pytest.mark.parametrize("kind", MASKS)
def test_encoder_layer_masks_equal_torch(dtype, kind):
    ours, theirs, hi = _pair("TransformerEncoderLayer", dtype, d_model=D, nhead=H,
                             dim_feedforward=FF, dropout=0.0, batch_first=True)
    rng = np.random.default_rng(2)
    x = _seq(rng, (3, 6, D), DT[dtype][0])
    _run(ours, theirs, hi, dtype, [x], _masks(kind, 6, 3, DT[dtype][0], rng))


@pytest.mark.parametrize("dtype", sorted(DT))
def test_encoder_layer_unbatched_and_callable_activations(dtype):
    npd = DT[dtype][0]
    x = _seq(np.random.default_rng(3), (5, D), npd)
    for ours_act, torch_act in ((lambda v: F.gelu(v, approximate="tanh"),
                                 lambda v: torch.nn.functional.gelu(v, approximate="tanh")),
                                (nn.GELU(), torch.nn.GELU()), (F.relu, torch.relu)):
        ours, theirs, hi = _pair("TransformerEncoderLayer", dtype, d_model=D, nhead=H,
                                 dim_feedforward=FF, dropout=0.0, activation=torch_act,
                                 ours_kw={"activation": ours_act})
        _run(ours, theirs, hi, dtype, [x], {})


def _inject(ours, theirs_list, names, p, shapes, rng):
    """Same dropout masks on both sides: ours replays the recorded generator state, torch's
    layers (replaced by masked ones) get the masks."""
    for name, shape in zip(names, shapes):
        state = rng.bit_generator.state
        mask = F.dropout_mask(shape, p, rng)
        getattr(ours, name).generator = _replay(state)
        for t in theirs_list:
            layer = TorchMaskedDropout(p)
            layer.mask = torch.from_numpy(mask)
            setattr(t, name, layer)


@pytest.mark.parametrize("dtype", sorted(DT))
@pytest.mark.parametrize("norm_first", [False, True])
def test_train_mode_with_replayed_dropout_masks(dtype, norm_first):
    """dropout 0.3 in training: the residual and feed-forward dropouts draw masks that torch
    is handed too (the attention weights' own dropout is MultiheadAttention's; off here)."""
    npd = DT[dtype][0]
    rng = np.random.default_rng(4)
    kw = dict(d_model=D, nhead=H, dim_feedforward=FF, dropout=0.3, norm_first=norm_first,
              batch_first=True)
    ours, theirs, hi = _pair("TransformerEncoderLayer", dtype, **kw)
    for m in (ours, theirs, hi):
        m.self_attn.dropout = 0.0
    _inject(ours, (theirs, hi), ("dropout1", "dropout", "dropout2"), 0.3,
            [(2, 5, D), (2, 5, FF), (2, 5, D)], rng)
    out = _run(ours, theirs, hi, dtype, [_seq(rng, (2, 5, D), npd)], {})
    ours_d, theirs_d, hi_d = _pair("TransformerDecoderLayer", dtype, **kw)
    for m in (ours_d, theirs_d, hi_d):
        m.self_attn.dropout = m.multihead_attn.dropout = 0.0
    _inject(ours_d, (theirs_d, hi_d), ("dropout1", "dropout2", "dropout", "dropout3"), 0.3,
            [(2, 4, D), (2, 4, D), (2, 4, FF), (2, 4, D)], rng)
    _run(ours_d, theirs_d, hi_d, dtype, [_seq(rng, (2, 4, D), npd), out], {})


# -- TransformerDecoderLayer ------------------------------------------------------------------
@pytest.mark.parametrize("dtype", sorted(DT))
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_decoder_layer_equals_torch(dtype, norm_first, batch_first):
    """Causal self-attention, cross-attention with padded memory: dtgt and dmemory."""
    npd = DT[dtype][0]
    ours, theirs, hi = _pair("TransformerDecoderLayer", dtype, d_model=D, nhead=H,
                             dim_feedforward=FF, dropout=0.0, activation="gelu",
                             norm_first=norm_first, batch_first=batch_first)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert any(k.startswith("multihead_attn.") for k in ours.state_dict())
    rng = np.random.default_rng(5)
    tgt, mem = _seq(rng, _shape(4, 3, batch_first), npd), _seq(rng, _shape(6, 3, batch_first),
                                                                 npd)
    pad = np.zeros((3, 6), npd)
    pad[1, -3:] = -np.inf                            # float masks throughout (no mixed types)
    masks = {"tgt_mask": nn.Transformer.generate_square_subsequent_mask(4, dtype=npd),
             "tgt_is_causal": True, "memory_key_padding_mask": pad,
             "memory_mask": rng.standard_normal((4, 6)).astype(npd)}
    _run(ours, theirs, hi, dtype, [tgt, mem], masks)


# -- the stacks and Transformer -----------------------------------------------------------------
@pytest.mark.parametrize("dtype", sorted(DT))
def test_encoder_and_decoder_stacks_equal_torch(dtype):
    npd, td = DT[dtype]
    torch.manual_seed(6)
    tl = torch.nn.TransformerEncoderLayer(D, H, FF, dropout=0.0, batch_first=True)
    theirs = torch.nn.TransformerEncoder(tl, 2, torch.nn.LayerNorm(D),
                                         enable_nested_tensor=False).to(td)
    ours = nn.TransformerEncoder(nn.TransformerEncoderLayer(D, H, FF, dropout=0.0,
                                                            batch_first=True, dtype=npd), 2,
                                 nn.LayerNorm(D, dtype=npd))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert "layers.1.self_attn.in_proj_weight" in ours.state_dict()
    ours.load_state_dict(state_dict_to_numpy(theirs))
    rng = np.random.default_rng(7)
    mask = nn.Transformer.generate_square_subsequent_mask(5, dtype=npd)   # detected causal
    mem = _run(ours, theirs, copy.deepcopy(theirs).double(), dtype, [_seq(rng, (2, 5, D), npd)],
               {"mask": mask})
    torch.manual_seed(8)
    tdl = torch.nn.TransformerDecoderLayer(D, H, FF, dropout=0.0, batch_first=True)
    theirs = torch.nn.TransformerDecoder(tdl, 2, torch.nn.LayerNorm(D)).to(td)
    ours = nn.TransformerDecoder(nn.TransformerDecoderLayer(D, H, FF, dropout=0.0,
                                                            batch_first=True, dtype=npd), 2,
                                 nn.LayerNorm(D, dtype=npd))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict(state_dict_to_numpy(theirs))
    _run(ours, theirs, copy.deepcopy(theirs).double(), dtype, [_seq(rng, (2, 3, D), npd), mem],
         {"tgt_mask": nn.Transformer.generate_square_subsequent_mask(3, dtype=npd)})


@pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")
@pytest.mark.parametrize("dtype", sorted(DT))
@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_equals_torch(dtype, norm_first):
    npd = DT[dtype][0]
    kw = dict(d_model=D, nhead=H, num_encoder_layers=2, num_decoder_layers=1,
              dim_feedforward=FF, dropout=0.0, norm_first=norm_first)
    ours, theirs, hi = _pair("Transformer", dtype, **kw)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    rng = np.random.default_rng(9)
    src, tgt = _seq(rng, (6, 2, D), npd), _seq(rng, (4, 2, D), npd)
    pad = np.zeros((2, 6), npd)
    pad[1, 4:] = -np.inf
    masks = {"tgt_mask": nn.Transformer.generate_square_subsequent_mask(4, dtype=npd),
             "src_key_padding_mask": pad, "memory_key_padding_mask": pad}
    _run(ours, theirs, hi, dtype, [src, tgt], masks)


def test_transformer_init_is_torchs():
    """Every parameter with more than one dimension xavier_uniform_ (bound √(6/(fan_in +
    fan_out))); biases zero or Linear's; LayerNorm ones and zeros. Clones start equal."""
    m = nn.Transformer(d_model=16, nhead=4, num_encoder_layers=2, num_decoder_layers=2,
                       dim_feedforward=32)
    for name, p in m.named_parameters():
        if p.ndim > 1:
            bound = math.sqrt(6.0 / sum(p.shape))
            assert np.abs(p.data).max() <= bound, name
            assert np.abs(p.data).max() > 0.8 * bound, name          # spread over U(±bound)
        elif "norm" in name:
            assert np.all(p.data == (1 if name.endswith("weight") else 0)), name
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16), 3)
    a, b = enc.layers[0].linear1.weight, enc.layers[2].linear1.weight
    np.testing.assert_array_equal(a.data, b.data)                    # deep copies, as torch's
    assert a is not b and a.data is not b.data


def test_generate_square_subsequent_mask_and_detection():
    for sz in (0, 1, 4):
        np.testing.assert_array_equal(nn.Transformer.generate_square_subsequent_mask(sz),
                                      torch.nn.Transformer.generate_square_subsequent_mask(sz))
    m = nn.generate_square_subsequent_mask(3, dtype=np.float64)
    assert m.dtype == np.float64 and nn.Transformer.generate_square_subsequent_mask(2).dtype \
        == np.float32
    from scratchnn.nn.transformer import _detect_is_causal_mask as detect
    assert detect(m, None, 3) and detect(np.triu(np.ones((3, 3), bool), 1), None, 3)
    assert not detect(m, None, 4) and not detect(np.zeros((3, 3)), None, 3)
    assert detect(None, True, 3) and not detect(m, False, 3)


def test_backward_contract():
    """input_grad=False fills the same .grad and returns None; a second backward raises;
    float masks are constants (the backward returns dsrc only)."""
    layer = nn.TransformerEncoderLayer(D, H, FF, dropout=0.0, dtype=np.float64)
    rng = np.random.default_rng(10)
    x = rng.standard_normal((4, 2, D))
    mask = rng.standard_normal((4, 4))
    dy = rng.standard_normal((4, 2, D))
    layer(x, mask)
    dx = layer.backward(dy)
    assert dx.shape == x.shape
    g = {k: p.grad.copy() for k, p in layer.named_parameters()}
    with pytest.raises(RuntimeError, match="second"):
        layer.backward(dy)
    layer.zero_grad()
    layer(src=x, src_mask=mask)                       # keywords: the same recorded inputs
    assert layer.backward(dy, input_grad=False) is None
    for k, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad, g[k], rtol=1e-12, atol=1e-14)


def test_layers_inside_a_forward_only_module():
    """A user's module calling the layer twice with a residual (as the GPT does)."""
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = nn.TransformerEncoderLayer(D, H, FF, dropout=0.0, batch_first=True,
                                                    norm_first=True, dtype=np.float64)

        def forward(self, x):
            return self.block(self.block(x)) + x

    torch.manual_seed(11)
    tblock = torch.nn.TransformerEncoderLayer(D, H, FF, dropout=0.0, batch_first=True,
                                              norm_first=True).double()
    m = Twice()
    m.block.load_state_dict(state_dict_to_numpy(tblock))
    rng = np.random.default_rng(12)
    x, dy = rng.standard_normal((2, 3, D)), rng.standard_normal((2, 3, D))
    out = m(x)
    dx = m.backward(dy)
    tx = torch.tensor(x, requires_grad=True)
    tout = tblock(tblock(tx)) + tx
    tout.backward(torch.tensor(dy))
    np.testing.assert_allclose(out, tout.detach().numpy(), rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-7, atol=1e-7)
    ours = dict(m.block.named_parameters())
    for k, p in tblock.named_parameters():
        np.testing.assert_allclose(ours[k].grad, p.grad.numpy(), rtol=1e-7, atol=1e-7,
                                   err_msg=k)


@pytest.mark.parametrize("make, match", [
    (lambda: nn.TransformerEncoderLayer(8, 3), "'d_model' .8. must be divisible by 'nhead'"),
    (lambda: nn.TransformerDecoderLayer(8, 0), "'nhead' must be >= 1"),
    (lambda: nn.TransformerEncoderLayer(8, 2, activation="tanh"), "'activation'"),
    (lambda: nn.TransformerEncoderLayer(8, 2, activation=3), "'activation'"),
    (lambda: nn.TransformerEncoderLayer(8, 2, dropout=1.5), "'dropout'"),
    (lambda: nn.TransformerEncoderLayer(8, 2, norm_first=1), "'norm_first'"),
    (lambda: nn.TransformerEncoder(nn.TransformerDecoderLayer(8, 2), 2), "'encoder_layer'"),
    (lambda: nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2), 0), "'num_layers'"),
    (lambda: nn.Transformer(d_model=8, nhead=3), "Transformer\\(\\): parameter 'd_model'"),
])
def test_bad_constructor_arguments(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_bad_forward_inputs_name_the_parameter():
    enc = nn.TransformerEncoderLayer(D, H, FF, dtype=np.float64)
    with pytest.raises(ValueError, match="'src' must have d_model = 8"):
        enc(np.zeros((3, 2, 6)))
    with pytest.raises(ValueError, match="'src' must be 2 or 3-dimensional"):
        enc(np.zeros((3, D)).ravel())
    with pytest.raises(TypeError, match="'src'"):
        enc(np.zeros((3, 2, D), np.int64))
    with pytest.raises(ValueError, match="mask"):                     # MultiheadAttention's
        enc(np.zeros((3, 2, D)), src_mask=np.zeros((4, 4)))
    with pytest.raises(ValueError, match="self_attn .*'attn_mask' is required with is_causal"):
        enc(np.zeros((3, 2, D)), is_causal=True)                     # torch's rule too
    dec = nn.TransformerDecoderLayer(D, H, FF, dtype=np.float64)
    with pytest.raises(ValueError, match="'memory' must have d_model"):
        dec(np.zeros((3, 2, D)), np.zeros((3, 2, 4)))
    t = nn.Transformer(D, H, 1, 1, FF, dtype=np.float64)
    with pytest.raises(ValueError, match="'src' .* and 'tgt' .* same batch size"):
        t(np.zeros((3, 2, D)), np.zeros((3, 4, D)))


# -- clip_grad_norm_ and clip_grad_value_ -------------------------------------------------------
def _grads(dtype, seed=0, with_none=True):
    """Parameters (some without a .grad, one 0-d) and torch twins with the same grads."""
    rng = np.random.default_rng(seed)
    shapes = [(3, 4), (5,), (), (2, 2, 2)]
    ours, theirs = [], []
    for i, s in enumerate(shapes):
        p = nn.Parameter(np.array(rng.standard_normal(s), dtype))
        t = torch.nn.Parameter(torch.from_numpy(p.data.copy()))
        if not (with_none and i == 1):
            g = np.array(rng.standard_normal(s) * 3, dtype)
            p.grad, t.grad = g, torch.from_numpy(g.copy())
        ours.append(p)
        theirs.append(t)
    return ours, theirs


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 2e-6), (np.float64, 1e-12)])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf, -math.inf, 0.0, 3.5, 0.5, "inf"])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm_equals_torch(dtype, rtol, norm_type, max_norm):
    ours, theirs = _grads(dtype)
    data = [p.data.copy() for p in ours]
    total = utils.clip_grad_norm_(ours, max_norm, norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type)
    assert isinstance(total, np.ndarray) and total.shape == () and total.dtype == dtype
    np.testing.assert_allclose(total, ttotal.numpy(), rtol=rtol)
    for p, t, d in zip(ours, theirs, data):
        np.testing.assert_array_equal(p.data, d)                    # only .grad changes
        if t.grad is None:
            assert p.grad is None
        else:
            assert p.grad.dtype == dtype
            np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=rtol, atol=0)


def test_clip_grad_norm_nonfinite_empty_and_one_parameter():
    for bad in (np.nan, np.inf):
        p, t = nn.Parameter(np.zeros(2)), torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
        p.grad, t.grad = np.array([bad, 1.0]), torch.tensor([bad, 1.0], dtype=torch.float64)
        with pytest.raises(RuntimeError, match="non-finite"):
            utils.clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
        np.testing.assert_array_equal(utils.clip_grad_norm_(p, 1.0),
                                      torch.nn.utils.clip_grad_norm_(t, 1.0).numpy())
        np.testing.assert_array_equal(p.grad, t.grad.numpy())       # nan or 0, as torch
    assert float(utils.clip_grad_norm_([], 1.0)) == 0.0
    with pytest.warns(UserWarning, match="empty generator"):
        utils.clip_grad_norm_((p for p in []), 1.0)
    q = nn.Parameter(np.zeros(0))
    q.grad = np.zeros(0)
    with pytest.raises(RuntimeError, match="infinity norm"):
        utils.clip_grad_norm_([q], 1.0, math.inf)
    model = nn.Linear(3, 2)
    model(np.ones((4, 3), np.float32))
    model.backward(np.ones((4, 2), np.float32))
    total = utils.clip_grad_norm_(model.parameters(), 1e-3)
    assert float(total) > 1e-3
    after = math.sqrt(sum(float((p.grad.astype(np.float64) ** 2).sum())
                          for p in model.parameters()))
    assert after == pytest.approx(1e-3, rel=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clip_grad_value_equals_torch(dtype):
    ours, theirs = _grads(dtype, seed=1)
    utils.clip_grad_value_(ours, 1.5)
    torch.nn.utils.clip_grad_value_(theirs, 1.5)
    for p, t in zip(ours, theirs):
        if t.grad is not None:
            np.testing.assert_array_equal(p.grad, t.grad.numpy())
    assert max(float(np.abs(p.grad).max()) for p in ours if p.grad is not None) == 1.5


@pytest.mark.parametrize("call, exc, match", [
    (lambda ps: utils.clip_grad_norm_(ps, None), TypeError, "clip_grad_norm_.*'max_norm'"),
    (lambda ps: utils.clip_grad_norm_(ps, "1"), TypeError, "'max_norm'"),
    (lambda ps: utils.clip_grad_norm_(ps, -1.0), ValueError, "'max_norm' must be >= 0"),
    (lambda ps: utils.clip_grad_norm_(ps, 1.0, None), TypeError, "'norm_type'"),
    (lambda ps: utils.clip_grad_norm_(ps, 1.0, "two"), TypeError, "'norm_type'"),
    (lambda ps: utils.clip_grad_norm_(ps, 1.0, foreach=1), TypeError, "'foreach'"),
    (lambda ps: utils.clip_grad_norm_(ps, 1.0, error_if_nonfinite=None), TypeError,
     "'error_if_nonfinite'"),
    (lambda ps: utils.clip_grad_norm_(np.ones(3), 1.0), TypeError, "'parameters'"),
    (lambda ps: utils.clip_grad_norm_([np.ones(3)], 1.0), TypeError, "'parameters'"),
    (lambda ps: utils.clip_grad_value_(ps, -1.0), ValueError, "clip_grad_value_.*'clip_value'"),
    (lambda ps: utils.clip_grad_value_(ps, None), TypeError, "'clip_value'"),
])
def test_clip_bad_input_changes_nothing(call, exc, match):
    ours, _ = _grads(np.float64)
    before = [None if p.grad is None else p.grad.copy() for p in ours]
    with pytest.raises(exc, match=match):
        call(ours)
    for p, b in zip(ours, before):
        assert (p.grad is None) == (b is None)
        if b is not None:
            np.testing.assert_array_equal(p.grad, b)


def test_module_list_and_dict_register_as_torch():
    layers = nn.ModuleList([nn.Linear(2, 3), nn.ReLU()])
    layers.append(nn.Linear(3, 1))
    layers.insert(0, nn.Identity())
    tl = torch.nn.ModuleList([torch.nn.Identity(), torch.nn.Linear(2, 3), torch.nn.ReLU(),
                              torch.nn.Linear(3, 1)])
    assert list(layers.state_dict()) == list(tl.state_dict())
    assert len(layers) == 4 and isinstance(layers[-1], nn.Linear) and len(layers[1:3]) == 2
    assert [type(m).__name__ for m in layers] == ["Identity", "Linear", "ReLU", "Linear"]
    with pytest.raises(IndexError):
        layers[4]
    with pytest.raises(TypeError, match="'module' must be a Module"):
        layers.append(np.zeros(2))
    with pytest.raises(TypeError, match="defines no backward"):
        layers.backward(np.zeros(2))
    d = nn.ModuleDict({"enc": nn.Linear(2, 2), "dec": nn.Linear(2, 1)})
    assert list(d.state_dict()) == ["enc.weight", "enc.bias", "dec.weight", "dec.bias"]
    assert "enc" in d and list(d) == ["enc", "dec"] and isinstance(d.pop("enc"), nn.Linear)
    assert list(d.state_dict()) == ["dec.weight", "dec.bias"] and len(d) == 1
