"""Average pooling's separable window sums: one dimension at a time, on clipped slices, with
flat runs along the last dimension and the planes in cache-sized blocks.

The textbook (:mod:`scratchnn.textbook.pooling`) sums the ``k_1·…·k_d`` offset slices of a
zero-padded copy. A window sum is separable, so the fast engine sums along one dimension at a
time (:func:`box_sum`, adjoint :func:`box_spread`): ``k_1 + … + k_d`` passes, none over a padded
copy. Along the last dimension, when every row has ``L = O·s`` elements, one strided flat run
per offset covers every row at once (no per-row inner loops). :func:`separable` chains the
passes over blocks of planes so the intermediate arrays stay a few MiB whatever the batch.
Every route computes the same sums in the same order: the results are bit-identical.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

Array = np.ndarray

__all__ = ["accumulate", "offset_ranges", "flat_runs_fit", "box_sum", "box_spread",
           "stage_shapes", "separable"]


# A window sum is separable: along each dimension in turn, y_i[o] = Σ_j y_{i−1}[o·s − p + j]
# (clipped to the input: zero padding adds nothing, so no padded copy is made). Each pass
# below is a whole-array ufunc call over one offset's slice.
Term = tuple[int, int, Array]      # (a, b, v): add v (outer, b − a, inner) into dst[:, a:b]


def accumulate(dst: Array, terms: Sequence[Term]) -> None:
    """``dst (outer, M, inner) = Σ terms`` in the given order; where no term reaches, 0.

    The first two terms go in one ``np.add`` over their common range (no copy-then-add);
    the parts only one of them covers are copied, and the rest are added in place. Every
    element is thus ``((t_1 + t_2) + t_3) + …`` over the terms that reach it, in order — the
    same value however the terms are cut (up to the sign of a zero)."""
    terms = [t for t in terms if t[1] > t[0]]
    M = dst.shape[1]
    if len(terms) >= 2 and max(terms[0][0], terms[1][0]) < min(terms[0][1], terms[1][1]):
        (a0, b0, v0), (a1, b1, v1) = terms[:2]
        a, b = max(a0, a1), min(b0, b1)
        np.add(v0[:, a - a0:b - a0], v1[:, a - a1:b - a1], out=dst[:, a:b])
        (lo, va, ta), (hi, vb, tb) = min((a0, v0, a0), (a1, v1, a1), key=lambda t: t[0]), \
            max((b0, v0, a0), (b1, v1, a1), key=lambda t: t[0])
        if lo < a:
            np.copyto(dst[:, lo:a], va[:, lo - ta:a - ta])    # only the earlier term starts
        if b < hi:
            np.copyto(dst[:, b:hi], vb[:, b - tb:hi - tb])    # only the later term ends
        rest = terms[2:]
    elif terms:
        lo, hi, v = terms[0]
        np.copyto(dst[:, lo:hi], v)
        rest = terms[1:]
    else:
        lo = hi = M
        rest = []
    if lo > 0:
        dst[:, :lo] = 0
    if hi < M:
        dst[:, hi:] = 0
    for a, b, v in rest:
        np.add(dst[:, a:b], v, out=dst[:, a:b])


def offset_ranges(k: int, s: int, lo: int, L: int, O: int) -> list[tuple[int, int]]:
    """Per kernel offset j, the windows ``[o0, o1)`` whose element ``o·s − lo + j`` lies in
    ``[0, L)`` (the others see padding, or ceil_mode's overhang, there)."""
    out = []
    for j in range(k):
        o0 = max(0, -((j - lo) // s))
        out.append((o0, max(o0, min(O, (L - 1 + lo - j) // s + 1))))
    return out


def flat_runs_fit(g: Any, d: int) -> bool:
    """Can dim ``d`` of geometry ``g`` take the flat runs? It must be innermost in memory
    (every later dim of size 1) with rows of ``L = O·s``: window ``o`` of row ``r`` then reads
    flat element ``(r·O + o)·s + j − lo``, one strided 1-d run per offset over all rows."""
    return math.prod(g.size[d + 1:]) == 1 and g.size[d] == g.out[d] * g.stride[d]


def stage_shapes(g: Any, backward: bool) -> list[tuple[int, ...]]:
    """The per-plane shapes :func:`separable` passes through: forward S -> … -> O (dims in
    order), backward O -> … -> S (dims in reverse)."""
    nd = len(g.size)
    shapes = [tuple(g.out) if backward else tuple(g.size)]
    for d in (range(nd - 1, -1, -1) if backward else range(nd)):
        n = g.size[d] if backward else g.out[d]
        shapes.append(shapes[-1][:d] + (n,) + shapes[-1][d + 1:])
    return shapes


def box_sum(src: Array, dst: Array, k: int, s: int, lo: int, flat: bool) -> None:
    """``dst[:, o] = Σ_j src[:, o·s − lo + j]`` over ``j < k`` with ``0 ≤ o·s − lo + j < L``:
    src ``(outer, L, inner)`` -> dst ``(outer, O, inner)``, one dimension of a window sum.

    Sliced: offset j adds the strided slice ``src[:, o0·s − lo + j :: s]`` into
    ``dst[:, o0:o1]``. Flat (``flat``; needs ``inner == 1`` and
    ``L = O·s``, see :func:`flat_runs_fit`): offset j adds one strided run over all rows;
    in a window ``o`` that offset j must skip, that run reads a neighbouring row's element,
    so those few boundary windows are summed again, sliced, afterwards."""
    outer, L, _ = src.shape
    O = dst.shape[1]
    ranges = offset_ranges(k, s, lo, L, O)
    if not flat:
        accumulate(dst, [(o0, o1, src[:, o0 * s - lo + j::s][:, :o1 - o0])
                          for j, (o0, o1) in enumerate(ranges)])
        return
    sf, df = src.reshape(1, -1, 1), dst.reshape(1, -1, 1)
    terms = []
    for j in range(k):                          # run q reads sf[q·s + c], kept inside src
        c = j - lo
        qa, qb = max(0, -(c // s)), min(df.shape[1], (sf.shape[1] - 1 - c) // s + 1)
        terms.append((qa, qb, sf[:, qa * s + c::s][:, :qb - qa]))
    accumulate(df, terms)
    d2, s2 = dst.reshape(outer, O, 1), src.reshape(outer, L, 1)
    for o in range(O):
        if any(not o0 <= o < o1 for o0, o1 in ranges):
            accumulate(d2[:, o:o + 1], [(0, 1, s2[:, i:i + 1]) for i in
                                         (o * s - lo + j for j, (o0, o1) in enumerate(ranges)
                                          if o0 <= o < o1)])


def box_spread(src: Array, dst: Array, k: int, s: int, lo: int, flat: bool) -> None:
    """The adjoint of :func:`box_sum`: ``dst[:, i] = Σ src[:, o]`` over the (o, j) with
    ``o·s − lo + j = i``; src ``(outer, O, inner)`` -> dst ``(outer, L, inner)``.

    The positions ``i ≡ r (mod s)`` form one sliced (or flat) view ``dst[:, r::s]``; the
    offsets with ``(j − lo) mod s = r`` write it, at view index ``o + (j − lo − r)/s``. In
    the flat form an offset's skipped windows wrap into a neighbouring row's elements, so
    those positions are summed again, sliced, afterwards."""
    outer, O, _ = src.shape
    L = dst.shape[1]
    ranges = offset_ranges(k, s, lo, L, O)
    sv, dv = (src.reshape(1, -1, 1), dst.reshape(1, -1, 1)) if flat else (src, dst)
    for r in range(s):
        terms = []
        for j, (o0, o1) in enumerate(ranges):
            c = j - lo
            if c % s != r:
                continue
            if flat:                            # src run q lands on dv[q·s + c], kept inside
                o0, o1 = max(0, -(c // s)), min(sv.shape[1], (dv.shape[1] - 1 - c) // s + 1)
            d = (c - r) // s
            terms.append((o0 + d, o1 + d, sv[:, o0:o1]))
        accumulate(dv[:, r::s], terms)
    if flat:
        d2, s2 = dst.reshape(outer, L, 1), src.reshape(outer, O, 1)
        wrapped = {(o * s - lo + j) % L for j, (o0, o1) in enumerate(ranges)
                   for o in [*range(o0), *range(o1, O)]}
        for i in sorted(wrapped):
            accumulate(d2[:, i:i + 1], [(0, 1, s2[:, o:o + 1]) for j, (o0, o1) in
                                         enumerate(ranges) for o in range(o0, o1)
                                         if o * s - lo + j == i])


def separable(src: Array, dst: Array, dims: Sequence[int], sizes: Sequence[int],
              step: Callable[[Array, Array, int, int, int, bool], None], g: Any,
              div: Array, divide_first: bool, flat: Sequence[bool], block: int) -> None:
    """Planes ``src (P, *A)`` -> ``dst (P, *B)``: one ``step`` (:func:`box_sum` or
    :func:`box_spread`) along each spatial dim in ``dims``, that dim's length becoming
    ``sizes[d]``, and a division by ``div`` first (``divide_first``) or last.

    ``flat[d]``: take the flat runs along dim ``d``. Planes go in blocks of ``block`` (the
    engine sizes them to a few MiB at the block's largest stage, :func:`stage_shapes`): the
    intermediate arrays are block-sized and reused from block to block, so the extra memory
    stays a few MiB whatever the batch. Each block computes its planes exactly as one block
    would (bit-identical for any block size)."""
    shapes = [src.shape[1:]]
    for d in dims:
        shapes.append(shapes[-1][:d] + (sizes[d],) + shapes[-1][d + 1:])
    P = src.shape[0]
    block = max(1, min(P, block))
    mids = [np.empty((block,) + shp, dst.dtype) for shp in shapes[1:-1]]
    first = np.empty((block,) + shapes[0], dst.dtype) if divide_first else None
    for a in range(0, P, block):
        n = min(block, P - a)
        cur = src[a:a + n]
        if first is not None:
            cur = np.divide(cur, div, out=first[:n])
        for i, d in enumerate(dims):
            nxt = dst[a:a + n] if i == len(dims) - 1 else mids[i][:n]
            outer = n * math.prod(nxt.shape[1:d + 1])
            step(cur.reshape(outer, shapes[i][d], -1), nxt.reshape(outer, sizes[d], -1),
                 g.kernel[d], g.stride[d], g.padding[d], flat[d])
            cur = nxt
        if not divide_first:
            np.divide(cur, div, out=cur)
