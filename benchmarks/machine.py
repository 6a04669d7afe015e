"""The machine a run measured: CPU, cores, threads, library versions, BLAS, and its matmul peak.

The peak is measured, not looked up: one large square GEMM in NumPy and in torch at the run's
thread count and dtype (interleaved, median of repeats). ``2 n³`` FLOPs per product. The larger
of the two is "the machine's matmul peak" that each case's GFLOP/s is compared with.
"""
from __future__ import annotations

import datetime
import os
import platform
import sys

import numpy as np

from .timing import compare, stats

__all__ = ["machine_info", "blas_info", "measure_peak", "cpu_flags", "blas_warnings",
           "load_warnings", "cpu_times", "steal_fraction", "steal_warnings", "Canary",
           "canary_warnings", "canary_slow", "keep_faster_canary", "CANARY_WARN"]

_BLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
             "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    """The CPU's feature flags (``/proc/cpuinfo``; empty where it cannot be read)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


# OpenBLAS kernel names by the widest vector unit they use
_AVX512_KERNELS = {"skylakex", "cooperlake", "sapphirerapids"}
_AVX2_KERNELS = {"haswell", "zen", "excavator"}


def blas_warnings(blas: list[dict], flags: set[str], env: dict[str, str]) -> list[str]:
    """Warnings when a BLAS runs a narrower kernel than the CPU supports, or when
    ``OPENBLAS_CORETYPE`` forces one: threadpoolctl's ``architecture`` against the CPU flags."""
    out = []
    if "OPENBLAS_CORETYPE" in env:
        out.append(f"OPENBLAS_CORETYPE={env['OPENBLAS_CORETYPE']} forces OpenBLAS's kernel; "
                   f"unset it (env -u OPENBLAS_CORETYPE) to let OpenBLAS pick the CPU's best")
    for b in blas:
        arch = str(b.get("architecture") or "").lower()
        if b.get("internal_api") != "openblas" or not arch:
            continue
        has512, has2 = "avx512f" in flags, "avx2" in flags
        if has512 and arch not in _AVX512_KERNELS:
            out.append(f"OpenBLAS runs its {b['architecture']} kernel but the CPU supports "
                       f"AVX-512 (kernels SkylakeX/Cooperlake/SapphireRapids): GEMM-bound "
                       f"figures and floors are lower than this CPU allows")
        elif has2 and not has512 and arch not in _AVX2_KERNELS | _AVX512_KERNELS:
            out.append(f"OpenBLAS runs its {b['architecture']} kernel but the CPU supports "
                       f"AVX2 (kernel Haswell/Zen)")
    return out


def load_warnings(before: tuple[float, ...], after: tuple[float, ...], cores: int,
                  threads: int) -> list[str]:
    """Warnings when other work shared the CPU: the 1-minute load average before the run
    above 0.5 (nothing else should run), or after it above ``threads`` + 0.5 (the run's own
    threads account for up to ``threads``)."""
    out = []
    if before[0] > 0.5:
        out.append(f"the machine was busy before the run: load average {before[0]:.2f} "
                   f"(1 min) on {cores} cores; other processes take cores from both sides")
    if after[0] > threads + 0.5:
        out.append(f"the machine was busy during the run: load average {after[0]:.2f} (1 min) "
                   f"at the end, above the run's own {threads} thread(s)")
    return out


def cpu_times() -> tuple[int, int] | None:
    """(stolen, total) CPU time in clock ticks since boot, summed over the cores, from the
    first line of ``/proc/stat``; ``None`` where there is none (not Linux). "Steal" is time
    the hypervisor gave this virtual machine's cores to other guests: invisible to the load
    average, it slows both sides of a comparison unevenly, one repeat more than another."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu" or len(fields) < 9:
        return None
    ticks = [int(v) for v in fields[1:9]]        # user nice system idle iowait irq softirq steal
    return ticks[7], sum(ticks)


def steal_fraction(before: tuple[int, int] | None, after: tuple[int, int] | None
                   ) -> float | None:
    """The share of CPU time stolen by the hypervisor between two :func:`cpu_times`."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


STEAL_WARN = 0.05    # a run (or case) losing more than 5 % of its CPU time to other guests


def steal_warnings(run: float | None, cases: dict[str, float | None]) -> list[str]:
    """Warnings when the hypervisor took CPU time from the run (steal above ``STEAL_WARN``),
    naming the cases that lost more than twice that."""
    out = []
    if run is not None and run > STEAL_WARN:
        worst = [n for n, f in cases.items() if f is not None and f > 2 * STEAL_WARN]
        out.append(f"the hypervisor took {100 * run:.0f} % of the CPU time during the run "
                   f"(steal, /proc/stat): other guests share these cores, and every time, the "
                   f"floors' included, is slower and noisier than the machine allows"
                   + (f"; over {200 * STEAL_WARN:.0f} % in: {', '.join(worst)}" if worst else ""))
    return out


CANARY_WARN = 1.25   # a case whose canary took 25 % more than the run's fastest canary


class Canary:
    """A fixed workload of the kind the host's slow mode hits hardest, timed before and after
    every case: ``products`` in-cache (64, 192) @ (192, 2048) float32 products on the BLAS's
    threads, each followed by an in-place add on one thread (the shifted GEMM's pattern).

    On 2026-12-04 the host had a slow mode lasting tens of seconds in which this pattern took
    1.5× as long while a 2048² GEMM took 1.03–1.05×, a 64 MiB copy and one-thread products
    1×, and neither the load average nor the steal time moved; scratchnn's 64-channel
    convolutions then ran 1.6–1.8× slower, torch's barely (docs/benchmarks.md)."""

    def __init__(self, products: int = 40):
        rng = np.random.default_rng(0)
        self.a = rng.standard_normal((64, 192), dtype=np.float32)
        self.b = rng.standard_normal((192, 2048), dtype=np.float32)
        self.t = np.empty((64, 2048), np.float32)
        self.o = np.zeros((64, 2048), np.float32)
        self.products = products

    def run(self) -> None:
        for _ in range(self.products):
            np.matmul(self.a, self.b, out=self.t)
            self.o += self.t

    def time(self, calls: int = 3) -> float:
        """Median seconds of ``calls`` runs, after an untimed one (:func:`timing.compare`)."""
        samples, number = compare({"canary": self.run}, repeats=calls, warmup=1,
                                  min_time=0.0, min_repeats=calls, settle=0.0,
                                  max_extra_warmup=0)["canary"]
        return stats(samples, number).median


def canary_slow(cases: dict[str, list[float] | None]) -> dict[str, float]:
    """The cases whose canary (before or after, :class:`Canary`) took more than
    ``CANARY_WARN`` × the fastest canary among them: name -> that slower canary over the
    fastest."""
    times = [t for ts in cases.values() if ts for t in ts]
    if not times:
        return {}
    best = min(times)
    return {n: max(ts) / best for n, ts in cases.items() if ts and max(ts) > CANARY_WARN * best}


def canary_warnings(cases: dict[str, list[float] | None], reruns: int = 0) -> list[str]:
    """A warning naming the cases whose canary took more than ``CANARY_WARN`` × the fastest
    canary of the run (:func:`canary_slow`), after ``reruns`` reruns of such cases."""
    slow = canary_slow(cases)
    if not slow:
        return []
    after = f", after measuring them again up to {reruns} time(s)" if reruns else ""
    return [f"the host ran short two-thread BLAS calls slowly around {len(slow)} case(s) (a "
            f"fixed canary workload took up to {max(slow.values()):.2f}× its fastest time in "
            f"this run{after}; load and steal do not show this): {', '.join(slow)}; "
            f"scratchnn's times there are likely inflated more than torch's: rerun them"]


def keep_faster_canary(old: dict, new: dict) -> dict:
    """Of two measurements of one case (records with ``canary_s``), the one whose slower
    canary was faster — the host nearer its fast mode — with ``attempts`` counting both and
    ``canary_attempts`` every attempt's canary times, in order. A new attempt that did not
    run (``status`` other than ``"ok"``) is never kept."""
    history = old.get("canary_attempts", [old["canary_s"]]) + [new["canary_s"]]
    better = (new.get("status", "ok") == "ok"
              and max(new["canary_s"]) < max(old["canary_s"]))
    kept = dict(new if better else old)
    kept["attempts"] = len(history)
    kept["canary_attempts"] = history
    return kept


def _madvise_hugepage() -> bool | None:
    """Whether NumPy advises huge pages for large arrays (see ``benchmarks/__init__.py``)."""
    try:
        from numpy._core.multiarray import _get_madvise_hugepage
        return bool(_get_madvise_hugepage())
    except ImportError:                                      # pragma: no cover
        return None


def blas_info() -> list[dict]:
    """threadpoolctl's view of the loaded BLAS/OpenMP libraries (kernel = ``architecture``)."""
    from threadpoolctl import threadpool_info
    keep = ("user_api", "internal_api", "prefix", "version", "architecture", "num_threads",
            "threading_layer", "filepath")
    return [{k: d.get(k) for k in keep if k in d} for d in threadpool_info()]


def machine_info(threads: int) -> dict:
    import torch
    try:
        import threadpoolctl
        tpc = threadpoolctl.__version__
    except ImportError:                                      # pragma: no cover
        tpc = None
    cuda = None
    if torch.cuda.is_available():
        cuda = {"device": torch.cuda.get_device_name(0), "cuda": torch.version.cuda}
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu_model": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "affinity_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else None,
        "threads": threads,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "torch": torch.__version__,
        "threadpoolctl": tpc,
        "torch_parallel": torch.__config__.parallel_info().splitlines()[:6],
        "blas": blas_info(),
        "blas_env": {k: os.environ[k] for k in _BLAS_ENV if k in os.environ},
        "numpy_madvise_hugepage": _madvise_hugepage(),
        "cuda": cuda,
    }


def measure_peak(dtype: np.dtype, n: int, repeats: int) -> dict:
    """GFLOP/s of an ``n × n`` GEMM in NumPy and in torch (current thread settings)."""
    import torch
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    ta, tb = torch.from_numpy(a.copy()), torch.from_numpy(b.copy())
    res = compare({"numpy": lambda: a @ b, "torch": lambda: torch.mm(ta, tb)},
                  repeats=repeats, warmup=2, min_time=0.0, budget=20.0)
    flops = 2.0 * n ** 3
    out = {"n": n, "dtype": str(np.dtype(dtype)), "flops": flops}
    for side, (samples, number) in res.items():
        s = stats(samples, number)
        out[f"{side}_gflops"] = flops / s.median / 1e9
        out[f"{side}_time"] = s.to_json()
    out["peak_gflops"] = max(out["numpy_gflops"], out["torch_gflops"])
    return out
