"""``invsim posterior --nuisance jes`` on a tiny t t̄ model: (m_t, JES) sampled by NUTS,
JES with its default prior (Normal(1, 0.02) truncated to the trained range), the
(m_t, JES) correlation reported; the events file's incomplete events dropped with a
count."""

import json

import numpy as np
import pytest
import torch

from forward.detector import Detector
from forward.processes import get_process
from invsim.mem.recipe import build_model
from invsim.observables import RecoObservables
from invsim.pairs import simulate


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from forward.io import save_hdf5

    tmp = tmp_path_factory.mktemp("tt")
    tt = get_process("ttbar", decays="dilepton", leptons="all", scale=172.5)  # PDFs cached
    obs = RecoObservables.for_process(tt, met=False)
    with pytest.warns(UserWarning):
        model, _ = build_model(tt, Detector("cms"), n_trials=20_000, epochs=1,
                               observables=obs, seed=1, hidden=(16, 16),
                               ranges={"mt": (165.0, 180.0), "jes": (0.95, 1.05)},
                               min_accepted=10_000)
    model.save(tmp / "m")
    sim = simulate(tt, Detector("cms"), 500, {"mt": 174.1}, observables=obs, seed=3)
    save_hdf5(sim.to_eventset(tt), tmp / "ev.h5")
    return tmp, sim


@pytest.mark.slow  # NUTS: 30 s on an idle thread, minutes on a loaded machine
def test_posterior_samples_mt_and_jes(files):
    import arviz as az
    from click.testing import CliRunner

    from invsim.cli.posterior import posterior

    tmp, sim = files
    n_sel = int(sim.passed.sum())
    res = CliRunner().invoke(posterior, [
        "--data", str(tmp / "ev.h5"), "--model", str(tmp / "m"), "--nuisance", "jes",
        "--samples-per-event", "25", "--fiducial-samples", "2000", "--chains", "1",
        "--samples", "8", "--warmup", "8", "--on-flagged", "ignore", "--json",
        "-o", str(tmp / "p.nc")])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output.strip().splitlines()[-1])
    assert set(out["parameters"]) == {"mt", "jes"}
    # every simulated event without two b-jets and two leptons was dropped, with a count
    assert out["n_events"] == n_sel < len(sim)
    assert out["inputs"]["n_selected"] == n_sel, out["inputs"]
    dropped = out["inputs"]["dropped"]
    assert dropped["at least 2 b-jets"] == sim.failed["at least 2 b-jets"] > 0
    assert dropped["exactly 2 leptons"] == sim.failed["exactly 2 leptons"] > 0
    idata = az.from_netcdf(tmp / "p.nc")
    mt = idata.posterior["mt"].values.reshape(-1)
    jes = idata.posterior["jes"].values.reshape(-1)
    assert ((jes > 0.95) & (jes < 1.05)).all() and ((mt > 165) & (mt < 180)).all()
    r = out["correlation"]["mt"]["jes"]
    assert r == pytest.approx(float(np.corrcoef(mt, jes)[0, 1]), abs=1e-12)
    assert out["correlation"]["jes"]["mt"] == pytest.approx(r)


def test_default_prior_is_the_truncated_normal(files):
    from invsim.cli.posterior import _default_priors
    from invsim.data import model_likelihood
    from invsim.mem.detector_nuisances import TruncatedNormal

    tmp, _ = files
    lik, observed = model_likelihood(tmp / "m", tmp / "ev.h5", n_samples=25, n_fiducial=100,
                                     nuisances=("jes",), on_flagged="ignore")
    assert lik.parameter_names == ("mt", "jes")
    pri = _default_priors(lik, ("jes",))
    assert isinstance(pri["jes"], TruncatedNormal)
    assert float(pri["jes"].low) == 0.95 and float(pri["jes"].high) == 1.05
    assert float(pri["jes"].log_prob(torch.tensor(1.0))) > float(
        pri["jes"].log_prob(torch.tensor(1.04)))
    # without --nuisance jes the JES is held at 1 and θ is the process's mass only
    lik1, _ = model_likelihood(tmp / "m", tmp / "ev.h5", n_samples=25, n_fiducial=100,
                               on_flagged="ignore")
    assert lik1.parameter_names == ("mt",)
