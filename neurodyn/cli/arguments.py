"""The options of ``neurodyn recall`` by group, and the argument types that refuse a bad value
by its option's name (docs/decisions.md, "Error policy")."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from .. import names

PIXEL_RECORD = ("v", "energy", "speed", "overlap")


SPIKING_TAU_V = 10.0  # ms: the value neurons' default time constant in a spiking run
SPIKING_RECORD = ("spikes", "rate")


def csv_list(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split(",") if s.strip())


def count(minimum: int) -> Callable[[str], int]:
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


def number(lowest: float | None = None, *, strict: bool = True) -> Callable[[str], float]:
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


POSITIVE, NONNEGATIVE, FINITE = number(0.0), number(0.0, strict=False), number()


class DefaultsOnce(argparse.HelpFormatter):
    """Help that shows an option's default once: appended where the help text does not already
    say it, and never for an option that is off or unset by default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        return text + " (default: %(default)s)"


def recall_parser(sub: argparse._SubParsersAction, run: str) -> None:
    p = sub.add_parser("recall", help="store patterns, corrupt them, recall them through the dynamics",
                       formatter_class=DefaultsOnce)
    data_options(p)
    codec_options(p)
    model_options(p)
    solver_options(p)
    spiking_options(p)
    output_options(p)
    p.set_defaults(run=run)


def data_options(p: argparse.ArgumentParser) -> None:
    """The data and how queries are made from it."""
    g = p.add_argument_group("data")
    g.add_argument("--data", "--dataset", default=None,
                   help=f"a data set ({', '.join(names.DATASETS)}), an .npz file or an image folder (default: "
                        f"digits; the data a --model preset is made for: "
                        f"{', '.join(f'{k} {v}' for k, v in names.PRESET_DATA.items())})")
    g.add_argument("--data-root", default=None, help=f"data root (default: ${names.DATA_ENV})")
    g.add_argument("--n-memories", type=count(1), default=100, help="number of stored patterns")
    g.add_argument("--n-cues", type=count(1), default=None, help="number of cues (default: one per memory)")
    g.add_argument("--corruption", default="mask:0.25,side=bottom",
                   help=f"how queries are made from stored patterns: NAME:VALUE,option=value with NAME one of "
                        f"{', '.join(names.CORRUPTIONS)} (e.g. mask:0.25,side=bottom, gaussian:0.1, rotate:random; "
                        "docs/user-guide.md lists their options)")
    g.add_argument("--image-size", type=count(1), default=None,
                   help="resize the chosen images to this many pixels square (e.g. 64 for cheaper COCO codes)")


def codec_options(p: argparse.ArgumentParser) -> None:
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
    g.add_argument("--caption-index", type=count(0), default=0,
                   help="which of each image's captions queries it (0: the stored one; 1-4: another)")
    g.add_argument("--readout", choices=("auto", "decode", "values"), default="auto",
                   help="decode the recalled code, or read out stored pixels by the final activations "
                        "(semantic memory); auto: decode when the codec can")
    g.add_argument("--no-balance", action="store_true", help="keep raw codes (without it: unit mean norm per "
                   "modality)")


def model_options(p: argparse.ArgumentParser) -> None:
    """The network."""
    g = p.add_argument_group("model")
    g.add_argument("--model", default=None,
                   help=f"preset: {', '.join(names.PRESET_NAMES)} (default mchn-l2; with --text-codec mchn, whose dot "
                        "product ignores the empty image slot of a caption query)")
    g.add_argument("--model-file", default=None, help="a TOML model file with a [model] table (overrides --model)")
    g.add_argument("--similarity", default=None, help="override the similarity (e.g. manhattan, dot, "
                   "euclidean:inverse,normalized, manhattan:smooth=0.02)")
    g.add_argument("--separation", default=None, help="override the separation (e.g. softmax:10, polynomial:3)")
    g.add_argument("--beta", type=POSITIVE, default=None,
                   help="softmax inverse temperature (softmax presets; default: the preset's, or 100 "
                        "through a codec with no --model named: codes have unit mean norm)")
    g.add_argument("--dynamics", choices=("gradient", "projection"), default=None,
                   help="override the preset's dynamics: gradient (descends the energy) or projection "
                        "(tau_v dv/dt = P'f - v, UHN's update)")
    g.add_argument("--value", default=None, help="value Lagrangian (identity, tanh, sigmoid, ...)")
    g.add_argument("--tau-h", type=POSITIVE, default=None, help="memory time constant (default: fast memory)")
    g.add_argument("--cue-mode", choices=("initial", "current", "both"), default="initial",
                   help="how a query drives the network: initial (v(0) = q), current (an input current, v(0) = 0) "
                        "or both")


def solver_options(p: argparse.ArgumentParser) -> None:
    """The solver and the recording grid."""
    g = p.add_argument_group("solver")
    g.add_argument("--solver", choices=names.METHODS, default="auto",
                   help="auto: dopri5, switching each cue that turns out stiff to the implicit rosenbrock23")
    g.add_argument("--engine", choices=names.ENGINES, default="auto",
                   help="per-cue (a step size, method and status per cue; auto, dopri5, rosenbrock23, euler, "
                        "midpoint, rk4), torchdiffeq (one step size for the batch), or auto (per-cue where it has "
                        "the method)")
    g.add_argument("--rtol", type=POSITIVE, default=1e-5, help="relative tolerance of adaptive methods")
    g.add_argument("--atol", type=POSITIVE, default=1e-7, help="absolute tolerance of adaptive methods")
    g.add_argument("--step-size", type=POSITIVE, default=None, help="fixed-step methods only")
    g.add_argument("--steady-tol", type=NONNEGATIVE, default=1e-4,
                   help="stop a cue when max |dx/dt| over its value and memory neurons falls to "
                        "steady_tol * max(1, max |x|) (0: run to the end)")
    g.add_argument("--duration", type=POSITIVE, default=20.0, help="time span (units of tau_v)")
    g.add_argument("--n-times", type=count(2), default=101, help="recording times")
    g.add_argument("--max-steps", type=count(1), default=100_000,
                   help="steps a cue may take before it is reported failed")


def spiking_options(p: argparse.ArgumentParser) -> None:
    """Spiking memory neurons."""
    g = p.add_argument_group("spiking memory neurons (times in ms, rates in Hz)")
    g.add_argument("--spiking", choices=names.NEURON_MODELS, default=None,
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
    g.add_argument("--spiking-path", choices=names.SPIKING_PATHS, default=None,
                   help="dense, memory (event-driven, dot similarities) or auto (default)")


def output_options(p: argparse.ArgumentParser) -> None:
    """What is recorded, and where it goes."""
    g = p.add_argument_group("recording and output")
    g.add_argument("--record", type=csv_list, default=None,
                   help=f"comma-separated, from: {', '.join(names.VARIABLES)} (default {','.join(PIXEL_RECORD)}; "
                        f"through a codec {','.join(names.ENCODED_RECORD)}, f of the {names.ENCODED_TOP_K} most "
                        "active memories)")
    g.add_argument("--top-k", type=count(1), default=None, help="record only the k most active memories")
    g.add_argument("--max-record-mb", type=count(0), default=256,
                   help="refuse, before it starts, a run whose record would take more memory (0: no bound)")
    g.add_argument("--threshold", type=POSITIVE, default=names.UHN_THRESHOLD,
                   help="retrieval threshold on the squared error, per 784 pixels (UHN)")
    g.add_argument("--seed", type=int, default=0, help="one seed for the choice of memories and the corruption")
    g.add_argument("--dtype", choices=names.DTYPES, default="float32",
                   help="precision of pixel runs (runs through a codec are float32)")
    g.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when a GPU is visible, else cpu)")
    g.add_argument("--output", default="runs/recall.nc", help="NetCDF result file")
    g.add_argument("--figure", default=None, help="PNG figure (default: next to the output)")
    g.add_argument("--no-figure", action="store_true", help="write no figure")
    g.add_argument("--overwrite", action="store_true", help="replace an existing output and figure (without it: "
                   "refused)")


