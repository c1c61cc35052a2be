"""Modules that moved into the packages by stage (issue 16) keep their old paths for one release:
each old module is three lines that call :func:`moved`."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from typing import Any


def moved(old: str, new: str) -> Callable[[str], Any]:
    """Warn that module ``old`` moved to ``new`` (a DeprecationWarning, once per import of
    ``old``) and return the module ``__getattr__`` that resolves ``old``'s names from ``new``
    (PEP 562), so that ``from old import name`` and stored ``"old:name"`` specs keep working."""
    warnings.warn(f"{old} is deprecated and goes in the next release; import {new}", DeprecationWarning,
                  stacklevel=3)
    target = importlib.import_module(new)

    def __getattr__(name: str) -> Any:  # noqa: N807 - a module's __getattr__
        return getattr(target, name)

    return __getattr__
