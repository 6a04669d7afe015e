"""``Embedding``: torch.nn.Embedding, a table of ``num_embeddings`` vectors looked up by index.

:func:`scratchnn.functional.embedding` plus one parameter, ``weight`` (num_embeddings,
embedding_dim), initialised N(0, 1) as torch (from a NumPy generator, so the values differ from
torch's; ``load_state_dict`` copies torch's). The ``padding_idx`` row starts at zero and never
receives a gradient; ``max_norm`` renormalises looked-up rows of ``weight`` in place, as torch.
``Embedding.from_pretrained(embeddings, freeze=True)`` wraps a given table (frozen: no gradient).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .. import functional as F
from .._validate import check_array, check_bool, check_int
from ..autodiff import vjp
from ..random import get_generator
from ..textbook.embedding import check_padding_idx
from .activation import _param_dtype
from .module import OpModule, Parameter

__all__ = ["Embedding"]


class Embedding(OpModule):
    """Embedding(num_embeddings, embedding_dim, padding_idx=None, max_norm=None, norm_type=2.0,
    scale_grad_by_freq=False, sparse=False, _weight=None, _freeze=False, device=None,
    dtype=None, *, generator=None): y = weight[input].

    Parameter ``weight`` (num_embeddings, embedding_dim) ~ N(0, 1), the ``padding_idx`` row
    zero. ``backward(dy)`` returns None (integer indices have no gradient) and adds the
    scatter-add dweight into ``weight.grad`` (zero on the padding row; nothing when frozen).
    Torch: torch.nn.Embedding (same state_dict key ``weight``).
    """

    _grad_params = ("weight",)

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 max_norm: float | None = None, norm_type: float = 2.0,
                 scale_grad_by_freq: bool = False, sparse: bool = False,
                 _weight: np.ndarray | None = None, _freeze: bool = False, device: Any = None,
                 dtype: Any = None, *, generator: np.random.Generator | None = None) -> None:
        super().__init__()
        fn = "Embedding"
        self.num_embeddings = check_int(fn, "num_embeddings", num_embeddings, min=1)
        self.embedding_dim = check_int(fn, "embedding_dim", embedding_dim, min=0)
        self.padding_idx = check_padding_idx(fn, padding_idx, self.num_embeddings)
        self.max_norm = max_norm
        self.norm_type = norm_type
        self.scale_grad_by_freq = check_bool(fn, "scale_grad_by_freq", scale_grad_by_freq)
        if check_bool(fn, "sparse", sparse):
            raise ValueError(f"{fn}(): parameter 'sparse' must be False: scratchnn's gradients "
                             f"are dense arrays")
        freeze = check_bool(fn, "_freeze", _freeze)
        if _weight is None:
            dt = _param_dtype(fn, device, dtype)
            g = get_generator(fn, generator)
            self.weight = Parameter(np.empty((self.num_embeddings, self.embedding_dim), dt),
                                    requires_grad=not freeze)
            self.reset_parameters(g)
        else:
            check_array(fn, "_weight", _weight, ndim=2)
            if _weight.shape != (self.num_embeddings, self.embedding_dim):
                raise ValueError(f"{fn}(): parameter '_weight' must have shape "
                                 f"{(self.num_embeddings, self.embedding_dim)}, got "
                                 f"{_weight.shape}")
            self.weight = Parameter(_weight, requires_grad=not freeze)

    def reset_parameters(self, generator: np.random.Generator | None = None) -> None:
        """torch's init: weight ~ N(0, 1), then the padding_idx row set to zero."""
        g = get_generator("Embedding.reset_parameters", generator)
        self.weight.data[...] = g.standard_normal(self.weight.shape)
        if self.padding_idx is not None:
            self.weight.data[self.padding_idx] = 0

    @classmethod
    def from_pretrained(cls, embeddings: np.ndarray, freeze: bool = True,
                        padding_idx: int | None = None, max_norm: float | None = None,
                        norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                        sparse: bool = False) -> "Embedding":
        """An Embedding whose weight is ``embeddings`` itself (shared, as torch); ``freeze``:
        no gradient is accumulated."""
        check_array("Embedding.from_pretrained", "embeddings", embeddings, ndim=2)
        rows, cols = embeddings.shape
        return cls(rows, cols, padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse,
                   _weight=embeddings, _freeze=freeze)

    def _call(self, x: np.ndarray) -> tuple[np.ndarray, Callable]:
        return vjp(F.embedding, x, self.weight.data, self.padding_idx, self.max_norm,
                   self.norm_type, self.scale_grad_by_freq)

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        if self.max_norm is not None:
            s += f", max_norm={self.max_norm}"
        return s
