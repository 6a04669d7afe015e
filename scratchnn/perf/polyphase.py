"""Pooling's polyphase passes: the padded input split by stride phase, so that every kernel
offset of a max/min pool is one contiguous *flat run*, and a running extreme over such runs.

The textbook (:mod:`scratchnn.textbook.pooling`) reads offset ``j`` of every window as the
strided slice ``x_pad[..., j·dil :: s]``; its inner loop is one output row, ~6× slower than a
long contiguous pass. :class:`Polyphase` stores the padded input by stride phase
(:func:`scratchnn.perf.phases.phase_layout`, the layout convolution's shifted GEMM reads) so that
the same values are one flat run per offset. :func:`running_extreme` is the textbook's running
max/min with its ``kid`` kept by integer arithmetic (no masked copies) and the NaN rule in a
second pass taken only when a NaN reached the output.
"""
from __future__ import annotations

import functools
import math
from typing import Any, Callable, NamedTuple

import numpy as np

from .phases import phase_layout

Array = np.ndarray

__all__ = ["Polyphase", "polyphase", "valid", "kid_dtype", "running_extreme"]


class Polyphase(NamedTuple):
    """The padded input split into its stride phases, so that every kernel offset is a
    contiguous *flat run* (one long SIMD-friendly ufunc pass) instead of a strided view.

    The layout is :class:`~scratchnn.perf.phases.PhaseLayout` (convolution's shifted GEMM
    uses it too): offset ``j`` reads phase ``u_j`` shifted by ``sh_j`` grid steps. Each used
    phase is stored as a C-order grid of ``G`` points per dimension (``(U, n, *G)`` for ``U``
    used phases and ``n`` planes) and read as one flat array; offset ``j`` is the flat run
    starting at ``u_j·n·|G| + sh_j`` of length ``n·|G|`` — element ``q`` of it is what window
    ``q`` sees at offset ``j`` for every plane and every *valid* grid position ``q < O``.
    Positions with some ``q_i ≥ O_i`` are scratch: computed, never reported (their reads may
    cross into the next row or plane; a ``slack`` tail keeps them inside the buffer).
    """
    grid: tuple[int, ...]                         # G
    offsets: list[tuple[int, int]]                # per kernel offset (window order): (u, shift)
    phases: list[tuple[tuple[slice, ...], tuple[slice, ...]]]   # per used phase:
    #                                               (its box in the grid, its input slices)
    covers: bool       # every grid point of every used phase holds an input element (no fill)
    complete: bool     # every input element lies in some used phase (dx needs no zero-fill)
    single: bool       # every used phase is read by exactly one offset (disjoint windows)
    slack: int         # the largest flat shift

    def buffer(self, n: int, dtype: np.dtype, fill: float | None) -> tuple[Array, Array]:
        """``(flat, grids)``: a fresh flat buffer for ``n`` planes and its ``(U, n, *G)``
        view; filled with ``fill`` where no input element goes (``None``: zeros everywhere)."""
        size = len(self.phases) * n * math.prod(self.grid)
        if fill is None:
            flat = np.zeros(size + self.slack, dtype)
        else:
            flat = np.empty(size + self.slack, dtype)
            flat[size if self.covers else 0:] = fill
        return flat, flat[:size].reshape((len(self.phases), n) + self.grid)

    def run(self, j: int, flat: Array, n: int) -> Array:
        """Offset ``j``'s flat run of ``flat`` (length ``n·|G|``), see the class docstring."""
        u, shift = self.offsets[j]
        start = u * n * math.prod(self.grid) + shift
        return flat[start:start + n * math.prod(self.grid)]

    def split(self, x: Array, grids: Array) -> None:
        """Scatter the planes ``x`` ``(n, *S)`` into their phases (one strided copy each)."""
        for u, (box, src) in enumerate(self.phases):
            grids[(u, slice(None)) + box] = x[(slice(None),) + src]

    @property
    def direct(self) -> bool:
        """Each used phase is exactly one offset's unshifted run: a backward can write every
        offset's contribution straight into dx (:meth:`place`), with no phase buffer."""
        return self.single and self.slack == 0

    def place(self, u: int, grid: Array, dx: Array) -> None:
        """``dx[phase u's inputs] = grid`` for a ``(n, *G)`` grid of phase ``u``."""
        box, src = self.phases[u]
        dx[(slice(None),) + src] = grid[(slice(None),) + box]

    def merge(self, grids: Array, dx: Array) -> None:
        """The adjoint of :meth:`split`: gather the phases back into ``dx`` ``(n, *S)``;
        elements in no phase (never read by a window) get 0."""
        if not self.complete:
            dx.fill(0)
        for u in range(len(self.phases)):
            self.place(u, grids[u], dx)


@functools.lru_cache(maxsize=64)
def polyphase(g: Any) -> Polyphase:
    """Lay out the windows of the pooling geometry ``g``
    (:class:`scratchnn.textbook._pooling_args.Geometry`: kernel, stride, dilation, pads, size,
    out) in phases (see :class:`Polyphase`): the shared
    :func:`~scratchnn.perf.phases.phase_layout` (convolution's shifted GEMM reads the
    same layout), plus what the pooling passes need to know about it.

    Cached per geometry (a forward and its backward, every step of a training loop, lay out
    the same windows; ~35 µs each time otherwise). The result is shared: never modify it."""
    lay = phase_layout(g.kernel, g.stride, g.dilation, [lo for lo, _ in g.pads], g.size, g.out)
    empty = (slice(0, 0),) * len(lay.grid)
    phases = [box if box is not None else (empty, empty) for box in lay.boxes]
    covers = all(b.start == 0 and b.stop == G for box, _ in phases for b, G in zip(box, lay.grid))
    inside = sum(math.prod(b.stop - b.start for b in box) for box, _ in phases)
    uses = np.bincount([u for u, _ in lay.taps], minlength=len(lay.phases))
    return Polyphase(lay.grid, list(lay.taps), phases, covers, inside == math.prod(g.size),
                     bool((uses == 1).all()), lay.slack)


def valid(grid_array: Array, out: tuple[int, ...]) -> Array:
    """The valid part ``(..., *O)`` of a ``(..., *G)`` grid array (a view)."""
    return grid_array[(Ellipsis,) + tuple(slice(0, o) for o in out)]


def kid_dtype(n: int) -> type:
    return np.uint8 if n <= 255 else np.uint16 if n <= 65535 else np.uint32


def running_extreme(view: Callable[[int], Array], n: int, largest: bool,
                     out: tuple[Array, Array] | None = None) -> tuple[Array, Array]:
    """``m = max_j view(j)`` (or min) elementwise over ``j = 0..n−1``, and ``kid`` = the first
    ``j`` attaining it — or the last NaN, as torch's ``val > maxval || isnan(val)``.

    ``kid`` only ever grows (offsets are visited in increasing order), so "set kid to j where
    v wins" is ``kid = max(kid, wins·j)``: two cheap integer ops instead of a masked copy.
    ``wins`` is multiplied as its uint8 view (the same 0/1 bytes): a bool operand makes NumPy
    cast it through its buffer first (23 against 11 µs per 262 144 elements; the max/min pool
    forwards of the benchmark 0.95–0.96×). The NaN rule costs an extra pass, taken only when
    a NaN reached the output. ``out``: the ``(m, kid)`` arrays to fill (``kid`` of
    :func:`kid_dtype` ``(n)``).
    """
    wins = np.greater if largest else np.less
    keep = np.maximum if largest else np.minimum          # both propagate NaN
    kt = kid_dtype(n)
    v0 = view(0)
    m, kid = out if out is not None else (np.empty(v0.shape, v0.dtype), np.empty(v0.shape, kt))
    better = np.empty(m.shape, bool)
    step = np.empty(m.shape, kt)
    for nan_aware in (False, True):
        np.copyto(m, v0)
        kid.fill(0)
        for j in range(1, n):
            v = view(j)
            wins(v, m, out=better)
            if nan_aware:
                better |= np.isnan(v)
            keep(m, v, out=m)
            np.multiply(better.view(np.uint8), kt(j), out=step)   # j where v wins, else 0
            np.maximum(kid, step, out=kid)
        if nan_aware or not np.isnan(m).any():
            return m, kid
    raise AssertionError("unreachable")
