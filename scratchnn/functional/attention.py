"""Attention: O = dropout(softmax(scale · Q Kᵀ + M)) V, and multi-head attention around it.

Backward: dV = Aᵀ dO, dP = dO Vᵀ (⊙ the dropout noise), dS = P ⊙ (dP − rowsum(dP ⊙ P)),
dQ = scale · dS K, dK = scale · dSᵀ Q.

The textbook edition is :mod:`scratchnn.textbook.attention`: read it first. This module runs
that same code — the projections, masks, heads and the four products — with one piece
exchanged: the softmax over the keys is the fast engine's
(:func:`scratchnn.functional.activation.softmax_forward`: row blocks in cache, over the
threads), set through the textbook's :data:`~scratchnn.textbook.attention.SOFTMAX` for the
duration of each call. The scores are the largest arrays of the op ((N, H, L, S)), and the
textbook's whole-array softmax was its largest cost after the GEMMs (docs/attention.md). The
results equal the textbook's bit for bit: the same operations on every row.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

from ..autodiff import defop
from ..textbook import attention as T
from .activation import softmax_backward, softmax_forward

__all__ = ["scaled_dot_product_attention", "multi_head_attention_forward"]

# route -> the settings that force it on small inputs (tests/test_textbook.py forces each)
_SMALL = {"scratchnn.functional.activation._ROW_BLOCK_BYTES": 1,
          "scratchnn.perf.threads.MIN_PARALLEL": 1,
          "scratchnn.perf.threads.MIN_PARALLEL_ROWS": 1}
ROUTES: dict[str, dict[str, object]] = {
    "default": {},
    "row-blocked softmax, 1 thread": {**_SMALL, "scratchnn.perf.threads._threads": 1},
    "row-blocked softmax, 2 threads": {**_SMALL, "scratchnn.perf.threads._threads": 2},
}


def _with_fast_softmax(forward: Callable[..., Any]) -> Callable[..., Any]:
    """``forward`` (a textbook attention forward) run with the engine's softmax; its
    signature and docs are the textbook's (``functools.wraps``)."""
    @functools.wraps(forward)
    def run(*args: Any, **kwargs: Any) -> Any:
        token = T.SOFTMAX.set((softmax_forward, softmax_backward))
        try:
            return forward(*args, **kwargs)
        finally:
            T.SOFTMAX.reset(token)
    run.__module__ = __name__
    return run


sdpa_forward = _with_fast_softmax(T.sdpa_forward)
mha_forward = _with_fast_softmax(T.mha_forward)
scaled_dot_product_attention = defop(sdpa_forward, T.sdpa_backward,
                                     name="scaled_dot_product_attention")
multi_head_attention_forward = defop(mha_forward, T.mha_backward,
                                     name="multi_head_attention_forward")
