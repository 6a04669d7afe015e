"""Arrays whose memory is handed out again once nothing refers to them: a caching allocator.

A fresh NumPy array of a few MiB is cheap to ask for, but not always cheap to touch. When the C
allocator has given the memory of the previous call's arrays back to the kernel (glibc trims
the top of its heap once enough of it is free), the first write to every 4 KiB page of the
next array is a page fault, about 2 µs each on the machines measured. An LSTM layer's forward
and backward (T = 50, B = 32, H = 256, float32) took ~6 400 of them per call (≈ 12 ms, a third
of its time), torch's LSTM none. :func:`empty` keeps such buffers instead, as torch's
allocators do, so a training loop writes into memory that is already mapped.

Reuse is safe by construction: a kept buffer is handed out again only when the pool holds the
only reference to it (``sys.getrefcount``). Every array that shares its memory keeps it alive —
a NumPy view references its base, a ``memoryview`` its array — so while a context saved for a
backward, an output the caller still holds, or any view of either exists, the buffer is not
reused. Contents of a new array are garbage, as ``np.empty``'s.

The pools are per thread and bounded (``KEEP_BYTES`` per thread, ``MAX_PER_SIZE`` buffers per
size); only arrays of at least ``MIN_BYTES`` are pooled (smaller ones the C allocator serves
from its free lists anyway). :func:`release` drops this thread's free buffers (a memory
measurement should call it first: arrays served from the pool are not new allocations, so
tracemalloc does not see them). Without a GIL (free-threaded CPython) reference counts are not
a safe test, and :func:`empty` is plain ``np.empty``.
"""
from __future__ import annotations

import math
import sys
import threading

import numpy as np

__all__ = ["empty", "zeros", "release", "kept_bytes", "MIN_BYTES", "KEEP_BYTES",
           "MAX_PER_SIZE"]

MIN_BYTES = 256 << 10              # smaller arrays are plain np.empty
KEEP_BYTES = 512 << 20             # bytes kept per thread, in use or free
MAX_PER_SIZE = 8                   # buffers kept per (element count, dtype)

_local = threading.local()
_ENABLED = getattr(sys, "_is_gil_enabled", lambda: True)()


def _free_count() -> int:
    """The reference count a pooled buffer shows in :func:`_take`'s loop when the pool holds
    the only reference (the list, the loop variable, ``getrefcount``'s argument)."""
    bufs = [np.empty(1)]
    for buf in bufs:
        return sys.getrefcount(buf)
    raise AssertionError("unreachable")


_FREE = _free_count()


def _pools() -> dict:
    return _local.__dict__.setdefault("pools", {})


def _take(bufs: list) -> np.ndarray | None:
    for buf in bufs:
        if sys.getrefcount(buf) == _FREE:                   # nobody else refers to it
            return buf
    return None


def kept_bytes() -> int:
    """Bytes this thread's pools keep (buffers in use and free)."""
    return sum(b.nbytes for bufs in _pools().values() for b in bufs)


def release() -> None:
    """Drop this thread's free buffers (those in use stay with their holders)."""
    pools = _pools()
    for key in list(pools):
        bufs, kept = pools[key], []
        for buf in bufs:
            if sys.getrefcount(buf) > _FREE:                # still in use: keep tracking it
                kept.append(buf)
        if kept:
            pools[key] = kept
        else:
            del pools[key]


def empty(shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
    """``np.empty(shape, dtype)``, served from this thread's pool when a kept buffer of the
    same size is free (see the module docstring). C-contiguous; contents are garbage."""
    dt = np.dtype(dtype)
    n = math.prod(shape)
    if not _ENABLED or n * dt.itemsize < MIN_BYTES:
        return np.empty(shape, dt)
    pools = _pools()
    bufs = pools.setdefault((n, dt), [])
    buf = _take(bufs)
    if buf is None:
        buf = np.empty(n, dt)
        if len(bufs) >= MAX_PER_SIZE:
            return buf.reshape(shape)
        if kept_bytes() + buf.nbytes > KEEP_BYTES:
            release()
            if kept_bytes() + buf.nbytes > KEEP_BYTES:
                return buf.reshape(shape)
            bufs = pools.setdefault((n, dt), [])
        bufs.append(buf)
    return buf.reshape(shape)


def zeros(shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
    """``np.zeros(shape, dtype)`` from the pool (:func:`empty`, then filled with 0)."""
    a = empty(shape, dtype)
    a.fill(0)
    return a
