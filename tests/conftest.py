"""Hypothesis profiles and the cuda marker.

Profiles: ``dev`` (fast, the default locally), ``ci`` (derandomized; the default under
``CI=true``), ``thorough`` (opt-in, ~10× the examples): ``HYPOTHESIS_PROFILE=thorough pytest``.
Deadlines are off (the first call of an op pays for imports/BLAS warm-up); every failure prints
the ``@reproduce_failure`` blob.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

_common = dict(deadline=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.filter_too_much])
settings.register_profile("dev", max_examples=10, **_common)
settings.register_profile("ci", max_examples=30, derandomize=True, database=None, **_common)
settings.register_profile("thorough", max_examples=300, **_common)
_default = "ci" if os.environ.get("CI", "").lower() in ("1", "true", "yes") else "dev"
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", _default))


def pytest_collection_modifyitems(config, items):
    try:
        import torch
        has_cuda = torch.cuda.is_available()
    except ImportError:            # pragma: no cover - torch is a test dependency
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="no CUDA device: torch.cuda.is_available() is False")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


def examples(scale: float = 1.0) -> int:
    """The active profile's max_examples scaled for a heavy or light test (at least 1)."""
    return max(1, int(round(settings.default.max_examples * scale)))
