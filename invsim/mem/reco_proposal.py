r"""A reco-centred Student-t proposal for dilepton hard events, and its coordinates.

At leading order the two leptons of Drell–Yan are back to back in the transverse
plane with equal pT, so a hard event is u = (log pT, φ, η₁, η₂) (φ of ℓ⁻, ℓ⁺ at
φ + π), and x₁,₂ = pT (e^{±η₁} + e^{±η₂})/√s. The hard measure of
:mod:`forward.events` is then

.. math:: d\mu = dx_1\, dx_2\, d\Phi_2 = \frac{p_T^2}{8\pi^2 s}\; du .

:class:`RecoGaussianProposal` is a product of t distributions in u centred on the
values a reco event implies; it serves as a defensive component of the ML-MEM's
proposal (:class:`invsim.mem.StratifiedMixtureProposal`) and as the starting point of the
brute-force MEM (:mod:`invsim.bruteforce`).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict

import torch

from forward.detector.closed_form import wrap_phi as _wrap
from forward.detector.gaussian import GaussianLeptonDetector, lepton_observables
from forward.events import HardEvents
from invsim.flows.training import read_file, write_file
from invsim.mem.resolution import ResolutionTable

__all__ = ["RecoGaussianProposal", "dilepton_events", "log_dmu_du"]


def _observables(name: str, x) -> torch.Tensor:
    return lepton_observables(name, x, leptons=2)


def dilepton_events(u: torch.Tensor, sqrt_s: float) -> HardEvents:
    """Hard ℓ⁻ℓ⁺ events at u = (log pT, φ, η₁, η₂).

    Args:
        u: coordinates, shape (n, 4): log(pT/GeV), φ of ℓ⁻ (rad), η of ℓ⁻, η of ℓ⁺.
        sqrt_s: hadronic centre-of-mass energy in GeV.

    Returns:
        HardEvents with momenta (n, 2, 4) (ℓ⁻, ℓ⁺); x₁, x₂ may exceed 1 (unphysical
        points, where dσ/dμ = 0).
    """
    pt = torch.exp(u[:, 0])
    phi = _wrap(u[:, 1])
    c, s = torch.cos(phi), torch.sin(phi)
    e1, e2 = pt * torch.cosh(u[:, 2]), pt * torch.cosh(u[:, 3])
    k1 = torch.stack([e1, pt * c, pt * s, pt * torch.sinh(u[:, 2])], -1)
    k2 = torch.stack([e2, -pt * c, -pt * s, pt * torch.sinh(u[:, 3])], -1)
    x1 = pt * (torch.exp(u[:, 2]) + torch.exp(u[:, 3])) / sqrt_s
    x2 = pt * (torch.exp(-u[:, 2]) + torch.exp(-u[:, 3])) / sqrt_s
    return HardEvents(torch.stack([k1, k2], 1), x1, x2, sqrt_s)


def log_dmu_du(u: torch.Tensor, sqrt_s: float) -> torch.Tensor:
    """log|dμ/du| = log(pT² / (8π² s)) of :func:`dilepton_events`, shape (n,)."""
    return 2 * u[:, 0] - math.log(8 * math.pi**2 * sqrt_s**2)


class RecoGaussianProposal:
    """A Student-t proposal in u = (log pT, φ, η₁, η₂) centred on the reco event.

    The centre combines the two leptons, each weighted by its inverse variance (log pT
    from the weighted mean of log pT'₁ and log pT'₂, φ from the weighted circular mean
    of φ'₁ and φ'₂ - π); the widths are ``scale`` times the resolutions of those
    combinations. The per-lepton resolutions are the detector's constant ones, or
    those of a :class:`~invsim.mem.resolution.ResolutionTable` at each reco lepton
    (measured on training pairs). Independent t distributions with ``df`` degrees of
    freedom per coordinate (φ wrapped, its density summed over ±2π).

    Args:
        detector: a :class:`GaussianLeptonDetector` (constant widths), a
            :class:`~invsim.mem.resolution.ResolutionTable` (widths per lepton), or an
            object with ``lepton_widths(x_reco)`` → (m, 2, 3) such as a
            :class:`~forward.detector.closed_form.GaussianClosedForm` (widths of the
            exact response at each reco lepton; such a proposal cannot be saved).
        sqrt_s: hadronic centre-of-mass energy in GeV.
        scale: width factor (> 0).
        df: degrees of freedom (integer >= 1).
    """

    def __init__(self, detector: GaussianLeptonDetector | ResolutionTable,
                 sqrt_s: float = 13000.0, *, scale: float = 1.5, df: int = 5) -> None:
        if not (isinstance(detector, GaussianLeptonDetector | ResolutionTable)
                or callable(getattr(detector, "lepton_widths", None))):
            raise TypeError(f"detector: expected a GaussianLeptonDetector, a "
                            f"ResolutionTable or an object with lepton_widths(x_reco) "
                            f"(e.g. a GaussianClosedForm), got {type(detector).__name__}")
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"scale: expected a finite positive factor, got {scale!r}")
        if isinstance(df, bool) or not isinstance(df, int) or df < 1:
            raise ValueError(f"df: expected an integer >= 1, got {df!r}")
        if not (math.isfinite(sqrt_s) and sqrt_s > 0):
            raise ValueError(f"sqrt_s: expected a positive energy in GeV, got {sqrt_s!r}")
        self.detector, self.sqrt_s, self.scale, self.df = detector, float(sqrt_s), scale, df

    def lepton_widths(self, x_reco) -> torch.Tensor:
        """σ of (log pT, η, φ) of each reco lepton, shape (m, 2, 3)."""
        d = self.detector
        if isinstance(d, ResolutionTable):
            return d.lookup(_observables("x_reco", x_reco))
        y = _observables("x_reco", x_reco)
        if not isinstance(d, GaussianLeptonDetector):
            return d.lepton_widths(y)
        w = torch.tensor([d.sigma_pt, d.sigma_eta, d.sigma_phi], dtype=torch.float64,
                         device=y.device)
        return w.expand(y.shape[0], 2, 3)

    def centre(self, x_reco) -> tuple[torch.Tensor, torch.Tensor]:
        """(loc, width) of the proposal in u, each shape (m, 4), for x_reco (m, 6)."""
        y = _observables("x_reco", x_reco).to(torch.float64).view(-1, 2, 3)
        w = self.lepton_widths(y.view(-1, 6)).to(y.device)
        v_pt, v_phi = w[..., 0] ** -2, w[..., 2] ** -2  # inverse variances (m, 2)
        lpt = (torch.log(y[..., 0]) * v_pt).sum(-1) / v_pt.sum(-1)
        share = v_phi[:, 1] / v_phi.sum(-1)
        phi = _wrap(y[:, 0, 2] + share * _wrap(y[:, 1, 2] - math.pi - y[:, 0, 2]))
        loc = torch.stack([lpt, phi, y[:, 0, 1], y[:, 1, 1]], -1)
        width = torch.stack([v_pt.sum(-1).rsqrt(), v_phi.sum(-1).rsqrt(), w[:, 0, 1],
                             w[:, 1, 1]], -1)
        return loc, self.scale * width

    def _log_t(self, t: torch.Tensor) -> torch.Tensor:
        nu = float(self.df)
        c = math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2) - 0.5 * math.log(nu * math.pi)
        return c - 0.5 * (nu + 1) * torch.log1p(t * t / nu)

    def log_prob_u(self, u: torch.Tensor, loc: torch.Tensor, width: torch.Tensor):
        """log q(u), shape (...), for u, loc, width broadcasting to (..., 4)."""
        t = (u - loc) / width
        dphi = _wrap(u[..., 1] - loc[..., 1]) / width[..., 1]
        span = 2 * math.pi / width[..., 1]
        lphi = torch.logsumexp(torch.stack(
            [self._log_t(dphi - span), self._log_t(dphi), self._log_t(dphi + span)], -1), -1)
        other = self._log_t(t[..., [0, 2, 3]]).sum(-1)
        return other + lphi - torch.log(width).sum(-1)

    def sample_u(self, x_reco, n: int, *, generator: torch.Generator | None = None):
        """Draw u, shape (m, n, 4), and log q(u), shape (m, n)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n: expected an integer >= 1, got {n!r}")
        loc, width = self.centre(x_reco)
        m = loc.shape[0]
        dev = loc.device
        z = torch.randn(m, n, 4, generator=generator, dtype=loc.dtype, device=dev)
        chi2 = (torch.randn(m, n, 4, self.df, generator=generator, dtype=loc.dtype,
                            device=dev) ** 2).sum(-1)
        t = z / torch.sqrt(chi2 / self.df)
        u = loc.unsqueeze(1) + width.unsqueeze(1) * t
        u[..., 1] = _wrap(u[..., 1])
        return u, self.log_prob_u(u, loc.unsqueeze(1), width.unsqueeze(1))

    def sample_and_log_prob(self, x_reco, n: int, theta=None, *,
                            generator: torch.Generator | None = None):
        """MEM proposal interface: (HardEvents (m*n), log q w.r.t. dμ (m, n)), event-major.

        ``theta`` is ignored (the proposal does not depend on the parameters).
        """
        u, lq = self.sample_u(x_reco, n, generator=generator)
        m = u.shape[0]
        flat = u.reshape(m * n, 4)
        return dilepton_events(flat, self.sqrt_s), lq - log_dmu_du(flat, self.sqrt_s).view(m, n)

    def log_prob(self, hard: HardEvents, x_reco, theta=None) -> torch.Tensor:
        """log q(hard | x_reco) w.r.t. dμ, shape (m,), for paired rows.

        Hard events that are not back to back with equal pT (outside the LO dilepton
        manifold) get -inf.
        """
        p = hard.momenta.to(torch.float64)
        pt = torch.hypot(p[..., 1], p[..., 2])
        eta = torch.asinh(p[..., 3] / pt)
        phi = torch.atan2(p[:, 0, 2], p[:, 0, 1])
        u = torch.stack([torch.log(pt[:, 0]), phi, eta[:, 0], eta[:, 1]], -1)
        loc, width = self.centre(x_reco)
        lq = self.log_prob_u(u, loc, width) - log_dmu_du(u, self.sqrt_s)
        back = torch.isclose(pt[:, 0], pt[:, 1], rtol=1e-6) & torch.isclose(
            p[:, 0, 1:3], -p[:, 1, 1:3], rtol=1e-6, atol=1e-6 * float(pt.max())).all(-1)
        return torch.where(back, lq, torch.full_like(lq, -math.inf))

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Save the settings (refuses to overwrite unless asked)."""
        d = self.detector
        if not isinstance(d, GaussianLeptonDetector | ResolutionTable):
            raise TypeError(f"save: widths from a {type(d).__name__} cannot be saved; "
                            f"use a GaussianLeptonDetector or a ResolutionTable")
        widths = ({"resolution_table": d.to_dict()} if isinstance(d, ResolutionTable)
                  else {"detector": asdict(d)})
        write_file(path, {"kind": "reco-gaussian-proposal", **widths,
                          "sqrt_s": self.sqrt_s, "scale": self.scale, "df": self.df},
                   overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike, *, map_location=None) -> RecoGaussianProposal:
        """Load what :meth:`save` wrote."""
        d = read_file(path, "reco-gaussian-proposal", map_location=map_location)
        widths = (ResolutionTable.from_dict(d["resolution_table"]) if "resolution_table" in d
                  else GaussianLeptonDetector(**d["detector"]))
        return cls(widths, d["sqrt_s"], scale=d["scale"], df=d["df"])
