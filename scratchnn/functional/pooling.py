"""Pooling: max, min, mean (average), adaptive, power-average, and max-unpooling; 1d/2d/3d.

Notation: ``x`` input ``(N, C, *S)`` or unbatched ``(C, *S)`` with ``d = len(S)`` spatial dims,
``y`` output ``(N, C, *O)``, ``dy = ∂L/∂y``, ``dx = ∂L/∂x``. Window ``o`` along one dimension
covers the (zero-based, unpadded) input positions ``o·s − lo + j·dil`` for ``j = 0..k−1``.

Every op is ONE N-d implementation (``_extreme_pool_*``, ``_avg_pool_*``, ...) that the 1d, 2d
and 3d functions call, built on the windowing core :mod:`scratchnn.functional._window` that
convolution uses too: loop over the ``k_1·…·k_d`` kernel offsets and do whole-array work on what
every window sees at that offset (every batch, channel and output position at once)::

    for j in kernel offsets (window order):
        v = offset j of every window  # (N, C, *O)
        m = max(m, v)                 # running max (min, sum)

Max and min pooling read the offsets from a *polyphase* copy of the padded input
(:class:`Polyphase`): split by stride phase, each offset is a contiguous flat run, so every pass
is one long SIMD loop instead of a strided view whose inner loop is a single output row (~6×
slower). The planes are split into one range per thread (:func:`scratchnn.perf.threads.ranges`); the results do not
depend on the thread count.

Average pooling needs no padded copy at all: a window sum is separable, so it sums along one
dimension at a time (:func:`_box_sum`, adjoint :func:`_box_spread`), ``k_1 + … + k_d`` passes
over clipped slices (zero padding adds nothing) instead of ``k_1·…·k_d``; along the last
dimension one strided flat run per offset covers every row at once (:func:`_flat_ok`).

Conventions (torch's, CPU):

* max/min ties: the gradient (and the index) goes to the **first** extreme element in window
  order (row-major over the kernel). A NaN always wins, and the **last** NaN of a window is the
  one reported (torch's ``val > maxval || isnan(val)``). Padding never wins: it is −∞ for max
  (+∞ for min); a window whose real elements are all −∞ reports its first real element;
* indices are flat into each input plane's spatial dims (``h·W + w`` in 2d, ``(t·H + h)·W + w``
  in 3d), int64, ignoring padding;
* ``padding`` may be at most ``kernel_size // 2`` (torch's check uses the kernel size, not the
  dilated one); with ``ceil_mode`` a last window may run past the input (but must start inside
  it or the left padding).
"""
from __future__ import annotations

import functools
import inspect
import math
import numbers
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from .._validate import check_array, check_bool, check_int, ntuple
from ..autodiff import defop
from ..perf.phases import phase_layout
from ..perf.threads import ranges
from ..perf.bitwise import mask_select
from ..window import Pads, check_window_args, output_size

Array = np.ndarray

__all__ = [
    "max_pool1d", "max_pool2d", "max_pool3d", "min_pool1d", "min_pool2d", "min_pool3d",
    "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
    "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
    "max_unpool1d", "max_unpool2d", "max_unpool3d", "lp_pool1d", "lp_pool2d", "lp_pool3d",
]


# --------------------------------------------------------------------------- geometry & checks
class Geometry(NamedTuple):
    """Where the windows of one pooling call lie (all tuples have one entry per spatial dim)."""
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    padding: tuple[int, ...]       # the user's symmetric padding
    pads: Pads                     # (lo, hi) of the padded buffer: hi grows for ceil_mode
    size: tuple[int, ...]          # input spatial size S
    out: tuple[int, ...]           # output spatial size O


def _check_input(fn: str, x: Any, nd: int, name: str = "input") -> Array:
    """``(C, *S)`` or ``(N, C, *S)`` float array; only the batch may be empty (as torch)."""
    check_array(fn, name, x, ndim=(nd + 1, nd + 2))
    if 0 in (x.shape[1:] if x.ndim == nd + 2 else x.shape):
        raise ValueError(f"{fn}(): parameter '{name}' must have non-zero channel and spatial "
                         f"sizes (only the batch may be empty), got shape {x.shape}")
    return x


def _geometry(fn: str, x: Array, nd: int, kernel_size: Any, stride: Any, padding: Any,
              dilation: Any, ceil_mode: Any) -> Geometry:
    """Validate the window arguments against ``x`` and place the windows."""
    k, s, d = check_window_args(fn, nd, kernel_size, stride, dilation)
    p = ntuple(fn, "padding", padding, nd, min=0)
    if any(pi > ki // 2 for pi, ki in zip(p, k)):
        raise ValueError(f"{fn}(): parameter 'padding' must be at most half the kernel size "
                         f"(kernel_size // 2), got padding={p} for kernel_size={k}")
    ceil_mode = check_bool(fn, "ceil_mode", ceil_mode)
    size = x.shape[-nd:]
    out = tuple(output_size(fn, n, ki, si, di, pi, pi, ceil_mode)
                for n, ki, si, di, pi in zip(size, k, s, d, p))
    # hi padding: enough for the last window, which ceil_mode lets run past the input
    pads = tuple((pi, max(pi, (o - 1) * si + di * (ki - 1) + 1 - n - pi))
                 for n, ki, si, di, pi, o in zip(size, k, s, d, p, out))
    return Geometry(k, s, d, p, pads, size, out)


def _plane_strides(size: Sequence[int]) -> list[int]:
    """C-order strides of one spatial plane: flat = Σ_i pos_i · P_i."""
    return [math.prod(size[i + 1:]) for i in range(len(size))]


def _outer(vectors: Sequence[Array], op: Callable = np.add) -> Array:
    """Combine one vector per spatial dim into an ``O``-shaped array (``op`` across dims)."""
    return functools.reduce(op, np.ix_(*vectors))


def _tuple_output(out: Array, idx: Array, return_indices: bool) -> Any:
    return (out, idx) if return_indices else out


def _values_grad(dy: Any) -> Array:
    """The gradient of the values output (``dy`` is a pair when indices were returned)."""
    return dy[0] if isinstance(dy, tuple) else dy


# --------------------------------------------------------------------------- polyphase layout
class Polyphase(NamedTuple):
    """The padded input split into its stride phases, so that every kernel offset is a
    contiguous *flat run* (one long SIMD-friendly ufunc pass) instead of a strided view.

    The layout is :class:`~scratchnn.perf.phases.PhaseLayout` (convolution's shifted GEMM
    uses it too): offset ``j`` reads phase ``u_j`` shifted by ``sh_j`` grid steps. Each used
    phase is stored as a C-order grid of ``G`` points per dimension (``(U, n, *G)`` for ``U``
    used phases and ``n`` planes) and read as one flat array; offset ``j`` is the flat run
    starting at ``u_j·n·|G| + sh_j`` of length ``n·|G|`` — element ``q`` of it is what window
    ``q`` sees at offset ``j`` for every plane and every *valid* grid position ``q < O``.
    Positions with some ``q_i ≥ O_i`` are scratch: computed, never reported (their reads may
    cross into the next row or plane; a ``slack`` tail keeps them inside the buffer).
    """
    grid: tuple[int, ...]                         # G
    offsets: list[tuple[int, int]]                # per kernel offset (window order): (u, shift)
    phases: list[tuple[tuple[slice, ...], tuple[slice, ...]]]   # per used phase:
    #                                               (its box in the grid, its input slices)
    covers: bool       # every grid point of every used phase holds an input element (no fill)
    complete: bool     # every input element lies in some used phase (dx needs no zero-fill)
    single: bool       # every used phase is read by exactly one offset (disjoint windows)
    slack: int         # the largest flat shift

    def buffer(self, n: int, dtype: np.dtype, fill: float | None) -> tuple[Array, Array]:
        """``(flat, grids)``: a fresh flat buffer for ``n`` planes and its ``(U, n, *G)``
        view; filled with ``fill`` where no input element goes (``None``: zeros everywhere)."""
        size = len(self.phases) * n * math.prod(self.grid)
        if fill is None:
            flat = np.zeros(size + self.slack, dtype)
        else:
            flat = np.empty(size + self.slack, dtype)
            flat[size if self.covers else 0:] = fill
        return flat, flat[:size].reshape((len(self.phases), n) + self.grid)

    def run(self, j: int, flat: Array, n: int) -> Array:
        """Offset ``j``'s flat run of ``flat`` (length ``n·|G|``), see the class docstring."""
        u, shift = self.offsets[j]
        start = u * n * math.prod(self.grid) + shift
        return flat[start:start + n * math.prod(self.grid)]

    def split(self, x: Array, grids: Array) -> None:
        """Scatter the planes ``x`` ``(n, *S)`` into their phases (one strided copy each)."""
        for u, (box, src) in enumerate(self.phases):
            grids[(u, slice(None)) + box] = x[(slice(None),) + src]

    @property
    def direct(self) -> bool:
        """Each used phase is exactly one offset's unshifted run: a backward can write every
        offset's contribution straight into dx (:meth:`place`), with no phase buffer."""
        return self.single and self.slack == 0

    def place(self, u: int, grid: Array, dx: Array) -> None:
        """``dx[phase u's inputs] = grid`` for a ``(n, *G)`` grid of phase ``u``."""
        box, src = self.phases[u]
        dx[(slice(None),) + src] = grid[(slice(None),) + box]

    def merge(self, grids: Array, dx: Array) -> None:
        """The adjoint of :meth:`split`: gather the phases back into ``dx`` ``(n, *S)``;
        elements in no phase (never read by a window) get 0."""
        if not self.complete:
            dx.fill(0)
        for u in range(len(self.phases)):
            self.place(u, grids[u], dx)


@functools.lru_cache(maxsize=64)
def _polyphase(g: Geometry) -> Polyphase:
    """Lay out the windows of ``g`` in phases (see :class:`Polyphase`): the shared
    :func:`~scratchnn.perf.phases.phase_layout` (convolution's shifted GEMM reads the
    same layout), plus what the pooling passes need to know about it.

    Cached per geometry (a forward and its backward, every step of a training loop, lay out
    the same windows; ~35 µs each time otherwise). The result is shared: never modify it."""
    lay = phase_layout(g.kernel, g.stride, g.dilation, [lo for lo, _ in g.pads], g.size, g.out)
    empty = (slice(0, 0),) * len(lay.grid)
    phases = [box if box is not None else (empty, empty) for box in lay.boxes]
    covers = all(b.start == 0 and b.stop == G for box, _ in phases for b, G in zip(box, lay.grid))
    inside = sum(math.prod(b.stop - b.start for b in box) for box, _ in phases)
    uses = np.bincount([u for u, _ in lay.taps], minlength=len(lay.phases))
    return Polyphase(lay.grid, list(lay.taps), phases, covers, inside == math.prod(g.size),
                     bool((uses == 1).all()), lay.slack)


def _valid(grid_array: Array, out: tuple[int, ...]) -> Array:
    """The valid part ``(..., *O)`` of a ``(..., *G)`` grid array (a view)."""
    return grid_array[(Ellipsis,) + tuple(slice(0, o) for o in out)]


# --------------------------------------------------------------------------- threads
def _planes(x: Array, nd: int) -> Array:
    """``(N, C, *S)`` or ``(C, *S)`` -> ``(N·C, *S)``: every plane is pooled alike."""
    return x.reshape((-1,) + x.shape[-nd:])


# --------------------------------------------------------------------------- running max / min
def _kid_dtype(n: int) -> type:
    return np.uint8 if n <= 255 else np.uint16 if n <= 65535 else np.uint32


def _running_extreme(view: Callable[[int], Array], n: int, largest: bool,
                     out: tuple[Array, Array] | None = None) -> tuple[Array, Array]:
    """``m = max_j view(j)`` (or min) elementwise over ``j = 0..n−1``, and ``kid`` = the first
    ``j`` attaining it — or the last NaN, as torch's ``val > maxval || isnan(val)``.

    ``kid`` only ever grows (offsets are visited in increasing order), so "set kid to j where
    v wins" is ``kid = max(kid, wins·j)``: two cheap integer ops instead of a masked copy.
    The NaN rule costs an extra pass, taken only when a NaN reached the output. ``out``: the
    ``(m, kid)`` arrays to fill (``kid`` of :func:`_kid_dtype` ``(n)``).
    """
    wins = np.greater if largest else np.less
    keep = np.maximum if largest else np.minimum          # both propagate NaN
    kt = _kid_dtype(n)
    v0 = view(0)
    m, kid = out if out is not None else (np.empty(v0.shape, v0.dtype), np.empty(v0.shape, kt))
    better = np.empty(m.shape, bool)
    step = np.empty(m.shape, kt)
    for nan_aware in (False, True):
        np.copyto(m, v0)
        kid.fill(0)
        for j in range(1, n):
            v = view(j)
            wins(v, m, out=better)
            if nan_aware:
                better |= np.isnan(v)
            keep(m, v, out=m)
            np.multiply(better, kt(j), out=step)          # j where v wins, else 0
            np.maximum(kid, step, out=kid)
        if nan_aware or not np.isnan(m).any():
            return m, kid
    raise AssertionError("unreachable")


class ExtremePoolCtx(NamedTuple):
    kid: Array                 # (N·C, *G): which kernel offset won each window
    #                            (phase-grid layout, see Polyphase)
    geom: Geometry
    shape: tuple[int, ...]     # the input's shape


def _extreme_pool_forward(fn: str, nd: int, largest: bool, input: Array, kernel_size: Any,
                          stride: Any, padding: Any, dilation: Any, ceil_mode: Any,
                          return_indices: Any) -> tuple[Any, ExtremePoolCtx]:
    """y[o] = max_j x[o·s − lo + j·dil]  (min for min pooling); padding never wins.

    Shapes:  x (N, C, *S) or (C, *S) -> y (N, C, *O) [, indices (N, C, *O) int64]
             O = ⌊(S + 2p − dil·(k − 1) − 1) / s⌋ + 1  (⌈·⌉ with ceil_mode)
    Saves:   kid, the winning kernel offset of every window (uint8 for up to 255 offsets):
             the backward sends each dy to that offset's element.

    Planes are pooled in cache-sized chunks (:func:`scratchnn.perf.threads.ranges`), each padded with ∓∞ into
    its own small buffer, on all worker threads.
    """
    _check_input(fn, input, nd)
    g = _geometry(fn, input, nd, kernel_size, stride, padding, dilation, ceil_mode)
    return_indices = check_bool(fn, "return_indices", return_indices)
    fill = -np.inf if largest else np.inf
    x = _planes(input, nd)                                              # (N·C, *S)
    pp = _polyphase(g)
    n_off = len(pp.offsets)
    y = np.empty((x.shape[0],) + g.out, input.dtype)                    # (N·C, *O)
    kid = np.empty((x.shape[0],) + pp.grid, _kid_dtype(n_off))          # (N·C, *G)
    padded = any(lo or hi for lo, hi in g.pads)
    first_real = None
    if padded:
        first_real = np.zeros(pp.grid, kid.dtype)
        _valid(first_real, g.out)[...] = _first_real_offset(g)

    def step(a: int, b: int) -> None:
        n = b - a
        flat, grids = pp.buffer(n, input.dtype, fill)
        pp.split(x[a:b], grids)
        m = y[a:b] if pp.grid == g.out else np.empty((n,) + pp.grid, input.dtype)
        k = kid[a:b]
        _running_extreme(lambda j: pp.run(j, flat, n), n_off, largest,
                         out=(m.reshape(-1), k.reshape(-1)))
        if padded:
            lost = m == fill                        # padding (or only ±inf) "won": torch
            np.copyto(k, first_real, where=lost)    # reports the window's first real element
        if m is not y[a:b]:
            y[a:b] = _valid(m, g.out)

    ranges(step, x.shape[0], kid.size * n_off)
    lead = input.shape[:-nd]
    idx = (_flat_indices(_valid(kid, g.out), g).reshape(lead + g.out) if return_indices
           else None)
    return (_tuple_output(y.reshape(lead + g.out), idx, return_indices),
            ExtremePoolCtx(kid, g, input.shape))


def _first_real_offset(g: Geometry) -> Array:
    """(*O) kernel offset of each window's first non-padding element (torch's start index)."""
    per_dim = []
    for k, s, d, lo, o in zip(g.kernel, g.stride, g.dilation, g.padding, g.out):
        start = np.arange(o) * s - lo
        per_dim.append(np.minimum(np.maximum(-(start // d), 0), k - 1))   # ⌈−start/d⌉ ≥ 0
    kstrides = _plane_strides(g.kernel)
    return _outer([j * ks for j, ks in zip(per_dim, kstrides)])


def _flat_indices(kid: Array, g: Geometry) -> Array:
    """torch's indices: flat position, within the unpadded input plane, of offset ``kid``."""
    P = _plane_strides(g.size)
    base = _outer([(np.arange(o) * s - lo) * p
                   for o, s, lo, p in zip(g.out, g.stride, g.padding, P)])      # (*O)
    table = np.array([sum(ki * di * pi for ki, di, pi in zip(k, g.dilation, P))
                      for k in np.ndindex(*g.kernel)], dtype=np.int64)
    return base + table[kid]                                                    # (N, C, *O)


def _extreme_pool_backward(ctx: ExtremePoolCtx, dy: Any) -> Array:
    """dx[o·s − lo + kid[o]·dil] += dy[o]: each window's gradient goes to its winner only.

    In the forward's phase layout (:class:`Polyphase`), one pass per kernel offset j: the
    windows won by j add ``dy·[kid = j]`` into j's flat run of a zeroed phase buffer; the
    phases are then gathered into dx. When each phase is one offset's unshifted run
    (``direct``, e.g. k2 s2) ``dy·[kid = j]`` is written straight into j's strided view of dx,
    which it fills: dx is written once, with no buffer and no zero fill. Chunked and threaded
    as the forward.

    ``dy·[kid = j]`` is :func:`~scratchnn.perf.bitwise.mask_select` (a bitwise select:
    branch-free, and an infinite or NaN dy reaches only its winner, as in torch).
    """
    g = ctx.geom
    nd = len(g.size)
    pp = _polyphase(g)
    dy = _planes(_values_grad(dy), nd)                                  # (N·C, *O)
    dx = np.empty((dy.shape[0],) + g.size, dy.dtype)                    # (N·C, *S)

    def step(a: int, b: int) -> None:
        n = b - a
        if pp.grid == g.out:
            d = dy[a:b]
        else:                                       # scratch positions get dy = 0
            d = np.zeros((n,) + pp.grid, dy.dtype)
            _valid(d, g.out)[...] = dy[a:b]
        kid = ctx.kid[a:b]
        won = np.empty(d.shape, bool)
        if pp.direct:                               # k2 s2: each offset owns its phase
            if not pp.complete:
                dx[a:b].fill(0)
            for j, (u, _) in enumerate(pp.offsets):
                box, src = pp.phases[u]
                np.equal(kid, j, out=won)
                mask_select(d[(slice(None),) + box], won[(slice(None),) + box],
                           out=dx[a:b][(slice(None),) + src])              # dy·[kid = j]
            return
        flat, grids = pp.buffer(n, dy.dtype, None)
        gj = np.empty(d.shape, dy.dtype)
        for j in range(len(pp.offsets)):
            np.equal(kid, j, out=won)
            run = pp.run(j, flat, n)
            run += mask_select(d, won, out=gj).reshape(-1)                  # dy·[kid = j]
        pp.merge(grids, dx[a:b])

    ranges(step, dy.shape[0], ctx.kid.size * len(pp.offsets))
    return dx.reshape(ctx.shape)


def max_pool1d_forward(input: Array, kernel_size: Any, stride: Any = None, padding: Any = 0,
                       dilation: Any = 1, ceil_mode: bool = False, return_indices: bool = False
                       ) -> tuple[Any, ExtremePoolCtx]:
    """1-d max pooling; see :func:`_extreme_pool_forward`.  Torch: F.max_pool1d"""
    return _extreme_pool_forward("max_pool1d", 1, True, input, kernel_size, stride, padding,
                                 dilation, ceil_mode, return_indices)


def max_pool2d_forward(input: Array, kernel_size: Any, stride: Any = None, padding: Any = 0,
                       dilation: Any = 1, ceil_mode: bool = False, return_indices: bool = False
                       ) -> tuple[Any, ExtremePoolCtx]:
    """2-d max pooling; see :func:`_extreme_pool_forward`.  Torch: F.max_pool2d"""
    return _extreme_pool_forward("max_pool2d", 2, True, input, kernel_size, stride, padding,
                                 dilation, ceil_mode, return_indices)


def max_pool3d_forward(input: Array, kernel_size: Any, stride: Any = None, padding: Any = 0,
                       dilation: Any = 1, ceil_mode: bool = False, return_indices: bool = False
                       ) -> tuple[Any, ExtremePoolCtx]:
    """3-d max pooling; see :func:`_extreme_pool_forward`.  Torch: F.max_pool3d"""
    return _extreme_pool_forward("max_pool3d", 3, True, input, kernel_size, stride, padding,
                                 dilation, ceil_mode, return_indices)


def min_pool1d_forward(input: Array, kernel_size: Any, stride: Any = None, padding: Any = 0,
                       dilation: Any = 1, ceil_mode: bool = False, return_indices: bool = False
                       ) -> tuple[Any, ExtremePoolCtx]:
    """1-d min pooling; see :func:`_extreme_pool_forward`.
    Torch:   none; the reference is ``-F.max_pool1d(-x)`` (indices too)"""
    return _extreme_pool_forward("min_pool1d", 1, False, input, kernel_size, stride, padding,
                                 dilation, ceil_mode, return_indices)


def min_pool2d_forward(input: Array, kernel_size: Any, stride: Any = None, padding: Any = 0,
                       dilation: Any = 1, ceil_mode: bool = False, return_indices: bool = False
                       ) -> tuple[Any, ExtremePoolCtx]:
    """2-d min pooling; see :func:`_extreme_pool_forward`.
    Torch:   none; the reference is ``-F.max_pool2d(-x)`` (indices too)"""
    return _extreme_pool_forward("min_pool2d", 2, False, input, kernel_size, stride, padding,
                                 dilation, ceil_mode, return_indices)


def min_pool3d_forward(input: Array, kernel_size: Any, stride: Any = None, padding: Any = 0,
                       dilation: Any = 1, ceil_mode: bool = False, return_indices: bool = False
                       ) -> tuple[Any, ExtremePoolCtx]:
    """3-d min pooling; see :func:`_extreme_pool_forward`.
    Torch:   none; the reference is ``-F.max_pool3d(-x)`` (indices too)"""
    return _extreme_pool_forward("min_pool3d", 3, False, input, kernel_size, stride, padding,
                                 dilation, ceil_mode, return_indices)


# --------------------------------------------------------------------------- average pooling
def _avg_divisor(g: Geometry, count_include_pad: bool, divisor_override: int | None,
                 dtype: np.dtype) -> Array:
    """(*O) divisors, torch's rule per dimension: a window ``[start, start + k)`` is first cut
    at the padded end ``S + p`` (so a ceil_mode window running past it counts only up to
    there), that length is the divisor with ``count_include_pad``; otherwise the window is cut
    to the input ``[0, S)``. Dimensions multiply."""
    if divisor_override is not None:
        return np.asarray(divisor_override, dtype=dtype)
    lengths = []
    for k, s, p, n, o in zip(g.kernel, g.stride, g.padding, g.size, g.out):
        start = np.arange(o) * s - p
        end = np.minimum(start + k, n + p)
        lengths.append(end - start if count_include_pad
                       else np.minimum(end, n) - np.maximum(start, 0))
    return _outer(lengths, np.multiply).astype(dtype)


class AvgPoolCtx(NamedTuple):
    divisor: Array             # (*O) or a scalar: what each window's sum was divided by
    geom: Geometry
    shape: tuple[int, ...]     # the input's shape


# A window sum is separable: along each dimension in turn, y_i[o] = Σ_j y_{i−1}[o·s − p + j]
# (clipped to the input: zero padding adds nothing, so no padded copy is made). Each pass
# below is a whole-array ufunc call over one offset's slice.
Term = tuple[int, int, Array]      # (a, b, v): add v (outer, b − a, inner) into dst[:, a:b]


def _accumulate(dst: Array, terms: Sequence[Term]) -> None:
    """``dst (outer, M, inner) = Σ terms`` in the given order; where no term reaches, 0.

    The first two terms go in one ``np.add`` over their common range (no copy-then-add);
    the parts only one of them covers are copied, and the rest are added in place. Every
    element is thus ``((t_1 + t_2) + t_3) + …`` over the terms that reach it, in order — the
    same value however the terms are cut (up to the sign of a zero)."""
    terms = [t for t in terms if t[1] > t[0]]
    M = dst.shape[1]
    if len(terms) >= 2 and max(terms[0][0], terms[1][0]) < min(terms[0][1], terms[1][1]):
        (a0, b0, v0), (a1, b1, v1) = terms[:2]
        a, b = max(a0, a1), min(b0, b1)
        np.add(v0[:, a - a0:b - a0], v1[:, a - a1:b - a1], out=dst[:, a:b])
        (lo, va, ta), (hi, vb, tb) = min((a0, v0, a0), (a1, v1, a1), key=lambda t: t[0]), \
            max((b0, v0, a0), (b1, v1, a1), key=lambda t: t[0])
        if lo < a:
            np.copyto(dst[:, lo:a], va[:, lo - ta:a - ta])    # only the earlier term starts
        if b < hi:
            np.copyto(dst[:, b:hi], vb[:, b - tb:hi - tb])    # only the later term ends
        rest = terms[2:]
    elif terms:
        lo, hi, v = terms[0]
        np.copyto(dst[:, lo:hi], v)
        rest = terms[1:]
    else:
        lo = hi = M
        rest = []
    if lo > 0:
        dst[:, :lo] = 0
    if hi < M:
        dst[:, hi:] = 0
    for a, b, v in rest:
        np.add(dst[:, a:b], v, out=dst[:, a:b])


def _offset_ranges(k: int, s: int, lo: int, L: int, O: int) -> list[tuple[int, int]]:
    """Per kernel offset j, the windows ``[o0, o1)`` whose element ``o·s − lo + j`` lies in
    ``[0, L)`` (the others see padding, or ceil_mode's overhang, there)."""
    out = []
    for j in range(k):
        o0 = max(0, -((j - lo) // s))
        out.append((o0, max(o0, min(O, (L - 1 + lo - j) // s + 1))))
    return out


def _flat_ok(src: Array, dst: Array, s: int, pooled: bool) -> bool:
    """The last dimension (``inner == 1``) with rows of ``L = O·s``: window ``o`` of row ``r``
    then reads flat element ``(r·O + o)·s + j − lo``, one strided 1-d run per offset over all
    rows at once (no per-row inner loops)."""
    L, O = (src.shape[1], dst.shape[1]) if pooled else (dst.shape[1], src.shape[1])
    return src.shape[2] == 1 and L == O * s and _FLAT_RUNS


_FLAT_RUNS = True       # tests switch the flat runs off to compare with the sliced passes


def _box_sum(src: Array, dst: Array, k: int, s: int, lo: int) -> None:
    """``dst[:, o] = Σ_j src[:, o·s − lo + j]`` over ``j < k`` with ``0 ≤ o·s − lo + j < L``:
    src ``(outer, L, inner)`` -> dst ``(outer, O, inner)``, one dimension of a window sum.

    Sliced: offset j adds the strided slice ``src[:, o0·s − lo + j :: s]`` into
    ``dst[:, o0:o1]``. Flat (:func:`_flat_ok`): offset j adds one strided run over all rows;
    in a window ``o`` that offset j must skip, that run reads a neighbouring row's element,
    so those few boundary windows are summed again, sliced, afterwards."""
    outer, L, _ = src.shape
    O = dst.shape[1]
    ranges = _offset_ranges(k, s, lo, L, O)
    if not _flat_ok(src, dst, s, True):
        _accumulate(dst, [(o0, o1, src[:, o0 * s - lo + j::s][:, :o1 - o0])
                          for j, (o0, o1) in enumerate(ranges)])
        return
    sf, df = src.reshape(1, -1, 1), dst.reshape(1, -1, 1)
    terms = []
    for j in range(k):                          # run q reads sf[q·s + c], kept inside src
        c = j - lo
        qa, qb = max(0, -(c // s)), min(df.shape[1], (sf.shape[1] - 1 - c) // s + 1)
        terms.append((qa, qb, sf[:, qa * s + c::s][:, :qb - qa]))
    _accumulate(df, terms)
    d2, s2 = dst.reshape(outer, O, 1), src.reshape(outer, L, 1)
    for o in range(O):
        if any(not o0 <= o < o1 for o0, o1 in ranges):
            _accumulate(d2[:, o:o + 1], [(0, 1, s2[:, i:i + 1]) for i in
                                         (o * s - lo + j for j, (o0, o1) in enumerate(ranges)
                                          if o0 <= o < o1)])


def _box_spread(src: Array, dst: Array, k: int, s: int, lo: int) -> None:
    """The adjoint of :func:`_box_sum`: ``dst[:, i] = Σ src[:, o]`` over the (o, j) with
    ``o·s − lo + j = i``; src ``(outer, O, inner)`` -> dst ``(outer, L, inner)``.

    The positions ``i ≡ r (mod s)`` form one sliced (or flat) view ``dst[:, r::s]``; the
    offsets with ``(j − lo) mod s = r`` write it, at view index ``o + (j − lo − r)/s``. In
    the flat form an offset's skipped windows wrap into a neighbouring row's elements, so
    those positions are summed again, sliced, afterwards."""
    outer, O, _ = src.shape
    L = dst.shape[1]
    ranges = _offset_ranges(k, s, lo, L, O)
    flat = _flat_ok(src, dst, s, False)
    sv, dv = (src.reshape(1, -1, 1), dst.reshape(1, -1, 1)) if flat else (src, dst)
    for r in range(s):
        terms = []
        for j, (o0, o1) in enumerate(ranges):
            c = j - lo
            if c % s != r:
                continue
            if flat:                            # src run q lands on dv[q·s + c], kept inside
                o0, o1 = max(0, -(c // s)), min(sv.shape[1], (dv.shape[1] - 1 - c) // s + 1)
            d = (c - r) // s
            terms.append((o0 + d, o1 + d, sv[:, o0:o1]))
        _accumulate(dv[:, r::s], terms)
    if flat:
        d2, s2 = dst.reshape(outer, L, 1), src.reshape(outer, O, 1)
        wrapped = {(o * s - lo + j) % L for j, (o0, o1) in enumerate(ranges)
                   for o in [*range(o0), *range(o1, O)]}
        for i in sorted(wrapped):
            _accumulate(d2[:, i:i + 1], [(0, 1, s2[:, o:o + 1]) for j, (o0, o1) in
                                         enumerate(ranges) for o in range(o0, o1)
                                         if o * s - lo + j == i])


_BLOCK_BYTES = 1 << 22     # 4 MiB: as fast as one block here; 1 MiB blocks cost 20 % more


def _separable(src: Array, dst: Array, dims: Sequence[int], sizes: Sequence[int],
               step: Callable[[Array, Array, int, int, int], None], g: Geometry,
               div: Array, divide_first: bool) -> None:
    """Planes ``src (P, *A)`` -> ``dst (P, *B)``: one ``step`` (:func:`_box_sum` or
    :func:`_box_spread`) along each spatial dim in ``dims``, that dim's length becoming
    ``sizes[d]``, and a division by ``div`` first (``divide_first``) or last.

    Planes go in blocks of about ``_BLOCK_BYTES`` (at the block's largest stage): the
    intermediate arrays are block-sized and reused from block to block, so the extra memory
    stays a few MiB whatever the batch. Each block computes its planes exactly as one block
    would (bit-identical for any block size)."""
    shapes = [src.shape[1:]]
    for d in dims:
        shapes.append(shapes[-1][:d] + (sizes[d],) + shapes[-1][d + 1:])
    P = src.shape[0]
    block = max(1, min(P, _BLOCK_BYTES // (src.itemsize * max(map(math.prod, shapes)))))
    mids = [np.empty((block,) + shp, dst.dtype) for shp in shapes[1:-1]]
    first = np.empty((block,) + shapes[0], dst.dtype) if divide_first else None
    for a in range(0, P, block):
        n = min(block, P - a)
        cur = src[a:a + n]
        if first is not None:
            cur = np.divide(cur, div, out=first[:n])
        for i, d in enumerate(dims):
            nxt = dst[a:a + n] if i == len(dims) - 1 else mids[i][:n]
            outer = n * math.prod(nxt.shape[1:d + 1])
            step(cur.reshape(outer, shapes[i][d], -1), nxt.reshape(outer, sizes[d], -1),
                 g.kernel[d], g.stride[d], g.padding[d])
            cur = nxt
        if not divide_first:
            np.divide(cur, div, out=cur)


def _avg_pool_forward(fn: str, nd: int, input: Array, kernel_size: Any, stride: Any,
                      padding: Any, ceil_mode: Any, count_include_pad: Any,
                      divisor_override: Any) -> tuple[Array, AvgPoolCtx]:
    """y[o] = (Σ_j x[o·s − p + j]) / D[o]   (zero padding; D: see :func:`_avg_divisor`)

    Shapes:  x (N, C, *S) or (C, *S) -> y (N, C, *O)
    Saves:   the divisors D (the backward is linear: it needs nothing else).

    The sum is separable: :func:`_box_sum` along the first spatial dimension, then the next,
    ...; k_1 + … + k_d passes instead of k_1·…·k_d, none over a padded copy
    (:func:`_separable`). One thread: split over the pool's threads, these short,
    memory-bound passes measured no faster here (N=32, C=64, 32×32, 2 cores: 3.7 vs 3.5 ms
    forward+backward; every pass hands the GIL over, see :func:`scratchnn.perf.threads.ranges`).
    """
    _check_input(fn, input, nd)
    g = _geometry(fn, input, nd, kernel_size, stride, padding, 1, ceil_mode)
    if nd == 3 and any(n < k for n, k in zip(g.size, g.kernel)):     # torch's avg_pool3d only
        raise ValueError(f"{fn}(): parameter 'kernel_size' {g.kernel} must not exceed the "
                         f"input's spatial size {g.size} (padding aside)")
    count_include_pad = check_bool(fn, "count_include_pad", count_include_pad)
    if divisor_override is not None and check_int(fn, "divisor_override", divisor_override) == 0:
        raise ValueError(f"{fn}(): parameter 'divisor_override' must not be zero")
    div = _avg_divisor(g, count_include_pad, divisor_override, input.dtype)
    x = _planes(input, nd)                                              # (N·C, *S)
    y = np.empty((x.shape[0],) + g.out, input.dtype)                    # (N·C, *O)
    _separable(x, y, range(nd), g.out, _box_sum, g, div, False)
    return y.reshape(input.shape[:-nd] + g.out), AvgPoolCtx(div, g, input.shape)


def _avg_pool_backward(ctx: AvgPoolCtx, dy: Array) -> Array:
    """dx[o·s − p + j] += dy[o] / D[o]   for every offset j of every window o.

    The forward's adjoint: ``dy/D``, then :func:`_box_spread` along the last spatial
    dimension, then the one before, ... (each pass one offset's slice, as the forward).
    """
    g = ctx.geom
    nd = len(g.size)
    dy = _planes(dy, nd)                                                # (N·C, *O)
    dx = np.empty((dy.shape[0],) + g.size, dy.dtype)                    # (N·C, *S)
    _separable(dy, dx, range(nd - 1, -1, -1), g.size, _box_spread, g, ctx.divisor, True)
    return dx.reshape(ctx.shape)


def avg_pool1d_forward(input: Array, kernel_size: Any, stride: Any = None, padding: Any = 0,
                       ceil_mode: bool = False, count_include_pad: bool = True
                       ) -> tuple[Array, AvgPoolCtx]:
    """1-d average pooling (torch has no divisor_override here); see
    :func:`_avg_pool_forward`.  Torch: F.avg_pool1d"""
    return _avg_pool_forward("avg_pool1d", 1, input, kernel_size, stride, padding, ceil_mode,
                             count_include_pad, None)


def avg_pool2d_forward(input: Array, kernel_size: Any, stride: Any = None, padding: Any = 0,
                       ceil_mode: bool = False, count_include_pad: bool = True,
                       divisor_override: int | None = None) -> tuple[Array, AvgPoolCtx]:
    """2-d average pooling; see :func:`_avg_pool_forward`.  Torch: F.avg_pool2d"""
    return _avg_pool_forward("avg_pool2d", 2, input, kernel_size, stride, padding, ceil_mode,
                             count_include_pad, divisor_override)


def avg_pool3d_forward(input: Array, kernel_size: Any, stride: Any = None, padding: Any = 0,
                       ceil_mode: bool = False, count_include_pad: bool = True,
                       divisor_override: int | None = None) -> tuple[Array, AvgPoolCtx]:
    """3-d average pooling; see :func:`_avg_pool_forward`.  Torch: F.avg_pool3d"""
    return _avg_pool_forward("avg_pool3d", 3, input, kernel_size, stride, padding, ceil_mode,
                             count_include_pad, divisor_override)


# --------------------------------------------------------------------------- adaptive pooling
def _adaptive_output_size(fn: str, output_size: Any, size: tuple[int, ...]) -> tuple[int, ...]:
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


def _adaptive_bounds(n: int, o: int) -> tuple[Array, Array]:
    """torch's windows: start = ⌊i·n/o⌋, end = ⌈(i+1)·n/o⌉; returns (start, length)."""
    i = np.arange(o)
    start = (i * n) // o
    end = -((-(i + 1) * n) // o)
    return start, end - start


def _along(x: Array, axis: int, A: Array) -> Array:
    """Contract ``x``'s ``axis`` (length n) with ``A`` (o × n): that axis becomes length o."""
    return np.moveaxis(np.moveaxis(x, axis, -1) @ A.T, -1, axis)


class AdaptiveAvgCtx(NamedTuple):
    mats: list                 # per spatial dim the (O_i × S_i) averaging matrix


def _adaptive_avg_pool_forward(fn: str, nd: int, input: Array, output_size: Any
                               ) -> tuple[Array, AdaptiveAvgCtx]:
    """y[o] = mean of x over the box Π_i [start_i(o_i), end_i(o_i)) (torch's adaptive windows)

    A box mean is separable: y = x ×_1 A_1 ×_2 … ×_d A_d, with A_i (O_i × S_i) holding
    1/len in row o over that window; one matrix product per spatial dim.

    Shapes:  x (N, C, *S) or (C, *S) -> y (N, C, *O)
    Saves:   the matrices A_i.
    """
    _check_input(fn, input, nd)
    size = input.shape[-nd:]
    out = _adaptive_output_size(fn, output_size, size)
    mats = []
    for n, o in zip(size, out):
        start, length = _adaptive_bounds(n, o)
        cols = np.arange(n)
        inside = (cols >= start[:, None]) & (cols < (start + length)[:, None])
        mats.append((inside / length[:, None]).astype(input.dtype))
    y = input
    for i, A in enumerate(mats):
        y = _along(y, i - nd, A)                           # axis i: S_i -> O_i
    return np.ascontiguousarray(y), AdaptiveAvgCtx(mats)


def _adaptive_avg_pool_backward(ctx: AdaptiveAvgCtx, dy: Array) -> Array:
    """dx = dy ×_1 A_1ᵀ ×_2 … ×_d A_dᵀ"""
    nd = len(ctx.mats)
    dx = dy
    for i, A in enumerate(ctx.mats):
        dx = _along(dx, i - nd, A.T)                       # axis i: O_i -> S_i
    return np.ascontiguousarray(dx)


class AdaptiveMaxCtx(NamedTuple):
    indices: Array             # (N, C, *O) flat index of each window's winner
    shape: tuple[int, ...]     # x's shape
    nd: int


def _adaptive_max_pool_forward(fn: str, nd: int, input: Array, output_size: Any,
                               return_indices: Any) -> tuple[Any, AdaptiveMaxCtx]:
    """y[o] = max of x over the box Π_i [start_i(o_i), end_i(o_i)); ties and NaN as max_pool.

    Windows differ in length, so offset j of window o reads position start(o) + min(j, len(o)−1)
    (a gather per offset): a window shorter than the longest one re-reads its last element,
    which can neither win a strict comparison nor change which NaN is last.

    Shapes:  x (N, C, *S) or (C, *S) -> y (N, C, *O) [, indices (N, C, *O) int64]
    Saves:   the flat indices of the winners.
    """
    _check_input(fn, input, nd)
    return_indices = check_bool(fn, "return_indices", return_indices)
    size = input.shape[-nd:]
    out = _adaptive_output_size(fn, output_size, size)
    bounds = [_adaptive_bounds(n, o) for n, o in zip(size, out)]
    kmax = tuple(int(length.max()) for _, length in bounds)
    offsets = list(np.ndindex(*kmax))

    def positions(j: tuple[int, ...]) -> list[Array]:
        return [start + np.minimum(ji, length - 1) for ji, (start, length) in zip(j, bounds)]

    y, kid = _running_extreme(lambda j: input[(Ellipsis,) + np.ix_(*positions(offsets[j]))],
                              len(offsets), largest=True)                      # (N, C, *O)
    P = _plane_strides(size)
    idx = np.zeros(kid.shape, np.int64)
    for i, (ks, km) in enumerate(zip(_plane_strides(kmax), kmax)):
        start, length = bounds[i]
        ji = (kid // ks) % km                                # offset along dim i
        shape = [1] * nd
        shape[i] = -1
        idx += (start.reshape(shape) + np.minimum(ji, length.reshape(shape) - 1)) * P[i]
    return _tuple_output(y, idx, return_indices), AdaptiveMaxCtx(idx, input.shape, nd)


def _scatter_add(indices: Array, dy: Array, shape: tuple[int, ...], nd: int) -> Array:
    """dx of ``shape`` with dx.plane[indices] += dy in every (batch, channel) plane; duplicate
    indices accumulate (one vectorised ``bincount``, no ``np.add.at``)."""
    plane, rows = math.prod(shape[-nd:]), math.prod(shape[:-nd])
    flat = (indices.reshape(rows, math.prod(indices.shape[-nd:]))
            + (np.arange(rows) * plane)[:, None]).ravel()
    dx = np.bincount(flat, weights=dy.ravel(), minlength=rows * plane)
    return dx.astype(dy.dtype, copy=False).reshape(shape)


def _adaptive_max_pool_backward(ctx: AdaptiveMaxCtx, dy: Any) -> Array:
    """dx[indices[o]] += dy[o]   (windows may overlap: repeated winners accumulate)"""
    return _scatter_add(ctx.indices, _values_grad(dy), ctx.shape, ctx.nd)


def adaptive_avg_pool1d_forward(input: Array, output_size: Any
                                ) -> tuple[Array, AdaptiveAvgCtx]:
    """1-d adaptive average pooling; see :func:`_adaptive_avg_pool_forward`.
    Torch: F.adaptive_avg_pool1d"""
    return _adaptive_avg_pool_forward("adaptive_avg_pool1d", 1, input, output_size)


def adaptive_avg_pool2d_forward(input: Array, output_size: Any
                                ) -> tuple[Array, AdaptiveAvgCtx]:
    """2-d adaptive average pooling; see :func:`_adaptive_avg_pool_forward`.
    Torch: F.adaptive_avg_pool2d"""
    return _adaptive_avg_pool_forward("adaptive_avg_pool2d", 2, input, output_size)


def adaptive_avg_pool3d_forward(input: Array, output_size: Any
                                ) -> tuple[Array, AdaptiveAvgCtx]:
    """3-d adaptive average pooling; see :func:`_adaptive_avg_pool_forward`.
    Torch: F.adaptive_avg_pool3d"""
    return _adaptive_avg_pool_forward("adaptive_avg_pool3d", 3, input, output_size)


def adaptive_max_pool1d_forward(input: Array, output_size: Any, return_indices: bool = False
                                ) -> tuple[Any, AdaptiveMaxCtx]:
    """1-d adaptive max pooling; see :func:`_adaptive_max_pool_forward`.
    Torch: F.adaptive_max_pool1d"""
    return _adaptive_max_pool_forward("adaptive_max_pool1d", 1, input, output_size,
                                      return_indices)


def adaptive_max_pool2d_forward(input: Array, output_size: Any, return_indices: bool = False
                                ) -> tuple[Any, AdaptiveMaxCtx]:
    """2-d adaptive max pooling; see :func:`_adaptive_max_pool_forward`.
    Torch: F.adaptive_max_pool2d"""
    return _adaptive_max_pool_forward("adaptive_max_pool2d", 2, input, output_size,
                                      return_indices)


def adaptive_max_pool3d_forward(input: Array, output_size: Any, return_indices: bool = False
                                ) -> tuple[Any, AdaptiveMaxCtx]:
    """3-d adaptive max pooling; see :func:`_adaptive_max_pool_forward`.
    Torch: F.adaptive_max_pool3d"""
    return _adaptive_max_pool_forward("adaptive_max_pool3d", 3, input, output_size,
                                      return_indices)


# --------------------------------------------------------------------------- max unpooling
def _unpool_output_size(fn: str, x: Array, nd: int, k: tuple, s: tuple, p: tuple,
                        output_size: Any) -> tuple[int, ...]:
    """torch's rule: default (S − 1)·s − 2p + k; a given size (d entries, or d + 2 with N, C
    first) must lie strictly within default ± stride."""
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
    return out


class MaxUnpoolCtx(NamedTuple):
    indices: Array             # (N, C, *S) where each input element was written
    nd: int


def _max_unpool_forward(fn: str, nd: int, input: Array, indices: Any, kernel_size: Any,
                        stride: Any, padding: Any, output_size: Any
                        ) -> tuple[Array, MaxUnpoolCtx]:
    """y.plane[indices[i]] = x[i], zeros elsewhere: max pooling's partial inverse.

    Shapes:  x, indices (N, C, *S) or (C, *S) -> y (N, C, *O), O from output_size (default
             (S − 1)·s − 2p + k). A repeated index keeps the last value written, as torch.
    Saves:   indices.
    """
    _check_input(fn, input, nd)
    if not isinstance(indices, np.ndarray) or indices.dtype.kind not in "iu":
        raise TypeError(f"{fn}(): parameter 'indices' must be an integer numpy.ndarray, got "
                        f"{getattr(indices, 'dtype', type(indices).__name__)}")
    if indices.shape != input.shape:
        raise ValueError(f"{fn}(): parameter 'indices' must have the input's shape "
                         f"{input.shape}, got {indices.shape}")
    k, s, _ = check_window_args(fn, nd, kernel_size, stride, 1)
    p = ntuple(fn, "padding", padding, nd, min=0)
    out = _unpool_output_size(fn, input, nd, k, s, p, output_size)
    plane, rows = math.prod(out), math.prod(input.shape[:-nd])
    if indices.size and (indices.min() < 0 or indices.max() >= plane):
        raise ValueError(f"{fn}(): parameter 'indices' must lie in [0, {plane}) for output "
                         f"size {out}, got values in [{indices.min()}, {indices.max()}]")
    flat_idx = indices.reshape(rows, -1) if rows else indices.reshape(0, 0)
    y = np.zeros((rows, plane), input.dtype)                         # (N·C, Π O)
    np.put_along_axis(y, flat_idx, input.reshape(flat_idx.shape), axis=1)
    return y.reshape(input.shape[:-nd] + out), MaxUnpoolCtx(indices, nd)


def _max_unpool_backward(ctx: MaxUnpoolCtx, dy: Array) -> tuple[Array, None]:
    """dx[i] = dy.plane[indices[i]]   (a gather; indices get no gradient)"""
    nd, idx = ctx.nd, ctx.indices
    rows = math.prod(idx.shape[:-nd])
    if rows == 0:
        return np.zeros(idx.shape, dy.dtype), None
    dx = np.take_along_axis(dy.reshape(rows, -1), idx.reshape(rows, -1), axis=1)
    return dx.reshape(idx.shape), None


def max_unpool1d_forward(input: Array, indices: Array, kernel_size: Any, stride: Any = None,
                         padding: Any = 0, output_size: Any = None
                         ) -> tuple[Array, MaxUnpoolCtx]:
    """1-d max unpooling; see :func:`_max_unpool_forward`.  Torch: F.max_unpool1d"""
    return _max_unpool_forward("max_unpool1d", 1, input, indices, kernel_size, stride,
                               padding, output_size)


def max_unpool2d_forward(input: Array, indices: Array, kernel_size: Any, stride: Any = None,
                         padding: Any = 0, output_size: Any = None
                         ) -> tuple[Array, MaxUnpoolCtx]:
    """2-d max unpooling; see :func:`_max_unpool_forward`.  Torch: F.max_unpool2d"""
    return _max_unpool_forward("max_unpool2d", 2, input, indices, kernel_size, stride,
                               padding, output_size)


def max_unpool3d_forward(input: Array, indices: Array, kernel_size: Any, stride: Any = None,
                         padding: Any = 0, output_size: Any = None
                         ) -> tuple[Array, MaxUnpoolCtx]:
    """3-d max unpooling; see :func:`_max_unpool_forward`.  Torch: F.max_unpool3d"""
    return _max_unpool_forward("max_unpool3d", 3, input, indices, kernel_size, stride,
                               padding, output_size)


# --------------------------------------------------------------------------- power-average
class LPPoolCtx(NamedTuple):
    x: Array                   # the input: d(x^p)/dx = p·x^(p−1)  (p = ±inf: sign(x))
    p: float
    z: Array | None            # (N, C, *O) window means of x^p (None for p = ±inf)
    K: int                     # kernel volume Π k
    inner: Any                 # the avg-pool context (for p = ±inf: the max/min-pool one)


def _check_norm_type(fn: str, norm_type: Any) -> float:
    if isinstance(norm_type, bool) or not isinstance(norm_type, numbers.Real):
        raise TypeError(f"{fn}(): parameter 'norm_type' must be a real number, got "
                        f"{norm_type!r}")
    p = float(norm_type)                       # a Python float: float32 stays float32
    if p == 0 or math.isnan(p):
        raise ValueError(f"{fn}(): parameter 'norm_type' must be non-zero and not NaN, "
                         f"got {norm_type!r}")
    return p


def _lp_pool_forward(fn: str, nd: int, input: Array, norm_type: Any, kernel_size: Any,
                     stride: Any, ceil_mode: Any) -> tuple[Array, LPPoolCtx]:
    """y[o] = (K · z[o])^{1/p},  z = avg_pool(x^p) (no padding),  K = Π k

    torch writes it (sign(z)·relu(|z|)·K)^{1/p}: the same value, but its gradient is 0 where
    z = 0. Note that z divides by avg_pool's divisor, so a ceil_mode window cut short by the
    input's edge is scaled by K/count, as torch does. Negative z with a fractional 1/p gives
    NaN (as torch). p = +inf is max pooling of |x|; p = −inf is min pooling of |x|.

    Shapes:  x (N, C, *S) or (C, *S) -> y (N, C, *O)
    Saves:   x, z and the avg-pool context.
    """
    _check_input(fn, input, nd)
    p = _check_norm_type(fn, norm_type)
    K = math.prod(ntuple(fn, "kernel_size", kernel_size, nd, min=1))
    if math.isinf(p):
        y, inner = _extreme_pool_forward(fn, nd, p > 0, np.abs(input), kernel_size, stride, 0,
                                         1, ceil_mode, False)
        return y, LPPoolCtx(input, p, None, K, inner)
    with np.errstate(all="ignore"):
        z, inner = _avg_pool_forward(fn, nd, input ** p, kernel_size, stride, 0, ceil_mode,
                                     True, None)
        y = (z * K) ** (1.0 / p)
    return y, LPPoolCtx(input, p, z, K, inner)


def _lp_pool_backward(ctx: LPPoolCtx, dy: Array) -> Array:
    """With b = K·z (torch's chain, kinks included):

        dz      = dy · (1/p)·b^{1/p − 1} · K,   0 where z = 0   (relu'(0) = 0)
        d(x^p)  = avg_pool backward of dz
        dx      = d(x^p) · p·x^{p − 1}

    p = ±inf: dx = (max/min-pool backward of dy) · sign(x).
    """
    if ctx.z is None:
        return _extreme_pool_backward(ctx.inner, dy) * np.sign(ctx.x)
    p, z = ctx.p, ctx.z
    with np.errstate(all="ignore"):
        da = dy * ((1.0 / p) * (z * ctx.K) ** (1.0 / p - 1.0)) * ctx.K
        s = np.sign(z)
        dz = np.where(np.abs(z) <= 0, 0, da * s) * s          # sign(z)·relu(|z|)'s chain
        return _avg_pool_backward(ctx.inner, dz) * (p * ctx.x ** (p - 1.0))


def lp_pool1d_forward(input: Array, norm_type: float, kernel_size: Any, stride: Any = None,
                      ceil_mode: bool = False) -> tuple[Array, LPPoolCtx]:
    """1-d power-average pooling; see :func:`_lp_pool_forward`.  Torch: F.lp_pool1d"""
    return _lp_pool_forward("lp_pool1d", 1, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool2d_forward(input: Array, norm_type: float, kernel_size: Any, stride: Any = None,
                      ceil_mode: bool = False) -> tuple[Array, LPPoolCtx]:
    """2-d power-average pooling; see :func:`_lp_pool_forward`.  Torch: F.lp_pool2d"""
    return _lp_pool_forward("lp_pool2d", 2, input, norm_type, kernel_size, stride, ceil_mode)


def lp_pool3d_forward(input: Array, norm_type: float, kernel_size: Any, stride: Any = None,
                      ceil_mode: bool = False) -> tuple[Array, LPPoolCtx]:
    """3-d power-average pooling; see :func:`_lp_pool_forward`.  Torch: F.lp_pool3d"""
    return _lp_pool_forward("lp_pool3d", 3, input, norm_type, kernel_size, stride, ceil_mode)


# --------------------------------------------------------------------------- the published ops
def _with_formula(forward: Callable, impl: Callable) -> Callable:
    """Give a thin 1d/2d/3d wrapper the N-d implementation's formula docstring (for help())."""
    head, _, torch_line = inspect.cleandoc(forward.__doc__ or "").partition("Torch:")
    forward.__doc__ = (head.split(";")[0].strip() + ".\n\n" + inspect.cleandoc(impl.__doc__ or "")
                       + (f"\nTorch:   {torch_line.strip()}" if torch_line else ""))
    return forward


for _f in (max_pool1d_forward, max_pool2d_forward, max_pool3d_forward, min_pool1d_forward,
           min_pool2d_forward, min_pool3d_forward):
    _with_formula(_f, _extreme_pool_forward)
for _f in (avg_pool1d_forward, avg_pool2d_forward, avg_pool3d_forward):
    _with_formula(_f, _avg_pool_forward)
for _f in (adaptive_avg_pool1d_forward, adaptive_avg_pool2d_forward, adaptive_avg_pool3d_forward):
    _with_formula(_f, _adaptive_avg_pool_forward)
for _f in (adaptive_max_pool1d_forward, adaptive_max_pool2d_forward, adaptive_max_pool3d_forward):
    _with_formula(_f, _adaptive_max_pool_forward)
for _f in (max_unpool1d_forward, max_unpool2d_forward, max_unpool3d_forward):
    _with_formula(_f, _max_unpool_forward)
for _f in (lp_pool1d_forward, lp_pool2d_forward, lp_pool3d_forward):
    _with_formula(_f, _lp_pool_forward)

max_pool1d = defop(max_pool1d_forward, _extreme_pool_backward)
max_pool2d = defop(max_pool2d_forward, _extreme_pool_backward)
max_pool3d = defop(max_pool3d_forward, _extreme_pool_backward)
min_pool1d = defop(min_pool1d_forward, _extreme_pool_backward)
min_pool2d = defop(min_pool2d_forward, _extreme_pool_backward)
min_pool3d = defop(min_pool3d_forward, _extreme_pool_backward)
avg_pool1d = defop(avg_pool1d_forward, _avg_pool_backward)
avg_pool2d = defop(avg_pool2d_forward, _avg_pool_backward)
avg_pool3d = defop(avg_pool3d_forward, _avg_pool_backward)
adaptive_avg_pool1d = defop(adaptive_avg_pool1d_forward, _adaptive_avg_pool_backward)
adaptive_avg_pool2d = defop(adaptive_avg_pool2d_forward, _adaptive_avg_pool_backward)
adaptive_avg_pool3d = defop(adaptive_avg_pool3d_forward, _adaptive_avg_pool_backward)
adaptive_max_pool1d = defop(adaptive_max_pool1d_forward, _adaptive_max_pool_backward)
adaptive_max_pool2d = defop(adaptive_max_pool2d_forward, _adaptive_max_pool_backward)
adaptive_max_pool3d = defop(adaptive_max_pool3d_forward, _adaptive_max_pool_backward)
max_unpool1d = defop(max_unpool1d_forward, _max_unpool_backward)
max_unpool2d = defop(max_unpool2d_forward, _max_unpool_backward)
max_unpool3d = defop(max_unpool3d_forward, _max_unpool_backward)
lp_pool1d = defop(lp_pool1d_forward, _lp_pool_backward)
lp_pool2d = defop(lp_pool2d_forward, _lp_pool_backward)
lp_pool3d = defop(lp_pool3d_forward, _lp_pool_backward)
