"""torch's in-place tensor primitives on NumPy arrays, with torch's order of operations.

The optimizers are written with these so that each line reads like torch's
``_single_tensor_*`` code and rounds the same way. Scalars are Python floats, so NumPy casts them
to the array's dtype (as torch does) and a float32 array stays float32.

Every helper writes into ``x`` and returns it.
"""
from __future__ import annotations

import numpy as np

Array = np.ndarray


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
