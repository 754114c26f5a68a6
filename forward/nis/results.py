r"""Integration with a proposal and the self-validating result it returns.

:func:`integrate` draws ``n`` points per iteration from any proposal (VEGAS grid,
mixture with a flow, ...), evaluates the integrand, and estimates
:math:`I = \int_{[0,1]^d} f\,dx` by the mean of the weights :math:`w = f/q`
(float64). Iterations are combined with inverse-variance weights and their
consistency is reported as :math:`\chi^2/\text{dof}` (as vegas's ``RAvg`` does).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from forward.nis._evaluate import Integrand, check_count, evaluate
from forward.nis.diagnostics import Diagnostics, check_weights
from forward.nis.unweighting import unweighting_efficiency
from forward.progress import progress_bar

__all__ = ["IntegrationResult", "combine_estimates", "integrate"]


@dataclass(frozen=True)
class IntegrationResult:
    """An integral estimate with its error and sampling diagnostics.

    Attributes:
        value: the estimate (units of the integrand times the unit-cube volume).
        error: its standard error (>= 0).
        n_eval: integrand calls used.
        rel_std: relative standard deviation of the weights, ``std(w) / <|w|>``.
        chi2_dof: χ²/dof of the iterations around their combination (nan for one).
        n_iter: number of combined iterations.
        ess_fraction: effective sample size per point, ``(Σ|w|)² / (n Σw²)``.
        unweighting_efficiency: ``<|w|> / w_max`` at the given overweight, or None.
        overweight: overweight fraction used for ``unweighting_efficiency``.
        diagnostics: the checks of the last iteration, or None.
    """

    value: float
    error: float
    n_eval: int
    rel_std: float = math.nan
    chi2_dof: float = math.nan
    n_iter: int = 1
    ess_fraction: float = math.nan
    unweighting_efficiency: float | None = None
    overweight: float = 1e-3
    diagnostics: Diagnostics | None = None

    def __post_init__(self) -> None:
        if not math.isfinite(self.value):
            raise ValueError(f"value: expected a finite number, got {self.value}")
        if not (math.isfinite(self.error) and self.error >= 0):
            raise ValueError(f"error: expected a finite number >= 0, got {self.error}")
        if isinstance(self.n_eval, bool) or not isinstance(self.n_eval, int) or self.n_eval < 1:
            raise ValueError(f"n_eval: expected an integer >= 1, got {self.n_eval!r}")
        if not (isinstance(self.n_iter, int) and self.n_iter >= 1):
            raise ValueError(f"n_iter: expected an integer >= 1, got {self.n_iter!r}")
        if not (math.isnan(self.rel_std) or self.rel_std >= 0):
            raise ValueError(f"rel_std: expected >= 0 or nan, got {self.rel_std}")
        if not (math.isnan(self.chi2_dof) or self.chi2_dof >= 0):
            raise ValueError(f"chi2_dof: expected >= 0 or nan, got {self.chi2_dof}")
        eff = self.unweighting_efficiency
        if eff is not None and not (0 < eff <= 1 + 1e-12):
            raise ValueError(f"unweighting_efficiency: expected (0, 1] or None, got {eff}")

    @property
    def rel_error(self) -> float:
        """``error / |value|`` (inf for a zero value)."""
        return self.error / abs(self.value) if self.value != 0 else math.inf

    def pull(self, reference: float) -> float:
        """``(value - reference) / error``: the deviation in standard errors."""
        d = self.value - reference
        if self.error == 0:
            return 0.0 if d == 0 else math.copysign(math.inf, d)
        return d / self.error

    def __str__(self) -> str:
        return f"{self.value:.6g} ± {self.error:.2g}"


def combine_estimates(values, errors) -> tuple[float, float, float]:
    """Inverse-variance combination of independent estimates.

    Args:
        values: estimates, length k.
        errors: their standard errors, length k (all > 0, or one estimate).

    Returns:
        ``(value, error, chi2_dof)``; ``chi2_dof`` is nan for k = 1.
    """
    v = torch.as_tensor(values, dtype=torch.float64)
    e = torch.as_tensor(errors, dtype=torch.float64)
    if v.ndim != 1 or v.shape != e.shape or v.numel() == 0:
        raise ValueError(f"values, errors: expected equal non-empty 1D, got {v.shape}, {e.shape}")
    if v.numel() == 1:
        return float(v[0]), float(e[0]), math.nan
    if bool((e <= 0).any()):
        raise ValueError("errors: inverse-variance combination needs all errors > 0")
    wt = 1.0 / e.square()
    mean = float((wt * v).sum() / wt.sum())
    err = float(wt.sum().rsqrt())
    chi2 = float((wt * (v - mean).square()).sum())
    return mean, err, chi2 / (v.numel() - 1)


def integrate(
    f: Integrand,
    proposal,
    n: int,
    *,
    n_iter: int = 1,
    batch_size: int = 100_000,
    generator: torch.Generator | None = None,
    overweight: float | None = 1e-3,
    check: bool = True,
    n_uniform: int | None = None,
    progress: bool = False,
) -> IntegrationResult:
    """Estimate ``∫_{[0,1]^d} f(x) dx`` by importance sampling from a fixed proposal.

    Args:
        f: integrand, ``f(x)`` with ``x`` of shape (n, d) returning shape (n,)
            (signed allowed: the proposal should follow |f|).
        proposal: an object with ``dims`` and ``sample(n, *, generator) -> (x, log_q)``,
            e.g. :class:`forward.nis.VegasMap` or :class:`forward.nis.MixtureProposal`.
        n: integrand calls per iteration.
        n_iter: iterations, combined with inverse-variance weights.
        batch_size: points evaluated at once (bounds memory).
        generator: random generator; None uses torch's global one.
        overweight: overweight fraction for the unweighting efficiency; None skips it.
        check: run :func:`forward.nis.check_weights` on the pooled sample and warn
            (:class:`forward.nis.NISWarning`) if it looks unreliable.
        n_uniform: extra integrand calls at uniform points of the cube for the
            independent lost-region check :func:`forward.nis.uniform_check` (drawn after
            the proposal's points, not part of the estimate nor of ``n_eval``); None:
            ``min(100 000, n * n_iter // 20)`` when ``check`` is True, else 0.
        progress: show a tqdm progress bar.

    Returns:
        An :class:`IntegrationResult`.
    """
    check_count("n", n, 2)
    check_count("n_iter", n_iter)
    check_count("batch_size", batch_size)
    if n_uniform is None:
        n_uniform = min(100_000, n * n_iter // 20) if check else 0
    check_count("n_uniform", n_uniform, 0)
    has_components = hasattr(proposal, "sample_components")
    values, errors, all_w = [], [], []
    comp = {"f": [], "lqf": [], "lqd": [], "def": []}
    bar = progress_bar(total=n * n_iter, progress=progress, desc="integrate", unit="eval")
    for _ in range(n_iter):
        ws = []
        done = 0
        while done < n:
            m = min(batch_size, n - done)
            if has_components:
                s = proposal.sample_components(m, generator=generator)
                x, log_q = s.x, s.log_q
            else:
                x, log_q = proposal.sample(m, generator=generator)
            fx = evaluate(f, x)
            ws.append(fx * torch.exp(-log_q.to(torch.float64)))
            if has_components and check:
                comp["f"].append(fx)
                comp["lqf"].append(s.log_q_flow)
                comp["lqd"].append(s.log_q_defensive)
                comp["def"].append(s.defensive)
            done += m
            bar.update(m)
        w = torch.cat(ws)
        values.append(float(w.mean()))
        errors.append(float(w.std() / math.sqrt(n)))
        all_w.append(w)
    bar.close()
    value, error, chi2_dof = combine_estimates(values, errors)
    w = torch.cat(all_w)
    a = w.abs()
    mean_abs = float(a.mean())
    rel_std = float(w.std()) / mean_abs if mean_abs > 0 else math.nan
    eff = None
    if overweight is not None and mean_abs > 0:
        eff = unweighting_efficiency(w, overweight)
    diag = None
    if check:
        f_u = None
        if n_uniform > 0:
            f_u = torch.cat([
                evaluate(f, torch.rand(m, proposal.dims, generator=generator, dtype=x.dtype,
                                       device=x.device))
                for m in [batch_size] * (n_uniform // batch_size) + [n_uniform % batch_size]
                if m > 0
            ])
        comps = {}
        if has_components:
            comps = {"f": torch.cat(comp["f"]), "log_q_flow": torch.cat(comp["lqf"]),
                     "log_q_defensive": torch.cat(comp["lqd"]),
                     "defensive": torch.cat(comp["def"])}
        diag = check_weights(w, f_uniform=f_u, **comps)
    s1, s2 = float(a.sum()), float((a * a).sum())
    ess = s1 * s1 / s2 / a.numel() if s2 > 0 else math.nan
    return IntegrationResult(
        value=value,
        error=error,
        n_eval=n * n_iter,
        rel_std=rel_std,
        chi2_dof=chi2_dof,
        n_iter=n_iter,
        ess_fraction=ess,
        unweighting_efficiency=eff,
        overweight=1e-3 if overweight is None else float(overweight),
        diagnostics=diag,
    )
