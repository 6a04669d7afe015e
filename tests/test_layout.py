"""The layout tells the architecture, and these tests keep it so.

* What may import what: the contract layer imports nothing above it; ``scratchnn.textbook`` and
  ``scratchnn.perf`` import only the contract layer; ``import scratchnn`` never imports torch.
* A learner who steps through a textbook op (forward and backward, in a debugger) visits only
  functions of ``scratchnn/textbook/`` and of the contract layer — no thread pool, no cache, no
  route — and the convolution's input gradient visits the transposed convolution by name.
* Every fast engine's docstring opens with its formula and names its textbook twin.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import scratchnn
import scratchnn.textbook as T

PKG = Path(scratchnn.__file__).resolve().parent
CONTRACT = {"autodiff", "_validate", "window", "random", "gradcheck"}


def _imports(path: Path) -> set[str]:
    """The scratchnn modules a file imports, dotted and relative to ``scratchnn`` (``from . import
    x`` counts as module ``x`` of the package)."""
    package = list(path.relative_to(PKG).parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
            elif node.module and node.module.split(".")[0] == "scratchnn":
                base = []
                node = ast.ImportFrom(node.module.removeprefix("scratchnn").lstrip(".") or None,
                                      node.names, 1)
            else:
                continue
            if node.module:
                found.add(".".join(base + [node.module]))
            else:
                found |= {".".join(base + [a.name]) for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("scratchnn.") for a in node.names
                      if a.name.startswith("scratchnn.")}
    return found


def _top(mod: str) -> str:
    return mod.split(".")[0]


@pytest.mark.parametrize("path", sorted(PKG.glob("*.py")), ids=lambda p: p.name)
def test_contract_layer_imports_nothing_above_it(path):
    if path.stem not in CONTRACT:
        return
    bad = {m for m in _imports(path) if _top(m) not in CONTRACT}
    assert not bad, f"{path.name} (contract layer) imports {bad}"


@pytest.mark.parametrize("pkg", ["textbook", "perf"])
def test_textbook_and_perf_import_only_the_contract_layer(pkg):
    bad = {}
    for path in sorted((PKG / pkg).glob("*.py")):
        wrong = {m for m in _imports(path) if _top(m) not in CONTRACT | {pkg}}
        if wrong:
            bad[path.name] = wrong
    assert not bad, f"scratchnn/{pkg}/ may import only the contract layer: {bad}"


def test_import_scratchnn_does_not_import_torch():
    code = "import sys, scratchnn, scratchnn.textbook; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=PKG.parent).returncode == 0


def _visited(fn) -> list[tuple[str, str]]:
    """(file relative to scratchnn/, function name) of every scratchnn frame ``fn`` enters."""
    seen = []

    def tracer(frame, event, arg):
        if event == "call":
            f = Path(frame.f_code.co_filename)
            if PKG in f.parents:
                seen.append((f.relative_to(PKG).as_posix(), frame.f_code.co_name))
        return None

    sys.settrace(tracer)
    try:
        fn()
    finally:
        sys.settrace(None)
    return seen


def _allowed(file: str) -> bool:
    return file.startswith("textbook/") or Path(file).stem in CONTRACT


rng = np.random.default_rng(0)


def _r(*shape):
    return rng.standard_normal(shape)


STEPS = {
    "conv2d": lambda: (T.conv2d, (_r(2, 3, 9, 9), _r(4, 3, 3, 3), _r(4)), dict(stride=2, padding=1)),
    "conv2d_loops": lambda: (T.conv2d_loops, (_r(2, 3, 7, 7), _r(4, 3, 3, 3), _r(4)),
                             dict(stride=2, padding=1)),
    "conv_transpose2d": lambda: (T.conv_transpose2d, (_r(2, 4, 5, 5), _r(4, 3, 3, 3), _r(3)),
                                 dict(stride=2, padding=1)),
    "max_pool2d": lambda: (T.max_pool2d, (_r(2, 3, 9, 9), 3), dict(stride=2, padding=1)),
    "avg_pool2d": lambda: (T.avg_pool2d, (_r(2, 3, 9, 9), 3), dict(stride=2, padding=1)),
    "lstm_layer": lambda: (T.lstm_layer, (_r(5, 2, 3), _r(2, 4), _r(2, 4), _r(16, 3), _r(16, 4),
                                          _r(16), _r(16)), {}),
    "sigmoid": lambda: (T.sigmoid, (_r(3, 4),), {}),
}


@pytest.mark.parametrize("op", sorted(STEPS))
def test_stepping_through_a_textbook_op_stays_in_the_textbook(op):
    f, args, kwargs = STEPS[op]()
    state = {}

    def run():
        out, pullback = scratchnn.vjp(f, *args, **kwargs)
        state["out"] = out
        douts = tuple(rng.standard_normal(o.shape) for o in out) if isinstance(out, tuple) \
            else rng.standard_normal(out.shape)
        state["grads"] = pullback(douts)

    visited = _visited(run)
    outside = sorted({v for v in visited if not _allowed(v[0])})
    assert not outside, f"textbook {op} steps outside the textbook and contract layer: {outside}"
    assert any(v[0].startswith("textbook/") for v in visited)
    if op in ("conv2d", "conv2d_loops"):
        assert any("conv_transpose" in name for _, name in visited), \
            f"{op}'s input gradient must visit the transposed convolution by name: {visited}"


def test_fast_engines_open_with_the_formula_and_name_their_twin():
    import scratchnn.functional as F
    engines = {getattr(F, n).forward.__module__ for n in dir(F) if scratchnn.is_op(getattr(F, n))}
    for name in sorted(engines):
        if name.startswith("scratchnn.textbook"):
            continue
        doc = sys.modules[name].__doc__ or ""
        assert "scratchnn.textbook" in doc, f"{name}'s docstring must name its textbook twin"
