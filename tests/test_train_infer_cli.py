"""The inverse chain from the command line: ``invsim train`` on any registered process and
detector, then ``invsim scan`` / ``invsim posterior`` on events files that did not come
from invsim's writers (NanoAOD-style ROOT written with uproot from plain arrays)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from forward.detector import GaussianLeptonDetector
from forward.processes import get_process, register_process, unregister_process
from forward.processes.drell_yan import DrellYan
from invsim.cli import cli
from invsim.mem import MEMModel
from invsim.pairs import simulate

uproot = pytest.importorskip("uproot")
ak = pytest.importorskip("awkward")
az = pytest.importorskip("arviz")

DETECTOR = "gaussian:sigma_pt=0.03,sigma_eta=0.02,sigma_phi=0.02,pt_min=100,eta_max=2.5"
WINDOW = ["--set", "mll_min=1500", "--set", "mll_max=2500", "--set", "leptons=mumu"]


def _run(args, ok=True):
    res = CliRunner().invoke(cli, [str(a) for a in args])
    if ok:
        assert res.exit_code == 0, res.output + repr(res.exception)
    return res


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "dy_model"
    _run(["train", "drell-yan", "--detector", DETECTOR, *WINDOW, "--param", "mzp=1800:2300",
          "--trials", 30000, "--epochs", 1, "--points-per-axis", 2, "-o", out, "--json"])
    return out


def _nanoaod(path, x_reco: np.ndarray, plus_first: np.ndarray, drop: str | None = None,
             same_sign: bool = False):
    """Write (pT, η, φ) of ℓ⁻, ℓ⁺ as NanoAOD-style muons, ℓ⁺ first where asked."""
    n = len(x_reco)
    lm, lp = x_reco[:, 0:3], x_reco[:, 3:6]
    first = np.where(plus_first[:, None], lp, lm)
    second = np.where(plus_first[:, None], lm, lp)
    q1 = np.where(plus_first, 1, -1).astype(np.int32)
    branches = {"pt": 0, "eta": 1, "phi": 2}
    data = {"nMuon": np.full(n, 2, dtype=np.int32)}
    for name, j in branches.items():
        data[f"Muon_{name}"] = ak.Array(np.stack([first[:, j], second[:, j]], 1).astype(np.float32)
                                        .tolist())
    data["Muon_charge"] = ak.Array(np.stack([q1, q1 if same_sign else -q1], 1).tolist())
    data["MET_pt"] = np.zeros(n, dtype=np.float32)
    data["MET_phi"] = np.zeros(n, dtype=np.float32)
    if drop:
        data.pop(drop)
    types = {k: ("int32" if k == "nMuon" else "float32") for k in data if not k.startswith("Muon")}
    types |= {k: f"var * {'int32' if k.endswith('charge') else 'float32'}" for k in data
              if k.startswith("Muon")}
    with uproot.recreate(path) as f:
        f.mktree("Events", types, counter_name=lambda c: "n" + c.partition("_")[0])
        f["Events"].extend(data)
    return path


@pytest.fixture(scope="module")
def pseudo_data():
    process = get_process("drell-yan", mll_min=1500.0, mll_max=2500.0, leptons="mumu")
    det = GaussianLeptonDetector(0.03, 0.02, 0.02, 100.0, 2.5)
    sim = simulate(process, det, 20000, {"mzp": 2100.0}, seed=3)
    return sim.x_reco[sim.passed][:60].numpy()


def test_train_writes_a_versioned_model_that_loads(model_dir):
    desc = json.loads((model_dir / "mem.json").read_text())
    assert desc["format_version"] == 2 and desc["process"]["name"] == "drell-yan"
    assert desc["ranges"] == {"mzp": [1800.0, 2300.0]} and desc["params"] == {"mzp": 2050.0}
    assert desc["components"]["transfer"]["kind"] == "transfer-flow"
    assert desc["components"]["proposal"]["kind"] == "mixture"
    assert desc["detector"]["kind"] == "gaussian-lepton"
    assert desc["provenance"]["invsim"]
    model = MEMModel.load(model_dir)
    assert model.ranges == {"mzp": (1800.0, 2300.0)} and model.observables.leptons == 2
    # the reference point moves the proposal's coordinates and the fiducial map too
    assert model.coordinates.map.__class__ is type(
        get_process("drell-yan", mll_min=1500.0, mll_max=2500.0).phase_space(
            {"mzp": 2050.0})[0])
    assert not list(model_dir.parent.glob(".dy_model.*"))  # no temporary left behind


def test_root_file_with_lplus_first_gives_the_canonical_tensor(model_dir, pseudo_data,
                                                               tmp_path):
    """The same events written ℓ⁻-first and ℓ⁺-first (in alternate events) read to one
    tensor, equal to the simulation's up to the file's float32 rounding."""
    from invsim.data import load_observed

    n = len(pseudo_data)
    a = _nanoaod(tmp_path / "a.root", pseudo_data, np.zeros(n, dtype=bool))
    b = _nanoaod(tmp_path / "b.root", pseudo_data, np.arange(n) % 2 == 1)
    obs = MEMModel.load(model_dir).observables
    xa, xb = load_observed(a, obs).x, load_observed(b, obs).x
    assert torch.equal(xa, xb)
    torch.testing.assert_close(xa, torch.as_tensor(pseudo_data).float().double())


def test_posterior_and_scan_on_a_root_file(model_dir, pseudo_data, tmp_path):
    data = _nanoaod(tmp_path / "f.root", pseudo_data, np.arange(len(pseudo_data)) % 2 == 1)
    res = _run(["posterior", "--model", model_dir, "--data", data, "--param", "mzp=1800:2300",
                "--chains", 2, "--samples", 30, "--warmup", 30, "--samples-per-event", 50,
                "-o", tmp_path / "post.nc", "--json"])
    out = json.loads(res.output.strip().splitlines()[-1])
    assert out["n_events"] == 60 and out["inputs"]["n_selected"] == 60
    assert len(out["inputs"]["sha256"]) == 64
    mzp = out["parameters"]["mzp"]
    assert 1800.0 <= mzp["mean"] <= 2300.0 and math.isfinite(mzp["sd"])
    idata = az.from_netcdf(tmp_path / "post.nc")
    assert "mzp" in az.summary(idata).index
    res = _run(["scan", "--model", model_dir, "--data", data, "--param", "mzp=1900:2300:9",
                "--samples-per-event", 50, "-o", tmp_path / "scan", "--json"])
    summary = json.loads(res.output.strip().splitlines()[-1])
    assert summary["inputs"]["path"] == str(data) and summary["n_events"] == 60


def test_flagged_events_are_reported_on_stdout_and_in_json(model_dir, pseudo_data, tmp_path):
    """25 importance samples per event leave (nearly) every event flagged: the warning
    must reach the plain output and --json, and --on-flagged error stops."""
    data = _nanoaod(tmp_path / "f.root", pseudo_data, np.zeros(len(pseudo_data), dtype=bool))
    common = ["scan", "--model", model_dir, "--data", data, "--param", "mzp=1900:2300:5",
              "--samples-per-event", 25]
    res = _run([*common, "-o", tmp_path / "s1"])
    flagged = [line for line in res.output.splitlines() if line.startswith("warning:")]
    assert flagged and "flagged" in flagged[0] and "unreliable" in flagged[0]
    res = _run([*common, "-o", tmp_path / "s2", "--json"])
    summary = json.loads(res.output.strip().splitlines()[-1])
    assert summary["n_flagged"] > 0 and summary["reliable"] is False and summary["warnings"]
    res = _run([*common, "-o", tmp_path / "s3", "--on-flagged", "error"], ok=False)
    assert res.exit_code != 0 and "flagged" in res.output


@pytest.mark.parametrize("case", ["branch", "empty", "param", "process"])
def test_bad_inputs_give_one_clear_line(model_dir, pseudo_data, tmp_path, case):
    n = len(pseudo_data)
    args = ["posterior", "--model", model_dir, "--param", "mzp=1800:2300", "--chains", 1,
            "--samples", 5, "--warmup", 5, "-o", tmp_path / "p.nc"]
    if case == "branch":
        data, want = _nanoaod(tmp_path / "f.root", pseudo_data, np.zeros(n, bool),
                              drop="Muon_phi"), "Muon_phi"
    elif case == "empty":
        # same-sign muon pairs only: no event passes the opposite-sign selection
        data = _nanoaod(tmp_path / "f.root", pseudo_data, np.zeros(n, bool), same_sign=True)
        want = "no event"
    elif case == "param":
        data = _nanoaod(tmp_path / "f.root", pseudo_data, np.zeros(n, bool))
        args[4], want = "foo=1:2", "foo"
    else:
        from forward.eventset import EventSet
        from forward.io import save_hdf5

        p = torch.zeros(3, 2, 4, dtype=torch.float64)
        p[..., 0] = math.hypot(150.0, 100.0)
        p[:, 0, 1], p[:, 1, 1] = 150.0, -150.0
        p[:, 0, 3], p[:, 1, 3] = 100.0, -100.0
        det = GaussianLeptonDetector(0.03, 0.02, 0.02, 10.0, 2.5)
        from forward.events import HardEvents

        hard = HardEvents(p, torch.full((3,), 0.1, dtype=torch.float64),
                          torch.full((3,), 0.1, dtype=torch.float64), 13000.0)
        reco = det.reconstruct(hard, (13, -13), seed=0)
        data = tmp_path / "tt.h5"
        save_hdf5(EventSet("ttbar", p, hard.x1, hard.x2, (13, -13), 13000.0, reco=reco), data)
        want = "ttbar"
    res = _run([*args, "--data", data], ok=False)
    lines = [ln for ln in res.output.strip().splitlines() if ln]
    assert res.exit_code != 0, res.output
    assert "Traceback" not in res.output and want in lines[-1], res.output


@pytest.fixture
def user_process():
    @register_process("my-dy-test")
    class MyDrellYan(DrellYan):
        """A user's copy of Drell–Yan, registered under its own name."""

    yield MyDrellYan
    unregister_process("my-dy-test")


def test_user_process_runs_through_xsec_train_and_save_load(user_process, tmp_path):
    res = _run(["xsec", "my-dy-test", *WINDOW, "--events", 20000, "--json"])
    assert json.loads(res.output.strip().splitlines()[-1])["sigma_pb"] > 0
    out = tmp_path / "user_model"
    _run(["train", "my-dy-test", "--detector", DETECTOR, *WINDOW, "--param", "mzp=1900:2100",
          "--trials", 20000, "--epochs", 1, "--points-per-axis", 1, "-o", out])
    model = MEMModel.load(out)
    assert type(model.process) is user_process
    model.save(tmp_path / "again")
    assert type(MEMModel.load(tmp_path / "again").process) is user_process


def test_train_refuses_bad_input_before_work(model_dir, tmp_path):
    res = _run(["train", "drell-yan", "--param", "mzp=1800:2300", "-o", model_dir], ok=False)
    assert res.exit_code == 2 and "exists" in res.output
    res = _run(["train", "drell-yan", "--param", "nope=1:2", "-o", tmp_path / "m"], ok=False)
    assert res.exit_code == 2 and "nope" in res.output
    res = _run(["train", "drell-yan", "--detector", "atlas", "-o", tmp_path / "m"], ok=False)
    assert res.exit_code == 2 and "atlas" in res.output
    res = _run(["train", "drell-yan", "-o", tmp_path / "no" / "such" / "m"], ok=False)
    assert res.exit_code == 2 and "does not exist" in res.output


@pytest.mark.slow
def test_ttbar_dilepton_trains_and_infers_end_to_end(tmp_path):
    out = tmp_path / "tt"
    _run(["train", "ttbar", "--set", "decays=dilepton", "--detector", "cms", "--param",
          "mt=170:175", "--trials", 60000, "--epochs", 1, "--points-per-axis", 2, "-o", out])
    model = MEMModel.load(out)
    assert model.observables.bjets == 2 and not model.observables.met
    sim = simulate(model.process, model_detector(model), 60000, {"mt": 172.0},
                   observables=model.observables, seed=4)
    from forward.io import save_hdf5

    data = tmp_path / "tt.h5"
    save_hdf5(sim.to_eventset(model.process, seed=4), data)
    res = _run(["scan", "--model", out, "--data", data, "--param", "mt=170:175:5",
                "--samples-per-event", 50, "--on-flagged", "ignore", "-o", tmp_path / "s",
                "--json"])
    summary = json.loads(res.output.strip().splitlines()[-1])
    assert summary["n_events"] == int(sim.passed.sum()) > 0


def model_detector(model):
    from forward.detector import detector_from_description

    return detector_from_description(model.detector)


def test_lhe_data_gives_the_parton_level_floor_in_either_particle_order(model_dir, tmp_path):
    """An LHE file (parton level) with ℓ⁺ listed first reads like one with ℓ⁻ first, and
    scan --model on it uses the model process's parton-level likelihood."""
    from forward.eventset import EventSet
    from forward.io import write_lhe
    from invsim.data import model_likelihood
    from invsim.mem import PartonLikelihood

    process = get_process("drell-yan", mll_min=1500.0, mll_max=2500.0, leptons="mumu")
    sim = simulate(process, GaussianLeptonDetector(), 4000, {"mzp": 2100.0}, seed=8)
    hard = sim.hard[:40]
    inc = torch.tensor([[2, -2]] * 40)
    minus_first = EventSet("drell-yan", hard.momenta, hard.x1, hard.x2, (13, -13),
                           hard.sqrt_s, incoming_pids=inc)
    plus_first = EventSet("drell-yan", hard.momenta.flip(1), hard.x1, hard.x2, (-13, 13),
                          hard.sqrt_s, incoming_pids=inc)
    a = write_lhe(minus_first, tmp_path / "a.lhe")
    b = write_lhe(plus_first, tmp_path / "b.lhe")
    la, oa = model_likelihood(model_dir, a, n_fiducial=20_000)
    lb, ob = model_likelihood(model_dir, b, n_fiducial=20_000)
    assert isinstance(la, PartonLikelihood) and oa.n_selected == 40
    assert torch.equal(oa.x, ob.x)
    theta = {"mzp": torch.tensor([2000.0, 2100.0], dtype=torch.float64)}
    torch.testing.assert_close(la.log_prob(theta), lb.log_prob(theta))
    res = _run(["scan", "--model", model_dir, "--data", b, "--param", "mzp=1900:2300:9",
                "-o", tmp_path / "s", "--json"])
    assert json.loads(res.output.strip().splitlines()[-1])["n_events"] == 40
