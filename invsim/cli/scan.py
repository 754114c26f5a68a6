"""``invsim scan``: a likelihood scan in one or two parameters from the command line.

Examples::

    invsim scan --model dy_model --data my_events.root --param mzp=1800:2300:41 -o scan_mzp
    invsim scan --data dy.h5 --likelihood my_analysis:make_likelihood \\
        --param mzp=1800:2200:41 --profile gzp --luminosity 139000 -o scan_mzp

``--model`` names a model directory written by ``invsim train`` (or
:meth:`invsim.mem.MEMModel.save`); ``--data`` is then any events file
:func:`invsim.data.load_observed` reads (invsim's own, NanoAOD-style ROOT/HDF5), whose
events pass through the model's analysis observables. Otherwise ``--likelihood`` names
a user factory as ``module:function`` (the module importable, e.g. on ``PYTHONPATH``)
or ``path/to/file.py:function``. The factory is called with the
:class:`~forward.eventset.EventSet` read from ``--data`` (an HDF5 file written by
``invsim generate`` or :func:`forward.io.save_hdf5`; its ``reco`` group holds the
reconstructed events) and must return an
:class:`~invsim.infer.likelihood.EventLikelihood` bound to those events::

    def make_likelihood(events: EventSet) -> EventLikelihood: ...

The output folder receives ``scan.nc`` (xarray Dataset), ``scan.csv`` (one row per
grid point), ``scan.json`` (best fit, intervals or contours) and ``scan.png``. With
``--json`` the summary is printed as one JSON object with the keys ``parameters,
profiled, fixed, best_fit, min_m2logl, min_m2logl_error, at_edge, n_events,
luminosity_pb, all_converged, intervals, contours, n_flagged, flag_reasons, reliable,
flag_message, warnings, inputs, files``. When the likelihood flags events (the ML-MEM's
importance-sampling diagnostics), ``reliable`` is false, ``flag_message`` says how many
and why, and the plain output prints it as a ``warning:`` line; ``--on-flagged error``
stops with a one-line error instead. ``--events`` is the old name of ``--data``.

With ``--workers N`` (a local Dask cluster of N single-threaded processes) or
``--scheduler ADDRESS`` (a running ``dask scheduler``) the batches of ``--batch-size``
grid points are evaluated on the workers, each holding a copy of the likelihood built
here (the same importance samples), so the summed log L equals the single-process one
to float rounding (see :func:`invsim.scan.scan`); not with ``--profile``. The local
cluster starts in the background while the likelihood is built (reading the events,
drawing the importance samples), its workers forked from a process that has imported
torch and invsim once (:data:`WORKER_MODULES`); the workers of a running scheduler
import them meanwhile. With ``--json`` the summary then also holds ``timings_s``, the
wall time of each phase (``likelihood``, ``wait_client``, ``scan``, ``close``).
"""

from __future__ import annotations

import concurrent.futures
import json
import time
from pathlib import Path

import click

from invsim.cli._common import (
    DEVICE,
    Count,
    claim_output,
    echo_inputs,
    file_inputs,
    inference_inputs,
    likelihood_options,
    model_paths,
    one_line,
    parse_fixed,
    parse_grid,
    parse_range,
    quiet,
    run_provenance,
    show_progress,
    verbosity_options,
)

__all__ = ["WORKER_MODULES", "scan_command"]

#: modules a scan worker needs to unpickle the likelihood and score a batch of grid
#: points, imported before the first batch arrives (the ``preload`` of
#: :func:`forward.distributed.dask_client`); ``invsim.cli`` too, because a worker process
#: re-runs the main module (``python -m invsim``)
WORKER_MODULES = ("invsim.scan", "invsim.mem", "invsim.infer.likelihood", "invsim.cli")


@click.command("scan")
@click.option("--data", "--events", "data", default=None,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Events file: with --model any file invsim reads (invsim HDF5/ROOT, "
                   "NanoAOD-style ROOT/HDF5); with --likelihood an invsim HDF5 file.")
@likelihood_options
@click.option("--param", "params", multiple=True, required=True, metavar="NAME=LO:HI:N",
              help="Scanned parameter and its grid; once (1D) or twice (2D).")
@click.option("--profile", "profiles", multiple=True, metavar="NAME[=LO:HI]",
              help="Profile this parameter (within LO:HI, default its declared range); "
                   "repeatable.")
@click.option("--fix", "fixes", multiple=True, metavar="NAME=VALUE",
              help="Value of a parameter neither scanned nor profiled; repeatable.")
@click.option("--luminosity", type=float, default=None,
              help="Integrated luminosity in pb^-1: adds the Poisson term in the event count.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seeds the importance samples (--model).")
@click.option("--batch-size", type=Count(1, 1_000_000), default=64, show_default=True,
              help="Grid points per likelihood call.")
@click.option("--device", type=DEVICE, default="cpu", show_default=True, help="Torch device of θ.")
@click.option("-o", "--output", "out", required=True,
              type=click.Path(file_okay=False, path_type=Path), help="Output folder.")
@click.option("--overwrite", is_flag=True, help="Replace the files of a non-empty folder.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Evaluate the grid on a local Dask cluster of this many processes.")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Evaluate the grid on a running Dask scheduler (tcp://host:8786).")
@verbosity_options
def scan_command(data, model, factory_spec, params, profiles, fixes, luminosity, n_samples,
                 tree, seed, batch_size, device, on_flagged, out, overwrite, as_json,
                 workers, scheduler, nuisances=(), n_fiducial=100_000) -> None:
    """Scan -2 Delta log L of the events over one or two parameters."""
    import warnings

    from forward.distributed import TaskFailedError
    from forward.files import atomic_target, same_file
    from invsim.infer.flags import FlaggedEventsError, FlaggedEventsWarning
    from invsim.scan import scan

    names = {"netcdf": "scan.nc", "csv": "scan.csv", "json": "scan.json", "png": "scan.png"}
    claim_output(out, overwrite=overwrite, directory=True)
    for inp in [data, *model_paths(model), *file_inputs(factory_spec)]:
        hit = [n for n in names.values() if inp is not None and same_file(out / n, inp)]
        if hit:
            raise click.UsageError(f"-o: {out / hit[0]} is the input {inp}; choose another "
                                   "output folder")
    if len(params) not in (1, 2):
        raise click.UsageError(f"--param: expected one or two scanned parameters, got "
                               f"{len(params)}")
    grid = dict(parse_grid(p) for p in params)
    if len(grid) != len(params):
        raise click.UsageError(f"--param: a parameter is given twice in {list(params)}")
    bounds, profile = {}, []
    for item in profiles:
        name, rng = parse_range(item)
        profile.append(name)
        if rng is not None:
            bounds[name] = rng
    fixed = parse_fixed(fixes)
    # nuisances neither scanned nor profiled by name are profiled
    profile += [n for n in nuisances if n not in grid and n not in profile]
    if workers is not None and scheduler is not None:
        raise click.UsageError("--workers, --scheduler: give one of them, not both")
    if (workers is not None or scheduler is not None) and profile:
        raise click.UsageError("--profile: profiled scans run in one process; drop "
                               "--workers/--scheduler")
    if model is not None and fixed:
        raise click.UsageError("--fix: with --model, parameters that are not scanned or "
                               "profiled stay at the process defaults")
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    try:
        # the cluster starts (or connects) in the background while the likelihood is built
        with _client(workers, scheduler) as client:
            likelihood, source, process = inference_inputs(
                data=data, factory_spec=factory_spec, model=model,
                parameters=[*grid, *profile], n_samples=n_samples, seed=seed, tree=tree,
                on_flagged=on_flagged, device=device, progress=show_progress(as_json),
                nuisances=nuisances, n_fiducial=n_fiducial)
            clock = _lap(timings, "likelihood", clock)
            if isinstance(client, concurrent.futures.Future):
                client.result()  # its start-up error, if any, is raised here
                clock = _lap(timings, "wait_client", clock)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FlaggedEventsWarning)  # in the summary
                result = scan(likelihood, grid, profile=profile, fixed=fixed, bounds=bounds,
                              luminosity=luminosity, batch_size=batch_size, device=device,
                              progress=show_progress(as_json), on_flagged=on_flagged,
                              client=client)
            clock = _lap(timings, "scan", clock)
    except (FlaggedEventsError, ConnectionError, ImportError, TaskFailedError) as err:
        raise click.ClickException(one_line(err)) from err
    except (ValueError, TypeError) as err:
        raise click.UsageError(one_line(err)) from err
    if client is not None:
        _lap(timings, "close", clock)
    record = run_provenance(
        process=getattr(likelihood, "process", None) or process, parameters=fixed, seed=seed,
        device=device, inputs=[data, *model_paths(model), factory_spec], method="scan",
        grid={k: [float(v[0]), float(v[-1]), len(v)] for k, v in grid.items()},
        profiled=profile, luminosity_pb=luminosity, samples_per_event=n_samples)
    result.dataset.attrs["provenance"] = json.dumps(record)
    out.mkdir(parents=True, exist_ok=True)
    files = {k: out / n for k, n in names.items()}
    result.to_netcdf(files["netcdf"], overwrite=overwrite)
    result.to_csv(files["csv"], overwrite=overwrite)
    result.plot(files["png"], overwrite=overwrite)
    summary = result.summary() | {"inputs": source,
                                  "files": {k: str(v) for k, v in files.items()},
                                  "provenance": record}
    summary["warnings"] = [summary["flag_message"]] \
        if summary["flag_message"] and on_flagged == "warn" else []
    if client is not None:
        summary["timings_s"] = {k: round(v, 4) for k, v in timings.items()}
    with atomic_target(files["json"], overwrite, ".json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
    if as_json:
        click.echo(json.dumps(summary))
        return
    echo_inputs(source)
    if summary["flag_message"] and on_flagged == "warn":
        click.echo(f"warning: {summary['flag_message']}")
    click.echo(f"{len(result.parameters)}D scan of {', '.join(result.parameters)} over "
               f"{result.n_events} events" + (f", profiling {', '.join(result.profiled)}"
                                               if result.profiled else ""))
    click.echo("  best fit: " + ", ".join(f"{k} = {v:.6g}" for k, v in result.best_fit.items())
               + (" (at the grid edge)" if result.at_edge else ""))
    for iv in result.intervals:
        click.echo(f"  {100 * iv.cl:.1f}% CL (-2ΔlogL = {iv.level:.3g}): "
                   f"[{iv.lower:.6g}, {iv.upper:.6g}]"
                   + ("  (may be unreliable: flagged events)" if summary["reliable"] is False
                      else ""))
    for c in result.contours:
        click.echo(f"  {100 * c.cl:.1f}% CL contour (-2ΔlogL = {c.level:.3g}): "
                   f"area {c.area:.4g}")
    if not summary["all_converged"]:
        click.echo("  warning: the profile fit did not converge at some grid points "
                   "(see 'converged' in scan.nc)")
    if not quiet():
        click.echo(f"Written to {out}/ (scan.nc, scan.csv, scan.json, scan.png)")


def _client(workers, scheduler):
    """For --workers/--scheduler: a Dask client started in the background (a context
    yielding a :class:`concurrent.futures.Future` of it, the workers preloading
    :data:`WORKER_MODULES`); otherwise a context yielding None."""
    import contextlib

    if workers is None and scheduler is None:
        return contextlib.nullcontext(None)
    from forward.distributed import dask_client

    return dask_client(workers=workers, scheduler=scheduler, preload=WORKER_MODULES,
                       background=True)


def _lap(timings: dict, phase: str, since: float) -> float:
    """Record the seconds since ``since`` as ``timings[phase]``; returns the time now."""
    now = time.perf_counter()
    timings[phase] = now - since
    return now
