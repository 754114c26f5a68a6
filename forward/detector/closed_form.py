r"""Closed-form acceptance and transfer of Gaussian lepton responses.

Where a detector smears a lepton's (pT, η, φ) with Gaussians and applies cuts on the
smeared values, the acceptance ε(x_hard) and the density ε·r(x_reco | x_hard) of the
selected reco observables are known exactly. Both detectors of :mod:`forward.detector`
have such a closed form for leptons:

* :class:`~forward.detector.gaussian.GaussianLeptonDetector`: pT' = pT (1 + σ_pT z),
  constant σ's;
* the card :class:`~forward.detector.smearing.Detector`: pT' = f pT with
  f = 1 + σ(X, |η|) z, σ the card's relative resolution at X = E or pT (per
  flavour, in bins of the true |η|), a reconstruction efficiency table on the true
  (pT, |η|), and Gaussian η, φ shifts.

Per lepton with relative resolution σ, efficiency e, reco thresholds
(pT_min, η_max) and angular widths (σ_η, σ_φ), w.r.t. dpT' dη' dφ':

.. math:: \varepsilon = e\, \Phi\Big(\frac{p_T - p_T^{min}}{\sigma p_T}\Big)
          \Big[\Phi\Big(\frac{\eta_{max} - \eta}{\sigma_\eta}\Big)
          - \Phi\Big(\frac{-\eta_{max} - \eta}{\sigma_\eta}\Big)\Big],\qquad
          \varepsilon\, r = e\, \mathcal N(p_T'; p_T, (\sigma p_T)^2)\,
          \mathcal N(\eta'; \eta, \sigma_\eta^2)\,
          \mathcal N_{wrapped}(\phi'; \phi, \sigma_\phi^2)\, \Theta_{cuts}.

(The clamp f ≥ 0 of the card detector lies 1/σ standard deviations away and is
neglected; so are wrapped φ images beyond ±2π.) :class:`LeptonResponse` holds these
per-lepton widths as functions of the hard observables; :class:`GaussianClosedForm`
multiplies them over the leptons of an event, and :class:`ExactTransfer` /
:class:`ExactAcceptance` present them with the interfaces of the learned networks
(``log_prob(x_reco, x_hard)``, ``logits(x_hard)``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from forward._validation import as_tensor, check_finite, check_floating

__all__ = [
    "check_cut_arguments",
    "GaussianClosedForm",
    "LeptonResponse",
    "log_diff_ndtr",
    "log_normal",
    "wrap_phi",
]

_LOG_2PI = math.log(2 * math.pi)


def check_cut_arguments(n_leptons, pt_min, eta_max) -> None:
    """Check the arguments of the detectors' ``closed_form``: ``n_leptons`` an int >= 1,
    ``pt_min`` a finite number >= 0 (GeV), ``eta_max`` a number > 0 (inf allowed).

    Raises:
        TypeError, ValueError: naming the argument.
    """
    if isinstance(n_leptons, bool) or not isinstance(n_leptons, int):
        raise TypeError(f"n_leptons: expected an int >= 1, got {n_leptons!r}")
    if n_leptons < 1:
        raise ValueError(f"n_leptons: expected an int >= 1, got {n_leptons}")
    for name, v, ok, want in (
            ("pt_min", pt_min, lambda x: math.isfinite(x) and x >= 0, "a finite number >= 0"),
            ("eta_max", eta_max, lambda x: x > 0, "a number > 0")):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not ok(float(v)):
            raise ValueError(f"{name}: expected {want}, got {v!r}")


def wrap_phi(phi: torch.Tensor) -> torch.Tensor:
    """Angles wrapped into (-π, π], same shape."""
    return math.pi - torch.remainder(math.pi - phi, 2 * math.pi)


def log_normal(x: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """log N(x; μ, σ²), elementwise."""
    return -0.5 * ((x - mu) / sigma) ** 2 - torch.log(sigma) - 0.5 * _LOG_2PI


def log_diff_ndtr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """log(Φ(a) - Φ(b)) for a > b, stable in both tails."""
    flip = (a + b) > 0  # Φ(a) - Φ(b) = Φ(-b) - Φ(-a) in the upper tail
    hi = torch.where(flip, -b, a)
    lo = torch.where(flip, -a, b)
    lhi = torch.special.log_ndtr(hi)
    llo = torch.special.log_ndtr(lo)
    return lhi + torch.log1p(-torch.exp(llo - lhi))


def _log_wrapped_normal(dphi: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    d = wrap_phi(dphi)
    images = torch.stack([d - 2 * math.pi, d, d + 2 * math.pi], -1)
    return (torch.logsumexp(-0.5 * (images / sigma.unsqueeze(-1)) ** 2, -1)
            - torch.log(sigma) - 0.5 * _LOG_2PI)


@dataclass(frozen=True)
class LeptonResponse:
    """The Gaussian response of one lepton flavour, as functions of its hard (pT, η).

    Attributes:
        relative_sigma: (pT [GeV], η) -> σ_pT/pT, tensors of shape (...).
        efficiency: (pT, η) -> reconstruction efficiency in [0, 1], shape (...); None
            for 1.
        sigma_eta: absolute η resolution (> 0).
        sigma_phi: absolute φ resolution in rad (> 0).
        pt_min: reco pT threshold in GeV (>= 0).
        eta_max: reco |η| limit (> 0, may be inf).
    """

    relative_sigma: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    efficiency: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None
    sigma_eta: float
    sigma_phi: float
    pt_min: float
    eta_max: float

    def __post_init__(self) -> None:
        for name in ("sigma_eta", "sigma_phi"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(
                    f"{name}: a closed-form transfer needs a finite positive angular "
                    f"resolution, got {v!r}"
                )
        if not (math.isfinite(self.pt_min) and self.pt_min >= 0):
            raise ValueError(f"pt_min: expected a finite threshold >= 0 GeV, got {self.pt_min!r}")
        if not self.eta_max > 0:
            raise ValueError(f"eta_max: expected a positive |η| limit, got {self.eta_max!r}")

    def log_acceptance(self, pt: torch.Tensor, eta: torch.Tensor) -> torch.Tensor:
        """log ε of a lepton at hard (pT, η), shape of ``pt``."""
        s = self.relative_sigma(pt, eta)
        out = torch.special.log_ndtr((pt - self.pt_min) / (s * pt))
        if math.isfinite(self.eta_max):
            out = out + log_diff_ndtr((self.eta_max - eta) / self.sigma_eta,
                                      (-self.eta_max - eta) / self.sigma_eta)
        if self.efficiency is not None:
            out = out + torch.log(self.efficiency(pt, eta))
        return out

    def log_density(self, reco: torch.Tensor, hard: torch.Tensor) -> torch.Tensor:
        """log ε·r w.r.t. dpT' dη' dφ' for reco, hard (pT, η, φ) of shape (..., 3).

        Returns:
            Shape (...); -inf where the reco lepton fails the cuts.
        """
        pt, eta = hard[..., 0], hard[..., 1]
        s = self.relative_sigma(pt, eta) * pt
        sig_eta = torch.full_like(pt, self.sigma_eta)
        out = (log_normal(reco[..., 0], pt, s) + log_normal(reco[..., 1], eta, sig_eta)
               + _log_wrapped_normal(reco[..., 2] - hard[..., 2],
                                     torch.full_like(pt, self.sigma_phi)))
        if self.efficiency is not None:
            out = out + torch.log(self.efficiency(pt, eta))
        ok = (reco[..., 0] >= self.pt_min) & (reco[..., 1].abs() <= self.eta_max)
        return torch.where(ok, out, torch.full_like(out, -math.inf))


class GaussianClosedForm:
    """Exact ε and ε·r of an event of ``n_leptons`` independently smeared leptons.

    The observables are (pT [GeV], η, φ) per lepton, flattened to (n, 3 n_leptons), in
    the same order at hard and reco level. When the hard events mix lepton flavours
    with different responses (Drell–Yan e⁺e⁻ and μ⁺μ⁻), the observables do not say
    which flavour an event has; the closed form is then the mixture over the flavour
    assignments with their shares (the density of flavour-blind observables).

    Args:
        responses: one tuple of :class:`LeptonResponse` (one per lepton) per flavour
            assignment.
        shares: probability of each assignment (positive, normalised here).
    """

    def __init__(self, responses: Sequence[Sequence[LeptonResponse]],
                 shares: Sequence[float] | None = None) -> None:
        rows = [tuple(r) for r in responses]
        if not rows or len({len(r) for r in rows}) != 1 or not rows[0]:
            raise ValueError("responses: expected one or more equal-length, non-empty "
                             "tuples of LeptonResponse")
        shares = [1.0] * len(rows) if shares is None else [float(s) for s in shares]
        if len(shares) != len(rows) or not all(math.isfinite(s) and s > 0 for s in shares):
            raise ValueError(f"shares: expected {len(rows)} positive numbers, got {shares}")
        total = sum(shares)
        self.responses = rows
        self.log_shares = [math.log(s / total) for s in shares]
        self.n_leptons = len(rows[0])

    def _obs(self, name: str, x) -> torch.Tensor:
        x = as_tensor(name, x)
        check_floating(name, x)
        d = 3 * self.n_leptons
        if x.ndim != 2 or x.shape[1] != d:
            raise ValueError(f"{name}: expected shape (n, {d}) as (pT, eta, phi) per lepton, "
                             f"got {tuple(x.shape)}")
        check_finite(name, x)
        return x.view(-1, self.n_leptons, 3)

    def _mix(self, terms: list[torch.Tensor]) -> torch.Tensor:
        if len(terms) == 1:
            return terms[0]
        return torch.logsumexp(torch.stack([t + s for t, s in zip(terms, self.log_shares,
                                                                   strict=True)], -1), -1)

    def lepton_widths(self, x_reco, assignment: int | None = None) -> torch.Tensor:
        """σ of (log pT, η, φ) of every lepton at its reco (pT, η), for importance-sampling
        proposals.

        Args:
            x_reco: reco observables, shape (n, 3 n_leptons).
            assignment: index of one flavour assignment (0 … len(responses) − 1), or
                None for the largest width over all of them (a covering width).

        Returns:
            Shape (n, n_leptons, 3), float64: σ_pT/pT (as the σ of log pT), σ_η, σ_φ.
        """
        r = self._obs("x_reco", x_reco).to(torch.float64)
        chosen = self.responses
        if assignment is not None:
            if (isinstance(assignment, bool) or not isinstance(assignment, int)
                    or not 0 <= assignment < len(self.responses)):
                raise ValueError(f"assignment: expected an integer in [0, "
                                 f"{len(self.responses) - 1}] or None, got {assignment!r}")
            chosen = [self.responses[assignment]]
        rows = []
        for row in chosen:
            per = []
            for i, resp in enumerate(row):
                pt, eta = r[:, i, 0], r[:, i, 1]
                per.append(torch.stack([resp.relative_sigma(pt, eta).to(pt).expand_as(pt),
                                        torch.full_like(pt, resp.sigma_eta),
                                        torch.full_like(pt, resp.sigma_phi)], -1))
            rows.append(torch.stack(per, 1))
        return torch.stack(rows, 0).amax(0)

    def log_acceptance(self, x_hard) -> torch.Tensor:
        """log ε(x_hard), shape (n,), for hard observables (n, 3 n_leptons)."""
        h = self._obs("x_hard", x_hard)
        return self._mix([sum(r.log_acceptance(h[:, i, 0], h[:, i, 1])
                              for i, r in enumerate(row)) for row in self.responses])

    def log_density(self, x_reco, x_hard) -> torch.Tensor:
        """log ε(x_hard) r(x_reco | x_hard) w.r.t. the reco observables, shape (n,).

        -inf where the reco event fails the cuts.
        """
        r, h = self._obs("x_reco", x_reco), self._obs("x_hard", x_hard)
        if r.shape != h.shape:
            raise ValueError(f"x_reco, x_hard: expected equal shapes, got {tuple(r.shape)} "
                             f"and {tuple(h.shape)}")
        return self._mix([sum(resp.log_density(r[:, i], h[:, i]) for i, resp in enumerate(row))
                          for row in self.responses])

    def log_transfer(self, x_reco, x_hard) -> torch.Tensor:
        """log r(x_reco | x_hard) = log_density - log_acceptance, shape (n,); -inf where
        ε(x_hard) = 0 (no reco event can come from there)."""
        la = self.log_acceptance(x_hard)
        ld = self.log_density(x_reco, x_hard)
        return torch.where(torch.isneginf(la), torch.full_like(ld, -math.inf), ld - la)
