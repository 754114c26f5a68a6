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
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

__all__ = [
    "ON_FLAGGED_CHOICES",
    "FlagCounter",
    "FlagReport",
    "FlaggedEventsError",
    "FlaggedEventsWarning",
    "check_on_flagged",
    "handle_flags",
]

#: accepted values of ``on_flagged``; ``"raise"`` is a synonym of ``"error"``
ON_FLAGGED_CHOICES = ("error", "warn", "ignore", "raise")
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
        raise ValueError(f"on_flagged: expected one of 'error', 'warn', 'ignore' "
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
