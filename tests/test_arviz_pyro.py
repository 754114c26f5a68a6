"""ArviZ and Pyro interoperability: energy and divergences for az.bfmi/az.plot_energy, the
prior group, per-event log-likelihoods, and MEMLikelihood inside a user's Pyro model.

Statistical checks allow 5 standard errors (false failure < 1e-6 each for Gaussian
estimators).
"""

from __future__ import annotations

import math

import arviz as az
import matplotlib
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import MCMC, NUTS
from pyro.infer.autoguide.initialization import init_to_uniform
from pyro.infer.mcmc.util import initialize_model
from test_mem import toy_model, toy_reco

from invsim.infer import (
    ConvergenceWarning,
    InferenceProblem,
    build_priors,
    fit_svi,
    load_inference,
    sample_nuts,
    save_inference,
)
from invsim.infer.results import prior_draws
from invsim.infer.toys import GaussianMean
from invsim.mem import MEMLikelihood

matplotlib.use("Agg")
F64 = torch.float64


def _problem(n=40, seed=1):
    x = GaussianMean.simulate(0.3, n, generator=torch.Generator().manual_seed(seed))
    lik = GaussianMean(x, 1.0, mu_range=(-3.0, 3.0))
    return InferenceProblem(lik, build_priors(lik.parameters, lik.parameter_names))


@pytest.fixture(scope="module")
def nuts():
    problem = _problem()
    return problem, sample_nuts(problem, num_samples=400, warmup=150, chains=2, seed=5,
                                prior_samples=800)


def test_energy_is_the_hamiltonian_of_each_transition(nuts):
    problem, idata = nuts
    stats = idata.sample_stats
    assert stats["energy"].shape == (2, 400) and stats["diverging"].dtype == bool
    # H_n = U(q_{n-1}) + K(p_n): U from Pyro's own potential at the previous draw, and
    # K = ½ p² / M with p ~ N(0, M) is ½ χ²₁: mean ½, variance ½
    _, potential_fn, transforms, _ = initialize_model(problem.model)
    mu = torch.as_tensor(idata.posterior["mu"].values)
    kinetic = []
    for c in range(2):
        with torch.no_grad():
            u = torch.stack([potential_fn({"mu": transforms["mu"](m)}) for m in mu[c, :-1]])
        kinetic.append(torch.as_tensor(stats["energy"].values[c, 1:]) - u)
    k = torch.cat(kinetic)
    assert float(k.min()) > -1e-9
    assert abs(float(k.mean()) - 0.5) < 5 * math.sqrt(0.5 / len(k))


def test_bfmi_and_plot_energy(nuts):
    _, idata = nuts
    bfmi = az.bfmi(idata)
    # a Gaussian posterior explored well: E-BFMI near 1, far above the 0.3 warning level
    assert bfmi.shape == (2,) and (bfmi > 0.5).all() and (bfmi < 2.0).all()
    ax = az.plot_energy(idata)
    assert ax is not None
    matplotlib.pyplot.close("all")


def test_prior_group_draws_the_prior(nuts):
    problem, idata = nuts
    assert "prior" in idata.groups()
    prior = torch.as_tensor(idata.prior["mu"].values)
    assert prior.shape == (2, 800)
    # the default prior is Uniform(-3, 3): range, mean (sd √3) within 5 standard errors
    assert float(prior.min()) >= -3.0 and float(prior.max()) <= 3.0
    assert abs(float(prior.mean())) < 5 * math.sqrt(3.0 / prior.numel())
    assert abs(float(prior.std()) - math.sqrt(3.0)) < 0.1
    # seeded, and the caller's random state is untouched
    state = torch.get_rng_state()
    again = prior_draws(problem, 2, 800, 5)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(again["mu"], prior)
    ax = az.plot_dist(idata.prior["mu"])
    assert ax is not None
    matplotlib.pyplot.close("all")
    # ...and the per-event log-likelihood group is still there
    assert idata.log_likelihood["events"].shape == (2, 400, 40)


def test_groups_survive_netcdf(nuts, tmp_path):
    _, idata = nuts
    back = load_inference(save_inference(idata, tmp_path / "post.nc"))
    assert (back.sample_stats["energy"].values == idata.sample_stats["energy"].values).all()
    assert (back.prior["mu"].values == idata.prior["mu"].values).all()
    assert az.bfmi(back).shape == (2,)


def test_svi_has_a_prior_group_and_prior_samples_zero_has_none():
    problem = _problem(n=20, seed=2)
    idata, _ = fit_svi(problem, steps=50, num_samples=100, seed=1)
    assert idata.prior["mu"].shape == (1, 100)
    with pytest.warns(ConvergenceWarning):  # 20 draws: too few for the ESS check
        none = sample_nuts(problem, num_samples=20, warmup=20, chains=1, seed=1,
                           prior_samples=0)
    assert "prior" not in none.groups() and none.sample_stats["energy"].shape == (1, 20)
    with pytest.raises(ValueError, match="prior_samples"):
        sample_nuts(problem, num_samples=20, warmup=20, chains=1, prior_samples=-1)


# -- MEMLikelihood in a user's Pyro model --------------------------------------------------
@pytest.fixture(scope="module")
def mem_likelihood():
    # toy MEM (tests/test_mem.py): parameter mu declared on [0.2, 0.8]
    # (few proposal draws: far from the truth events are flagged, which is not tested here)
    return MEMLikelihood(toy_model(), toy_reco(6, seed=3), n_samples=200, n_fiducial=10_000,
                         seed=2, on_flagged="ignore")


def test_outside_the_range_raises_directly_and_is_minus_inf_inside_pyro(mem_likelihood):
    lik = mem_likelihood
    outside = torch.tensor(0.9, dtype=F64)
    with pytest.raises(ValueError, match="mu"):
        lik.log_prob({"mu": outside})
    with pytest.raises(ValueError, match="mu"):
        lik.evaluate({"mu": torch.tensor([0.5, 0.9], dtype=F64)})
    theta = torch.tensor([0.5, 0.9, 0.1], dtype=F64, requires_grad=True)
    with pyro.poutine.trace():
        lp, ls = lik.log_prob_and_log_sigma_fid({"mu": theta})
        assert torch.isneginf(lik.log_prob({"mu": outside})).all()
        assert torch.isneginf(lik.log_sigma_fid({"mu": outside}))
    # the point inside is the ordinary value; the others are -inf with a zero gradient
    torch.testing.assert_close(lp[0], lik.log_prob({"mu": torch.tensor(0.5, dtype=F64)}),
                               rtol=1e-13, atol=0)
    assert torch.isneginf(lp[1:]).all() and torch.isneginf(ls[1:]).all()
    grad, = torch.autograd.grad(lp[0].sum() + ls[0], theta)
    assert torch.isfinite(grad).all() and float(grad[1:].abs().sum()) == 0.0
    # explicit choices
    lik.outside_range = "-inf"
    try:
        assert torch.isneginf(lik.log_prob({"mu": outside})).all()
        lik.outside_range = "raise"
        with pyro.poutine.trace(), pytest.raises(ValueError, match="mu"):
            lik.log_prob({"mu": outside})
    finally:
        lik.outside_range = "auto"
    with pytest.raises(ValueError, match="outside_range"):
        MEMLikelihood(toy_model(), toy_reco(2), n_samples=50, n_fiducial=100,
                      outside_range="clip")


def test_user_pyro_model_with_init_to_uniform_runs(mem_likelihood):
    lik = mem_likelihood

    def model():
        # a prior wider than the declared range [0.2, 0.8]: init_to_uniform and the
        # trajectories reach values where the likelihood is -inf
        mu = pyro.sample("mu", dist.Uniform(torch.tensor(0.0, dtype=F64),
                                            torch.tensor(1.0, dtype=F64)))
        pyro.factor("events", lik.log_prob({"mu": mu}).sum())

    pyro.set_rng_seed(4)
    mcmc = MCMC(NUTS(model, init_strategy=init_to_uniform), num_samples=100, warmup_steps=60,
                num_chains=1, disable_progbar=True)
    mcmc.run()
    mu = mcmc.get_samples()["mu"]
    assert mu.shape == (100,) and bool(((mu >= 0.2) & (mu <= 0.8)).all())
    # the draws sit where the likelihood is: near the simulated mu = 0.5
    assert abs(float(mu.mean()) - 0.5) < 0.1
    idata = az.from_pyro(mcmc)
    assert "posterior" in idata.groups()
