"""Invertible maps between the unit hypercube and hard events, with log-Jacobians.

Every log-Jacobian refers to the measure dμ = dx1 dx2 dΦ_n of :mod:`forward.events`.

Pieces:

* :mod:`~forward.phasespace.invariants`: 1-D samplings of an invariant mass squared
  (flat, Breit–Wigner, power law);
* :mod:`~forward.phasespace.two_body`: two-body decays P → p1 p2 and their inverse;
* :mod:`~forward.phasespace.rambo`: n-body RAMBO on diet, massless and massive;
* :mod:`~forward.phasespace.decays`: sequential two-body decay chains (trees);
* :mod:`~forward.phasespace.hadronic`: (ŝ, y) × partonic map -> hard events, with
  the Drell–Yan :class:`SChannelMap` and the 2 → 2 :class:`TwoToTwoMap`.
"""

from forward.phasespace.decays import DecayChain, Resonance, top_decay_tree, ttbar_decay_tree
from forward.phasespace.hadronic import HadronicMap, SChannelMap, TwoToTwoMap
from forward.phasespace.invariants import (
    BreitWignerSampling,
    FlatSampling,
    InvariantSampling,
    PowerLawSampling,
)
from forward.phasespace.rambo import Rambo, log_massless_volume
from forward.phasespace.two_body import TwoBodyDecay

__all__ = [
    "BreitWignerSampling",
    "DecayChain",
    "FlatSampling",
    "HadronicMap",
    "InvariantSampling",
    "PowerLawSampling",
    "Rambo",
    "Resonance",
    "SChannelMap",
    "TwoBodyDecay",
    "TwoToTwoMap",
    "log_massless_volume",
    "top_decay_tree",
    "ttbar_decay_tree",
]
