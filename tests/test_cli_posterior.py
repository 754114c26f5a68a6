"""``invsim posterior`` end to end: HDF5 events + a toy likelihood factory -> NetCDF."""

from __future__ import annotations

import json
import math

import arviz as az
import pytest
from _helpers import save_toy_events
from click.testing import CliRunner

from invsim.cli import load_factory
from invsim.cli.posterior import posterior

FACTORY = "invsim.infer.toys:gaussian_mean_factory"  # x = pz of particle 0 ~ N(mu, 10 GeV)


@pytest.fixture(scope="module")
def event_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "toy.h5"
    return path, save_toy_events(path, seed=4, n=40)


def _run(*args):
    return CliRunner().invoke(posterior, [str(a) for a in args])


def test_posterior_cli_nuts_end_to_end(event_file, tmp_path):
    path, pz = event_file
    out = tmp_path / "post.nc"
    res = _run(path, "--likelihood", FACTORY, "--chains", 2, "--samples", 200, "--warmup",
               150, "--seed", 5, "-o", out, "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["n_events"] == 40 and summary["method"] == "nuts"
    idata = az.from_netcdf(out)
    assert idata.attrs["likelihood_factory"] == FACTORY and list(idata.attrs["seeds"]) == [5, 6]
    assert idata.posterior["mu"].shape == (2, 200)
    assert idata.log_likelihood["events"].shape == (2, 200, 40)
    # exact posterior N(mean(pz), 10/sqrt(40)) (flat prior on [-1000, 1000]); 5 MCSE
    s = az.summary(idata, round_to="none")
    assert abs(s.loc["mu", "mean"] - float(pz.mean())) < 5 * s.loc["mu", "mcse_mean"]
    assert abs(s.loc["mu", "sd"] - 10 / math.sqrt(40)) < 5 * s.loc["mu", "mcse_sd"]
    # convergence diagnostics are tested in test_infer.py; here: the JSON carries them
    assert summary["parameters"]["mu"]["r_hat"] == pytest.approx(s.loc["mu", "r_hat"])
    again = _run(path, "--likelihood", FACTORY, "-o", out)
    assert again.exit_code != 0 and "--overwrite" in again.output


def test_posterior_cli_svi_with_prior(event_file, tmp_path):
    path, pz = event_file
    out = tmp_path / "svi.nc"
    res = _run(path, "--likelihood", FACTORY, "--method", "svi", "--steps", 400,
               "--samples", 1000, "--prior", "mu=uniform:0,100", "-o", out)
    assert res.exit_code == 0, res.output
    idata = az.from_netcdf(out)
    assert "Uniform(low: 0.0, high: 100.0)" in idata.attrs["priors"]
    mu = idata.posterior["mu"].values
    assert abs(mu.mean() - float(pz.mean())) < 0.2 * 10 / math.sqrt(40)


@pytest.mark.parametrize("args, message", [
    (["--likelihood", "nomodule_xyz:f"], "cannot import"),
    (["--likelihood", "invsim.infer.toys"], "MODULE:FUNCTION"),
    (["--likelihood", "invsim.infer.toys:nothing"], "no callable"),
    (["--likelihood", FACTORY, "--prior", "nu=uniform:0,1"], "not inferred"),
    (["--likelihood", FACTORY, "--prior", "mu=uniform:-2000,0"], "outside the declared range"),
    (["--likelihood", FACTORY, "--prior", "mu=beta:1,2"], "unknown family"),
    (["--likelihood", FACTORY, "--luminosity", "10"], "log_sigma_fid"),
])
def test_posterior_cli_errors(event_file, tmp_path, args, message):
    path, _ = event_file
    res = _run(path, *args, "-o", tmp_path / "x.nc")
    assert res.exit_code == 2 and message in res.output, res.output
    assert not (tmp_path / "x.nc").exists()


def test_load_factory_returns_callable():
    from invsim.infer.toys import gaussian_mean_factory

    assert load_factory(FACTORY) is gaussian_mean_factory
