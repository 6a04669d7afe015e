"""The project's own op registry (``reference/specs/``) and the report ``python -m reference``.

The machinery — registry classes, bridge, tolerance policy, harness, value regimes — is the
public :mod:`scratchnn.testing`; this package (not installed: it lives in the repository) holds
the specs of scratchnn's ops and names that machinery for ``tests/`` and ``benchmarks/``.

    python -m reference [OPS ...] [--device cpu|cuda] [--dtype float32|float64] [--examples N]
"""
from .registry import REGISTRY, Case, OpSpec, Reject, load_all, register

__all__ = ["REGISTRY", "Case", "OpSpec", "Reject", "load_all", "register"]
