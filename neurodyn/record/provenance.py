"""Provenance stored with every result: the versions of the packages it depends on, and content
hashes of what it was made from."""

from __future__ import annotations

import functools
import hashlib
import json
import platform
from importlib import metadata
from typing import Any

import numpy as np
import torch


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


def digest(*values: Any) -> str:
    """A SHA-256 of values: tensors and arrays by dtype, shape and bytes, others by ``repr``."""
    h = hashlib.sha256()
    for value in values:
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        if isinstance(value, np.ndarray):
            h.update(f"{value.dtype}{value.shape}".encode())
            h.update(np.ascontiguousarray(value).tobytes())
        else:
            h.update(repr(value).encode())
        h.update(b"\0")
    return h.hexdigest()


def flat_attributes(prefix: str, settings: dict[str, Any], skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Settings as plain netCDF attributes ``PREFIX_KEY`` (CF style, no JSON): booleans as 0/1,
    unset (None) ones left out, keys in ``skip`` left to attributes of their own."""
    return {f"{prefix}_{key}": int(value) if isinstance(value, bool) else value
            for key, value in settings.items() if value is not None and key not in skip}

