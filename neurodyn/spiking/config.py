"""How a memory population spikes and how its run is stepped: :class:`SpikingMemory`, one object
given to :func:`neurodyn.simulate` (``spiking=``), and :func:`make_spiking` for flat parameters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..lagrangians import Quadratic
from ..names import NEURON_MODELS as MODELS
from ..names import SPIKING_PATHS as PATHS
from ..network import Cue, Network
from ..reprs import concise_repr
from .neurons import LIF, NeuronModel, Poisson, Rate, check_positive

_MODEL_CLASSES: dict[str, type[Poisson] | type[LIF] | type[Rate]] = {"poisson": Poisson, "lif": LIF, "rate": Rate}


@dataclass(frozen=True)
class SpikingMemory:
    """How the memory population spikes, and how the run is stepped.

    ``neuron``: :class:`Poisson`, :class:`LIF` or :class:`Rate` parameters. ``dt``: the step
    (ms). ``tau_s``: the synaptic time constant of the spike-to-value current (ms).
    ``value_rate``: None keeps the value neurons rate units; a rate in Hz makes them Poisson
    neurons firing at ``value_rate * g`` (``g`` clipped at 0), whose filtered spikes (``tau_s``)
    the memory neurons see instead of ``g``. ``path``: ``"dense"``, ``"memory"`` (the
    event-driven memory-space path) or ``"auto"`` (memory space where it applies).
    ``batch_tile``: cues per similarity evaluation on the dense path (fixed, for batch invariance:
    a cue's spikes are the same alone and in any batch run with the same tile); 1 for single-cue
    runs, which then pad nothing (docs/spiking.md, "One cue"). ``compile``: step LIF neurons in
    blocks compiled by ``torch.compile`` (:mod:`neurodyn.spiking.compiled`): True from the start,
    False never, None (the default) for runs of at least
    :data:`~neurodyn.spiking.compiled.REPAYS_AFTER` steps where they apply.
    """

    __repr__ = concise_repr

    neuron: NeuronModel = field(default_factory=Poisson)
    dt: float = 0.1
    tau_s: float = 5.0
    value_rate: float | None = None
    path: str = "auto"
    batch_tile: int = 16
    compile: bool | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.neuron, (Poisson, LIF, Rate)):
            hint = (f"; make_spiking({self.neuron!r}, ...) builds one from a name" if self.neuron in MODELS
                    else f"; known models: {', '.join(MODELS)}")
            raise ValueError(f"neuron must be a Poisson, LIF or Rate parameter set, got {self.neuron!r}{hint}")
        self.neuron.check()
        check_positive("dt (ms)", self.dt)
        check_positive("tau_s (ms)", self.tau_s)
        if self.value_rate is not None:
            check_positive("value_rate (Hz)", self.value_rate)
        if self.path not in PATHS:
            raise ValueError(f"unknown spiking path {self.path!r}; known: {', '.join(PATHS)}")
        if self.batch_tile < 1:
            raise ValueError(f"batch_tile must be >= 1, got {self.batch_tile}")
        if self.compile is not None and not isinstance(self.compile, bool):
            raise ValueError(f"compile must be True, False or None (when it repays), got {self.compile!r}")
        if self.compile and not isinstance(self.neuron, LIF):
            raise ValueError(f"compile applies to LIF neurons; {self.model} neurons step eagerly (drop compile)")
        constants = {"tau_s": self.tau_s}
        if isinstance(self.neuron, LIF):
            constants.update(tau_m=self.neuron.tau_m, tau_inh=self.neuron.tau_inh)
        for name, tau in constants.items():
            if not self.dt < tau:
                raise ValueError(f"dt ({self.dt:g} ms) must be smaller than {name} ({tau:g} ms)")

    @property
    def model(self) -> str:
        return next(name for name, cls in _MODEL_CLASSES.items() if isinstance(self.neuron, cls))

    def describe(self) -> dict:
        out = {"model": self.model, **self.neuron._asdict(), "dt": self.dt, "tau_s": self.tau_s,
               "value_rate": self.value_rate, "path": self.path, "batch_tile": self.batch_tile}
        if self.compile is not None:  # (as Solver.describe: a store from before the option resumes)
            out["compile"] = self.compile
        return out

    def check_network(self, network: Network) -> None:
        """Raise ``ValueError`` when the network's time constants do not fit ``dt``."""
        if not self.dt < network.tau_v:
            raise ValueError(f"dt ({self.dt:g} ms) must be smaller than the network's tau_v ({network.tau_v:g} ms)")
        if network.tau_h is not None:
            raise ValueError("spiking memory neurons replace the memory state h (their input is the instantaneous "
                             "similarity; LIF neurons have their own membrane tau_m): build the network with "
                             "tau_h=None")
        if network.shards is not None:
            raise ValueError("spiking populations run on one device; a sharded bank is not supported")

    def memory_path_reason(self, network: Network, cue: Cue) -> str | None:
        """Why the event-driven memory-space path does not apply (None: it does)."""
        if not network.similarity.bilinear:
            return f"the similarity {network.similarity.name} is not bilinear (dot or biased dot)"
        if not isinstance(network.value_lagrangian, Quadratic):
            return "the value neurons are not linear (g = v)"
        if cue.clamp is not None:
            return "clamped value units"
        if cue.gain is not None:
            return "an input current that varies in time"
        if self.value_rate is not None:
            return "spiking value neurons"
        if network.normalize_separation and not network.separation.sums_to_one:
            return "a normalized separation"
        return None


def make_spiking(model: str, **params: float | bool | None) -> SpikingMemory:
    """A :class:`SpikingMemory` from a model name and flat keyword parameters (CLI, configs):
    neuron parameters (``r_max``, ``tau_m``, ``w_inh``...) go to the neuron model, the rest
    (``dt``, ``tau_s``, ``value_rate``, ``path``, ``batch_tile``) to the run. None values are
    ignored."""
    if model not in _MODEL_CLASSES:
        raise ValueError(f"unknown spiking neuron model {model!r}; known: {', '.join(MODELS)}")
    cls = _MODEL_CLASSES[model]
    given: dict[str, Any] = {k: v for k, v in params.items() if v is not None}
    neuron_keys = set(cls._fields) & set(given)
    run_keys = set(SpikingMemory.__dataclass_fields__) - {"neuron"}
    unknown = set(given) - neuron_keys - run_keys
    if unknown:
        raise ValueError(f"unknown parameters {sorted(unknown)} for {model} spiking; known: "
                         f"{sorted(set(cls._fields) | run_keys)}")
    neuron = cls(**{k: given.pop(k) for k in neuron_keys})
    return SpikingMemory(neuron, **given)
