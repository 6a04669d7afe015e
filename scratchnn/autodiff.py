"""The op contract: ``defop`` ties a forward to its backward, ``vjp`` differentiates any op.

An op is written as a pair::

    def sigmoid_forward(x) -> (y, ctx)        # ctx holds exactly what backward reads
    def sigmoid_backward(ctx, dy) -> dx       # one gradient per differentiable input

and published as ``sigmoid = defop(sigmoid_forward, sigmoid_backward)``: a plain function with
torch's name and signature that returns only the output. ``vjp`` (in the convention of
``jax.vjp``) runs the forward and hands back a *pullback*::

    out, pullback = scratchnn.vjp(F.conv2d, x, w, b, stride=2, padding=1)
    dx, dw, db = pullback(dout)

``pullback`` returns one entry per positional argument: the gradient (same shape and dtype as the
argument) for a floating array, a tuple of gradients for a tuple of floating arrays (LSTM's
``hx = (h, c)``), ``None`` for anything else. Keyword arguments are options and are
never differentiated. Where an op returns several outputs, ``dout`` has the same structure and any
entry may be ``None`` (read as zeros; integer outputs such as pooling indices take ``None``).

0-d arrays: NumPy turns most arithmetic on a 0-d array into a NumPy scalar (``x ** 3`` of
``np.array(0.5)`` is ``np.float64(0.125)``). An op's output, and each gradient its backward
returns, is therefore wrapped back into a 0-d array when it is a NumPy scalar, and ``dout`` of
a 0-d output may be given as a scalar.

Skipping gradients nobody needs (torch's ``ctx.needs_input_grad``)::

    dx, dw, db = pullback(dout, needs_input_grad=(False, True, True))    # dx is None

A backward that declares a ``needs_input_grad`` keyword receives the tuple (one bool per
positional argument; a shorter tuple is padded with True) and may skip the work of the unneeded
gradients — a convolution that is a network's first layer never computes its input gradient,
as in torch, where the data does not require grad. Any other op computes all gradients and the
pullback drops the unneeded ones, so the result is the same either way: ``None`` where not
needed.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable

import numpy as np

__all__ = ["defop", "vjp", "is_op"]

# The replay of forward-only Modules (scratchnn.nn.tracing) pushes a recorder here while a
# custom forward runs, and None while a recorded op or layer runs inside it; every op called
# with the recorder on top hands its call to it. Empty outside such a forward.
_tracers: list = []


def defop(forward: Callable, backward: Callable, *, name: str | None = None) -> Callable:
    """Publish ``forward``/``backward`` as one torch-named functional op.

    The returned function has ``forward``'s signature, a docstring made of the forward's and the
    backward's docstrings, and attributes ``.forward`` / ``.backward`` that ``vjp`` uses.
    """
    name = name or forward.__name__.removesuffix("_forward")

    def op(*args: Any, **kwargs: Any) -> Any:
        if _tracers and _tracers[-1] is not None:          # inside a forward-only Module
            return _tracers[-1].call_op(op, args, kwargs)
        return as_arrays(forward(*args, **kwargs)[0])

    op.__name__ = op.__qualname__ = name
    op.__module__ = forward.__module__
    op.__signature__ = inspect.signature(forward).replace(  # type: ignore[attr-defined]
        return_annotation=inspect.Signature.empty)
    fdoc = inspect.cleandoc(forward.__doc__ or "")
    bdoc = inspect.cleandoc(backward.__doc__ or "")
    op.__doc__ = f"{fdoc}\n\nBackward ({backward.__name__}):\n\n{bdoc}"
    op.forward = forward  # type: ignore[attr-defined]
    op.backward = backward  # type: ignore[attr-defined]
    op.skips_gradients = ("needs_input_grad"  # type: ignore[attr-defined]
                          in inspect.signature(backward).parameters)
    return op


def is_op(f: Any) -> bool:
    """True for a function made by :func:`defop` (one that :func:`vjp` can differentiate)."""
    return callable(getattr(f, "forward", None)) and callable(getattr(f, "backward", None))


def as_arrays(out: Any) -> Any:
    """``out`` with every NumPy scalar (also inside tuples) turned into a 0-d array: on a 0-d
    input, ``x ** 3`` is a NumPy scalar, not an array."""
    if isinstance(out, np.generic):
        return np.asarray(out)
    if isinstance(out, tuple):
        return tuple(as_arrays(o) for o in out)
    return out


def _is_float_array(a: Any) -> bool:
    return isinstance(a, np.ndarray) and a.dtype.kind == "f"


def _check_dout(name: str, out: Any, dout: Any, where: str = "dout") -> Any:
    """Match ``dout`` to ``out``'s structure; ``None`` for a float output becomes zeros."""
    if isinstance(out, tuple):
        if dout is None:
            dout = (None,) * len(out)
        if not isinstance(dout, (tuple, list)) or len(dout) != len(out):
            raise ValueError(f"{name} pullback: parameter '{where}' must be a tuple of "
                             f"{len(out)} entries mirroring the outputs")
        return tuple(_check_dout(name, o, d, f"{where}[{i}]")
                     for i, (o, d) in enumerate(zip(out, dout)))
    if not _is_float_array(out):
        return None                       # integer outputs (indices) carry no gradient
    if dout is None:
        return np.zeros_like(out)
    if out.ndim == 0 and isinstance(dout, (np.generic, float, int)) and \
            not isinstance(dout, bool):
        dout = np.asarray(dout)           # a scalar upstream gradient for a 0-d output
    if not isinstance(dout, np.ndarray):
        raise TypeError(f"{name} pullback: parameter '{where}' must be a numpy.ndarray, "
                        f"got {type(dout).__name__}")
    if dout.shape != out.shape:
        raise ValueError(f"{name} pullback: parameter '{where}' must have the output's shape "
                         f"{out.shape}, got {dout.shape}")
    return dout.astype(out.dtype, copy=False)


def _is_float_tuple(a: Any) -> bool:
    return isinstance(a, tuple) and len(a) > 0 and all(_is_float_array(e) for e in a)


def _checked_grad(name: str, where: str, a: Any, g: Any) -> Any:
    """``g`` if ``a`` is a float array (shape and dtype checked), else None."""
    if not _is_float_array(a) or g is None:
        return None
    if isinstance(g, np.generic):                          # the gradient of a 0-d argument
        g = np.asarray(g)
    if not isinstance(g, np.ndarray):
        raise RuntimeError(f"{name}: backward returned a {type(g).__name__} for argument "
                           f"{where}, expected a numpy.ndarray of shape {a.shape} and dtype "
                           f"{a.dtype}")
    if g.shape != a.shape or g.dtype != a.dtype:           # an op bug, never the user's
        raise RuntimeError(f"{name}: backward returned a gradient of shape {g.shape} "
                           f"and dtype {g.dtype} for argument {where} of shape {a.shape} "
                           f"and dtype {a.dtype}")
    return g


def _check_needs(name: str, needs: Any, n: int) -> tuple[bool, ...] | None:
    """``needs_input_grad``: None (all needed) or one bool per positional argument; a shorter
    tuple leaves the arguments after it needed (a module names only its input's)."""
    if needs is None:
        return None
    if (not isinstance(needs, (tuple, list)) or len(needs) > n
            or not all(isinstance(v, (bool, np.bool_)) for v in needs)):
        raise ValueError(f"{name} pullback: parameter 'needs_input_grad' must be None or a "
                         f"tuple of at most {n} bools (one per positional argument), got "
                         f"{needs!r}")
    return tuple(bool(v) for v in needs) + (True,) * (n - len(needs))


def vjp(f: Callable, *args: Any, **kwargs: Any) -> tuple[Any, Callable]:
    """Run op ``f`` forward and return ``(out, pullback)``; see the module docstring."""
    if not is_op(f):
        raise TypeError(f"vjp(): parameter 'f' must be a scratchnn functional op "
                        f"(made with defop), got {f!r}")
    name = f.__name__
    out, ctx = f.forward(*args, **kwargs)
    out = as_arrays(out)

    def pullback(dout: Any, needs_input_grad: Any = None) -> tuple[Any, ...]:
        needs = _check_needs(name, needs_input_grad, len(args))
        dout = _check_dout(name, out, dout)
        if needs is not None and getattr(f, "skips_gradients", False):
            grads = f.backward(ctx, dout, needs_input_grad=needs)
        else:
            grads = f.backward(ctx, dout)
        if not isinstance(grads, tuple):
            grads = (grads,)
        result = []
        for i, a in enumerate(args):
            g = grads[i] if i < len(grads) else None
            if needs is not None and not needs[i]:
                result.append(None)
                continue
            if _is_float_tuple(a) and isinstance(g, tuple) and len(g) == len(a):
                result.append(tuple(_checked_grad(name, f"{i}[{k}]", e, ge)   # LSTM's (h, c)
                                    for k, (e, ge) in enumerate(zip(a, g))))
                continue
            result.append(_checked_grad(name, str(i), a, g))
        return tuple(result)

    return out, pullback
