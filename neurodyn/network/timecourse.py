"""An input current that varies in time, as Brian2's ``TimedArray`` drives a neuron group.

A cue in ``"current"`` or ``"both"`` mode drives the value neurons with ``I = strength * q``
(DESIGN.md section 2, "Cues"). A :class:`Timecourse` scales it in time::

    I(t) = s(t) * strength * q

so the entorhinal drive can switch on and off, ramp, or follow any recorded signal. ``s`` is
a gain given on a time grid (an ``xarray.DataArray`` with a ``time`` dimension and, where it
differs between cues or units, ``cue`` and ``unit`` dimensions), interpolated linearly or held
from one grid time to the next (``interpolation="previous"``, Brian2's ``TimedArray``), and held
at its end values outside the grid; or a function of time.

The solvers step onto the grid's times, where the gain has a kink or a jump, so an adaptive step
neither straddles a switch nor steps over a short pulse; after a jump the derivative is taken
afresh (:mod:`neurodyn.solve.per_cue`). A function has no grid: a discontinuous one is resolved
only by step-size control, which can step over a pulse shorter than its step; give such an input
as a grid.

The energy of a time-varying input is not a Lyapunov function: ``dE/dt = -g . dI/dt + (terms
<= 0)``, so it can rise while the input changes, and it falls wherever the input is constant
(:func:`~neurodyn.network.theory.lyapunov_obstacles`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

INTERPOLATIONS = ("linear", "previous")
#: The dimensions a gain on a grid may have besides ``time``, in this order.
GAIN_DIMS = ("cue", "unit")


@dataclass(frozen=True, eq=False)
class Timecourse:
    """The time course ``s(t)`` of a cue's input current, ``I(t) = s(t) * strength * q``.

    ``gain``: the gains on a time grid, (T,), (T, cue) or (T, cue, unit) (``dims`` names its
    dimensions when it is (T, unit): one gain per value neuron, the same for every cue), at the
    increasing ``times`` (T,) on the run's clock, in the run's time units; or a function ``s(t)``
    of a tensor of times returning the gains, a tensor of the same shape (one gain for every
    cue and unit). ``interpolation``: ``"linear"`` between grid times, or ``"previous"`` (each
    value holds until the next grid time, as Brian2's ``TimedArray``). Outside its grid the gain
    keeps its first and last values. :meth:`from_dataarray` takes the grid as an
    ``xarray.DataArray``; ``Cues(timecourse=...)`` takes either form.
    """

    gain: Any
    times: Any = None
    interpolation: str = "linear"
    dims: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"unknown interpolation {self.interpolation!r}; known: {', '.join(INTERPOLATIONS)}")
        if hasattr(self.gain, "dims") and self.times is None:  # a DataArray
            made = Timecourse.from_dataarray(self.gain, self.interpolation)
            for name in ("gain", "times", "dims"):
                object.__setattr__(self, name, getattr(made, name))
            return
        if callable(self.gain):
            if self.times is not None or self.interpolation != "linear":
                raise ValueError("times and interpolation belong to a gain on a time grid, not to a function of time")
            return
        values = np.asarray(self.gain)
        if values.dtype.kind not in "biuf" or values.ndim not in (1, 2, 3) or len(values) == 0:
            raise ValueError(f"a timecourse's gain must be a function of time or real numbers of shape (T,), "
                             f"(T, cue) or (T, cue, unit), got {values.dtype} values of shape {values.shape}")
        if not np.all(np.isfinite(values)):
            raise ValueError("a timecourse's gain must hold finite numbers")
        times = np.asarray(self.times if self.times is not None else [], dtype=float).reshape(-1)
        if len(times) != len(values) or not np.all(np.isfinite(times)) or np.any(np.diff(times) <= 0):
            raise ValueError(f"a timecourse needs one finite, increasing time per gain ({len(values)}), "
                             f"got times {times.tolist()[:8]}")
        dims = self.dims if self.dims is not None else ("time", *GAIN_DIMS)[:values.ndim]
        if len(dims) != values.ndim or dims[0] != "time" or not set(dims[1:]) <= set(GAIN_DIMS) \
                or len(set(dims)) != len(dims):
            raise ValueError(f"a timecourse's gain has dimensions time, and optionally cue and unit; got {dims}")
        object.__setattr__(self, "gain", values.astype(float))
        object.__setattr__(self, "times", times)
        object.__setattr__(self, "dims", tuple(dims))

    @classmethod
    def from_dataarray(cls, gain: Any, interpolation: str = "linear") -> Timecourse:
        """The gain as an ``xarray.DataArray`` with a ``time`` dimension and coordinate and,
        optionally, ``cue`` and ``unit`` dimensions."""
        dims = tuple(str(d) for d in gain.dims)
        if "time" not in dims or "time" not in gain.coords:
            raise ValueError("a timecourse's DataArray needs a 'time' dimension and coordinate (the times its "
                             f"gains hold at), got dimensions {dims}")
        order = ["time", *[d for d in GAIN_DIMS if d in dims]]
        extra = [d for d in dims if d not in order]
        if extra:
            raise ValueError(f"a timecourse's gain has dimensions time, and optionally cue and unit; got "
                             f"{', '.join(extra)} too")
        gain = gain.transpose(*order)
        return cls(np.asarray(gain.values), np.asarray(gain["time"].values, dtype=float), interpolation, tuple(order))

    @classmethod
    def steps(cls, values: Any, dt: float, start: float = 0.0) -> Timecourse:
        """Brian2's ``TimedArray(values, dt)``: ``values[k]`` holds from ``start + k dt`` to the
        next step (values (T,), (T, cue) or (T, cue, unit))."""
        if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
            raise ValueError(f"dt must be a positive number, got {dt!r}")
        values = np.asarray(values)
        return cls(values, start + dt * np.arange(len(values)), "previous")

    @classmethod
    def pulse(cls, on: float, off: float, gain: float = 1.0) -> Timecourse:
        """The input switched on at ``on`` and off at ``off`` (gain 0 outside)."""
        if not (math.isfinite(on) and math.isfinite(off) and 0 <= on < off):
            raise ValueError(f"a pulse needs 0 <= on < off, got on={on!r}, off={off!r}")
        if on == 0:
            return cls(np.array([gain, 0.0]), np.array([on, off]), "previous")
        return cls(np.array([0.0, gain, 0.0]), np.array([0.0, on, off]), "previous")

    def __repr__(self) -> str:
        return f"Timecourse({self.describe()})"

    def describe(self) -> str:
        """One line: the grid (its span and interpolation) or the function's name."""
        if callable(self.gain):
            return f"function {getattr(self.gain, '__module__', '?')}:{getattr(self.gain, '__qualname__', '?')}"
        return f"{len(self.times)} times from {self.times[0]:g} to {self.times[-1]:g}, {self.interpolation}"

    def gain_at(self, times: np.ndarray) -> np.ndarray:
        """The gain at ``times`` (T,), shaped (T, ...) as the grid's other dimensions (a
        function's: (T,))."""
        t = torch.as_tensor(np.array(times, dtype=float), dtype=torch.float64)
        if callable(self.gain):
            return np.asarray(self.gain(t), dtype=float)
        return _GridGain(self, torch.zeros((), dtype=torch.float64), 0.0).at(t).numpy()

    def bind(self, batch: int, n_features: int, like: torch.Tensor, offset: float = 0.0) -> BoundGain:
        """The gain for a run of ``batch`` cues of ``n_features`` units on ``like``'s device and
        dtype, on the solver's clock (the run's clock less ``offset``); checks the grid's
        dimensions against the cues before any work."""
        if callable(self.gain):
            return _FunctionGain(self, like, offset)
        assert self.dims is not None
        for axis, dim in enumerate(self.dims):
            size, what = (batch, "cues") if dim == "cue" else (n_features, "value neurons")
            if axis and self.gain.shape[axis] != size:
                raise ValueError(f"the timecourse has {self.gain.shape[axis]} entries along {dim!r}, the run "
                                 f"{size} {what}")
        return _GridGain(self, like, offset)


def as_timecourse(given: Any) -> Timecourse:
    """A :class:`Timecourse` from what ``Cues.timecourse`` takes: a Timecourse, a DataArray on a
    time grid (interpolated linearly) or a function of time."""
    if isinstance(given, Timecourse):
        return given
    if (hasattr(given, "dims") and hasattr(given, "coords")) or callable(given):
        return Timecourse(given)
    raise ValueError(f"a timecourse is a Timecourse, an xarray.DataArray on a time grid or a function of time, "
                     f"got {type(given).__name__}")


def saved_timecourse(gain: Any) -> Timecourse:
    """The time course a run saved as ``input_gain`` (on its ``input_time`` dimension); a
    function's is refused: only its samples are in the file."""
    if "function" in gain.attrs:
        raise ValueError(f"the run's input current followed the {gain.attrs['function']}, which the file holds "
                         "only as samples; continue it with Cues.continuing(ds, timecourse=Timecourse(that_function))")
    return Timecourse.from_dataarray(gain.rename(input_time="time"), str(gain.attrs.get("interpolation", "linear")))


class BoundGain:
    """A timecourse bound to a run: the gain at solver times, and what the solver must know of
    it (where it has kinks or jumps, and from when it is constant)."""

    #: The time course bound (what the run records and its fingerprint hashes).
    course: Timecourse

    #: Times (float64, on the solver's clock) the solver steps onto, or None.
    breaks: torch.Tensor | None = None
    #: Whether the gain jumps at ``breaks`` (held values) rather than bending (linear ones).
    jumps: bool = False
    #: The solver time after which the gain no longer changes (inf: unknown).
    constant_after: float = math.inf

    def __call__(self, t: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
        """The gain at solver times ``t`` (scalar or (b,)) for the cues ``rows`` (None: all),
        shaped to broadcast against currents (b, I)."""
        raise NotImplementedError


class _FunctionGain(BoundGain):
    def __init__(self, course: Timecourse, like: torch.Tensor, offset: float) -> None:
        self.course, self.like, self.offset = course, like, offset

    def __call__(self, t: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=torch.float64, device=self.like.device)
        out = torch.as_tensor(self.course.gain(t + self.offset)).to(self.like)
        if out.shape != t.shape:
            raise ValueError(f"the timecourse function must return one gain per time, shape {tuple(t.shape)}, "
                             f"got {tuple(out.shape)}")
        return out[..., None] if out.ndim else out


class _GridGain(BoundGain):
    """A gain on a grid, as tensors (K, cues or 1, units or 1)."""

    def __init__(self, course: Timecourse, like: torch.Tensor, offset: float) -> None:
        assert course.dims is not None
        self.course = course
        values = torch.as_tensor(course.gain, dtype=like.dtype, device=like.device)
        self.per_cue = "cue" in course.dims
        if not self.per_cue:
            values = values.unsqueeze(1)
        if "unit" not in course.dims:
            values = values.unsqueeze(-1)
        self.values = values  # (K, cues or 1, units or 1)
        self.times = torch.as_tensor(course.times - offset, dtype=torch.float64, device=like.device)
        self.linear = course.interpolation == "linear"
        self.breaks, self.jumps = self.times, not self.linear
        self.constant_after = float(self.times[-1])

    def _segments(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """For times ``t`` (n,): the grid index at or before each, the one after, and the weight of
        the one after (None when the values are held)."""
        last = len(self.times) - 1
        k = (torch.searchsorted(self.times, t, right=True) - 1).clamp(0, last)
        if not self.linear or last == 0:
            return k, k, None
        k1 = (k + 1).clamp(max=last)
        w = ((t - self.times[k]) / (self.times[k1] - self.times[k]).clamp_min(1e-300)).clamp(0.0, 1.0)
        return k, k1, w.to(self.values.dtype)

    def at(self, t: torch.Tensor) -> torch.Tensor:
        """The gain at times ``t`` (T,) for every cue, (T, ...) as the grid's dimensions."""
        k, k1, w = self._segments(t.to(self.times))
        out = self.values[k] if w is None else torch.lerp(self.values[k], self.values[k1], w[:, None, None])
        out = out if self.per_cue else out.squeeze(1)
        return out.squeeze(-1) if self.values.shape[-1] == 1 else out

    def __call__(self, t: torch.Tensor, rows: torch.Tensor | None) -> torch.Tensor:
        values = self.values if rows is None or not self.per_cue else self.values[:, rows]
        t = torch.as_tensor(t, dtype=torch.float64, device=self.times.device)
        if t.ndim == 0:  # one time for the whole batch
            t = t.expand(values.shape[1])
        k, k1, w = self._segments(t)
        cue = torch.arange(len(t), device=t.device) if self.per_cue else torch.zeros_like(k)
        out = values[k, cue]
        return out if w is None else torch.lerp(out, values[k1, cue], w[:, None])
