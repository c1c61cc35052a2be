"""Named data sets and a user's own files: :func:`load_digits` (scikit-learn's 8x8 digits, shipped
inside its wheel: the default, available everywhere), :func:`load_random_patterns` (generated),
MNIST, CIFAR-10, Tiny ImageNet and COCO from standard files under the data root, and a user's
``.npz`` file or image folder (:func:`load_dataset`). A named data set, once read, is kept in
memory for the process.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from neurodyn.errors import InputFileError

from .images import IMAGE_SUFFIXES, ImageSet, _channels_first, _to_labels, _to_tensor
from .reading import read_gzip, read_image, read_json, read_npz
from .root import data_file, data_remedy, data_root

_DIGIT_NAMES = tuple("0123456789")


def load_digits() -> ImageSet:
    """scikit-learn's 1,797 handwritten digits, 1x8x8, pixels 0..16 scaled to [0, 1]; labels 0..9.

    The data ship inside the scikit-learn wheel: this set is available without any download.
    """
    from sklearn.datasets import load_digits as sklearn_digits  # slow import: only when used

    digits = sklearn_digits()
    images = _to_tensor(digits.images[:, None] / 16.0, "digits")
    labels = torch.from_numpy(digits.target.astype(np.int64))
    return ImageSet(images, labels, "digits", _DIGIT_NAMES)


RANDOM_PATTERNS_SEED = 1982  # the year of Hopfield's paper; fixed, so the set is the same everywhere


def load_random_patterns(n: int = 1000, shape: tuple[int, int] = (28, 28)) -> ImageSet:
    """``n`` uncorrelated binary patterns, 1xHxW, each pixel 0 or 1 with probability 1/2; unlabelled.

    The patterns of the classical capacity analyses (Hopfield 1982; Amit, Gutfreund & Sompolinsky
    1985; Krotov & Hopfield 2016): the data the ``hn`` and ``dam`` presets are made for, which
    read out ``sign`` and store them as +-1 (:func:`to_bipolar`). Generated from a fixed seed
    (:data:`RANDOM_PATTERNS_SEED`), so every machine gets the same set; nothing is read.
    """
    rng = np.random.default_rng(RANDOM_PATTERNS_SEED)
    bits = rng.integers(0, 2, size=(n, 1, *shape)).astype(np.float32)
    return ImageSet(_to_tensor(bits, "random_patterns"), None, "random_patterns")


def _read_idx(path: Path, magic: int, remedy: str) -> np.ndarray:
    """Read a gzip IDX file of unsigned bytes (magic 2049 for labels, 2051 for images).

    Raises:
        InputFileError: the file is not gzip, is truncated, has another magic number, or its
            length does not match the sizes in its header.
    """
    data = read_gzip(path, remedy)
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise InputFileError(path, f"is too short for an IDX header ({len(data)} bytes, expected "
                             f"at least {header}): not an IDX file, or truncated", remedy)
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise InputFileError(path, f"IDX magic number {found}, expected {magic}", remedy)
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    values = np.frombuffer(data, dtype=np.uint8, offset=header)
    if values.size != math.prod(dims):
        raise InputFileError(path, f"header gives shape {dims} but the file has {values.size} "
                             "values (truncated or damaged)", remedy)
    return values.reshape(dims)


def _mnist_file(root: str | os.PathLike[str] | None, file: str, magic: int) -> tuple[np.ndarray, Path, str]:
    """One MNIST IDX file under the data root: its array, path and remedy."""
    origin = "MNIST test set from the MNIST database (Y. LeCun, C. Cortes, C. Burges)"
    path = data_file(root, "mnist", file, origin)
    remedy = data_remedy("mnist", file, origin)
    return _read_idx(path, magic, remedy), path, remedy


def load_mnist(root: str | os.PathLike[str] | None = None) -> ImageSet:
    """The MNIST test set: 10,000 digits 1x28x28 from ``mnist/t10k-*-ubyte.gz`` in the data root."""
    images, images_path, images_remedy = _mnist_file(root, "t10k-images-idx3-ubyte.gz", 2051)
    labels, labels_path, labels_remedy = _mnist_file(root, "t10k-labels-idx1-ubyte.gz", 2049)
    return ImageSet(
        _to_tensor(images[:, None], images_path, images_remedy),
        _to_labels(labels, len(images), labels_path, labels_remedy),
        "mnist",
        _DIGIT_NAMES,
    )


def load_cifar10(root: str | os.PathLike[str] | None = None) -> ImageSet:
    """The CIFAR-10 test set: 10,000 images 3x32x32 from ``cifar10/test_jpeg.npz`` in the data root.

    The file holds ``x`` uint8 (N, 32, 32, 3), ``y`` and ``classes``, decoded from a public JPEG
    copy of CIFAR-10 (so its pixel statistics differ slightly from the original binary release).
    """
    origin = "CIFAR-10 test set (x uint8 (N,32,32,3), y, classes) from a JPEG copy of CIFAR-10"
    path = data_file(root, "cifar10", "test_jpeg.npz", origin)
    return replace(_images_npz(path, data_remedy("cifar10", "test_jpeg.npz", origin)), name="cifar10")


def load_tinyimagenet(root: str | os.PathLike[str] | None = None) -> ImageSet:
    """A Tiny ImageNet validation subset, 2,000 images 3x64x64 of 200 classes (``names``).

    Read from ``tinyimagenet/val_2000.npz`` under the data root (``x`` uint8 (N, 64, 64, 3),
    ``y`` class indices, ``names`` class names).
    """
    origin = "Tiny ImageNet validation subset (x uint8 (N,64,64,3), y, names)"
    path = data_file(root, "tinyimagenet", "val_2000.npz", origin)
    remedy = data_remedy("tinyimagenet", "val_2000.npz", origin)
    return replace(_images_npz(path, remedy), name="tinyimagenet")


_NPZ_REMEDY = ("write it with numpy.savez(file, x=images, y=labels): x uint8 pixels 0..255 or "
               "floats in [0, 1], shape (n, H, W), (n, H, W, C) or (n, C, H, W); y optional")


def load_npz(path: str | os.PathLike[str]) -> ImageSet:
    """Images from a user's ``.npz`` file.

    Arrays:
        x (required): uint8 pixels 0..255 (scaled by 1/255) or floats already in [0, 1], of shape
            (n, H, W) (one channel), (n, H, W, C) or (n, C, H, W). A 4-d array is read as
            channel-last (n, H, W, C) when its last size is 1, 3 or 4 and its second is not;
            otherwise as channel-first (n, C, H, W).
        y (optional): n integer labels.
        classes or names (optional): class names, taken in that order of preference.

    Raises:
        FileNotFoundError: no such file.
        InputFileError (a ValueError): the file is empty, truncated or not an ``.npz`` archive;
            ``x`` is missing, empty, holds Python objects, has the wrong number of dimensions or
            dtype, holds NaN or infinite values or floats outside [0, 1]; ``y`` does not match
            ``x``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found (expected an .npz file with images 'x' and optional labels 'y')"
        )
    return _images_npz(path, _NPZ_REMEDY)


def _images_npz(path: Path, remedy: str) -> ImageSet:
    """The images, labels and class names of the ``.npz`` file ``path`` (see :func:`load_npz`);
    ``remedy`` says how to get a good file when this one is not."""
    data = read_npz(path, ("x", "y", "classes", "names"), remedy)
    images = _to_tensor(_channels_first(data["x"], path, remedy), path, remedy)
    labels = _to_labels(data["y"], len(images), path, remedy) if "y" in data else None
    class_names = next(
        (tuple(map(str, data[key])) for key in ("classes", "names") if key in data), None
    )
    return ImageSet(images, labels, path.stem, class_names)


def load_image_folder(
    path: str | os.PathLike[str], size: tuple[int, int] | None = None, grayscale: bool = False
) -> ImageSet:
    """Every .png, .jpg, .jpeg and .bmp file in a folder (not its subfolders), sorted by name.

    Each image is converted to RGB (3 channels; an alpha channel is dropped) or, with
    ``grayscale``, to one luminance channel, then resized to (H, W) = ``size`` (bilinear) when
    given. The images carry no labels.

    Raises:
        FileNotFoundError: ``path`` is not a directory.
        InputFileError (a ValueError): a file is not an image PIL can read, or is truncated.
        ValueError: the folder holds no images, or (without ``size``) images differ in size.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} is not a directory")
    files = sorted(
        p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    )
    if not files:
        raise ValueError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    remedy = "replace it with a complete image file, or move it out of the folder"
    arrays = [read_image(file, "L" if grayscale else "RGB", size, remedy) for file in files]
    for file, array in zip(files, arrays):
        if array.shape != arrays[0].shape:
            (h, w), (h0, w0) = array.shape[:2], arrays[0].shape[:2]
            raise ValueError(
                f"{file.name} is {h}x{w} (HxW) but {files[0].name} is {h0}x{w0}: "
                "pass size=(H, W) to resize all images"
            )
    stacked = np.stack(arrays)
    stacked = stacked[:, None] if grayscale else stacked.transpose(0, 3, 1, 2)
    return ImageSet(_to_tensor(stacked, folder), None, folder.name)


def load_coco(root: str | os.PathLike[str] | None = None) -> ImageSet:
    """159 MS-COCO 2017 images (3x128x128, centre-cropped) with their 5 human captions each.

    Read from ``coco_mini/images_128.npz`` (``x`` uint8 (N,128,128,3), ``image_id``) and
    ``coco_mini/captions.json`` (str(image_id) -> captions) under the data root: the
    image-caption pairs of the Hopfield Encoding Networks experiments. Unlabelled.
    """
    origin = "MS-COCO 2017 mini set (x uint8 (159,128,128,3), image_id) with captions.json"
    path = data_file(root, "coco_mini", "images_128.npz", origin)
    remedy = data_remedy("coco_mini", "images_128.npz", origin)
    npz = read_npz(path, ("x", "image_id"), remedy, required=("x", "image_id"))
    images = _to_tensor(_channels_first(npz["x"], path, remedy), path, remedy)
    ids = npz["image_id"]
    if ids.shape != (len(images),) or not np.issubdtype(ids.dtype, np.integer):
        raise InputFileError(path, f"expected {len(images)} integer image ids (one per image), "
                             f"got {ids.dtype} of shape {ids.shape}", remedy)
    captions = _coco_captions(data_file(root, "coco_mini", "captions.json", origin),
                              [int(i) for i in ids], data_remedy("coco_mini", "captions.json", origin))
    return ImageSet(images, None, "coco", captions=captions)


def _coco_captions(path: Path, ids: list[int], remedy: str) -> tuple[tuple[str, ...], ...]:
    """The captions of each image id from COCO's ``captions.json`` (str(image_id) -> captions)."""
    table = read_json(path, remedy)
    if not isinstance(table, dict):
        raise InputFileError(path, "must map image ids to lists of captions, holds a "
                             f"{type(table).__name__}", remedy)
    missing = [i for i in ids if str(i) not in table]
    if missing:
        raise InputFileError(path, f"has no captions for image ids {missing[:5]}", remedy)
    bad = [i for i in ids if not isinstance(table[str(i)], list)
           or not all(isinstance(c, str) for c in table[str(i)])]
    if bad:
        raise InputFileError(path, f"the captions of image ids {bad[:5]} are not lists of strings", remedy)
    return tuple(tuple(table[str(i)]) for i in ids)


_LOADERS: dict[str, Callable[[str | os.PathLike[str] | None], ImageSet]] = {
    "digits": lambda root: load_digits(),
    "mnist": load_mnist,
    "cifar10": load_cifar10,
    "tinyimagenet": load_tinyimagenet,
    "coco": load_coco,
    "random_patterns": lambda root: load_random_patterns(),
}
DATASETS = tuple(_LOADERS)  # (neurodyn.names.DATASETS, which the command line lists: tests/test_names.py)
_BUILT_IN = ("digits", "random_patterns")  # need no data root


@functools.lru_cache(maxsize=4)
def _load_named(name: str, root: str | None) -> ImageSet:
    """A named data set, kept in memory: a sweep evaluates many points of one data set in one
    worker process. Callers never modify the images in place (subsets and corruptions copy)."""
    return _LOADERS[name](root)


def load_dataset(
    name_or_path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None
) -> ImageSet:
    """Load a data set by name (one of :data:`DATASETS`), an ``.npz`` file or an image folder.

    A string that is a known name is taken as the name even where a file of that name exists;
    ``root`` is the data root for the named real data sets (``digits`` and ``random_patterns``
    need none).
    """
    if isinstance(name_or_path, str) and name_or_path in _LOADERS:
        return _load_named(name_or_path, None if name_or_path in _BUILT_IN else str(data_root(root)))
    path = Path(name_or_path)
    if path.suffix == ".npz":
        return load_npz(path)
    if path.is_dir():
        return load_image_folder(path)
    raise ValueError(
        f"unknown data set {str(name_or_path)!r}: expected one of {', '.join(DATASETS)}, "
        "a path to an .npz file or an image folder"
    )
