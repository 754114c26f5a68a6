"""benchmarks/inference.py: the --tiny run writes its JSON; its helpers against references."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "inference.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("benchmark_inference", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_tiny_run_writes_json(bench, tmp_path):
    out = tmp_path / "inference.json"
    res = bench.main(["--tiny", "--out", str(out)])
    data = json.loads(out.read_text())
    assert set(data["methods"]) == {"parton-level", "ML-MEM", "sbi NPE"}
    for m in data["methods"].values():
        assert {"mean_width", "mean_abs_bias", "covered", "datasets", "per_dataset"} <= set(m)
        assert m["datasets"] == 2 and 0 <= m["covered"] <= 2
        for row in m["per_dataset"]:
            lo, hi = bench.PRIOR
            assert lo <= row["low"] < row["mean"] < row["high"] <= hi
            assert math.isclose(row["width"], row["high"] - row["low"])
    assert data["pool"]["min_ess"] > 0 and data["pool"]["ess_at_truth"] <= data["pool"]["nonzero"]
    assert "| ML-MEM |" in data["markdown"]
    assert res["methods"]["ML-MEM"]["mean_width"] == data["methods"]["ML-MEM"]["mean_width"]


def test_grid_interval_gaussian(bench):
    # a Gaussian log L (σ = 8 GeV, centre 2031.3) well inside the grid: the central 68 %
    # interval is centre ± 0.9945 σ and the mean the centre (deterministic, no MC)
    grid = torch.linspace(1950.0, 2110.0, 81, dtype=torch.float64)
    ll = -0.5 * ((grid - 2031.3) / 8.0) ** 2
    r = bench.grid_interval(grid, ll)
    z = 0.994457883209753  # Φ⁻¹(0.84)
    assert r["mean"] == pytest.approx(2031.3, abs=0.01)
    assert r["low"] == pytest.approx(2031.3 - z * 8.0, abs=0.02)
    assert r["high"] == pytest.approx(2031.3 + z * 8.0, abs=0.02)
    assert r["edge_mass"] < 1e-12


def test_pool_sigma_and_resampling(bench):
    from forward.integrand import HadronicIntegrand
    from forward.processes import get_process

    process = get_process("drell-yan", mll_min=1500.0, mll_max=2500.0)
    pool = bench.ResamplingPool(process, 4000, seed=3)
    # σ(mzp) from the pool's reweighting against an independent plain MC of the
    # integrand built at that mzp (its own uniform points); 5 combined σ: fails with
    # probability < 1e-6 for a correct implementation
    integrand = HadronicIntegrand(process, params={"mzp": 2060.0})
    r = torch.rand(20000, integrand.dim, generator=torch.Generator().manual_seed(4),
                   dtype=torch.float64)
    w = integrand(r)
    lw = pool.log_weights(2060.0)
    wp = torch.exp(lw)
    sig_pool = math.exp(pool.log_sigma(2060.0))
    err = math.hypot(float(w.std()) / math.sqrt(len(w)),
                     float(wp.std()) / math.sqrt(pool.n_total))
    assert abs(float(w.mean()) - sig_pool) < 5 * err
    # the ESS is the Kish formula of the weights
    assert pool.ess(2060.0) == pytest.approx(float(wp.sum() ** 2 / (wp ** 2).sum()), rel=1e-9)
    # the simulator returns the requested number of accepted events, finite, seeded
    from forward.detector import GaussianLeptonDetector

    sim = pool.simulator(GaussianLeptonDetector(0.03, 0.02, 0.02, 100.0, 2.5), 30)
    a = sim({"mzp": torch.tensor(2000.0)}, torch.Generator().manual_seed(5))
    b = sim({"mzp": torch.tensor(2000.0)}, torch.Generator().manual_seed(5))
    assert a.shape == (30, 6) and torch.isfinite(a).all() and torch.equal(a, b)


def test_npe_features_mass(bench):
    # the last feature is 5 log(m_ll / 2 TeV) with m_ll from the four-vectors
    pt = torch.tensor([[900.0, 1100.0]], dtype=torch.float64)
    eta = torch.tensor([[0.3, -0.5]], dtype=torch.float64)
    phi = torch.tensor([[0.1, 0.1 + math.pi - 0.05]], dtype=torch.float64)
    p = torch.stack([pt * torch.cosh(eta), pt * torch.cos(phi), pt * torch.sin(phi),
                     pt * torch.sinh(eta)], -1)[0]
    tot = p.sum(0)
    m = math.sqrt(float(tot[0] ** 2 - (tot[1:] ** 2).sum()))
    x = torch.stack([pt, eta, phi], -1).reshape(1, 6)
    f = bench.npe_features(x)
    assert f.shape == (1, 6) and f.dtype == torch.float32
    assert float(f[0, 5]) == pytest.approx(5 * math.log(m / 2000), abs=1e-5)
    with pytest.raises(ValueError, match="x_reco"):
        bench.npe_features(torch.zeros(3, 5))
