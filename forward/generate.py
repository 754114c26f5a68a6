"""Event generation: unweighted hard events, optional shower, detector, an ``EventSet``.

:func:`generate_hard_events` trains a multi-channel NIS sampler
(:mod:`forward.nis.multichannel`, one channel per phase-space map of the process,
learned channel weights, per-channel VEGAS grids) on ``train_calls`` integrand calls,
then draws weighted events and unweights them with :func:`forward.nis.unweight` at the
``overweight`` fraction. :func:`generate_events` builds a registered process by name,
generates its hard events, optionally showers them with Pythia 8 and fastjet
(:mod:`forward.shower`), applies the detector and returns the paired
:class:`~forward.eventset.EventSet` that ``invsim generate`` writes to HDF5
(``reco.hard_index`` links every reconstructed event to its hard event).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from forward._validation import check_memory, resolve_device
from forward.progress import progress_bar
from forward.provenance import input_hashes, provenance

__all__ = [
    "BYTES_PER_EVENT",
    "GeneratedEvents",
    "detected_event_set",
    "generate_events",
    "generate_hard_events",
    "setup_generation",
    "unweighted_events",
]

#: memory held per generated event until it is written, in bytes (estimate: hard
#: momenta, flavours, weights, detector objects and the copies made while writing)
BYTES_PER_EVENT = 4096


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
        batch_values, batch_errors: σ and its error in pb of every weighted batch, in
            order (combined into ``cross_section``; chunked runs combine all chunks').
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
    batch_values: tuple[float, ...] = ()
    batch_errors: tuple[float, ...] = ()


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
    from forward.nis.multichannel import MultiChannelConfig, fit_multichannel, hadronic_channels
    from forward.xsec import BYTES_PER_POINT

    for name, v, low in (("n_events", n_events, 1), ("train_calls", train_calls, 1000)):
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ValueError(f"{name}: expected an integer >= {low}, got {v!r}")
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator: expected a torch.Generator, got {type(generator).__name__}")
    check_memory("n_events", n_events, BYTES_PER_EVENT, device=generator.device,
                 what="events")
    f, maps = hadronic_channels(integrand)
    cfg = MultiChannelConfig(calls=train_calls, rounds=min(10, max(2, train_calls // 20_000)))
    # a training round holds all its points (the channel weights train on them)
    check_memory(f"train_calls={train_calls}", cfg.calls // cfg.rounds, BYTES_PER_POINT,
                 device=generator.device, what="integrand calls per training round")
    mc = fit_multichannel(f, maps, cfg, generator=generator, device=generator.device,
                          progress=progress)
    return unweighted_events(mc, integrand, n_events, generator=generator,
                             overweight=overweight, progress=progress)


def unweighted_events(
    sampler,
    integrand,
    n_events: int,
    *,
    generator: torch.Generator,
    overweight: float = 1e-3,
    progress: bool = False,
) -> GeneratedEvents:
    """Unweighted hard events from a trained multi-channel sampler.

    Batches of weighted events, sized by the measured efficiency, are unweighted (each
    batch with its own maximum weight) until ``n_events`` are kept; incoming parton
    flavours are then drawn per event in proportion to its flavour-channel weights.
    The second half of :func:`generate_hard_events`, also run per chunk by
    :func:`forward.chunked.generate_events_chunked`.

    Args:
        sampler: a trained :class:`forward.nis.multichannel.MultiChannel` of the
            integrand's :func:`~forward.nis.multichannel.hadronic_channels`.
        integrand: the :class:`forward.integrand.HadronicIntegrand` it was trained on.
        n_events: number of events to keep (>= 1).
        generator: source of all random numbers (on the integrand's device).
        overweight: allowed fraction of the total weight above the maximum weight.
        progress: show a progress bar of accepted events.

    Returns:
        A :class:`GeneratedEvents` (``n_train`` is the sampler's ``n_eval``).

    Raises:
        ValueError: bad counts, or an integrand that is zero everywhere.
    """
    from forward.eventset import sample_flavours
    from forward.nis import combine_estimates
    from forward.nis.multichannel import concat_points

    if isinstance(n_events, bool) or not isinstance(n_events, int) or n_events < 1:
        raise ValueError(f"n_events: expected an integer >= 1, got {n_events!r}")
    kept, weights, values, errors = [], [], [], []
    n_kept = n_over = n_eval = 0
    eff, ow = 0.5, 0.0
    bar = progress_bar(total=n_events, progress=progress, desc="unweighting", unit="ev")
    while n_kept < n_events:
        # weighted events per batch: enough for the rest at the last efficiency, bounded
        # below (a stable w_max) and above (memory)
        n_draw = min(1_000_000, max(20_000, math.ceil(1.2 * (n_events - n_kept) / eff)))
        u = sampler.unweight(n_draw, overweight, generator=generator)
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
                           sampler.n_eval, n_eval, tuple(values), tuple(errors))


def generate_events(
    process: str,
    n_events: int,
    *,
    settings: Mapping[str, Any] | None = None,
    params: Mapping[str, float] | None = None,
    detector="cms",
    shower: bool = False,
    seed: int = 0,
    device: torch.device | str = "cpu",
    train_calls: int = 200_000,
    overweight: float = 1e-3,
    progress: bool = False,
    variations=None,
):
    """Unweighted events of a registered process with their detector response.

    Args:
        process: registry name (:func:`forward.processes.available_processes`).
        n_events: number of unweighted hard events (>= 1).
        settings: constructor settings of the process (cuts, flavours, ...); recorded
            in the event set as given.
        params: parameter values (numbers) for the generation; defaults otherwise.
        detector: a detector card name (``"cms"``), a JSON/YAML card file or a
            :class:`forward.detector.DetectorCard`; anything :class:`Detector` takes.
        shower: shower and hadronise with Pythia 8 + fastjet (seeded with ``seed + 1``)
            before the detector; ``False`` hands the hard final state to the detector.
        seed: seed of every random number (torch generator on ``device``).
        device: torch device of the integrand and the events.
        train_calls: integrand calls for training the NIS sampler (>= 1000).
        overweight: allowed fraction of the total weight above the maximum weight,
            in [0, 1).
        progress: show progress bars.
        variations: :class:`forward.variations.Variation` objects (e.g.
            :func:`~forward.variations.scale_variations` for the 7-point μ_R/μ_F
            variation, :func:`~forward.variations.pdf_variations`), or None: each
            becomes a named weight (``weights_named``, in pb) of every event,
            ``weight * dσ_var/dμ ÷ dσ/dμ`` at the event's own hard point
            (:func:`forward.variations.event_set_weights`).

    Returns:
        A :class:`forward.eventset.EventSet` with ``reco`` filled; its weights sum to
        the cross section in pb, its ``metadata`` records the generator's statistics
        (efficiency, overweight events, calls), the detector card, the shower flag and,
        with ``variations``, their definitions (``metadata["weight_variations"]``).

    Raises:
        ValueError: unknown process or setting, parameter values out of range, a bad
            detector card, bad counts, an integrand that is zero everywhere, or repeated
            variation names.
        TypeError: a variation that is not a :class:`~forward.variations.Variation`.
        FileNotFoundError: a detector card file that does not exist.
        forward.pdf.PDFSetNotFoundError: a variation's PDF is not installed.
    """
    from forward.variations import check_variations

    variations = check_variations(variations)
    proc, det, integrand, settings = setup_generation(process, settings=settings, params=params,
                                                      detector=detector, seed=seed,
                                                      overweight=overweight, device=device)
    gen = torch.Generator(device=device).manual_seed(seed)
    res = generate_hard_events(integrand, n_events, generator=gen, train_calls=train_calls,
                               overweight=overweight, progress=progress)
    events = detected_event_set(process, proc, integrand, det, res, settings=settings,
                                generator=gen, seed=seed, shower=shower,
                                overweight=overweight, progress=progress,
                                variations=variations)
    events.metadata["provenance"]["inputs"] = input_hashes([detector])
    return events


def setup_generation(process: str, *, settings, params, detector, seed: int, overweight: float,
                     device):
    """Check the common arguments of the generators and build their objects.

    Returns:
        (process object, :class:`~forward.detector.Detector`,
        :class:`~forward.integrand.HadronicIntegrand`, settings dict).

    Raises:
        ValueError: unknown process or setting, bad parameter values, a bad card, a bad
            seed or overweight fraction.
        FileNotFoundError: a detector card file that does not exist.
    """
    from forward.detector import Detector
    from forward.integrand import HadronicIntegrand
    from forward.processes import get_process

    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed: expected an integer >= 0, got {seed!r}")
    device = resolve_device(device)
    if not 0.0 <= overweight < 1.0:
        raise ValueError(f"overweight: expected a fraction in [0, 1), got {overweight!r}")
    settings = dict(settings or {})
    proc = get_process(process, **settings)
    det = Detector(detector)
    integrand = HadronicIntegrand(proc, params=dict(params or {}), device=device)
    return proc, det, integrand, settings


def detected_event_set(process: str, proc, integrand, det, res: GeneratedEvents, *, settings,
                       generator: torch.Generator, seed: int, shower: bool, overweight: float,
                       progress: bool = False, variations=()):
    """The :class:`~forward.eventset.EventSet` of generated hard events, with ``reco``.

    Draws the final-state ids, optionally showers (Pythia 8 seeded with ``seed + 1``)
    and applies the detector, all with ``generator``; the weights are
    ``res.cross_section * w / sum(w)`` for the unweighting weights w. Each of the
    ``variations`` (checked :class:`~forward.variations.Variation` objects) becomes a
    named weight (:func:`forward.variations.event_set_weights`).
    """
    from forward.eventset import EventSet

    n_events = len(res.event_weights)
    w = res.event_weights.to(torch.float64)
    events = EventSet(
        process=process, momenta=res.events.momenta, x1=res.events.x1, x2=res.events.x2,
        pids=proc.sample_final_state(n_events, generator=generator,
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
                  "detector_card": det.card.to_dict(), "shower": bool(shower),
                  "provenance": provenance(process=process, settings=settings,
                                           parameters=integrand.params, pdf=integrand.pdf,
                                           seed=seed, device=res.events.momenta.device)},
    )
    if variations:
        from forward.variations import event_set_weights

        events.weights_named = event_set_weights(proc, events, variations)
        events.metadata["weight_variations"] = {v.name: v.to_dict() for v in variations}
    if shower:
        from forward.shower import ShowerSettings
        from forward.shower import shower as run_shower

        showered = run_shower(events, ShowerSettings(), seed=seed + 1, progress=progress)
        objects = showered.objects.to(events.momenta.device)
        events.metadata["shower_failed"] = showered.failed.tolist()
    else:
        objects = events.objects()
    events.reco = det(objects, generator=generator)
    return events


def _plain(value):
    return value if value is None or isinstance(value, (bool, int, float, str)) else str(value)
