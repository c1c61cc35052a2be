"""The ``neurodyn`` command: ``neurodyn recall`` runs a recall experiment, ``neurodyn inspect``
summarizes a saved run.

``neurodyn recall`` with no options stores 100 of scikit-learn's digits in a modern Hopfield
network with the Euclidean similarity (preset ``mchn-l2``), masks the bottom quarter of each
(the UHN authors' masking), integrates the dynamics to a steady state, writes
``runs/recall.nc`` and ``runs/recall.png`` and prints a summary.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import signal
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import NoReturn

import torch
import xarray as xr

from . import analysis, data
from .devices import check_device
from .errors import BAD_INPUT, InputFileError, NeurodynError
from .files import claim
from .jobs.recall import DTYPES, CodedMemory, MemoryKind, PixelMemory, Selection, model_config, recall
from .memory.encoded import RECORD, TOP_K, default_model
from .network import PRESET_DATA, PRESETS
from .record import VARIABLES, Monitor, load_netcdf, save_netcdf
from .solve import ENGINES, METHODS, Solver, SolverError, SolverWarning
from .spiking import MODELS, PATHS, SpikingMemory, make_spiking

PIXEL_RECORD = ("v", "energy", "speed", "overlap")


SPIKING_TAU_V = 10.0  # ms: the value neurons' default time constant in a spiking run
SPIKING_RECORD = ("spikes", "rate")


def _spiking(args: argparse.Namespace) -> SpikingMemory | None:
    """The spiking settings from the command line (None: a rate run)."""
    if args.spiking is None:
        return None
    names = ("dt", "tau_s", "r_max", "value_rate", "tau_m", "refractory", "bias", "gain", "w_inh", "tau_inh",
             "gamma_hz", "gamma_amplitude")
    # Options left unset are None and ignored; one that the model lacks (--r-max with lif) is an error.
    return make_spiking(args.spiking, path=args.spiking_path, **{name: getattr(args, name) for name in names})


def _record(default: tuple[str, ...], spiking: SpikingMemory | None) -> tuple[str, ...]:
    """The default record, with spikes and rates instead of the solver's speed when spiking."""
    if spiking is None:
        return default
    return tuple(v for v in default if v != "speed") + SPIKING_RECORD


def _csv(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split(",") if s.strip())


def _count(minimum: int) -> Callable[[str], int]:
    """An argument type: an integer >= ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}")
        return value
    return parse


def _number(lowest: float | None = None, *, strict: bool = True) -> Callable[[str], float]:
    """An argument type: a finite number, above ``lowest`` (``strict``) or at least it."""
    bound = "" if lowest is None else f" {'>' if strict else '>='} {lowest:g}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or (lowest is not None and (value <= lowest if strict else value < lowest)):
            raise argparse.ArgumentTypeError(f"must be a finite number{bound}, got {text!r}")
        return value
    return parse


POSITIVE, NONNEGATIVE, FINITE = _number(0.0), _number(0.0, strict=False), _number()


def _recall_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("recall", help="store patterns, corrupt them, recall them through the dynamics",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    _data_options(p)
    _codec_options(p)
    _model_options(p)
    _solver_options(p)
    _spiking_options(p)
    _output_options(p)
    p.set_defaults(run=cmd_recall)


def _data_options(p: argparse.ArgumentParser) -> None:
    """The data and how queries are made from it."""
    g = p.add_argument_group("data")
    g.add_argument("--data", "--dataset", default=None,
                   help=f"a data set ({', '.join(data.DATASETS)}), an .npz file or an image folder (default: "
                        f"digits; the data a --model preset is made for: "
                        f"{', '.join(f'{k} {v}' for k, v in PRESET_DATA.items())})")
    g.add_argument("--data-root", default=None, help=f"data root (default: ${data.DATA_ENV})")
    g.add_argument("--n-memories", type=_count(1), default=100, help="number of stored patterns")
    g.add_argument("--n-cues", type=_count(1), default=None, help="number of cues (default: one per memory)")
    g.add_argument("--corruption", default="mask:0.25,side=bottom",
                   help="how queries are made from stored patterns: none, mask:F, mask_random:P, "
                        "gaussian:SIGMA, salt_pepper:P, inpaint:F (options as name=value)")
    g.add_argument("--image-size", type=_count(1), default=None,
                   help="resize the chosen images to this many pixels square (e.g. 64 for cheaper COCO codes)")


def _codec_options(p: argparse.ArgumentParser) -> None:
    """Recall through codecs (Hopfield Encoding Networks, semantic memories)."""
    g = p.add_argument_group("codecs (Hopfield Encoding Networks, semantic memories)")
    g.add_argument("--codec", default=None,
                   help="store codes of this image codec instead of pixels (taef2, resnet20, mnist-ae12, "
                        "vqae, simclr, pixels...; `neurodyn codecs` lists them)")
    g.add_argument("--text-codec", default=None,
                   help="bind each image to its caption through this text codec (minilm, render:taef2...) "
                        "and recall from captions (needs a captioned data set: coco)")
    g.add_argument("--caption", action="append", default=None,
                   help="recall from this caption (repeatable; default: the stored images' captions)")
    g.add_argument("--caption-index", type=_count(0), default=0,
                   help="which of each image's captions queries it (0: the stored one; 1-4: another)")
    g.add_argument("--readout", choices=("auto", "decode", "values"), default="auto",
                   help="decode the recalled code, or read out stored pixels by the final activations "
                        "(semantic memory); auto: decode when the codec can")
    g.add_argument("--no-balance", action="store_true", help="keep raw codes (default: unit mean norm per modality)")


def _model_options(p: argparse.ArgumentParser) -> None:
    """The network."""
    g = p.add_argument_group("model")
    g.add_argument("--model", default=None,
                   help=f"preset: {', '.join(PRESETS)} (default mchn-l2; with --text-codec mchn, whose dot "
                        "product ignores the empty image slot of a caption query)")
    g.add_argument("--model-file", default=None, help="a TOML model file with a [model] table (overrides --model)")
    g.add_argument("--similarity", default=None, help="override the similarity (e.g. manhattan, dot, "
                   "euclidean:inverse,normalized, manhattan:smooth=0.02)")
    g.add_argument("--separation", default=None, help="override the separation (e.g. softmax:10, polynomial:3)")
    g.add_argument("--beta", type=POSITIVE, default=None,
                   help="softmax inverse temperature (softmax presets; default: the preset's, or 100 "
                        "through a codec with no --model named: codes have unit mean norm)")
    g.add_argument("--dynamics", choices=("gradient", "projection"), default=None)
    g.add_argument("--value", default=None, help="value Lagrangian (identity, tanh, sigmoid, ...)")
    g.add_argument("--tau-h", type=POSITIVE, default=None, help="memory time constant (default: fast memory)")
    g.add_argument("--cue-mode", choices=("initial", "current", "both"), default="initial")


def _solver_options(p: argparse.ArgumentParser) -> None:
    """The solver and the recording grid."""
    g = p.add_argument_group("solver")
    g.add_argument("--solver", choices=METHODS, default="auto",
                   help="auto: dopri5, switching each cue that turns out stiff to the implicit rosenbrock23")
    g.add_argument("--engine", choices=ENGINES, default="auto",
                   help="per-cue (a step size, method and status per cue; auto, dopri5, rosenbrock23, euler, "
                        "midpoint, rk4), torchdiffeq (one step size for the batch), or auto (per-cue where it has "
                        "the method)")
    g.add_argument("--rtol", type=POSITIVE, default=1e-5)
    g.add_argument("--atol", type=POSITIVE, default=1e-7)
    g.add_argument("--step-size", type=POSITIVE, default=None, help="fixed-step methods only")
    g.add_argument("--steady-tol", type=NONNEGATIVE, default=1e-4,
                   help="stop a cue when max |dx/dt| over its value and memory neurons falls to "
                        "steady_tol * max(1, max |x|) (0: run to the end)")
    g.add_argument("--duration", type=POSITIVE, default=20.0, help="time span (units of tau_v)")
    g.add_argument("--n-times", type=_count(2), default=101, help="recording times")
    g.add_argument("--max-steps", type=_count(1), default=100_000)


def _spiking_options(p: argparse.ArgumentParser) -> None:
    """Spiking memory neurons."""
    g = p.add_argument_group("spiking memory neurons (times in ms, rates in Hz)")
    g.add_argument("--spiking", choices=MODELS, default=None,
                   help="make the memory population spike: poisson (rate r_max * f), lif (E%%-max "
                        "winner-take-all) or rate (their mean field); fixed steps of --dt replace the solver")
    g.add_argument("--tau-v", type=POSITIVE, default=None,
                   help="value neuron time constant (default 1; with --spiking 10 ms)")
    g.add_argument("--dt", type=POSITIVE, default=None, help="spiking time step (default 0.1 ms)")
    g.add_argument("--tau-s", type=POSITIVE, default=None, help="synaptic time constant (default 5 ms)")
    g.add_argument("--r-max", type=POSITIVE, default=None, help="Poisson peak rate (default 200 Hz)")
    g.add_argument("--value-rate", type=POSITIVE, default=None, help="make value neurons Poisson too, at this rate x g")
    for name, help_text in (("tau-m", "LIF membrane time constant (default 10 ms)"),
                            ("refractory", "LIF refractory period (default 2 ms)"),
                            ("bias", "LIF drive at the mean similarity (default 0.5)"),
                            ("gain", "LIF drive per standard deviation of the similarity (default 0.5)"),
                            ("w-inh", "LIF feedback inhibition per population spike (default 2)"),
                            ("tau-inh", "LIF inhibition time constant (default 5 ms)"),
                            ("gamma-hz", "LIF periodic (gamma) inhibition frequency (default off)"),
                            ("gamma-amplitude", "LIF gamma inhibition amplitude")):
        g.add_argument(f"--{name}", type=FINITE, default=None, help=help_text)
    g.add_argument("--spiking-path", choices=PATHS, default=None,
                   help="dense, memory (event-driven, dot similarities) or auto (default)")


def _output_options(p: argparse.ArgumentParser) -> None:
    """What is recorded, and where it goes."""
    g = p.add_argument_group("recording and output")
    g.add_argument("--record", type=_csv, default=None,
                   help=f"comma-separated, from: {', '.join(VARIABLES)} (default {','.join(PIXEL_RECORD)}; "
                        f"through a codec {','.join(RECORD)}, f of the {TOP_K} most active memories)")
    g.add_argument("--top-k", type=_count(1), default=None, help="record only the k most active memories")
    g.add_argument("--threshold", type=POSITIVE, default=analysis.UHN_THRESHOLD,
                   help="retrieval threshold on the squared error, per 784 pixels (UHN)")
    g.add_argument("--seed", type=int, default=0, help="one seed for the choice of memories and the corruption")
    g.add_argument("--dtype", choices=tuple(DTYPES), default="float32",
                   help="precision of pixel runs (runs through a codec are float32)")
    g.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    g.add_argument("--output", default="runs/recall.nc", help="NetCDF result file")
    g.add_argument("--figure", default=None, help="PNG figure (default: next to the output)")
    g.add_argument("--no-figure", action="store_true")
    g.add_argument("--overwrite", action="store_true", help="replace an existing output (default: refuse it)")


FIGURE_FORMATS = ("png", "pdf", "svg", "svgz", "jpg", "jpeg", "eps", "ps", "tif", "tiff", "webp")


def cmd_recall(args: argparse.Namespace) -> int:
    """Claim the outputs (refused before any work when they exist or another run writes them),
    run, save, summarize."""
    figure = None if args.no_figure else Path(args.figure or Path(args.output).with_suffix(".png"))
    if figure is not None and figure.suffix.lstrip(".").lower() not in FIGURE_FORMATS:
        raise ValueError(f"--figure {figure}: unknown image format {figure.suffix!r}; use one of "
                         f"{', '.join('.' + f for f in FIGURE_FORMATS)}")
    check_device(args.device)
    job = _recall_job(args)
    with contextlib.ExitStack() as held:
        held.enter_context(claim(args.output, overwrite=args.overwrite))
        if figure is not None:
            held.enter_context(claim(figure, overwrite=args.overwrite))
        return _finish_recall(args, job(), figure)


def _recall_job(args: argparse.Namespace) -> Callable[[], xr.Dataset]:
    """The recall the options describe, its settings built (and so checked) but not run."""
    encoded = bool(args.codec or args.text_codec)
    preset, beta = args.model or "mchn-l2", args.beta
    if encoded and args.model is None and args.model_file is None:
        base = default_model(multimodal=bool(args.text_codec))
        preset, beta = base["preset"], base["beta"] if beta is None else beta
    model = model_config(preset, args.model_file, beta=beta, similarity=args.similarity,
                         separation=args.separation, dynamics=args.dynamics, value_lagrangian=args.value,
                         tau_h=args.tau_h, tau_v=args.tau_v or (SPIKING_TAU_V if args.spiking else None))
    if args.data is None:
        args.data = PRESET_DATA.get(args.model, "digits") if args.model_file is None else "digits"
    spiking = _spiking(args)
    solver = Solver(args.solver, rtol=args.rtol, atol=args.atol, step_size=args.step_size,
                    max_steps=args.max_steps, steady_tol=args.steady_tol or None, engine=args.engine)
    selection = Selection(args.data, args.n_memories, args.corruption, args.seed, args.n_cues, args.image_size,
                          args.data_root)
    memory: MemoryKind
    if encoded:
        if args.dtype != "float32":
            raise ValueError("runs through a codec are float32 (codes are float32); drop --dtype")
        monitor = Monitor(variables=args.record or _record(RECORD, spiking), n_times=args.n_times,
                          top_k=args.top_k if args.record or args.top_k else min(TOP_K, args.n_memories))
        memory = CodedMemory(args.codec or "pixels", model, args.readout, None if args.no_balance else "balance",
                             args.text_codec, tuple(args.caption) if args.caption else None, args.caption_index)
    else:
        monitor = Monitor(variables=args.record or _record(PIXEL_RECORD, spiking), n_times=args.n_times,
                          top_k=args.top_k)
        memory = PixelMemory(model, dtype=args.dtype)
    return functools.partial(recall, selection, memory, args.duration, method=spiking or solver, monitor=monitor,
                             cue_mode=args.cue_mode, device=args.device, progress=None)


def _finish_recall(args: argparse.Namespace, ds: xr.Dataset, figure: Path | None) -> int:
    out = save_netcdf(ds, args.output)
    print(analysis.summarize(ds, args.threshold))
    print(f"saved: {out}")
    failures = json.loads(ds.attrs.get("solver_failures", "{}"))
    if figure is not None:
        from .plot import plot_encoded_recall, plot_recall, plot_spiking_recall, save_figure  # matplotlib when wanted

        if "spike_time" in ds:
            fig = plot_spiking_recall(ds)
        else:
            fig = plot_encoded_recall(ds) if "output" in ds else plot_recall(ds)
        save_figure(fig, str(figure))
        print(f"figure: {figure}")
    if failures:
        reasons = sorted(set(failures.values()))
        print(f"neurodyn recall: error: {len(failures)} of {ds.sizes['cue']} cues failed ({'; '.join(reasons)}); "
              f"the others are complete in {out}; loosen --rtol/--atol, raise --max-steps, or try --solver "
              "rosenbrock23", file=sys.stderr)
        return 3
    return 0


def cmd_train_codec(args: argparse.Namespace) -> int:
    from .codecs.train import train_codec

    path = train_codec(args.name, root=args.data_root, epochs=args.epochs, batch_size=args.batch_size,
                       lr=args.lr, seed=args.seed, out=args.out, progress=True)
    meta = torch.load(path, map_location="cpu", weights_only=True).get("metadata", {})
    print(f"saved: {path}")
    print(f"held-out: {meta.get('held_out')}; {meta.get('train_seconds')} s")
    return 0


def cmd_codecs(args: argparse.Namespace) -> int:
    from .codecs import available_codecs

    for name, entry in available_codecs().items():
        arg = f":{entry.argument.upper()}" if entry.argument else ""
        print(f"{name + arg:28s} {entry.modality:5s}  {entry.description}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from .scale.sweep import describe_store, load_config, run_sweep

    config = load_config(args.config)
    ds = run_sweep(config, args.store, scheduler=args.scheduler, n_workers=args.workers,
                   threads_per_worker=args.threads, retry_failed=args.retry_failed)
    print(describe_store(ds.encoding.get("source", args.store or config.get("sweep", {}).get("store"))))
    return 0


def cmd_experiment(args: argparse.Namespace) -> int:
    from .jobs.experiment import available_experiments, load_experiment, run_experiment

    if args.name is None:
        for name in available_experiments():
            experiment = load_experiment(name)
            print(f"{name:24s} {experiment.title}")
        return 0
    result = run_experiment(args.name, args.quick, args.out, scheduler=args.scheduler, n_workers=args.workers,
                            threads_per_worker=args.threads)
    print(result.report.read_text())
    print(f"wrote {result.netcdf}, {result.figure} and {result.report}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    if Path(args.file).is_dir():  # a sweep's Zarr store
        from .scale.sweep import describe_store

        print(describe_store(args.file))
        return 0
    ds = load_netcdf(args.file)
    if "cue" not in ds.dims or "time" not in ds.coords:
        raise InputFileError(args.file, "is a NetCDF file but not a neurodyn run (it has no cue and time "
                             "dimensions)", "give a file written by neurodyn recall or save_netcdf")
    print(analysis.summarize(ds, args.threshold))
    print(f"variables: {', '.join(map(str, ds.data_vars))}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="neurodyn", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _recall_parser(sub)
    p = sub.add_parser("sweep", help="run a parameter grid on Dask into one Zarr store (resumable)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("config", help="a TOML file with [sweep], [grid], [zip.NAME] and [fixed] tables")
    p.add_argument("--store", default=None, help="the Zarr store (default: [sweep] store, or runs/sweep.zarr)")
    p.add_argument("--scheduler", default=None, help="address of a running Dask scheduler (default: a LocalCluster)")
    p.add_argument("--workers", type=_count(0), default=2,
                   help="LocalCluster worker processes (0: run in this process)")
    p.add_argument("--threads", type=_count(1), default=1, help="threads per worker (and torch threads per task)")
    p.add_argument("--retry-failed", action="store_true", help="recompute points that failed before")
    p.set_defaults(run=cmd_sweep)
    p = sub.add_parser("experiment", help="reproduce a paper's figure or table: grid, Dataset, figure, report",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("name", nargs="?", default=None, help="experiment name (none: list them)")
    p.add_argument("--quick", action="store_true", help="a reduced grid that runs in seconds to minutes")
    p.add_argument("--out", default="runs", help="folder for NAME.zarr, NAME.nc, NAME.png and NAME.md")
    p.add_argument("--scheduler", default=None, help="address of a running Dask scheduler (default: a LocalCluster)")
    p.add_argument("--workers", type=_count(0), default=2,
                   help="LocalCluster worker processes (0: run in this process)")
    p.add_argument("--threads", type=_count(1), default=1, help="threads per worker (and torch threads per task)")
    p.set_defaults(run=cmd_experiment)
    p = sub.add_parser("train-codec", help="train one of the project's codecs on real data, save its checkpoint",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("name", choices=("mnist-ae12", "vqae", "simclr"))
    p.add_argument("--data-root", default=None, help=f"data root (default: ${data.DATA_ENV})")
    p.add_argument("--epochs", type=_count(1), default=None, help="default: the recipe's")
    p.add_argument("--batch-size", type=_count(1), default=None, help="default: the recipe's")
    p.add_argument("--lr", type=POSITIVE, default=None, help="default: the recipe's")
    p.add_argument("--seed", type=int, default=0, help="seeds the weights, the data order and the augmentations")
    p.add_argument("--out", default=None, help="checkpoint path (default: $NEURODYN_CACHE or ~/.cache/neurodyn)")
    p.set_defaults(run=cmd_train_codec)
    p = sub.add_parser("codecs", help="list the encoders and decoders by name")
    p.set_defaults(run=cmd_codecs)
    p = sub.add_parser("inspect", help="print the summary of a saved run or a sweep store")
    p.add_argument("file")
    p.add_argument("--threshold", type=POSITIVE, default=analysis.UHN_THRESHOLD,
                   help="retrieval threshold on the squared error, per 784 pixels (UHN)")
    p.set_defaults(run=cmd_inspect)
    for command in sub.choices.values():
        command.add_argument("--debug", action="store_true", help="show the traceback of an expected failure too")
    return parser


class _Parser(argparse.ArgumentParser):
    """argparse with the error policy's one line (no usage block) for a bad argument."""

    def error(self, message: str) -> NoReturn:
        self.exit(BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


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
    try:
        return args.run(args)
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


if __name__ == "__main__":
    sys.exit(main())
