"""The recall job end to end: stimuli -> corruption -> cues -> network + solver -> Dataset.

One pipeline, :func:`recall`, serves ``neurodyn recall`` and every point of a sweep
(:mod:`neurodyn.scale.sweep`). It takes a :class:`Selection` (which stimuli, which queries) and a
memory kind: :class:`PixelMemory` (the pixels as they are, any dtype, classical nets and UHN's
heteroassociative projection) or :class:`CodedMemory` (codes of a codec, ``"pixels"`` included:
HEN, the semantic memory, captions). docs/decisions.md says why pixels keep a kind of their own.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
import xarray as xr

from .. import analysis, data, names
from ..codecs.base import Codec, Stimuli
from ..data import ImageSet
from ..devices import check_device
from ..memory.bank import MemoryBank, Scale
from ..memory.encoded import EncodedMemory, Readout, default_monitor
from ..network import Cues, Network, from_config
from ..record import Monitor
from ..scale.points import point_function
from ..simulation import simulate
from ..solve import Solver
from ..spiking import SpikingMemory

DTYPES = {name: getattr(torch, name) for name in names.DTYPES}


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


@dataclass(frozen=True)
class Selection:
    """Which stimuli are stored and how each becomes its query.

    ``n_memories`` images of the data set ``data`` chosen by a seeded permutation (resized to
    ``image_size`` pixels square when given), each corrupted into its query with the same seed's
    generator (``corruption``: :func:`neurodyn.data.parse_corruption`). The first ``n_cues``
    queries are recalled (all when None). ``root``: the data root (default ``NEURODYN_DATA``).
    """

    data: str = "digits"
    n_memories: int = 100
    corruption: str = "mask:0.25,side=bottom"
    seed: int = 0
    n_cues: int | None = None
    image_size: int | None = None
    root: str | None = None

    def __post_init__(self) -> None:
        for name in ("n_cues", "image_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 (or None), got {value}")

    def draw(self) -> tuple[ImageSet, torch.Tensor]:
        """The chosen stimuli and all their queries (one per stimulus)."""
        corrupt = corruption(self.corruption)
        images = data.load_dataset(self.data, root=self.root)
        index, gen = seeded_choice(len(images), self.n_memories, self.seed, images.name)
        chosen = images.subset(index)
        if self.image_size is not None:
            chosen = chosen.resized(self.image_size)
        return chosen, corrupt(chosen.images, gen)

    def recalled(self, n_stored: int) -> int:
        """How many of the queries are recalled."""
        return n_stored if self.n_cues is None else min(self.n_cues, n_stored)


def seeded_choice(n_pool: int, n_memories: int, seed: int, pool: str, first: bool = False
                  ) -> tuple[torch.Tensor, torch.Generator]:
    """Indices of ``n_memories`` of ``n_pool`` stimuli drawn by a permutation seeded with ``seed``
    (the first ones with ``first``), and the generator, which then corrupts them: the one draw
    of every recall job and protocol."""
    if not 1 <= n_memories <= n_pool:
        raise ValueError(f"n_memories must be between 1 and {n_pool} for {pool}, got {n_memories}")
    gen = torch.Generator().manual_seed(seed)
    index = torch.arange(n_memories) if first else torch.randperm(n_pool, generator=gen)[:n_memories]
    return index, gen


def corruption(spec: str) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
    """The corruption ``spec`` (:func:`neurodyn.data.parse_corruption`, checked now) as a function
    of the images and the draw's generator."""
    name, params = data.parse_corruption(spec)
    return lambda images, gen: data.corrupt(images, name, generator=gen, **params)


class Prepared(NamedTuple):
    """A memory kind's part of a recall: the network, the cues, the monitor (None: simulate's
    default) and what completes the recorded Dataset."""

    network: Network
    cues: Cues
    monitor: Monitor | None
    finish: Callable[[xr.Dataset], xr.Dataset]


@dataclass(frozen=True)
class PixelMemory:
    """The stimuli's pixels stored as they are: UHN's setting, in float32 or float64.

    ``model``: a declarative model dict (:func:`model_config`; default ``mchn-l2``). Classical
    nets (sign or binary read-out) get bipolar or binary patterns and queries.
    ``projection="bottom_half"`` makes the network heteroassociative (UHN section 3.5, appendix
    B): the memories are the whole images and the projection ``P`` their bottom halves (all
    channels), so a query recalls only the bottom half.
    """

    model: Mapping | None = None
    projection: str | None = None
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r}; known: {', '.join(DTYPES)}")
        if self.projection not in (None, "none", "bottom_half"):
            raise ValueError(f"unknown projection {self.projection!r}; known: none, bottom_half")

    def network(self, chosen: ImageSet, queries: torch.Tensor, device: str = "cpu"
                ) -> tuple[Network, torch.Tensor, torch.Tensor]:
        """The network storing ``chosen``, the stored patterns (flat) and the queries (flat)."""
        stored, queries = chosen.flat(), queries.reshape(len(queries), -1)
        dev, dt = torch.device(device), DTYPES[self.dtype]
        net: Network = from_config(dict(self.model or model_config()), stored.to(device=dev, dtype=dt))
        # Classical nets work on bipolar or binary patterns: convert both memories and cues.
        convert = {"sign": data.to_bipolar, "binary": data.binarize}.get(net.readout)
        if convert is not None:
            stored, queries = convert(stored), convert(queries)
            net = dataclasses.replace(net, memories=stored.to(device=dev, dtype=dt))
        if self.projection == "bottom_half":
            h = chosen.shape[1]
            bottom = stored.reshape(len(chosen), *chosen.shape)[:, :, h // 2:].reshape(len(chosen), -1)
            net = dataclasses.replace(net, projection=bottom.to(device=dev, dtype=dt))
        return net, stored, queries

    def prepare(self, chosen: ImageSet, queries: torch.Tensor, cue_mode: str, device: str,
                root: str | None) -> Prepared:
        """The network and the cues, each query's target the memory it was made from."""
        net, stored, queries = self.network(chosen, queries, device)
        n = len(queries)
        cues = Cues(queries, cue_mode, targets=stored[:n], target_index=torch.arange(n))
        shape = json.dumps(list(chosen.shape))

        def finish(ds: xr.Dataset) -> xr.Dataset:
            ds.attrs.update(image_shape=shape)
            return ds

        return Prepared(net, cues, None, finish)


@dataclass(frozen=True)
class CodedMemory:
    """The stimuli stored as codes (:class:`~neurodyn.memory.bank.MemoryBank`): HEN, the
    semantic memory, captions (:class:`~neurodyn.memory.encoded.EncodedMemory`).

    ``codec`` encodes the images (``"pixels"``: the identity); ``scale`` balances the slots.
    ``model`` defaults to :func:`~neurodyn.memory.encoded.default_model`. ``readout="values"``
    makes the semantic memory (pixels weighted by the final activations). With ``text_codec``
    every memory is ``[image code; text code of its caption number 0]`` and the queries are text
    only (zeros in the image slot, the text clamped): the stored images' captions number
    ``caption_index`` (0: the stored caption, as HEN queries; 1-4: another human caption of the
    same image), or the user's ``captions`` (no target then).
    """

    codec: str = "taef2"
    model: Mapping | None = None
    readout: Readout = "auto"
    scale: Scale = "balance"
    text_codec: str | None = None
    captions: tuple[str, ...] | None = None
    caption_index: int = 0

    def prepare(self, chosen: ImageSet, queries: torch.Tensor, cue_mode: str, device: str,
                root: str | None) -> Prepared:
        """The memory bank's network and the encoded cues; the read-out completes the Dataset."""
        asked, target_index = self._queries(chosen, queries)
        stimuli: dict[str, Stimuli] = {"image": chosen.images}
        codecs: dict[str, Codec | str] = {"image": self.codec}
        if self.text_codec is not None:
            assert chosen.captions is not None  # _queries refused a data set without captions
            stimuli["text"], codecs["text"] = [c[0] for c in chosen.captions], self.text_codec
        bank = MemoryBank.build(stimuli, codecs, scale=self.scale, device=device, root=root)
        memory = EncodedMemory(bank, self.model, readout=self.readout)
        cues = memory.recall_cues(asked, clamp_given=self.text_codec is not None, target_index=target_index,
                                  mode=cue_mode)

        def finish(ds: xr.Dataset) -> xr.Dataset:
            ds = memory.add_read_out(ds, asked, cues)
            ds.attrs.update(codec=self.codec, text_codec=self.text_codec or "", caption_index=self.caption_index,
                            image_shape=json.dumps(list(ds["output"].shape[1:])))
            if self.text_codec is not None:
                ds.attrs["corruption"] = "none (caption query)"
            return ds

        return Prepared(memory.network, cues, default_monitor(bank.n_memories), finish)

    def _queries(self, chosen: ImageSet, queries: torch.Tensor
                 ) -> tuple[dict[str, Stimuli], torch.Tensor | None]:
        """The queries by slot and the memory each should recall (None: the user's captions)."""
        n = len(queries)
        if self.text_codec is None:
            return {"image": queries}, torch.arange(n)
        if chosen.captions is None:
            raise ValueError(f"data set {chosen.name} has no captions; caption recall needs one (coco)")
        if self.captions:
            return {"text": list(self.captions)}, None
        if not all(len(c) > self.caption_index for c in chosen.captions[:n]):
            raise ValueError(f"caption_index {self.caption_index} is out of range for some images")
        return {"text": [c[self.caption_index] for c in chosen.captions[:n]]}, torch.arange(n)


MemoryKind = PixelMemory | CodedMemory


def recall(selection: Selection = Selection(), memory: MemoryKind = PixelMemory(), duration: float = 20.0, *,
           method: Solver | SpikingMemory | None = None, monitor: Monitor | None = None,
           cue_mode: str = "initial", device: str = "cpu", progress: bool | None = False) -> xr.Dataset:
    """The recall job: store the selected stimuli (as pixels or as codes), corrupt each into its
    query, recall the first ``selection.n_cues`` and return the recorded Dataset.

    ``method``: a :class:`~neurodyn.solve.Solver` (default ``Solver()``) or a
    :class:`~neurodyn.spiking.SpikingMemory` (the memory population spikes). ``monitor``: what
    is recorded (default: simulate's for pixels, ``v``, energy, speed and the top ``f`` through
    a codec). ``cue_mode``: how the queries drive the network (:class:`~neurodyn.network.Cues`).
    """
    check_device(device)
    chosen, corrupted = selection.draw()
    prepared = memory.prepare(chosen, corrupted[:selection.recalled(len(chosen))], cue_mode, device,
                              selection.root)
    ds = simulate(prepared.network, prepared.cues, duration, method=method or Solver(),
                  monitor=monitor or prepared.monitor, seed=selection.seed, progress=progress)
    ds.attrs.update(data=chosen.name, corruption=selection.corruption)
    _add_sources(ds, chosen)
    return prepared.finish(ds)


def _add_sources(ds: xr.Dataset, chosen: ImageSet) -> None:
    """Which stimuli the memories are (their positions in the data set) and their labels, one
    per stored memory, for reanalysis from the file alone."""
    if ds.attrs.get("model_n_memories") != len(chosen):
        return
    if chosen.source_index is not None:
        ds["memory_source_index"] = ("stored", chosen.source_index.numpy(), {
            "long_name": f"position of the stored stimulus in {chosen.name}", "units": "1"})
    if chosen.labels is not None:
        attrs: dict[str, object] = {"long_name": "class label of the stored stimulus", "units": "1"}
        if chosen.class_names is not None:
            attrs["flag_values"] = list(range(len(chosen.class_names)))
            attrs["flag_meanings"] = " ".join(name.replace(" ", "_") for name in chosen.class_names)
        ds["memory_label"] = ("stored", chosen.labels.numpy(), attrs)


def choose_and_corrupt(data_name: str, n_memories: int, corruption: str, seed: int,
                       data_root: str | None = None, image_size: int | None = None
                       ) -> tuple[ImageSet, torch.Tensor]:
    """Deprecated: ``Selection(...).draw()``."""
    _deprecated("choose_and_corrupt", "Selection(...).draw()")
    return Selection(data_name, n_memories, corruption, seed, image_size=image_size, root=data_root).draw()


def prepare_memory(data_name: str, n_memories: int, corruption: str, model: Mapping | None = None, *,
                   projection: str | None = None, seed: int = 0, data_root: str | None = None,
                   device: str = "cpu", dtype: str = "float32"
                   ) -> tuple[ImageSet, Network, torch.Tensor, torch.Tensor]:
    """The chosen stimuli, the network storing their pixels, the stored patterns (flat) and the
    queries (:meth:`Selection.draw`, :meth:`PixelMemory.network`)."""
    memory = PixelMemory(model, projection, dtype)
    chosen, corrupted = Selection(data_name, n_memories, corruption, seed, root=data_root).draw()
    return (chosen, *memory.network(chosen, corrupted, device))


def run_recall(data_name: str = "digits", n_memories: int = 100, corruption: str = "mask:0.25,side=bottom",
               model: Mapping | None = None, *, n_cues: int | None = None, seed: int = 0, duration: float = 20.0,
               solver: Solver | None = None, monitor: Monitor | None = None, cue_mode: str = "initial",
               data_root: str | None = None, device: str = "cpu", dtype: str = "float32",
               progress: bool | None = False, spiking: SpikingMemory | None = None) -> xr.Dataset:
    """Deprecated: ``recall(Selection(...), PixelMemory(model, dtype=...), duration, ...)``."""
    _deprecated("run_recall", "recall(Selection(...), PixelMemory(...), ...)")
    return recall(Selection(data_name, n_memories, corruption, seed, n_cues, root=data_root),
                  PixelMemory(model, dtype=dtype), duration, method=spiking or solver, monitor=monitor,
                  cue_mode=cue_mode, device=device, progress=progress)


def run_encoded_recall(data_name: str = "cifar10", n_memories: int = 100, corruption: str = "mask:0.5,side=bottom",
                       codec: str = "taef2", model: Mapping | None = None, *, readout: Readout = "auto",
                       text_codec: str | None = None, captions: list[str] | None = None, caption_index: int = 0,
                       scale: Scale = "balance", image_size: int | None = None, n_cues: int | None = None,
                       seed: int = 0, duration: float = 20.0, solver: Solver | None = None,
                       monitor: Monitor | None = None, cue_mode: str = "initial", data_root: str | None = None,
                       device: str = "cpu", progress: bool | None = False,
                       spiking: SpikingMemory | None = None) -> xr.Dataset:
    """Deprecated: ``recall(Selection(...), CodedMemory(codec, ...), duration, ...)``."""
    _deprecated("run_encoded_recall", "recall(Selection(...), CodedMemory(...), ...)")
    memory = CodedMemory(codec, model, readout, scale, text_codec, tuple(captions) if captions else None,
                         caption_index)
    return recall(Selection(data_name, n_memories, corruption, seed, n_cues, image_size, data_root), memory,
                  duration, method=spiking or solver, monitor=monitor, cue_mode=cue_mode, device=device,
                  progress=progress)


def _deprecated(old: str, new: str) -> None:
    warnings.warn(f"{old} is deprecated and goes in the next release; use neurodyn.jobs.recall.{new}",
                  DeprecationWarning, stacklevel=3)


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
    """One recall run (:func:`recall` of pixels) reduced to its summary scalars."""
    model_dict = model_config(model, beta=beta, similarity=similarity, separation=separation, dynamics=dynamics,
                              value_lagrangian=value_lagrangian, tau_h=tau_h)
    ds = recall(Selection(data, n_memories, corruption, seed, n_cues), PixelMemory(model_dict, dtype=dtype), duration,
                method=Solver(method, rtol=rtol, atol=atol, steady_tol=steady_tol),
                monitor=Monitor(("energy",), n_times=51), device=device)
    return recall_summary(ds, threshold)


