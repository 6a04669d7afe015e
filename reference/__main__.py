"""The equivalence report for scratchnn's own ops, from a clone: ``python -m reference [OPS ...]
[--impl fast|textbook] [--device cpu|cuda] [--dtype float32|float64] [--examples N] [--seed S]``.

The same command as ``python -m scratchnn.testing`` (:mod:`scratchnn.testing.report`): one row
per op and dtype with the worst forward and gradient error against torch float64 and each
error over its tolerance, the failure report of each failing op below the table, exit status 1
when any op fails.
"""
from __future__ import annotations

import sys

from scratchnn.testing.report import main as _main
from scratchnn.testing.report import run_op

from .registry import load_all

__all__ = ["main", "run_op"]


def main(argv: list[str] | None = None) -> int:
    load_all()
    return _main(argv, prog="python -m reference")


if __name__ == "__main__":
    sys.exit(main())
