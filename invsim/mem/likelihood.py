r"""The ML matrix-element-method likelihood of reco events, by importance sampling.

For a reco event :math:`x` (accepted by the selection) and theory parameters θ,

.. math:: p(x \mid \theta) = \frac{1}{\sigma_\text{fid}(\theta)} \int d\mu(y)\,
          \frac{d\sigma(\theta)}{d\mu}(y)\, \varepsilon(y)\, r(x \mid y),
          \qquad \sigma_\text{fid}(\theta) = \int d\mu\, \frac{d\sigma(\theta)}{d\mu}\,
          \varepsilon,

with dμ = dx1 dx2 dΦ_n (:mod:`forward.events`), ε the acceptance and r the transfer
density of accepted events. :class:`MEMLikelihood` draws n hard events
:math:`y_{j} \sim q(\cdot \mid x)` per reco event **once** (optionally a defensive
mixture with the channel's phase-space density) and caches
:math:`a_j = \varepsilon(y_j)\, r(x \mid y_j) / q(y_j \mid x)`; for every θ only
dσ(θ)/dμ is re-evaluated (with the PDFs cached when the scales do not depend on θ):

.. math:: \hat p(x \mid \theta) = \frac{1}{\hat\sigma_\text{fid}(\theta)}\,
          \frac1n \sum_j \frac{d\sigma(\theta)}{d\mu}(y_j)\, a_j .

These common random numbers make log p̂(θ) smooth and differentiable in θ (for NUTS).
σ̂_fid(θ) reweights a fixed sample of the channel's map, drawn once:
:math:`\frac1N \sum_i \frac{d\sigma(\theta)}{d\mu}(y_i)\, \varepsilon(y_i)\, e^{\text{log\_jac}_i}`.

**Assignments.** Where reco objects cannot be matched to partons one way (the two
b-jets of t t̄), r is replaced by the sum over the column permutations π of x
(``assignments``), :math:`\sum_\pi r(\pi x \mid y)`, and the proposal by its
mixture over them (:mod:`invsim.mem.assignments`).

**Detector nuisances** (``nuisances=("jes",)``, :mod:`invsim.mem.detector_nuisances`)
enter ε and r, not dσ: the cached factor a_j(ν) and the fiducial ε(y_i, ν) are kept as
Chebyshev interpolants in ν over the model's trained range.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import warnings
from collections.abc import Mapping, Sequence

import torch

from forward._validation import (
    as_tensor,
    check_choice,
    check_count,
    check_finite,
    check_floating,
    check_memory,
    check_range,
    make_generator,
    resolve_device,
)
from forward.events import HardEvents
from forward.processes.base import Parameter
from forward.progress import progress_bar
from invsim.infer.flags import FlaggedEventsError, check_on_flagged
from invsim.mem.assignments import (
    AssignmentMixture,
    canonical_order,
    check_assignments,
    log_transfer_sum,
)
from invsim.mem.detector_nuisances import DETECTOR_NUISANCES, ChebyshevCache
from invsim.mem.estimator import MEMResult, flag_events, flag_reasons, summarize_weights
from invsim.mem.model import MEMModel
from invsim.mem.pareto import pareto_khat
from invsim.mem.reweight import FiducialSample, parameter_points

__all__ = ["OUTSIDE_RANGE", "SCALE_NUISANCES", "DifferentialCache", "MEMLikelihood",
           "MEMWarning"]

#: choices of ``MEMLikelihood(outside_range=...)``
OUTSIDE_RANGE = ("auto", "-inf", "raise")
#: choices of ``MEMLikelihood(fiducial_acceptance=...)`` besides a callable
FIDUCIAL_ACCEPTANCE = ("auto", "network", "detector")

#: theory nuisance parameters ``MEMLikelihood(nuisances=...)`` takes: log₂ of the factors
#: on μ_R and μ_F (multiplying the process's ``mur_factor``/``muf_factor``), in [-1, 1]
#: (factors ½ to 2) with default 0
SCALE_NUISANCES: dict[str, Parameter] = {
    "log2_mur": Parameter("log2_mur", 0.0, -1.0, 1.0, "",
                          "log2 of the factor on the renormalisation scale (nuisance)"),
    "log2_muf": Parameter("log2_muf", 0.0, -1.0, 1.0, "",
                          "log2 of the factor on the factorisation scale (nuisance)"),
}


class MEMWarning(UserWarning):
    """Some events have poor importance-sampling diagnostics."""


def _safe_log(x: torch.Tensor) -> torch.Tensor:
    """log x with -inf at x <= 0 and a finite gradient elsewhere (no 0 * inf = NaN)."""
    pos = x > 0
    return torch.where(pos, torch.log(torch.where(pos, x, torch.ones_like(x))),
                       torch.full_like(x, -math.inf))


class _NuisanceSpace:
    """Nuisances (name -> :class:`Parameter`) as a parameter space for
    :func:`parameter_points`."""

    def __init__(self, declared: Mapping[str, Parameter]) -> None:
        self.declared = dict(declared)

    def params(self, values, *, device=None, dtype=torch.float64) -> dict[str, torch.Tensor]:
        """The values, checked against the nuisances' declared ranges."""
        for name, v in values.items():
            par = self.declared[name]
            check_range(name, v.detach(), par.low, par.high)
        return dict(values)


class DifferentialCache:
    """dσ(θ)/dμ at fixed hard events, re-evaluated cheaply for many θ.

    When the process's factorisation scale does not depend on θ (checked at every
    call: equal to the cached scale and without an autograd graph in θ, so a
    θ-dependent scale such as μ_F = m_t keeps its PDF gradient) and |M|² > 0 at the
    reference parameters, the θ-independent PDF × flux factor of each flavour channel
    is kept and only Σ_c (PDF × flux)_c |M|²_c(θ) recomputed, through the process's
    ``weighted_matrix_element`` (which may precompute its own θ-independent parts);
    otherwise the full
    :class:`~forward.integrand.HadronicIntegrand` is called.

    Args:
        integrand: the process's :class:`~forward.integrand.HadronicIntegrand`.
        events: the fixed hard events (n,), float64.
        chunk_size: events per evaluation (memory bound).
    """

    def __init__(self, integrand, events: HardEvents, chunk_size: int = 200_000) -> None:
        self.integrand = integrand
        self.process = integrand.process
        # momentum fractions outside (0, 1] (e.g. proposal draws beyond the kinematic
        # limit) have dσ/dμ = 0; they are evaluated at a harmless stand-in and masked
        x1, x2 = events.x1, events.x2
        self.physical = (x1 > 0) & (x1 <= 1) & (x2 > 0) & (x2 <= 1)
        half = torch.full_like(x1, 0.5)
        events = HardEvents(events.momenta, torch.where(self.physical, x1, half),
                            torch.where(self.physical, x2, half), events.sqrt_s)
        self.events = events
        self.chunk_size = int(chunk_size)
        ref = self.process.params(None, dtype=events.momenta.dtype, device=events.momenta.device)
        lumi, mu2 = [], []
        cacheable = True
        with torch.no_grad():
            for ev in self._chunks():
                contrib = integrand.channel_contributions(ev, ref)
                me = self.process.matrix_element(ev, ref)
                mu2.append(self.process.hard_scales(ev, ref)[0])
                if not bool((me > 0).all() and torch.isfinite(me).all()):
                    cacheable = False
                lumi.append(contrib / torch.where(me > 0, me, torch.ones_like(me)))
        self.mu_f2 = torch.cat(mu2) if mu2 else None
        self.lumi = torch.cat(lumi) if cacheable and lumi else None
        # Σ_c lumi_c |M|²_c(θ) with the process's θ-independent work done once per chunk
        self._weighted = None
        if self.lumi is not None:
            with torch.no_grad():
                self._weighted = [
                    self.process.weighted_matrix_element(
                        ev, self.lumi[i * self.chunk_size : i * self.chunk_size + len(ev)])
                    for i, ev in enumerate(self._chunks())]

    def _chunks(self):
        n = len(self.events)
        for start in range(0, n, self.chunk_size):
            yield self.events[start : start + self.chunk_size]

    def __call__(self, params: Mapping[str, torch.Tensor], scale_factors=None) -> torch.Tensor:
        """log dσ/dμ at the cached events for one parameter point.

        Args:
            params: complete parameter tensors of shape () (from ``Process.params``).
            scale_factors: None, or (mur, muf): factors (numbers or tensors of shape (),
                differentiable) multiplying the process's ``mur_factor``/``muf_factor``
                for this evaluation; the PDF × flux cache is then not used.

        Returns:
            Tensor (n,) float64, -inf where dσ/dμ = 0; keeps the autograd graph in θ.

        Raises:
            ValueError: NaN or negative dσ/dμ, naming the parameter point.
        """
        integrand = self.integrand
        if scale_factors is not None:
            varied = copy.copy(self.process)
            varied.mur_factor = self.process.mur_factor * scale_factors[0]
            varied.muf_factor = self.process.muf_factor * scale_factors[1]
            integrand = copy.copy(self.integrand)
            integrand.process = varied
        out = []
        for i, ev in enumerate(self._chunks()):
            sl = slice(i * self.chunk_size, i * self.chunk_size + len(ev))
            ds = None
            if self.lumi is not None and scale_factors is None:
                mu2 = self.process.hard_scales(ev, params)[0]
                # a scale that depends on θ (requires grad) must keep its PDF gradient
                if not mu2.requires_grad and torch.equal(mu2, self.mu_f2[sl]):
                    ds = self._weighted[i](params)
            if ds is None:
                ds = integrand.differential(ev, params)
            out.append(ds)
        ds = torch.cat(out)
        ds = torch.where(self.physical, ds, torch.zeros_like(ds))
        if bool(torch.isnan(ds).any()) or bool((ds < 0).any()):
            point = {k: float(v.detach()) for k, v in params.items() if v.numel() == 1}
            raise ValueError(f"theta: dσ/dμ is NaN or negative at {point}")
        return _safe_log(ds)


class MEMLikelihood:
    """p(x_reco | θ) of observed reco events from a :class:`MEMModel` (EventLikelihood).

    Args:
        model: the trained pieces.
        x_reco: observed reco events, shape (m, *reco_event_shape) (what the transfer
            takes), all accepted by the selection.
        n_samples: proposal draws per event (>= 25 for the Pareto k̂).
        parameter_names: the parameters θ given to :meth:`log_prob`; default every
            process parameter not in ``fixed``.
        fixed: values (numbers) of other parameters; the rest keep their defaults.
        seed: seeds the proposal draws and the fiducial sample.
        n_fiducial: size of the fixed sample for σ_fid(θ).
        proposal_theta: θ given to a θ-conditional proposal (drawn once, for all θ).
        defensive: share α in [0, 1) of draws from the channel's phase-space density
            (mixture q = (1-α) q_prop + α q_map bounds the weights; needs the proposal's
            ``log_prob(hard, x_reco)``).
        chunk_size: hard events per network/matrix-element evaluation.
        max_error, min_ess, max_pareto_k: limits beyond which an event is flagged.
        on_flagged: ``"warn"`` (a :class:`MEMWarning` from :meth:`log_prob`, once per
            distinct count), ``"error"`` (a
            :class:`~invsim.infer.flags.FlaggedEventsError`, a ValueError; ``"raise"``
            is a synonym) or ``"ignore"``; :meth:`evaluate` always returns the flags
            and their reasons. Scans and posteriors report the flags again with their
            own ``on_flagged``.
        progress: show tqdm bars while drawing.
        device: device of the cached samples; default that of ``x_reco``.
        outside_range: what :meth:`log_prob`, :meth:`log_prob_and_log_sigma_fid` and
            :meth:`log_sigma_fid` do at θ outside the process's declared parameter
            ranges: ``"auto"`` (default) returns -inf there when called inside a running
            Pyro model (any Pyro effect handler active, e.g. NUTS or SVI on a user's
            model, so ``init_to_uniform`` and trajectories that leave the range are
            simply rejected) and raises ``ValueError`` otherwise; ``"-inf"`` always
            returns -inf; ``"raise"`` always raises. :meth:`evaluate` always raises.
        nuisances: nuisance parameters appended to ``parameter_names``: names of
            :data:`SCALE_NUISANCES` (``"log2_mur"``, ``"log2_muf"``): log₂ of factors on
            μ_R and μ_F entering dσ(θ)/dμ exactly at the cached samples (and σ_fid), so
            scans profile them and NUTS marginalises them; declared range [-1, 1]; and
            the model's detector nuisances (``"jes"`` for a model trained over a JES
            range, :mod:`invsim.mem.detector_nuisances`), over the trained range.
            A detector nuisance not in θ is held at its value in ``fixed`` (default 1).
        assignments: column permutations of x_reco summed over (see the module
            docstring): ``"auto"`` (default) those of ``model.observables`` (both b-jet
            assignments for t t̄), None for none, or a sequence of permutations of
            ``range(d)`` (the identity is added first).
        fiducial_acceptance: the ε(y) of σ_fid(θ): ``"network"`` (the model's
            acceptance network), ``"detector"`` (the detector the model was trained
            with, rebuilt from ``model.detector`` at the fixed detector nuisances and run
            ``fiducial_smearings`` times on every fiducial event:
            :class:`~invsim.mem.simulated_acceptance.SimulatedAcceptance`, unbiased, no
            network error to tilt σ_fid(θ)), a θ-independent callable HardEvents (n,) ->
            log ε (n,), or ``"auto"`` (default): ``"detector"`` when the model's detector
            is known (``model.detector``) and no detector nuisance is free, else
            ``"network"`` (a free detector nuisance needs ε at every node of its
            interpolant: the network's). The network's error does not cancel in
            σ_fid(θ): its slope over the phase space tilts the summed log-likelihood by
            m Δlog σ_fid(θ) and biases the extended term's expected count, where the
            network in the numerator only enters through ε at each event's own hard
            configurations, nearly independent of θ (``benchmarks/mem.py``: the summed
            −2Δlog L's deviation from the brute force halved).
        fiducial_smearings: detector simulations per fiducial event for ``"detector"``.
        event_acceptance: the ε(y) of the per-event integrals (the numerator), with the
            same choices and the same ``"auto"`` rule as ``fiducial_acceptance``: the
            detector's pass fraction of ``event_smearings`` simulations of every proposal
            draw is an unbiased ε̂(y_j) inside an unbiased importance-sampling sum, so
            p̂(x|θ) stays unbiased; it removes the network's error where ε has steps
            (the card's efficiency tables in pT and |η|), at the cost of
            n_samples × event_smearings detector runs per event once, at set-up. The
            choice is recorded in :attr:`event_acceptance`.
        event_smearings: detector simulations per proposal draw for ``"detector"``.

    Attributes:
        parameter_names: names of θ, in order.
        n_events: m.

    Raises:
        ValueError/TypeError: bad inputs; NaN/inf in x_reco or in the networks' outputs.
    """

    def __init__(
        self,
        model: MEMModel,
        x_reco,
        *,
        n_samples: int = 1000,
        parameter_names: Sequence[str] | None = None,
        fixed: Mapping[str, float] | None = None,
        seed: int = 0,
        n_fiducial: int = 100_000,
        proposal_theta=None,
        defensive: float = 0.0,
        chunk_size: int = 200_000,
        max_error: float = 0.1,
        min_ess: float = 20.0,
        max_pareto_k: float = 0.7,
        on_flagged: str = "warn",
        progress: bool = False,
        device=None,
        outside_range: str = "auto",
        nuisances: Sequence[str] = (),
        assignments="auto",
        fiducial_acceptance="auto",
        fiducial_smearings: int = 4,
        event_acceptance="auto",
        event_smearings: int = 8,
    ) -> None:
        if not isinstance(model, MEMModel):
            raise TypeError(f"model: expected a MEMModel, got {type(model).__name__}")
        x_reco = as_tensor("x_reco", x_reco)
        check_floating("x_reco", x_reco)
        if x_reco.ndim < 2 or x_reco.shape[0] < 1:
            raise ValueError(f"x_reco: expected shape (m >= 1, ...), got {tuple(x_reco.shape)}")
        check_finite("x_reco", x_reco)
        for name, v, lo in (("n_samples", n_samples, 25), ("n_fiducial", n_fiducial, 2),
                            ("chunk_size", chunk_size, 1)):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"{name}: expected an integer >= {lo}, got {v!r}")
        if not (0 <= defensive < 1):
            raise ValueError(f"defensive: expected a share in [0, 1), got {defensive!r}")
        on_flagged = check_on_flagged(on_flagged)
        check_choice("outside_range", outside_range, OUTSIDE_RANGE)
        for name, choice in (("fiducial_acceptance", fiducial_acceptance),
                             ("event_acceptance", event_acceptance)):
            if not callable(choice):
                check_choice(name, choice, FIDUCIAL_ACCEPTANCE)
        check_count("fiducial_smearings", fiducial_smearings)
        check_count("event_smearings", event_smearings)
        self.outside_range = outside_range
        self.model = model
        self.process = model.process
        self.device = resolve_device(device) if device is not None else x_reco.device
        self.x_reco = x_reco.to(self.device)
        self.n_events = x_reco.shape[0]
        self.n_samples = n_samples
        fixed = dict(fixed or {})
        det_fixed = {k: float(fixed.pop(k)) for k in list(fixed) if k in DETECTOR_NUISANCES}
        for k, v in det_fixed.items():
            if k not in model.detector_nuisances:
                raise ValueError(f"fixed: {k} is a detector nuisance the model was not trained "
                                 f"over (its ranges: {sorted(model.ranges)})")
            lo, hi = model.ranges[k]
            if not lo <= v <= hi:
                raise ValueError(f"fixed: {k} expected in the trained range [{lo}, {hi}], got {v}")
        self.fixed = {k: float(v) for k, v in fixed.items()}
        self.process.params(self.fixed)  # names and ranges
        if parameter_names is None:
            parameter_names = [p for p in self.process.parameters if p not in self.fixed]
        if isinstance(parameter_names, str):
            raise TypeError(
                f"parameter_names: expected a sequence of names, got {parameter_names!r}"
            )
        names = tuple(parameter_names)
        unknown = [p for p in names if p not in self.process.parameters]
        if unknown or len(set(names)) != len(names) or set(names) & set(self.fixed):
            raise ValueError(
                f"parameter_names: expected distinct names of {sorted(self.process.parameters)} "
                f"not in fixed, got {list(names)}"
            )
        if isinstance(nuisances, str):
            raise TypeError(f"nuisances: expected a sequence of names, got {nuisances!r}")
        nuisances = tuple(nuisances)
        allowed = [*SCALE_NUISANCES, *model.detector_nuisances]
        if (any(n not in allowed for n in nuisances) or len(set(nuisances))
                != len(nuisances) or set(nuisances) & set(self.process.parameters)
                or set(nuisances) & set(det_fixed)):
            hint = "" if model.detector_nuisances else (
                "; detector nuisances (jes) need a model trained over their range")
            raise ValueError(f"nuisances: expected distinct names of {allowed} not in fixed, "
                             f"got {list(nuisances)}{hint}")
        self._process_names = names
        self.nuisances = nuisances
        self._scale_nuisances = tuple(n for n in nuisances if n in SCALE_NUISANCES)
        self._det_free = tuple(n for n in nuisances if n in DETECTOR_NUISANCES)
        if len(self._det_free) > 1:
            raise ValueError(f"nuisances: at most one detector nuisance can be free, got "
                             f"{list(self._det_free)}")
        self._det_fixed = {n: det_fixed.get(n, DETECTOR_NUISANCES[n].default)
                           for n in model.detector_nuisances if n not in self._det_free}
        self._cheb = (ChebyshevCache(*model.ranges[self._det_free[0]]) if self._det_free
                      else None)
        if isinstance(assignments, str) and assignments == "auto":
            obs = model.observables
            assignments = () if obs is None or obs.dim != x_reco.shape[-1] else obs.assignments
        elif assignments is None:
            assignments = ()
        if x_reco.ndim != 2 and tuple(assignments):
            raise ValueError(f"assignments: need flat x_reco (m, d), got {tuple(x_reco.shape)}")
        self.assignments = check_assignments(assignments, x_reco.shape[-1])
        if len(self.assignments) > 1:  # one representative per event: see canonical_order
            self.x_reco = canonical_order(self.x_reco, self.assignments)
        self._proposal = (AssignmentMixture(model.proposal, self.assignments)
                          if len(self.assignments) > 1 else model.proposal)
        self.parameter_names = names + nuisances
        self.limits = dict(max_error=max_error, min_ess=min_ess, max_pareto_k=max_pareto_k)
        self.on_flagged = on_flagged
        self._warned: set[int] = set()
        self.chunk_size = chunk_size
        # the cache holds every proposal draw and the fiducial sample: refuse up front
        # what cannot fit (per draw: momenta of k particles, x1, x2, log factor, dσ)
        k = len(getattr(self.process, "final_state", ())) or 4
        check_memory(f"n_samples={n_samples} x {self.n_events} events + n_fiducial",
                     self.n_events * n_samples + n_fiducial, 32 * k + 64, device=self.device,
                     what="cached hard events")
        gen = make_generator(seed, device=self.device)
        # the per-draw detector simulations from a stream of their own, so the proposal
        # draws (and the fiducial sample) do not depend on the event_acceptance choice
        acc_gen = make_generator(None if seed is None else int(seed) + 0x5EED,
                                 device=self.device)
        log_acceptance, _ = self._acceptance(event_acceptance, event_smearings, acc_gen,
                                             "event_acceptance")
        self._draw(proposal_theta, defensive, gen, progress, log_acceptance)
        self._fiducial(n_fiducial, gen, fiducial_acceptance, fiducial_smearings)

    # -- cached samples ------------------------------------------------------------------
    def _draw(self, proposal_theta, defensive: float, gen, progress: bool,
              log_acceptance) -> None:
        n = self.n_samples
        n_def = int(round(defensive * n))
        n_prop = n - n_def
        if n_prop < 1:
            raise ValueError("defensive: leaves no draws from the proposal")
        if n_def and not callable(getattr(self._proposal, "log_prob", None)):
            raise TypeError("defensive: the proposal has no log_prob(hard, x_reco)")
        per = max(1, self.chunk_size // n)
        log_a, moms, x1s, x2s = [], [], [], []
        #: event index -> why its log p is NaN whatever θ (reported, never raised per chunk)
        self.invalid_events: dict[int, str] = {}
        bar = progress_bar(range(0, self.n_events, per), desc="MEM proposal", progress=progress)
        for start in bar:
            xr = self.x_reco[start : start + per]
            ev, lq = self._draw_chunk(xr, n_prop, n_def, proposal_theta, gen)
            xr_rep = xr.repeat_interleave(n, 0)
            with torch.no_grad():  # the cached factor is θ-independent: no graph to keep
                la = self._log_factor(xr_rep, ev, log_acceptance)  # (rows, K)
            la = la.view(len(xr), n, -1)
            bad = (torch.isnan(la) | (la == math.inf)).any(-1).any(1)
            if bool(bad.any()):  # isolate those events: their log p is NaN, with a reason
                la = torch.where(bad[:, None, None], torch.full_like(la, math.nan), la)
                for i in bad.nonzero().flatten().tolist():
                    self.invalid_events[start + int(i)] = (
                        "the acceptance or transfer returned NaN/+inf at its proposal samples")
            log_a.append((la - lq[..., None]).to(self.device))
            moms.append(ev.momenta.to(self.device))
            x1s.append(ev.x1.to(self.device))
            x2s.append(ev.x2.to(self.device))
        log_a = torch.cat(log_a)  # (m, n, K)
        if self._cheb is None:
            self.log_a = log_a[..., 0]  # (m, n)
        else:  # Chebyshev coefficients in the free detector nuisance; -inf kept apart
            self._log_a_valid = ~(log_a == -math.inf).any(-1)
            self._log_a_coef = self._cheb.fit(
                torch.where(self._log_a_valid[..., None], log_a, torch.zeros_like(log_a)))
            self.log_a = None
        if self.invalid_events:
            shown = sorted(self.invalid_events)[:10]
            text = (f"model: the acceptance or transfer returned NaN/+inf at the proposal "
                    f"samples of {len(self.invalid_events)} of {self.n_events} events "
                    f"(indices {shown}{' ...' if len(self.invalid_events) > 10 else ''}); "
                    "their log p is NaN and they are flagged")
            if self.on_flagged == "error":
                raise FlaggedEventsError(text)
            if self.on_flagged != "ignore":
                warnings.warn(text, MEMWarning, stacklevel=4)
        self.events = HardEvents(torch.cat(moms), torch.cat(x1s), torch.cat(x2s),
                                 self.process.sqrt_s)

    def _nodes(self) -> list[dict]:
        """Detector-nuisance values at which the cached factors are evaluated."""
        if self._cheb is None:
            return [self._det_fixed]
        name = self._det_free[0]
        return [{**self._det_fixed, name: float(v)} for v in self._cheb.nodes]

    def _log_factor(self, x_rep: torch.Tensor, events: HardEvents,
                    log_acceptance) -> torch.Tensor:
        """log ε(y) + log Σ_π r(π x | y) at every node of :meth:`_nodes`, shape (rows, K)."""
        out = []
        for nu in self._nodes():
            def log_r(x, ev, nu=nu):
                return self.model.log_transfer(x, ev, nu)

            out.append(log_acceptance(events, nu)
                       + log_transfer_sum(log_r, x_rep, events, self.assignments))
        return torch.stack(out, -1)

    def _proposal_log_prob(self, events: HardEvents, x_rep: torch.Tensor, theta,
                           n_prop: int) -> torch.Tensor:
        if isinstance(self._proposal, AssignmentMixture):
            return self._proposal.log_prob(events, x_rep, theta, n=n_prop)
        return self._proposal.log_prob(events, x_rep, theta)

    def _draw_chunk(self, xr, n_prop: int, n_def: int, theta, gen):
        m = xr.shape[0]
        with torch.no_grad():
            ev, lq = self._proposal.sample_and_log_prob(xr, n_prop, theta, generator=gen)
            ev = ev.to(dtype=torch.float64, device=self.device)
            lq = lq.to(dtype=torch.float64, device=self.device)
            if lq.shape != (m, n_prop) or len(ev) != m * n_prop:
                raise ValueError(
                    f"model.proposal: expected {m * n_prop} events and log_q of shape "
                    f"({m}, {n_prop}), got {len(ev)} and {tuple(lq.shape)}"
                )
            if not bool(torch.isfinite(lq).all()):
                raise ValueError("model.proposal: non-finite log q at its own samples")
            check_finite("model.proposal events", ev.momenta)
            if n_def == 0:
                return ev, lq
            cmap = self.model.coordinates.map
            r = torch.rand(m * n_def, cmap.dim, generator=gen, dtype=torch.float64,
                           device=self.device)
            ev_d, log_jac = cmap.forward(r)
            alpha = n_def / (n_prop + n_def)
            # mixture density at both kinds of draws
            lq_map_p = self._log_map_density(ev)
            lq_prop_d = self._proposal_log_prob(
                ev_d, xr.repeat_interleave(n_def, 0), theta, n_prop).to(torch.float64).view(
                    m, n_def)
            lq_p = torch.logaddexp(lq + math.log1p(-alpha),
                                   lq_map_p.view(m, n_prop) + math.log(alpha))
            lq_d = torch.logaddexp(lq_prop_d + math.log1p(-alpha),
                                   -log_jac.view(m, n_def) + math.log(alpha))
            k = ev.momenta.shape[1]
            mom = torch.cat([ev.momenta.view(m, n_prop, k, 4),
                             ev_d.momenta.view(m, n_def, k, 4)], 1).view(-1, k, 4)
            x1 = torch.cat([ev.x1.view(m, n_prop), ev_d.x1.view(m, n_def)], 1).flatten()
            x2 = torch.cat([ev.x2.view(m, n_prop), ev_d.x2.view(m, n_def)], 1).flatten()
            return HardEvents(mom, x1, x2, ev.sqrt_s), torch.cat([lq_p, lq_d], 1)

    def _log_map_density(self, events: HardEvents) -> torch.Tensor:
        r, log_jac_inv = self.model.coordinates.map.inverse(events)
        inside = ((r > 0) & (r < 1)).all(-1) & torch.isfinite(log_jac_inv)
        return torch.where(inside, log_jac_inv, torch.full_like(log_jac_inv, -math.inf))

    def _acceptance(self, choice, smearings: int, gen, role: str):
        """(log ε(events, detector nuisances) callable, its name in messages) for the
        ``role`` ("fiducial_acceptance" or "event_acceptance"); records the resolved
        choice in the attribute of that name."""
        free = self._det_free[0] if self._cheb is not None else None
        if callable(choice):
            if free is not None:
                raise ValueError(f"{role}: a callable is θ-independent and cannot "
                                 f"follow the free detector nuisance {free!r}; use 'network'")
            setattr(self, role, "callable")
            return (lambda ev, nu: choice(ev)), role
        known = self.model.detector is not None
        if choice == "auto":
            choice = "detector" if known and free is None else "network"
        setattr(self, role, choice)
        if choice == "network":
            return self.model.log_acceptance, "model.acceptance"
        if not known:
            raise ValueError(f"{role}: 'detector' needs the model's detector "
                             "(model.detector is None: the model was built without a "
                             "describable detector); pass 'network' or a callable")
        if free is not None:
            raise ValueError(f"{role}: 'detector' is not available with the free "
                             f"detector nuisance {free!r}; use 'network'")
        from forward.detector import Detector, detector_from_description
        from invsim.mem.simulated_acceptance import SimulatedAcceptance

        det = detector_from_description(self.model.detector)
        jes = self._det_fixed.get("jes", 1.0)
        if jes != 1.0:
            if not isinstance(det, Detector):
                raise ValueError(f"fixed: jes={jes} needs a card detector, the model's is "
                                 f"{type(det).__name__}")
            det = Detector(det.card, jes=jes)
        seed = int(torch.randint(0, 2**62, (1,), generator=gen, device=gen.device))
        acc = SimulatedAcceptance(self.process, det, self.model.observables,
                                  smearings=smearings, seed=seed)
        return (lambda ev, nu: acc(ev)), "detector acceptance"

    def _fiducial(self, n: int, gen, choice="network", smearings: int = 4) -> None:
        nodes = self._nodes()
        log_acceptance, what = self._acceptance(choice, smearings, gen, "fiducial_acceptance")
        self._fid = FiducialSample(
            self.model.coordinates.map, n, gen,
            log_acceptance=(lambda ev: log_acceptance(ev, nodes[0]))
            if self._cheb is None else None,
            chunk_size=self.chunk_size, device=self.device, what=what)
        ev = self._fid.events
        if self._cheb is not None:  # log ε(y_i, ν) as Chebyshev interpolants in ν
            with torch.no_grad():
                le = torch.stack([torch.cat([
                    log_acceptance(ev[s : s + self.chunk_size], nu)
                    for s in range(0, len(ev), self.chunk_size)]) for nu in nodes], -1)
            if bool(torch.isnan(le).any()):
                raise ValueError(f"{what}: NaN at the fiducial sample")
            self._fid_valid = ~(le == -math.inf).any(-1)
            self._fid_coef = self._cheb.fit(
                torch.where(self._fid_valid[..., None], le, torch.zeros_like(le)))
        # one cache for the proposal draws and the fiducial sample: one evaluation per θ
        both = HardEvents(torch.cat([self.events.momenta, ev.momenta]),
                          torch.cat([self.events.x1, ev.x1]), torch.cat([self.events.x2, ev.x2]),
                          self.process.sqrt_s)
        self._dsigma = DifferentialCache(self.model.integrand, both, self.chunk_size)

    # -- parameters ----------------------------------------------------------------------
    @property
    def parameters(self) -> dict:
        """The declared :class:`~forward.processes.Parameter` of each θ component; where
        the model was trained over a range (``model.ranges``), that range (priors and
        scans default to it: the proposal covers no more)."""
        out = {}
        for p in self.parameter_names:
            par = self._declared(p)
            if p in self.model.ranges:
                lo, hi = self.model.ranges[p]
                par = dataclasses.replace(par, low=lo, high=hi,
                                          default=min(max(par.default, lo), hi))
            out[p] = par
        return out

    def _declared(self, name: str) -> Parameter:
        """The declared parameter of a θ component (process parameter or nuisance); a
        detector nuisance's range is the model's trained range (the interpolants of the
        cached factors do not reach further)."""
        if name in self._det_free:
            lo, hi = self.model.ranges[name]
            return dataclasses.replace(DETECTOR_NUISANCES[name], low=lo, high=hi)
        return SCALE_NUISANCES[name] if name in self.nuisances else self.process.parameters[name]

    def _points(self, theta) -> tuple[list[tuple[dict, tuple | None, dict]], bool]:
        """Per θ point: (complete process parameters, scale factors (mur, muf) or None,
        free detector nuisance values), and whether θ was batched."""
        if not self.nuisances:
            points, batched = parameter_points(self.process, self.parameter_names, self.fixed,
                                               theta, self.device)
            return [(p, None, {}) for p in points], batched
        if not isinstance(theta, Mapping):
            raise TypeError(f"theta: expected a mapping of {list(self.parameter_names)} to "
                            f"tensors, got {type(theta).__name__}")
        # the nuisances are checked and batched like parameters, then split off
        space = _NuisanceSpace({n: self._declared(n) for n in self.nuisances})
        nuis, batched_n = parameter_points(space, self.nuisances, {},
                                           {k: theta[k] for k in self.nuisances if k in theta},
                                           self.device)
        rest = {k: v for k, v in theta.items() if k not in self.nuisances}
        missing = [k for k in self.nuisances if k not in theta]
        if missing:
            raise ValueError(f"theta: expected exactly the parameters "
                             f"{list(self.parameter_names)}, missing {missing}")
        points, batched = parameter_points(self.process, self._process_names, self.fixed, rest,
                                           self.device)
        if len(points) == 1 and len(nuis) > 1:
            points = points * len(nuis)
        elif len(nuis) == 1 and len(points) > 1:
            nuis = nuis * len(points)
        if len(points) != len(nuis):
            raise ValueError(f"theta: expected every value of shape () or the same (b,), got "
                             f"{len(points)} and {len(nuis)} points")
        two = torch.tensor(2.0, dtype=torch.float64, device=self.device)
        out = [(p, (two ** n["log2_mur"] if "log2_mur" in n else 1.0,
                    two ** n["log2_muf"] if "log2_muf" in n else 1.0)
                if self._scale_nuisances else None,
                {k: n[k] for k in self._det_free})
               for p, n in zip(points, nuis, strict=True)]
        return out, batched or batched_n

    # -- likelihood ----------------------------------------------------------------------
    def _log_dsigma(self, params, factors=None) -> tuple[torch.Tensor, torch.Tensor]:
        """log dσ/dμ at the proposal draws (m, n) and at the fiducial sample (N,)."""
        both = self._dsigma(params, factors)
        k = self.n_events * self.n_samples
        return both[:k].view(self.n_events, self.n_samples), both[k:]

    def _log_sigma_fid(self, log_dsigma_fid, det=None) -> tuple[torch.Tensor, torch.Tensor]:
        if self._cheb is None:
            return self._fid.log_sigma(log_dsigma_fid)
        le = self._cheb(self._fid_coef, det[self._det_free[0]])
        le = torch.where(self._fid_valid, le, torch.full_like(le, -math.inf))
        s = summarize_weights(log_dsigma_fid + self._fid.log_b + le)
        return s.log_mean, s.error

    def _log_a_at(self, det) -> torch.Tensor:
        """The cached log ε r / q of the draws (m, n) at the free detector nuisance."""
        if self._cheb is None:
            return self.log_a
        la = self._cheb(self._log_a_coef, det[self._det_free[0]])
        return torch.where(self._log_a_valid, la, torch.full_like(la, -math.inf))

    def _outside(self, theta):
        """θ with points outside the declared ranges moved to the defaults, and their mask.

        Returns:
            (theta, mask): ``mask`` is None when every point is inside or when such
            points must raise (``outside_range``), else a bool tensor of shape () or (b,).
        """
        if self.outside_range == "raise" or not isinstance(theta, Mapping):
            return theta, None
        if self.outside_range == "auto":
            from pyro.poutine.runtime import am_i_wrapped

            if not am_i_wrapped():
                return theta, None
        mask = None
        for p in self.parameter_names:
            v = theta.get(p)
            if not isinstance(v, torch.Tensor) or not v.is_floating_point():
                return theta, None  # numbers and bad input: checked (and raised) as usual
            par = self._declared(p)
            out = (v.detach() < par.low) | (v.detach() > par.high)
            mask = out if mask is None else mask | out
        if mask is None or not bool(mask.any()):
            return theta, None
        safe = dict(theta)
        for p in self.parameter_names:
            default = torch.full_like(theta[p], self._declared(p).default)
            safe[p] = torch.where(mask, default, theta[p])
        return safe, mask

    @staticmethod
    def _neg_inf_where(mask, value: torch.Tensor) -> torch.Tensor:
        """``value`` with -inf at the masked θ points (mask () or (b,), value (…) or (b, …))."""
        if mask is None:
            return value
        m = mask.reshape(mask.shape + (1,) * (value.ndim - mask.ndim))
        return torch.where(m, torch.full_like(value, -math.inf), value)

    def log_sigma_fid(self, theta) -> torch.Tensor:
        """log(σ_fid(θ) / pb) from the fixed fiducial sample, shape () or (b,), differentiable.

        Outside the declared ranges: -inf or ``ValueError``, see ``outside_range``."""
        theta, mask = self._outside(theta)
        points, batched = self._points(theta)
        out = torch.stack([self._log_sigma_fid(self._log_dsigma(p, f)[1], d)[0]
                           for p, f, d in points])
        return self._neg_inf_where(mask, out if batched else out[0])

    def _point(self, params, factors, det, *, full: bool):
        log_ds, log_ds_fid = self._log_dsigma(params, factors)
        log_w = self._log_a_at(det) + log_ds
        s = summarize_weights(log_w)
        lsf, sf_err = self._log_sigma_fid(log_ds_fid, det)
        # an event with NaN weights (invalid) gets k̂ = +inf instead of failing the others
        lw = log_w.detach()
        k = pareto_khat(torch.where(torch.isnan(lw), -math.inf, lw)) if full else None
        return s.log_mean - lsf, s, lsf, sf_err, k

    def log_prob(self, theta) -> torch.Tensor:
        """Per-event log p(x_reco | θ), differentiable in θ.

        Args:
            theta: mapping of each name in ``parameter_names`` to a tensor of shape ()
                or (b,) (a batch of parameter points; numbers are taken as float64).

        Returns:
            Tensor (n_events,) or (b, n_events), float64, w.r.t. the reco observables'
            measure of the transfer function; -inf at θ outside the declared ranges when
            ``outside_range`` says so (by default inside a running Pyro model).

        Raises:
            ValueError: θ outside the declared ranges (outside a Pyro model, by default).
        """
        return self.log_prob_and_log_sigma_fid(theta)[0]

    def log_prob_and_log_sigma_fid(self, theta) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`log_prob` and :meth:`log_sigma_fid` from one evaluation per θ point.

        The extended likelihood needs both; σ_fid(θ) enters log p anyway, so asking
        for them together halves the fiducial-sample work.

        Args:
            theta: as for :meth:`log_prob`.

        Returns:
            (log p of shape (n_events,) or (b, n_events), log(σ_fid/pb) of shape () or
            (b,)), float64, differentiable in θ.
        """
        theta, mask = self._outside(theta)
        points, batched = self._points(theta)
        out, sig, n_bad = [], [], 0
        skip = [False] * len(points) if mask is None else mask.reshape(-1).expand(
            len(points)).tolist()
        for (params, factors, det), stand_in in zip(points, skip, strict=True):
            lp, s, lsf, _, _ = self._point(params, factors, det, full=False)
            bad = flag_events(lp, s.error, s.ess, None, max_error=self.limits["max_error"],
                              min_ess=self.limits["min_ess"], max_pareto_k=math.inf)
            if not stand_in:  # points outside the range were evaluated at the defaults
                n_bad = max(n_bad, int(bad.sum()))
            out.append(lp)
            sig.append(lsf)
        self._report(n_bad)
        out, sig = torch.stack(out), torch.stack(sig)
        if not batched:
            out, sig = out[0], sig[0]
        return self._neg_inf_where(mask, out), self._neg_inf_where(mask, sig)

    def _report(self, n_bad: int) -> None:
        if n_bad == 0 or self.on_flagged == "ignore":
            return
        text = (f"{n_bad} of {self.n_events} events have poor importance-sampling diagnostics "
                f"(error > {self.limits['max_error']}, ESS < {self.limits['min_ess']} or "
                "non-finite); MEMLikelihood.evaluate(theta) returns the flags per event")
        if self.on_flagged == "error":
            raise FlaggedEventsError(text)
        if n_bad not in self._warned:
            self._warned.add(n_bad)
            warnings.warn(text, MEMWarning, stacklevel=3)

    def evaluate(self, theta) -> MEMResult:
        """log p with per-event MC error, ESS, Pareto k̂ and flags (see :class:`MEMResult`).

        Args:
            theta: as for :meth:`log_prob`.

        Returns:
            A :class:`~invsim.mem.MEMResult`, shapes (n_events,) or (b, n_events); the
            values keep the autograd graph.
        """
        points, batched = self._points(theta)
        rows = []
        for params, factors, det in points:
            lp, s, lsf, sf_err, k = self._point(params, factors, det, full=True)
            why = flag_reasons(lp, s.error, s.ess, k, **self.limits)
            flagged = torch.stack(list(why.values())).any(0)
            rows.append((lp, s.error, s.ess, k, flagged, lsf, sf_err, *why.values()))
        keys = list(why)
        cols = [torch.stack(c) for c in zip(*rows, strict=True)]
        if not batched:
            cols = [c[0] for c in cols]
        lp, err, ess, k, flagged, lsf, sf_err = cols[:7]
        return MEMResult(lp, err, ess, k, flagged, lsf, sf_err, self.n_samples,
                         dict(zip(keys, cols[7:], strict=True)))

    def __repr__(self) -> str:
        return (f"MEMLikelihood({self.n_events} events x {self.n_samples} samples, "
                f"parameters={self.parameter_names}, fixed={self.fixed})")
