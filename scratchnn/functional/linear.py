"""The fully-connected layer: y = x Wᵀ + b;  dx = dy W,  dW = dyᵀ x,  db = Σ dy.

Plain already: the op lives once, in :mod:`scratchnn.textbook.linear`, and this module names the
same function objects (``scratchnn.functional.linear is scratchnn.textbook.linear``). NumPy's
``@`` (BLAS) is all the speed it needs.
"""
from ..textbook.linear import LinearCtx, linear, linear_backward, linear_forward  # noqa: F401

__all__ = ["linear", "linear_forward", "linear_backward"]
