"""Values for test inputs: hypothesis draws the structure and a seed, NumPy draws the numbers.

Hypothesis's own float arrays are full of exact zeros and repeats — right for a kink/tie test,
wrong for a gradient test — so values come from ``numpy.random.default_rng(seed)`` in one of four
regimes:

* ``normal``   standard normal (times ``scale``): the everyday case;
* ``away``     normal, but at least ``margin`` from every kink (``kinks=(0.0,)`` for relu): where
  the derivative exists, so gradients and finite differences are meaningful;
* ``distinct`` all values distinct and well separated: argmax/sort/pooling without ties;
* ``ties``     drawn from a few values, kinks included: exact ties and exact kink points, which
  pin the conventions (relu'(0) = 0, a max-pool tie goes to the first maximum).

NumPy only: importing this module never imports torch or hypothesis.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

REGIMES = ("normal", "away", "distinct", "ties")


def make(shape: Sequence[int], rng: np.random.Generator, regime: str = "normal",
         kinks: Sequence[float] = (0.0,), scale: float = 1.0, margin: float = 0.05) -> np.ndarray:
    """A float64 array of ``shape`` in the given regime (0-d shapes give 0-d arrays)."""
    return np.asarray(_make(shape, rng, regime, kinks, scale, margin), dtype=np.float64)


def _make(shape, rng, regime, kinks, scale, margin):
    shape = tuple(int(s) for s in shape)
    n = int(np.prod(shape))
    if regime == "normal":
        return scale * rng.standard_normal(shape)
    if regime == "away":
        x = scale * rng.standard_normal(shape)
        for k in kinks:
            near = np.abs(x - k) < margin
            x = np.where(near, k + np.where(x >= k, 1.0, -1.0) * (margin + np.abs(x - k)), x)
        return x
    if regime == "distinct":
        # a shuffled grid with spacing 1/n·scale·4 plus jitter well under the spacing
        grid = (np.arange(n) - n / 2) * (4.0 / max(n, 1))
        x = rng.permutation(grid) + rng.uniform(-0.2, 0.2, n) * (4.0 / max(n, 1))
        return (scale * x).reshape(shape)
    if regime == "ties":
        # a few scaled values plus the kinks themselves (kinks are never scaled: they are
        # points of the op, as in the 'away' regime)
        pool = np.unique(np.concatenate([scale * np.array([-1.0, -0.5, 0.0, 0.5, 1.0, 2.0]),
                                         np.asarray(kinks, dtype=np.float64)]))
        return rng.choice(pool, size=shape)
    raise ValueError(f"make(): parameter 'regime' must be one of {list(REGIMES)}, "
                     f"got {regime!r}")


def upstream(shape: Sequence[int], rng: np.random.Generator) -> np.ndarray:
    """A random upstream gradient (never all ones: ones hide permutation bugs)."""
    return rng.standard_normal(tuple(shape))
