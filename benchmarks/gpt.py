"""A tiny character-level GPT, written forward-only in scratchnn, and its twin in torch.

    logits = head(LN_f(block_L(… block_1(drop(tok_emb[idx] + pos_emb[0..T−1])) …)))
    block(x): x ← x + Dropout₁(MHA(LN₁(x), causal)),  x ← x + Dropout₂(W₂ Dropout(gelu(W₁ LN₂(x))))

Each block is ``nn.TransformerEncoderLayer(n_embd, n_head, 4·n_embd, dropout, activation="gelu",
batch_first=True, norm_first=True)`` called with the causal mask and ``is_causal=True`` — the
pre-norm GPT-2 block. :class:`GPT` defines only ``forward``; its backward is the replay of the
layers' hand-written backwards (``scratchnn.nn.tracing``). :func:`build_torch_gpt` builds the
same network from ``torch.nn`` layers with the same state_dict keys and loads scratchnn's weights.

Dropout parity: every dropout layer (the embedding's, and per block ``dropout1``, ``dropout``,
``dropout2``) draws its step's mask from a generator replaying a recorded state
(:func:`draw_masks`); torch's twin has :class:`benchmarks.train.TorchMaskedDropout` layers in
those places and receives the masks themselves. The attention weights' own dropout
(``self_attn.dropout``, a keep-mask of shape (B, n_head, T, T) per block) is drawn the same way
and replayed through each ``MultiheadAttention``'s generator; torch draws it inside its fused
attention kernel, where no mask can be handed in, so while each torch block runs its
``scaled_dot_product_attention`` is ATen's own math kernel given that keep-mask
(``torch.ops.aten._scaled_dot_product_attention_math(..., dropout_mask=keep)``, the kernel torch
provides for exactly this kind of test).

No biases by default (``bias=False``, as in many current GPTs): the key projection's bias
b_k adds q·b_k to every score of a query, a constant that softmax removes, so its gradient is
exactly zero and what either library computes is rounding noise (~1e-9 in float32). AdamW
divides the noise by its own running RMS and turns it into steps of about ±lr, different on
the two sides: in float32 that one parameter drifts apart (0.5–1 % of its size after 30–60 steps)
while every other parameter and every loss agrees within 1e-6. In float64 the noise (~1e-17)
stays below AdamW's eps and the parity holds with biases too (``--bias``).
"""
from __future__ import annotations

import contextlib
from typing import NamedTuple

import numpy as np

import scratchnn as snn
import scratchnn.functional as F
from scratchnn import nn

from .train import TorchMaskedDropout, _replay, torch

__all__ = ["GPTConfig", "GPT", "build_scratchnn_gpt", "build_torch_gpt", "dropout_layers",
           "draw_masks", "set_scratchnn_masks", "set_torch_masks", "scratchnn_gpt_step",
           "torch_gpt_step", "make_scratchnn_adamw", "make_torch_adamw", "sample"]


class GPTConfig(NamedTuple):
    vocab_size: int
    block_size: int = 64          # the longest context
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.1
    bias: bool = False            # biases in the Linears and LayerNorms (see the module docstring)


class GPT(nn.Module):
    """The tiny GPT: token and position embeddings, ``n_layer`` pre-norm causal blocks, a final
    LayerNorm and a linear head (no bias). ``forward(idx)``: (B, T) int -> (B, T, vocab) logits.
    """

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.pos_emb = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList([
            nn.TransformerEncoderLayer(cfg.n_embd, cfg.n_head, 4 * cfg.n_embd, cfg.dropout,
                                       activation="gelu", batch_first=True, norm_first=True,
                                       bias=cfg.bias)
            for _ in range(cfg.n_layer)])
        self.ln_f = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)

    def forward(self, idx):
        t = idx.shape[1]
        mask = nn.Transformer.generate_square_subsequent_mask(t, dtype=self.head.weight.dtype)
        x = self.drop(self.tok_emb(idx) + self.pos_emb(np.arange(t)))
        for blk in self.blocks:
            x = blk(x, src_mask=mask, is_causal=True)
        return self.head(self.ln_f(x))


def build_scratchnn_gpt(cfg: GPTConfig, dtype=np.float32, seed: int = 0) -> GPT:
    """The GPT with torch's default initialisation of each layer, drawn after
    ``scratchnn.manual_seed(seed)``; parameters in ``dtype``."""
    snn.manual_seed(seed)
    return GPT(cfg).to(np.dtype(dtype))


def dropout_layers(model) -> list:
    """The dropout layers in the order :func:`draw_masks` draws for them (either side's)."""
    out = [model.drop]
    for blk in model.blocks:
        out += [blk.dropout1, blk.dropout, blk.dropout2]
    return out


@contextlib.contextmanager
def _sdpa_with_keep_mask(keep):
    """While a torch block runs: its attention's dropout applies ``keep`` (bool, (B, H, T, T))
    instead of drawing one (``keep`` None: torch's own SDPA)."""
    if keep is None:
        yield
        return
    TF = torch.nn.functional
    real = TF.scaled_dot_product_attention

    def sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, **kw):
        if dropout_p == 0:
            return real(q, k, v, attn_mask, dropout_p, is_causal, **kw)
        return torch.ops.aten._scaled_dot_product_attention_math(
            q, k, v, attn_mask, dropout_p, is_causal, keep)[0]

    TF.scaled_dot_product_attention = sdpa
    try:
        yield
    finally:
        TF.scaled_dot_product_attention = real


# -- torch -----------------------------------------------------------------------------------
if torch is not None:
    class TorchGPT(torch.nn.Module):
        """:class:`GPT` in torch.nn, dropout masks injected (TorchMaskedDropout)."""

        def __init__(self, cfg: GPTConfig):
            super().__init__()
            tnn = torch.nn
            self.tok_emb = tnn.Embedding(cfg.vocab_size, cfg.n_embd)
            self.pos_emb = tnn.Embedding(cfg.block_size, cfg.n_embd)
            self.drop = TorchMaskedDropout(cfg.dropout)
            self.blocks = tnn.ModuleList()
            for _ in range(cfg.n_layer):
                blk = tnn.TransformerEncoderLayer(cfg.n_embd, cfg.n_head, 4 * cfg.n_embd,
                                                  cfg.dropout, activation="gelu",
                                                  batch_first=True, norm_first=True,
                                                  bias=cfg.bias)
                for name in ("dropout1", "dropout", "dropout2"):
                    setattr(blk, name, TorchMaskedDropout(cfg.dropout))
                self.blocks.append(blk)
            self.ln_f = tnn.LayerNorm(cfg.n_embd, bias=cfg.bias)
            self.head = tnn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
            self.attn_keep = [None] * cfg.n_layer      # the step's attention keep-masks

        def forward(self, idx):
            t = idx.shape[1]
            mask = torch.nn.Transformer.generate_square_subsequent_mask(
                t, dtype=self.head.weight.dtype)
            x = self.drop(self.tok_emb(idx) + self.pos_emb(torch.arange(t)))
            for blk, keep in zip(self.blocks, self.attn_keep):
                with _sdpa_with_keep_mask(keep if self.training else None):
                    x = blk(x, src_mask=mask, is_causal=True)
            return self.head(self.ln_f(x))


def build_torch_gpt(model: GPT):
    """The same network in torch, with scratchnn's weights loaded (same keys and layouts)."""
    if torch is None:
        raise SystemExit("the torch side needs PyTorch: pip install 'scratchnn[bench]'")
    tdtype = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[
        model.head.weight.dtype]
    tmodel = TorchGPT(model.cfg).to(tdtype)
    tmodel.load_state_dict({k: torch.from_numpy(np.array(v))
                            for k, v in model.state_dict().items()})
    return tmodel


# -- masks -----------------------------------------------------------------------------------
class Masks(NamedTuple):
    """One step's keep-masks (1 keep, 0 drop; model dtype), one per :func:`dropout_layers`
    entry, and the generator states they were drawn from; ``attn``/``attn_states``: per block,
    the attention weights' keep-mask (bool, (B, n_head, T, T)) and its state."""
    masks: list
    states: list
    attn: list
    attn_states: list


def draw_masks(rng: np.random.Generator, cfg: GPTConfig, batch: int, t: int, dtype) -> Masks:
    """Draw the step's masks from ``rng`` with scratchnn's sampler (F.dropout_mask), recording
    the state before each draw so that scratchnn's layers can redraw exactly these."""
    shapes = [(batch, t, cfg.n_embd)]
    shapes += [(batch, t, cfg.n_embd), (batch, t, 4 * cfg.n_embd),
               (batch, t, cfg.n_embd)] * cfg.n_layer
    masks, states = [], []
    for shape in shapes:
        states.append(rng.bit_generator.state)
        masks.append(F.dropout_mask(shape, cfg.dropout, rng).astype(dtype))
    attn, attn_states = [], []
    for _ in range(cfg.n_layer):
        attn_states.append(rng.bit_generator.state)
        attn.append(F.dropout_mask((batch, cfg.n_head, t, t), cfg.dropout, rng).astype(bool))
    return Masks(masks, states, attn, attn_states)


def set_scratchnn_masks(model: GPT, masks: Masks | None) -> None:
    """Each dropout layer, and each block's attention, redraws this step's masks (None: they
    draw from the default generator)."""
    layers = dropout_layers(model) + [blk.self_attn for blk in model.blocks]
    states = masks.states + masks.attn_states if masks else [None] * len(layers)
    for layer, state in zip(layers, states):
        layer.generator = None if state is None else _replay(state)


def set_torch_masks(tmodel, masks: Masks | None) -> None:
    """The torch twin's masked dropouts and attention get this step's masks themselves."""
    for layer, m in zip(dropout_layers(tmodel), masks.masks if masks else [None] * 99):
        layer.mask = None if m is None else torch.from_numpy(m)
    tmodel.attn_keep = ([torch.from_numpy(a) for a in masks.attn] if masks
                        else [None] * len(tmodel.blocks))


# -- training steps --------------------------------------------------------------------------
def make_scratchnn_adamw(model: GPT, lr: float, weight_decay: float):
    return snn.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95),
                           weight_decay=weight_decay)


def make_torch_adamw(tmodel, model: GPT, lr: float, weight_decay: float):
    """torch's AdamW over the same parameters in scratchnn's order (matched by name)."""
    tparams = dict(tmodel.named_parameters())
    return torch.optim.AdamW([tparams[k] for k, _ in model.named_parameters()], lr=lr,
                             betas=(0.9, 0.95), weight_decay=weight_decay)


def scratchnn_gpt_step(model: GPT, opt, x: np.ndarray, y: np.ndarray, clip: float) -> float:
    """zero_grad, forward, cross-entropy (mean over B·T), replayed backward, clip_grad_norm_,
    AdamW step; returns the loss before the step."""
    model.train()
    opt.zero_grad()
    logits = model(x)                                            # (B, T, V)
    b, t, v = logits.shape
    loss, pullback = snn.vjp(F.cross_entropy, logits.reshape(b * t, v), y.reshape(-1))
    dlogits = pullback(np.ones((), logits.dtype))[0]
    model.backward(dlogits.reshape(b, t, v), input_grad=False)
    nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    return float(loss)


def torch_gpt_step(tmodel, opt, x, y, clip: float) -> float:
    tmodel.train()
    opt.zero_grad()
    logits = tmodel(x)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                             y.reshape(-1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(tmodel.parameters(), clip)
    opt.step()
    return float(loss.item())


def sample(model: GPT, prompt: np.ndarray, n: int, rng: np.random.Generator,
           temperature: float = 1.0) -> np.ndarray:
    """``n`` tokens after ``prompt`` (1-d int), each drawn from softmax(logits / temperature)
    of the last position, the context cropped to block_size; eval mode (no dropout)."""
    model.eval()
    idx = np.asarray(prompt, np.int64)
    for _ in range(n):
        logits = model(idx[None, -model.cfg.block_size:])[0, -1].astype(np.float64)
        p = np.exp((logits - logits.max()) / temperature)
        idx = np.append(idx, rng.choice(len(p), p=p / p.sum()))
    model.train()
    return idx
