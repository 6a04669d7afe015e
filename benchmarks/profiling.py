"""Where the time goes: cProfile of scratchnn's forward+backward for one case.

cProfile sees Python functions and the C functions they call by name (``numpy.einsum``,
``ndarray.sum``, ufunc methods); operators written as syntax (``a @ b``, ``a * b``) are not
calls it can see, so their time is the *own time* (tottime) of the Python function whose line
contains them. Reading the top entries by own time therefore says which function, and within
it which NumPy call or operator line, is the cost.
"""
from __future__ import annotations

import cProfile
import os
import pstats
import time
from typing import Callable

__all__ = ["profile_calls"]

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _where(file: str, line: int, func: str) -> str:
    if file == "~" or not file:
        return func                                  # a C function: "<method 'sum' of ...>"
    if file.startswith(_ROOT + os.sep):
        file = os.path.relpath(file, _ROOT)
    elif "site-packages" in file:
        file = file.split("site-packages" + os.sep, 1)[1]
    return f"{func} ({file}:{line})"


def profile_calls(fn: Callable[[], object], *, min_time: float = 0.5, max_calls: int = 20,
                  top: int = 12) -> dict:
    """Profile ``fn`` over enough calls to last ``min_time`` seconds; the ``top`` entries.

    Returns ``{"calls": k, "total_s": t, "entries": [{function, ncalls, tottime_s,
    cumtime_s, share}]}`` with per-call times (divided by ``k``) and ``share`` = own time over
    the profiled total.
    """
    t0 = time.perf_counter()
    fn()
    once = time.perf_counter() - t0
    k = max(1, min(max_calls, int(min_time / max(once, 1e-9))))
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(k):
        fn()
    prof.disable()
    st = pstats.Stats(prof)
    total = st.total_tt or 1e-12
    rows = []
    for (file, line, func), (_cc, nc, tt, ct, _callers) in st.stats.items():
        if func == "<built-in method builtins.exec>" or "disable' of '_lsprof" in func:
            continue
        rows.append({"function": _where(file, line, func), "ncalls": nc / k,
                     "tottime_s": tt / k, "cumtime_s": ct / k, "share": tt / total})
    rows.sort(key=lambda r: r["tottime_s"], reverse=True)
    return {"calls": k, "total_s": total / k, "entries": rows[:top]}
