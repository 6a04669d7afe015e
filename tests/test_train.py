"""The chapter's ConvNet trained by hand (benchmarks/train.py): step-for-step parity with torch
on a slice of the digits, the pieces it exposes, and the CLI's --json / --plot."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from benchmarks import train as T
from scratchnn import nn
from scratchnn.data import DataLoader, load_digits

QUIET = dict(progress=False, log=lambda *a: None)


@pytest.fixture(scope="module")
def digits64():
    return load_digits(dtype=np.float64)


@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-9), ("float32", 1e-4)])
def test_parity_with_torch_on_digits_slice(dtype, rtol):
    """20 steps, same weights/batches/masks: every step's loss within rtol of torch's, and the
    test loss/accuracy after them too."""
    res = T.train("digits", epochs=1, dtype=dtype, compare_torch=True, seed=0, limit=20, **QUIET)
    a, b = np.array(res["loss_scratchnn"]), np.array(res["loss_torch"])
    assert res["steps"] == len(a) == len(b) == 20
    np.testing.assert_allclose(a, b, rtol=rtol, atol=0)
    assert res["max_rel_loss_diff"] < rtol
    assert a[-5:].mean() < a[:5].mean()                              # it is learning
    assert res["test_loss_scratchnn"][0] == pytest.approx(res["test_loss_torch"][0], rel=rtol)
    assert abs(res["accuracy_diff_points"]) <= (0 if dtype == "float64" else 100 / 297)


def test_interleaved_turns_give_the_same_run(monkeypatch):
    """Taking turns every 3 steps (the timing protocol) changes nothing but the clock: the same
    losses on both sides, step for step, as one whole epoch per side; a negative turn length is
    refused."""
    monkeypatch.setattr(T, "SETTLE", 0.0)
    runs = [T.train("digits", dtype="float64", compare_torch=True, seed=1, limit=7,
                    interleave=k, **QUIET) for k in (3, 0)]
    assert runs[0]["interleave"] == 3 and runs[1]["interleave"] == 0
    for side in ("loss_scratchnn", "loss_torch"):
        assert len(runs[0][side]) == 7
        np.testing.assert_array_equal(runs[0][side], runs[1][side])
    with pytest.raises(SystemExit):
        T.main(["--interleave", "-1", "--no-progress"])


def test_weights_transfer_and_eval_forward_agree(digits64):
    model = T.build_scratchnn_convnet(np.float64, seed=3, in_hw=(8, 8))
    tmodel = T.build_torch_convnet(model)
    assert set(model.state_dict()) == set(tmodel.state_dict()) == {
        f"{i}.{k}" for i in (0, 2, 7, 10) for k in ("weight", "bias")}
    assert tmodel[7].in_features == 128 and next(tmodel.parameters()).dtype == torch.float64
    x = digits64.x_test[:50]
    model.eval(), tmodel.eval()
    with torch.no_grad():
        want = tmodel(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model(x), want, rtol=1e-12, atol=1e-12)
    other = T.build_scratchnn_convnet(np.float64, seed=4, in_hw=(8, 8))
    assert not np.array_equal(other.state_dict()["0.weight"], model.state_dict()["0.weight"])
    same = T.build_scratchnn_convnet(np.float64, seed=3, in_hw=(8, 8))
    np.testing.assert_array_equal(same.state_dict()["10.bias"], model.state_dict()["10.bias"])


def test_masks_are_injected_on_both_sides(digits64):
    """Same masks -> same loss; different masks -> a different loss (so parity is not trivially
    true). The channel mask is whole channels (Dropout2d on 4-D maps)."""
    rng = np.random.default_rng(0)
    m1, m2 = T.draw_masks(rng, 32, np.float64), T.draw_masks(rng, 32, np.float64)
    assert m1.channel.shape == (32, 32, 1, 1) and m1.hidden.shape == (32, 64)
    assert set(np.unique(m1.channel)) == {0.0, 1.0}
    big = T.draw_masks(np.random.default_rng(1), 4000, np.float64)
    assert abs(1 - big.channel.mean() - T.P_DROPOUT2D) < 0.01     # ≈ 128 000 draws
    assert abs(1 - big.hidden.mean() - T.P_DROPOUT) < 0.01
    # scratchnn's own dropout layers, given the replay generators, draw exactly these masks
    model = T.build_scratchnn_convnet(np.float64, seed=0, in_hw=(8, 8))
    T._set_scratchnn_masks(model, m1)
    ones = np.ones((32, 32, 2, 2))
    np.testing.assert_array_equal(model[T.DROP2D_INDEX](ones),
                                  np.broadcast_to(m1.channel / (1 - T.P_DROPOUT2D), ones.shape))
    np.testing.assert_array_equal(model[T.DROP_INDEX](np.ones((32, 64))),
                                  m1.hidden / (1 - T.P_DROPOUT))
    x, y = digits64.x_train[:32], digits64.y_train[:32]
    losses = {}
    for name, (ms, mt) in {"same": (m1, m1), "differ": (m1, m2)}.items():
        model = T.build_scratchnn_convnet(np.float64, seed=0, in_hw=(8, 8))
        tmodel = T.build_torch_convnet(model)
        opt, topt = T.make_scratchnn_optimizer(model), T.make_torch_optimizer(tmodel)
        ls = T.scratchnn_train_step(model, opt, x, y, ms)
        lt = T.torch_train_step(tmodel, topt, torch.from_numpy(x), torch.from_numpy(y), mt)
        losses[name] = (ls, lt)
    assert losses["same"][0] == pytest.approx(losses["same"][1], rel=1e-12)
    assert abs(losses["differ"][0] - losses["differ"][1]) > 1e-6


def test_training_is_reproducible_and_seed_dependent():
    run = lambda seed: T.train("digits", dtype="float64", seed=seed, limit=4, **QUIET)
    a, b, c = run(1), run(1), run(2)
    assert a["loss_scratchnn"] == b["loss_scratchnn"]
    assert a["loss_scratchnn"] != c["loss_scratchnn"]


def test_train_follows_the_documented_protocol():
    """Step 1 of train() is: the first batch of DataLoader(shuffle, seed), masks from
    default_rng([seed, 1]), a model from build_scratchnn_convnet(dtype, seed)."""
    res = T.train("digits", dtype="float64", seed=5, limit=1, **QUIET)
    ds = load_digits(dtype=np.float64)
    x, y = next(iter(DataLoader(ds.x_train, ds.y_train, batch_size=32, shuffle=True, seed=5)))
    model = T.build_scratchnn_convnet(np.float64, seed=5, in_hw=(8, 8))
    masks = T.draw_masks(np.random.default_rng([5, 1]), 32, np.float64)
    loss = T.scratchnn_train_step(model, T.make_scratchnn_optimizer(model), x, y, masks)
    assert res["loss_scratchnn"] == [loss]


def test_cli_writes_json_and_plot(tmp_path, capsys):
    j, p = tmp_path / "r.json", tmp_path / "r.png"
    T.main(["--data", "digits", "--epochs", "2", "--limit", "3", "--compare-torch",
            "--dtype", "float64", "--json", str(j), "--plot", str(p), "--no-progress"])
    out = capsys.readouterr().out
    assert "epoch 2: scratchnn test loss" in out and "largest per-step relative" in out
    r = json.loads(j.read_text())
    for k in ("dataset", "epochs", "steps", "loss_scratchnn", "loss_torch",
              "test_accuracy_scratchnn", "test_accuracy_torch", "seconds_scratchnn",
              "seconds_torch"):
        assert k in r, k
    assert (r["dataset"], r["epochs"], r["steps"]) == ("digits", 2, 6)
    assert len(r["loss_scratchnn"]) == len(r["loss_torch"]) == 6
    assert len(r["test_accuracy_scratchnn_per_epoch"]) == 2
    assert r["seconds_scratchnn"] > 0 and r["seconds_torch"] > 0
    assert 0 <= r["test_accuracy_scratchnn"] <= 100
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000


def test_cli_without_torch_side_and_bad_arguments(tmp_path, capsys):
    j = tmp_path / "s.json"
    T.main(["--limit", "2", "--json", str(j), "--no-progress"])
    r = json.loads(j.read_text())
    assert r["loss_torch"] is None and r["seconds_torch"] is None and r["steps"] == 2
    with pytest.raises(SystemExit, match="--data.*nowhere"):
        T.main(["--data", str(tmp_path / "nowhere"), "--no-progress"])
    with pytest.raises(SystemExit):
        T.main(["--epochs", "0"])
    assert "--epochs must be >= 1" in capsys.readouterr().err


def test_cli_on_an_mnist_format_directory(tmp_path):
    """--data DIR: any MNIST-format directory (here 10×10 images written as IDX files)."""
    from scratchnn.data import write_idx
    rng = np.random.default_rng(0)
    for split, n in (("train", 70), ("t10k", 20)):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz",
                  rng.integers(0, 256, (n, 10, 10), dtype=np.uint8))
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte", rng.integers(0, 10, n, np.uint8))
    res = T.main(["--data", str(tmp_path), "--compare-torch", "--dtype", "float64",
                  "--batch-size", "16", "--no-progress"])
    assert res["image_hw"] == [10, 10] and res["steps"] == 5            # ⌈70 / 16⌉
    assert res["test_size"] == 20 and res["max_rel_loss_diff"] < 1e-9


def test_threads_pin_every_pool_and_restore():
    import scratchnn.functional.conv as conv
    from threadpoolctl import threadpool_info
    before = (torch.get_num_threads(), conv._THREADS)
    with T._Threads(1, torch_needed=True) as n:
        assert n == 1 and torch.get_num_threads() == 1 and conv._THREADS == 1
        assert all(d["num_threads"] == 1 for d in threadpool_info() if d["user_api"] == "blas")
    assert (torch.get_num_threads(), conv._THREADS) == before


# -- the ConvNet with BatchNorm2d (--model convnet-bn) -------------------------------------------
@pytest.mark.parametrize("route", ["default", "row blocks, 2 threads"])
def test_convnet_bn_parity_with_torch_running_stats_and_eval(digits64, route, monkeypatch):
    """float64, 12 steps: every loss within 1e-9 of torch's, the running statistics too, and the
    eval-mode test loss (normalised by the running statistics) equal — on digits-size maps
    batch_norm takes its whole-array route; forced, its sample-block route too."""
    import scratchnn.functional.normalization as FN
    for key, value in (FN.ROUTES[route] if route != "default" else {}).items():
        path, attr = key.rsplit(".", 1) if "." in key else (FN.__name__, key)
        monkeypatch.setattr(__import__("importlib").import_module(path), attr, value)
    res = T.train("digits", dtype="float64", compare_torch=True, seed=0, limit=12,
                  model="convnet-bn", **QUIET)
    a, b = np.array(res["loss_scratchnn"]), np.array(res["loss_torch"])
    assert res["model"] == "convnet-bn" and len(a) == len(b) == 12
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=0)
    assert res["running_stats_max_rel_diff"] < 1e-9 and res["num_batches_tracked"] == 12
    assert res["test_loss_scratchnn"][0] == pytest.approx(res["test_loss_torch"][0], rel=1e-9)
    assert res["accuracy_diff_points"] == 0
    assert a[-4:].mean() < a[:4].mean()


def test_convnet_bn_layout_state_dict_and_eval_mode(digits64):
    model = T.build_scratchnn_convnet(np.float64, seed=2, in_hw=(8, 8), batch_norm=True)
    tmodel = T.build_torch_convnet(model)
    assert set(model.state_dict()) == set(tmodel.state_dict())
    assert "4.num_batches_tracked" in model.state_dict() and "9.weight" in model.state_dict()
    assert T.dropout_indices(model) == T.dropout_indices(tmodel) == (7, 11)
    assert T.dropout_indices(T.build_scratchnn_convnet(np.float64, in_hw=(8, 8))) == (
        T.DROP2D_INDEX, T.DROP_INDEX)
    x, y = digits64.x_train[:32], digits64.y_train[:32]
    masks = T.draw_masks(np.random.default_rng(0), 32, np.float64)
    opt, topt = T.make_scratchnn_optimizer(model), T.make_torch_optimizer(tmodel)
    for _ in range(2):
        ls = T.scratchnn_train_step(model, opt, x, y, masks)
        lt = T.torch_train_step(tmodel, topt, torch.from_numpy(x), torch.from_numpy(y), masks)
        assert ls == pytest.approx(lt, rel=1e-12)
    for k, v in tmodel.state_dict().items():
        np.testing.assert_allclose(model.state_dict()[k], v.numpy(), rtol=1e-10, atol=1e-12)
    model.eval(), tmodel.eval()                       # eval: the running statistics normalise
    with torch.no_grad():
        want = tmodel(torch.from_numpy(digits64.x_test[:40])).numpy()
    np.testing.assert_allclose(model(digits64.x_test[:40]), want, rtol=1e-10, atol=1e-12)
    rm = model.state_dict()["1.running_mean"].copy()
    T.evaluate(model, digits64.x_test, digits64.y_test)
    np.testing.assert_array_equal(model.state_dict()["1.running_mean"], rm)   # eval: unchanged


def test_cli_model_flag(tmp_path, capsys):
    j = tmp_path / "bn.json"
    T.main(["--model", "convnet-bn", "--limit", "3", "--compare-torch", "--dtype", "float64",
            "--json", str(j), "--no-progress"])
    out = capsys.readouterr().out
    assert "BatchNorm running statistics after 3 steps" in out
    r = json.loads(j.read_text())
    assert r["model"] == "convnet-bn" and r["steps"] == 3 and r["max_rel_loss_diff"] < 1e-9
    with pytest.raises(SystemExit):
        T.main(["--model", "resnet", "--no-progress"])
    with pytest.raises(ValueError, match="model"):
        T.train("digits", limit=1, model="resnet", **QUIET)


# -- the book's ConvNet class (--model book) ---------------------------------------------------
@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-9), ("float32", 1e-4)])
def test_book_class_trains_step_for_step_with_torch(dtype, rtol):
    """The forward-only class with the book's attributes, keys and dropouts, trained with the
    replayed backward: every step's loss and every parameter after the run equal torch's."""
    res = T.train("digits", epochs=1, dtype=dtype, compare_torch=True, limit=12, model="book",
                  **QUIET)
    a, b = np.array(res["loss_scratchnn"]), np.array(res["loss_torch"])
    assert res["model"] == "book" and len(a) == len(b) == 12
    np.testing.assert_allclose(a, b, rtol=rtol, atol=0)
    assert res["params_max_rel_diff"] < rtol
    assert a[-4:].mean() < a[:4].mean()


def test_book_class_layout_masks_and_the_books_keys(digits64):
    model = T.build_scratchnn_model("book", np.float64, seed=0, in_hw=(8, 8))
    tmodel = T.build_torch_convnet(model)
    keys = ["cn1.weight", "cn1.bias", "cn2.weight", "cn2.bias", "fc1.weight", "fc1.bias",
            "fc2.weight", "fc2.bias"]
    assert list(model.state_dict()) == list(tmodel.state_dict()) == keys
    assert [type(m).__name__ for m in T.dropout_layers(model)] == ["Dropout2d", "Dropout2d"]
    assert [m.p for m in T.dropout_layers(tmodel)] == [T.P_DROPOUT2D, T.P_DROPOUT]
    # the same initial weights as the Sequential ConvNet (same seed, same creation order)
    seq = T.build_scratchnn_convnet(np.float64, seed=0, in_hw=(8, 8))
    for k, v in zip(keys, seq.state_dict().values()):
        np.testing.assert_array_equal(model.state_dict()[k], v)
    x, y = digits64.x_train[:32], digits64.y_train[:32]
    masks = T.draw_masks(np.random.default_rng(4), 32, np.float64)
    opt, topt = T.make_scratchnn_optimizer(model), T.make_torch_optimizer(tmodel)
    ls = T.scratchnn_train_step(model, opt, x, y, masks)
    lt = T.torch_train_step(tmodel, topt, torch.from_numpy(x), torch.from_numpy(y), masks)
    assert ls == pytest.approx(lt, rel=1e-12)
    assert T.max_rel_param_diff(model, tmodel) < 1e-10
    with pytest.raises(ValueError, match="dropout_layers.*model"):
        T.dropout_layers(nn.Sequential(nn.ReLU()))
