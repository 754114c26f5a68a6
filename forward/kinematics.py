r"""Four-vector kinematics on tensors of shape (..., 4) as (E, px, py, pz) in GeV.

Every function is plain torch: batched over leading dimensions, differentiable, and
the result keeps the input's device and dtype. The metric is (+, -, -, -).

Masses of (nearly) light-like vectors: rounding can make :math:`m^2 = E^2 - |\vec p|^2`
slightly negative. :func:`mass2` returns it as computed (possibly negative);
:func:`mass` returns :math:`\sqrt{\max(m^2, 0)}`, i.e. it clamps tiny negative values
to zero (its gradient is infinite at exactly :math:`m = 0`, as for the true mass).
"""

from __future__ import annotations

import math

import torch

from forward._validation import as_tensor, check_floating, check_last_dim

__all__ = [
    "boost",
    "boost_from_rest_frame",
    "boost_to_rest_frame",
    "boost_z",
    "collins_soper",
    "delta_phi",
    "delta_r",
    "dot",
    "from_pt_eta_phi_m",
    "mass",
    "mass2",
    "momentum",
    "phi",
    "pseudorapidity",
    "pt",
    "rapidity",
]

#: proton mass in GeV, used for the beams of :func:`collins_soper` when ``sqrt_s`` is given
PROTON_MASS = 0.93827208816


def _four(name: str, p) -> torch.Tensor:
    """Check that ``p`` is a floating tensor of shape (..., 4)."""
    check_floating(name, p)
    check_last_dim(name, p, 4, "as (E, px, py, pz)")
    return p


def dot(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Minkowski product p·q = E_p E_q - p⃗·q⃗.

    Args:
        p, q: four-vectors, shapes (..., 4) broadcastable, as (E, px, py, pz) in GeV.

    Returns:
        Tensor of the broadcast leading shape, in GeV².
    """
    _four("p", p)
    _four("q", q)
    return p[..., 0] * q[..., 0] - (p[..., 1:] * q[..., 1:]).sum(-1)


def mass2(p: torch.Tensor) -> torch.Tensor:
    """Invariant mass squared E² - |p⃗|², shape (...) in GeV²; may be slightly negative."""
    _four("p", p)
    return p[..., 0] ** 2 - (p[..., 1:] ** 2).sum(-1)


def mass(p: torch.Tensor) -> torch.Tensor:
    """Invariant mass sqrt(max(m², 0)), shape (...) in GeV (negative m² from rounding -> 0)."""
    return mass2(p).clamp(min=0.0).sqrt()


def momentum(p: torch.Tensor) -> torch.Tensor:
    """Magnitude of the three-momentum |p⃗|, shape (...) in GeV."""
    _four("p", p)
    return p[..., 1:].norm(dim=-1)


def pt(p: torch.Tensor) -> torch.Tensor:
    """Transverse momentum sqrt(px² + py²), shape (...) in GeV."""
    _four("p", p)
    return torch.hypot(p[..., 1], p[..., 2])


def rapidity(p: torch.Tensor) -> torch.Tensor:
    """Rapidity y = ½ ln((E + pz)/(E - pz)), shape (...); infinite along the beam axis."""
    _four("p", p)
    return 0.5 * (torch.log(p[..., 0] + p[..., 3]) - torch.log(p[..., 0] - p[..., 3]))


def pseudorapidity(p: torch.Tensor) -> torch.Tensor:
    """Pseudorapidity η = asinh(pz / pT), shape (...); ±inf along the beam axis."""
    _four("p", p)
    return torch.asinh(p[..., 3] / pt(p))


def phi(p: torch.Tensor) -> torch.Tensor:
    """Azimuth φ = atan2(py, px) in (-π, π], shape (...)."""
    _four("p", p)
    return torch.atan2(p[..., 2], p[..., 1])


def delta_phi(phi1: torch.Tensor, phi2: torch.Tensor) -> torch.Tensor:
    """Azimuthal difference φ1 - φ2 wrapped into [-π, π), broadcast shape."""
    d = phi1 - phi2
    return torch.remainder(d + math.pi, 2 * math.pi) - math.pi


def delta_r(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Angular distance ΔR = sqrt(Δη² + Δφ²) with φ wrap-around, broadcast shape (...)."""
    deta = pseudorapidity(p) - pseudorapidity(q)
    dphi = delta_phi(phi(p), phi(q))
    return torch.sqrt(deta**2 + dphi**2)


def from_pt_eta_phi_m(pt_, eta, phi_, m) -> torch.Tensor:
    """Four-vectors from (pT, η, φ, m).

    Args:
        pt_: transverse momentum in GeV, shape (...) (broadcast with the others).
        eta: pseudorapidity, shape (...).
        phi_: azimuth in radians, shape (...).
        m: mass in GeV (>= 0), shape (...) or a number.

    Returns:
        Tensor of shape (..., 4) as (E, px, py, pz) in GeV, dtype/device of ``pt_``.
    """
    pt_ = as_tensor("pt", pt_)
    check_floating("pt", pt_)
    eta = as_tensor("eta", eta, dtype=pt_.dtype, device=pt_.device)
    phi_ = as_tensor("phi", phi_, dtype=pt_.dtype, device=pt_.device)
    m = as_tensor("m", m, dtype=pt_.dtype, device=pt_.device)
    pt_, eta, phi_, m = torch.broadcast_tensors(pt_, eta, phi_, m)
    px = pt_ * torch.cos(phi_)
    py = pt_ * torch.sin(phi_)
    pz = pt_ * torch.sinh(eta)
    e = torch.sqrt((pt_ * torch.cosh(eta)) ** 2 + m**2)
    return torch.stack([e, px, py, pz], dim=-1)


def boost(p: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    r"""Lorentz boost of ``p`` by velocity ``beta``.

    A particle at rest acquires velocity ``beta``: :math:`E' = \gamma (E + \vec\beta\cdot\vec p)`,
    :math:`\vec p\,' = \vec p + \big(\tfrac{\gamma^2}{1+\gamma}\,\vec\beta\cdot\vec p
    + \gamma E\big)\vec\beta` (regular at :math:`\beta = 0`).

    Args:
        p: four-vectors, shape (..., 4) as (E, px, py, pz) in GeV.
        beta: velocity, shape (..., 3) broadcastable with ``p[..., 1:]``, with |beta| < 1.

    Returns:
        Boosted four-vectors, broadcast shape (..., 4).
    """
    _four("p", p)
    check_floating("beta", beta)
    check_last_dim("beta", beta, 3, "velocity (bx, by, bz)")
    b2 = (beta**2).sum(-1, keepdim=True)
    if bool((b2 >= 1).any()):
        raise ValueError(f"beta: expected |beta| < 1, got max |beta|² = {float(b2.max())}")
    gamma = 1.0 / torch.sqrt(1.0 - b2)
    e = p[..., :1]
    bp = (beta * p[..., 1:]).sum(-1, keepdim=True)
    e_new = gamma * (e + bp)
    p_new = p[..., 1:] + (gamma**2 / (1.0 + gamma) * bp + gamma * e) * beta
    return torch.cat([e_new, p_new], dim=-1)


def boost_z(p: torch.Tensor, rapidity: torch.Tensor) -> torch.Tensor:
    """Boost along +z by a rapidity (velocity tanh(rapidity)); exact for large rapidities.

    Args:
        p: four-vectors, shape (..., 4) as (E, px, py, pz) in GeV.
        rapidity: boost rapidity, shape broadcastable with ``p[..., 0]``.

    Returns:
        Boosted four-vectors, broadcast shape (..., 4).
    """
    _four("p", p)
    check_floating("rapidity", rapidity)
    ch, sh = torch.cosh(rapidity), torch.sinh(rapidity)
    e = p[..., 0] * ch + p[..., 3] * sh
    pz = p[..., 3] * ch + p[..., 0] * sh
    e, px, py, pz = torch.broadcast_tensors(e, p[..., 1], p[..., 2], pz)
    return torch.stack([e, px, py, pz], dim=-1)


def _velocity(q: torch.Tensor) -> torch.Tensor:
    _four("q", q)
    return q[..., 1:] / q[..., :1]


def boost_to_rest_frame(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Boost ``p`` into the rest frame of the time-like ``q`` (pure boost, no rotation).

    Args:
        p: four-vectors, shape (..., 4) in GeV.
        q: time-like four-vector(s) defining the frame, shape (..., 4) broadcastable.

    Returns:
        ``p`` in the rest frame of ``q``, broadcast shape (..., 4).
    """
    return boost(p, -_velocity(q))


def boost_from_rest_frame(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`boost_to_rest_frame`: ``p`` from q's rest frame back to q's frame.

    Args:
        p: four-vectors in the rest frame of ``q``, shape (..., 4) in GeV.
        q: time-like four-vector(s) in the target frame, shape (..., 4) broadcastable.
    """
    return boost(p, _velocity(q))


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True)


def collins_soper(
    l_minus: torch.Tensor, l_plus: torch.Tensor, sqrt_s: float | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Collins–Soper angles cos θ* and φ* of a lepton pair.

    The pair momentum :math:`Q = \ell^- + \ell^+` defines the frame: both beams are
    boosted (pure boost) into Q's rest frame; the z axis bisects the angle between
    beam 1 and minus beam 2, the x axis is perpendicular to it in the beams' plane,
    pointing along the pair's transverse momentum (away from the sum of the boosted
    beam directions), and y = z × x. θ* and φ* are the polar and azimuthal angles of
    the **negative lepton** in this frame (Collins & Soper 1977). As in ATLAS/CMS
    measurements at pp colliders, where the quark direction is unknown, the z axis
    (and with it y, keeping the frame right-handed) is flipped when the pair moves
    along -z (Q_z < 0), so that z points along the pair's longitudinal direction.
    At Q_T = 0 the x axis is taken along the lab x axis.

    Args:
        l_minus: negative lepton, shape (..., 4) as (E, px, py, pz) in GeV, lab frame.
        l_plus: positive lepton, shape (..., 4) broadcastable.
        sqrt_s: beam energy sum in GeV; if given, the beams are protons of mass
            0.938 GeV with energy sqrt_s/2 each, otherwise massless beams (whose
            boosted directions, hence the angles, do not depend on their energy).

    Returns:
        (cos_theta, phi), each of the broadcast leading shape; phi in (-π, π].
    """
    _four("l_minus", l_minus)
    _four("l_plus", l_plus)
    q = l_minus + l_plus
    dtype, device = q.dtype, q.device
    if sqrt_s is None:
        e_beam, pz_beam = 1.0, 1.0
    else:
        if not float(sqrt_s) > 2 * PROTON_MASS:
            raise ValueError(f"sqrt_s: expected > 2 m_p = {2 * PROTON_MASS} GeV, got {sqrt_s}")
        e_beam = 0.5 * float(sqrt_s)
        pz_beam = math.sqrt(e_beam**2 - PROTON_MASS**2)
    b1 = torch.tensor([e_beam, 0.0, 0.0, pz_beam], dtype=dtype, device=device)
    b2 = torch.tensor([e_beam, 0.0, 0.0, -pz_beam], dtype=dtype, device=device)
    b1r = _unit(boost_to_rest_frame(b1, q)[..., 1:])
    b2r = _unit(boost_to_rest_frame(b2, q)[..., 1:])
    sign = torch.where(q[..., 3:4] < 0, -1.0, 1.0).to(dtype)
    z = sign * _unit(b1r - b2r)
    xs = -(b1r + b2r)
    xs_norm = xs.norm(dim=-1, keepdim=True)
    degenerate = xs_norm <= 1e-12 * (1 + b1r.norm(dim=-1, keepdim=True))
    lab_x = torch.tensor([1.0, 0.0, 0.0], dtype=dtype, device=device).expand_as(xs)
    x = torch.where(degenerate, lab_x, xs / torch.where(degenerate, 1.0, xs_norm))
    y = torch.linalg.cross(z, x, dim=-1)
    lr = boost_to_rest_frame(l_minus, q)[..., 1:]
    lr, z, x, y = torch.broadcast_tensors(lr, z, x, y)
    cos_theta = (lr * z).sum(-1) / lr.norm(dim=-1)
    phi_ = torch.atan2((lr * y).sum(-1), (lr * x).sum(-1))
    return cos_theta, phi_
