"""Tests of the t t̄ process: matrix elements, decays, narrow-width normalisation.

References: the closed-form partonic cross sections σ̂(ŝ) of g g → t t̄ and q q̄ → t t̄
(Nason–Dawson–Ellis normalisation, e.g. Ellis–Stirling–Webber eq. 10.13), a brute-force
Dirac-trace evaluation of the q q̄ → t t̄ diagram, scipy quadrature of the
Breit–Wigner integrals, an independent flat phase-space integration of the 2 → 6
weight and autograd (gradcheck). Monte Carlo checks use fixed seeds and compare in
units of the estimator's own error (< 5σ: each fails with probability < 6e-7 for a
correct implementation).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate

from forward import kinematics as kin
from forward.events import HardEvents
from forward.processes import get_process
from forward.processes.top_decays import (
    W_MASS,
    TopPairDecayMap,
    bw_integral,
    decay_mode_info,
    top_decay_density,
    top_pair_decay_factor,
    top_width,
    w_line_integral,
    w_width,
)
from forward.processes.ttbar import (
    FLAVOUR_CHANNELS,
    TTbar,
    me2_gg_ttbar,
    me2_qqbar_ttbar,
    running_alpha_s,
)

DT = torch.float64
MT = 172.5


def _sigma_hat_gg(s, m, als):
    rho = 4 * m * m / s
    b = math.sqrt(1 - rho)
    return (math.pi * als**2 / (3 * s)) * (
        (1 + rho + rho**2 / 16) * math.log((1 + b) / (1 - b)) - b * (7 / 4 + 31 * rho / 16)
    )


def _sigma_hat_qq(s, m, als):
    rho = 4 * m * m / s
    return 8 * math.pi * als**2 / (27 * s) * math.sqrt(1 - rho) * (1 + rho / 2)


def _angle_integral(me2, s, m, als, n=64):
    """σ̂ = ∫ |M|²/(2ŝ) dΦ₂ with dΦ₂ = β/(16π) dcosθ, by Gauss–Legendre."""
    c, w = np.polynomial.legendre.leggauss(n)
    c = torch.tensor(c, dtype=DT)
    beta = math.sqrt(1 - 4 * m * m / s)
    t = m * m - 0.5 * s * (1 - beta * c)
    u = m * m - 0.5 * s * (1 + beta * c)
    vals = me2(torch.full_like(c, s), t, u, m * m, als)
    return float((vals * torch.tensor(w, dtype=DT)).sum()) * beta / (16 * math.pi) / (2 * s)


@pytest.mark.parametrize("sqrt_shat", [346.0, 400.0, 700.0, 2000.0])
def test_partonic_cross_sections_closed_form(sqrt_shat):
    s, als = sqrt_shat**2, 0.108
    gg = _angle_integral(me2_gg_ttbar, s, MT, als)
    qq = _angle_integral(me2_qqbar_ttbar, s, MT, als)
    assert gg == pytest.approx(_sigma_hat_gg(s, MT, als), rel=1e-10)
    assert qq == pytest.approx(_sigma_hat_qq(s, MT, als), rel=1e-10)


def _gamma_matrices():
    i2, z2 = np.eye(2), np.zeros((2, 2))
    sig = [np.array([[0, 1], [1, 0]]), np.array([[0, -1j], [1j, 0]]), np.array([[1, 0], [0, -1]])]
    g0 = np.block([[i2, z2], [z2, -i2]]).astype(complex)
    gs = [np.block([[z2, s_], [-s_, z2]]).astype(complex) for s_ in sig]
    return [g0, *gs]


def _slash(g, p):
    return g[0] * p[0] - g[1] * p[1] - g[2] * p[2] - g[3] * p[3]


def test_qqbar_matches_dirac_traces():
    """Σ|M|² = g⁴ (C_F N_c/2... ) from Tr[p̸_b γ^μ p̸_a γ^ν] Tr[(p̸₁+m)γ_μ(p̸₂-m)γ_ν]/ŝ²."""
    g = _gamma_matrices()
    metric = np.diag([1.0, -1.0, -1.0, -1.0])
    rng = np.random.default_rng(5)
    als = 0.1
    for _ in range(5):
        rs = 360.0 + 1500 * rng.random()
        c, phi = 2 * rng.random() - 1, 2 * math.pi * rng.random()
        e = rs / 2
        pa = np.array([e, 0, 0, e])
        pb = np.array([e, 0, 0, -e])
        p = math.sqrt(e * e - MT * MT)
        st = math.sqrt(1 - c * c)
        k = p * np.array([st * math.cos(phi), st * math.sin(phi), c])
        p1 = np.concatenate([[e], k])
        p2 = np.concatenate([[e], -k])
        one = np.eye(4)
        lep = np.array([[np.trace(_slash(g, pb) @ g[m_] @ _slash(g, pa) @ g[n_])
                         for n_ in range(4)] for m_ in range(4)])
        had = np.array([[np.trace((_slash(g, p1) + MT * one) @ g[m_]
                                  @ (_slash(g, p2) - MT * one) @ g[n_])
                         for n_ in range(4)] for m_ in range(4)])
        contracted = np.einsum("mn,ma,nb,ab->", lep, metric, metric, had).real
        # colour: Σ Tr(T^a T^b) Tr(T^a T^b) = 2; average 1/4 spins, 1/9 colours
        ref = (4 * math.pi * als) ** 2 * 2 * contracted / rs**4 / 36
        s_ = rs * rs
        t = MT * MT - 2 * (pa @ metric @ p1)
        u = MT * MT - 2 * (pa @ metric @ p2)
        ours = me2_qqbar_ttbar(torch.tensor(s_, dtype=DT), torch.tensor(t, dtype=DT),
                               torch.tensor(u, dtype=DT), MT * MT, als)
        assert float(ours) == pytest.approx(ref, rel=1e-10)


def test_tu_symmetry_and_channels(generator):
    proc = TTbar()
    m = proc.phase_space()[0]
    ev, _ = m.forward(torch.rand(500, m.dim, generator=generator, dtype=DT))
    params = proc.params()
    me = proc.matrix_element(ev, params)
    assert me.shape == (500, len(FLAVOUR_CHANNELS)) and bool((me > 0).all())
    # swapping t and t̄ (t̂ ↔ û) leaves both channels unchanged
    swapped = HardEvents(ev.momenta.flip(1), ev.x1, ev.x2, ev.sqrt_s)
    assert torch.allclose(proc.matrix_element(swapped, params), me, rtol=1e-11)
    # direct formula with the event's own Mandelstam variables
    pa = ev.incoming[:, 0]
    t = kin.mass2(pa - ev.momenta[:, 0])
    u = kin.mass2(pa - ev.momenta[:, 1])
    als = running_alpha_s(params["alpha_s"], torch.full_like(t, MT**2), 1)
    assert torch.allclose(me[:, 0], me2_gg_ttbar(ev.shat, t, u, MT**2, als), rtol=1e-9)
    assert torch.allclose(me[:, 1], me2_qqbar_ttbar(ev.shat, t, u, MT**2, als), rtol=1e-9)
    only_gg = TTbar(initial_states="gg").matrix_element(ev, params)
    only_qq = TTbar(initial_states="qqbar").matrix_element(ev, params)
    assert torch.equal(only_gg + only_qq, me)
    assert bool((only_gg[:, 1:] == 0).all()) and bool((only_qq[:, 0] == 0).all())


def test_alpha_s_at_mt_and_batched():
    """One-loop α_s(m_t) with Pythia's Λ₅ = M_Z exp(-6π/(23 α)) and n_f = 6 above 171 GeV."""
    a = 0.118
    lam5 = 91.188 * math.exp(-6 * math.pi / (23 * a))
    lam6 = lam5 * (lam5 / 171.0) ** (2 / 21)
    ref = 12 * math.pi / (21 * math.log(MT**2 / lam6**2))
    mu2 = torch.tensor([MT**2, 200.0**2, 120.0**2], dtype=DT)
    got = running_alpha_s(torch.tensor(a, dtype=DT), mu2, 1)
    assert float(got[0]) == pytest.approx(ref, rel=1e-12)
    vals = torch.tensor([0.11, 0.118, 0.13], dtype=DT)
    batched = running_alpha_s(vals, mu2, 1)
    single = torch.stack([running_alpha_s(v, mu2[i:i + 1], 1)[0] for i, v in enumerate(vals)])
    assert torch.allclose(batched, single, rtol=1e-12)
    assert torch.allclose(running_alpha_s(vals, mu2, 2),
                          torch.stack([running_alpha_s(v, mu2[i:i + 1], 2)[0]
                                       for i, v in enumerate(vals)]), rtol=1e-12)


def test_scales():
    proc = TTbar(scale="mt_transverse")
    m = proc.phase_space()[0]
    ev, _ = m.forward(torch.rand(50, m.dim, generator=torch.Generator().manual_seed(3),
                                 dtype=DT))
    mu_f, mu_r = proc.scales(ev, proc.params())
    assert torch.allclose(mu_f, MT**2 + kin.pt(ev.momenta[:, 0]) ** 2, rtol=1e-9)
    assert torch.equal(mu_f, mu_r)
    mu_f, _ = TTbar().scales(ev, proc.params({"mt": 170.0}))
    assert torch.allclose(mu_f, torch.full_like(mu_f, 170.0**2))


@pytest.mark.parametrize("decays", [None, "dilepton"])
def test_gradcheck_parameters(decays):
    proc = TTbar(decays=decays)
    m = proc.phase_space()[0]
    ev, _ = m.forward(torch.rand(20, m.dim, generator=torch.Generator().manual_seed(4),
                                 dtype=DT))
    if decays is not None:
        ev = ev[proc.matrix_element(ev, proc.params()).sum(-1) > 0][:6]
        assert len(ev) >= 3

    def f(mt, als):
        return proc.matrix_element(ev, proc.params({"mt": mt, "alpha_s": als})).sum(-1)

    mt = torch.tensor(172.3, dtype=DT, requires_grad=True)
    als = torch.tensor(0.117, dtype=DT, requires_grad=True)
    assert torch.autograd.gradcheck(f, (mt, als))
    # per-event parameters, shape (n,)
    n = len(ev)
    mts = torch.linspace(172.0, 173.0, n, dtype=DT).requires_grad_(True)
    alss = torch.linspace(0.115, 0.12, n, dtype=DT).requires_grad_(True)
    assert torch.autograd.gradcheck(f, (mts, alss))


# -- decays ---------------------------------------------------------------------------

def test_widths_and_branching_ratios():
    """Γ(W → eν) in the massless limit α_EM(m_W²) m_W / (12 sin²θ_W) (electron mass: 1e-10
    relative), and the mode BRs as products of W and top BRs; the numbers themselves are
    compared with pythia8mc in test_ttbar_decays_pythia.py."""
    from forward.processes.electroweak import SIN2_THETA_W, alpha_em, top_partial_widths

    m = torch.tensor(W_MASS, dtype=DT)
    br_e = float(alpha_em(m * m)) * W_MASS / (12 * SIN2_THETA_W) / w_width()
    t = top_partial_widths(MT)
    br_t = float(t[5] / sum(t.values()))
    assert float(top_width(MT)) == pytest.approx(float(sum(t.values())), rel=1e-15)
    assert decay_mode_info("dilepton").branching_ratio == pytest.approx(
        (br_t * br_e) ** 2, rel=1e-9)
    br_had = 1 - 3 * br_e  # τ phase space: 7e-4 of one lepton channel, below
    assert decay_mode_info("semileptonic", "mu").branching_ratio == pytest.approx(
        br_t**2 * br_e * br_had, rel=3e-4)
    assert decay_mode_info("hadronic").branching_ratio == pytest.approx(
        (br_t * br_had) ** 2, rel=3e-4)
    assert decay_mode_info("dilepton", 13).final_state == (5, -13, 14, -5, 13, -14)


def test_breit_wigner_integrals_against_quadrature():
    gt = float(top_width(MT))
    lo, hi = 160.0**2, 180.0**2
    ref = integrate.quad(lambda s: 1 / ((s - MT**2) ** 2 + (MT * gt) ** 2), lo, hi,
                         points=[MT**2], limit=200, epsabs=0, epsrel=1e-13)[0]
    assert float(bw_integral(torch.tensor(lo, dtype=DT), hi, MT, gt)) == pytest.approx(
        ref, rel=1e-9)
    gw = w_width()
    for m in (150.0, 172.5, 195.0):
        def f(q2, m=m):
            return (m * m - q2) ** 2 * (m * m + 2 * q2) / ((q2 - W_MASS**2) ** 2
                                                         + (W_MASS * gw) ** 2)
        ref = integrate.quad(f, 50.0**2, 110.0**2, points=[W_MASS**2], limit=200, epsabs=0,
                             epsrel=1e-13)[0]
        got = w_line_integral(torch.tensor(m * m, dtype=DT), 50.0**2, 110.0**2)
        assert float(got) == pytest.approx(ref, rel=1e-9)


def _flat_three_body(m_top, n, gen, q2_lo, q2_hi):
    """Independent flat sampling of dΦ₃(t → b f f'): q² flat, angles flat. Returns
    (b, f1, f2, weight = dΦ₃/dr)."""
    r = torch.rand(n, 5, generator=gen, dtype=DT)
    p_t = torch.zeros(n, 4, dtype=DT)
    p_t[:, 0] = m_top
    q2 = q2_lo + (q2_hi - q2_lo) * r[:, 0]
    q = q2.sqrt()
    # W in the top rest frame
    pw = (m_top**2 - q2) / (2 * m_top)
    ct, ph = 2 * r[:, 1] - 1, 2 * math.pi * r[:, 2]
    st = (1 - ct**2).sqrt()
    nhat = torch.stack([st * ph.cos(), st * ph.sin(), ct], -1)
    w = torch.cat([(pw**2 + q2).sqrt().unsqueeze(-1), pw.unsqueeze(-1) * nhat], -1)
    b = torch.cat([pw.unsqueeze(-1), -pw.unsqueeze(-1) * nhat], -1)
    ct2, ph2 = 2 * r[:, 3] - 1, 2 * math.pi * r[:, 4]
    st2 = (1 - ct2**2).sqrt()
    n2 = torch.stack([st2 * ph2.cos(), st2 * ph2.sin(), ct2], -1)
    f1r = torch.cat([(q / 2).unsqueeze(-1), (q / 2).unsqueeze(-1) * n2], -1)
    f2r = torch.cat([(q / 2).unsqueeze(-1), -(q / 2).unsqueeze(-1) * n2], -1)
    f1 = kin.boost_from_rest_frame(f1r, w)
    f2 = kin.boost_from_rest_frame(f2r, w)
    # dΦ₃ = dΦ₂(t; b, W) dq²/2π dΦ₂(W; f f'), each dΦ₂ = β̄/(8π) dr dr
    weight = (1 - q2 / m_top**2) / (8 * math.pi) * (q2_hi - q2_lo) / (2 * math.pi) / (8 * math.pi)
    return b, f1, f2, weight


@pytest.mark.parametrize("m_top", [160.0, 172.5, 185.0])
def test_decay_density_normalised(m_top):
    gw = w_width()
    lo2, hi2 = (W_MASS - 15 * gw) ** 2, (W_MASS + 15 * gw) ** 2
    b, f1, f2, wt = _flat_three_body(m_top, 400_000, torch.Generator().manual_seed(11),
                                     lo2 - 200.0, hi2 + 200.0)
    x = top_decay_density(b, f1, f2, bw_cut=15.0) * wt
    mean, err = float(x.mean()), float(x.std() / math.sqrt(len(x)))
    assert abs(mean - 1.0) < 5 * err and err < 0.01


def test_top_pair_map_roundtrip_and_conservation(generator):
    proc = TTbar(decays="dilepton")
    m = proc.phase_space()[0]
    ev, lj = m.forward(torch.rand(400, m.dim, generator=generator, dtype=DT))
    total = ev.momenta.sum(1)
    pin = ev.incoming.sum(1)
    assert torch.allclose(total, pin, atol=1e-8 * float(pin[:, 0].max()))
    for i in range(6):
        assert bool((kin.mass2(ev.momenta[:, i]).abs() < 1e-6 * ev.momenta[:, i, 0] ** 2).all())
    r_back, lj_inv = m.inverse(ev)
    ev2, lj2 = m.forward(r_back.clamp(0, 1))
    assert torch.allclose(ev2.momenta, ev.momenta, atol=1e-7)
    assert torch.allclose(lj_inv, -lj, atol=1e-8)


def _arctan_sample(u, m, g, lo2, hi2):
    """p² on [lo2, hi2] with density ∝ Breit–Wigner (written here independently of the
    package): p² = m² + mΓ tan θ, θ uniform. Returns (p², dp²/du)."""
    a_lo, a_hi = math.atan((lo2 - m * m) / (m * g)), math.atan((hi2 - m * m) / (m * g))
    theta = a_lo + (a_hi - a_lo) * u
    s = m * m + m * g * torch.tan(theta)
    return s, (a_hi - a_lo) * ((s - m * m) ** 2 + (m * g) ** 2) / (m * g)


def _independent_six_body(shat, mt, n, gen, bw_cut=15.0):
    """dΦ₆ at fixed ŝ (partonic frame) sampled independently of TopPairDecayMap: top
    masses² on a window 2 widths wider than the weight's, W masses² likewise, flat
    angles. Returns (momenta (n, 6, 4), weight = dΦ₆/dr)."""
    gt, gw = float(top_width(mt)), w_width()
    lo2, hi2 = (mt - (bw_cut + 2) * gt) ** 2, min((mt + (bw_cut + 2) * gt) ** 2, shat / 4)
    r = torch.rand(n, 4, generator=gen, dtype=DT)
    m1s, j1 = _arctan_sample(r[:, 0], mt, gt, lo2, hi2)
    m2s, j2 = _arctan_sample(r[:, 1], mt, gt, lo2, hi2)
    lam = (shat - m1s - m2s) ** 2 - 4 * m1s * m2s
    pstar = lam.sqrt() / (2 * math.sqrt(shat))
    ct, ph = 2 * r[:, 2] - 1, 2 * math.pi * r[:, 3]
    st = (1 - ct**2).sqrt()
    nhat = torch.stack([st * ph.cos(), st * ph.sin(), ct], -1)
    t = torch.cat([(pstar**2 + m1s).sqrt().unsqueeze(-1), pstar.unsqueeze(-1) * nhat], -1)
    tb = torch.cat([(pstar**2 + m2s).sqrt().unsqueeze(-1), -pstar.unsqueeze(-1) * nhat], -1)
    q_lo, q_hi = (W_MASS - (bw_cut + 2) * gw) ** 2, (W_MASS + (bw_cut + 2) * gw) ** 2
    # dΦ₆ = dΦ₂(ŝ; t, t̄) dm₁²/2π dm₂²/2π dΦ₃ dΦ₃, dΦ₂ = β̄/(8π) per unit square
    out, weight = [], lam.sqrt() / shat / (8 * math.pi) * j1 * j2 / (2 * math.pi) ** 2
    for top, m2 in ((t, m1s), (tb, m2s)):
        # decay each top at rest with its own mass, then boost
        m_top = m2.sqrt()
        r5 = torch.rand(n, 5, generator=gen, dtype=DT)
        q2, jq = _arctan_sample(r5[:, 0], W_MASS, gw, q_lo, q_hi)
        pw = (m2 - q2) / (2 * m_top)
        c1, p1 = 2 * r5[:, 1] - 1, 2 * math.pi * r5[:, 2]
        s1 = (1 - c1**2).sqrt()
        n1 = torch.stack([s1 * p1.cos(), s1 * p1.sin(), c1], -1)
        w = torch.cat([(pw**2 + q2).sqrt().unsqueeze(-1), pw.unsqueeze(-1) * n1], -1)
        b = torch.cat([pw.unsqueeze(-1), -pw.unsqueeze(-1) * n1], -1)
        c2, p2 = 2 * r5[:, 3] - 1, 2 * math.pi * r5[:, 4]
        s2 = (1 - c2**2).sqrt()
        n2 = torch.stack([s2 * p2.cos(), s2 * p2.sin(), c2], -1)
        half = (q2.sqrt() / 2).unsqueeze(-1)
        f1 = kin.boost_from_rest_frame(torch.cat([half, half * n2], -1), w)
        f2 = kin.boost_from_rest_frame(torch.cat([half, -half * n2], -1), w)
        out += [kin.boost_from_rest_frame(x, top) for x in (b, f1, f2)]
        weight = weight * (1 - q2 / m2) / (8 * math.pi) * jq / (2 * math.pi) / (8 * math.pi)
    return torch.stack(out, 1), weight


@pytest.mark.parametrize("sqrt_shat", [360.0, 500.0, 1200.0])
def test_narrow_width_normalisation_partonic(sqrt_shat):
    """∫ dΦ₆ |M|²₆ = BR × ∫ dΦ₂ |M|²₂ at fixed ŝ, with an independent dΦ₆ sampling."""
    shat = sqrt_shat**2
    n = 400_000
    mom, wt = _independent_six_body(shat, MT, n, torch.Generator().manual_seed(21))
    x = torch.full((n,), sqrt_shat / 13000.0, dtype=DT)
    ev = HardEvents(mom, x, x, 13000.0)  # partonic frame = lab frame for x1 = x2
    proc = TTbar(decays="semileptonic", initial_states="gg")
    params = proc.params()
    vals = proc.matrix_element(ev, params)[:, 0] * wt
    mean, err = float(vals.mean()), float(vals.std() / math.sqrt(n))
    als = float(running_alpha_s(params["alpha_s"], torch.tensor([MT**2], dtype=DT), 1)[0])
    # ∫ dΦ₂ |M|² = 2ŝ σ̂
    br = decay_mode_info("semileptonic").branching_ratio
    ref = 2 * shat * _sigma_hat_gg(shat, MT, als) * br
    assert abs(mean - ref) < 5 * err and err < 0.005 * ref


def test_line_shapes(generator):
    """Weighted top- and W-mass histograms against the Breit–Wigner line shapes.

    At fixed ŝ the top mass has the density ρ_t(p²) (normalised Breit–Wigner on its
    window) and, at top mass M, the W mass² has ∝ BW_W(q²)(M² - q²)²(M² + 2q²); the
    expected bin contents are computed from those closed forms (for the W,
    conditionally on each event's M). 12 bins each, 5σ per bin: false-failure
    probability < 2·10⁻⁵.
    """
    proc = TTbar(decays="dilepton")
    n, rs = 200_000, 600.0
    P = torch.tensor([[rs, 0.0, 0.0, 0.0]], dtype=DT).expand(n, 4)
    mom, log_w = TopPairDecayMap(MT).forward(P, torch.rand(n, 14, generator=generator,
                                                           dtype=DT))
    x = torch.full((n,), rs / 13000.0, dtype=DT)
    ev = HardEvents(mom, x, x, 13000.0)
    w = top_pair_decay_factor(ev, torch.tensor(MT, dtype=DT), "dilepton", ev.shat) * log_w.exp()
    obs = proc.observables(ev)
    gt, gw = float(top_width(MT)), w_width()
    # ∫ dΦ₆ F = BR × Φ₂(m_t, m_t) = BR β₀/(8π)
    total = decay_mode_info("dilepton").branching_ratio * math.sqrt(1 - 4 * MT**2 / rs**2) \
        / (8 * math.pi)
    window = bw_integral((MT - 15 * gt) ** 2, (MT + 15 * gt) ** 2, MT, gt)
    edges_t = torch.linspace(MT - 3 * gt, MT + 3 * gt, 13, dtype=DT)
    m_top2 = kin.mass2(mom[:, 0:3].sum(1))
    w_lo2, w_hi2 = (W_MASS - 15 * gw) ** 2, (W_MASS + 15 * gw) ** 2
    edges_w = torch.linspace(W_MASS - 3 * gw, W_MASS + 3 * gw, 13, dtype=DT)
    for i in range(12):
        inside = (obs["m_t"] >= edges_t[i]) & (obs["m_t"] < edges_t[i + 1])
        prob = bw_integral(edges_t[i] ** 2, edges_t[i + 1] ** 2, MT, gt) / window
        d = w * inside - total * prob / 1.0
        assert abs(float(d.mean())) < 5 * float(d.std()) / math.sqrt(n)
        inside = (obs["m_w"] >= edges_w[i]) & (obs["m_w"] < edges_w[i + 1])
        prob = w_line_integral(m_top2, edges_w[i] ** 2, edges_w[i + 1] ** 2) / w_line_integral(
            m_top2, w_lo2, w_hi2)
        d = w * (inside.to(DT) - prob)
        assert abs(float(d.mean())) < 5 * float(d.std()) / math.sqrt(n)
    h = torch.histogram(obs["m_t"], bins=edges_t, weight=w).hist
    assert int(h.argmax()) in (5, 6)
    h = torch.histogram(obs["m_w"], bins=edges_w, weight=w).hist
    assert int(h.argmax()) in (5, 6)


def test_decay_factor_zero_outside_windows():
    proc = TTbar(decays="dilepton")
    m = proc.phase_space()[0]
    ev, _ = m.forward(torch.rand(50, m.dim, generator=torch.Generator().manual_seed(9),
                                 dtype=DT))
    f = top_pair_decay_factor(ev, torch.tensor(MT, dtype=DT), "dilepton", ev.shat)
    assert bool((f > 0).all())
    # at m_t = 150 GeV the window ends at 150 + 15 Γ_t(150) < 165 GeV
    assert 150 + 15 * float(top_width(150.0)) < 165.0
    obs = proc.observables(ev)
    far = (obs["m_t"] > 165) | (kin.mass(ev.momenta[:, 3:6].sum(1)) > 165)
    assert int(far.sum()) > 10
    f_far = top_pair_decay_factor(ev, torch.tensor(150.0, dtype=DT), "dilepton", ev.shat)
    assert bool((f_far[far] == 0).all())


def test_observables_and_final_state():
    proc = get_process("ttbar", decays="semileptonic", leptons="mu")
    assert proc.final_state == (5, -13, 14, -5, 1, -2)
    m = proc.phase_space({"mt": 175.0})[0]
    ev, _ = m.forward(torch.rand(10, m.dim, generator=torch.Generator().manual_seed(1),
                                 dtype=DT))
    obs = proc.observables(ev)
    for k in ("m_tt", "pt_t", "y_t", "cos_theta_star", "m_t", "m_w", "pt_b", "pt_f1",
              "eta_f1"):
        assert obs[k].shape == (10,) and bool(torch.isfinite(obs[k]).all())
    assert torch.allclose(obs["m_tt"] ** 2, ev.shat, rtol=1e-9)
    assert bool((obs["cos_theta_star"].abs() <= 1).all())


def test_bad_input():
    proc = TTbar()
    with pytest.raises(ValueError, match="unknown parameter"):
        proc.params({"mtop": 170.0})
    with pytest.raises(ValueError, match="mt"):
        proc.params({"mt": 120.0})
    with pytest.raises(ValueError, match="alpha_s"):
        proc.params({"alpha_s": 0.2})
    with pytest.raises(ValueError, match="decays"):
        TTbar(decays="tau")
    with pytest.raises(ValueError, match="scale"):
        TTbar(scale="ht")
    with pytest.raises(ValueError, match="alpha_s_order"):
        TTbar(alpha_s_order=3)
    with pytest.raises(ValueError, match="sqrt_s"):
        TTbar(sqrt_s=-1.0)
    with pytest.raises(ValueError, match="bw_cut"):
        TTbar(decays="dilepton", bw_cut=60.0)
    with pytest.raises(ValueError, match="unknown setting"):
        get_process("ttbar", top_mass=170.0)
    with pytest.raises(TypeError, match="events"):
        proc.matrix_element("not events", proc.params())
    m = TTbar(decays="dilepton").phase_space()[0]
    ev, _ = m.forward(torch.rand(3, m.dim, dtype=DT))
    with pytest.raises(ValueError, match=r"\(n, 2, 4\)"):
        proc.matrix_element(ev, proc.params())


@pytest.mark.parametrize("mode", ["dilepton"])
def test_cross_section_with_decays_is_sigma_times_br(mode):
    """σ(p p → t t̄ → 6 partons) = σ(t t̄) × BR, with both decay channels (the aligned
    TopPairDecayMap and the generic DecayChain); 5σ combined: false-failure rate < 2e-6."""
    from forward.xsec import cross_section

    onshell = cross_section(TTbar(), 200_000, seed=101)
    br = decay_mode_info(mode).branching_ratio
    proc = TTbar(decays=mode)
    for channel, n in ((0, 150_000), (1, 100_000)):
        dec = cross_section(proc, n, seed=202 + channel, channel=channel)
        combined = math.hypot(dec.error / br, onshell.error)
        assert abs(dec.value / br - onshell.value) < 5 * combined
        assert combined < 0.008 * onshell.value  # the check resolves ~4% deviations
