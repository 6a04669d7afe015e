"""The tiny GPT trained by hand (benchmarks/train_gpt.py, benchmarks/gpt.py): step-for-step
parity with torch at a tiny size, the model's pieces, and the CLI's --json / --plot."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from benchmarks import gpt as G
from benchmarks import train_gpt as T
from scratchnn import nn

TINY = dict(n_layer=2, n_head=2, n_embd=16, block_size=12, batch_size=4, sample_chars=20,
            progress=False, log=lambda *a: None, interleave=0)


@pytest.fixture(scope="module")
def corpus():
    return T.load_corpus()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_parity_with_torch_at_a_tiny_size(corpus, dtype):
    """50 steps with dropout 0.1, the same weights, batches and masks: every step's loss and
    every parameter after them within the target (1e-9 float64, 1e-4 float32)."""
    res = T.train(50, dtype, compare_torch=True, seed=1, corpus=corpus, **TINY)
    tol = T.TOLERANCE[dtype]
    a, b = np.array(res["loss_scratchnn"]), np.array(res["loss_torch"])
    assert len(a) == len(b) == res["steps"] == 50
    np.testing.assert_allclose(a, b, rtol=tol, atol=0)
    assert res["params_max_rel_diff"] <= tol and res["parity_met"]
    assert res["test_loss_scratchnn"] == pytest.approx(res["test_loss_torch"], rel=tol)
    assert a[-10:].mean() < a[:10].mean()                       # it is learning
    assert res["sample"].startswith("def ") and len(res["sample"]) == 24


def test_biases_in_float64_and_the_parity_check_can_fail(corpus, monkeypatch):
    """With biases (the key bias has a rounding-noise gradient) float64 still meets 1e-9;
    a gradient off by 1e-3 on one side is reported as a miss."""
    res = T.train(8, "float64", compare_torch=True, seed=2, bias=True, corpus=corpus, **TINY)
    assert res["parity_met"]
    clip = nn.utils.clip_grad_norm_

    def off(parameters, max_norm):                   # one gradient off by 1e-3 on one side
        parameters = list(parameters)
        total = clip(parameters, max_norm)
        parameters[-1].grad += 1e-3
        return total

    monkeypatch.setattr(nn.utils, "clip_grad_norm_", off)
    res = T.train(8, "float64", compare_torch=True, seed=2, corpus=corpus, **TINY)
    assert not res["parity_met"] and res["params_max_rel_diff"] > 1e-9


def test_model_pieces(corpus):
    cfg = G.GPTConfig(len(corpus.chars), block_size=8, n_layer=1, n_head=2, n_embd=8)
    model = G.build_scratchnn_gpt(cfg, np.float64, seed=0)
    tmodel = G.build_torch_gpt(model)
    assert list(model.state_dict()) == list(tmodel.state_dict())
    assert "blocks.0.self_attn.in_proj_weight" in model.state_dict()
    assert [n for n, _ in model.named_parameters()] == [n for n, _ in tmodel.named_parameters()]
    x = corpus.train[None, :8]
    model.eval(), tmodel.eval()
    with torch.no_grad():
        np.testing.assert_allclose(model(x), tmodel(torch.from_numpy(x)).numpy(), rtol=1e-9,
                                   atol=1e-12)
    # causal: the logits at position t do not depend on the characters after t
    y = x.copy()
    y[0, 5:] = (y[0, 5:] + 1) % cfg.vocab_size
    np.testing.assert_allclose(model(x)[0, :5], model(y)[0, :5], rtol=0, atol=1e-12)
    assert corpus.decode(corpus.encode("def f(x):")) == "def f(x):"
    assert T.load_corpus().text == corpus.text                      # deterministic
    masks = G.draw_masks(np.random.default_rng(0), cfg, 2, 8, np.float32)
    assert [m.shape for m in masks.masks] == [(2, 8, 8), (2, 8, 8), (2, 8, 32), (2, 8, 8)]
    assert len(G.dropout_layers(model)) == len(masks.masks) == len(G.dropout_layers(tmodel))
    assert [m.shape for m in masks.attn] == [(2, 2, 8, 8)] and masks.attn[0].dtype == bool


def test_attention_dropout_masks_reach_both_sides(corpus):
    """One training forward: with the step's masks the two sides agree, and the attention
    keep-mask matters (all-kept attention gives other logits) — it is not silently off."""
    cfg = G.GPTConfig(len(corpus.chars), block_size=8, n_layer=1, n_head=2, n_embd=8,
                      dropout=0.5)
    model = G.build_scratchnn_gpt(cfg, np.float64, seed=0)
    tmodel = G.build_torch_gpt(model)
    x = corpus.train[None, :8].repeat(2, 0)
    masks = G.draw_masks(np.random.default_rng(3), cfg, 2, 8, np.float64)
    G.set_scratchnn_masks(model, masks)
    G.set_torch_masks(tmodel, masks)
    ours = model(x)
    with torch.no_grad():
        theirs = tmodel(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)
    tmodel.attn_keep = [torch.ones_like(k) for k in tmodel.attn_keep]
    with torch.no_grad():
        assert not np.allclose(tmodel(torch.from_numpy(x)).numpy(), theirs)


def test_cli_json_keys_and_plot(tmp_path):
    out, png = tmp_path / "gpt.json", tmp_path / "gpt.png"
    T.main(["--steps", "3", "--compare-torch", "--dtype", "float64", "--n-layer", "1",
            "--n-head", "2", "--n-embd", "8", "--block-size", "8", "--batch-size", "2",
            "--sample", "5", "--interleave", "2", "--json", str(out), "--plot", str(png),
            "--no-progress"])
    res = json.loads(out.read_text())
    for key in ("model", "dataset", "steps", "loss_scratchnn", "loss_torch",
                "seconds_scratchnn", "seconds_torch", "time_ratio", "max_rel_loss_diff",
                "max_rel_loss_diff_step", "test_loss_scratchnn", "test_loss_torch",
                "test_accuracy_scratchnn", "test_accuracy_torch", "params_max_rel_diff",
                "parity_met", "parity_tolerance", "threads", "config", "sample",
                "torch_version", "numpy_version"):
        assert key in res, key
    assert len(res["loss_scratchnn"]) == len(res["loss_torch"]) == 3 and res["parity_met"]
    assert png.stat().st_size > 1000
    for bad in (["--steps", "0"], ["--n-embd", "10", "--n-head", "4"], ["--dropout", "1"]):
        with pytest.raises(SystemExit):
            T.main(bad + ["--no-progress"])
