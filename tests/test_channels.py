"""Analysis channels: RecoObservables.electrons and invsim.mem.ChannelLikelihood."""

from __future__ import annotations

import math

import pytest
import torch
from _helpers import seeded

from forward.detector import Detector
from forward.integrand import HadronicIntegrand
from forward.processes import get_process
from invsim.infer import check_likelihood
from invsim.mem import ChannelLikelihood
from invsim.mem.parton import PartonLikelihood
from invsim.observables import RecoObservables
from invsim.scan import scan

DT = torch.float64


def _events(process, n, seed):
    integrand = HadronicIntegrand(process)
    ev, _ = integrand.map.forward(torch.rand(n, integrand.dim, generator=seeded(seed), dtype=DT))
    with torch.no_grad():
        return ev[integrand.differential(ev) > 0]


def test_electrons_select_the_flavour_content():
    # Drell-Yan e+e- and mu+mu- through the card: the "both" observables keep both
    # flavours, the channel observables exactly the events of their own flavour
    dy = get_process("drell-yan", mll_min=200.0, mll_max=400.0)
    hard = _events(dy, 600, 1)
    pids = dy.sample_final_state(len(hard), generator=seeded(2))
    reco = Detector("cms").reconstruct(hard, pids, seed=3)
    both = RecoObservables(leptons=2).extract(reco)
    ee = RecoObservables(leptons=2, electrons=2).extract(reco)
    mm = RecoObservables(leptons=2, electrons=0).extract(reco)
    assert int(ee.selected.sum()) + int(mm.selected.sum()) == int(both.selected.sum())
    is_e = (pids.abs() == 11).all(-1)
    assert bool((ee.selected <= is_e).all()) and bool((mm.selected <= ~is_e).all())
    assert ee.failed["exactly 2 electron(s) among them"] > 0
    assert torch.equal(torch.cat([both.x[is_e[both.selected]], both.x[~is_e[both.selected]]]),
                       torch.cat([ee.x, mm.x]))


def test_electrons_from_the_process_and_checked():
    assert RecoObservables.for_process(get_process("drell-yan", leptons="ee")).electrons == 2
    assert RecoObservables.for_process(get_process("drell-yan", leptons="mumu")).electrons == 0
    assert RecoObservables.for_process(get_process("drell-yan")).electrons is None
    obs = RecoObservables(leptons=2, electrons=1)
    assert RecoObservables.from_dict(obs.to_dict()) == obs
    assert RecoObservables.from_dict({"leptons": 2}).electrons is None  # older files
    with pytest.raises(ValueError, match="electrons: expected at most leptons=2, got 3"):
        RecoObservables(leptons=2, electrons=3)
    with pytest.raises(ValueError, match="electrons"):
        RecoObservables(leptons=2, electrons=-1)


@pytest.fixture(scope="module")
def channels():
    both = get_process("drell-yan", mll_min=1500.0, mll_max=2500.0, leptons="both")
    ee = get_process("drell-yan", mll_min=1500.0, mll_max=2500.0, leptons="ee")
    mm = get_process("drell-yan", mll_min=1500.0, mll_max=2500.0, leptons="mumu")
    ev_e, ev_m = _events(ee, 40, 11), _events(mm, 30, 12)
    kw = dict(parameter_names=["mzp"], n_fiducial=20_000)
    lik = ChannelLikelihood({"ee": PartonLikelihood(ee, ev_e, seed=13, **kw),
                             "mumu": PartonLikelihood(mm, ev_m, seed=14, **kw)})
    ref = (PartonLikelihood(both, ev_e, seed=15, **kw), PartonLikelihood(both, ev_m, seed=15, **kw))
    return lik, ref


def test_channels_equal_the_flavour_summed_process(channels):
    # For massless leptons the ee and mumu channels each carry half of the flavour-summed
    # cross section with the same shape, so log p(x, c | θ) = log p_both(x | θ) - log 2
    # and σ_ee + σ_mumu = σ_both, up to the Monte Carlo errors of the three independent
    # fiducial samples (5 combined σ: false-failure rate < 1e-6 per comparison)
    lik, (ref_e, ref_m) = channels
    grid = torch.tensor([1950.0, 2000.0, 2060.0], dtype=DT)
    with torch.no_grad():
        lp, lsf = lik.log_prob_and_log_sigma_fid({"mzp": grid})
        want = torch.cat([ref_e.log_prob({"mzp": grid}), ref_m.log_prob({"mzp": grid})], -1)
        want_sf = ref_e.log_sigma_fid({"mzp": grid})
        err = torch.sqrt(sum(x.log_sigma_fid_error({"mzp": grid}) ** 2
                             for x in (*lik.channels.values(), ref_e)))
    assert lp.shape == (3, lik.n_events) == (3, 70)
    assert bool((err > 0).all() & (err < 0.05).all())  # 5 err well below log 2
    dev = lp - (want - math.log(2))
    # the per-event deviation is common to all events of a channel (σ_fid only)
    assert torch.allclose(dev[:, :40], dev[:, :1].expand(-1, 40), atol=1e-10)
    assert bool((dev.abs() < 5 * err.unsqueeze(-1)).all()), (dev[:, [0, 40]], err)
    assert bool(((lsf - want_sf).abs() < 5 * err).all())
    # one θ point gives the rows of the batch; the protocol checks pass
    with torch.no_grad():
        one = lik.log_prob({"mzp": torch.tensor(2000.0, dtype=DT)})
    assert torch.allclose(one, lp[1], atol=1e-12, rtol=0)
    check_likelihood(lik)
    assert lik.channel_of(39) == "ee" and lik.channel_of(40) == "mumu"


def test_channels_scan_and_extended_term(channels):
    # the extended scan of the combined likelihood equals the sum of the channels'
    # extended scans: the Poisson term factorises over channels, up to the θ-independent
    # multinomial coefficient log(70! / (40! 30!)) of which events fall in which channel
    lik, _ = channels
    grid = {"mzp": torch.linspace(1950.0, 2050.0, 5, dtype=DT)}
    both = scan(lik, grid, luminosity=100.0)
    parts = [scan(c, grid, luminosity=100.0) for c in lik.channels.values()]
    total = sum(torch.as_tensor(p.dataset["log_l"].values) for p in parts)
    coef = math.lgamma(71) - math.lgamma(41) - math.lgamma(31)
    assert torch.allclose(torch.as_tensor(both.dataset["log_l"].values), total - coef,
                          atol=1e-8, rtol=0)


def test_channels_bad_input(channels):
    lik, (ref_e, _) = channels
    with pytest.raises(TypeError, match="channels: expected a mapping"):
        ChannelLikelihood([ref_e])
    with pytest.raises(ValueError, match="at least one channel"):
        ChannelLikelihood({})
    with pytest.raises(TypeError, match=r"channels\['x'\]: expected a likelihood"):
        ChannelLikelihood({"x": object()})
    other = PartonLikelihood(ref_e.process, _events(ref_e.process, 5, 3),
                             parameter_names=["mzp", "gzp"], n_fiducial=100)
    with pytest.raises(ValueError, match="parameter_names"):
        ChannelLikelihood({"a": ref_e, "b": other})
    with pytest.raises(ValueError, match="index"):
        lik.channel_of(70)


def test_channel_likelihood_of_a_file(tmp_path):
    # ee and mumu channels with exact pieces (Gaussian detector) on one file of both
    # flavours: the channels split its selected events, and each event's log p(x, c | θ)
    # equals the flavour-blind model's log p(x | θ) - log 2 (massless leptons: equal
    # shares) within 5 combined Monte Carlo errors (per-event importance sampling and
    # the fiducial samples; false failures < 1e-6 per event, 1e-4 over the file)
    from forward.detector import GaussianLeptonDetector
    from forward.io import save_hdf5
    from invsim.data import channel_likelihood, model_likelihood
    from invsim.exact import ExactAcceptance, ExactTransfer
    from invsim.mem import MEMModel
    from invsim.mem.reco_proposal import RecoGaussianProposal
    from invsim.pairs import simulate

    det = GaussianLeptonDetector(0.03, 0.02, 0.02, 100.0, 2.5)
    kinds = {lep: get_process("drell-yan", mll_min=1500.0, mll_max=2500.0, leptons=lep)
             for lep in ("both", "ee", "mumu")}
    sim = simulate(kinds["both"], det, 3000, observables=RecoObservables(leptons=2), seed=4)
    path = tmp_path / "ev.h5"
    save_hdf5(sim.to_eventset(kinds["both"]), path)

    def model(process):
        return MEMModel(process, RecoGaussianProposal(det, process.sqrt_s), ExactTransfer(det),
                        ExactAcceptance(det), hard_observables="pt_eta_phi",
                        observables=RecoObservables.for_process(process))

    kw = dict(parameters=["mzp"], n_samples=400, n_fiducial=20_000, seed=5)
    lik, observed = channel_likelihood({"ee": model(kinds["ee"]), "mumu": model(kinds["mumu"])},
                                       path, **kw)
    ref, ref_obs = model_likelihood(model(kinds["both"]), path, **kw)
    n_e, n_m = observed["ee"].n_selected, observed["mumu"].n_selected
    assert n_e > 50 and n_m > 50 and n_e + n_m == ref_obs.n_selected == lik.n_events
    theta = {"mzp": torch.tensor(2000.0, dtype=DT)}
    with torch.no_grad():
        got, want = lik.evaluate(theta), ref.evaluate(theta)
    # the reference's events in the channels' order (ee first)
    y = ref_obs.x
    is_e = torch.zeros(len(y), dtype=torch.bool)
    # match rows: each channel's x is a subset of the file's selected rows
    for row in observed["ee"].x:
        is_e |= (y == row).all(-1)
    assert int(is_e.sum()) == n_e
    order = torch.cat([torch.nonzero(is_e).flatten(), torch.nonzero(~is_e).flatten()])
    err = torch.sqrt(got.error**2 + want.error[order] ** 2 + got.sigma_fid_error**2
                     + want.sigma_fid_error**2)
    dev = got.log_p - (want.log_p[order] - math.log(2))
    assert bool((dev.abs() < 5 * err).all()), float((dev.abs() / err).max())
    # overlapping selections are refused
    with pytest.raises(ValueError, match="channels 'a' and 'b' overlap"):
        channel_likelihood({"a": model(kinds["both"]), "b": model(kinds["ee"])}, path, **kw)


def test_cli_scan_with_channel_models(tmp_path):
    # invsim scan --model ee=DIR --model mumu=DIR: one scan summed over the channels,
    # the inputs recorded per channel; a single unnamed model among several is refused
    import json

    from click.testing import CliRunner

    from forward.detector import GaussianLeptonDetector
    from forward.io import save_hdf5
    from invsim.cli.scan import scan_command
    from invsim.exact import ExactAcceptance, ExactTransfer
    from invsim.mem import MEMModel
    from invsim.mem.reco_proposal import RecoGaussianProposal
    from invsim.pairs import simulate

    det = GaussianLeptonDetector(0.03, 0.02, 0.02, 100.0, 2.5)
    both = get_process("drell-yan", mll_min=1500.0, mll_max=2500.0, leptons="both")
    sim = simulate(both, det, 600, observables=RecoObservables(leptons=2), seed=4)
    data = tmp_path / "ev.h5"
    save_hdf5(sim.to_eventset(both), data)
    dirs = {}
    for lep in ("ee", "mumu"):
        process = get_process("drell-yan", mll_min=1500.0, mll_max=2500.0, leptons=lep)
        MEMModel(process, RecoGaussianProposal(det, process.sqrt_s), ExactTransfer(det),
                 ExactAcceptance(det), hard_observables="pt_eta_phi",
                 observables=RecoObservables.for_process(process),
                 ranges={"mzp": (1800.0, 2300.0)}).save(tmp_path / lep)
        dirs[lep] = tmp_path / lep
    runner = CliRunner()
    res = runner.invoke(scan_command, ["--data", str(data), "--model", f"ee={dirs['ee']}",
                               "--model", f"mumu={dirs['mumu']}", "--param", "mzp=1900:2100:3",
                               "--samples-per-event", "100", "-o", str(tmp_path / "s"),
                               "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output.strip().splitlines()[-1])
    chans = summary["inputs"]["channels"]
    assert set(chans) == {"ee", "mumu"}
    assert chans["ee"]["n_selected"] + chans["mumu"]["n_selected"] == summary["n_events"]
    assert chans["ee"]["n_selected"] > 0 and chans["mumu"]["n_selected"] > 0
    text = runner.invoke(scan_command, ["--data", str(data), "--model", f"ee={dirs['ee']}",
                                        "--model", f"mumu={dirs['mumu']}", "--param",
                                        "mzp=1900:2100:3", "--samples-per-event", "100",
                                        "-o", str(tmp_path / "s"), "--overwrite"])
    assert text.exit_code == 0 and "channel ee:" in text.output, text.output
    bad = runner.invoke(scan_command, ["--data", str(data), "--model", str(dirs["ee"]),
                               "--model", f"mumu={dirs['mumu']}", "--param", "mzp=1900:2100:3",
                               "-o", str(tmp_path / "s2")])
    assert bad.exit_code == 2 and "NAME=DIR" in bad.output and "Traceback" not in bad.output
