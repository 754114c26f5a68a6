"""``invsim posterior``: sample θ given an event file and a likelihood, write NetCDF.

Examples::

    invsim posterior --model dy_model --data my_events.root --param mzp=1800:2300 \\
        --chains 4 --samples 1000 --warmup 500 -o posterior.nc --json
    invsim posterior dy.h5 --likelihood mypkg.mem:load_likelihood \\
        --prior mzp=uniform:1500,2500 --chains 4 --samples 1000 --warmup 1000 \\
        --seed 1 -o posterior.nc

With ``--model`` (a directory from ``invsim train``) the likelihood is the model's
ML-MEM for the events of ``--data`` (any file :func:`invsim.data.load_observed` reads:
invsim's own, NanoAOD-style ROOT/HDF5), and ``--param NAME=LO:HI`` names the inferred
parameters with uniform priors (default: the model's trained ranges). Otherwise the
likelihood comes from a *factory*, ``--likelihood module:function`` or
``--likelihood path/to/file.py:function``: the function is imported and called with
the loaded :class:`~forward.eventset.EventSet` and must
return an :class:`~invsim.infer.EventLikelihood` bound to those events. Parameter ranges
come from the likelihood's ``parameters`` attribute if it has one, else from the
event file's process; priors default to uniform over them.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from invsim.cli._common import (
    DEVICE,
    Count,
    claim_output,
    declared_parameters,
    echo_inputs,
    file_inputs,
    inference_inputs,
    likelihood_options,
    model_paths,
    one_line,
    parse_range,
    quiet,
    run_provenance,
    show_progress,
    verbosity_options,
)
from invsim.infer.limits import MAX_DRAWS, MAX_STEPS

__all__ = ["posterior"]


@click.command("posterior")
@click.argument("events_path", metavar="[EVENTS]", required=False,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--data", "data", default=None,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Events file (or give it as the argument EVENTS): with --model any file "
                   "invsim reads (invsim HDF5/ROOT, NanoAOD-style ROOT/HDF5); with "
                   "--likelihood an invsim HDF5 file.")
@likelihood_options
@click.option("--param", "params", multiple=True, metavar="NAME=LO:HI",
              help="Inferred parameter with a uniform prior over LO:HI, repeatable (--model; "
                   "default the model's trained ranges).")
@click.option("--prior", "priors", multiple=True, metavar="NAME=FAMILY:A,B",
              help="Prior override, repeatable: uniform:low,high | normal:loc,scale | "
                   "lognormal:loc,scale. Default: uniform over the declared range.")
@click.option("--method", type=click.Choice(["nuts", "svi"]), default="nuts",
              show_default=True, help="NUTS sampling or the variational fit.")
@click.option("--chains", type=Count(1, 1024), default=4, show_default=True)
@click.option("--samples", type=Count(1, MAX_DRAWS), default=1000, show_default=True,
              help="Draws per chain (NUTS) or from the fitted guide (SVI).")
@click.option("--warmup", type=Count(0, MAX_DRAWS), default=1000, show_default=True,
              help="NUTS adaptation steps per chain.")
@click.option("--steps", type=Count(1, MAX_STEPS), default=2000, show_default=True,
              help="SVI optimisation steps.")
@click.option("--luminosity", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Integrated luminosity in pb^-1: adds the Poisson term in the number of "
                   "events (needs log_sigma_fid).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--device", type=DEVICE, default="cpu", show_default=True,
              help="Torch device of the events.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="NetCDF file to write (arviz.InferenceData).")
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@verbosity_options
def posterior(events_path, data, model, factory_spec, params, priors, method, chains, samples,
              warmup, steps, n_samples, tree, luminosity, seed, device, on_flagged, output,
              overwrite, as_json, nuisances=(), n_fiducial=100_000) -> None:
    """Posterior of the parameters given the events in EVENTS (or --data)."""
    import warnings

    import arviz as az
    import torch

    from invsim.infer import (
        InferenceProblem,
        build_priors,
        fit_svi,
        parse_prior,
        sample_nuts,
        save_inference,
    )
    from invsim.infer.flags import FlaggedEventsError, FlaggedEventsWarning
    from invsim.infer.nuts import ConvergenceWarning

    if events_path is not None and data is not None and events_path != data:
        raise click.UsageError("give the events file once: as EVENTS or as --data")
    data = data or events_path
    claim_output(output, inputs=[data, *model_paths(model), *file_inputs(factory_spec)],
                 overwrite=overwrite)
    ranges = dict(parse_range(p) for p in params)
    if any(r is None for r in ranges.values()):
        raise click.UsageError("--param: expected NAME=LO:HI")
    likelihood, source, process = inference_inputs(
        data=data, factory_spec=factory_spec, model=model, parameters=list(ranges) or None,
        n_samples=n_samples, seed=seed, tree=tree, on_flagged=on_flagged, device=device,
        progress=show_progress(as_json), nuisances=nuisances,
        n_fiducial=n_fiducial)
    try:
        overrides = {n: parse_prior(f"{n}=uniform:{lo!r},{hi!r}", device=device)[1]
                     for n, (lo, hi) in ranges.items()}
        overrides |= _default_priors(likelihood, nuisances)
        overrides |= dict(parse_prior(p, device=device) for p in priors)
        declared = (likelihood.parameters if model is not None
                    else declared_parameters(likelihood, _events_of(data, device)))
        pri = build_priors(declared, getattr(likelihood, "parameter_names", None), overrides,
                           dtype=torch.float64, device=device)
        problem = InferenceProblem(likelihood, pri, luminosity=luminosity, process=process,
                                   on_flagged=on_flagged)
    except (ValueError, TypeError, OSError) as err:
        raise click.UsageError(one_line(err)) from err
    try:
        with warnings.catch_warnings():  # reported in the summary lines instead
            warnings.simplefilter("ignore", FlaggedEventsWarning)
            if method == "nuts":
                warnings.simplefilter("ignore", ConvergenceWarning)  # in the summary
                idata = sample_nuts(problem, num_samples=samples, warmup=warmup,
                                    chains=chains, seed=seed,
                                    progress=show_progress(as_json))
            else:
                idata, _ = fit_svi(problem, steps=steps, num_samples=samples, seed=seed)
    except FlaggedEventsError as err:
        raise click.ClickException(one_line(err)) from err
    idata.attrs.update({k: (v if isinstance(v, (str, int, float)) else json.dumps(v))
                        for k, v in source.items()})
    record = run_provenance(
        process=getattr(likelihood, "process", None) or process, seed=seed, device=device,
        inputs=[data, *model_paths(model), factory_spec], method=method, priors=list(priors),
        ranges={k: list(v) for k, v in ranges.items()}, chains=chains, samples=samples,
        warmup=warmup, steps=steps, luminosity_pb=luminosity, samples_per_event=n_samples)
    idata.attrs["provenance"] = json.dumps(record)
    save_inference(idata, output, overwrite=overwrite)
    summary = az.summary(idata, round_to="none", kind="all" if method == "nuts" else "stats")
    out = {"output": str(output), "method": method, "n_events": problem.n_events,
           "inputs": source, "provenance": record,
           "parameters": {n: {k: float(summary.loc[n, k]) for k in summary.columns}
                          for n in problem.names}}
    flag_message = str(idata.attrs.get("flag_message", ""))
    out |= {"n_flagged": idata.attrs.get("n_flagged"),
            "flag_reasons": json.loads(idata.attrs.get("flag_reasons", "{}")),
            "reliable": (None if "reliable" not in idata.attrs
                         else bool(idata.attrs["reliable"])),
            "flag_message": flag_message,
            "warnings": [flag_message] if flag_message and on_flagged == "warn" else []}
    if isinstance(out["n_flagged"], (int, float)):
        out["n_flagged"] = int(out["n_flagged"])
    out["correlation"] = _correlations(idata, problem.names)
    conv = json.loads(idata.attrs.get("convergence", "{}"))
    out["convergence"] = conv
    if conv and not conv.get("converged", True):
        parts = [f"{k}: {', '.join(v)}" for k, v in (conv.get("failed") or {}).items()]
        if sum(conv.get("divergences") or []):
            parts.append(f"{sum(conv['divergences'])} divergent transitions")
        out["warnings"].append("NUTS did not converge (" + "; ".join(parts) + "): run longer "
                               "chains (--samples, --warmup) before trusting the summary")
    if as_json:
        click.echo(json.dumps(out))
        return
    echo_inputs(source)
    if not quiet():
        click.echo(f"{process or 'events'}: {problem.n_events} events, {method} -> {output}")
    click.echo(summary.to_string())
    for (a, b), r in _pairs(out["correlation"]):
        click.echo(f"correlation({a}, {b}) = {r:+.3f}")
    for text in out["warnings"]:
        click.echo(f"warning: {text}")


def _default_priors(likelihood, nuisances) -> dict:
    """Default priors of the detector nuisances in θ (``jes``: Normal(1, 0.02) truncated to
    the trained range, :func:`invsim.mem.detector_nuisances.default_prior`)."""
    from invsim.mem.detector_nuisances import DETECTOR_NUISANCES, default_prior

    declared = getattr(likelihood, "parameters", {})
    return {n: default_prior(n, declared[n].low, declared[n].high) for n in nuisances
            if n in DETECTOR_NUISANCES and n in declared}


def _correlations(idata, names) -> dict:
    """Pearson correlations of the posterior draws, name -> name -> r (all chains)."""
    import numpy as np

    post = idata.posterior
    names = [n for n in names if n in post and post[n].ndim == 2]
    if len(names) < 2:
        return {}
    draws = np.stack([post[n].values.reshape(-1) for n in names])
    r = np.corrcoef(draws)
    return {a: {b: float(r[i, j]) for j, b in enumerate(names)} for i, a in enumerate(names)}


def _pairs(corr: dict):
    names = list(corr)
    return [((a, b), corr[a][b]) for i, a in enumerate(names) for b in names[i + 1:]]


def _events_of(path, device):
    from forward.io import load_hdf5

    return load_hdf5(path, device=device)
