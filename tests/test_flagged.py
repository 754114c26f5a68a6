"""Flagged events: scans, posteriors and both CLIs say how many, why, and obey on_flagged.

``FlaggedToy`` is a Gaussian-mean likelihood whose ``evaluate`` flags events with the
same API as :class:`invsim.mem.MEMResult` (``flagged`` and ``flag_reasons``): every event
by "ESS < 20", the events with x > median also by "Pareto k > 0.7". The expected counts
are therefore known exactly. Also: the shared helpers merged in this change
(``make_generator``, ``extended_poisson_term``, the renamed MEM mixture, the profile).
"""

from __future__ import annotations

import json
import math
import textwrap
import warnings

import pytest
import torch
from click.testing import CliRunner

from forward._validation import make_generator
from invsim.infer import InferenceProblem, build_priors, profile_likelihood
from invsim.infer.flags import FlaggedEventsError, FlaggedEventsWarning
from invsim.infer.likelihood import extended_poisson_term
from invsim.infer.results import to_inference_data
from invsim.infer.toys import GaussianMean
from invsim.scan import scan

TOY = textwrap.dedent('''
    import torch
    from invsim.infer.toys import GaussianMean


    class FlaggedToy(GaussianMean):
        """GaussianMean whose evaluate() flags every event (ESS) and the upper half (k)."""

        def evaluate(self, theta):
            lp = self.log_prob(theta)
            high = (self.x > self.x.median()).expand(lp.shape)

            class R:
                log_p = lp
                error = torch.full_like(lp, 0.01)
                flag_reasons = {"ESS < 20": torch.ones_like(lp, dtype=torch.bool),
                                "Pareto k > 0.7": high}
                flagged = flag_reasons["ESS < 20"] | high

            return R()


    def make(events):
        return FlaggedToy(events.momenta[:, 0, 3], 10.0, mu_range=(-1000.0, 1000.0))
''')


@pytest.fixture(scope="module")
def toy_module(tmp_path_factory):
    folder = tmp_path_factory.mktemp("flagged")
    path = folder / "flagged_toy.py"
    path.write_text(TOY)
    import importlib.util

    spec = importlib.util.spec_from_file_location("flagged_toy", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return path, mod


def _x(n=60, seed=3):
    return 5.0 + 10.0 * torch.randn(n, dtype=torch.float64, generator=make_generator(seed))


def _grid():
    return {"mu": torch.linspace(0.0, 10.0, 11, dtype=torch.float64)}


# ------------------------------------------------------------------------------ scan
def test_scan_warns_and_records_flags(toy_module, tmp_path):
    _, mod = toy_module
    lik = mod.FlaggedToy(_x(), 10.0, mu_range=(-1000.0, 1000.0))
    with pytest.warns(FlaggedEventsWarning) as rec:
        res = scan(lik, _grid())
    (w,) = [r for r in rec if issubclass(r.category, FlaggedEventsWarning)]
    text = str(w.message)
    assert text.startswith("60 of 60 events flagged")
    assert "ESS < 20: 60" in text and "Pareto k > 0.7: 30" in text
    assert "may be unreliable" in text
    s = res.summary()
    assert s["n_flagged"] == 60 and s["reliable"] is False and res.reliable is False
    assert s["flag_reasons"] == {"ESS < 20": 60, "Pareto k > 0.7": 30}
    assert s["flag_message"] == text
    json.dumps(s)  # JSON-ready
    assert (res.dataset["n_flagged"].values == 60).all()
    nc = res.to_netcdf(tmp_path / "scan.nc")
    import xarray as xr

    with xr.open_dataset(nc) as back:
        assert int(back.attrs["n_flagged"]) == 60 and int(back.attrs["reliable"]) == 0
        assert json.loads(back.attrs["flag_reasons"]) == s["flag_reasons"]
        assert back.attrs["flag_message"] == text


def test_scan_on_flagged_error_ignore_and_choices(toy_module):
    _, mod = toy_module
    lik = mod.FlaggedToy(_x(), 10.0, mu_range=(-1000.0, 1000.0))
    for mode in ("error", "raise"):
        with pytest.raises(FlaggedEventsError, match="60 of 60 events flagged"):
            scan(lik, _grid(), on_flagged=mode)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FlaggedEventsWarning)
        quiet = scan(lik, _grid(), on_flagged="ignore")
    assert quiet.summary()["n_flagged"] == 60 and quiet.reliable is False
    with pytest.raises(ValueError, match="on_flagged"):
        scan(lik, _grid(), on_flagged="loud")


def test_scan_without_flags_is_reliable_or_unknown():
    # the plain toy has no evaluate: no diagnostics, reliability unknown
    lik = GaussianMean(_x(), 10.0, mu_range=(-1000.0, 1000.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error", FlaggedEventsWarning)
        res = scan(lik, _grid())
    s = res.summary()
    assert s["n_flagged"] is None and s["reliable"] is None and s["flag_message"] == ""
    assert "n_flagged" not in res.dataset.attrs


# ------------------------------------------------------------------------- posterior
def test_inference_data_records_flags_and_obeys_on_flagged(toy_module):
    _, mod = toy_module
    lik = mod.FlaggedToy(_x(), 10.0, mu_range=(-1000.0, 1000.0))
    draws = {"mu": 5.0 + torch.randn(2, 7, dtype=torch.float64,
                                     generator=make_generator(1))}
    problem = InferenceProblem(lik, build_priors(lik.parameters, lik.parameter_names))
    with pytest.warns(FlaggedEventsWarning, match="60 of 60 events flagged .*posterior"):
        idata = to_inference_data(problem, draws, method="test", batch_size=4)
    assert idata.attrs["n_flagged"] == 60 and idata.attrs["reliable"] == 0
    assert json.loads(idata.attrs["flag_reasons"]) == {"ESS < 20": 60, "Pareto k > 0.7": 30}
    assert (idata.sample_stats["n_flagged"].values == 60).all()
    strict = InferenceProblem(lik, problem.priors, on_flagged="error")
    with pytest.raises(FlaggedEventsError, match="60 of 60"):
        to_inference_data(strict, draws, method="test")
    with pytest.raises(ValueError, match="on_flagged"):
        InferenceProblem(lik, problem.priors, on_flagged="sometimes")
    assert InferenceProblem(lik, problem.priors, on_flagged="raise").on_flagged == "error"


# ------------------------------------------------------------------------------- CLIs
@pytest.fixture(scope="module")
def event_file(tmp_path_factory):
    pytest.importorskip("h5py")
    from forward.eventset import EventSet
    from forward.io import save_hdf5

    n = 60
    pz = _x(n)
    mom = torch.zeros(n, 2, 4, dtype=torch.float64)
    mom[:, 0, 3], mom[:, 1, 3] = pz, -pz
    mom[:, :, 0] = pz.abs().unsqueeze(-1) + 1.0
    ev = EventSet(process="drell-yan", momenta=mom,
                  x1=torch.full((n,), 0.01, dtype=torch.float64),
                  x2=torch.full((n,), 0.01, dtype=torch.float64),
                  pids=torch.tensor([11, -11]), sqrt_s=13000.0, seed=3)
    path = tmp_path_factory.mktemp("ev") / "ev.h5"
    save_hdf5(ev, path)
    return path


def test_cli_scan_reports_flags(toy_module, event_file, tmp_path):
    from invsim.cli_scan import scan_command

    factory = f"{toy_module[0]}:make"
    base = ["--events", str(event_file), "--likelihood", factory, "--param", "mu=0:10:11"]
    run = CliRunner().invoke(scan_command, [*base, "-o", str(tmp_path / "a")])
    assert run.exit_code == 0, run.output
    assert ("warning: 60 of 60 events flagged at one or more of 11 grid points "
            "(ESS < 20: 60, Pareto k > 0.7: 30): the interval may be unreliable") in run.output
    run = CliRunner().invoke(scan_command, [*base, "-o", str(tmp_path / "b"), "--json"])
    assert run.exit_code == 0, run.output
    s = json.loads(run.output)
    assert s["n_flagged"] == 60 and s["reliable"] is False
    assert s["warnings"] == [s["flag_message"]] and "60 of 60" in s["flag_message"]
    on_disk = json.loads((tmp_path / "b" / "scan.json").read_text())
    assert on_disk["reliable"] is False and on_disk["n_flagged"] == 60
    run = CliRunner().invoke(scan_command, [*base, "-o", str(tmp_path / "c"),
                                            "--on-flagged", "error"])
    assert run.exit_code == 1 and run.exception is not None
    assert isinstance(run.exception, SystemExit)  # a click error, no traceback
    assert "Error: on_flagged='error': 60 of 60 events flagged" in run.output
    assert "Traceback" not in run.output
    run = CliRunner().invoke(scan_command, [*base, "-o", str(tmp_path / "d"),
                                            "--on-flagged", "ignore"])
    assert run.exit_code == 0 and "warning" not in run.output


def test_cli_posterior_reports_flags(toy_module, event_file, tmp_path, monkeypatch):
    from invsim.cli_posterior import posterior

    monkeypatch.syspath_prepend(str(toy_module[0].parent))
    factory = "flagged_toy:make"  # this CLI takes MODULE:FUNCTION
    args = [str(event_file), "--likelihood", factory, "--method", "svi", "--steps", "50",
            "--samples", "20", "--seed", "1"]
    run = CliRunner().invoke(posterior, [*args, "-o", str(tmp_path / "p.nc")])
    assert run.exit_code == 0, run.output
    assert ("warning: 60 of 60 events flagged at one or more of 20 posterior draws "
            "(ESS < 20: 60, Pareto k > 0.7: 30): the posterior may be unreliable") in run.output
    run = CliRunner().invoke(posterior, [*args, "-o", str(tmp_path / "q.nc"), "--json"])
    s = json.loads(run.output)
    assert s["n_flagged"] == 60 and s["reliable"] is False and s["warnings"]
    run = CliRunner().invoke(posterior, [*args, "-o", str(tmp_path / "r.nc"),
                                         "--on-flagged", "error"])
    assert run.exit_code == 1 and "Error: on_flagged='error'" in run.output
    assert "Traceback" not in run.output and not (tmp_path / "r.nc").exists()


# ---------------------------------------------------------------- merged helpers
def test_make_generator_one_meaning_of_seed():
    a = torch.rand(4, generator=make_generator(7))
    assert torch.equal(a, torch.rand(4, generator=torch.Generator().manual_seed(7)))
    # seed=None: fresh non-deterministic seeds; equal draws have probability ~2^-96
    assert not torch.equal(torch.rand(4, generator=make_generator()),
                           torch.rand(4, generator=make_generator()))
    g = torch.Generator()
    assert make_generator(generator=g) is g
    with pytest.raises(ValueError, match="seed, generator"):
        make_generator(1, g)
    with pytest.raises(TypeError, match="seed"):
        make_generator(1.5)
    with pytest.raises(TypeError, match="seed"):
        make_generator(True)
    with pytest.raises(ValueError, match="seed"):
        make_generator(-1)
    with pytest.raises(TypeError, match="generator"):
        make_generator(generator=3)
    with pytest.raises(ValueError, match="generator: expected a generator on cuda"):
        make_generator(generator=g, device="cuda")
    import forward.detector
    import forward.detector.smearing

    assert forward.detector.make_generator is make_generator
    assert forward.detector.smearing.make_generator is make_generator


def test_extended_poisson_term_is_the_poisson_log_pmf():
    log_sig = torch.tensor([-1.0, 0.3, 2.0], dtype=torch.float64, requires_grad=True)
    lum, n = 40.0, 17
    ref = torch.distributions.Poisson(torch.exp(log_sig.detach()) * lum).log_prob(
        torch.tensor(float(n), dtype=torch.float64))
    out = extended_poisson_term(log_sig, n, lum)
    assert torch.allclose(out.detach(), ref, rtol=1e-12, atol=0)
    out.sum().backward()  # d/dlog σ = n − ν
    assert torch.allclose(log_sig.grad, n - torch.exp(log_sig.detach()) * lum, rtol=1e-12)
    with pytest.raises(ValueError, match="luminosity"):
        extended_poisson_term(log_sig, n, 0.0)
    with pytest.raises(TypeError, match="n_events"):
        extended_poisson_term(log_sig, 2.5, lum)


def test_mem_mixture_old_name_warns():
    import invsim.mem
    from invsim.mem import StratifiedMixtureProposal

    with pytest.warns(FutureWarning, match="StratifiedMixtureProposal"):
        old = invsim.mem.MixtureProposal
    assert old is StratifiedMixtureProposal
    with pytest.warns(FutureWarning, match="StratifiedMixtureProposal"):
        from invsim.mem.proposals import MixtureProposal  # noqa: F401


def test_profile_likelihood_is_the_scan():
    lik = GaussianMean(_x(), 10.0, mu_range=(-1000.0, 1000.0))
    problem = InferenceProblem(lik, build_priors(lik.parameters, lik.parameter_names))
    grid = torch.linspace(0.0, 10.0, 21, dtype=torch.float64)
    prof = profile_likelihood(problem, "mu", grid)
    ref = scan(lik, {"mu": grid})
    assert torch.equal(prof.minus2_delta_loglik,
                       torch.as_tensor(ref.dataset["m2dlogl"].values))
    (iv,) = [i for i in ref.intervals if abs(i.level - 1.0) < 1e-12]
    assert prof.low == iv.lower and prof.high == iv.upper and prof.mle == ref.best_fit["mu"]
    assert prof.scan is not None
    # exact: x̄ ± σ/√n up to the chord error of linear interpolation (h = 0.5)
    xbar, sd = float(lik.x.mean()), 10.0 / math.sqrt(60)
    tol = 0.5**2 / (8 * sd) + 1e-9
    assert abs(prof.low - (xbar - sd)) < tol and abs(prof.high - (xbar + sd)) < tol
