r"""QCD amplitudes with quarks: one quark line with n gluons, four quarks, any crossing.

Usage::

    from forward.amplitudes import qcd_me2
    # q(k0) q̄(k1) g(k2) g(k3), all outgoing (incoming partons as -p with flipped pid)
    me2 = qcd_me2(k, (2, -2, 21, 21), g_s=1.2)   # Σ over colours and helicities

**One quark line** (:func:`quark_gluon_amplitudes`). The colour decomposition for a
quark q (colour i), antiquark q̄ (colour j̄) and gluons 1..n (Tr(T^a T^b) = δ^{ab}) is

.. math:: M = g_s^n \sum_{σ ∈ S_n} (T^{a_{σ_1}} \cdots T^{a_{σ_n}})_{i j̄}\,
          A(q, σ_1, \ldots, σ_n, q̄),

and the colour-ordered A is built by Berends–Giele recursion: the gluon currents
J(i..j) of consecutive gluons (:mod:`forward.amplitudes.recursion`, the same
normalisation) attach to the quark line with the colour-ordered vertex (i/√2)γ^μ and
the quark propagator i K̸/K²,

.. math:: w_0 = λ_q,\quad w_j = \frac{Y(K_j)}{K_j^2} \sum_{i<j} c\, X(J(i{+}1..j))\, w_i,
          \quad A_L = λ̃_{q̄}^T \sum_{i<n} c\, X(J(i{+}1..n))\, w_i,

with K_j = k_q + P_{1..j}, c = -1/√2 (the vertex and propagator factors; an overall
phase common to all A is dropped) and X, Y of :mod:`forward.amplitudes.quarks`.
A_L is the left-handed line (outgoing quark of helicity -, antiquark +); the
right-handed A_R = ⟨q̄|…|q] runs the same recursion from the antiquark with the
gluons in reverse order. Tested: Ward identity (ε_i → k_i gives 0), the MHV forms
|A(q̄, q, ..., i⁻, ...)| = |⟨q̄ i⟩³⟨q i⟩ / (⟨q̄ q⟩⟨q 1⟩⟨12⟩···⟨n q̄⟩)| (and the other
chirality), the 2 → 2 textbook |M|² of all crossings. Σ_colours |M|² =
g_s^{2n} Σ_h Σ_{στ} A_σ C_{στ} A_τ^* with the colour matrix of
:func:`forward.amplitudes.colour.quark_line_colour_matrix`.

**Four quarks** (:func:`four_quark_me2`, no gluons): q₁ q̄₁ q₂ q̄₂ through one gluon
exchange, M = g_s² [t^a_{i₁j̄₁} t^a_{i₂j̄₂} D - t^a_{i₁j̄₂} t^a_{i₂j̄₁} E] with
D = S₁·S₂/s₁₁̄, S₁ = ⟨1|γ^μ|1̄] or ⟨1̄|γ^μ|1] by chirality, and E (only for identical
flavours) the same with q̄₁ ↔ q̄₂ (Fermi statistics: relative sign -1). Colour in the
basis (δ_{i₁j̄₂}δ_{i₂j̄₁}, δ_{i₁j̄₁}δ_{i₂j̄₂}), t^a_{ij̄}t^a_{kl̄} = ½(δ_{il̄}δ_{kj̄} -
δ_{ij̄}δ_{kl̄}/N), colour matrix [[N², N], [N, N²]].

All results are **summed** (not averaged) over colours and helicities of all legs.
"""

from __future__ import annotations

import itertools
import math

import torch

from forward._validation import check_event_momenta, check_finite
from forward.amplitudes.colour import (
    MAX_QUARK_LINE_GLUONS,
    quark_line_colour_matrix,
    quark_line_orderings,
)
from forward.amplitudes.gluons import _plan_configurations, check_gluon_momenta, gluon_me2
from forward.amplitudes.recursion import _berends_giele
from forward.amplitudes.spinors import (
    complex_dtype,
    minkowski_dot,
    polarisation_vectors,
    sandwich,
    spinors,
)

__all__ = [
    "four_quark_me2",
    "qcd_me2",
    "quark_gluon_amplitudes",
    "quark_gluon_me2",
]

_C = -1.0 / math.sqrt(2.0)


def _apply_x(v: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """X(V) w with X(V) = V⁰ - V⃗·σ⃗; v (4, ...), w (2, ...) component-first."""
    v0, v1, v2, v3 = v[0], v[1], v[2], v[3]
    return torch.stack([(v0 - v3) * w[0] - (v1 - 1j * v2) * w[1],
                        -(v1 + 1j * v2) * w[0] + (v0 + v3) * w[1]])


def _apply_y(v: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Y(V) w with Y(V) = V⁰ + V⃗·σ⃗; v (4, ...), w (2, ...) component-first."""
    v0, v1, v2, v3 = v[0], v[1], v[2], v[3]
    return torch.stack([(v0 + v3) * w[0] + (v1 - 1j * v2) * w[1],
                        (v1 + 1j * v2) * w[0] + (v0 - v3) * w[1]])


def _line(lam_start, k_start, lamt_end, cur, mom_of, n):
    """One chirality of the quark line: the recursion of the module docstring.

    lam_start (2, *batch), k_start (4, *batch), lamt_end (2, *batch); cur[L] and
    mom_of[L] (4, n-L+1, *batch) of the gluons in line order.
    """
    w = [lam_start]
    for j in range(1, n):
        acc = sum(_apply_x(cur[j - i][:, i], w[i]) for i in range(j))
        big_k = k_start + mom_of[j][:, 0]
        w.append(_C * _apply_y(big_k, acc) / (big_k[0] ** 2 - (big_k[1:] ** 2).sum(0)))
    acc = sum(_apply_x(cur[n - i][:, i], w[i]) for i in range(n))
    return _C * (lamt_end * acc).sum(0)


def _check_legs(momenta: torch.Tensor, n_min: int, what: str) -> None:
    check_event_momenta("momenta", momenta, "m")
    complex_dtype(momenta.dtype)
    check_finite("momenta", momenta)
    if momenta.shape[1] < n_min:
        raise ValueError(f"momenta: expected shape (N, >= {n_min}, 4) as {what}, "
                         f"got {tuple(momenta.shape)}")


def quark_gluon_amplitudes(
    momenta: torch.Tensor,
    leg_orders: torch.Tensor,
    helicities: torch.Tensor,
    *,
    max_batch: int | None = None,
) -> torch.Tensor:
    """Colour-ordered A(q, σ, q̄) of one quark line with n gluons, both chiralities.

    Args:
        momenta: outgoing massless momenta (N, 2 + n, 4) in GeV as (q, q̄, g_1, ...,
            g_n), Σ = 0, float32/float64 (incoming partons as -p: an incoming quark is
            the outgoing antiquark); n >= 1.
        leg_orders: gluon orderings (n_orderings, n), int64, permutations of 0..n-1
            (gluon σ_1 next to the quark; e.g. :func:`quark_line_orderings`).
        helicities: gluon helicities ±1 (n_helicities, n), int64.
        max_batch: points × configurations at once (None: 4096 on a CPU, 2^20 on CUDA).

    Returns:
        Shape (N, n_orderings, n_helicities, 2), complex, in GeV^(2-n); the last axis
        is the chirality [L (quark -, antiquark +), R (quark +, antiquark -)].
        Polarisations ε_±(k_i; k_q) (reference momentum: the quark).

    Raises:
        TypeError, ValueError: bad momenta (see
            :func:`forward.amplitudes.check_gluon_momenta`), orders or helicities.
    """
    _check_legs(momenta, 3, "(q, q̄, g_1, ..., g_n)")
    if momenta.shape[1] >= 4:
        check_gluon_momenta(momenta)
    n = momenta.shape[1] - 2
    device = momenta.device
    cdt = complex_dtype(momenta.dtype)
    n_pts = momenta.shape[0]
    legs, hel_index, pt_chunk, conf_chunk = _plan_configurations(
        leg_orders, helicities, n, n_pts, device, max_batch)
    n_ord, n_hel = leg_orders.shape[0], helicities.shape[0]
    n_conf = legs.shape[0]
    kq, kqb, kg = momenta[:, 0], momenta[:, 1], momenta[:, 2:]
    lq, ltq = spinors(kq)
    lqb, ltqb = spinors(kqb)
    eps_all = polarisation_vectors(kg, kq.unsqueeze(1).expand_as(kg))  # (N, n, 2, 4)
    out = torch.empty(n_pts, n_conf, 2, dtype=cdt, device=device)

    def first(t):  # (N, C, k) -> (k, N, C)
        return t.movedim(-1, 0)

    for p0 in range(0, n_pts, pt_chunk):
        sl = slice(p0, p0 + pt_chunk)
        for c0 in range(0, n_conf, conf_chunk):
            lg, hx = legs[c0:c0 + conf_chunk], hel_index[c0:c0 + conf_chunk]
            mom = kg[sl][:, lg].to(cdt).movedim((-1, -2), (0, 1))  # (4, n, N, C)
            eps = eps_all[sl][:, lg, hx].movedim((-1, -2), (0, 1))
            ncf = lg.shape[0]
            shape = (mom.shape[2], ncf)
            la, lat = first(lq[sl].unsqueeze(1).expand(*shape, 2)), first(
                ltq[sl].unsqueeze(1).expand(*shape, 2))
            lb, lbt = first(lqb[sl].unsqueeze(1).expand(*shape, 2)), first(
                ltqb[sl].unsqueeze(1).expand(*shape, 2))
            ka = first(kq[sl].to(cdt).unsqueeze(1).expand(*shape, 4))
            kb = first(kqb[sl].to(cdt).unsqueeze(1).expand(*shape, 4))
            cur, mom_of, _ = _berends_giele(mom, eps, amputate_last=False)
            amp_l = _line(la, ka, lbt, cur, mom_of, n)
            cur_r, mom_r, _ = _berends_giele(mom.flip(1), eps.flip(1), amputate_last=False)
            amp_r = _line(lb, kb, lat, cur_r, mom_r, n)
            out[sl, c0:c0 + conf_chunk] = torch.stack([amp_l, amp_r], -1)
    return out.reshape(n_pts, n_ord, n_hel, 2)


def quark_gluon_me2(
    momenta: torch.Tensor,
    *,
    nc: int = 3,
    g_s: torch.Tensor | float = 1.0,
    max_batch: int | None = None,
) -> torch.Tensor:
    """|M|² of q q̄ + n gluons summed over all colours and helicities, full colour.

    Args:
        momenta: outgoing momenta (N, 2 + n, 4) in GeV as (q, q̄, g_1, ..., g_n), Σ = 0,
            float32/float64, any device (crossing: incoming partons as -p with the
            antiparticle's role), 1 <= n <= 5.
        nc: number of colours N.
        g_s: strong coupling, a number or a tensor broadcastable to (N,).
        max_batch: see :func:`quark_gluon_amplitudes`.

    Returns:
        Shape (N,), real, in GeV^(4-2n): dimensionless for 2 → 2 (n = 2), GeV⁻² for
        n = 3.

    Raises:
        TypeError, ValueError: bad momenta, n outside 1..5.
    """
    _check_legs(momenta, 3, "(q, q̄, g_1, ..., g_n)")
    n = momenta.shape[1] - 2
    if n > MAX_QUARK_LINE_GLUONS:
        raise ValueError(f"momenta: at most {MAX_QUARK_LINE_GLUONS} gluons on the quark line, "
                         f"got shape {tuple(momenta.shape)}")
    hel = torch.tensor(list(itertools.product((-1, 1), repeat=n)), dtype=torch.int64)
    amps = quark_gluon_amplitudes(momenta, quark_line_orderings(n), hel, max_batch=max_batch)
    cmat = quark_line_colour_matrix(n, nc).to(dtype=momenta.dtype, device=momenta.device)
    re, im = amps.real, amps.imag
    summed = (torch.einsum("nshc,st,nthc->n", re, cmat, re)
              + torch.einsum("nshc,st,nthc->n", im, cmat, im))
    return summed * torch.as_tensor(g_s, dtype=momenta.dtype, device=momenta.device) ** (2 * n)


def four_quark_me2(
    momenta: torch.Tensor,
    *,
    identical: bool,
    nc: int = 3,
    g_s: torch.Tensor | float = 1.0,
) -> torch.Tensor:
    """|M|² of q₁ q̄₁ q₂ q̄₂ (one gluon exchange) summed over colours and helicities.

    Args:
        momenta: outgoing momenta (N, 4, 4) in GeV as (q₁, q̄₁, q₂, q̄₂), Σ = 0,
            float32/float64 (incoming partons as -p, roles crossed).
        identical: q₁ and q₂ of the same flavour (both exchange diagrams, Fermi sign).
        nc: number of colours N.
        g_s: strong coupling, a number or a tensor broadcastable to (N,).

    Returns:
        Shape (N,), dimensionless.

    Raises:
        TypeError, ValueError: bad momenta or ``identical`` not a bool.
    """
    _check_legs(momenta, 4, "(q1, q̄1, q2, q̄2)")
    if momenta.shape[1] != 4:
        raise ValueError(f"momenta: expected shape (N, 4, 4) as (q1, q̄1, q2, q̄2), "
                         f"got {tuple(momenta.shape)}")
    check_gluon_momenta(momenta)
    if not isinstance(identical, bool):
        raise TypeError(f"identical: expected a bool, got {type(identical).__name__}")
    sp = [spinors(momenta[:, i]) for i in range(4)]

    def line(a, b):  # [L, R] currents of the line from quark a to antiquark b
        return sandwich(sp[a][0], sp[b][1]), sandwich(sp[b][0], sp[a][1])

    def sij(a, b):
        ka, kb = momenta[:, a], momenta[:, b]
        return 2.0 * minkowski_dot(ka, kb)

    s1, s2 = line(0, 1), line(2, 3)
    e1, e2 = line(0, 3), line(2, 1)
    cmat = torch.tensor([[nc * nc, nc], [nc, nc * nc]], dtype=momenta.dtype,
                        device=momenta.device)
    total = torch.zeros(momenta.shape[0], dtype=momenta.dtype, device=momenta.device)

    def add(a1, a2):
        vec = torch.stack([a1, a2], -1)
        return (torch.einsum("ni,ij,nj->n", vec.real, cmat, vec.real)
                + torch.einsum("ni,ij,nj->n", vec.imag, cmat, vec.imag))

    # external helicities: D with line chiralities (x, y) and E with (x', y') describe the
    # same configuration only for x = y = x' = y'; otherwise each stands alone
    for x in range(2):
        for y in range(2):
            d = minkowski_dot(s1[x], s2[y]) / sij(0, 1)
            a1, a2 = 0.5 * d, -0.5 / nc * d
            if identical:
                e = minkowski_dot(e1[x], e2[y]) / sij(0, 3)
                if x == y:
                    a1, a2 = a1 + 0.5 / nc * e, a2 - 0.5 * e
                else:
                    total = total + add(-0.5 / nc * e, 0.5 * e)
            total = total + add(a1, a2)
    return total * torch.as_tensor(g_s, dtype=momenta.dtype, device=momenta.device) ** 4


def qcd_me2(
    momenta: torch.Tensor,
    pids,
    *,
    nc: int = 3,
    g_s: torch.Tensor | float = 1.0,
) -> torch.Tensor:
    """|M|² of massless QCD partons, all outgoing, summed over colours and helicities.

    Dispatches on the flavours: only gluons (:func:`forward.amplitudes.gluon_me2`, full
    colour), one quark pair and gluons (:func:`quark_gluon_me2`), two quark pairs and no
    gluon (:func:`four_quark_me2`). QCD is flavour-blind: only which legs are quarks,
    antiquarks and gluons, and whether two quarks share a flavour, matter.

    Args:
        momenta: outgoing momenta (N, m, 4) in GeV, Σ = 0 (incoming partons as -p with
            the antiparticle's pid).
        pids: m outgoing PDG codes: 21 (gluon), ±1 ... ±6 (quarks, antiquarks; massless).
        nc: number of colours.
        g_s: strong coupling.

    Returns:
        Shape (N,), real, in GeV^(8-2m).

    Raises:
        ValueError: pids of the wrong length, unknown codes, flavour not conserved, or a
            flavour content not supported (more than one quark pair with gluons, or more
            than two pairs), naming the pids.
    """
    _check_legs(momenta, 4, "m outgoing partons")
    pids = tuple(int(p) for p in pids)
    if len(pids) != momenta.shape[1]:
        raise ValueError(f"pids: expected {momenta.shape[1]} codes like momenta, got {pids}")
    if any(p != 21 and not 1 <= abs(p) <= 6 for p in pids):
        raise ValueError(f"pids: expected 21 or ±1..±6 (gluon, quarks), got {pids}")
    for f in range(1, 7):
        if pids.count(f) != pids.count(-f):
            raise ValueError(f"pids: flavour {f} not conserved (all outgoing codes), got {pids}")
    gluons = [i for i, p in enumerate(pids) if p == 21]
    quarks = [i for i, p in enumerate(pids) if p != 21 and p > 0]
    if not quarks:
        return gluon_me2(momenta, nc=nc, g_s=g_s)
    if len(quarks) == 1:
        q = quarks[0]
        qb = pids.index(-pids[q])
        return quark_gluon_me2(momenta[:, [q, qb, *gluons]], nc=nc, g_s=g_s)
    if len(quarks) == 2 and not gluons:
        q1, q2 = quarks
        qb1 = pids.index(-pids[q1])
        qb2 = len(pids) - 1 - pids[::-1].index(-pids[q2])
        return four_quark_me2(momenta[:, [q1, qb1, q2, qb2]], identical=pids[q1] == pids[q2],
                              nc=nc, g_s=g_s)
    raise ValueError(f"pids: flavour content {pids} not supported (one quark pair with "
                     f"gluons, or two pairs without gluons)")
