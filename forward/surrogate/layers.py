r"""Variational Bayesian linear layers (Bayes by backprop) with a Gaussian prior.

Each weight w has a Gaussian posterior :math:`q(w) = N(\mu, \sigma^2)` with
:math:`\sigma = \mathrm{softplus}(\rho)`, and the prior is :math:`p(w) = N(0, s^2)`.
Training minimises :math:`\mathrm{E}_q[-\log p(D|w)] + \mathrm{KL}(q\,\|\,p)` with the
closed form

.. math:: \mathrm{KL} = \sum_w \Big[\log\frac{s}{\sigma} + \frac{\sigma^2 + \mu^2}{2 s^2}
          - \frac12\Big],

and the expectation by one reparametrised draw :math:`w = \mu + \sigma \epsilon` per
forward pass (the same draw for every row of the batch, so a drawn network is one
deterministic function: symmetrising it over identical particles stays exact).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["BayesianLinear"]


class BayesianLinear(nn.Module):
    """A linear layer with independent Gaussian posteriors on weights and biases.

    Args:
        n_in, n_out: input and output widths.
        prior_std: standard deviation s of the N(0, s²) prior on every parameter.
        init_std: initial posterior standard deviation σ.
        dtype, device: of the parameters.
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        *,
        prior_std: float = 1.0,
        init_std: float = 1e-3,
        dtype: torch.dtype = torch.float32,
        device=None,
    ) -> None:
        super().__init__()
        if not (math.isfinite(prior_std) and prior_std > 0):
            raise ValueError(f"prior_std: expected a finite positive number, got {prior_std}")
        self.prior_std = float(prior_std)
        base = nn.Linear(n_in, n_out, dtype=dtype, device=device)
        self.weight_mu = nn.Parameter(base.weight.detach().clone())
        self.bias_mu = nn.Parameter(base.bias.detach().clone())
        rho = math.log(math.expm1(init_std))
        self.weight_rho = nn.Parameter(torch.full_like(self.weight_mu, rho))
        self.bias_rho = nn.Parameter(torch.full_like(self.bias_mu, rho))

    def draw(self, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One reparametrised draw (w, b) = (μ + σ ε) of the weights and biases.

        Args:
            generator: random generator on the parameters' device.

        Returns:
            (weight of shape (n_out, n_in), bias of shape (n_out,)), differentiable in μ, ρ.
        """
        mu_w, mu_b = self.weight_mu, self.bias_mu
        eps_w = torch.randn(mu_w.shape, generator=generator, dtype=mu_w.dtype,
                            device=mu_w.device)
        eps_b = torch.randn(mu_b.shape, generator=generator, dtype=mu_b.dtype,
                            device=mu_b.device)
        return mu_w + F.softplus(self.weight_rho) * eps_w, mu_b + F.softplus(self.bias_rho) * eps_b

    def forward(
        self, x: torch.Tensor, weights: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Apply the layer with given drawn weights, or with the posterior means.

        Args:
            x: inputs, shape (n, n_in).
            weights: a draw from :meth:`draw`; None uses the means μ.

        Returns:
            Outputs of shape (n, n_out).
        """
        if weights is None:
            return F.linear(x, self.weight_mu, self.bias_mu)
        return F.linear(x, *weights)

    def kl(self) -> torch.Tensor:
        """KL(q || prior) summed over all weights and biases, a scalar."""
        s = self.prior_std
        total = 0.0
        for mu, rho in ((self.weight_mu, self.weight_rho), (self.bias_mu, self.bias_rho)):
            sig = F.softplus(rho)
            total = total + (
                math.log(s) - torch.log(sig) + (sig**2 + mu**2) / (2 * s * s) - 0.5
            ).sum()
        return total
