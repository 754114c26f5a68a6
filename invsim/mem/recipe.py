"""A ready training recipe: the ML-MEM pieces for a dilepton final state.

:func:`build_dilepton_model` simulates (hard, reco) pairs of a two-lepton process with a
detector that smears the leptons' (pT, η, φ), and trains the three networks of a
:class:`~invsim.mem.MEMModel` on them: a residual transfer flow r(x_reco | x_hard)
(φ periodic), an acceptance classifier ε(x_hard) and a cINN unfolder q(x_hard | x_reco)
used as the importance-sampling proposal. The demo, the tutorials and
``benchmarks/mem.py`` use it.
"""

from __future__ import annotations

import time

__all__ = ["KINDS_HARD", "KINDS_RESIDUAL", "build_dilepton_model"]

#: observable kinds of (pT, η, φ) × 2 leptons for :func:`invsim.flows.observable_preprocessing`
KINDS_HARD = ["log", "real", "phi"] * 2
#: the same for the transfer's residuals (φ residual wrapped by the transfer itself)
KINDS_RESIDUAL = ["log", "real", "real"] * 2


def build_dilepton_model(process, detector, *, n_trials: int, epochs: int, seed: int = 0,
                         theta=None, hidden: tuple[int, ...] = (64, 64),
                         progress: bool = False):
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

    Returns:
        (model, info): the :class:`~invsim.mem.MEMModel` and a dict of training numbers
        (events, accepted events, best validation losses, seconds).
    """
    from invsim.bruteforce import simulate
    from invsim.flows import FlowConfig, TrainConfig, observable_preprocessing
    from invsim.mem.model import MEMModel
    from invsim.transfer import AcceptanceClassifier, TransferFunction
    from invsim.unfold import Unfolder

    t0 = time.perf_counter()
    sim = simulate(process, detector, n_trials, theta, seed=seed)
    acc = sim.passed
    info: dict = {"train_events": len(sim.hard), "train_accepted": int(acc.sum())}
    cfg = TrainConfig(epochs=epochs, batch_size=1024, lr=2e-3, patience=None)
    transfer = TransferFunction(
        observable_preprocessing(KINDS_RESIDUAL), observable_preprocessing(KINDS_HARD),
        FlowConfig(transforms=3, hidden_features=hidden), seed=seed, residual=True,
        periodic=(2, 5))
    res = transfer.fit(sim.x_hard[acc], sim.x_reco[acc], config=cfg, seed=seed,
                       progress=progress)
    info["transfer_val_loss"] = res.best_val_loss
    acceptance = AcceptanceClassifier(observable_preprocessing(KINDS_HARD), hidden, seed=seed)
    res = acceptance.fit(sim.x_hard, sim.passed, config=cfg, seed=seed, progress=progress)
    info["acceptance_val_loss"] = res.best_val_loss
    unfolder = Unfolder.from_process(
        process, observable_preprocessing(KINDS_HARD),
        FlowConfig(transforms=4, hidden_features=hidden, bins=12), seed=seed)
    res = unfolder.fit(sim.hard[acc], sim.x_reco[acc], config=cfg, seed=seed,
                       progress=progress)
    info["unfolder_val_loss"] = res.best_val_loss
    info["train_seconds"] = time.perf_counter() - t0
    model = MEMModel(process, unfolder, transfer, acceptance,
                     hard_observables="lepton_pt_eta_phi")
    return model, info
