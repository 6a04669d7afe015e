"""Each case's NumPy floor: the least time NumPy itself needs for the work an op must do,
measured in the same run, at the same thread count.

A case describes its work (:class:`Work`, forward and forward+backward, in :class:`Floor`):

* **matrix products** — GEMM shapes ``(M, K, N)`` with a count. Each shape is timed here with a
  preallocated output (``np.matmul(a, b, out=c)``) in every orientation — A stored as is or
  transposed, B likewise, and C = A B or Cᵀ = Bᵀ Aᵀ computed — and the fastest orientation's
  median is the shape's time. Shapes repeat across cases and are timed once per run.
* **memory traffic** — the elements that must be read and written (inputs, outputs, saved
  context; plus raw bytes for masks and window indices) at the copy bandwidth: ``np.copyto``
  of a 64 MiB buffer (beyond the last-level cache), on one thread or split over the run's
  threads, whichever is faster.
* **transcendentals** — one ``np.exp`` pass per element and per distinct transcendental the
  formula needs (tanh, σ, erf, log count as one exp each; each counted once even where forward
  and backward both use it), at the rate of ``np.exp`` on a 4M-element array (``out=``, one
  thread or split).
* **random draws** — one ``Generator.random(out=)`` per random number (dropout's mask).

floor = Σ GEMM time × count + moved bytes / bandwidth + exp elements / exp rate + draws / rate,

measured, not computed: :meth:`Rates.program` gives probes that do that work in NumPy (the
products in their fastest orientations; one pass of each rate kernel — the 64 MiB copy, the
4M-element exp, the 4M draws — scaled to the work's amount), and the benchmark times them as
extra sides interleaved with scratchnn and torch, so that the floor sees the machine in the
same state as the case.
The rates measured once at the start of a run give each part's share (``estimate_s``); taken
alone they drifted by up to 2× between runs (a 64 MiB copy at 27 and at 15 GB/s, an hour
apart).

It is a lower bound for a NumPy program only in the sense of "no NumPy program does this work
with fewer passes": an op whose arrays stay in cache can beat the bandwidth part, and torch,
with its own fused kernels, may run below the floor (time/floor < 1).
"""
from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

__all__ = ["Work", "Floor", "Rates", "gemm", "moved", "linear_work", "conv_work",
           "conv_transpose_work", "elementwise", "dropout_work", "attention_work", "pool_work",
           "recurrent_work", "adadelta_work", "softmax_work", "total"]


@dataclass(frozen=True)
class Work:
    """Work an op must do. ``gemms``: ``(M, K, N, count)``; ``elems``: array elements read or
    written (of the run's dtype); ``raw_bytes``: other bytes moved (bool masks, indices);
    ``exp``: elements through one transcendental; ``rand``: random numbers drawn."""
    gemms: tuple[tuple[int, int, int, int], ...] = ()
    elems: float = 0.0
    raw_bytes: float = 0.0
    exp: float = 0.0
    rand: float = 0.0

    def __add__(self, other: "Work") -> "Work":
        return Work(self.gemms + other.gemms, self.elems + other.elems,
                    self.raw_bytes + other.raw_bytes, self.exp + other.exp,
                    self.rand + other.rand)

    def flops(self) -> float:
        return sum(2.0 * m * k * n * c for m, k, n, c in self.gemms)

    def bytes(self, itemsize: int) -> float:
        return self.elems * itemsize + self.raw_bytes


@dataclass(frozen=True)
class Floor:
    """A case's floor: the forward's work, the forward+backward's, and what it counts."""
    fwd: Work
    fwdbwd: Work
    text: str = ""

    def __add__(self, other: "Floor") -> "Floor":
        return Floor(self.fwd + other.fwd, self.fwdbwd + other.fwdbwd,
                     "; ".join(t for t in (self.text, other.text) if t))


def total(parts: list[Floor], text: str) -> Floor:
    """The sum of ``parts`` (a training step's floor), described by ``text``."""
    out = parts[0]
    for p in parts[1:]:
        out = out + p
    return replace(out, text=text)


# -- builders --------------------------------------------------------------------------------

def gemm(m: int, k: int, n: int, count: int = 1) -> Work:
    return Work(gemms=((int(m), int(k), int(n), int(count)),))


def moved(elems: float = 0.0, raw_bytes: float = 0.0, exp: float = 0.0,
          rand: float = 0.0) -> Work:
    return Work(elems=float(elems), raw_bytes=float(raw_bytes), exp=float(exp),
                rand=float(rand))


def linear_work(n: int, d_in: int, d_out: int) -> Floor:
    """y = x Wᵀ: (n, in)(in, out); backward dx = dy W (n, out)(out, in), dW = dyᵀ x."""
    fwd = gemm(n, d_in, d_out)
    return Floor(fwd, fwd + gemm(n, d_out, d_in) + gemm(d_out, n, d_in),
                 f"GEMMs ({n},{d_in})·({d_in},{d_out}), dx, dW")


def conv_work(n: int, c_in: int, c_out: int, oh: int, ow: int, k: int,
              input_grad: bool = True) -> Floor:
    """im2col's products, K = C_in·kH·kW, L = N·oH·oW: y (C_out, K)(K, L); dW (C_out, L)(L, K);
    dcols (K, C_out)(C_out, L)."""
    kk, ll = c_in * k * k, n * oh * ow
    fwd = gemm(c_out, kk, ll)
    bwd = gemm(c_out, ll, kk) + (gemm(kk, c_out, ll) if input_grad else Work())
    return Floor(fwd, fwd + bwd, f"GEMMs ({c_out},{kk})·({kk},{ll}), dW"
                                 + (", dcols" if input_grad else " (no dx)"))


def conv_transpose_work(n: int, c_in: int, c_out: int, h: int, w: int, k: int) -> Floor:
    """The adjoint of a convolution, L = N·H·W (the input's pixels), K = C_out·kH·kW:
    cols (K, C_in)(C_in, L); dx (C_in, K)(K, L); dW (C_in, L)(L, K)."""
    kk, ll = c_out * k * k, n * h * w
    fwd = gemm(kk, c_in, ll)
    return Floor(fwd, fwd + gemm(c_in, kk, ll) + gemm(c_in, ll, kk),
                 f"GEMMs ({kk},{c_in})·({c_in},{ll}), dx, dW")


def elementwise(n: float, transcendentals: int = 0, what: str = "") -> Floor:
    """y = f(x): forward reads x, writes y; backward reads dy and the saved x or y, writes dx
    (5 passes in all), plus ``transcendentals`` exp passes (counted once)."""
    ex = n * transcendentals
    return Floor(moved(2 * n, exp=ex), moved(5 * n, exp=ex),
                 f"5 passes over {n:.3g} elements" + (f", {transcendentals} exp pass(es)"
                                                     if transcendentals else "")
                 + (f" ({what})" if what else ""))


def dropout_work(n: float) -> Floor:
    """y = x ⊙ m / (1 − p): draw n uniforms, read x, write y and a 1-byte mask; backward reads
    dy and the mask, writes dx."""
    return Floor(moved(2 * n, raw_bytes=n, rand=n), moved(4 * n, raw_bytes=2 * n, rand=n),
                 f"4 passes over {n:.3g} elements, a 1-byte mask written and read, "
                 f"{n:.3g} uniforms drawn")


def attention_work(b: int, s: int, e: int, heads: int) -> Floor:
    """Self-attention over (B, S, E) with h heads of d = E/h: the in-projection (BS, E)(E, 3E),
    B·h score products (S, d)(d, S) and value products (S, S)(S, d), the out-projection
    (BS, E)(E, E); backward: each product's two gradients; the softmax over B·h·S² scores."""
    d, rows, bh = e // heads, b * s, b * heads
    fwd = (gemm(rows, e, 3 * e) + gemm(s, d, s, bh) + gemm(s, s, d, bh) + gemm(rows, e, e)
           + softmax_work(bh * s * s).fwd)
    bwd = (gemm(rows, 3 * e, e) + gemm(3 * e, rows, e) + gemm(s, s, d, 2 * bh)
           + gemm(s, d, s, bh) + gemm(s, s, d, bh) + gemm(rows, e, e) + gemm(e, rows, e)
           + moved(3 * bh * s * s))
    return Floor(fwd, fwd + bwd, f"GEMMs: projections ({rows},{e})·({e},{3 * e}) and "
                                 f"({rows},{e})·({e},{e}), {bh}× ({s},{d})·({d},{s}) and "
                                 f"({s},{s})·({s},{d}), their gradients; softmax passes")


def softmax_work(n: float) -> Floor:
    """log_softmax (+ nll): read x, write z (saved); backward reads z, writes dx; one exp pass
    (exp(x − max) and exp(z) are the same transcendental)."""
    return Floor(moved(2 * n, exp=n), moved(4 * n, exp=n),
                 f"4 passes over {n:.3g} elements, 1 exp pass")


def pool_work(n: float, m: float, indices: bool) -> Floor:
    """Pooling n input elements to m outputs: read x, write y; backward reads dy, writes dx;
    max/min pooling also saves a 1-byte window offset per output and reads it back."""
    ib = m if indices else 0.0
    return Floor(moved(n + m, raw_bytes=ib), moved(2 * n + 2 * m, raw_bytes=2 * ib),
                 f"x {n:.3g} and y {m:.3g} elements read/written twice"
                 + (", a 1-byte argmax per output" if indices else ""))


def recurrent_work(t: int, b: int, d_in: int, h: int, gates: int) -> Floor:
    """An RNN layer (LSTM: 4 gates, GRU: 3): the input projection as one GEMM over all steps,
    T recurrent (B, H)(H, gH) GEMMs; backward: dX and both dW as single GEMMs over all steps,
    T recurrent dh GEMMs. Gate math: forward reads the pre-activations and writes the gates,
    c and h (≈ 2gH + 2H per row), one exp per gate element and per tanh(c); backward reads the
    gates, c, dh and writes dgates (≈ 2gH + 3H)."""
    g = gates * h
    rows = t * b
    fwd = gemm(rows, d_in, g) + gemm(b, h, g, t) + moved(rows * (2 * g + 2 * h),
                                                         exp=rows * (g + h))
    bwd = (gemm(rows, g, d_in) + gemm(g, rows, d_in) + gemm(g, rows, h) + gemm(b, g, h, t)
           + moved(rows * (2 * g + 3 * h)))
    return Floor(fwd, fwd + bwd, f"GEMMs: input projection ({rows},{d_in})·({d_in},{g}), "
                                 f"{t}× ({b},{h})·({h},{g}); backward dX, dW_ih, dW_hh, "
                                 f"{t}× dh; gate math by bytes and exp passes")


def adadelta_work(params: int) -> Floor:
    """zero_grad writes every gradient; Adadelta reads p, g, E[g²], E[Δ²] and writes p, E[g²],
    E[Δ²] (8 passes over the parameters; its two square roots are not counted)."""
    return Floor(Work(), moved(8 * params), f"zero_grad + Adadelta: 8 passes over {params} "
                                            f"parameters")


# -- measuring the rates ---------------------------------------------------------------------

def _median_time(fn: Callable[[], object], repeats: int, min_time: float) -> float:
    fn()
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-9)
    number = max(1, min(1000, math.ceil(min_time / one)))
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - t0) / number)
    return float(np.median(samples))


@dataclass
class Rates:
    """The machine's NumPy rates at the current thread settings, measured on creation; GEMM
    shapes are timed on first use and cached. ``quick`` uses fewer repeats."""
    dtype: np.dtype
    threads: int
    quick: bool = False
    copy_bytes_per_s: float = 0.0
    exp_per_s: float = 0.0
    rand_per_s: float = 0.0
    detail: dict = field(default_factory=dict)
    _gemm: dict = field(default_factory=dict)

    def __post_init__(self):
        self.dtype = np.dtype(self.dtype)
        reps, mt = (3, 0.02) if self.quick else (7, 0.05)
        n_copy = (64 << 20) // self.dtype.itemsize
        src = np.ones(n_copy, self.dtype)
        dst = np.empty_like(src)
        x = np.random.default_rng(0).standard_normal(1 << 22).astype(self.dtype)
        y = np.empty_like(x)
        rnd = np.empty(1 << 22, self.dtype if self.dtype.kind == "f" else np.float64)
        self._gens = [np.random.default_rng(i) for i in range(max(1, self.threads))]
        self._bufs = {"copy": (dst, src), "exp": (y, x), "rand": (rnd,)}
        self._pool = ThreadPoolExecutor(self.threads) if self.threads > 1 else None
        self._split: dict[str, bool] = {}
        t = {}
        for name, (buf, *_) in self._bufs.items():
            t[name] = _median_time(lambda: self._kernel(name, 0, len(buf)), reps, mt)
            if self._pool is not None:
                t_split = _median_time(lambda: self._split_run(name, len(buf)), reps, mt)
                self._split[name] = t_split < t[name]
                t[name] = min(t[name], t_split)
        self.copy_bytes_per_s = 2 * src.nbytes / t["copy"]          # one read + one write
        self.exp_per_s = x.size / t["exp"]
        self.rand_per_s = rnd.size / t["rand"]
        self.detail = {"copy_buffer_MiB": src.nbytes / 2 ** 20,
                       "copy_GB_per_s": self.copy_bytes_per_s / 1e9,
                       "exp_Gelem_per_s": self.exp_per_s / 1e9,
                       "random_Gelem_per_s": self.rand_per_s / 1e9,
                       "split_over_threads": dict(self._split)}

    def _kernel(self, name: str, a: int, b: int, gen: int = 0) -> None:
        """One floor kernel over elements ``[a, b)`` of its buffers: ``"copy"`` (np.copyto),
        ``"exp"`` (np.exp, out=) or ``"rand"`` (``Generator.random``, out=; generator ``gen``)."""
        if name == "copy":
            dst, src = self._bufs["copy"]
            np.copyto(dst[a:b], src[a:b])
        elif name == "exp":
            y, x = self._bufs["exp"]
            np.exp(x[a:b], out=y[a:b])
        else:
            rnd = self._bufs["rand"][0][a:b]
            self._gens[gen].random(out=rnd, dtype=rnd.dtype)

    def _split_run(self, name: str, n: int) -> None:
        """``name``'s kernel over its first ``n`` elements, one contiguous part per thread."""
        k = -(-n // self.threads)
        list(self._pool.map(lambda i: self._kernel(name, i * k, min(n, (i + 1) * k), i),
                            range(self.threads)))

    def _full(self, name: str) -> None:
        """``name``'s kernel over its whole buffer, on one thread or split over the threads,
        as the rate measurement found faster."""
        n = len(self._bufs[name][0])
        if self._split.get(name):
            self._split_run(name, n)
        else:
            self._kernel(name, 0, n)

    def gemm_time(self, m: int, k: int, n: int) -> tuple[float, str]:
        """Seconds for one (m, k)·(k, n) product in its fastest orientation, and which."""
        key = (m, k, n)
        if key not in self._gemm:
            self._gemm[key] = self._time_gemm(m, k, n)
        t, label, _ = self._gemm[key]
        return t, label

    def _operands(self, m: int, k: int, n: int, how: tuple[bool, bool, bool]):
        """(a, b, out) of one orientation: A stored transposed?, B?, computing Cᵀ?"""
        rng = np.random.default_rng(0)
        a = rng.standard_normal((m, k)).astype(self.dtype)
        b = rng.standard_normal((k, n)).astype(self.dtype)
        at, bt, ct = how
        a = np.ascontiguousarray(a.T).T if at else a
        b = np.ascontiguousarray(b.T).T if bt else b
        return (b.T, a.T, np.empty((n, m), self.dtype)) if ct else (
            a, b, np.empty((m, n), self.dtype))

    def _time_gemm(self, m: int, k: int, n: int) -> tuple[float, str, tuple]:
        reps, mt = (3, 0.01) if self.quick else (5, 0.03)
        best = (math.inf, "", (False, False, False))
        for at in (False, True):
            for bt in (False, True):
                an, bn = "Aᵀ" if at else "A", "Bᵀ" if bt else "B"
                for ct in (False, True):
                    x, y, out = self._operands(m, k, n, (at, bt, ct))
                    t = _median_time(lambda: np.matmul(x, y, out=out), reps, mt)
                    label = f"Cᵀ = ({bn})ᵀ·({an})ᵀ" if ct else f"C = {an}·{bn}"
                    best = min(best, (t, label, (at, bt, ct)), key=lambda v: v[0])
        return best

    def program(self, work: Work) -> list["FloorProbe"]:
        """The :class:`FloorProbe` sides for ``work``, for the benchmark to time interleaved
        with the case: one for its products, one for its rate kernels (none for no work).
        Apart, because a 64 MiB copy between them would evict the products' operands from the
        cache (the LSTM's floor measured 22 instead of 19 ms with both in one call)."""
        calls = []
        for m, k, n, cnt in work.gemms:
            self.gemm_time(m, k, n)
            calls.append((*self._operands(m, k, n, self._gemm[(m, k, n)][2]), cnt))
        copied = work.bytes(self.dtype.itemsize) / 2 / self.dtype.itemsize   # read + write
        passes = [(name, n / len(self._bufs[name][0]))
                  for name, n in (("copy", copied), ("exp", work.exp), ("rand", work.rand))
                  if n > 0]
        return ([FloorProbe(self, calls, [])] if calls else []) + (
            [FloorProbe(self, [], passes)] if passes else [])

    def time(self, work: Work, measured_s: float | None = None) -> dict:
        """The floor of ``work``: ``total_s`` — ``measured_s`` (its :class:`FloorProbe`'s
        :meth:`~FloorProbe.seconds`, measured beside the case) when given, else the sum of
        the parts — and the parts at the rates measured at the start of the run (their sum:
        ``estimate_s``)."""
        g = sum(self.gemm_time(m, k, n)[0] * cnt for m, k, n, cnt in work.gemms)
        mem = work.bytes(self.dtype.itemsize) / self.copy_bytes_per_s
        ex = work.exp / self.exp_per_s
        rd = work.rand / self.rand_per_s
        est = g + mem + ex + rd
        return {"total_s": est if measured_s is None else measured_s, "estimate_s": est,
                "gemm_s": g, "memory_s": mem, "exp_s": ex, "random_s": rd,
                "flops": work.flops(), "bytes": work.bytes(self.dtype.itemsize)}

    def gemm_table(self) -> list[dict]:
        return [{"shape": list(k), "time_s": t, "gflops": 2.0 * k[0] * k[1] * k[2] / t / 1e9,
                 "orientation": o} for k, (t, o, _) in self._gemm.items()]


class FloorProbe:
    """A part of a case's floor — its products, or its rate kernels — measured while the case
    runs. Each call does the products in their fastest orientations and one pass of each rate
    kernel the work needs (a copy of the 64 MiB buffer, ``np.exp`` over the 4M-element one, the
    4M random draws; on one thread or split, as :class:`Rates` found faster) and, inside the
    harness's timed samples, records how long each part took. :meth:`seconds` is then the
    products' median time plus each kernel's median time scaled to the work's amount: the
    machine's rates taken in the same minutes as the case, at the same buffer sizes as the
    start-of-run rates (a copy of the case's own byte count would run from the cache instead
    and change what the floor means)."""

    def __init__(self, rates: Rates, gemms: list, passes: list[tuple[str, float]]):
        self.rates, self.gemms, self.passes = rates, gemms, passes
        self.records: list[list[float]] = []   # per timed sample: mean [products, *passes] s
        self._acc: list[float] | None = None
        self._calls = 0

    def begin_sample(self) -> None:
        """Start recording (the harness calls it before a timed sample: warm-up and settling
        calls, right after the other side ran, are not recorded)."""
        self._acc, self._calls = [0.0] * (1 + len(self.passes)), 0

    def end_sample(self) -> None:
        """Stop recording; the sample's mean time of each part becomes one record."""
        if self._acc is not None and self._calls:
            self.records.append([a / self._calls for a in self._acc])
        self._acc = None

    def __call__(self) -> None:
        t0 = time.perf_counter()
        for a, b, out, cnt in self.gemms:
            for _ in range(cnt):
                np.matmul(a, b, out=out)
        times = [time.perf_counter() - t0]
        for name, _ in self.passes:
            t0 = time.perf_counter()
            self.rates._full(name)
            times.append(time.perf_counter() - t0)
        if self._acc is not None:
            self._acc = [a + t for a, t in zip(self._acc, times)]
            self._calls += 1

    def seconds(self) -> float:
        """The floor from the timed samples so far: median products time + Σ median pass time
        × the work's amount over the pass's buffer size."""
        med = np.median(np.asarray(self.records), axis=0)
        return float(med[0] + sum(m * scale for m, (_, scale) in zip(med[1:], self.passes)))
