"""The project's op registry: every scratchnn op, its torch counterpart and how to test the pair.

The classes and the registry itself are :mod:`scratchnn.testing.registry` (one ``REGISTRY``,
shared with users' ops registered through :func:`scratchnn.testing.register`); read its
docstring for what a spec says. This module adds :func:`load_all`: family files in
``reference/specs/`` (one per family: ``activation.py``, ``conv.py``, ...) call
:func:`register` at import time, and :func:`load_all` imports every one of them, so adding a
family never means editing a central list.

Every spec is checked twice against torch: the fast edition (``ours``) and the textbook edition
(:func:`edition` with ``impl="textbook"``); where the op is already plain both are one function.
"""
from __future__ import annotations

import importlib
import pkgutil

from scratchnn.testing.registry import (IMPLS, REGISTRY, Case, OpSpec, Reject, edition,
                                        register, show)
from scratchnn.testing.values import REGIMES

__all__ = ["IMPLS", "REGIMES", "REGISTRY", "Case", "OpSpec", "Reject", "edition", "register",
           "show", "load_all"]

_loaded = False


def load_all() -> dict[str, OpSpec]:
    """Import every family file in ``reference/specs`` and return the registry."""
    global _loaded
    if not _loaded:
        from . import specs
        for m in sorted(pkgutil.iter_modules(specs.__path__), key=lambda m: m.name):
            if not m.name.startswith("_"):
                importlib.import_module(f"{specs.__name__}.{m.name}")
        _loaded = True
    return REGISTRY
