"""Optimizers and schedulers against torch.optim, step for step.

* every optimizer, every combination of its options, float32 and float64: 50+ steps with random
  gradients (some parameters skipped now and then with ``grad = None``) from identical starting
  points, against torch's single-tensor implementation (``foreach=False``). Tolerance: a few
  units in the last place of max(|θ|, 1) — torch's CPU kernels fuse some multiply-adds (FMA)
  that NumPy rounds twice;
* parameter groups with different options; ``add_param_group``; ``zero_grad``; closures;
* state_dict: torch's layout, round trip (bit-exact continuation), loading torch's state_dict
  (tensors as arrays) and torch loading ours;
* schedulers: ``get_last_lr()`` sequences equal to torch's exactly, resume, state_dict;
* bad input: every error names the parameter;
* the textbook formulas (``scratchnn.textbook.optim``): every optimizer and option combination,
  several steps of the fast in-place optimizer equal the plain formula applied step by step
  (bit for bit where the fast code computes the same expression, else to rounding), a
  non-contiguous parameter and both of Adadelta's routes included; the formulas equal
  torch.optim (float64, 1e-12); they are pure (inputs untouched, dtype kept).
"""
from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
import torch

import scratchnn.optim as optim
import scratchnn.textbook.optim as TO
from scratchnn.nn import Parameter
from scratchnn.optim import lr_scheduler

SHAPES = [(3, 4), (5,), ()]
ULPS = 16                     # measured worst case over the combinations below: 6 ulps


def combos(**options):
    """Every combination of the given option values, as keyword dicts."""
    names = list(options)
    return [dict(zip(names, vals)) for vals in itertools.product(*options.values())]


OPTIONS = {
    "SGD": [c for c in combos(lr=[0.05], momentum=[0.0, 0.9], dampening=[0.0, 0.3],
                              nesterov=[False, True], weight_decay=[0.0, 0.1],
                              maximize=[False, True])
            if not c["nesterov"] or (c["momentum"] > 0 and c["dampening"] == 0)],
    "Adam": combos(lr=[0.01], betas=[(0.9, 0.999), (0.5, 0.9)], amsgrad=[False, True],
                   weight_decay=[0.0, 0.1], maximize=[False, True]),
    "AdamW": combos(lr=[0.01], amsgrad=[False, True], weight_decay=[0.0, 0.1],
                    maximize=[False, True], eps=[1e-8, 1e-3]),
    "Adadelta": combos(lr=[1.0, 0.5], rho=[0.9, 0.5], weight_decay=[0.0, 0.1],
                       maximize=[False, True]),
    "RMSprop": combos(lr=[0.01], centered=[False, True], momentum=[0.0, 0.9],
                      weight_decay=[0.0, 0.1], maximize=[False, True], alpha=[0.99, 0.5]),
    "Adagrad": combos(lr=[0.1], lr_decay=[0.0, 0.05], initial_accumulator_value=[0.0, 0.1],
                      weight_decay=[0.0, 0.1], maximize=[False, True]),
}


def make_params(dtype, seed=0):
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    ours = [Parameter(a.copy()) for a in init]
    theirs = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    return ours, theirs


def set_grads(ours, theirs, rng, step, dtype):
    """Random gradients; parameter k is skipped (grad None) on every (k+2)-th step."""
    for k, (p, t) in enumerate(zip(ours, theirs)):
        if k and step % (k + 2) == 0:
            p.grad, t.grad = None, None
            continue
        g = np.asarray(rng.standard_normal(p.shape) * 2.0, dtype=dtype)
        p.grad, t.grad = g.copy(), torch.tensor(g.copy())


def assert_close(ours, theirs, what, ulps=ULPS):
    for k, (p, t) in enumerate(zip(ours, theirs)):
        a = p.data if isinstance(p, Parameter) else p
        b = t.detach().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
        assert a.dtype == b.dtype, f"{what}: param {k} dtype {a.dtype}, torch {b.dtype}"
        tol = ulps * np.finfo(a.dtype).eps * np.maximum(np.abs(b), 1.0)
        err = np.abs(a.astype(np.float64) - b)
        assert np.all(err <= tol), f"{what}: param {k} off by {err.max():.3g} " \
                                   f"(tolerance {tol.max():.3g})"


def run_both(name, kw, dtype, steps=50, seed=0):
    ours, theirs = make_params(dtype, seed)
    o = getattr(optim, name)(ours, **kw)
    t = getattr(torch.optim, name)(theirs, foreach=False, **kw)
    rng = np.random.default_rng(seed + 1)
    for s in range(steps):
        set_grads(ours, theirs, rng, s, dtype)
        o.step()
        t.step()
    return ours, theirs, o, t


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_every_option_combination_matches_torch(name, dtype):
    for kw in OPTIONS[name]:
        ours, theirs, o, _ = run_both(name, kw, dtype)
        assert_close(ours, theirs, f"{name}({kw}) {np.dtype(dtype).name}")
        for p in ours:                                   # nothing promoted, state included
            assert p.data.dtype == dtype
            for v in o.state.get(p, {}).values():
                if isinstance(v, np.ndarray) and v.ndim:
                    assert v.dtype == dtype


@pytest.mark.parametrize("name", ["SGD", "Adam", "Adadelta", "RMSprop", "Adagrad", "AdamW"])
def test_defaults_match_torch(name):
    """No options at all: torch's defaults (SGD lr=1e-3, Adadelta lr=1.0, ...)."""
    ours, theirs, o, t = run_both(name, {}, np.float64, steps=20)
    assert_close(ours, theirs, f"{name} defaults")
    own = o.state_dict()["param_groups"][0]
    ref = t.state_dict()["param_groups"][0]
    assert {k: v for k, v in own.items()} == {k: ref[k] for k in own}


def test_chapter_adadelta_long_run_float64_is_tight():
    """The chapter's optimizer: 200 steps, float64, within 4 ulps."""
    ours, theirs, _, _ = run_both("Adadelta", {"lr": 0.5}, np.float64, steps=200)
    assert_close(ours, theirs, "Adadelta(lr=0.5) x200", ulps=4)


def test_parameter_groups_with_different_options():
    ours, theirs = make_params(np.float64)
    groups = lambda ps: [{"params": ps[:1], "lr": 0.1, "momentum": 0.9, "nesterov": True},
                         {"params": ps[1:], "weight_decay": 0.2, "maximize": True}]
    o = optim.SGD(groups(ours), lr=0.01, momentum=0.5)
    t = torch.optim.SGD(groups(theirs), lr=0.01, momentum=0.5, foreach=False)
    rng = np.random.default_rng(3)
    for s in range(50):
        set_grads(ours, theirs, rng, s, np.float64)
        o.step(), t.step()
    assert_close(ours, theirs, "SGD groups")
    assert [g["lr"] for g in o.param_groups] == [0.1, 0.01]
    assert o.param_groups[1]["momentum"] == 0.5                 # filled from the defaults


def test_add_param_group_and_adam_groups():
    ours, theirs = make_params(np.float32)
    o = optim.Adam(ours[:2], lr=0.01, amsgrad=True)
    t = torch.optim.Adam(theirs[:2], lr=0.01, amsgrad=True, foreach=False)
    o.add_param_group({"params": ours[2], "lr": 0.05, "betas": (0.5, 0.6)})
    t.add_param_group({"params": theirs[2], "lr": 0.05, "betas": (0.5, 0.6)})
    rng = np.random.default_rng(4)
    for s in range(60):
        set_grads(ours, theirs, rng, s, np.float32)
        o.step(), t.step()
    assert_close(ours, theirs, "Adam + add_param_group")


def test_step_updates_data_in_place_and_skips_params_without_grad():
    p, q = Parameter(np.ones(3, np.float32)), Parameter(np.ones(2, np.float32))
    view, before_q = p.data[1:], q.data.copy()
    o = optim.SGD([p, q], lr=0.5)
    p.grad = np.full(3, 2.0, np.float32)
    o.step()
    np.testing.assert_array_equal(view, [0.0, 0.0])             # same buffer, updated
    np.testing.assert_array_equal(q.data, before_q)             # grad None: untouched
    assert p.data.dtype == np.float32 and o.state == {}         # no momentum: no state


def test_zero_grad_and_closure():
    p = Parameter(np.ones(3))
    o = optim.SGD([p], lr=0.1)
    p.grad = np.ones(3)
    o.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(p.grad, 0.0)
    o.zero_grad()
    assert p.grad is None

    def closure():
        p.grad = 2 * p.data
        return float((p.data ** 2).sum())
    assert o.step(closure) == 3.0
    np.testing.assert_allclose(p.data, 0.8)


def test_adamw_is_adam_with_decoupled_weight_decay():
    a, b = Parameter(np.ones(4)), Parameter(np.ones(4))
    oa = optim.AdamW([a], lr=0.1, weight_decay=0.3)
    ob = optim.Adam([b], lr=0.1, weight_decay=0.3, decoupled_weight_decay=True)
    for s in range(5):
        a.grad = b.grad = np.arange(4.0) - s
        oa.step(), ob.step()
    np.testing.assert_array_equal(a.data, b.data)
    assert oa.param_groups[0]["decoupled_weight_decay"] is True


# -- state_dict ---------------------------------------------------------------------------------
STATEFUL = [("SGD", {"lr": 0.05, "momentum": 0.9}), ("Adam", {"amsgrad": True}),
            ("AdamW", {}), ("Adadelta", {}), ("RMSprop", {"centered": True, "momentum": 0.5}),
            ("Adagrad", {"lr_decay": 0.01})]


def torch_sd_to_numpy(sd):
    return {"state": {k: {kk: (vv.numpy().copy() if isinstance(vv, torch.Tensor) else vv)
                          for kk, vv in s.items()} for k, s in sd["state"].items()},
            "param_groups": copy.deepcopy(sd["param_groups"])}


def numpy_sd_to_torch(sd):
    return {"state": {k: {kk: (torch.tensor(vv) if isinstance(vv, np.ndarray) else vv)
                          for kk, vv in s.items()} for k, s in sd["state"].items()},
            "param_groups": copy.deepcopy(sd["param_groups"])}


@pytest.mark.parametrize("name,kw", STATEFUL)
def test_state_dict_layout_is_torchs(name, kw):
    _, _, o, t = run_both(name, kw, np.float32, steps=7)
    own, ref = o.state_dict(), t.state_dict()
    assert list(own) == ["state", "param_groups"]
    assert sorted(own["state"]) == sorted(ref["state"])
    for k, s in own["state"].items():
        assert list(s) == list(ref["state"][k]), f"{name} state[{k}] keys"
        for key, v in s.items():
            r = ref["state"][k][key].numpy()
            assert v.shape == r.shape and v.dtype == r.dtype, f"{name} state[{k}][{key}]"
    for g, r in zip(own["param_groups"], ref["param_groups"]):
        assert g["params"] == r["params"]
        assert {k: r[k] for k in g} == g                        # ours ⊆ torch's keys, same values


@pytest.mark.parametrize("name,kw", STATEFUL)
def test_state_dict_round_trip_continues_bit_for_bit(name, kw):
    rng = np.random.default_rng(5)
    ps = [Parameter(rng.standard_normal(s)) for s in SHAPES]
    o = getattr(optim, name)(ps, **kw)
    grads = [[rng.standard_normal(s) for s in SHAPES] for _ in range(40)]
    for gs in grads[:20]:
        for p, g in zip(ps, gs):
            p.grad = g
        o.step()
    saved = copy.deepcopy(o.state_dict())
    qs = [Parameter(p.data.copy()) for p in ps]
    o2 = getattr(optim, name)(qs, lr=0.123)                     # other options: overwritten
    o2.load_state_dict(saved)
    for gs in grads[20:]:
        for p, q, g in zip(ps, qs, gs):
            p.grad, q.grad = g, g.copy()
        o.step(), o2.step()
    for p, q in zip(ps, qs):
        np.testing.assert_array_equal(p.data, q.data)
    saved["state"][0][list(saved["state"][0])[-1]][...] = 7.0   # load copied the buffers
    assert not any(np.any(v == 7.0) for v in o2.state[qs[0]].values() if v is not None)


@pytest.mark.parametrize("name,kw", STATEFUL)
def test_loads_torch_state_dict_and_torch_loads_ours(name, kw):
    ours, theirs, o, t = run_both(name, kw, np.float64, steps=15, seed=8)
    # ours <- torch's state
    ps = [Parameter(x.detach().numpy().copy()) for x in theirs]
    o2 = getattr(optim, name)(ps)
    o2.load_state_dict(torch_sd_to_numpy(t.state_dict()))
    # torch <- ours
    ts = [torch.tensor(p.data.copy(), requires_grad=True) for p in ours]
    t2 = getattr(torch.optim, name)(ts, foreach=False)
    t2.load_state_dict(numpy_sd_to_torch(o.state_dict()))
    rng = np.random.default_rng(9)
    for s in range(30):
        gs = [rng.standard_normal(sh) for sh in SHAPES]
        for p, x, q, y, g in zip(ps, theirs, ours, ts, gs):
            p.grad, x.grad, q.grad, y.grad = g.copy(), torch.tensor(g), g.copy(), torch.tensor(g)
        o2.step(), t.step(), o.step(), t2.step()
    assert_close(ps, theirs, f"{name} loaded from torch")
    assert_close(ours, ts, f"torch {name} loaded from ours")


def test_load_state_dict_rejects_bad_dicts_naming_the_key():
    p = Parameter(np.zeros(3))
    o = optim.Adam([p], lr=0.1)
    p.grad = np.ones(3)
    o.step()
    good = o.state_dict()

    def broken(edit):
        sd = copy.deepcopy(good)
        edit(sd)
        return sd
    cases = [
        (broken(lambda sd: sd.pop("state")), KeyError, "'state'"),
        (broken(lambda sd: sd["param_groups"].append(dict(sd["param_groups"][0]))), ValueError,
         "parameter groups"),
        (broken(lambda sd: sd["param_groups"][0]["params"].append(1)), ValueError,
         "param_groups[0]"),
        (broken(lambda sd: sd["param_groups"][0].pop("betas")), KeyError, "betas"),
        (broken(lambda sd: sd["state"][0].update(exp_avg=np.zeros(4))), ValueError, "exp_avg"),
        (broken(lambda sd: sd["state"][0].pop("exp_avg_sq")), KeyError, "exp_avg_sq"),
        (broken(lambda sd: sd["state"].update({5: {}})), KeyError, "state[5]"),
        (broken(lambda sd: sd["param_groups"][0].update(lr=-1.0)), ValueError, "lr"),
    ]
    for sd, err, word in cases:
        with pytest.raises(err, match=None) as e:
            o.load_state_dict(sd)
        assert "Adam.load_state_dict" in str(e.value) and word in str(e.value), str(e.value)
    np.testing.assert_array_equal(o.state[p]["exp_avg"], good["state"][0]["exp_avg"])


# -- schedulers ---------------------------------------------------------------------------------
def sched_pair(kind, kw, lrs=(0.1, 0.02), last_epoch=-1):
    ps, ts = [Parameter(np.zeros(2)) for _ in lrs], [torch.zeros(2, requires_grad=True)
                                                     for _ in lrs]
    o = optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(ps, lrs)], momentum=0.9)
    t = torch.optim.SGD([{"params": [x], "lr": lr} for x, lr in zip(ts, lrs)], momentum=0.9)
    return (getattr(lr_scheduler, kind)(o, **kw),
            getattr(torch.optim.lr_scheduler, kind)(t, **kw), o, t)


@pytest.mark.filterwarnings("ignore::UserWarning")   # torch's call-order notices
@pytest.mark.parametrize("kind,kw", [
    ("StepLR", {"step_size": 3}), ("StepLR", {"step_size": 1, "gamma": 0.7}),
    ("CosineAnnealingLR", {"T_max": 10}), ("CosineAnnealingLR", {"T_max": 7, "eta_min": 1e-3}),
    ("CosineAnnealingLR", {"T_max": 1, "eta_min": 0.05}),
])
def test_scheduler_lr_sequence_equals_torch_exactly(kind, kw):
    s, ts, o, t = sched_pair(kind, kw)
    assert s.get_last_lr() == ts.get_last_lr()
    for _ in range(45):                                        # several cosine periods
        t.step()
        ts.step()
        s.step()
        assert s.get_last_lr() == ts.get_last_lr()
        assert [g["lr"] for g in o.param_groups] == s.get_last_lr()
    assert [g["initial_lr"] for g in o.param_groups] == [0.1, 0.02]
    s.step(5), ts.step(5)                                       # closed form jump
    assert s.get_last_lr() == ts.get_last_lr()


@pytest.mark.filterwarnings("ignore::UserWarning")   # torch's call-order notices
@pytest.mark.parametrize("kind,kw", [("StepLR", {"step_size": 2, "gamma": 0.5}),
                                     ("CosineAnnealingLR", {"T_max": 6, "eta_min": 0.01})])
def test_scheduler_state_dict_and_resume(kind, kw):
    s, ts, o, t = sched_pair(kind, kw)
    for _ in range(4):
        s.step(), ts.step()
    sd, tsd = s.state_dict(), ts.state_dict()
    assert sorted(sd) == sorted(tsd) and sd == tsd
    # resuming with last_epoch needs initial_lr in the groups, as in torch
    o3, t3 = copy.deepcopy(o), copy.deepcopy(t)
    s3 = getattr(lr_scheduler, kind)(o3, last_epoch=4, **kw)
    ts3 = getattr(torch.optim.lr_scheduler, kind)(t3, last_epoch=4, **kw)
    for _ in range(7):
        assert s3.get_last_lr() == ts3.get_last_lr()
        s3.step(), ts3.step()
    # torch's scheduler state loads into ours, onto an optimizer loaded from ours
    s2, _, o2, _ = sched_pair(kind, kw)
    s2.load_state_dict(copy.deepcopy(tsd))
    o2.load_state_dict(o.state_dict())
    for _ in range(9):
        s2.step(), ts.step()
        assert s2.get_last_lr() == ts.get_last_lr()


# -- errors -------------------------------------------------------------------------------------
def P():
    return [Parameter(np.zeros(2))]


@pytest.mark.parametrize("make,param", [
    (lambda: optim.SGD([]), "params"),
    (lambda: optim.Adam(iter([])), "params"),
    (lambda: optim.SGD(Parameter(np.zeros(2))), "params"),
    (lambda: optim.SGD([np.zeros(2)]), "params"),
    (lambda: optim.SGD({Parameter(np.zeros(2))}), "params"),
    (lambda: optim.SGD(P(), lr=-0.1), "lr"),
    (lambda: optim.SGD(P(), momentum=-0.5), "momentum"),
    (lambda: optim.SGD(P(), weight_decay=-1.0), "weight_decay"),
    (lambda: optim.SGD(P(), nesterov=True), "nesterov"),
    (lambda: optim.SGD(P(), momentum=0.9, dampening=0.1, nesterov=True), "nesterov"),
    (lambda: optim.Adam(P(), lr=-1e-3), "lr"),
    (lambda: optim.Adam(P(), eps=-1e-8), "eps"),
    (lambda: optim.Adam(P(), betas=(1.0, 0.999)), "betas[0]"),
    (lambda: optim.Adam(P(), betas=(0.9, -0.1)), "betas[1]"),
    (lambda: optim.Adam(P(), betas=(0.9,)), "betas"),
    (lambda: optim.AdamW(P(), betas=(0.9, 1.0)), "betas[1]"),
    (lambda: optim.Adadelta(P(), rho=1.5), "rho"),
    (lambda: optim.Adadelta(P(), eps=-1.0), "eps"),
    (lambda: optim.RMSprop(P(), momentum=-0.1), "momentum"),
    (lambda: optim.RMSprop(P(), alpha=-0.1), "alpha"),
    (lambda: optim.RMSprop(P(), eps=-0.1), "eps"),
    (lambda: optim.Adagrad(P(), lr_decay=-0.1), "lr_decay"),
    (lambda: optim.Adagrad(P(), initial_accumulator_value=-1.0), "initial_accumulator_value"),
    (lambda: optim.SGD(P(), lr="0.1"), "lr"),
    (lambda: optim.SGD([{"params": P()}, {"params": P(), "lr": -1.0}]), "lr"),
])
def test_bad_options_are_rejected_naming_the_parameter(make, param):
    with pytest.raises((ValueError, TypeError)) as e:
        make()
    assert f"'{param}'" in str(e.value), str(e.value)


def test_torch_rejects_what_we_reject():
    """The option checks mirror torch's (for inputs torch checks too)."""
    t = [torch.zeros(2, requires_grad=True)]
    for make in (lambda: torch.optim.SGD([]), lambda: torch.optim.SGD(t, lr=-0.1),
                 lambda: torch.optim.SGD(t, nesterov=True),
                 lambda: torch.optim.Adam(t, betas=(1.0, 0.9)),
                 lambda: torch.optim.RMSprop(t, momentum=-1.0)):
        with pytest.raises(ValueError):
            make()


def test_group_and_grad_errors():
    p = Parameter(np.zeros(2))
    o = optim.SGD([p], lr=0.1)
    with pytest.raises(ValueError, match="already in another parameter group"):
        o.add_param_group({"params": [p]})
    with pytest.raises(ValueError, match="'param_group' has no key 'params'"):
        o.add_param_group({"lr": 0.1})
    p.grad = np.zeros(2, np.float32)
    with pytest.raises(ValueError, match=r"SGD.step\(\): parameter 'params'.*float32"):
        o.step()
    p.grad = np.zeros(3)
    with pytest.raises(ValueError, match="shape"):
        o.step()


def test_scheduler_errors():
    o = optim.SGD(P(), lr=0.1)
    with pytest.raises(TypeError, match="'optimizer'"):
        lr_scheduler.StepLR("sgd", 2)
    with pytest.raises(ValueError, match="'step_size'"):
        lr_scheduler.StepLR(o, 0)
    with pytest.raises(ValueError, match="'T_max'"):
        lr_scheduler.CosineAnnealingLR(o, 0)
    with pytest.raises(KeyError, match="initial_lr"):
        lr_scheduler.StepLR(optim.SGD(P(), lr=0.1), 2, last_epoch=3)
    s = lr_scheduler.StepLR(o, 2)
    with pytest.raises(KeyError, match="'state_dict'"):
        s.load_state_dict({"step_size": 2})


# -- the textbook formulas ----------------------------------------------------------------------
class Book:
    """One parameter's textbook state, stepped with ``scratchnn.textbook.optim``: the same
    bookkeeping as the optimizers (state created on the first update, the step count per
    parameter), around one pure ``*_step`` call."""

    def __init__(self, name: str, kw: dict, theta: np.ndarray):
        self.name, self.kw, self.theta, self.t = name, dict(kw), theta.copy(), 0
        z = np.zeros_like(theta)
        if name == "SGD":
            self.state = [None]
        elif name in ("Adam", "AdamW"):
            self.state = [z, z.copy(), z.copy() if kw.get("amsgrad") else None]
        elif name == "Adagrad":
            self.state = [np.full_like(theta, self.kw.pop("initial_accumulator_value", 0.0))]
        elif name == "Adadelta":
            self.state = [z, z.copy()]
        else:                                             # RMSprop
            self.state = [z, z.copy() if kw.get("centered") else None,
                          z.copy() if kw.get("momentum", 0) > 0 else None]

    def step(self, g: np.ndarray) -> None:
        self.t += 1
        before = [self.theta.copy(), g.copy()] + [None if a is None else a.copy()
                                                  for a in self.state]
        if self.name == "SGD":
            out = TO.sgd_step(self.theta, g, *self.state, **self.kw)
        elif self.name in ("Adam", "AdamW", "Adagrad"):
            f = {"Adam": TO.adam_step, "AdamW": TO.adamw_step, "Adagrad": TO.adagrad_step}
            out = f[self.name](self.theta, g, *self.state, self.t, **self.kw)
        elif self.name == "Adadelta":
            out = TO.adadelta_step(self.theta, g, *self.state, **self.kw)
        else:
            out = TO.rmsprop_step(self.theta, g, *self.state, **self.kw)
        after = [self.theta, g] + self.state                 # pure: nothing was modified
        for b, a in zip(before, after):
            if a is not None:
                np.testing.assert_array_equal(a, b)
        self.theta, self.state = out[0], list(out[1:])
        for a in out:                                         # arrays, in the parameter's dtype
            assert a is None or (isinstance(a, np.ndarray) and a.dtype == g.dtype
                                 and a.shape == g.shape)


def grad_sequence(shapes, dtype, steps, seed):
    """Random gradients; parameter k gets None (is skipped) on every (k+2)-th step."""
    rng = np.random.default_rng(seed)
    return [[None if k and s % (k + 2) == 0 else
             np.asarray(rng.standard_normal(sh) * 2.0, dtype=dtype)
             for k, sh in enumerate(shapes)] for s in range(steps)]


def run_book(name, kw, init, grads):
    books = [Book(name, kw, a) for a in init]
    for gs in grads:
        for b, g in zip(books, gs):
            if g is not None:
                b.step(g)
    return books


# where the fast code computes another expression of the same formula (torch's lerp_ for a
# running mean, Adam's bias corrections folded into step size and denominator): to rounding
def exact(name, kw):
    return name in ("SGD", "Adagrad", "Adadelta") or (name == "RMSprop" and not kw["centered"])


def assert_near(a, b, what, dtype):
    rtol = 1e-12 if np.dtype(dtype) == np.float64 else 1e-6
    err = np.abs(a.astype(np.float64) - b.astype(np.float64))
    tol = rtol * np.maximum(np.abs(b.astype(np.float64)), 1.0)
    assert np.all(err <= tol), f"{what}: off by {err.max():.3g} (tolerance {tol.max():.3g})"


def noncontiguous_init(dtype, seed=0):
    """Three parameters, the first a strided (non-contiguous) view into a larger array."""
    rng = np.random.default_rng(seed)
    big = rng.standard_normal((3, 9)).astype(dtype)
    return [big[:, ::2], rng.standard_normal((5,)).astype(dtype),
            np.asarray(rng.standard_normal(), dtype=dtype)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_fast_optimizer_equals_the_textbook_formula_step_by_step(name, dtype):
    for kw in OPTIONS[name]:
        init = noncontiguous_init(dtype)
        assert not init[0].flags.c_contiguous
        grads = grad_sequence([a.shape for a in init], dtype, steps=8, seed=1)
        books = run_book(name, kw, init, grads)
        ps = [Parameter(a.copy() if k else a) for k, a in enumerate(init)]   # the view itself
        o = getattr(optim, name)(ps, **kw)
        for gs in grads:
            for p, g in zip(ps, gs):
                p.grad = None if g is None else g.copy()
            o.step()
        for k, (p, b) in enumerate(zip(ps, books)):
            what = f"{name}({kw}) {np.dtype(dtype).name} param {k}"
            assert p.data.dtype == dtype, what
            if exact(name, kw):
                np.testing.assert_array_equal(p.data, b.theta, err_msg=what)
            else:
                assert_near(p.data, b.theta, what, dtype)


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_textbook_formulas_equal_torch_optim(name):
    """float64, 20 steps, every option combination: within 1e-12 of torch's single-tensor
    optimizer (relative to max(|θ|, 1))."""
    for kw in OPTIONS[name]:
        _, theirs = make_params(np.float64, seed=2)
        init = [t.detach().numpy().copy() for t in theirs]
        grads = grad_sequence(SHAPES, np.float64, steps=20, seed=3)
        books = run_book(name, kw, init, grads)
        t = getattr(torch.optim, name)(theirs, foreach=False, **kw)
        for gs in grads:
            for x, g in zip(theirs, gs):
                x.grad = None if g is None else torch.tensor(g)
            t.step()
        for k, (x, b) in enumerate(zip(theirs, books)):
            assert_near(b.theta, x.detach().numpy(), f"textbook {name}({kw}) param {k}",
                        np.float64)


def test_textbook_defaults_are_torchs():
    """Every ``*_step`` keyword defaults to the torch optimizer's default."""
    import inspect
    pairs = {"sgd_step": "SGD", "adam_step": "Adam", "adamw_step": "AdamW",
             "adagrad_step": "Adagrad", "adadelta_step": "Adadelta", "rmsprop_step": "RMSprop"}
    for fn, cls in pairs.items():
        ours = inspect.signature(getattr(TO, fn)).parameters
        ref = inspect.signature(getattr(torch.optim, cls)).parameters
        for k, prm in ours.items():
            if prm.kind is prm.KEYWORD_ONLY and k in ref:
                assert prm.default == ref[k].default, f"{fn}({k}=...)"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("route", sorted(__import__("scratchnn.optim.adadelta",
                                                    fromlist=["ROUTES"]).ROUTES))
def test_adadelta_routes_equal_the_textbook_formula_bit_for_bit(route, dtype, monkeypatch):
    """Each of Adadelta's routes (forced through ``ROUTES``), in place, equals
    ``textbook.optim.adadelta_step`` bit for bit, leaves the gradients alone and keeps torch's
    state keys; a parameter larger than one block and a Fortran-ordered one (always the
    whole-array route) included."""
    import importlib
    from scratchnn.optim import adadelta
    from scratchnn.perf import inplace
    for key, value in adadelta.ROUTES[route].items():
        mod, attr = key.rsplit(".", 1) if "." in key else ("scratchnn.optim.adadelta", key)
        monkeypatch.setattr(importlib.import_module(mod), attr, value)
    rng = np.random.default_rng(3)
    init = [rng.standard_normal(s).astype(dtype) for s in [(3 * inplace.BLOCK + 5,), (7, 3), ()]]
    init.append(np.asfortranarray(rng.standard_normal((5, 4)).astype(dtype)))
    grads = [[rng.standard_normal(a.shape).astype(dtype) for a in init] for _ in range(4)]
    kw = {"lr": 0.5, "weight_decay": 0.1}
    books = run_book("Adadelta", kw, init, grads)
    ps = [Parameter(a.copy(order="K")) for a in init]
    assert not ps[-1].data.flags.c_contiguous
    o = optim.Adadelta(ps, **kw)
    for gs in grads:
        for p, g in zip(ps, gs):
            p.grad = g.copy(order="K")
        o.step()
        for p, g in zip(ps, gs):
            np.testing.assert_array_equal(p.grad, g)                # grads untouched
    for p, b in zip(ps, books):
        np.testing.assert_array_equal(p.data, b.theta)
        np.testing.assert_array_equal(o.state[p]["square_avg"], b.state[0])
        np.testing.assert_array_equal(o.state[p]["acc_delta"], b.state[1])
        assert sorted(o.state[p]) == ["acc_delta", "square_avg", "step"]


def test_adadelta_choose_route():
    from scratchnn.optim import adadelta
    c, f = np.zeros((3, 4)), np.zeros((3, 4), order="F")
    assert adadelta.choose_route((c, c)) == "blocked"
    assert adadelta.choose_route((c, f)) == "whole"


def test_textbook_step_on_a_float32_zero_d_parameter_stays_a_float32_array():
    theta, g = np.asarray(1.0, np.float32), np.asarray(0.5, np.float32)
    out = TO.adam_step(theta, g, np.zeros_like(theta), np.zeros_like(theta), None, 1, lr=0.1)
    assert isinstance(out[0], np.ndarray) and out[0].dtype == np.float32 and out[0].shape == ()
    assert out[3] is None
    np.testing.assert_allclose(out[0], 0.9, rtol=1e-6)          # the first step is ±lr
