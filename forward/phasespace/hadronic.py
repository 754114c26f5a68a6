r"""Hadronic maps: unit hypercube ↔ hard events (x1, x2, final-state momenta).

A :class:`HadronicMap` composes the partonic energy and rapidity with any *partonic
map* (an object with ``dim``, ``n_out``, ``threshold`` in GeV² and
``forward(P, r, m2) -> (momenta, log_w)`` / ``inverse(P, momenta, m2) -> (r, log_w)``,
where ``m2`` = P² (given separately, as it is known more accurately than E² - p⃗²) and
``log_w`` is relative to dΦ_n(P; ...), e.g. :class:`~forward.phasespace.two_body.TwoBodyDecay`,
:class:`~forward.phasespace.rambo.Rambo`, :class:`~forward.phasespace.decays.DecayChain`).

Coordinates, in this order:

* ``r[:, 0] -> ŝ`` by the ŝ sampling on [ŝ_min, ŝ_max], ŝ_min = max(m_min², threshold),
  ŝ_max = min(m_max², s);
* ``r[:, 1] -> y`` uniform in |y| < -½ ln τ, τ = ŝ/s, the rapidity of the partonic
  system; x1 = √τ e^y, x2 = √τ e^(-y), and dx1 dx2 = dτ dy;
* ``r[:, 2:]`` -> the partonic map, run in the partonic centre-of-mass frame
  (P = (√ŝ, 0, 0, 0)); its momenta are then boosted along z by the rapidity y to the
  lab. Decay angles are therefore defined in rest frames reached by pure boosts from
  the partonic centre-of-mass frame (for the first two-body decay this is the same as
  from the lab, since the two frames differ by a boost along z).

``log_jac`` is relative to dμ = dx1 dx2 dΦ_n of :mod:`forward.events`; the inverse
returns minus the forward value at the same point. Inputs are clamped into
[eps, 1 - eps] (eps = machine epsilon of r's dtype) so points on the faces of the cube
give finite events and weights. Events outside the map's support (e.g. ŝ outside
[ŝ_min, ŝ_max]) come back from :meth:`HadronicMap.inverse` with r outside [0, 1]:
the map's density there is zero.
"""

from __future__ import annotations

import math

import torch

from forward.events import HardEvents
from forward.kinematics import boost_z
from forward.phasespace._checks import check_unit_points, clamp_unit
from forward.phasespace.invariants import FlatSampling, InvariantSampling, PowerLawSampling
from forward.phasespace.two_body import TwoBodyDecay

__all__ = ["HadronicMap", "SChannelMap", "TwoToTwoMap"]


def _positive(name: str, value) -> float:
    v = float(value)
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name}: expected a finite positive number in GeV, got {value!r}")
    return v


class HadronicMap:
    """(ŝ, y) × partonic map: r ∈ [0, 1]^dim ↔ HardEvents, see the module docstring.

    Args:
        sqrt_s: hadronic centre-of-mass energy in GeV.
        partonic: partonic map (``dim``, ``n_out``, ``threshold``, ``forward``, ``inverse``).
        s_sampling: sampling of ŝ (:mod:`forward.phasespace.invariants`).
        m_min: lower cut on √ŝ in GeV (the partonic threshold applies anyway).
        m_max: upper cut on √ŝ in GeV; default sqrt_s.

    Attributes:
        dim: 2 + partonic.dim.
        s_min, s_max: the ŝ range in GeV².

    Raises:
        ValueError: bad energies, or an empty ŝ range (e.g. masses above m_max).
    """

    def __init__(
        self,
        sqrt_s: float,
        partonic,
        s_sampling: InvariantSampling,
        m_min: float = 0.0,
        m_max: float | None = None,
    ) -> None:
        self.sqrt_s = _positive("sqrt_s", sqrt_s)
        if not isinstance(s_sampling, InvariantSampling):
            raise TypeError(
                f"s_sampling: expected an InvariantSampling (FlatSampling, BreitWignerSampling, "
                f"PowerLawSampling), got {type(s_sampling).__name__}"
            )
        m_min = float(m_min)
        if not (math.isfinite(m_min) and m_min >= 0):
            raise ValueError(f"m_min: expected a finite value >= 0 GeV, got {m_min}")
        m_max = self.sqrt_s if m_max is None else _positive("m_max", m_max)
        if m_max > self.sqrt_s:
            raise ValueError(f"m_max: expected <= sqrt_s = {self.sqrt_s} GeV, got {m_max}")
        self.partonic = partonic
        self.s_sampling = s_sampling
        self.dim = 2 + int(partonic.dim)
        self.n_out = int(partonic.n_out)
        self.s_min = max(m_min**2, float(partonic.threshold))
        self.s_max = m_max**2
        if not self.s_max > self.s_min:
            raise ValueError(
                f"m_max: the partonic mass range is empty: need sqrt(shat_max) = {m_max} GeV > "
                f"max(m_min, sum of final-state masses) = {math.sqrt(self.s_min)} GeV"
            )
        s_sampling.check_low(self.s_min)

    def forward(self, r: torch.Tensor) -> tuple[HardEvents, torch.Tensor]:
        """Hard events from hypercube points.

        Args:
            r: points in [0, 1], shape (n, dim); dtype/device set those of the output.

        Returns:
            (events, log_jac): HardEvents with momenta (n, n_out, 4) in GeV, and
            log_jac of shape (n,) relative to dx1 dx2 dΦ_n.
        """
        check_unit_points("r", r, self.dim)
        r = clamp_unit(r)
        s = self.sqrt_s**2
        shat, log_jac = self.s_sampling.forward(r[:, 0], self.s_min, self.s_max)
        # τ < 1 strictly: keeps the rapidity range (a Jacobian factor) > 0 at ŝ -> s
        log_tau = torch.log(shat / s).clamp(max=-torch.finfo(shat.dtype).tiny)
        y_max = -0.5 * log_tau
        y = (2 * r[:, 1] - 1) * y_max
        x1 = torch.exp(0.5 * log_tau + y)
        x2 = torch.exp(0.5 * log_tau - y)
        log_jac = log_jac - math.log(s) + torch.log(2 * y_max)
        momenta, log_w = self.partonic.forward(self._rest_momentum(shat), r[:, 2:], shat)
        momenta = boost_z(momenta, y.unsqueeze(-1))
        return HardEvents(momenta, x1, x2, self.sqrt_s), log_jac + log_w

    def inverse(self, events: HardEvents) -> tuple[torch.Tensor, torch.Tensor]:
        """Hypercube points of hard events (the inverse of :meth:`forward`).

        Args:
            events: HardEvents with momenta (n, n_out, 4), in the particle order of
                the partonic map, and sqrt_s equal to this map's.

        Returns:
            (r, log_jac): r of shape (n, dim) and log_jac = -(forward log_jac), shape (n,).
        """
        if not isinstance(events, HardEvents):
            raise TypeError(f"events: expected HardEvents, got {type(events).__name__}")
        if events.momenta.shape[1] != self.n_out:
            raise ValueError(
                f"events: expected momenta of shape (n, {self.n_out}, 4), "
                f"got {tuple(events.momenta.shape)}"
            )
        if not math.isclose(events.sqrt_s, self.sqrt_s, rel_tol=1e-12):
            raise ValueError(
                f"events: sqrt_s = {events.sqrt_s} differs from the map's {self.sqrt_s}"
            )
        s = self.sqrt_s**2
        x1, x2 = events.x1, events.x2
        log_tau = torch.log(x1) + torch.log(x2)
        shat = x1 * x2 * s
        y_max = -0.5 * log_tau
        y = 0.5 * (torch.log(x1) - torch.log(x2))
        r0, log_jac = self.s_sampling.inverse(shat, self.s_min, self.s_max)
        r1 = 0.5 * (y / y_max + 1)
        log_jac = log_jac + math.log(s) - torch.log(2 * y_max)
        momenta = boost_z(events.momenta, -y.unsqueeze(-1))
        r_part, log_w = self.partonic.inverse(self._rest_momentum(shat), momenta, shat)
        r = torch.cat([r0.unsqueeze(-1), r1.unsqueeze(-1), r_part], dim=-1)
        return r, log_jac + log_w

    @staticmethod
    def _rest_momentum(shat: torch.Tensor) -> torch.Tensor:
        z = torch.zeros_like(shat)
        return torch.stack([shat.sqrt(), z, z, z], dim=-1)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(sqrt_s={self.sqrt_s:g}, partonic={self.partonic!r}, "
            f"s_sampling={self.s_sampling!r}, shat in [{self.s_min:g}, {self.s_max:g}] GeV²)"
        )


class SChannelMap(HadronicMap):
    """2 → 1 → 2 map (Drell–Yan): ŝ by ``s_sampling``, rapidity, decay angles.

    ``r = (r_ŝ, r_y, r_cosθ, r_φ)``; cos θ = 2 r2 - 1 and φ = 2π r3 are the angles of
    the first particle in the pair's rest frame reached by a boost along z from the
    lab (θ measured from the beam-1 direction, +z). One channel per resonance: e.g.
    ``BreitWignerSampling(91.1876, 2.4952)`` for the Z, ``PowerLawSampling(2.0)`` for γ*.

    Args:
        sqrt_s: hadronic centre-of-mass energy in GeV.
        s_sampling: sampling of ŝ.
        masses: (m1, m2) of the two final-state particles in GeV.
        m_min, m_max: cuts on the pair mass √ŝ in GeV (m_max defaults to sqrt_s).
    """

    def __init__(
        self,
        sqrt_s: float,
        s_sampling: InvariantSampling,
        masses=(0.0, 0.0),
        m_min: float = 0.0,
        m_max: float | None = None,
    ) -> None:
        super().__init__(sqrt_s, TwoBodyDecay(masses), s_sampling, m_min=m_min, m_max=m_max)
        self.masses = self.partonic.masses


class TwoToTwoMap(SChannelMap):
    """General 2 → 2 map with masses (e.g. tt̄), ŝ from threshold.

    Same coordinates as :class:`SChannelMap` (θ is the scattering angle of particle 1
    from the beam-1 direction in the partonic centre-of-mass frame).

    Args:
        sqrt_s: hadronic centre-of-mass energy in GeV.
        masses: (m1, m2) in GeV.
        s_sampling: sampling of ŝ; default ``PowerLawSampling(1.0)`` (log-uniform in ŝ)
            when the lower end of the ŝ range is > 0, else ``FlatSampling()``.
        m_min, m_max: cuts on √ŝ in GeV.
    """

    def __init__(
        self,
        sqrt_s: float,
        masses,
        s_sampling: InvariantSampling | None = None,
        m_min: float = 0.0,
        m_max: float | None = None,
    ) -> None:
        if s_sampling is None:
            m = [float(x) for x in masses]
            low = max(float(m_min), sum(m)) if len(m) == 2 else 0.0
            s_sampling = PowerLawSampling(1.0) if low > 0 else FlatSampling()
        super().__init__(sqrt_s, s_sampling, masses=masses, m_min=m_min, m_max=m_max)
