"""Memory banks built from stimuli through codecs: the cue side of the data flow.

``stimulus -> encoder -> memory vector``. A bank has one *slot* per modality (``"image"``,
``"text"``...), each filled by its own codec; a memory is the concatenation of its slots' codes,
``xi_n = [s_I Phi_I(image_n); s_T Phi_T(text_n)]`` as in Hopfield Encoding Networks (HEN, section
2.2, Fig. 4). A query gives some modalities and leaves zeros in the others (HEN:
``v(0) = [0; v_T]``); :meth:`MemoryBank.given_mask` says which units it gave, for a clamp.

Slot scales ``s_k`` keep one modality from dominating the similarity. ``scale="balance"`` (the
default) divides every slot by the mean Euclidean norm of its stored codes, so each modality's
codes have unit mean norm, whatever the codec: a softmax temperature then means the same for
pixels, TAEF2 latents or sentence embeddings (docs/decisions.md). Explicit scales may be given
per slot; ``scale=None`` keeps raw codes.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from ..codecs import Codec, load_codec
from ..codecs.base import Stimuli

Scale = str | float | Mapping[str, float] | None


@dataclass(frozen=True)
class Slot:
    """One modality's part of a memory vector: units ``start:stop``, codes of ``code_shape``
    multiplied by ``scale``."""

    name: str
    codec: Codec
    code_shape: tuple[int, ...]
    scale: float
    start: int
    stop: int

    @property
    def size(self) -> int:
        return self.stop - self.start

    def describe(self) -> dict:
        return {"codec": self.codec.name, "code_shape": list(self.code_shape), "scale": self.scale,
                "units": [self.start, self.stop]}


def _common_count(stimuli: Mapping[str, Stimuli], what: str) -> int:
    """The number of items every modality gives (a lone string is one)."""
    counts = {name: 1 if isinstance(items, str) else len(items) for name, items in stimuli.items()}
    if len(set(counts.values())) != 1:
        raise ValueError(f"every modality must give the same number of {what}, got {counts}")
    return next(iter(counts.values()))


class MemoryBank:
    """Memory vectors made from stimuli by codecs, one slot per modality.

    Build one with :meth:`build`; ``memories`` is the (N, D) matrix a :class:`~neurodyn.network.Network`
    stores, ``stimuli`` the stored raw stimuli (for a semantic memory's pixel read-out).
    """

    def __init__(self, slots: list[Slot], memories: Tensor, stimuli: Mapping[str, Stimuli]) -> None:
        self.slots = {slot.name: slot for slot in slots}
        self.memories = memories
        self.stimuli = dict(stimuli)

    @classmethod
    def build(cls, stimuli: Mapping[str, Stimuli], codecs: Mapping[str, Codec | str], *,
              scale: Scale = "balance", batch_size: int = 256, device: str | torch.device | None = None,
              root: str | os.PathLike[str] | None = None) -> MemoryBank:
        """Encode the stimuli of every modality (the same number N of each) into a bank.

        ``stimuli``: modality name -> (N, C, H, W) images in [0, 1] or N strings. ``codecs``:
        modality name -> a Codec or a registry name (:func:`neurodyn.codecs.load_codec`).
        ``scale``: ``"balance"``, None, one number for every slot, or a number per slot.
        ``root``: the data root for pretrained codecs' weights (default ``$NEURODYN_DATA``).
        """
        if not stimuli:
            raise ValueError("a memory bank needs at least one modality of stimuli")
        if set(stimuli) != set(codecs):
            raise ValueError(f"every modality needs a codec: stimuli for {sorted(stimuli)}, "
                             f"codecs for {sorted(codecs)}")
        if _common_count(stimuli, "stimuli") == 0:
            raise ValueError("no stimuli to store (empty memory bank)")
        encoded = {}
        for name, items in stimuli.items():
            codec = load_codec(codecs[name], device=device, root=root)
            encoded[name] = (codec, codec.encode(items, batch_size=batch_size).float(), items)
        return cls.from_codes(encoded, scale=scale)

    @classmethod
    def from_codes(cls, parts: Mapping[str, tuple[Codec, Tensor, Stimuli]], *, scale: Scale = "balance") -> MemoryBank:
        """A bank from codes already computed: modality -> (its codec, codes ``(N, *code_shape)``, the
        stimuli they encode); each slot scaled as in :meth:`build` (experiments that sweep N or
        beta encode each stimulus once and assemble banks from cached codes)."""
        slots, vectors, start = [], [], 0
        for name, (codec, codes, _) in parts.items():
            flat = codes.reshape(codes.shape[0], -1)
            factor = _slot_scale(scale, name, flat)
            slots.append(Slot(name, codec, tuple(codes.shape[1:]), factor, start, start + flat.shape[1]))
            vectors.append(flat * factor)
            start += flat.shape[1]
        return cls(slots, torch.cat(vectors, dim=1), {name: items for name, (_, _, items) in parts.items()})

    @property
    def n_memories(self) -> int:
        return self.memories.shape[0]

    @property
    def n_features(self) -> int:
        return self.memories.shape[1]

    def slot(self, name: str) -> Slot:
        if name not in self.slots:
            raise ValueError(f"unknown modality {name!r}; this bank has {', '.join(self.slots)}")
        return self.slots[name]

    def encode(self, stimuli: Mapping[str, Stimuli], batch_size: int = 256) -> Tensor:
        """Query vectors (B, D): the given modalities encoded and scaled like the memories, zeros
        in the others (HEN's ``v(0) = [0; v_T]``)."""
        if not stimuli:
            raise ValueError("a query must give at least one modality")
        queries = torch.zeros(_common_count(stimuli, "queries"), self.n_features,
                              dtype=self.memories.dtype, device=self.memories.device)
        for name, items in stimuli.items():
            slot = self.slot(name)
            codes = slot.codec.encode(items, batch_size=batch_size)
            if tuple(codes.shape[1:]) != slot.code_shape:
                raise ValueError(f"{name} queries encode to codes of shape {tuple(codes.shape[1:])}, "
                                 f"the stored ones are {slot.code_shape}: give stimuli of the stored shape")
            queries[:, slot.start:slot.stop] = codes.reshape(len(codes), -1).to(queries) * slot.scale
        return queries

    def given_mask(self, modalities: Iterable[str]) -> Tensor:
        """A boolean mask (D,) of the units of the given modalities (for ``simulate(clamp=...)``)."""
        mask = torch.zeros(self.n_features, dtype=torch.bool, device=self.memories.device)
        for name in modalities:
            slot = self.slot(name)
            mask[slot.start:slot.stop] = True
        return mask

    def codes(self, vectors: Tensor, modality: str) -> Tensor:
        """One modality's codes ``(n, *code_shape)``, unscaled, cut out of memory-space vectors (n, D)."""
        slot = self.slot(modality)
        v = torch.as_tensor(vectors)
        if v.ndim != 2 or v.shape[1] != self.n_features:
            raise ValueError(f"vectors must have shape (n, {self.n_features}), got {tuple(v.shape)}")
        return (v[:, slot.start:slot.stop] / slot.scale).reshape(-1, *slot.code_shape)

    def decode(self, vectors: Tensor, modality: str = "image", batch_size: int = 256) -> Tensor:
        """Decode one modality of memory-space vectors with its codec (HEN's ``Phi_dec(v_I)``)."""
        slot = self.slot(modality)
        return slot.codec.decode(self.codes(vectors, modality).to(slot.codec.device), batch_size=batch_size)

    def describe(self) -> str:
        """The slots as JSON (for a Dataset's attributes)."""
        return json.dumps({name: slot.describe() for name, slot in self.slots.items()})


def _slot_scale(scale: Scale, name: str, codes: Tensor) -> float:
    if scale is None:
        return 1.0
    if isinstance(scale, Mapping):
        if name not in scale:
            raise ValueError(f"no scale given for modality {name!r}")
        value = float(scale[name])
    elif scale == "balance":
        norm = float(codes.norm(dim=1).mean())
        if not norm > 0:
            raise ValueError(f"{name} codes are all zero: cannot balance their scale")
        return 1.0 / norm
    elif isinstance(scale, str):
        raise ValueError(f"unknown scale {scale!r}; use 'balance', None, a number or a number per modality")
    else:
        value = float(scale)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"the scale of {name!r} must be a positive finite number, got {value}")
    return value
