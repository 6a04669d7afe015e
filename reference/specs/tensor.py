"""Registry entries for the tensor functions (scratchnn.textbook.tensor): reshapes, joins,
element-wise arithmetic with broadcasting, and indexing (repeated picks included)."""
from __future__ import annotations

import numpy as np
import torch
from hypothesis import strategies as st

import scratchnn.textbook.tensor as T
from reference.registry import Case, OpSpec, Reject, register
from reference.values import make, seeds
from scratchnn.autodiff import defop

shapes = st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple)


def _one(regime, extra):
    @st.composite
    def draw(d):
        shape = d(shapes)
        rng = np.random.default_rng(d(seeds))
        return Case((make(shape, rng, regime),) + d(extra(shape)))
    return draw()


def _dims(shape):
    @st.composite
    def draw(d):
        n = len(shape)
        s = d(st.integers(-n, n - 1))
        e = d(st.integers(s % n, n - 1))
        return (s, e)
    return draw()


def _reshape(shape):
    size = int(np.prod(shape))
    return st.sampled_from([(size,), (1, size), (-1, 1), (size, -1)]).map(lambda s: (s,))


def _swap(shape):
    n = len(shape)
    return st.tuples(st.integers(-n, n - 1), st.integers(-n, n - 1))


def _perm(shape):
    return st.permutations(list(range(len(shape)))).map(lambda p: (tuple(p),))


def _index(shape):
    @st.composite
    def draw(d):
        kind = d(st.sampled_from(["slice", "int", "repeat", "mask"]))
        if kind == "slice":
            return ((slice(None, None, d(st.integers(1, 2))),) + (Ellipsis,),)
        if kind == "int":
            return ((Ellipsis, d(st.integers(-shape[-1], shape[-1] - 1))),)
        if kind == "repeat":                                      # picks repeat: np.add.at
            picks = d(st.lists(st.integers(0, shape[0] - 1), min_size=1, max_size=5))
            return (np.array(picks),)
        return ((np.arange(shape[0]) % 2 == 0),)
    return draw()


def _binary(regime):
    @st.composite
    def draw(d):
        shape = d(shapes)
        rng = np.random.default_rng(d(seeds))
        a = make(shape, rng, regime)
        kind = d(st.sampled_from(["same", "broadcast", "lead", "number"]))
        if kind == "number":
            return Case((a, d(st.sampled_from([2.5, -0.75, 3]))))
        bshape = shape if kind == "same" else tuple(
            1 if d(st.booleans()) else n for n in shape)
        if kind == "lead":
            bshape = bshape[1:] or (1,)
        b = make(bshape, rng, regime)
        if d(st.booleans()):
            a, b = b, a                                           # the broadcast one first
        return Case((a, b))
    return draw()


def _divisor(regime):
    return _binary("away").map(lambda c: Case((c.args[0], c.args[1] + 2.0 * np.sign(c.args[1])
                                                if isinstance(c.args[1], np.ndarray)
                                                else c.args[1])))


# a sequence of arrays is one positional argument of cat/stack; the harness differentiates
# array arguments, so the registry checks them through three-argument adapters
def _join_adapter(op, name):
    def forward(a, b, c, dim=0):
        return op.forward((a, b, c), dim)

    def backward(ctx, dy):
        return op.backward(ctx, dy)[0]

    forward.__doc__ = f"{name}((a, b, c), dim) with three array arguments."
    return defop(forward, backward, name=name)


cat3 = _join_adapter(T.cat, "cat")
stack3 = _join_adapter(T.stack, "stack")


def _join(regime, stacked):
    @st.composite
    def draw(d):
        shape = d(shapes)
        rng = np.random.default_rng(d(seeds))
        n = len(shape)
        dim = d(st.integers(-(n + 1), n) if stacked else st.integers(-n, n - 1))
        arrays = []
        for _ in range(3):
            s = list(shape)
            if not stacked:
                s[dim] = d(st.integers(1, 3))
            arrays.append(make(tuple(s), rng, regime))
        return Case(tuple(arrays), {"dim": dim})
    return draw()


def _register(name, ours, torch_op, cases, diff=(0,), rejects=(), **kw):
    register(OpSpec(name, ours, torch_op, cases, diff=diff, regimes=("normal",),
                    family="tensor", rejects=list(rejects), textbook=ours, **kw))


_register("flatten", T.flatten, torch.flatten, lambda r: _one(r, _dims),
          rejects=[Reject((np.zeros((2, 3)), 1, 0), {}, "start_dim"),
                   Reject((np.zeros((2, 3)), 2), {}, "start_dim")])
_register("reshape", T.reshape, torch.reshape, lambda r: _one(r, _reshape),
          rejects=[Reject((np.zeros((2, 3)), (4, 2)), {}, "shape")])
_register("transpose", T.transpose, torch.transpose, lambda r: _one(r, _swap),
          rejects=[Reject((np.zeros((2, 3)), 0, 2), {}, "dim1")])
_register("permute", T.permute, torch.permute, lambda r: _one(r, _perm),
          rejects=[Reject((np.zeros((2, 3)), (0, 0)), {}, "dims")])
_register("getitem", T.getitem, lambda x, index: x[index], lambda r: _one(r, _index),
          rejects=[Reject((np.zeros((2, 3)), (0, 5)), {}, "index")])
for _name, _op, _top in (("add", T.add, torch.add), ("sub", T.sub, torch.sub),
                         ("mul", T.mul, torch.mul)):
    _register(_name, _op, _top, _binary, diff=(0, 1),
              rejects=[Reject((np.zeros((2, 3)), np.zeros((2, 4))), {}, "other"),
                       Reject((np.zeros(2, np.float32), np.zeros(2)), {}, "other",
                              torch_rejects=False)])
_register("div", T.div, torch.div, _divisor, diff=(0, 1))
_register("cat", cat3, lambda a, b, c, dim=0: torch.cat((a, b, c), dim),
          lambda r: _join(r, False), diff=(0, 1, 2),
          rejects=[Reject((np.zeros((2, 3)), np.zeros((2, 4)), np.zeros((2, 3))), {"dim": 0},
                          "tensors")])
_register("stack", stack3, lambda a, b, c, dim=0: torch.stack((a, b, c), dim),
          lambda r: _join(r, True), diff=(0, 1, 2),
          rejects=[Reject((np.zeros((2, 3)), np.zeros((2, 4)), np.zeros((2, 3))), {"dim": 0},
                          "tensors")])
