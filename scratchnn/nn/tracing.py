"""The backward of a forward-only Module: record the forward's ops, replay their pullbacks.

A built-in layer has an explicit ``backward``. A Module written the way a book writes one —
``__init__`` registers layers, ``forward`` calls them and functional ops — gets its backward
here, by micrograd's idea at the granularity of whole ops:

1. **Record.** While the custom ``forward`` runs, every value it computes is a
   :class:`Tracked` array (an ``np.ndarray`` subclass). Each scratchnn op called on one
   (``F.relu``, ``scratchnn.cat``, ``x + y``) runs through :func:`scratchnn.vjp`, and each layer
   called on one (``self.fc1(x)``) runs its own forward; either way the tape keeps one entry
   ``(pullback, inputs, outputs)``. The entries are in the order the forward ran them.
2. **Replay.** ``backward(dout)`` walks the tape in reverse: each entry receives the gradients of
   its outputs, calls its hand-written pullback (or the layer's ``backward``) and adds the
   gradients it returns to those of its inputs. A value used twice (a branch, a residual, a
   layer applied twice) collects one term from each use before its producer is reached —
   the multivariate chain rule. Parameters add into their ``.grad``; the forward's inputs get
   the gradients that ``backward`` returns.
3. **Refuse what it cannot see.** A NumPy function or ufunc applied to a tracked value has no
   pullback on the tape, so :class:`Tracked` refuses it with :class:`UntrackedOperationError`
   naming the operation — a gradient is never dropped silently. ``np.asarray(x)`` is the way
   to use a value as a constant (torch's ``x.detach()``); ``parameter.data`` is likewise
   detached, where the ``Parameter`` itself is tracked.
4. **Free.** The tape is freed by the backward; a second backward without a new forward is an
   error unless the first asked ``retain_graph=True``, as in torch.

Why this and not more: the ops already carry correct, tested backwards, so the replay needs no
derivative rules of its own — it only routes gradients between whole ops, and the tape is a
list. An ndarray subclass, rather than a tape keyed by ``id`` alone, is what lets an unseen
NumPy call fail loudly instead of cutting the chain. The one hook lives in
:func:`scratchnn.defop`'s wrapper: an op called while a recorder is active hands its call to it.

A layer used inside a custom forward keeps what its own backward needs in its attributes; a
layer used twice would overwrite them, so the tape keeps a copy of each layer's saved state per
call and puts it back before replaying that call.
"""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

import numpy as np

from .. import autodiff
from ..autodiff import vjp
from ..textbook import tensor as _ops

__all__ = ["Tracked", "UntrackedOperationError", "Tape"]


class UntrackedOperationError(RuntimeError):
    """An operation the replay cannot differentiate was applied to a tracked value."""


def _active() -> "Tape | None":
    return autodiff._tracers[-1] if autodiff._tracers else None


class _Suspended:
    """While a recorded op or layer runs, nothing inside it is recorded again."""

    def __enter__(self) -> None:
        autodiff._tracers.append(None)

    def __exit__(self, *exc: Any) -> None:
        autodiff._tracers.pop()


_UFUNC_OPS: dict[Any, Callable] = {
    np.add: _ops.add, np.subtract: _ops.sub, np.multiply: _ops.mul, np.true_divide: _ops.div,
    np.negative: lambda x: _ops.mul(x, -1.0), np.positive: lambda x: x,
}
_PREDICATES = {np.greater, np.greater_equal, np.less, np.less_equal, np.equal, np.not_equal,
               np.isnan, np.isinf, np.isfinite, np.signbit, np.logical_and, np.logical_or,
               np.logical_not, np.logical_xor}
_HINTS = {"concatenate": "scratchnn.cat", "stack": "scratchnn.stack",
          "reshape": "scratchnn.reshape", "transpose": "scratchnn.permute",
          "maximum": "F.relu", "exp": "an activation op", "matmul": "F.linear",
          "dot": "F.linear", "sum": "a loss op or F.linear", "copy": "the value itself"}


def _plain(a: Any) -> Any:
    """Tracked -> plain ndarray view; tuples and lists element-wise."""
    if isinstance(a, Tracked):
        return np.ndarray.view(a, np.ndarray)
    if isinstance(a, (tuple, list)):
        return type(a)(_plain(e) for e in a)
    return a


class Tracked(np.ndarray):
    """A value computed inside a forward-only Module's forward: an ndarray that the replay
    follows. scratchnn ops and layers accept it; the arithmetic operators ``+ − * /`` and
    ``reshape``, ``view``, ``flatten``, ``transpose``, ``permute``, ``.T`` and indexing are
    recorded as the textbook tensor ops; any other NumPy operation raises
    :class:`UntrackedOperationError`."""

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        tape = _active()
        if tape is None:                                 # outside a recorded forward
            kwargs = {k: _plain(v) for k, v in kwargs.items()}
            return getattr(ufunc, method)(*_plain(inputs), **kwargs)
        name = f"numpy.{ufunc.__name__}" + ("" if method == "__call__" else f".{method}")
        if "out" in kwargs:
            raise tape.untracked(f"{name} with out= (an in-place update)",
                                 "write y = y + x, not y += x")
        op = _UFUNC_OPS.get(ufunc) if method == "__call__" else None
        if op is not None and not kwargs:
            return op(*inputs)
        if ufunc in _PREDICATES and method == "__call__":
            return ufunc(*_plain(inputs), **kwargs)     # a bool result: no gradient to lose
        raise tape.untracked(name, _HINTS.get(ufunc.__name__, "a scratchnn op"))

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        tape = _active()
        if tape is None:
            return func(*_plain(args), **{k: _plain(v) for k, v in kwargs.items()})
        raise tape.untracked(f"numpy.{func.__name__}", _HINTS.get(func.__name__,
                                                                   "a scratchnn op"))

    def __repr__(self) -> str:                        # printing inside a forward is fine
        return "Tracked(" + repr(np.ndarray.view(self, np.ndarray))[6:]

    def __str__(self) -> str:
        return str(np.ndarray.view(self, np.ndarray))

    # -- the methods a torch-style forward uses, recorded as textbook tensor ops --------------
    def reshape(self, *shape: Any, **kw: Any) -> Any:
        return _ops.reshape(self, shape[0] if len(shape) == 1 else shape)

    def view(self, *shape: Any, **kw: Any) -> Any:
        """torch's x.view(N, -1) (a reshape); NumPy's view(dtype) outside a forward only."""
        tape = _active()
        if tape is None:
            return np.ndarray.view(self, *shape, **kw)
        if not shape or kw or not all(isinstance(s, (int, np.integer, tuple, list))
                                      for s in shape):
            raise tape.untracked("ndarray.view(dtype)", "x.reshape(shape)")
        return self.reshape(*shape)

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Any:  # type: ignore[override]
        return _ops.flatten(self, start_dim, end_dim)

    def ravel(self, *args: Any) -> Any:
        return _ops.flatten(self)

    def permute(self, *dims: Any) -> Any:
        return _ops.permute(self, dims[0] if len(dims) == 1 else dims)

    def transpose(self, *dims: Any) -> Any:
        """torch's x.transpose(dim0, dim1) swaps two axes; no argument or one tuple permutes
        as NumPy's."""
        if len(dims) == 2:
            return _ops.transpose(self, *dims)
        if not dims:
            return _ops.permute(self, tuple(reversed(range(self.ndim))))
        return _ops.permute(self, dims[0] if len(dims) == 1 else dims)

    def swapaxes(self, axis1: int, axis2: int) -> Any:
        return _ops.transpose(self, axis1, axis2)

    @property
    def T(self) -> Any:  # noqa: N802
        return _ops.permute(self, tuple(reversed(range(self.ndim))))

    def __getitem__(self, index: Any) -> Any:
        if _active() is None:
            return np.ndarray.view(self, np.ndarray)[index]
        return _ops.getitem(self, index)

    def __iter__(self) -> Any:
        """Rows, each one recorded as an indexing op (``for row in x``)."""
        if _active() is None:
            return iter(np.ndarray.view(self, np.ndarray))
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return iter([_ops.getitem(self, i) for i in range(self.shape[0])])

    def __setitem__(self, index: Any, value: Any) -> None:
        tape = _active()
        if tape is not None:
            raise tape.untracked("item assignment x[...] = v (an in-place update)",
                                 "scratchnn.cat or arithmetic on new values")
        np.ndarray.view(self, np.ndarray)[index] = _plain(value)


def _refuse(name: str, hint: str) -> Callable:
    def method(self: Tracked, *args: Any, **kwargs: Any) -> Any:
        tape = _active()
        if tape is not None:
            raise tape.untracked(f"ndarray.{name}", hint)
        return getattr(np.ndarray.view(self, np.ndarray), name)(*args, **kwargs)
    method.__name__ = name
    return method


for _name, _hint in (("copy", "the value itself"), ("astype", "one dtype throughout"),
                     ("squeeze", "scratchnn.reshape"), ("repeat", "scratchnn.cat"),
                     ("take", "indexing"), ("dot", "F.linear"), ("diagonal", "indexing"),
                     ("fill", "a new array"), ("sort", "a scratchnn op"),
                     ("put", "a new array"), ("resize", "scratchnn.reshape"),
                     ("cumsum", "a scratchnn op"), ("cumprod", "a scratchnn op"),
                     ("round", "a scratchnn op"), ("compress", "indexing"),
                     ("choose", "indexing"), ("trace", "a scratchnn op"),
                     ("conj", "a scratchnn op")):
    setattr(Tracked, _name, _refuse(_name, _hint))


# -- the tape ----------------------------------------------------------------------------------
# An input slot of an entry: None (a constant), ("v", key) a tracked value, ("p", Parameter),
# or a tuple of slots (a sequence argument such as cat's tensors or LSTM's (h, c)).

class Tape:
    """The recorded forward of one top-level call of a forward-only Module."""

    def __init__(self, module: Any) -> None:
        self.module = module
        self.values: dict[int, Tracked] = {}            # keeps the values alive: ids stay unique
        self.flags: dict[int, tuple[bool, bool]] = {}   # key -> (from an input, from a parameter)
        self.entries: list[tuple[Callable, list, Any, bool]] = []   # (backward, in, out, trains)
        self.inputs: list[Any] = []                     # slots of the forward's array inputs
        self.outputs: Any = None                        # slots of the forward's outputs

    # -- errors ----------------------------------------------------------------------------
    def untracked(self, what: str, hint: str) -> UntrackedOperationError:
        return UntrackedOperationError(
            f"{type(self.module).__name__}.forward(): {what} was applied to a tracked value; "
            f"the replay has no backward for it, so its gradient would be lost. Use {hint} "
            f"(a scratchnn op or layer), or np.asarray(x) to use the value as a constant")

    # -- values ----------------------------------------------------------------------------
    def track(self, a: np.ndarray, from_input: bool, from_param: bool) -> Tracked:
        t = np.ndarray.view(a, Tracked)
        self.values[id(t)] = t
        self.flags[id(t)] = (from_input, from_param)
        return t

    def slot(self, a: Any, where: str) -> Any:
        from .module import Parameter
        if isinstance(a, Tracked):
            if self.values.get(id(a)) is not a:
                raise UntrackedOperationError(
                    f"{type(self.module).__name__}.forward(): {where} is a tracked value that "
                    f"no recorded op produced (a NumPy method such as .squeeze() or .copy() "
                    f"made it, or it is left over from another forward); use scratchnn ops")
            return ("v", id(a))
        if isinstance(a, Parameter):
            return ("p", a)
        if isinstance(a, (tuple, list)) and any(isinstance(e, (Tracked, Parameter)) or
                                                isinstance(e, (tuple, list)) for e in a):
            inner = tuple(self.slot(e, f"{where}[{i}]") for i, e in enumerate(a))
            return inner if any(e is not None for e in inner) else None
        return None

    def _flags(self, s: Any) -> tuple[bool, bool]:
        if s is None:
            return (False, False)
        if isinstance(s, tuple) and s and s[0] == "v" and isinstance(s[1], int):
            return self.flags[s[1]]
        if isinstance(s, tuple) and s and s[0] == "p":
            return (False, bool(s[1].requires_grad))
        fl = [self._flags(e) for e in s]
        return (any(f[0] for f in fl), any(f[1] for f in fl))

    def wrap(self, out: Any, flags: tuple[bool, bool]) -> tuple[Any, Any]:
        """(the outputs as tracked values, their slots); integer outputs stay plain."""
        if isinstance(out, tuple):
            pairs = [self.wrap(o, flags) for o in out]
            return tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)
        if isinstance(out, np.ndarray) and out.dtype.kind == "f":
            t = self.track(out, *flags)
            return t, ("v", id(t))
        return out, None

    # -- recording -------------------------------------------------------------------------
    def call_op(self, op: Callable, args: tuple, kwargs: dict) -> Any:
        """A scratchnn op called inside the forward: run it through vjp, record its pullback."""
        if any(self.slot(v, f"{op.__name__}() keyword '{k}'") is not None
               for k, v in kwargs.items()):
            bound = inspect.signature(op).bind(*args, **kwargs)   # input=x: make it positional
            bound.apply_defaults()
            args, kwargs = bound.args, bound.kwargs
            if any(self.slot(v, k) is not None for k, v in kwargs.items()):
                raise TypeError(f"{op.__name__}(): a keyword-only argument cannot be a tracked "
                                f"value (keyword arguments are options, never differentiated)")
        slots = [self.slot(a, f"{op.__name__}() argument {i}") for i, a in enumerate(args)]
        from .module import Parameter
        plain = [_plain(a.data if isinstance(a, Parameter) else
                        tuple(e.data if isinstance(e, Parameter) else e for e in a)
                        if isinstance(a, (tuple, list)) else a) for a in args]
        with _Suspended():
            if all(sl is None for sl in slots):
                return op(*plain, **kwargs)                 # nothing tracked: a constant
            out, pullback = vjp(op, *plain, **kwargs)
        flags = self._merge(slots)
        result, out_slots = self.wrap(out, flags)

        def backward(douts: Any, needs: tuple[bool, ...]) -> tuple:
            return pullback(douts, needs_input_grad=needs)

        self.entries.append((backward, slots, out_slots, False))
        return result

    def _merge(self, slots: list) -> tuple[bool, bool]:
        fl = [self._flags(s) for s in slots]
        return (any(f[0] for f in fl), any(f[1] for f in fl))

    def call_layer(self, m: Any, args: tuple, kwargs: dict) -> Any:
        """A layer with an explicit backward called inside the forward: run its forward on
        plain arrays, keep a copy of its saved state, record its backward."""
        sig = _signature(type(m).forward)                    # (self, input, ...)
        bound = sig.bind(m, *args, **kwargs)
        inputs = []
        for name, v in list(bound.arguments.items())[1:]:
            kind = sig.parameters[name].kind
            if kind is inspect.Parameter.VAR_POSITIONAL:
                inputs.extend(v)
            elif kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.VAR_KEYWORD):
                if self.slot(v, f"{type(m).__name__}.forward() keyword '{name}'") is not None:
                    raise TypeError(f"{type(m).__name__}.forward(): keyword-only argument "
                                    f"'{name}' cannot be a tracked value")
            else:
                inputs.append(v)
        slots = [self.slot(a, f"{type(m).__name__}.forward() argument {i}")
                 for i, a in enumerate(inputs)]
        trains = any(p.requires_grad for p in m.parameters())
        with _Suspended():
            out = m(*_plain(args), **{k: _plain(v) for k, v in kwargs.items()})
        if all(sl is None for sl in slots) and not trains:
            return out
        saved = [(sub, _state(sub)) for sub in m.modules()]
        flags = self._merge(slots)
        flags = (flags[0], flags[1] or trains)
        result, out_slots = self.wrap(out, flags)

        def backward(douts: Any, needs: tuple[bool, ...]) -> tuple:
            now = [(sub, dict(sub.__dict__)) for sub, _ in saved]
            for sub, state in saved:
                sub.__dict__.update(state)
            try:
                with _Suspended():
                    grads = m._replay_backward(douts if isinstance(douts, tuple)
                                               else (douts,), any(needs))
            finally:
                for sub, d in now:
                    sub.__dict__.clear()
                    sub.__dict__.update(d)
            if grads is None:
                return (None,) * len(slots)
            grads = grads if isinstance(grads, tuple) and len(slots) > 1 else (grads,)
            lost = [i for i, sl in enumerate(slots) if i >= len(grads) and sl is not None]
            if lost:                                  # never drop a gradient silently
                raise UntrackedOperationError(
                    f"{type(m).__name__}.backward() returns gradients for {len(grads)} "
                    f"inputs, but forward argument {lost[0]} is a tracked value too: its "
                    f"gradient would be lost (pass it as a constant, np.asarray(x))")
            return grads

        self.entries.append((backward, slots, out_slots, trains))
        return result

    # -- replay ----------------------------------------------------------------------------
    def needs(self, s: Any, input_grad: bool) -> bool:
        f = self._flags(s)
        return f[1] or (input_grad and f[0])

    def replay(self, douts: tuple, input_grad: bool) -> dict[int, np.ndarray]:
        grads: dict[int, np.ndarray] = {}
        _seed(grads, self.outputs, douts, self)
        for backward, slots, out_slots, trains in reversed(self.entries):
            d = _gather(grads, out_slots)
            if _all_none(d):
                continue                              # no path from here to the outputs
            needs = tuple(self.needs(s, input_grad) for s in slots)
            if not any(needs) and not trains:
                continue                              # nothing below here wants a gradient
            for s, g in zip(slots, backward(d, needs)):
                _send(grads, s, g)
        return grads


@functools.lru_cache(maxsize=None)
def _signature(forward: Callable) -> inspect.Signature:
    """A layer class's forward signature, read once per class."""
    return inspect.signature(forward)


def _state(m: Any) -> dict:
    """What a layer's forward left for its backward: its attributes but the registries,
    parameters, submodules and buffers (buffers are running state, not saved state)."""
    from .module import Module, Parameter
    skip = {"_parameters", "_modules", "_buffers", "_param_slots"} | set(m._buffers)
    return {k: v for k, v in m.__dict__.items()
            if k not in skip and not isinstance(v, (Parameter, Module))}


def _gather(grads: dict, s: Any) -> Any:
    if s is None:
        return None
    if isinstance(s, tuple) and s and s[0] == "v" and isinstance(s[1], int):
        return grads.pop(s[1], None)
    return tuple(_gather(grads, e) for e in s)


def _all_none(d: Any) -> bool:
    return d is None or (isinstance(d, tuple) and all(_all_none(e) for e in d))


def _send(grads: dict, s: Any, g: Any) -> None:
    """Add gradient ``g`` to slot ``s``: a value's running sum, or a parameter's ``.grad``."""
    if s is None or g is None:
        return
    if s[0] == "v" and isinstance(s[1], int):
        grads[s[1]] = g if s[1] not in grads else grads[s[1]] + g
    elif s[0] == "p":
        s[1].accumulate(g)
    else:
        for e, ge in zip(s, g):
            _send(grads, e, ge)


def _seed(grads: dict, s: Any, d: Any, tape: Tape) -> None:
    """The upstream gradients of the forward's outputs, checked against them."""
    name = f"{type(tape.module).__name__}.backward"
    if d is None:
        return
    if isinstance(s, tuple) and not (s and s[0] == "v" and isinstance(s[1], int)):
        if not isinstance(d, (tuple, list)) or len(d) != len(s):
            raise ValueError(f"{name}(): the gradients must mirror forward's {len(s)} outputs, "
                             f"got {type(d).__name__}")
        for e, de in zip(s, d):
            _seed(grads, e, de, tape)
        return
    if s is None:
        raise RuntimeError(f"{name}(): an output that received a gradient does not depend on "
                           f"any input or parameter through recorded ops (it was computed as "
                           f"a constant)")
    v = tape.values[s[1]]
    if not isinstance(d, np.ndarray) or d.shape != v.shape:
        raise ValueError(f"{name}(): the gradient of an output of shape {v.shape} must be an "
                         f"array of that shape, got {getattr(d, 'shape', type(d).__name__)}")
    grads[s[1]] = grads.get(s[1], 0) + d.astype(v.dtype, copy=False)


def trace(module: Any, args: tuple, kwargs: dict) -> Any:
    """Run a forward-only module's forward on tracked inputs and keep its tape."""
    tape = Tape(module)

    def wrap_input(a: Any) -> Any:
        if isinstance(a, np.ndarray) and a.dtype.kind == "f":
            t = tape.track(a, True, False)
            tape.inputs.append(("v", id(t)))
            return t
        if isinstance(a, tuple) and a and all(isinstance(e, np.ndarray) and e.dtype.kind == "f"
                                              for e in a):
            ts = tuple(tape.track(e, True, False) for e in a)
            tape.inputs.append(tuple(("v", id(t)) for t in ts))
            return ts
        return a

    targs = tuple(wrap_input(a) for a in args)
    tkwargs = {k: wrap_input(v) for k, v in kwargs.items()}
    autodiff._tracers.append(tape)
    try:
        out = module.forward(*targs, **tkwargs)
    finally:
        autodiff._tracers.pop()
    tape.outputs = _output_slots(tape, out)
    object.__setattr__(module, "_tape", tape)
    object.__setattr__(module, "_tape_freed", False)
    return _plain(out) if not isinstance(out, list) else [_plain(o) for o in out]


def _output_slots(tape: Tape, out: Any) -> Any:
    if isinstance(out, (tuple, list)):
        return tuple(_output_slots(tape, o) for o in out)
    if isinstance(out, Tracked):
        return tape.slot(out, "an output")
    return None


def backward(module: Any, grads: tuple, input_grad: bool, retain_graph: bool) -> Any:
    """Replay ``module``'s tape; returns gradients mirroring forward's array inputs."""
    name = f"{type(module).__name__}.backward"
    tape = module.__dict__.get("_tape")
    if tape is None:
        if module.__dict__.get("_tape_freed"):
            raise RuntimeError(f"{name}(): trying to backward through the forward a second "
                               f"time: the recorded forward was freed by the first backward. "
                               f"Run forward again, or pass retain_graph=True to the first "
                               f"backward")
        raise RuntimeError(f"{name}() called before forward() (run the forward as model(x): "
                           f"model.forward(x) called directly records nothing)")
    outs = tape.outputs
    single = outs is None or (outs[0] == "v" and isinstance(outs[1], int))
    if not single:                                  # backward(d1, d2) or backward((d1, d2))
        d = grads[0] if len(grads) == 1 and isinstance(grads[0], (tuple, list)) else grads
    elif not grads:
        v = None if outs is None else tape.values[outs[1]]
        if v is None or v.ndim:
            raise ValueError(f"{name}(): parameter 'dout' is required for an output of shape "
                             f"{getattr(v, 'shape', None)} (only a 0-d output defaults to 1)")
        d = np.ones((), v.dtype)                    # a scalar output: d(out)/d(out) = 1
    elif len(grads) == 1:
        d = grads[0]
    else:
        raise ValueError(f"{name}(): forward returned one output, got {len(grads)} gradients")
    result = tape.replay(d, input_grad)
    if not retain_graph:
        object.__setattr__(module, "_tape", None)
        object.__setattr__(module, "_tape_freed", True)
    if not input_grad:
        return None

    def grad_of(s: Any) -> Any:
        if isinstance(s, tuple) and s and s[0] == "v" and isinstance(s[1], int):
            g = result.get(s[1])
            v = np.ndarray.view(tape.values[s[1]], np.ndarray)
            return np.zeros_like(v) if g is None else g
        return tuple(grad_of(e) for e in s)

    gs = tuple(grad_of(s) for s in tape.inputs)
    return gs[0] if len(gs) == 1 else gs
