"""Recurrent modules: ``RNN``, ``LSTM``, ``GRU`` and their one-step ``RNNCell``, ``LSTMCell``,
``GRUCell``, with torch's constructor arguments, parameter names and initialisation.

A sequence module is a stack of single-layer, single-direction ops from
``scratchnn.functional.recurrent`` (``lstm_layer``, ``gru_layer``, ``rnn_tanh_layer``, ...):
layer l's input is layer l−1's output (both directions concatenated), with dropout between
layers in training mode. Backprop is explicit::

    out, (h_n, c_n) = lstm(x, (h0, c0))                  # or lstm(x): zero initial states
    dx, (dh0, dc0) = lstm.backward(dout, (dh_n, dc_n))   # any of the three may be None
    out, h_n = gru(x, lengths=lengths)                   # padded batch, as a packed sequence
    dx, dh0 = gru.backward(dout, dh_n)

``backward`` adds into every parameter's ``.grad`` and returns the gradient of the input and of
the initial state (the zero state when none was passed).

Variable lengths: ``forward(x, lengths=...)`` mirrors torch's
``pack_padded_sequence(x, lengths, enforce_sorted=False)`` → module → ``pad_packed_sequence(...,
total_length=T)``: sequence b is ``x[:lengths[b], b]``; outputs past its end are zero, ``h_n`` is
its state after its own last step, and padded steps receive no gradient.
"""
from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from .. import functional as F
from .._validate import (check_array, check_bool, check_choice, check_float, check_float_dtype,
                         check_int)
from ..autodiff import vjp
from ..functional.recurrent import check_lengths
from ..random import get_generator
from .init import uniform_
from .module import Module, Parameter

__all__ = ["RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell"]

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}
_LAYER_OPS = {"RNN_TANH": F.rnn_tanh_layer, "RNN_RELU": F.rnn_relu_layer,
              "LSTM": F.lstm_layer, "GRU": F.gru_layer}
_CELL_OPS = {"RNN_TANH": F.rnn_tanh_cell, "RNN_RELU": F.rnn_relu_cell,
             "LSTM": F.lstm_cell, "GRU": F.gru_cell}


def _dtype(fn: str, dtype: Any) -> np.dtype:
    return check_float_dtype(fn, "dtype", dtype, default=np.float32)


def _reset(module: Module, hidden_size: int, generator: Any) -> None:
    """torch's init for every recurrent parameter: U(−1/√hidden_size, 1/√hidden_size)."""
    k = 1.0 / math.sqrt(hidden_size)
    for p in module.parameters():
        uniform_(p.data, -k, k, generator=generator)


def _check_state_shape(fn: str, name: str, s: Any, shape: tuple, dtype: np.dtype) -> np.ndarray:
    check_array(fn, name, s)
    if s.dtype != dtype:
        raise TypeError(f"{fn}(): parameter '{name}' has dtype {s.dtype}, the module {dtype}")
    if s.shape != shape:
        raise ValueError(f"{fn}(): parameter '{name}' must have shape {shape}, got {s.shape}")
    return s


class RNNBase(Module):
    """What RNN, LSTM and GRU share: parameters per layer and direction, forward, backward.

    Parameters, in torch's order, for layer l and suffix '' / '_reverse':
    ``weight_ih_l{l}`` (G·H, I or D·P), ``weight_hh_l{l}`` (G·H, P), ``bias_ih_l{l}``,
    ``bias_hh_l{l}`` (G·H) and, for an LSTM with ``proj_size`` P > 0, ``weight_hr_l{l}`` (P, H);
    G = 1 (RNN), 3 (GRU), 4 (LSTM); P = proj_size or H; D = 2 if bidirectional.
    ``generator`` (a numpy Generator; default: the one ``scratchnn.manual_seed`` seeds) draws
    the initial weights and the dropout masks.
    """

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, dtype: Any = None,
                 generator: np.random.Generator | None = None) -> None:
        super().__init__()
        fn = type(self).__name__
        self.mode = mode
        self.input_size = check_int(fn, "input_size", input_size, min=0)
        self.hidden_size = check_int(fn, "hidden_size", hidden_size, min=1)
        self.num_layers = check_int(fn, "num_layers", num_layers, min=1)
        self.bias = check_bool(fn, "bias", bias)
        self.batch_first = check_bool(fn, "batch_first", batch_first)
        self.dropout = check_float(fn, "dropout", dropout, lo=0.0, hi=1.0)
        self.bidirectional = check_bool(fn, "bidirectional", bidirectional)
        self.proj_size = check_int(fn, "proj_size", proj_size, min=0)
        if self.proj_size >= self.hidden_size:
            raise ValueError(f"{fn}(): parameter 'proj_size' must be smaller than hidden_size "
                             f"({hidden_size}), got {proj_size}")
        if self.proj_size and mode != "LSTM":
            raise ValueError(f"{fn}(): parameter 'proj_size' is only supported by LSTM")
        if self.dropout > 0 and self.num_layers == 1:
            warnings.warn(f"{fn}(): dropout={dropout} acts between layers, so it does nothing "
                          f"with num_layers=1", stacklevel=2)
        self.generator = generator
        get_generator(fn, generator)                      # validates it
        dt = _dtype(fn, dtype)
        G, H = _GATES[mode], self.hidden_size
        P = self.proj_size or H
        D = 2 if self.bidirectional else 1
        for layer in range(self.num_layers):
            in_size = self.input_size if layer == 0 else D * P
            for suffix in ("", "_reverse")[:D]:
                s = f"_l{layer}{suffix}"
                self.register_parameter("weight_ih" + s, Parameter(np.empty((G * H, in_size), dt)))
                self.register_parameter("weight_hh" + s, Parameter(np.empty((G * H, P), dt)))
                if self.bias:
                    self.register_parameter("bias_ih" + s, Parameter(np.empty(G * H, dt)))
                    self.register_parameter("bias_hh" + s, Parameter(np.empty(G * H, dt)))
                if self.proj_size:
                    self.register_parameter("weight_hr" + s, Parameter(np.empty((P, H), dt)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every weight and bias ~ U(−1/√hidden_size, 1/√hidden_size), as torch."""
        _reset(self, self.hidden_size, self.generator)

    # -- helpers ---------------------------------------------------------------------------------
    @property
    def _D(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def _P(self) -> int:
        return self.proj_size or self.hidden_size

    def _layer_params(self, layer: int, direction: int) -> list[tuple[str, Parameter | None]]:
        """(name, parameter) in the layer op's argument order: w_ih, w_hh, b_ih, b_hh[, w_hr]."""
        s = f"_l{layer}{'_reverse' if direction else ''}"
        names = ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
        names += ["weight_hr"] if self.mode == "LSTM" else []
        return [(n + s, self._parameters.get(n + s)) for n in names]

    def _dropout_mask(self, shape: tuple, dtype: np.dtype) -> np.ndarray:
        """Inverted dropout: keep with probability 1 − p, scale kept values by 1/(1 − p)."""
        p = self.dropout
        if p == 1.0:
            return np.zeros(shape, dtype)
        keep = get_generator(type(self).__name__, self.generator).random(shape) >= p
        return keep.astype(dtype) * dtype.type(1.0 / (1.0 - p))

    def _states(self, fn: str, hx: Any, B: int, batched: bool, dt: np.dtype) -> list:
        """Initial states as (D·L, B, ·) arrays: [h0] or [h0, c0] (zeros when hx is None)."""
        n, P, H = self._D * self.num_layers, self._P, self.hidden_size
        lstm = self.mode == "LSTM"
        sizes = [("hx[0] (h0)", P), ("hx[1] (c0)", H)] if lstm else [("hx (h0)", P)]
        if hx is None:
            return [np.zeros((n, B, size), dt) for _, size in sizes]
        if lstm and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise TypeError(f"{fn}(): parameter 'hx' must be a tuple (h0, c0), got "
                            f"{type(hx).__name__}")
        states = list(hx) if lstm else [hx]
        out = []
        for (name, size), s in zip(sizes, states):
            shape = (n, B, size) if batched else (n, size)
            s = _check_state_shape(fn, name, s, shape, dt)
            out.append(s if batched else s[:, None])
        return out

    # -- forward / backward ----------------------------------------------------------------------
    def forward(self, input: np.ndarray, hx: Any = None, *, lengths: Any = None) -> tuple:
        """``(output, h_n)`` (LSTM: ``(output, (h_n, c_n))``), as torch.

        input (T, B, I) — (B, T, I) with batch_first — or unbatched (T, I); hx: h0 (D·L, B, P)
        (LSTM: a tuple (h0, c0), c0 (D·L, B, H)), unbatched without the B axis, None = zeros;
        lengths: B ints in [1, T] for a padded batch (see the module docstring).
        output (T, B, D·P) (batch_first: (B, T, D·P)); h_n (D·L, B, P); c_n (D·L, B, H).
        """
        fn = f"{type(self).__name__}.forward"
        check_array(fn, "input", input, ndim=(2, 3))
        dt = self.weight_ih_l0.dtype
        if input.dtype != dt:
            raise TypeError(f"{fn}(): parameter 'input' has dtype {input.dtype}, the module "
                            f"{dt}; convert one of them")
        batched = input.ndim == 3
        x = input if batched else input[:, None]
        if batched and self.batch_first:
            x = x.swapaxes(0, 1)                                          # (T, B, I)
        T, B, I = x.shape
        if I != self.input_size:
            raise ValueError(f"{fn}(): parameter 'input' must have input_size = "
                             f"{self.input_size} features (last dimension), got {I}")
        if T == 0:
            raise ValueError(f"{fn}(): parameter 'input' must have at least one time step")
        if lengths is not None:
            if not batched:
                raise ValueError(f"{fn}(): parameter 'lengths' needs a batched (3-D) input")
            lengths = check_lengths(fn, lengths, T, B)
        states = self._states(fn, hx, B, batched, dt)
        op, D = _LAYER_OPS[self.mode], self._D
        pullbacks, masks, finals = [], [], []
        for layer in range(self.num_layers):
            outs, pbs = [], []
            for d in range(D):
                k = layer * D + d
                params = [None if p is None else p.data for _, p in self._layer_params(layer, d)]
                res, pb = vjp(op, x, *[s[k] for s in states], *params, lengths=lengths,
                              reverse=d == 1)
                outs.append(res[0])
                finals.append(res[1:])                                    # (h_n,) or (h_n, c_n)
                pbs.append(pb)
            x = outs[0] if D == 1 else np.concatenate(outs, axis=2)       # (T, B, D·P)
            mask = None
            if self.training and self.dropout > 0 and layer < self.num_layers - 1:
                mask = self._dropout_mask(x.shape, dt)
                x = x * mask                                              # between layers only
            pullbacks.append(pbs)
            masks.append(mask)
        object.__setattr__(self, "_saved", dict(pullbacks=pullbacks, masks=masks, T=T, B=B,
                                                batched=batched, n_states=len(states)))
        self.dropout_masks = masks
        finals_st = [np.stack([f[j] for f in finals]) for j in range(len(states))]
        if batched and self.batch_first:
            x = x.swapaxes(0, 1)
        if not batched:
            x, finals_st = x[:, 0], [f[:, 0] for f in finals_st]
        return (x, finals_st[0]) if self.mode != "LSTM" else (x, tuple(finals_st))

    def backward(self, dout: np.ndarray | None, dhx: Any = None, *,
                 retain_graph: bool = False) -> tuple:
        """BPTT through every layer and direction, last layer first.

        ``dout`` mirrors ``output``; ``dhx`` mirrors ``h_n`` (LSTM: ``(dh_n, dc_n)``); any may
        be None (zeros). Returns ``(dx, dh0)`` (LSTM: ``(dx, (dh0, dc0))``) and adds into every
        parameter's ``.grad``. The saved state is freed unless ``retain_graph=True``.
        """
        fn = f"{type(self).__name__}.backward"
        saved = self._saved_for_backward("_saved")
        T, B, batched, D, P = saved["T"], saved["B"], saved["batched"], self._D, self._P
        dt = self.weight_ih_l0.dtype
        n = D * self.num_layers
        if dout is None:
            dy = np.zeros((T, B, D * P), dt)
        else:
            want = (T, B, D * P) if batched else (T, D * P)
            if batched and self.batch_first:
                want = (B, T, D * P)
            dy = _check_state_shape(fn, "dout", dout, want, dt)
            dy = dy if batched else dy[:, None]
            if batched and self.batch_first:
                dy = dy.swapaxes(0, 1)
        lstm = self.mode == "LSTM"
        if lstm and dhx is not None and (not isinstance(dhx, (tuple, list)) or len(dhx) != 2):
            raise TypeError(f"{fn}(): parameter 'dhx' must be a tuple (dh_n, dc_n)")
        names = [("dhx[0] (dh_n)", P), ("dhx[1] (dc_n)", self.hidden_size)] if lstm else \
            [("dhx (dh_n)", P)]
        given = list(dhx) if lstm and dhx is not None else [dhx] * len(names)
        dfinal = []
        for (name, size), g in zip(names, given):
            if g is not None:
                g = _check_state_shape(fn, name, g, (n, B, size) if batched else (n, size), dt)
                g = g if batched else g[:, None]
            dfinal.append(g)
        dstates = [np.empty((n, B, size), dt) for _, size in names]
        for layer in reversed(range(self.num_layers)):
            mask = saved["masks"][layer]
            if mask is not None:
                dy = dy * mask
            dx = None
            for d in range(D):
                k = layer * D + d
                douts = (dy[..., d * P:(d + 1) * P],) + tuple(
                    None if g is None else g[k] for g in dfinal)
                grads = saved["pullbacks"][layer][d](douts)
                dx = grads[0] if dx is None else dx + grads[0]
                for j, ds in enumerate(dstates):
                    ds[k] = grads[1 + j]
                for (_, p), g in zip(self._layer_params(layer, d), grads[1 + len(dstates):]):
                    if p is not None and g is not None:
                        p.accumulate(g)
            dy = dx
        self._release("_saved", retain_graph)
        if batched and self.batch_first:
            dy = dy.swapaxes(0, 1)
        if not batched:
            dy, dstates = dy[:, 0], [s[:, 0] for s in dstates]
        return (dy, tuple(dstates)) if lstm else (dy, dstates[0])

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        for name, default in (("bias", True), ("batch_first", False), ("dropout", 0.0),
                              ("bidirectional", False)):
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)}"
        return s


class RNN(RNNBase):
    """Elman RNN: h_t = tanh(x_t W_ihᵀ + b_ih + h_{t−1} W_hhᵀ + b_hh) (or relu), as torch.nn.RNN.

    ``RNN(input_size, hidden_size, num_layers=1, nonlinearity='tanh', bias=True,
    batch_first=False, dropout=0.0, bidirectional=False, dtype=None, generator=None)``
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, dtype: Any = None,
                 generator: np.random.Generator | None = None) -> None:
        check_choice("RNN", "nonlinearity", nonlinearity, ("tanh", "relu"))
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size,
                         hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         0, dtype, generator)
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    """Long short-term memory, gates i, f, g, o (torch.nn.LSTM, proj_size included).

    ``LSTM(input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
    bidirectional=False, proj_size=0, dtype=None, generator=None)``
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, dtype: Any = None,
                 generator: np.random.Generator | None = None) -> None:
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, proj_size, dtype, generator)


class GRU(RNNBase):
    """Gated recurrent unit, gates r, z, n (torch.nn.GRU).

    ``GRU(input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
    bidirectional=False, dtype=None, generator=None)``
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, dtype: Any = None,
                 generator: np.random.Generator | None = None) -> None:
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, 0, dtype, generator)


class RNNCellBase(Module):
    """One time step: parameters ``weight_ih`` (G·H, I), ``weight_hh`` (G·H, H), ``bias_ih``,
    ``bias_hh`` (G·H), initialised U(−1/√H, 1/√H) as torch.

    ``h' = cell(x, h)`` (LSTMCell: ``(h', c') = cell(x, (h, c))``), x (B, I) or (I,), the state
    zeros when omitted; ``backward(dh')`` returns ``(dx, dh)`` (LSTMCell:
    ``backward((dh', dc'))`` returns ``(dx, (dh, dc))``, either upstream grad may be None).
    """

    def __init__(self, mode: str, input_size: int, hidden_size: int, bias: bool,
                 dtype: Any, generator: np.random.Generator | None) -> None:
        super().__init__()
        fn = type(self).__name__
        self.mode = mode
        self.input_size = check_int(fn, "input_size", input_size, min=0)
        self.hidden_size = check_int(fn, "hidden_size", hidden_size, min=1)
        self.bias = check_bool(fn, "bias", bias)
        get_generator(fn, generator)
        self.generator = generator
        dt, G = _dtype(fn, dtype), _GATES[mode]
        self.weight_ih = Parameter(np.empty((G * hidden_size, input_size), dt))
        self.weight_hh = Parameter(np.empty((G * hidden_size, hidden_size), dt))
        self.register_parameter("bias_ih", Parameter(np.empty(G * hidden_size, dt))
                                if bias else None)
        self.register_parameter("bias_hh", Parameter(np.empty(G * hidden_size, dt))
                                if bias else None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every weight and bias ~ U(−1/√hidden_size, 1/√hidden_size), as torch."""
        _reset(self, self.hidden_size, self.generator)

    def forward(self, input: np.ndarray, hx: Any = None) -> Any:
        fn = f"{type(self).__name__}.forward"
        check_array(fn, "input", input, ndim=(1, 2))
        dt = self.weight_ih.dtype
        if input.dtype != dt:
            raise TypeError(f"{fn}(): parameter 'input' has dtype {input.dtype}, the module {dt}")
        if input.shape[-1] != self.input_size:
            raise ValueError(f"{fn}(): parameter 'input' must have input_size = "
                             f"{self.input_size} features (last dimension), got "
                             f"{input.shape[-1]}")
        shape = input.shape[:-1] + (self.hidden_size,)
        lstm = self.mode == "LSTM"
        if hx is None:
            hx = (np.zeros(shape, dt),) * 2 if lstm else np.zeros(shape, dt)
        elif lstm:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError(f"{fn}(): parameter 'hx' must be a tuple (h, c)")
            hx = tuple(_check_state_shape(fn, name, s, shape, dt)
                       for name, s in zip(("hx[0] (h)", "hx[1] (c)"), hx))
        else:
            hx = _check_state_shape(fn, "hx", hx, shape, dt)
        out, pb = vjp(_CELL_OPS[self.mode], input, hx, self.weight_ih.data,
                      self.weight_hh.data, None if self.bias_ih is None else self.bias_ih.data,
                      None if self.bias_hh is None else self.bias_hh.data)
        object.__setattr__(self, "_pullback", pb)
        return out

    def backward(self, *douts: Any, retain_graph: bool = False) -> tuple:
        """``(dx, dh)`` from dh' (LSTMCell: ``backward(dh', dc')`` mirroring the two outputs,
        either may be None; a ``(dh', dc')`` tuple is accepted too). The saved state is freed
        unless ``retain_graph=True``."""
        fn = f"{type(self).__name__}.backward"
        lstm = self.mode == "LSTM"
        if len(douts) == 1 and (not lstm or isinstance(douts[0], (tuple, list))):
            dout = douts[0]
        elif lstm and len(douts) == 2:
            dout = tuple(douts)
        else:
            raise TypeError(f"{fn}(): takes the gradients of the outputs "
                            f"({'dh, dc' if lstm else 'dh'}), got {len(douts)} arguments")
        pb = self._saved_for_backward("_pullback")
        dx, dhx, *grads = pb(dout)
        for p, g in zip((self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh), grads):
            if p is not None and g is not None:
                p.accumulate(g)
        self._release("_pullback", retain_graph)
        return dx, dhx

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        if self.mode == "RNN_RELU":
            s += ", nonlinearity=relu"                        # torch's spelling
        return s


class RNNCell(RNNCellBase):
    """h' = tanh(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh) (or relu): torch.nn.RNNCell.

    ``RNNCell(input_size, hidden_size, bias=True, nonlinearity='tanh', dtype=None,
    generator=None)``
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", dtype: Any = None,
                 generator: np.random.Generator | None = None) -> None:
        check_choice("RNNCell", "nonlinearity", nonlinearity, ("tanh", "relu"))
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size,
                         hidden_size, bias, dtype, generator)
        self.nonlinearity = nonlinearity


class LSTMCell(RNNCellBase):
    """(h', c') = lstm_cell(x, (h, c), ...): torch.nn.LSTMCell.

    ``LSTMCell(input_size, hidden_size, bias=True, dtype=None, generator=None)``
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 dtype: Any = None, generator: np.random.Generator | None = None) -> None:
        super().__init__("LSTM", input_size, hidden_size, bias, dtype, generator)


class GRUCell(RNNCellBase):
    """h' = gru_cell(x, h, ...): torch.nn.GRUCell.

    ``GRUCell(input_size, hidden_size, bias=True, dtype=None, generator=None)``
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 dtype: Any = None, generator: np.random.Generator | None = None) -> None:
        super().__init__("GRU", input_size, hidden_size, bias, dtype, generator)
