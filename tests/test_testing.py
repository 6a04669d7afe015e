"""``scratchnn.testing``: check_op passes a correct op, catches each kind of wrong backward with a
full failure report, and the report's last line reproduces the failure; the report command."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import strategies as st

import scratchnn as snn
import scratchnn.functional as F
from scratchnn.testing import Case, CheckError, check_op, make, run_case
from scratchnn.testing.registry import REGISTRY

ROOT = Path(__file__).resolve().parents[1]
FIELDS = ("check:", "argument:", "dtype:", "error:", "tolerance:", "worst at:", "example:",
          "reproduce:")
WORDS = ("relative", "tolerance", "ours", "torch", "float64 oracle", "seed", "shapes")


# ---------------------------------------------------------------- user ops, right and wrong

def softsign_forward(x):
    d = 1 + np.abs(x)
    return x / d, (d,)


def softsign_backward(ctx, dy):
    (d,) = ctx
    return dy / d ** 2


softsign = snn.defop(softsign_forward, softsign_backward)


def xsin_forward(x):
    return x * np.sin(x), (x,)


def xsin_backward(ctx, dy):
    (x,) = ctx
    return dy * (np.sin(x) + x * np.cos(x))


xsin = snn.defop(xsin_forward, xsin_backward)


def torch_xsin(x):
    return x * torch.sin(x)


def mm_forward(a, b):
    return a @ b, (a, b)


def mm_backward(ctx, dy):
    a, b = ctx
    return dy @ b.T, a.T @ dy


mm = snn.defop(mm_forward, mm_backward)
square_pairs = st.integers(1, 4).map(lambda n: [(n, n), (n, n)])


def relu_forward(x):
    return np.maximum(x, 0), (x,)


def relu_backward(ctx, dy):
    (x,) = ctx
    return dy * (x > 0)


relu = snn.defop(relu_forward, relu_backward)


def double_forward(x):
    return x * 2, None


def double_backward(ctx, dy):
    return 2 * dy


double = snn.defop(double_forward, double_backward)


def torch_double(x):
    return 2 * x


# each mutant: (op, torch op, check_op options, the check it must fail)
MUTANTS = {
    "wrong sign": (snn.defop(softsign_forward, lambda c, dy: -dy / c[0] ** 2, name="softsign"),
                   torch.nn.functional.softsign, {}, "gradient"),
    "missing term": (snn.defop(xsin_forward, lambda c, dy: dy * c[0] * np.cos(c[0]),
                               name="xsin"), torch_xsin, {}, "gradient"),
    "transposed product": (snn.defop(mm_forward, lambda c, dy: (dy @ c[1], c[0].T @ dy),
                                     name="mm"), torch.matmul, {"shapes": square_pairs},
                           "gradient"),
    "wrong tie convention": (snn.defop(relu_forward, lambda c, dy: dy * (c[0] >= 0),
                                       name="relu"), torch.nn.functional.relu,
                             {"shapes": (4, 5), "regimes": ("ties",)}, "gradient"),
    "wrong dtype": (snn.defop(lambda x: (x * np.float64(2.0), None), double_backward,
                              name="double"), torch_double, {}, "dtype preserved"),
    "wrong gradient dtype": (snn.defop(double_forward, lambda c, dy: dy * np.float64(2.0),
                                       name="double"), torch_double, {}, "dtype preserved"),
}


def _failure(op, torch_op, **options) -> str:
    with pytest.raises(AssertionError) as info:
        check_op(op, torch_op, examples=10, **options)
    assert isinstance(info.value, CheckError)
    return str(info.value)


def _line(report: str, field: str) -> str:
    return next(ln for ln in report.splitlines() if ln.strip().startswith(field)) \
        .split(field, 1)[1].strip()


def test_check_op_passes_a_correct_op():
    summary = check_op(softsign, torch.nn.functional.softsign, examples=6)
    assert summary.examples == 6 and summary.layouts > 0 and summary.gradchecks > 0
    assert "agrees with torch.nn.functional.softsign" in str(summary)
    assert set(summary.worst) == {"float32", "float64"}


def test_check_op_structured_ops_options_and_argument_builders():
    check_op(mm, torch.matmul, shapes=st.tuples(st.integers(0, 3), st.integers(1, 3),
                                                 st.integers(1, 3))
             .map(lambda s: [(s[0], s[1]), (s[1], s[2])]), examples=4)
    check_op(F.leaky_relu, torch.nn.functional.leaky_relu, examples=4,
             options={"negative_slope": st.floats(0.0, 0.5)}, regimes=("normal", "ties"))
    check_op(double, torch_double, args=lambda shapes, rng, regime: (make(shapes[0], rng),),
             examples=3, dtypes=("float64",), layouts=False, gradcheck=False)


@pytest.mark.parametrize("kind", sorted(MUTANTS))
def test_check_op_catches_a_wrong_backward_with_a_full_report(kind):
    op, torch_op, options, check = MUTANTS[kind]
    report = _failure(op, torch_op, **options)
    for field in FIELDS + WORDS:
        assert field in report, f"{kind}: report lacks {field!r}:\n{report}"
    assert _line(report, "check:").startswith(check), report
    assert _line(report, "dtype:") in ("float32 on cpu", "float64 on cpu"), report
    assert "index" in _line(report, "worst at:"), report
    if check == "gradient":
        assert _line(report, "argument:").startswith("argument 0"), report


@pytest.mark.parametrize("kind", ["missing term", "transposed product", "wrong dtype"])
def test_the_reproduction_line_reproduces(kind):
    op, torch_op, options, _ = MUTANTS[kind]
    report = _failure(op, torch_op, **options)
    line = _line(report, "reproduce:")
    namespace = {op.__name__: op, "torch": torch, torch_op.__name__: torch_op}
    with pytest.raises(AssertionError) as again:
        exec(line, namespace)
    for field in ("check:", "argument:", "error:", "worst at:", "example:"):
        assert _line(str(again.value), field) == _line(report, field), str(again.value)


def test_a_suite_failure_reads_the_same_and_reproduces():
    """The registry path (tests/, python -m reference) builds the same report, and its line
    replays the case through scratchnn.testing.replay."""
    def bad_backward(ctx, dy):
        dx, dw, db = F.linear.backward(ctx, dy)
        return dx[::-1], dw, db                   # a permutation bug

    from reference.registry import load_all
    spec = dataclasses.replace(load_all()["linear"], name="linear_broken_for_test",
                               ours=snn.defop(F.linear.forward, bad_backward, name="linear"),
                               reproduce=None)
    rng = np.random.default_rng(0)
    case = Case((rng.standard_normal((3, 4)), rng.standard_normal((2, 4))))
    REGISTRY[spec.name] = spec
    try:
        res = run_case(spec, case, "float64", seed=5)
        assert not res.ok
        report = res.report()
        for field in FIELDS:
            assert field in report
        assert "argument 0 ('input')" in report and "grad" in res.message
        with pytest.raises(AssertionError) as again:
            exec(_line(report, "reproduce:"), {})
        assert _line(str(again.value), "worst at:") == _line(report, "worst at:")
    finally:
        del REGISTRY[spec.name]


def test_case_repr_shows_the_values():
    from numpy import array  # noqa: F401 - used by eval
    case = Case((np.array([0.1, -2.5]), 3), {"dim": 0})
    text = repr(case)
    assert "0.1" in text and "-2.5" in text and "'dim': 0" in text
    again = eval(text)
    np.testing.assert_array_equal(again.args[0], case.args[0])
    assert again.args[1] == 3 and again.kwargs == {"dim": 0}
    big = repr(Case((np.zeros((30, 30)),)))
    assert "shape=(30, 30)" in big and len(big) < 200


def test_importing_scratchnn_testing_loads_neither_torch_nor_hypothesis():
    code = ("import sys, scratchnn, scratchnn.testing as t; t.check_op; t.make; t.register; "
            "sys.exit(('torch' in sys.modules) + 2 * ('hypothesis' in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_the_report_command_runs_a_users_module(tmp_path):
    (tmp_path / "myops.py").write_text(textwrap.dedent("""
        import numpy as np, torch, scratchnn as snn
        from scratchnn.testing import register

        def softsign_forward(x):
            d = 1 + np.abs(x)
            return x / d, (d,)

        register(snn.defop(softsign_forward, lambda c, dy: dy / c[0] ** 2, name="softsign"),
                 torch.nn.functional.softsign)
        register(snn.defop(softsign_forward, lambda c, dy: dy / c[0], name="softsign_wrong"),
                 torch.nn.functional.softsign)
    """))
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)}
    run = subprocess.run([sys.executable, "-m", "scratchnn.testing", "--module", "myops",
                          "--examples", "4"], cwd=tmp_path, capture_output=True, text=True,
                         env=env)
    assert run.returncode == 1, run.stdout + run.stderr
    assert run.stderr == ""
    lines = run.stdout.splitlines()
    assert all(len(ln) <= 100 for ln in lines[:6]), lines
    assert "err/tol" in lines[0]
    rows = {ln.split()[0] + " " + ln.split()[1]: ln for ln in lines[2:6]}
    assert rows["softsign float32"].endswith("ok") and rows["softsign_wrong float64"].endswith(
        "FAIL")
    assert "reproduce:" in run.stdout and "check:" in run.stdout


def test_finite_differences_are_checked_without_torch_too():
    op = MUTANTS["wrong sign"][0]
    with pytest.raises(AssertionError) as info:
        check_op(op, torch.nn.functional.softsign, dtypes=(), examples=3)
    report = str(info.value)
    for field in FIELDS:
        assert field in report, report
    assert "finite differences" in _line(report, "check:")
    assert "analytic" in _line(report, "worst at:") and "numeric" in report
    with pytest.raises(AssertionError) as again:
        exec(_line(report, "reproduce:"), {"softsign": op, "torch": torch})
    assert _line(str(again.value), "worst at:") == _line(report, "worst at:")
