"""Scale factors as nuisance parameters of the ML-MEM likelihood (log₂ of μ_R, μ_F factors).

References: the same likelihood built on a process whose ``mur_factor``/``muf_factor``
are set (same seed: identical cached samples), finite differences for the gradient.
"""

from __future__ import annotations

import pyro
import pytest
import torch
from test_mem import _dy_model

from forward.detector import GaussianLeptonDetector
from forward.processes import get_process
from invsim.mem import MEMLikelihood
from invsim.pairs import simulate

F64 = torch.float64
SETTINGS = dict(mll_min=1500.0, mll_max=2500.0)
KW = dict(n_samples=100, n_fiducial=2000, parameter_names=["mzp"], seed=9, on_flagged="ignore")


@pytest.fixture(scope="module")
def setup():
    det = GaussianLeptonDetector()
    dy = get_process("drell-yan", **SETTINGS)
    sim = simulate(dy, det, 3000, seed=2)
    x = sim.x_reco[sim.passed][:4]
    lik = MEMLikelihood(_dy_model(dy, det), x, nuisances=("log2_mur", "log2_muf"), **KW)
    return det, x, lik


def _theta(mzp=2010.0, mur=0.0, muf=0.0, grad=False):
    return {k: torch.tensor(v, dtype=F64, requires_grad=grad)
            for k, v in (("mzp", mzp), ("log2_mur", mur), ("log2_muf", muf))}


def test_nuisances_equal_a_process_with_the_factors(setup):
    det, x, lik = setup
    assert lik.parameter_names == ("mzp", "log2_mur", "log2_muf")
    pars = lik.parameters
    assert (pars["log2_muf"].low, pars["log2_muf"].high, pars["log2_muf"].default) == (-1, 1, 0)
    plain = MEMLikelihood(_dy_model(get_process("drell-yan", **SETTINGS), det), x, **KW)
    torch.testing.assert_close(lik.log_prob(_theta()), plain.log_prob({"mzp": 2010.0}),
                               rtol=1e-12, atol=0)
    for mur, muf in ((0.0, 1.0), (-1.0, 0.0), (0.5, -0.7)):
        ref = MEMLikelihood(_dy_model(get_process(
            "drell-yan", mur_factor=2.0**mur, muf_factor=2.0**muf, **SETTINGS), det), x, **KW)
        got, got_sig = lik.log_prob_and_log_sigma_fid(_theta(mur=mur, muf=muf))
        want, want_sig = ref.log_prob_and_log_sigma_fid({"mzp": 2010.0})
        torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
        torch.testing.assert_close(got_sig, want_sig, rtol=1e-12, atol=0)
    # μ_F really moves σ_fid (PDFs), μ_R too (α_EM(μ_R) in Drell-Yan)
    base = lik.log_sigma_fid(_theta())
    assert abs(float(lik.log_sigma_fid(_theta(muf=1.0)) - base)) > 0.01
    assert abs(float(lik.log_sigma_fid(_theta(mur=1.0)) - base)) > 0.005


def test_batches_and_gradients(setup):
    _, _, lik = setup
    batch = {"mzp": torch.tensor([2000.0, 2010.0], dtype=F64),
             "log2_mur": torch.tensor(0.3, dtype=F64),
             "log2_muf": torch.tensor([-0.5, 0.5], dtype=F64)}
    out = lik.log_prob(batch)
    assert out.shape == (2, 4)
    torch.testing.assert_close(out[1], lik.log_prob(_theta(2010.0, 0.3, 0.5)), rtol=1e-13,
                               atol=0)
    theta = _theta(mur=0.2, muf=-0.3, grad=True)
    total = lik.log_prob(theta).sum()
    g_mur, g_muf = torch.autograd.grad(total, [theta["log2_mur"], theta["log2_muf"]])
    h = 1e-5
    for name, g in (("log2_mur", g_mur), ("log2_muf", g_muf)):
        up = {k: v.detach().clone() for k, v in theta.items()}
        dn = {k: v.detach().clone() for k, v in theta.items()}
        up[name] += h
        dn[name] -= h
        fd = (lik.log_prob(up).sum() - lik.log_prob(dn).sum()) / (2 * h)
        assert float(g) == pytest.approx(float(fd), rel=1e-5, abs=1e-7), name


def test_nuisance_ranges_and_names(setup):
    det, x, lik = setup
    with pytest.raises(ValueError, match="log2_muf"):
        lik.log_prob(_theta(muf=1.5))
    with pyro.poutine.trace():
        assert torch.isneginf(lik.log_prob(_theta(muf=1.5))).all()
    with pytest.raises(ValueError, match="missing"):
        lik.log_prob({"mzp": 2010.0, "log2_mur": 0.0})
    dy = get_process("drell-yan", **SETTINGS)
    with pytest.raises(ValueError, match="nuisances"):
        MEMLikelihood(_dy_model(dy, det), x, nuisances=("log2_mu",), **KW)
    with pytest.raises(TypeError, match="nuisances"):
        MEMLikelihood(_dy_model(dy, det), x, nuisances="log2_mur", **KW)


def test_cli_nuisances_profiled_in_scan_and_in_the_posterior(tmp_path):
    # invsim scan/posterior --nuisance: the nuisance joins θ (profiled by the scan within
    # its declared range, sampled by the posterior); refused with --likelihood
    import json

    import arviz as az
    from click.testing import CliRunner

    from forward.io import save_hdf5
    from invsim.cli.posterior import posterior
    from invsim.cli.scan import scan_command
    from invsim.observables import RecoObservables

    det = GaussianLeptonDetector(0.03, 0.02, 0.02, 100.0, 2.5)
    dy = get_process("drell-yan", leptons="mumu", **SETTINGS)
    sim = simulate(dy, det, 400, observables=RecoObservables(leptons=2), seed=4)
    data = tmp_path / "ev.h5"
    save_hdf5(sim.to_eventset(dy), data)
    model = _dy_model(dy, det)
    model.observables = RecoObservables.for_process(dy)
    model.ranges = {"mzp": (1800.0, 2300.0)}
    model.save(tmp_path / "m")
    runner = CliRunner()
    common = ["--data", str(data), "--model", str(tmp_path / "m"), "--samples-per-event",
              "50", "--fiducial-samples", "2000", "--nuisance", "log2_muf"]
    res = runner.invoke(scan_command, [*common, "--param", "mzp=1900:2100:3",
                                       "-o", str(tmp_path / "s"), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output.strip().splitlines()[-1])
    assert summary["profiled"] == ["log2_muf"], summary
    import xarray as xr

    ds = xr.open_dataset(tmp_path / "s" / "scan.nc")
    nu = ds["profile_log2_muf"].values
    assert ((nu >= -1 - 1e-9) & (nu <= 1 + 1e-9)).all(), nu
    res = runner.invoke(posterior, [*common, "--method", "svi", "--steps", "30",
                                    "--samples", "50", "-o", str(tmp_path / "p.nc")])
    assert res.exit_code == 0, res.output
    idata = az.from_netcdf(tmp_path / "p.nc")
    draws = idata.posterior["log2_muf"].values
    assert draws.size == 50 and ((draws > -1) & (draws < 1)).all()
    bad = runner.invoke(scan_command, ["--data", str(data), "--likelihood", "x.py:f",
                                       "--nuisance", "log2_mur", "--param", "mzp=1900:2100:3",
                                       "-o", str(tmp_path / "s2")])
    assert bad.exit_code == 2 and "--nuisance" in bad.output, bad.output
