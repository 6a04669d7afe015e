"""Registry entries for the normalization family (batch/instance/group/layer/RMS norm) and
embedding / one_hot.

The strategies draw torch's whole argument space: 2-D to 5-D inputs, batch 1 and empty batches
where torch allows them, γ and β present or absent independently, eps from tiny to large,
train and eval. Two things the generic harness cannot see are tested in
tests/test_normalization.py instead: the running statistics that ``batch_norm`` and
``instance_norm`` update in place in training (here training runs without them; eval reads
them), and ``embedding``'s ``max_norm``, which renormalises rows of ``weight`` in place (the
harness checks that inputs are never modified).
"""
from __future__ import annotations

import numpy as np
import torch.nn.functional as TF
from hypothesis import strategies as st

import scratchnn.functional as F
from reference.registry import Case, OpSpec, Reject, register
from reference.values import batch_shapes, make, seeds

eps_values = st.sampled_from([1e-5, 1e-5, 1e-3, 0.1])


@st.composite
def affine_params(d, rng, shape, bias: bool = True):
    """(γ, β): each None or an array of ``shape`` (γ around 1, β around 0)."""
    w = 1.0 + 0.5 * rng.standard_normal(shape) if d(st.integers(0, 3)) else None
    b = make(shape, rng) if bias and d(st.integers(0, 3)) else None
    return w, b


@st.composite
def channel_input(d, rng, regime, min_ndim=2, max_ndim=5, min_spatial=1):
    """x (N, C, *spatial): N = 0 now and then, N = 1 often; spatial sizes ≥ ``min_spatial``."""
    ndim = d(st.integers(min_ndim, max_ndim))
    N = d(st.sampled_from([0, 1, 1, 2, 3, 4])) if d(st.integers(0, 7)) else 0
    C = d(st.integers(1, 4))
    spatial = tuple(d(st.integers(min_spatial, 4)) for _ in range(ndim - 2))
    return make((N, C) + spatial, rng, regime, scale=2.0) + d(st.sampled_from([0.0, 3.0]))


def batch_norm_cases(regime: str):
    @st.composite
    def draw(d):
        rng = np.random.default_rng(d(seeds))
        x = d(channel_input(rng, regime))
        C = x.shape[1]
        training = d(st.booleans())
        if training and x.size // C == 1:                 # torch: more than 1 value per channel
            x = np.concatenate([x, make(x.shape, rng, regime)])
        w, b = d(affine_params(rng, (C,)))
        kw = {"training": training, "eps": d(eps_values)}
        if d(st.booleans()):
            kw["momentum"] = d(st.sampled_from([0.0, 0.5, 1.0]))
        if training:                                       # running stats: see the docstring
            return Case((x, None, None, w, b), kw)
        rm, rv = make((C,), rng), rng.uniform(0.3, 3.0, C)
        return Case((x, rm, rv, w, b), kw)
    return draw()


def instance_norm_cases(regime: str):
    @st.composite
    def draw(d):
        rng = np.random.default_rng(d(seeds))
        x = d(channel_input(rng, regime, min_ndim=3, min_spatial=2))
        C = x.shape[1]
        w, b = d(affine_params(rng, (C,)))
        if x.shape[0] == 0:                 # torch's backward fails on an empty batch with γ/β
            w = b = None
        kw = {"eps": d(eps_values)}
        if d(st.booleans()):                               # use_input_stats=True (default)
            return Case((x, None, None, w, b), kw)
        rm, rv = make((C,), rng), rng.uniform(0.3, 3.0, C)
        return Case((x, rm, rv, w, b, False), kw)
    return draw()


def group_norm_cases(regime: str):
    @st.composite
    def draw(d):
        rng = np.random.default_rng(d(seeds))
        G, per = d(st.integers(1, 3)), d(st.integers(1, 3))
        N = d(st.sampled_from([0, 1, 2, 3]))
        spatial = tuple(d(st.lists(st.integers(1, 4), min_size=0, max_size=2)))
        if per * int(np.prod(spatial)) == 1 and d(st.booleans()):
            spatial = spatial + (2,)                       # a group of one value is allowed too
        if N * per * int(np.prod(spatial)) == 1:
            N = 2                                          # torch: more than 1 value
        x = make((N, G * per) + spatial, rng, regime, scale=2.0)
        w, b = d(affine_params(rng, (G * per,)))
        if w is None:                       # torch's backward fails with β but no γ
            b = None                        # ("tensor does not have a device")
        return Case((x, G, w, b), {"eps": d(eps_values)})
    return draw()


@st.composite
def trailing_input(d, rng, regime):
    """(x, normalized_shape): 1 or 2 trailing dimensions normalised, 0..2 leading ones."""
    shape = tuple(d(st.lists(st.integers(1, 5), min_size=1, max_size=2)))
    x = make(d(batch_shapes(shape, max_lead=2)), rng, regime, scale=2.0)
    return x + d(st.sampled_from([0.0, 2.0])), shape


def layer_norm_cases(regime: str):
    @st.composite
    def draw(d):
        rng = np.random.default_rng(d(seeds))
        x, shape = d(trailing_input(rng, regime))
        w, b = d(affine_params(rng, shape))
        return Case((x, list(shape) if d(st.booleans()) else shape, w, b),
                    {"eps": d(eps_values)})
    return draw()


def rms_norm_cases(regime: str):
    @st.composite
    def draw(d):
        rng = np.random.default_rng(d(seeds))
        x, shape = d(trailing_input(rng, regime))
        w, _ = d(affine_params(rng, shape, bias=False))
        eps = d(st.sampled_from([None, None, 1e-6, 1e-3]))
        return Case((x, shape, w), {} if eps is None else {"eps": eps})
    return draw()


def embedding_cases(regime: str):
    @st.composite
    def draw(d):
        rng = np.random.default_rng(d(seeds))
        V, D = d(st.integers(1, 6)), d(st.integers(1, 4))
        idx = rng.integers(0, V, d(batch_shapes(max_lead=3)))      # repeats: the scatter-add
        kw = {}
        if d(st.booleans()):
            kw["padding_idx"] = d(st.integers(-V, V - 1))
        if d(st.booleans()):
            kw["scale_grad_by_freq"] = True
        return Case((idx, make((V, D), rng, regime)), kw)
    return draw()


def one_hot_cases(regime: str):
    @st.composite
    def draw(d):
        rng = np.random.default_rng(d(seeds))
        K = d(st.integers(1, 5))
        idx = rng.integers(0, K, d(batch_shapes(max_lead=3)))
        if d(st.booleans()) or idx.size == 0:
            return Case((idx, K + d(st.integers(0, 2))))
        return Case((idx,))
    return draw()


def _z(*shape):
    return np.zeros(shape)


FAMILY = "normalization"

register(OpSpec(
    "batch_norm", F.batch_norm, TF.batch_norm, batch_norm_cases, diff=(0, 3, 4), family=FAMILY,
    rejects=[
        Reject((_z(1, 3), None, None), {"training": True}, "input"),
        Reject((_z(1, 3, 1, 1), _z(3), _z(3) + 1), {"training": True}, "input"),
        Reject((_z(4, 3, 5), _z(4), _z(3) + 1), {"training": True}, "running_mean"),
        Reject((_z(4, 3, 5), _z(3), _z(2) + 1), {"training": False}, "running_var"),
        Reject((_z(4, 3, 5), _z(3), None), {"training": True}, "running_var"),
        Reject((_z(4, 3, 5), None, None), {"training": False}, "running_mean"),
        Reject((_z(4, 3, 5), None, None, _z(4)), {"training": True}, "weight"),
        Reject((_z(4, 3, 5), None, None, None, _z(2)), {"training": True}, "bias"),
        Reject((_z(4, 3, 5).astype(np.float32), _z(3), _z(3) + 1), {}, "running_mean"),
        Reject(("x", None, None), {"training": True}, "input"),
    ],
))

register(OpSpec(
    "instance_norm", F.instance_norm, TF.instance_norm, instance_norm_cases, diff=(0, 3, 4),
    family=FAMILY,
    rejects=[
        Reject((_z(2, 3, 1),), {}, "input"),
        Reject((_z(2, 3, 4), _z(4), _z(3) + 1), {}, "running_mean"),
        Reject((_z(2, 3, 4), None, None), {"use_input_stats": False}, "running_mean"),
        Reject((_z(2, 3, 4), None, None, _z(2)), {}, "weight"),
    ],
))

register(OpSpec(
    "group_norm", F.group_norm, TF.group_norm, group_norm_cases, diff=(0, 2, 3), family=FAMILY,
    rejects=[
        Reject((_z(2, 6, 3), 4), {}, "num_groups"),
        Reject((_z(2, 6, 3), 0), {}, "num_groups"),
        Reject((_z(6), 3), {}, "input"),
        Reject((_z(2, 6, 3), 3, _z(3)), {}, "weight"),
        Reject((_z(1, 3), 3), {}, "input"),
    ],
))

register(OpSpec(
    "layer_norm", F.layer_norm, TF.layer_norm, layer_norm_cases, diff=(0, 2, 3), family=FAMILY,
    rejects=[
        Reject((_z(4, 3, 5), (4,)), {}, "normalized_shape"),
        Reject((_z(4, 3, 5), (3, 4)), {}, "normalized_shape"),
        Reject((_z(4, 3, 5), ()), {}, "normalized_shape"),
        Reject((_z(5), (2, 5)), {}, "normalized_shape"),
        Reject((_z(4, 5), (5,), _z(4)), {}, "weight"),
        Reject((_z(4, 5), (5,), None, _z(5, 1)), {}, "bias"),
    ],
))

register(OpSpec(
    "rms_norm", F.rms_norm, TF.rms_norm, rms_norm_cases, diff=(0, 2), family=FAMILY,
    rejects=[
        Reject((_z(4, 3, 5), (4,)), {}, "normalized_shape"),
        Reject((_z(4, 5), (5,), _z(4)), {}, "weight"),
    ],
))

register(OpSpec(
    "embedding", F.embedding, TF.embedding, embedding_cases, diff=(1,), family=FAMILY,
    gradcheck=False,     # padding_idx and scale_grad_by_freq are not the forward's derivative:
                         # tests/test_normalization.py gradchecks the plain lookup
    rejects=[
        Reject((np.array([0, 5]), _z(5, 3)), {}, "input"),
        Reject((np.array([-1, 2]), _z(5, 3)), {}, "input"),
        Reject((np.array([1.0]), _z(5, 3)), {}, "input"),
        Reject((np.array([1]), _z(5)), {}, "weight"),
        Reject((np.array([1]), _z(5, 3)), {"padding_idx": 5}, "padding_idx"),
        Reject((np.array([1]), _z(5, 3)), {"padding_idx": -6}, "padding_idx"),
    ],
))

register(OpSpec(
    "one_hot", F.one_hot, TF.one_hot, one_hot_cases, diff=(), family=FAMILY, gradcheck=False,
    rejects=[
        Reject((np.array([1, 3]), 3), {}, "tensor"),
        Reject((np.array([-1, 2]), 3), {}, "tensor"),
        Reject((np.array([1.0]),), {}, "tensor"),
        Reject((np.array([], dtype=np.int64),), {}, "num_classes"),
    ],
))
