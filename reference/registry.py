"""The op registry: for every scratchnn op, its torch counterpart and how to test the pair.

Family files in ``reference/specs/`` (one per family: ``activation.py``, ``conv.py``, ...) call
:func:`register` at import time; :func:`load_all` imports every one of them, so adding a family
never means editing a central list.

A spec says:

* ``ours`` / ``torch``: the two ops. ``torch`` is called with the same positional and keyword
  arguments, arrays turned into tensors (a lambda adapts where torch's call differs, e.g.
  ``min_pool2d`` is checked against ``-max_pool2d(-x)``);
* ``cases(regime)``: a hypothesis strategy of valid :class:`Case` s for a value regime
  (structure and every hyperparameter drawn by hypothesis, values from
  ``numpy.random.default_rng(seed)``; see ``reference.values``). Zero-size batches belong in it;
* ``diff``: positional indices whose gradients are compared (when they are float arrays);
* ``regimes``: the value regimes that make sense (``ties`` for kink/tie conventions);
* ``tol``: tolerance overrides ``{"float32": (rtol, atol), "float64": (rtol, atol)}``;
* ``rejects``: bad inputs that scratchnn must reject with a ValueError/TypeError naming the
  parameter (and torch too, unless ``torch_rejects=False``);
* ``textbook``: the op's textbook edition, when it is not ``scratchnn.textbook.<name>`` (an
  adapter such as ``lstm_cell``'s flattened form); see :func:`edition`.

Every spec is checked twice against torch: the fast edition (``ours``) and the textbook edition
(:func:`edition` with ``impl="textbook"``); where the op is already plain both are one function.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable

REGIMES = ("normal", "away", "distinct", "ties")


@dataclass(repr=False)
class Case:
    """One call: positional ``args`` and keyword ``kwargs`` (float arrays in float64; the harness
    casts them to the dtype under test)."""
    args: tuple
    kwargs: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        def show(a: Any) -> str:
            shape = getattr(a, "shape", None)
            return f"array{shape}" if shape is not None else repr(a)
        a = ", ".join(show(v) for v in self.args)
        k = ", ".join(f"{n}={show(v)}" for n, v in self.kwargs.items())
        return f"Case({a}{', ' if a and k else ''}{k})"


@dataclass
class Reject:
    """Bad input: ``ours(*args, **kwargs)`` must raise ``error`` mentioning ``param``."""
    args: tuple
    kwargs: dict
    param: str
    error: tuple = (ValueError, TypeError)
    torch_rejects: bool = True


@dataclass
class OpSpec:
    name: str
    ours: Callable
    torch: Callable
    cases: Callable[[str], Any]
    diff: tuple[int, ...] = (0,)
    regimes: tuple[str, ...] = ("normal",)
    tol: dict = field(default_factory=dict)
    rejects: list[Reject] = field(default_factory=list)
    family: str = ""
    gradcheck: bool = True                 # finite differences make sense (not for ties etc.)
    gradcheck_regime: str | None = None    # default: 'away' if listed, else 'distinct'/'normal'
    examples: float = 1.0                  # scale of hypothesis examples (heavy ops < 1)
    notes: str = ""
    textbook: Callable | None = None       # default: scratchnn.textbook.<name>

    def __post_init__(self) -> None:
        bad = set(self.regimes) - set(REGIMES)
        if bad:
            raise ValueError(f"OpSpec({self.name}): unknown regimes {bad}")
        if self.gradcheck_regime is None:
            for r in ("away", "distinct", "normal"):
                if r in self.regimes:
                    self.gradcheck_regime = r
                    break


REGISTRY: dict[str, OpSpec] = {}
IMPLS = ("fast", "textbook")


def edition(spec: OpSpec, impl: str = "fast") -> Callable:
    """The op under test: ``spec.ours`` for ``impl="fast"``, its textbook twin for
    ``"textbook"`` (``spec.textbook``, else ``scratchnn.textbook.<spec.name>``)."""
    if impl == "fast":
        return spec.ours
    if impl != "textbook":
        raise ValueError(f"edition(): parameter 'impl' must be one of {list(IMPLS)}, got {impl!r}")
    if spec.textbook is not None:
        return spec.textbook
    import scratchnn.textbook as T
    op = getattr(T, spec.name, None)
    if op is None:
        raise LookupError(f"edition(): op '{spec.name}' has no textbook edition "
                          f"(scratchnn.textbook.{spec.name} is missing)")
    return op


def register(spec: OpSpec) -> OpSpec:
    if spec.name in REGISTRY:
        raise ValueError(f"register(): op '{spec.name}' is already registered")
    REGISTRY[spec.name] = spec
    return spec


_loaded = False


def load_all() -> dict[str, OpSpec]:
    """Import every family file in ``reference/specs`` and return the registry."""
    global _loaded
    if not _loaded:
        from . import specs
        for m in sorted(pkgutil.iter_modules(specs.__path__), key=lambda m: m.name):
            if not m.name.startswith("_"):
                importlib.import_module(f"{specs.__name__}.{m.name}")
        _loaded = True
    return REGISTRY
