"""y = weight[input] (a row lookup; backward dweight[i] = Σ_{p: input[p]=i} dy[p]) and one_hot.

The fast edition *is* the textbook edition: the lookup is one fancy-indexing copy and the
backward one scatter-add, so both live once, in ``scratchnn.textbook.embedding``, and this
module re-exports the same function objects
(``scratchnn.functional.embedding is scratchnn.textbook.embedding``).
"""
from ..textbook.embedding import (  # noqa: F401 - re-exported, one function object each
    embedding, embedding_backward, embedding_forward, one_hot, one_hot_backward,
    one_hot_forward)

__all__ = ["embedding", "one_hot", "embedding_forward", "embedding_backward",
           "one_hot_forward", "one_hot_backward"]
