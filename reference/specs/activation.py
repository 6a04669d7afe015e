"""Registry entries for the activations."""
from __future__ import annotations

import numpy as np
import torch
from hypothesis import strategies as st

import scratchnn.functional as F
from reference.registry import Case, OpSpec, Reject, register
from reference.values import batch_shapes, make, seeds


def unary_cases(kinks=(0.0,), scale=2.0, **extra):
    """Cases for an elementwise op: any shape (0-d and zero-size included) plus drawn options.

    ``extra`` maps a keyword to a strategy for its value.
    """
    def cases(regime: str):
        @st.composite
        def draw(d):
            shape = d(batch_shapes(max_lead=4))
            rng = np.random.default_rng(d(seeds))
            kw = {k: d(v) for k, v in extra.items()}
            return Case((make(shape, rng, regime, kinks=kinks, scale=scale),), kw)
        return draw()
    return cases


register(OpSpec(
    "sigmoid", F.sigmoid, torch.sigmoid, unary_cases(scale=4.0),
    regimes=("normal", "ties"), family="activation",
    rejects=[Reject(([1.0, 2.0],), {}, "input", torch_rejects=False),
             Reject((np.arange(3),), {}, "input", torch_rejects=False)],
))
