"""Recurrent ops, the fast edition: the same recurrences as ``scratchnn.textbook.recurrent``::

    RNN   h_t = tanh(x_t W_ihᵀ + b_ih + h_{t−1} W_hhᵀ + b_hh)            (or relu)
    LSTM  [i f g o] = x_t W_ihᵀ + b_ih + h_{t−1} W_hhᵀ + b_hh,  i, f, o = σ(·), g = tanh(·)
          c_t = f ⊙ c_{t−1} + i ⊙ g,   h_t = o ⊙ tanh(c_t)   (· W_hrᵀ with a projection)
    GRU   r = σ(xr + hr),  z = σ(xz + hz),  n = tanh(xn + r ⊙ hn)
          h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}

with torch's argument order and gate layout (LSTM rows ``i, f, g, o``; GRU rows ``r, z, n``).
The textbook twin, :mod:`scratchnn.textbook.recurrent`, is what to read first: there a layer is
literally the cell in a loop over time and its backward (BPTT) the cell's backward in the
reverse loop. The cells (``rnn_tanh_cell``, ``rnn_relu_cell``, ``lstm_cell``, ``gru_cell``)
are plain already: this module re-exports the textbook's own functions.

Layers run one cell over a whole sequence, one layer and one direction (the modules in
``scratchnn.nn.recurrent`` stack them into multi-layer, bidirectional networks)::

    out, h_n = gru_layer(x, h0, W_ih, W_hh, b_ih, b_hh, lengths=None, reverse=False)
    out, h_n, c_n = lstm_layer(x, h0, c0, W_ih, W_hh, b_ih, b_hh, W_hr)

What makes the layers here fast, all outside the recurrence itself (one path; ``ROUTES``
only forces the LSTM's weight-gradient chunks down to one step, so the tests compare every
piece with the textbook):

* the input projection ``x_t W_ihᵀ + b`` for all T steps is ONE GEMM (T·B, I) @ (I, G·H);
* the gates of a step sit side by side (one row, or one block of rows in column layout), the
  sigmoid gates first, so one sigmoid and one tanh cover them (the LSTM runs its rows in the
  order i, f, o, g internally — torch's i, f, g, o with the last two blocks swapped — and
  swaps them back in the weight gradients);
* the backward writes each step's gate gradients into one buffer ((T, B, G·H); the GRU's
  (T, 4H, B) holds its n block twice, dan ⊙ r for W_hh and dan for W_ih), and dW_ih, dW_hh,
  the biases and dx come out of it at the end as one GEMM each (no per-step accumulation);
* the LSTM and the GRU work in column layout — a step's B sequences are the columns of
  (features, B) arrays — because OpenBLAS runs the short, wide recurrent GEMMs 1.3–1.8× faster
  that way and every gate is then a contiguous block (the GRU's forward + backward: 28.5 →
  24.0 ms, T = 50, B = 32, 128 → 256, 2 threads; its weight gradients come from the step
  gradients laid out features first, one GEMM each, the bias sums as GEMVs); an LSTM step is
  ONE GEMM [W_hh | W_ih | b] @ [h; x_t; 1]
  (input projection, recurrent product and bias together, see lstm_layer), and its backward
  sums the weight gradients a chunk of steps at a time (a cache-sized (4H, c·B) block, one GEMM
  per chunk; see ``_WeightGrads``); its buffers are recycled (:mod:`scratchnn.perf.recycle`);
* the in-place sigmoid and the contiguous Wᵀ copy live in :mod:`scratchnn.perf.sequence`.

Variable lengths (``lengths=``, torch's ``pack_padded_sequence`` semantics): sequence b is
``x[:lengths[b], b]``. Where the textbook masks (a finished row keeps its state), the engine
sorts the rows by decreasing length (as PackedSequence does), so at time t the active rows are
the first ``batch_sizes[t]`` and only those are computed; the others keep their state (a
finished sequence its final state, in the reverse direction a not-yet-started one its initial
state). Outputs at padded steps are zero (as ``pad_packed_sequence``), ``h_n``/``c_n`` are each
sequence's state after its own last step, and padded steps get no gradient.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..autodiff import defop
from ..perf import recycle
from ..perf.sequence import sigmoid_ as _sigmoid_
from ..perf.sequence import transposed_copy as _transposed
from ..textbook._recurrent_args import check_layer
from ..textbook._recurrent_args import check_lengths  # noqa: F401  (scratchnn.nn.recurrent)
from ..textbook.recurrent import (gru_cell, gru_cell_backward, gru_cell_forward, lstm_cell,
                                  lstm_cell_backward, lstm_cell_forward, rnn_cell_backward,
                                  rnn_relu_cell, rnn_relu_cell_forward, rnn_tanh_cell,
                                  rnn_tanh_cell_forward)

Array = np.ndarray

CHUNK_BYTES = 1 << 20              # the backward's gate gradients per weight-gradient chunk
# the settings that force each path on small inputs (tests/test_textbook.py runs every one)
ROUTES: dict[str, dict[str, object]] = {
    "default": {},
    "one step per weight-gradient chunk, every buffer recycled": {
        "CHUNK_BYTES": 1, "scratchnn.perf.recycle.MIN_BYTES": 0},
}

__all__ = ["rnn_tanh_cell", "rnn_relu_cell", "lstm_cell", "gru_cell",
           "rnn_tanh_layer", "rnn_relu_layer", "lstm_layer", "gru_layer",
           "rnn_tanh_cell_forward", "rnn_relu_cell_forward", "rnn_cell_backward",
           "lstm_cell_forward", "lstm_cell_backward", "gru_cell_forward", "gru_cell_backward",
           "rnn_tanh_layer_forward", "rnn_relu_layer_forward", "rnn_layer_backward",
           "lstm_layer_forward", "lstm_layer_backward", "gru_layer_forward", "gru_layer_backward"]


# ------------------------------------------------------------------------------------------------
# layers: a whole sequence, one layer, one direction
# ------------------------------------------------------------------------------------------------

class Schedule(NamedTuple):
    """Which rows are active at which time step, and in which order the steps run."""
    order: list[int]              # time steps in processing order (T−1 … 0 when reverse)
    sizes: list[int]              # batch_sizes[t]: rows 0..sizes[t]−1 are active at time t
    perm: Array | None            # rows sorted by decreasing length (None: keep the order)
    inv: Array | None             # its inverse
    valid: Array | None           # (T, B, 1) t < length, in sorted order (None: all valid)
    reverse: bool

    def states(self, t: int) -> tuple[int, int]:
        """Indices (before, after) of step t in the (T+1, B, ·) state buffer S: forward
        S[t] → S[t+1]; reverse S[t+1] → S[t]. Either way the states fed to the steps are
        S[:-1] (forward) or S[1:] (reverse), one contiguous slice in time order."""
        return (t + 1, t) if self.reverse else (t, t + 1)

    def before(self, S: Array) -> Array:
        """h_{t−1} for every t, in time order: (T, B, ·)."""
        return S[1:] if self.reverse else S[:-1]

    def after(self, S: Array) -> Array:
        """h_t for every t, in time order: (T, B, ·)."""
        return S[:-1] if self.reverse else S[1:]

    def sort(self, a: Array | None, axis: int) -> Array | None:
        return a if a is None or self.perm is None else np.take(a, self.perm, axis=axis)

    def unsort(self, a: Array | None, axis: int) -> Array | None:
        return a if a is None or self.inv is None else np.take(a, self.inv, axis=axis)


def _schedule(lens: Array | None, T: int, B: int, reverse: bool) -> Schedule:
    """The processing order and, for variable lengths (``lens`` checked), the sorted rows."""
    order = list(range(T - 1, -1, -1)) if reverse else list(range(T))
    if lens is None:
        return Schedule(order, [B] * T, None, None, None, reverse)
    perm = np.argsort(-lens, kind="stable")
    sorted_lens = lens[perm]
    sizes = (sorted_lens[None, :] > np.arange(T)[:, None]).sum(1).tolist()   # batch_sizes
    valid = (np.arange(T)[:, None] < sorted_lens[None, :])[..., None]      # (T, B, 1)
    if np.array_equal(perm, np.arange(B)):
        perm = inv = None
    else:
        inv = np.argsort(perm)
    return Schedule(order, sizes, perm, inv, valid, reverse)


def _check_layer(fn: str, n_gates: int, input: Array, states: dict, w_ih: Array, w_hh: Array,
                 b_ih: Array | None, b_hh: Array | None, w_hr: Array | None, lengths,
                 reverse: bool) -> tuple[int, int, Schedule]:
    """The textbook's checks (one set of messages for both editions), then the schedule."""
    H, H_out, lens = check_layer(fn, n_gates, input, states, w_ih, w_hh, b_ih, b_hh, w_hr,
                                 lengths, reverse)
    return H, H_out, _schedule(lens, input.shape[0], input.shape[1], reverse)


def _project(x: Array, w: Array, b: Array | None) -> Array:
    """x_t Wᵀ + b for every step at once: ONE GEMM (T·B, I) @ (I, G·H) -> (T, B, G·H)."""
    T, B, I = x.shape
    G = np.matmul(x.reshape(T * B, I), w.T,                               # (T·B, G·H)
                  out=recycle.empty((T * B, w.shape[0]), x.dtype))
    if b is not None:
        G += b
    return G.reshape(T, B, w.shape[0])


def _bias_sum(b_ih: Array | None, b_hh: Array | None) -> Array | None:
    if b_ih is None:
        return b_hh
    return b_ih if b_hh is None else b_ih + b_hh


def _zeros_state(s: Array | None, B: int, size: int, dtype) -> Array:
    return np.zeros((B, size), dtype) if s is None else s


def _outputs(sched: Schedule, S: Array) -> tuple[Array, Array]:
    """The output sequence (zeros at padded steps) and the final state from the state buffer."""
    after = sched.after(S)                                                 # (T, B, H) time order
    out = recycle.empty(after.shape, after.dtype)
    if sched.valid is not None:
        np.multiply(after, sched.valid, out=out)
    else:
        np.copyto(out, after)
    last = S[0] if sched.reverse else S[-1]
    return sched.unsort(out, 1), sched.unsort(last, 0).copy()


def _input_grads(dA2: Array, X2: Array, w_ih: Array) -> tuple[Array, Array, Array]:
    """After the time loop, what sums over steps, one GEMM each (dA2 (T·B, G·H) = every step's
    gate gradients, X2 (T·B, I)):  dx = dA W_ih,  dW_ih = Σ_t dA_tᵀ x_t,  db = Σ_{t,B} dA."""
    return dA2 @ w_ih, dA2.T @ X2, dA2.sum(0)


def _seq_grads(sched: Schedule, dA: Array, X: Array, S: Array, w_ih: Array) -> tuple:
    """dx, dW_ih, dW_hh = Σ_t dA_tᵀ h_{t−1} (one GEMM over all steps) and db."""
    T, B, GH = dA.shape
    dA2 = dA.reshape(T * B, GH)                                           # (T·B, G·H)
    prev = sched.before(S)                                                # h_{t−1}, time order
    dx, dw_ih, db = _input_grads(dA2, X.reshape(T * B, X.shape[2]), w_ih)
    return dx.reshape(X.shape), dw_ih, dA2.T @ prev.reshape(T * B, prev.shape[2]), db


def _sorted_douts(sched: Schedule, dout: Array, dlast: Array) -> tuple[Array, Array]:
    """Upstream grads in the sorted row order; the running state grad is our own copy."""
    return sched.sort(dout, 1), np.array(sched.sort(dlast, 0), copy=True)


# ---- plain RNN ---------------------------------------------------------------------------------

class RNNLayerCtx(NamedTuple):
    sched: Schedule
    x: Array                      # (T, B, I) input, rows sorted
    S: Array                      # (T+1, B, H) states h_0 … h_T (see Schedule.states)
    w_ih: Array
    w_hh: Array
    relu: bool
    has_h0: bool
    has_b_ih: bool
    has_b_hh: bool


def _rnn_layer(fn: str, relu: bool, input: Array, h0: Array | None, w_ih: Array, w_hh: Array,
               b_ih: Array | None, b_hh: Array | None, lengths, reverse: bool
               ) -> tuple[tuple[Array, Array], RNNLayerCtx]:
    H, _, sched = _check_layer(fn, 1, input, {"h0": h0}, w_ih, w_hh, b_ih, b_hh, None,
                               lengths, reverse)
    T, B, _ = input.shape
    x = sched.sort(input, 1)
    A = _project(x, w_ih, _bias_sum(b_ih, b_hh))                          # (T, B, H)
    S = np.empty((T + 1, B, H), input.dtype)
    S[sched.states(sched.order[0])[0]] = sched.sort(_zeros_state(h0, B, H, input.dtype), 0)
    w_hhT = _transposed(w_hh)
    for t in sched.order:                                                 # one time step:
        p, q, n = *sched.states(t), sched.sizes[t]
        a = A[t, :n]
        a += S[p, :n] @ w_hhT                                             # a = x W_ihᵀ + h W_hhᵀ + b
        if relu:
            np.maximum(a, 0, out=S[q, :n])                                # h' = relu(a)
        else:
            np.tanh(a, out=S[q, :n])                                      # h' = tanh(a)
        if n < B:
            S[q, n:] = S[p, n:]                                           # inactive rows keep h
    out, h_n = _outputs(sched, S)
    return (out, h_n), RNNLayerCtx(sched, x, S, w_ih, w_hh, relu, h0 is not None,
                                   b_ih is not None, b_hh is not None)


def rnn_tanh_layer_forward(input: Array, h0: Array | None, w_ih: Array, w_hh: Array,
                           b_ih: Array | None = None, b_hh: Array | None = None, *,
                           lengths=None, reverse: bool = False
                           ) -> tuple[tuple[Array, Array], RNNLayerCtx]:
    """One step t:  h_t = tanh(x_t W_ihᵀ + b_ih + h_{t−1} W_hhᵀ + b_hh),  for t = 0 … T−1
    (t = T−1 … 0 with ``reverse=True``); out_t = h_t.

    Shapes:  x (T, B, I), h0 (B, H) or None (zeros), W_ih (H, I), W_hh (H, H), b (H),
             lengths (B) ints in [1, T] or None  ->  out (T, B, H), h_n (B, H)
    Saves:   per step only h_t (the (T+1, B, H) state buffer, tanh' = 1 − h_t²), plus x and
             the weights.
    Torch:   one direction of one layer of torch.nn.RNN (packed input when lengths is given)
    """
    return _rnn_layer("rnn_tanh_layer", False, input, h0, w_ih, w_hh, b_ih, b_hh, lengths,
                      reverse)


def rnn_relu_layer_forward(input: Array, h0: Array | None, w_ih: Array, w_hh: Array,
                           b_ih: Array | None = None, b_hh: Array | None = None, *,
                           lengths=None, reverse: bool = False
                           ) -> tuple[tuple[Array, Array], RNNLayerCtx]:
    """One step t:  h_t = relu(x_t W_ihᵀ + b_ih + h_{t−1} W_hhᵀ + b_hh)

    Shapes:  as rnn_tanh_layer.
    Saves:   per step only h_t (relu' = [h_t > 0]), plus x and the weights.
    Torch:   one direction of one layer of torch.nn.RNN(nonlinearity='relu')
    """
    return _rnn_layer("rnn_relu_layer", True, input, h0, w_ih, w_hh, b_ih, b_hh, lengths,
                      reverse)


def rnn_layer_backward(ctx: RNNLayerCtx, douts: tuple[Array, Array]) -> tuple:
    """Backpropagation through time, last step first. One step t:
        dh_t  = dout_t + (dh_t from step t+1)
        da_t  = dh_t ⊙ (1 − h_t²)          (relu: dh_t ⊙ [h_t > 0])
        dh_{t−1} = da_t W_hh                (to step t−1)
    then, once for all steps: dx = da W_ih, dW_ih = Σ_t da_tᵀ x_t, dW_hh = Σ_t da_tᵀ h_{t−1},
    db_ih = db_hh = Σ da. Returns (dx, dh0, dW_ih, dW_hh, db_ih, db_hh)."""
    sched, S, w_hh = ctx.sched, ctx.S, ctx.w_hh
    dout, dh = _sorted_douts(sched, *douts)
    T, B, H = dout.shape
    dA = (np.zeros if sched.valid is not None else np.empty)((T, B, H), dout.dtype)
    for t in reversed(sched.order):
        p, q, n = *sched.states(t), sched.sizes[t]
        dh_t = dh[:n]
        dh_t += dout[t, :n]                                               # dh_t
        h_t = S[q, :n]
        if ctx.relu:
            np.multiply(dh_t, h_t > 0, out=dA[t, :n])                     # da_t
        else:
            np.multiply(dh_t, 1 - h_t * h_t, out=dA[t, :n])
        np.matmul(dA[t, :n], w_hh, out=dh_t)                              # dh_{t−1}
    dx, dw_ih, dw_hh, db = _seq_grads(sched, dA, ctx.x, S, ctx.w_ih)
    return (sched.unsort(dx, 1), sched.unsort(dh, 0) if ctx.has_h0 else None, dw_ih, dw_hh,
            db if ctx.has_b_ih else None, db.copy() if ctx.has_b_hh else None)


# ---- LSTM --------------------------------------------------------------------------------------

def _ifog(H: int) -> Array:
    """Row order i, f, o, g from torch's i, f, g, o (a swap of the last two blocks: its own
    inverse), so the three sigmoid gates are one contiguous block."""
    return np.r_[0:2 * H, 3 * H:4 * H, 2 * H:3 * H]


class LSTMLayerCtx(NamedTuple):
    sched: Schedule
    x: Array                      # (T, B, I) input, rows sorted
    A: Array                      # (T, 4H, B) activated gates i, f, o, g per step (columns)
    S: Array                      # (P, T+1, B) h states (P = proj_size or H), time inside
    C: Array                      # (T+1, H, B) cell states (columns)
    TC: Array                     # (T, H, B) tanh(c_t) (columns)
    R: Array | None               # (T, H, B) o ⊙ tanh(c_t) before the projection (proj only)
    w_hh: Array                   # (4H, P) torch's rows i, f, g, o
    w_ih: Array                   # (4H, I) torch's rows
    w_hr: Array | None
    has_h0: bool
    has_c0: bool
    has_b_ih: bool
    has_b_hh: bool


def _columns(a: Array) -> Array:
    """(T, B, F) -> (T, F, B) C-contiguous: each step's rows as columns (one copy, into a
    recycled buffer)."""
    out = recycle.empty(a.shape[:-2] + a.shape[:-3:-1], a.dtype)
    np.copyto(out, a.swapaxes(-1, -2))
    return out


def _features_first(a: Array) -> Array:
    """(T, F, B) -> (F, T·B) C-contiguous: every step's columns side by side, one copy into a
    recycled buffer (the B columns stay contiguous: 0.63 ms for (50, 1024, 32) float32,
    against 1.7 ms to turn them into rows)."""
    T, F, B = a.shape
    out = recycle.empty((F, T, B), a.dtype)
    np.copyto(out, a.transpose(1, 0, 2))
    return out.reshape(F, T * B)


class _WeightGrads:
    """The weight gradients of a layer, summed over time one chunk of steps at a time.

    The backward writes each step's gate gradients (rows in torch's order) into a chunk buffer
    ``D (G·H, c, B)`` of ``c`` steps (~``CHUNK_BYTES``, so it stays in cache) and, when the
    chunk is full, adds its share with one GEMM each (D as the (G·H, c·B) matrix):
    dW_ih += D x_chunk, dW_hh += D h_prev_chunk, db += Σ D, and writes dx_chunk = Dᵀ W_ih. Over
    all chunks that is the same sum as one GEMM over all T·B columns (in another order of
    additions), without a (G·H, T, B) buffer that each step writes to cold memory in a strided
    pattern; the chunk stays in cache between the steps that fill it and the GEMMs that read
    it."""

    def __init__(self, GH: int, X: Array, prev: Array, w_ih: Array, zero: bool):
        """X (T, B, I) the input rows, prev (P, T, B) h_{t−1} as columns, time inside."""
        T, B, I = X.shape
        self.X, self.prev, self.w_ih, self.zero = X, prev, w_ih, zero
        self.c = max(1, min(T, CHUNK_BYTES // max(1, GH * B * X.itemsize)))
        self.D = recycle.empty((GH, self.c, B), X.dtype)                 # (G·H, c, B)
        self.dx = recycle.empty((T, B, I), X.dtype)                      # (T, B, I)
        self.dw_ih, self.dw_hh, self.db = None, None, None
        self.ones = np.ones(self.c * B, X.dtype)

    def chunks(self, order: list[int]) -> list[tuple[int, int, list[int]]]:
        """``order`` (the backward's steps) cut into runs of ≤ c steps: (t0, t1, steps)."""
        runs = [order[k:k + self.c] for k in range(0, len(order), self.c)]
        return [(min(r), max(r) + 1, r) for r in runs]

    def slot(self, t0: int, t1: int) -> Array:
        """The chunk buffer for steps t0 … t1 − 1, (G·H, t1 − t0, B) (zeros for padding)."""
        D = self.D[:, :t1 - t0]
        if self.zero:
            D.fill(0)
        return D

    def add(self, t0: int, t1: int) -> None:
        """Add steps t0 … t1 − 1 (the filled slot) to dW_ih, dW_hh, db; write their dx."""
        GH, _, B = self.D.shape
        mB, I, P = (t1 - t0) * B, self.X.shape[2], self.prev.shape[0]
        D = self.D[:, :t1 - t0].reshape(GH, mB)                          # (G·H, m·B)
        X2 = self.X[t0:t1].reshape(mB, I)                                # (m·B, I)
        P2 = self.prev[:, t0:t1].reshape(P, mB)                          # (P, m·B)
        np.matmul(D.T, self.w_ih, out=self.dx[t0:t1].reshape(mB, I))
        parts = (D @ X2, D @ P2.T, D @ self.ones[:mB])                   # Σ as a GEMV
        if self.dw_ih is None:
            self.dw_ih, self.dw_hh, self.db = parts
        else:
            self.dw_ih += parts[0]
            self.dw_hh += parts[1]
            self.db += parts[2]


def lstm_layer_forward(input: Array, h0: Array | None, c0: Array | None, w_ih: Array,
                       w_hh: Array, b_ih: Array | None = None, b_hh: Array | None = None,
                       w_hr: Array | None = None, *, lengths=None, reverse: bool = False
                       ) -> tuple[tuple[Array, Array, Array], LSTMLayerCtx]:
    """One step t (torch's lstm_cell; W_hr only with a projection):
        [i f g o] = x_t W_ihᵀ + b_ih + h_{t−1} W_hhᵀ + b_hh
        i, f, o = σ(·),  g = tanh(·)
        c_t = f ⊙ c_{t−1} + i ⊙ g,   h_t = o ⊙ tanh(c_t)   (projection: h_t = (o ⊙ tanh c_t) W_hrᵀ)
    out_t = h_t; t runs T−1 … 0 with ``reverse=True``.

    The loop works in column layout: a step's B sequences are the columns of (features, B)
    arrays, so every gate is a contiguous block of rows (one σ covers i, f, o) and the step's
    one GEMM is the product OpenBLAS runs fastest (with its SkylakeX kernels, float32, B = 32,
    4H = 1024, 84 µs against 150 µs for the row form h (B, P) @ W_hhᵀ on one thread):

        a_t = [W_hh | W_ih | b] (4H, P+I+1)  @  z_t = [h_{t−1}; x_t; 1] (P+I+1, B)

    The z_t of all steps are the slices of one buffer Z (P+I+1, T+1, B) (x and the ones are
    copied in once; each step writes its h_t into the next slice), so the input projection, the
    recurrent product and the bias are one GEMM per step straight into the step's gates: no
    separate (4H, T·B) projection to add in, 10 % less time than the projection GEMM over all
    steps plus a per-step add (measured, one thread). The rows of i, f, o in that weight are
    halved (exact in floating point): a GEMM then yields a/2 for them, and
    σ(a) = ½ tanh(a/2) + ½ starts at its tanh — one tanh over all four gates. Only the h
    states are turned to rows (B, P), once, for the output. The buffers come from
    :mod:`scratchnn.perf.recycle` (no page faults on the next call's arrays).

    Shapes:  x (T, B, I), h0 (B, P) / c0 (B, H) or None (zeros), W_ih (4H, I), W_hh (4H, P),
             b (4H), W_hr (P, H) or None (then P = H), lengths (B) ints in [1, T] or None
             -> out (T, B, P), h_n (B, P), c_n (B, H)
    Saves:   per step: the activated gates i, f, o, g (4H), c_t and tanh(c_t) (H each), h_t (P)
             and with a projection o ⊙ tanh(c_t) (H); plus x and the weights.
    Torch:   one direction of one layer of torch.nn.LSTM (proj_size, packed input)
    """
    fn = "lstm_layer"
    H, P, sched = _check_layer(fn, 4, input, {"h0": h0, "c0": c0}, w_ih, w_hh,
                               b_ih, b_hh, w_hr, lengths, reverse)
    T, B, I = input.shape
    dt = input.dtype
    H3, ifog, b = 3 * H, _ifog(H), _bias_sum(b_ih, b_hh)
    K = P + I + (b is not None)
    W = np.empty((4 * H, K), dt)                                          # [W_hh | W_ih | b]
    W[:, :P], W[:, P:P + I] = w_hh[ifog], w_ih[ifog]                      # rows i, f, o, g
    if b is not None:
        W[:, P + I] = b[ifog]
    W[:H3] *= 0.5                                                         # i, f, o: a/2
    x = sched.sort(input, 1)                                              # (T, B, I)
    Z = recycle.empty((K, T + 1, B), dt)                                  # z_t = [h; x; 1]
    Zt = Z.swapaxes(0, 1)                                                 # (T+1, K, B) view
    np.copyto(sched.before(Zt)[:, P:P + I], x.swapaxes(1, 2))             # x_t beside h_{t−1}
    if b is not None:
        Z[P + I] = 1
    S = Z[:P]                                                             # (P, T+1, B) h
    A = recycle.empty((T, 4 * H, B), dt)                                  # gates, per step
    C, TC = recycle.empty((T + 1, H, B), dt), recycle.empty((T, H, B), dt)  # columns
    # zeros, not empty: dW_hr multiplies all of R, and steps/columns past a sequence's length
    # are never written (0·garbage can be NaN)
    R = np.zeros((T, H, B), dt) if w_hr is not None else None
    first = sched.states(sched.order[0])[0]
    S[:, first] = sched.sort(_zeros_state(h0, B, P, dt), 0).T
    C[first] = sched.sort(_zeros_state(c0, B, H, dt), 0).T
    ig = np.empty((H, B), dt)
    for t in sched.order:                                                 # one time step:
        p, q, n = *sched.states(t), sched.sizes[t]
        a = np.matmul(W, Z[:, p, :n], out=A[t, :, :n])                    # [a_ifo/2, a_g]
        np.tanh(a, out=a)
        a[:H3] *= 0.5
        a[:H3] += 0.5                                                     # i, f, o = σ; g
        i, f, o, g = a[:H], a[H:2 * H], a[2 * H:H3], a[H3:]
        c = np.multiply(f, C[p, :, :n], out=C[q, :, :n])
        c += np.multiply(i, g, out=ig[:, :n])                             # c_t = f c + i g
        tc = np.tanh(c, out=TC[t, :, :n])
        if R is None:
            np.multiply(o, tc, out=S[:, q, :n])                           # h_t = o tanh(c_t)
        else:
            np.matmul(w_hr, np.multiply(o, tc, out=R[t, :, :n]), out=S[:, q, :n])
        if n < B:                                                         # inactive columns
            S[:, q, n:], C[q, :, n:] = S[:, p, n:], C[p, :, n:]           # keep their state
    out, h_n = _outputs(sched, S.transpose(1, 2, 0))                      # (T+1, B, P) view
    c_n = sched.unsort((C[0] if reverse else C[-1]).T, 0).copy()
    return (out, h_n, c_n), LSTMLayerCtx(sched, x, A, S, C, TC, R, w_hh, w_ih, w_hr,
                                         h0 is not None, c0 is not None, b_ih is not None,
                                         b_hh is not None)


def lstm_layer_backward(ctx: LSTMLayerCtx, douts: tuple[Array, Array, Array]) -> tuple:
    """Backpropagation through time, last step first. One step t (column layout, as the
    forward: (features, B) arrays):
        dh_t = dout_t + (dh from step t+1)         (projection: keep dh_t for dW_hr, then
                                                    dh_t ← W_hrᵀ dh_t)
        dc_t = (dc from step t+1) + dh_t ⊙ o ⊙ (1 − tanh² c_t)
        di = dc_t ⊙ g,  df = dc_t ⊙ c_{t−1},  do = dh_t ⊙ tanh c_t,  dg = dc_t ⊙ i
        da_t = [di ⊙ i(1−i), df ⊙ f(1−f), do ⊙ o(1−o), dg ⊙ (1−g²)]    (rows i, f, o, g)
        dh_{t−1} = W_hhᵀ da_t,   dc_{t−1} = dc_t ⊙ f
    and, every few steps (:class:`_WeightGrads`), for the steps done so far: dx = da W_ih,
    dW_ih += Σ_t da_tᵀ x_t, dW_hh += Σ_t da_tᵀ h_{t−1}, db += Σ da_t (da_t's rows put back in
    torch's order i, f, g, o on the way); at the end dW_hr = Σ_t dh_t (o ⊙ tanh c_t)ᵀ.
    Returns (dx, dh0, dc0, dW_ih, dW_hh, db_ih, db_hh, dW_hr)."""
    sched, A, S, C, TC, R = ctx.sched, ctx.A, ctx.S, ctx.C, ctx.TC, ctx.R
    dout, dh = _sorted_douts(sched, douts[0], douts[1])
    dout, dh = _columns(dout), np.ascontiguousarray(dh.T)                # (T, P, B), (P, B)
    dc = np.array(sched.sort(douts[2], 0).T, order="C")                 # (H, B), a copy
    T, H, B = TC.shape
    H2, H3 = 2 * H, 3 * H
    x = np.ascontiguousarray(ctx.x)                                       # (T, B, I) rows
    wg = _WeightGrads(4 * H, x, sched.before(S.swapaxes(0, 1)).swapaxes(0, 1), ctx.w_ih,
                      sched.valid is not None)
    DH = np.zeros_like(dout) if R is not None else None                  # dh_t, for dW_hr
    tmp, W_hhT = np.empty((H, B), dout.dtype), _transposed(ctx.w_hh[_ifog(H)])  # (P, 4H)
    da_buf = np.empty((4 * H, B), dout.dtype)                             # da_t, contiguous
    s1 = np.empty((H3, B), dout.dtype)
    last = sched.order[0]                                                 # the step BPTT ends at
    for t0, t1, steps in wg.chunks(list(reversed(sched.order))):
        D = wg.slot(t0, t1)                                              # (4H, t1 − t0, B)
        for t in steps:
            p, q, n = *sched.states(t), sched.sizes[t]
            dh_t = dh[:, :n]
            dh_t += dout[t, :, :n]
            if R is not None:
                DH[t, :, :n] = dh_t
                dh_t = ctx.w_hr.T @ dh_t                                  # through the projection
            a, da, tc, dc_t, tm = A[t, :, :n], da_buf[:, :n], TC[t, :, :n], dc[:, :n], tmp[:, :n]
            i, f, o, g = a[:H], a[H:H2], a[H2:H3], a[H3:]
            np.multiply(tc, tc, out=tm)
            np.subtract(1, tm, out=tm)
            tm *= o
            tm *= dh_t
            dc_t += tm                                                    # dc_t
            np.multiply(dc_t, g, out=da[:H])                              # di
            np.multiply(dc_t, C[p, :, :n], out=da[H:H2])                  # df
            np.multiply(dh_t, tc, out=da[H2:H3])                          # do
            np.multiply(dc_t, i, out=da[H3:])                             # dg
            dc_t *= f                                                     # dc_{t−1}
            s, s1_ = a[:H3], s1[:, :n]
            da[:H3] *= s
            np.subtract(1, s, out=s1_)
            da[:H3] *= s1_                                                # through σ
            np.multiply(g, g, out=tm)
            np.subtract(1, tm, out=tm)
            da[H3:] *= tm                                                 # through tanh
            if ctx.has_h0 or t != last:                                   # dh_{−1}: only for h0
                np.matmul(W_hhT, da, out=dh[:, :n])                       # dh_{t−1}
            d = D[:, t - t0, :n]                                          # rows i, f, g, o
            d[:H2], d[H2:H3], d[H3:] = da[:H2], da[H3:], da[H2:H3]
        wg.add(t0, t1)
    dw_hr = None
    if R is not None:                                                     # (P, H)
        dw_hr = _columns(DH).reshape(T * B, DH.shape[1]).T @ _columns(R).reshape(T * B, H)
    db = wg.db
    return (sched.unsort(wg.dx, 1), sched.unsort(dh.T, 0).copy() if ctx.has_h0 else None,
            sched.unsort(dc.T, 0).copy() if ctx.has_c0 else None, wg.dw_ih, wg.dw_hh,
            db if ctx.has_b_ih else None, db.copy() if ctx.has_b_hh else None, dw_hr)


# ---- GRU ---------------------------------------------------------------------------------------

class GRULayerCtx(NamedTuple):
    sched: Schedule
    x: Array                      # (T, B, I) input, rows sorted
    A: Array                      # (T, 3H, B) activated gates r, z, n per step (columns)
    HN: Array                     # (T, H, B) W_hn h_{t−1} + b_hn per step (columns)
    S: Array                      # (T+1, H, B) states (columns)
    w_ih: Array
    w_hh: Array
    has_h0: bool
    has_b_ih: bool
    has_b_hh: bool


def gru_layer_forward(input: Array, h0: Array | None, w_ih: Array, w_hh: Array,
                      b_ih: Array | None = None, b_hh: Array | None = None, *,
                      lengths=None, reverse: bool = False
                      ) -> tuple[tuple[Array, Array], GRULayerCtx]:
    """One step t (torch's gru_cell):
        [xr xz xn] = x_t W_ihᵀ + b_ih,   [hr hz hn] = h_{t−1} W_hhᵀ + b_hh
        r = σ(xr + hr),  z = σ(xz + hz),  n = tanh(xn + r ⊙ hn)
        h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}
    out_t = h_t; t runs T−1 … 0 with ``reverse=True``.

    The loop works in column layout, as the LSTM's: a step's B sequences are the columns of
    (features, B) arrays, its product is W_hh (3H, H) @ h_{t−1} (H, B) — the orientation
    OpenBLAS runs fastest for these short, wide products (B = 32, 3H = 768: 74 against 95 µs
    for the row form h (B, H) @ W_hhᵀ) — and every gate is a contiguous block of rows. The
    input projection stays one GEMM over all steps, turned to columns once.

    Shapes:  x (T, B, I), h0 (B, H) or None (zeros), W_ih (3H, I), W_hh (3H, H), b (3H),
             lengths (B) ints in [1, T] or None  ->  out (T, B, H), h_n (B, H)
    Saves:   per step: the activated gates r, z, n (3H), hn (H) and h_t (H); plus x and the
             weights.
    Torch:   one direction of one layer of torch.nn.GRU (packed input when lengths is given)
    """
    fn = "gru_layer"
    H, _, sched = _check_layer(fn, 3, input, {"h0": h0}, w_ih, w_hh, b_ih, b_hh, None,
                               lengths, reverse)
    T, B, _ = input.shape
    dt = input.dtype
    H2 = 2 * H
    b = b_ih
    if b_hh is not None:                       # b_hr, b_hz join the projection; b_hn stays in hn
        b = np.concatenate([b_hh[:H2], np.zeros(H, dt)]) + (0 if b_ih is None else b_ih)
    x = sched.sort(input, 1)
    A = _columns(_project(x, w_ih, b))                                    # (T, 3H, B)
    S, HN = recycle.empty((T + 1, H, B), dt), recycle.empty((T, H, B), dt)
    S[sched.states(sched.order[0])[0]] = sched.sort(_zeros_state(h0, B, H, dt), 0).T
    # b_hn written out to (H, B) once: a block against a block, not a column per row
    # (2.5 against 4.5 µs a step); zeros without b_hh (+0, as the old scalar 0 added)
    b_hn = (np.zeros((H, B), dt) if b_hh is None else np.repeat(b_hh[H2:, None], B, axis=1))
    gh = np.empty((3 * H, B), dt)
    for t in sched.order:                                                 # one time step:
        p, q, n = *sched.states(t), sched.sizes[t]
        a, h_prev, g = A[t, :, :n], S[p, :, :n], gh[:, :n]
        np.matmul(w_hh, h_prev, out=g)                                    # [hr hz hn] − b_hh
        a[:H2] += g[:H2]
        _sigmoid_(a[:H2])                                                 # r, z
        hn = np.add(g[H2:], b_hn[:, :n], out=HN[t, :, :n])                # hn = W_hn h + b_hn
        r, z, nt = a[:H], a[H:H2], a[H2:]
        nt += r * hn
        np.tanh(nt, out=nt)                                               # n
        h = np.subtract(h_prev, nt, out=S[q, :, :n])
        h *= z
        h += nt                                                           # h_t = n + z (h − n)
        if n < B:
            S[q, :, n:] = S[p, :, n:]
    out, h_n = _outputs(sched, S.swapaxes(1, 2))                          # (T+1, B, H) view
    return (out, h_n), GRULayerCtx(sched, x, A, HN, S, w_ih, w_hh, h0 is not None,
                                   b_ih is not None, b_hh is not None)


def gru_layer_backward(ctx: GRULayerCtx, douts: tuple[Array, Array]) -> tuple:
    """Backpropagation through time, last step first. One step t (column layout, as the
    forward):
        dh_t = dout_t + (dh from step t+1)
        dan = dh_t ⊙ (1 − z) ⊙ (1 − n²),  daz = dh_t ⊙ (h_{t−1} − n) ⊙ z(1 − z),
        dar = dan ⊙ hn ⊙ r(1 − r)
        da_h = [dar, daz, dan ⊙ r]  (grads of W_hh h + b_hh),  da_i = [dar, daz, dan]
        dh_{t−1} = dh_t ⊙ z + W_hhᵀ da_h
    then, once for all steps: dW_hh = Σ da_h h_{t−1}ᵀ, db_hh = Σ da_h, and dx, dW_ih, db_ih
    from da_i — each one GEMM over all steps, after the step gradients [da_h; dan] and the
    states are laid out features first, (4H, T·B) and (H, T·B), once.
    Returns (dx, dh0, dW_ih, dW_hh, db_ih, db_hh)."""
    sched, A, HN, S = ctx.sched, ctx.A, ctx.HN, ctx.S
    dout, dh = _sorted_douts(sched, *douts)
    dout, dh = _columns(dout), np.ascontiguousarray(dh.T)                # (T, H, B), (H, B)
    T, H, B = dout.shape
    H2, H3 = 2 * H, 3 * H
    D = (np.zeros if sched.valid is not None else recycle.empty)((T, 4 * H, B), dout.dtype)
    w_hhT = _transposed(ctx.w_hh)                                         # (H, 3H)
    for t in reversed(sched.order):
        p, q, n = *sched.states(t), sched.sizes[t]
        dh_t = dh[:, :n]
        dh_t += dout[t, :, :n]
        a, d, h_prev = A[t, :, :n], D[t, :, :n], S[p, :, :n]
        r, z, nt = a[:H], a[H:H2], a[H2:]
        dan = np.multiply(dh_t, 1 - z, out=d[H3:])
        dan *= 1 - nt * nt                                                # dan
        np.multiply(dan, r, out=d[H2:H3])                                 # dan ⊙ r
        np.multiply(dan, HN[t, :, :n], out=d[:H])                         # dr
        np.subtract(h_prev, nt, out=d[H:H2])
        d[H:H2] *= dh_t                                                   # dz
        s = a[:H2]
        d[:H2] *= s
        d[:H2] *= 1 - s                                                   # through σ
        dh_t *= z
        dh_t += w_hhT @ d[:H3]                                            # dh_{t−1}
    D2 = _features_first(D)                                               # (4H, T·B)
    X2 = ctx.x.reshape(T * B, ctx.x.shape[2])
    w_ih = ctx.w_ih
    dw_hh = D2[:H3] @ _features_first(sched.before(S)).T                  # Σ da_h h_{t−1}ᵀ
    dx = D2[:H2].T @ w_ih[:H2]                                            # r, z blocks
    dx += D2[H3:].T @ w_ih[H2:]                                           # n block: dan
    dw_ih = np.concatenate([D2[:H2] @ X2, D2[H3:] @ X2])
    sums = D2 @ np.ones(T * B, D2.dtype)                  # Σ over steps and batch, as a GEMV
    return (sched.unsort(dx.reshape(ctx.x.shape), 1),
            sched.unsort(dh.T, 0).copy() if ctx.has_h0 else None, dw_ih, dw_hh,
            np.concatenate([sums[:H2], sums[H3:]]) if ctx.has_b_ih else None,
            sums[:H3].copy() if ctx.has_b_hh else None)


rnn_tanh_layer = defop(rnn_tanh_layer_forward, rnn_layer_backward)
rnn_relu_layer = defop(rnn_relu_layer_forward, rnn_layer_backward)
lstm_layer = defop(lstm_layer_forward, lstm_layer_backward)
gru_layer = defop(gru_layer_forward, gru_layer_backward)
