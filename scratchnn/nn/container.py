"""Shape modules: ``Flatten`` and ``Unflatten`` (torch.nn's), with explicit backward.

Both are reshapes, so the backward reshapes the gradient back: dx = dy.reshape(x.shape). The
output is a view of the input where NumPy can make one (as torch's), never a modified input.
``Sequential`` lives in :mod:`scratchnn.nn.module`; the replay of forward-only modules in
:mod:`scratchnn.nn.tracing` (its ``Tracked`` and ``UntrackedOperationError`` are re-exported
here, and so in ``scratchnn.nn``).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .._validate import check_array, check_dim, check_int
from .module import Module
from .tracing import Tracked, UntrackedOperationError

__all__ = ["Flatten", "Unflatten", "Tracked", "UntrackedOperationError"]


class _Reshape(Module):
    """Remembers the input's shape in forward; backward reshapes dy back to it. Subclasses
    define ``_new_shape(input_shape) -> output_shape`` (validating against the input)."""

    def forward(self, input: np.ndarray) -> np.ndarray:
        fn = type(self).__name__
        check_array(fn, "input", input, floating=False)
        shape = self._new_shape(input.shape)
        object.__setattr__(self, "_in_shape", input.shape)
        return input.reshape(shape)

    def backward(self, dout: np.ndarray, *, retain_graph: bool = False) -> np.ndarray:
        fn = type(self).__name__
        shape = self._saved_for_backward("_in_shape")
        check_array(f"{fn}.backward", "dout", dout)
        if dout.size != math.prod(shape):
            raise ValueError(f"{fn}.backward(): parameter 'dout' has {dout.size} elements, "
                             f"the forward input had shape {shape}")
        self._release("_in_shape", retain_graph)
        return dout.reshape(shape)


class Flatten(_Reshape):
    """Flatten(start_dim=1, end_dim=-1): merge dims start_dim..end_dim into one.

    Shapes:  (N, C, H, W) -> (N, C·H·W) by default; a 0-d input flattens to (1,) when both
             dims are 0 or -1 (torch's rule).
    Backward: dx = dy.reshape(x.shape).
    Torch:   torch.nn.Flatten
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim = check_int("Flatten", "start_dim", start_dim)
        self.end_dim = check_int("Flatten", "end_dim", end_dim)

    def _new_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        fn = "Flatten"
        s = check_dim(fn, "start_dim", self.start_dim, len(shape))
        e = check_dim(fn, "end_dim", self.end_dim, len(shape))
        if s > e:
            raise ValueError(f"{fn}(): parameter 'start_dim' ({self.start_dim}) must not come "
                             f"after 'end_dim' ({self.end_dim}) for a {len(shape)}-d input")
        return shape[:s] + (math.prod(shape[s:e + 1]),) + shape[e + 1:]

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(_Reshape):
    """Unflatten(dim, unflattened_size): split dim ``dim`` into ``unflattened_size`` (one entry
    may be -1, inferred).

    Shapes:  (N, C·H·W) -> (N, C, H, W) for Unflatten(1, (C, H, W)).
    Backward: dx = dy.reshape(x.shape).
    Torch:   torch.nn.Unflatten (integer dims; named dims are not supported)
    """

    def __init__(self, dim: int, unflattened_size: Sequence[int]) -> None:
        super().__init__()
        fn = "Unflatten"
        self.dim = check_int(fn, "dim", dim)
        if not isinstance(unflattened_size, (tuple, list)):
            raise TypeError(f"{fn}(): parameter 'unflattened_size' must be a tuple or list of "
                            f"ints, got {unflattened_size!r}")
        sizes = tuple(check_int(fn, "unflattened_size", s, min=-1) for s in unflattened_size)
        if sizes.count(-1) > 1:
            raise ValueError(f"{fn}(): parameter 'unflattened_size' may contain at most one -1, "
                             f"got {sizes}")
        self.unflattened_size = sizes

    def _new_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        fn = "Unflatten"
        d = check_dim(fn, "dim", self.dim, len(shape))
        n = shape[d] if shape else 1
        sizes = self.unflattened_size
        known = math.prod(s for s in sizes if s != -1)
        if -1 in sizes and known > 0 and n % known == 0:
            sizes = tuple(n // known if s == -1 else s for s in sizes)
        if -1 in sizes or math.prod(sizes) != n:
            raise ValueError(f"{fn}(): parameter 'unflattened_size' {self.unflattened_size} "
                             f"does not multiply up to the size of dim {self.dim} ({n})")
        return shape[:d] + sizes + shape[d + 1:]

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"
