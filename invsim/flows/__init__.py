"""Conditional normalising flows for the inverse side: preprocessing, builders, training.

* :mod:`invsim.flows.preprocessing`: invertible observable maps with exact
  log-Jacobians (log pT, periodic φ, standardisation) and their composition;
* :mod:`invsim.flows.momenta`: four-momenta of a fixed list of objects <-> observables,
  with the Jacobian of the documented momentum measure;
* :mod:`invsim.flows.builders`: zuko flow builders and :class:`ConditionalFlow`, whose
  ``forward(context)`` is a torch distribution over the physical variables;
* :mod:`invsim.flows.training`: the one training loop, checkpoints, save/load.
"""

from invsim.flows.builders import FLOW_KINDS, ConditionalFlow, FlowConfig, build_flow
from invsim.flows.momenta import (
    MomentumFeatures,
    ObjectSpec,
    log_invariant_factor,
    momentum_preprocessing,
)
from invsim.flows.preprocessing import (
    OBSERVABLE_KINDS,
    ColumnTransform,
    LogShift,
    PeriodicLogit,
    Preprocessing,
    Standardize,
    observable_preprocessing,
    preprocessing_from_dict,
)
from invsim.flows.training import (
    SCHEDULERS,
    LoadedFlow,
    TrainConfig,
    TrainResult,
    fit_module,
    load_flow,
    save_flow,
    split_indices,
    train_flow,
)

__all__ = [
    "FLOW_KINDS",
    "OBSERVABLE_KINDS",
    "SCHEDULERS",
    "ColumnTransform",
    "ConditionalFlow",
    "FlowConfig",
    "LoadedFlow",
    "LogShift",
    "MomentumFeatures",
    "ObjectSpec",
    "PeriodicLogit",
    "Preprocessing",
    "Standardize",
    "TrainConfig",
    "TrainResult",
    "build_flow",
    "fit_module",
    "load_flow",
    "log_invariant_factor",
    "momentum_preprocessing",
    "observable_preprocessing",
    "preprocessing_from_dict",
    "save_flow",
    "split_indices",
    "train_flow",
]
