"""NetCDF result files, written atomically (h5netcdf)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

if TYPE_CHECKING:
    pass

def netcdf_attr(value: object) -> object:
    """netCDF attributes hold strings, numbers and arrays: encode the rest as JSON."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (str, int, float, np.number, np.ndarray)):
        return value
    return json.dumps(value, sort_keys=True)


def save_netcdf(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write ``ds`` to NetCDF (h5netcdf) atomically: a temporary file is renamed into place, so
    an interrupted write never leaves a corrupt file at ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = ds.copy()
    out.attrs = {k: netcdf_attr(v) for k, v in ds.attrs.items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        out.to_netcdf(tmp, engine="h5netcdf")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_netcdf(path: str | os.PathLike) -> xr.Dataset:
    """Read a saved run fully into memory (the file is closed afterwards)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such result file: {path}")
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        return ds.load()
