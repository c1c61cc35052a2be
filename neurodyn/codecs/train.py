"""Train the project's own codecs (:mod:`neurodyn.codecs.trained`) on real data: train_codec.

The data root holds only test sets, so every codec trains on four fifths of its set and is
scored on the rest: every fifth image (indices 4, 9, 14, ..., 9,999) is held out, 2,000 of the
10,000 MNIST digits for ``"mnist-ae12"`` and of the 10,000 CIFAR-10 images (JPEG copy) for
``"vqae"`` and ``"simclr"``. (The CIFAR-10 file is sorted by class: its last 2,000 images are all
ships and trucks, so a held-out block at the end would leave two classes out of training.)
One shared
loop (:func:`fit`: Adam, shuffled mini-batches, a tqdm bar) trains all three; a
:class:`Recipe` gives each its loss, default settings and held-out metrics:

- ``"mnist-ae12"``: mean squared reconstruction error (Salvatori et al., 2023, section 4:
  lr 0.001, batch 250, 300 epochs, the paper's settings).
- ``"vqae"``: the VQ-VAE loss of van den Oord et al. (2017, eq. 3): reconstruction error, through
  the straight-through estimator, plus the codebook loss ``|sg[z_e] - e|^2`` and the commitment
  loss ``beta |z_e - sg[e]|^2`` with beta = 0.25; unused codes restart between epochs
  (:func:`restart_dead_codes`).
- ``"simclr"``: the NT-Xent contrastive loss of Salvatori et al. (2023, section 3, the equation
  of L_ij) with cosine similarity over two augmented views of each image; the augmentations are
  the paper's corruptions (:func:`augment`).

Training is reproducible from ``seed``: the weights are initialized under ``torch.manual_seed``
(the caller's global random state is restored afterwards) and a ``torch.Generator`` seeded with
it drives the data order and the augmentations. Results are bitwise repeatable on the same
machine and thread count; training runs on the CPU.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from neurodyn import __version__
from neurodyn.codecs import checkpoint_dirs
from neurodyn.codecs.trained import SimCLREncoder, TrainedCodec, VQAutoencoder, build
from neurodyn.data import (
    color_filter,
    corrupt,
    crop_zoom,
    gaussian_noise,
    load_dataset,
    mask_fraction,
    parse_corruption,
    rotate90,
    salt_and_pepper,
)
from neurodyn.files import atomic_write, claim

COMMITMENT = 0.25
"""beta of the VQ-VAE commitment loss (van den Oord et al., 2017, section 3.2)."""
TEMPERATURE = 0.2
"""tau of the NT-Xent loss; lower than SimCLR's 0.5 for CIFAR-10 (Chen et al., 2020, appendix
B.9): training here lasts under 2,000 steps, and in a 150-step trial 0.2 retrieved better."""
AUGMENT_GROUP = 16
"""Images per group that share one draw of augmentation strengths (:func:`augment`)."""
RETRIEVAL_CORRUPTIONS = (
    "crop:0.5,position=random", "mask:0.5,fill=noise", "color:random", "rotate:random",
    "salt_pepper:0.2", "gaussian:0.316,mean=0.3", "gaussian:0.316,mean=0.5",
)
"""The feature-space paper's six corruptions (section 3, table 1), as held-out retrieval tasks
for ``"simclr"``: crop, mask, colour, rotation, salt and pepper, Gaussian noise of variance 0.1
with mean 0.3 and 0.5."""


@dataclass(frozen=True)
class Recipe:
    """How one codec is trained: its data set, default settings, loss and held-out metrics."""

    dataset: str
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    loss: Callable[[Any, Tensor, torch.Generator], Tensor]
    evaluate: Callable[[Any, Tensor, Tensor], dict[str, float]]
    after_epoch: Callable[[Any, Tensor, torch.Generator], None] | None = None


def split(images: Tensor) -> tuple[Tensor, Tensor]:
    """(training images, held-out images): every fifth image, indices 4, 9, 14, ..., is held out
    (balanced over classes even in a file sorted by class); the others train, in order."""
    if len(images) < 5:
        raise ValueError(f"need at least 5 images to train and hold some out, got {len(images)}")
    held = torch.arange(len(images)) % 5 == 4
    return images[~held], images[held]


# ---------------------------------------------------------------------------------------------
# Losses


def reconstruction_loss(codec: TrainedCodec, x: Tensor, generator: torch.Generator) -> Tensor:
    """Mean squared error of the autoencoder's reconstruction."""
    return F.mse_loss(codec.decode(codec.encode(x, grad=True), grad=True), x)


def vq_loss(codec: VQAutoencoder, x: Tensor, generator: torch.Generator) -> Tensor:
    """The VQ-VAE loss (van den Oord et al., 2017, eq. 3), straight-through gradients."""
    z = codec.encoder(x)
    q = codec.quantize(z)
    reconstruction = codec.decoder(z + (q - z).detach())
    return (F.mse_loss(reconstruction, x) + F.mse_loss(q, z.detach())
            + COMMITMENT * F.mse_loss(z, q.detach()))


@torch.no_grad()
def restart_dead_codes(codec: VQAutoencoder, images: Tensor, generator: torch.Generator) -> None:
    """Move the codebook vectors that no vector of 1,024 random training images chose onto
    randomly picked encoder outputs (the codebook reset of Dhariwal et al., 2020, "Jukebox"),
    so that codes unused early in training are not lost for good."""
    sample = images[torch.randperm(len(images), generator=generator)[:1024]]
    z = codec.encoder(sample)
    dead = torch.bincount(codec.nearest(z).flatten(), minlength=len(codec.codebook)) == 0
    vectors = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
    picked = torch.randint(len(vectors), (int(dead.sum()),), generator=generator)
    codec.codebook[dead] = vectors[picked]


def nt_xent(z: Tensor, temperature: float = TEMPERATURE) -> Tensor:
    """The NT-Xent loss of 2B projections, where rows i and i + B are views of one image:
    the mean over i of L_ij = -log(exp(s_ij / tau) / sum_{k != i} exp(s_ik / tau)), s the cosine
    similarity (Salvatori et al., 2023, section 3; Chen et al., 2020, eq. 1)."""
    z = F.normalize(z, dim=1)
    n = z.shape[0]
    self_pairs = torch.eye(n, dtype=torch.bool, device=z.device)
    logits = (z @ z.T / temperature).masked_fill(self_pairs, -math.inf)
    return F.cross_entropy(logits, torch.arange(n, device=z.device).roll(n // 2))


def augment(x: Tensor, generator: torch.Generator) -> Tensor:
    """A random view of each image made of the feature-space paper's corruptions (section 3).

    In groups of :data:`AUGMENT_GROUP` images that share one draw of strengths: a random crop of
    40-100% of the side zoomed back, a random quarter turn and a random colour filter (both per
    image) of random strength; then, each with probability 1/4, Gaussian noise (sigma up to 0.316,
    mean up to 0.3), a half mask of uniform noise, and salt and pepper (p up to 0.2).
    """
    views = []
    for group in x.split(AUGMENT_GROUP):
        u = torch.rand(9, generator=generator).tolist()
        view = crop_zoom(group, 0.4 + 0.6 * u[0], "random", generator)
        view = color_filter(rotate90(view, "random", generator), "random", u[1], generator)
        if u[2] < 0.25:
            view = gaussian_noise(view, 0.316 * u[3], mean=0.3 * u[4], generator=generator)
        if u[5] < 0.25:
            view = mask_fraction(view, 0.5, "top" if u[6] < 0.5 else "bottom", "noise", generator)
        if u[7] < 0.25:
            view = salt_and_pepper(view, 0.2 * u[8], generator)
        views.append(view)
    return torch.cat(views)


def contrastive_loss(codec: SimCLREncoder, x: Tensor, generator: torch.Generator) -> Tensor:
    """NT-Xent on the projection head's output for two augmented views of each image."""
    views = torch.cat([augment(x, generator), augment(x, generator)])
    return nt_xent(codec.head(codec.backbone(views)))


# ---------------------------------------------------------------------------------------------
# Held-out metrics


def reconstruction_metrics(codec: TrainedCodec, train: Tensor,
                           held_out: Tensor) -> dict[str, float]:
    """Held-out MSE, and that of the trivial baseline: the mean training image."""
    mse = F.mse_loss(codec.decode(codec.encode(held_out)), held_out).item()
    baseline = F.mse_loss(train.mean(0).expand_as(held_out), held_out).item()
    return {"mse": mse, "mse_mean_image": baseline}


def vq_metrics(codec: VQAutoencoder, train: Tensor, held_out: Tensor) -> dict[str, float]:
    """:func:`reconstruction_metrics` plus the codebook's use on held-out images: the fraction
    of codes used and the perplexity exp(entropy) of the token frequencies."""
    counts = torch.bincount(codec.indices(held_out).flatten(), minlength=len(codec.codebook))
    p = counts[counts > 0] / counts.sum()
    usage = {"codes_used": (counts > 0).float().mean().item(),
             "perplexity": (-(p * p.log()).sum()).exp().item()}
    return reconstruction_metrics(codec, train, held_out) | usage


def retrieval_accuracy(codec: TrainedCodec, images: Tensor, spec: str,
                       generator: torch.Generator) -> float:
    """How often a corrupted image's nearest neighbour (cosine similarity of codes) among the
    clean ``images`` is itself: the semantic memory's one-shot retrieval (section 3)."""
    name, params = parse_corruption(spec)
    keys = F.normalize(codec.encode(images).flatten(1), dim=1)
    corrupted = corrupt(images, name, generator, **params)
    queries = F.normalize(codec.encode(corrupted).flatten(1), dim=1)
    hits = (queries @ keys.T).argmax(1).cpu() == torch.arange(len(images))
    return hits.float().mean().item()


def simclr_metrics(codec: SimCLREncoder, train: Tensor, held_out: Tensor) -> dict[str, float]:
    """Retrieval accuracy on the held-out images for each of :data:`RETRIEVAL_CORRUPTIONS`."""
    generator = torch.Generator().manual_seed(0)
    return {f"retrieval {spec}": retrieval_accuracy(codec, held_out, spec, generator)
            for spec in RETRIEVAL_CORRUPTIONS}


RECIPES: dict[str, Recipe] = {
    "mnist-ae12": Recipe("mnist", 300, 250, 1e-3, 0.0, reconstruction_loss, reconstruction_metrics),
    "vqae": Recipe("cifar10", 40, 64, 2e-3, 0.0, vq_loss, vq_metrics, restart_dead_codes),
    "simclr": Recipe("cifar10", 30, 128, 2e-3, 1e-4, contrastive_loss, simclr_metrics),
}


# ---------------------------------------------------------------------------------------------
# The loop


def fit(codec: TrainedCodec, recipe: Recipe, images: Tensor, *, epochs: int, batch_size: int,
        lr: float, generator: torch.Generator, progress: bool = True) -> float:
    """Train ``codec`` in place with Adam on shuffled mini-batches; the last batch of an epoch
    is dropped when incomplete, and ``recipe.after_epoch`` runs between epochs. Returns the mean
    loss of the last epoch."""
    optimizer = torch.optim.Adam(codec.parameters(), lr=lr, weight_decay=recipe.weight_decay)
    n_batches = max(1, len(images) // batch_size)
    codec.train()
    losses: list[float] = []
    with tqdm(total=epochs * n_batches, desc=f"train {codec.name}", disable=not progress) as bar:
        for epoch in range(epochs):
            order = torch.randperm(len(images), generator=generator)
            losses = []
            for batch in order[: n_batches * batch_size].split(batch_size):
                loss = recipe.loss(codec, images[batch], generator)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
                bar.update()
                bar.set_postfix(loss=f"{loss.item():.4g}")
            if recipe.after_epoch is not None and epoch < epochs - 1:
                recipe.after_epoch(codec, images, generator)
    codec.eval()
    return sum(losses) / len(losses)


def save_checkpoint(codec: TrainedCodec, metadata: dict[str, Any], out: Path) -> Path:
    """Write ``{"state_dict", "metadata"}`` to ``out`` atomically
    (:func:`neurodyn.files.atomic_write`), so a reader never sees half a checkpoint."""
    atomic_write(out, lambda tmp: torch.save({"state_dict": codec.state_dict(), "metadata": metadata}, tmp))
    return out


def train_codec(name: str, *, root: str | os.PathLike[str] | None = None,
                images: Tensor | None = None, epochs: int | None = None,
                batch_size: int | None = None, lr: float | None = None, seed: int = 0,
                out: str | os.PathLike[str] | None = None, progress: bool = True) -> Path:
    """Train codec ``name`` (a key of :data:`RECIPES`), save its checkpoint, return its path.

    Args:
        name: ``"mnist-ae12"``, ``"vqae"`` or ``"simclr"``.
        root: the data root (default ``$NEURODYN_DATA``) of the recipe's data set.
        images: train on these (n, C, H, W) images in [0, 1] instead (every fifth held out).
        epochs, batch_size, lr: override the recipe's defaults (:data:`RECIPES`).
        seed: seeds the initial weights, the data order and the augmentations.
        out: the checkpoint's path; default ``checkpoint_dirs()[0] / f"{name}.pt"``.
        progress: show a tqdm progress bar.

    The checkpoint's metadata: name, architecture, seed, epochs, batch_size, lr, data (what was
    trained on and held out), held_out (the recipe's metrics), train_loss (last epoch's mean),
    train_seconds, version (neurodyn's) and torch (its version).
    """
    if name not in RECIPES:
        raise ValueError(f"unknown trainable codec {name!r}; known: {', '.join(RECIPES)}")
    recipe = RECIPES[name]
    epochs = recipe.epochs if epochs is None else epochs
    batch_size = recipe.batch_size if batch_size is None else batch_size
    lr = recipe.lr if lr is None else lr
    if epochs < 1 or batch_size < 2 or not lr > 0:
        raise ValueError(f"need epochs >= 1, batch_size >= 2 and lr > 0, got {epochs}, "
                         f"{batch_size}, {lr}")
    path = Path(out) if out is not None else checkpoint_dirs()[0] / f"{name}.pt"
    with claim(path):  # an output that cannot be written is refused before the training
        return save_checkpoint(*_train(name, recipe, root, images, epochs, batch_size, lr, seed, progress), path)


def _train(name: str, recipe: Recipe, root: str | os.PathLike[str] | None, images: Tensor | None, epochs: int,
           batch_size: int, lr: float, seed: int, progress: bool) -> tuple[TrainedCodec, dict[str, Any]]:
    """:func:`train_codec`'s training: the codec and its checkpoint metadata."""
    if images is None:
        images = load_dataset(recipe.dataset, root).images
        source = f"{recipe.dataset} test set"
    else:
        source = "images given to train_codec"
    train, held_out = split(images)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        codec = build(name)
    start = time.perf_counter()
    train_loss = fit(codec, recipe, train, epochs=epochs, batch_size=batch_size, lr=lr,
                     generator=torch.Generator().manual_seed(seed), progress=progress)
    seconds = time.perf_counter() - start
    metadata = {
        "name": name, "architecture": codec.architecture, "seed": seed, "epochs": epochs,
        "batch_size": batch_size, "lr": lr, "weight_decay": recipe.weight_decay,
        "data": {"source": source, "train": f"{len(train)} images, index % 5 != 4",
                 "held_out": f"{len(held_out)} images, index % 5 == 4"},
        "held_out": recipe.evaluate(codec, train, held_out), "train_loss": train_loss,
        "train_seconds": round(seconds, 1), "version": __version__, "torch": str(torch.__version__),
    }
    return codec, metadata
