"""``MultiheadAttention``: torch.nn's multi-head attention layer, with an explicit backward.

    mha = MultiheadAttention(embed_dim, num_heads, batch_first=True)
    out, weights = mha(x, x, x, attn_mask=causal)      # self-attention
    dq, dk, dv = mha.backward(dout)                     # + every parameter's .grad
    dx = dq + dk + dv                                   # x was used three times

It is :func:`scratchnn.functional.multi_head_attention_forward` plus torch's parameters (names,
shapes, init): ``in_proj_weight`` (3E, E) and ``in_proj_bias`` (3E), or ``q_proj_weight`` /
``k_proj_weight`` / ``v_proj_weight`` when kdim or vdim differ from embed_dim; ``bias_k`` /
``bias_v`` (1, 1, E) with ``add_bias_kv``; ``out_proj`` a :class:`Linear`. A torch state_dict
loads directly. Dropout on the attention weights (training mode) draws its mask from the
keyword-only ``generator`` (the same one that initialises the weights), else from the
default generator that ``scratchnn.manual_seed`` seeds.

torch's inference fast path (``torch._native_multi_head_attention``, taken in eval mode when
no input requires grad) is an implementation detail with its own quirks (a padded query
position comes back as 0); scratchnn always computes what torch's regular path computes.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import functional as F
from .._validate import check_array, check_bool, check_float, check_int
from ..autodiff import vjp
from ..random import get_generator
from .activation import _param_dtype
from .init import xavier_normal_, xavier_uniform_
from .linear import Linear
from .module import Module, Parameter

__all__ = ["MultiheadAttention"]


def _seq_first(*xs: np.ndarray) -> tuple:
    """(N, L, E) -> (L, N, E) as contiguous copies (a strided view would make the projections'
    matrix products several times slower); an input passed twice is copied once."""
    done: dict[int, np.ndarray] = {}
    for x in xs:
        if id(x) not in done:
            done[id(x)] = np.ascontiguousarray(np.swapaxes(x, 0, 1))
    return tuple(done[id(x)] for x in xs)


# pullback entries of multi_head_attention_forward -> parameter names
_GRADS = {5: "in_proj_weight", 6: "in_proj_bias", 7: "bias_k", 8: "bias_v",
          18: "q_proj_weight", 19: "k_proj_weight", 20: "v_proj_weight"}


class MultiheadAttention(Module):
    """MultiheadAttention(embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False,
    add_zero_attn=False, kdim=None, vdim=None, batch_first=False, device=None, dtype=None, *,
    generator=None)

    ``forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
    average_attn_weights=True, is_causal=False) -> (out, weights or None)``, torch's shapes:
    (L, N, E) or, with batch_first, (N, L, E); unbatched (L, E). Masks as torch: bool True =
    masked, float added; attn_mask (L, S) or (N·num_heads, L, S); key_padding_mask (N, S).
    ``backward(d_out, d_weights=None) -> (dquery, dkey, dvalue)``, adding into every
    parameter's ``.grad`` (for self-attention the input's gradient is their sum).
    Torch: torch.nn.MultiheadAttention (same state_dict keys, shapes and init).
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False,
                 kdim: int | None = None, vdim: int | None = None, batch_first: bool = False,
                 device: Any = None, dtype: Any = None, *,
                 generator: np.random.Generator | None = None) -> None:
        super().__init__()
        fn = "MultiheadAttention"
        E = check_int(fn, "embed_dim", embed_dim, min=1)
        H = check_int(fn, "num_heads", num_heads, min=1)
        if E % H:
            raise ValueError(f"{fn}(): parameter 'num_heads' ({H}) must divide embed_dim ({E})")
        self.kdim = E if kdim is None else check_int(fn, "kdim", kdim, min=1)
        self.vdim = E if vdim is None else check_int(fn, "vdim", vdim, min=1)
        self.dropout = check_float(fn, "dropout", dropout, lo=0.0, hi=1.0)
        for name, v in (("bias", bias), ("add_bias_kv", add_bias_kv),
                        ("add_zero_attn", add_zero_attn), ("batch_first", batch_first)):
            check_bool(fn, name, v)
        dt = _param_dtype(fn, device, dtype)
        self.generator = None if generator is None else get_generator(fn, generator)
        self.embed_dim, self.num_heads, self.head_dim = E, H, E // H
        self.batch_first, self.add_zero_attn = bool(batch_first), bool(add_zero_attn)
        self._qkv_same_embed_dim = self.kdim == E and self.vdim == E
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(np.empty((3 * E, E), dt))
            for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(name, None)
        else:
            self.register_parameter("in_proj_weight", None)
            self.q_proj_weight = Parameter(np.empty((E, E), dt))
            self.k_proj_weight = Parameter(np.empty((E, self.kdim), dt))
            self.v_proj_weight = Parameter(np.empty((E, self.vdim), dt))
        if bias:
            self.in_proj_bias = Parameter(np.empty(3 * E, dt))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(E, E, bias=bool(bias), dtype=dt, generator=self.generator)
        if add_bias_kv:
            self.bias_k = Parameter(np.empty((1, 1, E), dt))
            self.bias_v = Parameter(np.empty((1, 1, E), dt))
        else:
            self.bias_k = self.bias_v = None
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        """torch's init: xavier_uniform_ projections, zero biases, xavier_normal_ bias_k/v
        (out_proj's weight keeps Linear's init)."""
        g = self.generator
        for name in ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight"):
            p = getattr(self, name)
            if p is not None:
                xavier_uniform_(p.data, generator=g)
        if self.in_proj_bias is not None:
            self.in_proj_bias.data[...] = 0
            self.out_proj.bias.data[...] = 0
        for p in (self.bias_k, self.bias_v):
            if p is not None:
                xavier_normal_(p.data, generator=g)

    def _data(self, name: str) -> np.ndarray | None:
        p = getattr(self, name)
        return None if p is None else p.data

    def forward(self, query: np.ndarray, key: np.ndarray, value: np.ndarray,
                key_padding_mask: np.ndarray | None = None, need_weights: bool = True,
                attn_mask: np.ndarray | None = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        fn = "MultiheadAttention.forward"
        for name, x in (("query", query), ("key", key), ("value", value)):
            check_array(fn, name, x)
        swap = self.batch_first and query.ndim == 3
        if swap:                          # (N, L, E) -> (L, N, E), one copy per distinct input
            query, key, value = _seq_first(query, key, value)
        (out, weights), pullback = vjp(
            F.multi_head_attention_forward, query, key, value, self.embed_dim,
            self.num_heads, self._data("in_proj_weight"), self._data("in_proj_bias"),
            self._data("bias_k"), self._data("bias_v"), self.add_zero_attn, self.dropout,
            self.out_proj.weight.data, self._out_bias(), self.training, key_padding_mask,
            need_weights, attn_mask, not self._qkv_same_embed_dim,
            self._data("q_proj_weight"), self._data("k_proj_weight"),
            self._data("v_proj_weight"), None, None, average_attn_weights, is_causal,
            generator=self.generator)
        object.__setattr__(self, "_pullback", (pullback, swap))
        return (np.swapaxes(out, 0, 1) if swap else out), weights

    def _out_bias(self) -> np.ndarray | None:
        return None if self.out_proj.bias is None else self.out_proj.bias.data

    def _grads(self, d_out: Any, d_weights: Any) -> tuple:
        saved = self.__dict__.get("_pullback")
        if saved is None:
            raise RuntimeError("MultiheadAttention.backward() called before forward()")
        pullback, swap = saved
        if swap and isinstance(d_out, np.ndarray):
            d_out = np.swapaxes(d_out, 0, 1)
        g = pullback((d_out, d_weights))
        for i, name in _GRADS.items():
            p = getattr(self, name)
            if p is not None and g[i] is not None:
                p.accumulate(g[i])
        self.out_proj.weight.accumulate(g[11])
        if self.out_proj.bias is not None:
            self.out_proj.bias.accumulate(g[12])
        dq, dk, dv = (np.swapaxes(d, 0, 1) if swap and d is not None else d for d in g[:3])
        return dq, dk, dv, g[14], g[16]

    def backward(self, d_out: np.ndarray, d_weights: np.ndarray | None = None, *,
                 retain_graph: bool = False) -> tuple:
        """(dquery, dkey, dvalue); adds every parameter's gradient into its ``.grad``.
        ``d_weights``: the gradient of the returned weights (None: they were not used)."""
        return self._grads(d_out, d_weights)[:3]

    def _replay_backward(self, douts: tuple, input_grad: bool) -> tuple:
        """Inside a forward-only Module: gradients mirroring forward's inputs (query, key,
        value, key_padding_mask, need_weights, attn_mask), float masks included."""
        dq, dk, dv, dkpm, dam = self._grads(*douts)
        return dq, dk, dv, dkpm, None, dam

    def extra_repr(self) -> str:
        return ""
