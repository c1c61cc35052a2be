"""The recall job end to end: stimuli -> corruption -> cues -> network + solver -> Dataset.

One function serves ``neurodyn recall`` and every point of a sweep (:mod:`neurodyn.sweep`).
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from pathlib import Path

import torch
import xarray as xr

from .. import analysis, data
from ..codecs.base import Stimuli
from ..memory.bank import MemoryBank
from ..memory.encoded import EncodedMemory, Readout
from ..network import Cues, Network, from_config
from ..record import Monitor
from ..scale.points import point_function
from ..simulation import simulate
from ..solve import Solver
from ..spiking import SpikingMemory

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def model_config(model: str = "mchn-l2", model_file: str | None = None, **overrides: object) -> dict:
    """A declarative model dict: a preset name or a TOML file's ``[model]`` table, with overrides
    (``similarity``, ``separation``, ``beta``, ``dynamics``, ``value_lagrangian``, ``tau_h``...);
    None values are ignored."""
    if model_file:
        path = Path(model_file)
        if not path.is_file():
            raise ValueError(f"model file not found: {path}")
        with path.open("rb") as fh:
            config = tomllib.load(fh).get("model")
        if not isinstance(config, dict):
            raise ValueError(f"{path} has no [model] table")
    else:
        config = {"preset": model}
    config.update({k: v for k, v in overrides.items() if v is not None})
    return config


def choose_and_corrupt(data_name: str, n_memories: int, corruption: str, seed: int,
                       data_root: str | None = None, image_size: int | None = None
                       ) -> tuple[data.ImageSet, torch.Tensor]:
    """``n_memories`` stimuli chosen by a seeded permutation (resized to ``image_size`` pixels
    square when given), and each one corrupted into its query with the same seed's generator."""
    images = data.load_dataset(data_name, root=data_root)
    if not 1 <= n_memories <= len(images):
        raise ValueError(f"n_memories must be between 1 and {len(images)} for {images.name}, got {n_memories}")
    gen = torch.Generator().manual_seed(seed)
    chosen = images.subset(torch.randperm(len(images), generator=gen)[:n_memories])
    if image_size is not None:
        chosen = chosen.resized(image_size)
    name, params = data.parse_corruption(corruption)
    return chosen, data.corrupt(chosen.images, name, generator=gen, **params)


def prepare_memory(data_name: str, n_memories: int, corruption: str, model: dict | None = None, *,
                   projection: str | None = None, seed: int = 0, data_root: str | None = None,
                   device: str = "cpu", dtype: str = "float32"
                   ) -> tuple[data.ImageSet, Network, torch.Tensor, torch.Tensor]:
    """The chosen stimuli, the network storing them, the stored patterns (flat) and the queries.

    Classical nets (sign or binary read-out) get bipolar or binary patterns and queries.
    ``projection="bottom_half"`` makes the network heteroassociative (UHN section 3.5, appendix
    B): the memories are the whole images and the projection ``P`` their bottom halves (all
    channels), so a query recalls only the bottom half.
    """
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; known: {', '.join(DTYPES)}")
    if projection not in (None, "none", "bottom_half"):
        raise ValueError(f"unknown projection {projection!r}; known: none, bottom_half")
    chosen, corrupted = choose_and_corrupt(data_name, n_memories, corruption, seed, data_root)
    stored, queries = chosen.flat(), corrupted.reshape(len(chosen), -1)
    dev, dt = torch.device(device), DTYPES[dtype]
    net: Network = from_config(model or model_config(), stored.to(device=dev, dtype=dt))
    # Classical nets work on bipolar or binary patterns: convert both memories and cues.
    convert = {"sign": data.to_bipolar, "binary": data.binarize}.get(net.readout)
    if convert is not None:
        stored, queries = convert(stored), convert(queries)
        net = dataclasses.replace(net, memories=stored.to(device=dev, dtype=dt))
    if projection == "bottom_half":
        h = chosen.shape[1]
        bottom = stored.reshape(len(chosen), *chosen.shape)[:, :, h // 2:].reshape(len(chosen), -1)
        net = dataclasses.replace(net, projection=bottom.to(device=dev, dtype=dt))
    return chosen, net, stored, queries


def run_recall(
    data_name: str = "digits",
    n_memories: int = 100,
    corruption: str = "mask:0.25,side=bottom",
    model: dict | None = None,
    *,
    n_cues: int | None = None,
    seed: int = 0,
    duration: float = 20.0,
    solver: Solver | None = None,
    monitor: Monitor | None = None,
    cue_mode: str = "initial",
    data_root: str | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    progress: bool | None = False,
    spiking: SpikingMemory | None = None,
) -> xr.Dataset:
    """Store ``n_memories`` stimuli chosen by a seeded permutation, corrupt each into its cue
    (the same seed), recall them and return the recorded Dataset.

    Classical nets (sign or binary read-out) get bipolar or binary patterns and cues.
    ``spiking``: make the memory population spike (:mod:`neurodyn.spiking`).
    """
    chosen, net, stored, queries = prepare_memory(data_name, n_memories, corruption, model, seed=seed,
                                                  data_root=data_root, device=device, dtype=dtype)
    n = len(queries) if n_cues is None else min(n_cues, len(queries))
    ds = simulate(net, Cues(queries[:n], cue_mode, targets=stored[:n], target_index=torch.arange(n)), duration,
                  method=spiking or solver or Solver(), monitor=monitor, seed=seed, progress=progress)
    ds.attrs.update(data=chosen.name, corruption=corruption, image_shape=json.dumps(list(chosen.shape)))
    return ds


def run_encoded_recall(
    data_name: str = "cifar10",
    n_memories: int = 100,
    corruption: str = "mask:0.5,side=bottom",
    codec: str = "taef2",
    model: dict | None = None,
    *,
    readout: Readout = "auto",
    text_codec: str | None = None,
    captions: list[str] | None = None,
    caption_index: int = 0,
    scale: str | None = "balance",
    image_size: int | None = None,
    n_cues: int | None = None,
    seed: int = 0,
    duration: float = 20.0,
    solver: Solver | None = None,
    monitor: Monitor | None = None,
    cue_mode: str = "initial",
    data_root: str | None = None,
    device: str = "cpu",
    progress: bool | None = False,
    spiking: SpikingMemory | None = None,
) -> xr.Dataset:
    """Recall through a codec (HEN, semantic memory): store ``n_memories`` chosen images as
    codes and recall them from corrupted images, or from captions when ``text_codec`` is given.

    With ``text_codec`` every memory is ``[image code; text code of its caption number 0]`` and
    the queries are text only (zeros in the image slot, the text clamped): the stored images'
    captions number ``caption_index`` (0: the stored caption, as HEN queries; 1-4: another
    human caption of the same image), or the user's ``captions`` (no target then).
    ``readout="values"`` makes the semantic memory (pixels weighted by the final activations).
    """
    chosen, corrupted = choose_and_corrupt(data_name, n_memories, corruption, seed, data_root, image_size)
    n = len(chosen) if n_cues is None else min(n_cues, len(chosen))
    stimuli: dict[str, Stimuli] = {"image": chosen.images}
    codecs = {"image": codec}
    target_index: torch.Tensor | None = torch.arange(n)
    queries: dict[str, Stimuli]
    if text_codec is None:
        queries, clamp = {"image": corrupted[:n]}, False
    else:
        if chosen.captions is None:
            raise ValueError(f"data set {chosen.name} has no captions; caption recall needs one (coco)")
        if captions:
            asked, target_index = list(captions), None
        elif all(len(c) > caption_index for c in chosen.captions[:n]):
            asked = [c[caption_index] for c in chosen.captions[:n]]
        else:
            raise ValueError(f"caption_index {caption_index} is out of range for some images")
        stimuli["text"], codecs["text"] = [c[0] for c in chosen.captions], text_codec
        queries, clamp = {"text": asked}, True
    bank = MemoryBank.build(stimuli, codecs, scale=scale, device=device, root=data_root)
    ds = EncodedMemory(bank, model, readout=readout).recall(
        queries, duration, clamp_given=clamp, target_index=target_index, monitor=monitor,
        solver=solver or Solver(), cue_mode=cue_mode, seed=seed, progress=progress, spiking=spiking)
    ds.attrs.update(data=chosen.name, corruption=corruption if text_codec is None else "none (caption query)",
                    codec=codec, text_codec=text_codec or "", caption_index=caption_index,
                    image_shape=json.dumps(list(ds["output"].shape[1:])))
    return ds


def recall_summary(ds: xr.Dataset, threshold: float = analysis.UHN_THRESHOLD) -> dict[str, float]:
    """Scalars that summarize one recall run (the outputs of a sweep point)."""
    r = analysis.retrieval(ds, threshold)
    out = {
        "retrieval_rate": r.attrs["rate"],
        "mse": float(r["mse"].mean()),
        "converged_fraction": float(ds["converged"].mean()) if "converged" in ds else float("nan"),
        "nfe": float(ds.attrs["nfe"]),
        "wall_time": float(ds.attrs["wall_time_s"]),
    }
    if "energy" in ds:
        report = analysis.lyapunov_check(ds)
        out.update(energy_monotone=float(report.monotone), energy_worst_ratio=report.worst_ratio)
    return out


@point_function("retrieval_rate", "mse", "converged_fraction", "nfe", "wall_time", "energy_monotone",
                "energy_worst_ratio")
def recall_point(data: str = "digits", n_memories: int = 100, corruption: str = "mask:0.25,side=bottom",
                 model: str = "mchn-l2", similarity: str | None = None, separation: str | None = None,
                 beta: float | None = None, dynamics: str | None = None, value_lagrangian: str | None = None,
                 tau_h: float | None = None, seed: int = 0, duration: float = 20.0, method: str = "dopri5",
                 rtol: float = 1e-5, atol: float = 1e-7, steady_tol: float = 1e-4, threshold: float = 50.0,
                 n_cues: int | None = None, device: str = "cpu", dtype: str = "float32") -> dict[str, float]:
    """One recall run (:func:`neurodyn.jobs.recall.run_recall`) reduced to its summary scalars."""
    model_dict = model_config(model, beta=beta, similarity=similarity, separation=separation, dynamics=dynamics,
                              value_lagrangian=value_lagrangian, tau_h=tau_h)
    ds = run_recall(data, n_memories, corruption, model_dict, n_cues=n_cues, seed=seed, duration=duration,
                    solver=Solver(method, rtol=rtol, atol=atol, steady_tol=steady_tol),
                    monitor=Monitor(("energy",), n_times=51), device=device, dtype=dtype)
    return recall_summary(ds, threshold)


