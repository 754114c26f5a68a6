r"""Reweighting a fixed sample to other parameter points, with its effective sample size.

Points :math:`r_i` drawn once from a density :math:`q` (e.g. ``ConditionalNIS.sample``
at :math:`\theta_0`, or any proposal) estimate the integral at *any* θ without new
draws:

.. math:: \hat\sigma(\theta) = \frac1n \sum_i w_i(\theta), \qquad
          w_i(\theta) = \frac{f(r_i; \theta)}{q(r_i)}, \qquad
          \delta\hat\sigma = \frac{\operatorname{std}(w)}{\sqrt n},

unbiased wherever :math:`q > 0` covers :math:`f(\cdot; \theta)`. How well the sample
suits θ is measured by the effective sample size
:math:`\text{ESS} = (\sum_i w_i)^2 / \sum_i w_i^2` (n for equal weights); far from
:math:`\theta_0` few points carry the sum, the ESS drops and the error estimate itself
becomes unreliable, so a small ESS warns (:class:`forward.nis.NISWarning`).

For unweighted events from :math:`\theta_0` use :math:`\log q = \log f(r; \theta_0) -
\log \sigma(\theta_0)`, i.e. :math:`w_i = \sigma(\theta_0)\, f(r_i; \theta)/f(r_i; \theta_0)`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from forward._validation import as_tensor, check_finite, check_range
from forward.nis._evaluate import check_points, evaluate
from forward.nis.diagnostics import NISWarning

__all__ = ["ReweightResult", "reweight", "weighted_estimate"]


@dataclass(frozen=True)
class ReweightResult:
    """An integral estimate from a weighted sample.

    Attributes:
        value: ``mean(w)`` (units of the integrand, pb for a hadronic one).
        error: its standard error ``std(w) / sqrt(n)``.
        ess: effective sample size ``(Σw)² / Σw²`` (0 when all weights vanish).
        n: number of points.
        weights: the weights, float64 shape (n,).
        warnings: messages that were (or would have been) warned.
    """

    value: float
    error: float
    ess: float
    n: int
    weights: torch.Tensor
    warnings: tuple[str, ...] = ()

    @property
    def ess_fraction(self) -> float:
        """``ess / n``, in [0, 1]."""
        return self.ess / self.n

    def pull(self, reference: float) -> float:
        """``(value - reference) / error``."""
        d = self.value - reference
        if self.error == 0:
            return 0.0 if d == 0 else math.copysign(math.inf, d)
        return d / self.error

    def __str__(self) -> str:
        return f"{self.value:.6g} ± {self.error:.2g} (ESS {self.ess:.4g} of {self.n})"


def weighted_estimate(
    weights: torch.Tensor, *, min_ess: float = 100.0, warn: bool = True
) -> ReweightResult:
    """Mean, standard error and effective sample size of importance weights.

    Args:
        weights: weights ``f/q`` of points drawn from ``q``, shape (n,) with n >= 2.
        min_ess: warn (:class:`forward.nis.NISWarning`) when the ESS is below this.
        warn: emit the warning (else only record it in the result).

    Returns:
        A :class:`ReweightResult`.

    Raises:
        TypeError, ValueError: not a floating tensor of shape (n,) with n >= 2, or
            NaN/inf weights.
    """
    if not isinstance(weights, torch.Tensor) or not weights.is_floating_point():
        raise TypeError(
            f"weights: expected a floating-point tensor of shape (n,), got "
            f"{type(weights).__name__ if not isinstance(weights, torch.Tensor) else weights.dtype}"
        )
    if weights.ndim != 1 or weights.shape[0] < 2:
        raise ValueError(f"weights: expected shape (n,) with n >= 2, got {tuple(weights.shape)}")
    check_finite("weights", weights)
    check_range("min_ess", float(min_ess), 0.0)
    w = weights.to(torch.float64)
    n = w.shape[0]
    s1, s2 = float(w.sum()), float((w * w).sum())
    ess = s1 * s1 / s2 if s2 > 0 else 0.0
    msgs = []
    if ess < min_ess:
        msgs.append(
            f"effective sample size {ess:.3g} of {n} points is below {min_ess:g}: the sample "
            f"barely covers this parameter point and the quoted error is unreliable; draw a "
            f"fresh sample there (e.g. ConditionalNIS.sample)"
        )
    if warn:
        for m in msgs:
            warnings.warn(m, NISWarning, stacklevel=2)
    return ReweightResult(
        value=s1 / n,
        error=float(w.std()) / math.sqrt(n),
        ess=ess,
        n=n,
        weights=w,
        warnings=tuple(msgs),
    )


def reweight(
    integrand: Callable[[torch.Tensor, Mapping[str, torch.Tensor]], torch.Tensor],
    r: torch.Tensor,
    log_q: torch.Tensor,
    params: Mapping[str, float | torch.Tensor],
    *,
    min_ess: float = 100.0,
    warn: bool = True,
) -> ReweightResult:
    """Estimate the integral at ``params`` from a fixed sample drawn from ``q``.

    Args:
        integrand: ``f(r, params)`` with r of shape (n, d) and params name -> tensor of
            shape (n,) (e.g. :class:`forward.integrand.HadronicIntegrand`).
        r: the sample, points of the unit cube, shape (n, d).
        log_q: log of the density the sample was drawn from, shape (n,).
        params: one parameter point, name -> number or tensor of shape () (parameters
            not named keep the integrand's defaults).
        min_ess: warn when the effective sample size is below this.
        warn: emit the warning (else only record it).

    Returns:
        A :class:`ReweightResult` for ``params``.
    """
    if not isinstance(r, torch.Tensor) or r.ndim != 2:
        got = tuple(r.shape) if isinstance(r, torch.Tensor) else type(r).__name__
        raise ValueError(f"r: expected a tensor of shape (n, d), got {got}")
    check_points("r", r, r.shape[1])
    n = r.shape[0]
    if not isinstance(log_q, torch.Tensor) or log_q.shape != (n,):
        got = tuple(log_q.shape) if isinstance(log_q, torch.Tensor) else type(log_q).__name__
        raise ValueError(f"log_q: expected a tensor of shape ({n},), got {got}")
    if not isinstance(params, Mapping):
        raise TypeError(f"params: expected a mapping name -> value, got {type(params).__name__}")
    lq = log_q.to(torch.float64)
    if bool(torch.isnan(lq).any() | torch.isposinf(lq).any()):
        raise ValueError("log_q: holds NaN or +inf")
    batch = {}
    for name, v in params.items():
        t = as_tensor(f"params[{name!r}]", v, dtype=torch.float64, device=r.device)
        if t.ndim != 0:
            raise ValueError(
                f"params[{name!r}]: expected one value (shape ()), got {tuple(t.shape)}"
            )
        check_finite(f"params[{name!r}]", t)
        batch[name] = t.expand(n)
    fx = evaluate(lambda x: integrand(x, batch), r)
    if bool(((fx != 0) & torch.isneginf(lq)).any()):
        raise ValueError(
            "log_q: -inf (q = 0) at points where the integrand is non-zero; "
            "these points cannot have been drawn from q"
        )
    w = torch.where(fx != 0, fx * torch.exp(-lq), 0.0)
    return weighted_estimate(w, min_ess=min_ess, warn=warn)
