"""Unweighting: maximum weight, efficiency and overweight on weights with known answers,
and unit-weight events distributed as the integrand (binned chi^2 vs exact probabilities).
"""

import math
import time

import pytest
import torch
from scipy import stats

from forward.nis import VegasMap, max_weight, unweight, unweighting_efficiency
from forward.nis.toys import camel


def gen(seed):
    return torch.Generator().manual_seed(seed)


def test_known_spike_answer():
    # 9990 weights 1 and 10 weights 101: total 11000; the excess above t in [1, 101]
    # is 10 (101 - t), so eps = 1e-3 (11 allowed) gives t = 99.9.
    w = torch.ones(10_000, dtype=torch.float64)
    w[:10] = 101.0
    assert max_weight(w, 1e-3) == pytest.approx(99.9, rel=1e-12)
    assert max_weight(w, 0.0) == 101.0
    assert max_weight(w, 0.5) == pytest.approx(1.1)  # never below the mean
    r = unweight(w, 1e-3, generator=gen(0))
    assert r.overweight_fraction == pytest.approx(1e-3, rel=1e-9)
    assert r.n_overweight == 10
    assert r.efficiency == pytest.approx(1.1 / 99.9, rel=1e-12)
    assert unweighting_efficiency(w, 1e-3) == pytest.approx(1.1 / 99.9, rel=1e-12)


def test_uniform_weights_closed_form():
    # w uniform on (0, 1): excess above t is n (1-t)^2 / 2, total n / 2, so t = 1 - sqrt(eps)
    n = 1_000_000
    w = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    for eps in (1e-2, 1e-3, 1e-4):
        assert max_weight(w, eps) == pytest.approx(1 - math.sqrt(eps), abs=1e-5)
        assert unweighting_efficiency(w, eps) == pytest.approx(0.5 / (1 - math.sqrt(eps)), abs=1e-5)


def test_events_follow_the_weights_chi2():
    # x uniform with weights 3x^2: kept events must have density 3x^2.
    # chi^2 test with 19 dof at p = 1e-4: fails w.p. 1e-4 for a correct implementation.
    g = gen(1)
    x = torch.rand(200_000, dtype=torch.float64, generator=g)
    r = unweight(3 * x**2, overweight=0.0, generator=g)
    assert torch.all(r.event_weights == 1)
    counts = torch.histc(x[r.indices], bins=20, min=0, max=1)
    edges = torch.linspace(0, 1, 21, dtype=torch.float64)
    p = edges[1:] ** 3 - edges[:-1] ** 3
    k = r.indices.numel()
    chi2 = float(((counts - k * p) ** 2 / (k * p)).sum())
    assert chi2 < stats.chi2.isf(1e-4, 19)
    assert abs(k / 200_000 - r.efficiency) < 5 * math.sqrt(r.efficiency / 200_000)


def test_unweighted_vegas_camel_marginal_chi2():
    # VEGAS proposal on camel-2D; unweighted events' x_1 histogram vs the exact marginal
    # from erf. chi^2 with 24 dof at p = 1e-4: fails w.p. 1e-4 for a correct chain.
    f = camel(2)
    m = VegasMap(2, bins=64)
    g = gen(2)
    m.adapt(f, n_iter=5, n_per_iter=5000, generator=g)
    x, log_q = m.sample(300_000, generator=g)
    r = unweight(f(x) * torch.exp(-log_q), overweight=0.0, generator=g)
    k = r.indices.numel()
    assert k > 10_000
    counts = torch.histc(x[r.indices, 0], bins=25, min=0, max=1)
    a = 0.1
    edges = torch.linspace(0, 1, 26, dtype=torch.float64).tolist()

    def cdf_1d(t, mu):
        return 0.5 * a * math.sqrt(math.pi) * (math.erf((t - mu) / a) + math.erf(mu / a))

    def other(mu):  # integral over the second coordinate
        return cdf_1d(1.0, mu)

    mass = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        mass.append(
            sum((cdf_1d(hi, mu) - cdf_1d(lo, mu)) * other(mu) for mu in (1 / 3, 2 / 3))
        )
    p = torch.tensor(mass, dtype=torch.float64)
    p = p / p.sum()
    chi2 = float(((counts - k * p) ** 2 / (k * p)).sum())
    assert chi2 < stats.chi2.isf(1e-4, 24)


def test_signed_weights_unbiased():
    # sum of event weights * w_max / n estimates the signed mean; 5 sigma (p ~ 6e-7)
    g = gen(3)
    w = torch.randn(200_000, dtype=torch.float64, generator=g) + 0.3
    r = unweight(w, 1e-3, generator=g)
    est = float(r.event_weights.sum()) * r.w_max / w.numel()
    # per-event variance of the estimator: at most w_max * E|w| (accept/reject) + Var(w)
    sd = math.sqrt((r.w_max * float(w.abs().mean()) + float(w.var())) / w.numel())
    assert abs(est - float(w.mean())) < 5 * sd
    assert bool((r.event_weights[w[r.indices] < 0] < 0).all())


def test_speed_one_million():
    w = torch.exp(2 * torch.randn(1_000_000, dtype=torch.float64, generator=gen(4)))
    t = time.perf_counter()
    r = unweight(w, 1e-3, generator=gen(5))
    dt = time.perf_counter() - t
    assert dt < 1.0, dt
    assert 0 < r.efficiency <= 1 and r.overweight_fraction <= 1e-3 + 1e-12


def test_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        unweight(torch.tensor([1.0, math.nan]))
    with pytest.raises(ValueError, match="overweight"):
        max_weight(torch.ones(3), 1.0)
    with pytest.raises(ValueError, match=r"shape \(n,\)"):
        max_weight(torch.ones(3, 2))
    with pytest.raises(ValueError, match="all weights are zero"):
        unweight(torch.zeros(5))
    with pytest.raises(TypeError, match="weights"):
        unweight([1.0, 2.0])
