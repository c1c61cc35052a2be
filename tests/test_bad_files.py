"""Corrupt, truncated and garbage input files: each is an InputFileError whose message names the
file, says what is wrong and how to get a good one (never a traceback from numpy, zipfile, gzip,
PIL or torch). Every bad file is built here, in tmp_path.
"""

import contextlib
import gzip
import importlib.util
import json
import os
import types
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from neurodyn import codecs, data
from neurodyn.codecs.dalle import dvae_decoder, dvae_encoder
from neurodyn.codecs.resnet_cifar import ResNetCifar
from neurodyn.codecs.taef2 import decoder as taef2_decoder
from neurodyn.codecs.taef2 import encoder as taef2_encoder
from neurodyn.codecs.trained import MLPAutoencoder
from neurodyn.errors import InputFileError


@contextlib.contextmanager
def raises_for(path: Path, *fragments: str) -> Iterator[pytest.ExceptionInfo]:
    """Check that the ``with`` block raises an InputFileError on ``path`` whose message holds
    every fragment, and none of numpy's or torch's advice to unpickle unsafely."""
    with pytest.raises(InputFileError) as info:
        yield info
    message = str(info.value)
    assert info.value.path == path and message.startswith(f"{path}: "), message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert "allow_pickle" not in message and "Re-running `torch.load`" not in message, message


def truncate(path: Path, keep: float = 0.5) -> Path:
    """Cut ``path`` to a fraction of its bytes, as an interrupted download leaves it."""
    content = path.read_bytes()
    path.unlink()  # a new file: whatever still maps the old one keeps it whole
    path.write_bytes(content[: int(len(content) * keep)])
    return path


def garbage(path: Path, size: int = 600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    path.write_bytes(np.random.default_rng(0).integers(0, 256, size, dtype=np.uint8).tobytes())
    return path


# -- a user's .npz file -----------------------------------------------------------------------

SAVEZ = "numpy.savez"  # the user's remedy: how to write a good file


def good_npz(path: Path) -> Path:
    np.savez(path, x=np.zeros((3, 4, 4), np.uint8), y=np.array([0, 1, 2]))
    return path


@pytest.mark.parametrize("loader", [data.load_npz, data.load_dataset])
def test_npz_truncated(loader, tmp_path: Path) -> None:
    path = truncate(good_npz(tmp_path / "mine.npz"))
    with raises_for(path, "truncated or damaged", SAVEZ):
        loader(path)


def test_npz_garbage_and_empty(tmp_path: Path) -> None:
    with raises_for(garbage(tmp_path / "noise.npz"), "is not an .npz file", SAVEZ):
        data.load_npz(tmp_path / "noise.npz")
    (tmp_path / "empty.npz").write_bytes(b"")
    with raises_for(tmp_path / "empty.npz", "is empty", SAVEZ):
        data.load_npz(tmp_path / "empty.npz")


def test_npz_that_is_an_npy_file(tmp_path: Path) -> None:
    with open(tmp_path / "single.npz", "wb") as fh:
        np.save(fh, np.zeros((3, 4, 4), np.uint8))
    with raises_for(tmp_path / "single.npz", "single array (.npy format)", SAVEZ):
        data.load_npz(tmp_path / "single.npz")


def test_npz_damaged_array(tmp_path: Path) -> None:
    path = good_npz(tmp_path / "flipped.npz")
    content = bytearray(path.read_bytes())
    start = content.index(b"\x93NUMPY") + 140  # inside x's pixels: its CRC no longer matches
    content[start:start + 8] = b"\xff" * 8
    path.write_bytes(bytes(content))
    with raises_for(path, "array 'x' is damaged", SAVEZ):
        data.load_npz(path)


def test_npz_without_x(tmp_path: Path) -> None:
    np.savez(tmp_path / "labels.npz", y=np.zeros(3, int))
    with raises_for(tmp_path / "labels.npz", "no array 'x'", "found y", SAVEZ):
        data.load_npz(tmp_path / "labels.npz")


def test_npz_object_array_is_never_unpickled(tmp_path: Path) -> None:
    np.savez(tmp_path / "objects.npz", x=np.array([{"pixels": 1}, None], dtype=object))
    with raises_for(tmp_path / "objects.npz", "holds Python objects", "must be a numeric array", SAVEZ):
        data.load_npz(tmp_path / "objects.npz")


@pytest.mark.parametrize(("x", "problem"), [
    (np.zeros((3, 4)), "got 2 dimensions"),
    (np.zeros((3, 4, 4), dtype=np.int32), "must be uint8"),
    (np.array(["a", "b"]), "got 1 dimensions"),
    (np.zeros((0, 4, 4), np.uint8), "x is empty"),
    (np.zeros((3, 0, 4), np.uint8), "x is empty"),
])
def test_npz_x_of_the_wrong_shape_or_dtype(x: np.ndarray, problem: str, tmp_path: Path) -> None:
    np.savez(tmp_path / "bad.npz", x=x)
    with raises_for(tmp_path / "bad.npz", problem, SAVEZ):
        data.load_npz(tmp_path / "bad.npz")


# -- MNIST's gzip IDX files under a data root ---------------------------------------------------

MNIST_IMAGES, MNIST_LABELS = "mnist/t10k-images-idx3-ubyte.gz", "mnist/t10k-labels-idx1-ubyte.gz"
IN_THE_ROOT = "folder of the data root"  # the remedy of every named data set's file


def write_idx(path: Path, magic: int, array: np.ndarray, header_shape: tuple | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = header_shape or array.shape
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())
    return path


@pytest.fixture
def mnist_root(tmp_path: Path) -> Path:
    write_idx(tmp_path / MNIST_IMAGES, 2051, np.zeros((3, 28, 28)))
    write_idx(tmp_path / MNIST_LABELS, 2049, np.array([7, 2, 1]))
    assert len(data.load_mnist(tmp_path)) == 3  # good files load
    return tmp_path


def test_mnist_truncated(mnist_root: Path) -> None:
    path = truncate(mnist_root / MNIST_IMAGES)
    with raises_for(path, "is truncated", "t10k-images-idx3-ubyte.gz in the mnist/ " + IN_THE_ROOT):
        data.load_mnist(mnist_root)


def test_mnist_garbage(mnist_root: Path) -> None:
    path = garbage(mnist_root / MNIST_LABELS)
    with raises_for(path, "is not a gzip file", "mnist/ " + IN_THE_ROOT):
        data.load_mnist(mnist_root)


def test_mnist_wrong_magic(mnist_root: Path) -> None:
    path = write_idx(mnist_root / MNIST_LABELS, 2051, np.array([7, 2, 1]))
    with raises_for(path, "magic number 2051, expected 2049", "mnist/ " + IN_THE_ROOT):
        data.load_mnist(mnist_root)


def test_mnist_wrong_length(mnist_root: Path) -> None:
    path = write_idx(mnist_root / MNIST_IMAGES, 2051, np.zeros((2, 28, 28)), header_shape=(3, 28, 28))
    with raises_for(path, "header gives shape [3, 28, 28] but the file has 1568 values", IN_THE_ROOT):
        data.load_mnist(mnist_root)
    with gzip.open(path, "wb") as fh:
        fh.write((2051).to_bytes(4, "big") + b"\0\0")  # cut inside its header
    with raises_for(path, "too short for an IDX header", IN_THE_ROOT):
        data.load_mnist(mnist_root)


def test_mnist_labels_that_do_not_match_the_images(mnist_root: Path) -> None:
    path = write_idx(mnist_root / MNIST_LABELS, 2049, np.array([7, 2]))
    with raises_for(path, "expected 3 integer labels", IN_THE_ROOT):
        data.load_mnist(mnist_root)


# -- the .npz data sets under a data root ------------------------------------------------------

NPZ_SETS = [(data.load_cifar10, "cifar10/test_jpeg.npz"), (data.load_tinyimagenet, "tinyimagenet/val_2000.npz")]


@pytest.mark.parametrize(("loader", "file"), NPZ_SETS)
def test_named_npz_truncated_or_garbage(loader, file: str, tmp_path: Path) -> None:
    path = tmp_path / file
    path.parent.mkdir()
    np.savez(path, x=np.zeros((2, 8, 8, 3), np.uint8), y=np.array([0, 1]))
    assert len(loader(tmp_path)) == 2
    truncate(path)
    folder, name = file.split("/")
    with raises_for(path, "truncated or damaged", f"{name} in the {folder}/ {IN_THE_ROOT}"):
        loader(tmp_path)
    garbage(path)
    with raises_for(path, "is not an .npz file", f"{name} in the {folder}/ {IN_THE_ROOT}"):
        loader(tmp_path)


@pytest.mark.parametrize(("loader", "file"), NPZ_SETS)
def test_named_npz_with_bad_arrays(loader, file: str, tmp_path: Path) -> None:
    path = tmp_path / file
    path.parent.mkdir()
    np.savez(path, images=np.zeros((2, 8, 8, 3), np.uint8))
    with raises_for(path, "no array 'x'", IN_THE_ROOT):
        loader(tmp_path)
    np.savez(path, x=np.zeros((2, 8, 8, 3), np.uint8), y=np.array(["a", "b"], dtype=object))
    with raises_for(path, "array 'y' holds Python objects", "must be a integer array", IN_THE_ROOT):
        loader(tmp_path)


@pytest.fixture
def coco_root(tmp_path: Path) -> Path:
    (tmp_path / "coco_mini").mkdir()
    np.savez(tmp_path / "coco_mini/images_128.npz", x=np.zeros((2, 8, 8, 3), np.uint8),
             image_id=np.array([5, 9]))
    (tmp_path / "coco_mini/captions.json").write_text(json.dumps({"5": ["a cat"], "9": ["a dog"]}))
    assert data.load_coco(tmp_path).captions == (("a cat",), ("a dog",))
    return tmp_path


def test_coco_images_truncated(coco_root: Path) -> None:
    path = truncate(coco_root / "coco_mini/images_128.npz")
    with raises_for(path, "truncated or damaged", f"images_128.npz in the coco_mini/ {IN_THE_ROOT}"):
        data.load_coco(coco_root)


def test_coco_images_without_ids(coco_root: Path) -> None:
    path = coco_root / "coco_mini/images_128.npz"
    np.savez(path, x=np.zeros((2, 8, 8, 3), np.uint8))
    with raises_for(path, "no array 'image_id'", IN_THE_ROOT):
        data.load_coco(coco_root)


def test_coco_captions_truncated_or_wrong(coco_root: Path) -> None:
    path = coco_root / "coco_mini/captions.json"
    truncate(path)
    with raises_for(path, "is not valid JSON", f"captions.json in the coco_mini/ {IN_THE_ROOT}"):
        data.load_coco(coco_root)
    path.write_text(json.dumps([["a cat"], ["a dog"]]))
    with raises_for(path, "must map image ids to lists of captions", IN_THE_ROOT):
        data.load_coco(coco_root)
    path.write_text(json.dumps({"5": ["a cat"]}))
    with raises_for(path, "has no captions for image ids [9]", IN_THE_ROOT):
        data.load_coco(coco_root)


# -- image folders ------------------------------------------------------------------------------

def test_image_folder_with_a_non_image(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "b.png").write_text("not an image")
    with raises_for(tmp_path / "b.png", "is not an image file", "move it out of the folder"):
        data.load_dataset(tmp_path)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_image_folder_with_a_truncated_image(suffix: str, tmp_path: Path) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / f"a{suffix}")
    Image.fromarray(pixels).save(tmp_path / f"b{suffix}")
    path = truncate(tmp_path / f"b{suffix}")
    with raises_for(path, "truncated", "replace it with a complete image file"):
        data.load_image_folder(tmp_path)


# -- trained checkpoints ($NEURODYN_CACHE) ---------------------------------------------------

RETRAIN = "neurodyn train-codec mnist-ae12"
TINY_AE12 = {"widths": [784, 8, 4]}


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """$NEURODYN_CACHE at an empty folder: checkpoints named there are found first."""
    folder = tmp_path / "cache"
    folder.mkdir()
    monkeypatch.setenv(codecs.CACHE_ENV, str(folder))
    return folder


def save_ae12(path: Path, state: dict | None = None, architecture: dict = TINY_AE12, **extra) -> Path:
    torch.manual_seed(0)
    state = MLPAutoencoder(**architecture).state_dict() if state is None else state
    torch.save({"state_dict": state, "metadata": {"name": "mnist-ae12", "architecture": architecture},
                **extra}, path)
    return path


def test_trained_checkpoint_good_then_truncated(cache: Path) -> None:
    path = save_ae12(cache / "mine.pt")
    assert codecs.load_codec("mnist-ae12:mine.pt").code_shape == (4,)
    truncate(path)
    with raises_for(path, "is truncated or not a PyTorch checkpoint", RETRAIN):
        codecs.load_codec("mnist-ae12:mine.pt")


def test_trained_checkpoint_garbage_or_empty(cache: Path) -> None:
    with raises_for(garbage(cache / "mnist-ae12.pt"), "not a PyTorch checkpoint", RETRAIN):
        codecs.load_codec("mnist-ae12")
    (cache / "mnist-ae12.pt").write_bytes(b"")
    with raises_for(cache / "mnist-ae12.pt", "is empty or truncated", RETRAIN):
        codecs.load_codec("mnist-ae12")


def test_trained_checkpoint_without_metadata(cache: Path) -> None:
    path = cache / "bare.pt"
    torch.save(MLPAutoencoder(**TINY_AE12).state_dict(), path)
    with raises_for(path, "holds no 'metadata'", RETRAIN):
        codecs.load_codec(f"mnist-ae12:{path}")


def test_trained_checkpoint_wrong_keys(cache: Path) -> None:
    state = MLPAutoencoder(**TINY_AE12).state_dict()
    state["extra.weight"] = state.pop("encoder.0.weight")
    path = save_ae12(cache / "keys.pt", state)
    with raises_for(path, "missing keys encoder.0.weight", "unexpected keys extra.weight", RETRAIN):
        codecs.load_codec("mnist-ae12:keys.pt")


def test_trained_checkpoint_wrong_shapes(cache: Path) -> None:
    state = MLPAutoencoder(widths=[784, 8, 5]).state_dict()  # a bottleneck of 5, metadata say 4
    path = save_ae12(cache / "shapes.pt", state)
    with raises_for(path, "parameter encoder.2.weight has shape (5, 8) in the file but (4, 8)", RETRAIN):
        codecs.load_codec("mnist-ae12:shapes.pt")


def test_trained_checkpoint_that_is_a_folder(cache: Path) -> None:
    (cache / "folder.pt").mkdir()
    with raises_for(cache / "folder.pt", "is a folder", RETRAIN):
        codecs.load_codec(f"mnist-ae12:{cache / 'folder.pt'}")


# -- pretrained weights under the data root (weights/) ----------------------------------------

WEIGHTS_REMEDY = f"in the weights/ {IN_THE_ROOT}"


def test_taef2_weights_truncated_or_garbage(tmp_path: Path) -> None:
    (tmp_path / "weights").mkdir()
    torch.save(taef2_encoder().state_dict(), tmp_path / "weights/taef2_encoder.pth")
    decoder = tmp_path / "weights/taef2_decoder.pth"
    torch.save(taef2_decoder().state_dict(), decoder)
    codecs.load_codec("taef2", root=tmp_path)  # good files load
    truncate(decoder)
    with raises_for(decoder, "truncated", "TAEF2", "taef2_decoder.pth " + WEIGHTS_REMEDY):
        codecs.load_codec("taef2", root=tmp_path)
    garbage(decoder)
    with raises_for(decoder, "not a PyTorch checkpoint", WEIGHTS_REMEDY):
        codecs.load_codec("taef2", root=tmp_path)


def test_taef2_weights_wrong_keys_and_shapes(tmp_path: Path) -> None:
    encoder = tmp_path / "weights/taef2_encoder.pth"
    encoder.parent.mkdir()
    state = taef2_encoder().state_dict()
    state["14.weight"] = torch.zeros(16, 64, 3, 3)  # a 16-channel latent instead of 32
    torch.save(state, encoder)
    with raises_for(encoder, "parameter 14.weight has shape (16, 64, 3, 3) in the file but "
                             "(32, 64, 3, 3) in the TAEF2 encoder", WEIGHTS_REMEDY):
        codecs.load_codec("taef2", root=tmp_path)
    torch.save({f"encoder.{key}": value for key, value in taef2_encoder().state_dict().items()}, encoder)
    with raises_for(encoder, "missing keys 0.weight", "unexpected keys encoder.0.weight", WEIGHTS_REMEDY):
        codecs.load_codec("taef2", root=tmp_path)
    torch.save(torch.zeros(3), encoder)
    with raises_for(encoder, "holds a single tensor of shape (3,), not a state dict", WEIGHTS_REMEDY):
        codecs.load_codec("taef2", root=tmp_path)


def test_resnet_weights_bad(tmp_path: Path) -> None:
    path = tmp_path / "weights/resnet20-12fca82f.th"
    path.parent.mkdir()
    state = {f"module.{key}": value for key, value in ResNetCifar("resnet20", 3).state_dict().items()}
    torch.save({"state_dict": state, "best_prec1": 91.25}, path)
    codecs.load_codec("resnet20", root=tmp_path)  # a good file loads
    torch.save(state, path)
    with raises_for(path, "holds no 'state_dict' entry", "resnet20-12fca82f.th " + WEIGHTS_REMEDY):
        codecs.load_codec("resnet20", root=tmp_path)
    state["module.linear.weight"] = torch.zeros(100, 64)
    torch.save({"state_dict": state}, path)
    with raises_for(path, "parameter linear.weight has shape (100, 64)", WEIGHTS_REMEDY):
        codecs.load_codec("resnet20", root=tmp_path)
    truncate(path, 0.3)
    with raises_for(path, "truncated", WEIGHTS_REMEDY):
        codecs.load_codec("resnet20", root=tmp_path)


# -- hub folders ---------------------------------------------------------------------------------

CONVERT = "convert OpenAI's"


@pytest.fixture
def dvae_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "dvae"
    folder.mkdir()
    sizes = dict(n_hid=8, n_blk_per_group=1, vocab_size=32)
    torch.save(dvae_encoder(**sizes).state_dict(), folder / "encoder.pt")
    torch.save(dvae_decoder(**sizes, n_init=4).state_dict(), folder / "decoder.pt")
    codecs.load_codec(f"dalle-dvae:{folder}")  # good files load
    return folder


def test_dvae_truncated(dvae_folder: Path) -> None:
    path = truncate(dvae_folder / "encoder.pt")
    with raises_for(path, "truncated", CONVERT + " encoder.pkl"):
        codecs.load_codec(f"dalle-dvae:{dvae_folder}")


def test_dvae_wrong_keys_and_shapes(dvae_folder: Path) -> None:
    path = dvae_folder / "decoder.pt"
    state = torch.load(path, weights_only=True)
    state["blocks.output.conv.w"] = torch.zeros(5, 8, 1, 1)
    torch.save(state, path)
    with raises_for(path, "parameter blocks.output.conv.w has shape (5, 8, 1, 1)", "dVAE decoder",
                    CONVERT + " decoder.pkl"):
        codecs.load_codec(f"dalle-dvae:{dvae_folder}")
    del state["blocks.input.w"]
    torch.save(state, path)
    with raises_for(path, "no 4-d convolution weight blocks.input.w", CONVERT + " decoder.pkl"):
        codecs.load_codec(f"dalle-dvae:{dvae_folder}")


TINY_AE = dict(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
               up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=4,
               layers_per_block=1, sample_size=16)


def test_sd_weights_truncated_or_incomplete(tmp_path: Path) -> None:
    diffusers = pytest.importorskip("diffusers", reason="extra 'hub' not installed")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    folder = tmp_path / "vae"
    diffusers.AutoencoderKL(**TINY_AE).save_pretrained(folder)
    weights = folder / "diffusion_pytorch_model.safetensors"
    state = safetensors_torch.load_file(weights)
    truncate(weights)
    with raises_for(folder, "cannot be loaded as a diffusers AutoencoderKL", "huggingface-cli download"):
        codecs.load_codec(f"sd-kl:{folder}")
    safetensors_torch.save_file({k: v for k, v in state.items() if not k.startswith("decoder.")}, weights)
    with raises_for(folder, "its weights lack", "decoder.", "huggingface-cli download"):
        codecs.load_codec(f"sd-kl:{folder}")


def test_clip_weights_garbage(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers", reason="extra 'hub' not installed")
    tiny = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
    config = transformers.CLIPConfig(text_config=dict(tiny, vocab_size=50, max_position_embeddings=20),
                                     vision_config=dict(tiny, image_size=32, patch_size=8), projection_dim=16)
    folder = tmp_path / "clip"
    transformers.CLIPModel(config).save_pretrained(folder)
    garbage(folder / "model.safetensors")
    with raises_for(folder, "cannot be loaded as a CLIP model", "huggingface-cli download"):
        codecs.load_codec(f"clip-image:{folder}")


# -- the MiniLM text encoder -------------------------------------------------------------------

def test_minilm_archive_damaged(cache: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    package = tmp_path / "all_minilm_l6_v2"
    archive = garbage(package / "model.zip")
    spec = types.SimpleNamespace(submodule_search_locations=[str(package)])
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: spec)
    from neurodyn.codecs.text import minilm_folder

    with raises_for(archive, "not a readable zip archive", "pip install --force-reinstall"):
        minilm_folder()
    assert os.listdir(cache) == []  # no half-extracted folder left behind


def test_minilm_extracted_folder_damaged(cache: Path) -> None:
    pytest.importorskip("sentence_transformers", reason="extra 'text' not installed")
    folder = cache / "all-minilm-l6-v2"
    folder.mkdir()
    (folder / "modules.json").write_text("[{")
    with raises_for(folder, "cannot be loaded as the MiniLM sentence encoder", "delete the folder"):
        codecs.load_codec("minilm")
