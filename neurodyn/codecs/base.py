"""The codec interface: an encoder maps stimuli to codes, a decoder maps codes back.

In the data flow of DESIGN.md section 4 (stimulus -> encoder -> cue -> dynamics -> Dataset ->
decoder) a codec is the entorhinal input and the output stage. Hopfield Encoding Networks store
encoder codes instead of pixels and decode what the dynamics recall; the semantic memories of
Salvatori et al. (2023) score cues by a feature map ``phi`` and read out pixels or ``psi(code)``.

A subclass implements ``_encode`` and ``_decode`` on one batch on its own device; :class:`Codec`
does the rest the same way for every codec: input checks, batching, moving inputs to the codec's
device, and no autograd graph unless ``grad=True``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

Modality = Literal["image", "text"]
Stimuli = Tensor | Sequence[str]


class Codec(nn.Module):
    """An encoder and (optionally) a decoder with declared shapes.

    Attributes:
        name: the registry name (``"taef2"``, ``"resnet20"``, ``"minilm"``...).
        modality: ``"image"`` (stimuli are (n, C, H, W) float tensors in [0, 1]) or ``"text"``
            (stimuli are sequences of strings).
        stimulus_shape: the (C, H, W) shape of one image stimulus, or None when any size the
            codec accepts will do (text, fully convolutional encoders).
        code_shape: the shape of one code for a stimulus of ``stimulus_shape`` (or of any text);
            None when it depends on the image size (fully convolutional codecs, pixels): then
            :meth:`code_shape_for` gives it.
        discrete: every code position holds one of a finite set of codebook vectors (VQ
            autoencoders, DALL-E's dVAE); the codes are those vectors, not token indices.
        has_decoder: whether :meth:`decode` exists (a feature map like a ResNet has none).
    """

    modality: Modality = "image"
    discrete: bool = False

    def __init__(self, name: str, code_shape: Sequence[int] | None,
                 stimulus_shape: Sequence[int] | None = None) -> None:
        super().__init__()
        self.name = name
        self.code_shape = None if code_shape is None else tuple(int(s) for s in code_shape)
        self.stimulus_shape = None if stimulus_shape is None else tuple(int(s) for s in stimulus_shape)

    # -- what subclasses provide -------------------------------------------------------------

    def _encode(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _encode_text(self, texts: list[str]) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _decode(self, z: Tensor) -> Tensor:
        raise NotImplementedError(f"codec {self.name!r} has no decoder (it is a feature map only)")

    @property
    def has_decoder(self) -> bool:
        return type(self)._decode is not Codec._decode

    # -- the common interface ----------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        for tensor in (*self.parameters(), *self.buffers()):
            return tensor.device
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        for tensor in self.parameters():
            return tensor.dtype
        return torch.get_default_dtype()

    def code_shape_for(self, stimulus_shape: Sequence[int] | None = None) -> tuple[int, ...]:
        """The shape of one code for images of ``stimulus_shape`` (C, H, W); codecs whose code
        shape depends on the image size override this."""
        if self.modality == "image" and stimulus_shape is not None:
            self._check_stimulus_shape(tuple(stimulus_shape))
        if self.code_shape is None:
            raise ValueError(f"codec {self.name!r}: the code shape depends on the image shape; pass it")
        return self.code_shape

    def code_size(self, stimulus_shape: Sequence[int] | None = None) -> int:
        """The length of a flattened code (the memory vector's length)."""
        return math.prod(self.code_shape_for(stimulus_shape))

    def _check_stimulus_shape(self, shape: tuple[int, ...]) -> None:
        if self.stimulus_shape is not None and shape != self.stimulus_shape:
            raise ValueError(f"codec {self.name!r} takes images of shape {self.stimulus_shape} (C, H, W), "
                             f"got {shape}")

    def encode(self, stimuli: Stimuli, *, batch_size: int = 256, grad: bool = False) -> Tensor:
        """Codes of a batch of stimuli, shape ``(n, *code_shape)``, on the codec's device.

        Images: an (n, C, H, W) float tensor with values in [0, 1]. Text: a sequence of strings.
        ``grad=True`` keeps the autograd graph (for training); by default none is built.
        """
        if self.modality == "text":
            texts = _check_texts(stimuli, self.name)
            with torch.set_grad_enabled(grad):
                return torch.cat([self._encode_text(texts[i:i + batch_size])
                                  for i in range(0, len(texts), batch_size)])
        x = _check_images(stimuli, self.name)
        self._check_stimulus_shape(tuple(x.shape[1:]))
        return self._batched(self._encode, x, batch_size, grad)

    def decode(self, codes: Tensor, *, batch_size: int = 256, grad: bool = False) -> Tensor:
        """Stimuli (images in [0, 1]) from codes of shape ``(n, *code_shape)`` or flattened (n, code_size)."""
        if not self.has_decoder:
            raise NotImplementedError(f"codec {self.name!r} has no decoder (it is a feature map only)")
        z = torch.as_tensor(codes)
        if z.ndim < 2 or z.shape[0] == 0:
            raise ValueError(f"codes must be a non-empty batch (n, ...), got shape {tuple(z.shape)}")
        if self.code_shape is not None and tuple(z.shape[1:]) != self.code_shape:
            if z.ndim == 2 and z.shape[1] == math.prod(self.code_shape):
                z = z.reshape(-1, *self.code_shape)
            else:
                raise ValueError(f"codec {self.name!r} decodes codes of shape {self.code_shape} "
                                 f"(or flat {math.prod(self.code_shape)}), got {tuple(z.shape[1:])}")
        if z.is_floating_point() and not torch.isfinite(z).all():
            raise ValueError("codes contain NaN or infinite values")
        return self._batched(self._decode, z, batch_size, grad)

    def _batched(self, fn, x: Tensor, batch_size: int, grad: bool) -> Tensor:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        device, dtype = self.device, self.dtype
        with torch.set_grad_enabled(grad):
            outs = []
            for i in range(0, x.shape[0], batch_size):
                chunk = x[i:i + batch_size].to(device)
                outs.append(fn(chunk.to(dtype) if chunk.is_floating_point() else chunk))
            return torch.cat(outs)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, modality={self.modality!r}, code_shape={self.code_shape}"


def _check_images(x: object, name: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"codec {name!r} encodes images: pass an (n, C, H, W) float tensor, got {type(x).__name__}")
    if x.ndim != 4 or not x.is_floating_point():
        raise ValueError(f"codec {name!r} encodes images of shape (n, C, H, W) with float values in [0, 1], "
                         f"got {x.dtype} of shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError("no images to encode (empty batch)")
    if not torch.isfinite(x).all():
        raise ValueError("images contain NaN or infinite values")
    return x


def _check_texts(texts: object, name: str) -> list[str]:
    if isinstance(texts, str):
        texts = [texts]
    if isinstance(texts, Tensor) or not isinstance(texts, Sequence):
        raise TypeError(f"codec {name!r} encodes text: pass a sequence of strings, got {type(texts).__name__}")
    texts = list(texts)
    if not texts:
        raise ValueError("no texts to encode (empty list)")
    bad = [t for t in texts if not isinstance(t, str)]
    if bad:
        raise TypeError(f"codec {name!r} encodes strings, got {type(bad[0]).__name__}")
    return texts
