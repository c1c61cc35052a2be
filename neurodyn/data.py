"""Image data sets and corruptions for associative-memory experiments.

Images are float32 tensors with values in [0, 1] and shape (n, C, H, W), channel-first as
torchvision gives them; a memory or query vector is an image flattened in that order,
``x.reshape(n, -1)``.

Data sets: :func:`load_digits` (scikit-learn's 8x8 digits, shipped inside its wheel: the default,
available everywhere), MNIST, CIFAR-10 and Tiny ImageNet from standard files under a data root
(``$NEURODYN_DATA``), and a user's own ``.npz`` file or image folder. Nothing is downloaded; a
named data set, once read, is kept in memory for the process.

Corruptions turn a stored image into a query, as in the Universal Hopfield Networks experiments
(Millidge et al., 2022). Where the authors' code and the paper's text differ, both variants are
offered: ``gaussian_noise(..., absolute=True)`` and ``mask_fraction(..., side="bottom")`` are what
the code runs. The feature-space paper (Salvatori et al., 2023, section 3, "Set-up") adds
corruptions that move pixels or change colours: :func:`crop_zoom`, :func:`color_filter`,
:func:`rotate90`, masking with uniform noise (``mask_fraction(..., fill="noise")``) and Gaussian
noise of non-zero mean (``gaussian_noise(..., mean=...)``). Corruptions never modify their input,
and draw random numbers only from the ``generator`` argument (torch's global generator when it is
None), on ``x``'s device.
"""

from __future__ import annotations

import functools
import gzip
import inspect
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

DATA_ENV = "NEURODYN_DATA"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
_CHANNELS = (1, 3, 4)
_DIGIT_NAMES = tuple("0123456789")


@dataclass(frozen=True, eq=False)
class ImageSet:
    """A stack of images with optional integer labels.

    Attributes:
        images: (n, C, H, W) float tensor with values in [0, 1].
        labels: (n,) int64 class indices, or None for unlabelled images.
        name: a short name for reports (the data set, file or folder name).
        class_names: the names of the classes that ``labels`` index, when known.
        captions: each image's captions (one tuple of strings per image), when known.
    """

    images: Tensor
    labels: Tensor | None
    name: str
    class_names: tuple[str, ...] | None = None
    captions: tuple[tuple[str, ...], ...] | None = None

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or not self.images.is_floating_point():
            raise ValueError(
                "images must be a float tensor of shape (n, C, H, W), got "
                f"{self.images.dtype} of shape {tuple(self.images.shape)}"
            )
        if self.labels is not None and self.labels.shape != (len(self),):
            raise ValueError(
                f"labels must have shape ({len(self)},), got {tuple(self.labels.shape)}"
            )
        if self.captions is not None and len(self.captions) != len(self):
            raise ValueError(f"captions must give one tuple per image ({len(self)}), got {len(self.captions)}")

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def shape(self) -> tuple[int, int, int]:
        """The (C, H, W) shape of one image."""
        c, h, w = self.images.shape[1:]
        return c, h, w

    @property
    def n_features(self) -> int:
        """The length C * H * W of a flattened image."""
        return math.prod(self.shape)

    def flat(self) -> Tensor:
        """The images as (n, C * H * W) vectors, flattened channel-first."""
        return self.images.reshape(len(self), -1)

    def unflatten(self, x_flat: Tensor) -> Tensor:
        """Reshape (k, C * H * W) vectors (or one such vector) to (k, C, H, W) images."""
        if x_flat.ndim not in (1, 2) or x_flat.shape[-1] != self.n_features:
            raise ValueError(
                f"expected vectors of length {self.n_features} (images of shape {self.shape}), "
                f"got shape {tuple(x_flat.shape)}"
            )
        return x_flat.reshape(-1, *self.shape)

    def resized(self, side: int) -> ImageSet:
        """The images resized to ``side`` x ``side`` (area averaging when shrinking, bilinear when
        growing), e.g. to make 128-pixel COCO images cheaper to encode."""
        if side < 1:
            raise ValueError(f"side must be a positive number of pixels, got {side}")
        mode = "area" if side <= min(self.images.shape[-2:]) else "bilinear"
        x = F.interpolate(self.images, size=(side, side), mode=mode)
        return replace(self, images=x.clamp(0.0, 1.0))

    def subset(self, indices: Sequence[int] | Tensor) -> ImageSet:
        """The images (and labels) at ``indices``, in that order."""
        index = torch.as_tensor(indices, dtype=torch.long)
        if index.ndim != 1:
            raise ValueError(f"indices must be one-dimensional, got shape {tuple(index.shape)}")
        labels = None if self.labels is None else self.labels[index]
        captions = None if self.captions is None else tuple(self.captions[i] for i in index.tolist())
        return replace(self, images=self.images[index], labels=labels, captions=captions)

    def take(self, n: int, offset: int = 0) -> ImageSet:
        """The ``n`` consecutive images starting at ``offset``; all of them must exist."""
        if n < 0 or offset < 0 or offset + n > len(self):
            raise ValueError(f"cannot take {n} images from offset {offset} of {len(self)}")
        return self.subset(torch.arange(offset, offset + n))


# ---------------------------------------------------------------------------------------------
# Loading


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
        raise FileNotFoundError(
            f"{path} not found. {origin}: place {file} in the {folder}/ folder of the data root "
            f"(${DATA_ENV} or root=...)"
        )
    return path


def _channels_first(x: np.ndarray, source: object) -> np.ndarray:
    """(n, H, W), (n, H, W, C) or (n, C, H, W) -> (n, C, H, W) (see :func:`load_npz`)."""
    if x.ndim == 3:
        return x[:, None]
    if x.ndim != 4:
        raise ValueError(
            f"{source}: x must have shape (n, H, W), (n, H, W, C) or (n, C, H, W), "
            f"got {x.ndim} dimensions {x.shape}"
        )
    if x.shape[3] in _CHANNELS and x.shape[1] not in _CHANNELS:
        return x.transpose(0, 3, 1, 2)
    return x


def _to_tensor(x: np.ndarray, source: object) -> Tensor:
    """An (n, C, H, W) array, uint8 in 0..255 or float in [0, 1], as a float32 tensor in [0, 1]."""
    if x.shape[0] == 0:
        raise ValueError(f"{source}: no images")
    if x.dtype == np.uint8:
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).div_(255)
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{source}: x must be uint8 (0..255) or float (0..1), got {x.dtype}")
    if not np.isfinite(x).all():
        raise ValueError(f"{source}: x contains NaN or infinite values")
    low, high = x.min(), x.max()
    if low < 0 or high > 1:
        raise ValueError(
            f"{source}: float x must lie in [0, 1], got values in [{low}, {high}] "
            "(store 0..255 pixels as uint8)"
        )
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def _to_labels(y: np.ndarray, n: int, source: object) -> Tensor:
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            f"{source}: expected {n} integer labels (one per image), "
            f"got {y.dtype} of shape {y.shape}"
        )
    return torch.from_numpy(y.astype(np.int64))


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


def _read_idx(path: Path, magic: int) -> np.ndarray:
    """Read a gzip IDX file of unsigned bytes (magic 2049 for labels, 2051 for images)."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise ValueError(f"{path}: IDX magic number {found}, expected {magic}")
    ndim = magic & 0xFF
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    values = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if values.size != math.prod(dims):
        raise ValueError(f"{path}: header gives shape {dims} but the file has {values.size} values")
    return values.reshape(dims)


def load_mnist(root: str | os.PathLike[str] | None = None) -> ImageSet:
    """The MNIST test set: 10,000 digits 1x28x28 from ``mnist/t10k-*-ubyte.gz`` in the data root."""
    origin = "MNIST test set from the MNIST database (Y. LeCun, C. Cortes, C. Burges)"
    images = _read_idx(data_file(root, "mnist", "t10k-images-idx3-ubyte.gz", origin), 2051)
    labels = _read_idx(data_file(root, "mnist", "t10k-labels-idx1-ubyte.gz", origin), 2049)
    return ImageSet(
        _to_tensor(images[:, None], "MNIST"),
        _to_labels(labels, len(images), "MNIST"),
        "mnist",
        _DIGIT_NAMES,
    )


def load_cifar10(root: str | os.PathLike[str] | None = None) -> ImageSet:
    """The CIFAR-10 test set: 10,000 images 3x32x32 from ``cifar10/test_jpeg.npz`` in the data root.

    The file holds ``x`` uint8 (N, 32, 32, 3), ``y`` and ``classes``, decoded from a public JPEG
    copy of CIFAR-10 (so its pixel statistics differ slightly from the original binary release).
    """
    origin = "CIFAR-10 test set (x uint8 (N,32,32,3), y, classes) from a JPEG copy of CIFAR-10"
    return replace(load_npz(data_file(root, "cifar10", "test_jpeg.npz", origin)), name="cifar10")


def load_tinyimagenet(root: str | os.PathLike[str] | None = None) -> ImageSet:
    """A Tiny ImageNet validation subset, 2,000 images 3x64x64 of 200 classes (``names``).

    Read from ``tinyimagenet/val_2000.npz`` under the data root (``x`` uint8 (N, 64, 64, 3),
    ``y`` class indices, ``names`` class names).
    """
    origin = "Tiny ImageNet validation subset (x uint8 (N,64,64,3), y, names)"
    path = data_file(root, "tinyimagenet", "val_2000.npz", origin)
    return replace(load_npz(path), name="tinyimagenet")


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
        ValueError: ``x`` is missing, has the wrong number of dimensions or dtype, holds NaN or
            infinite values or floats outside [0, 1]; ``y`` does not match ``x``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found (expected an .npz file with images 'x' and optional labels 'y')"
        )
    with np.load(path, allow_pickle=False) as data:
        if "x" not in data.files:
            found = ", ".join(data.files) or "nothing"
            raise ValueError(f"{path}: no array 'x' (the images) in the file; found {found}")
        images = _to_tensor(_channels_first(data["x"], path), path)
        labels = _to_labels(data["y"], len(images), path) if "y" in data.files else None
        class_names = next(
            (tuple(map(str, data[key])) for key in ("classes", "names") if key in data.files), None
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
        ValueError: the folder holds no images, or (without ``size``) images differ in size.
    """
    from PIL import Image  # only needed here

    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} is not a directory")
    files = sorted(
        p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    )
    if not files:
        raise ValueError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    arrays = []
    for file in files:
        with Image.open(file) as image:
            image = image.convert("L" if grayscale else "RGB")
            if size is not None:
                image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            arrays.append(np.asarray(image))
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
    with np.load(data_file(root, "coco_mini", "images_128.npz", origin)) as npz:
        x, ids = npz["x"], npz["image_id"]
    with open(data_file(root, "coco_mini", "captions.json", origin), encoding="utf-8") as fh:
        table = json.load(fh)
    missing = [int(i) for i in ids if str(int(i)) not in table]
    if missing:
        raise ValueError(f"coco_mini/captions.json has no captions for image ids {missing[:5]}")
    captions = tuple(tuple(table[str(int(i))]) for i in ids)
    return ImageSet(_to_tensor(_channels_first(x, "COCO"), "COCO"), None, "coco", captions=captions)


_LOADERS: dict[str, Callable[[str | os.PathLike[str] | None], ImageSet]] = {
    "digits": lambda root: load_digits(),
    "mnist": load_mnist,
    "cifar10": load_cifar10,
    "tinyimagenet": load_tinyimagenet,
    "coco": load_coco,
    "random_patterns": lambda root: load_random_patterns(),
}
DATASETS = tuple(_LOADERS)
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


# ---------------------------------------------------------------------------------------------
# Corruptions


def _check_images(x: Tensor) -> None:
    if x.ndim != 4 or not x.is_floating_point():
        raise ValueError(
            f"expected a float image tensor of shape (n, C, H, W), got {x.dtype} of shape "
            f"{tuple(x.shape)}"
        )


def _check_probability(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value}")


def _pixel_uniforms(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """One uniform number in [0, 1) per pixel, shared by its channels: shape (n, 1, H, W)."""
    n, _, h, w = x.shape
    return torch.rand((n, 1, h, w), generator=generator, device=x.device)


def gaussian_noise(
    x: Tensor,
    sigma: float,
    mean: float = 0.0,
    generator: torch.Generator | None = None,
    absolute: bool = False,
) -> Tensor:
    """Add noise n ~ Normal(mean, sigma) to every value: ``clamp(x + n, 0, 1)``.

    ``sigma`` is a standard deviation. With ``absolute`` the result is ``clamp(|x + n|, 0, 1)``,
    as the UHN authors' code computes it (negative values reflect instead of clipping to 0).
    The feature-space paper's "Gauss" corruption (Salvatori et al., 2023, section 3 and fig. 3)
    has variance 0.1 and mean 0 to 0.5: ``gaussian_noise(x, sigma=0.1**0.5, mean=0.3)``.
    """
    _check_images(x)
    if not (math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"sigma must be a finite number >= 0, got {sigma}")
    if not math.isfinite(mean):
        raise ValueError(f"mean must be finite, got {mean}")
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    noisy = x + noise * sigma + mean
    return (noisy.abs() if absolute else noisy).clamp(0.0, 1.0)


def mask_fraction(
    x: Tensor,
    fraction: float,
    side: str = "top",
    fill: str = "zero",
    generator: torch.Generator | None = None,
) -> Tensor:
    """Mask a fraction of the rows (all channels); ``fraction=0.5`` is "half masked".

    The number of masked rows is ``k = H - int(H * (1 - fraction))``, as in the UHN code:
    ``side="bottom"`` masks rows ``int(H * (1 - fraction))`` to ``H - 1``, exactly the rows that
    the authors' code zeroes; ``side="top"`` masks rows ``0`` to ``k - 1``, the same number of
    rows at the top, as the paper's text describes it (the default). Row 0 is the top.
    ``fill="zero"`` sets the masked values to 0 (UHN); ``fill="noise"`` draws each from
    Uniform[0, 1), the "Mask" of the feature-space paper (Salvatori et al., 2023, section 3).
    """
    _check_images(x)
    _check_probability("fraction", fraction)
    h = x.shape[2]
    k = h - int(h * (1 - fraction))
    rows = {"top": slice(0, k), "bottom": slice(h - k, h)}
    if side not in rows:
        raise ValueError(f"side must be 'top' or 'bottom', got {side!r}")
    if fill not in ("zero", "noise"):
        raise ValueError(f"fill must be 'zero' or 'noise', got {fill!r}")
    out = x.clone()
    masked = out[:, :, rows[side]]
    if fill == "noise":
        noise = torch.rand(masked.shape, generator=generator, dtype=x.dtype, device=x.device)
        masked.copy_(noise)
    else:
        masked.zero_()
    return out


def mask_random(x: Tensor, p: float, generator: torch.Generator | None = None) -> Tensor:
    """Set each pixel (all its channels together) to 0 independently with probability ``p``."""
    _check_images(x)
    _check_probability("p", p)
    return x.masked_fill(_pixel_uniforms(x, generator) < p, 0.0)


def inpaint_border(x: Tensor, fraction: float) -> Tensor:
    """Zero a border of ``w = int(H * fraction // 2)`` rows and columns on all four sides.

    As in the UHN code, the width comes from the height H and is used for the columns too;
    ``fraction=1`` zeroes all but at most the middle row and column.
    """
    _check_images(x)
    _check_probability("fraction", fraction)
    h, w = x.shape[2:]
    width = int(h * fraction // 2)
    out = x.clone()
    out[:, :, :width] = 0
    out[:, :, h - width :] = 0
    out[:, :, :, :width] = 0
    out[:, :, :, w - width :] = 0
    return out


def salt_and_pepper(x: Tensor, p: float, generator: torch.Generator | None = None) -> Tensor:
    """Set each pixel (all its channels together) to 0 with probability p/2 and to 1 with p/2."""
    _check_images(x)
    _check_probability("p", p)
    u = _pixel_uniforms(x, generator)
    return x.masked_fill(u < p / 2, 0.0).masked_fill((u >= p / 2) & (u < p), 1.0)


def crop_zoom(
    x: Tensor, scale: float, position: str = "center", generator: torch.Generator | None = None
) -> Tensor:
    """Crop a region ``scale`` times the image's height and width and resize it back (bilinear).

    The "Crop" corruption of the feature-space paper (Salvatori et al., 2023, section 3): "the
    corrupted image is a zoomed version of the original one". The crop is
    ``max(1, round(H * scale))`` by ``max(1, round(W * scale))`` pixels, in the centre
    (``position="center"``) or at a uniformly random place in each image (``"random"``);
    ``scale=1`` returns a copy.
    """
    _check_images(x)
    if not (math.isfinite(scale) and 0 < scale <= 1):
        raise ValueError(f"scale must lie in (0, 1], got {scale}")
    if position not in ("center", "random"):
        raise ValueError(f"position must be 'center' or 'random', got {position!r}")
    n, c, h, w = x.shape
    kh, kw = max(1, round(h * scale)), max(1, round(w * scale))
    if position == "center":
        top = torch.full((n,), (h - kh) // 2, device=x.device)
        left = torch.full((n,), (w - kw) // 2, device=x.device)
    else:
        top = torch.randint(h - kh + 1, (n,), generator=generator, device=x.device)
        left = torch.randint(w - kw + 1, (n,), generator=generator, device=x.device)
    rows = (top[:, None] + torch.arange(kh, device=x.device))[:, None, :, None]
    cols = (left[:, None] + torch.arange(kw, device=x.device))[:, None, None, :]
    images = torch.arange(n, device=x.device)[:, None, None, None]
    channels = torch.arange(c, device=x.device)[None, :, None, None]
    crops = x[images, channels, rows, cols]
    zoomed = F.interpolate(crops, size=(h, w), mode="bilinear", align_corners=False)
    return zoomed.clamp(0.0, 1.0)


_LUMA = (0.299, 0.587, 0.114)
COLOR_FILTERS: dict[str, tuple[tuple[float, float, float], ...]] = {
    "red": ((1.0, 0.0, 0.0), (0.0, 0.5, 0.0), (0.0, 0.0, 0.5)),
    "green": ((0.5, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 0.5)),
    "blue": ((0.5, 0.0, 0.0), (0.0, 0.5, 0.0), (0.0, 0.0, 1.0)),
    "sepia": ((0.393, 0.769, 0.189), (0.349, 0.686, 0.168), (0.272, 0.534, 0.131)),
    "gray": (_LUMA, _LUMA, _LUMA),
}
"""RGB colour matrices M (output channel = row . input RGB): red, green and blue tints multiply
the other two channels by 0.5; sepia is the common sepia-tone matrix; gray is ITU-R 601 luma."""


def color_filter(
    x: Tensor,
    color: str = "random",
    strength: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Apply a colour filter to RGB images: ``clamp(((1 - s) I + s M) x, 0, 1)`` per pixel.

    The "Color" corruption of the feature-space paper (Salvatori et al., 2023, section 3):
    "different color filters are randomly applied". ``color`` names a matrix M of
    :data:`COLOR_FILTERS`, or is ``"random"`` for an independent uniform choice per image;
    ``strength`` s in [0, 1] blends the filter with the identity (0 leaves the image unchanged).
    """
    _check_images(x)
    if x.shape[1] != 3:
        raise ValueError(f"colour filters need RGB images (C = 3), got C = {x.shape[1]}")
    if color != "random" and color not in COLOR_FILTERS:
        raise ValueError(
            f"color must be 'random' or one of {', '.join(COLOR_FILTERS)}, got {color!r}"
        )
    _check_probability("strength", strength)
    filters = torch.tensor(list(COLOR_FILTERS.values()), dtype=x.dtype, device=x.device)
    if color == "random":
        chosen = torch.randint(len(filters), (x.shape[0],), generator=generator, device=x.device)
    else:
        chosen = torch.full((x.shape[0],), list(COLOR_FILTERS).index(color), device=x.device)
    eye = torch.eye(3, dtype=x.dtype, device=x.device)
    matrices = (1 - strength) * eye + strength * filters[chosen]
    return torch.einsum("nij,njhw->nihw", matrices, x).clamp(0.0, 1.0)


def rotate90(
    x: Tensor, turns: float | str = "random", generator: torch.Generator | None = None
) -> Tensor:
    """Rotate by ``turns`` quarter turns counter-clockwise as displayed (row 0 at the top).

    The "Rotation" corruption of the feature-space paper (Salvatori et al., 2023, section 3):
    "randomly rotated by an angle of 0, pi/2, -pi/2, pi". ``turns`` is an integer (taken modulo
    4; a float such as 1.0 from :func:`parse_corruption` is accepted) or ``"random"`` for an
    independent uniform choice among the four angles per image. Odd turns need square images.
    """
    _check_images(x)
    if turns == "random":
        k = torch.randint(4, (x.shape[0],), generator=generator, device=x.device)
    elif isinstance(turns, int | float) and not isinstance(turns, bool) and turns % 1 == 0:
        k = torch.full((x.shape[0],), int(turns) % 4, device=x.device)
    else:
        raise ValueError(f"turns must be an integer or 'random', got {turns!r}")
    if x.shape[2] != x.shape[3] and bool((k % 2 == 1).any()):
        h, w = x.shape[2:]
        raise ValueError(f"odd quarter turns need square images, got H x W = {h} x {w}")
    out = x.clone()
    for quarter in k.unique().tolist():
        chosen = k == quarter
        out[chosen] = torch.rot90(x[chosen], quarter, dims=(2, 3))
    return out


def _no_corruption(x: Tensor) -> Tensor:
    """An unchanged copy of ``x``."""
    _check_images(x)
    return x.clone()


CORRUPTIONS: dict[str, Callable[..., Tensor]] = {
    "none": _no_corruption,
    "gaussian": gaussian_noise,
    "mask": mask_fraction,
    "mask_random": mask_random,
    "inpaint": inpaint_border,
    "salt_pepper": salt_and_pepper,
    "crop": crop_zoom,
    "color": color_filter,
    "rotate": rotate90,
}


def _parameters(name: str) -> dict[str, inspect.Parameter]:
    """The parameters of corruption ``name`` other than the images and the generator."""
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}: expected one of {', '.join(CORRUPTIONS)}")
    parameters = inspect.signature(CORRUPTIONS[name]).parameters
    return {key: p for key, p in list(parameters.items())[1:] if key != "generator"}


def _check_params(name: str, params: dict[str, object]) -> None:
    accepted = _parameters(name)
    unknown = sorted(set(params) - set(accepted))
    missing = [key for key, p in accepted.items() if p.default is p.empty and key not in params]
    if unknown or missing:
        problem = f"unknown {', '.join(unknown)}" if unknown else f"missing {', '.join(missing)}"
        raise ValueError(
            f"corruption {name!r} takes {', '.join(accepted) or 'no parameters'}: {problem}"
        )


def corrupt(
    x: Tensor, name: str, generator: torch.Generator | None = None, **params: object
) -> Tensor:
    """Apply the corruption registered as ``name`` in :data:`CORRUPTIONS` with ``params``.

    ``generator`` is passed to the random corruptions and ignored by the deterministic ones.
    """
    _check_params(name, params)
    function = CORRUPTIONS[name]
    if "generator" in inspect.signature(function).parameters:
        params["generator"] = generator
    return function(x, **params)


def _parse_value(text: str) -> float | bool | str:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return float(text)
    except ValueError:
        return text


def parse_corruption(spec: str) -> tuple[str, dict[str, float | bool | str]]:
    """Parse a command-line corruption such as ``"mask:0.5"`` or ``"gaussian:sigma=0.3,mean=0.1"``.

    The form is ``name[:item,item,...]``; an item is ``key=value``, except that the first may be a
    bare value for the corruption's first parameter (``"gaussian:0.3"`` means sigma=0.3). Values
    are read as numbers, ``true``/``false``, or else kept as text (``"mask:0.5,side=bottom"``).

    Returns:
        The name and the keyword arguments for :func:`corrupt`.
    """
    name, _, rest = spec.strip().partition(":")
    accepted = list(_parameters(name))
    params: dict[str, float | bool | str] = {}
    for i, item in enumerate(rest.split(",") if rest else []):
        key, has_key, value = item.partition("=")
        if not has_key:
            if i > 0 or not accepted:
                raise ValueError(
                    f"{spec!r}: only the first value may omit its name; "
                    f"{name!r} takes {', '.join(accepted) or 'no parameters'}"
                )
            key, value = accepted[0], item
        key = key.strip()
        if key in params:
            raise ValueError(f"{spec!r}: {key} is given twice")
        params[key] = _parse_value(value.strip())
    _check_params(name, params)
    return name, params


def binarize(x: Tensor, threshold: float = 0.5) -> Tensor:
    """1 where ``x > threshold``, else 0, in ``x``'s dtype."""
    return (x > threshold).to(x.dtype)


def to_bipolar(x: Tensor, threshold: float = 0.5) -> Tensor:
    """+1 where ``x > threshold``, else -1, in ``x``'s dtype (for classical Hopfield nets)."""
    return 2 * binarize(x, threshold) - 1
