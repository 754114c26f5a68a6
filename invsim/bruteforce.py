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


#: one draw in this many comes from the wide unadapted proposal (see below)
_DEFENSIVE = 5
#: adaptation rounds of n_samples/20 draws each
_ROUNDS = 3


def _defensive_draws(sampler, wide: _RecoMixture, xr, n, gen):
    """n draws per event from (1 − 1/_DEFENSIVE) × sampler + 1/_DEFENSIVE × wide (all
    from ``wide`` when sampler is None), with the mixture's log density: (m, n, 4), (m, n)."""
    if sampler is None:
        return wide.sample_u(xr, n, gen)
    n_def = max(n // _DEFENSIVE, 1)
    u_a, _ = sampler.sample(n - n_def, gen)
    u_d, _ = wide.sample_u(xr, n_def, gen)
    u = torch.cat([u_a, u_d], 1)
    share = n_def / n
    lq = torch.logaddexp(math.log1p(-share) + sampler.log_prob(u),
                         math.log(share) + wide.log_prob_u(xr, u))
    return u, lq


def _fit_t(u, w, cover, xr, df):
    """The multivariate t of the weighted draws' mean and covariance (× 1.2², plus
    (width/8)² of the covering proposal on the diagonal so a pilot with a tiny ESS cannot
    collapse it)."""
    loc0, width0 = cover.centre(xr)
    # an event where no pilot draw has a finite weight keeps the pilot's spread
    w = torch.where(torch.isfinite(w).all(-1, keepdim=True), w, torch.full_like(w, 1 / w.shape[1]))
    diff = u - loc0.unsqueeze(1)
    diff[..., 1] = _wrap(diff[..., 1])
    mean = (w.unsqueeze(-1) * diff).sum(1)
    cen = diff - mean.unsqueeze(1)
    cov = torch.einsum("mn,mni,mnj->mij", w, cen, cen)
    cov = 1.44 * cov + torch.diag_embed((width0 / 8) ** 2)
    loc = loc0 + mean
    loc[:, 1] = _wrap(loc[:, 1])
    return _AdaptedT(loc, torch.linalg.cholesky(cov), df)


def _closed_form_widths(closed):
    """The closed form itself as the proposal's width source when it gives per-lepton
    widths (:meth:`~forward.detector.closed_form.GaussianClosedForm.lepton_widths`)."""
    return closed if callable(getattr(closed, "lepton_widths", None)) else None


class _AssignmentWidths:
    """The widths of one flavour assignment of a closed form, as a proposal's width source."""

    def __init__(self, closed, assignment: int) -> None:
        self.closed, self.assignment = closed, assignment

    def lepton_widths(self, x_reco) -> torch.Tensor:
        return self.closed.lepton_widths(x_reco, self.assignment)


class _RecoMixture:
    """Equal shares of reco-centred t proposals in u (one per flavour assignment of the
    detector's closed form, whose widths differ: electrons are sharp in pT, muons in
    angle), stratified draws, the mixture's density."""

    def __init__(self, parts) -> None:
        self.parts = list(parts)

    def sample_u(self, xr, n: int, generator) -> tuple[torch.Tensor, torch.Tensor]:
        k = len(self.parts)
        counts = [n // k + (i < n % k) for i in range(k)]
        u = torch.cat([p.sample_u(xr, c, generator=generator)[0]
                       for p, c in zip(self.parts, counts, strict=True) if c], 1)
        return u, self.log_prob_u(xr, u)

    def log_prob_u(self, xr, u) -> torch.Tensor:
        terms = []
        for p in self.parts:
            loc, width = p.centre(xr)
            terms.append(p.log_prob_u(u, loc.unsqueeze(1), width.unsqueeze(1)))
        return torch.logsumexp(torch.stack(terms, -1), -1) - math.log(len(self.parts))


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
    proposal is :class:`RecoGaussianProposal`, its widths those of the exact response
    at the reco leptons (the largest over lepton flavours). With ``adapt`` (population
    Monte Carlo) three rounds of n_samples/20 draws, weighted at the middle θ point,
    fit the mean and covariance of a multivariate t (``df``, covariance × 1.2²), each
    round drawing from the previous fit; the final n_samples draws, common to every θ,
    come four fifths from the last fit and one fifth from the reco-centred proposal at
    twice the width, per flavour assignment of the closed form in equal shares when the
    widths come from one with several (a defensive mixture: where the integrand sits in
    the tail, as for an event whose reco mass lies below the process's mass cut, a
    pilot that found few points cannot lose the support). Without ``adapt``, the
    reco-centred proposal makes all draws.

    Args:
        process: a Drell–Yan :class:`~forward.processes.Process` (ℓ⁻ℓ⁺ final state).
        detector: the exact ε and ε·r of the detector that made the reco events: an
            object with ``log_acceptance(x_hard)`` and ``log_density(x_reco, x_hard)`` on
            (n, 6) lepton observables (a :class:`~forward.detector.GaussianLeptonDetector`
            or a :class:`~forward.detector.GaussianClosedForm`, e.g. the card's
            ``Detector("cms").closed_form(2, flavours)``), or a detector with
            ``closed_form()`` (called with its defaults).
        x_reco: reco events, shape (m, 6), all passing the detector's cuts.
        proposal_detector: what sets the starting widths of the proposal (anything
            :class:`RecoGaussianProposal` takes); default ``detector`` itself: its
            constant resolutions, or the closed form's widths at each reco lepton (σ_pT/pT
            = 3 %, σ_η = σ_φ = 0.005 for a closed form without ``lepton_widths``); the
            pilot run adapts them.
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
    if not callable(getattr(detector, "log_density", None)):
        if not callable(getattr(detector, "closed_form", None)):
            raise TypeError(f"detector: expected a closed form (log_acceptance, log_density) "
                            f"or a detector with closed_form(), got {type(detector).__name__}")
        detector = detector.closed_form(2)
    if proposal_detector is None:
        if isinstance(detector, GaussianLeptonDetector):
            proposal_detector = detector
        else:
            widths = _closed_form_widths(detector)
            proposal_detector = (widths if widths is not None
                                 else GaussianLeptonDetector(0.03, 0.005, 0.005, 0.0, 10.0))
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
    wide_parts = [RecoGaussianProposal(proposal_detector, process.sqrt_s, scale=2 * scale, df=df)]
    if proposal_detector is detector and len(getattr(detector, "responses", ())) > 1:
        wide_parts = [RecoGaussianProposal(_AssignmentWidths(detector, a), process.sqrt_s,
                                           scale=2 * scale, df=df)
                      for a in range(len(detector.responses))]
    wide = _RecoMixture(wide_parts)
    cover = RecoGaussianProposal(proposal_detector, process.sqrt_s, scale=2 * scale, df=df)
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
            sampler = None
            for _ in range(_ROUNDS):
                u, lq = _defensive_draws(sampler, wide, xr, max(n_samples // 20, 100), gen)
                log_c, cache = integrand_terms(xr, u, lq)
                lw = log_c + cache(points[len(points) // 2]).view_as(log_c)
                sampler = _fit_t(u, torch.softmax(lw, -1), cover, xr, df)
            u, lq = _defensive_draws(sampler, wide, xr, n_samples, gen)
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
