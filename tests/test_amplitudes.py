"""forward.amplitudes against independent references.

Parke–Taylor MHV amplitudes (n = 4 ... 8, complex, 1e-10), the vanishing of all-plus
and one-minus amplitudes, the Ward identity (ε_i -> k_i), the textbook g g -> g g and
the Parke–Taylor five-gluon |M|² summed over colours and helicities, the two colour
bases against each other, leading against full colour, Bose symmetry and crossing
(all-outgoing momenta), Lorentz invariance, float32, bad input.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from _helpers import five_gluon_parke_taylor, seeded

from forward.amplitudes import (
    colour_matrix,
    colour_ordered_amplitude,
    gluon_amplitudes,
    gluon_me2,
    helicity_configurations,
    minkowski_dot,
    orderings,
    parke_taylor,
    polarisation_vectors,
    sandwich,
    spinors,
    square_product,
    su_n_generators,
)
from forward.amplitudes.spinors import angle_product
from forward.phasespace.rambo import Rambo

F64 = torch.float64


def lorentz(gen: torch.Generator, dtype=F64) -> torch.Tensor:
    """A random proper orthochronous Lorentz matrix (boost of rapidity ≲ 1 after a rotation)."""
    a = torch.randn(3, 3, generator=gen, dtype=F64)
    rot, _ = torch.linalg.qr(a)
    rot = rot * torch.sign(torch.det(rot))
    rap = 0.8 * torch.randn(3, generator=gen, dtype=F64)
    eta = rap.norm()
    nvec = rap / eta
    boost = torch.eye(4, dtype=F64)
    boost[0, 0] = torch.cosh(eta)
    boost[0, 1:] = boost[1:, 0] = torch.sinh(eta) * nvec
    boost[1:, 1:] += (torch.cosh(eta) - 1) * torch.outer(nvec, nvec)
    rot4 = torch.eye(4, dtype=F64)
    rot4[1:, 1:] = rot
    return (boost @ rot4).to(dtype)


def transform(k: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    out = k @ lam.T
    # put each transformed momentum back exactly on the light cone (E from |p⃗|)
    return torch.cat([torch.sign(out[..., :1]) * out[..., 1:].norm(dim=-1, keepdim=True),
                      out[..., 1:]], -1)


def collision(n: int, npts: int, seed: int, *, generic: bool = False, dtype=F64) -> torch.Tensor:
    """All-outgoing momenta (npts, n, 4) of g g -> (n-2) g at √ŝ = 500 GeV.

    Legs 0, 1 are the crossed beams (-p along -z and +z, negative energy), legs 2..n-1
    a RAMBO point. ``generic``: a random Lorentz transformation moves all legs off the
    z axis.
    """
    gen = seeded(seed)
    r = torch.rand(npts, 3 * (n - 2) - 4, generator=gen, dtype=F64)
    big_p = torch.tensor([500.0, 0, 0, 0], dtype=F64).expand(npts, 4)
    out, _ = Rambo([0.0] * (n - 2)).forward(big_p, r)
    beams = torch.tensor([[-250.0, 0, 0, -250.0], [-250.0, 0, 0, 250.0]], dtype=F64)
    k = torch.cat([beams.expand(npts, 2, 4), out], 1)
    if generic:
        k = transform(k, lorentz(gen))
    return k.to(dtype)


def sij(k, a, b):
    return 2.0 * minkowski_dot(k[:, a], k[:, b])


# -- spinors -------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-13), (torch.float32, 1e-5)])
def test_spinor_identities(dtype, tol):
    k = collision(6, 5, 1, generic=True, dtype=dtype)  # includes two negative energies
    k_axis = collision(4, 3, 2, dtype=dtype)  # beams exactly along ±z
    for mom in (k, k_axis):
        lam, lamt = spinors(mom)
        scale = mom[..., 0].abs().amax() ** 2
        assert (sandwich(lam, lamt) - 2 * mom).abs().max() / scale.sqrt() < tol
        n = mom.shape[1]
        for a, b in itertools.combinations(range(n), 2):
            prod = angle_product(lam[:, a], lam[:, b]) * square_product(lamt[:, b], lamt[:, a])
            assert ((prod - sij(mom, a, b)).abs() / scale).max() < tol
    # positive energies: [ij] = -<ij>*
    lam, lamt = spinors(k[:, 2:])
    a = angle_product(lam[:, 0], lam[:, 1])
    b = square_product(lamt[:, 0], lamt[:, 1])
    assert ((b + a.conj()).abs() / a.abs()).max() < tol


def test_polarisation_vectors():
    k = collision(5, 4, 3, generic=True)
    q = k.roll(-1, dims=1)
    eps = polarisation_vectors(k, q)
    em, ep = eps[..., 0, :], eps[..., 1, :]
    tol = 1e-12
    for e in (em, ep):
        assert minkowski_dot(e, k).abs().max() / k[..., 0].abs().max() < tol
        assert minkowski_dot(e, q).abs().max() / q[..., 0].abs().max() < tol
        assert minkowski_dot(e, e).abs().max() < tol
    assert (minkowski_dot(ep, em) + 1).abs().max() < tol
    # a different reference momentum shifts ε by a multiple of k
    eps2 = polarisation_vectors(k, k.roll(-2, dims=1))
    diff = eps2 - eps
    ratio = diff[..., 1:2] / k[..., 1:2].unsqueeze(-2)
    assert (diff - ratio * k.unsqueeze(-2)).abs().max() < 1e-10


# -- colour-ordered amplitudes --------------------------------------------------------------


def _amplitude(k, hel):
    eps = polarisation_vectors(k, k.roll(-1, dims=1))
    index = ((torch.as_tensor(hel) + 1) // 2)
    return colour_ordered_amplitude(k, eps[:, torch.arange(k.shape[1]), index])


@pytest.mark.parametrize("n", [4, 5, 6, 7, 8])
@pytest.mark.parametrize("generic", [False, True])
def test_parke_taylor(n, generic):
    k = collision(n, 6, 10 + n, generic=generic)
    pairs = [(0, 1), (0, 2), (1, n - 1), (2, n // 2 + 1)]
    for i, j in pairs:
        hel = [1] * n
        hel[i] = hel[j] = -1
        amp = _amplitude(k, hel)
        ref = parke_taylor(k, (i, j))
        assert ((amp - ref).abs() / ref.abs()).max() < 1e-10, (n, i, j)


@pytest.mark.parametrize("n", [4, 5, 6, 7])
def test_all_plus_and_one_minus_vanish(n):
    k = collision(n, 4, 20 + n, generic=True)
    size = parke_taylor(k, (0, 1)).abs()
    for hel in [[1] * n, [-1] + [1] * (n - 1), [1] * (n - 1) + [-1], [-1] * n]:
        assert (_amplitude(k, hel).abs() / size).max() < 1e-10


@pytest.mark.parametrize("n", [4, 5, 6, 7])
def test_ward_identity(n):
    """ε_i -> k_i gives zero, for MHV and (n >= 6) NMHV helicities."""
    k = collision(n, 4, 30 + n, generic=True)
    eps = polarisation_vectors(k, k.roll(-1, dims=1))
    configs = [[-1, -1] + [1] * (n - 2)]
    if n >= 6:
        configs.append([-1, 1, -1, 1, -1] + [1] * (n - 5))
    for hel in configs:
        e = eps[:, torch.arange(n), (torch.tensor(hel) + 1) // 2].clone()
        size = colour_ordered_amplitude(k, e).abs()
        assert float(size.min()) > 0
        for i in range(n):
            e_k = e.clone()
            e_k[:, i] = k[:, i].to(e.dtype)
            # ε_i = k_i carries the scale of k_i: compare with |A| · E_i
            rel = colour_ordered_amplitude(k, e_k).abs() / (size * k[:, i, 0].abs())
            assert rel.max() < 1e-10, (n, hel, i)


# -- colour algebra ---------------------------------------------------------------------


@pytest.mark.parametrize("nc", [2, 3, 4])
def test_generators_and_four_gluon_colour_matrix(nc):
    t = su_n_generators(nc)
    gram = torch.einsum("aij,bji->ab", t, t)
    assert torch.allclose(gram, 0.5 * torch.eye(nc * nc - 1, dtype=gram.dtype), atol=1e-14)
    assert torch.allclose(t, t.conj().transpose(-1, -2))
    cmat = colour_matrix(4, "trace", nc)
    # known entries: Σ |Tr(T^a T^b T^c T^d)|² = (N²-1)(N⁴-3N²+3)/N² (Tr T^a T^b = δ^ab)
    assert cmat.diagonal() == pytest.approx(
        [(nc**2 - 1) * (nc**4 - 3 * nc**2 + 3) / nc**2] * 6, rel=1e-12)
    assert torch.equal(cmat, cmat.T)
    assert colour_matrix(3, "ddm", nc).item() == pytest.approx(2 * nc * (nc**2 - 1), rel=1e-12)


# -- summed |M|² against closed forms ---------------------------------------------------------


def gg_to_gg_textbook(k):
    """Σ over colours and helicities: 256 · g⁴ (9/2)(3 - tu/s² - su/t² - st/u²), g = 1."""
    s, t, u = sij(k, 0, 1), sij(k, 0, 2), sij(k, 0, 3)
    return 256 * 4.5 * (3 - t * u / s**2 - s * u / t**2 - s * t / u**2)


@pytest.mark.parametrize("basis", ["ddm", "trace"])
def test_gg_to_gg_textbook(basis):
    k = collision(4, 20, 40)
    ref = gg_to_gg_textbook(k)
    for kw in ({"colour": "full", "basis": basis}, {"colour": "full", "basis": basis,
                                                    "parity": False}):
        assert ((gluon_me2(k, **kw) - ref).abs() / ref).max() < 1e-10
    # the coupling enters as g_s⁴
    g = torch.full((20,), 1.3, dtype=F64)
    assert ((gluon_me2(k, basis=basis, g_s=g) - 1.3**4 * ref).abs() / ref).max() < 1e-10


@pytest.mark.parametrize("basis", ["ddm", "trace"])
@pytest.mark.parametrize("generic", [False, True])
def test_five_gluons_parke_taylor(basis, generic):
    k = collision(5, 20, 50, generic=generic)
    ref = five_gluon_parke_taylor(k)
    assert ((gluon_me2(k, basis=basis) - ref).abs() / ref).max() < 1e-10


@pytest.mark.parametrize("nc", [2, 3, 4])
@pytest.mark.parametrize("n", [4, 5])
def test_leading_colour_exact_below_six(n, nc):
    """For n <= 5 the colour sum is exactly the leading-colour form, for any N."""
    k = collision(n, 5, 60 + n, generic=True)
    full = gluon_me2(k, nc=nc)
    assert ((gluon_me2(k, colour="leading", nc=nc) - full).abs() / full).max() < 1e-10
    if n == 5:
        assert ((five_gluon_parke_taylor(k, nc) - full).abs() / full).max() < 1e-10


def test_six_gluons_bases_agree_and_leading_colour_differs():
    k = collision(6, 6, 70, generic=True)
    ddm = gluon_me2(k, basis="ddm")
    trace = gluon_me2(k, basis="trace", parity=False)
    assert ((ddm - trace).abs() / ddm).max() < 1e-10
    # leading colour misses O(1/N²) terms from n = 6 on: a genuine, visible difference
    lead = gluon_me2(k, colour="leading")
    assert ((lead - ddm).abs() / ddm).max() > 1e-4
    # the leading-colour sum uses reflection; against all (n-1)! = 120 orderings and all
    # 64 helicities explicitly
    hel = helicity_configurations(6, nonvanishing=False)
    amps = gluon_amplitudes(k, orderings(6, "trace"), hel)
    explicit = (amps.abs() ** 2).sum((1, 2)) * 3**4 * 8
    assert ((lead - explicit).abs() / explicit).max() < 1e-10


# -- symmetries ---------------------------------------------------------------------------


@pytest.mark.parametrize("n", [4, 5, 6, 7])
def test_bose_symmetry_crossing_and_lorentz_invariance(n):
    """|M|² is a symmetric function of all-outgoing momenta (crossing = relabelling),
    even under k -> -k, and Lorentz invariant."""
    npts = 3 if n < 7 else 1
    gen = seeded(80 + n)
    k = collision(n, npts, 80 + n)
    ref = gluon_me2(k)
    perm = torch.randperm(n, generator=gen)
    # incoming legs become legs perm⁻¹(0), perm⁻¹(1): a different crossing of the same function
    assert ((gluon_me2(k[:, perm]) - ref).abs() / ref).max() < 1e-10
    assert ((gluon_me2(-k) - ref).abs() / ref).max() < 1e-10
    moved = transform(k, lorentz(gen))
    assert ((gluon_me2(moved) - ref).abs() / ref).max() < 1e-10


def test_crossing_to_quark_free_channel_with_other_incoming_pair():
    """g g -> g g with the incoming pair as legs (0, 2): the textbook form in the crossed
    invariants, s <-> t."""
    k = collision(4, 10, 90)
    crossed = k[:, [0, 2, 1, 3]]
    s, t, u = sij(crossed, 0, 2), sij(crossed, 0, 1), sij(crossed, 0, 3)
    ref = 256 * 4.5 * (3 - t * u / s**2 - s * u / t**2 - s * t / u**2)
    assert ((gluon_me2(crossed) - ref).abs() / ref).max() < 1e-10


# -- dtypes, devices, bad input ------------------------------------------------------------------


def test_float32_agrees_with_float64():
    k = collision(5, 10, 100, generic=True)
    ref = gluon_me2(k)
    got = gluon_me2(k.float())
    assert got.dtype == torch.float32
    assert ((got.double() - ref).abs() / ref).max() < 1e-3
    amps = gluon_amplitudes(k.float(), orderings(5), helicity_configurations(5))
    assert amps.dtype == torch.complex64


def test_chunking_does_not_change_results():
    k = collision(6, 5, 110, generic=True)
    assert torch.allclose(gluon_me2(k, max_batch=64), gluon_me2(k), rtol=1e-13, atol=0)


@pytest.mark.gpu
def test_cuda_matches_cpu():
    k = collision(6, 50, 120, generic=True)
    cpu = gluon_me2(k)
    gpu = gluon_me2(k.cuda())
    assert gpu.device.type == "cuda"
    assert ((gpu.cpu() - cpu).abs() / cpu).max() < 1e-10


def test_bad_input():
    k = collision(5, 3, 130)
    with pytest.raises(ValueError, match="NaN"):
        bad = k.clone()
        bad[1, 2, 0] = float("nan")
        gluon_me2(bad)
    with pytest.raises(ValueError, match="shape"):
        gluon_me2(k[..., :3])
    with pytest.raises(ValueError, match="at least 4 gluons"):
        gluon_me2(k[:, :3])
    with pytest.raises(TypeError, match="float64 or float32"):
        gluon_me2(k.half())
    with pytest.raises(TypeError, match="floating"):
        gluon_me2(k.long())
    with pytest.raises(ValueError, match="Σ_i k_i = 0"):
        gluon_me2(k[:, [0, 1, 2, 3, 3]])
    with pytest.raises(ValueError, match="massless"):
        off = k.clone()
        off[0, 2, 0] *= 1.1
        gluon_me2(off)
    with pytest.raises(ValueError, match="collinear"):
        four = collision(4, 3, 131)
        # leg 3 split into two exactly collinear gluons: massless, conserved, s_34 = 0
        gluon_me2(torch.cat([four[:, :3], 0.3 * four[:, 3:], 0.7 * four[:, 3:]], 1))
    with pytest.raises(ValueError, match="colour"):
        gluon_me2(k, colour="subleading")
    with pytest.raises(ValueError, match="basis"):
        gluon_me2(k, basis="flow")
    with pytest.raises(ValueError, match="n <= 7"):
        colour_matrix(8)
    with pytest.raises(ValueError, match="negative"):
        parke_taylor(k, (1, 1))
    with pytest.raises(ValueError, match="helicities"):
        gluon_amplitudes(k, orderings(5), torch.zeros(1, 5, dtype=torch.int64))
    with pytest.raises(ValueError, match="leg_orders"):
        gluon_amplitudes(k, torch.zeros(1, 5, dtype=torch.int64), helicity_configurations(5))
    with pytest.raises(TypeError, match="polarisations"):
        colour_ordered_amplitude(k, k)
    assert math.isfinite(float(gluon_me2(k).sum()))


# -- quark lines ------------------------------------------------------------------------------


def _lab_events(n_out: int, npts: int, seed: int, sqrt_s: float = 13000.0):
    """Lab-frame q(p_a) q̄(p_b) -> n_out massless partons: (p_a, p_b, k, x1, x2)."""
    gen = seeded(seed)
    x1 = 0.005 + 0.05 * torch.rand(npts, generator=gen, dtype=F64)
    x2 = 0.005 + 0.05 * torch.rand(npts, generator=gen, dtype=F64)
    ea, eb = 0.5 * sqrt_s * x1, 0.5 * sqrt_s * x2
    zero = torch.zeros(npts, dtype=F64)
    pa = torch.stack([ea, zero, zero, ea], -1)
    pb = torch.stack([eb, zero, zero, -eb], -1)
    r = torch.rand(npts, 3 * n_out - 4, generator=gen, dtype=F64)
    k, _ = Rambo([0.0] * n_out).forward(pa + pb, r, m2=4 * ea * eb)
    return pa, pb, k, x1, x2


def test_qqbar_to_photons_and_gluon_against_diphoton_jet():
    from forward.amplitudes.quarks import quark_vector_bosons_me2
    from forward.events import HardEvents
    from forward.processes.diphoton_jet import me2_qqbar_aag, production_invariants

    pa, pb, k, x1, x2 = _lab_events(3, 20, 140)
    s, t, u = production_invariants(HardEvents(momenta=k, x1=x1, x2=x2, sqrt_s=13000.0))
    alpha_s, alpha_em = 0.118, 1 / 137.036
    for charge in (2 / 3, -1 / 3):
        ref = me2_qqbar_aag(s, t, u, charge, alpha_s, alpha_em)
        # q(p_a) q̄(p_b): outgoing quark -p_b, outgoing antiquark -p_a; both beam orders
        for mom in (torch.cat([-pb[:, None], -pa[:, None], k], 1),
                    torch.cat([-pa[:, None], -pb[:, None], k], 1)):
            summed = quark_vector_bosons_me2(mom)
            couplings = (4 * math.pi * alpha_em * charge**2) ** 2 * 4 * math.pi * alpha_s
            ours = summed * couplings * 4.0 / 36.0  # colour Tr(t^a t^a) = 4, average 1/36
            assert ((ours - ref).abs() / ref).max() < 1e-10


def test_quark_line_ward_identity():
    from forward.amplitudes.quarks import quark_line_amplitudes

    pa, pb, k, _, _ = _lab_events(3, 6, 150)
    kq, ka = -pb, -pa
    eps = polarisation_vectors(k, kq[:, None].expand_as(k))
    vec = eps[:, torch.arange(3), torch.tensor([0, 1, 1])]
    size = quark_line_amplitudes(kq, ka, k, vec).abs()
    assert float(size.min()) > 0
    for i in range(3):
        v = vec.clone()
        v[:, i] = k[:, i].to(v.dtype)
        rel = quark_line_amplitudes(kq, ka, k, v).abs() / (size * k[:, i, :1].abs())
        assert rel.max() < 1e-10


def test_drell_yan_against_closed_form():
    from forward.amplitudes.quarks import quark_lepton_neutral_current_me2
    from forward.events import HardEvents
    from forward.processes.drell_yan import DrellYan
    from forward.processes.electroweak import MZ, alpha_em, z_width

    pa, pb, k, x1, x2 = _lab_events(2, 20, 160)
    proc = DrellYan(leptons="ee", mode="gamma_z", mll_min=1.0, mll_max=13000.0)
    events = HardEvents(momenta=k, x1=x1, x2=x2, sqrt_s=13000.0)
    ref = proc.matrix_element(events, proc.params(None, dtype=F64))
    shat = events.shat
    alpha, width = alpha_em(shat, "running"), z_width("running", dtype=F64)
    for col, (qa, _) in enumerate(proc.flavour_channels):
        # the quark from beam 1 (qa > 0) is the outgoing antiquark -p_a
        quark, antiquark = (-pb, -pa) if qa > 0 else (-pa, -pb)
        mom = torch.stack([quark, antiquark, k[:, 0], k[:, 1]], 1)
        ours = quark_lepton_neutral_current_me2(mom, qa, 11, alpha, MZ, width) / 36.0
        assert ((ours - ref[:, col]).abs() / ref[:, col]).max() < 1e-10, col
        # the comparison sees the chiral structure: exchanging quark and antiquark fails
        swapped = quark_lepton_neutral_current_me2(mom[:, [1, 0, 2, 3]], qa, 11, alpha, MZ,
                                                   width) / 36.0
        assert ((swapped - ref[:, col]).abs() / ref[:, col]).max() > 1e-3
