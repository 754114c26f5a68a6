"""t t̄ → dilepton ML-MEM: b-jet assignments, the JES detector nuisance, bad input.

One tiny model (trained over m_t in [165, 180] GeV and JES in [0.95, 1.05]) is shared
by the module; the whole file runs in well under a minute on one thread.
"""

import dataclasses
import math

import pytest
import torch

from forward.detector import Detector, DetectorCard, ObjectType
from forward.processes import get_process
from invsim.mem import MEMLikelihood
from invsim.mem.assignments import (
    AssignmentMixture,
    canonical_order,
    check_assignments,
    truth_order,
)
from invsim.mem.detector_nuisances import ChebyshevCache, TruncatedNormal, default_prior
from invsim.mem.recipe import build_model
from invsim.observables import RecoObservables
from invsim.pairs import simulate

RANGES = {"mt": (165.0, 180.0), "jes": (0.95, 1.05)}


@pytest.fixture(scope="module")
def tt():
    torch.manual_seed(0)
    return get_process("ttbar", decays="dilepton", leptons="all")


@pytest.fixture(scope="module")
def obs(tt):
    # the card detector's MET is minus the sum of the reco objects: no information
    # beyond the four objects for t t̄ → dilepton, and a degenerate density: left out
    return RecoObservables.for_process(tt, met=False)


@pytest.fixture(scope="module")
def model(tt, obs):
    with pytest.warns(UserWarning):  # few accepted events / a few outside the map
        m, _ = build_model(tt, Detector("cms"), n_trials=20_000, epochs=2, observables=obs,
                           seed=1, ranges=RANGES, hidden=(32, 32), min_accepted=10_000)
    return m


@pytest.fixture(scope="module")
def pairs(tt, obs):
    return simulate(tt, Detector("cms"), 6000, {"mt": 174.1}, observables=obs, seed=5)


# -- the jet energy scale in the card detector ---------------------------------------------
def test_jes_scales_jets_only(tt):
    sim = simulate(tt, Detector("cms"), 3000, {"mt": 172.5}, seed=2)
    hard, pids = sim.hard, sim.pids
    r1 = Detector("cms").reconstruct(hard, pids, seed=9)
    r2 = Detector("cms", jes=1.04).reconstruct(hard, pids, seed=9)
    for reco_a, reco_b, factor in ((r1, r2, 1.04),):
        # object slots are re-sorted by pT: compare by the particle each one comes from
        def by_particle(r):
            k = pids.shape[1]
            out = torch.full((len(hard), k, 4), math.nan, dtype=torch.float64)
            typ = torch.full((len(hard), k), -9)
            for j in range(r.mask.shape[1]):
                idx = r.particle_index[:, j]
                ok = r.mask[:, j] & (idx >= 0)
                rows = ok.nonzero().flatten()
                out[rows, idx[rows]] = r.momenta[rows, j].to(torch.float64)
                typ[rows, idx[rows]] = r.types[rows, j]
            return out, typ

        pa, ta = by_particle(reco_a)
        pb, tb = by_particle(reco_b)
        jets = (ta == ObjectType.JET) | (ta == ObjectType.BJET)
        leps = (ta == ObjectType.ELECTRON) | (ta == ObjectType.MUON)
        both = jets & torch.isfinite(pb[..., 0])
        assert int(both.sum()) > 200
        torch.testing.assert_close(pb[both], factor * pa[both], rtol=1e-12, atol=1e-9)
        torch.testing.assert_close(pb[leps], pa[leps], rtol=0, atol=0)
        # MET is minus the vector sum of the reconstructed objects, scaled jets included
        for r in (reco_a, reco_b):
            vis = torch.where(r.mask[..., None], r.momenta[..., 1:3], 0.0).sum(1)
            torch.testing.assert_close(r.met, -vis)
    # one factor per event, and the card field
    nu = torch.full((len(hard),), 1.04, dtype=torch.float64)
    r3 = Detector("cms").reconstruct(hard, pids, seed=9, jes=nu)
    torch.testing.assert_close(r3.momenta, r2.momenta)
    card = DetectorCard.from_dict({"jes": 1.04})
    assert card.jes == 1.04 and DetectorCard.from_dict(card.to_dict()).jes == 1.04
    torch.testing.assert_close(Detector(card).reconstruct(hard, pids, seed=9).momenta,
                               r2.momenta)


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf])
def test_jes_bad_values(bad):
    with pytest.raises(ValueError, match="jes"):
        DetectorCard.from_dict({"jes": bad})
    with pytest.raises(ValueError, match="jes"):
        Detector("cms", jes=bad)


def test_jes_bad_per_event_shape(tt):
    sim = simulate(tt, Detector("cms"), 500, seed=2)
    with pytest.raises(ValueError, match=r"jes: expected a number or a tensor of shape"):
        Detector("cms").reconstruct(sim.hard, sim.pids, seed=1, jes=torch.ones(3))


# -- assignments -----------------------------------------------------------------------------
def test_observables_assignments(tt, obs):
    assert obs.assign_bjets and obs.bjet_columns == (6, 9)
    ident, swap = obs.assignments
    assert ident == tuple(range(12))
    assert swap == (0, 1, 2, 3, 4, 5, 9, 10, 11, 6, 7, 8)
    assert RecoObservables.from_dict(obs.to_dict()) == obs
    assert RecoObservables(leptons=2).assignments == (tuple(range(6)),)
    with pytest.raises(ValueError, match="assign_bjets: needs bjets=2"):
        RecoObservables(leptons=2, bjets=1, assign_bjets=True)
    dy = get_process("drell-yan")
    assert not RecoObservables.for_process(dy).assign_bjets


def test_check_assignments():
    assert check_assignments([], 3) == ((0, 1, 2),)
    assert check_assignments([(1, 0, 2), (0, 1, 2)], 3) == ((0, 1, 2), (1, 0, 2))
    with pytest.raises(ValueError, match="permutations of range"):
        check_assignments([(0, 0, 2)], 3)
    with pytest.raises(TypeError, match="assignments"):
        check_assignments("01", 2)


def test_canonical_order(obs):
    g = torch.Generator().manual_seed(3)
    x = torch.rand(50, 12, generator=g, dtype=torch.float64)
    swap = list(obs.assignments[1])
    c1 = canonical_order(x, obs.assignments)
    c2 = canonical_order(x[:, swap], obs.assignments)
    torch.testing.assert_close(c1, c2, rtol=0, atol=0)
    assert bool((c1[:, 6] >= c1[:, 9]).all())  # leading b-jet first


def test_truth_order_matches_by_delta_r(pairs, obs, tt):
    x = pairs.x_reco[pairs.passed]
    h = pairs.x_hard[pairs.passed]
    m = truth_order(x, h, obs, tt.final_state)
    # the b quark is final-state slot 0, the b̄ slot 3
    for col, slot in ((6, 0), (9, 3)):
        dphi = torch.remainder(m[:, col + 2] - h[:, 3 * slot + 2] + math.pi, 2 * math.pi) - math.pi
        dr = torch.hypot(m[:, col + 1] - h[:, 3 * slot + 1], dphi)
        assert float(dr.median()) < 0.1
    # it only reorders the b-jet blocks
    torch.testing.assert_close(m[:, :6], x[:, :6], rtol=0, atol=0)
    swapped = (m[:, 6] != x[:, 6])
    assert 0.2 < float(swapped.double().mean()) < 0.8  # pT order is not charge order


# -- the likelihood -------------------------------------------------------------------------------
def _x(pairs, n=12):
    return pairs.x_reco[pairs.passed][:n]


def test_swap_invariance(model, pairs, obs):
    x = _x(pairs)
    swap = list(obs.assignments[1])
    kw = dict(n_samples=100, parameter_names=["mt"], nuisances=("jes",), n_fiducial=2000,
              seed=4, on_flagged="ignore")
    a = MEMLikelihood(model, x, **kw)
    b = MEMLikelihood(model, x[:, swap], **kw)
    assert len(a.assignments) == 2
    theta = {"mt": torch.tensor([170.0, 176.0]), "jes": torch.tensor([0.99, 1.02])}
    la, lb = a.log_prob(theta), b.log_prob(theta)
    assert bool(torch.isfinite(la).all())
    torch.testing.assert_close(la, lb, rtol=0, atol=1e-12)


def test_assignment_sum_and_mixture_reference(model, pairs, obs):
    """The cached factor is log ε + log(r(x) + r(πx)) and the proposal density the
    equal-share mixture, both against direct evaluations."""
    x = _x(pairs, 4)
    lik = MEMLikelihood(model, x, n_samples=50, parameter_names=["mt"], n_fiducial=500,
                        on_flagged="ignore", event_acceptance="network")
    assert lik.event_acceptance == "network"
    swap = list(obs.assignments[1])
    ev = lik.events
    xr = lik.x_reco.repeat_interleave(50, 0)
    with torch.no_grad():
        ref = model.log_acceptance(ev) + torch.logaddexp(model.log_transfer(xr, ev),
                                                         model.log_transfer(xr[:, swap], ev))
        got = lik._log_factor(xr, ev, model.log_acceptance)[:, 0]
        torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-10)
        mix = AssignmentMixture(model.proposal, obs.assignments)
        q_ref = torch.logaddexp(model.proposal.log_prob(ev, xr), model.proposal.log_prob(
            ev, xr[:, swap])) - math.log(2)
        torch.testing.assert_close(mix.log_prob(ev, xr), q_ref, rtol=1e-12, atol=1e-10)
        # the cached log a = factor - log q̄ (identity: JES fixed at 1)
        torch.testing.assert_close(lik.log_a.reshape(-1), ref - q_ref, rtol=1e-9, atol=1e-8)


def test_assignment_sum_against_separate_likelihoods(model, pairs, obs):
    """Brute force: p(x) with the assignment sum equals p̂(x) + p̂(πx) of two likelihoods
    without it (each with its own proposal draws), within the combined Monte Carlo
    errors (4σ per event: about 5e-4 false failures over the 8 events for Gaussian
    errors)."""
    x = _x(pairs, 8)
    swap = list(obs.assignments[1])
    kw = dict(n_samples=500, parameter_names=["mt"], n_fiducial=2000, on_flagged="ignore")
    both = MEMLikelihood(model, x, seed=1, **kw).evaluate({"mt": 174.0})
    a = MEMLikelihood(model, x, assignments=None, seed=2, **kw).evaluate({"mt": 174.0})
    b = MEMLikelihood(model, x[:, swap], assignments=None, seed=3, **kw).evaluate(
        {"mt": 174.0})
    # the same σ_fid(θ) enters all three up to its own MC error: compare σ_fid · p
    lp = [r.log_p + r.log_sigma_fid for r in (both, a, b)]
    ref = torch.logaddexp(lp[1], lp[2])
    wa, wb = (lp[1] - ref).exp(), (lp[2] - ref).exp()
    err_ref = torch.sqrt((wa * a.error) ** 2 + (wb * b.error) ** 2)
    sigma = torch.sqrt(both.error ** 2 + err_ref ** 2)
    assert bool(((lp[0] - ref).abs() < 4 * sigma).all()), (lp[0] - ref) / sigma
    # the wrong assignment matters: it carries a visible share of some events
    assert float(torch.minimum(wa, wb).max()) > 0.01


def test_jes_interpolation(model, pairs):
    """The Chebyshev-cached factor at a JES between the nodes equals a likelihood
    evaluated directly at that JES (same draws, same fiducial sample), to the
    interpolant's accuracy: the flows are only piecewise smooth in their JES context
    (ReLU conditioners), 9 nodes give |Δ log p| < 0.01 per event (measured 0.006 on
    this model; 7 nodes 0.010, 5 nodes 0.016)."""
    x = _x(pairs, 6)
    kw = dict(n_samples=60, parameter_names=["mt"], n_fiducial=1000, seed=2,
              on_flagged="ignore", fiducial_acceptance="network",
              event_acceptance="network")  # the same ε at every JES
    free = MEMLikelihood(model, x, nuisances=("jes",), **kw)
    for nu in (0.963, 1.0, 1.031):
        direct = MEMLikelihood(model, x, fixed={"jes": nu}, **kw)
        torch.testing.assert_close(free.log_prob({"mt": 173.0, "jes": nu}),
                                   direct.log_prob({"mt": 173.0}), rtol=0, atol=1e-2)
        torch.testing.assert_close(free.log_sigma_fid({"mt": 173.0, "jes": nu}),
                                   direct.log_sigma_fid({"mt": 173.0}), rtol=0, atol=1e-4)
    # jes not in θ: held at 1
    held = MEMLikelihood(model, x, **kw)
    torch.testing.assert_close(held.log_prob({"mt": 173.0}),
                               MEMLikelihood(model, x, fixed={"jes": 1.0}, **kw).log_prob(
                                   {"mt": 173.0}), rtol=0, atol=0)


def test_jes_gradient_and_range(model, pairs):
    x = _x(pairs, 6)
    lik = MEMLikelihood(model, x, n_samples=60, parameter_names=["mt"], nuisances=("jes",),
                        n_fiducial=1000, on_flagged="ignore")
    assert lik.parameter_names == ("mt", "jes")
    assert (lik.parameters["jes"].low, lik.parameters["jes"].high) == RANGES["jes"]
    mt = torch.tensor(172.0, dtype=torch.float64, requires_grad=True)
    nu = torch.tensor(1.01, dtype=torch.float64, requires_grad=True)
    total = lik.log_prob({"mt": mt, "jes": nu}).sum()
    total.backward()
    assert math.isfinite(float(mt.grad)) and math.isfinite(float(nu.grad))
    # the gradient in JES against a central difference
    h = 1e-4
    up = float(lik.log_prob({"mt": 172.0, "jes": 1.01 + h}).sum())
    dn = float(lik.log_prob({"mt": 172.0, "jes": 1.01 - h}).sum())
    assert float(nu.grad) == pytest.approx((up - dn) / (2 * h), rel=1e-4, abs=1e-6)
    with pytest.raises(ValueError, match="jes"):
        lik.log_prob({"mt": 172.0, "jes": 1.06})
    with pytest.raises(ValueError, match="fixed: jes expected in the trained range"):
        MEMLikelihood(model, x, n_samples=30, fixed={"jes": 1.2})


def test_jes_needs_a_jes_model(tt, obs, pairs):
    m, _ = build_model(tt, Detector("cms"), n_trials=4000, epochs=1, observables=obs, seed=1,
                       hidden=(16,), min_accepted=0)
    assert m.detector_nuisances == ()
    with pytest.raises(ValueError, match="detector nuisances .jes. need a model trained"):
        MEMLikelihood(m, _x(pairs, 3), n_samples=30, nuisances=("jes",))


def test_model_save_load_keeps_jes(model, tmp_path, pairs):
    from invsim.mem import MEMModel

    model.save(tmp_path / "m")
    back = MEMModel.load(tmp_path / "m")
    assert back.ranges == model.ranges and back.detector_nuisances == ("jes",)
    assert back.observables.assign_bjets
    x = _x(pairs, 3)
    kw = dict(n_samples=40, parameter_names=["mt"], nuisances=("jes",), n_fiducial=500,
              on_flagged="ignore")
    torch.testing.assert_close(MEMLikelihood(back, x, **kw).log_prob({"mt": 174.0, "jes": 1.0}),
                               MEMLikelihood(model, x, **kw).log_prob({"mt": 174.0, "jes": 1.0}))


# -- bad input -------------------------------------------------------------------------------
def test_events_without_two_bjets_or_leptons_are_dropped_with_a_count(tt, obs):
    sim = simulate(tt, Detector("cms"), 6000, {"mt": 172.5}, observables=obs, seed=8)
    reco = sim.reco
    ex = obs.extract(reco)
    # knock one b-jet out of some selected events and a lepton out of others
    sel = ex.selected.nonzero().flatten()
    kill_b, kill_l = sel[:5], sel[5:9]
    mask = reco.mask.clone()
    for rows, types in ((kill_b, (ObjectType.BJET,)), (kill_l, (ObjectType.ELECTRON,
                                                                 ObjectType.MUON))):
        for i in rows.tolist():
            j = next(j for j in range(mask.shape[1]) if mask[i, j]
                     and int(reco.types[i, j]) in types)
            mask[i, j] = False
    broken = dataclasses.replace(reco, mask=mask)
    ex2 = obs.extract(broken)
    assert int(ex2.selected.sum()) == int(ex.selected.sum()) - 9
    assert not bool(ex2.selected[kill_b].any() or ex2.selected[kill_l].any())
    assert ex2.failed["at least 2 b-jets"] == ex.failed["at least 2 b-jets"] + 5
    assert ex2.failed["exactly 2 leptons"] == ex.failed["exactly 2 leptons"] + 4
    assert "at least 2 b-jets: " in ex2.summary()
    # the surviving rows are the same events, unchanged
    keep = ex2.selected[ex.selected]
    torch.testing.assert_close(ex2.x, ex.x[keep], rtol=0, atol=0)


def test_likelihood_refuses_incomplete_rows(model, pairs):
    x = _x(pairs, 3).clone()
    x[1, 9:] = math.nan  # a missing second b-jet
    with pytest.raises(ValueError, match="x_reco"):
        MEMLikelihood(model, x, n_samples=30)
    with pytest.raises(ValueError, match="x_reco"):
        MEMLikelihood(model, x[:, :9], n_samples=30)


# -- prior and interpolation helpers -------------------------------------------------------------
def test_default_jes_prior():
    p = default_prior("jes", 0.95, 1.05)
    assert isinstance(p, TruncatedNormal)
    grid = torch.linspace(0.95, 1.05, 20001, dtype=torch.float64)
    integral = torch.trapezoid(p.log_prob(grid).exp(), grid)
    assert float(integral) == pytest.approx(1.0, abs=1e-6)
    assert float(p.log_prob(torch.tensor(1.06))) == -math.inf
    torch.manual_seed(0)
    s = p.sample((20000,))
    assert float(s.min()) >= 0.95 and float(s.max()) <= 1.05
    # mean and std of the draws against the closed form (4 standard errors: 6e-5 false rate)
    assert abs(float(s.mean()) - float(p.mean)) < 4 * float(s.std()) / math.sqrt(len(s))
    from invsim.infer import build_priors
    from invsim.mem.detector_nuisances import DETECTOR_NUISANCES

    par = dataclasses.replace(DETECTOR_NUISANCES["jes"], low=0.95, high=1.05)
    assert build_priors({"jes": par}, ["jes"], {"jes": p})["jes"] is p


def test_chebyshev_cache_exact_on_polynomials():
    c = ChebyshevCache(0.95, 1.05, 5)
    f = lambda v: 3 - 2 * v + 0.5 * v ** 4  # noqa: E731  degree 4: exact with 5 nodes
    coef = c.fit(f(c.nodes)[None])
    for v in (0.95, 0.971, 1.0, 1.049):
        assert float(c(coef, torch.tensor(v, dtype=torch.float64))[0]) == pytest.approx(
            f(v), rel=1e-12)
    assert float(c.nodes.min()) > 0.95 and float(c.nodes.max()) < 1.05


def test_fiducial_acceptance_with_detector_nuisances(model, pairs):
    """σ_fid's ε: the detector's when JES is fixed (at that JES), the network's at the
    Chebyshev nodes when JES is free; a θ-independent choice is refused there."""
    x = _x(pairs, 3)
    kw = dict(n_samples=40, parameter_names=["mt"], n_fiducial=2000, seed=2,
              on_flagged="ignore")
    assert MEMLikelihood(model, x, nuisances=("jes",), **kw).fiducial_acceptance == "network"
    for bad in ("detector", lambda ev: torch.zeros(len(ev), dtype=torch.float64)):
        with pytest.raises(ValueError, match="fiducial_acceptance"):
            MEMLikelihood(model, x, nuisances=("jes",), fiducial_acceptance=bad, **kw)
    lo = MEMLikelihood(model, x, fixed={"jes": 0.96}, **kw)
    hi = MEMLikelihood(model, x, fixed={"jes": 1.04}, **kw)
    assert lo.fiducial_acceptance == hi.fiducial_acceptance == "detector"
    # the JES reaches the detector: same points, other pass fractions
    assert torch.equal(lo._fid.events.momenta, hi._fid.events.momenta)
    assert not torch.equal(lo._fid.log_b, hi._fid.log_b)
    # harder jets pass the jet pT cuts more often: the paired pass-fraction difference
    # on the same events is positive (z > 4 of its own error; wrong sign or no effect fails)
    from forward.detector import Detector, detector_from_description
    from invsim.mem.simulated_acceptance import SimulatedAcceptance

    card = detector_from_description(model.detector).card
    ev = lo._fid.events
    k = [SimulatedAcceptance(model.process, Detector(card, jes=j), model.observables,
                             smearings=4, seed=1).passes(ev) / 4 for j in (0.96, 1.04)]
    d = k[1] - k[0]
    assert float(d.mean() / (d.std() / math.sqrt(len(d)))) > 4
