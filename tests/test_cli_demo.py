"""``invsim demo``: the README's main job writes its report and agrees with Pythia."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from invsim.cli import cli


def test_demo_refuses_to_overwrite_a_report(tmp_path):
    (tmp_path / "summary.md").write_text("a user's earlier report")
    res = CliRunner().invoke(cli, ["demo", "--quick", "-o", str(tmp_path)])
    assert res.exit_code != 0
    assert "--overwrite" in res.output
    assert (tmp_path / "summary.md").read_text() == "a user's earlier report"


@pytest.mark.slow
def test_demo_quick_writes_report_and_matches_pythia(tmp_path):
    out = tmp_path / "report"
    res = CliRunner().invoke(cli, ["demo", "--quick", "-o", str(out), "--seed", "3"])
    assert res.exit_code == 0, res.output
    assert {p.name for p in out.iterdir()} == {
        "summary.md", "results.json", "mll.png", "scan.png", "posterior.png", "trace.png",
        "calibration.png", "posterior.nc", "mem_model"}
    results = json.loads((out / "results.json").read_text())
    # each of the 4 pulls exceeds 5 combined σ with probability 6e-7 for a correct chain
    assert len(results["cross_sections"]) == 4
    prov = results["provenance"]  # forward.provenance record
    assert prov["seed"] == 3 and prov["command"][:2] == ["invsim", "demo"]
    assert prov["pdf"]["set"] == "NNPDF31_lo_as_0118" and prov["quick"] is True
    for row in results["cross_sections"]:
        assert abs(row["pull"]) < 5, row
    # the torch reader agrees with Pythia's at the demo's points (interpolation schemes
    # differ at the 1e-3 level at worst inside the grid)
    for row in results["pdf"]:
        assert row["xf"] == pytest.approx(row["xf_pythia"], rel=2e-3), row
    assert (out / "mll.png").stat().st_size > 10_000

    # inverse half: the posterior is read back with ArviZ and its sampler converged
    import arviz as az

    from invsim.infer import load_inference

    inv = results["inverse"]
    idata = load_inference(out / "posterior.nc")
    assert {"posterior", "sample_stats", "log_likelihood", "observed_data"} <= set(idata.groups())
    summary = az.summary(idata, var_names=["mzp", "gzp"])
    # the quick preset runs 2 chains x 600 draws: converged, though with fewer effective
    # draws than the default preset's 4 x 1000
    assert (summary["r_hat"] < 1.05).all(), summary
    assert (summary["ess_bulk"] > 100).all(), summary
    # the truth lies inside the 99.99 % range of the posterior draws (fails with
    # probability ~1e-4 per parameter for a calibrated posterior)
    for name, truth in inv["truth"].items():
        draws = idata.posterior[name].values.ravel()
        mean, sd = draws.mean(), draws.std()
        assert abs(mean - truth) < 4 * sd, (name, mean, sd, truth)
    # the coverage counts are binomial: at 10 experiments the 68 % count lies within
    # [2, 10] with probability > 0.999 for calibrated intervals
    cal = inv["calibration"]
    assert cal["experiments"] == 10
    for name in ("mzp", "gzp"):
        assert 2 <= cal["covered"][name][0] <= 10, cal
    assert cal["grid_edge_posterior_mass"] < 1e-3, cal


@pytest.mark.gpu
def test_inverse_demo_runs_on_cuda(tmp_path):
    """The whole inverse chain (simulation, training, ML-MEM, scan, NUTS, calibration)
    on CUDA: every tensor follows the device (a tiny preset; numbers differ from the CPU
    run because the generators differ)."""
    import math

    from invsim.demo_inverse import TRUTH, InversePreset, run_inverse

    preset = InversePreset(n_train_trials=20_000, epochs=1, experiments=2, n_samples=25,
                           n_fiducial=2000, grid=5, chains=2, warmup=20, draws=30)
    res = run_inverse(tmp_path, preset, progress=False, device="cuda")
    assert res["device"].startswith("cuda")
    post = res["posterior"]["summary"]["mzp"]
    # 1 experiment's posterior (sd about 10 GeV) on a grid +-80 GeV around the truth
    assert math.isfinite(post["mean"]) and abs(post["mean"] - TRUTH["mzp"]) < 80
    assert res["calibration"]["experiments"] == 2
