"""QCD amplitudes with quarks (forward.amplitudes.quark_gluons) against independent references.

Every 2 → 2 QCD |M|² against the textbook spin- and colour-averaged forms (ESW Table 7.1,
crossing through all-outgoing momenta, 1e-10); the MHV closed forms of q q̄ + 3 gluons
(|A| per ordering and helicity, 1e-10); the Ward identity for q q̄ + 2, 3, 4 gluons; the
q q̄ g g colour matrix against its analytic form; q q̄ → g g g full colour against the
MHV amplitudes with the colour matrix, and gluon Bose symmetry; bad input.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from test_amplitudes import collision

import forward.amplitudes.quark_gluons as qg_module
from forward.amplitudes import (
    angle_product,
    four_quark_me2,
    polarisation_vectors,
    qcd_me2,
    quark_gluon_amplitudes,
    quark_gluon_me2,
    quark_line_amplitudes,
    quark_line_colour_matrix,
    quark_line_orderings,
    spinors,
    square_product,
)

F64 = torch.float64


def _mandelstam(k):
    def inv(a, b):
        return 2.0 * (k[:, a, 0] * k[:, b, 0] - (k[:, a, 1:] * k[:, b, 1:]).sum(-1))
    return inv(0, 1), inv(0, 2), inv(0, 3)


# physical p1 p2 -> p3 p4 with all-outgoing legs (-p1, -p2, p3, p4): an incoming quark
# is an outgoing antiquark. Averaged |M|²/g⁴ (ESW Table 7.1), and the number of
# initial colour and helicity states.
TEXTBOOK = {
    "qq'>qq'": ((-1, -2, 1, 2), 36, lambda s, t, u: 4 / 9 * (s * s + u * u) / (t * t)),
    "qq>qq": ((-1, -1, 1, 1), 36, lambda s, t, u: 4 / 9 * ((s * s + u * u) / (t * t) + (
        s * s + t * t) / (u * u)) - 8 / 27 * s * s / (u * t)),
    "qqbar>q'qbar'": ((-1, 1, 2, -2), 36, lambda s, t, u: 4 / 9 * (t * t + u * u) / (s * s)),
    "qqbar>qqbar": ((-1, 1, 1, -1), 36, lambda s, t, u: 4 / 9 * ((s * s + u * u) / (t * t) + (
        t * t + u * u) / (s * s)) - 8 / 27 * u * u / (s * t)),
    "qqbar>gg": ((-1, 1, 21, 21), 36, lambda s, t, u: 32 / 27 * (t * t + u * u) / (t * u)
                 - 8 / 3 * (t * t + u * u) / (s * s)),
    "gg>qqbar": ((21, 21, 1, -1), 256, lambda s, t, u: 1 / 6 * (t * t + u * u) / (t * u)
                 - 3 / 8 * (t * t + u * u) / (s * s)),
    "qg>qg": ((-1, 21, 1, 21), 96, lambda s, t, u: -4 / 9 * (s * s + u * u) / (s * u)
              + (u * u + s * s) / (t * t)),
    "qbar g>qbar g": ((1, 21, -1, 21), 96, lambda s, t, u: -4 / 9 * (s * s + u * u) / (s * u)
                      + (u * u + s * s) / (t * t)),
    # g(p1) q(p2) -> g(p3) q(p4): (p2 - p4)² = t, (p2 - p3)² = u as for q g -> q g
    "gq>gq": ((21, -3, 21, 3), 96, lambda s, t, u: -4 / 9 * (s * s + u * u) / (s * u)
              + (u * u + s * s) / (t * t)),
    "gq>qg": ((21, -3, 3, 21), 96, lambda s, t, u: -4 / 9 * (s * s + t * t) / (s * t)
              + (t * t + s * s) / (u * u)),
    "gg>gg": ((21, 21, 21, 21), 256, lambda s, t, u: 4.5 * (3 - t * u / (s * s)
                                                            - s * u / (t * t) - s * t / (u * u))),
}


@pytest.mark.parametrize("name", sorted(TEXTBOOK))
@pytest.mark.parametrize("generic", [False, True])
def test_two_to_two_against_textbook(name, generic):
    pids, states, form = TEXTBOOK[name]
    k = collision(4, 20, 5, generic=generic)
    s, t, u = _mandelstam(k)
    ours = qcd_me2(k, pids, g_s=1.3) / states
    ref = form(s, t, u) * 1.3**4
    assert ((ours - ref).abs() / ref).max() < 1e-10


def test_two_to_two_float32():
    k = collision(4, 20, 6)
    for pids in ((-1, 1, 21, 21), (-1, -1, 1, 1)):
        a = qcd_me2(k, pids)
        b = qcd_me2(k.float(), pids)
        assert b.dtype == torch.float32
        assert ((b.double() - a).abs() / a).max() < 1e-4


def test_quark_line_colour_matrix():
    # n = 1: Tr(T^a T^a) = N² - 1; n = 2: 4 Tr(t^a t^b t^b t^a) = 4 C_F² N and
    # 4 Tr(t^a t^b t^a t^b) = -4 C_F / 2
    for nc in (2, 3, 4):
        cf = (nc * nc - 1) / (2 * nc)
        assert torch.allclose(quark_line_colour_matrix(1, nc), torch.tensor(
            [[nc * nc - 1.0]], dtype=F64))
        ref = torch.tensor([[4 * cf * cf * nc, -2 * cf], [-2 * cf, 4 * cf * cf * nc]],
                           dtype=F64)
        assert torch.allclose(quark_line_colour_matrix(2, nc), ref, rtol=1e-12)
    # n = 3, first row C_{id,τ} = 8 Tr(t^0 t^1 t^2 t^τ3 t^τ2 t^τ1) by hand (Fierz):
    # 8 C_F³ N, -4 C_F², -4 C_F², (N²-1) - 4 C_F², same, (N²-1) + 2 C_F / N
    for nc in (2, 3, 4):
        cf = (nc * nc - 1) / (2 * nc)
        a = nc * nc - 1 - 4 * cf * cf
        ref = torch.tensor([8 * cf**3 * nc, -4 * cf * cf, -4 * cf * cf, a, a,
                            nc * nc - 1 + 2 * cf / nc], dtype=F64)
        c3 = quark_line_colour_matrix(3, nc)
        assert torch.allclose(c3[0], ref, rtol=1e-12)
        assert torch.allclose(c3, c3.T)
    assert quark_line_orderings(3).shape == (6, 3)
    with pytest.raises(ValueError, match="n"):
        quark_line_colour_matrix(6)


def _mhv_reference(k, order, hel, chirality):
    """|A(q, σ, q̄)| from the MHV (one gluon of the minority helicity) closed forms."""
    lam, lamt = spinors(k)
    n = k.shape[1] - 2
    minus = [i for i in range(n) if hel[i] == -1]
    plus = [i for i in range(n) if hel[i] == 1]
    ring = [0] + [2 + g for g in order] + [1]  # q, gluons, q̄ (cyclic)
    if len(minus) == 1:  # MHV: angle brackets
        prod, spin = angle_product, lam
        i = 2 + minus[0]
        first, second = (0, 1) if chirality == 0 else (1, 0)  # L: <q i>^3 <q̄ i>
    elif len(plus) == 1:  # anti-MHV: square brackets, the other chirality's form
        prod, spin = square_product, lamt
        i = 2 + plus[0]
        first, second = (1, 0) if chirality == 0 else (0, 1)
    else:
        return None
    num = prod(spin[:, first], spin[:, i]) ** 3 * prod(spin[:, second], spin[:, i])
    den = 1.0
    for a, b in zip(ring, ring[1:] + ring[:1], strict=True):
        den = den * prod(spin[:, a], spin[:, b])
    return (num / den).abs()


@pytest.mark.parametrize("generic", [False, True])
def test_mhv_closed_forms_three_gluons(generic):
    # q(-p_b) q̄(-p_a) g g g: legs (q, q̄) are the crossed beams
    k = collision(5, 8, 7, generic=generic)
    hel = torch.tensor(list(itertools.product((-1, 1), repeat=3)))
    orders = quark_line_orderings(3)
    amps = quark_gluon_amplitudes(k, orders, hel)
    checked = 0
    for o, order in enumerate(orders.tolist()):
        for h, hh in enumerate(hel.tolist()):
            for c in range(2):
                ref = _mhv_reference(k, order, hh, c)
                if ref is None:  # all gluons of one helicity: vanishes
                    size = _mhv_reference(k, order, [-1, 1, 1], 0)
                    assert (amps[:, o, h, c].abs() / size).max() < 1e-10
                    continue
                assert ((amps[:, o, h, c].abs() - ref).abs() / ref).max() < 1e-10
                checked += 1
    assert checked == 6 * 6 * 2


def test_qqbar_to_three_gluons_full_colour():
    """Σ|M|² of q q̄ g g g: Bose symmetry, C symmetry, and its diagonal colour part
    Σ_σ C_σσ |A_σ|² against the MHV closed forms."""
    k = collision(5, 10, 8, generic=True)
    me = quark_gluon_me2(k, g_s=1.1)
    assert bool((me > 0).all())
    # Bose symmetry of the gluons, and C symmetry (q <-> q̄)
    for perm in ([0, 1, 3, 2, 4], [0, 1, 4, 3, 2], [1, 0, 2, 3, 4]):
        assert ((quark_gluon_me2(k[:, perm], g_s=1.1) - me).abs() / me).max() < 1e-10
    hel = torch.tensor(list(itertools.product((-1, 1), repeat=3)))
    orders = quark_line_orderings(3)
    amps = quark_gluon_amplitudes(k, orders, hel)
    diag = quark_line_colour_matrix(3).diagonal()
    ours = (amps.abs() ** 2 * diag[None, :, None, None]).sum((1, 2, 3))
    ref = 0.0
    for o, order in enumerate(orders.tolist()):
        for hh in hel.tolist():
            for c in range(2):
                r = _mhv_reference(k, order, hh, c)
                if r is not None:
                    ref = ref + r**2 * diag[o]
    assert ((ours - ref).abs() / ref).max() < 1e-10


@pytest.mark.parametrize("n", [2, 3, 4])
def test_abelian_sum_against_spinor_strings(n):
    """Σ_σ A(q, σ, q̄) is the amplitude with n photons (the non-abelian vertices cancel):
    against the independent spinor strings of forward.amplitudes.quarks, |Σ_σ A| =
    2^(-n/2) |S| (one factor 1/√2 per colour-ordered vertex)."""
    k = collision(n + 2, 5, 50 + n, generic=True)
    hel = torch.tensor(list(itertools.product((-1, 1), repeat=n)))
    amps = quark_gluon_amplitudes(k, quark_line_orderings(n), hel).sum(1)
    kg = k[:, 2:]
    eps = polarisation_vectors(kg, k[:, :1].expand_as(kg))
    refs = []
    for hh in hel.tolist():
        vec = eps[:, torch.arange(n), (torch.tensor(hh) + 1) // 2]
        refs.append(quark_line_amplitudes(k[:, 0], k[:, 1], kg, vec).abs() * 2.0 ** (-n / 2))
    refs = torch.stack(refs, 1)  # (N, helicities, 2)
    scale = refs.amax((1, 2), keepdim=True)  # vanishing configurations: rounding level
    assert ((amps.abs() - refs).abs() / scale).max() < 1e-10


@pytest.mark.parametrize("n", [2, 3, 4])
def test_ward_identity(n, monkeypatch):
    k = collision(n + 2, 4, 40 + n, generic=True)
    hel = torch.tensor([[-1] + [1] * (n - 1), [1, -1] + [-1] * (n - 2)])
    orders = quark_line_orderings(n)[:3]
    size = quark_gluon_amplitudes(k, orders, hel).abs()
    assert float(size.min()) > 0
    for i in range(n):
        def eps_k(kg, q, i=i):
            eps = polarisation_vectors(kg, q).clone()
            eps[:, i] = kg[:, i, None].to(eps.dtype)
            return eps

        monkeypatch.setattr(qg_module, "polarisation_vectors", eps_k)
        rel = quark_gluon_amplitudes(k, orders, hel).abs() / (size * k[:, 2 + i, 0].abs()[
            :, None, None, None])
        assert rel.max() < 1e-10, (n, i)
        monkeypatch.undo()


def test_bad_input():
    k = collision(4, 3, 9)
    with pytest.raises(ValueError, match="pids"):
        qcd_me2(k, (1, 1, 21, 21))  # flavour not conserved
    with pytest.raises(ValueError, match="pids"):
        qcd_me2(k, (1, -1, 21))
    with pytest.raises(ValueError, match="pids"):
        qcd_me2(k, (1, -1, 22, 21))
    k6 = collision(6, 3, 9)
    with pytest.raises(ValueError, match="not supported"):
        qcd_me2(k6, (1, -1, 2, -2, 21, 21))
    with pytest.raises(TypeError, match="identical"):
        four_quark_me2(k, identical=1)
    bad = k.clone()
    bad[0, 2, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        quark_gluon_me2(bad)
    forward_scattering = torch.stack([k[:, 0], k[:, 1], -k[:, 1], -k[:, 0]], 1)  # t = 0
    with pytest.raises(ValueError, match="s_ij = 0"):
        quark_gluon_me2(forward_scattering)
    with pytest.raises(ValueError, match="s_ij = 0"):
        four_quark_me2(forward_scattering, identical=False)
