"""The ``Process`` contract every built-in and user process follows.

A process declares its **parameters** (named, with default, allowed range and unit:
the theory parameters θ that NIS conditions on, the MEM scans and Pyro samples) and
takes its **settings** (non-differentiable choices such as cuts or lepton flavours)
as constructor arguments. Every process, built-in or user-defined, also takes the
keyword settings ``mur_factor`` and ``muf_factor`` (:data:`SCALE_FACTOR_SETTINGS`):
factors on its default renormalisation and factorisation scales μ_R and μ_F, applied
in one place, :meth:`Process.hard_scales`, which every consumer of the scales calls.
Its matrix element is plain torch and differentiable in the parameters; densities
refer to the measure documented in :mod:`forward.events`.
"""

from __future__ import annotations

import abc
import functools
import inspect
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from forward._validation import as_tensor, check_finite, check_range
from forward.events import HardEvents

__all__ = ["SCALE_FACTOR_SETTINGS", "Parameter", "Process", "check_hard_events", "scale_factor"]

#: keyword settings every process takes: factors on μ_R and μ_F (see ``Process.hard_scales``)
SCALE_FACTOR_SETTINGS = ("mur_factor", "muf_factor")

_UNSET = object()


def scale_factor(name: str, value) -> float | torch.Tensor:
    """Check a scale factor (``mur_factor``/``muf_factor``): a finite number > 0.

    Args:
        name: the setting's name, for the message.
        value: the factor on μ (not μ²): a number, or a floating tensor of shape ()
            (kept as it is, autograd graph included: a nuisance parameter of the
            likelihood, see :data:`invsim.mem.likelihood.SCALE_NUISANCES`).

    Returns:
        ``float(value)``, or the tensor.

    Raises:
        TypeError: not a real number (or a tensor of another shape or dtype).
        ValueError: not finite or <= 0.
    """
    if isinstance(value, torch.Tensor):
        if value.shape != () or not value.is_floating_point():
            raise TypeError(f"{name}: expected a number or a floating tensor of shape (), "
                            f"got a {value.dtype} tensor of shape {tuple(value.shape)}")
        if not bool(torch.isfinite(value.detach()) & (value.detach() > 0)):
            raise ValueError(f"{name}: expected a finite number > 0 (factor on the scale μ), "
                             f"got {float(value.detach())!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: expected a positive number (factor on the scale μ), "
                        f"got {type(value).__name__} {value!r}")
    v = float(value)
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name}: expected a finite number > 0 (factor on the scale μ), "
                         f"got {value!r}")
    return v


def _with_scale_factors(init):
    """Wrap a process constructor so that it also takes ``mur_factor``/``muf_factor``.

    The wrapped constructor runs first; a factor given as keyword is then set (and
    checked), one not given keeps what the constructor left (the default 1). The
    signature shown by ``inspect``/``help`` gains both as keyword-only settings.
    """

    @functools.wraps(init)
    def __init__(self, *args, mur_factor=_UNSET, muf_factor=_UNSET, **kwargs):  # noqa: N807
        init(self, *args, **kwargs)
        if mur_factor is not _UNSET:
            self.mur_factor = mur_factor
        if muf_factor is not _UNSET:
            self.muf_factor = muf_factor

    sig = inspect.signature(init)
    pars = list(sig.parameters.values())
    extra = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=1.0, annotation=float)
             for n in SCALE_FACTOR_SETTINGS]
    cut = next((i for i, p in enumerate(pars) if p.kind == inspect.Parameter.VAR_KEYWORD),
               len(pars))
    __init__.__signature__ = sig.replace(parameters=pars[:cut] + extra + pars[cut:])
    __init__._takes_scale_factors = True
    return __init__


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

    Every subclass's constructor also takes the keyword settings ``mur_factor`` and
    ``muf_factor`` (default 1; added by the base class, listed by
    :meth:`setting_names` and saved with the other settings): factors on the μ_R and
    μ_F that :meth:`scales` returns, applied by :meth:`hard_scales`. They are factors
    on μ, so the scales squared are multiplied by their squares (Pythia's
    ``SigmaProcess:renormMultFac``/``factorMultFac`` multiply Q² = μ²: ``mur_factor =
    0.5`` matches ``renormMultFac = 0.25``).
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

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None or getattr(init, "_takes_scale_factors", False):
            return
        declared = inspect.signature(init).parameters
        if any(n in declared for n in SCALE_FACTOR_SETTINGS):
            return  # the class takes (and must set) the factors itself
        cls.__init__ = _with_scale_factors(init)

    # -- scale factors ----------------------------------------------------------------
    @property
    def mur_factor(self) -> float | torch.Tensor:
        """Factor on the default renormalisation scale μ_R (a setting, default 1)."""
        return self.__dict__.get("_mur_factor", 1.0)

    @mur_factor.setter
    def mur_factor(self, value) -> None:
        self.__dict__["_mur_factor"] = scale_factor("mur_factor", value)

    @property
    def muf_factor(self) -> float | torch.Tensor:
        """Factor on the default factorisation scale μ_F (a setting, default 1)."""
        return self.__dict__.get("_muf_factor", 1.0)

    @muf_factor.setter
    def muf_factor(self, value) -> None:
        self.__dict__["_muf_factor"] = scale_factor("muf_factor", value)

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
        """Names of the constructor's keyword settings (cuts, flavour choices, ...),
        ``mur_factor`` and ``muf_factor`` included."""
        sig = inspect.signature(cls.__init__)
        names = [p for p in sig.parameters if p != "self"]
        return names + [n for n in SCALE_FACTOR_SETTINGS if n not in names]

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
        """The process's default factorisation and renormalisation scales squared.

        Consumers call :meth:`hard_scales`, which applies ``muf_factor`` and
        ``mur_factor``; a process implements only its central choice here.

        Returns:
            (μ_F², μ_R²), each shape (n,) in GeV².
        """

    def hard_scales(
        self, events: HardEvents, params: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The scales the hard process is evaluated at: :meth:`scales` times the factors.

        The one place where ``muf_factor`` and ``mur_factor`` enter: PDFs are taken at
        μ_F² = muf_factor² · μ_F,0² and α_s at μ_R² = mur_factor² · μ_R,0², with
        (μ_F,0², μ_R,0²) from :meth:`scales`.

        Args:
            events: hard events, ``momenta`` of shape (n, k, 4) in GeV.
            params: parameter tensors from :meth:`params`.

        Returns:
            (μ_F², μ_R²), each shape (n,) in GeV².
        """
        mu_f2, mu_r2 = self.scales(events, params)
        muf, mur = self.muf_factor, self.mur_factor
        # a tensor factor always multiplies: its gradient is needed even at 1
        if isinstance(muf, torch.Tensor) or muf != 1.0:
            mu_f2 = mu_f2 * muf**2
        if isinstance(mur, torch.Tensor) or mur != 1.0:
            mu_r2 = mu_r2 * mur**2
        return mu_f2, mu_r2

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


def check_hard_events(events, n_particles: int, layout: str) -> None:
    """Raise unless ``events`` are HardEvents of ``n_particles`` finite momenta.

    Args:
        events: the events a process is asked to evaluate.
        n_particles: final-state particles per event.
        layout: their order in messages, e.g. ``"(l-, l+)"``.

    Raises:
        TypeError: not HardEvents.
        ValueError: momenta not of shape (n, n_particles, 4), or NaN/inf in the
            momenta, x1 or x2 (each named).
    """
    if not isinstance(events, HardEvents):
        raise TypeError(f"events: expected HardEvents, got {type(events).__name__}")
    if events.momenta.shape[1:] != (n_particles, 4):
        raise ValueError(f"events: expected momenta of shape (n, {n_particles}, 4) as {layout}, "
                         f"(E, px, py, pz) in GeV, got {tuple(events.momenta.shape)}")
    check_finite("events.momenta", events.momenta)
    check_finite("events.x1", events.x1)
    check_finite("events.x2", events.x2)


def _finite_positive(name: str, value: float) -> float:
    """Return ``float(value)`` if it is finite and positive, else raise ``ValueError``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a finite positive number, got {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name}: expected a finite positive number, got {value!r}")
    return v
