"""invsim.unfold_diagnostics against analytic toys (Gaussian posteriors, known samples)."""

from __future__ import annotations

import math

import pytest
import torch

from invsim.flows import TrainConfig
from invsim.unfold_diagnostics import (
    Calibration,
    auc_score,
    calibration,
    classifier_two_sample_test,
    histogram_ratio,
    plot_coverage,
    plot_histogram_ratios,
    plot_rank_histograms,
    truth_ranks,
)

F64 = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")  # one torch thread (conftest.py)


def _gaussian_toy(g, m, n, scale=1.0, sigma=0.5):
    """θ ~ N(0, 1), x = θ + σ ε: the posterior is N(x/(1+σ²), σ²/(1+σ²)).

    Returns the true θ (m,) and n posterior samples per event (m, n), their spread
    multiplied by ``scale`` (1: exact posterior)."""
    theta = torch.randn(m, generator=g, dtype=F64)
    x = theta + sigma * torch.randn(m, generator=g, dtype=F64)
    mean = x / (1 + sigma**2)
    sd = math.sqrt(sigma**2 / (1 + sigma**2))
    samples = mean[:, None] + scale * sd * torch.randn(m, n, generator=g, dtype=F64)
    return theta, samples


def test_exact_posterior_is_calibrated():
    # A correct posterior gives KS p ~ U(0, 1): p > 1e-4 fails with probability 1e-4 per
    # observable; each coverage is binomial with sd sqrt(l(1-l)/m), 4.5 sd fails w.p. 7e-6.
    g = torch.Generator().manual_seed(11)
    t1, s1 = _gaussian_toy(g, 3000, 99)
    t2, s2 = _gaussian_toy(g, 3000, 99, sigma=2.0)
    cal = calibration({"a": s1, "b": s2}, {"a": t1, "b": t2}, seed=1)
    assert isinstance(cal, Calibration)
    assert cal.names == ("a", "b") and cal.n_samples == 99
    assert cal.ranks.shape == (3000, 2) and cal.u.shape == (3000, 2)
    assert int(cal.ranks.min()) >= 0 and int(cal.ranks.max()) <= 99
    assert bool(((cal.u > 0) & (cal.u < 1)).all())
    for name in ("a", "b"):
        assert cal.ks_pvalue[name] > 1e-4, cal.summary()
        for lv, c, e in zip(cal.levels, cal.coverage[name], cal.coverage_error, strict=True):
            assert abs(c - lv) < 4.5 * e, (name, lv, c, e)
    assert "KS p" in cal.summary()


def test_miscalibrated_posteriors_are_detected():
    g = torch.Generator().manual_seed(12)
    t, s_wide = _gaussian_toy(g, 3000, 99, scale=1.5)
    t2, s_narrow = _gaussian_toy(g, 3000, 99, scale=0.6)
    cal = calibration({"wide": s_wide, "narrow": s_narrow}, {"wide": t, "narrow": t2})
    # a 1.5x too wide posterior covers 68 % intervals ~87 % of the time, a 0.6x one ~45 %
    assert cal.ks_pvalue["wide"] < 1e-6 and cal.ks_pvalue["narrow"] < 1e-6
    assert cal.coverage["wide"][0] > 0.80 and cal.coverage["narrow"][0] < 0.52


def test_truth_ranks_match_brute_force():
    g = torch.Generator().manual_seed(13)
    s = torch.randn(50, 7, generator=g, dtype=F64)
    t = torch.randn(50, generator=g, dtype=F64)
    ranks, u = truth_ranks(s, t, generator=g)
    brute = [sum(1 for j in range(7) if s[i, j] < t[i]) for i in range(50)]
    assert ranks.tolist() == brute
    assert bool(((u * 8 >= ranks) & (u * 8 < ranks + 1)).all())


def test_auc_score_matches_pairwise_count():
    g = torch.Generator().manual_seed(14)
    a = torch.randint(0, 5, (40,), generator=g).double()  # with ties
    b = torch.randint(0, 4, (30,), generator=g).double()
    auc, err = auc_score(a, b)
    pairs = (a[:, None] > b[None, :]).double() + 0.5 * (a[:, None] == b[None, :]).double()
    assert auc == pytest.approx(float(pairs.mean()), abs=1e-12)
    assert 0 < err < 0.2


def test_classifier_two_sample_test():
    # identical 3-d Gaussians: AUC - 0.5 ~ N(0, null_error) on held-out data (plus a
    # small positive bias from fitting noise); |z| < 4 fails w.p. ~6e-5 for the pure
    # null. Shifted by 0.5 in one coordinate: the Bayes AUC is Φ(0.5/√2) = 0.64.
    g = torch.Generator().manual_seed(15)
    a = torch.randn(4000, 3, generator=g, dtype=F64)
    b = torch.randn(4000, 3, generator=g, dtype=F64)
    cfg = TrainConfig(epochs=6, batch_size=256, lr=3e-3, patience=3)
    same = classifier_two_sample_test(a, b, hidden_features=(32, 32), config=cfg, seed=0)
    assert same.n_test == (2000, 2000)
    assert abs(same.z_score) < 4, same
    assert same.null_error == pytest.approx(math.sqrt(4001 / (12 * 2000 * 2000)))
    shifted = b + torch.tensor([0.5, 0.0, 0.0], dtype=F64)
    diff = classifier_two_sample_test(a, shifted, hidden_features=(32, 32), config=cfg,
                                      seed=0)
    assert diff.z_score > 10 and 0.60 < diff.auc < 0.67, diff
    assert abs(diff.auc - 0.638) < 5 * diff.error


def test_histogram_ratio_counts_errors_and_chi2():
    g = torch.Generator().manual_seed(16)
    a = torch.randn(20000, generator=g, dtype=F64)
    b = torch.randn(20000, generator=g, dtype=F64)
    w = torch.rand(20000, generator=g, dtype=F64) * 2
    h = histogram_ratio(a, b, 16, range=(-4.0, 4.0), weights_a=w)
    ref_counts = torch.histogram(a, bins=16, range=(-4.0, 4.0), weight=w).hist
    ref_w2 = torch.histogram(a, bins=16, range=(-4.0, 4.0), weight=w**2).hist
    assert torch.allclose(h.counts_a, ref_counts)
    assert torch.allclose(h.error_a, ref_w2.sqrt())
    assert torch.allclose(h.counts_b, torch.histogram(b, bins=16, range=(-4.0, 4.0)).hist)
    ok = h.counts_b > 0
    assert torch.allclose(h.ratio[ok], (h.counts_a / h.counts_b)[ok])
    # same distribution (E[w] = 1): chi2 ~ chi2(ndof); ndof + 5 sqrt(2 ndof) fails < 1e-4
    assert h.chi2 < h.ndof + 5 * math.sqrt(2 * h.ndof), h
    # normalised: a is scaled to b's total
    hn = histogram_ratio(a, b, torch.linspace(-3, 3, 13), weights_a=3 * w, normalize=True)
    assert float(hn.counts_a.sum()) == pytest.approx(float(hn.counts_b.sum()))
    assert hn.ndof == int((hn.error_a**2 + hn.error_b**2 > 0).sum()) - 1
    # a shifted sample is rejected
    bad = histogram_ratio(a + 0.1, b, 16, range=(-4.0, 4.0))
    assert bad.chi2 > bad.ndof + 10 * math.sqrt(2 * bad.ndof)


def test_histogram_ratio_grouped_errors():
    """(m, n) samples: n strongly correlated values per group; the error per bin is that of
    the groups' summed weights (brute force below), and with it the chi2 of two samples of
    one distribution is chi2(ndof)-like: ndof + 5 sqrt(2 ndof) fails w.p. < 1e-4."""
    g = torch.Generator().manual_seed(18)
    m, n = 4000, 10
    centre = torch.randn(m, 1, generator=g, dtype=F64)
    a = centre + 0.3 * torch.randn(m, n, generator=g, dtype=F64)  # marginal N(0, 1.09)
    w = torch.full((m, n), 1.0 / n, dtype=F64)
    b = torch.randn(m, generator=g, dtype=F64) * math.sqrt(1.09)
    h = histogram_ratio(a, b, 12, range=(-3.0, 3.0), weights_a=w)
    edges = torch.linspace(-3.0, 3.0, 13, dtype=F64)
    for k in range(12):
        hi = (a <= edges[k + 1]) if k == 11 else (a < edges[k + 1])
        in_bin = (a >= edges[k]) & hi
        per_group = (in_bin * w).sum(1)
        assert float(h.counts_a[k]) == pytest.approx(float(per_group.sum()), rel=1e-12)
        assert float(h.error_a[k]) == pytest.approx(float(per_group.pow(2).sum().sqrt()),
                                                    rel=1e-12)
    assert h.chi2 < h.ndof + 5 * math.sqrt(2 * h.ndof), h
    # treating the correlated values as independent understates the errors (here ~2-fold)
    flat = histogram_ratio(a.reshape(-1), b, 12, range=(-3.0, 3.0), weights_a=w.reshape(-1))
    assert torch.allclose(flat.counts_a, h.counts_a, rtol=1e-12)
    assert bool((h.error_a > 1.5 * flat.error_a).all())
    with pytest.raises(ValueError, match=r"weights_a: expected shape \(4000, 10\)"):
        histogram_ratio(a, b, 12, weights_a=w.reshape(-1))
    with pytest.raises(ValueError, match=r"a: expected shape \(n,\) or \(m, n\)"):
        histogram_ratio(a.reshape(m, 2, 5), b, 12)


def test_plots_write_png(tmp_path):
    g = torch.Generator().manual_seed(17)
    t, s = _gaussian_toy(g, 500, 49)
    cal = calibration({"x": s, "y": s + 0.1}, {"x": t, "y": t})
    h = histogram_ratio(s[:, 0], t, 10)
    for fn, arg, name in ((plot_rank_histograms, cal, "ranks.png"),
                          (plot_coverage, cal, "coverage.png"),
                          (plot_histogram_ratios, {"x": h}, "ratios.png")):
        path = tmp_path / name
        fn(arg, path)
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    with pytest.raises(ValueError, match="path: expected a .png"):
        plot_coverage(cal, tmp_path / "c.pdf")


def test_bad_input():
    s = torch.randn(10, 5, dtype=F64)
    t = torch.randn(10, dtype=F64)
    with pytest.raises(ValueError, match=r"truth: expected shape \(10,\)"):
        truth_ranks(s, t[:9])
    with pytest.raises(ValueError, match=r"samples: expected shape \(m, n\)"):
        truth_ranks(s[0], t)
    bad = t.clone()
    bad[3] = math.nan
    with pytest.raises(ValueError, match="truth: 1 NaN"):
        truth_ranks(s, bad)
    with pytest.raises(ValueError, match="same names"):
        calibration({"a": s}, {"b": t})
    with pytest.raises(ValueError, match="levels"):
        calibration({"a": s}, {"a": t}, levels=(1.2,))
    with pytest.raises(ValueError, match="same number of features"):
        classifier_two_sample_test(torch.randn(20, 2), torch.randn(20, 3))
    with pytest.raises(ValueError, match="test_fraction"):
        classifier_two_sample_test(torch.randn(20, 2), torch.randn(20, 2), test_fraction=1.0)
    with pytest.raises(ValueError, match="weights_a: expected shape"):
        histogram_ratio(t, t, 4, weights_a=torch.ones(3))
    with pytest.raises(ValueError, match="range"):
        histogram_ratio(t, t, 4, range=(1.0, 1.0))
    with pytest.raises(TypeError, match="cal: expected a Calibration"):
        plot_rank_histograms({"a": 1}, "x.png")
