r"""Colour-ordered n-gluon amplitudes by Berends–Giele recursion, batched in torch.

**Colour-ordered Feynman rules** (Dixon, hep-ph/9601359; generators normalised
Tr(T^a T^b) = δ^{ab}, all momenta outgoing, Feynman gauge, metric (+,-,-,-)):

* three-gluon vertex, legs (μ, k), (ν, p), (ρ, q) in colour order:
  V₃ = (i/√2)[η_{νρ}(p - q)_μ + η_{ρμ}(q - k)_ν + η_{μν}(k - p)_ρ];
* four-gluon vertex: V₄ = i η_{μρ} η_{νσ} - (i/2)(η_{μν} η_{ρσ} + η_{μσ} η_{νρ});
* propagator -i η_{μν} / P².

**Recursion.** For the legs 1..m of one colour ordering, J(i, i) = ε_i and, with
P_{i,j} = k_i + ... + k_j,

.. math:: J^μ(i,j) = \frac{-i}{P_{i,j}^2} \Big[ \sum_{l=i}^{j-1} V_3^μ(J(i,l), J(l{+}1,j))
          + \sum_{i \le l_1 < l_2 < j} V_4^μ(J(i,l_1), J(l_1{+}1,l_2), J(l_2{+}1,j)) \Big],

with V₃^μ(J₁, J₂) = (i/√2)[(J₁·J₂)(P₁ - P₂)^μ + ((P₁ + 2P₂)·J₁) J₂^μ -
((2P₁ + P₂)·J₂) J₁^μ] (the vertex with the outgoing line momenta P₁, P₂ of the two
currents; no transversality is assumed, so the rule stays exact for a polarisation
replaced by its momentum) and V₄^μ = i J₂^μ (J₁·J₃) - (i/2)[J₁^μ (J₂·J₃) + J₃^μ (J₁·J₂)].
The amplitude of n = m + 1 gluons is the amputated current contracted with the last
polarisation, A(1, ..., n) = ε_n · [...]_{1,m}; with the spinor conventions of
:mod:`forward.amplitudes.spinors` it equals the Parke–Taylor form
A(..., i⁻, ..., j⁻, ...) = i ⟨ij⟩⁴ / (⟨12⟩⟨23⟩···⟨n1⟩) (tested to 1e-10).

**Cost.** All O(m²) sub-range currents are memoised; currents of one length are held
as one tensor (batch..., starts, 4) so that each split is one batched operation: O(m³)
vectorised operations, O(m⁴) arithmetic per ordering, all batch axes (points,
orderings, helicities) handled at once.
"""

from __future__ import annotations

import math

import torch

from forward._validation import check_finite, check_floating
from forward.amplitudes.spinors import complex_dtype, minkowski_dot

__all__ = ["colour_ordered_amplitude"]

_INV_ROOT2 = 1.0 / math.sqrt(2.0)


def _vertex3(j1, p1, j2, p2):
    """Colour-ordered three-vertex contracted with two currents (without the i/√2)."""
    return (
        minkowski_dot(j1, j2).unsqueeze(-1) * (p1 - p2)
        + minkowski_dot(p1 + 2 * p2, j1).unsqueeze(-1) * j2
        - minkowski_dot(2 * p1 + p2, j2).unsqueeze(-1) * j1
    )


def _vertex4(j1, j2, j3):
    """Colour-ordered four-vertex contracted with three currents (without the factor i)."""
    return minkowski_dot(j1, j3).unsqueeze(-1) * j2 - 0.5 * (
        minkowski_dot(j2, j3).unsqueeze(-1) * j1 + minkowski_dot(j1, j2).unsqueeze(-1) * j3
    )


def colour_ordered_amplitude(momenta: torch.Tensor, polarisations: torch.Tensor) -> torch.Tensor:
    """Colour-ordered tree amplitude A(1, ..., n) of n gluons in the given leg order.

    Args:
        momenta: outgoing momenta, shape (..., n, 4) as (E, px, py, pz) in GeV,
            float32/float64, n >= 3, Σ_i k_i = 0 (not checked: the recursion is evaluated
            as given); incoming gluons enter with negative energy.
        polarisations: polarisation vectors (upper index), shape (..., n, 4), complex
            (complex64 with float32 momenta, complex128 with float64), broadcastable
            with ``momenta`` over the leading axes; any vectors are accepted (e.g. a
            momentum in place of a polarisation for a Ward-identity check).

    Returns:
        A(1, ..., n) in the normalisation of the module docstring, shape of the
        broadcast leading axes, complex, in GeV^(4-n).

    Raises:
        TypeError, ValueError: wrong dtypes, shapes, n < 3, non-finite momenta.
    """
    check_floating("momenta", momenta)
    if momenta.ndim < 2 or momenta.shape[-1] != 4 or momenta.shape[-2] < 3:
        raise ValueError(
            f"momenta: expected shape (..., n, 4) with n >= 3 as (E, px, py, pz) in GeV, "
            f"got {tuple(momenta.shape)}"
        )
    cdt = complex_dtype(momenta.dtype)
    if not isinstance(polarisations, torch.Tensor) or polarisations.dtype != cdt:
        got = polarisations.dtype if isinstance(polarisations, torch.Tensor) else type(
            polarisations).__name__
        raise TypeError(f"polarisations: expected a {cdt} tensor, got {got}")
    if polarisations.shape[-2:] != momenta.shape[-2:]:
        raise ValueError(
            f"polarisations: expected shape (..., {momenta.shape[-2]}, 4) like momenta, "
            f"got {tuple(polarisations.shape)}"
        )
    check_finite("momenta", momenta)
    n = momenta.shape[-2]
    m = n - 1
    shape = torch.broadcast_shapes(momenta.shape[:-2], polarisations.shape[:-2])
    mom = momenta.expand(*shape, n, 4)
    eps = polarisations.expand(*shape, n, 4)
    # cur[L]: currents of the L consecutive legs starting at s = 0..m-L, shape (..., m-L+1, 4)
    cur = {1: eps[..., :m, :]}
    csum = torch.cat([torch.zeros_like(mom[..., :1, :]), mom[..., :m, :].cumsum(-2)], -2)
    mom_of = {L: csum[..., L:, :] - csum[..., : m - L + 1, :] for L in range(1, m + 1)}
    vsum = None
    for L in range(2, m + 1):
        count = m - L + 1
        v = None
        for a in range(1, L):
            b = L - a
            term = _vertex3(cur[a][..., :count, :], mom_of[a][..., :count, :],
                            cur[b][..., a:a + count, :], mom_of[b][..., a:a + count, :])
            v = term if v is None else v + term
        v = v * (1j * _INV_ROOT2)
        v4 = None
        for a in range(1, L - 1):
            for b in range(1, L - a):
                c = L - a - b
                term = _vertex4(cur[a][..., :count, :], cur[b][..., a:a + count, :],
                                cur[c][..., a + b:a + b + count, :])
                v4 = term if v4 is None else v4 + term
        if v4 is not None:
            v = v + 1j * v4
        if L < m:
            p2 = minkowski_dot(mom_of[L], mom_of[L]).unsqueeze(-1)
            cur[L] = v * (-1j) / p2
        else:
            vsum = v[..., 0, :]
    return minkowski_dot(eps[..., m, :], vsum)
