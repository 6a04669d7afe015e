"""The run's outputs: the terminal table, ``results.json``, ``report.md`` and ``ratios.png``;
and ``--baseline``'s comparison with an earlier run.

How to read a row: times are the median seconds per call (shown in ms); ``× torch`` is the
median of the per-repeat ratios scratchnn / torch (below 1: scratchnn is faster), with its
interquartile range in brackets; ``floor`` is the case's NumPy floor measured in the same run
(``floors.py``) and ``× floor`` each side's time over it; ``targets`` bound scratchnn's
forward+backward ratios (float32); GFLOP/s from the case's FLOP formula, GB/s from its
floor's bytes where it counts no FLOPs; memory is the peak extra memory of one
forward+backward call (see ``memory.py``). The terminal table is the short form (≤ 100
columns); report.md has every column.
"""
from __future__ import annotations

import json
import os
from typing import Any

__all__ = ["table_rows", "format_table", "write_json", "write_markdown", "write_plot",
           "HEADERS", "SHORT_HEADERS", "baseline_verdicts", "format_baseline", "REGRESSION",
           "target_verdict", "verdict_near", "targets_summary", "NEAR_MARGIN", "NEAR_NOTE"]

REGRESSION = 0.10      # --baseline: slower by more than 10 % beyond the noise is a regression

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


NEAR_MARGIN = 0.10     # a ratio within 10 % of its target's limit is a verdict within the noise


def target_verdict(kind: str, limit: float, value: float | None,
                   span: tuple[float, float] | None, applies: bool = True) -> dict:
    """One target's record: met when ``value`` (the median ratio) is at most ``limit``
    (None where the target does not apply: not float32, or no value); ``near`` when the value
    is within ``NEAR_MARGIN`` of the limit or the limit lies inside ``span`` (the ratio's
    interquartile range in this run): another run of the same code may well give the other
    verdict, since runs and hosts differ by more than one run's spread (:func:`verdict_near`
    marks such verdicts with *)."""
    met = (value <= limit) if applies and value is not None else None
    near = bool(met is not None and (abs(value / limit - 1) <= NEAR_MARGIN or (
        span is not None and span[0] <= limit <= span[1])))
    return {"kind": kind, "limit": limit, "value": value,
            "range": list(span) if span is not None else None, "met": met, "near": near}


NEAR_NOTE = (f"*: the verdict is within the noise: a target's ratio is within "
             f"{NEAR_MARGIN:.0%} of its limit, or the limit lies inside the ratio's "
             "interquartile range (the paired ratio to torch; scratchnn's time quartiles over "
             "the floor), so another run of the same code may give the other verdict.")


def verdict_near(case: dict) -> bool:
    """Whether a case's met/missed verdict could flip within the noise: met, with any target
    near its limit; or missed, with every missed target near its limit (one clearly missed
    target keeps it missed). ``near`` comes from :func:`target_verdict`."""
    ts = case.get("targets") or []
    if not ts or any(t["met"] is None for t in ts):
        return False
    missed = [t for t in ts if not t["met"]]
    if not missed:
        return any(t.get("near") for t in ts)
    return all(t.get("near") for t in missed)


def targets_summary(cases: list[dict]) -> str:
    """"11/32 cases meet their targets (4 verdict(s) within the noise, marked *)"."""
    judged = [c for c in cases if c.get("target_met") is not None]
    near = sum(verdict_near(c) for c in judged)
    return (f"{sum(c['target_met'] for c in judged)}/{len(judged)} cases meet their targets"
            + (f" ({near} verdict(s) within the noise, marked *)" if near else ""))


def _targets_cell(case: dict, short: bool = False) -> tuple[str, str]:
    """A case's target cells: ("floor ≤ 1.5, torch ≤ 1.3", "yes" / "MISSED floor" / "n/a"),
    or with ``short`` the terminal's ("1.5F 1.3T", "yes" / "MISS F" / "n/a"; F: × floor,
    T: × torch); a verdict within the noise (:func:`verdict_near`) ends in *."""
    ts = case.get("targets") or []
    if not ts:
        return "—", ""
    text = (" " if short else ", ").join(
        f"{t['limit']:g}{t['kind'][0].upper()}" if short else f"{t['kind']} ≤ {t['limit']:g}"
        for t in ts)
    if any(t["met"] is None for t in ts):
        return text, "n/a"
    mark = "*" if verdict_near(case) else ""
    missed = [t["kind"] for t in ts if not t["met"]]
    if not missed:
        return text, "yes" + mark
    return text, ("MISS " + "".join(k[0].upper() for k in missed) if short
                  else "MISSED " + "+".join(missed)) + mark


def _rate(case: dict, side: str) -> str:
    """GFLOP/s where the case counts FLOPs, else GB/s of its floor's bytes."""
    t = _median(case, "fwdbwd", side)
    if t is None:
        return "—"
    if case.get("flops_fwdbwd"):
        return f"{case['flops_fwdbwd'] / t / 1e9:.1f}"
    b = ((case.get("floor") or {}).get("fwdbwd") or {}).get("bytes")
    return f"{b / t / 1e9:.1f}" if b else "—"


def _floor_s(case: dict, mode: str = "fwdbwd") -> float | None:
    return ((case.get("floor") or {}).get(mode) or {}).get("total_s")


def _x(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v:.2f}" if v >= 0.095 else f"{v:.2g}"


HEADERS = ["case", "fwd sn ms", "fwd torch ms", "f+b sn ms", "f+b torch ms", "× torch [IQR]",
           "floor ms", "× floor sn / torch", "GFLOP/s or GB/s sn / torch", "targets", "met",
           "mem MiB sn / torch"]
SHORT_HEADERS = ["case", "sn ms", "torch ms", "×torch", "floor ms", "×floor", "target", "met"]


def _peer_names(cases: list[dict]) -> list[str]:
    return sorted({p for c in cases for p in (c.get("peers") or {})})


def _peer_cell(case: dict, peer: str, short: bool = False) -> str:
    p = (case.get("peers") or {}).get(peer)
    if not p:
        return "—"
    if p["status"] != "ok":
        return {"unsupported": "unsup", "mismatch": "mism"}.get(p["status"], "err") \
            if short else p["status"]
    r = p["ratio_to_scratchnn"]["median"]
    return f"{r:.3g}×" if short else f"{_ms(p['time']['median_s'])} ({r:.3g}×)"


def table_rows(results: dict, short: bool = False) -> tuple[list[str], list[list[str]]]:
    """Headers and one row per case: the full table (report.md), or with ``short`` the terminal
    one (sn = scratchnn forward+backward; extra columns when a run has CUDA, naive, peers)."""
    cases = results["cases"]
    has = {s: any(_median(c, "fwdbwd", s) is not None for c in cases) for s in SIDES_EXTRA}
    peers = _peer_names(cases)
    headers = list(SHORT_HEADERS if short else HEADERS)
    if short:
        headers += [f"{p} ×"[:8] for p in peers]
    else:
        headers += [f"{p} ms (× sn)" for p in peers]
        if has["torch_cuda"]:
            headers += ["f+b cuda ms"]
        if has["naive"]:
            headers += ["f+b naive ms (× slower)"]
    rows = []
    for c in cases:
        if c["status"] != "ok":
            rows.append([c["name"], f"{c['status'].upper()}: {c.get('error', '')}"])
            continue                                  # a short row: name and message
        tcell, met = _targets_cell(c)
        fr = (c.get("floor_ratio") or {}).get("fwdbwd") or {}
        fl = _floor_s(c)
        if short:
            row = [c["name"], _ms(_median(c, "fwdbwd", "scratchnn")),
                   _ms(_median(c, "fwdbwd", "torch")),
                   _ratio(c["ratio"].get("fwdbwd"), spread=False), _ms(fl),
                   _x(fr.get("scratchnn")), *_targets_cell(c, short=True)]
            row += [_peer_cell(c, p, short=True) for p in peers]
            rows.append(row)
            continue
        mem = c.get("memory", {})
        row = [c["name"],
               _ms(_median(c, "fwd", "scratchnn")), _ms(_median(c, "fwd", "torch")),
               _ms(_median(c, "fwdbwd", "scratchnn")), _ms(_median(c, "fwdbwd", "torch")),
               _ratio(c["ratio"].get("fwdbwd")), _ms(fl),
               f"{_x(fr.get('scratchnn'))} / {_x(fr.get('torch'))}" if fr else "—",
               f"{_rate(c, 'scratchnn')} / {_rate(c, 'torch')}", tcell, met,
               _pair(*(None if mem.get(s, {}).get("peak_extra_bytes") is None
                       else mem[s]["peak_extra_bytes"] / 2 ** 20
                       for s in ("scratchnn", "torch")), ".1f")]
        row += [_peer_cell(c, p) for p in peers]
        if has["torch_cuda"]:
            row.append(_ms(_median(c, "fwdbwd", "torch_cuda")))
        if has["naive"]:
            nv = _median(c, "fwdbwd", "naive")
            row.append("—" if nv is None else
                       f"{_ms(nv)} ({c['naive_slowdown']:.0f}×)")
        rows.append(row)
    return headers, rows


def format_table(headers: list[str], rows: list[list[str]], markdown: bool = False,
                 max_width: int | None = None) -> str:
    """A plain-text (or Markdown) table; short rows (a case that did not run) are
    ``[name, message]`` and span the line. ``max_width``: the first column (and a short row's
    message) is cut with "…" so that no line is longer."""
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
    if max_width is not None:
        rest = sum(widths[1:]) + 2 * (len(widths) - 1)
        widths[0] = max(8, min(widths[0], max_width - rest))
        cut = (lambda x, w: x if len(x) <= w else x[:w - 1] + "…")
        rows = [[cut(r[0], widths[0])] + ([cut(r[1], max_width - widths[0] - 2)]
                                          if len(r) != len(headers) else r[1:]) for r in rows]
        headers = [cut(headers[0], widths[0])] + headers[1:]
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
    if m.get("loadavg_before") is not None:
        steal = m.get("steal")
        lines.append(f"- load average (1 min) before / after: {m['loadavg_before'][0]:.2f} / "
                     f"{m['loadavg_after'][0]:.2f}; CPU time stolen by the hypervisor during "
                     f"the run: " + ("n/a" if steal is None else f"{100 * steal:.1f} %"))
    if peak:
        lines.append(f"- matmul peak ({peak['n']}×{peak['n']} {peak['dtype']} GEMM): NumPy "
                     f"{peak['numpy_gflops']:.1f} GFLOP/s, torch {peak['torch_gflops']:.1f} "
                     f"GFLOP/s (the floors use each case's own shapes instead)")
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


def _floor_md(results: dict) -> list[str]:
    fl = results.get("floor_rates") or {}
    if not fl:
        return []
    d = fl.get("detail", {})
    out = [f"- NumPy floor rates (same run, same threads): copy {d.get('copy_GB_per_s', 0):.1f} "
           f"GB/s (np.copyto, {d.get('copy_buffer_MiB', 0):.0f} MiB, read + write), np.exp "
           f"{d.get('exp_Gelem_per_s', 0):.2f} G elements/s, random "
           f"{d.get('random_Gelem_per_s', 0):.2f} G/s; GEMM shapes in results.json "
           f"(floor_rates.gemms)"]
    return out


def _warnings_md(results: dict) -> list[str]:
    w = results.get("warnings") or []
    return (["## Warnings", ""] + [f"- **{x}**" for x in w] + [""]) if w else []


def _switch_text(cfg: dict) -> str:
    """What the harness did at every switch between sides."""
    idle = f"{cfg['idle']} s of sleep, then " if cfg.get("idle") else ""
    return f"at every switch {idle}{cfg['settle']} s of untimed calls of the next side."


def write_markdown(results: dict, path: str) -> None:
    from .cases import TARGET_NOTE
    cfg, m = results["config"], results["machine"]
    headers, rows = table_rows(results)
    lines = ["# scratchnn vs torch: speed, floors and memory", "",
             f"`{cfg['command']}`", "",
             *_machine_lines(m, results.get("peak") or {}), *_floor_md(results), "",
             f"dtype {cfg['dtype']}, device {cfg['device']}, repeats {cfg['repeats']} "
             f"(median; fewer for slow cases, at least 3), warm-up {cfg['warmup']} (more until "
             f"two calls agree within 10 %), interleaved scratchnn/torch, "
             + _switch_text(cfg), "",
             *_warnings_md(results),
             format_table(headers, rows, markdown=True), "",
             (f"**{targets_summary(results['cases'])}.**" if cfg["dtype"] == "float32"
              else "Targets apply to float32 runs only."), "",
             "## How to read it", "",
             "- times: median milliseconds per call; fwd = forward only (autograd recording on "
             "in torch), f+b = forward + backward (all gradients).",
             "- × torch: median over repeats of the paired ratio scratchnn / torch (below 1 "
             "means scratchnn is faster); the bracket is its interquartile range.",
             "- floor: the NumPy floor of the case's forward + backward, measured in this run "
             "(its work per case below); × floor: each side's time over it (torch, with its own "
             "kernels, may go below 1).",
             f"- targets / met: {TARGET_NOTE} 'n/a' when the run is not float32. {NEAR_NOTE}",
             "- GFLOP/s (cases that count FLOPs: their formula below) or GB/s (the floor's "
             "bytes over the time): forward + backward.",
             "- mem: peak extra MiB during one forward+backward: scratchnn by tracemalloc, "
             "torch by its CPU allocator's profiler events (method per case in results.json).",
             ""]
    if any(h.endswith("(× sn)") for h in headers):
        lines += ["- peers (`--peers`): each peer library's forward + backward and its time "
                  "over scratchnn's (paired, interleaved); 'mismatch': its forward disagreed "
                  "with torch, so it was not timed.", ""]
    if any(r[-1].endswith("slower)") for r in rows):
        lines += ["- naive: the readable loop version of the op on a small shape, and how many "
                  "times slower than scratchnn's vectorised op it is.", ""]
    lines += ["## Cases", "", "| case | shape | FLOPs (fwd+bwd) | floor: the work counted | "
              "notes |", "|---|---|---|---|---|"]
    for c in results["cases"]:
        fl = c.get("flops_fwdbwd")
        flops = f"{fl / 1e9:.3g} G: {c['flop_formula']}" if fl else "—"
        ftext = (c.get("floor") or {}).get("text") or c.get("floor_text") or "—"
        lines.append(f"| {c['name']} | {c['shape']} | {flops} | {ftext} | "
                     f"{c.get('notes') or ''} |")
    lines.append("")
    missed = [c for c in results["cases"] if c.get("target_met") is False]
    if missed:
        lines += ["## Missed targets", "",
                  ", ".join(f"{c['name']} (" + ", ".join(
                      f"{t['kind']} {t['value']:.2f}× vs ≤ {t['limit']:g}"
                      + (" *" if t.get("near") else "")
                      for t in c["targets"] if t["met"] is False) + ")" for c in missed), ""]
    peer_info = results.get("peers_info")
    if peer_info:
        lines += ["## Peers", "", "Timed: " + (", ".join(f"{k} {v}" for k, v in
                                                          peer_info["available"].items())
                                               or "none installed") + ".", ""]
        lines += [f"- left out: {k}: {v}" for k, v in peer_info["left_out"].items()] + [""]
        bad = [(c["name"], k, p) for c in results["cases"]
               for k, p in (c.get("peers") or {}).items() if p["status"] != "ok"]
        lines += [f"- {n}: {k} {p['status']}: {p.get('detail')}" for n, k, p in bad]
        lines += [""] if bad else []
    profiled = [c for c in results["cases"] if c.get("profile")]
    for c in profiled:
        lines += _profile_md(c)
    bad = [c for c in results["cases"] if c["status"] != "ok"]
    if bad:
        lines += ["## Not run", ""] + [f"- {c['name']}: {c['status']}: {c.get('error')}"
                                       for c in bad] + [""]
    if results.get("baseline"):
        lines += ["## Against the baseline", "", results["baseline"]["text"], ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))


def write_plot(results: dict, path: str) -> None:
    """Horizontal bars of forward+backward ratios to torch, a dot for the ratio to the floor,
    each torch target marked; colour: every target met or not."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = [c for c in results["cases"] if c["status"] == "ok"]
    fig, ax = plt.subplots(figsize=(9, 0.42 * max(len(cases), 1) + 1.6))
    ys = list(range(len(cases)))[::-1]
    for y, c in zip(ys, cases):
        fb = c["ratio"]["fwdbwd"]
        color = {True: "tab:green", False: "tab:red", None: "tab:gray"}[c.get("target_met")]
        ax.barh(y + 0.18, fb["median"], height=0.36, color=color,
                xerr=[[fb["median"] - fb["q1"]], [fb["q3"] - fb["median"]]],
                error_kw={"elinewidth": 0.8, "capsize": 2})
        fr = (c.get("floor_ratio") or {}).get("fwdbwd", {}).get("scratchnn")
        if fr:
            ax.plot([fr], [y - 0.18], marker="o", ms=3, color="black")
        if c.get("torch_target") is not None:
            ax.plot([c["torch_target"]] * 2, [y - 0.45, y + 0.45], color="black", lw=2)
    ax.axvline(1.0, color="tab:blue", ls="--", lw=1)
    ax.set_yticks(ys)
    ax.set_yticklabels([c["name"] for c in cases], fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("scratchnn's forward+backward time ratio (log scale): bar / torch, "
                  "dot / NumPy floor", fontsize=9)
    cfg, m = results["config"], results["machine"]
    ax.set_title(f"scratchnn / torch, {cfg['dtype']}, {m['threads']} threads — bar: fwd+bwd "
                 f"(IQR); dot: / floor; black tick: torch target", fontsize=9)
    ax.grid(axis="x", which="both", alpha=0.3)
    from matplotlib.patches import Patch
    ax.legend(handles=[Patch(color="tab:green", label="target met"),
                       Patch(color="tab:red", label="target missed"),
                       Patch(color="tab:gray", label="no target / n/a")],
              loc="lower right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def baseline_verdicts(new: dict, old: dict, threshold: float = REGRESSION) -> list[dict]:
    """Each case of ``new`` that also ran in ``old`` (by name), compared on scratchnn's
    forward+backward median: ``slower`` when new / old > 1 + threshold + noise, ``faster`` when
    old / new > 1 + threshold + noise, else ``same``; noise = the larger relative interquartile
    range (IQR / median) of the two runs' samples. Torch's change is given beside it: when
    torch moved as much, the machine changed, not the code."""
    before = {c["name"]: c for c in old.get("cases", []) if c.get("status") == "ok"}
    out = []
    for c in new.get("cases", []):
        o = before.get(c["name"])
        if c.get("status") != "ok" or o is None:
            continue
        tn, to = c["times"]["fwdbwd"]["scratchnn"], o["times"]["fwdbwd"]["scratchnn"]
        noise = max(tn["iqr_s"] / tn["median_s"], to["iqr_s"] / to["median_s"])
        r = tn["median_s"] / to["median_s"]
        limit = 1 + threshold + noise
        verdict = "slower" if r > limit else "faster" if 1 / r > limit else "same"
        torch_r = None
        if "torch" in c["times"]["fwdbwd"] and "torch" in o["times"]["fwdbwd"]:
            torch_r = (c["times"]["fwdbwd"]["torch"]["median_s"]
                       / o["times"]["fwdbwd"]["torch"]["median_s"])
        out.append({"name": c["name"], "old_s": to["median_s"], "new_s": tn["median_s"],
                    "ratio": r, "noise": noise, "limit": limit, "verdict": verdict,
                    "torch_ratio": torch_r, "target_old": o.get("target_met"),
                    "target_new": c.get("target_met")})
    return out


def _met(v: bool | None) -> str:
    return {True: "met", False: "missed", None: "—"}[v]


def format_baseline(verdicts: list[dict], threshold: float = REGRESSION) -> str:
    """A ≤ 100-column table of :func:`baseline_verdicts` and a closing line."""
    rows = [[v["name"], _ms(v["old_s"]), _ms(v["new_s"]), f"{v['ratio']:.2f}",
             f"±{100 * (v['limit'] - 1):.0f}%",
             "—" if v["torch_ratio"] is None else f"{v['torch_ratio']:.2f}", v["verdict"]]
            for v in verdicts]
    table = format_table(["case", "old ms", "new ms", "new/old", "limit", "torch new/old",
                          "verdict"], rows, max_width=100)
    slower = [v["name"] for v in verdicts if v["verdict"] == "slower"]
    tail = (f"{len(slower)} regression(s) (slower by more than {100 * threshold:.0f} % beyond "
            f"the noise): {', '.join(slower)}" if slower else
            f"no regression (threshold: {100 * threshold:.0f} % beyond the noise)")
    flips = [v for v in verdicts if None not in (v.get("target_old"), v.get("target_new"))
             and v["target_old"] != v["target_new"]]
    if flips:                          # a target verdict that the other run did not share
        tail += (f"\n{len(flips)} target verdict(s) differ from the baseline's: "
                 + ", ".join(f"{v['name']} ({_met(v['target_old'])} → "
                             f"{_met(v['target_new'])})" for v in flips))
    return table + "\n\n" + tail


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
