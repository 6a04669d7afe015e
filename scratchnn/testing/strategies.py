"""Hypothesis strategies for the structure of a test case (imports hypothesis).

* :data:`seeds` — the seed from which NumPy draws a case's values (see :mod:`.values`);
* :func:`batch_shapes` — leading batch dims (a zero-size one now and then) before fixed features;
* :func:`elementwise_shapes` — what :func:`scratchnn.testing.check_op` draws for an elementwise
  op when no ``shapes`` are given: 0-d to 4-d, zero-size included, 0-d first (it shrinks there).
"""
from __future__ import annotations

from typing import Sequence

from hypothesis import strategies as st

seeds = st.integers(0, 2**32 - 1)


@st.composite
def batch_shapes(draw: st.DrawFn, features: Sequence[int] = (), max_lead: int = 3,
                 max_side: int = 5, allow_zero: bool = True) -> tuple[int, ...]:
    """A shape of 0..max_lead leading dims (a zero-size dim now and then) followed by
    ``features``."""
    lead = draw(st.lists(st.integers(1, max_side), min_size=0, max_size=max_lead))
    if allow_zero and lead and draw(st.integers(0, 9)) == 0:
        lead[draw(st.integers(0, len(lead) - 1))] = 0
    return tuple(lead) + tuple(features)


def elementwise_shapes(max_dims: int = 4, max_side: int = 5) -> st.SearchStrategy:
    """One input shape for an elementwise op: ``[shape]`` with 0..max_dims dims."""
    return batch_shapes(max_lead=max_dims, max_side=max_side).map(lambda s: [s])
