"""``Linear`` and ``Identity``: torch.nn's fully-connected layer and its no-op placeholder.

``Linear`` is :func:`scratchnn.functional.linear` plus two parameters, initialised with torch's
formulas (``reset_parameters``): W ~ U(−1/√in, 1/√in) (kaiming_uniform_ with a = √5), and
b ~ U(−1/√in, 1/√in). Values come from a NumPy generator (``generator=`` for reproducibility,
else scratchnn's default one), so they differ from torch's — copy torch's with
``load_state_dict`` to get the identical layer.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from .. import functional as F
from .._validate import check_int
from ..autodiff import vjp
from ..random import get_generator
from . import init
from .activation import _param_dtype
from .module import Module, OpModule, Parameter

__all__ = ["Linear", "Identity"]


class Linear(OpModule):
    """Linear(in_features, out_features, bias=True, device=None, dtype=None, *, generator=None):
    y = x Wᵀ + b over any number of leading dimensions.

    Parameters: ``weight`` (out_features, in_features), ``bias`` (out_features) or None.
    ``dtype`` defaults to float32 (torch's default dtype); ``device`` only accepts None/'cpu'.
    ``backward(dy)`` returns dx and adds dW = Σ dyᵀ x, db = Σ dy into ``.grad``.
    Torch: torch.nn.Linear (same state_dict keys, shapes and layout).
    """

    _grad_params = ("weight", "bias")

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 device: Any = None, dtype: Any = None, *,
                 generator: np.random.Generator | None = None) -> None:
        super().__init__()
        fn = "Linear"
        self.in_features = check_int(fn, "in_features", in_features, min=0)
        self.out_features = check_int(fn, "out_features", out_features, min=0)
        if not isinstance(bias, (bool, np.bool_)):
            raise TypeError(f"{fn}(): parameter 'bias' must be a bool, got {bias!r}")
        dt = _param_dtype(fn, device, dtype)
        get_generator(fn, generator)                       # validate before any work
        self.weight = Parameter(np.empty((self.out_features, self.in_features), dtype=dt))
        if bias:
            self.bias = Parameter(np.empty(self.out_features, dtype=dt))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters(generator)

    def reset_parameters(self, generator: np.random.Generator | None = None) -> None:
        """torch's init: kaiming_uniform_(W, a=√5) = U(±1/√in); b ~ U(±1/√in)."""
        g = get_generator("Linear.reset_parameters", generator)
        init.kaiming_uniform_(self.weight.data, negative_slope=math.sqrt(5), generator=g)
        if self.bias is not None:
            bound = init.default_bound(self.in_features)
            init.uniform_(self.bias.data, -bound, bound, generator=g)

    def _call(self, x: np.ndarray) -> tuple[np.ndarray, Callable]:
        b = None if self.bias is None else self.bias.data
        return vjp(F.linear, x, self.weight.data, b)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Identity(Module):
    """Identity(*args, **kwargs): y = x, dx = dy (arguments are accepted and ignored, as torch's).

    Torch: torch.nn.Identity
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, input: Any) -> Any:
        return input

    def backward(self, dout: Any) -> Any:
        return dout
