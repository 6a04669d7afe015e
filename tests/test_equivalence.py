"""Registry-driven equivalence: every registered op against torch, and against itself.

For every op in ``reference.REGISTRY``:

* forward values and every gradient equal torch's (float32 and float64; CPU, and CUDA where a
  GPU is present), over hypothesis-drawn configurations, in every value regime the op lists
  (``ties`` checks kink and tie conventions with exact kinks and repeated values);
* finite differences agree with the backward (``scratchnn.gradcheck``, float64, no torch);
* the same values in another memory layout (Fortran, strided, negative strides, read-only)
  give the same results;
* bad input is rejected with a ValueError/TypeError naming the function and the parameter.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scratchnn
from reference.harness import cast, check_reject, layouts, run_case
from reference.registry import load_all
from reference.values import seeds
from tests.conftest import examples

SPECS = load_all()
NAMES = sorted(SPECS)


def _check_against_torch(name: str, dtype: str, device: str) -> None:
    spec = SPECS[name]

    @settings(max_examples=examples(spec.examples))
    @given(data=st.data())
    def inner(data):
        regime = data.draw(st.sampled_from(spec.regimes), label="regime")
        case = data.draw(spec.cases(regime), label="case")
        res = run_case(spec, case, dtype, device, seed=data.draw(seeds, label="seed"))
        assert res.ok, f"{name} {dtype} {device} {case}: {res.message}"

    inner()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", NAMES)
def test_matches_torch(name, dtype):
    _check_against_torch(name, dtype, "cpu")


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", NAMES)
def test_matches_torch_cuda(name, dtype):
    _check_against_torch(name, dtype, "cuda")


@pytest.mark.parametrize("name", [n for n in NAMES if SPECS[n].gradcheck])
def test_gradcheck(name):
    spec = SPECS[name]

    @settings(max_examples=examples(0.4 * spec.examples))
    @given(case=spec.cases(spec.gradcheck_regime))
    def inner(case):
        assert scratchnn.gradcheck(spec.ours, case.args, case.kwargs, full_limit=96)

    inner()


@pytest.mark.parametrize("name", NAMES)
def test_layouts(name):
    """Non-contiguous, Fortran-order, negative-stride and read-only inputs: same results."""
    spec = SPECS[name]

    @settings(max_examples=examples(0.3 * spec.examples))
    @given(case=spec.cases(spec.regimes[0]), seed=seeds)
    def inner(case, seed):
        rng = np.random.default_rng(seed)
        base = cast(case.args, np.dtype(np.float32))
        for i, a in enumerate(base):
            if not (isinstance(a, np.ndarray) and a.dtype.kind == "f"):
                continue
            for layout, b in layouts(a, rng).items():
                args = base[:i] + (b,) + base[i + 1:]
                res = run_case(spec, case, "float32", "cpu", seed, args_override=args)
                assert res.ok, f"{name}: argument {i} {layout}: {res.message}"

    inner()


@pytest.mark.parametrize("name", [n for n in NAMES if SPECS[n].rejects])
def test_rejects_bad_input(name):
    spec = SPECS[name]
    problems = [f"{r.param}: {p}" for r in spec.rejects if (p := check_reject(spec, r))]
    assert not problems, "\n".join(problems)


def test_registry_is_not_empty():
    assert len(SPECS) >= 2
