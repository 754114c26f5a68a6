"""Calibration of posteriors: coverage over pseudo-experiments, SBC ranks, TARP, a plot.

The inference under test is any callable ``infer(data, seed) -> draws`` returning
posterior draws as a mapping name -> tensor of shape (s,) (or an
``arviz.InferenceData``, whose chains are pooled), so NUTS, SVI, NPE or an exact
sampler can all be checked the same way. Pseudo-data come from
``simulate(theta, generator) -> data`` with ``theta`` a mapping name -> tensor of
shape (); ``data`` can be anything ``infer`` accepts.

* :func:`coverage`: frequency with which central credible intervals at several levels
  contain a fixed θ_true, with binomial errors.
* :func:`simulation_based_calibration`: θ from the prior, ranks of θ among posterior
  draws (sbi's ``run_sbc``, uniform for a calibrated posterior; KS test, optional C2ST
  via ``check_sbc``) and TARP expected coverage (sbi's ``run_tarp`` / ``check_tarp``).
* :func:`plot_calibration`: rank histograms, TARP and coverage curves in one figure
  (a PNG file and/or the caller's ``ax=``; :mod:`forward.plotting`);
  :meth:`SBCResult.rank_hist` gives the rank histograms as a ``hist.Hist``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch

from forward._validation import check_finite, check_memory
from forward.plotting import plot_axes, save_png
from forward.seeding import seeded_init
from invsim.histograms import bin_counts, to_hist

__all__ = [
    "CoverageResult",
    "SBCResult",
    "coverage",
    "plot_calibration",
    "posterior_draws",
    "sample_priors",
    "simulation_based_calibration",
]


def posterior_draws(result, names: Sequence[str]) -> dict[str, torch.Tensor]:
    """Normalise an inference result to name -> draws of shape (s,), float64 on CPU.

    Args:
        result: mapping name -> tensor/array of draws (any shape, flattened), or an
            ``arviz.InferenceData`` (posterior group, chains pooled).
        names: the parameters expected.

    Raises:
        ValueError: a missing parameter, no draws, unequal draw counts or NaN/inf.
    """
    if hasattr(result, "posterior") and hasattr(result, "groups"):
        result = {n: result.posterior[n].values for n in result.posterior.data_vars}
    if not isinstance(result, Mapping):
        raise TypeError(f"infer(...): expected a mapping name -> draws or InferenceData, got "
                        f"{type(result).__name__}")
    missing = [n for n in names if n not in result]
    if missing:
        raise ValueError(f"infer(...): draws for {missing} missing; got {sorted(result)}")
    out = {n: torch.as_tensor(result[n]).detach().to("cpu", torch.float64).reshape(-1)
           for n in names}
    sizes = {v.numel() for v in out.values()}
    if len(sizes) != 1 or 0 in sizes:
        raise ValueError(f"infer(...): expected the same positive number of draws per "
                         f"parameter, got { {n: v.numel() for n, v in out.items()} }")
    for n, v in out.items():
        check_finite(f"infer(...)[{n!r}]", v)
    return out


def _check_levels(levels) -> torch.Tensor:
    lv = torch.as_tensor(levels, dtype=torch.float64).reshape(-1)
    if lv.numel() == 0 or not bool(((lv > 0) & (lv < 1)).all()):
        raise ValueError(f"levels: expected credibility levels in (0, 1), got {levels!r}")
    return lv


def _check_count(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")
    return value


def _check_callables(**fns) -> None:
    for name, fn in fns.items():
        if not callable(fn):
            raise TypeError(f"{name}: expected a callable, got {type(fn).__name__}")


def _check_priors(priors) -> None:
    """Priors: a non-empty mapping name -> torch distribution."""
    if not isinstance(priors, Mapping) or not priors:
        raise TypeError(f"priors: expected a non-empty mapping name -> distribution, got "
                        f"{priors!r}")
    for name, p in priors.items():
        if not isinstance(p, torch.distributions.Distribution):
            raise TypeError(f"priors[{name!r}]: expected a torch.distributions.Distribution, "
                            f"got {type(p).__name__}")


@dataclass(frozen=True)
class CoverageResult:
    """How often central credible intervals contained θ_true.

    Attributes:
        names: parameter names.
        levels: nominal credibility levels, shape (L,).
        counts: name -> number of experiments whose interval contained θ_true, shape (L,).
        n_experiments: number of pseudo-experiments.
        theta_true: name -> true value.
    """

    names: tuple[str, ...]
    levels: torch.Tensor
    counts: dict
    n_experiments: int
    theta_true: dict

    def fraction(self, name: str) -> torch.Tensor:
        """Observed coverage of ``name`` per level, shape (L,)."""
        return self.counts[name].double() / self.n_experiments

    def error(self, name: str) -> torch.Tensor:
        """Binomial standard error of :meth:`fraction`, sqrt(f (1 - f) / n), shape (L,)."""
        f = self.fraction(name)
        return (f * (1 - f) / self.n_experiments).sqrt()

    def pull(self, name: str) -> torch.Tensor:
        """(fraction - level) / sqrt(level (1 - level) / n): ~N(0, 1) if calibrated."""
        q = self.levels
        return (self.fraction(name) - q) / (q * (1 - q) / self.n_experiments).sqrt()

    def consistent(self, n_sigma: float = 3.0) -> bool:
        """True if every parameter and level lies within ``n_sigma`` binomial σ of nominal."""
        return all(bool((self.pull(n).abs() < n_sigma).all()) for n in self.names)


def coverage(
    simulate: Callable,
    infer: Callable,
    theta_true: Mapping[str, float],
    *,
    n_experiments: int = 100,
    levels: Sequence[float] = (0.68, 0.95),
    seed: int = 0,
    progress: bool = False,
) -> CoverageResult:
    """Coverage of central credible intervals over pseudo-experiments at θ_true.

    Experiment k draws ``data = simulate(theta_true, generator)`` from a generator seeded
    with ``seed + k`` and calls ``infer(data, seed + k)``; the central interval at level
    q runs between the (1 - q)/2 and (1 + q)/2 quantiles of the draws.

    Args:
        simulate: ``simulate(theta, generator) -> data`` (theta: name -> tensor shape ()).
        infer: ``infer(data, seed) -> draws`` (see :func:`posterior_draws`).
        theta_true: name -> true parameter value.
        n_experiments: number of pseudo-experiments.
        levels: credibility levels in (0, 1).
        seed: base seed.
        progress: show a tqdm bar.

    Returns:
        :class:`CoverageResult` (counts with binomial errors).
    """
    if not isinstance(theta_true, Mapping) or not theta_true:
        raise TypeError(f"theta_true: expected a non-empty mapping name -> value, got "
                        f"{theta_true!r}")
    _check_callables(simulate=simulate, infer=infer)
    _check_count("n_experiments", n_experiments, 1)
    _check_count("seed", seed, 0)
    lv = _check_levels(levels)
    names = tuple(theta_true)
    truth = {n: torch.tensor(float(v), dtype=torch.float64) for n, v in theta_true.items()}
    for n, v in truth.items():
        check_finite(f"theta_true[{n!r}]", v)
    lo_q, hi_q = (1 - lv) / 2, (1 + lv) / 2
    counts = {n: torch.zeros(len(lv), dtype=torch.long) for n in names}
    it = range(n_experiments)
    if progress:
        from forward.progress import progress_bar

        it = progress_bar(it, desc="coverage", unit="exp")
    for k in it:
        gen = torch.Generator().manual_seed(seed + k)
        draws = posterior_draws(infer(simulate(dict(truth), gen), seed + k), names)
        for n in names:
            lo, hi = torch.quantile(draws[n], lo_q), torch.quantile(draws[n], hi_q)
            counts[n] += ((lo <= truth[n]) & (truth[n] <= hi)).long()
    return CoverageResult(names, lv, counts, n_experiments,
                          {n: float(v) for n, v in truth.items()})


@dataclass(frozen=True)
class SBCResult:
    """Simulation-based calibration and TARP results.

    Attributes:
        names: parameter names (columns of ``thetas`` and ``ranks``).
        thetas: prior draws, shape (N, d).
        ranks: rank of θ among the posterior draws per simulation and parameter, shape
            (N, d), integers in [0, num_posterior_samples].
        num_posterior_samples: draws per posterior used for the ranks.
        ks_pvals: KS p-values of rank uniformity, shape (d,).
        c2st_ranks, c2st_dap: sbi's C2ST accuracies (ranks vs uniform, prior vs
            data-averaged posterior; 0.5 is ideal), or None when not run.
        tarp_ecp, tarp_alpha: TARP expected coverage vs credibility, shape (B + 1,).
        tarp_atc: TARP area to curve (≈ 0 if calibrated, > 0 too wide, < 0 too narrow).
        tarp_ks_pval: KS p-value between ECP and α.
    """

    names: tuple[str, ...]
    thetas: torch.Tensor
    ranks: torch.Tensor
    num_posterior_samples: int
    ks_pvals: torch.Tensor
    c2st_ranks: torch.Tensor | None
    c2st_dap: torch.Tensor | None
    tarp_ecp: torch.Tensor
    tarp_alpha: torch.Tensor
    tarp_atc: float
    tarp_ks_pval: float

    def rank_hist(self, bins: int = 10):
        """SBC rank histograms of all parameters as one ``hist.Hist``.

        The ranks (integers in [0, num_posterior_samples]) are binned on ``bins`` equal
        bins of [0, num_posterior_samples + 1], as :func:`plot_calibration` draws them.

        Args:
            bins: number of bins, at least 2.

        Returns:
            ``hist.Hist`` with a ``StrCategory`` axis ``"parameter"`` (``names``) and a
            ``Variable`` axis ``"rank"``, ``Weight()`` storage: simulations per bin and
            their variances (= counts).
        """
        edges, counts, var = self._rank_counts(bins)
        return to_hist(edges, counts, var, name="rank", value_label="simulations",
                       categories=self.names)

    def _rank_counts(self, bins: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Edges (bins + 1,), counts and variances (d, bins) of the ranks."""
        _check_count("bins", bins, 2)
        edges = torch.linspace(0.0, self.num_posterior_samples + 1, bins + 1,
                               dtype=torch.float64)
        binned = [bin_counts(self.ranks[:, i], edges, name="ranks")
                  for i in range(len(self.names))]
        return (edges, torch.stack([c for c, _ in binned]),
                torch.stack([v for _, v in binned]))


class _DrawsPosterior:
    """Duck-typed sbi posterior serving precomputed draws; x holds the simulation index."""

    def __init__(self, draws: torch.Tensor):
        self.draws = draws  # (N, S, d)

    def sample_batched(self, sample_shape, x, show_progress_bars=False, **_):
        s = int(torch.Size(sample_shape).numel())
        idx = x[:, 0].long()
        return self.draws[idx, :s].permute(1, 0, 2).reshape(*sample_shape, len(idx), -1)

    def sample(self, sample_shape, x=None, show_progress_bars=False, **_):
        return self.sample_batched(sample_shape, x.reshape(1, -1))[:, 0]


def sample_priors(priors: Mapping, n: int, generator: torch.Generator) -> torch.Tensor:
    """n draws from independent univariate priors, shape (n, d) float64 on CPU.

    Uses the inverse CDF of uniforms from ``generator``; priors without ``icdf`` sample
    under :func:`torch.random.fork_rng` seeded from ``generator``.
    """
    cols = []
    for name, p in priors.items():
        u = torch.rand(n, dtype=torch.float64, generator=generator)
        try:
            cols.append(p.icdf(u.to(p.mean.dtype if hasattr(p, "mean") else u.dtype)))
        except NotImplementedError:
            with seeded_init(generator):
                cols.append(p.sample((n,)))
        if cols[-1].shape != (n,):
            raise ValueError(f"priors[{name!r}]: expected a univariate distribution")
    return torch.stack([c.to("cpu", torch.float64) for c in cols], dim=-1)


def simulation_based_calibration(
    priors: Mapping[str, torch.distributions.Distribution],
    simulate: Callable,
    infer: Callable,
    *,
    n_simulations: int = 200,
    num_posterior_samples: int = 100,
    seed: int = 0,
    c2st: bool = False,
    progress: bool = False,
) -> SBCResult:
    """SBC ranks and TARP coverage of ``infer`` under ``priors`` (sbi's diagnostics).

    θ_k is drawn from the priors (inverse CDF of a generator seeded with ``seed``),
    ``data_k = simulate(θ_k, generator)`` and ``infer(data_k, seed + 1 + k)`` must return
    at least ``num_posterior_samples`` draws (the first ones are used; they should be
    independent, e.g. thinned MCMC). Ranks come from ``sbi.diagnostics.run_sbc``, TARP
    from ``run_tarp`` with reference points drawn from the same generator.

    Args:
        priors: name -> univariate distribution (the prior ``infer`` assumes).
        simulate: ``simulate(theta, generator) -> data``.
        infer: ``infer(data, seed) -> draws`` (see :func:`posterior_draws`).
        n_simulations: number of (θ, data) pairs N.
        num_posterior_samples: draws per posterior used for ranks and TARP.
        seed: base seed.
        c2st: also run sbi's classifier two-sample tests (``check_sbc``; slow).
        progress: show a tqdm bar over the simulations.

    Returns:
        :class:`SBCResult`.
    """
    from sbi.diagnostics import check_sbc, check_tarp, run_sbc, run_tarp
    from sbi.diagnostics.sbc import check_uniformity_frequentist

    _check_priors(priors)
    _check_callables(simulate=simulate, infer=infer)
    _check_count("n_simulations", n_simulations, 10)
    check_memory("n_simulations", n_simulations, 8 * (len(priors) + num_posterior_samples),
                 what="simulations")
    _check_count("num_posterior_samples", num_posterior_samples, 2)
    _check_count("seed", seed, 0)
    names = tuple(priors)
    gen = torch.Generator().manual_seed(seed)
    thetas = sample_priors(priors, n_simulations, gen)
    draws = []
    it = range(n_simulations)
    if progress:
        from forward.progress import progress_bar

        it = progress_bar(it, desc="SBC", unit="sim")
    for k in it:
        theta = {n: thetas[k, i] for i, n in enumerate(names)}
        d = posterior_draws(infer(simulate(theta, gen), seed + 1 + k), names)
        s = next(iter(d.values())).numel()
        if s < num_posterior_samples:
            raise ValueError(f"infer(...): returned {s} draws, fewer than "
                             f"num_posterior_samples={num_posterior_samples}")
        draws.append(torch.stack([d[n][:num_posterior_samples] for n in names], dim=-1))
    post = _DrawsPosterior(torch.stack(draws).float())
    xs = torch.arange(n_simulations, dtype=torch.float32)[:, None]
    th32 = thetas.float()
    ranks, dap = run_sbc(th32, xs, post, num_posterior_samples=num_posterior_samples,
                         show_progress_bar=False)
    if c2st:
        checks = check_sbc(ranks, th32, dap, num_posterior_samples=num_posterior_samples)
        ks, c_r, c_d = checks["ks_pvals"], checks["c2st_ranks"], checks["c2st_dap"]
    else:
        ks, c_r, c_d = check_uniformity_frequentist(ranks, num_posterior_samples), None, None
    lo, hi = th32.min(0).values, th32.max(0).values
    refs = lo + (hi - lo) * torch.rand(th32.shape, generator=gen, dtype=torch.float64).float()
    ecp, alpha = run_tarp(th32, xs, post, references=refs,
                          num_posterior_samples=num_posterior_samples, show_progress_bar=False)
    atc, ks_tarp = check_tarp(ecp, alpha)
    return SBCResult(names, thetas, ranks.long(), num_posterior_samples,
                     torch.as_tensor(ks, dtype=torch.float64), c_r, c_d, ecp, alpha,
                     float(atc), float(ks_tarp))


def plot_calibration(
    path: str | os.PathLike | None = None,
    *,
    sbc: SBCResult | None = None,
    coverage_result: CoverageResult | None = None,
    bins: int = 10,
    overwrite: bool = False,
    ax=None,
):
    """Calibration figure: SBC rank histograms, TARP and coverage curves.

    Rank histograms (:meth:`SBCResult.rank_hist`) show a band of ±3 binomial σ around
    the uniform expectation; the TARP and coverage panels show the diagonal a calibrated
    posterior follows (coverage points with binomial error bars). Panels, in order: one
    rank histogram per parameter and TARP (with ``sbc``), coverage (with
    ``coverage_result``).

    Args:
        path: PNG file to write, or None to write nothing (then ``ax`` or the returned
            figure is the output).
        sbc: result of :func:`simulation_based_calibration`.
        coverage_result: result of :func:`coverage`.
        bins: rank histogram bins.
        overwrite: replace an existing file.
        ax: None to make a figure (mplhep style when installed), or the Axes to draw
            into, one per panel (a single Axes when there is one panel).

    Returns:
        The path written, or the ``matplotlib.figure.Figure`` when ``path`` is None.
    """
    if sbc is None and coverage_result is None:
        raise ValueError("plot_calibration: give sbc and/or coverage_result")
    _check_count("bins", bins, 2)
    panels = (len(sbc.names) + 1 if sbc is not None else 0) + (coverage_result is not None)
    with plot_axes(ax, panels, figsize=(3.2 * panels, 3.0)) as (fig, axes, _):
        k = 0
        if sbc is not None:
            edges, counts, _ = sbc._rank_counts(bins)
            n = sbc.ranks.shape[0]
            p = 1.0 / bins
            band = 3 * math.sqrt(n * p * (1 - p))
            for i, name in enumerate(sbc.names):
                a = axes[k]
                a.stairs(counts[i].numpy(), edges.numpy(), color="C0", alpha=0.8, fill=True)
                a.axhspan(n * p - band, n * p + band, color="grey", alpha=0.25)
                a.set(title=f"SBC ranks: {name} (KS p={float(sbc.ks_pvals[i]):.2g})",
                      xlabel="rank", ylabel="simulations")
                k += 1
            a = axes[k]
            a.plot(sbc.tarp_alpha.numpy(), sbc.tarp_ecp.numpy(), label="TARP")
            a.plot([0, 1], [0, 1], "k--", lw=0.8)
            a.set(title=f"TARP (ATC={sbc.tarp_atc:.2g})", xlabel="credibility",
                  ylabel="expected coverage")
            k += 1
        if coverage_result is not None:
            a = axes[k]
            q = coverage_result.levels.numpy()
            for name in coverage_result.names:
                a.errorbar(q, coverage_result.fraction(name).numpy(),
                           yerr=coverage_result.error(name).numpy(), fmt="o", label=name)
            a.plot([0, 1], [0, 1], "k--", lw=0.8)
            a.set(title=f"coverage ({coverage_result.n_experiments} experiments)",
                  xlabel="credibility level", ylabel="coverage")
            a.legend()
        if path is None:
            return fig
        return save_png(fig, path, overwrite=overwrite, dpi=100)
