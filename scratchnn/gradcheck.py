"""Finite-difference gradient checking, independent of torch.

Check a hand-written backward against central differences of its own forward::

    >>> import numpy as np, scratchnn as snn, scratchnn.functional as F
    >>> x = np.random.default_rng(0).standard_normal((3, 4))
    >>> snn.gradcheck(F.tanh, (x,))
    True

How it works. Let ``L = Σ_j ⟨u_j, out_j⟩`` for a fixed random ``u`` (never all ones: ones hide
permuted gradients). The backward gives ∂L/∂x for every input at once (one ``pullback(u)``).
Finite differences give the same numbers one element at a time::

    ∂L/∂x_i ≈ (L(x + ε e_i) − L(x − ε e_i)) / 2ε

* small ops (every input and output ≤ ``full_limit`` elements): the **full Jacobian** — one
  pullback per output element against one pair of forwards per input element;
* larger ops: every input element up to ``full_limit`` of them (a random sample beyond that) of
  the projected gradient, plus ``n_directions`` random directions ``v``:
  ``⟨∂L/∂x, v⟩ ≈ (L(x + εv) − L(x − εv)) / 2ε``.

Everything runs in float64 (float32 inputs are copied up). Output elements that are not finite
at the given inputs (a NaN mean over an empty batch, say) have no derivative and are skipped.
A mismatch raises :class:`GradcheckError` naming the input (by parameter name), the element
and both values. A NumPy float scalar, as an argument or as the op's output (``x ** 3`` of a
0-d array), is taken as the 0-d array it stands for. Keyword arguments are passed through
unchanged (a ``generator=`` is copied afresh for every evaluation, so dropout-style ops see the
same mask each time).
"""
from __future__ import annotations

import copy
import inspect
from typing import Any, Callable, Sequence

import numpy as np

from .autodiff import as_arrays, is_op, vjp

__all__ = ["gradcheck", "GradcheckError"]


class GradcheckError(AssertionError):
    """A backward disagrees with finite differences; the message says where."""


def _idx(flat: int, shape: tuple) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(int(flat), shape))


def _flat_outputs(out: Any) -> list[np.ndarray]:
    outs = out if isinstance(out, tuple) else (out,)
    return [o for o in outs if isinstance(o, np.ndarray) and o.dtype.kind == "f"]


def _structure_like(out: Any, vectors: list[np.ndarray]) -> Any:
    """Put projection vectors ``vectors`` into ``out``'s structure (None for integer outputs)."""
    it = iter(vectors)
    if isinstance(out, tuple):
        return tuple(next(it, None) if isinstance(o, np.ndarray) and o.dtype.kind == "f"
                     else None for o in out)
    return next(it, None)


def gradcheck(f: Callable, args: Sequence[Any], kwargs: dict | None = None, *,
              eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              full_limit: int = 256, n_directions: int = 3, seed: int = 0,
              raise_exception: bool = True) -> bool:
    """Compare ``vjp(f, *args, **kwargs)``'s gradients with central finite differences.

    Returns True when every checked gradient satisfies ``|analytic − numeric| ≤ atol +
    rtol·|numeric|``; otherwise raises :class:`GradcheckError` (or returns False with
    ``raise_exception=False``).
    """
    if not is_op(f):
        raise TypeError(f"gradcheck(): parameter 'f' must be a scratchnn functional op, got {f!r}")
    if not isinstance(args, (tuple, list)):
        raise TypeError("gradcheck(): parameter 'args' must be a tuple of positional arguments")
    kwargs = dict(kwargs or {})
    rng = np.random.default_rng(seed)
    # float64 copies; a NumPy float scalar is taken as the 0-d array it stands for
    args = [np.asarray(a, dtype=np.float64) if isinstance(a, np.floating) else
            a.astype(np.float64) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a
            for a in args]
    try:
        names = list(inspect.signature(f).parameters)
    except (TypeError, ValueError):
        names = []
    diff = [i for i, a in enumerate(args) if isinstance(a, np.ndarray) and a.dtype.kind == "f"]

    def run(a: list) -> Any:
        return as_arrays(f(*a, **copy.deepcopy(kwargs)))     # a NumPy scalar -> 0-d array

    out0 = run(args)
    outs = _flat_outputs(out0)
    if not outs:
        raise TypeError(f"gradcheck({f.__name__}): the op returned no floating-point array to "
                        f"differentiate (got {type(out0).__name__})")
    finite = [np.isfinite(o) for o in outs]   # NaN/inf outputs (a mean over nothing) have no
    # derivative: they get no weight in the projection
    us = [np.asarray(rng.standard_normal(o.shape) * m) for o, m in zip(outs, finite)]

    def loss(a: list) -> float:
        return float(sum(np.vdot(u, np.where(m, o, 0.0))
                         for u, m, o in zip(us, finite, _flat_outputs(run(a)))))

    _, pullback = vjp(f, *args, **copy.deepcopy(kwargs))
    grads = pullback(_structure_like(out0, us))
    n_out = sum(o.size for o in outs)
    failures: list[str] = []

    def report(i: int, what: str, analytic: float, numeric: float) -> None:
        name = names[i] if i < len(names) else f"args[{i}]"
        failures.append(f"input {i} ('{name}') {what}: analytic {analytic:.10g}, "
                        f"numeric {numeric:.10g}, |diff| {abs(analytic - numeric):.3g}")

    def close(a: float, n: float) -> bool:
        return abs(a - n) <= atol + rtol * abs(n)

    def perturbed(i: int, delta: np.ndarray) -> tuple[list, list]:
        plus, minus = list(args), list(args)
        plus[i], minus[i] = np.asarray(args[i] + delta), np.asarray(args[i] - delta)
        return plus, minus

    full = n_out <= full_limit and all(args[i].size <= full_limit for i in diff)
    if full:                                    # the whole Jacobian, row by row
        for i in diff:
            x = args[i]
            jac_num = np.zeros((n_out, x.size))
            for e in range(x.size):
                d = np.zeros(x.size)
                d[e] = eps
                plus, minus = perturbed(i, d.reshape(x.shape))
                fp = np.concatenate([o.ravel() for o in _flat_outputs(run(plus))] or [np.zeros(0)])
                fm = np.concatenate([o.ravel() for o in _flat_outputs(run(minus))] or [np.zeros(0)])
                jac_num[:, e] = (fp - fm) / (2 * eps)
            offsets = np.cumsum([0] + [o.size for o in outs])

            def _out_name(r: int) -> str:
                j = int(np.searchsorted(offsets, r, side="right") - 1)
                where = _idx(r - offsets[j], outs[j].shape)
                return f"[{j}]{list(where)}" if len(outs) > 1 else str(list(where))
            checkable = np.concatenate([m.ravel() for m in finite] or [np.zeros(0, bool)])
            for r in range(n_out):
                if not checkable[r]:
                    continue
                basis = [np.zeros(o.shape) for o in outs]
                j = int(np.searchsorted(offsets, r, side="right") - 1)
                basis[j].flat[r - offsets[j]] = 1.0
                row = pullback(_structure_like(out0, basis))[i]
                row = np.zeros(x.size) if row is None else row.ravel()
                for e in range(x.size):
                    if not close(row[e], jac_num[r, e]):
                        report(i, f"d out{_out_name(r)} / d element {_idx(e, x.shape)}",
                               row[e], jac_num[r, e])
    else:                                       # projected gradient: sampled elements + directions
        for i in diff:
            x, g = args[i], grads[i]
            g = np.zeros(x.shape) if g is None else g
            elems = range(x.size) if x.size <= full_limit else \
                rng.choice(x.size, full_limit, replace=False)
            for e in elems:
                d = np.zeros(x.size)
                d[e] = eps
                plus, minus = perturbed(i, d.reshape(x.shape))
                num = (loss(plus) - loss(minus)) / (2 * eps)
                if not close(g.flat[e], num):
                    report(i, f"element {_idx(e, x.shape)}", g.flat[e], num)
            for _ in range(n_directions):
                v = rng.standard_normal(x.shape)
                plus, minus = perturbed(i, eps * v)
                num = (loss(plus) - loss(minus)) / (2 * eps)
                if not close(float(np.vdot(g, v)), num):
                    report(i, "random direction", float(np.vdot(g, v)), num)
    if failures:
        if raise_exception:
            shown = "\n  ".join(failures[:10])
            more = f"\n  ... and {len(failures) - 10} more" if len(failures) > 10 else ""
            raise GradcheckError(f"gradcheck({f.__name__}) failed for {len(failures)} "
                                 f"entries:\n  {shown}{more}")
        return False
    return True
