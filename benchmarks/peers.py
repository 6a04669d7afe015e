"""``--peers``: the NumPy deep-learning libraries a learner might pick instead, on the cases
where a peer has the op.

A peer is timed only after its forward output matches torch's on the case's own inputs
(float32: ``rtol 1e-3, atol 1e-4``; float64: ``rtol 1e-6, atol 1e-8``); a mismatch is reported
with its largest difference and not timed. Its forward+backward is timed interleaved with
scratchnn's, computing the gradient of every floating input with the case's random upstream
gradient, and the report gives its time and ``peer / scratchnn``.

Which libraries (all installed from the package registry and run offline, checked 2026-12):

* **MyGrad** (``pip install mygrad``, the ``peers`` extra) — NumPy-only autograd with
  ``mygrad.nnet``: linear (``matmul``), relu, tanh, sigmoid, leaky_relu, elu, logsoftmax with
  negative_log_likelihood, ``conv_nd`` (any stride and padding), ``max_pool`` (no padding),
  batchnorm.
* **autograd** (HIPS, ``pip install autograd``) — differentiates NumPy code; it has no layers,
  so only the cases that are one NumPy expression run: linear, relu (``maximum``), tanh,
  sigmoid (``scipy.special.expit``), log_softmax + nll (``logsumexp``).

Left out (see :data:`LEFT_OUT`): tinygrad, minitorch, numpy-ml, chainer, micrograd, nnfs.
"""
from __future__ import annotations

import importlib
import importlib.metadata
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

__all__ = ["PEERS", "LEFT_OUT", "Unsupported", "available", "build", "forward_check"]


class Unsupported(ValueError):
    """The peer library has the op but not this argument (reported, not timed)."""

LEFT_OUT = {
    "tinygrad": "not NumPy: it compiles its kernels (clang/LLVM/GPU backends); with no "
                "compiler device here it stops with 'no usable devices'",
    "minitorch": "the registry's package (0.1.0) ships a top-level torch/ package that "
                 "overwrites torch's own torch/__init__.py: never install it beside torch",
    "numpy-ml": "does not import on Python ≥ 3.10 (collections.Hashable)",
    "chainer": "its sdist needs setuptools < 80 to build, and then it does not import under "
               "NumPy 2 (np.sctypes)",
    "micrograd": "scalar-valued: one Python object per element (a 4M-element case would take "
                 "hours)",
    "nnfs": "the book's helper package: data sets and a seed helper, no layers",
}


@dataclass
class Peer:
    name: str
    module: str                     # what must import
    ops: dict[str, Callable]        # case name (or op) -> builder(args, kwargs, dout)


def _mygrad_builders() -> dict[str, Callable]:
    def fn(f: Callable[..., Any]) -> Callable:
        """builder for a MyGrad expression ``f(*tensors, **kwargs)`` of the case's arrays."""
        def build(args: tuple, kwargs: dict, dout: np.ndarray):
            import mygrad as mg
            tensors = [mg.Tensor(a) if isinstance(a, np.ndarray) and a.dtype.kind == "f"
                       else a for a in args]

            def fwd():
                return f(*tensors, **kwargs)

            def fwdbwd():
                y = f(*tensors, **kwargs)
                y.backward(dout)
                return [t.grad for t in tensors if hasattr(t, "grad")]
            return fwd, fwdbwd, lambda: np.asarray(fwd().data)
        return build

    def nnet(name: str) -> Any:
        return getattr(importlib.import_module("mygrad.nnet"), name)

    def linear(x, w, b):
        import mygrad as mg
        return mg.matmul(x, w.T) + b

    def conv(x, w, b, stride=1, padding=0):
        return nnet("conv_nd")(x, w, stride=stride, padding=padding) + b.reshape(1, -1, 1, 1)

    def max_pool(x, kernel_size, stride, padding=0):
        if padding:
            raise Unsupported("mygrad.nnet.max_pool has no padding")
        return nnet("max_pool")(x, (kernel_size, kernel_size), stride)

    def batch_norm(x, rm, rv, g, b, training=True):
        return nnet("batchnorm")(x, gamma=g, beta=b, eps=1e-5)

    def lsm_nll(x, target):
        return nnet("negative_log_likelihood")(nnet("logsoftmax")(x, axis=1), target)

    ops = {"linear": fn(linear), "relu": fn(lambda x: nnet("relu")(x)),
           "tanh": fn(lambda x: nnet("tanh")(x)), "sigmoid": fn(lambda x: nnet("sigmoid")(x)),
           "leaky_relu": fn(lambda x: nnet("leaky_relu")(x, 0.01)),
           "elu": fn(lambda x: nnet("elu")(x, 1.0)), "conv2d": fn(conv),
           "max_pool2d": fn(max_pool), "batch_norm": fn(batch_norm),
           "log_softmax+nll_loss": fn(lsm_nll)}
    return ops


def _autograd_builders() -> dict[str, Callable]:
    def fn(f: Callable[..., Any]) -> Callable:
        def build(args: tuple, kwargs: dict, dout: np.ndarray):
            from autograd import make_vjp
            diff = tuple(i for i, a in enumerate(args)
                         if isinstance(a, np.ndarray) and a.dtype.kind == "f")

            def fwd():
                return f(*args, **kwargs)

            def fwdbwd():
                vjp, _ = make_vjp(f, argnum=diff)(*args, **kwargs)
                return vjp(dout)
            return fwd, fwdbwd, lambda: np.asarray(fwd())
        return build

    def anp() -> Any:
        return importlib.import_module("autograd.numpy")

    def expit(x):
        return importlib.import_module("autograd.scipy.special").expit(x)

    def lsm_nll(x, target):
        lse = importlib.import_module("autograd.scipy.special").logsumexp
        z = x - lse(x, axis=1, keepdims=True)
        return -anp().mean(z[np.arange(len(target)), target])

    return {"linear": fn(lambda x, w, b: anp().dot(x, w.T) + b),
            "relu": fn(lambda x: anp().maximum(x, 0.0)), "tanh": fn(lambda x: anp().tanh(x)),
            "sigmoid": fn(expit), "log_softmax+nll_loss": fn(lsm_nll)}


PEERS = {"mygrad": Peer("mygrad", "mygrad", _mygrad_builders()),
         "autograd": Peer("autograd", "autograd", _autograd_builders())}


def available() -> dict[str, str]:
    """``{peer: version}`` for the peers that import here."""
    out = {}
    for name, p in PEERS.items():
        try:
            importlib.import_module(p.module)
        except ImportError:
            continue
        out[name] = importlib.metadata.version(name)
    return out


def build(peer: str, case: Any, dtype: np.dtype, out_shape: tuple[int, ...]):
    """``(fwd, fwdbwd, forward_array)`` of ``peer`` on ``case``'s inputs, or ``None`` when the
    peer lacks the op (or the case has no functional inputs). The inputs and the upstream
    gradient are the case's own: the same generator, seeded 0, drawn in the same order."""
    if case.inputs is None:
        return None
    b = PEERS[peer].ops.get(case.name) or PEERS[peer].ops.get(case.op)
    if b is None:
        return None
    rng = np.random.default_rng(0)
    args = case.inputs(rng, dtype)
    dout = (rng.standard_normal(out_shape).astype(dtype) if out_shape
            else np.ones((), dtype))                    # a loss: d(loss) = 1, as scratchnn's
    kwargs = dict(case.kwargs or {})
    if case.op in ("max_pool2d",) and kwargs.get("padding"):
        return None                                     # MyGrad's max_pool has no padding
    return b(args, kwargs, dout)


def forward_check(got: np.ndarray, ref: np.ndarray, dtype: np.dtype) -> tuple[bool, str]:
    """Whether a peer's forward matches torch's, and the largest difference in words."""
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    if got.shape != ref.shape:
        return False, f"shape {got.shape}, torch {ref.shape}"
    rtol, atol = (1e-3, 1e-4) if np.dtype(dtype) == np.float32 else (1e-6, 1e-8)
    diff = float(np.max(np.abs(got - ref))) if got.size else 0.0
    ok = bool(np.allclose(got, ref, rtol=rtol, atol=atol))
    return ok, f"max |peer − torch| = {diff:.2g}"
