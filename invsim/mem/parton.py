r"""The parton-level likelihood: the floor every reco-level method is compared with.

For hard events :math:`y_i` observed without detector smearing (each accepted with the
θ-independent probability ε(y), ε = 1 by default),

.. math:: p(y \mid \theta) = \frac{\varepsilon(y)}{\sigma_\text{fid}(\theta)}\,
          \frac{d\sigma(\theta)}{d\mu}(y), \qquad
          \sigma_\text{fid}(\theta) = \int d\mu\, \frac{d\sigma(\theta)}{d\mu}\,\varepsilon,

w.r.t. dμ = dx1 dx2 dΦ_n (:mod:`forward.events`). dσ/dμ is exact
(:class:`~invsim.mem.DifferentialCache` over the process's
:class:`~forward.integrand.HadronicIntegrand`); σ_fid(θ) is estimated on one fixed
uniform sample of the process's phase-space map
(:class:`~invsim.mem.reweight.FiducialSample`, common random numbers across θ, the
same estimator as :class:`~invsim.mem.MEMLikelihood`), so log p is smooth and
differentiable in θ, for any process with a phase-space map (Drell–Yan, tt̄ with
decays, ...). It is the reco-level MEM with a perfect detector, which is why it lives
in :mod:`invsim.mem`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

from forward._validation import check_process, make_generator, resolve_device
from forward.events import HardEvents
from forward.integrand import HadronicIntegrand
from invsim.mem.likelihood import DifferentialCache
from invsim.mem.reweight import FiducialSample, parameter_points

__all__ = ["PartonLikelihood"]


class PartonLikelihood:
    """p(y_hard | θ) of observed hard events (an :class:`~invsim.infer.EventLikelihood`).

    Args:
        process: a :class:`~forward.processes.Process`.
        events: the observed hard events, momenta (m, k, 4) in GeV (converted to
            float64 on ``device``), each with dσ/dμ > 0 at the default parameters.
        parameter_names: the θ components given to :meth:`log_prob`; default every
            process parameter not in ``fixed``.
        fixed: values (numbers) of other parameters; the rest keep their defaults.
        n_fiducial: size N of the fixed sample for σ_fid(θ).
        seed: seeds the fiducial sample.
        log_acceptance: θ-independent log ε(HardEvents) -> (n,) in [-inf, 0] (e.g. a
            detector's acceptance of the hard event); None: ε = 1 (σ after the process's
            cuts).
        pdf: PDF set name or object; default the process's.
        channel: phase-space channel of the fiducial sample (index into
            ``process.phase_space()`` at the default parameters, or a map object).
        chunk_size: hard events per matrix-element evaluation.
        device: device of the events and the fiducial sample; default the events'.

    Attributes:
        parameter_names: names of θ, in order.
        n_events: m.
        integrand: the :class:`~forward.integrand.HadronicIntegrand`.
        fiducial: the :class:`~invsim.mem.reweight.FiducialSample`.

    Raises:
        TypeError, ValueError: bad arguments; events with dσ/dμ = 0 at the default
            parameters or with zero acceptance (they cannot have been observed).

    Example::

        lik = PartonLikelihood(process, hard_events, parameter_names=["mzp"])
        lik.log_prob({"mzp": torch.tensor(2030.0)})      # (m,)
        problem = InferenceProblem(lik, build_priors(process, lik.parameter_names))
    """

    def __init__(
        self,
        process,
        events: HardEvents,
        *,
        parameter_names: Sequence[str] | None = None,
        fixed: Mapping[str, float] | None = None,
        n_fiducial: int = 100_000,
        seed: int = 0,
        log_acceptance: Callable[[HardEvents], torch.Tensor] | None = None,
        pdf=None,
        channel=0,
        chunk_size: int = 200_000,
        device=None,
    ) -> None:
        if not isinstance(events, HardEvents):
            raise TypeError(f"events: expected HardEvents, got {type(events).__name__}")
        if len(events) < 1:
            raise ValueError("events: expected at least one hard event, got 0")
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"chunk_size: expected an integer >= 1, got {chunk_size!r}")
        if log_acceptance is not None and not callable(log_acceptance):
            raise TypeError(f"log_acceptance: expected a callable HardEvents -> log ε (n,), "
                            f"got {type(log_acceptance).__name__}")
        self.device = resolve_device(device) if device is not None else events.momenta.device
        self.process = check_process(process)
        self.fixed = {k: float(v) for k, v in dict(fixed or {}).items()}
        process.params(self.fixed)  # names and ranges
        if parameter_names is None:
            parameter_names = [p for p in process.parameters if p not in self.fixed]
        if isinstance(parameter_names, str):
            raise TypeError(
                f"parameter_names: expected a sequence of names, got {parameter_names!r}")
        names = tuple(parameter_names)
        unknown = [p for p in names if p not in process.parameters]
        if not names or unknown or len(set(names)) != len(names) or set(names) & set(self.fixed):
            raise ValueError(
                f"parameter_names: expected distinct names of {sorted(process.parameters)} "
                f"not in fixed, got {list(names)}")
        self.parameter_names = names
        f64 = {"dtype": torch.float64, "device": self.device}
        events = HardEvents(events.momenta.to(**f64), events.x1.to(**f64),
                            events.x2.to(**f64), events.sqrt_s)
        self.events = events
        self.n_events = len(events)
        self.integrand = HadronicIntegrand(process, pdf, params=self.fixed, channel=channel,
                                           device=self.device)
        gen = make_generator(seed, device=self.device)
        self.fiducial = FiducialSample(self.integrand.map, n_fiducial, gen,
                                       log_acceptance=log_acceptance, chunk_size=chunk_size,
                                       device=self.device, what="log_acceptance")
        if log_acceptance is None:
            self.log_eps = torch.zeros(self.n_events, **f64)
        else:
            with torch.no_grad():
                self.log_eps = torch.as_tensor(log_acceptance(events)).to(**f64)
            if self.log_eps.shape != (self.n_events,) or bool(torch.isnan(self.log_eps).any()):
                raise ValueError(f"log_acceptance: expected finite values of shape "
                                 f"({self.n_events},) at the events, got "
                                 f"{tuple(self.log_eps.shape)} with NaN or of another shape")
        fid = self.fiducial.events
        both = HardEvents(torch.cat([events.momenta, fid.momenta]),
                          torch.cat([events.x1, fid.x1]), torch.cat([events.x2, fid.x2]),
                          events.sqrt_s)
        self._dsigma = DifferentialCache(self.integrand, both, chunk_size)
        with torch.no_grad():
            ref = self._dsigma(process.params(self.fixed, device=self.device))[: self.n_events]
        bad = ~torch.isfinite(ref + self.log_eps)
        if bool(bad.any()):
            i = int(torch.nonzero(bad)[0])
            raise ValueError(
                f"events: {int(bad.sum())} of {self.n_events} events have dσ/dμ = 0 (outside "
                f"the process's cuts or x1, x2 ∉ (0, 1]) or zero acceptance at the default "
                f"parameters, e.g. event {i} (ŝ = {float(events.shat[i]):.6g} GeV²); they "
                "cannot have been observed")

    # -- parameters ----------------------------------------------------------------------
    @property
    def parameters(self) -> dict:
        """The declared :class:`~forward.processes.Parameter` of each θ component."""
        return {p: self.process.parameters[p] for p in self.parameter_names}

    # -- likelihood ----------------------------------------------------------------------
    def _point(self, params) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        both = self._dsigma(params)
        lsf, err = self.fiducial.log_sigma(both[self.n_events:])
        return both[: self.n_events] + self.log_eps - lsf, lsf, err

    def log_prob_and_log_sigma_fid(self, theta) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-event log p(y | θ) and log(σ_fid/pb) from one evaluation per θ point.

        Args:
            theta: mapping of each name in ``parameter_names`` to a tensor of shape ()
                or (b,) (numbers are taken as float64).

        Returns:
            (log p w.r.t. dμ, shape (n_events,) or (b, n_events); log σ_fid, shape () or
            (b,)), float64, differentiable in θ.
        """
        points, batched = parameter_points(self.process, self.parameter_names, self.fixed,
                                           theta, self.device)
        rows = [self._point(p) for p in points]
        lp = torch.stack([r[0] for r in rows])
        ls = torch.stack([r[1] for r in rows])
        return (lp, ls) if batched else (lp[0], ls[0])

    def log_prob(self, theta) -> torch.Tensor:
        """Per-event log p(y_i | θ) w.r.t. dμ = dx1 dx2 dΦ_n, shape (n_events,) or (b, n_events)."""
        return self.log_prob_and_log_sigma_fid(theta)[0]

    def log_sigma_fid(self, theta) -> torch.Tensor:
        """log(σ_fid(θ) / pb) from the fixed sample, shape () or (b,), differentiable."""
        return self.log_prob_and_log_sigma_fid(theta)[1]

    def log_sigma_fid_error(self, theta) -> torch.Tensor:
        """Monte Carlo standard error of :meth:`log_sigma_fid` (delta method), shape () or (b,).

        It is the relative error of σ̂_fid; it shifts every event's log p by the same
        amount, so the total log-likelihood carries n_events times it.
        """
        points, batched = parameter_points(self.process, self.parameter_names, self.fixed,
                                           theta, self.device)
        with torch.no_grad():
            err = torch.stack([self._point(p)[2] for p in points])
        return err if batched else err[0]

    def __repr__(self) -> str:
        return (f"PartonLikelihood({self.n_events} events, {self.fiducial.n} fiducial points, "
                f"parameters={self.parameter_names}, fixed={self.fixed})")
