"""The machine-learned matrix-element method: log p(x_reco | θ) by importance sampling.

* :mod:`invsim.mem.model`: :class:`MEMModel`, the θ-independent trained pieces and files;
* :mod:`invsim.mem.likelihood`: :class:`MEMLikelihood`, bound to observed events, with
  common random numbers over θ (an ``EventLikelihood`` for scans and NUTS);
* :mod:`invsim.mem.parton`: :class:`PartonLikelihood`, the exact likelihood of hard
  events (the floor for every reco-level method); :mod:`invsim.mem.reweight`: the
  θ-points and fiducial-σ sample both likelihoods share;
* :mod:`invsim.mem.channels`: :class:`ChannelLikelihood`, several channels (ee, μμ, …)
  with one model each as one likelihood of all their events;
* :mod:`invsim.mem.estimator`: the weight summaries, flags and :class:`MEMResult`;
* :mod:`invsim.mem.pareto`: generalized-Pareto fits and the Pareto k̂ diagnostic;
* :mod:`invsim.mem.proposals`: :class:`StratifiedMixtureProposal` of several proposals
  (``MixtureProposal``, its old name, works for one release with a FutureWarning);
* :mod:`invsim.mem.ttbar_proposal`: :class:`TTbarDileptonProposal`, the reco-centred
  proposal of t t̄ → dilepton (neutrinos solved from the W and top masses).
"""

from invsim._moved import moved_attributes
from invsim.mem.channels import ChannelLikelihood
from invsim.mem.estimator import (
    MEMResult,
    WeightSummary,
    flag_events,
    flag_reasons,
    summarize_weights,
)
from invsim.mem.likelihood import DifferentialCache, MEMLikelihood, MEMWarning
from invsim.mem.model import HARD_OBSERVABLES, MEMModel, lepton_pt_eta_phi
from invsim.mem.pareto import gpd_fit, pareto_khat, tail_length
from invsim.mem.parton import PartonLikelihood
from invsim.mem.proposals import StratifiedMixtureProposal
from invsim.mem.ttbar_proposal import TTbarDileptonProposal

__all__ = [
    "HARD_OBSERVABLES",
    "ChannelLikelihood",
    "DifferentialCache",
    "MEMLikelihood",
    "MEMModel",
    "MEMResult",
    "MEMWarning",
    "StratifiedMixtureProposal",
    "PartonLikelihood",
    "TTbarDileptonProposal",
    "WeightSummary",
    "flag_events",
    "flag_reasons",
    "gpd_fit",
    "lepton_pt_eta_phi",
    "pareto_khat",
    "summarize_weights",
    "tail_length",
]


__getattr__ = moved_attributes(
    __name__, {"MixtureProposal": "invsim.mem.proposals:StratifiedMixtureProposal"})
