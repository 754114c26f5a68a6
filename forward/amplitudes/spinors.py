r"""Massless Weyl spinors, spinor products and gluon polarisation vectors.

**Conventions.** Metric (+, -, -, -); four-momenta (E, px, py, pz) in GeV, all
*outgoing*: an incoming particle of momentum p enters as k = -p (negative energy), so
that crossing is a relabelling. With k^± = E ± pz and k_⊥ = px + i py, the bispinor
k_{a\dot a} = k^μ σ_μ = [[k⁺, k_⊥*], [k_⊥, k⁻]] factorises as λ_a λ̃_{\dot a} with
(the **phase convention** of this package)

.. math:: λ = (\sqrt{k^+},\; k_⊥/\sqrt{k^+}),\quad
          λ̃ = (\sqrt{k^+},\; k_⊥^*/\sqrt{k^+}) \qquad (k^+ \ge k^-),

    λ = (k_⊥^*/\sqrt{k^-},\; \sqrt{k^-}),\quad
          λ̃ = (k_⊥/\sqrt{k^-},\; \sqrt{k^-}) \qquad (k^+ < k^-),

the second branch keeping momenta along -z finite. For E < 0 the spinors are those of
-k times i (λ(k) = i λ(-k), λ̃(k) = i λ̃(-k)), the analytic continuation of
Dixon's conventions (hep-ph/9601359, TASI 95). Spinor products

.. math:: ⟨ij⟩ = λ_{i,1} λ_{j,2} - λ_{i,2} λ_{j,1},\qquad
          [ij] = λ̃_{i,2} λ̃_{j,1} - λ̃_{i,1} λ̃_{j,2},

so that ⟨ij⟩[ji] = s_ij = 2 k_i·k_j and, for positive energies, [ij] = -⟨ij⟩*.
The current ⟨a|γ^μ|b] = Tr(σ_μ λ_a λ̃_b^T) (upper index) satisfies
⟨k|γ^μ|k] = 2k^μ. Gluon polarisation vectors with light-like reference momentum q:

.. math:: ε^μ_+(k; q) = \frac{⟨q|γ^μ|k]}{\sqrt2\, ⟨qk⟩},\qquad
          ε^μ_-(k; q) = \frac{⟨k|γ^μ|q]}{\sqrt2\, [kq]},

transverse (ε·k = ε·q = 0), ε_+·ε_- = -1, ε_±·ε_± = 0; changing q adds a multiple of k.
"""

from __future__ import annotations

import math

import torch

from forward._validation import check_floating, check_last_dim

__all__ = [
    "angle_product",
    "complex_dtype",
    "minkowski_dot",
    "polarisation_vectors",
    "sandwich",
    "spinors",
    "square_product",
]


def complex_dtype(dtype: torch.dtype) -> torch.dtype:
    """complex128 for float64, complex64 for float32 (TypeError otherwise)."""
    if dtype == torch.float64:
        return torch.complex128
    if dtype == torch.float32:
        return torch.complex64
    raise TypeError(f"momenta: expected float64 or float32, got {dtype}")


def minkowski_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a·b = a⁰b⁰ - a⃗·b⃗ over the last axis (size 4), bilinear (no complex conjugation)."""
    return a[..., 0] * b[..., 0] - (a[..., 1:] * b[..., 1:]).sum(-1)


def spinors(k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """λ and λ̃ of massless momenta in the phase convention of the module docstring.

    Args:
        k: massless momenta, shape (..., 4) as (E, px, py, pz) in GeV, float32/float64;
            E < 0 marks a crossed (incoming) particle.

    Returns:
        (λ, λ̃), each shape (..., 2), complex64/complex128, in GeV^(1/2).

    Raises:
        TypeError, ValueError: not a floating tensor, last axis not 4.
    """
    check_floating("k", k)
    check_last_dim("k", k, 4, "(E, px, py, pz)")
    cdt = complex_dtype(k.dtype)
    negative = k[..., 0] < 0
    kk = torch.where(negative.unsqueeze(-1), -k, k)
    e, px, py, pz = kk.unbind(-1)
    plus_raw, minus_raw = e + pz, e - pz
    use_plus = plus_raw >= minus_raw
    # the larger light-cone component directly, the smaller as k_⊥²/larger (no cancellation)
    big = torch.where(use_plus, plus_raw, minus_raw).clamp(min=torch.finfo(k.dtype).tiny)
    rt = big.sqrt()
    kperp = torch.complex(px, py)
    kperp_c = kperp.conj()
    rtc = rt.to(cdt)
    # branch k+ >= k-: λ = (√k+, k⊥/√k+), λ̃ = (√k+, k⊥*/√k+)
    lam_p = torch.stack([rtc, kperp / rt], -1)
    lamt_p = torch.stack([rtc, kperp_c / rt], -1)
    # branch k+ < k-: λ = (k⊥*/√k-, √k-), λ̃ = (k⊥/√k-, √k-)
    lam_m = torch.stack([kperp_c / rt, rtc], -1)
    lamt_m = torch.stack([kperp / rt, rtc], -1)
    sel = use_plus.unsqueeze(-1)
    lam = torch.where(sel, lam_p, lam_m)
    lamt = torch.where(sel, lamt_p, lamt_m)
    phase = torch.where(negative, torch.ones((), dtype=cdt, device=k.device) * 1j,
                        torch.ones((), dtype=cdt, device=k.device)).unsqueeze(-1)
    return lam * phase, lamt * phase


def angle_product(la: torch.Tensor, lb: torch.Tensor) -> torch.Tensor:
    """⟨ab⟩ = λ_{a,1} λ_{b,2} - λ_{a,2} λ_{b,1}; inputs (..., 2) complex, output (...)."""
    return la[..., 0] * lb[..., 1] - la[..., 1] * lb[..., 0]


def square_product(lta: torch.Tensor, ltb: torch.Tensor) -> torch.Tensor:
    """[ab] = λ̃_{a,2} λ̃_{b,1} - λ̃_{a,1} λ̃_{b,2}; inputs (..., 2) complex, output (...)."""
    return lta[..., 1] * ltb[..., 0] - lta[..., 0] * ltb[..., 1]


def sandwich(la: torch.Tensor, ltb: torch.Tensor) -> torch.Tensor:
    """⟨a|γ^μ|b] as a four-vector with upper index, shape (..., 4), from λ_a and λ̃_b (..., 2).

    ⟨k|γ^μ|k] = 2k^μ for the spinors of k.
    """
    a1, a2 = la[..., 0], la[..., 1]
    b1, b2 = ltb[..., 0], ltb[..., 1]
    return torch.stack(
        [a1 * b1 + a2 * b2, a2 * b1 + a1 * b2, 1j * (a1 * b2 - a2 * b1), a1 * b1 - a2 * b2], -1
    )


def polarisation_vectors(k: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Gluon polarisation vectors ε_-(k; q) and ε_+(k; q) (module docstring).

    Args:
        k: massless momenta, shape (..., 4) in GeV (E < 0: crossed particle).
        q: light-like reference momenta not parallel to k, broadcastable with ``k``.

    Returns:
        Shape (..., 2, 4), complex, dimensionless: index 0 of the helicity axis is
        helicity -1, index 1 is +1 (helicity of the outgoing gluon).
    """
    lk, ltk = spinors(k)
    lq, ltq = spinors(q)
    lk, lq = torch.broadcast_tensors(lk, lq)
    ltk, ltq = torch.broadcast_tensors(ltk, ltq)
    root2 = math.sqrt(2.0)
    eps_plus = sandwich(lq, ltk) / (root2 * angle_product(lq, lk)).unsqueeze(-1)
    eps_minus = sandwich(lk, ltq) / (root2 * square_product(ltk, ltq)).unsqueeze(-1)
    return torch.stack([eps_minus, eps_plus], -2)
