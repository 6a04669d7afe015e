"""Registry entries for the fully-connected layer."""
from __future__ import annotations

import numpy as np
import torch
from hypothesis import strategies as st

import scratchnn.functional as F
from reference.registry import Case, OpSpec, Reject, register
from reference.values import batch_shapes, make, seeds


def linear_cases(regime: str):
    @st.composite
    def draw(d):
        fin, fout = d(st.integers(1, 9)), d(st.integers(1, 9))
        shape = d(batch_shapes((fin,), max_lead=3))
        rng = np.random.default_rng(d(seeds))
        x = make(shape, rng, regime)
        w = make((fout, fin), rng, regime) / np.sqrt(fin)
        if d(st.booleans()):
            return Case((x, w, make((fout,), rng, regime)))
        return Case((x, w))                       # bias omitted (default None)
    return draw()


register(OpSpec(
    "linear", F.linear, torch.nn.functional.linear, linear_cases, diff=(0, 1, 2),
    regimes=("normal",), family="linear",
    rejects=[
        Reject((np.zeros((2, 3)), np.zeros((4, 5))), {}, "weight"),
        Reject((np.zeros((2, 3)), np.zeros((4, 3)), np.zeros(5)), {}, "bias"),
        Reject((np.zeros((2, 3)), np.zeros((2, 4, 3))), {}, "weight"),
        Reject((np.zeros((2, 3), np.float32), np.zeros((4, 3))), {}, "weight", torch_rejects=True),
        Reject(("x", np.zeros((4, 3))), {}, "input"),
    ],
))


def linear_1d_cases(regime: str):
    """A 1-d weight (in,): y = x · w (+ b, a 0-d bias), one output per row, the feature axis
    contracted away — the hand-written branch of linear_backward for ``w.ndim == 1``."""
    @st.composite
    def draw(d):
        fin = d(st.integers(1, 9))
        shape = d(batch_shapes((fin,), max_lead=3))
        rng = np.random.default_rng(d(seeds))
        x = make(shape, rng, regime)
        w = make((fin,), rng, regime) / np.sqrt(fin)
        if d(st.booleans()):
            return Case((x, w, make((), rng, regime)))
        return Case((x, w))
    return draw()


def torch_linear_1d(x, w, b=None):
    """torch's F.linear with a 1-d weight; a 2-d input with a bias goes through addmm, which
    refuses the 1-d weight, so the bias is added after (the same value and gradients)."""
    y = torch.nn.functional.linear(x, w)
    return y if b is None else y + b


register(OpSpec(
    "linear_1d_weight", F.linear, torch_linear_1d, linear_1d_cases, diff=(0, 1, 2),
    regimes=("normal",), family="linear", textbook=F.linear,
    notes="linear with a 1-d weight: y = x · w (torch's addmm refuses a 2-d input with a bias)",
    rejects=[
        Reject((np.zeros((2, 3)), np.zeros(4)), {}, "weight"),
    ],
))
