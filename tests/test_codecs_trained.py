"""Tests for the project-trained codecs (neurodyn.codecs.trained) and their training
(neurodyn.codecs.train): shapes, the committed checkpoints on held-out real data, reproducible
training, checkpoint files and their error messages."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from neurodyn import codecs, data
from neurodyn.codecs import train, trained

NAMES = ("mnist-ae12", "vqae", "simclr")
STIMULI = {"mnist-ae12": (1, 28, 28), "vqae": (3, 32, 32), "simclr": (3, 32, 32)}


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def repo_models_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Point $NEURODYN_CACHE at an empty folder, so checkpoints come from the repo's models/."""
    monkeypatch.setenv(codecs.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path


@pytest.fixture
def mnist_held_out(real_root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(training images, held-out images) of MNIST, split as the codecs were trained."""
    return train.split(data.load_mnist(real_root).images)


@pytest.fixture
def cifar_held_out(real_root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(training images, held-out images) of CIFAR-10, split as the codecs were trained."""
    return train.split(data.load_cifar10(real_root).images)


# ---------------------------------------------------------------------------------------------
# Fresh modules: shapes and types


@pytest.mark.parametrize("name", NAMES)
def test_round_trip_shapes(name: str) -> None:
    torch.manual_seed(0)
    codec = trained.build(name).eval()
    x = torch.rand(5, *STIMULI[name], generator=gen(0))
    z = codec.encode(x, batch_size=2)
    assert z.shape == (5, *codec.code_shape) and z.dtype == torch.float32
    assert codec.stimulus_shape == STIMULI[name] and codec.metadata == {}
    if codec.has_decoder:
        y = codec.decode(z.flatten(1))
        assert y.shape == x.shape and y.dtype == torch.float32
        assert y.min() >= 0 and y.max() <= 1
    else:
        assert torch.allclose(z.norm(dim=1), torch.ones(5))  # unit features
        with pytest.raises(NotImplementedError, match="no decoder"):
            codec.decode(z)


def test_vq_tokens_and_codes_agree() -> None:
    torch.manual_seed(0)
    codec = trained.build("vqae").eval()
    assert codec.discrete and codec.code_shape == (16, 8, 8)
    x = torch.rand(3, 3, 32, 32, generator=gen(1))
    tokens = codec.indices(x)
    assert tokens.shape == (3, 8, 8) and tokens.dtype == torch.int64
    assert 0 <= tokens.min() and tokens.max() < codec.architecture["codebook_size"]
    codes = codec.encode(x)
    assert torch.equal(codec.codes_from_indices(tokens), codes)
    assert torch.equal(codec.quantize(codes), codes)  # codebook vectors are fixed points
    off_grid = codes + 0.01 * torch.randn(codes.shape, generator=gen(2))
    assert torch.equal(codec.quantize(off_grid), codes)


def test_nt_xent() -> None:
    z = torch.eye(4).repeat(2, 1)  # rows i and i + 4 are identical, other rows orthogonal
    assert train.nt_xent(z, 0.05) < 1e-6
    assert torch.isclose(train.nt_xent(torch.ones(8, 3)), torch.log(torch.tensor(7.0)))


def test_augment_reproducible_and_in_range() -> None:
    x = torch.rand(40, 3, 32, 32, generator=gen(3))
    first = train.augment(x, gen(4))
    assert torch.equal(first, train.augment(x, gen(4)))
    assert not torch.equal(first, train.augment(x, gen(5)))
    assert first.shape == x.shape and first.min() >= 0 and first.max() <= 1


# ---------------------------------------------------------------------------------------------
# Training: reproducible, atomic checkpoints, metadata


@pytest.mark.parametrize("name", NAMES)
def test_training_is_reproducible(name: str, tmp_path: Path) -> None:
    images = torch.rand(20, *STIMULI[name], generator=gen(6))
    state = torch.random.get_rng_state()
    kwargs = {"images": images, "epochs": 2, "batch_size": 8, "progress": False}
    paths = [train.train_codec(name, seed=seed, out=tmp_path / f"{i}/{name}.pt", **kwargs)
             for i, seed in enumerate((3, 3, 4))]
    assert torch.equal(torch.random.get_rng_state(), state)  # the global generator is untouched
    first, again, other = (torch.load(p, weights_only=True) for p in paths)
    assert first["state_dict"].keys() == again["state_dict"].keys()
    assert all(torch.equal(v, again["state_dict"][k]) for k, v in first["state_dict"].items())
    assert not all(torch.equal(v, other["state_dict"][k]) for k, v in first["state_dict"].items())
    meta = first["metadata"]
    assert meta["name"] == name and meta["seed"] == 3 and meta["epochs"] == 2
    assert meta["data"] == {"source": "images given to train_codec",
                            "train": "16 images, index % 5 != 4",
                            "held_out": "4 images, index % 5 == 4"}
    assert meta["held_out"] and meta["version"]
    assert sorted(p.name for p in paths[0].parent.iterdir()) == [f"{name}.pt"]  # no temp file
    loaded = trained.load_trained(name, paths[0])
    assert loaded.metadata == meta and not loaded.training


def test_train_codec_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown trainable codec 'pixels'"):
        train.train_codec("pixels")
    with pytest.raises(ValueError, match="epochs >= 1"):
        train.train_codec("vqae", epochs=0, images=torch.rand(8, 3, 32, 32))
    with pytest.raises(ValueError, match="at least 5 images"):
        train.train_codec("vqae", images=torch.rand(4, 3, 32, 32))


# ---------------------------------------------------------------------------------------------
# Checkpoints by name


def test_missing_checkpoint_says_how_to_train(repo_models_only: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        codecs.load_codec("vqae:absent.pt")
    assert "absent.pt" in str(info.value)
    assert "neurodyn train-codec vqae" in str(info.value)


def test_checkpoint_of_another_codec(repo_models_only: Path) -> None:
    with pytest.raises(ValueError, match="holds codec 'vqae', not 'mnist-ae12'"):
        codecs.load_codec("mnist-ae12:vqae.pt")


@pytest.mark.parametrize("name", NAMES)
def test_committed_checkpoint_loads_by_name(name: str, repo_models_only: Path) -> None:
    codec = codecs.load_codec(name)
    assert isinstance(codec, trained.CODECS[name]) and not codec.training
    assert codec.metadata["name"] == name and codec.metadata["held_out"]
    assert (codecs.REPO_MODELS / f"{name}.pt").stat().st_size < 2_000_000


def test_mnist_ae12_beats_the_mean_image(repo_models_only: Path, mnist_held_out: tuple) -> None:
    fit, held_out = mnist_held_out
    metrics = train.reconstruction_metrics(codecs.load_codec("mnist-ae12"), fit, held_out)
    assert metrics["mse"] < 0.4 * metrics["mse_mean_image"]  # about 0.025 against 0.067


def test_vqae_beats_the_mean_image(repo_models_only: Path, cifar_held_out: tuple) -> None:
    fit, held_out = cifar_held_out
    codec = codecs.load_codec("vqae")
    metrics = train.reconstruction_metrics(codec, fit, held_out)
    assert metrics["mse"] < 0.15 * metrics["mse_mean_image"]  # about 0.0047 against 0.060
    used = codec.indices(held_out[:200]).unique().numel()
    assert used > codec.architecture["codebook_size"] // 2


def test_simclr_retrieves_corrupted_images(repo_models_only: Path, cifar_held_out: tuple) -> None:
    """A corrupted held-out image's nearest clean neighbour among 200 is itself far more often
    than chance (0.5%), and under rotation far more often than in pixel space (section 3)."""
    images = cifar_held_out[1][::10]  # 200 images, 20 per class
    simclr, pixels = codecs.load_codec("simclr"), codecs.load_codec("pixels")
    for spec, at_least in (("rotate:1", 0.6), ("color:random", 0.4), ("crop:0.7", 0.3)):
        assert train.retrieval_accuracy(simclr, images, spec, gen(0)) > at_least, spec
    assert train.retrieval_accuracy(pixels, images, "rotate:1", gen(0)) < 0.1
