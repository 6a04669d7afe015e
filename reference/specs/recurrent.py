"""Registry entries for the recurrent family: the four cells and the four single-layer ops.

Cells are checked against torch's own cell ops (``torch.rnn_tanh_cell``, ``torch.lstm_cell``,
...). Those take batched input only, so unbatched cases add and remove the batch axis on the
torch side, as ``torch.nn.RNNCell`` does. ``lstm_cell`` takes ``hx = (h, c)``; the harness
differentiates flat array arguments, so the spec runs it through a thin flat adapter
(``lstm_cell(x, (h, c), ...)`` forward and backward, unchanged), built by one builder for the
fast edition and for its ``textbook=`` twin.

A single-layer op (one direction) is checked against ``torch.nn.LSTM``/``GRU``/``RNN`` run
with ``torch.func.functional_call`` on our weights: ``reverse=True`` is the ``_reverse``
direction of a bidirectional module whose forward direction has zero weights, and
``lengths=`` goes through ``pack_padded_sequence`` / ``pad_packed_sequence`` — exactly how
torch's modules treat a padded batch.
"""
from __future__ import annotations

import functools

import numpy as np
import torch
from hypothesis import strategies as st
from torch.func import functional_call
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import scratchnn.functional as F
import scratchnn.textbook as T
from reference.registry import Case, OpSpec, Reject, register
from reference.values import make, seeds
from scratchnn.autodiff import defop

GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}


# ---- cells --------------------------------------------------------------------------------------

@functools.cache
def flat_lstm_cell(op):
    """``op`` (an lstm_cell edition) with hx = (h, c) spread into two arguments, for the
    harness: the same forward and backward, only the state tuple flattened. One builder for
    both editions; the cell is plain (``F.lstm_cell is T.lstm_cell``), so both calls below
    return the one adapter and the harness sees one function, as for the other cells."""
    def lstm_cell_flat_forward(input, h, c, w_ih, w_hh, b_ih=None, b_hh=None):
        return op.forward(input, (h, c), w_ih, w_hh, b_ih, b_hh)

    def lstm_cell_flat_backward(ctx, douts):
        dx, (dh, dc), *rest = op.backward(ctx, douts)
        return (dx, dh, dc, *rest)

    return defop(lstm_cell_flat_forward, lstm_cell_flat_backward, name="lstm_cell")


lstm_cell_flat = flat_lstm_cell(F.lstm_cell)
textbook_lstm_cell_flat = flat_lstm_cell(T.lstm_cell)


def _batched(f):
    """Call torch's (batched-only) cell op on unbatched input by adding the batch axis."""
    def call(x, *states_and_weights, n_states=1):
        states, weights = states_and_weights[:n_states], states_and_weights[n_states:]
        if x.dim() == 1:
            out = f(x[None], *[s[None] for s in states], *weights)
            return tuple(o[0] for o in out) if isinstance(out, tuple) else out[0]
        return f(x, *states, *weights)
    return call


_torch_rnn_tanh_cell = _batched(torch.rnn_tanh_cell)
_torch_rnn_relu_cell = _batched(torch.rnn_relu_cell)
_torch_gru_cell = _batched(torch.gru_cell)
_torch_lstm_cell = _batched(lambda x, h, c, *w: torch.lstm_cell(x, (h, c), *w))


def cell_cases(kind: str):
    G = GATES[kind]

    def cases(regime: str):
        @st.composite
        def draw(d):
            I, H = d(st.integers(1, 4)), d(st.integers(1, 4))
            B = d(st.sampled_from([None, 0, 1, 2, 3]))             # None: unbatched
            lead = () if B is None else (B,)
            rng = np.random.default_rng(d(seeds))
            x = make(lead + (I,), rng, regime)
            states = [make(lead + (H,), rng, regime) for _ in range(2 if kind == "lstm" else 1)]
            w_ih = make((G * H, I), rng, regime) / np.sqrt(I)
            w_hh = make((G * H, H), rng, regime) / np.sqrt(H)
            bias = d(st.sampled_from(["both", "none", "ih", "hh"]))
            b_ih = make((G * H,), rng, regime) if bias in ("both", "ih") else None
            b_hh = make((G * H,), rng, regime) if bias in ("both", "hh") else None
            args = (x, *states, w_ih, w_hh)
            if bias == "none" and d(st.booleans()):
                return Case(args)                                   # biases left to defaults
            return Case(args + (b_ih, b_hh))
        return draw()
    return cases


def _rnn_cell_rejects() -> list[Reject]:
    x, h, w_ih, w_hh = np.zeros((2, 3)), np.zeros((2, 4)), np.zeros((4, 3)), np.zeros((4, 4))
    return [
        Reject((x, h, np.zeros((4, 5)), w_hh), {}, "w_ih"),            # input_size mismatch
        Reject((x, np.zeros((3, 4)), w_ih, w_hh), {}, "hx"),            # batch mismatch
        Reject((x, h, w_ih, np.zeros((4, 5))), {}, "w_hh"),
        Reject((x, h, w_ih, w_hh, np.zeros(5)), {}, "b_ih"),
        Reject((np.zeros((2, 2, 3)), h, w_ih, w_hh), {}, "input"),
        Reject((x.astype(np.float32), h, w_ih, w_hh), {}, "w_ih"),     # no silent promotion
    ]


register(OpSpec(
    "rnn_tanh_cell", F.rnn_tanh_cell, _torch_rnn_tanh_cell, cell_cases("rnn_tanh"),
    diff=(0, 1, 2, 3, 4, 5), family="recurrent", rejects=_rnn_cell_rejects()))
register(OpSpec(
    "rnn_relu_cell", F.rnn_relu_cell, _torch_rnn_relu_cell, cell_cases("rnn_relu"),
    diff=(0, 1, 2, 3, 4, 5), regimes=("away", "ties"), family="recurrent",
    rejects=_rnn_cell_rejects(),
    notes="ties: relu'(0) = 0 at an exactly-zero pre-activation, as torch"))
register(OpSpec(
    "gru_cell", F.gru_cell, _torch_gru_cell, cell_cases("gru"),
    diff=(0, 1, 2, 3, 4, 5), family="recurrent",
    rejects=[Reject((np.zeros((2, 3)), np.zeros((2, 4)), np.zeros((12, 5)), np.zeros((12, 4))),
                    {}, "w_ih"),
             Reject((np.zeros((2, 3)), np.zeros((2, 5)), np.zeros((12, 3)), np.zeros((12, 4))),
                    {}, "hx")]))
register(OpSpec(
    "lstm_cell", lstm_cell_flat, lambda x, h, c, *w: _torch_lstm_cell(x, h, c, *w, n_states=2),
    cell_cases("lstm"), diff=(0, 1, 2, 3, 4, 5, 6), family="recurrent",
    rejects=[Reject((np.zeros((2, 3)), np.zeros((2, 4)), np.zeros((2, 5)), np.zeros((16, 3)),
                     np.zeros((16, 4))), {}, "hx[1]"),
             Reject((np.zeros((2, 3)), np.zeros((2, 4)), np.zeros((2, 4)), np.zeros((12, 3)),
                     np.zeros((12, 4))), {}, "w_hh")],
    textbook=textbook_lstm_cell_flat,
    notes="hx = (h, c) spread into two arguments by a flat adapter"))


# ---- single-layer sequence ops ------------------------------------------------------------------

_MODULES: dict = {}


def _torch_module(kind: str, I: int, H: int, P: int, bias: bool, device, dtype):
    """A bidirectional one-layer torch module whose parameters functional_call replaces."""
    key = (kind, I, H, P, bias, str(device), dtype)
    if key not in _MODULES:
        if kind == "lstm":
            m = torch.nn.LSTM(I, H, bias=bias, bidirectional=True, proj_size=P)
        elif kind == "gru":
            m = torch.nn.GRU(I, H, bias=bias, bidirectional=True)
        else:
            m = torch.nn.RNN(I, H, nonlinearity=kind[4:], bias=bias, bidirectional=True)
        _MODULES[key] = m.to(device=device, dtype=dtype)
    return _MODULES[key]


def torch_layer(kind: str):
    """torch's module on our weights, one direction: same signature as our layer op."""
    lstm = kind == "lstm"

    def f(x, *args, lengths=None, reverse=False):
        n_states = 2 if lstm else 1
        states, w = list(args[:n_states]), list(args[n_states:]) + [None] * 5
        w_ih, w_hh, b_ih, b_hh, w_hr = w[:5] if lstm else w[:4] + [None]
        T, B, I = x.shape
        H, P = w_hh.shape[0] // GATES[kind], w_hh.shape[1]
        bias = b_ih is not None or b_hh is not None
        m = _torch_module(kind, I, H, P if w_hr is not None else 0, bias, x.device, x.dtype)
        mine = {"weight_ih": w_ih, "weight_hh": w_hh, "bias_ih": b_ih, "bias_hh": b_hh,
                "weight_hr": w_hr}
        params = {}
        for name, p in m.named_parameters():
            base, rev = name.split("_l0")[0], name.endswith("_reverse")
            t = mine[base] if rev == reverse else None
            params[name] = t if t is not None else torch.zeros_like(p)   # the other direction
        sizes = [P, H] if lstm else [P]                               # and missing biases: 0
        hx = []
        for s, size in zip(states, sizes):
            s = torch.zeros((B, size), dtype=x.dtype, device=x.device) if s is None else s
            z = torch.zeros_like(s)
            hx.append(torch.stack([z, s] if reverse else [s, z]))     # (2 directions, B, ·)
        inp = x if lengths is None else pack_padded_sequence(
            x, torch.as_tensor(lengths).cpu(), enforce_sorted=False)
        out, h_n = functional_call(m, params, (inp, tuple(hx) if lstm else hx[0]))
        if lengths is not None:
            out, _ = pad_packed_sequence(out, total_length=T)
        d = 1 if reverse else 0
        out = out[..., d * P:(d + 1) * P]
        return (out, h_n[0][d], h_n[1][d]) if lstm else (out, h_n[d])
    return f


def layer_cases(kind: str):
    G = GATES[kind]
    lstm = kind == "lstm"

    def cases(regime: str):
        @st.composite
        def draw(d):
            T, B = d(st.integers(1, 5)), d(st.sampled_from([0, 1, 2, 3]))
            I, H = d(st.integers(1, 3)), d(st.integers(1, 4))
            P = d(st.integers(0, H - 1)) if lstm and H > 1 else 0
            out_size = P or H
            rng = np.random.default_rng(d(seeds))
            x = make((T, B, I), rng, regime)
            h0 = make((B, out_size), rng, regime) if d(st.booleans()) else None
            states = [h0]
            if lstm:
                states.append(make((B, H), rng, regime) if d(st.booleans()) else None)
            w = [make((G * H, I), rng, regime) / np.sqrt(I),
                 make((G * H, out_size), rng, regime) / np.sqrt(out_size)]
            bias = d(st.sampled_from(["both", "none", "ih", "hh"]))
            w += [make((G * H,), rng, regime) if bias in ("both", "ih") else None,
                  make((G * H,), rng, regime) if bias in ("both", "hh") else None]
            if lstm:
                w.append(make((P, H), rng, regime) / np.sqrt(H) if P else None)
            kw = {"reverse": d(st.booleans())}
            if B and d(st.booleans()):
                kw["lengths"] = [d(st.integers(1, T)) for _ in range(B)]
            return Case((x, *states, *w), kw)
        return draw()
    return cases


def _layer_rejects(kind: str) -> list[Reject]:
    G = GATES[kind]
    lstm = kind == "lstm"
    x, w_ih, w_hh = np.zeros((3, 2, 4)), np.zeros((G * 5, 4)), np.zeros((G * 5, 5))
    st_ = (None, None) if lstm else (None,)
    return [
        Reject((x, *st_, np.zeros((G * 5, 3)), w_hh), {}, "w_ih", torch_rejects=False),
        Reject((x, np.zeros((3, 5)), *st_[1:], w_ih, w_hh), {}, "h0", torch_rejects=False),
        Reject((x, *st_, w_ih, w_hh), {"lengths": [3, 0]}, "lengths", torch_rejects=False),
        Reject((x, *st_, w_ih, w_hh), {"lengths": [3, 4]}, "lengths", torch_rejects=False),
        Reject((x, *st_, w_ih, w_hh), {"lengths": [3]}, "lengths", torch_rejects=False),
        Reject((np.zeros((0, 2, 4)), *st_, w_ih, w_hh), {}, "input", torch_rejects=False),
        Reject((x[0], *st_, w_ih, w_hh), {}, "input", torch_rejects=False),
    ] + ([Reject((x, None, np.zeros((2, 4)), w_ih, w_hh), {}, "c0", torch_rejects=False),
          Reject((x, None, None, w_ih, np.zeros((20, 2)), None, None, np.zeros((2, 4))), {},
                 "w_hr", torch_rejects=False)] if lstm else [])


for _kind, _op in (("rnn_tanh", F.rnn_tanh_layer), ("rnn_relu", F.rnn_relu_layer),
                   ("lstm", F.lstm_layer), ("gru", F.gru_layer)):
    register(OpSpec(
        f"{_kind}_layer", _op, torch_layer(_kind), layer_cases(_kind),
        diff=tuple(range(8 if _kind == "lstm" else 6)),
        regimes=("away",) if _kind == "rnn_relu" else ("normal",), family="recurrent",
        examples=0.5, rejects=_layer_rejects(_kind),
        notes="torch.nn module via functional_call; reverse = the _reverse direction; "
              "lengths via pack_padded_sequence"))
