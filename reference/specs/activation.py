"""Registry entries for the activations.

Every elementwise op draws any shape (0-d and zero-size included), every keyword (each one
sometimes omitted to exercise the default, ``inplace=False`` sometimes passed explicitly) and
values in the regimes that matter for it: ``away`` keeps values ``margin`` from the op's kinks
(gradients and finite differences), ``ties`` puts values exactly on them (torch's kink
conventions: relu'(0) = 0, hardtanh'(±1) = 0, hardswish'(−3) = 0, ...).
"""
from __future__ import annotations

import numpy as np
import torch
from hypothesis import strategies as st

import scratchnn.functional as F
from reference.registry import Case, OpSpec, Reject, register
from reference.values import batch_shapes, make, seeds

TF = torch.nn.functional
OMIT = object()                          # a drawn keyword that is left out (default used)


def opt(strategy):
    """A keyword that is sometimes omitted, so the default is exercised too."""
    return st.one_of(st.just(OMIT), strategy)


def unary_cases(kinks=(0.0,), scale=2.0, kw=None, **extra):
    """Cases for an elementwise op: any shape (0-d and zero-size included) plus drawn options.

    ``extra`` maps a keyword to a strategy for its value (``OMIT`` leaves it out); ``kw`` is an
    alternative strategy for the whole keyword dict (for keywords that depend on each other);
    ``kinks`` may be a function of the drawn keywords (softplus's threshold/β).
    """
    def cases(regime: str):
        @st.composite
        def draw(d):
            shape = d(batch_shapes(max_lead=4))
            rng = np.random.default_rng(d(seeds))
            kwargs = dict(d(kw)) if kw is not None else {}
            kwargs.update({k: d(v) for k, v in extra.items()})
            kwargs = {k: v for k, v in kwargs.items() if v is not OMIT}
            ks = kinks(kwargs) if callable(kinks) else kinks
            return Case((make(shape, rng, regime, kinks=ks, scale=scale),), kwargs)
        return draw()
    return cases


def common_rejects(fn, **bad):
    """Non-array and integer inputs (torch accepts both, so only we must reject them), plus
    ``bad`` keyword values that both sides reject."""
    x = np.linspace(-2, 2, 6).reshape(2, 3)
    out = [Reject(([1.0, 2.0],), {}, "input", torch_rejects=False),
           Reject((np.arange(3),), {}, "input", torch_rejects=False)]
    out += [Reject((x,), {k: v}, k) for k, v in bad.items()]
    return out


def inplace_rejects():
    x = np.linspace(-2, 2, 6)
    return [Reject((x,), {"inplace": True}, "inplace", torch_rejects=False),
            Reject((x,), {"inplace": "yes"}, "inplace", torch_rejects=False)]


def elementwise(name, ours, theirs, cases, kinked=True, inplace=False, bad=None, **kw):
    regimes = ("normal", "away", "ties") if kinked else ("normal", "ties")
    rejects = common_rejects(name, **(bad or {})) + (inplace_rejects() if inplace else [])
    register(OpSpec(name, ours, theirs, cases, regimes=regimes, family="activation",
                    rejects=rejects, **kw))


INPLACE = dict(inplace=opt(st.just(False)))
slopes = st.one_of(st.sampled_from([0.01, 0.0, 0.2, -0.5, 1.0]), st.floats(-2, 2))
alphas = st.one_of(st.sampled_from([1.0, 0.5, 2.0]), st.floats(-2, 3))
# a negative α makes celu grow like e^{x/α} for x < 0: |α| ≥ 0.5 keeps e^{x/α} below ~1e7 at the
# drawn x, where float64 finite differences of a randomly projected loss are still accurate
celu_alphas = st.one_of(st.sampled_from([1.0, 0.5, -1.0]), st.floats(0.2, 3), st.floats(-3, -0.5))


@st.composite
def hardtanh_bounds(d):
    lo = d(st.integers(-12, 4)) / 4                       # binary fractions: exact kinks
    hi = lo + d(st.integers(1, 16)) / 4
    return {"min_val": lo, "max_val": hi}


softplus_kw = st.fixed_dictionaries({
    "beta": opt(st.one_of(st.sampled_from([1.0, 2.0, 0.5, -1.0]), st.floats(0.3, 3))),
    "threshold": opt(st.one_of(st.sampled_from([20.0, 1.0, 2.0, 0.5]), st.floats(0.1, 10))),
})


def softplus_kinks(kw):
    return (kw.get("threshold", 20.0) / kw.get("beta", 1.0),)


# sigmoid and tanh have no kinks; the ties regime still pins 0 and repeated values
elementwise("sigmoid", F.sigmoid, torch.sigmoid, unary_cases(scale=4.0), kinked=False)
elementwise("tanh", F.tanh, torch.tanh, unary_cases(scale=4.0), kinked=False)
elementwise("relu", F.relu, TF.relu, unary_cases(**INPLACE), inplace=True)
elementwise("leaky_relu", F.leaky_relu, TF.leaky_relu,
            unary_cases(negative_slope=opt(slopes), **INPLACE), inplace=True,
            bad={"negative_slope": "a"})
elementwise("elu", F.elu, TF.elu, unary_cases(alpha=opt(alphas), **INPLACE), inplace=True,
            bad={"alpha": "a"})
elementwise("selu", F.selu, TF.selu, unary_cases(**INPLACE), inplace=True)
# torch's celu backward uses 1/α rounded to float32 even in float64, so its gradient
# e^{x/α} carries a relative error of up to ~6e-8·|x/α| (|x/α| reaches ~30 here); scratchnn keeps
# the exact 1/α, so float64 gradients are compared at rtol 5e-6 instead of 1e-7.
elementwise("celu", F.celu, TF.celu, unary_cases(alpha=opt(celu_alphas), **INPLACE),
            inplace=True, bad={"alpha": 0.0}, tol={"float64": (5e-6, 1e-7)})
elementwise("gelu", F.gelu, TF.gelu,
            unary_cases(scale=4.0, approximate=opt(st.sampled_from(["none", "tanh"]))),
            kinked=False, bad={"approximate": "foo"})
elementwise("silu", F.silu, TF.silu, unary_cases(scale=4.0, **INPLACE), kinked=False,
            inplace=True)
elementwise("mish", F.mish, TF.mish, unary_cases(scale=4.0, **INPLACE), kinked=False,
            inplace=True)
elementwise("softplus", F.softplus, TF.softplus,
            unary_cases(kinks=softplus_kinks, scale=4.0, kw=softplus_kw),
            bad={"beta": "a", "threshold": None})
elementwise("hardtanh", F.hardtanh, TF.hardtanh,
            unary_cases(kinks=lambda kw: (kw["min_val"], kw["max_val"]), kw=hardtanh_bounds(),
                        **INPLACE),
            inplace=True, bad={"min_val": 2.0, "max_val": "a"})
elementwise("relu6", F.relu6, TF.relu6, unary_cases(kinks=(0.0, 6.0), scale=4.0, **INPLACE),
            inplace=True)
elementwise("hardsigmoid", F.hardsigmoid, TF.hardsigmoid,
            unary_cases(kinks=(-3.0, 3.0), scale=4.0, **INPLACE), inplace=True)
elementwise("hardswish", F.hardswish, TF.hardswish,
            unary_cases(kinks=(-3.0, 3.0), scale=4.0, **INPLACE), inplace=True)
elementwise("logsigmoid", F.logsigmoid, TF.logsigmoid, unary_cases(scale=4.0), kinked=False)
elementwise("softsign", F.softsign, TF.softsign, unary_cases(scale=4.0), kinked=False)
elementwise("tanhshrink", F.tanhshrink, TF.tanhshrink, unary_cases(scale=2.0), kinked=False)


# -- softmax family: any axis of any shape ---------------------------------------------------

def softmax_cases(regime: str):
    @st.composite
    def draw(d):
        shape = d(batch_shapes(max_lead=4))
        nd = len(shape)
        dim = d(st.integers(-max(nd, 1), max(nd, 1) - 1))
        rng = np.random.default_rng(d(seeds))
        x = make(shape, rng, regime, scale=3.0)
        if d(st.booleans()):
            return Case((x, dim))                         # dim positional
        return Case((x,), {"dim": dim})
    return draw()


def softmax_rejects():
    x = np.linspace(-2, 2, 6).reshape(2, 3)
    return [Reject((x,), {"dim": 2}, "dim"), Reject((x,), {"dim": -3}, "dim"),
            Reject((x,), {"dim": "a"}, "dim"), Reject((x,), {"dim": 1.0}, "dim"),
            Reject((x,), {"dim": 1, "dtype": "int32"}, "dtype"),
            Reject(([1.0, 2.0],), {"dim": 0}, "input", torch_rejects=False),
            Reject((np.arange(3),), {"dim": 0}, "input", torch_rejects=False)]


for _name in ("softmax", "log_softmax", "softmin"):
    register(OpSpec(_name, getattr(F, _name), getattr(TF, _name), softmax_cases,
                    regimes=("normal", "ties"), family="activation", rejects=softmax_rejects()))


# -- prelu: one weight or one per channel (dim 1), both differentiable ----------------------

def prelu_cases(regime: str):
    @st.composite
    def draw(d):
        shape = d(batch_shapes(max_lead=4))
        rng = np.random.default_rng(d(seeds))
        x = make(shape, rng, regime, scale=2.0)
        per_channel = len(shape) >= 2 and d(st.booleans())
        wshape = (shape[1],) if per_channel else d(st.sampled_from([(1,), ()]))
        w = rng.uniform(-1, 1, wshape)
        return Case((x, w))
    return draw()


_x = np.linspace(-2, 2, 24).reshape(2, 3, 4)
register(OpSpec(
    "prelu", F.prelu, TF.prelu, prelu_cases, diff=(0, 1), regimes=("normal", "away", "ties"),
    family="activation",
    rejects=[Reject((_x, np.full(4, 0.25)), {}, "weight"),          # count != channels
             Reject((_x, np.full((1, 3), 0.25)), {}, "weight"),     # weight not 1-d
             Reject((_x[0, 0], np.full(4, 0.25)), {}, "weight"),    # 1-d input: one channel
             Reject((_x, np.full(3, 0.25, np.float32)), {}, "weight"),
             Reject((_x, [0.25]), {}, "weight"),
             Reject(([1.0], np.full(1, 0.25)), {}, "input")],
))
