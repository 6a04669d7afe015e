"""N-d windowing: the one piece that convolution, transposed convolution and pooling share.

A window op over ``d`` spatial dimensions is described by per-dimension ``kernel``, ``stride``,
``dilation`` and padding ``(lo, hi)``. Output size along one dimension (torch's formula)::

    o = ⌊(L + lo + hi − dil·(k − 1) − 1) / s⌋ + 1          (⌈·⌉ with ceil_mode, where the
                                                          last window must start inside L + lo)

Everything here is dimension-generic: 1d, 2d and 3d ops call the same functions.

The central idea is the *kernel-offset slice*: for a kernel offset ``k = (k_1..k_d)`` the slice
``x_p[..., k_1·dil_1 : … : s_1, …]`` picks, for every output position ``o``, the input element
that window ``o`` sees at offset ``k``. Looping over the (few) kernel offsets and doing whole-array
work per offset vectorises over batch, channels and every output position at once:

* im2col (convolution forward) copies each offset slice into a column buffer;
* col2im (the backward of im2col) *adds* each offset's gradient into the same slice — no
  ``np.add.at``, because within one offset the slice hits every input element at most once;
* pooling keeps a running max/min/sum over what every window sees at each offset.

:func:`offset_slices` over a :func:`pad`-ded copy is that idea in its plainest form: the textbook
editions (``scratchnn.textbook``) read windows this way. The fast engines read the same values
through :mod:`scratchnn.perf.phases` (no padded copy, no strided inner loops).

This module is part of the contract layer: it imports only ``_validate``, and every layer above
it (textbook, functional, nn) may import it.
"""
from __future__ import annotations

import math
from typing import Any, Iterator, NamedTuple, Sequence

import numpy as np

from ._validate import check_int, ntuple

Pads = tuple[tuple[int, int], ...]


def parse_padding(fn: str, padding: Any, n: int, kernel: Sequence[int] = (),
                  dilation: Sequence[int] = (), stride: Sequence[int] = ()) -> Pads:
    """Normalise ``padding`` to ``((lo, hi),) * n``.

    Accepts an int, a sequence of ``n`` ints, ``'valid'`` (no padding) or ``'same'`` (output
    size = input size; needs stride 1). torch splits the total ``dil·(k−1)`` of ``'same'`` as
    ``lo = total // 2``, ``hi = total − lo``: an even kernel pads one more on the high side.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * n
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(f"{fn}(): parameter 'padding' 'same' is not supported for "
                                 f"strided convolutions (stride={tuple(stride)})")
            pads = []
            for k, d in zip(kernel, dilation):
                total = d * (k - 1)
                pads.append((total // 2, total - total // 2))
            return tuple(pads)
        raise ValueError(f"{fn}(): parameter 'padding' must be an int, a tuple of ints, "
                         f"'valid' or 'same', got {padding!r}")
    p = ntuple(fn, "padding", padding, n, min=0)
    return tuple((v, v) for v in p)


def output_size(fn: str, size: int, k: int, s: int, d: int, lo: int, hi: int,
                ceil_mode: bool = False) -> int:
    """Number of windows along one dimension (torch's formula, ceil_mode rule included)."""
    span = size + lo + hi - d * (k - 1) - 1
    if span < 0:
        raise ValueError(f"{fn}(): parameter 'kernel_size' {k} (dilation {d}) is larger than "
                         f"the padded input size {size + lo + hi}")
    if ceil_mode:
        o = -(-span // s) + 1
        if (o - 1) * s >= size + lo:      # the last window would start in the right padding
            o -= 1
    else:
        o = span // s + 1
    return o


def pad(x: np.ndarray, pads: Pads, value: float = 0.0) -> np.ndarray:
    """Pad the trailing ``len(pads)`` dims of ``x`` with a constant; returns ``x`` if no pad.

    Shapes: x (N, C, *S) -> (N, C, *(S_i + lo_i + hi_i)). A fresh array, so ``x`` is untouched.
    """
    if all(lo == 0 and hi == 0 for lo, hi in pads):
        return x
    lead = x.ndim - len(pads)
    shape = x.shape[:lead] + tuple(s + lo + hi for s, (lo, hi) in zip(x.shape[lead:], pads))
    out = np.full(shape, value, dtype=x.dtype)
    out[(Ellipsis,) + tuple(slice(lo, lo + s) for s, (lo, _) in zip(x.shape[lead:], pads))] = x
    return out


def unpad(xp: np.ndarray, pads: Pads) -> np.ndarray:
    """The adjoint of :func:`pad` (a view): drop the padding of the trailing dims."""
    if all(lo == 0 and hi == 0 for lo, hi in pads):
        return xp
    lead = xp.ndim - len(pads)
    return xp[(Ellipsis,) + tuple(slice(lo, xp.shape[lead + i] - hi)
                                  for i, (lo, hi) in enumerate(pads))]


def offset_slices(kernel: Sequence[int], stride: Sequence[int], dilation: Sequence[int],
                  out: Sequence[int]) -> Iterator[tuple[tuple[int, ...], tuple[slice, ...]]]:
    """Yield ``(k, sl)`` for every kernel offset ``k``, in row-major (window) order.

    ``xp[(..., *sl)]`` has shape ``(..., *out)``: element ``o`` of it is ``xp[..., k·dil + o·s]``,
    the value window ``o`` sees at offset ``k``.
    """
    for k in np.ndindex(*kernel):
        yield k, tuple(slice(ki * di, ki * di + si * (oi - 1) + 1, si)
                       for ki, di, si, oi in zip(k, dilation, stride, out))


def window_view(xp: np.ndarray, kernel: Sequence[int], stride: Sequence[int],
                dilation: Sequence[int]) -> np.ndarray:
    """A read-only strided view of every window: (..., *S_padded) -> (..., *out, *kernel).

    No copy is made; use it for reading (e.g. a readable reference implementation).
    """
    d = len(kernel)
    lead, sp = xp.shape[:-d], xp.shape[-d:]
    out = tuple((s - di * (k - 1) - 1) // st + 1
                for s, k, st, di in zip(sp, kernel, stride, dilation))
    strides = xp.strides[:-d]
    strides += tuple(xs * st for xs, st in zip(xp.strides[-d:], stride))
    strides += tuple(xs * di for xs, di in zip(xp.strides[-d:], dilation))
    return np.lib.stride_tricks.as_strided(xp, lead + out + tuple(kernel), strides,
                                           writeable=False)


def check_window_args(fn: str, n: int, kernel_size: Any, stride: Any, dilation: Any
                      ) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Normalise kernel/stride/dilation to n-tuples of ints >= 1 (``stride=None`` -> kernel)."""
    k = ntuple(fn, "kernel_size", kernel_size, n, min=1)
    s = k if stride is None or (isinstance(stride, (list, tuple)) and len(stride) == 0) \
        else ntuple(fn, "stride", stride, n, min=1)
    d = ntuple(fn, "dilation", dilation, n, min=1)
    return k, s, d


def numel(shape: Sequence[int]) -> int:
    return math.prod(shape)


__all__ = ["parse_padding", "output_size", "pad", "unpad", "offset_slices", "window_view",
           "check_window_args", "numel"]
