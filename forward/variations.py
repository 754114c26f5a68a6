r"""Theory variations of a cross section: μ_R/μ_F scale factors, PDF sets and members.

Every variation is evaluated at the **same** points (and VEGAS grid) as the central
process (:func:`forward.xsec.integrate`), so the shifts σ_k − σ_0 carry small,
correlated Monte Carlo errors. A :class:`Variation` multiplies the process's own
``mur_factor``/``muf_factor`` (see :meth:`forward.processes.base.Process.hard_scales`)
and may swap the PDF (a set name, ``"NAME/MEMBER"`` or an LHAPDF id) and override
parameter values (e.g. the hard process's ``alpha_s`` together with an α_s PDF set)::

    from forward.processes import get_process
    from forward.variations import cross_section_variations, scale_variations

    dy = get_process("drell-yan", mode="gamma_z", mll_min=60, mll_max=120)
    res = cross_section_variations(dy, scale_variations(), 400_000, seed=1)
    res.envelope()            # the 7-point envelope: lowest and highest σ

The 7-point variation (:data:`SEVEN_POINT`) takes (μ_R, μ_F) factors in {½, 1, 2}²
without the two opposite corners (½, 2) and (2, ½).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from forward._validation import check_memory, make_generator, resolve_device
from forward.events import HardEvents
from forward.integrand import HadronicIntegrand, load_pdf
from forward.processes.base import scale_factor
from forward.xsec import (
    _PILOT_ABOVE,
    _PILOT_POINTS,
    BYTES_PER_POINT,
    MAX_SECONDS,
    CrossSectionResult,
    _check_time,
    integrate,
)

__all__ = [
    "SEVEN_POINT",
    "Envelope",
    "Variation",
    "VariationResult",
    "check_variations",
    "cross_section_variations",
    "event_set_weights",
    "pdf_variations",
    "scale_variation_name",
    "scale_variations",
    "variation_weights",
]

#: (mur_factor, muf_factor) of the 7-point scale variation, central first
SEVEN_POINT: tuple[tuple[float, float], ...] = (
    (1.0, 1.0), (0.5, 0.5), (0.5, 1.0), (1.0, 0.5), (1.0, 2.0), (2.0, 1.0), (2.0, 2.0),
)


def scale_variation_name(mur_factor: float, muf_factor: float) -> str:
    """The name of a scale variation, e.g. ``"mur0.5_muf1"`` (also its weight name)."""
    return f"mur{mur_factor:g}_muf{muf_factor:g}"


@dataclass(frozen=True)
class Variation:
    """One theory variation of a process.

    Attributes:
        name: identifier used in results, JSON and weight names.
        mur_factor, muf_factor: factors on the process's μ_R and μ_F (multiplying its
            own ``mur_factor``/``muf_factor``), > 0.
        pdf: PDF for this variation (set name, ``"NAME/MEMBER"``, LHAPDF id or PDF
            object); None keeps the central PDF.
        params: parameter values overriding the central ones (e.g. ``{"alpha_s": 0.130}``).
    """

    name: str
    mur_factor: float = 1.0
    muf_factor: float = 1.0
    pdf: Any = None
    params: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name: expected a non-empty str, got {self.name!r}")
        object.__setattr__(self, "mur_factor", scale_factor("mur_factor", self.mur_factor))
        object.__setattr__(self, "muf_factor", scale_factor("muf_factor", self.muf_factor))
        if not isinstance(self.params, Mapping):
            raise TypeError(f"params: expected a mapping name -> value, got "
                            f"{type(self.params).__name__}")
        object.__setattr__(self, "params", dict(self.params))

    @property
    def is_central(self) -> bool:
        """True when the variation changes nothing."""
        return (self.mur_factor == 1.0 and self.muf_factor == 1.0 and self.pdf is None
                and not self.params)

    def to_dict(self) -> dict:
        """Plain-value description (for JSON)."""
        pdf = self.pdf
        if pdf is not None and not isinstance(pdf, (str, int)):
            pdf = getattr(pdf, "set_name", None) or type(pdf).__name__
        return {"mur_factor": self.mur_factor, "muf_factor": self.muf_factor, "pdf": pdf,
                "params": {k: float(v) for k, v in self.params.items()}}


def scale_variations(
    points: Sequence[tuple[float, float]] = SEVEN_POINT,
) -> list[Variation]:
    """Scale variations named by :func:`scale_variation_name`.

    Args:
        points: (mur_factor, muf_factor) pairs; default the 7-point set.

    Raises:
        ValueError: a factor that is not finite and > 0, or repeated points.
    """
    if isinstance(points, str) or not isinstance(points, Iterable):
        raise TypeError(f"points: expected (mur_factor, muf_factor) pairs, got {points!r}")
    points = list(points)
    if not points or not all(isinstance(p, Sequence) and not isinstance(p, str)
                             and len(p) == 2 for p in points):
        raise ValueError(f"points: expected one or more (mur_factor, muf_factor) pairs, got "
                         f"{points!r}")
    for r, f in points:
        for name, v in (("mur_factor", r), ("muf_factor", f)):
            if not isinstance(v, (int, float)) or not (math.isfinite(v) and v > 0):
                raise ValueError(f"points: {name} expected a finite number > 0, got {v!r}")
    out = [Variation(scale_variation_name(float(r), float(f)), r, f) for r, f in points]
    names = [v.name for v in out]
    if len(set(names)) != len(names):
        raise ValueError(f"points: expected distinct (mur_factor, muf_factor), got {points}")
    return out


def pdf_variations(
    pdfs: Sequence, *, params: Mapping[str, float] | None = None
) -> list[Variation]:
    """One variation per PDF (set name, ``"NAME/MEMBER"`` or LHAPDF id), named by it.

    Args:
        pdfs: the PDFs, e.g. ``["NNPDF31_lo_as_0130"]`` or ``[315200]``.
        params: parameter overrides applied with every one of them.
    """
    if isinstance(pdfs, str) or not isinstance(pdfs, Iterable):
        raise TypeError(f"pdfs: expected a sequence of PDF set names or LHAPDF ids, got "
                        f"{pdfs!r}")
    pdfs = list(pdfs)
    for p in pdfs:
        if p is None or isinstance(p, (bool, float)):
            raise TypeError(f"pdfs: expected set names (str), LHAPDF ids (int) or PDF objects, "
                            f"got {p!r}")
    return [Variation(str(p), pdf=p, params=params or {}) for p in pdfs]


@dataclass(frozen=True)
class Envelope:
    """The lowest and highest cross section among a group of variations.

    Attributes:
        central: the central σ in pb.
        low, high: lowest and highest σ in pb (the central included).
        low_name, high_name: the variations giving them (``"central"`` for the central).
        low_error, high_error: Monte Carlo errors in pb of low − central and
            high − central (correlated points).
    """

    central: float
    low: float
    high: float
    low_name: str
    high_name: str
    low_error: float
    high_error: float

    def to_dict(self) -> dict:
        """Plain values, with the relative shifts ``low_rel``/``high_rel``."""
        out = dataclasses.asdict(self)
        out["low_rel"] = self.low / self.central - 1.0 if self.central else math.nan
        out["high_rel"] = self.high / self.central - 1.0 if self.central else math.nan
        return out


@dataclass(frozen=True)
class VariationResult:
    """Cross sections of a process and of its variations from common points.

    Attributes:
        central: the central :class:`~forward.xsec.CrossSectionResult`.
        results: variation name -> its result (pb).
        shift_errors: variation name -> Monte Carlo error in pb of σ_k − σ_central.
        variations: variation name -> its :class:`Variation`.
    """

    central: CrossSectionResult
    results: dict[str, CrossSectionResult]
    shift_errors: dict[str, float]
    variations: dict[str, Variation]

    def shift(self, name: str) -> tuple[float, float]:
        """(σ_name − σ_central, its Monte Carlo error), both in pb."""
        if name not in self.results:
            raise ValueError(f"name: expected one of {sorted(self.results)}, got {name!r}")
        return self.results[name].value - self.central.value, self.shift_errors[name]

    def envelope(self, names: Sequence[str] | None = None) -> Envelope:
        """Lowest and highest σ over ``names`` (default all variations) and the central."""
        names = list(self.results) if names is None else list(names)
        for n in names:
            self.shift(n)  # checks the name
        values = [("central", self.central.value, 0.0)] + [
            (n, self.results[n].value, self.shift_errors[n]) for n in names]
        lo = min(values, key=lambda t: t[1])
        hi = max(values, key=lambda t: t[1])
        return Envelope(self.central.value, lo[1], hi[1], lo[0], hi[0], lo[2], hi[2])

    def to_dict(self) -> dict:
        """Plain values: per variation its definition, σ, error and shift error (pb)."""
        return {
            name: {**self.variations[name].to_dict(), "sigma_pb": r.value,
                   "error_pb": r.error, "shift_pb": r.value - self.central.value,
                   "shift_error_pb": self.shift_errors[name]}
            for name, r in self.results.items()
        }


def _varied_integrands(process, variations, central: HadronicIntegrand, params, device):
    """name -> HadronicIntegrand of each non-trivial variation, on the central's map."""
    out = {}
    for v in variations:
        if v.is_central:
            continue
        varied = copy.copy(process)
        varied.mur_factor = process.mur_factor * v.mur_factor
        varied.muf_factor = process.muf_factor * v.muf_factor
        v_pdf = central.pdf if v.pdf is None else load_pdf(v.pdf, device=device)
        out[v.name] = HadronicIntegrand(
            varied, pdf=v_pdf, params={**dict(params or {}), **v.params},
            channel=central.map, dtype=torch.float64, device=device)
    return out


def check_variations(variations) -> list[Variation]:
    """``variations`` as a checked list: :class:`Variation` objects, distinct names.

    Args:
        variations: a sequence of :class:`Variation` objects, or None (no variations).

    Returns:
        A new list (empty for None).

    Raises:
        TypeError: not a sequence, or an element that is not a :class:`Variation`.
        ValueError: repeated names.
        PDFSetNotFoundError: a variation's PDF (name or LHAPDF id) is not installed
            (checked here, before any integrand call).
    """
    if variations is None:
        return []
    if isinstance(variations, (str, bytes, Variation, Mapping)) or \
            not hasattr(variations, "__iter__"):
        raise TypeError(f"variations: expected a sequence of Variation objects, got "
                        f"{type(variations).__name__}")
    variations = list(variations)
    for v in variations:
        if not isinstance(v, Variation):
            raise TypeError(f"variations: expected Variation objects, got {type(v).__name__}")
    names = [v.name for v in variations]
    if len(set(names)) != len(names):
        raise ValueError(f"variations: expected distinct names, got {names}")
    from forward.pdf.discovery import find_member
    from forward.pdf.factory import parse_pdf_spec

    for v in variations:
        if isinstance(v.pdf, (str, int)) and not isinstance(v.pdf, bool):
            find_member(*parse_pdf_spec(v.pdf))
    return variations


def variation_weights(
    process,
    events: HardEvents,
    variations: Sequence[Variation],
    *,
    params: Mapping[str, Any] | None = None,
    pdf=None,
    batch_size: int = 100_000,
) -> dict[str, torch.Tensor]:
    """Per-event reweighting factors of each variation: dσ_k/dμ ÷ dσ_0/dμ at the events.

    Multiplying an event's weight by its factor gives the event sample of the variation
    (the 7-point weights of an event file); the factor is 0 where dσ_0/dμ = 0.

    Args:
        process: the central process the events were generated with.
        events: hard events, momenta (n, k, 4) in GeV (float64 recommended).
        variations: :class:`Variation` objects with distinct names.
        params: the parameter values of the central sample; defaults for the rest.
        pdf: the central PDF; default the process's.
        batch_size: events evaluated at once (memory bound), >= 1.

    Returns:
        name -> factors of shape (n,), float64, on the events' device.

    Raises:
        TypeError, ValueError: as :func:`cross_section_variations`; not HardEvents; a
            bad ``batch_size``.
    """
    if not isinstance(events, HardEvents):
        raise TypeError(f"events: expected HardEvents, got {type(events).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected an int >= 1, got {batch_size!r}")
    variations = check_variations(variations)
    device = events.momenta.device
    central = HadronicIntegrand(process, pdf=pdf, params=params, dtype=torch.float64,
                                device=device)
    varied = _varied_integrands(process, variations, central, params, device)
    parts: dict[str, list[torch.Tensor]] = {v.name: [] for v in variations}
    n = len(events.momenta)
    with torch.no_grad():
        for start in range(0, n, batch_size):
            sl = slice(start, min(n, start + batch_size))
            batch = HardEvents(events.momenta[sl], events.x1[sl], events.x2[sl], events.sqrt_s)
            w0 = central.differential(batch)
            ok = w0 > 0
            safe = torch.where(ok, w0, torch.ones_like(w0))
            for v in variations:
                if v.name not in varied:
                    parts[v.name].append(ok.to(torch.float64))
                    continue
                wk = varied[v.name].differential(batch)
                parts[v.name].append(
                    torch.where(ok, wk / safe, torch.zeros_like(wk)).to(torch.float64))
    empty = torch.zeros(0, dtype=torch.float64, device=device)
    return {name: torch.cat(p) if p else empty for name, p in parts.items()}


def event_set_weights(
    process,
    events,
    variations: Sequence[Variation],
    *,
    batch_size: int = 100_000,
) -> dict[str, torch.Tensor]:
    """Named weights of an event set's variations, in pb: ``weights * factor``.

    The factors come from :func:`variation_weights` at the set's own hard events, with
    its parameters (``events.parameters``) and the process's PDF; the result is what
    :attr:`forward.eventset.EventSet.weights_named` holds (the sum of each is the
    variation's σ, within the Monte Carlo error of the sample).

    Args:
        process: the process object the events were generated with (its settings,
            ``mur_factor``/``muf_factor`` and ``pdf`` included).
        events: a :class:`~forward.eventset.EventSet`.
        variations: :class:`Variation` objects with distinct names.
        batch_size: events evaluated at once, >= 1.

    Returns:
        name -> weights of shape (n,) in pb, in the dtype and on the device of
        ``events.weights``, in the order of ``variations``.

    Raises:
        TypeError, ValueError: as :func:`variation_weights`; not an EventSet.
    """
    from forward.eventset import EventSet

    if not isinstance(events, EventSet):
        raise TypeError(f"events: expected an EventSet, got {type(events).__name__}")
    hard = events.hard_events
    hard = HardEvents(hard.momenta.to(torch.float64), hard.x1.to(torch.float64),
                      hard.x2.to(torch.float64), hard.sqrt_s)
    factors = variation_weights(process, hard, variations, params=events.parameters,
                                batch_size=batch_size)
    w = events.weights
    return {name: (w.to(torch.float64) * f).to(w.dtype) for name, f in factors.items()}


def cross_section_variations(
    process,
    variations: Sequence[Variation],
    n: int = 1_000_000,
    *,
    params: Mapping[str, Any] | None = None,
    channel=0,
    method: str = "vegas",
    seed: int | None = None,
    generator: torch.Generator | None = None,
    batch_size: int = 200_000,
    pdf=None,
    device: torch.device | str | None = None,
) -> VariationResult:
    """σ of a process and of its variations at common points, in pb.

    The central process drives the points (and the VEGAS grid), exactly as
    :func:`forward.xsec.cross_section` with the same arguments; each variation is
    evaluated at the same points on the same phase-space map.

    Args:
        process: the central :class:`~forward.processes.base.Process`.
        variations: :class:`Variation` objects with distinct names.
        n, params, channel, method, seed, generator, batch_size, pdf, device: as for
            :func:`forward.xsec.cross_section` (``pdf`` is the central PDF).

    Returns:
        :class:`VariationResult`.

    Raises:
        ValueError: bad arguments (as ``cross_section``), repeated variation names,
            unknown parameter names in a variation.
        TypeError: a variation that is not a :class:`Variation`.
        PDFSetNotFoundError: a variation's PDF is not installed.
    """
    for name, v in (("n", n), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 2:
            raise ValueError(f"{name}: expected an int >= 2, got {v!r}")
    variations = check_variations(variations)
    if not variations:
        raise ValueError("variations: expected at least one Variation, got none")
    device = resolve_device(device)
    check_memory("batch_size", min(batch_size, n), BYTES_PER_POINT * (1 + len(variations)),
                 device=device, what="points per batch")
    gen = make_generator(seed, generator, device)
    central = HadronicIntegrand(process, pdf=pdf, params=params, channel=channel,
                                dtype=torch.float64, device=device)
    if n > _PILOT_ABOVE:  # refuse a run predicted to take longer than MAX_SECONDS
        _check_time(central, n, min(batch_size, _PILOT_POINTS), MAX_SECONDS, device)
    varied = _varied_integrands(process, variations, central, params, device)
    integrands = [central, *varied.values()]
    index = {name: i for i, name in enumerate(varied, start=1)}
    results, shift_errors = integrate(integrands, n, method=method, generator=gen,
                                      batch_size=batch_size, device=device)
    return VariationResult(
        central=results[0],
        results={v.name: results[index.get(v.name, 0)] for v in variations},
        shift_errors={v.name: shift_errors[index.get(v.name, 0)] for v in variations},
        variations={v.name: v for v in variations},
    )
