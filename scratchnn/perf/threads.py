"""Threads for scratchnn's own loops: ``set_num_threads`` / ``get_num_threads`` and ``chunked``.

NumPy's BLAS already uses several threads for matrix products, but NumPy's elementwise ufuncs
(``np.exp``, ``np.maximum``, ...) run on one core. torch runs both on all its threads, so at the
same thread count a large elementwise op would otherwise be compared one core against many.

``chunked(fn, *arrays, out=out)`` splits contiguous arrays into one chunk per thread and runs
``fn`` on the chunks concurrently, each writing its part of ``out`` — ufuncs release the GIL,
so the chunks really run in parallel. Small arrays (under ``MIN_PARALLEL`` elements) and
``set_num_threads(1)`` skip the workers. Every chunk computes the same elementwise formula, so
results are bit-identical to the single call.

Measured here (4M float32 elements, 2 threads): it pays for compute-bound formulas (σ's
``exp``: 2×) and not for memory-bound ones (relu's ``maximum``: no gain), so only the former
use it.

The workers (:func:`run_team`) are plain threads, each woken by releasing a lock it waits on.
Measured here: a call with no work costs 46–60 µs (the worker woken, the GIL handed over and
back, the caller woken), where a ``concurrent.futures`` pool's submit and ``result()`` took
65–80 µs (a future, a work item and a condition per call); the two locks' round trip alone
takes ~16 µs. Paired in one process, 2 threads, forward + backward: relu over 262 144 and
524 288 elements 0.91×, sigmoid (524 288) 0.96×, batch norm (32, 64, 16, 16) 0.92×, softmax
(4, 8, 64, 128) 0.93×; the 2–4 M-element benchmark cases 0.98–0.99×.

The thread count mirrors ``torch.set_num_threads``: it defaults to the number of usable cores
and is what benchmarks set on both sides.
"""
from __future__ import annotations

import itertools
import os
import threading
from typing import Any, Callable

import numpy as np

__all__ = ["set_num_threads", "get_num_threads", "chunked", "ranges", "run_team", "share",
           "MIN_PARALLEL", "MIN_PARALLEL_ROWS"]

MIN_PARALLEL = 1 << 18          # below ~256k elements a thread hand-off costs more than it saves
MIN_PARALLEL_ROWS = 1 << 20     # the same for ops of per-row statistics (ranges' ``least``)
PIECES_PER_THREAD = 4           # ranges() cuts its work in this many pieces per thread

try:
    USABLE_CORES = max(1, len(os.sched_getaffinity(0)))     # the cores this process may use
except AttributeError:          # pragma: no cover - not Linux
    USABLE_CORES = max(1, os.cpu_count() or 1)
_threads = USABLE_CORES


class _Worker:
    """One persistent worker thread, woken by releasing its ``go`` lock; it runs ``task`` and
    releases ``done``. Two plain locks are the whole hand-off (see the module's docstring)."""

    def __init__(self, index: int) -> None:
        self.go, self.done = threading.Lock(), threading.Lock()
        self.go.acquire()
        self.done.acquire()
        self.task: Callable[[], Any] | None = None
        self.error: BaseException | None = None
        threading.Thread(target=self._loop, name=f"scratchnn-{index}", daemon=True).start()

    def _loop(self) -> None:
        while True:
            self.go.acquire()
            try:
                self.task()                                 # type: ignore[misc]
            except BaseException as e:                      # handed to the caller
                self.error = e
            self.done.release()


_workers: list[_Worker] = []
_busy = threading.Lock()        # held while a call runs on the workers


def _forget_workers() -> None:  # a forked child has none of its parent's threads
    global _busy
    _workers.clear()
    _busy = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_workers)


def set_num_threads(n: int) -> None:
    """Use ``n`` threads for scratchnn's own parallel loops (as ``torch.set_num_threads``).

    NumPy's BLAS threads are separate: limit them with ``threadpoolctl`` or
    ``OPENBLAS_NUM_THREADS``.
    """
    global _threads
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"set_num_threads(): parameter 'n' must be an int, got {n!r}")
    if n < 1:
        raise ValueError(f"set_num_threads(): parameter 'n' must be >= 1, got {n}")
    _threads = int(n)


def get_num_threads() -> int:
    """The thread count scratchnn's own parallel loops use."""
    return _threads


def run_team(take: Callable[[], Any], k: int) -> None:
    """Run ``take()`` on the calling thread and on ``k − 1`` worker threads at once, and return
    when every one has returned; a worker's exception is re-raised here.

    ``take`` must share out the work itself (each call takes pieces from a common counter until
    none is left), so that it is correct whoever runs it: a call made while the workers are
    busy — from inside a ``take``, or from another thread — runs ``take()`` on the calling
    thread alone. Workers start on first use and wait on a lock between calls."""
    if k <= 1 or not _busy.acquire(blocking=False):
        take()
        return
    try:
        while len(_workers) < k - 1:
            _workers.append(_Worker(len(_workers) + 1))
        team = _workers[:k - 1]
        for w in team:
            w.task, w.error = take, None
            w.go.release()
        try:
            take()                                          # the calling thread's share
        finally:
            for w in team:
                w.done.acquire()
        errors = [w.error for w in team if w.error is not None]
        for w in team:
            w.task, w.error = None, None
        if errors:
            raise errors[0]
    finally:
        _busy.release()


def _bounds(n: int, pieces: int) -> list[int]:
    """``pieces + 1`` balanced bounds from 0 to ``n``: piece i is ``[i·n // pieces, (i+1)·n //
    pieces)`` (integer arithmetic: ~0.6 µs, where ``np.linspace`` took 5 per call)."""
    return [i * n // pieces for i in range(pieces + 1)]


def chunked(fn: Callable[..., Any], *arrays: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``fn(*arrays, out=out)`` computed in ``get_num_threads()`` contiguous chunks at once.

    ``fn`` must be elementwise (element i of ``out`` depends only on element i of each array)
    and write its result into its ``out`` argument, as a ufunc does. All arrays must have
    ``out``'s shape; non-contiguous ones, small ones (< ``MIN_PARALLEL`` elements) and
    ``set_num_threads(1)`` run as the single call ``fn(*arrays, out=out)``. Each chunk computes
    the same formula, so the result is bit-identical to the single call. Returns ``out``.
    """
    n = _threads
    if (n == 1 or out.size < MIN_PARALLEL or not out.flags.c_contiguous
            or any(a.shape != out.shape or not a.flags.c_contiguous for a in arrays)):
        fn(*arrays, out=out)
        return out
    flat = [a.reshape(-1) for a in arrays]                      # views: contiguous inputs
    o = out.reshape(-1)
    share(lambda i, j: fn(*(a[i:j] for a in flat), out=o[i:j]), _bounds(o.size, n), n)
    return out


def share(step: Callable[[int, int], Any], bounds: list[int], k: int) -> None:
    """``step(bounds[i], bounds[i + 1])`` for every piece i, the pieces taken in turn by the
    calling thread and ``k − 1`` workers (:func:`run_team`)."""
    pieces = len(bounds) - 1
    taken, lock = itertools.count(), threading.Lock()

    def take() -> None:
        while True:
            with lock:
                i = next(taken)
            if i >= pieces:
                return
            step(bounds[i], bounds[i + 1])

    run_team(take, k)


def ranges(step: Callable[[int, int], Any], n: int, work: int, least: int | None = None
           ) -> None:
    """Run ``step(a, b)`` on index ranges ``[a, b)`` covering ``[0, n)`` (planes of a pooling,
    rows of a softmax, blocks of an elementwise kernel): ``PIECES_PER_THREAD`` balanced pieces
    per thread, taken in turn by the workers (:func:`run_team`) and the calling thread; a
    single call ``step(0, n)`` when one thread is set or the ``work`` (elements) is under
    ``least`` (default ``MIN_PARALLEL``).

    Ops of per-row or per-channel statistics (the softmax family, layer, RMS and batch norm)
    pass ``least=MIN_PARALLEL_ROWS``: each block makes a dozen short ufunc calls, and every
    call hands the GIL between the threads. Measured, 2 threads, forward + backward, float32,
    paired in one process, one thread below 1 M elements against two from 256 k: batch norm
    (16, 64, 16, 16) 0.59×, (64, 64, 8, 16) 0.84×; log_softmax (512, 1000) 0.56×; softmax
    (512, 1024) 0.67×, (4, 8, 64, 128) 0.61×; layer norm (512, 1024) 0.71×, (2048, 256)
    0.80×; even at 768 k–786 k. The streaming elementwise kernels (elu, silu, softplus,
    gelu, dropout) gain from two threads from 262 144 elements on (1.03–1.64×) and keep
    ``MIN_PARALLEL``.

    A few pieces per thread, not one and not many cache-sized ones. Not one: after a GEMM,
    OpenBLAS's worker thread spins for ~0.1 s on the other core (``OPENBLAS_THREAD_TIMEOUT``,
    2^28 cycles by default), so inside a model a pool thread often gets half a core; with one
    fixed range each, the calling thread waits for the slow half (softmax of attention's
    (16, 8, 128, 128) scores right after a GEMM: 11.6 ms on two threads, as slow as on one;
    5.5 ms without the GEMM), while with pieces the faster thread takes more of them
    (8.4–10.3 ms measured, the same 5.2–5.6 ms without the GEMM). Not many: every ufunc call
    hands the GIL over, and a range per cache-sized piece costs more than it saves (measured
    for max_pool2d k3 s2 p1, 2048 planes of 32×32, 2 threads, forward + backward, one future
    per range: 2 ranges 3.4 ms, 10 ranges of 1 MiB 4.6 ms, 37 of 256 KiB 10.5 ms; one
    thread 5.2 ms). A step that needs cache-sized pieces loops over them inside its range.

    Each step must write only its own part of the outputs and compute it exactly as a single
    call would: the result is then bit-identical for any thread count and any split."""
    k = min(_threads, n)
    if k <= 1 or work < (MIN_PARALLEL if least is None else least):
        if n:
            step(0, n)
        return
    share(step, _bounds(n, min(n, k * PIECES_PER_THREAD)), k)
