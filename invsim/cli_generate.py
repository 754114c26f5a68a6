"""``invsim generate``: unweighted hard events, optional shower, detector, paired HDF5 file.

Example::

    invsim generate drell-yan --events 10000 --set mll_min=60 --set mll_max=120 \\
        --detector cms --train-calls 200000 --seed 1 -o dy.h5

The hard events come from :func:`generate_hard_events`: a multi-channel NIS sampler
(:mod:`forward.nis.multichannel`, one channel per phase-space map of the process,
learned channel weights, per-channel VEGAS grids) is trained on ``--train-calls``
integrand calls, then weighted events are drawn and unweighted with
:func:`forward.nis.unweight` at the ``--overweight`` fraction. With ``--shower`` they
go through Pythia 8 and fastjet (:mod:`forward.shower`) before the detector;
``reco.hard_index`` links every reconstructed event to its hard event.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import click
import torch

from invsim.cli_xsec import parse_assignments

__all__ = ["GeneratedEvents", "generate", "generate_hard_events"]


@dataclass(frozen=True)
class GeneratedEvents:
    """Unweighted hard events and the Monte Carlo information gathered on the way.

    Attributes:
        events: the accepted hard events (``n_events`` of them), in random order.
        event_weights: their weights in units of the maximum weight, shape (n,): 1, or
            > 1 for the few overweight events (see :func:`forward.nis.unweight`).
        incoming_pids: incoming parton flavours drawn per event from the flavour-channel
            weights, shape (n, 2).
        cross_section, error: σ and its standard error in pb from the weighted events
            drawn after training (batches combined with inverse-variance weights).
        efficiency: unweighting efficiency <|w|>/w_max of the last batch.
        overweight_fraction: share of the total weight above w_max (last batch).
        n_overweight: weighted events above w_max, summed over batches.
        n_train: integrand calls of the training.
        n_eval: integrand calls after training.
    """

    events: object
    event_weights: torch.Tensor
    incoming_pids: torch.Tensor
    cross_section: float
    error: float
    efficiency: float
    overweight_fraction: float
    n_overweight: int
    n_train: int
    n_eval: int


def generate_hard_events(
    integrand,
    n_events: int,
    *,
    generator: torch.Generator,
    train_calls: int = 200_000,
    overweight: float = 1e-3,
    progress: bool = False,
) -> GeneratedEvents:
    """Unweighted hard events by multi-channel NIS training and unweighting.

    The sampler of :func:`forward.nis.multichannel.fit_multichannel` is trained on
    ``train_calls`` calls; then batches of weighted events, sized by the measured
    efficiency, are unweighted (each batch with its own maximum weight) until
    ``n_events`` are kept. Incoming parton flavours are drawn per event in proportion
    to its flavour-channel weights.

    Args:
        integrand: a :class:`forward.integrand.HadronicIntegrand`.
        n_events: number of events to keep (>= 1).
        generator: source of all random numbers (on the integrand's device).
        train_calls: integrand calls for training (>= 1000).
        overweight: allowed fraction of the total weight above the maximum weight.
        progress: show progress bars (training rounds, accepted events).

    Returns:
        A :class:`GeneratedEvents`.

    Raises:
        ValueError: bad counts, or an integrand that is zero everywhere.
    """
    from tqdm.auto import tqdm

    from forward.eventset import sample_flavours
    from forward.nis import combine_estimates
    from forward.nis.multichannel import (
        MultiChannelConfig,
        concat_points,
        fit_multichannel,
        hadronic_channels,
    )

    for name, v, low in (("n_events", n_events, 1), ("train_calls", train_calls, 1000)):
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ValueError(f"{name}: expected an integer >= {low}, got {v!r}")
    f, maps = hadronic_channels(integrand)
    cfg = MultiChannelConfig(calls=train_calls, rounds=min(10, max(2, train_calls // 20_000)))
    mc = fit_multichannel(f, maps, cfg, generator=generator, device=generator.device,
                          progress=progress)
    kept, weights, values, errors = [], [], [], []
    n_kept = n_over = n_eval = 0
    eff, ow = 0.5, 0.0
    bar = tqdm(total=n_events, disable=not progress, desc="unweighting", unit="ev")
    while n_kept < n_events:
        # weighted events per batch: enough for the rest at the last efficiency, bounded
        # below (a stable w_max) and above (memory)
        n_draw = min(1_000_000, max(20_000, math.ceil(1.2 * (n_events - n_kept) / eff)))
        u = mc.unweight(n_draw, overweight, generator=generator)
        n_eval += n_draw
        values.append(u.result.value)
        errors.append(u.result.error)
        if not u.result.value > 0:
            raise ValueError("integrand: the cross section is zero; check the process's cuts")
        eff, ow = u.unweighting.efficiency, u.unweighting.overweight_fraction
        n_over += u.unweighting.n_overweight
        take = min(n_events - n_kept, len(u.event_weights))
        kept.append(u.points[:take])
        weights.append(u.event_weights[:take])
        n_kept += take
        bar.update(take)
    bar.close()
    events = concat_points(kept)
    flavours = sample_flavours(integrand.channel_contributions(events),
                               integrand.process.flavour_channels, generator=generator)
    value, error, _ = combine_estimates(values, errors)
    return GeneratedEvents(events, torch.cat(weights), flavours, value, error, eff, ow, n_over,
                           mc.n_eval, n_eval)


@click.command("generate")
@click.argument("process_name", metavar="PROCESS")
@click.option("--events", "n_events", type=click.IntRange(min=1), required=True,
              help="Number of unweighted hard events.")
@click.option("--set", "assignments", multiple=True, metavar="NAME=VALUE",
              help="Process parameter or setting, repeatable (e.g. --set mll_min=60).")
@click.option("--shower", is_flag=True, help="Shower and hadronise with Pythia 8 + fastjet.")
@click.option("--detector", "card", default="cms", show_default=True, metavar="CARD",
              help="Detector card: 'cms' or a JSON/YAML file.")
@click.option("--seed", type=click.IntRange(min=0, max=899_999_999), default=0,
              show_default=True, help="Seed of every random number (Pythia gets seed + 1).")
@click.option("--device", default="cpu", show_default=True, help="Torch device.")
@click.option("--train-calls", type=click.IntRange(min=1000), default=200_000, show_default=True,
              help="Integrand calls for training the multi-channel NIS sampler.")
@click.option("--overweight", type=click.FloatRange(min=0.0, max=1.0, max_open=True),
              default=1e-3, show_default=True,
              help="Allowed fraction of the total weight above the maximum weight.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="HDF5 file to write.")
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
def generate(process_name, n_events, assignments, shower, card, seed, device, train_calls,
             overweight, output, overwrite) -> None:
    """Generate N unweighted events of PROCESS, apply the detector, write hard/reco pairs."""
    from forward.detector import Detector
    from forward.eventset import EventSet
    from forward.integrand import HadronicIntegrand
    from forward.io import save_hdf5
    from forward.processes import BUILTIN_PROCESSES, get_process

    if output.exists() and not overwrite:
        raise click.UsageError(f"{output} exists; pass --overwrite to replace it")
    if process_name not in BUILTIN_PROCESSES:
        raise click.BadParameter(f"expected one of {sorted(BUILTIN_PROCESSES)}, got "
                                 f"{process_name!r}", param_hint="PROCESS")
    try:
        probe = get_process(process_name)
        params, settings = parse_assignments(assignments, list(probe.parameters),
                                             probe.setting_names())
        process = get_process(process_name, **settings)
        detector = Detector(card)
        integrand = HadronicIntegrand(process, params=params, device=device)
    except (ValueError, TypeError, FileNotFoundError) as err:
        raise click.UsageError(str(err)) from err
    gen = torch.Generator(device=device).manual_seed(seed)
    try:
        res = generate_hard_events(integrand, n_events, generator=gen, train_calls=train_calls,
                                   overweight=overweight, progress=True)
    except ValueError as err:
        raise click.UsageError(str(err)) from err
    w = res.event_weights.to(torch.float64)
    events = EventSet(
        process=process_name, momenta=res.events.momenta, x1=res.events.x1, x2=res.events.x2,
        pids=process.sample_final_state(n_events, generator=gen,
                                        device=res.events.momenta.device),
        sqrt_s=res.events.sqrt_s,
        weights=res.cross_section * w / w.sum(),
        incoming_pids=res.incoming_pids,
        parameters={k: float(v) for k, v in integrand.params.items()},
        settings={k: _plain(v) for k, v in settings.items()},
        cross_section=res.cross_section, cross_section_error=res.error, seed=seed,
        metadata={"generator": "invsim generate (multi-channel NIS unweighting)",
                  "train_calls": res.n_train, "n_eval": res.n_eval,
                  "overweight": overweight, "overweight_fraction": res.overweight_fraction,
                  "n_overweight": res.n_overweight, "efficiency": res.efficiency,
                  "detector_card": detector.card.to_dict(), "shower": bool(shower)},
    )
    try:
        if shower:
            from forward.shower import ShowerSettings
            from forward.shower import shower as run_shower

            showered = run_shower(events, ShowerSettings(), seed=seed + 1, progress=True)
            objects = showered.objects.to(device)
            events.metadata["shower_failed"] = showered.failed.tolist()
        else:
            objects = events.objects()
        events.reco = detector(objects, generator=gen)
    except ValueError as err:
        raise click.UsageError(str(err)) from err
    save_hdf5(events, output, overwrite=overwrite)
    passed = int(events.reco.passed.sum())
    click.echo(f"{process_name}: {n_events} events, σ = {res.cross_section:.6g} ± "
               f"{res.error:.2g} pb, unweighting efficiency {res.efficiency:.3g}, "
               f"{res.n_overweight} overweight; {passed} pass the selection -> {output}")


def _plain(value):
    return value if value is None or isinstance(value, (bool, int, float, str)) else str(value)
