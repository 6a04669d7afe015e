"""Dropout's keep mask from the generator's raw bits, split over threads: the same mask, faster.

The textbook draws ``u = gen.random(shape, dtype=float32)`` and keeps ``u ≥ p``
(:func:`scratchnn.textbook.dropout.dropout_mask`). NumPy makes each float32 uniform from one
32-bit half of the bit generator's 64-bit output: ``u = (r >> 8) · 2⁻²⁴``, the low half first,
the high half kept for the next draw (``has_uint32`` / ``uinteger`` in the state). So
``u ≥ p`` is the integer test ``r ≥ ⌈p·2²⁴⌉·2⁸`` on the raw halves, which
``bit_generator.random_raw`` hands out without building a float (4.8 vs 7.9 ms for 4.2 M
uniforms here); and PCG64 can jump ahead (``advance``), so each thread draws its own stretch of
the stream from a copy of the generator advanced to it (ufunc-free loops that release the
GIL). The result is the textbook's mask bit for bit, and the generator ends in the state the
textbook's draw leaves — for PCG64 and PCG64DXSM, whose 32-bit draws work this way; any
other bit generator takes the textbook's draw (:func:`supports`).
"""
from __future__ import annotations

import math

import numpy as np

from . import recycle, threads

Array = np.ndarray

__all__ = ["supports", "scaled_keep"]

_JUMPABLE = (np.random.PCG64, np.random.PCG64DXSM)
BLOCK = 1 << 16                  # raw draws per block: 512 KiB of raw bits, 2·65536 elements


def supports(gen: np.random.Generator) -> bool:
    """True when ``gen``'s bit generator draws float32 uniforms as this module assumes."""
    return type(gen.bit_generator) in _JUMPABLE


def _threshold(p: float) -> int:
    """⌈p·2²⁴⌉·2⁸: the raw 32-bit r with (r >> 8)·2⁻²⁴ ≥ float32(p) are exactly r ≥ this
    (float32(p)·2²⁴ is exact in a Python float)."""
    return math.ceil(float(np.float32(p)) * (1 << 24)) << 8


def scaled_keep(gen: np.random.Generator, x: Array, p: float, scale: np.floating
                ) -> tuple[Array, Array]:
    """``noise = (gen.random(x.size, dtype=float32) ≥ p) · scale`` — the keep mask scaled,
    ``m / (1 − p)`` — and ``y = x ⊙ noise``, both flat in x's dtype, with ``gen`` left in the
    state that draw leaves. ``x`` is flat and contiguous; ``gen`` must be :func:`supports`-ed;
    ``0 < p < 1``. Each thread draws, tests, scales and multiplies its stretch block by block
    (``BLOCK`` raw draws at a time, in cache)."""
    n = x.size
    noise, y = recycle.empty((n,), x.dtype), recycle.empty((n,), x.dtype)
    if n == 0:
        return noise, y
    bg = gen.bit_generator
    state = bg.state
    h = min(int(state["has_uint32"]), n)                  # a buffered half comes first
    m = n - h
    k = (m + 1) // 2                                      # raw 64-bit draws needed
    limit = _threshold(p)
    if h:
        noise[0] = scale if int(state["uinteger"]) >= limit else 0
        y[0] = x[0] * noise[0]
    parts = 1 if n < threads.MIN_PARALLEL else min(threads.get_num_threads(), max(k, 1))
    bounds = [k * i // parts for i in range(parts + 1)]
    gens = [bg]
    start = dict(state, has_uint32=0)
    for i in range(1, parts):                             # copies jumped to their stretch
        g = type(bg)()
        g.state = start
        g.advance(bounds[i])
        gens.append(g)
    last = [None]

    def draw(a: int, b: int) -> None:
        for i in range(a, b):
            for r0 in range(bounds[i], bounds[i + 1], BLOCK):
                r1 = min(bounds[i + 1], r0 + BLOCK)
                raw = gens[i].random_raw(r1 - r0)
                e0, e1 = h + 2 * r0, min(n, h + 2 * r1)
                halves = raw.view(np.uint32)[:e1 - e0]    # low half first, as NumPy draws
                nb = noise[e0:e1]
                np.greater_equal(halves, limit, out=nb, casting="unsafe")   # m as 0.0 / 1.0
                nb *= scale
                np.multiply(x[e0:e1], nb, out=y[e0:e1])
                if i == parts - 1:
                    last[0] = raw                        # the stream's last draw, at the end
    threads.ranges(draw, parts, n)
    end = gens[-1].state
    if m % 2:                                             # the last high half stays buffered
        end["has_uint32"], end["uinteger"] = 1, int(last[0][-1] >> np.uint64(32))
    else:
        end["has_uint32"] = 0
    bg.state = end
    return noise, y
