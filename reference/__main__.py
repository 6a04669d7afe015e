"""The equivalence report: ``python -m reference [OPS ...] [--impl fast|textbook]
[--device cpu|cuda] [--dtype float32|float64] [--examples N] [--seed S]``.

Runs the harness for the chosen ops (all by default) over ``N`` hypothesis-drawn cases each, in
every value regime the op lists, and prints one row per op and dtype: examples run, worst forward
error and worst gradient error (max |scratchnn − torch float64|), verdict. Exits non-zero when
any op fails; the first failing case of each op is printed below the table.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from .bridge import cuda_available
from .harness import Result, run_case
from .registry import IMPLS, load_all


def run_op(spec, dtype: str, device: str, n: int, seed: int, impl: str = "fast"
           ) -> tuple[int, Result, str]:
    """Run ``n`` drawn cases; return (count, worst result, first failure or '')."""
    worst = Result(spec.name, dtype, device, 0.0, 0.0, True)
    state = {"count": 0, "fail": ""}

    @settings(max_examples=n, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate])
    @given(data=st.data())
    def go(data):
        regime = data.draw(st.sampled_from(spec.regimes))
        case = data.draw(spec.cases(regime))
        r = run_case(spec, case, dtype, device, seed=seed + state["count"], impl=impl)
        state["count"] += 1
        worst.fwd_err = max(worst.fwd_err, r.fwd_err)
        worst.grad_err = max(worst.grad_err, r.grad_err)
        if not r.ok and not state["fail"]:
            worst.ok = False
            state["fail"] = f"{spec.name} [{dtype}, {device}, regime {regime}] {case}: {r.message}"

    go()
    return state["count"], worst, state["fail"]


def main(argv: list[str] | None = None) -> int:
    specs = load_all()
    p = argparse.ArgumentParser(prog="python -m reference", description=__doc__.split("\n\n")[0])
    p.add_argument("ops", nargs="*", help=f"ops to check (default: all {len(specs)})")
    p.add_argument("--impl", choices=list(IMPLS), default="fast",
                   help="which edition to check: the fast engines (default) or scratchnn.textbook")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--dtype", choices=["float32", "float64"], action="append",
                   help="repeatable; default both")
    p.add_argument("--examples", type=int, default=20, help="cases per op and dtype (default 20)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    unknown = [o for o in a.ops if o not in specs]
    if unknown:
        p.error(f"unknown ops {unknown}; known: {', '.join(sorted(specs))}")
    if a.examples < 1:
        p.error("--examples must be >= 1")
    if a.device == "cuda" and not cuda_available():
        p.error("--device cuda: torch.cuda.is_available() is False on this machine")
    ops = a.ops or sorted(specs)
    dtypes = a.dtype or ["float32", "float64"]

    rows, failures = [], []
    t0 = time.perf_counter()
    head = f"{'op':<28}{'dtype':<9}{'device':<7}{'examples':>9}{'fwd err':>11}{'grad err':>11}  verdict"
    print(head)
    print("-" * len(head))
    for name in ops:
        for dt in dtypes:
            n, worst, fail = run_op(specs[name], dt, a.device, a.examples, a.seed, a.impl)
            verdict = "ok" if worst.ok else "FAIL"
            print(f"{name:<28}{dt:<9}{a.device:<7}{n:>9}{worst.fwd_err:>11.2e}"
                  f"{worst.grad_err:>11.2e}  {verdict}", flush=True)
            rows.append(worst)
            if fail:
                failures.append(fail)
    bad = sum(not r.ok for r in rows)
    print(f"\n{len(rows) - bad} of {len(rows)} op/dtype pairs ({a.impl} edition) agree with torch "
          f"({time.perf_counter() - t0:.1f} s). Errors are max |scratchnn − torch float64|.")
    for f in failures:
        print("FAILED:", f)
    return 1 if bad else 0


if __name__ == "__main__":
    np.seterr(all="warn")
    sys.exit(main())
