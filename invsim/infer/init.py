"""Starting points of MCMC chains: the posterior mode and dispersed points around it.

NUTS samples in the *unconstrained* space u of the priors' bijections θ = T(u)
(:meth:`InferenceProblem.transforms`), where the density is

.. math:: \\log p(u) = \\log π(T(u)) + \\log L(T(u)) + \\log |T'(u)| .

:func:`find_mode` maximises this density with L-BFGS (strong-Wolfe line search) from
the prior median and from ``starts - 1`` draws of the prior, and keeps the best
optimum; its Laplace covariance is the inverse Hessian of -log p(u) there.
:func:`initial_points` turns it into one starting point per chain: the mode plus
Gaussian draws with ``spread`` (default 2) times the Laplace standard deviations, which
land inside every prior's support because they are drawn in u. Everything random
comes from a generator seeded by ``seed``.

Starting every chain near the global mode avoids chains stuck behind a barrier of
the likelihood (a region of negligible posterior density between two modes) from the
start; the dispersion keeps r̂ able to detect chains that do not mix.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from forward._validation import make_generator
from invsim.infer.limits import MAX_STEPS
from invsim.infer.model import InferenceProblem

__all__ = ["INIT_STRATEGIES", "ModeResult", "find_mode", "initial_points", "init_generator"]

#: accepted values of ``init_strategy``
INIT_STRATEGIES = ("mode", "prior")


def init_generator(seed: int) -> torch.Generator:
    """A CPU generator for starting points, on a stream separate from the chains' seeds.

    The chains seed torch's global generator with ``seed + c``; deriving this one
    through :class:`numpy.random.SeedSequence` keeps the two streams unrelated.
    """
    state = np.random.SeedSequence([int(seed), 0x1A17]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & ((1 << 63) - 1))


@dataclass
class ModeResult:
    """The maximum of the unconstrained posterior density and its Laplace scale.

    Attributes:
        theta: name -> value at the mode, shape (), the priors' dtype/device.
        u: the mode in the unconstrained space, shape (d,) float64 (order of
            ``problem.names``).
        log_density: log p(u) at the mode (unnormalised, with the log-Jacobian).
        covariance: Laplace covariance in u, shape (d, d) float64 (the inverse Hessian
            of -log p(u); the identity where the Hessian is not positive definite).
        laplace_ok: whether the Hessian was positive definite.
        starts: number of optimiser starts that ended at a finite density.
    """

    theta: dict[str, torch.Tensor]
    u: torch.Tensor
    log_density: float
    covariance: torch.Tensor
    laplace_ok: bool
    starts: int


class _Unconstrained:
    """log p(u) of a problem, for u of shape (d,) float64."""

    def __init__(self, problem: InferenceProblem) -> None:
        self.problem = problem
        self.names = problem.names
        self.transforms = problem.transforms()
        ref = problem.reference_point()
        self.like = {n: (v.dtype, v.device) for n, v in ref.items()}

    def theta(self, u: torch.Tensor) -> dict[str, torch.Tensor]:
        return {n: self.transforms[n](u[i].to(*self.like[n][::-1]))
                for i, n in enumerate(self.names)}

    def to_u(self, theta: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return torch.stack([self.transforms[n].inv(torch.as_tensor(theta[n]).to(
            *self.like[n][::-1])).detach().to("cpu", torch.float64) for n in self.names])

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        out = 0.0
        for i, n in enumerate(self.names):
            ui = u[i].to(*self.like[n][::-1])
            out = out + self.transforms[n].log_abs_det_jacobian(ui, self.transforms[n](ui))
        return (self.problem.log_joint(self.theta(u)) + out).to("cpu", torch.float64)


def _prior_median(prior: torch.distributions.Distribution) -> torch.Tensor:
    """The median of a univariate prior (icdf(0.5), else its mean, else a sample's)."""
    try:
        return prior.icdf(torch.tensor(0.5, dtype=prior.mean.dtype, device=prior.mean.device))
    except (NotImplementedError, AttributeError):
        pass
    try:
        m = prior.mean
        if torch.isfinite(m).all():
            return m
    except NotImplementedError:
        pass
    return prior.sample()


def _optimise(f: _Unconstrained, u0: torch.Tensor, max_iter: int) -> tuple[torch.Tensor, float]:
    u = u0.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([u], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-9, tolerance_change=1e-12)

    def closure():
        opt.zero_grad()
        try:
            loss = -f(u)
        except ValueError:  # the likelihood refuses the point (e.g. NaN dσ/dμ)
            return torch.tensor(math.inf, dtype=torch.float64)
        if not torch.isfinite(loss):
            return torch.tensor(math.inf, dtype=torch.float64)
        loss.backward()
        return loss

    try:
        opt.step(closure)
    except (ValueError, RuntimeError):
        pass
    u = u.detach()
    with torch.no_grad():
        try:
            val = float(f(u))
        except ValueError:
            val = -math.inf
    return u, (val if math.isfinite(val) else -math.inf)


def find_mode(problem: InferenceProblem, *, starts: int = 4, seed: int = 0,
              max_iter: int = 200) -> ModeResult:
    """Maximise the unconstrained posterior density from several starting points.

    Args:
        problem: the posterior.
        starts: optimiser starts: the prior median, then ``starts - 1`` prior draws.
        seed: seeds the prior draws (:func:`init_generator`).
        max_iter: L-BFGS iterations per start.

    Returns:
        A :class:`ModeResult` for the start that reached the highest density.

    Raises:
        ValueError: bad arguments, or no start reached a finite density.
    """
    if not isinstance(problem, InferenceProblem):
        raise TypeError(f"problem: expected an InferenceProblem, got {type(problem).__name__}")
    for name, v in (("starts", starts), ("max_iter", max_iter)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name}: expected an int >= 1, got {v!r}")
    if starts > MAX_STEPS:  # each start is an L-BFGS run: beyond this it cannot finish
        raise ValueError(f"starts: expected at most {MAX_STEPS} optimiser starts, got {starts}")
    make_generator(seed)  # checks the seed
    f = _Unconstrained(problem)
    gen = init_generator(seed)
    points = [f.to_u({n: _prior_median(p) for n, p in problem.priors.items()})]
    for _ in range(starts - 1):
        # inverse-CDF-free prior draws: uniform in (-2, 2) on u would ignore the prior;
        # draw θ from each prior with a seeded uniform through icdf where it exists
        theta = {}
        for n, p in problem.priors.items():
            q = torch.rand((), generator=gen, dtype=torch.float64).clamp(1e-6, 1 - 1e-6)
            try:
                theta[n] = p.icdf(q.to(p.mean.dtype).to(p.mean.device))
            except (NotImplementedError, AttributeError):
                theta[n] = f.transforms[n](torch.randn((), generator=gen, dtype=torch.float64)
                                           .to(*f.like[n][::-1]))
        points.append(f.to_u(theta))
    best, best_val, ok = None, -math.inf, 0
    for u0 in points:
        u, val = _optimise(f, u0, max_iter)
        if math.isfinite(val):
            ok += 1
            if val > best_val:
                best, best_val = u, val
    if best is None:
        raise ValueError("find_mode: the posterior density is not finite at any optimiser "
                         f"end point ({starts} starts); pass init= explicitly")
    hess = torch.autograd.functional.hessian(lambda u: -f(u), best)
    cov, laplace_ok = torch.eye(len(best), dtype=torch.float64), False
    if bool(torch.isfinite(hess).all()):
        hess = 0.5 * (hess + hess.T)
        chol, info = torch.linalg.cholesky_ex(hess)
        if int(info) == 0:
            cov, laplace_ok = torch.cholesky_inverse(chol), True
    with torch.no_grad():
        theta = {n: v.detach() for n, v in f.theta(best).items()}
    return ModeResult(theta, best, best_val, cov, laplace_ok, ok)


def _check_values(problem: InferenceProblem, values, where: str) -> dict[str, torch.Tensor]:
    if not isinstance(values, Mapping):
        raise TypeError(f"{where}: expected a mapping name -> value, got {type(values).__name__}")
    unknown = sorted(set(values) - set(problem.names))
    if unknown:
        raise ValueError(f"{where}: unknown parameter(s) {unknown}; expected names of "
                         f"{list(problem.names)}")
    ref = problem.reference_point()
    out = {}
    for n, v in values.items():
        t = torch.as_tensor(v, dtype=ref[n].dtype).to(ref[n].device)
        if t.shape != () or not bool(torch.isfinite(t)):
            raise ValueError(f"{where}[{n!r}]: expected a finite number, got {v!r}")
        if not bool(problem.priors[n].support.check(t)):
            raise ValueError(f"{where}[{n!r}]: {float(t):g} lies outside the support of the "
                             f"prior {problem.priors[n]!r}")
        out[n] = t
    return out


def initial_points(problem: InferenceProblem, chains: int, *, init=None,
                   strategy: str = "mode", seed: int = 0, spread: float = 2.0,
                   mode: ModeResult | None = None) -> tuple[list[dict], ModeResult | None]:
    """Starting values of each chain.

    Args:
        problem: the posterior.
        chains: number of chains.
        init: None; a mapping name -> value for every chain; or a list of ``chains``
            mappings, one per chain. Given values replace the strategy's; names left
            out come from the strategy.
        strategy: ``"mode"`` (the mode of :func:`find_mode` plus Gaussian draws with
            ``spread`` × the Laplace standard deviations in u) or ``"prior"`` (Pyro's
            default: uniform in (-2, 2) on the unconstrained scale, drawn by Pyro from
            the chain's seed; the returned points hold only ``init``'s values).
        seed: seeds the optimiser starts and the dispersion.
        spread: multiple of the Laplace standard deviation for the dispersion.
        mode: a mode found already (skips the optimisation).

    Returns:
        (one dict name -> value of shape () per chain (possibly partial for
        ``"prior"``), the :class:`ModeResult` or None).

    Raises:
        ValueError, TypeError: unknown strategy or names, values outside a prior's
            support, a list of the wrong length.
    """
    if strategy not in INIT_STRATEGIES:
        raise ValueError(f"init_strategy: expected one of {INIT_STRATEGIES}, got {strategy!r}")
    if not (isinstance(spread, int | float) and math.isfinite(spread) and spread >= 0):
        raise ValueError(f"spread: expected a number >= 0, got {spread!r}")
    if init is None:
        given = [{} for _ in range(chains)]
    elif isinstance(init, Mapping):
        values = _check_values(problem, init, "init")
        given = [dict(values) for _ in range(chains)]
    elif isinstance(init, Sequence) and not isinstance(init, str):
        if len(init) != chains:
            raise ValueError(f"init: expected one mapping per chain ({chains}), got "
                             f"{len(init)}")
        given = [_check_values(problem, v, f"init[{c}]") for c, v in enumerate(init)]
    else:
        raise TypeError(f"init: expected None, a mapping name -> value or a list of mappings, "
                        f"got {type(init).__name__}")
    if strategy == "prior" or all(set(g) == set(problem.names) for g in given):
        return given, mode
    if mode is None:
        mode = find_mode(problem, seed=seed)
    f = _Unconstrained(problem)
    gen = init_generator(seed + 1)
    scale = torch.linalg.cholesky(mode.covariance) * float(spread)
    points = []
    for c in range(chains):
        theta = None
        for _ in range(20):  # redraw points where the density is not finite
            u = mode.u + scale @ torch.randn(len(mode.u), generator=gen, dtype=torch.float64)
            with torch.no_grad():
                try:
                    val = float(f(u))
                except ValueError:
                    val = -math.inf
            if math.isfinite(val):
                theta = f.theta(u)
                break
        if theta is None:
            theta = dict(mode.theta)
        points.append({**{n: v.detach() for n, v in theta.items()}, **given[c]})
    return points, mode
