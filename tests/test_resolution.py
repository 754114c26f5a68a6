"""invsim.mem.resolution.ResolutionTable and the reco-centred proposal's per-lepton widths."""

from __future__ import annotations

import math

import pytest
import torch
from _helpers import seeded

from forward.detector import GaussianLeptonDetector
from invsim.mem.reco_proposal import RecoGaussianProposal
from invsim.mem.resolution import ResolutionTable

DT = torch.float64


def _pairs(n, seed):
    """Two leptons with σ(log pT) = 0.01 (|η| < 1) or 0.05 (|η| >= 1), σ_η = 0.002,
    σ_φ = 0.001 × (1 + pT / 1000 GeV): a resolution that varies with both bin axes."""
    g = seeded(seed)
    pt = 100.0 * torch.exp(2.0 * torch.rand(n, 2, generator=g, dtype=DT))
    eta = 4.0 * torch.rand(n, 2, generator=g, dtype=DT) - 2.0
    phi = 2 * math.pi * torch.rand(n, 2, generator=g, dtype=DT) - math.pi
    s_pt = torch.where(eta.abs() < 1, 0.01, 0.05)
    s_phi = 0.001 * (1 + pt / 1000.0)
    z = torch.randn(n, 2, 3, generator=g, dtype=DT)
    hard = torch.stack([pt, eta, phi], -1)
    reco = torch.stack([pt * torch.exp(s_pt * z[..., 0]), eta + 0.002 * z[..., 1],
                        phi + s_phi * z[..., 2]], -1)
    reco[..., 2] = torch.remainder(reco[..., 2] + math.pi, 2 * math.pi) - math.pi
    return hard.reshape(n, 6), reco.reshape(n, 6)


def test_table_recovers_known_widths():
    # 4 x 4 bins of 25 000 leptons each: the robust σ has a relative error of about
    # 1.17/sqrt(N) = 0.7 %; the truth of a bin is the N-weighted RMS of its σ's. A
    # bin straddling a step in σ is skipped. 5 σ per bin: false failures < 1e-4 overall.
    hard, reco = _pairs(200_000, 1)
    table = ResolutionTable.fit(hard, reco, eta_bins=4, pt_bins=4)
    assert table.widths.shape == (4, 4, 3)
    w = table.lookup(reco)  # (n, 2, 3)
    y = reco.view(-1, 2, 3)
    s_pt = torch.where(y[..., 1].abs() < 1, 0.01, 0.05)
    i = torch.bucketize(y[..., 1].abs(), table.eta_edges, right=True)
    for a in range(4):
        sel = i == a
        lo = float(y[..., 1].abs()[sel].min())
        hi = float(y[..., 1].abs()[sel].max())
        if lo < 1 <= hi:
            continue
        want = float(s_pt[sel][0])
        rel = 5 * 1.17 / math.sqrt(int(sel.sum()) / 4)
        assert abs(float(w[..., 0][sel].mean()) / want - 1) < rel
    assert torch.allclose(w[..., 1], torch.full_like(w[..., 1], 0.002), rtol=0.05)
    # σ_φ grows with pT: per pT bin, the width is the RMS of the σ's in it (within its
    # 5 σ error plus 1 % for the robust σ of a narrow scale mixture)
    s_phi = 0.001 * (1 + y[..., 0] / 1000.0)
    j = torch.bucketize(torch.log(y[..., 0]), table.log_pt_edges, right=True)
    for b in range(4):
        sel = j == b
        want = float(s_phi[sel].pow(2).mean().sqrt())
        rel = 5 * 1.17 / math.sqrt(int(sel.sum())) + 0.01
        assert abs(float(table.widths[:, b, 2].mean()) / want - 1) < rel, (b, want)
    assert float(table.widths[:, -1, 2].mean()) > 1.3 * float(table.widths[:, 0, 2].mean())


def test_sparse_bins_take_the_pooled_widths_and_roundtrip():
    hard, reco = _pairs(300, 2)  # 600 leptons, 36 bins of ~17 < min_count
    table = ResolutionTable.fit(hard, reco, min_count=200)
    assert torch.allclose(table.widths, table.widths[0, 0].expand_as(table.widths))
    back = ResolutionTable.from_dict(table.to_dict())
    assert torch.equal(back.widths, table.widths) and torch.equal(back.eta_edges, table.eta_edges)


def test_bad_input():
    hard, reco = _pairs(1000, 3)
    with pytest.raises(ValueError, match=r"x_hard, x_reco: expected equal shapes \(n, 3k\)"):
        ResolutionTable.fit(hard[:, :5], reco[:, :5])
    with pytest.raises(ValueError, match="fewer than min_count=5000"):
        ResolutionTable.fit(hard, reco, min_count=5000)
    with pytest.raises(ValueError, match="eta_bins: expected an integer >= 1"):
        ResolutionTable.fit(hard, reco, eta_bins=0)
    with pytest.raises(ValueError, match=r"widths: expected shape \(2, 1, 3\)"):
        ResolutionTable([1.0], [], torch.ones(3, 1, 3))
    with pytest.raises(ValueError, match="increasing"):
        ResolutionTable([1.0, 0.5], [], torch.ones(3, 1, 3))
    with pytest.raises(ValueError, match="positive"):
        ResolutionTable([], [], torch.zeros(1, 1, 3))


def test_proposal_weights_leptons_by_their_resolution(tmp_path):
    # one lepton measured 100 times more precisely in pT: the proposal's log pT centre is
    # its value (inverse-variance weights), and its width that of the combination
    table = ResolutionTable([1.0], [], torch.tensor([[[0.001, 0.01, 0.01]],
                                                     [[0.1, 0.01, 0.01]]], dtype=DT))
    prop = RecoGaussianProposal(table, 13000.0, scale=1.0)
    x = torch.tensor([[500.0, 0.2, 0.3, 400.0, 1.5, 0.3 + math.pi - 0.02]], dtype=DT)
    loc, width = prop.centre(x)
    v1, v2 = 0.001**-2, 0.1**-2
    assert float(loc[0, 0]) == pytest.approx((math.log(500) * v1 + math.log(400) * v2) / (v1 + v2))
    assert float(width[0, 0]) == pytest.approx((v1 + v2) ** -0.5)
    assert float(loc[0, 1]) == pytest.approx(0.29)  # equal φ widths: the circular mean
    assert float(width[0, 3]) == pytest.approx(0.01)
    # constant widths: the equal-weight centre of the GaussianLeptonDetector form
    det = GaussianLeptonDetector(0.03, 0.02, 0.02)
    loc_d, width_d = RecoGaussianProposal(det, 13000.0, scale=1.0).centre(x)
    assert float(loc_d[0, 0]) == pytest.approx(0.5 * (math.log(500) + math.log(400)))
    assert float(width_d[0, 0]) == pytest.approx(0.03 / math.sqrt(2))
    # saved and loaded with its table
    prop.save(tmp_path / "p.pt")
    back = RecoGaussianProposal.load(tmp_path / "p.pt")
    assert torch.equal(back.centre(x)[1], width)
    with pytest.raises(TypeError, match="GaussianLeptonDetector, a ResolutionTable"):
        RecoGaussianProposal({"sigma_pt": 0.1}, 13000.0)
