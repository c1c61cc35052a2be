"""TAEF2: a pretrained tiny convolutional autoencoder, RGB -> 32 channels at 1/8 resolution.

TAEF2 is Ollin Boer Bohan's tiny autoencoder for the FLUX.2 latent space (MIT licence, see
``weights/LICENSE-taesd`` in the data root); the modules below are written from the architecture
facts in the shared data README, so that the published state dicts load strictly. Hopfield
Encoding Networks store encoder codes instead of pixels and decode what the dynamics recall:
this codec gives such codes, about 1.3M parameters each half, PSNR near 30 dB on natural images.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from neurodyn.codecs.base import Codec
from neurodyn.codecs.weights import load_state, read_weights, state_dict_in
from neurodyn.data import data_file, data_remedy

LATENT_CHANNELS = 32
SCALE = 8  # three stride-2 convolutions
_WIDTH = 64
_ORIGIN = "TAEF2 autoencoder weights (by Ollin Boer Bohan, MIT)"


def _conv(a: int, b: int, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(a, b, 3, stride=stride, padding=1, bias=bias)


class _Block(nn.Module):
    """Three 3x3 convolutions with ReLUs and an identity skip (every TAEF2 block keeps its 64
    channels); a mid block first adds a 1x1 "pool" branch with GroupNorm."""

    def __init__(self, mid: bool = False) -> None:
        super().__init__()
        n = _WIDTH
        self.conv = nn.Sequential(_conv(n, n), nn.ReLU(), _conv(n, n), nn.ReLU(), _conv(n, n))
        self.pool = nn.Sequential(nn.Conv2d(n, 4 * n, 1, bias=False), nn.GroupNorm(4, 4 * n),
                                  nn.ReLU(), nn.Conv2d(4 * n, n, 1, bias=False)) if mid else None

    def forward(self, x: Tensor) -> Tensor:
        if self.pool is not None:
            x = x + self.pool(x)
        return torch.relu(self.conv(x) + x)


class _SoftClamp(nn.Module):
    """``3 tanh(x / 3)``: keeps latents in (-3, 3), where the encoder puts them."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(x / 3) * 3


def _blocks(k: int, mid: bool = False) -> list[nn.Module]:
    return [_Block(mid) for _ in range(k)]


def encoder() -> nn.Sequential:
    """The TAEF2 encoder, (n, 3, H, W) in [0, 1] -> (n, 32, H/8, W/8) (indices 0..14)."""
    n = _WIDTH
    return nn.Sequential(
        _conv(3, n), *_blocks(1),
        _conv(n, n, 2, bias=False), *_blocks(3),
        _conv(n, n, 2, bias=False), *_blocks(3),
        _conv(n, n, 2, bias=False), *_blocks(3, mid=True),
        _conv(n, LATENT_CHANNELS),
    )


def decoder() -> nn.Sequential:
    """The TAEF2 decoder, (n, 32, h, w) -> (n, 3, 8h, 8w), not yet clamped (indices 0..19)."""
    n = _WIDTH
    return nn.Sequential(
        _SoftClamp(), _conv(LATENT_CHANNELS, n), nn.ReLU(), *_blocks(3, mid=True),
        nn.Upsample(scale_factor=2), _conv(n, n, bias=False), *_blocks(3),
        nn.Upsample(scale_factor=2), _conv(n, n, bias=False), *_blocks(3),
        nn.Upsample(scale_factor=2), _conv(n, n, bias=False), *_blocks(1),
        _conv(n, 3),
    )


class TAEF2(Codec):
    """The TAEF2 autoencoder as a codec: images (n, C, H, W) with H and W divisible by 8 ->
    codes (n, 32, H/8, W/8) -> RGB images (n, 3, H, W) clamped to [0, 1]. Codes have a standard
    deviation near 1 and lie almost all (99.8% on CIFAR-10) in [-3, 3]; the decoder first maps
    them smoothly into (-3, 3).

    Grayscale images (C = 1) are accepted and encoded as RGB with the channel repeated three
    times; decoding always gives three channels. The code shape depends on the image size:
    see :meth:`code_shape_for`.
    """

    def __init__(self) -> None:
        super().__init__("taef2", None)
        self.encoder = encoder()
        self.decoder = decoder()

    def code_shape_for(self, stimulus_shape: Sequence[int] | None = None) -> tuple[int, ...]:
        if stimulus_shape is None:
            return super().code_shape_for()
        _, h, w = self._check_image_shape(tuple(stimulus_shape))
        return LATENT_CHANNELS, h // SCALE, w // SCALE

    def _check_image_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(shape) != 3 or shape[0] not in (1, 3) or shape[1] % SCALE or shape[2] % SCALE:
            raise ValueError(f"codec {self.name!r} takes images of shape (C, H, W) with C = 3 (or 1, "
                             f"grayscale) and H, W divisible by {SCALE}, got {shape}")
        return shape

    def _encode(self, x: Tensor) -> Tensor:
        self._check_image_shape(tuple(x.shape[1:]))
        return self.encoder(x.expand(-1, 3, -1, -1))

    def _decode(self, z: Tensor) -> Tensor:
        if z.ndim != 4 or z.shape[1] != LATENT_CHANNELS:
            raise ValueError(f"codec {self.name!r} decodes codes of shape (n, {LATENT_CHANNELS}, h, w); "
                             f"got {tuple(z.shape)} (reshape flat codes first)")
        return self.decoder(z).clamp(0.0, 1.0)


def _load_half(module: nn.Module, root: str | os.PathLike[str] | None, file: str, what: str) -> None:
    """Load the state dict ``weights/file`` under the data root into ``module`` (``what``)."""
    path = data_file(root, "weights", file, _ORIGIN)
    remedy = data_remedy("weights", file, _ORIGIN)
    load_state(module, state_dict_in(read_weights(path, remedy), path, remedy), path, remedy, what)


def taef2(root: str | os.PathLike[str] | None = None, **_: object) -> TAEF2:
    """Factory for :func:`neurodyn.codecs.load_codec`: TAEF2 with the pretrained weights
    ``taef2_encoder.pth`` and ``taef2_decoder.pth`` from ``weights/`` under the data root
    (``root``, default ``$NEURODYN_DATA``).

    Raises:
        FileNotFoundError: no data root, or a weights file is missing.
        InputFileError (a ValueError): a weights file is truncated, not a PyTorch file, or does
            not fit the TAEF2 encoder or decoder (missing or unexpected keys, other shapes).
    """
    codec = TAEF2()
    _load_half(codec.encoder, root, "taef2_encoder.pth", "TAEF2 encoder")
    _load_half(codec.decoder, root, "taef2_decoder.pth", "TAEF2 decoder")
    return codec.eval()
