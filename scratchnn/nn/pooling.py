"""Pooling modules mirroring ``torch.nn``: constructor arguments, defaults and attributes as
torch's, forward through the functional op, explicit ``backward``.

    pool = MaxPool2d(3, stride=2, padding=1)
    y = pool(x)                 # keeps the op's pullback
    dx = pool.backward(dy)

Modules built with ``return_indices=True`` return ``(y, indices)``; their ``backward`` mirrors
the two outputs, ``backward(dy, None)`` (``dy`` alone or a ``(dy, None)`` pair are accepted
too). ``MaxUnpool*d.forward(input, indices, output_size=None)`` has two array inputs, so its
``backward`` returns ``(dx, None)``. Pooling has no parameters; ``train()``/``eval()`` change
nothing.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .. import functional as F
from ..autodiff import vjp
from .module import OpModule

__all__ = ["MaxPool1d", "MaxPool2d", "MaxPool3d", "MinPool1d", "MinPool2d", "MinPool3d",
           "AvgPool1d", "AvgPool2d", "AvgPool3d",
           "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d",
           "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AdaptiveMaxPool3d",
           "MaxUnpool1d", "MaxUnpool2d", "MaxUnpool3d", "LPPool1d", "LPPool2d", "LPPool3d"]


class _Pool(OpModule):
    """One pooling op applied with the options stored on the module."""

    _op: Callable                           # the functional op (a staticmethod)
    _options: tuple[str, ...] = ()          # attribute names passed to the op as keywords

    def _kwargs(self) -> dict:
        return {name: getattr(self, name) for name in self._options}

    def _call(self, input: np.ndarray) -> tuple[Any, Callable]:
        return vjp(type(self)._op, input, **self._kwargs())

    def backward(self, dout: Any, dindices: Any = None, *, input_grad: bool = True,
                 retain_graph: bool = False) -> Any:
        """dx from the gradient of the pooled values. A ``return_indices`` module's backward
        mirrors its two outputs, ``backward(dy, None)`` (the indices carry no gradient; a
        ``(dy, None)`` tuple or ``dy`` alone are accepted too)."""
        if dindices is not None:
            raise ValueError(f"{type(self).__name__}.backward(): parameter 'dindices' must be "
                             f"None: the indices are integers and carry no gradient")
        if getattr(self, "return_indices", False) and not isinstance(dout, tuple):
            dout = (dout, None)
        return super().backward(dout, input_grad=input_grad, retain_graph=retain_graph)

    def extra_repr(self) -> str:
        return ", ".join(f"{name}={getattr(self, name)}" for name in self._options)


class _MaxPoolNd(_Pool):
    _options = ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
                 return_indices: bool = False, ceil_mode: bool = False):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.dilation = dilation
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode


class MaxPool1d(_MaxPoolNd):
    """torch.nn.MaxPool1d: see :func:`scratchnn.functional.max_pool1d`."""
    _op = staticmethod(F.max_pool1d)


class MaxPool2d(_MaxPoolNd):
    """torch.nn.MaxPool2d: see :func:`scratchnn.functional.max_pool2d`."""
    _op = staticmethod(F.max_pool2d)


class MaxPool3d(_MaxPoolNd):
    """torch.nn.MaxPool3d: see :func:`scratchnn.functional.max_pool3d`."""
    _op = staticmethod(F.max_pool3d)


class MinPool1d(_MaxPoolNd):
    """Min pooling with MaxPool1d's arguments (torch has none): ``-MaxPool1d(-x)``."""
    _op = staticmethod(F.min_pool1d)


class MinPool2d(_MaxPoolNd):
    """Min pooling with MaxPool2d's arguments (torch has none): ``-MaxPool2d(-x)``."""
    _op = staticmethod(F.min_pool2d)


class MinPool3d(_MaxPoolNd):
    """Min pooling with MaxPool3d's arguments (torch has none): ``-MaxPool3d(-x)``."""
    _op = staticmethod(F.min_pool3d)


class AvgPool1d(_Pool):
    """torch.nn.AvgPool1d (no divisor_override, as torch): see
    :func:`scratchnn.functional.avg_pool1d`."""
    _op = staticmethod(F.avg_pool1d)
    _options = ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad")

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad


class _AvgPoolNd(AvgPool1d):
    _options = AvgPool1d._options + ("divisor_override",)

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override: int | None = None):
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad)
        self.divisor_override = divisor_override


class AvgPool2d(_AvgPoolNd):
    """torch.nn.AvgPool2d: see :func:`scratchnn.functional.avg_pool2d`."""
    _op = staticmethod(F.avg_pool2d)


class AvgPool3d(_AvgPoolNd):
    """torch.nn.AvgPool3d: see :func:`scratchnn.functional.avg_pool3d`."""
    _op = staticmethod(F.avg_pool3d)


class _AdaptiveAvgPoolNd(_Pool):
    _options = ("output_size",)

    def __init__(self, output_size: Any):
        super().__init__()
        self.output_size = output_size


class AdaptiveAvgPool1d(_AdaptiveAvgPoolNd):
    """torch.nn.AdaptiveAvgPool1d: see :func:`scratchnn.functional.adaptive_avg_pool1d`."""
    _op = staticmethod(F.adaptive_avg_pool1d)


class AdaptiveAvgPool2d(_AdaptiveAvgPoolNd):
    """torch.nn.AdaptiveAvgPool2d: see :func:`scratchnn.functional.adaptive_avg_pool2d`."""
    _op = staticmethod(F.adaptive_avg_pool2d)


class AdaptiveAvgPool3d(_AdaptiveAvgPoolNd):
    """torch.nn.AdaptiveAvgPool3d: see :func:`scratchnn.functional.adaptive_avg_pool3d`."""
    _op = staticmethod(F.adaptive_avg_pool3d)


class _AdaptiveMaxPoolNd(_Pool):
    _options = ("output_size", "return_indices")

    def __init__(self, output_size: Any, return_indices: bool = False):
        super().__init__()
        self.output_size = output_size
        self.return_indices = return_indices


class AdaptiveMaxPool1d(_AdaptiveMaxPoolNd):
    """torch.nn.AdaptiveMaxPool1d: see :func:`scratchnn.functional.adaptive_max_pool1d`."""
    _op = staticmethod(F.adaptive_max_pool1d)


class AdaptiveMaxPool2d(_AdaptiveMaxPoolNd):
    """torch.nn.AdaptiveMaxPool2d: see :func:`scratchnn.functional.adaptive_max_pool2d`."""
    _op = staticmethod(F.adaptive_max_pool2d)


class AdaptiveMaxPool3d(_AdaptiveMaxPoolNd):
    """torch.nn.AdaptiveMaxPool3d: see :func:`scratchnn.functional.adaptive_max_pool3d`."""
    _op = staticmethod(F.adaptive_max_pool3d)


class _MaxUnpoolNd(_Pool):
    _options = ("kernel_size", "stride", "padding")

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding

    def _call(self, input: np.ndarray, indices: np.ndarray, output_size: Any = None
              ) -> tuple[Any, Callable]:
        return vjp(type(self)._op, input, indices, output_size=output_size, **self._kwargs())

    def forward(self, input: np.ndarray, indices: np.ndarray, output_size: Any = None
                ) -> np.ndarray:
        """y = max_unpool(input, indices); ``backward(dy)`` returns ``(dx, None)``."""
        out, pullback = self._call(input, indices, output_size)
        object.__setattr__(self, "_pullback", pullback)
        object.__setattr__(self, "_n_inputs", 2)
        return out

    def backward(self, dout: Any, *, input_grad: bool = True,  # type: ignore[override]
                 retain_graph: bool = False) -> Any:
        """``(dx, None)``: the gradient of the pooled values and None for the indices."""
        return OpModule.backward(self, dout, input_grad=input_grad, retain_graph=retain_graph)


class MaxUnpool1d(_MaxUnpoolNd):
    """torch.nn.MaxUnpool1d: see :func:`scratchnn.functional.max_unpool1d`."""
    _op = staticmethod(F.max_unpool1d)


class MaxUnpool2d(_MaxUnpoolNd):
    """torch.nn.MaxUnpool2d: see :func:`scratchnn.functional.max_unpool2d`."""
    _op = staticmethod(F.max_unpool2d)


class MaxUnpool3d(_MaxUnpoolNd):
    """torch.nn.MaxUnpool3d: see :func:`scratchnn.functional.max_unpool3d`."""
    _op = staticmethod(F.max_unpool3d)


class _LPPoolNd(_Pool):
    _options = ("norm_type", "kernel_size", "stride", "ceil_mode")

    def __init__(self, norm_type: float, kernel_size: Any, stride: Any = None,
                 ceil_mode: bool = False):
        super().__init__()
        self.norm_type = norm_type
        self.kernel_size = kernel_size
        self.stride = stride
        self.ceil_mode = ceil_mode


class LPPool1d(_LPPoolNd):
    """torch.nn.LPPool1d: see :func:`scratchnn.functional.lp_pool1d`."""
    _op = staticmethod(F.lp_pool1d)


class LPPool2d(_LPPoolNd):
    """torch.nn.LPPool2d: see :func:`scratchnn.functional.lp_pool2d`."""
    _op = staticmethod(F.lp_pool2d)


class LPPool3d(_LPPoolNd):
    """torch.nn.LPPool3d: see :func:`scratchnn.functional.lp_pool3d`."""
    _op = staticmethod(F.lp_pool3d)
