"""Pretrained hub models loaded from LOCAL folders: CLIP, the Stable Diffusion autoencoders and
DALL-E's discrete VAE.

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
and ``diffusers``); the DALL-E dVAE is written here and needs only torch.
"""

from __future__ import annotations

import importlib
import math
import os
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from neurodyn.codecs.base import Codec

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


def _local(path: PathLike | None, root: PathLike | None, codec: str, what: str) -> Path:
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


def _rgb(x: Tensor, name: str) -> Tensor:
    """Three-channel images: grayscale (C = 1) is repeated, anything but 1 or 3 channels refused."""
    if x.shape[1] not in (1, 3):
        raise ValueError(f"codec {name!r} takes RGB (or grayscale) images, got {x.shape[1]} channels")
    return x.expand(-1, 3, -1, -1)


def _check_sides(shape: Sequence[int], factor: int, name: str) -> tuple[int, int, int]:
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
        x, size = _rgb(x, self.name), self.image_size
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
    folder = _local(path, root, name, "a CLIP model saved by transformers (config.json and weights)")
    return transformers.CLIPModel.from_pretrained(folder, local_files_only=True, dtype=torch.float32), folder


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
        _, h, w = _check_sides(stimulus_shape, self.factor, self.name)
        return self.model.config.latent_channels, h // self.factor, w // self.factor

    def _encode(self, x: Tensor) -> Tensor:
        _check_sides(x.shape[1:], self.factor, self.name)
        x = _rgb(x, self.name) * 2 - 1
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
    folder = _local(path, root, name, "a diffusers autoencoder (config.json and weights, or a pipeline "
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
    model = diffusers.AutoencoderKL.from_pretrained(folder, local_files_only=True, low_cpu_mem_usage=False,
                                                    torch_dtype=torch.float32)
    return SDAutoencoder(model, "kl")


def sd_vq(root: PathLike | None = None, path: PathLike | None = None) -> SDAutoencoder:
    """Factory for ``load_codec("sd-vq:/path")``: a diffusers ``VQModel`` folder (or a pipeline
    folder holding it in ``vqvae/`` or ``vae/``)."""
    diffusers = _extra("diffusers")
    folder = _diffusers_folder(root, path, "sd-vq")
    model = diffusers.VQModel.from_pretrained(folder, local_files_only=True, low_cpu_mem_usage=False,
                                              torch_dtype=torch.float32)
    return SDAutoencoder(model, "vq")


# -- DALL-E discrete VAE -----------------------------------------------------------------------

DVAE_EPS = 0.1  # DALL-E's "logit-Laplace" pixel margin: pixels are mapped into [eps, 1 - eps]
DVAE_GROUPS = 4  # three 2x poolings: tokens at 1/8 resolution


class _Conv(nn.Module):
    """A same-padded convolution whose parameters are named ``w`` and ``b`` like the dVAE's."""

    def __init__(self, n_in: int, n_out: int, k: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(n_out, n_in, k, k) / math.sqrt(n_in * k * k))
        self.b = nn.Parameter(torch.zeros(n_out))

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.w, self.b, padding=self.w.shape[-1] // 2)


class _Block(nn.Module):
    """``id_path(x) + gain * res_path(x)``: four convolutions (kernels ``ks``) of width n_out/4
    after ReLUs; ``id_path`` is a 1x1 convolution when the width changes."""

    def __init__(self, n_in: int, n_out: int, ks: tuple[int, ...], gain: float) -> None:
        super().__init__()
        widths = (n_in, n_out // 4, n_out // 4, n_out // 4, n_out)
        self.id_path = _Conv(n_in, n_out, 1) if n_in != n_out else nn.Identity()
        layers: list[tuple[str, nn.Module]] = []
        for i, k in enumerate(ks):
            layers += [(f"relu_{i + 1}", nn.ReLU()), (f"conv_{i + 1}", _Conv(widths[i], widths[i + 1], k))]
        self.res_path = nn.Sequential(OrderedDict(layers))
        self.gain = gain

    def forward(self, x: Tensor) -> Tensor:
        return self.id_path(x) + self.gain * self.res_path(x)


def dvae_encoder(n_hid: int = 256, n_blk_per_group: int = 2, vocab_size: int = 8192) -> nn.Sequential:
    """DALL-E's dVAE encoder, (n, 3, H, W) pixels mapped to [eps, 1 - eps] -> token logits
    (n, vocab_size, H/8, W/8); module names give the official state-dict keys (``blocks.*``)."""
    gain, width = 1 / (DVAE_GROUPS * n_blk_per_group) ** 2, n_hid
    layers: list[tuple[str, nn.Module]] = [("input", _Conv(3, n_hid, 7))]
    for g in range(DVAE_GROUPS):
        out = n_hid * 2 ** g
        group: list[tuple[str, nn.Module]] = [
            (f"block_{i + 1}", _Block(width if i == 0 else out, out, (3, 3, 3, 1), gain))
            for i in range(n_blk_per_group)]
        if g < DVAE_GROUPS - 1:
            group.append(("pool", nn.MaxPool2d(2)))
        layers.append((f"group_{g + 1}", nn.Sequential(OrderedDict(group))))
        width = out
    layers.append(("output", nn.Sequential(OrderedDict([("relu", nn.ReLU()),
                                                        ("conv", _Conv(width, vocab_size, 1))]))))
    return nn.Sequential(OrderedDict([("blocks", nn.Sequential(OrderedDict(layers)))]))


def dvae_decoder(n_hid: int = 256, n_blk_per_group: int = 2, vocab_size: int = 8192,
                 n_init: int = 128) -> nn.Sequential:
    """DALL-E's dVAE decoder, one-hot tokens (n, vocab_size, h, w) -> pixel statistics
    (n, 6, 8h, 8w) whose first three channels, through a sigmoid, are the mapped pixels."""
    gain, width = 1 / (DVAE_GROUPS * n_blk_per_group) ** 2, n_init
    layers: list[tuple[str, nn.Module]] = [("input", _Conv(vocab_size, n_init, 1))]
    for g in range(DVAE_GROUPS):
        out = n_hid * 2 ** (DVAE_GROUPS - 1 - g)
        group: list[tuple[str, nn.Module]] = [
            (f"block_{i + 1}", _Block(width if i == 0 else out, out, (1, 3, 3, 3), gain))
            for i in range(n_blk_per_group)]
        if g < DVAE_GROUPS - 1:
            group.append(("upsample", nn.Upsample(scale_factor=2, mode="nearest")))
        layers.append((f"group_{g + 1}", nn.Sequential(OrderedDict(group))))
        width = out
    layers.append(("output", nn.Sequential(OrderedDict([("relu", nn.ReLU()),
                                                        ("conv", _Conv(width, 6, 1))]))))
    return nn.Sequential(OrderedDict([("blocks", nn.Sequential(OrderedDict(layers)))]))


class DalleDVAE(Codec):
    """DALL-E's discrete VAE (Ramesh et al. 2021, OpenAI, github.com/openai/DALL-E, modified MIT
    licence): images -> one of ``vocab_size`` (8192) tokens per 8x8 patch -> images.

    The modules are written here from the published architecture, with the official parameter
    names, so the official weights load strictly (about 54M encoder and 44M decoder parameters,
    trained on 256x256 images; any RGB or grayscale image with sides divisible by 8 is accepted).

    Codes: each position holds the *codebook vector* of its token, the column of the decoder's
    first 1x1 convolution (plus its bias) that the one-hot token selects, so a code is
    (n_init = 128, H/8, W/8) floats. That is exactly what the decoder computes from DALL-E's
    one-hot input, 64 times smaller than the one-hot (8192, H/8, W/8), and the Euclidean distance
    between codes counts (weighted) token disagreements; token indices would make a poor memory
    vector (index 5 is not closer to 6 than to 8000). Decoding snaps every position to the
    nearest codebook vector (the token a recalled blend is closest to) and runs the decoder, so
    a stored code decodes exactly as ``dec(one_hot(argmax(enc(x))))`` in DALL-E's notebook
    (``discrete``: the values come from the finite codebook). In a HEN the image slot stores
    these codes and decodes the recall.
    """

    discrete = True

    def __init__(self, encoder: nn.Module, decoder: nn.Module) -> None:
        super().__init__("dalle-dvae", None)
        self.encoder, self.decoder = encoder, decoder

    @property
    def codebook(self) -> Tensor:
        """(vocab_size, n_init): the vector the decoder's input layer makes of each token."""
        conv = self.decoder.get_submodule("blocks.input")
        return conv.get_parameter("w")[:, :, 0, 0].T + conv.get_parameter("b")

    def code_shape_for(self, stimulus_shape: Sequence[int] | None = None) -> tuple[int, ...]:
        if stimulus_shape is None:
            return super().code_shape_for()
        _, h, w = _check_sides(stimulus_shape, 8, self.name)
        return self.codebook.shape[1], h // 8, w // 8

    def _encode(self, x: Tensor) -> Tensor:
        _check_sides(x.shape[1:], 8, self.name)
        x = (1 - 2 * DVAE_EPS) * _rgb(x, self.name) + DVAE_EPS
        tokens = self.encoder(x).argmax(dim=1)
        return F.embedding(tokens, self.codebook).permute(0, 3, 1, 2)

    def _decode(self, z: Tensor) -> Tensor:
        codebook = self.codebook
        if z.ndim != 4 or z.shape[1] != codebook.shape[1]:
            raise ValueError(f"codec {self.name!r} decodes codes of shape (n, {codebook.shape[1]}, h, w), "
                             f"got {tuple(z.shape)} (reshape flat codes first)")
        flat = z.permute(0, 2, 3, 1).reshape(-1, codebook.shape[1])
        tokens = torch.cat([torch.cdist(part, codebook).argmin(dim=1) for part in flat.split(4096)])
        tokens = tokens.view(z.shape[0], *z.shape[2:])
        blocks = self.decoder.get_submodule("blocks")
        assert isinstance(blocks, nn.Sequential)  # as dvae_decoder builds it: input, groups, output
        stats = blocks[1:](F.embedding(tokens, codebook).permute(0, 3, 1, 2))
        return ((torch.sigmoid(stats[:, :3]) - DVAE_EPS) / (1 - 2 * DVAE_EPS)).clamp(0.0, 1.0)


def dalle_dvae(root: PathLike | None = None, path: PathLike | None = None) -> DalleDVAE:
    """Factory for ``load_codec("dalle-dvae:/path")``: ``path`` is a folder holding the dVAE's
    state dicts ``encoder.pt`` and ``decoder.pt`` (loaded with ``weights_only=True``; the sizes
    are read from them, so smaller dVAEs of the same design load too).

    OpenAI publishes whole pickled modules (``encoder.pkl``, ``decoder.pkl`` from
    cdn.openai.com/dall-e/) that need the ``dall_e`` package to unpickle; convert them once
    where it is installed::

        import torch  # with `pip install DALL-E` (or its source on sys.path)
        for part in ("encoder", "decoder"):
            torch.save(torch.load(f"{part}.pkl", weights_only=False).state_dict(), f"{part}.pt")
    """
    folder = _local(path, root, "dalle-dvae", "the dVAE state dicts encoder.pt and decoder.pt")
    states = {}
    for part in ("encoder", "decoder"):
        file = folder / f"{part}.pt"
        if not file.is_file():
            raise FileNotFoundError(f"codec 'dalle-dvae': no {file}; convert OpenAI's {part}.pkl with "
                                    f"torch.save(torch.load('{part}.pkl', weights_only=False).state_dict(), "
                                    f"'{part}.pt') (see neurodyn.codecs.hub.dalle_dvae)")
        states[part] = torch.load(file, map_location="cpu", weights_only=True)
    enc, dec = states["encoder"], states["decoder"]
    n_hid, vocab = enc["blocks.input.w"].shape[0], enc["blocks.output.conv.w"].shape[0]
    n_blk = len({k.split(".")[2] for k in enc if k.startswith("blocks.group_1.")})
    n_init = dec["blocks.input.w"].shape[0]
    codec = DalleDVAE(dvae_encoder(n_hid, n_blk, vocab), dvae_decoder(n_hid, n_blk, vocab, n_init))
    codec.encoder.load_state_dict(enc)
    codec.decoder.load_state_dict(dec)
    return codec
