"""``python -m benchmarks``: scratchnn against torch, side by side, op by op.

    python -m benchmarks                       # every case (~10 min on 2 cores)
    python -m benchmarks --quick               # a subset, fewer repeats (< 2 min)
    python -m benchmarks --ops conv2d,lstm     # by op, family or case name
    python -m benchmarks --list                # the cases, their shapes, floors and targets
    python -m benchmarks --peers               # also MyGrad / autograd where they have the op
    python -m benchmarks --baseline old/results.json   # faster / slower / same per case

For each case, forward and forward+backward are timed for scratchnn and torch in one process,
at the same thread count (``torch.set_num_threads(N)`` and NumPy's BLAS limited to ``N`` by
threadpoolctl), interleaved, after warm-up, median of repeats (see ``timing.py``); its NumPy
floor is priced at the rates measured at the start of the run (``floors.py``). Then one
untraced-then-traced call per side measures peak extra memory (``memory.py``), and, for every
case that misses a target, cProfile says where scratchnn's time goes (``profiling.py``).
Outputs go to ``--out``: ``results.json``, ``report.md``, ``ratios.png`` (``report.py``); the
terminal gets the short table (≤ 100 columns) and the warnings (a busy machine, a noisy case,
a BLAS kernel narrower than the CPU's). A case around which the canary (``machine.Canary``)
says the host ran in its slow mode is measured again at the end, up to ``--rerun-slow`` times
(default 1; 0 with ``--quick``), and the attempt with the faster canary is kept
(``machine.keep_faster_canary``; results.json records every attempt's canary).

Exit status: 0 when every selected case ran; 1 when one could not (missing op, error); 2 for
bad arguments; 3 when ``--baseline`` finds a regression: scratchnn's forward+backward median
slower than the baseline's by more than 10 % (``--regression``) plus the noise (the larger
relative interquartile range of the two runs) — asv's default factor, with its spread.
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
from .report import (REGRESSION, baseline_verdicts, format_baseline, format_table, json_safe,
                     table_rows, target_verdict, targets_summary, write_json,
                     write_markdown, write_plot)
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
                   help="seconds of untimed calls of the next side whenever the timed side "
                        "changes, while the other side's BLAS/OpenMP threads stop spinning "
                        "(default 0.2)")
    p.add_argument("--idle", type=float, default=0.0,
                   help="seconds to sleep at each switch before the settling calls (default 0; "
                        "the harness's method before 2026-12-03 evening: --idle 0.2 "
                        "--settle 0.03)")
    p.add_argument("--profile", choices=("missed", "all", "none"), default="missed",
                   help="cProfile scratchnn's forward+backward for cases that miss their "
                        "target (default), every case, or none")
    p.add_argument("--peers", action="store_true",
                   help="also time the NumPy peer libraries that are installed (MyGrad, "
                        "autograd) on the cases where they have the op, after checking their "
                        "forward against torch")
    p.add_argument("--baseline", metavar="RESULTS_JSON",
                   help="compare with an earlier run's results.json: faster/slower/same per "
                        "case; exit status 3 on a regression")
    p.add_argument("--regression", type=float, default=REGRESSION,
                   help="--baseline: the slowdown beyond the noise that counts as a "
                        "regression (default 0.10: 10 %%)")
    p.add_argument("--rerun-slow", type=int, default=None, metavar="N",
                   help="measure a case again, up to N times, while the canary says the host "
                        "ran slow around it, keeping the attempt with the faster canary "
                        "(default 1, --quick 0)")
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    args = p.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        p.error("--threads must be >= 1")
    if args.repeats is not None and args.repeats < 1:
        p.error("--repeats must be >= 1")
    if args.rerun_slow is not None and args.rerun_slow < 0:
        p.error("--rerun-slow must be >= 0")
    return args


def _list(selected: list[cases_mod.Case]) -> str:
    lines = []
    for c in selected:
        tgt = ", ".join(f"{k} ≤ {v:g}" for k, v in c.targets()) or "no target"
        q = " [quick]" if c.quick else ""
        lines.append(f"{c.name}{q}\n    --ops {c.op}; {c.shape}; targets: {tgt}"
                     + (f"\n    floor: {c.floor.text}" if c.floor else ""))
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


def _first_array(out) -> np.ndarray:
    """A side's forward result as a NumPy array (its first output for tuples)."""
    while isinstance(out, (tuple, list)):
        out = out[0]
    if hasattr(out, "detach"):
        out = out.detach().cpu().numpy()
    return np.asarray(out)


def _run_peers(case: cases_mod.Case, sides: dict, dtype: np.dtype, cfg: dict) -> dict:
    """``{peer: record}`` for the installed peers that have the case's op (see peers.py)."""
    from . import peers as peers_mod
    out = {}
    ref = None
    for name in cfg["peers_available"]:
        try:
            if ref is None:
                ref = _first_array(sides["torch"][0]())
            built = peers_mod.build(name, case, dtype, ref.shape)
            if built is None:
                continue
            fwd, fwdbwd, value = built
            try:
                got = value()
            except ValueError as e:      # the peer refuses this shape (Unsupported, or its own)
                out[name] = {"status": "unsupported", "detail": f"{type(e).__name__}: {e}"}
                continue
            ok, detail = peers_mod.forward_check(got, ref, dtype)
            if not ok:
                out[name] = {"status": "mismatch", "detail": detail}
                continue
            res = compare({"scratchnn": sides["scratchnn"][1], name: fwdbwd},
                          repeats=min(cfg["repeats"], 5), warmup=1, min_time=cfg["min_time"],
                          budget=cfg["budget"] / 3, min_repeats=1, settle=cfg["settle"],
                          idle=cfg["idle"], max_extra_warmup=0)
            med, q1, q3 = paired_ratio(res[name][0], res["scratchnn"][0])
            out[name] = {"status": "ok", "detail": detail, "time": stats(*res[name]),
                         "ratio_to_scratchnn": {"median": med, "q1": q1, "q3": q3}}
        except Exception as e:                          # a peer's failure is reported only
            out[name] = {"status": "error", "detail": f"{type(e).__name__}: {e}"}
    return out


def _floor_span(st, floor: dict | None) -> tuple[float, float] | None:
    """scratchnn's time / floor at its first and third quartile (the floor's own spread,
    measured beside it, is not added)."""
    if st is None or not floor or not floor.get("total_s"):
        return None
    return st.q1 / floor["total_s"], st.q3 / floor["total_s"]


def _run_case(case: cases_mod.Case, dtype: np.dtype, cuda: bool, cfg: dict,
              rates) -> dict:
    """Time, measure and summarise one case; never raises (errors are recorded)."""
    from .memory import scratchnn_peak, torch_cpu_peak, torch_cuda_peak
    rec = {"name": case.name, "op": case.op, "family": case.family, "shape": case.shape,
           "flop_formula": case.flop_formula or None, "flops_fwd": case.flops_fwd,
           "flops_fwdbwd": case.flops_fwdbwd, "torch_target": case.torch_target,
           "floor_target": case.floor_target, "notes": case.notes,
           "floor_text": case.floor.text if case.floor else None,
           "status": "ok", "error": None, "profile": None}
    try:
        missing = cases_mod.missing_requirements(case)
        if missing:
            rec.update(status="unavailable", error="not in scratchnn yet: " + ", ".join(missing))
            return rec
        sides = case.build(dtype, cuda)
        times, ratio = {}, {}
        probes, measured = {}, {}
        if case.floor is not None:                 # the floor's work, timed beside the sides
            probes = {mode: rates.program(getattr(case.floor, mode))
                      for mode in ("fwd", "fwdbwd")}
        for mode, idx in (("fwd", 0), ("fwdbwd", 1)):
            fns = {s: pair[idx] for s, pair in sides.items()}
            floor_sides = {f"floor {i}": p for i, p in enumerate(probes.get(mode, []))}
            res = compare({**fns, **floor_sides},
                          repeats=cfg["repeats"], warmup=cfg["warmup"],
                          min_time=cfg["min_time"], budget=cfg["budget"],
                          min_repeats=min(3, cfg["repeats"]), settle=cfg["settle"],
                          idle=cfg["idle"])
            times[mode] = {s: stats(smp, num) for s, (smp, num) in res.items()
                           if s not in floor_sides}
            if floor_sides:
                measured[mode] = sum(p.seconds() for p in floor_sides.values())
            med, q1, q3 = paired_ratio(res["scratchnn"][0], res["torch"][0])
            ratio[mode] = {"median": med, "q1": q1, "q3": q3}
        floor, floor_ratio = {}, {}
        if case.floor is not None:
            for mode in ("fwd", "fwdbwd"):
                floor[mode] = rates.time(getattr(case.floor, mode),
                                         measured_s=measured.get(mode))
                floor_ratio[mode] = {s: st.median / floor[mode]["total_s"]
                                     for s, st in times[mode].items() if s != "naive"}
            floor["text"] = case.floor.text
        memory = {}
        for side, meas in (("scratchnn", scratchnn_peak), ("torch", torch_cpu_peak),
                           ("torch_cuda", torch_cuda_peak)):
            if side in sides:
                b, method = meas(sides[side][1])
                memory[side] = {"peak_extra_bytes": b, "method": method}
        q = ratio["fwdbwd"]
        rec.update(times=times, ratio=ratio, floor=floor or None,
                   floor_ratio=floor_ratio or None, memory=memory,
                   spread=(q["q3"] - q["q1"]) / q["median"] if q["median"] else None)
        if "naive" in times["fwdbwd"]:
            rec["naive_slowdown"] = (times["fwdbwd"]["naive"].median
                                     / times["fwdbwd"]["scratchnn"].median)
        f32 = cfg["dtype"] == "float32"
        value = {"floor": (floor_ratio.get("fwdbwd") or {}).get("scratchnn"),
                 "torch": q["median"]}
        span = {"floor": _floor_span(times["fwdbwd"].get("scratchnn"), floor.get("fwdbwd")),
                "torch": (q["q1"], q["q3"])}
        rec["targets"] = [target_verdict(k, lim, value[k], span[k], f32)
                          for k, lim in case.targets()]
        if rec["targets"]:
            mets = [t["met"] for t in rec["targets"]]
            rec["target_met"] = None if None in mets else all(mets)
        if cfg.get("peers_available"):
            rec["peers"] = _run_peers(case, sides, dtype, cfg)
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


NOISY = 0.10         # a case whose paired-ratio IQR exceeds 10 % of its median is flagged


def _run_warnings(results: dict, load_before: tuple, load_after: tuple) -> list[str]:
    """Busy machine (load averages, CPU time stolen by the hypervisor), the host's slow mode
    (the canary), noisy cases (spread), a BLAS kernel narrower than the CPU's,
    OPENBLAS_CORETYPE set."""
    from .machine import (blas_warnings, canary_warnings, cpu_flags, load_warnings,
                          steal_warnings)
    m = results["machine"]
    out = load_warnings(load_before, load_after, m["logical_cores"] or 1, m["threads"])
    out += steal_warnings(m.get("steal"), {c["name"]: c.get("steal")
                                           for c in results["cases"]})
    out += canary_warnings({c["name"]: c.get("canary_s") for c in results["cases"]},
                           results["config"].get("rerun_slow", 0))
    noisy = [c["name"] for c in results["cases"]
             if c["status"] == "ok" and (c.get("spread") or 0) > NOISY]
    busy = [c["name"] for c in results["cases"]
            if (c.get("loadavg_1min") or 0) > m["threads"] + 0.5]
    if busy:
        out.append(f"{len(busy)} case(s) ran while other processes were busy (1-minute load "
                   f"above the run's {m['threads']} thread(s) + 0.5): {', '.join(busy)}")
    if noisy:
        out.append(f"{len(noisy)} case(s) spread by more than {100 * NOISY:.0f} % between "
                   f"repeats (IQR of the paired ratio): {', '.join(noisy)}; repeat them on a "
                   f"quiet machine before believing a small change")
    out += blas_warnings(m["blas"], cpu_flags(), m["blas_env"])
    return out


def _load_baseline(path: str) -> dict:
    import json
    with open(path) as f:
        old = json.load(f)
    if not isinstance(old, dict) or "cases" not in old:
        raise ValueError(f"{path} is not a results.json of python -m benchmarks")
    return old


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks; returns the exit status (see the module docstring)."""
    args = parse_args(argv)
    try:
        selected = cases_mod.select(args.ops, args.quick)
        old = _load_baseline(args.baseline) if args.baseline else None
    except (ValueError, OSError) as e:
        print(f"python -m benchmarks: error: {e}", file=sys.stderr)
        return 2
    if args.list:
        print(_list(selected))
        return 0
    import torch
    from threadpoolctl import threadpool_limits
    from tqdm import tqdm
    from .floors import Rates
    from .machine import (Canary, canary_slow, cpu_times, keep_faster_canary, machine_info,
                          measure_peak, steal_fraction)

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
    peers_info = None
    if args.peers:
        from . import peers as peers_mod
        peers_info = {"available": peers_mod.available(), "left_out": peers_mod.LEFT_OUT}
    cfg = {"command": " ".join(["python -m benchmarks",
                                *(sys.argv[1:] if argv is None else argv)]),
           "ops": args.ops, "quick": quick, "device": args.device, "threads": threads,
           "dtype": args.dtype, "repeats": args.repeats or (5 if quick else 15),
           "warmup": args.warmup if args.warmup is not None else (1 if quick else 2),
           "min_time": args.min_time if args.min_time is not None else
           (0.02 if quick else 0.05),
           "budget": 3.0 if quick else 15.0, "profile": args.profile, "settle": args.settle,
           "idle": args.idle,
           "profile_time": 0.25 if quick else 0.5,
           "rerun_slow": (args.rerun_slow if args.rerun_slow is not None
                          else 0 if quick else 1),
           "peers_available": list((peers_info or {}).get("available", {}))}
    os.makedirs(args.out, exist_ok=True)

    load_before, cpu_before = os.getloadavg(), cpu_times()
    torch.set_num_threads(threads)
    with threadpool_limits(limits=threads), _scratchnn_threads(threads) as own:
        cfg["scratchnn_pool_threads"] = own
        machine = machine_info(threads)
        bar = tqdm(total=len(selected) + 1, desc="matmul peak, floor rates", unit="case",
                   file=sys.stderr, dynamic_ncols=True)
        n_peak = 1024 if quick else 2048
        peak = measure_peak(dtype, n_peak, repeats=3 if quick else 5)
        rates = Rates(dtype, threads, quick=quick)
        canary = Canary()
        bar.update()

        def measure(case: cases_mod.Case) -> dict:
            bar.set_description(case.name[:40])
            before = canary.time()
            t0, c0 = time.perf_counter(), cpu_times()
            record = _run_case(case, dtype, cuda, cfg, rates)
            record["wall_s"] = time.perf_counter() - t0          # the case's share of the run
            record["loadavg_1min"] = os.getloadavg()[0]          # its own threads included
            record["steal"] = steal_fraction(c0, cpu_times())
            record["canary_s"] = [before, canary.time()]         # the host's slow mode
            bar.update()
            return record

        records = [measure(case) for case in selected]
        for _ in range(cfg["rerun_slow"]):                       # the host's slow mode passes
            slow = canary_slow({r["name"]: r["canary_s"] for r in records
                                if r["status"] == "ok"})
            if not slow:
                break
            bar.total += len(slow)
            for i, case in enumerate(selected):
                if case.name in slow:
                    records[i] = keep_faster_canary(records[i], measure(case))
        bar.close()
    load_after = os.getloadavg()
    machine["loadavg_before"], machine["loadavg_after"] = load_before, load_after
    machine["steal"] = steal_fraction(cpu_before, cpu_times())

    results = json_safe({"schema": 2, "machine": machine, "config": cfg, "peak": peak,
                         "floor_rates": {"detail": rates.detail, "gemms": rates.gemm_table()},
                         "peers_info": peers_info, "cases": records})
    results["warnings"] = _run_warnings(results, load_before, load_after)
    status = 0
    verdicts = None
    if old is not None:
        verdicts = baseline_verdicts(results, old, args.regression)
        if (old.get("config", {}).get("threads"), old.get("config", {}).get("dtype")) != (
                threads, args.dtype):
            results["warnings"].append("the baseline ran at other threads or dtype: "
                                       f"{old.get('config', {}).get('threads')} threads, "
                                       f"{old.get('config', {}).get('dtype')}")
        results["baseline"] = {"path": args.baseline, "threshold": args.regression,
                               "verdicts": verdicts,
                               "text": format_baseline(verdicts, args.regression)}
    write_json(results, os.path.join(args.out, "results.json"))
    write_markdown(results, os.path.join(args.out, "report.md"))
    write_plot(results, os.path.join(args.out, "ratios.png"))

    headers, rows = table_rows(results, short=True)
    print(format_table(headers, rows, max_width=100))
    verdict = (targets_summary(results["cases"]) if args.dtype == "float32"
               else "targets apply to float32 runs only")
    print(f"\n{verdict}; {threads} threads, {args.dtype}; full table in {args.out}/report.md "
          f"(also results.json, ratios.png)")
    for w in results["warnings"]:
        print(f"WARNING: {w}")
    if verdicts is not None:
        print("\nAgainst the baseline " + args.baseline + ":\n" + results["baseline"]["text"])
    bad = [c for c in results["cases"] if c["status"] != "ok"]
    for c in bad:
        print(f"{c['name']}: {c['status']}: {c['error']}", file=sys.stderr)
    if bad:
        status = 1
    if verdicts is not None and any(v["verdict"] == "slower" for v in verdicts):
        status = 3
    return status
