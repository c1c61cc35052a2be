"""Associative memories around codecs: Hopfield Encoding Networks and semantic memories.

The whole data flow of DESIGN.md section 4 in one object::

    stimuli -> MemoryBank (encoders) -> Network -> simulate -> Dataset -> decoder / pixel read-out

- **HEN** (Hopfield Encoding Networks, section 2): store encoder codes, recall in code space,
  decode the image slot; cross-stimulus memories ``[Phi_I(image); Phi_T(text)]`` are recalled
  from a text-only query ``[0; v_T]`` (section 2.2).
- **Semantic memory** (Salvatori et al. 2023, section 3): similarities are computed on features
  ``phi(x)`` and the projection returns the stored pixels. Here the dynamics settle in feature
  space and the read-out is ``X' sep(sim(Phi, v_final))``, the heteroassociative UHN step (UHN
  eq. 1 with ``P = X``) from the settled state.
- **Fully semantic memory**: store ``phi(x)`` only and decode with a generator ``psi``; that is a
  HEN whose codec is an autoencoder (``mnist-ae12``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Literal

import torch
import xarray as xr
from torch import Tensor

from .. import analysis
from ..codecs import Codec
from ..codecs.base import Stimuli
from ..names import ENCODED_RECORD as RECORD
from ..names import ENCODED_TOP_K as TOP_K
from ..network import Cues, Network, from_config
from ..record import Monitor
from ..simulation import simulate
from ..solve import Solver
from ..spiking import SpikingMemory
from .bank import MemoryBank, Scale

Readout = Literal["auto", "decode", "values"]


def default_model(multimodal: bool) -> dict:
    """MCHN with softmax beta 100 (the presets' beta 10 blurs codes of unit mean norm into
    mixtures). One modality: the Euclidean similarity (``mchn-l2``). Several: the dot product
    (``mchn``), because a query that gives some modalities leaves zeros in the others, where the
    Euclidean similarity would still rank memories by their norm (docs/codecs.md)."""
    return {"preset": "mchn" if multimodal else "mchn-l2", "beta": 100.0}


def default_monitor(n_memories: int, n_times: int = 101) -> Monitor:
    """``v``, energy, speed and ``f`` of the :data:`TOP_K` most active memories."""
    return Monitor(RECORD, n_times=n_times, top_k=min(TOP_K, n_memories))


class EncodedMemory:
    """A network that stores a :class:`MemoryBank` and reads its recall out as stimuli.

    ``model``: a declarative model dict (:func:`neurodyn.network.from_config`; default
    :func:`default_model`). ``readout``:
    ``"decode"`` (the ``output`` slot through its codec's decoder) or ``"values"`` (the stored
    ``output`` stimuli weighted by the final memory activations: the semantic memory); ``"auto"``
    decodes when the codec has a decoder and reads out values otherwise.
    """

    def __init__(self, bank: MemoryBank, model: Mapping | None = None, readout: Readout = "auto",
                 output: str = "image") -> None:
        if readout not in ("auto", "decode", "values"):
            raise ValueError(f"unknown readout {readout!r}; known: auto, decode, values")
        slot = bank.slot(output)
        if readout == "auto":
            readout = "decode" if slot.codec.has_decoder else "values"
        if readout == "decode" and not slot.codec.has_decoder:
            raise ValueError(f"codec {slot.codec.name!r} of the {output!r} slot has no decoder; "
                             "use readout='values' (the semantic memory's pixel read-out)")
        if readout == "values" and not isinstance(bank.stimuli[output], Tensor):
            raise ValueError(f"readout='values' needs the stored {output!r} stimuli as a tensor")
        self.bank, self.readout, self.output = bank, readout, output
        self.model = dict(default_model(len(bank.slots) > 1) if model is None else model)
        self.network: Network = from_config(self.model, bank.memories)

    # -- the three papers' models --------------------------------------------------------------

    @classmethod
    def hen(cls, images: Tensor, codec: Codec | str = "taef2", *, captions: Stimuli | None = None,
            text_codec: Codec | str | None = None, scale: Scale = "balance", model: Mapping | None = None,
            device: str | torch.device | None = None, root: str | None = None) -> EncodedMemory:
        """A Hopfield Encoding Network over ``images`` (and their ``captions`` with ``text_codec``)."""
        stimuli: dict[str, Stimuli] = {"image": images}
        codecs: dict[str, Codec | str] = {"image": codec}
        if captions is not None:
            if text_codec is None:
                raise ValueError("captions need a text_codec (e.g. 'minilm' or 'render:taef2')")
            stimuli["text"], codecs["text"] = captions, text_codec
        return cls(MemoryBank.build(stimuli, codecs, scale=scale, device=device, root=root), model)

    @classmethod
    def semantic(cls, images: Tensor, feature_map: Codec | str = "resnet20", *, scale: Scale = "balance",
                 model: Mapping | None = None, device: str | torch.device | None = None,
                 root: str | None = None) -> EncodedMemory:
        """Salvatori et al.'s semantic memory: similarity on ``phi(x)``, pixels read out."""
        bank = MemoryBank.build({"image": images}, {"image": feature_map}, scale=scale, device=device, root=root)
        return cls(bank, model, readout="values")

    # -- recall ----------------------------------------------------------------------------------

    def cues(self, queries: Mapping[str, Stimuli]) -> Tensor:
        """Memory-space cue vectors for the given modalities (zeros in the others)."""
        return self.bank.encode(queries).to(self.network.memories)

    def read_out(self, v: Tensor) -> Tensor:
        """Stimuli (images) from value states (n, D): decoded, or the stored values weighted by
        ``f = sep(sim(M, g))``."""
        v = torch.as_tensor(v).to(self.network.memories)
        if self.readout == "decode":
            return self.bank.decode(v, self.output)
        values = self.bank.stimuli[self.output]
        if not isinstance(values, torch.Tensor):
            raise ValueError(f"the {self.output} slot holds text, which has no values to weigh; use readout='decode'")
        with torch.no_grad():
            f = self.network.separate(self.network.scores(self.network.activation(v)))
        flat = values.reshape(len(values), -1).to(f)
        return (f @ flat).reshape(-1, *values.shape[1:])

    def recall(self, queries: Mapping[str, Stimuli], duration: float = 20.0, *, clamp_given: bool = False,
               target_index: Tensor | None = None, monitor: Monitor | None = None,
               solver: Solver | str = "dopri5", cue_mode: str = "initial", seed: int | None = None,
               progress: bool | None = False, mixture_ratio: float = 1.5,
               spiking: SpikingMemory | None = None) -> xr.Dataset:
        """Encode the queries, run the dynamics, read the result out.

        ``clamp_given`` holds the given modalities' units at their cue values (a text-only query
        keeps its text). ``target_index``: the stored memory each query should recall.
        ``monitor`` defaults to :func:`default_monitor`; ``cue_mode`` as in
        :meth:`~neurodyn.network.Network.make_cue`; ``spiking`` makes the memory population spike.

        The Dataset is :func:`~neurodyn.simulation.simulate`'s plus what :meth:`add_read_out` adds.
        """
        cues = self.recall_cues(queries, clamp_given=clamp_given, target_index=target_index, mode=cue_mode)
        ds = simulate(self.network, cues, duration, method=spiking or solver,
                      monitor=monitor or default_monitor(self.bank.n_memories), seed=seed, progress=progress)
        return self.add_read_out(ds, queries, cues, mixture_ratio)

    def recall_cues(self, queries: Mapping[str, Stimuli], *, clamp_given: bool = False,
                    target_index: Tensor | None = None, mode: str = "initial") -> Cues:
        """The encoded queries as :class:`~neurodyn.network.Cues` (see :meth:`recall`), with the
        target memories when ``target_index`` is given."""
        cues = self.cues(queries)
        clamp = self.bank.given_mask(queries) if clamp_given else None
        targets = None
        if target_index is not None:
            target_index = torch.as_tensor(target_index, dtype=torch.long)
            if target_index.shape != (len(cues),) or not (0 <= target_index).all() \
                    or not (target_index < self.bank.n_memories).all():
                raise ValueError(f"target_index must hold one stored-memory index (0..{self.bank.n_memories - 1}) "
                                 f"per query ({len(cues)}), got {target_index.tolist()}")
            targets = self.bank.memories[target_index]
        return Cues(cues, mode, clamp=clamp, targets=targets, target_index=target_index)

    def add_read_out(self, ds: xr.Dataset, queries: Mapping[str, Stimuli], cues: Cues,
                 mixture_ratio: float = 1.5) -> xr.Dataset:
        """A recall's Dataset plus its read-out: ``output`` (the read-out images, dims cue,
        channel, row, col), ``output_target`` (the target memories read out the same way, when
        the cues have targets), the final-state classification of
        :func:`neurodyn.analysis.final_states` (with ``mixture_time`` when ``f`` is recorded, as
        it is by default), ``correct`` (nearest memory == target), the queries and, for text
        slots, what the recalled memory was stored with."""
        states = analysis.final_states(ds, self.network, mixture_ratio=mixture_ratio,
                                       units=None if cues.clamp is None else ~cues.clamp)
        ds = ds.merge(states.rename({"nearest": "nearest_memory", "distance": "memory_distance"}))
        ds.attrs.update({f"state_{key}": value for key, value in states.attrs.items()})
        self._record_outputs(ds, cues)
        for name, items in queries.items():
            if isinstance(items, Tensor):
                ds[f"query_{name}"] = (("cue", f"{name}_channel", f"{name}_row", f"{name}_col"),
                                       items.detach().cpu().numpy(), {"long_name": f"{name} stimulus of the query",
                                                                      "units": "1"})
            else:
                ds[f"query_{name}"] = ("cue", [str(t) for t in ([items] if isinstance(items, str) else items)],
                                       {"long_name": f"{name} stimulus of the query"})
        nearest = ds["nearest_memory"].values
        for name, stored in self.bank.stimuli.items():
            if not isinstance(stored, Tensor):  # text: what the recalled memory was stored with
                ds[f"recalled_{name}"] = ("cue", [str(stored[i]) for i in nearest],
                                          {"long_name": f"{name} stored with the memory nearest the final state"})
        ds.attrs.update(bank=self.bank.describe(), readout=self.readout, output_slot=self.output,
                        queried=json.dumps(sorted(queries)), clamp_given=int(cues.clamp is not None))
        return ds

    def _record_outputs(self, ds: xr.Dataset, cues: Cues) -> None:
        """``output``, and with targets ``output_target``, ``correct`` and the ``accuracy``."""
        output = self.read_out(torch.as_tensor(ds["v_final"].transpose("cue", "unit").values))
        dims = ("cue", "channel", "row", "col")
        ds["output"] = (dims, output.cpu().numpy(), {"long_name": f"recalled {self.output}, read out by "
                                                    f"{self.readout}", "units": "1"})
        if cues.targets is not None and cues.target_index is not None:
            ds["output_target"] = (dims, self.read_out(cues.targets).cpu().numpy(),
                                   {"long_name": f"target memory's {self.output}, read out the same way",
                                    "units": "1"})
            ds["correct"] = ("cue", (ds["nearest_memory"].values == cues.target_index.numpy()),
                             {"long_name": "the final state is nearest the target memory", "units": "1"})
            ds.attrs["accuracy"] = float(ds["correct"].mean())
