"""Profile-likelihood intervals of an :class:`InferenceProblem`, beside the Bayesian one.

A thin wrapper of :func:`invsim.scan.scan` (the one profile-likelihood implementation):
for the scanned parameter ψ the other parameters are either held fixed or profiled
(maximised by L-BFGS inside their priors' supports, so they stay in range). The interval
is where -2 Δ log L(ψ) = ``level`` (1 for 68.3 %, 3.84 for 95 % in the asymptotic χ²₁
limit), found by linear interpolation between grid points; the minimum is refined by a
parabola through the lowest grid point and its neighbours.
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
        scan: the underlying :class:`~invsim.scan.ScanResult` (MC errors, convergence,
            flagged events), or None.
    """

    name: str
    grid: torch.Tensor
    minus2_delta_loglik: torch.Tensor
    nuisance: dict
    mle: float
    low: float
    high: float
    level: float
    scan: object = None

    @property
    def closed(self) -> bool:
        """True when the curve crosses ``level`` on both sides of the minimum."""
        return math.isfinite(self.low) and math.isfinite(self.high)

    @property
    def width(self) -> float:
        """high - low (NaN for an open interval)."""
        return self.high - self.low


def _support_bounds(name: str, support) -> tuple[float, float]:
    """(low, high) of a prior's support: an interval, a half line or the real line."""
    from torch.distributions import constraints

    if support is constraints.real:
        return -math.inf, math.inf
    lo = getattr(support, "lower_bound", None)
    hi = getattr(support, "upper_bound", None)
    if lo is None and hi is None:
        raise ValueError(f"priors[{name!r}]: support {support} is not an interval; a "
                         "profile needs a continuous univariate prior")
    to_float = (lambda v, d: d if v is None else float(v))  # noqa: E731
    return to_float(lo, -math.inf), to_float(hi, math.inf)


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
    priors only set the ranges and starting points of the profiled parameters. This is
    :func:`invsim.scan.scan` with the bounds of the priors' supports, the problem's
    ``luminosity``, ``n_events`` and ``on_flagged`` (flagged events warn or raise as
    there).

    Args:
        problem: the inference problem.
        name: parameter to scan, one of ``problem.names``.
        grid: increasing values of ``name``, shape (m,) with m >= 3, inside its prior's
            support.
        fixed: other parameters held at given values instead of profiled.
        level: threshold of -2 Δ log L defining the interval (1: 68.3 %, 3.84: 95 %).
        max_iter: L-BFGS iterations per batch of grid points for the profiled
            parameters (:class:`~invsim.scan.ProfileConfig`).

    Returns:
        :class:`ProfileResult`.

    Raises:
        ValueError: unknown names, a grid that is not increasing, too short, non-finite
            or outside the prior's support, or a non-positive level.
    """
    # invsim.scan imports invsim.infer (the likelihood protocol): import it here
    from invsim.scan import ProfileConfig, _crossings, scan

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
    free = [n for n in problem.names if n != name and n not in fixed]
    bounds = {n: _support_bounds(n, problem.priors[n].support) for n in problem.names}
    start = {n: float(ref[n]) for n in free}
    result = scan(
        problem.likelihood, {name: g.detach().to(torch.float64).cpu()},
        profile=free, fixed=fixed, bounds=bounds, start=start,
        luminosity=problem.luminosity,
        n_events=problem.n_events if problem.extended else None,
        profile_config=ProfileConfig(max_iter=max_iter), dtype=dtype,
        device=device, on_flagged=problem.on_flagged,
    )
    ds = result.dataset
    m2d = ds["m2dlogl"].values
    low, high = _crossings(ds[name].values, m2d, result.best_fit[name], float(level))

    def as_t(values) -> torch.Tensor:
        return torch.as_tensor(values, dtype=dtype).to(device)

    return ProfileResult(
        name=name, grid=g, minus2_delta_loglik=as_t(m2d),
        nuisance={n: as_t(ds[f"profile_{n}"].values) for n in free},
        mle=float(result.best_fit[name]), low=low, high=high,
        level=float(level), scan=result,
    )
