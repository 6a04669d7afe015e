"""Blocked elementwise kernels: a formula of many ufunc passes, run one cache-sized block at a
time, the blocks split over the worker threads.

Written whole-array, a formula of k ufuncs makes k passes through memory and k full-size
temporaries. :func:`blocked` cuts the flattened arrays into blocks of ``BLOCK_BYTES`` per array
and runs a *kernel* on each block with reused thread-local scratch blocks, so every pass but the
first read and the last write stays in cache; the blocks go to the worker pool as one range per
thread (:func:`scratchnn.perf.threads.ranges`; ufuncs release the GIL). Every block computes
the same elementwise formula, so the result is bit-identical for any block size and thread
count.

Measured here (Zen 4, 4.2 M float32 elements): a cheap in-cache pass (multiply, add, compare)
costs ~0.35 ms, ``np.exp`` ~2 ms, ``np.log1p`` ~6 ms; ``np.where`` on a random mask ~20 ms
(branch mispredictions) — which is why the kernels select with bits (:func:`select_bits`)
or by multiplying with an exactly chosen factor, never with ``np.where``. A ufunc call costs
~1.5 µs on top of its work, so blocks must not be small: elu's forward (15 calls a block) took
24 / 21 / 11 / 9.9 / 9.2 / 8.3 / 8.1 ms with blocks of 16 K / 32 K / 64 K / 128 K / 256 K /
512 K / 1 M bytes per array on one thread; 512 KiB (128 k float32) blocks keep the scratch in
L2 + L3 and the call overhead under 5 %. Where a core's L2 cannot hold three such blocks, large
arrays take 1 MiB blocks (:func:`~scratchnn.perf.blocks.block_bytes`): on two threads every
call hands the GIL over, and fewer calls won 4–9 % there (4 M float32 elements, paired:
relu 0.91×, gelu 0.91×, elu, silu, softplus 0.95–0.96×; one thread 0.95–1.00×).

Used by the activation engine (:mod:`scratchnn.functional.activation`).
"""
from __future__ import annotations

import threading
from typing import Callable, Sequence

import numpy as np

from . import threads
from .blocks import block_bytes

Array = np.ndarray

__all__ = ["BLOCK_BYTES", "BLOCK_MIN", "blocked", "int_view", "bits_of", "select_bits", "zeros_block"]

BLOCK_BYTES = 1 << 20            # bytes of each array per block: at most 1 MiB and at least
BLOCK_MIN = 1 << 19              # 512 KiB (128 k float32), as blocks.block_bytes says

_scratch = threading.local()


def _scratch_blocks(dtype: np.dtype, count: int, size: int) -> list[Array]:
    """``count`` reused scratch blocks of ``size`` elements for this thread."""
    have = _scratch.__dict__.setdefault("blocks", {})
    blocks = have.get(dtype)
    if blocks is None or len(blocks) < count or blocks[0].size < size:
        blocks = have[dtype] = [np.empty(size, dtype) for _ in range(max(count, 1))]
    return blocks


def zeros_block(dtype: np.dtype, size: int) -> Array:
    """A cached read-only block of ``size`` zeros: ``np.maximum(x, zeros)`` takes NumPy's
    vectorised array–array loop (~4× faster than against the scalar 0)."""
    have = _scratch.__dict__.setdefault("zeros", {})
    z = have.get(dtype)
    if z is None or z.size < size:
        z = have[dtype] = np.zeros(size, dtype)
        z.flags.writeable = False
    return z[:size]


def int_view(a: Array) -> Array:
    """``a``'s bits as signed integers of its width (a view)."""
    return a.view(np.dtype(f"i{a.itemsize}"))


def bits_of(value: float, dtype: np.dtype) -> int:
    """The bits of ``value`` rounded to ``dtype``, as a Python int (signed, ``dtype``'s width)."""
    return int(np.array(value, dtype).view(np.dtype(f"i{np.dtype(dtype).itemsize}")))


def select_bits(mask: Array, a: Array | int, b: Array, tmp: Array, out: Array) -> Array:
    """``np.where(m, a, b)`` on the bits: out = b ^ ((a ^ b) & mask). All arguments are integer
    views of one width (:func:`int_view`); ``a`` may be a constant's bits (:func:`bits_of`);
    ``mask`` is all ones (−1) where True and 0 elsewhere; ``tmp`` is scratch; ``out`` may be
    ``mask`` or ``b``. Exact for every value (NaN payloads, ±0, ±inf) and branch-free."""
    np.bitwise_xor(a, b, out=tmp)
    np.bitwise_and(tmp, mask, out=tmp)
    return np.bitwise_xor(b, tmp, out=out)


def blocked(kernel: Callable[[Sequence[Array], Sequence[Array], Sequence[Array]], None],
            inputs: Sequence[Array], outputs: Sequence[Array], scratch: int = 0) -> None:
    """Run ``kernel(ins, outs, scratch_blocks)`` over blocks of the flattened arrays.

    ``inputs`` are arrays of one shape (made C-contiguous if they are not — one copy);
    ``outputs`` are C-contiguous arrays of that shape, which the kernel fills block by block;
    the kernel gets 1-d views of one block of each, and ``scratch`` scratch blocks of the same
    length in the first output's dtype. It must be elementwise (element i of an output depends
    only on element i of each input) — then any blocking and any thread split give the same
    bits. Blocks hold ``BLOCK_MIN`` to ``BLOCK_BYTES`` of the widest array
    (:func:`~scratchnn.perf.blocks.block_bytes`: 1 MiB blocks, where a core's L2 cannot hold
    three of 512 KiB, made gelu, silu, softplus and elu 4–9 % faster on two threads over 4 M
    float32 elements); the blocks are split over ``get_num_threads()`` threads from
    ``threads.MIN_PARALLEL`` elements on.
    """
    ins = [np.ascontiguousarray(a).reshape(-1) for a in inputs]
    outs = [o.reshape(-1) for o in outputs]                       # views: C-contiguous
    n = outs[0].size
    itemsize = max(a.itemsize for a in (*ins, *outs))
    size = max(1, block_bytes(n * itemsize, BLOCK_MIN, BLOCK_BYTES) // itemsize)
    dtype = outs[0].dtype
    count = -(-n // size)

    def step(first: int, last: int) -> None:
        work = _scratch_blocks(dtype, scratch, size)
        for k in range(first, last):
            i, j = k * size, min(n, (k + 1) * size)
            kernel([a[i:j] for a in ins], [o[i:j] for o in outs],
                   [w[:j - i] for w in work[:scratch]])

    threads.ranges(step, count, n)
