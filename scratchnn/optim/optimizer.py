"""``Optimizer``: parameter groups, per-parameter state, ``zero_grad`` and torch's state_dict.

An optimizer holds a list of *parameter groups* — dicts with a ``'params'`` list and one value
per option (``lr``, ``momentum``, ...; options missing from a group come from the optimizer's
defaults) — and ``state``, a dict from each :class:`~scratchnn.nn.Parameter` to its buffers
(``'step'``, ``'exp_avg'``, ...). ``step()`` updates ``p.data`` **in place**, in the
parameter's dtype, for every parameter whose ``.grad`` is not None (the others are skipped, as
in torch).

``state_dict()`` has torch's layout, parameters replaced by their index in group order::

    {'state': {0: {'step': array(3., dtype=float32), 'exp_avg': ..., ...}, ...},
     'param_groups': [{'lr': 0.001, 'betas': (0.9, 0.999), ..., 'params': [0, 1]}, ...]}

so a torch optimizer's state_dict with its tensors turned into arrays loads directly, and ours
loads into torch with the arrays turned into tensors. As in torch, the returned dict references
the live state (copy it to keep a snapshot); ``load_state_dict`` copies.

Each optimizer subclass supplies ``_check(fn, group)`` (validate and normalise one group's
options), ``_state_keys(group)`` (the buffers a parameter's state must hold) and
``_update(p, grad, group)`` (torch's ``_single_tensor_*`` loop body for one parameter, with the
same order of floating-point operations). The update each ``_update`` performs is written out
as a plain pure formula in ``scratchnn.textbook.optim`` (``sgd_step``, ``adam_step``, ...).
"""
from __future__ import annotations

import copy
from typing import Any, Callable, Iterable

import numpy as np

from .._validate import check_float
from ..nn.module import Parameter

__all__ = ["Optimizer"]


def _scalar_step() -> np.ndarray:
    """A fresh step counter: a 0-d float32 array, like torch's ``torch.tensor(0.)``."""
    return np.zeros((), dtype=np.float32)


class Optimizer:
    """Base class: holds ``param_groups`` and ``state``; subclasses implement the update."""

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        fn = type(self).__name__
        self.defaults = self._check(fn, dict(defaults))
        self.state: dict[Parameter, dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []
        if isinstance(params, (Parameter, np.ndarray, set, frozenset)) or \
                not hasattr(params, "__iter__"):
            raise TypeError(f"{fn}(): parameter 'params' must be an ordered iterable of "
                            f"Parameters or of dicts (parameter groups), got "
                            f"{type(params).__name__}")
        groups = list(params)
        if not groups:
            raise ValueError(f"{fn}(): parameter 'params' is empty: the optimizer got no "
                             f"parameters to optimize")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    # -- subclass hooks ---------------------------------------------------------------------
    def _check(self, fn: str, group: dict[str, Any]) -> dict[str, Any]:
        """Validate one group's options (every optimizer has ``lr``); returns ``group``."""
        group["lr"] = check_float(fn, "lr", group["lr"], lo=0.0)
        return group

    def _state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        """The buffers a non-empty per-parameter state must hold under ``group``'s options."""
        return ()

    def _update(self, p: Parameter, grad: np.ndarray, group: dict[str, Any]) -> None:
        raise TypeError(f"{type(self).__name__} defines no _update()")

    def _state(self, p: Parameter) -> dict[str, Any]:
        """``p``'s state dict, created empty on first use (torch's ``defaultdict``)."""
        return self.state.setdefault(p, {})

    # -- groups -----------------------------------------------------------------------------
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group; its missing options are filled from the defaults (torch semantics)."""
        fn = f"{type(self).__name__}.add_param_group"
        if not isinstance(param_group, dict):
            raise TypeError(f"{fn}(): parameter 'param_group' must be a dict, got "
                            f"{type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError(f"{fn}(): parameter 'param_group' has no key 'params'")
        params = param_group["params"]
        if isinstance(params, Parameter):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(f"{fn}(): parameter 'params' must be an ordered collection "
                            f"(the order fixes the state_dict indices), got a set")
        else:
            params = list(params)
        for i, p in enumerate(params):
            if not isinstance(p, Parameter):
                raise TypeError(f"{fn}(): parameter 'params' must hold scratchnn.nn.Parameter "
                                f"objects, got {type(p).__name__} at position {i}")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError(f"{fn}(): parameter 'params' holds a parameter that is already in "
                             f"another parameter group")
        group = {**self.defaults, **{k: v for k, v in param_group.items() if k != "params"}}
        group = self._check(type(self).__name__, group)
        group["params"] = params
        self.param_groups.append(group)

    # -- stepping ---------------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's ``.grad``: to None (default, as torch ≥ 2.0) or to zeros."""
        for g in self.param_groups:
            for p in g["params"]:
                if set_to_none or p.grad is None:
                    p.grad = None
                else:
                    p.grad[...] = 0

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter with a gradient; returns ``closure()`` if given (it is
        called first, to recompute the loss and gradients, as in torch)."""
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self._update(p, self._checked_grad(p), group)
        return loss

    def _checked_grad(self, p: Parameter) -> np.ndarray:
        g = np.asarray(p.grad) if isinstance(p.grad, np.generic) else p.grad   # a 0-d result
        fn = f"{type(self).__name__}.step"
        if not isinstance(g, np.ndarray):
            raise TypeError(f"{fn}(): parameter 'params' has a .grad of type "
                            f"{type(g).__name__}; expected a numpy.ndarray or None")
        if g.shape != p.data.shape or g.dtype != p.data.dtype:
            raise ValueError(f"{fn}(): parameter 'params' has a .grad of shape {g.shape} and "
                             f"dtype {g.dtype} for a parameter of shape {p.data.shape} and "
                             f"dtype {p.data.dtype}")
        return g

    # -- state_dict -------------------------------------------------------------------------
    def _indices(self) -> tuple[list[list[int]], dict[int, int]]:
        """torch's numbering: each group's parameters numbered on from the previous group's."""
        index: dict[int, int] = {}
        numbered, start = [], 0
        for g in self.param_groups:
            for i, p in enumerate(g["params"], start):
                index.setdefault(id(p), i)
            numbered.append([index[id(p)] for p in g["params"]])
            start += len(g["params"])
        return numbered, index

    def state_dict(self) -> dict[str, Any]:
        """``{'state': {index: {...}}, 'param_groups': [{..., 'params': [indices]}]}``."""
        numbered, index = self._indices()
        groups = []
        for g, idx in zip(self.param_groups, numbered):
            packed = {k: v for k, v in g.items() if k != "params"}
            packed["params"] = idx
            groups.append(packed)
        state = {index[id(p)]: s for p, s in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state_dict of this layout (ours, or torch's with tensors as arrays).

        Everything is validated before anything changes: the group count and sizes, every
        group option, every state index and buffer (present, and of the parameter's shape).
        Buffers are copied and cast to the parameter's dtype; ``step`` stays a float32 0-d array.
        """
        fn = f"{type(self).__name__}.load_state_dict"
        if not hasattr(state_dict, "items"):
            raise TypeError(f"{fn}(): parameter 'state_dict' must be a mapping")
        for key in ("state", "param_groups"):
            if key not in state_dict:
                raise KeyError(f"{fn}(): parameter 'state_dict' has no key '{key}'")
        saved = list(state_dict["param_groups"])
        if len(saved) != len(self.param_groups):
            raise ValueError(f"{fn}(): parameter 'state_dict' has {len(saved)} parameter "
                             f"groups, the optimizer has {len(self.param_groups)}")
        by_index: dict[Any, Parameter] = {}
        groups = []
        for k, (own, sg) in enumerate(zip(self.param_groups, saved)):
            if "params" not in sg or len(sg["params"]) != len(own["params"]):
                raise ValueError(f"{fn}(): parameter 'state_dict' key 'param_groups[{k}]' must "
                                 f"list {len(own['params'])} params")
            missing = [o for o in self.defaults if o not in sg]
            if missing:
                raise KeyError(f"{fn}(): parameter 'state_dict' key 'param_groups[{k}]' has no "
                               f"option {missing[0]!r}")
            by_index.update(zip(sg["params"], own["params"]))
            group = self._check(fn, copy.deepcopy({o: v for o, v in sg.items() if o != "params"}))
            group["params"] = own["params"]
            groups.append(group)
        group_of = {id(p): g for g in groups for p in g["params"]}
        state: dict[Parameter, dict[str, Any]] = {}
        for i, buffers in state_dict["state"].items():
            if i not in by_index:
                raise KeyError(f"{fn}(): parameter 'state_dict' key 'state[{i!r}]' names no "
                               f"parameter of the optimizer")
            p = by_index[i]
            state[p] = self._load_buffers(fn, f"state[{i!r}]", p, buffers, group_of[id(p)])
        self.param_groups = groups
        self.state = state

    def _load_buffers(self, fn: str, where: str, p: Parameter, buffers: dict[str, Any],
                      group: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, v in buffers.items():
            if key == "step":
                out[key] = np.asarray(np.asarray(v).item(), dtype=np.float32)
                continue
            if v is None:                              # e.g. SGD's momentum_buffer before use
                out[key] = None
                continue
            a = np.asarray(v.numpy() if hasattr(v, "numpy") else v)
            if a.shape != p.data.shape:
                raise ValueError(f"{fn}(): parameter 'state_dict' key '{where}[{key!r}]' has "
                                 f"shape {a.shape}, expected the parameter's {p.data.shape}")
            out[key] = np.array(a, dtype=p.data.dtype, copy=True)
        if out:
            missing = [k for k in self._state_keys(group) if k not in out]
            if missing:
                raise KeyError(f"{fn}(): parameter 'state_dict' key '{where}' has no buffer "
                               f"{missing[0]!r}")
        return out

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(g.items()) if k != "params"]
        return "\n".join(lines + [")"])
