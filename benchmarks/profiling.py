"""Where the time goes: cProfile of scratchnn's forward+backward for one case.

cProfile sees Python functions and the C functions they call by name (``numpy.einsum``,
``ndarray.sum``, ufunc methods); operators written as syntax (``a @ b``, ``a * b``) are not
calls it can see, so their time is the *own time* (tottime) of the Python function whose line
contains them. Reading the top entries by own time therefore says which function is the cost.

To say which *line*, a second pass traces the lines of scratchnn's own files
(``sys.settrace``) and charges the wall time between two line events of a frame to the first
line: the NumPy work a line starts (its operators, its calls into NumPy or BLAS) is charged to
that line, and time in a nested scratchnn function to that function's lines. Work that a line
hands to worker threads (scratchnn's convolution runs batch chunks on a small pool) is charged
to the line that waits for it; neither profiler looks inside the workers, so the benchmark
profiles with that pool limited to one thread (the work then runs on the calling thread).
"""
from __future__ import annotations

import cProfile
import linecache
import os
import pstats
import sys
import sysconfig
import time
from collections import defaultdict
from typing import Callable

__all__ = ["profile_calls", "profile_lines"]

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_LIB = os.path.join(_ROOT, "scratchnn") + os.sep
_STDLIB = sysconfig.get_paths()["stdlib"] + os.sep


def _where(file: str, line: int, func: str) -> str:
    if file == "~" or not file:
        return func                                  # a C function: "<method 'sum' of ...>"
    if file.startswith(_ROOT + os.sep):
        file = os.path.relpath(file, _ROOT)
    elif "site-packages" in file:
        file = file.split("site-packages" + os.sep, 1)[1]
    elif file.startswith(_STDLIB):
        file = os.path.relpath(file, _STDLIB)
    return f"{func} ({file}:{line})"


def profile_calls(fn: Callable[[], object], *, per_call: float | None = None,
                  min_time: float = 0.5, max_calls: int = 20, top: int = 12) -> dict:
    """Profile ``fn`` over enough calls to last ``min_time`` seconds; the ``top`` entries.

    ``per_call``: the time of one call if known (the benchmark's median), else measured.
    Returns ``{"calls": k, "total_s": t, "entries": [{function, ncalls, tottime_s,
    cumtime_s, share}], "lines": profile_lines(...)}`` with per-call times (divided by ``k``)
    and ``share`` = own time over the profiled total.
    """
    if per_call is None:
        t0 = time.perf_counter()
        fn()
        per_call = time.perf_counter() - t0
    k = max(1, min(max_calls, int(min_time / max(per_call, 1e-9))))
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
    return {"calls": k, "total_s": total / k, "entries": rows[:top],
            "lines": profile_lines(fn, calls=k, top=top)}


def profile_lines(fn: Callable[[], object], *, calls: int = 1, top: int = 12) -> list[dict]:
    """Own wall time per source line of scratchnn's files over ``calls`` calls of ``fn``.

    Returns the ``top`` lines as ``{where, code, time_s (per call), share}``, where ``share``
    is of the traced total (time outside scratchnn's lines, e.g. in the benchmark's closure, is
    not charged).
    """
    cost: dict[tuple[str, int], float] = defaultdict(float)
    stack: list[list] = []                    # [filename, current line] per traced frame
    clock = time.perf_counter
    last = [clock()]

    def charge() -> None:
        now = clock()
        if stack:
            f = stack[-1]
            cost[(f[0], f[1])] += now - last[0]
        last[0] = now

    def local(frame, event, arg):
        if event == "line":
            charge()
            stack[-1][1] = frame.f_lineno
        elif event == "return":
            charge()
            stack.pop()
        return local

    def global_(frame, event, arg):
        if event != "call" or not frame.f_code.co_filename.startswith(_LIB):
            return None
        charge()
        stack.append([frame.f_code.co_filename, frame.f_lineno])
        return local

    old = sys.gettrace()
    sys.settrace(global_)
    try:
        for _ in range(calls):
            fn()
    finally:
        sys.settrace(old)
    total = sum(cost.values()) or 1e-12
    rows = [{"where": f"{os.path.relpath(file, _ROOT)}:{line}",
             "code": linecache.getline(file, line).strip(),
             "time_s": t / calls, "share": t / total}
            for (file, line), t in cost.items()]
    rows.sort(key=lambda r: r["time_s"], reverse=True)
    return rows[:top]
