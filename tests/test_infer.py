"""invsim.infer: NUTS and SVI against closed-form posteriors, InferenceData, NetCDF, profiles.

Toys (invsim.infer.toys): Gaussian events with unknown mean (posterior N(x̄, σ/√n) under
a flat prior), the same with a cross section in the extended likelihood (posterior of
xsec: Gamma(n + 1, rate L)), and a linear model y = a + b t (correlated bivariate normal).
Monte Carlo checks allow 5 MCSE; for a correct sampler each fails with probability
< 1e-4 (two-sided normal 6e-7, inflated for the error of the MCSE estimate itself).
"""

from __future__ import annotations

import math

import arviz as az
import pyro
import pyro.distributions as dist
import pytest
import torch

from forward.processes.base import Parameter
from invsim.infer import (
    InferenceProblem,
    build_priors,
    fit_svi,
    load_inference,
    parse_prior,
    profile_likelihood,
    sample_nuts,
    save_inference,
)
from invsim.infer.toys import GaussianMean, LinearGaussian


def _gauss(n=50, mu=0.3, seed=1, **kw):
    x = GaussianMean.simulate(mu, n, generator=torch.Generator().manual_seed(seed))
    return GaussianMean(x, 1.0, **kw)


def _linear(n=40, seed=2):
    g = torch.Generator().manual_seed(seed)
    t = torch.linspace(0.0, 2.0, n, dtype=torch.float64)  # off-centre: a and b correlate
    y = 0.5 + 1.5 * t + torch.randn(n, dtype=torch.float64, generator=g)
    return LinearGaussian(t, y, 1.0)


def _problem(lik, **kw):
    return InferenceProblem(lik, build_priors(lik.parameters, lik.parameter_names), **kw)


def _within_mcse(summary, name, mean, sd, k=5.0):
    row = summary.loc[name]
    assert abs(row["mean"] - mean) < k * row["mcse_mean"], (name, row["mean"], mean)
    assert abs(row["sd"] - sd) < k * row["mcse_sd"], (name, row["sd"], sd)


@pytest.fixture(scope="module")
def gauss_nuts():
    lik = _gauss()
    return lik, sample_nuts(_problem(lik), num_samples=500, warmup=200, chains=2, seed=3)


def test_nuts_gaussian_mean_matches_exact_posterior(gauss_nuts):
    lik, idata = gauss_nuts
    s = az.summary(idata, round_to="none")
    mean, sd = lik.exact_posterior()
    _within_mcse(s, "mu", mean, sd)
    # split-r̂ of converged chains with ESS of several hundred stays well below 1.01
    assert s.loc["mu", "ess_bulk"] > 300
    assert s.loc["mu", "r_hat"] < 1.01


def test_inference_data_groups_loo_and_attributes(gauss_nuts):
    lik, idata = gauss_nuts
    for group in ("posterior", "sample_stats", "log_likelihood", "observed_data"):
        assert group in idata.groups()
    assert idata.posterior["mu"].shape == (2, 500)
    ll = idata.log_likelihood["events"]
    assert ll.shape == (2, 500, 50)
    # independent recomputation of the per-event values and of lp at a few draws
    mu = torch.as_tensor(idata.posterior["mu"].values[1, :5])
    ref = dist.Normal(mu[:, None], 1.0).log_prob(lik.x)
    assert torch.allclose(torch.as_tensor(ll.values[1, :5]), ref, rtol=1e-12, atol=1e-12)
    lp_ref = ref.sum(-1) + math.log(1 / 20.0)
    assert torch.allclose(torch.as_tensor(idata.sample_stats["lp"].values[1, :5]), lp_ref)
    assert idata.sample_stats["diverging"].dtype == bool
    loo = az.loo(idata)
    # a one-parameter model on 50 events: effective number of parameters close to 1
    assert 0.5 < loo.p_loo < 2.0 and math.isfinite(loo.elpd_loo)
    assert math.isfinite(az.waic(idata).elpd_waic)
    a = idata.attrs
    assert a["method"] == "nuts" and list(a["seeds"]) == [3, 4] and a["n_events"] == 50
    assert a["luminosity_pb"] == -1.0 and "torch_version" in a and "pyro_version" in a
    assert int(idata.observed_data["n_events"].values[0]) == 50


def test_netcdf_round_trip_refuses_overwrite(gauss_nuts, tmp_path):
    _, idata = gauss_nuts
    path = save_inference(idata, tmp_path / "post.nc")
    back = load_inference(path)
    assert (back.posterior["mu"].values == idata.posterior["mu"].values).all()
    assert (back.log_likelihood["events"].values == idata.log_likelihood["events"].values).all()
    assert list(back.attrs["seeds"]) == [3, 4]
    with pytest.raises(FileExistsError, match="overwrite"):
        save_inference(idata, path)
    save_inference(idata, path, overwrite=True)
    with pytest.raises(FileNotFoundError):
        load_inference(tmp_path / "missing.nc")
    with pytest.raises(TypeError, match="InferenceData"):
        save_inference({"mu": 1}, tmp_path / "x.nc")


def test_extended_term_is_poisson_log_pmf():
    from scipy.stats import poisson

    lik = _gauss(n=50, seed=5, xsec_range=(0.5, 20.0))
    problem = _problem(lik, luminosity=10.0)
    xsec = torch.tensor([2.0, 5.1, 9.0], dtype=torch.float64)
    theta = {"mu": torch.zeros(3, dtype=torch.float64), "xsec": xsec}
    ref = torch.as_tensor(poisson.logpmf(50, 10.0 * xsec.numpy()))
    assert torch.allclose(problem.extended_log_term(theta), ref, rtol=1e-12)
    assert torch.allclose(problem.log_likelihood(theta),
                          lik.log_prob(theta).sum(-1) + ref, rtol=1e-12)


@pytest.mark.slow
def test_nuts_extended_likelihood_two_parameters():
    # xsec enters only the Poisson term: its posterior is Gamma(n + 1, rate L) (flat prior;
    # the prior range [0.5, 20] pb cuts < 1e-9 of it), independent of mu
    n, lum = 50, 10.0
    lik = _gauss(n=n, seed=5, xsec_range=(0.5, 20.0))
    idata = sample_nuts(_problem(lik, luminosity=lum), num_samples=300, warmup=200,
                        chains=2, seed=11)
    s = az.summary(idata, round_to="none")
    _within_mcse(s, "mu", *lik.exact_posterior())
    _within_mcse(s, "xsec", (n + 1) / lum, math.sqrt(n + 1) / lum)
    assert (s["r_hat"] < 1.01).all()
    assert "log_poisson" in idata.sample_stats and idata.attrs["luminosity_pb"] == lum


@pytest.mark.slow
def test_nuts_correlated_two_parameter_posterior():
    lik = _linear()
    mean, cov = lik.exact_posterior()
    idata = sample_nuts(_problem(lik), num_samples=300, warmup=200, chains=2, seed=7,
                        full_mass=True)
    s = az.summary(idata, round_to="none")
    for k, name in enumerate("ab"):
        _within_mcse(s, name, float(mean[k]), math.sqrt(float(cov[k, k])))
    assert (s["r_hat"] < 1.01).all()
    rho = float(cov[0, 1] / cov.diagonal().sqrt().prod())
    a = torch.as_tensor(idata.posterior["a"].values).flatten()
    b = torch.as_tensor(idata.posterior["b"].values).flatten()
    r = float(torch.corrcoef(torch.stack([a, b]))[0, 1])
    # sd of a correlation estimate ~ (1 - rho^2)/sqrt(ESS); ESS > 150 here
    assert abs(r - rho) < 5 * (1 - rho**2) / math.sqrt(150), (r, rho)


def test_svi_close_to_exact():
    lik = _gauss()
    idata, guide = fit_svi(_problem(lik), steps=600, num_samples=4000, seed=2)
    mean, sd = lik.exact_posterior()
    mu = torch.as_tensor(idata.posterior["mu"].values).flatten()
    # 4000 independent draws: MC error of the mean sd/63; optimisation noise ~ a few % sd
    assert abs(float(mu.mean()) - mean) < 0.1 * sd
    assert abs(float(mu.std()) / sd - 1) < 0.1
    assert idata.attrs["method"] == "svi" and math.isfinite(guide.elbo)


@pytest.mark.slow
def test_svi_correlated_two_parameters():
    lin = _linear()
    idata, _ = fit_svi(_problem(lin), steps=1500, num_samples=4000, seed=3)
    m, cov = lin.exact_posterior()
    ab = torch.stack([torch.as_tensor(idata.posterior[k].values).flatten() for k in "ab"])
    sd = cov.diagonal().sqrt()
    assert ((ab.mean(-1) - m).abs() < 0.1 * sd).all()
    assert ((ab.std(-1) / sd - 1).abs() < 0.1).all()
    assert abs(float(torch.corrcoef(ab)[0, 1]) - float(cov[0, 1] / sd.prod())) < 0.05


def test_pyro_model_density_equals_log_joint():
    lik = _linear()
    problem = _problem(lik)
    theta = {"a": torch.tensor(0.4, dtype=torch.float64), "b": torch.tensor(1.2,
                                                                           dtype=torch.float64)}
    tr = pyro.poutine.trace(pyro.poutine.condition(problem.model, data=theta)).get_trace()
    assert set(tr.nodes) >= {"a", "b", "events"}
    ref = lik.log_prob(theta).sum() + 2 * math.log(1 / 20.0)
    assert torch.allclose(tr.log_prob_sum(), ref)
    batch = {k: torch.stack([v, v + 0.1]) for k, v in theta.items()}
    assert problem.log_joint(batch).shape == (2,)
    assert torch.allclose(problem.log_joint(batch)[0], ref)


def test_profile_interval_gaussian_exact():
    lik = _gauss()
    mean, sd = lik.exact_posterior()
    grid = torch.linspace(mean - 3 * sd, mean + 3 * sd, 121, dtype=torch.float64)
    res = profile_likelihood(_problem(lik), "mu", grid)
    h = float(grid[1] - grid[0])
    # linear interpolation of the exact parabola ((mu - mean)/sd)^2: error <= h^2/(8 sd)
    tol = h**2 / (8 * sd) + 1e-9
    assert abs(res.mle - mean) < 1e-9
    assert abs(res.low - (mean - sd)) < tol and abs(res.high - (mean + sd)) < tol
    assert res.closed and abs(res.width - 2 * sd) < 2 * tol
    res95 = profile_likelihood(_problem(lik), "mu", grid, level=3.841458820694124)
    assert abs(res95.high - (mean + 1.959963984540054 * sd)) < tol
    short = profile_likelihood(_problem(lik), "mu", grid[:70])  # ends at mean + 0.45 sd
    assert math.isnan(short.high) and not short.closed


def test_profile_interval_profiles_nuisance():
    # Gaussian likelihood: the profile over b gives the marginal interval a_hat ± sd(a)
    lik = _linear()
    m, cov = lik.exact_posterior()
    sa = math.sqrt(float(cov[0, 0]))
    grid = torch.linspace(float(m[0]) - 2 * sa, float(m[0]) + 2 * sa, 81, dtype=torch.float64)
    res = profile_likelihood(_problem(lik), "a", grid)
    h = float(grid[1] - grid[0])
    tol = h**2 / (8 * sa) + 1e-6
    assert abs(res.low - (float(m[0]) - sa)) < tol and abs(res.high - (float(m[0]) + sa)) < tol
    # profiled b follows the conditional mean b_hat + cov_ab/cov_aa (a - a_hat)
    b_ref = m[1] + cov[0, 1] / cov[0, 0] * (grid - m[0])
    assert torch.allclose(res.nuisance["b"], b_ref, atol=1e-6)
    fixed = profile_likelihood(_problem(lik), "a", grid, fixed={"b": float(m[1])})
    assert fixed.width < res.width  # conditional interval is narrower when a, b correlate


def test_priors_defaults_overrides_and_errors():
    pars = [Parameter("mzp", 2000.0, 500.0, 5000.0, "GeV"), Parameter("g", 1.0, 0.0, 3.0)]
    pri = build_priors(pars, ("mzp",))
    assert list(pri) == ["mzp"] and float(pri["mzp"].low) == 500.0
    assert pri["mzp"].low.dtype == torch.float64
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['mass'\]"):
        build_priors(pars, ("mass",))
    with pytest.raises(ValueError, match="not inferred"):
        build_priors(pars, ("mzp",), {"g": dist.Uniform(0.0, 1.0)})
    with pytest.raises(ValueError, match=r"outside the declared range \[500, 5000\] GeV"):
        build_priors(pars, ("mzp",), {"mzp": dist.Uniform(100.0, 1000.0)})
    with pytest.raises(ValueError, match="outside the declared range"):
        build_priors(pars, ("g",), {"g": dist.Normal(1.0, 0.1)})
    with pytest.raises(TypeError, match="Distribution"):
        build_priors(pars, ("g",), {"g": 1.0})
    with pytest.raises(ValueError, match="univariate"):
        build_priors(pars, ("g",), {"g": dist.Uniform(torch.zeros(2), torch.ones(2))})
    ok = build_priors(pars, ("g",), {"g": dist.Uniform(0.5, 1.5)})
    assert float(ok["g"].high) == 1.5
    with pytest.raises(ValueError, match="unbounded"):
        build_priors([Parameter("x", 0.0, -math.inf, math.inf)])
    name, p = parse_prior("mzp=uniform:1500,2500")
    assert name == "mzp" and float(p.low) == 1500 and float(p.high) == 2500
    assert isinstance(parse_prior("g=normal:1,0.1")[1], dist.Normal)
    for bad in ("mzp", "mzp=uniform", "mzp=gamma:1,2", "mzp=uniform:1", "mzp=uniform:3,2",
                "mzp=normal:1,-1", "mzp=uniform:a,b", "1x=uniform:0,1"):
        with pytest.raises(ValueError, match="prior"):
            parse_prior(bad)


class _BadShape:
    parameter_names = ("mu",)
    parameters = {"mu": Parameter("mu", 0.0, -1.0, 1.0)}

    def __init__(self, out):
        self.out = out

    def log_prob(self, theta):
        return self.out


def test_problem_rejects_bad_likelihoods_and_inputs():
    pri = build_priors(_BadShape.parameters)
    with pytest.raises(ValueError, match=r"shape \(n_events,\), got \(5, 1\)"):
        InferenceProblem(_BadShape(torch.zeros(5, 1, dtype=torch.float64)), pri)
    with pytest.raises(ValueError, match=r"events \[1 \(log p = NaN\)\]"):
        InferenceProblem(_BadShape(torch.tensor([0.0, math.nan], dtype=torch.float64)), pri)
    with pytest.raises(TypeError, match="floating"):
        InferenceProblem(_BadShape(torch.zeros(3, dtype=torch.long)), pri)
    with pytest.raises(TypeError, match="log_prob"):
        InferenceProblem(object(), pri)
    lik = _gauss()
    with pytest.raises(ValueError, match=r"missing \['mu'\], unknown \['nu'\]"):
        InferenceProblem(lik, {"nu": dist.Uniform(0.0, 1.0)})
    with pytest.raises(ValueError, match="log_sigma_fid"):
        InferenceProblem(_BadShape(torch.zeros(3, dtype=torch.float64)), pri, luminosity=1.0)
    with pytest.raises(ValueError, match="luminosity"):
        _problem(lik, luminosity=-1.0)
    problem = _problem(lik)
    with pytest.raises(ValueError, match="theta"):
        problem.log_joint({"mu": torch.zeros(3), "sigma": torch.zeros(3)})
    with pytest.raises(ValueError, match="chains"):
        sample_nuts(problem, chains=0)
    with pytest.raises(ValueError, match="num_samples"):
        fit_svi(problem, num_samples=0)
    grid = torch.linspace(-1, 1, 5, dtype=torch.float64)
    with pytest.raises(ValueError, match="increasing"):
        profile_likelihood(problem, "mu", grid.flip(0))
    with pytest.raises(ValueError, match="support"):
        profile_likelihood(problem, "mu", grid * 20)
    with pytest.raises(ValueError, match="name"):
        profile_likelihood(problem, "nu", grid)


@pytest.mark.gpu
def test_nuts_and_svi_on_cuda():
    x = GaussianMean.simulate(0.3, 50, generator=torch.Generator().manual_seed(1)).cuda()
    lik = GaussianMean(x, 1.0)
    pri = build_priors(lik.parameters, device="cuda")
    problem = InferenceProblem(lik, pri)
    idata = sample_nuts(problem, num_samples=300, warmup=300, chains=2, seed=1)
    s = az.summary(idata, round_to="none")
    _within_mcse(s, "mu", *lik.exact_posterior())
    idata, _ = fit_svi(problem, steps=500, seed=1)
    assert idata.posterior["mu"].shape == (1, 2000)
