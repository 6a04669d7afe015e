"""Blocked elementwise and row-block helpers: the same formulas, pass by pass in cache.

Written whole-array, a formula of k ufuncs makes k full-size passes through memory and as many
full-size temporaries. Cut into blocks that fit in cache, the same passes run on reused scratch
blocks: the same operations on the same elements, so the same bits. Used by the activation
engine (:mod:`scratchnn.functional.activation`):

* :func:`sigmoid_into` / :func:`sigmoid_grad_into` — σ(x) = 1 / (1 + e^{−x}) and its
  backward (1 − y) · dy · y, block by block in the output;
* :func:`tanh_grad_into` — tanh's backward dy · (1 − y²), block by block in the output;
* :func:`as_rows` / :func:`row_blocks` — a softmax-type reduction along the last axis as
  (rows, n) and the row blocks ``[i, j)`` of about a given number of bytes;
  :func:`block_bytes` — that number of bytes, from the array's size and the core's L2;
* :func:`row_loops` — a context in which a ufunc with an operand broadcast along rows (a
  per-row statistic (M, 1), a per-channel value (C, 1)) loops over the rows instead of
  copying that operand out into NumPy's buffer (2–3× faster on rows of 256 elements and more;
  the softmax row blocks, and conv's bias adds in :mod:`scratchnn.functional.conv`).

The callers decide when to use them (the engine's ``choose_route``) and pass the block sizes.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from .threads import USABLE_CORES

Array = np.ndarray

__all__ = ["sigmoid_into", "sigmoid_grad_into", "tanh_grad_into", "as_rows", "row_blocks",
           "block_bytes", "row_loops"]

ROW_LOOPS_MIN = 256                  # rows shorter than this keep NumPy's buffer (see row_loops)


def sigmoid_into(x: Array, out: Array, block: int) -> Array:
    """out = 1 / (1 + e^{−x}) (torch's formula), in blocks of ``block`` elements, each block's
    four passes (−x, exp, + 1, 1 / ·) in place in ``out`` while it is in cache.

    ``x`` and ``out`` are C-contiguous. e^{−x} overflows to inf for x < −88 (float32), and
    1 / inf = 0: σ is 0 there, as torch's (the textbook's stable form keeps the denormal
    e^x / (1 + e^x) instead; elsewhere the two agree to an ulp or two). Measured on 4.2 M
    float32 elements over two threads: 3.4 against 6.0 ms for the stable form's seven passes
    (|x|, −, exp, [x ≥ 0], max, + 1, ÷) on two scratch blocks."""
    xf, of = x.reshape(-1), out.reshape(-1)
    with np.errstate(over="ignore"):                        # e^{−x} = inf: σ = 0, exactly
        for i in range(0, xf.size, block):
            ob = of[i:i + block]
            np.negative(xf[i:i + block], out=ob)
            np.exp(ob, out=ob)
            ob += 1
            np.divide(1, ob, out=ob)
    return out


def sigmoid_grad_into(y: Array, dy: Array, out: Array, block: int) -> Array:
    """out = (1 − y) · dy · y, in blocks of ``block`` elements (each block's three passes in
    cache; the same operations in the same order as whole-array, so the same bits). All three
    arrays are C-contiguous, of one shape and dtype."""
    yf, df, of = y.reshape(-1), dy.reshape(-1), out.reshape(-1)
    for i in range(0, yf.size, block):
        j = i + block
        ob = of[i:j]
        np.subtract(1, yf[i:j], out=ob)
        ob *= df[i:j]
        ob *= yf[i:j]
    return out


def tanh_grad_into(y: Array, dy: Array, out: Array, block: int) -> Array:
    """out = dy · (1 − y²), in blocks of ``block`` elements (y·y, 1 − ·, · dy in cache; the
    textbook's operations, so the same bits). All three arrays are C-contiguous, of one shape
    and dtype."""
    yf, df, of = y.reshape(-1), dy.reshape(-1), out.reshape(-1)
    for i in range(0, yf.size, block):
        j = i + block
        ob = of[i:j]
        np.multiply(yf[i:j], yf[i:j], out=ob)
        np.subtract(1, ob, out=ob)
        ob *= df[i:j]
    return out


def as_rows(a: Array) -> Array:
    """A C-contiguous ``a`` as the (rows, n) view of its last axis (n = a.shape[-1])."""
    return a.reshape(-1, a.shape[-1])


def _l2_bytes() -> int | None:
    """The L2 cache of one core, in bytes, from Linux's sysfs (None where it cannot be read)."""
    root = Path("/sys/devices/system/cpu/cpu0/cache")
    try:
        for index in sorted(root.glob("index*")):
            if ((index / "level").read_text().strip() == "2"
                    and (index / "type").read_text().strip() in ("Unified", "Data")):
                size = (index / "size").read_text().strip()
                scale = {"K": 1 << 10, "M": 1 << 20}.get(size[-1:], 1)
                return int(size.rstrip("KM")) * scale
    except (OSError, ValueError):
        pass
    return None


L2_BYTES = _l2_bytes()
# block_bytes cuts an array into about BLOCKS blocks: two per core, at least four. A constant
# of the machine, never of the thread setting, so that sums taken block by block (a norm's dγ,
# a batch norm's statistics) are the same bits for any set_num_threads.
BLOCKS = max(4, 2 * USABLE_CORES)


def block_bytes(total: int, least: int, most: int) -> int:
    """Bytes per block of the blocked passes (the softmax family's and the norms' row blocks,
    :func:`scratchnn.perf.elementwise.blocked`) over an array of ``total`` bytes, between
    ``least`` and ``most`` (``most`` wins where it is the smaller: a test's tiny blocks).

    * Where a core's L2 holds three blocks of ``least`` (a block, its output, one scratch
      block) — or the L2 is unknown — ``least``: the passes run in L2. Measured on a host with
      2 MiB of L2, 1 MiB instead of 512 KiB blocks made log_softmax (4096, 1000) 1.4× slower.
    * Where it does not, the passes run from L3 whatever the block, and ``total / BLOCKS``
      (up to ``most``): fewer, larger blocks. On two threads every ufunc call of a block hands
      the GIL over, and the per-row statistics are short calls that wait for it. Measured on
      a host with 1 MiB of L2, float32, forward + backward, paired against fixed 512 KiB
      blocks, on 2 threads: layer norm (4096, 768) 0.82–0.86×, batch norm (32, 64, 32, 32)
      0.79–0.82×, log_softmax (4096, 1000) 0.87–0.94×, softmax 0.95–0.99×, arrays under
      2 MiB 1.00×; on one thread 0.93–1.01×.
    """
    if L2_BYTES is None or L2_BYTES >= 3 * least:
        return min(most, least)
    return min(most, max(least, total // BLOCKS))


def row_blocks(a: int, b: int, n: int, itemsize: int, block_bytes: int
               ) -> Iterator[tuple[int, int]]:
    """Row blocks ``[i, j)`` covering ``[a, b)`` of rows of ``n`` items, about ``block_bytes``
    each (at least one row). The softmax-type passes reduce each row alone, so working block by
    block gives the same bits as whole-array calls."""
    step = max(1, block_bytes // (itemsize * n))
    return ((i, min(b, i + step)) for i in range(a, b, step))


@contextmanager
def row_loops(n: int) -> Iterator[None]:
    """Inside, NumPy's ufuncs over rows of ``n`` contiguous elements loop row by row instead of
    buffering (the calling thread only: NumPy keeps its buffer size per thread; restored on
    exit).

    When a ufunc's operands do not form one contiguous run — ``x (M, n) − m (M, 1)``, a
    per-row statistic broadcast back, or ``y (N, C, n) += b (C, 1)`` — NumPy (2.4 measured)
    fills its buffer of ``np.getbufsize()`` (8192) elements to get a longer inner loop, and
    the broadcast operand is copied into it element by element. A buffer no longer than a
    row makes the row itself the inner loop, with the operand as a scalar. Measured, float32,
    131 072 elements in cache: rows of 1000 minus their (M, 1) maxima 55 → 19 µs (a plain
    subtraction of one scalar takes 15), rows of 676 += a per-channel (C, 1) bias 37 → 18 µs;
    rows of 128 no change, rows of 64 slower, hence nothing is changed below
    ``ROW_LOOPS_MIN`` elements. Reductions along the rows (``sum(axis=1)``) get a little
    slower with a short buffer (rows of 676: 35 → 41 µs) and give the same bits; a caller
    enters the context once per range of blocks, not per pass (each entry is Python work
    between ufunc calls, which two threads pay for in GIL hand-offs). The same elementwise
    operations, so the same bits."""
    if n < ROW_LOOPS_MIN:
        yield
        return
    old = np.setbufsize(max(16, min(n, 8192) // 16 * 16))    # a multiple of 16, at most a row
    try:
        yield
    finally:
        np.setbufsize(old)
