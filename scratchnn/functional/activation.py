"""Activations: elementwise nonlinearities and the softmax family, forward and backward.

Notation: ``x`` input, ``y`` output, ``dy = ∂L/∂y``, ``dx = ∂L/∂x`` (same shapes). Every op is
stable for any finite input (no overflow warnings at ±1e4, float32 or float64) and keeps the
input's dtype; at kinks it follows torch's convention (e.g. relu'(0) = 0).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._validate import check_array
from ..autodiff import defop

Array = np.ndarray

__all__ = ["sigmoid", "sigmoid_forward", "sigmoid_backward"]


def _stable_sigmoid(x: Array) -> Array:
    """σ(x) without ever computing exp of a large positive number."""
    e = np.exp(-np.abs(x))                                  # in (0, 1]
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


class SigmoidCtx(NamedTuple):
    y: Array                     # the derivative needs only the output


def sigmoid_forward(input: Array) -> tuple[Array, SigmoidCtx]:
    """y = σ(x) = 1 / (1 + e^{−x})

    Shapes:  x (*) -> y (*)
    Saves:   y, because dσ/dx = y (1 − y).
    Torch:   torch.sigmoid / torch.nn.functional.sigmoid
    """
    check_array("sigmoid", "input", input)
    y = _stable_sigmoid(input)
    return y, SigmoidCtx(y)


def sigmoid_backward(ctx: SigmoidCtx, dy: Array) -> Array:
    """dx = dy ⊙ y ⊙ (1 − y)"""
    return dy * ctx.y * (1 - ctx.y)


sigmoid = defop(sigmoid_forward, sigmoid_backward)
