"""``invsim posterior``: sample θ given an event file and a likelihood, write NetCDF.

Example::

    invsim posterior dy.h5 --likelihood mypkg.mem:load_likelihood \\
        --prior mzp=uniform:1500,2500 --chains 4 --samples 1000 --warmup 1000 \\
        --seed 1 -o posterior.nc

The likelihood comes from a *factory*, ``--likelihood module:function`` or
``--likelihood path/to/file.py:function``: the function is imported and called with
the loaded :class:`~forward.eventset.EventSet` and must
return an :class:`~invsim.infer.EventLikelihood` bound to those events. (Loading a
saved ML-MEM model by its stored kind will plug in here once :mod:`invsim.mem` has a
save format; a factory that calls its ``load`` covers it meanwhile.) Parameter ranges
come from the likelihood's ``parameters`` attribute if it has one, else from the
event file's process; priors default to uniform over them.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from invsim.cli._common import call_factory, declared_parameters, load_factory

__all__ = ["posterior"]


@click.command("posterior")
@click.argument("events_path", metavar="EVENTS", type=click.Path(exists=True, dir_okay=False,
                                                                 path_type=Path))
@click.option("--likelihood", "factory", required=True, metavar="MODULE:FUNCTION",
              help="Factory called with the EventSet, returning an EventLikelihood "
                   "(module:function or file.py:function).")
@click.option("--prior", "priors", multiple=True, metavar="NAME=FAMILY:A,B",
              help="Prior override, repeatable: uniform:low,high | normal:loc,scale | "
                   "lognormal:loc,scale. Default: uniform over the declared range.")
@click.option("--method", type=click.Choice(["nuts", "svi"]), default="nuts",
              show_default=True, help="NUTS sampling or the variational fit.")
@click.option("--chains", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--samples", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Draws per chain (NUTS) or from the fitted guide (SVI).")
@click.option("--warmup", type=click.IntRange(min=0), default=1000, show_default=True,
              help="NUTS adaptation steps per chain.")
@click.option("--steps", type=click.IntRange(min=1), default=2000, show_default=True,
              help="SVI optimisation steps.")
@click.option("--luminosity", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Integrated luminosity in pb^-1: adds the Poisson term in the number of "
                   "events (needs log_sigma_fid).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True, help="Torch device of the events.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="NetCDF file to write (arviz.InferenceData).")
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
def posterior(events_path, factory, priors, method, chains, samples, warmup, steps, luminosity,
              seed, device, output, overwrite, as_json) -> None:
    """Posterior of the likelihood's parameters given the events in EVENTS (HDF5)."""
    import arviz as az
    import torch

    from forward.io import load_hdf5
    from invsim.infer import (
        InferenceProblem,
        build_priors,
        fit_svi,
        parse_prior,
        sample_nuts,
        save_inference,
    )

    if output.exists() and not overwrite:
        raise click.UsageError(f"{output} exists; pass --overwrite to replace it")
    try:
        events = load_hdf5(events_path, device=device)
        likelihood = call_factory(load_factory(factory), events, factory)
        overrides = dict(parse_prior(p, device=device) for p in priors)
        pri = build_priors(declared_parameters(likelihood, events),
                           getattr(likelihood, "parameter_names", None), overrides,
                           dtype=torch.float64, device=device)
        problem = InferenceProblem(likelihood, pri, luminosity=luminosity,
                                   process=events.process)
    except (ValueError, TypeError, OSError) as err:
        raise click.UsageError(str(err)) from err
    source = {"events_file": str(events_path), "likelihood_factory": factory}
    if method == "nuts":
        idata = sample_nuts(problem, num_samples=samples, warmup=warmup, chains=chains,
                            seed=seed)
    else:
        idata, _ = fit_svi(problem, steps=steps, num_samples=samples, seed=seed)
    idata.attrs.update(source)
    save_inference(idata, output, overwrite=overwrite)
    summary = az.summary(idata, round_to="none", kind="all" if method == "nuts" else "stats")
    out = {"output": str(output), "method": method, "n_events": problem.n_events,
           "parameters": {n: {k: float(summary.loc[n, k]) for k in summary.columns}
                          for n in problem.names}}
    if as_json:
        click.echo(json.dumps(out))
        return
    click.echo(f"{events.process or 'events'}: {problem.n_events} events, {method} -> {output}")
    click.echo(summary.to_string())
