"""Losses beyond the registry: modules against torch.nn's loss modules, conventions, errors.

The registry (``reference/specs/loss.py``, run by ``test_equivalence.py``) already checks every
functional loss against torch over the whole argument space, with finite differences. Here:

* each module (every constructor option) against the torch module: forward, ``backward()`` =
  torch's input gradient, module == functional, state_dict (weight buffers) both ways;
* the backward rule: ``dloss=None`` is 1.0, a number or a 0-d array scales, ``reduction='none'``
  needs an explicit ``dloss``;
* conventions at kinks and edges (sign(0) = 0, |d| = beta/delta, the −100 log clamp,
  0·log 0 = 0, nan means of nothing, all-ignored targets), and identities between the losses;
* torch's deprecated ``size_average``/``reduce`` pair;
* bad input: messages that name the function and the parameter.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import scratchnn
import scratchnn.functional as F
import scratchnn.nn as nn
import scratchnn.textbook as T
from reference.values import seeds
from tests.conftest import examples

TNN = torch.nn


def _inputs(name, rng, dtype):
    """(input, target) suited to the loss, plus the torch target."""
    if name in ("NLLLoss", "CrossEntropyLoss"):
        x = rng.standard_normal((4, 3, 2))
        t = rng.integers(0, 3, (4, 2))
        t[0, 0] = 1 if name == "NLLLoss" else t[0, 0]
        return x.astype(dtype), t
    if name == "BCELoss":
        return rng.uniform(0.05, 0.95, (4, 3)).astype(dtype), rng.uniform(0, 1, (4, 3)).astype(dtype)
    if name == "KLDivLoss":
        return rng.standard_normal((4, 3)).astype(dtype), rng.uniform(0.1, 1, (4, 3)).astype(dtype)
    return rng.standard_normal((4, 3)).astype(dtype), rng.standard_normal((4, 3)).astype(dtype)


W3 = np.array([0.5, 2.0, 1.0])
MODULES = [
    ("NLLLoss", {}), ("NLLLoss", {"weight": W3, "ignore_index": 1}),
    ("NLLLoss", {"reduction": "sum"}),
    ("CrossEntropyLoss", {}), ("CrossEntropyLoss", {"weight": W3, "label_smoothing": 0.2}),
    ("CrossEntropyLoss", {"ignore_index": 0, "reduction": "sum"}),
    ("MSELoss", {}), ("MSELoss", {"reduction": "sum"}), ("L1Loss", {}),
    ("SmoothL1Loss", {"beta": 0.5}), ("SmoothL1Loss", {"beta": 0.0}),
    ("HuberLoss", {"delta": 0.7}), ("HuberLoss", {"reduction": "sum"}),
    ("BCELoss", {}), ("BCELoss", {"weight": np.array([1.0, 0.5, 2.0])}),
    ("BCEWithLogitsLoss", {}),
    ("BCEWithLogitsLoss", {"weight": np.array([1.0, 0.5, 2.0]),
                           "pos_weight": np.array([3.0, 1.0, 0.2])}),
    ("KLDivLoss", {"reduction": "batchmean"}), ("KLDivLoss", {"log_target": True}),
]


def _torch_kwargs(kw, dtype):
    return {k: (torch.tensor(v.astype(dtype)) if isinstance(v, np.ndarray) else v)
            for k, v in kw.items()}


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,kw", MODULES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(MODULES)])
def test_module_matches_torch_module(name, kw, dtype):
    rng = np.random.default_rng(0)
    x, t = _inputs(name, rng, dtype)
    ours = getattr(nn, name)(**{k: (v.astype(dtype) if isinstance(v, np.ndarray) else v)
                                for k, v in kw.items()})
    theirs = getattr(TNN, name)(**_torch_kwargs(kw, dtype))
    tx = torch.tensor(x, requires_grad=True)
    tt = torch.tensor(t)
    loss, ref = ours(x, t), theirs(tx, tt)
    assert loss.dtype == dtype and loss.shape == tuple(ref.shape)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(loss, ref.detach().numpy(), rtol=rtol, atol=rtol)
    dl = rng.standard_normal(loss.shape).astype(dtype) if loss.ndim else None
    dx = ours.backward(dl)
    ref.backward(torch.tensor(dl) if dl is not None else None)
    assert dx.dtype == dtype and dx.shape == x.shape
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=rtol, atol=rtol)
    # module == functional, same keywords
    fn = type(ours)._fn
    opts = ours._kwargs()
    np.testing.assert_array_equal(fn(x, t, **opts), loss)
    # state_dict: torch's keys, and torch's loads
    sd = ours.state_dict()
    assert sorted(sd) == sorted(theirs.state_dict())
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})


def test_backward_rule_dloss():
    x = np.random.default_rng(1).standard_normal((3, 4))
    t = np.zeros((3, 4))
    crit = nn.MSELoss()
    crit(x, t)
    d1 = crit.backward(retain_graph=True)
    np.testing.assert_allclose(d1, 2 * x / 12)
    np.testing.assert_allclose(crit.backward(2.5, retain_graph=True), 2.5 * d1)
    np.testing.assert_allclose(crit.backward(np.asarray(-1.0)), -d1)
    with pytest.raises(RuntimeError, match="second time.*retain_graph=True"):
        crit.backward()                                  # the last call freed it, as torch
    crit(x, t)
    np.testing.assert_allclose(crit.backward(), d1)     # a new forward saves it again
    none = nn.MSELoss(reduction="none")
    none(x, t)
    with pytest.raises(ValueError, match=r"MSELoss.backward\(\): parameter 'dloss'"):
        none.backward()
    np.testing.assert_allclose(none.backward(np.ones((3, 4))), 2 * x)
    with pytest.raises(RuntimeError, match="before forward"):
        nn.L1Loss().backward()


def test_module_float32_weight_follows_to():
    crit = nn.CrossEntropyLoss(weight=W3).float()
    assert crit.weight.dtype == np.float32
    x = np.random.default_rng(2).standard_normal((5, 3)).astype(np.float32)
    assert crit(x, np.arange(5) % 3).dtype == np.float32
    assert crit.backward().dtype == np.float32


# -- conventions and identities -------------------------------------------------------------------
def grads(f, *args, **kw):
    out, pb = scratchnn.vjp(f, *args, **kw)
    return out, pb(np.ones_like(out))


def test_kink_conventions_match_torch():
    x = np.array([0.0, 1.0, -1.0, 0.5, -0.5, 2.0])
    t = np.zeros(6)
    tx = torch.tensor(x, requires_grad=True)
    for f, tf, kw in [(F.l1_loss, torch.nn.functional.l1_loss, {}),
                      (F.smooth_l1_loss, torch.nn.functional.smooth_l1_loss, {"beta": 1.0}),
                      (F.smooth_l1_loss, torch.nn.functional.smooth_l1_loss, {"beta": 0.0}),
                      (F.huber_loss, torch.nn.functional.huber_loss, {"delta": 0.5})]:
        _, (dx, dt) = grads(f, x, t, reduction="none", **kw)
        tx.grad = None
        tf(tx, torch.tensor(t), reduction="none", **kw).sum().backward()
        np.testing.assert_array_equal(dx, tx.grad.numpy())
        np.testing.assert_array_equal(dt, -dx)
    _, (dx, _) = grads(F.l1_loss, x, t, reduction="none")
    assert dx[0] == 0.0                                          # sign(0) = 0
    _, (dx, _) = grads(F.huber_loss, x, t, reduction="none", delta=0.5)
    np.testing.assert_array_equal(dx[3:5], [0.5, -0.5])          # |d| = delta: slope delta


def test_edges_bce_clamp_kl_zero_and_empty_means():
    loss = F.binary_cross_entropy(np.array([0.0, 1.0]), np.array([1.0, 0.0]), reduction="none")
    np.testing.assert_array_equal(loss, [100.0, 100.0])          # log clamped at −100
    kl = F.kl_div(np.array([0.3, -2.0]), np.array([0.0, 0.5]), reduction="none")
    assert kl[0] == 0.0                                           # 0·log 0 = 0
    for f, a, b in [(F.mse_loss, np.zeros((0, 3)), np.zeros((0, 3))),
                    (F.nll_loss, np.zeros((0, 3)), np.zeros(0, np.int64)),
                    (F.cross_entropy, np.zeros((0, 3)), np.zeros((0, 3)))]:
        with warnings.catch_warnings():
            warnings.simplefilter("error")                        # no numpy warnings either
            assert np.isnan(f(a, b))
            assert f(a, b, reduction="sum") == 0.0
    x = np.random.default_rng(0).standard_normal((2, 3))
    out, (dx, _) = grads(F.nll_loss, x, np.array([-100, -100]))
    assert np.isnan(out) and np.all(dx == 0)                      # all ignored: nan, zero grad


@pytest.mark.parametrize("ls", [0.0, 0.1])
def test_cross_entropy_zero_total_weight_is_nan_as_torch(ls):
    # every target's class weight is 0: 'mean' divides by Σ w[t_n] = 0. torch averages the
    # label-smoothing term apart from the NLL term, so the NLL term's 0/0 makes the loss NaN
    # (a single combined sum over 0 gave +inf here; found by the thorough profile).
    x, t, w = np.array([[1.81, 0.89], [0.3, -1.2]]), np.array([0, 0]), np.array([0.0, 1.9])
    ours = F.cross_entropy(x, t, weight=w, label_smoothing=ls)
    ref = torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(t),
                                            weight=torch.tensor(w), label_smoothing=ls)
    assert np.isnan(ours) and torch.isnan(ref)
    for red in ("sum", "none"):                                   # these stay finite
        np.testing.assert_allclose(
            F.cross_entropy(x, t, weight=w, label_smoothing=ls, reduction=red),
            torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(t),
                                              weight=torch.tensor(w), label_smoothing=ls,
                                              reduction=red).numpy(), rtol=1e-12)


@settings(max_examples=examples(1.0))
@given(seed=seeds, n=st.integers(1, 5), c=st.integers(2, 5),
       ls=st.sampled_from([0.0, 0.3]))
def test_cross_entropy_identities(seed, n, c, ls):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c))
    t = rng.integers(0, c, n)
    w = rng.uniform(0.5, 2.0, c)
    ce = F.cross_entropy(x, t, weight=w, label_smoothing=ls)
    onehot = np.eye(c)[t]
    # class indices == one-hot probabilities when unweighted; log_softmax + nll without smoothing
    np.testing.assert_allclose(F.cross_entropy(x, t, label_smoothing=ls),
                               F.cross_entropy(x, onehot, label_smoothing=ls), rtol=1e-12)
    if ls == 0:
        logp = x - x.max(1, keepdims=True)
        logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
        np.testing.assert_allclose(ce, F.nll_loss(logp, t, weight=w), rtol=1e-12)
    # the input gradient sums to zero over classes (softmax is shift-invariant)
    _, (dx, _) = grads(F.cross_entropy, x, t, weight=w, label_smoothing=ls)
    np.testing.assert_allclose(dx.sum(1), 0.0, atol=1e-12)
    # unbatched == a batch of one
    np.testing.assert_allclose(F.cross_entropy(x[0], t[0], reduction="none"),
                               F.cross_entropy(x[:1], t[:1], reduction="none")[0])
    # batchmean KL = sum / N
    p = np.exp(x) / np.exp(x).sum(1, keepdims=True)
    np.testing.assert_allclose(F.kl_div(x, p, reduction="batchmean"),
                               F.kl_div(x, p, reduction="sum") / n)


def test_legacy_size_average_reduce_match_torch():
    rng = np.random.default_rng(3)
    x, t = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    tx, tt = torch.tensor(x), torch.tensor(t)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for sa, rd in [(None, False), (False, None), (True, True), (False, True), (True, None)]:
            ours = F.mse_loss(x, t, size_average=sa, reduce=rd)
            ref = torch.nn.functional.mse_loss(tx, tt, size_average=sa, reduce=rd).numpy()
            np.testing.assert_allclose(ours, ref, rtol=1e-12)
            crit = TNN.L1Loss(size_average=sa, reduce=rd)
            assert nn.L1Loss(size_average=sa, reduce=rd).reduction == crit.reduction
    with pytest.raises(TypeError, match="'reduce'"):
        F.mse_loss(x, t, reduce="yes")


# -- errors -------------------------------------------------------------------------------------
X, P = np.zeros((2, 3)), np.full((2, 3), 0.5)


@pytest.mark.parametrize("call,fn,param", [
    (lambda: F.mse_loss(X, np.zeros((3, 2))), "mse_loss", "target"),
    (lambda: F.l1_loss(X, np.zeros((2, 1))), "l1_loss", "target"),
    (lambda: F.smooth_l1_loss(X, X, beta=-0.5), "smooth_l1_loss", "beta"),
    (lambda: F.huber_loss(X, X, delta=0.0), "huber_loss", "delta"),
    (lambda: F.huber_loss(X, X, reduction="batchmean"), "huber_loss", "reduction"),
    (lambda: F.nll_loss(X, np.array([0, 3])), "nll_loss", "target"),
    (lambda: F.nll_loss(X, np.array([0, -5]), ignore_index=-1), "nll_loss", "target"),
    (lambda: F.nll_loss(X, np.array([0.0, 1.0])), "nll_loss", "target"),
    (lambda: F.nll_loss(X, np.array([0, 1]), reduction="mean "), "nll_loss", "reduction"),
    (lambda: F.nll_loss(X, np.array([0, 1]), ignore_index=1.5), "nll_loss", "ignore_index"),
    (lambda: F.cross_entropy(X, np.array([0, 1]), label_smoothing=2.0), "cross_entropy",
     "label_smoothing"),
    (lambda: F.cross_entropy(X, P, ignore_index=0), "cross_entropy", "ignore_index"),
    (lambda: F.cross_entropy(X, np.zeros((2, 4))), "cross_entropy", "target"),
    (lambda: F.cross_entropy(X, np.array([0, 1]), weight=np.ones(4)), "cross_entropy", "weight"),
    (lambda: F.binary_cross_entropy(np.full((2, 3), 1.01), P), "binary_cross_entropy", "input"),
    (lambda: F.binary_cross_entropy(P, np.full((2, 3), -1e-3)), "binary_cross_entropy",
     "target"),
    (lambda: F.binary_cross_entropy_with_logits(X, P, pos_weight=np.ones(2)),
     "binary_cross_entropy_with_logits", "pos_weight"),
    (lambda: F.kl_div(X, P, reduction="batch"), "kl_div", "reduction"),
    (lambda: F.mse_loss(X, P.astype(np.float32)), "mse_loss", "target"),
    (lambda: F.mse_loss(X.tolist(), P), "mse_loss", "input"),
    (lambda: nn.CrossEntropyLoss(label_smoothing=-0.5), "CrossEntropyLoss", "label_smoothing"),
    (lambda: nn.SmoothL1Loss(beta=-1.0), "SmoothL1Loss", "beta"),
    (lambda: nn.HuberLoss(delta=-1.0), "HuberLoss", "delta"),
    (lambda: nn.NLLLoss(reduction="avg"), "NLLLoss", "reduction"),
    (lambda: nn.KLDivLoss(reduction="avg"), "KLDivLoss", "reduction"),
    (lambda: nn.BCEWithLogitsLoss(pos_weight=[1.0]), "BCEWithLogitsLoss", "pos_weight"),
])
def test_bad_input_names_function_and_parameter(call, fn, param):
    with pytest.raises((ValueError, TypeError)) as e:
        call()
    msg = str(e.value)
    assert f"{fn}()" in msg and f"'{param}'" in msg, msg


@pytest.mark.parametrize("shape", [(5, 4), (4,), (3, 4, 2)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nll_loss_fast_path_equals_the_weighted_path(shape, reduction, dtype):
    """No weight and nothing ignored takes a fast path (−x[n, t_n], fancy indexing in 2-d);
    it must equal the general path (weight = ones, or an ignore_index hit by no target) bit
    for bit, forward and backward, including a NaN and an infinite logit."""
    rng = np.random.default_rng(len(shape))
    x = rng.standard_normal(shape).astype(dtype)
    x.flat[0], x.flat[-1] = np.nan, -np.inf
    C = shape[0] if len(shape) == 1 else shape[1]
    t = rng.integers(0, C, () if len(shape) == 1 else (shape[0],) + shape[2:])
    dout = np.asarray(1.5 if reduction != "none" else rng.standard_normal(t.shape), dtype)
    fast, pb = scratchnn.vjp(F.nll_loss, x, t, reduction=reduction)
    for kw in ({"weight": np.ones(C, dtype)}, {"ignore_index": C}):
        slow, pb_slow = scratchnn.vjp(F.nll_loss, x, t, reduction=reduction, **kw)
        assert fast.dtype == slow.dtype == dtype
        np.testing.assert_array_equal(fast, slow)
        np.testing.assert_array_equal(pb(dout)[0], pb_slow(dout)[0])
    book, pb_book = scratchnn.vjp(T.nll_loss, x, t, reduction=reduction)   # the textbook too
    np.testing.assert_array_equal(fast, book)
    np.testing.assert_array_equal(pb(dout)[0], pb_book(dout)[0])


def test_plain_losses_live_once_and_the_fast_ones_name_their_route():
    """The plain losses are the textbook's own objects; nll_loss and cross_entropy are twins,
    and the one route decision names the path nll_loss takes."""
    from scratchnn.functional import loss as L
    from scratchnn.textbook.loss import class_targets
    for name in ("mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "binary_cross_entropy",
                 "binary_cross_entropy_with_logits", "kl_div", "legacy_reduction"):
        assert getattr(F, name) is getattr(T, name), name
    assert F.nll_loss is not T.nll_loss and F.cross_entropy is not T.cross_entropy
    x, t = np.zeros((2, 3)), np.array([0, 2])
    assert L.choose_route(class_targets("nll_loss", x, t, None, -100)) == "unweighted"
    assert L.choose_route(class_targets("nll_loss", x, t, np.ones(3), -100)) == "weighted"
    assert L.choose_route(class_targets("nll_loss", x, t, None, 2)) == "weighted"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [1, 2])
def test_cross_entropy_on_log_softmax_row_blocks_equals_the_textbook(monkeypatch, dtype,
                                                                     threads):
    """A classifier-sized batch takes the fast log_softmax's row blocks (over threads): the
    values and input gradient equal the textbook's whole-array edition, smoothing included."""
    from scratchnn.perf import threads as parallel
    monkeypatch.setattr(parallel, "MIN_PARALLEL", 1)
    monkeypatch.setattr(F.activation, "_ROW_BLOCK_BYTES", 64)
    before = parallel.get_num_threads()
    parallel.set_num_threads(threads)
    try:
        rng = np.random.default_rng(threads)
        x = (rng.standard_normal((37, 11)) * 3).astype(dtype)
        t = rng.integers(0, 11, 37)
        for kw in ({}, {"label_smoothing": 0.1, "weight": rng.random(11).astype(dtype)}):
            fast, pb = scratchnn.vjp(F.cross_entropy, x, t, **kw)
            book, pb_book = scratchnn.vjp(T.cross_entropy, x, t, **kw)
            np.testing.assert_array_equal(fast, book)
            np.testing.assert_array_equal(pb(np.asarray(0.7, dtype))[0],
                                          pb_book(np.asarray(0.7, dtype))[0])
    finally:
        parallel.set_num_threads(before)
