"""The chapter's ConvNet, trained by hand in scratchnn and — step for step — in torch.

    python -m benchmarks.train [--model convnet|convnet-bn|book]
                               [--data digits|fashion-mnist|DIR] [--epochs N]
                               [--dtype float32|float64] [--compare-torch] [--json PATH]
                               [--plot PATH] [--seed S] [--batch-size 32] [--lr 0.5]
                               [--limit N] [--threads N] [--interleave N]

The network (the chapter's, NCHW, ``H×W`` the image size)::

    Conv2d(1, 16, 3, 1) → ReLU → Conv2d(16, 32, 3, 1) → ReLU → MaxPool2d(2) → Dropout2d(0.10)
    → Flatten → Linear(32·⌊(H−4)/2⌋·⌊(W−4)/2⌋, 64) → ReLU → dropout(0.25) → Linear(64, 10)
    → LogSoftmax(dim=1)

``--model convnet-bn`` puts a ``BatchNorm2d`` after each convolution (before its ReLU)::

    Conv2d(1, 16, 3, 1) → BatchNorm2d(16) → ReLU → Conv2d(16, 32, 3, 1) → BatchNorm2d(32) → ReLU
    → MaxPool2d(2) → Dropout2d(0.10) → … (as above)

``--model book`` trains the book's own ``ConvNet`` class (:mod:`benchmarks.book`): a Module
subclass with attributes ``cn1, cn2, dp1, dp2, fc1, fc2`` and a forward-only ``forward`` calling
``F.relu``, ``F.max_pool2d``, ``scratchnn.flatten`` and ``F.log_softmax`` — the same network, its
backward the replay of its ops' hand-written backwards, its state_dict the book's keys; its
torch twin is the book's torch class. Both dropouts there are ``Dropout2d`` as the book writes
them (on the 2-D hidden activations torch, and scratchnn, run it element-wise).

The BatchNorm model is trained the same way; its running statistics (and ``num_batches_tracked``) are part of the
state_dict that torch's twin loads, the comparison checks them after training, and the test
evaluation runs in eval mode, normalising with them.

Both are trained with NLL loss and Adadelta(lr=0.5) on batches of 32 (4608 → 64 on 28×28 MNIST-format
images, 128 → 64 on the 8×8 digits). Dropout follows *today's* torch semantics: ``Dropout2d``
sits on the 4-D pooled maps and zeroes whole channels (a keep mask of shape (N, 32, 1, 1)); the
2-D hidden activations get element-wise ``dropout`` (mask (N, 64)) — the chapter applied
``Dropout2d`` there, which current torch warns about and executes element-wise on a 2-D input.
Both scale the kept values by 1/(1−p).

``--compare-torch`` trains the same network in torch alongside: torch's model gets scratchnn's
initial weights through ``load_state_dict`` (same keys, same layouts), both see the same batches
in the same order (one seeded :class:`scratchnn.data.DataLoader`), and both use the *same dropout
masks*: per step the masks are drawn once with NumPy (:func:`draw_masks`, with scratchnn's own
sampler) and injected into both models — torch's masked-dropout layers take the mask arrays,
scratchnn's ``Dropout2d``/``Dropout`` take a generator replaying the state the masks were drawn
from (their ``generator=`` hook), so they regenerate exactly those masks. Each epoch's batches
and masks are drawn once; the two sides take turns every ``--interleave`` steps (default 100),
with a 0.2 s pause at every switch so that neither runs against the other's spinning BLAS
threads (see :data:`INTERLEAVE`); each step is timed on its own, at the same thread count
(``--threads``: torch's ``set_num_threads``, threadpoolctl for NumPy's BLAS,
``scratchnn.set_num_threads``).

Reusable pieces (``python -m benchmarks`` times one training step with them)::

    model = build_scratchnn_convnet(np.float32, seed=0, in_hw=(28, 28))   # snn Sequential
    opt   = make_scratchnn_optimizer(model, lr=0.5)                      # snn Adadelta
    tmodel = build_torch_convnet(model)          # same weights; torch.nn.Sequential
    topt   = make_torch_optimizer(tmodel, lr=0.5)
    masks  = draw_masks(np.random.default_rng(0), batch=32, dtype=np.float32)
    loss   = scratchnn_train_step(model, opt, x, y, masks)               # float
    tloss  = torch_train_step(tmodel, topt, torch.from_numpy(x), torch.from_numpy(y), masks)

A train step is: zero the grads, forward (in train mode, masks injected), NLL loss (mean), its
backward through the whole network, one optimizer step; it returns the loss before the step.
:func:`evaluate` / :func:`torch_evaluate` give (mean test NLL, accuracy in percent).

``--json PATH`` writes ``{"model", "dataset", "epochs", "steps", "loss_scratchnn": [per step],
"loss_torch": [per step or null], "test_accuracy_scratchnn", "test_accuracy_torch"`` (percent,
after the last epoch), ``"seconds_scratchnn", "seconds_torch"`` (training time only, all
epochs), plus per-epoch test losses/accuracies, the largest per-step relative loss difference,
``"params_max_rel_diff"`` (with ``--compare-torch``: how far the parameters are from torch's
after training, see :func:`max_rel_param_diff`),
(``convnet-bn`` with ``--compare-torch``: ``"running_stats_max_rel_diff"``, the largest relative
difference of the BatchNorm running statistics after training),
the time ratio, threads, versions and the settings. ``--plot PATH`` writes a PNG of both loss
curves (a running mean on long runs), their per-step relative difference and the per-epoch test
accuracies. ``--no-progress`` hides the tqdm bar.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

import scratchnn as snn
import scratchnn.functional as F
from scratchnn import nn
from scratchnn.data import DataLoader, Dataset, load_digits, load_fashion_mnist, load_mnist_dir

from .book import ConvNet

try:                         # torch is needed only for the torch side (--compare-torch)
    import torch
except ImportError:          # pragma: no cover
    torch = None

__all__ = ["P_DROPOUT2D", "P_DROPOUT", "Masks", "draw_masks", "build_scratchnn_convnet",
           "build_torch_convnet", "make_scratchnn_optimizer", "make_torch_optimizer",
           "scratchnn_train_step", "torch_train_step", "evaluate", "torch_evaluate",
           "load_data", "train", "main", "MODELS", "dropout_indices", "dropout_layers",
           "build_scratchnn_model", "write_outputs", "add_run_args", "check_counts"]

P_DROPOUT2D = 0.10          # after the max-pool, whole channels
P_DROPOUT = 0.25            # on the 64 hidden units, element-wise
DROP2D_INDEX, DROP_INDEX = 5, 9     # positions of the two dropouts in the plain ConvNet
MODELS = ("convnet", "convnet-bn", "book")  # --model: the chapter's ConvNet as a Sequential,
#                                             with BatchNorm2d, and the book's own ConvNet class


class Masks(NamedTuple):
    """One step's dropout keep-masks (1 = keep, 0 = drop; unscaled, in the model's dtype) and
    the generator states they were drawn from.

    channel: (N, 32, 1, 1) for Dropout2d; hidden: (N, 64) for dropout;
    states: the NumPy bit-generator state before each of the two draws.
    """
    channel: np.ndarray
    hidden: np.ndarray
    states: tuple[dict, dict]


def draw_masks(rng: np.random.Generator, batch: int, dtype=np.float32) -> Masks:
    """Draw one step's two keep-masks from ``rng`` with scratchnn's own sampler
    (:func:`scratchnn.functional.dropout_mask`: float32 uniforms, keep where ``u ≥ p``, so
    P(keep) = 1 − p as torch's ``bernoulli_(1 − p)``).

    The torch model receives the masks themselves; scratchnn's ``Dropout2d``/``Dropout``
    modules receive a generator replaying the recorded state (``generator=`` is their reproducible
    randomness hook), so they draw exactly these masks on the same code path as any training run.
    """
    s1 = rng.bit_generator.state
    channel = F.dropout_mask((batch, 32, 1, 1), P_DROPOUT2D, rng)
    s2 = rng.bit_generator.state
    hidden = F.dropout_mask((batch, 64), P_DROPOUT, rng)
    return Masks(channel.astype(dtype), hidden.astype(dtype), (s1, s2))


def _replay(state: dict) -> np.random.Generator:
    """A generator in the recorded ``state`` (it will repeat the draws made from there)."""
    bit_generator = getattr(np.random, state["bit_generator"])()
    bit_generator.state = state
    return np.random.Generator(bit_generator)


def _flat_features(in_hw: tuple[int, int]) -> int:
    h, w = in_hw
    if h < 6 or w < 6:
        raise ValueError(f"build_scratchnn_convnet(): parameter 'in_hw' must be at least 6×6 "
                         f"(two 3×3 convolutions and a 2×2 pool), got {in_hw}")
    return 32 * ((h - 4) // 2) * ((w - 4) // 2)


# -- scratchnn ----------------------------------------------------------------------------------
def build_scratchnn_convnet(dtype=np.float32, seed: int = 0, in_hw: tuple[int, int] = (28, 28),
                            batch_norm: bool = False) -> nn.Sequential:
    """The chapter's ConvNet as a scratchnn ``Sequential`` with torch's default initialisation,
    drawn from ``scratchnn.manual_seed(seed)``; parameters in ``dtype``.

    state_dict keys: ``0.weight/bias`` (conv1), ``2.*`` (conv2), ``7.*`` (fc1), ``10.*`` (fc2) —
    the same as :func:`build_torch_convnet`'s. ``batch_norm=True`` (``--model convnet-bn``):
    a ``BatchNorm2d`` after each convolution, keys ``0`` conv1, ``1`` bn1, ``3`` conv2, ``4``
    bn2 (weight, bias, running_mean, running_var, num_batches_tracked), ``9`` fc1, ``12`` fc2.
    """
    snn.manual_seed(seed)
    bn = (lambda c: [nn.BatchNorm2d(c)]) if batch_norm else (lambda c: [])
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, 1), *bn(16), nn.ReLU(), nn.Conv2d(16, 32, 3, 1), *bn(32), nn.ReLU(),
        nn.MaxPool2d(2), nn.Dropout2d(P_DROPOUT2D), nn.Flatten(),
        nn.Linear(_flat_features(in_hw), 64), nn.ReLU(), nn.Dropout(P_DROPOUT),
        nn.Linear(64, 10), nn.LogSoftmax(dim=1))
    return model.to(np.dtype(dtype))


def build_scratchnn_model(name: str, dtype=np.float32, seed: int = 0,
                          in_hw: tuple[int, int] = (28, 28)) -> nn.Module:
    """One of :data:`MODELS`: the ``Sequential`` ConvNet (``convnet``, ``convnet-bn``) or the
    book's ``ConvNet`` class (``book``, state_dict keys ``cn1.*``, ``cn2.*``, ``fc1.*``,
    ``fc2.*``), initialised from ``scratchnn.manual_seed(seed)``, parameters in ``dtype``."""
    if name == "book":
        snn.manual_seed(seed)
        return ConvNet(_flat_features(in_hw)).to(np.dtype(dtype))
    return build_scratchnn_convnet(dtype, seed, in_hw, name == "convnet-bn")


def dropout_layers(model) -> tuple[Any, Any]:
    """The (channel, hidden) dropout layers of any of the models, scratchnn's or torch's, in
    forward order (``model[5]``, ``model[9]`` of the plain Sequential; ``dp1``, ``dp2`` of the
    book's class)."""
    kinds = (nn.Dropout2d, nn.Dropout) + ((TorchMaskedDropout,) if torch is not None else ())
    found = tuple(m for m in model.modules() if isinstance(m, kinds))
    if len(found) != 2:
        raise ValueError(f"dropout_layers(): parameter 'model' must hold the ConvNet's two "
                         f"dropout layers, found {len(found)}")
    return found


def dropout_indices(model) -> tuple[int, int]:
    """Positions of the (channel, hidden) dropout layers in either model, scratchnn's or
    torch's (5, 9 in the plain ConvNet; 7, 11 with BatchNorm)."""
    kinds = (nn.Dropout2d, nn.Dropout) + ((TorchMaskedDropout,) if torch is not None else ())
    found = tuple(i for i, m in enumerate(model) if isinstance(m, kinds))
    if len(found) != 2:
        raise ValueError(f"dropout_indices(): parameter 'model' must hold the ConvNet's two "
                         f"dropout layers, found {len(found)}")
    return found


def make_scratchnn_optimizer(model: nn.Module, lr: float = 0.5):
    """The chapter's optimizer: ``scratchnn.optim.Adadelta(model.parameters(), lr=lr)``."""
    return snn.optim.Adadelta(model.parameters(), lr=lr)


def _set_scratchnn_masks(model: nn.Sequential, masks: Masks | None) -> None:
    """Make the two dropout layers draw this step's masks (None: the default generator)."""
    channel, hidden = dropout_layers(model)
    channel.generator = None if masks is None else _replay(masks.states[0])
    hidden.generator = None if masks is None else _replay(masks.states[1])


def scratchnn_train_step(model: nn.Module, optimizer, x: np.ndarray, y: np.ndarray,
                         masks: Masks | None = None) -> float:
    """One training step in scratchnn; returns the batch's mean NLL loss (before the step).

    Explicit backprop: ``dlogp`` from the loss's pullback, then ``model.backward(dlogp)`` fills
    every parameter's ``.grad``; Adadelta updates ``.data`` in place.
    """
    model.train()
    if masks is not _PREPARED:
        _set_scratchnn_masks(model, masks)
    optimizer.zero_grad()
    logp = model(x)                                          # (N, 10) log-probabilities
    loss, pullback = snn.vjp(F.nll_loss, logp, y)
    dlogp = pullback(np.ones((), dtype=logp.dtype))[0]      # ∂loss/∂logp, (N, 10)
    model.backward(dlogp, input_grad=False)     # the images need no gradient (torch: neither)
    optimizer.step()
    return float(loss)


_PREPARED = object()   # "the masks are already set": the timed loop sets them outside the clock

# How the two sides are timed against each other (``--compare-torch``). They never run step by
# step in turn: after a NumPy GEMM, OpenBLAS's threads spin for ~0.1 s, and a torch step run
# inside that window is slowed ~2× (see benchmarks/timing.py), which would flatter scratchnn.
# Nor does each run a whole epoch alone: this shared VM's speed drifts by ±25 % over seconds to
# minutes, and a whole epoch on each side measured ratios from 1.93× to 2.28× in five runs.
# So they take turns every INTERLEAVE steps (~0.5–1 s of work), with a SETTLE pause at every
# switch (outside the clock): both sides then see the same drifts.
INTERLEAVE = 100
SETTLE = 0.2


def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int = 1000
             ) -> tuple[float, float]:
    """(mean test NLL, accuracy in percent) in eval mode (dropout off), as the chapter's
    ``test()``: NLL summed over the set, divided by its size."""
    model.eval()
    total, correct = 0.0, 0
    for i in range(0, len(x), batch_size):
        logp = model(x[i:i + batch_size])
        yb = y[i:i + batch_size]
        total += float(F.nll_loss(logp, yb, reduction="sum"))
        correct += int((logp.argmax(axis=1) == yb).sum())
    model.train()
    return total / len(x), 100.0 * correct / len(x)


# -- torch ----------------------------------------------------------------------------------------
def _torch():
    if torch is None:
        raise SystemExit("the torch side needs PyTorch: pip install 'scratchnn[bench]'")
    return torch


def build_torch_convnet(source: nn.Module | dict, in_hw: tuple[int, int] | None = None,
                        dtype=None):
    """The same network in torch, with dropout masks injected instead of drawn.

    ``source`` is a scratchnn ConvNet (or its state_dict), plain, with BatchNorm or the book's
    class (told by its keys: the book's gives the book's torch class): its weights — and running statistics — are copied in (so both start identical),
    and the dtype follows them unless ``dtype`` is given. The two dropout layers are
    :class:`TorchMaskedDropout` modules: before each forward, their ``mask`` (``model[5]`` and
    ``model[9]`` in the plain ConvNet, see :func:`dropout_indices`) is set to the step's
    keep-masks (``torch_train_step`` does it).
    """
    tnn = _torch().nn
    sd = source.state_dict() if isinstance(source, nn.Module) else dict(source)
    batch_norm = "1.running_mean" in sd
    book = "cn1.weight" in sd
    w1 = np.asarray(sd["fc1.weight" if book else "9.weight" if batch_norm else "7.weight"])
    if in_hw is not None and w1.shape[1] != _flat_features(in_hw):
        raise ValueError(f"build_torch_convnet(): 'in_hw' {in_hw} does not match the source's "
                         f"fc1 with {w1.shape[1]} inputs")
    bn = (lambda c: [tnn.BatchNorm2d(c)]) if batch_norm else (lambda c: [])
    model = TorchConvNet(w1.shape[1], dropout=TorchMaskedDropout) if book else tnn.Sequential(
        tnn.Conv2d(1, 16, 3, 1), *bn(16), tnn.ReLU(), tnn.Conv2d(16, 32, 3, 1), *bn(32),
        tnn.ReLU(), tnn.MaxPool2d(2), TorchMaskedDropout(P_DROPOUT2D), tnn.Flatten(),
        tnn.Linear(w1.shape[1], 64), tnn.ReLU(), TorchMaskedDropout(P_DROPOUT),
        tnn.Linear(64, 10), tnn.LogSoftmax(dim=1))
    tdtype = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[
        np.dtype(dtype) if dtype is not None else w1.dtype]
    model.to(tdtype)
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in sd.items()})
    return model


if torch is not None:
    from .book import TorchConvNet

    class TorchMaskedDropout(torch.nn.Module):
        """torch's dropout with the keep-mask supplied from outside: ``x · (mask / (1 − p))``,
        the arithmetic of torch's ``dropout``/``feature_dropout`` (noise divided by 1 − p, then
        multiplied). In eval mode, or without a mask, the identity."""

        def __init__(self, p: float):
            super().__init__()
            self.p = p
            self.mask = None

        def forward(self, x):
            if not self.training or self.mask is None:
                return x
            return x * (self.mask.to(x.dtype) / (1 - self.p))

        def extra_repr(self) -> str:
            return f"p={self.p}, mask injected"


def make_torch_optimizer(model, lr: float = 0.5):
    """``torch.optim.Adadelta(model.parameters(), lr=lr)`` (rho 0.9, eps 1e-6, as scratchnn's)."""
    return _torch().optim.Adadelta(model.parameters(), lr=lr)


def _set_torch_masks(model, masks: Masks | None, device: Any = "cpu") -> None:
    """Give the torch model's two dropout layers this step's masks (None: draw their own)."""
    channel, hidden = dropout_layers(model)
    if masks is not None:                    # on x's device (a no-op copy on the CPU)
        channel.mask = torch.from_numpy(masks.channel).to(device)
        hidden.mask = torch.from_numpy(masks.hidden).to(device)
    else:
        channel.mask = hidden.mask = None


def torch_train_step(model, optimizer, x, y, masks: Masks | None = None) -> float:
    """One training step in torch with the given keep-masks; returns the loss (before the
    step). ``x``/``y`` are tensors (``torch.from_numpy`` of the scratchnn batch)."""
    model.train()
    if masks is not _PREPARED:
        _set_torch_masks(model, masks, x.device)
    optimizer.zero_grad()
    loss = torch.nn.functional.nll_loss(model(x), y)
    loss.backward()
    optimizer.step()
    return float(loss.item())


def torch_evaluate(model, x: np.ndarray, y: np.ndarray, batch_size: int = 1000
                   ) -> tuple[float, float]:
    """:func:`evaluate` for the torch model."""
    model.eval()
    total, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            logp = model(torch.from_numpy(x[i:i + batch_size]))
            yb = torch.from_numpy(y[i:i + batch_size])
            total += float(torch.nn.functional.nll_loss(logp, yb, reduction="sum"))
            correct += int((logp.argmax(dim=1) == yb).sum())
    model.train()
    return total / len(x), 100.0 * correct / len(x)


# -- the run ------------------------------------------------------------------------------------
def load_data(spec: str, dtype) -> Dataset:
    """``digits`` (scikit-learn's, 8×8), ``fashion-mnist`` (Debian's package) or a directory of
    MNIST-format IDX files."""
    if spec == "digits":
        return load_digits(dtype=dtype)
    if spec == "fashion-mnist":
        return load_fashion_mnist(dtype=dtype)
    if Path(spec).is_dir():
        return load_mnist_dir(spec, dtype=dtype)
    raise SystemExit(f"--data: expected 'digits', 'fashion-mnist' or a directory of "
                     f"MNIST-format IDX files, got {spec!r}")


class _Threads:
    """Pin torch, NumPy's BLAS and scratchnn (``scratchnn.set_num_threads``) to the same
    thread count for the run; everything is restored afterwards."""

    def __init__(self, n: int | None, torch_needed: bool):
        self.n, self.torch_needed, self.limiter, self.torch_before = n, torch_needed, None, None

    def __enter__(self) -> int:
        torch = _torch() if self.torch_needed else None
        n = self.n or (torch.get_num_threads() if torch else os.cpu_count() or 1)
        if torch:
            self.torch_before = torch.get_num_threads()
            torch.set_num_threads(n)
        try:
            from threadpoolctl import threadpool_limits
            self.limiter = threadpool_limits(n, user_api="blas")
        except ImportError:          # the ratio then rests on OPENBLAS_NUM_THREADS
            pass
        self.scratchnn_before = snn.get_num_threads()
        snn.set_num_threads(n)
        return n

    def __exit__(self, *exc: Any) -> None:
        if self.limiter is not None:
            self.limiter.unregister()
        if self.torch_before is not None:
            _torch().set_num_threads(self.torch_before)
        snn.set_num_threads(self.scratchnn_before)


def _progress(total: int, desc: str, enabled: bool):
    try:
        from tqdm import tqdm
    except ImportError:
        tqdm = None
    if tqdm is None or not enabled:
        class _Null:
            def update(self, n=1): pass
            def set_postfix_str(self, s): pass
            def close(self): pass
        return _Null()
    return tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True, leave=False)


def _timed_steps(step: Any, batches: list, bar: Any, label: str,
                 prepare: Any = None) -> tuple[list[float], float]:
    """Run ``step(x, y, masks)`` over ``batches``; return the losses and the seconds spent in
    the steps alone. The progress bar and ``prepare(masks)`` (handing the step's recorded
    dropout masks to the model, a harness cost, not training) are outside the timed region;
    ``prepare`` returns what ``step`` receives as its masks."""
    losses, seconds = [], 0.0
    for x, y, masks in batches:
        if prepare is not None:
            masks = prepare(masks)
        t0 = time.perf_counter()
        loss = step(x, y, masks)
        seconds += time.perf_counter() - t0
        losses.append(loss)
        bar.update()
        bar.set_postfix_str(f"{label} loss {loss:.4f}")
    return losses, seconds


def train(data: str = "digits", epochs: int = 1, dtype="float32", compare_torch: bool = False,
          seed: int = 0, batch_size: int = 32, lr: float = 0.5, limit: int | None = None,
          threads: int | None = None, progress: bool = True, log=print,
          interleave: int = INTERLEAVE, model: str = "convnet") -> dict:
    """Train (and optionally compare); returns the result dict that ``--json`` writes.

    ``interleave``: with ``compare_torch``, the two sides take turns every ``interleave`` steps
    (0: a whole epoch each), with a pause at every switch (see :data:`INTERLEAVE`).
    ``model``: one of :data:`MODELS` (``"convnet-bn"``: BatchNorm2d after each convolution)."""
    if model not in MODELS:
        raise ValueError(f"train(): parameter 'model' must be one of {list(MODELS)}, "
                         f"got {model!r}")
    model_name = model
    dtype = np.dtype(dtype)
    ds = load_data(data, dtype)
    in_hw = ds.x_train.shape[2:]
    loader = DataLoader(ds.x_train, ds.y_train, batch_size=batch_size, shuffle=True, seed=seed)
    mask_rng = np.random.default_rng([seed, 1])
    steps_per_epoch = len(loader) if limit is None else min(limit, len(loader))
    res: dict[str, Any] = {
        "model": model_name, "dataset": ds.name, "epochs": epochs, "steps": epochs * steps_per_epoch,
        "dtype": dtype.name, "seed": seed, "batch_size": batch_size, "lr": lr, "limit": limit,
        "interleave": interleave if compare_torch else None,
        "train_size": len(ds.x_train), "test_size": len(ds.x_test), "image_hw": list(in_hw),
        "normalisation": {"mean": ds.mean, "std": ds.std},
        "loss_scratchnn": [], "loss_torch": [] if compare_torch else None,
        "test_loss_scratchnn": [], "test_accuracy_scratchnn_per_epoch": [],
        "test_loss_torch": [] if compare_torch else None,
        "test_accuracy_torch_per_epoch": [] if compare_torch else None,
        "seconds_scratchnn": 0.0, "seconds_torch": 0.0 if compare_torch else None,
    }
    with _Threads(threads, compare_torch) as n_threads:
        res["threads"] = n_threads
        model = build_scratchnn_model(model_name, dtype, seed, in_hw)
        opt = make_scratchnn_optimizer(model, lr)
        if compare_torch:
            _torch()
            tmodel = build_torch_convnet(model)
            topt = make_torch_optimizer(tmodel, lr)
        log(f"{model_name} on {ds.name}: {len(ds.x_train)} train / {len(ds.x_test)} test images {in_hw[0]}×"
            f"{in_hw[1]}, {dtype.name}, batch {batch_size}, Adadelta(lr={lr}), "
            f"{steps_per_epoch} steps/epoch, {n_threads} thread(s)"
            + (", compared with torch step for step" if compare_torch else ""))
        for epoch in range(1, epochs + 1):
            # The epoch's batches and dropout masks are drawn once and replayed on each side,
            # the sides taking turns every `interleave` steps (see INTERLEAVE).
            batches = []
            for step, (x, y) in enumerate(loader):
                if step == steps_per_epoch:
                    break
                batches.append((x, y, draw_masks(mask_rng, len(x), dtype)))
            bar = _progress(len(batches) * (2 if compare_torch else 1), f"epoch {epoch}",
                            progress)
            def prepare_scratchnn(masks: Masks) -> object:
                _set_scratchnn_masks(model, masks)
                return _PREPARED

            def prepare_torch(masks: Masks) -> object:
                _set_torch_masks(tmodel, masks)
                return _PREPARED

            turn = interleave if compare_torch and interleave > 0 else len(batches) or 1
            for i in range(0, len(batches), turn):
                chunk = batches[i:i + turn]
                losses, seconds = _timed_steps(
                    lambda x, y, m: scratchnn_train_step(model, opt, x, y, m), chunk, bar,
                    "scratchnn", prepare_scratchnn)
                res["loss_scratchnn"] += losses
                res["seconds_scratchnn"] += seconds
                if compare_torch:
                    time.sleep(SETTLE)               # let the other side's threads go idle
                    losses, seconds = _timed_steps(
                        lambda x, y, m: torch_train_step(tmodel, topt, torch.from_numpy(x),
                                                         torch.from_numpy(y), m), chunk, bar,
                        "torch", prepare_torch)
                    res["loss_torch"] += losses
                    res["seconds_torch"] += seconds
                    time.sleep(SETTLE)
            bar.close()
            tl, ta = evaluate(model, ds.x_test, ds.y_test)
            res["test_loss_scratchnn"].append(tl)
            res["test_accuracy_scratchnn_per_epoch"].append(ta)
            line = f"epoch {epoch}: scratchnn test loss {tl:.4f}, accuracy {ta:.2f} %"
            if compare_torch:
                ttl, tta = torch_evaluate(tmodel, ds.x_test, ds.y_test)
                res["test_loss_torch"].append(ttl)
                res["test_accuracy_torch_per_epoch"].append(tta)
                line += f" | torch test loss {ttl:.4f}, accuracy {tta:.2f} %"
            log(line)
    res["test_accuracy_scratchnn"] = res["test_accuracy_scratchnn_per_epoch"][-1]
    res["test_accuracy_torch"] = (res["test_accuracy_torch_per_epoch"][-1] if compare_torch
                                  else None)
    res["seconds_per_epoch_scratchnn"] = res["seconds_scratchnn"] / epochs
    if compare_torch:
        a, b = np.asarray(res["loss_scratchnn"]), np.asarray(res["loss_torch"])
        rel = np.abs(a - b) / np.maximum(np.abs(b), np.finfo(np.float64).tiny)
        res["max_rel_loss_diff"] = float(rel.max()) if rel.size else 0.0
        res["max_rel_loss_diff_step"] = int(rel.argmax()) if rel.size else None
        res["seconds_per_epoch_torch"] = res["seconds_torch"] / epochs
        res["time_ratio"] = res["seconds_scratchnn"] / res["seconds_torch"]
        res["accuracy_diff_points"] = res["test_accuracy_scratchnn"] - res["test_accuracy_torch"]
        res["torch_version"] = torch.__version__
        res["params_max_rel_diff"] = max_rel_param_diff(model, tmodel)
        if model_name == "convnet-bn":             # the BatchNorm running statistics too
            tsd = tmodel.state_dict()
            res["running_stats_max_rel_diff"] = max(
                float(np.max(np.abs(v - tsd[k].numpy()) / np.maximum(np.abs(tsd[k].numpy()),
                                                                    1e-12)))
                for k, v in model.state_dict().items() if "running_" in k)
            res["num_batches_tracked"] = int(model.state_dict()["1.num_batches_tracked"])
    res["numpy_version"] = np.__version__
    res["python"] = platform.python_version()
    res["machine"] = platform.machine()
    res["cpu_count"] = os.cpu_count()
    return res


def max_rel_param_diff(model: nn.Module, tmodel) -> float:
    """How far the scratchnn model's parameters are from its torch twin's (same state_dict
    keys): the largest, over the parameters, of ``max|a − b| / max|b|`` — each tensor's largest
    difference relative to its own scale (element by element, a weight that passes near zero
    would turn float32 rounding into a large "relative" difference)."""
    tsd = tmodel.state_dict()
    worst = 0.0
    for k, p in model.named_parameters():
        b = tsd[k].numpy()
        worst = max(worst, float(np.max(np.abs(p.data - b), initial=0.0)
                                 / max(float(np.max(np.abs(b), initial=0.0)), 1e-300)))
    return worst


def summary(res: dict) -> str:
    s = (f"scratchnn: {res['steps']} steps in {res['seconds_scratchnn']:.2f} s, "
         f"test accuracy {res['test_accuracy_scratchnn']:.2f} %")
    if res.get("loss_torch") is not None:
        s += (f"\ntorch:     {res['steps']} steps in {res['seconds_torch']:.2f} s, "
              f"test accuracy {res['test_accuracy_torch']:.2f} %"
              f"\nlargest per-step relative loss difference: {res['max_rel_loss_diff']:.3g} "
              f"(step {res['max_rel_loss_diff_step']}); time ratio scratchnn/torch "
              f"{res['time_ratio']:.2f}× at {res['threads']} thread(s)"
              f"\nparameters after training: largest relative difference "
              f"{res['params_max_rel_diff']:.3g}")
        if "running_stats_max_rel_diff" in res:
            s += (f"\nBatchNorm running statistics after {res['num_batches_tracked']} steps: "
                  f"largest relative difference {res['running_stats_max_rel_diff']:.3g}")
    return s


def plot(res: dict, path: str | os.PathLike) -> None:
    """PNG: per-step training loss of both sides, their relative difference per step (log
    scale; with --compare-torch), and the per-epoch test accuracies."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    both = res.get("loss_torch") is not None
    fig, axes = plt.subplots(1, 3 if both else 2, figsize=(15 if both else 11, 4),
                             gridspec_kw={"width_ratios": [2, 2, 1] if both else [2, 1]})
    steps = np.arange(1, len(res["loss_scratchnn"]) + 1)
    ax = axes[0]
    w = max(1, len(steps) // 100)                 # long runs: a running mean over w steps
    for key, label, ls, c in (("loss_scratchnn", "scratchnn", "-", "C0"),
                              ("loss_torch", "torch", "--", "C1")):
        if res.get(key) is None:
            continue
        loss = np.asarray(res[key])
        if w == 1:
            ax.plot(steps, loss, ls, color=c, label=label, lw=1.2)
        else:
            ax.plot(steps, loss, ls, color=c, lw=0.5, alpha=0.25)
            ax.plot(steps[w - 1:], np.convolve(loss, np.ones(w) / w, mode="valid"), ls, color=c,
                    label=f"{label} (mean of {w} steps)", lw=1.4)
    ax.set(xlabel="step", ylabel="training NLL loss",
           title=f"{res['dataset']}, {res['dtype']}, batch {res['batch_size']}, "
                 f"lr {res['lr']}")
    ax.legend()
    if both:
        a, b = np.asarray(res["loss_scratchnn"]), np.asarray(res["loss_torch"])
        rel = np.abs(a - b) / np.abs(b)
        ax = axes[1]
        nz = rel > 0                                  # exact agreement has no log
        ax.semilogy(steps[nz], rel[nz], ".", ms=3)
        ax.set(xlabel="step", ylabel="|loss − loss_torch| / loss_torch",
               title=f"relative loss difference: max {res['max_rel_loss_diff']:.2g}, "
                     f"{int((~nz).sum())} of {len(rel)} steps exactly equal")
    ax = axes[-1]
    ep = np.arange(1, len(res["test_accuracy_scratchnn_per_epoch"]) + 1)
    width = 0.38 if both else 0.6
    bars = [("scratchnn", res["test_accuracy_scratchnn_per_epoch"], -width / 2 if both else 0)]
    if both:
        bars.append(("torch", res["test_accuracy_torch_per_epoch"], width / 2))
    for label, acc, off in bars:
        ax.bar_label(ax.bar(ep + off, acc, width, label=label), fmt="%.2f", fontsize=8)
    lo = max(0.0, min(min(acc) for _, acc, _ in bars) - 10)
    ax.set(xlabel="epoch", ylabel="test accuracy (%)", xticks=ep,
           ylim=(lo, 100 + 0.3 * (100 - lo)), title="test accuracy")
    ax.set_yticks([t for t in ax.get_yticks() if lo <= t <= 100])
    ax.legend(loc="upper center", ncol=2, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.train", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=MODELS, default="convnet",
                    help="convnet (default; the chapter's, as a Sequential), convnet-bn "
                         "(BatchNorm2d after each convolution) or book (the book's ConvNet "
                         "class, forward-only, book's state_dict keys)")
    ap.add_argument("--data", default="digits",
                    help="digits (default; scikit-learn's 8×8), fashion-mnist (Debian's "
                         "dataset-fashion-mnist) or a directory of MNIST-format IDX files")
    ap.add_argument("--epochs", type=int, default=1)
    add_run_args(ap, "a PNG of losses and accuracies", "a whole epoch each")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.5)
    ap.add_argument("--limit", type=int, metavar="N",
                    help="train at most N steps per epoch (a fixed slice, for timing/CI)")
    args = ap.parse_args(argv)
    check_counts(ap, args, ("epochs", "batch_size", "limit", "threads"), ("seed", "interleave"))
    res = train(args.data, args.epochs, args.dtype, args.compare_torch, args.seed,
                args.batch_size, args.lr, args.limit, args.threads, not args.no_progress,
                interleave=args.interleave, model=args.model)
    print(summary(res))
    write_outputs(res, args.json, args.plot, plot)
    return res


def add_run_args(ap: argparse.ArgumentParser, plot_what: str, zero_turn: str) -> None:
    """The flags both trainers take (this one and benchmarks.train_gpt): --dtype,
    --compare-torch, --json, --plot (``plot_what``), --seed, --threads, --interleave (0 means
    ``zero_turn``) and --no-progress."""
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--compare-torch", action="store_true",
                    help="train torch alongside from the same weights, batches and masks")
    ap.add_argument("--json", metavar="PATH", help="write the results as JSON")
    ap.add_argument("--plot", metavar="PATH", help=f"write {plot_what}")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, metavar="N",
                    help="threads for torch and NumPy's BLAS (default: torch's default)")
    ap.add_argument("--interleave", type=int, default=INTERLEAVE, metavar="N",
                    help=f"with --compare-torch, the sides take turns every N steps, pausing "
                         f"{SETTLE} s at each switch (default {INTERLEAVE}; 0: {zero_turn})")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")


def check_counts(ap: argparse.ArgumentParser, args: argparse.Namespace,
                 at_least_1: tuple[str, ...], at_least_0: tuple[str, ...]) -> None:
    """A trainer's integer flags in range (None: not given), else argparse's error."""
    for bound, names in ((1, at_least_1), (0, at_least_0)):
        for name in names:
            v = getattr(args, name)
            if v is not None and v < bound:
                ap.error(f"--{name.replace('_', '-')} must be >= {bound}, got {v}")


def write_outputs(res: dict, json_path: str | None, plot_path: str | None, plot_fn) -> None:
    """``--json PATH`` and ``--plot PATH`` of a trainer (this one's and benchmarks.train_gpt's)."""
    if json_path:
        Path(json_path).write_text(json.dumps(res, indent=1) + "\n")
        print(f"wrote {json_path}")
    if plot_path:
        plot_fn(res, plot_path)
        print(f"wrote {plot_path}")


if __name__ == "__main__":
    main()
    sys.exit(0)
