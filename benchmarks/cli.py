"""``python -m benchmarks``: scratchnn against torch, side by side, op by op.

    python -m benchmarks                       # every case (~10 min on 2 cores)
    python -m benchmarks --quick               # a subset, fewer repeats (< 2 min)
    python -m benchmarks --ops conv2d,lstm     # by op, family or case name
    python -m benchmarks --list                # the cases, their shapes and targets

For each case, forward and forward+backward are timed for scratchnn and torch in one process,
at the same thread count (``torch.set_num_threads(N)`` and NumPy's BLAS limited to ``N`` by
threadpoolctl), interleaved, after warm-up, median of repeats (see ``timing.py``). Then one
untraced-then-traced call per side measures peak extra memory (``memory.py``), and, for every
case that misses its target, cProfile says where scratchnn's time goes (``profiling.py``).
Outputs go to ``--out``: ``results.json``, ``report.md``, ``ratios.png`` (``report.py``).
The exit status is 0 when every selected case ran, 1 when one could not (missing op, error).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import traceback
from typing import Sequence

import numpy as np

from . import cases as cases_mod
from .report import (format_table, json_safe, table_rows, write_json, write_markdown,
                     write_plot)
from .timing import compare, paired_ratio, stats

__all__ = ["main", "parse_args"]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Time scratchnn against torch (forward, forward+backward), with memory, "
                    "GFLOP/s, targets and profiles of missed targets.")
    p.add_argument("--ops", type=lambda s: [o.strip() for o in s.split(",") if o.strip()],
                   help="comma-separated ops, families or case names (default: all; "
                        "--list shows them)")
    p.add_argument("--quick", action="store_true",
                   help="the quick subset with fewer repeats (under 2 minutes on 2 cores); "
                        "with --ops: the named cases, fewer repeats")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="cuda: also time torch on CUDA (an extra column; scratchnn stays on CPU)")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for torch and NumPy's BLAS (default: torch.get_num_threads())")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--out", default="bench-out", help="output folder (default: bench-out/)")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed repeats per side (default 15, --quick 5)")
    p.add_argument("--warmup", type=int, default=None, help="untimed calls first (default 2, "
                                                              "--quick 1)")
    p.add_argument("--min-time", type=float, default=None,
                   help="seconds one timed sample lasts at least (default 0.05, --quick 0.02)")
    p.add_argument("--settle", type=float, default=0.2,
                   help="seconds to sleep whenever the timed side changes, so that neither side "
                        "runs while the other's BLAS/OpenMP threads still spin (default 0.2)")
    p.add_argument("--profile", choices=("missed", "all", "none"), default="missed",
                   help="cProfile scratchnn's forward+backward for cases that miss their "
                        "target (default), every case, or none")
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    args = p.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        p.error("--threads must be >= 1")
    if args.repeats is not None and args.repeats < 1:
        p.error("--repeats must be >= 1")
    return args


def _list(selected: list[cases_mod.Case]) -> str:
    lines = []
    for c in selected:
        tgt = f"target ≤ {c.target:g}" if c.target is not None else "no target"
        q = " [quick]" if c.quick else ""
        lines.append(f"{c.name}{q}\n    --ops {c.op}; {c.shape}; {tgt}")
    return "\n".join(lines)


@contextlib.contextmanager
def _scratchnn_threads(n: int):
    """Limit scratchnn's own worker threads (``scratchnn.set_num_threads``: its chunked
    elementwise loops and the convolution's optional batch-chunk pool) to ``n`` for the run,
    so that at ``--threads 1`` it never uses two cores while torch uses one. Restored
    afterwards; yields ``n``."""
    import scratchnn
    before = scratchnn.get_num_threads()
    scratchnn.set_num_threads(n)
    try:
        yield n
    finally:
        scratchnn.set_num_threads(before)


def _run_case(case: cases_mod.Case, dtype: np.dtype, cuda: bool, cfg: dict,
              peak: float) -> dict:
    """Time, measure and summarise one case; never raises (errors are recorded)."""
    from .memory import scratchnn_peak, torch_cpu_peak, torch_cuda_peak
    rec = {"name": case.name, "op": case.op, "family": case.family, "shape": case.shape,
           "flop_formula": case.flop_formula or None, "flops_fwd": case.flops_fwd,
           "flops_fwdbwd": case.flops_fwdbwd, "target": case.target, "notes": case.notes,
           "status": "ok", "error": None, "profile": None}
    try:
        missing = cases_mod.missing_requirements(case)
        if missing:
            rec.update(status="unavailable", error="not in scratchnn yet: " + ", ".join(missing))
            return rec
        sides = case.build(dtype, cuda)
        times, ratio, gflops, frac = {}, {}, {}, {}
        for mode, idx in (("fwd", 0), ("fwdbwd", 1)):
            res = compare({s: pair[idx] for s, pair in sides.items()},
                          repeats=cfg["repeats"], warmup=cfg["warmup"],
                          min_time=cfg["min_time"], budget=cfg["budget"],
                          min_repeats=min(3, cfg["repeats"]), settle=cfg["settle"])
            times[mode] = {s: stats(smp, num) for s, (smp, num) in res.items()}
            med, q1, q3 = paired_ratio(res["scratchnn"][0], res["torch"][0])
            ratio[mode] = {"median": med, "q1": q1, "q3": q3}
            flops = case.flops_fwd if mode == "fwd" else case.flops_fwdbwd
            if flops:
                gflops[mode] = {s: flops / st.median / 1e9 for s, st in times[mode].items()}
                frac[mode] = {s: g / peak for s, g in gflops[mode].items()
                              if s != "torch_cuda"}
        memory = {}
        for side, meas in (("scratchnn", scratchnn_peak), ("torch", torch_cpu_peak),
                           ("torch_cuda", torch_cuda_peak)):
            if side in sides:
                b, method = meas(sides[side][1])
                memory[side] = {"peak_extra_bytes": b, "method": method}
        rec.update(times=times, ratio=ratio, gflops=gflops, peak_fraction=frac, memory=memory)
        if "naive" in times["fwdbwd"]:
            rec["naive_slowdown"] = (times["fwdbwd"]["naive"].median
                                     / times["fwdbwd"]["scratchnn"].median)
        if case.target is not None:
            rec["target_met"] = (ratio["fwdbwd"]["median"] <= case.target
                                 if cfg["dtype"] == "float32" else None)
        want = cfg["profile"]
        if want == "all" or (want == "missed" and rec.get("target_met") is False):
            from .profiling import profile_calls
            with _scratchnn_threads(1):          # profilers see the calling thread only
                rec["profile"] = profile_calls(sides["scratchnn"][1],
                                               per_call=times["fwdbwd"]["scratchnn"].median,
                                               min_time=cfg["profile_time"])
    except Exception as e:                               # record, report, carry on
        rec.update(status="error", error=f"{type(e).__name__}: {e}",
                   traceback=traceback.format_exc())
    return rec


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks; returns the exit status (0: every selected case ran)."""
    args = parse_args(argv)
    try:
        selected = cases_mod.select(args.ops, args.quick)
    except ValueError as e:
        print(f"python -m benchmarks: error: {e}", file=sys.stderr)
        return 2
    if args.list:
        print(_list(selected))
        return 0
    import torch
    from threadpoolctl import threadpool_limits
    from tqdm import tqdm
    from .machine import machine_info, measure_peak

    cuda = args.device == "cuda"
    if cuda:
        if not torch.cuda.is_available():
            print("python -m benchmarks: error: --device cuda but torch.cuda.is_available() is "
                  "False (no GPU, or a CPU-only torch build)", file=sys.stderr)
            return 2
        torch.backends.cuda.matmul.allow_tf32 = False         # IEEE float32, as on the CPU
        torch.backends.cudnn.allow_tf32 = False
    threads = args.threads or torch.get_num_threads()
    dtype = np.dtype(args.dtype)
    quick = args.quick
    cfg = {"command": " ".join(["python -m benchmarks",
                                *(sys.argv[1:] if argv is None else argv)]),
           "ops": args.ops, "quick": quick, "device": args.device, "threads": threads,
           "dtype": args.dtype, "repeats": args.repeats or (5 if quick else 15),
           "warmup": args.warmup if args.warmup is not None else (1 if quick else 2),
           "min_time": args.min_time if args.min_time is not None else
           (0.02 if quick else 0.05),
           "budget": 3.0 if quick else 15.0, "profile": args.profile, "settle": args.settle,
           "profile_time": 0.25 if quick else 0.5}
    os.makedirs(args.out, exist_ok=True)

    torch.set_num_threads(threads)
    with threadpool_limits(limits=threads), _scratchnn_threads(threads) as own:
        cfg["scratchnn_pool_threads"] = own
        machine = machine_info(threads)
        bar = tqdm(total=len(selected) + 1, desc="matmul peak", unit="case",
                   file=sys.stderr, dynamic_ncols=True)
        n_peak = 1024 if quick else 2048
        peak = measure_peak(dtype, n_peak, repeats=3 if quick else 5)
        bar.update()
        records = []
        for case in selected:
            bar.set_description(case.name[:40])
            t0 = time.perf_counter()
            records.append(_run_case(case, dtype, cuda, cfg, peak["peak_gflops"]))
            records[-1]["wall_s"] = time.perf_counter() - t0    # the case's share of the run
            bar.update()
        bar.close()

    results = json_safe({"schema": 1, "machine": machine, "config": cfg, "peak": peak,
                         "cases": records})
    write_json(results, os.path.join(args.out, "results.json"))
    write_markdown(results, os.path.join(args.out, "report.md"))
    write_plot(results, os.path.join(args.out, "ratios.png"))

    headers, rows = table_rows(results)
    print(format_table(headers, rows))
    met = [c for c in results["cases"] if c.get("target_met") is not None]
    verdict = (f"{sum(c['target_met'] for c in met)}/{len(met)} targets met"
               if args.dtype == "float32" else "targets apply to float32 runs only")
    print(f"\n{verdict}; {threads} threads, {args.dtype}; outputs in {args.out}/ "
          f"(results.json, report.md, ratios.png)")
    bad = [c for c in results["cases"] if c["status"] != "ok"]
    for c in bad:
        print(f"{c['name']}: {c['status']}: {c['error']}", file=sys.stderr)
    return 1 if bad else 0
