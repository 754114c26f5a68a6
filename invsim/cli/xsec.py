"""``invsim xsec``: the total cross section of a registered process, for people and scripts.

Examples::

    invsim xsec drell-yan --set mzp=2000 --set mll_min=1500 --set mll_max=2500
    invsim xsec drell-yan --set mode=gamma_z --events 2000000 --seed 3 --json
    invsim xsec drell-yan --set leptons=ee --method plain
    invsim xsec drell-yan --set mode=gamma_z --scale-variations --pdf-variation 315200 --json
    invsim xsec drell-yan --set mur_factor=2 --set muf_factor=0.5
    invsim xsec --list

PROCESS is any registered name (built-ins, :func:`forward.processes.register_process`,
entry points in the group ``invsim.processes``). ``--set NAME=VALUE`` takes process
parameters (``process.parameters``) and settings (constructor arguments,
``Process.setting_names()``) alike. ``--json`` prints one JSON object with the keys
``process, sigma_pb, error_pb, rel_std, n_eval, n_nonzero, method, seed, parameters,
settings``; these keys are stable. Every process takes the settings ``mur_factor`` and
``muf_factor`` (factors on its μ_R and μ_F). ``--quiet`` prints only the first line
(the cross section and its error).

``--scale-variations`` adds the 7-point variation of (μ_R, μ_F) by factors in {½, 1, 2}
and ``--pdf-variation PDF`` (repeatable; a set name, ``NAME/MEMBER`` or an LHAPDF id) other
PDFs, all evaluated at the same points as the central σ
(:func:`forward.variations.cross_section_variations`). ``--json`` then adds
``scale_variations`` and ``pdf_variations`` (name -> ``mur_factor, muf_factor, pdf,
params, sigma_pb, error_pb, shift_pb, shift_error_pb``) and ``scale_envelope`` /
``pdf_envelope`` (``central, low, high, low_name, high_name, low_error, high_error,
low_rel, high_rel``).
"""

from __future__ import annotations

import json

import click

from invsim.cli._common import (
    Count,
    jsonable,
    option_message,
    parameter_names,
    parse_assignments,
    parse_value,
    process_class_argument,
    quiet,
    verbosity_options,
)

__all__ = ["xsec"]


@click.command("xsec")
@click.argument("process_name", metavar="PROCESS", required=False)
@click.option("--set", "assignments", multiple=True, metavar="NAME=VALUE",
              help="Process parameter or setting, repeatable (e.g. --set mzp=3000).")
@click.option("--events", "n_events", type=Count(2), default=1_000_000,
              show_default=True, help="Number of integrand evaluations.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the random points.")
@click.option("--method", type=click.Choice(["vegas", "plain"]), default="vegas",
              show_default=True, help="Integration method (VEGAS-adapted or uniform points).")
@click.option("--channel", type=click.IntRange(min=0), default=0, show_default=True,
              help="Phase-space channel (index into the process's phase_space()).")
@click.option("--batch-size", type=Count(2), default=200_000, show_default=True,
              help="Points evaluated at once (memory grows with it).")
@click.option("--max-hours", type=click.FloatRange(min=0, min_open=True), default=24.0,
              show_default=True,
              help="Refuse a run predicted (from a timed pilot batch) to take longer.")
@click.option("--list", "list_processes", is_flag=True,
              help="List the registered process names and exit.")
@click.option("--scale-variations", is_flag=True,
              help="Also the 7-point mu_R/mu_F variation (factors 1/2, 1, 2) and its envelope.")
@click.option("--pdf-variation", "pdf_variations", multiple=True, metavar="PDF",
              help="Also sigma with this PDF (set name, NAME/MEMBER or LHAPDF id), repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@verbosity_options
def xsec(process_name, assignments, n_events, seed, method, channel, batch_size, max_hours,
         list_processes, scale_variations, pdf_variations, as_json) -> None:
    """Total cross section of PROCESS by Monte Carlo, in pb (e.g. PROCESS = drell-yan)."""
    from forward import variations as var
    from forward.processes import available_processes
    from forward.xsec import cross_section

    if list_processes:
        names = available_processes()
        click.echo(json.dumps(names) if as_json else "\n".join(names))
        return
    if process_name is None:
        raise click.UsageError("Missing argument 'PROCESS' (see --list for the names).")
    cls = process_class_argument(process_name)
    params, settings = parse_assignments(assignments, parameter_names(cls),
                                         cls.setting_names())
    try:
        process = cls(**settings)
        values = process.params(params)
        scale = var.scale_variations() if scale_variations else []
        pdfs = var.pdf_variations([parse_value(p) for p in pdf_variations])
        varied = None
        if scale or pdfs:
            varied = var.cross_section_variations(
                process, scale + pdfs, n_events, params=params, channel=channel, seed=seed,
                method=method, batch_size=batch_size)
            result = varied.central
        else:
            result = cross_section(process, n_events, params=params, channel=channel,
                                   seed=seed, method=method, batch_size=batch_size,
                                   max_seconds=3600.0 * max_hours)
    except (ValueError, TypeError, FileNotFoundError) as err:  # bad --set pdf= too
        raise click.UsageError(option_message(
            err, {"n": "--events", "batch_size": "--batch-size", "channel": "--channel"})
        ) from err
    groups = {}
    if varied is not None:
        table = varied.to_dict()
        for key, group in (("scale", scale), ("pdf", pdfs)):
            if group:
                names = [v.name for v in group]
                groups[key] = ({n: _jsonable_dict(table[n]) for n in names},
                               varied.envelope(names))
    parameters = {k: float(v) for k, v in values.items()}
    effective = {name: jsonable(getattr(process, name, settings.get(name)))
                 for name in cls.setting_names()}
    if as_json:
        click.echo(json.dumps({
            "process": process_name,
            "sigma_pb": result.value,
            "error_pb": result.error,
            "rel_std": result.rel_std,
            "n_eval": result.n_eval,
            "n_nonzero": result.n_nonzero,
            "method": result.method,
            "seed": seed,
            "parameters": parameters,
            "settings": effective,
            **{f"{key}_variations": rows for key, (rows, _) in groups.items()},
            **{f"{key}_envelope": _jsonable_dict(env.to_dict())
               for key, (_, env) in groups.items()},
        }))
        return
    click.echo(f"{process_name}: {result}")
    if quiet():
        return
    click.echo(f"  relative weight spread {result.rel_std:.4g}, {result.n_eval} points "
               f"({result.n_nonzero} non-zero), method {result.method}, seed {seed}")
    click.echo("  parameters: " + ", ".join(f"{k}={v:g}" for k, v in parameters.items()))
    click.echo("  settings: " + ", ".join(f"{k}={v}" for k, v in effective.items()))
    for key, (rows, env) in groups.items():
        click.echo(f"  {key} variations (same points; shift ± its error):")
        for name, row in rows.items():
            click.echo(f"    {name}: σ = {row['sigma_pb']:.6g} ± {row['error_pb']:.2g} pb, "
                       f"shift {row['shift_pb']:+.4g} ± {row['shift_error_pb']:.2g} pb")
        click.echo(f"  {key} envelope: [{env.low:.6g}, {env.high:.6g}] pb "
                   f"({100 * (env.low / env.central - 1):+.2f}% {env.low_name}, "
                   f"{100 * (env.high / env.central - 1):+.2f}% {env.high_name})")


def _jsonable_dict(row: dict) -> dict:
    """A result row with every value JSON-safe (see :func:`jsonable`)."""
    return {k: _jsonable_dict(v) if isinstance(v, dict) else jsonable(v)
            for k, v in row.items()}
