"""DALL-E's discrete VAE (Ramesh et al. 2021) as a codec, loaded from a LOCAL folder.

One of the Hopfield Encoding Networks paper's image encoders (with the Stable Diffusion / LDM
autoencoders and CLIP in :mod:`neurodyn.codecs.hub`). Its architecture is written here from the
published design (needs only torch): the state dicts ``encoder.pt`` and ``decoder.pt`` converted
once from OpenAI's pickled modules load into it. Nothing is downloaded.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from neurodyn.codecs.base import Codec
from neurodyn.codecs.hub import PathLike, check_sides, local_folder, rgb_images
from neurodyn.codecs.weights import load_state, read_weights, state_dict_in
from neurodyn.errors import InputFileError

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
        _, h, w = check_sides(stimulus_shape, 8, self.name)
        return self.codebook.shape[1], h // 8, w // 8

    def _encode(self, x: Tensor) -> Tensor:
        check_sides(x.shape[1:], 8, self.name)
        x = (1 - 2 * DVAE_EPS) * rgb_images(x, self.name) + DVAE_EPS
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
    folder = local_folder(path, root, "dalle-dvae", "the dVAE state dicts encoder.pt and decoder.pt")
    (enc, enc_file, enc_remedy), (dec, dec_file, dec_remedy) = (_dvae_state(folder, part)
                                                                for part in ("encoder", "decoder"))
    n_hid = _dvae_size(enc, "blocks.input.w", enc_file, enc_remedy)
    vocab = _dvae_size(enc, "blocks.output.conv.w", enc_file, enc_remedy)
    n_blk = len({k.split(".")[2] for k in enc if k.startswith("blocks.group_1.")})
    n_init = _dvae_size(dec, "blocks.input.w", dec_file, dec_remedy)
    codec = DalleDVAE(dvae_encoder(n_hid, n_blk, vocab), dvae_decoder(n_hid, n_blk, vocab, n_init))
    load_state(codec.encoder, enc, enc_file, enc_remedy, "dVAE encoder")
    load_state(codec.decoder, dec, dec_file, dec_remedy, "dVAE decoder")
    return codec


def _dvae_state(folder: Path, part: str) -> tuple[dict[str, Tensor], Path, str]:
    """The state dict in ``folder/{part}.pt``, that file, and how to make a good one."""
    file = folder / f"{part}.pt"
    recipe = (f"torch.save(torch.load('{part}.pkl', weights_only=False).state_dict(), '{part}.pt') "
              "(see neurodyn.codecs.dalle.dalle_dvae)")
    if not file.is_file():
        raise FileNotFoundError(f"codec 'dalle-dvae': no {file}; convert OpenAI's {part}.pkl with {recipe}")
    remedy = f"convert OpenAI's {part}.pkl again with {recipe}"
    return state_dict_in(read_weights(file, remedy), file, remedy), file, remedy


def _dvae_size(state: Mapping[str, Tensor], key: str, file: Path, remedy: str) -> int:
    """The output width of the dVAE convolution ``key`` (its weight's first size)."""
    if key not in state or state[key].ndim != 4:
        raise InputFileError(file, f"does not fit the dVAE: it has no 4-d convolution weight {key}",
                             remedy)
    return int(state[key].shape[0])
