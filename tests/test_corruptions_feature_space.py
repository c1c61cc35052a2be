"""Tests for the feature-space paper's corruptions in neurodyn.data (Salvatori et al., 2023,
section 3): crop/zoom, colour filters, quarter turns, noise-filled masks, noise with a mean."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from neurodyn import data


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def images() -> torch.Tensor:
    """Random RGB images strictly inside (0, 1)."""
    return torch.rand(6, 3, 8, 8, generator=gen(0)) * 0.9 + 0.05


RANDOM = {
    "crop": {"scale": 0.5, "position": "random"},
    "color": {"color": "random"},
    "rotate": {"turns": "random"},
    "mask": {"fraction": 0.5, "fill": "noise"},
}
DETERMINISTIC = {
    "crop": {"scale": 0.75},
    "color": {"color": "sepia", "strength": 0.5},
    "rotate": {"turns": 1},
}


@pytest.mark.parametrize(("name", "params"), [*RANDOM.items(), *DETERMINISTIC.items()])
def test_new_corruptions_leave_input_alone(name: str, params: dict, images: torch.Tensor) -> None:
    before = images.clone()
    out = data.corrupt(images, name, generator=gen(1), **params)
    assert torch.equal(images, before)
    assert out.shape == images.shape and out.dtype == images.dtype
    assert out.data_ptr() != images.data_ptr()
    assert not torch.equal(out, images)
    assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("name", sorted(RANDOM))
def test_new_random_corruptions_reproducible(name: str, images: torch.Tensor) -> None:
    x = images.repeat(4, 1, 1, 1)  # 24 images: two seeds agree on every random choice rarely
    first = data.corrupt(x, name, generator=gen(1), **RANDOM[name])
    assert torch.equal(first, data.corrupt(x, name, generator=gen(1), **RANDOM[name]))
    assert not torch.equal(first, data.corrupt(x, name, generator=gen(2), **RANDOM[name]))


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("crop:0.5", ("crop", {"scale": 0.5})),
        ("crop:0.5,position=random", ("crop", {"scale": 0.5, "position": "random"})),
        ("color:sepia,strength=0.5", ("color", {"color": "sepia", "strength": 0.5})),
        ("color", ("color", {})),
        ("rotate:1", ("rotate", {"turns": 1.0})),
        ("rotate:random", ("rotate", {"turns": "random"})),
        ("mask:0.5,fill=noise", ("mask", {"fraction": 0.5, "fill": "noise"})),
        ("gaussian:0.316,mean=0.5", ("gaussian", {"sigma": 0.316, "mean": 0.5})),
    ],
)
def test_parse_feature_space_specs(spec: str, expected: tuple) -> None:
    assert data.parse_corruption(spec) == expected


def test_crop_center_zooms_the_middle(images: torch.Tensor) -> None:
    out = data.crop_zoom(images, 0.5)  # 4x4 middle of 8x8, rows and columns 2..5
    middle = images[:, :, 2:6, 2:6]
    assert torch.allclose(out, F.interpolate(middle, size=(8, 8), mode="bilinear"))
    assert torch.equal(data.crop_zoom(images, 1.0), images)
    flat = torch.full((2, 1, 9, 7), 0.3)
    assert torch.allclose(data.crop_zoom(flat, 0.4, position="random", generator=gen(0)), flat)


def test_crop_random_is_a_zoom_of_some_window(images: torch.Tensor) -> None:
    out = data.crop_zoom(images, 0.5, position="random", generator=gen(3))
    windows = [
        F.interpolate(images[:, :, r : r + 4, c : c + 4], size=(8, 8), mode="bilinear")
        for r in range(5)
        for c in range(5)
    ]
    for i in range(len(images)):
        matches = [torch.allclose(out[i], w[i]) for w in windows]
        assert sum(matches) == 1  # random images: exactly one window fits


def test_color_filters() -> None:
    gray_pixel = torch.full((1, 3, 2, 2), 0.6)
    red = data.color_filter(gray_pixel, "red")
    assert torch.allclose(red[0, :, 0, 0], torch.tensor([0.6, 0.3, 0.3]))
    half = data.color_filter(gray_pixel, "red", strength=0.5)
    assert torch.allclose(half[0, :, 0, 0], torch.tensor([0.6, 0.45, 0.45]))
    white = torch.ones(1, 3, 2, 2)
    assert data.color_filter(white, "sepia").max() == 1  # sepia brightens white: it clips
    colour = torch.rand(2, 3, 4, 4, generator=gen(4))
    grey = data.color_filter(colour, "gray")
    assert torch.allclose(grey[:, 0], grey[:, 1]) and torch.allclose(grey[:, 1], grey[:, 2])
    assert torch.equal(data.color_filter(colour, "blue", strength=0.0), colour)


def test_color_random_picks_a_named_filter_per_image(images: torch.Tensor) -> None:
    x = images.repeat(5, 1, 1, 1)
    out = data.color_filter(x, generator=gen(5))
    by_name = {name: data.color_filter(x, name) for name in data.COLOR_FILTERS}
    picked = [
        next(name for name, y in by_name.items() if torch.allclose(out[i], y[i]))
        for i in range(len(x))
    ]
    assert len(set(picked)) >= 3  # 30 images, 5 filters


def test_rotate_quarter_turns(images: torch.Tensor) -> None:
    corner = torch.zeros(1, 1, 3, 3)
    corner[0, 0, 0, 2] = 1  # top right
    assert data.rotate90(corner, 1)[0, 0, 0, 0] == 1  # counter-clockwise: to the top left
    assert torch.equal(data.rotate90(images, 1), torch.rot90(images, 1, dims=(2, 3)))
    assert torch.equal(data.rotate90(images, -1), data.rotate90(images, 3))
    assert torch.equal(data.rotate90(images, 4.0), images)
    wide = torch.rand(2, 1, 3, 5, generator=gen(6))
    assert torch.equal(data.rotate90(wide, 2), wide.flip(2, 3))


def test_rotate_random_uses_all_four_angles() -> None:
    x = torch.rand(1, 1, 4, 4, generator=gen(7)).repeat(400, 1, 1, 1)
    out = data.rotate90(x, generator=gen(8))
    rotations = torch.stack([torch.rot90(x[0], k, dims=(1, 2)) for k in range(4)])
    turns = [int(torch.nonzero((rotations == y).flatten(1).all(1))[0]) for y in out]
    counts = torch.bincount(torch.tensor(turns), minlength=4)
    assert counts.min() > 60  # 100 expected each; 60 is 4.6 standard deviations below


def test_mask_with_uniform_noise(images: torch.Tensor) -> None:
    out = data.mask_fraction(images, 0.5, fill="noise", generator=gen(9))
    assert torch.equal(out[:, :, 4:], images[:, :, 4:])
    masked = out[:, :, :4]
    assert masked.min() >= 0 and masked.max() < 1 and not torch.equal(masked, images[:, :, :4])
    assert abs(masked.mean().item() - 0.5) < 0.05  # 384 uniforms: standard error 0.015


def test_gaussian_mean_whitens(images: torch.Tensor) -> None:
    assert torch.equal(data.gaussian_noise(images, 0.0, mean=0.3), (images + 0.3).clamp(0, 1))
    noisy = data.corrupt(images, "gaussian", generator=gen(10), sigma=0.1**0.5, mean=0.5)
    assert noisy.mean() > images.mean() + 0.3


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda x: data.crop_zoom(x, 0.0), r"scale must lie in \(0, 1\]"),
        (lambda x: data.crop_zoom(x, 1.5), "scale"),
        (lambda x: data.crop_zoom(x, 0.5, position="corner"), "position"),
        (lambda x: data.color_filter(x, "purple"), "red, green, blue, sepia, gray"),
        (lambda x: data.color_filter(x, "red", strength=2.0), "strength"),
        (lambda x: data.color_filter(x[:, :1], "red"), "C = 3"),
        (lambda x: data.rotate90(x, 0.5), "integer or 'random'"),
        (lambda x: data.rotate90(x, True), "integer or 'random'"),
        (lambda x: data.rotate90(x[:, :, :5], 1), "square"),
        (lambda x: data.mask_fraction(x, 0.5, fill="ones"), "fill"),
        (lambda x: data.corrupt(x, "rotate", angle=90), "unknown angle"),
        (lambda x: data.corrupt(x, "crop"), "missing scale"),
    ],
)
def test_new_corruption_errors(images: torch.Tensor, call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(images)
