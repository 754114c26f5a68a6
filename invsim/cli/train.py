"""``invsim train``: train the ML-MEM networks of a process through a detector.

Example::

    invsim train drell-yan --detector cms --set mll_min=1500 --set mll_max=2500 \\
        --param mzp=1800:2300 --quick -o dy_model
    invsim train ttbar --set decays=dilepton --detector cms --param mt=165:180 -o tt_model
    invsim train ttbar --set decays=dilepton --param mt=165:180 --param jes=0.95:1.05 \\
        -o tt_jes_model

Unweighted hard events of PROCESS are simulated on a grid across the ``--param``
ranges (:func:`invsim.mem.recipe.training_points`), passed through the detector
(``cms``, a card file, or ``gaussian:sigma_pt=...``) and the analysis observables (the
process's visible final state, object cuts from ``--cut``), and the transfer,
acceptance and proposal networks are trained (:func:`invsim.mem.recipe.build_model`).
The model directory is written atomically; ``invsim scan --model`` and ``invsim
posterior --model`` use it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import click

from invsim.cli._common import (
    DEVICE,
    claim_output,
    file_inputs,
    one_line,
    parameter_names,
    parse_assignments,
    parse_range,
    parse_value,
    process_class_argument,
    quiet,
    show_progress,
    verbosity_options,
)

__all__ = ["train"]

#: (trials, epochs) of the presets
PRESETS = {"quick": (300_000, 4), "default": (1_000_000, 12)}


def _cuts(items) -> dict:
    from invsim.observables import RecoObservables

    known = [f for f in RecoObservables.__dataclass_fields__ if f.endswith(("_min", "_max"))]
    out = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or name.strip() not in known:
            raise click.UsageError(f"--cut: expected NAME=VALUE with NAME in {known}, got "
                                   f"{item!r}")
        value = parse_value(raw)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise click.UsageError(f"--cut {name}: expected a number, got {raw!r}")
        out[name.strip()] = float(value)
    return out


@click.command("train")
@click.argument("process_name", metavar="PROCESS")
@click.option("--detector", default="cms", show_default=True,
              help="'cms' (the default card), a JSON/YAML card file, or "
                   "'gaussian:sigma_pt=0.05,sigma_eta=0.01,sigma_phi=0.01,pt_min=20,eta_max=2.5'.")
@click.option("--set", "assignments", multiple=True, metavar="NAME=VALUE",
              help="Process setting (e.g. decays=dilepton) or fixed parameter; repeatable.")
@click.option("--param", "params", multiple=True, metavar="NAME=LO:HI",
              help="Parameter range the model covers; repeatable. jes=LO:HI trains the "
                   "card detector's jet energy scale as a nuisance (--nuisance jes later).")
@click.option("--cut", "cuts", multiple=True, metavar="NAME=VALUE",
              help="Object cut of the analysis observables, e.g. lepton_pt_min=20; repeatable.")
@click.option("--quick", is_flag=True,
              help=f"Small training ({PRESETS['quick'][0]} trials, {PRESETS['quick'][1]} "
                   "epochs) for a first look.")
@click.option("--trials", type=click.IntRange(min=1000, max=100_000_000), default=None,
              help=f"Weighted trial points of the simulation (default "
                   f"{PRESETS['default'][0]}).")
@click.option("--epochs", type=click.IntRange(min=1, max=10_000), default=None,
              help=f"Training epochs per network (default {PRESETS['default'][1]}).")
@click.option("--points-per-axis", type=click.IntRange(min=1, max=20), default=3,
              show_default=True, help="Training points per --param range.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--device", type=DEVICE, default="cpu", show_default=True, help="Torch device.")
@click.option("-o", "--output", "out", required=True,
              type=click.Path(file_okay=False, path_type=Path), help="Model directory.")
@click.option("--overwrite", is_flag=True, help="Replace an existing model directory.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@verbosity_options
def train(process_name, detector, assignments, params, cuts, quick, trials, epochs,
          points_per_axis, seed, device, out, overwrite, as_json) -> None:
    """Train transfer, acceptance and proposal of PROCESS through a detector."""

    from forward.detector import get_detector
    from forward.processes import get_process
    from invsim.mem.recipe import build_model
    from invsim.observables import RecoObservables

    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not overwrite:
            raise click.UsageError(f"{out} exists and is not empty; pass --overwrite to "
                                   "replace it")
        if not (out / "mem.json").exists():
            raise click.UsageError(f"{out} is not a model directory; refusing to overwrite it")
    claim_output(out, inputs=file_inputs(detector), overwrite=overwrite, directory=True)
    cls = process_class_argument(process_name)
    fixed, settings = parse_assignments(assignments, parameter_names(cls), cls.setting_names())
    ranges = dict(parse_range(p) for p in params)
    if any(r is None for r in ranges.values()):
        raise click.UsageError("--param: expected NAME=LO:HI")
    if set(ranges) & set(fixed):
        raise click.UsageError(f"--param/--set: {sorted(set(ranges) & set(fixed))} given both "
                               "a range and a value")
    n_trials, n_epochs = PRESETS["quick" if quick else "default"]
    n_trials, n_epochs = trials or n_trials, epochs or n_epochs
    try:
        process = get_process(process_name, **settings)
        from invsim.mem.detector_nuisances import DETECTOR_NUISANCES

        known = {**DETECTOR_NUISANCES, **process.parameters}  # + jes (card detector)
        unknown = sorted(set(ranges) - set(known))
        if unknown:
            raise ValueError(f"--param: {unknown} are not parameters of {process_name!r}; "
                             f"known: {sorted(process.parameters)} and the detector "
                             f"nuisances {sorted(DETECTOR_NUISANCES)}")
        for k, (lo, hi) in ranges.items():
            par = known[k]
            if not (math.isfinite(lo) and math.isfinite(hi)) or lo < par.low or hi > par.high:
                raise ValueError(f"--param {k}: expected a range inside [{par.low}, "
                                 f"{par.high}], got {lo}:{hi}")
        det = get_detector(detector)
        observables = RecoObservables.for_process(process, **_cuts(cuts))
    except (ValueError, TypeError, FileNotFoundError) as err:
        raise click.UsageError(one_line(err)) from err
    model, info = build_model(process, det, n_trials=n_trials, epochs=n_epochs, seed=seed,
                              observables=observables, theta=fixed or None,
                              ranges=ranges or None, points_per_axis=points_per_axis,
                              progress=show_progress(as_json), device=device)
    model.save(out, overwrite=overwrite)
    summary = {"model": str(out), "process": process_name, "settings": settings,
               "detector": getattr(det, "name", type(det).__name__),
               "ranges": {k: list(v) for k, v in ranges.items()}, "reference": model.params,
               "observables": observables.columns, "trials": n_trials, "epochs": n_epochs,
               **{k: v for k, v in info.items() if k != "train_points"}}
    if as_json:
        click.echo(json.dumps(summary, default=str))
        return
    click.echo(f"{process_name} through {summary['detector']}: {info['train_accepted']} of "
               f"{info['train_events']} simulated events selected, trained in "
               f"{info['train_seconds']:.0f} s -> {out}")
    if quiet():
        return
    dropped = {k: v for k, v in info["selection_failed"].items() if v}
    if dropped:
        click.echo(f"  dropped by the selection: {dropped}")
    click.echo(f"  observables: {', '.join(observables.columns)}")
    click.echo(f"Written to {out}/")
