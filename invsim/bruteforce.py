r"""The brute-force MEM: the reference for validating the ML matrix-element method.

docs/design.md §5.6: on Drell–Yan ℓ⁻ℓ⁺ (no shower), with a detector whose
lepton response has a closed form (:mod:`forward.detector.closed_form`: the Gaussian
detector or the card detector), log p(x_reco | θ) is computed by direct importance
sampling of the hard integral with the exact ε·r, the exact Jacobian of the dilepton
coordinates u = (log pT, φ, η₁, η₂) (:mod:`invsim.mem.reco_proposal`) and dσ(θ)/dμ of
the process; σ_fid from a large uniform sample of the process's phase-space map with
the exact ε.

The detector, the training-pair simulation and the reco-centred proposal that lived
here moved: :class:`forward.detector.GaussianLeptonDetector`,
:func:`invsim.pairs.simulate`, :class:`invsim.mem.reco_proposal.RecoGaussianProposal`,
:class:`invsim.exact.ExactTransfer` / :class:`~invsim.exact.ExactAcceptance`. Their old
import paths here still work for one release, with a ``FutureWarning``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from forward._validation import check_count, check_memory, make_generator
from forward.detector.closed_form import wrap_phi as _wrap
from forward.detector.gaussian import lepton_observables
from forward.integrand import HadronicIntegrand
from forward.progress import progress_bar
from invsim._moved import moved_attributes
from invsim.mem.estimator import summarize_weights
from invsim.mem.likelihood import DifferentialCache
from invsim.mem.reco_proposal import RecoGaussianProposal, dilepton_events, log_dmu_du
from invsim.mem.reweight import parameter_points
from invsim.observables import hard_pt_eta_phi as _lepton_obs

__all__ = ["BruteForceResult", "brute_force_log_likelihood"]

#: old name -> new module, for the FutureWarning shims below
_MOVED = {
    "GaussianLeptonDetector": "forward.detector.gaussian",
    "RecoGaussianProposal": "invsim.mem.reco_proposal",
    "dilepton_events": "invsim.mem.reco_proposal",
    "log_dmu_du": "invsim.mem.reco_proposal",
    "ExactTransfer": "invsim.exact",
    "ExactAcceptance": "invsim.exact",
    "SimulatedPairs": "invsim.pairs",
    "simulate": "invsim.pairs",
}


__getattr__ = moved_attributes(__name__, _MOVED)


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
    detector,
    x_reco,
    theta: Mapping,
    *,
    proposal_detector=None,
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
        detector: the exact ε and ε·r of the detector that made the reco events: an
            object with ``log_acceptance(x_hard)`` and ``log_density(x_reco, x_hard)`` on
            (n, 6) lepton observables (a :class:`~forward.detector.GaussianLeptonDetector`
            or a :class:`~forward.detector.GaussianClosedForm`, e.g. the card's
            ``Detector("cms").closed_form(2, flavours)``), or a detector with
            ``closed_form()`` (called with its defaults).
        x_reco: reco events, shape (m, 6), all passing the detector's cuts.
        proposal_detector: a :class:`~forward.detector.GaussianLeptonDetector` whose
            resolutions set the starting widths of the proposal (default ``detector``
            when it is one, else σ_pT/pT = 3 %, σ_η = σ_φ = 0.005; the pilot run adapts
            them).
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
    from forward.detector.gaussian import GaussianLeptonDetector

    x_reco = lepton_observables("x_reco", x_reco, leptons=2).to(torch.float64)
    if proposal_detector is None:
        proposal_detector = (detector if isinstance(detector, GaussianLeptonDetector)
                             else GaussianLeptonDetector(0.03, 0.005, 0.005, 0.0, 10.0))
    if not callable(getattr(detector, "log_density", None)):
        if not callable(getattr(detector, "closed_form", None)):
            raise TypeError(f"detector: expected a closed form (log_acceptance, log_density) "
                            f"or a detector with closed_form(), got {type(detector).__name__}")
        detector = detector.closed_form(2)
    if not bool(torch.isfinite(detector.log_density(x_reco, x_reco)).all()):
        raise ValueError("x_reco: every event must pass the detector's cuts")
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 100:
        raise ValueError(f"n_samples: expected an integer >= 100, got {n_samples!r}")
    check_count("n_fiducial", n_fiducial, 2)
    check_count("chunk_size", chunk_size)
    make_generator(seed)
    # the draws of one event (4-vectors of two leptons and their weights) are held at once
    check_memory("n_samples", n_samples, 8 * 64, what="samples per event")
    check_memory("n_fiducial", n_fiducial, 8 * 64, what="fiducial points")
    if not isinstance(theta, Mapping):
        raise TypeError(f"theta: expected a mapping name -> values, got {type(theta).__name__}")
    points, _ = parameter_points(process, list(theta), {}, theta, torch.device("cpu"))
    integrand = HadronicIntegrand(process)
    proposal = RecoGaussianProposal(proposal_detector, process.sqrt_s, scale=scale, df=df)
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

    for start in progress_bar(range(0, m, per), progress=progress, desc="brute-force MEM"):
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
