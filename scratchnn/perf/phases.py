"""Faster ways to read the windows of :mod:`scratchnn.window`: no padded copy, no strided inner
loops. Used by the fast engines (convolution's im2col and shifted GEMM, pooling's polyphase
passes); the textbook editions read windows through :func:`scratchnn.window.offset_slices`.

* :func:`clipped_offset_slices` is ``offset_slices`` against the *unpadded* input;
* :func:`phase_layout` splits the input by stride phase so that every kernel offset becomes one
  contiguous run of a flattened grid.
"""
from __future__ import annotations

import functools
import math
from typing import Iterator, NamedTuple, Sequence

import numpy as np

__all__ = ["clipped_offset_slices", "PhaseLayout", "phase_layout"]


def clipped_offset_slices(kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int],
                          lo: Sequence[int], size: Sequence[int], out: Sequence[int]
                          ) -> Iterator[tuple[tuple[int, ...], tuple[slice, ...] | None,
                                              tuple[slice, ...] | None]]:
    """:func:`offset_slices` against the *unpadded* input: no padded copy is ever made.

    For every kernel offset ``k`` (row-major) yields ``(k, out_sl, in_sl)``: the output
    positions ``o`` whose input index ``p = k·dil + o·s − lo`` lies inside ``[0, size)`` form
    the box ``out_sl`` (unit steps), and ``x[(..., *in_sl)]`` are exactly those inputs, so::

        cols[(..., *out_sl)] = x[(..., *in_sl)]      # im2col (the rest of cols is padding)
        dx[(..., *in_sl)] += dcols[(..., *out_sl)]    # col2im

    Both are ``None`` when every window sees padding at this offset.
    """
    for k in np.ndindex(*kernel):
        out_sl, in_sl = [], []
        for ki, di, si, li, n, o in zip(k, dilation, stride, lo, size, out):
            start = ki * di - li                       # input index seen by output 0
            o0 = max(0, -(start // si))                # first o with start + o·s >= 0
            o1 = min(o, (n - 1 - start) // si + 1)     # one past the last o with p < size
            if o1 <= o0:
                break
            out_sl.append(slice(o0, o1))
            in_sl.append(slice(start + o0 * si, start + (o1 - 1) * si + 1, si))
        else:
            yield k, tuple(out_sl), tuple(in_sl)
            continue
        yield k, None, None


class PhaseLayout(NamedTuple):
    """A window geometry laid out by *stride phase*, so that every kernel offset is a flat shift.

    Along a dimension with stride ``s``, the padded position ``p = o·s + k·dil`` (window ``o``,
    offset ``k``) lies in phase ``r = p mod s`` at grid index ``p div s = o + ⌊k·dil / s⌋``. Each
    phase is stored as a grid of ``G = O + ⌊dil·(k_max − 1) / s⌋`` points per dimension (C
    order); offset ``k`` then reads phase ``r_k = (k·dil) mod s`` shifted by ``⌊k·dil / s⌋`` grid
    steps — in the flattened grid one *contiguous* run starting at the flat shift
    ``Σ ⌊k·dil / s⌋ · pitch``. Element ``q`` of that run is what window ``q`` sees at offset
    ``k`` (grid positions with some ``q_i ≥ O_i`` are not windows: computed and dropped). With
    stride 1 there is one phase: the padded input itself.

    Convolution's shifted GEMM (a matrix product per offset over its run) and pooling's passes
    (a running max or sum per offset over its run) both read the input this way.
    """
    grid: tuple[int, ...]                       # G
    taps: tuple[tuple[int, int], ...]           # per kernel offset, row-major: (phase, shift)
    phases: tuple[tuple[int, ...], ...]         # the phases some offset reads, first-use order
    boxes: tuple[tuple[tuple[slice, ...], tuple[slice, ...]] | None, ...]
    # per phase: (the grid positions that hold input, those inputs as slices of x), or None
    # when the phase holds only padding

    @property
    def slack(self) -> int:
        """The largest flat shift: how far past the grid the last run reads."""
        return max(shift for _, shift in self.taps)


def phase_layout(kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int],
                 lo: Sequence[int], size: Sequence[int], out: Sequence[int]) -> PhaseLayout:
    """The :class:`PhaseLayout` of windows over an input of ``size`` padded by ``lo`` before
    each dimension, with ``out`` windows per dimension.

    Cached per geometry (a training loop lays out the same few windows every step, ~15–35 µs
    each time otherwise); the layout is all tuples, so sharing it is safe."""
    return _phase_layout(*(tuple(int(v) for v in a)
                           for a in (kernel, stride, dilation, lo, size, out)))


@functools.lru_cache(maxsize=256)
def _phase_layout(kernel: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...],
                  lo: tuple[int, ...], size: tuple[int, ...], out: tuple[int, ...]
                  ) -> PhaseLayout:
    grid = tuple(o + di * (ki - 1) // si for o, ki, si, di in zip(out, kernel, stride, dilation))
    pitch = [math.prod(grid[i + 1:]) for i in range(len(grid))]
    ids: dict[tuple[int, ...], int] = {}
    taps = []
    for k in np.ndindex(*kernel):
        r = tuple(ki * di % si for ki, di, si in zip(k, dilation, stride))
        shift = sum(ki * di // si * p for ki, di, si, p in zip(k, dilation, stride, pitch))
        taps.append((ids.setdefault(r, len(ids)), shift))
    boxes = []
    for r in ids:                       # grid index m of phase r is input index m·s + r − lo
        box, src = [], []
        for ri, si, li, n, g in zip(r, stride, lo, size, grid):
            m0 = max(0, -((ri - li) // si))                    # first m with m·s + r ≥ lo
            m1 = min(g, (n - 1 + li - ri) // si + 1)           # one past the last inside x
            if m1 <= m0:
                boxes.append(None)
                break
            box.append(slice(m0, m1))
            src.append(slice(m0 * si + ri - li, (m1 - 1) * si + ri - li + 1, si))
        else:
            boxes.append((tuple(box), tuple(src)))
    return PhaseLayout(grid, tuple(taps), tuple(ids), tuple(boxes))
