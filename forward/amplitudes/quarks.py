r"""Massless quark lines with vector bosons attached: spinor strings, f f̄ → n V and γ*/Z.

**Spinor strings.** With the conventions of :mod:`forward.amplitudes.spinors`, a quark
line from the outgoing quark l to the outgoing antiquark r with vectors V_1 ... V_r
attached in this order (V_1 next to the quark) and internal momenta K_1 ... K_{r-1}
(K_j = k_l + P_1 + ... + P_j, P_i the momentum carried out by vector i) is

.. math:: S = ⟨l| \not V_1 \frac{\not K_1}{K_1^2} \not V_2 \cdots \not V_r |r]
          = λ̃_r^T X(V_r) Y(K_{r-1}) \cdots Y(K_1) X(V_1) λ_l / \prod_j K_j^2,

with X(V) = V⁰ - V⃗·σ⃗ and Y(K) = K⁰ + K⃗·σ⃗ (2×2), so that ⟨l|\not V|r] = ⟨l|γ^μ|r] V_μ
and X(K) Y(K) = K². ⟨l|…|r] is the line of **left-handed chirality** (outgoing quark of
helicity -, antiquark +; Dixon's ⟨i|γ^μ|j] = ū_-(k_i) γ^μ u_-(k_j)); the right-handed
line is ⟨r|…|l] with the vectors in reverse order. The vertex factors (-i e Q γ^μ,
-i g_s T^a γ^μ, ...) and the propagator numerators i\not K contribute a phase common to
all attachments of the same number of vectors, which drops out of |M|²; couplings are
applied by the callers.

**f f̄ → n V** (:func:`quark_vector_bosons_me2`): Σ over all helicities of
|Σ_{orderings} S|² for n abelian massless vector bosons with unit couplings, e.g.
q q̄ → γ γ g (the gluon's T^a is common to all six orderings). **γ*/Z**
(:func:`quark_lepton_neutral_current_me2`): q q̄ → ℓ⁻ ℓ⁺ through γ* and Z from the two
lines' currents, the Z couplings of :mod:`forward.processes.electroweak`.
"""

from __future__ import annotations

import itertools
import math

import torch

from forward._validation import check_event_momenta, check_finite
from forward.amplitudes.spinors import (
    complex_dtype,
    minkowski_dot,
    polarisation_vectors,
    sandwich,
    spinors,
)

__all__ = [
    "quark_lepton_neutral_current_me2",
    "quark_line_amplitudes",
    "quark_vector_bosons_me2",
    "spinor_string",
]


def _x_matrix(v: torch.Tensor) -> torch.Tensor:
    """X(V) = V⁰ - V⃗·σ⃗, shape (..., 2, 2)."""
    v0, v1, v2, v3 = v.unbind(-1)
    return torch.stack([torch.stack([v0 - v3, -(v1 - 1j * v2)], -1),
                        torch.stack([-(v1 + 1j * v2), v0 + v3], -1)], -2)


def _y_matrix(v: torch.Tensor) -> torch.Tensor:
    """Y(V) = V⁰ + V⃗·σ⃗, shape (..., 2, 2)."""
    v0, v1, v2, v3 = v.unbind(-1)
    return torch.stack([torch.stack([v0 + v3, v1 - 1j * v2], -1),
                        torch.stack([v1 + 1j * v2, v0 - v3], -1)], -2)


def spinor_string(lam_left: torch.Tensor, lamt_right: torch.Tensor, vectors, momenta
                  ) -> torch.Tensor:
    """⟨l| V̸_1 (K̸_1/K_1²) V̸_2 ... V̸_r |r] (module docstring).

    Args:
        lam_left: λ of the left spinor, shape (..., 2), complex.
        lamt_right: λ̃ of the right spinor, shape (..., 2), complex.
        vectors: sequence of r >= 1 complex four-vectors (..., 4) (upper index).
        momenta: sequence of the r - 1 internal momenta K_j (..., 4) in GeV.

    Returns:
        Shape (...), complex.
    """
    vectors, momenta = list(vectors), list(momenta)
    if not vectors or len(momenta) != len(vectors) - 1:
        raise ValueError(f"momenta: expected len(vectors) - 1 = {len(vectors) - 1} internal "
                         f"momenta for {len(vectors)} vectors, got {len(momenta)}")
    w = (_x_matrix(vectors[0]) @ lam_left.unsqueeze(-1))
    for vec, mom in zip(vectors[1:], momenta, strict=True):
        mom = mom.to(w.dtype)
        w = _y_matrix(mom) @ w / minkowski_dot(mom, mom)[..., None, None]
        w = _x_matrix(vec) @ w
    return (lamt_right.unsqueeze(-2) @ w)[..., 0, 0]


def quark_line_amplitudes(k_quark: torch.Tensor, k_antiquark: torch.Tensor,
                          boson_momenta: torch.Tensor, boson_vectors: torch.Tensor
                          ) -> torch.Tensor:
    """Both chiralities of a quark line with abelian vectors summed over all orderings.

    Args:
        k_quark: outgoing quark momenta (..., 4) in GeV (incoming antiquark as -p).
        k_antiquark: outgoing antiquark momenta (..., 4) (incoming quark as -p).
        boson_momenta: outgoing momenta of the r vectors, (..., r, 4) in GeV.
        boson_vectors: their polarisation vectors or currents, (..., r, 4), complex.

    Returns:
        Shape (..., 2): [left-handed line ⟨q|…|q̄], right-handed line ⟨q̄|…|q]], each
        Σ over the r! orderings of :func:`spinor_string`, in GeV^(1-r).
    """
    lq, ltq = spinors(k_quark)
    la, lta = spinors(k_antiquark)
    r = boson_momenta.shape[-2]
    total_l = total_r = 0
    for order in itertools.permutations(range(r)):
        vec = [boson_vectors[..., i, :] for i in order]
        run_l, run_r = k_quark, k_antiquark
        props_l, props_r = [], []
        for j in range(r - 1):
            run_l = run_l + boson_momenta[..., order[j], :]
            run_r = run_r + boson_momenta[..., order[r - 1 - j], :]
            props_l.append(run_l)
            props_r.append(run_r)
        total_l = total_l + spinor_string(lq, lta, vec, props_l)
        total_r = total_r + spinor_string(la, ltq, vec[::-1], props_r)
    return torch.stack([total_l, total_r], -1)


def _check_line(name: str, k: torch.Tensor, npts: int | None = None) -> None:
    check_event_momenta(name, k, "m")
    complex_dtype(k.dtype)
    check_finite(name, k)
    if npts is not None and k.shape[0] != npts:
        raise ValueError(f"{name}: expected {npts} points, got shape {tuple(k.shape)}")


def quark_vector_bosons_me2(momenta: torch.Tensor) -> torch.Tensor:
    """Σ over all helicities of |A|² for f f̄ → n abelian massless vector bosons, unit couplings.

    Args:
        momenta: outgoing momenta (N, 2 + n, 4) in GeV as (quark, antiquark, V_1, ...,
            V_n), Σ = 0 (incoming particles as -p: an incoming quark is the outgoing
            antiquark), n >= 1, float32/float64.

    Returns:
        Shape (N,), real, in GeV^(4-2n) (GeV⁰ for n = 2, GeV⁻² for n = 3).
        For q q̄ → γ γ g: multiply by (e Q_q)⁴ g_s² and the colour sum Tr(t^a t^a) = 4.
    """
    _check_line("momenta", momenta)
    nb = momenta.shape[1] - 2
    if nb < 1:
        raise ValueError(f"momenta: expected at least one vector boson after the quark pair, "
                         f"got shape {tuple(momenta.shape)}")
    kb = momenta[:, 2:]
    # reference momentum of each boson: the quark (never collinear with a boson off the
    # collinear singularity)
    eps = polarisation_vectors(kb, momenta[:, :1].expand_as(kb))  # (N, n, 2, 4)
    total = torch.zeros(momenta.shape[0], dtype=momenta.dtype, device=momenta.device)
    for hel in itertools.product((0, 1), repeat=nb):
        vec = eps[:, torch.arange(nb), torch.tensor(hel)]
        amp = quark_line_amplitudes(momenta[:, 0], momenta[:, 1], kb, vec)
        total = total + (amp.real**2 + amp.imag**2).sum(-1)
    return total


def quark_lepton_neutral_current_me2(
    momenta: torch.Tensor,
    quark_pid: int,
    lepton_pid: int,
    alpha: torch.Tensor | float,
    z_mass: float,
    z_width: torch.Tensor | float,
) -> torch.Tensor:
    r"""|M|² of q q̄ → γ*/Z → ℓ⁻ ℓ⁺ summed over all helicities and colours (not averaged).

    M_{XY} = e² [Q_q Q_ℓ + κ g^Z_{qX} g^Z_{ℓY} χ_Z] S_X^q · S_Y^ℓ / ŝ with the chiral
    couplings g_L = v + a, g_R = v - a and κ of :mod:`forward.processes.electroweak`,
    χ_Z = ŝ/(ŝ - M_Z² + i ŝ Γ_Z/M_Z), and the line currents S^μ = ⟨q|γ^μ|q̄] (X = L),
    ⟨q̄|γ^μ|q] (X = R); colour sum δ_ii = 3.

    Args:
        momenta: outgoing momenta (N, 4, 4) in GeV as (quark, antiquark, ℓ⁻, ℓ⁺), Σ = 0
            (the incoming quark is the outgoing antiquark with -p).
        quark_pid, lepton_pid: PDG codes (sign ignored).
        alpha: α_EM, a number or shape (N,).
        z_mass: M_Z in GeV.
        z_width: Γ_Z in GeV.

    Returns:
        Shape (N,), dimensionless.
    """
    from forward.processes.electroweak import axial_coupling, charge, kappa, vector_coupling

    _check_line("momenta", momenta)
    if momenta.shape[1] != 4:
        raise ValueError(f"momenta: expected shape (N, 4, 4) as (q, q̄, ℓ⁻, ℓ⁺), "
                         f"got {tuple(momenta.shape)}")
    for name, pid, allowed in (("quark_pid", quark_pid, (1, 2, 3, 4, 5, 6)),
                               ("lepton_pid", lepton_pid, (11, 13, 15))):
        if isinstance(pid, bool) or not isinstance(pid, int) or abs(pid) not in allowed:
            raise ValueError(f"{name}: expected a PDG id with |id| in {allowed}, got {pid!r}")
    z_mass = float(z_mass)
    if not (math.isfinite(z_mass) and z_mass > 0):
        raise ValueError(f"z_mass: expected a finite mass > 0 in GeV, got {z_mass!r}")
    for name, v in (("alpha", alpha), ("z_width", z_width)):
        t = torch.as_tensor(v, dtype=torch.float64)
        if not bool((torch.isfinite(t) & (t >= 0)).all()):
            raise ValueError(f"{name}: expected finite values >= 0, got {v!r}")
    lq, ltq = spinors(momenta[:, 0])
    la, lta = spinors(momenta[:, 1])
    lm, ltm = spinors(momenta[:, 2])
    lp, ltp = spinors(momenta[:, 3])
    quark_cur = (sandwich(lq, lta), sandwich(la, ltq))  # L, R
    lepton_cur = (sandwich(lm, ltp), sandwich(lp, ltm))
    shat = minkowski_dot(momenta[:, 2] + momenta[:, 3], momenta[:, 2] + momenta[:, 3])
    chi = shat / torch.complex(shat - z_mass**2, shat * torch.as_tensor(z_width) / z_mass)
    e2 = 4.0 * math.pi * torch.as_tensor(alpha, dtype=momenta.dtype, device=momenta.device)
    gq = (vector_coupling(quark_pid) + axial_coupling(quark_pid),
          vector_coupling(quark_pid) - axial_coupling(quark_pid))
    gl = (vector_coupling(lepton_pid) + axial_coupling(lepton_pid),
          vector_coupling(lepton_pid) - axial_coupling(lepton_pid))
    qq, ql = charge(quark_pid), charge(lepton_pid)
    total = torch.zeros_like(shat)
    for x in range(2):
        for y in range(2):
            coupling = qq * ql + kappa() * gq[x] * gl[y] * chi
            amp = e2 * coupling * minkowski_dot(quark_cur[x], lepton_cur[y]) / shat
            total = total + amp.real**2 + amp.imag**2
    return 3.0 * total
