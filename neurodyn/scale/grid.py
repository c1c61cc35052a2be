"""A sweep's grid: its point function (by name), its axes, zipped dimensions and fixed values,
and its configuration file (:mod:`neurodyn.scale.sweep` runs it)."""


from __future__ import annotations

import inspect
import itertools
import json
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputFileError
from ..named import import_named
from .points import PointFunction

if TYPE_CHECKING:
    pass

# --------------------------------------------------------------------------- point functions
#: Point functions by short name; any other is given as ``"module:function"``.
POINT_FUNCTIONS: dict[str, str] = {"recall": "neurodyn.jobs.recall:recall_point"}


def resolve_function(spec: str) -> PointFunction:
    """A point function by name (:data:`POINT_FUNCTIONS`) or as ``"module:function"`` with an
    ``outputs`` attribute naming the scalars it returns."""
    if ":" not in POINT_FUNCTIONS.get(spec, spec):
        raise ValueError(f"unknown point function {spec!r}; known: {', '.join(POINT_FUNCTIONS)} or 'module:function'")
    fn: Any = import_named(POINT_FUNCTIONS.get(spec, spec), "point function")
    if not isinstance(getattr(fn, "outputs", None), tuple) or not fn.outputs:
        raise ValueError(f"point function {spec!r} needs an 'outputs' attribute: a tuple of output names")
    return fn


# --------------------------------------------------------------------------- the grid
@dataclass(frozen=True)
class Grid:
    """Product axes, zipped dimensions and fixed values of a sweep."""

    axes: dict[str, list] = field(default_factory=dict)
    zipped: dict[str, dict[str, list]] = field(default_factory=dict)
    fixed: dict[str, object] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: dict) -> Grid:
        unknown = set(config) - {"grid", "zip", "fixed", "sweep"}
        if unknown:
            raise ValueError(f"unknown sweep config tables {sorted(unknown)}; known: sweep, grid, zip, fixed")
        grid = cls({k: list(v) if isinstance(v, (list, tuple)) else [v] for k, v in config.get("grid", {}).items()},
                   {k: {p: list(vals) for p, vals in t.items()} for k, t in config.get("zip", {}).items()},
                   dict(config.get("fixed", {})))
        grid.validate()
        return grid

    def validate(self) -> None:
        names: list[str] = list(self.axes) + [p for t in self.zipped.values() for p in t] + list(self.fixed)
        repeated = {n for n in names if names.count(n) > 1}
        if repeated:
            raise ValueError(f"parameters given more than once: {sorted(repeated)}")
        for name, values in self.axes.items():
            if not values:
                raise ValueError(f"grid axis {name!r} is empty")
            if len(set(map(repr, values))) != len(values):
                raise ValueError(f"grid axis {name!r} repeats a value: {values}")
        for dim, table in self.zipped.items():
            if dim in self.axes:
                raise ValueError(f"zip dimension {dim!r} is also a grid axis")
            lengths = {p: len(v) for p, v in table.items()}
            if not table or 0 in lengths.values() or len(set(lengths.values())) != 1:
                raise ValueError(f"zip {dim!r} needs non-empty lists of one length, got {lengths}")

    @property
    def parameters(self) -> list[str]:
        return list(self.axes) + [p for t in self.zipped.values() for p in t] + list(self.fixed)

    @property
    def dims(self) -> tuple[str, ...]:
        return tuple(self.axes) + tuple(self.zipped)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(v) for v in self.axes.values()) + tuple(len(next(iter(t.values())))
                                                                 for t in self.zipped.values())

    def points(self) -> Iterator[tuple[tuple[int, ...], dict]]:
        """Every point: its index in the store and its full parameters."""
        for index in itertools.product(*(range(n) for n in self.shape)):
            params = dict(self.fixed)
            for (name, values), i in zip(self.axes.items(), index):
                params[name] = values[i]
            for (_, table), i in zip(self.zipped.items(), index[len(self.axes):]):
                params.update({p: v[i] for p, v in table.items()})
            yield index, params

    def to_json(self) -> str:
        return json.dumps({"axes": self.axes, "zipped": self.zipped, "fixed": self.fixed}, sort_keys=True)


def check_parameters(fn: Callable, grid: Grid) -> None:
    """Fail before any work when the grid names a parameter the point function does not take."""
    sig = inspect.signature(fn)
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return
    unknown = set(grid.parameters) - set(sig.parameters)
    if unknown:
        raise ValueError(f"unknown sweep parameter(s) {sorted(unknown)}; {fn.__name__} takes "
                         f"{', '.join(sig.parameters)}")



def load_config(path: str | Path) -> dict:
    """A sweep's TOML configuration; a missing file or one that is not TOML is named."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"sweep config not found: {path}")
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise InputFileError(path, f"is not valid TOML ({err})", "a sweep config has [sweep], [grid], "
                             "[zip.NAME] and [fixed] tables (docs/sweeps.md)") from None


