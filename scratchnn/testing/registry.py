"""The op registry: for every op, its torch counterpart and how to test the pair.

NumPy only (no torch, no hypothesis at import). A spec says:

* ``ours`` / ``torch``: the two ops. ``torch`` is called with the same positional and keyword
  arguments, arrays turned into tensors (a lambda adapts where torch's call differs, e.g.
  ``min_pool2d`` is checked against ``-max_pool2d(-x)``);
* ``cases(regime)``: a hypothesis strategy of valid :class:`Case` s for a value regime
  (structure and every hyperparameter drawn by hypothesis, values from
  ``numpy.random.default_rng(seed)``; see :mod:`scratchnn.testing.values`);
* ``diff``: positional indices whose gradients are compared (when they are float arrays;
  ``None``: every float array argument);
* ``regimes``: the value regimes that make sense (``ties`` for kink/tie conventions);
* ``tol``: tolerance overrides ``{"float32": (rtol, atol), "float64": (rtol, atol)}``;
* ``rejects``: bad inputs that ours must reject with a ValueError/TypeError naming the
  parameter (and torch too, unless ``torch_rejects=False``);
* ``textbook``: the op's textbook edition, when it is not ``scratchnn.textbook.<name>``.

The project's own specs live in ``reference/specs/`` (a clone of the repository); a user
registers theirs with :func:`register` in their own module and runs
``python -m scratchnn.testing --module theirs``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .values import REGIMES

IMPLS = ("fast", "textbook")
SHOW_LIMIT = 64          # arrays up to this many elements are shown value by value


def show(a: Any, limit: int | None = SHOW_LIMIT) -> str:
    """``repr`` that shows an array's values: in full (round-trip precision, evaluable with
    ``from numpy import array``) up to ``limit`` elements, else a summary with shape, dtype,
    range and the first values. ``limit=None``: always in full."""
    if isinstance(a, np.ndarray):
        if limit is None or a.size <= limit:
            return _array_literal(a)
        flat = a.ravel()
        head = ", ".join(f"{v!r}" for v in flat[:4].tolist())
        rng = ""
        if a.dtype.kind in "fiu":
            with np.errstate(all="ignore"):
                rng = f", range [{np.nanmin(flat):.4g}, {np.nanmax(flat):.4g}]" \
                    if np.isfinite(flat).any() or a.dtype.kind != "f" else ""
        return f"<array shape={a.shape} dtype={a.dtype}{rng}, first [{head}, ...]>"
    if isinstance(a, tuple):
        inner = ", ".join(show(e, limit) for e in a)
        return f"({inner}{',' if len(a) == 1 else ''})"
    if isinstance(a, list):
        return "[" + ", ".join(show(e, limit) for e in a) + "]"
    if isinstance(a, dict):
        return "{" + ", ".join(f"{k!r}: {show(v, limit)}" for k, v in a.items()) + "}"
    return repr(a)


def _array_literal(a: np.ndarray) -> str:
    """``array([[0.5, -1.25], ...])``: every element in its shortest round-trip form (float32
    elements as float32 prints them), no alignment padding, the dtype when it is not the
    default one; evaluable with ``from numpy import *``."""
    dtype = "" if a.dtype in (np.float64, np.int64, np.bool_) else f", dtype={a.dtype.name}"
    if a.size == 0:
        return f"zeros({a.shape}, dtype={a.dtype.name})"

    def nested(x: np.ndarray) -> str:
        if x.ndim == 0:
            return str(x[()])
        return "[" + ", ".join(nested(e) for e in x) + "]"
    return f"array({nested(a)}{dtype})"


@dataclass(repr=False)
class Case:
    """One call: positional ``args`` and keyword ``kwargs`` (float arrays in float64; the harness
    casts them to the dtype under test). ``config`` (optional) records how the case was drawn
    (shapes, options, regime, seed) so it can be drawn again.

    The repr shows the values (arrays of up to ``SHOW_LIMIT`` elements in full, so that
    ``eval(repr(case))`` with ``from numpy import array`` rebuilds them) and the config."""
    args: tuple
    kwargs: dict = field(default_factory=dict)
    config: dict | None = None

    def __repr__(self) -> str:
        return self.show(SHOW_LIMIT)

    def show(self, limit: int | None = SHOW_LIMIT) -> str:
        parts = [show(tuple(self.args), limit)]
        if self.kwargs or self.config:
            parts.append(show(dict(self.kwargs), limit))
        if self.config:
            parts.append(f"config={self.config!r}")
        return f"Case({', '.join(parts)})"

    def largest(self) -> int:
        """The element count of the largest array in the case."""
        sizes = [a.size for a in _arrays((self.args, self.kwargs))]
        return max(sizes, default=0)


def _arrays(a: Any) -> list:
    if isinstance(a, np.ndarray):
        return [a]
    if isinstance(a, (tuple, list)):
        return [x for e in a for x in _arrays(e)]
    if isinstance(a, dict):
        return [x for e in a.values() for x in _arrays(e)]
    return []


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
    diff: tuple[int, ...] | None = (0,)
    regimes: tuple[str, ...] = ("normal",)
    tol: dict = field(default_factory=dict)
    rejects: list[Reject] = field(default_factory=list)
    family: str = ""
    gradcheck: bool = True                 # finite differences make sense (not for ties etc.)
    gradcheck_regime: str | None = None    # default: 'away' if listed, else 'distinct'/'normal'
    examples: float = 1.0                  # scale of hypothesis examples (heavy ops < 1)
    notes: str = ""
    textbook: Callable | None = None       # default: scratchnn.textbook.<name>
    # how a failure of one case is reproduced: reproduce(case, dtype, device, seed, layout, impl)
    # -> one line of Python (default: a scratchnn.testing.replay(...) call)
    reproduce: Callable | None = field(default=None, repr=False)

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


def register(spec: Any, torch_op: Callable | None = None, **options: Any) -> OpSpec:
    """Add an op to the registry (what ``python -m scratchnn.testing`` reports on).

    Either ``register(OpSpec(...))``, or, for your own op, the arguments of
    :func:`scratchnn.testing.check_op`: ``register(my_op, torch_op, shapes=..., ...)``.
    """
    if not isinstance(spec, OpSpec):
        if torch_op is None:
            raise TypeError("register(): parameter 'torch_op' is required when registering an "
                            "op (or pass an OpSpec)")
        from .check import op_spec
        spec = op_spec(spec, torch_op, **options)
    elif torch_op is not None or options:
        raise TypeError("register(): an OpSpec takes no further arguments")
    if spec.name in REGISTRY:
        raise ValueError(f"register(): op '{spec.name}' is already registered (register "
                         f"yours under another name with name=...)")
    REGISTRY[spec.name] = spec
    return spec
