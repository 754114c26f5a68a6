"""Analytic toy likelihoods with closed-form posteriors, for tests, tutorials and the CLI.

* :class:`GaussianMean`: x_i ~ N(μ, σ) with known σ; optionally a cross-section
  parameter ``xsec`` (pb) entering only the extended term, σ_fid = xsec. With flat
  priors the posterior of μ is N(x̄, σ/√n) and that of xsec is Gamma(n + 1, rate L).
* :class:`LinearGaussian`: y_i ~ N(a + b t_i, σ); with flat priors (a, b) is bivariate
  normal with mean the least-squares fit and covariance σ² (XᵀX)⁻¹.
* :func:`gaussian_mean_factory`: an ``invsim posterior --likelihood`` factory.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from forward._validation import as_tensor, check_finite, check_floating
from forward.processes.base import Parameter

__all__ = ["GaussianMean", "LinearGaussian", "gaussian_mean_factory"]


def _normal_log_prob(x: torch.Tensor, loc: torch.Tensor, scale: float) -> torch.Tensor:
    z = (x - loc) / scale
    return -0.5 * z * z - math.log(scale) - 0.5 * math.log(2 * math.pi)


def _column(v: torch.Tensor) -> torch.Tensor:
    """(b,) -> (b, 1) so a batch of θ broadcasts against the events; () stays ()."""
    return v[..., None] if v.ndim else v


class GaussianMean:
    """Events x_i ~ N(μ, σ), σ known; optional cross section for the extended term.

    Args:
        x: observed events, shape (n,).
        sigma: known standard deviation of each event, in the unit of x.
        mu_range: declared range (low, high) of μ.
        xsec_range: declared range in pb of the cross-section parameter ``xsec``; None
            for the one-parameter toy without it.
    """

    def __init__(self, x, sigma: float = 1.0, *, mu_range=(-10.0, 10.0), xsec_range=None):
        x = as_tensor("x", x, dtype=torch.float64)
        check_floating("x", x)
        if x.ndim != 1 or x.shape[0] < 1:
            raise ValueError(f"x: expected shape (n,) with n >= 1, got {tuple(x.shape)}")
        check_finite("x", x)
        if not (math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"sigma: expected a positive number, got {sigma!r}")
        self.x, self.sigma = x, float(sigma)
        lo, hi = mu_range
        self.parameters = {"mu": Parameter("mu", 0.5 * (lo + hi), lo, hi)}
        if xsec_range is not None:
            lo, hi = xsec_range
            self.parameters["xsec"] = Parameter("xsec", 0.5 * (lo + hi), lo, hi, unit="pb")
        self.parameter_names = tuple(self.parameters)

    def log_prob(self, theta: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """log N(x_i | μ, σ), shape (n,) or (b, n) for μ of shape () or (b,)."""
        return _normal_log_prob(self.x, _column(theta["mu"]), self.sigma)

    def log_sigma_fid(self, theta: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """log σ_fid = log xsec (pb), shape () or (b,); only with ``xsec_range``."""
        if "xsec" not in self.parameters:
            raise ValueError("log_sigma_fid: this toy has no xsec parameter (xsec_range=None)")
        return torch.log(theta["xsec"])

    def exact_posterior(self) -> tuple[float, float]:
        """(mean, sd) of μ under a flat prior (far from the range ends)."""
        return float(self.x.mean()), self.sigma / math.sqrt(self.x.shape[0])

    @staticmethod
    def simulate(mu: float, n: int, sigma: float = 1.0, *,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """n events x_i ~ N(mu, sigma), shape (n,) float64."""
        return mu + sigma * torch.randn(n, dtype=torch.float64, generator=generator)


class LinearGaussian:
    """Events (t_i, y_i) with y_i ~ N(a + b t_i, σ), σ known: a correlated 2D posterior.

    Args:
        t: covariates, shape (n,).
        y: observations, shape (n,).
        sigma: known noise standard deviation.
        a_range, b_range: declared ranges of the intercept a and slope b.
    """

    def __init__(self, t, y, sigma: float = 1.0, *, a_range=(-10.0, 10.0),
                 b_range=(-10.0, 10.0)):
        t = as_tensor("t", t, dtype=torch.float64)
        y = as_tensor("y", y, dtype=torch.float64)
        if t.ndim != 1 or t.shape != y.shape or t.shape[0] < 2:
            raise ValueError(f"t, y: expected equal shapes (n,) with n >= 2, got "
                             f"{tuple(t.shape)} and {tuple(y.shape)}")
        check_finite("t", t)
        check_finite("y", y)
        self.t, self.y, self.sigma = t, y, float(sigma)
        self.parameters = {"a": Parameter("a", 0.5 * sum(a_range), *a_range),
                           "b": Parameter("b", 0.5 * sum(b_range), *b_range)}
        self.parameter_names = ("a", "b")

    def log_prob(self, theta: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """log N(y_i | a + b t_i, σ), shape (n,) or (b, n)."""
        loc = _column(theta["a"]) + _column(theta["b"]) * self.t
        return _normal_log_prob(self.y, loc, self.sigma)

    def exact_posterior(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean, shape (2,), and covariance, shape (2, 2), of (a, b) under flat priors."""
        X = torch.stack([torch.ones_like(self.t), self.t], dim=-1)
        cov = self.sigma**2 * torch.linalg.inv(X.T @ X)
        mean = cov @ (X.T @ self.y) / self.sigma**2
        return mean, cov


def gaussian_mean_factory(events) -> GaussianMean:
    """``invsim posterior`` factory: a :class:`GaussianMean` on an event file's momenta.

    The toy treats x_i = p_z of the first final-state particle (GeV) as N(μ, 10 GeV)
    with μ in [-1000, 1000] GeV.

    Args:
        events: a :class:`forward.eventset.EventSet`.
    """
    return GaussianMean(events.momenta[:, 0, 3].to(torch.float64), 10.0,
                        mu_range=(-1000.0, 1000.0))
