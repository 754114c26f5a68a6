"""Training pairs (hard event, reco observables) from the forward chain.

:func:`simulate_pairs` draws unweighted hard events of any process at one or several
parameter points, passes them through any detector of the protocol of
:mod:`forward.detector` (``reconstruct(events, final_state) -> RecoEvents``) and
extracts the analysis observables (:class:`invsim.observables.RecoObservables`); the
result saves as an event file (:meth:`TrainingPairs.to_eventset`). Detectors that work
on lepton observables directly (``smear(x_hard, generator=) -> (x_reco, passed)``, as
in tutorial 4) are accepted too. :func:`simulate` is the one-point form kept for the
recipes and tutorials.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from forward._validation import check_count, check_memory, check_process, make_generator
from forward.detector.objects import RecoEvents
from forward.events import HardEvents
from forward.eventset import EventSet
from forward.integrand import HadronicIntegrand
from forward.pdf.gridpdf import canonical_device
from invsim.observables import RecoObservables
from invsim.observables import hard_pt_eta_phi as _lepton_obs

__all__ = ["SimulatedPairs", "simulate"]


@dataclass
class SimulatedPairs:
    """Hard events with their reco observables, from :func:`simulate`.

    Attributes:
        hard: unweighted hard events (n,).
        x_hard: their features (pT, η, φ per final-state particle), shape (n, 3k).
        x_reco: reco observables, shape (n, d); meaningful where ``passed`` (NaN rows
            where a protocol detector lost an object the observables need).
        passed: detector acceptance and analysis selection, shape (n,) bool.
        pids: final-state PDG ids per event, shape (n, k), or None (observable-level
            detectors).
        reco: the reconstructed events (protocol detectors), or None.
        failed: selection requirement -> number of events failing it.
        theta: the parameter point of each event's simulation, name -> shape (n,).
    """

    hard: HardEvents
    x_hard: torch.Tensor
    x_reco: torch.Tensor
    passed: torch.Tensor
    pids: torch.Tensor | None = None
    reco: RecoEvents | None = None
    failed: dict[str, int] = field(default_factory=dict)
    theta: dict[str, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.hard)

    def to_eventset(self, process, *, seed: int | None = None, metadata=None) -> EventSet:
        """The pairs as an :class:`~forward.eventset.EventSet` (hard + reco), to save
        with :func:`forward.io.save_hdf5`. Needs a protocol detector (``reco``)."""
        if self.reco is None:
            raise ValueError("pairs: only pairs made by a detector with reconstruct() hold "
                             "reco events to save")
        from forward.processes import process_name, process_settings

        params = {k: float(v.mean()) for k, v in self.theta.items()}
        return EventSet(process=process_name(process), momenta=self.hard.momenta,
                        x1=self.hard.x1, x2=self.hard.x2, pids=self.pids,
                        sqrt_s=self.hard.sqrt_s, reco=self.reco, parameters=params,
                        settings=process_settings(process), seed=seed,
                        metadata=dict(metadata or {}))


def _points(theta) -> list[dict]:
    if theta is None:
        return [{}]
    if isinstance(theta, Mapping):
        return [dict(theta)]
    pts = [dict(t) for t in theta]
    if not pts or not all(isinstance(t, Mapping) for t in theta):
        raise TypeError("theta: expected a mapping name -> value or a non-empty sequence of "
                        "them")
    return pts


def simulate(
    process,
    detector,
    n_trials: int,
    theta: Mapping | Sequence[Mapping] | None = None,
    *,
    observables: RecoObservables | None = None,
    seed: int = 0,
    chunk_size: int = 200_000,
    device=None,
) -> SimulatedPairs:
    """Unweighted hard events of a process at θ, through the detector.

    Hit-or-miss on ``n_trials`` uniform points of the default phase-space channel,
    with the largest weight of the sample as maximum (no overweight events), so about
    ``n_trials`` × the unweighting efficiency events come out. With several θ points
    the trials are shared equally between them (each its own hit-or-miss).

    Args:
        process: a :class:`~forward.processes.Process` (any; final-state particles the
            detector models).
        detector: a detector of the protocol (``reconstruct``), or one working on lepton
            observables (``smear(x_hard, generator=) -> (x_reco, passed)``, used when
            ``observables`` is None).
        n_trials: number of weighted trial points (>= the number of θ points).
        theta: parameter values (numbers), or a sequence of such points; defaults for
            the rest.
        observables: the analysis observables; default
            :meth:`RecoObservables.for_process` (protocol detectors only).
        seed: seeds the trials, the unweighting and the detector.
        chunk_size: points per integrand evaluation.
        device: torch device of the simulation and of the returned tensors (default CPU).

    Returns:
        :class:`SimulatedPairs`.
    """
    from forward.nis.unweighting import unweight

    check_process(process)
    points = _points(theta)
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < len(points):
        raise ValueError(f"n_trials: expected an integer >= {len(points)}, got {n_trials!r}")
    check_count("chunk_size", chunk_size)
    make_generator(seed)  # checks the seed
    # the trial points and their weights are held at once: (dim + 1) float64 each
    check_memory("n_trials", n_trials, 8 * 16, device=device, what="trial points")
    use_smear = observables is None and callable(getattr(detector, "smear", None))
    if not use_smear and not callable(getattr(detector, "reconstruct", None)):
        raise TypeError(f"detector: expected reconstruct(events, final_state) or "
                        f"smear(x_hard), got {type(detector).__name__}")
    if not use_smear and observables is None:
        observables = RecoObservables.for_process(process)
    dev = canonical_device(device)
    gen = torch.Generator(device=dev).manual_seed(int(seed))
    hards, thetas = [], {}
    for i, point in enumerate(points):
        integrand = HadronicIntegrand(process, params=point or None, device=device)
        n_i = n_trials // len(points) + (i < n_trials % len(points))
        r = torch.rand(n_i, integrand.dim, generator=gen, dtype=torch.float64, device=dev)
        w = torch.cat([integrand(r[s : s + chunk_size]) for s in range(0, n_i, chunk_size)])
        bad = ~torch.isfinite(w)
        if bool(bad.any()):
            raise ValueError(f"theta: the integrand at {point} gave {int(bad.sum())} non-finite "
                             "weights")
        sel = unweight(w, 0.0, generator=gen).indices
        hard, _ = integrand.map.forward(r[sel])
        hards.append(hard)
        for k, v in integrand.params.items():
            thetas.setdefault(k, []).append(torch.as_tensor(v).to(dev).expand(len(hard)))
    hard = hards[0] if len(hards) == 1 else HardEvents(
        torch.cat([h.momenta for h in hards]), torch.cat([h.x1 for h in hards]),
        torch.cat([h.x2 for h in hards]), hards[0].sqrt_s)
    theta_rows = {k: torch.cat(v) for k, v in thetas.items()}
    x_hard = _lepton_obs(hard)
    if use_smear:
        x_reco, passed = detector.smear(x_hard, generator=gen)
        return SimulatedPairs(hard, x_hard, x_reco, passed, theta=theta_rows)
    pids = process.sample_final_state(len(hard), generator=gen, device=dev)
    reco = detector.reconstruct(hard, pids, generator=gen)
    ex = observables.extract(reco)
    x_reco = torch.full((len(hard), observables.dim), float("nan"), dtype=torch.float64,
                        device=ex.x.device)
    x_reco[ex.selected] = ex.x
    return SimulatedPairs(hard, x_hard, x_reco, ex.selected, pids=pids, reco=reco,
                          failed=ex.failed, theta=theta_rows)
