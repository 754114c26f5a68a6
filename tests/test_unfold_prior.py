"""invsim.unfold_prior and invsim.peak_fit on toys where the answer is known.

Toy: a hard "event" is a mass m ~ N(θ, 2²) and a nuisance u ~ U(0, 1), stored as one
particle (E, px, 0, 0) = (√(m² + u²), u, 0, 0); the reco observables are
(m + N(0, 8²), u + N(0, 0.05²)). One event's reco m constrains θ poorly (σ = 8 against
a 2 GeV line shape), so an unfolder trained at θ = 100 alone unfolds data at θ = 102.5
to a mass distribution near 100 (posterior mean shrunk by 4/68 towards 100), while one
trained at 95, 100, 105 and conditioned on the calibrated median of the reco mass
follows the data.

Statistical checks are in units of the estimator's bootstrap error at 3σ (two-sided
false-failure rate 0.3 % each) and the bootstrap error itself against the spread over
independent pseudo-data sets with χ² bounds at 0.1 % each side.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import special

from forward.events import HardEvents
from invsim.flows import FlowConfig, TrainConfig, observable_preprocessing
from invsim.hardspace import HardCoordinates
from invsim.peak_fit import fit_peak
from invsim.unfold import Unfolder
from invsim.unfold_prior import (
    DatasetSummary,
    PriorIndependentUnfolder,
    bootstrap_unfolded,
)

F64 = torch.float64
LO, HI = 60.0, 140.0
WIDTH, SMEAR = 2.0, 8.0
TRAIN = (95.0, 100.0, 105.0)
TRUE = 102.5
N_TRAIN, N_DATA = 4000, 4000

pytestmark = pytest.mark.usefixtures("one_thread")


class ToyMap:
    """r ∈ (0, 1)² -> one particle of mass m = LO + (HI - LO) r₀ and px = r₁ (GeV)."""

    dim = 2
    sqrt_s = 1000.0

    def forward(self, r):
        m = LO + (HI - LO) * r[:, 0]
        u = r[:, 1]
        zero = torch.zeros_like(m)
        p = torch.stack([torch.sqrt(m**2 + u**2), u, zero, zero], -1)[:, None]
        x = torch.full_like(m, 0.1)
        log_jac = torch.full_like(m, math.log(HI - LO))
        return HardEvents(p, x, x, self.sqrt_s), log_jac

    def inverse(self, events):
        p = events.momenta[:, 0]
        m = torch.sqrt((p[:, 0] ** 2 - p[:, 1] ** 2).clamp(min=0))
        r = torch.stack([(m - LO) / (HI - LO), p[:, 1]], -1)
        return r, torch.full_like(m, -math.log(HI - LO))


def toy(theta: float, n: int, g: torch.Generator):
    m = theta + WIDTH * torch.randn(n, generator=g, dtype=F64)
    u = 0.05 + 0.9 * torch.rand(n, generator=g, dtype=F64)
    events, _ = ToyMap().forward(torch.stack([(m - LO) / (HI - LO), u], -1))
    x = torch.stack([m + SMEAR * torch.randn(n, generator=g, dtype=F64),
                     u + 0.05 * torch.randn(n, generator=g, dtype=F64)], -1)
    return events, x


def mass(events: HardEvents) -> torch.Tensor:
    p = events.momenta[:, 0]
    return torch.sqrt(p[:, 0] ** 2 - p[:, 1] ** 2)


def cat(parts):
    return HardEvents(torch.cat([h.momenta for h in parts]), torch.cat([h.x1 for h in parts]),
                      torch.cat([h.x2 for h in parts]), parts[0].sqrt_s)


def reco_mass(x: torch.Tensor) -> torch.Tensor:
    return x[:, 0]


FLOW = FlowConfig(transforms=2, hidden_features=(32, 32), conditional_affine=True)
TRAIN_CFG = TrainConfig(epochs=8, batch_size=256, lr=5e-3, patience=None)


@pytest.fixture(scope="module")
def unfolders():
    g = torch.Generator().manual_seed(7)
    coords = HardCoordinates(ToyMap())
    parts = [toy(t, N_TRAIN, g) for t in TRAIN]
    hard = cat([h for h, _ in parts])
    x = torch.cat([x for _, x in parts])
    theta = torch.tensor(TRAIN, dtype=F64).repeat_interleave(N_TRAIN)
    pi = PriorIndependentUnfolder(coords, observable_preprocessing(["real", "real"]),
                                  DatasetSummary(reco_mass, name="m0"), FLOW, seed=1)
    pi.fit(hard, x, theta, config=TRAIN_CFG, seed=2, progress=False)
    naive = Unfolder(coords, observable_preprocessing(["real", "real"]), FLOW, seed=1)
    h0, x0 = toy(100.0, 3 * N_TRAIN, g)
    naive.fit(h0, x0, config=TRAIN_CFG, seed=2, progress=False)
    return pi, naive


def mean_mass(events: HardEvents) -> float:
    return float(mass(events).mean())


def test_calibration_recovers_the_reco_median_slope(unfolders):
    """The reco mass is unbiased, so the calibration is s = θ (slope 1, intercept 0)
    within the median's error (1.25 σ/√n per point, ~0.13 here; 5σ bounds)."""
    pi, _ = unfolders
    s = pi.summary
    err = 1.2533 * math.hypot(WIDTH, SMEAR) / math.sqrt(N_TRAIN)
    assert abs(s.slope - 1) < 5 * err * math.sqrt(2) / (TRAIN[2] - TRAIN[0])
    assert abs(s.intercept + 100 * (s.slope - 1)) < 5 * err


def test_training_condition_per_point_and_per_subset():
    """Without subsets every event carries θ̂ of its point's whole sample; with subsets of
    200 the θ̂ scatter as the median of 200 events does: (K - 1) s²/σ² ~ χ²(K - 1) with
    σ = 1.2533 √(2² + 8²)/√200 / slope, bounds at 0.1 % each side."""
    from scipy import stats

    g = torch.Generator().manual_seed(21)
    parts = [toy(t, N_TRAIN, g) for t in TRAIN]
    x = torch.cat([x for _, x in parts])
    theta = torch.tensor(TRAIN, dtype=F64).repeat_interleave(N_TRAIN)
    pi = PriorIndependentUnfolder(HardCoordinates(ToyMap()),
                                  observable_preprocessing(["real", "real"]),
                                  DatasetSummary(reco_mass, name="m0"), FLOW)
    cond = pi.training_condition(x, theta)
    for k, (_, xk) in enumerate(parts):
        c = cond[k * N_TRAIN:(k + 1) * N_TRAIN]
        assert bool((c == c[0]).all()) and float(c[0]) == pytest.approx(pi.summary(xk))
    cond = pi.training_condition(x, theta, subset_size=200, seed=4)
    dev = []
    for k in range(3):
        values = torch.unique(cond[k * N_TRAIN:(k + 1) * N_TRAIN])
        assert len(values) == N_TRAIN // 200
        dev.append(values - values.mean())
    dev = torch.cat(dev)
    sigma = 1.2533 * math.hypot(WIDTH, SMEAR) / math.sqrt(200) / pi.summary.slope
    dof = len(dev) - 3
    stat = float((dev**2).sum()) / sigma**2
    assert stats.chi2.ppf(0.001, dof) < stat < stats.chi2.ppf(0.999, dof)
    with pytest.raises(ValueError, match="subset_size"):
        pi.training_condition(x, theta, subset_size=3)


def test_prior_independent_unfolding_follows_the_truth_and_naive_is_biased(unfolders):
    """At θ = 102.5 (not a training point) the prior-independent unfolded mean mass is
    within 3 bootstrap σ of the truth; the naive one (trained at 100) is more than 5σ
    below it, near the shrunk value 100 + (4/68)·2.5."""
    pi, naive = unfolders
    g = torch.Generator().manual_seed(11)
    _, x = toy(TRUE, N_DATA, g)
    res = bootstrap_unfolded(lambda xr, gen: pi.sample(xr, 2, generator=gen), mean_mass, x,
                             n_boot=30, seed=3)
    assert abs(res.estimate - TRUE) < 3 * res.error, (res.estimate, res.error)
    lo, hi = res.interval
    assert hi - lo == pytest.approx(2 * res.error)
    nv = bootstrap_unfolded(lambda xr, gen: naive.sample(xr, 2, generator=gen), mean_mass, x,
                            n_boot=30, seed=3)
    assert TRUE - nv.estimate > 5 * max(nv.error, res.error), (nv.estimate, nv.error)
    shrunk = 100 + WIDTH**2 / (WIDTH**2 + SMEAR**2) * (TRUE - 100)
    assert abs(nv.estimate - shrunk) < 0.5 * (TRUE - 100)


def test_bootstrap_error_matches_the_spread_over_pseudo_data(unfolders):
    """The bootstrap error of the unfolded mean against the standard deviation over 12
    independent pseudo-data sets: (K - 1) s²/σ_boot² ~ χ²(11), bounds at 0.1 % each side.
    (Their mean is not compared with the truth at its own, √12 times smaller, error: the
    flow's interpolation between training points has a systematic error of that order.)"""
    pi, _ = unfolders
    g = torch.Generator().manual_seed(12)
    estimates, errors = [], []
    for k in range(12):
        _, x = toy(TRUE, N_DATA, g)
        gen = torch.Generator().manual_seed(100 + k)
        estimates.append(mean_mass(pi.sample(x, 2, generator=gen)))
        if k < 3:
            errors.append(bootstrap_unfolded(lambda xr, gg: pi.sample(xr, 2, generator=gg),
                                             mean_mass, x, n_boot=20, seed=k).error)
    s2 = float(np.var(estimates, ddof=1))
    e2 = float(np.mean(np.square(errors)))
    stat = 11 * s2 / e2
    assert 1.83 < stat < 31.3, (math.sqrt(s2), math.sqrt(e2))


def test_peak_fit_recovers_a_known_voigt_location_with_its_error():
    """Voigt(μ = 173, σ = 1.5, γ = 0.66) + 15 % flat background: the location is within
    3σ of the truth and the analytic error matches the spread over 12 samples
    (11 s²/σ² ~ χ²(11): bounds at 0.1 % each side, 1.83 and 31.3)."""
    rng = np.random.default_rng(5)
    locs, errs = [], []
    for _ in range(12):
        n = 3000
        v = np.concatenate([173.0 + 0.66 * rng.standard_cauchy(n) + 1.5 * rng.standard_normal(n),
                            rng.uniform(150.0, 196.0, 530)])
        f = fit_peak(torch.as_tensor(v), (155.0, 190.0), gamma=0.66)
        locs.append(f.location)
        errs.append(f.error)
        assert abs(f.location - 173.0) < 3 * f.error
    stat = 11 * np.var(locs, ddof=1) / np.mean(np.square(errs))
    assert 1.83 < stat < 31.3
    assert f.n == int(((v >= 155) & (v <= 190)).sum())
    assert 1.0 < f.sigma < 2.0 and 0.0 < f.background < 0.5


def test_peak_fit_error_on_a_pure_breit_wigner():
    """An exact Breit–Wigner sample (σ → 0, no background: the nuisances are dropped from
    the error): the analytic error matches the Cauchy Fisher information, γ √(2/n), to
    10 % (the window, ±18 γ, changes it by a few %), the location within 3σ."""
    rng = np.random.default_rng(8)
    v = 172.5 + 0.68 * rng.standard_cauchy(6000)
    f = fit_peak(v, (160.0, 185.0), gamma=0.68)
    assert math.isfinite(f.error)
    assert f.error == pytest.approx(0.68 * math.sqrt(2 / f.n), rel=0.1)
    assert abs(f.location - 172.5) < 3 * f.error


def test_peak_fit_normalisation_matches_scipy():
    """A pure Gaussian sample (γ = 0): the fit's σ and μ match the sample's moments
    (the ML estimates of a Gaussian far inside the window) to 1 %."""
    rng = np.random.default_rng(6)
    v = 50.0 + 2.0 * rng.standard_normal(5000)
    f = fit_peak(v, (30.0, 70.0))
    assert f.location == pytest.approx(v.mean(), abs=0.01 * v.std())
    assert f.sigma == pytest.approx(v.std(), rel=0.01)
    assert special.voigt_profile(0.0, f.sigma, 0.0) > 0


def test_bad_input_is_refused(unfolders):
    pi, _ = unfolders
    with pytest.raises(ValueError, match="values: expected shape"):
        fit_peak(np.ones((3, 3)), (0, 1))
    with pytest.raises(ValueError, match="window"):
        fit_peak(np.ones(100), (2.0, 1.0))
    with pytest.raises(ValueError, match="gamma"):
        fit_peak(np.ones(100), (0.0, 2.0), gamma=-1.0)
    with pytest.raises(ValueError, match="values: 5 of 100 lie in the window"):
        fit_peak(np.r_[np.full(95, 10.0), np.full(5, 1.0)], (0.0, 2.0))
    with pytest.raises(ValueError, match="not finite"):
        fit_peak(np.r_[np.ones(99), np.nan], (0.0, 2.0))
    s = DatasetSummary(reco_mass)
    with pytest.raises(RuntimeError, match="not calibrated"):
        s(torch.ones(20, 2))
    with pytest.raises(ValueError, match="at least 10"):
        s.raw(torch.ones(5, 2))
    with pytest.raises(ValueError, match="statistic: expected shape"):
        DatasetSummary(lambda x: x).raw(torch.ones(20, 2))
    with pytest.raises(ValueError, match="at least 2 distinct"):
        s.fit([torch.ones(20, 2), torch.ones(20, 2)], [1.0, 1.0])
    with pytest.raises(ValueError, match="does not depend"):
        s.fit([torch.ones(20, 2), torch.ones(20, 2)], [1.0, 2.0])
    with pytest.raises(ValueError, match="aggregate"):
        DatasetSummary(reco_mass, aggregate="mode")
    with pytest.raises(TypeError, match="statistic"):
        DatasetSummary(3)
    g = torch.Generator().manual_seed(0)
    h, x = toy(100.0, 50, g)
    with pytest.raises(ValueError, match="at least 2 training points"):
        pi.fit(h, x, torch.full((50,), 100.0), progress=False)
    with pytest.raises(ValueError, match="theta of shape"):
        pi.fit(h, x, torch.full((49,), 100.0), progress=False)
    with pytest.raises(ValueError, match="x_reco"):
        pi.sample(torch.ones(20, 3), 1)
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_unfolded(lambda xr, gg: pi.sample(xr, 1, generator=gg), mean_mass, x,
                           n_boot=1)
    with pytest.raises(TypeError, match="summary"):
        PriorIndependentUnfolder(pi.unfolder.coordinates, observable_preprocessing(["real"]),
                                 "median")
