"""Embedding and one-hot, the textbook edition.

An embedding is a table lookup: row ``i`` of ``weight`` is the vector of token ``i``, so
``y = weight[input]``. Its backward is a scatter-add: every output row sends its gradient back
to the row it was read from, and a row read k times receives the sum of k gradients::

    dweight[i] = Σ_{positions p with input[p] = i} dy[p]          (np.add.at)

``one_hot`` is the same lookup into the identity matrix, with integer output (no gradient).

``max_norm`` is the one place in scratchnn where an op writes an input, because torch does:
the rows of ``weight`` that ``input`` looks up and whose ``norm_type``-norm exceeds ``max_norm``
are rescaled **in place** to norm ``max_norm`` (torch's ``embedding_renorm_``), before the lookup.
"""
from __future__ import annotations

import numbers
from typing import Any, NamedTuple

import numpy as np

from .._validate import check_array, check_bool, check_float, check_int
from ..autodiff import defop

Array = np.ndarray

__all__ = ["embedding", "one_hot", "embedding_forward", "embedding_backward",
           "one_hot_forward", "one_hot_backward", "check_indices", "check_padding_idx",
           "contributions"]


def check_indices(fn: str, name: str, input: Any, num: int | None) -> Array:
    """Integer indices, each in [0, num) (``num=None``: only non-negative)."""
    if not isinstance(input, np.ndarray):
        raise TypeError(f"{fn}(): parameter '{name}' must be a numpy.ndarray of integer "
                        f"indices, got {type(input).__name__}")
    if input.dtype.kind not in "iu":
        raise TypeError(f"{fn}(): parameter '{name}' must hold integer indices, got dtype "
                        f"{input.dtype}")
    if input.size and (input.min() < 0 or (num is not None and input.max() >= num)):
        bound = f"[0, {num})" if num is not None else "[0, ∞)"
        raise ValueError(f"{fn}(): parameter '{name}' has indices out of range: every index "
                         f"must be in {bound}, got min {input.min()} and max {input.max()}")
    return input


def check_padding_idx(fn: str, padding_idx: Any, num: int) -> int | None:
    """None, or an int in [−num, num); a negative one counts from the end, as torch."""
    if padding_idx is None:
        return None
    p = check_int(fn, "padding_idx", padding_idx)
    if not -num <= p < num:
        raise ValueError(f"{fn}(): parameter 'padding_idx' must be within num_embeddings "
                         f"[{-num}, {num}), got {p}")
    return p % num


class EmbeddingCtx(NamedTuple):
    input: Array                 # the indices: where each output row came from
    num: int                     # rows of weight
    padding_idx: int | None      # this row gets no gradient
    scale_grad_by_freq: bool     # divide each row's gradient by its count in the batch


def embedding_forward(input: Array, weight: Array, padding_idx: int | None = None,
                      max_norm: float | None = None, norm_type: float = 2.0,
                      scale_grad_by_freq: bool = False, sparse: bool = False
                      ) -> tuple[Array, EmbeddingCtx]:
    """y[p] = weight[input[p]]: a row lookup

    ``max_norm``: first, the looked-up rows with ‖row‖_{norm_type} > max_norm are rescaled IN
    PLACE by max_norm / (‖row‖ + 1e-7), as torch (the one op that writes an input).
    Shapes:  input (*) integers in [0, V), weight (V, D) -> y (*, D)
    Saves:   the indices (the backward scatters by them).
    Torch:   torch.nn.functional.embedding
    """
    fn = "embedding"
    w = check_array(fn, "weight", weight, ndim=2)
    idx = check_indices(fn, "input", input, w.shape[0])
    padding_idx = check_padding_idx(fn, padding_idx, w.shape[0])
    if max_norm is not None:
        max_norm = check_float(fn, "max_norm", max_norm, lo=0.0)
    if not (isinstance(norm_type, numbers.Real) and not isinstance(norm_type, bool)):
        raise TypeError(f"{fn}(): parameter 'norm_type' must be a real number, got "
                        f"{norm_type!r}")
    scale_grad_by_freq = check_bool(fn, "scale_grad_by_freq", scale_grad_by_freq)
    if check_bool(fn, "sparse", sparse):
        raise ValueError(f"{fn}(): parameter 'sparse' must be False: scratchnn's gradients "
                         f"are dense arrays")
    if max_norm is not None and idx.size:
        rows = np.unique(idx)                                          # each row once
        norms = np.linalg.norm(w[rows], ord=float(norm_type), axis=1)  # (R,)
        big = norms > max_norm
        w[rows[big]] *= (max_norm / (norms[big] + 1e-7))[:, None]      # in place, as torch
    y = w[idx]                                                         # (*, D), a copy
    return y, EmbeddingCtx(idx, w.shape[0], padding_idx, scale_grad_by_freq)


def embedding_backward(ctx: EmbeddingCtx, dy: Array) -> tuple[None, Array]:
    """dweight[i] = Σ_{p: input[p] = i} dy[p]   (a scatter-add; np.add.at adds repeats)

    ``scale_grad_by_freq``: each contribution divided by the count of its index in ``input``;
    ``padding_idx``: that row's gradient is zero. The indices get no gradient.
    """
    idx, g = contributions(ctx, dy)                                    # (P,), (P, D)
    dweight = np.zeros((ctx.num, g.shape[1]), dtype=dy.dtype)          # (V, D)
    np.add.at(dweight, idx, g)
    if ctx.padding_idx is not None:
        dweight[ctx.padding_idx] = 0
    return None, dweight


def contributions(ctx: EmbeddingCtx, dy: Array) -> tuple[Array, Array]:
    """What each position sends back: the row it read, idx (P,), and its gradient g (P, D) —
    dy[p], divided by the count of idx[p] with ``scale_grad_by_freq``."""
    idx = ctx.input.reshape(-1)                                        # (P,)
    g = dy.reshape(-1, dy.shape[-1])                                   # (P, D)
    if ctx.scale_grad_by_freq:
        counts = np.bincount(idx, minlength=ctx.num).astype(dy.dtype)  # (V,)
        g = g / counts[idx][:, None]
    return idx, g


embedding = defop(embedding_forward, embedding_backward)


class OneHotCtx(NamedTuple):
    """Empty: one_hot's output is integer, there is nothing to differentiate."""


def one_hot_forward(tensor: Array, num_classes: int = -1) -> tuple[Array, OneHotCtx]:
    """y[p, k] = 1 if tensor[p] = k else 0  (int64)

    ``num_classes=-1`` infers max(tensor) + 1 (an empty input then has no classes to infer).
    Shapes:  tensor (*) integers in [0, K) -> y (*, K) int64
    Saves:   nothing; the output is an integer array and has no gradient.
    Torch:   torch.nn.functional.one_hot
    """
    fn = "one_hot"
    K = check_int(fn, "num_classes", num_classes, min=-1)
    check_indices(fn, "tensor", tensor, None if K == -1 else K)
    if K == -1:
        if tensor.size == 0:
            raise ValueError(f"{fn}(): parameter 'num_classes' cannot be inferred from an "
                             f"empty 'tensor'; pass num_classes")
        K = int(tensor.max()) + 1
    y = (tensor[..., None] == np.arange(K)).astype(np.int64)           # (*, K)
    return y, OneHotCtx()


def one_hot_backward(ctx: OneHotCtx, dy: Any) -> tuple[None]:
    """No gradient: the input is integers and so is the output."""
    return (None,)


one_hot = defop(one_hot_forward, one_hot_backward)
