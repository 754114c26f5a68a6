"""Tests of forward.shower (Pythia 8 + fastjet bridge) on hand-made hard events."""

from __future__ import annotations

import math
import sys

import pytest
import torch

from forward import kinematics as kin
from forward.detector import Detector
from forward.eventset import EventSet

pytest.importorskip("pythia8mc")
pytest.importorskip("fastjet")

from forward.shower import ShowerSettings, shower  # noqa: E402

MZ, MT, SQRT_S = 91.1876, 172.5, 13000.0


def _two_body(n, mass_parent, m_daughter, seed):
    """Parent at rest in the lab (x1 = x2), isotropic two-body decay; momenta (n, 2, 4)."""
    g = torch.Generator().manual_seed(seed)
    ct = 2 * torch.rand(n, generator=g, dtype=torch.float64) - 1
    ph = 2 * math.pi * torch.rand(n, generator=g, dtype=torch.float64)
    e = torch.full((n,), 0.5 * mass_parent, dtype=torch.float64)
    p = torch.sqrt(e**2 - m_daughter**2)
    st = torch.sqrt(1 - ct**2)
    k = torch.stack([e, p * st * ph.cos(), p * st * ph.sin(), p * ct], -1)
    kb = k * torch.tensor([1.0, -1, -1, -1], dtype=torch.float64)
    x = torch.full((n,), mass_parent / SQRT_S, dtype=torch.float64)
    return torch.stack([k, kb], 1), x


def _z_events(n, seed=0) -> EventSet:
    """On-shell Z -> μ⁻ μ⁺ from u ū at fixed x1 = x2 = m_Z / √s."""
    p, x = _two_body(n, MZ, 0.0, seed)
    return EventSet(process="z-by-hand", momenta=p, x1=x, x2=x.clone(),
                    pids=torch.tensor([13, -13]), sqrt_s=SQRT_S,
                    incoming_pids=torch.tensor([[2, -2]]).expand(n, 2).clone())


def _ttbar_events(n, seed=0) -> EventSet:
    """On-shell t t̄ from g g at threshold-ish ŝ = (400 GeV)², Pythia decays the tops."""
    p, x = _two_body(n, 400.0, MT, seed)
    return EventSet(process="ttbar-by-hand", momenta=p, x1=x, x2=x.clone(),
                    pids=torch.tensor([6, -6]), sqrt_s=SQRT_S,
                    incoming_pids=torch.tensor([[21, 21]]).expand(n, 2).clone())


def _dilepton_pt(objs):
    """pT of the two leading-pT muons per event (NaN when fewer than two)."""
    is_mu = objs.mask & (objs.pids.abs() == 13)
    pt = torch.where(is_mu, kin.pt(objs.momenta), torch.full_like(objs.momenta[..., 0], -1))
    top2 = pt.topk(2, dim=1).indices
    two = is_mu.sum(-1) >= 2
    pair = objs.momenta.gather(1, top2[..., None].expand(-1, -1, 4)).sum(1)
    return torch.where(two, kin.pt(pair), torch.full_like(pair[:, 0], math.nan))


def test_drell_yan_shower_links_events_and_feeds_the_detector():
    ev = _z_events(40, seed=1)
    res = shower(ev, ShowerSettings(mpi=False), seed=7)
    objs = res.objects
    assert len(objs) + len(res.failed) == 40
    assert torch.equal(torch.sort(torch.cat([objs.event_index, res.failed])).values,
                       torch.arange(40))
    # the link is exact: the μ⁻ direction in the dimuon rest frame (kept by the ISR recoil,
    # a boost of the pair) matches the hard μ⁻ of the linked event; for a wrong link the
    # angle would be random (P(angle < 0.3) = 2%)
    angles = []
    for i in range(len(objs)):
        sel = objs.mask[i] & (objs.pids[i].abs() == 13)
        if int(sel.sum()) != 2:
            continue
        mus, ids = objs.momenta[i][sel], objs.pids[i][sel]
        rest = kin.boost_to_rest_frame(mus[ids == 13][0], mus.sum(0))[1:]
        hard = ev.momenta[objs.event_index[i], 0, 1:]
        angles.append(float(torch.acos((rest @ hard / rest.norm() / hard.norm()).clamp(-1, 1))))
    assert len(angles) >= 30
    assert sum(a < 0.3 for a in angles) >= 0.8 * len(angles), angles
    reco = Detector({"selection": {"min_muons": 2}})(objs, seed=3)
    assert torch.equal(reco.hard_index, objs.event_index)
    assert reco.passed.float().mean() > 0.5
    # same seed, same showers
    again = shower(ev, ShowerSettings(mpi=False), seed=7).objects
    assert torch.equal(again.momenta, objs.momenta) and torch.equal(again.pids, objs.pids)


def test_missing_pythia_gives_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "pythia8mc", None)
    with pytest.raises(ImportError, match="pip install pythia8mc fastjet"):
        shower(_z_events(2), seed=1)


def test_settings_validation():
    with pytest.raises(ValueError, match="jet_r: expected a finite number > 0"):
        ShowerSettings(jet_r=0.0)
    with pytest.raises(TypeError, match="isr: expected True or False"):
        ShowerSettings(isr="yes")
    with pytest.raises(ValueError, match="seed: expected an int in"):
        shower(_z_events(2), seed=0)
    ev = _z_events(2)
    ev.incoming_pids = None
    with pytest.raises(ValueError, match="incoming_pids"):
        shower(ev, seed=1)


@pytest.mark.slow
def test_z_pt_spectrum_from_the_shower():
    """Z pT from ISR: zero at the hard level, a Sudakov peak at a few GeV, a falling tail."""
    n = 3000
    ev = _z_events(n, seed=2)
    assert float(kin.pt(ev.momenta.sum(1)).max()) < 1e-9  # hard level: no Z pT at all
    res = shower(ev, ShowerSettings(mpi=False, hadronisation=False), seed=11)
    ptz = _dilepton_pt(res.objects)
    ptz = ptz[~ptz.isnan()]
    assert len(ptz) > 0.9 * n
    hist = torch.histc(ptz, bins=25, min=0.0, max=50.0)  # 2 GeV bins
    peak = int(hist.argmax())
    assert 1 <= peak <= 4, hist  # mode between 2 and 10 GeV (Pythia: ~4 GeV)
    assert float(ptz.median()) > 3.0 and float(ptz.median()) < 15.0
    assert float((ptz < 0.5).float().mean()) < 0.05  # non-zero spectrum
    tail = [float(((ptz >= a) & (ptz < b)).sum()) for a, b in ((10, 20), (20, 40), (40, 80))]
    assert tail[0] > tail[1] > tail[2] > 0, tail  # falling tail, populated


@pytest.mark.slow
def test_ttbar_shower_gives_b_jets():
    n = 150
    res = shower(_ttbar_events(n, seed=4), seed=5)
    objs = res.objects
    assert len(objs) >= 0.95 * n
    n_b = ((objs.pids == 5) & objs.mask).sum(-1)
    n_jets = (((objs.pids.abs() <= 5) | (objs.pids == 21)) & objs.mask).sum(-1)
    assert float((n_b >= 1).float().mean()) > 0.8
    assert float(n_jets.float().mean()) > 3.0
    reco = Detector()(objs, seed=1)
    assert int(reco.counts[:, 4].sum()) > 0  # b-tagged jets after the detector
