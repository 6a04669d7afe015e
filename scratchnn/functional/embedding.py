"""y = weight[input] (a row lookup; backward dweight[i] = Σ_{p: input[p]=i} dy[p]) and one_hot.

The textbook edition is :mod:`scratchnn.textbook.embedding`: read it first. The lookup is one
fancy-indexing copy and lives once (this module's forward hands over to the textbook's);
one_hot is plain and re-exported as the same function objects. The backward's scatter-add is
the fast engine's: the textbook's ``np.add.at`` adds one element at a time, while
:func:`scratchnn.perf.scatter.add_rows` adds whole rows in *levels* (the k-th contribution of
every row at once), in ``np.add.at``'s order, so with its bits (an embedding of 1024 positions
over 96 rows of 128: 1.59 → 0.40 ms). Which path runs is decided in :func:`choose_route`.
"""
from __future__ import annotations

import numpy as np

from ..autodiff import defop
from ..perf import scatter
from ..textbook.embedding import EmbeddingCtx, contributions
from ..textbook.embedding import embedding_backward as textbook_backward
from ..textbook.embedding import embedding_forward as textbook_forward
from ..textbook.embedding import (  # noqa: F401 - re-exported, one function object each
    one_hot, one_hot_backward, one_hot_forward)

Array = np.ndarray

__all__ = ["embedding", "one_hot", "embedding_forward", "embedding_backward",
           "one_hot_forward", "one_hot_backward"]

# route -> the settings that force it (tests/test_textbook.py forces each)
ROUTES: dict[str, dict[str, object]] = {
    "default": {},
    "levels": {"scratchnn.perf.scatter.MAX_LEVELS": 1 << 30},
    "np.add.at": {"scratchnn.perf.scatter.MAX_LEVELS": -1},
}


def choose_route(idx: Array, num: int) -> str:
    """``'levels'`` — the scatter in levels (:func:`scratchnn.perf.scatter.add_rows`) while no
    index repeats more than ``scatter.MAX_LEVELS`` times; ``'np.add.at'`` — otherwise (the
    same bits)."""
    return "levels" if scatter.levels(idx, num) <= scatter.MAX_LEVELS else "np.add.at"


def embedding_forward(input: Array, weight: Array, padding_idx: int | None = None,
                      max_norm: float | None = None, norm_type: float = 2.0,
                      scale_grad_by_freq: bool = False, sparse: bool = False
                      ) -> tuple[Array, EmbeddingCtx]:
    return textbook_forward(input, weight, padding_idx, max_norm, norm_type,
                            scale_grad_by_freq, sparse)


embedding_forward.__doc__ = textbook_forward.__doc__


def embedding_backward(ctx: EmbeddingCtx, dy: Array) -> tuple[None, Array]:
    """dweight[i] = Σ_{p: input[p] = i} dy[p]: on the ``'levels'`` route the textbook's
    contributions scattered by :func:`scratchnn.perf.scatter.add_rows` (``np.add.at``'s
    bits), the padding row zeroed; else the textbook's backward."""
    if choose_route(ctx.input.reshape(-1), ctx.num) == "np.add.at":
        return textbook_backward(ctx, dy)
    idx, g = contributions(ctx, dy)
    dweight = scatter.add_rows(ctx.num, idx, g)
    if ctx.padding_idx is not None:
        dweight[ctx.padding_idx] = 0
    return None, dweight


embedding = defop(embedding_forward, embedding_backward)
