"""Provenance stored with every result: the versions of the packages it depends on."""

from __future__ import annotations

import functools
import json
import platform
from importlib import metadata


@functools.cache
def package_versions() -> str:
    """Versions of the packages a result depends on, as a JSON string for ``attrs`` (read once
    per process: reading the packages' metadata costs about 5 ms)."""
    names = ("neurodyn", "torch", "torchdiffeq", "numpy", "xarray", "scipy")
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return json.dumps(versions, sort_keys=True)
