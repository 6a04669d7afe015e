"""Dropout modules mirroring ``torch.nn``: ``Dropout``, ``Dropout1d/2d/3d``, ``AlphaDropout``,
``FeatureAlphaDropout``.

    drop = Dropout(0.2)          # training mode by default, as torch
    y = drop(x)                  # draws a fresh mask every call (kept for backward)
    dx = drop.backward(dy)       # dy ⊙ the same mask, scaled
    drop.eval(); drop(x) is x    # eval mode: the identity (the input itself, as torch)

Masks come from ``scratchnn.random``'s default generator (``scratchnn.manual_seed``) unless a
``numpy.random.Generator`` is given as the keyword-only ``generator`` (an addition to torch's
constructor, for reproducible layers).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .. import functional as F
from .._validate import check_float, check_inplace
from ..autodiff import vjp
from ..random import get_generator
from .module import OpModule

__all__ = ["Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout",
           "FeatureAlphaDropout"]


class _DropoutNd(OpModule):
    _op: Callable                           # the functional op (a staticmethod)

    def __init__(self, p: float = 0.5, inplace: bool = False, *,
                 generator: np.random.Generator | None = None):
        super().__init__()
        name = type(self).__name__
        self.p = check_float(name, "p", p, lo=0.0, hi=1.0)
        check_inplace(name, inplace)
        self.inplace = False
        self.generator = generator if generator is None else get_generator(name, generator)

    def _call(self, input: np.ndarray) -> tuple[Any, Callable]:
        return vjp(type(self)._op, input, self.p, self.training, self.inplace,
                   generator=self.generator)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Dropout(_DropoutNd):
    """torch.nn.Dropout: each element zeroed with probability p, the rest scaled by 1/(1−p)
    (training mode); the identity in eval mode. See :func:`scratchnn.functional.dropout`."""
    _op = staticmethod(F.dropout)


class Dropout1d(_DropoutNd):
    """torch.nn.Dropout1d: whole channels of (N, C, L) / (C, L) inputs; see
    :func:`scratchnn.functional.dropout1d`."""
    _op = staticmethod(F.dropout1d)


class Dropout2d(_DropoutNd):
    """torch.nn.Dropout2d: whole channels of (N, C, H, W) inputs (a 3-D input is read as
    (N, C, L), with torch's warning); see :func:`scratchnn.functional.dropout2d`."""
    _op = staticmethod(F.dropout2d)


class Dropout3d(_DropoutNd):
    """torch.nn.Dropout3d: whole channels of (N, C, D, H, W) / (C, D, H, W) inputs; see
    :func:`scratchnn.functional.dropout3d`."""
    _op = staticmethod(F.dropout3d)


class AlphaDropout(_DropoutNd):
    """torch.nn.AlphaDropout: alpha dropout per element (keeps SELU's mean 0, variance 1);
    see :func:`scratchnn.functional.alpha_dropout`."""
    _op = staticmethod(F.alpha_dropout)


class FeatureAlphaDropout(_DropoutNd):
    """torch.nn.FeatureAlphaDropout: alpha dropout of whole channels; see
    :func:`scratchnn.functional.feature_alpha_dropout`."""
    _op = staticmethod(F.feature_alpha_dropout)
