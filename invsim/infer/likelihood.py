"""The per-event likelihood protocol that every inference routine programs against.

The ML matrix-element-method likelihood (:mod:`invsim.mem`), toy likelihoods in the
tests and user likelihoods all satisfy :class:`EventLikelihood`; nothing in
:mod:`invsim.infer` knows how the likelihood is computed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import torch

from forward._validation import check_floating
from invsim.infer.flags import non_finite_events

__all__ = [
    "EventLikelihood",
    "check_event_log_prob",
    "check_likelihood",
    "extended_poisson_term",
    "has_sigma_fid",
]


@runtime_checkable
class EventLikelihood(Protocol):
    """Per-event log-likelihoods log p(x_i | θ) of one fixed observed event set.

    The object holds its events; inference only varies θ.

    Attributes:
        parameter_names: names of the θ components, e.g. ``("mzp", "gzp")``; they must
            be parameters declared by the process (:class:`forward.processes.Parameter`).

    Optional members (looked up with ``getattr``):
        ``log_sigma_fid(theta) -> Tensor``: log σ_fid(θ) in pb, shape () or (b,), needed
        for the extended (Poisson) likelihood in the number of events.
        ``parameters: Mapping[str, Parameter]``: declared ranges of the θ components,
        used when no process is given (e.g. toy likelihoods).
    """

    parameter_names: tuple[str, ...]

    def log_prob(self, theta: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Per-event log-likelihoods.

        Args:
            theta: every name of ``parameter_names`` -> tensor of shape () (one θ point)
                or (b,) (a batch of b points).

        Returns:
            log p(x_i | θ), shape (n_events,) or (b, n_events); differentiable in θ.
        """
        ...


def extended_poisson_term(log_sigma_fid: torch.Tensor, n_events: int,
                          luminosity: float) -> torch.Tensor:
    """log Pois(n | ν) with ν = σ_fid L: the extended term in the number of events.

    log Pois(n | ν) = n log ν − ν − log n!. The one implementation used by
    :func:`invsim.scan.scan`, :class:`~invsim.infer.model.InferenceProblem` and
    :mod:`invsim.demo_inverse`.

    Args:
        log_sigma_fid: log(σ_fid / pb), any shape (e.g. () or (b,)), floating;
            differentiable (the graph is kept).
        n_events: observed number of events n, an int >= 0.
        luminosity: integrated luminosity L in pb⁻¹, finite and > 0.

    Returns:
        log Pois(n | σ_fid L), same shape, dtype and device as ``log_sigma_fid``.

    Raises:
        TypeError: ``log_sigma_fid`` not a floating tensor, ``n_events`` not an int.
        ValueError: negative ``n_events`` or a non-positive / non-finite ``luminosity``.
    """
    check_floating("log_sigma_fid", log_sigma_fid)
    if isinstance(n_events, bool) or not isinstance(n_events, int):
        raise TypeError(f"n_events: expected an int, got {type(n_events).__name__}")
    if n_events < 0:
        raise ValueError(f"n_events: expected an int >= 0, got {n_events}")
    lum = float(luminosity)
    if not (math.isfinite(lum) and lum > 0):
        raise ValueError(f"luminosity: expected a finite positive value in pb^-1, got "
                         f"{luminosity!r}")
    log_nu = log_sigma_fid + math.log(lum)
    return n_events * log_nu - log_nu.exp() - math.lgamma(n_events + 1)


def has_sigma_fid(likelihood) -> bool:
    """True if ``likelihood`` provides ``log_sigma_fid`` (for the extended likelihood)."""
    return callable(getattr(likelihood, "log_sigma_fid", None))


def check_likelihood(likelihood) -> tuple[str, ...]:
    """Check that ``likelihood`` follows :class:`EventLikelihood`; return its names.

    Raises:
        TypeError: no callable ``log_prob`` or no ``parameter_names``.
        ValueError: empty, duplicated or non-identifier parameter names.
    """
    if not callable(getattr(likelihood, "log_prob", None)):
        raise TypeError(
            f"likelihood: expected an EventLikelihood with a log_prob(theta) method, got "
            f"{type(likelihood).__name__}"
        )
    names = getattr(likelihood, "parameter_names", None)
    if isinstance(names, str) or names is None:
        raise TypeError(
            f"likelihood.parameter_names: expected a tuple of parameter names, got {names!r}"
        )
    names = tuple(names)
    if not names or len(set(names)) != len(names):
        raise ValueError(
            f"likelihood.parameter_names: expected distinct names, got {list(names)}"
        )
    for n in names:
        if not isinstance(n, str) or not n.isidentifier():
            raise ValueError(f"likelihood.parameter_names: {n!r} is not an identifier")
    return names


def check_event_log_prob(value, batch: int | None, n_events: int | None) -> torch.Tensor:
    """Check the output of ``log_prob``: a finite floating tensor of the promised shape.

    Args:
        value: what ``log_prob`` returned.
        batch: number of θ points b, or None for one point.
        n_events: expected number of events, or None to accept any.

    Returns:
        ``value``, shape (n_events,) or (b, n_events).

    Raises:
        TypeError, ValueError: wrong type or shape, or NaN/inf entries.
    """
    name = "likelihood.log_prob(theta)"
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name}: expected a tensor, got {type(value).__name__}")
    check_floating(name, value)
    want_ndim = 1 if batch is None else 2
    ok = value.ndim == want_ndim and (batch is None or value.shape[0] == batch)
    if ok and n_events is not None:
        ok = value.shape[-1] == n_events
    if not ok:
        n = "n_events" if n_events is None else n_events
        want = f"({n},)" if batch is None else f"({batch}, {n})"
        raise ValueError(f"{name}: expected per-event values of shape {want}, got "
                         f"{tuple(value.shape)}")
    if value.shape[-1] == 0:
        raise ValueError(f"{name}: scores no events (shape {tuple(value.shape)}); nothing to "
                         "infer from")
    bad = non_finite_events(value)
    if bad:
        shown = ", ".join(f"{i} ({why})" for i, why in list(bad.items())[:10])
        raise ValueError(f"{name}: {len(bad)} of {value.shape[-1]} events have a non-finite "
                         f"log p: [{shown}{' ...' if len(bad) > 10 else ''}]; "
                         "on_flagged='drop' leaves out events that are non-finite at the "
                         "reference θ")
    return value
