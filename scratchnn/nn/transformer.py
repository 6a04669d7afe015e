"""The transformer layer stack (torch.nn's): encoder and decoder layers, their stacks, Transformer.

One encoder layer, post-norm (``norm_first=False``, the 2017 paper's) and pre-norm::

    post-norm:  x ← LN₁(x + SA(x))             pre-norm:  x ← x + SA(LN₁(x))
                x ← LN₂(x + FF(x))                        x ← x + FF(LN₂(x))

    SA(x) = Dropout₁(MultiheadAttention(x, x, x, masks)[0])
    FF(x) = Dropout₂(Linear₂(Dropout(act(Linear₁(x)))))

A decoder layer has a third block between the two, cross-attention to the encoder's output
(``memory``): ``CA(x) = Dropout₂(MultiheadAttention(x, memory, memory)[0])`` with ``norm2``, and
the feed-forward moves to ``norm3``/``dropout3``.

**The backward is a replay, not a new derivation.** These layers are forward-only Modules
(:mod:`scratchnn.nn.tracing`): ``forward`` calls ``MultiheadAttention``, ``Linear``, ``Dropout``,
``LayerNorm`` (the normalisation core) and the activation, and the residual additions are the
textbook ``add``. ``backward(dout)`` replays those layers' hand-written backwards in reverse
order, and a residual ``x + f(x)`` sends its gradient down both paths, summed where they meet
(dx = dy + f'(x)ᵀ dy). Nothing in this file differentiates anything: the textbook edition of a
layer stack is the composition of its layers' backwards.

State_dict keys, shapes and initialisation are torch's (``self_attn.in_proj_weight``,
``linear1.weight``, ``norm1.weight``, ``multihead_attn.*``, ``layers.0.…``), so a torch state_dict
loads. Masks follow torch: a bool mask is True where attention is *not* allowed, a float mask is
added to the scores; masks are constants (they receive no gradient).
"""
from __future__ import annotations

import copy
from typing import Any, Callable

import numpy as np

from .. import functional as F
from .._validate import check_array, check_bool, check_float, check_int
from . import tracing
from .attention import MultiheadAttention
from .container import ModuleList
from .dropout import Dropout
from .init import xavier_uniform_
from .linear import Linear
from .module import Module
from .normalization import LayerNorm

__all__ = ["TransformerEncoderLayer", "TransformerDecoderLayer", "TransformerEncoder",
           "TransformerDecoder", "Transformer", "generate_square_subsequent_mask"]


def generate_square_subsequent_mask(sz: int, device: Any = None, dtype: Any = None
                                    ) -> np.ndarray:
    """M_ij = −∞ for j > i, else 0: the causal mask, (sz, sz), float32 unless ``dtype``.

    Torch: torch.nn.Transformer.generate_square_subsequent_mask"""
    sz = check_int("generate_square_subsequent_mask", "sz", sz, min=0)
    dt = np.dtype(np.float32 if dtype is None else dtype)
    return np.triu(np.full((sz, sz), -np.inf, dt), 1)


def _detect_is_causal_mask(mask: Any, is_causal: bool | None, size: int | None) -> bool:
    """torch's rule: an explicit ``is_causal`` wins; None and a mask: is it exactly causal?"""
    if is_causal is not None or mask is None:
        return is_causal is True
    sz = size if size is not None else mask.shape[-2]
    causal = np.triu(np.ones((sz, sz), bool), 1)
    m = np.asarray(mask)
    if m.shape != causal.shape:
        return False
    return bool(np.array_equal(m, causal) if m.dtype == bool else
                np.array_equal(m, np.where(causal, -np.inf, 0.0)))


def _activation(fn: str, activation: Any) -> Callable:
    if isinstance(activation, str):
        acts = {"relu": F.relu, "gelu": F.gelu}
        if activation not in acts:
            raise ValueError(f"{fn}(): parameter 'activation' should be 'relu' or 'gelu' or a "
                             f"callable, not {activation!r}")
        return acts[activation]
    if not callable(activation):
        raise TypeError(f"{fn}(): parameter 'activation' must be 'relu', 'gelu' or a callable, "
                        f"got {type(activation).__name__}")
    return activation


def _check_seq(fn: str, name: str, x: Any, d_model: int) -> None:
    check_array(fn, name, x, ndim=(2, 3))
    if x.shape[-1] != d_model:
        raise ValueError(f"{fn}(): parameter '{name}' must have d_model = {d_model} features "
                         f"in its last dimension, got shape {x.shape}")


class _Stack(Module):
    """A forward-only Module whose backward returns the gradients of its sequence inputs
    (``_seqs`` of them, the leading arguments) and leaves the masks constant."""

    _seqs = 1
    _traced = True                  # its backward is the replay, trimmed to the sequences

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Sequences first and positional, everything else by keyword: the recorded inputs
        are then [sequences..., float masks...] whatever the call's spelling."""
        bound = tracing._signature(type(self).forward).bind(self, *args, **kwargs)
        items = list(bound.arguments.items())[1:]
        seqs = [v for _, v in items[:self._seqs]]
        return super().__call__(*seqs, **dict(items[self._seqs:]))

    def backward(self, dout: np.ndarray, *, input_grad: bool = True,
                 retain_graph: bool = False) -> Any:
        """The replay of the recorded forward (the layers' own backwards, in reverse); returns
        the sequences' gradients (``dsrc``; the decoder ``(dtgt, dmemory)``) and adds into every
        parameter's ``.grad``. ``input_grad=False``: returns None."""
        grads = tracing.backward(self, (dout,), input_grad, retain_graph)
        if not input_grad:
            return None
        grads = grads if isinstance(grads, tuple) else (grads,)
        return grads[0] if self._seqs == 1 else grads[:self._seqs]



def _layer_args(fn: str, d_model: Any, nhead: Any, dim_feedforward: Any, dropout: Any,
                activation: Any, layer_norm_eps: Any, batch_first: Any, norm_first: Any,
                bias: Any) -> tuple:
    d_model = check_int(fn, "d_model", d_model, min=1)
    nhead = check_int(fn, "nhead", nhead, min=1)
    if d_model % nhead:
        raise ValueError(f"{fn}(): parameter 'd_model' ({d_model}) must be divisible by "
                         f"'nhead' ({nhead})")
    return (d_model, nhead, check_int(fn, "dim_feedforward", dim_feedforward, min=0),
            check_float(fn, "dropout", dropout, lo=0.0, hi=1.0), _activation(fn, activation),
            check_float(fn, "layer_norm_eps", layer_norm_eps, lo=0.0),
            check_bool(fn, "batch_first", batch_first), check_bool(fn, "norm_first", norm_first),
            check_bool(fn, "bias", bias))


class _Layer(_Stack):
    """What both layers share: the constructor (torch's arguments), the self-attention and
    feed-forward blocks; the decoder has ``_n_norms = 3`` and a cross-attention."""

    _n_norms = 2

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048,
                 dropout: float = 0.1, activation: Any = F.relu, layer_norm_eps: float = 1e-5,
                 batch_first: bool = False, norm_first: bool = False, bias: bool = True,
                 device: Any = None, dtype: Any = None, *,
                 generator: np.random.Generator | None = None) -> None:
        super().__init__()
        n_norms = self._n_norms
        (d_model, nhead, dff, p, act, eps, batch_first, norm_first, bias) = _layer_args(
            type(self).__name__, d_model, nhead, dim_feedforward, dropout, activation,
            layer_norm_eps, batch_first, norm_first, bias)
        kw = dict(device=device, dtype=dtype)
        self.d_model, self.nhead, self.batch_first = d_model, nhead, batch_first
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=p, bias=bias,
                                            batch_first=batch_first, **kw, generator=generator)
        if n_norms == 3:
            self.multihead_attn = MultiheadAttention(d_model, nhead, dropout=p, bias=bias,
                                                     batch_first=batch_first, **kw,
                                                     generator=generator)
        self.linear1 = Linear(d_model, dff, bias=bias, **kw, generator=generator)
        self.dropout = Dropout(p)
        self.linear2 = Linear(dff, d_model, bias=bias, **kw, generator=generator)
        self.norm_first = norm_first
        for i in range(1, n_norms + 1):
            setattr(self, f"norm{i}", LayerNorm(d_model, eps=eps, bias=bias, **kw))
        for i in range(1, n_norms + 1):
            setattr(self, f"dropout{i}", Dropout(p))
        self.activation = act

    def _sa_block(self, x: Any, attn_mask: Any, key_padding_mask: Any, is_causal: bool) -> Any:
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                           need_weights=False, is_causal=is_causal)[0]
        return self.dropout1(x)

    def _ff_block(self, x: Any, last: Module) -> Any:
        return last(self.linear2(self.dropout(self.activation(self.linear1(x)))))


class TransformerEncoderLayer(_Layer):
    """TransformerEncoderLayer(d_model, nhead, dim_feedforward=2048, dropout=0.1,
    activation='relu', layer_norm_eps=1e-5, batch_first=False, norm_first=False, bias=True,
    device=None, dtype=None, *, generator=None)

    post-norm: x ← LN₁(x + SA(x)), x ← LN₂(x + FF(x));  pre-norm: x ← x + SA(LN₁(x)),
    x ← x + FF(LN₂(x)), with SA(x) = Dropout₁(MHA(x, x, x)) and
    FF(x) = Dropout₂(Linear₂(Dropout(act(Linear₁(x))))).

    Shapes:  src (S, N, E), (N, S, E) with batch_first, or (S, E) -> the same shape.
    Backward: the replay of MultiheadAttention's, Linear's, Dropout's, LayerNorm's and the
             activation's hand-written backwards in reverse; ``backward(dout)`` returns dsrc.
    Torch:   torch.nn.TransformerEncoderLayer (same state_dict; activation 'relu', 'gelu' or a
             callable; ``generator=`` draws the initial weights and is a scratchnn addition).
    """

    def forward(self, src: np.ndarray, src_mask: np.ndarray | None = None,
                src_key_padding_mask: np.ndarray | None = None, is_causal: bool = False
                ) -> np.ndarray:
        _check_seq("TransformerEncoderLayer.forward", "src", src, self.d_model)
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            x = x + self._ff_block(self.norm2(x), self.dropout2)
        else:
            x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
            x = self.norm2(x + self._ff_block(x, self.dropout2))
        return x


class TransformerDecoderLayer(_Layer):
    """TransformerDecoderLayer(d_model, nhead, dim_feedforward=2048, dropout=0.1,
    activation='relu', layer_norm_eps=1e-5, batch_first=False, norm_first=False, bias=True,
    device=None, dtype=None, *, generator=None)

    post-norm: x ← LN₁(x + SA(x)), x ← LN₂(x + CA(x, memory)), x ← LN₃(x + FF(x)); pre-norm:
    x ← x + SA(LN₁(x)), x ← x + CA(LN₂(x), memory), x ← x + FF(LN₃(x)), with
    CA(x, m) = Dropout₂(MHA(x, m, m)) the cross-attention.

    Shapes:  tgt (T, N, E), memory (S, N, E) (batch_first: (N, T, E), (N, S, E)) -> tgt's.
    Backward: the replay of the sublayers' hand-written backwards; ``backward(dout)`` returns
             (dtgt, dmemory) — memory collects the cross-attention's key and value gradients.
    Torch:   torch.nn.TransformerDecoderLayer (same state_dict).
    """

    _seqs = 2
    _n_norms = 3

    def forward(self, tgt: np.ndarray, memory: np.ndarray, tgt_mask: np.ndarray | None = None,
                memory_mask: np.ndarray | None = None,
                tgt_key_padding_mask: np.ndarray | None = None,
                memory_key_padding_mask: np.ndarray | None = None, tgt_is_causal: bool = False,
                memory_is_causal: bool = False) -> np.ndarray:
        fn = "TransformerDecoderLayer.forward"
        _check_seq(fn, "tgt", tgt, self.d_model)
        _check_seq(fn, "memory", memory, self.d_model)
        x = tgt
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal)
            x = x + self._mha_block(self.norm2(x), memory, memory_mask,
                                    memory_key_padding_mask, memory_is_causal)
            x = x + self._ff_block(self.norm3(x), self.dropout3)
        else:
            x = self.norm1(x + self._sa_block(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal))
            x = self.norm2(x + self._mha_block(x, memory, memory_mask, memory_key_padding_mask,
                                               memory_is_causal))
            x = self.norm3(x + self._ff_block(x, self.dropout3))
        return x

    def _mha_block(self, x: Any, mem: Any, attn_mask: Any, key_padding_mask: Any,
                   is_causal: bool) -> Any:
        x = self.multihead_attn(x, mem, mem, attn_mask=attn_mask,
                                key_padding_mask=key_padding_mask, is_causal=is_causal,
                                need_weights=False)[0]
        return self.dropout2(x)


def _stack(m: Module, fn: str, name: str, layer: Any, num_layers: Any, kind: type,
           norm: Any) -> None:
    """``m.layers``: ``num_layers`` deep copies of ``layer`` (keys ``layers.0.…``; generators
    shared, not copied, so the copies do not draw the same dropout masks); ``m.norm``."""
    if not isinstance(layer, kind):
        raise TypeError(f"{fn}(): parameter '{name}' must be a {kind.__name__}, got "
                        f"{type(layer).__name__}")
    n = check_int(fn, "num_layers", num_layers, min=1)
    if norm is not None and not isinstance(norm, Module):
        raise TypeError(f"{fn}(): parameter 'norm' must be a Module or None, got "
                        f"{type(norm).__name__}")
    shared = {id(g): g for sub in layer.modules() for g in sub.__dict__.values()
              if isinstance(g, np.random.Generator)}
    m.layers = ModuleList([copy.deepcopy(layer, dict(shared)) for _ in range(n)])
    m.num_layers = n
    m.norm = norm


def _seq_len(x: np.ndarray, batch_first: bool) -> int:
    return x.shape[0] if x.ndim == 2 else x.shape[1 if batch_first else 0]


class TransformerEncoder(_Stack):
    """TransformerEncoder(encoder_layer, num_layers, norm=None, enable_nested_tensor=True,
    mask_check=True): x ← layer_i(x) for i = 1..num_layers, then ``norm`` (if given).

    The layers are deep copies of ``encoder_layer`` (identical initial weights, as torch's);
    ``is_causal=None`` detects an exactly causal ``mask``. Nested tensors do not exist here:
    ``enable_nested_tensor`` and ``mask_check`` are accepted and change nothing.
    Backward: the layers' replays in reverse; returns dsrc.
    Torch:   torch.nn.TransformerEncoder
    """

    def __init__(self, encoder_layer: TransformerEncoderLayer, num_layers: int,
                 norm: Module | None = None, enable_nested_tensor: bool = True,
                 mask_check: bool = True) -> None:
        super().__init__()
        fn = "TransformerEncoder"
        _stack(self, fn, "encoder_layer", encoder_layer, num_layers, TransformerEncoderLayer,
               norm)
        self.enable_nested_tensor = check_bool(fn, "enable_nested_tensor", enable_nested_tensor)
        self.mask_check = check_bool(fn, "mask_check", mask_check)

    def forward(self, src: np.ndarray, mask: np.ndarray | None = None,
                src_key_padding_mask: np.ndarray | None = None, is_causal: bool | None = None
                ) -> np.ndarray:
        first = self.layers[0]
        _check_seq("TransformerEncoder.forward", "src", src, first.d_model)
        is_causal = _detect_is_causal_mask(mask, is_causal, _seq_len(src, first.batch_first))
        x = src
        for layer in self.layers:
            x = layer(x, src_mask=mask, is_causal=is_causal,
                      src_key_padding_mask=src_key_padding_mask)
        return x if self.norm is None else self.norm(x)


class TransformerDecoder(_Stack):
    """TransformerDecoder(decoder_layer, num_layers, norm=None): x ← layer_i(x, memory) for
    i = 1..num_layers, then ``norm`` (if given); ``tgt_is_causal=None`` detects a causal mask.

    Backward: the layers' replays in reverse; returns (dtgt, dmemory), dmemory summed over
    every layer's cross-attention.
    Torch:   torch.nn.TransformerDecoder
    """

    _seqs = 2

    def __init__(self, decoder_layer: TransformerDecoderLayer, num_layers: int,
                 norm: Module | None = None) -> None:
        super().__init__()
        _stack(self, "TransformerDecoder", "decoder_layer", decoder_layer, num_layers,
               TransformerDecoderLayer, norm)

    def forward(self, tgt: np.ndarray, memory: np.ndarray, tgt_mask: np.ndarray | None = None,
                memory_mask: np.ndarray | None = None,
                tgt_key_padding_mask: np.ndarray | None = None,
                memory_key_padding_mask: np.ndarray | None = None,
                tgt_is_causal: bool | None = None, memory_is_causal: bool = False
                ) -> np.ndarray:
        first = self.layers[0]
        _check_seq("TransformerDecoder.forward", "tgt", tgt, first.d_model)
        tgt_is_causal = _detect_is_causal_mask(tgt_mask, tgt_is_causal,
                                               _seq_len(tgt, first.batch_first))
        x = tgt
        for layer in self.layers:
            x = layer(x, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                      tgt_key_padding_mask=tgt_key_padding_mask,
                      memory_key_padding_mask=memory_key_padding_mask,
                      tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)
        return x if self.norm is None else self.norm(x)


class Transformer(_Stack):
    """Transformer(d_model=512, nhead=8, num_encoder_layers=6, num_decoder_layers=6,
    dim_feedforward=2048, dropout=0.1, activation='relu', custom_encoder=None,
    custom_decoder=None, layer_norm_eps=1e-5, batch_first=False, norm_first=False, bias=True,
    device=None, dtype=None, *, generator=None)

    out = Decoder(tgt, Encoder(src)): an encoder stack with a final LayerNorm, a decoder
    stack with a final LayerNorm; every parameter with more than one dimension re-initialised
    xavier_uniform_, as torch's.

    Shapes:  src (S, N, E), tgt (T, N, E) (batch_first: (N, S, E), (N, T, E)) -> (T, N, E).
    Backward: the replay of the decoder's and the encoder's; returns (dsrc, dtgt).
    Torch:   torch.nn.Transformer (same state_dict: ``encoder.layers.0.…``, ``encoder.norm.…``,
             ``decoder.…``); :func:`generate_square_subsequent_mask` is also a static method.
    """

    _seqs = 2
    generate_square_subsequent_mask = staticmethod(generate_square_subsequent_mask)

    def __init__(self, d_model: int = 512, nhead: int = 8, num_encoder_layers: int = 6,
                 num_decoder_layers: int = 6, dim_feedforward: int = 2048,
                 dropout: float = 0.1, activation: Any = F.relu,
                 custom_encoder: Module | None = None, custom_decoder: Module | None = None,
                 layer_norm_eps: float = 1e-5, batch_first: bool = False,
                 norm_first: bool = False, bias: bool = True, device: Any = None,
                 dtype: Any = None, *, generator: np.random.Generator | None = None) -> None:
        super().__init__()
        fn = "Transformer"
        args = (d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps,
                batch_first, norm_first, bias)
        _layer_args(fn, *args)                              # every argument checked first
        for name, m in (("custom_encoder", custom_encoder), ("custom_decoder", custom_decoder)):
            if m is not None and not isinstance(m, Module):
                raise TypeError(f"{fn}(): parameter '{name}' must be a Module or None, got "
                                f"{type(m).__name__}")
        kw = dict(device=device, dtype=dtype)
        if custom_encoder is None:
            layer = TransformerEncoderLayer(*args, **kw, generator=generator)
            custom_encoder = TransformerEncoder(
                layer, num_encoder_layers, LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw))
        self.encoder = custom_encoder
        if custom_decoder is None:
            layer = TransformerDecoderLayer(*args, **kw, generator=generator)
            custom_decoder = TransformerDecoder(
                layer, num_decoder_layers, LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw))
        self.decoder = custom_decoder
        for p in self.parameters():
            if p.ndim > 1:
                xavier_uniform_(p.data, generator=generator)
        self.d_model, self.nhead, self.batch_first = d_model, nhead, batch_first

    def forward(self, src: np.ndarray, tgt: np.ndarray, src_mask: np.ndarray | None = None,
                tgt_mask: np.ndarray | None = None, memory_mask: np.ndarray | None = None,
                src_key_padding_mask: np.ndarray | None = None,
                tgt_key_padding_mask: np.ndarray | None = None,
                memory_key_padding_mask: np.ndarray | None = None,
                src_is_causal: bool | None = None, tgt_is_causal: bool | None = None,
                memory_is_causal: bool = False) -> np.ndarray:
        fn = "Transformer.forward"
        _check_seq(fn, "src", src, self.d_model)
        _check_seq(fn, "tgt", tgt, self.d_model)
        b = 0 if self.batch_first else 1
        if src.ndim == 3 and (tgt.ndim != 3 or src.shape[b] != tgt.shape[b]):
            raise ValueError(f"{fn}(): parameters 'src' {src.shape} and 'tgt' {tgt.shape} must "
                             f"have the same batch size (dim {b})")
        memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask,
                              is_causal=src_is_causal)
        return self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                            tgt_key_padding_mask=tgt_key_padding_mask,
                            memory_key_padding_mask=memory_key_padding_mask,
                            tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)
