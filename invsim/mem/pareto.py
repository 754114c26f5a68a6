r"""Generalized-Pareto tail fits and the Pareto k̂ diagnostic of importance weights.

The generalized Pareto distribution (GPD) of exceedances y > 0 with shape ξ and scale σ
has :math:`F(y) = 1 - (1 + \xi y / \sigma)^{-1/\xi}`; for importance weights, ξ is the
tail index: the weights have finite variance only for ξ < 1/2, and the estimate of
the mean becomes unreliable in practice for ξ > 0.7 (Vehtari et al., *Pareto smoothed
importance sampling*, JMLR 2024).

:func:`gpd_fit` is the estimator of Zhang & Stephens (Technometrics 51, 2009): with
θ = -ξ/σ, the profile log-likelihood is
:math:`\ell(\theta) = m\,[\log(\theta / k(\theta)) + k(\theta) - 1]`,
:math:`k(\theta) = -\overline{\log(1 - \theta y)}`, and θ̂ is its posterior mean over a
fixed quadrature grid with a weakly informative prior. Written here in torch, batched
over rows.
"""

from __future__ import annotations

import math

import torch

from forward._validation import check_floating

__all__ = ["gpd_fit", "pareto_khat", "tail_length"]


def gpd_fit(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Fit a generalized Pareto distribution to exceedances (Zhang & Stephens 2009).

    Args:
        y: positive exceedances over the threshold, shape (..., m) with m >= 5, each row
            sorted in ascending order.

    Returns:
        (xi, sigma): shape ξ and scale σ (same units as y), each of shape (...).

    Raises:
        ValueError: fewer than 5 exceedances per row, or non-positive or unsorted rows.
    """
    check_floating("y", y)
    m = y.shape[-1] if y.ndim else 0
    if m < 5:
        raise ValueError(f"y: expected at least 5 exceedances per row, got shape {tuple(y.shape)}")
    if not bool((y > 0).all()) or not bool((y[..., 1:] >= y[..., :-1]).all()):
        raise ValueError("y: expected positive exceedances sorted in ascending order per row")
    n_grid = 30 + int(math.sqrt(m))
    j = torch.arange(1, n_grid + 1, dtype=y.dtype, device=y.device)
    quartile = y[..., max(int(m / 4 + 0.5) - 1, 0)].unsqueeze(-1)
    # grid of θ below 1/y_max (so that 1 - θ y > 0), denser near the upper end
    theta = 1.0 / y[..., -1:] + (1.0 - torch.sqrt(n_grid / (j - 0.5))) / (3.0 * quartile)
    k = -torch.log1p(-theta.unsqueeze(-1) * y.unsqueeze(-2)).mean(-1)  # (..., n_grid)
    profile = m * (torch.log(theta / k) + k - 1.0)
    weights = torch.softmax(profile, dim=-1)
    theta_hat = (weights * theta).sum(-1, keepdim=True)
    k_hat = -torch.log1p(-theta_hat * y).mean(-1)
    sigma = k_hat / theta_hat.squeeze(-1)
    return -k_hat, sigma


def tail_length(n: int) -> int:
    """Number of largest weights used for k̂: min(n/5, 3 √n), as in PSIS (r_eff = 1)."""
    return int(math.ceil(min(0.2 * n, 3.0 * math.sqrt(n))))


def pareto_khat(log_weights: torch.Tensor, *, regularize: bool = True) -> torch.Tensor:
    """Pareto k̂ of importance weights: the GPD shape fitted to their upper tail.

    The M = min(n/5, 3√n) largest weights are taken as exceedances over the next one
    (the PSIS choice); with ``regularize`` the fit is shrunk towards 0.5 with the weight
    of 10 observations (Vehtari et al.'s weakly informative prior).

    Args:
        log_weights: log importance weights, shape (..., n) with n >= 25; -inf allowed
            (zero weights).

    Returns:
        k̂ of shape (...); +inf where fewer than M + 1 weights are non-zero or the tail
        is degenerate in a heavy way, -inf where all tail weights are equal (no tail).
    """
    check_floating("log_weights", log_weights)
    n = log_weights.shape[-1] if log_weights.ndim else 0
    if n < 25:
        raise ValueError(f"log_weights: expected at least 25 weights per row, got {n}")
    if bool(torch.isnan(log_weights).any()) or bool((log_weights == math.inf).any()):
        raise ValueError("log_weights: NaN or +inf entries")
    m = tail_length(n)
    top, _ = torch.topk(log_weights.detach(), m + 1, dim=-1, sorted=True)  # descending
    threshold = top[..., m : m + 1]
    top = top[..., :m].flip(-1)  # ascending
    peak = top[..., -1:]
    finite = torch.isfinite(threshold).squeeze(-1)
    safe_thr = torch.where(torch.isfinite(threshold), threshold, peak - 1.0)
    y = torch.exp(top - peak) - torch.exp(safe_thr - peak)
    # rows with every weight zero (peak = -inf) have no tail to fit: k̂ = +inf below
    flat = (y[..., -1] <= 0) | ~torch.isfinite(y).all(-1)
    # rows with ties at the threshold give zero exceedances: a tiny floor keeps the fit
    # defined (and such ties only lower k̂)
    tiny = torch.finfo(y.dtype).tiny * 1e3
    y = torch.clamp(torch.nan_to_num(y, nan=1.0), min=tiny)
    y = torch.sort(y, dim=-1).values
    xi, _ = gpd_fit(torch.where(flat.unsqueeze(-1), torch.ones_like(y), y))
    if regularize:
        xi = (m * xi + 10 * 0.5) / (m + 10)
    xi = torch.where(flat, torch.full_like(xi, -math.inf), xi)
    return torch.where(finite, xi, torch.full_like(xi, math.inf))
