"""The ``Process`` contract every built-in and user process follows.

A process declares its **parameters** (named, with default, allowed range and unit:
the theory parameters θ that NIS conditions on, the MEM scans and Pyro samples) and
takes its **settings** (non-differentiable choices such as cuts or lepton flavours)
as constructor arguments. Its matrix element is plain torch and differentiable in
the parameters; densities refer to the measure documented in :mod:`forward.events`.
"""

from __future__ import annotations

import abc
import inspect
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from forward._validation import as_tensor, check_range
from forward.events import HardEvents

__all__ = ["Parameter", "Process"]


@dataclass(frozen=True)
class Parameter:
    """A named theory parameter of a process.

    Attributes:
        name: identifier used everywhere downstream (NIS conditioning, MEM, Pyro, ArviZ).
        default: value used when none is given.
        low, high: allowed range (inclusive); priors default to it.
        unit: unit as text, e.g. ``"GeV"``; empty for dimensionless parameters.
        description: one line for help texts and plots.
    """

    name: str
    default: float
    low: float
    high: float
    unit: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"name: expected a Python identifier, got {self.name!r}")
        if not (self.low <= self.default <= self.high):
            raise ValueError(
                f"Parameter {self.name!r}: default {self.default} is outside "
                f"[{self.low}, {self.high}]"
            )


class Process(abc.ABC):
    """Base class of hadron-collider processes p p -> final state.

    Subclasses set ``name``, ``parameters``, ``final_state``, ``flavour_channels`` and
    ``sqrt_s`` and implement :meth:`matrix_element`, :meth:`phase_space` and
    :meth:`scales`; :meth:`cuts` and :meth:`observables` have generic defaults.
    A subclass is found by name (``get_process``, the CLI, saved files) once it is
    registered with :func:`forward.processes.register_process`.
    """

    #: registry name, e.g. ``"drell-yan"``; set by :func:`forward.processes.register_process`
    #: when a registered class does not declare it
    name: ClassVar[str] = ""
    #: hadronic centre-of-mass energy in GeV
    sqrt_s: float
    #: theory parameters by name
    parameters: dict[str, Parameter]
    #: PDG ids of the final-state particles, in the order of ``HardEvents.momenta``
    final_state: tuple[int, ...]
    #: (pid of parton from beam 1, pid of parton from beam 2), one per ME column
    flavour_channels: tuple[tuple[int, int], ...]

    # -- parameters -------------------------------------------------------------------
    def params(
        self,
        values: Mapping[str, Any] | None = None,
        *,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> dict[str, torch.Tensor]:
        """Complete parameter values: defaults for those not given, checked against ranges.

        Args:
            values: parameter name -> value, a number or a tensor of shape () or (n,)
                (a batch of parameter points, one per event). Tensors keep their
                autograd graph, so log-likelihoods stay differentiable in them.
            dtype, device: used for defaults and for numbers given as plain floats.

        Returns:
            Every parameter of the process by name, as tensors.

        Raises:
            ValueError: unknown names (the message lists the known ones) or values
                outside a parameter's allowed range.
        """
        values = dict(values or {})
        unknown = sorted(set(values) - set(self.parameters))
        if unknown:
            raise ValueError(
                f"unknown parameter(s) {unknown} for process {self.name!r}; "
                f"known: {sorted(self.parameters)}"
            )
        out = {}
        for name, par in self.parameters.items():
            if name in values:
                given = values[name]
                # plain numbers take ``dtype``; tensors keep theirs (and their graph)
                v = as_tensor(name, given, dtype=None if isinstance(given, torch.Tensor)
                              else dtype, device=device)
                if not v.is_floating_point():
                    v = v.to(dtype)
                check_range(name, v.detach(), par.low, par.high)
            else:
                v = torch.tensor(par.default, dtype=dtype, device=device)
            out[name] = v
        return out

    @classmethod
    def setting_names(cls) -> list[str]:
        """Names of the constructor's keyword settings (cuts, flavour choices, ...)."""
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    # -- physics ----------------------------------------------------------------------
    @abc.abstractmethod
    def matrix_element(
        self, events: HardEvents, params: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        """Squared matrix element per flavour channel.

        Args:
            events: hard events, ``momenta`` of shape (n, k, 4) in GeV.
            params: parameter tensors from :meth:`params`, each of shape () or (n,).

        Returns:
            |M|², averaged over initial spins and colours and summed over final ones,
            shape (n, len(flavour_channels)), dimensionless for 2 -> 2 (GeV^(4-2k) in
            general).
        """

    def weighted_matrix_element(self, events: HardEvents, weights: torch.Tensor):
        """Σ_c w_c |M|²_c at fixed events as a function of the parameters.

        For many parameter points at the same events (likelihood scans, NUTS), a
        process may precompute everything that does not depend on the parameters.
        The default precomputes nothing.

        Args:
            events: hard events, ``momenta`` of shape (n, k, 4) in GeV.
            weights: per-channel weights, shape (n, len(flavour_channels)), fixed.

        Returns:
            A function ``params -> (n,)`` (parameter tensors of shape ()) equal to
            ``(weights * matrix_element(events, params)).sum(-1)``, differentiable in
            the parameters.
        """
        return lambda params: (weights * self.matrix_element(events, params)).sum(-1)

    @abc.abstractmethod
    def phase_space(self, params: Mapping[str, torch.Tensor] | None = None) -> list:
        """Phase-space channels: maps from the unit hypercube to hard events.

        Returns:
            A list of maps, each with ``dim``, ``forward(r) -> (HardEvents, log_jac)``
            and ``inverse(events) -> (r, log_jac)``; the first is the default channel.
        """

    @abc.abstractmethod
    def scales(
        self, events: HardEvents, params: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Factorisation and renormalisation scales squared, each shape (n,) in GeV²."""

    def cuts(self, events: HardEvents) -> torch.Tensor:
        """Fiducial cuts: boolean mask of shape (n,); all events pass by default."""
        return torch.ones(len(events), dtype=torch.bool, device=events.momenta.device)

    def observables(self, events: HardEvents) -> dict[str, torch.Tensor]:
        """Standard observables by name, each shape (n,)."""
        return {}

    def sample_final_state(
        self, n: int, *, generator: torch.Generator | None = None, device=None
    ) -> torch.Tensor:
        """PDG ids of the final state per event, for processes that sum over flavours.

        ``final_state`` names one representative flavour assignment; a process whose
        |M|² sums several (e.g. Drell–Yan with e⁺e⁻ and μ⁺μ⁻) overrides this to draw
        each event's flavours with their share of the cross section.

        Args:
            n: number of events.
            generator: torch generator for the draw (unused by the default).
            device: device of the result.

        Returns:
            Integer tensor of shape (n, len(final_state)).
        """
        return torch.tensor(self.final_state, device=device).expand(n, -1).clone()

    def __repr__(self) -> str:
        pars = ", ".join(f"{p.name}={p.default:g}" for p in self.parameters.values())
        return f"{type(self).__name__}(sqrt_s={self.sqrt_s:g}; {pars})"


def _finite_positive(name: str, value: float) -> float:
    """Return ``float(value)`` if it is finite and positive, else raise ``ValueError``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a finite positive number, got {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name}: expected a finite positive number, got {value!r}")
    return v
