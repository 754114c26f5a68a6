r"""One-dimensional samplings of an invariant mass squared: r ∈ (0, 1) ↔ s ∈ [low, high].

Each sampling is a bijection with a shape suited to a propagator:

* :class:`FlatSampling`: uniform in s;
* :class:`BreitWignerSampling`: density ∝ 1 / ((s - M²)² + M²Γ²) (arctan map), also
  a good proposal for running-width propagators (s - M²)² + (sΓ/M)²;
* :class:`PowerLawSampling`: density ∝ s^(-ν) = 1/m^(2ν), e.g. ν = 1 (log-uniform) or
  ν ≈ 2 for the photon continuum and for PDF-suppressed thresholds.

``forward(r, low, high) -> (s, log_jac)`` with ``log_jac = log |ds/dr|`` and
``inverse(s, low, high) -> (r, log_jac)`` with ``log_jac = log |dr/ds|`` (the negative).
The bounds ``low``/``high`` (GeV²) are numbers or tensors broadcastable with ``r``,
so a batch may have a different range per event (e.g. a decay's upper bound set by
its parent's mass).
"""

from __future__ import annotations

import abc
import math

import torch

from forward._validation import as_tensor, check_floating

__all__ = [
    "BreitWignerSampling",
    "FlatSampling",
    "InvariantSampling",
    "PowerLawSampling",
]


def _bounds(x: torch.Tensor, low, high) -> tuple[torch.Tensor, torch.Tensor]:
    low = as_tensor("low", low, dtype=x.dtype, device=x.device)
    high = as_tensor("high", high, dtype=x.dtype, device=x.device)
    if bool((high <= low).any()):
        raise ValueError(
            f"high: expected high > low for every event, got {int((high <= low).sum())} "
            f"with high <= low, e.g. low={low.flatten()[:1].tolist()}, "
            f"high={high.flatten()[:1].tolist()}"
        )
    return low, high


class InvariantSampling(abc.ABC):
    """Base class: a monotonic bijection r ∈ [0, 1] ↔ s ∈ [low, high] with its log-Jacobian."""

    def check_low(self, low: float) -> None:
        """Raise ``ValueError`` if this sampling cannot start at ``low`` (GeV²)."""
        if not low >= 0:
            raise ValueError(f"low: expected a lower bound >= 0 GeV², got {low}")

    def forward(self, r: torch.Tensor, low, high) -> tuple[torch.Tensor, torch.Tensor]:
        """Map r to s.

        Args:
            r: points in [0, 1], shape (n,) (any shape works).
            low, high: bounds in GeV², numbers or tensors broadcastable with ``r``.

        Returns:
            (s, log_jac): s in GeV², log |ds/dr|, both of r's broadcast shape.
        """
        check_floating("r", r)
        low, high = _bounds(r, low, high)
        s, log_jac = self._forward(r, low, high)
        # rounding must not leave the range (it would cross a threshold downstream)
        return torch.minimum(torch.maximum(s, low), high), log_jac

    def inverse(self, s: torch.Tensor, low, high) -> tuple[torch.Tensor, torch.Tensor]:
        """Map s back to r.

        Args:
            s: invariant masses squared in GeV², shape (n,).
            low, high: the bounds used in :meth:`forward`.

        Returns:
            (r, log_jac): r in [0, 1] and log |dr/ds|, both of s's broadcast shape.
        """
        check_floating("s", s)
        low, high = _bounds(s, low, high)
        r, log_jac = self._inverse(s, low, high)
        return r, log_jac

    @abc.abstractmethod
    def _forward(self, r, low, high): ...

    @abc.abstractmethod
    def _inverse(self, s, low, high): ...


class FlatSampling(InvariantSampling):
    """Uniform in s: s = low + r (high - low)."""

    def _forward(self, r, low, high):
        width = high - low
        # measured from the nearer end: accurate close to either bound
        s = torch.where(r <= 0.5, low + r * width, high - (1 - r) * width)
        return s, torch.log(width).expand_as(s)

    def _inverse(self, s, low, high):
        width = high - low
        r = (s - low) / width
        return r, (-torch.log(width)).expand_as(r)

    def __repr__(self) -> str:
        return "FlatSampling()"


class BreitWignerSampling(InvariantSampling):
    """Breit–Wigner in s: s = M² + MΓ tan(θ), θ uniform between the bounds' images.

    Evaluated with the tangent addition formula from the nearer bound,
    s - low = MΓ (1 + x_lo²) tan Δ / (1 - x_lo tan Δ) with x = (s - M²)/(MΓ) and
    Δ = θ - θ_lo, so that s stays accurate next to either bound (no cancellation in
    M² + MΓ tan θ far from the peak).

    Args:
        mass: pole mass M in GeV (> 0).
        width: width Γ in GeV (> 0).
    """

    def __init__(self, mass: float, width: float) -> None:
        mass, width = float(mass), float(width)
        if not (math.isfinite(mass) and mass > 0):
            raise ValueError(f"mass: expected a finite positive mass in GeV, got {mass}")
        if not (math.isfinite(width) and width > 0):
            raise ValueError(f"width: expected a finite positive width in GeV, got {width}")
        self.mass = mass
        self.width = width

    def _x(self, s):
        return (s - self.mass**2) / (self.mass * self.width)

    def _span(self, low, high):
        """θ_hi - θ_lo in (0, π), from the bounds without cancellation."""
        x_lo, x_hi = self._x(low), self._x(high)
        return torch.atan2((high - low) / (self.mass * self.width), 1 + x_lo * x_hi)

    def _log_ds_dtheta(self, s):
        m2, mg = self.mass**2, self.mass * self.width
        return torch.log(((s - m2) ** 2 + mg**2) / mg)

    def _forward(self, r, low, high):
        mg = self.mass * self.width
        span = self._span(low, high)
        t_lo, t_hi = torch.tan(r * span), torch.tan((1 - r) * span)
        x_lo, x_hi = self._x(low), self._x(high)
        from_low = low + mg * (1 + x_lo**2) * t_lo / (1 - x_lo * t_lo)
        from_high = high - mg * (1 + x_hi**2) * t_hi / (1 + x_hi * t_hi)
        s = torch.where(r <= 0.5, from_low, from_high)
        return s, torch.log(span) + self._log_ds_dtheta(s)

    def _inverse(self, s, low, high):
        mg = self.mass * self.width
        span = self._span(low, high)
        d_lo, d_hi = s - low, high - s
        x_lo, x_hi = self._x(low), self._x(high)
        # angle from each bound, atan2 keeps it in (0, π) even past the pole
        a_lo = torch.atan2(d_lo, mg * (1 + x_lo**2) + x_lo * d_lo)
        a_hi = torch.atan2(d_hi, mg * (1 + x_hi**2) - x_hi * d_hi)
        r = torch.where(d_lo <= d_hi, a_lo / span, 1 - a_hi / span)
        return r, -(torch.log(span) + self._log_ds_dtheta(s))

    def __repr__(self) -> str:
        return f"BreitWignerSampling(mass={self.mass:g}, width={self.width:g})"


class PowerLawSampling(InvariantSampling):
    """Density ∝ s^(-nu): s^(1-nu) uniform (nu ≠ 1) or log s uniform (nu = 1).

    Args:
        nu: exponent ν (any real); for ν >= 1 the lower bound must be > 0.
    """

    def __init__(self, nu: float = 1.0) -> None:
        nu = float(nu)
        if not math.isfinite(nu):
            raise ValueError(f"nu: expected a finite exponent, got {nu}")
        self.nu = nu
        self._log = abs(1.0 - nu) < 1e-8

    def check_low(self, low: float) -> None:
        """Require low > 0 for nu >= 1 (the density is not integrable at 0)."""
        super().check_low(low)
        if self.nu >= 1 and not low > 0:
            raise ValueError(
                f"low: PowerLawSampling(nu={self.nu:g}) needs a lower bound > 0 GeV², got {low}"
            )

    def _check(self, low):
        if self.nu >= 1 and bool((low <= 0).any()):
            raise ValueError(
                f"low: PowerLawSampling(nu={self.nu:g}) needs a lower bound > 0 GeV², "
                f"got {float(low.min())}"
            )

    def _forward(self, r, low, high):
        self._check(low)
        if self._log:
            log_ratio = torch.log(high / low)
            s = low * torch.exp(r * log_ratio)
            return s, torch.log(s * log_ratio)
        a = 1.0 - self.nu
        u_lo, u_hi = low**a, high**a
        s = (u_lo + r * (u_hi - u_lo)) ** (1.0 / a)
        return s, torch.log((u_hi - u_lo) / a) + self.nu * torch.log(s)

    def _inverse(self, s, low, high):
        self._check(low)
        if self._log:
            log_ratio = torch.log(high / low)
            r = torch.log(s / low) / log_ratio
            return r, -torch.log(s * log_ratio)
        a = 1.0 - self.nu
        u_lo, u_hi = low**a, high**a
        r = (s**a - u_lo) / (u_hi - u_lo)
        return r, -(torch.log((u_hi - u_lo) / a) + self.nu * torch.log(s))

    def __repr__(self) -> str:
        return f"PowerLawSampling(nu={self.nu:g})"
