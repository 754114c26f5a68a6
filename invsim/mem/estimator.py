r"""Self-normalising pieces of the importance-sampling MEM estimator and its diagnostics.

For one reco event and n proposal draws :math:`x_j \sim q`, with log weights
:math:`\log w_j`, the estimate of the integral :math:`I = E_q[w]` is
:math:`\hat I = \frac1n \sum_j w_j`. Its log has the delta-method error

.. math:: \delta \log \hat I \approx \frac{s_w}{\sqrt n\, \bar w},

with :math:`s_w` the sample standard deviation of the weights. The effective sample
size is :math:`(\sum w)^2 / \sum w^2` and the Pareto k̂ (:mod:`invsim.mem.pareto`)
measures how heavy the upper tail of the weights is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

__all__ = ["MEMResult", "WeightSummary", "flag_events", "flag_reasons", "summarize_weights"]


@dataclass
class WeightSummary:
    """Importance-sampling estimate of log E_q[w] per row, with its diagnostics.

    Attributes:
        log_mean: log of the mean weight, shape (...).
        error: delta-method standard error of ``log_mean``, shape (...).
        ess: effective sample size (Σw)²/Σw², shape (...).
    """

    log_mean: torch.Tensor
    error: torch.Tensor
    ess: torch.Tensor


def summarize_weights(log_w: torch.Tensor) -> WeightSummary:
    """log-mean, its error and the ESS of importance weights given as logs.

    Args:
        log_w: log weights, shape (..., n) with n >= 2; -inf for zero weights. Keeps
            the autograd graph in ``log_mean``.

    Returns:
        A :class:`WeightSummary`; rows whose weights are all zero have log_mean -inf,
        error +inf and ess 0.
    """
    n = log_w.shape[-1]
    if n < 2:
        raise ValueError(
            f"log_w: expected at least 2 weights per row, got shape {tuple(log_w.shape)}"
        )
    log_mean = torch.logsumexp(log_w, dim=-1) - math.log(n)
    with torch.no_grad():
        lw = log_w.detach()
        peak = lw.max(-1, keepdim=True).values
        alive = torch.isfinite(peak)
        w = torch.exp(lw - torch.where(alive, peak, torch.zeros_like(peak)))
        s1 = w.sum(-1)
        s2 = (w * w).sum(-1)
        mean = s1 / n
        var = (s2 / n - mean**2).clamp(min=0) * n / (n - 1)
        error = torch.sqrt(var / n) / mean
        ess = s1**2 / s2
        dead = ~alive.squeeze(-1)
        error = torch.where(dead, torch.full_like(error, math.inf), error)
        ess = torch.where(dead, torch.zeros_like(ess), ess)
    return WeightSummary(log_mean, error, ess)


def flag_reasons(
    log_p: torch.Tensor,
    error: torch.Tensor,
    ess: torch.Tensor,
    pareto_k: torch.Tensor | None,
    *,
    max_error: float,
    min_ess: float,
    max_pareto_k: float,
) -> dict[str, torch.Tensor]:
    """The events each diagnostic criterion flags, keyed by a readable criterion.

    Args:
        log_p, error, ess: per-event value, error and ESS, same shape.
        pareto_k: per-event k̂ (same shape) or None to skip that criterion.
        max_error: largest acceptable error of log p.
        min_ess: smallest acceptable effective sample size.
        max_pareto_k: largest acceptable k̂ (0.7 is the usual limit).

    Returns:
        ``{"non-finite log p": ..., "MC error > {max_error:g}": ...,
        "ESS < {min_ess:g}": ..., ["Pareto k > {max_pareto_k:g}": ...]}``, each a bool
        tensor of the same shape (NaN diagnostics count as failing).
    """
    out = {
        "non-finite log p": ~torch.isfinite(log_p.detach()),
        f"MC error > {max_error:g}": ~(error <= max_error),
        f"ESS < {min_ess:g}": ~(ess >= min_ess),
    }
    if pareto_k is not None:
        out[f"Pareto k > {max_pareto_k:g}"] = ~(pareto_k <= max_pareto_k)
    return out


def flag_events(
    log_p: torch.Tensor,
    error: torch.Tensor,
    ess: torch.Tensor,
    pareto_k: torch.Tensor | None,
    *,
    max_error: float,
    min_ess: float,
    max_pareto_k: float,
) -> torch.Tensor:
    """Events whose estimate should not be trusted: non-finite, too noisy or heavy-tailed.

    The union of the criteria of :func:`flag_reasons` (same arguments).

    Returns:
        Boolean tensor of the same shape, True for flagged events.
    """
    reasons = flag_reasons(log_p, error, ess, pareto_k, max_error=max_error,
                           min_ess=min_ess, max_pareto_k=max_pareto_k)
    bad = torch.zeros_like(log_p.detach(), dtype=torch.bool)
    for mask in reasons.values():
        bad = bad | mask
    return bad


@dataclass
class MEMResult:
    """Per-event MEM log-likelihoods with their Monte Carlo diagnostics.

    Shapes are (n_events,) for one parameter point and (b, n_events) for a batch.

    Attributes:
        log_p: log p(x_reco | θ) w.r.t. the reco observables' measure.
        error: delta-method MC error of log_p from the per-event importance sampling
            (the fiducial cross section's error, common to all events, is separate).
        ess: effective sample size of the per-event weights.
        pareto_k: Pareto k̂ of the per-event weights.
        flagged: events with poor diagnostics (non-finite, error, ESS or k̂ beyond the
            likelihood's limits); they are reported, never dropped silently.
        log_sigma_fid: log(σ_fid(θ)/pb), shape () or (b,).
        sigma_fid_error: relative MC error of σ_fid (= error of its log), same shape.
        n_samples: proposal draws per event.
        flag_reasons: criterion (e.g. ``"ESS < 20"``) -> bool tensor shaped like
            ``flagged``, the events each criterion flags (:func:`flag_reasons`); their
            union is ``flagged``. Empty when not computed.
    """

    log_p: torch.Tensor
    error: torch.Tensor
    ess: torch.Tensor
    pareto_k: torch.Tensor
    flagged: torch.Tensor
    log_sigma_fid: torch.Tensor
    sigma_fid_error: torch.Tensor
    n_samples: int
    flag_reasons: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def n_flagged(self) -> int:
        """Number of flagged (event, θ) entries."""
        return int(self.flagged.sum())

    def total(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed log-likelihood over events and its MC error (errors added in quadrature).

        Returns:
            (log L, error), each of shape () or (b,).
        """
        return self.log_p.sum(-1), torch.sqrt((self.error**2).sum(-1))

    def summary(self) -> str:
        """One line: events, flagged count, median ESS, max k̂, median error."""
        return (
            f"MEMResult: {self.log_p.shape[-1]} events x {self.n_samples} samples, "
            f"{self.n_flagged} flagged, median ESS {float(self.ess.median()):.1f}, "
            f"max k̂ {float(self.pareto_k.max()):.2f}, "
            f"median error {float(self.error.median()):.2g}"
        )
