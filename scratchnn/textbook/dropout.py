"""Dropout: elementwise, whole-channel (1d/2d/3d), alpha and feature-alpha, forward and backward.

Every variant is one formula on a random *keep mask* ``m`` (True = kept, probability 1 − p)::

    dropout:        y = x ⊙ m / (1 − p)                     (inverted scaling: E[y] = x)
    alpha dropout:  y = x ⊙ a·m + α'·a·(p + m − 1)          (keeps SELU's mean 0 / variance 1)
                    α' = 1.7580993408473766,  a = ((α'²·p + 1)(1 − p))^{−1/2}

so ``y = x ⊙ noise + b`` with ``noise = m/(1−p)`` (or ``a·m``) and ``dx = dy ⊙ noise``: the mask
(as the scaled ``noise``) is what the forward saves. The channel variants draw one mask entry per
``(N, C)`` and broadcast it over the spatial dims (torch's ``make_feature_noise``).

Randomness: :func:`dropout_mask` draws ``u ~ U[0, 1)`` (float32) from a
``numpy.random.Generator`` — the ``generator=`` keyword, else ``scratchnn.random``'s default
generator, reseeded by ``scratchnn.manual_seed`` — and keeps ``u ≥ p``. Anyone holding a copy of
the same generator regenerates the same mask with ``dropout_mask(noise_shape, p, copy)``; that
is how the tests feed torch the same mask.

Identity and edge cases follow torch's ``_dropout_impl``: with ``training=False``, ``p = 0`` or an
empty input the op returns **the input object itself** (no copy; as torch returns the same tensor)
and its gradient is ``dy``; ``p = 1`` returns ``x · 0`` (zeros) without drawing a mask.
torch's ``inplace`` keyword is accepted but must be ``False``: scratchnn never modifies an
input, so ``inplace=True`` raises a ``ValueError`` rather than silently doing something else.

These ops are plain already, so they live here once: ``scratchnn.functional.dropout`` and the
rest name these very functions. The derivation is in ``docs/dropout.md``.
"""
from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import numpy as np

from .._validate import check_array, check_bool, check_float, check_inplace
from ..autodiff import defop
from ..random import get_generator

Array = np.ndarray

__all__ = ["dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout",
           "feature_alpha_dropout", "dropout_mask", "feature_noise_shape"]

ALPHA = 1.7580993408473766     # −SELU's negative saturation value, α·λ (torch's constant)


def dropout_mask(shape: tuple[int, ...], p: float, generator: np.random.Generator | None = None,
                 fn: str = "dropout_mask") -> Array:
    """A boolean keep mask of ``shape``: each entry True with probability ``1 − p``.

    Draws exactly ``prod(shape)`` float32 uniforms from the generator (the default one if None),
    so a copy of the generator in the same state redraws the same mask.
    """
    gen = get_generator(fn, generator)
    return gen.random(shape, dtype=np.float32) >= p              # u ~ U[0, 1): P(u ≥ p) = 1 − p


def feature_noise_shape(fn: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    """One mask entry per (N, C), broadcast over the rest: ``(N, C, 1, …, 1)`` (torch's
    ``make_feature_noise``; needs at least 2 dims)."""
    if len(shape) < 2:
        raise ValueError(f"{fn}(): parameter 'input' must have at least 2 dimensions for "
                         f"feature (channel) dropout, got shape {shape}")
    return shape[:2] + (1,) * (len(shape) - 2)


def scaled_noise(keep: Array, p: float, dtype: np.dtype, alpha: bool) -> tuple[Array, Any]:
    """``(noise, b)`` with ``y = x ⊙ noise + b`` for keep mask ``keep``, in torch's arithmetic.

    dropout:  noise = m / (1 − p),  b = None (no shift)
    alpha:    noise = a·m,          b = (m − 1)·α'a + α'a·p   (= α'a(p + m − 1))
    Every constant is cast to ``dtype`` first, so a float32 input stays float32.
    """
    noise = keep.astype(dtype)                                    # m as 0.0 / 1.0
    if not alpha:
        noise /= dtype.type(1.0 - p)
        return noise, None
    a = 1.0 / np.sqrt((ALPHA * ALPHA * p + 1.0) * (1.0 - p))      # makes Var[y] = 1
    b = (noise - 1) * dtype.type(ALPHA * a) + dtype.type(ALPHA * a * p)   # makes E[y] = 0
    noise *= dtype.type(a)
    return noise, b


class DropoutCtx(NamedTuple):
    noise: Array | None        # broadcastable to x: dx = dy ⊙ noise; None = identity


def _dropout_forward(fn: str, input: Array, p: Any, training: Any, inplace: Any, generator: Any,
                     feature: bool, alpha: bool) -> tuple[Array, DropoutCtx]:
    """y = x ⊙ noise + b, shared by every variant: validate, draw the mask, scale, apply.

    ``feature``: one mask entry per (N, C); ``alpha``: alpha dropout's noise and shift.
    """
    check_array(fn, "input", input)
    p = check_float(fn, "p", p, lo=0.0, hi=1.0)
    training = check_bool(fn, "training", training)
    check_inplace(fn, inplace)
    get_generator(fn, generator)                                  # validate before any work
    if p == 0 or not training or input.size == 0:
        return input, DropoutCtx(None)                            # the input itself, as torch
    if p == 1:
        noise, b = np.zeros((), input.dtype), None                # torch: x · 0
    else:
        shape = feature_noise_shape(fn, input.shape) if feature else input.shape
        noise, b = scaled_noise(dropout_mask(shape, p, generator, fn), p, input.dtype, alpha)
    # out= keeps y an array of x's layout (a 0-d product would otherwise be a NumPy scalar)
    y = np.multiply(input, noise, out=np.empty_like(input))      # x ⊙ noise, noise broadcast
    if b is not None:
        y += b
    return y, DropoutCtx(noise)


def dropout_backward(ctx: DropoutCtx, dy: Array) -> Array:
    """dx = dy ⊙ noise   (noise = m/(1−p), or a·m for alpha dropout; the shift b has no
    gradient). Identity (eval, p = 0, empty): dx = dy, the same object."""
    return dy if ctx.noise is None else np.multiply(dy, ctx.noise, out=np.empty_like(dy))


def dropout_forward(input: Array, p: float = 0.5, training: bool = True, inplace: bool = False,
                    *, generator: np.random.Generator | None = None
                    ) -> tuple[Array, DropoutCtx]:
    """y = x ⊙ m / (1 − p),  m ~ Bernoulli(1 − p) per element (inverted dropout: E[y] = x)

    Shapes:  x (*) -> y (*); the mask m has x's shape.
    Saves:   noise = m / (1 − p), because it is the whole derivative.
    Backward: dx = dy ⊙ m / (1 − p).
    Torch:   torch.nn.functional.dropout
    """
    return _dropout_forward("dropout", input, p, training, inplace, generator, False, False)


def alpha_dropout_forward(input: Array, p: float = 0.5, training: bool = False,
                          inplace: bool = False, *,
                          generator: np.random.Generator | None = None
                          ) -> tuple[Array, DropoutCtx]:
    """y = a·(x ⊙ m + α'(1 − m)) + b₀ = x ⊙ a·m + α'a(p + m − 1)   (for SELU networks)

    A dropped entry becomes SELU's saturation value α' = 1.7580993408473766 instead of 0;
    a = ((α'²p + 1)(1 − p))^{−1/2} and b₀ = α'a·p keep mean 0 and variance 1.
    Note torch's default ``training=False``.

    Shapes:  x (*) -> y (*); the mask m has x's shape.
    Saves:   noise = a·m.
    Backward: dx = dy ⊙ a·m.
    Torch:   torch.nn.functional.alpha_dropout
    """
    return _dropout_forward("alpha_dropout", input, p, training, inplace, generator, False,
                            True)


def feature_alpha_dropout_forward(input: Array, p: float = 0.5, training: bool = False,
                                  inplace: bool = False, *,
                                  generator: np.random.Generator | None = None
                                  ) -> tuple[Array, DropoutCtx]:
    """y = x ⊙ a·m + α'a(p + m − 1), one m per (N, C): alpha dropout of whole channels

    Shapes:  x (N, C, *) -> y (N, C, *); the mask m is (N, C, 1, …, 1).
    Saves:   noise = a·m, (N, C, 1, …, 1).
    Backward: dx = dy ⊙ a·m (broadcast over the spatial dims).
    Torch:   torch.nn.functional.feature_alpha_dropout
    """
    return _dropout_forward("feature_alpha_dropout", input, p, training, inplace, generator,
                            True, True)


def _with_batch_axis(fn: str, input: Array, p: Any, training: Any, inplace: Any,
                     generator: Any) -> tuple[Array, DropoutCtx]:
    """torch's ``unsqueeze(0)`` … ``squeeze(0)`` around channel dropout of unbatched input."""
    y, ctx = _dropout_forward(fn, input[None], p, training, inplace, generator, True, False)
    if ctx.noise is not None and ctx.noise.ndim:
        ctx = DropoutCtx(ctx.noise[0])                     # (1, C, 1, …) -> (C, 1, …)
    return (input if ctx.noise is None else y[0]), ctx


def dropout1d_forward(input: Array, p: float = 0.5, training: bool = True,
                      inplace: bool = False, *, generator: np.random.Generator | None = None
                      ) -> tuple[Array, DropoutCtx]:
    """y[n, c, :] = x[n, c, :] · m[n, c] / (1 − p): whole channels zeroed, the rest scaled

    Shapes:  x (N, C, L) or unbatched (C, L) -> y of x's shape; m (N, C, 1) or (C, 1).
    Saves:   noise = m / (1 − p).
    Backward: dx = dy ⊙ m / (1 − p) (broadcast along L).
    Torch:   torch.nn.functional.dropout1d
    """
    check_array("dropout1d", "input", input, ndim=(2, 3))
    if input.ndim == 3:
        return _dropout_forward("dropout1d", input, p, training, inplace, generator, True, False)
    return _with_batch_axis("dropout1d", input, p, training, inplace, generator)


def _warn_rank(fn: str, input: Array, ranks: tuple[int, int]) -> None:
    """torch's deprecation warning for channel dropout of an unexpected rank."""
    if input.ndim not in ranks:
        warnings.warn(f"{fn}: Received a {input.ndim}-D input to {fn}, which is deprecated "
                      f"and will result in an error in a future release. To retain the "
                      f"behavior and silence this warning, please use dropout instead.",
                      UserWarning, stacklevel=4)


def dropout2d_forward(input: Array, p: float = 0.5, training: bool = True,
                      inplace: bool = False, *, generator: np.random.Generator | None = None
                      ) -> tuple[Array, DropoutCtx]:
    """y[n, c] = x[n, c] · m[n, c] / (1 − p): whole (H, W) feature maps zeroed, the rest scaled

    Today's torch semantics, warnings included: any input other than 3-D/4-D warns (deprecated)
    and a 3-D input is read as (N, C, L) — channel-wise 1d dropout, NOT as unbatched (C, H, W)
    (pytorch#77081).

    Shapes:  x (N, C, H, W) -> y (N, C, H, W); m (N, C, 1, 1).
    Saves:   noise = m / (1 − p).
    Backward: dx = dy ⊙ m / (1 − p) (broadcast over H, W).
    Torch:   torch.nn.functional.dropout2d
    """
    fn = "dropout2d"
    check_array(fn, "input", input)
    _warn_rank(fn, input, (3, 4))
    if input.ndim == 3:
        warnings.warn("dropout2d: Received a 3D input to dropout2d and assuming that "
                      "channel-wise 1D dropout behavior is desired - input is interpreted as "
                      "shape (N, C, L), where C is the channel dim.", UserWarning, stacklevel=3)
    return _dropout_forward(fn, input, p, training, inplace, generator, True, False)


def dropout3d_forward(input: Array, p: float = 0.5, training: bool = True,
                      inplace: bool = False, *, generator: np.random.Generator | None = None
                      ) -> tuple[Array, DropoutCtx]:
    """y[n, c] = x[n, c] · m[n, c] / (1 − p): whole (D, H, W) volumes zeroed, the rest scaled

    Other ranks than 4-D/5-D warn (deprecated) and, as torch, are read as unbatched (a batch
    axis is added).

    Shapes:  x (N, C, D, H, W) or unbatched (C, D, H, W) -> y of x's shape; m (N, C, 1, 1, 1).
    Saves:   noise = m / (1 − p).
    Backward: dx = dy ⊙ m / (1 − p) (broadcast over D, H, W).
    Torch:   torch.nn.functional.dropout3d
    """
    fn = "dropout3d"
    check_array(fn, "input", input)
    _warn_rank(fn, input, (4, 5))
    if input.ndim == 5:
        return _dropout_forward(fn, input, p, training, inplace, generator, True, False)
    return _with_batch_axis(fn, input, p, training, inplace, generator)


dropout = defop(dropout_forward, dropout_backward)
alpha_dropout = defop(alpha_dropout_forward, dropout_backward)
feature_alpha_dropout = defop(feature_alpha_dropout_forward, dropout_backward)
dropout1d = defop(dropout1d_forward, dropout_backward)
dropout2d = defop(dropout2d_forward, dropout_backward)
dropout3d = defop(dropout3d_forward, dropout_backward)
