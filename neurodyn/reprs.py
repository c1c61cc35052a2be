"""Concise reprs for settings objects: only what differs from the defaults, as scikit-learn
prints its estimators, so that ``Solver(method='rk4', step_size=0.1)`` reads as it was written
(Brian2's objects print as briefly)."""

from __future__ import annotations

import dataclasses
from typing import Any


def concise_repr(obj: Any) -> str:
    """``Name(field=value, ...)`` with the fields of a dataclass or NamedTuple whose values
    differ from their defaults (every field without a default is shown)."""
    missing = dataclasses.MISSING
    if dataclasses.is_dataclass(obj):
        items = []
        for f in dataclasses.fields(obj):
            if not f.repr:
                continue
            default = f.default if f.default is not missing else (
                f.default_factory() if f.default_factory is not missing else missing)
            items.append((f.name, default))
    else:  # a NamedTuple
        defaults = type(obj)._field_defaults
        items = [(name, defaults.get(name, missing)) for name in obj._fields]
    shown = [f"{name}={getattr(obj, name)!r}" for name, default in items
             if default is missing or getattr(obj, name) != default]
    return f"{type(obj).__name__}({', '.join(shown)})"
