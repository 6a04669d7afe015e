"""Normalization modules: ``BatchNorm1d/2d/3d``, ``InstanceNorm1d/2d/3d``, ``GroupNorm``,
``LayerNorm``, ``RMSNorm`` — torch.nn's constructor arguments, defaults, initialisation and
state_dict keys.

Each is its functional op (:mod:`scratchnn.functional.normalization`, one normalisation core
for all five) plus parameters γ = ``weight`` (ones) and β = ``bias`` (zeros), and for the
batch and instance norms the buffers ``running_mean`` (zeros), ``running_var`` (ones) and
``num_batches_tracked`` (an int64 0-d array), as torch.

The batch norms follow torch's forward exactly: in training with ``track_running_stats``,
``num_batches_tracked`` is incremented, and ``momentum=None`` makes the running statistics a
cumulative average (momentum 1/num_batches_tracked for this batch); in eval mode the running
statistics normalise (batch statistics when there are none).
"""
from __future__ import annotations

import numbers
import warnings
from typing import Any, Callable

import numpy as np

from .. import functional as F
from .._validate import check_bool, check_float, check_int
from ..autodiff import vjp
from .activation import _param_dtype
from .module import OpModule, Parameter

__all__ = ["BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "InstanceNorm1d", "InstanceNorm2d",
           "InstanceNorm3d", "GroupNorm", "LayerNorm", "RMSNorm"]


def _keep(pullback: Callable, keep: tuple[int, ...]) -> Callable:
    """The pullback's entries at ``keep`` (input, γ, β): the running statistics, integer
    options and shapes in between carry no gradient."""
    def pb(dout: Any) -> tuple:
        g = pullback(dout)
        return tuple(g[i] for i in keep)
    return pb


def _momentum(fn: str, momentum: Any) -> float | None:
    return None if momentum is None else check_float(fn, "momentum", momentum)



def _affine_parameters(m: OpModule, affine: bool, bias: bool, shape: Any, dt: np.dtype) -> None:
    """γ = ones and β = zeros of ``shape`` (β only with ``bias``), or both registered as None."""
    if affine:
        m.weight = Parameter(np.ones(shape, dtype=dt))
    else:
        m.register_parameter("weight", None)
    if affine and bias:
        m.bias = Parameter(np.zeros(shape, dtype=dt))
    else:
        m.register_parameter("bias", None)

class _NormBase(OpModule):
    """Shared by the batch and instance norms: γ, β (C,) and the running-statistics buffers."""

    _grad_params = ("weight", "bias")
    _dims: tuple[int, ...] = ()            # input ndims accepted
    _default_affine = True
    _default_track = True

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, device: Any = None,
                 dtype: Any = None, *, bias: bool = True) -> None:
        super().__init__()
        fn = type(self).__name__
        self.num_features = check_int(fn, "num_features", num_features, min=1)
        self.eps = check_float(fn, "eps", eps, lo=0.0)
        self.momentum = _momentum(fn, momentum)
        self.affine = check_bool(fn, "affine", affine)
        self.track_running_stats = check_bool(fn, "track_running_stats", track_running_stats)
        check_bool(fn, "bias", bias)
        dt = _param_dtype(fn, device, dtype)
        C = self.num_features
        if self.affine:
            self.weight = Parameter(np.ones(C, dtype=dt))
            if bias:
                self.bias = Parameter(np.zeros(C, dtype=dt))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if self.track_running_stats:
            self.register_buffer("running_mean", np.zeros(C, dtype=dt))
            self.register_buffer("running_var", np.ones(C, dtype=dt))
            self.register_buffer("num_batches_tracked", np.zeros((), dtype=np.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean[...] = 0
            self.running_var[...] = 1
            self.num_batches_tracked[...] = 0

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.weight is not None:
            self.weight.data[...] = 1
        if self.bias is not None:
            self.bias.data[...] = 0

    def _check_input(self, x: Any) -> None:
        fn = type(self).__name__
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{fn}(): parameter 'input' must be a numpy.ndarray, got "
                            f"{type(x).__name__}")
        if x.ndim not in self._dims:
            want = " or ".join(f"{d}D" for d in self._dims)
            raise ValueError(f"{fn}(): parameter 'input' must be {want}, got shape {x.shape}")

    def _params(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        return (None if self.weight is None else self.weight.data,
                None if self.bias is None else self.bias.data)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


class _BatchNorm(_NormBase):
    """BatchNorm*d(num_features, eps=1e-05, momentum=0.1, affine=True,
    track_running_stats=True, device=None, dtype=None, *, bias=True): y = γ ⊙ x̂ + β with
    per-channel statistics over (N, *spatial). Torch: torch.nn.BatchNorm*d."""

    def _call(self, x: np.ndarray) -> tuple[np.ndarray, Callable]:
        self._check_input(x)
        if x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}(): parameter 'input' must have "
                             f"{self.num_features} channels (num_features), got shape {x.shape}")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            np.add(self.num_batches_tracked, 1, out=self.num_batches_tracked)
            if self.momentum is None:                       # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked)
        batch_stats = self.training or self.running_mean is None
        use_running = not self.training or self.track_running_stats
        rm = self.running_mean if use_running else None
        rv = self.running_var if use_running else None
        out, pb = vjp(F.batch_norm, x, rm, rv, *self._params(), training=batch_stats,
                      momentum=factor, eps=self.eps)
        return out, _keep(pb, (0, 3, 4))


class BatchNorm1d(_BatchNorm):
    __doc__ = _BatchNorm.__doc__.replace("*d", "1d") + " Input (N, C) or (N, C, L)."
    _dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    __doc__ = _BatchNorm.__doc__.replace("*d", "2d") + " Input (N, C, H, W)."
    _dims = (4,)


class BatchNorm3d(_BatchNorm):
    __doc__ = _BatchNorm.__doc__.replace("*d", "3d") + " Input (N, C, D, H, W)."
    _dims = (5,)


class _InstanceNorm(_NormBase):
    """InstanceNorm*d(num_features, eps=1e-05, momentum=0.1, affine=False,
    track_running_stats=False, device=None, dtype=None, *, bias=True): y = γ ⊙ x̂ + β with
    statistics per sample and channel over space; an unbatched input (C, *) is accepted.
    Torch: torch.nn.InstanceNorm*d."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1,
                 affine: bool = False, track_running_stats: bool = False, device: Any = None,
                 dtype: Any = None, *, bias: bool = True) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device,
                         dtype, bias=bias)

    def _call(self, x: np.ndarray) -> tuple[np.ndarray, Callable]:
        self._check_input(x)
        unbatched = x.ndim == self._dims[0]
        if x.shape[0 if unbatched else 1] != self.num_features:
            msg = (f"{type(self).__name__}(): parameter 'input' has "
                   f"{x.shape[0 if unbatched else 1]} channels, expected {self.num_features} "
                   f"(num_features)")
            if self.affine or self.track_running_stats:
                raise ValueError(msg)
            warnings.warn(msg + "; num_features is unused without affine parameters",
                          UserWarning, stacklevel=3)
        xb = x[None] if unbatched else x                              # (1, C, *) unbatched
        out, pb = vjp(F.instance_norm, xb, self.running_mean, self.running_var,
                      *self._params(), use_input_stats=(self.training
                                                        or not self.track_running_stats),
                      momentum=0.0 if self.momentum is None else self.momentum, eps=self.eps)
        pb = _keep(pb, (0, 3, 4))
        if not unbatched:
            return out, pb
        return out[0], lambda dout: (lambda g: (g[0][0],) + g[1:])(pb(dout[None]))


class InstanceNorm1d(_InstanceNorm):
    __doc__ = _InstanceNorm.__doc__.replace("*d", "1d") + " Input (N, C, L) or (C, L)."
    _dims = (2, 3)


class InstanceNorm2d(_InstanceNorm):
    __doc__ = _InstanceNorm.__doc__.replace("*d", "2d") + " Input (N, C, H, W) or (C, H, W)."
    _dims = (3, 4)


class InstanceNorm3d(_InstanceNorm):
    __doc__ = _InstanceNorm.__doc__.replace("*d", "3d") + " Input (N, C, D, H, W) or (C, D, H, W)."
    _dims = (4, 5)


class GroupNorm(OpModule):
    """GroupNorm(num_groups, num_channels, eps=1e-05, affine=True, device=None, dtype=None,
    *, bias=True): statistics per sample over groups of num_channels/num_groups channels.
    Parameters ``weight`` (ones), ``bias`` (zeros), shape (num_channels,).
    Torch: torch.nn.GroupNorm."""

    _grad_params = ("weight", "bias")

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5,
                 affine: bool = True, device: Any = None, dtype: Any = None, *,
                 bias: bool = True) -> None:
        super().__init__()
        fn = "GroupNorm"
        self.num_groups = check_int(fn, "num_groups", num_groups, min=1)
        self.num_channels = check_int(fn, "num_channels", num_channels, min=0)
        if self.num_channels % self.num_groups:
            raise ValueError(f"{fn}(): parameter 'num_groups' ({self.num_groups}) must divide "
                             f"num_channels ({self.num_channels})")
        self.eps = check_float(fn, "eps", eps, lo=0.0)
        self.affine = check_bool(fn, "affine", affine)
        check_bool(fn, "bias", bias)
        dt = _param_dtype(fn, device, dtype)
        _affine_parameters(self, self.affine, bias, self.num_channels, dt)

    def _call(self, x: np.ndarray) -> tuple[np.ndarray, Callable]:
        w = None if self.weight is None else self.weight.data
        b = None if self.bias is None else self.bias.data
        out, pb = vjp(F.group_norm, x, self.num_groups, w, b, eps=self.eps)
        return out, _keep(pb, (0, 2, 3))

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


def _shape(fn: str, normalized_shape: Any) -> tuple[int, ...]:
    if isinstance(normalized_shape, numbers.Integral) and not isinstance(normalized_shape, bool):
        normalized_shape = (normalized_shape,)
    if not isinstance(normalized_shape, (tuple, list)) or not normalized_shape:
        raise TypeError(f"{fn}(): parameter 'normalized_shape' must be an int or a non-empty "
                        f"sequence of ints, got {normalized_shape!r}")
    return tuple(check_int(fn, "normalized_shape", s, min=0) for s in normalized_shape)


class LayerNorm(OpModule):
    """LayerNorm(normalized_shape, eps=1e-05, elementwise_affine=True, bias=True, device=None,
    dtype=None): statistics per sample over the trailing ``normalized_shape``.
    Parameters ``weight`` (ones), ``bias`` (zeros) of normalized_shape.
    Torch: torch.nn.LayerNorm."""

    _grad_params = ("weight", "bias")

    def __init__(self, normalized_shape: Any, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        fn = "LayerNorm"
        self.normalized_shape = _shape(fn, normalized_shape)
        self.eps = check_float(fn, "eps", eps, lo=0.0)
        self.elementwise_affine = check_bool(fn, "elementwise_affine", elementwise_affine)
        check_bool(fn, "bias", bias)
        dt = _param_dtype(fn, device, dtype)
        _affine_parameters(self, self.elementwise_affine, bias, self.normalized_shape, dt)

    def _call(self, x: np.ndarray) -> tuple[np.ndarray, Callable]:
        w = None if self.weight is None else self.weight.data
        b = None if self.bias is None else self.bias.data
        out, pb = vjp(F.layer_norm, x, self.normalized_shape, w, b, eps=self.eps)
        return out, _keep(pb, (0, 2, 3))

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")


class RMSNorm(OpModule):
    """RMSNorm(normalized_shape, eps=None, elementwise_affine=True, device=None, dtype=None):
    y = γ ⊙ x / √(mean(x²) + ε) over the trailing ``normalized_shape`` (eps None: the dtype's
    machine epsilon). Parameter ``weight`` (ones). Torch: torch.nn.RMSNorm."""

    _grad_params = ("weight",)

    def __init__(self, normalized_shape: Any, eps: float | None = None,
                 elementwise_affine: bool = True, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        fn = "RMSNorm"
        self.normalized_shape = _shape(fn, normalized_shape)
        self.eps = None if eps is None else check_float(fn, "eps", eps, lo=0.0)
        self.elementwise_affine = check_bool(fn, "elementwise_affine", elementwise_affine)
        dt = _param_dtype(fn, device, dtype)
        if self.elementwise_affine:
            self.weight = Parameter(np.ones(self.normalized_shape, dtype=dt))
        else:
            self.register_parameter("weight", None)

    def _call(self, x: np.ndarray) -> tuple[np.ndarray, Callable]:
        w = None if self.weight is None else self.weight.data
        out, pb = vjp(F.rms_norm, x, self.normalized_shape, w, eps=self.eps)
        return out, _keep(pb, (0, 2))

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")
