"""Recurrent networks, the textbook edition: RNN (tanh/relu), LSTM and GRU cells, and the
layers that run a cell over a whole sequence.

A cell is one time step, torch's ``torch.rnn_tanh_cell`` / ``lstm_cell`` / ``gru_cell`` (gate
rows: LSTM ``i, f, g, o``, GRU ``r, z, n``)::

    RNN   h' = tanh(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh)
    LSTM  [i f g o] = x W_ihᵀ + b_ih + h W_hhᵀ + b_hh;  c' = σ(f) c + σ(i) tanh(g);
          h' = σ(o) tanh(c')
    GRU   r, z = σ(·);  n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn));  h' = (1 − z) n + z h

A layer is the cell in a loop over time, keeping each step's context; its backward,
backpropagation through time (BPTT), is the same loop run backwards calling the cell's
backward, carrying dh (and for the LSTM dc) from step t to step t − 1 and adding up the
weight gradients of every step. Nothing else: the fast edition
(:mod:`scratchnn.functional.recurrent`) computes the same numbers with one big GEMM for the
input projection and the gate gradients; the cells are plain already and live only here.

Variable lengths (``lengths=``, torch's packed sequences): sequence b is ``x[:lengths[b], b]``.
At a step t ≥ lengths[b] the cell still runs on row b, but the row keeps its state (masking:
``h_t = where(running, h', h_{t−1})``), its output is zero and it gets no gradient. Running
backwards (``reverse=True``) sequence b starts at its own last step lengths[b] − 1.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..autodiff import defop
from ._recurrent_args import check_cell, check_layer

Array = np.ndarray

__all__ = ["rnn_tanh_cell", "rnn_relu_cell", "lstm_cell", "gru_cell",
           "rnn_tanh_layer", "rnn_relu_layer", "lstm_layer", "gru_layer",
           "rnn_tanh_cell_forward", "rnn_relu_cell_forward", "rnn_cell_backward",
           "lstm_cell_forward", "lstm_cell_backward", "gru_cell_forward", "gru_cell_backward",
           "rnn_tanh_layer_forward", "rnn_relu_layer_forward", "rnn_layer_backward",
           "lstm_layer_forward", "lstm_layer_backward", "gru_layer_forward", "gru_layer_backward",
           "rnn_step", "lstm_step", "gru_step"]


# ------------------------------------------------------------------------------------------------
# the pieces every cell shares
# ------------------------------------------------------------------------------------------------

def affine(x: Array, w: Array, b: Array | None) -> Array:
    """x Wᵀ + b (b may be None)."""
    y = x @ w.T
    return y if b is None else y + b


def sigmoid(a: Array) -> Array:
    """σ(a) = 1 / (1 + e^{−a}), computed as ½ tanh(a/2) + ½: the same number, and no
    exponential that could overflow for a large negative a."""
    return 0.5 * np.tanh(0.5 * a) + 0.5


def linear_grads(x: Array, h: Array, w_ih: Array, w_hh: Array, da_i: Array, da_h: Array,
                 has_b_ih: bool, has_b_hh: bool) -> tuple:
    """The gradients of the two affine maps of a cell, a_i = x W_ihᵀ + b_ih and
    a_h = h W_hhᵀ + b_hh, from da_i and da_h (as linear's backward):

        dx = da_i W_ih,  dh = da_h W_hh,  dW_ih = da_iᵀ x,  dW_hh = da_hᵀ h,  db = Σ_B da

    For a batch (B, ·) and for one unbatched vector (·)."""
    x2, h2 = x.reshape(-1, x.shape[-1]), h.reshape(-1, h.shape[-1])       # (B, I), (B, H)
    di2, dh2 = da_i.reshape(-1, da_i.shape[-1]), da_h.reshape(-1, da_h.shape[-1])
    return (da_i @ w_ih, da_h @ w_hh, di2.T @ x2, dh2.T @ h2,
            di2.sum(0) if has_b_ih else None, dh2.sum(0) if has_b_hh else None)


# ------------------------------------------------------------------------------------------------
# cells: one time step. Each cell's forward checks its arguments and calls its step; a layer
# checks once and calls the step T times.
# ------------------------------------------------------------------------------------------------

class RNNCellCtx(NamedTuple):
    x: Array
    h: Array
    w_ih: Array
    w_hh: Array
    h_new: Array                  # both derivatives are written in the output
    relu: bool
    has_b_ih: bool
    has_b_hh: bool


def rnn_step(x: Array, h: Array, w_ih: Array, w_hh: Array, b_ih: Array | None,
             b_hh: Array | None, relu: bool = False) -> tuple[Array, RNNCellCtx]:
    """One RNN step, arguments already checked: h' = tanh(a) (or relu(a)),
    a = x W_ihᵀ + b_ih + h W_hhᵀ + b_hh."""
    a = affine(x, w_ih, b_ih) + affine(h, w_hh, b_hh)                    # (B, H)
    h_new = np.maximum(a, 0) if relu else np.tanh(a)
    return h_new, RNNCellCtx(x, h, w_ih, w_hh, h_new, relu, b_ih is not None, b_hh is not None)


def rnn_tanh_cell_forward(input: Array, hx: Array, w_ih: Array, w_hh: Array,
                          b_ih: Array | None = None, b_hh: Array | None = None
                          ) -> tuple[Array, RNNCellCtx]:
    """h' = tanh(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh)

    Shapes:  x (B, I) or (I,), h (B, H) or (H,), W_ih (H, I), W_hh (H, H), b (H) -> h' like h
    Saves:   x, h, the weights and h' (tanh' = 1 − h'²).
    Torch:   torch.rnn_tanh_cell (torch.nn.RNNCell)
    """
    check_cell("rnn_tanh_cell", 1, input, {"hx": hx}, w_ih, w_hh, b_ih, b_hh)
    return rnn_step(input, hx, w_ih, w_hh, b_ih, b_hh, relu=False)


def rnn_relu_cell_forward(input: Array, hx: Array, w_ih: Array, w_hh: Array,
                          b_ih: Array | None = None, b_hh: Array | None = None
                          ) -> tuple[Array, RNNCellCtx]:
    """h' = relu(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh)

    Shapes:  as rnn_tanh_cell.
    Saves:   x, h, the weights and h' (relu' = [h' > 0], 0 at the kink as torch).
    Torch:   torch.rnn_relu_cell (torch.nn.RNNCell(nonlinearity='relu'))
    """
    check_cell("rnn_relu_cell", 1, input, {"hx": hx}, w_ih, w_hh, b_ih, b_hh)
    return rnn_step(input, hx, w_ih, w_hh, b_ih, b_hh, relu=True)


def rnn_cell_backward(ctx: RNNCellCtx, dh_new: Array) -> tuple:
    """da = dh' ⊙ (1 − h'²)   (relu: dh' ⊙ [h' > 0])
    dx = da W_ih,  dh = da W_hh,  dW_ih = daᵀ x,  dW_hh = daᵀ h,  db_ih = db_hh = Σ_B da
    Returns (dx, dh, dW_ih, dW_hh, db_ih, db_hh)."""
    da = dh_new * (ctx.h_new > 0) if ctx.relu else dh_new * (1 - ctx.h_new * ctx.h_new)
    return linear_grads(ctx.x, ctx.h, ctx.w_ih, ctx.w_hh, da, da, ctx.has_b_ih, ctx.has_b_hh)


class LSTMCellCtx(NamedTuple):
    x: Array
    h: Array
    c: Array
    w_ih: Array
    w_hh: Array
    i: Array                      # the activated gates (σ' and tanh' are written in them)
    f: Array
    g: Array
    o: Array
    tanh_c: Array                 # tanh(c'), for dh'/dc' and do
    has_b_ih: bool
    has_b_hh: bool


def lstm_step(x: Array, h: Array, c: Array, w_ih: Array, w_hh: Array, b_ih: Array | None,
              b_hh: Array | None) -> tuple[tuple[Array, Array], LSTMCellCtx]:
    """One LSTM step, arguments already checked (h may be a projected state (B, P), W_hh then
    (4H, P): the step's math does not change)."""
    H = w_hh.shape[0] // 4
    a = affine(x, w_ih, b_ih) + affine(h, w_hh, b_hh)                    # (B, 4H)
    i, f, o = (sigmoid(a[..., k * H:(k + 1) * H]) for k in (0, 1, 3))     # (B, H) each
    g = np.tanh(a[..., 2 * H:3 * H])
    c_new = f * c + i * g                       # forget part of the old memory, write new
    tanh_c = np.tanh(c_new)
    h_new = o * tanh_c                          # the output gate reads the memory out
    return (h_new, c_new), LSTMCellCtx(x, h, c, w_ih, w_hh, i, f, g, o, tanh_c,
                                       b_ih is not None, b_hh is not None)


def lstm_cell_forward(input: Array, hx: tuple[Array, Array], w_ih: Array, w_hh: Array,
                      b_ih: Array | None = None, b_hh: Array | None = None
                      ) -> tuple[tuple[Array, Array], LSTMCellCtx]:
    """[i f g o] = x W_ihᵀ + b_ih + h W_hhᵀ + b_hh      (4 blocks of H columns)
    i, f, o = σ(·),  g = tanh(·)
    c' = f ⊙ c + i ⊙ g,   h' = o ⊙ tanh(c')

    Shapes:  x (B, I) or (I,), hx = (h, c) each (B, H) or (H,), W_ih (4H, I), W_hh (4H, H),
             b (4H) -> (h', c') each like h
    Saves:   x, h, c, the weights, the activated gates i, f, g, o and tanh(c').
    Torch:   torch.lstm_cell (torch.nn.LSTMCell)
    """
    fn = "lstm_cell"
    if not isinstance(hx, (tuple, list)) or len(hx) != 2:
        raise TypeError(f"{fn}(): parameter 'hx' must be a tuple (h, c) of two arrays, "
                        f"got {type(hx).__name__}")
    h, c = hx
    check_cell(fn, 4, input, {"hx[0]": h, "hx[1]": c}, w_ih, w_hh, b_ih, b_hh)
    return lstm_step(input, h, c, w_ih, w_hh, b_ih, b_hh)


def lstm_cell_backward(ctx: LSTMCellCtx, douts: tuple[Array, Array]) -> tuple:
    """dc = dc' + dh' ⊙ o ⊙ (1 − tanh²c')            (c' feeds h' and the next step)
    do = dh' ⊙ tanh c',  di = dc ⊙ g,  df = dc ⊙ c,  dg = dc ⊙ i,  dc_prev = dc ⊙ f
    da = [di ⊙ i(1−i), df ⊙ f(1−f), dg ⊙ (1−g²), do ⊙ o(1−o)]
    dx = da W_ih,  dh = da W_hh,  dW_ih = daᵀ x,  dW_hh = daᵀ h,  db_ih = db_hh = Σ_B da
    Returns (dx, (dh, dc), dW_ih, dW_hh, db_ih, db_hh)."""
    dh_new, dc_new = douts
    i, f, g, o, tc = ctx.i, ctx.f, ctx.g, ctx.o, ctx.tanh_c
    dc = dc_new + dh_new * o * (1 - tc * tc)          # both paths into c'
    da = np.concatenate([dc * g * i * (1 - i), dc * ctx.c * f * (1 - f),
                         dc * i * (1 - g * g), dh_new * tc * o * (1 - o)], axis=-1)  # (B, 4H)
    dx, dh, dw_ih, dw_hh, db_ih, db_hh = linear_grads(ctx.x, ctx.h, ctx.w_ih, ctx.w_hh, da, da,
                                                      ctx.has_b_ih, ctx.has_b_hh)
    return dx, (dh, dc * f), dw_ih, dw_hh, db_ih, db_hh


class GRUCellCtx(NamedTuple):
    x: Array
    h: Array
    w_ih: Array
    w_hh: Array
    r: Array                      # activated gates
    z: Array
    n: Array
    hn: Array                     # W_hn h + b_hn, which r multiplies (dr needs it)
    has_b_ih: bool
    has_b_hh: bool


def gru_step(x: Array, h: Array, w_ih: Array, w_hh: Array, b_ih: Array | None,
             b_hh: Array | None) -> tuple[Array, GRUCellCtx]:
    """One GRU step, arguments already checked."""
    H = w_hh.shape[0] // 3
    ai, ah = affine(x, w_ih, b_ih), affine(h, w_hh, b_hh)               # (B, 3H) each
    r = sigmoid(ai[..., :H] + ah[..., :H])
    z = sigmoid(ai[..., H:2 * H] + ah[..., H:2 * H])
    hn = ah[..., 2 * H:]                                                  # W_hn h + b_hn
    n = np.tanh(ai[..., 2 * H:] + r * hn)
    h_new = n + z * (h - n)                                               # (1 − z) n + z h
    return h_new, GRUCellCtx(x, h, w_ih, w_hh, r, z, n, hn, b_ih is not None, b_hh is not None)


def gru_cell_forward(input: Array, hx: Array, w_ih: Array, w_hh: Array,
                     b_ih: Array | None = None, b_hh: Array | None = None
                     ) -> tuple[Array, GRUCellCtx]:
    """[xr xz xn] = x W_ihᵀ + b_ih,   [hr hz hn] = h W_hhᵀ + b_hh     (3 blocks of H)
    r = σ(xr + hr),  z = σ(xz + hz),  n = tanh(xn + r ⊙ hn)
    h' = (1 − z) ⊙ n + z ⊙ h

    The reset gate multiplies hn = W_hn h + b_hn (bias included), as torch does.
    Shapes:  x (B, I) or (I,), h (B, H) or (H,), W_ih (3H, I), W_hh (3H, H), b (3H) -> h' like h
    Saves:   x, h, the weights, the activated gates r, z, n and hn.
    Torch:   torch.gru_cell (torch.nn.GRUCell)
    """
    check_cell("gru_cell", 3, input, {"hx": hx}, w_ih, w_hh, b_ih, b_hh)
    return gru_step(input, hx, w_ih, w_hh, b_ih, b_hh)


def gru_cell_backward(ctx: GRUCellCtx, dh_new: Array) -> tuple:
    """dan = dh' ⊙ (1 − z) ⊙ (1 − n²)               (through n's tanh)
    daz = dh' ⊙ (h − n) ⊙ z(1 − z),   dar = dan ⊙ hn ⊙ r(1 − r)
    da_i = [dar, daz, dan],   da_h = [dar, daz, dan ⊙ r]
    dx = da_i W_ih,  dh = dh' ⊙ z + da_h W_hh,  dW_ih = da_iᵀ x,  dW_hh = da_hᵀ h,
    db_ih = Σ_B da_i,  db_hh = Σ_B da_h
    Returns (dx, dh, dW_ih, dW_hh, db_ih, db_hh)."""
    r, z, n = ctx.r, ctx.z, ctx.n
    dan = dh_new * (1 - z) * (1 - n * n)
    daz = dh_new * (ctx.h - n) * z * (1 - z)
    dar = dan * ctx.hn * r * (1 - r)
    da_i = np.concatenate([dar, daz, dan], axis=-1)                       # (B, 3H)
    da_h = np.concatenate([dar, daz, dan * r], axis=-1)                   # r scales hn
    dx, dh, dw_ih, dw_hh, db_ih, db_hh = linear_grads(ctx.x, ctx.h, ctx.w_ih, ctx.w_hh, da_i,
                                                      da_h, ctx.has_b_ih, ctx.has_b_hh)
    return dx, dh + dh_new * z, dw_ih, dw_hh, db_ih, db_hh               # + the z ⊙ h path


rnn_tanh_cell = defop(rnn_tanh_cell_forward, rnn_cell_backward)
rnn_relu_cell = defop(rnn_relu_cell_forward, rnn_cell_backward)
lstm_cell = defop(lstm_cell_forward, lstm_cell_backward)
gru_cell = defop(gru_cell_forward, gru_cell_backward)


# ------------------------------------------------------------------------------------------------
# layers: the cell in a loop over time; BPTT: the cell's backward in the reverse loop
# ------------------------------------------------------------------------------------------------

def time_steps(T: int, reverse: bool) -> range:
    """The order the steps run in: 0 … T−1, or T−1 … 0 for the reverse direction."""
    return range(T - 1, -1, -1) if reverse else range(T)


def running(lengths: Array | None, T: int, B: int) -> Array:
    """(T, B, 1) bool: sequence b is still running at step t (t < lengths[b])."""
    if lengths is None:
        return np.ones((T, B, 1), bool)
    return np.arange(T)[:, None, None] < np.asarray(lengths)[None, :, None]


def add_grads(total: list, step: tuple) -> list:
    """Σ over steps of the weight gradients (None stays None: that weight was not given)."""
    return [g if acc is None else acc + g for acc, g in zip(total, step)]


class LayerCtx(NamedTuple):
    x: Array                      # (T, B, I), for dx's shape and dtype
    steps: list                   # steps[t]: the cell's ctx at time t (LSTM: (ctx, h before W_hr))
    running: Array                # (T, B, 1) bool mask
    reverse: bool
    w_hr: Array | None            # LSTM projection
    has_h0: bool
    has_c0: bool


def unroll(step, input: Array, h0: Array | None, size: int, weights: tuple, lengths,
           reverse: bool, **kw) -> tuple[tuple[Array, Array], LayerCtx]:
    """The forward of a one-state layer (RNN, GRU): h_t = step(x_t, h_{t−1}), out_t = h_t."""
    T, B, _ = input.shape
    mask = running(lengths, T, B)
    h = np.zeros((B, size), input.dtype) if h0 is None else h0
    out, steps = np.zeros((T, B, size), input.dtype), [None] * T
    for t in time_steps(T, reverse):
        h_new, steps[t] = step(input[t], h, *weights, **kw)               # the cell's forward
        h = np.where(mask[t], h_new, h)         # a finished sequence keeps its state
        out[t] = np.where(mask[t], h_new, 0)    # and outputs zeros (pad_packed_sequence)
    return (out, h), LayerCtx(input, steps, mask, reverse, None, h0 is not None, False)


def bptt(cell_backward, ctx: LayerCtx, douts: tuple[Array, Array]) -> tuple:
    """Backpropagation through time for a one-state layer: the steps in reverse, each the
    cell's backward; dh carries ∂L/∂h_t back to step t − 1."""
    dout, dh = douts
    dx, dw = np.zeros(ctx.x.shape, ctx.x.dtype), [None] * 4
    for t in reversed(time_steps(len(ctx.steps), ctx.reverse)):
        m = ctx.running[t]
        dh = dh + np.where(m, dout[t], 0)                # h_t feeds out_t and step t + 1
        g = cell_backward(ctx.steps[t], np.where(m, dh, 0))         # the cell's backward
        dx[t] = g[0]
        dh = g[1] + np.where(m, 0, dh)          # masked: h_{t−1} passed straight through
        dw = add_grads(dw, g[2:])
    return (dx, dh if ctx.has_h0 else None, *dw)


def _rnn_layer(fn: str, relu: bool, input, h0, w_ih, w_hh, b_ih, b_hh, lengths, reverse):
    """Check once, then unroll the RNN cell (tanh, or relu) over time."""
    H, _, lengths = check_layer(fn, 1, input, {"h0": h0}, w_ih, w_hh, b_ih, b_hh, None,
                                lengths, reverse)
    return unroll(rnn_step, input, h0, H, (w_ih, w_hh, b_ih, b_hh), lengths, reverse,
                  relu=relu)


def rnn_tanh_layer_forward(input: Array, h0: Array | None, w_ih: Array, w_hh: Array,
                           b_ih: Array | None = None, b_hh: Array | None = None, *,
                           lengths=None, reverse: bool = False
                           ) -> tuple[tuple[Array, Array], LayerCtx]:
    """h_t = rnn_tanh_cell(x_t, h_{t−1}) = tanh(x_t W_ihᵀ + b_ih + h_{t−1} W_hhᵀ + b_hh),
    t = 0 … T−1 (T−1 … 0 with ``reverse=True``);  out_t = h_t,  h_n = the last h_t.

    Shapes:  x (T, B, I), h0 (B, H) or None (zeros), W_ih (H, I), W_hh (H, H), b (H),
             lengths (B) ints in [1, T] or None  ->  out (T, B, H), h_n (B, H)
    Saves:   every step's cell context (x_t, h_{t−1}, h_t) and the running mask.
    Torch:   one direction of one layer of torch.nn.RNN (packed input when lengths is given)
    """
    return _rnn_layer("rnn_tanh_layer", False, input, h0, w_ih, w_hh, b_ih, b_hh, lengths,
                      reverse)


def rnn_relu_layer_forward(input: Array, h0: Array | None, w_ih: Array, w_hh: Array,
                           b_ih: Array | None = None, b_hh: Array | None = None, *,
                           lengths=None, reverse: bool = False
                           ) -> tuple[tuple[Array, Array], LayerCtx]:
    """h_t = rnn_relu_cell(x_t, h_{t−1}) = relu(x_t W_ihᵀ + b_ih + h_{t−1} W_hhᵀ + b_hh)

    Shapes:  as rnn_tanh_layer.
    Saves:   every step's cell context and the running mask.
    Torch:   one direction of one layer of torch.nn.RNN(nonlinearity='relu')
    """
    return _rnn_layer("rnn_relu_layer", True, input, h0, w_ih, w_hh, b_ih, b_hh, lengths,
                      reverse)


def rnn_layer_backward(ctx: LayerCtx, douts: tuple[Array, Array]) -> tuple:
    """BPTT, last step first. One step t:
        dh_t = dout_t + (dh from step t + 1)
        (dx_t, dh_{t−1}, dW…) = rnn_cell_backward(step t, dh_t);  dW = Σ_t dW_t
    Past a sequence's end (lengths) the step gets no gradient: dh passes through unchanged.
    Returns (dx, dh0, dW_ih, dW_hh, db_ih, db_hh)."""
    return bptt(rnn_cell_backward, ctx, douts)


def gru_layer_forward(input: Array, h0: Array | None, w_ih: Array, w_hh: Array,
                      b_ih: Array | None = None, b_hh: Array | None = None, *,
                      lengths=None, reverse: bool = False
                      ) -> tuple[tuple[Array, Array], LayerCtx]:
    """h_t = gru_cell(x_t, h_{t−1}):  r, z = σ(·),  n = tanh(xn + r ⊙ hn),
    h_t = (1 − z) ⊙ n + z ⊙ h_{t−1};  out_t = h_t (t = T−1 … 0 with ``reverse=True``).

    Shapes:  x (T, B, I), h0 (B, H) or None (zeros), W_ih (3H, I), W_hh (3H, H), b (3H),
             lengths (B) ints in [1, T] or None  ->  out (T, B, H), h_n (B, H)
    Saves:   every step's cell context (gates r, z, n and hn) and the running mask.
    Torch:   one direction of one layer of torch.nn.GRU (packed input when lengths is given)
    """
    H, _, lengths = check_layer("gru_layer", 3, input, {"h0": h0}, w_ih, w_hh, b_ih, b_hh,
                                None, lengths, reverse)
    return unroll(gru_step, input, h0, H, (w_ih, w_hh, b_ih, b_hh), lengths, reverse)


def gru_layer_backward(ctx: LayerCtx, douts: tuple[Array, Array]) -> tuple:
    """BPTT, last step first. One step t:
        dh_t = dout_t + (dh from step t + 1)
        (dx_t, dh_{t−1}, dW…) = gru_cell_backward(step t, dh_t);  dW = Σ_t dW_t
    Past a sequence's end (lengths) the step gets no gradient: dh passes through unchanged.
    Returns (dx, dh0, dW_ih, dW_hh, db_ih, db_hh)."""
    return bptt(gru_cell_backward, ctx, douts)


def lstm_layer_forward(input: Array, h0: Array | None, c0: Array | None, w_ih: Array,
                       w_hh: Array, b_ih: Array | None = None, b_hh: Array | None = None,
                       w_hr: Array | None = None, *, lengths=None, reverse: bool = False
                       ) -> tuple[tuple[Array, Array, Array], LayerCtx]:
    """(r_t, c_t) = lstm_cell(x_t, (h_{t−1}, c_{t−1})),   h_t = r_t W_hrᵀ  (r_t without W_hr)
    t = 0 … T−1 (T−1 … 0 with ``reverse=True``);  out_t = h_t.

    Shapes:  x (T, B, I), h0 (B, P) / c0 (B, H) or None (zeros), W_ih (4H, I), W_hh (4H, P),
             b (4H), W_hr (P, H) or None (then P = H), lengths (B) ints in [1, T] or None
             -> out (T, B, P), h_n (B, P), c_n (B, H)
    Saves:   every step's cell context (gates, c_{t−1}, tanh c_t), r_t, and the running mask.
    Torch:   one direction of one layer of torch.nn.LSTM (proj_size, packed input)
    """
    H, P, lengths = check_layer("lstm_layer", 4, input, {"h0": h0, "c0": c0}, w_ih, w_hh,
                                b_ih, b_hh, w_hr, lengths, reverse)
    T, B, _ = input.shape
    mask = running(lengths, T, B)
    h = np.zeros((B, P), input.dtype) if h0 is None else h0
    c = np.zeros((B, H), input.dtype) if c0 is None else c0
    out, steps = np.zeros((T, B, P), input.dtype), [None] * T
    for t in time_steps(T, reverse):
        (r, c_new), cell = lstm_step(input[t], h, c, w_ih, w_hh, b_ih, b_hh)   # (B, H) each
        h_new = r if w_hr is None else r @ w_hr.T                         # (B, P)
        steps[t] = (cell, r)
        h, c = np.where(mask[t], h_new, h), np.where(mask[t], c_new, c)   # finished: keep
        out[t] = np.where(mask[t], h_new, 0)
    return (out, h, c), LayerCtx(input, steps, mask, reverse, w_hr, h0 is not None,
                                 c0 is not None)


def lstm_layer_backward(ctx: LayerCtx, douts: tuple[Array, Array, Array]) -> tuple:
    """BPTT, last step first. One step t:
        dh_t = dout_t + (dh from step t + 1),   dc_t = (dc from step t + 1)
        projection:  dW_hr += dh_tᵀ r_t,  dr_t = dh_t W_hr   (else dr_t = dh_t)
        (dx_t, (dh_{t−1}, dc_{t−1}), dW…) = lstm_cell_backward(step t, (dr_t, dc_t))
    dc_{t−1} sums two paths inside the cell: c_t feeds h_t = o ⊙ tanh c_t and c_{t+1}.
    Past a sequence's end (lengths) the step gets no gradient: dh, dc pass through unchanged.
    Returns (dx, dh0, dc0, dW_ih, dW_hh, db_ih, db_hh, dW_hr)."""
    dout, dh, dc = douts
    dx, dw = np.zeros(ctx.x.shape, ctx.x.dtype), [None] * 4
    dw_hr = None if ctx.w_hr is None else np.zeros_like(ctx.w_hr)
    for t in reversed(time_steps(len(ctx.steps), ctx.reverse)):
        m, (cell, r) = ctx.running[t], ctx.steps[t]
        dh = dh + np.where(m, dout[t], 0)                # h_t feeds out_t and step t + 1
        dh_t, dc_t = np.where(m, dh, 0), np.where(m, dc, 0)
        if ctx.w_hr is not None:                         # back through h_t = r_t W_hrᵀ
            dw_hr += dh_t.T @ r                                           # (P, H)
            dh_t = dh_t @ ctx.w_hr                                        # (B, H)
        g = lstm_cell_backward(cell, (dh_t, dc_t))
        dx[t] = g[0]
        dh = g[1][0] + np.where(m, 0, dh)       # masked: the states pass straight through
        dc = g[1][1] + np.where(m, 0, dc)
        dw = add_grads(dw, g[2:])
    return (dx, dh if ctx.has_h0 else None, dc if ctx.has_c0 else None, *dw, dw_hr)


rnn_tanh_layer = defop(rnn_tanh_layer_forward, rnn_layer_backward)
rnn_relu_layer = defop(rnn_relu_layer_forward, rnn_layer_backward)
lstm_layer = defop(lstm_layer_forward, lstm_layer_backward)
gru_layer = defop(gru_layer_forward, gru_layer_backward)
