"""Where the windows of a pooling call lie, and the checks of its arguments.

Both editions of the pooling family (``scratchnn.textbook.pooling`` and the fast engine
``scratchnn.functional.pooling``) validate and place their windows here, so that they accept,
reject and size exactly alike. Notation as in :mod:`scratchnn.textbook.pooling`: input
``(N, C, *S)`` or ``(C, *S)``, output ``(N, C, *O)``; window ``o`` along one dimension covers
the unpadded input positions ``o·s − p + j·dil``, ``j = 0..k−1``.
"""
from __future__ import annotations

import functools
import math
import numbers
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from .._validate import check_array, check_bool, check_int, ntuple
from ..window import Pads, check_window_args, output_size

Array = np.ndarray


class Geometry(NamedTuple):
    """Where the windows of one pooling call lie (all tuples have one entry per spatial dim)."""
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    padding: tuple[int, ...]       # the user's symmetric padding
    pads: Pads                     # (lo, hi) of the padded input: hi grows for ceil_mode
    size: tuple[int, ...]          # input spatial size S
    out: tuple[int, ...]           # output spatial size O


def check_input(fn: str, x: Any, nd: int, name: str = "input") -> Array:
    """``(C, *S)`` or ``(N, C, *S)`` float array; only the batch may be empty (as torch)."""
    check_array(fn, name, x, ndim=(nd + 1, nd + 2))
    if 0 in (x.shape[1:] if x.ndim == nd + 2 else x.shape):
        raise ValueError(f"{fn}(): parameter '{name}' must have non-zero channel and spatial "
                         f"sizes (only the batch may be empty), got shape {x.shape}")
    return x


def broadcast_one(v: Any) -> Any:
    """torch's pooling reads a one-element tuple as that int for every dimension
    (``avg_pool2d(x, 3, 1, (1,))``); anything else is passed on to be checked."""
    return v[0] if isinstance(v, (list, tuple)) and len(v) == 1 else v


def geometry(fn: str, x: Array, nd: int, kernel_size: Any, stride: Any, padding: Any,
             dilation: Any, ceil_mode: Any) -> Geometry:
    """Validate the window arguments against ``x`` and place the windows.

    ``padding`` may be at most ``kernel_size // 2`` (torch's check uses the kernel size, not
    the dilated one); with ``ceil_mode`` a last window may run past the input (but must start
    inside it or the left padding), so the high padding grows to hold it."""
    kernel_size, stride, padding, dilation = map(broadcast_one, (kernel_size, stride, padding,
                                                                 dilation))
    k, s, d = check_window_args(fn, nd, kernel_size, stride, dilation)
    p = ntuple(fn, "padding", padding, nd, min=0)
    if any(pi > ki // 2 for pi, ki in zip(p, k)):
        raise ValueError(f"{fn}(): parameter 'padding' must be at most half the kernel size "
                         f"(kernel_size // 2), got padding={p} for kernel_size={k}")
    ceil_mode = check_bool(fn, "ceil_mode", ceil_mode)
    size = x.shape[-nd:]
    out = tuple(output_size(fn, n, ki, si, di, pi, pi, ceil_mode)
                for n, ki, si, di, pi in zip(size, k, s, d, p))
    pads = tuple((pi, max(pi, (o - 1) * si + di * (ki - 1) + 1 - n - pi))
                 for n, ki, si, di, pi, o in zip(size, k, s, d, p, out))
    return Geometry(k, s, d, p, pads, size, out)


def padded_size(g: Geometry) -> tuple[int, ...]:
    """Spatial size of the padded input: S + lo + hi per dim."""
    return tuple(n + lo + hi for n, (lo, hi) in zip(g.size, g.pads))


def plane_strides(size: Sequence[int]) -> list[int]:
    """C-order strides of one spatial plane: flat = Σ_i pos_i · P_i."""
    return [math.prod(size[i + 1:]) for i in range(len(size))]


def outer(vectors: Sequence[Array], op: Callable = np.add) -> Array:
    """Combine one vector per spatial dim into an ``O``-shaped array (``op`` across dims)."""
    return functools.reduce(op, np.ix_(*vectors))


def first_real_offset(g: Geometry) -> Array:
    """(*O) kernel offset (flat, window order) of each window's first non-padding element:
    where torch reports a window whose extreme is ∓inf (padding and real ∓inf tie)."""
    per_dim = []
    for k, s, d, lo, o in zip(g.kernel, g.stride, g.dilation, g.padding, g.out):
        start = np.arange(o) * s - lo
        per_dim.append(np.minimum(np.maximum(-(start // d), 0), k - 1))   # ⌈−start/d⌉ ≥ 0
    return outer([j * ks for j, ks in zip(per_dim, plane_strides(g.kernel))])


def flat_indices(kid: Array, g: Geometry) -> Array:
    """torch's indices: the flat position, within the unpadded input plane, of the element
    that offset ``kid`` of each window reads: Σ_i (o_i·s_i − p_i + j_i·dil_i) · P_i."""
    P = plane_strides(g.size)
    base = outer([(np.arange(o) * s - lo) * p
                  for o, s, lo, p in zip(g.out, g.stride, g.padding, P)])       # (*O)
    table = np.array([sum(ki * di * pi for ki, di, pi in zip(k, g.dilation, P))
                      for k in np.ndindex(*g.kernel)], dtype=np.int64)          # per offset
    return base + table[kid]                                                    # (N, C, *O)


def avg_divisor(g: Geometry, count_include_pad: bool, divisor_override: int | None,
                dtype: np.dtype) -> Array:
    """(*O) divisors, torch's rule per dimension: a window ``[start, start + k)`` is first cut
    at the padded end ``S + p`` (so a ceil_mode window running past it counts only up to
    there); that length is the divisor with ``count_include_pad``, otherwise the window is cut
    to the input ``[0, S)``. Dimensions multiply; ``divisor_override`` replaces it all."""
    if divisor_override is not None:
        return np.asarray(divisor_override, dtype=dtype)
    lengths = []
    for k, s, p, n, o in zip(g.kernel, g.stride, g.padding, g.size, g.out):
        start = np.arange(o) * s - p
        end = np.minimum(start + k, n + p)
        lengths.append(end - start if count_include_pad
                       else np.minimum(end, n) - np.maximum(start, 0))
    return outer(lengths, np.multiply).astype(dtype)


def avg_geometry(fn: str, nd: int, x: Array, kernel_size: Any, stride: Any, padding: Any,
                 ceil_mode: Any, count_include_pad: Any, divisor_override: Any
                 ) -> tuple[Geometry, Array]:
    """Average pooling's checks, its windows and their divisors: ``(geometry, D)``."""
    check_input(fn, x, nd)
    g = geometry(fn, x, nd, kernel_size, stride, padding, 1, ceil_mode)
    if nd == 3 and any(n < k for n, k in zip(g.size, g.kernel)):     # torch's avg_pool3d only
        raise ValueError(f"{fn}(): parameter 'kernel_size' {g.kernel} must not exceed the "
                         f"input's spatial size {g.size} (padding aside)")
    count_include_pad = check_bool(fn, "count_include_pad", count_include_pad)
    if divisor_override is not None and check_int(fn, "divisor_override", divisor_override) == 0:
        raise ValueError(f"{fn}(): parameter 'divisor_override' must not be zero")
    return g, avg_divisor(g, count_include_pad, divisor_override, x.dtype)


def adaptive_output_size(fn: str, output_size: Any, size: tuple[int, ...]) -> tuple[int, ...]:
    """An int, or one entry per spatial dim where ``None`` keeps the input's size; every entry
    >= 1 (torch's forward allows 0 and returns an empty tensor its backward then rejects)."""
    nd = len(size)
    if isinstance(output_size, (list, tuple)):
        if len(output_size) != nd:
            raise ValueError(f"{fn}(): parameter 'output_size' must be an int or a sequence of "
                             f"{nd} ints or None, got {output_size!r}")
        return tuple(n if o is None else check_int(fn, "output_size", o, min=1)
                     for o, n in zip(output_size, size))
    return (check_int(fn, "output_size", output_size, min=1),) * nd


def adaptive_bounds(n: int, o: int) -> tuple[Array, Array]:
    """torch's adaptive windows over ``n`` inputs for ``o`` outputs: window i is
    ``[⌊i·n/o⌋, ⌈(i+1)·n/o⌉)``; returns ``(start, length)``, one entry per window."""
    i = np.arange(o)
    start = (i * n) // o
    end = -((-(i + 1) * n) // o)
    return start, end - start


def check_norm_type(fn: str, norm_type: Any) -> float:
    """lp pooling's ``p``: a real number, non-zero and not NaN (±inf allowed)."""
    if isinstance(norm_type, bool) or not isinstance(norm_type, numbers.Real):
        raise TypeError(f"{fn}(): parameter 'norm_type' must be a real number, got "
                        f"{norm_type!r}")
    p = float(norm_type)                       # a Python float: float32 stays float32
    if p == 0 or math.isnan(p):
        raise ValueError(f"{fn}(): parameter 'norm_type' must be non-zero and not NaN, "
                         f"got {norm_type!r}")
    return p


def unpool_args(fn: str, nd: int, x: Any, indices: Any, kernel_size: Any, stride: Any,
                padding: Any, output_size: Any) -> tuple[int, ...]:
    """max_unpool's checks; returns the output's spatial size. torch's rule: default
    ``(S − 1)·s − 2p + k``; a given size (d entries, or d + 2 with N, C first) must lie
    strictly within default ± stride; every index must lie inside the output plane."""
    check_input(fn, x, nd)
    if not isinstance(indices, np.ndarray) or indices.dtype.kind not in "iu":
        raise TypeError(f"{fn}(): parameter 'indices' must be an integer numpy.ndarray, got "
                        f"{getattr(indices, 'dtype', type(indices).__name__)}")
    if indices.shape != x.shape:
        raise ValueError(f"{fn}(): parameter 'indices' must have the input's shape "
                         f"{x.shape}, got {indices.shape}")
    kernel_size, stride, padding = map(broadcast_one, (kernel_size, stride, padding))
    k, s, _ = check_window_args(fn, nd, kernel_size, stride, 1)
    p = ntuple(fn, "padding", padding, nd, min=0)
    default = tuple((n - 1) * si - 2 * pi + ki
                    for n, ki, si, pi in zip(x.shape[-nd:], k, s, p))
    if output_size is None:
        out = default
    else:
        if not isinstance(output_size, (list, tuple)) or len(output_size) not in (nd, nd + 2):
            raise ValueError(f"{fn}(): parameter 'output_size' must be a sequence of {nd} or "
                             f"{nd + 2} ints, got {output_size!r}")
        out = tuple(check_int(fn, "output_size", o) for o in output_size[-nd:])
        for i, (o, dflt, si) in enumerate(zip(out, default, s)):
            if not dflt - si < o < dflt + si:
                raise ValueError(f"{fn}(): parameter 'output_size' {out} is invalid: dim {i} "
                                 f"must be strictly between {dflt - si} and {dflt + si}")
    if any(o < 0 for o in out):
        raise ValueError(f"{fn}(): parameter 'output_size' (from kernel_size, stride and "
                         f"padding) must be non-negative, got {out}")
    plane = math.prod(out)
    if indices.size and (indices.min() < 0 or indices.max() >= plane):
        raise ValueError(f"{fn}(): parameter 'indices' must lie in [0, {plane}) for output "
                         f"size {out}, got values in [{indices.min()}, {indices.max()}]")
    return out
