"""The reco-centred t t̄ → dilepton proposal: neutrino solutions, Jacobian, density."""

import math

import pytest
import torch

from forward.events import HardEvents
from forward.integrand import HadronicIntegrand
from forward.processes import get_process
from forward.xsec import cross_section
from invsim.mem.proposals import StratifiedMixtureProposal
from invsim.mem.resolution import ResolutionTable
from invsim.mem.ttbar_proposal import (
    TTbarDileptonProposal,
    neutrino_jacobian,
    neutrino_solutions,
)
from invsim.observables import hard_pt_eta_phi


@pytest.fixture(scope="module")
def process():
    return get_process("ttbar", decays="dilepton", leptons="e", scale=172.5)


@pytest.fixture(scope="module")
def hard(process):
    """Hard events of the process's decay map (uniform points), float64."""
    gen = torch.Generator().manual_seed(11)
    cmap = process.phase_space()[0]
    ev, _ = cmap.forward(torch.rand(2000, cmap.dim, generator=gen, dtype=torch.float64))
    return ev


def _table(log_pt, eta, phi):
    return ResolutionTable([], [], [[[log_pt, eta, phi]]])


def _msq(p):
    return p[..., 0] ** 2 - (p[..., 1:] ** 2).sum(-1)


def _masses(m):
    return torch.stack([_msq(m[:, 1] + m[:, 2]), _msq(m[:, 4] + m[:, 5]),
                        _msq(m[:, 0] + m[:, 1] + m[:, 2]), _msq(m[:, 3] + m[:, 4] + m[:, 5])],
                       -1)


def _reco_of(ev):
    """x_reco (ℓ⁻, ℓ⁺, b, b̄) = the hard visible particles' (pT, η, φ)."""
    h = hard_pt_eta_phi(ev)
    return torch.cat([h[:, 12:15], h[:, 3:6], h[:, 0:3], h[:, 9:12]], -1)


def test_solutions_recover_the_true_neutrinos(hard):
    m = hard.momenta
    sols, valid = neutrino_solutions(m[:, [0, 1, 3, 4]], _masses(m))
    err = (sols - m[:, None, [2, 5]]).abs().amax((-1, -2)) / m[:, None, [2, 5], 0].amax(-1)
    best = torch.where(valid, err, torch.full_like(err, math.inf)).amin(-1)
    assert float((best < 1e-6).double().mean()) > 0.995
    # every valid solution satisfies the six constraints
    for k in range(4):
        ok = valid[:, k]
        ev = m[ok].clone()
        ev[:, 2], ev[:, 5] = sols[ok, k, 0], sols[ok, k, 1]
        assert torch.allclose(_masses(ev), _masses(m[ok]), rtol=1e-6, atol=1e-3)
        assert float(ev[:, :, 1:3].sum(1).abs().max()) < 1e-6
        # massless to the solver's convergence criterion (1e-7 of E_ν² + E_ν̄²)
        nu = ev[:, [2, 5]]
        assert float((_msq(nu).abs().sum(-1) / (nu[..., 0] ** 2).sum(-1)).max()) < 1e-7
    assert set(valid.sum(-1).tolist()) <= {1, 2, 3, 4}  # the truth is one of them


def test_jacobian_matches_autograd(hard):
    m = hard.momenta[:5]
    vis = m[:, [0, 1, 3, 4]]
    for i in range(5):
        def constraints(p, i=i):
            nu = p.view(2, 3)
            nu4 = torch.cat([nu.norm(dim=-1, keepdim=True), nu], -1)
            b, lp, bb, lm = vis[i]
            return torch.stack([_msq(lp + nu4[0]), _msq(lm + nu4[1]), _msq(b + lp + nu4[0]),
                                _msq(bb + lm + nu4[1]), (vis[i, :, 1].sum() + nu4[:, 1].sum()),
                                (vis[i, :, 2].sum() + nu4[:, 2].sum())])

        p0 = m[i, [2, 5], 1:].reshape(6).clone()
        jac = torch.autograd.functional.jacobian(constraints, p0)
        expected = torch.linalg.slogdet(jac).logabsdet
        got = neutrino_jacobian(vis[i:i + 1], m[i:i + 1, [2, 5]])
        assert float(got) == pytest.approx(float(expected), abs=1e-9)


def test_log_prob_equals_the_sampled_density(process, hard):
    q = TTbarDileptonProposal(_table(0.02, 0.01, 0.01), _table(0.15, 0.03, 0.03),
                              process.sqrt_s, mt_range=(170.0, 175.0))
    x = _reco_of(hard)[:4]
    gen = torch.Generator().manual_seed(3)
    ev, lq = q.sample_and_log_prob(x, 500, {"mt": 173.0}, generator=gen)
    assert lq.shape == (4, 500) and bool(torch.isfinite(lq).all())
    assert 0 < q.last_failed < q.last_draws == 2000
    assert float(ev.momenta.sum(1)[:, 1:3].abs().max()) < 1e-6  # pT balance
    phys = ((ev.x1 <= 1) & (ev.x2 <= 1)).view(4, 500)
    lp = q.log_prob(ev, x.repeat_interleave(500, 0), {"mt": 173.0}).view(4, 500)
    assert int(phys.sum()) > 100
    assert torch.allclose(lp[phys], lq[phys], rtol=0, atol=1e-6)
    # momentum fractions from the six particles
    tot = ev.momenta.sum(1)
    assert torch.allclose(ev.x1[phys.flatten()], ((tot[:, 0] + tot[:, 3]) / process.sqrt_s)[
        phys.flatten()])
    # a θ of another top mass moves the density of the same draws
    other = q.log_prob(ev, x.repeat_interleave(500, 0), {"mt": 171.0}).view(4, 500)
    assert not torch.allclose(other[phys], lp[phys])


def test_importance_sampling_estimate_of_the_cross_section(process):
    """E_q[dσ/dμ / q] = σ: the proposal's density is normalised w.r.t. dμ.

    Wide t distributions around one reco event cover the whole phase space; both
    estimates are compared in units of their combined error at 4σ (false-failure rate
    6e-5 for Gaussian estimators; the seeds are fixed, the result reproducible).
    """
    q = TTbarDileptonProposal(_table(0.6, 1.0, 1.0), _table(0.6, 1.0, 1.0), process.sqrt_s,
                              df=3, top_width_factors=(1.0,))
    x = torch.tensor([[60.0, 0.3, 1.0, 60.0, -0.2, -2.0, 80.0, 0.1, -1.2, 80.0, -0.4, 2.2]],
                     dtype=torch.float64)
    gen = torch.Generator().manual_seed(2)
    ev, lq = q.sample_and_log_prob(x, 200_000, generator=gen)
    phys = (ev.x1 <= 1) & (ev.x2 <= 1)
    half = torch.full_like(ev.x1, 0.5)
    stand_in = HardEvents(ev.momenta, torch.where(phys, ev.x1, half),
                          torch.where(phys, ev.x2, half), ev.sqrt_s)
    with torch.no_grad():
        f = HadronicIntegrand(process).differential(stand_in)
    w = torch.where(phys, f * torch.exp(-lq.flatten()), torch.zeros_like(f))
    est, err = float(w.mean()), float(w.std()) / math.sqrt(len(w))
    ref = cross_section(process, 200_000, seed=3)
    assert err < 0.2 * est  # a meaningful comparison
    assert abs(est - ref.value) < 4 * math.hypot(err, ref.error)


def test_save_load_and_mixture(process, hard, tmp_path):
    q = TTbarDileptonProposal(_table(0.02, 0.01, 0.01), _table(0.15, 0.03, 0.03),
                              process.sqrt_s, scale=1.0, df=10)
    q.save(tmp_path / "q.pt")
    with pytest.raises(FileExistsError):
        q.save(tmp_path / "q.pt")
    back = TTbarDileptonProposal.load(tmp_path / "q.pt")
    x = _reco_of(hard)[:2]
    ev, lq = q.sample_and_log_prob(x, 50, generator=torch.Generator().manual_seed(1))
    assert torch.equal(back.log_prob(ev, x.repeat_interleave(50, 0)),
                       q.log_prob(ev, x.repeat_interleave(50, 0)))
    mix = StratifiedMixtureProposal([q, back], [0.5, 0.5])
    ev, lq = mix.sample_and_log_prob(x, 40, generator=torch.Generator().manual_seed(2))
    assert lq.shape == (2, 40) and bool(torch.isfinite(lq).all())


def test_bad_input(process, hard):
    t = _table(0.02, 0.01, 0.01)
    with pytest.raises(TypeError, match="jets"):
        TTbarDileptonProposal(t, object())
    with pytest.raises(ValueError, match="scale"):
        TTbarDileptonProposal(t, t, scale=-1.0)
    with pytest.raises(ValueError, match="df"):
        TTbarDileptonProposal(t, t, df=0)
    with pytest.raises(ValueError, match="top_width_factors"):
        TTbarDileptonProposal(t, t, top_width_factors=(1.0, 0.0))
    with pytest.raises(ValueError, match="mt_range"):
        TTbarDileptonProposal(t, t, mt_range=(175.0, 170.0))
    q = TTbarDileptonProposal(t, t)
    x = _reco_of(hard)[:2]
    with pytest.raises(ValueError, match="x_reco"):
        q.sample_and_log_prob(x[:, :9], 10)
    with pytest.raises(ValueError, match="x_reco"):
        q.sample_and_log_prob(torch.full_like(x, math.nan), 10)
    with pytest.raises(ValueError, match="n"):
        q.sample_and_log_prob(x, 0)
    with pytest.raises(TypeError, match="theta"):
        q.sample_and_log_prob(x, 10, theta=172.5)
    with pytest.raises(ValueError, match="theta"):
        q.sample_and_log_prob(x, 10, theta={"mt": torch.tensor([170.0, 175.0])})
    with pytest.raises(TypeError, match="hard"):
        q.log_prob(x, x)
    with pytest.raises(ValueError, match="x_reco"):
        q.log_prob(HardEvents(hard.momenta[:3], hard.x1[:3], hard.x2[:3], hard.sqrt_s), x)


def test_build_model_mixes_the_helper_in(tmp_path):
    from forward.detector import Detector
    from invsim.mem import MEMModel
    from invsim.mem.recipe import build_model
    from invsim.observables import RecoObservables

    tt = get_process("ttbar", decays="dilepton", leptons="all", scale=172.5)
    obs = RecoObservables.for_process(tt, met=False)
    with pytest.warns(UserWarning):  # a few training events outside the reference's map
        model, info = build_model(tt, Detector("cms"), n_trials=4000, epochs=1,
                                  observables=obs, seed=1, hidden=(16,), min_accepted=0,
                                  ranges={"mt": (170.0, 175.0)}, ttbar_helper=True)
    assert isinstance(model.proposal, StratifiedMixtureProposal)
    helper = model.proposal.components[1]
    assert isinstance(helper, TTbarDileptonProposal)
    assert helper.mt == 172.5 and helper.mt_range == (170.0, 175.0)
    assert sorted(model.proposal.weights) == pytest.approx([0.05, 0.95])
    assert set(info["proposal_median_ess"]) == {"unfolder", "ttbar-helper"}
    # the measured b-jet resolution is much wider than the leptons'
    res = info["ttbar_helper_resolutions"]
    assert res["bjets"]["sigma_log_pt"] > 3 * res["leptons"]["sigma_log_pt"]
    model.save(tmp_path / "m")
    back = MEMModel.load(tmp_path / "m").proposal.components[1]
    assert isinstance(back, TTbarDileptonProposal)
    assert torch.equal(back.jets.widths, helper.jets.widths)
    assert back.mt_range == helper.mt_range and back.scale == helper.scale
