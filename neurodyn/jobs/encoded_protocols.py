"""Sweep point functions for the encoded-memory papers (HEN; the feature-space paper).

Each function runs one point of a paper's grid and returns named scalars (``outputs`` names
them), like :mod:`neurodyn.protocols` does for UHN. The experiments under ``experiments/``
(``fs-tables``, ``fs-fully-semantic``, ``hen-capacity``, ``hen-separability``, ``hen-captions``)
run their grids through :mod:`neurodyn.sweep`.

**Which images.** The project-trained codecs (``simclr``, ``vqae``, ``mnist-ae12``) were trained
on four fifths of the CIFAR-10 / MNIST test sets (the data root holds only test sets); every
fifth image (index % 5 == 4) was held out (:func:`neurodyn.codecs.train.split`). So every point
here stores images drawn from those 2,000 held-out images (:func:`held_out`), for every codec
alike, pixels included: no memory was seen in training. COCO (159 images) is used whole.

Codes of the stored images are computed once per process and codec (:func:`code_cache`), so a
grid that varies the number of memories, beta or the similarity does not re-encode them; the
(seed-dependent) corrupted queries are encoded at every point.
"""

from __future__ import annotations

import math
import time
from functools import lru_cache

import numpy as np
import torch
import xarray as xr
from torch import Tensor

from .. import analysis, data, probes
from ..codecs import Codec, load_codec
from ..codecs.base import Stimuli
from ..memory.bank import MemoryBank
from ..memory.encoded import EncodedMemory
from ..scale.points import point_function
from ..solve import Solver
from . import recall

HELD_OUT = {"cifar10", "mnist"}
"""Data sets whose codecs were trained on the other four fifths: memories come from index % 5 == 4."""

SIMILARITY = {"cosine": "cosine", "l2": "euclidean", "l1": "manhattan", "dot": "dot"}
"""The feature-space paper's similarity names -> ours (negative distances for L2 and L1)."""


# ----------------------------------------------------------------------------- data and codes
@lru_cache(maxsize=8)
def _dataset(name: str, root: str | None, image_size: int | None) -> data.ImageSet:
    images = data.load_dataset(name, root=root)
    if name in HELD_OUT:
        images = images.subset(torch.nonzero(torch.arange(len(images)) % 5 == 4).flatten())
    return images.resized(image_size) if image_size is not None else images


def held_out(name: str, root: str | None = None, image_size: int | None = None) -> data.ImageSet:
    """The images a point may store: the held-out fifth of CIFAR-10 / MNIST, all of COCO."""
    return _dataset(name, root, image_size)


def choose(name: str, n_memories: int, corruption: str, seed: int, root: str | None = None,
           image_size: int | None = None, first: bool = False) -> tuple[Tensor, Tensor, data.ImageSet]:
    """Indices (into :func:`held_out`) of ``n_memories`` images chosen by a seeded permutation
    (or the first ones with ``first``), and their queries corrupted with the same seed's
    generator (:func:`neurodyn.jobs.recall.seeded_choice`). Returns (indices, queries, pool)."""
    corrupt = recall.corruption(corruption)
    pool = held_out(name, root, image_size)
    index, gen = recall.seeded_choice(len(pool), n_memories, seed, f"{name} (held-out images)", first)
    return index, corrupt(pool.images[index], gen), pool


@lru_cache(maxsize=16)
def codec(spec: str, root: str | None = None) -> Codec:
    """A codec loaded once per process."""
    return load_codec(spec, root=root)


_CODES: dict[tuple, Tensor] = {}


def code_cache(spec: str, key: tuple, stimuli: Stimuli, root: str | None = None) -> Tensor:
    """The codes ``(n, *code_shape)`` of a fixed set of stimuli named by ``key``, encoded once."""
    full = (spec, root) + key
    if full not in _CODES:
        _CODES[full] = codec(spec, root).encode(stimuli).float()
    return _CODES[full]


def bank_from_codes(parts: dict[str, tuple[str, Tensor, Stimuli]], root: str | None = None,
                    scale: str | None = "balance") -> MemoryBank:
    """A :class:`MemoryBank` from precomputed codes: modality -> (codec spec, codes, stimuli)
    (:meth:`MemoryBank.from_codes` with the process's cached codecs)."""
    return MemoryBank.from_codes({name: (codec(spec, root), codes, items)
                                  for name, (spec, codes, items) in parts.items()}, scale=scale)


_POOL_CODES: dict[tuple, tuple[Tensor | None, Tensor]] = {}


def pool_codes(data_name: str, spec: str, index: Tensor, root: str | None = None,
               image_size: int | None = None) -> Tensor:
    """Codes of the held-out images ``index`` through ``spec``; each image is encoded once per
    process, when first asked for."""
    pool = held_out(data_name, root, image_size)
    key = (data_name, spec, root, image_size)
    codes, done = _POOL_CODES.get(key, (None, torch.zeros(len(pool), dtype=torch.bool)))
    missing = index[~done[index]].unique()
    if len(missing):
        new = codec(spec, root).encode(pool.images[missing]).float()
        if codes is None:
            codes = torch.zeros(len(pool), *new.shape[1:])
        codes[missing] = new
        done[missing] = True
        _POOL_CODES[key] = (codes, done)
    if codes is None:  # nothing asked for and nothing encoded yet: not even the code shape is known
        raise ValueError(f"pool_codes needs at least one image index, got {index.tolist()}")
    return codes[index]


def image_bank(data_name: str, spec: str, index: Tensor, root: str | None = None, image_size: int | None = None,
               scale: str | None = "balance") -> MemoryBank:
    """A one-slot bank of the held-out images ``index`` through codec ``spec`` (codes cached)."""
    pool = held_out(data_name, root, image_size)
    codes = pool_codes(data_name, spec, index, root, image_size)
    return bank_from_codes({"image": (spec, codes, pool.images[index])}, root, scale)


# ----------------------------------------------------------------------------- scores
def image_errors(output: Tensor | np.ndarray, target: Tensor | np.ndarray) -> dict[str, float]:
    """HEN's scores of recalled images against targets (n, C, H, W) in [0, 1]: mean squared error
    and 1 - SSIM (scikit-image's structural similarity, data range 1, 7x7 window), averaged."""
    from skimage.metrics import structural_similarity

    out = np.clip(np.asarray(output, dtype=np.float64), 0.0, 1.0)
    tgt = np.clip(np.asarray(target, dtype=np.float64), 0.0, 1.0)
    ssim = [structural_similarity(o, t, data_range=1.0, channel_axis=0) for o, t in zip(out, tgt)]
    return {"mse": float(((out - tgt) ** 2).mean()), "one_minus_ssim": float(1.0 - np.mean(ssim))}


def nearest_index(x: Tensor, patterns: Tensor) -> Tensor:
    """Index of the nearest pattern (Euclidean) for each row of ``x``."""
    return torch.cdist(x.reshape(len(x), -1).double(), patterns.reshape(len(patterns), -1).double()).argmin(1)


# ----------------------------------------------------------------------------- feature-space paper
@point_function("wrong", "seconds_per_query", "wall_time", "code_size")
def semantic_table_point(data_name: str = "cifar10", n_memories: int = 1000, corruption: str = "rotate:random",
                         codec_name: str = "simclr", similarity: str = "cosine", beta: float = 1e4,
                         seed: int = 0, batch_size: int = 100, data_root: str | None = None) -> dict[str, float]:
    """Feature-space paper tables 1-3: the semantic memory (UHN with similarities on ``phi(x)``,
    projection onto the stored pixels) in one shot, ``codec_name="pixels"`` being the plain UHN.

    Stores ``n_memories`` held-out images, corrupts each into its query and reads out
    ``X' softmax(beta sim(Phi, phi(q)))``; ``wrong``: the fraction whose read-out image is
    nearer another stored image than its own (the paper's "wrongly retrieved").
    ``seconds_per_query``: encoding the query plus the update, per query (table 3).
    """
    index, queries, _ = choose(data_name, n_memories, corruption, seed, data_root)
    bank = image_bank(data_name, codec_name, index, data_root)
    model = {"similarity": SIMILARITY[similarity], "separation": f"softmax:{beta:g}"}
    memory = EncodedMemory(bank, model, readout="values")
    start = time.perf_counter()
    with torch.no_grad():
        out = torch.cat([memory.read_out(memory.cues({"image": queries[i:i + batch_size]}))
                         for i in range(0, len(queries), batch_size)])
    wall = time.perf_counter() - start
    stored = bank.stimuli["image"]
    assert isinstance(stored, Tensor)  # image_bank stores the images themselves
    wrong = (nearest_index(out, stored) != torch.arange(len(out))).double().mean()
    return {"wrong": float(wrong), "seconds_per_query": wall / len(queries), "wall_time": wall,
            "code_size": float(bank.n_features)}


@point_function("identity", "top1", "mse", "mse_vs_decoded", "participation")
def fully_semantic_point(n_memories: int = 1000, n_queries: int = 20, similarity: str = "cosine",
                         beta: float = 100.0, corruption: str = "gaussian:0.447", codec_name: str = "mnist-ae12",
                         seed: int = 0, data_root: str | None = None) -> dict[str, float]:
    """Feature-space paper fig. 4: the fully semantic memory (store ``phi(x)`` only, decode with
    ``psi``) on MNIST, one-shot ``psi(Phi' softmax(beta sim(Phi, phi(q))))``.

    Stores the first ``n_memories`` held-out MNIST test images (raw 12-d codes, no normalization,
    as the paper), queries the first ``n_queries`` with Gaussian noise (default variance 0.2).
    ``identity``: the recalled code is nearest its own stored code; ``top1``: the query's largest
    similarity is with its own memory (the beta -> infinity limit of ``identity``); ``mse``: decoded recall vs
    the clean image; ``mse_vs_decoded``: vs the stored code decoded (the autoencoder's own
    reconstruction, what a perfect recall returns); ``participation``: mean participation ratio
    of the softmax weights (1: one memory, more: a blend).
    """
    index, queries, pool = choose("mnist", n_memories, corruption, seed, data_root, first=True)
    bank = image_bank("mnist", codec_name, index, data_root, scale=None)
    memory = EncodedMemory(bank, {"similarity": SIMILARITY[similarity], "separation": f"softmax:{beta:g}"},
                           readout="decode")
    cues = memory.cues({"image": queries[:n_queries]})
    with torch.no_grad():
        f = memory.network.separate(memory.network.scores(cues))
        recalled = memory.network.retrieve(cues)
        out = memory.read_out(recalled)
        decoded_target = memory.read_out(bank.memories[:n_queries])
    clean = pool.images[index[:n_queries]]
    own = torch.arange(n_queries)
    identity = (nearest_index(recalled, bank.memories) == own).double().mean()
    return {"identity": float(identity), "top1": float((f.argmax(1) == own).double().mean()),
            "mse": float(((out - clean) ** 2).mean()),
            "mse_vs_decoded": float(((out - decoded_target) ** 2).mean()),
            "participation": float(analysis.participation_ratio(f).mean())}


# ----------------------------------------------------------------------------- HEN
@point_function("mse", "one_minus_ssim", "mse_vs_image", "accuracy", "mixture", "spurious", "nfe", "wall_time")
def hen_capacity_point(data_name: str = "cifar10", n_memories: int = 1000, n_queries: int = 100,
                       codec_name: str = "taef2", corruption: str = "mask:0.5,side=bottom",
                       model: str = "mchn-l2", beta: float = 100.0, duration: float = 20.0, seed: int = 0,
                       data_root: str | None = None) -> dict[str, float]:
    """HEN table 1 and fig. 2: recall of ``n_queries`` of ``n_memories`` stored images from
    half-masked queries by the continuous dynamics (:meth:`EncodedMemory.recall`), codes
    balanced to unit mean norm, MCHN (``model``: ``mchn-l2`` or ``mchn``) with ``beta``.

    ``mse`` and ``one_minus_ssim``: the decoded final state against the decoded stored code of the
    target (HEN's metric: 0 when the code is recalled exactly, whatever the codec's
    reconstruction quality); ``mse_vs_image``: against the original image; ``accuracy``: the final
    state is nearest its target; ``mixture``/``spurious``: fractions of final states of each kind.
    """
    index, queries, pool = choose(data_name, n_memories, corruption, seed, data_root)
    bank = image_bank(data_name, codec_name, index, data_root)
    memory = EncodedMemory(bank, {"preset": model, "beta": beta})
    start = time.perf_counter()
    ds = memory.recall({"image": queries[:n_queries]}, duration, target_index=torch.arange(n_queries),
                       solver=Solver("dopri5", rtol=1e-4, atol=1e-6, steady_tol=1e-4), seed=seed)
    wall = time.perf_counter() - start
    errors = image_errors(ds["output"].values, ds["output_target"].values)
    state = ds["state"].values
    images = pool.images[index[:n_queries]].numpy()
    return {**errors, "mse_vs_image": float(((ds["output"].values - images) ** 2).mean()),
            "accuracy": float(ds["correct"].mean()), "mixture": float((state == "mixture").mean()),
            "spurious": float((state == "spurious").mean()), "nfe": float(ds.attrs["nfe"]), "wall_time": wall}


@point_function("self_mean", "self_std", "cross_mean", "cross_std", "d_prime", "auroc", "top1")
def separability_point(data_name: str = "cifar10", n_memories: int = 1000, codec_name: str = "taef2",
                       corruption: str = "mask:0.5,side=bottom", metric: str = "cosine", seed: int = 0,
                       data_root: str | None = None) -> dict[str, float]:
    """HEN fig. 3: self vs cross similarity of corrupted queries and memories in code space
    (:func:`neurodyn.probes.separability`): means, d', AUROC, top-1."""
    index, queries, _ = choose(data_name, n_memories, corruption, seed, data_root)
    memories, cues = separability_codes(data_name, codec_name, index, queries, data_root)
    sep = probes.separability(cues, memories, metric=metric)
    return {key: float(sep.attrs[key]) for key in separability_point.outputs}


def separability_codes(data_name: str, codec_name: str, index: Tensor, queries: Tensor,
                       data_root: str | None = None) -> tuple[Tensor, Tensor]:
    """Flat codes of the stored images ``index`` and of their queries (for histograms)."""
    memories = pool_codes(data_name, codec_name, index, data_root)
    cues = codec(codec_name, data_root).encode(queries).float()
    return memories.reshape(len(memories), -1), cues.reshape(len(cues), -1)


@lru_cache(maxsize=4)
def _coco(root: str | None, image_size: int) -> data.ImageSet:
    return data.load_coco(root).resized(image_size)


def caption_bank(index: Tensor, codec_name: str, text_codec: str, captions: list[str], root: str | None,
                 image_size: int) -> MemoryBank:
    """A COCO bank ``[image code; text code]`` of the images ``index`` bound to ``captions``
    (codes cached per image and per caption string)."""
    coco = _coco(root, image_size)
    images = code_cache(codec_name, ("coco", image_size), coco.images, root)[index]
    texts = torch.stack([code_cache(text_codec, ("text", c), [c], root)[0] for c in captions])
    return bank_from_codes({"image": (codec_name, images, coco.images[index]),
                            "text": (text_codec, texts, list(captions))}, root)


@point_function("accuracy", "mse", "one_minus_ssim", "shared_pr_initial", "shared_pr_final", "shared_mixture_time",
                "shared_one_of_two", "shared_blend_nearer", "wall_time")
def caption_point(n_memories: int = 159, codec_name: str = "taef2", text_codec: str = "render:taef2",
                  caption_index: int = 0, shared_pairs: int = 0, model: str = "mchn", beta: float = 100.0,
                  image_size: int = 64, duration: float = 20.0, seed: int = 0,
                  data_root: str | None = None) -> dict[str, float]:
    """HEN table 2, figs. 5-7 and 6: caption-only recall on COCO image-caption pairs.

    Each of ``n_memories`` images (chosen by ``seed``) is stored as ``[image code; text code of
    its caption 0]``; the query is the text of caption ``caption_index`` alone, clamped, zeros in
    the image slot; the continuous dynamics recall the image slot, which is decoded.
    ``shared_pairs`` > 0 breaks uniqueness (HEN fig. 6): images 2k and 2k+1 (k < shared_pairs) are
    stored with image 2k's caption, and the query for both is that caption.

    Unique pairs: ``accuracy`` (final state nearest the target), ``mse`` / ``one_minus_ssim``
    (decoded recall vs decoded stored code). Shared captions (NaN without): ``shared_pr_initial``
    (participation ratio of the memory activations of the query, i.e. the one-shot update: 2 for
    an even mixture), ``shared_pr_final`` (at the end of the dynamics), ``shared_mixture_time``
    (time spent with ratio >= 1.5), ``shared_one_of_two`` (the final state is one of the two bound
    images), ``shared_blend_nearer`` (the one-shot read-out is nearer the decoded blend of the two
    codes than either decoded code).
    """
    coco = _coco(data_root, image_size)
    if not 0 <= 2 * shared_pairs <= n_memories:
        raise ValueError(f"shared_pairs must be between 0 and n_memories / 2, got {shared_pairs}")
    index, stored, asked = _caption_pairs(coco, n_memories, caption_index, shared_pairs, seed)
    bank = caption_bank(index, codec_name, text_codec, stored, data_root, image_size)
    memory = EncodedMemory(bank, {"preset": model, "beta": beta})
    start = time.perf_counter()
    ds = memory.recall({"text": asked}, duration, clamp_given=True, target_index=torch.arange(n_memories),
                       solver=Solver("dopri5", rtol=1e-4, atol=1e-6, steady_tol=1e-4), seed=seed)
    wall = time.perf_counter() - start
    unique = np.arange(2 * shared_pairs, n_memories)
    out = {"accuracy": float(ds["correct"].values[unique].mean()) if len(unique) else math.nan,
           **(image_errors(ds["output"].values[unique], ds["output_target"].values[unique]) if len(unique)
              else {"mse": math.nan, "one_minus_ssim": math.nan})}
    shared = _shared_caption_scores(memory, bank, ds, asked, shared_pairs)
    return {**out, **shared, "wall_time": wall}


def _caption_pairs(coco: data.ImageSet, n_memories: int, caption_index: int, shared_pairs: int,
                   seed: int) -> tuple[Tensor, list[str], list[str]]:
    """:func:`caption_point`'s seeded images, the caption each is stored with and the one that asks for it."""
    captions = coco.captions
    assert captions is not None  # load_coco gives every image its captions
    index, _ = recall.seeded_choice(len(coco), n_memories, seed, "coco")
    stored = [captions[int(i)][0] for i in index]
    for k in range(shared_pairs):
        stored[2 * k + 1] = stored[2 * k]
    asked = [captions[int(i)][caption_index] for i in index]
    for k in range(shared_pairs):
        asked[2 * k + 1] = asked[2 * k] = stored[2 * k]
    return index, stored, asked


def _shared_caption_scores(memory: EncodedMemory, bank: MemoryBank, ds: xr.Dataset, asked: list[str],
                           shared_pairs: int) -> dict[str, float]:
    """:func:`caption_point`'s ``shared_*`` scores of the image pairs stored with one caption (NaN without)."""
    nan = math.nan
    if not shared_pairs:
        return {"shared_pr_initial": nan, "shared_pr_final": nan, "shared_mixture_time": nan,
                "shared_one_of_two": nan, "shared_blend_nearer": nan}
    first = np.arange(0, 2 * shared_pairs, 2)
    cues = memory.cues({"text": [asked[i] for i in first]})
    with torch.no_grad():
        f0 = memory.network.separate(memory.network.scores(memory.network.activation(cues)))
        one_shot = memory.read_out(memory.network.retrieve(cues))
        pair_codes = bank.memories[:2 * shared_pairs].reshape(shared_pairs, 2, -1)
        blend = memory.read_out(pair_codes.mean(1))
        a, b = memory.read_out(pair_codes[:, 0]), memory.read_out(pair_codes[:, 1])
    dist = lambda x, y: ((x - y) ** 2).flatten(1).mean(1)  # noqa: E731
    nearest = ds["nearest_memory"].values[first]
    return {"shared_pr_initial": float(analysis.participation_ratio(f0).mean()),
            "shared_pr_final": float(ds["participation_ratio"].values[first].mean()),
            "shared_mixture_time": float(ds["mixture_time"].values[first].mean()),
            "shared_one_of_two": float(((nearest == first) | (nearest == first + 1)).mean()),
            "shared_blend_nearer": float((dist(one_shot, blend) < torch.minimum(
                dist(one_shot, a), dist(one_shot, b))).double().mean())}
