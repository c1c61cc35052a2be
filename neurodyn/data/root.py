"""The data root: where data sets and pretrained weights are read from (``$NEURODYN_DATA``).

Nothing is downloaded; a missing file is an error that names it and says how to get it.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..names import DATA_ENV


def data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The folder that holds the standard data files: ``root`` if given, else ``$NEURODYN_DATA``.

    Raises:
        FileNotFoundError: neither is set, or the folder does not exist.
    """
    if root is None:
        root = os.environ.get(DATA_ENV)
        if not root:
            raise FileNotFoundError(
                f"no data root: set the {DATA_ENV} environment variable to the folder that holds "
                f"mnist/, cifar10/ and tinyimagenet/ (export {DATA_ENV}=/path/to/data), "
                "or pass root=... (--data-root on the command line)"
            )
    path = Path(root).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(
            f"data root {path} is not a directory: point {DATA_ENV} (or root=...) at the folder "
            "that holds mnist/, cifar10/ and tinyimagenet/"
        )
    return path


def data_file(root: str | os.PathLike[str] | None, folder: str, file: str, origin: str) -> Path:
    """``folder/file`` under the data root; a missing file is a FileNotFoundError that names it
    and says what it is (``origin``) and where it belongs (codecs read their weights this way)."""
    path = data_root(root) / folder / file
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found. {_where(folder, file, origin)}")
    return path


def data_remedy(folder: str, file: str, origin: str) -> str:
    """How to get a good copy of the data file ``folder/file`` (what it is: ``origin``): the
    remedy of an :class:`~neurodyn.errors.InputFileError` for a corrupt or truncated one."""
    return f"replace it with a good copy of the {_where(folder, file, origin)}"


def _where(folder: str, file: str, origin: str) -> str:
    return f"{origin}: place {file} in the {folder}/ folder of the data root (${DATA_ENV} or root=...)"
