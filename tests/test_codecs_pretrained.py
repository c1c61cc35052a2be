"""The pretrained codecs: TAEF2 (autoencoder) and the CIFAR-10 ResNets (feature maps phi).

The tests that load weights or images use the shared data root and skip without it; the shape
checks need no weights.
"""

from functools import lru_cache
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from neurodyn.codecs import load_codec
from neurodyn.codecs.resnet_cifar import ResNetCifar, resnet20, resnet56
from neurodyn.codecs.taef2 import TAEF2, taef2
from neurodyn.data import load_cifar10, load_tinyimagenet

LOADERS = {"cifar10": load_cifar10, "tinyimagenet": load_tinyimagenet}


@lru_cache(maxsize=None)
def _images(name: str, root: Path, n: int):
    """``n`` images spread over the whole set (the files are sorted by class), with labels."""
    data = LOADERS[name](root)
    step = len(data) // n
    return data.images[::step][:n], data.labels[::step][:n]


def _psnr(x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean over images of the PSNR in dB (peak 1)."""
    mse = (x - y).pow(2).mean(dim=(1, 2, 3))
    return (-10 * mse.log10()).mean().item()


def _weights(root: Path, file: str) -> dict:
    return torch.load(root / "weights" / file, map_location="cpu", weights_only=True)


def test_taef2_weights_load_strictly(real_root):
    codec = TAEF2()
    for half, file in ((codec.encoder, "taef2_encoder.pth"), (codec.decoder, "taef2_decoder.pth")):
        result = half.load_state_dict(_weights(real_root, file), strict=True)
        assert not result.missing_keys and not result.unexpected_keys
        assert 1.3e6 < sum(p.numel() for p in half.parameters()) < 1.4e6


@pytest.mark.parametrize("blocks, file, n_params", [(3, "resnet20-12fca82f.th", 0.27e6),
                                                    (9, "resnet56-4bfd9763.th", 0.85e6)],
                         ids=["resnet20", "resnet56"])
def test_resnet_weights_load_strictly(real_root, blocks, file, n_params):
    state = _weights(real_root, file)["state_dict"]
    assert all(key.startswith("module.") for key in state)
    codec = ResNetCifar("resnet", blocks)
    result = codec.load_state_dict({k.removeprefix("module."): v for k, v in state.items()})
    assert not result.missing_keys and not result.unexpected_keys
    assert sum(p.numel() for p in codec.parameters()) == pytest.approx(n_params, rel=0.01)


def test_taef2_round_trip_keeps_shapes_and_dtypes(real_root):
    codec = load_codec("taef2", root=real_root)
    x = torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    z = codec.encode(x)
    assert z.shape == (5, 32, 4, 4) and z.dtype == torch.float32
    assert codec.code_shape_for((3, 32, 32)) == (32, 4, 4) and codec.code_size((3, 32, 32)) == 512
    y = codec.decode(z)
    assert y.shape == x.shape and y.dtype == torch.float32
    assert 0 <= y.min() and y.max() <= 1
    # grayscale images are encoded as RGB with the channel repeated; decoding gives RGB
    gray = x[:2, :1, :16, :24]
    z_gray = codec.encode(gray)
    assert z_gray.shape == (2, 32, 2, 3) == (2, *codec.code_shape_for((1, 16, 24)))
    torch.testing.assert_close(z_gray, codec.encode(gray.expand(-1, 3, -1, -1)))
    assert codec.decode(z_gray).shape == (2, 3, 16, 24)


@pytest.mark.parametrize("dataset", ["cifar10", "tinyimagenet"])
def test_taef2_reconstructs_real_images_well_above_baselines(real_root, dataset):
    """Measured on these 64 images (per-image PSNR averaged, dB):

    ============  =====  ===========  ======================
    data          TAEF2  mean colour  8x8 average, upsampled
    ============  =====  ===========  ======================
    CIFAR-10      24.5   14.8         18.1
    Tiny ImageNet 21.7   12.7         16.8
    ============  =====  ===========  ======================

    (2x2 averages, 1.5 times as many numbers as the code, give 25.2 and 21.6.) The ~30 dB of
    the README is for larger images; on 128x128 COCO crops TAEF2 gives 27.8 dB.
    """
    x, _ = _images(dataset, real_root, 64)
    codec = taef2(root=real_root)
    psnr = _psnr(codec.decode(codec.encode(x)), x)
    mean_colour = _psnr(x.mean(dim=(2, 3), keepdim=True).expand_as(x), x)
    blocks = _psnr(F.interpolate(F.avg_pool2d(x, 8), scale_factor=8, mode="nearest"), x)
    assert psnr >= mean_colour + 5
    assert psnr >= blocks + 3


@pytest.mark.parametrize("factory", [resnet20, resnet56])
def test_resnet_classifies_real_cifar10(real_root, factory):
    """On 500 JPEG CIFAR-10 test images, 50 per class: ResNet-20 80.0%, ResNet-56 83.0% (on all
    10,000: 81.0% and 83.2%)."""
    x, labels = _images("cifar10", real_root, 500)
    codec = factory(root=real_root)
    accuracy = (codec.classify(x).argmax(dim=1) == labels).float().mean().item()
    assert accuracy >= 0.75
    features = codec.encode(x[:8])
    assert features.shape == (8, 64) and features.dtype == torch.float32
    assert codec.code_size() == 64 and not codec.has_decoder
    with pytest.raises(NotImplementedError, match="no decoder"):
        codec.decode(features)


@pytest.mark.parametrize("factory, file", [(taef2, "taef2_encoder.pth"),
                                           (resnet20, "resnet20-12fca82f.th"),
                                           (resnet56, "resnet56-4bfd9763.th")])
def test_missing_weights_name_the_file(tmp_path, factory, file):
    with pytest.raises(FileNotFoundError, match=file) as error:
        factory(root=tmp_path)
    assert "weights/" in str(error.value) and "NEURODYN_DATA" in str(error.value)


@pytest.mark.parametrize("shape", [(3, 30, 32), (3, 32, 20), (2, 32, 32), (4, 32, 32)])
def test_taef2_rejects_wrong_image_shapes(shape):
    codec = TAEF2()
    with pytest.raises(ValueError, match="divisible by 8"):
        codec.encode(torch.rand(1, *shape))
    with pytest.raises(ValueError, match="divisible by 8"):
        codec.code_shape_for(shape)


def test_taef2_needs_an_image_shape_and_latent_codes():
    codec = TAEF2()
    with pytest.raises(ValueError, match="depends on the image shape"):
        codec.code_shape_for()
    with pytest.raises(ValueError, match="decodes codes of shape"):
        codec.decode(torch.zeros(1, 16, 4, 4))
    with pytest.raises(ValueError, match="decodes codes of shape"):
        codec.decode(torch.zeros(1, 512))


@pytest.mark.parametrize("shape", [(3, 64, 64), (1, 32, 32), (3, 32, 31)])
def test_resnet_rejects_wrong_image_shapes(shape):
    with pytest.raises(ValueError, match=r"\(3, 32, 32\)"):
        ResNetCifar("resnet20", 3).encode(torch.rand(2, *shape))
