"""The ``neurodyn`` command: ``neurodyn recall`` runs a recall experiment, ``neurodyn inspect``
summarizes a saved run.

``neurodyn recall`` with no options stores 100 of scikit-learn's digits in a modern Hopfield
network with the Euclidean similarity (preset ``mchn-l2``), masks the bottom quarter of each
(the UHN authors' masking), integrates the dynamics to a steady state, writes
``runs/recall.nc`` and ``runs/recall.png`` and prints a summary.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import warnings
from types import FrameType
from typing import NoReturn

from .. import __version__, names
from ..errors import BAD_INPUT, NeurodynError, SolverError, SolverWarning
from .arguments import POSITIVE, DefaultsOnce, count, recall_parser


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="neurodyn", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"neurodyn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    recall_parser(sub, "cmd_recall")
    p = sub.add_parser("sweep", help="run a parameter grid on Dask into one Zarr store (resumable)",
                       formatter_class=DefaultsOnce)
    p.add_argument("config", help="a TOML file with [sweep], [grid], [zip.NAME] and [fixed] tables")
    p.add_argument("--store", default=None, help="the Zarr store (default: [sweep] store, or runs/sweep.zarr)")
    p.add_argument("--scheduler", default=None, help="address of a running Dask scheduler (default: a LocalCluster)")
    p.add_argument("--workers", type=count(0), default=2,
                   help="LocalCluster worker processes (0: run in this process)")
    p.add_argument("--threads", type=count(1), default=1, help="threads per worker (and torch threads per task)")
    p.add_argument("--retry-failed", action="store_true", help="recompute points that failed before")
    p.set_defaults(run="cmd_sweep")
    p = sub.add_parser("experiment", help="reproduce a paper's figure or table: grid, Dataset, figure, report",
                       formatter_class=DefaultsOnce)
    p.add_argument("name", nargs="?", default=None, help="experiment name (none: list them)")
    p.add_argument("--quick", action="store_true", help="a reduced grid that runs in seconds to minutes")
    p.add_argument("--out", default="runs", help="folder for NAME.zarr, NAME.nc, NAME.png and NAME.md")
    p.add_argument("--scheduler", default=None, help="address of a running Dask scheduler (default: a LocalCluster)")
    p.add_argument("--workers", type=count(0), default=2,
                   help="LocalCluster worker processes (0: run in this process)")
    p.add_argument("--threads", type=count(1), default=1, help="threads per worker (and torch threads per task)")
    p.add_argument("--data", default=None, help="run it on this data set (a name or an .npz file) instead of "
                   "the paper's; short for --set data=...")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="set a parameter of the grid: one value (NAME=60) or a list (NAME=10,100,500); "
                        "repeatable; the outputs are named after the changes and the report lists them")
    p.add_argument("--overrides", default=None, help="a TOML file whose [grid], [zip.NAME] and [fixed] tables "
                   "replace the experiment's entries")
    p.set_defaults(run="cmd_experiment")
    p = sub.add_parser("train-codec", help="train one of the project's codecs on real data, save its checkpoint",
                       formatter_class=DefaultsOnce)
    p.add_argument("name", choices=("mnist-ae12", "vqae", "simclr"), help="which codec to train")
    p.add_argument("--data-root", default=None, help=f"data root (default: ${names.DATA_ENV})")
    p.add_argument("--epochs", type=count(1), default=None, help="default: the recipe's")
    p.add_argument("--batch-size", type=count(1), default=None, help="default: the recipe's")
    p.add_argument("--lr", type=POSITIVE, default=None, help="default: the recipe's")
    p.add_argument("--seed", type=int, default=0, help="seeds the weights, the data order and the augmentations")
    p.add_argument("--out", default=None, help="checkpoint path (default: $NEURODYN_CACHE or ~/.cache/neurodyn)")
    p.set_defaults(run="cmd_train_codec")
    p = sub.add_parser("codecs", help="list the encoders and decoders by name")
    p.set_defaults(run="cmd_codecs")
    p = sub.add_parser("inspect", help="print the summary of a saved run or a sweep store")
    p.add_argument("file", help="a run's NetCDF file (neurodyn recall --output) or a sweep's Zarr store")
    p.add_argument("--threshold", type=POSITIVE, default=names.UHN_THRESHOLD,
                   help="retrieval threshold on the squared error, per 784 pixels (UHN)")
    p.set_defaults(run="cmd_inspect")
    for command in sub.choices.values():
        command.add_argument("--debug", action="store_true", help="show the traceback of an expected failure too")
    return parser


class _Parser(argparse.ArgumentParser):
    """argparse with the error policy's one line (no usage block) for a bad argument."""

    def error(self, message: str) -> NoReturn:
        self.exit(BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def parse_known_args(self, args=None, namespace=None):  # (argparse's signature)
        parsed, extras = super().parse_known_args(args, namespace)
        for action in self._actions:  # argparse drops a "--" value (--model=--), leaving a list
            if (action.nargs is None and action.option_strings and not isinstance(action, argparse._AppendAction)
                    and isinstance(getattr(parsed, action.dest, None), list)):
                self.error(f"argument {'/'.join(action.option_strings)}: expected one value")
        return parsed, extras


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is, so that every ``finally`` and temporary-file
    cleanup runs as for Ctrl-C."""


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise _Terminated


def exit_code(err: BaseException) -> int | None:
    """The exit status of an expected failure (:mod:`neurodyn.errors`); None for a bug."""
    if isinstance(err, NeurodynError):
        return err.exit_code
    if isinstance(err, (ValueError, FileNotFoundError, SolverError)):
        return BAD_INPUT
    if isinstance(err, OSError) and err.filename is not None:  # an input the user named is unreadable
        return BAD_INPUT
    return None


def _message(err: BaseException) -> str:
    if isinstance(err, OSError) and err.filename is not None and not isinstance(err, NeurodynError):
        return f"{err.filename}: {err.strerror or err}"
    return str(err).strip("'\"") if isinstance(err, KeyError) else str(err)


def main(argv: list[str] | None = None) -> int:
    """Run a command; expected failures print one line and return their exit status
    (:mod:`neurodyn.errors`), bugs raise."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help, or a bad argument (its line is printed): a status, not an exception
        return done.code if isinstance(done.code, int) else BAD_INPUT
    warnings.simplefilter("ignore", SolverWarning)  # failed cues are reported after the summary
    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread: leave signals alone
        previous = None
    args.command_line = shlex.join(["neurodyn", *(sys.argv[1:] if argv is None else argv)])
    try:
        from . import commands  # (the library loads here, not for --help or a bad argument)

        return getattr(commands, args.run)(args)
    except KeyboardInterrupt as err:
        if args.debug:
            raise
        terminated = isinstance(err, _Terminated)
        print(f"neurodyn {args.command}: {'terminated' if terminated else 'interrupted'}; outputs are written "
              "whole or not at all, so none is half-written", file=sys.stderr)
        return 143 if terminated else 130
    except Exception as err:
        code = exit_code(err)
        if code is None or args.debug:
            raise
        print(f"neurodyn {args.command}: error: {_message(err)}", file=sys.stderr)
        return code
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)

__all__ = ["build_parser", "exit_code", "main"]
