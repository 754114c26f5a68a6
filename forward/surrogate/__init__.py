"""Amplitude surrogates: learned |M|² with calibrated uncertainties (issue #8).

* :mod:`~forward.surrogate.data`: (phase-space point, |M|²) training pairs from any
  process, flat on the map's cube or from a NIS proposal, with optional oversampling
  of the high-|M|² region;
* :mod:`~forward.surrogate.features`: Lorentz-invariant inputs (log s_ij/ŝ), the
  identical-particle permutations, the known factor R of the target log|M|² - log R;
* :mod:`~forward.surrogate.models`, :mod:`~forward.surrogate.layers`: heteroscedastic,
  Bayesian (Bayes by backprop), deep-ensemble and plain-MSE networks, symmetrised;
* :mod:`~forward.surrogate.training`: training with Adam and a cosine schedule,
  calibration of σ on held-out points, boosting of the tails;
* :mod:`~forward.surrogate.matrix_element`: :class:`SurrogateMatrixElement`, the
  drop-in |M|² (mean and σ per flavour channel; save/load) and
  :class:`SurrogateProcess`;
* :mod:`~forward.surrogate.unweighting`: exact two-stage unweighting with a surrogate;
* :mod:`~forward.surrogate.diagnostics`: precision and pull statistics and plots.

Example:
    >>> import torch
    >>> from forward.processes import get_process
    >>> from forward.surrogate import SurrogateConfig, generate_training_data, train_surrogate
    >>> proc = get_process("ttbar")
    >>> g = torch.Generator().manual_seed(1)
    >>> data = generate_training_data(proc, 2000, generator=g)
    >>> fit = train_surrogate(proc, data, SurrogateConfig(kind="heteroscedastic", epochs=2),
    ...                       generator=g)
    >>> fit.surrogate.matrix_element(data.events[:5], None).shape
    torch.Size([5, 11])
"""

from forward.surrogate.data import TrainingData, generate_training_data
from forward.surrogate.diagnostics import (
    PrecisionSummary,
    plot_precision,
    precision_summary,
)
from forward.surrogate.features import (
    REFERENCES,
    canonical_order,
    identical_permutations,
    invariant_features,
    log_reference,
)
from forward.surrogate.matrix_element import (
    SurrogateMatrixElement,
    SurrogateProcess,
    channel_groups,
)
from forward.surrogate.models import KINDS, SYMMETRIES, SurrogateNet, SymmetricRegressor
from forward.surrogate.training import (
    SurrogateConfig,
    SurrogateFit,
    boost_surrogate,
    train_surrogate,
)
from forward.surrogate.unweighting import (
    TwoStageEvents,
    TwoStageResult,
    two_stage_events,
    two_stage_unweight,
)

__all__ = [
    "KINDS",
    "REFERENCES",
    "SYMMETRIES",
    "PrecisionSummary",
    "SurrogateConfig",
    "SurrogateFit",
    "SurrogateMatrixElement",
    "SurrogateNet",
    "SurrogateProcess",
    "SymmetricRegressor",
    "TrainingData",
    "TwoStageEvents",
    "TwoStageResult",
    "boost_surrogate",
    "canonical_order",
    "channel_groups",
    "generate_training_data",
    "identical_permutations",
    "invariant_features",
    "log_reference",
    "plot_precision",
    "precision_summary",
    "train_surrogate",
    "two_stage_events",
    "two_stage_unweight",
]
