"""invsim.ttbar_mass: the reco m(bℓ) minimax estimator and the hard top masses."""

from __future__ import annotations

import math

import pytest
import torch

from forward.events import HardEvents
from forward.processes.ttbar import TTbar
from invsim.observables import RecoObservables
from invsim.ttbar_mass import mbl_minmax, mbl_statistic, top_masses

F64 = torch.float64
OBS = RecoObservables.for_process(TTbar(decays="dilepton", leptons="all"))


def massless_pair_mass(a, b):
    """m² = 2 pT₁ pT₂ (cosh Δη − cos Δφ) for massless (pT, η, φ) rows (independent formula)."""
    return torch.sqrt(2 * a[:, 0] * b[:, 0] * (torch.cosh(a[:, 1] - b[:, 1])
                                               - torch.cos(a[:, 2] - b[:, 2])))


def test_mbl_minmax_picks_the_pairing_with_the_smaller_maximum():
    g = torch.Generator().manual_seed(4)
    n = 500
    x = torch.stack([30 + 100 * torch.rand(n, generator=g, dtype=F64) if c.endswith("_pt")
                     else (torch.rand(n, generator=g, dtype=F64) * 4 - 2 if c.endswith("_eta")
                           else (torch.rand(n, generator=g, dtype=F64) * 2 - 1) * math.pi)
                     for c in OBS.columns], -1)
    obj = {s: x[:, 3 * i:3 * i + 3] for i, s in enumerate(("lm", "lp", "b1", "b2"))}
    a = torch.stack([massless_pair_mass(obj["b1"], obj["lm"]),
                     massless_pair_mass(obj["b2"], obj["lp"])], -1)
    b = torch.stack([massless_pair_mass(obj["b2"], obj["lm"]),
                     massless_pair_mass(obj["b1"], obj["lp"])], -1)
    want = torch.where((a.max(-1).values <= b.max(-1).values)[:, None], a, b)
    got = mbl_minmax(x, OBS)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(mbl_statistic(OBS)(x), want.mean(-1), rtol=1e-9, atol=1e-9)
    # swapping the two b-jets does not change the chosen masses (the tag has no charge)
    sw = x.clone()
    sw[:, 6:9], sw[:, 9:12] = x[:, 9:12], x[:, 6:9]
    torch.testing.assert_close(mbl_minmax(sw, OBS).sort(-1).values, got.sort(-1).values)


def test_top_masses_of_decay_products():
    g = torch.Generator().manual_seed(5)
    p = torch.randn(7, 6, 4, generator=g, dtype=F64) * 30
    p[..., 0] = p[..., 1:].norm(dim=-1) + 1.0
    events = HardEvents(p, torch.full((7,), 0.1, dtype=F64), torch.full((7,), 0.1, dtype=F64),
                        13000.0)
    t = p[:, 0:3].sum(1)
    want = torch.sqrt(t[:, 0] ** 2 - (t[:, 1:] ** 2).sum(-1))
    torch.testing.assert_close(top_masses(events)[:, 0], want)


def test_bad_input():
    d = len(OBS.columns)
    with pytest.raises(ValueError, match=rf"x_reco: expected shape \(m, {d}\)"):
        mbl_minmax(torch.ones(5, d + 1), OBS)
    with pytest.raises(ValueError, match="2 leptons and at least 2 b-jets"):
        mbl_minmax(torch.ones(5, 6), RecoObservables(leptons=2))
    with pytest.raises(TypeError, match="observables"):
        mbl_minmax(torch.ones(5, d), "cms")
    ev = HardEvents(torch.ones(3, 2, 4, dtype=F64), torch.ones(3, dtype=F64),
                    torch.ones(3, dtype=F64), 13000.0)
    with pytest.raises(ValueError, match=r"\(n, 6, 4\)"):
        top_masses(ev)
    with pytest.raises(TypeError, match="HardEvents"):
        top_masses(torch.ones(3, 6, 4))
