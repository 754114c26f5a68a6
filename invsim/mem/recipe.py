"""A ready training recipe: the ML-MEM pieces for a dilepton final state.

:func:`build_dilepton_model` simulates (hard, reco) pairs of a two-lepton process with a
detector that smears the leptons' (pT, η, φ), and trains the three networks of a
:class:`~invsim.mem.MEMModel` on them: a residual transfer flow r(x_reco | x_hard)
(φ periodic), an acceptance classifier ε(x_hard) and a cINN unfolder q(x_hard | x_reco)
used as the importance-sampling proposal (its φ rotated by the reco φ, so it is
periodic too). The demo, the tutorials and ``benchmarks/mem.py`` use it.

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

import time

import torch

__all__ = ["DILEPTON_AZIMUTH", "KINDS_HARD", "KINDS_RESIDUAL", "build_dilepton_model"]

#: observable kinds of (pT, η, φ) × 2 leptons for :func:`invsim.flows.observable_preprocessing`
KINDS_HARD = ["log", "real", "phi"] * 2
#: the same for the transfer's residuals (φ residual wrapped by the transfer itself)
KINDS_RESIDUAL = ["log", "real", "real"] * 2
#: (hard coordinate, reco column) of the unfolder's azimuth option for the Drell–Yan
#: channel: the map's 4th unit-cube coordinate is φ(ℓ⁻)/2π, column 2 holds reco φ(ℓ⁻)
DILEPTON_AZIMUTH = (3, 2)


def _smear_many(detector, x_hard: torch.Tensor, k: int, generator: torch.Generator):
    """k detector simulations of each hard event: (x_reco, passed), shapes (k, n, ...)."""
    x_reco, passed = detector.smear(x_hard.repeat(k, 1), generator=generator)
    n = x_hard.shape[0]
    return x_reco.view(k, n, -1), passed.view(k, n)


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
            :class:`invsim.bruteforce.GaussianLeptonDetector`.
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
    from invsim.bruteforce import simulate
    from invsim.flows import FlowConfig, TrainConfig, observable_preprocessing
    from invsim.mem.model import MEMModel
    from invsim.transfer import AcceptanceClassifier, SelectedTransfer, TransferFunction
    from invsim.unfold import Unfolder

    if isinstance(smearings, bool) or not isinstance(smearings, int) or smearings < 1:
        raise ValueError(f"smearings: expected an integer >= 1, got {smearings!r}")
    t0 = time.perf_counter()
    sim = simulate(process, detector, n_trials, theta, seed=seed, device=device)
    dev = sim.x_hard.device
    acc = sim.passed
    info: dict = {"train_events": len(sim.hard), "train_accepted": int(acc.sum())}
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, patience=None)
    x_reco_all, passed_all = sim.x_reco.unsqueeze(0), sim.passed.unsqueeze(0)  # (k, n, ...)
    if smearings > 1:
        gen = torch.Generator(device=sim.x_hard.device).manual_seed(int(seed) + 7919)
        more_reco, more_passed = _smear_many(detector, sim.x_hard, smearings - 1, gen)
        x_reco_all = torch.cat([x_reco_all, more_reco])
        passed_all = torch.cat([passed_all, more_passed])
    pass_target = passed_all.to(torch.float64).mean(0) if smearings > 1 else sim.passed
    # the response before the selection learns from every pair, r of selected events
    # from the selected ones
    use = torch.ones_like(passed_all) if selected_response else passed_all
    x_hard_tr = sim.x_hard.expand(smearings, -1, -1)[use]
    x_reco_tr = x_reco_all[use]
    info["transfer_pairs"] = int(x_hard_tr.shape[0])
    transfer = TransferFunction(
        observable_preprocessing(KINDS_RESIDUAL), observable_preprocessing(KINDS_HARD),
        FlowConfig(transforms=3, hidden_features=hidden, conditional_affine=conditional_affine),
        seed=seed, residual=True, periodic=(2, 5)).to(dev)
    res = transfer.fit(x_hard_tr, x_reco_tr, config=cfg, seed=seed, progress=progress)
    info["transfer_val_loss"] = res.best_val_loss
    acceptance = AcceptanceClassifier(observable_preprocessing(KINDS_HARD),
                                      tuple(acceptance_hidden or hidden), seed=seed).to(dev)
    cfg_acc = cfg if acceptance_epochs is None else TrainConfig(
        epochs=acceptance_epochs, batch_size=batch_size, lr=lr, patience=None)
    res = acceptance.fit(sim.x_hard, pass_target, config=cfg_acc, seed=seed,
                         progress=progress)
    info["acceptance_val_loss"] = res.best_val_loss
    if selected_response:
        transfer = SelectedTransfer(transfer, acceptance)
    unfolder = Unfolder.from_process(
        process, observable_preprocessing(KINDS_HARD),
        FlowConfig(transforms=4, hidden_features=hidden, bins=12,
                   conditional_affine=conditional_affine),
        seed=seed, azimuth=DILEPTON_AZIMUTH if periodic_unfolder else None).to(dev)
    res = unfolder.fit(sim.hard[acc], sim.x_reco[acc], config=cfg, seed=seed,
                       progress=progress)
    info["unfolder_val_loss"] = res.best_val_loss
    info["train_seconds"] = time.perf_counter() - t0
    model = MEMModel(process, unfolder, transfer, acceptance,
                     hard_observables="lepton_pt_eta_phi")
    return model, info
