"""A few lines on a run for the command line: model, solver statistics, retrieval, Lyapunov verdict."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from .energy import lyapunov_check, trial_energy
from .retrieval import UHN_THRESHOLD, retrieval

if TYPE_CHECKING:
    pass

def _model(ds: xr.Dataset) -> dict:
    """The model's settings: ``model_*`` attributes (older files: the JSON ``model``), the
    separation written with its parameters."""
    if "model" in ds.attrs:
        return json.loads(ds.attrs["model"])
    model = {key.removeprefix("model_"): value for key, value in ds.attrs.items() if key.startswith("model_")}
    if "separation" in model:
        params = ", ".join(f"{k.removeprefix('separation_')}={v:g}" for k, v in model.items()
                           if k.startswith("separation_"))
        model["separation"] = f"{model['separation']}({params})" if params else model["separation"]
    if "tau_h" not in model:
        model["tau_h"] = None
    return model


def _stepping(ds: xr.Dataset) -> str:
    """How the run was stepped: the solver and its tolerances and work, or a spiking run's step."""
    work = (f"{float(ds.attrs.get('wall_time_s', float('nan'))):.2f} s")
    if "neuron_model" in ds.attrs:
        return (f"stepping: {ds.attrs.get('solver_method', '?')}, fixed step dt={ds.attrs.get('dt', float('nan')):g} "
                f"{ds['time'].attrs.get('units', 'ms')}; {ds.attrs.get('nfe', '?')} steps, {work}")
    return (f"solver: {ds.attrs.get('solver_method', '?')} rtol={ds.attrs.get('rtol', 0):g} "
            f"atol={ds.attrs.get('atol', 0):g}; {ds.attrs.get('nfe', '?')} evaluations, "
            f"{ds.attrs.get('steps_accepted', '?')} steps ({ds.attrs.get('steps_rejected', '?')} rejected), {work}")


def summarize(ds: xr.Dataset, threshold: float = UHN_THRESHOLD) -> str:
    """A few lines on a run: model, solver statistics, retrieval rate, Lyapunov verdict."""
    model = _model(ds)
    lines = [
        f"model: {model.get('name', '?')} ({model.get('similarity', '?')}, {model.get('separation', '?')}, "
        f"{model.get('dynamics', '?')} dynamics, {'fast' if model.get('tau_h') is None else 'slow'} memory), "
        f"N={model.get('n_memories', '?')}, I={model.get('n_features', '?')}",
        f"cues: {ds.sizes['cue']}, time 0..{float(ds['time'][-1]):.4g} {ds['time'].attrs.get('units', '')}",
        _stepping(ds),
    ]
    if "solver_method_used" in ds:
        status, implicit = ds["solver_status"].values, ds["solver_method_used"].values == 1
        lines.append(f"per cue: {int((status == 1).sum())} finished, {int((status == 2).sum())} steady, "
                     f"{int((status == 3).sum())} failed; {int(implicit.sum())} on the implicit rosenbrock23 "
                     f"({int(np.isfinite(ds['solver_switch_time'].values).sum())} switched there as stiff), "
                     f"{int((~implicit).sum())} explicit")
    if "converged" in ds:
        n_conv = int(ds["converged"].sum())
        ct = ds["convergence_time"].values
        median = f", median convergence time {np.nanmedian(ct):.3g}" if n_conv else ""
        lines.append(f"steady state: {n_conv}/{ds.sizes['cue']} cues{median}")
    if "correct" in ds:  # recall through a codec: identity in code space, read-out error in stimulus space
        err = float(((ds["output"] - ds["output_target"]) ** 2).mean())
        lines.append(f"recall: {float(ds['correct'].mean()):.1%} of cues end nearest their target memory "
                     f"(code space); read-out MSE to the target's read-out {err:.3g}")
    elif "target" in ds:
        r = retrieval(ds, threshold)
        lines.append(f"retrieval: {r.attrs['rate']:.1%} of cues within sse <= {r.attrs['sse_limit']:.3g} "
                     f"(UHN's {threshold:g} per 784 pixels; median sse {float(r['sse'].median()):.3g})")
    if "state" in ds:
        lines.append(f"final states: {ds.attrs.get('state_counts', '?')} (mixture: participation ratio >= "
                     f"{ds.attrs.get('state_mixture_ratio', '?')})")
    if "mixture_time" in ds:
        lingered = ds["mixture_time"].values > 0
        lines.append(f"metastable mixtures: {int(lingered.sum())}/{ds.sizes['cue']} cues passed through a mixture"
                     + (f" (longest {float(ds['mixture_time'].max()):.3g} {ds['mixture_time'].attrs['units']})"
                        if lingered.any() else ""))
    if "spike_time" in ds:
        rate = float(ds["population_rate"].mean()) if "population_rate" in ds else float("nan")
        model, path = ds.attrs.get("neuron_model", "?"), ds.attrs.get("spiking_path", "?")
        lines.append(f"spiking: {model} memory neurons ({path} "
                     f"path), dt {ds.attrs.get('dt', float('nan')):g} ms; {ds.sizes['spike']} spikes, population "
                     f"rate {rate:.3g} Hz on average")
    if "recall_time" in ds:
        rt = ds["recall_time"].values
        held = ds["recall_time"].attrs.get("overlap_threshold")
        criterion = "the overlap criterion" if held is None else f"cosine overlap >= {float(held):g}"
        lines.append(f"recall time: {int(np.isfinite(rt).sum())}/{len(rt)} cues reach their target and stay on it "
                     f"to the end ({criterion}; retrieval above judges only the final state, by its squared error)"
                     + (f", median {np.nanmedian(rt):.3g} {ds['recall_time'].attrs.get('units', '')}"
                        if np.isfinite(rt).any() else ""))
    if "energy" in ds:
        lines.append(f"Lyapunov: {lyapunov_check(ds).verdict}")
        if "neuron_model" in ds.attrs and ds.sizes["cue"] > 1:
            te = trial_energy(ds)
            lines.append(f"energy over the {te.attrs['n_trials']} cues as trials: the mean rises by at most "
                         f"{te.attrs['max_rise_sem']:.2g} standard errors; single trials rise in "
                         f"{te.attrs['rising_fraction']:.0%} of the recorded steps")
    return "\n".join(lines)
