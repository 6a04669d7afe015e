"""Dropout: y = x ⊙ m / (1 − p) with a random keep mask m ~ Bernoulli(1 − p) (alpha dropout:
y = x ⊙ a·m + α'a(p + m − 1)); backward dx = dy ⊙ the same scaled mask.

The textbook edition is ``scratchnn.textbook.dropout``: read it first. The channel variants
and alpha dropout are plain there — one mask entry per (N, C), nothing to make fast — so this
module names the very same functions (``F.dropout2d is scratchnn.textbook.dropout2d``), and so
are the mask helpers ``dropout_mask`` and ``feature_noise_shape``.

``dropout`` itself has a fast edition: its cost is the draw of one float32 uniform per element
(8 ms for 4.2 M here, more than the rest of the op). With the default PCG64 generator the
scaled mask comes from the generator's raw bits, split over threads
(:func:`scratchnn.perf.bernoulli.scaled_keep`): the textbook's mask bit for bit, the generator
left in the same state. Which path runs is decided in one place, :func:`choose_route`.
"""
from __future__ import annotations

import numpy as np

from .._validate import check_array, check_bool, check_float, check_inplace
from ..autodiff import defop
from ..perf import bernoulli
from ..random import get_generator
from ..textbook.dropout import (ALPHA, DropoutCtx, alpha_dropout, dropout1d,  # noqa: F401
                                dropout2d, dropout3d, dropout_backward, dropout_mask,
                                feature_alpha_dropout, feature_noise_shape, scaled_noise)
from ..textbook.dropout import dropout_forward as _textbook_dropout_forward
from ..textbook.dropout import __all__ as _textbook_all

Array = np.ndarray

__all__ = list(_textbook_all)

# route -> the settings that force it on small inputs (tests/test_textbook.py forces each)
ROUTES: dict[str, dict[str, object]] = {
    "default": {},
    "raw bits, 2 threads": {"scratchnn.perf.threads.MIN_PARALLEL": 1,
                            "scratchnn.perf.threads._threads": 2,
                            "scratchnn.perf.bernoulli.BLOCK": 3},
}


def choose_route(gen: np.random.Generator, p: float, training: bool, x: Array) -> str:
    """The engine's one route decision for ``dropout``:

    * ``'raw bits'`` — training, 0 < p < 1, a non-empty input and a PCG64/PCG64DXSM generator:
      the scaled mask from the raw bits (:func:`scratchnn.perf.bernoulli.scaled_keep`), split
      over threads from ``threads.MIN_PARALLEL`` elements on;
    * ``'textbook'`` — otherwise (the identity cases, p = 1, other bit generators): the
      textbook's own forward.
    """
    if training and 0 < p < 1 and x.size and bernoulli.supports(gen):
        return "raw bits"
    return "textbook"


def dropout_forward(input: Array, p: float = 0.5, training: bool = True, inplace: bool = False,
                    *, generator: np.random.Generator | None = None
                    ) -> tuple[Array, DropoutCtx]:
    """y = x ⊙ m / (1 − p),  m ~ Bernoulli(1 − p) per element (inverted dropout: E[y] = x)

    Shapes:  x (*) -> y (*); the mask m has x's shape.
    Saves:   noise = m / (1 − p), because it is the whole derivative.
    Backward: dx = dy ⊙ m / (1 − p).
    Torch:   torch.nn.functional.dropout
    """
    fn = "dropout"
    check_array(fn, "input", input)
    q = check_float(fn, "p", p, lo=0.0, hi=1.0)
    train = check_bool(fn, "training", training)
    check_inplace(fn, inplace)
    gen = get_generator(fn, generator)
    if choose_route(gen, q, train, input) == "textbook":
        return _textbook_dropout_forward(input, p, training, inplace, generator=generator)
    dt = input.dtype
    noise, y = bernoulli.scaled_keep(gen, np.ascontiguousarray(input).reshape(-1), q,
                                     dt.type(1.0) / dt.type(1.0 - q))   # m / (1 − p), x ⊙ it
    return y.reshape(input.shape), DropoutCtx(noise.reshape(input.shape))


dropout = defop(dropout_forward, dropout_backward)
