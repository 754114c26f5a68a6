"""Tests of forward.phasespace: samplings, two-body, hadronic maps, RAMBO, decay chains.

Monte Carlo checks use fixed seeds and compare in units of the estimator's own error
(|x - ref| < 5σ): for a correct implementation each fails with probability < 6e-7.
"""

from __future__ import annotations

import math

import pytest
import torch
from scipy import integrate

from forward import kinematics as kin
from forward.events import HardEvents
from forward.phasespace import (
    BreitWignerSampling,
    DecayChain,
    FlatSampling,
    HadronicMap,
    PowerLawSampling,
    Rambo,
    Resonance,
    SChannelMap,
    TwoBodyDecay,
    TwoToTwoMap,
    top_decay_tree,
    ttbar_decay_tree,
)

DT = torch.float64
SQRT_S = 13000.0


def _rand(gen, n, d):
    return torch.rand(n, d, generator=gen, dtype=DT)


# -- invariant-mass samplings ---------------------------------------------------------

SAMPLINGS = [
    FlatSampling(),
    BreitWignerSampling(91.1876, 2.4952),
    PowerLawSampling(1.0),
    PowerLawSampling(2.0),
    PowerLawSampling(0.5),
]


@pytest.mark.parametrize("sampling", SAMPLINGS, ids=repr)
def test_sampling_roundtrip_and_jacobian(sampling, generator):
    n = 200
    r = torch.rand(n, generator=generator, dtype=DT).requires_grad_(True)
    low = 60.0**2 + 100 * torch.rand(n, generator=generator, dtype=DT)  # batched bounds
    high = 120.0**2 + 1000 * torch.rand(n, generator=generator, dtype=DT)
    s, log_jac = sampling.forward(r, low, high)
    assert bool(((s >= low) & (s <= high)).all())
    (ds_dr,) = torch.autograd.grad(s.sum(), r)
    assert torch.allclose(log_jac, torch.log(ds_dr), atol=1e-10)
    r_back, log_jac_inv = sampling.inverse(s.detach(), low, high)
    assert torch.allclose(r_back, r.detach(), atol=1e-12)
    assert torch.allclose(log_jac_inv, -log_jac.detach(), atol=1e-10)
    ends, _ = sampling.forward(torch.tensor([0.0, 1.0], dtype=DT), low[:2], high[:2])
    assert torch.allclose(ends, torch.stack([low[0], high[1]]), rtol=1e-12)


def test_sampling_bad_bounds():
    r = torch.rand(4, dtype=DT)
    with pytest.raises(ValueError, match="high: expected high > low"):
        FlatSampling().forward(r, 10.0, 5.0)
    with pytest.raises(ValueError, match="low: PowerLawSampling"):
        PowerLawSampling(2.0).forward(r, 0.0, 5.0)
    with pytest.raises(ValueError, match="width"):
        BreitWignerSampling(91.0, -1.0)
    with pytest.raises(TypeError, match="r: expected a floating-point"):
        FlatSampling().forward(torch.ones(3, dtype=torch.int64), 0.0, 1.0)


# -- two-body and hadronic 2 -> 2 maps --------------------------------------------------

MAPS_2TO2 = {
    "dy-z-bw": lambda: SChannelMap(
        SQRT_S, BreitWignerSampling(91.1876, 2.4952), m_min=60, m_max=120
    ),
    "dy-gamma-powerlaw": lambda: SChannelMap(SQRT_S, PowerLawSampling(2.0), m_min=60, m_max=2500),
    "zprime-bw": lambda: SChannelMap(
        SQRT_S, BreitWignerSampling(2000.0, 63.094), masses=(0.105658, 0.105658), m_min=1500,
        m_max=2500,
    ),
    "ttbar": lambda: TwoToTwoMap(SQRT_S, (172.5, 172.5)),
    "unequal-flat": lambda: TwoToTwoMap(SQRT_S, (10.0, 80.4), s_sampling=FlatSampling(), m_max=400),
}


def _beta_bar(shat, m1, m2):
    lam = (shat - (m1 + m2) ** 2) * (shat - (m1 - m2) ** 2)
    return torch.sqrt(lam) / shat


@pytest.mark.parametrize("name", list(MAPS_2TO2))
def test_2to2_conservation_masses_roundtrip(name, generator):
    m = MAPS_2TO2[name]()
    assert m.dim == 4
    r = _rand(generator, 2000, 4)
    ev, log_jac = m.forward(r)
    assert ev.momenta.shape == (2000, 2, 4) and log_jac.shape == (2000,)
    assert bool(torch.isfinite(log_jac).all())
    total = ev.momenta.sum(1)
    incoming = ev.incoming.sum(1)
    assert torch.allclose(total, incoming, rtol=1e-11, atol=1e-9 * SQRT_S)
    masses = torch.tensor(m.masses, dtype=DT).expand(2000, 2)
    assert torch.allclose(kin.mass2(ev.momenta), masses**2, atol=1e-8 * SQRT_S**2 / 1e3)
    shat = ev.shat
    assert bool(((shat >= m.s_min * (1 - 1e-12)) & (shat <= m.s_max * (1 + 1e-12))).all())
    assert bool(((ev.x1 <= 1) & (ev.x2 <= 1)).all())
    r_back, log_jac_inv = m.inverse(ev)
    assert torch.allclose(r_back, r, atol=1e-10, rtol=0)
    assert torch.allclose(log_jac_inv, -log_jac, atol=1e-10, rtol=0)


def _independent_coordinates(events: HardEvents) -> torch.Tensor:
    """(x1, x2, cos θ, φ) of particle 1 in the partonic rest frame, via an explicit z boost."""
    p1 = events.momenta[:, 0]
    P = events.momenta.sum(1)
    beta = P[:, 3] / P[:, 0]
    gamma = 1 / torch.sqrt(1 - beta**2)
    pz_star = gamma * (p1[:, 3] - beta * p1[:, 0])
    p_star = torch.sqrt(pz_star**2 + p1[:, 1] ** 2 + p1[:, 2] ** 2)
    phi = torch.atan2(p1[:, 2], p1[:, 1])
    return torch.stack([events.x1, events.x2, pz_star / p_star, phi], -1)


@pytest.mark.parametrize("name", list(MAPS_2TO2))
def test_2to2_log_jacobian_against_autograd(name, generator):
    """e^log_jac = |∂(x1, x2, cos θ, φ)/∂r| · β̄/(32π²), the density of dx1 dx2 dΦ_2."""
    m = MAPS_2TO2[name]()
    r = 0.02 + 0.96 * _rand(generator, 20, 4)
    _, log_jac = m.forward(r)
    for i in range(r.shape[0]):
        def f(ri):
            ev, _ = m.forward(ri.unsqueeze(0))
            return _independent_coordinates(ev)[0]

        jac = torch.autograd.functional.jacobian(f, r[i])
        ev, _ = m.forward(r[i : i + 1])
        log_dphi2 = torch.log(_beta_bar(ev.shat, *m.masses) / (32 * math.pi**2))
        ref = torch.log(torch.linalg.det(jac).abs()) + log_dphi2[0]
        assert math.isclose(float(log_jac[i]), float(ref), abs_tol=1e-8)


def _volume_2to2(m: HadronicMap) -> float:
    """∫ dx1 dx2 dΦ_2 over the map's ŝ range = ∫ dτ (-ln τ) β̄(τ s)/(8π), by quadrature."""
    s = m.sqrt_s**2
    m1, m2 = m.masses

    def integrand(log_tau):
        tau = math.exp(log_tau)
        shat = tau * s
        lam = max((shat - (m1 + m2) ** 2) * (shat - (m1 - m2) ** 2), 0.0)
        return tau * (-log_tau) * math.sqrt(lam) / shat / (8 * math.pi)

    lo, hi = math.log(m.s_min / s), math.log(m.s_max / s)
    points = [math.log((m1 + m2) ** 2 / s)] if m1 + m2 > 0 and m.s_min == (m1 + m2) ** 2 else None
    val, err = integrate.quad(integrand, lo, hi, epsabs=0, epsrel=1e-10, limit=200, points=points)
    return val


@pytest.mark.parametrize("name", list(MAPS_2TO2))
def test_2to2_mc_volume(name):
    """MC of 1 over the cube = closed-form ∫ dx1 dx2 dΦ_2; |diff| < 5σ (false-failure < 6e-7)."""
    m = MAPS_2TO2[name]()
    gen = torch.Generator().manual_seed(7)
    _, log_jac = m.forward(_rand(gen, 200_000, 4))
    w = log_jac.exp()
    mean, err = float(w.mean()), float(w.std() / math.sqrt(len(w)))
    ref = _volume_2to2(m)
    assert abs(mean - ref) < 5 * err, (mean, err, ref)
    assert err < 0.05 * ref  # the check has power


def test_2to2_angles_follow_convention():
    """r2 -> cos θ of particle 1 w.r.t. +z in the pair rest frame, r3 -> φ = 2π r3."""
    m = SChannelMap(SQRT_S, FlatSampling(), m_min=80, m_max=100)
    r = torch.tensor([[0.5, 0.9, 0.75, 0.125], [0.2, 0.1, 0.1, 0.9]], dtype=DT)
    ev, _ = m.forward(r)
    coords = _independent_coordinates(ev)
    assert torch.allclose(coords[:, 2], 2 * r[:, 2] - 1, atol=1e-12)
    assert torch.allclose(torch.remainder(coords[:, 3], 2 * math.pi), 2 * math.pi * r[:, 3])


def test_2to2_faces_of_cube_are_finite():
    corners = torch.tensor(
        [[0, 0, 0, 0], [1, 1, 1, 1], [0, 1, 0, 1], [1, 0, 1, 0], [0.5, 1, 0, 0.5]], dtype=DT
    )
    for name, make in MAPS_2TO2.items():
        ev, log_jac = make().forward(corners)
        assert bool(torch.isfinite(ev.momenta).all()), name
        assert bool(torch.isfinite(log_jac).all()), name
        assert bool(torch.isfinite(ev.x1).all() & torch.isfinite(ev.x2).all()), name


def test_2to2_follows_dtype_and_device(device):
    m = TwoToTwoMap(SQRT_S, (172.5, 172.5))
    r = torch.rand(10, 4, dtype=torch.float32, device=device)
    ev, log_jac = m.forward(r)
    assert ev.momenta.dtype == torch.float32 and log_jac.dtype == torch.float32
    assert ev.momenta.device == r.device and ev.x1.device == r.device
    r_back, _ = m.inverse(ev)
    assert torch.allclose(r_back, r, atol=2e-3)


def test_2to2_differentiable_in_r():
    m = SChannelMap(SQRT_S, BreitWignerSampling(91.1876, 2.4952), m_min=60, m_max=120)
    r = torch.tensor([[0.3, 0.6, 0.2, 0.7]], dtype=DT, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: m.forward(x)[0].momenta, (r,))
    assert torch.autograd.gradcheck(lambda x: m.forward(x)[1], (r,))


def test_2to2_bad_input():
    m = SChannelMap(SQRT_S, FlatSampling(), m_min=60, m_max=120)
    with pytest.raises(ValueError, match=r"r: expected entries in \[0, 1\]"):
        m.forward(torch.tensor([[0.5, 0.5, 1.5, 0.5]], dtype=DT))
    with pytest.raises(ValueError, match=r"r: expected shape \(n, 4\)"):
        m.forward(torch.rand(3, 5, dtype=DT))
    with pytest.raises(ValueError, match="NaN"):
        m.forward(torch.tensor([[0.5, math.nan, 0.5, 0.5]], dtype=DT))
    with pytest.raises(TypeError, match="floating-point"):
        m.forward(torch.ones(2, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"masses\[1\]: expected a finite mass >= 0"):
        TwoToTwoMap(SQRT_S, (172.5, -1.0))
    with pytest.raises(ValueError, match="m_max: the partonic mass range is empty"):
        TwoToTwoMap(SQRT_S, (172.5, 172.5), m_max=300.0)
    with pytest.raises(ValueError, match="m_max: expected <= sqrt_s"):
        SChannelMap(SQRT_S, FlatSampling(), m_max=2 * SQRT_S)
    with pytest.raises(ValueError, match="low: PowerLawSampling"):
        SChannelMap(SQRT_S, PowerLawSampling(2.0))
    with pytest.raises(TypeError, match="s_sampling"):
        SChannelMap(SQRT_S, "flat")
    ev, _ = TwoToTwoMap(SQRT_S, (172.5, 172.5)).forward(torch.rand(3, 4, dtype=DT))
    with pytest.raises(ValueError, match="sqrt_s"):
        SChannelMap(14000.0, FlatSampling(), masses=(172.5, 172.5)).inverse(ev)


def test_two_body_decay_at_rest_matches_closed_form():
    dec = TwoBodyDecay((3.0, 4.0))
    P = torch.tensor([[10.0, 0.0, 0.0, 0.0]], dtype=DT)
    mom, log_w = dec.forward(P, torch.tensor([[1.0, 0.0]], dtype=DT))
    # lambda(100, 9, 16) = 100² + 9² + 16² - 2(900 + 1600 + 144) = 5049 -> |p| = sqrt(5049)/20
    q = math.sqrt(5049) / 20
    assert torch.allclose(mom[0, 0], torch.tensor([math.sqrt(q**2 + 9), 0, 0, q], dtype=DT))
    assert math.isclose(float(log_w), math.log(math.sqrt(5049) / 100 / (8 * math.pi)))


# -- RAMBO on diet ------------------------------------------------------------------


def _closed_form_volume(s, n):
    """Φ_n = (2π)^(4-3n) (π/2)^(n-1) s^(n-2) / ((n-1)! (n-2)!) for n massless particles."""
    return (
        (2 * math.pi) ** (4 - 3 * n) * (math.pi / 2) ** (n - 1) * s ** (n - 2)
        / (math.factorial(n - 1) * math.factorial(n - 2))
    )


def _boosted_P(n_events, mass=100.0, beta=(0.3, -0.2, 0.5)):
    rest = torch.tensor([[mass, 0.0, 0.0, 0.0]], dtype=DT).expand(n_events, 4)
    return kin.boost(rest, torch.tensor(beta, dtype=DT))


@pytest.mark.parametrize("n", [2, 3, 4, 6])
def test_rambo_massless_weight_is_closed_form_volume(n, generator):
    m = Rambo((0.0,) * n)
    assert m.dim == 3 * n - 4
    P = _boosted_P(50, mass=250.0)
    _, log_w = m.forward(P, _rand(generator, 50, m.dim))
    ref = math.log(_closed_form_volume(250.0**2, n))
    assert torch.allclose(log_w, torch.full_like(log_w, ref), atol=1e-11)


def test_rambo_massive_two_body_weight_is_beta_over_8pi(generator):
    """n = 2: the massive rescaling factor must turn 1/(8π) into β̄/(8π)."""
    P = _boosted_P(20, mass=30.0)
    _, log_w = Rambo((3.0, 4.0)).forward(P, _rand(generator, 20, 2))
    beta = math.sqrt((900 - 49) * (900 - 1)) / 900
    assert torch.allclose(log_w, torch.full_like(log_w, math.log(beta / (8 * math.pi))))


RAMBO_MASSES = [(0.0, 0.0, 0.0), (0.0,) * 5, (5.0, 10.0, 20.0), (4.8, 0, 0, 4.8, 0, 0), (1.0, 2.0)]


@pytest.mark.parametrize("masses", RAMBO_MASSES, ids=str)
def test_rambo_conservation_masses_roundtrip(masses, generator):
    m = Rambo(masses)
    P = _boosted_P(2000)
    r = _rand(generator, 2000, m.dim)
    mom, log_w = m.forward(P, r)
    assert mom.shape == (2000, len(masses), 4)
    assert torch.allclose(mom.sum(1), P, atol=1e-10 * 100)
    m2 = torch.tensor(masses, dtype=DT) ** 2
    assert torch.allclose(kin.mass2(mom), m2.expand(2000, -1), atol=1e-9)
    r_back, log_w_inv = m.inverse(P, mom)
    assert torch.allclose(r_back, r, atol=1e-10, rtol=0)
    assert torch.allclose(log_w_inv, -log_w, atol=1e-10, rtol=0)


def _three_body_coordinates(mom):
    """(E1, E2, cos θ1, φ1, γ) in P's rest frame; γ: azimuth of p2 about p1 (Euler angles)."""
    p1, p2 = mom[..., 0, 1:], mom[..., 1, 1:]
    e1 = p1 / p1.norm(dim=-1, keepdim=True)
    z = torch.tensor([0.0, 0.0, 1.0], dtype=DT)
    u = z - (e1 * z).sum(-1, keepdim=True) * e1
    u = u / u.norm(dim=-1, keepdim=True)
    w = torch.linalg.cross(e1, u, dim=-1)
    gamma = torch.atan2((p2 * w).sum(-1), (p2 * u).sum(-1))
    return torch.stack(
        [mom[..., 0, 0], mom[..., 1, 0], e1[..., 2], torch.atan2(e1[..., 1], e1[..., 0]), gamma],
        -1,
    )


THREE_BODY = {
    "rambo-massless": lambda: Rambo((0.0, 0.0, 0.0)),
    "rambo-massive": lambda: Rambo((5.0, 10.0, 20.0)),
    "top-chain": lambda: DecayChain(top_decay_tree(b=0, up=1, down=2), (4.8, 0.0, 0.0)),
}


@pytest.mark.parametrize("name", list(THREE_BODY))
def test_three_body_weight_against_autograd(name, generator):
    """e^log_w = |∂(E1, E2, cos θ1, φ1, γ)/∂r| / (8 (2π)^5), the density of dΦ_3 (PDG)."""
    m = THREE_BODY[name]()
    M = 172.5
    P = torch.tensor([[M, 0.0, 0.0, 0.0]], dtype=DT)
    r = 0.05 + 0.9 * _rand(generator, 10, 5)
    _, log_w = m.forward(P.expand(10, 4), r)
    for i in range(10):
        jac = torch.autograd.functional.jacobian(
            lambda ri: _three_body_coordinates(m.forward(P, ri.unsqueeze(0))[0])[0], r[i]
        )
        ref = torch.log(torch.linalg.det(jac).abs()) - math.log(8 * (2 * math.pi) ** 5)
        assert math.isclose(float(log_w[i]), float(ref), abs_tol=1e-7), (i, log_w[i], ref)


def _dalitz_volume(M, m1, m2, m3):
    """Φ_3 = 1/(32π³) × Dalitz area in (E1, E2), by quadrature over E1."""

    def length(e1):
        p1 = math.sqrt(max(e1**2 - m1**2, 0.0))
        m23 = math.sqrt(M**2 + m1**2 - 2 * M * e1)
        lam = max((m23**2 - (m2 + m3) ** 2) * (m23**2 - (m2 - m3) ** 2), 0.0)
        return 2 * p1 * math.sqrt(lam) / (2 * m23) / m23

    e1_max = (M**2 + m1**2 - (m2 + m3) ** 2) / (2 * M)
    area, _ = integrate.quad(length, m1, e1_max, epsabs=0, epsrel=1e-11, limit=200)
    return area / (32 * math.pi**3)


@pytest.mark.parametrize("name", list(THREE_BODY))
def test_three_body_mc_volume_against_dalitz(name):
    """MC of the weight = Φ_3 from the Dalitz area; |diff| < 5σ (false-failure < 6e-7)."""
    m = THREE_BODY[name]()
    M = 172.5
    gen = torch.Generator().manual_seed(11)
    n = 100_000
    _, log_w = m.forward(_boosted_P(n, mass=M), _rand(gen, n, 5))
    w = log_w.exp()
    mean, err = float(w.mean()), float(w.std() / math.sqrt(n))
    ref = _dalitz_volume(M, *m.masses)
    if name == "rambo-massless":
        assert math.isclose(ref, _closed_form_volume(M**2, 3), rel_tol=1e-9)
    assert abs(mean - ref) < 5 * err + 1e-12 * ref, (mean, err, ref)


def _original_rambo(gen, n_events, n, sqrt_s):
    """Kleiss–Stirling–Ellis RAMBO (massless, flat weight): an independent reference sampler."""
    u = torch.rand(n_events, n, 4, generator=gen, dtype=DT)
    c = 2 * u[..., 0] - 1
    ph = 2 * math.pi * u[..., 1]
    q0 = -torch.log(u[..., 2] * u[..., 3])
    st = torch.sqrt(1 - c**2)
    q = torch.stack([q0, q0 * st * torch.cos(ph), q0 * st * torch.sin(ph), q0 * c], -1)
    Q = q.sum(-2, keepdim=True)
    MQ = kin.mass(Q).unsqueeze(-1)
    b = -Q[..., 1:] / MQ
    x = sqrt_s / MQ
    g = Q[..., :1] / MQ
    a = 1 / (1 + g)
    bq = (b * q[..., 1:]).sum(-1, keepdim=True)
    e = x * (g * q[..., :1] + bq)
    p3 = x * (q[..., 1:] + b * q[..., :1] + a * bq * b)
    return torch.cat([e, p3], -1)


def test_rambo_massless_distribution_matches_original_rambo():
    """Flat-weight samples of both algorithms: observable means agree within 5σ each
    (6 comparisons, false-failure < 4e-6)."""
    n, N, M = 4, 40_000, 100.0
    gen = torch.Generator().manual_seed(3)
    P = torch.tensor([[M, 0.0, 0.0, 0.0]], dtype=DT).expand(N, 4)
    ours, _ = Rambo((0.0,) * n).forward(P, _rand(gen, N, 3 * n - 4))
    ref = _original_rambo(gen, N, n, M)
    for obs in (
        lambda p: p[:, 0, 0],
        lambda p: p[:, n - 1, 0],
        lambda p: kin.mass2(p[:, 0] + p[:, 1]),
        lambda p: kin.mass2(p[:, n - 2] + p[:, n - 1]),
        lambda p: p[:, 0, 3] ** 2 / p[:, 0, 0] ** 2,
        lambda p: (p[:, 1, 1:] * p[:, 2, 1:]).sum(-1) / (p[:, 1, 0] * p[:, 2, 0]),
    ):
        a, b = obs(ours), obs(ref)
        z = (a.mean() - b.mean()) / torch.sqrt(a.var() / N + b.var() / N)
        assert abs(float(z)) < 5, float(z)


def test_rambo_gradients():
    m = Rambo((5.0, 10.0, 20.0))
    P = torch.tensor([[100.0, 0.0, 0.0, 30.0]], dtype=DT)
    r = torch.tensor([[0.3, 0.2, 0.7, 0.6, 0.1]], dtype=DT, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: m.forward(P, x)[0], (r,))
    assert torch.autograd.gradcheck(lambda x: m.forward(P, x)[1], (r,))


# -- decay chains -------------------------------------------------------------------

TTBAR_MASSES = (4.8, 0.0, 0.0, 4.8, 0.0, 0.0)


def _flat_ttbar_chain():
    def res(children):
        return Resonance(children, FlatSampling())

    return DecayChain((res((0, res((1, 2)))), res((3, res((4, 5))))), TTBAR_MASSES)


@pytest.mark.parametrize("chain", ["bw", "flat"])
def test_decay_chain_conservation_roundtrip(chain, generator):
    m = DecayChain(ttbar_decay_tree(), TTBAR_MASSES) if chain == "bw" else _flat_ttbar_chain()
    assert m.dim == 14 and m.n_out == 6
    P = _boosted_P(2000, mass=1000.0)
    r = _rand(generator, 2000, 14)
    mom, log_w = m.forward(P, r)
    assert torch.allclose(mom.sum(1), P, atol=1e-11 * 1000 * 10)
    m2 = torch.tensor(TTBAR_MASSES, dtype=DT) ** 2
    assert torch.allclose(kin.mass2(mom), m2.expand(2000, -1), atol=1e-7)
    r_back, log_w_inv = m.inverse(P, mom)
    assert torch.allclose(r_back, r, atol=1e-10, rtol=0)
    assert torch.allclose(log_w_inv, -log_w, atol=1e-8, rtol=0)


def test_decay_chain_gradients():
    m = DecayChain(ttbar_decay_tree(), TTBAR_MASSES)
    P = torch.tensor([[800.0, 0.0, 0.0, 300.0]], dtype=DT)
    r = torch.linspace(0.1, 0.9, 14, dtype=DT).unsqueeze(0).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: m.forward(P, x)[0], (r,))
    assert torch.autograd.gradcheck(lambda x: m.forward(P, x)[1], (r,))


def test_six_body_volume_chain_against_rambo():
    """Two independent 6-body massive volumes: flat decay chain vs massive RAMBO, both MC;
    |diff| < 5σ combined (false-failure < 6e-7)."""
    gen = torch.Generator().manual_seed(5)
    N = 100_000
    P = _boosted_P(N, mass=1000.0)
    est = []
    for m in (_flat_ttbar_chain(), Rambo(TTBAR_MASSES)):
        _, log_w = m.forward(P, _rand(gen, N, 14))
        w = log_w.exp()
        est.append((float(w.mean()), float(w.std() / math.sqrt(N))))
    (a, ea), (b, eb) = est
    assert abs(a - b) < 5 * math.hypot(ea, eb), est
    assert math.hypot(ea, eb) < 0.03 * b  # the check has power


@pytest.mark.parametrize("m_max, tol", [(3000.0, 1e-10), (SQRT_S, 1e-9)])
def test_hadronic_ttbar_six_body_map(m_max, tol, generator):
    """Round trip of tt̄ -> 6 with Breit–Wigner tops and Ws. Up to √ŝ ≈ √s the tops carry
    γ ≈ 40 and their mass² from the daughters' momenta has a rounding error ~1e-8 GeV²,
    which the narrow top Breit–Wigner turns into δr ≈ δm²/(π m_t Γ_t) ~ 1e-10: hence
    the wider tolerance for the full range."""
    m = HadronicMap(SQRT_S, DecayChain(ttbar_decay_tree(), TTBAR_MASSES), PowerLawSampling(1.0),
                    m_min=300.0, m_max=m_max)
    assert m.dim == 16
    r = _rand(generator, 1000, 16)
    ev, log_jac = m.forward(r)
    # rounding grows like γ² of the boosted tops: ~1e-12 relative to sqrt_s
    assert torch.allclose(ev.momenta.sum(1), ev.incoming.sum(1), rtol=0, atol=1e-11 * SQRT_S)
    m2 = torch.tensor(TTBAR_MASSES, dtype=DT).expand(1000, -1) ** 2
    assert torch.allclose(kin.mass2(ev.momenta), m2, atol=1e-13 * SQRT_S**2)
    r_back, log_jac_inv = m.inverse(ev)
    assert torch.allclose(r_back, r, atol=tol, rtol=0)
    assert torch.allclose(log_jac_inv, -log_jac, atol=100 * tol, rtol=0)
    corners = torch.cat([torch.zeros(1, 16), torch.ones(1, 16)]).to(DT)
    ev, log_jac = m.forward(corners)
    assert bool(torch.isfinite(ev.momenta).all() & torch.isfinite(log_jac).all())


def test_hadronic_rambo_mc_volume():
    """2 -> 3 massless: MC of 1 = ∫ dτ (-ln τ) Φ_3(τ s) by quadrature; 5σ (false-failure < 6e-7)."""
    m = HadronicMap(SQRT_S, Rambo((0.0, 0.0, 0.0)), PowerLawSampling(1.5), m_min=100.0,
                    m_max=1000.0)
    gen = torch.Generator().manual_seed(9)
    ev, log_jac = m.forward(_rand(gen, 100_000, m.dim))
    w = log_jac.exp()
    mean, err = float(w.mean()), float(w.std() / math.sqrt(len(w)))
    s = SQRT_S**2
    ref, _ = integrate.quad(
        lambda lt: math.exp(lt) * (-lt) * _closed_form_volume(math.exp(lt) * s, 3),
        math.log(100.0**2 / s), math.log(1000.0**2 / s), epsrel=1e-11,
    )
    assert abs(mean - ref) < 5 * err, (mean, err, ref)
    r_back, log_jac_inv = m.inverse(ev)
    assert torch.allclose(log_jac_inv, -log_jac, atol=1e-9)


ALL_HADRONIC = {
    **MAPS_2TO2,
    "rambo-4-massless": lambda: HadronicMap(SQRT_S, Rambo((0.0,) * 4), PowerLawSampling(2.0),
                                            m_min=100.0),
    "rambo-4-massive": lambda: HadronicMap(SQRT_S, Rambo((4.8, 4.8, 0.0, 0.0)),
                                           PowerLawSampling(2.0), m_min=100.0),
    "ttbar-6": lambda: HadronicMap(SQRT_S, DecayChain(ttbar_decay_tree(), TTBAR_MASSES),
                                   PowerLawSampling(1.0)),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("name", list(ALL_HADRONIC))
def test_faces_of_cube_and_float32_are_finite(name, dtype, generator):
    """Points on the faces (r = 0, 1) and random points in float32 give finite events."""
    m = ALL_HADRONIC[name]()
    faces = torch.tensor([0.0, 1.0, 0.5, 1e-9, 1 - 1e-9], dtype=dtype)[:, None].expand(5, m.dim)
    mixed = (torch.rand(200, m.dim, generator=generator) < 0.5).to(dtype)
    r = torch.cat([faces, mixed, torch.rand(2000, m.dim, generator=generator).to(dtype)])
    ev, log_jac = m.forward(r)
    assert ev.momenta.dtype == dtype and log_jac.dtype == dtype
    assert bool(torch.isfinite(ev.momenta).all()), name
    assert bool(torch.isfinite(log_jac).all()), name
    r_back, log_jac_inv = m.inverse(ev)
    assert bool(torch.isfinite(r_back).all() & torch.isfinite(log_jac_inv).all()), name


def test_rambo_and_chain_bad_input():
    with pytest.raises(ValueError, match="masses: expected at least 2"):
        Rambo((1.0,))
    with pytest.raises(ValueError, match=r"masses\[2\]"):
        Rambo((1.0, 2.0, -3.0))
    with pytest.raises(ValueError, match="tree: expected final-state indices"):
        DecayChain((0, Resonance((1, 1), FlatSampling())), (0.0, 0.0, 0.0))
    with pytest.raises(TypeError, match="tree: expected ints or Resonance"):
        DecayChain((0, "W"), (0.0, 0.0))
    with pytest.raises(ValueError, match="children: expected a tuple of two"):
        Resonance((0, 1, 2), FlatSampling())
    with pytest.raises(ValueError, match="m_max: the partonic mass range is empty"):
        HadronicMap(SQRT_S, Rambo((172.5, 172.5, 4.8)), FlatSampling(), m_max=300.0)
    with pytest.raises(ValueError, match=r"r: expected shape \(n, 7\)"):
        HadronicMap(SQRT_S, Rambo((0.0, 0.0, 0.0)), FlatSampling()).forward(torch.rand(3, 5))
    with pytest.raises(ValueError, match="momenta: expected shape"):
        Rambo((0.0, 0.0, 0.0)).inverse(_boosted_P(2), torch.zeros(2, 2, 4, dtype=DT))
