"""Profile-likelihood intervals from a 1D scan, to set beside the Bayesian interval.

For the scanned parameter ψ the other parameters are either held fixed or profiled
(maximised by L-BFGS in the unconstrained space of their priors' supports, so they stay
in range). The interval is where -2 Δ log L(ψ) = ``level`` (1 for 68.3 %, 3.84 for
95 % in the asymptotic χ²₁ limit), found by linear interpolation between grid points;
the minimum is refined by a parabola through the three lowest points.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from forward._validation import as_tensor, check_finite
from invsim.infer.model import InferenceProblem

__all__ = ["ProfileResult", "profile_likelihood"]


@dataclass(frozen=True)
class ProfileResult:
    """A 1D profile-likelihood scan and its interval.

    Attributes:
        name: the scanned parameter.
        grid: scanned values, shape (m,), in the parameter's unit.
        minus2_delta_loglik: -2 (log L(ψ) - log L_max) at each grid point, shape (m,).
        nuisance: profiled values of the other parameters at each grid point, name ->
            shape (m,).
        mle: maximum-likelihood estimate of ψ (parabola through the lowest grid points).
        low, high: interval bounds; NaN where the curve does not reach ``level`` inside
            the grid (the interval is open on that side).
        level: the -2 Δ log L threshold.
    """

    name: str
    grid: torch.Tensor
    minus2_delta_loglik: torch.Tensor
    nuisance: dict
    mle: float
    low: float
    high: float
    level: float

    @property
    def closed(self) -> bool:
        """True when the curve crosses ``level`` on both sides of the minimum."""
        return math.isfinite(self.low) and math.isfinite(self.high)

    @property
    def width(self) -> float:
        """high - low (NaN for an open interval)."""
        return self.high - self.low


def _crossing(g: torch.Tensor, c: torch.Tensor, i0: int, step: int, level: float) -> float:
    j = i0
    while 0 <= j + step < len(g):
        if c[j + step] >= level:
            a, b = j, j + step
            t = (level - float(c[a])) / (float(c[b]) - float(c[a]))
            return float(g[a]) + t * (float(g[b]) - float(g[a]))
        j += step
    return math.nan


def _profiled_nll(problem, name, value, fixed, start, transforms, max_iter):
    """min over the free nuisance parameters of -log L, warm-started at ``start``."""
    free = [n for n in problem.names if n != name and n not in fixed]
    base = {name: value, **fixed}
    if not free:
        with torch.no_grad():
            return -problem.log_likelihood(base), {}
    z = torch.stack([transforms[n].inv(start[n]) for n in free]).detach().clone()
    z.requires_grad_(True)
    opt = torch.optim.LBFGS([z], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-10, tolerance_change=1e-14)

    def closure():
        opt.zero_grad()
        theta = {**base, **{n: transforms[n](z[k]) for k, n in enumerate(free)}}
        loss = -problem.log_likelihood(theta)
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        theta = {**base, **{n: transforms[n](z[k]) for k, n in enumerate(free)}}
        return -problem.log_likelihood(theta), {n: theta[n] for n in free}


def profile_likelihood(
    problem: InferenceProblem,
    name: str,
    grid,
    *,
    fixed: Mapping[str, float] | None = None,
    level: float = 1.0,
    max_iter: int = 100,
) -> ProfileResult:
    """Scan -2 Δ log L over ``grid`` for parameter ``name``, profiling the others.

    The likelihood is the problem's (events, plus the Poisson term when extended);
    priors only set the ranges and starting points of the profiled parameters.

    Args:
        problem: the inference problem.
        name: parameter to scan, one of ``problem.names``.
        grid: increasing values of ``name``, shape (m,) with m >= 3, inside its prior's
            support.
        fixed: other parameters held at given values instead of profiled.
        level: threshold of -2 Δ log L defining the interval (1: 68.3 %, 3.84: 95 %).
        max_iter: L-BFGS iterations per grid point for the profiled parameters.

    Returns:
        :class:`ProfileResult`.

    Raises:
        ValueError: unknown names, a grid that is not increasing, too short, non-finite
            or outside the prior's support, or a non-positive level.
    """
    if not isinstance(problem, InferenceProblem):
        raise TypeError(f"problem: expected an InferenceProblem, got {type(problem).__name__}")
    if name not in problem.names:
        raise ValueError(f"name: expected one of {list(problem.names)}, got {name!r}")
    fixed = dict(fixed or {})
    bad = sorted(set(fixed) - set(problem.names)) + ([name] if name in fixed else [])
    if bad:
        raise ValueError(f"fixed: expected parameters other than {name!r} among "
                         f"{list(problem.names)}, got {bad}")
    if not (math.isfinite(level) and level > 0):
        raise ValueError(f"level: expected a positive threshold, got {level!r}")
    ref = problem.reference_point()
    dtype, device = ref[name].dtype, ref[name].device
    g = as_tensor("grid", grid, dtype=dtype, device=device)
    if g.ndim != 1 or g.shape[0] < 3:
        raise ValueError(f"grid: expected shape (m,) with m >= 3, got {tuple(g.shape)}")
    check_finite("grid", g)
    if not bool((g[1:] > g[:-1]).all()):
        raise ValueError("grid: expected strictly increasing values")
    support = problem.priors[name].support
    if not bool(support.check(g).all()):
        raise ValueError(f"grid: values outside the support of the prior of {name!r}")
    fixed_t = {k: torch.as_tensor(v, dtype=dtype, device=device) for k, v in fixed.items()}
    transforms = problem.transforms()
    start = dict(ref)
    nll, nuis = [], {}
    for value in g:
        v, prof = _profiled_nll(problem, name, value, fixed_t, start, transforms, max_iter)
        nll.append(v.detach())
        start.update(prof)
        for k, t in prof.items():
            nuis.setdefault(k, []).append(t.detach())
    q = 2 * torch.stack(nll)
    i = int(torch.argmin(q))
    q_min, mle = float(q[i]), float(g[i])
    if 0 < i < len(g) - 1:
        x0, x1, x2 = (float(t) for t in g[i - 1:i + 2])
        y0, y1, y2 = (float(t) for t in q[i - 1:i + 2])
        denom = (x0 - x1) * (x0 - x2) * (x1 - x2)
        a = (x2 * (y1 - y0) + x1 * (y0 - y2) + x0 * (y2 - y1)) / denom
        b = (x2**2 * (y0 - y1) + x1**2 * (y2 - y0) + x0**2 * (y1 - y2)) / denom
        if a > 0:
            mle = -b / (2 * a)
            q_min = min(q_min, y1 - a * (x1 - mle) ** 2)
    curve = q - q_min
    return ProfileResult(
        name=name, grid=g, minus2_delta_loglik=curve,
        nuisance={k: torch.stack(v) for k, v in nuis.items()}, mle=mle,
        low=_crossing(g, curve, i, -1, level), high=_crossing(g, curve, i, +1, level),
        level=float(level),
    )
