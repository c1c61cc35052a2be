"""NetCDF result files, written atomically (h5netcdf)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import xarray as xr

from ..errors import InputFileError
from ..files import atomic_write


def netcdf_attr(value: object) -> object:
    """netCDF attributes hold strings, numbers and arrays: encode the rest as JSON."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (str, int, float, np.number, np.ndarray)):
        return value
    return json.dumps(value, sort_keys=True)


def save_netcdf(ds: xr.Dataset, path: str | os.PathLike, *, overwrite: bool = True) -> Path:
    """Write ``ds`` to NetCDF (h5netcdf) atomically (:func:`neurodyn.files.atomic_write`): a
    temporary file is renamed into place, so an interrupted write never leaves a corrupt file at
    ``path``, and one writer at a time. ``overwrite=False`` refuses an existing file
    (:class:`~neurodyn.errors.OutputError`). Returns ``path``."""
    out = ds.copy()
    out.attrs = {k: netcdf_attr(v) for k, v in ds.attrs.items()}
    atomic_write(path, lambda tmp: out.to_netcdf(tmp, engine="h5netcdf"), overwrite=overwrite)
    return Path(path)


def load_netcdf(path: str | os.PathLike) -> xr.Dataset:
    """Read a saved run fully into memory (the file is closed afterwards). A missing file raises
    ``FileNotFoundError``; a folder, or a file that is not NetCDF (truncated, still being copied,
    another format), an :class:`~neurodyn.errors.InputFileError` naming it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such result file: {path}")
    if path.is_dir():
        raise InputFileError(path, "is a folder, not a NetCDF file", "give a .nc file written by neurodyn")
    try:
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            return ds.load()
    except (OSError, ValueError) as err:
        raise InputFileError(path, f"cannot be read as NetCDF ({err})",
                             "give a file written by neurodyn recall or save_netcdf (a truncated file, or one "
                             "still being copied, reads like this)") from err
