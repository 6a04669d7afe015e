"""The equivalence harness — one implementation, :mod:`scratchnn.testing.harness` (read its
docstring for the tolerance policy and the failure report); named here for ``tests/`` and the
report ``python -m reference``."""
from scratchnn.testing.harness import (DEFAULT_TOL, Comparison, Mismatch, Result, cast,
                                       check_reject, compare, layout_args, layouts, run_case,
                                       run_torch, within)

__all__ = ["DEFAULT_TOL", "Comparison", "Mismatch", "Result", "cast", "check_reject", "compare",
           "layout_args", "layouts", "run_case", "run_torch", "within"]
