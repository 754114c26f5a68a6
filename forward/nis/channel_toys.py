r"""A Drell–Yan-like toy with resonances and a continuum, and one channel map per term.

The toy lives on :math:`x = (s, c) \in [s_\text{lo}, s_\text{hi}] \times [-1, 1]`
(an invariant mass squared in GeV² and a decay angle cosine) with the measure
:math:`ds\,dc`:

.. math:: f(s, c) = a_0\, \rho_0(s)\, \tfrac38 (1 + c^2)
          + \sum_{k \ge 1} a_k\, \rho_k(s)\, \tfrac38 (1 + c)^2,

with :math:`\rho_0 \propto s^{-2}` (the photon continuum) and
:math:`\rho_k \propto 1/((s - M_k^2)^2 + M_k^2 \Gamma_k^2)` (Breit–Wigner peaks),
each normalised to one on :math:`[s_\text{lo}, s_\text{hi}]` in closed form, so the
exact integral is :math:`\sum_k a_k`. The channel maps (:class:`InvariantCubeMap`)
sample s by a power law or a Breit–Wigner (:mod:`forward.phasespace.invariants`) and
c uniformly; each follows one term in s but none follows the angular shape of the
others, so a multi-channel sampler still has work to do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from forward._validation import check_floating
from forward.phasespace.invariants import (
    BreitWignerSampling,
    InvariantSampling,
    PowerLawSampling,
)

__all__ = ["InvariantCubeMap", "ResonanceToy", "resonance_toy"]


class InvariantCubeMap:
    """r ∈ [0, 1]² ↔ x = (s, c): s from an invariant sampling, c = 2 r₁ - 1.

    Args:
        sampling: the sampling of s (:class:`forward.phasespace.PowerLawSampling`, ...).
        s_lo, s_hi: the range of s in GeV².

    Attributes:
        dim: 2.
    """

    dim = 2

    def __init__(self, sampling: InvariantSampling, s_lo: float, s_hi: float) -> None:
        if not isinstance(sampling, InvariantSampling):
            raise TypeError(
                f"sampling: expected an InvariantSampling, got {type(sampling).__name__}"
            )
        if not (0 < s_lo < s_hi < math.inf):
            raise ValueError(f"s_lo, s_hi: expected 0 < s_lo < s_hi, got {s_lo}, {s_hi}")
        sampling.check_low(s_lo)
        self.sampling = sampling
        self.s_lo, self.s_hi = float(s_lo), float(s_hi)

    def forward(self, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Points of the toy space from the unit square.

        Args:
            r: shape (n, 2) in [0, 1].

        Returns:
            ``(x, log_jac)``: x of shape (n, 2) as (s in GeV², c), and
            ``log |dx/dr|``, shape (n,).
        """
        check_floating("r", r)
        s, lj = self.sampling.forward(r[:, 0], self.s_lo, self.s_hi)
        return torch.stack([s, 2 * r[:, 1] - 1], dim=-1), lj + math.log(2.0)

    def inverse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The preimage of ``x`` (shape (n, 2)): ``(r, log_jac)`` with log_jac = -forward's.

        Points outside the map's range come back with r outside [0, 1].
        """
        check_floating("x", x)
        r0, lj = self.sampling.inverse(x[:, 0], self.s_lo, self.s_hi)
        return torch.stack([r0, 0.5 * (x[:, 1] + 1)], dim=-1), lj - math.log(2.0)

    def __repr__(self) -> str:
        return f"InvariantCubeMap({self.sampling!r}, s in [{self.s_lo:g}, {self.s_hi:g}])"


@dataclass(frozen=True)
class ResonanceToy:
    """The toy of the module docstring.

    Attributes:
        continuum: amplitude a₀ of the s⁻² continuum (its integral).
        peaks: ``(mass GeV, width GeV, amplitude)`` per Breit–Wigner peak.
        m_min, m_max: range of √s in GeV.
    """

    continuum: float
    peaks: tuple[tuple[float, float, float], ...]
    m_min: float
    m_max: float

    @property
    def integral(self) -> float:
        """The exact integral of :meth:`__call__` over the toy space."""
        return self.continuum + sum(a for _, _, a in self.peaks)

    def maps(self) -> list[InvariantCubeMap]:
        """One channel per term: the power law s⁻² first, then one Breit–Wigner per peak."""
        lo, hi = self.m_min**2, self.m_max**2
        out = [InvariantCubeMap(PowerLawSampling(2.0), lo, hi)]
        out += [InvariantCubeMap(BreitWignerSampling(m, g), lo, hi) for m, g, _ in self.peaks]
        return out

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """f(x) for x of shape (n, 2) as (s in GeV², c); returns shape (n,), float64."""
        check_floating("x", x)
        s, c = x[:, 0].to(torch.float64), x[:, 1].to(torch.float64)
        lo, hi = self.m_min**2, self.m_max**2
        f = self.continuum * 0.375 * (1 + c * c) / (s * s) / (1 / lo - 1 / hi)
        for m, g, a in self.peaks:
            mg = m * g
            norm = (math.atan((hi - m * m) / mg) - math.atan((lo - m * m) / mg)) / mg
            f = f + a * 0.375 * (1 + c) ** 2 / ((s - m * m) ** 2 + mg * mg) / norm
        return f


def resonance_toy(
    peaks: tuple[tuple[float, float, float], ...] = ((91.19, 2.5, 1.0), (300.0, 12.0, 0.05)),
    continuum: float = 0.5,
    m_min: float = 50.0,
    m_max: float = 1000.0,
) -> ResonanceToy:
    """A toy like Drell–Yan γ*/Z/Z′: a Z-like and a Z′-like peak over a continuum.

    Args:
        peaks: ``(mass GeV, width GeV, amplitude)`` per peak; masses inside the range.
        continuum: amplitude of the continuum (>= 0).
        m_min, m_max: range of √s in GeV, 0 < m_min < m_max.

    Returns:
        A :class:`ResonanceToy` (callable on x of shape (n, 2); ``maps()``, ``integral``).
    """
    if not (0 < m_min < m_max < math.inf):
        raise ValueError(f"m_min, m_max: expected 0 < m_min < m_max, got {m_min}, {m_max}")
    if not (continuum >= 0 and math.isfinite(continuum)):
        raise ValueError(f"continuum: expected a finite amplitude >= 0, got {continuum}")
    for p in peaks:
        if len(p) != 3 or not (p[0] > 0 and p[1] > 0 and p[2] >= 0):
            raise ValueError(
                f"peaks: expected (mass > 0, width > 0, amplitude >= 0) triples, got {p}"
            )
    return ResonanceToy(float(continuum), tuple(tuple(map(float, p)) for p in peaks),
                        float(m_min), float(m_max))
