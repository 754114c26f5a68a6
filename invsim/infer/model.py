"""The posterior to sample: priors x per-event likelihood [x Poisson term], as a Pyro model.

:class:`InferenceProblem` bundles an :class:`~invsim.infer.likelihood.EventLikelihood`,
its named priors and the optional extended term, and offers the same log density
three ways: as a Pyro model (``pyro.sample`` per parameter, ``pyro.factor`` for the
summed event log-likelihood) for NUTS, batched over θ for variational inference and
scans, and per event for ArviZ's ``log_likelihood`` group.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import pyro
import torch
from torch.distributions import biject_to

from forward._validation import check_finite
from invsim.infer.flags import check_on_flagged, drop_non_finite
from invsim.infer.likelihood import (
    check_event_log_prob,
    check_likelihood,
    extended_poisson_term,
    has_sigma_fid,
)

__all__ = ["InferenceProblem"]


def _dtype_device(prior: torch.distributions.Distribution) -> tuple[torch.dtype, torch.device]:
    """dtype and device of a distribution's parameters (float64 on CPU if it has none)."""
    for key in prior.arg_constraints:
        value = prior.__dict__.get(key)
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            return value.dtype, value.device
    return torch.float64, torch.device("cpu")


@dataclass
class InferenceProblem:
    """Priors, per-event likelihood and the optional extended (Poisson) term.

    The posterior density is

    .. math:: p(θ | x) ∝ π(θ) \\prod_i p(x_i | θ) \\; [\\mathrm{Pois}(n | σ_fid(θ) L)]

    with the bracket present when ``luminosity`` is given (extended likelihood).

    Attributes:
        likelihood: an :class:`~invsim.infer.likelihood.EventLikelihood` bound to the
            observed events.
        priors: name -> univariate distribution for every name in
            ``likelihood.parameter_names`` (build them with
            :func:`~invsim.infer.priors.build_priors`).
        luminosity: integrated luminosity in pb⁻¹ for the extended likelihood, or None.
        n_events: number of observed events n; default: the length of ``log_prob``'s
            output at the reference point.
        process: process name, recorded in results.
        on_flagged: what :func:`~invsim.infer.results.to_inference_data` (hence
            ``sample_nuts`` and ``fit_svi``) and ``profile_likelihood`` do when the
            likelihood's ``evaluate(theta)`` flags events at the draws: ``"warn"``
            (a :class:`~invsim.infer.flags.FlaggedEventsWarning` with the count and the
            reasons), ``"error"`` (synonym ``"raise"``: a
            :class:`~invsim.infer.flags.FlaggedEventsError` after sampling),
            ``"ignore"`` or ``"drop"`` (as ``"warn"``, and events whose log p is NaN or
            -inf at the reference point are left out, their indices and reasons in
            ``dropped``; with the other choices such events are an error naming them,
            see :func:`~invsim.infer.flags.drop_non_finite`). The flags are recorded in
            the InferenceData attributes in every case.
    """

    likelihood: object
    priors: Mapping[str, torch.distributions.Distribution]
    luminosity: float | None = None
    n_events: int | None = None
    process: str = ""
    on_flagged: str = "warn"
    names: tuple[str, ...] = field(init=False)
    dropped: dict = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.names = check_likelihood(self.likelihood)
        self.on_flagged = check_on_flagged(self.on_flagged)
        if not isinstance(self.priors, Mapping):
            raise TypeError(f"priors: expected a mapping name -> distribution, got "
                            f"{type(self.priors).__name__}")
        missing = [n for n in self.names if n not in self.priors]
        extra = sorted(set(self.priors) - set(self.names))
        if missing or extra:
            raise ValueError(
                f"priors: expected exactly the likelihood's parameters {list(self.names)}; "
                f"missing {missing}, unknown {extra}"
            )
        for n in self.names:
            if not isinstance(self.priors[n], torch.distributions.Distribution):
                raise TypeError(f"priors[{n!r}]: expected a Distribution, got "
                                f"{type(self.priors[n]).__name__}")
        self.priors = {n: self.priors[n] for n in self.names}
        if self.luminosity is not None:
            lum = float(self.luminosity)
            if not (math.isfinite(lum) and lum > 0):
                raise ValueError(f"luminosity: expected a finite positive value in pb^-1, got "
                                 f"{self.luminosity!r}")
            if not has_sigma_fid(self.likelihood):
                raise ValueError(
                    "luminosity: the extended likelihood needs likelihood.log_sigma_fid(theta); "
                    f"{type(self.likelihood).__name__} has none"
                )
            self.luminosity = lum
        ref = self.reference_point()
        # NaN/-inf events at the reference point: left out (on_flagged="drop") or an error
        expected = getattr(self.likelihood, "n_events", None)
        self.likelihood, self.dropped = drop_non_finite(
            self.likelihood, ref, self.on_flagged,
            n_events=expected if isinstance(expected, int) and expected > 0 else None)
        with torch.no_grad():
            ll = self.likelihood.log_prob(ref)
            check_event_log_prob(ll, None, None)
            if self.extended:
                ls = self.likelihood.log_sigma_fid(ref)
                if not isinstance(ls, torch.Tensor) or ls.shape != ():
                    got = tuple(ls.shape) if isinstance(ls, torch.Tensor) else type(ls).__name__
                    raise ValueError("likelihood.log_sigma_fid(theta): expected shape () for "
                                     f"one θ point, got {got}")
                check_finite("likelihood.log_sigma_fid(theta)", ls)
        if self.n_events is None:
            self.n_events = int(ll.shape[-1])
        elif not isinstance(self.n_events, int) or self.n_events < ll.shape[-1]:
            raise ValueError(f"n_events: expected an int >= {ll.shape[-1]} (the events the "
                             f"likelihood scores), got {self.n_events!r}")

    # -- reference point and transforms ---------------------------------------------
    @property
    def extended(self) -> bool:
        """Whether the Poisson term in the number of events is included."""
        return self.luminosity is not None

    def transforms(self) -> dict[str, torch.distributions.Transform]:
        """name -> bijection from the real line onto the prior's support."""
        return {n: biject_to(p.support) for n, p in self.priors.items()}

    def reference_point(self) -> dict[str, torch.Tensor]:
        """A θ in every prior's support: the image of 0 under :meth:`transforms`.

        Returns:
            name -> tensor of shape (), dtype and device of the prior's samples.
        """
        return {n: biject_to(p.support)(torch.zeros((), dtype=dt, device=dev))
                for n, p in self.priors.items() for dt, dev in [_dtype_device(p)]}

    # -- densities --------------------------------------------------------------------
    def _check_theta(self, theta: Mapping[str, torch.Tensor]) -> int | None:
        unknown = sorted(set(theta) - set(self.names))
        missing = [n for n in self.names if n not in theta]
        if unknown or missing:
            raise ValueError(f"theta: expected the parameters {list(self.names)}; missing "
                             f"{missing}, unknown {unknown}")
        shapes = {tuple(torch.as_tensor(v).shape) for v in theta.values()}
        if len(shapes) != 1 or len(next(iter(shapes))) > 1:
            raise ValueError(f"theta: expected every value of shape () or the same (b,), got "
                             f"{ {n: tuple(torch.as_tensor(v).shape) for n, v in theta.items()} }")
        shape = next(iter(shapes))
        return shape[0] if shape else None

    def event_log_likelihood(self, theta: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Per-event log p(x_i | θ), checked, shape (n_events,) or (b, n_events)."""
        batch = self._check_theta(theta)
        return check_event_log_prob(self.likelihood.log_prob(theta), batch, None)

    def extended_log_term(self, theta: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """log Pois(n | σ_fid(θ) L), shape () or (b,); zero without a luminosity."""
        batch = self._check_theta(theta)
        if not self.extended:
            ref = next(iter(theta.values()))
            return torch.zeros(() if batch is None else (batch,), dtype=ref.dtype,
                               device=ref.device)
        return self._poisson(self.likelihood.log_sigma_fid(theta))

    def _poisson(self, log_sigma_fid: torch.Tensor) -> torch.Tensor:
        """log Pois(n | σ_fid L) from log(σ_fid/pb) (:func:`extended_poisson_term`)."""
        return extended_poisson_term(log_sigma_fid, self.n_events, self.luminosity)

    def _terms(self, theta: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(per-event log p (n_events,) or (b, n_events), Poisson term () or (b,)).

        Uses the likelihood's ``log_prob_and_log_sigma_fid`` when it has one (one
        evaluation of σ_fid per θ instead of two).
        """
        both = getattr(self.likelihood, "log_prob_and_log_sigma_fid", None)
        if not (self.extended and callable(both)):
            return self.event_log_likelihood(theta), self.extended_log_term(theta)
        batch = self._check_theta(theta)
        lp, log_sig = both(theta)
        return check_event_log_prob(lp, batch, None), self._poisson(log_sig)

    def log_likelihood(self, theta: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Total log-likelihood Σ_i log p(x_i|θ) [+ Poisson term], shape () or (b,)."""
        lp, ext = self._terms(theta)
        return lp.sum(-1) + ext

    def log_prior(self, theta: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Σ log π(θ_k), shape () or (b,)."""
        return sum(p.log_prob(theta[n]) for n, p in self.priors.items())

    def log_joint(self, theta: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Unnormalised log posterior log π(θ) + log L(θ), shape () or (b,)."""
        return self.log_prior(theta) + self.log_likelihood(theta)

    # -- Pyro -------------------------------------------------------------------------
    def model(self) -> None:
        """Pyro model: one ``pyro.sample`` per parameter, ``pyro.factor`` for the events.

        The site names are the parameter names; the summed event log-likelihood is the
        factor ``"events"``, the Poisson term (extended likelihood only) ``"n_events"``.
        """
        theta = {n: pyro.sample(n, p) for n, p in self.priors.items()}
        lp, ext = self._terms(theta)
        pyro.factor("events", lp.sum(-1))
        if self.extended:
            pyro.factor("n_events", ext)
