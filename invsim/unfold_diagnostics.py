r"""Calibration diagnostics of an unfolded (posterior) sample, and their plots.

* :func:`calibration`: per observable, the rank of the true value among the posterior
  samples of its reco event (uniform on {0, …, n} for a calibrated posterior), a
  Kolmogorov–Smirnov test of the randomised ranks
  :math:`u = (\text{rank} + V)/(n + 1)`, :math:`V \sim U(0, 1)` (exactly U(0, 1) then),
  and the coverage of central 68 % / 95 % credible intervals.
* :func:`classifier_two_sample_test`: an MLP trained to tell two samples apart (e.g.
  unfolded vs true hard events, optionally with their reco observables appended so that
  the test is sensitive to the conditional distributions); its AUC on a held-out half,
  with the Hanley–McNeil standard error and the standard deviation under the null
  (:math:`\sqrt{(n_a + n_b + 1)/(12 n_a n_b)}`). Indistinguishable samples give
  AUC ≈ 0.5.
* :func:`histogram_ratio`: binned counts of two samples, their ratio and a χ² with
  errors from the sums of squared weights.
* :func:`plot_rank_histograms`, :func:`plot_coverage`, :func:`plot_histogram_ratios`:
  figures (mplhep style when installed) drawn into new figures or the caller's ``ax=``,
  and PNG files (see :mod:`forward.plotting`).

Binned results convert to ``hist.Hist`` (:meth:`HistogramRatio.to_hist`,
:meth:`Calibration.rank_hist`; :mod:`invsim.histograms`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from zuko.nn import MLP

from forward._validation import as_tensor, check_finite
from forward.plotting import plot_axes, save_png
from forward.seeding import seeded_init
from invsim.flows.preprocessing import Standardize
from invsim.flows.training import TrainConfig, TrainResult, fit_module, split_indices
from invsim.histograms import axis_label, bin_counts, to_hist

__all__ = [
    "Calibration",
    "HistogramRatio",
    "TwoSampleResult",
    "auc_score",
    "calibration",
    "classifier_two_sample_test",
    "histogram_ratio",
    "plot_coverage",
    "plot_histogram_ratios",
    "plot_rank_histograms",
    "truth_ranks",
]


# ------------------------------------------------------------------------------ ranks
def truth_ranks(
    samples, truth, *, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank of each true value among its posterior samples, and randomised PIT values.

    Args:
        samples: posterior samples, shape (m, n): n samples for each of m events.
        truth: true values, shape (m,).
        generator: CPU generator for the randomisation of u (None: global RNG).

    Returns:
        (ranks, u): ranks = #(samples < truth), int64 shape (m,) in {0, …, n}; and
        u = (rank + V)/(n + 1), V ~ U(0, 1), float64 shape (m,), exactly U(0, 1) for a
        calibrated posterior.
    """
    s = as_tensor("samples", samples).detach().to("cpu", torch.float64)
    t = as_tensor("truth", truth).detach().to("cpu", torch.float64)
    if s.ndim != 2:
        raise ValueError(f"samples: expected shape (m, n), got {tuple(s.shape)}")
    if t.shape != (s.shape[0],):
        raise ValueError(f"truth: expected shape ({s.shape[0]},) to match samples, "
                         f"got {tuple(t.shape)}")
    check_finite("samples", s)
    check_finite("truth", t)
    ranks = (s < t.unsqueeze(-1)).sum(-1)
    v = torch.rand(t.shape, generator=generator, dtype=torch.float64)
    return ranks, (ranks + v) / (s.shape[1] + 1)


@dataclass
class Calibration:
    """Per-observable calibration of a posterior sample.

    Attributes:
        names: observable names, in order (k of them).
        n_samples: posterior samples per event n.
        ranks: rank of the truth among the samples, int64 shape (m, k).
        u: randomised PIT values (rank + V)/(n + 1), float64 shape (m, k).
        ks_pvalue: per name, the Kolmogorov–Smirnov p-value of u against U(0, 1).
        levels: credibility levels of the central intervals, e.g. (0.68, 0.95).
        coverage: per name, the fraction of events whose truth lies in the central
            credible interval of each level, i.e. |u - ½| <= level/2 (exactly the level
            in expectation when calibrated; the sample-quantile interval for large n),
            tuple aligned with ``levels``.
        coverage_error: binomial standard deviation of that fraction if calibrated,
            sqrt(level (1 - level) / m), aligned with ``levels``.
    """

    names: tuple[str, ...]
    n_samples: int
    ranks: torch.Tensor
    u: torch.Tensor
    ks_pvalue: dict[str, float]
    levels: tuple[float, ...]
    coverage: dict[str, tuple[float, ...]]
    coverage_error: tuple[float, ...] = field(default_factory=tuple)

    def rank_hist(self, bins: int = 20):
        """Histograms of the PIT values u per observable, as one ``hist.Hist``.

        Args:
            bins: number of equal bins in [0, 1].

        Returns:
            ``hist.Hist`` with a ``StrCategory`` axis ``"observable"`` (``names``) and a
            ``Variable`` axis ``"u"`` (dimensionless), ``Weight()`` storage: counts and
            their variances (Σ w² = counts), as :func:`invsim.histograms.bin_counts`.
        """
        edges, counts, var = self._rank_counts(bins)
        return to_hist(edges, counts, var, name="u", label="normalised rank of truth",
                       categories=self.names, category_name="observable")

    def _rank_counts(self, bins: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Edges (bins + 1,), counts and variances (k, bins) of the PIT values."""
        edges = _unit_edges(bins)
        counts, var = zip(*(bin_counts(self.u[:, j], edges, name="u")
                            for j in range(len(self.names))), strict=True)
        return edges, torch.stack(counts), torch.stack(var)

    def summary(self) -> str:
        """One line per observable: KS p-value and coverages."""
        lines = []
        for name in self.names:
            cov = ", ".join(f"{lv:.0%}: {c:.3f}±{e:.3f}" for lv, c, e in
                            zip(self.levels, self.coverage[name], self.coverage_error, strict=True))
            lines.append(f"{name}: KS p = {self.ks_pvalue[name]:.3f}; coverage {cov}")
        return "\n".join(lines)


def calibration(
    samples: Mapping[str, torch.Tensor],
    truth: Mapping[str, torch.Tensor],
    *,
    levels: Sequence[float] = (0.68, 0.95),
    seed: int = 0,
) -> Calibration:
    """Truth ranks, KS tests and central-interval coverage per observable.

    Args:
        samples: name -> posterior samples of that observable, shape (m, n) (e.g.
            ``process.observables(unfolder.sample(x_reco, n))[name].reshape(m, n)``).
        truth: name -> true values, shape (m,); the same names as ``samples``.
        levels: credibility levels in (0, 1).
        seed: seeds the randomisation of the PIT values.

    Returns:
        A :class:`Calibration`.
    """
    from scipy.stats import kstest

    if not isinstance(samples, Mapping) or not isinstance(truth, Mapping) or not samples:
        raise TypeError("samples, truth: expected non-empty mappings name -> tensor")
    if set(samples) != set(truth):
        raise ValueError(f"samples, truth: expected the same names, got {sorted(samples)} "
                         f"and {sorted(truth)}")
    levels = tuple(float(lv) for lv in levels)
    if not levels or not all(0 < lv < 1 for lv in levels):
        raise ValueError(f"levels: expected values in (0, 1), got {levels}")
    g = torch.Generator().manual_seed(int(seed))
    names = tuple(samples)
    ranks, us, ks, cov = [], [], {}, {}
    n = None
    for name in names:
        r, u = truth_ranks(samples[name], truth[name], generator=g)
        s = torch.as_tensor(samples[name]).detach().to("cpu", torch.float64)
        if n is not None and s.shape[1] != n:
            raise ValueError(f"samples[{name!r}]: expected {n} samples per event, "
                             f"got {s.shape[1]}")
        n = s.shape[1]
        if ranks and r.shape != ranks[0].shape:
            raise ValueError(f"samples[{name!r}]: expected {ranks[0].shape[0]} events, "
                             f"got {r.shape[0]}")
        ranks.append(r)
        us.append(u)
        ks[name] = float(kstest(u.numpy(), "uniform").pvalue)
        dev = (u - 0.5).abs()
        cov[name] = tuple(float((dev <= lv / 2).double().mean()) for lv in levels)
    m = ranks[0].shape[0]
    err = tuple(math.sqrt(lv * (1 - lv) / m) for lv in levels)
    return Calibration(names, int(n), torch.stack(ranks, -1), torch.stack(us, -1), ks,
                       levels, cov, err)


# ------------------------------------------------------------------ two-sample test
def auc_score(scores_a, scores_b) -> tuple[float, float]:
    """Area under the ROC curve for telling ``a`` (positives) from ``b`` by a score.

    AUC = P(score_a > score_b) + ½ P(tie) (the Mann–Whitney statistic), with the
    Hanley–McNeil standard error.

    Args:
        scores_a: scores of the positive sample, shape (n_a,).
        scores_b: scores of the negative sample, shape (n_b,).

    Returns:
        (auc, error).
    """
    from scipy.stats import rankdata

    a = as_tensor("scores_a", scores_a).detach().to("cpu", torch.float64).reshape(-1)
    b = as_tensor("scores_b", scores_b).detach().to("cpu", torch.float64).reshape(-1)
    if a.numel() == 0 or b.numel() == 0:
        raise ValueError("scores_a, scores_b: expected non-empty samples")
    check_finite("scores_a", a)
    check_finite("scores_b", b)
    na, nb = a.numel(), b.numel()
    r = torch.as_tensor(rankdata(torch.cat([a, b]).numpy()))
    auc = float((r[:na].sum() - na * (na + 1) / 2) / (na * nb))
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    var = (auc * (1 - auc) + (na - 1) * (q1 - auc**2) + (nb - 1) * (q2 - auc**2)) / (na * nb)
    return auc, math.sqrt(max(var, 0.0))


@dataclass
class TwoSampleResult:
    """Outcome of :func:`classifier_two_sample_test`.

    Attributes:
        auc: AUC of the classifier (sample a vs b) on the held-out events.
        error: its Hanley–McNeil standard error.
        null_error: standard deviation of the AUC if the samples are identically
            distributed, sqrt((n_a + n_b + 1) / (12 n_a n_b)).
        n_test: held-out events (n_a, n_b) the AUC was computed on.
        train: the classifier's training history.
    """

    auc: float
    error: float
    null_error: float
    n_test: tuple[int, int]
    train: TrainResult

    @property
    def z_score(self) -> float:
        """(AUC - 0.5) / null_error: the significance of a difference."""
        return (self.auc - 0.5) / self.null_error


class _Classifier(nn.Module):
    def __init__(self, d: int, hidden: tuple[int, ...], seed: int):
        super().__init__()
        with seeded_init(int(seed)):
            self.net = MLP(d, 1, hidden).to(torch.float64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


def _two_sample_input(name: str, x) -> torch.Tensor:
    x = as_tensor(name, x).detach().to("cpu", torch.float64)
    if x.ndim == 1:
        x = x.unsqueeze(-1)
    if x.ndim != 2 or x.shape[0] < 4:
        raise ValueError(f"{name}: expected shape (n >= 4, d), got {tuple(x.shape)}")
    check_finite(name, x)
    return x


def classifier_two_sample_test(
    a,
    b,
    *,
    hidden_features: tuple[int, ...] = (64, 64),
    config: TrainConfig | None = None,
    test_fraction: float = 0.5,
    seed: int = 0,
    progress: bool = False,
) -> TwoSampleResult:
    """Classifier two-sample test: AUC of an MLP trained to separate ``a`` from ``b``.

    Each sample is split (seeded) into a training part and a held-out part of share
    ``test_fraction``; features are standardised with the training part's mean and
    standard deviation; the MLP is trained with the class-balanced binary cross-entropy
    (its own validation split for early stopping comes from ``config``) and the AUC is
    computed on the held-out parts.

    Args:
        a: first sample (e.g. unfolded hard observables), shape (n_a, d) or (n_a,).
        b: second sample (e.g. true hard observables), shape (n_b, d) or (n_b,).
        hidden_features: MLP widths.
        config: training settings (default: 30 epochs, batch 512, lr 2e-3, patience 5).
        test_fraction: held-out share in (0, 1).
        seed: seeds the splits, the weights and the batch order.
        progress: show a tqdm bar.

    Returns:
        A :class:`TwoSampleResult`.
    """
    a = _two_sample_input("a", a)
    b = _two_sample_input("b", b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a, b: expected the same number of features, got {a.shape[1]} "
                         f"and {b.shape[1]}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction: expected a value in (0, 1), got {test_fraction}")
    config = config or TrainConfig(epochs=30, batch_size=512, lr=2e-3, patience=5)
    tr_a, te_a = split_indices(a.shape[0], test_fraction, seed)
    tr_b, te_b = split_indices(b.shape[0], test_fraction, seed + 1)
    x_train = torch.cat([a[tr_a], b[tr_b]])
    y_train = torch.cat([torch.ones(len(tr_a)), torch.zeros(len(tr_b))]).double()
    std = Standardize(a.shape[1]).fit(x_train)
    # class-balanced weights: each class carries half of the loss
    w_train = torch.where(y_train > 0, 0.5 / len(tr_a), 0.5 / len(tr_b)) * len(y_train)
    clf = _Classifier(a.shape[1], tuple(hidden_features), seed)

    def loss_fn(batch):
        return F.binary_cross_entropy_with_logits(clf(batch[0]), batch[1], weight=batch[2])

    result = fit_module(clf, loss_fn, [std(x_train), y_train, w_train], config=config,
                        seed=seed, progress=progress, desc="two-sample classifier")
    with torch.no_grad():
        sa, sb = clf(std(a[te_a])), clf(std(b[te_b]))
    auc, err = auc_score(sa, sb)
    na, nb = len(te_a), len(te_b)
    null = math.sqrt((na + nb + 1) / (12 * na * nb))
    return TwoSampleResult(auc, err, null, (na, nb), result)


# ---------------------------------------------------------------------- histograms
@dataclass
class HistogramRatio:
    """Two binned samples and their ratio.

    Attributes:
        edges: bin edges, shape (bins + 1,).
        counts_a, counts_b: (weighted, possibly normalised) counts per bin, shape (bins,).
        error_a, error_b: their errors sqrt(Σ w²), shape (bins,).
        ratio: counts_a / counts_b (NaN where counts_b = 0), shape (bins,).
        ratio_error: its error from both samples' errors, shape (bins,).
        chi2: Σ (a - b)² / (error_a² + error_b²) over bins with a non-zero error.
        ndof: number of those bins (minus 1 when normalised).
    """

    edges: torch.Tensor
    counts_a: torch.Tensor
    error_a: torch.Tensor
    counts_b: torch.Tensor
    error_b: torch.Tensor
    ratio: torch.Tensor
    ratio_error: torch.Tensor
    chi2: float
    ndof: int

    def to_hist(self, sample: str = "a", *, name: str = "x", label: str | None = None,
                unit: str | None = None):
        """One of the binned results as a ``hist.Hist`` with ``Weight()`` storage.

        Args:
            sample: ``"a"`` (counts_a, variances error_a²), ``"b"`` (counts_b, error_b²)
                or ``"ratio"`` (ratio, ratio_error²; NaN where undefined).
            name: name of the observable axis.
            label: its label without unit; default ``name``.
            unit: unit of the observable (e.g. ``"GeV"``), shown as ``"label [unit]"``.

        Returns:
            ``hist.Hist`` with one ``Variable`` axis on ``edges`` (no flow bins).

        Raises:
            ValueError: ``sample`` is not one of the three.
        """
        pairs = {"a": (self.counts_a, self.error_a), "b": (self.counts_b, self.error_b),
                 "ratio": (self.ratio, self.ratio_error)}
        if sample not in pairs:
            raise ValueError(f"sample: expected 'a', 'b' or 'ratio', got {sample!r}")
        values, errors = pairs[sample]
        return to_hist(self.edges, values, errors**2, name=name, label=label, unit=unit,
                       value_label="a / b" if sample == "ratio" else "events")


def _unit_edges(bins: int) -> torch.Tensor:
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins: expected an integer >= 1, got {bins!r}")
    return torch.linspace(0.0, 1.0, bins + 1, dtype=torch.float64)


def histogram_ratio(
    a,
    b,
    bins: int | Sequence[float] = 20,
    *,
    range: tuple[float, float] | None = None,  # noqa: A002 - numpy's name for it
    weights_a=None,
    weights_b=None,
    normalize: bool = False,
) -> HistogramRatio:
    """Histogram two samples on the same bins and take their ratio.

    Errors are sqrt(Σ w²) per bin for independent events (a 1-D sample). A 2-D sample of
    shape (m, n) is m independent groups of n correlated values (e.g. n unfolded samples
    for each of m reco events): its error per bin is sqrt(Σ_i c_i²), with c_i the summed
    weight of group i in the bin, which holds whatever the correlation within a group.

    Args:
        a: first sample (e.g. unfolded), shape (n_a,), or (m_a, n) in groups.
        b: second sample (e.g. truth), shape (n_b,), or (m_b, n) in groups.
        bins: number of equal bins, or the edges (increasing), shape (bins + 1,).
        range: (low, high) for equal bins; default the 0.5 %–99.5 % quantiles of b.
        weights_a, weights_b: per-event weights, of the shapes of a and b; default 1.
        normalize: scale a (and its errors) to b's total in the bins.

    Returns:
        A :class:`HistogramRatio`.
    """
    if isinstance(bins, int):
        if bins < 1:
            raise ValueError(f"bins: expected an integer >= 1 or edges, got {bins}")
        if range is None:
            bt = as_tensor("b", b).detach().to("cpu", torch.float64).reshape(-1)
            check_finite("b", bt)
            lo, hi = torch.quantile(bt, torch.tensor([0.005, 0.995], dtype=torch.float64))
            range = (float(lo), float(hi))
        if not (math.isfinite(range[0]) and math.isfinite(range[1]) and range[0] < range[1]):
            raise ValueError(f"range: expected finite (low, high) with low < high, got {range}")
        edges = torch.linspace(range[0], range[1], bins + 1, dtype=torch.float64)
    else:
        edges = as_tensor("bins", bins, dtype=torch.float64).reshape(-1)
        if edges.numel() < 2 or not bool((edges[1:] > edges[:-1]).all()):
            raise ValueError("bins: expected an integer or at least 2 increasing edges")
    ca, va = bin_counts(a, edges, weights_a, name="a")
    cb, vb = bin_counts(b, edges, weights_b, name="b")
    ea, eb = va.sqrt(), vb.sqrt()
    if normalize:
        if float(ca.sum()) <= 0:
            raise ValueError("a: no weight inside the bins; cannot normalise")
        scale = cb.sum() / ca.sum()
        ca, ea = ca * scale, ea * scale
    with torch.no_grad():
        ratio = torch.where(cb > 0, ca / cb, torch.full_like(ca, math.nan))
        rel = torch.sqrt(torch.where(ca > 0, (ea / ca) ** 2, torch.zeros_like(ca))
                         + torch.where(cb > 0, (eb / cb) ** 2, torch.zeros_like(cb)))
        ratio_err = torch.where(ca > 0, ratio * rel,
                                torch.where(cb > 0, ea / cb, torch.full_like(ca, math.nan)))
        var = ea**2 + eb**2
        use = var > 0
        chi2 = float((((ca - cb) ** 2)[use] / var[use]).sum())
    ndof = int(use.sum()) - (1 if normalize else 0)
    return HistogramRatio(edges, ca, ea, cb, eb, ratio, ratio_err, chi2, ndof)


# --------------------------------------------------------------------------- plots
def _check_png(path) -> None:
    if path is not None and not os.fspath(path).lower().endswith(".png"):
        raise ValueError(f"path: expected a .png file name, got {os.fspath(path)!r}")


def plot_rank_histograms(cal: Calibration, path: str | os.PathLike | None = None, *,
                         bins: int = 20, ax=None):
    """Histograms of the PIT values u per observable with the ±1σ/±2σ band of a flat one.

    Args:
        cal: a :class:`Calibration`.
        path: output PNG file (replaced if it exists), or None to write nothing.
        bins: number of bins in [0, 1].
        ax: None to make a figure (mplhep style when installed), or the Axes to draw
            into: one per observable (a single Axes for one observable).

    Returns:
        The ``matplotlib.figure.Figure`` drawn into.
    """
    if not isinstance(cal, Calibration):
        raise TypeError(f"cal: expected a Calibration, got {type(cal).__name__}")
    _check_png(path)
    edges, counts, _ = cal._rank_counts(bins)
    edges, counts = edges.numpy(), counts.numpy()
    m = cal.u.shape[0]
    mean = m / bins
    sd = math.sqrt(m * (1 / bins) * (1 - 1 / bins))
    with plot_axes(ax, len(cal.names), figsize=(3.4 * len(cal.names), 3.2)) as (fig, axes, _):
        for a, (j, name) in zip(axes, enumerate(cal.names), strict=True):
            a.axhspan(mean - 2 * sd, mean + 2 * sd, color="0.9")
            a.axhspan(mean - sd, mean + sd, color="0.8")
            a.stairs(counts[j], edges, color="C0")
            a.set_title(f"{name}  (KS p = {cal.ks_pvalue[name]:.2f})", fontsize=9)
            a.set_xlabel("normalised rank of truth")
        axes[0].set_ylabel("events")
        if path is not None:
            save_png(fig, path, overwrite=True, dpi=110)
    return fig


def plot_coverage(cal: Calibration, path: str | os.PathLike | None = None, *, ax=None):
    """Empirical vs nominal coverage of central intervals, per observable.

    The curve uses the PIT values: an event is covered at level α when
    |u - ½| <= α/2; the grey band is the binomial ±2σ range of a calibrated posterior.

    Args:
        cal: a :class:`Calibration`.
        path: output PNG file (replaced if it exists), or None to write nothing.
        ax: None to make a figure (mplhep style when installed), or the Axes to draw into.

    Returns:
        The ``matplotlib.figure.Figure`` drawn into.
    """
    if not isinstance(cal, Calibration):
        raise TypeError(f"cal: expected a Calibration, got {type(cal).__name__}")
    _check_png(path)
    alpha = torch.linspace(0, 1, 101, dtype=torch.float64)
    m = cal.u.shape[0]
    band = 2 * torch.sqrt(alpha * (1 - alpha) / m)
    with plot_axes(ax, 1, figsize=(3.4, 3.4)) as (fig, (a,), _):
        a.fill_between(alpha.numpy(), (alpha - band).numpy(), (alpha + band).numpy(),
                       color="0.85")
        a.plot([0, 1], [0, 1], color="k", lw=0.8)
        for j, name in enumerate(cal.names):
            dev = (cal.u[:, j] - 0.5).abs()
            emp = (dev.unsqueeze(0) <= alpha.unsqueeze(1) / 2).double().mean(1)
            a.plot(alpha.numpy(), emp.numpy(), label=name, lw=1)
        a.set_xlabel("credibility level")
        a.set_ylabel("coverage")
        a.legend(fontsize=7)
        if path is not None:
            save_png(fig, path, overwrite=True, dpi=110)
    return fig


def plot_histogram_ratios(
    ratios: Mapping[str, HistogramRatio],
    path: str | os.PathLike | None = None,
    *,
    labels: tuple[str, str] = ("unfolded", "truth"),
    units: Mapping[str, str] | None = None,
    ax=None,
):
    """Histograms of two samples per observable with their ratio panel.

    Args:
        ratios: observable name -> :class:`HistogramRatio`.
        path: output PNG file (replaced if it exists), or None to write nothing.
        labels: legend labels of samples a and b.
        units: observable name -> unit for the axis labels (e.g. ``{"m_ll": "GeV"}``).
        ax: None to make a figure (mplhep style when installed), or 2 × len(ratios)
            Axes to draw into, row-major: the histograms' row, then the ratios' row.

    Returns:
        The ``matplotlib.figure.Figure`` drawn into.
    """
    if not isinstance(ratios, Mapping) or not ratios:
        raise TypeError("ratios: expected a non-empty mapping name -> HistogramRatio")
    for name, h in ratios.items():
        if not isinstance(h, HistogramRatio):
            raise TypeError(f"ratios[{name!r}]: expected a HistogramRatio, got "
                            f"{type(h).__name__}")
    _check_png(path)
    units = dict(units or {})
    k = len(ratios)
    with plot_axes(ax, k, rows=2, figsize=(3.4 * k, 4.8), sharex="col",
                   gridspec_kw={"height_ratios": [2, 1]}) as (fig, axes, _):
        for j, (name, h) in enumerate(ratios.items()):
            e = h.edges.numpy()
            mid = 0.5 * (e[1:] + e[:-1])
            top, bottom = axes[j], axes[k + j]
            top.stairs(h.counts_b.numpy(), e, color="k", label=labels[1])
            top.errorbar(mid, h.counts_a.numpy(), yerr=h.error_a.numpy(), fmt=".", ms=3,
                         color="C0", label=labels[0])
            top.set_title(f"{name}  (χ²/ndof = {h.chi2:.1f}/{h.ndof})", fontsize=9)
            bottom.axhline(1, color="k", lw=0.8)
            bottom.errorbar(mid, h.ratio.numpy(), yerr=h.ratio_error.numpy(), fmt=".", ms=3,
                            color="C0")
            bottom.set_ylim(0.7, 1.3)
            bottom.set_xlabel(axis_label(name, units.get(name)))
        axes[0].legend(fontsize=7)
        axes[k].set_ylabel(f"{labels[0]} / {labels[1]}")
        if path is not None:
            save_png(fig, path, overwrite=True, dpi=110)
    return fig
