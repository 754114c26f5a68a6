"""``invsim generate``: unweighted hard events, optional shower, detector, paired HDF5 file.

Example::

    invsim generate drell-yan --events 10000 --set mll_min=60 --set mll_max=120 \\
        --detector cms --seed 1 -o dy.h5

The hard events are unweighted by :func:`unweight_hit_or_miss` (plain hit-or-miss
against a maximum-weight estimate; to be replaced by the NIS unweighting). With
``--shower`` they go through Pythia 8 and fastjet (:mod:`forward.shower`) before the
detector; ``reco.hard_index`` links every reconstructed event to its hard event.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import click
import torch

from invsim.cli_xsec import parse_assignments

__all__ = ["UnweightingResult", "generate", "unweight_hit_or_miss"]


@dataclass(frozen=True)
class UnweightingResult:
    """Unweighted hard events and the Monte Carlo information gathered on the way.

    Attributes:
        events: accepted hard events (n of them).
        incoming_pids: incoming parton flavours drawn per event from the channel weights,
            shape (n, 2).
        cross_section, error: plain-MC σ and its standard error in pb from every weight
            evaluated (pilot and production).
        max_weight: the maximum-weight estimate used, in pb.
        n_eval: integrand evaluations.
        n_overweight: evaluated weights above ``max_weight`` (each accepted with
            probability 1, a bias of order their excess; 0 is ideal).
        efficiency: accepted / evaluated in the production phase.
    """

    events: object
    incoming_pids: torch.Tensor
    cross_section: float
    error: float
    max_weight: float
    n_eval: int
    n_overweight: int
    efficiency: float


def unweight_hit_or_miss(
    integrand,
    n_events: int,
    *,
    generator: torch.Generator,
    n_pilot: int = 100_000,
    batch_size: int = 100_000,
    safety: float = 1.2,
    progress: bool = False,
) -> UnweightingResult:
    """Unweighted events by hit-or-miss on uniform hypercube points.

    A pilot of ``n_pilot`` points estimates the maximum weight (times ``safety``); then
    batches of uniform points are accepted with probability w / w_max until ``n_events``
    are kept. The flavour of the incoming partons of each accepted event is drawn in
    proportion to its channel weights.

    Args:
        integrand: a :class:`forward.integrand.HadronicIntegrand` (``dim``, ``sample``).
        n_events: number of events to keep.
        generator: source of all random numbers (on the integrand's device).
        n_pilot: points of the maximum-weight pilot run.
        batch_size: points per production batch.
        safety: factor on the pilot's maximum weight.
        progress: show a tqdm bar of accepted events.

    Raises:
        ValueError: all pilot weights zero (no phase space passes the cuts).
    """
    from forward.events import HardEvents
    from forward.eventset import sample_flavours

    dev = generator.device
    kw = {"dtype": torch.float64, "device": dev, "generator": generator}
    s1 = s2 = 0.0
    n_eval = 0

    def evaluate(n):
        nonlocal s1, s2, n_eval
        ev, cw, _ = integrand.sample(torch.rand(n, integrand.dim, **kw))
        w = cw.sum(-1)
        s1 += float(w.sum())
        s2 += float((w * w).sum())
        n_eval += n
        return ev, cw, w

    _, _, w = evaluate(n_pilot)
    w_max = float(w.max()) * safety
    if not w_max > 0:
        raise ValueError("integrand: every pilot weight is zero; check the process's cuts")
    kept, flavours = [], []
    n_kept = n_prod = n_over = 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n_events, desc="unweighting", unit="ev")
    while n_kept < n_events:
        ev, cw, w = evaluate(batch_size)
        n_prod += batch_size
        n_over += int((w > w_max).sum())
        acc = torch.rand(batch_size, **kw) * w_max < w
        idx = torch.nonzero(acc)[:, 0][: n_events - n_kept]
        if len(idx):
            kept.append(ev[idx])
            flavours.append(sample_flavours(cw[idx], integrand.process.flavour_channels,
                                            generator=generator))
            n_kept += len(idx)
            if bar is not None:
                bar.update(len(idx))
    if bar is not None:
        bar.close()
    events = HardEvents(
        torch.cat([e.momenta for e in kept]), torch.cat([e.x1 for e in kept]),
        torch.cat([e.x2 for e in kept]), kept[0].sqrt_s,
    )
    mean = s1 / n_eval
    err = math.sqrt(max(s2 / n_eval - mean**2, 0.0) / (n_eval - 1))
    return UnweightingResult(events, torch.cat(flavours), mean, err, w_max, n_eval, n_over,
                             n_kept / n_prod)


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
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="HDF5 file to write.")
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
def generate(process_name, n_events, assignments, shower, card, seed, device, output,
             overwrite) -> None:
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
    res = unweight_hit_or_miss(integrand, n_events, generator=gen, progress=True)
    events = EventSet(
        process=process_name, momenta=res.events.momenta, x1=res.events.x1, x2=res.events.x2,
        pids=process.sample_final_state(n_events, generator=gen,
                                        device=res.events.momenta.device),
        sqrt_s=res.events.sqrt_s,
        weights=torch.full((n_events,), res.cross_section / n_events, dtype=torch.float64,
                           device=res.events.momenta.device),
        incoming_pids=res.incoming_pids,
        parameters={k: float(v) for k, v in integrand.params.items()},
        settings={k: _plain(v) for k, v in settings.items()},
        cross_section=res.cross_section, cross_section_error=res.error, seed=seed,
        metadata={"generator": "invsim generate (hit-or-miss unweighting)",
                  "max_weight_pb": res.max_weight, "n_eval": res.n_eval,
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
