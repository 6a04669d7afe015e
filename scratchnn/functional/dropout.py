"""Dropout: y = x ⊙ m / (1 − p) with a random keep mask m ~ Bernoulli(1 − p) (alpha dropout:
y = x ⊙ a·m + α'a(p + m − 1)); backward dx = dy ⊙ the same scaled mask.

The dropout family is plain already — one elementwise product with a saved mask, nothing to
make fast — so it lives once, in its textbook edition ``scratchnn.textbook.dropout``, and this
module names the very same functions (``F.dropout is scratchnn.textbook.dropout``): dropout,
dropout1d/2d/3d, alpha_dropout, feature_alpha_dropout, and the mask helpers
``dropout_mask`` (the keep mask from a generator) and ``feature_noise_shape`` (the channel
variants' ``(N, C, 1, …)`` mask shape).
"""
from __future__ import annotations

from ..textbook.dropout import (ALPHA, DropoutCtx, alpha_dropout, dropout,  # noqa: F401
                                dropout1d, dropout2d, dropout3d, dropout_mask,
                                feature_alpha_dropout, feature_noise_shape, scaled_noise)
from ..textbook.dropout import __all__ as _textbook_all

__all__ = list(_textbook_all)
