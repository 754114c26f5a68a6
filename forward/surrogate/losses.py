r"""Losses of the amplitude regression.

The heteroscedastic Gaussian negative log-likelihood of a target y under
:math:`N(\mu, \sigma^2)` per point,

.. math:: \ell = \tfrac12 \Big(\frac{y - \mu}{\sigma}\Big)^2 + \log\sigma
          + \tfrac12 \log 2\pi,

with gradients :math:`\partial\ell/\partial\mu = (\mu - y)/\sigma^2` and
:math:`\partial\ell/\partial\log\sigma = 1 - (y - \mu)^2/\sigma^2`: at the optimum
:math:`\sigma^2` is the local mean squared residual, which is what calibrates the pulls.
"""

from __future__ import annotations

import math

import torch

__all__ = ["gaussian_nll", "weighted_mean", "squared_error"]


def weighted_mean(
    values: torch.Tensor, weight: torch.Tensor | None = None, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean of ``values`` (n, g) with per-point weights (n,) and a (n, g) mask of valid entries.

    Returns:
        A scalar: Σ w m v / Σ w m (entries with m = 0 do not count).
    """
    w = torch.ones_like(values) if weight is None else weight.to(values.dtype).unsqueeze(-1)
    w = w.expand_as(values)
    if mask is not None:
        w = w * mask.to(values.dtype)
        values = torch.where(mask, values, torch.zeros_like(values))
    return (w * values).sum() / w.sum().clamp(min=torch.finfo(values.dtype).tiny)


def gaussian_nll(
    mean: torch.Tensor,
    log_sigma: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Heteroscedastic Gaussian negative log-likelihood per point, averaged.

    Args:
        mean: predicted μ, shape (n, g).
        log_sigma: predicted log σ, shape (n, g).
        target: y, shape (n, g).
        weight: per-point weights, shape (n,) (e.g. boosting emphasis); default 1.
        mask: bool (n, g), entries that count; default all.

    Returns:
        Scalar loss (the mean of ℓ over counted entries, weighted).
    """
    z = (target - mean) * torch.exp(-log_sigma)
    nll = 0.5 * z * z + log_sigma + 0.5 * math.log(2 * math.pi)
    return weighted_mean(nll, weight, mask)


def squared_error(
    mean: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean squared error (the plain baseline's loss), shapes as :func:`gaussian_nll`."""
    return weighted_mean((target - mean) ** 2, weight, mask)
