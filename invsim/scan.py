"""Likelihood scans in one or two parameters, with profiling, intervals, contours and plots.

:func:`scan` evaluates the summed event log-likelihood of an
:class:`~invsim.infer.likelihood.EventLikelihood` on a grid of one or two named
parameters, in batches of θ points, optionally adds the extended (Poisson) term in
the number of events and profiles named nuisance parameters by an inner optimisation
(the likelihood is differentiable in θ). It returns a :class:`ScanResult`: an
``xarray.Dataset`` with −2Δlog L and its Monte Carlo error on the grid, the
interpolated minimum, 1D intervals at −2Δlog L = 1 / 3.84 and 2D contours at
2.30 / 5.99, with CSV / netCDF writers that refuse to overwrite and a PNG plot.

Example::

    result = scan(likelihood, {"mzp": torch.linspace(1800, 2200, 41)}, profile=["gzp"])
    print(result.best_fit, result.intervals)
    result.to_netcdf("scan.nc"); result.plot("scan.png")
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist

import numpy as np
import torch

from forward._validation import (
    as_tensor,
    check_choice,
    check_finite,
    check_floating,
    resolve_device,
)
from forward.files import atomic_target
from forward.provenance import provenance
from invsim.infer.flags import (
    EventSubset,
    FlagCounter,
    FlagReport,
    check_event_count,
    check_on_flagged,
    handle_flags,
    split_non_finite,
)
from invsim.infer.likelihood import (
    check_event_log_prob,
    check_likelihood,
    extended_poisson_term,
    has_sigma_fid,
)

__all__ = [
    "DEFAULT_CLS",
    "ONE_SIGMA_CL",
    "Contour",
    "Interval",
    "ProfileConfig",
    "ScanResult",
    "chi2_threshold",
    "plot_scan",
    "scan",
]

#: confidence level of ±1σ for one Gaussian parameter, erf(1/√2) ≈ 0.6827
ONE_SIGMA_CL = math.erf(1 / math.sqrt(2))
#: default confidence levels of intervals and contours
DEFAULT_CLS = (ONE_SIGMA_CL, 0.95)


def chi2_threshold(cl: float, dof: int) -> float:
    """−2Δlog L threshold of a confidence level by Wilks' theorem (χ² quantile).

    Args:
        cl: confidence level in (0, 1), e.g. 0.95.
        dof: number of scanned parameters, 1 or 2.

    Returns:
        The χ²_dof quantile: 1.0 for ``ONE_SIGMA_CL`` and 3.841 for 0.95 in 1D; 2.296 and
        5.991 in 2D.
    """
    cl = float(cl)
    if not 0 < cl < 1:
        raise ValueError(f"cl: expected a confidence level in (0, 1), got {cl!r}")
    if dof == 1:
        return NormalDist().inv_cdf(0.5 + cl / 2) ** 2
    if dof == 2:
        return -2.0 * math.log1p(-cl)
    raise ValueError(f"dof: expected 1 or 2 scanned parameters, got {dof!r}")


@dataclass(frozen=True)
class ProfileConfig:
    """Settings of the inner optimisation over profiled parameters.

    The profiled parameters are mapped to the real line (logistic map inside finite
    bounds, exponential beyond one bound) and −log L summed over a batch of grid points
    is minimised; the grid points are independent, so this is a separate fit per point.

    Attributes:
        optimizer: ``"lbfgs"`` (strong-Wolfe line search; for smooth likelihoods, e.g.
            MEM with common random numbers) or ``"adam"`` (for noisy ones).
        max_iter: LBFGS iterations or Adam steps per batch.
        tolerance: a grid point counts as converged when |∂ log L / ∂u| is below
            ``tolerance · sqrt(1 + |log L|)`` for every profiled parameter (u: the
            unconstrained coordinate). The float64 round-off of log L, about
            |log L|·1e-16, limits the gradient a line search can reach to about
            sqrt(|log L| · ∂²log L/∂u² · 1e-16), hence the scaling with |log L|.
        lr: Adam learning rate in units of u (LBFGS uses 1 with its line search).
    """

    optimizer: str = "lbfgs"
    max_iter: int = 500
    tolerance: float = 1e-5
    lr: float = 0.05

    def __post_init__(self) -> None:
        check_choice("optimizer", self.optimizer, ("lbfgs", "adam"))
        if isinstance(self.max_iter, bool) or not isinstance(self.max_iter, int) \
                or self.max_iter < 1:
            raise ValueError(f"max_iter: expected an int >= 1, got {self.max_iter!r}")
        for name in ("tolerance", "lr"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name}: expected a finite positive number, got {v!r}")


@dataclass(frozen=True)
class Interval:
    """A 1D confidence interval from the crossings of −2Δlog L with a threshold.

    Attributes:
        parameter: the scanned parameter.
        cl: confidence level, e.g. 0.95.
        level: the −2Δlog L threshold (χ²₁ quantile of ``cl``).
        lower, upper: the first crossings walking outward from the interpolated minimum
            (taken as the point at 0), by linear interpolation between grid points; NaN
            where −2Δlog L stays below ``level`` up to the edge of the grid (widen the
            grid). On a curve made jagged by MC noise, compare with ``m2dlogl_error``.
    """

    parameter: str
    cl: float
    level: float
    lower: float
    upper: float

    def to_dict(self) -> dict:
        """JSON-ready dict (NaN as None)."""
        return {k: _json_number(getattr(self, k)) if k != "parameter" else self.parameter
                for k in ("parameter", "cl", "level", "lower", "upper")}


@dataclass(frozen=True)
class Contour:
    """A 2D confidence region: iso-lines of −2Δlog L at a threshold.

    Attributes:
        cl: confidence level.
        level: the −2Δlog L threshold (χ²₂ quantile of ``cl``).
        paths: polylines, each an array of shape (m, 2) of (first, second) scanned
            parameter values, linear interpolation on the grid (marching squares).
        closed: for each path, whether it closes inside the grid.
        area: area enclosed by the closed paths in the units of the two parameters
            (NaN if a path runs into the grid edge; widen the grid).
    """

    cl: float
    level: float
    paths: tuple[np.ndarray, ...]
    closed: tuple[bool, ...]
    area: float

    def to_dict(self) -> dict:
        """JSON-ready summary (without the path coordinates)."""
        return {"cl": self.cl, "level": self.level, "n_paths": len(self.paths),
                "closed": list(self.closed), "area": _json_number(self.area)}


@dataclass(frozen=True)
class ScanResult:
    """Result of :func:`scan`.

    Attributes:
        dataset: ``xarray.Dataset`` with one coordinate per scanned parameter and the
            variables ``m2dlogl`` (−2Δlog L w.r.t. the interpolated minimum),
            ``m2dlogl_error`` (its MC error, see :func:`scan`), ``log_l`` (summed
            log-likelihood, extended term included), ``log_l_error``,
            ``profile_<name>`` (fitted value of each profiled parameter) and
            ``converged`` (1 where the profile fit converged; all 1 without profiling);
            ``log_sigma_fid`` with a luminosity; ``n_flagged`` when the likelihood's
            ``evaluate`` reports flagged events (per grid point); the attributes
            ``n_flagged``, ``flag_reasons`` (JSON), ``reliable`` (0/1) and
            ``flag_message`` summarise them over the grid.
        parameters: the scanned parameter names, in grid order.
        profiled: the profiled parameter names.
        fixed: values of the parameters held fixed.
        best_fit: scanned parameters at the interpolated minimum; profiled parameters at
            the lowest grid point.
        min_m2logl: interpolated minimum of −2 log L.
        min_m2logl_error: MC error of −2 log L at the lowest grid point (NaN if unknown).
        at_edge: the lowest grid point lies on the edge of the grid (the minimum may be
            outside; intervals/contours are then incomplete).
        n_events: number of scored events.
        luminosity: integrated luminosity in pb⁻¹ of the extended term, or None.
        intervals: 1D scans: one :class:`Interval` per confidence level.
        contours: 2D scans: one :class:`Contour` per confidence level.
        flags: the events the likelihood flagged at one or more grid points, with the
            count per criterion (:class:`~invsim.infer.flags.FlagReport`); None when
            the likelihood reports no flags (no ``evaluate`` or no ``flagged``).
    """

    dataset: object
    parameters: tuple[str, ...]
    profiled: tuple[str, ...]
    fixed: dict[str, float]
    best_fit: dict[str, float]
    min_m2logl: float
    min_m2logl_error: float
    at_edge: bool
    n_events: int
    luminosity: float | None
    intervals: tuple[Interval, ...] = ()
    contours: tuple[Contour, ...] = field(default=())
    flags: FlagReport | None = None

    @property
    def reliable(self) -> bool | None:
        """False when events are flagged, True when none is, None without diagnostics."""
        return None if self.flags is None else self.flags.reliable

    def to_dataframe(self):
        """The grid as a tidy ``pandas.DataFrame``: one row per grid point."""
        return self.dataset.to_dataframe().reset_index()

    def to_csv(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write :meth:`to_dataframe` as CSV; refuses to replace a file unless ``overwrite``.

        Raises:
            FileExistsError: ``path`` exists and ``overwrite`` is False.
        """
        path = Path(path)
        with atomic_target(path, overwrite, ".csv") as tmp:
            self.to_dataframe().to_csv(tmp, index=False)
        return path

    def to_netcdf(self, path: str | os.PathLike, *, overwrite: bool = False,
                  engine: str | None = None) -> Path:
        """Write the dataset as netCDF; refuses to replace a file unless ``overwrite``.

        Args:
            path: target file.
            overwrite: replace an existing file.
            engine: xarray netCDF engine (default: the first of netCDF4, h5netcdf, scipy
                that is installed; the dataset is netCDF3-compatible).

        The dataset's attribute ``provenance`` (JSON text) is written with it:
        :func:`scan` sets a minimal :func:`forward.provenance.provenance` record
        (versions, command line, time, device), ``invsim scan`` the full one.

        Raises:
            FileExistsError: ``path`` exists and ``overwrite`` is False.
        """
        path = Path(path)
        with atomic_target(path, overwrite, ".nc") as tmp:
            self.dataset.to_netcdf(tmp, engine=engine)
        return path

    def summary(self) -> dict:
        """JSON-ready summary: best fit, minimum, intervals or contour areas, settings.

        Also ``n_flagged`` (events flagged at one or more grid points; None without
        diagnostics), ``flag_reasons`` (criterion -> events), ``reliable`` (False when
        events are flagged, None without diagnostics) and ``flag_message`` (a sentence,
        empty when nothing is flagged).
        """
        flags = self.flags.to_dict() if self.flags is not None else {
            "n_flagged": None, "flag_reasons": {}, "reliable": None, "flag_message": ""}
        return {
            "parameters": list(self.parameters),
            "profiled": list(self.profiled),
            "fixed": {k: _json_number(v) for k, v in self.fixed.items()},
            "best_fit": {k: _json_number(v) for k, v in self.best_fit.items()},
            "min_m2logl": _json_number(self.min_m2logl),
            "min_m2logl_error": _json_number(self.min_m2logl_error),
            "at_edge": self.at_edge,
            "n_events": self.n_events,
            "luminosity_pb": self.luminosity,
            "all_converged": bool(np.all(self.dataset["converged"].values == 1)),
            "intervals": [i.to_dict() for i in self.intervals],
            "contours": [c.to_dict() for c in self.contours],
            **flags,
        }

    def plot(self, path: str | os.PathLike | None = None, *, overwrite: bool = False,
             ax=None):
        """Plot the scan (see :func:`plot_scan`); returns the matplotlib Figure."""
        return plot_scan(self, path, overwrite=overwrite, ax=ax)


# --------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------
def _json_number(v):
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _check_grid(grid, names: tuple[str, ...]) -> dict[str, torch.Tensor]:
    if not isinstance(grid, Mapping):
        raise TypeError(f"grid: expected a mapping name -> 1-D values, got {type(grid).__name__}")
    if len(grid) not in (1, 2):
        raise ValueError(f"grid: expected one or two scanned parameters, got {list(grid)}")
    out = {}
    for name, values in grid.items():
        if name not in names:
            raise ValueError(f"grid: unknown parameter {name!r}; the likelihood's parameters "
                             f"are {list(names)}")
        v = as_tensor(f"grid[{name!r}]", values, dtype=torch.float64).detach().cpu()
        check_floating(f"grid[{name!r}]", v)
        if v.ndim != 1 or v.numel() < 3:
            raise ValueError(f"grid[{name!r}]: expected a 1-D sequence of at least 3 values, "
                             f"got shape {tuple(v.shape)}")
        check_finite(f"grid[{name!r}]", v)
        if not bool((v[1:] > v[:-1]).all()):
            raise ValueError(f"grid[{name!r}]: expected strictly increasing values, got "
                             f"{v[:6].tolist()}{' ...' if v.numel() > 6 else ''}")
        out[name] = v
    return out


def _declared(likelihood) -> dict:
    params = getattr(likelihood, "parameters", None)
    return dict(params) if isinstance(params, Mapping) else {}


def _resolve_bounds(names, declared, bounds) -> dict[str, tuple[float, float]]:
    bounds = {} if bounds is None else bounds
    if not isinstance(bounds, Mapping):
        raise TypeError(f"bounds: expected a mapping name -> (low, high), got "
                        f"{type(bounds).__name__}")
    unknown = sorted(set(bounds) - set(names))
    if unknown:
        raise ValueError(f"bounds: unknown parameter(s) {unknown}; the likelihood's parameters "
                         f"are {list(names)}")
    out = {}
    for n in names:
        if n in bounds:
            b = bounds[n]
            try:
                lo, hi = (float(b[0]), float(b[1]))
                if len(b) != 2:
                    raise ValueError
            except (TypeError, ValueError, IndexError):
                raise ValueError(f"bounds[{n!r}]: expected (low, high), got {b!r}") from None
        elif n in declared:
            lo, hi = float(declared[n].low), float(declared[n].high)
        else:
            lo, hi = -math.inf, math.inf
        if math.isnan(lo) or math.isnan(hi) or not lo < hi:
            raise ValueError(f"bounds[{n!r}]: expected low < high, got ({lo}, {hi})")
        out[n] = (lo, hi)
    return out


def _names_list(name: str, value) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, Sequence):
        raise TypeError(f"{name}: expected parameter names, got {type(value).__name__}")
    return tuple(value)


# --------------------------------------------------------------------------------------
# unconstrained coordinates of the profiled parameters
# --------------------------------------------------------------------------------------
def _to_theta(u: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    if math.isfinite(lo) and math.isfinite(hi):
        return lo + (hi - lo) * torch.sigmoid(u)
    if math.isfinite(lo):
        return lo + torch.exp(u)
    if math.isfinite(hi):
        return hi - torch.exp(u)
    return u


def _to_u(theta: float, lo: float, hi: float) -> float:
    if math.isfinite(lo) and math.isfinite(hi):
        f = (theta - lo) / (hi - lo)
        return math.log(f) - math.log1p(-f)
    if math.isfinite(lo):
        return math.log(theta - lo)
    if math.isfinite(hi):
        return math.log(hi - theta)
    return theta


def _start_value(name, start, declared, lo, hi) -> float:
    if name in start:
        v = float(start[name])
        if not lo < v < hi:
            raise ValueError(f"start[{name!r}]: expected a value strictly inside the bounds "
                             f"({lo}, {hi}), got {v}")
        return v
    v = float(declared[name].default) if name in declared else math.nan
    if not lo < v < hi:  # NaN, or a default on the boundary
        if math.isfinite(lo) and math.isfinite(hi):
            v = 0.5 * (lo + hi)
        elif math.isfinite(lo):
            v = lo + 1.0
        elif math.isfinite(hi):
            v = hi - 1.0
        else:
            v = 0.0
    return v


# --------------------------------------------------------------------------------------
# the scan
# --------------------------------------------------------------------------------------
#: LBFGS restarts on the points of a batch that have not converged
_ROUNDS = 4


@dataclass
class _Setup:
    likelihood: object
    luminosity: float | None
    dtype: torch.dtype
    device: torch.device
    n_events: int | None = None
    n_observed: int | None = None  # n of the extended term; default n_events
    flags: FlagCounter | None = None
    on_flagged: str = "warn"
    expected: int | None = None  # events the likelihood must score (its n_events)
    checked: bool = False  # whether the first output was checked for non-finite events
    subset: EventSubset | None = None  # the kept events when some are dropped
    dropped: dict = field(default_factory=dict)


def _total_log_l(s: _Setup, theta: dict[str, torch.Tensor], b: int, with_error: bool):
    """Summed log L (+ extended term), its MC error and flagged counts, each shape (b,).

    With ``with_error`` the flags of ``evaluate`` are also added to ``s.flags``.
    """
    lik = s.likelihood
    err = res = log_nu = None
    both = getattr(lik, "log_prob_and_log_sigma_fid", None)
    if with_error:
        res = lik.evaluate(theta)
        lp = getattr(res, "log_p", None)
        err = getattr(res, "error", None)
        log_nu = getattr(res, "log_sigma_fid", None)  # computed with log_p when available
        name = "likelihood.evaluate(theta).log_p"
    elif s.luminosity is not None and callable(both):
        lp, log_nu = both(theta)  # one evaluation of σ_fid per θ
        name = "likelihood.log_prob_and_log_sigma_fid(theta)"
    else:
        lp = lik.log_prob(theta)
        name = "likelihood.log_prob(theta)"
    if isinstance(lp, torch.Tensor) and lp.ndim == 1 and b == 1:
        lp = lp.unsqueeze(0)
    if isinstance(lp, torch.Tensor) and lp.ndim == 2 and lp.shape[0] == b \
            and lp.is_floating_point():
        if not s.checked:  # events with NaN/-inf log p at the first θ points: drop or fail
            s.checked = True
            check_event_count(lp, s.expected)
            point = {k: v.detach().cpu().tolist() for k, v in theta.items()}
            keep, s.dropped = split_non_finite(lp.detach(), s.on_flagged,
                                               where=f"at theta={point}")
            if keep is not None:
                s.subset = EventSubset(lik, keep, s.dropped, int(lp.shape[-1]))
        if s.subset is not None:
            lp = s.subset._cut(lp)
            if res is not None:
                res = s.subset.cut_result(res)
                err = getattr(res, "error", None)
    try:
        check_event_log_prob(lp, b, s.n_events)
    except (TypeError, ValueError) as e:
        point = {k: v.detach().cpu().tolist() for k, v in theta.items()}
        raise type(e)(f"{name} at theta={point}: {e}") from None
    if s.n_events is None:
        s.n_events = int(lp.shape[-1])
    total = lp.sum(-1)
    error = torch.full_like(total.detach(), math.nan)
    if err is not None:
        err = torch.as_tensor(err).to(lp.device, lp.dtype).detach()
        if err.ndim == 1 and b == 1:
            err = err.unsqueeze(0)
        if err.shape != lp.shape:
            raise ValueError(f"likelihood.evaluate(theta).error: expected shape "
                             f"{tuple(lp.shape)} like log_p, got {tuple(err.shape)}")
        check_finite("likelihood.evaluate(theta).error", err)
        error = err.square().sum(-1).sqrt()
    n_flag = None
    if with_error:
        if s.flags is None:
            s.flags = FlagCounter(s.n_events)
        n_flag = s.flags.add(res, lp.shape)
    if s.luminosity is not None:
        if not isinstance(log_nu, torch.Tensor):
            log_nu = lik.log_sigma_fid(theta)
        if not isinstance(log_nu, torch.Tensor) or log_nu.shape not in ((), (b,)) \
                or (log_nu.shape == () and b != 1):
            got = tuple(log_nu.shape) if isinstance(log_nu, torch.Tensor) else type(log_nu)
            raise ValueError(f"likelihood.log_sigma_fid(theta): expected shape ({b},), got {got}")
        check_finite("likelihood.log_sigma_fid(theta)", log_nu.detach())
        log_nu = log_nu.to(total.dtype).reshape(-1)
        n = s.n_events if s.n_observed is None else s.n_observed
        total = total + extended_poisson_term(log_nu, n, s.luminosity)
        return total, error, n_flag, log_nu
    return total, error, n_flag, None


def _batch_log_l(shared: tuple[_Setup, bool], theta: dict[str, torch.Tensor]):
    """One batch of grid points on a worker: :func:`_total_log_l` with its own flag counter.

    Returns:
        (total, error, n_flag, log_sigma_fid, flags, n_events), tensors on the CPU;
        ``flags`` the batch's :class:`FlagCounter` or None.
    """
    template, with_error = shared
    s = _Setup(template.likelihood, template.luminosity, template.dtype, template.device,
               n_observed=template.n_observed)
    b = next(iter(theta.values())).shape[0]
    with torch.no_grad():
        total, err, n_flag, lsf = _total_log_l(s, theta, b, with_error)
    cpu = [None if t is None else t.detach().cpu() for t in (total, err, n_flag, lsf)]
    return (*cpu, s.flags, s.n_events)


def _merge_remote(s: _Setup, flags: FlagCounter | None, n_events: int) -> None:
    """Fold a worker's batch into the scan's setup (event count, flag counter)."""
    if s.n_events is None:
        s.n_events = n_events
    elif n_events != s.n_events:
        raise ValueError(f"likelihood.log_prob(theta): expected {s.n_events} events like the "
                         f"first batch of grid points, got {n_events}")
    if flags is not None:
        if s.flags is None:
            s.flags = FlagCounter(s.n_events)
        s.flags.merge(flags)


def _profile_fit(s: _Setup, base: dict[str, torch.Tensor], prof: Sequence[str],
                 boxes: Sequence[tuple[float, float]], u0: torch.Tensor,
                 config: ProfileConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Maximise log L over the profiled parameters, separately for each of b points.

    LBFGS runs on the sum over the points (their objectives are independent); points
    that have not converged are refitted on their own with a fresh history, up to
    ``_ROUNDS`` times.

    Returns:
        u at the optimum, shape (b, k), and a converged flag, shape (b,) bool.
    """

    def objective(u, rows):
        th = {n: v[rows] for n, v in base.items()}
        for j, (name, (lo, hi)) in enumerate(zip(prof, boxes, strict=True)):
            th[name] = _to_theta(u[:, j], lo, hi)
        return -_total_log_l(s, th, len(rows), False)[0]

    u_all = u0.clone()
    converged = torch.zeros(u0.shape[0], dtype=torch.bool, device=u0.device)
    rows = torch.arange(u0.shape[0], device=u0.device)
    for _ in range(_ROUNDS if config.optimizer == "lbfgs" else 1):
        u = u_all[rows].clone().requires_grad_(True)
        if config.optimizer == "lbfgs":
            opt = torch.optim.LBFGS([u], lr=1.0, max_iter=config.max_iter,
                                    max_eval=2 * config.max_iter,
                                    tolerance_grad=0.1 * config.tolerance,
                                    tolerance_change=0.0, history_size=20,
                                    line_search_fn="strong_wolfe")

            def closure(opt=opt, u=u, rows=rows):
                opt.zero_grad()
                loss = objective(u, rows).sum()
                loss.backward()
                return loss

            opt.step(closure)
        else:
            opt = torch.optim.Adam([u], lr=config.lr)
            for _ in range(config.max_iter):
                opt.zero_grad()
                objective(u, rows).sum().backward()
                opt.step()
        u = u.detach().requires_grad_(True)
        f = objective(u, rows)
        (grad,) = torch.autograd.grad(f.sum(), u)
        limit = config.tolerance * torch.sqrt(1 + f.detach().abs())
        ok = (grad.abs() <= limit.unsqueeze(-1)).all(-1) & torch.isfinite(u).all(-1)
        u_all[rows] = u.detach()
        converged[rows] = ok
        rows = rows[~ok]
        if rows.numel() == 0:
            break
    return u_all, converged


def scan(
    likelihood,
    grid: Mapping[str, Sequence[float] | torch.Tensor],
    *,
    profile: Sequence[str] | str = (),
    fixed: Mapping[str, float] | None = None,
    bounds: Mapping[str, tuple[float, float]] | None = None,
    start: Mapping[str, float] | None = None,
    luminosity: float | None = None,
    cls: Sequence[float] = DEFAULT_CLS,
    batch_size: int = 64,
    profile_config: ProfileConfig | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
    progress: bool = False,
    on_flagged: str = "warn",
    n_events: int | None = None,
    client=None,
) -> ScanResult:
    """Scan −2Δlog L over a grid of one or two parameters.

    At each grid point θ the summed event log-likelihood log L(θ) = Σ_i log p(x_i | θ) is
    evaluated (b points per call, each parameter a tensor of shape (b,)); with a
    ``luminosity`` L the extended term log Pois(n | σ_fid(θ) L) = n log(σ_fid L) − σ_fid L
    − log n! is added. Profiled parameters are set, per grid point, to the values
    maximising log L within their bounds (LBFGS or Adam, :class:`ProfileConfig`); the
    remaining parameters are held at ``fixed`` values.

    The minimum of −2 log L is interpolated by a parabola through the lowest grid point
    and its neighbours (1D: 3 points; 2D: least-squares quadratic on the 3×3 block); it
    is the reference of −2Δlog L, so the curve touches 0 only at the true minimum. 1D
    intervals are the crossings of −2Δlog L with the χ²₁ quantiles of ``cls`` (1 and
    3.84) by linear interpolation; 2D contours are drawn at the χ²₂ quantiles (2.30 and
    5.99) by marching squares.

    **Monte Carlo errors.** When the likelihood has ``evaluate(theta)`` returning
    ``.log_p`` and ``.error`` (per-event MC errors of log p, e.g. the MEM importance
    sampling), values come from it and the error of the summed log L is
    √(Σ_i error_i²) (per-event estimates independent of each other). The error of
    −2Δlog L(θ) is reported as 2 √(e(θ)² + e(θ_min)²), e being the error of log L and
    θ_min the lowest grid point, which is exact for estimates independent between grid
    points. Likelihoods that reuse common random numbers (CRN) at every θ have errors
    strongly positively correlated between nearby θ, so that the error of the difference
    is smaller and this value is conservative; rerun with other seeds to measure the
    spread of the intervals themselves. The MC error of σ_fid is not included. Without
    ``evaluate`` the errors are NaN.

    **Flagged events.** When ``evaluate``'s result has ``flagged`` (per-event bool, e.g.
    :class:`~invsim.mem.MEMResult`: non-finite value, MC error, ESS or Pareto k̂ beyond
    the likelihood's limits) and optionally ``flag_reasons`` (criterion -> per-event
    bool), the events flagged at one or more grid points are counted per criterion
    (:class:`~invsim.infer.flags.FlagReport`): ``on_flagged="warn"`` emits a
    :class:`~invsim.infer.flags.FlaggedEventsWarning` with the count and the reasons,
    ``"error"`` (or ``"raise"``) raises :class:`~invsim.infer.flags.FlaggedEventsError`
    at the first batch with a flagged event, ``"ignore"`` stays silent. The count is
    recorded in any case: :attr:`ScanResult.flags`, :meth:`ScanResult.summary`
    (``n_flagged``, ``flag_reasons``, ``reliable``, ``flag_message``) and the dataset's
    attributes.

    **Parallel scans.** With a ``client`` (a ``dask.distributed.Client`` or a
    :class:`concurrent.futures.Executor`) the batches of ``batch_size`` grid points are
    evaluated as independent tasks (:func:`forward.distributed.map_tasks`) and put
    together in grid order. The likelihood object itself is sent to the workers (once
    per worker with Dask), so every worker scores all events with exactly the per-event
    importance samples drawn when it was built (they are part of its state, never
    redrawn): each point's summed log L is the same sum of the same per-event values as
    in one process, equal to float rounding (bitwise when the batches are the same and
    the workers run the same kernels). The events are not sharded: a likelihood built
    on a subset of the events would draw other importance samples for them, so
    sharding θ points is the simplest exactly-equal design. Profiled scans start every
    fit from the solved neighbour and therefore run in one process: ``client`` with
    ``profile`` is an error.

    Args:
        likelihood: an :class:`~invsim.infer.likelihood.EventLikelihood`
            (``parameter_names``, ``log_prob(theta)`` of shape (b, n_events); optional
            ``evaluate``, ``log_sigma_fid`` and ``parameters`` (name -> Parameter, whose
            ranges and defaults serve as bounds, profile starts and fixed values)).
        grid: one or two entries name -> strictly increasing values (≥ 3 each), in the
            parameter's unit; 2D grids are the outer product (first name: first axis).
        profile: names of the parameters to profile (not scanned).
        fixed: values of parameters neither scanned nor profiled (default: the declared
            defaults in ``likelihood.parameters``).
        bounds: name -> (low, high) overriding the declared ranges; grid values must lie
            inside, profiled parameters are kept inside (±inf allowed).
        start: initial values of profiled parameters (default: declared default, else the
            middle of the bounds); later batches start from the nearest solved point.
        luminosity: integrated luminosity in pb⁻¹ for the extended likelihood (needs
            ``likelihood.log_sigma_fid``, log σ_fid/pb), or None.
        cls: confidence levels of the intervals / contours.
        batch_size: θ points per likelihood call.
        profile_config: settings of the inner optimisation.
        dtype, device: of the θ tensors handed to the likelihood.
        progress: show a tqdm bar over batches.
        on_flagged: ``"warn"``, ``"error"`` (synonym ``"raise"``), ``"ignore"`` or
            ``"drop"``: what to do when the likelihood flags events (see above).
            Events whose log p is NaN or -inf at the first θ points evaluated (the
            first batch of the grid, or the profile's start) are left out with
            ``"drop"`` (as ``"warn"`` otherwise; indices and reasons in the attribute
            ``dropped_events``) and are an error naming them with the other choices.
        n_events: observed number of events n of the extended term (default: the
            number of events the likelihood scores); only with a ``luminosity``.
        client: None (evaluate here), a ``dask.distributed.Client`` or an Executor on
            which the batches of grid points are evaluated (see above); the likelihood
            must be picklable for process workers.

    Returns:
        A :class:`ScanResult`.

    Raises:
        TypeError: not an EventLikelihood, or wrongly typed arguments.
        ValueError: unknown/duplicated names, bad grids (fewer than 3 points, not
            increasing, NaN, outside the bounds), missing fixed values, a luminosity
            without ``log_sigma_fid``, non-finite or wrongly shaped likelihood output.
        FlaggedEventsError: flagged events with ``on_flagged="error"`` (a ValueError).
    """
    names = check_likelihood(likelihood)
    on_flagged = check_on_flagged(on_flagged)
    grid = _check_grid(grid, names)
    scanned = tuple(grid)
    prof = _names_list("profile", profile)
    fixed = {} if fixed is None else dict(fixed)
    start = {} if start is None else dict(start)
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size: expected an int >= 1, got {batch_size!r}")
    config = ProfileConfig() if profile_config is None else profile_config
    if not isinstance(config, ProfileConfig):
        raise TypeError(f"profile_config: expected a ProfileConfig, got {type(config).__name__}")
    for n in prof:
        if n not in names:
            raise ValueError(f"profile: unknown parameter {n!r}; the likelihood's parameters "
                             f"are {list(names)}")
        if n in scanned:
            raise ValueError(f"profile: {n!r} is scanned; a parameter is scanned or profiled")
    if len(set(prof)) != len(prof):
        raise ValueError(f"profile: duplicated names in {list(prof)}")
    if client is not None and prof:
        raise ValueError("client: profiled scans run in one process (each fit starts from "
                         f"its solved neighbour); drop client= or profile={list(prof)}")
    for n in fixed:
        if n not in names:
            raise ValueError(f"fixed: unknown parameter {n!r}; the likelihood's parameters "
                             f"are {list(names)}")
        if n in scanned or n in prof:
            raise ValueError(f"fixed: {n!r} is scanned or profiled, it cannot also be fixed")
    unknown = sorted(set(start) - set(prof))
    if unknown:
        raise ValueError(f"start: {unknown} are not profiled; profiled: {list(prof)}")
    declared = _declared(likelihood)
    box = _resolve_bounds(names, declared, bounds)
    for n, v in grid.items():
        lo, hi = box[n]
        if float(v[0]) < lo or float(v[-1]) > hi:
            raise ValueError(f"grid[{n!r}]: values [{float(v[0]):g}, {float(v[-1]):g}] reach "
                             f"outside the allowed range [{lo:g}, {hi:g}]")
    for n in names:
        if n in scanned or n in prof:
            continue
        if n not in fixed:
            if n not in declared:
                raise ValueError(
                    f"fixed: parameter {n!r} is neither scanned nor profiled and has no "
                    "declared default; give fixed={" + repr(n) + ": value} or profile it"
                )
            fixed[n] = float(declared[n].default)
        fixed[n] = float(fixed[n])
        lo, hi = box[n]
        if not lo <= fixed[n] <= hi:
            raise ValueError(f"fixed[{n!r}]: expected a value in [{lo:g}, {hi:g}], "
                             f"got {fixed[n]}")
    if luminosity is not None:
        lum = float(luminosity)
        if not (math.isfinite(lum) and lum > 0):
            raise ValueError(f"luminosity: expected a finite positive value in pb^-1, got "
                             f"{luminosity!r}")
        if not has_sigma_fid(likelihood):
            raise ValueError("luminosity: the extended likelihood needs "
                             f"likelihood.log_sigma_fid(theta); {type(likelihood).__name__} "
                             "has none")
        luminosity = lum
    if n_events is not None:
        if luminosity is None:
            raise ValueError("n_events: only used by the extended term; give a luminosity")
        if isinstance(n_events, bool) or not isinstance(n_events, int) or n_events < 0:
            raise ValueError(f"n_events: expected an int >= 0, got {n_events!r}")
    cls = tuple(float(c) for c in cls)
    levels = [chi2_threshold(c, len(scanned)) for c in cls]

    dev = resolve_device(device)
    with_error = callable(getattr(likelihood, "evaluate", None))
    expected = getattr(likelihood, "n_events", None)
    setup = _Setup(likelihood, luminosity, dtype, dev, n_observed=n_events,
                   on_flagged=on_flagged,
                   expected=expected if isinstance(expected, int) and expected > 0 else None)
    shape = tuple(v.numel() for v in grid.values())
    mesh = torch.meshgrid(*grid.values(), indexing="ij")
    points = torch.stack([m.reshape(-1) for m in mesh], -1)  # (P, d) float64 on CPU
    index = torch.stack(torch.meshgrid(
        *[torch.linspace(0, 1, s_, dtype=torch.float64) for s_ in shape], indexing="ij"
    ), -1).reshape(-1, len(shape))  # grid positions scaled to [0, 1], for warm starts
    n_pts = points.shape[0]
    prof_boxes = [box[n] for n in prof]
    u_start = torch.tensor([_to_u(_start_value(n, start, declared, *box[n]), *box[n])
                            for n in prof], dtype=dtype, device=dev)
    log_l = torch.empty(n_pts, dtype=torch.float64)
    log_l_err = torch.empty(n_pts, dtype=torch.float64)
    conv = torch.ones(n_pts, dtype=torch.int8)
    prof_vals = torch.empty(n_pts, len(prof), dtype=torch.float64)
    flagged = torch.zeros(n_pts, dtype=torch.int32)
    has_flagged = False
    log_sfid = torch.empty(n_pts, dtype=torch.float64)
    u_solved = torch.empty(n_pts, len(prof), dtype=dtype, device=dev)

    batches = range(0, n_pts, batch_size)
    remote = None
    if client is not None:
        from forward.distributed import map_tasks

        thetas = []
        for i0 in batches:
            sl = slice(i0, min(i0 + batch_size, n_pts))
            theta = {n: points[sl, j].to(dtype=dtype, device=dev)
                     for j, n in enumerate(scanned)}
            for n, v in fixed.items():
                theta[n] = torch.full((sl.stop - sl.start,), v, dtype=dtype, device=dev)
            thetas.append(theta)
        remote = iter(map_tasks(_batch_log_l, thetas, shared=(setup, with_error),
                                client=client, what="batch of grid points"))
    if progress:
        from forward.progress import progress_bar

        batches = progress_bar(batches, desc="scan", unit="batch")
    for i0 in batches:
        sl = slice(i0, min(i0 + batch_size, n_pts))
        b = sl.stop - sl.start
        base = {n: points[sl, j].to(dtype=dtype, device=dev) for j, n in enumerate(scanned)}
        for n, v in fixed.items():
            base[n] = torch.full((b,), v, dtype=dtype, device=dev)
        theta = dict(base)
        if prof:
            if i0 == 0:
                u0 = u_start.expand(b, -1)
            else:  # start from the nearest grid point already solved
                nearest = torch.cdist(index[sl], index[:i0]).argmin(-1)
                u0 = u_solved[nearest.to(dev)]
            u, ok = _profile_fit(setup, base, prof, prof_boxes, u0, config)
            u_solved[sl] = u
            conv[sl] = ok.to(torch.int8).cpu()
            for j, n in enumerate(prof):
                theta[n] = _to_theta(u[:, j], *box[n])
                prof_vals[sl, j] = theta[n].detach().to(torch.float64).cpu()
        if remote is None:
            with torch.no_grad():
                total, err, n_flag, lsf = _total_log_l(setup, theta, b, with_error)
        else:
            total, err, n_flag, lsf, flags, n_ev = next(remote)
            _merge_remote(setup, flags, n_ev)
        log_l[sl] = total.to(torch.float64).cpu()
        log_l_err[sl] = err.to(torch.float64).cpu()
        if n_flag is not None:
            has_flagged = True
            flagged[sl] = n_flag.to(torch.int32).reshape(-1).cpu()
            if on_flagged == "error":
                handle_flags(setup.flags.report(f"at {sl.stop} of {n_pts} grid points"),
                             on_flagged)
        if lsf is not None:
            log_sfid[sl] = lsf.to(torch.float64).cpu()

    m2 = (-2.0 * log_l).reshape(shape).numpy()
    m2_err = (2.0 * log_l_err).reshape(shape).numpy()
    axes = [v.numpy() for v in grid.values()]
    i_min = np.unravel_index(np.argmin(m2), shape)
    if len(scanned) == 1:
        x_hat, m2_min, at_edge = _parabola_minimum(axes[0], m2)
        best = {scanned[0]: x_hat}
    else:
        (x_hat, y_hat), m2_min, at_edge = _quadratic_minimum_2d(axes[0], axes[1], m2)
        best = {scanned[0]: x_hat, scanned[1]: y_hat}
    prof_grid = prof_vals.reshape(*shape, len(prof)).numpy()
    for j, n in enumerate(prof):
        best[n] = float(prof_grid[i_min + (j,)])
    err_min = float(m2_err[i_min])
    m2d = m2 - m2_min
    m2d_err = np.sqrt(m2_err**2 + err_min**2)

    import xarray as xr

    dims = scanned
    coords = {n: (n, axes[k], _param_attrs(declared, n)) for k, n in enumerate(scanned)}
    data = {
        "m2dlogl": (dims, m2d, {"long_name": "-2 Delta log L w.r.t. the interpolated minimum"}),
        "m2dlogl_error": (dims, m2d_err, {"long_name": "MC error of m2dlogl"}),
        "log_l": (dims, log_l.reshape(shape).numpy(), {"long_name": "summed log-likelihood"}),
        "log_l_error": (dims, log_l_err.reshape(shape).numpy(),
                        {"long_name": "MC error of log_l"}),
        "converged": (dims, conv.reshape(shape).numpy(),
                      {"long_name": "1 if the profile fit converged"}),
    }
    for j, n in enumerate(prof):
        attrs_n = {"long_name": f"profiled value of {n}", **_param_attrs(declared, n)}
        data[f"profile_{n}"] = (dims, prof_grid[..., j], attrs_n)
    if luminosity is not None:
        data["log_sigma_fid"] = (dims, log_sfid.reshape(shape).numpy(),
                                 {"long_name": "log(sigma_fid / pb)"})
    if has_flagged:
        data["n_flagged"] = (dims, flagged.reshape(shape).numpy(),
                             {"long_name": "events flagged by the likelihood's diagnostics"})
    flags = setup.flags.report(f"at one or more of {n_pts} grid points") \
        if setup.flags is not None else None
    handle_flags(flags, on_flagged, stacklevel=2)
    attrs = {
        "likelihood": type(likelihood).__name__,
        "n_events": int(setup.n_events),
        "profiled": ",".join(prof),
        "fixed": json.dumps(fixed),
        "luminosity_pb": math.nan if luminosity is None else luminosity,
        "min_m2logl": m2_min,
        "best_fit": json.dumps(best),
        "dropped_events": json.dumps({str(k): v for k, v in setup.dropped.items()}),
        "provenance": json.dumps(provenance(device=setup.device, method="scan")),
    }
    if flags is not None:
        attrs.update(flags.to_attrs())
    ds = xr.Dataset(data, coords=coords, attrs=attrs)
    intervals, contours = (), ()
    if len(scanned) == 1:
        intervals = tuple(
            Interval(scanned[0], c, lev, *_crossings(axes[0], m2d, best[scanned[0]], lev))
            for c, lev in zip(cls, levels, strict=True)
        )
    else:
        contours = tuple(_contour(axes[0], axes[1], m2d, c, lev)
                         for c, lev in zip(cls, levels, strict=True))
    return ScanResult(ds, scanned, prof, fixed, best, m2_min, err_min, at_edge,
                      int(setup.n_events), luminosity, intervals, contours, flags)


def _param_attrs(declared, name) -> dict:
    p = declared.get(name)
    return {"units": p.unit} if p is not None and getattr(p, "unit", "") else {}


# --------------------------------------------------------------------------------------
# minimum, intervals, contours (post-processing on CPU numpy arrays)
# --------------------------------------------------------------------------------------
def _parabola_minimum(x: np.ndarray, y: np.ndarray) -> tuple[float, float, bool]:
    """Vertex of the parabola through the lowest point of y(x) and its two neighbours."""
    i = int(np.argmin(y))
    if not np.isfinite(y[i]):
        raise ValueError("likelihood: −2 log L is not finite anywhere on the grid")
    if i == 0 or i == len(x) - 1:
        return float(x[i]), float(y[i]), True
    x0, x1, x2 = x[i - 1: i + 2]
    y0, y1, y2 = y[i - 1: i + 2]
    d01 = (y1 - y0) / (x1 - x0)
    d12 = (y2 - y1) / (x2 - x1)
    a = (d12 - d01) / (x2 - x0)  # >= 0 since y1 is the lowest
    if not a > 0:
        return float(x1), float(y1), False
    slope1 = d01 + a * (x1 - x0)  # derivative at x1
    xv = x1 - slope1 / (2 * a)
    return float(xv), float(y1 - slope1**2 / (4 * a)), False


def _quadratic_minimum_2d(x, y, z) -> tuple[tuple[float, float], float, bool]:
    """Minimum of a least-squares quadratic on the 3×3 block around the lowest point."""
    i, j = np.unravel_index(np.argmin(z), z.shape)
    if not np.isfinite(z[i, j]):
        raise ValueError("likelihood: −2 log L is not finite anywhere on the grid")
    if i in (0, len(x) - 1) or j in (0, len(y) - 1):
        return (float(x[i]), float(y[j])), float(z[i, j]), True
    xs, ys = np.meshgrid(x[i - 1: i + 2] - x[i], y[j - 1: j + 2] - y[j], indexing="ij")
    xs, ys, zs = xs.ravel(), ys.ravel(), z[i - 1: i + 2, j - 1: j + 2].ravel()
    design = np.stack([np.ones_like(xs), xs, ys, xs**2, xs * ys, ys**2], -1)
    c = np.linalg.lstsq(design, zs, rcond=None)[0]
    hess = np.array([[2 * c[3], c[4]], [c[4], 2 * c[5]]])
    if not (np.isfinite(c).all() and np.all(np.linalg.eigvalsh(hess) > 0)):
        return (float(x[i]), float(y[j])), float(z[i, j]), False
    d = -np.linalg.solve(hess, c[1:3])
    inside = (x[i - 1] - x[i] <= d[0] <= x[i + 1] - x[i]
              and y[j - 1] - y[j] <= d[1] <= y[j + 1] - y[j])
    if not inside:
        return (float(x[i]), float(y[j])), float(z[i, j]), False
    zmin = c[0] + 0.5 * c[1:3] @ d
    return (float(x[i] + d[0]), float(y[j] + d[1])), float(min(zmin, z[i, j])), False


def _crossings(x: np.ndarray, y: np.ndarray, x_hat: float, level: float) -> tuple[float, float]:
    """First crossings of y = level left and right of the minimum (x_hat, 0)."""
    out = []
    for side in (-1, 1):
        sel = x < x_hat if side < 0 else x > x_hat
        xs, ys = x[sel], y[sel]
        if side < 0:
            xs, ys = xs[::-1], ys[::-1]
        px, py, found = x_hat, 0.0, math.nan
        for xi, yi in zip(xs, ys, strict=True):
            if yi >= level:
                found = px + (level - py) * (xi - px) / (yi - py) if np.isfinite(yi) else xi
                break
            px, py = xi, yi
        out.append(float(found))
    return out[0], out[1]


def _contour(x, y, z, cl: float, level: float) -> Contour:
    import contourpy

    zz = np.where(np.isfinite(z), z, np.nanmax(np.where(np.isfinite(z), z, -np.inf)) + 1e3)
    gen = contourpy.contour_generator(x, y, zz.T, line_type=contourpy.LineType.Separate)
    paths = tuple(np.asarray(p, dtype=np.float64) for p in gen.lines(level))
    closed = tuple(bool(len(p) > 2 and np.allclose(p[0], p[-1], rtol=0, atol=0))
                   for p in paths)
    if paths and all(closed):
        area = float(sum(abs(_shoelace(p)) for p in paths))
    else:
        area = math.nan
    return Contour(cl, level, paths, closed, area)


def _shoelace(p: np.ndarray) -> float:
    xs, ys = p[:, 0], p[:, 1]
    return 0.5 * float(np.dot(xs[:-1], ys[1:]) - np.dot(xs[1:], ys[:-1]))


# --------------------------------------------------------------------------------------
# plot
# --------------------------------------------------------------------------------------
def plot_scan(result: ScanResult, path: str | os.PathLike | None = None, *,
              overwrite: bool = False, label: Callable[[str], str] | None = None,
              ax=None):
    """Plot a scan: 1D curve with its MC error band and interval lines, or 2D contours.

    A new figure is a ``matplotlib.figure.Figure`` on the Agg canvas (no pyplot state)
    in mplhep's style when mplhep is installed (:mod:`forward.plotting`).

    Args:
        result: a :class:`ScanResult`.
        path: PNG file to write, or None to only return the figure.
        overwrite: replace an existing ``path``.
        label: maps a parameter name to an axis label (default: name [unit]).
        ax: a ``matplotlib.axes.Axes`` to draw into (its figure is saved when ``path``
            is given), or None for a new figure.

    Returns:
        The ``matplotlib.figure.Figure`` drawn into.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False.
    """
    from forward.plotting import plot_axes, save_png

    if not isinstance(result, ScanResult):
        raise TypeError(f"result: expected a ScanResult, got {type(result).__name__}")
    if path is not None:
        path = Path(path)
        if path.exists() and not overwrite:
            raise FileExistsError(f"path: {str(path)!r} exists; pass overwrite=True to replace it")
    ds = result.dataset

    def axis_label(n):
        if label is not None:
            return label(n)
        unit = ds[n].attrs.get("units", "")
        return f"{n} [{unit}]" if unit else n

    with plot_axes(ax, 1, figsize=(6.0, 4.5)) as (fig, (ax,), _):
        colors = ("tab:blue", "tab:orange", "tab:green", "tab:red")
        if len(result.parameters) == 1:
            (n,) = result.parameters
            x, y, e = ds[n].values, ds["m2dlogl"].values, ds["m2dlogl_error"].values
            ax.plot(x, y, color="black", lw=1.5, label=r"$-2\Delta\log L$")
            if np.isfinite(e).any():
                ax.fill_between(x, y - e, y + e, color="grey", alpha=0.35, lw=0,
                                label="MC error")
            for k, iv in enumerate(result.intervals):
                c = colors[k % len(colors)]
                ax.axhline(iv.level, color=c, ls="--", lw=1,
                           label=f"{100 * iv.cl:.1f}% CL: [{iv.lower:.4g}, {iv.upper:.4g}]")
                for v in (iv.lower, iv.upper):
                    if math.isfinite(v):
                        ax.axvline(v, color=c, ls=":", lw=1)
            ax.axvline(result.best_fit[n], color="black", ls="-", lw=0.6)
            top = max([iv.level for iv in result.intervals] + [1.0]) * 2.0
            ax.set_ylim(0, top)
            ax.set_xlabel(axis_label(n))
            ax.set_ylabel(r"$-2\Delta\log L$")
        else:
            n1, n2 = result.parameters
            x, y, z = ds[n1].values, ds[n2].values, ds["m2dlogl"].values
            top = max([c.level for c in result.contours] + [1.0]) * 2.0
            mesh = ax.pcolormesh(x, y, np.minimum(z, top).T, shading="nearest", cmap="Greys_r")
            fig.colorbar(mesh, ax=ax, label=r"$-2\Delta\log L$ (clipped)")
            for k, c in enumerate(result.contours):
                col = colors[k % len(colors)]
                for j, p in enumerate(c.paths):
                    ax.plot(p[:, 0], p[:, 1], color=col, lw=1.5,
                            label=f"{100 * c.cl:.1f}% CL" if j == 0 else None)
            ax.plot([result.best_fit[n1]], [result.best_fit[n2]], marker="+", color="tab:red",
                    ms=10, ls="none", label="best fit")
            ax.set_xlabel(axis_label(n1))
            ax.set_ylabel(axis_label(n2))
        title = "profiled: " + ", ".join(result.profiled) if result.profiled else ""
        if title:
            ax.set_title(title, fontsize=9)
        ax.legend(fontsize=8)
        if path is not None:
            save_png(fig, path, overwrite=overwrite, dpi=120)
    return fig
