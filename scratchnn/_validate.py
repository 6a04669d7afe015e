"""Argument validation shared by every op and module.

Every check raises *before any work is done*, and its message names the function and the
parameter and says what was expected::

    conv2d(): parameter 'stride' must be >= 1, got 0

Ops call these helpers at the top of ``<op>_forward``; nothing here modifies an input.
"""
from __future__ import annotations

import numbers
from typing import Any, Sequence

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _where(fn: str, name: str) -> str:
    return f"{fn}(): parameter '{name}'"


def check_array(fn: str, name: str, x: Any, *, ndim: int | Sequence[int] | None = None,
                floating: bool = True) -> np.ndarray:
    """Check that ``x`` is a NumPy array (float32/float64 when ``floating``) of an allowed ndim.

    Returns ``x`` itself (never a copy): inputs are read, never written.
    """
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{_where(fn, name)} must be a numpy.ndarray, got {type(x).__name__}")
    if floating and x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{_where(fn, name)} must have dtype float32 or float64, got {x.dtype}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.ndim not in allowed:
            want = " or ".join(str(a) for a in allowed)
            raise ValueError(f"{_where(fn, name)} must be {want}-dimensional, "
                             f"got shape {x.shape}")
    return x


def check_same_dtype(fn: str, ref_name: str, ref: np.ndarray, **others: Any) -> None:
    """Every array in ``others`` (None allowed) must share ``ref``'s dtype: nothing is promoted."""
    for name, a in others.items():
        if a is not None and a.dtype != ref.dtype:
            raise TypeError(f"{_where(fn, name)} has dtype {a.dtype} but '{ref_name}' has "
                            f"{ref.dtype}; pass both as float32 or both as float64")


def check_int(fn: str, name: str, v: Any, *, min: int | None = None) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{_where(fn, name)} must be an int, got {v!r}")
    v = int(v)
    if min is not None and v < min:
        raise ValueError(f"{_where(fn, name)} must be >= {min}, got {v}")
    return v


def check_bool(fn: str, name: str, v: Any) -> bool:
    """A flag must be a real ``bool`` (``0``/``1``/``None`` are rejected, as torch's ops do)."""
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{_where(fn, name)} must be a bool, got {v!r}")
    return bool(v)


def check_float(fn: str, name: str, v: Any, *, lo: float | None = None, hi: float | None = None,
                lo_open: bool = False, hi_open: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{_where(fn, name)} must be a real number, got {v!r}")
    v = float(v)
    if not np.isfinite(v):
        raise ValueError(f"{_where(fn, name)} must be finite, got {v}")
    if lo is not None and (v <= lo if lo_open else v < lo):
        raise ValueError(f"{_where(fn, name)} must be {'>' if lo_open else '>='} {lo}, got {v}")
    if hi is not None and (v >= hi if hi_open else v > hi):
        raise ValueError(f"{_where(fn, name)} must be {'<' if hi_open else '<='} {hi}, got {v}")
    return v


def check_choice(fn: str, name: str, v: Any, choices: Sequence[Any]) -> Any:
    if v not in choices:
        raise ValueError(f"{_where(fn, name)} must be one of {list(choices)}, got {v!r}")
    return v


def ntuple(fn: str, name: str, v: Any, n: int, *, min: int | None = None) -> tuple[int, ...]:
    """Normalise an int or a length-``n`` sequence of ints to a tuple (torch's ``_ntuple``)."""
    if isinstance(v, (list, tuple)):
        if len(v) != n:
            raise ValueError(f"{_where(fn, name)} must be an int or a sequence of {n} ints, "
                             f"got {v!r}")
        return tuple(check_int(fn, name, e, min=min) for e in v)
    return (check_int(fn, name, v, min=min),) * n


def check_dim(fn: str, name: str, dim: Any, ndim: int) -> int:
    """Normalise a possibly negative axis the way torch does (a 0-d tensor has axis -1/0)."""
    dim = check_int(fn, name, dim)
    span = max(ndim, 1)
    if not -span <= dim < span:
        raise ValueError(f"{_where(fn, name)} must be in [{-span}, {span - 1}] for a "
                         f"{ndim}-d input, got {dim}")
    return dim % span


def check_float_dtype(fn: str, name: str, dtype: Any, *, default: Any = None) -> np.dtype | None:
    """``None`` -> ``default`` (as a dtype, or None); otherwise float32/float64 (anything
    ``numpy.dtype`` reads as one, e.g. ``np.float32`` or ``'float64'``) as a ``numpy.dtype``."""
    if dtype is None:
        return None if default is None else np.dtype(default)
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"{_where(fn, name)} must be None, float32 or float64, got {dtype!r}")
    return dt


def check_inplace(fn: str, inplace: Any) -> None:
    """Accept torch's ``inplace`` keyword, but only ``False``: scratchnn never modifies an input,
    so ``inplace=True`` is refused rather than silently ignored."""
    if not isinstance(inplace, (bool, np.bool_)):
        raise TypeError(f"{_where(fn, 'inplace')} must be a bool, got {inplace!r}")
    if inplace:
        raise ValueError(f"{_where(fn, 'inplace')} must be False: scratchnn never modifies "
                         f"its inputs; write y = {fn}(x) instead")


def check_state_keys(fn: str, given: Any, expected: Any) -> None:
    """A state_dict must have exactly the ``expected`` keys: a KeyError lists what is missing
    and what is unexpected."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    if missing or unexpected:
        raise KeyError(f"{fn}(): parameter 'state_dict' has missing keys {missing} and "
                       f"unexpected keys {unexpected}")
