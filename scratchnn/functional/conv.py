"""y[n, o_c, o] = b[o_c] + Σ_{c ∈ group(o_c)} Σ_κ W[o_c, c, κ] · x_pad[n, c, o·s + κ·dil]

The fast edition of convolution and transposed convolution, 1-d to 3-d, as one N-d engine.
Its textbook twin is :mod:`scratchnn.textbook.conv` (``scratchnn.textbook.conv2d``, …): the same
numbers computed plainly — by-pixel loops, then im2col/col2im — and the place to read first;
the tests prove the two equal on every route of this engine. Argument checking is the
textbook's own (:mod:`scratchnn.textbook._conv_args`) and ``pad`` is the textbook's function,
re-exported. Column buffers and batch chunks live in :mod:`scratchnn.perf.workspace`; which
route runs is decided in one place, :func:`choose_route`, and ``ROUTES`` names the settings
that force each route.

Notation (per spatial dimension; ``*S`` stands for all of them): input ``x (N, C_in, *S)``,
weight ``W (C_out, C_in/G, *k)``, ``G`` groups, output ``y (N, C_out, *O)`` with
``O = ⌊(S + lo + hi − dil·(k − 1) − 1) / s⌋ + 1``. ``K = Π k`` kernel offsets, ``L = Π O``
windows. The formula above (a correlation, as in torch) is computed as **im2col + matmul**:
for each of the K kernel offsets κ, copy the slice of x that every window sees at κ into a
column buffer ``cols (N, C_in, K, *O)`` (a loop over the K offsets, vectorised over batch,
channels and windows), then one batched matrix product per group::

    y[n, g] = W[g] (C_out/G, C_in/G·K)  @  cols[n, g] (C_in/G·K, L)

Everything else is the same three pieces rearranged:

* ``im2col`` — read windows; ``col2im`` — its adjoint: *add* columns back into windows;
* the **input gradient** of a convolution is ``col2im(Wᵀ @ dy)``: a *transposed* convolution
  of dy;
* the **weight gradient** is ``Σ_n dy[n] @ cols[n]ᵀ``: a correlation of the input with dy;
* a **transposed convolution** is, by definition, the input gradient of a convolution, so its
  forward *is* ``col2im(Wᵀ @ x)`` and its backward is a convolution (dx) and the same weight
  correlation (dW) with the roles of input and output swapped.

**The shifted GEMM** (``_shifted_gemm``, the route for layers with ≥ 16 channels per group on
both sides; with stride > 1 only for the transposed direction; see :func:`choose_route`) skips
the column buffer altogether: the zero-padded input is laid out once as a flat ``(C, N·ΠP)``
grid (split into stride phases when the stride is > 1), and every kernel offset becomes one
matrix product ``W_κ @ X[:, s_κ : s_κ + L]`` over a *shifted contiguous slice* of it
(``_Grid``). The transposed direction reads the same grid with the shifts reversed, and dW is
one product per block of grid columns. im2col stays for the narrow layers (a one-channel first
layer, depthwise), where its inner dimension C/G·K is what keeps the products efficient.

So there is one engine for six ops and both directions (``_Geometry`` + ``_im2col``/``_col2im``
+ the three chunk steps below, or the shifted-GEMM helpers). On the im2col route padding never
materialises a padded copy: the offset slices are clipped to the real input
(``perf.phases.clipped_offset_slices``) and the column entries that fall into padding are
zeros; the shifted route makes exactly one zero-padded copy (its grid) and no column buffer.

Speed: the batch is processed in chunks whose column buffer is a reused per-thread workspace
(≈ ``WORKSPACE_BYTES``) rather than a fresh ``N·C·K·L`` temporary (memory stays at torch's
level); the matrix products run on NumPy's BLAS threads; with stride 1 a transposed convolution
is computed as a correlation with the flipped kernel (im2col + GEMM, no col2im) whenever that
reads fewer columns (``_flip``); an inner dimension of 1 is an outer product by broadcasting.
Optionally (``_THREADS = 2``; never more than ``scratchnn.set_num_threads`` allows) chunks run
on scratchnn's worker threads (``scratchnn.perf.threads.run_team``), overlapping one chunk's
copies (NumPy releases the GIL) with another's matrix product. All arithmetic stays in the input's
dtype.
"""
from __future__ import annotations

import functools
import inspect
import math
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from ..autodiff import defop
from ..perf.blocks import row_loops
from ..perf.phases import clipped_offset_slices, phase_layout
from ..perf.threads import get_num_threads
from ..perf.workspace import run_chunks, workspace
from ..textbook import _conv_args
from ..textbook._conv_args import ConvGeometry
from ..textbook.conv import pad, pad_backward, pad_forward
from ..window import Pads

Array = np.ndarray

__all__ = ["conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
           "conv_transpose3d", "pad",
           "conv_forward", "conv_backward", "conv_transpose_forward", "conv_transpose_backward",
           "pad_forward", "pad_backward", "WORKSPACE_BYTES", "ROUTES", "choose_route"]

WORKSPACE_BYTES = 8 << 20          # column buffer per thread; sets the batch chunk size
PARALLEL_MIN = 1 << 18             # column elements below which chunks run on the caller
SAVE_COLS_BYTES = 32 << 20         # the forward keeps columns up to this size for backward
_PHASE_IM2COL = True               # strided im2col from one phase copy (_im2col_phases)
# Chunks run on the calling thread by default: the matrix products already use both cores
# (NumPy's BLAS), and measured side by side with torch on 2 cores a pool of 2 was no faster
# (slower once other processes compete: BLAS's and our threads then fight for the cores).
# Set to 2 to overlap one chunk's im2col/col2im with another's matrix product.
_THREADS = 1


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
    phase_taps: tuple | None       # _phase_taps: strided im2col from phase copies, or None

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
    return _Geometry(groups, kernel, stride, dilation, lo, hi, size, out, slices,
                     _phase_taps(kernel, stride, dilation, lo, size, out))


def _phase_taps(kernel: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...],
                lo: tuple[int, ...], size: tuple[int, ...], out: tuple[int, ...]
                ) -> tuple[tuple[int, int], ...] | None:
    """Where :func:`_im2col_phases` applies — some stride above 1, every dim ``size = stride ·
    out`` (each stride phase holds exactly O elements along it) and every phase read by some
    kernel offset — per offset (row-major) the phase it reads and its flat shift in a phase's
    (ΠO) layout; else None.

    Along a dim, offset κ reads x[o·s + κ·dil − lo] = phase r at index o + q, with
    κ·dil − lo = q·s + r (0 ≤ r < s). The shifted GEMM's ``perf.phases.phase_layout`` splits
    the *padded* input instead, on a grid of O + dil·(k − 1) div s points per dim (its shifts
    never negative, its runs never needing zeroes): columns on that grid would be wider than
    the ΠO that im2col's GEMM wants (measured slower, docs/design.md)."""
    if all(s == 1 for s in stride) or any(n != s * o for n, s, o in zip(size, stride, out)):
        return None
    pitches = [math.prod(out[i + 1:]) for i in range(len(out))]
    taps, used = [], [set() for _ in kernel]
    for k in np.ndindex(*kernel):
        qr = [divmod(ki * di - li, si) for ki, di, si, li in zip(k, dilation, stride, lo)]
        for u, (_, r) in zip(used, qr):
            u.add(r)
        taps.append((int(np.ravel_multi_index([r for _, r in qr], stride)),
                     sum(q * p for (q, _), p in zip(qr, pitches))))
    if any(len(u) < s for u, s in zip(used, stride)):        # a phase no offset reads
        return None
    return tuple(taps)


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
    Strided windows over an input of stride × out elements go by :func:`_im2col_phases`.
    """
    if g.phase_taps is not None and _PHASE_IM2COL:
        _im2col_phases(x, g, cols)
        return
    for i, (_, out_sl, in_sl) in enumerate(g.slices):
        col = cols[:, :, i]                                   # (B, Cx, *O)
        if out_sl is None:                                    # every window sees padding
            col[...] = 0
            continue
        col[(Ellipsis, *out_sl)] = x[(Ellipsis, *in_sl)]
        _zero_outside(col, out_sl)


def _im2col_phases(x: Array, g: _Geometry, cols: Array) -> None:
    """:func:`_im2col` for strided windows (``g.phase_taps``): x split once into its stride
    phases, then every kernel offset one flat shifted run — the same columns, bit for bit.

    Along a dim of stride s with S = s·O, phase r of x holds x[r], x[r + s], … — exactly O
    elements — and offset κ reads phase r_κ shifted by q_κ (:func:`_phase_taps`). In the
    phases' C-order layout ``ph (B, Cx, *s, *O)`` (one copy of x), offset κ's columns are then
    the flat run ``ph[:, :, r_κ].flat[j + shift_κ]`` over all ΠO positions j at once; where a
    window index o + q_κ falls outside [0, O) (padding, or the run crossing into the next row)
    the column entries are zeroed after (:func:`_zero_outside`, the same box as the plain
    route's). The plain route copies one output row of O_last elements per inner loop (its
    read strided by s), this one one run of ΠO per sample and channel: im2col of
    (32, 64, 32, 32), k 3, s 2, p 1, float32: 5.1–5.5 → 3.7–4.0 ms; k 4 (64 samples):
    34–36 → 15 ms (interleaved, one thread)."""
    B, Cx = x.shape[:2]
    d = len(g.size)
    split = x.reshape((B, Cx) + tuple(v for o, s in zip(g.out, g.stride) for v in (o, s)))
    ph = _workspace((B, Cx) + g.stride + g.out, x.dtype, "phases")   # (B, Cx, *s, *O)
    ph[...] = split.transpose((0, 1) + tuple(range(3, 2 + 2 * d, 2))
                              + tuple(range(2, 2 + 2 * d, 2)))
    runs = ph.reshape(B, Cx, -1, g.L)                                # (B, Cx, Πs, ΠO) view
    flat = cols.view()
    flat.shape = (B, Cx, g.K, g.L)                                   # a view, never a copy
    for i, ((_, out_sl, _), (r, sh)) in enumerate(zip(g.slices, g.phase_taps)):
        if out_sl is None:                                           # every window in padding
            cols[:, :, i] = 0
            continue
        a, b = max(0, -sh), min(g.L, g.L - sh)
        flat[:, :, i, a:b] = runs[:, :, r, a + sh:b + sh]
        _zero_outside(cols[:, :, i], out_sl)


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
    """This thread's reused scratch array ``name`` (:func:`scratchnn.perf.workspace.workspace`;
    buffers up to 8 × ``WORKSPACE_BYTES`` are kept)."""
    return workspace(shape, dtype, name, 8 * WORKSPACE_BYTES)


def _run_chunks(n: int, per_sample: int, itemsize: int, step: Callable[[int, int], Any],
                threads: int) -> list:
    """``step(n0, n1)`` over batch chunks whose column buffer fits ``WORKSPACE_BYTES``, on
    ``threads`` lanes (:func:`scratchnn.perf.workspace.run_chunks`); results in chunk order."""
    return run_chunks(n, per_sample, itemsize, step, WORKSPACE_BYTES, threads)


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
        with row_loops(g.L):                                  # the bias as a scalar per row
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
        with row_loops(math.prod(g.size)):
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


def _flip(w: Array, g: _Geometry) -> tuple[Array, _Geometry]:
    """For stride 1, scattering back through W (a transposed convolution, y side -> x side) is
    a plain correlation of the y side with W **flipped in space and transposed per group**,
    padded by dil·(k − 1) − lo:

        x[c, p] = Σ_{o_c, κ} W[o_c, c, κ] · y[o_c, p + lo − κ·dil]
                = Σ_{o_c, κ'} W[o_c, c, K−1−κ'] · y_pad[o_c, p + κ'·dil]     (κ' = K−1−κ)

    im2col + GEMM then replaces GEMM + col2im: cheaper when the y side has no more channels
    than the x side (the columns are Cy·K per position instead of Cx·K, and a copy replaces a
    read-modify-write). Stride 1 only; :func:`choose_route` decides (``Route.flip``). Returns
    (W' as (G, Cx/G, Cy/G·K) matrices, its geometry)."""
    G, d = g.groups, len(g.kernel)
    wf = w.reshape(G, w.shape[0] // G, w.shape[1], *g.kernel).swapaxes(1, 2)
    wf = wf[(Ellipsis, *[slice(None, None, -1)] * d)]            # flip every spatial axis
    wf = wf.reshape(G * w.shape[1], w.shape[0] // G, *g.kernel)  # (Cx, Cy/G, *k)
    span = [di * (ki - 1) for di, ki in zip(g.dilation, g.kernel)]
    pads = tuple((sp - lo, sp - hi) for sp, lo, hi in zip(span, g.lo, g.hi))
    gf = _geometry(G, g.kernel, g.stride, g.dilation, pads, g.out, g.size)
    return _grouped(wf, gf), gf


def _transposed_conv(y: Array, w: Array, g: _Geometry, x: Array, bias: Array | None,
                     route: Route) -> None:
    """x = col2im(Wᵀ @ y) (+ b) over the whole batch on the im2col route: GEMM + col2im, or
    the flipped-kernel correlation where ``route.flip``.

    Shapes: y (N, Cy, *O) -> x (N, Cx, *S), which must start at zero."""
    if not route.flip:
        w3 = _grouped(w, g)
        _run_chunks(y.shape[0], x.shape[1] * g.K * g.L, x.itemsize,
                    lambda n0, n1: _scatter(y[n0:n1], w3, g, x[n0:n1], bias), route.threads)
    else:
        wf3, gf = _flip(w, g)
        _run_chunks(y.shape[0], y.shape[1] * gf.K * gf.L, x.itemsize,
                    lambda n0, n1: _correlate(y[n0:n1], wf3, gf, x[n0:n1], bias),
                    route.threads)


# ---------------------------------------------------------------------------------------------
# the shifted GEMM (implicit im2col): no column buffer at all
# ---------------------------------------------------------------------------------------------
# Which engine runs: None = decide per shape (choose_route), "shifted" or "im2col" = force one
# (the tests force each route).
_ROUTE: str | None = None
SHIFTED_BLOCK_BYTES = 2 << 20      # output block per GEMM of the shifted route (stays in L2)
SHIFTED_RUN_BYTES = 4 << 20        # merged runs' column buffer per block (stays in L2)
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
    stay in cache (with merged runs, blocks whose column buffer is ``SHIFTED_RUN_BYTES``:
    measured at 64 channels, 32×32, forward+backward, 2 threads, 75 ms against 86 ms with
    the output-sized blocks, whose run buffer was 19 MiB).

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
    b = max(256, SHIFTED_BLOCK_BYTES // (M * out.itemsize) if runs is None
            else SHIFTED_RUN_BYTES // (len(runs[1]) * run * C * out.itemsize))
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
        with row_loops(g.L):                                  # the bias as a scalar per row
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
        with row_loops(math.prod(g.size)):
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


# ---------------------------------------------------------------------------------------------
# the route: one decision per call
# ---------------------------------------------------------------------------------------------
_FLIP: bool | None = None          # None = decide (choose_route); False/True = never/always


class Route(NamedTuple):
    """How one call runs (the answer of :func:`choose_route`)."""
    shifted: bool                  # the shifted GEMM instead of im2col + GEMM
    keep_cols: bool                # conv's forward keeps its columns for the backward's dW
    flip: bool                     # transposed direction on im2col: the flipped-kernel
                                   # correlation instead of GEMM + col2im (stride 1 only)
    threads: int                   # lanes the batch chunks run on (1: the calling thread)


def choose_route(g: _Geometry, cx: int, cy: int, n: int, itemsize: int, direction: str
                 ) -> Route:
    """The one route decision of the engine, for a call with ``cx`` channels on the x side
    (what the windows read), ``cy`` on the y side, batch ``n``. ``direction`` is
    ``"correlate"`` (y = W ⋆ x side: conv's forward, conv_transpose's dx) or ``"transpose"``
    (x side = col2im(Wᵀ @ y), and dW: conv's backward, conv_transpose's forward).

    * **shifted GEMM or im2col** (measured, CPU time per call at 64 channels). The shifted GEMM
      needs real matrix products: ≥ 16 channels per group on both sides (its inner dimension
      is Cx/G, or Cx/G·k_last with merged runs; im2col's is Cx/G·K) — a one-channel first
      layer or a depthwise convolution stays on im2col. The *transposed* direction (+ dW) is
      cheaper shifted (~15-20% less CPU time at 16 to 128 channels, stride 1 and 2: no col2im
      scatter). A *correlation* only with stride 1 and at most ``SHIFTED_MAX_WASTE`` grid
      positions per output (ΠP / ΠO: the non-windows are computed too): 20% faster at 32×32
      padded (1.13), 12-17% slower at 26→24 (1.17) or 16×16 padded (1.27). With stride > 1
      im2col's copy reads only the strided windows, while the phase split is a slow short-row
      gather. ``_ROUTE`` forces one.
    * **keep the columns** (conv's forward on im2col): up to ``SAVE_COLS_BYTES`` (32 MiB).
      The backward's weight gradient then reads them instead of copying the windows again
      (measured, CPU time per forward+backward at one thread, interleaved medians: 64→64 32×32
      stride 2 (18.9 MiB) 38.6 → 34.5 ms, the ConvNet's 16→32 layer (10.6 MiB) 14.4 → 13.6
      ms). Larger columns are recomputed: keeping them costs K/Πs× the input's memory.
    * **flipped kernel** (transposed direction on im2col, stride 1): a correlation of the y side
      with the flipped W (:func:`_flip`) when the y side has no more channels than the x side
      (fewer columns, a copy instead of a read-modify-write). ``_FLIP`` forces it off or on.
    * **threads**: chunks run on ``min(_THREADS, scratchnn.get_num_threads())`` lanes when the
      x side's columns have at least ``PARALLEL_MIN`` elements, else on the calling thread.
    """
    K, L = g.K, g.L
    if _ROUTE is not None:
        shifted = _ROUTE == "shifted"
    elif min(cx, cy) // g.groups < 16:
        shifted = False
    elif direction == "transpose":
        shifted = True
    else:
        grid = [o + di * (ki - 1) for o, di, ki in zip(g.out, g.dilation, g.kernel)]
        shifted = (all(s == 1 for s in g.stride)
                   and math.prod(grid) <= SHIFTED_MAX_WASTE * math.prod(g.out))
    keep_cols = (direction == "correlate" and not shifted
                 and n * cx * K * L * itemsize <= SAVE_COLS_BYTES)
    flip = (direction == "transpose" and not shifted and all(s == 1 for s in g.stride)
            and (cy <= cx if _FLIP is None else _FLIP))
    threads = min(_THREADS, get_num_threads()) if n * cx * K * L >= PARALLEL_MIN else 1
    return Route(shifted, keep_cols, flip, threads)


# the settings that force each route on small inputs (tests/test_textbook.py runs every one)
ROUTES: dict[str, dict[str, object]] = {
    "im2col": {"_ROUTE": "im2col"},
    "im2col, columns recomputed, no flipped kernel": {
        "_ROUTE": "im2col", "SAVE_COLS_BYTES": 0, "_FLIP": False},
    "im2col, flipped kernel wherever the stride is 1": {"_ROUTE": "im2col", "_FLIP": True},
    "im2col, strided windows without phase copies": {"_ROUTE": "im2col",
                                                      "_PHASE_IM2COL": False},
    "im2col, chunks on 2 threads": {
        "_ROUTE": "im2col", "WORKSPACE_BYTES": 256, "PARALLEL_MIN": 0, "_THREADS": 2,
        "scratchnn.perf.threads._threads": 2},
    "shifted GEMM": {"_ROUTE": "shifted", "SHIFTED_BLOCK_BYTES": 64, "SHIFTED_RUN_BYTES": 64,
                     "WORKSPACE_BYTES": 256},
}


# ---------------------------------------------------------------------------------------------
# argument checking: the textbook's (scratchnn.textbook._conv_args), plus the engine's geometry
# ---------------------------------------------------------------------------------------------
def _engine_geometry(a: ConvGeometry) -> _Geometry:
    """The textbook's :class:`ConvGeometry` with the engine's clipped offset slices (cached)."""
    return _cached_geometry(a.groups, a.kernel, a.stride, a.dilation, a.pads, a.size, a.out)


def check_conv(fn: str, n: int, input: Any, weight: Any, bias: Any, stride: Any,
               padding: Any, dilation: Any, groups: Any) -> tuple[Array, _Geometry, bool]:
    """Validate a convolution call (:func:`scratchnn.textbook._conv_args.check_conv`, torch's
    rules) and return ``(x, geometry, unbatched)``, x the batched view of the input."""
    x, a, unbatched = _conv_args.check_conv(fn, n, input, weight, bias, stride, padding,
                                            dilation, groups)
    return x, _engine_geometry(a), unbatched


def check_conv_transpose(fn: str, n: int, input: Any, weight: Any, bias: Any, stride: Any,
                         padding: Any, output_padding: Any, groups: Any, dilation: Any
                         ) -> tuple[Array, _Geometry, bool]:
    """Validate a transposed-convolution call (the textbook's checks) and return ``(x,
    geometry of the convolution it transposes, unbatched)``."""
    x, a, unbatched = _conv_args.check_conv_transpose(fn, n, input, weight, bias, stride,
                                                      padding, output_padding, groups,
                                                      dilation)
    return x, _engine_geometry(a), unbatched


# ---------------------------------------------------------------------------------------------
# convolution
# ---------------------------------------------------------------------------------------------
class ConvCtx(NamedTuple):
    x: Array                      # (N, C_in, *S): dW correlates it with dy
    weight: Array                 # dx needs W
    geom: _Geometry
    has_bias: bool
    unbatched: bool
    cols: Array | None = None     # (N, C_in, K, *O): im2col(x), kept up to SAVE_COLS_BYTES


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
    Saves:   x and W; the columns too when they fit ``SAVE_COLS_BYTES`` (32 MiB: the
             chapter's layers, strided 64-channel layers): larger ones are recomputed in
             backward (one copy), since keeping them costs K× the input's memory (see
             :func:`choose_route`).
    Torch:   torch.nn.functional.conv1d / conv2d / conv3d
    """
    x, g, unbatched = check_conv(_fn, _n, input, weight, bias, stride, padding, dilation,
                                 groups)
    cols = None
    route = choose_route(g, x.shape[1], weight.shape[0], x.shape[0], x.itemsize, "correlate")
    if route.shifted:
        y = _shifted_correlate(x, weight, g, bias)[0]                # (N, C_out, *O)
    else:
        y = np.empty((x.shape[0], weight.shape[0]) + g.out, x.dtype)  # (N, C_out, *O)
        w3 = _grouped(weight, g)                                     # (G, C_out/G, C_in/G·K)
        if route.keep_cols:                                          # (N, C_in, K, *O)
            cols = np.empty((x.shape[0], x.shape[1], g.K) + g.out, x.dtype)
        _run_chunks(x.shape[0], x.shape[1] * g.K * g.L, x.itemsize,
                    lambda n0, n1: _correlate(x[n0:n1], w3, g, y[n0:n1], bias,
                                              None if cols is None else cols[n0:n1]),
                    route.threads)
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
    route = choose_route(g, x.shape[1], w.shape[0], x.shape[0], x.itemsize, "transpose")
    if ctx.cols is not None:                                         # the forward's columns
        dx = _transpose_of(dy, w, g, x.shape, route) if want_dx else None
        cols4 = ctx.cols.reshape(x.shape[0], g.groups, x.shape[1] // g.groups * g.K, g.L)
        parts = _run_chunks(x.shape[0], x.shape[1] * g.K * g.L, x.itemsize,
                            lambda n0, n1: _weight_grad(dy[n0:n1], cols4[n0:n1]),
                            route.threads)
        return _unbatch(dx, ctx.unbatched), _sum(parts, w.shape, w.dtype), db
    if route.shifted:
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

    def step(n0: int, n1: int) -> Array:
        B = n1 - n0
        cols = _workspace((B, x.shape[1], g.K) + g.out, x.dtype)
        _im2col(x[n0:n1], g, cols)                                   # (B, C_in, K, *O)
        cols4 = cols.reshape(B, g.groups, -1, g.L)
        dw = _weight_grad(dy[n0:n1], cols4)                          # (G, C_out/G, C_in/G·K)
        if not route.flip and dx is not None:
            _scatter(dy[n0:n1], w3, g, dx[n0:n1], None)              # reuses the workspace
        return dw

    parts = _run_chunks(x.shape[0], x.shape[1] * g.K * g.L, x.itemsize, step, route.threads)
    if route.flip and dx is not None:                                # dx = W_flip ⋆ dy
        _transposed_conv(dy, w, g, dx, None, route)
    dw = _sum(parts, w.shape, w.dtype)
    return _unbatch(dx, ctx.unbatched), dw, db


def _unbatch(a: Array | None, unbatched: bool) -> Array | None:
    """Drop the batch axis added for an unbatched input (None stays None)."""
    return a[0] if unbatched and a is not None else a


def _transpose_of(y: Array, w: Array, g: _Geometry, shape: tuple[int, ...], route: Route,
                  bias: Array | None = None) -> Array:
    """The transposed convolution of the y side (+ b): conv's input gradient and
    conv_transpose's forward. By the shifted GEMM or (im2col route) the flipped-kernel
    correlation or GEMM + col2im, as ``route`` (:func:`choose_route`) says.
    Shapes: y (N, Cy, *O) -> x side ``shape`` (N, Cx, *S)."""
    if route.shifted:
        gr = _grid(g, shape[0])
        return _shifted_transpose(_y_to_grid(y, g, gr), w, g, gr, shape[0], bias)
    x = np.zeros(shape, y.dtype)
    _transposed_conv(y, w, g, x, bias, route)
    return x


def _bias_grad(dy: Array) -> Array:
    """db = Σ_{n, o} dy[n, :, o]: (N, C, *O) -> (C,), one ``np.einsum`` reduction over the
    (N, C, L) view (as batch norm's channel sums): 0.08 against 0.18 ms for two ``sum``
    calls over (64, 16, 26, 26) float32, within the same error of the float64 sum."""
    return np.einsum("ncl->c", dy.reshape(dy.shape[:2] + (math.prod(dy.shape[2:]),)))


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
    route = choose_route(g, c_out, xc.shape[1], xc.shape[0], xc.itemsize, "transpose")
    y = _transpose_of(xc, weight, g, (xc.shape[0], c_out) + g.size, route,
                      bias)                                          # (N, C_out, *O)
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
    route = choose_route(g, dy.shape[1], x.shape[1], x.shape[0], x.itemsize, "correlate")
    if route.shifted:                                                # dy is the x side
        dx, dyg, gr = _shifted_correlate(dy, w, g, None)             # dx = W ⋆ dy
        dw = _shifted_weight_grad(_y_to_grid(x, g, gr), dyg, g, gr, w.shape)
        return _unbatch(dx, ctx.unbatched), dw, db
    w3 = _grouped(w, g)
    dx = np.empty(x.shape, x.dtype)                                  # (N, C_in, *S)

    def step(n0: int, n1: int) -> Array:
        cols4 = _correlate(dy[n0:n1], w3, g, dx[n0:n1], None)        # dx = W ⋆ dy
        return _weight_grad(x[n0:n1], cols4)                         # (G, C_in/G, C_out/G·K)

    parts = _run_chunks(x.shape[0], dy.shape[1] * g.K * g.L, x.itemsize, step, route.threads)
    dw = _sum(parts, w.shape, w.dtype)
    return _unbatch(dx, ctx.unbatched), dw, db


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
