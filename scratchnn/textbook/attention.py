"""Attention, the textbook edition: scaled dot-product attention and multi-head attention.

One formula carries the whole family::

    S = scale · Q Kᵀ + M          (L, S) scores; M the additive mask (0 or −∞ for a bool mask)
    P = softmax_rows(S)           each query's weights over the keys
    A = P ⊙ m / (1 − p)           dropout on the weights (A = P without it)
    O = A V                       (L, Ev) each output is a weighted mean of the values

and its backward is four matrix products and the softmax vector-Jacobian product::

    dV = Aᵀ dO        dA = dO Vᵀ        dP = dA ⊙ m / (1 − p)
    dS = P ⊙ (dP − rowsum(dP ⊙ P))                      (softmax's VJP, textbook/activation.py)
    dQ = scale · dS K                dK = scale · dSᵀ Q       dM = dS (summed to M's shape)

:func:`attend` / :func:`attend_backward` write it once; ``scaled_dot_product_attention`` adds
torch's mask conventions, broadcasting and grouped-query heads, and
``multi_head_attention_forward`` adds the projections in and out and the head split. The
derivation is in ``docs/attention.md``.

Fully masked rows (every score −∞) follow torch 2.13 on the CPU: scaled_dot_product_attention
(and MultiheadAttention with ``need_weights=False``) gives them weight 0, so their output and
gradients are 0; MultiheadAttention with ``need_weights=True`` uses a plain softmax and gives
NaN, as torch does.
"""
from __future__ import annotations

import math
import warnings
from contextvars import ContextVar
from typing import Any, Callable, NamedTuple

import numpy as np

from .._validate import check_array, check_bool, check_float, check_int
from ..autodiff import defop, vjp
from ..random import get_generator
from .activation import SoftmaxCtx, softmax_backward, softmax_forward
from .dropout import dropout_mask, scaled_noise
from .linear import linear
from .tensor import unbroadcast

Array = np.ndarray

__all__ = ["scaled_dot_product_attention", "multi_head_attention_forward", "attend",
           "attend_backward", "sdpa_forward", "sdpa_backward", "mha_forward", "mha_backward"]


# -- the core: O = dropout(softmax(scale·QKᵀ + M)) V --------------------------------------------

#: The softmax (forward, backward) that :func:`attend` runs over the keys: the textbook's.
#: ``scratchnn.functional.attention`` runs this same code with the engine's row-blocked
#: softmax by setting it for the duration of one call (a context variable: per thread, and
#: restored afterwards); the backward uses whichever the forward saved.
SOFTMAX: ContextVar[tuple[Callable, Callable]] = ContextVar(
    "attention_softmax", default=(softmax_forward, softmax_backward))


class AttendCtx(NamedTuple):
    q: Array                       # (*, L, E) scale·Q, as multiplied
    k: Array                       # (*, S, E)
    v: Array                       # (*, S, Ev)
    soft: SoftmaxCtx               # P, the softmax output (0 on rows made safe)
    noise: Array | None            # dropout's m / (1 − p), or None
    a: Array                       # A = P ⊙ noise (P itself without dropout)
    scale: float
    soft_backward: Callable        # the backward of the softmax that made P


def attend(q: Array, k: Array, v: Array, mask: Array | None, scale: float, dropout_p: float,
           generator: np.random.Generator | None, safe: bool = True,
           fn: str = "attend") -> tuple[Array, AttendCtx]:
    """O = A V,  A = dropout(P),  P = softmax(scale · Q Kᵀ + M)   along the keys

    Shapes:  q (*, L, E), k (*, S, E), v (*, S, Ev), mask broadcastable to (*, L, S)
             -> O (*, L, Ev); the leading dims ``*`` broadcast as in ``np.matmul``.
    Saves:   Q, K, V, P and the dropout noise: each of the four products needs two of them.
    ``safe``: a row whose scores are all −∞ gets P = 0 (torch's ``_safe_softmax``) instead of
    NaN. The dropout mask m (True = kept) is drawn over A's shape by
    ``dropout_mask(A.shape, p, generator)``, so a copy of the generator redraws it.
    """
    q = q * scale                                               # scale the small factor
    s = q @ np.swapaxes(k, -1, -2)                              # (*, L, S)
    if mask is not None:
        s = s + mask
    dead = None                                                 # rows whose scores are all −∞
    if safe:                                                    # (no keys at all included)
        dead = s.max(axis=-1, keepdims=True, initial=-np.inf) == -np.inf
    if dead is not None and dead.any():
        s = np.where(dead, 0, s)                                # softmax of 0s, then zeroed
    soft_forward, soft_backward = SOFTMAX.get()
    with np.errstate(invalid="ignore"):                         # a NaN row, when not safe
        p, soft = soft_forward(s, dim=-1)
    if dead is not None and dead.any():
        p = np.where(dead, 0, p)
        soft = soft._replace(y=p)
    noise = None
    if dropout_p == 1:
        noise = np.zeros((), p.dtype)                           # torch: everything dropped
    elif dropout_p > 0:
        keep = dropout_mask(p.shape, dropout_p, generator, fn)
        noise, _ = scaled_noise(keep, dropout_p, p.dtype, alpha=False)
    a = p if noise is None else p * noise
    return a @ v, AttendCtx(q, k, v, soft, noise, a, scale, soft_backward)


def attend_backward(ctx: AttendCtx, dout: Array, da: Array | None = None
                    ) -> tuple[Array, Array, Array, Array]:
    """dV = Aᵀ dO,  dP = (dO Vᵀ + dA) ⊙ noise,  dS = P ⊙ (dP − rowsum(dP ⊙ P)),
    dQ = scale · dS K,  dK = scale · dSᵀ Q;  returns (dQ, dK, dV, dS) at the broadcast shape.

    ``da``: a gradient that reaches A directly (MultiheadAttention returns A as its weights).
    """
    q, k, v = ctx.q, ctx.k, ctx.v
    dv = np.swapaxes(ctx.a, -1, -2) @ dout                     # (*, S, Ev)
    d_a = dout @ np.swapaxes(v, -1, -2)                         # (*, L, S)
    if da is not None:
        d_a = d_a + da
    dp = d_a if ctx.noise is None else d_a * ctx.noise
    ds = ctx.soft_backward(ctx.soft, dp)                        # P ⊙ (dP − Σ dP ⊙ P)
    dq = (ds @ k) * ctx.scale                                   # (*, L, E)
    dk = np.swapaxes(ds, -1, -2) @ q                            # (*, S, E); q is scale·Q
    return dq, dk, dv, ds


# -- scaled_dot_product_attention --------------------------------------------------------------

class SdpaCtx(NamedTuple):
    core: AttendCtx
    shapes: tuple                  # the caller's q, k, v shapes (their gradients' shapes)
    groups: tuple[int, int]        # how often each key / value head was repeated (GQA)
    mask: tuple | None             # (shape, dtype) of a float attn_mask, else None


def additive_mask(fn: str, name: str, mask: Array, dtype: np.dtype, allowed: bool) -> Array:
    """A bool mask as 0 / −∞ in ``dtype`` (``allowed``: True means takes part, torch's SDPA;
    otherwise True means masked, torch's MultiheadAttention); a float mask cast to ``dtype``."""
    if not isinstance(mask, np.ndarray):
        raise TypeError(f"{fn}(): parameter '{name}' must be a numpy.ndarray or None, "
                        f"got {type(mask).__name__}")
    if mask.dtype == np.bool_:
        return np.where(mask if allowed else ~mask, 0, -np.inf).astype(dtype)
    if mask.dtype.kind != "f":
        raise TypeError(f"{fn}(): parameter '{name}' must be a bool or floating array, got "
                        f"dtype {mask.dtype}")
    return mask.astype(dtype, copy=False)


def repeat_heads(fn: str, x: Array, heads: int, name: str) -> tuple[Array, int]:
    """GQA: ``x``'s heads (dim −3) each repeated ``heads / x_heads`` times in a row (torch's
    repeat_interleave), so every query head has its key/value head."""
    if x.ndim < 3 or heads % x.shape[-3]:
        raise ValueError(f"{fn}(): parameter '{name}' with enable_gqa=True must have a head "
                         f"dimension (-3) dividing the query's {heads} heads, got shape "
                         f"{x.shape}")
    rep = heads // x.shape[-3]
    return np.repeat(x, rep, axis=-3), rep


def fold_heads(g: Array, rep: int) -> Array:
    """The inverse of :func:`repeat_heads` for a gradient: sum each group of ``rep`` heads."""
    if rep == 1:
        return g
    return g.reshape(g.shape[:-3] + (g.shape[-3] // rep, rep) + g.shape[-2:]).sum(axis=-3)


def sdpa_args(query: Array, key: Array, value: Array, attn_mask: Any, dropout_p: Any,
              is_causal: Any, scale: Any, enable_gqa: Any, generator: Any) -> tuple:
    """Validate ``scaled_dot_product_attention``'s arguments; return (q, k, v, M, scale, p,
    groups) with k, v's heads repeated and M the additive mask (None without one)."""
    fn = "scaled_dot_product_attention"
    for name, x in (("query", query), ("key", key), ("value", value)):
        check_array(fn, name, x)
        if x.ndim < 2:
            raise ValueError(f"{fn}(): parameter '{name}' must be at least 2-dimensional "
                             f"(..., L, E), got shape {x.shape}")
    if key.dtype != query.dtype or value.dtype != query.dtype:
        raise TypeError(f"{fn}(): parameters 'query', 'key' and 'value' must share one dtype, "
                        f"got {query.dtype}, {key.dtype} and {value.dtype}")
    if key.shape[-1] != query.shape[-1]:
        raise ValueError(f"{fn}(): parameter 'key' must have the query's embedding size "
                         f"{query.shape[-1]} (last dim), got shape {key.shape}")
    if value.shape[-2] != key.shape[-2]:
        raise ValueError(f"{fn}(): parameter 'value' must have the key's sequence length "
                         f"{key.shape[-2]} (dim -2), got shape {value.shape}")
    p = check_float(fn, "dropout_p", dropout_p, lo=0.0, hi=1.0)
    is_causal = check_bool(fn, "is_causal", is_causal)
    if check_bool(fn, "enable_gqa", enable_gqa) and query.ndim >= 3:
        key, rk = repeat_heads(fn, key, query.shape[-3], "key")
        value, rv = repeat_heads(fn, value, query.shape[-3], "value")
    else:
        rk = rv = 1
    get_generator(fn, generator)
    E, L, S = query.shape[-1], query.shape[-2], key.shape[-2]
    if scale is None:
        scale = 1.0 / math.sqrt(E) if E else math.inf
    scale = check_float(fn, "scale", scale) if scale != math.inf else scale
    try:
        batch = np.broadcast_shapes(query.shape[:-2], key.shape[:-2], value.shape[:-2])
    except ValueError:
        raise ValueError(f"{fn}(): the batch dims of 'query' {query.shape[:-2]}, 'key' "
                         f"{key.shape[:-2]} and 'value' {value.shape[:-2]} do not "
                         f"broadcast") from None
    m = None
    if attn_mask is not None:
        if is_causal:
            raise ValueError(f"{fn}(): parameter 'attn_mask' must be None when is_causal=True "
                             f"(the causal mask is built in)")
        m = additive_mask(fn, "attn_mask", attn_mask, query.dtype, allowed=True)
        full = batch + (L, S)
        if len(m.shape) > len(full) or any(a not in (1, b) for a, b in
                                           zip(m.shape[::-1], full[::-1])):
            raise ValueError(f"{fn}(): parameter 'attn_mask' of shape {attn_mask.shape} must "
                             f"broadcast to the attention's shape {full}")
    elif is_causal:
        m = np.where(np.tril(np.ones((L, S), bool)), 0, -np.inf).astype(query.dtype)
    return query, key, value, m, scale, p, (rk, rv)


def sdpa_forward(query: Array, key: Array, value: Array, attn_mask: Array | None = None,
                 dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None,
                 enable_gqa: bool = False, *, generator: np.random.Generator | None = None
                 ) -> tuple[Array, SdpaCtx]:
    """O = dropout(softmax(scale · Q Kᵀ + M)) V,  scale = 1/√E by default

    Shapes:  query (*, L, E), key (*, S, E), value (*, S, Ev) -> (*, L, Ev); ``*`` any
             leading dims, broadcast. attn_mask broadcastable to (*, L, S): bool (True = takes
             part, False adds −∞) or float (added). is_causal: query i sees keys j ≤ i
             (top-left aligned, as torch); not with attn_mask. enable_gqa: key/value with
             fewer heads (dim −3), each repeated for its group of query heads.
    Saves:   what :func:`attend` saves; a row with every key masked gives 0 (torch 2.13).
    Dropout: mask drawn from ``generator`` (scratchnn's default one if None) over (*, L, S).
    Backward: :func:`attend_backward`, then gradients summed over broadcast dims and GQA
             groups; a float attn_mask gets dM = dS summed to its shape.
    Torch:   torch.nn.functional.scaled_dot_product_attention
    """
    q, k, v, m, scale, p, groups = sdpa_args(query, key, value, attn_mask, dropout_p,
                                             is_causal, scale, enable_gqa, generator)
    out, core = attend(q, k, v, m, scale, p, generator, fn="scaled_dot_product_attention")
    fmask = (attn_mask.shape, attn_mask.dtype) if attn_mask is not None and \
        attn_mask.dtype.kind == "f" else None
    return out, SdpaCtx(core, (query.shape, key.shape, value.shape), groups, fmask)


def sdpa_backward(ctx: SdpaCtx, dout: Array) -> tuple:
    """dQ, dK, dV, dM from :func:`attend_backward`, summed back to the inputs' shapes"""
    dq, dk, dv, ds = attend_backward(ctx.core, dout)
    (qs, ks, vs), (rk, rv) = ctx.shapes, ctx.groups
    dq = unbroadcast(dq, qs)
    dk = fold_heads(unbroadcast(dk, ks[:-3] + (ks[-3] * rk,) + ks[-2:] if rk > 1 else ks), rk)
    dv = fold_heads(unbroadcast(dv, vs[:-3] + (vs[-3] * rv,) + vs[-2:] if rv > 1 else vs), rv)
    dm = None
    if ctx.mask is not None:
        dm = unbroadcast(ds, ctx.mask[0]).reshape(ctx.mask[0]).astype(ctx.mask[1])
    return dq, dk, dv, dm


scaled_dot_product_attention = defop(sdpa_forward, sdpa_backward,
                                     name="scaled_dot_product_attention")


# -- multi_head_attention_forward --------------------------------------------------------------

MHA = "multi_head_attention_forward"


class MhaShape(NamedTuple):
    """The sizes and flags of one multi-head attention call."""
    L: int                         # target (query) length
    N: int                         # batch
    E: int                         # embed_dim
    H: int                         # heads
    S: int                         # source length before bias_k / zero attention
    batched: bool
    need_weights: bool
    average: bool


def _check_mask_dims(fn: str, name: str, m: Any, allowed: tuple[int, ...], where: str) -> None:
    if m is None:
        return
    if not isinstance(m, np.ndarray):
        raise TypeError(f"{fn}(): parameter '{name}' must be a numpy.ndarray or None, got "
                        f"{type(m).__name__}")
    if m.dtype != np.bool_ and m.dtype.kind != "f":
        raise TypeError(f"{fn}(): parameter '{name}' must be a bool or floating array, got "
                        f"dtype {m.dtype}")
    if m.ndim not in allowed:
        raise ValueError(f"{fn}(): parameter '{name}' must be None or "
                         f"{' or '.join(f'{d}-D' for d in allowed)} for {where}, got shape "
                         f"{m.shape}")


def _check_shape(fn: str, name: str, a: Any, shape: tuple) -> None:
    if a is not None:
        check_array(fn, name, a)
        if a.shape != shape:
            raise ValueError(f"{fn}(): parameter '{name}' must have shape {shape}, got "
                             f"{a.shape}")


def mha_args(query: Array, key: Array, value: Array, embed_dim: Any, num_heads: Any,
             w: dict, kpm: Any, attn_mask: Any, flags: dict, static: tuple) -> MhaShape:
    """Every check of ``multi_head_attention_forward``, in torch's order, before any work.
    ``w``: the weights and biases by name (None allowed); ``flags``: the bool options."""
    fn = MHA
    for name, x in (("query", query), ("key", key), ("value", value)):
        check_array(fn, name, x, ndim=(2, 3))
    batched = query.ndim == 3
    if key.ndim != query.ndim or value.ndim != query.ndim:
        raise ValueError(f"{fn}(): parameters 'key' and 'value' must be {query.ndim}-D like "
                         f"'query', got shapes {key.shape} and {value.shape}")
    _check_mask_dims(fn, "key_padding_mask", kpm, (2,) if batched else (1,),
                     f"a {query.ndim}-D query")
    _check_mask_dims(fn, "attn_mask", attn_mask, (2, 3), f"a {query.ndim}-D query")
    for name, v in flags.items():
        check_bool(fn, name, v)
    E = check_int(fn, "embed_dim_to_check", embed_dim, min=1)
    H = check_int(fn, "num_heads", num_heads, min=1)
    L, N = query.shape[0], (query.shape[1] if batched else 1)
    if query.shape[-1] != E:
        raise ValueError(f"{fn}(): parameter 'query' has embedding size {query.shape[-1]}, "
                         f"expected embed_dim_to_check={E}")
    if E % H:
        raise ValueError(f"{fn}(): parameter 'num_heads' ({H}) must divide embed_dim ({E})")
    if batched and (key.shape[1] != N or value.shape[1] != N):
        raise ValueError(f"{fn}(): parameters 'key' and 'value' must have the query's batch "
                         f"size {N} (dim 1), got shapes {key.shape} and {value.shape}")
    if key.shape[0] != value.shape[0]:
        raise ValueError(f"{fn}(): parameter 'value' must have the key's sequence length "
                         f"{key.shape[0]}, got shape {value.shape}")
    for name, a in list(w.items()) + [("static_k", static[0]), ("static_v", static[1])]:
        if a is not None:
            check_array(fn, name, a)
            if a.dtype != query.dtype:
                raise TypeError(f"{fn}(): parameter '{name}' has dtype {a.dtype} but 'query' "
                                f"has {query.dtype}; pass all as float32 or all as float64")
    if flags["use_separate_proj_weight"]:
        for name, d in (("q_proj_weight", E), ("k_proj_weight", key.shape[-1]),
                        ("v_proj_weight", value.shape[-1])):
            if w[name] is None:
                raise ValueError(f"{fn}(): parameter '{name}' is required with "
                                 f"use_separate_proj_weight=True")
            _check_shape(fn, name, w[name], (E, d))
    else:
        if key.shape[-1] != E or value.shape[-1] != E:
            raise ValueError(f"{fn}(): parameters 'key' and 'value' must have embedding size "
                             f"{E} with packed weights (use separate projection weights for "
                             f"kdim/vdim), got shapes {key.shape} and {value.shape}")
        if w["in_proj_weight"] is None:
            raise ValueError(f"{fn}(): parameter 'in_proj_weight' is required with "
                             f"use_separate_proj_weight=False")
        _check_shape(fn, "in_proj_weight", w["in_proj_weight"], (3 * E, E))
    _check_shape(fn, "in_proj_bias", w["in_proj_bias"], (3 * E,))
    _check_shape(fn, "out_proj_weight", w["out_proj_weight"], (E, E))
    _check_shape(fn, "out_proj_bias", w["out_proj_bias"], (E,))
    if (w["bias_k"] is None) != (w["bias_v"] is None):
        raise ValueError(f"{fn}(): parameters 'bias_k' and 'bias_v' must be given together")
    if w["bias_k"] is not None:
        if static[0] is not None or static[1] is not None:
            raise ValueError(f"{fn}(): parameter 'bias_k' cannot be added to static_k/static_v")
        _check_shape(fn, "bias_k", w["bias_k"], (1, 1, E))
        _check_shape(fn, "bias_v", w["bias_v"], (1, 1, E))
    S = key.shape[0]
    if attn_mask is not None:
        want = [(L, S), (N * H, L, S) if batched else (H, L, S)][attn_mask.ndim - 2]
        if attn_mask.shape != want:
            raise ValueError(f"{fn}(): parameter 'attn_mask' must have shape {want}, got "
                             f"{attn_mask.shape}")
    for name, st in (("static_k", static[0]), ("static_v", static[1])):
        if st is not None and (st.ndim != 3 or st.shape[0] != N * H or st.shape[2] != E // H):
            raise ValueError(f"{fn}(): parameter '{name}' must have shape (N·num_heads, S, "
                             f"head_dim) = ({N * H}, S, {E // H}), got {st.shape}")
    if static[0] is not None:
        S = static[0].shape[1]
    if static[1] is not None and static[1].shape[1] != S:
        raise ValueError(f"{fn}(): parameter 'static_v' must have the keys' length {S}, got "
                         f"shape {static[1].shape}")
    if kpm is not None and kpm.shape != ((N, S) if batched else (S,)):
        raise ValueError(f"{fn}(): parameter 'key_padding_mask' must have shape "
                         f"{(N, S) if batched else (S,)}, got {kpm.shape}")
    if flags["is_causal"] and attn_mask is None:
        raise ValueError(f"{fn}(): parameter 'attn_mask' is required with is_causal=True (the "
                         f"hint names the causal mask; build it with a triu of -inf)")
    if kpm is not None and attn_mask is not None and kpm.dtype != attn_mask.dtype:
        warnings.warn("Support for mismatched key_padding_mask and attn_mask is deprecated. "
                      "Use same type for both instead.", stacklevel=4)
    return MhaShape(L, N, E, H, S, batched, flags["need_weights"],
                    flags["average_attn_weights"])


def split_heads(x: Array, H: int) -> Array:
    """(T, N, E) -> (N, H, T, E/H): head h is features h·E/H … (h+1)·E/H − 1 (torch's view)."""
    T, N, E = x.shape
    return x.reshape(T, N, H, E // H).transpose(1, 2, 0, 3)


def merge_heads(x: Array) -> Array:
    """(N, H, T, d) -> (T, N, H·d): the inverse of :func:`split_heads`."""
    N, H, T, d = x.shape
    return x.transpose(2, 0, 1, 3).reshape(T, N, H * d)


def _pad_keys(m: Array | None, n: int) -> Array | None:
    """A mask with ``n`` more key columns of 0 (for bias_k and the zero attention)."""
    if m is None or n == 0:
        return m
    return np.concatenate([m, np.zeros(m.shape[:-1] + (n,), m.dtype)], axis=-1)


class MhaCtx(NamedTuple):
    shape: MhaShape
    pulls: tuple                   # pullbacks of the q, k, v projections (None: static)
    out_pull: Any                  # pullback of the out projection
    core: AttendCtx
    extra: int                     # key columns added: bias_k (1) + zero attention (1)
    bias_kv: bool
    zero_attn: bool
    static: tuple[bool, bool]
    masks: tuple                   # (dtype, shape, used) of a float attn_mask / padding mask
    packed: bool
    has_bias: bool
    in_shapes: tuple               # query, key, value shapes as passed



def _project(query: Array, key: Array, value: Array, w: dict, E: int, separate: bool,
             static: tuple) -> tuple[list, list]:
    """q = query W_qᵀ + b_q, k = key W_kᵀ + b_k, v = value W_vᵀ + b_v through ``linear``
    (its pullbacks kept); W_q, W_k, W_v are the thirds of in_proj_weight, or the separate
    weights. A projection replaced by static_k / static_v is not computed."""
    b = w["in_proj_bias"]
    bs = [None] * 3 if b is None else [b[:E], b[E:2 * E], b[2 * E:]]
    if separate:
        ws = [w["q_proj_weight"], w["k_proj_weight"], w["v_proj_weight"]]
    else:
        W = w["in_proj_weight"]
        ws = [W[:E], W[E:2 * E], W[2 * E:]]
    outs, pulls = [], []
    for x, wi, bi, st in zip((query, key, value), ws, bs, (None,) + static):
        if st is not None:
            outs.append(None)
            pulls.append(None)
            continue
        y, pb = vjp(linear, x.reshape(-1, x.shape[-1]), wi, bi)   # (T·N, E): one GEMM
        outs.append(y.reshape(x.shape[:-1] + (E,)))             # (T, N, E)
        pulls.append(pb)
    return outs, pulls


def mha_forward(query: Array, key: Array, value: Array, embed_dim_to_check: int,
                num_heads: int, in_proj_weight: Array | None, in_proj_bias: Array | None,
                bias_k: Array | None, bias_v: Array | None, add_zero_attn: bool,
                dropout_p: float, out_proj_weight: Array, out_proj_bias: Array | None,
                training: bool = True, key_padding_mask: Array | None = None,
                need_weights: bool = True, attn_mask: Array | None = None,
                use_separate_proj_weight: bool = False, q_proj_weight: Array | None = None,
                k_proj_weight: Array | None = None, v_proj_weight: Array | None = None,
                static_k: Array | None = None, static_v: Array | None = None,
                average_attn_weights: bool = True, is_causal: bool = False, *,
                generator: np.random.Generator | None = None) -> tuple[tuple, MhaCtx]:
    """out = concat_h(attend(Q W_qᵀ, K W_kᵀ, V W_vᵀ)_h) W_oᵀ + b_o   (biases on each projection)

    Shapes:  query (L, N, E), key (S, N, kdim), value (S, N, vdim) -> out (L, N, E),
             weights (N, L, S) averaged over heads, or (N, H, L, S); unbatched (L, E), (S, ·)
             -> (L, E), (L, S) / (H, L, S). Each head h attends with its E/H features,
             scale 1/√(E/H).
    Masks:   key_padding_mask (N, S) and attn_mask (L, S) or (N·H, L, S): bool (True = masked,
             −∞) or float (added). bias_k/bias_v append one learned key/value, add_zero_attn
             one zero key/value (masks padded with 0 for them).
    Saves:   the projections' pullbacks and what :func:`attend` saves.
    Returns: (out, weights); weights is None unless need_weights (then A itself, after
             dropout, as torch). is_causal is a hint that attn_mask is causal: used as
             torch does (the built-in causal mask when need_weights=False and no padding mask).
    Backward: out projection, head merge, :func:`attend_backward`, head split, the cuts of
             bias_k / zero attention, in projections — each reversed in turn.
    Torch:   torch.nn.functional.multi_head_attention_forward
    """
    w = {"in_proj_weight": in_proj_weight, "in_proj_bias": in_proj_bias, "bias_k": bias_k,
         "bias_v": bias_v, "out_proj_weight": out_proj_weight, "out_proj_bias": out_proj_bias,
         "q_proj_weight": q_proj_weight, "k_proj_weight": k_proj_weight,
         "v_proj_weight": v_proj_weight}
    flags = {"add_zero_attn": add_zero_attn, "training": training, "need_weights": need_weights,
             "use_separate_proj_weight": use_separate_proj_weight,
             "average_attn_weights": average_attn_weights, "is_causal": is_causal}
    sh = mha_args(query, key, value, embed_dim_to_check, num_heads, w, key_padding_mask,
                  attn_mask, flags, (static_k, static_v))
    p = check_float(MHA, "dropout_p", dropout_p, lo=0.0, hi=1.0) if training else 0.0
    get_generator(MHA, generator)
    shapes = (query.shape, key.shape, value.shape)
    if not sh.batched:                                          # as a batch of one
        query, key, value = query[:, None], key[:, None], value[:, None]
    (q, k, v), pulls = _project(query, key, value, w, sh.E, use_separate_proj_weight,
                                (static_k, static_v))
    if bias_k is not None:                                      # one more key and value
        k = np.concatenate([k, np.broadcast_to(bias_k, (1, sh.N, sh.E))])
        v = np.concatenate([v, np.broadcast_to(bias_v, (1, sh.N, sh.E))])
    N, H = sh.N, sh.H
    q = split_heads(q, H)                                       # (N, H, L, d)
    k = split_heads(k, H) if static_k is None else static_k.reshape(N, H, sh.S, sh.E // H)
    v = split_heads(v, H) if static_v is None else static_v.reshape(N, H, sh.S, sh.E // H)
    if add_zero_attn:
        k = np.concatenate([k, np.zeros((N, H, 1, sh.E // H), k.dtype)], axis=2)
        v = np.concatenate([v, np.zeros((N, H, 1, sh.E // H), v.dtype)], axis=2)
    extra = int(bias_k is not None) + int(add_zero_attn)
    m = _merged_mask(sh, attn_mask, key_padding_mask, is_causal, extra, query.dtype)
    o, core = attend(q, k, v, m, 1.0 / math.sqrt(sh.E // H), p, generator,
                     safe=not need_weights, fn=MHA)             # (N, H, L, d)
    out, out_pull = vjp(linear, merge_heads(o).reshape(sh.L * N, sh.E), out_proj_weight,
                        out_proj_bias)
    out = out.reshape(sh.L, N, sh.E)
    weights = None
    if need_weights:
        weights = core.a.mean(axis=1) if average_attn_weights else core.a
        weights = weights if sh.batched else weights[0]
    used = _mask_used(sh, key_padding_mask, is_causal)
    fl = [None if x is None or x.dtype.kind != "f" else (x.dtype, x.shape, x is not attn_mask
          or used) for x in (attn_mask, key_padding_mask)]
    ctx = MhaCtx(sh, tuple(pulls), out_pull, core, extra, bias_k is not None, add_zero_attn,
                 (static_k is not None, static_v is not None), tuple(fl),
                 not use_separate_proj_weight, in_proj_bias is not None,
                 shapes)
    return (out if sh.batched else out[:, 0], weights), ctx


def _mask_used(sh: MhaShape, kpm: Any, is_causal: bool) -> bool:
    """torch drops attn_mask for the built-in causal mask when is_causal, no padding mask and
    no weights are asked for."""
    return not (is_causal and kpm is None and not sh.need_weights)


def _merged_mask(sh: MhaShape, attn_mask: Any, kpm: Any, is_causal: bool, extra: int,
                 dtype: np.dtype) -> Array | None:
    """M = attn_mask + key_padding_mask as additive float masks broadcastable to
    (N, H, L, S'), padded with 0 for the ``extra`` keys; or the causal mask."""
    S2 = sh.S + extra
    if not _mask_used(sh, kpm, is_causal):
        return np.where(np.tril(np.ones((sh.L, S2), bool)), 0, -np.inf).astype(dtype)
    m = None
    if attn_mask is not None:
        m = _pad_keys(additive_mask(MHA, "attn_mask", attn_mask, dtype, allowed=False), extra)
        m = m if m.ndim == 2 else m.reshape(sh.N, sh.H, sh.L, S2)
    if kpm is not None:
        km = _pad_keys(additive_mask(MHA, "key_padding_mask", kpm, dtype, allowed=False),
                       extra).reshape(sh.N, 1, 1, S2)
        m = km if m is None else m + km
    return m


def mha_backward(ctx: MhaCtx, douts: tuple) -> tuple:
    """Each forward step reversed: the out projection's pullback, the heads split again,
    :func:`attend_backward` (the weights' gradient joins dA; an average over heads sends
    each head 1/H of it), the added keys cut off (bias_k's gradient is its column summed over
    the batch), and the three in projections' pullbacks (their weight gradients stacked as
    in_proj_weight). A float mask gets dS summed over what it was broadcast over."""
    sh, (dout, dw) = ctx.shape, douts
    if not sh.batched:
        dout = dout[:, None]
        dw = None if dw is None else dw[None]
    do, dWo, dbo = ctx.out_pull(dout.reshape(-1, sh.E))
    do = do.reshape(dout.shape)
    da = None
    if dw is not None and dw.any():                             # zeros when weights unused
        da = np.broadcast_to(dw[:, None] / sh.H, ctx.core.a.shape) if sh.average else dw
    dq, dk, dv, ds = attend_backward(ctx.core, split_heads(do, sh.H), da)
    E, dt = sh.E, ds.dtype
    if ctx.zero_attn:
        dk, dv = dk[:, :, :-1], dv[:, :, :-1]
    g = [None] * 25
    g[11], g[12] = dWo, dbo
    d_in = [merge_heads(dq), None, None]
    for i, d, st in ((1, dk, ctx.static[0]), (2, dv, ctx.static[1])):
        if st:
            g[20 + i] = d.reshape(sh.N * sh.H, sh.S, sh.E // sh.H)
            continue
        d = merge_heads(d)                                      # (S', N, E)
        if ctx.bias_kv:
            g[6 + i] = d[-1:].sum(axis=1, keepdims=True)        # (1, 1, E)
            d = d[:-1]
        d_in[i] = d
    dws, dbs = [], []
    for i, (pb, d) in enumerate(zip(ctx.pulls, d_in)):
        if pb is None:                          # static_k / static_v: key, value unused
            g[i] = np.zeros(ctx.in_shapes[i], dt)
            dws.append(np.zeros((E, ctx.in_shapes[i][-1]), dt))
            dbs.append(np.zeros(E, dt) if ctx.has_bias else None)
            continue
        dx, dW, db = pb(d.reshape(-1, E))
        dx = dx.reshape(d.shape[:-1] + (dx.shape[-1],))          # (T, N, kdim)
        g[i] = dx if sh.batched else dx[:, 0]
        dws.append(dW)
        dbs.append(db)
    if ctx.packed:
        g[5] = np.concatenate(dws)
    else:
        g[18], g[19], g[20] = dws
    if ctx.has_bias:
        g[6] = np.concatenate(dbs)
    g[16], g[14] = _mask_grads(ctx, ds)
    return tuple(g)


def _mask_grads(ctx: MhaCtx, ds: Array) -> tuple:
    """dM = dS, cut to the real keys: summed over the batch and heads for a 2-D attn_mask,
    over the heads and queries for key_padding_mask."""
    sh, (am, km) = ctx.shape, ctx.masks
    S = ds.shape[-1] - ctx.extra
    dam = dkm = None
    if am is not None and not am[2]:                      # the built-in causal mask ran
        dam = np.zeros(am[1], am[0])
    elif am is not None:
        dam = ds.sum(axis=(0, 1)) if len(am[1]) == 2 else ds.reshape(am[1][0], sh.L, ds.shape[-1])
        dam = dam[..., :S].astype(am[0])
    if km is not None:
        dkm = ds.sum(axis=(1, 2))[:, :S].astype(km[0])
        dkm = dkm if sh.batched else dkm[0]
    return dam, dkm


multi_head_attention_forward = defop(mha_forward, mha_backward,
                                     name="multi_head_attention_forward")
