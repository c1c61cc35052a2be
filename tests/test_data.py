"""Tests for neurodyn.data: data sets, loaders and corruptions."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from neurodyn import data
from neurodyn.data import ImageSet


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def digits() -> ImageSet:
    return data.load_digits()


@pytest.fixture
def images() -> torch.Tensor:
    """Random images strictly inside (0, 1), so zeroed or saturated pixels are recognisable."""
    return torch.rand(3, 3, 28, 28, generator=gen(0)) * 0.9 + 0.05


# ---------------------------------------------------------------------------------------------
# ImageSet and the embedded digits


def test_digits_shape_range_labels(digits: ImageSet) -> None:
    assert len(digits) == 1797
    assert digits.shape == (1, 8, 8)
    assert digits.images.dtype == torch.float32
    assert digits.images.min() == 0.0 and digits.images.max() == 1.0
    assert digits.labels is not None and digits.labels.dtype == torch.int64
    counts = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    assert torch.bincount(digits.labels).tolist() == counts
    # Pixels were 0..16: scaled values are multiples of 1/16.
    assert torch.allclose(digits.images * 16, (digits.images * 16).round())


def test_flat_unflatten_round_trip(digits: ImageSet) -> None:
    flat = digits.flat()
    assert flat.shape == (1797, 64) and digits.n_features == 64
    assert torch.equal(flat[5], digits.images[5, 0].reshape(-1))
    assert torch.equal(digits.unflatten(flat), digits.images)
    assert digits.unflatten(flat[0]).shape == (1, 1, 8, 8)
    with pytest.raises(ValueError, match="length 64"):
        digits.unflatten(flat[:, :63])


def test_flat_is_channel_first() -> None:
    images = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2) / 24
    flat = ImageSet(images, None, "t").flat()
    assert torch.equal(flat[1, :4], images[1, 0].reshape(-1))  # channel 0 first


def test_subset_and_take(digits: ImageSet) -> None:
    sub = digits.subset([10, 3, 7])
    assert torch.equal(sub.images, digits.images[[10, 3, 7]])
    assert sub.labels is not None and digits.labels is not None
    assert sub.labels.tolist() == digits.labels[[10, 3, 7]].tolist()
    assert sub.name == "digits" and sub.class_names == digits.class_names
    block = digits.take(5, offset=100)
    assert len(block) == 5 and torch.equal(block.images, digits.images[100:105])
    assert torch.equal(block.labels, digits.labels[100:105])
    with pytest.raises(ValueError, match="cannot take"):
        digits.take(10, offset=1790)


def test_imageset_validates() -> None:
    with pytest.raises(ValueError, match=r"\(n, C, H, W\)"):
        ImageSet(torch.zeros(4, 8, 8), None, "t")
    with pytest.raises(ValueError, match="labels"):
        ImageSet(torch.zeros(4, 1, 8, 8), torch.zeros(3, dtype=torch.long), "t")


# ---------------------------------------------------------------------------------------------
# Data root and real files


def test_data_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(data.DATA_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match=f"set the {data.DATA_ENV} environment variable"):
        data.data_root()
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match="absent is not a directory"):
        data.data_root()
    assert data.data_root(tmp_path) == tmp_path  # an explicit root wins over the variable
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path))
    assert data.data_root() == tmp_path


@pytest.mark.parametrize(
    ("loader", "expected"),
    [
        (data.load_mnist, "mnist/t10k-images-idx3-ubyte.gz"),
        (data.load_cifar10, "cifar10/test_jpeg.npz"),
        (data.load_tinyimagenet, "tinyimagenet/val_2000.npz"),
    ],
)
def test_missing_file_names_it(loader, expected: str, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        loader(tmp_path)
    assert str(tmp_path / expected) in str(info.value)


def test_real_mnist(real_root: Path) -> None:
    mnist = data.load_mnist(real_root)
    assert mnist.images.shape == (10000, 1, 28, 28)
    assert mnist.images.min() == 0.0 and mnist.images.max() == 1.0
    counts = torch.bincount(mnist.labels, minlength=10)
    assert len(counts) == 10 and counts.min() > 800 and counts.max() < 1200
    assert 0.1 < mnist.images.mean() < 0.15  # MNIST's mean pixel is about 0.13


def test_real_cifar10(real_root: Path) -> None:
    cifar = data.load_dataset("cifar10", real_root)
    assert cifar.name == "cifar10"
    assert cifar.images.shape == (10000, 3, 32, 32)
    assert cifar.class_names is not None and cifar.class_names[0] == "airplane"
    assert len(cifar.class_names) == 10 and cifar.class_names[-1] == "truck"
    assert torch.bincount(cifar.labels).tolist() == [1000] * 10
    assert 0.0 <= cifar.images.min() and cifar.images.max() <= 1.0
    # Channel-first: the red channel of image 0 is the file's x[0, :, :, 0] / 255.
    raw = np.load(real_root / "cifar10/test_jpeg.npz")["x"][0]
    assert torch.equal(cifar.images[0, 0], torch.from_numpy(raw[:, :, 0].astype(np.float32)) / 255)


def test_real_tinyimagenet(real_root: Path) -> None:
    tiny = data.load_tinyimagenet(real_root)
    assert tiny.images.shape == (2000, 3, 64, 64)
    assert tiny.class_names is not None and len(tiny.class_names) == 200
    assert tiny.class_names[0].startswith("goldfish")
    assert torch.bincount(tiny.labels).tolist() == [10] * 200


# ---------------------------------------------------------------------------------------------
# MNIST's IDX format, on small files written here


def write_idx(path: Path, magic: int, array: np.ndarray) -> None:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_mnist_idx_parsing(tmp_path: Path) -> None:
    (tmp_path / "mnist").mkdir()
    pixels = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "mnist/t10k-images-idx3-ubyte.gz", 2051, pixels)
    write_idx(tmp_path / "mnist/t10k-labels-idx1-ubyte.gz", 2049, np.array([7, 2, 1]))
    mnist = data.load_mnist(tmp_path)
    assert mnist.labels.tolist() == [7, 2, 1]
    assert torch.equal(mnist.images[:, 0] * 255, torch.from_numpy(pixels).float())
    write_idx(tmp_path / "mnist/t10k-labels-idx1-ubyte.gz", 2051, np.array([7, 2, 1]))
    with pytest.raises(ValueError, match="magic number 2051, expected 2049"):
        data.load_mnist(tmp_path)


# ---------------------------------------------------------------------------------------------
# A user's .npz files and image folders


def test_npz_uint8_hwc_round_trip(tmp_path: Path) -> None:
    x = np.random.default_rng(1).integers(0, 256, (4, 5, 6, 3), dtype=np.uint8)
    np.savez(tmp_path / "mine.npz", x=x, y=np.array([0, 1, 1, 0]))
    loaded = data.load_dataset(str(tmp_path / "mine.npz"))
    assert loaded.name == "mine" and loaded.shape == (3, 5, 6)
    assert torch.equal(loaded.images * 255, torch.from_numpy(x.transpose(0, 3, 1, 2)).float())
    assert loaded.labels.tolist() == [0, 1, 1, 0] and loaded.labels.dtype == torch.int64


def test_npz_float_chw_and_gray(tmp_path: Path) -> None:
    x = np.random.default_rng(2).random((4, 3, 6, 6))
    np.savez(tmp_path / "chw.npz", x=x)
    loaded = data.load_npz(tmp_path / "chw.npz")
    assert loaded.labels is None and loaded.images.dtype == torch.float32
    assert torch.allclose(loaded.images, torch.from_numpy(x).float())
    np.savez(tmp_path / "gray.npz", x=x[:, 0])
    assert data.load_npz(tmp_path / "gray.npz").shape == (1, 6, 6)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"y": np.zeros(2)}, "no array 'x'"),
        ({"x": np.zeros((2, 4))}, "2 dimensions"),
        ({"x": np.full((2, 4, 4), np.nan)}, "NaN"),
        ({"x": np.full((2, 4, 4), 2.0)}, r"must lie in \[0, 1\]"),
        ({"x": np.zeros((2, 4, 4), dtype=np.int32)}, "uint8"),
        ({"x": np.zeros((2, 4, 4)), "y": np.zeros(3, dtype=int)}, "expected 2 integer labels"),
    ],
)
def test_npz_bad_inputs(tmp_path: Path, arrays: dict, message: str) -> None:
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=message):
        data.load_npz(tmp_path / "bad.npz")


def test_npz_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothing.npz"):
        data.load_dataset(tmp_path / "nothing.npz")


def test_image_folder(tmp_path: Path) -> None:
    red = np.zeros((4, 6, 3), dtype=np.uint8)
    red[..., 0] = 255
    Image.fromarray(red).save(tmp_path / "b.png")
    Image.fromarray(np.full((4, 6), 51, dtype=np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "notes.txt").write_text("not an image")
    folder = data.load_dataset(tmp_path)
    assert folder.images.shape == (2, 3, 4, 6) and folder.labels is None
    assert torch.allclose(folder.images[0], torch.full((3, 4, 6), 0.2))  # a.png sorts first
    assert folder.images[1, 0].eq(1).all() and folder.images[1, 1:].eq(0).all()
    gray = data.load_image_folder(tmp_path, size=(2, 3), grayscale=True)
    assert gray.images.shape == (2, 1, 2, 3)


def test_image_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="holds no images"):
        data.load_image_folder(tmp_path)
    Image.fromarray(np.zeros((4, 6), dtype=np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((5, 6), dtype=np.uint8)).save(tmp_path / "b.jpg")
    with pytest.raises(ValueError, match="b.jpg is 5x6"):
        data.load_image_folder(tmp_path)
    assert data.load_image_folder(tmp_path, size=(4, 4)).shape == (3, 4, 4)


def test_unknown_dataset_lists_names() -> None:
    with pytest.raises(ValueError, match="digits, mnist, cifar10, tinyimagenet"):
        data.load_dataset("fashion")


# ---------------------------------------------------------------------------------------------
# Corruptions

RANDOM = {
    "gaussian": {"sigma": 0.3},
    "mask_random": {"p": 0.5},
    "salt_pepper": {"p": 0.5},
}


@pytest.mark.parametrize("name", sorted(RANDOM))
def test_random_corruptions_reproducible(name: str, images: torch.Tensor) -> None:
    first = data.corrupt(images, name, generator=gen(1), **RANDOM[name])
    again = data.corrupt(images, name, generator=gen(1), **RANDOM[name])
    other = data.corrupt(images, name, generator=gen(2), **RANDOM[name])
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


@pytest.mark.parametrize(
    ("name", "params"),
    [*RANDOM.items(), ("mask", {"fraction": 0.5}), ("inpaint", {"fraction": 0.5}), ("none", {})],
)
def test_corruption_leaves_input_alone(name: str, params: dict, images: torch.Tensor) -> None:
    before = images.clone()
    out = data.corrupt(images, name, generator=gen(0), **params)
    assert torch.equal(images, before)
    assert out.shape == images.shape and out.dtype == images.dtype
    assert out.data_ptr() != images.data_ptr()
    assert (name == "none") == torch.equal(out, images)


@settings(max_examples=40, deadline=None)
@given(
    spec=st.sampled_from(["gaussian:sigma", "gaussian:mean", "salt_pepper:p", "mask_random:p"]),
    value=st.floats(0.0, 1.0),
    absolute=st.booleans(),
    seed=st.integers(0, 2**31),
)
def test_random_corruptions_stay_in_unit_range(
    spec: str, value: float, absolute: bool, seed: int
) -> None:
    name, key = spec.split(":")
    params = {"sigma": 2.0, "absolute": absolute} if name == "gaussian" else {}
    params[key] = 3 * value if key == "mean" else value
    x = torch.rand(2, 3, 7, 5, generator=gen(seed))
    out = data.corrupt(x, name, generator=gen(seed), **params)
    assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize(
    ("height", "fraction", "zeroed"),
    [(28, 0.5, 14), (10, 0.3, 3), (28, 0.3, 9), (28, 0.1, 3), (8, 0.0, 0), (8, 1.0, 8)],
)
def test_mask_rows(images: torch.Tensor, height: int, fraction: float, zeroed: int) -> None:
    # zeroed = height - int(height * (1 - fraction)), e.g. 28 * 0.7 = 19.6 -> 19 -> 9 rows.
    x = images[:, :, :height]
    bottom = data.mask_fraction(x, fraction, side="bottom")
    top = data.mask_fraction(x, fraction)
    cut = height - zeroed
    assert bottom[:, :, cut:].eq(0).all() and torch.equal(bottom[:, :, :cut], x[:, :, :cut])
    assert top[:, :, :zeroed].eq(0).all() and torch.equal(top[:, :, zeroed:], x[:, :, zeroed:])


def test_inpaint_border(images: torch.Tensor) -> None:
    x = images[:, :, :10, :10]
    out = data.inpaint_border(x, 0.5)  # width int(10 * 0.5 // 2) = 2
    inside = torch.zeros(10, 10, dtype=torch.bool)
    inside[2:8, 2:8] = True
    assert out[..., ~inside].eq(0).all()
    assert torch.equal(out[..., inside], x[..., inside])
    assert torch.equal(data.inpaint_border(x, 0.1), x)  # int(10 * 0.1 // 2) = 0


def test_mask_random_rate_and_channels() -> None:
    x = torch.full((4, 3, 128, 128), 0.5)
    out = data.mask_random(x, 0.3, generator=gen(3))
    zero = out == 0
    assert torch.equal(zero.all(dim=1), zero.any(dim=1))  # channels of a pixel go together
    assert torch.equal(out[~zero], x[~zero])
    # 65,536 pixels: the rate's standard error is sqrt(0.3 * 0.7 / 65536) = 0.0018; 0.01 is 5.5 se.
    assert abs(zero[:, 0].float().mean().item() - 0.3) < 0.01


def test_salt_and_pepper_rate() -> None:
    x = torch.full((4, 3, 128, 128), 0.5)
    out = data.salt_and_pepper(x, 0.2, generator=gen(4))
    assert set(out.unique().tolist()) == {0.0, 0.5, 1.0}
    assert torch.equal(out.amin(dim=1), out.amax(dim=1))  # channels of a pixel go together
    # Each rate is 0.1 on 65,536 pixels: standard error 0.0012; tolerance 0.006 is 5 se.
    assert abs(out[:, 0].eq(0).float().mean().item() - 0.1) < 0.006
    assert abs(out[:, 0].eq(1).float().mean().item() - 0.1) < 0.006


def test_gaussian_noise(images: torch.Tensor) -> None:
    out = data.gaussian_noise(images, 1.0, generator=gen(5))
    assert out.min() == 0 and out.max() == 1  # large noise clips at both ends
    noise = torch.randn(images.shape, generator=gen(5)) * 0.4 + 0.1
    reflected = data.gaussian_noise(images, 0.4, mean=0.1, generator=gen(5), absolute=True)
    assert torch.allclose(reflected, (images + noise).abs().clamp(0, 1), atol=1e-6)
    clipped = data.gaussian_noise(images, 0.4, mean=0.1, generator=gen(5))
    assert torch.allclose(clipped, (images + noise).clamp(0, 1), atol=1e-6)
    assert torch.equal(data.gaussian_noise(images, 0.0, generator=gen(5)), images)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda x: data.gaussian_noise(x, -0.1), "sigma"),
        (lambda x: data.mask_fraction(x, 1.5), "fraction"),
        (lambda x: data.mask_fraction(x, 0.5, side="left"), "side"),
        (lambda x: data.mask_random(x, -0.1), "p must lie"),
        (lambda x: data.salt_and_pepper(x, float("nan")), "p must lie"),
        (lambda x: data.inpaint_border(x, 2.0), "fraction"),
        (lambda x: data.mask_random(x[0], 0.1), r"\(n, C, H, W\)"),
        (lambda x: data.corrupt(x, "blur"), "gaussian, mask, mask_random, inpaint, salt_pepper"),
        (lambda x: data.corrupt(x, "mask", sigma=0.1), "unknown sigma"),
        (lambda x: data.corrupt(x, "gaussian"), "missing sigma"),
    ],
)
def test_corruption_argument_errors(images: torch.Tensor, call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(images)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("mask:0.5", ("mask", {"fraction": 0.5})),
        ("gaussian:0.3", ("gaussian", {"sigma": 0.3})),
        ("gaussian:sigma=0.3,mean=0.1", ("gaussian", {"sigma": 0.3, "mean": 0.1})),
        ("gaussian:0.5,absolute=true", ("gaussian", {"sigma": 0.5, "absolute": True})),
        ("mask:0.5,side=bottom", ("mask", {"fraction": 0.5, "side": "bottom"})),
        ("salt_pepper:0.1", ("salt_pepper", {"p": 0.1})),
        ("inpaint:0.2", ("inpaint", {"fraction": 0.2})),
        ("none", ("none", {})),
    ],
)
def test_parse_corruption(spec: str, expected: tuple) -> None:
    assert data.parse_corruption(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("blur:0.1", "unknown corruption 'blur'"),
        ("none:0.1", "takes no parameters"),
        ("gaussian:0.3,0.1", "only the first value"),
        ("gaussian:mean=0.1", "missing sigma"),
        ("mask:0.5,fraction=0.4", "given twice"),
    ],
)
def test_parse_corruption_errors(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        data.parse_corruption(spec)


def test_parsed_spec_drives_corrupt(images: torch.Tensor) -> None:
    name, params = data.parse_corruption("mask:0.5,side=bottom")
    expected = data.mask_fraction(images, 0.5, "bottom")
    assert torch.equal(data.corrupt(images, name, **params), expected)


def test_binarize_and_bipolar() -> None:
    x = torch.tensor([0.0, 0.5, 0.51, 1.0])
    assert data.binarize(x).tolist() == [0.0, 0.0, 1.0, 1.0]
    assert data.to_bipolar(x).tolist() == [-1.0, -1.0, 1.0, 1.0]
    assert data.binarize(x, threshold=0.0).tolist() == [0.0, 1.0, 1.0, 1.0]


def test_resized_keeps_labels_and_captions_and_averages_areas(digits: ImageSet) -> None:
    small = digits.take(3).resized(4)
    assert small.images.shape == (3, 1, 4, 4) and torch.equal(small.labels, digits.labels[:3])
    assert torch.allclose(small.images[:, :, 0, 0], digits.images[:3, :, :2, :2].mean((-1, -2)))
    assert digits.take(2).resized(16).images.shape == (2, 1, 16, 16)
    with pytest.raises(ValueError, match="positive"):
        digits.resized(0)


def test_coco_pairs_images_with_their_five_captions(real_root: Path) -> None:
    coco = data.load_coco(real_root)
    assert coco.images.shape == (159, 3, 128, 128) and len(coco.captions) == 159
    assert all(len(c) == 5 for c in coco.captions)
    picked = coco.subset([5, 2])
    assert picked.captions == (coco.captions[5], coco.captions[2])
