"""Dropout beyond the registry sweep (which feeds torch our mask): statistics of the mask, whole
channels, alpha-dropout moments, torch's real mask put through our scaling, reproducibility,
identity cases, modules, warnings and errors."""
from __future__ import annotations

import copy
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn as tnn
import torch.nn.functional as TF

import scratchnn as snn
import scratchnn.functional as F
import scratchnn.nn as nn
from scratchnn.textbook.dropout import ALPHA, scaled_noise

ALL = ["dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout",
       "feature_alpha_dropout"]
SHAPE = {"dropout1d": (2, 3, 4), "dropout3d": (2, 3, 2, 2, 2)}     # else (2, 3, 4, 5)
CHANNEL = {"dropout1d": (64, 50, 7), "dropout2d": (64, 50, 3, 3), "dropout3d": (64, 50, 2, 2, 2),
           "feature_alpha_dropout": (64, 50, 3, 3)}


def _binomial_ok(k: int, n: int, p: float, z: float = 5.0) -> bool:
    return abs(k - n * p) <= z * math.sqrt(n * p * (1 - p)) + 1


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_zero_rate_is_binomial_and_survivors_are_scaled(p):
    x = np.ones((200, 1000), np.float32)
    y = F.dropout(x, p, generator=np.random.default_rng(7))
    zeros = int(np.sum(y == 0))
    assert _binomial_ok(zeros, x.size, p), (zeros, x.size * p)
    assert np.all(y[y != 0] == np.float32(1) / np.float32(1 - p))


@pytest.mark.parametrize("name", sorted(CHANNEL))
def test_channel_variants_drop_whole_channels(name):
    shape = CHANNEL[name]
    x = np.random.default_rng(0).standard_normal(shape) + 5.0          # no accidental zeros
    p = 0.3
    y, pullback = snn.vjp(getattr(F, name), x, p, True, generator=np.random.default_rng(1))
    dx = pullback(np.ones_like(y))[0]
    flat, gflat = y.reshape(shape[0] * shape[1], -1), dx.reshape(shape[0] * shape[1], -1)
    rows_const = np.all(gflat == gflat[:, :1], axis=1)                # one factor per channel
    assert rows_const.all()
    dropped = gflat[:, 0] == 0 if "alpha" not in name else \
        np.isclose(flat[:, 0], flat[:, 0].min()) & np.all(np.isclose(flat, flat[:, :1]), axis=1)
    assert _binomial_ok(int(dropped.sum()), flat.shape[0], p)


def test_unbatched_channel_dropout_keeps_channels_whole():
    x = np.random.default_rng(0).standard_normal((40, 6)) + 5.0
    y = F.dropout1d(x, 0.5, generator=np.random.default_rng(2))      # (C, L)
    per_channel = (y == 0).sum(axis=1)
    assert set(per_channel) <= {0, 6} and 0 < (per_channel == 6).sum() < 40
    y3 = F.dropout3d(np.ones((40, 2, 2, 2)), 0.5, generator=np.random.default_rng(2))
    assert set((y3 == 0).reshape(40, -1).sum(axis=1)) <= {0, 8}


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_alpha_dropout_keeps_zero_mean_and_unit_variance(p):
    x = np.random.default_rng(3).standard_normal(1_000_000)
    y = F.alpha_dropout(x, p, True, generator=np.random.default_rng(4))
    assert abs(y.mean()) < 0.01 and abs(y.var() - 1) < 0.01
    a = 1 / math.sqrt((ALPHA ** 2 * p + 1) * (1 - p))
    dropped = np.isclose(y, ALPHA * a * (p - 1))                        # the saturation value
    assert _binomial_ok(int(dropped.sum()), x.size, p)


@pytest.mark.parametrize("name, shape", [("dropout", (50, 40)), ("dropout2d", (8, 30, 3, 3)),
                                         ("alpha_dropout", (50, 40)),
                                         ("feature_alpha_dropout", (8, 30, 3, 3))])
@pytest.mark.parametrize("p", [0.2, 0.7])
def test_torchs_own_mask_through_our_scaling_gives_torchs_output(name, shape, p):
    """The other direction from the registry: read the mask back from torch's real output and
    check that our scaling reproduces torch's values (float32)."""
    torch.manual_seed(0)
    x = np.random.default_rng(5).uniform(1, 2, shape).astype(np.float32)   # never 0
    ty = getattr(TF, name)(torch.tensor(x), p, True).numpy()
    alpha = "alpha" in name
    if alpha:
        a = 1 / math.sqrt((ALPHA ** 2 * p + 1) * (1 - p))
        keep = ~np.isclose(ty, ALPHA * a * (p - 1), rtol=0, atol=1e-6)
    else:
        keep = ty != 0
    if "2d" in name or "feature" in name:
        keep = keep.reshape(shape[:2] + (-1,))[..., :1].reshape(shape[:2] + (1, 1))
    noise, b = scaled_noise(keep, p, np.dtype(np.float32), alpha)
    ours = x * noise + (0 if b is None else b)
    np.testing.assert_allclose(ours, ty, rtol=2e-7, atol=1e-6)
    assert 0 < keep.mean() < 1


@pytest.mark.parametrize("name", ALL)
def test_reproducible_with_manual_seed_and_with_a_passed_generator(name):
    x = np.random.default_rng(0).standard_normal(SHAPE.get(name, (2, 3, 4, 5)))
    f = getattr(F, name)
    snn.manual_seed(11)
    y1 = f(x, 0.5, True)
    snn.manual_seed(11)
    y2 = f(x, 0.5, True)
    np.testing.assert_array_equal(y1, y2)
    snn.manual_seed(12)
    assert not np.array_equal(y1, f(x, 0.5, True))
    # a passed generator is used instead of (and leaves alone) the default one
    snn.manual_seed(13)
    ref = copy.deepcopy(snn.default_generator())
    g1 = f(x, 0.5, True, generator=np.random.default_rng(99))
    g2 = f(x, 0.5, True, generator=np.random.default_rng(99))
    np.testing.assert_array_equal(g1, g2)
    assert snn.default_generator().random() == ref.random()


@pytest.mark.parametrize("name", ALL)
def test_p0_eval_and_empty_are_the_identity_and_p1_gives_zeros(name):
    f = getattr(F, name)
    x = np.random.default_rng(0).standard_normal(SHAPE.get(name, (2, 3, 4, 5)))
    x = x.astype(np.float32)
    dy = np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    for kwargs in (dict(p=0.0, training=True), dict(p=0.5, training=False)):
        y, pullback = snn.vjp(f, x, **kwargs)
        assert y is x                                   # the input itself, as torch
        assert pullback(dy)[0] is dy
    empty = np.zeros((0,) + x.shape[1:], np.float32)
    assert f(empty, 0.5, True) is empty
    y, pullback = snn.vjp(f, x, 1.0, True)
    assert y.dtype == np.float32 and not y.any() and not pullback(dy)[0].any()


def test_backward_uses_the_saved_mask():
    x = np.random.default_rng(0).uniform(1, 2, (30, 30))
    y, pullback = snn.vjp(F.dropout, x, 0.4, generator=np.random.default_rng(3))
    dy = np.random.default_rng(4).standard_normal(x.shape)
    dx = pullback(dy)[0]
    np.testing.assert_array_equal(dx == 0, y == 0)
    np.testing.assert_allclose(dx[y != 0], dy[y != 0] / 0.6, rtol=1e-15)
    np.testing.assert_allclose(pullback(dy)[0], dx)                  # same mask every call


def test_inplace_true_is_refused_inputs_are_never_modified():
    x = np.ones((20, 20), np.float32)
    for op in (F.dropout, F.dropout1d, F.dropout2d, F.alpha_dropout, F.feature_alpha_dropout):
        with pytest.raises(ValueError, match=rf"{op.__name__}\(\): parameter 'inplace'"):
            op(x, 0.5, True, True)
    with pytest.raises(ValueError, match="'inplace'"):
        nn.Dropout(0.5, inplace=True)
    y = F.dropout(x, 0.5, True, False, generator=np.random.default_rng(0))
    assert y is not x and np.all(x == 1)


def test_dropout2d_warns_like_torch_for_3d_and_other_ranks():
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        F.dropout2d(np.ones((2, 3, 4)), generator=np.random.default_rng(0))
        F.dropout2d(np.ones((2, 3, 4, 4)), generator=np.random.default_rng(0))
        F.dropout2d(np.ones((2, 3)), generator=np.random.default_rng(0))
        F.dropout3d(np.ones((2, 3, 4)), generator=np.random.default_rng(0))
        F.dropout3d(np.ones((2, 3, 4, 4)), generator=np.random.default_rng(0))
    messages = [str(m.message) for m in w]
    assert any("dropout2d: Received a 3D input" in m for m in messages)
    assert any("dropout2d: Received a 2-D input" in m for m in messages)
    assert any("dropout3d: Received a 3-D input" in m for m in messages)
    assert len(messages) == 3                         # 4-D dropout2d / dropout3d are silent


def _dropped_and_kept(y, x, p, alpha):
    """Which entries of y are x dropped / x kept under (alpha) dropout's scaling."""
    if not alpha:
        return y == 0, np.isclose(y, x / (1 - p), rtol=1e-6, atol=0)
    a = 1 / math.sqrt((ALPHA ** 2 * p + 1) * (1 - p))
    return (np.isclose(y, ALPHA * a * (p - 1), rtol=1e-6, atol=1e-6),
            np.isclose(y, a * x + ALPHA * a * p, rtol=1e-6, atol=1e-6))


MODULES = [("Dropout", (2, 3, 4, 4)), ("Dropout1d", (2, 3, 4)), ("Dropout2d", (2, 3, 4, 4)),
           ("Dropout3d", (2, 3, 2, 2, 2)), ("AlphaDropout", (2, 3, 4)),
           ("FeatureAlphaDropout", (2, 3, 4, 4))]


@pytest.mark.parametrize("name, shape", MODULES)
def test_modules_train_and_eval_like_torch(name, shape):
    x = np.random.default_rng(0).uniform(1, 2, shape).astype(np.float32)
    ours = getattr(nn, name)(0.5, generator=np.random.default_rng(1))
    theirs = getattr(tnn, name)(0.5)
    assert ours.training and repr(ours) == repr(theirs)
    y = ours(x)
    dy = np.ones_like(x)
    dx = ours.backward(dy, retain_graph=True)
    np.testing.assert_array_equal(dx, ours._pullback(dy)[0])
    ty = theirs(torch.tensor(x)).numpy()            # torch's mask is its own: both outputs
    for out in (y, ty):                              # must be x dropped or kept, and scaled
        dropped, kept = _dropped_and_kept(out, x, 0.5, "Alpha" in name)
        assert np.all(dropped | kept) and dropped.any() and kept.any()
    ours.eval()
    theirs.eval()
    assert ours(x) is x and ours.backward(dy) is dy
    np.testing.assert_array_equal(theirs(torch.tensor(x)).numpy(), x)
    again = getattr(nn, name)(0.5, generator=np.random.default_rng(1))
    np.testing.assert_array_equal(again(x), y)                       # reproducible layer


ERRORS = [
    (F.dropout, (np.ones(3),), {"p": -0.1}, ValueError, "p"),
    (F.dropout2d, (np.ones((2, 3, 4, 4)),), {"p": 1.5}, ValueError, "p"),
    (F.alpha_dropout, (np.ones(3),), {"p": float("nan")}, ValueError, "p"),
    (F.dropout, (np.ones(3),), {"training": 1}, TypeError, "training"),
    (F.dropout3d, (np.ones((2, 3, 2, 2, 2)),), {"inplace": "no"}, TypeError, "inplace"),
    (F.dropout1d, (np.ones((2, 3, 4, 5)),), {}, ValueError, "input"),
    (F.feature_alpha_dropout, (np.ones(4),), {"training": True}, ValueError, "input"),
    (F.dropout, (np.arange(3),), {}, TypeError, "input"),
    (F.dropout, (np.ones(3),), {"generator": np.random.RandomState(0)}, TypeError, "generator"),
]


@pytest.mark.parametrize("op, args, kwargs, error, param", ERRORS,
                         ids=[f"{e[0].__name__}-{e[4]}" for e in ERRORS])
def test_bad_arguments_name_the_function_and_parameter(op, args, kwargs, error, param):
    with pytest.raises(error, match=rf"{op.__name__}\(\): parameter '{param}'"):
        op(*args, **kwargs)


def test_module_rejects_bad_p():
    with pytest.raises(ValueError, match=r"Dropout2d\(\): parameter 'p'"):
        nn.Dropout2d(1.2)
