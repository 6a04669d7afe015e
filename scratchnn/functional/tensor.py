"""Tensor functions — y = reshape(x), permute(x), [x_0 | x_1], a + b, a ⊙ b, x[index] — with
hand-written backwards.

They are plain (no performance machinery), so they live once, in ``scratchnn.textbook.tensor``:
this module names the same function objects.
"""
from ..textbook.tensor import (add, cat, div, flatten, getitem, mul, permute, reshape,  # noqa: F401
                               stack, sub, transpose)
from ..textbook.tensor import __all__  # noqa: F401
