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
from forward.amplitudes.spinors import complex_dtype

__all__ = ["colour_ordered_amplitude"]

_INV_ROOT2 = 1.0 / math.sqrt(2.0)


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Minkowski product over the leading component axis (4, ...)."""
    prod = a * b
    return prod[0] - prod[1:].sum(0)


def _vertex3(j1, p1, j2, p2):
    """Colour-ordered three-vertex contracted with two currents, without the i/√2.

    Component-first layout (4, ...): (J₁·J₂)(P₁-P₂) + ((P₁+2P₂)·J₁) J₂ - ((2P₁+P₂)·J₂) J₁.
    """
    return (_dot(j1, j2) * (p1 - p2) + _dot(p1 + 2 * p2, j1) * j2
            - _dot(2 * p1 + p2, j2) * j1)


def _vertex4(j1, j2, j3):
    """Colour-ordered four-vertex contracted with three currents, without the factor i."""
    return _dot(j1, j3) * j2 - 0.5 * (_dot(j2, j3) * j1 + _dot(j1, j2) * j3)


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
    # component-first layout (4, legs, *batch): contiguous slices for every operation
    mom = momenta.expand(*shape, n, 4).to(cdt).movedim((-1, -2), (0, 1))
    eps = polarisations.expand(*shape, n, 4).movedim((-1, -2), (0, 1))
    _, _, vsum = _berends_giele(mom[:, :m], eps[:, :m], amputate_last=True)
    # A = ε_n · (i/√2 Σ V₃ + i Σ V₄)
    return 1j * _dot(eps[:, m], vsum[:, 0])


def _berends_giele(mom: torch.Tensor, eps: torch.Tensor, *, amputate_last: bool):
    """All currents of consecutive legs, component-first layout.

    Args:
        mom: complex momenta (4, m, *batch) of the m legs in colour order.
        eps: their polarisations (4, m, *batch).
        amputate_last: leave the current of all m legs without its propagator (the
            amplitude's; its P² vanishes on shell).

    Returns:
        ``(cur, mom_of, last)``: ``cur[L]`` the currents J(s, s+L-1) of the L
        consecutive legs starting at s = 0..m-L, shape (4, m-L+1, *batch), for L < m
        (and L = m unless ``amputate_last``), rescaled as in the module docstring (the
        vertex factors i/√2, i and the propagator -i/P² combine into the real
        J = [Σ V₃/√2 + Σ V₄] / P²); ``mom_of[L]`` their momenta P; ``last`` the
        amputated bracket [Σ V₃/√2 + Σ V₄] of all m legs, shape (4, 1, *batch).
    """
    m = mom.shape[1]
    cur = {1: eps.contiguous()}
    csum = torch.cat([torch.zeros_like(mom[:, :1]), mom.cumsum(1)], 1)
    mom_of = {L: csum[:, L:] - csum[:, : m - L + 1] for L in range(1, m + 1)}
    last = None
    for L in range(2, m + 1):
        count = m - L + 1
        v = None
        for a in range(1, L):
            b = L - a
            term = _vertex3(cur[a][:, :count], mom_of[a][:, :count],
                            cur[b][:, a:a + count], mom_of[b][:, a:a + count])
            v = term if v is None else v + term
        v = v * _INV_ROOT2
        for a in range(1, L - 1):
            for b in range(1, L - a):
                c = L - a - b
                v = v + _vertex4(cur[a][:, :count], cur[b][:, a:a + count],
                                 cur[c][:, a + b:a + b + count])
        if L == m and amputate_last:
            last = v
        else:
            cur[L] = v / _dot(mom_of[L], mom_of[L])
    return cur, mom_of, last
