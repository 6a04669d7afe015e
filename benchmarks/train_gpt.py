"""A tiny GPT trained by hand in scratchnn and — step for step — in torch.

    python -m benchmarks.train_gpt [--steps N] [--compare-torch] [--dtype float32|float64]
                                   [--json PATH] [--plot PATH] [--seed S]
                                   [--n-layer 2] [--n-head 4] [--n-embd 128] [--block-size 64]
                                   [--batch-size 16] [--lr 1e-3] [--dropout 0.1] [--clip 1.0]
                                   [--weight-decay 0.1] [--bias]
                                   [--threads N] [--interleave N] [--sample N] [--profile N]

The model (:mod:`benchmarks.gpt`): character embeddings plus position embeddings, ``n_layer``
pre-norm causal blocks (``nn.TransformerEncoderLayer`` with GELU, ``norm_first=True``), a final
LayerNorm and a linear head; cross-entropy over every position; AdamW (betas 0.9, 0.95,
weight decay 0.1) with ``clip_grad_norm_(…, 1.0)`` before each step.

The corpus is the source text of a fixed list of Python standard-library modules read from the
running interpreter (:data:`CORPUS_MODULES`; nothing downloaded), characters outside ASCII
replaced by ``?``; 90 % trains, the last 10 % is held out. A batch is ``batch_size`` windows at
random offsets (``numpy.random.default_rng([seed, 2])``), targets shifted by one character.

``--compare-torch``: the same network in torch starts from scratchnn's initial weights
(``load_state_dict``), sees the same batches and the same dropout masks (drawn once per step,
handed to torch's masked-dropout layers, replayed by scratchnn's through their ``generator``),
and the two sides take turns every ``--interleave`` steps as in :mod:`benchmarks.train`. At the
end it prints whether the targets are met: every step's loss within 1e-9 relative of torch's
in float64 (1e-4 in float32) and every parameter within the same tolerance of torch's
(max |a − b| ≤ tol · max |b| per parameter).

``--json PATH`` writes the ConvNet trainer's keys (``loss_scratchnn``/``loss_torch`` per step,
``seconds_scratchnn``/``seconds_torch``, ``time_ratio``, ``max_rel_loss_diff``,
``test_loss_*`` and ``test_accuracy_*`` — the held-out next-character loss and accuracy),
plus ``params_max_rel_diff``, ``parity_met``, the configuration and the sampled text.
``--plot PATH``: both loss curves and their per-step relative difference. ``--profile N``
times N extra scratchnn steps with a timer on every layer kind and prints where the time goes.
"""
from __future__ import annotations

import argparse
import functools
import importlib.util
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from scratchnn import nn

from . import gpt as G
from .train import (INTERLEAVE, SETTLE, _PREPARED, _Threads, _progress, _timed_steps,
                    add_run_args, check_counts, torch, write_outputs)

__all__ = ["CORPUS_MODULES", "load_corpus", "Corpus", "batches", "train", "profile_step",
           "main"]

CORPUS_MODULES = ("textwrap", "string", "functools", "bisect", "heapq", "fractions",
                  "colorsys", "shlex", "fnmatch", "glob", "calendar", "difflib")
TOLERANCE = {"float64": 1e-9, "float32": 1e-4}


class Corpus:
    """The text, its sorted character vocabulary and the train / held-out token arrays."""

    def __init__(self, text: str):
        self.text = text
        self.chars = sorted(set(text))
        self.stoi = {c: i for i, c in enumerate(self.chars)}
        data = np.array([self.stoi[c] for c in text], np.int64)
        n = int(0.9 * len(data))
        self.train, self.val = data[:n], data[n:]

    def encode(self, s: str) -> np.ndarray:
        return np.array([self.stoi.get(c, self.stoi.get("?", 0)) for c in s], np.int64)

    def decode(self, idx: Any) -> str:
        return "".join(self.chars[int(i)] for i in idx)


def load_corpus(modules: tuple[str, ...] = CORPUS_MODULES) -> Corpus:
    """The source files of ``modules`` as found by this interpreter, concatenated in order."""
    parts = []
    for name in modules:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            raise SystemExit(f"corpus: the standard-library module {name!r} has no source here")
        parts.append(Path(spec.origin).read_text(encoding="utf-8"))
    text = "\n".join(parts)
    return Corpus("".join(c if ord(c) < 128 else "?" for c in text))


def batches(data: np.ndarray, n: int, batch_size: int, block_size: int,
            rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` batches (x, y), each (batch_size, block_size) int64; y is x shifted by one."""
    out = []
    for _ in range(n):
        ix = rng.integers(0, len(data) - block_size - 1, batch_size)
        x = np.stack([data[i:i + block_size] for i in ix])
        y = np.stack([data[i + 1:i + block_size + 1] for i in ix])
        out.append((x, y))
    return out


def _evaluate(forward: Callable, held_out: list) -> tuple[float, float]:
    """(mean next-character cross-entropy, accuracy in percent) over the held-out batches."""
    total, correct, count = 0.0, 0, 0
    for x, y in held_out:
        logits = np.asarray(forward(x), np.float64)                 # (B, T, V)
        z = logits - logits.max(axis=-1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
        total += float(-np.take_along_axis(logp, y[..., None], -1).sum())
        correct += int((logits.argmax(-1) == y).sum())
        count += y.size
    return total / count, 100.0 * correct / count


def _torch_forward(tmodel) -> Callable:
    def forward(x):
        tmodel.eval()
        with torch.no_grad():
            out = tmodel(torch.from_numpy(x)).numpy()
        tmodel.train()
        return out
    return forward


def _scratchnn_forward(model) -> Callable:
    def forward(x):
        model.eval()
        out = model(x)
        model.train()
        return out
    return forward


def params_max_rel_diff(model, tmodel) -> float:
    """max over parameters of max |a − b| / max |b| (torch's value b)."""
    tsd = tmodel.state_dict()
    worst = 0.0
    for k, a in model.state_dict().items():
        b = tsd[k].detach().numpy().astype(np.float64)
        worst = max(worst, float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30)))
    return worst


def train(steps: int = 200, dtype="float32", compare_torch: bool = False, seed: int = 0,
          n_layer: int = 2, n_head: int = 4, n_embd: int = 128, block_size: int = 64,
          batch_size: int = 16, lr: float = 1e-3, dropout: float = 0.1, clip: float = 1.0,
          weight_decay: float = 0.1, bias: bool = False, threads: int | None = None,
          interleave: int = INTERLEAVE,
          sample_chars: int = 300, eval_batches: int = 8, progress: bool = True, log=print,
          corpus: Corpus | None = None) -> dict:
    """Train (and optionally compare); returns the dict ``--json`` writes."""
    dtype = np.dtype(dtype)
    corpus = corpus or load_corpus()
    cfg = G.GPTConfig(len(corpus.chars), block_size, n_layer, n_head, n_embd, dropout, bias)
    data_rng, mask_rng = np.random.default_rng([seed, 2]), np.random.default_rng([seed, 1])
    train_batches = [(x, y, G.draw_masks(mask_rng, cfg, batch_size, block_size, dtype))
                     for x, y in batches(corpus.train, steps, batch_size, block_size, data_rng)]
    held_out = batches(corpus.val, eval_batches, batch_size, block_size,
                       np.random.default_rng([seed, 3]))
    res: dict[str, Any] = {
        "model": "gpt", "dataset": "python-stdlib-source", "corpus_modules": list(CORPUS_MODULES),
        "corpus_chars": len(corpus.text), "vocab_size": cfg.vocab_size, "epochs": None,
        "steps": steps, "dtype": dtype.name, "seed": seed, "batch_size": batch_size, "lr": lr,
        "config": cfg._asdict(), "clip": clip, "weight_decay": weight_decay,
        "interleave": interleave if compare_torch else None,
        "loss_scratchnn": [], "loss_torch": [] if compare_torch else None,
        "seconds_scratchnn": 0.0, "seconds_torch": 0.0 if compare_torch else None,
    }
    with _Threads(threads, compare_torch) as n_threads:
        res["threads"] = n_threads
        model = G.build_scratchnn_gpt(cfg, dtype, seed)
        opt = G.make_scratchnn_adamw(model, lr, weight_decay)
        res["parameters"] = int(sum(p.size for p in model.parameters()))
        if compare_torch:
            tmodel = G.build_torch_gpt(model)
            topt = G.make_torch_adamw(tmodel, model, lr, weight_decay)
        log(f"GPT {n_layer}×(d {n_embd}, {n_head} heads), context {block_size}, vocab "
            f"{cfg.vocab_size}, {res['parameters']} parameters; {len(corpus.text)} characters of "
            f"stdlib source; {dtype.name}, batch {batch_size}, AdamW(lr={lr}), clip {clip}, "
            f"dropout {dropout}, {steps} steps, {n_threads} thread(s)"
            + (", compared with torch step for step" if compare_torch else ""))
        bar = _progress(steps * (2 if compare_torch else 1), "gpt", progress)

        def prepare_scratchnn(masks):
            G.set_scratchnn_masks(model, masks)
            return _PREPARED

        def prepare_torch(masks):
            G.set_torch_masks(tmodel, masks)
            return _PREPARED

        turn = interleave if compare_torch and interleave > 0 else max(steps, 1)
        for i in range(0, steps, turn):
            chunk = train_batches[i:i + turn]
            losses, seconds = _timed_steps(
                lambda x, y, m: G.scratchnn_gpt_step(model, opt, x, y, clip), chunk, bar,
                "scratchnn", prepare_scratchnn)
            res["loss_scratchnn"] += losses
            res["seconds_scratchnn"] += seconds
            if compare_torch:
                time.sleep(SETTLE)
                losses, seconds = _timed_steps(
                    lambda x, y, m: G.torch_gpt_step(tmodel, topt, torch.from_numpy(x),
                                                     torch.from_numpy(y), clip),
                    chunk, bar, "torch", prepare_torch)
                res["loss_torch"] += losses
                res["seconds_torch"] += seconds
                time.sleep(SETTLE)
        bar.close()
        G.set_scratchnn_masks(model, None)
        res["test_loss_scratchnn"], res["test_accuracy_scratchnn"] = _evaluate(
            _scratchnn_forward(model), held_out)
        if compare_torch:
            res["test_loss_torch"], res["test_accuracy_torch"] = _evaluate(
                _torch_forward(tmodel), held_out)
            a, b = np.asarray(res["loss_scratchnn"]), np.asarray(res["loss_torch"])
            rel = np.abs(a - b) / np.maximum(np.abs(b), np.finfo(np.float64).tiny)
            tol = TOLERANCE[dtype.name]
            res["max_rel_loss_diff"] = float(rel.max()) if rel.size else 0.0
            res["max_rel_loss_diff_step"] = int(rel.argmax()) if rel.size else None
            res["params_max_rel_diff"] = params_max_rel_diff(model, tmodel)
            res["parity_tolerance"] = tol
            res["parity_met"] = bool(res["max_rel_loss_diff"] <= tol
                                     and res["params_max_rel_diff"] <= tol)
            res["time_ratio"] = res["seconds_scratchnn"] / max(res["seconds_torch"], 1e-12)
            res["torch_version"] = torch.__version__
        else:
            res["test_loss_torch"] = res["test_accuracy_torch"] = None
        if sample_chars:
            prompt = corpus.encode("def ")
            out = G.sample(model, prompt, sample_chars, np.random.default_rng([seed, 4]))
            res["sample"] = corpus.decode(out)
    res["numpy_version"] = np.__version__
    res["python"] = platform.python_version()
    res["machine"] = platform.machine()
    res["cpu_count"] = os.cpu_count()
    return res


def summary(res: dict) -> str:
    n = res["steps"]
    first, last = (res["loss_scratchnn"][0], res["loss_scratchnn"][-1]) if n else (None, None)
    s = (f"scratchnn: {n} steps in {res['seconds_scratchnn']:.2f} s, loss {first:.4f} -> "
         f"{last:.4f}, held-out loss {res['test_loss_scratchnn']:.4f}, next-character "
         f"accuracy {res['test_accuracy_scratchnn']:.2f} %")
    if res.get("loss_torch") is not None:
        s += (f"\ntorch:     {n} steps in {res['seconds_torch']:.2f} s, held-out loss "
              f"{res['test_loss_torch']:.4f}, accuracy {res['test_accuracy_torch']:.2f} %"
              f"\nlargest per-step relative loss difference {res['max_rel_loss_diff']:.3g} "
              f"(step {res['max_rel_loss_diff_step']}); largest parameter difference "
              f"{res['params_max_rel_diff']:.3g}; target {res['parity_tolerance']:g}: "
              f"{'met' if res['parity_met'] else 'NOT met'}"
              f"\ntime ratio scratchnn/torch {res['time_ratio']:.2f}× at {res['threads']} "
              f"thread(s)")
    return s


# -- where the time goes -------------------------------------------------------------------
class _LayerTimer:
    """Exclusive wall time per layer kind: a kind's forward/backward minus the time of the
    layers it calls (MultiheadAttention's out_proj counts as Linear)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.stack: list[float] = []

    def wrap(self, kind: str, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            self.stack.append(0.0)
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                dt = time.perf_counter() - t0
                child = self.stack.pop()
                self.seconds[kind] = self.seconds.get(kind, 0.0) + dt - child
                if self.stack:
                    self.stack[-1] += dt
        return timed


def profile_step(model, opt, step_batches: list, clip: float) -> dict[str, float]:
    """Seconds per step by layer kind (forward + backward; the median over the steps), the
    optimizer, clipping and the rest (the replay's bookkeeping, the tensor ops between
    layers, GELU, the loss)."""
    timer = _LayerTimer()
    kinds = {nn.Linear: "Linear", nn.LayerNorm: "LayerNorm", nn.Embedding: "Embedding",
             nn.Dropout: "Dropout", nn.MultiheadAttention: "MultiheadAttention"}
    saved = []
    for cls, kind in kinds.items():
        for meth in ("forward", "backward"):
            saved.append((cls, meth, cls.__dict__.get(meth)))
            setattr(cls, meth, timer.wrap(kind, getattr(cls, meth)))
    step_fn, clip_fn = opt.step, nn.utils.clip_grad_norm_
    opt.step = timer.wrap("AdamW step", step_fn)
    nn.utils.clip_grad_norm_ = timer.wrap("clip_grad_norm_", clip_fn)
    rows = []
    try:
        for x, y, masks in step_batches:
            G.set_scratchnn_masks(model, masks)
            timer.seconds = {}
            t0 = time.perf_counter()
            G.scratchnn_gpt_step(model, opt, x, y, clip)
            row = dict(timer.seconds)
            row["total"] = time.perf_counter() - t0
            row["rest (replay, tensor ops, GELU, loss)"] = row["total"] - sum(
                v for k, v in timer.seconds.items())
            rows.append(row)
    finally:
        for cls, meth, orig in saved:
            if orig is None:
                delattr(cls, meth)
            else:
                setattr(cls, meth, orig)
        del opt.step
        nn.utils.clip_grad_norm_ = clip_fn
    return {k: float(np.median([r.get(k, 0.0) for r in rows])) for k in rows[0]}


def time_steps(model, opt, tmodel, topt, step_batches: list, clip: float, turn: int = 5
               ) -> tuple[list[float], list[float]]:
    """Per-step seconds of both sides, taking turns every ``turn`` steps with a pause at each
    switch (as the trainer does); the same batches and masks on both."""
    ts, tt = [], []
    for i in range(0, len(step_batches), turn):
        for x, y, masks in step_batches[i:i + turn]:
            G.set_scratchnn_masks(model, masks)
            t0 = time.perf_counter()
            G.scratchnn_gpt_step(model, opt, x, y, clip)
            ts.append(time.perf_counter() - t0)
        time.sleep(SETTLE)
        for x, y, masks in step_batches[i:i + turn]:
            G.set_torch_masks(tmodel, masks)
            t0 = time.perf_counter()
            G.torch_gpt_step(tmodel, topt, torch.from_numpy(x), torch.from_numpy(y), clip)
            tt.append(time.perf_counter() - t0)
        time.sleep(SETTLE)
    return ts, tt


def _profile(args, res: dict, log=print) -> None:
    """``--profile N``: N steps by layer kind, then N steps of each side taking turns."""
    corpus = load_corpus()
    cfg = G.GPTConfig(len(corpus.chars), args.block_size, args.n_layer, args.n_head,
                      args.n_embd, args.dropout, args.bias)
    dtype = np.dtype(args.dtype)
    rng, mrng = np.random.default_rng([args.seed, 5]), np.random.default_rng([args.seed, 6])
    bs = [(x, y, G.draw_masks(mrng, cfg, args.batch_size, args.block_size, dtype))
          for x, y in batches(corpus.train, args.profile + 3, args.batch_size, args.block_size,
                              rng)]
    with _Threads(args.threads, torch is not None) as n_threads:
        model = G.build_scratchnn_gpt(cfg, dtype, args.seed)
        opt = G.make_scratchnn_adamw(model, args.lr, args.weight_decay)
        for x, y, m in bs[:3]:                                   # warm-up
            G.set_scratchnn_masks(model, m)
            G.scratchnn_gpt_step(model, opt, x, y, args.clip)
        prof = profile_step(model, opt, bs[3:], args.clip)
        if torch is not None:
            tmodel = G.build_torch_gpt(model)
            topt = G.make_torch_adamw(tmodel, model, args.lr, args.weight_decay)
            time_steps(model, opt, tmodel, topt, bs[:3], args.clip)      # warm-up, both
            ts, tt = time_steps(model, opt, tmodel, topt, bs[3:], args.clip)
            res["step_seconds_scratchnn"], res["step_seconds_torch"] = ts, tt
            res["step_time_ratio"] = float(np.median(ts) / np.median(tt))
    res["profile_seconds_per_step"] = prof
    log(f"where a scratchnn step's time goes (median of {args.profile} steps, {dtype.name}, "
        f"{n_threads} thread(s)):")
    for k, v in sorted(prof.items(), key=lambda kv: -kv[1]):
        if k != "total":
            log(f"  {k:40s} {1e3 * v:8.2f} ms  {100 * v / prof['total']:5.1f} %")
    log(f"  {'total':40s} {1e3 * prof['total']:8.2f} ms")
    if "step_time_ratio" in res:
        log(f"one training step, taking turns: scratchnn {1e3 * np.median(ts):.1f} ms, torch "
            f"{1e3 * np.median(tt):.1f} ms (medians of {len(ts)}): "
            f"{res['step_time_ratio']:.2f}×")


def plot(res: dict, path: str | os.PathLike) -> None:
    """PNG: per-step training loss of both sides and (with torch) their relative difference."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    both = res.get("loss_torch") is not None
    fig, axes = plt.subplots(1, 2 if both else 1, figsize=(11 if both else 6, 4), squeeze=False)
    steps = np.arange(1, len(res["loss_scratchnn"]) + 1)
    ax = axes[0, 0]
    ax.plot(steps, res["loss_scratchnn"], "-", label="scratchnn", lw=1.2)
    if both:
        ax.plot(steps, res["loss_torch"], "--", label="torch", lw=1.2)
    ax.set(xlabel="step", ylabel="training cross-entropy",
           title=f"tiny GPT, {res['dtype']}, batch {res['batch_size']}")
    ax.legend()
    if both:
        a, b = np.asarray(res["loss_scratchnn"]), np.asarray(res["loss_torch"])
        rel = np.abs(a - b) / np.abs(b)
        nz = rel > 0
        axes[0, 1].semilogy(steps[nz], rel[nz], ".", ms=3)
        axes[0, 1].set(xlabel="step", ylabel="|loss − loss_torch| / loss_torch",
                       title=f"relative loss difference: max {res['max_rel_loss_diff']:.2g}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.train_gpt",
                                 description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=200)
    add_run_args(ap, "a PNG of the loss curves", "all the steps each")
    ap.add_argument("--n-layer", type=int, default=2)
    ap.add_argument("--n-head", type=int, default=4)
    ap.add_argument("--n-embd", type=int, default=128)
    ap.add_argument("--block-size", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--clip", type=float, default=1.0, help="clip_grad_norm_'s max_norm")
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--bias", action="store_true",
                    help="biases in the Linears and LayerNorms (see benchmarks/gpt.py)")
    ap.add_argument("--sample", type=int, default=300, metavar="N",
                    help="characters to sample after training (0: none)")
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="also time N scratchnn steps by layer kind")
    args = ap.parse_args(argv)
    check_counts(ap, args, ("steps", "n_layer", "n_head", "n_embd", "block_size", "batch_size",
                            "threads"), ("seed", "interleave", "sample", "profile"))
    if args.n_embd % args.n_head:
        ap.error(f"--n-embd ({args.n_embd}) must be divisible by --n-head ({args.n_head})")
    if not 0.0 <= args.dropout < 1.0:
        ap.error(f"--dropout must be in [0, 1), got {args.dropout}")
    res = train(args.steps, args.dtype, args.compare_torch, args.seed, args.n_layer,
                args.n_head, args.n_embd, args.block_size, args.batch_size, args.lr,
                args.dropout, args.clip, args.weight_decay, args.bias, args.threads,
                args.interleave,
                args.sample, progress=not args.no_progress)
    print(summary(res))
    if res.get("sample"):
        print("---- sampled from the trained model ----\n" + res["sample"] + "\n----")
    if args.profile:
        _profile(args, res)
    write_outputs(res, args.json, args.plot, plot)
    return res


if __name__ == "__main__":
    main()
    sys.exit(0)
