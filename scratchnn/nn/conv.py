"""Convolution layers mirroring ``torch.nn``: Conv1d/2d/3d and ConvTranspose1d/2d/3d.

Each layer is the functional op (:mod:`scratchnn.functional.conv`) plus ``weight`` and ``bias``
with torch's shapes, state_dict keys, constructor arguments and defaults::

    conv = Conv2d(1, 16, 3, padding=1)           # weight (16, 1, 3, 3), bias (16,)
    y = conv(x)                                  # keeps the pullback
    dx = conv.backward(dy)                       # adds dW, db into conv.weight.grad, .bias.grad

``padding_mode`` 'reflect', 'replicate' and 'circular' pad with :func:`F.pad` first (the padding
split that torch uses, including 'same' for even kernels) and then convolve without padding; the
backward chains both pullbacks. Transposed layers support only 'zeros' (as torch) and take
``output_size`` in ``forward`` to choose among the output sizes a strided convolution allows.

Initialisation is torch's: W ~ kaiming_uniform_(a=√5) = U(±1/√fan_in), b ~ U(±1/√fan_in), with
fan_in = weight.shape[1]·Π kernel (torch's rule; for a transposed weight (C_in, C_out/G, *k) that
is C_out/G·Π k). Values come from a NumPy generator, so they differ from torch's; copy torch's
with ``load_state_dict`` for the identical layer.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from .. import functional as F
from .._validate import check_int
from ..autodiff import vjp
from ..random import get_generator
from . import init
from .activation import _param_dtype
from .module import OpModule, Parameter

__all__ = ["Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d",
           "ConvTranspose3d"]

_MODES = ("zeros", "reflect", "replicate", "circular")


def _tuple(fn: str, name: str, v: Any, n: int, min: int) -> tuple[int, ...]:
    if isinstance(v, (list, tuple)):
        if len(v) != n:
            raise ValueError(f"{fn}(): parameter '{name}' must be an int or a sequence of {n} "
                             f"ints, got {v!r}")
        return tuple(check_int(fn, name, e, min=min) for e in v)
    return (check_int(fn, name, v, min=min),) * n


class _ConvNd(OpModule):
    """What Conv and ConvTranspose share: arguments, parameters, init, repr."""

    _n: int = 2
    _transposed: bool = False
    _grad_params = ("weight", "bias")

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any,
                 padding: Any, dilation: Any, groups: int, bias: bool, padding_mode: str,
                 output_padding: Any, device: Any, dtype: Any,
                 generator: np.random.Generator | None) -> None:
        super().__init__()
        fn, n = type(self).__name__, self._n
        self.in_channels = check_int(fn, "in_channels", in_channels, min=0)
        self.out_channels = check_int(fn, "out_channels", out_channels, min=0)
        self.kernel_size = _tuple(fn, "kernel_size", kernel_size, n, 1)
        self.stride = _tuple(fn, "stride", stride, n, 1)
        self.dilation = _tuple(fn, "dilation", dilation, n, 1)
        self.groups = check_int(fn, "groups", groups, min=1)
        if self.in_channels % self.groups:
            raise ValueError(f"{fn}(): parameter 'groups' {groups} must divide in_channels "
                             f"{in_channels}")
        if self.out_channels % self.groups:
            raise ValueError(f"{fn}(): parameter 'groups' {groups} must divide out_channels "
                             f"{out_channels}")
        if isinstance(padding, str) and not self._transposed:
            if padding not in ("same", "valid"):
                raise ValueError(f"{fn}(): parameter 'padding' must be an int, a tuple, "
                                 f"'same' or 'valid', got {padding!r}")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError(f"{fn}(): parameter 'padding' 'same' is not supported for "
                                 f"strided convolutions (stride={self.stride})")
            self.padding = padding
        else:
            self.padding = _tuple(fn, "padding", padding, n, 0)
        if padding_mode not in _MODES:
            raise ValueError(f"{fn}(): parameter 'padding_mode' must be one of {list(_MODES)}, "
                             f"got {padding_mode!r}")
        if self._transposed and padding_mode != "zeros":
            raise ValueError(f"{fn}(): parameter 'padding_mode' must be 'zeros' for "
                             f"transposed convolutions (as torch), got {padding_mode!r}")
        self.padding_mode = padding_mode
        self.output_padding = _tuple(fn, "output_padding", output_padding, n, 0)
        self.transposed = self._transposed
        if not isinstance(bias, (bool, np.bool_)):
            raise TypeError(f"{fn}(): parameter 'bias' must be a bool, got {bias!r}")
        dt = _param_dtype(fn, device, dtype)
        get_generator(fn, generator)                          # validate before any work
        if self._transposed:                                  # (C_in, C_out/G, *k)
            shape = (self.in_channels, self.out_channels // self.groups) + self.kernel_size
        else:                                                 # (C_out, C_in/G, *k)
            shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        self.weight = Parameter(np.empty(shape, dtype=dt))
        if bias:
            self.bias = Parameter(np.empty(self.out_channels, dtype=dt))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters(generator)

    def reset_parameters(self, generator: np.random.Generator | None = None) -> None:
        """torch's init: kaiming_uniform_(W, a=√5) = U(±1/√fan_in); b ~ U(±1/√fan_in)."""
        g = get_generator(f"{type(self).__name__}.reset_parameters", generator)
        init.kaiming_uniform_(self.weight.data, negative_slope=math.sqrt(5), generator=g)
        if self.bias is not None:
            fan_in, _ = init.calculate_fan_in_and_fan_out(self.weight.data)
            bound = init.default_bound(fan_in)
            init.uniform_(self.bias.data, -bound, bound, generator=g)

    def _params(self) -> tuple[np.ndarray, np.ndarray | None]:
        return self.weight.data, None if self.bias is None else self.bias.data

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        n = self._n
        if self.padding != (0,) * n:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * n:
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * n:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class _Conv(_ConvNd):
    """Conv{n}d: y = conv{n}d(pad(x), W, b) — the pad only for padding_mode != 'zeros'."""

    _op: Callable

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", device: Any = None, dtype: Any = None, *,
                 generator: np.random.Generator | None = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, 0, device, dtype, generator)

    def _reversed_padding(self) -> tuple[int, ...]:
        """F.pad's argument (last dim first, (lo, hi) pairs); 'same' as torch splits it."""
        if self.padding == "valid":
            pairs: Sequence[tuple[int, int]] = [(0, 0)] * self._n
        elif self.padding == "same":
            pairs = [(d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2)
                     for d, k in zip(self.dilation, self.kernel_size)]
        else:
            pairs = [(p, p) for p in self.padding]
        return tuple(v for lo_hi in reversed(pairs) for v in lo_hi)

    def _call(self, x: np.ndarray) -> tuple[np.ndarray, Callable]:
        w, b = self._params()
        op = type(self)._op
        if self.padding_mode == "zeros":
            return vjp(op, x, w, b, self.stride, self.padding, self.dilation, self.groups)
        xp, pad_pullback = vjp(F.pad, x, self._reversed_padding(), mode=self.padding_mode)
        y, conv_pullback = vjp(op, xp, w, b, self.stride, 0, self.dilation, self.groups)

        def pullback(dy: np.ndarray, needs_input_grad: Any = None) -> tuple:
            dxp, dw, db = conv_pullback(dy, needs_input_grad=needs_input_grad)[:3]
            return (None if dxp is None else pad_pullback(dxp)[0], dw, db)

        return y, pullback


class _ConvTranspose(_ConvNd):
    """ConvTranspose{n}d: y = conv_transpose{n}d(x, W, b); ``forward(x, output_size)``."""

    _op: Callable
    _transposed = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, output_padding: Any = 0, groups: int = 1, bias: bool = True,
                 dilation: Any = 1, padding_mode: str = "zeros", device: Any = None,
                 dtype: Any = None, *, generator: np.random.Generator | None = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, output_padding, device, dtype, generator)

    def forward(self, input: np.ndarray, output_size: Sequence[int] | None = None
                ) -> np.ndarray:
        """y = conv_transpose(x); ``output_size`` (spatial sizes, optionally with the leading
        batch/channel sizes) picks the output_padding that gives it, as torch."""
        object.__setattr__(self, "_output_size", output_size)
        return super().forward(input)

    def _output_padding(self, x: np.ndarray) -> tuple[int, ...]:
        """torch's ConvTranspose._output_padding: from output_size, else the attribute."""
        size, n = self.__dict__.get("_output_size"), self._n
        if size is None or not isinstance(x, np.ndarray) or x.ndim not in (n + 1, n + 2):
            return self.output_padding                        # (a bad x: the op says why)
        fn = f"{type(self).__name__}.forward"
        lead = x.ndim - n
        size = list(size)
        if len(size) == lead + n:
            size = size[lead:]
        if len(size) != n:
            raise ValueError(f"{fn}(): parameter 'output_size' must have {n} or {lead + n} "
                             f"entries for a {x.ndim}-d input, got {len(size)}")
        lo = [(x.shape[lead + d] - 1) * self.stride[d] - 2 * self.padding[d]
              + self.dilation[d] * (self.kernel_size[d] - 1) + 1 for d in range(n)]
        hi = [m + s - 1 for m, s in zip(lo, self.stride)]
        if any(not (a <= check_int(fn, "output_size", v) <= b) for v, a, b in zip(size, lo, hi)):
            raise ValueError(f"{fn}(): parameter 'output_size' {size} is out of range: valid "
                             f"sizes go from {lo} to {hi} for an input of {x.shape[lead:]}")
        return tuple(v - a for v, a in zip(size, lo))

    def _call(self, x: np.ndarray) -> tuple[np.ndarray, Callable]:
        w, b = self._params()
        return vjp(type(self)._op, x, w, b, self.stride, self.padding, self._output_padding(x),
                   self.groups, self.dilation)


def _doc(name: str, op: str, layout: str) -> str:
    return (f"torch.nn.{name}: the layer of :func:`scratchnn.functional.{op}`; weight {layout},"
            f" bias (C_out,) or None. ``backward(dy)`` returns dx and adds dW, db into "
            f"``.grad``. Same constructor, defaults and state_dict as torch's.")


class Conv1d(_Conv):
    __doc__ = _doc("Conv1d", "conv1d", "(C_out, C_in/G, k)")
    _n, _op = 1, staticmethod(F.conv1d)


class Conv2d(_Conv):
    __doc__ = _doc("Conv2d", "conv2d", "(C_out, C_in/G, kH, kW)")
    _n, _op = 2, staticmethod(F.conv2d)


class Conv3d(_Conv):
    __doc__ = _doc("Conv3d", "conv3d", "(C_out, C_in/G, kD, kH, kW)")
    _n, _op = 3, staticmethod(F.conv3d)


class ConvTranspose1d(_ConvTranspose):
    __doc__ = _doc("ConvTranspose1d", "conv_transpose1d", "(C_in, C_out/G, k)")
    _n, _op = 1, staticmethod(F.conv_transpose1d)


class ConvTranspose2d(_ConvTranspose):
    __doc__ = _doc("ConvTranspose2d", "conv_transpose2d", "(C_in, C_out/G, kH, kW)")
    _n, _op = 2, staticmethod(F.conv_transpose2d)


class ConvTranspose3d(_ConvTranspose):
    __doc__ = _doc("ConvTranspose3d", "conv_transpose3d", "(C_in, C_out/G, kD, kH, kW)")
    _n, _op = 3, staticmethod(F.conv_transpose3d)
