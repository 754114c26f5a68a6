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


@pytest.mark.slow
def test_small_run_writes_json(bench, tmp_path):
    out = tmp_path / "topmass.json"
    bench.main(["--trials", "60000", "--epochs", "2", "--hidden", "32", "--experiments", "2",
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
