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

So there is one engine for six ops and both directions (``_Geometry`` + ``_im2col``/``_col2im``
+ the three chunk steps below). Padding never materialises a padded copy: the offset slices are
clipped to the real input (``_window.clipped_offset_slices``) and the column entries that fall
into padding are zeros.

Speed: the batch is processed in chunks whose column buffer is a reused per-thread workspace
(≈ ``WORKSPACE_BYTES``) rather than a fresh ``N·C·K·L`` temporary (memory stays at torch's
level); the matrix products run on NumPy's BLAS threads; with stride 1 a transposed convolution
is computed as a correlation with the flipped kernel (im2col + GEMM, no col2im) whenever that
reads fewer columns (``_flipped``); an inner dimension of 1 is an outer product by broadcasting.
Optionally (``_THREADS = 2``) chunks run on a small thread pool, overlapping one chunk's copies
(NumPy releases the GIL) with another's matrix product. All arithmetic stays in the input's
dtype.
"""
from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from .._validate import check_array, check_int, check_same_dtype, ntuple
from ..autodiff import defop
from ._window import Pads, clipped_offset_slices, parse_padding

Array = np.ndarray

__all__ = ["conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
           "conv_transpose3d", "pad",
           "conv_forward", "conv_backward", "conv_transpose_forward", "conv_transpose_backward",
           "pad_forward", "pad_backward", "WORKSPACE_BYTES"]

WORKSPACE_BYTES = 8 << 20          # column buffer per thread; sets the batch chunk size
PARALLEL_MIN = 1 << 18             # column elements below which chunks run on the caller
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
    lo, hi = tuple(p[0] for p in pads), tuple(p[1] for p in pads)
    slices = tuple(clipped_offset_slices(kernel, stride, dilation, lo, size, out))
    return _Geometry(groups, tuple(kernel), tuple(stride), tuple(dilation), lo, hi,
                     tuple(size), tuple(out), slices)


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
def _workspace(shape: tuple[int, ...], dtype: np.dtype) -> Array:
    """A per-thread scratch array, reused across calls: repeated convolutions write into memory
    that is already mapped instead of page-faulting a fresh large buffer every time."""
    n = math.prod(shape)
    cache = _local.__dict__.setdefault("ws", {})
    buf = cache.get(dtype)
    if buf is None or buf.size < n:
        buf = np.empty(n, dtype)
        if n * buf.itemsize <= 4 * WORKSPACE_BYTES:           # keep only modest buffers
            cache[dtype] = buf
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
    if len(chunks) == 1 or _THREADS == 1 or n * per_sample < PARALLEL_MIN:
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


def _correlate(x: Array, w3: Array, g: _Geometry, y: Array, bias: Array | None) -> Array:
    """y = W ⋆ x (+ b) for one chunk; returns the column buffer (valid until the next step).

    Shapes: x (B, Cx, *S), y (B, Cy, *O) written in place."""
    B, Cx = x.shape[:2]
    cols = _workspace((B, Cx, g.K) + g.out, x.dtype)         # (B, Cx, K, *O)
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
    Cx/G·K), the correlation of the x side with the y side."""
    B = y.shape[0]
    y4 = y.reshape(B, cols4.shape[1], -1, cols4.shape[3])
    return np.matmul(y4, cols4.transpose(0, 1, 3, 2)).sum(axis=0)


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
    x: Array                      # (N, C_in, *S): dW correlates it with dy (im2col recomputed)
    weight: Array                 # dx needs W
    geom: _Geometry
    has_bias: bool
    unbatched: bool


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

    Computed as im2col + one matrix product per group: y[n, g] = W[g] @ cols[n, g].

    Shapes:  x (N, C_in, *S) or unbatched (C_in, *S); W (C_out, C_in/G, *k); b (C_out)
             -> y (N, C_out, *O), O = ⌊(S + lo + hi − dil·(k − 1) − 1) / s⌋ + 1.
             padding: int, tuple, 'valid' (0) or 'same' (O = S, stride 1; an even total
             dil·(k−1) puts the extra element on the high side, as torch).
    Saves:   x and W, not the columns: recomputing im2col in backward costs one copy, keeping
             it would cost K× the input's memory.
    Torch:   torch.nn.functional.conv1d / conv2d / conv3d
    """
    x, g, unbatched = check_conv(_fn, _n, input, weight, bias, stride, padding, dilation,
                                 groups)
    y = np.empty((x.shape[0], weight.shape[0]) + g.out, x.dtype)      # (N, C_out, *O)
    w3 = _grouped(weight, g)                                         # (G, C_out/G, C_in/G·K)
    _run_chunks(x.shape[0], x.shape[1] * g.K * g.L, x.itemsize,
                lambda n0, n1: _correlate(x[n0:n1], w3, g, y[n0:n1], bias))
    ctx = ConvCtx(x, weight, g, bias is not None, unbatched)
    return (y[0] if unbatched else y), ctx


def conv_backward(ctx: ConvCtx, dy: Array) -> tuple[Array, Array, Array | None]:
    """dx = col2im(Wᵀ @ dy),  dW = Σ_n dy[n] @ cols(x)[n]ᵀ,  db = Σ_{n, o} dy

    * **dx is a transposed convolution of dy** with the same W, stride, padding, dilation:
      each dy[n, o_c, o] is spread back over the window o it came from, weighted by W —
      ``(N, C_out, *O) -> (N, C_in, *S)``; exactly ``conv_transpose(dy, W)`` (with the
      output_padding that restores S).
    * **dW is a correlation of the input with dy**: dW[o_c, c, κ] = Σ_{n, o} dy[n, o_c, o] ·
      x_pad[n, c, o·s + κ·dil] — per group ``(C_out/G, L) @ (L, C_in/G·K)`` summed over n,
      giving ``(C_out, C_in/G, *k)``.
    * db: dy summed over batch and space, ``(C_out,)``.
    """
    x, w, g = ctx.x, ctx.weight, ctx.geom
    dy = np.ascontiguousarray(dy[None] if ctx.unbatched else dy)     # (N, C_out, *O)
    w3 = _grouped(w, g)
    dx = np.zeros(x.shape, x.dtype)                                  # (N, C_in, *S)

    flip = _flipped(w, g, dy.shape[1], x.shape[1])

    def step(n0: int, n1: int) -> Array:
        B = n1 - n0
        cols = _workspace((B, x.shape[1], g.K) + g.out, x.dtype)
        _im2col(x[n0:n1], g, cols)                                   # (B, C_in, K, *O)
        cols4 = cols.reshape(B, g.groups, -1, g.L)
        dw = _weight_grad(dy[n0:n1], cols4)                          # (G, C_out/G, C_in/G·K)
        if flip is None:
            _scatter(dy[n0:n1], w3, g, dx[n0:n1], None)              # reuses the workspace
        return dw

    parts = _run_chunks(x.shape[0], x.shape[1] * g.K * g.L, x.itemsize, step)
    if flip is not None:                                             # dx = W_flip ⋆ dy
        _transposed_conv(dy, w, g, dx, None, flip)
    dw = _sum(parts, w.shape, w.dtype)
    db = _bias_grad(dy) if ctx.has_bias else None                    # (C_out,)
    return (dx[0] if ctx.unbatched else dx), dw, db


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
    y = np.zeros((x.shape[0], weight.shape[1] * g.groups) + g.size, x.dtype)   # (N, C_out, *O)
    xc = np.ascontiguousarray(x)
    _transposed_conv(xc, weight, g, y, bias, _flipped(weight, g, xc.shape[1], y.shape[1]))
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
    w3 = _grouped(w, g)
    dx = np.empty(x.shape, x.dtype)                                  # (N, C_in, *S)

    def step(n0: int, n1: int) -> Array:
        cols4 = _correlate(dy[n0:n1], w3, g, dx[n0:n1], None)        # dx = W ⋆ dy
        return _weight_grad(x[n0:n1], cols4)                         # (G, C_in/G, C_out/G·K)

    parts = _run_chunks(x.shape[0], dy.shape[1] * g.K * g.L, x.itemsize, step)
    dw = _sum(parts, w.shape, w.dtype)
    db = _bias_grad(dy) if ctx.has_bias else None                    # (C_out,)
    return (dx[0] if ctx.unbatched else dx), dw, db


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
        sizes = [x.shape[x.ndim - 1 - i] + pad[2 * i] + pad[2 * i + 1] for i in range(d)]
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
        if size + lo + hi < 0:
            raise ValueError(f"{fn}(): parameter 'pad' ({lo}, {hi}) crops more than the "
                             f"input's size {size}")
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
    def g(ctx: Any, dy: Array) -> Any:
        return f(ctx, dy)
    g.__name__ = g.__qualname__ = name
    g.__doc__ = f.__doc__
    return g


conv1d, conv2d, conv3d = (_conv_op(n) for n in (1, 2, 3))
conv_transpose1d, conv_transpose2d, conv_transpose3d = (_conv_transpose_op(n) for n in (1, 2, 3))
