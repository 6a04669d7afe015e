"""``Parameter``, ``Module``, ``Sequential``: torch.nn's containers, with explicit backprop.

The module contract (docs/design.md):

* ``y = m(x)`` runs ``forward`` and keeps what ``backward`` needs (only the latest call's);
* ``dx = m.backward(dy)`` takes gradients mirroring forward's outputs, returns gradients
  mirroring forward's array inputs, and **adds** into every parameter's ``.grad``;
  ``m.backward(dy, input_grad=False)`` (one-op modules and ``Sequential``) returns None and
  skips the input gradient where the op can — torch's behaviour for a first layer, whose
  input (the data) does not require grad;
* ``state_dict()`` has torch's keys, shapes and layouts, so a torch state_dict (converted with
  ``.numpy()``) loads directly;
* a forward-only model's backward frees its recorded forward: a second ``backward`` without a
  new forward raises, unless the first was called with ``retain_graph=True`` (torch's rule).
  A backward frees what the forward saved for it: a second backward without a new forward is
  an error ("backward through the graph a second time", as torch's), unless the first asked
  ``retain_graph=True``; then each call adds into ``.grad`` again;
* an error raised inside a model names the layer's path (``fc1 (Linear): linear(): ...``).

Most layers are a functional op plus parameters; :class:`OpModule` writes that pattern once.

**Forward-only modules.** A subclass that defines ``forward`` and no ``backward`` (the way a
book writes a model) gets its backward from :mod:`scratchnn.nn.tracing`: ``__call__`` records
the ops and layers its forward runs, and ``backward`` replays their hand-written pullbacks in
reverse. Built-in layers keep their explicit backward; a class that defines ``backward`` itself
is never traced.
"""
from __future__ import annotations

import functools
import inspect
from collections import OrderedDict
from typing import Any, Callable, Iterator

import numpy as np

from .. import autodiff
from .._validate import check_state_keys
from . import tracing

__all__ = ["Parameter", "Module", "Sequential", "OpModule"]


class Parameter:
    """A trainable array: ``.data`` (the values) and ``.grad`` (None until a backward adds one).

    As in torch, ``.grad`` is assignable and optimizers update ``.data`` in place.
    """

    def __init__(self, data: np.ndarray, requires_grad: bool = True):
        if not isinstance(data, np.ndarray) or data.dtype.kind != "f":
            raise TypeError("Parameter(): parameter 'data' must be a floating numpy.ndarray")
        self.data = data
        self.grad: np.ndarray | None = None
        self.requires_grad = requires_grad

    shape = property(lambda self: self.data.shape)
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: self.data.size)

    def numpy(self) -> np.ndarray:
        return self.data

    def accumulate(self, g: np.ndarray) -> None:
        """``grad += g`` (``grad = g`` the first time), as torch's autograd accumulates."""
        if not self.requires_grad:
            return
        if self.grad is None:
            self.grad = np.array(g, dtype=self.data.dtype, copy=True)
        else:
            self.grad += g

    def __repr__(self) -> str:
        return f"Parameter(shape={self.shape}, dtype={self.dtype})"


class Module:
    """Base class of every layer: parameter/submodule registration, modes, state_dict.

    Subclasses implement ``forward(*inputs)`` and ``backward(*grads)``, or only ``forward``:
    then ``backward`` replays the recorded forward (:mod:`scratchnn.nn.tracing`).
    """

    _traced = False                 # True: forward-only, backward by replay

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "_traced" in cls.__dict__:
            return                  # the class says so itself (a replay with its own backward)
        if "backward" in cls.__dict__:
            cls._traced = False
        elif "forward" in cls.__dict__ and not cls.__module__.startswith("scratchnn."):
            cls._traced = True      # a user's forward-only module

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "training", True)

    # -- registration ---------------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}: call super().__init__() before "
                               f"assigning attributes")
        params, mods = self.__dict__["_parameters"], self.__dict__["_modules"]
        params.pop(name, None)
        mods.pop(name, None)
        if isinstance(value, Parameter):
            params[name] = value
        elif isinstance(value, Module):
            mods[name] = value
        elif value is None and name in self.__dict__.get("_param_slots", ()):
            params[name] = None                       # e.g. bias=False keeps the slot
        object.__setattr__(self, name, value)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register ``param`` (``None`` keeps an empty slot, as torch's ``bias=None``)."""
        self.__dict__.setdefault("_param_slots", set()).add(name)
        setattr(self, name, param)

    def register_buffer(self, name: str, value: np.ndarray) -> None:
        """A non-trainable array that is part of the state_dict (e.g. running statistics)."""
        self._buffers[name] = value
        object.__setattr__(self, name, value)

    # -- traversal ------------------------------------------------------------------------
    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        seen: set[int] = set()
        for name, p in self._named_members(prefix, "_parameters"):
            if p is not None and id(p) not in seen:
                seen.add(id(p))
                yield name, p

    def parameters(self) -> Iterator[Parameter]:
        for _, p in self.named_parameters():
            yield p

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
        yield from self._named_members(prefix, "_buffers")

    def _named_members(self, prefix: str, kind: str) -> Iterator[tuple[str, Any]]:
        for name, v in getattr(self, kind).items():
            yield prefix + name, v
        for mname, m in self._modules.items():
            if m is not None:
                yield from m._named_members(f"{prefix}{mname}.", kind)

    def children(self) -> Iterator["Module"]:
        yield from (m for m in self._modules.values() if m is not None)

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        yield prefix, self
        for name, m in self._modules.items():
            if m is not None:
                yield from m.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator["Module"]:
        for _, m in self.named_modules():
            yield m

    # -- modes and grads ------------------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        if not isinstance(mode, bool):
            raise TypeError(f"{type(self).__name__}.train(): parameter 'mode' must be a bool")
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's ``.grad`` (to None by default, as torch ≥ 2.0)."""
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad[...] = 0

    def to(self, dtype: Any) -> "Module":
        """Cast every parameter and buffer to ``dtype`` (float32 or float64), in place."""
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"{type(self).__name__}.to(): parameter 'dtype' must be float32 or "
                            f"float64, got {dtype}")
        for m in self.modules():
            for p in m._parameters.values():
                if p is not None:
                    p.data = p.data.astype(dtype)
                    p.grad = None if p.grad is None else p.grad.astype(dtype)
            for k, b in list(m._buffers.items()):
                if b is not None and b.dtype.kind == "f":
                    m.register_buffer(k, b.astype(dtype))
        return self

    def double(self) -> "Module":
        return self.to(np.float64)

    def float(self) -> "Module":
        return self.to(np.float32)

    # -- state ----------------------------------------------------------------------------
    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Parameters and buffers under torch's keys (the arrays themselves, as torch shares
        storage)."""
        sd: OrderedDict[str, np.ndarray] = OrderedDict()
        for name, p in self._named_members("", "_parameters"):
            if p is not None:
                sd[name] = p.data
        for name, b in self.named_buffers():
            if b is not None:
                sd[name] = b
        return sd

    def load_state_dict(self, state_dict: dict, strict: bool = True) -> None:
        """Copy arrays (or anything with ``.numpy()``) into the parameters, checking keys/shapes."""
        fn = f"{type(self).__name__}.load_state_dict"
        if not hasattr(state_dict, "items"):
            raise TypeError(f"{fn}(): parameter 'state_dict' must be a mapping")
        own = self.state_dict()
        if strict:
            check_state_keys(fn, state_dict, own)
        arrays = {}
        for k, v in state_dict.items():
            if k not in own:
                continue
            a = np.asarray(v.numpy() if hasattr(v, "numpy") else v)
            if a.shape != own[k].shape:
                raise ValueError(f"{fn}(): parameter 'state_dict' key '{k}' has shape "
                                 f"{a.shape}, expected {own[k].shape}")
            arrays[k] = a
        for k, a in arrays.items():                        # validated first, then copied
            np.copyto(own[k], a, casting="unsafe")

    # -- calling --------------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run ``forward``: recorded as one step when a forward-only parent is recording,
        recorded op by op when this module is forward-only, plainly otherwise."""
        _depth[0] += 1
        try:
            tape = autodiff._tracers[-1] if autodiff._tracers else None
            if tape is not None:
                if self._traced:
                    return self.forward(*args, **kwargs)       # its ops join the parent's tape
                return tape.call_layer(self, args, kwargs)
            if self._traced:
                return tracing.trace(self, args, kwargs)
            return self.forward(*args, **kwargs)
        except (TypeError, ValueError, RuntimeError) as e:
            chain = e.__dict__.setdefault("_scratchnn_modules", [])
            chain.append(self)
            if _depth[0] > 1:
                raise
            raise _named(e, self, chain) from None
        finally:
            _depth[0] -= 1

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"{type(self).__name__} defines no forward()")

    def backward(self, *grads: Any, input_grad: bool = True, retain_graph: bool = False) -> Any:
        """A forward-only module's backward: replay the recorded forward in reverse.

        ``grads`` mirror forward's outputs (``None`` allowed; none at all for a 0-d output,
        read as 1). Returns gradients mirroring forward's array inputs and adds into every
        parameter's ``.grad``. ``input_grad=False``: the inputs are data (returns None, and
        gradients only the parameters need are computed); ``retain_graph=True`` keeps the
        recording for another backward."""
        if not self._traced:
            raise TypeError(f"{type(self).__name__} defines no backward()")
        return tracing.backward(self, grads, input_grad, retain_graph)

    def _saved_for_backward(self, key: str) -> Any:
        """What this layer's forward saved under ``key`` for its backward, or the error torch
        gives: before any forward, or a second backward after the first freed it."""
        fn = f"{type(self).__name__}.backward"
        value = self.__dict__.get(key)
        if value is None:
            raise RuntimeError(f"{fn}() called before forward()")
        if value is _FREED:
            raise RuntimeError(f"{fn}(): trying to backward through the graph a second time: "
                               f"the first backward freed what the forward saved; call the "
                               f"first one with retain_graph=True to backward again")
        return value

    def _release(self, key: str, retain_graph: bool) -> None:
        """After a backward: free the saved state, unless the call asked to keep it."""
        if not retain_graph:
            object.__setattr__(self, key, _FREED)

    def _replay_backward(self, douts: tuple, input_grad: bool) -> Any:
        """This layer's backward as a recorded step of a parent's forward: ``douts`` mirror
        the outputs of that call; returns gradients mirroring its inputs."""
        if not input_grad and _takes(self, "input_grad"):
            return self.backward(*douts, input_grad=False)
        return self.backward(*douts)

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"  ({n}): " + repr(m).replace("\n", "\n  ") for n, m in self._modules.items()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        return head + ("\n" + "\n".join(lines) + "\n)" if lines else ")")


_depth = [0]                        # how deep in nested Module calls we are
_FREED = object()                   # a layer's saved state after a backward freed it


def _named(e: BaseException, root: Module, chain: list) -> BaseException:
    """``e`` with the path of the innermost layer that raised it (as named from ``root``)
    in front of its message: ``fc1 (Linear): linear(): ...``."""
    names = {id(m): n for n, m in root.named_modules()}
    inner = next((m for m in chain if names.get(id(m))), None)
    if inner is None or type(e) not in (TypeError, ValueError, RuntimeError,
                                        tracing.UntrackedOperationError):
        return e
    new = type(e)(f"{names[id(inner)]} ({type(inner).__name__}): {e}")
    return new.with_traceback(e.__traceback__)


class OpModule(Module):
    """A module that is one functional op applied to its input(s) and parameters.

    Subclasses implement ``_call(x)`` returning ``(out, pullback)`` — normally
    ``vjp(F.op, x, self.weight.data, ...)`` — and list in ``_grad_params`` the parameter
    names that pullback's entries 1.. map to. ``backward`` then returns the input gradient and
    accumulates the rest into ``.grad``.
    """

    _grad_params: tuple[str, ...] = ()

    def _call(self, *inputs: Any) -> tuple[Any, Callable]:
        raise TypeError(f"{type(self).__name__} defines no _call()")

    def forward(self, input: Any, *inputs: Any) -> Any:
        out, pullback = self._call(input, *inputs)
        object.__setattr__(self, "_pullback", pullback)
        object.__setattr__(self, "_n_inputs", 1 + len(inputs))
        return out

    def backward(self, dout: Any, *, input_grad: bool = True, retain_graph: bool = False
                 ) -> Any:
        """Input gradient(s); adds the parameters' gradients into their ``.grad``.

        ``input_grad=False``: the input gradient is not wanted (returns None); ops that can
        skip its work do (a convolution's dx), via the pullback's ``needs_input_grad``.
        ``retain_graph=True`` keeps the saved state for another backward."""
        pb = self._saved_for_backward("_pullback")
        n = self.__dict__["_n_inputs"]
        if input_grad or "needs_input_grad" not in inspect.signature(pb).parameters:
            grads = pb(dout)                        # a hand-written pullback: compute, drop
        else:
            grads = pb(dout, needs_input_grad=(False,) * n)
        for name, g in zip(self._grad_params, grads[n:]):
            p = getattr(self, name)
            if p is not None and g is not None:
                p.accumulate(g)
        self._release("_pullback", retain_graph)
        if not input_grad:
            return None
        return grads[0] if n == 1 else grads[:n]


class Sequential(Module):
    """Modules applied in order; ``backward`` runs them in reverse."""

    def __init__(self, *modules: Module):
        super().__init__()
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"Sequential(): argument {i} must be a Module, got "
                                f"{type(m).__name__}")
            setattr(self, str(i), m)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __getitem__(self, i: int) -> Module:
        return list(self._modules.values())[i]

    def append(self, m: Module) -> "Sequential":
        setattr(self, str(len(self)), m)
        return self

    def forward(self, input: Any) -> Any:
        for m in self:
            input = m(input)
        return input

    def backward(self, dy: Any, *, input_grad: bool = True, retain_graph: bool = False) -> Any:
        """Backward through the modules in reverse; returns dx.

        ``input_grad=False`` (the input is data, as in training): returns None, and the first
        module skips its input gradient if it can (a one-op module or a Sequential) — the
        chapter's first convolution then computes only dW and db, as torch does.
        ``retain_graph=True`` is passed on to every module that takes it."""
        mods = list(self)
        for i, m in enumerate(reversed(mods)):
            kw = {"retain_graph": True} if retain_graph and _takes(m, "retain_graph") else {}
            if not input_grad and i == len(mods) - 1 and _takes(m, "input_grad"):
                return m.backward(dy, input_grad=False, **kw)
            dy = m.backward(dy, **kw)
        return dy if input_grad else None


@functools.lru_cache(maxsize=None)
def _backward_takes(backward: Callable, keyword: str) -> bool:
    return keyword in inspect.signature(backward).parameters


def _takes(m: Module, keyword: str) -> bool:
    """Whether ``m.backward`` accepts ``keyword`` (looked up once per class)."""
    return _backward_takes(type(m).backward, keyword)

