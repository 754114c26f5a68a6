"""``invsim scan``: end-to-end on an HDF5 event file with a toy likelihood factory.

The toy (written to a temporary module) scores x_i = pz of the first particle with
N(mu, sigma): with sigma fixed −2Δlog L = n (mu − x̄)²/σ², an exact parabola, so the
1σ interval is x̄ ± σ/√n up to the linear interpolation between grid points.
"""

from __future__ import annotations

import json
import math
import textwrap

import pytest
import torch
from click.testing import CliRunner

from invsim.cli.scan import scan_command

pytest.importorskip("h5py")

TOY = textwrap.dedent('''
    import math
    import torch
    from forward.processes.base import Parameter


    class Toy:
        parameter_names = ("mu", "sigma")
        parameters = {"mu": Parameter("mu", 0.0, -50.0, 50.0, "GeV"),
                      "sigma": Parameter("sigma", 5.0, 0.5, 100.0, "GeV")}

        def __init__(self, x):
            self.x = x

        def log_prob(self, theta):
            mu, sigma = theta["mu"].unsqueeze(-1), theta["sigma"].unsqueeze(-1)
            z = (self.x - mu) / sigma
            return -0.5 * z**2 - torch.log(sigma) - 0.5 * math.log(2 * math.pi)


    def make(events):
        return Toy(events.momenta[:, 0, 3])


    def not_a_likelihood(events):
        return 42
''')


@pytest.fixture
def setup(tmp_path):
    from forward.eventset import EventSet
    from forward.io import save_hdf5

    n = 200
    g = torch.Generator().manual_seed(11)
    pz = 3.0 + 10.0 * torch.randn(n, generator=g, dtype=torch.float64)
    mom = torch.zeros(n, 2, 4, dtype=torch.float64)
    mom[:, 0, 3], mom[:, 1, 3] = pz, -pz
    mom[:, :, 0] = pz.abs().unsqueeze(-1) + 1.0
    events = EventSet(process="toy", momenta=mom, x1=torch.full((n,), 0.1, dtype=torch.float64),
                      x2=torch.full((n,), 0.1, dtype=torch.float64), pids=[11, -11],
                      sqrt_s=13000.0)
    h5 = save_hdf5(events, tmp_path / "ev.h5")
    module = tmp_path / "toy_factory.py"
    module.write_text(TOY)
    return {"h5": h5, "module": module, "xbar": float(pz.mean()), "s2": float(pz.var(False)),
            "n": n, "out": tmp_path / "out"}


def _run(args):
    return CliRunner().invoke(scan_command, [str(a) for a in args])


def test_1d_scan_end_to_end_with_json(setup):
    s = setup
    res = _run(["--events", s["h5"], "--likelihood", f"{s['module']}:make",
                "--param", "mu=-2:8:201", "--fix", "sigma=10", "-o", s["out"], "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["best_fit"]["mu"] == pytest.approx(s["xbar"], abs=1e-9)
    h = 10 / 200
    for iv in summary["intervals"]:
        d = 10 / math.sqrt(s["n"]) * math.sqrt(iv["level"])
        tol = d - math.sqrt(d * d - h * h / 4) + 1e-9  # chord vs parabola, see test_scan
        assert abs(iv["lower"] - (s["xbar"] - d)) <= tol
        assert abs(iv["upper"] - (s["xbar"] + d)) <= tol
    assert summary["n_events"] == s["n"] and summary["fixed"] == {"sigma": 10.0}
    assert sorted(p.name for p in s["out"].iterdir()) == [
        "scan.csv", "scan.json", "scan.nc", "scan.png"]
    assert json.loads((s["out"] / "scan.json").read_text()) == summary
    lines = (s["out"] / "scan.csv").read_text().splitlines()
    assert lines[0].startswith("mu,m2dlogl,") and len(lines) == 202
    # a second run refuses the non-empty folder, then replaces it with --overwrite
    again = _run(["--events", s["h5"], "--likelihood", f"{s['module']}:make",
                  "--param", "mu=-2:8:21", "-o", s["out"]])
    assert again.exit_code != 0 and "--overwrite" in again.output
    assert json.loads((s["out"] / "scan.json").read_text()) == summary
    again = _run(["--events", s["h5"], "--likelihood", f"{s['module']}:make",
                  "--param", "mu=-2:8:21", "-o", s["out"], "--overwrite"])
    assert again.exit_code == 0, again.output
    assert "68.3% CL" in again.output


def test_profile_and_2d_from_an_importable_module(setup, monkeypatch):
    s = setup
    monkeypatch.syspath_prepend(str(s["module"].parent))
    res = _run(["--events", s["h5"], "--likelihood", "toy_factory:make",
                "--param", "mu=-1:7:17", "--profile", "sigma=1:50", "-o", s["out"], "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["profiled"] == ["sigma"] and summary["all_converged"]
    # profiled sigma at the lowest grid point: sqrt(s² + (mu − x̄)²)
    mu_low = min((abs(m - s["xbar"]), m) for m in torch.linspace(-1, 7, 17).tolist())[1]
    assert summary["best_fit"]["sigma"] == pytest.approx(
        math.sqrt(s["s2"] + (mu_low - s["xbar"]) ** 2), rel=1e-6)
    out2 = s["out"].parent / "out2d"
    res = _run(["--events", s["h5"], "--likelihood", "toy_factory:make",
                "--param", "mu=-1:7:25", "--param", "sigma=7:14:25", "-o", out2, "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert [c["level"] for c in summary["contours"]] == pytest.approx([2.2957, 5.9915],
                                                                      abs=1e-4)
    assert all(c["closed"] == [True] for c in summary["contours"])
    assert (out2 / "scan.png").stat().st_size > 10_000


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--param", "mu=0:1"], "NAME=LO:HI:N"),
        (["--param", "mu=1:0:5"], "LO < HI"),
        (["--param", "mu=0:1:2"], "N >= 3"),
        (["--param", "nu=0:1:5"], "unknown parameter 'nu'"),
        (["--param", "mu=0:1:5", "--param", "sigma=1:2:3", "--param", "x=0:1:3"],
         "one or two"),
        (["--param", "mu=0:1:5", "--profile", "sigma=3"], "NAME=LO:HI"),
        (["--param", "mu=0:1:5", "--fix", "sigma=abc"], "expected a number"),
        (["--param", "mu=0:1:5", "--luminosity", "10"], "log_sigma_fid"),
        (["--param", "mu=-60:0:5"], "outside the allowed range"),
    ],
)
def test_bad_options_fail_with_a_message(setup, extra, match):
    s = setup
    res = _run(["--events", s["h5"], "--likelihood", f"{s['module']}:make", "-o", s["out"],
                *extra])
    assert res.exit_code != 0
    assert match in res.output, res.output
    assert not s["out"].exists() or not any(s["out"].iterdir())


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("no_colon", "MODULE:FUNCTION"),
        ("{module}:missing", "no callable 'missing'"),
        ("{module}:not_a_likelihood", "log_prob"),
        ("/nonexistent/toy.py:make", "cannot import"),
        ("invsim_no_such_module_xyz:make", "cannot import"),
    ],
)
def test_bad_factories_fail_with_a_message(setup, spec, match):
    s = setup
    res = _run(["--events", s["h5"], "--likelihood", spec.format(module=s["module"]),
                "--param", "mu=0:1:5", "-o", s["out"]])
    assert res.exit_code != 0
    assert match in res.output, res.output


def test_not_an_event_file(setup, tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5")
    res = _run(["--events", bad, "--likelihood", f"{setup['module']}:make",
                "--param", "mu=0:1:5", "-o", setup["out"]])
    assert res.exit_code != 0 and "--data" in res.output
