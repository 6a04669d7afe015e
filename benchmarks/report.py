"""The run's outputs: the terminal table, ``results.json``, ``report.md`` and ``ratios.png``.

How to read a row: times are the median seconds per call (shown in ms); ``×`` is the median of
the per-repeat ratios scratchnn / torch (below 1: scratchnn is faster), with its interquartile
range in brackets; ``target`` is the most that ratio may be (float32, forward+backward);
GFLOP/s and "% peak" use the case's FLOP formula and the GEMM peak measured at the start of the
run; memory is the peak extra memory of one forward+backward call (see ``memory.py``).
"""
from __future__ import annotations

import json
import os
from typing import Any

__all__ = ["table_rows", "format_table", "write_json", "write_markdown", "write_plot",
           "HEADERS"]

SIDES_EXTRA = ("torch_cuda", "naive")


def _ms(s: float | None) -> str:
    if s is None:
        return "—"
    ms = s * 1e3
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def _mib(b: int | None) -> str:
    return "—" if b is None else f"{b / 2 ** 20:.1f}"


def _ratio(r: dict | None, spread: bool = True) -> str:
    if not r:
        return "—"
    f = (lambda v: f"{v:.2f}" if v >= 0.095 else f"{v:.2g}")
    txt = f(r["median"])
    return txt + f" [{f(r['q1'])}–{f(r['q3'])}]" if spread else txt


def _pair(a: float | None, b: float | None, fmt: str) -> str:
    if a is None and b is None:
        return "—"
    f = (lambda v: "—" if v is None else format(v, fmt))
    return f"{f(a)} / {f(b)}"


def _median(case: dict, mode: str, side: str) -> float | None:
    return ((case.get("times") or {}).get(mode) or {}).get(side, {}).get("median_s")


def _target_cell(case: dict) -> tuple[str, str]:
    t = case.get("target")
    if t is None:
        return "—", ""
    met = case.get("target_met")
    return f"≤ {t:g}", {True: "yes", False: "MISSED", None: "n/a"}[met]


HEADERS = ["case", "fwd sn ms", "fwd torch ms", "fwd ×", "f+b sn ms", "f+b torch ms",
           "f+b × [IQR]", "target", "met", "GFLOP/s sn / torch", "% peak sn / torch",
           "mem MiB sn / torch"]


def table_rows(results: dict) -> tuple[list[str], list[list[str]]]:
    """Headers and one row of cells per case (extra columns when a run has CUDA or naive)."""
    cases = results["cases"]
    has = {s: any(_median(c, "fwdbwd", s) is not None for c in cases) for s in SIDES_EXTRA}
    headers = list(HEADERS)
    if has["torch_cuda"]:
        headers += ["f+b cuda ms"]
    if has["naive"]:
        headers += ["f+b naive ms (× slower)"]
    rows = []
    for c in cases:
        if c["status"] != "ok":
            rows.append([c["name"], f"{c['status'].upper()}: {c.get('error', '')}"])
            continue                                  # a short row: name and message
        g = c.get("gflops", {}).get("fwdbwd", {})
        pk = c.get("peak_fraction", {}).get("fwdbwd", {})
        mem = c.get("memory", {})
        pct = {k: (None if v is None else 100 * v) for k, v in pk.items()}
        tcell, met = _target_cell(c)
        row = [c["name"],
               _ms(_median(c, "fwd", "scratchnn")), _ms(_median(c, "fwd", "torch")),
               _ratio(c["ratio"].get("fwd"), spread=False),
               _ms(_median(c, "fwdbwd", "scratchnn")), _ms(_median(c, "fwdbwd", "torch")),
               _ratio(c["ratio"].get("fwdbwd")), tcell, met,
               _pair(g.get("scratchnn"), g.get("torch"), ".1f") if g else "—",
               _pair(pct.get("scratchnn"), pct.get("torch"), ".0f") if pk else "—",
               _pair(*(None if mem.get(s, {}).get("peak_extra_bytes") is None
                       else mem[s]["peak_extra_bytes"] / 2 ** 20
                       for s in ("scratchnn", "torch")), ".1f")]
        if has["torch_cuda"]:
            row.append(_ms(_median(c, "fwdbwd", "torch_cuda")))
        if has["naive"]:
            nv = _median(c, "fwdbwd", "naive")
            row.append("—" if nv is None else
                       f"{_ms(nv)} ({c['naive_slowdown']:.0f}×)")
        rows.append(row)
    return headers, rows


def format_table(headers: list[str], rows: list[list[str]], markdown: bool = False) -> str:
    """A plain-text (or Markdown) table; short rows (a case that did not run) are
    ``[name, message]`` and span the line."""
    full = [r for r in rows if len(r) == len(headers)]
    if markdown:
        esc = (lambda s: s.replace("|", "\\|"))
        lines = ["| " + " | ".join(headers) + " |",
                 "|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|"]
        lines += ["| " + " | ".join(esc(x) for x in r + [""] * (len(headers) - len(r))) + " |"
                  for r in rows]
        return "\n".join(lines)
    widths = [max([len(h)] + [len(r[i]) for r in full]) for i, h in enumerate(headers)]
    widths[0] = max([widths[0]] + [len(r[0]) for r in rows])
    fmt = (lambda cells: "  ".join(x.ljust(w) if i == 0 else x.rjust(w)
                                   for i, (x, w) in enumerate(zip(cells, widths))).rstrip())
    out = [fmt(headers), fmt(["-" * w for w in widths])]
    out += [fmt(r) if len(r) == len(headers) else f"{r[0].ljust(widths[0])}  {r[1]}"
            for r in rows]
    return "\n".join(out)


def write_json(results: dict, path: str) -> None:
    with open(path, "w") as f:
        json.dump(results, f, indent=2, default=str)
        f.write("\n")


def _machine_lines(m: dict, peak: dict) -> list[str]:
    blas = "; ".join(f"{b.get('internal_api')} {b.get('version')} "
                     f"(kernel {b.get('architecture', '?')}, {b.get('num_threads')} threads, "
                     f"{os.path.basename(str(b.get('filepath', '')))})"
                     for b in m["blas"] if b.get("user_api") == "blas") or "none found"
    env = ", ".join(f"{k}={v}" for k, v in m["blas_env"].items()) or "none"
    lines = [f"- date: {m['date']}",
             f"- CPU: {m['cpu_model']}, {m['logical_cores']} logical cores "
             f"({m['affinity_cores']} usable); threads: {m['threads']} (torch and NumPy's BLAS)",
             f"- Python {m['python']}, NumPy {m['numpy']}, torch {m['torch']}",
             f"- NumPy BLAS: {blas}",
             f"- BLAS environment: {env}; NumPy huge-page advice: "
             f"{ {True: 'on', False: 'off', None: '?'}[m.get('numpy_madvise_hugepage')]}"]
    if m.get("cuda"):
        lines.append(f"- CUDA: {m['cuda']['device']} (CUDA {m['cuda']['cuda']})")
    if peak:
        lines.append(f"- matmul peak ({peak['n']}×{peak['n']} {peak['dtype']} GEMM): NumPy "
                     f"{peak['numpy_gflops']:.1f} GFLOP/s, torch {peak['torch_gflops']:.1f} "
                     f"GFLOP/s; % peak below is against {peak['peak_gflops']:.1f}")
    return lines


def _profile_md(case: dict) -> list[str]:
    p = case["profile"]
    out = [f"### Where the time goes: {case['name']}", "",
           f"cProfile of scratchnn forward+backward, {p['calls']} call(s), "
           f"{p['total_s'] * 1e3:.1f} ms per call profiled (timed median "
           f"{_ms(_median(case, 'fwdbwd', 'scratchnn'))} ms; profiling adds overhead, and "
           f"scratchnn's worker pool is off so that the profilers see its work); "
           f"top entries by own time, per call:", "",
           "| own ms | share | cum ms | calls | function |", "|---:|---:|---:|---:|---|"]
    for e in p["entries"]:
        out.append(f"| {e['tottime_s'] * 1e3:.2f} | {100 * e['share']:.0f}% | "
                   f"{e['cumtime_s'] * 1e3:.2f} | {e['ncalls']:g} | "
                   f"`{e['function'].replace('|', '/')}` |")
    if p.get("lines"):
        out += ["", "The same call, line by line (own wall time of scratchnn's source lines, "
                "per call; a line's NumPy/BLAS work is charged to it):", "",
                "| ms | share | line | code |", "|---:|---:|---|---|"]
        for e in p["lines"]:
            code = e["code"].replace("|", "\\|").replace("`", "'")
            out.append(f"| {e['time_s'] * 1e3:.2f} | {100 * e['share']:.0f}% | "
                       f"{e['where']} | `{code}` |")
    return out + [""]


def write_markdown(results: dict, path: str) -> None:
    from .cases import TARGET_NOTE
    cfg, m = results["config"], results["machine"]
    headers, rows = table_rows(results)
    lines = ["# scratchnn vs torch: speed and memory", "",
             f"`{cfg['command']}`", "",
             *_machine_lines(m, results.get("peak") or {}), "",
             f"dtype {cfg['dtype']}, device {cfg['device']}, repeats {cfg['repeats']} "
             f"(median; fewer for slow cases, at least 3), warm-up {cfg['warmup']}, "
             f"interleaved scratchnn/torch.", "",
             format_table(headers, rows, markdown=True), "",
             "## How to read it", "",
             "- times: median milliseconds per call; fwd = forward only (autograd recording on "
             "in torch), f+b = forward + backward (all gradients).",
             "- ×: median over repeats of the paired ratio scratchnn / torch (below 1 means "
             "scratchnn is faster); the bracket is its interquartile range.",
             f"- target / met: {TARGET_NOTE} 'n/a' when the run is not float32.",
             "- GFLOP/s and % peak: forward+backward, from each case's FLOP formula (below) and "
             "the GEMM peak measured at the start of the run.",
             "- mem: peak extra MiB during one forward+backward: scratchnn by tracemalloc, "
             "torch by its CPU allocator's profiler events (method per case in results.json).",
             ""]
    if any(r[-1].endswith("slower)") for r in rows):
        lines += ["- naive: the readable loop version of the op on a small shape, and how many "
                  "times slower than scratchnn's vectorised op it is.", ""]
    lines += ["## Cases", "", "| case | shape | FLOPs (fwd+bwd) | notes |", "|---|---|---|---|"]
    for c in results["cases"]:
        fl = c.get("flops_fwdbwd")
        flops = f"{fl / 1e9:.3g} G: {c['flop_formula']}" if fl else "—"
        lines.append(f"| {c['name']} | {c['shape']} | {flops} | {c.get('notes') or ''} |")
    lines.append("")
    missed = [c for c in results["cases"] if c.get("target_met") is False]
    if missed:
        lines += ["## Missed targets", "",
                  ", ".join(f"{c['name']} ({c['ratio']['fwdbwd']['median']:.2f}× vs "
                            f"≤ {c['target']:g})" for c in missed), ""]
    profiled = [c for c in results["cases"] if c.get("profile")]
    for c in profiled:
        lines += _profile_md(c)
    bad = [c for c in results["cases"] if c["status"] != "ok"]
    if bad:
        lines += ["## Not run", ""] + [f"- {c['name']}: {c['status']}: {c.get('error')}"
                                       for c in bad] + [""]
    with open(path, "w") as f:
        f.write("\n".join(lines))


def write_plot(results: dict, path: str) -> None:
    """Horizontal bars of forward+backward (and forward) ratios, each case's target marked."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = [c for c in results["cases"] if c["status"] == "ok"]
    fig, ax = plt.subplots(figsize=(9, 0.42 * max(len(cases), 1) + 1.6))
    ys = list(range(len(cases)))[::-1]
    for y, c in zip(ys, cases):
        fb = c["ratio"]["fwdbwd"]
        fw = c["ratio"].get("fwd")
        color = {True: "tab:green", False: "tab:red", None: "tab:gray"}[c.get("target_met")]
        ax.barh(y + 0.18, fb["median"], height=0.36, color=color,
                xerr=[[fb["median"] - fb["q1"]], [fb["q3"] - fb["median"]]],
                error_kw={"elinewidth": 0.8, "capsize": 2})
        if fw:
            ax.barh(y - 0.18, fw["median"], height=0.36, color=color, alpha=0.35)
        if c.get("target") is not None:
            ax.plot([c["target"]] * 2, [y - 0.45, y + 0.45], color="black", lw=2)
    ax.axvline(1.0, color="tab:blue", ls="--", lw=1)
    ax.set_yticks(ys)
    ax.set_yticklabels([c["name"] for c in cases], fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("time ratio scratchnn / torch (log scale; < 1: scratchnn faster)")
    cfg, m = results["config"], results["machine"]
    ax.set_title(f"scratchnn / torch, {cfg['dtype']}, {m['threads']} threads — solid: fwd+bwd "
                 f"(IQR), pale: fwd; black tick: target", fontsize=9)
    ax.grid(axis="x", which="both", alpha=0.3)
    from matplotlib.patches import Patch
    ax.legend(handles=[Patch(color="tab:green", label="target met"),
                       Patch(color="tab:red", label="target missed"),
                       Patch(color="tab:gray", label="no target / n/a")],
              loc="lower right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def json_safe(obj: Any) -> Any:
    """Stats objects and numpy scalars as plain JSON values."""
    if hasattr(obj, "to_json"):
        return obj.to_json()
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "item"):
        return obj.item()
    return obj
