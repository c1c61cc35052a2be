"""Pretrained hub models loaded from LOCAL folders: CLIP and the Stable Diffusion autoencoders
(DALL-E's discrete VAE is in :mod:`neurodyn.codecs.dalle`).

Hopfield Encoding Networks (Kashyap et al. 2024) store encoder codes instead of pixels, which
separates the memories and removes most meta-stable states, and decode what the dynamics recall;
cross-modal memories bind ``[image code; text code]`` so that a caption alone recalls its image.
The paper's encoders are DALL-E's dVAE and the Stable Diffusion / LDM autoencoders for images and
CLIP for text; this module wraps each as a :class:`~neurodyn.codecs.base.Codec`.

Nothing is ever downloaded: every factory takes ``path``, a folder already on disk (absolute, or
relative to the working directory or to ``root``), and loads with ``local_files_only=True``.
Get the folders once on a machine with network access, for example with
``huggingface-cli download openai/clip-vit-base-patch32 --local-dir clip-vit-b32``. CLIP and the
diffusers autoencoders need the optional extra: ``pip install 'neurodyn[hub]'`` (``transformers``
and ``diffusers``); the DALL-E dVAE needs only torch.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from neurodyn.codecs.base import Codec
from neurodyn.errors import InputFileError

PathLike = str | os.PathLike[str]

# CLIP's image normalization (the OpenAI preprocessing, also in every CLIPImageProcessor config)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


# -- shared helpers -----------------------------------------------------------------------------

def _extra(module: str) -> ModuleType:
    """Import an optional dependency of the ``hub`` extra, offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"this codec needs the {module!r} package: pip install 'neurodyn[hub]'") from err


def local_folder(path: PathLike | None, root: PathLike | None, codec: str, what: str) -> Path:
    """The existing local folder ``path`` (tried as given, then under ``root``)."""
    if path is None:
        raise ValueError(f"codec {codec!r} loads {what} from a local folder: "
                         f"load_codec('{codec}:/path/to/folder'); nothing is downloaded")
    tried = [Path(path).expanduser()]
    if root is not None and not tried[0].is_absolute():
        tried.append(Path(root).expanduser() / tried[0])
    for folder in tried:
        if folder.is_dir():
            return folder
    raise FileNotFoundError(f"codec {codec!r}: no folder {' or '.join(map(str, tried))} "
                            f"(expected {what}; nothing is downloaded)")


def _pretrained(load: Callable[..., Any], folder: Path, what: str, example: str, **options: Any) -> Any:
    """``load(folder, local_files_only=True, **options)`` (a ``from_pretrained``), every failure
    to read the folder's config or weights, and any weight they lack, an :class:`InputFileError`.

    ``example`` names a hub repository of that kind, for the message's remedy: download the
    folder again (nothing is downloaded here).
    """
    remedy = (f"download it again on a machine with network access, e.g. `huggingface-cli download "
              f"{example} --local-dir {folder}`")
    safetensors_error = getattr(importlib.import_module("safetensors"), "SafetensorError", OSError)
    try:
        model, info = load(folder, local_files_only=True, output_loading_info=True, **options)
    except (OSError, ValueError, RuntimeError, KeyError, safetensors_error) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputFileError(folder, f"cannot be loaded as {what}: a weights or config file is "
                             f"truncated, damaged or does not fit ({reason})", remedy) from None
    missing = sorted(info.get("missing_keys") or ())
    if missing:
        raise InputFileError(folder, f"does not fit {what}: its weights lack {len(missing)} keys "
                             f"({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''})", remedy)
    return model


def rgb_images(x: Tensor, name: str) -> Tensor:
    """Three-channel images: grayscale (C = 1) is repeated, anything but 1 or 3 channels refused."""
    if x.shape[1] not in (1, 3):
        raise ValueError(f"codec {name!r} takes RGB (or grayscale) images, got {x.shape[1]} channels")
    return x.expand(-1, 3, -1, -1)


def check_sides(shape: Sequence[int], factor: int, name: str) -> tuple[int, int, int]:
    if len(shape) != 3 or shape[0] not in (1, 3) or shape[1] % factor or shape[2] % factor:
        raise ValueError(f"codec {name!r} takes images of shape (C, H, W) with C = 3 (or 1, grayscale) "
                         f"and H, W divisible by {factor}, got {tuple(shape)}")
    return int(shape[0]), int(shape[1]), int(shape[2])


# -- CLIP ---------------------------------------------------------------------------------------

class ClipImage(Codec):
    """CLIP's image tower: images -> the L2-normalized projected image embedding.

    CLIP (Radford et al. 2021, OpenAI; weights MIT-licensed, e.g. ``openai/clip-vit-base-patch32``)
    embeds images and captions in one space. Images of any size are resized (shorter side,
    bicubic), centre-cropped to the model's ``image_size`` and normalized with CLIP's mean and
    std here, in torch. Codes: (projection_dim,), unit length. A feature map without a decoder:
    a memory storing these codes reads its recall out as the stored images (the value read-out).
    """

    mean: Tensor
    std: Tensor

    def __init__(self, vision_model: nn.Module, projection: nn.Linear, image_size: int) -> None:
        super().__init__("clip-image", (projection.out_features,))
        self.vision_model, self.projection, self.image_size = vision_model, projection, image_size
        self.register_buffer("mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)

    def _encode(self, x: Tensor) -> Tensor:
        x, size = rgb_images(x, self.name), self.image_size
        h, w = x.shape[-2:]
        scale = size / min(h, w)
        x = F.interpolate(x, size=(max(size, round(h * scale)), max(size, round(w * scale))),
                          mode="bicubic", antialias=True, align_corners=False)
        top, left = (x.shape[-2] - size) // 2, (x.shape[-1] - size) // 2
        x = x[..., top:top + size, left:left + size].clamp(0.0, 1.0)
        pooled = self.vision_model(pixel_values=(x - self.mean) / self.std).pooler_output
        return F.normalize(self.projection(pooled), dim=-1)


class ClipText(Codec):
    """CLIP's text tower: captions -> the L2-normalized projected text embedding, (projection_dim,).

    Captions are tokenized with the folder's tokenizer and truncated to the model's context (77
    tokens for OpenAI CLIP). In a HEN this is the text half of ``[image code; text code]``: the
    query ``[0; v_T]`` of a caption recalls the image bound to it.
    """

    modality = "text"

    def __init__(self, text_model: nn.Module, projection: nn.Linear,
                 tokenizer: Callable[..., Mapping[str, Tensor]], max_length: int) -> None:
        super().__init__("clip-text", (projection.out_features,))
        self.text_model, self.projection = text_model, projection
        self.tokenizer, self.max_length = tokenizer, max_length

    def _encode_text(self, texts: list[str]) -> Tensor:
        tokens = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                                return_tensors="pt")
        tokens = {k: v.to(self.device) for k, v in tokens.items() if k in ("input_ids", "attention_mask")}
        return F.normalize(self.projection(self.text_model(**tokens).pooler_output), dim=-1)


def _clip(root: PathLike | None, path: PathLike | None, name: str) -> tuple[Any, Path]:
    """A ``transformers`` CLIPModel (untyped here: transformers is an optional extra) and its folder."""
    transformers = _extra("transformers")
    folder = local_folder(path, root, name, "a CLIP model saved by transformers (config.json and weights)")
    model = _pretrained(transformers.CLIPModel.from_pretrained, folder, "a CLIP model",
                        "openai/clip-vit-base-patch32", dtype=torch.float32)
    return model, folder


def clip_image(root: PathLike | None = None, path: PathLike | None = None) -> ClipImage:
    """Factory for ``load_codec("clip-image:/path")``: the image tower of the full CLIP model in
    ``path`` (a ``transformers`` CLIPModel folder, as on the Hugging Face hub)."""
    model, _ = _clip(root, path, "clip-image")
    return ClipImage(model.vision_model, model.visual_projection, model.config.vision_config.image_size)


def clip_text(root: PathLike | None = None, path: PathLike | None = None) -> ClipText:
    """Factory for ``load_codec("clip-text:/path")``: the text tower and tokenizer of the CLIP
    model in ``path`` (a ``transformers`` CLIPModel folder with its tokenizer files)."""
    model, folder = _clip(root, path, "clip-text")
    tokenizer = _extra("transformers").AutoTokenizer.from_pretrained(folder, local_files_only=True)
    return ClipText(model.text_model, model.text_projection, tokenizer,
                    model.config.text_config.max_position_embeddings)


# -- Stable Diffusion autoencoders (diffusers) -----------------------------------------------

class SDAutoencoder(Codec):
    """A Stable Diffusion / latent-diffusion autoencoder from ``diffusers``.

    Images in [0, 1] (H, W divisible by the downsampling factor ``2**(levels-1)``, 8 for SD) map
    to latents (latent_channels, H/f, W/f) and back to images in [0, 1]. Fully convolutional: the
    code shape depends on the image size (:meth:`code_shape_for`); decode takes unflattened codes.

    - ``kind="kl"`` (``AutoencoderKL``, e.g. ``stabilityai/sd-vae-ft-mse``, MIT; licences vary
      by checkpoint, SD 1.x's own VAE is CreativeML OpenRAIL-M): the code is the posterior
      mean, less ``shift_factor`` (when the config has one), times ``scaling_factor``, so codes
      have roughly unit variance as in the diffusion model.
    - ``kind="vq"`` (``VQModel``, the LDM / VQ-GAN autoencoders, e.g. ``CompVis/ldm-*``'s
      ``vqvae``): the code is the quantized latent, each position one codebook vector (not an
      index). Decoding quantizes again, so a recalled blend of codes snaps to the nearest
      codebook vectors before the decoder, and a stored code decodes exactly as VQ-GAN does.
    """

    model: Any  # a diffusers AutoencoderKL or VQModel (untyped here: diffusers is an optional extra)

    def __init__(self, model: nn.Module, kind: Literal["kl", "vq"]) -> None:
        super().__init__(f"sd-{kind}", None)
        self.model, self.kind = model, kind
        self.discrete = kind == "vq"
        self.factor = 2 ** (len(self.model.config.block_out_channels) - 1)

    def code_shape_for(self, stimulus_shape: Sequence[int] | None = None) -> tuple[int, ...]:
        if stimulus_shape is None:
            return super().code_shape_for()
        _, h, w = check_sides(stimulus_shape, self.factor, self.name)
        return self.model.config.latent_channels, h // self.factor, w // self.factor

    def _encode(self, x: Tensor) -> Tensor:
        check_sides(x.shape[1:], self.factor, self.name)
        x = rgb_images(x, self.name) * 2 - 1
        if self.kind == "vq":
            return self.model.quantize(self.model.encode(x).latents)[0]
        config = self.model.config
        return (self.model.encode(x).latent_dist.mean - (config.shift_factor or 0.0)) * config.scaling_factor

    def _decode(self, z: Tensor) -> Tensor:
        channels = self.model.config.latent_channels
        if z.ndim != 4 or z.shape[1] != channels:
            raise ValueError(f"codec {self.name!r} decodes codes of shape (n, {channels}, h, w), "
                             f"got {tuple(z.shape)} (reshape flat codes first)")
        if self.kind == "kl":
            z = z / self.model.config.scaling_factor + (self.model.config.shift_factor or 0.0)
        return ((self.model.decode(z).sample + 1) / 2).clamp(0.0, 1.0)


def _diffusers_folder(root: PathLike | None, path: PathLike | None, name: str) -> Path:
    folder = local_folder(path, root, name, "a diffusers autoencoder (config.json and weights, or a pipeline "
                                      "folder with a vae/ or vqvae/ subfolder)")
    if not (folder / "config.json").is_file():
        for sub in ("vae", "vqvae"):
            if (folder / sub / "config.json").is_file():
                return folder / sub
        raise FileNotFoundError(f"codec {name!r}: no config.json in {folder} "
                                "nor in its vae/ or vqvae/ subfolder")
    return folder


def sd_kl(root: PathLike | None = None, path: PathLike | None = None) -> SDAutoencoder:
    """Factory for ``load_codec("sd-kl:/path")``: a diffusers ``AutoencoderKL`` folder (or a
    pipeline folder holding it in ``vae/``)."""
    diffusers = _extra("diffusers")
    folder = _diffusers_folder(root, path, "sd-kl")
    model = _pretrained(diffusers.AutoencoderKL.from_pretrained, folder, "a diffusers AutoencoderKL",
                        "stabilityai/sd-vae-ft-mse", low_cpu_mem_usage=False, torch_dtype=torch.float32)
    return SDAutoencoder(model, "kl")


def sd_vq(root: PathLike | None = None, path: PathLike | None = None) -> SDAutoencoder:
    """Factory for ``load_codec("sd-vq:/path")``: a diffusers ``VQModel`` folder (or a pipeline
    folder holding it in ``vqvae/`` or ``vae/``)."""
    diffusers = _extra("diffusers")
    folder = _diffusers_folder(root, path, "sd-vq")
    model = _pretrained(diffusers.VQModel.from_pretrained, folder, "a diffusers VQModel",
                        "CompVis/ldm-celebahq-256 (its vqvae/ folder)", low_cpu_mem_usage=False,
                        torch_dtype=torch.float32)
    return SDAutoencoder(model, "vq")
