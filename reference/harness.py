"""The equivalence harness: run one case through scratchnn and torch and judge the difference.

Policy (docs/design.md):

* the oracle is torch in float64 on the same device, fed the *same* values (float32 inputs are
  rounded to float32 first, then widened);
* float64: ``|ours − oracle| ≤ atol + rtol·|oracle|`` with ``rtol = atol = 1e-7``;
* float32: first ``rtol = 1.3e-6, atol = 1e-5`` against torch in float32; failing that,
  scratchnn's worst error against the float64 oracle must be within 4× torch-float32's own worst
  error, plus 1e-6 (long float32 sums legitimately differ by ~6e-7·√K);
* integer outputs (pooling indices) must be equal;
* upstream gradients are random normals, the same for both sides;
* inputs must be bit-for-bit unchanged after forward and backward.

Used by ``tests/`` and by the report ``python -m reference``.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

import scratchnn

from .bridge import configure, to_numpy, to_torch
from .registry import Case, OpSpec, Reject, edition

DEFAULT_TOL = {"float32": (1.3e-6, 1e-5), "float64": (1e-7, 1e-7)}


@dataclass
class Result:
    op: str
    dtype: str
    device: str
    fwd_err: float
    grad_err: float
    ok: bool
    message: str = ""


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


def _maxabs(a: np.ndarray, b: np.ndarray) -> float:
    if a.size == 0:
        return 0.0
    with np.errstate(invalid="ignore", over="ignore"):
        d = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
        d = np.where((a == b) | (np.isnan(a) & np.isnan(b)), 0.0, d)  # equal infs, both NaN
    return float(np.max(np.where(np.isnan(d), np.inf, d)))


def within(ours: np.ndarray, same: np.ndarray, hi: np.ndarray, dtype: str,
           tol: dict) -> tuple[bool, float]:
    """The tolerance policy; returns (ok, worst abs error against the float64 oracle)."""
    if ours.shape != hi.shape:
        return False, float("inf")
    err = _maxabs(ours, hi)
    rtol, atol = tol.get(dtype, DEFAULT_TOL[dtype])
    if dtype == "float64":
        return bool(np.allclose(ours, hi, rtol=rtol, atol=atol, equal_nan=True)), err
    if np.allclose(ours, same, rtol=rtol, atol=atol, equal_nan=True):
        return True, err
    return err <= 4 * _maxabs(same, hi) + 1e-6, err


def run_torch(spec: OpSpec, args: tuple, kwargs: dict, douts: list, dtype: str,
              device: str) -> tuple[list, dict]:
    """Torch forward and gradients of the ``spec.diff`` inputs for upstream ``douts``."""
    targs = []
    for i, a in enumerate(args):
        targs.append(to_torch(a, device, dtype, requires_grad=(i in spec.diff and _is_float(a))))
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


def run_case(spec: OpSpec, case: Case, dtype: str = "float64", device: str = "cpu",
             seed: int = 0, args_override: tuple | None = None, impl: str = "fast") -> Result:
    """Compare scratchnn with torch on one case; ``args_override`` lets a caller feed the same
    values in another memory layout (non-contiguous, read-only); ``impl`` picks the edition
    (``"fast"`` or ``"textbook"``, see :func:`reference.registry.edition`)."""
    configure(device)
    dt = np.dtype(dtype)
    args = cast(case.args, dt) if args_override is None else args_override
    kwargs = cast(case.kwargs, dt)
    before = _snapshot(args)
    rng = np.random.default_rng(seed)
    fail: list[str] = []

    try:
        out, pullback = scratchnn.vjp(edition(spec, impl), *args, **copy.deepcopy(kwargs))
        outs = _flat(out)
        douts = [rng.standard_normal(o.shape).astype(dt) if _is_float(o) else None for o in outs]
        for o in outs:
            if _is_float(o) and o.dtype != dt:
                fail.append(f"output dtype {o.dtype}, expected {dt}")
        g_ours = pullback(tuple(douts) if isinstance(out, tuple) else douts[0])
    except Exception as e:  # noqa: BLE001 - reported as this case's failure, with the reason
        return Result(spec.name, dtype, device, float("inf"), float("inf"), False,
                      f"scratchnn raised {type(e).__name__}: {e}")
    if not _unchanged(args, before):
        fail.append("an input array was modified")

    t_same, g_same = run_torch(spec, args, kwargs, douts, dtype, device)
    if dtype == "float64":
        t_hi, g_hi = t_same, g_same
    else:
        args64 = cast(args, np.dtype(np.float64))
        douts64 = [None if d is None else d.astype(np.float64) for d in douts]
        t_hi, g_hi = run_torch(spec, args64, cast(kwargs, np.dtype(np.float64)), douts64,
                               "float64", device)

    fwd_err = grad_err = 0.0
    if len(outs) != len(t_hi):
        fail.append(f"{len(outs)} outputs, torch has {len(t_hi)}")
    for k, (o, s, h) in enumerate(zip(outs, t_same, t_hi)):
        if isinstance(o, np.ndarray) and o.dtype.kind in "iub":
            if o.shape != h.shape or not np.array_equal(o, h):
                fail.append(f"output {k} (integer) differs from torch")
            continue
        ok, err = within(np.asarray(o), s, h, dtype, spec.tol)
        fwd_err = max(fwd_err, err)
        if not ok:
            fail.append(f"output {k}: max |ours − torch64| = {err:.3g}")
    for i, gh in g_hi.items():
        go = g_ours[i] if i < len(g_ours) else None
        if go is None:
            fail.append(f"no gradient for argument {i}")
            continue
        ok, err = within(go, g_same[i], gh, dtype, spec.tol)
        grad_err = max(grad_err, err)
        if not ok:
            fail.append(f"grad of argument {i}: max |ours − torch64| = {err:.3g}")
    return Result(spec.name, dtype, device, fwd_err, grad_err, not fail, "; ".join(fail))


def layouts(a: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The same values in other memory layouts: Fortran order, a strided view into a larger
    buffer, negative strides, read-only."""
    out = {"fortran": np.asfortranarray(a) if a.ndim else a.copy()}   # (asfortranarray makes 0-d 1-d)
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
