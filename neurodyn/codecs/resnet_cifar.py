"""Pretrained CIFAR-10 ResNet-20 and ResNet-56 as a feature map phi (64-d pooled features).

The network is the CIFAR ResNet of He et al., "Deep Residual Learning for Image Recognition"
(CVPR 2016), with the parameter-free "option A" shortcut; the weights are Yerlan Idelbayev's
(BSD-2-Clause, see ``weights/LICENSE-resnet-cifar10`` in the data root). The modules are written
from the architecture facts in the shared data README. The semantic memories of Salvatori et al.
(2023) compare a cue with the stored items in the space of a feature map ``phi`` rather than in
pixel space: :meth:`ResNetCifar.encode` is that ``phi``, the globally pooled features before the
classifier. There is no decoder.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from neurodyn.codecs.base import Codec
from neurodyn.codecs.weights import load_state, read_weights, state_dict_in
from neurodyn.data import data_file, data_remedy

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
_ORIGIN = "CIFAR-10 ResNet weights (by Yerlan Idelbayev, BSD-2-Clause)"


def _conv(a: int, b: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(a, b, 3, stride=stride, padding=1, bias=False)


class _OptionA(nn.Module):
    """The parameter-free shortcut between stages: keep every other pixel, then zero-pad the
    channels, ``pad`` on each side (16 -> 32 -> 64 channels)."""

    def __init__(self, pad: int) -> None:
        super().__init__()
        self.pad = pad

    def forward(self, x: Tensor) -> Tensor:
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))


class _BasicBlock(nn.Module):
    def __init__(self, a: int, b: int, stride: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv(a, b, stride), nn.BatchNorm2d(b)
        self.conv2, self.bn2 = _conv(b, b), nn.BatchNorm2d(b)
        self.shortcut = _OptionA((b - a) // 2) if stride != 1 or a != b else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


def _stage(a: int, b: int, blocks: int, stride: int) -> nn.Sequential:
    return nn.Sequential(_BasicBlock(a, b, stride), *(_BasicBlock(b, b, 1) for _ in range(blocks - 1)))


class ResNetCifar(Codec):
    """A CIFAR ResNet with ``6 * blocks + 2`` layers as a codec without decoder: images
    (n, 3, 32, 32) in [0, 1] -> features (n, 64), the ReLU outputs of the last stage averaged
    over the 8x8 grid. The input normalization (ImageNet mean and std, as in training) is done
    here. :meth:`classify` adds the final linear layer (CIFAR-10 logits).
    """

    def __init__(self, name: str, blocks: int) -> None:
        super().__init__(name, (64,), (3, 32, 32))
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)
        self.conv1, self.bn1 = _conv(3, 16), nn.BatchNorm2d(16)
        self.layer1 = _stage(16, 16, blocks, 1)
        self.layer2 = _stage(16, 32, blocks, 2)
        self.layer3 = _stage(32, 64, blocks, 2)
        self.linear = nn.Linear(64, 10)

    def _encode(self, x: Tensor) -> Tensor:
        mean, std = self.get_buffer("mean"), self.get_buffer("std")
        x = torch.relu(self.bn1(self.conv1((x - mean) / std)))
        return self.layer3(self.layer2(self.layer1(x))).mean(dim=(2, 3))

    def classify(self, x: Tensor, *, batch_size: int = 256) -> Tensor:
        """CIFAR-10 logits (n, 10) of images (n, 3, 32, 32) in [0, 1], classes in the standard
        order (airplane, automobile, bird, cat, deer, dog, frog, horse, ship, truck)."""
        features = self.encode(x, batch_size=batch_size)
        with torch.no_grad():
            return self.linear(features)


def _load(name: str, blocks: int, file: str, root: str | os.PathLike[str] | None) -> ResNetCifar:
    """ResNet ``name`` with the weights of ``weights/file`` under the data root: a dict whose
    ``state_dict`` has keys prefixed ``module.``."""
    path = data_file(root, "weights", file, _ORIGIN)
    remedy = data_remedy("weights", file, _ORIGIN)
    state = state_dict_in(read_weights(path, remedy), path, remedy, "state_dict")
    codec = ResNetCifar(name, blocks)
    load_state(codec, {key.removeprefix("module."): value for key, value in state.items()},
               path, remedy, name)
    return codec.eval()


def resnet20(root: str | os.PathLike[str] | None = None, **_: object) -> ResNetCifar:
    """Factory for :func:`neurodyn.codecs.load_codec`: ResNet-20 (0.27M parameters) with the
    weights ``resnet20-12fca82f.th`` from ``weights/`` under the data root (default
    ``$NEURODYN_DATA``); 91.25% on the original CIFAR-10 test set.

    Raises:
        FileNotFoundError: no data root, or the weights file is missing.
        InputFileError (a ValueError): the weights file is truncated, not a PyTorch file, or
            does not fit the network (missing or unexpected keys, other shapes).
    """
    return _load("resnet20", 3, "resnet20-12fca82f.th", root)


def resnet56(root: str | os.PathLike[str] | None = None, **_: object) -> ResNetCifar:
    """Factory for :func:`neurodyn.codecs.load_codec`: ResNet-56 (0.85M parameters) with the
    weights ``resnet56-4bfd9763.th`` from ``weights/`` under the data root (default
    ``$NEURODYN_DATA``); 93.39% on the original CIFAR-10 test set.

    Raises:
        FileNotFoundError: no data root, or the weights file is missing.
        InputFileError (a ValueError): the weights file is truncated, not a PyTorch file, or
            does not fit the network (missing or unexpected keys, other shapes).
    """
    return _load("resnet56", 9, "resnet56-4bfd9763.th", root)
