"""Attention: O = dropout(softmax(scale · Q Kᵀ + M)) V, and multi-head attention around it.

Backward: dV = Aᵀ dO, dP = dO Vᵀ (⊙ the dropout noise), dS = P ⊙ (dP − rowsum(dP ⊙ P)),
dQ = scale · dS K, dK = scale · dSᵀ Q.

Plain already: the ops live once, in :mod:`scratchnn.textbook.attention`, and this module names
the same function objects (``scratchnn.functional.scaled_dot_product_attention is
scratchnn.textbook.scaled_dot_product_attention``). Their time is NumPy's batched matrix
products; see docs/attention.md for the measurement against torch.
"""
from ..textbook.attention import (multi_head_attention_forward,  # noqa: F401
                                  scaled_dot_product_attention)

__all__ = ["scaled_dot_product_attention", "multi_head_attention_forward"]
