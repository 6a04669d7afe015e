"""Registry entries for the losses.

Every strategy draws the whole argument space torch defines for the op: each reduction, weights
(per class, or broadcastable per element), ``ignore_index`` hits (including all-ignored batches,
whose 'mean' is nan as in torch), label smoothing, class-probability targets, unbatched inputs,
K-dimensional inputs (N, C, d1, d2) and empty batches. The ``ties`` regime puts inputs exactly on
the kinks (x = t for l1, |x − t| = beta/delta, x ∈ {0, 1} for BCE, t = 0 for kl_div).
"""
from __future__ import annotations

import warnings

import numpy as np
import torch.nn.functional as TF
from hypothesis import strategies as st

import scratchnn.functional as F
from reference.registry import Case, OpSpec, Reject, register
from reference.values import batch_shapes, make, seeds

reductions = st.sampled_from(["none", "mean", "sum"])
TIE_POOL = np.array([-1.0, -0.5, 0.0, 0.5, 1.0, 2.0])


@st.composite
def class_layout(d, allow_zero: bool = True):
    """(input shape, target shape, C): unbatched (C,), (N, C) or (N, C, d1[, d2]), N = 0 now
    and then."""
    C = d(st.integers(1, 5))
    kind = d(st.sampled_from(["unbatched", "2d", "2d", "kd"]))
    if kind == "unbatched":
        return (C,), (), C
    N = d(st.integers(0, 4)) if allow_zero and d(st.integers(0, 7)) == 0 else d(st.integers(1, 4))
    spatial = tuple(d(st.lists(st.integers(1, 3), min_size=1, max_size=2))) if kind == "kd" else ()
    return (N, C) + spatial, (N,) + spatial, C


@st.composite
def class_options(d, rng, tshape, C, prob: bool = False):
    """(target, kwargs): class indices with some entries on ignore_index (or probabilities),
    weight (sometimes with zeros) and reduction."""
    kw = {"reduction": d(reductions)}
    if d(st.booleans()):
        w = rng.uniform(0.1, 2.0, C)
        if d(st.integers(0, 4)) == 0:
            w[rng.integers(0, C)] = 0.0
        kw["weight"] = w
    if prob:
        if d(st.booleans()):
            kw["ignore_index"] = -1                      # torch allows only negative here
        return None, kw
    t = rng.integers(0, C, tshape)
    ii = d(st.sampled_from([None, -100, -1, 0, C - 1]))
    if ii is not None:
        kw["ignore_index"] = ii
    hit = -100 if ii is None else ii
    mode = d(st.sampled_from(["some", "some", "none", "all"]))
    if mode != "none":
        mask = rng.random(tshape) < 0.3 if mode == "some" else np.ones(tshape, bool)
        t = np.where(mask, hit, t)
    return np.asarray(t, dtype=np.int64), kw


def nll_cases(regime: str):
    @st.composite
    def draw(d):
        ishape, tshape, C = d(class_layout())
        rng = np.random.default_rng(d(seeds))
        t, kw = d(class_options(rng, tshape, C))
        return Case((make(ishape, rng, regime), t), kw)
    return draw()


def cross_entropy_cases(regime: str):
    @st.composite
    def draw(d):
        ishape, tshape, C = d(class_layout())
        rng = np.random.default_rng(d(seeds))
        prob = d(st.booleans())
        t, kw = d(class_options(rng, tshape, C, prob=prob))
        if prob:                                         # class probabilities, x's shape
            cdim = 0 if len(ishape) == 1 else 1
            raw = rng.uniform(0.0, 1.0, ishape)
            t = raw / np.maximum(raw.sum(axis=cdim, keepdims=True), 1e-12) \
                if d(st.booleans()) else raw             # normalised, or any non-negative
        ls = d(st.sampled_from([0.0, 0.0, 0.1, 0.5, 1.0]))
        if ls:
            kw["label_smoothing"] = ls
        return Case((make(ishape, rng, regime, scale=2.0), t), kw)
    return draw()


def pair_values(shape, rng, regime):
    """(x, t): normal pairs, or in the ``ties`` regime both from a small pool so that x = t and
    |x − t| ∈ {0.5, 1, 1.5, 2, ...} happen exactly."""
    if regime == "ties":
        return rng.choice(TIE_POOL, size=shape), rng.choice(TIE_POOL, size=shape)
    return make(shape, rng, regime), make(shape, rng, regime)


def regression_cases(option: str | None = None, values=(), weighted: bool = True):
    """mse/l1 (weighted), smooth_l1 (beta), huber (delta, weighted): any shape."""
    def cases(regime: str):
        @st.composite
        def draw(d):
            shape = d(batch_shapes(max_lead=4))
            rng = np.random.default_rng(d(seeds))
            x, t = pair_values(shape, rng, regime)
            kw = {"reduction": d(reductions)}
            if option is not None and d(st.integers(0, 3)):
                kw[option] = d(st.sampled_from(values))
            if weighted and d(st.booleans()):
                kw["weight"] = rng.uniform(0.1, 2.0, shape)
            return Case((x, t), kw)
        return draw()
    return cases


@st.composite
def broadcast_weight(d, rng, shape):
    """None, a full-shape weight, a trailing-dims weight, or a 0-d one (all broadcast to
    ``shape``)."""
    kind = d(st.sampled_from(["none", "full", "trailing", "scalar"]))
    if kind == "none":
        return None
    if kind == "full":
        return rng.uniform(0.1, 2.0, shape)
    if kind == "trailing" and shape:
        k = d(st.integers(1, len(shape)))
        return rng.uniform(0.1, 2.0, shape[-k:])
    return np.asarray(rng.uniform(0.1, 2.0))


@st.composite
def weight_options(d, rng, shape, names):
    """A reduction and, for each name in ``names``, maybe a broadcastable weight."""
    kw = {"reduction": d(reductions)}
    for name in names:
        w = d(broadcast_weight(rng, shape))
        if w is not None:
            kw[name] = w
    return kw


def bce_cases(regime: str):
    @st.composite
    def draw(d):
        shape = d(batch_shapes(max_lead=4))
        rng = np.random.default_rng(d(seeds))
        if regime == "ties":                             # exact 0 and 1: the −100 clamp
            x = rng.choice([0.0, 0.5, 1.0], size=shape)
            t = rng.choice([0.0, 0.5, 1.0], size=shape)
        elif regime == "away":                           # inside (0, 1): finite differences
            x = rng.uniform(0.05, 0.95, shape)
            t = rng.uniform(0.05, 0.95, shape)
        else:
            x = rng.uniform(0.02, 0.98, shape)
            t = rng.uniform(0.0, 1.0, shape) if d(st.booleans()) else \
                rng.integers(0, 2, shape).astype(np.float64)
        return Case((x, t), d(weight_options(rng, shape, ("weight",))))
    return draw()


def bce_logits_cases(regime: str):
    @st.composite
    def draw(d):
        shape = d(batch_shapes(max_lead=4))
        rng = np.random.default_rng(d(seeds))
        x = make(shape, rng, regime, scale=3.0)
        if d(st.integers(0, 3)) == 0:                    # large logits: the stable form
            x = np.asarray(x * 20.0)
        t = rng.uniform(0.0, 1.0, shape)
        return Case((x, t), d(weight_options(rng, shape, ("weight", "pos_weight"))))
    return draw()


def kl_div_cases(regime: str):
    @st.composite
    def draw(d):
        shape = d(batch_shapes(max_lead=4))
        rng = np.random.default_rng(d(seeds))
        x = make(shape, rng, regime)
        kw = {"reduction": d(st.sampled_from(["none", "mean", "sum", "batchmean"]))}
        if d(st.booleans()):
            kw["log_target"] = True
            t = make(shape, rng, regime)
        elif regime == "ties":                           # exact zeros: 0·log 0 = 0
            t = rng.choice([0.0, 0.25, 1.0], size=shape)
        else:
            t = rng.uniform(0.05, 1.0, shape)
        return Case((x, t), kw)
    return draw()


def torch_kl_div(*args, **kwargs):
    with warnings.catch_warnings():                      # torch's notice about 'mean'
        warnings.simplefilter("ignore")
        return TF.kl_div(*args, **kwargs)


X23, T2 = np.zeros((2, 3)), np.array([0, 1])
P23 = np.full((2, 3), 0.5)

register(OpSpec(
    "nll_loss", F.nll_loss, TF.nll_loss, nll_cases, family="loss",
    rejects=[
        Reject((X23, np.array([0, 1, 2])), {}, "target"),
        Reject((X23, np.array([0, 3])), {}, "target"),
        Reject((X23, np.array([0, -1])), {}, "target"),
        Reject((X23, np.array([0.0, 1.0])), {}, "target"),
        Reject((X23, T2), {"reduction": "avg"}, "reduction"),
        Reject((X23, T2), {"weight": np.ones(2)}, "weight"),
        Reject((np.zeros(()), np.array(0)), {}, "input"),
    ],
))

register(OpSpec(
    "cross_entropy", F.cross_entropy, TF.cross_entropy, cross_entropy_cases, diff=(0, 1),
    family="loss",
    rejects=[
        Reject((X23, T2), {"label_smoothing": 1.5}, "label_smoothing"),
        Reject((X23, T2), {"label_smoothing": -0.1}, "label_smoothing", torch_rejects=False),
        Reject((X23, np.array([0, 5])), {}, "target"),
        Reject((X23, np.array([[0, 1]])), {}, "target"),
        Reject((X23, P23), {"ignore_index": 1}, "ignore_index"),
        Reject((X23, T2), {"reduction": "batchmean"}, "reduction"),
        Reject((X23, T2), {"weight": np.ones((3, 1))}, "weight"),
    ],
))

_pair_rejects = [
    Reject((X23, np.zeros((2, 3), np.float32)), {}, "target", torch_rejects=False),
    Reject((X23, np.zeros(3)), {}, "target", torch_rejects=False),   # torch broadcasts
    Reject((X23, X23), {"reduction": "avg"}, "reduction"),
    Reject((np.zeros((2, 3), np.int64), X23), {}, "input", torch_rejects=False),
]
_weight_reject = [Reject((X23, X23), {"weight": np.ones(3)}, "weight")]

register(OpSpec(
    "mse_loss", F.mse_loss, TF.mse_loss, regression_cases(), diff=(0, 1),
    regimes=("normal", "ties"), family="loss", rejects=_pair_rejects + _weight_reject,
))
register(OpSpec(
    "l1_loss", F.l1_loss, TF.l1_loss, regression_cases(), diff=(0, 1),
    regimes=("normal", "ties"), family="loss", rejects=_pair_rejects + _weight_reject,
))
register(OpSpec(
    "smooth_l1_loss", F.smooth_l1_loss, TF.smooth_l1_loss,
    regression_cases("beta", (0.0, 0.5, 1.0, 2.0), weighted=False), diff=(0, 1),
    regimes=("normal", "ties"), family="loss",
    rejects=_pair_rejects + [Reject((X23, X23), {"beta": -1.0}, "beta")],
))
register(OpSpec(
    "huber_loss", F.huber_loss, TF.huber_loss,
    regression_cases("delta", (0.5, 1.0, 2.0)), diff=(0, 1),
    regimes=("normal", "ties"), family="loss",
    rejects=_pair_rejects[:2] + _weight_reject + [
        Reject((X23, X23), {"delta": 0.0}, "delta"),
        Reject((X23, X23), {"delta": -1.0}, "delta"),
        Reject((X23, X23), {"reduction": "avg"}, "reduction", torch_rejects=False)],
))
register(OpSpec(
    "binary_cross_entropy", F.binary_cross_entropy, TF.binary_cross_entropy, bce_cases,
    diff=(0, 1), regimes=("normal", "away", "ties"), family="loss",
    rejects=[
        Reject((np.full((2, 3), 1.5), P23), {}, "input"),
        Reject((np.full((2, 3), -0.5), P23), {}, "input"),
        Reject((P23, np.full((2, 3), 1.2)), {}, "target"),
        Reject((P23, np.full(3, 0.5)), {}, "target"),
        Reject((P23, P23), {"weight": np.ones(2)}, "weight"),
        Reject((P23, P23), {"reduction": "avg"}, "reduction"),
    ],
))
register(OpSpec(
    "binary_cross_entropy_with_logits", F.binary_cross_entropy_with_logits,
    TF.binary_cross_entropy_with_logits, bce_logits_cases, diff=(0, 1), family="loss",
    rejects=[
        Reject((X23, np.zeros(3)), {}, "target"),
        Reject((X23, P23), {"pos_weight": np.ones(2)}, "pos_weight"),
        Reject((X23, P23), {"weight": np.ones((4, 3))}, "weight"),
        Reject((X23, P23), {"reduction": "avg"}, "reduction"),
    ],
))
register(OpSpec(
    "kl_div", F.kl_div, torch_kl_div, kl_div_cases, diff=(0, 1),
    regimes=("normal", "ties"), gradcheck_regime="normal", family="loss",
    rejects=[
        Reject((X23, P23), {"reduction": "avg"}, "reduction"),
        Reject((X23, np.zeros(3)), {}, "target", torch_rejects=False),
        Reject((X23, P23), {"log_target": "yes"}, "log_target", torch_rejects=False),
    ],
))
