"""``check_op``: the property-based comparison of any op with its torch counterpart.

This is the machinery the project's own ops get (:mod:`scratchnn.testing.harness`), behind
one call. Imports numpy only; torch and hypothesis are imported when a check runs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from .registry import REGISTRY, Case, OpSpec
from .values import REGIMES, make

LAYOUTS = ("fortran", "strided", "negative-stride", "read-only")


class CheckError(AssertionError):
    """An op disagrees with torch (or with finite differences); the message is the report.
    ``.result`` holds the :class:`~scratchnn.testing.harness.Result` when there is one."""

    def __init__(self, message: str, result: Any = None):
        super().__init__(message)
        self.result = result


# ---------------------------------------------------------------- building a spec

def _is_shape(s: Any) -> bool:
    return isinstance(s, (tuple, list)) and all(isinstance(d, (int, np.integer)) and
                                                not isinstance(d, bool) for d in s)


def _shape_list(s: Any) -> list[tuple[int, ...]]:
    """A drawn ``shapes`` value as a list of shapes (one per positional array argument)."""
    if isinstance(s, tuple) and _is_shape(s):
        return [tuple(int(d) for d in s)]
    if isinstance(s, (tuple, list)) and all(_is_shape(e) for e in s):
        return [tuple(int(d) for d in e) for e in s]
    raise TypeError(f"check_op(): parameter 'shapes' must be a shape (tuple of ints), a list of "
                    f"shapes or a hypothesis strategy drawing one, got {s!r}")


def _strategy(x: Any):
    from hypothesis import strategies as st
    return x if isinstance(x, st.SearchStrategy) else st.just(x)


def _name(f: Any, fallback: str) -> str:
    """How a reproduction line spells ``f``: ``torch.sin``, ``torch.nn.functional.relu``, or the
    function's own name (it must be in scope under that name)."""
    name = getattr(f, "__name__", "")
    if not name.isidentifier():
        return fallback
    module = getattr(f, "__module__", None) or ""
    if module == "torch" or module.startswith("torch."):
        return f"{module}.{name}"
    return name


def op_spec(op: Callable, torch_op: Callable, *, shapes: Any = None,
            args: Callable | None = None, options: dict | None = None,
            regimes: Sequence[str] | None = None, kinks: Sequence[float] = (0.0,),
            scale: float = 1.0, diff: Sequence[int] | None = None, tol: dict | None = None,
            gradcheck: bool = True, layouts: bool = True, seed: int | None = None,
            name: str | None = None) -> OpSpec:
    """The :class:`OpSpec` that :func:`check_op` runs (and :func:`register` stores); see
    :func:`check_op` for the parameters."""
    from hypothesis import strategies as st

    from .strategies import elementwise_shapes, seeds

    import scratchnn
    if not scratchnn.is_op(op):
        raise TypeError(f"check_op(): parameter 'op' must be a scratchnn op made with "
                        f"scratchnn.defop(forward, backward), got {op!r}")
    if not callable(torch_op):
        raise TypeError(f"check_op(): parameter 'torch_op' must be callable, got {torch_op!r}")
    regimes = tuple(REGIMES if regimes is None else regimes)
    bad = [r for r in regimes if r not in REGIMES]
    if bad or not regimes:
        raise ValueError(f"check_op(): parameter 'regimes' must name some of {list(REGIMES)}, "
                         f"got {regimes!r}")
    if args is not None and not callable(args):
        raise TypeError("check_op(): parameter 'args' must be a function "
                        "args(shapes, rng, regime) -> tuple of positional arguments")
    shape_st = elementwise_shapes() if shapes is None else _strategy(shapes)
    option_st = st.fixed_dictionaries({k: _strategy(v) for k, v in (options or {}).items()})
    seed_st = seeds if seed is None else st.just(int(seed))
    kinks = tuple(kinks)

    def cases(regime: str):
        @st.composite
        def draw(d):
            shp = _shape_list(d(shape_st))
            kw = d(option_st)
            s = d(seed_st)
            rng = np.random.default_rng(s)
            if args is None:
                a = tuple(make(sh, rng, regime, kinks=kinks, scale=scale) for sh in shp)
            else:
                a = args(shp, rng, regime)
                a = tuple(a) if isinstance(a, (tuple, list)) else (a,)
            return Case(a, kw, config={"shapes": shp, "regime": regime, "seed": s})
        return draw()

    spec = OpSpec(name or op.__name__, op, torch_op, cases,
                  diff=None if diff is None else tuple(diff), regimes=regimes, tol=dict(tol or {}),
                  gradcheck=gradcheck, family="user", textbook=op)
    # what the reproduction line repeats besides the example itself (non-default settings)
    given = {"args": args, "kinks": None if kinks == (0.0,) else kinks,
             "scale": None if scale == 1.0 else scale, "diff": diff, "tol": tol or None,
             "gradcheck": None if gradcheck else False, "layouts": None if layouts else False,
             "name": name}

    def reproduce(case: Case, dtype: str, device: str, seed_: int, layout: Any,
                  impl: str) -> str:
        conf = case.config or {}
        from .registry import show
        parts = [_name(op, "op"), _name(torch_op, "torch_op"),
                 f"shapes={conf.get('shapes')!r}", f"options={show(case.kwargs, None)}",
                 f"regimes=({conf.get('regime')!r},)", f"seed={conf.get('seed', seed_)}",
                 "examples=1", f"dtypes={tuple(dtype) if isinstance(dtype, tuple) else (dtype,)!r}",
                 f"device={device!r}"]
        for k, v in given.items():
            if v is None:
                continue
            parts.append(f"{k}={_name(v, k) if callable(v) else repr(v)}")
        from .harness import runnable
        return runnable("from scratchnn.testing import check_op; "
                        f"check_op({', '.join(p for p in parts if p)})")

    spec.reproduce = reproduce
    return spec


# ---------------------------------------------------------------- the summary

@dataclass
class Summary:
    """What :func:`check_op` ran, returned when everything agreed."""
    op: str
    torch_op: str
    device: str
    examples: int = 0
    regimes: dict = field(default_factory=dict)       # regime -> examples
    worst: dict = field(default_factory=dict)   # dtype -> [fwd err, fwd/tol, grad err, grad/tol]
    layouts: int = 0                                  # layout variants checked
    gradchecks: int = 0                               # finite-difference checks (float64)

    def __str__(self) -> str:
        reg = ", ".join(f"{r} {n}" for r, n in self.regimes.items())
        lines = [f"check_op: {self.op} agrees with {self.torch_op} on {self.device}: "
                 f"{self.examples} examples ({reg}); {self.layouts} layout variants; "
                 f"{self.gradchecks} float64 gradchecks"]
        for dt, (fe, fr, ge, gr) in self.worst.items():
            lines.append(f"  {dt}: worst forward err {fe:.3g} ({fr:.3g}× tolerance), "
                         f"worst gradient err {ge:.3g} ({gr:.3g}× tolerance)")
        return "\n".join(lines)

    __repr__ = __str__


# ---------------------------------------------------------------- the check

def check_op(op: Callable, torch_op: Callable, *, shapes: Any = None,
             args: Callable | None = None, options: dict | None = None,
             dtypes: Sequence[str] = ("float32", "float64"), device: str = "cpu",
             examples: int = 20, regimes: Sequence[str] | None = None,
             kinks: Sequence[float] = (0.0,), scale: float = 1.0,
             diff: Sequence[int] | None = None, tol: dict | None = None,
             layouts: bool = True, gradcheck: bool = True, seed: int | None = None,
             name: str | None = None) -> Summary:
    """Check ``op`` (made with :func:`scratchnn.defop`) against ``torch_op``, property-based.

    Every example draws a value regime, the shapes, the options and a seed, builds the
    arguments (values from ``numpy.random.default_rng(seed)``) and checks, in each of
    ``dtypes``: the forward and every gradient against torch, with a random upstream gradient,
    under the tolerance policy (``tol`` overrides it: ``{"float32": (rtol, atol)}``); float
    outputs keep the input dtype; inputs are unmodified. Then, in ``dtypes[0]``, the same values
    as Fortran-order, strided, negative-stride and read-only arrays (``layouts``), and a float64
    finite-difference :func:`scratchnn.gradcheck` (``gradcheck``; not in the ``ties`` regime).

    * ``shapes``: ``None`` — one array of any shape, 0-d to 4-d, zero-size included (an
      elementwise op); a shape ``(3, 4)``; a list of shapes, one per positional array argument;
      or a hypothesis strategy drawing either.
    * ``args(shapes, rng, regime) -> tuple``: builds the positional arguments from the drawn
      shapes when they are not just float arrays (integer targets, a ``dim``); default: one
      :func:`scratchnn.testing.make` array per shape.
    * ``options``: keyword arguments, ``{name: value or hypothesis strategy}``, drawn per example.
    * ``regimes``: some of ``normal``, ``away`` (from ``kinks``), ``distinct``, ``ties``; all
      four by default. ``scale`` multiplies the values.
    * ``diff``: positional indices whose gradients are compared (default: every float array).
    * ``seed``: fix the values' seed (a reproduction line does); default: drawn.

    Raises :class:`CheckError` (an ``AssertionError``) with the failure report of the first
    failing example — after hypothesis has shrunk it — whose last line reproduces it. Returns a
    :class:`Summary` when everything agrees. Works as a pytest test body.
    """
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st

    from .harness import cast, layout_args, run_case

    dtypes = tuple(dtypes)
    bad = [d for d in dtypes if d not in ("float32", "float64")]
    if bad:
        raise ValueError(f"check_op(): parameter 'dtypes' must name float32 and/or float64, "
                         f"got {dtypes!r}")
    if not isinstance(examples, int) or examples < 1:
        raise ValueError(f"check_op(): parameter 'examples' must be a positive int, "
                         f"got {examples!r}")
    if device != "cpu":
        import torch
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"check_op(): parameter 'device' is {device!r} but "
                             f"torch.cuda.is_available() is False")
    spec = op_spec(op, torch_op, shapes=shapes, args=args, options=options, regimes=regimes,
                   kinks=kinks, scale=scale, diff=diff, tol=tol, gradcheck=gradcheck,
                   layouts=layouts, seed=seed, name=name)
    summary = Summary(spec.name, _name(torch_op, "torch_op"), device,
                      regimes={r: 0 for r in spec.regimes},
                      worst={dt: [0.0, 0.0, 0.0, 0.0] for dt in dtypes})

    def judge(res) -> None:
        if not res.ok:
            raise CheckError(res.report(), res)

    def note(res, dt) -> None:
        w = summary.worst[dt]
        w[:] = [max(w[0], res.fwd_err), max(w[1], res.fwd_ratio),
                max(w[2], res.grad_err), max(w[3], res.grad_ratio)]

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck), print_blob=False,
              phases=[Phase.explicit, Phase.generate, Phase.shrink])
    @given(data=st.data())
    def one_example(data):
        regime = data.draw(st.sampled_from(spec.regimes), label="regime")
        case = data.draw(spec.cases(regime), label="case")
        s = case.config["seed"]
        for dt in dtypes:
            res = run_case(spec, case, dt, device, seed=s)
            judge(res)
            note(res, dt)
        if layouts and dtypes:
            for i, a in enumerate(case.args):
                if not (isinstance(a, np.ndarray) and a.dtype.kind == "f"):
                    continue
                for lay in LAYOUTS:
                    if lay in ("strided", "negative-stride") and a.ndim == 0:
                        continue
                    res = run_case(spec, case, dtypes[0], device, seed=s,
                                   args_override=layout_args(case, dtypes[0], (i, lay), s),
                                   layout=(i, lay))
                    judge(res)
                    summary.layouts += 1
        if gradcheck and regime != "ties":
            _gradcheck(spec, case, cast(case.args, np.dtype(np.float64)), device, dtypes)
            summary.gradchecks += 1
        summary.examples += 1
        summary.regimes[regime] += 1

    one_example()
    return summary


def _gradcheck(spec: OpSpec, case: Case, args64: tuple, device: str, dtypes: tuple) -> None:
    import scratchnn
    try:
        scratchnn.gradcheck(spec.ours, args64, dict(case.kwargs), full_limit=64)
    except scratchnn.GradcheckError as e:
        conf = case.config or {}
        line = spec.reproduce(case, dtypes, device, conf.get("seed", 0), None, "fast") \
            if spec.reproduce else ""
        text = str(e).splitlines()
        first = text[1].strip() if len(text) > 1 else text[0]
        count = text[0].split(" failed for ")[-1].rstrip(":")
        raise CheckError("\n".join([
            f"{spec.name} fails the 'finite differences' check on float64/cpu",
            "  check:     finite differences: the backward disagrees with central differences "
            "of the forward (scratchnn.gradcheck, eps 1e-6, atol 1e-5, rtol 1e-3)",
            f"  argument:  {first.split(' d ')[0].split(' element')[0]}",
            "  dtype:     float64 on cpu",
            f"  error:     {count} of the Jacobian disagree (the first is below)",
            "  tolerance: |analytic − numeric| ≤ 1e-5 + 1e-3·|numeric|",
            f"  worst at:  {first}",
            f"  example:   {case.show()}; layout contiguous",
            f"  reproduce: {line}"])) from None


def replay(name: str, case: Case, dtype: str = "float64", device: str = "cpu", seed: int = 0,
           layout: tuple | None = None, impl: str = "fast"):
    """Run one case of registered op ``name`` again (what a reproduction line of the project's
    suite calls); raises :class:`CheckError` with the report if it fails, else returns the
    :class:`~scratchnn.testing.harness.Result`."""
    from .harness import layout_args, run_case
    if name not in REGISTRY:
        from .report import load_project_registry
        load_project_registry()
    if name not in REGISTRY:
        raise LookupError(f"replay(): no op {name!r} is registered")
    spec = REGISTRY[name]
    override = None if layout is None else layout_args(case, dtype, tuple(layout), seed)
    res = run_case(spec, case, dtype, device, seed, args_override=override, impl=impl,
                   layout=None if layout is None else tuple(layout))
    if not res.ok:
        raise CheckError(res.report(), res)
    return res

