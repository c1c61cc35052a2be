"""Hub codecs loaded from local folders: the real architectures with tiny random weights.

CLIP and the diffusers autoencoders are built from small configs, saved with ``save_pretrained``
and loaded back through :func:`load_codec`, as a downloaded folder would be (extra 'hub'); the
DALL-E dVAE is ours, checked against the official parameter names and shapes.
"""

import math
import sys

import pytest
import torch
import torch.nn.functional as F

from neurodyn.codecs import load_codec
from neurodyn.codecs.dalle import DVAE_EPS, dvae_decoder, dvae_encoder
from neurodyn.codecs.hub import CLIP_MEAN, CLIP_STD


def _images(n=2, c=3, h=16, w=16, seed=0):
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed))


# -- DALL-E dVAE --------------------------------------------------------------------------------

# (number of tensors, number of parameters) of OpenAI's Encoder() and Decoder() at their default
# sizes, and a few official names and shapes, read off github.com/openai/DALL-E (dall_e/*.py)
OFFICIAL = {
    "encoder": (74, 53_786_240, {"blocks.input.w": (256, 3, 7, 7), "blocks.input.b": (256,),
                                 "blocks.group_1.block_1.res_path.conv_1.w": (64, 256, 3, 3),
                                 "blocks.group_1.block_1.res_path.conv_4.w": (256, 64, 1, 1),
                                 "blocks.group_2.block_1.id_path.w": (512, 256, 1, 1),
                                 "blocks.group_4.block_2.res_path.conv_3.b": (512,),
                                 "blocks.output.conv.w": (8192, 2048, 1, 1)}),
    "decoder": (76, 43_829_766, {"blocks.input.w": (128, 8192, 1, 1),
                                 "blocks.group_1.block_1.id_path.w": (2048, 128, 1, 1),
                                 "blocks.group_1.block_1.res_path.conv_1.w": (512, 128, 1, 1),
                                 "blocks.group_1.block_1.res_path.conv_4.w": (2048, 512, 3, 3),
                                 "blocks.group_4.block_1.id_path.w": (256, 512, 1, 1),
                                 "blocks.output.conv.w": (6, 256, 1, 1)}),
}


@pytest.mark.parametrize("part", ["encoder", "decoder"])
def test_dvae_modules_have_the_official_parameter_names(part):
    with torch.device("meta"):  # full size, no memory
        module = dvae_encoder() if part == "encoder" else dvae_decoder()
    shapes = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    count, total, some = OFFICIAL[part]
    assert len(shapes) == count and sum(math.prod(s) for s in shapes.values()) == total
    assert {k: shapes.get(k) for k in some} == some


@pytest.fixture
def dvae_folder(tmp_path):
    torch.manual_seed(0)
    folder = tmp_path / "dvae"
    folder.mkdir()
    sizes = dict(n_hid=8, n_blk_per_group=1, vocab_size=32)
    torch.save(dvae_encoder(**sizes).state_dict(), folder / "encoder.pt")
    torch.save(dvae_decoder(**sizes, n_init=4).state_dict(), folder / "decoder.pt")
    return folder


def test_dvae_round_trip_is_dalles_pipeline(dvae_folder):
    codec = load_codec(f"dalle-dvae:{dvae_folder}")
    assert codec.name == "dalle-dvae" and codec.has_decoder and codec.discrete
    assert codec.code_shape_for((3, 16, 24)) == (4, 2, 3)
    x = _images(h=16, w=24)
    codes = codec.encode(x)
    assert codes.shape == (2, 4, 2, 3) and codes.dtype == torch.float32
    out = codec.decode(codes)
    assert out.shape == x.shape and 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    # DALL-E's notebook: map pixels, argmax tokens, one-hot, decode, sigmoid, unmap
    with torch.no_grad():
        tokens = codec.encoder((1 - 2 * DVAE_EPS) * x + DVAE_EPS).argmax(1)
        stats = codec.decoder(F.one_hot(tokens, 32).permute(0, 3, 1, 2).float())
    assert torch.allclose(codes, codec.codebook[tokens].permute(0, 3, 1, 2).detach())
    expected = ((torch.sigmoid(stats[:, :3]) - DVAE_EPS) / (1 - 2 * DVAE_EPS)).clamp(0, 1)
    assert torch.allclose(out, expected, atol=1e-5)
    # a slightly perturbed code snaps back to the same tokens
    assert torch.equal(codec.decode(codes + 1e-4 * torch.randn_like(codes)), out)
    assert codec.to(torch.float64).encode(x).dtype == torch.float64


def test_dvae_accepts_grayscale_and_refuses_other_sides(dvae_folder):
    codec = load_codec("dalle-dvae:dvae", root=dvae_folder.parent)
    gray = _images(c=1)
    assert torch.equal(codec.encode(gray), codec.encode(gray.expand(-1, 3, -1, -1)))
    with pytest.raises(ValueError, match="divisible by 8"):
        codec.encode(_images(h=12))
    with pytest.raises(ValueError, match="decodes codes of shape"):
        codec.decode(torch.zeros(1, 16))


def test_dvae_missing_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_codec(f"dalle-dvae:{tmp_path / 'nowhere'}")
    with pytest.raises(FileNotFoundError, match=r"encoder\.pt.*encoder\.pkl"):
        load_codec(f"dalle-dvae:{tmp_path}")
    with pytest.raises(ValueError, match="local folder"):
        load_codec("dalle-dvae")


# -- CLIP ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    transformers = pytest.importorskip("transformers", reason="extra 'hub' not installed")
    folder = tmp_path_factory.mktemp("clip")
    letters = [chr(i) for i in range(33, 127)]  # printable ASCII is its own byte-level symbol
    vocab = {s: i for i, s in enumerate(letters + [s + "</w>" for s in letters]
                                        + ["<|startoftext|>", "<|endoftext|>"])}
    tokenizer = transformers.CLIPTokenizer(vocab=vocab, merges=[])
    tokenizer.save_pretrained(folder)
    special = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                   pad_token_id=tokenizer.pad_token_id)
    tiny = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
    config = transformers.CLIPConfig(
        text_config=dict(tiny, vocab_size=len(vocab), max_position_embeddings=20, **special),
        vision_config=dict(tiny, image_size=32, patch_size=8), projection_dim=16)
    torch.manual_seed(0)
    transformers.CLIPModel(config).save_pretrained(folder)
    return folder


def test_clip_image_codes_are_unit_projections(clip_folder):
    codec = load_codec(f"clip-image:{clip_folder}")
    assert codec.modality == "image" and codec.code_shape == (16,) and not codec.has_decoder
    x = _images(h=32, w=32)
    codes = codec.encode(x)
    assert codes.shape == (2, 16) and torch.allclose(codes.norm(dim=1), torch.ones(2), atol=1e-5)
    # at the model's own size the preprocessing is CLIP's normalization only
    mean, std = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        ref = codec.projection(codec.vision_model(pixel_values=(x - mean) / std).pooler_output)
    assert torch.allclose(codes, F.normalize(ref, dim=-1), atol=1e-5)


def test_clip_image_resizes_any_image(clip_folder):
    codec = load_codec(f"clip-image:{clip_folder}")
    assert codec.encode(_images(h=40, w=56)).shape == (2, 16)
    assert codec.encode(_images(c=1, h=24, w=20)).shape == (2, 16)


def test_clip_text_codes_do_not_depend_on_the_batch(clip_folder):
    codec = load_codec(f"clip-text:{clip_folder}")
    assert codec.modality == "text" and codec.code_shape == (16,) and not codec.has_decoder
    texts = ["a dog", "a dog runs on the beach!", "x" * 100]  # the last is truncated
    codes = codec.encode(texts)
    assert codes.shape == (3, 16) and torch.allclose(codes.norm(dim=1), torch.ones(3), atol=1e-5)
    single = torch.cat([codec.encode(t) for t in texts])
    assert torch.allclose(codes, single, atol=1e-5)
    assert not torch.allclose(codes[0], codes[1])


def test_clip_missing_folder_is_named(clip_folder, tmp_path):
    with pytest.raises(FileNotFoundError, match="no-clip-here"):
        load_codec(f"clip-text:{tmp_path / 'no-clip-here'}")
    with pytest.raises(ValueError, match="local folder"):
        load_codec("clip-image")


def test_hub_extra_missing_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "transformers", None)
    monkeypatch.setitem(sys.modules, "diffusers", None)
    for name in ("clip-image", "clip-text", "sd-kl", "sd-vq"):
        with pytest.raises(ImportError, match=r"neurodyn\[hub\]"):
            load_codec(f"{name}:{tmp_path}")


# -- Stable Diffusion autoencoders ------------------------------------------------------------

TINY_AE = dict(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
               up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=4,
               layers_per_block=1, sample_size=16)


@pytest.fixture(scope="module")
def diffusers():
    return pytest.importorskip("diffusers", reason="extra 'hub' not installed")


def test_sd_kl_codes_are_scaled_posterior_means(diffusers, tmp_path):
    torch.manual_seed(0)
    vae = diffusers.AutoencoderKL(**TINY_AE, scaling_factor=0.5, shift_factor=0.1).eval()
    vae.save_pretrained(tmp_path / "pipeline" / "vae")
    codec = load_codec(f"sd-kl:{tmp_path / 'pipeline'}")  # finds vae/
    assert codec.name == "sd-kl" and codec.has_decoder and not codec.discrete and codec.code_shape_for((3, 16, 24)) == (4, 8, 12)
    x = _images(h=16, w=24)
    codes = codec.encode(x)
    with torch.no_grad():
        mean = vae.encode(2 * x - 1).latent_dist.mean
        ref = ((vae.decode(mean).sample + 1) / 2).clamp(0, 1)
    assert codes.shape == (2, 4, 8, 12) and torch.allclose(codes, (mean - 0.1) * 0.5, atol=1e-5)
    out = codec.decode(codes)
    assert out.shape == x.shape and torch.allclose(out, ref, atol=1e-5)
    assert load_codec(f"sd-kl:{tmp_path / 'pipeline' / 'vae'}").encode(x).shape == codes.shape
    with pytest.raises(ValueError, match="divisible by 2"):
        codec.encode(_images(h=15))


def test_sd_vq_codes_are_codebook_vectors(diffusers, tmp_path):
    torch.manual_seed(0)
    vq = diffusers.VQModel(**TINY_AE, num_vq_embeddings=32, vq_embed_dim=4).eval()
    vq.save_pretrained(tmp_path / "vq")
    codec = load_codec(f"sd-vq:{tmp_path / 'vq'}")
    assert codec.name == "sd-vq" and codec.has_decoder and codec.discrete
    x = _images()
    codes = codec.encode(x)
    assert codes.shape == (2, 4, 8, 8)
    codebook = codec.model.quantize.embedding.weight.detach()
    flat = codes.permute(0, 2, 3, 1).reshape(-1, 4)
    nearest = codebook[torch.cdist(flat, codebook).argmin(dim=1)]
    assert torch.allclose(flat, nearest, atol=1e-7)
    out = codec.decode(codes)
    with torch.no_grad():
        ref = ((vq.decode(codes).sample + 1) / 2).clamp(0, 1)
    assert out.shape == x.shape and torch.allclose(out, ref, atol=1e-5)


def test_sd_missing_config_is_named(diffusers, tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_codec(f"sd-kl:{tmp_path}")
    with pytest.raises(FileNotFoundError, match="missing"):
        load_codec(f"sd-vq:{tmp_path / 'missing'}")
