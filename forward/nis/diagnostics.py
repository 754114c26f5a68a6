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

Both checks trust the defensive component. When it is a VEGAS grid (the default
pipeline's warm start) that itself dropped a peak, flow and grid agree on the wrong
answer and neither check sees it, so there is a third, independent one:

* **uniform check**: :math:`\langle |f| \rangle` over a few extra points drawn
  uniformly on the cube (:func:`uniform_check`; :func:`forward.nis.integrate` spends
  ``n_uniform`` calls on it) against the proposal's estimate
  :math:`\langle |w| \rangle` of :math:`\int |f|`. Its sensitivity is limited by the
  uniform estimate's own spread: with ``m`` points it sees a lost share of the
  integral above about ``5 std_u / sqrt(m)``, where ``std_u`` is the relative std of
  ``|f|`` under uniform sampling (camel-2D: 2.6, so 20 000 points see a lost share
  of ~9 %; camel-4D: 11; camel-8D: 180, where it only catches gross losses).

A deficit of the proposal's estimate by more than ``z_threshold`` combined standard
errors in any check raises a :class:`NISWarning`. Weight-tail statistics are checked
too: a tiny effective sample size or a single point carrying a large share of the
integral also warns, since the quoted error is then unreliable.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch

__all__ = ["Diagnostics", "NISWarning", "check_weights", "lost_region_check", "uniform_check"]


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
        z_uniform: (uniform-points − proposal) estimate difference of ``∫|f|`` in combined
            standard errors (nan without uniform points).
        warnings: the messages that were warned.
    """

    ess_fraction: float
    max_weight_share: float
    z_global: float = math.nan
    z_local: float = math.nan
    region_fraction: float = math.nan
    z_uniform: float = math.nan
    warnings: tuple[str, ...] = ()


def _mean_err(v: torch.Tensor) -> tuple[float, float]:
    n = v.numel()
    if n < 2:
        return math.nan, math.nan
    return float(v.mean()), float(v.std() / math.sqrt(n))


def _deficit_z(reference: torch.Tensor, estimate: torch.Tensor) -> float:
    """``(mean(reference) - mean(estimate)) / combined standard error`` of two independent
    samples of per-point estimates, shapes (n_r,) and (n_e,); nan if either has < 2 points."""
    m_r, e_r = _mean_err(reference)
    m_e, e_e = _mean_err(estimate)
    if math.isnan(m_r) or math.isnan(m_e):
        return math.nan
    err = math.hypot(e_r, e_e)
    if err == 0:
        return 0.0 if m_r == m_e else math.copysign(math.inf, m_r - m_e)
    return (m_r - m_e) / err


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
        return _deficit_z(torch.where(mask, w_def, 0.0)[df], torch.where(mask, w_flow, 0.0)[fl])

    z_global = z_of(torch.ones_like(thin))
    z_local = z_of(thin)
    total_def = _mean_err(w_def[df])[0]
    region = _mean_err(torch.where(thin, w_def, 0.0)[df])[0]
    frac = region / total_def if total_def and total_def > 0 else math.nan
    return z_global, z_local, frac


def uniform_check(f_uniform: torch.Tensor, weights: torch.Tensor) -> float:
    """Compare ``∫|f|`` from uniform points of the cube with a weighted sample's estimate.

    Independent of the proposal (VEGAS grid included), so it sees a region that the
    proposal and its defensive component both lost; see the module notes for its
    sensitivity.

    Args:
        f_uniform: integrand values at points drawn uniformly on [0, 1]^d, shape (m,).
        weights: importance weights ``f/q`` of the proposal's own sample, shape (n,).

    Returns:
        ``z_uniform``: (uniform − proposal) estimate of ``∫|f|`` in combined standard
        errors (positive = the proposal's estimate is too low); nan if either sample
        has fewer than 2 points.
    """
    for name, t in (("f_uniform", f_uniform), ("weights", weights)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}: expected a tensor, got {type(t).__name__}")
        if t.ndim != 1:
            raise ValueError(f"{name}: expected shape (n,), got {tuple(t.shape)}")
    return _deficit_z(f_uniform.to(torch.float64).abs(), weights.to(torch.float64).abs())


def check_weights(
    weights: torch.Tensor,
    *,
    f: torch.Tensor | None = None,
    log_q_flow: torch.Tensor | None = None,
    log_q_defensive: torch.Tensor | None = None,
    defensive: torch.Tensor | None = None,
    f_uniform: torch.Tensor | None = None,
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
        f_uniform: integrand values at extra points drawn uniformly on the cube, shape
            (m,); when given, :func:`uniform_check` runs.
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
    z_u = math.nan
    if f_uniform is not None:
        z_u = uniform_check(f_uniform, w)
        if z_u > z_threshold:
            msgs.append(
                f"the proposal's estimate of the integral of |f| is {z_u:.1f} standard errors "
                f"below that of {f_uniform.numel()} uniform points of the cube: the proposal "
                f"(and its defensive component, e.g. a VEGAS grid) has probably lost a region "
                f"the integrand populates; retrain VEGAS with more calls per round or a "
                f"smaller damping alpha, or raise the defensive weight lam"
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
    return Diagnostics(ess, share, z_g, z_l, frac, z_u, tuple(msgs))
