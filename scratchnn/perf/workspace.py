"""Column buffers and batch chunks for the convolution engine (:mod:`scratchnn.functional.conv`).

Neither is the convolution's mathematics; both are how its fast edition keeps memory and
page faults down and, optionally, overlaps one chunk's copies with another's matrix product:

* :func:`workspace` — a per-thread scratch array, one per name, reused across calls: repeated
  convolutions write into memory that is already mapped instead of page-faulting a fresh large
  buffer every time (measured: several ms per call for the shifted route's grids);
* :func:`run_chunks` — ``step(n0, n1)`` over batch chunks whose column buffer fits a byte
  budget, on the calling thread or spread over the worker threads of
  :mod:`scratchnn.perf.threads`.

The engine passes its own settings (``WORKSPACE_BYTES``, the thread count its route chose) in
every call, so forcing a route is a matter of the engine's module attributes alone.
"""
from __future__ import annotations

import math
import threading
from typing import Any, Callable

import numpy as np

from .threads import share

__all__ = ["workspace", "run_chunks"]

_local = threading.local()


def workspace(shape: tuple[int, ...], dtype: np.dtype, name: str, keep_bytes: int
              ) -> np.ndarray:
    """A scratch array of ``shape`` for this thread, reused across calls (one per ``name`` and
    dtype). Its contents are garbage; it stays valid until this thread asks for ``name`` again.
    Buffers over ``keep_bytes`` are handed out once and not kept."""
    n = math.prod(shape)
    cache = _local.__dict__.setdefault("ws", {})
    buf = cache.get((name, dtype))
    if buf is None or buf.size < n:
        buf = np.empty(n, dtype)
        if n * buf.itemsize <= keep_bytes:                     # keep only modest buffers
            cache[(name, dtype)] = buf
    return buf[:n].reshape(shape)


def run_chunks(n: int, per_sample: int, itemsize: int, step: Callable[[int, int], Any],
               budget: int, threads: int) -> list:
    """``[step(n0, n1) for each batch chunk]``, in chunk order.

    The chunks split ``[0, n)`` into balanced pieces whose column buffer (``per_sample``
    elements of ``itemsize`` bytes per sample) fits ``budget`` bytes. With ``threads > 1`` and
    more than one chunk they run on ``threads`` lanes — the calling thread and ``threads − 1``
    workers of :mod:`scratchnn.perf.threads`, each taking the next chunk left — so one chunk's
    copies (NumPy releases the GIL) overlap another's matrix product. Chunk boundaries and the order
    of the returned results do not depend on ``threads``: results are bit-identical."""
    if n == 0:
        return []
    b = max(1, min(n, budget // max(1, per_sample * itemsize)))
    k = -(-n // b)
    b = -(-n // k)                                           # balanced chunk sizes
    chunks = [(i, min(n, i + b)) for i in range(0, n, b)]
    lanes = min(threads, len(chunks))
    if lanes <= 1:
        return [step(n0, n1) for n0, n1 in chunks]
    results: list = [None] * len(chunks)

    def each(a: int, b: int) -> None:
        for i in range(a, b):
            results[i] = step(*chunks[i])

    share(each, list(range(len(chunks) + 1)), lanes)          # one chunk at a time
    return results
