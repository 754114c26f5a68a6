"""Tests of forward.kinematics: invariants, boosts, (pT, η, φ) and Collins–Soper angles."""

from __future__ import annotations

import math

import pytest
import torch

from forward import kinematics as kin

DT = torch.float64


def _random_massive(gen, shape, mass_scale=50.0, p_scale=200.0):
    p3 = p_scale * torch.randn(*shape, 3, generator=gen, dtype=DT)
    m = mass_scale * (0.2 + torch.rand(*shape, generator=gen, dtype=DT))  # gamma < ~100
    e = torch.sqrt(m**2 + (p3**2).sum(-1))
    return torch.cat([e.unsqueeze(-1), p3], -1), m


def _random_beta(gen, shape, vmax=0.99):
    direction = torch.randn(*shape, 3, generator=gen, dtype=DT)
    direction = direction / direction.norm(dim=-1, keepdim=True)
    speed = vmax * torch.rand(*shape, 1, generator=gen, dtype=DT)
    return speed * direction


def _massless_pair(gen, n, qz_sign=None):
    """Lab-frame massless l-, l+ pairs with random mass, transverse momentum and rapidity."""
    m = 50 + 100 * torch.rand(n, generator=gen, dtype=DT)
    ct = 2 * torch.rand(n, generator=gen, dtype=DT) - 1
    ph = 2 * math.pi * torch.rand(n, generator=gen, dtype=DT)
    st = torch.sqrt(1 - ct**2)
    k = 0.5 * m.unsqueeze(-1) * torch.stack([st * torch.cos(ph), st * torch.sin(ph), ct], -1)
    l1 = torch.cat([(0.5 * m).unsqueeze(-1), k], -1)
    l2 = torch.cat([(0.5 * m).unsqueeze(-1), -k], -1)
    beta = _random_beta(gen, (n,), 0.95)
    if qz_sign is not None:
        beta[:, 2] = qz_sign * beta[:, 2].abs()
    return kin.boost(l1, beta), kin.boost(l2, beta)


def test_invariants_simple_values():
    p = torch.tensor([[5.0, 3.0, 0.0, 0.0], [10.0, 0.0, 6.0, 8.0]], dtype=DT)
    assert torch.allclose(kin.mass(p), torch.tensor([4.0, 0.0], dtype=DT))
    assert torch.allclose(kin.mass2(p), torch.tensor([16.0, 0.0], dtype=DT))
    assert torch.allclose(kin.pt(p), torch.tensor([3.0, 6.0], dtype=DT))
    assert torch.allclose(kin.momentum(p), torch.tensor([3.0, 10.0], dtype=DT))
    assert torch.allclose(kin.dot(p[0], p[1]), torch.tensor(50.0, dtype=DT))
    assert torch.allclose(kin.phi(p), torch.tensor([0.0, math.pi / 2], dtype=DT))
    # massless: y == eta; eta = asinh(8/6)
    assert torch.allclose(kin.rapidity(p[1]), kin.pseudorapidity(p[1]))
    assert math.isclose(float(kin.pseudorapidity(p[1])), math.asinh(8 / 6), rel_tol=1e-14)


def test_mass_of_rounding_negative_is_zero():
    p = torch.tensor([1.0, 0.0, 0.0, 1.0 + 1e-15], dtype=DT)
    assert float(kin.mass2(p)) < 0
    assert float(kin.mass(p)) == 0.0


def test_mass_invariant_under_random_boosts(generator):
    p, m = _random_massive(generator, (1000,))
    beta = _random_beta(generator, (1000,))
    pb = kin.boost(p, beta)
    assert torch.allclose(kin.mass(pb), m, rtol=1e-9, atol=1e-9)
    q, _ = _random_massive(generator, (1000,))
    assert torch.allclose(kin.dot(pb, kin.boost(q, beta)), kin.dot(p, q), rtol=1e-9, atol=1e-6)


def test_boost_there_and_back(generator):
    p, _ = _random_massive(generator, (500,))
    beta = _random_beta(generator, (500,))
    assert torch.allclose(kin.boost(kin.boost(p, beta), -beta), p, rtol=1e-10, atol=1e-9)
    q, mq = _random_massive(generator, (500,))
    there = kin.boost_to_rest_frame(p, q)
    assert torch.allclose(kin.boost_from_rest_frame(there, q), p, rtol=1e-10, atol=1e-9)
    rest = kin.boost_to_rest_frame(q, q)
    expected = torch.zeros_like(q)
    expected[:, 0] = mq
    assert torch.allclose(rest, expected, atol=1e-9)


def test_boost_along_z_matches_rapidity_shift(generator):
    p, _ = _random_massive(generator, (100,))
    eta_b = 0.7
    beta = torch.tensor([0.0, 0.0, math.tanh(eta_b)], dtype=DT)
    assert torch.allclose(kin.rapidity(kin.boost(p, beta)), kin.rapidity(p) + eta_b, atol=1e-10)


def test_boost_broadcasting_and_zero_beta(generator):
    p, _ = _random_massive(generator, (4, 3))
    out = kin.boost(p, torch.zeros(3, dtype=DT))
    assert out.shape == (4, 3, 4)
    assert torch.equal(out, p)


def test_pt_eta_phi_roundtrip(generator):
    n = 1000
    pt = 1 + 500 * torch.rand(n, generator=generator, dtype=DT)
    eta = 8 * torch.rand(n, generator=generator, dtype=DT) - 4
    phi = 2 * math.pi * torch.rand(n, generator=generator, dtype=DT) - math.pi
    m = 100 * torch.rand(n, generator=generator, dtype=DT)
    p = kin.from_pt_eta_phi_m(pt, eta, phi, m)
    assert torch.allclose(kin.pt(p), pt, rtol=1e-12)
    assert torch.allclose(kin.pseudorapidity(p), eta, atol=1e-11)
    assert torch.allclose(kin.phi(p), phi, atol=1e-12)
    assert torch.allclose(kin.mass(p), m, rtol=1e-8, atol=1e-5)


def test_delta_r_wraps_phi():
    p = kin.from_pt_eta_phi_m(10.0, 0.5, math.pi - 0.1, 0.0).to(DT)
    q = kin.from_pt_eta_phi_m(10.0, 0.2, -math.pi + 0.1, 0.0).to(DT)
    assert math.isclose(float(kin.delta_r(p, q)), math.hypot(0.3, 0.2), rel_tol=1e-6)
    assert math.isclose(float(kin.delta_phi(torch.tensor(3.0), torch.tensor(-3.0))),
                        6.0 - 2 * math.pi, rel_tol=1e-6)


@pytest.mark.parametrize("pair_velocity", [0.0, 0.6, -0.6])
def test_collins_soper_pair_along_z(pair_velocity):
    """Q_T = 0: CS angles are the rest-frame angles of l- (z flipped, with y, for Q_z < 0)."""
    cos_t = torch.tensor([0.3, -0.8, 1.0 - 1e-9, 0.0], dtype=DT)
    phi = torch.tensor([0.4, -2.0, 1.0, 3.0], dtype=DT)
    st = torch.sqrt(1 - cos_t**2)
    k = 45.0 * torch.stack([st * torch.cos(phi), st * torch.sin(phi), cos_t], -1)
    lm = torch.cat([torch.full((4, 1), 45.0, dtype=DT), k], -1)
    lp = torch.cat([torch.full((4, 1), 45.0, dtype=DT), -k], -1)
    beta = torch.tensor([0.0, 0.0, pair_velocity], dtype=DT)
    ct_cs, phi_cs = kin.collins_soper(kin.boost(lm, beta), kin.boost(lp, beta))
    sign = -1.0 if pair_velocity < 0 else 1.0
    assert torch.allclose(ct_cs, sign * cos_t, atol=1e-12)
    dphi = kin.delta_phi(phi_cs, sign * phi)
    assert torch.allclose(dphi, torch.zeros_like(dphi), atol=1e-7)


@pytest.mark.parametrize("qz_sign", [1.0, -1.0])
def test_collins_soper_cos_theta_matches_light_cone_formula(generator, qz_sign):
    """cos θ* = sign(Q_z) 2 (l-⁺ l+⁻ - l-⁻ l+⁺) / (Q sqrt(Q² + Q_T²)), p± = (E ± pz)/√2."""
    lm, lp = _massless_pair(generator, 2000, qz_sign)
    q = lm + lp
    Q2, qt = kin.mass2(q), kin.pt(q)
    plus = lambda v: (v[:, 0] + v[:, 3]) / math.sqrt(2)  # noqa: E731
    minus = lambda v: (v[:, 0] - v[:, 3]) / math.sqrt(2)  # noqa: E731
    num = plus(lm) * minus(lp) - minus(lm) * plus(lp)
    ref = qz_sign * 2 * num / torch.sqrt(Q2 * (Q2 + qt**2))
    ct, _ = kin.collins_soper(lm, lp)
    assert torch.allclose(ct, ref, atol=1e-10)
    ct_p, _ = kin.collins_soper(lm, lp, sqrt_s=13000.0)  # massive proton beams: tiny change
    assert torch.allclose(ct_p, ref, atol=1e-6)


def test_collins_soper_phi_for_pair_along_x(generator):
    """For Q_T along +x (Q_z > 0) the CS y axis is the lab y axis and
    tan φ* = sqrt(Q² + Q_T²) Δ_y / (Q Δ·Q̂_T) with Δ = l- - l+ (Collins–Soper)."""
    n = 1000
    lm, lp = _massless_pair(generator, n, qz_sign=1.0)
    q = lm + lp
    # rotate each event about z so that Q_T points along +x; CS angles are unchanged
    alpha = -kin.phi(q)
    c, s = torch.cos(alpha), torch.sin(alpha)

    def rot(v):
        x, y = c * v[:, 1] - s * v[:, 2], s * v[:, 1] + c * v[:, 2]
        return torch.stack([v[:, 0], x, y, v[:, 3]], -1)

    ct0, phi0 = kin.collins_soper(lm, lp)
    lm, lp = rot(lm), rot(lp)
    ct1, phi1 = kin.collins_soper(lm, lp)
    assert torch.allclose(ct0, ct1, atol=1e-10)
    assert torch.allclose(kin.delta_phi(phi0, phi1), torch.zeros(n, dtype=DT), atol=1e-9)
    q = lm + lp
    Q, qt = kin.mass(q), kin.pt(q)
    delta = lm - lp
    ref = torch.atan2(torch.sqrt(Q**2 + qt**2) * delta[:, 2], Q * delta[:, 1])
    assert torch.allclose(kin.delta_phi(phi1, ref), torch.zeros(n, dtype=DT), atol=1e-9)


def test_gradcheck_float64(generator):
    p, _ = _random_massive(generator, (3,), mass_scale=50.0)
    p = (p + torch.tensor([30.0, 0, 0, 0], dtype=DT)).requires_grad_(True)
    assert torch.autograd.gradcheck(kin.mass, (p,))
    assert torch.autograd.gradcheck(kin.pseudorapidity, (p,))
    assert torch.autograd.gradcheck(kin.rapidity, (p,))
    beta = _random_beta(generator, (3,), 0.9).requires_grad_(True)
    assert torch.autograd.gradcheck(kin.boost, (p, beta))
    q, _ = _random_massive(generator, (3,))
    q = (q + torch.tensor([80.0, 0, 0, 0], dtype=DT)).requires_grad_(True)
    assert torch.autograd.gradcheck(kin.boost_to_rest_frame, (p, q))
    assert torch.autograd.gradcheck(kin.boost_from_rest_frame, (p, q))
    lm, lp = _massless_pair(generator, 3)
    assert torch.autograd.gradcheck(
        lambda a, b: kin.collins_soper(a, b), (lm.requires_grad_(True), lp.requires_grad_(True))
    )


def test_dtype_and_device_preserved(device):
    p = torch.tensor([[5.0, 1.0, 2.0, 3.0]], dtype=torch.float32, device=device)
    for f in (kin.mass, kin.pt, kin.rapidity, kin.pseudorapidity, kin.phi):
        out = f(p)
        assert out.dtype == torch.float32 and out.device == p.device
    out = kin.boost(p, torch.tensor([0.1, 0.0, 0.2], dtype=torch.float32, device=device))
    assert out.dtype == torch.float32 and out.device == p.device


def test_bad_input_errors():
    with pytest.raises(ValueError, match=r"p: expected shape \(\.\.\., 4\)"):
        kin.mass(torch.zeros(3, 3))
    with pytest.raises(TypeError, match="p: expected a floating-point tensor"):
        kin.mass(torch.zeros(2, 4, dtype=torch.int64))
    with pytest.raises(TypeError, match="p: expected a torch.Tensor"):
        kin.pt([1.0, 2.0, 3.0, 4.0])
    with pytest.raises(ValueError, match=r"beta: expected \|beta\| < 1"):
        kin.boost(torch.zeros(4), torch.tensor([0.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match=r"beta: expected shape \(\.\.\., 3\)"):
        kin.boost(torch.zeros(4), torch.zeros(4))
    with pytest.raises(ValueError, match="l_plus"):
        kin.collins_soper(torch.zeros(4), torch.zeros(3))
