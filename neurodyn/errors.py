"""The errors neurodyn raises on purpose, and the command line's exit status for each kind.

The policy (docs/decisions.md, "Error policy"): an expected failure is raised as one of these
(or as ``ValueError`` / ``FileNotFoundError``, which the CLI treats as bad input), with a message
that names the option, value or file and says what to do; the CLI prints it as one line,
``neurodyn COMMAND: error: MESSAGE``, and exits with the status below. Any other exception is a
bug: the CLI lets its traceback through (``--debug`` shows the traceback of expected failures
too).

=====  ===================================================================================
 0     success
 1     a bug (a traceback)
 2     bad input: an argument, a value, an input file (missing, truncated, corrupt), a model
       the theory refuses, a solver that cannot integrate (the torchdiffeq engine)
 3     the run finished and its file is written, but some cues failed
 4     the output cannot be written: it exists (without ``--overwrite``), another process is
       writing it, or its place is not writable
 5     a resource is unavailable: the device, the scheduler, the sweep's workers
 130   interrupted (Ctrl-C); 143 terminated (SIGTERM): nothing half-written is left behind
=====  ===================================================================================
"""

from __future__ import annotations

import math
import numbers
from pathlib import Path

BAD_INPUT, CUES_FAILED, OUTPUT, RESOURCE = 2, 3, 4, 5


class NeurodynError(Exception):
    """Base of the errors neurodyn raises on purpose; ``exit_code`` is the CLI's status."""

    exit_code = BAD_INPUT


class InputFileError(NeurodynError, ValueError):
    """An input file (data set, weights, checkpoint, saved run, sweep store) that cannot be read
    as what it should be: the message names the file, what is wrong and how to get a good one."""

    def __init__(self, path: str | Path, problem: str, remedy: str = "") -> None:
        self.path = Path(path)
        super().__init__(f"{self.path}: {problem}" + (f"; {remedy}" if remedy else ""))


class OutputError(NeurodynError):
    """An output that cannot be written: it exists, another process holds it, or its place is
    not writable. Raised before any work wherever the output is known up front."""

    exit_code = OUTPUT


class OutputExists(OutputError, FileExistsError):
    """An output that exists where a new one was asked for (``--overwrite`` / ``overwrite=True``
    replaces a file; a streamed run always starts a new store)."""


class ResourceUnavailable(NeurodynError, RuntimeError):
    """A device, scheduler or worker that the run needs is not there."""

    exit_code = RESOURCE


class RecordTooLarge(NeurodynError, ValueError):
    """A run whose in-memory record would exceed its monitor's bound, refused before it starts.
    ``sizes``: bytes per recorded variable; ``limit``: the bound (bytes)."""

    def __init__(self, sizes: dict[str, int], limit: int) -> None:
        self.sizes, self.limit = sizes, limit
        super().__init__(f"the record would take {self.described()}, over Monitor.max_bytes = {megabytes(limit)}: "
                         "record fewer times (n_times), a subset of units (units=) or of memories (memories=, "
                         "top_k=), overlaps with fewer patterns (overlap_with=), stream it to Zarr "
                         "(store=ZarrStore(...)), or raise max_bytes (None: no bound)")

    def described(self) -> str:
        """The total and the largest variables, in MB."""
        largest = sorted(self.sizes.items(), key=lambda item: -item[1])[:3]
        return (f"{megabytes(sum(self.sizes.values()))} ("
                + ", ".join(f"{name} {megabytes(size)}" for name, size in largest) + ")")


def megabytes(size: int) -> str:
    return f"{size / 2**20:.3g} MB"


class SolverError(RuntimeError):
    """The solver could not integrate the system to its tolerance (bad input to the CLI: the
    model, its scale or the tolerances)."""


class SolverWarning(RuntimeWarning):
    """Some cues could not be integrated; the others finished (their statuses say which)."""


def whole_number(name: str, value: object, minimum: int) -> int:
    """``value`` checked as a whole number >= ``minimum``; a ``ValueError`` naming the setting
    otherwise (a bool, a float or a string is not one)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return int(value)


def positive_number(name: str, value: object) -> float:
    """``value`` checked as a finite number > 0; a ``ValueError`` naming the setting otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (math.isfinite(float(value))
                                                                              and float(value) > 0):
        raise ValueError(f"{name} must be > 0 and finite, got {value!r}")
    return float(value)
