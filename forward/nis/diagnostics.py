r"""Diagnostics that keep importance sampling from failing silently.

A trained flow can *lose* a region where the integrand lives: it then almost never
samples there, its estimate is too low and its error estimate too small, and nothing
looks wrong. The defensive component of a :class:`forward.nis.MixtureProposal`
samples everywhere, so it gives an independent (noisier) estimate:

* **global check**: the flow component's own estimate
  :math:`\hat I_\text{flow} = \langle f/q_\text{flow}\rangle_\text{flow samples}` against
  the defensive one :math:`\hat I_\text{def} = \langle f/q_\text{def}\rangle_\text{def samples}`;
* **local check**: the same two estimates restricted to the region
  :math:`R = \{q_\text{flow} < q_\text{def}\}` where the flow is thinner than the
  defensive density; a lost region lies in :math:`R`, and restricting to it removes
  the noise of the well-covered rest.

A deficit of the flow estimate by more than ``z_threshold`` combined standard errors
raises a :class:`NISWarning`. Weight-tail statistics are checked too: a tiny
effective sample size or a single point carrying a large share of the integral
also warns, since the quoted error is then unreliable.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch

__all__ = ["Diagnostics", "NISWarning", "check_weights", "lost_region_check"]


class NISWarning(UserWarning):
    """Importance sampling looks unreliable (lost region, heavy weight tail)."""


@dataclass(frozen=True)
class Diagnostics:
    """Results of the checks of one sample.

    Attributes:
        ess_fraction: effective sample size ``(Σ|w|)² / Σw² / n``, in (0, 1].
        max_weight_share: largest ``|w_i| / Σ|w|``.
        z_global: (defensive − flow) estimate difference in combined standard errors
            (nan when a component has fewer than 2 points).
        z_local: the same restricted to ``q_flow < q_defensive`` (nan if not computable).
        region_fraction: defensive estimate of the share of the integral in that region.
        warnings: the messages that were warned.
    """

    ess_fraction: float
    max_weight_share: float
    z_global: float = math.nan
    z_local: float = math.nan
    region_fraction: float = math.nan
    warnings: tuple[str, ...] = ()


def _mean_err(v: torch.Tensor) -> tuple[float, float]:
    n = v.numel()
    if n < 2:
        return math.nan, math.nan
    return float(v.mean()), float(v.std() / math.sqrt(n))


def lost_region_check(
    f: torch.Tensor,
    log_q_flow: torch.Tensor,
    log_q_defensive: torch.Tensor,
    defensive: torch.Tensor,
) -> tuple[float, float, float]:
    """Compare the flow and defensive components' estimates, globally and where the flow is thin.

    Args:
        f: integrand values, shape (n,) (|f| is used).
        log_q_flow: log-density of the flow component at each point, shape (n,).
        log_q_defensive: log-density of the defensive component, shape (n,).
        defensive: True where a point was drawn from the defensive component, shape (n,).

    Returns:
        ``(z_global, z_local, region_fraction)``: deficits of the flow estimate in
        combined standard errors (positive = flow too low) and the defensive estimate
        of the integral's share in ``{q_flow < q_defensive}``.
    """
    a = f.to(torch.float64).abs()
    w_flow = a * torch.exp(-log_q_flow.to(torch.float64))
    w_def = a * torch.exp(-log_q_defensive.to(torch.float64))
    thin = log_q_flow < log_q_defensive
    fl, df = ~defensive, defensive

    def z_of(mask: torch.Tensor) -> float:
        m_f, e_f = _mean_err(torch.where(mask, w_flow, 0.0)[fl])
        m_d, e_d = _mean_err(torch.where(mask, w_def, 0.0)[df])
        if math.isnan(m_f) or math.isnan(m_d):
            return math.nan
        err = math.hypot(e_f, e_d)
        if err == 0:
            return 0.0 if m_d == m_f else math.copysign(math.inf, m_d - m_f)
        return (m_d - m_f) / err

    z_global = z_of(torch.ones_like(thin))
    z_local = z_of(thin)
    total_def = _mean_err(w_def[df])[0]
    region = _mean_err(torch.where(thin, w_def, 0.0)[df])[0]
    frac = region / total_def if total_def and total_def > 0 else math.nan
    return z_global, z_local, frac


def check_weights(
    weights: torch.Tensor,
    *,
    f: torch.Tensor | None = None,
    log_q_flow: torch.Tensor | None = None,
    log_q_defensive: torch.Tensor | None = None,
    defensive: torch.Tensor | None = None,
    z_threshold: float = 5.0,
    min_ess_fraction: float = 1e-3,
    max_share: float = 0.1,
    warn: bool = True,
) -> Diagnostics:
    """Check a weighted sample and warn (:class:`NISWarning`) when it looks unreliable.

    Args:
        weights: importance weights ``f/q``, shape (n,).
        f, log_q_flow, log_q_defensive, defensive: per-point integrand values and
            component information (shape (n,)) from a mixture proposal; when given, the
            lost-region checks run.
        z_threshold: flow deficit (in standard errors) above which to warn; a correct
            proposal exceeds 5 with probability ~3e-7 per check (Gaussian tails).
        min_ess_fraction: warn when the effective sample size per point is below this.
        max_share: warn when one point carries more than this share of ``Σ|w|``.
        warn: emit warnings (else only return them).

    Returns:
        A :class:`Diagnostics`.
    """
    w = weights.to(torch.float64)
    a = w.abs()
    s1, s2 = float(a.sum()), float((a * a).sum())
    n = a.numel()
    ess = (s1 * s1 / s2 / n) if s2 > 0 else 1.0
    share = float(a.max()) / s1 if s1 > 0 else 0.0
    msgs = []
    z_g = z_l = frac = math.nan
    if f is not None and log_q_flow is not None and log_q_defensive is not None:
        z_g, z_l, frac = lost_region_check(f, log_q_flow, log_q_defensive, defensive)
        worst = max((z for z in (z_g, z_l) if not math.isnan(z)), default=math.nan)
        if worst > z_threshold:
            msgs.append(
                f"the flow component's estimate is {worst:.1f} standard errors below the "
                f"defensive component's (global z={z_g:.1f}, where the flow is thinner than "
                f"the defensive density z={z_l:.1f}, that region holds ~{frac:.1%} of the "
                f"integral): training has probably lost a region the integrand populates; "
                f"raise the defensive weight lam, retrain with more samples, or use a VEGAS "
                f"first layer"
            )
    if n >= 100 and ess < min_ess_fraction:
        msgs.append(
            f"effective sample size is {ess:.2e} of {n} points: the weights have a heavy "
            f"tail and the quoted error is unreliable"
        )
    if n >= 100 and share > max_share:
        msgs.append(
            f"a single point carries {share:.1%} of the total weight: the estimate is "
            f"dominated by few points and the quoted error is unreliable"
        )
    if warn:
        for m in msgs:
            warnings.warn(m, NISWarning, stacklevel=3)
    return Diagnostics(ess, share, z_g, z_l, frac, tuple(msgs))
