"""Memory banks through codecs, HEN and semantic memories, final-state classification."""

from __future__ import annotations

import hashlib

import pytest
import torch

from neurodyn import analysis, data
from neurodyn.memory.bank import MemoryBank
from neurodyn.codecs import Codec, available_codecs, load_codec
from neurodyn.memory.encoded import EncodedMemory


class HashText(Codec):
    """A deterministic toy text codec: a string's SHA-256 bits as a +-1 vector (no training)."""

    modality = "text"

    def __init__(self) -> None:
        super().__init__("hash-text", (256,))

    def _encode_text(self, texts: list[str]) -> torch.Tensor:
        bits = [[(byte >> k) & 1 for byte in hashlib.sha256(t.encode()).digest() for k in range(8)] for t in texts]
        return torch.tensor(bits, dtype=torch.float32) * 2 - 1


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    return data.load_digits().images[:40]


def test_registry_names_every_codec_and_rejects_unknown_names() -> None:
    names = set(available_codecs())
    assert {"pixels", "taef2", "resnet20", "resnet56", "minilm", "render", "mnist-ae12", "vqae", "simclr",
            "clip-image", "clip-text", "sd-kl", "sd-vq", "dalle-dvae"} <= names
    with pytest.raises(ValueError, match="unknown codec 'nope'"):
        load_codec("nope")
    with pytest.raises(ValueError, match="takes no argument"):
        load_codec("pixels:extra")


def test_codec_checks_inputs(digits: torch.Tensor) -> None:
    codec = load_codec("pixels")
    with pytest.raises(ValueError, match="shape \\(n, C, H, W\\)"):
        codec.encode(digits[0])
    with pytest.raises(ValueError, match="NaN"):
        codec.encode(torch.full((1, 1, 8, 8), float("nan")))
    with pytest.raises(ValueError, match="empty"):
        codec.encode(digits[:0])
    with pytest.raises(TypeError, match="encodes images"):
        codec.encode(["text"])
    with pytest.raises(TypeError, match="encodes text"):
        HashText().encode(digits)
    z = codec.encode(digits, batch_size=7)
    assert z.dtype == digits.dtype and torch.equal(codec.decode(z), digits)
    assert not z.requires_grad


def test_bank_concatenates_scaled_slots_and_builds_text_only_queries(digits: torch.Tensor) -> None:
    captions = [f"digit number {i}" for i in range(len(digits))]
    bank = MemoryBank.build({"image": digits, "text": captions}, {"image": "pixels", "text": HashText()})
    assert bank.memories.shape == (40, 64 + 256)
    for name in ("image", "text"):  # "balance": every slot has unit mean norm
        part = bank.memories[:, bank.slot(name).start:bank.slot(name).stop]
        assert part.norm(dim=1).mean() == pytest.approx(1.0, rel=1e-5)
    q = bank.encode({"text": captions[:3]})
    assert torch.equal(q[:, :64], torch.zeros(3, 64))
    assert torch.allclose(q[:, 64:], bank.memories[:3, 64:])
    mask = bank.given_mask(["text"])
    assert mask.sum() == 256 and mask[64:].all()
    assert torch.allclose(bank.codes(bank.memories, "image"), digits, atol=1e-6)
    assert torch.allclose(bank.decode(bank.memories[:2]), digits[:2], atol=1e-6)


def test_bank_rejects_bad_input(digits: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="same number"):
        MemoryBank.build({"image": digits, "text": ["a"]}, {"image": "pixels", "text": HashText()})
    with pytest.raises(ValueError, match="needs a codec"):
        MemoryBank.build({"image": digits}, {"text": HashText()})
    with pytest.raises(ValueError, match="empty"):
        MemoryBank.build({"image": digits[:0]}, {"image": "pixels"})
    with pytest.raises(ValueError, match="positive"):
        MemoryBank.build({"image": digits}, {"image": "pixels"}, scale={"image": -1.0})
    bank = MemoryBank.build({"image": digits}, {"image": "pixels"})
    with pytest.raises(ValueError, match="unknown modality 'text'"):
        bank.encode({"text": ["a"]})
    with pytest.raises(ValueError, match="stored ones"):
        bank.encode({"image": torch.rand(2, 1, 4, 4)})


def test_hen_recalls_its_digits_and_passes_the_lyapunov_check(digits: torch.Tensor) -> None:
    memory = EncodedMemory.hen(digits, "pixels")
    queries = data.gaussian_noise(digits, 0.2, generator=torch.Generator().manual_seed(0))
    ds = memory.recall({"image": queries}, 10.0, target_index=torch.arange(40))
    assert ds.attrs["accuracy"] >= 0.9
    assert ds["output"].shape == (40, 1, 8, 8)
    report = analysis.lyapunov_check(ds)
    assert report.guaranteed and report.monotone
    assert set(ds["state"].values) <= {"memory", "mixture", "spurious"}


@pytest.mark.parametrize("beta, mixed", [(30.0, True), (100.0, False)])
def test_a_shared_caption_gives_a_mixture_below_the_saddle_and_one_memory_above(
        digits: torch.Tensor, beta: float, mixed: bool) -> None:
    """Two images bound to one caption (HEN hypothesis 3). With equal norms (a digit and its
    mirror image) the even mixture is a fixed point: stable at beta=30, a saddle at beta=100
    where rounding breaks the symmetry and one of the two wins. Both outcomes are reported."""
    images = digits.clone()
    images[1] = images[0].flip(-1)
    captions = [f"caption {i}" for i in range(len(images))]
    captions[1] = captions[0]
    memory = EncodedMemory.hen(images, "pixels", captions=captions, text_codec=HashText(),
                               model={"preset": "mchn-l2", "beta": beta})
    ds = memory.recall({"text": captions}, 20.0, clamp_given=True, target_index=torch.arange(40))
    states = ds["state"].values
    assert ds["correct"].values[2:].all() and (states[2:] == "memory").all()
    if not mixed:
        assert states[0] == states[1] == "memory" and ds["participation_ratio"].values[0] < 1.1
        return
    assert ds["correct"].values[2:].all() and (states[2:] == "memory").all()
    assert states[0] == states[1] == "mixture"
    assert ds["participation_ratio"].values[0] == pytest.approx(2.0, abs=0.05)
    assert set(ds["components"].values[0]) == {0, 1}
    mixed = (ds["output_target"].values[0] + ds["output_target"].values[1]) / 2
    assert abs(ds["output"].values[0] - mixed).max() < 0.05
    assert list(ds["query_text"].values[:3]) == captions[:3]


def test_semantic_memory_reads_out_stored_pixels(digits: torch.Tensor) -> None:
    memory = EncodedMemory(MemoryBank.build({"image": digits}, {"image": "pixels"}),
                           {"preset": "mchn-l2", "beta": 1000.0}, readout="values")
    ds = memory.recall({"image": digits}, 5.0, target_index=torch.arange(40))
    assert abs(ds["output"].values - digits.numpy()).max() < 1e-3


def test_final_states_flags_a_state_far_from_every_memory(digits: torch.Tensor) -> None:
    memory = EncodedMemory.hen(digits, "pixels")
    ds = memory.recall({"image": digits[:2]}, 1.0)
    ds["v_final"] = ds["v_final"] + 5.0  # far from every stored digit
    states = analysis.final_states(ds, memory.network)
    assert list(states["state"].values) == ["spurious", "spurious"]
