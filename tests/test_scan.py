"""``invsim.scan``: likelihood scans against closed forms on Gaussian toy likelihoods.

Toy: n events x_i ~ N(μ, σ). log L(μ, σ) = −n log σ − Σ(x_i − μ)²/(2σ²) + const, so
with σ fixed −2Δlog L = n (μ − x̄)²/σ² (an exact parabola) and, profiling σ,
σ̂²(μ) = s² + (μ − x̄)² and −2Δlog L = n log(1 + (μ − x̄)²/s²) (s²: biased variance).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from forward.processes.base import Parameter
from invsim.scan import (
    DEFAULT_CLS,
    ONE_SIGMA_CL,
    ProfileConfig,
    ScanResult,
    chi2_threshold,
    plot_scan,
    scan,
)


class GaussianEvents:
    """Events x_i ~ N(mu, sigma); parameters declared with ranges; counts its calls."""

    parameter_names = ("mu", "sigma")
    parameters = {
        "mu": Parameter("mu", 0.0, -10.0, 10.0, "GeV"),
        "sigma": Parameter("sigma", 1.0, 0.05, 20.0, "GeV"),
    }

    def __init__(self, x: torch.Tensor):
        self.x = x
        self.calls = []

    def log_prob(self, theta):
        mu, sigma = theta["mu"], theta["sigma"]
        self.calls.append(tuple(mu.shape))
        z = (self.x - mu.unsqueeze(-1)) / sigma.unsqueeze(-1)
        return -0.5 * z**2 - torch.log(sigma).unsqueeze(-1) - 0.5 * math.log(2 * math.pi)


class Bivariate:
    """Events x_i ~ N((m1, m2), C) with known covariance C: −2Δlog L is an exact ellipse."""

    parameter_names = ("m1", "m2")

    def __init__(self, x: torch.Tensor, cov: torch.Tensor):
        self.x, self.prec = x, torch.linalg.inv(cov)

    def log_prob(self, theta):
        mu = torch.stack([theta["m1"], theta["m2"]], -1)  # (b, 2)
        d = self.x - mu.unsqueeze(-2)  # (b, n, 2)
        return -0.5 * torch.einsum("bni,ij,bnj->bn", d, self.prec, d)


class NoisyGaussian(GaussianEvents):
    """Like GaussianEvents, with ``evaluate`` returning log p plus Gaussian noise of known
    per-event standard deviation ``err`` (fresh noise per call: independent estimates)."""

    def __init__(self, x, err, seed):
        super().__init__(x)
        self.err = err
        self.gen = torch.Generator().manual_seed(seed)

    def evaluate(self, theta):
        lp = self.log_prob(theta)
        noise = torch.randn(lp.shape, generator=self.gen, dtype=lp.dtype) * self.err

        class R:
            log_p = lp + noise
            error = self.err.expand(lp.shape)
            flagged = torch.zeros(lp.shape, dtype=torch.bool)

        return R()


def _data(n=400, seed=1, mu=0.3, sigma=1.5):
    g = torch.Generator().manual_seed(seed)
    return mu + sigma * torch.randn(n, generator=g, dtype=torch.float64)


def _chord_bound(d: float, h: float) -> float:
    """Largest shift of a crossing at distance d when a parabola is replaced by chords of
    length ≤ h: the chord exceeds a(x−c)² by ≤ a h²/4, so the crossing moves inward by
    ≤ d − sqrt(d² − h²/4)."""
    return d - math.sqrt(d * d - h * h / 4)


def test_chi2_thresholds():
    assert chi2_threshold(ONE_SIGMA_CL, 1) == pytest.approx(1.0, abs=1e-12)
    assert chi2_threshold(0.95, 1) == pytest.approx(3.841458820694124, abs=1e-12)
    assert chi2_threshold(ONE_SIGMA_CL, 2) == pytest.approx(2.295748928898636, abs=1e-12)
    assert chi2_threshold(0.95, 2) == pytest.approx(5.991464547107979, abs=1e-12)
    with pytest.raises(ValueError, match="cl"):
        chi2_threshold(1.0, 1)
    with pytest.raises(ValueError, match="dof"):
        chi2_threshold(0.5, 3)


def test_1d_fixed_width_is_the_exact_parabola_and_intervals_match():
    x = _data()
    n, sigma = len(x), 1.5
    lik = GaussianEvents(x)
    grid = torch.linspace(-0.2, 0.8, 101, dtype=torch.float64)
    res = scan(lik, {"mu": grid}, fixed={"sigma": sigma}, batch_size=32)
    xbar = float(x.mean())
    exact = n * (grid - xbar) ** 2 / sigma**2
    ds = res.dataset
    np.testing.assert_allclose(ds["m2dlogl"].values, exact.numpy(), rtol=0, atol=1e-9)
    assert res.best_fit["mu"] == pytest.approx(xbar, abs=1e-10)  # parabola: exact vertex
    assert not res.at_edge
    # batches of 32 points: 101 points in 4 calls of shape (b,)
    assert lik.calls == [(32,), (32,), (32,), (5,)]
    at_xbar = {"mu": torch.tensor([xbar], dtype=torch.float64),
               "sigma": torch.tensor([sigma], dtype=torch.float64)}
    assert res.min_m2logl == pytest.approx(float(-2 * lik.log_prob(at_xbar).sum()), abs=1e-8)
    h = float(grid[1] - grid[0])
    for iv, cl in zip(res.intervals, DEFAULT_CLS, strict=True):
        d = sigma / math.sqrt(n) * math.sqrt(chi2_threshold(cl, 1))
        tol = _chord_bound(d, h) + 1e-12
        assert iv.parameter == "mu" and iv.cl == cl
        assert xbar - d <= iv.lower <= xbar - d + tol
        assert xbar + d - tol <= iv.upper <= xbar + d
    assert np.isnan(ds["m2dlogl_error"].values).all()  # no evaluate(): errors unknown
    assert ds["mu"].attrs["units"] == "GeV"
    assert (ds["converged"].values == 1).all()


def test_1d_profile_over_width_matches_closed_form():
    x = _data(n=300, seed=2)
    n = len(x)
    xbar, s2 = float(x.mean()), float(x.var(unbiased=False))
    grid = torch.linspace(-0.1, 0.7, 41, dtype=torch.float64)
    res = scan(GaussianEvents(x), {"mu": grid}, profile="sigma", batch_size=16)
    exact = n * torch.log1p((grid - xbar) ** 2 / s2)
    ds = res.dataset
    # the profile fit converges to |∂logL/∂u| < 1e-5; the value error is second order
    np.testing.assert_allclose(ds["m2dlogl"].values, exact.numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(ds["profile_sigma"].values,
                               torch.sqrt(s2 + (grid - xbar) ** 2).numpy(), rtol=1e-6)
    assert (ds["converged"].values == 1).all()
    assert res.profiled == ("sigma",)
    # best fit: the profile curve is not a parabola; its vertex error is third order
    assert res.best_fit["mu"] == pytest.approx(xbar, abs=1e-4)
    i_low = int(np.argmin(ds["m2dlogl"].values))
    assert res.best_fit["sigma"] == float(ds["profile_sigma"].values[i_low])
    h = float(grid[1] - grid[0])
    for iv in res.intervals:
        d = math.sqrt(s2) * math.sqrt(math.expm1(iv.level / n))  # exact crossing
        assert d == pytest.approx(math.sqrt(s2 * iv.level / n), rel=0.01)  # ≈ σ/√n · √level
        # chord overshoot ≤ h² max f''/8 with f'' ≤ 2n/s², f'(d) = 2n d/(s² + d²)
        tol = (h * h / 8) * (2 * n / s2) / (2 * n * d / (s2 + d * d)) + 1e-4
        assert abs(iv.lower - (xbar - d)) < tol
        assert abs(iv.upper - (xbar + d)) < tol


def test_profile_with_adam_agrees_with_lbfgs():
    x = _data(n=100, seed=3)
    grid = torch.linspace(-0.5, 1.0, 7, dtype=torch.float64)
    a = scan(GaussianEvents(x), {"mu": grid}, profile=["sigma"])
    b = scan(GaussianEvents(x), {"mu": grid}, profile=["sigma"], start={"sigma": 1.4},
             profile_config=ProfileConfig(optimizer="adam", max_iter=400, lr=0.1,
                                          tolerance=1e-3))
    assert (b.dataset["converged"].values == 1).all()
    np.testing.assert_allclose(b.dataset["profile_sigma"].values,
                               a.dataset["profile_sigma"].values, rtol=1e-6)


def test_2d_contours_enclose_the_analytic_ellipse_area():
    n = 200
    cov = torch.tensor([[1.0, 0.6], [0.6, 2.0]], dtype=torch.float64)
    g = torch.Generator().manual_seed(4)
    x = torch.randn(n, 2, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(cov).T
    xbar = x.mean(0)
    s1, s2 = math.sqrt(cov[0, 0] / n), math.sqrt(cov[1, 1] / n)
    g1 = torch.linspace(float(xbar[0]) - 4 * s1, float(xbar[0]) + 4 * s1, 61,
                        dtype=torch.float64)
    g2 = torch.linspace(float(xbar[1]) - 4 * s2, float(xbar[1]) + 4.2 * s2, 71,
                        dtype=torch.float64)
    res = scan(Bivariate(x, cov), {"m1": g1, "m2": g2}, batch_size=500)
    prec = torch.linalg.inv(cov)
    m = torch.stack(torch.meshgrid(g1, g2, indexing="ij"), -1) - xbar
    exact = n * torch.einsum("...i,ij,...j->...", m, prec, m)
    assert res.dataset["m2dlogl"].dims == ("m1", "m2")
    np.testing.assert_allclose(res.dataset["m2dlogl"].values, exact.numpy(), atol=1e-8)
    # a quadratic is fitted exactly by the 3x3 least-squares quadratic
    assert res.best_fit["m1"] == pytest.approx(float(xbar[0]), abs=1e-9)
    assert res.best_fit["m2"] == pytest.approx(float(xbar[1]), abs=1e-9)
    assert res.intervals == ()
    h1, h2 = float(g1[1] - g1[0]), float(g2[1] - g2[0])
    # along a grid edge the function is a parabola of curvature n prec_ii, and marching
    # squares interpolates linearly: vertices lie below the level by ≤ n prec_ii h_i²/4
    overshoot = n * max(float(prec[0, 0]) * h1**2, float(prec[1, 1]) * h2**2) / 4
    for c, cl in zip(res.contours, DEFAULT_CLS, strict=True):
        assert c.cl == cl and c.level == pytest.approx(chi2_threshold(cl, 2))
        assert len(c.paths) == 1 and c.closed == (True,)
        p = torch.as_tensor(c.paths[0]) - xbar
        val = n * torch.einsum("ki,ij,kj->k", p, prec, p)
        assert bool((val <= c.level + 1e-9).all() and (val >= c.level - overshoot).all())
        jac = math.sqrt(float(torch.linalg.det(cov))) / n  # area of whitened unit square
        area = math.pi * c.level * jac
        # vertices inside the convex ellipse: the polygon is inside it
        assert c.area <= area * (1 + 1e-12)
        # in whitened coordinates w (val = |w|²), every edge of length ≤ l joins points of
        # radius ≥ r_in, so its distance to the centre is ≥ sqrt(r_in² − l²/4): the polygon
        # contains that disc
        w = p @ torch.linalg.cholesky(prec) * math.sqrt(n)
        assert torch.allclose(w.square().sum(-1), val)
        edge = float((w[1:] - w[:-1]).norm(dim=-1).max())
        assert c.area >= math.pi * (float(val.min()) - edge**2 / 4) * jac
        assert c.area == pytest.approx(area, rel=1e-2)


def test_mc_errors_propagate_from_per_event_errors():
    x = _data(n=100, seed=5)
    n, sigma = len(x), 1.5
    err = torch.linspace(0.01, 0.2, n, dtype=torch.float64)
    grid = torch.linspace(0.0, 0.6, 5, dtype=torch.float64)
    exact_m2 = -2 * GaussianEvents(x).log_prob(
        {"mu": grid, "sigma": torch.full_like(grid, sigma)}).sum(-1)
    want = 2 * float(err.square().sum().sqrt())  # error of −2 log L
    reps = 200
    dev = []
    for r in range(reps):
        res = scan(NoisyGaussian(x, err, seed=100 + r), {"mu": grid}, fixed={"sigma": sigma})
        ds = res.dataset
        np.testing.assert_allclose(ds["log_l_error"].values, want / 2, rtol=1e-12)
        np.testing.assert_allclose(ds["m2dlogl_error"].values, math.sqrt(2) * want, rtol=1e-12)
        assert res.min_m2logl_error == pytest.approx(want, rel=1e-12)
        assert (ds["n_flagged"].values == 0).all()
        dev.append(-2 * ds["log_l"].values - exact_m2.numpy())
    dev = np.array(dev)  # (reps, 5): −2 log L estimate minus exact
    # over 200 replicas the sample std has relative error 1/sqrt(398) = 5%, the mean has
    # error want/sqrt(200): both checks fail with probability < 1e-5 if the error is right
    std = dev.std(0, ddof=1)
    assert np.all(np.abs(std / want - 1) < 5 / math.sqrt(2 * (reps - 1)))
    assert np.all(np.abs(dev.mean(0)) < 5 * want / math.sqrt(reps))


class PoissonOnly:
    """Events carry no information on lam; σ_fid = lam pb: the extended term alone."""

    parameter_names = ("lam",)

    def __init__(self, n):
        self.n = n

    def log_prob(self, theta):
        return torch.zeros(theta["lam"].shape + (self.n,), dtype=theta["lam"].dtype)

    def log_sigma_fid(self, theta):
        return torch.log(theta["lam"])


def test_extended_term_gives_the_poisson_scan():
    n, lumi = 50, 10.0
    grid = torch.linspace(3.0, 7.0, 401, dtype=torch.float64)
    res = scan(PoissonOnly(n), {"lam": grid}, luminosity=lumi,
               bounds={"lam": (0.0, math.inf)})
    nu = grid * lumi
    exact = 2 * (nu - n - n * torch.log(nu / n))  # −2Δ log Pois(n | ν), minimum at ν = n
    np.testing.assert_allclose(res.dataset["m2dlogl"].values, exact.numpy(), atol=1e-4)
    assert res.best_fit["lam"] == pytest.approx(n / lumi, abs=1e-4)
    np.testing.assert_allclose(res.dataset["log_sigma_fid"].values, torch.log(grid).numpy())
    assert res.luminosity == lumi and res.n_events == n
    with pytest.raises(ValueError, match="log_sigma_fid"):
        scan(GaussianEvents(_data()), {"mu": [0.0, 0.1, 0.2]}, luminosity=1.0)


def test_batch_size_does_not_change_the_result():
    x = _data(n=50, seed=6)
    grid = torch.linspace(-0.5, 1.0, 9, dtype=torch.float64)
    a = scan(GaussianEvents(x), {"mu": grid}, profile="sigma", batch_size=1)
    b = scan(GaussianEvents(x), {"mu": grid}, profile="sigma", batch_size=9)
    np.testing.assert_allclose(a.dataset["m2dlogl"].values, b.dataset["m2dlogl"].values,
                               atol=1e-7)


def test_minimum_at_the_grid_edge_is_reported_and_intervals_open():
    x = _data(n=100, seed=7)
    res = scan(GaussianEvents(x), {"mu": torch.linspace(0.6, 1.0, 5, dtype=torch.float64)},
               fixed={"sigma": 1.5})
    assert res.at_edge and res.best_fit["mu"] == pytest.approx(0.6)
    assert all(math.isnan(iv.lower) for iv in res.intervals)


def test_writers_refuse_to_overwrite_and_round_trip(tmp_path):
    xr = pytest.importorskip("xarray")
    x = _data(n=60, seed=8)
    res = scan(NoisyGaussian(x, torch.full((60,), 0.05, dtype=torch.float64), seed=1),
               {"mu": torch.linspace(-0.5, 1.0, 7, dtype=torch.float64)}, profile="sigma")
    nc, csv, png = tmp_path / "s.nc", tmp_path / "s.csv", tmp_path / "s.png"
    res.to_netcdf(nc)
    res.to_csv(csv)
    res.plot(png)
    for f, call in ((nc, res.to_netcdf), (csv, res.to_csv), (png, res.plot)):
        before = f.read_bytes()
        with pytest.raises(FileExistsError, match="overwrite"):
            call(f)
        assert f.read_bytes() == before
    res.to_netcdf(nc, overwrite=True)
    res.to_netcdf(tmp_path / "s3.nc", engine="scipy")  # netCDF3: what every install can write
    for f in (nc, tmp_path / "s3.nc"):
        with xr.open_dataset(f) as back:
            assert back.identical(res.dataset)
    df = res.to_dataframe()
    assert list(df.columns[:2]) == ["mu", "m2dlogl"] and len(df) == 7
    assert png.stat().st_size > 10_000
    summary = res.summary()
    assert summary["profiled"] == ["sigma"] and len(summary["intervals"]) == 2


def test_2d_plot(tmp_path):
    x = _data(n=60, seed=9)
    res = scan(GaussianEvents(x), {"mu": torch.linspace(-0.3, 0.9, 13),
                                   "sigma": torch.linspace(1.0, 2.4, 15)})
    assert isinstance(res, ScanResult)
    fig = plot_scan(res, tmp_path / "c.png")
    assert len(fig.axes) == 2  # plot and colour bar
    assert (tmp_path / "c.png").stat().st_size > 10_000


@pytest.mark.parametrize(
    ("kwargs", "err", "match"),
    [
        ({"grid": {"nu": [0.0, 0.1, 0.2]}}, ValueError, "grid: unknown parameter 'nu'"),
        ({"grid": {"mu": [0, 1, 2], "sigma": [1, 2, 3], "x": [1, 2, 3]}}, ValueError,
         "one or two"),
        ({"grid": {"mu": [0.0, 0.2, 0.1]}}, ValueError, "strictly increasing"),
        ({"grid": {"mu": [0.0, 0.2]}}, ValueError, "at least 3"),
        ({"grid": {"mu": [0.0, float("nan"), 0.1]}}, ValueError, "NaN"),
        ({"grid": {"mu": [0.0, 5.0, 11.0]}}, ValueError, r"outside the allowed range \[-10, 10\]"),
        ({"grid": {"mu": "0:1:3"}}, TypeError, "grid"),
        ({"grid": [0.0, 1.0, 2.0]}, TypeError, "grid: expected a mapping"),
        ({"profile": "mu"}, ValueError, "scanned"),
        ({"profile": "tau"}, ValueError, "profile: unknown parameter 'tau'"),
        ({"fixed": {"mu": 1.0}}, ValueError, "fixed: 'mu' is scanned"),
        ({"fixed": {"sigma": 100.0}}, ValueError, r"fixed\['sigma'\]"),
        ({"bounds": {"sigma": (2.0, 1.0)}, "profile": "sigma"}, ValueError, "low < high"),
        ({"start": {"sigma": 0.01}, "profile": "sigma"}, ValueError, "start"),
        ({"luminosity": -1.0}, ValueError, "luminosity"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"profile_config": {"optimizer": "sgd"}}, TypeError, "profile_config"),
    ],
)
def test_bad_input_is_rejected_with_a_clear_message(kwargs, err, match):
    kwargs = {"grid": {"mu": [0.0, 0.1, 0.2]}} | kwargs
    with pytest.raises(err, match=match):
        scan(GaussianEvents(_data(n=10)), **kwargs)


def test_bad_likelihoods_are_rejected():
    with pytest.raises(TypeError, match="log_prob"):
        scan(object(), {"mu": [0.0, 0.1, 0.2]})
    with pytest.raises(ValueError, match="optimizer"):
        ProfileConfig(optimizer="sgd")

    class NoDefaults(Bivariate):
        pass

    lik = NoDefaults(torch.zeros(3, 2, dtype=torch.float64), torch.eye(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="'m2' is neither scanned nor profiled"):
        scan(lik, {"m1": [0.0, 0.1, 0.2]})

    class NaNLik(GaussianEvents):
        def log_prob(self, theta):
            out = super().log_prob(theta)
            return torch.where(theta["mu"].unsqueeze(-1) > 0.15, torch.nan, out)

    with pytest.raises(ValueError, match="NaN"):
        scan(NaNLik(_data(n=10)), {"mu": [0.0, 0.1, 0.2]})

    class WrongShape(GaussianEvents):
        def log_prob(self, theta):
            return super().log_prob(theta).sum(-1)

    with pytest.raises(ValueError, match="shape"):
        scan(WrongShape(_data(n=10)), {"mu": [0.0, 0.1, 0.2]})


def test_scan_follows_the_device_of_the_likelihood(device):
    x = _data(n=80, seed=10).to(device)
    lik = GaussianEvents(x)
    grid = torch.linspace(-0.5, 1.0, 11, dtype=torch.float64)
    res = scan(lik, {"mu": grid}, profile="sigma", device=device)
    xbar, s2 = float(x.mean()), float(x.var(unbiased=False))
    n = len(x)
    # profile log L = −n/2 log(2π σ̂²) − n/2 with σ̂² = s² + (μ − x̄)²
    exact = -0.5 * n * torch.log(2 * math.pi * (s2 + (grid - xbar) ** 2)) - 0.5 * n
    np.testing.assert_allclose(res.dataset["log_l"].values, exact.numpy(), rtol=0, atol=1e-7)
