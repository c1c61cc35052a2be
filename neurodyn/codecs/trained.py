"""Codecs the project trains itself on real data (:mod:`neurodyn.codecs.train` trains them).

- ``"mnist-ae12"``: :class:`MLPAutoencoder`, the 784-64-32-16-12 MLP autoencoder of the
  fully-semantic memory model (Salvatori et al., 2023, "Associative Memories in the Feature
  Space", section 4, "Implementation Details"): phi is the encoder, psi the mirror decoder.
- ``"vqae"``: :class:`VQAutoencoder`, a small vector-quantized autoencoder (van den Oord et al.,
  2017, "Neural Discrete Representation Learning"), the stand-in for the DALL-E discrete VAE of
  Hopfield Encoding Networks: discrete tokens, :meth:`VQAutoencoder.indices`.
- ``"simclr"``: :class:`SimCLREncoder`, a small ResNet trained with the contrastive loss of
  section 3 ("SimCLR") on the paper's corruptions as augmentations; a feature map, no decoder.

Only test sets are available under the data root, so each codec trains on 8,000 images of its
test set and reports its metrics on the other 2,000, every fifth image (indices 4, 9, ...; see
:func:`neurodyn.codecs.train.split` and ``metadata["held_out"]``).
A checkpoint is a dict ``{"state_dict": ..., "metadata": {...}}``; the metadata hold the
architecture's hyper-parameters, which rebuild the module before its weights are loaded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from neurodyn.codecs import checkpoint_dirs, find_checkpoint
from neurodyn.codecs.base import Codec
from neurodyn.codecs.weights import load_state, read_weights, state_dict_in
from neurodyn.errors import InputFileError


class TrainedCodec(Codec):
    """A codec whose weights come from a checkpoint of :mod:`neurodyn.codecs.train`.

    Attributes:
        architecture: the keyword arguments that rebuild the module (saved in the checkpoint).
        metadata: the checkpoint's metadata (training settings, data, held-out metrics); empty
            for a freshly built codec.
    """

    def __init__(self, name: str, code_shape: Sequence[int], stimulus_shape: Sequence[int],
                 architecture: dict[str, Any]) -> None:
        super().__init__(name, code_shape, stimulus_shape)
        self.architecture = architecture
        self.metadata: dict[str, Any] = {}


class MLPAutoencoder(TrainedCodec):
    """The feature-space paper's MNIST autoencoder (section 4): widths 784-64-32-16-12 and back.

    ReLU between layers; the 12-d code is linear (the bottleneck), the output a sigmoid so
    decoded pixels lie in [0, 1]. Code: the 12 bottleneck values; stimulus: 1x28x28 in [0, 1].
    """

    def __init__(self, widths: Sequence[int] = (784, 64, 32, 16, 12)) -> None:
        widths = [int(w) for w in widths]
        super().__init__("mnist-ae12", (widths[-1],), (1, 28, 28), {"widths": widths})
        self.encoder = _mlp(widths)
        self.decoder = nn.Sequential(_mlp(widths[::-1]), nn.Sigmoid())

    def _encode(self, x: Tensor) -> Tensor:
        return self.encoder(x.flatten(1))

    def _decode(self, z: Tensor) -> Tensor:
        return self.decoder(z).reshape(-1, *(self.stimulus_shape or ()))


def _mlp(widths: Sequence[int]) -> nn.Sequential:
    """Linear layers between consecutive widths with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for n_in, n_out in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(n_in, n_out), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


class VQAutoencoder(TrainedCodec):
    """A VQ-VAE-style autoencoder: conv encoder, nearest-codebook quantizer, conv decoder.

    The encoder halves the resolution twice (4x4 convolutions of stride 2): a ``channels`` x H x W
    image becomes a grid of (H/4) x (W/4) vectors of ``code_dim`` values, each replaced by its
    nearest of ``codebook_size`` codebook vectors (van den Oord et al., 2017, eq. 1-2).

    Memory vector (what :meth:`encode` returns): the quantized codebook vectors, shape
    (code_dim, H/4, W/4), flattened channel-first by ``code_size``. :meth:`indices` gives the
    discrete tokens (H/4, W/4) and :meth:`codes_from_indices` maps tokens back to codes.
    :meth:`decode` runs the decoder on any code, quantized or not (a recalled mixture included);
    :meth:`quantize` snaps codes to the codebook first when a valid token grid is wanted.
    """

    discrete = True

    def __init__(self, channels: int = 3, size: int = 32, hidden: int = 64, code_dim: int = 16,
                 codebook_size: int = 128) -> None:
        grid = size // 4
        super().__init__("vqae", (code_dim, grid, grid), (channels, size, size),
                         {"channels": channels, "size": size, "hidden": hidden,
                          "code_dim": code_dim, "codebook_size": codebook_size})
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, hidden // 2, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(hidden // 2, hidden, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU(),
            nn.Conv2d(hidden, code_dim, 1),
        )
        self.codebook = nn.Parameter(torch.randn(codebook_size, code_dim) / code_dim**0.5)
        self.decoder = nn.Sequential(
            nn.Conv2d(code_dim, hidden, 3, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(hidden, hidden // 2, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(hidden // 2, channels, 4, stride=2, padding=1), nn.Sigmoid(),
        )

    def nearest(self, z: Tensor) -> Tensor:
        """The index of the nearest codebook vector (squared Euclidean) at each grid position:
        (n, code_dim, h, w) -> (n, h, w) int64."""
        flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
        distances = torch.cdist(flat, self.codebook)
        return distances.argmin(1).reshape(z.shape[0], *z.shape[2:])

    def codes_from_indices(self, tokens: Tensor) -> Tensor:
        """Codebook vectors of a token grid: (n, h, w) int -> (n, code_dim, h, w)."""
        return self.codebook[tokens].permute(0, 3, 1, 2)

    def quantize(self, z: Tensor) -> Tensor:
        """Replace each vector of a code grid by its nearest codebook vector."""
        return self.codes_from_indices(self.nearest(z))

    def indices(self, x: Tensor, *, batch_size: int = 256) -> Tensor:
        """The discrete tokens of images: (n, C, H, W) in [0, 1] -> (n, H/4, W/4) int64."""
        return self.nearest(self.encode(x, batch_size=batch_size))

    def _encode(self, x: Tensor) -> Tensor:
        return self.quantize(self.encoder(x))

    def _decode(self, z: Tensor) -> Tensor:
        return self.decoder(z)


class BasicBlock(nn.Module):
    """The ResNet basic block (He et al., 2016): two 3x3 conv-BN layers and a shortcut (a 1x1
    conv-BN where the shape changes), ReLU of the sum."""

    def __init__(self, n_in: int, n_out: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(n_in, n_out, 3, stride, 1, bias=False), nn.BatchNorm2d(n_out), nn.ReLU(),
            nn.Conv2d(n_out, n_out, 3, 1, 1, bias=False), nn.BatchNorm2d(n_out),
        )
        self.shortcut = nn.Identity() if stride == 1 and n_in == n_out else nn.Sequential(
            nn.Conv2d(n_in, n_out, 1, stride, bias=False), nn.BatchNorm2d(n_out))

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class SimCLREncoder(TrainedCodec):
    """A small ResNet feature map phi trained with SimCLR's NT-Xent loss (Chen et al., 2020;
    Salvatori et al., 2023, section 3).

    A 3x3 conv-BN-ReLU stem with ``widths[0]`` channels and stride ``stem_stride``, then one
    :class:`BasicBlock` per width, each after the first halving the resolution, then global
    average pooling. (A stride-2 stem makes a training step about four times faster than stride
    1 on a CPU, and on a fixed time budget it retrieved better.) Code: those pooled
    features (the projection head's input, as SimCLR recommends), L2-normalized; shape
    (widths[-1],). ``head`` (a 2-layer MLP to ``projection`` values) is used only by the loss.
    """

    def __init__(self, widths: Sequence[int] = (16, 32, 64, 128), projection: int = 64,
                 channels: int = 3, size: int = 32, stem_stride: int = 2) -> None:
        widths = [int(w) for w in widths]
        super().__init__("simclr", (widths[-1],), (channels, size, size),
                         {"widths": widths, "projection": projection,
                          "channels": channels, "size": size, "stem_stride": stem_stride})
        blocks = [BasicBlock(a, b, 1 if i == 0 else 2)
                  for i, (a, b) in enumerate(zip(widths[:1] + widths[:-1], widths))]
        stem = nn.Conv2d(channels, widths[0], 3, stem_stride, 1, bias=False)
        self.backbone = nn.Sequential(stem, nn.BatchNorm2d(widths[0]), nn.ReLU(), *blocks,
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(widths[-1], widths[-1]), nn.ReLU(),
                                  nn.Linear(widths[-1], projection))

    def _encode(self, x: Tensor) -> Tensor:
        return F.normalize(self.backbone(x), dim=1)


CODECS: dict[str, type[TrainedCodec]] = {
    "mnist-ae12": MLPAutoencoder,
    "vqae": VQAutoencoder,
    "simclr": SimCLREncoder,
}


def build(name: str, architecture: dict[str, Any] | None = None) -> TrainedCodec:
    """A freshly initialized codec ``name`` (a key of :data:`CODECS`) with ``architecture``."""
    if name not in CODECS:
        raise ValueError(f"unknown trained codec {name!r}; known: {', '.join(CODECS)}")
    return CODECS[name](**(architecture or {}))


def load_trained(name: str, checkpoint: str | os.PathLike[str] | None = None) -> TrainedCodec:
    """Codec ``name`` with the weights of ``checkpoint`` (default ``{name}.pt``), found by
    :func:`neurodyn.codecs.find_checkpoint`; its metadata are in ``codec.metadata``.

    Raises:
        FileNotFoundError: no such checkpoint; the message says how to train one.
        InputFileError (a ValueError): the checkpoint is truncated or not a PyTorch file, holds
            another codec, or its metadata or weights do not fit the codec.
    """
    file = str(checkpoint or f"{name}.pt")
    how = (f"train it with `neurodyn train-codec {name}` "
           f"(or neurodyn.codecs.train.train_codec({name!r}))")
    path = find_checkpoint(file, how)
    remedy = f"train a new one with `neurodyn train-codec {name}` (it writes {checkpoint_dirs()[0] / (name + '.pt')})"
    saved = read_weights(path, remedy)
    metadata = saved.get("metadata") if isinstance(saved, dict) else None
    if not isinstance(metadata, dict) or not isinstance(metadata.get("architecture"), dict):
        raise InputFileError(path, "is not a checkpoint of neurodyn.codecs.train: it holds no "
                             "'metadata' with the codec's 'name' and 'architecture'", remedy)
    if metadata.get("name") != name:
        raise InputFileError(path, f"holds codec {metadata.get('name')!r}, not {name!r}",
                             f"load it as that codec, or {remedy}")
    try:
        codec = build(name, metadata["architecture"])
    except (TypeError, ValueError, IndexError, RuntimeError) as err:
        raise InputFileError(path, f"its architecture {metadata['architecture']} does not build "
                             f"a {name} codec ({err})", remedy) from None
    load_state(codec, state_dict_in(saved, path, remedy, "state_dict"), path, remedy, f"{name} codec")
    codec.metadata = metadata
    return codec.eval()


def mlp_autoencoder(root: object = None, checkpoint: str = "mnist-ae12.pt") -> TrainedCodec:
    """Factory for ``"mnist-ae12"`` (``root`` is unused: the weights come from a checkpoint)."""
    return load_trained("mnist-ae12", checkpoint)


def vq_autoencoder(root: object = None, checkpoint: str = "vqae.pt") -> TrainedCodec:
    """Factory for ``"vqae"`` (``root`` is unused: the weights come from a checkpoint)."""
    return load_trained("vqae", checkpoint)


def simclr(root: object = None, checkpoint: str = "simclr.pt") -> TrainedCodec:
    """Factory for ``"simclr"`` (``root`` is unused: the weights come from a checkpoint)."""
    return load_trained("simclr", checkpoint)
