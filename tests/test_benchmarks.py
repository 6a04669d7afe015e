"""Smoke test of ``python -m benchmarks``: a tiny --quick run writes well-formed outputs.

No timing assertion anywhere: the numbers depend on the machine and its load; only the
structure of results.json / report.md / ratios.png and the selection logic are checked.
"""
from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("tqdm")
pytest.importorskip("matplotlib")
pytest.importorskip("threadpoolctl")

from benchmarks import cases as bench_cases  # noqa: E402
from benchmarks.cli import main  # noqa: E402
from benchmarks.timing import compare, paired_ratio, stats  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_quick_run_writes_results_report_and_plot(tmp_path, capsys):
    out = tmp_path / "bench"
    status = main(["--ops", "linear,relu", "--quick", "--repeats", "1", "--warmup", "1",
                   "--settle", "0",
                   "--min-time", "0", "--threads", "1", "--profile", "all", "--out", str(out)])
    assert status == 0
    res = json.loads((out / "results.json").read_text())
    assert set(res) >= {"schema", "machine", "config", "peak", "cases"}
    m = res["machine"]
    for key in ("cpu_model", "logical_cores", "threads", "numpy", "torch", "blas", "date"):
        assert key in m
    assert m["threads"] == 1 and res["config"]["quick"] is True
    assert res["peak"]["peak_gflops"] > 0
    names = [c["name"] for c in res["cases"]]
    assert any(n.startswith("linear") for n in names) and "relu" in names
    assert len(names) == 2
    for c in res["cases"]:
        assert c["status"] == "ok", c.get("error")
        for mode in ("fwd", "fwdbwd"):
            for side in ("scratchnn", "torch"):
                t = c["times"][mode][side]
                assert t["median_s"] > 0 and t["repeats"] == 1
            assert c["ratio"][mode]["median"] > 0
        assert c["memory"]["scratchnn"]["method"] == "tracemalloc"
        assert c["memory"]["scratchnn"]["peak_extra_bytes"] > 0
        assert isinstance(c["target_met"], bool)
        assert c["profile"]["entries"]                      # --profile all
        assert any(e["where"].startswith("scratchnn") for e in c["profile"]["lines"])
    lin = next(c for c in res["cases"] if c["op"] == "linear")
    assert lin["gflops"]["fwdbwd"]["scratchnn"] > 0 and lin["flop_formula"]

    report = (out / "report.md").read_text()
    assert "| case |" in report and "relu" in report and "Where the time goes" in report
    assert "line by line" in report
    assert m["cpu_model"] in report
    assert (out / "ratios.png").read_bytes()[:8] == PNG_MAGIC
    printed = capsys.readouterr().out
    assert "f+b × [IQR]" in printed and "targets met" in printed


def test_unknown_op_and_missing_cuda_are_clear_errors(tmp_path, capsys):
    assert main(["--ops", "no_such_op", "--out", str(tmp_path)]) == 2
    assert "unknown name(s) no_such_op" in capsys.readouterr().err
    import torch
    if not torch.cuda.is_available():
        assert main(["--ops", "relu", "--device", "cuda", "--out", str(tmp_path)]) == 2
        assert "--device cuda" in capsys.readouterr().err


def test_selection_quick_subset_and_every_listed_family_present():
    all_cases = bench_cases.select(None, quick=False)
    quick = bench_cases.select(None, quick=True)
    assert 0 < len(quick) < len(all_cases)
    ops = {c.op for c in all_cases}
    assert ops >= {"linear", "conv2d", "conv_transpose2d", "max_pool2d", "min_pool2d",
                   "avg_pool2d", "lstm", "gru", "relu", "tanh", "sigmoid",
                   "log_softmax+nll_loss", "dropout", "convnet"}
    assert [c.name for c in bench_cases.select(["pooling"], False)] == \
        [c.name for c in all_cases if c.family == "pooling"]
    assert len({c.name for c in all_cases}) == len(all_cases)


def test_interleaved_compare_and_paired_ratio():
    calls = []
    res = compare({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                  repeats=4, warmup=1, min_time=0.0)
    assert calls == ["a", "b"] + ["a", "b", "b", "a"] * 2      # warm-up, then ABBA order
    assert [len(res[s][0]) for s in "ab"] == [4, 4]
    s = stats([1.0, 2.0, 3.0, 4.0, 100.0])
    assert s.median == 3.0 and s.q1 == 2.0 and s.q3 == 4.0 and s.iqr == 2.0
    assert paired_ratio([2.0, 4.0, 6.0], [1.0, 1.0, 2.0]) == (3.0, 2.5, 3.5)


def test_scaling_reports_every_size_and_refuses_bad_arguments(tmp_path, capsys):
    """``python -m benchmarks.scaling``: one ratio per size and one for GEMMs, all positive and
    finite (no timing assertion: the values describe the machine), JSON written; bad sizes
    are refused by the argument parser."""
    import math

    from benchmarks.scaling import main as scaling_main
    out = tmp_path / "scaling.json"
    res = scaling_main(["--sizes", "16,64", "--rounds", "1", "--json", str(out)])
    assert set(res["copy"]) == {16.0, 64.0} and set(res["us_per_call"]) == {16.0, 64.0}
    for v in (*res["copy"].values(), res["gemm"]):
        assert v > 0 and math.isfinite(v)
    assert json.loads(out.read_text())["threads"] == 2
    assert "GEMM" in capsys.readouterr().out
    for bad in (["--sizes", "a,b"], ["--sizes", "0"], ["--threads", "0"]):
        with pytest.raises(SystemExit):
            scaling_main(bad)


def test_normalization_cases_are_listed_and_build():
    """batch_norm 2d (32, 64, 32×32) and layer_norm (4096×768): selectable by op, family and
    alias, target ≤ 2× torch, their ops present; each side's forward+backward runs (on the
    real shapes: a single call each, no timing)."""
    import numpy as np
    cases = bench_cases.select(["normalization"], quick=False)
    assert {c.name for c in cases} == {"batch_norm 2d", "layer_norm 768"}
    for c in cases:
        assert c.target == 2.0 and not bench_cases.missing_requirements(c)
        assert bench_cases.select([c.op], quick=False) == [c]
        sides = c.build(np.dtype(np.float32), False)
        assert set(sides) == {"scratchnn", "torch"}
        for side, (fwd, fwdbwd) in sides.items():
            fwd()
            grads = fwdbwd()
            assert len([g for g in grads if g is not None]) == 3, (c.name, side)
