"""Pooling, the fast edition: max, min, average and power-average (lp) pooling, adaptive max;
1d/2d/3d. The textbook edition, which it equals, is ``scratchnn.textbook.pooling``.

Notation: ``x`` input ``(N, C, *S)`` or unbatched ``(C, *S)``, ``y`` output ``(N, C, *O)``,
``x_pad`` the padded input; window ``o`` sees at kernel offset ``j`` the element
``x_pad[o·s + j·dil]``::

    max pooling      y[o] = max_j x_pad[o·s + j·dil]      dx[winner of o] += dy[o]
    min pooling      y[o] = min_j x_pad[o·s + j·dil]      dx[winner of o] += dy[o]
    average pooling  y[o] = Σ_j x_pad[o·s + j] / D[o]     dx_pad[o·s + j] += dy[o] / D[o]
    lp pooling       y[o] = (Σ_j x[o·s + j]^p)^{1/p}     (the chain rule through avg_pool)

The textbook runs a max (min, sum) over the kernel-offset slices of a padded copy. This
edition computes the same values faster; what does it is not the mathematics and lives in
:mod:`scratchnn.perf`:

* max/min pooling reads the offsets from a *polyphase* copy of the padded input
  (:mod:`scratchnn.perf.polyphase`): split by stride phase, every offset is one contiguous flat
  run, so each pass is one long SIMD loop instead of a strided view whose inner loop is a single
  output row (~6× slower); the planes are split into one range per thread
  (:func:`scratchnn.perf.threads.ranges`); results do not depend on the thread count;
* average pooling needs no padded copy: a window sum is separable, so it sums along one dimension
  at a time (:mod:`scratchnn.perf.separable`), ``k_1 + … + k_d`` passes over clipped slices
  instead of ``k_1·…·k_d``, with flat runs along the last dimension and planes in blocks.

How each call runs is decided in one place, :func:`choose_route`; ``ROUTES`` names the settings
that force each route (the tests run every route against the textbook). Adaptive average pooling
and max_unpool are plain already: they are the textbook's functions, re-exported.

Conventions (torch's, CPU): max/min ties send the gradient (and the index) to the **first**
extreme element in window order; a NaN always wins and the **last** NaN of a window is reported;
padding never wins, and a window whose real elements are all ∓∞ reports its first real element;
indices are flat into each input plane (``h·W + w`` in 2d), int64; ``padding`` is at most
``kernel_size // 2``.
"""
from __future__ import annotations

import inspect
import math
from typing import Any, Callable, NamedTuple

import numpy as np

from .._validate import check_bool, ntuple
from ..autodiff import defop
from ..perf import threads
from ..perf.bitwise import mask_select
from ..perf.polyphase import kid_dtype, polyphase, running_extreme, valid
from ..perf.separable import box_spread, box_sum, flat_runs_fit, separable, stage_shapes
from ..textbook._pooling_args import (Geometry, adaptive_bounds, adaptive_output_size,
                                      avg_geometry, check_input, check_norm_type,
                                      first_real_offset, flat_indices, geometry, plane_strides)
from ..textbook.pooling import (AdaptiveMaxCtx, LPPoolCtx, adaptive_max_pool_backward,
                                values_grad)
from ..textbook.pooling import (  # noqa: F401  (plain already: one function, two names)
    adaptive_avg_pool1d, adaptive_avg_pool2d, adaptive_avg_pool3d,
    max_unpool1d, max_unpool2d, max_unpool3d)

Array = np.ndarray

__all__ = [
    "max_pool1d", "max_pool2d", "max_pool3d", "min_pool1d", "min_pool2d", "min_pool3d",
    "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
    "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
    "max_unpool1d", "max_unpool2d", "max_unpool3d", "lp_pool1d", "lp_pool2d", "lp_pool3d",
    "choose_route", "ROUTES",
]


# --------------------------------------------------------------------------- routes
_DIRECT = True          # max/min backward: write straight into dx where each phase has one offset
_FLAT_RUNS = True       # average pooling: flat runs along the last dim where rows are L = O·s
_BLOCK_BYTES = 1 << 22  # average pooling's plane blocks: 4 MiB was as fast as one block, 1 MiB
#                         blocks cost 20 % more
_PARALLEL_MIN = 3 << 19       # input elements from which pooling splits its planes (1.5 M)


class Route(NamedTuple):
    """How one pooling call runs. The results are the same, bit for bit, on every route."""
    threaded: bool             # planes split into ranges over the worker threads
    direct: bool               # max/min backward: dx written per offset, no phase buffer
    flat: tuple[bool, ...]     # average: per spatial dim, flat runs (else sliced passes)
    block: int                 # average: planes per block


def choose_route(kind: str, g: Geometry, planes: int, itemsize: int,
                 backward: bool = False) -> Route:
    """The one route decision of the pooling engine, for ``kind`` ``"extreme"`` (max/min) or
    ``"avg"``, ``planes`` = N·C planes of geometry ``g``:

    * threads: when more than one thread is set and the input has ``_PARALLEL_MIN`` elements
      or more (1.5 M) — the planes in ranges over the threads
      (:func:`scratchnn.perf.threads.ranges`), each range its own plane blocks. Every pass
      hands the GIL over, so small inputs run on one thread. Measured, 2 threads, forward +
      backward, against one thread, the same bits: average pooling k2 s2 and k3 s2 p1 over
      2 M elements and more 0.67–0.87× ((32, 64, 32, 32), (128, 64, 16, 16),
      (16, 64, 56, 56), (64, 3, 224, 224)), 1.6 M 0.86–0.91×, 1.3 M 0.94–0.95×, 1.05 M and
      fewer 1.15–2.8× slower ((8, 256, 14, 14) is 0.6 ms on one thread); max pooling k2 s2
      1.57 M 0.63×, 2 M 0.86×, 1.3 M 1.05× slower, 1.05 M 1.13×, 0.5 M 1.7×; k3 s2 p1
      2 M 0.66×, 1.3 M 0.82×, 1.05 M 1.15× slower, 0.26 M 2.6× (grid points × offsets from
      256 k on, before: the ConvNet's (64, 32, 24, 24) pool ran 1.12× slower split);
    * direct (max/min backward): when every used phase is one offset's unshifted run (disjoint
      windows, e.g. k2 s2) and ``_DIRECT``: each offset's ``dy·[kid = j]`` is written straight
      into its strided view of dx, which it fills;
    * flat runs (average, per dim): where :func:`scratchnn.perf.separable.flat_runs_fit` and
      ``_FLAT_RUNS``;
    * block (average): as many planes as fit ``_BLOCK_BYTES`` at the largest pass.
    """
    threaded = threads.get_num_threads() > 1 and planes * math.prod(g.size) >= _PARALLEL_MIN
    if kind == "extreme":
        return Route(threaded, _DIRECT and polyphase(g).direct, (), planes)
    flat = tuple(_FLAT_RUNS and flat_runs_fit(g, d) for d in range(len(g.size)))
    largest = max(math.prod(shape) for shape in stage_shapes(g, backward))
    return Route(threaded, False, flat,
                 max(1, min(planes, _BLOCK_BYTES // (itemsize * largest))))


ROUTES: dict[str, dict[str, object]] = {
    "default": {},
    "threads": {"_PARALLEL_MIN": 0,
                "scratchnn.perf.threads._threads": 3},
    "phase-buffer backward": {"_DIRECT": False},
    "sliced passes": {"_FLAT_RUNS": False},
    "blocks of one plane": {"_BLOCK_BYTES": 1},
}


def _run(route: Route, step: Callable[[int, int], None], n: int) -> None:
    """``step`` over the planes ``[0, n)``: ranges over the threads (the route has decided:
    no second threshold), or one call."""
    if route.threaded:
        threads.ranges(step, n, n, least=0)
    elif n:
        step(0, n)


def _planes(x: Array, nd: int) -> Array:
    """``(N, C, *S)`` or ``(C, *S)`` -> ``(N·C, *S)``: every plane is pooled alike."""
    return x.reshape((-1,) + x.shape[-nd:])


def _tuple_output(out: Array, idx: Array, return_indices: bool) -> Any:
    return (out, idx) if return_indices else out


# --------------------------------------------------------------------------- max and min
class ExtremePoolCtx(NamedTuple):
    kid: Array                 # (N·C, *G): which kernel offset won each window
    #                            (phase-grid layout, see scratchnn.perf.polyphase.Polyphase)
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

    Planes are pooled in ranges (:func:`choose_route`), each split into its own ∓∞-padded
    polyphase buffer (:class:`~scratchnn.perf.polyphase.Polyphase`).
    """
    check_input(fn, input, nd)
    g = geometry(fn, input, nd, kernel_size, stride, padding, dilation, ceil_mode)
    return_indices = check_bool(fn, "return_indices", return_indices)
    fill = -np.inf if largest else np.inf
    x = _planes(input, nd)                                              # (N·C, *S)
    pp = polyphase(g)
    n_off = len(pp.offsets)
    y = np.empty((x.shape[0],) + g.out, input.dtype)                    # (N·C, *O)
    kid = np.empty((x.shape[0],) + pp.grid, kid_dtype(n_off))           # (N·C, *G)
    padded = any(lo or hi for lo, hi in g.pads)
    first_real = None
    if padded:
        first_real = np.zeros(pp.grid, kid.dtype)
        valid(first_real, g.out)[...] = first_real_offset(g)

    def step(a: int, b: int) -> None:
        n = b - a
        flat, grids = pp.buffer(n, input.dtype, fill)
        pp.split(x[a:b], grids)
        m = y[a:b] if pp.grid == g.out else np.empty((n,) + pp.grid, input.dtype)
        k = kid[a:b]
        running_extreme(lambda j: pp.run(j, flat, n), n_off, largest,
                        out=(m.reshape(-1), k.reshape(-1)))
        if padded:
            lost = m == fill                        # padding (or only ±inf) "won": torch
            np.copyto(k, first_real, where=lost)    # reports the window's first real element
        if m is not y[a:b]:
            y[a:b] = valid(m, g.out)

    _run(choose_route("extreme", g, x.shape[0], input.itemsize), step, x.shape[0])
    lead = input.shape[:-nd]
    idx = (flat_indices(valid(kid, g.out), g).reshape(lead + g.out) if return_indices
           else None)
    return (_tuple_output(y.reshape(lead + g.out), idx, return_indices),
            ExtremePoolCtx(kid, g, input.shape))


def _extreme_pool_backward(ctx: ExtremePoolCtx, dy: Any) -> Array:
    """dx[o·s − lo + kid[o]·dil] += dy[o]: each window's gradient goes to its winner only.

    In the forward's phase layout (:class:`~scratchnn.perf.polyphase.Polyphase`), one pass per
    kernel offset j: the windows won by j add ``dy·[kid = j]`` into j's flat run of a zeroed
    phase buffer; the phases are then gathered into dx. On the ``direct`` route
    (:func:`choose_route`: each phase is one offset's unshifted run, e.g. k2 s2) ``dy·[kid = j]``
    is written straight into j's strided view of dx, which it fills: dx is written once, with
    no buffer and no zero fill. Threaded as the forward.

    ``dy·[kid = j]`` is :func:`~scratchnn.perf.bitwise.mask_select` (a bitwise select:
    branch-free, and an infinite or NaN dy reaches only its winner, as in torch).
    """
    g = ctx.geom
    nd = len(g.size)
    pp = polyphase(g)
    route = choose_route("extreme", g, math.prod(ctx.shape[:-nd]), ctx.kid.itemsize)
    dy = _planes(values_grad(dy), nd)                                   # (N·C, *O)
    dx = np.empty((dy.shape[0],) + g.size, dy.dtype)                    # (N·C, *S)

    def step(a: int, b: int) -> None:
        n = b - a
        if pp.grid == g.out:
            d = dy[a:b]
        else:                                       # scratch positions get dy = 0
            d = np.zeros((n,) + pp.grid, dy.dtype)
            valid(d, g.out)[...] = dy[a:b]
        kid = ctx.kid[a:b]
        won = np.empty(d.shape, bool)
        if route.direct:                            # k2 s2: each offset owns its phase
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

    _run(route, step, dy.shape[0])
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
class AvgPoolCtx(NamedTuple):
    divisor: Array             # (*O) or a scalar: what each window's sum was divided by
    geom: Geometry
    shape: tuple[int, ...]     # the input's shape


def _avg_pool_forward(fn: str, nd: int, input: Array, kernel_size: Any, stride: Any,
                      padding: Any, ceil_mode: Any, count_include_pad: Any,
                      divisor_override: Any) -> tuple[Array, AvgPoolCtx]:
    """y[o] = (Σ_j x[o·s − p + j]) / D[o]   (zero padding)

    D: :func:`scratchnn.textbook._pooling_args.avg_divisor`, torch's divisor rule.

    Shapes:  x (N, C, *S) or (C, *S) -> y (N, C, *O)
    Saves:   the divisors D (the backward is linear: it needs nothing else).

    The sum is separable: :func:`~scratchnn.perf.separable.box_sum` along the first spatial
    dimension, then the next, ...; k_1 + … + k_d passes instead of k_1·…·k_d, none over a
    padded copy (:func:`scratchnn.perf.separable.separable`), the planes in ranges over the
    threads (:func:`choose_route`).
    """
    g, div = avg_geometry(fn, nd, input, kernel_size, stride, padding, ceil_mode,
                          count_include_pad, divisor_override)
    x = _planes(input, nd)                                              # (N·C, *S)
    y = np.empty((x.shape[0],) + g.out, input.dtype)                    # (N·C, *O)
    route = choose_route("avg", g, x.shape[0], x.itemsize)
    _run(route, lambda a, b: separable(x[a:b], y[a:b], range(nd), g.out, box_sum, g, div,
                                       False, route.flat, route.block), x.shape[0])
    return y.reshape(input.shape[:-nd] + g.out), AvgPoolCtx(div, g, input.shape)


def _avg_pool_backward(ctx: AvgPoolCtx, dy: Array) -> Array:
    """dx[o·s − p + j] += dy[o] / D[o]   for every offset j of every window o.

    The forward's adjoint: ``dy/D``, then :func:`~scratchnn.perf.separable.box_spread` along
    the last spatial dimension, then the one before, ... (each pass one offset's slice, as the
    forward).
    """
    g = ctx.geom
    nd = len(g.size)
    dy = _planes(dy, nd)                                                # (N·C, *O)
    dx = np.empty((dy.shape[0],) + g.size, dy.dtype)                    # (N·C, *S)
    route = choose_route("avg", g, dy.shape[0], dy.itemsize, backward=True)
    _run(route, lambda a, b: separable(dy[a:b], dx[a:b], range(nd - 1, -1, -1), g.size,
                                       box_spread, g, ctx.divisor, True, route.flat,
                                       route.block), dy.shape[0])
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


# --------------------------------------------------------------------------- adaptive max
def _adaptive_max_pool_forward(fn: str, nd: int, input: Array, output_size: Any,
                               return_indices: Any) -> tuple[Any, AdaptiveMaxCtx]:
    """y[o] = max of x over the box Π_i [start_i(o_i), end_i(o_i)); ties and NaN as max_pool.

    Windows differ in length, so offset j of window o reads position start(o) + min(j, len(o)−1)
    (a gather per offset): a window shorter than the longest one re-reads its last element,
    which can neither win a strict comparison nor change which NaN is last.

    Shapes:  x (N, C, *S) or (C, *S) -> y (N, C, *O) [, indices (N, C, *O) int64]
    Saves:   the flat indices of the winners.
    """
    check_input(fn, input, nd)
    return_indices = check_bool(fn, "return_indices", return_indices)
    size = input.shape[-nd:]
    out = adaptive_output_size(fn, output_size, size)
    bounds = [adaptive_bounds(n, o) for n, o in zip(size, out)]
    kmax = tuple(int(length.max()) for _, length in bounds)
    offsets = list(np.ndindex(*kmax))

    def positions(j: tuple[int, ...]) -> list[Array]:
        return [start + np.minimum(ji, length - 1) for ji, (start, length) in zip(j, bounds)]

    y, kid = running_extreme(lambda j: input[(Ellipsis,) + np.ix_(*positions(offsets[j]))],
                              len(offsets), largest=True)                      # (N, C, *O)
    P = plane_strides(size)
    idx = np.zeros(kid.shape, np.int64)
    for i, (ks, km) in enumerate(zip(plane_strides(kmax), kmax)):
        start, length = bounds[i]
        ji = (kid // ks) % km                                # offset along dim i
        shape = [1] * nd
        shape[i] = -1
        idx += (start.reshape(shape) + np.minimum(ji, length.reshape(shape) - 1)) * P[i]
    return _tuple_output(y, idx, return_indices), AdaptiveMaxCtx(idx, input.shape, nd)


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


# --------------------------------------------------------------------------- power-average
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
    check_input(fn, input, nd)
    p = check_norm_type(fn, norm_type)
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
for _f in (adaptive_max_pool1d_forward, adaptive_max_pool2d_forward, adaptive_max_pool3d_forward):
    _with_formula(_f, _adaptive_max_pool_forward)
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
adaptive_max_pool1d = defop(adaptive_max_pool1d_forward, adaptive_max_pool_backward)
adaptive_max_pool2d = defop(adaptive_max_pool2d_forward, adaptive_max_pool_backward)
adaptive_max_pool3d = defop(adaptive_max_pool3d_forward, adaptive_max_pool_backward)
lp_pool1d = defop(lp_pool1d_forward, _lp_pool_backward)
lp_pool2d = defop(lp_pool2d_forward, _lp_pool_backward)
lp_pool3d = defop(lp_pool3d_forward, _lp_pool_backward)
