"""benchmarks/topmass.py: its grid posterior against a Gaussian reference; a small run
(slow) that writes the table and the speed numbers."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "topmass.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("benchmark_topmass", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_grid_posterior_of_a_gaussian(bench):
    """log L a correlated Gaussian in (m_t, JES), JES prior N(1, 0.02): the posterior is
    Gaussian with precision the sum of both; mean, std, correlation and intervals
    against the closed form (grid and spline errors only)."""
    mt = np.linspace(165.0, 180.0, 31)
    jes = np.linspace(0.95, 1.05, 41)
    mu, s_m, s_j, rho = np.array([173.0, 1.01]), 1.2, 0.03, -0.6
    cov = np.array([[s_m ** 2, rho * s_m * s_j], [rho * s_m * s_j, s_j ** 2]])
    prec_l = np.linalg.inv(cov)
    d = np.stack(np.meshgrid(mt, jes, indexing="ij"), -1) - mu
    loglik = -0.5 * np.einsum("abi,ij,abj->ab", d, prec_l, d)
    prec = prec_l + np.diag([0.0, 1 / 0.02 ** 2])
    post_cov = np.linalg.inv(prec)
    post_mean = post_cov @ (prec_l @ mu + np.array([0.0, 1.0 / 0.02 ** 2]))
    got = bench.grid_posterior(mt, jes, loglik, jes_free=True)
    assert got["mean"] == pytest.approx(post_mean[0], abs=0.01)
    assert got["std"] == pytest.approx(math.sqrt(post_cov[0, 0]), rel=0.01)
    assert got["jes_mean"] == pytest.approx(post_mean[1], abs=2e-4)
    assert got["jes_std"] == pytest.approx(math.sqrt(post_cov[1, 1]), rel=0.02)
    corr = post_cov[0, 1] / math.sqrt(post_cov[0, 0] * post_cov[1, 1])
    assert got["corr"] == pytest.approx(corr, abs=0.01)
    sd = math.sqrt(post_cov[0, 0])
    assert got["ci68"] == pytest.approx([post_mean[0] - 0.99997 * sd,
                                         post_mean[0] + 0.99997 * sd], abs=0.02)
    # JES fixed: the slice at 1, a Gaussian of mean mu_m + rho s_m/s_j (1 - mu_j)
    fixed = bench.grid_posterior(mt, jes, loglik, jes_free=False)
    assert fixed["mean"] == pytest.approx(mu[0] + rho * s_m / s_j * (1 - mu[1]), abs=0.01)
    assert fixed["std"] == pytest.approx(s_m * math.sqrt(1 - rho ** 2), rel=0.01)
    with pytest.raises(ValueError, match="1.0"):
        bench.grid_posterior(mt, np.linspace(0.95, 1.05, 4), loglik[:, :4], jes_free=False)


def test_summary_coverage(bench):
    rows = [{"mean": 174.0, "std": 1.0, "ci68": [173.0, 175.0], "ci95": [172.0, 176.0]},
            {"mean": 176.0, "std": 1.0, "ci68": [175.0, 177.0], "ci95": [174.0, 178.0]}]
    s = bench._summary(rows, 174.1)
    assert s["coverage68"] == 0.5 and s["coverage95"] == 1.0
    assert s["mean_width68"] == 2.0 and s["mean_bias"] == pytest.approx(0.9)


def test_posterior_1d_of_a_gaussian_and_a_threshold(bench):
    """A Gaussian log L on a fine grid: mean, std and intervals of the closed form; log L
    = -inf beyond a threshold: the posterior is the truncated Gaussian (to within the
    grid step, 0.01: the density falls to 0 over one step past the cut)."""
    from scipy import stats

    x = np.linspace(172.0, 176.0, 401)
    got = bench.posterior_1d(x, -0.5 * ((x - 174.2) / 0.3) ** 2)
    assert got["mean"] == pytest.approx(174.2, abs=1e-6)
    assert got["std"] == pytest.approx(0.3, rel=1e-4)
    assert got["ci95"] == pytest.approx([174.2 - 2 * 0.3, 174.2 + 2 * 0.3], abs=2e-3)
    assert got["edge"] == pytest.approx(math.exp(-0.5 * (1.8 / 0.3) ** 2), rel=1e-6)
    cut = np.where(x <= 174.2, -0.5 * ((x - 174.2) / 0.3) ** 2, -np.inf)
    half = bench.posterior_1d(x, cut)
    ref = stats.truncnorm(-np.inf, 0.0, loc=174.2, scale=0.3)
    assert half["mean"] == pytest.approx(ref.mean(), abs=0.01)
    assert half["std"] == pytest.approx(ref.std(), abs=0.01)
    with pytest.raises(ValueError, match="loglik"):
        bench.posterior_1d(x, np.full_like(x, -np.inf))


def test_summary_features_and_method_names(bench):
    from forward.processes import get_process
    from invsim.observables import RecoObservables

    obs = RecoObservables.for_process(
        get_process("ttbar", decays="dilepton", leptons="all"), met=False)
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.uniform(30, 80, 50), rng.uniform(-2, 2, 50),
                         rng.uniform(-3, 3, 50)] * (obs.dim // 3))
    import torch

    from invsim.ttbar_mass import mbl_minmax

    f = bench.summary_features(torch.as_tensor(x), obs).numpy()
    t = mbl_minmax(torch.as_tensor(x), obs).mean(-1).numpy()
    col = {c: i for i, c in enumerate(obs.columns)}
    assert f == pytest.approx([t.mean(), *np.quantile(t, [0.25, 0.5, 0.75]),
                               x[:, [col["lminus_pt"], col["lplus_pt"]]].mean(),
                               x[:, [col["bjet1_pt"], col["bjet2_pt"]]].mean()], rel=1e-12)
    with pytest.raises(SystemExit):
        bench.main(["--methods", "parton,bogus"])


@pytest.mark.slow
def test_cheap_rows_tiny(bench, tmp_path):
    """The parton floor, template fit and NPE rows on 2 tiny pseudo-experiments, with the
    bias table."""
    out = tmp_path / "cheap.json"
    bench.main(["--experiments", "2", "--events", "30", "--parton-fiducial", "2000",
                "--parton-halfwidth", "1.5", "--template-events", "1000", "--npe-sims", "20",
                "--npe-epochs", "5", "--bias-table", "--bias-experiments", "2",
                "--out", str(out)])
    data = json.loads(out.read_text())
    names = {"parton-level floor", "template fit m(bℓ)", "sbi NPE (summaries)"}
    assert set(data["table"]) == names and set(data["bias_table"]) == names
    for row in data["table"].values():
        assert row["n"] == 2 and row["mean_width68"] > 0
        assert 0 <= row["coverage68"] <= row["coverage95"] <= 1
        assert row["wall_s_per_experiment"] > 0
    for b in data["bias_table"].values():
        assert all(math.isfinite(b[str(m)]["mean_bias"]) for m in (169.5, 172.5, 175.5))
    # the template fit's posterior lies in its template range
    for r in data["per_experiment"]["template fit m(bℓ)"]:
        assert 165.0 <= r["ci95"][0] < r["ci95"][1] <= 180.0


@pytest.mark.slow
def test_small_run_writes_json(bench, tmp_path):
    out = tmp_path / "topmass.json"
    bench.main(["--methods", "mem", "--trials", "60000", "--epochs", "2", "--hidden", "32",
                "--experiments", "2",
                "--events", "40", "--samples", "100", "--fiducial", "5000",
                "--mt-points", "11", "--jes-points", "5", "--timing-events", "3",
                "--out", str(out)])
    data = json.loads(out.read_text())
    assert set(data["table"]) == {"ML-MEM, JES fixed", "ML-MEM, JES free"}
    for row in data["table"].values():
        assert row["n"] == 2 and row["mean_width68"] > 0
        assert 0 <= row["coverage68"] <= row["coverage95"] <= 1
    free = data["table"]["ML-MEM, JES free"]
    assert 0.95 < free["mean_jes_mean"] < 1.05 and -1 <= free["mean_corr"] <= 1
    t = data["timing"]
    assert t["assignments"] == 2 and t["n_samples"] == 1000
    assert t["per_theta_ms_per_event"] > 0 and t["setup_ms_per_event"] > 0
