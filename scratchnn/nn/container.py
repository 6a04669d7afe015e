"""Shape modules: ``Flatten`` and ``Unflatten`` (torch.nn's), with explicit backward.

Both are reshapes, so the backward reshapes the gradient back: dx = dy.reshape(x.shape). The
output is a view of the input where NumPy can make one (as torch's), never a modified input.
``ModuleList`` and ``ModuleDict`` hold submodules for a forward to call (torch's: no forward
of their own; keys ``0.``, ``1.``, … or the dict's keys in the state_dict).
``Sequential`` lives in :mod:`scratchnn.nn.module`; the replay of forward-only modules in
:mod:`scratchnn.nn.tracing` (its ``Tracked`` and ``UntrackedOperationError`` are re-exported
here, and so in ``scratchnn.nn``).
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from .._validate import check_array, check_dim, check_int
from .module import Module
from .tracing import Tracked, UntrackedOperationError

__all__ = ["Flatten", "Unflatten", "ModuleList", "ModuleDict", "Tracked", "UntrackedOperationError"]


class _Reshape(Module):
    """Remembers the input's shape in forward; backward reshapes dy back to it. Subclasses
    define ``_new_shape(input_shape) -> output_shape`` (validating against the input)."""

    def forward(self, input: np.ndarray) -> np.ndarray:
        fn = type(self).__name__
        check_array(fn, "input", input, floating=False)
        shape = self._new_shape(input.shape)
        object.__setattr__(self, "_in_shape", input.shape)
        return input.reshape(shape)

    def backward(self, dout: np.ndarray, *, retain_graph: bool = False) -> np.ndarray:
        fn = type(self).__name__
        shape = self._saved_for_backward("_in_shape")
        check_array(f"{fn}.backward", "dout", dout)
        if dout.size != math.prod(shape):
            raise ValueError(f"{fn}.backward(): parameter 'dout' has {dout.size} elements, "
                             f"the forward input had shape {shape}")
        self._release("_in_shape", retain_graph)
        return dout.reshape(shape)


class Flatten(_Reshape):
    """Flatten(start_dim=1, end_dim=-1): merge dims start_dim..end_dim into one.

    Shapes:  (N, C, H, W) -> (N, C·H·W) by default; a 0-d input flattens to (1,) when both
             dims are 0 or -1 (torch's rule).
    Backward: dx = dy.reshape(x.shape).
    Torch:   torch.nn.Flatten
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim = check_int("Flatten", "start_dim", start_dim)
        self.end_dim = check_int("Flatten", "end_dim", end_dim)

    def _new_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        fn = "Flatten"
        s = check_dim(fn, "start_dim", self.start_dim, len(shape))
        e = check_dim(fn, "end_dim", self.end_dim, len(shape))
        if s > e:
            raise ValueError(f"{fn}(): parameter 'start_dim' ({self.start_dim}) must not come "
                             f"after 'end_dim' ({self.end_dim}) for a {len(shape)}-d input")
        return shape[:s] + (math.prod(shape[s:e + 1]),) + shape[e + 1:]

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(_Reshape):
    """Unflatten(dim, unflattened_size): split dim ``dim`` into ``unflattened_size`` (one entry
    may be -1, inferred).

    Shapes:  (N, C·H·W) -> (N, C, H, W) for Unflatten(1, (C, H, W)).
    Backward: dx = dy.reshape(x.shape).
    Torch:   torch.nn.Unflatten (integer dims; named dims are not supported)
    """

    def __init__(self, dim: int, unflattened_size: Sequence[int]) -> None:
        super().__init__()
        fn = "Unflatten"
        self.dim = check_int(fn, "dim", dim)
        if not isinstance(unflattened_size, (tuple, list)):
            raise TypeError(f"{fn}(): parameter 'unflattened_size' must be a tuple or list of "
                            f"ints, got {unflattened_size!r}")
        sizes = tuple(check_int(fn, "unflattened_size", s, min=-1) for s in unflattened_size)
        if sizes.count(-1) > 1:
            raise ValueError(f"{fn}(): parameter 'unflattened_size' may contain at most one -1, "
                             f"got {sizes}")
        self.unflattened_size = sizes

    def _new_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        fn = "Unflatten"
        d = check_dim(fn, "dim", self.dim, len(shape))
        n = shape[d] if shape else 1
        sizes = self.unflattened_size
        known = math.prod(s for s in sizes if s != -1)
        if -1 in sizes and known > 0 and n % known == 0:
            sizes = tuple(n // known if s == -1 else s for s in sizes)
        if -1 in sizes or math.prod(sizes) != n:
            raise ValueError(f"{fn}(): parameter 'unflattened_size' {self.unflattened_size} "
                             f"does not multiply up to the size of dim {self.dim} ({n})")
        return shape[:d] + sizes + shape[d + 1:]

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


def _module(fn: str, m: Any) -> Module:
    if not isinstance(m, Module):
        raise TypeError(f"{fn}(): parameter 'module' must be a Module, got {type(m).__name__}")
    return m


class ModuleList(Module):
    """ModuleList(modules=None): a list of submodules, registered under ``"0"``, ``"1"``, ….

    Indexing, ``len``, iteration, ``append``, ``extend``, ``insert`` as torch's; a slice is a
    new ModuleList of the same modules. It has no forward: a parent's forward iterates it.
    Torch: torch.nn.ModuleList"""

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def _index(self, i: int) -> str:
        i = check_int("ModuleList", "idx", i)
        if not -len(self) <= i < len(self):
            raise IndexError(f"ModuleList: index {i} is out of range for {len(self)} modules")
        return str(i % len(self))

    def __getitem__(self, i: int | slice) -> Any:
        if isinstance(i, slice):
            return ModuleList(list(self._modules.values())[i])
        return self._modules[self._index(i)]

    def __setitem__(self, i: int, m: Module) -> None:
        setattr(self, self._index(i), _module("ModuleList.__setitem__", m))

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._modules.values()))

    def append(self, module: Module) -> "ModuleList":
        setattr(self, str(len(self)), _module("ModuleList.append", module))
        return self

    def extend(self, modules: Iterable[Module]) -> "ModuleList":
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> None:
        mods = list(self._modules.values())
        mods.insert(index, _module("ModuleList.insert", module))
        self._modules.clear()
        for i, m in enumerate(mods):
            setattr(self, str(i), m)


class ModuleDict(Module):
    """ModuleDict(modules=None): submodules by name, in insertion order (``d[key]``, ``in``,
    ``keys``, ``values``, ``items``, ``update``, ``pop``, ``len``, iteration over keys).
    Torch: torch.nn.ModuleDict"""

    def __init__(self, modules: Any = None) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        if not isinstance(key, str):
            raise TypeError(f"ModuleDict(): keys must be str, got {type(key).__name__}")
        setattr(self, key, _module("ModuleDict.__setitem__", module))

    def __delitem__(self, key: str) -> None:
        del self._modules[key]
        object.__delattr__(self, key)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._modules))

    def __contains__(self, key: str) -> bool:
        return key in self._modules

    def keys(self) -> Any:
        return self._modules.keys()

    def values(self) -> Any:
        return self._modules.values()

    def items(self) -> Any:
        return self._modules.items()

    def pop(self, key: str) -> Module:
        m = self._modules[key]
        del self[key]
        return m

    def update(self, modules: Any) -> None:
        for k, m in (modules.items() if hasattr(modules, "items") else modules):
            self[k] = m

