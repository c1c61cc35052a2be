"""Spiking memory populations and their fixed-step stochastic stepping (DESIGN.md section 7).

The rate model of :mod:`neurodyn.network` is the mean field of a spiking one. Here the memory
neurons spike and drive an exponential synaptic current ``s`` of the value neurons::

    tau_s ds/dt = -s + sum_spikes w P_mu delta(t - t_spike)      tau_v dv/dt = s - v + I

with ``h = sim(M, g)`` the memory neurons' input (``g = dL_v/dv``, UHN eq. 2 with fast memory).

Neuron models (Norse's shape: small named-tuple parameters and states, and pure step functions
``(input, state, parameters) -> (spikes, state)``):

- :class:`Poisson`: neuron mu fires with rate ``r_max f_mu(h)`` (Poisson counts per step) (``f`` the separation; softmax
  makes the population fire at ``r_max`` in total: a soft winner-take-all, Nessler et al. 2013);
  each spike adds ``P_mu / r_max`` to the synaptic input, so the mean of ``s`` obeys the rate
  model's filter driven by ``P' f`` and fluctuates by ``O(1/sqrt(r_max tau_s))``.
- :class:`Rate`: that mean field, stepped with the same scheme (the spikes replaced by their
  expected input ``(dt / tau_s) P' f``): the reference a spiking run converges to.
- :class:`LIF`: leaky integrate-and-fire neurons driven by the similarity, with feedback
  inhibition from the population's own spikes and optional gamma-frequency inhibition: the
  E%-max winner-take-all of de Almeida, Idiart & Lisman (2009), whose rate counterpart is the
  top-k / threshold separation.

Time is in ms, rates in Hz. The linear filters are integrated exactly over a step with the spike
input held at the step's start (exponential integration), so ``dt`` only sets how finely spikes
and the nonlinear drive are resolved.

Two paths compute a step:

- ``dense``: any similarity, separation and value Lagrangian. The similarity is evaluated in
  fixed tiles of ``batch_tile`` cues (padded), so every cue's floating-point results, and hence
  its spikes, are the same whatever batch it runs in; the spike-to-value projection gathers the
  rows of ``P`` of the neurons that fired.
- ``memory``: the event-driven memory-space path for a bilinear similarity (dot, biased dot),
  linear value neurons and no clamp. Then ``y = M v`` and ``z = M s`` obey the same linear
  filters as ``v`` and ``s``, and a spike of mu adds row mu of the Gram matrix ``K = P M'``:
  a step costs O(N) per cue instead of O(N I). ``v`` and ``s`` themselves are advanced lazily,
  in closed form, only when their cue spikes and at recording times.

Random numbers come from :func:`neurodyn.rng.counter_uniform` keyed on (seed, cue id, step,
neuron), so runs are reproducible from one seed and batch-invariant.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import torch

from .lagrangians import Quadratic
from .network import Cue, Network
from .rng import counter_uniform
from .solve import Block

MODELS = ("poisson", "lif", "rate")
PATHS = ("auto", "dense", "memory")
STREAM_MEMORY, STREAM_VALUE, STREAM_ALLOCATION = 0, 1, 2


def _check_positive(name: str, value: float, allow_zero: bool = False) -> None:
    ok = math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value}")


# ----------------------------------------------------------------------------- neuron models
class Poisson(NamedTuple):
    """Poisson memory neurons firing at ``r_max * f_mu(h)`` Hz."""

    r_max: float = 200.0

    def check(self) -> None:
        _check_positive("r_max (Hz)", self.r_max)


class Rate(NamedTuple):
    """The Poisson population's mean field: the expected spike input, no noise."""

    def check(self) -> None:
        pass


class LIF(NamedTuple):
    """Leaky integrate-and-fire memory neurons with feedback (and optional gamma) inhibition.

    ``tau_m du/dt = -u + c(h) - inh``; a neuron fires when ``u >= threshold``, is reset to
    ``reset`` and is silent for ``refractory`` ms. ``c(h) = bias + gain * z(h)``, with ``z`` the
    similarity z-scored across the population when ``normalize_drive`` (feedforward inhibition
    and divisive normalization: only the rank of a memory's similarity matters, not the scale of
    the cue), or the raw similarity otherwise. Feedback inhibition ``inh`` jumps by ``w_inh`` per
    spike of the population and decays with ``tau_inh``; gamma inhibition adds
    ``gamma_amplitude * (1 - cos(2 pi gamma_hz t)) / 2``. ``readout_rate``: None reads the
    spikes out normalized (``s`` is the filtered mean of the fired patterns, the spiking
    counterpart of UHN's normalized separation); a rate in Hz makes each spike add
    ``P_mu / readout_rate`` (so ``s`` ~ ``P_mu`` when mu fires at that rate). The synaptic input
    starts at ``s(0) = v(0) - I``, where the value neurons rest with their cue, and counts as
    ``cue_weight`` spikes in the normalized read-out (0: ``s`` starts empty and ``v`` relaxes
    towards ``I`` until the first spikes arrive), so the cue holds until the winners fire.
    """

    tau_m: float = 10.0
    threshold: float = 1.0
    reset: float = 0.0
    refractory: float = 2.0
    bias: float = 0.5
    gain: float = 0.5
    normalize_drive: bool = True
    w_inh: float = 2.0
    tau_inh: float = 5.0
    gamma_hz: float = 0.0
    gamma_amplitude: float = 0.0
    readout_rate: float | None = None
    cue_weight: float = 1.0

    def check(self) -> None:
        _check_positive("tau_m (ms)", self.tau_m)
        _check_positive("tau_inh (ms)", self.tau_inh)
        _check_positive("refractory (ms)", self.refractory, allow_zero=True)
        _check_positive("w_inh", self.w_inh, allow_zero=True)
        _check_positive("gamma_hz", self.gamma_hz, allow_zero=True)
        _check_positive("gamma_amplitude", self.gamma_amplitude, allow_zero=True)
        if not self.threshold > self.reset:
            raise ValueError(f"the LIF threshold ({self.threshold}) must lie above the reset ({self.reset})")
        if not (math.isfinite(self.bias) and math.isfinite(self.gain)):
            raise ValueError("the LIF bias and gain must be finite")
        if self.readout_rate is not None:
            _check_positive("readout_rate (Hz)", self.readout_rate)
        _check_positive("cue_weight", self.cue_weight, allow_zero=True)


class LIFState(NamedTuple):
    """Membrane potentials ``u`` (B, N), the time (ms) until which each neuron is refractory
    (B, N), and the feedback inhibition (B, 1)."""

    u: torch.Tensor
    refractory_until: torch.Tensor
    inh: torch.Tensor


NeuronModel = Poisson | Rate | LIF


def poisson_counts(rate: torch.Tensor, uniform: torch.Tensor, dt: float) -> torch.Tensor:
    """Spike counts (int64, like ``rate``) of Poisson neurons firing at ``rate`` Hz over a step of
    ``dt`` ms: the inverse CDF of Poisson(``rate dt``) at ``uniform``, one variate per neuron.

    A Bernoulli draw with probability ``rate dt`` (Brian2's ``PoissonGroup``) is sub-Poisson by
    ``1 - rate dt``: at 6400 Hz and 0.1 ms it has a third of the variance. Here the count is exact
    at any ``dt`` for the rate held over the step. Most neurons are silent (``uniform <
    exp(-rate dt)``); only those that fire refine their count, so the cost stays that of a
    Bernoulli draw.
    """
    lam = rate * (dt * 1e-3)
    cdf = torch.exp(-lam)
    counts = (uniform >= cdf).to(torch.int64)
    fired = counts.nonzero(as_tuple=True)
    if len(fired[0]):
        lam_f, u_f, pmf = lam[fired], uniform[fired], cdf[fired]
        cdf_f, extra = pmf.clone(), torch.zeros_like(counts[fired])
        # k_max bounds the loop where float rounding stops the CDF short of u (far in the tail).
        k_max = int(float(lam_f.max()) + 10 * math.sqrt(float(lam_f.max())) + 10)
        for k in range(1, k_max):
            pmf = pmf * lam_f / k
            cdf_f = cdf_f + pmf
            more = u_f >= cdf_f
            if not bool(more.any()):
                break
            extra += more
        counts[fired] += extra
    return counts


def population_counts(rate: torch.Tensor, dt: float, seed: int, cue_ids: torch.Tensor, step: int) -> torch.Tensor:
    """Spike counts (int64, like ``rate`` (B, N)) of a population of Poisson neurons over one
    step, drawn by splitting: the population's count is Poisson(``sum rate dt``) and each of its
    spikes goes to neuron mu with probability ``rate_mu / sum rate``. The counts have exactly the
    law of independent per-neuron Poisson draws, but the random numbers cost O(B + spikes) instead
    of a hash per neuron (a softmax population fires ``r_max dt`` spikes per step in all). The
    variates are keyed on (seed, cue id, step, spike number), so the batch does not matter.
    """
    total = rate.sum(-1, keepdim=True)
    first = counter_uniform(seed, STREAM_MEMORY, cue_ids, step, 1, dtype=rate.dtype)
    k = poisson_counts(total, first, dt)[:, 0]
    counts = torch.zeros_like(rate, dtype=torch.int64)
    rows = k.nonzero(as_tuple=True)[0]
    if len(rows):
        k_rows = k[rows]
        u = counter_uniform(seed, STREAM_ALLOCATION, cue_ids[rows], step, int(k_rows.max()), dtype=rate.dtype)
        cdf = torch.cumsum(rate[rows], dim=-1)
        unit = torch.searchsorted(cdf, u * cdf[:, -1:], right=True).clamp_max(rate.shape[-1] - 1)
        valid = torch.arange(u.shape[1], device=rate.device) < k_rows[:, None]
        counts[rows] = torch.zeros_like(counts[rows]).scatter_add_(1, unit, valid.to(torch.int64))
    return counts


def lif_drive(h: torch.Tensor, p: LIF) -> torch.Tensor:
    """The LIF input current ``c(h) = bias + gain * z(h)`` (see :class:`LIF`)."""
    if p.normalize_drive:
        # The norm of the centred row, not torch.std_mean: 15 against 555 us for 64 x 1000 on CPU.
        centred = h - h.mean(-1, keepdim=True)
        std = torch.linalg.vector_norm(centred, dim=-1, keepdim=True) / math.sqrt(h.shape[-1])
        return torch.addcmul(torch.full_like(std, p.bias), centred, p.gain / std.clamp_min(torch.finfo(h.dtype).eps))
    return p.bias + p.gain * h


def lif_step(drive: torch.Tensor, state: LIFState, t: float, dt: float, p: LIF) -> tuple[torch.Tensor, LIFState]:
    """Advance LIF neurons by ``dt`` from time ``t`` with the input held over the step.

    The membrane relaxes exactly towards ``drive - inh - gamma(t)``; a neuron that reaches the
    threshold fires at ``t + dt`` and is reset. The population's spikes raise the inhibition for
    the next step.
    """
    inh = state.inh
    if p.gamma_amplitude > 0 and p.gamma_hz > 0:
        inh = inh + p.gamma_amplitude * 0.5 * (1.0 - math.cos(2 * math.pi * p.gamma_hz * t * 1e-3))
    # Exact relaxation towards drive - inh: u + (1 - decay) (target - u), as one lerp.
    relaxed = torch.lerp(state.u, drive - inh, 1.0 - math.exp(-dt / p.tau_m))
    u = torch.where(state.refractory_until <= t + 0.5 * dt, relaxed, state.u)  # half a step absorbs rounding
    spikes = u >= p.threshold
    u = u.masked_fill(spikes, p.reset)
    until = state.refractory_until.masked_fill(spikes, t + dt + p.refractory)
    inh = state.inh * math.exp(-dt / p.tau_inh) + p.w_inh * spikes.sum(-1, keepdim=True).to(u.dtype)
    return spikes, LIFState(u, until, inh)


# ----------------------------------------------------------------------------- configuration
_MODEL_CLASSES = {"poisson": Poisson, "lif": LIF, "rate": Rate}


@dataclass(frozen=True)
class SpikingMemory:
    """How the memory population spikes, and how the run is stepped.

    ``neuron``: :class:`Poisson`, :class:`LIF` or :class:`Rate` parameters. ``dt``: the step
    (ms). ``tau_s``: the synaptic time constant of the spike-to-value current (ms).
    ``value_rate``: None keeps the value neurons rate units; a rate in Hz makes them Poisson
    neurons firing at ``value_rate * g`` (``g`` clipped at 0), whose filtered spikes (``tau_s``)
    the memory neurons see instead of ``g``. ``path``: ``"dense"``, ``"memory"`` (the
    event-driven memory-space path) or ``"auto"`` (memory space where it applies).
    ``batch_tile``: cues per similarity evaluation on the dense path (fixed, for batch invariance).
    """

    neuron: NeuronModel = field(default_factory=Poisson)
    dt: float = 0.1
    tau_s: float = 5.0
    value_rate: float | None = None
    path: str = "auto"
    batch_tile: int = 16

    def __post_init__(self) -> None:
        if not isinstance(self.neuron, (Poisson, LIF, Rate)):
            raise ValueError(f"unknown neuron model {self.neuron!r}; known: {', '.join(MODELS)}")
        self.neuron.check()
        _check_positive("dt (ms)", self.dt)
        _check_positive("tau_s (ms)", self.tau_s)
        if self.value_rate is not None:
            _check_positive("value_rate (Hz)", self.value_rate)
        if self.path not in PATHS:
            raise ValueError(f"unknown spiking path {self.path!r}; known: {', '.join(PATHS)}")
        if self.batch_tile < 1:
            raise ValueError(f"batch_tile must be >= 1, got {self.batch_tile}")
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
        return {"model": self.model, **self.neuron._asdict(), "dt": self.dt, "tau_s": self.tau_s,
                "value_rate": self.value_rate, "path": self.path, "batch_tile": self.batch_tile}

    def check_network(self, network: Network) -> None:
        """Raise ``ValueError`` when the network's time constants do not fit ``dt``."""
        if not self.dt < network.tau_v:
            raise ValueError(f"dt ({self.dt:g} ms) must be smaller than the network's tau_v ({network.tau_v:g} ms)")
        if network.tau_h is not None:
            raise ValueError("spiking memory neurons replace the memory state h (their input is the instantaneous "
                             "similarity; LIF neurons have their own membrane tau_m): build the network with "
                             "tau_h=None")
        if network.sharded:
            raise ValueError("spiking populations run on one device; a sharded bank is not supported")

    def memory_path_reason(self, network: Network, cue: Cue) -> str | None:
        """Why the event-driven memory-space path does not apply (None: it does)."""
        if not network.similarity.bilinear:
            return f"the similarity {network.similarity.name} is not bilinear (dot or biased dot)"
        if not isinstance(network.value_lagrangian, Quadratic):
            return "the value neurons are not linear (g = v)"
        if cue.clamp is not None:
            return "clamped value units"
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
    params = {k: v for k, v in params.items() if v is not None}
    neuron_keys = set(cls._fields) & set(params)
    run_keys = set(SpikingMemory.__dataclass_fields__) - {"neuron"}
    unknown = set(params) - neuron_keys - run_keys
    if unknown:
        raise ValueError(f"unknown parameters {sorted(unknown)} for {model} spiking; known: "
                         f"{sorted(set(cls._fields) | run_keys)}")
    neuron = cls(**{k: params.pop(k) for k in neuron_keys})
    return SpikingMemory(neuron, **params)


# ----------------------------------------------------------------------------- stepping
def tiled(fn: Callable[..., torch.Tensor], tile: int, *xs: torch.Tensor) -> torch.Tensor:
    """``fn(*xs)`` for tensors ``xs`` with a common batch (first) dimension, evaluated in fixed
    tiles of ``tile`` rows, the last one zero-padded.

    BLAS picks its kernels and reduction orders by shape, so a row's product can differ in the
    last bit between batch sizes; evaluating in tiles of one fixed shape makes every row's
    result independent of the others (checked in tests/test_spiking.py).
    """
    batch = xs[0].shape[0]
    pad = (-batch) % tile
    if pad:
        xs = tuple(torch.cat([x, x.new_zeros(pad, *x.shape[1:])]) for x in xs)
    return torch.cat([fn(*(x[i:i + tile] for x in xs)) for i in range(0, batch + pad, tile)])[:batch]


def tiled_matmul(x: torch.Tensor, weight: torch.Tensor, tile: int) -> torch.Tensor:
    """``x @ weight`` in fixed tiles of ``tile`` rows, as one batched product: the same
    batch invariance as :func:`tiled` (every tile is one ``bmm`` slice of one shape) at nearly
    the speed of a single product (measured on 2 CPU cores, B = 64, I = 784: 0.81 vs 0.76 ms at
    N = 1,000 and 12.5 vs 11.3 ms at N = 10,000; a loop over tiles took 1.09 and 15.7 ms)."""
    batch = x.shape[0]
    pad = (-batch) % tile
    if pad:
        x = torch.cat([x, x.new_zeros(pad, x.shape[1])])
    n_tiles = x.shape[0] // tile
    out = torch.bmm(x.view(n_tiles, tile, x.shape[1]), weight.expand(n_tiles, *weight.shape))
    return out.view(n_tiles * tile, weight.shape[1])[:batch]


@dataclass
class SpikingStats:
    """Counts for one spiking run."""

    steps: int = 0
    spikes: int = 0
    value_clipped: int = 0  # value neuron-steps with g < 0 (spiking value neurons fire at 0)
    setup_time: float = 0.0  # of wall_time: initial state, and the Gram matrix on the memory path
    wall_time: float = 0.0


class _Exponential:
    """Exact integration over one step of ``tau_v dv/dt = s - v + I`` with ``tau_s ds/dt = -s``
    (the cascade of the synaptic and value filters), for ``v`` in value or memory space."""

    def __init__(self, dt: float, tau_v: float, tau_s: float) -> None:
        self.a_v, self.a_s = math.exp(-dt / tau_v), math.exp(-dt / tau_s)
        self.equal = math.isclose(tau_v, tau_s)
        self.dt_over_tau = dt / tau_v
        self.ratio = 1.0 if self.equal else tau_s / (tau_s - tau_v)
        self.k = self.k_of(self.a_v, self.a_s, 1)

    def over(self, steps: torch.Tensor) -> _Exponential:
        """The same filters over ``steps`` steps at once (a (R, 1) tensor of counts, one per row)."""
        out = _Exponential.__new__(_Exponential)
        out.a_v, out.a_s = self.a_v ** steps, self.a_s ** steps
        out.k = self.k_of(out.a_v, out.a_s, steps)
        return out

    def k_of(self, a_v: float | torch.Tensor, a_s: float | torch.Tensor,
             steps: int | torch.Tensor) -> float | torch.Tensor:
        """The cascade gain over ``steps`` steps given the decays over them."""
        if self.equal:
            return steps * self.dt_over_tau * a_v
        return self.ratio * (a_s - a_v)

    def decaying(self, v: torch.Tensor, s: torch.Tensor, current: torch.Tensor | float) -> torch.Tensor:
        """``v`` after a step driven by a synaptic current ``s`` that decays over the step."""
        out = torch.add(self.a_v * v, s, alpha=self.k) if isinstance(self.k, float) else self.a_v * v + self.k * s
        return out if isinstance(current, float) and current == 0.0 else out + (1 - self.a_v) * current

    def held(self, v: torch.Tensor, s: torch.Tensor, current: torch.Tensor | float) -> torch.Tensor:
        """``v`` after a step driven by an input ``s`` held constant over the step (the
        normalized read-out: numerator and denominator decay alike)."""
        return torch.lerp(s + current, v, self.a_v)


class SpikingRun:
    """A running spiking simulation: iterate it for :class:`~neurodyn.solve.Block` records
    of ``v`` on the recording grid; read ``spikes``, ``counts`` and ``stats`` as it goes.

    ``times``: the recording grid (ms, multiples of ``dt``). ``cue_ids``: the global ids that key
    the random numbers (default ``0..B-1``). ``count_units``: memory units whose spike counts per
    recording bin are kept (None: none; the population total is always kept). ``keep_events``:
    keep every spike (time, cue, unit) for :meth:`spike_events`.
    """

    def __init__(self, network: Network, cue: Cue, spiking: SpikingMemory, times: torch.Tensor, seed: int,
                 cue_ids: torch.Tensor | None = None, count_units: torch.Tensor | None = None,
                 keep_events: bool = True) -> None:
        self._started = time.perf_counter()  # wall_time counts the set-up too (the Gram matrix)
        spiking.check_network(network)
        if not (isinstance(seed, int) and seed >= 0):
            raise ValueError(f"a spiking run needs a seed >= 0 (its random numbers are keyed on it), got {seed!r}")
        self.network, self.cue, self.spiking, self.seed = network, cue, spiking, seed
        self.device, self.dtype = network.memories.device, network.memories.dtype
        batch = cue.batch
        ids = torch.arange(batch) if cue_ids is None else torch.as_tensor(cue_ids)
        self.cue_ids = ids.to(self.device, torch.int64)
        if self.cue_ids.shape != (batch,):
            raise ValueError(f"cue_ids must have one id per cue ({batch}), got shape {tuple(self.cue_ids.shape)}")
        if len(torch.unique(self.cue_ids)) != batch:
            raise ValueError("cue_ids must be distinct: two cues with one id would draw the same random numbers")
        grid = times.detach().double().cpu()
        steps = grid / spiking.dt
        # The grid may be float32: allow its rounding (1e-4 of a step), not a real mismatch.
        if (steps - steps.round()).abs().max() > 1e-4 or grid[0] != 0:
            raise ValueError(f"the recording times must start at 0 and be multiples of dt={spiking.dt:g} ms; "
                             "choose n_times (or times) accordingly")
        self.times = times
        self.record_steps = steps.round().long().tolist()
        reason = spiking.memory_path_reason(network, cue)
        if spiking.path == "memory" and reason is not None:
            raise ValueError(f"the memory-space path does not apply: {reason}; use path='dense'")
        self.path = "memory" if spiking.path in ("memory", "auto") and reason is None else "dense"
        self.filters = _Exponential(spiking.dt, network.tau_v, spiking.tau_s)
        self.count_units, self.keep_events = count_units, keep_events
        self.stats = SpikingStats()
        self.spikes: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # (step, cue, unit), on CPU
        self.counts: list[torch.Tensor] = []  # population counts per bin (B,)
        self.unit_counts: list[torch.Tensor] = []  # counts of count_units per bin (B, U)
        self.normalized_readout = isinstance(spiking.neuron, LIF) and spiking.neuron.readout_rate is None
        self.gradient_drive = network.dynamics == "gradient" and not network.similarity.bilinear
        self._setup()
        self.stats.setup_time = time.perf_counter() - self._started

    # ------------------------------------------------------------------ state
    def _weights(self, h: torch.Tensor) -> torch.Tensor:
        """The separation ``f`` the Poisson rates follow (UHN-normalized when the network is)."""
        f = self.network.normalized(self.network.separate(h))
        if (f < 0).any():
            raise ValueError(f"the separation {self.network.separation.describe()} gives negative "
                             "activations, which cannot be firing rates")
        return f

    def _spike_weight(self) -> float:
        """What one spike adds to the synaptic input (times ``P_mu``)."""
        neuron = self.spiking.neuron
        rate = neuron.r_max if isinstance(neuron, Poisson) else neuron.readout_rate
        return 1.0 if rate is None else 1e3 / (rate * self.spiking.tau_s)

    def _setup(self) -> None:
        net, cue, sp = self.network, self.cue, self.spiking
        batch, n = cue.batch, net.n_memories
        self.v0 = cue.v0
        self.current = cue.current if cue.current is not None else 0.0
        zeros = torch.zeros(batch, n, dtype=self.dtype, device=self.device)
        self.n_hat = torch.zeros(batch, 1, dtype=self.dtype, device=self.device)  # filtered spike count
        cue_weight = 0.0  # what the cue's own synaptic input s0 = v0 - I weighs in s(0)
        self.value_trace = None
        if sp.value_rate is not None:
            self.value_trace = net.activation(cue.v0).clamp_min(0.0)
        # A bilinear similarity is M g + sim(M, 0): one product and a bias.
        self.bias = None
        if net.similarity.bilinear:
            self.bias = net.scores(torch.zeros(1, net.n_features, dtype=self.dtype, device=self.device))
        g0 = self._value_output(cue.v0)
        h0 = self._scores(g0)
        if isinstance(sp.neuron, LIF):
            self.lif = LIFState(torch.full_like(zeros, sp.neuron.reset), torch.full_like(zeros, -math.inf),
                                zeros[:, :1].clone())
            f0 = zeros
            cue_weight = sp.neuron.cue_weight
            if self.normalized_readout:
                self.n_hat = self.n_hat + cue_weight
        else:
            f0 = self._weights(h0)  # s(0): the mean-field equilibrium of the synapse given v(0)
        s0 = cue.v0 if cue.current is None else cue.v0 - cue.current
        # v and s in value space: stepped on the dense path; on the memory path advanced lazily
        # (``last``: the step each cue's v and s stand at). A normalized read-out keeps s / n_hat.
        self.v = cue.v0.clone()
        self.s = self._dense_input(f0, g0) + cue_weight * s0
        if self.normalized_readout and cue_weight > 0:
            self.s = self.s / cue_weight
        if self.path == "memory":
            self.last = torch.zeros(batch, 1, dtype=torch.int64, device=self.device)
            self.gram = net.P @ net.memories.T  # K[mu] = M P_mu: what a spike of mu adds to z = M s
            self.y = tiled_matmul(cue.v0, net.memories.T, sp.batch_tile)  # M v0
            self.y_current = 0.0 if cue.current is None else tiled_matmul(cue.current, net.memories.T,
                                                                           sp.batch_tile)
            self.z = tiled_matmul(self.s, net.memories.T, sp.batch_tile)  # M s (or M s / n_hat)

    def _value_output(self, v: torch.Tensor) -> torch.Tensor:
        """What the memory neurons see: ``g`` or the filtered value spikes."""
        return self.network.activation(v) if self.value_trace is None else self.value_trace

    def _scores(self, g: torch.Tensor) -> torch.Tensor:
        """``sim(M, g)`` in fixed tiles (a bilinear similarity as one batched product plus its bias)."""
        tile = self.spiking.batch_tile
        if self.bias is not None:
            return tiled_matmul(g, self.network.memories.T, tile) + self.bias
        return tiled(self.network.scores, tile, g)

    def _memory_input(self) -> torch.Tensor:
        if self.path == "memory":
            return self.y + self.bias
        return self._scores(self._value_output(self.v))

    def value_state(self) -> torch.Tensor:
        """``v`` now (on the memory path, every cue's ``v`` is first brought up to date)."""
        if self.path == "memory":
            self._catch_up(torch.arange(self.cue.batch, device=self.device))
            return self.v.clone()  # updated in place later: the records must not alias it
        return self.v

    def _catch_up(self, rows: torch.Tensor) -> None:
        """Advance the value-space ``v`` and ``s`` of cues ``rows`` (memory path) in closed form
        from their last update to the current step: exact, as the input is a decaying (or, for a
        normalized read-out, constant) synaptic current between spikes."""
        steps = self.stats.steps - self.last[rows]
        if not bool((steps > 0).any()):
            return
        fl = self.filters.over(steps.to(self.dtype))
        current = self.current if isinstance(self.current, float) else self.current[rows]
        v, s = self.v[rows], self.s[rows]
        if self.normalized_readout:
            self.v[rows] = fl.held(v, s, current)
        else:
            self.v[rows] = fl.decaying(v, s, current)
            self.s[rows] = fl.a_s * s
        self.last[rows] = self.stats.steps

    # ------------------------------------------------------------------ one step
    def _memory_spikes(self, h: torch.Tensor, step: int, t: float) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Spike counts per neuron (int64) and, for the mean field, the expected counts instead."""
        sp = self.spiking
        neuron = sp.neuron
        if isinstance(neuron, LIF):
            spikes, self.lif = lif_step(lif_drive(h, neuron), self.lif, t, sp.dt, neuron)
            return spikes.to(torch.int64), None
        f = self._weights(h)
        if isinstance(neuron, Rate):
            return torch.zeros_like(f, dtype=torch.int64), f * (sp.dt / sp.tau_s)
        return population_counts(neuron.r_max * f, sp.dt, self.seed, self.cue_ids, step), None

    def _value_spikes(self, step: int) -> None:
        """Advance the filtered spike trains of Poisson value neurons (when they spike)."""
        sp = self.spiking
        g = self.network.activation(self.value_state())
        self.stats.value_clipped += int((g < 0).sum())
        uniform = counter_uniform(self.seed, STREAM_VALUE, self.cue_ids, step, g.shape[-1], dtype=g.dtype)
        counts = poisson_counts(sp.value_rate * g.clamp_min(0.0), uniform, sp.dt)
        a_s = self.filters.a_s
        self.value_trace = a_s * self.value_trace + counts.to(g.dtype) * (1e3 / (sp.value_rate * sp.tau_s))

    def step(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Advance from ``t = step dt`` to ``t + dt``; returns the spikes emitted at ``t + dt`` as
        (cue index, unit) pairs, ordered by cue then unit (a neuron that fired twice, twice)."""
        sp = self.spiking
        t = step * sp.dt
        h = self._memory_input()
        counts, expected = self._memory_spikes(h, step, t)
        # v over (t, t + dt] from the synaptic input at t; then the spikes at t + dt.
        if self.path == "dense":
            v = self._advance(self.v, self.s, self.current)
            if self.cue.clamp is not None:
                v = torch.where(self.cue.clamp, self.v0, v)
            self.v = v
        else:
            self.y = self._advance(self.y, self.z, self.y_current)
        self._decay_synapses()
        self.stats.steps += 1
        cues, units = counts.nonzero(as_tuple=True)
        if len(cues) and isinstance(self.spiking.neuron, Poisson):
            repeats = counts[cues, units]
            if bool((repeats > 1).any()):
                cues, units = cues.repeat_interleave(repeats), units.repeat_interleave(repeats)
        if expected is not None:
            self._add_expected(expected)
        elif len(cues):
            self._add_spikes(counts, cues, units)
        if self.value_trace is not None:
            self._value_spikes(step)
        return cues, units

    def _advance(self, x: torch.Tensor, syn: torch.Tensor, current: torch.Tensor | float) -> torch.Tensor:
        """One step of ``v`` (or ``y = M v``) with the synaptic input ``syn`` (a normalized
        read-out holds ``s / n_hat``, constant between spikes)."""
        if self.normalized_readout:
            return self.filters.held(x, syn, current)
        return self.filters.decaying(x, syn, current)

    def _decay_synapses(self) -> None:
        """The synaptic filter over one step (a normalized read-out's ratio does not decay)."""
        a_s = self.filters.a_s
        self.n_hat = a_s * self.n_hat
        if self.normalized_readout:
            return
        if self.path == "dense":
            self.s = a_s * self.s
        else:
            self.z = a_s * self.z

    def _dense_input(self, weights: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """The value-space input of memory activity ``weights`` (B, N): ``P' weights``, or with
        gradient dynamics of a non-bilinear similarity ``sum_mu weights_mu d sim(M_mu, g)/dg``
        (UHN eq. 2 with ``f`` replaced by the spikes)."""
        net, tile = self.network, self.spiking.batch_tile
        if self.gradient_drive:
            return tiled(net.drive, tile, g, weights)
        return tiled_matmul(weights, net.P, tile)

    def _add_expected(self, expected: torch.Tensor) -> None:
        if self.path == "memory":  # the mean field changes s every step: nothing to gain from laziness
            self._catch_up(torch.arange(self.cue.batch, device=self.device))
            self.z = self.z + tiled_matmul(expected, self.gram.T, self.spiking.batch_tile)
        self.s = self.s + self._dense_input(expected, self._value_output(self.v))

    def _add_spikes(self, counts: torch.Tensor, cues: torch.Tensor, units: torch.Tensor) -> None:
        """Gather the rows of ``P`` (dense) or ``K`` (memory space) of the neurons that fired.

        ``index_add`` adds each cue's rows in the order of ``nonzero`` (by unit), so a cue's sum
        does not depend on the other cues in the batch.
        """
        w = self._spike_weight()
        fired = torch.unique_consecutive(cues)  # cues come sorted from nonzero
        if self.path == "memory":
            self._catch_up(fired)
        if self.normalized_readout:  # back to sums, add, and divide by the new count
            old = self.n_hat[fired]
            self.n_hat = self.n_hat.index_add(0, cues, torch.ones(len(cues), 1, dtype=self.dtype, device=self.device))
            scale = old / self.n_hat[fired]
            self.s[fired] *= scale
            self.s = self.s.index_add(0, cues, self.network.P[units] / self.n_hat[cues])
            if self.path == "memory":
                self.z[fired] *= scale
                self.z = self.z.index_add(0, cues, self.gram[units] / self.n_hat[cues])
        elif self.gradient_drive:
            self.s = self.s + w * self._dense_input(counts.to(self.dtype), self._value_output(self.v))
        else:
            self.s = self.s.index_add(0, cues, self.network.P[units], alpha=w)
            if self.path == "memory":
                self.z = self.z.index_add(0, cues, self.gram[units], alpha=w)

    # ------------------------------------------------------------------ the loop
    def __iter__(self) -> Iterator[Block]:
        start = self._started
        yield Block(self.times[:1], self.value_state()[None], None)
        batch, step = self.cue.batch, 0
        for k in range(1, len(self.record_steps)):
            events = []
            while step < self.record_steps[k]:
                cues, units = self.step(step)
                step += 1
                if len(cues):
                    events.append((torch.full_like(cues, step), cues, units))
            events_cpu = [tuple(x.cpu() for x in e) for e in events]
            cues = torch.cat([e[1] for e in events_cpu]) if events else torch.zeros(0, dtype=torch.long)
            self.counts.append(torch.bincount(cues, minlength=batch))
            if self.count_units is not None:
                units = torch.cat([e[2] for e in events_cpu]) if events else torch.zeros(0, dtype=torch.long)
                position = torch.full((self.network.n_memories,), -1, dtype=torch.long)
                position[self.count_units] = torch.arange(len(self.count_units))
                keep = position[units] >= 0
                flat = cues[keep] * len(self.count_units) + position[units][keep]
                self.unit_counts.append(torch.bincount(flat, minlength=batch * len(self.count_units))
                                        .reshape(batch, -1))
            if self.keep_events:
                self.spikes.extend(events_cpu)
            self.stats.spikes += len(cues)
            v = self.value_state()
            if not torch.isfinite(v).all():
                raise FloatingPointError(f"the value state became NaN or infinite by t={float(self.times[k]):g} ms")
            self.stats.wall_time = time.perf_counter() - start
            yield Block(self.times[k:k + 1], v[None], None)

    def spike_events(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """All spikes so far as (time in ms, cue index, unit), sorted by time, cue, unit."""
        if not self.spikes:
            empty = torch.zeros(0, dtype=torch.long)
            return empty.double(), empty, empty
        steps, cues, units = (torch.cat(parts) for parts in zip(*self.spikes))
        return steps.double() * self.spiking.dt, cues, units
