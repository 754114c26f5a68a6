"""``invsim posterior``: sample θ given an event file and a likelihood, write NetCDF.

Example::

    invsim posterior dy.h5 --likelihood mypkg.mem:load_likelihood \\
        --prior mzp=uniform:1500,2500 --chains 4 --samples 1000 --warmup 1000 \\
        --seed 1 -o posterior.nc

The likelihood comes from a *factory*, ``--likelihood module:function``: the function
is imported and called with the loaded :class:`~forward.eventset.EventSet` and must
return an :class:`~invsim.infer.EventLikelihood` bound to those events. (Loading a
saved ML-MEM model by its stored kind will plug in here once :mod:`invsim.mem` has a
save format; a factory that calls its ``load`` covers it meanwhile.) Parameter ranges
come from the likelihood's ``parameters`` attribute if it has one, else from the
event file's process; priors default to uniform over them.
"""

from __future__ import annotations

import importlib
import json
import warnings
from pathlib import Path

import click

__all__ = ["load_factory", "posterior"]


def load_factory(spec: str):
    """Import ``"module:function"`` and return the callable.

    Raises:
        ValueError: malformed text, a module that cannot be imported or a missing or
            non-callable attribute.
    """
    module, sep, attr = spec.partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"--likelihood: expected 'module:function', got {spec!r}")
    try:
        mod = importlib.import_module(module)
    except ImportError as err:
        raise ValueError(f"--likelihood: cannot import module {module!r}: {err}") from None
    fn = getattr(mod, attr, None)
    if not callable(fn):
        raise ValueError(f"--likelihood: {module!r} has no callable {attr!r}")
    return fn


def _declared(likelihood, events):
    params = getattr(likelihood, "parameters", None)
    if params is not None:
        return params
    from forward.processes import get_process

    try:
        return get_process(events.process, **events.settings).parameters
    except (KeyError, ValueError, TypeError) as err:
        raise ValueError(f"the likelihood has no 'parameters' and the event file's process "
                         f"{events.process!r} gives none: {err}") from None


@click.command("posterior")
@click.argument("events_path", metavar="EVENTS", type=click.Path(exists=True, dir_okay=False,
                                                                 path_type=Path))
@click.option("--likelihood", "factory", required=True, metavar="MODULE:FUNCTION",
              help="Factory called with the EventSet, returning an EventLikelihood.")
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
@click.option("--on-flagged", type=click.Choice(["error", "warn", "ignore"]), default="warn",
              show_default=True,
              help="When the likelihood flags events at the draws: stop with an error, warn "
                   "in the summary, or say nothing (recorded in the file in any case).")
def posterior(events_path, factory, priors, method, chains, samples, warmup, steps, luminosity,
              seed, device, output, overwrite, as_json, on_flagged) -> None:
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
    from invsim.infer.flags import FlaggedEventsError, FlaggedEventsWarning

    if output.exists() and not overwrite:
        raise click.UsageError(f"{output} exists; pass --overwrite to replace it")
    try:
        events = load_hdf5(events_path, device=device)
        likelihood = load_factory(factory)(events)
        overrides = dict(parse_prior(p, device=device) for p in priors)
        pri = build_priors(_declared(likelihood, events),
                           getattr(likelihood, "parameter_names", None), overrides,
                           dtype=torch.float64, device=device)
        problem = InferenceProblem(likelihood, pri, luminosity=luminosity,
                                   process=events.process, on_flagged=on_flagged)
    except (ValueError, TypeError, OSError) as err:
        raise click.UsageError(str(err)) from err
    source = {"events_file": str(events_path), "likelihood_factory": factory}
    try:
        with warnings.catch_warnings():  # reported in the summary lines instead
            warnings.simplefilter("ignore", FlaggedEventsWarning)
            if method == "nuts":
                idata = sample_nuts(problem, num_samples=samples, warmup=warmup,
                                    chains=chains, seed=seed)
            else:
                idata, _ = fit_svi(problem, steps=steps, num_samples=samples, seed=seed)
    except FlaggedEventsError as err:
        raise click.ClickException(str(err)) from err
    idata.attrs.update(source)
    save_inference(idata, output, overwrite=overwrite)
    summary = az.summary(idata, round_to="none", kind="all" if method == "nuts" else "stats")
    out = {"output": str(output), "method": method, "n_events": problem.n_events,
           "parameters": {n: {k: float(summary.loc[n, k]) for k in summary.columns}
                          for n in problem.names}}
    flag_message = str(idata.attrs.get("flag_message", ""))
    out |= {"n_flagged": idata.attrs.get("n_flagged"),
            "flag_reasons": json.loads(idata.attrs.get("flag_reasons", "{}")),
            "reliable": (None if "reliable" not in idata.attrs
                         else bool(idata.attrs["reliable"])),
            "flag_message": flag_message,
            "warnings": [flag_message] if flag_message and on_flagged == "warn" else []}
    if as_json:
        click.echo(json.dumps(out))
        return
    click.echo(f"{events.process or 'events'}: {problem.n_events} events, {method} -> {output}")
    click.echo(summary.to_string())
    if flag_message and on_flagged == "warn":
        click.echo(f"warning: {flag_message}")
