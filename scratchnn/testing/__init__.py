"""Check any op against torch: the harness behind scratchnn's own equivalence suite, public.

    from scratchnn.testing import check_op
    def test_my_op():
        check_op(my_op, torch.nn.functional.softsign)

:func:`check_op` draws examples with hypothesis (shapes, options, a value regime and a seed;
values from ``numpy.random.default_rng(seed)``) and checks the forward and every gradient
against torch, float32 and float64, with random upstream gradients; other memory layouts;
unmodified inputs; preserved dtypes; and float64 finite differences. A mismatch raises an
``AssertionError`` whose message says which check, which argument, the dtype and device, the
worst absolute and relative error against the tolerance, the worst element (ours, torch,
float64 oracle), the example and one line that reproduces it.

* :func:`check_op`, :class:`Summary`, :class:`CheckError`, :func:`replay`
* the registry: :func:`register`, :class:`OpSpec`, :class:`Case`, :class:`Reject`,
  :data:`REGISTRY`, :func:`edition`
* values: :func:`make` (the four regimes), :data:`REGIMES`; strategies (hypothesis):
  :data:`seeds`, :func:`batch_shapes`, :func:`elementwise_shapes`
* the harness (torch): :func:`run_case`, :func:`compare`, :func:`within`, :func:`cast`,
  :func:`layouts`, :func:`check_reject`, :class:`Result`
* the report: ``python -m scratchnn.testing`` (or ``scratchnn-check``) ``--module yours``

Needs the test extra (``pip install 'scratchnn[test]'``: torch, hypothesis). Importing this
package imports neither; they load when a check runs. Guide: docs/testing-your-op.md.
"""
from __future__ import annotations

import importlib
from typing import Any

from .registry import IMPLS, REGISTRY, Case, OpSpec, Reject, edition, register, show
from .values import REGIMES, make, upstream

_LAZY = {
    "check_op": "check", "op_spec": "check", "replay": "check", "Summary": "check",
    "CheckError": "check",
    "seeds": "strategies", "batch_shapes": "strategies", "elementwise_shapes": "strategies",
    "run_case": "harness", "run_torch": "harness", "compare": "harness", "within": "harness",
    "cast": "harness", "layouts": "harness", "layout_args": "harness",
    "check_reject": "harness", "Result": "harness",
    "Mismatch": "harness", "Comparison": "harness", "DEFAULT_TOL": "harness",
}

__all__ = ["IMPLS", "REGISTRY", "REGIMES", "Case", "OpSpec", "Reject", "edition", "register",
           "show", "make", "upstream", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
