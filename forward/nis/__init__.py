"""Neural importance sampling on the unit hypercube.

Building blocks: :class:`VegasMap` (adaptive VEGAS grid in torch), :class:`CubeFlow`
(rational-quadratic-spline coupling flow with support [0, 1]^d),
:class:`MixtureProposal` (flow + defensive uniform/VEGAS component, optionally on a
VEGAS first layer), :class:`Trainer` (buffered training with variance / KL losses,
checkpoints), :func:`integrate` (-> :class:`IntegrationResult`), :func:`unweight`
and the :class:`NISWarning` diagnostics; :func:`fit` runs the default pipeline
(VEGAS warm start, then a flow on the grid with an annealed defensive weight).
:func:`fit_multichannel` trains a :class:`MultiChannel` sampler (one phase-space map
per channel, :class:`ChannelWeights` from a propagator prior and a network, stratified
allocation, channel dropping) with ``integrate``, ``sample`` and ``unweight``.

Example:
    >>> import torch
    >>> from forward.nis import NISConfig, fit, integrate
    >>> from forward.nis.toys import camel
    >>> f = camel(4)
    >>> nis = fit(f, 4, NISConfig(calls=200_000), generator=torch.Generator().manual_seed(0))
    >>> r = integrate(f, nis.proposal, 100_000, generator=torch.Generator().manual_seed(1))
    >>> abs(r.pull(1.0)) < 5  # doctest: +SKIP
    True
"""

from forward.nis.channel_weights import ChannelWeights
from forward.nis.conditional import (
    ConditionalNIS,
    ConditionalProposal,
    CrossSectionScan,
    ParameterBox,
)
from forward.nis.diagnostics import (
    Diagnostics,
    NISWarning,
    check_weights,
    lost_region_check,
    uniform_check,
)
from forward.nis.flows import CubeFlow, SplineCoupling, coupling_masks, unit_rqs
from forward.nis.mixture import ComponentSample, MixtureProposal, Proposal
from forward.nis.multichannel import (
    MultiChannel,
    MultiChannelConfig,
    UnweightedSample,
    WeightedSample,
    fit_multichannel,
    hadronic_channels,
)
from forward.nis.pipeline import NISConfig, NISFit, fit, vegas_bins
from forward.nis.results import IntegrationResult, combine_estimates, integrate
from forward.nis.reweight import ReweightResult, reweight, weighted_estimate
from forward.nis.training import LOSSES, Trainer, TrainingConfig, nis_loss
from forward.nis.unweighting import UnweightingResult, max_weight, unweight, unweighting_efficiency
from forward.nis.vegas import VegasMap

__all__ = [
    "LOSSES",
    "ChannelWeights",
    "ComponentSample",
    "ConditionalNIS",
    "ConditionalProposal",
    "CrossSectionScan",
    "CubeFlow",
    "Diagnostics",
    "IntegrationResult",
    "MixtureProposal",
    "MultiChannel",
    "MultiChannelConfig",
    "NISConfig",
    "NISFit",
    "NISWarning",
    "ParameterBox",
    "Proposal",
    "ReweightResult",
    "SplineCoupling",
    "Trainer",
    "TrainingConfig",
    "UnweightedSample",
    "UnweightingResult",
    "VegasMap",
    "WeightedSample",
    "check_weights",
    "combine_estimates",
    "coupling_masks",
    "fit",
    "fit_multichannel",
    "hadronic_channels",
    "integrate",
    "lost_region_check",
    "max_weight",
    "nis_loss",
    "reweight",
    "uniform_check",
    "unit_rqs",
    "unweight",
    "unweighting_efficiency",
    "vegas_bins",
    "weighted_estimate",
]
