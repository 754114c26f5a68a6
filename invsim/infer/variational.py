"""Stochastic variational inference: a full-rank Gaussian in the unconstrained space.

A fast alternative to NUTS. Each parameter is mapped to the real line by the bijection
of its prior's support (:func:`torch.distributions.biject_to`); the guide is a
multivariate normal q(z) there, fitted by maximising the reparameterised ELBO

.. math:: E_q[\\log π(θ(z)) + \\log L(θ(z)) + \\log|∂θ/∂z|] + H[q]

with Adam. Every draw comes from a caller-seeded ``torch.Generator``; no Pyro parameter
store or global random state is used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from invsim.infer.limits import MAX_DRAWS, MAX_STEPS
from invsim.infer.model import InferenceProblem
from invsim.infer.results import prior_draws, to_inference_data

__all__ = ["GaussianGuide", "fit_svi"]


@dataclass
class GaussianGuide:
    """A fitted multivariate normal in the unconstrained parameter space.

    Attributes:
        names: parameter names, in the order of the dimensions.
        loc: mean of z, shape (d,).
        scale_tril: Cholesky factor of the covariance of z, shape (d, d).
        transforms: name -> bijection from the real line onto the prior's support.
        elbo: final ELBO estimate (mean of the last 10 % of steps).
    """

    names: tuple[str, ...]
    loc: torch.Tensor
    scale_tril: torch.Tensor
    transforms: dict
    elbo: float

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> dict:
        """Draw n parameter points: name -> tensor of shape (n,) in parameter units."""
        eps = torch.randn(n, len(self.names), dtype=self.loc.dtype, device=self.loc.device,
                          generator=generator)
        z = self.loc + eps @ self.scale_tril.T
        return {name: self.transforms[name](z[:, i]) for i, name in enumerate(self.names)}


def _theta_and_logdet(problem: InferenceProblem, z: torch.Tensor, transforms: dict):
    theta, logdet = {}, torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)
    for i, name in enumerate(problem.names):
        t = transforms[name]
        theta[name] = t(z[:, i])
        logdet = logdet + t.log_abs_det_jacobian(z[:, i], theta[name])
    return theta, logdet


def fit_svi(
    problem: InferenceProblem,
    *,
    steps: int = 2000,
    particles: int = 16,
    lr: float = 0.05,
    num_samples: int = 2000,
    seed: int = 0,
    observed_data=None,
):
    """Fit the Gaussian guide and return its draws as ``arviz.InferenceData``.

    Args:
        problem: priors, likelihood and extended term.
        steps: Adam steps; the learning rate decays exponentially to ``lr / 100``.
        particles: Monte Carlo draws per ELBO estimate (likelihood batch size).
        lr: initial learning rate.
        num_samples: draws from the fitted guide (one chain).
        seed: seed of the generator for the ELBO noise and the draws.
        observed_data: extra entries for the ``observed_data`` group.

    Returns:
        ``(idata, guide)``: InferenceData with one chain of ``num_samples`` draws (attrs
        ``elbo``, ``steps``; a ``prior`` group of as many prior draws, seeded with
        ``seed``) and the fitted :class:`GaussianGuide`.
    """
    if not isinstance(problem, InferenceProblem):
        raise TypeError(f"problem: expected an InferenceProblem, got {type(problem).__name__}")
    for name, value, top in (("steps", steps, MAX_STEPS), ("particles", particles, 100_000),
                             ("num_samples", num_samples, MAX_DRAWS)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
            raise ValueError(f"{name}: expected an int >= 1 and <= {top}, got {value!r}")
    if not (isinstance(seed, int) and seed >= 0):
        raise ValueError(f"seed: expected an int >= 0, got {seed!r}")
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr: expected a positive learning rate, got {lr!r}")
    ref = problem.reference_point()
    first = next(iter(ref.values()))
    dtype, device = first.dtype, first.device
    transforms = problem.transforms()
    d = len(problem.names)
    gen = torch.Generator(device=device).manual_seed(seed)
    loc = torch.stack([transforms[n].inv(ref[n]) for n in problem.names]).clone()
    loc.requires_grad_(True)
    raw_diag = torch.full((d,), math.log(math.expm1(0.1)), dtype=dtype, device=device,
                          requires_grad=True)
    off = torch.zeros(d, d, dtype=dtype, device=device, requires_grad=True)
    opt = torch.optim.Adam([loc, raw_diag, off], lr=lr)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.01 ** (1.0 / steps))
    mask = torch.tril(torch.ones(d, d, dtype=torch.bool, device=device), -1)

    def tril():
        return torch.diag_embed(torch.nn.functional.softplus(raw_diag)) + off * mask

    history = []
    for _ in range(steps):
        opt.zero_grad()
        L = tril()
        eps = torch.randn(particles, d, dtype=dtype, device=device, generator=gen)
        z = loc + eps @ L.T
        theta, logdet = _theta_and_logdet(problem, z, transforms)
        entropy = torch.log(torch.diagonal(L)).sum()  # + const
        elbo = (problem.log_joint(theta) + logdet).mean() + entropy
        if not torch.isfinite(elbo):
            raise FloatingPointError("fit_svi: the ELBO became non-finite; lower lr or check "
                                     "the likelihood near the prior's boundaries")
        (-elbo).backward()
        opt.step()
        sched.step()
        history.append(float(elbo.detach()))
    const = 0.5 * d * (1.0 + math.log(2 * math.pi))
    tail = history[-max(1, steps // 10):]
    guide = GaussianGuide(problem.names, loc.detach(), tril().detach(), transforms,
                          sum(tail) / len(tail) + const)
    with torch.no_grad():
        draws = guide.sample(num_samples, generator=gen)
    idata = to_inference_data(problem, {n: v.reshape(1, -1) for n, v in draws.items()},
                              method="svi", seeds=[seed], observed_data=observed_data,
                              prior=prior_draws(problem, 1, num_samples, seed),
                              attrs={"elbo": guide.elbo, "steps": steps, "particles": particles})
    return idata, guide
