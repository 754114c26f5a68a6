"""invsim.unfold: cINN unfolding of Drell–Yan with Gaussian lepton smearing.

Hard events are distributed as dσ/dμ (hit-or-miss on the process's Breit–Wigner channel
with ``forward.integrand`` weights); the reco side smears each lepton's pT by 5 %, η and φ
by 0.03 and requires pT > 20 GeV, |η| < 2.5 for both leptons.
"""

from __future__ import annotations

import math

import pytest
import torch
from _helpers import save_refusing_overwrite

from forward import kinematics as kin
from forward.events import HardEvents
from forward.integrand import HadronicIntegrand
from forward.nis.unweighting import unweight
from forward.processes import get_process
from invsim.flows import FlowConfig, TrainConfig, observable_preprocessing
from invsim.hardspace import HardCoordinates
from invsim.transfer import reliability
from invsim.unfold import Unfolder
from invsim.unfold_diagnostics import calibration, classifier_two_sample_test, histogram_ratio

F64 = torch.float64
OBSERVABLES = ("m_ll", "y_ll", "cos_theta_cs", "pt_lminus")


pytestmark = pytest.mark.usefixtures("one_thread")  # one torch thread (conftest.py)


def generate(process, n_try: int, g: torch.Generator, params=None) -> HardEvents:
    """Unweighted hard events ~ dσ/dμ by hit-or-miss (w_max = the largest weight)."""
    integrand = HadronicIntegrand(process, params=params)
    r = torch.rand(n_try, integrand.dim, generator=g, dtype=F64)
    kept = unweight(integrand(r), 0.0, generator=g)
    events, _ = integrand.map.forward(r[kept.indices])
    return events


def smear(
    events: HardEvents, g: torch.Generator, angle: float = 0.03
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reco observables (pT, η, φ) of ℓ⁻ and ℓ⁺, shape (n, 6), and the selection (n,).

    pT is smeared by 5 %, η and φ by ``angle``."""
    p = events.momenta
    pt = kin.pt(p) * (1 + 0.05 * torch.randn(p.shape[:2], generator=g, dtype=F64))
    eta = kin.pseudorapidity(p) + angle * torch.randn(p.shape[:2], generator=g, dtype=F64)
    phi = kin.phi(p) + angle * torch.randn(p.shape[:2], generator=g, dtype=F64)
    phi = math.pi - torch.remainder(math.pi - phi, 2 * math.pi)
    x = torch.stack([pt, eta, phi], -1).reshape(len(events), 6)
    passed = ((pt > 20) & (eta.abs() < 2.5)).all(-1)
    return x, passed


def reco_preprocessing():
    return observable_preprocessing(["log", "real", "phi"] * 2)


def observables(process, events, names=OBSERVABLES) -> dict[str, torch.Tensor]:
    obs = process.observables(events)
    return {k: obs[k] for k in names}


@pytest.fixture(scope="module")
def dy():
    process = get_process("drell-yan", mll_min=60.0, mll_max=120.0)
    g = torch.Generator().manual_seed(101)
    events = generate(process, 40_000, g)
    x, passed = smear(events, g)
    unf = Unfolder.from_process(process, reco_preprocessing(),
                                FlowConfig(transforms=2, hidden_features=(32, 32)))
    cfg = TrainConfig(epochs=3, batch_size=256, lr=3e-3)
    unf.fit(events[passed], x[passed], config=cfg, seed=0, progress=False)
    return process, unf, events[passed], x[passed]


@pytest.fixture(scope="module")
def dy_azimuth(dy):
    """The same set-up with φ(ℓ⁻) rotated by its reco value and a conditional affine layer."""
    process, _, events, x = dy
    unf = Unfolder.from_process(process, reco_preprocessing(),
                                FlowConfig(transforms=2, hidden_features=(32, 32),
                                           conditional_affine=True), azimuth=(3, 2))
    cfg = TrainConfig(epochs=3, batch_size=256, lr=3e-3)
    unf.fit(events, x, config=cfg, seed=0, progress=False)
    return process, unf, events, x


@pytest.mark.parametrize("setup", ["dy", "dy_azimuth"])
def test_sample_and_log_prob_layout_and_consistency(setup, request):
    process, unf, events, x = request.getfixturevalue(setup)
    m, n = 5, 40
    ev, log_q = unf.sample_and_log_prob(x[:m], n, generator=torch.Generator().manual_seed(1))
    assert len(ev) == m * n and log_q.shape == (m, n) and log_q.dtype == F64
    assert ev.momenta.dtype == F64 and bool(torch.isfinite(log_q).all())
    # event-major: row i*n + j belongs to reco event i, so scoring it with x[i] reproduces
    # the sampler's log q (float32 flow: agreement to ~1e-4 nats)
    with torch.no_grad():
        lp = unf.log_prob(ev, x[:m].repeat_interleave(n, 0))
    assert torch.allclose(lp, log_q.reshape(-1), atol=2e-3), (lp - log_q.reshape(-1)).abs().max()
    # same generator seed -> same samples; sample() returns the same events
    ev2 = unf.sample(x[:m], n, generator=torch.Generator().manual_seed(1))
    assert torch.equal(ev2.momenta, ev.momenta)
    # samples are hard events of the process: massless leptons, momentum balance
    assert torch.allclose(kin.mass2(ev.momenta), torch.zeros(m * n, 2, dtype=F64), atol=1e-6)
    total = ev.momenta.sum(1) - ev.incoming.sum(1)
    assert total.abs().max() < 1e-6 * ev.sqrt_s
    assert bool(process.cuts(ev).all())


@pytest.mark.parametrize("setup", ["dy", "dy_azimuth"])
def test_density_is_normalised_wrt_dmu(setup, request):
    """∫ q(x | r) dμ = 1, checked with a density h of *other* coordinates (the power-law
    channel): E_{x~q}[h_μ(x)/q_μ(x)] = ∫ h_μ dμ = 1 for any normalised h. h is a Gaussian in
    those coordinates with 0.7 times the spread of q's samples, so the ratio is bounded
    where q is Gaussian-like. |mean - 1| < 5 standard errors fails w.p. ~6e-7 per event.
    With ``azimuth`` the second reco event has φ(ℓ⁻) next to the map's cut at φ = 0, so
    the rotated samples straddle it (h's φ coordinate is then centred by the rotation too)."""
    process, unf, events, x = request.getfixturevalue(setup)
    other = HardCoordinates.from_process(process, channel=1)
    assert type(other.map.s_sampling).__name__ != type(unf.coordinates.map.s_sampling).__name__
    near_cut = int(x[:, 2].abs().argmin())
    for i in (0, near_cut) if unf.azimuth is not None else (0, 1):
        ev, log_q = unf.sample_and_log_prob(x[i:i + 1], 20000,
                                            generator=torch.Generator().manual_seed(10 + i))
        z, log_det = other.features(ev)
        if unf.azimuth is not None:
            # rotate h's φ coordinate too (unit Jacobian), so h stays near q's samples
            z, log_det = unf._rotate(z, log_det, x[i:i + 1].expand(len(z), -1))
        mu, sd = z.mean(0), 0.7 * z.std(0)
        log_h = torch.distributions.Normal(mu, sd).log_prob(z).sum(-1) + log_det
        w = torch.exp(log_h - log_q.reshape(-1))
        mean, err = float(w.mean()), float(w.std() / math.sqrt(len(w)))
        assert abs(mean - 1) < 5 * err and err < 0.05, (i, mean, err)


def test_azimuth_option_round_trip_and_bad_input(dy_azimuth, tmp_path):
    process, unf, events, x = dy_azimuth
    # samples of a reco event at the cut φ(ℓ⁻) ≈ 0 lie on both sides of it, near the reco φ
    i = int(x[:, 2].abs().argmin())
    ev = unf.sample(x[i:i + 1], 2000, generator=torch.Generator().manual_seed(4))
    dphi = kin.phi(ev.momenta)[:, 0] - x[i, 2]
    dphi = math.pi - torch.remainder(math.pi - dphi, 2 * math.pi)
    assert float(dphi.abs().median()) < 0.1, float(dphi.abs().median())
    unf.save(tmp_path / "az.pt")
    loaded = Unfolder.load(tmp_path / "az.pt")
    assert loaded.azimuth == (3, 2)
    with torch.no_grad():
        assert torch.equal(loaded.log_prob(events[:20], x[:20]), unf.log_prob(events[:20], x[:20]))
    for bad in [(4, 2), (3, 6), (3,), "3,2", (True, 2)]:
        with pytest.raises(ValueError, match="azimuth: expected"):
            Unfolder(unf.coordinates, reco_preprocessing(), azimuth=bad)


def test_save_load_round_trip(dy, tmp_path):
    process, unf, events, x = dy
    path = tmp_path / "unf.pt"
    save_refusing_overwrite(unf, path)
    loaded = Unfolder.load(path)
    with torch.no_grad():
        assert torch.equal(loaded.log_prob(events[:20], x[:20]), unf.log_prob(events[:20], x[:20]))
    a = loaded.sample(x[:3], 4, generator=torch.Generator().manual_seed(3))
    b = unf.sample(x[:3], 4, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.momenta, b.momenta)
    # explicit coordinates work; coordinates of another map are refused
    Unfolder.load(path, coordinates=unf.coordinates)
    with pytest.raises(ValueError, match="coordinates: their phase-space map differs"):
        Unfolder.load(path, coordinates=HardCoordinates.from_process(process, channel=1))
    plain = Unfolder(unf.coordinates, reco_preprocessing(), FlowConfig(transforms=1))
    plain.save(tmp_path / "plain.pt")
    with pytest.raises(ValueError, match="coordinates: this unfolder was not built"):
        Unfolder.load(tmp_path / "plain.pt")


def test_theta_inputs_and_bad_input(dy):
    process, unf, events, x = dy
    coords = unf.coordinates
    tu = Unfolder(coords, reco_preprocessing(), FlowConfig(transforms=1, hidden_features=(8,)),
                  theta_names=("mzp", "gzp"))
    n = 400
    theta = torch.stack([torch.full((n,), 2000.0), torch.rand(n, dtype=F64) + 0.5], -1)
    with pytest.raises(ValueError, match="theta: 'mzp' takes one value"):
        tu.fit(events[:n], x[:n], theta, config=TrainConfig(epochs=1), progress=False)
    theta[::2, 0] = 2100.0
    tu.fit(events[:n], x[:n], theta, config=TrainConfig(epochs=1), progress=False)
    with torch.no_grad():
        a = tu.log_prob(events[:3], x[:3], {"mzp": 2000.0, "gzp": torch.full((3,), 0.7)})
        b = tu.log_prob(events[:3], x[:3], torch.tensor([2000.0, 0.7]))
        c = tu.log_prob(events[:3], x[:3], torch.tensor([2000.0, 1.3]))
    assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(ValueError, match="theta: this unfolder is conditioned on"):
        tu.sample(x[:2], 3)
    with pytest.raises(ValueError, match=r"missing \['gzp'\]"):
        tu.sample(x[:2], 3, {"mzp": 2000.0})
    with pytest.raises(ValueError, match=r"theta: expected shape \(2,\) or \(2, 2\)"):
        tu.sample(x[:2], 3, torch.ones(3))
    with pytest.raises(ValueError, match="theta: this unfolder is not conditioned"):
        unf.sample(x[:2], 3, torch.ones(2))
    with pytest.raises(ValueError, match=r"x_reco: expected shape \(n, 6\)"):
        unf.sample(x[:2, :5], 3)
    bad = x[:2].clone()
    bad[0, 1] = math.nan
    with pytest.raises(ValueError, match="x_reco: 1 NaN"):
        unf.sample(bad, 3)
    with pytest.raises(ValueError, match="n: expected an integer >= 1"):
        unf.sample(x[:2], 0)
    with pytest.raises(ValueError, match="hard, x_reco: expected the same number"):
        unf.log_prob(events[:3], x[:4])
    with pytest.raises(TypeError, match="hard: expected HardEvents"):
        unf.log_prob(events.momenta[:3], x[:3])
    outside = HardEvents(events.momenta[:2] * 3, events.x1[:2] * 3, events.x2[:2] * 3,
                         events.sqrt_s)  # m_ll out of the 60-120 GeV window
    with pytest.raises(ValueError, match="hard: 2 of 2 hard events lie outside"):
        unf.fit(outside, x[:2], progress=False)
    with torch.no_grad():
        assert bool(torch.isinf(unf.log_prob(outside, x[:2])).all())
    with pytest.raises(ValueError, match="theta_names"):
        Unfolder(coords, reco_preprocessing(), theta_names=("a", "a"))
    with pytest.raises(TypeError, match="coordinates: expected a HardCoordinates"):
        Unfolder(process, reco_preprocessing())
    with pytest.raises(RuntimeError, match="fit_efficiency"):
        unf.efficiency(events[:2])
    with pytest.raises(ValueError, match="min_efficiency"):
        unf.sample_weighted(x[:2], 3, min_efficiency=0.0)


def test_weights_combine_efficiency_and_purity_and_survive_save(dy, tmp_path):
    """sample_weighted's weights are π(r_i) / (n max(ε(x_ij), min_efficiency)) of the
    same draws as sample(); the classifiers are saved and loaded with the unfolder."""
    process, unf, events, x = dy
    g = torch.Generator().manual_seed(8)
    _, passed = smear(events, g)  # a stand-in pass flag: any 0/1 labels train a classifier
    cfg = TrainConfig(epochs=1, batch_size=512)
    unf.fit_efficiency(events[:2000], passed[:2000], hidden_features=(8,), config=cfg,
                       progress=False)
    fakes = x[:1000].clone()
    fakes[:, [0, 3]] *= 2.0
    unf.fit_fakes(torch.cat([x[:1000], fakes]),
                  torch.cat([torch.ones(1000), torch.zeros(1000)]), hidden_features=(8,),
                  config=cfg, progress=False)
    ev, w = unf.sample_weighted(x[:3], 5, min_efficiency=0.2,
                                generator=torch.Generator().manual_seed(2))
    same = unf.sample(x[:3], 5, generator=torch.Generator().manual_seed(2))
    assert torch.equal(ev.momenta, same.momenta) and w.shape == (3, 5) and w.dtype == F64
    eps, pi = unf.efficiency(ev).reshape(3, 5), unf.purity(x[:3])
    assert bool(((eps >= 0) & (eps <= 1)).all() and ((pi >= 0) & (pi <= 1)).all())
    assert torch.allclose(w, pi[:, None] / (5 * eps.clamp(min=0.2)), rtol=1e-12, atol=0)
    unf.save(tmp_path / "w.pt")
    loaded = Unfolder.load(tmp_path / "w.pt")
    assert torch.equal(loaded.efficiency(ev), unf.efficiency(ev))
    assert torch.equal(loaded.purity(x[:3]), pi)
    with pytest.raises(ValueError, match="passed: expected shape"):
        unf.fit_efficiency(events[:10], passed[:9], progress=False)
    with pytest.raises(ValueError, match=r"matched: expected shape \(10,\) to match x_reco"):
        unf.fit_fakes(x[:10], torch.ones(9), progress=False)
    unf.efficiency_model = unf.purity_model = None  # the module fixture is shared


# --------------------------------------------------------------------- slow checks
@pytest.fixture(scope="module")
def dy_trained():
    """The must-show set-up: ~41k accepted events for training; 5000 hard events held out."""
    process = get_process("drell-yan", mll_min=60.0, mll_max=120.0)
    g = torch.Generator().manual_seed(1)
    events = generate(process, 500_000, g)
    x, passed = smear(events, g)
    n_test = 5000
    # the last n_test events (passing or not) are held out; the rest train the flow
    train = passed.clone()
    train[-n_test:] = False
    unf = Unfolder.from_process(process, reco_preprocessing(),
                                FlowConfig(transforms=4, hidden_features=(64, 64)))
    cfg = TrainConfig(epochs=30, batch_size=256, lr=2e-3, patience=None)
    unf.fit(events[train], x[train], config=cfg, seed=0, progress=False)
    return process, unf, events, x, passed, n_test


@pytest.mark.slow
def test_unfolding_is_calibrated_on_drell_yan(dy_trained, tmp_path):
    """Must-show: truth ranks flat (KS p > 0.01) per observable on held-out events, and a
    classifier cannot tell unfolded from true (hard, reco) pairs: AUC <= 0.55.

    For a calibrated posterior the KS p-values are U(0, 1): the 4 checks at 0.01 fail with
    probability ~4 % (the seeds are fixed, so the outcome is deterministic); coverages
    must lie within 4.5 binomial sd (fails w.p. ~5e-5 over the 8 checks)."""
    from invsim.unfold_diagnostics import plot_coverage, plot_histogram_ratios, plot_rank_histograms

    process, unf, events, x, passed, n_test = dy_trained
    held = torch.zeros(len(events), dtype=torch.bool)
    held[-n_test:] = True
    et, xt = events[held & passed], x[held & passed]
    m, n = len(et), 100
    samples = unf.sample(xt, n, generator=torch.Generator().manual_seed(5))
    post = {k: v.reshape(m, n) for k, v in observables(process, samples).items()}
    truth = observables(process, et)
    cal = calibration(post, truth, seed=2)
    print(f"\nunfolding calibration on {m} held-out events, {n} samples each:\n"
          + cal.summary())
    for name in OBSERVABLES:
        assert cal.ks_pvalue[name] > 0.01, cal.summary()
        for lv, c, e in zip(cal.levels, cal.coverage[name], cal.coverage_error, strict=True):
            assert abs(c - lv) < 4.5 * e, (name, lv, c, e)
    # classifier two-sample test on (hard observables, reco observables): one unfolded
    # sample per reco event vs the true hard event of the same reco event (held out)
    one = unf.sample(xt, 1, generator=torch.Generator().manual_seed(6))
    a = torch.cat([torch.stack(list(observables(process, one).values()), -1), xt], -1)
    b = torch.cat([torch.stack(list(truth.values()), -1), xt], -1)
    c2st = classifier_two_sample_test(a, b, hidden_features=(32, 32), seed=0)
    print(f"classifier two-sample test: AUC = {c2st.auc:.4f} ± {c2st.error:.4f} "
          f"(null sd {c2st.null_error:.4f}, n_test = {c2st.n_test})")
    assert c2st.auc <= 0.55, c2st
    ratios = {k: histogram_ratio(observables(process, one)[k], truth[k], 12) for k in OBSERVABLES}
    for k, h in ratios.items():
        print(f"histogram ratio {k}: chi2/ndof = {h.chi2:.1f}/{h.ndof}")
    plot_rank_histograms(cal, tmp_path / "ranks.png")
    plot_coverage(cal, tmp_path / "coverage.png")
    plot_histogram_ratios(ratios, tmp_path / "ratios.png")
    assert (tmp_path / "ranks.png").stat().st_size > 5000


# ----------------------------------------------- θ conditioning, efficiency and fakes
MZP = (1950.0, 2050.0)  # the two θ points; the Z′ window below covers both peaks


def efficiency_true(events: HardEvents) -> torch.Tensor:
    """The smooth detector efficiency of the θ set-up, shape (n,), in [0.16, 0.90].

    Per lepton 0.4 + 0.55 sigmoid((pT - 700 GeV)/200 GeV) exp(-η²/8); events pass with the
    product of both, independently of the smearing (no hard cuts anywhere)."""
    p = events.momenta
    eta = kin.pseudorapidity(p)
    per_lepton = 0.4 + 0.55 * torch.sigmoid((kin.pt(p) - 700.0) / 200.0) * torch.exp(-eta**2 / 8)
    return per_lepton.prod(-1)


def cat_events(parts: list[HardEvents]) -> HardEvents:
    return HardEvents(torch.cat([e.momenta for e in parts]), torch.cat([e.x1 for e in parts]),
                      torch.cat([e.x2 for e in parts]), parts[0].sqrt_s)


@pytest.fixture(scope="module")
def dy_theta():
    """Z′ → ℓℓ in 1600-2400 GeV at mzp = 1950 and 2050 GeV (same couplings), 200k
    hit-or-miss tries each (~33k and ~24k events); η, φ smeared by 0.1, pT by 5 %, events
    kept with probability efficiency_true. The last 3000 hard events of each point (passing
    or not) are held out; the unfolder conditioned on mzp trains on the passing rest."""
    process = get_process("drell-yan", mll_min=1600.0, mll_max=2400.0)
    g = torch.Generator().manual_seed(21)
    n_test = 3000
    data = {}
    for mzp in MZP:
        events = generate(process, 200_000, g, params={"mzp": mzp})
        x, _ = smear(events, g, angle=0.1)
        passed = torch.rand(len(events), generator=g, dtype=F64) < efficiency_true(events)
        train = torch.arange(len(events)) < len(events) - n_test
        data[mzp] = (events, x, passed, train)
    unf = Unfolder.from_process(process, reco_preprocessing(),
                                FlowConfig(transforms=4, hidden_features=(64, 64)),
                                params={"mzp": 2000.0}, theta_names=("mzp",))
    use = [(data[mzp][2] & data[mzp][3]) for mzp in MZP]
    hard = cat_events([data[mzp][0][u] for mzp, u in zip(MZP, use, strict=True)])
    x_reco = torch.cat([data[mzp][1][u] for mzp, u in zip(MZP, use, strict=True)])
    theta = torch.cat([torch.full((int(u.sum()), 1), mzp, dtype=F64)
                       for mzp, u in zip(MZP, use, strict=True)])
    cfg = TrainConfig(epochs=30, batch_size=256, lr=2e-3, patience=None)
    unf.fit(hard, x_reco, theta, config=cfg, seed=0, progress=False)
    return process, unf, data


def _held_out(data, mzp):
    events, x, passed, train = data[mzp]
    keep = passed & ~train
    return events[keep], x[keep]


@pytest.mark.slow
def test_theta_conditioning_on_zprime_mass(dy_theta):
    """(a) For the same reco events (generated at mzp = 1950), the posterior depends on θ as
    it should: its mean m_ll moves up with mzp, by less than the truth-level shift
    (shrinkage by the likelihood); samples drawn at the wrong θ (2050) are miscalibrated
    against the 1950 truths, and reweighting them by dσ(1950)/dσ(2050) per hard sample
    (HadronicIntegrand.differential; 1000 draws for each of 300 events, then 100 by
    multinomial resampling) restores calibration of m_ll and reproduces the direct θ1
    posterior means.
    (b) At each θ, held-out events generated there are calibrated (KS p > 0.01, coverage
    within 4.5 binomial sd).

    False-failure rates for a correct θ-conditional posterior: each KS p-value is U(0, 1),
    so the 9 checks at 0.01 fail w.p. ~9 % (seeds are fixed, the outcome deterministic);
    the 18 coverages at 4.5 sd w.p. ~1e-4; the 5 sd checks of the shift and of the
    reweighted means w.p. < 1e-6 each. The
    wrong-θ check (KS p < 1e-6) fails only if the posterior ignores θ."""
    process, unf, data = dy_theta
    # (b) calibration at each θ on its own held-out events
    for k, mzp in enumerate(MZP):
        et, xt = _held_out(data, mzp)
        m, n = len(et), 100
        samples = unf.sample(xt, n, {"mzp": mzp}, generator=torch.Generator().manual_seed(30 + k))
        post = {key: v.reshape(m, n) for key, v in observables(process, samples).items()}
        cal = calibration(post, observables(process, et), seed=40 + k)
        print(f"\nmzp = {mzp}: calibration on {m} held-out events\n" + cal.summary())
        for name in OBSERVABLES:
            assert cal.ks_pvalue[name] > 0.01, (mzp, cal.summary())
            for lv, c, e in zip(cal.levels, cal.coverage[name], cal.coverage_error, strict=True):
                assert abs(c - lv) < 4.5 * e, (mzp, name, lv, c, e)
    # (a) the same reco events (generated at θ1), posteriors at θ1 and θ2
    t1, t2 = MZP
    et, xt = _held_out(data, t1)
    m, n = len(et), 200
    ev1 = unf.sample(xt, n, {"mzp": t1}, generator=torch.Generator().manual_seed(50))
    ev2 = unf.sample(xt, n, {"mzp": t2}, generator=torch.Generator().manual_seed(51))
    m1 = observables(process, ev1)["m_ll"].reshape(m, n)
    m2 = observables(process, ev2)["m_ll"].reshape(m, n)
    shift = m2.mean(1) - m1.mean(1)  # per reco event
    shift_mean, shift_err = float(shift.mean()), float(shift.std() / math.sqrt(m))
    truth_shift = float(process.observables(data[t2][0])["m_ll"].mean()
                        - process.observables(data[t1][0])["m_ll"].mean())
    print(f"posterior mean m_ll shift {shift_mean:.1f} ± {shift_err:.1f} GeV "
          f"(truth-level shift {truth_shift:.1f} GeV)")
    assert shift_mean > 5 * shift_err and truth_shift - shift_mean > 5 * shift_err
    # wrong θ: miscalibrated for m_ll; reweighted to θ1: calibrated again. The θ2
    # posterior is shifted by about its width, so the self-normalised weights need many
    # draws to populate the θ1 tails: 1000 per event, for the first 300 events
    k, n_rw = 300, 1000
    ev_rw = unf.sample(xt[:k], n_rw, {"mzp": t2}, generator=torch.Generator().manual_seed(52))
    integrand = HadronicIntegrand(process)
    with torch.no_grad():
        log_r = (integrand.differential(ev_rw, {"mzp": t1}).log()
                 - integrand.differential(ev_rw, {"mzp": t2}).log()).reshape(k, n_rw)
    w = torch.softmax(log_r, -1)
    ess = 1 / w.pow(2).sum(-1)
    m_rw = observables(process, ev_rw)["m_ll"].reshape(k, n_rw)
    pick = torch.multinomial(w, 100, replacement=True, generator=torch.Generator().manual_seed(53))
    truth = {"m_ll": observables(process, et[:k])["m_ll"]}
    wrong = calibration({"m_ll": m_rw[:, :100]}, truth, seed=54)
    fixed = calibration({"m_ll": torch.gather(m_rw, 1, pick)}, truth, seed=55)
    print(f"m_ll at the wrong θ ({k} events): KS p = {wrong.ks_pvalue['m_ll']:.2e}; reweighted "
          f"(ESS {float(ess.mean()):.0f} of {n_rw} on average, min {float(ess.min()):.0f}): "
          + fixed.summary())
    # the reweighted posterior mean against the direct one, per reco event: equal up to
    # MC noise (and the O(1/ESS) bias of self-normalised weights, < 0.3 GeV here)
    diff = (w * m_rw).sum(-1) - m1[:k].mean(-1)
    diff_mean, diff_err = float(diff.mean()), float(diff.std() / math.sqrt(k))
    print(f"reweighted - direct posterior mean m_ll: {diff_mean:.1f} ± {diff_err:.1f} GeV")
    assert abs(diff_mean) < 5 * diff_err
    assert wrong.ks_pvalue["m_ll"] < 1e-6
    assert fixed.ks_pvalue["m_ll"] > 0.01 and float(ess.min()) > 20
    for lv, c, e in zip(fixed.levels, fixed.coverage["m_ll"], fixed.coverage_error, strict=True):
        assert abs(c - lv) < 4.5 * e, (lv, c, e)


@pytest.mark.slow
def test_efficiency_weights_restore_the_full_hard_distribution(dy_theta):
    """1/ε-weighted unfolded samples of the reco events at mzp = 1950 reproduce the
    distribution of *all* hard events there (passing or not), bin by bin. The detector's ε
    is smooth and >= 0.16 everywhere (efficiency_true), so no region is excluded.

    The reference is the θ1 training events (independent of the held-out reco events),
    scaled to the 3000 held-out hard events; unfolded errors are per reco event (grouped).
    With Gaussian bin errors, chi2 < ndof + 5 sqrt(2 ndof) fails w.p. < 1e-4 per
    observable; |Σw - 3000| < 5 sd w.p. 6e-7; the reliability chi2 of ε w.p. < 1e-4."""
    process, unf, data = dy_theta
    t1 = MZP[0]
    # ε(x) = P(pass | x) does not depend on how the x were drawn: train it on 300k events
    # uniform in the unit hypercube of the coordinates' map (no PDFs, cheap), passing
    # with probability efficiency_true
    g = torch.Generator().manual_seed(61)
    hard, _ = unf.coordinates.map.forward(torch.rand(300_000, unf.dim, generator=g, dtype=F64))
    passed = torch.rand(len(hard), generator=g, dtype=F64) < efficiency_true(hard)
    unf.fit_efficiency(hard, passed, hidden_features=(64, 64),
                       config=TrainConfig(epochs=10, batch_size=1024, lr=2e-3), progress=False)
    events, x, passed1, train = data[t1]
    held = events[~train]
    eps = unf.efficiency(held)
    rel = reliability(eps, passed1[~train], bins=10)
    mad = float((eps - efficiency_true(held)).abs().mean())
    print(f"\nε: reliability chi2 {rel.chi2:.1f}/{rel.ndof}, mean |ε - ε_true| = {mad:.3f}")
    assert rel.chi2 < rel.ndof + 5 * math.sqrt(2 * rel.ndof), rel
    et, xt = _held_out(data, t1)
    m, n = len(et), 50
    ev, w = unf.sample_weighted(xt, n, {"mzp": t1}, generator=torch.Generator().manual_seed(60))
    n_all = len(held)
    total, total_err = float(w.sum()), float(w.sum(1).pow(2).sum().sqrt())
    print(f"Σ weights = {total:.0f} ± {total_err:.0f} for {n_all} hard events "
          f"({m} passed)")
    assert abs(total - n_all) < 5 * total_err
    ref = observables(process, events[train])
    scale = torch.full((int(train.sum()),), n_all / float(train.sum()), dtype=F64)
    obs = observables(process, ev)
    for name in OBSERVABLES:
        a = obs[name].reshape(m, n)
        h = histogram_ratio(a, ref[name], 10, weights_a=w, weights_b=scale)
        plain = histogram_ratio(a, ref[name], 10, weights_a=torch.full_like(w, 1 / n),
                                weights_b=scale)
        print(f"{name}: chi2 {h.chi2:.1f}/{h.ndof} with 1/ε weights, "
              f"{plain.chi2:.0f} without")
        assert h.chi2 < h.ndof + 5 * math.sqrt(2 * h.ndof), (name, h)
        if name == "m_ll":  # without the weights the unfolded total is far short
            assert plain.chi2 > h.ndof + 20 * math.sqrt(2 * h.ndof), (name, plain)


def fake_reco(k: int, g: torch.Generator) -> torch.Tensor:
    """Toy fakes with no hard partner: per lepton pT = 50 GeV + Exp(300 GeV),
    η ~ U(-2.5, 2.5), φ ~ U(-π, π), independent; shape (k, 6) as (pT, η, φ) x 2."""
    pt = 50 - 300 * torch.log(torch.rand(k, 2, generator=g, dtype=F64))
    eta = 5 * torch.rand(k, 2, generator=g, dtype=F64) - 2.5
    phi = (2 * torch.rand(k, 2, generator=g, dtype=F64) - 1) * math.pi
    return torch.stack([pt, eta, phi], -1).reshape(k, 6)


@pytest.mark.slow
def test_fake_purity_matches_the_mixture(dy_theta):
    """π(x_reco) from fit_fakes on reco events at mzp = 1950 mixed with toy fakes at one
    fake per two signal events; on an independent mixture of the same proportions, the
    mean π per bin of leading-lepton pT (10 equally populated bins) matches the observed
    signal fraction, with the Poisson-binomial error sqrt(Σ π(1 - π))/N per bin:
    chi2 < ndof + 5 sqrt(2 ndof) fails w.p. < 1e-4; Σ π within 5 sd of the number of signal
    events w.p. 6e-7. sample_weighted multiplies the weights by π of the reco event."""
    process, unf, data = dy_theta
    t1 = MZP[0]
    g = torch.Generator().manual_seed(70)
    events, x, passed, train = data[t1]
    signal = x[passed & train]
    fakes = fake_reco(len(signal) // 2, g)
    unf.fit_fakes(torch.cat([signal, fakes]),
                  torch.cat([torch.ones(len(signal)), torch.zeros(len(fakes))]).bool(),
                  config=TrainConfig(epochs=15, batch_size=512, lr=2e-3), progress=False)
    _, xs = _held_out(data, t1)
    xm = torch.cat([xs, fake_reco(len(xs) // 2, g)])
    is_signal = torch.cat([torch.ones(len(xs)), torch.zeros(len(xm) - len(xs))]).double()
    pi = unf.purity(xm)
    total_err = float((pi * (1 - pi)).sum().sqrt())
    print(f"\nΣ π = {float(pi.sum()):.0f} ± {total_err:.0f} for {len(xs)} signal events")
    assert abs(float(pi.sum()) - len(xs)) < 5 * total_err
    lead = torch.maximum(xm[:, 0], xm[:, 3])
    edges = torch.quantile(lead, torch.linspace(0, 1, 11, dtype=F64))
    idx = (torch.bucketize(lead, edges[1:-1], right=True)).clamp(max=9)
    chi2, observed = 0.0, []
    for b in range(10):
        sel = idx == b
        f_obs, f_pred = float(is_signal[sel].mean()), float(pi[sel].mean())
        err = float((pi[sel] * (1 - pi[sel])).sum().sqrt()) / int(sel.sum())
        chi2 += ((f_obs - f_pred) / err) ** 2
        observed.append(f_obs)
        print(f"lead pT bin {b}: N = {int(sel.sum())}, signal fraction {f_obs:.3f}, "
              f"mean π {f_pred:.3f} ± {err:.3f}")
    assert max(observed) - min(observed) > 0.5  # the purity varies: the check has power
    assert chi2 < 10 + 5 * math.sqrt(20), chi2
    # sample_weighted: weight = π(r_i) / (n max(ε, min_efficiency))
    ev, w = unf.sample_weighted(xs[:4], 6, {"mzp": t1}, min_efficiency=0.1,
                                generator=torch.Generator().manual_seed(71))
    ev2 = unf.sample(xs[:4], 6, {"mzp": t1}, generator=torch.Generator().manual_seed(71))
    assert torch.equal(ev.momenta, ev2.momenta)
    expect = unf.purity(xs[:4])[:, None] / (6 * unf.efficiency(ev).reshape(4, 6).clamp(min=0.1))
    assert torch.allclose(w, expect, rtol=1e-12, atol=0)
