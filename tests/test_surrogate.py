"""forward.surrogate: losses, features, symmetry, calibration, unweighting, persistence.

Fast tests (each a few seconds on one core); training-heavy checks are in
tests/test_surrogate_slow.py.
"""

from __future__ import annotations

import math

import pytest
import torch
from _helpers import seeded
from scipy import stats

from forward.events import HardEvents
from forward.processes import get_process
from forward.surrogate import (
    SurrogateConfig,
    SurrogateMatrixElement,
    SurrogateProcess,
    SymmetricRegressor,
    TrainingData,
    channel_groups,
    generate_training_data,
    identical_permutations,
    invariant_features,
    log_reference,
    plot_precision,
    precision_summary,
    train_surrogate,
    two_stage_unweight,
)
from forward.surrogate.layers import BayesianLinear
from forward.surrogate.losses import gaussian_nll


@pytest.fixture(scope="module")
def diphoton_data(diphoton):
    return generate_training_data(diphoton, 3000, generator=seeded(11))


@pytest.fixture(scope="module")
def ttbar_fit():
    proc = get_process("ttbar")
    data = generate_training_data(proc, 600, generator=seeded(5))
    cfg = SurrogateConfig(kind="bayesian", hidden=16, layers=2, epochs=2, samples=3)
    return proc, train_surrogate(proc, data, cfg, generator=seeded(6))


# -- losses and layers -------------------------------------------------------------------
def test_gaussian_nll_value_and_gradients():
    g = seeded(1)
    mean = torch.randn(50, 2, generator=g, dtype=torch.float64, requires_grad=True)
    log_sigma = (0.3 * torch.randn(50, 2, generator=g, dtype=torch.float64)).requires_grad_()
    y = torch.randn(50, 2, generator=g, dtype=torch.float64)
    w = torch.rand(50, generator=g, dtype=torch.float64)
    loss = gaussian_nll(mean, log_sigma, y, w)
    # reference: torch.distributions.Normal, weighted average over points and groups
    ref_pt = -torch.distributions.Normal(mean, log_sigma.exp()).log_prob(y)
    ref = (w.unsqueeze(-1) * ref_pt).sum() / (2 * w.sum())
    assert torch.allclose(loss, ref, rtol=1e-12, atol=0)
    loss.backward()
    sig2 = (2 * log_sigma).exp().detach()
    norm = (2 * w.sum()).unsqueeze(-1)
    d_mean = w.unsqueeze(-1) * (mean.detach() - y) / sig2 / norm
    d_ls = w.unsqueeze(-1) * (1 - (y - mean.detach()) ** 2 / sig2) / norm
    assert torch.allclose(mean.grad, d_mean, rtol=1e-10, atol=1e-14)
    assert torch.allclose(log_sigma.grad, d_ls, rtol=1e-10, atol=1e-14)


def test_gaussian_nll_mask_ignores_entries():
    mean = torch.zeros(4, 1, dtype=torch.float64)
    ls = torch.zeros(4, 1, dtype=torch.float64)
    y = torch.tensor([[0.0], [1.0], [1e9], [2.0]], dtype=torch.float64)
    mask = torch.tensor([[True], [True], [False], [True]])
    ref = gaussian_nll(mean[[0, 1, 3]], ls[[0, 1, 3]], y[[0, 1, 3]])
    assert torch.allclose(gaussian_nll(mean, ls, y, mask=mask), ref, rtol=1e-14)


def test_bayesian_linear_kl_matches_torch():
    lin = BayesianLinear(3, 2, prior_std=0.7, init_std=0.05, dtype=torch.float64)
    with torch.no_grad():
        lin.weight_mu.normal_(generator=seeded(2))
    q = torch.distributions.Normal(
        torch.cat([lin.weight_mu.flatten(), lin.bias_mu]),
        torch.nn.functional.softplus(torch.cat([lin.weight_rho.flatten(), lin.bias_rho])),
    )
    p = torch.distributions.Normal(torch.zeros(8, dtype=torch.float64), 0.7)
    ref = torch.distributions.kl_divergence(q, p).sum()
    assert torch.allclose(lin.kl(), ref, rtol=1e-12)


def test_bayesian_linear_draws_have_posterior_moments():
    lin = BayesianLinear(2, 1, init_std=0.2, dtype=torch.float64)
    g = seeded(3)
    draws = torch.stack([lin.draw(g)[0] for _ in range(1500)])
    # mean within 5 standard errors (0.2/sqrt(1500)); fails with probability < 1e-5
    assert (draws.mean(0) - lin.weight_mu).abs().max() < 5 * 0.2 / math.sqrt(1500)
    # std of the std estimate is ≈ σ/sqrt(2n): 5σ bound
    assert (draws.std(0) - 0.2).abs().max() < 5 * 0.2 / math.sqrt(2 * 1500)


# -- features ------------------------------------------------------------------------------
def test_invariants_against_process_invariants(diphoton, diphoton_data):
    from forward.processes.diphoton_jet import production_invariants

    ev = diphoton_data.events[:200]
    f = invariant_features(ev)
    s, t, u = production_invariants(ev)
    # row-major pairs of (a, b, γ1, γ2, g): (a,b), (a,γ1), (a,γ2), (a,g), (b,γ1), ...
    assert torch.allclose(f[:, 0], torch.zeros(200, dtype=f.dtype), atol=1e-12)
    assert torch.allclose(f[:, 1:4], torch.log(-t / s.unsqueeze(-1)), atol=1e-9)
    assert torch.allclose(f[:, 4:7], torch.log(-u / s.unsqueeze(-1)), atol=1e-9)
    assert torch.allclose(f[:, 10], torch.log(s), rtol=1e-14)
    # massless final state: m²/ŝ ≈ 0
    assert f[:, 11:].abs().max() < 1e-9


def test_features_are_lorentz_invariant(diphoton_data):
    from forward.kinematics import boost

    ev = diphoton_data.events[:100]
    beta = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64)
    # boost every momentum (incoming included) with a generic boost: the pair invariants
    q = torch.cat([ev.incoming, ev.momenta], 1)
    qb = boost(q, beta)
    metric = torch.tensor([1.0, -1, -1, -1], dtype=torch.float64)
    s0 = torch.einsum("nid,njd->nij", q * metric, q)
    s1 = torch.einsum("nid,njd->nij", qb * metric, qb)
    assert torch.allclose(s0, s1, rtol=1e-9, atol=1e-6)


def test_log_reference_eikonal_matches_invariants(diphoton, diphoton_data):
    from forward.processes.diphoton_jet import production_invariants

    ev = diphoton_data.events[:300]
    s, t, u = production_invariants(ev)
    ref = -torch.log(s) + (2 * torch.log(s).unsqueeze(-1) - torch.log(t * u)).sum(-1)
    assert torch.allclose(log_reference(ev, "eikonal"), ref, rtol=1e-10)
    assert torch.allclose(log_reference(ev, "dimension"), -torch.log(s), rtol=1e-12)
    assert torch.equal(log_reference(ev, "none"), torch.zeros(300, dtype=torch.float64))
    # the remainder |M|²/R is bounded: the eikonal factor carries all the singular behaviour
    y = torch.log(diphoton_data.me2[:300, 0]) - log_reference(ev)
    assert float(y.max() - y.min()) < 5.0
    raw = torch.log(diphoton_data.me2[:300, 0]) - log_reference(ev, "dimension")
    assert float(raw.max() - raw.min()) > 2 * float(y.max() - y.min())


def test_identical_permutations():
    assert identical_permutations((22, 22, 21)) == [(0, 1, 2), (1, 0, 2)]
    assert identical_permutations((6, -6)) == [(0, 1)]
    assert len(set(identical_permutations((22, 21, 22, 22)))) == 6


@pytest.mark.parametrize("kind", ["heteroscedastic", "bayesian", "ensemble"])
def test_permutation_symmetry_is_exact(kind, diphoton_data):
    ev = diphoton_data.events[:257]
    swapped = HardEvents(ev.momenta[:, [1, 0, 2]], ev.x1, ev.x2, ev.sqrt_s)
    reg = SymmetricRegressor(3, identical_permutations((22, 22, 21)), 1, kind=kind,
                             members=3, hidden=32, layers=2, generator=seeded(4))
    reg.x_scaler.fit(invariant_features(ev))
    for samples in (0, 4):
        a = reg.predict(ev, samples=samples, generator=seeded(9))
        b = reg.predict(swapped, samples=samples, generator=seeded(9))
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    # and the network itself is not symmetric: the averaging does the work
    f = reg.features(ev)
    m0, _ = reg.nets[0](f[0])
    m1, _ = reg.nets[0](f[1])
    assert not torch.allclose(m0, m1)


def test_three_identical_particles_exact():
    g = seeded(7)
    p = torch.randn(64, 3, 3, generator=g, dtype=torch.float64) * 50
    mom = torch.cat([p.norm(dim=-1, keepdim=True), p], -1)
    # put the event in a frame where the total momentum is along z with E > |pz|
    tot = mom.sum(1)
    ev = HardEvents(mom, torch.full((64,), 0.1, dtype=torch.float64),
                    torch.full((64,), 0.1, dtype=torch.float64), 13000.0)
    del tot
    perms = identical_permutations((22, 22, 22))
    reg = SymmetricRegressor(3, perms, 2, hidden=16, layers=2, generator=g)
    for perm in perms:
        ev_p = HardEvents(ev.momenta[:, list(perm)], ev.x1, ev.x2, ev.sqrt_s)
        assert torch.equal(reg.predict(ev_p)[0], reg.predict(ev)[0])


# -- channels ------------------------------------------------------------------------------
def test_channel_groups_diphoton_and_ttbar(diphoton, diphoton_data):
    groups, refs, ratios = channel_groups(diphoton_data.me2)
    assert groups == [0] * 10 and refs == [0]
    # charge factors e_q^4 relative to the d quark: u and c are 16 times d
    assert ratios == pytest.approx([1, 1, 16, 16, 1, 1, 16, 16, 1, 1], rel=1e-12)
    tt = get_process("ttbar")
    data = generate_training_data(tt, 200, generator=seeded(3))
    groups, refs, ratios = channel_groups(data.me2)
    # g g and q q̄ are different functions; q q̄ and q̄ q are equal (symmetric in t ↔ u)
    assert refs == [0, 1]
    assert groups == [0] + [1] * 10 and ratios == pytest.approx([1.0] * 11, rel=1e-12)
    gg_only = generate_training_data(get_process("ttbar", initial_states="gg"), 50,
                                     generator=seeded(3))
    groups, refs, ratios = channel_groups(gg_only.me2)
    assert groups == [0] + [-1] * 10 and ratios[1:] == [0.0] * 10


# -- data ----------------------------------------------------------------------------------
def test_training_data_pass_cuts_and_exact_me(diphoton, diphoton_data):
    assert len(diphoton_data) == 3000
    assert bool(diphoton.cuts(diphoton_data.events).all())
    again = diphoton.matrix_element(diphoton_data.events, diphoton.params())
    assert torch.equal(again, diphoton_data.me2)
    ev, _ = diphoton.phase_space()[0].forward(diphoton_data.r)
    assert torch.allclose(ev.momenta, diphoton_data.events.momenta, rtol=1e-12, atol=1e-9)


def test_oversampling_high_me_region(diphoton):
    over = generate_training_data(diphoton, 2000, oversample=(0.5, 0.9), generator=seeded(22))
    # log_q: density relative to the flat cube, 1 - f + f/(1 - q) = 5.5 above the
    # threshold and 1 - f = 0.5 below
    high = over.log_q > 0
    assert torch.allclose(over.log_q[high], torch.full_like(over.log_q[high], math.log(5.5)))
    assert torch.allclose(over.log_q[~high], torch.full_like(over.log_q[~high], math.log(0.5)))
    # the threshold separates the two groups in |M|²
    total = over.me2.sum(-1)
    assert float(total[high].min()) > float(total[~high].max())
    # all 1000 rare points and 10 % of the 1000 plain ones (the quantile of their own
    # sample, exact up to one point) lie above it
    assert abs(int(high.sum()) - 1100) <= 1
    base = generate_training_data(diphoton, 500, generator=seeded(21))
    assert bool((base.log_q == 0).all())


def test_training_data_from_a_nis_proposal(diphoton):
    from forward.nis import VegasMap

    vegas = VegasMap(7)
    with torch.no_grad():  # a non-uniform grid: bins squeezed towards 0 in every dimension
        vegas.edges.copy_(torch.linspace(0, 1, 65, dtype=torch.float64).pow(2).expand(7, 65))
    data = generate_training_data(diphoton, 500, sampler=vegas, generator=seeded(8))
    assert torch.allclose(data.log_q, vegas.log_prob(data.r), rtol=1e-10)
    assert float(data.r.mean()) < 0.45  # squeezed towards 0 (uniform would give 0.5)


# -- calibration on a toy with known heteroscedastic noise --------------------------------
@pytest.mark.parametrize("kind", ["heteroscedastic", "bayesian"])
def test_calibration_on_noisy_toy(kind):
    """tt̄ |M|² times log-normal noise of known width σ(x): the learned σ must match it."""
    from forward.kinematics import dot

    proc = get_process("ttbar")
    n = 4000
    data = generate_training_data(proc, 2 * n, generator=seeded(31))
    pin, top = data.events.incoming, data.events.momenta[:, 0]
    sa, sb = dot(pin[:, 0], top), dot(pin[:, 1], top)
    true_sigma = 0.05 + 0.25 * sa / (sa + sb)  # invariant, between 0.05 and 0.3
    eps = torch.randn(2 * n, generator=seeded(32), dtype=torch.float64)
    noisy = data.me2 * torch.exp(true_sigma * eps).unsqueeze(-1)
    train = TrainingData(data.events[:n], noisy[:n], data.r[:n], data.log_q[:n], data.params)
    test_ev, test_y = data.events[n:], torch.log(noisy[n:][:, [0, 1]])  # g g and q q̄
    cfg = SurrogateConfig(kind=kind, hidden=32, layers=2, epochs=20, batch_size=128,
                          lr=3e-3, calibrate=False, samples=5)
    fit = train_surrogate(proc, train, cfg, generator=seeded(33))
    log_me, sig = fit.surrogate.log_predict(test_ev)
    pull = (log_me - test_y) / sig
    # pull mean and std of 4000 points have statistical errors 0.016 and 0.011 (so a
    # false failure from statistics alone is < 1e-6); the bounds (0.1) leave room for the
    # fit's own imperfection. The learned σ(x) must follow the true one: a constant σ
    # would give a 10-90 % spread of σ_true-ratios above 1.
    ratio = sig / true_sigma[n:].unsqueeze(-1)
    for g in range(2):
        assert abs(float(pull[:, g].mean())) < 0.1
        assert abs(float(pull[:, g].std()) - 1) < 0.1
        assert abs(float(ratio[:, g].median()) - 1) < 0.1
        assert float(ratio[:, g].quantile(0.9) - ratio[:, g].quantile(0.1)) < 0.45


# -- two-stage unweighting -----------------------------------------------------------------
def _toy_two_stage(seed: int, n: int = 400_000):
    """x ~ U(0,1); exact density f_e = 2x; surrogate f_s = f_e (1 + 0.4 sin 9x)."""
    g = seeded(seed)
    x = torch.rand(n, generator=g, dtype=torch.float64)
    w_exact = 2 * x
    w_surr = 2 * x * (1 + 0.4 * torch.sin(9 * x))
    calls = []

    def exact(idx):
        calls.append(idx.numel())
        return w_exact[idx]

    res = two_stage_unweight(w_surr, exact, surrogate_max=2 * 1.4, ratio_max=1 / 0.6,
                             generator=g)
    return x, w_surr, res, calls


def test_two_stage_unweighting_is_exact_on_toy():
    x, w_surr, res, calls = _toy_two_stage(41)
    kept = x[res.index]
    assert res.overweight_fraction == 0.0 and torch.equal(res.weights, torch.ones_like(
        res.weights))
    assert calls == [res.n_exact]
    # KS test of the kept points against the exact CDF x²: for a correct implementation
    # p < 1e-3 happens with probability 1e-3 (fixed seed, so the test is deterministic)
    p = stats.kstest(kept.numpy(), lambda t: t**2).pvalue
    assert p > 1e-3
    # power: unweighting with the surrogate alone is visibly wrong on the same sample size
    g = seeded(42)
    only = x[torch.rand(x.numel(), generator=g, dtype=torch.float64) * 2.8 < w_surr]
    only = only[: kept.numel()]
    assert stats.kstest(only.numpy(), lambda t: t**2).pvalue < 1e-6
    # efficiencies: stage 1 keeps <w_s>/W, stage 2 <ρ>/X on the survivors (5σ binomial)
    e1 = float(w_surr.mean()) / 2.8
    assert abs(res.efficiency_first - e1) < 5 * math.sqrt(e1 * (1 - e1) / x.numel())


def test_two_stage_weighted_when_maxima_too_small():
    g = seeded(43)
    n = 400_000
    x = torch.rand(n, generator=g, dtype=torch.float64)
    w_exact = 3 * x**2
    w_surr = 3 * x**2 * (1.2 - 0.5 * x)
    res = two_stage_unweight(w_surr, lambda i: w_exact[i], surrogate_max=1.5, ratio_max=1.5,
                             generator=g)
    assert res.overweight_fraction > 0
    # the weighted kept sample reproduces E_f[x] = 3/4 and E_f[x²] = 3/5 (f = 3x²)
    kept, u = x[res.index], res.weights
    for k, ref in ((1, 0.75), (2, 0.6)):
        est = float((u * kept**k).sum() / u.sum())
        # error from ~1e5 weighted points is ~1e-3; 5e-3 is > 5 sigma (fails < 1e-6)
        assert abs(est - ref) < 5e-3


def test_two_stage_bad_input():
    w = torch.ones(10, dtype=torch.float64)
    with pytest.raises(ValueError, match="surrogate_weights"):
        two_stage_unweight(-w, lambda i: w[i])
    with pytest.raises(ValueError, match="NaN"):
        two_stage_unweight(w * float("nan"), lambda i: w[i])
    with pytest.raises(TypeError, match="exact_weights"):
        two_stage_unweight(w, w)
    with pytest.raises(ValueError, match="exact_weights"):
        two_stage_unweight(w, lambda i: w[:3], surrogate_max=0.5)
    with pytest.raises(ValueError, match="surrogate_max"):
        two_stage_unweight(w, lambda i: w[i], surrogate_max=0.0)
    with pytest.raises(ValueError, match="overweight"):
        two_stage_unweight(w, lambda i: w[i], overweight=1.0)


# -- drop-in matrix element, save/load -------------------------------------------------------
def test_surrogate_matrix_element_shapes_and_params(ttbar_fit):
    proc, fit = ttbar_fit
    sur = fit.surrogate
    ev = fit.val.events[:20]
    me = sur.matrix_element(ev, proc.params())
    assert me.shape == (20, 11) and me.dtype == torch.float64
    assert torch.equal(me, sur(ev, None))  # deterministic: fixed draws
    mean, sigma = sur.predict(ev)
    assert torch.equal(mean, me) and bool((sigma > 0).all())
    # q q̄ columns of all flavours share one function (exact ratios 1)
    assert torch.equal(me[:, 1], me[:, 3]) and torch.equal(me[:, 2], me[:, 10])
    with pytest.raises(ValueError, match="trained at mt=172.5"):
        sur.matrix_element(ev, proc.params({"mt": 175.0}))
    with pytest.raises(ValueError, match=r"shape \(n, 2, 4\)"):
        sur.matrix_element(HardEvents(torch.ones(3, 3, 4, dtype=torch.float64),
                                      torch.ones(3), torch.ones(3), 13000.0), None)
    with pytest.raises(TypeError, match="HardEvents"):
        sur.matrix_element(ev.momenta, None)


def test_surrogate_process_in_hadronic_integrand(ttbar_fit):
    from forward.integrand import HadronicIntegrand

    proc, fit = ttbar_fit
    sp = SurrogateProcess(proc, fit.surrogate)
    r = torch.rand(100, 4, generator=seeded(12), dtype=torch.float64)
    exact = HadronicIntegrand(proc)(r)
    approx = HadronicIntegrand(sp)(r)
    assert approx.shape == (100,) and bool(torch.isfinite(approx).all())
    # same events, PDFs and cuts: zero exactly where the exact weight is zero
    assert torch.equal(exact == 0, approx == 0)
    with pytest.raises(ValueError, match="final state"):
        SurrogateProcess(get_process("diphoton-jet"), fit.surrogate)


def test_save_load_round_trip(ttbar_fit, tmp_path):
    _, fit = ttbar_fit
    sur = fit.surrogate
    path = tmp_path / "tt.pt"
    sur.save(path)
    back = SurrogateMatrixElement.load(path)
    import json

    rec = json.loads(torch.load(path, weights_only=True)["provenance"])  # forward.provenance
    assert rec["process"] == sur.process_name and rec["seed"] == sur.seed
    ev = fit.val.events[:50]
    a, sa = sur.predict(ev)
    b, sb = back.predict(ev)
    assert torch.equal(a, b) and torch.equal(sa, sb)
    assert back.groups == sur.groups and back.params == sur.params
    with pytest.raises(FileExistsError, match="overwrite=True"):
        sur.save(path)
    sur.save(path, overwrite=True)
    bad = tmp_path / "bad.pt"
    torch.save({"x": 1}, bad)
    with pytest.raises(ValueError, match="not an invsim surrogate"):
        SurrogateMatrixElement.load(bad)
    with pytest.raises(FileNotFoundError):
        SurrogateMatrixElement.load(tmp_path / "missing.pt")


def test_mse_and_ensemble_train_and_predict(diphoton, diphoton_data):
    for kind in ("mse", "ensemble"):
        cfg = SurrogateConfig(kind=kind, hidden=16, layers=2, epochs=2, members=2)
        fit = train_surrogate(diphoton, diphoton_data[:1000], cfg, generator=seeded(13))
        me, sig = fit.surrogate.predict(diphoton_data.events[:10])
        assert me.shape == (10, 10) and bool((sig > 0).all())
        assert len(fit.history["loss"]) == 2 * (2 if kind == "ensemble" else 1)


def test_training_is_reproducible(diphoton, diphoton_data):
    cfg = SurrogateConfig(kind="bayesian", hidden=16, layers=2, epochs=1, samples=2)
    a = train_surrogate(diphoton, diphoton_data[:500], cfg, generator=seeded(14))
    b = train_surrogate(diphoton, diphoton_data[:500], cfg, generator=seeded(14))
    ev = diphoton_data.events[:20]
    assert torch.equal(a.surrogate(ev, None), b.surrogate(ev, None))


# -- diagnostics ----------------------------------------------------------------------------
def test_precision_summary_and_plot(tmp_path):
    true = torch.tensor([1.0, 2.0, 4.0, 8.0], dtype=torch.float64)
    pred = true * torch.tensor([1.0005, 0.995, 1.05, 1.5], dtype=torch.float64)
    sigma = true * 0.01
    s, delta, pull = precision_summary(pred, sigma, true)
    assert s.frac_below == pytest.approx((0.25, 0.5, 0.75))
    assert s.tail == pytest.approx(0.25)
    assert torch.allclose(pull, torch.tensor([0.05, -0.5, 5.0, 50.0], dtype=torch.float64))
    path = plot_precision(tmp_path / "p.png", {"a": delta}, {"a": pull}, sizes=[10],
                          summaries=[s], title="toy")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(FileExistsError):
        plot_precision(path, {"a": delta}, {"a": pull})
    with pytest.raises(ValueError, match="sigma"):
        precision_summary(pred, -sigma, true)
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        precision_summary(pred, sigma[:3], true)
    with pytest.raises(ValueError, match="NaN"):
        precision_summary(pred * float("nan"), sigma, true)


# -- bad input ------------------------------------------------------------------------------
def test_bad_input_errors(diphoton, diphoton_data):
    with pytest.raises(ValueError, match="n: expected an integer >= 1"):
        generate_training_data(diphoton, 0)
    with pytest.raises(ValueError, match="oversample"):
        generate_training_data(diphoton, 10, oversample=(1.5, 0.9))
    with pytest.raises(ValueError, match="channel"):
        generate_training_data(diphoton, 10, channel=3)
    with pytest.raises(ValueError, match="kind"):
        SurrogateConfig(kind="gp")
    with pytest.raises(ValueError, match="epochs"):
        SurrogateConfig(epochs=-1)
    with pytest.raises(ValueError, match="lr"):
        SurrogateConfig(lr=float("nan"))
    with pytest.raises(TypeError, match="dtype"):
        SurrogateConfig(dtype=torch.int64)
    with pytest.raises(TypeError, match="data"):
        train_surrogate(diphoton, diphoton_data.me2)
    with pytest.raises(ValueError, match="at least 10"):
        train_surrogate(diphoton, diphoton_data[:5])
    with pytest.raises(ValueError, match=r"momenta \(n, 2, 4\)"):
        train_surrogate(get_process("ttbar"), diphoton_data)
    with pytest.raises(TypeError, match="HardEvents"):
        invariant_features(diphoton_data.events.momenta)
    with pytest.raises(ValueError, match="permutation"):
        invariant_features(diphoton_data.events, [0, 0, 1])
    with pytest.raises(ValueError, match="kind"):
        log_reference(diphoton_data.events, "soft")
    with pytest.raises(ValueError, match="me2"):
        channel_groups(torch.ones(3))
