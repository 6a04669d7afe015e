"""Registry entries for dropout: torch is given the same mask.

torch's dropout draws from torch's own generator, so it cannot be asked for *our* mask. The
torch side here therefore (1) always calls torch's real function first — that validates ``p``
and the input's rank exactly as torch does and gives the deterministic cases (``p = 0``,
``p = 1``, ``training=False``, empty input) straight from torch — and (2) for ``0 < p < 1`` in
training mode recomputes torch's ``_dropout_impl`` arithmetic (noise shape from
``make_feature_noise``, ``noise.div_(1 − p)``, alpha's ``a`` and ``b``) in torch on the keep mask
that ``scratchnn.functional.dropout_mask`` draws from its copy of the generator. The harness
deep-copies the keyword arguments for each side, so both copies of ``generator`` start in the same
state and draw the same mask. ``tests/test_dropout.py`` checks the other direction: the mask
read back from torch's real output, put through our scaling, gives torch's output.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import torch
import torch.nn.functional as TF
from hypothesis import strategies as st

import scratchnn.functional as F
from reference.registry import Case, OpSpec, Reject, register
from reference.values import make, seeds

ALPHA = 1.7580993408473766


def _noise_shape(kind: str, shape: tuple[int, ...]) -> tuple[tuple[int, ...], bool]:
    """torch's mask shape for each variant, and whether a batch axis was added (unbatched)."""
    def feature(s):                           # make_feature_noise
        return s[:2] + (1,) * (len(s) - 2)
    if kind in ("dropout", "alpha_dropout"):
        return shape, False
    if kind == "dropout1d" and len(shape) == 2 or kind == "dropout3d" and len(shape) != 5:
        return feature((1,) + shape), True    # unsqueeze(0) … squeeze(0)
    return feature(shape), False


def torch_dropout(kind: str):
    real = getattr(TF, kind)
    alpha = "alpha" in kind

    def op(x, p=0.5, training=not alpha, inplace=False, generator=None):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # dropout2d/3d's rank warnings: tested elsewhere
            ref = real(x, p, training)        # validates p and rank exactly as torch
        if not training or p in (0, 1) or x.numel() == 0:
            return ref                        # deterministic: torch's own result
        shape, unbatched = _noise_shape(kind, tuple(x.shape))
        keep = F.dropout_mask(shape, p, generator)               # the same draws as ours
        noise = torch.tensor(keep, dtype=x.dtype, device=x.device)
        if unbatched:
            noise = noise.squeeze(0)
        if not alpha:
            return x * noise.div_(1 - p)
        a = 1.0 / math.sqrt((ALPHA * ALPHA * p + 1) * (1 - p))
        b = noise.add(-1).mul_(ALPHA * a).add_(ALPHA * a * p)
        return x * noise.mul_(a) + b
    return op


RANKS = {"dropout": (0, 4), "alpha_dropout": (0, 4), "dropout1d": (2, 3),
         "dropout2d": (2, 5), "dropout3d": (1, 5), "feature_alpha_dropout": (2, 5)}


def dropout_cases(kind: str):
    lo, hi = RANKS[kind]

    def cases(regime: str):
        @st.composite
        def draw(d):
            rank = d(st.integers(lo, hi))
            shape = tuple(d(st.lists(st.integers(1, 4), min_size=rank, max_size=rank)))
            if rank and d(st.integers(0, 7)) == 0:
                shape = (0,) + shape[1:]                          # an empty batch
            x = make(shape, np.random.default_rng(d(seeds)), regime)
            p = d(st.one_of(st.sampled_from([0.0, 0.5, 1.0]), st.floats(0.05, 0.95)))
            kw = {"p": p, "training": d(st.sampled_from([True, True, True, False])),
                  "generator": np.random.default_rng(d(seeds))}
            return Case((x,), kw)
        return draw()
    return cases


for kind in RANKS:
    x1 = np.zeros((2, 3, 4))
    rejects = [Reject((x1,), {"p": -0.1}, "p"), Reject((x1,), {"p": 1.5}, "p"),
               Reject((x1,), {"p": 0.5, "training": "yes"}, "training"),
               Reject((x1,), {"p": 0.5, "training": True, "generator": 42}, "generator",
                      torch_rejects=False),
               Reject(("x",), {}, "input")]
    if kind == "dropout1d":
        rejects.append(Reject((np.zeros((2, 3, 4, 5)),), {}, "input"))
    if kind == "feature_alpha_dropout":
        rejects.append(Reject((np.zeros(5),), {"training": True}, "input"))
    register(OpSpec(
        kind, getattr(F, kind), torch_dropout(kind), dropout_cases(kind),
        regimes=("normal",), family="dropout", rejects=rejects, examples=0.6,
    ))
