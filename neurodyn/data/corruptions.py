"""Corruptions turn a stored image into a query, as in the Universal Hopfield Networks experiments
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

import inspect
import math
from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor


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


def _check_params(name: str, params: Mapping[str, object]) -> None:
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
