"""Events a likelihood flags as unreliable: counting them, saying why, and acting on them.

A likelihood may report, per event, that its estimate of log p(x_i | θ) should not be
trusted (the ML-MEM's importance sampling: non-finite value, MC error, effective sample
size, Pareto k̂; see :func:`invsim.mem.estimator.flag_events`). It does so through
``likelihood.evaluate(theta)``, whose result has

* ``flagged``: bool tensor of the shape of ``log_p``, (n_events,) or (b, n_events);
* optionally ``flag_reasons``: criterion (a short text such as ``"ESS < 20"``) -> bool
  tensor of the same shape, the events each criterion flags.

:class:`FlagCounter` accumulates those flags over θ points (an event counts once, however
many θ points flag it); :class:`FlagReport` is its JSON-ready summary with a sentence
for users; :func:`handle_flags` warns (:class:`FlaggedEventsWarning`), raises
(:class:`FlaggedEventsError`) or stays silent, following ``on_flagged``.

Events whose log p is not finite (NaN, or -inf: zero likelihood, e.g. a lepton below the
transfer's cut) cannot enter a sum over events at all. :func:`drop_non_finite` finds them
by index at a reference θ and, with ``on_flagged="drop"``, returns the likelihood of the
other events (:class:`EventSubset`, the dropped indices and reasons in ``dropped``);
with any other choice it raises :class:`FlaggedEventsError` naming them. Either way
they never reach the diagnostics (Pareto k̂, ESS) of the other events.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

__all__ = [
    "ON_FLAGGED_CHOICES",
    "EventSubset",
    "FlagCounter",
    "FlagReport",
    "FlaggedEventsError",
    "FlaggedEventsWarning",
    "check_event_count",
    "check_on_flagged",
    "drop_non_finite",
    "handle_flags",
    "non_finite_events",
    "split_non_finite",
]

#: accepted values of ``on_flagged``; ``"raise"`` is a synonym of ``"error"``; ``"drop"``
#: warns like ``"warn"`` and also leaves out events whose log p is NaN or -inf
ON_FLAGGED_CHOICES = ("error", "warn", "ignore", "drop", "raise")
#: criterion name used when a likelihood reports flags without reasons
UNSPECIFIED = "flagged by the likelihood"


class FlaggedEventsWarning(UserWarning):
    """Some events have unreliable likelihood estimates; the result may be unreliable."""


class FlaggedEventsError(ValueError):
    """Raised with ``on_flagged="error"`` when the likelihood flags events."""


def check_on_flagged(value) -> str:
    """Validate ``on_flagged`` and return it normalised (``"raise"`` -> ``"error"``).

    Raises:
        ValueError: not one of ``"error"``, ``"warn"``, ``"ignore"`` (or ``"raise"``).
    """
    if not isinstance(value, str) or value not in ON_FLAGGED_CHOICES:
        raise ValueError(f"on_flagged: expected one of 'error', 'warn', 'ignore', 'drop' "
                         f"('raise' = 'error'), got {value!r}")
    return "error" if value == "raise" else value


@dataclass(frozen=True)
class FlagReport:
    """How many events a likelihood flagged, and by which criterion.

    Attributes:
        n_events: number of scored events.
        n_flagged: events flagged at one or more of the evaluated θ points.
        reasons: criterion -> number of events it flagged (an event flagged by two
            criteria counts under both, so the counts may sum to more than n_flagged).
        where: what was evaluated, for the message (e.g. ``"at 41 grid points"``).
        affects: what may be unreliable, for the message (``"the interval"``,
            ``"the posterior"``).
    """

    n_events: int
    n_flagged: int
    reasons: dict[str, int] = field(default_factory=dict)
    where: str = ""
    affects: str = "the interval"

    @property
    def reliable(self) -> bool:
        """True when no event is flagged."""
        return self.n_flagged == 0

    def message(self) -> str:
        """One sentence for users; empty when nothing is flagged.

        Example: ``"60 of 60 events flagged at 41 grid points (MC error > 0.1: 60,
        ESS < 20: 58): the interval may be unreliable"``.
        """
        if self.reliable:
            return ""
        why = ", ".join(f"{k}: {v}" for k, v in self.reasons.items())
        where = f" {self.where}" if self.where else ""
        return (f"{self.n_flagged} of {self.n_events} events flagged{where}"
                f"{f' ({why})' if why else ''}: {self.affects} may be unreliable")

    def to_dict(self) -> dict:
        """JSON-ready: ``n_flagged``, ``flag_reasons``, ``reliable``, ``flag_message``."""
        return {"n_flagged": self.n_flagged, "flag_reasons": dict(self.reasons),
                "reliable": self.reliable, "flag_message": self.message()}

    def to_attrs(self) -> dict:
        """netCDF-safe attributes: numbers and text only (bool as 0/1, reasons as JSON)."""
        return {"n_flagged": int(self.n_flagged), "flag_reasons": json.dumps(self.reasons),
                "reliable": int(self.reliable), "flag_message": self.message()}


class FlagCounter:
    """Accumulates per-event flags over θ points into a :class:`FlagReport`.

    Args:
        n_events: number of events the likelihood scores.
    """

    def __init__(self, n_events: int) -> None:
        self.n_events = int(n_events)
        self.seen = False  # whether the likelihood reported flags at all
        self._any: torch.Tensor | None = None
        self._reasons: dict[str, torch.Tensor] = {}

    @staticmethod
    def _events_mask(value, shape: torch.Size, name: str) -> torch.Tensor:
        t = torch.as_tensor(value).detach()
        if t.shape != shape and t.numel() == shape.numel():
            t = t.reshape(shape)  # e.g. (n_events,) for a batch of one point
        if t.shape != shape:
            raise ValueError(f"{name}: expected shape {tuple(shape)} like log_p, got "
                             f"{tuple(t.shape)}")
        t = t.to(torch.bool).cpu()
        return t.reshape(-1, shape[-1]).any(0) if t.ndim > 1 else t

    def add(self, result, shape: torch.Size) -> torch.Tensor | None:
        """Record the flags of one ``evaluate`` result.

        Args:
            result: object with ``flagged`` (and optionally ``flag_reasons``), or without
                them (then nothing is recorded).
            shape: shape of its ``log_p``, (n_events,) or (b, n_events).

        Returns:
            The number of flagged events per θ point, shape () or (b,) int64, or None when
            ``result`` has no ``flagged``.

        Raises:
            ValueError: flags of another shape than ``log_p``.
        """
        flagged = getattr(result, "flagged", None)
        if flagged is None:
            return None
        self.seen = True
        name = "likelihood.evaluate(theta).flagged"
        mask = self._events_mask(flagged, shape, name)
        f = torch.as_tensor(flagged).detach().reshape(shape)
        self._any = mask if self._any is None else self._any | mask
        reasons = getattr(result, "flag_reasons", None)
        if isinstance(reasons, Mapping) and reasons:
            for k, v in reasons.items():
                m = self._events_mask(v, shape, f"likelihood.evaluate(theta).flag_reasons[{k!r}]")
                prev = self._reasons.get(str(k))
                self._reasons[str(k)] = m if prev is None else prev | m
        else:
            prev = self._reasons.get(UNSPECIFIED)
            self._reasons[UNSPECIFIED] = mask if prev is None else prev | mask
        return f.to(torch.int64).sum(-1)

    def merge(self, other: FlagCounter) -> None:
        """Add the flags another counter recorded (e.g. on a worker) to this one.

        Raises:
            ValueError: the counters score different numbers of events.
        """
        if other.n_events != self.n_events:
            raise ValueError(f"other: expected a counter of {self.n_events} events, got "
                             f"{other.n_events}")
        if not other.seen:
            return
        self.seen = True
        if other._any is not None:
            self._any = other._any if self._any is None else self._any | other._any
        for k, m in other._reasons.items():
            prev = self._reasons.get(k)
            self._reasons[k] = m if prev is None else prev | m

    def report(self, where: str = "", affects: str = "the interval") -> FlagReport | None:
        """The :class:`FlagReport` so far, or None if the likelihood reported no flags."""
        if not self.seen:
            return None
        n = 0 if self._any is None else int(self._any.sum())
        reasons = {k: int(v.sum()) for k, v in self._reasons.items() if bool(v.any())}
        return FlagReport(self.n_events, n, reasons, where, affects)


def handle_flags(report: FlagReport | None, on_flagged: str, *, stacklevel: int = 2) -> None:
    """Warn, raise or do nothing about flagged events, following ``on_flagged``.

    Args:
        report: the flags (None or no flagged event: nothing happens).
        on_flagged: ``"error"`` (or ``"raise"``), ``"warn"`` or ``"ignore"``.
        stacklevel: passed to :func:`warnings.warn`.

    Raises:
        FlaggedEventsError: ``on_flagged="error"`` and events are flagged.
    """
    mode = check_on_flagged(on_flagged)
    if report is None or report.reliable or mode == "ignore":
        return
    text = report.message()
    if mode == "error":
        raise FlaggedEventsError(f"on_flagged='error': {text}")
    warnings.warn(text, FlaggedEventsWarning, stacklevel=stacklevel + 1)


def non_finite_events(log_p: torch.Tensor) -> dict[int, str]:
    """Events whose log p is NaN or -inf (or +inf) at any θ point, with the reason.

    Args:
        log_p: per-event values, shape (n_events,) or (b, n_events).

    Returns:
        event index -> ``"log p = NaN"``, ``"log p = -inf (zero likelihood)"`` or
        ``"log p = +inf"``, in index order (empty when all are finite).
    """
    lp = torch.as_tensor(log_p).detach().reshape(-1, log_p.shape[-1]).cpu()
    out = {}
    for reason, mask in (("log p = NaN", torch.isnan(lp).any(0)),
                         ("log p = -inf (zero likelihood)", (lp == -float("inf")).any(0)),
                         ("log p = +inf", (lp == float("inf")).any(0))):
        for i in mask.nonzero().flatten().tolist():
            out.setdefault(int(i), reason)
    return dict(sorted(out.items()))


def _describe(events: dict[int, str], n_events: int, limit: int = 10) -> str:
    items = list(events.items())
    shown = ", ".join(f"{i} ({why})" for i, why in items[:limit])
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return f"{len(items)} of {n_events} events [{shown}{more}]"


class EventSubset:
    """The likelihood of a subset of the events of another likelihood.

    Every per-event output (``log_prob``, and ``log_p``/``error``/``ess``/``pareto_k``/
    ``flagged``/``flag_reasons`` of ``evaluate``) is restricted to the kept events; the
    other methods and attributes are the wrapped likelihood's.

    Args:
        likelihood: an :class:`~invsim.infer.EventLikelihood`.
        keep: indices of the kept events, increasing.
        dropped: index -> reason of the events left out.
        n_events: number of events of the wrapped likelihood.
    """

    def __init__(self, likelihood, keep: torch.Tensor, dropped: dict[int, str],
                 n_events: int) -> None:
        self.likelihood = likelihood
        self.keep = keep
        self.dropped = dict(dropped)
        self.n_events = int(keep.numel())
        self.n_events_total = int(n_events)

    def __getattr__(self, name):
        return getattr(self.likelihood, name)

    def _cut(self, t, name: str = ""):
        if (name.startswith("log_sigma_fid") or not isinstance(t, torch.Tensor) or t.ndim == 0
                or t.shape[-1] != self.n_events_total):
            return t
        return t.index_select(-1, self.keep.to(t.device))

    def log_prob(self, theta) -> torch.Tensor:
        """log p of the kept events, shape (n_kept,) or (b, n_kept)."""
        return self._cut(self.likelihood.log_prob(theta))

    def log_prob_and_log_sigma_fid(self, theta):
        lp, ls = self.likelihood.log_prob_and_log_sigma_fid(theta)
        return self._cut(lp), ls

    def evaluate(self, theta):
        """The wrapped ``evaluate`` with its per-event fields restricted to the kept events."""
        return self.cut_result(self.likelihood.evaluate(theta))

    def cut_result(self, res):
        """An ``evaluate`` result of the wrapped likelihood, restricted to the kept events."""
        fields = {}
        for k, v in vars(res).items() if hasattr(res, "__dict__") else ():
            fields[k] = ({r: self._cut(m) for r, m in v.items()} if isinstance(v, Mapping)
                         else self._cut(v, k))
        if not fields:  # slots or class attributes: copy the known fields
            for k in ("log_p", "error", "ess", "pareto_k", "flagged", "flag_reasons",
                      "log_sigma_fid", "log_sigma_fid_error"):
                if hasattr(res, k):
                    v = getattr(res, k)
                    fields[k] = ({r: self._cut(m) for r, m in v.items()}
                                 if isinstance(v, Mapping) else self._cut(v, k))
        return _Result(fields)


class _Result:
    def __init__(self, fields: dict) -> None:
        self.__dict__.update(fields)


def split_non_finite(log_p: torch.Tensor, on_flagged: str, *, where: str = "at the reference θ"
                     ) -> tuple[torch.Tensor | None, dict[int, str]]:
    """The events to keep given per-event values with NaN or -inf entries, or an error.

    Args:
        log_p: per-event values, shape (n_events,) or (b, n_events); an event is
            non-finite when any of its b values is.
        on_flagged: ``"drop"`` keeps the finite events; any other choice raises.
        where: where ``log_p`` was evaluated, for the messages.

    Returns:
        ``(keep, dropped)``: None and ``{}`` when every event is finite, else the
        indices of the finite events (int64, increasing) and index -> reason.

    Raises:
        FlaggedEventsError: non-finite events and ``on_flagged`` other than ``"drop"``,
            or no finite event left; the message lists the indices and reasons.
    """
    mode = check_on_flagged(on_flagged)
    n = int(log_p.shape[-1])
    bad = non_finite_events(log_p)
    if not bad:
        return None, {}
    text = _describe(bad, n)
    if mode != "drop":
        raise FlaggedEventsError(f"{text} have a non-finite log p {where}; pass "
                                 "on_flagged='drop' (--on-flagged drop) to leave them out")
    if len(bad) == n:
        raise FlaggedEventsError(f"{text} have a non-finite log p {where}: no event left")
    warnings.warn(f"on_flagged='drop': left out {text}, non-finite {where}",
                  FlaggedEventsWarning, stacklevel=3)
    return torch.tensor([i for i in range(n) if i not in bad], dtype=torch.long), bad


def drop_non_finite(likelihood, theta, on_flagged: str, *, n_events: int | None = None):
    """Find the events with NaN or -inf log p at ``theta``; drop them or fail.

    Args:
        likelihood: an :class:`~invsim.infer.EventLikelihood`.
        theta: a reference θ (name -> tensor of shape ()), e.g. the priors' reference.
        on_flagged: ``"drop"`` leaves those events out (returns an :class:`EventSubset`);
            any other choice raises for them (:func:`split_non_finite`).
        n_events: the number of events the likelihood must score; None accepts any
            number >= 1.

    Returns:
        ``(likelihood, dropped)``: the likelihood itself when every event is finite
        (``dropped`` empty), else the :class:`EventSubset` of the finite events and
        their index -> reason.

    Raises:
        FlaggedEventsError: see :func:`split_non_finite`.
        ValueError: a log p of another length than ``n_events``, or no events.
    """
    check_on_flagged(on_flagged)
    with torch.no_grad():
        lp = likelihood.log_prob(theta)
    if not isinstance(lp, torch.Tensor) or lp.ndim != 1:
        got = tuple(lp.shape) if isinstance(lp, torch.Tensor) else type(lp).__name__
        raise ValueError(f"likelihood.log_prob(theta): expected per-event values of shape "
                         f"(n_events,), got {got}")
    check_event_count(lp, n_events)
    keep, bad = split_non_finite(lp, on_flagged)
    if keep is None:
        return likelihood, {}
    return EventSubset(likelihood, keep, bad, int(lp.shape[-1])), bad


def check_event_count(log_p: torch.Tensor, n_events: int | None) -> None:
    """Raise ``ValueError`` unless ``log_p`` has ``n_events`` values per θ point (>= 1)."""
    n = int(log_p.shape[-1])
    if n_events is not None and n != n_events:
        raise ValueError(f"likelihood.log_prob(theta): expected {n_events} values (one per "
                         f"event), got {n}")
    if n == 0:
        raise ValueError("likelihood: scores no events; nothing to infer from")
