"""forward.surrogate, training-heavy checks on q q̄ → γγg (marked slow).

The full-size numbers (10⁵ training and 10⁶ test points) come from
``benchmarks/surrogate.py``; these tests train smaller surrogates and check the same
properties at that size.
"""

from __future__ import annotations

import pytest
import torch
from _helpers import seeded
from scipy import stats

from forward.integrand import HadronicIntegrand
from forward.nis import unweight
from forward.surrogate import (
    SurrogateConfig,
    SurrogateProcess,
    boost_surrogate,
    generate_training_data,
    precision_summary,
    train_surrogate,
    two_stage_unweight,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(diphoton):
    data = generate_training_data(diphoton, 20_000, generator=seeded(1))
    test = generate_training_data(diphoton, 50_000, generator=seeded(2))
    cfg = SurrogateConfig(kind="bayesian", hidden=64, layers=3, epochs=30, lr=3e-3)
    return data, test, train_surrogate(diphoton, data, cfg, generator=seeded(3))


def test_bayesian_surrogate_precision_and_pulls(trained):
    _, test, fit = trained
    me, sig = fit.surrogate.predict(test.events)
    s, _, _ = precision_summary(me[:, 0], sig[:, 0], test.me2[:, 0])
    # with 2·10⁴ training points: most points within 10 %, the median |Δ| at the percent
    # level; σ calibrated on held-out points, pulls checked here on 5·10⁴ fresh ones. At
    # this size the fit keeps a systematic offset of about -0.1 σ (measured -0.09 with the
    # mean weights, -0.07 to -0.13 over seeds of the weight draws; the statistical error
    # of the mean is only 0.005), so the mean is checked at 0.2; the full-size numbers
    # (10⁵ points, bound 0.1) are in benchmarks/surrogate.py
    assert s.frac_below[2] > 0.97
    assert s.median_abs_delta < 0.015
    assert abs(s.pull_mean) < 0.2
    assert abs(s.pull_std - 1) < 0.15


def test_symmetric_in_photons_after_training(trained):
    from forward.events import HardEvents

    _, test, fit = trained
    ev = test.events[:1000]
    sw = HardEvents(ev.momenta[:, [1, 0, 2]], ev.x1, ev.x2, ev.sqrt_s)
    a, sa = fit.surrogate.predict(ev)
    b, sb = fit.surrogate.predict(sw)
    assert torch.equal(a, b) and torch.equal(sa, sb)


def test_ensemble_calibrated(diphoton, trained):
    data, test, _ = trained
    cfg = SurrogateConfig(kind="ensemble", members=3, hidden=48, layers=3, epochs=40,
                          lr=3e-3)
    fit = train_surrogate(diphoton, data[:10_000], cfg, generator=seeded(4))
    me, sig = fit.surrogate.predict(test.events)
    s, _, _ = precision_summary(me[:, 0], sig[:, 0], test.me2[:, 0])
    assert abs(s.pull_mean) < 0.1
    assert abs(s.pull_std - 1) < 0.15
    assert s.frac_below[2] > 0.9


def test_two_stage_unweighting_reproduces_exact_diphoton(diphoton, trained):
    """Two-stage events with the (percent-level, so inexact) surrogate follow the exact
    |M|²: a KS test per observable against events unweighted with the exact |M|²."""
    _, test, fit = trained
    sur = fit.surrogate
    me, _ = sur.predict(test.events[:5000])
    assert float(((me[:, 0] - test.me2[:5000, 0]) / test.me2[:5000, 0]).abs().median()) > 1e-3
    exact_int = HadronicIntegrand(diphoton)
    surr_int = HadronicIntegrand(SurrogateProcess(diphoton, sur))
    n = 400_000
    r = torch.rand(n, 7, generator=seeded(6), dtype=torch.float64)
    ev_e, w_e, _ = exact_int.sample(r)
    res = unweight(w_e.sum(-1), overweight=1e-3, generator=seeded(7))
    ref = diphoton.observables(ev_e[res.indices])
    r = torch.rand(n, 7, generator=seeded(8), dtype=torch.float64)
    ev_s, w_s, _ = surr_int.sample(r)
    params = exact_int.params

    def exact_weights(idx):
        me_e = diphoton.matrix_element(ev_s[idx], params)
        me_s = sur.matrix_element(ev_s[idx], None)
        return (w_s[idx] * me_e / me_s).sum(-1)

    two = two_stage_unweight(w_s.sum(-1), exact_weights, overweight=1e-3,
                             ratio_overweight=0.0, generator=seeded(9))
    # stage 2 has no overweight points (X = the largest ratio); stage 1 and the exact
    # reference allow 0.1 % of the weight above the maximum (unweighting's default): the KS
    # tests ignore those few residual weights, a bias far below their power
    assert two.overweight_fraction < 0.01 and len(two.index) > 1000
    assert two.n_exact < n / 20  # the exact |M|² is needed for stage-1 survivors only
    got = diphoton.observables(ev_s[two.index])
    # 10 observables, each KS p > 1e-4: a false failure has probability < 1e-3
    pvals = {k: stats.ks_2samp(ref[k].numpy(), got[k].numpy()).pvalue for k in ref}
    assert min(pvals.values()) > 1e-4, pvals


def test_boosting_reduces_tail(diphoton, trained):
    data, test, fit = trained
    n = 50_000
    boosted = boost_surrogate(fit, epochs=8, emphasis=4.0, generator=seeded(11))
    control = boost_surrogate(fit, epochs=8, emphasis=0.0, generator=seeded(11))
    tails = {}
    for name, f in (("boosted", boosted), ("control", control)):
        me, sig = f.surrogate.predict(test.events[:n])
        s, _, _ = precision_summary(me[:, 0], sig[:, 0], test.me2[:n, 0])
        tails[name] = s.tail
    assert 0 < boosted.history["emphasised"] < 0.5
    assert tails["boosted"] < tails["control"], tails
