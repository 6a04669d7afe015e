"""One seedable source of randomness for the whole library (dropout, init, shuffling).

``scratchnn.manual_seed(seed)`` plays the role of ``torch.manual_seed``: it replaces the default
``numpy.random.Generator`` that every random op uses unless the caller passes its own
``generator=``. Nothing in scratchnn draws from NumPy's legacy global state.
"""
from __future__ import annotations

from typing import Any

import numpy as np

_default = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the default generator (as ``torch.manual_seed``) and return it."""
    global _default
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"manual_seed(): parameter 'seed' must be an int, got {seed!r}")
    _default = np.random.default_rng(int(seed))
    return _default


def default_generator() -> np.random.Generator:
    """The generator random ops use when none is passed."""
    return _default


def get_generator(fn: str, generator: Any) -> np.random.Generator:
    """``generator`` if given (validated), else the default one."""
    if generator is None:
        return _default
    if not isinstance(generator, np.random.Generator):
        raise TypeError(f"{fn}(): parameter 'generator' must be a numpy.random.Generator, "
                        f"got {type(generator).__name__}")
    return generator
