"""How much a second thread buys on this machine: NumPy passes of several sizes, and GEMMs.

``python -m benchmarks.scaling [--threads N] [--sizes KiB,...] [--json PATH]``

Every thread gets the same fixed amount of work — a copy-like elementwise pass repeated over
its own arrays of one size (``out = a · 1.5``: one read, one write per element), or one-thread
GEMMs of 512×512 float32 — and all threads run at once. The *scaling* is how much more work
per second N threads finish than one: N for work that shares nothing, ~1 for work serialised by
something shared (the GIL, memory bandwidth).

Why it matters here: NumPy releases the GIL inside a ufunc, so scratchnn can split a pass over
threads (``scratchnn.perf.threads``), but a thread must take the GIL back after every call, and on
this project's 2-core VM that wake-up costs tens of microseconds. Measured there (2 threads):
passes of 16 KiB to 1 MiB per call (≤ ~30 µs) scale 1.0×, 4 MiB (~80 µs) 1.5–1.9×, 16 MiB
(arrays beyond the shared 32 MiB L3) 1.0×; GEMMs 1.97×. The ConvNet's step is hundreds of
NumPy calls of 10–300 µs around a few GEMMs, which is why it gains 1.2× from its second thread
(torch, whose kernels run in C++ without a GIL: 1.7×). No timing is asserted anywhere; the
figures describe the machine they run on.
"""
from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path

import numpy as np

__all__ = ["scaling", "main"]


def _run_threads(work, n: int, reps: int) -> float:
    """Seconds for ``n`` threads each running ``work(reps)`` at the same time."""
    threads = [threading.Thread(target=work, args=(reps,)) for _ in range(n)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def scaling(threads: int = 2, sizes_kib: tuple[float, ...] = (16, 1024, 4096, 16384),
            rounds: int = 5) -> dict:
    """``{"copy": {KiB: s, ...}, "gemm": s, ...}``: N-thread throughput over one-thread
    throughput (median of ``rounds`` paired measurements), NumPy's BLAS at one thread per call;
    also ``"us_per_call"``: one thread's time per copy-like call of each size."""
    from threadpoolctl import threadpool_limits

    a = np.random.default_rng(0).random((512, 512), dtype=np.float32)
    b = a.T.copy()

    def copy_of(kib: float):
        n_el = max(1, int(kib * 1024) // 4)

        def copy(reps: int) -> None:
            src = np.ones(n_el, np.float32)             # each thread its own arrays
            dst = np.empty_like(src)
            for _ in range(reps):
                np.multiply(src, 1.5, out=dst)
        return copy, max(20, int(64 * 1024 / max(kib, 1e-3)))   # ~64 MiB per thread

    def gemm(reps: int) -> None:
        for _ in range(reps):
            a @ b

    def measure(work, reps: int) -> tuple[float, float]:
        work(2)                                         # warm-up
        ratios, t1s = [], []
        for _ in range(rounds):
            t1 = _run_threads(work, 1, reps)
            tn = _run_threads(work, threads, reps)
            ratios.append(threads * t1 / tn)
            t1s.append(t1 / reps)
        return float(np.median(ratios)), float(np.median(t1s)) * 1e6

    out: dict = {"threads": threads, "copy": {}, "us_per_call": {}}
    with threadpool_limits(1, user_api="blas"):
        for kib in sizes_kib:
            out["copy"][kib], out["us_per_call"][kib] = measure(*copy_of(kib))
        out["gemm"], out["gemm_us_per_call"] = measure(gemm, 40)
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.scaling",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sizes", default="16,1024,4096,16384",
                    help="KiB per call of the copy-like pass, comma-separated")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args(argv)
    try:
        sizes = tuple(float(v) for v in args.sizes.split(","))
    except ValueError:
        ap.error(f"--sizes must be comma-separated numbers, got {args.sizes!r}")
    if args.threads < 1 or args.rounds < 1 or any(v <= 0 for v in sizes):
        ap.error("--threads and --rounds must be >= 1 and every size > 0")
    res = scaling(args.threads, sizes, args.rounds)
    print(f"{args.threads} threads vs 1, each thread the same work "
          f"(throughput ratio, median of {args.rounds}):")
    for kib in sizes:
        print(f"  copy-like pass, {kib:g} KiB per call ({res['us_per_call'][kib]:.1f} µs): "
              f"{res['copy'][kib]:.2f}×")
    print(f"  512×512 float32 GEMM, one BLAS thread each ({res['gemm_us_per_call']:.0f} µs): "
          f"{res['gemm']:.2f}×")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1) + "\n")
    return res


if __name__ == "__main__":
    main()
