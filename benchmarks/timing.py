"""Interleaved timing: every side of a case is timed in turn, repeat after repeat.

Why interleaved: on a shared or thermally throttled machine the speed drifts over seconds. Timing
all of scratchnn and then all of torch would put that drift into the ratio; alternating them
(scratchnn, torch, torch, scratchnn, ...) gives *pairs* of samples taken under the same
conditions, and the ratio reported is the median of the per-repeat ratios.

One *sample* runs the callable ``number`` times back to back and divides (as ``timeit`` does),
with ``number`` calibrated once per side so that a sample lasts at least ``min_time`` seconds;
the garbage collector is off during a sample. Before sampling, every side is warmed up (first
calls pay for BLAS thread start-up, allocator growth, torch's dispatcher caches).

Why the next side settles before it is timed: after a call, OpenBLAS's worker threads keep
spinning for ~0.1 s before they sleep (and OpenMP's may too). Timed right after a NumPy GEMM,
torch's linear forward+backward at 2 threads measured 22 ms instead of 8 ms on this machine —
its threads were fighting spinning OpenBLAS threads for the two cores. So whenever the side
changes, ``compare`` first calls the next side untimed for ``settle`` seconds (default 0.2 s,
where the effect had vanished): the other side's threads stop spinning meanwhile, and neither
side's timed sample pays for them.

Why calls, not a sleep: the harness used to *sleep* ``settle`` seconds and then call the next
side for 0.03 s. The sleep had a cost of its own: after it the cores ran slow for their first
milliseconds of work — and on some switches for 50–100 ms (clock or virtual-CPU wake-up). relu's
forward measured 1.5 ms per call 0.2 s into steady work, 3.3 ms in the first 30 ms after a
0.2 s sleep, 1.9 ms after 100 ms. A 50 ms sample then began with that ramp, by unequal amounts
on the two sides, and the paired ratio spread: relu's forward+backward 1.95 [1.90–2.31] after
a sleep, 1.76 [1.69–1.92] with busy settling; the linear case 1.10 [0.91–1.22] against
1.01 [0.98–1.04] (same process, 15 repeats each). Busy, the cores never idle between samples,
and each side is timed in the steady state of its own work, as in a training loop. ``idle``
seconds of sleep before the settling calls (default 0) reproduce the old method
(``idle=0.2, settle=0.03``).
"""
from __future__ import annotations

import gc
import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["Stats", "compare", "paired_ratio", "stats"]


@dataclass
class Stats:
    """Summary of one side's samples (seconds per call)."""
    median: float
    q1: float
    q3: float
    min: float
    n: int            # samples (repeats)
    number: int       # calls per sample

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1

    def to_json(self) -> dict:
        return {"median_s": self.median, "q1_s": self.q1, "q3_s": self.q3, "iqr_s": self.iqr,
                "min_s": self.min, "repeats": self.n, "calls_per_repeat": self.number}


def stats(samples: list[float], number: int = 1) -> Stats:
    a = np.asarray(samples, dtype=float)
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    return Stats(float(med), float(q1), float(q3), float(a.min()), len(a), number)


def paired_ratio(num: list[float], den: list[float]) -> tuple[float, float, float]:
    """Median and quartiles of the per-repeat ratios ``num[r] / den[r]``."""
    r = np.asarray(num, dtype=float) / np.asarray(den, dtype=float)
    q1, med, q3 = np.percentile(r, [25, 50, 75])
    return float(med), float(q1), float(q3)


def _sample(fn: Callable[[], object], number: int) -> float:
    """Seconds per call over ``number`` calls. A side that defines ``begin_sample`` and
    ``end_sample`` (the floor probe, which times its own parts) has them called around the
    timed calls, so that it can tell them from warm-up and settling calls."""
    begin, end = getattr(fn, "begin_sample", None), getattr(fn, "end_sample", None)
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        if begin is not None:
            begin()
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        took = (time.perf_counter() - t0) / number
        if end is not None:
            end()
        return took
    finally:
        if gc_was_on:
            gc.enable()


def _settle(fn: Callable[[], object], seconds: float) -> None:
    """Call ``fn`` untimed until ``seconds`` have passed (at least once when ``seconds > 0``)."""
    if seconds <= 0:
        return
    end = time.perf_counter() + seconds
    fn()
    while time.perf_counter() < end:
        fn()


def compare(fns: dict[str, Callable[[], object]], *, repeats: int, warmup: int = 1,
            min_time: float = 0.02, budget: float = 30.0, min_repeats: int = 3,
            settle: float = 0.2, idle: float = 0.0, stable: float = 0.1,
            max_extra_warmup: int = 5) -> dict[str, tuple[list[float], int]]:
    """Time each callable in ``fns``, interleaved; return ``{side: (samples, number)}``.

    ``warmup`` untimed calls per side (at least one: it also estimates the time per call),
    then up to ``max_extra_warmup`` more rounds while a side's last two warm calls (of more
    than 1 ms) differ by more than ``stable`` (first calls pay for oneDNN's primitive creation,
    allocator growth, BLAS thread start-up: torch's first conv2d call measured 3× its next);
    ``repeats`` samples per side, reduced (never below ``min_repeats``) when the estimate says
    the case would take longer than ``budget`` seconds in all; whenever the side changes,
    ``idle`` seconds of sleep (default none), then untimed calls of the next side for
    ``settle`` seconds (at least one call; see the module docstring).
    """
    names = list(fns)
    per_call: dict[str, float] = {}
    prev: dict[str, float] = {}
    spent = 0.0
    for w in range(max(1, warmup) + max_extra_warmup):
        if w >= max(1, warmup):                             # warm until stable (or give up)
            unstable = [n for n in names if per_call[n] > 1e-3 and (
                n not in prev or abs(per_call[n] - prev[n]) > stable * min(per_call[n], prev[n]))]
            if not unstable or spent > budget / 4:
                break
        prev = dict(per_call)
        for name in names:
            t0 = time.perf_counter()
            fns[name]()
            per_call[name] = time.perf_counter() - t0       # the last warm call is the estimate
            spent += per_call[name]
    number = {n: max(1, min(10_000, math.ceil(min_time / max(per_call[n], 1e-9))))
              for n in names}
    one_round = sum(per_call[n] * number[n] for n in names)
    if one_round * repeats > budget:
        repeats = max(min_repeats, int(budget / max(one_round, 1e-9)))
    samples: dict[str, list[float]] = {n: [] for n in names}
    gc.collect()
    last = None
    for r in range(repeats):
        order = names if r % 2 == 0 else names[::-1]        # ABBA: no side always goes first
        for name in order:
            if name != last:
                if idle > 0:
                    time.sleep(idle)
                _settle(fns[name], settle)      # the other side's threads stop spinning meanwhile
            samples[name].append(_sample(fns[name], number[name]))
            last = name
    return {n: (samples[n], number[n]) for n in names}
