r"""Two-body decays P → p1 p2 in the rest frame of P, and their inverse.

**Frame convention.** The decay angles (cos θ, φ) of ``p1`` are the polar and
azimuthal angles of its three-momentum in the rest frame of P reached from the frame
P is given in (normally the lab) by a *pure boost* (no rotation), i.e. with respect
to that frame's z axis (for a pair produced by two beams along ±z, the z axis is the
beam-1 direction). ``p2`` is back-to-back with ``p1`` there.

**Weight.** With :math:`\bar\beta = \lambda^{1/2}(M^2, m_1^2, m_2^2)/M^2`,

.. math:: d\Phi_2(P; p_1, p_2) = \frac{\bar\beta}{32\pi^2}\, d\cos\theta\, d\phi,

so the map r ∈ [0, 1]² → (cos θ = 2 r0 - 1, φ = 2π r1) has the constant density
:math:`\bar\beta / (8\pi)` relative to dΦ_2 (its full volume).
"""

from __future__ import annotations

import math

import torch

from forward.kinematics import mass2

__all__ = [
    "TwoBodyDecay",
    "decay_angles",
    "decay_momenta",
    "kallen",
    "log_two_body_volume",
]


def kallen(a: torch.Tensor, b, c) -> torch.Tensor:
    """Källén function λ(a, b, c) = a² + b² + c² - 2ab - 2ac - 2bc (broadcast)."""
    return a**2 + b**2 + c**2 - 2 * (a * b + a * c + b * c)


def _p_star(m2_parent, m1, m2):
    """Momentum in the parent rest frame and β̄ = √λ / M², from the parent mass squared.

    Degenerate points (M² -> 0, or exactly at threshold, reached only on the faces of
    the hypercube) give q = 0 and β̄ floored at the smallest normal float, so that
    momenta and log-weights stay finite.
    """
    tiny = torch.finfo(m2_parent.dtype).tiny
    m2_parent = m2_parent.clamp(min=tiny)
    # factored λ(M², m1², m2²): accurate near threshold, unlike the expanded form
    lam = ((m2_parent - (m1 + m2) ** 2) * (m2_parent - (m1 - m2) ** 2)).clamp(min=0.0)
    sqrt_lam = lam.sqrt()
    return sqrt_lam / (2 * m2_parent.sqrt()), (sqrt_lam / m2_parent).clamp(min=tiny)


def _from_rest(p: torch.Tensor, P: torch.Tensor, M: torch.Tensor) -> torch.Tensor:
    """Pure boost of ``p`` from the rest frame of P (mass M) to P's frame.

    Written with M rather than the velocity, so it stays accurate at large boosts when
    M is known better than sqrt(E² - p⃗²).
    """
    M = M.unsqueeze(-1)
    e, k = p[..., :1], p[..., 1:]
    EP, KP = P[..., :1], P[..., 1:]
    kk = (KP * k).sum(-1, keepdim=True)
    e_new = (EP * e + kk) / M
    k_new = k + KP * (e + kk / (EP + M)) / M
    return torch.cat([e_new, k_new], -1)


def _to_rest(p: torch.Tensor, P: torch.Tensor, M: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`_from_rest`: ``p`` into the rest frame of P (mass M)."""
    return _from_rest(p, torch.cat([P[..., :1], -P[..., 1:]], -1), M)


def log_two_body_volume(m2_parent: torch.Tensor, m1, m2) -> torch.Tensor:
    """log of the two-body phase-space volume β̄/(8π), shape of ``m2_parent``.

    Args:
        m2_parent: parent invariant mass squared M² in GeV², shape (...).
        m1, m2: daughter masses in GeV, numbers or tensors broadcastable.
    """
    _, beta = _p_star(m2_parent, m1, m2)
    return torch.log(beta) - math.log(8 * math.pi)


def decay_momenta(
    P: torch.Tensor,
    m1,
    m2,
    cos_theta: torch.Tensor,
    phi: torch.Tensor,
    m2_parent: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Daughter momenta for given decay angles (see the module's frame convention).

    Args:
        P: parent momenta, shape (n, 4) as (E, px, py, pz) in GeV.
        m1, m2: daughter masses in GeV, numbers or tensors of shape (n,).
        cos_theta: cos θ of ``p1`` in P's rest frame, shape (n,).
        phi: azimuth φ of ``p1`` in P's rest frame, shape (n,).
        m2_parent: P² in GeV², shape (n,), when known more accurately than from P's
            components (E² - p⃗² loses precision near threshold at large boosts).

    Returns:
        (p1, p2, log_vol): daughters in P's frame, each shape (n, 4), and
        log(β̄/(8π)), shape (n,).
    """
    if m2_parent is None:
        m2_parent = mass2(P)
    q, beta = _p_star(m2_parent, m1, m2)
    M = m2_parent.clamp(min=torch.finfo(P.dtype).tiny).sqrt()
    sin_theta = torch.sqrt((1 - cos_theta**2).clamp(min=0.0))
    n_hat = torch.stack(
        [sin_theta * torch.cos(phi), sin_theta * torch.sin(phi), cos_theta], dim=-1
    )
    m1t = torch.as_tensor(m1, dtype=P.dtype, device=P.device)
    m2t = torch.as_tensor(m2, dtype=P.dtype, device=P.device)
    e1 = torch.sqrt(q**2 + m1t**2)
    e2 = torch.sqrt(q**2 + m2t**2)
    k = q.unsqueeze(-1) * n_hat
    p1 = torch.cat([e1.unsqueeze(-1), k], dim=-1)
    p2 = torch.cat([e2.unsqueeze(-1), -k], dim=-1)
    p1 = _from_rest(p1, P, M)
    p2 = _from_rest(p2, P, M)
    return p1, p2, torch.log(beta) - math.log(8 * math.pi)


def decay_angles(
    P: torch.Tensor, p1: torch.Tensor, m2_parent: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decay angles of ``p1`` in the rest frame of ``P`` (inverse of :func:`decay_momenta`).

    Args:
        P: parent momenta, shape (n, 4) in GeV.
        p1: first daughter in the same frame, shape (n, 4).
        m2_parent: P² in GeV², shape (n,), if known more accurately than from P.

    Returns:
        (cos_theta, phi), shape (n,) each; phi in [0, 2π). A daughter with zero
        momentum in P's rest frame (possible only at threshold) gives (1, 0).
    """
    if m2_parent is None:
        m2_parent = mass2(P)
    M = m2_parent.clamp(min=torch.finfo(P.dtype).tiny).sqrt()
    k = _to_rest(p1, P, M)[..., 1:]
    norm = k.norm(dim=-1)
    # a zero momentum (only on faces of the hypercube) has no direction: cos θ = 1
    cos_theta = torch.where(norm > 0, k[..., 2] / torch.where(norm > 0, norm, 1.0), 1.0)
    phi = torch.remainder(torch.atan2(k[..., 1], k[..., 0]), 2 * math.pi)
    return cos_theta, phi


class TwoBodyDecay:
    """Partonic map for P → p1 p2 with fixed masses: r ∈ [0, 1]² ↔ (cos θ, φ).

    ``r[:, 0] -> cos θ = 2 r0 - 1`` and ``r[:, 1] -> φ = 2π r1`` (module convention).

    Args:
        masses: (m1, m2) in GeV, each >= 0.

    Attributes:
        dim: 2 random numbers.
        n_out: 2 particles.
        masses: the daughter masses.
        threshold: (m1 + m2)², the smallest allowed P² in GeV².
    """

    dim = 2
    n_out = 2

    def __init__(self, masses=(0.0, 0.0)) -> None:
        masses = tuple(float(m) for m in masses)
        if len(masses) != 2:
            raise ValueError(f"masses: expected two masses (m1, m2) in GeV, got {len(masses)}")
        for i, m in enumerate(masses):
            if not (math.isfinite(m) and m >= 0):
                raise ValueError(f"masses[{i}]: expected a finite mass >= 0 GeV, got {m}")
        self.masses = masses
        self.threshold = (masses[0] + masses[1]) ** 2

    def forward(
        self, P: torch.Tensor, r: torch.Tensor, m2: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Momenta from unit-square points.

        Args:
            P: total momentum, shape (n, 4) in GeV, with P² > threshold.
            r: points, shape (n, 2) in [0, 1].
            m2: P² in GeV², shape (n,), if known more accurately than from P.

        Returns:
            (momenta, log_w): shape (n, 2, 4) in P's frame, and the log-density
            log(β̄/(8π)) relative to dΦ_2, shape (n,).
        """
        cos_theta = 2 * r[:, 0] - 1
        phi = 2 * math.pi * r[:, 1]
        p1, p2, log_w = decay_momenta(P, *self.masses, cos_theta, phi, m2)
        return torch.stack([p1, p2], dim=-2), log_w

    def inverse(
        self, P: torch.Tensor, momenta: torch.Tensor, m2: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Unit-square points from momenta (the inverse of :meth:`forward`).

        Args:
            P: total momentum, shape (n, 4) in GeV.
            momenta: shape (n, 2, 4).
            m2: P² in GeV², shape (n,), if known more accurately than from P.

        Returns:
            (r, log_w): r shape (n, 2); log_w = -log(β̄/(8π)), shape (n,).
        """
        m2 = mass2(P) if m2 is None else m2
        cos_theta, phi = decay_angles(P, momenta[:, 0], m2)
        r = torch.stack([(cos_theta + 1) / 2, phi / (2 * math.pi)], dim=-1)
        return r, -log_two_body_volume(m2, *self.masses)

    def __repr__(self) -> str:
        return f"TwoBodyDecay(masses={self.masses})"
