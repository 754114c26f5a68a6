"""q q̄ → γ γ g: |M|² against the six Feynman diagrams, symmetries, soft limit, phase
space, cross section (plain MC vs VEGAS) and input errors."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from forward.alphas import RunningAlphaS
from forward.events import HardEvents
from forward.processes import get_process
from forward.processes.diphoton_jet import (
    FLAVOUR_CHANNELS,
    DiphotonJet,
    me2_qqbar_aag,
    production_invariants,
)
from forward.xsec import cross_section

F64 = torch.float64
C128 = torch.complex128
METRIC = torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=F64)


# -- an independent numerical evaluation of the six diagrams ----------------------------
def _gamma_matrices() -> torch.Tensor:
    """Dirac matrices γ^μ in the chiral representation, shape (4, 4, 4) complex."""
    i2 = torch.eye(2, dtype=C128)
    z2 = torch.zeros(2, 2, dtype=C128)
    pauli = [
        torch.tensor([[0, 1], [1, 0]], dtype=C128),
        torch.tensor([[0, -1j], [1j, 0]], dtype=C128),
        torch.tensor([[1, 0], [0, -1]], dtype=C128),
    ]
    g0 = torch.cat([torch.cat([z2, i2], 1), torch.cat([i2, z2], 1)], 0)
    gs = [torch.cat([torch.cat([z2, s], 1), torch.cat([-s, z2], 1)], 0) for s in pauli]
    return torch.stack([g0, *gs])


GAMMA = _gamma_matrices()


def _slash(p: torch.Tensor) -> torch.Tensor:
    """p̸ = p_μ γ^μ for p of shape (b, 4): (b, 4, 4)."""
    return torch.einsum("bm,mij->bij", (p * METRIC).to(C128), GAMMA)


def _mdot(p, q):
    return (p * q * METRIC).sum(-1)


def _vertex_strings(p1: torch.Tensor, ks: list[torch.Tensor]) -> torch.Tensor:
    """Σ over the 6 orderings of v̄ ... u stripped of spinors and polarisations.

    Boson b attaches with γ^{a_b}; the fermion line starts at the incoming quark p1.
    Returns Γ^{a0 a1 a2}, shape (b, 4, 4, 4, 4, 4) (three Lorentz, two Dirac indices).
    """
    total = 0
    for first, second, third in itertools.permutations(range(3)):
        q1 = p1 - ks[first]
        q2 = q1 - ks[second]
        s1 = _slash(q1) / _mdot(q1, q1).to(C128)[:, None, None]
        s2 = _slash(q2) / _mdot(q2, q2).to(C128)[:, None, None]
        # indices (a_third, a_second, a_first)
        g = torch.einsum("xij,bjk,ykl,blm,zmn->bxyzin", GAMMA, s2, GAMMA, s1, GAMMA)
        order = [third, second, first]
        total = total + g.permute(0, *[1 + order.index(b) for b in range(3)], 4, 5)
    return total


def _bar(m: torch.Tensor) -> torch.Tensor:
    """Dirac adjoint γ⁰ M† γ⁰ on the last two axes."""
    return GAMMA[0] @ m.conj().transpose(-1, -2) @ GAMMA[0]


def _diagram_sum_metric(p1, p2, ks) -> torch.Tensor:
    """Σ_spins,pols |A|² with Σ ε ε* -> -g_μν, unit couplings, shape (b,)."""
    gam = _vertex_strings(p1, ks)
    tr = torch.einsum("bij,bxyzjk,bkl,bxyzli->bxyz", _slash(p2), gam, _slash(p1), _bar(gam))
    w = torch.einsum("x,y,z->xyz", METRIC, METRIC, METRIC).to(C128)
    return -(tr * w).sum((1, 2, 3)).real


def _transverse(k: torch.Tensor, gen: torch.Generator) -> list[torch.Tensor]:
    """Two real polarisation four-vectors (0, e⃗) with e⃗ ⊥ k⃗, shape (b, 4) each."""
    n = k[:, 1:] / k[:, 1:].norm(dim=-1, keepdim=True)
    r = torch.randn(n.shape, generator=gen, dtype=F64)
    e1 = r - (r * n).sum(-1, keepdim=True) * n
    e1 = e1 / e1.norm(dim=-1, keepdim=True)
    e2 = torch.cross(n, e1, dim=-1)
    zero = torch.zeros_like(k[:, :1])
    return [torch.cat([zero, e1], -1), torch.cat([zero, e2], -1)]


def _diagram_sum_physical(p1, p2, ks, gen) -> torch.Tensor:
    """Σ over the two physical (transverse) polarisations of each boson instead of -g."""
    gam = _vertex_strings(p1, ks)
    pols = [_transverse(k, gen) for k in ks]
    total = 0
    for e0, e1, e2 in itertools.product(*pols):
        lower = [(e * METRIC).to(C128) for e in (e0, e1, e2)]
        m = torch.einsum("bx,by,bz,bxyzij->bij", *lower, gam)
        total = total + torch.einsum("bij,bjk,bkl,bli->b", _slash(p2), m, _slash(p1), _bar(m))
    return total.real


def _colour_sum() -> float:
    """Σ_a Tr(T^a T^a) from the explicit Gell-Mann matrices, T = λ/2."""
    lam = torch.zeros(8, 3, 3, dtype=C128)
    pairs = [(0, 1), (0, 2), (1, 2)]
    for n, (i, j) in enumerate(pairs):
        lam[2 * n, i, j] = lam[2 * n, j, i] = 1
        lam[2 * n + 1, i, j], lam[2 * n + 1, j, i] = -1j, 1j
    lam[6, 0, 0], lam[6, 1, 1] = 1, -1
    lam[7] = torch.diag(torch.tensor([1, 1, -2], dtype=C128)) / math.sqrt(3)
    t = lam / 2
    return float(torch.einsum("aij,aji->", t, t).real)


def _random_events(
    n: int, seed: int, process: DiphotonJet | None = None, passing: bool = True
) -> HardEvents:
    """Lab-frame events from the process's map; with ``passing`` only events in the cuts.

    The diagram references are compared inside the cuts: next to the soft and collinear
    singularities outside them the -g_μν polarisation sum of the numerical reference
    cancels between unphysical polarisations and itself loses digits (up to 1e-7 in the
    lab frame), while the explicit transverse sum still agrees with the formula.
    """
    process = process or DiphotonJet()
    gen = torch.Generator().manual_seed(seed)
    r = torch.rand(40 * n if passing else n, 7, generator=gen, dtype=F64)
    events, _ = process.phase_space()[0].forward(r)
    if passing:
        events = events[process.cuts(events)]
    return events[:n]


# -- 1. the matrix element against the Feynman diagrams ----------------------------------
def test_colour_factor_from_gell_mann_matrices():
    assert _colour_sum() == pytest.approx(4.0, rel=1e-14)  # C_F N_c


def test_metric_and_physical_polarisation_sums_agree():
    # gauge invariance: -g_μν and the explicit transverse sum give the same Σ|A|²
    events = _random_events(6, seed=3)
    p = events.incoming
    ks = list(events.momenta.unbind(1))
    gen = torch.Generator().manual_seed(5)
    a = _diagram_sum_metric(p[:, 0], p[:, 1], ks)
    b = _diagram_sum_physical(p[:, 0], p[:, 1], ks, gen)
    torch.testing.assert_close(a, b, rtol=1e-10, atol=0)


@pytest.mark.parametrize("scale", ["fixed", "ht"])
def test_matrix_element_matches_feynman_diagrams(scale):
    proc = DiphotonJet(scale=scale, mu_fixed=125.0)
    events = _random_events(12, seed=11, process=proc)
    # float64 tensors: Process.params turns plain floats into torch's default dtype
    params = proc.params({"alpha_s": torch.tensor(0.121, dtype=F64),
                          "alpha_em": torch.tensor(0.0075, dtype=F64)})
    me = proc.matrix_element(events, params)
    assert me.shape == (12, len(FLAVOUR_CHANNELS))
    p = events.incoming
    ks = list(events.momenta.unbind(1))
    amp_q_first = _diagram_sum_metric(p[:, 0], p[:, 1], ks)  # quark from beam 1
    amp_qbar_first = _diagram_sum_metric(p[:, 1], p[:, 0], ks)  # quark from beam 2
    mu2, _ = proc.scales(events, params)
    als = RunningAlphaS(0.121, order=1)(mu2)
    e2 = 4 * math.pi * 0.0075
    for col, (a, _) in enumerate(FLAVOUR_CHANNELS):
        eq = 2 / 3 if abs(a) % 2 == 0 else -1 / 3
        amp = amp_q_first if a > 0 else amp_qbar_first
        # average over 2 x 2 spins and 3 x 3 colours; 1/2! for the identical photons
        ref = amp * (eq**2 * e2) ** 2 * 4 * math.pi * als * _colour_sum() / 36 / 2
        torch.testing.assert_close(me[:, col], ref, rtol=1e-10, atol=0)


def test_plain_me2_function_matches_feynman_diagrams():
    events = _random_events(8, seed=21)
    s, t, u = production_invariants(events)
    p = events.incoming
    amp = _diagram_sum_metric(p[:, 0], p[:, 1], list(events.momenta.unbind(1)))
    ours = me2_qqbar_aag(s, t, u, 2 / 3, 0.13, 1 / 128.0)
    ref = amp * (4 / 9 * 4 * math.pi / 128) ** 2 * 4 * math.pi * 0.13 * 4 / 36
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=0)


# -- 2. symmetries --------------------------------------------------------------------------
def test_symmetric_under_photon_exchange():
    proc = DiphotonJet()
    events = _random_events(200, seed=4)
    swapped = HardEvents(events.momenta[:, [1, 0, 2]], events.x1, events.x2, events.sqrt_s)
    params = proc.params()
    a = proc.matrix_element(events, params)
    b = proc.matrix_element(swapped, params)
    # the same sum in another order: equal to rounding
    torch.testing.assert_close(a, b, rtol=1e-14, atol=0)


def test_beam_order_and_crossing_consistency():
    proc = DiphotonJet()
    events = _random_events(200, seed=6)
    # the same event with the beams exchanged: z -> -z and x1 <-> x2
    mirrored = events.momenta * torch.tensor([1.0, 1.0, 1.0, -1.0], dtype=F64)
    flipped = HardEvents(mirrored, events.x2, events.x1, events.sqrt_s)
    params = proc.params()
    a = proc.matrix_element(events, params)
    b = proc.matrix_element(flipped, params)
    for col, (qa, qb) in enumerate(FLAVOUR_CHANNELS):
        other = FLAVOUR_CHANNELS.index((qb, qa))
        torch.testing.assert_close(a[:, col], b[:, other], rtol=1e-12, atol=0)
    # q q̄ and q̄ q columns equal at the same momenta (|M|² is symmetric in t <-> u),
    # and up-type / down-type columns differ by (e_u / e_d)^4 = 16
    torch.testing.assert_close(a[:, 0], a[:, 1], rtol=1e-12, atol=0)
    torch.testing.assert_close(a[:, 2], 16 * a[:, 0], rtol=1e-12, atol=0)


# -- 4. soft-gluon limit ---------------------------------------------------------------------
def _soft_config(omega: float, energy: float, n1, n3):
    """q q̄ -> γ γ g in the partonic rest frame, gluon energy omega, photon 1 along n1."""
    n1 = torch.tensor(n1, dtype=F64) / torch.tensor(n1, dtype=F64).norm()
    n3 = torch.tensor(n3, dtype=F64) / torch.tensor(n3, dtype=F64).norm()
    w = 2 * energy - omega
    a = (w**2 - omega**2) / (2 * w + 2 * omega * (n1 @ n3))
    k1 = torch.cat([a.reshape(1), a * n1])
    k3 = torch.cat([torch.tensor([omega], dtype=F64), omega * n3])
    k2 = torch.tensor([2 * energy, 0, 0, 0], dtype=F64) - k1 - k3
    p1 = torch.tensor([energy, 0, 0, energy], dtype=F64)
    p2 = torch.tensor([energy, 0, 0, -energy], dtype=F64)
    return p1, p2, k1, k2, k3


@pytest.mark.parametrize("n1, n3", [((0.3, 0.5, 0.8), (-0.6, 0.2, 0.1)),
                                    ((1.0, -0.2, -0.4), (0.1, 0.9, -0.5))])
def test_soft_gluon_limit_is_eikonal_times_two_photon_me(n1, n3):
    energy, als, alpha, eq = 100.0, 0.12, 1 / 137.036, -1 / 3
    deviations = []
    for frac in (1e-2, 1e-3, 1e-4, 1e-5):
        p1, p2, k1, k2, k3 = _soft_config(frac * energy, energy, n1, n3)
        s = 2 * _mdot(p1, p2)
        t = torch.stack([_mdot(p1 - k, p1 - k) for k in (k1, k2, k3)])
        u = torch.stack([_mdot(p2 - k, p2 - k) for k in (k1, k2, k3)])
        me3 = me2_qqbar_aag(s, t, u, eq, als, alpha)
        # eikonal factor -J², J = g_s (p1/p1·k - p2/p2·k), times C_F for the colour
        current = p1 / _mdot(p1, k3) - p2 / _mdot(p2, k3)
        eikonal = -(4 / 3) * 4 * math.pi * als * _mdot(current, current)
        # q q̄ -> γγ averaged over spins and colours: 2/3 e_q^4 e^4 (t/u + u/t)
        t2, u2 = _mdot(p1 - k1, p1 - k1), _mdot(p1 - k2, p1 - k2)
        me2 = 2 / 3 * eq**4 * (4 * math.pi * alpha) ** 2 * (t2 / u2 + u2 / t2)
        deviations.append(abs(float(me3 / (eikonal * me2)) - 1))
    # next-to-soft corrections are O(ω/E): the deviation falls tenfold per decade
    for frac, dev in zip((1e-2, 1e-3, 1e-4, 1e-5), deviations, strict=True):
        assert dev < 5 * frac, (frac, dev)
    assert deviations[-1] < 1e-4 < deviations[0]


# -- 3. phase space and cross section -------------------------------------------------------
def test_map_inverse_round_trip():
    proc = DiphotonJet()
    m = proc.phase_space()[0]
    assert m.dim == 7
    gen = torch.Generator().manual_seed(8)
    r = torch.rand(500, 7, generator=gen, dtype=F64) * 0.98 + 0.01
    events, lj = m.forward(r)
    r2, lj2 = m.inverse(events)
    torch.testing.assert_close(r2, r, rtol=0, atol=1e-9)
    torch.testing.assert_close(lj2, -lj, rtol=0, atol=1e-9)
    # momentum conservation and massless final state
    total = events.momenta.sum(1)
    torch.testing.assert_close(total, events.incoming.sum(1), rtol=1e-12, atol=1e-8)
    m2 = events.momenta[..., 0] ** 2 - (events.momenta[..., 1:] ** 2).sum(-1)
    assert float(m2.abs().max()) < 1e-8 * float(events.shat.max())


def _classic_rambo(n: int, energy: float, gen: torch.Generator) -> torch.Tensor:
    """Three massless momenta by the original RAMBO algorithm (Kleiss, Stirling, Ellis):
    isotropic momenta with energies from q e^-q, then a boost and rescaling to total
    momentum (energy, 0, 0, 0). Flat in Φ_3 with the constant weight ŝ/(256π³)."""
    u = torch.rand(n, 3, 4, generator=gen, dtype=F64)
    c = 2 * u[..., 0] - 1
    sn = (1 - c * c).sqrt()
    ph = 2 * math.pi * u[..., 1]
    q0 = -torch.log(u[..., 2] * u[..., 3])
    q = torch.stack([q0, q0 * sn * ph.cos(), q0 * sn * ph.sin(), q0 * c], -1)
    big_q = q.sum(1)
    mass = (big_q[:, 0] ** 2 - (big_q[:, 1:] ** 2).sum(-1)).sqrt()
    b = -big_q[:, 1:] / mass[:, None]
    gamma = big_q[:, :1] / mass[:, None]
    a = 1 / (1 + gamma)
    x = energy / mass
    bq = (b[:, None, :] * q[..., 1:]).sum(-1, keepdim=True)
    e = x[:, None, None] * (gamma[:, None] * q[..., :1] + bq)
    bvec = b[:, None, :]
    p3 = x[:, None, None] * (q[..., 1:] + bvec * q[..., :1] + a[:, None] * bq * bvec)
    return torch.cat([e, p3], -1)


def test_fixed_shat_volume_with_cuts_against_classic_rambo():
    # the partonic map is exactly flat with weight Φ_3 = ŝ/(256π³); its fiducial
    # volume at fixed ŝ (y = 0) must agree with an independent flat RAMBO sampler
    proc = DiphotonJet()
    partonic = proc.phase_space()[0].partonic
    shat = torch.full((40_000,), 150.0**2, dtype=F64)
    gen = torch.Generator().manual_seed(12)
    rest = torch.stack([shat.sqrt(), *(torch.zeros_like(shat),) * 3], -1)
    ours, log_w = partonic.forward(rest, torch.rand(len(shat), 5, generator=gen, dtype=F64), shat)
    vol = shat / (256 * math.pi**3)
    torch.testing.assert_close(log_w, vol.log(), rtol=1e-13, atol=0)
    theirs = _classic_rambo(len(shat), 150.0, gen)
    torch.testing.assert_close(theirs.sum(1), rest, rtol=0, atol=1e-9)
    x = torch.ones_like(shat) * 150.0 / 13000.0
    frac = [proc.cuts(HardEvents(p, x, x, 13000.0)).double().mean() for p in (ours, theirs)]
    err = [math.sqrt(float(f * (1 - f)) / len(shat)) for f in frac]
    assert 0.05 < float(frac[0]) < 0.95
    # binomial fractions; fails with probability ~6e-5 for a correct map (4σ combined)
    assert abs(float(frac[0] - frac[1])) < 4 * math.hypot(*err)


def test_hadronic_volume_against_closed_form():
    # ∫dμ over the map = s/(256π³) ∫_{τmin}^1 τ ln(1/τ) dτ, τmin = ŝ_min/s
    proc = DiphotonJet(sqrt_s=1000.0)
    m = proc.phase_space()[0]
    gen = torch.Generator().manual_seed(13)
    _, lj = m.forward(torch.rand(100_000, 7, generator=gen, dtype=F64))
    w = lj.exp()
    s = 1000.0**2
    a = m.s_min / s
    ref = s / (256 * math.pi**3) * (0.25 - 0.5 * a * a * math.log(1 / a) - 0.25 * a * a)
    err = float(w.std()) / math.sqrt(len(w))
    # MC mean of bounded weights; fails with probability ~6e-5 for a correct map (4σ)
    assert abs(float(w.mean()) - ref) < 4 * err
    assert err < 0.02 * ref  # the check has resolving power


def test_cross_section_plain_agrees_with_vegas():
    proc = get_process("diphoton-jet")
    plain = cross_section(proc, 150_000, seed=101)
    vegas = cross_section(proc, 150_000, seed=202, method="vegas")
    assert plain.value > 0 and vegas.value > 0
    assert plain.rel_error < 0.03 and vegas.rel_error < 0.03
    # independent estimates; fails with probability ~6e-5 for Gaussian errors (4σ)
    assert abs(plain.value - vegas.value) < 4 * math.hypot(plain.error, vegas.error)


def test_gradients_in_the_couplings():
    proc = DiphotonJet()
    events = _random_events(20, seed=14)
    als = torch.tensor(0.118, dtype=F64, requires_grad=True)
    aem = torch.tensor(0.0073, dtype=F64, requires_grad=True)
    me = proc.matrix_element(events, proc.params({"alpha_s": als, "alpha_em": aem}))
    g_s, g_em = torch.autograd.grad(me[:, 1].log().sum(), (als, aem))
    # |M|² ∝ α_EM²: d Σ log|M|² / d α_EM = 2 n / α_EM exactly
    assert float(g_em) == pytest.approx(2 * 20 / 0.0073, rel=1e-12)
    # |M|² ∝ α_s(μ): compare with a finite difference of the running coupling
    mu2, _ = proc.scales(events, proc.params())
    h = 1e-6
    fd = (RunningAlphaS(0.118 + h, order=1)(mu2).log()
          - RunningAlphaS(0.118 - h, order=1)(mu2).log()).sum() / (2 * h)
    assert float(g_s) == pytest.approx(float(fd), rel=1e-7)


def test_observables_and_cuts(device):
    proc = DiphotonJet()
    events = _random_events(300, seed=15, passing=False).to(device)
    obs = proc.observables(events)
    assert set(obs) >= {"m_aa", "pt_a1", "pt_a2", "pt_g", "dr_aa", "m_aag"}
    assert bool((obs["pt_a1"] >= obs["pt_a2"]).all())
    torch.testing.assert_close(obs["m_aag"] ** 2, events.shat, rtol=1e-9, atol=1e-6)
    keep = proc.cuts(events)
    assert keep.dtype == torch.bool and keep.shape == (300,)
    assert 0 < int(keep.sum()) < 300
    assert bool((obs["pt_g"][keep] > 20).all())
    assert bool((obs["dr_aa"][keep] > 0.4).all())
    me = proc.matrix_element(events, proc.params(device=device))
    assert me.device.type == device.type and bool(torch.isfinite(me).all())


# -- 5. bad input --------------------------------------------------------------------------
@pytest.mark.parametrize("settings, exc, text", [
    ({"pt_photon_min": -1.0}, ValueError, "pt_photon_min"),
    ({"pt_gluon_min": 0.0}, ValueError, "pt_gluon_min"),
    ({"eta_max": float("nan")}, ValueError, "eta_max"),
    ({"delta_r_min": -0.1}, ValueError, "delta_r_min"),
    ({"delta_r_min": "0.4"}, TypeError, "delta_r_min"),
    ({"scale": "mt"}, ValueError, "scale"),
    ({"mu_fixed": 0.0}, ValueError, "mu_fixed"),
    ({"sqrt_s": 50.0}, ValueError, "pt_photon_min"),
    ({"pdf": 3}, TypeError, "pdf"),
])
def test_bad_settings(settings, exc, text):
    with pytest.raises(exc, match=text):
        get_process("diphoton-jet", **settings)


def test_bad_events_and_parameters():
    proc = DiphotonJet()
    params = proc.params()
    events = _random_events(4, seed=16)
    with pytest.raises(TypeError, match="events"):
        proc.matrix_element(events.momenta, params)
    two = HardEvents(events.momenta[:, :2], events.x1, events.x2, events.sqrt_s)
    with pytest.raises(ValueError, match=r"\(n, 3, 4\)"):
        proc.matrix_element(two, params)
    bad = events.momenta.clone()
    bad[1, 2, 3] = float("nan")
    with pytest.raises(ValueError, match="events.momenta: 1 NaN"):
        proc.matrix_element(HardEvents(bad, events.x1, events.x2, events.sqrt_s), params)
    with pytest.raises(ValueError, match="alpha_s"):
        proc.params({"alpha_s": 0.5})
    with pytest.raises(ValueError, match="unknown parameter"):
        proc.params({"alpha": 0.1})


@pytest.mark.slow
@pytest.mark.parametrize("scale", ["ht", "fixed"])
def test_cross_section_plain_agrees_with_vegas_high_statistics(scale):
    proc = get_process("diphoton-jet", scale=scale)
    plain = cross_section(proc, 1_000_000, seed=303)
    vegas = cross_section(proc, 1_000_000, seed=404, method="vegas")
    assert plain.rel_error < 0.008 and vegas.rel_error < 0.005
    # independent estimates; fails with probability ~6e-5 for Gaussian errors (4σ)
    assert abs(plain.value - vegas.value) < 4 * math.hypot(plain.error, vegas.error)
