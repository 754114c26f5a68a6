r"""Detector nuisance parameters of the inverse chain: the jet energy scale.

A *detector* nuisance changes the detector response, not dσ(θ)/dμ: the transfer
r(x_reco | x_hard, ν) and the acceptance ε(x_hard, ν) depend on it. The design:

* **Forward.** The card detector takes the jet energy scale as ``DetectorCard.jes`` or
  ``Detector(card, jes=...)`` or per event in ``reconstruct(..., jes=tensor)``
  (:mod:`forward.detector.card`): reconstructed jet four-momenta are multiplied by it.
* **Training.** ``build_model(..., ranges={"mt": (165, 180), "jes": (0.95, 1.05)})``
  draws one factor per simulated hard event uniformly in the range and reconstructs
  the event with it; the transfer and the acceptance take the factor as one more
  context column after the hard features (:meth:`MEMModel.hard_features` appends the
  columns of the nuisances in ``model.ranges`` that are named in
  :data:`DETECTOR_NUISANCES`, in that order; the unfolder, the proposal, is not
  conditioned: it is trained on the mixture of factors and covers them all).
* **Likelihood.** ``MEMLikelihood(model, x, nuisances=("jes",))`` appends ``jes`` to θ,
  exactly like the scale nuisances ``log2_mur``/``log2_muf`` (the same
  ``nuisances=`` argument, ``--nuisance jes`` on the command line). The proposal draws
  are still made once; the θ-independent factor
  :math:`\log \varepsilon(y_j, \nu) + \log r(x \mid y_j, \nu)` of every draw (and
  :math:`\log\varepsilon(y_i, \nu)` of the fiducial sample) is evaluated at
  :data:`JES_NODES` Chebyshev nodes of the trained range and kept as the coefficients of
  its Chebyshev interpolant in ν (:class:`ChebyshevCache`), so each θ costs a
  polynomial evaluation and log p̂ stays smooth and differentiable in ν (NUTS
  marginalises it). Without ``jes`` in θ the factor is evaluated at the value in
  ``fixed`` (default 1).
* **Prior.** :func:`default_prior`: Normal(1, 0.02) truncated to the trained range
  (:class:`TruncatedNormal`); ``invsim posterior`` uses it unless ``--prior jes=...``.
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
from torch.distributions import constraints

from forward.processes.base import Parameter

__all__ = ["DETECTOR_NUISANCES", "JES_NODES", "JES_PRIOR", "ChebyshevCache", "TruncatedNormal",
           "default_prior", "detector_nuisance_names"]

#: detector nuisances the inverse chain knows: the jet energy scale factor (declared range
#: [0.9, 1.1]; a model trained over a narrower range narrows it)
DETECTOR_NUISANCES: dict[str, Parameter] = {
    "jes": Parameter("jes", 1.0, 0.9, 1.1, "",
                     "jet energy scale factor on reconstructed jets (detector nuisance)"),
}
#: default prior (loc, scale) of each detector nuisance: JES known to 2 %
JES_PRIOR: dict[str, tuple[float, float]] = {"jes": (1.0, 0.02)}
#: interpolation nodes of the cached factors in a detector nuisance (degree JES_NODES - 1)
JES_NODES = 9


def detector_nuisance_names(names) -> tuple[str, ...]:
    """The names among ``names`` that are detector nuisances, in the order of
    :data:`DETECTOR_NUISANCES`."""
    names = set(names)
    return tuple(n for n in DETECTOR_NUISANCES if n in names)


class TruncatedNormal(dist.TorchDistribution):
    """Normal(loc, scale) truncated to [low, high] (univariate, float64).

    Args:
        loc, scale: of the untruncated normal (scale > 0).
        low, high: the support, low < high.
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    has_rsample = False

    def __init__(self, loc, scale, low, high, validate_args=None):
        self.loc, self.scale, self.low, self.high = (
            torch.as_tensor(v, dtype=torch.float64) for v in (loc, scale, low, high))
        if not (float(self.scale) > 0 and float(self.low) < float(self.high)):
            raise ValueError(f"TruncatedNormal: expected scale > 0 and low < high, got "
                             f"scale={float(self.scale)}, [{float(self.low)}, "
                             f"{float(self.high)}]")
        self._base = torch.distributions.Normal(self.loc, self.scale)
        self._cdf_lo, self._cdf_hi = self._base.cdf(self.low), self._base.cdf(self.high)
        self._log_z = torch.log(self._cdf_hi - self._cdf_lo)
        super().__init__(torch.Size(), torch.Size(), validate_args=validate_args)

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self):
        return constraints.interval(self.low, self.high)

    def log_prob(self, value):
        value = torch.as_tensor(value, dtype=torch.float64)
        inside = (value >= self.low) & (value <= self.high)
        lp = self._base.log_prob(value) - self._log_z
        return torch.where(inside, lp, torch.full_like(lp, -math.inf))

    def sample(self, sample_shape=()):
        u = torch.rand(torch.Size(sample_shape), dtype=torch.float64)
        with torch.no_grad():
            p = self._cdf_lo + u * (self._cdf_hi - self._cdf_lo)
            return self._base.icdf(p).clamp(self.low, self.high)

    @property
    def mean(self):
        a, b = ((v - self.loc) / self.scale for v in (self.low, self.high))
        phi = torch.distributions.Normal(0.0, 1.0)
        num = phi.log_prob(a).exp() - phi.log_prob(b).exp()
        return self.loc + self.scale * num / (self._cdf_hi - self._cdf_lo)

    def expand(self, batch_shape, _instance=None):
        if tuple(batch_shape) != ():
            raise ValueError("TruncatedNormal: univariate only")
        return self


def default_prior(name: str, low: float, high: float) -> TruncatedNormal:
    """The default prior of a detector nuisance over its (trained) range.

    Args:
        name: a key of :data:`DETECTOR_NUISANCES`.
        low, high: the range the prior is truncated to.

    Returns:
        Normal(:data:`JES_PRIOR`) truncated to [low, high].
    """
    if name not in JES_PRIOR:
        raise ValueError(f"name: expected one of {sorted(JES_PRIOR)}, got {name!r}")
    loc, scale = JES_PRIOR[name]
    return TruncatedNormal(loc, scale, low, high)


class ChebyshevCache:
    r"""Values f(ν) cached as Chebyshev interpolants on [low, high].

    ``nodes`` are the K Chebyshev points :math:`u_k = \cos(\pi (2k+1)/2K)` mapped to
    [low, high]; :meth:`fit` turns values at them, shape (..., K), into coefficients
    and :meth:`__call__` evaluates :math:`\sum_j c_j T_j(u)` at any ν (differentiable).

    Args:
        low, high: the interval (low < high).
        k: number of nodes (>= 1; 1 gives a constant).
    """

    def __init__(self, low: float, high: float, k: int = JES_NODES) -> None:
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"low, high: expected finite low < high, got ({low}, {high})")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k: expected an integer >= 1, got {k!r}")
        self.low, self.high, self.k = float(low), float(high), k
        j = torch.arange(k, dtype=torch.float64)
        self.u = torch.cos(math.pi * (2 * j + 1) / (2 * k))
        self.nodes = self.low + 0.5 * (self.u + 1) * (self.high - self.low)
        # values = coef @ V.T with V[k, j] = T_j(u_k)
        self._inv = torch.linalg.inv(self._basis(self.u))  # (K, K)

    def _basis(self, u: torch.Tensor) -> torch.Tensor:
        """T_j(u) for j < K, shape (*u.shape, K)."""
        cols = [torch.ones_like(u)]
        if self.k > 1:
            cols.append(u)
        for _ in range(2, self.k):
            cols.append(2 * u * cols[-1] - cols[-2])
        return torch.stack(cols, -1)

    def fit(self, values: torch.Tensor) -> torch.Tensor:
        """Coefficients of the interpolants of ``values`` (..., K) at :attr:`nodes`."""
        return values @ self._inv.to(values).T

    def __call__(self, coef: torch.Tensor, nu: torch.Tensor) -> torch.Tensor:
        """Σ_j coef[..., j] T_j(u(ν)), shape (...); ν a tensor of shape ()."""
        u = (2 * (nu - self.low) / (self.high - self.low) - 1).to(coef.dtype)
        return (coef * self._basis(u)).sum(-1)
