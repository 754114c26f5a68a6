"""The detector protocol: both detectors reconstruct hard events, and their closed forms
agree with their own simulation (acceptance by counting, transfer by moments and by a
binned density); the analysis observables' canonical order."""

from __future__ import annotations

import math

import pytest
import torch

from forward.detector import (
    Detector,
    DetectorModel,
    GaussianLeptonDetector,
    describe_detector,
    detector_from_description,
    get_detector,
)
from forward.events import HardEvents
from invsim.observables import RecoObservables, hard_pt_eta_phi


def _events(pt, eta1, eta2, phi=0.3, n=1):
    """Back-to-back massless ℓ⁻ℓ⁺ events repeated n times, (pT, η₁, η₂) fixed."""
    pt, e1, e2 = (torch.full((n,), float(v), dtype=torch.float64) for v in (pt, eta1, eta2))
    c, s = math.cos(phi), math.sin(phi)
    k1 = torch.stack([pt * torch.cosh(e1), pt * c, pt * s, pt * torch.sinh(e1)], -1)
    k2 = torch.stack([pt * torch.cosh(e2), -pt * c, -pt * s, pt * torch.sinh(e2)], -1)
    x1 = pt * (torch.exp(e1) + torch.exp(e2)) / 13000
    x2 = pt * (torch.exp(-e1) + torch.exp(-e2)) / 13000
    return HardEvents(torch.stack([k1, k2], 1), x1, x2, 13000.0)


def test_both_detectors_follow_the_protocol():
    assert isinstance(Detector("cms"), DetectorModel)
    assert isinstance(GaussianLeptonDetector(), DetectorModel)
    for det in (Detector("cms"), GaussianLeptonDetector(0.05, 0.01, 0.01, 20.0, 2.5)):
        again = detector_from_description(describe_detector(det))
        assert describe_detector(again) == describe_detector(det)


def test_get_detector_parses_names_and_refuses_bad_ones(tmp_path):
    det = get_detector("gaussian:sigma_pt=0.05,pt_min=20")
    assert det == GaussianLeptonDetector(sigma_pt=0.05, pt_min=20.0)
    assert isinstance(get_detector("cms"), Detector)
    with pytest.raises(ValueError, match="sigma_px"):
        get_detector("gaussian:sigma_px=1")
    with pytest.raises(ValueError, match="no such file"):
        get_detector("atlas")
    with pytest.raises(ValueError, match="sigma_pt: expected a finite positive"):
        get_detector("gaussian:sigma_pt=-1")


def test_gaussian_reconstruct_equals_smear_on_observables():
    ev = _events(300.0, 0.4, -1.2, n=2000)
    det = GaussianLeptonDetector(0.03, 0.02, 0.02, 290.0, 2.5)
    reco = det.reconstruct(ev, (11, -11), seed=3)
    x_reco, passed = det.smear(hard_pt_eta_phi(ev), seed=3)
    ex = RecoObservables().extract(reco)
    assert torch.equal(ex.selected, passed)
    torch.testing.assert_close(ex.x, x_reco[passed], rtol=1e-12, atol=1e-9)
    assert 0 < int(passed.sum()) < 2000  # the cut at 290 GeV bites


@pytest.mark.parametrize("flavour", [11, 13])
def test_card_closed_form_acceptance_matches_its_simulation(flavour):
    """ε by counting 40 000 detector runs per hard point against the closed form, at
    points on the pT threshold, the η edge and in the bulk. Binomial errors; a correct
    closed form fails a 5σ check with probability < 1e-5 per point."""
    det = Detector({"electron": {"pt_min": 60.0}, "muon": {"pt_min": 60.0}})
    for pt, e1, e2 in ((61.0, 0.2, -0.3), (400.0, 2.39, 0.1), (900.0, -1.0, 1.6)):
        n = 40_000
        ev = _events(pt, e1, e2, n=n)
        reco = det.reconstruct(ev, (flavour, -flavour), seed=11)
        count = RecoObservables().extract(reco).selected.double().mean()
        cf = det.closed_form(2, [((flavour, -flavour), 1.0)])
        eps = float(cf.log_acceptance(hard_pt_eta_phi(ev)[:1]).exp())
        err = math.sqrt(eps * (1 - eps) / n)
        assert abs(float(count) - eps) < 5 * err + 1e-12, (pt, e1, e2, float(count), eps)


def test_card_closed_form_transfer_is_the_simulated_density():
    """Moments of the selected reco pT and η of the muon card against the closed form's
    Gaussian (σ from the card's resolution), and the normalisation ∫ε·r = ε by MC."""
    det = Detector("cms")
    n = 50_000
    ev = _events(500.0, 0.3, -2.0, n=n)
    reco = det.reconstruct(ev, (13, -13), seed=5)
    ex = RecoObservables().extract(reco)
    cf = det.closed_form(2, [((13, -13), 1.0)])
    xh = hard_pt_eta_phi(ev)[:1]
    # relative resolution of the muon card at pT = 500 GeV: sqrt(c² + (d pT)²)
    s1 = math.hypot(0.01, 1e-4 * 500.0)
    s2 = math.hypot(0.025, 3.5e-4 * 500.0)
    got = ex.x[:, 0].std() / 500.0, ex.x[:, 3].std() / 500.0
    # std of a sample std: σ/√(2n); 5σ
    assert abs(float(got[0]) - s1) < 5 * s1 / math.sqrt(2 * len(ex.x))
    assert abs(float(got[1]) - s2) < 5 * s2 / math.sqrt(2 * len(ex.x))
    # the density at the simulated draws: mean log r = -entropy of r
    mean_lr = float(cf.log_transfer(ex.x, xh.expand(len(ex.x), -1)).mean())
    # entropy of the product of Gaussians (pT, η, φ per lepton): ½ log(2πe σ²) each
    sig = [s1 * 500.0, 0.001, 0.001, s2 * 500.0, 0.001, 0.001]
    want = -sum(0.5 * math.log(2 * math.pi * math.e * s * s) for s in sig)
    # per-event log r has variance 3 (six unit Gaussians / 2): error sqrt(3/m)
    assert abs(mean_lr - want) < 5 * math.sqrt(3.0 / len(ex.x))


def test_observables_order_is_canonical_whatever_the_input_order():
    """Shuffling the object slots of every event (as another file writer might list
    them) gives the same tensor: ℓ⁻ first, then ℓ⁺, jets by pT."""
    ev = _events(300.0, 0.4, -1.2, n=500)
    det = GaussianLeptonDetector(0.03, 0.02, 0.02, 20.0, 2.5)
    reco = det.reconstruct(ev, (11, -11), seed=1)
    perm = torch.stack([torch.randperm(2, generator=torch.Generator().manual_seed(i))
                        for i in range(500)])
    shuffled = type(reco)(**{k: (getattr(reco, k).gather(1, perm if getattr(reco, k).ndim == 2
                                                         else perm[..., None].expand(-1, -1, 4))
                                 if k in ("momenta", "types", "charges", "mask",
                                          "particle_index") else getattr(reco, k))
                             for k in reco.field_names()})
    assert not torch.equal(shuffled.momenta, reco.momenta)
    a, b = RecoObservables().extract(reco), RecoObservables().extract(shuffled)
    assert torch.equal(a.x, b.x) and a.x.shape == (500, 6)
    # ℓ⁻ first: the leading column is the smeared ℓ⁻ (hard η 0.4), not ℓ⁺ (η -1.2)
    assert float((a.x[:, 1] - 0.4).abs().max()) < 0.2
    assert float((a.x[:, 4] + 1.2).abs().max()) < 0.2


def test_observables_requirements_are_counted_and_bad_settings_refused():
    ev = _events(300.0, 0.4, -1.2, n=10)
    det = GaussianLeptonDetector(0.03, 0.02, 0.02, 20.0, 2.5)
    ex = RecoObservables(leptons=2, bjets=1).extract(det.reconstruct(ev, (11, -11), seed=1))
    assert ex.x.shape == (0, 9) and ex.failed["at least 1 b-jets"] == 10
    assert "0 of 10 events selected" in ex.summary()
    with pytest.raises(ValueError, match="leptons: expected an integer >= 0"):
        RecoObservables(leptons=-1)
    with pytest.raises(ValueError, match="jet_pt_min"):
        RecoObservables(jet_pt_min=math.nan)
    o = RecoObservables(leptons=2, bjets=2, met=True, jet_pt_min=30.0)
    assert RecoObservables.from_dict(o.to_dict()) == o
    assert o.dim == 14 and o.periodic == (2, 5, 8, 11, 13)
