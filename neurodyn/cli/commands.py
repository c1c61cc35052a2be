"""What each ``neurodyn`` command does, given its parsed options."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import torch
import xarray as xr

from .. import analysis
from ..devices import check_device
from ..errors import CUES_FAILED, InputFileError, RecordTooLarge
from ..files import claim
from ..jobs.recall import CodedMemory, MemoryKind, PixelMemory, Selection, model_config, recall
from ..memory.encoded import RECORD, TOP_K, default_model
from ..network import PRESET_DATA
from ..record import Monitor, load_netcdf, save_netcdf
from ..solve import Solver
from ..spiking import SpikingMemory, make_spiking
from .arguments import PIXEL_RECORD, SPIKING_RECORD, SPIKING_TAU_V


def spiking_settings(args: argparse.Namespace) -> SpikingMemory | None:
    """The spiking settings from the command line (None: a rate run)."""
    if args.spiking is None:
        return None
    names = ("dt", "tau_s", "r_max", "value_rate", "tau_m", "refractory", "bias", "gain", "w_inh", "tau_inh",
             "gamma_hz", "gamma_amplitude")
    # Options left unset are None and ignored; one that the model lacks (--r-max with lif) is an error.
    return make_spiking(args.spiking, path=args.spiking_path, **{name: getattr(args, name) for name in names})


def default_record(default: tuple[str, ...], spiking: SpikingMemory | None) -> tuple[str, ...]:
    """The default record, with spikes and rates instead of the solver's speed when spiking."""
    if spiking is None:
        return default
    return tuple(v for v in default if v != "speed") + SPIKING_RECORD


FIGURE_FORMATS = ("png", "pdf", "svg", "svgz", "jpg", "jpeg", "eps", "ps", "tif", "tiff", "webp")


def cmd_recall(args: argparse.Namespace) -> int:
    """Claim the outputs (refused before any work when they exist or another run writes them),
    run, save, summarize."""
    figure = None if args.no_figure else Path(args.figure or Path(args.output).with_suffix(".png"))
    if figure is not None and figure.suffix.lstrip(".").lower() not in FIGURE_FORMATS:
        raise ValueError(f"--figure {figure}: unknown image format {figure.suffix!r}; use one of "
                         f"{', '.join('.' + f for f in FIGURE_FORMATS)}")
    args.device = str(check_device(args.device or ("cuda" if torch.cuda.is_available() else "cpu")))
    job = _recall_job(args)
    with contextlib.ExitStack() as held:
        held.enter_context(claim(args.output, overwrite=args.overwrite))
        if figure is not None:
            held.enter_context(claim(figure, overwrite=args.overwrite))
        try:
            ds = job()
        except RecordTooLarge as err:
            raise ValueError(f"the record would take {err.described()}, over --max-record-mb {args.max_record_mb}: "
                             "record fewer times (--n-times), fewer variables (--record v,energy leaves out the "
                             "cues x memories overlaps), the top memories only (--top-k), fewer cues (--n-cues), or "
                             "raise --max-record-mb (0: no bound)") from None
        return _finish_recall(args, ds, figure)


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
    spiking = spiking_settings(args)
    bound = args.max_record_mb * 2**20 or None
    solver = Solver(args.solver, rtol=args.rtol, atol=args.atol, step_size=args.step_size,
                    max_steps=args.max_steps, steady_tol=args.steady_tol or None, engine=args.engine)
    selection = Selection(args.data, args.n_memories, args.corruption, args.seed, args.n_cues, args.image_size,
                          args.data_root)
    memory: MemoryKind
    if encoded:
        if args.dtype != "float32":
            raise ValueError("runs through a codec are float32 (codes are float32); drop --dtype")
        monitor = Monitor(variables=args.record or default_record(RECORD, spiking), n_times=args.n_times,
                          top_k=args.top_k if args.record or args.top_k else min(TOP_K, args.n_memories),
                          max_bytes=bound)
        memory = CodedMemory(args.codec or "pixels", model, args.readout, None if args.no_balance else "balance",
                             args.text_codec, tuple(args.caption) if args.caption else None, args.caption_index)
    else:
        monitor = Monitor(variables=args.record or default_record(PIXEL_RECORD, spiking), n_times=args.n_times,
                          top_k=args.top_k, max_bytes=bound)
        memory = PixelMemory(model, dtype=args.dtype)
    return functools.partial(recall, selection, memory, args.duration, method=spiking or solver, monitor=monitor,
                             cue_mode=args.cue_mode, device=args.device, progress=None)


def _finish_recall(args: argparse.Namespace, ds: xr.Dataset, figure: Path | None) -> int:
    ds.attrs["command_line"] = getattr(args, "command_line", "")
    out = save_netcdf(ds, args.output)
    print(analysis.summarize(ds, args.threshold))
    print(f"saved: {out}")
    failures = json.loads(ds.attrs.get("solver_failures", "{}"))
    if figure is not None:
        from ..plot import plot_encoded_recall, plot_recall, plot_spiking_recall, save_figure  # matplotlib when wanted

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
        return CUES_FAILED
    return 0


def cmd_train_codec(args: argparse.Namespace) -> int:
    from ..codecs.train import train_codec

    path = train_codec(args.name, root=args.data_root, epochs=args.epochs, batch_size=args.batch_size,
                       lr=args.lr, seed=args.seed, out=args.out, progress=True)
    meta = torch.load(path, map_location="cpu", weights_only=True).get("metadata", {})
    print(f"saved: {path}")
    print(f"held-out: {meta.get('held_out')}; {meta.get('train_seconds')} s")
    return 0


def cmd_codecs(args: argparse.Namespace) -> int:
    from ..codecs import available_codecs

    for name, entry in available_codecs().items():
        arg = f":{entry.argument.upper()}" if entry.argument else ""
        print(f"{name + arg:28s} {entry.modality:5s}  {entry.description}")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from ..scale.sweep import describe_store, load_config, run_sweep

    config = load_config(args.config)
    ds = run_sweep(config, args.store, scheduler=args.scheduler, n_workers=args.workers,
                   threads_per_worker=args.threads, retry_failed=args.retry_failed)
    print(describe_store(ds.encoding.get("source", args.store or config.get("sweep", {}).get("store"))))
    return 0


def cmd_experiment(args: argparse.Namespace) -> int:
    from ..jobs.experiment import available_experiments, load_experiment, run_experiment

    if args.name is None:
        for name in available_experiments():
            experiment = load_experiment(name)
            print(f"{name:24s} {experiment.title}")
        return 0
    result = run_experiment(args.name, args.quick, args.out, scheduler=args.scheduler, n_workers=args.workers,
                            threads_per_worker=args.threads, overrides=experiment_overrides(args))
    print(result.report.read_text())
    print(f"wrote {result.netcdf}, {result.figure} and {result.report}")
    return 0


def experiment_overrides(args: argparse.Namespace) -> dict[str, object]:
    """``--overrides FILE``, then ``--data`` and every ``--set NAME=VALUE`` (values read as TOML:
    60, 0.5, true, "text"; bare words are text; commas make a list)."""
    from ..scale.grid import load_config

    overrides: dict[str, object] = {}
    if args.overrides:
        for table, entries in load_config(args.overrides).items():
            if table == "zip":
                raise ValueError(f"--overrides {args.overrides}: an experiment's zipped dimensions cannot be "
                                 "overridden; use [grid] and [fixed]")
            if table not in ("grid", "fixed") or not isinstance(entries, dict):
                raise ValueError(f"--overrides {args.overrides}: unknown table [{table}]; use [grid] and [fixed]")
            overrides.update(entries)
    if args.data:
        overrides["data"] = args.data
    for item in args.set:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--set {item!r}: expected NAME=VALUE (or NAME=V1,V2,...)")
        values = [_toml_value(part) for part in text.split(",")]
        overrides[name.strip()] = values if len(values) > 1 else values[0]
    return overrides


def _toml_value(text: str) -> object:
    try:
        return tomllib.loads(f"v = {text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        return text.strip()


def cmd_inspect(args: argparse.Namespace) -> int:
    if Path(args.file).is_dir():  # a sweep's Zarr store
        from ..scale.sweep import describe_store

        print(describe_store(args.file))
        return 0
    ds = load_netcdf(args.file)
    if "cue" not in ds.dims or "time" not in ds.coords:
        raise InputFileError(args.file, "is a NetCDF file but not a neurodyn run (it has no cue and time "
                             "dimensions)", "give a file written by neurodyn recall or save_netcdf")
    print(analysis.summarize(ds, args.threshold))
    print(f"variables: {', '.join(map(str, ds.data_vars))}")
    return 0


