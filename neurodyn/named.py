"""Objects named ``"module:attribute"``: a user's similarity, Lagrangian or sweep point
function, given by name on the command line, in a TOML model file or in a saved run, and
imported on first use. The one place that turns such a name into the object."""

from __future__ import annotations

import importlib


def import_named(spec: str, what: str) -> object:
    """The object that ``"module:attribute"`` names (``attribute`` may be dotted); a
    ``ValueError`` naming ``what`` it should be and why it cannot be imported."""
    module, _, attribute = spec.partition(":")
    if not module or not attribute:
        raise ValueError(f"a {what} given by import name is 'module:attribute', got {spec!r}")
    try:
        obj: object = importlib.import_module(module.strip())
        for part in attribute.strip().split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"cannot import the {what} {spec!r}: {err}") from None
    return obj
