r"""A closed-form Gaussian lepton detector: the reference for validating the ML-MEM.

Observables per lepton are (pT [GeV], η, φ [rad]); an event of k leptons has shape
(3k,), in the order of the process's ``final_state`` (Drell–Yan: ℓ⁻ then ℓ⁺).

Independently per lepton, pT' = pT (1 + σ_pT z₁), η' = η + σ_η z₂, φ' = φ + σ_φ z₃
wrapped into (-π, π]; a lepton is reconstructed when pT' > ``pt_min`` and
|η'| < ``eta_max``, and an event passes when all its leptons are. So, w.r.t.
dpT' dη' dφ' per lepton,

.. math:: \varepsilon(y)\, r(x \mid y) = \prod_\ell \mathcal N(p_T'; p_T, (\sigma_{p_T} p_T)^2)\,
          \mathcal N(\eta'; \eta, \sigma_\eta^2)\, \mathcal N_\text{wrapped}(\phi'; \phi,
          \sigma_\phi^2)\;\Theta_\text{cuts}(x),

and ε(y) = ∏_ℓ Φ((p_T - p_T^{min})/(σ_{p_T} p_T)) [Φ((η_max - η)/σ_η) - Φ((-η_max - η)/σ_η)]
(:mod:`forward.detector.closed_form`). It follows the detector protocol of
:mod:`forward.detector` (``reconstruct(events, final_state) -> RecoEvents``) and
also works directly on observables (:meth:`GaussianLeptonDetector.smear`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from forward import kinematics as kin
from forward._validation import as_tensor, check_finite, check_floating
from forward.detector.closed_form import (
    GaussianClosedForm,
    LeptonResponse,
    check_cut_arguments,
    wrap_phi,
)
from forward.detector.objects import ObjectType, RecoEvents
from forward.events import HardEvents

__all__ = ["GaussianLeptonDetector", "lepton_observables"]

_CHARGED_LEPTONS = (11, 13, 15)


def lepton_observables(name: str, x, leptons: int | None = None) -> torch.Tensor:
    """Check lepton observables: a floating tensor (n, 3k) of (pT, η, φ) per lepton.

    Args:
        name: argument name for error messages.
        x: the observables.
        leptons: the expected number of leptons k, or None for any k >= 1.

    Returns:
        ``x`` as a tensor.
    """
    x = as_tensor(name, x)
    check_floating(name, x)
    ok = x.ndim == 2 and x.shape[1] > 0 and x.shape[1] % 3 == 0
    if ok and leptons is not None:
        ok = x.shape[1] == 3 * leptons
    if not ok:
        want = f"(n, {3 * leptons})" if leptons is not None else "(n, 3k)"
        raise ValueError(f"{name}: expected shape {want} as (pT, eta, phi) per lepton, "
                         f"got {tuple(x.shape)}")
    check_finite(name, x)
    return x


@dataclass(frozen=True)
class GaussianLeptonDetector:
    """Gaussian smearing of lepton (pT, η, φ) and reco cuts, with closed-form ε and r.

    Attributes:
        sigma_pt: relative pT resolution (> 0).
        sigma_eta: absolute η resolution (> 0).
        sigma_phi: absolute φ resolution in rad (> 0, < 1).
        pt_min: reco pT threshold in GeV (>= 0).
        eta_max: reco |η| limit (> 0).
    """

    sigma_pt: float = 0.02
    sigma_eta: float = 0.01
    sigma_phi: float = 0.01
    pt_min: float = 100.0
    eta_max: float = 2.5

    def __post_init__(self) -> None:
        for name in ("sigma_pt", "sigma_eta", "sigma_phi", "eta_max"):
            v = getattr(self, name)
            if isinstance(v, bool) or not (isinstance(v, (int, float)) and math.isfinite(v)
                                           and v > 0):
                raise ValueError(f"{name}: expected a finite positive number, got {v!r}")
        if self.sigma_phi >= 1:
            raise ValueError(f"sigma_phi: expected a resolution below 1 rad, got {self.sigma_phi}")
        if isinstance(self.pt_min, bool) or not (isinstance(self.pt_min, (int, float))
                                                 and math.isfinite(self.pt_min)
                                                 and self.pt_min >= 0):
            raise ValueError(f"pt_min: expected a finite threshold >= 0 GeV, got {self.pt_min!r}")

    @property
    def name(self) -> str:
        """A short description, e.g. ``gaussian(pt=0.02, eta=0.01, phi=0.01)``."""
        return (f"gaussian(pt={self.sigma_pt:g}, eta={self.sigma_eta:g}, "
                f"phi={self.sigma_phi:g}, pt_min={self.pt_min:g}, eta_max={self.eta_max:g})")

    def _widths(self, x: torch.Tensor) -> torch.Tensor:
        """Per-observable σ, shape (n, k, 3), for hard observables x (n, 3k)."""
        y = x.view(x.shape[0], -1, 3)
        s = torch.empty_like(y)
        s[..., 0] = self.sigma_pt * y[..., 0]
        s[..., 1] = self.sigma_eta
        s[..., 2] = self.sigma_phi
        return s

    def _found(self, y: torch.Tensor) -> torch.Tensor:
        return (y[..., 0] > self.pt_min) & (y[..., 1].abs() < self.eta_max)

    def passes(self, x_reco) -> torch.Tensor:
        """Whether reco events pass the cuts, shape (n,) bool, for x_reco (n, 3k)."""
        x = lepton_observables("x_reco", x_reco)
        return self._found(x.view(x.shape[0], -1, 3)).all(-1)

    def smear(
        self, x_hard, *, seed: int | None = None, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Simulate the detector on observables.

        Args:
            x_hard: hard observables, shape (n, 3k) as (pT [GeV], η, φ) per lepton.
            seed, generator: randomness (one of them, or neither for a fresh seed).

        Returns:
            (x_reco, passed): reco observables (n, 3k) with φ in (-π, π], and the
            acceptance (n,) bool.
        """
        from forward.detector.smearing import make_generator

        x = lepton_observables("x_hard", x_hard)
        g = make_generator(seed, generator, x.device)
        z = torch.randn(x.shape, generator=g, dtype=x.dtype, device=x.device)
        y = (x + self._widths(x).view_as(x) * z).view(x.shape[0], -1, 3)
        y[..., 2] = wrap_phi(y[..., 2])
        x_reco = y.reshape(x.shape)
        return x_reco, self.passes(x_reco)

    def reconstruct(
        self,
        events: HardEvents,
        final_state,
        *,
        seed: int | None = None,
        generator: torch.Generator | None = None,
    ) -> RecoEvents:
        """The detector protocol: reconstructed events from hard events.

        Every final-state particle must be a charged lepton (e, μ, τ). Each is smeared
        as in :meth:`smear` (same random numbers for the same generator) and kept when
        it passes the cuts; ``passed`` is True when all are kept.

        Args:
            events: hard events, momenta (n, k, 4) in GeV.
            final_state: PDG ids, shape (k,) or (n, k).
            seed, generator: randomness (one of them, or neither for a fresh seed).

        Returns:
            :class:`~forward.detector.objects.RecoEvents` with k slots, leptons packed
            to the front by descending reco pT, massless reco momenta.
        """
        if not isinstance(events, HardEvents):
            raise TypeError(f"events: expected HardEvents, got {type(events).__name__}")
        p = events.momenta
        n, k = p.shape[:2]
        pids = as_tensor("final_state", final_state, dtype=torch.int64, device=p.device)
        if pids.is_floating_point() or pids.shape not in ((k,), (n, k)):
            raise ValueError(f"final_state: expected integer ids of shape ({k},) or ({n}, {k}), "
                             f"got {pids.dtype} {tuple(pids.shape)}")
        pids = pids.expand(n, k)
        if not bool(torch.isin(pids.abs(), torch.tensor(_CHARGED_LEPTONS,
                                                        device=p.device)).all()):
            bad = sorted(set(pids.flatten().tolist()) - {s * a for a in _CHARGED_LEPTONS
                                                         for s in (1, -1)})
            raise ValueError(f"final_state: GaussianLeptonDetector models charged leptons "
                             f"only, got ids {bad}")
        x_hard = torch.stack([kin.pt(p), kin.pseudorapidity(p), kin.phi(p)], -1).flatten(1)
        x_reco, _ = self.smear(x_hard, seed=seed, generator=generator)
        y = x_reco.view(n, k, 3)
        found = self._found(y)
        mom = kin.from_pt_eta_phi_m(y[..., 0].clamp(min=0), y[..., 1], y[..., 2],
                                    torch.zeros_like(y[..., 0]))
        types = torch.where(pids.abs() == 11, ObjectType.ELECTRON, ObjectType.MUON)
        charges = -torch.sign(pids)
        key = torch.where(found, y[..., 0], torch.full_like(y[..., 0], -1.0))
        order = torch.argsort(key, dim=1, descending=True, stable=True)
        mask = found.gather(1, order)
        mom = torch.where(mask[..., None], mom.gather(1, order[..., None].expand(n, k, 4)), 0.0)
        types = torch.where(mask, types.gather(1, order), -1)
        charges = torch.where(mask, charges.gather(1, order), 0)
        met = -mom[..., 1:3].sum(1)
        counts = torch.stack([(types == t).sum(-1) for t in range(len(ObjectType))], -1)
        return RecoEvents(momenta=mom, types=types, charges=charges, mask=mask,
                          particle_index=torch.where(mask, order, -1), met=met, counts=counts,
                          passed=found.all(-1), hard_index=torch.arange(n, device=p.device))

    def closed_form(self, n_leptons: int = 2, flavours=None, *, pt_min: float = 0.0,
                    eta_max: float = math.inf) -> GaussianClosedForm:
        """The exact ε and ε·r of ``n_leptons`` leptons (same response for every flavour).

        Args:
            n_leptons: leptons per event.
            flavours: ignored (the response does not depend on the flavour).
            pt_min, eta_max: the analysis's own lepton cuts, on top of the detector's.
        """
        check_cut_arguments(n_leptons, pt_min, eta_max)
        resp = LeptonResponse(relative_sigma=lambda pt, eta: torch.full_like(pt, self.sigma_pt),
                              efficiency=None, sigma_eta=self.sigma_eta,
                              sigma_phi=self.sigma_phi, pt_min=max(self.pt_min, pt_min),
                              eta_max=min(self.eta_max, eta_max))
        return GaussianClosedForm([(resp,) * n_leptons])

    def log_acceptance(self, x_hard) -> torch.Tensor:
        """log ε(x_hard), shape (n,), for hard observables (n, 3k)."""
        x = lepton_observables("x_hard", x_hard)
        return self.closed_form(x.shape[1] // 3).log_acceptance(x)

    def log_density(self, x_reco, x_hard) -> torch.Tensor:
        """log[ε(x_hard) r(x_reco | x_hard)] w.r.t. ∏ dpT dη dφ, shape (n,).

        -inf for reco events failing the cuts. The φ density sums the wrapped images
        at ±2π (the next ones are below e^{-(4π/σ_φ)²/2}).
        """
        x = lepton_observables("x_hard", x_hard)
        return self.closed_form(x.shape[1] // 3).log_density(x_reco, x)

    def log_transfer(self, x_reco, x_hard) -> torch.Tensor:
        """log r(x_reco | x_hard) = log_density - log_acceptance, shape (n,)."""
        return self.log_density(x_reco, x_hard) - self.log_acceptance(x_hard)
