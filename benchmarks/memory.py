"""Peak *extra* memory of one forward+backward call, per side.

What is measured (and what is not):

* **scratchnn** — ``tracemalloc``: NumPy reports every array-data allocation to tracemalloc
  (``PyTraceMalloc_Track``), so the traced peak during the call minus the traced size before it
  is the peak of the arrays (and Python objects) the call allocated, whether they are freed
  before it returns or not. Not seen: the BLAS library's own work buffers (OpenBLAS allocates
  them once, at start-up) and memory that is only mapped, never allocated through NumPy.
* **torch on CPU** — torch's CPU allocator reports each allocation and free to the profiler
  (``torch.profiler.profile(profile_memory=True)``); the peak of the running sum of those
  events is the peak extra tensor memory. Not seen: oneDNN/MKL scratch space allocated outside
  torch's allocator, and the autograd graph's small C++ objects. This reads a private part of
  the profiler's results (``experimental_event_tree``); when that is unavailable the fallback
  is the process's resident-set high-water mark (``VmHWM`` after resetting it through
  ``/proc/self/clear_refs``) minus the resident size before the call: whole pages, and it
  misses memory that the C allocator reuses from its free lists, so it can only under-report.
  The method used is recorded with each number.
* **torch on CUDA** — ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``.

Each is measured in a separate, untimed call after the timings (tracing slows a call down).
"""
from __future__ import annotations

import contextlib
import gc
import os
import tracemalloc
from typing import Callable

from scratchnn.perf import recycle

__all__ = ["scratchnn_peak", "torch_cpu_peak", "torch_cuda_peak"]


def scratchnn_peak(fn: Callable[[], object]) -> tuple[int, str]:
    """Peak bytes allocated by ``fn()`` beyond what was allocated before, via tracemalloc.

    The engines' buffer pool (:mod:`scratchnn.perf.recycle`) is emptied first: a buffer it
    hands out again is not a new allocation, and tracemalloc would not see it."""
    gc.collect()
    recycle.release()
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        result = fn()
        _, peak = tracemalloc.get_traced_memory()
        del result
    finally:
        tracemalloc.stop()
    return max(0, peak - base), "tracemalloc"


@contextlib.contextmanager
def _quiet_stderr():
    """Silence C-level stderr (kineto prints profiler start/stop lines there)."""
    try:
        fd = os.dup(2)
    except OSError:                     # no real stderr: nothing to silence
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(fd, 2)
        os.close(fd)


def _profiler_peak(fn: Callable[[], object]) -> int:
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    with _quiet_stderr():
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            result = fn()
            del result
    events: list[tuple[int, int]] = []
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        if node.tag == _EventType.Allocation and str(node.extra_fields.device) == "cpu":
            events.append((node.start_time_ns, node.extra_fields.alloc_size))
        stack.extend(node.children)
    if not events:
        raise RuntimeError("the profiler recorded no CPU allocation")
    events.sort()
    cur = peak = 0
    for _, size in events:
        cur += size
        peak = max(peak, cur)
    return peak


def _statm_rss() -> tuple[int, int]:
    vals = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, rest = line.split(":")
                vals[key] = int(rest.split()[0]) * 1024
    return vals["VmRSS"], vals["VmHWM"]


def _rss_peak(fn: Callable[[], object]) -> int:
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:   # "5": reset the peak RSS to the current
        f.write("5")
    base, _ = _statm_rss()
    result = fn()
    _, hwm = _statm_rss()
    del result
    return max(0, hwm - base)


def torch_cpu_peak(fn: Callable[[], object]) -> tuple[int | None, str]:
    """Peak extra bytes of a torch CPU call: allocator events, else the RSS high-water mark."""
    gc.collect()
    try:
        return _profiler_peak(fn), "torch profiler (CPU allocator events)"
    except Exception:                   # private API moved, or profiler unavailable
        pass
    try:
        return _rss_peak(fn), "RSS high-water mark (/proc/self/clear_refs)"
    except OSError:
        return None, "unavailable"


def torch_cuda_peak(fn: Callable[[], object]) -> tuple[int, str]:
    """Peak extra bytes of a torch CUDA call, from the CUDA caching allocator's statistics."""
    import torch
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    result = fn()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated()
    del result
    return max(0, peak - base), "torch.cuda.max_memory_allocated"
