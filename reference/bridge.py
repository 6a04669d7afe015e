"""array <-> tensor on a device, and the deterministic settings the comparisons need — one
implementation, :mod:`scratchnn.testing.bridge`, named here for ``tests/`` and ``benchmarks/``.
"""
from scratchnn.testing.bridge import (TORCH_DTYPE, configure, cuda_available, state_dict_to_numpy,
                                      to_numpy, to_torch)

__all__ = ["TORCH_DTYPE", "configure", "cuda_available", "state_dict_to_numpy", "to_numpy",
           "to_torch"]
