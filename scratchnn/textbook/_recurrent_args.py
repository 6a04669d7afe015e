"""The checks of a recurrent call's arguments, shared by both editions.

The textbook (:mod:`scratchnn.textbook.recurrent`) and the fast engine
(:mod:`scratchnn.functional.recurrent`) validate here, so that they accept, reject and word
their errors exactly alike. Gates are stacked in the rows of the weights: ``G`` blocks of
``H`` rows (RNN G = 1, GRU G = 3 ``r, z, n``, LSTM G = 4 ``i, f, g, o``).
"""
from __future__ import annotations

import numpy as np

from .._validate import check_array, check_same_dtype

Array = np.ndarray

__all__ = ["check_weights", "check_state", "check_cell", "check_lengths", "check_layer"]


def check_weights(fn: str, n_gates: int, input: Array, w_ih: Array, w_hh: Array,
                  b_ih: Array | None, b_hh: Array | None, w_hr: Array | None = None
                  ) -> tuple[int, int]:
    """Check the weights against ``input`` and return (H, H_out): hidden and output size
    (H_out = proj size when ``w_hr`` is given, else H)."""
    check_array(fn, "w_ih", w_ih, ndim=2)
    check_array(fn, "w_hh", w_hh, ndim=2)
    for name, b in (("b_ih", b_ih), ("b_hh", b_hh)):
        if b is not None:
            check_array(fn, name, b, ndim=1)
    if w_hr is not None:
        check_array(fn, "w_hr", w_hr, ndim=2)
    check_same_dtype(fn, "input", input, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh, w_hr=w_hr)
    if w_hh.shape[0] % n_gates or w_hh.shape[0] == 0:
        raise ValueError(f"{fn}(): parameter 'w_hh' must have {n_gates}·hidden_size rows, "
                         f"got shape {w_hh.shape}")
    H = w_hh.shape[0] // n_gates
    H_out = w_hh.shape[1] if w_hr is not None else H
    if w_hr is not None and w_hr.shape != (H_out, H):
        raise ValueError(f"{fn}(): parameter 'w_hr' must have shape (proj_size, hidden_size) = "
                         f"({H_out}, {H}), got {w_hr.shape}")
    if w_hh.shape != (n_gates * H, H_out):
        raise ValueError(f"{fn}(): parameter 'w_hh' must have shape {(n_gates * H, H_out)}, "
                         f"got {w_hh.shape}")
    if w_ih.shape != (n_gates * H, input.shape[-1]):
        raise ValueError(f"{fn}(): parameter 'w_ih' must have shape (gates·hidden_size, "
                         f"input_size) = {(n_gates * H, input.shape[-1])}, got {w_ih.shape}")
    for name, b in (("b_ih", b_ih), ("b_hh", b_hh)):
        if b is not None and b.shape != (n_gates * H,):
            raise ValueError(f"{fn}(): parameter '{name}' must have shape {(n_gates * H,)}, "
                             f"got {b.shape}")
    return H, H_out


def check_state(fn: str, name: str, s: Array, shape: tuple, input: Array) -> None:
    """A state (``hx``, ``h0``, ``c0``) is a float array of ``shape`` and input's dtype."""
    check_array(fn, name, s)
    check_same_dtype(fn, "input", input, **{name: s})
    if s.shape != shape:
        raise ValueError(f"{fn}(): parameter '{name}' must have shape {shape}, got {s.shape}")


def check_cell(fn: str, n_gates: int, input: Array, states: dict, w_ih: Array, w_hh: Array,
               b_ih: Array | None, b_hh: Array | None) -> int:
    """A cell's arguments: input (B, I) or (I,), states like (B, H) / (H,). Returns H."""
    check_array(fn, "input", input, ndim=(1, 2))
    H, _ = check_weights(fn, n_gates, input, w_ih, w_hh, b_ih, b_hh)
    for name, s in states.items():
        check_state(fn, name, s, input.shape[:-1] + (H,), input)
    return H


def check_lengths(fn: str, lengths, T: int, B: int) -> Array:
    """``lengths`` as B integers in [1, T] (a list, tuple or integer array), else ValueError."""
    lens = np.asarray(lengths)
    if lens.dtype.kind not in "iu" or lens.shape != (B,):
        raise ValueError(f"{fn}(): parameter 'lengths' must be {B} integers (one per sequence), "
                         f"got {lengths!r}")
    if B and (lens.min() < 1 or lens.max() > T):
        raise ValueError(f"{fn}(): parameter 'lengths' must lie in [1, T={T}], got {lens.tolist()}")
    return lens


def check_layer(fn: str, n_gates: int, input: Array, states: dict, w_ih: Array, w_hh: Array,
                b_ih: Array | None, b_hh: Array | None, w_hr: Array | None, lengths,
                reverse: bool) -> tuple[int, int, Array | None]:
    """A layer's arguments: input (T, B, I) with T ≥ 1, states (B, H_out) (``c0`` (B, H)) or
    None, ``reverse`` a bool, ``lengths`` None or B ints in [1, T].
    Returns (H, H_out, lengths as an int array or None)."""
    check_array(fn, "input", input, ndim=3)
    T, B, _ = input.shape
    if T == 0:
        raise ValueError(f"{fn}(): parameter 'input' must have at least one time step, got "
                         f"shape {input.shape}")
    H, H_out = check_weights(fn, n_gates, input, w_ih, w_hh, b_ih, b_hh, w_hr)
    for name, s in states.items():                    # h states have H_out columns, c has H
        if s is not None:
            check_state(fn, name, s, (B, H if name == "c0" else H_out), input)
    if not isinstance(reverse, bool):
        raise TypeError(f"{fn}(): parameter 'reverse' must be a bool, got {reverse!r}")
    return H, H_out, None if lengths is None else check_lengths(fn, lengths, T, B)
