"""Training recipes: the ML-MEM pieces for any process, detector and observables.

:func:`build_model` simulates (hard, reco) pairs of any process through any detector
(:mod:`invsim.pairs`) and trains the three networks of a :class:`~invsim.mem.MEMModel`;
``invsim train`` runs it. :func:`build_dilepton_model` is its form with the settings
the demo and the tutorials were tuned with. It simulates (hard, reco) pairs of a
two-lepton process with a detector that smears the leptons' (pT, η, φ), and trains
the three networks of a :class:`~invsim.mem.MEMModel` on them: a residual transfer
r(x_reco | x_hard) (φ periodic; the residuals standardised per event by a width model
fitted on the pairs, see ``standardize_residuals``), an acceptance classifier ε(x_hard)
and a cINN
unfolder q(x_hard | x_reco) used as the importance-sampling proposal (its φ rotated
by the reco φ, so it is periodic too). The demo, the tutorials and ``benchmarks/mem.py`` use it.

The detector is cheap next to the hard simulation, so with ``smearings`` = k every
hard event is passed through it k times: the transfer learns from k times more pairs
and the acceptance from each hard event's pass fraction (soft targets) instead of one
pass/fail draw, which cuts the noise of both networks at the cost of training time only.

With ``selected_response`` the transfer is a :class:`~invsim.transfer.SelectedTransfer`:
the detector response is learned from *all* simulated events, before the selection
(smooth, no edges at the cuts), and divided by the acceptance network's ε, so ε·r in
the MEM integrand does not depend on the acceptance network at all. This needs a
selection that is a cut on the reco observables (``passed`` a function of x_reco).
"""

from __future__ import annotations

import itertools
import math
import time
import warnings
from collections.abc import Mapping

import torch

from forward._validation import check_count, check_process, make_generator, resolve_device

__all__ = ["DILEPTON_AZIMUTH", "HELPER_DF", "HELPER_SCALES", "KINDS_HARD", "KINDS_RESIDUAL",
           "RecipeWarning", "build_dilepton_model", "build_model", "training_points"]

#: observable kinds of (pT, η, φ) × 2 leptons for :func:`invsim.flows.observable_preprocessing`
KINDS_HARD = ["log", "real", "phi"] * 2
#: the same for the transfer's residuals (φ residual wrapped by the transfer itself)
KINDS_RESIDUAL = ["log", "real", "real"] * 2
#: (hard coordinate, reco column) of the unfolder's azimuth option for the Drell–Yan
#: channel: the map's 4th unit-cube coordinate is φ(ℓ⁻)/2π, column 2 holds reco φ(ℓ⁻)
DILEPTON_AZIMUTH = (3, 2)


def _smear_many(detector, sim, k: int, generator: torch.Generator, observables, legacy: bool,
                jes=None):
    """k more detector simulations of each hard event: (x_reco, passed), shapes (k, n, ...)
    (``jes``: per-event jet energy scale factors (n,) or None)."""
    n = sim.x_hard.shape[0]
    if legacy:
        x_reco, passed = detector.smear(sim.x_hard.repeat(k, 1), generator=generator)
        return x_reco.view(k, n, -1), passed.view(k, n)
    rows, oks = [], []
    for _ in range(k):
        kw = {} if jes is None else {"jes": jes}
        ex = observables.extract(detector.reconstruct(sim.hard, sim.pids, generator=generator,
                                                      **kw))
        x = torch.full((n, observables.dim), float("nan"), dtype=torch.float64,
                       device=ex.x.device)
        x[ex.selected] = ex.x
        rows.append(x)
        oks.append(ex.selected)
    return torch.stack(rows), torch.stack(oks)


def _median_ess(model, x_reco: torch.Tensor, seed: int, n_samples: int = 200) -> float:
    """Median effective sample size of a model's proposal on reco events, at the
    reference point (importance samples per event: ``n_samples``)."""
    from invsim.mem.likelihood import MEMLikelihood

    lik = MEMLikelihood(model, x_reco, n_samples=n_samples, parameter_names=(),
                        n_fiducial=2, seed=seed + 31, on_flagged="ignore")
    with torch.no_grad():
        return float(lik.evaluate({}).ess.median())


def _mixture_weights(ess: list[float], floor: float = 0.05) -> list[float]:
    """Mixture shares: ``floor`` for every component but the one of the largest median
    ESS, which gets the rest (defensive multiple importance sampling: each component
    keeps covering what the others miss, q ≥ w_k q_k bounds the weights by all of
    them, while most draws come from the best one; shares proportional to the ESS gave
    a proposal 10 times worse a sixth of the draws and cost half the ESS)."""
    if not ess:
        raise ValueError("ess: expected at least one component")
    best = max(range(len(ess)), key=lambda i: ess[i])
    return [1.0 - floor * (len(ess) - 1) if i == best else floor for i in range(len(ess))]


#: widths (× the measured resolutions) tried for the reco-centred helper proposal
HELPER_SCALES = (1.0, 1.5)
#: degrees of freedom of the helper's t distributions
HELPER_DF = 10


def _few_accepted(sim, min_accepted: int) -> None:
    """Warn when a training point yields few accepted events."""
    rows = {k: v for k, v in sim.theta.items() if bool((v != v[0]).any())} if len(sim) else {}
    if not rows:
        keys = [()]
        groups = [sim.passed]
    else:
        stacked = torch.stack([rows[k] for k in sorted(rows)], -1)
        keys, inverse = torch.unique(stacked, dim=0, return_inverse=True)
        groups = [sim.passed[inverse == i] for i in range(len(keys))]
    for key, g in zip(keys, groups, strict=True):
        n_acc = int(g.sum())
        if n_acc < min_accepted:
            where = dict(zip(sorted(rows), [float(v) for v in key], strict=True)) if rows else {}
            warnings.warn(f"training point {where or 'at the defaults'}: only {n_acc} of "
                          f"{len(g)} simulated events accepted (fewer than {min_accepted}); "
                          "the networks will be poorly trained there (raise n_trials)",
                          RecipeWarning, stacklevel=3)


def _with_detector_nuisances(detector, sim, observables, det_ranges, seed: int):
    """Reconstruct the simulated hard events again with one jet energy scale factor per
    event drawn uniformly in its range; returns the per-event factors (n,) float64."""
    (name, (lo, hi)), = det_ranges.items()
    gen = torch.Generator(device=sim.x_hard.device).manual_seed(int(seed) + 104729)
    nu = lo + (hi - lo) * torch.rand(len(sim), generator=gen, dtype=torch.float64,
                                     device=sim.x_hard.device)
    try:
        reco = detector.reconstruct(sim.hard, sim.pids, generator=gen, **{name: nu})
    except TypeError as err:
        raise TypeError(f"ranges: {name} needs a detector whose reconstruct() takes {name}= "
                        f"(the card detector), got {type(detector).__name__}: {err}") from None
    ex = observables.extract(reco)
    x = torch.full((len(sim), observables.dim), float("nan"), dtype=torch.float64,
                   device=ex.x.device)
    x[ex.selected] = ex.x
    sim.x_reco, sim.passed, sim.reco, sim.failed = x, ex.selected, reco, ex.failed
    return nu


def _ttbar_dilepton(process, observables, legacy: bool) -> bool:
    """True for decayed t t̄ → dilepton read as ℓ⁻, ℓ⁺ and two b-jets (+ MET) whose
    assignments the likelihood sums (the helper takes the b-jets as (b, b̄) in order)."""
    return (getattr(process, "name", None) == "ttbar"
            and getattr(process, "decays", None) == "dilepton" and not legacy
            and observables.leptons == 2 and observables.bjets == 2
            and observables.assign_bjets
            and not (observables.jets or observables.photons)
            and observables.columns[:12] == _TTBAR_COLUMNS)


_TTBAR_COLUMNS = [f"{o}_{q}" for o in ("lminus", "lplus", "bjet1", "bjet2")
                  for q in ("pt", "eta", "phi")]


def _ttbar_helper(process, sim, acc, x_matched, observables, reference, ranges, unfolder,
                  info: dict, seed: int, model_of):
    """The t t̄ → dilepton proposal: a :class:`~invsim.mem.StratifiedMixtureProposal` of
    the unfolder and a :class:`~invsim.mem.ttbar_proposal.TTbarDileptonProposal` whose
    lepton and b-jet widths are measured on the (truth-matched) training pairs; the
    helper's width factor is chosen among :data:`HELPER_SCALES` by the median ESS on
    held-out reco events, the mixture weights by :func:`_mixture_weights` (0.95 to the
    component of the larger median ESS)."""
    from invsim.mem.proposals import StratifiedMixtureProposal
    from invsim.mem.resolution import ResolutionTable
    from invsim.mem.ttbar_proposal import TTbarDileptonProposal

    h, x = sim.x_hard[acc], x_matched[acc]
    few = min(200, len(h))  # every bin of a tiny training set takes the pooled widths
    # hard (b, ℓ⁺, ν, b̄, ℓ⁻, ν̄) x (pT, η, φ); reco ℓ⁻, ℓ⁺, b (matched), b̄ (matched)
    leptons = ResolutionTable.fit(torch.cat([h[:, 12:15], h[:, 3:6]], -1), x[:, 0:6],
                                  min_count=few)
    jets = ResolutionTable.fit(torch.cat([h[:, 0:3], h[:, 9:12]], -1), x[:, 6:12],
                               min_count=few)
    info["ttbar_helper_resolutions"] = {"leptons": leptons.pooled, "bjets": jets.pooled}
    mt = float(reference.get("mt", process.parameters["mt"].default))
    val = sim.x_reco[acc][-min(200, int(acc.sum())):]  # the unfolder's validation tail

    def median_ess(q):
        return _median_ess(model_of(q), val, seed)

    helpers = [TTbarDileptonProposal(leptons, jets, process.sqrt_s, mt=mt,
                                     mt_range=ranges.get("mt"), bw_cut=process.bw_cut,
                                     scale=sc, df=HELPER_DF) for sc in HELPER_SCALES]
    helper_ess = [median_ess(q) for q in helpers]
    best = max(range(len(helpers)), key=lambda i: helper_ess[i])
    info["ttbar_helper_scale"] = HELPER_SCALES[best]
    info["ttbar_helper_median_ess"] = dict(zip(map(str, HELPER_SCALES), helper_ess,
                                               strict=True))
    ess = [median_ess(unfolder), helper_ess[best]]
    # the larger share to the larger median ESS: with an informative transfer the helper
    # (the unfolder's ESS is 1), with one that hardly depends on the hard event (a small
    # training set) the unfolder, whose spread matches the nearly flat integrand
    # (docs/design.md §5.6)
    weights = _mixture_weights(ess)
    info["proposal_median_ess"] = dict(zip(("unfolder", "ttbar-helper"), ess, strict=True))
    info["proposal_weights"] = weights
    return StratifiedMixtureProposal([unfolder, helpers[best]], weights)


class RecipeWarning(UserWarning):
    """A training set that is too small or too poorly accepted to trust."""


def training_points(ranges: Mapping[str, tuple[float, float]], per_axis: int = 3) -> list[dict]:
    """A grid of ``per_axis`` points per parameter across its range (ends included).

    Args:
        ranges: name -> (lo, hi) with lo < hi.
        per_axis: points per parameter (>= 1; 1 gives the centre).

    Returns:
        A list of dicts name -> value, per_axis ** len(ranges) of them.
    """
    if isinstance(per_axis, bool) or not isinstance(per_axis, int) or per_axis < 1:
        raise ValueError(f"per_axis: expected an integer >= 1, got {per_axis!r}")
    axes = []
    for name, (lo, hi) in ranges.items():
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"ranges: {name} expects finite LO < HI, got ({lo}, {hi})")
        axes.append([0.5 * (lo + hi)] if per_axis == 1 else
                    [lo + (hi - lo) * i / (per_axis - 1) for i in range(per_axis)])
    return [dict(zip(ranges, combo, strict=True)) for combo in itertools.product(*axes)]


def build_model(process, detector, *, n_trials: int, epochs: int, seed: int = 0,
                observables=None, theta=None, ranges=None, points_per_axis: int = 3,
                hidden: tuple[int, ...] = (64, 64), progress: bool = False,
                smearings: int = 1, conditional_affine: bool = True,
                periodic_unfolder: bool = True, selected_response: bool = False,
                batch_size: int = 1024, lr: float = 2e-3,
                acceptance_hidden: tuple[int, ...] | None = (128, 128, 128),
                acceptance_epochs: int | None = None, min_accepted: int = 1000,
                reco_helper: bool = True, ttbar_helper: bool = False,
                standardize_residuals: bool = True,
                transfer_correction: bool = False, device=None):
    """Simulate pairs of any process through any detector and train the ML-MEM networks.

    Trains a transfer flow r(x_reco | x_hard), an acceptance classifier ε(x_hard) and a
    cINN unfolder q(x_hard | x_reco) used as the importance-sampling proposal, and
    returns them as a :class:`~invsim.mem.MEMModel`. The hard features are (pT, η, φ)
    of every final-state particle (:func:`invsim.observables.hard_pt_eta_phi`); the
    transfer models reco-minus-hard residuals when the observables are the final
    state's leptons one for one (Drell–Yan), else the reco observables conditioned
    on the hard features.

    **Reference point.** With ``ranges`` (name -> (lo, hi)) the pairs are simulated on
    a grid of ``points_per_axis`` points per parameter (:func:`training_points`, the
    trials shared equally), so the proposal covers the whole range; the model's
    reference point (the phase-space channel of the unfolder's coordinates and of the
    fiducial cross section) is the centre of the ranges, or ``theta`` when given.

    **Detector nuisances.** ``ranges`` may also name a detector nuisance of
    :data:`~invsim.mem.detector_nuisances.DETECTOR_NUISANCES` (``"jes"``, card
    detector): each simulated hard event is reconstructed with its own factor drawn
    uniformly in the range, and the transfer and the acceptance get the factor as one
    more context column (the unfolder does not: it covers the whole range).

    **Assignments.** When the observables have ``assign_bjets`` (t t̄), the b-jet
    columns of the transfer's and the unfolder's training pairs are put in the order of
    the hard b and b̄ (:func:`invsim.mem.assignments.truth_order`, by ΔR); the
    likelihood sums over both assignments.

    Args:
        process: any :class:`~forward.processes.Process`.
        detector: a detector of the protocol of :mod:`forward.detector`, or one with
            ``smear(x_hard, generator=)`` on lepton observables (then ``observables``
            must be None).
        n_trials: weighted trial points of the simulation, over all training points.
        epochs: training epochs of each network.
        seed: seeds the simulation, the initial weights and the training.
        observables: the analysis's :class:`~invsim.observables.RecoObservables`;
            default that of the process's final state (protocol detectors).
        theta: parameter values (numbers) of the reference point (and of the
            simulation when ``ranges`` is None); process defaults if None.
        ranges: name -> (lo, hi): simulate across these ranges (see above).
        points_per_axis: grid points per parameter of ``ranges``.
        hidden: hidden-layer widths of the transfer and the unfolder.
        progress: show training progress bars.
        smearings: detector simulations per hard event (>= 1) for the transfer and the
            acceptance; the unfolder uses the first one.
        conditional_affine: a context-conditional affine layer in front of the spline
            layers (``FlowConfig.conditional_affine``).
        periodic_unfolder: rotate the unfolder's φ(ℓ⁻) by the reco φ(ℓ⁻) (Drell–Yan
            dilepton channel only).
        selected_response: learn the response before the selection (observable-level
            detectors with cuts on x_reco only; see the module docstring).
        batch_size: events per optimiser step of every network (>= 1).
        lr: initial learning rate (cosine-annealed to 0 over ``epochs``).
        acceptance_hidden, acceptance_epochs: the acceptance classifier's widths and
            epochs (default (128, 128, 128) and 2 × ``epochs``): wide enough to learn the
            sharp edges of η and pT cuts (a (64, 64) network blurred an |η| < 2.5 cut
            into a shift of about 1σ on a Z′ coupling).
        min_accepted: warn (:class:`RecipeWarning`) when a training point yields fewer
            accepted events.
        reco_helper: for Drell–Yan dileptons, make the proposal a
            :class:`~invsim.mem.StratifiedMixtureProposal` of the unfolder and a
            :class:`~invsim.mem.reco_proposal.RecoGaussianProposal` whose widths are the
            detector's resolutions measured on the training pairs in bins of reco |η|
            and pT (:class:`~invsim.mem.resolution.ResolutionTable`, robust widths of
            the reco-minus-hard residuals): a small unfolder cannot resolve mrad angles.
            The helper's width factor (:data:`HELPER_SCALES`, t with :data:`HELPER_DF`
            degrees of freedom) is the one of the largest median effective sample size
            on 200 held-out reco events; the component of the larger median ESS gets a
            share of 0.95, the other 0.05; all recorded in ``info``.
        ttbar_helper: for t t̄ → dilepton (ℓ⁻, ℓ⁺ and two b-jets) the same with a
            :class:`~invsim.mem.ttbar_proposal.TTbarDileptonProposal` (visible particles
            around the reco objects at the lepton and b-jet resolutions measured on the
            truth-matched pairs, W and top Breit–Wigners at the reference m_t, the
            neutrinos solved), the shares chosen the same way. Off by default: with
            the learned t t̄ transfer of today's recipe the helper gains little ESS and
            its draws cost an unfolder density each (docs/design.md §5.6).
        standardize_residuals: for a residual transfer, divide the reco-minus-hard
            residuals (pT linear, η, φ) by a per-lepton width fitted on the training
            pairs as a function of the hard lepton's log pT and |η|
            (``TransferFunction(standardize=True)``), so the resolution's variation
            across the detector is taken out before anything is learned.
        transfer_correction: with ``standardize_residuals``, train a flow on the
            standardised residuals (True) or take them as unit Gaussians (False, the
            default: exact for Gaussian resolutions such as the Gaussian and the card
            detectors', up to the width model's few coefficients; a flow's log-density
            carries the noise of its many weights, |Δ log r| ≈ 0.08 median at 70k pairs
            against 0.006).
        device: torch device of the simulation, the training and the networks.

    Returns:
        (model, info): the :class:`~invsim.mem.MEMModel` (with ``observables``,
        ``ranges`` and ``detector`` set) and a dict of training numbers.
    """
    from invsim.flows import FlowConfig, TrainConfig, observable_preprocessing
    from invsim.mem.model import MEMModel
    from invsim.mem.proposals import StratifiedMixtureProposal
    from invsim.mem.reco_proposal import RecoGaussianProposal
    from invsim.mem.resolution import ResolutionTable
    from invsim.pairs import simulate
    from invsim.transfer import AcceptanceClassifier, SelectedTransfer, TransferFunction
    from invsim.unfold import Unfolder

    if isinstance(smearings, bool) or not isinstance(smearings, int) or smearings < 1:
        raise ValueError(f"smearings: expected an integer >= 1, got {smearings!r}")
    # every argument is checked before the simulation starts (issue 18)
    check_process(process)
    make_generator(seed)
    resolve_device(device)
    check_count("points_per_axis", points_per_axis)
    TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, patience=None)
    FlowConfig(hidden_features=hidden)
    from invsim.mem.detector_nuisances import DETECTOR_NUISANCES

    ranges = {k: (float(lo), float(hi)) for k, (lo, hi) in dict(ranges or {}).items()}
    det_ranges = {k: v for k, v in ranges.items() if k in DETECTOR_NUISANCES}
    all_ranges = ranges
    ranges = {k: v for k, v in ranges.items() if k not in DETECTOR_NUISANCES}
    for k, (lo, hi) in det_ranges.items():
        par = DETECTOR_NUISANCES[k]
        if not (par.low <= lo < hi <= par.high):
            raise ValueError(f"ranges: {k} expects LO < HI inside [{par.low}, {par.high}], "
                             f"got ({lo}, {hi})")
    if len(det_ranges) > 1:
        raise ValueError(f"ranges: at most one detector nuisance, got {sorted(det_ranges)}")
    unknown = sorted(set(ranges) | set(theta or {}))
    unknown = [k for k in unknown if k not in process.parameters]
    if unknown:
        raise ValueError(f"ranges/theta: unknown parameter(s) {unknown} of process "
                         f"{getattr(process, 'name', type(process).__name__)!r}; known: "
                         f"{sorted(process.parameters)}")
    reference = {k: 0.5 * (lo + hi) for k, (lo, hi) in ranges.items()}
    reference.update({k: float(v) for k, v in dict(theta or {}).items()})
    points = training_points(ranges, points_per_axis) if ranges else [reference]
    points = [{**reference, **p} for p in points]
    t0 = time.perf_counter()
    legacy = observables is None and callable(getattr(detector, "smear", None))
    sim = simulate(process, detector, n_trials, points if len(points) > 1 else points[0],
                   observables=None if legacy else observables, seed=seed, device=device)
    if not legacy and observables is None:
        from invsim.observables import RecoObservables

        observables = RecoObservables.for_process(process)
    nu = None
    if det_ranges:
        if legacy:
            raise ValueError(f"ranges: {sorted(det_ranges)} need a detector of the protocol "
                             "(reconstruct) and observables")
        nu = _with_detector_nuisances(detector, sim, observables, det_ranges, seed)
    _few_accepted(sim, min_accepted)
    dev = sim.x_hard.device
    acc = sim.passed
    k = sim.x_hard.shape[1] // 3
    kinds_hard = ["log", "real", "phi"] * k
    kinds_reco = kinds_hard if legacy else observables.kinds
    info: dict = {"train_events": len(sim.hard), "train_accepted": int(acc.sum()),
                  "train_points": points, "selection_failed": sim.failed}
    if int(acc.sum()) < 2:
        raise ValueError(f"n_trials: {int(acc.sum())} of {len(sim.hard)} simulated events "
                         f"pass the selection ({sim.failed}); nothing to train on")
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, patience=None)
    x_reco_all, passed_all = sim.x_reco.unsqueeze(0), sim.passed.unsqueeze(0)  # (k, n, ...)
    if smearings > 1:
        gen = torch.Generator(device=dev).manual_seed(int(seed) + 7919)
        more_reco, more_passed = _smear_many(detector, sim, smearings - 1, gen, observables,
                                             legacy, nu)
        x_reco_all = torch.cat([x_reco_all, more_reco])
        passed_all = torch.cat([passed_all, more_passed])
    pass_target = passed_all.to(torch.float64).mean(0) if smearings > 1 else sim.passed
    if not legacy and len(observables.assignments) > 1:
        from invsim.mem.assignments import truth_order

        x_reco_all = torch.stack([truth_order(x, sim.x_hard, observables, process.final_state)
                                  for x in x_reco_all])
    # the hard features of the transfer and the acceptance: + the detector nuisances
    x_hard_ctx = sim.x_hard if nu is None else torch.cat([sim.x_hard, nu[:, None]], -1)
    kinds_ctx = kinds_hard + ["real"] * (nu is not None)
    if selected_response and not legacy:
        raise ValueError("selected_response: needs a detector whose selection is a cut on "
                         "lepton observables (smear(x_hard)); protocol detectors lose objects")
    use = torch.ones_like(passed_all) if selected_response else passed_all
    x_hard_tr = x_hard_ctx.expand(smearings, -1, -1)[use]
    x_reco_tr = x_reco_all[use]
    info["transfer_pairs"] = int(x_hard_tr.shape[0])
    residual = legacy or (observables.leptons_only and observables.dim == sim.x_hard.shape[1])
    periodic = tuple(i for i, kd in enumerate(kinds_reco) if kd == "phi")
    standardize = residual and standardize_residuals
    pt_kind = "real" if standardize else "log"  # σ_pT ∝ pT: a Gaussian in pT, not log pT
    pre_reco = (observable_preprocessing([pt_kind, "real", "real"] * k) if residual
                else observable_preprocessing(kinds_reco))
    transfer = TransferFunction(
        pre_reco, observable_preprocessing(kinds_ctx),
        FlowConfig(transforms=3, hidden_features=hidden, conditional_affine=conditional_affine),
        seed=seed, residual=residual, periodic=periodic if residual else (),
        standardize=standardize, correction=transfer_correction or not standardize).to(dev)
    res = transfer.fit(x_hard_tr, x_reco_tr, config=cfg, seed=seed, progress=progress)
    info["transfer_val_loss"] = res.best_val_loss
    acceptance = AcceptanceClassifier(observable_preprocessing(kinds_ctx),
                                      tuple(acceptance_hidden or hidden), seed=seed).to(dev)
    cfg_acc = TrainConfig(epochs=acceptance_epochs or 2 * epochs, batch_size=batch_size,
                          lr=lr, patience=None)
    res = acceptance.fit(x_hard_ctx, pass_target, config=cfg_acc, seed=seed,
                         progress=progress)
    info["acceptance_val_loss"] = res.best_val_loss
    if selected_response:
        transfer = SelectedTransfer(transfer, acceptance)
    dilepton = (getattr(process, "name", None) == "drell-yan"
                and (legacy or (observables.leptons_only and observables.leptons == 2)))
    unfolder = Unfolder.from_process(
        process, observable_preprocessing(kinds_reco),
        FlowConfig(transforms=4, hidden_features=hidden, bins=12,
                   conditional_affine=conditional_affine),
        params=reference or None, seed=seed,
        azimuth=DILEPTON_AZIMUTH if periodic_unfolder and dilepton else None).to(dev)
    hard_acc, reco_acc = sim.hard[acc], x_reco_all[0][acc]
    _, log_det = unfolder.coordinates.features(hard_acc.to(torch.float64))
    inside = torch.isfinite(log_det)
    info["unfolder_outside_map"] = int((~inside).sum())
    if not bool(inside.all()):
        warnings.warn(f"{int((~inside).sum())} of {len(inside)} accepted training events lie "
                      "outside the support of the reference point's phase-space map (e.g. a "
                      "top mass far from the reference); the proposal cannot cover them and "
                      "they are left out of its training. Narrow the ranges or widen the "
                      "process's windows (e.g. --set bw_cut=...)", RecipeWarning, stacklevel=2)
        hard_acc, reco_acc = hard_acc[inside], reco_acc[inside]
    res = unfolder.fit(hard_acc, reco_acc, config=cfg, seed=seed, progress=progress)
    info["unfolder_val_loss"] = res.best_val_loss
    info["train_seconds"] = time.perf_counter() - t0
    try:
        from forward.detector import describe_detector

        described = describe_detector(detector)
    except TypeError:  # a user's detector class: recorded by name only
        described = {"kind": "user", "class": type(detector).__qualname__}
    info["seed"] = seed
    proposal = unfolder
    if dilepton and reco_helper:
        # a reco-centred t proposal with the detector's resolutions measured per reco
        # (|η|, pT) bin, mixed in: it covers a sharp detector (mrad angles) that the
        # unfolder cannot resolve, and the unfolder covers what it misses (multiple
        # importance sampling: q ≥ w_k q_k bounds the weights by both)
        table = ResolutionTable.fit(sim.x_hard[acc], sim.x_reco[acc])
        info["reco_helper_resolutions"] = table.pooled
        val = sim.x_reco[acc][-min(200, int(acc.sum())):]  # the unfolder's validation tail

        def median_ess(q):
            return _median_ess(MEMModel(process, q, transfer, acceptance,
                                        hard_observables="pt_eta_phi",
                                        params=reference or None), val, seed)

        # the helper's width: the candidate of the largest median ESS on held-out events
        helpers = [RecoGaussianProposal(table, process.sqrt_s, scale=sc, df=HELPER_DF)
                   for sc in HELPER_SCALES]
        helper_ess = [median_ess(q) for q in helpers]
        best = max(range(len(helpers)), key=lambda i: helper_ess[i])
        helper = helpers[best]
        info["reco_helper_scale"] = HELPER_SCALES[best]
        info["reco_helper_median_ess"] = dict(zip(map(str, HELPER_SCALES), helper_ess,
                                                  strict=True))
        parts = [unfolder, helper]
        ess = [median_ess(unfolder), helper_ess[best]]
        weights = _mixture_weights(ess)
        info["proposal_median_ess"] = dict(zip(("unfolder", "reco-helper"), ess, strict=True))
        info["proposal_weights"] = weights
        proposal = StratifiedMixtureProposal(parts, weights)
    elif ttbar_helper and _ttbar_dilepton(process, observables, legacy):
        proposal = _ttbar_helper(process, sim, acc, x_reco_all[0], observables, reference,
                                 ranges, unfolder, info, seed,
                                 lambda q: MEMModel(process, q, transfer, acceptance,
                                                    hard_observables="pt_eta_phi",
                                                    params=reference or None,
                                                    observables=observables,
                                                    ranges=all_ranges or None,
                                                    detector=described))
    model = MEMModel(process, proposal, transfer, acceptance,
                     hard_observables="pt_eta_phi", params=reference or None,
                     observables=None if legacy else observables, ranges=all_ranges or None,
                     detector=described, info=info)
    return model, info


def build_dilepton_model(process, detector, *, n_trials: int, epochs: int, seed: int = 0,
                         theta=None, hidden: tuple[int, ...] = (64, 64),
                         progress: bool = False, smearings: int = 1,
                         conditional_affine: bool = True, periodic_unfolder: bool = True,
                         selected_response: bool = False, batch_size: int = 1024,
                         lr: float = 2e-3, acceptance_hidden: tuple[int, ...] | None = None,
                         acceptance_epochs: int | None = None, device=None):
    """Simulate pairs and train transfer, acceptance and unfolder.

    Args:
        process: a two-lepton process (``drell-yan``).
        detector: an object with ``smear(x_hard, generator=) -> (x_reco, passed)`` on
            lepton observables of shape (n, 6) as (pT [GeV], η, φ) × 2, e.g.
            :class:`forward.detector.GaussianLeptonDetector`.
        n_trials: weighted trial points of the simulation (about a third become events).
        epochs: training epochs of each network.
        seed: seeds the simulation, the initial weights and the training.
        theta: parameter values (numbers) of the simulation; process defaults if None.
        hidden: hidden-layer widths of every network.
        progress: show training progress bars.
        smearings: detector simulations per hard event (>= 1) for the transfer and the
            acceptance (see the module docstring); the unfolder uses the first one.
        conditional_affine: put a context-conditional affine layer in front of the
            transfer's and the unfolder's spline layers (``FlowConfig.conditional_affine``).
        periodic_unfolder: rotate the unfolder's φ(ℓ⁻) by the reco φ(ℓ⁻)
            (``Unfolder(azimuth=...)``), so posteriors at φ ≈ 0 are not cut in two.
        selected_response: learn the response before the selection from all simulated
            pairs and use it through :class:`~invsim.transfer.SelectedTransfer` (see the
            module docstring); needs a detector whose ``passed`` is a cut on x_reco.
        batch_size: events per optimiser step of every network (>= 1).
        lr: initial learning rate (cosine-annealed to 0 over ``epochs``).
        acceptance_hidden, acceptance_epochs: the acceptance classifier's widths and
            epochs (default ``hidden`` and ``epochs``). It is cheap to train (hard events
            only) and its error enters σ_fid(θ), whose θ-slope multiplies the number of
            events in a summed log-likelihood, so it may deserve a larger budget.
        device: torch device of the simulation, the training and the returned networks
            (default CPU).

    Returns:
        (model, info): the :class:`~invsim.mem.MEMModel` and a dict of training numbers
        (events, accepted events, transfer pairs, best validation losses, seconds).
    """
    model, info = build_model(
        process, detector, n_trials=n_trials, epochs=epochs, seed=seed, theta=theta,
        hidden=hidden, progress=progress, smearings=smearings,
        conditional_affine=conditional_affine, periodic_unfolder=periodic_unfolder,
        selected_response=selected_response, batch_size=batch_size, lr=lr,
        acceptance_hidden=acceptance_hidden or hidden,
        acceptance_epochs=acceptance_epochs or epochs, min_accepted=0, reco_helper=False,
        device=device)
    return model, info
