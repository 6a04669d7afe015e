"""array <-> tensor on a device, and the deterministic settings the comparisons need.

Part of scratchnn.testing, which is imported only when a check runs: `import scratchnn` never
imports torch.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

TORCH_DTYPE = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}

_configured = False


def cuda_available() -> bool:
    return torch.cuda.is_available()


def configure(device: str = "cpu") -> None:
    """Deterministic, full-precision torch: TF32 off, cuDNN 'ieee' fp32, no autotuning."""
    global _configured
    if _configured:
        return
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:                                      # torch >= 2.9 spelling of the same switches
        torch.backends.cuda.matmul.fp32_precision = "ieee"
        torch.backends.cudnn.conv.fp32_precision = "ieee"
        torch.backends.cudnn.rnn.fp32_precision = "ieee"
    except AttributeError:
        pass
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)
    _configured = True


def to_torch(a: Any, device: str = "cpu", dtype: np.dtype | None = None,
             requires_grad: bool = False) -> Any:
    """A NumPy array (or a tuple/list/dict of them) as torch tensors on ``device``.

    Floating arrays become ``dtype`` (default: their own); integer arrays int64; anything else
    is returned unchanged. The data is copied, so the array is never shared or modified.
    """
    if isinstance(a, np.ndarray):
        if a.dtype.kind == "f":
            dt = TORCH_DTYPE[np.dtype(dtype or a.dtype)]
            t = torch.tensor(np.array(a, order="C"), dtype=dt, device=device)
            return t.requires_grad_(requires_grad)
        if a.dtype.kind in "iu":
            return torch.tensor(a.astype(np.int64), device=device)
        if a.dtype.kind == "b":
            return torch.tensor(a, device=device)
        raise TypeError(f"to_torch(): unsupported dtype {a.dtype}")
    if isinstance(a, tuple):
        return tuple(to_torch(e, device, dtype) for e in a)
    if isinstance(a, list):
        return [to_torch(e, device, dtype) for e in a]
    if isinstance(a, dict):
        return {k: to_torch(v, device, dtype) for k, v in a.items()}
    return a


def to_numpy(t: Any) -> Any:
    """Tensors (or tuples of them) back to NumPy on the CPU; None stays None."""
    if isinstance(t, torch.Tensor):
        return t.detach().cpu().numpy()
    if isinstance(t, (tuple, list)):
        return type(t)(to_numpy(e) for e in t)
    return t


def state_dict_to_numpy(module: torch.nn.Module) -> dict[str, np.ndarray]:
    """A torch module's state_dict as NumPy arrays (copies), ready for load_state_dict."""
    return {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}
