"""``invsim scan``: a likelihood scan in one or two parameters from the command line.

Example::

    invsim scan --events dy.h5 --likelihood my_analysis:make_likelihood \\
        --param mzp=1800:2200:41 --profile gzp --luminosity 139000 -o scan_mzp

``--likelihood`` names a user factory as ``module:function`` (the module importable,
e.g. on ``PYTHONPATH``) or ``path/to/file.py:function``. The factory is called with the
:class:`~forward.eventset.EventSet` read from ``--events`` (an HDF5 file written by
``invsim generate`` or :func:`forward.io.save_hdf5`; its ``reco`` group holds the
reconstructed events) and must return an
:class:`~invsim.infer.likelihood.EventLikelihood` bound to those events::

    def make_likelihood(events: EventSet) -> EventLikelihood: ...

The output folder receives ``scan.nc`` (xarray Dataset), ``scan.csv`` (one row per
grid point), ``scan.json`` (best fit, intervals or contours) and ``scan.png``. With
``--json`` the summary is printed as one JSON object with the keys ``parameters,
profiled, fixed, best_fit, min_m2logl, min_m2logl_error, at_edge, n_events,
luminosity_pb, all_converged, intervals, contours, n_flagged, flag_reasons, reliable,
flag_message, events, likelihood, files, warnings``. When the likelihood flags events (e.g. the
ML-MEM's importance-sampling diagnostics), ``reliable`` is false, ``flag_message`` says
how many and why, and the plain output prints it as a ``warning:`` line;
``--on-flagged error`` stops with a one-line error instead.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import warnings
from pathlib import Path

import click
import torch

__all__ = ["load_factory", "parse_grid", "parse_range", "scan_command"]


def _float(text: str, what: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise click.BadParameter(f"{what}: expected a number, got {text!r}") from None
    if math.isnan(v):
        raise click.BadParameter(f"{what}: expected a number, got NaN")
    return v


def parse_grid(item: str) -> tuple[str, torch.Tensor]:
    """Parse ``NAME=LO:HI:N`` into the name and N equally spaced float64 values.

    Raises:
        click.BadParameter: malformed item, non-finite bounds, LO >= HI or N < 3.
    """
    name, sep, spec = item.partition("=")
    parts = spec.split(":")
    if not sep or not name.strip() or len(parts) != 3:
        raise click.BadParameter(f"expected NAME=LO:HI:N, got {item!r}", param_hint="--param")
    lo, hi = (_float(p, f"--param {name}") for p in parts[:2])
    try:
        n = int(parts[2])
    except ValueError:
        raise click.BadParameter(f"expected an integer number of points N, got {parts[2]!r}",
                                 param_hint="--param") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi) or n < 3:
        raise click.BadParameter(f"{name}: expected finite LO < HI and N >= 3, got {spec!r}",
                                 param_hint="--param")
    return name.strip(), torch.linspace(lo, hi, n, dtype=torch.float64)


def parse_range(item: str) -> tuple[str, tuple[float, float] | None]:
    """Parse ``NAME`` or ``NAME=LO:HI`` (bounds of a profiled parameter; ±inf allowed)."""
    name, sep, spec = item.partition("=")
    if not name.strip():
        raise click.BadParameter(f"expected NAME or NAME=LO:HI, got {item!r}",
                                 param_hint="--profile")
    if not sep:
        return name.strip(), None
    parts = spec.split(":")
    if len(parts) != 2:
        raise click.BadParameter(f"expected NAME=LO:HI, got {item!r}", param_hint="--profile")
    lo, hi = (_float(p, f"--profile {name}") for p in parts)
    if not lo < hi:
        raise click.BadParameter(f"{name}: expected LO < HI, got {spec!r}",
                                 param_hint="--profile")
    return name.strip(), (lo, hi)


def load_factory(spec: str):
    """Import the likelihood factory named by ``module:function`` or ``file.py:function``.

    Raises:
        click.BadParameter: malformed spec, module or file not found, no such callable.
    """
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr.isidentifier():
        raise click.BadParameter(f"expected MODULE:FUNCTION or FILE.py:FUNCTION, got {spec!r}",
                                 param_hint="--likelihood")
    try:
        if target.endswith(".py"):
            path = Path(target)
            if not path.is_file():
                raise FileNotFoundError(f"no such file {target!r}")
            mod_spec = importlib.util.spec_from_file_location(f"_invsim_scan_{path.stem}",
                                                              path)
            module = importlib.util.module_from_spec(mod_spec)
            mod_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except (ImportError, FileNotFoundError) as err:
        raise click.BadParameter(f"cannot import {target!r}: {err}",
                                 param_hint="--likelihood") from err
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise click.BadParameter(f"{target!r} has no callable {attr!r}",
                                 param_hint="--likelihood")
    return factory


def _parse_fixed(items) -> dict[str, float]:
    out = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint="--fix")
        out[name.strip()] = _float(raw, f"--fix {name}")
    return out


@click.command("scan")
@click.option("--events", "events_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="HDF5 event file (invsim generate / forward.io.save_hdf5).")
@click.option("--likelihood", "factory_spec", required=True, metavar="MODULE:FUNCTION",
              help="Factory called with the EventSet, returning an EventLikelihood "
                   "(module:function or file.py:function).")
@click.option("--param", "params", multiple=True, required=True, metavar="NAME=LO:HI:N",
              help="Scanned parameter and its grid; once (1D) or twice (2D).")
@click.option("--profile", "profiles", multiple=True, metavar="NAME[=LO:HI]",
              help="Profile this parameter (within LO:HI, default its declared range); "
                   "repeatable.")
@click.option("--fix", "fixes", multiple=True, metavar="NAME=VALUE",
              help="Value of a parameter neither scanned nor profiled; repeatable.")
@click.option("--luminosity", type=float, default=None,
              help="Integrated luminosity in pb^-1: adds the Poisson term in the event count.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True,
              help="Grid points per likelihood call.")
@click.option("--device", default="cpu", show_default=True, help="Torch device of θ.")
@click.option("-o", "--output", "out", required=True,
              type=click.Path(file_okay=False, path_type=Path), help="Output folder.")
@click.option("--overwrite", is_flag=True, help="Replace the files of a non-empty folder.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.option("--on-flagged", type=click.Choice(["error", "warn", "ignore"]), default="warn",
              show_default=True,
              help="When the likelihood flags events: stop with an error, warn in the "
                   "summary, or say nothing (the counts are recorded in any case).")
def scan_command(events_path, factory_spec, params, profiles, fixes, luminosity, batch_size,
                 device, out, overwrite, as_json, on_flagged) -> None:
    """Scan -2 Delta log L of the events over one or two parameters."""
    from forward.files import atomic_target
    from forward.io import load_hdf5
    from invsim.infer.flags import FlaggedEventsError, FlaggedEventsWarning
    from invsim.scan import scan

    if out.exists() and any(out.iterdir()) and not overwrite:
        raise click.UsageError(f"{out} exists and is not empty; pass --overwrite to replace "
                               "its files")
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
    fixed = _parse_fixed(fixes)
    factory = load_factory(factory_spec)
    try:
        events = load_hdf5(events_path)
    except (ValueError, OSError) as err:
        raise click.UsageError(f"--events: {err}") from err
    try:
        likelihood = factory(events)
    except (ValueError, TypeError) as err:
        raise click.UsageError(f"--likelihood: {factory_spec} failed: {err}") from err
    try:
        with warnings.catch_warnings():  # reported in the summary lines instead
            warnings.simplefilter("ignore", FlaggedEventsWarning)
            result = scan(likelihood, grid, profile=profile, fixed=fixed, bounds=bounds,
                          luminosity=luminosity, batch_size=batch_size, device=device,
                          progress=not as_json, on_flagged=on_flagged)
    except FlaggedEventsError as err:
        raise click.ClickException(str(err)) from err
    except (ValueError, TypeError) as err:
        raise click.UsageError(str(err)) from err
    out.mkdir(parents=True, exist_ok=True)
    files = {"netcdf": out / "scan.nc", "csv": out / "scan.csv", "json": out / "scan.json",
             "png": out / "scan.png"}
    result.to_netcdf(files["netcdf"], overwrite=overwrite)
    result.to_csv(files["csv"], overwrite=overwrite)
    result.plot(files["png"], overwrite=overwrite)
    summary = result.summary() | {"events": str(events_path), "likelihood": factory_spec,
                                  "files": {k: str(v) for k, v in files.items()}}
    summary["warnings"] = [summary["flag_message"]] \
        if summary["flag_message"] and on_flagged == "warn" else []
    with atomic_target(files["json"], overwrite, ".json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
    if as_json:
        click.echo(json.dumps(summary))
        return
    if summary["flag_message"] and on_flagged == "warn":
        click.echo(f"warning: {summary['flag_message']}")
    click.echo(f"{len(result.parameters)}D scan of {', '.join(result.parameters)} over "
               f"{result.n_events} events" + (f", profiling {', '.join(result.profiled)}"
                                               if result.profiled else ""))
    click.echo("  best fit: " + ", ".join(f"{k} = {v:.6g}" for k, v in result.best_fit.items())
               + (" (at the grid edge)" if result.at_edge else ""))
    for iv in result.intervals:
        click.echo(f"  {100 * iv.cl:.1f}% CL (-2ΔlogL = {iv.level:.3g}): "
                   f"[{iv.lower:.6g}, {iv.upper:.6g}]")
    for c in result.contours:
        click.echo(f"  {100 * c.cl:.1f}% CL contour (-2ΔlogL = {c.level:.3g}): "
                   f"area {c.area:.4g}")
    if not summary["all_converged"]:
        click.echo("  warning: the profile fit did not converge at some grid points "
                   "(see 'converged' in scan.nc)")
    click.echo(f"Written to {out}/ (scan.nc, scan.csv, scan.json, scan.png)")
