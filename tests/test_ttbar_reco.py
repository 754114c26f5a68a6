"""t t̄ → dilepton at reco level: the default selection, b-jets and missing pT.

Hard events of ``TTbar(decays="dilepton", leptons="all")`` through the default (CMS)
card detector and :meth:`RecoObservables.for_process`: the documented cuts hold on
every selected event, dropped events are counted, b-tagging follows the card's
efficiency and the missing pT is the neutrinos' pT plus the smearing of the visible
objects.
"""

from __future__ import annotations

import math

import pytest
import torch

from forward.detector import Detector
from forward.detector.objects import ObjectType
from forward.detector.smearing import efficiency
from forward.processes import get_process
from forward.processes.ttbar import TTbar
from invsim.observables import RecoObservables
from invsim.pairs import simulate


@pytest.fixture(scope="module")
def pairs():
    proc = TTbar(decays="dilepton", leptons="all")
    return proc, simulate(proc, Detector(), 100_000, seed=3)


def test_default_selection_of_decayed_ttbar():
    """for_process of t t̄ → dilepton: 2 leptons (any flavours with leptons="all"), 2
    b-jets, no MET (a function of the other columns), the documented cuts; keywords
    override them; no cuts for Drell–Yan."""
    obs = RecoObservables.for_process(TTbar(decays="dilepton", leptons="all"))
    assert (obs.leptons, obs.electrons, obs.bjets, obs.jets, obs.met) == (2, None, 2, 0, False)
    assert (obs.lepton_pt_min, obs.lepton_eta_max, obs.jet_pt_min, obs.jet_eta_max) == (
        20.0, 2.5, 30.0, 2.5)
    loose = RecoObservables.for_process(TTbar(decays="dilepton"), jet_pt_min=25.0)
    assert loose.jet_pt_min == 25.0 and loose.lepton_pt_min == 20.0 and loose.electrons == 2
    dy = RecoObservables.for_process(get_process("drell-yan"))
    assert dy.lepton_pt_min == 0.0 and math.isinf(dy.lepton_eta_max)
    assert TTbar().reco_cuts == {}


def test_selected_events_pass_the_cuts_and_dropped_ones_are_counted(pairs):
    """Every selected event has ℓ⁻, ℓ⁺ with pT > 20, |η| < 2.5 and two b-jets with
    pT > 30, |η| < 2.5; every other event is counted once in ``failed`` (first
    failure), and the two-b-tag requirement drops some."""
    _, sim = pairs
    obs = RecoObservables.for_process(TTbar(decays="dilepton", leptons="all"))
    x = sim.x_reco[sim.passed]
    n_sel = int(sim.passed.sum())
    assert 0 < n_sel < len(sim)
    col = {c: i for i, c in enumerate(obs.columns)}
    for stem, pt_min in (("lminus", 20.0), ("lplus", 20.0), ("bjet1", 30.0), ("bjet2", 30.0)):
        assert bool((x[:, col[f"{stem}_pt"]] >= pt_min).all()), stem
        assert bool((x[:, col[f"{stem}_eta"]].abs() <= 2.5).all()), stem
    assert bool(torch.isfinite(x).all()) and bool(torch.isnan(sim.x_reco[~sim.passed]).all())
    assert sum(sim.failed.values()) == len(sim) - n_sel
    assert sum(v for k, v in sim.failed.items() if "b" in k) > 0, sim.failed


def test_b_tagging_follows_the_card_efficiency(pairs):
    """Among the reconstructed b-quark jets the number tagged is within 4σ (binomial,
    σ² = Σ ε(1 - ε); false failure 6e-5) of Σ ε_b(pT, |η|) at the true kinematics."""
    proc, sim = pairs
    reco, card = sim.reco, Detector().card
    idx = reco.particle_index.clamp(min=0)
    is_b = reco.mask & ((reco.particle_index == 0) | (reco.particle_index == 3))
    p_true = sim.hard.momenta.gather(1, idx[..., None].expand(*idx.shape, 4))[is_b]
    pt = torch.hypot(p_true[:, 1], p_true[:, 2])
    eta = torch.asinh(p_true[:, 3] / pt)
    eps = efficiency(card.btag.b, pt, eta.abs())
    tagged = (reco.types[is_b] == ObjectType.BJET).sum()
    sd = float((eps * (1 - eps)).sum().sqrt())
    assert len(eps) > 5_000 and 0 < float(eps.mean()) < 1
    assert abs(float(tagged - eps.sum())) < 4 * sd


def test_missing_pt_is_the_neutrinos_plus_the_smearing(pairs):
    """When the four visible particles are all reconstructed, MET = pT(ν ν̄) − Σ
    (reco − true) pT of the visible objects, to rounding (LO momentum balance)."""
    _, sim = pairs
    reco = sim.reco
    p = sim.hard.momenta
    full = reco.mask.sum(-1) == 4
    assert int(full.sum()) > 1000
    idx = reco.particle_index.clamp(min=0)
    true_vis = p.gather(1, idx[..., None].expand(*idx.shape, 4))
    shift = torch.where(reco.mask[..., None], reco.momenta - true_vis, 0.0)[..., 1:3].sum(1)
    nu = p[:, [2, 5], 1:3].sum(1)
    want = nu - shift
    assert torch.allclose(reco.met[full], want[full], rtol=0, atol=1e-9 * float(p[..., 0].max()))
