"""The equivalence report: every registered op against torch, one row per op and dtype.

    python -m scratchnn.testing [OPS ...] [--module MOD ...] [--impl fast|textbook]
        [--device cpu|cuda] [--dtype float32|float64] [--examples N] [--seed S]

Runs ``N`` hypothesis-drawn cases per op and dtype, in every value regime the op lists, through
:func:`scratchnn.testing.harness.run_case` — the machinery of the test suite and of
:func:`scratchnn.testing.check_op` — and prints, per row, the worst forward and gradient error
against torch float64 and each error relative to its tolerance (``err/tol`` ≤ 1 passes). The
failure report of the first failing case of each op follows the table; the exit status is 1
when any op fails.

Which ops: ``--module mymod`` (repeatable; a module name importable from the current directory,
or a path to a ``.py`` file) imports your module, which registers ops with
:func:`scratchnn.testing.register`; without ``--module`` (or with ``--builtin``) the project's
own registry runs — it lives in ``reference/`` of a clone of the repository, so run it from a
clone (or an editable install).
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from .registry import IMPLS, REGISTRY, OpSpec

WIDTH = 100              # the table fits this many columns


def load_project_registry() -> dict[str, OpSpec]:
    """Import the project's own op specs (``reference/specs`` of a clone) into the registry."""
    def ours(mod) -> bool:
        return getattr(mod, "REGISTRY", None) is REGISTRY and hasattr(mod, "load_all")
    try:
        mod = importlib.import_module("reference.registry")
    except ImportError:
        mod = None
    if mod is None or not ours(mod):
        root = Path(__file__).resolve().parents[2]          # the clone holding scratchnn/
        if not (root / "reference" / "registry.py").is_file():
            raise LookupError("scratchnn's own op registry lives in reference/ of a clone of the "
                              "repository and is not installed: run this from a clone, or "
                              "check your own ops with --module")
        sys.modules.pop("reference", None)
        sys.modules.pop("reference.registry", None)
        sys.path.insert(0, str(root))
        mod = importlib.import_module("reference.registry")
    return mod.load_all()


def _import_user_module(name: str) -> None:
    if name.endswith(".py") or os.sep in name:
        path = Path(name).resolve()
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {name}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        spec.loader.exec_module(module)
    else:
        importlib.import_module(name)


def run_op(spec: OpSpec, dtype: str, device: str, n: int, seed: int, impl: str = "fast"):
    """Run ``n`` drawn cases; return (count, worst result, report of the first failure or '')."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st

    from .harness import Result, run_case

    worst = Result(spec.name, dtype, device, 0.0, 0.0, True)
    state = {"count": 0, "fail": ""}

    @settings(max_examples=n, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate])
    @given(data=st.data())
    def go(data):
        regime = data.draw(st.sampled_from(spec.regimes))
        case = data.draw(spec.cases(regime))
        # a case that records its own seed (check_op's, a registered user op) uses it for the
        # upstream gradient too, so that its reproduction line repeats exactly this run
        s = (case.config or {}).get("seed", seed + state["count"])
        r = run_case(spec, case, dtype, device, seed=s, impl=impl)
        state["count"] += 1
        worst.fwd_err = max(worst.fwd_err, r.fwd_err)
        worst.grad_err = max(worst.grad_err, r.grad_err)
        worst.fwd_ratio = max(worst.fwd_ratio, r.fwd_ratio)
        worst.grad_ratio = max(worst.grad_ratio, r.grad_ratio)
        if not r.ok and not state["fail"]:
            worst.ok = False
            state["fail"] = f"[regime {regime}] {r.report()}"

    go()
    return state["count"], worst, state["fail"]


def _fmt(x: float, width: int, spec: str) -> str:
    return f"{'inf':>{width}}" if x == float("inf") else f"{x:>{width}{spec}}"


def main(argv: list[str] | None = None, prog: str = "python -m scratchnn.testing") -> int:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("ops", nargs="*", help="ops to check (default: every loaded op)")
    p.add_argument("--module", action="append", default=[],
                   help="a module (or .py file) that registers ops; repeatable")
    p.add_argument("--builtin", action="store_true",
                   help="also run scratchnn's own registry when --module is given")
    p.add_argument("--impl", choices=list(IMPLS), default="fast",
                   help="which edition to check: the fast engines (default) or scratchnn.textbook")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--dtype", choices=["float32", "float64"], action="append",
                   help="repeatable; default both")
    p.add_argument("--examples", type=int, default=20, help="cases per op and dtype (default 20)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if a.examples < 1:
        p.error("--examples must be >= 1")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())       # a console script does not see the cwd otherwise
    if not a.module or a.builtin:              # ours first: a clash then names the user's op
        try:
            load_project_registry()
        except LookupError as e:
            p.error(str(e))
    before = set(REGISTRY)
    for m in a.module:
        try:
            _import_user_module(m)
        except Exception as e:  # noqa: BLE001 - the user's module, reported as a usage error
            p.error(f"--module {m}: {type(e).__name__}: {e}")
    if a.module and not REGISTRY:
        p.error(f"--module {' '.join(a.module)} registered no ops "
                f"(call scratchnn.testing.register(op, torch_op, ...) at import)")
    # without --builtin, only the ops the modules registered (or all, if they were imported
    # already in this process)
    mine = [n for n in REGISTRY if n not in before] or list(REGISTRY)
    available = sorted(mine if a.module and not a.builtin else REGISTRY)
    unknown = [o for o in a.ops if o not in REGISTRY]
    if unknown:
        p.error(f"unknown ops {unknown}; known: {', '.join(available)}")
    from .bridge import cuda_available
    if a.device == "cuda" and not cuda_available():
        p.error("--device cuda: torch.cuda.is_available() is False on this machine")
    ops = a.ops or available
    dtypes = a.dtype or ["float32", "float64"]

    w = min(max([len(o) for o in ops] + [2]), 33)
    head = (f"{'op':<{w}} {'dtype':<7} {'dev':<4} {'cases':>5} {'fwd err':>9} {'err/tol':>7} "
            f"{'grad err':>9} {'err/tol':>7}  verdict")
    print(head)
    print("-" * len(head))
    rows, failures = [], []
    t0 = time.perf_counter()
    for name in ops:
        for dt in dtypes:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")       # the ops' own overflow/deprecation notes
                n, worst, fail = run_op(REGISTRY[name], dt, a.device, a.examples, a.seed, a.impl)
            shown = name if len(name) <= w else name[:w - 1] + "…"
            print(f"{shown:<{w}} {dt:<7} {a.device:<4} {n:>5} {_fmt(worst.fwd_err, 9, '.2e')} "
                  f"{_fmt(worst.fwd_ratio, 7, '.2g')} {_fmt(worst.grad_err, 9, '.2e')} "
                  f"{_fmt(worst.grad_ratio, 7, '.2g')}  {'ok' if worst.ok else 'FAIL'}",
                  flush=True)
            rows.append(worst)
            if fail:
                failures.append(fail)
    bad = sum(not r.ok for r in rows)
    edition = " (textbook edition)" if a.impl == "textbook" else ""
    print(f"\n{len(rows) - bad} of {len(rows)} op/dtype pairs{edition} agree with torch "
          f"({time.perf_counter() - t0:.1f} s).\nerr: max |ours − torch float64|; err/tol: that "
          f"error over its tolerance, ≤ 1 passes.")
    for f in failures:
        print("\nFAILED", f)
    return 1 if bad else 0


def cli() -> int:
    """The ``scratchnn-check`` console script (installed with ``pip install 'scratchnn[test]'``)."""
    return main(prog="scratchnn-check")
