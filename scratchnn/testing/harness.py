"""The equivalence harness: run one case through scratchnn and torch and judge the difference.

Policy (docs/testing-your-op.md):

* the oracle is torch in float64 on the same device, fed the *same* values (float32 inputs are
  rounded to float32 first, then widened);
* float64: ``|ours − oracle| ≤ atol + rtol·|oracle|`` with ``rtol = atol = 1e-7``;
* float32: first ``rtol = 1.3e-6, atol = 1e-5`` against torch in float32; failing that, our
  worst error against the float64 oracle must be within 4× torch-float32's own worst error,
  plus 1e-6 (long float32 sums legitimately differ by ~6e-7·√K);
* integer outputs (pooling indices) must be equal;
* upstream gradients are random normals drawn from the case's seed, the same for both sides;
* float outputs keep the input dtype; inputs are bit-for-bit unchanged after forward and
  backward.

A failed case carries :class:`Mismatch` es; :meth:`Result.report` renders the failure report
(check, argument, dtype and device, worst absolute and relative error against the tolerance,
the worst element with ours / torch / float64-oracle values, the case and a line that
reproduces it). The suite, ``python -m scratchnn.testing`` and :func:`check_op` all read it.
Imports torch (this module is imported only when a check runs).
"""
from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

import scratchnn

from .bridge import configure, to_numpy, to_torch
from .registry import Case, OpSpec, Reject, edition

DEFAULT_TOL = {"float32": (1.3e-6, 1e-5), "float64": (1e-7, 1e-7)}
REPRO_LIMIT = 2000       # cases with a larger array are not written out in a reproduction line


# ---------------------------------------------------------------- comparing two arrays

@dataclass
class Comparison:
    """How far ``ours`` is from the oracle, against the tolerance policy."""
    ok: bool
    err: float                  # max |ours − oracle| (float64 oracle)
    rel: float                  # max |ours − oracle| / |oracle| (inf where only the oracle is 0)
    ratio: float                # error relative to the tolerance: ≤ 1 passes
    tolerance: str              # the tolerance in words
    index: tuple | None = None  # the worst element
    ours: Any = None            # values at the worst element
    torch: Any = None
    oracle: Any = None
    note: str = ""


def cast(a: Any, dtype: np.dtype) -> Any:
    """Float arrays (also inside tuples/dicts) to ``dtype``; everything else unchanged."""
    if isinstance(a, np.ndarray) and a.dtype.kind == "f":
        return a.astype(dtype)
    if isinstance(a, tuple):
        return tuple(cast(e, dtype) for e in a)
    if isinstance(a, list):
        return [cast(e, dtype) for e in a]
    if isinstance(a, dict):
        return {k: cast(v, dtype) for k, v in a.items()}
    return a


def _flat(out: Any) -> list:
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _is_float(a: Any) -> bool:
    return isinstance(a, np.ndarray) and a.dtype.kind == "f"


def _absdiff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a − b| in float64; 0 where equal (infs included) or both NaN, inf where one is NaN."""
    with np.errstate(invalid="ignore", over="ignore"):
        d = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
        d = np.where((a == b) | (np.isnan(a) & np.isnan(b)), 0.0, d)
    return np.where(np.isnan(d), np.inf, d)


def _maxabs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(_absdiff(a, b))) if np.size(a) else 0.0


def _ratio(d: np.ndarray, ref: np.ndarray, rtol: float, atol: float) -> np.ndarray:
    """Elementwise d / (atol + rtol·|ref|); 0 where d is 0, inf where the bound is 0 or NaN."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        r = d / (atol + rtol * np.abs(np.asarray(ref, np.float64)))
    return np.where(d == 0, 0.0, np.where(np.isnan(r), np.inf, r))


def _scalar(a: np.ndarray, idx: tuple) -> Any:
    v = a[idx]
    return v.item() if hasattr(v, "item") else v


def compare(ours: np.ndarray, same: np.ndarray, hi: np.ndarray, dtype: str,
            tol: dict) -> Comparison:
    """The tolerance policy, with the worst element: ``same`` is torch in ``dtype``, ``hi`` the
    float64 oracle (``same is hi`` in float64)."""
    ours, same, hi = np.asarray(ours), np.asarray(same), np.asarray(hi)
    rtol, atol = tol.get(dtype, DEFAULT_TOL[dtype])
    words = f"atol {atol:.2g} + rtol {rtol:.2g}·|torch|"
    if ours.shape != hi.shape:
        return Comparison(False, float("inf"), float("inf"), float("inf"), words,
                          note=f"shape {ours.shape}, torch's is {hi.shape}")
    if ours.size == 0:
        return Comparison(True, 0.0, 0.0, 0.0, words)
    d_hi = _absdiff(ours, hi)
    err = float(np.max(d_hi))
    with np.errstate(invalid="ignore", divide="ignore"):     # (inf where the oracle is 0)
        rel = float(np.max(np.where(d_hi == 0, 0.0, d_hi / np.abs(np.asarray(hi, np.float64)))))
    r_hi = _ratio(d_hi, hi, rtol, atol)
    if dtype == "float64":
        ratio = float(np.max(r_hi))
        worst = np.unravel_index(int(np.argmax(r_hi)), r_hi.shape)
    else:
        r_same = float(np.max(_ratio(_absdiff(ours, same), same, rtol, atol)))
        bound = 4 * _maxabs(same, hi) + 1e-6
        words = (f"atol {atol:.2g} + rtol {rtol:.2g}·|torch float32|, or |ours − torch "
                 f"float64| ≤ 4×torch float32's own error + 1e-6 = {bound:.3g}")
        ratio = min(r_same, err / bound)
        worst = np.unravel_index(int(np.argmax(d_hi)), d_hi.shape)
    worst = tuple(int(i) for i in worst)
    return Comparison(bool(ratio <= 1), err, rel, ratio, words, worst,
                      _scalar(ours, worst), _scalar(same, worst), _scalar(hi, worst))


def within(ours: np.ndarray, same: np.ndarray, hi: np.ndarray, dtype: str,
           tol: dict) -> tuple[bool, float]:
    """The tolerance policy; returns (ok, worst abs error against the float64 oracle)."""
    c = compare(ours, same, hi, dtype, tol)
    return c.ok, c.err


# ---------------------------------------------------------------- one failed check

CHECKS = ("forward raised", "inputs unmodified", "dtype preserved", "number of outputs",
          "forward", "integer output", "backward raised", "gradient")   # the report leads with
# the first of these that failed: a written-into input or a promoted dtype explains the rest


@dataclass
class Mismatch:
    """One failed check of one case."""
    check: str                      # one of CHECKS
    argument: str                   # "output 0 of shape (2, 3)", "argument 1 ('weight') ..."
    detail: str = ""
    cmp: Comparison | None = None
    where: str = ""                 # the worst element, in words (when cmp has none)

    def short(self) -> str:
        err = f": max |ours − torch64| = {self.cmp.err:.3g} ({self.cmp.ratio:.3g}× tolerance)" \
            if self.cmp is not None and not self.cmp.ok else ""
        what = "grad of" if self.check == "gradient" else self.check
        arg = "" if self.argument == "—" else f" {self.argument}"
        return f"{what}{arg}{err}{' — ' + self.detail if self.detail else ''}"


@dataclass
class Result:
    op: str
    dtype: str
    device: str
    fwd_err: float
    grad_err: float
    ok: bool
    message: str = ""
    fwd_ratio: float = 0.0          # worst error / tolerance, forward (≤ 1 passes)
    grad_ratio: float = 0.0         # the same over every gradient
    mismatches: list[Mismatch] = field(default_factory=list)
    case: Case | None = None
    seed: int = 0
    layout: tuple | None = None     # (argument index, layout name) or None: contiguous
    impl: str = "fast"
    reproduce: str = ""

    def report(self) -> str:
        """The failure report (empty when the case passed)."""
        if self.ok or not self.mismatches:
            return self.message
        ms = sorted(self.mismatches, key=lambda m: CHECKS.index(m.check))
        m = ms[0]
        edition = "" if self.impl == "fast" else f" ({self.impl} edition)"
        lines = [f"{self.op}{edition} fails the '{m.check}' check on {self.dtype}/{self.device}",
                 f"  check:     {m.check}{': ' + m.detail if m.detail else ''}",
                 f"  argument:  {m.argument}",
                 f"  dtype:     {self.dtype} on {self.device}"]
        c = m.cmp
        if c is not None and c.index is not None:
            lines.append(f"  error:     worst |ours − torch float64| {c.err:.3g} (relative "
                         f"{c.rel:.3g}): {c.ratio:.3g}× the tolerance")
            lines.append(f"  tolerance: {c.tolerance}")
            lines.append(f"  worst at:  index {c.index}: ours {c.ours!r}, torch {c.torch!r} "
                         f"({self.dtype}), float64 oracle {c.oracle!r}")
        elif m.check == "inputs unmodified":
            lines.append("  error:     the input changed during the call")
            lines.append("  tolerance: none: an input must come back bit-for-bit unchanged")
        else:
            note = "no values compared" if c is None else \
                c.note or "nothing to compare (a zero-size array)"
            lines.append(f"  error:     {note}")
            lines.append(f"  tolerance: {c.tolerance if c is not None else '—'}")
            lines.append(f"  worst at:  {m.where or '—'}")
        lay = "contiguous" if self.layout is None else \
            f"argument {self.layout[0]} {self.layout[1]}"
        conf = self.case.show() if self.case is not None else "—"
        lines.append(f"  example:   {conf}; upstream-gradient seed {self.seed}; layout {lay}")
        lines.append(f"  reproduce: {self.reproduce}")
        for other in ms[1:6]:
            lines.append(f"  also:      {other.short()}")
        return "\n".join(lines)


def _names(op: Any) -> list[str]:
    try:
        return list(inspect.signature(op).parameters)
    except (TypeError, ValueError):
        return []


def _arg(i: int, names: list[str], a: Any) -> str:
    name = f" ('{names[i]}')" if i < len(names) else ""
    shape = f" of shape {a.shape}" if isinstance(a, np.ndarray) else ""
    return f"argument {i}{name}{shape}"


def runnable(line: str) -> str:
    """``line`` if it parses as Python, else a note saying how to get the example instead (an
    argument without a literal repr, such as a random generator, cannot be written out)."""
    try:
        compile(line, "<reproduce>", "exec")
    except SyntaxError:
        return ("(an argument has no literal repr, so no single line rebuilds this case: rerun "
                "the test; hypothesis prints the example and its @reproduce_failure blob)")
    return line


def default_reproduce(spec: OpSpec, case: Case, dtype: str, device: str, seed: int,
                      layout: tuple | None, impl: str) -> str:
    """One line of Python that runs this case again through :func:`scratchnn.testing.replay`."""
    if case.largest() > REPRO_LIMIT:
        return (f"(an array of {case.largest()} elements is too large to write out: rerun the "
                f"test; hypothesis prints the example and its @reproduce_failure blob)")
    extra = "" if layout is None else f", layout={layout!r}"
    extra += "" if impl == "fast" else f", impl={impl!r}"
    return runnable("import numpy as np; from numpy import *; from scratchnn.testing import "
                    f"Case, replay; replay({spec.name!r}, {case.show(None)}, {dtype!r}, "
                    f"{device!r}, seed={seed}{extra})")


# ---------------------------------------------------------------- torch and one case

def _wants_grad(spec: OpSpec, i: int, a: Any) -> bool:
    return (spec.diff is None or i in spec.diff) and _is_float(a)


def run_torch(spec: OpSpec, args: tuple, kwargs: dict, douts: list, dtype: str,
              device: str) -> tuple[list, dict]:
    """Torch forward and gradients of the ``spec.diff`` inputs for upstream ``douts``."""
    targs = []
    for i, a in enumerate(args):
        targs.append(to_torch(a, device, dtype, requires_grad=_wants_grad(spec, i, a)))
    tkwargs = to_torch(copy.deepcopy(kwargs), device, dtype)
    out = spec.torch(*targs, **tkwargs)
    outs = _flat(out)
    wrt = [(i, t) for i, t in enumerate(targs) if isinstance(t, torch.Tensor) and t.requires_grad]
    pairs = [(o, to_torch(d, device, dtype)) for o, d in zip(outs, douts)
             if d is not None and isinstance(o, torch.Tensor) and o.requires_grad]
    grads: dict[int, np.ndarray] = {}
    if wrt:
        if pairs:
            gs = torch.autograd.grad([o for o, _ in pairs], [t for _, t in wrt],
                                     [d for _, d in pairs], allow_unused=True)
        else:
            gs = [None] * len(wrt)
        for (i, t), g in zip(wrt, gs):
            grads[i] = to_numpy(g) if g is not None else np.zeros(tuple(t.shape), dtype=dtype)
    return [to_numpy(o) for o in outs], grads


def _snapshot(a: Any) -> Any:
    if isinstance(a, np.ndarray):
        return a.copy()
    if isinstance(a, (tuple, list)):
        return type(a)(_snapshot(e) for e in a)
    return a


def _unchanged(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray):
        return a.shape == b.shape and a.dtype == b.dtype and \
            bool(np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))
    if isinstance(a, (tuple, list)):
        return all(_unchanged(x, y) for x, y in zip(a, b))
    return True


def _first_change(after: Any, before: Any) -> str:
    if isinstance(after, np.ndarray):
        if after.shape != before.shape or after.dtype != before.dtype:
            return f"now {after.dtype}{after.shape}, was {before.dtype}{before.shape}"
        diff = ~((after == before) | (np.isnan(after) & np.isnan(before))
                 if after.dtype.kind == "f" else after == before)
        idx = tuple(int(i) for i in np.argwhere(diff)[0])
        return f"index {idx}: was {_scalar(before, idx)!r}, now {_scalar(after, idx)!r}"
    return "an element of the tuple changed"


def _raw_gradients(op: Any, args: tuple, kwargs: dict, douts: list) -> dict[int, Any]:
    """The backward's own return value, without vjp's checks, to show a gradient that ``vjp``
    refused (a float64 gradient for a float32 input); {} if that fails too."""
    try:
        out, ctx = op.forward(*args, **copy.deepcopy(kwargs))
        outs = _flat(out)
        ds = [None if d is None else d.astype(np.asarray(o).dtype) for o, d in zip(outs, douts)]
        grads = op.backward(ctx, tuple(ds) if isinstance(out, tuple) else ds[0])
    except Exception:  # noqa: BLE001 - the original error is reported already
        return {}
    grads = grads if isinstance(grads, tuple) else (grads,)
    return {i: np.asarray(g) if isinstance(g, np.generic) else g for i, g in enumerate(grads)}


def run_case(spec: OpSpec, case: Case, dtype: str = "float64", device: str = "cpu",
             seed: int = 0, args_override: tuple | None = None, impl: str = "fast",
             layout: tuple | None = None) -> Result:
    """Compare ours with torch on one case; ``args_override`` lets a caller feed the same
    values in another memory layout (non-contiguous, read-only; ``layout`` names it in the
    report as ``(argument index, layout name)``); ``impl`` picks the edition (``"fast"`` or
    ``"textbook"``, see :func:`scratchnn.testing.registry.edition`)."""
    configure(device)
    dt = np.dtype(dtype)
    args = cast(case.args, dt) if args_override is None else args_override
    kwargs = cast(case.kwargs, dt)
    before = _snapshot(args)
    rng = np.random.default_rng(seed)
    op = edition(spec, impl)
    names = _names(op)
    res = Result(spec.name, dtype, device, 0.0, 0.0, True, case=case, seed=seed, layout=layout,
                 impl=impl)
    make_line = spec.reproduce or (lambda *a: default_reproduce(spec, *a))
    res.reproduce = make_line(case, dtype, device, seed, layout, impl)
    fail = res.mismatches

    def done() -> Result:
        res.ok = not fail
        res.message = res.report()
        return res

    try:
        out, pullback = scratchnn.vjp(op, *args, **copy.deepcopy(kwargs))
    except Exception as e:  # noqa: BLE001 - reported as this case's failure, with the reason
        res.fwd_err = res.grad_err = res.fwd_ratio = res.grad_ratio = float("inf")
        fail.append(Mismatch("forward raised", "—", f"scratchnn raised {type(e).__name__}: {e}"))
        return done()
    outs = _flat(out)
    douts = [rng.standard_normal(o.shape).astype(dt) if _is_float(o) else None for o in outs]
    g_ours, back_error = None, None
    try:
        g_ours = pullback(tuple(douts) if isinstance(out, tuple) else douts[0])
    except Exception as e:  # noqa: BLE001
        back_error = e
    for i, (a, b) in enumerate(zip(args, before)):
        if not _unchanged(a, b):
            fail.append(Mismatch("inputs unmodified", _arg(i, names, b),
                                 "the op wrote into its input", where=_first_change(a, b)))

    args = before                       # torch gets the values as they were passed in
    t_same, g_same = run_torch(spec, args, kwargs, douts, dtype, device)
    if dtype == "float64":
        t_hi, g_hi = t_same, g_same
    else:
        args64 = cast(args, np.dtype(np.float64))
        douts64 = [None if d is None else d.astype(np.float64) for d in douts]
        t_hi, g_hi = run_torch(spec, args64, cast(kwargs, np.dtype(np.float64)), douts64,
                               "float64", device)

    if len(outs) != len(t_hi):
        fail.append(Mismatch("number of outputs", "output",
                             f"{len(outs)} outputs, torch has {len(t_hi)}"))
    for k, (o, s, h) in enumerate(zip(outs, t_same, t_hi)):
        where = f"output {k}" + (f" of shape {h.shape}" if hasattr(h, "shape") else "")
        if isinstance(o, np.ndarray) and o.dtype.kind in "iub":
            if o.shape != h.shape or not np.array_equal(o, h):
                c = compare(o, h, h, "float64", {"float64": (0.0, 0.0)})
                fail.append(Mismatch("integer output", where, "integers must be equal", c))
            continue
        c = compare(np.asarray(o), s, h, dtype, spec.tol)
        res.fwd_err, res.fwd_ratio = max(res.fwd_err, c.err), max(res.fwd_ratio, c.ratio)
        if _is_float(o) and o.dtype != dt:
            fail.append(Mismatch("dtype preserved", where,
                                 f"output {k} is {o.dtype} for {dt} inputs", c))
        elif not isinstance(o, np.ndarray):
            fail.append(Mismatch("dtype preserved", where,
                                 f"output {k} is a {type(o).__name__}, not a numpy.ndarray", c))
        if not c.ok:
            fail.append(Mismatch("forward", where, "", c))
    if back_error is not None:
        res.grad_err = res.grad_ratio = float("inf")
        fail.append(Mismatch("backward raised", "—",
                             f"scratchnn raised {type(back_error).__name__}: {back_error}"))
        for i, g in _raw_gradients(op, args, kwargs, douts).items():
            if i in g_hi and _is_float(g) and g.dtype != dt and g.shape == g_hi[i].shape:
                fail.append(Mismatch("dtype preserved", _arg(i, names, args[i]),
                                     f"the gradient of argument {i} is {g.dtype} for {dt} "
                                     f"inputs", compare(g, g_same[i], g_hi[i], dtype, spec.tol)))
        return done()
    for i, gh in g_hi.items():
        go = g_ours[i] if i < len(g_ours) else None
        if go is None:
            fail.append(Mismatch("gradient", _arg(i, names, args[i]),
                                 "no gradient (None) where torch has one"))
            continue
        c = compare(go, g_same[i], gh, dtype, spec.tol)
        res.grad_err, res.grad_ratio = max(res.grad_err, c.err), max(res.grad_ratio, c.ratio)
        if not c.ok:
            fail.append(Mismatch("gradient", _arg(i, names, args[i]),
                                 f"random upstream gradient (seed {seed})", c))
    return done()


def layouts(a: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The same values in other memory layouts: Fortran order, a strided view into a larger
    buffer, negative strides, read-only."""
    out = {"fortran": np.asfortranarray(a) if a.ndim else a.copy()}  # (it makes 0-d 1-d)
    if a.ndim:
        big = np.zeros(tuple(2 * s for s in a.shape[:-1]) + (a.shape[-1] * 3,), a.dtype)
        big[tuple(slice(None, None, 2) for _ in a.shape[:-1]) + (slice(None, None, 3),)] = a
        out["strided"] = big[tuple(slice(None, None, 2) for _ in a.shape[:-1])
                             + (slice(None, None, 3),)]
        rev = a[..., ::-1].copy()
        out["negative-stride"] = rev[..., ::-1]
    ro = a.copy()
    ro.flags.writeable = False
    out["read-only"] = ro
    return out


def layout_args(case: Case, dtype: str, layout: tuple, seed: int = 0) -> tuple:
    """``case``'s arguments in ``dtype`` with argument ``layout[0]`` in layout ``layout[1]``."""
    i, name = layout
    base = cast(case.args, np.dtype(dtype))
    return base[:i] + (layouts(base[i], np.random.default_rng(seed))[name],) + base[i + 1:]


def check_reject(spec: OpSpec, rej: Reject, impl: str = "fast") -> str | None:
    """None if both sides reject ``rej`` as the spec says, else what went wrong."""
    ours = edition(spec, impl)
    fn = ours.__name__
    args = rej.args
    try:
        ours(*args, **copy.deepcopy(rej.kwargs))
    except rej.error as e:
        msg = str(e)
        if fn not in msg or rej.param not in msg:
            return f"message must name '{fn}' and '{rej.param}': {msg!r}"
    except Exception as e:  # noqa: BLE001
        return f"raised {type(e).__name__} (expected {[c.__name__ for c in rej.error]}): {e}"
    else:
        return f"accepted bad '{rej.param}' ({rej.args!r}, {rej.kwargs!r})"
    if rej.torch_rejects:
        try:
            spec.torch(*to_torch(args), **to_torch(copy.deepcopy(rej.kwargs)))
        except Exception:  # noqa: BLE001
            return None
        return "torch accepts this input; mark torch_rejects=False if that is expected"
    return None
