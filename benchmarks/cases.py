"""The benchmark cases: representative shapes, FLOP formulas and targets, one entry per case.

Every case builds, once per run, a pair of callables per *side*: ``forward`` and
``forward+backward``.

* ``scratchnn`` — the functional op through :func:`scratchnn.vjp` (forward+backward =
  ``out, pullback = vjp(op, ...); pullback(dout)``), or a module's ``forward`` / ``backward``.
* ``torch`` — the same op in torch on the CPU, same inputs, same weights; forward runs with
  autograd recording (as in training: scratchnn's forward saves its context too), and
  forward+backward is ``torch.autograd.grad(out, inputs, dout)`` (modules: ``.backward``).
  Every floating input requires a gradient on both sides, so both compute the same gradients.
* ``torch_cuda`` — the torch side on ``cuda`` (``--device cuda``), synchronised at the end of
  each call; scratchnn itself stays on the CPU.
* ``naive`` — the readable loop version of the op, where the library has one (small shape).

The upstream gradient ``dout`` is random (fixed per run), never ones. A case whose ops are not
(yet) in scratchnn is reported as *unavailable*, with the missing names, and never timed.

FLOPs count multiply-adds as 2 and only the matrix-product work (bias adds and elementwise
gate math are left out); forward+backward = 3× forward wherever the backward is two products of
the forward's size (one for the input gradient, one for the weight gradient). Each case's
``flop_formula`` says exactly what it counts.

Every case also carries its NumPy **floor** (``floor``, built from :mod:`benchmarks.floors`):
the work the op must do — its matrix products by shape, the elements it must read and write,
its transcendental passes — which the run prices at the rates NumPy reaches on this machine.
Targets (float32, forward+backward): ``floor_target`` bounds time / floor, ``torch_target``
time / torch; a case meets its targets when it meets every one it has.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from . import floors as fl
from .floors import Floor

__all__ = ["Case", "CASES", "TARGET_NOTE", "select", "missing_requirements"]

Pair = tuple[Callable[[], Any], Callable[[], Any]]
Build = Callable[[np.dtype, bool], dict[str, Pair]]


@dataclass
class Case:
    name: str                        # unique, e.g. "conv2d 64→64 s2"
    op: str                          # the --ops key, e.g. "conv2d"
    family: str                      # activation, linear, conv, pooling, dropout, recurrent, ...
    shape: str                       # the representative shape, in words
    build: Build
    requires: tuple[str, ...]        # "F.conv2d", "nn.LSTM", "naive.conv2d", "train.x"
    flops_fwd: float | None = None
    flops_fwdbwd: float | None = None
    flop_formula: str = ""
    torch_target: float | None = None  # forward+backward time / torch must be ≤ this
    quick: bool = False              # part of --quick
    aliases: tuple[str, ...] = ()    # extra --ops names that select this case
    notes: str = ""
    floor: Floor | None = None       # the NumPy floor's work (benchmarks.floors)
    floor_target: float | None = None  # forward+backward time / floor must be ≤ this
    inputs: Callable | None = None   # functional cases: make_args(rng, dtype) (for --peers)
    kwargs: dict | None = None       # and the op's keyword arguments

    def targets(self) -> list[tuple[str, float]]:
        """``[("floor", limit), ("torch", limit)]``: the targets this case has."""
        return [(k, v) for k, v in (("floor", self.floor_target), ("torch", self.torch_target))
                if v is not None]

    @property
    def keys(self) -> set[str]:
        return {self.name, self.op, self.family, *self.aliases}


TARGET_NOTE = ("Targets are for float32 forward+backward at the run's thread count: "
               "'floor ≤ x' bounds scratchnn's time / its NumPy floor, 'torch ≤ x' its time / "
               "torch CPU's; a case meets its targets when it meets every one.")


# -- availability ----------------------------------------------------------------------------

_MODULES = {"F": "scratchnn.functional", "nn": "scratchnn.nn",
            "naive": "scratchnn.textbook", "train": "benchmarks.train", "gpt": "benchmarks.gpt"}


def _resolve(req: str) -> Any:
    where, _, attr = req.partition(".")
    return getattr(importlib.import_module(_MODULES[where]), attr)


def missing_requirements(case: Case) -> list[str]:
    """The names in ``case.requires`` that do not exist (empty when the case can run).

    A module that does not exist counts as missing; a module that exists but fails to import
    raises its error (a broken library is an error, not a missing op).
    """
    missing = []
    for req in case.requires:
        where, _, attr = req.partition(".")
        try:
            module = importlib.import_module(_MODULES[where])
        except ModuleNotFoundError as e:
            if e.name != _MODULES[where]:
                raise
            missing.append(req)
            continue
        if not hasattr(module, attr):
            missing.append(req)
    return missing


# -- helpers: inputs and the two sides -------------------------------------------------------

def _randn(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype,
           scale: float = 1.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(dtype)


def _synced(fn: Callable[[], Any], device: str) -> Callable[[], Any]:
    """``fn`` that, on CUDA, also waits for the device (so the time includes the kernels)."""
    if device != "cuda":
        return fn
    import torch

    def run():
        out = fn()
        torch.cuda.synchronize()
        return out
    return run


def _tensors(args: tuple, device: str) -> tuple[list, list]:
    """Torch copies of ``args``: floating arrays require grad (returned second), ints → int64."""
    import torch
    out, diff = [], []
    for a in args:
        if isinstance(a, np.ndarray) and a.dtype.kind == "f":
            t = torch.tensor(a, device=device, requires_grad=True)
            diff.append(t)
        elif isinstance(a, np.ndarray):
            t = torch.tensor(a.astype(np.int64), device=device)
        else:
            t = a
        out.append(t)
    return out, diff


def _functional_sides(sn_op: Callable, torch_op: Callable, args: tuple, kwargs: dict,
                      dout: np.ndarray, cuda: bool, torch_kwargs: dict | None = None
                      ) -> dict[str, Pair]:
    """scratchnn (via vjp) and torch (via autograd.grad) pairs for one functional op."""
    from scratchnn import vjp
    import torch

    def sn_fwd():
        return sn_op(*args, **kwargs)

    def sn_fwdbwd():
        _, pullback = vjp(sn_op, *args, **kwargs)
        return pullback(dout)

    sides = {"scratchnn": (sn_fwd, sn_fwdbwd)}
    tkw = kwargs if torch_kwargs is None else torch_kwargs
    for side, device in (("torch", "cpu"), ("torch_cuda", "cuda")):
        if side == "torch_cuda" and not cuda:
            continue
        targs, diff = _tensors(args, device)
        tdout = torch.tensor(dout, device=device)

        def t_fwd(targs=targs):
            return torch_op(*targs, **tkw)

        def t_fwdbwd(targs=targs, diff=diff, tdout=tdout):
            return torch.autograd.grad(torch_op(*targs, **tkw), diff, tdout)

        sides[side] = (_synced(t_fwd, device), _synced(t_fwdbwd, device))
    return sides


def _op_case(name: str, op: str, family: str, shape: str, make_args: Callable,
             kwargs: dict | None = None, torch_op: Callable | str | None = None,
             torch_kwargs: dict | None = None, naive: str | None = None,
             **case_kw: Any) -> Case:
    """A case for one functional op ``F.<op>`` against ``torch.nn.functional.<op>``.

    ``make_args(rng, dtype)`` returns the positional arguments; ``naive`` names the loop
    version in ``scratchnn.textbook`` (the by-pixel ``*_loops`` editions) to time as well.
    """
    kwargs = kwargs or {}
    requires = (f"F.{op}",) + ((f"naive.{naive}",) if naive else ())

    def build(dtype: np.dtype, cuda: bool) -> dict[str, Pair]:
        import torch.nn.functional as TF
        rng = np.random.default_rng(0)
        args = make_args(rng, dtype)
        sn_op = _resolve(f"F.{op}")
        top = getattr(TF, op) if torch_op is None else (
            getattr(TF, torch_op) if isinstance(torch_op, str) else torch_op)
        out = sn_op(*args, **kwargs)
        dout = _randn(rng, out.shape, dtype)
        sides = _functional_sides(sn_op, top, args, kwargs, dout, cuda, torch_kwargs)
        if naive:
            sides["naive"] = _functional_sides(_resolve(f"naive.{naive}"), top, args, kwargs,
                                               dout, False, torch_kwargs)["scratchnn"]
        return sides

    return Case(name, op, family, shape, build, requires, inputs=make_args, kwargs=kwargs,
                **case_kw)


# -- the cases -------------------------------------------------------------------------------

CASES: list[Case] = []


def _add(case: Case) -> None:
    CASES.append(case)


# linear: y = x Wᵀ + b
_N, _IN, _OUT = 256, 1024, 1024
_add(_op_case(
    "linear 1024→1024", "linear", "linear", f"x ({_N}, {_IN}), W ({_OUT}, {_IN}), b ({_OUT})",
    lambda rng, dt: (_randn(rng, (_N, _IN), dt), _randn(rng, (_OUT, _IN), dt, _IN ** -0.5),
                     _randn(rng, (_OUT,), dt)),
    flops_fwd=2.0 * _N * _IN * _OUT, flops_fwdbwd=6.0 * _N * _IN * _OUT,
    flop_formula="fwd 2·N·in·out; fwd+bwd 3× (dx = dy W, dW = dyᵀ x)",
    floor=fl.linear_work(_N, _IN, _OUT), floor_target=2.0, quick=True))

# elementwise activations on 4M elements
_ACT_SHAPE = (64, 65536)
_ACT_DESC = "x (64, 65536) = 4.2M elements"
_ACT_N = _ACT_SHAPE[0] * _ACT_SHAPE[1]
# the transcendentals each formula needs (each counted once: a backward reuses the forward's)
_ACT_EXP = {"relu": (0, ""), "tanh": (1, "tanh"), "sigmoid": (1, "exp"),
            "leaky_relu": (0, ""), "elu": (1, "exp; the backward from y"),
            "gelu": (2, "erf and exp(−x²/2)"), "silu": (1, "σ"), "softplus": (2, "exp, log1p")}
for _name in ("relu", "tanh", "sigmoid", "leaky_relu", "elu", "gelu", "silu", "softplus"):
    _add(_op_case(
        _name, _name, "activation", _ACT_DESC,
        lambda rng, dt: (_randn(rng, _ACT_SHAPE, dt),), {},
        floor=fl.elementwise(_ACT_N, *_ACT_EXP[_name]), floor_target=2.0,
        quick=_name in ("relu", "tanh", "sigmoid"),
        notes="elementwise, default arguments: no FLOPs counted (memory-bound; the smooth ones "
              "also bound by exp/tanh/erf)"))


# log_softmax + nll_loss: the classifier's loss, as one chain
_LN, _LC = 4096, 1000


def _lsm_inputs(rng: np.random.Generator, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    return _randn(rng, (_LN, _LC), dtype), rng.integers(0, _LC, size=_LN)


def _build_logsoftmax_nll(dtype: np.dtype, cuda: bool) -> dict[str, Pair]:
    import torch
    import torch.nn.functional as TF
    from scratchnn import vjp
    F = importlib.import_module("scratchnn.functional")
    x, target = _lsm_inputs(np.random.default_rng(0), dtype)
    one = np.ones((), dtype)

    def sn_fwd():
        return F.nll_loss(F.log_softmax(x, dim=1), target)

    def sn_fwdbwd():
        z, pb_z = vjp(F.log_softmax, x, dim=1)
        _, pb_l = vjp(F.nll_loss, z, target)
        dz = pb_l(one)[0]
        return pb_z(dz)

    sides = {"scratchnn": (sn_fwd, sn_fwdbwd)}
    for side, device in (("torch", "cpu"), ("torch_cuda", "cuda")):
        if side == "torch_cuda" and not cuda:
            continue
        xt = torch.tensor(x, device=device, requires_grad=True)
        tt = torch.tensor(target, device=device)

        def t_fwd(xt=xt, tt=tt):
            return TF.nll_loss(TF.log_softmax(xt, dim=1), tt)

        def t_fwdbwd(xt=xt, tt=tt):
            return torch.autograd.grad(TF.nll_loss(TF.log_softmax(xt, dim=1), tt), (xt,))

        sides[side] = (_synced(t_fwd, device), _synced(t_fwdbwd, device))
    return sides


_add(Case("log_softmax+nll_loss", "log_softmax+nll_loss", "loss",
          f"logits ({_LN}, {_LC}), int targets ({_LN},), reduction='mean'",
          _build_logsoftmax_nll, ("F.log_softmax", "F.nll_loss"),
          floor=fl.softmax_work(_LN * _LC), floor_target=2.0, quick=True,
          inputs=_lsm_inputs, kwargs={},
          aliases=("log_softmax", "nll_loss")))


# dropout
def _build_dropout(dtype: np.dtype, cuda: bool) -> dict[str, Pair]:
    import torch.nn.functional as TF
    F = importlib.import_module("scratchnn.functional")
    rng = np.random.default_rng(0)
    x = _randn(rng, _ACT_SHAPE, dtype)
    dout = _randn(rng, _ACT_SHAPE, dtype)
    return _functional_sides(F.dropout, TF.dropout, (x,), {"p": 0.5, "training": True}, dout,
                             cuda)


_add(Case("dropout p=0.5", "dropout", "dropout", _ACT_DESC + ", p=0.5, training=True",
          _build_dropout, ("F.dropout",), floor=fl.dropout_work(_ACT_N), floor_target=2.0,
          quick=True,
          notes="each call draws a fresh mask on both sides"))


# convolution: the chapter's first layer and a 64→64 block at stride 1 and 2
def _conv_flops(n: int, c_in: int, c_out: int, oh: int, ow: int, k: int) -> float:
    return 2.0 * n * c_out * oh * ow * c_in * k * k


_CONV_FORMULA = ("fwd 2·N·C_out·oH·oW·C_in·kH·kW; fwd+bwd 3× (dx and dW are products of the "
                 "same size)")
_CONVT_FORMULA = ("fwd 2·N·C_in·H·W·C_out·kH·kW (H, W: the input's; the adjoint of the conv "
                  "with the same tensors); fwd+bwd 3×")

# (label, N, C_in, C_out, H (conv input), stride, padding, quick)
_CONV_SHAPES = (("1→16 28×28 (first layer)", 64, 1, 16, 28, 1, 0, True),
                ("64→64 32×32 s1", 32, 64, 64, 32, 1, 1, True),
                ("64→64 32×32 s2", 32, 64, 64, 32, 2, 1, False))


def _conv_out(h: int, k: int, s: int, p: int) -> int:
    return (h + 2 * p - k) // s + 1


def _conv_floor_target(channels: int) -> float:
    """The 64→64 convolutions: ≤ 1.5× their floor; the others ≤ 2×."""
    return 1.5 if channels == 64 else 2.0


for _label, _n, _ci, _co, _h, _s, _p, _q in _CONV_SHAPES:
    _oh = _conv_out(_h, 3, _s, _p)
    _fl = _conv_flops(_n, _ci, _co, _oh, _oh, 3)
    _add(_op_case(
        f"conv2d {_label}", "conv2d", "conv",
        f"x ({_n}, {_ci}, {_h}, {_h}), W ({_co}, {_ci}, 3, 3), b, stride {_s}, padding {_p}",
        lambda rng, dt, _n=_n, _ci=_ci, _co=_co, _h=_h: (
            _randn(rng, (_n, _ci, _h, _h), dt),
            _randn(rng, (_co, _ci, 3, 3), dt, (_ci * 9) ** -0.5), _randn(rng, (_co,), dt)),
        {"stride": _s, "padding": _p},
        flops_fwd=_fl, flops_fwdbwd=3 * _fl, flop_formula=_CONV_FORMULA,
        floor=fl.conv_work(_n, _ci, _co, _oh, _oh, 3), floor_target=_conv_floor_target(_co),
        quick=_q))
    # the transposed convolution with the same tensors: conv's output -> conv's input shape
    _op = _h - ((_oh - 1) * _s - 2 * _p + 3)                   # output_padding to land on _h
    _add(_op_case(
        f"conv_transpose2d {_label}", "conv_transpose2d", "conv",
        f"x ({_n}, {_co}, {_oh}, {_oh}), W ({_co}, {_ci}, 3, 3), b, stride {_s}, padding {_p}, "
        f"output_padding {_op} -> ({_n}, {_ci}, {_h}, {_h})",
        lambda rng, dt, _n=_n, _ci=_ci, _co=_co, _oh=_oh: (
            _randn(rng, (_n, _co, _oh, _oh), dt),
            _randn(rng, (_co, _ci, 3, 3), dt, (_co * 9) ** -0.5), _randn(rng, (_ci,), dt)),
        {"stride": _s, "padding": _p, "output_padding": _op},
        flops_fwd=_fl, flops_fwdbwd=3 * _fl, flop_formula=_CONVT_FORMULA,
        floor=fl.conv_transpose_work(_n, _co, _ci, _oh, _oh, 3),
        floor_target=_conv_floor_target(_ci), quick=_q and _s == 1 and _ci > 1))

# the ConvNet's second convolution alone: where most of its training step goes (no target of
# its own; the step's target is the ConvNet case's)
_fl2 = _conv_flops(32, 16, 32, 24, 24, 3)
_add(_op_case(
    "conv2d 16→32 26×26 (ConvNet layer 2)", "conv2d", "conv",
    "x (32, 16, 26, 26), W (32, 16, 3, 3), b: the chapter ConvNet's second layer, batch 32",
    lambda rng, dt: (_randn(rng, (32, 16, 26, 26), dt), _randn(rng, (32, 16, 3, 3), dt, 1 / 12),
                     _randn(rng, (32,), dt)),
    {}, flops_fwd=_fl2, flops_fwdbwd=3 * _fl2, flop_formula=_CONV_FORMULA, quick=True,
    floor=fl.conv_work(32, 16, 32, 24, 24, 3), floor_target=2.0, aliases=("convnet_layer2",),
    notes="the ConvNet step's largest share"))

# a DCGAN-style generator's upsampling layer: stride 2, kernel 4, padding 1 doubles H and W
_DN, _DCI, _DCO, _DH = 32, 64, 32, 16
_dfl = 2.0 * _DN * _DCI * _DH * _DH * _DCO * 16
_add(_op_case(
    "conv_transpose2d 64→32 16×16 s2 k4 (DCGAN)", "conv_transpose2d", "conv",
    f"x ({_DN}, {_DCI}, {_DH}, {_DH}), W ({_DCI}, {_DCO}, 4, 4), b, stride 2, padding 1 -> "
    f"({_DN}, {_DCO}, {2 * _DH}, {2 * _DH})",
    lambda rng, dt: (_randn(rng, (_DN, _DCI, _DH, _DH), dt),
                     _randn(rng, (_DCI, _DCO, 4, 4), dt, (_DCI * 4) ** -0.5),
                     _randn(rng, (_DCO,), dt)),
    {"stride": 2, "padding": 1}, flops_fwd=_dfl, flops_fwdbwd=3 * _dfl,
    flop_formula=_CONVT_FORMULA, floor=fl.conv_transpose_work(_DN, _DCI, _DCO, _DH, _DH, 4),
    floor_target=2.0, torch_target=1.5, quick=True, aliases=("dcgan",),
    notes="the upsampling layer of a DCGAN-style generator"))


# the readable loop versions, on a small shape: conv2d (C_in → C_out) and its adjoint
_NN, _NC, _NH = 2, (3, 4), 8                                     # N, (C_in, C_out), H = W
_nfl = _conv_flops(_NN, _NC[0], _NC[1], _NH, _NH, 3)
for _op_name, (_xc, _bc), _formula, _q in (("conv2d", (0, 1), _CONV_FORMULA, True),
                                           ("conv_transpose2d", (1, 0), _CONVT_FORMULA, False)):
    _add(_op_case(
        f"{_op_name} naive vs vectorised (small)", _op_name, "conv",
        f"x ({_NN}, {_NC[_xc]}, {_NH}, {_NH}), W ({_NC[1]}, {_NC[0]}, 3, 3), "
        f"b ({_NC[_bc]},), padding 1",
        lambda rng, dt, _xc=_xc, _bc=_bc: (
            _randn(rng, (_NN, _NC[_xc], _NH, _NH), dt),
            _randn(rng, (_NC[1], _NC[0], 3, 3), dt),
            _randn(rng, (_NC[_bc],), dt)),
        {"padding": 1}, naive=f"{_op_name}_loops", flops_fwd=_nfl, flops_fwdbwd=3 * _nfl,
        flop_formula=_formula, quick=_q, aliases=("naive",),
        floor=(fl.conv_work(_NN, 3, 4, _NH, _NH, 3) if _op_name == "conv2d"
               else fl.conv_transpose_work(_NN, 4, 3, _NH, _NH, 3)),
        notes="the naive column is the loop version; no target (a teaching comparison)"))


# pooling: N=32, C=64, 32×32 with k2 s2 and k3 s2 p1; min pool against torch's -max_pool(-x)
def _neg_max_pool2d(x, *args, **kw):
    import torch.nn.functional as TF
    return -TF.max_pool2d(-x, *args, **kw)


_POOL_X = (32, 64, 32, 32)
_POOL_N = 32 * 64 * 32 * 32                  # both kernels give 16×16 outputs
for _pool in ("max_pool2d", "min_pool2d", "avg_pool2d"):
    for _k, _s, _p in ((2, 2, 0), (3, 2, 1)):
        _add(_op_case(
            f"{_pool} k{_k} s{_s} p{_p}", _pool, "pooling",
            f"x {_POOL_X}, kernel {_k}, stride {_s}, padding {_p}",
            lambda rng, dt: (_randn(rng, _POOL_X, dt),),
            {"kernel_size": _k, "stride": _s, "padding": _p},
            torch_op=_neg_max_pool2d if _pool == "min_pool2d" else None,
            floor=fl.pool_work(_POOL_N, _POOL_N // 4, indices=_pool != "avg_pool2d"),
            floor_target=2.0, quick=_k == 2,
            notes=("torch has no min pool: its side is -max_pool2d(-x)"
                   if _pool == "min_pool2d" else "")))


# recurrent: LSTM and GRU, T=50, B=32, 128 -> 256, one layer, modules with the same weights
_T, _B, _I, _H = 50, 32, 128, 256


def _rnn_builder(kind: str) -> Build:
    def build(dtype: np.dtype, cuda: bool) -> dict[str, Pair]:
        import torch
        snn = importlib.import_module("scratchnn.nn")
        rng = np.random.default_rng(0)
        torch.manual_seed(0)
        tdtype = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[
            np.dtype(dtype)]
        tm = getattr(torch.nn, kind)(_I, _H).to(tdtype)
        m = getattr(snn, kind)(_I, _H).to(dtype)
        m.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
        x = _randn(rng, (_T, _B, _I), dtype)
        dout = _randn(rng, (_T, _B, _H), dtype)

        def sn_fwd():
            return m(x)

        def sn_fwdbwd():
            m.zero_grad()
            m(x)
            return m.backward(dout)

        sides = {"scratchnn": (sn_fwd, sn_fwdbwd)}
        for side, device in (("torch", "cpu"), ("torch_cuda", "cuda")):
            if side == "torch_cuda" and not cuda:
                continue
            tmd = tm if device == "cpu" else getattr(torch.nn, kind)(_I, _H).to(tdtype).to(device)
            if device != "cpu":
                tmd.load_state_dict(tm.state_dict())
            xt = torch.tensor(x, device=device, requires_grad=True)
            dt = torch.tensor(dout, device=device)

            def t_fwd(tmd=tmd, xt=xt):
                return tmd(xt)

            def t_fwdbwd(tmd=tmd, xt=xt, dt=dt):
                tmd.zero_grad(set_to_none=True)
                xt.grad = None
                out, _ = tmd(xt)
                out.backward(dt)
                return xt.grad

            sides[side] = (_synced(t_fwd, device), _synced(t_fwdbwd, device))
        return sides
    return build


for _kind, _gates in (("LSTM", 4), ("GRU", 3)):
    _fl = 2.0 * _T * _B * _gates * _H * (_I + _H)
    _add(Case(f"{_kind} T={_T} B={_B} {_I}→{_H}", _kind.lower(), "recurrent",
              f"x ({_T}, {_B}, {_I}), hidden {_H}, 1 layer, bias, h0 = 0; "
              f"dout on the output sequence only",
              _rnn_builder(_kind), (f"nn.{_kind}",), flops_fwd=_fl, flops_fwdbwd=3 * _fl,
              flop_formula=(f"fwd 2·T·B·{_gates}H·(I + H) (the gate GEMMs); fwd+bwd 3× "
                            f"(input, hidden and weight gradients)"),
              floor=fl.recurrent_work(_T, _B, _I, _H, _gates), floor_target=2.0,
              torch_target=1.3 if _kind == "LSTM" else None, quick=True,
              notes="modules (nn.{0}) with identical weights; each fwd+bwd clears the "
                    "parameters' .grad first, as a training step does".format(_kind)))


# the chapter's ConvNet: one training step (forward, NLL loss, backward, Adadelta), batch 32
_CB = 32
_CNN_FWD = (_conv_flops(_CB, 1, 16, 26, 26, 3) + _conv_flops(_CB, 16, 32, 24, 24, 3)
            + 2.0 * _CB * 32 * 12 * 12 * 64 + 2.0 * _CB * 64 * 10)
_CNN_STEP = 3 * _CNN_FWD - _conv_flops(_CB, 1, 16, 26, 26, 3)   # no input gradient at layer 1


_CNN_PARAMS = (16 * 9 + 16) + (32 * 16 * 9 + 32) + (4608 * 64 + 64) + (64 * 10 + 10)
_CNN_FLOOR = fl.total([
    fl.conv_work(_CB, 1, 16, 26, 26, 3, input_grad=False), fl.elementwise(_CB * 16 * 26 * 26),
    fl.conv_work(_CB, 16, 32, 24, 24, 3), fl.elementwise(_CB * 32 * 24 * 24),
    fl.pool_work(_CB * 32 * 24 * 24, _CB * 32 * 12 * 12, indices=True),
    fl.elementwise(_CB * 32 * 12 * 12), fl.linear_work(_CB, 4608, 64), fl.elementwise(_CB * 64),
    fl.elementwise(_CB * 64), fl.linear_work(_CB, 64, 10), fl.softmax_work(_CB * 10),
    fl.adadelta_work(_CNN_PARAMS)],
    "the sum of its parts: conv 1→16 (no dx), relu, conv 16→32, relu, max_pool 2, dropout2d "
    "(a multiply: 5 passes), linear 4608→64, relu, dropout, linear 64→10, log_softmax + nll, "
    "zero_grad + Adadelta")


def _build_convnet(dtype: np.dtype, cuda: bool) -> dict[str, Pair]:
    """One training step of ``benchmarks.train`` on each side, identical weights and masks.

    As in ``python -m benchmarks.train``'s epoch timing, the dropout keep-masks are drawn once
    with NumPy (outside the timed step) and injected into both models.
    """
    import torch
    train = importlib.import_module("benchmarks.train")
    rng = np.random.default_rng(0)
    x = rng.random((_CB, 1, 28, 28)).astype(dtype)
    y = rng.integers(0, 10, size=_CB)
    masks = train.draw_masks(rng, _CB, dtype)
    model = train.build_scratchnn_convnet(dtype, seed=0, in_hw=(28, 28))
    opt = train.make_scratchnn_optimizer(model, lr=0.5)
    tmodel = train.build_torch_convnet(model)
    topt = train.make_torch_optimizer(tmodel, lr=0.5)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    sides = {"scratchnn": (lambda: model(x),
                           lambda: train.scratchnn_train_step(model, opt, x, y, masks)),
             "torch": (lambda: tmodel(xt),
                       lambda: train.torch_train_step(tmodel, topt, xt, yt, masks))}
    train.scratchnn_train_step(model, opt, x, y, masks)          # sets the masks for fwd
    train.torch_train_step(tmodel, topt, xt, yt, masks)
    if cuda:                                  # torch_train_step's masks live on the CPU
        tmc = train.build_torch_convnet(model).cuda()
        toc = train.make_torch_optimizer(tmc, lr=0.5)
        xc, yc = xt.cuda(), yt.cuda()
        tmc[train.DROP2D_INDEX].mask = torch.from_numpy(masks.channel).cuda()
        tmc[train.DROP_INDEX].mask = torch.from_numpy(masks.hidden).cuda()

        def c_step():                         # torch_train_step's body, masks already on CUDA
            tmc.train()
            toc.zero_grad()
            loss = torch.nn.functional.nll_loss(tmc(xc), yc)
            loss.backward()
            toc.step()
            return float(loss.item())

        sides["torch_cuda"] = (_synced(lambda: tmc(xc), "cuda"), c_step)
    return sides


_add(Case("ConvNet training step", "convnet", "train",
          f"the chapter's ConvNet on ({_CB}, 1, 28, 28) digits: conv 1→16 → relu → conv 16→32 "
          f"→ relu → max_pool 2 → dropout2d → linear 4608→64 → relu → dropout → linear 64→10 "
          f"→ log_softmax; NLL loss; Adadelta step",
          _build_convnet, tuple(f"train.{n}" for n in (
              "build_scratchnn_convnet", "make_scratchnn_optimizer", "build_torch_convnet",
              "make_torch_optimizer", "draw_masks", "scratchnn_train_step", "torch_train_step",
              "DROP2D_INDEX", "DROP_INDEX")),
          flops_fwd=_CNN_FWD, flops_fwdbwd=_CNN_STEP,
          flop_formula=("fwd: the two convs' and two linears' products; step: 3× that minus the "
                        "first conv's input gradient (never needed)"),
          floor=_CNN_FLOOR, floor_target=2.0, quick=True, aliases=("train",),
          notes="fwd = the model's forward in training mode; fwd+bwd = one whole training step "
                "(zero_grad, forward, loss, backward, optimizer step) — the per-epoch ratio"))


# normalization: batch norm over (N, H, W) per channel, layer norm over the last axis
_BN_SHAPE, _LN_SHAPE = (32, 64, 32, 32), (4096, 768)
_add(_op_case(
    "batch_norm 2d", "batch_norm", "normalization",
    "x (32, 64, 32, 32) = 2.1M elements, γ, β (64,), training=True (batch statistics)",
    lambda rng, dt: (_randn(rng, _BN_SHAPE, dt), None, None, _randn(rng, (64,), dt),
                     _randn(rng, (64,), dt)), {"training": True},
    floor=fl.elementwise(32 * 64 * 32 * 32, what="the statistics' reductions fused into the "
                                                 "passes"),
    floor_target=2.0, aliases=("batchnorm", "bn"),
    notes="no running statistics (an O(C) update either way); memory-bound: no FLOPs counted"))
_add(_op_case(
    "layer_norm 768", "layer_norm", "normalization",
    "x (4096, 768) = 3.1M elements, normalized_shape (768,), γ, β (768,)",
    lambda rng, dt: (_randn(rng, _LN_SHAPE, dt), (768,), _randn(rng, (768,), dt),
                     _randn(rng, (768,), dt)),
    floor=fl.elementwise(4096 * 768, what="the statistics' reductions fused into the passes"),
    floor_target=2.0, aliases=("layernorm", "ln"),
    notes="memory-bound: no FLOPs counted"))


# self-attention: nn.MultiheadAttention, batch_first, no attention weights returned
_AB, _AS, _AE, _AH = 16, 128, 256, 8


def _build_mha(dtype: np.dtype, cuda: bool) -> dict[str, Pair]:
    import torch
    snn = importlib.import_module("scratchnn.nn")
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    tdtype = torch.float32 if np.dtype(dtype) == np.float32 else torch.float64
    tm = torch.nn.MultiheadAttention(_AE, _AH, batch_first=True).to(tdtype)
    m = snn.MultiheadAttention(_AE, _AH, batch_first=True)
    m.load_state_dict({k: v.detach().numpy().astype(dtype) for k, v in tm.state_dict().items()})
    x = _randn(rng, (_AB, _AS, _AE), dtype)
    dout = _randn(rng, (_AB, _AS, _AE), dtype)

    def sn_fwd():
        return m(x, x, x, need_weights=False)

    def sn_fwdbwd():
        m.zero_grad()
        m(x, x, x, need_weights=False)
        return m.backward(dout)

    sides = {"scratchnn": (sn_fwd, sn_fwdbwd)}
    for side, device in (("torch", "cpu"), ("torch_cuda", "cuda")):
        if side == "torch_cuda" and not cuda:
            continue
        tmd = tm if device == "cpu" else torch.nn.MultiheadAttention(
            _AE, _AH, batch_first=True).to(tdtype).to(device)
        if device != "cpu":
            tmd.load_state_dict(tm.state_dict())
        xt = torch.tensor(x, device=device, requires_grad=True)
        dt = torch.tensor(dout, device=device)

        def t_fwd(tmd=tmd, xt=xt):
            return tmd(xt, xt, xt, need_weights=False)

        def t_fwdbwd(tmd=tmd, xt=xt, dt=dt):
            tmd.zero_grad(set_to_none=True)
            xt.grad = None
            tmd(xt, xt, xt, need_weights=False)[0].backward(dt)
            return xt.grad

        sides[side] = (_synced(t_fwd, device), _synced(t_fwdbwd, device))
    return sides


_mfl = (2.0 * _AB * _AS * _AE * 4 * _AE + 2 * 2.0 * _AB * _AS * _AS * _AE)
_add(Case("MultiheadAttention fwd+bwd", "multihead_attention", "attention",
          f"self-attention x ({_AB}, {_AS}, {_AE}), {_AH} heads, batch_first, "
          f"need_weights=False", _build_mha, ("nn.MultiheadAttention",),
          flops_fwd=_mfl, flops_fwdbwd=3 * _mfl,
          flop_formula="fwd: projections 2·B·S·E·4E, scores and values 2·2·B·S²·E; fwd+bwd 3×",
          floor=fl.attention_work(_AB, _AS, _AE, _AH), floor_target=2.0, torch_target=1.5,
          quick=True, aliases=("mha", "MultiheadAttention"),
          notes="modules with identical weights (torch's state_dict loaded); fwd+bwd clears "
                "the parameters' .grad first"))


# a tiny GPT's training step (benchmarks.gpt, as python -m benchmarks.train_gpt trains it)
_GB, _GT, _GL, _GH, _GE, _GV = 16, 64, 2, 4, 128, 96


def _build_gpt_step(dtype: np.dtype, cuda: bool) -> dict[str, Pair]:
    """One AdamW step of benchmarks.gpt's model on each side, same weights and batch; dropout 0
    (so that neither side draws masks inside the clock)."""
    import torch
    G = importlib.import_module("benchmarks.gpt")
    cfg = G.GPTConfig(_GV, _GT, _GL, _GH, _GE, 0.0)
    rng = np.random.default_rng(0)
    x = rng.integers(0, _GV, size=(_GB, _GT))
    y = rng.integers(0, _GV, size=(_GB, _GT))
    model = G.build_scratchnn_gpt(cfg, dtype, 0)
    opt = G.make_scratchnn_adamw(model, 1e-3, 0.1)
    tmodel = G.build_torch_gpt(model)
    topt = G.make_torch_adamw(tmodel, model, 1e-3, 0.1)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    return {"scratchnn": (lambda: model(x),
                          lambda: G.scratchnn_gpt_step(model, opt, x, y, 1.0)),
            "torch": (lambda: tmodel(xt), lambda: G.torch_gpt_step(tmodel, topt, xt, yt, 1.0))}


_GROWS = _GB * _GT
_GPT_PARAMS = (_GV * _GE + _GT * _GE + _GL * (12 * _GE * _GE + 13 * _GE) + 2 * _GE
               + _GE * _GV)                                   # the head has no bias
_GPT_LAYER = [fl.elementwise(_GROWS * _GE, what="layer norm"),
              fl.attention_work(_GB, _GT, _GE, _GH), fl.elementwise(_GROWS * _GE),
              fl.elementwise(_GROWS * _GE, what="layer norm"),
              fl.linear_work(_GROWS, _GE, 4 * _GE), fl.elementwise(_GROWS * 4 * _GE, 2, "gelu"),
              fl.linear_work(_GROWS, 4 * _GE, _GE), fl.elementwise(_GROWS * _GE)]
_GPT_FLOOR = fl.total(
    [fl.elementwise(_GROWS * _GE, what="embeddings")] + _GPT_LAYER * _GL
    + [fl.elementwise(_GROWS * _GE, what="final layer norm"),
       fl.linear_work(_GROWS, _GE, _GV), fl.softmax_work(_GROWS * _GV),
       fl.adadelta_work(_GPT_PARAMS)],
    "the sum of its parts: embeddings, per block two layer norms, self-attention, the "
    "residual adds, the MLP's two linears and gelu; the final layer norm, the head, "
    "cross-entropy; zero_grad + the optimizer's passes over the parameters (counted as "
    "Adadelta's eight; clip_grad_norm_ not counted)")
_add(Case("GPT training step", "gpt", "train",
          f"benchmarks.gpt: {_GL} blocks (embed {_GE}, {_GH} heads, MLP {4 * _GE}), context "
          f"{_GT}, vocab {_GV}, batch {_GB}; cross-entropy, clip_grad_norm_ 1.0, AdamW; "
          f"dropout 0", _build_gpt_step,
          tuple(f"gpt.{n}" for n in ("GPTConfig", "build_scratchnn_gpt", "build_torch_gpt",
                                     "make_scratchnn_adamw", "make_torch_adamw",
                                     "scratchnn_gpt_step", "torch_gpt_step")),
          floor=_GPT_FLOOR, floor_target=2.0, quick=False, aliases=("gpt_step",),
          notes="fwd = the model's forward; fwd+bwd = one whole training step"))


def select(ops: list[str] | None, quick: bool) -> list[Case]:
    """The cases named by ``--ops`` (op, family, alias or full name), else all (``--quick``:
    the quick subset). Unknown names raise ``ValueError`` listing the valid ones."""
    if not ops:
        return [c for c in CASES if c.quick or not quick]
    known = set().union(*(c.keys for c in CASES))
    unknown = [o for o in ops if o not in known]
    if unknown:
        valid = sorted({c.op for c in CASES} | {c.family for c in CASES}
                       | {a for c in CASES for a in c.aliases})
        raise ValueError(f"--ops: unknown name(s) {', '.join(unknown)}; valid: "
                         f"{', '.join(valid)} (or a full case name)")
    return [c for c in CASES if c.keys & set(ops)]
