"""The harness itself must be able to fail: broken backwards are caught, the report exits 1."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import scratchnn as snn
import scratchnn.functional as F
from reference import __main__ as report
from reference.harness import run_case, within
from reference.registry import REGISTRY, Case, load_all

SPECS = load_all()


def _mutant(op, backward, name):
    return snn.defop(op.forward, backward, name=name)


def _linear_case(seed=0):
    rng = np.random.default_rng(seed)
    return Case((rng.standard_normal((5, 4)), rng.standard_normal((3, 4)), rng.standard_normal(3)))


MUTATIONS = {
    # a wrong scale on one gradient
    "scaled dW": lambda c, dy: (lambda g: (g[0], g[1] * 1.0001, g[2]))(F.linear.backward(c, dy)),
    # a permutation bug (caught because the upstream gradient is random, not ones)
    "permuted dx": lambda c, dy: (lambda g: (g[0][::-1], g[1], g[2]))(F.linear.backward(c, dy)),
    # a forgotten bias gradient reduction axis
    "db off by one row": lambda c, dy: (lambda g: (g[0], g[1], g[2] - dy[0]))(
        F.linear.backward(c, dy)),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_harness_catches_a_broken_backward(mutation, dtype):
    spec = dataclasses.replace(SPECS["linear"],
                               ours=_mutant(F.linear, MUTATIONS[mutation], "linear"))
    res = run_case(spec, _linear_case(), dtype)
    assert not res.ok and "grad" in res.message
    assert run_case(SPECS["linear"], _linear_case(), dtype).ok


def test_harness_catches_dtype_promotion_and_input_mutation():
    def promoting_forward(input):
        return input * np.float64(1.0), None           # NumPy 2: float32 -> float64

    def mutating_forward(input):
        y = F.sigmoid(input)
        input += 1.0                                    # writes into the caller's array
        return y, (y,)

    def sig_backward(ctx, dy):
        return dy

    case = Case((np.random.default_rng(0).standard_normal(5),))
    promo = dataclasses.replace(SPECS["sigmoid"], ours=snn.defop(promoting_forward, sig_backward,
                                                                  name="sigmoid"))
    res = run_case(promo, case, "float32")
    assert not res.ok and "dtype" in res.message
    mut = dataclasses.replace(SPECS["sigmoid"], ours=snn.defop(mutating_forward, sig_backward,
                                                                name="sigmoid"))
    res = run_case(mut, case, "float64")
    assert not res.ok and "modified" in res.message


def test_float32_policy_falls_back_to_relative_error():
    hi = np.array([1.0, 2.0, 3.0])
    same = hi + 1e-3                                     # torch float32 is itself off by 1e-3
    ok, err = within(hi + 3e-3, same, hi, "float32", {})
    assert ok and err == pytest.approx(3e-3)
    ok, _ = within(hi + 5e-3, same, hi, "float32", {})
    assert not ok


def test_report_exit_codes(capsys):
    assert report.main(["linear", "sigmoid", "--examples", "3"]) == 0
    out = capsys.readouterr().out
    assert "linear" in out and "ok" in out and "FAIL" not in out
    broken = dataclasses.replace(
        SPECS["linear"], name="broken_linear_for_test",
        ours=_mutant(F.linear, MUTATIONS["permuted dx"], "linear"))
    REGISTRY[broken.name] = broken
    try:
        # enough cases that some batch has two rows (a one-row batch hides the permutation)
        assert report.main([broken.name, "--examples", "12", "--dtype", "float64"]) == 1
        out = capsys.readouterr().out
        assert "FAIL" in out and "worst at:" in out and "reproduce:" in out
    finally:
        del REGISTRY[broken.name]


def test_report_table_fits_100_columns_and_leaves_numpy_alone(capsys):
    before = np.geterr()
    assert report.main(["binary_cross_entropy_with_logits", "relu", "--examples", "2"]) == 0
    out, err = capsys.readouterr()
    assert np.geterr() == before                      # no global np.seterr
    assert err == ""
    lines = out.splitlines()
    assert all(len(line) <= 100 for line in lines), max(lines, key=len)
    assert lines[0].split()[-5:] == ["err/tol", "grad", "err", "err/tol", "verdict"]
    row = next(line for line in lines if line.startswith("binary_cross_entropy_with_logits"))
    assert row.split()[1] == "float32" and row.split()[-1] == "ok"


def test_comparison_names_the_worst_element_and_its_ratio_to_the_tolerance():
    from reference.harness import compare
    hi = np.array([[1.0, 2.0], [3.0, 4.0]])
    ours = hi.copy()
    ours[1, 0] += 1e-3
    c = compare(ours, hi, hi, "float64", {})
    assert not c.ok and c.index == (1, 0)
    assert (c.ours, c.torch, c.oracle) == (3.001, 3.0, 3.0)
    assert c.err == pytest.approx(1e-3) and c.rel == pytest.approx(1e-3 / 3)
    assert c.ratio == pytest.approx(1e-3 / (1e-7 + 3e-7))
    ok = compare(hi + 1e-8, hi, hi, "float64", {})
    assert ok.ok and ok.ratio <= 1
    assert compare(hi[0], hi, hi, "float64", {}).note.startswith("shape")


def test_a_suite_failure_carries_the_full_report():
    spec = dataclasses.replace(SPECS["linear"],
                               ours=_mutant(F.linear, MUTATIONS["permuted dx"], "linear"))
    res = run_case(spec, _linear_case(), "float32", seed=3)
    text = res.report()
    for field in ("check:", "argument:", "dtype:", "error:", "tolerance:", "worst at:",
                  "example:", "reproduce:"):
        assert field in text, text
    assert "argument 0 ('input')" in text and "float32 on cpu" in text
    assert "array([[" in text                          # the case shows its values
    assert res.message == text
