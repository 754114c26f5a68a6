"""Tests of forward.detector: resolutions, efficiencies, acceptance, b-tagging, MET, config.

Statistical checks compare with the configured numbers in units of the estimator's own
standard error at 5σ; each such comparison fails with probability < 6e-7 for a correct
implementation (two-sided normal tail), so a test with B bins fails with < B x 6e-7.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from forward import kinematics as kin
from forward.detector import (
    Detector,
    DetectorCard,
    ObjectType,
    ParticleObjects,
    default_card,
    efficiency,
    load_card,
)
from forward.events import HardEvents

N_SIGMA = 5.0
ZERO_OBJ = {
    "resolution": {"variable": "energy", "eta_max": [math.inf], "stochastic": [0.0],
                   "noise": [0.0], "constant": [0.0], "linear": [0.0]},
    "efficiency": {"eta_edges": [0.0, math.inf], "pt_edges": [0.0, math.inf], "values": [[1.0]]},
    "pt_min": 0.0, "eta_max": math.inf, "sigma_eta": 0.0, "sigma_phi": 0.0,
}
PERFECT = {name: ZERO_OBJ for name in ("electron", "muon", "photon", "jet", "bjet")}


def _objects(n, pid, *, pt_range=(10.0, 1000.0), eta_max=2.5, mass=0.0, seed=0, device="cpu",
             dtype=torch.float64):
    """n single-object events: log-uniform pT, uniform η and φ."""
    g = torch.Generator().manual_seed(seed)
    lo, hi = math.log(pt_range[0]), math.log(pt_range[1])
    pt = torch.exp(lo + (hi - lo) * torch.rand(n, generator=g, dtype=torch.float64))
    eta = (2 * torch.rand(n, generator=g, dtype=torch.float64) - 1) * eta_max
    phi = (2 * torch.rand(n, generator=g, dtype=torch.float64) - 1) * math.pi
    p = kin.from_pt_eta_phi_m(pt, eta, phi, mass)[:, None, :].to(device=device, dtype=dtype)
    ids = torch.full((n, 1), pid, dtype=torch.int64, device=device)
    return ParticleObjects(p, ids, torch.ones(n, 1, dtype=torch.bool, device=device),
                           torch.arange(n, device=device))


def _check_pulls_per_bin(truth_x, pulls, edges):
    """Mean 0 and width 1 of the pulls in each bin of truth_x, within 5 standard errors."""
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (truth_x >= lo) & (truth_x < hi)
        z = pulls[sel]
        n = z.numel()
        assert n > 2000, (lo, hi, n)
        width = z.std()
        # standard error of a Gaussian sample std: 1/sqrt(2(n-1)); of the mean: 1/sqrt(n)
        assert abs(float(width) - 1.0) < N_SIGMA / math.sqrt(2 * (n - 1)), (lo, hi, float(width))
        assert abs(float(z.mean())) < N_SIGMA / math.sqrt(n), (lo, hi, float(z.mean()))


def test_calorimeter_resolution_per_energy_bin(device):
    a, b, c = 0.15, 0.6, 0.01  # σ_E/E = a/√E ⊕ b/E ⊕ c, configured here
    card = DetectorCard.from_dict({"electron": {**ZERO_OBJ, "resolution": {
        "variable": "energy", "eta_max": [math.inf], "stochastic": [a], "noise": [b],
        "constant": [c], "linear": [0.0]}}})
    objs = _objects(120_000, 11, pt_range=(10.0, 500.0), device=device)
    reco = Detector(card)(objs, seed=11)
    assert bool(reco.mask.all())
    e_true = objs.momenta[:, 0, 0]
    e_reco = reco.momenta[:, 0, 0]
    sigma = torch.sqrt(a**2 / e_true + b**2 / e_true**2 + c**2)  # independent of the code
    pulls = (e_reco / e_true - 1) / sigma
    _check_pulls_per_bin(e_true.cpu(), pulls.cpu(), [10, 20, 40, 80, 160, 320, 1e5])
    # residual width against the configured rms σ in one bin (same statistics, absolute form)
    sel = (e_true > 40) & (e_true < 80)
    width = (e_reco / e_true - 1)[sel].std()
    sigma_rms = sigma[sel].pow(2).mean().sqrt()
    assert abs(float(width / sigma_rms) - 1) < N_SIGMA / math.sqrt(2 * int(sel.sum()))
    # pT, mass and direction scale together: η and φ unchanged without angular smearing
    torch.testing.assert_close(kin.pseudorapidity(reco.momenta[:, 0]),
                               kin.pseudorapidity(objs.momenta[:, 0]))


def test_default_card_muon_resolution_per_pt_bin():
    # Delphes CMS MuonMomentumSmearing, typed in independently of forward.detector.card
    c = torch.tensor([0.01, 0.015, 0.025], dtype=torch.float64)
    d = torch.tensor([1.0e-4, 1.5e-4, 3.5e-4], dtype=torch.float64)
    objs = _objects(200_000, 13, pt_range=(20.0, 2000.0), eta_max=2.3, seed=3)
    reco = Detector("cms")(objs, seed=5)
    ok = reco.mask[:, 0]
    pt_t = kin.pt(objs.momenta[:, 0])[ok]
    aeta = kin.pseudorapidity(objs.momenta[:, 0]).abs()[ok]
    b = (aeta > 0.5).long() + (aeta > 1.5).long()
    sigma = torch.sqrt(c[b] ** 2 + (d[b] * pt_t) ** 2)
    pulls = (kin.pt(reco.momenta[ok, 0]) / pt_t - 1) / sigma
    _check_pulls_per_bin(pt_t, pulls, [20, 50, 100, 200, 500, 2000])
    # η, φ smearing of 1 mrad (default muon card)
    deta = kin.pseudorapidity(reco.momenta[ok, 0]) - kin.pseudorapidity(objs.momenta[ok, 0])
    dphi = kin.delta_phi(kin.phi(reco.momenta[ok, 0]), kin.phi(objs.momenta[ok, 0]))
    n = int(ok.sum())
    for resid in (deta, dphi):
        assert abs(float(resid.std() / 0.001) - 1) < N_SIGMA / math.sqrt(2 * (n - 1))


def test_efficiency_and_acceptance_per_bin():
    values = [[0.9, 0.5], [0.7, 0.2]]
    card = DetectorCard.from_dict({"photon": {**ZERO_OBJ, "pt_min": 15.0, "eta_max": 2.2,
                                              "efficiency": {"eta_edges": [0, 1.0, 2.0],
                                                             "pt_edges": [10, 50, math.inf],
                                                             "values": values}}})
    objs = _objects(200_000, 22, pt_range=(5.0, 200.0), eta_max=2.5, seed=7)
    reco = Detector(card)(objs, seed=8)
    pt = kin.pt(objs.momenta[:, 0])
    aeta = kin.pseudorapidity(objs.momenta[:, 0]).abs()
    found = reco.mask[:, 0]
    # outside the table or the acceptance: never reconstructed (exactly)
    assert not bool(found[(pt < 15) | (aeta > 2.0)].any())
    for i, (e0, e1) in enumerate([(0, 1.0), (1.0, 2.0)]):
        for j, (p0, p1) in enumerate([(15, 50), (50, 1e9)]):
            sel = (aeta >= e0) & (aeta < e1) & (pt >= p0) & (pt < p1)
            n, k = int(sel.sum()), int(found[sel].sum())
            eps = values[i][j]
            assert abs(k / n - eps) < N_SIGMA * math.sqrt(eps * (1 - eps) / n), (i, j, k / n)


def test_efficiency_lookup_edges():
    eff = default_card().electron.efficiency
    pt = torch.tensor([9.99, 10.0, 99.9, 100.0, 500.0, 50.0, 50.0])
    eta = torch.tensor([0.1, 0.1, 1.49, 1.49, 2.0, 2.5, 2.6])
    expected = torch.tensor([0.0, 0.9025, 0.9025, 0.9405, 0.765, 0.0, 0.0])
    torch.testing.assert_close(efficiency(eff, pt, eta), expected)


def test_btag_rates():
    card = DetectorCard.from_dict({"jet": ZERO_OBJ, "bjet": ZERO_OBJ, "btag": {
        "b": {"eta_edges": [0, 2.5], "pt_edges": [0, math.inf], "values": [[0.7]]},
        "c": {"eta_edges": [0, 2.5], "pt_edges": [0, math.inf], "values": [[0.2]]},
        "light": {"eta_edges": [0, 2.5], "pt_edges": [0, math.inf], "values": [[0.01]]}}})
    for pid, rate in ((5, 0.7), (-4, 0.2), (21, 0.01), (2, 0.01)):
        objs = _objects(50_000, pid, pt_range=(30, 300), eta_max=2.4, seed=pid + 100)
        reco = Detector(card)(objs, seed=pid + 200)
        assert bool(reco.mask.all())
        n, k = len(reco), int((reco.types[:, 0] == ObjectType.BJET).sum())
        assert abs(k / n - rate) < N_SIGMA * math.sqrt(rate * (1 - rate) / n), (pid, k / n)
        assert bool((reco.charges == 0).all())


def _balanced_events(n, seed=0):
    """Two back-to-back massless leptons in the partonic frame, boosted along z."""
    g = torch.Generator().manual_seed(seed)
    ct = 2 * torch.rand(n, generator=g, dtype=torch.float64) - 1
    ph = 2 * math.pi * torch.rand(n, generator=g, dtype=torch.float64)
    e = 45.6 * torch.ones(n, dtype=torch.float64)
    st = torch.sqrt(1 - ct**2)
    k = torch.stack([e, e * st * torch.cos(ph), e * st * torch.sin(ph), e * ct], -1)
    kbar = k * torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=torch.float64)
    x1 = 0.01 + 0.05 * torch.rand(n, generator=g, dtype=torch.float64)
    x2 = 91.2**2 / 13000.0**2 / x1
    beta = ((x1 - x2) / (x1 + x2))[:, None]
    p = torch.stack([k, kbar], 1)
    p = kin.boost(p, torch.cat([torch.zeros(n, 2, dtype=torch.float64), beta], -1)[:, None, :])
    return HardEvents(p, x1, x2, 13000.0)


def test_met_zero_for_perfect_detector_and_pairing(device):
    ev = _balanced_events(2000).to(device)
    reco = Detector(PERFECT)(ParticleObjects.from_hard(ev, (11, -13)), seed=1)
    assert bool(reco.mask.all())
    scale = kin.pt(ev.momenta).max()
    assert float(reco.met.abs().max()) < 1e-12 * float(scale)
    # exact pairing: reco object j is particle particle_index[j], unchanged momentum
    paired = ev.momenta.gather(1, reco.particle_index[..., None].expand(-1, -1, 4))
    assert torch.equal(reco.momenta, paired)
    assert torch.equal(reco.hard_index, torch.arange(len(ev), device=device))
    # sorted by pT, types and charges follow the particles (e-: 11 -> -1, mu+: -13 -> +1)
    assert bool((kin.pt(reco.momenta[:, 0]) >= kin.pt(reco.momenta[:, 1])).all())
    codes = torch.tensor([ObjectType.ELECTRON, ObjectType.MUON], device=device)
    torch.testing.assert_close(reco.types, codes[reco.particle_index])
    charges = torch.tensor([-1, 1], device=device)
    torch.testing.assert_close(reco.charges, charges[reco.particle_index])


def test_met_equals_neutrino_pt():
    ev = _balanced_events(500, seed=4)
    # split the second lepton into a photon and a neutrino with 30% / 70% of its momentum
    p = torch.cat([ev.momenta[:, :1], 0.3 * ev.momenta[:, 1:], 0.7 * ev.momenta[:, 1:]], 1)
    objs = ParticleObjects(p, torch.tensor([11, 22, 12]), torch.ones(500, 3, dtype=torch.bool),
                           torch.arange(500))
    reco = Detector(PERFECT)(objs, seed=2)
    torch.testing.assert_close(reco.met, p[:, 2, 1:3], rtol=0, atol=1e-12)
    assert bool((reco.n_objects == 2).all())
    assert bool((reco.particle_index != 2).all())


def test_variable_multiplicity_mask_and_selection():
    ev = _balanced_events(1000, seed=9)
    p = torch.cat([ev.momenta, torch.zeros(1000, 1, 4, dtype=torch.float64)], 1)
    mask = torch.ones(1000, 3, dtype=torch.bool)
    mask[:, 2] = False
    mask[::2, 1] = False  # every other event has one lepton only
    p[::2, 1] = 0.0
    objs = ParticleObjects(p, torch.tensor([11, -11, 13]), mask, torch.arange(1000) + 7)
    card = DetectorCard.from_dict({**PERFECT, "selection": {"min_leptons": 2}})
    reco = Detector(card)(objs, seed=3)
    assert torch.equal(reco.counts[:, ObjectType.ELECTRON], mask.sum(-1))
    assert torch.equal(reco.passed, mask[:, 1])
    assert torch.equal(reco.hard_index, torch.arange(1000) + 7)
    assert bool((reco.particle_index[~reco.mask] == -1).all())
    sub = reco[reco.passed]
    assert len(sub) == 500 and bool((sub.hard_index % 2 == 0).all())


def test_reproducible_with_seed_and_generator(generator):
    objs = ParticleObjects.from_hard(_balanced_events(3000, seed=1), (11, -11))
    det = Detector()
    a, b = det(objs, seed=42), det(objs, seed=42)
    c = det(objs, generator=torch.Generator().manual_seed(42))
    d = det(objs, seed=43)
    for name in a.field_names():
        assert torch.equal(getattr(a, name), getattr(b, name)), name
        assert torch.equal(getattr(a, name), getattr(c, name)), name
    assert not torch.equal(a.momenta, d.momenta)
    det(objs, generator=generator)  # a user's generator advances, no error
    with pytest.raises(ValueError, match="seed, generator"):
        det(objs, seed=1, generator=generator)


def test_float32_keeps_dtype():
    objs = _objects(100, 11, dtype=torch.float32)
    reco = Detector()(objs, seed=0)
    assert reco.momenta.dtype == torch.float32 and reco.met.dtype == torch.float32


@pytest.mark.parametrize(
    ("data", "err", "match"),
    [
        ({"muon": {"resolutoin": {}}}, ValueError, r"muon\.resolutoin: unknown key"),
        ({"electrons": {}}, ValueError, "electrons: unknown key"),
        ({"muon": {"resolution": {"constant": [-0.01, 0.015, 0.025]}}}, ValueError,
         r"muon\.resolution\.constant: expected values >= 0"),
        ({"photon": {"efficiency": {"values": [[1.2], [0.85]]}}}, ValueError,
         r"photon\.efficiency\.values: expected efficiencies in \[0, 1\]"),
        ({"photon": {"efficiency": {"values": [[0.5, 0.5], [0.85]]}}}, ValueError,
         r"photon\.efficiency\.values: expected shape \(2, 1\)"),
        ({"jet": {"resolution": {"eta_max": [5.0, 3.0]}}}, ValueError,
         r"jet\.resolution\.eta_max: expected strictly increasing"),
        ({"jet": {"resolution": {"variable": "mass"}}}, ValueError, r"jet\.resolution\.variable"),
        ({"jet": {"sigma_phi": float("nan")}}, ValueError, r"jet\.sigma_phi: expected finite"),
        ({"selection": {"min_leptons": -1}}, ValueError, r"selection\.min_leptons"),
        ({"selection": {"min_leptons": 1.5}}, ValueError, r"selection\.min_leptons"),
        ({"muon": {"pt_min": "ten"}}, TypeError, r"muon\.pt_min: expected numbers"),
        ({"muon": 3}, TypeError, r"muon: expected a mapping"),
    ],
)
def test_bad_card_errors_name_the_key(data, err, match):
    with pytest.raises(err, match=match):
        DetectorCard.from_dict(data)


def test_card_files_round_trip(tmp_path):
    card = DetectorCard.from_dict({"selection": {"min_leptons": 2}, "name": "dy"})
    js = tmp_path / "card.json"
    js.write_text(card.to_json())
    assert load_card(js) == card
    yaml = pytest.importorskip("yaml")
    ym = tmp_path / "card.yaml"
    ym.write_text(yaml.safe_dump({"muon": {"pt_min": 25.0}, "selection": {"min_muons": 1}}))
    loaded = load_card(str(ym))
    assert loaded.muon.pt_min == 25.0 and loaded.selection.min_muons == 1
    assert loaded.electron == default_card().electron
    with pytest.raises(FileNotFoundError, match="no such detector card"):
        load_card(tmp_path / "missing.yaml")
    with pytest.raises(TypeError, match="card: expected"):
        load_card(3)


def test_bad_inputs():
    p = torch.zeros(4, 2, 4, dtype=torch.float64)
    ones = torch.ones(4, 2, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"pids: the detector models .* got \[-6, 6\]"):
        ParticleObjects(p, torch.tensor([6, -6]), ones, torch.arange(4))
    with pytest.raises(ValueError, match=r"pids: expected shape \(2,\) or \(4, 2\)"):
        ParticleObjects(p, torch.tensor([11, -11, 22]), ones, torch.arange(4))
    with pytest.raises(ValueError, match="mask: expected a bool tensor"):
        ParticleObjects(p, torch.tensor([11, -11]), ones[:, :1], torch.arange(4))
    bad = p.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="momenta: 1 NaN"):
        ParticleObjects(bad, torch.tensor([11, -11]), ones, torch.arange(4))
    with pytest.raises(TypeError, match="objects: expected ParticleObjects"):
        Detector()(p, seed=1)


def test_default_card_cites_delphes_numbers():
    card = default_card()
    # ECal barrel term at η bin centre 0.25: (1 + 0.64 * 0.25²) x (0.11, 0.40, 0.008)
    f = 1 + 0.64 * 0.25**2
    r = card.electron.resolution
    assert (r.stochastic[0], r.noise[0], r.constant[0]) == pytest.approx((0.11 * f, 0.4 * f,
                                                                          0.008 * f))
    assert card.jet.resolution.stochastic == (1.5, 2.7)
    assert card.muon.efficiency.values[0][0] == pytest.approx(0.99 * 0.95)
    assert json.loads(card.to_json())["name"] == "cms"
