"""Images as tensors: :class:`ImageSet` (float32 in [0, 1], shape (n, C, H, W), channel-first as
torchvision gives them; a memory or query vector is an image flattened in that order), and the
conversions of raw arrays into it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from neurodyn.errors import InputFileError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
_CHANNELS = (1, 3, 4)


@dataclass(frozen=True, eq=False)
class ImageSet:
    """A stack of images with optional integer labels.

    Attributes:
        images: (n, C, H, W) float tensor with values in [0, 1].
        labels: (n,) int64 class indices, or None for unlabelled images.
        name: a short name for reports (the data set, file or folder name).
        class_names: the names of the classes that ``labels`` index, when known.
        captions: each image's captions (one tuple of strings per image), when known.
        source_index: (n,) each image's position in the data set it was taken from
            (:meth:`subset`), or None for the set itself.
    """

    images: Tensor
    labels: Tensor | None
    name: str
    class_names: tuple[str, ...] | None = None
    captions: tuple[tuple[str, ...], ...] | None = None
    source_index: Tensor | None = None

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
        source = index if self.source_index is None else self.source_index[index]
        return replace(self, images=self.images[index], labels=labels, captions=captions, source_index=source)

    def take(self, n: int, offset: int = 0) -> ImageSet:
        """The ``n`` consecutive images starting at ``offset``; all of them must exist."""
        if n < 0 or offset < 0 or offset + n > len(self):
            raise ValueError(f"cannot take {n} images from offset {offset} of {len(self)}")
        return self.subset(torch.arange(offset, offset + n))



def _bad(source: object, problem: str, remedy: str = "") -> ValueError:
    """The error for arrays from ``source`` that are not images: an :class:`InputFileError` when
    ``source`` is the file they came from (the message then says how to get a good one)."""
    if isinstance(source, Path):
        return InputFileError(source, problem, remedy)
    return ValueError(f"{source}: {problem}")


def _channels_first(x: np.ndarray, source: object, remedy: str = "") -> np.ndarray:
    """(n, H, W), (n, H, W, C) or (n, C, H, W) -> (n, C, H, W) (see :func:`load_npz`)."""
    if x.ndim == 3:
        return x[:, None]
    if x.ndim != 4:
        raise _bad(source, "x must have shape (n, H, W), (n, H, W, C) or (n, C, H, W), "
                   f"got {x.ndim} dimensions {x.shape}", remedy)
    if x.shape[3] in _CHANNELS and x.shape[1] not in _CHANNELS:
        return x.transpose(0, 3, 1, 2)
    return x


def _to_tensor(x: np.ndarray, source: object, remedy: str = "") -> Tensor:
    """An (n, C, H, W) array, uint8 in 0..255 or float in [0, 1], as a float32 tensor in [0, 1]."""
    if x.size == 0:
        raise _bad(source, f"x is empty (shape {x.shape} as (n, C, H, W)): no images", remedy)
    if x.dtype == np.uint8:
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).div_(255)
    if not np.issubdtype(x.dtype, np.floating):
        raise _bad(source, f"x must be uint8 (0..255) or float (0..1), got {x.dtype}", remedy)
    if not np.isfinite(x).all():
        raise _bad(source, "x contains NaN or infinite values", remedy)
    low, high = x.min(), x.max()
    if low < 0 or high > 1:
        raise _bad(source, f"float x must lie in [0, 1], got values in [{low}, {high}] "
                   "(store 0..255 pixels as uint8)", remedy)
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def _to_labels(y: np.ndarray, n: int, source: object, remedy: str = "") -> Tensor:
    """``n`` integer labels as an int64 tensor."""
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
        raise _bad(source, f"expected {n} integer labels (one per image), "
                   f"got {y.dtype} of shape {y.shape}", remedy)
    return torch.from_numpy(y.astype(np.int64))
