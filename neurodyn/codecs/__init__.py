"""Encoders and decoders: the entorhinal input and the output of an associative memory.

:func:`load_codec` builds a codec by registry name, so the CLI and experiment configs choose one
with a string: ``"taef2"``, ``"resnet20"``, ``"minilm"``, ``"mnist-ae12"``, ``"clip:/path"``...
A name may carry one argument after a colon (a local path for the hub models, a checkpoint for
the trained ones). Modules are imported only when their codec is asked for, so ``import
neurodyn`` stays light and optional extras (sentence-transformers, transformers, diffusers) are
needed only by the codecs that use them.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from neurodyn.codecs.base import Codec, Modality
from neurodyn.errors import InputFileError

CACHE_ENV = "NEURODYN_CACHE"
REPO_MODELS = Path(__file__).resolve().parents[2] / "models"


@dataclass(frozen=True)
class CodecEntry:
    """A registry row: where the factory lives and what it is."""

    factory: str  # "module:function", imported on first use
    description: str
    modality: Modality = "image"
    argument: str | None = None  # what the text after "name:" means, if anything


_REGISTRY: dict[str, CodecEntry] = {}


def register_codec(name: str, factory: str | Callable[..., Codec], description: str,
                   modality: Modality = "image", argument: str | None = None) -> None:
    """Name a codec factory (``"package.module:function"`` or a callable) for :func:`load_codec`."""
    if not name or ":" in name:
        raise ValueError(f"codec names are non-empty and have no colon, got {name!r}")
    if callable(factory):
        factory = f"{factory.__module__}:{factory.__qualname__}"
    _REGISTRY[name] = CodecEntry(factory, description, modality, argument)


def available_codecs() -> dict[str, CodecEntry]:
    """Every registered codec by name."""
    return dict(sorted(_REGISTRY.items()))


def load_codec(spec: str | Codec, *, device: str | torch.device | None = None,
               root: str | os.PathLike[str] | None = None, **options) -> Codec:
    """The codec named by ``spec`` (``"name"`` or ``"name:argument"``), in eval mode on ``device``.

    ``root`` is the data root for pretrained weights (default ``$NEURODYN_DATA``); ``options`` go
    to the factory. A Codec passes through (moved to ``device``).
    """
    if isinstance(spec, Codec):
        return spec.to(device) if device is not None else spec
    name, _, argument = str(spec).partition(":")
    if name not in _REGISTRY:
        raise ValueError(f"unknown codec {name!r}; known: {', '.join(available_codecs())}")
    entry = _REGISTRY[name]
    if argument and entry.argument is None:
        raise ValueError(f"codec {name!r} takes no argument, got {spec!r}")
    if entry.argument is not None and argument:
        options[entry.argument] = argument
    module, _, function = entry.factory.partition(":")
    factory = getattr(importlib.import_module(module), function)
    codec = factory(root=root, **options)
    codec.eval()
    return codec.to(device) if device is not None else codec


def checkpoint_dirs() -> list[Path]:
    """Where trained checkpoints are looked up by name, in order: ``$NEURODYN_CACHE`` (default
    ``~/.cache/neurodyn``) then the repository's ``models/`` folder."""
    cache = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "neurodyn").expanduser()
    return [cache, REPO_MODELS]


def find_checkpoint(file: str, how: str) -> Path:
    """The first ``file`` found in :func:`checkpoint_dirs` (or ``file`` itself when it is a path).

    Raises:
        FileNotFoundError: no such file; the message ends with ``how`` to make one.
        InputFileError: ``file`` is a folder.
    """
    path = Path(file).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        raise InputFileError(path, "is a folder, not a checkpoint file", how)
    for folder in checkpoint_dirs():
        if (folder / file).is_file():
            return folder / file
    searched = ", ".join(str(d) for d in checkpoint_dirs())
    raise FileNotFoundError(f"checkpoint {file} not found (searched {searched}); {how}")


register_codec("pixels", "neurodyn.codecs.pixels:pixels", "identity: the raw pixels (the baseline)")
register_codec("taef2", "neurodyn.codecs.taef2:taef2",
               "pretrained tiny conv autoencoder: RGB -> 32 channels at 1/8 resolution and back")
register_codec("resnet20", "neurodyn.codecs.resnet_cifar:resnet20",
               "pretrained CIFAR-10 ResNet-20 as a feature map phi (64-d pooled features)")
register_codec("resnet56", "neurodyn.codecs.resnet_cifar:resnet56",
               "pretrained CIFAR-10 ResNet-56 as a feature map phi (64-d pooled features)")
register_codec("minilm", "neurodyn.codecs.text:minilm",
               "pretrained sentence encoder all-MiniLM-L6-v2 (384-d; extra 'text')", modality="text")
register_codec("render", "neurodyn.codecs.text:rendered",
               "text rendered to pixels (its SHA-256 hash, as HEN does) then an image codec",
               modality="text", argument="image_codec")
register_codec("clip-image", "neurodyn.codecs.hub:clip_image",
               "CLIP image tower from a local folder (extra 'hub')", argument="path")
register_codec("clip-text", "neurodyn.codecs.hub:clip_text",
               "CLIP text tower from a local folder (extra 'hub')", modality="text", argument="path")
register_codec("dalle-dvae", "neurodyn.codecs.dalle:dalle_dvae",
               "DALL-E discrete VAE from local encoder/decoder weights", argument="path")
register_codec("sd-kl", "neurodyn.codecs.hub:sd_kl",
               "Stable Diffusion KL autoencoder from a local folder (extra 'hub')", argument="path")
register_codec("sd-vq", "neurodyn.codecs.hub:sd_vq",
               "Stable Diffusion / LDM VQ autoencoder from a local folder (extra 'hub')", argument="path")
register_codec("mnist-ae12", "neurodyn.codecs.trained:mlp_autoencoder",
               "project-trained MLP autoencoder 784-64-32-16-12 (feature-space paper, MNIST)",
               argument="checkpoint")
register_codec("vqae", "neurodyn.codecs.trained:vq_autoencoder",
               "project-trained vector-quantized autoencoder (discrete codes, HEN's dVAE stand-in)",
               argument="checkpoint")
register_codec("simclr", "neurodyn.codecs.trained:simclr",
               "project-trained contrastive (SimCLR) small ResNet feature map", argument="checkpoint")

__all__ = ["Codec", "CodecEntry", "available_codecs", "checkpoint_dirs", "find_checkpoint",
           "load_codec", "register_codec"]
