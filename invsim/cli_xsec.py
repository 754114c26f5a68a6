"""``invsim xsec``: the total cross section of a built-in process, for people and scripts.

Examples::

    invsim xsec drell-yan --set mzp=2000 --set mll_min=1500 --set mll_max=2500
    invsim xsec drell-yan --set mode=gamma_z --events 2000000 --seed 3 --json
    invsim xsec drell-yan --set leptons=ee --method plain

``--set NAME=VALUE`` takes process parameters (``process.parameters``) and settings
(constructor arguments, ``Process.setting_names()``) alike. ``--json`` prints one
JSON object with the keys ``process, sigma_pb, error_pb, rel_std, n_eval, n_nonzero,
method, seed, parameters, settings``; these keys are stable.
"""

from __future__ import annotations

import importlib
import json
import math

import click

__all__ = ["parse_assignments", "xsec"]


def _process_class(name: str):
    from forward.processes import BUILTIN_PROCESSES

    if name not in BUILTIN_PROCESSES:
        raise click.BadParameter(
            f"expected one of {sorted(BUILTIN_PROCESSES)}, got {name!r}", param_hint="PROCESS"
        )
    module, cls_name = BUILTIN_PROCESSES[name]
    try:
        return getattr(importlib.import_module(module), cls_name)
    except (ImportError, AttributeError) as err:
        raise click.ClickException(f"process {name!r} is not available: {err}") from err


def _parse_value(text: str):
    """A number if it parses as one, None for 'none', else the text itself."""
    low = text.strip().lower()
    if low in ("none", "null"):
        return None
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def parse_assignments(
    items: tuple[str, ...], parameter_names, setting_names
) -> tuple[dict, dict]:
    """Split ``NAME=VALUE`` strings into parameter values and settings.

    Args:
        items: the ``--set`` arguments.
        parameter_names: names of the process's parameters (values must be numbers).
        setting_names: names of its constructor settings.

    Returns:
        (parameters, settings) as dicts.

    Raises:
        click.UsageError: malformed item, unknown name (listing the known ones) or a
            non-numeric parameter value.
    """
    params, settings = {}, {}
    for item in items:
        name, sep, raw = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise click.UsageError(f"--set: expected NAME=VALUE, got {item!r}")
        value = _parse_value(raw)
        if name in parameter_names:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise click.UsageError(
                    f"--set {name}: parameter values must be numbers, got {raw!r}"
                )
            params[name] = float(value)
        elif name in setting_names:
            settings[name] = value
        else:
            raise click.UsageError(
                f"--set: unknown name {name!r}; parameters: {sorted(parameter_names)}; "
                f"settings: {sorted(setting_names)}"
            )
    return params, settings


def _jsonable(value):
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return str(value)


@click.command("xsec")
@click.argument("process_name", metavar="PROCESS")
@click.option("--set", "assignments", multiple=True, metavar="NAME=VALUE",
              help="Process parameter or setting, repeatable (e.g. --set mzp=3000).")
@click.option("--events", "n_events", type=click.IntRange(min=2), default=1_000_000,
              show_default=True, help="Number of integrand evaluations.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the random points.")
@click.option("--method", type=click.Choice(["vegas", "plain"]), default="vegas",
              show_default=True, help="Integration method (VEGAS-adapted or uniform points).")
@click.option("--channel", type=click.IntRange(min=0), default=0, show_default=True,
              help="Phase-space channel (index into the process's phase_space()).")
@click.option("--batch-size", type=click.IntRange(min=2), default=200_000, show_default=True,
              help="Points evaluated at once (memory grows with it).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def xsec(process_name, assignments, n_events, seed, method, channel, batch_size,
         as_json) -> None:
    """Total cross section of PROCESS (e.g. drell-yan) by Monte Carlo, in pb."""
    from forward.xsec import cross_section

    cls = _process_class(process_name)
    probe_names = _parameter_names(cls)
    params, settings = parse_assignments(assignments, probe_names, cls.setting_names())
    try:
        process = cls(**settings)
        values = process.params(params)
        result = cross_section(process, n_events, params=params, channel=channel, seed=seed,
                               method=method, batch_size=batch_size)
    except (ValueError, TypeError) as err:
        raise click.UsageError(str(err)) from err
    parameters = {k: float(v) for k, v in values.items()}
    effective = {name: _jsonable(getattr(process, name, settings.get(name)))
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
        }))
        return
    click.echo(f"{process_name}: {result}")
    click.echo(f"  relative weight spread {result.rel_std:.4g}, {result.n_eval} points "
               f"({result.n_nonzero} non-zero), method {result.method}, seed {seed}")
    click.echo("  parameters: " + ", ".join(f"{k}={v:g}" for k, v in parameters.items()))
    click.echo("  settings: " + ", ".join(f"{k}={v}" for k, v in effective.items()))


def _parameter_names(cls) -> list[str]:
    """Parameter names of a process class (from a default instance)."""
    try:
        return list(cls().parameters)
    except (TypeError, ValueError) as err:
        raise click.ClickException(
            f"cannot build {cls.__name__} with default settings: {err}") from err
