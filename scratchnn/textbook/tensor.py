"""Tensor functions, the textbook edition: reshapes, joins, element-wise arithmetic, indexing.

These are the glue a model's ``forward`` is written with (``torch.flatten``, ``torch.cat``,
``x + identity``, ``x[:, 0]``). Each moves or combines values without any learned weight, so
each backward only sends every gradient entry back to the entry it came from:

* a reshape, transpose or permute moves entries: the backward moves them back
  (``dx = dy.reshape(x.shape)``, the inverse permutation);
* a join (``cat``, ``stack``) puts inputs side by side: the backward cuts ``dy`` into the
  same pieces;
* ``a + b``, ``a − b``, ``a · b``, ``a / b`` act entry by entry, broadcasting as NumPy does:
  the backward multiplies by the local derivative and then *un-broadcasts* — sums ``dy`` over
  the axes along which an input was repeated (:func:`unbroadcast`);
* indexing picks entries: the backward scatters ``dy`` into zeros at the picked places,
  adding where one entry was picked twice.

They are plain already, so ``scratchnn.functional`` (and ``scratchnn.flatten`` etc.) name these
same functions. A sequence of arrays (``cat``, ``stack``) is differentiated as one positional
argument: pass a tuple to :func:`scratchnn.vjp` and the pullback returns a tuple of gradients.
"""
from __future__ import annotations

import numbers
from typing import Any, NamedTuple, Sequence

import numpy as np

from .._validate import check_array, check_dim, check_int, check_same_dtype
from ..autodiff import defop

Array = np.ndarray

__all__ = ["flatten", "reshape", "transpose", "permute", "cat", "stack", "add", "sub", "mul",
           "div", "getitem"]


# -- moving entries ----------------------------------------------------------------------------
class ShapeCtx(NamedTuple):
    shape: tuple[int, ...]           # the input's shape: the backward reshapes back to it


def flatten_forward(input: Array, start_dim: int = 0, end_dim: int = -1
                    ) -> tuple[Array, ShapeCtx]:
    """y = x with dims start_dim..end_dim merged into one (row-major order)

    Shapes:  (N, C, H, W) -> (N, C·H·W) for flatten(x, 1); a 0-d input gives (1,).
    Saves:   x's shape only.
    Backward: dx = dy.reshape(x.shape)
    Torch:   torch.flatten
    """
    fn = "flatten"
    check_array(fn, "input", input)
    s = check_dim(fn, "start_dim", start_dim, input.ndim)
    e = check_dim(fn, "end_dim", end_dim, input.ndim)
    if s > e:
        raise ValueError(f"{fn}(): parameter 'start_dim' ({start_dim}) must not come after "
                         f"'end_dim' ({end_dim}) for a {input.ndim}-d input")
    shape = input.shape[:s] + (int(np.prod(input.shape[s:e + 1])),) + input.shape[e + 1:]
    return input.reshape(shape), ShapeCtx(input.shape)                 # (..., merged, ...)


def reshape_backward(ctx: ShapeCtx, dy: Array) -> Array:
    """dx = dy.reshape(x.shape): a reshape moves no value, so neither does its backward."""
    return dy.reshape(ctx.shape)


flatten = defop(flatten_forward, reshape_backward)


def reshape_forward(input: Array, shape: Sequence[int]) -> tuple[Array, ShapeCtx]:
    """y = x read in row-major order into ``shape`` (one entry may be −1: inferred)

    Shapes:  x (*) -> y (shape), the same number of entries.
    Saves:   x's shape only.
    Backward: dx = dy.reshape(x.shape)
    Torch:   torch.reshape
    """
    fn = "reshape"
    check_array(fn, "input", input)
    if isinstance(shape, numbers.Integral):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)):
        raise TypeError(f"{fn}(): parameter 'shape' must be a tuple of ints, got {shape!r}")
    shape = tuple(check_int(fn, "shape", s, min=-1) for s in shape)
    try:
        y = input.reshape(shape)
    except ValueError:
        raise ValueError(f"{fn}(): parameter 'shape' {shape} is invalid for an input of "
                         f"{input.size} entries {input.shape}") from None
    return y, ShapeCtx(input.shape)


reshape = defop(reshape_forward, reshape_backward)


class PermuteCtx(NamedTuple):
    dims: tuple[int, ...]            # y's axis k is x's axis dims[k]


def permute_forward(input: Array, dims: Sequence[int]) -> tuple[Array, PermuteCtx]:
    """y[i_{dims[0]}, …] = x[i_0, …]: the axes of x in the order ``dims`` (a view)

    Shapes:  x (d_0, …, d_{n−1}) -> y (d_{dims[0]}, …, d_{dims[n−1]}).
    Saves:   dims.
    Backward: dx = dy with the inverse permutation, argsort(dims).
    Torch:   torch.permute
    """
    fn = "permute"
    check_array(fn, "input", input)
    if not isinstance(dims, (tuple, list)):
        raise TypeError(f"{fn}(): parameter 'dims' must be a tuple of ints, got {dims!r}")
    dims = tuple(check_dim(fn, "dims", d, input.ndim) for d in dims)
    if sorted(dims) != list(range(input.ndim)):
        raise ValueError(f"{fn}(): parameter 'dims' must order all {input.ndim} axes once "
                         f"each, got {dims}")
    return input.transpose(dims), PermuteCtx(dims)


def permute_backward(ctx: PermuteCtx, dy: Array) -> Array:
    """dx = dy.transpose(argsort(dims)): the permutation that puts every axis back."""
    return dy.transpose(np.argsort(ctx.dims))


permute = defop(permute_forward, permute_backward)


def transpose_forward(input: Array, dim0: int, dim1: int) -> tuple[Array, PermuteCtx]:
    """y = x with axes dim0 and dim1 swapped (a view)

    Shapes:  (…, a, …, b, …) -> (…, b, …, a, …).
    Saves:   the permutation.
    Backward: dx = dy with the same two axes swapped back (a swap is its own inverse).
    Torch:   torch.transpose
    """
    fn = "transpose"
    check_array(fn, "input", input)
    d0 = check_dim(fn, "dim0", dim0, input.ndim)
    d1 = check_dim(fn, "dim1", dim1, input.ndim)
    dims = list(range(input.ndim))
    if input.ndim:
        dims[d0], dims[d1] = dims[d1], dims[d0]
    return input.transpose(dims), PermuteCtx(tuple(dims))


transpose = defop(transpose_forward, permute_backward)


# -- joining -----------------------------------------------------------------------------------
class JoinCtx(NamedTuple):
    dim: int                         # the axis the inputs were joined along
    sizes: tuple[int, ...]           # each input's extent along it (stack: 1 each)
    stacked: bool                    # stack added the axis: the backward removes it


def _check_sequence(fn: str, tensors: Any) -> tuple[Array, ...]:
    if not isinstance(tensors, (tuple, list)) or not tensors:
        raise TypeError(f"{fn}(): parameter 'tensors' must be a non-empty tuple or list of "
                        f"arrays, got {type(tensors).__name__}")
    for i, t in enumerate(tensors):
        check_array(fn, f"tensors[{i}]", t)
        check_same_dtype(fn, "tensors[0]", tensors[0], **{f"tensors[{i}]": t})
    return tuple(tensors)


def cat_forward(tensors: Sequence[Array], dim: int = 0) -> tuple[Array, JoinCtx]:
    """y = [x_0 | x_1 | …] along ``dim``

    Shapes:  x_k (…, n_k, …) -> y (…, Σ n_k, …); the other axes must agree.
    Saves:   every n_k.
    Backward: dx_k = dy[…, o_k : o_k + n_k, …], o_k = n_0 + … + n_{k−1}
    Torch:   torch.cat
    """
    fn = "cat"
    xs = _check_sequence(fn, tensors)
    d = check_dim(fn, "dim", dim, xs[0].ndim)
    if any(x.ndim != xs[0].ndim or x.shape[:d] + x.shape[d + 1:] !=
           xs[0].shape[:d] + xs[0].shape[d + 1:] for x in xs):
        raise ValueError(f"{fn}(): parameter 'tensors' must agree in every axis but {dim}, "
                         f"got shapes {[x.shape for x in xs]}")
    y = np.concatenate(xs, axis=d)                                      # (…, Σ n_k, …)
    return y, JoinCtx(d, tuple(x.shape[d] for x in xs), False)


def cat_backward(ctx: JoinCtx, dy: Array) -> tuple[tuple[Array, ...]]:
    """dx_k = the k-th piece of dy along dim (stack: with that axis removed)."""
    pieces = np.split(dy, np.cumsum(ctx.sizes)[:-1], axis=ctx.dim)      # [(…, n_k, …)]
    if ctx.stacked:
        pieces = [p.squeeze(ctx.dim) for p in pieces]
    return (tuple(pieces),)


cat = defop(cat_forward, cat_backward)


def stack_forward(tensors: Sequence[Array], dim: int = 0) -> tuple[Array, JoinCtx]:
    """y[…, k, …] = x_k: the inputs side by side along a new axis ``dim``

    Shapes:  x_k (*) all alike -> y with a new axis of length K at ``dim``.
    Saves:   K.
    Backward: dx_k = dy[…, k, …]
    Torch:   torch.stack
    """
    fn = "stack"
    xs = _check_sequence(fn, tensors)
    d = check_dim(fn, "dim", dim, xs[0].ndim + 1)
    if any(x.shape != xs[0].shape for x in xs):
        raise ValueError(f"{fn}(): parameter 'tensors' must all have one shape, got "
                         f"{[x.shape for x in xs]}")
    return np.stack(xs, axis=d), JoinCtx(d, (1,) * len(xs), True)       # (…, K, …)


stack = defop(stack_forward, cat_backward)


# -- element-wise arithmetic -------------------------------------------------------------------
class BinaryCtx(NamedTuple):
    a: Any                           # the operands as the op used them (mul and div need them)
    b: Any
    shape_a: tuple[int, ...] | None  # None: that operand was a Python number (no gradient)
    shape_b: tuple[int, ...] | None


def unbroadcast(g: Array, shape: tuple[int, ...] | None) -> Array | None:
    """Sum ``g`` down to ``shape``: over the leading axes broadcasting added, and over every
    axis where the operand had length 1 — each of its entries was used that many times."""
    if shape is None:
        return None
    g = g.sum(axis=tuple(range(g.ndim - len(shape)))) if g.ndim > len(shape) else g
    ones = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    return g.sum(axis=ones, keepdims=True) if ones else g


def _operands(fn: str, input: Any, other: Any) -> BinaryCtx:
    """Two arrays of one dtype, or an array and a real number (cast to the array's dtype, as
    torch keeps a float32 tensor float32 when multiplied by a Python float)."""
    arrays = [(n, v) for n, v in (("input", input), ("other", other))
              if isinstance(v, np.ndarray)]
    if not arrays:
        raise TypeError(f"{fn}(): parameter 'input' or 'other' must be a numpy.ndarray")
    for n, v in (("input", input), ("other", other)):
        if isinstance(v, np.ndarray):
            check_array(fn, n, v)
        elif isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise TypeError(f"{fn}(): parameter '{n}' must be a numpy.ndarray or a real "
                            f"number, got {type(v).__name__}")
    ref_name, ref = arrays[0]
    check_same_dtype(fn, ref_name, ref, **dict(arrays[1:]))
    try:
        np.broadcast_shapes(*(v.shape for _, v in arrays))
    except ValueError:
        raise ValueError(f"{fn}(): parameter 'other' of shape {other.shape} does not "
                         f"broadcast with 'input' of shape {input.shape}") from None
    a = input if isinstance(input, np.ndarray) else ref.dtype.type(input)
    b = other if isinstance(other, np.ndarray) else ref.dtype.type(other)
    return BinaryCtx(a, b, getattr(input, "shape", None), getattr(other, "shape", None))


def add_forward(input: Any, other: Any) -> tuple[Array, BinaryCtx]:
    """y = a + b (broadcasting)

    Shapes:  a, b broadcastable -> y (their broadcast shape); either may be a number.
    Saves:   the shapes only.
    Backward: da = unbroadcast(dy),  db = unbroadcast(dy)
    Torch:   torch.add
    """
    c = _operands("add", input, other)
    return np.asarray(c.a + c.b), c._replace(a=None, b=None)


def add_backward(ctx: BinaryCtx, dy: Array) -> tuple[Array | None, Array | None]:
    """∂(a + b)/∂a = ∂(a + b)/∂b = 1: both take dy, summed down to their own shape."""
    return unbroadcast(dy, ctx.shape_a), unbroadcast(dy, ctx.shape_b)


add = defop(add_forward, add_backward)


def sub_forward(input: Any, other: Any) -> tuple[Array, BinaryCtx]:
    """y = a − b (broadcasting)

    Shapes:  a, b broadcastable -> y (their broadcast shape); either may be a number.
    Saves:   the shapes only.
    Backward: da = unbroadcast(dy),  db = −unbroadcast(dy)
    Torch:   torch.sub
    """
    c = _operands("sub", input, other)
    return np.asarray(c.a - c.b), c._replace(a=None, b=None)


def sub_backward(ctx: BinaryCtx, dy: Array) -> tuple[Array | None, Array | None]:
    """∂(a − b)/∂a = 1, ∂(a − b)/∂b = −1."""
    return unbroadcast(dy, ctx.shape_a), unbroadcast(-dy, ctx.shape_b)


sub = defop(sub_forward, sub_backward)


def mul_forward(input: Any, other: Any) -> tuple[Array, BinaryCtx]:
    """y = a ⊙ b (element-wise, broadcasting)

    Shapes:  a, b broadcastable -> y (their broadcast shape); either may be a number.
    Saves:   a and b (each gradient is the other operand).
    Backward: da = unbroadcast(dy ⊙ b),  db = unbroadcast(dy ⊙ a)
    Torch:   torch.mul
    """
    c = _operands("mul", input, other)
    return np.asarray(c.a * c.b), c


def mul_backward(ctx: BinaryCtx, dy: Array) -> tuple[Array | None, Array | None]:
    """∂(a b)/∂a = b, ∂(a b)/∂b = a."""
    da = unbroadcast(dy * ctx.b, ctx.shape_a) if ctx.shape_a is not None else None
    db = unbroadcast(dy * ctx.a, ctx.shape_b) if ctx.shape_b is not None else None
    return da, db


mul = defop(mul_forward, mul_backward)


def div_forward(input: Any, other: Any) -> tuple[Array, BinaryCtx]:
    """y = a / b (element-wise, broadcasting)

    Shapes:  a, b broadcastable -> y (their broadcast shape); either may be a number.
    Saves:   a and b.
    Backward: da = unbroadcast(dy / b),  db = −unbroadcast(dy ⊙ a / b²)
    Torch:   torch.div
    """
    c = _operands("div", input, other)
    return np.asarray(c.a / c.b), c


def div_backward(ctx: BinaryCtx, dy: Array) -> tuple[Array | None, Array | None]:
    """∂(a/b)/∂a = 1/b, ∂(a/b)/∂b = −a/b²."""
    da = unbroadcast(dy / ctx.b, ctx.shape_a) if ctx.shape_a is not None else None
    db = unbroadcast(-dy * ctx.a / (ctx.b * ctx.b), ctx.shape_b) \
        if ctx.shape_b is not None else None
    return da, db


div = defop(div_forward, div_backward)


# -- indexing ----------------------------------------------------------------------------------
class IndexCtx(NamedTuple):
    shape: tuple[int, ...]           # x's shape: the gradient starts as zeros of it
    dtype: np.dtype
    index: Any
    basic: bool                      # only ints, slices, None, ...: no entry is picked twice


def _is_basic(index: Any) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, (slice, numbers.Integral))
               and not isinstance(p, bool) for p in parts)


def getitem_forward(input: Array, index: Any) -> tuple[Array, IndexCtx]:
    """y = x[index]: NumPy's (and torch's) indexing, basic or advanced

    Shapes:  x (*) -> y (whatever the index selects).
    Saves:   the index and x's shape.
    Backward: dx = zeros(x.shape);  dx[index] += dy  (an entry picked k times gets k terms)
    Torch:   torch.Tensor.__getitem__
    """
    check_array("getitem", "input", input)
    try:
        y = input[index]
    except (IndexError, TypeError, ValueError) as e:
        raise ValueError(f"getitem(): parameter 'index' {index!r} is invalid for an input "
                         f"of shape {input.shape}: {e}") from None
    return np.asarray(y), IndexCtx(input.shape, input.dtype, index, _is_basic(index))


def getitem_backward(ctx: IndexCtx, dy: Array) -> Array:
    """Scatter dy into zeros at the picked entries; np.add.at sums repeated picks."""
    dx = np.zeros(ctx.shape, ctx.dtype)
    if ctx.basic:
        dx[ctx.index] = dy                              # a view: every entry picked once
    else:
        np.add.at(dx, ctx.index, dy)
    return dx


getitem = defop(getitem_forward, getitem_backward)
