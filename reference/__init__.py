"""The torch side of scratchnn: the op registry, array<->tensor bridge, tolerance policy and the
equivalence harness. This package, tests/ and benchmarks/ import torch; scratchnn never does.

    python -m reference [OPS ...] [--device cpu|cuda] [--dtype float32|float64] [--examples N]
"""
from .registry import REGISTRY, Case, OpSpec, Reject, load_all, register

__all__ = ["REGISTRY", "Case", "OpSpec", "Reject", "load_all", "register"]
