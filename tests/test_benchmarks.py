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
    assert res["floor_rates"]["detail"]["copy_GB_per_s"] > 0 and res["floor_rates"]["gemms"]
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
        assert len(c["canary_s"]) == 2 and min(c["canary_s"]) > 0
        assert c["memory"]["scratchnn"]["peak_extra_bytes"] > 0
        assert isinstance(c["target_met"], bool)
        assert [t["kind"] for t in c["targets"]] == ["floor"]
        t = c["targets"][0]                              # the ratio's quartiles around it
        assert t["range"][0] <= t["value"] <= t["range"][1] and isinstance(t["near"], bool)
        fl = c["floor"]["fwdbwd"]
        assert fl["total_s"] > 0 and c["floor_ratio"]["fwdbwd"]["scratchnn"] > 0
        assert c["profile"]["entries"]                      # --profile all
        assert any(e["where"].startswith("scratchnn") for e in c["profile"]["lines"])
    lin = next(c for c in res["cases"] if c["op"] == "linear")
    assert lin["floor"]["fwdbwd"]["gemm_s"] > 0 and lin["flop_formula"]
    relu = next(c for c in res["cases"] if c["op"] == "relu")
    assert relu["floor"]["fwdbwd"]["gemm_s"] == 0 and relu["floor"]["fwdbwd"]["bytes"] > 0

    report = (out / "report.md").read_text()
    assert "| case |" in report and "relu" in report and "Where the time goes" in report
    assert "line by line" in report
    assert m["cpu_model"] in report
    assert (out / "ratios.png").read_bytes()[:8] == PNG_MAGIC
    printed = capsys.readouterr().out
    assert "×floor" in printed and "meet their targets" in printed
    assert "cases meet their targets" in report and "within the noise" in report
    assert "× torch [IQR]" in report and "× floor sn / torch" in report


def test_unknown_op_and_missing_cuda_are_clear_errors(tmp_path, capsys):
    assert main(["--ops", "no_such_op", "--out", str(tmp_path)]) == 2
    assert "unknown name(s) no_such_op" in capsys.readouterr().err
    import torch
    if not torch.cuda.is_available():
        assert main(["--ops", "relu", "--device", "cuda", "--out", str(tmp_path)]) == 2
        assert "--device cuda" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:                   # argparse's own exit status 2
        main(["--ops", "relu", "--rerun-slow", "-1", "--out", str(tmp_path)])
    assert e.value.code == 2 and "--rerun-slow must be >= 0" in capsys.readouterr().err


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
                  repeats=4, warmup=1, min_time=0.0, settle=0.0)
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
        assert c.floor_target == 2.0 and not bench_cases.missing_requirements(c)
        assert bench_cases.select([c.op], quick=False) == [c]
        sides = c.build(np.dtype(np.float32), False)
        assert set(sides) == {"scratchnn", "torch"}
        for side, (fwd, fwdbwd) in sides.items():
            fwd()
            grads = fwdbwd()
            assert len([g for g in grads if g is not None]) == 3, (c.name, side)


# -- floors, targets, peers, baseline, warnings, the terminal width ---------------------------

def test_every_case_has_a_floor_and_the_issue_targets():
    """Every case documents its floor; the 64→64 convolutions ≤ 1.5× floor, the teaching
    cases none, every other ≤ 2×; LSTM ≤ 1.3× torch; the DCGAN upsampling ≤ 1.5× torch."""
    from benchmarks.floors import Floor
    for c in bench_cases.CASES:
        assert isinstance(c.floor, Floor) and c.floor.text, c.name
        assert c.floor.fwdbwd.flops() >= c.floor.fwd.flops()
        if "naive" in c.name:
            assert c.targets() == []
        elif "64→64" in c.name:
            assert c.floor_target == 1.5
        else:
            assert c.floor_target == 2.0, c.name
        if c.flops_fwdbwd and c.floor.fwdbwd.gemms:      # the floor counts the same products
            assert c.floor.fwdbwd.flops() == pytest.approx(c.flops_fwdbwd), c.name
    by = {c.name: c for c in bench_cases.CASES}
    assert by["LSTM T=50 B=32 128→256"].torch_target == 1.3
    dc = by["conv_transpose2d 64→32 16×16 s2 k4 (DCGAN)"]
    assert dc.torch_target == 1.5 and bench_cases.select(["dcgan"], False) == [dc]
    step = by["ConvNet training step"].floor
    assert len(step.fwdbwd.gemms) == 2 + 3 + 3 + 3 and step.fwdbwd.elems > step.fwd.elems


def test_floor_rates_and_program_on_tiny_shapes():
    import numpy as np
    from benchmarks import floors
    r = floors.Rates(np.float32, 2, quick=True)
    assert r.copy_bytes_per_s > 0 and r.exp_per_s > 0 and r.rand_per_s > 0
    w = floors.linear_work(8, 16, 4)
    assert w.fwdbwd.flops() == 3 * w.fwd.flops() == 3 * 2 * 8 * 16 * 4
    t = r.time(w.fwdbwd)
    assert t["total_s"] == pytest.approx(t["gemm_s"]) and t["memory_s"] == 0
    assert t["total_s"] == t["estimate_s"]
    assert r.time(w.fwdbwd, measured_s=0.5)["total_s"] == 0.5      # the interleaved median
    (probe,) = r.program(w.fwdbwd)                                # products only
    probe.begin_sample()
    probe()
    probe.end_sample()
    assert probe.passes == [] and probe.seconds() > 0
    assert r.program(floors.Work()) == []
    e = r.time(floors.elementwise(1000, 1).fwdbwd)
    assert e["bytes"] == 5 * 1000 * 4 and e["exp_s"] > 0 and e["gemm_s"] == 0
    assert t["flops"] == w.fwdbwd.flops()


@pytest.mark.parametrize("split", [False, True])
def test_floor_probe_runs_the_rate_kernels_and_scales_them(split):
    """Each call of a case's floor probe runs its products and one whole pass of each rate
    kernel the work needs (on one thread or split), and records each part's time; the floor
    is the products' median plus each kernel's median scaled to the work's amount."""
    import numpy as np
    from benchmarks import floors
    r = floors.Rates(np.float32, 2, quick=True)
    r._split = dict.fromkeys(("copy", "exp", "rand"), split)
    dst, src = r._bufs["copy"]
    y, x = r._bufs["exp"]
    (rnd,) = r._bufs["rand"]
    dst[:], y[:], rnd[:] = 0, 0, -1
    work = floors.gemm(4, 8, 2, count=3) + floors.moved(elems=len(src), exp=len(x) // 2)
    gemms, probe = r.program(work)                 # apart: the copy would evict the operands
    assert len(gemms.gemms) == 1 and gemms.passes == [] and probe.gemms == []
    probe()                                                        # outside a sample
    assert probe.records == []
    probe.begin_sample()
    probe()
    probe()
    probe.end_sample()
    assert (dst == src).all()
    np.testing.assert_array_equal(y, np.exp(x))
    assert (rnd == -1).all()                                       # no draws counted
    assert [name for name, _ in probe.passes] == ["copy", "exp"]
    assert len(probe.records) == 1 and len(probe.records[0]) == 3     # one sample, 3 parts
    probe.records = [[0.0, 4.0, 2.0], [0.0, 6.0, 2.0], [0.0, 5.0, 8.0]]
    # medians 5 and 2; the copy moves half the buffer's length twice (read + write): 5 × 0.5
    assert probe.seconds() == pytest.approx(5.0 * 0.5 + 2.0 * 0.5)
    assert r.program(floors.moved(rand=10))[0].passes == [("rand", 10 / len(rnd))]


def _fake(name, med, q1, q3, torch_med=1.0):
    t = {"median_s": med, "q1_s": q1, "q3_s": q3, "iqr_s": q3 - q1}
    tt = {"median_s": torch_med, "q1_s": torch_med, "q3_s": torch_med, "iqr_s": 0.0}
    return {"name": name, "status": "ok", "times": {"fwdbwd": {"scratchnn": t, "torch": tt}}}


def test_verdicts_within_the_noise_are_marked():
    """A target whose limit lies inside its ratio's interquartile range is 'near'; a case's
    verdict is marked * when the noise could flip it: met with a near target, or missed
    with every missed target near; a clearly missed target keeps the verdict unmarked."""
    from benchmarks.report import _targets_cell, target_verdict, targets_summary, verdict_near
    met_near = target_verdict("floor", 2.0, 1.7, (1.6, 2.1))         # limit inside the IQR
    met_clear = target_verdict("floor", 2.0, 1.7, (1.65, 1.75))
    missed_near = target_verdict("torch", 1.3, 1.4, (1.39, 1.41))     # within 10 % of 1.3
    missed_clear = target_verdict("torch", 1.3, 1.8, (1.7, 1.9))
    assert (met_near["met"], met_near["near"]) == (True, True)
    assert (met_clear["met"], met_clear["near"]) == (True, False)
    assert (missed_near["met"], missed_near["near"]) == (False, True)
    assert (missed_clear["met"], missed_clear["near"]) == (False, False)
    assert target_verdict("floor", 2.0, 1.85, (1.84, 1.86))["near"] is True
    assert target_verdict("floor", 2.0, 1.75, (1.74, 1.76))["near"] is False
    assert target_verdict("floor", 2.0, 1.9, (1.8, 2.1), applies=False)["met"] is None
    assert target_verdict("floor", 2.0, None, None)["near"] is False

    def case(*ts):
        return {"targets": list(ts), "target_met": all(t["met"] for t in ts)}
    assert verdict_near(case(met_clear, met_near)) and not verdict_near(case(met_clear))
    assert verdict_near(case(met_clear, missed_near))
    assert not verdict_near(case(met_near, missed_clear))
    assert not verdict_near(case(missed_near, missed_clear))
    assert _targets_cell(case(met_near), short=True)[1] == "yes*"
    assert _targets_cell(case(met_clear), short=True)[1] == "yes"
    assert _targets_cell(case(met_clear, missed_near), short=True)[1] == "MISS T*"
    assert _targets_cell(case(met_clear, missed_near))[1] == "MISSED torch*"
    assert _targets_cell(case(missed_clear))[1] == "MISSED torch"
    cases = [case(met_near), case(met_clear), case(missed_clear), {"target_met": None}]
    assert targets_summary(cases) == ("2/3 cases meet their targets "
                                      "(1 verdict(s) within the noise, marked *)")
    assert targets_summary(cases[1:3]) == "1/2 cases meet their targets"


def test_baseline_verdicts_and_exit_status(tmp_path, capsys):
    """slower beyond 10 % + the noise -> a regression; within it -> same; faster likewise;
    cases only in one run are skipped; main() exits 3 on a regression, 2 on a bad file."""
    from benchmarks.report import baseline_verdicts, format_baseline
    old = {"cases": [_fake("a", 1.0, 0.99, 1.01), _fake("b", 1.0, 0.99, 1.01),
                     _fake("c", 1.0, 0.99, 1.01), _fake("d", 1.0, 0.8, 1.2),
                     _fake("gone", 1.0, 1.0, 1.0)]}
    new = {"cases": [_fake("a", 1.2, 1.19, 1.21), _fake("b", 1.05, 1.04, 1.06),
                     _fake("c", 0.8, 0.79, 0.81), _fake("d", 1.2, 1.19, 1.21),
                     _fake("new", 1.0, 1.0, 1.0)]}
    v = {x["name"]: x["verdict"] for x in baseline_verdicts(new, old)}
    assert v == {"a": "slower", "b": "same", "c": "faster", "d": "same"}   # d: noisy baseline
    assert "1 regression(s)" in format_baseline(baseline_verdicts(new, old))
    assert "target verdict" not in format_baseline(baseline_verdicts(new, old))
    old["cases"][1]["target_met"], new["cases"][1]["target_met"] = True, False
    old["cases"][2]["target_met"], new["cases"][2]["target_met"] = False, False
    text = format_baseline(baseline_verdicts(new, old))
    assert "1 target verdict(s) differ from the baseline's: b (met → missed)" in text
    assert baseline_verdicts(new, old, threshold=0.5)[0]["verdict"] == "same"

    import json
    out = tmp_path / "run"
    args = ["--ops", "relu", "--quick", "--repeats", "1", "--warmup", "1", "--settle", "0",
            "--min-time", "0", "--profile", "none", "--threads", "1", "--out", str(out)]
    assert main(args) == 0
    res = json.loads((out / "results.json").read_text())
    fast = json.loads(json.dumps(res))                       # a baseline 100× faster
    for side in fast["cases"][0]["times"]["fwdbwd"].values():
        for k in ("median_s", "q1_s", "q3_s", "min_s"):
            side[k] /= 100
        side["iqr_s"] /= 100
    (tmp_path / "fast.json").write_text(json.dumps(fast))
    capsys.readouterr()
    assert main(args + ["--baseline", str(tmp_path / "fast.json")]) == 3
    assert "regression" in capsys.readouterr().out
    (tmp_path / "bad.json").write_text("[1, 2]")
    assert main(args + ["--baseline", str(tmp_path / "bad.json")]) == 2
    assert main(args + ["--baseline", str(tmp_path / "missing.json")]) == 2


def test_terminal_table_fits_100_columns(tmp_path, capsys):
    """The short table, warnings aside, never exceeds 100 columns, even with long names and
    the peer columns; the markdown table keeps the full names."""
    from benchmarks.report import format_table
    rows = [["a case name far longer than anything a terminal has room for, really"]
            + ["12345"] * 9, ["short", "UNAVAILABLE: " + "x" * 200]]
    text = format_table(["case"] + [f"col{i}" for i in range(9)], rows, max_width=100)
    assert max(len(line) for line in text.splitlines()) <= 100 and "…" in text
    assert main(["--ops", "linear,relu,conv2d", "--quick", "--repeats", "1", "--warmup", "1",
                 "--settle", "0", "--min-time", "0", "--profile", "none", "--peers",
                 "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    table = printed.split("\n\n")[0]
    assert "×floor" in table and max(len(line) for line in table.splitlines()) <= 100


def test_peers_are_checked_against_torch_before_timing(tmp_path):
    """--peers: an installed peer is timed only on cases with its op and only after its
    forward matched torch's; a wrong forward is reported as a mismatch, never timed."""
    import json
    import numpy as np
    from benchmarks import peers
    ok, detail = peers.forward_check(np.ones(3), np.ones(3), np.float32)
    assert ok and "max" in detail
    assert not peers.forward_check(np.ones(3) * 1.01, np.ones(3), np.float32)[0]
    assert not peers.forward_check(np.ones(3), np.ones(4), np.float32)[0]
    assert set(peers.LEFT_OUT) >= {"tinygrad", "chainer"}
    if "mygrad" not in peers.available():
        pytest.skip("mygrad not installed (pip install '.[peers]')")
    relu = next(c for c in bench_cases.CASES if c.name == "relu")
    fwd, fwdbwd, value = peers.build("mygrad", relu, np.dtype(np.float32), (64, 65536))
    assert value().shape == (64, 65536) and fwdbwd()[0].shape == (64, 65536)
    lstm = next(c for c in bench_cases.CASES if c.op == "lstm")
    assert peers.build("mygrad", lstm, np.dtype(np.float32), ()) is None

    orig = peers.PEERS["mygrad"].ops["relu"]

    def wrong(args, kwargs, dout):                  # a peer whose relu is off by one
        f, fb, v = orig(args, kwargs, dout)
        return f, fb, lambda: v() + 1.0
    peers.PEERS["mygrad"].ops["relu"] = wrong
    try:
        assert main(["--ops", "relu", "--quick", "--repeats", "1", "--warmup", "1",
                     "--settle", "0", "--min-time", "0", "--profile", "none", "--peers",
                     "--out", str(tmp_path)]) == 0
    finally:
        peers.PEERS["mygrad"].ops["relu"] = orig
    rec = json.loads((tmp_path / "results.json").read_text())["cases"][0]["peers"]["mygrad"]
    assert rec["status"] == "mismatch" and "time" not in rec
    assert "mismatch" in (tmp_path / "report.md").read_text()


def test_warnings_busy_machine_and_slow_blas_kernel():
    from benchmarks.machine import blas_warnings, load_warnings
    assert load_warnings((0.1,), (1.9,), 2, 2) == []
    assert len(load_warnings((1.5,), (3.5,), 2, 2)) == 2
    avx512 = {"avx2", "avx512f"}
    blas = [{"internal_api": "openblas", "architecture": "Haswell"}]
    assert "AVX-512" in blas_warnings(blas, avx512, {})[0]
    assert blas_warnings([{"internal_api": "openblas", "architecture": "SkylakeX"}],
                         avx512, {}) == []
    assert "OPENBLAS_CORETYPE" in blas_warnings([], avx512, {"OPENBLAS_CORETYPE": "Haswell"})[0]


def test_canary_names_the_cases_around_which_the_host_ran_slow():
    """The canary runs its fixed workload and returns a positive median; the warning names
    the cases whose slower canary exceeds 1.25× the run's fastest, none when all agree (no
    timing is asserted: the values are given)."""
    from benchmarks.machine import CANARY_WARN, Canary, canary_warnings
    c = Canary(products=2)
    assert c.time(calls=2) > 0 and c.o.any()
    assert canary_warnings({"a": [0.015, 0.016], "b": [0.0155, 0.015], "c": None}) == []
    (w,) = canary_warnings({"a": [0.015, 0.016], "b": [0.015, 0.022], "c": [0.021, 0.020]})
    assert "2 case(s)" in w and "b, c" in w and "1.47×" in w and "a," not in w
    assert canary_warnings({"a": [0.01, CANARY_WARN * 0.01]}) == []       # at the limit: no
    assert canary_warnings({}) == []


def test_warnings_cpu_time_stolen_by_the_hypervisor():
    """Steal from /proc/stat: the share between two samples, a warning above 5 % naming the
    cases above 10 %, none on a quiet run."""
    from benchmarks.machine import cpu_times, steal_fraction, steal_warnings
    assert steal_fraction((10, 1000), (40, 1100)) == pytest.approx(0.3)
    assert steal_fraction(None, (40, 1100)) is None
    assert steal_fraction((10, 1000), (10, 1000)) is None
    assert steal_warnings(0.01, {"relu": 0.5}) == []
    (w,) = steal_warnings(0.3, {"relu": 0.5, "tanh": 0.06, "gelu": None})
    assert "30 %" in w and "relu" in w and "tanh" not in w
    now = cpu_times()
    if now is not None:                                       # Linux
        stolen, total = now
        assert 0 <= stolen <= total


@pytest.fixture
def clock(monkeypatch):
    """A fake clock for benchmarks.timing: time passes only when a call or a sleep says so."""
    from benchmarks import timing

    class Clock:
        now = 0.0

        def perf_counter(self):
            return self.now

        def sleep(self, s):
            self.now += s
    fake = Clock()
    monkeypatch.setattr(timing, "time", fake)
    return fake


def test_warm_up_continues_until_two_calls_agree(clock):
    """A fake clock: the calls take 30, 10, 3, 3 ms, ... — warm-up goes on until two calls
    agree within 10 %, then the one sample is taken."""
    delays = iter([0.03, 0.01, 0.003, 0.003] + [0.003] * 50)
    calls = []

    def slow_first():
        calls.append(1)
        clock.now += next(delays)
    compare({"a": slow_first}, repeats=1, warmup=1, min_time=0.0, settle=0)
    assert len(calls) == 4 + 1                    # 4 warm calls until stable, then one sample


@pytest.mark.parametrize("name", ["MultiheadAttention fwd+bwd", "GPT training step",
                                  "conv_transpose2d 64→32 16×16 s2 k4 (DCGAN)"])
def test_new_cases_build_and_both_sides_agree(name):
    """The cases added with the floors (attention, the GPT step, the DCGAN upsampling): each
    side's forward and forward+backward run once; the two sides' forwards agree."""
    import numpy as np
    from benchmarks.cli import _first_array
    case = next(c for c in bench_cases.CASES if c.name == name)
    if bench_cases.missing_requirements(case):
        pytest.skip(f"not in scratchnn yet: {bench_cases.missing_requirements(case)}")
    sides = case.build(np.dtype(np.float32), False)
    fwd = {s: _first_array(f()) for s, (f, _) in sides.items()}
    np.testing.assert_allclose(fwd["scratchnn"], fwd["torch"], rtol=1e-3, atol=1e-4)
    for side, (_, fwdbwd) in sides.items():
        assert fwdbwd() is not None, side


@pytest.mark.parametrize("settle, idle, extra", [(0.0, 0.0, 0), (0.0005, 0.0, 1),
                                                (0.0035, 0.0, 4), (0.0035, 0.2, 4)])
def test_each_switch_is_followed_by_untimed_calls(clock, settle, idle, extra):
    """A fake clock, every call 1 ms: whenever the side changes, the next side runs untimed for
    ``settle`` seconds (at least one call when settle > 0) before its timed sample, after
    ``idle`` seconds of sleep, and only then; the samples keep their own ``number`` of calls."""
    calls = {"a": 0, "b": 0}
    slept = []

    def side(name):
        def fn():
            calls[name] += 1
            clock.now += 0.001
        return fn
    clock.sleep = lambda s: (slept.append(s), setattr(clock, "now", clock.now + s))
    res = compare({"a": side("a"), "b": side("b")}, repeats=2, warmup=1, min_time=0.002,
                  settle=settle, idle=idle, max_extra_warmup=0)
    number = res["a"][1]
    assert number == 2 and res["b"][1] == 2
    # order a, b, b, a: a switch before the 1st, 2nd and 4th sample (none between the two b's)
    assert calls["a"] == 1 + 2 * number + 2 * extra
    assert calls["b"] == 1 + 2 * number + 1 * extra
    assert slept == ([idle] * 3 if idle else [])


def test_a_side_with_sample_hooks_sees_only_its_timed_calls(clock):
    """compare calls a side's begin_sample/end_sample around each timed sample only: the
    warm-up and settling calls fall outside them (the floor probe records only timed calls)."""
    log = []

    class Side:
        def __call__(self):
            log.append("call")
            clock.now += 0.001

        def begin_sample(self):
            log.append("begin")

        def end_sample(self):
            log.append("end")
    compare({"a": Side(), "b": lambda: setattr(clock, "now", clock.now + 0.001)}, repeats=2,
            warmup=1, min_time=0.002, settle=0.0015, max_extra_warmup=0)
    # warm-up call; then per sample of side a: 2 settling calls, begin, 2 timed calls, end
    assert log == ["call"] + ["call", "call", "begin", "call", "call", "end"] * 2

def test_a_measurement_with_the_faster_canary_is_kept():
    """Of two attempts at a case, the one whose slower canary was faster is kept, with every
    attempt's canary times and their count."""
    from benchmarks.machine import keep_faster_canary
    a = {"name": "x", "canary_s": [0.015, 0.030], "t": "first"}
    b = {"name": "x", "canary_s": [0.016, 0.017], "t": "second"}
    kept = keep_faster_canary(a, b)
    assert kept["t"] == "second" and kept["attempts"] == 2
    assert kept["canary_attempts"] == [[0.015, 0.030], [0.016, 0.017]]
    c = {"name": "x", "canary_s": [0.020, 0.025], "t": "third"}
    again = keep_faster_canary(kept, c)
    assert again["t"] == "second" and again["attempts"] == 3
    assert again["canary_attempts"][-1] == [0.020, 0.025] and again["canary_s"] == [0.016, 0.017]
    failed = {"name": "x", "canary_s": [0.010, 0.010], "status": "error", "t": "failed"}
    assert keep_faster_canary(again, failed)["t"] == "second"         # never an error


@pytest.mark.parametrize("reruns", [0, 1])
def test_cases_the_canary_flags_are_measured_again(tmp_path, capsys, monkeypatch, reruns):
    """A scripted canary says the host ran slow after the first case: with ``--rerun-slow 1``
    that case is measured again at the end (its second attempt, with a fast canary, is kept
    and no warning is left); with 0 it keeps its one attempt and the warning names it."""
    import benchmarks.machine as machine
    script = iter([0.010, 0.020,      # linear: slow after it
                   0.010, 0.010,      # relu
                   0.010, 0.011])     # linear again
    monkeypatch.setattr(machine.Canary, "time", lambda self, calls=3: next(script))
    out = tmp_path / "bench"
    status = main(["--ops", "linear,relu", "--quick", "--repeats", "1", "--warmup", "1",
                   "--settle", "0", "--min-time", "0", "--threads", "1", "--profile", "none",
                   "--rerun-slow", str(reruns), "--out", str(out)])
    assert status == 0
    res = json.loads((out / "results.json").read_text())
    lin, relu = res["cases"]
    assert relu.get("attempts", 1) == 1 and relu["canary_s"] == [0.010, 0.010]
    slow_warning = [w for w in res["warnings"] if "canary" in w]
    if reruns:
        assert lin["attempts"] == 2 and lin["canary_s"] == [0.010, 0.011]
        assert lin["canary_attempts"] == [[0.010, 0.020], [0.010, 0.011]]
        assert lin["status"] == "ok" and lin["times"]["fwdbwd"]["scratchnn"]["median_s"] > 0
        assert not slow_warning
    else:
        assert lin.get("attempts", 1) == 1 and lin["canary_s"] == [0.010, 0.020]
        (w,) = slow_warning
        assert lin["name"] in w and "after measuring" not in w
