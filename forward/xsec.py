"""Total cross sections by Monte Carlo integration of the hadronic integrand.

``cross_section(process, n)`` draws n uniform points of the unit hypercube of one
phase-space channel, evaluates :class:`~forward.integrand.HadronicIntegrand` in
batches (memory bounded) and accumulates mean and variance in float64. The result is
a :class:`CrossSectionResult`, never a bare float.

``method="vegas"`` first adapts the project's VEGAS grid (:class:`forward.nis.VegasMap`)
on a fraction of the n calls, then freezes it and estimates σ and its error from the
remaining calls alone, drawn through the frozen grid: an unbiased estimate with the
plain Monte Carlo error of those weights (the adaptation rounds are not averaged in).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from forward._validation import check_choice, check_memory, make_generator, resolve_device
from forward.integrand import HadronicIntegrand
from forward.nis import VegasMap
from forward.nis.moments import RunningMoments

__all__ = [
    "BYTES_PER_POINT", "MAX_SECONDS", "METHODS", "CrossSectionResult", "cross_section",
    "integrate",
]

#: integration methods known to :func:`cross_section`
METHODS = ("plain", "vegas")

#: peak memory per integrand point of a batch, in bytes (estimate: the Drell-Yan
#: integrand in float64 peaks at about 3 kB per point on CPU)
BYTES_PER_POINT = 4096

#: default limit of a run's predicted duration in seconds (one week)
MAX_SECONDS = 7 * 24 * 3600.0

#: ``n`` above which the time of the run is predicted from a pilot batch (below it a run
#: takes minutes at most and the pilot is not worth its calls)
_PILOT_ABOVE = 10_000_000
_PILOT_POINTS = 10_000


@dataclass(frozen=True)
class CrossSectionResult:
    """A Monte Carlo cross section with its error and diagnostics.

    Attributes:
        value: cross section estimate in pb.
        error: its standard error in pb.
        rel_std: relative spread of the weights, std(w)/mean(w) (√n · error/value).
        n_eval: number of integrand evaluations.
        n_nonzero: evaluations with a non-zero weight (passing cuts).
        method: integration method, one of ``METHODS``.
        chi2_dof: χ²/dof of the iterations' agreement for iterative methods, else None.
    """

    value: float
    error: float
    rel_std: float
    n_eval: int
    n_nonzero: int
    method: str = "plain"
    chi2_dof: float | None = None

    def __post_init__(self) -> None:
        for name in ("value", "error", "rel_std"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"{name}: expected a finite number, got {v!r}")
        if self.error < 0 or self.rel_std < 0:
            raise ValueError(
                f"error, rel_std: expected >= 0, got error={self.error}, rel_std={self.rel_std}"
            )
        if not (isinstance(self.n_eval, int) and self.n_eval > 0):
            raise ValueError(f"n_eval: expected a positive int, got {self.n_eval!r}")
        if not (isinstance(self.n_nonzero, int) and 0 <= self.n_nonzero <= self.n_eval):
            raise ValueError(
                f"n_nonzero: expected an int in [0, n_eval={self.n_eval}], got {self.n_nonzero!r}"
            )
        check_choice("method", self.method, METHODS)
        if self.chi2_dof is not None and not (math.isfinite(self.chi2_dof) and self.chi2_dof >= 0):
            raise ValueError(
                f"chi2_dof: expected None or a finite number >= 0, got {self.chi2_dof}"
            )

    @property
    def rel_error(self) -> float:
        """error / |value| (inf for a zero cross section)."""
        return self.error / abs(self.value) if self.value != 0 else math.inf

    def __str__(self) -> str:
        return f"σ = {self.value:.6g} ± {self.error:.2g} pb"


def cross_section(
    process,
    n: int = 1_000_000,
    *,
    params: Mapping[str, Any] | None = None,
    channel=0,
    method: str = "plain",
    seed: int | None = None,
    generator: torch.Generator | None = None,
    batch_size: int = 200_000,
    pdf=None,
    device: torch.device | str | None = None,
    max_seconds: float | None = MAX_SECONDS,
) -> CrossSectionResult:
    """Total cross section of a process, in pb, by Monte Carlo.

    Memory is bounded by ``batch_size`` (VEGAS adaptation included), whatever ``n``.

    Args:
        process: a :class:`~forward.processes.base.Process` (its settings hold the cuts).
        n: number of integrand evaluations (>= 2; >= 100 for VEGAS).
        params: parameter values by name; defaults for the rest.
        channel: phase-space channel, an index into ``process.phase_space(params)`` or
            a map object.
        method: ``"plain"`` (uniform points) or ``"vegas"`` (a :class:`forward.nis.VegasMap`
            of 64 bins per dimension adapted on 15% of the points in 6 rounds, then
            frozen; the estimate and its error use only the frozen-grid points, so both
            are unbiased).
        seed: seed of a fresh generator; exclusive with ``generator``; None draws a
            non-deterministic seed (:func:`forward._validation.make_generator`).
        generator: torch generator on ``device`` for the points.
        batch_size: points per batch; memory grows linearly with it.
        pdf: PDF object or set name; default the process's.
        device: where points are drawn and the integrand evaluated (default CPU).
        max_seconds: refuse up front a run predicted to take longer (for ``n`` above
            10^7 the rate is measured on a pilot batch of 10^4 points drawn from a
            separate generator, so the result does not depend on it); default one week
            (:data:`MAX_SECONDS`); None: no limit.

    Returns:
        :class:`CrossSectionResult` with value and error in pb; for VEGAS ``n_eval`` and
        ``n_nonzero`` count all evaluations, adaptation included.

    Raises:
        ValueError: bad n, batch_size, method, seed, device; a batch that does not fit
            in the device's memory (with the estimate); a run predicted to take longer
            than ``max_seconds``; non-finite weights.
    """
    check_choice("method", method, METHODS)
    for name, v in (("n", n), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 2:
            raise ValueError(f"{name}: expected an int >= 2, got {v!r}")
    if max_seconds is not None and not (isinstance(max_seconds, (int, float))
                                        and max_seconds > 0):
        raise ValueError(f"max_seconds: expected a number > 0 or None, got {max_seconds!r}")
    device = resolve_device(device)
    check_memory("batch_size", min(batch_size, n), BYTES_PER_POINT, device=device,
                 what="points per batch")
    gen = make_generator(seed, generator, device)  # seed=None: fresh random seed
    integrand = HadronicIntegrand(process, pdf=pdf, params=params, channel=channel,
                                  dtype=torch.float64, device=device)
    if max_seconds is not None and n > _PILOT_ABOVE:
        _check_time(integrand, n, min(batch_size, _PILOT_POINTS), max_seconds, device)
    results, _ = integrate([integrand], n, method=method, generator=gen,
                           batch_size=batch_size, device=device)
    return results[0]


def integrate(
    integrands, n: int, *, method: str, generator: torch.Generator, batch_size: int,
    device,
) -> tuple[list[CrossSectionResult], list[float]]:
    """Cross sections of several integrands from the same points of one map.

    The points (and, for VEGAS, the adapted grid) follow the first integrand; every
    other one is evaluated at the same points, so differences between the estimates
    have small, correlated errors (used for scale and PDF variations).

    Args:
        integrands: :class:`~forward.integrand.HadronicIntegrand` objects on the same
            phase-space map (same ``dim``); the first drives VEGAS.
        n: number of points (>= 2; >= 100 for VEGAS).
        method: one of ``METHODS``.
        generator: torch generator on ``device``.
        batch_size: points per batch.
        device: where points are drawn.

    Returns:
        (results, shift_errors): a :class:`CrossSectionResult` per integrand, and the
        standard error in pb of σ_k − σ_0 for each k (0.0 for the first). With VEGAS
        the first result's ``n_eval``/``n_nonzero`` count the adaptation points too,
        the others' only the frozen-grid points they were evaluated at.

    Raises:
        ValueError: bad n or method, integrands of different dimension.
    """
    check_choice("method", method, METHODS)
    if not integrands:
        raise ValueError("integrands: expected at least one integrand, got none")
    dims = {int(f.dim) for f in integrands}
    if len(dims) != 1:
        raise ValueError(f"integrands: expected one phase-space dimension, got {sorted(dims)}")
    if method == "vegas":
        if n < 100:
            raise ValueError(f"n: VEGAS needs at least 100 evaluations, got {n}")
        return _vegas(integrands, n, generator, batch_size, device)
    dim = dims.pop()
    stats = _Accumulator(len(integrands))
    done = 0
    while done < n:
        size = min(batch_size, n - done)
        r = torch.rand(size, dim, generator=generator, dtype=torch.float64, device=device)
        with torch.no_grad():
            stats.add([f(r).to(torch.float64) for f in integrands])
        done += size
    return [_result(m, "plain") for m in stats.moments], stats.shift_errors()


def _result(stats: RunningMoments, method: str,
            chi2_dof: float | None = None) -> CrossSectionResult:
    """The :class:`CrossSectionResult` of accumulated weights."""
    rel_std = stats.std / abs(stats.mean) if stats.mean != 0 else 0.0
    return CrossSectionResult(stats.mean, stats.error, rel_std, stats.count, stats.nonzero,
                              method, chi2_dof)


def _check_time(integrand, n: int, pilot: int, max_seconds: float, device) -> None:
    """Refuse ``n`` evaluations predicted (from a timed pilot batch) to exceed ``max_seconds``.

    The pilot's points come from their own fixed-seed generator: the result of the run
    does not depend on whether the pilot ran.
    """
    gen = torch.Generator(device=device).manual_seed(0)
    r = torch.rand(pilot, integrand.dim, generator=gen, dtype=torch.float64, device=device)
    start = time.perf_counter()
    with torch.no_grad():
        integrand(r)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    rate = pilot / max(time.perf_counter() - start, 1e-9)
    predicted = n / rate
    if predicted > max_seconds:
        raise ValueError(
            f"n: {n} evaluations would take about {predicted / 3600:.3g} hours at the "
            f"measured {rate:.3g} points/s, more than the limit of {max_seconds / 3600:.3g} "
            f"hours; use at most about {int(rate * max_seconds)} points or raise the limit"
        )


# -- VEGAS --------------------------------------------------------------------------------
# cross_section(method="vegas") adapts a forward.nis.VegasMap, freezes it and integrates
# with fresh points through the frozen grid. The damping 1.5 (stronger adaptation than
# VegasMap's default 0.5) and 15% of the calls in 6 rounds were tuned on the Drell-Yan and
# t t-bar references: they give the smallest frozen-grid error at fixed n (weight spread
# 0.15-0.32; with damping 0.5 it is 0.29-0.54, and more or longer rounds gain < 1%).
_VEGAS_BINS = 64
_VEGAS_ALPHA = 1.5
_VEGAS_ADAPT_FRACTION = 0.15
_VEGAS_ADAPT_ITERATIONS = 6
_VEGAS_FINAL_BATCHES = 5


class _Accumulator:
    """Running moments of the weights of several integrands and of their differences
    to the first (at shared points)."""

    def __init__(self, k: int) -> None:
        self.moments = [RunningMoments() for _ in range(k)]
        self.shifts = [RunningMoments() for _ in range(k - 1)]

    def add(self, weights: list[torch.Tensor]) -> None:
        for m, w in zip(self.moments, weights, strict=True):
            m.add(w)
        for m, w in zip(self.shifts, weights[1:], strict=True):
            m.add(w - weights[0])

    def shift_errors(self) -> list[float]:
        return [0.0] + [m.error for m in self.shifts]


def _batched(integrand, batch_size: int):
    """``integrand`` evaluated in batches of at most ``batch_size`` points (bounded memory)."""

    def f(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([integrand(chunk).to(torch.float64)
                              for chunk in x.split(batch_size)])

    return f


def _vegas(integrands, n, gen, batch_size, device):
    """Adapt a VEGAS grid on a fraction of the points, then plain MC on the frozen grid.

    The grid (:class:`forward.nis.VegasMap`) is refined ``_VEGAS_ADAPT_ITERATIONS``
    times on ``_VEGAS_ADAPT_FRACTION`` of the n points with the first integrand, then
    left unchanged; the estimates and their errors use only the later, frozen-grid
    points (every integrand at the same points), so they are unbiased and each error
    is the plain standard error of its weights. ``chi2_dof`` compares the means of
    ``_VEGAS_FINAL_BATCHES`` equal parts of them.

    Returns:
        (results, shift_errors) as :func:`integrate`.
    """
    grid = VegasMap(integrands[0].dim, bins=_VEGAS_BINS, dtype=torch.float64, device=device)
    fs = [_batched(f, batch_size) for f in integrands]
    per_iter = int(n * _VEGAS_ADAPT_FRACTION) // _VEGAS_ADAPT_ITERATIONS
    used, adapt_nonzero = 0, 0
    if per_iter >= 2:

        def count(_x, fx, _log_q):
            nonlocal adapt_nonzero
            adapt_nonzero += int((fx != 0).sum())

        grid.adapt(fs[0], n_iter=_VEGAS_ADAPT_ITERATIONS, n_per_iter=per_iter,
                   alpha=_VEGAS_ALPHA, generator=gen, callback=count, batch_size=batch_size)
        used = per_iter * _VEGAS_ADAPT_ITERATIONS
    # the grid is frozen from here on: only sample() is called, never refine()
    n_final = n - used
    total = _Accumulator(len(fs))
    parts = []
    for b in range(_VEGAS_FINAL_BATCHES):
        part = [RunningMoments() for _ in fs]
        left = n_final // _VEGAS_FINAL_BATCHES + (b < n_final % _VEGAS_FINAL_BATCHES)
        while left > 0:
            size = min(batch_size, left)
            x, log_q = grid.sample(size, generator=gen)
            jac = torch.exp(-log_q)
            ws = [f(x) * jac for f in fs]
            for p, w in zip(part, ws, strict=True):
                p.add(w)
            total.add(ws)
            left -= size
        parts.append(part)
    results = []
    for k, tot in enumerate(total.moments):
        chi2 = sum((p[k].mean - tot.mean) ** 2 / max(p[k].error ** 2, 1e-300) for p in parts)
        res = _result(tot, "vegas", chi2 / (_VEGAS_FINAL_BATCHES - 1))
        if k == 0:  # n_eval and n_nonzero count the evaluations spent on adaptation too
            res = CrossSectionResult(res.value, res.error, res.rel_std, n,
                                     res.n_nonzero + adapt_nonzero, "vegas", res.chi2_dof)
        results.append(res)
    return results, total.shift_errors()
