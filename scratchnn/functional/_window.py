"""N-d windowing: the one piece that convolution, transposed convolution and pooling share.

A window op over ``d`` spatial dimensions is described by per-dimension ``kernel``, ``stride``,
``dilation`` and padding ``(lo, hi)``. Output size along one dimension (torch's formula)::

    o = ⌊(L + lo + hi − dil·(k − 1) − 1) / s⌋ + 1          (⌈·⌉ with ceil_mode, where the
                                                          last window must start inside L + lo)

Everything here is dimension-generic: 1d, 2d and 3d ops call the same functions.

The central idea is the *kernel-offset slice*: for a kernel offset ``k = (k_1..k_d)`` the slice
``x_p[..., k_1·dil_1 : … : s_1, …]`` picks, for every output position ``o``, the input element
that window ``o`` sees at offset ``k``. Looping over the (few) kernel offsets and doing whole-array
work per offset vectorises over batch, channels and every output position at once:

* im2col (convolution forward) copies each offset slice into a column buffer;
* col2im (the backward of im2col) *adds* each offset's gradient into the same slice — no
  ``np.add.at``, because within one offset the slice hits every input element at most once;
* pooling keeps a running max/min/sum over what every window sees at each offset.

:func:`offset_slices` over a :func:`pad`-ded copy is that idea in its plainest form; the tests
use it as the reference. The ops read the same values faster: im2col through
:func:`clipped_offset_slices` (no padded copy), and where a strided view would make every pass
an inner loop of one output row, through :func:`phase_layout`, which splits the input by stride
phase so that each offset is one contiguous run (convolution's shifted GEMM and max/min
pooling's passes).
"""
from __future__ import annotations

import functools
import math
from typing import Any, Iterator, NamedTuple, Sequence

import numpy as np

from .._validate import check_int, ntuple

Pads = tuple[tuple[int, int], ...]


def parse_padding(fn: str, padding: Any, n: int, kernel: Sequence[int] = (),
                  dilation: Sequence[int] = (), stride: Sequence[int] = ()) -> Pads:
    """Normalise ``padding`` to ``((lo, hi),) * n``.

    Accepts an int, a sequence of ``n`` ints, ``'valid'`` (no padding) or ``'same'`` (output
    size = input size; needs stride 1). torch splits the total ``dil·(k−1)`` of ``'same'`` as
    ``lo = total // 2``, ``hi = total − lo``: an even kernel pads one more on the high side.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * n
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(f"{fn}(): parameter 'padding' 'same' is not supported for "
                                 f"strided convolutions (stride={tuple(stride)})")
            pads = []
            for k, d in zip(kernel, dilation):
                total = d * (k - 1)
                pads.append((total // 2, total - total // 2))
            return tuple(pads)
        raise ValueError(f"{fn}(): parameter 'padding' must be an int, a tuple of ints, "
                         f"'valid' or 'same', got {padding!r}")
    p = ntuple(fn, "padding", padding, n, min=0)
    return tuple((v, v) for v in p)


def output_size(fn: str, size: int, k: int, s: int, d: int, lo: int, hi: int,
                ceil_mode: bool = False) -> int:
    """Number of windows along one dimension (torch's formula, ceil_mode rule included)."""
    span = size + lo + hi - d * (k - 1) - 1
    if span < 0:
        raise ValueError(f"{fn}(): parameter 'kernel_size' {k} (dilation {d}) is larger than "
                         f"the padded input size {size + lo + hi}")
    if ceil_mode:
        o = -(-span // s) + 1
        if (o - 1) * s >= size + lo:      # the last window would start in the right padding
            o -= 1
    else:
        o = span // s + 1
    return o


def pad(x: np.ndarray, pads: Pads, value: float = 0.0) -> np.ndarray:
    """Pad the trailing ``len(pads)`` dims of ``x`` with a constant; returns ``x`` if no pad.

    Shapes: x (N, C, *S) -> (N, C, *(S_i + lo_i + hi_i)). A fresh array, so ``x`` is untouched.
    """
    if all(lo == 0 and hi == 0 for lo, hi in pads):
        return x
    lead = x.ndim - len(pads)
    shape = x.shape[:lead] + tuple(s + lo + hi for s, (lo, hi) in zip(x.shape[lead:], pads))
    out = np.full(shape, value, dtype=x.dtype)
    out[(Ellipsis,) + tuple(slice(lo, lo + s) for s, (lo, _) in zip(x.shape[lead:], pads))] = x
    return out


def unpad(xp: np.ndarray, pads: Pads) -> np.ndarray:
    """The adjoint of :func:`pad` (a view): drop the padding of the trailing dims."""
    if all(lo == 0 and hi == 0 for lo, hi in pads):
        return xp
    lead = xp.ndim - len(pads)
    return xp[(Ellipsis,) + tuple(slice(lo, xp.shape[lead + i] - hi)
                                  for i, (lo, hi) in enumerate(pads))]


def offset_slices(kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int],
                  out: Sequence[int]) -> Iterator[tuple[tuple[int, ...], tuple[slice, ...]]]:
    """Yield ``(k, sl)`` for every kernel offset ``k``, in row-major (window) order.

    ``xp[(..., *sl)]`` has shape ``(..., *out)``: element ``o`` of it is ``xp[..., k·dil + o·s]``,
    the value window ``o`` sees at offset ``k``.
    """
    for k in np.ndindex(*kernel):
        yield k, tuple(slice(ki * di, ki * di + si * (oi - 1) + 1, si)
                       for ki, di, si, oi in zip(k, dilation, stride, out))


def window_view(xp: np.ndarray, kernel: Sequence[int], stride: Sequence[int],
                dilation: Sequence[int]) -> np.ndarray:
    """A read-only strided view of every window: (..., *S_padded) -> (..., *out, *kernel).

    No copy is made; use it for reading (e.g. a readable reference implementation).
    """
    d = len(kernel)
    lead, sp = xp.shape[:-d], xp.shape[-d:]
    out = tuple((s - di * (k - 1) - 1) // st + 1
                for s, k, st, di in zip(sp, kernel, stride, dilation))
    strides = xp.strides[:-d]
    strides += tuple(xs * st for xs, st in zip(xp.strides[-d:], stride))
    strides += tuple(xs * di for xs, di in zip(xp.strides[-d:], dilation))
    return np.lib.stride_tricks.as_strided(xp, lead + out + tuple(kernel), strides,
                                           writeable=False)


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


def check_window_args(fn: str, n: int, kernel_size: Any, stride: Any, dilation: Any
                      ) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Normalise kernel/stride/dilation to n-tuples of ints >= 1 (``stride=None`` -> kernel)."""
    k = ntuple(fn, "kernel_size", kernel_size, n, min=1)
    s = k if stride is None or (isinstance(stride, (list, tuple)) and len(stride) == 0) \
        else ntuple(fn, "stride", stride, n, min=1)
    d = ntuple(fn, "dilation", dilation, n, min=1)
    return k, s, d


def numel(shape: Sequence[int]) -> int:
    return math.prod(shape)


__all__ = ["parse_padding", "output_size", "pad", "unpad", "offset_slices",
           "clipped_offset_slices", "window_view", "PhaseLayout", "phase_layout",
           "check_window_args", "check_int", "numel"]
