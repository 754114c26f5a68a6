"""invsim.calibration: coverage, SBC and TARP on conjugate Gaussian toys with exact posteriors.

An exact posterior sampler must pass; the same sampler with its width halved must fail.
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import pytest
import torch

from invsim.calibration import (
    coverage,
    plot_calibration,
    posterior_draws,
    simulation_based_calibration,
)
from invsim.infer.toys import GaussianMean

N_EVENTS, SIGMA = 20, 1.0


def _simulate(theta, generator):
    return GaussianMean.simulate(float(theta["mu"]), N_EVENTS, SIGMA, generator=generator)


def _exact_flat(width=1.0):
    """Exact posterior draws of mu under a flat prior, optionally mis-scaled."""

    def infer(x, seed):
        g = torch.Generator().manual_seed(seed)
        sd = width * SIGMA / math.sqrt(len(x))
        return {"mu": x.mean() + sd * torch.randn(2000, dtype=torch.float64, generator=g)}

    return infer


def _exact_conjugate(prior_sd, width=1.0):
    """Exact posterior of mu ~ N(0, prior_sd) given x_i ~ N(mu, SIGMA)."""

    def infer(x, seed):
        g = torch.Generator().manual_seed(seed)
        prec = len(x) / SIGMA**2 + 1 / prior_sd**2
        mean = x.sum() / SIGMA**2 / prec
        return {"mu": mean + width * prec**-0.5 * torch.randn(200, dtype=torch.float64,
                                                               generator=g)}

    return infer


def test_coverage_of_exact_posterior_is_nominal():
    # 200 experiments; each level's count is binomial(200, q): |pull| < 3 fails with
    # probability 0.27 % per level, 0.5 % for both (fixed seed: deterministic)
    res = coverage(_simulate, _exact_flat(), {"mu": 0.7}, n_experiments=200,
                   levels=(0.68, 0.95), seed=1)
    assert res.n_experiments == 200 and res.counts["mu"].shape == (2,)
    assert res.consistent(3.0), (res.fraction("mu"), res.pull("mu"))
    f = res.fraction("mu")
    assert torch.allclose(res.error("mu"), (f * (1 - f) / 200).sqrt())
    # the same posterior made twice too narrow covers ~38 % / 67 %: pulls of -9 and -19
    bad = coverage(_simulate, _exact_flat(0.5), {"mu": 0.7}, n_experiments=200, seed=1)
    assert not bad.consistent(3.0) and (bad.pull("mu") < -5).all()


def test_sbc_ranks_uniform_for_exact_posterior_and_not_for_narrow():
    prior = {"mu": dist.Normal(torch.tensor(0.0, dtype=torch.float64), 1.0)}
    res = simulation_based_calibration(prior, _simulate, _exact_conjugate(1.0),
                                       n_simulations=300, num_posterior_samples=100, seed=2)
    assert res.ranks.shape == (300, 1) and res.thetas.shape == (300, 1)
    assert int(res.ranks.min()) >= 0 and int(res.ranks.max()) <= 100
    # KS p-value of uniform ranks is ~U(0, 1): p > 1e-3 fails with probability 1e-3
    assert float(res.ks_pvals[0]) > 1e-3
    # independent check: the mean normalised rank of calibrated ranks is 1/2 ± 1/sqrt(12 N)
    mean_rank = float(res.ranks.double().mean()) / 100
    assert abs(mean_rank - 0.5) < 4 / math.sqrt(12 * 300)
    assert abs(res.tarp_atc) < 0.1
    narrow = simulation_based_calibration(prior, _simulate, _exact_conjugate(1.0, 0.5),
                                          n_simulations=300, num_posterior_samples=100,
                                          seed=2)
    assert float(narrow.ks_pvals[0]) < 1e-6
    assert narrow.tarp_atc < res.tarp_atc


def test_sbc_two_parameters_and_plot(tmp_path):
    # y_i = a + b t_i + N(0, 1) with N(0, 1) priors on a and b: conjugate, exact posterior
    t = torch.linspace(-1, 1, 15, dtype=torch.float64)
    X = torch.stack([torch.ones_like(t), t], -1)
    cov = torch.linalg.inv(X.T @ X + torch.eye(2, dtype=torch.float64))
    chol = torch.linalg.cholesky(cov)

    def simulate(theta, generator):
        return theta["a"] + theta["b"] * t + torch.randn(15, dtype=torch.float64,
                                                         generator=generator)

    def infer(y, seed):
        g = torch.Generator().manual_seed(seed)
        z = cov @ (X.T @ y) + torch.randn(200, 2, dtype=torch.float64, generator=g) @ chol.T
        return {"a": z[:, 0], "b": z[:, 1]}

    one = torch.tensor(1.0, dtype=torch.float64)
    priors = {"a": dist.Normal(0 * one, one), "b": dist.Normal(0 * one, one)}
    res = simulation_based_calibration(priors, simulate, infer, n_simulations=200,
                                       num_posterior_samples=100, seed=3)
    # two KS p-values, each > 1e-3 with probability 0.999
    assert res.ks_pvals.shape == (2,) and (res.ks_pvals > 1e-3).all()
    cov_res = coverage(simulate, infer, {"a": 0.3, "b": -0.4}, n_experiments=20,
                       levels=torch.linspace(0.1, 0.9, 9).tolist(), seed=4)
    png = plot_calibration(tmp_path / "cal.png", sbc=res, coverage_result=cov_res)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(FileExistsError):
        plot_calibration(png, sbc=res)


def test_calibration_input_errors():
    with pytest.raises(ValueError, match="levels"):
        coverage(_simulate, _exact_flat(), {"mu": 0.0}, levels=(0.5, 1.2))
    with pytest.raises(ValueError, match="n_experiments"):
        coverage(_simulate, _exact_flat(), {"mu": 0.0}, n_experiments=0)
    with pytest.raises(TypeError, match="theta_true"):
        coverage(_simulate, _exact_flat(), 0.5)
    with pytest.raises(ValueError, match=r"draws for \['nu'\] missing"):
        posterior_draws({"mu": torch.zeros(3)}, ["nu"])
    with pytest.raises(ValueError, match="NaN"):
        posterior_draws({"mu": torch.tensor([0.0, math.nan])}, ["mu"])
    with pytest.raises(TypeError, match="mapping"):
        posterior_draws(torch.zeros(3), ["mu"])
    prior = {"mu": dist.Normal(torch.tensor(0.0), 1.0)}
    with pytest.raises(ValueError, match="fewer than"):
        simulation_based_calibration(prior, _simulate, _exact_conjugate(1.0), n_simulations=10,
                                     num_posterior_samples=500)
    with pytest.raises(ValueError, match="plot_calibration"):
        plot_calibration("x.png")


@pytest.mark.slow
def test_coverage_of_svi_pipeline():
    # the real pipeline (priors -> InferenceProblem -> fit_svi) over 100 experiments:
    # each level within 3 binomial σ of nominal (false-failure rate 0.5 % for both levels)
    from invsim.infer import InferenceProblem, build_priors, fit_svi

    def infer(x, seed):
        lik = GaussianMean(x, SIGMA)
        problem = InferenceProblem(lik, build_priors(lik.parameters))
        idata, _ = fit_svi(problem, steps=400, num_samples=2000, seed=seed)
        return idata

    res = coverage(_simulate, infer, {"mu": 0.7}, n_experiments=100, seed=5)
    assert res.consistent(3.0), (res.fraction("mu"), res.pull("mu"))
