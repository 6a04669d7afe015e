"""Convolution and transposed convolution in 1, 2 and 3 dimensions: one N-d engine.

Notation (per spatial dimension; ``*S`` stands for all of them): input ``x (N, C_in, *S)``,
weight ``W (C_out, C_in/G, *k)``, ``G`` groups, output ``y (N, C_out, *O)`` with
``O = ⌊(S + lo + hi − dil·(k − 1) − 1) / s⌋ + 1``. ``K = Π k`` kernel offsets, ``L = Π O``
windows. Convolution (a correlation, as in torch) is

    y[n, o_c, o] = b[o_c] + Σ_{c ∈ group(o_c)} Σ_κ W[o_c, c, κ] · x_pad[n, c, o·s + κ·dil]

and is computed as **im2col + matmul**: for each of the K kernel offsets κ, copy the slice of x
that every window sees at κ into a column buffer ``cols (N, C_in, K, *O)`` (a loop over the K
offsets, vectorised over batch, channels and windows), then one batched matrix product per group::

    y[n, g] = W[g] (C_out/G, C_in/G·K)  @  cols[n, g] (C_in/G·K, L)

Everything else is the same three pieces rearranged:

* ``im2col``  — read windows;          ``col2im`` — its adjoint: *add* columns back into windows;
* the **input gradient** of a convolution is ``col2im(Wᵀ @ dy)``: a *transposed* convolution of dy;
* the **weight gradient** is ``Σ_n dy[n] @ cols[n]ᵀ``: a correlation of the input with dy;
* a **transposed convolution** is, by definition, the input gradient of a convolution, so its
  forward *is* ``col2im(Wᵀ @ x)`` and its backward is a convolution (dx) and the same weight
  correlation (dW) with the roles of input and output swapped.

**The shifted GEMM** (``_shifted_gemm``, the route for layers with ≥ 16 channels per group on
both sides; with stride > 1 only for the transposed direction, ``_use_shifted``) skips the column buffer altogether: the zero-padded input is laid
out once as a flat ``(C, N·ΠP)`` grid (split into stride phases when the stride is > 1), and
every kernel offset becomes one matrix product ``W_κ @ X[:, s_κ : s_κ + L]`` over a *shifted
contiguous slice* of it (``_Grid``). The transposed direction reads the same grid with the
shifts reversed, and dW is one product per block of grid columns. im2col stays for the narrow
layers (a one-channel first layer, depthwise), where its inner dimension C/G·K is what keeps
the products efficient.

So there is one engine for six ops and both directions (``_Geometry`` + ``_im2col``/``_col2im``
+ the three chunk steps below, or the shifted-GEMM helpers). On the im2col route padding never
materialises a padded copy: the offset slices are clipped to the real input
(``perf.phases.clipped_offset_slices``) and the column entries that fall into padding are zeros; the
shifted route makes exactly one zero-padded copy (its grid) and no column buffer.

Speed: the batch is processed in chunks whose column buffer is a reused per-thread workspace
(≈ ``WORKSPACE_BYTES``) rather than a fresh ``N·C·K·L`` temporary (memory stays at torch's
level); the matrix products run on NumPy's BLAS threads; with stride 1 a transposed convolution
is computed as a correlation with the flipped kernel (im2col + GEMM, no col2im) whenever that
reads fewer columns (``_flipped``); an inner dimension of 1 is an outer product by broadcasting.
Optionally (``_THREADS = 2``; never more than ``scratchnn.set_num_threads`` allows) chunks run
on a small thread pool, overlapping one chunk's copies (NumPy releases the GIL) with another's
matrix product. All arithmetic stays in the input's
dtype.
"""
from __future__ import annotations

import functools
import inspect
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from .._validate import check_array, check_int, check_same_dtype, ntuple
from ..autodiff import defop
from ..perf.phases import clipped_offset_slices, phase_layout
from ..perf.threads import get_num_threads
from ..window import Pads, parse_padding

Array = np.ndarray

__all__ = ["conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
           "conv_transpose3d", "pad",
           "conv_forward", "conv_backward", "conv_transpose_forward", "conv_transpose_backward",
           "pad_forward", "pad_backward", "WORKSPACE_BYTES"]

WORKSPACE_BYTES = 8 << 20          # column buffer per thread; sets the batch chunk size
PARALLEL_MIN = 1 << 18             # column elements below which chunks run on the caller
SAVE_COLS_BYTES = 4 << 20          # the forward keeps columns up to this size for backward
# Chunks run on the calling thread by default: the matrix products already use both cores
# (NumPy's BLAS), and measured side by side with torch on 2 cores a pool of 2 was no faster
# (slower once other processes compete: BLAS's and our threads then fight for the cores).
# Set to 2 to overlap one chunk's im2col/col2im with another's matrix product.
_THREADS = 1
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()
_local = threading.local()


# ---------------------------------------------------------------------------------------------
# Geometry: where the windows sit
# ---------------------------------------------------------------------------------------------
class _Geometry(NamedTuple):
    """One convolution's windows. The *x side* ``(N, Cx, *size)`` is what windows read, the
    *y side* ``(N, Cy, *out)`` holds one value per window, the weight is ``(Cy, Cx/G, *kernel)``.

    For ``conv`` x is the input and y the output; for ``conv_transpose`` it is the other way
    round (its input is the y side of the convolution it transposes)."""
    groups: int
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    lo: tuple[int, ...]            # padding before each dim
    hi: tuple[int, ...]            # padding after each dim (it only decides out)
    size: tuple[int, ...]          # x side spatial size
    out: tuple[int, ...]           # y side spatial size
    slices: tuple                  # clipped_offset_slices, computed once

    @property
    def K(self) -> int:
        return math.prod(self.kernel)

    @property
    def L(self) -> int:
        return math.prod(self.out)


def _geometry(groups: int, kernel: Sequence[int], stride: Sequence[int],
              dilation: Sequence[int], pads: Pads, size: Sequence[int],
              out: Sequence[int]) -> _Geometry:
    """The :class:`_Geometry` of these windows (cached: a training loop asks for the same
    few geometries every step, ~20 µs each to work out)."""
    return _cached_geometry(int(groups), *(tuple(int(v) for v in a)
                                           for a in (kernel, stride, dilation)),
                            tuple((int(lo), int(hi)) for lo, hi in pads),
                            tuple(int(v) for v in size), tuple(int(v) for v in out))


@functools.lru_cache(maxsize=256)
def _cached_geometry(groups: int, kernel: tuple[int, ...], stride: tuple[int, ...],
                     dilation: tuple[int, ...], pads: tuple[tuple[int, int], ...],
                     size: tuple[int, ...], out: tuple[int, ...]) -> _Geometry:
    lo, hi = tuple(p[0] for p in pads), tuple(p[1] for p in pads)
    slices = tuple(clipped_offset_slices(kernel, stride, dilation, lo, size, out))
    return _Geometry(groups, kernel, stride, dilation, lo, hi, size, out, slices)


# ---------------------------------------------------------------------------------------------
# im2col / col2im: a loop over kernel offsets, never over pixels
# ---------------------------------------------------------------------------------------------
def _zero_outside(a: Array, box: tuple[slice, ...]) -> None:
    """Zero every element of ``a``'s trailing ``len(box)`` dims outside the box (≤ 2 slabs per
    dim): the column entries whose window hangs into the padding."""
    d = len(box)
    lead = (slice(None),) * (a.ndim - d)
    for j, sl in enumerate(box):
        before, after = box[:j], (slice(None),) * (d - j - 1)
        if sl.start > 0:
            a[lead + before + (slice(0, sl.start),) + after] = 0
        if sl.stop < a.shape[a.ndim - d + j]:
            a[lead + before + (slice(sl.stop, None),) + after] = 0


def _im2col(x: Array, g: _Geometry, cols: Array) -> None:
    """cols[n, c, i, *o] = x_pad[n, c, o·s + κ_i·dil]: what window o sees at kernel offset i.

    Shapes: x (B, Cx, *S) -> cols (B, Cx, K, *O), written in place (padding reads as 0).
    """
    for i, (_, out_sl, in_sl) in enumerate(g.slices):
        col = cols[:, :, i]                                   # (B, Cx, *O)
        if out_sl is None:                                    # every window sees padding
            col[...] = 0
            continue
        col[(Ellipsis, *out_sl)] = x[(Ellipsis, *in_sl)]
        _zero_outside(col, out_sl)


def _col2im(cols: Array, g: _Geometry, x: Array) -> None:
    """The adjoint of :func:`_im2col`: x[n, c, o·s + κ_i·dil − lo] += cols[n, c, i, *o].

    Shapes: cols (B, Cx, K, *O) -> x (B, Cx, *S), accumulated in place (x starts at zero).
    Within one offset the slice hits each input element at most once, so a plain ``+=`` is
    exact: no ``np.add.at``. Entries that fall into the padding are dropped.
    """
    for i, (_, out_sl, in_sl) in enumerate(g.slices):
        if out_sl is not None:
            x[(Ellipsis, *in_sl)] += cols[(slice(None), slice(None), i, *out_sl)]


# ---------------------------------------------------------------------------------------------
# workspaces and batch chunks
# ---------------------------------------------------------------------------------------------
def _workspace(shape: tuple[int, ...], dtype: np.dtype, name: str = "cols") -> Array:
    """A per-thread scratch array (one per ``name``), reused across calls: repeated
    convolutions write into memory that is already mapped instead of page-faulting a fresh
    large buffer every time (measured: several ms per call for the shifted route's grids)."""
    n = math.prod(shape)
    cache = _local.__dict__.setdefault("ws", {})
    buf = cache.get((name, dtype))
    if buf is None or buf.size < n:
        buf = np.empty(n, dtype)
        if n * buf.itemsize <= 8 * WORKSPACE_BYTES:           # keep only modest buffers
            cache[(name, dtype)] = buf
    return buf[:n].reshape(shape)


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(_THREADS, thread_name_prefix="scratchnn-conv")
        return _POOL


def _run_chunks(n: int, per_sample: int, itemsize: int, step: Callable[[int, int], Any]
                ) -> list:
    """Run ``step(n0, n1)`` over batch chunks whose column buffer fits the workspace.

    Chunks go to the thread pool when there is more than one and the work is large: one
    chunk's im2col/col2im then overlaps another's matrix product."""
    if n == 0:
        return []
    b = max(1, min(n, WORKSPACE_BYTES // max(1, per_sample * itemsize)))
    k = -(-n // b)
    b = -(-n // k)                                           # balanced chunk sizes
    chunks = [(i, min(n, i + b)) for i in range(0, n, b)]
    if (len(chunks) == 1 or min(_THREADS, get_num_threads()) == 1
            or n * per_sample < PARALLEL_MIN):
        return [step(n0, n1) for n0, n1 in chunks]
    return list(_pool().map(lambda c: step(*c), chunks))


# ---------------------------------------------------------------------------------------------
# the three chunk steps (matrix layouts: W3 (G, Cy/G, Cx/G·K), cols4 (B, G, Cx/G·K, L))
# ---------------------------------------------------------------------------------------------
def _matmul(a: Array, b: Array, out: Array) -> None:
    """out = a @ b over stacked matrices. An inner dimension of 1 (a first layer's single
    channel, depthwise) is an outer product: broadcasting is several times faster than GEMM."""
    if a.shape[-1] == 1:
        np.multiply(a, b, out=out)
    else:
        np.matmul(a, b, out=out)


def _grouped(w: Array, g: _Geometry) -> Array:
    """W (Cy, Cx/G, *k) as G matrices (G, Cy/G, Cx/G·K) (a view of a C-contiguous W)."""
    return np.ascontiguousarray(w).reshape(g.groups, w.shape[0] // g.groups, -1)


def _correlate(x: Array, w3: Array, g: _Geometry, y: Array, bias: Array | None,
               cols: Array | None = None) -> Array:
    """y = W ⋆ x (+ b) for one chunk; returns the column buffer (the workspace, valid until the
    next step, unless ``cols`` is given to be written instead).

    Shapes: x (B, Cx, *S), y (B, Cy, *O) written in place; cols (B, Cx, K, *O)."""
    B, Cx = x.shape[:2]
    if cols is None:
        cols = _workspace((B, Cx, g.K) + g.out, x.dtype)     # (B, Cx, K, *O)
    _im2col(x, g, cols)
    cols4 = cols.reshape(B, g.groups, -1, g.L)               # (B, G, Cx/G·K, L)
    y4 = y.reshape(B, g.groups, -1, g.L)                     # (B, G, Cy/G, L)
    _matmul(w3, cols4, y4)
    if bias is not None:
        y4 += bias.reshape(g.groups, -1, 1)
    return cols4


def _scatter(y: Array, w3: Array, g: _Geometry, x: Array, bias: Array | None) -> None:
    """x += col2im(Wᵀ @ y) (+ b) for one chunk: the transposed convolution.

    Shapes: y (B, Cy, *O) -> x (B, Cx, *S), which must start at zero."""
    B, Cx = x.shape[:2]
    cols = _workspace((B, Cx, g.K) + g.out, x.dtype)         # (B, Cx, K, *O)
    y4 = y.reshape(B, g.groups, -1, g.L)                     # (B, G, Cy/G, L)
    _matmul(w3.transpose(0, 2, 1), y4, cols.reshape(B, g.groups, -1, g.L))
    _col2im(cols, g, x)
    if bias is not None:
        x.reshape(B, x.shape[1], -1)[...] += bias[:, None]


def _weight_grad(y: Array, cols4: Array) -> Array:
    """Σ_n dy[n] @ cols[n]ᵀ for one chunk: (B, G, Cy/G, L) × (B, G, Cx/G·K, L) -> (G, Cy/G,
    Cx/G·K), the correlation of the x side with the y side.

    Computed as its transpose, Σ_n cols[n] @ dy[n]ᵀ, (Cx/G·K, Cy/G) products returned as a
    transposed view: OpenBLAS runs this orientation (more rows than columns) 1.3–2× faster
    (measured: 16→32 channels on 24×24, 0.71 ms against 1.51 ms for a batch of 32)."""
    B = y.shape[0]
    y4 = y.reshape(B, cols4.shape[1], -1, cols4.shape[3])
    return np.matmul(cols4, y4.transpose(0, 1, 3, 2)).sum(axis=0).transpose(0, 2, 1)


def _flipped(w: Array, g: _Geometry, cy: int, cx: int) -> tuple[Array, _Geometry] | None:
    """For stride 1, scattering back through W (a transposed convolution, y side -> x side) is
    a plain correlation of the y side with W **flipped in space and transposed per group**,
    padded by dil·(k − 1) − lo:

        x[c, p] = Σ_{o_c, κ} W[o_c, c, κ] · y[o_c, p + lo − κ·dil]
                = Σ_{o_c, κ'} W[o_c, c, K−1−κ'] · y_pad[o_c, p + κ'·dil]     (κ' = K−1−κ)

    im2col + GEMM then replaces GEMM + col2im: cheaper when the y side has no more channels
    than the x side (the columns are Cy·K per position instead of Cx·K, and a copy replaces a
    read-modify-write). Returns (W' as (G, Cx/G, Cy/G·K) matrices, its geometry) or None when
    the scatter is the better (or the only: stride > 1) way."""
    if any(s != 1 for s in g.stride) or cy > cx:
        return None
    G, d = g.groups, len(g.kernel)
    wf = w.reshape(G, w.shape[0] // G, w.shape[1], *g.kernel).swapaxes(1, 2)
    wf = wf[(Ellipsis, *[slice(None, None, -1)] * d)]            # flip every spatial axis
    wf = wf.reshape(G * w.shape[1], w.shape[0] // G, *g.kernel)  # (Cx, Cy/G, *k)
    span = [di * (ki - 1) for di, ki in zip(g.dilation, g.kernel)]
    pads = tuple((sp - lo, sp - hi) for sp, lo, hi in zip(span, g.lo, g.hi))
    gf = _geometry(G, g.kernel, g.stride, g.dilation, pads, g.out, g.size)
    return _grouped(wf, gf), gf


def _transposed_conv(y: Array, w: Array, g: _Geometry, x: Array, bias: Array | None,
                     flip: tuple[Array, _Geometry] | None) -> None:
    """x = col2im(Wᵀ @ y) (+ b) over the whole batch, by the cheaper of the two routes.

    Shapes: y (N, Cy, *O) -> x (N, Cx, *S), which must start at zero."""
    if flip is None:
        w3 = _grouped(w, g)
        _run_chunks(y.shape[0], x.shape[1] * g.K * g.L, x.itemsize,
                    lambda n0, n1: _scatter(y[n0:n1], w3, g, x[n0:n1], bias))
    else:
        wf3, gf = flip
        _run_chunks(y.shape[0], y.shape[1] * gf.K * gf.L, x.itemsize,
                    lambda n0, n1: _correlate(y[n0:n1], wf3, gf, x[n0:n1], bias))


# ---------------------------------------------------------------------------------------------
# the shifted GEMM (implicit im2col): no column buffer at all
# ---------------------------------------------------------------------------------------------
# Which engine runs: None = decide per shape (_use_shifted), "shifted" or "im2col" = force one
# (the tests force each route).
_ROUTE: str | None = None
SHIFTED_BLOCK_BYTES = 2 << 20      # output block per GEMM of the shifted route (stays in L2)
SHIFTED_MAX_WASTE = 1.15           # grid positions per output up to which it runs correlations


class _Grid(NamedTuple):
    """The flat layout of one convolution for :func:`_shifted_gemm` (batch size included).

    The zero-padded x side is split into its stride phases (``perf.phases.PhaseLayout``: phase r
    holds the padded positions ``m·s + r``; stride 1: one phase, the padded input itself), each
    laid out as a *phase grid* ``(C, N, *P)`` flattened to ``(C, L)``, ``L = N·ΠP``. Kernel
    offset κ reads phase ``r = κ·dil mod s`` at the flat shift of ``κ·dil div s`` grid steps.
    Window o's output sits at grid position o."""
    phases: tuple[tuple[int, ...], ...]   # the phases some kernel offset reads
    grid: tuple[int, ...]                 # P = O + (dil·(k − 1)) div s per dim
    L: int                                # N·ΠP: grid positions, valid outputs among them
    tail: int                             # the largest flat shift (zeros after the grid)
    taps: tuple[tuple[int, int], ...]     # per kernel offset (row-major): (phase index, shift)
    boxes: tuple                          # per phase: (grid slices, x slices) or None


def _grid(g: _Geometry, n: int) -> _Grid:
    """The :class:`_Grid` of geometry g for a batch of n (the phases in first-use order)."""
    lay = phase_layout(g.kernel, g.stride, g.dilation, g.lo, g.size, g.out)
    return _Grid(lay.phases, lay.grid, n * math.prod(lay.grid), lay.slack, lay.taps, lay.boxes)


def _to_grid(x: Array, g: _Geometry, gr: _Grid) -> Array:
    """x side (N, C, *S) -> its phases (R, C, L + tail), zero-padded (one copy of x)."""
    N, C = x.shape[:2]
    xg = _workspace((len(gr.phases), C, gr.L + gr.tail), x.dtype, "x grid")
    xg[...] = 0                                                    # (R, C, L + tail)
    xt = x.swapaxes(0, 1)                                          # (C, N, *S) view
    for i, sl in enumerate(gr.boxes):
        if sl is not None:
            xg[i, :, :gr.L].reshape(C, N, *gr.grid)[(Ellipsis, *sl[0])] = xt[(Ellipsis, *sl[1])]
    return xg


def _from_grid(xg: Array, g: _Geometry, gr: _Grid, n: int) -> Array:
    """The adjoint of :func:`_to_grid`: phases (R, C, ≥ L) -> x side (N, C, *S) (an input
    position lies in exactly one phase; positions no kernel offset reads get 0)."""
    C = xg.shape[1]
    x = np.zeros((n, C) + g.size, xg.dtype)                        # (N, C, *S)
    xt = x.swapaxes(0, 1)                                          # (C, N, *S) view
    for i, sl in enumerate(gr.boxes):
        if sl is not None:
            xt[(Ellipsis, *sl[1])] = xg[i, :, :gr.L].reshape(C, n, *gr.grid)[(Ellipsis, *sl[0])]
    return x


def _out_box(g: _Geometry) -> tuple[slice, ...]:
    return tuple(slice(0, o) for o in g.out)


def _shifted_gemm(a: Array, src: Array, taps: Sequence[tuple[int, int]], out: Array,
                  run: int = 1) -> None:
    """out (M, L) = Σ_i a[i] (M, C) @ src[r_i][:, s_i : s_i + L] for taps (r_i, s_i): a
    convolution as K matrix products over *shifted contiguous slices* of one flat layout.

    Why it works, stride 1 (one phase), 1-d, N = 2, k = 3, padding 1, grid P = 6, L = 12::

        src[0]  (C, L + tail):  0 a b c d 0 | 0 e f g h 0 | 0 0        (tail = 2 zeros)
        shift 0 (κ = 0):        0 a b c d 0   0 e f g h 0
        shift 1 (κ = 1):        a b c d 0 0   e f g h 0 0
        shift 2 (κ = 2):        b c d 0 0 e   f g h 0 0 0
        out:                    y y y y ∗ ∗   y y y y ∗ ∗              (∗: not an output)

    Column p of the shifted slice κ is what the window starting at p sees at offset κ, so the
    column buffer im2col would build is never written: each product reads it in place. Grid
    positions that are not windows (∗, the last dil·(k − 1) of every row) are computed and
    dropped. The sum runs over column blocks of ``SHIFTED_BLOCK_BYTES`` so the partial sums
    stay in cache.

    ``run``: the taps come in runs of ``run`` (one row of the kernel along its last dim) that
    read the same phase at shifts ``s, s + d, s + 2d, …``. Each block then first copies those
    ``run`` shifted slices under each other (a small in-cache column buffer, ``run·C`` rows),
    and every run is one product with inner dimension ``run·C``: fewer, more efficient
    products (measured ~15% faster at C = 64, k = 3)."""
    M, L = out.shape
    if not taps:
        out[...] = 0
        return
    runs = _tap_runs(taps, run)
    if runs is not None:                                   # merge each run into one product
        d, lo, span, taps = runs
        C = a.shape[-1]
        a = a.reshape(-1, run, M, C).transpose(0, 2, 1, 3).reshape(-1, M, run * C)
    b = max(256, SHIFTED_BLOCK_BYTES // (M * out.itemsize))
    tmp = _workspace((M, min(b, L)), out.dtype, "product")
    for j0 in range(0, L, b):
        j1 = min(L, j0 + b)
        o, t = out[:, j0:j1], tmp[:, :j1 - j0]                   # (M, block)
        blk, c0, c1 = src, j0, j1
        if runs is not None:                                     # (R, run·C, block + span)
            cols = _workspace((len(lo), run, C, j1 - j0 + span), out.dtype, "run cols")
            for k, (r, s0) in enumerate(lo):
                for j in range(run):
                    s1 = j0 + s0 + j * d
                    cols[k, j] = src[r][:, s1:s1 + j1 - j0 + span]
            blk, c0, c1 = cols.reshape(len(lo), run * C, -1), 0, j1 - j0
        for i, (r, s) in enumerate(taps):
            np.matmul(a[i], blk[r][:, c0 + s:c1 + s], out=t if i else o)
            if i:
                o += t


def _tap_runs(taps: Sequence[tuple[int, int]], run: int):
    """For :func:`_shifted_gemm`: if the taps form runs of ``run`` with the same phase and
    shifts stepping by one d, return (d, [(phase, lowest run start)] per phase used, span,
    [(phase index, run start − lowest)] per run); else None."""
    if run < 2 or len(taps) % run:
        return None
    d = taps[1][1] - taps[0][1]
    heads = taps[::run]
    if any(taps[i + j] != (r, s + j * d) for i, (r, s) in zip(range(0, len(taps), run), heads)
           for j in range(run)):
        return None
    lo: dict[int, int] = {}
    for r, s in heads:
        lo[r] = min(lo.get(r, s), s)
    order = list(lo)
    span = max(s - lo[r] for r, s in heads)
    return d, [(r, lo[r]) for r in order], span, [(order.index(r), s - lo[r]) for r, s in heads]


def _run(g: _Geometry) -> int:
    """Taps per run for :func:`_shifted_gemm`: one kernel row along the last dim when that dim
    has stride 1 (its taps then read one phase at steps of ±dil), else 1 (no merging)."""
    return g.kernel[-1] if g.stride[-1] == 1 else 1


def _tap_weights(w: Array, g: _Geometry) -> Array:
    """W (Cy, Cx/G, *k) -> (G, K, Cy/G, Cx/G): one (Cy/G, Cx/G) matrix per group and offset."""
    G, cy, cx = g.groups, w.shape[0] // g.groups, w.shape[1]
    return np.ascontiguousarray(w.reshape(G, cy, cx, g.K).transpose(0, 3, 1, 2))


def _shifted_correlate(x: Array, w: Array, g: _Geometry, bias: Array | None
                       ) -> tuple[Array, Array, _Grid]:
    """y = W ⋆ x (+ b) by the shifted GEMM. Returns (y (N, Cy, *O), x's phases, grid)."""
    N, Cx, Cy, G = x.shape[0], x.shape[1], w.shape[0], g.groups
    gr = _grid(g, N)
    xg = _to_grid(x, g, gr).reshape(len(gr.phases), G, Cx // G, gr.L + gr.tail)
    a = _tap_weights(w, g)                                           # (G, K, Cy/G, Cx/G)
    yg = _workspace((G, Cy // G, gr.L), x.dtype, "y grid")           # (G, Cy/G, L)
    for gi in range(G):
        _shifted_gemm(a[gi], xg[:, gi], gr.taps, yg[gi], _run(g))
    y = yg.reshape(Cy, N, *gr.grid)[(Ellipsis, *_out_box(g))]          # (Cy, N, *O) view
    y = y.swapaxes(0, 1).copy()                      # (N, Cy, *O), never the workspace itself
    if bias is not None:
        y.reshape(N, Cy, g.L)[...] += bias[:, None]
    return y, xg, gr


def _y_to_grid(y: Array, g: _Geometry, gr: _Grid) -> Array:
    """y side (N, Cy, *O) -> (G, Cy/G, tail + L): y on the grid, zero at the non-windows,
    after ``tail`` leading zeros (so the transposed product can read shifts backwards)."""
    N, Cy = y.shape[:2]
    ext = _workspace((Cy, gr.tail + gr.L), y.dtype, "y grid")
    ext[...] = 0
    ext[:, gr.tail:].reshape(Cy, N, *gr.grid)[(Ellipsis, *_out_box(g))] = y.swapaxes(0, 1)
    return ext.reshape(g.groups, Cy // g.groups, gr.tail + gr.L)


def _shifted_transpose(yext: Array, w: Array, g: _Geometry, gr: _Grid, n: int,
                       bias: Array | None) -> Array:
    """x = the transposed convolution of y (W's adjoint) by the shifted GEMM, from
    ``yext = _y_to_grid(y)``: x_phase_r[:, p] = Σ_{κ reads r} W_κᵀ @ y_grid[:, p − s_κ], i.e. the
    same product with the transposed taps and reversed shifts. Returns x (N, Cx, *S)."""
    G, Cx = g.groups, w.shape[1] * g.groups
    at = _tap_weights(w, g).swapaxes(2, 3)                           # (G, K, Cx/G, Cy/G)
    xg = _workspace((len(gr.phases), G, Cx // G, gr.L), yext.dtype, "x grid")
    for ri in range(len(gr.phases)):
        ks = [i for i, (r, _) in enumerate(gr.taps) if r == ri]
        taps = [(0, gr.tail - gr.taps[i][1]) for i in ks]
        for gi in range(G):
            _shifted_gemm(at[gi, ks], yext[None, gi], taps, xg[ri, gi], _run(g))
    x = _from_grid(xg.reshape(len(gr.phases), Cx, gr.L), g, gr, n)  # (N, Cx, *S)
    if bias is not None:
        x.reshape(n, Cx, math.prod(g.size))[...] += bias[:, None]
    return x


def _shifted_weight_grad(yext: Array, xg: Array, g: _Geometry, gr: _Grid,
                         shape: tuple[int, ...]) -> Array:
    """dW_κ = y_grid (Cy/G, L) @ x_phase[:, s_κ : s_κ + L]ᵀ per group: the correlation of the
    x side with the y side (zero at the non-windows, so they add nothing). -> W's shape.

    One product per block of grid columns: the K shifted slices of the block are copied into a
    small column buffer (in cache) and ``cols (K·Cx/G, B) @ y_gridᵀ (B, Cy/G)`` does all K
    offsets at once — measured 1.6× faster than K products with an inner dimension of L."""
    G, K, cx, cy = g.groups, g.K, xg.shape[2], yext.shape[1]
    yg = yext[:, :, gr.tail:]                                        # (G, Cy/G, L)
    b = max(256, WORKSPACE_BYTES // (K * cx * xg.itemsize))
    dw = np.zeros((G, K * cx, cy), xg.dtype)                         # (G, K·Cx/G, Cy/G)
    part = np.empty((K * cx, cy), xg.dtype)
    for gi in range(G):
        for j0 in range(0, gr.L, b):
            j1 = min(gr.L, j0 + b)
            c = _workspace((K, cx, j1 - j0), xg.dtype)               # (K, Cx/G, block)
            for i, (r, s) in enumerate(gr.taps):
                c[i] = xg[r, gi, :, j0 + s:j1 + s]
            np.matmul(c.reshape(K * cx, j1 - j0), yg[gi, :, j0:j1].T, out=part)
            dw[gi] += part
    dw = dw.reshape(G, K, cx, cy).transpose(0, 3, 2, 1)              # (G, Cy/G, Cx/G, K)
    return np.ascontiguousarray(dw).reshape(shape)


def _use_shifted(g: _Geometry, cx: int, cy: int, correlate: bool) -> bool:
    """Which engine: the shifted GEMM or im2col (measured, CPU time per call at 64 channels).

    * It needs real matrix products: ≥ 16 channels per group on both sides (its inner
      dimension is Cx/G, or Cx/G·k_last with merged runs; im2col's is Cx/G·K). A one-channel
      first layer or a depthwise convolution stays on im2col.
    * The *transposed* direction (+ dW) is cheaper shifted (~15-20% less CPU time at 16 to 128
      channels, stride 1 and 2): no col2im scatter.
    * A *correlation* (conv's forward, conv_transpose's dx) only with stride 1 and at most
      ``SHIFTED_MAX_WASTE`` grid positions per output (ΠP / ΠO: the non-windows are computed
      too): 20% faster at 32×32 padded (1.13), 12-17% slower at 26→24 (1.17) or 16×16
      padded (1.27). With stride > 1 im2col's copy reads only the strided windows, while the
      phase split is a slow short-row gather.

    ``correlate``: whether the call computes W ⋆ x_side (else its adjoint and dW)."""
    if _ROUTE is not None:
        return _ROUTE == "shifted"
    if min(cx, cy) // g.groups < 16:
        return False
    if not correlate:
        return True
    grid = [o + di * (ki - 1) for o, di, ki in zip(g.out, g.dilation, g.kernel)]
    return (all(s == 1 for s in g.stride)
            and math.prod(grid) <= SHIFTED_MAX_WASTE * math.prod(g.out))


# ---------------------------------------------------------------------------------------------
# argument checking (shared by conv and conv_transpose)
# ---------------------------------------------------------------------------------------------
def _tuple(fn: str, name: str, v: Any, n: int, min: int) -> tuple[int, ...]:
    """torch's expand_param_if_needed: an int, a 1-sequence or an n-sequence of ints."""
    if isinstance(v, (list, tuple)) and len(v) == 1:
        v = v[0]
    return ntuple(fn, name, v, n, min=min)


class _Args(NamedTuple):
    x: Array                      # (N, C, *S): batched view of the input
    unbatched: bool
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int


def _check_common(fn: str, n: int, input: Any, weight: Any, bias: Any, stride: Any,
                  dilation: Any, groups: Any) -> _Args:
    check_array(fn, "input", input)
    check_array(fn, "weight", weight, ndim=n + 2)
    if bias is not None:
        check_array(fn, "bias", bias, ndim=1)
    check_same_dtype(fn, "input", input, weight=weight, bias=bias)
    if input.ndim not in (n + 1, n + 2):
        raise ValueError(f"{fn}(): parameter 'input' must be {n + 1}-dimensional (unbatched) "
                         f"or {n + 2}-dimensional (batched), got shape {input.shape}")
    stride = _tuple(fn, "stride", stride, n, 1)
    dilation = _tuple(fn, "dilation", dilation, n, 1)
    groups = check_int(fn, "groups", groups, min=1)
    unbatched = input.ndim == n + 1
    x = input[None] if unbatched else input
    if x.shape[1] % groups:
        raise ValueError(f"{fn}(): parameter 'groups' {groups} must divide the input's "
                         f"{x.shape[1]} channels")
    return _Args(x, unbatched, stride, dilation, groups)


def _check_bias(fn: str, bias: Array | None, channels: int) -> None:
    if bias is not None and bias.shape != (channels,):
        raise ValueError(f"{fn}(): parameter 'bias' must have shape ({channels},), one per "
                         f"output channel, got {bias.shape}")


# ---------------------------------------------------------------------------------------------
# convolution
# ---------------------------------------------------------------------------------------------
class ConvCtx(NamedTuple):
    x: Array                      # (N, C_in, *S): dW correlates it with dy
    weight: Array                 # dx needs W
    geom: _Geometry
    has_bias: bool
    unbatched: bool
    cols: Array | None = None     # (N, C_in, K, *O): im2col(x), kept when small (SAVE_COLS_BYTES)


def _keep_cols(x: Array, g: _Geometry) -> bool:
    """Whether the forward keeps its columns for the backward: when they are small (≤
    ``SAVE_COLS_BYTES``, a few MiB). The backward's weight gradient then reads them instead of
    copying the windows again (one im2col saved: ~10 % of the chapter's first layer, 1→16
    channels). Larger columns are recomputed: keeping them costs K× the input's memory, and
    once they leave the caches, reading them back was measured no faster than recomputing
    (the 16→32 layer's 10.6 MiB: 4 % slower kept)."""
    return x.shape[0] * x.shape[1] * g.K * g.L * x.itemsize <= SAVE_COLS_BYTES


def check_conv(fn: str, n: int, input: Any, weight: Any, bias: Any, stride: Any,
               padding: Any, dilation: Any, groups: Any) -> tuple[Array, _Geometry, bool]:
    """Validate a convolution call (torch's rules) and work out its windows.

    Returns ``(x, geometry, unbatched)`` with x the batched view of the input. Raises a
    ValueError/TypeError naming the parameter before any work is done."""
    a = _check_common(fn, n, input, weight, bias, stride, dilation, groups)
    x, s, d, G = a.x, a.stride, a.dilation, a.groups
    k = weight.shape[2:]
    pads = parse_padding(fn, padding, n, k, d, s)
    if weight.shape[0] % G:
        raise ValueError(f"{fn}(): parameter 'weight' has {weight.shape[0]} output channels, "
                         f"not divisible by groups={G}")
    if weight.shape[1] * G != x.shape[1]:
        raise ValueError(f"{fn}(): parameter 'weight' expects {weight.shape[1] * G} input "
                         f"channels (shape {weight.shape}, groups={G}) but 'input' has "
                         f"{x.shape[1]}")
    _check_bias(fn, bias, weight.shape[0])
    S = x.shape[2:]
    padded = tuple(si + lo + hi for si, (lo, hi) in zip(S, pads))
    span = tuple(di * (ki - 1) + 1 for di, ki in zip(d, k))
    if any(p < sp for p, sp in zip(padded, span)):
        raise ValueError(f"{fn}(): parameter 'weight' has kernel size {tuple(k)} (dilated "
                         f"{span}) larger than the padded input {padded} (input {S}, "
                         f"padding {pads})")
    out = tuple((p - sp) // si + 1 for p, sp, si in zip(padded, span, s))
    return x, _geometry(G, k, s, d, pads, S, out), a.unbatched


def conv_forward(input: Array, weight: Array, bias: Array | None = None, stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, groups: int = 1, *, _n: int = 2,
                 _fn: str = "conv2d") -> tuple[Array, ConvCtx]:
    """y[n, o_c, o] = b[o_c] + Σ_{c ∈ group(o_c), κ} W[o_c, c, κ] · x_pad[n, c, o·s + κ·dil]

    Computed as im2col + one matrix product per group: y[n, g] = W[g] @ cols[n, g], or, for
    wide layers, as the shifted GEMM (K products over shifted slices of the padded input, no
    column buffer; see :func:`_shifted_gemm`).

    Shapes:  x (N, C_in, *S) or unbatched (C_in, *S); W (C_out, C_in/G, *k); b (C_out)
             -> y (N, C_out, *O), O = ⌊(S + lo + hi − dil·(k − 1) − 1) / s⌋ + 1.
             padding: int, tuple, 'valid' (0) or 'same' (O = S, stride 1; an even total
             dil·(k−1) puts the extra element on the high side, as torch).
    Saves:   x and W; the columns too when they are small (≤ ``SAVE_COLS_BYTES``, as for the
             chapter's first layer): larger ones are recomputed in backward (one copy), since
             keeping them would cost K× the input's memory (see :func:`_keep_cols`).
    Torch:   torch.nn.functional.conv1d / conv2d / conv3d
    """
    x, g, unbatched = check_conv(_fn, _n, input, weight, bias, stride, padding, dilation,
                                 groups)
    cols = None
    if _use_shifted(g, x.shape[1], weight.shape[0], correlate=True):
        y = _shifted_correlate(x, weight, g, bias)[0]                # (N, C_out, *O)
    else:
        y = np.empty((x.shape[0], weight.shape[0]) + g.out, x.dtype)  # (N, C_out, *O)
        w3 = _grouped(weight, g)                                     # (G, C_out/G, C_in/G·K)
        if _keep_cols(x, g):                                         # (N, C_in, K, *O)
            cols = np.empty((x.shape[0], x.shape[1], g.K) + g.out, x.dtype)
        _run_chunks(x.shape[0], x.shape[1] * g.K * g.L, x.itemsize,
                    lambda n0, n1: _correlate(x[n0:n1], w3, g, y[n0:n1], bias,
                                              None if cols is None else cols[n0:n1]))
    ctx = ConvCtx(x, weight, g, bias is not None, unbatched, cols)
    return (y[0] if unbatched else y), ctx


def conv_backward(ctx: ConvCtx, dy: Array, needs_input_grad: Sequence[bool] | None = None
                  ) -> tuple[Array | None, Array, Array | None]:
    """dx = col2im(Wᵀ @ dy),  dW = Σ_n dy[n] @ cols(x)[n]ᵀ,  db = Σ_{n, o} dy

    * **dx is a transposed convolution of dy** with the same W, stride, padding, dilation:
      each dy[n, o_c, o] is spread back over the window o it came from, weighted by W —
      ``(N, C_out, *O) -> (N, C_in, *S)``; exactly ``conv_transpose(dy, W)`` (with the
      output_padding that restores S).
    * **dW is a correlation of the input with dy**: dW[o_c, c, κ] = Σ_{n, o} dy[n, o_c, o] ·
      x_pad[n, c, o·s + κ·dil] — per group ``(C_out/G, L) @ (L, C_in/G·K)`` summed over n,
      giving ``(C_out, C_in/G, *k)``.
    * db: dy summed over batch and space, ``(C_out,)``.

    ``needs_input_grad`` (from ``vjp``'s pullback): with ``needs_input_grad[0]`` False, dx is
    not computed (None) — a network's first layer, whose input is data, as in torch.
    """
    x, w, g = ctx.x, ctx.weight, ctx.geom
    dy = np.ascontiguousarray(dy[None] if ctx.unbatched else dy)     # (N, C_out, *O)
    db = _bias_grad(dy) if ctx.has_bias else None                    # (C_out,)
    want_dx = needs_input_grad is None or needs_input_grad[0]
    if ctx.cols is not None:                                         # the forward's columns
        dx = _transpose_of(dy, w, g, x.shape) if want_dx else None
        cols4 = ctx.cols.reshape(x.shape[0], g.groups, x.shape[1] // g.groups * g.K, g.L)
        parts = _run_chunks(x.shape[0], x.shape[1] * g.K * g.L, x.itemsize,
                            lambda n0, n1: _weight_grad(dy[n0:n1], cols4[n0:n1]))
        return _unbatch(dx, ctx.unbatched), _sum(parts, w.shape, w.dtype), db
    if _use_shifted(g, x.shape[1], w.shape[0], correlate=False):
        gr = _grid(g, x.shape[0])
        xg = _to_grid(x, g, gr).reshape(len(gr.phases), g.groups, x.shape[1] // g.groups,
                                        gr.L + gr.tail)
        dyg = _y_to_grid(dy, g, gr)                                  # (G, C_out/G, tail + L)
        dw = _shifted_weight_grad(dyg, xg, g, gr, w.shape)           # before dx reuses xg's
        dx = (_shifted_transpose(dyg, w, g, gr, x.shape[0], None)    # (N, C_in, *S)
              if want_dx else None)
        return _unbatch(dx, ctx.unbatched), dw, db
    w3 = _grouped(w, g)
    dx = np.zeros(x.shape, x.dtype) if want_dx else None             # (N, C_in, *S)

    flip = _flipped(w, g, dy.shape[1], x.shape[1])

    def step(n0: int, n1: int) -> Array:
        B = n1 - n0
        cols = _workspace((B, x.shape[1], g.K) + g.out, x.dtype)
        _im2col(x[n0:n1], g, cols)                                   # (B, C_in, K, *O)
        cols4 = cols.reshape(B, g.groups, -1, g.L)
        dw = _weight_grad(dy[n0:n1], cols4)                          # (G, C_out/G, C_in/G·K)
        if flip is None and dx is not None:
            _scatter(dy[n0:n1], w3, g, dx[n0:n1], None)              # reuses the workspace
        return dw

    parts = _run_chunks(x.shape[0], x.shape[1] * g.K * g.L, x.itemsize, step)
    if flip is not None and dx is not None:                          # dx = W_flip ⋆ dy
        _transposed_conv(dy, w, g, dx, None, flip)
    dw = _sum(parts, w.shape, w.dtype)
    return _unbatch(dx, ctx.unbatched), dw, db


def _unbatch(a: Array | None, unbatched: bool) -> Array | None:
    """Drop the batch axis added for an unbatched input (None stays None)."""
    return a[0] if unbatched and a is not None else a


def _transpose_of(y: Array, w: Array, g: _Geometry, shape: tuple[int, ...],
                  bias: Array | None = None) -> Array:
    """The transposed convolution of the y side (+ b): conv's input gradient and
    conv_transpose's forward. By the shifted GEMM or (im2col route) the flipped-kernel
    correlation or GEMM + col2im, whichever :func:`_use_shifted` and :func:`_flipped` pick.
    Shapes: y (N, Cy, *O) -> x side ``shape`` (N, Cx, *S)."""
    if _use_shifted(g, shape[1], y.shape[1], correlate=False):
        gr = _grid(g, shape[0])
        return _shifted_transpose(_y_to_grid(y, g, gr), w, g, gr, shape[0], bias)
    x = np.zeros(shape, y.dtype)
    _transposed_conv(y, w, g, x, bias, _flipped(w, g, y.shape[1], shape[1]))
    return x


def _bias_grad(dy: Array) -> Array:
    """db = Σ_{n, o} dy[n, :, o]: (N, C, *O) -> (C,) (contiguous inner sums first)."""
    return dy.reshape(dy.shape[:2] + (math.prod(dy.shape[2:]),)).sum(axis=2).sum(axis=0)


def _sum(parts: list, shape: tuple[int, ...], dtype: np.dtype) -> Array:
    """Sum the chunks' weight-gradient partials into an array of ``shape``."""
    total = np.zeros(shape, dtype)
    flat = total.reshape(parts[0].shape) if parts else total
    for p in parts:
        flat += p
    return total


# ---------------------------------------------------------------------------------------------
# transposed convolution: the same engine, roles swapped
# ---------------------------------------------------------------------------------------------
class ConvTransposeCtx(NamedTuple):
    x: Array                      # (N, C_in, *S): dW correlates dy with it
    weight: Array                 # dx needs W
    geom: _Geometry               # of the convolution this op transposes (its y side is x)
    has_bias: bool
    unbatched: bool


def check_conv_transpose(fn: str, n: int, input: Any, weight: Any, bias: Any, stride: Any,
                         padding: Any, output_padding: Any, groups: Any, dilation: Any
                         ) -> tuple[Array, _Geometry, bool]:
    """Validate a transposed-convolution call (torch's rules) and work out the windows of the
    convolution it transposes (whose x side is our output). Returns ``(x, geometry,
    unbatched)``."""
    a = _check_common(fn, n, input, weight, bias, stride, dilation, groups)
    x, s, d, G = a.x, a.stride, a.dilation, a.groups
    if isinstance(padding, str):
        raise TypeError(f"{fn}(): parameter 'padding' must be an int or a tuple of ints "
                        f"(transposed convolutions take no 'same'/'valid'), got {padding!r}")
    p = _tuple(fn, "padding", padding, n, 0)
    op = _tuple(fn, "output_padding", output_padding, n, 0)
    for oi, si, di in zip(op, s, d):
        if not (oi < si or oi < di):
            raise ValueError(f"{fn}(): parameter 'output_padding' {op} must be smaller than "
                             f"either stride {s} or dilation {d} in every dimension")
    if weight.shape[0] != x.shape[1]:
        raise ValueError(f"{fn}(): parameter 'weight' has {weight.shape[0]} input channels "
                         f"(dimension 0 of {weight.shape}) but 'input' has {x.shape[1]}")
    _check_bias(fn, bias, weight.shape[1] * G)
    k, S = weight.shape[2:], x.shape[2:]
    out = tuple((si - 1) * st - 2 * pi + di * (ki - 1) + oi + 1
                for si, st, pi, di, ki, oi in zip(S, s, p, d, k, op))
    if any(o < 1 for o in out) or any(si < 1 for si in S):
        raise ValueError(f"{fn}(): parameter 'padding' {p} leaves an output size {out} "
                         f"for input size {S}; it must be at least 1")
    g = _geometry(G, k, s, d, tuple((pi, pi) for pi in p), out, S)  # x side = our output
    return x, g, a.unbatched


def conv_transpose_forward(input: Array, weight: Array, bias: Array | None = None,
                           stride: Any = 1, padding: Any = 0, output_padding: Any = 0,
                           groups: int = 1, dilation: Any = 1, *, _n: int = 2,
                           _fn: str = "conv_transpose2d") -> tuple[Array, ConvTransposeCtx]:
    """y = col2im(Wᵀ @ x) + b: the input gradient of the convolution with the same W, stride,
    padding and dilation (the adjoint map, not an inverse).

    y[n, c, o·s + κ·dil − p] += Σ_{i ∈ group(c)} W[i, c, κ] · x[n, i, o] for every window o.

    Shapes:  x (N, C_in, *S) or unbatched (C_in, *S); W (C_in, C_out/G, *k); b (C_out)
             -> y (N, C_out, *O), O = (S − 1)·s − 2p + dil·(k − 1) + output_padding + 1.
             output_padding (each < stride or < dilation) extends the high end: a strided
             convolution maps several sizes to S, and it says which one to give back.
    Saves:   x and W.
    Torch:   torch.nn.functional.conv_transpose1d / 2d / 3d (note the argument order:
             ..., padding, output_padding, groups, dilation)
    """
    x, g, unbatched = check_conv_transpose(_fn, _n, input, weight, bias, stride, padding,
                                           output_padding, groups, dilation)
    xc = np.ascontiguousarray(x)
    c_out = weight.shape[1] * g.groups
    y = _transpose_of(xc, weight, g, (xc.shape[0], c_out) + g.size, bias)  # (N, C_out, *O)
    ctx = ConvTransposeCtx(xc, weight, g, bias is not None, unbatched)
    return (y[0] if unbatched else y), ctx


def conv_transpose_backward(ctx: ConvTransposeCtx, dy: Array
                            ) -> tuple[Array, Array, Array | None]:
    """dx = W ⋆ dy (a convolution),  dW = Σ_n x[n] @ cols(dy)[n]ᵀ,  db = Σ_{n, o} dy

    * dx: the adjoint of a transposed convolution is the **convolution** with the same W:
      ``(N, C_out, *O) -> (N, C_in, *S)`` (im2col of dy, then W[g] @ cols per group).
    * dW: the **correlation of dy with the input** — the same formula as conv's dW with x and
      dy swapped: per group ``(C_in/G, L) @ (L, C_out/G·K)`` summed over n,
      giving ``(C_in, C_out/G, *k)``; one im2col of dy serves dx and dW.
    * db: dy summed over batch and space, ``(C_out,)``.
    """
    x, w, g = ctx.x, ctx.weight, ctx.geom
    dy = dy[None] if ctx.unbatched else dy                           # (N, C_out, *O)
    db = _bias_grad(dy) if ctx.has_bias else None                    # (C_out,)
    if _use_shifted(g, dy.shape[1], x.shape[1], correlate=True):     # dy is the x side
        dx, dyg, gr = _shifted_correlate(dy, w, g, None)             # dx = W ⋆ dy
        dw = _shifted_weight_grad(_y_to_grid(x, g, gr), dyg, g, gr, w.shape)
        return _unbatch(dx, ctx.unbatched), dw, db
    w3 = _grouped(w, g)
    dx = np.empty(x.shape, x.dtype)                                  # (N, C_in, *S)

    def step(n0: int, n1: int) -> Array:
        cols4 = _correlate(dy[n0:n1], w3, g, dx[n0:n1], None)        # dx = W ⋆ dy
        return _weight_grad(x[n0:n1], cols4)                         # (G, C_in/G, C_out/G·K)

    parts = _run_chunks(x.shape[0], dy.shape[1] * g.K * g.L, x.itemsize, step)
    dw = _sum(parts, w.shape, w.dtype)
    return _unbatch(dx, ctx.unbatched), dw, db


# ---------------------------------------------------------------------------------------------
# pad: the padding modes of Conv*d modules ('zeros' is the convolution's own padding)
# ---------------------------------------------------------------------------------------------
class PadCtx(NamedTuple):
    shape: tuple[int, ...]        # the input's shape
    axes: tuple                   # per padded axis: (axis, lo, hi, index map or None)
    mode: str


def _pad_index(mode: str, size: int, lo: int, hi: int) -> Array:
    """For every output position j along one axis, the input index it copies (p = j − lo)."""
    p = np.arange(-lo, size + hi)
    if mode == "reflect":                                    # … x2 x1 | x0 x1 x2 … | x1 …
        p = np.abs(p)
        return np.where(p >= size, 2 * (size - 1) - p, p)
    if mode == "replicate":                                  # x0 x0 | x0 x1 … | xL xL
        return np.clip(p, 0, size - 1)
    c0, c1 = max(0, -lo), size - max(0, -hi)                 # circular: crop first (torch),
    return c0 + (np.arange(-max(lo, 0), c1 - c0 + max(hi, 0)) % (c1 - c0))  # then wrap


def _check_pad(fn: str, x: Array, pad: Any, mode: str, value: Any) -> tuple[int, ...]:
    check_array(fn, "input", x)
    if mode not in ("constant", "reflect", "replicate", "circular"):
        raise ValueError(f"{fn}(): parameter 'mode' must be one of 'constant', 'reflect', "
                         f"'replicate', 'circular', got {mode!r}")
    if not isinstance(pad, (list, tuple)) or len(pad) % 2:
        raise ValueError(f"{fn}(): parameter 'pad' must be a sequence of (left, right) pairs "
                         f"(an even number of ints), got {pad!r}")
    pad = tuple(check_int(fn, "pad", v) for v in pad)
    d = len(pad) // 2
    if d > x.ndim:
        raise ValueError(f"{fn}(): parameter 'pad' pads {d} dimensions but 'input' has only "
                         f"{x.ndim}")
    if mode == "constant":
        if value is not None:
            check_float_like(fn, value)
        # torch crops (negative entries) before it pads, so the crops alone must fit
        sizes = [x.shape[x.ndim - 1 - i] + min(pad[2 * i], 0) + min(pad[2 * i + 1], 0)
                 for i in range(d)]
        if any(v < 0 for v in sizes):
            raise ValueError(f"{fn}(): parameter 'pad' {pad} crops more than the input "
                             f"{x.shape} has")
        return pad
    if value is not None and value != 0:
        raise ValueError(f"{fn}(): parameter 'value' is only used by mode='constant', got "
                         f"{value!r} with mode={mode!r}")
    if d not in (1, 2, 3) or x.ndim not in (d + 1, d + 2):
        raise ValueError(f"{fn}(): parameter 'pad' of length {len(pad)} with mode={mode!r} "
                         f"needs a {d + 1}-d or {d + 2}-d input (torch's rule), got "
                         f"shape {x.shape}")
    if any(s == 0 for s in x.shape[x.ndim - d - 1:]):
        raise ValueError(f"{fn}(): parameter 'input' {x.shape} must be non-empty in every "
                         f"dimension except the batch for mode={mode!r}")
    for i in range(d):
        size, lo, hi = x.shape[x.ndim - 1 - i], pad[2 * i], pad[2 * i + 1]
        if size + lo + hi < 1:                               # torch: "input is too small"
            raise ValueError(f"{fn}(): parameter 'pad' ({lo}, {hi}) leaves no output of the "
                             f"input's size {size} for mode={mode!r}")
        if mode == "reflect" and max(lo, hi) >= size:
            raise ValueError(f"{fn}(): parameter 'pad' ({lo}, {hi}) must be smaller than the "
                             f"input's size {size} for mode='reflect'")
        kept = size - max(0, -lo) - max(0, -hi)
        if mode == "circular" and max(lo, hi, 1) > kept:
            raise ValueError(f"{fn}(): parameter 'pad' ({lo}, {hi}) must not exceed the "
                             f"(cropped) input size {kept} for mode='circular' (it wraps at "
                             f"most once)")
    return pad


def check_float_like(fn: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{fn}(): parameter 'value' must be a number, got {value!r}")


def pad_forward(input: Array, pad: Sequence[int], mode: str = "constant",
                value: float | None = None) -> tuple[Array, PadCtx]:
    """y = x extended (or cropped, for negative entries) along its last ``len(pad)/2`` dims.

    ``pad = (lo_last, hi_last, lo_second_last, hi_second_last, ...)`` as torch. Along one axis
    output position j copies input index p = j − lo, brought into range by the mode:
    'constant' (``value``, default 0), 'reflect' (−p; 2(S−1) − p), 'replicate' (clamp),
    'circular' (p mod S).

    Shapes:  x (*, S_d, …, S_1) -> y (*, S_d + lo_d + hi_d, …). 'reflect', 'replicate' and
             'circular' take a (d+1)- or (d+2)-dim input for d padded dims (d ≤ 3), as torch.
    Saves:   the index map of each padded axis (the input itself is not needed).
    Torch:   torch.nn.functional.pad
    """
    fn = "pad"
    pad = _check_pad(fn, input, pad, mode, value)
    axes = []
    y = input
    for i in range(len(pad) // 2):
        ax, lo, hi = input.ndim - 1 - i, pad[2 * i], pad[2 * i + 1]
        size = input.shape[ax]
        if mode == "constant":
            axes.append((ax, lo, hi, None))
            continue
        idx = _pad_index(mode, size, lo, hi)
        y = np.take(y, idx, axis=ax)                          # (…, S + lo + hi, …)
        axes.append((ax, lo, hi, idx))
    if mode == "constant":
        shape = list(input.shape)
        for ax, lo, hi, _ in axes:
            shape[ax] += lo + hi
        y = np.full(shape, 0.0 if value is None else float(value), input.dtype)
        y[_crop(input.ndim, axes, "dst")] = input[_crop(input.ndim, axes, "src")]
    elif y is input:
        y = input.copy()
    return y, PadCtx(input.shape, tuple(axes), mode)


def _crop(ndim: int, axes: Sequence, side: str) -> tuple[slice, ...]:
    """The slices matching input ('src') and output ('dst') for constant padding/cropping."""
    sl = [slice(None)] * ndim
    for ax, lo, hi, _ in axes:
        if side == "src":
            sl[ax] = slice(max(0, -lo), None if hi >= 0 else hi)
        else:
            sl[ax] = slice(max(0, lo), None if hi <= 0 else -hi)
    return tuple(sl)


def pad_backward(ctx: PadCtx, dy: Array) -> Array:
    """dx[p] = Σ_{j : index(j) = p} dy[j] along each padded axis (the last one first).

    constant: dx = dy cropped back (padding receives no gradient). Other modes: the part of dy
    that copies x unchanged goes straight back; each border position j (a loop over the few
    padding positions, whole slabs at a time) adds dy[j] into the element it copied.
    """
    if ctx.mode == "constant":
        dx = np.zeros(ctx.shape, dy.dtype)
        dx[_crop(dy.ndim, ctx.axes, "src")] = dy[_crop(dy.ndim, ctx.axes, "dst")]
        return dx
    g = dy
    for ax, lo, hi, idx in reversed(ctx.axes):
        size = ctx.shape[ax]
        shape = list(g.shape)
        shape[ax] = size
        dx = np.zeros(shape, dy.dtype)
        j0, j1 = max(0, lo), min(len(idx), lo + size)         # positions copying x[j − lo]
        at = [slice(None)] * g.ndim
        src = list(at)
        at[ax], src[ax] = slice(j0 - lo, j1 - lo), slice(j0, j1)
        dx[tuple(at)] = g[tuple(src)]
        for j in (*range(0, j0), *range(j1, len(idx))):        # the border positions
            at[ax], src[ax] = int(idx[j]), j
            dx[tuple(at)] += g[tuple(src)]
        g = dx
    return g


pad = defop(pad_forward, pad_backward)


# ---------------------------------------------------------------------------------------------
# the six torch-named ops
# ---------------------------------------------------------------------------------------------
def _conv_op(n: int) -> Callable:
    name = f"conv{n}d"

    def forward(input: Array, weight: Array, bias: Array | None = None, stride: Any = 1,
                padding: Any = 0, dilation: Any = 1, groups: int = 1
                ) -> tuple[Array, ConvCtx]:
        return conv_forward(input, weight, bias, stride, padding, dilation, groups,
                            _n=n, _fn=name)

    forward.__name__ = f"{name}_forward"
    forward.__doc__ = (f"{n}-d convolution; see :func:`conv_forward` (the N-d engine).\n\n"
                       + (conv_forward.__doc__ or "").split("\n", 1)[1])
    conv_backward_n = _alias(conv_backward, f"{name}_backward")
    return defop(forward, conv_backward_n, name=name)


def _conv_transpose_op(n: int) -> Callable:
    name = f"conv_transpose{n}d"

    def forward(input: Array, weight: Array, bias: Array | None = None, stride: Any = 1,
                padding: Any = 0, output_padding: Any = 0, groups: int = 1,
                dilation: Any = 1) -> tuple[Array, ConvTransposeCtx]:
        return conv_transpose_forward(input, weight, bias, stride, padding, output_padding,
                                      groups, dilation, _n=n, _fn=name)

    forward.__name__ = f"{name}_forward"
    forward.__doc__ = (f"{n}-d transposed convolution; see :func:`conv_transpose_forward`.\n\n"
                       + (conv_transpose_forward.__doc__ or "").split("\n", 1)[1])
    return defop(forward, _alias(conv_transpose_backward, f"{name}_backward"), name=name)


def _alias(f: Callable, name: str) -> Callable:
    if "needs_input_grad" in inspect.signature(f).parameters:
        def g(ctx: Any, dy: Array, needs_input_grad: Sequence[bool] | None = None) -> Any:
            return f(ctx, dy, needs_input_grad)
    else:
        def g(ctx: Any, dy: Array) -> Any:                           # type: ignore[misc]
            return f(ctx, dy)
    g.__name__ = g.__qualname__ = name
    g.__doc__ = f.__doc__
    return g


conv1d, conv2d, conv3d = (_conv_op(n) for n in (1, 2, 3))
conv_transpose1d, conv_transpose2d, conv_transpose3d = (_conv_transpose_op(n) for n in (1, 2, 3))
