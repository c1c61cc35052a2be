"""Reading data files defensively: a file that cannot be read as what it should be is an
:class:`~neurodyn.errors.InputFileError` that names it, says what is wrong and how to get a good
one, never a traceback from inside numpy, zipfile, gzip, json or PIL.

- :func:`read_npz`: named arrays of an ``.npz`` file; object arrays are never unpickled.
- :func:`read_gzip`: the bytes of a gzip file (MNIST's IDX files).
- :func:`read_json`: a JSON file (COCO's captions).
- :func:`read_image`: one image file as an array, converted and resized.
"""

from __future__ import annotations

import gzip
import json
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from neurodyn.errors import InputFileError

_ZIP_MAGIC, _NPY_MAGIC = b"PK\x03\x04", b"\x93NUMPY"
_KINDS = {"y": "integer", "image_id": "integer", "classes": "string", "names": "string"}


def read_npz(path: Path, keys: Sequence[str], remedy: str,
             required: Sequence[str] = ("x",)) -> dict[str, np.ndarray]:
    """The arrays ``keys`` that the ``.npz`` file ``path`` holds, read at once; every key of
    ``required`` must be there.

    Raises:
        InputFileError: the file is empty, truncated, not an ``.npz`` archive, lacks a required
            array, or an array is damaged or holds Python objects (``allow_pickle`` stays off).
    """
    try:
        opened = np.load(path, allow_pickle=False)
    except (ValueError, EOFError, zipfile.BadZipFile):
        raise InputFileError(path, _not_npz(path), remedy) from None
    if not isinstance(opened, np.lib.npyio.NpzFile):
        raise InputFileError(path, "holds a single array (.npy format), not an .npz archive of "
                             "named arrays", remedy)
    with opened:
        missing = [key for key in required if key not in opened.files]
        if missing:
            found = ", ".join(opened.files) or "nothing"
            raise InputFileError(path, f"no array {missing[0]!r} in the file; found {found}", remedy)
        return {key: _array(opened, key, path, remedy) for key in keys if key in opened.files}


def _not_npz(path: Path) -> str:
    """What is wrong with a file that ``np.load`` could not open, judged by its first bytes."""
    with open(path, "rb") as fh:
        head = fh.read(len(_NPY_MAGIC))
    if not head:
        return "is empty (0 bytes), not an .npz archive"
    if head.startswith(_ZIP_MAGIC):
        return "is truncated or damaged (it starts like a zip archive but cannot be read as one)"
    return "is not an .npz file (it does not start like a zip archive of arrays)"


def _array(npz: Any, key: str, path: Path, remedy: str) -> np.ndarray:
    """The array ``key`` of an open ``.npz`` archive (an ``np.lib.npyio.NpzFile``)."""
    try:
        value = npz[key]
    except ValueError as err:
        if "allow_pickle" in str(err) or "Object arrays" in str(err):
            kind = _KINDS.get(key, "numeric")
            raise InputFileError(path, f"array {key!r} holds Python objects (an object array, which "
                                 f"is never unpickled); it must be a {kind} array", remedy) from None
        raise InputFileError(path, f"array {key!r} is damaged ({err})", remedy) from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as err:
        raise InputFileError(path, f"array {key!r} is damaged or truncated ({err})", remedy) from None
    if not isinstance(value, np.ndarray):
        raise InputFileError(path, f"entry {key!r} is not a numpy array (not in .npy format)", remedy)
    return value


def read_gzip(path: Path, remedy: str) -> bytes:
    """The uncompressed bytes of the gzip file ``path``.

    Raises:
        InputFileError: the file is not gzip, is truncated, or fails its checksum.
    """
    try:
        with gzip.open(path, "rb") as fh:
            return fh.read()
    except EOFError:
        problem = "is truncated (the gzip stream ends before its end marker)"
    except gzip.BadGzipFile as err:
        problem = ("is not a gzip file" if str(err).startswith("Not a gzipped")
                   else f"is damaged ({err})")
    except zlib.error as err:
        problem = f"is damaged (the compressed data are corrupt: {err})"
    raise InputFileError(path, problem, remedy)


def read_json(path: Path, remedy: str) -> Any:
    """The JSON value in the UTF-8 file ``path``.

    Raises:
        InputFileError: the file is not UTF-8 or not valid JSON (say, truncated).
    """
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as err:
        problem = f"is not valid JSON, truncated or damaged ({err})"
    except UnicodeDecodeError as err:
        problem = f"is not UTF-8 text ({err.reason} at byte {err.start})"
    raise InputFileError(path, problem, remedy)


def read_image(path: Path, mode: str, size: tuple[int, int] | None, remedy: str) -> np.ndarray:
    """The image file ``path`` converted to PIL ``mode`` ("L" or "RGB") and resized to (H, W) =
    ``size`` (bilinear) when given, as an array (H, W) or (H, W, 3).

    Raises:
        InputFileError: the file is not an image PIL can read, or is truncated or damaged.
    """
    from PIL import Image, UnidentifiedImageError  # only needed here

    try:
        with Image.open(path) as opened:
            image = opened.convert(mode)
            if size is not None:
                image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            return np.asarray(image)
    except PermissionError:
        raise
    except UnidentifiedImageError:
        problem = "is not an image file that PIL can read (unknown format, empty or damaged)"
    except (OSError, SyntaxError, ValueError) as err:
        truncated = "truncated" in str(err).lower()
        problem = f"is {'truncated' if truncated else 'damaged'} ({err})"
    raise InputFileError(path, problem, remedy)
