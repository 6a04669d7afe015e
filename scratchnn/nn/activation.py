"""Activation modules: torch.nn's classes, each one functional op from
:mod:`scratchnn.functional.activation` (constructor arguments and defaults as torch's).

    m = ReLU();  y = m(x);  dx = m.backward(dy)

``PReLU`` is the one with a parameter: ``weight`` of shape ``(num_parameters,)``, filled with
``init``; its gradient accumulates into ``weight.grad``. ``inplace=True`` is rejected (scratchnn
never modifies inputs), as in the functional ops.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .. import functional as F
from .._validate import check_float, check_float_dtype, check_int
from ..autodiff import vjp
from .module import OpModule, Parameter

__all__ = ["Sigmoid", "Tanh", "ReLU", "LeakyReLU", "ELU", "SELU", "CELU", "GELU", "SiLU",
           "Mish", "Softplus", "Hardtanh", "ReLU6", "Hardsigmoid", "Hardswish", "LogSigmoid",
           "Softsign", "Tanhshrink", "Softmax", "LogSoftmax", "Softmin", "PReLU"]


class _Activation(OpModule):
    """``forward(x) = op(x, **options)``; options are validated at construction (by running the
    op once on a 1-element array), so a bad option fails where it is written."""

    _op: Callable
    _options: tuple[str, ...] = ()

    def __init__(self, **options: Any) -> None:
        super().__init__()
        for k, v in options.items():
            object.__setattr__(self, k, v)
        if "dim" in options:            # any int (checked against the input's ndim later)
            dim = options["dim"]
            if dim is not None and (isinstance(dim, bool) or not isinstance(dim, (int, np.integer))):
                raise TypeError(f"{type(self).__name__}(): parameter 'dim' must be None or an "
                                f"int, got {dim!r}")
        elif options:
            try:
                self._op(np.zeros(1), **self._kw())
            except (TypeError, ValueError) as e:
                raise type(e)(f"{type(self).__name__}(): {e}") from None

    def _kw(self) -> dict:
        return {k: getattr(self, k) for k in self._options}

    def _call(self, x: np.ndarray) -> tuple[np.ndarray, Callable]:
        return vjp(self._op, x, **self._kw())

    def extra_repr(self) -> str:
        shown = [k for k in self._options if k != "inplace"]
        inplace = "inplace=True" if getattr(self, "inplace", False) else ""
        return ", ".join([f"{k}={getattr(self, k)!r}" for k in shown] + ([inplace] if inplace
                                                                         else []))


def _activation(name: str, op: Callable, doc: str, **defaults: Any) -> type:
    """A module class whose constructor takes ``defaults`` (torch's keywords, in order)."""
    params = list(defaults)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if len(args) > len(params):
            raise TypeError(f"{name}() takes at most {len(params)} positional arguments, "
                            f"got {len(args)}")
        options = dict(defaults)
        options.update(zip(params, args))
        for k, v in kwargs.items():
            if k not in defaults:
                raise TypeError(f"{name}(): unexpected keyword argument '{k}'")
            options[k] = v
        _Activation.__init__(self, **options)

    sig = ", ".join(f"{k}={v!r}" for k, v in defaults.items())
    return type(name, (_Activation,), {
        "__init__": __init__, "_op": staticmethod(op), "_options": tuple(params),
        "__doc__": f"{name}({sig}): {doc}\n\nForward/backward: scratchnn.functional."
                   f"{op.__name__}. Torch: torch.nn.{name}.", "__module__": __name__})


Sigmoid = _activation("Sigmoid", F.sigmoid, "y = σ(x)")
Tanh = _activation("Tanh", F.tanh, "y = tanh(x)")
ReLU = _activation("ReLU", F.relu, "y = max(x, 0)", inplace=False)
LeakyReLU = _activation("LeakyReLU", F.leaky_relu, "y = x if x > 0 else negative_slope · x",
                        negative_slope=0.01, inplace=False)
ELU = _activation("ELU", F.elu, "y = x if x > 0 else α (e^x − 1)", alpha=1.0, inplace=False)
SELU = _activation("SELU", F.selu, "y = λ x if x > 0 else λ α (e^x − 1)", inplace=False)
CELU = _activation("CELU", F.celu, "y = max(0, x) + min(0, α (e^{x/α} − 1))", alpha=1.0,
                   inplace=False)
GELU = _activation("GELU", F.gelu, "y = x Φ(x) (or its tanh approximation)",
                   approximate="none")
SiLU = _activation("SiLU", F.silu, "y = x σ(x)", inplace=False)
Mish = _activation("Mish", F.mish, "y = x tanh(softplus(x))", inplace=False)
Softplus = _activation("Softplus", F.softplus, "y = log(1 + e^{βx}) / β (x where βx > "
                       "threshold)", beta=1.0, threshold=20.0)
Hardtanh = _activation("Hardtanh", F.hardtanh, "y = clamp(x, min_val, max_val)", min_val=-1.0,
                       max_val=1.0, inplace=False)
ReLU6 = _activation("ReLU6", F.relu6, "y = min(max(x, 0), 6)", inplace=False)
Hardsigmoid = _activation("Hardsigmoid", F.hardsigmoid, "y = min(max(x + 3, 0), 6) / 6",
                          inplace=False)
Hardswish = _activation("Hardswish", F.hardswish, "y = x · min(max(x + 3, 0), 6) / 6",
                        inplace=False)
LogSigmoid = _activation("LogSigmoid", F.logsigmoid, "y = log σ(x)")
Softsign = _activation("Softsign", F.softsign, "y = x / (1 + |x|)")
Tanhshrink = _activation("Tanhshrink", F.tanhshrink, "y = x − tanh(x)")
Softmax = _activation("Softmax", F.softmax, "y = softmax(x) along dim", dim=None)
LogSoftmax = _activation("LogSoftmax", F.log_softmax, "y = log softmax(x) along dim", dim=None)
Softmin = _activation("Softmin", F.softmin, "y = softmax(−x) along dim", dim=None)


class PReLU(OpModule):
    """PReLU(num_parameters=1, init=0.25, device=None, dtype=None):
    y = x if x > 0 else a_c · x, with a learnable ``weight`` a of shape (num_parameters,) —
    one slope, or one per channel (dim 1 of the input).

    ``dtype`` defaults to float32 (torch's default dtype); ``device`` only accepts None/'cpu'.
    Forward/backward: scratchnn.functional.prelu. Torch: torch.nn.PReLU.
    """

    _grad_params = ("weight",)

    def __init__(self, num_parameters: int = 1, init: float = 0.25, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__()
        fn = "PReLU"
        self.num_parameters = check_int(fn, "num_parameters", num_parameters, min=1)
        self.init = check_float(fn, "init", init)
        dt = _param_dtype(fn, device, dtype)
        self.weight = Parameter(np.full(self.num_parameters, self.init, dtype=dt))

    def _call(self, x: np.ndarray) -> tuple[np.ndarray, Callable]:
        return vjp(F.prelu, x, self.weight.data)

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"


def _param_dtype(fn: str, device: Any, dtype: Any) -> np.dtype:
    """torch's ``device``/``dtype`` factory keywords: CPU only; float32 unless told float64."""
    if device not in (None, "cpu"):
        raise ValueError(f"{fn}(): parameter 'device' must be None or 'cpu' (scratchnn is a "
                         f"NumPy library), got {device!r}")
    return check_float_dtype(fn, "dtype", dtype, default=np.float32)
