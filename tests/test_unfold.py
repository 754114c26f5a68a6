"""invsim.unfold: cINN unfolding of Drell–Yan with Gaussian lepton smearing.

Hard events are distributed as dσ/dμ (hit-or-miss on the process's Breit–Wigner channel
with ``forward.integrand`` weights); the reco side smears each lepton's pT by 5 %, η and φ
by 0.03 and requires pT > 20 GeV, |η| < 2.5 for both leptons.
"""

from __future__ import annotations

import math

import pytest
import torch

from forward import kinematics as kin
from forward.events import HardEvents
from forward.integrand import HadronicIntegrand
from forward.nis.unweighting import unweight
from forward.processes import get_process
from invsim.flows import FlowConfig, TrainConfig, observable_preprocessing
from invsim.hardspace import HardCoordinates
from invsim.unfold import Unfolder
from invsim.unfold_diagnostics import (
    calibration,
    classifier_two_sample_test,
    histogram_ratio,
    plot_coverage,
    plot_histogram_ratios,
    plot_rank_histograms,
)

F64 = torch.float64
OBSERVABLES = ("m_ll", "y_ll", "cos_theta_cs", "pt_lminus")


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def generate(process, n_try: int, g: torch.Generator, params=None) -> HardEvents:
    """Unweighted hard events ~ dσ/dμ by hit-or-miss (w_max = the largest weight)."""
    integrand = HadronicIntegrand(process, params=params)
    r = torch.rand(n_try, integrand.dim, generator=g, dtype=F64)
    kept = unweight(integrand(r), 0.0, generator=g)
    events, _ = integrand.map.forward(r[kept.indices])
    return events


def smear(events: HardEvents, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Reco observables (pT, η, φ) of ℓ⁻ and ℓ⁺, shape (n, 6), and the selection (n,)."""
    p = events.momenta
    pt = kin.pt(p) * (1 + 0.05 * torch.randn(p.shape[:2], generator=g, dtype=F64))
    eta = kin.pseudorapidity(p) + 0.03 * torch.randn(p.shape[:2], generator=g, dtype=F64)
    phi = kin.phi(p) + 0.03 * torch.randn(p.shape[:2], generator=g, dtype=F64)
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


def test_sample_and_log_prob_layout_and_consistency(dy):
    process, unf, events, x = dy
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


def test_density_is_normalised_wrt_dmu(dy):
    """∫ q(x | r) dμ = 1, checked with a density h of *other* coordinates (the power-law
    channel): E_{x~q}[h_μ(x)/q_μ(x)] = ∫ h_μ dμ = 1 for any normalised h. h is a Gaussian in
    those coordinates with 0.7 times the spread of q's samples, so the ratio is bounded
    where q is Gaussian-like. |mean - 1| < 5 standard errors fails w.p. ~6e-7."""
    process, unf, events, x = dy
    other = HardCoordinates.from_process(process, channel=1)
    assert type(other.map.s_sampling).__name__ != type(unf.coordinates.map.s_sampling).__name__
    for i in range(2):
        ev, log_q = unf.sample_and_log_prob(x[i:i + 1], 20000,
                                            generator=torch.Generator().manual_seed(10 + i))
        z, log_det = other.features(ev)
        mu, sd = z.mean(0), 0.7 * z.std(0)
        log_h = torch.distributions.Normal(mu, sd).log_prob(z).sum(-1) + log_det
        w = torch.exp(log_h - log_q.reshape(-1))
        mean, err = float(w.mean()), float(w.std() / math.sqrt(len(w)))
        assert abs(mean - 1) < 5 * err and err < 0.05, (i, mean, err)


def test_save_load_round_trip(dy, tmp_path):
    process, unf, events, x = dy
    path = tmp_path / "unf.pt"
    unf.save(path)
    with pytest.raises(FileExistsError):
        unf.save(path)
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
