"""The textbook editions (``scratchnn.textbook``), proved twice.

For every op in the registry:

* the textbook edition equals torch through the same harness as the fast engines (values and
  every gradient, float32 and float64, every value regime the op lists);
* the textbook edition equals the fast edition: the same case, the same random upstream
  gradient, each route of the fast engine forced in turn (``ROUTES`` in the engine's module:
  a route name mapped to the module settings that force it).

Where an op is already plain, ``scratchnn.functional`` names the textbook's own function, and
there is nothing to compare: :func:`test_plain_ops_are_one_function` checks that it really is
the same object.
"""
from __future__ import annotations

import copy
import importlib
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scratchnn
import scratchnn.functional as F
import scratchnn.textbook as T
from reference.harness import cast, check_reject, run_case
from reference.registry import edition, load_all
from reference.values import seeds
from tests.conftest import examples

SPECS = load_all()
NAMES = sorted(SPECS)


def _is_twin(name: str) -> bool:
    """True where the textbook edition is a function of its own (not the fast one itself)."""
    spec = SPECS[name]
    return edition(spec, "textbook") is not spec.ours


TWINS = [n for n in NAMES if _is_twin(n)]


def engine_module(name: str):
    """The module of the fast engine behind registry op ``name``."""
    return sys.modules[getattr(F, name).forward.__module__]


def routes(name: str) -> dict[str, dict]:
    """The engine's forced routes: ``{route: {setting: value}}``; a setting without a dot is an
    attribute of the engine module, a dotted one ``package.module.ATTR``."""
    return getattr(engine_module(name), "ROUTES", None) or {"default": {}}


def force(monkeypatch, name: str, settings_: dict) -> None:
    mod = engine_module(name)
    for key, value in settings_.items():
        if "." in key:
            path, attr = key.rsplit(".", 1)
            monkeypatch.setattr(importlib.import_module(path), attr, value)
        else:
            monkeypatch.setattr(mod, key, value)


def test_every_functional_op_has_a_textbook_edition():
    ops = [n for n in dir(F) if scratchnn.is_op(getattr(F, n))]
    missing = [n for n in ops if not scratchnn.is_op(getattr(T, n, None))]
    assert not missing, f"no scratchnn.textbook edition for {missing}"


def test_plain_ops_are_one_function():
    """An op that is already plain lives once: both namespaces name one object, and it is the
    textbook's (defined in scratchnn/textbook/)."""
    shared = [n for n in dir(F) if scratchnn.is_op(getattr(F, n)) and getattr(F, n) is getattr(T, n, None)]
    assert shared, "expected some plain ops (linear, softsign, softmin) to live once"
    for n in shared:
        assert getattr(T, n).forward.__module__.startswith("scratchnn.textbook."), n
    for n in ("linear", "softsign", "softmin"):
        assert getattr(F, n) is getattr(T, n), f"{n} is plain: it must live once"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", TWINS)
def test_textbook_matches_torch(name, dtype):
    spec = SPECS[name]

    @settings(max_examples=examples(spec.examples))
    @given(data=st.data())
    def inner(data):
        regime = data.draw(st.sampled_from(spec.regimes), label="regime")
        case = data.draw(spec.cases(regime), label="case")
        res = run_case(spec, case, dtype, "cpu", seed=data.draw(seeds, label="seed"),
                       impl="textbook")
        assert res.ok, f"textbook {name} {dtype} {case}: {res.message}"

    inner()


def _flat(out):
    return list(out) if isinstance(out, tuple) else [out]


def _leaves(g):
    if isinstance(g, tuple):
        return [e for x in g for e in _leaves(x)]
    return [g]


def _close(a, b, dtype: str, what: str) -> None:
    if a is None or b is None:
        assert a is None and b is None, f"{what}: one edition gave None"
        return
    assert a.shape == b.shape and a.dtype == b.dtype, \
        f"{what}: {a.shape} {a.dtype} vs {b.shape} {b.dtype}"
    if a.dtype.kind != "f":
        np.testing.assert_array_equal(a, b, err_msg=what)
        return
    scale = float(np.max(np.abs(np.nan_to_num(b, posinf=0, neginf=0)), initial=1.0))
    rtol, atol = (1e-9, 1e-10 * scale) if dtype == "float64" else (2e-5, 2e-5 * scale)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, equal_nan=True, err_msg=what)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", TWINS)
def test_textbook_equals_fast(name, dtype, monkeypatch):
    """Same case, same upstream gradient: the fast edition on each of its routes equals the
    textbook edition, values and every gradient."""
    spec = SPECS[name]
    book = edition(spec, "textbook")
    dt = np.dtype(dtype)

    @settings(max_examples=examples(0.5 * spec.examples))
    @given(data=st.data())
    def inner(data):
        regime = data.draw(st.sampled_from(spec.regimes), label="regime")
        case = data.draw(spec.cases(regime), label="case")
        rng = np.random.default_rng(data.draw(seeds, label="seed"))
        args, kwargs = cast(case.args, dt), cast(case.kwargs, dt)
        scratchnn.manual_seed(1234)               # dropout: both editions draw one mask
        out_b, pull_b = scratchnn.vjp(book, *args, **copy.deepcopy(kwargs))
        douts = [rng.standard_normal(o.shape).astype(dt)
                 if isinstance(o, np.ndarray) and o.dtype.kind == "f" else None
                 for o in _flat(out_b)]
        dout = tuple(douts) if isinstance(out_b, tuple) else douts[0]
        g_b = pull_b(dout)
        for route, how in routes(name).items():
            with monkeypatch.context() as m:
                force(m, name, how)
                scratchnn.manual_seed(1234)
                out_f, pull_f = scratchnn.vjp(spec.ours, *args, **copy.deepcopy(kwargs))
                g_f = pull_f(dout)
            where = f"{name} {dtype} route {route!r} {case}"
            for k, (a, b) in enumerate(zip(_flat(out_f), _flat(out_b))):
                _close(a, b, dtype, f"{where}: output {k}")
            for i, (a, b) in enumerate(zip(g_f, g_b)):
                for a_, b_ in zip(_leaves(a), _leaves(b)):
                    _close(a_, b_, dtype, f"{where}: gradient of argument {i}")

    inner()


def test_routes_name_real_settings():
    """Every forced route names settings that exist (a renamed switch must not go unnoticed)."""
    for name in TWINS:
        mod = engine_module(name)
        for route, how in routes(name).items():
            for key in how:
                path, attr = key.rsplit(".", 1) if "." in key else (mod.__name__, key)
                assert hasattr(importlib.import_module(path), attr), \
                    f"{mod.__name__}.ROUTES[{route!r}] names missing setting {key}"


@pytest.mark.parametrize("name", [n for n in TWINS if SPECS[n].rejects])
def test_textbook_rejects_bad_input_like_the_fast_edition(name):
    spec = SPECS[name]
    problems = [f"{r.param}: {p}" for r in spec.rejects
                if (p := check_reject(spec, r, impl="textbook"))]
    assert not problems, "\n".join(problems)
