"""V + n gluons on one quark line (forward.amplitudes.vector_bosons) against independent references.

* n = 0: the hand-written Drell–Yan |M|² of forward.processes.drell_yan (1e-10);
* n = 1: Dirac traces with explicit 4×4 γ matrices (two Feynman diagrams, lepton tensor,
  gluon polarisation sum -g) per quark and lepton chirality (1e-10);
* n = 1 with the V polarisation sum: the textbook q q̄ → V g, (t² + u² + 2 s m²)/(t u),
  and its crossing q g → V q, -(s² + u² + 2 t m²)/(s u) (1e-10);
* the Ward identity (a gluon polarisation replaced by its momentum gives 0) for n = 1..3,
  and current conservation (V → q_V gives 0);
* gluon Bose symmetry for n = 2, 3; float32 against float64; bad input.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from forward.amplitudes import (
    charged_current_couplings,
    current_amplitudes,
    minkowski_dot,
    neutral_current_couplings,
    polarisation_vectors,
    sandwich,
    spinors,
    vector_boson_amplitudes,
    vector_boson_line_sums,
    vector_boson_me2,
)
from forward.phasespace import Rambo
from forward.processes.drell_yan import DrellYan
from forward.processes.electroweak import alpha_em, z_width

F64 = torch.float64
C128 = torch.complex128
METRIC = torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=F64)


def _final(masses, npts, seed, sqrt_shat=500.0):
    gen = torch.Generator().manual_seed(seed)
    r = torch.rand(npts, 3 * len(masses) - 4, generator=gen, dtype=F64)
    big_p = torch.tensor([sqrt_shat, 0, 0, 0], dtype=F64).expand(npts, 4)
    out, _ = Rambo(masses).forward(big_p, r)
    e = sqrt_shat / 2
    pa = torch.tensor([e, 0, 0, e], dtype=F64).expand(npts, 4)
    pb = torch.tensor([e, 0, 0, -e], dtype=F64).expand(npts, 4)
    return pa, pb, out


def _sq(k):
    return minkowski_dot(k, k)


def _lepton_level(n, npts, seed):
    """q(pa) q̄(pb) → ℓ⁻ ℓ⁺ + n g as all-outgoing (q, q̄, ℓ⁻, ℓ⁺, g...) = (-pb, -pa, ...)."""
    pa, pb, k = _final((0.0,) * (n + 2), npts, seed)
    return torch.cat([-pb.unsqueeze(1), -pa.unsqueeze(1), k], 1)


# -- n = 0 against the hand-written Drell–Yan -----------------------------------------


def test_n0_equals_drell_yan_matrix_element():
    proc = DrellYan(leptons="ee", mode="gamma_z")
    pars = proc.params()
    gen = torch.Generator().manual_seed(3)
    events, _ = proc.phase_space()[0].forward(torch.rand(200, 4, generator=gen, dtype=F64))
    ref = proc.matrix_element(events, pars)  # averaged, (n, channels)
    pa = torch.stack([events.x1 * events.sqrt_s / 2, 0 * events.x1, 0 * events.x1,
                      events.x1 * events.sqrt_s / 2], -1)
    pb = torch.stack([events.x2 * events.sqrt_s / 2, 0 * events.x2, 0 * events.x2,
                      -events.x2 * events.sqrt_s / 2], -1)
    shat = events.shat
    alpha = alpha_em(shat)
    width = z_width("running")
    for col, (a, _b) in enumerate(proc.flavour_channels):
        # the incoming quark is the outgoing antiquark with -p
        q_out, qb_out = (-pb, -pa) if a > 0 else (-pa, -pb)
        k = torch.stack([q_out, qb_out, events.momenta[:, 0], events.momenta[:, 1]], 1)
        c = neutral_current_couplings(shat, abs(a), 11, alpha, z_width=width)
        me = vector_boson_me2(k, c) / 36.0
        torch.testing.assert_close(me, ref[:, col], rtol=1e-10, atol=0)


# -- n = 1 against Dirac traces --------------------------------------------------------


def _gammas():
    i2 = torch.eye(2, dtype=C128)
    z2 = torch.zeros(2, 2, dtype=C128)
    sig = [torch.tensor([[0, 1], [1, 0]], dtype=C128),
           torch.tensor([[0, -1j], [1j, 0]], dtype=C128),
           torch.tensor([[1, 0], [0, -1]], dtype=C128)]
    g0 = torch.cat([torch.cat([z2, i2], 1), torch.cat([i2, z2], 1)], 0)
    gi = [torch.cat([torch.cat([z2, s], 1), torch.cat([-s, z2], 1)], 0) for s in sig]
    g5 = torch.diag(torch.tensor([-1, -1, 1, 1], dtype=C128))
    return torch.stack([g0, *gi]), g5


def _slash(k, gam):
    return torch.einsum("nm,mij->nij", (k * METRIC).to(C128), gam)


def _bar(a, g0):
    return g0 @ a.conj().transpose(-1, -2) @ g0


def _trace_me2(k):
    """Σ|M|² per (X, Y) of q q̄ ℓ ℓ̄ g (all outgoing) from Dirac traces, unit couplings."""
    gam, g5 = _gammas()
    proj = [(torch.eye(4, dtype=C128) - g5) / 2, (torch.eye(4, dtype=C128) + g5) / 2]
    kq, kqb, kf, kfb, kg = k.unbind(1)
    qv = kf + kfb
    s1, s2 = _sq(kq + kg), _sq(kq + qv)
    p1, p2 = _slash(kq + kg, gam), _slash(kq + qv, gam)
    # Γ^{μρ}: μ the vector's index, ρ the gluon's (upper)
    gamma_mr = (torch.einsum("rij,njk,mkl->nmril", gam, p1, gam) / s1[:, None, None, None, None]
                + torch.einsum("mij,njk,rkl->nmril", gam, p2, gam) / s2[:, None, None, None, None])
    sq, sqb, sf, sfb = (_slash(x, gam) for x in (kq, kqb, kf, kfb))
    out = torch.zeros(k.shape[0], 2, 2, dtype=F64)
    for x in range(2):
        a = gamma_mr @ proj[x]
        abar = _bar(a, gam[0])
        had = torch.einsum("nij,nmrjk,nkl,nvsli->nmrvs", sq, a, sqb, abar)  # H^{μρ;νσ}
        for y in range(2):
            b = gam @ proj[y]
            lep = torch.einsum("nij,mjk,nkl,vli->nmv", sf, b, sfb, _bar(b, gam[0]))
            total = torch.einsum("nmrvr,nmv,m,v,r->n", had, lep, METRIC.to(C128),
                                 METRIC.to(C128), -METRIC.to(C128))
            out[:, x, y] = total.real
    return out


def test_n1_against_dirac_traces():
    k = _lepton_level(1, 20, seed=5)
    sums = vector_boson_line_sums(k)
    ref = 4.0 * _trace_me2(k)  # colour: Σ_a Tr(t^a t^a) = C_F N = 4
    torch.testing.assert_close(sums, ref, rtol=1e-10, atol=0)
    assert bool((ref > 0).all())


# -- n = 1 with the V polarisation sum: textbook q q̄ → V g and its crossing -----------


def _polarisation_summed(partons, qv, m2):
    eye = torch.eye(4, dtype=C128).expand(partons.shape[0], 4, 4).contiguous()
    amps = current_amplitudes(partons, qv, eye, torch.zeros(1, 1, dtype=torch.int64),
                              torch.tensor([[-1], [1]]))[:, 0]  # (N, hel, X, μ): A_μ
    pol = -torch.diag(METRIC) + torch.einsum("ni,nj->nij", qv, qv) / m2  # upper indices
    # colour N² - 1 = 8 (Tr(T^a T^b) = δ^{ab}), summed over both chiralities
    return 8.0 * torch.einsum("nhxi,nij,nhxj->n", amps, pol.to(C128), amps.conj()).real


def test_n1_polarisation_sum_textbook_and_crossing():
    m = 80.0
    pa, pb, k = _final((m, 0.0), 16, seed=7)
    qv, kg = k[:, 0], k[:, 1]
    s = _sq(pa + pb)
    # q(pa) q̄(pb) → V g: 32 (t² + u² + 2 s m²)/(t u), t = (pa - kg)², u = (pb - kg)²
    t, u = _sq(pa - kg), _sq(pb - kg)
    got = _polarisation_summed(torch.stack([-pb, -pa, kg], 1), qv, m * m)
    torch.testing.assert_close(got, 32 * (t * t + u * u + 2 * s * m * m) / (t * u),
                               rtol=1e-10, atol=0)
    # crossing: q(pa) g(pb) → V q(kg): -32 (s² + u² + 2 t m²)/(s u), u = (pb - kg)²
    got = _polarisation_summed(torch.stack([kg, -pa, -pb], 1), qv, m * m)
    torch.testing.assert_close(got, -32 * (s * s + u * u + 2 * t * m * m) / (s * u),
                               rtol=1e-10, atol=0)


# -- gauge invariance, symmetry, dtypes -------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3])
def test_ward_identity_and_current_conservation(n):
    k = _lepton_level(n, 6, seed=10 + n)
    partons = torch.cat([k[:, :2], k[:, 4:]], 1)
    qv = k[:, 2] + k[:, 3]
    lf, ltf = spinors(k[:, 2])
    la, lta = spinors(k[:, 3])
    cur = torch.stack([sandwich(lf, lta), sandwich(la, ltf)], 1)
    orders = torch.tensor(list(itertools.permutations(range(n))))
    hel = torch.tensor(list(itertools.product((-1, 1), repeat=n)))
    ref = current_amplitudes(partons, qv, cur, orders, hel)
    scale = ref.abs().amax()
    kg = partons[:, 2:]
    eps = polarisation_vectors(kg, partons[:, :1].expand_as(kg))
    for i in range(n):
        eps_w = eps.clone()
        eps_w[:, i] = kg[:, i].to(C128).unsqueeze(1).expand(-1, 2, -1)
        amp = current_amplitudes(partons, qv, cur, orders, hel, gluon_polarisations=eps_w)
        # every colour-ordered amplitude is gauge invariant on its own (ε_i → k_i: GeV¹)
        assert float(amp.abs().max()) < 1e-10 * float(scale) * float(kg[:, i, 0].abs().max())
    # V → q_V: current conservation of the quark line
    amp = current_amplitudes(partons, qv, qv.to(C128).unsqueeze(1), orders, hel)
    assert float(amp.abs().max()) < 1e-10 * float(scale) * float(qv[:, 0].abs().max())


@pytest.mark.parametrize("n", [2, 3])
def test_bose_symmetry_of_line_sums(n):
    k = _lepton_level(n, 8, seed=20 + n)
    sums = vector_boson_line_sums(k)
    perm = [0, 1, 2, 3, *reversed(range(4, 4 + n))]
    torch.testing.assert_close(vector_boson_line_sums(k[:, perm]), sums, rtol=1e-10, atol=0)


def test_float32_against_float64():
    k = _lepton_level(2, 32, seed=31)
    ref = vector_boson_line_sums(k)
    got = vector_boson_line_sums(k.float())
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), ref, rtol=2e-3, atol=0)


def test_charged_current_only_left_handed():
    k = _lepton_level(1, 8, seed=41)
    q2 = _sq(k[:, 2] + k[:, 3])
    c = charged_current_couplings(q2, 0.974, 1 / 128.0)
    assert bool((c[:, 1] == 0).all()) and bool((c[:, :, 1] == 0).all())
    me = vector_boson_me2(k, c, g_s=1.2)
    ref = vector_boson_line_sums(k)[:, 0, 0] * c[:, 0, 0].abs() ** 2 * 1.2**2
    torch.testing.assert_close(me, ref, rtol=1e-13, atol=0)
    # |c|² is the W Breit–Wigner: e⁴|V|²/(4 s_W⁴) / ((q² - M²)² + (q² Γ/M)²)
    e2 = 4 * math.pi / 128.0
    bw = ((q2 - 80.385**2) ** 2 + (q2 * 2.085 / 80.385) ** 2)
    torch.testing.assert_close(c[:, 0, 0].abs() ** 2,
                               e2**2 * 0.974**2 / (4 * 0.2312**2) / bw, rtol=1e-12, atol=0)


def test_bad_input():
    k = _lepton_level(1, 4, seed=50)
    bad = k.clone()
    bad[0, 4, 1] = float("nan")
    with pytest.raises(ValueError, match="momenta"):
        vector_boson_line_sums(bad)
    coll = k.clone()
    coll[:, 4] = -(coll[:, 0] + coll[:, 1] + coll[:, 2] + coll[:, 3])
    coll[:, 2] = coll[:, 3]  # collinear leptons
    with pytest.raises(ValueError, match="momenta"):
        vector_boson_line_sums(coll)
    with pytest.raises(ValueError, match="momenta"):
        vector_boson_line_sums(_lepton_level(6, 2, seed=1))
    with pytest.raises(ValueError, match="quark_pid"):
        neutral_current_couplings(_sq(k[:, 2] + k[:, 3]), 21, 11, 0.0078)
    with pytest.raises(ValueError, match="mode"):
        neutral_current_couplings(_sq(k[:, 2] + k[:, 3]), 1, 11, 0.0078, mode="zz")
    with pytest.raises(ValueError, match="q2"):
        charged_current_couplings(-_sq(k[:, 2] + k[:, 3]), 1.0, 0.0078)
    with pytest.raises(ValueError, match="couplings"):
        vector_boson_me2(k, torch.ones(3, dtype=C128))
    with pytest.raises(ValueError, match="max_batch"):
        vector_boson_amplitudes(k, torch.zeros(1, 1, dtype=torch.int64),
                                torch.ones(1, 1, dtype=torch.int64), max_batch=0)
    with pytest.raises(ValueError, match="leg_orders"):
        vector_boson_amplitudes(k, torch.ones(1, 1, dtype=torch.int64),
                                torch.ones(1, 1, dtype=torch.int64))


@pytest.mark.parametrize("n", [0, 2])
def test_chunking_does_not_change_results(n):
    k = _lepton_level(n, 9, seed=60 + n)
    torch.testing.assert_close(vector_boson_line_sums(k, max_batch=5),
                               vector_boson_line_sums(k), rtol=1e-13, atol=0)
