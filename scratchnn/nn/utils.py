"""Gradient clipping: ``clip_grad_norm_`` and ``clip_grad_value_`` (torch.nn.utils's).

    ‖g‖_p = ( Σ_k ‖g_k‖_p^p )^{1/p}          the norm of all gradients as one vector
    c     = min( max_norm / (‖g‖_p + 1e-6), 1 )
    g_k  ← c · g_k                              every gradient, in place

The total is computed as torch computes it: the p-norm of each gradient in its own dtype, then
the p-norm of those norms (for p = ∞ the largest |g|, for p = −∞ the smallest, for p = 0 the
number of non-zero entries). The coefficient is clamped at 1, so gradients are only ever scaled
down; a NaN or infinite total scales them by NaN or 0 as torch's (``error_if_nonfinite=True``
raises instead). ``clip_grad_value_`` clamps every entry to [−clip_value, clip_value].

Both act on ``Parameter.grad`` in place (parameters whose ``.grad`` is None are skipped, as in
torch) and never touch ``.data``. A negative ``max_norm`` or ``clip_value``, which torch accepts
and turns into a sign flip (or a constant gradient), is refused with a ``ValueError``.
"""
from __future__ import annotations

import math
import numbers
import types
import warnings
from typing import Any, Iterable

import numpy as np

from .module import Parameter

__all__ = ["clip_grad_norm_", "clip_grad_value_", "get_total_norm"]


def _parameters(fn: str, parameters: Any) -> list[Parameter]:
    if isinstance(parameters, Parameter):
        return [parameters]
    if isinstance(parameters, np.ndarray) or not isinstance(parameters, Iterable):
        raise TypeError(f"{fn}(): parameter 'parameters' must be a Parameter or an iterable of "
                        f"Parameters, got {type(parameters).__name__}")
    is_generator = isinstance(parameters, types.GeneratorType)
    params = list(parameters)
    for i, p in enumerate(params):
        if not isinstance(p, Parameter):
            raise TypeError(f"{fn}(): parameter 'parameters' must hold Parameters, item {i} is "
                            f"{type(p).__name__}")
    if is_generator and not params:
        warnings.warn("`parameters` is an empty generator, no gradient clipping will occur.",
                      stacklevel=3)
    return params


def _real(fn: str, name: str, v: Any, allow_inf: bool = False) -> float:
    if isinstance(v, str) and allow_inf and v.strip().lower() in ("inf", "+inf", "-inf"):
        return float(v)
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{fn}(): parameter '{name}' must be a real number, got {v!r}")
    v = float(v)
    if math.isnan(v) or (math.isinf(v) and not allow_inf):
        raise ValueError(f"{fn}(): parameter '{name}' must be finite, got {v}")
    return v


def _foreach(fn: str, foreach: Any) -> None:
    """torch's foreach=None/True/False picks a kernel; here every choice is the same loop."""
    if foreach is not None and not isinstance(foreach, (bool, np.bool_)):
        raise TypeError(f"{fn}(): parameter 'foreach' must be None or a bool, got {foreach!r}")


def _vector_norm(x: np.ndarray, p: float) -> np.ndarray:
    """‖x‖_p of a flattened array, in x's dtype (torch.linalg.vector_norm)."""
    a = np.abs(x.ravel())
    if p == 2.0:
        return np.sqrt(np.dot(a, a))
    if p == math.inf:
        return a.max()
    if p == -math.inf:
        return a.min()
    if p == 0.0:
        return np.asarray(np.count_nonzero(a), x.dtype)
    if p == 1.0:
        return a.sum()
    with np.errstate(divide="ignore"):               # p < 0: a zero entry makes the norm 0
        return (a ** p).sum() ** (1.0 / p)


def get_total_norm(tensors: Iterable[np.ndarray], norm_type: float = 2.0,
                   error_if_nonfinite: bool = False, foreach: bool | None = None) -> np.ndarray:
    """‖g‖_p = ‖(‖g_1‖_p, …, ‖g_K‖_p)‖_p: the p-norm of the arrays viewed as one vector.

    Returns a 0-d array (float32 if every array is float32; 0.0 for no arrays).
    Torch: torch.nn.utils.get_total_norm
    """
    fn = "get_total_norm"
    if isinstance(tensors, np.ndarray):
        tensors = [tensors]
    tensors = list(tensors)
    p = _real(fn, "norm_type", norm_type, allow_inf=True)
    _foreach(fn, foreach)
    if not tensors:
        return np.zeros((), np.float32)
    if abs(p) == math.inf and any(t.size == 0 for t in tensors):
        raise RuntimeError(f"{fn}(): cannot compute the infinity norm of an empty gradient: the "
                           f"operation has no identity")
    norms = [_vector_norm(t, p) for t in tensors]
    total = _vector_norm(np.stack(norms), p)
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(
            f"The total norm of order {p} for gradients from `parameters` is non-finite, so it "
            f"cannot be clipped. To disable this error and scale the gradients by the "
            f"non-finite norm anyway, set `error_if_nonfinite=False`")
    return np.asarray(total)


def clip_grad_norm_(parameters: Any, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False, foreach: bool | None = None) -> np.ndarray:
    """g_k ← min(max_norm / (‖g‖_p + 1e-6), 1) · g_k for every parameter's ``.grad``.

    ``parameters``: a Parameter or an iterable of them (``model.parameters()``); those whose
    ``.grad`` is None are skipped. ``norm_type``: p, a real number or ``'inf'``. Returns the
    total norm *before* clipping, a 0-d array in the gradients' dtype.
    Torch: torch.nn.utils.clip_grad_norm_ (same rounding: the coefficient is computed in the
    total norm's dtype and cast to each gradient's).
    """
    fn = "clip_grad_norm_"
    params = _parameters(fn, parameters)
    max_norm = _real(fn, "max_norm", max_norm)
    if max_norm < 0:
        raise ValueError(f"{fn}(): parameter 'max_norm' must be >= 0, got {max_norm}")
    if not isinstance(error_if_nonfinite, (bool, np.bool_)):
        raise TypeError(f"{fn}(): parameter 'error_if_nonfinite' must be a bool, got "
                        f"{error_if_nonfinite!r}")
    grads = [p.grad for p in params if p.grad is not None]
    total = get_total_norm(grads, norm_type, error_if_nonfinite, foreach)
    if grads:
        coef = np.minimum(max_norm / (total + 1e-6), 1.0)   # Python floats keep total's dtype
        with np.errstate(invalid="ignore"):         # a non-finite total: nan or 0, as torch
            for g in grads:
                g *= coef.astype(g.dtype)
    return total


def clip_grad_value_(parameters: Any, clip_value: float, foreach: bool | None = None) -> None:
    """g ← clamp(g, −clip_value, clip_value) for every parameter's ``.grad``, in place.

    Torch: torch.nn.utils.clip_grad_value_
    """
    fn = "clip_grad_value_"
    params = _parameters(fn, parameters)
    clip_value = _real(fn, "clip_value", clip_value, allow_inf=True)
    if clip_value < 0:
        raise ValueError(f"{fn}(): parameter 'clip_value' must be >= 0, got {clip_value}")
    _foreach(fn, foreach)
    for p in params:
        if p.grad is not None:
            np.clip(p.grad, -clip_value, clip_value, out=p.grad)
