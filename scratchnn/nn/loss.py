"""Loss modules: ``torch.nn``'s loss classes over the functional losses, with explicit backward.

    crit = nn.CrossEntropyLoss(label_smoothing=0.1)
    loss = crit(logits, target)        # forward; keeps what backward needs
    dlogits = crit.backward()          # ∂loss/∂logits (dloss=None means 1.0, like loss.backward())

**The backward rule.** A loss is the end of the chain, so ``backward(dloss=None)`` returns the
gradient with respect to the *input*: one array, for every loss, so that
``model.backward(crit.backward())`` is the one-line idiom. ``dloss`` mirrors the output:
``None`` (read as 1.0) or a number for a reduced (0-d) loss; an array of the output's shape for
``reduction='none'`` (required there, as torch's ``backward()`` requires a gradient for a
non-scalar). **The target's gradient**, where torch has one (mse, l1, smooth_l1, huber, BCE
with logits, kl_div, probability targets of cross-entropy): ``dx, dt = crit.backward(
target_grad=True)`` (``dt`` is None where the target is not differentiable: class indices,
and BCELoss, whose target gradient torch does not implement). A loss holds no parameter, so
asking its backward again (another ``dloss``) is allowed; ``retain_graph`` is accepted for
torch's spelling and changes nothing.

Constructor arguments, defaults and state_dict match torch: ``weight`` (and ``pos_weight``) are
buffers, so ``NLLLoss(weight=w).state_dict()`` is ``{'weight': w}`` and loads torch's.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .. import functional as F
from .._validate import check_array, check_float, check_int
from ..autodiff import vjp
from ..functional.loss import REDUCTIONS, legacy_reduction
from .module import Module

__all__ = ["NLLLoss", "CrossEntropyLoss", "MSELoss", "L1Loss", "SmoothL1Loss", "HuberLoss",
           "BCELoss", "BCEWithLogitsLoss", "KLDivLoss"]


class _Loss(Module):
    """``forward(input, target)`` runs ``_fn`` through ``vjp``; ``backward(dloss=None)``
    returns the input gradient. Subclasses set ``_fn`` and list in ``_options`` the attributes
    passed to it as keywords."""

    _fn: Callable
    _options: tuple[str, ...] = ()
    _reductions: tuple[str, ...] = REDUCTIONS

    def __init__(self, size_average: Any = None, reduce: Any = None,
                 reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = legacy_reduction(type(self).__name__, size_average, reduce, reduction,
                                          self._reductions)

    def _kwargs(self) -> dict:
        kw = {"reduction": self.reduction}
        for name in self._options:
            kw[name] = getattr(self, name)
        return kw

    def forward(self, input: np.ndarray, target: np.ndarray) -> np.ndarray:
        out, pullback = vjp(type(self)._fn, input, target, **self._kwargs())
        object.__setattr__(self, "_pullback", pullback)
        object.__setattr__(self, "_out", out)
        return out

    def backward(self, dloss: Any = None, *, target_grad: bool = False,
                 retain_graph: bool = False) -> Any:
        """∂loss/∂input for upstream ``dloss`` (None: 1.0; required when reduction='none');
        ``target_grad=True``: the pair ``(∂loss/∂input, ∂loss/∂target)``. A second backward
        needs ``retain_graph=True`` on the first."""
        name = f"{type(self).__name__}.backward"
        pb = self._saved_for_backward("_pullback")
        out = self.__dict__["_out"]
        if dloss is None:
            if out.ndim:
                raise ValueError(f"{name}(): parameter 'dloss' is required for a loss of "
                                 f"shape {out.shape} (reduction='none')")
            dloss = np.ones((), out.dtype)
        elif isinstance(dloss, (int, float, np.number)) and not isinstance(dloss, bool):
            dloss = np.asarray(dloss, dtype=out.dtype)
        dx, dt = pb(dloss)[:2]
        self._release("_pullback", retain_graph)
        return (dx, dt) if target_grad else dx

    def _replay_backward(self, douts: tuple, input_grad: bool) -> Any:
        """Inside a forward-only model both the input's and the target's gradients flow."""
        return self.backward(*douts, target_grad=True)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class _WeightedLoss(_Loss):
    """A loss with a per-class ``weight`` buffer (in the state_dict when given, as torch)."""

    def __init__(self, weight: np.ndarray | None = None, size_average: Any = None,
                 reduce: Any = None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        if weight is not None:
            check_array(type(self).__name__, "weight", weight)
        self.register_buffer("weight", weight)


class NLLLoss(_WeightedLoss):
    """Negative log-likelihood of log-probabilities: ``F.nll_loss`` (see there for shapes)."""

    _fn = F.nll_loss
    _options = ("weight", "ignore_index")

    def __init__(self, weight: np.ndarray | None = None, size_average: Any = None,
                 ignore_index: int = -100, reduce: Any = None, reduction: str = "mean") -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = check_int(type(self).__name__, "ignore_index", ignore_index)


class CrossEntropyLoss(_WeightedLoss):
    """log_softmax + NLL, with class-probability targets and label smoothing:
    ``F.cross_entropy``."""

    _fn = F.cross_entropy
    _options = ("weight", "ignore_index", "label_smoothing")

    def __init__(self, weight: np.ndarray | None = None, size_average: Any = None,
                 ignore_index: int = -100, reduce: Any = None, reduction: str = "mean",
                 label_smoothing: float = 0.0) -> None:
        super().__init__(weight, size_average, reduce, reduction)
        fn = type(self).__name__
        self.ignore_index = check_int(fn, "ignore_index", ignore_index)
        self.label_smoothing = check_float(fn, "label_smoothing", label_smoothing,
                                           lo=0.0, hi=1.0)


class MSELoss(_Loss):
    """Mean squared error ``(x − t)²``: ``F.mse_loss``."""

    _fn = F.mse_loss


class L1Loss(_Loss):
    """Mean absolute error ``|x − t|``: ``F.l1_loss``."""

    _fn = F.l1_loss


class SmoothL1Loss(_Loss):
    """Quadratic below ``beta``, linear above: ``F.smooth_l1_loss``."""

    _fn = F.smooth_l1_loss
    _options = ("beta",)

    def __init__(self, size_average: Any = None, reduce: Any = None, reduction: str = "mean",
                 beta: float = 1.0) -> None:
        super().__init__(size_average, reduce, reduction)
        self.beta = check_float(type(self).__name__, "beta", beta, lo=0.0)


class HuberLoss(_Loss):
    """Quadratic below ``delta``, linear (slope delta) above: ``F.huber_loss``."""

    _fn = F.huber_loss
    _options = ("delta",)

    def __init__(self, reduction: str = "mean", delta: float = 1.0) -> None:
        super().__init__(None, None, reduction)
        self.delta = check_float(type(self).__name__, "delta", delta, lo=0.0, lo_open=True)


class BCELoss(_WeightedLoss):
    """Binary cross-entropy of probabilities: ``F.binary_cross_entropy``."""

    _fn = F.binary_cross_entropy
    _options = ("weight",)


class BCEWithLogitsLoss(_Loss):
    """Sigmoid + binary cross-entropy in one stable op: ``F.binary_cross_entropy_with_logits``;
    ``weight`` and ``pos_weight`` are buffers."""

    _fn = F.binary_cross_entropy_with_logits
    _options = ("weight", "pos_weight")

    def __init__(self, weight: np.ndarray | None = None, size_average: Any = None,
                 reduce: Any = None, reduction: str = "mean",
                 pos_weight: np.ndarray | None = None) -> None:
        super().__init__(size_average, reduce, reduction)
        for name, w in (("weight", weight), ("pos_weight", pos_weight)):
            if w is not None:
                check_array(type(self).__name__, name, w)
            self.register_buffer(name, w)


class KLDivLoss(_Loss):
    """KL divergence of log-probabilities from a target distribution: ``F.kl_div``
    (``reduction='batchmean'`` is the mathematical KL divergence)."""

    _fn = F.kl_div
    _options = ("log_target",)
    _reductions = REDUCTIONS + ("batchmean",)

    def __init__(self, size_average: Any = None, reduce: Any = None, reduction: str = "mean",
                 log_target: bool = False) -> None:
        super().__init__(size_average, reduce, reduction)
        if not isinstance(log_target, (bool, np.bool_)):
            raise TypeError(f"KLDivLoss(): parameter 'log_target' must be a bool, "
                            f"got {log_target!r}")
        self.log_target = bool(log_target)
