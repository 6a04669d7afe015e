"""Parameter initialisation with torch.nn.init's formulas, drawn from a NumPy Generator.

Values differ from torch's (different random streams) but the *distributions* are torch's, so a
freshly built module is statistically the module torch would build. Loading torch's weights with
``load_state_dict`` gives identical modules.
"""
from __future__ import annotations

import math

import numpy as np

from ..random import get_generator

__all__ = ["calculate_fan_in_and_fan_out", "calculate_gain", "uniform_", "zeros_", "ones_",
           "kaiming_uniform_", "xavier_uniform_", "xavier_normal_", "default_bound"]


def calculate_fan_in_and_fan_out(a: np.ndarray) -> tuple[int, int]:
    """torch's rule: fan_in = size(1)·receptive field, fan_out = size(0)·receptive field."""
    if a.ndim < 2:
        raise ValueError("calculate_fan_in_and_fan_out(): parameter 'a' must have at least 2 "
                         f"dimensions, got shape {a.shape}")
    receptive = math.prod(a.shape[2:]) if a.ndim > 2 else 1
    return a.shape[1] * receptive, a.shape[0] * receptive


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """torch.nn.init.calculate_gain for the nonlinearities the chapter uses."""
    if nonlinearity in ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
                        "conv_transpose2d", "conv_transpose3d", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain(): parameter 'nonlinearity' {nonlinearity!r} is not "
                     "supported")


def uniform_(a: np.ndarray, low: float = 0.0, high: float = 1.0,
             generator: np.random.Generator | None = None) -> np.ndarray:
    """Fill ``a`` in place with U(low, high) (kept in ``a``'s dtype); returns ``a``."""
    g = get_generator("uniform_", generator)
    a[...] = g.uniform(low, high, a.shape)
    return a


def zeros_(a: np.ndarray) -> np.ndarray:
    a[...] = 0
    return a


def ones_(a: np.ndarray) -> np.ndarray:
    a[...] = 1
    return a


def kaiming_uniform_(a: np.ndarray, negative_slope: float = 0.0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu",
                     generator: np.random.Generator | None = None) -> np.ndarray:
    """U(−b, b) with b = gain·√(3 / fan): torch.nn.init.kaiming_uniform_."""
    fan_in, fan_out = calculate_fan_in_and_fan_out(a)
    fan = fan_in if mode == "fan_in" else fan_out
    gain = calculate_gain(nonlinearity, negative_slope)
    bound = gain * math.sqrt(3.0 / fan) if fan > 0 else 0.0
    return uniform_(a, -bound, bound, generator)


def xavier_uniform_(a: np.ndarray, gain: float = 1.0,
                    generator: np.random.Generator | None = None) -> np.ndarray:
    """U(−b, b), b = gain · √(6 / (fan_in + fan_out)): torch.nn.init.xavier_uniform_."""
    fan_in, fan_out = calculate_fan_in_and_fan_out(a)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(a, -bound, bound, generator)


def xavier_normal_(a: np.ndarray, gain: float = 1.0,
                   generator: np.random.Generator | None = None) -> np.ndarray:
    """N(0, σ²), σ = gain · √(2 / (fan_in + fan_out)): torch.nn.init.xavier_normal_."""
    fan_in, fan_out = calculate_fan_in_and_fan_out(a)
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    a[...] = get_generator("xavier_normal_", generator).normal(0.0, std, a.shape)
    return a


def default_bound(fan_in: int) -> float:
    """1/√fan_in: the bound torch's Linear/Conv use for the bias (and, via kaiming_uniform_ with
    a = √5, for the weight)."""
    return 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
