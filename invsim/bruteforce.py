r"""A closed-form Gaussian lepton detector and the brute-force MEM it makes possible.

The reference for validating the ML matrix-element method (docs/design.md §5.6) on
Drell–Yan ℓ⁻ℓ⁺ (no shower, perfect charge identification). Observables per lepton,
in ``final_state`` order, are (pT [GeV], η, φ [rad]); an event has shape (6,).

**Detector** (:class:`GaussianLeptonDetector`): independently per lepton,
pT' = pT (1 + σ_pT z₁), η' = η + σ_η z₂, φ' = φ + σ_φ z₃ wrapped into (-π, π]; the
event is accepted when both leptons have pT' > ``pt_min`` and |η'| < ``eta_max``. So,
w.r.t. dpT' dη' dφ' per lepton,

.. math:: \varepsilon(y)\, r(x \mid y) = \prod_\ell \mathcal N(p_T'; p_T, (\sigma_{p_T} p_T)^2)\,
          \mathcal N(\eta'; \eta, \sigma_\eta^2)\, \mathcal N_\text{wrapped}(\phi'; \phi,
          \sigma_\phi^2)\;\Theta_\text{cuts}(x),

and ε(y) = ∏_ℓ Φ((p_T - p_T^{min})/(σ_{p_T} p_T)) [Φ((η_max - η)/σ_η) - Φ((-η_max - η)/σ_η)].

**Hard coordinates.** At leading order the two leptons are back to back in the
transverse plane with equal pT, so a hard event is u = (log pT, φ, η₁, η₂) (φ of ℓ⁻,
ℓ⁺ at φ + π), and x₁,₂ = pT (e^{±η₁} + e^{±η₂})/√s. The hard measure of
:mod:`forward.events` is then

.. math:: d\mu = dx_1\, dx_2\, d\Phi_2 = \frac{p_T^2}{8\pi^2 s}\; du .

**Brute force** (:func:`brute_force_log_likelihood`): importance sampling in u with a
Student-t proposal centred on the values the reco event implies
(:class:`RecoGaussianProposal`, also usable as a MEM proposal), σ_fid from a large
uniform sample of the process's phase-space map with the exact ε.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import torch
from tqdm.auto import tqdm

from forward._validation import as_tensor, check_finite, check_floating
from forward.events import HardEvents
from forward.integrand import HadronicIntegrand
from forward.pdf.gridpdf import canonical_device
from invsim.flows.training import read_file, write_file
from invsim.mem.estimator import summarize_weights
from invsim.mem.likelihood import DifferentialCache

__all__ = [
    "BruteForceResult",
    "ExactAcceptance",
    "ExactTransfer",
    "GaussianLeptonDetector",
    "RecoGaussianProposal",
    "brute_force_log_likelihood",
    "dilepton_events",
    "SimulatedPairs",
    "log_dmu_du",
    "simulate",
]

_LOG_2PI = math.log(2 * math.pi)


def _wrap(phi: torch.Tensor) -> torch.Tensor:
    """Angles wrapped into (-π, π]."""
    return math.pi - torch.remainder(math.pi - phi, 2 * math.pi)


def _log_normal(x, mu, sigma):
    return -0.5 * ((x - mu) / sigma) ** 2 - torch.log(sigma) - 0.5 * _LOG_2PI


def _log_diff_ndtr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """log(Φ(a) - Φ(b)) for a > b, stable in both tails."""
    flip = (a + b) > 0  # use the symmetry Φ(a) - Φ(b) = Φ(-b) - Φ(-a) in the upper tail
    hi = torch.where(flip, -b, a)
    lo = torch.where(flip, -a, b)
    lhi = torch.special.log_ndtr(hi)
    llo = torch.special.log_ndtr(lo)
    return lhi + torch.log1p(-torch.exp(llo - lhi))


def _observables(name: str, x, leptons: int = 2) -> torch.Tensor:
    x = as_tensor(name, x)
    check_floating(name, x)
    if x.ndim != 2 or x.shape[1] != 3 * leptons:
        raise ValueError(
            f"{name}: expected shape (n, {3 * leptons}) as (pT, eta, phi) per lepton, "
            f"got {tuple(x.shape)}"
        )
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
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name}: expected a finite positive number, got {v!r}")
        if self.sigma_phi >= 1:
            raise ValueError(f"sigma_phi: expected a resolution below 1 rad, got {self.sigma_phi}")
        if not (math.isfinite(self.pt_min) and self.pt_min >= 0):
            raise ValueError(f"pt_min: expected a finite threshold >= 0 GeV, got {self.pt_min}")

    def _widths(self, x: torch.Tensor) -> torch.Tensor:
        """Per-observable σ, shape (n, 2, 3), for hard observables x (n, 6)."""
        y = x.view(-1, 2, 3)
        s = torch.empty_like(y)
        s[..., 0] = self.sigma_pt * y[..., 0]
        s[..., 1] = self.sigma_eta
        s[..., 2] = self.sigma_phi
        return s

    def passes(self, x_reco) -> torch.Tensor:
        """Whether reco events pass the cuts, shape (n,) bool, for x_reco (n, 6)."""
        y = _observables("x_reco", x_reco).view(-1, 2, 3)
        return ((y[..., 0] > self.pt_min) & (y[..., 1].abs() < self.eta_max)).all(-1)

    def smear(
        self, x_hard, *, seed: int | None = None, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Simulate the detector.

        Args:
            x_hard: hard observables, shape (n, 6) as (pT [GeV], η, φ) of ℓ⁻ then ℓ⁺.
            seed, generator: randomness (one of them, or neither for a fresh seed).

        Returns:
            (x_reco, passed): reco observables (n, 6) with φ in (-π, π], and the
            acceptance (n,) bool.
        """
        from forward.detector import make_generator

        x = _observables("x_hard", x_hard)
        g = make_generator(seed, generator, x.device)
        z = torch.randn(x.shape, generator=g, dtype=x.dtype, device=x.device)
        y = (x + self._widths(x).view_as(x) * z).view(-1, 2, 3)
        y[..., 2] = _wrap(y[..., 2])
        x_reco = y.reshape(x.shape)
        return x_reco, self.passes(x_reco)

    def log_acceptance(self, x_hard) -> torch.Tensor:
        """log ε(x_hard), shape (n,), for hard observables (n, 6)."""
        y = _observables("x_hard", x_hard).view(-1, 2, 3)
        pt, eta = y[..., 0], y[..., 1]
        lp = torch.special.log_ndtr((pt - self.pt_min) / (self.sigma_pt * pt))
        le = _log_diff_ndtr((self.eta_max - eta) / self.sigma_eta,
                            (-self.eta_max - eta) / self.sigma_eta)
        return (lp + le).sum(-1)

    def log_density(self, x_reco, x_hard) -> torch.Tensor:
        """log[ε(x_hard) r(x_reco | x_hard)] w.r.t. ∏ dpT dη dφ, shape (n,).

        -inf for reco events failing the cuts. The φ density sums the wrapped images
        at ±2π (the next ones are below e^{-(4π/σ_φ)²/2}).
        """
        xr = _observables("x_reco", x_reco)
        xh = _observables("x_hard", x_hard)
        if xr.shape != xh.shape:
            raise ValueError(f"x_reco, x_hard: expected equal shapes, got {tuple(xr.shape)} "
                             f"and {tuple(xh.shape)}")
        r, h, s = xr.view(-1, 2, 3), xh.view(-1, 2, 3), self._widths(xh)
        lp = _log_normal(r[..., :2], h[..., :2], s[..., :2]).sum(-1)
        dphi = _wrap(r[..., 2] - h[..., 2])
        images = torch.stack([dphi - 2 * math.pi, dphi, dphi + 2 * math.pi], -1)
        lphi = torch.logsumexp(-0.5 * (images / self.sigma_phi) ** 2, -1) - math.log(
            self.sigma_phi) - 0.5 * _LOG_2PI
        out = (lp + lphi).sum(-1)
        return torch.where(self.passes(xr), out, torch.full_like(out, -math.inf))

    def log_transfer(self, x_reco, x_hard) -> torch.Tensor:
        """log r(x_reco | x_hard) = log_density - log_acceptance, shape (n,)."""
        return self.log_density(x_reco, x_hard) - self.log_acceptance(x_hard)


class _DetectorAdapter:
    """Base of the exact transfer/acceptance wrappers: holds and saves the detector."""

    def __init__(self, detector: GaussianLeptonDetector) -> None:
        if not isinstance(detector, GaussianLeptonDetector):
            raise TypeError(f"detector: expected a GaussianLeptonDetector, got "
                            f"{type(detector).__name__}")
        self.detector = detector

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Save the detector settings (refuses to overwrite unless asked)."""
        write_file(path, {"kind": f"exact-{type(self).__name__}",
                          "detector": asdict(self.detector)}, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike, *, map_location=None):
        """Load what :meth:`save` wrote."""
        d = read_file(path, f"exact-{cls.__name__}", map_location=map_location)
        return cls(GaussianLeptonDetector(**d["detector"]))


class ExactTransfer(_DetectorAdapter):
    """The detector's exact r(x_reco | x_hard) with the TransferFunction interface.

    Args:
        detector: the :class:`GaussianLeptonDetector`.
    """

    def log_prob(self, x_reco, x_hard) -> torch.Tensor:
        """log r, shape (n,), for x_reco and x_hard of shape (n, 6)."""
        return self.detector.log_transfer(x_reco, x_hard)


class ExactAcceptance(_DetectorAdapter):
    """The detector's exact ε(x_hard) with the AcceptanceClassifier interface.

    Args:
        detector: the :class:`GaussianLeptonDetector`.
    """

    def logits(self, x_hard) -> torch.Tensor:
        """logit ε, shape (n,), for x_hard of shape (n, 6)."""
        le = self.detector.log_acceptance(x_hard)
        return le - torch.log1p(-torch.exp(le).clamp(max=1 - 1e-16))

    def __call__(self, x_hard) -> torch.Tensor:
        """ε, shape (n,), for x_hard of shape (n, 6)."""
        return torch.exp(self.detector.log_acceptance(x_hard))


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

    The centre combines the two leptons (pT from the mean of log pT', φ from the
    circular mean of φ'₁ and φ'₂ - π); the widths are ``scale`` times the detector's
    resolutions for those combinations. Independent t distributions with ``df``
    degrees of freedom per coordinate (φ wrapped, its density summed over ±2π).

    Args:
        detector: the :class:`GaussianLeptonDetector` (for the widths).
        sqrt_s: hadronic centre-of-mass energy in GeV.
        scale: width factor (> 0).
        df: degrees of freedom (integer >= 1).
    """

    def __init__(self, detector: GaussianLeptonDetector, sqrt_s: float = 13000.0, *,
                 scale: float = 1.5, df: int = 5) -> None:
        if not isinstance(detector, GaussianLeptonDetector):
            raise TypeError(f"detector: expected a GaussianLeptonDetector, got "
                            f"{type(detector).__name__}")
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"scale: expected a finite positive factor, got {scale!r}")
        if isinstance(df, bool) or not isinstance(df, int) or df < 1:
            raise ValueError(f"df: expected an integer >= 1, got {df!r}")
        if not (math.isfinite(sqrt_s) and sqrt_s > 0):
            raise ValueError(f"sqrt_s: expected a positive energy in GeV, got {sqrt_s!r}")
        self.detector, self.sqrt_s, self.scale, self.df = detector, float(sqrt_s), scale, df

    def centre(self, x_reco) -> tuple[torch.Tensor, torch.Tensor]:
        """(loc, width) of the proposal in u, each shape (m, 4), for x_reco (m, 6)."""
        y = _observables("x_reco", x_reco).to(torch.float64).view(-1, 2, 3)
        d = self.detector
        lpt = torch.log(y[..., 0]).mean(-1)
        phi = _wrap(y[:, 0, 2] + 0.5 * _wrap(y[:, 1, 2] - math.pi - y[:, 0, 2]))
        loc = torch.stack([lpt, phi, y[:, 0, 1], y[:, 1, 1]], -1)
        w = torch.tensor([d.sigma_pt / math.sqrt(2), d.sigma_phi / math.sqrt(2),
                          d.sigma_eta, d.sigma_eta], dtype=loc.dtype, device=loc.device)
        return loc, (self.scale * w).expand_as(loc)

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
        write_file(path, {"kind": "reco-gaussian-proposal", "detector": asdict(self.detector),
                          "sqrt_s": self.sqrt_s, "scale": self.scale, "df": self.df},
                   overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike, *, map_location=None) -> RecoGaussianProposal:
        """Load what :meth:`save` wrote."""
        d = read_file(path, "reco-gaussian-proposal", map_location=map_location)
        return cls(GaussianLeptonDetector(**d["detector"]), d["sqrt_s"], scale=d["scale"],
                   df=d["df"])


@dataclass
class BruteForceResult:
    """Brute-force log p(x_reco | θ) per θ point and event.

    Attributes:
        log_p: shape (b, m).
        error: MC error of log_p from the per-event integral, shape (b, m).
        ess: effective sample size per event, shape (b, m).
        log_sigma_fid: log(σ_fid/pb), shape (b,).
        sigma_fid_error: error of log σ_fid, shape (b,).
        n_samples: draws per event.
        seconds: wall time of the integration.
    """

    log_p: torch.Tensor
    error: torch.Tensor
    ess: torch.Tensor
    log_sigma_fid: torch.Tensor
    sigma_fid_error: torch.Tensor
    n_samples: int
    seconds: float


def _points(process, theta) -> list[dict[str, torch.Tensor]]:
    if not isinstance(theta, Mapping):
        raise TypeError(f"theta: expected a mapping name -> values, got {type(theta).__name__}")
    vals = {k: torch.atleast_1d(as_tensor(k, v, dtype=torch.float64)) for k, v in theta.items()}
    sizes = {v.shape[0] for v in vals.values()}
    if len(sizes) > 1 or any(v.ndim != 1 for v in vals.values()):
        raise ValueError(f"theta: expected values of one shape (b,), got "
                         f"{ {k: tuple(v.shape) for k, v in vals.items()} }")
    b = sizes.pop() if sizes else 1
    return [process.params({k: v[i] for k, v in vals.items()}) for i in range(b)]


class _AdaptedT:
    """Multivariate t in u per event (mean, Cholesky factor), φ wrapped (±2π images)."""

    def __init__(self, loc: torch.Tensor, chol: torch.Tensor, df: int) -> None:
        self.loc, self.chol, self.df = loc, chol, df

    def sample(self, n: int, generator) -> tuple[torch.Tensor, torch.Tensor]:
        m, d = self.loc.shape
        z = torch.randn(m, n, d, generator=generator, dtype=self.loc.dtype)
        chi2 = (torch.randn(m, n, self.df, generator=generator, dtype=self.loc.dtype) ** 2).sum(-1)
        t = torch.einsum("mij,mnj->mni", self.chol, z) / torch.sqrt(chi2 / self.df).unsqueeze(-1)
        u = self.loc.unsqueeze(1) + t
        u[..., 1] = _wrap(u[..., 1])
        return u, self.log_prob(u)

    def log_prob(self, u: torch.Tensor) -> torch.Tensor:
        m, d = self.loc.shape
        nu = float(self.df)
        c = (math.lgamma((nu + d) / 2) - math.lgamma(nu / 2) - 0.5 * d * math.log(nu * math.pi)
             - torch.log(torch.diagonal(self.chol, dim1=-2, dim2=-1)).sum(-1))
        diff = u - self.loc.unsqueeze(1)
        diff[..., 1] = _wrap(diff[..., 1])
        parts = []
        for shift in (-2 * math.pi, 0.0, 2 * math.pi):
            dd = diff.clone()
            dd[..., 1] = dd[..., 1] + shift
            sol = torch.linalg.solve_triangular(self.chol, dd.transpose(-1, -2), upper=False)
            parts.append(-0.5 * (nu + d) * torch.log1p((sol * sol).sum(-2) / nu))
        return c.unsqueeze(-1) + torch.logsumexp(torch.stack(parts, -1), -1)


def brute_force_log_likelihood(
    process,
    detector: GaussianLeptonDetector,
    x_reco,
    theta: Mapping,
    *,
    n_samples: int = 100_000,
    n_fiducial: int = 1_000_000,
    seed: int = 0,
    scale: float = 1.5,
    df: int = 5,
    adapt: bool = True,
    chunk_size: int = 400_000,
    progress: bool = False,
) -> BruteForceResult:
    """log p(x_reco | θ) by direct importance sampling with the exact detector.

    Per event, importance sampling in u = (log pT, φ, η₁, η₂) with the exact
    ε·r = Gaussian × cuts, the exact Jacobian to dμ and dσ(θ)/dμ of the process. The
    proposal is :class:`RecoGaussianProposal`; with ``adapt`` a pilot run of
    n_samples/10 draws from it (at the middle θ point) fixes the mean and covariance of
    a multivariate t (``df``, covariance × 1.2²) that then makes all n_samples draws,
    common to every θ.

    Args:
        process: a Drell–Yan :class:`~forward.processes.Process` (ℓ⁻ℓ⁺ final state).
        detector: the :class:`GaussianLeptonDetector` that made the reco events.
        x_reco: reco events, shape (m, 6), all passing the detector's cuts.
        theta: parameter name -> value(s), shape () or (b,); others at their defaults.
        n_samples: draws per event.
        n_fiducial: uniform draws of the process's default phase-space channel for σ_fid.
        seed: seeds all samples (common to every θ).
        scale, df: the reco-centred proposal's width factor and degrees of freedom.
        adapt: adapt the proposal with a pilot run (see above).
        chunk_size: hard events per evaluation.
        progress: tqdm bar over events.

    Returns:
        A :class:`BruteForceResult`.
    """
    import time

    t0 = time.perf_counter()
    x_reco = _observables("x_reco", x_reco).to(torch.float64)
    if not bool(detector.passes(x_reco).all()):
        raise ValueError("x_reco: every event must pass the detector's cuts")
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 100:
        raise ValueError(f"n_samples: expected an integer >= 100, got {n_samples!r}")
    points = _points(process, theta)
    integrand = HadronicIntegrand(process)
    proposal = RecoGaussianProposal(detector, process.sqrt_s, scale=scale, df=df)
    gen = torch.Generator().manual_seed(int(seed))
    # σ_fid(θ) = ∫ dσ/dμ ε dμ on the default channel's unit cube
    cmap = process.phase_space(None)[0]
    ev, log_jac = cmap.forward(torch.rand(n_fiducial, cmap.dim, generator=gen,
                                          dtype=torch.float64))
    fid_b = detector.log_acceptance(_lepton_obs(ev)) + log_jac
    fid = DifferentialCache(integrand, ev, chunk_size)
    fid_rows = [summarize_weights(fid(p) + fid_b) for p in points]
    log_sf = torch.stack([s.log_mean for s in fid_rows])
    sf_err = torch.stack([s.error for s in fid_rows])
    m = x_reco.shape[0]
    per = max(1, chunk_size // n_samples)
    out = {k: torch.empty(len(points), m, dtype=torch.float64) for k in ("lp", "err", "ess")}

    def integrand_terms(xr, u, lq):
        mc, n = lq.shape
        flat = u.reshape(-1, 4)
        hard = dilepton_events(flat, process.sqrt_s)
        log_c = (detector.log_density(xr.repeat_interleave(n, 0), _lepton_obs(hard))
                 + log_dmu_du(flat, process.sqrt_s)).view(mc, n) - lq
        return log_c, DifferentialCache(integrand, hard, chunk_size)

    for start in tqdm(range(0, m, per), desc="brute-force MEM", disable=not progress):
        xr = x_reco[start : start + per]
        if adapt:
            u, lq = proposal.sample_u(xr, max(n_samples // 10, 100), generator=gen)
            log_c, cache = integrand_terms(xr, u, lq)
            lw = log_c + cache(points[len(points) // 2]).view_as(log_c)
            w = torch.softmax(lw, -1).unsqueeze(-1)
            loc0, _ = proposal.centre(xr)
            diff = u - loc0.unsqueeze(1)
            diff[..., 1] = _wrap(diff[..., 1])
            mean = (w * diff).sum(1)
            cen = diff - mean.unsqueeze(1)
            cov = torch.einsum("mn,mni,mnj->mij", w.squeeze(-1), cen, cen)
            cov = cov + 1e-12 * torch.eye(4, dtype=cov.dtype)
            loc = loc0 + mean
            loc[:, 1] = _wrap(loc[:, 1])
            sampler = _AdaptedT(loc, 1.2 * torch.linalg.cholesky(cov), df)
            u, lq = sampler.sample(n_samples, gen)
        else:
            u, lq = proposal.sample_u(xr, n_samples, generator=gen)
        mc = u.shape[0]
        log_c, cache = integrand_terms(xr, u, lq)
        for i, p in enumerate(points):
            s = summarize_weights(log_c + cache(p).view(mc, n_samples))
            out["lp"][i, start : start + mc] = s.log_mean - log_sf[i]
            out["err"][i, start : start + mc] = s.error
            out["ess"][i, start : start + mc] = s.ess
    return BruteForceResult(out["lp"], out["err"], out["ess"], log_sf, sf_err, n_samples,
                            time.perf_counter() - t0)


def _lepton_obs(events: HardEvents) -> torch.Tensor:
    from invsim.mem.model import lepton_pt_eta_phi

    return lepton_pt_eta_phi(events)


@dataclass
class SimulatedPairs:
    """Hard events with their reco observables, from :func:`simulate`.

    Attributes:
        hard: unweighted hard events (n,).
        x_hard: their observables, shape (n, 6).
        x_reco: reco observables, shape (n, 6) (meaningful where ``passed``).
        passed: detector acceptance, shape (n,) bool.
    """

    hard: HardEvents
    x_hard: torch.Tensor
    x_reco: torch.Tensor
    passed: torch.Tensor


def simulate(
    process,
    detector: GaussianLeptonDetector,
    n_trials: int,
    theta: Mapping | None = None,
    *,
    seed: int = 0,
    chunk_size: int = 200_000,
    device=None,
) -> SimulatedPairs:
    """Unweighted hard events of a process at θ, smeared by the detector.

    Hit-or-miss on ``n_trials`` uniform points of the default phase-space channel,
    with the largest weight of the sample as maximum (no overweight events), so about
    ``n_trials`` × the unweighting efficiency events come out.

    Args:
        process: a Drell–Yan process.
        detector: the detector.
        n_trials: number of weighted trial points.
        theta: parameter values (numbers); defaults for the rest.
        seed: seeds the trials, the unweighting and the smearing.
        chunk_size: points per integrand evaluation.
        device: torch device of the simulation and of the returned tensors (default CPU).

    Returns:
        :class:`SimulatedPairs`.
    """
    from forward.nis.unweighting import unweight

    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise ValueError(f"n_trials: expected an integer >= 1, got {n_trials!r}")
    integrand = HadronicIntegrand(process, params=theta, device=device)
    dev = canonical_device(device)
    gen = torch.Generator(device=dev).manual_seed(int(seed))
    r = torch.rand(n_trials, integrand.dim, generator=gen, dtype=torch.float64, device=dev)
    w = torch.cat([integrand(r[s : s + chunk_size]) for s in range(0, n_trials, chunk_size)])
    sel = unweight(w, 0.0, generator=gen).indices
    hard, _ = integrand.map.forward(r[sel])
    x_hard = _lepton_obs(hard)
    x_reco, passed = detector.smear(x_hard, generator=gen)
    return SimulatedPairs(hard, x_hard, x_reco, passed)
