"""MultiheadAttention against torch.nn.MultiheadAttention, and the attention ops' conventions.

The functional ops (scaled_dot_product_attention, multi_head_attention_forward) run through the
registry (reference/specs/attention.py) in tests/test_equivalence.py and tests/test_textbook.py;
here the module: a torch state_dict loaded, then the output, the weights, dquery/dkey/dvalue and
every parameter gradient compared for random upstream gradients, over masks, layouts and
options; dropout with the mask replayed to torch; fully masked rows; use inside a forward-only
Module; torch's init; bad input.
"""
from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch

import scratchnn
import scratchnn.functional as F
import scratchnn.nn as nn
import scratchnn.textbook as T
from reference.specs.attention import _given_masks

E, H, L, S, N = 8, 2, 5, 4, 3
TOL = {np.float32: dict(rtol=1e-4, atol=2e-5), np.float64: dict(rtol=1e-9, atol=1e-10)}
TDT = {np.float32: torch.float32, np.float64: torch.float64}


def pair(dtype=np.float64, generator=None, **kw):
    tm = torch.nn.MultiheadAttention(E, H, dtype=TDT[dtype], **kw)
    m = nn.MultiheadAttention(E, H, dtype=dtype, generator=generator, **kw)
    m.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    return m, tm


def inputs(rng, dtype, batch_first=True, batched=True, kdim=E, vdim=E, Lq=L, Sk=S):
    def seq(T, n):
        shape = ((N, T, n) if batch_first else (T, N, n)) if batched else (T, n)
        return rng.standard_normal(shape).astype(dtype)
    return seq(Lq, E), seq(Sk, kdim), seq(Sk, vdim)


def check(m, tm, q, k, v, rng, dtype, self_attn=False, **call):
    """Forward both, backward with random upstream gradients, compare everything."""
    tol = TOL[dtype]
    if self_attn:
        k = v = q
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # torch's deprecation warning on mixed masks
        out, w = m(q, k, v, **call)
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    if self_attn:
        tk = tv = tq
    tcall = {key: torch.tensor(val) if isinstance(val, np.ndarray) else val
             for key, val in call.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        to, tw = tm(tq, tk, tv, **tcall)
    assert out.dtype == dtype and out.shape == tuple(to.shape)
    np.testing.assert_allclose(out, to.detach().numpy(), **tol)
    assert (w is None) == (tw is None)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dw = None if w is None else rng.standard_normal(w.shape).astype(dtype)
    if w is not None:
        np.testing.assert_allclose(w, tw.detach().numpy(), **tol)
    dq, dk, dv = m.backward(dout, dw)
    loss = (to * torch.tensor(dout)).sum()
    if tw is not None:
        loss = loss + (tw * torch.tensor(dw)).sum()
    loss.backward()
    if self_attn:
        np.testing.assert_allclose(dq + dk + dv, tq.grad.numpy(), **tol)
    else:
        for g, t in ((dq, tq), (dk, tk), (dv, tv)):
            assert g.dtype == dtype
            np.testing.assert_allclose(g, t.grad.numpy(), **tol)
    tparams = dict(tm.named_parameters())
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.dtype == dtype, name
        np.testing.assert_allclose(p.grad, tparams[name].grad.numpy(), **tol, err_msg=name)
    return out, w


MASKS = ["none", "bool", "float", "3d", "kpm_bool", "kpm_float", "causal", "both"]


def make_mask(kind, rng, dtype, batched=True, Lq=L, Sk=S):
    if kind == "none":
        return {}
    if kind == "bool":
        return {"attn_mask": rng.random((Lq, Sk)) < 0.3}
    if kind == "float":
        return {"attn_mask": rng.standard_normal((Lq, Sk)).astype(dtype)}
    if kind == "3d":
        return {"attn_mask": rng.standard_normal(((N if batched else 1) * H, Lq, Sk)).astype(dtype)}
    if kind == "kpm_bool":
        return {"key_padding_mask": rng.random((N, Sk) if batched else (Sk,)) < 0.3}
    if kind == "kpm_float":
        return {"key_padding_mask": rng.standard_normal((N, Sk) if batched else (Sk,)).astype(dtype)}
    if kind == "causal":
        return {"attn_mask": np.triu(np.ones((Lq, Sk), bool), 1), "is_causal": True}
    return {"attn_mask": rng.standard_normal((Lq, Sk)).astype(dtype),
            "key_padding_mask": rng.random((N, Sk) if batched else (Sk,)) < 0.3}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("mask", MASKS)
@pytest.mark.parametrize("need_weights", [True, False])
def test_module_matches_torch(dtype, batch_first, mask, need_weights):
    rng = np.random.default_rng(MASKS.index(mask) + 10 * batch_first)
    m, tm = pair(dtype, batch_first=batch_first)
    Sk = L if mask == "causal" else S
    q, k, v = inputs(rng, dtype, batch_first, Sk=Sk)
    check(m, tm, q, k, v, rng, dtype, need_weights=need_weights,
          **make_mask(mask, rng, dtype, Lq=L, Sk=Sk))


@pytest.mark.parametrize("options", [
    dict(add_bias_kv=True), dict(add_zero_attn=True), dict(add_bias_kv=True, add_zero_attn=True),
    dict(kdim=3, vdim=6), dict(bias=False), dict(kdim=5, bias=False, add_bias_kv=True)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_module_options(options, dtype):
    rng = np.random.default_rng(1)
    m, tm = pair(dtype, batch_first=True, **options)
    q, k, v = inputs(rng, dtype, kdim=options.get("kdim", E), vdim=options.get("vdim", E))
    check(m, tm, q, k, v, rng, dtype, key_padding_mask=rng.random((N, S)) < 0.3,
          attn_mask=rng.standard_normal((L, S)).astype(dtype))
    check(m, tm, q, k, v, rng, dtype, average_attn_weights=False)
    m.zero_grad()
    tm.zero_grad()
    check(m, tm, q, k, v, rng, dtype, need_weights=False)


@pytest.mark.parametrize("mask", ["none", "3d", "kpm_float", "causal"])
@pytest.mark.parametrize("need_weights", [True, False])
def test_unbatched(mask, need_weights):
    rng = np.random.default_rng(2)
    m, tm = pair(np.float64, batch_first=True)        # batch_first is ignored when unbatched
    Sk = L if mask == "causal" else S
    q, k, v = inputs(rng, np.float64, batched=False, Sk=Sk)
    out, w = check(m, tm, q, k, v, rng, np.float64, need_weights=need_weights,
                   average_attn_weights=False, **make_mask(mask, rng, np.float64, False, L, Sk))
    assert out.shape == (L, E) and (w is None or w.shape == (H, L, Sk))


def test_self_attention_and_batch_zero():
    rng = np.random.default_rng(3)
    m, tm = pair(np.float64, batch_first=True)
    x, _, _ = inputs(rng, np.float64)
    check(m, tm, x, x, x, rng, np.float64, self_attn=True,
          attn_mask=np.triu(np.ones((L, L), bool), 1))
    empty = np.zeros((0, L, E))
    out, w = m(empty, empty, empty)
    assert out.shape == (0, L, E) and w.shape == (0, L, L)
    dq, dk, dv = m.backward(np.zeros_like(out), np.zeros_like(w))
    assert dq.shape == empty.shape


@pytest.mark.parametrize("need_weights", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fully_masked_rows(need_weights, dtype):
    """Every key of sample 1 padded: 0 with need_weights=False (torch's SDPA), NaN with
    need_weights=True (torch's plain softmax) — both as torch, forward and gradients."""
    rng = np.random.default_rng(4)
    m, tm = pair(dtype, batch_first=True)
    q, k, v = inputs(rng, dtype)
    kpm = np.zeros((N, S), bool)
    kpm[1] = True
    out, w = m(q, k, v, key_padding_mask=kpm, need_weights=need_weights)
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    to, tw = tm(tq, tk, tv, key_padding_mask=torch.tensor(kpm), need_weights=need_weights)
    assert np.isnan(out[1]).all() == need_weights
    np.testing.assert_allclose(out, to.detach().numpy(), **TOL[dtype])     # NaN where torch's
    dout = rng.standard_normal(out.shape).astype(dtype)
    dq, dk, dv = m.backward(dout)
    (to * torch.tensor(dout)).sum().backward()
    for g, t in ((dq, tq), (dk, tk), (dv, tv)):
        np.testing.assert_allclose(g, t.grad.numpy(), **TOL[dtype])
    if not need_weights:
        assert not np.isnan(dq).any() and np.all(dk[1] == 0) and np.all(dv[1] == 0)


@pytest.mark.parametrize("need_weights", [True, False])
def test_dropout_with_replayed_mask(need_weights):
    """Training mode, dropout 0.4: torch gets the mask our generator draws (its dropout /
    SDPA swapped for the duration of the call), so everything matches; eval is deterministic."""
    rng = np.random.default_rng(5)
    gen = np.random.default_rng(42)
    m, tm = pair(np.float64, batch_first=True, dropout=0.4, generator=gen)
    q, k, v = inputs(rng, np.float64)
    twin = copy.deepcopy(m.generator)          # its state right before the forward's draw
    with _given_masks(twin, H):
        out, w = check(m, tm, q, k, v, rng, np.float64, need_weights=need_weights,
                       attn_mask=rng.standard_normal((L, S)))
    if need_weights:
        assert (w == 0).any()                  # torch returns the weights after dropout
    out2, _ = m(q, k, v)
    assert not np.allclose(out, out2)          # a fresh mask every forward
    m.eval()
    tm.eval()
    a, _ = m(q, k, v)
    b, _ = m(q, k, v)
    np.testing.assert_array_equal(a, b)


def test_dropout_mask_statistics():
    """The attention dropout keeps each weight with probability 1 − p, scaled by 1/(1 − p), with
    the mask that ``dropout_mask`` draws from the same generator state."""
    z, eye = np.zeros((64, 1)), np.eye(64)
    out = F.scaled_dot_product_attention(z, z, eye, dropout_p=0.25,
                                         generator=np.random.default_rng(0))
    keep = F.dropout_mask((64, 64), 0.25, np.random.default_rng(0))   # P = 1/64 everywhere
    np.testing.assert_allclose(out, keep / 0.75 / 64, rtol=1e-12)
    assert abs(keep.mean() - 0.75) < 0.02


class Block(nn.Module):
    """A pre-norm causal self-attention block, written forward-only."""

    def __init__(self, batch_first=True):
        super().__init__()
        self.norm = nn.LayerNorm(E, dtype=np.float64)
        self.attn = nn.MultiheadAttention(E, H, batch_first=batch_first, dtype=np.float64)
        self.fc = nn.Linear(E, E, dtype=np.float64)

    def forward(self, x, mask):
        h = self.norm(x)
        a, _ = self.attn(h, h, h, attn_mask=mask, need_weights=False, is_causal=True)
        return self.fc(x + a)


def test_inside_forward_only_module():
    rng = np.random.default_rng(6)
    b = Block()
    tb = torch.nn.ModuleDict({"norm": torch.nn.LayerNorm(E, dtype=torch.float64),
                              "attn": torch.nn.MultiheadAttention(E, H, batch_first=True,
                                                                  dtype=torch.float64),
                              "fc": torch.nn.Linear(E, E, dtype=torch.float64)})
    b.load_state_dict({k: v.detach().numpy() for k, v in tb.state_dict().items()})
    x = rng.standard_normal((N, L, E))
    mask = np.triu(np.full((L, L), -np.inf), 1)
    y = b(x, mask)
    dy = rng.standard_normal(y.shape)
    dx, dmask = b.backward(dy)          # a float mask is a float input: it gets a gradient
    assert np.all(dmask == 0)            # (0: is_causal without padding uses the built-in mask)
    tx = torch.tensor(x, requires_grad=True)
    h = tb["norm"](tx)
    a, _ = tb["attn"](h, h, h, attn_mask=torch.tensor(mask), need_weights=False, is_causal=True)
    ty = tb["fc"](tx + a)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    tparams = dict(tb.named_parameters())
    for name, p in b.named_parameters():
        np.testing.assert_allclose(p.grad, tparams[name].grad.numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=name)


def test_state_dict_and_init():
    m = nn.MultiheadAttention(16, 4, add_bias_kv=True, generator=np.random.default_rng(0))
    tm = torch.nn.MultiheadAttention(16, 4, add_bias_kv=True)
    assert list(m.state_dict()) == list(tm.state_dict())
    assert {k: v.shape for k, v in m.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in tm.state_dict().items()}
    sep = nn.MultiheadAttention(16, 4, kdim=5, vdim=7, bias=False)
    tsep = torch.nn.MultiheadAttention(16, 4, kdim=5, vdim=7, bias=False)
    assert list(sep.state_dict()) == list(tsep.state_dict())
    assert m.in_proj_weight.dtype == np.float32
    bound = np.sqrt(6 / (16 + 48))                          # xavier_uniform_ of (3E, E)
    w = m.in_proj_weight.data
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert np.all(m.in_proj_bias.data == 0) and np.all(m.out_proj.bias.data == 0)
    assert 0.5 < m.bias_k.data.std() / np.sqrt(2 / 32) < 1.5          # xavier_normal_


def test_backward_before_forward_and_twice():
    m = nn.MultiheadAttention(E, H, dtype=np.float64)
    with pytest.raises(RuntimeError, match="before forward"):
        m.backward(np.zeros((L, N, E)))
    x = np.random.default_rng(7).standard_normal((L, N, E))
    out, _ = m(x, x, x)
    d = np.random.default_rng(8).standard_normal(out.shape)
    m.backward(d)
    g1 = m.in_proj_weight.grad.copy()
    m.backward(d)                                          # the saved state is kept: adds again
    np.testing.assert_allclose(m.in_proj_weight.grad, 2 * g1)


@pytest.mark.parametrize("build, call, param", [
    (dict(embed_dim=8, num_heads=3), None, "num_heads"),
    (dict(embed_dim=0, num_heads=1), None, "embed_dim"),
    (dict(embed_dim=8, num_heads=2, kdim=3), dict(key=(S, N, 4)), "k_proj_weight"),
    (dict(embed_dim=8, num_heads=2), dict(key=(S, N, 6), value=(S, N, 6)), "key"),
    (dict(embed_dim=8, num_heads=2), dict(query=(L, N, 6)), "query"),
    (dict(embed_dim=8, num_heads=2), dict(key=(S, 2, 8), value=(S, 2, 8)), "key"),
    (dict(embed_dim=8, num_heads=2), dict(value=(S + 1, N, 8)), "value"),
    (dict(embed_dim=8, num_heads=2), dict(attn_mask=np.zeros((L, S + 1))), "attn_mask"),
    (dict(embed_dim=8, num_heads=2), dict(attn_mask=np.zeros((L, S), np.int64)), "attn_mask"),
    (dict(embed_dim=8, num_heads=2), dict(attn_mask=np.zeros((5, L, S))), "attn_mask"),
    (dict(embed_dim=8, num_heads=2), dict(key_padding_mask=np.zeros((N, S + 1), bool)),
     "key_padding_mask"),
    (dict(embed_dim=8, num_heads=2), dict(key_padding_mask=np.zeros(S, bool)),
     "key_padding_mask"),
    (dict(embed_dim=8, num_heads=2), dict(is_causal=True), "attn_mask"),
])
def test_bad_input(build, call, param):
    rng = np.random.default_rng(9)
    with pytest.raises((ValueError, TypeError)) as e:
        m = nn.MultiheadAttention(**build, dtype=np.float64)
        shapes = {"query": (L, N, 8), "key": (S, N, build.get("kdim") or 8),
                  "value": (S, N, build.get("vdim") or 8)}
        call = dict(call)
        shapes.update({k: call.pop(k) for k in list(call) if k in shapes})
        q, k, v = (rng.standard_normal(shapes[n]) for n in ("query", "key", "value"))
        m(q, k, v, **call)
    assert param in str(e.value) and "MultiheadAttention" in str(e.value) or \
        param in str(e.value) and "multi_head_attention_forward" in str(e.value)


def test_sdpa_errors_name_the_parameter():
    q = np.zeros((2, 3, 4))
    with pytest.raises(ValueError, match="scaled_dot_product_attention.*attn_mask"):
        F.scaled_dot_product_attention(q, q, q, np.zeros((3, 3)), is_causal=True)
    with pytest.raises(TypeError, match="scaled_dot_product_attention.*generator"):
        F.scaled_dot_product_attention(q, q, q, dropout_p=0.5, generator=1)
    with pytest.raises(TypeError, match="dtype"):
        F.scaled_dot_product_attention(q, q.astype(np.float32), q)


def test_inputs_not_modified_and_dtype_kept():
    rng = np.random.default_rng(10)
    x = rng.standard_normal((N, L, E)).astype(np.float32)
    mask = rng.standard_normal((L, L)).astype(np.float64)     # a float64 mask on float32 data
    before = x.copy(), mask.copy()
    m = nn.MultiheadAttention(E, H, batch_first=True)
    out, w = m(x, x, x, attn_mask=mask)
    dq, dk, dv = m.backward(rng.standard_normal(out.shape).astype(np.float32))
    assert out.dtype == w.dtype == dq.dtype == np.float32
    np.testing.assert_array_equal(x, before[0])
    np.testing.assert_array_equal(mask, before[1])



@pytest.mark.parametrize("batch, mask_shape", [((), (4, 6)), ((2,), (4, 6)), ((2,), (2, 4, 6)),
                                               ((3, 2), (2, 1, 6)), ((3, 2), (3, 1, 4, 6))])
def test_sdpa_float_mask_broadcast(batch, mask_shape):
    """A float mask broadcast over the batch dims: values, dQ, dK, dV and dM of both editions
    equal torch's; a mask with more dims than the scores is rejected by both editions."""
    import scratchnn
    import scratchnn.textbook as T
    rng = np.random.default_rng(11)
    q, k, v = (rng.standard_normal(batch + s) for s in ((4, 5), (6, 5), (6, 3)))
    mask = rng.standard_normal(mask_shape)
    out, pull = scratchnn.vjp(F.scaled_dot_product_attention, q, k, v, mask)
    out_b, pull_b = scratchnn.vjp(T.scaled_dot_product_attention, q, k, v, mask)
    dout = rng.standard_normal(out.shape)
    grads, grads_b = pull(dout), pull_b(dout)
    tq, tk, tv, tm = (torch.tensor(a, requires_grad=True) for a in (q, k, v, mask))
    tout = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, tm)
    tout.backward(torch.tensor(dout))
    np.testing.assert_allclose(out, out_b, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out, tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    for g, gb, t in zip(grads, grads_b, (tq, tk, tv, tm)):
        np.testing.assert_allclose(g, gb, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-10, atol=1e-12)
    for sdpa in (F.scaled_dot_product_attention, T.scaled_dot_product_attention):
        with pytest.raises(ValueError, match="scaled_dot_product_attention.*attn_mask"):
            sdpa(q, k, v, rng.standard_normal((5,) + batch + (4, 6)))


@pytest.mark.parametrize("L, S", [(1, 2), (3, 4), (4, 3)])
def test_sdpa_causal_with_scale_zero_is_the_documented_formula(L, S):
    """scale = 0 with is_causal: every score is 0 before the mask, so each query averages the
    keys it may see. torch 2.13's CPU kernel returns NaN there (it scales after masking,
    0·(−inf)); its documented formula — and the same call with the explicit lower-triangular
    mask — give the average, and so does scratchnn (both editions, values and gradients)."""
    rng = np.random.default_rng(L * 10 + S)
    q, k, v = (rng.standard_normal((2, L, 3)), rng.standard_normal((2, S, 3)),
               rng.standard_normal((2, S, 2)))
    keep = np.tril(np.ones((L, S), dtype=bool))
    dout = rng.standard_normal((2, L, 2))
    t = [torch.tensor(a, requires_grad=True) for a in (q, k, v)]
    ref = torch.nn.functional.scaled_dot_product_attention(*t, attn_mask=torch.tensor(keep),
                                                          scale=0.0)
    ref.backward(torch.tensor(dout))
    expect = (keep / keep.sum(1, keepdims=True)) @ v                 # the plain average
    np.testing.assert_allclose(ref.detach().numpy(), expect, rtol=1e-12)
    for E in (F, T):
        out, pb = scratchnn.vjp(E.scaled_dot_product_attention, q, k, v, is_causal=True,
                                scale=0.0)
        np.testing.assert_allclose(out, expect, rtol=1e-12)
        for g, tt in zip(pb(dout)[:3], t):
            np.testing.assert_allclose(g, tt.grad.numpy(), rtol=1e-10, atol=1e-12)
