"""Stimuli: image data sets, the data root they are read from, and the corruptions that turn a
stored image into a cue.

- :mod:`.images`: :class:`ImageSet`, images as float32 tensors in [0, 1] of shape (n, C, H, W).
- :mod:`.root`: the data root (``$NEURODYN_DATA``) and its files (data sets, codec weights).
- :mod:`.sets`: the named data sets and a user's own ``.npz`` file or image folder.
- :mod:`.corruptions`: the corruptions of the UHN and feature-space papers.
"""

from .corruptions import (
    COLOR_FILTERS,
    CORRUPTIONS,
    binarize,
    color_filter,
    corrupt,
    crop_zoom,
    gaussian_noise,
    inpaint_border,
    mask_fraction,
    mask_random,
    parse_corruption,
    rotate90,
    salt_and_pepper,
    to_bipolar,
)
from .images import IMAGE_SUFFIXES, ImageSet
from .root import DATA_ENV, data_file, data_remedy, data_root
from .sets import (
    DATASETS,
    RANDOM_PATTERNS_SEED,
    load_cifar10,
    load_coco,
    load_dataset,
    load_digits,
    load_image_folder,
    load_mnist,
    load_npz,
    load_random_patterns,
    load_tinyimagenet,
)

__all__ = [
    "COLOR_FILTERS", "CORRUPTIONS", "DATASETS", "DATA_ENV", "IMAGE_SUFFIXES", "RANDOM_PATTERNS_SEED", "ImageSet",
    "binarize",
    "color_filter", "corrupt", "crop_zoom", "data_file", "data_remedy", "data_root", "gaussian_noise", "inpaint_border",
    "load_cifar10", "load_coco", "load_dataset", "load_digits", "load_image_folder", "load_mnist", "load_npz",
    "load_random_patterns", "load_tinyimagenet", "mask_fraction", "mask_random", "parse_corruption", "rotate90",
    "salt_and_pepper", "to_bipolar",
]
