"""In-place update helpers for the optimizers: torch's in-place tensor primitives on NumPy
arrays, and a blocked loop that runs an elementwise update one cache-sized block at a time.

The update rules themselves are plain formulas in ``scratchnn.textbook.optim``; the optimizers
in ``scratchnn.optim`` write the same updates into ``p.data`` and the state buffers in place
(no new arrays per step), with these helpers, in the order of operations of torch's
``_single_tensor_*`` code so that every intermediate rounds as torch's does.

* ``add_``, ``mul_``, ``addcmul_``, ``addcdiv_``, ``lerp_``: ``x.add_(y, alpha=…)`` and friends.
  Scalars are Python floats, so NumPy casts them to the array's dtype (as torch does) and a
  float32 array stays float32. Every helper writes into ``x`` and returns it.
* ``blocked(kernel, arrays, out, scratch)``: an elementwise ``kernel`` applied block by block
  over flat views, ``BLOCK`` elements at a time, with block-sized scratch arrays from
  ``scratch_blocks``. Every block computes the same formula, so the result is bit-identical to
  one call over the whole array; the gain is that each block of every operand is brought into
  cache once for all of the kernel's passes instead of once per pass.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

Array = np.ndarray

__all__ = ["add_", "mul_", "addcmul_", "addcdiv_", "lerp_", "BLOCK", "blocked",
           "scratch_blocks"]


def add_(x: Array, y: Array, alpha: float = 1.0) -> Array:
    """``x.add_(y, alpha=alpha)``:  x ← x + alpha·y"""
    x += alpha * y if alpha != 1.0 else y
    return x


def mul_(x: Array, s: float) -> Array:
    """``x.mul_(s)``:  x ← s·x"""
    x *= s
    return x


def addcmul_(x: Array, a: Array, b: Array, value: float = 1.0) -> Array:
    """``x.addcmul_(a, b, value=value)``:  x ← x + (value·a)·b"""
    x += value * a * b
    return x


def addcdiv_(x: Array, a: Array, b: Array, value: float = 1.0) -> Array:
    """``x.addcdiv_(a, b, value=value)``:  x ← x + (value·a)/b"""
    x += value * a / b
    return x


def lerp_(x: Array, end: Array, weight: float) -> Array:
    """``x.lerp_(end, weight)``:  x ← x + w·(end − x) for |w| < 0.5, else end − (end − x)(1 − w)
    (torch's two-sided form: exact at w = 0 and w = 1)."""
    if abs(weight) < 0.5:
        x += weight * (end - x)
    else:
        x[...] = end - (end - x) * (1 - weight)
    return x


BLOCK = 1 << 16     # elements per block: Adadelta's θ, g, v, u and two scratch blocks fit in L2


def scratch_blocks(cache: dict, dtype: np.dtype, count: int) -> tuple[Array, ...]:
    """``count`` scratch arrays of ``BLOCK`` elements of ``dtype``, kept in ``cache`` (a dict the
    caller owns, e.g. one per optimizer) and reused from step to step."""
    blocks = cache.get(dtype)
    if blocks is None or len(blocks) < count or blocks[0].size < BLOCK:
        blocks = cache[dtype] = tuple(np.empty(BLOCK, dtype) for _ in range(count))
    return blocks[:count]


def blocked(kernel: Callable[..., Array], arrays: Sequence[Array], out: Array,
            scratch: Sequence[Array]) -> Array:
    """``kernel(*arrays, *scratch, out=out)``, run block by block over flat views.

    ``kernel`` must be elementwise (each output element depends only on the same element of
    each input) and may update its array arguments in place; ``arrays`` and ``out`` must be
    C-contiguous and of one size; each scratch array holds at least ``BLOCK`` elements.
    """
    flat = [a.reshape(-1) for a in arrays]                        # views: C-contiguous
    target = out.reshape(-1)
    n = target.size
    for i in range(0, n, BLOCK):
        j = min(i + BLOCK, n)
        kernel(*(a[i:j] for a in flat), *(s[:j - i] for s in scratch), out=target[i:j])
    return out
