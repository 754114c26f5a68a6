"""``EventSet``: hard events with weights, optional reconstructed events and provenance.

The container that :mod:`forward.io` writes to and reads from HDF5, LHE and ROOT. It
pairs each hard event (momenta, x1, x2, PDG ids, incoming parton flavours) with its
reconstructed event (``reco.hard_index`` points into the hard events) and keeps what
is needed to reproduce the set: process name, parameters, settings, seed, σ ± error.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from forward._validation import as_tensor, check_finite, check_floating, check_range
from forward.detector.objects import ParticleObjects, RecoEvents
from forward.events import HardEvents

__all__ = ["FORMAT_VERSION", "EventSet", "sample_flavours"]

#: version of the on-disk event-set layout written by forward.io (HDF5 attribute
#: ``format_version``); readers refuse files with a newer version
FORMAT_VERSION = 1


def _json_ready(name: str, value: dict) -> dict:
    if not isinstance(value, dict):
        raise TypeError(f"{name}: expected a dict, got {type(value).__name__}")
    try:
        json.dumps(value, allow_nan=True)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name}: expected JSON-serialisable values ({err})") from None
    return value


def _named_weights(value, n: int) -> dict[str, torch.Tensor]:
    """Checked ``weights_named``: non-empty str names -> finite floating (n,) tensors."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(f"weights_named: expected a dict name -> tensor of shape ({n},), got "
                        f"{type(value).__name__}")
    out = {}
    for name, w in value.items():
        if not isinstance(name, str) or not name or name != name.strip():
            raise ValueError(f"weights_named: expected non-empty names without surrounding "
                             f"spaces, got {name!r}")
        where = f"weights_named[{name!r}]"
        if not isinstance(w, torch.Tensor):
            raise TypeError(f"{where}: expected a tensor of shape ({n},), got "
                            f"{type(w).__name__}")
        check_floating(where, w)
        if w.shape != (n,):
            raise ValueError(f"{where}: expected shape ({n},), got {tuple(w.shape)}")
        check_finite(where, w)
        out[name] = w
    return out


@dataclass
class EventSet:
    """Hard events, weights, optional reco events and provenance.

    Attributes:
        process: process name, e.g. ``"drell-yan"``.
        momenta: final-state momenta, shape (n, k, 4) as (E, px, py, pz) in GeV, lab frame.
        x1, x2: momentum fractions of the incoming partons, shape (n,).
        pids: PDG ids of the final state, shape (k,) or (n, k) int64.
        sqrt_s: hadronic centre-of-mass energy in GeV.
        weights: event weights in pb, shape (n,) (ones for unweighted events).
        incoming_pids: PDG ids of the partons from beam 1 and 2, shape (n, 2) int64, or
            None (needed for LHE and the shower).
        reco: reconstructed events (``reco.hard_index`` indexes these hard events) or None.
        parameters: process parameters by name (numbers).
        settings: process settings (JSON-serialisable).
        cross_section, cross_section_error: σ and its Monte Carlo error in pb, or None.
        seed: seed the set was generated with, or None.
        metadata: free-form JSON-serialisable provenance (detector card, versions, ...).
        weights_named: named alternative weights in pb, name -> shape (n,) floating
            tensor, in order (e.g. the 7-point μ_R/μ_F variation
            ``"mur0.5_muf1"``, PDF variations; see :mod:`forward.variations`): each is
            the event's weight in the sample of that variation, ``weights * w_var /
            w_central``, so its sum is the variation's σ. Empty when none.
        process_ids: per-event process id (LHE's IDPRUP, e.g. the subprocesses of a
            merged sample), shape (n,) int64, or None (one process).
        format_version: on-disk layout version, :data:`FORMAT_VERSION` for new sets.
    """

    process: str
    momenta: torch.Tensor
    x1: torch.Tensor
    x2: torch.Tensor
    pids: torch.Tensor
    sqrt_s: float
    weights: torch.Tensor | None = None
    incoming_pids: torch.Tensor | None = None
    reco: RecoEvents | None = None
    parameters: dict[str, float] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    cross_section: float | None = None
    cross_section_error: float | None = None
    seed: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    weights_named: dict[str, torch.Tensor] = field(default_factory=dict)
    process_ids: torch.Tensor | None = None
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if not isinstance(self.process, str):
            raise TypeError(f"process: expected a string, got {type(self.process).__name__}")
        HardEvents(self.momenta, self.x1, self.x2, self.sqrt_s)  # shape/type checks
        check_finite("momenta", self.momenta)
        for name in ("x1", "x2"):  # NaN fails too
            check_range(name, getattr(self, name), 0.0, 1.0, low_open=True)
        n, k = self.momenta.shape[:2]
        dev = self.momenta.device
        raw = self.pids if isinstance(self.pids, torch.Tensor) else torch.as_tensor(self.pids)
        if raw.is_floating_point() or raw.is_complex() or raw.dtype == torch.bool:
            raise TypeError(f"pids: expected integer PDG ids, got {raw.dtype} {raw.tolist()[:4]}")
        pids = as_tensor("pids", self.pids, dtype=torch.int64, device=dev)
        if pids.is_floating_point() or pids.shape not in ((k,), (n, k)):
            raise ValueError(
                f"pids: expected integer ids of shape ({k},) or ({n}, {k}), got {pids.dtype} "
                f"{tuple(pids.shape)}"
            )
        self.pids = pids
        if self.weights is None:
            self.weights = torch.ones(n, dtype=self.momenta.dtype, device=dev)
        check_floating("weights", self.weights)
        if self.weights.shape != (n,):
            raise ValueError(f"weights: expected shape ({n},), got {tuple(self.weights.shape)}")
        check_finite("weights", self.weights)
        self.weights_named = _named_weights(self.weights_named, n)
        if self.incoming_pids is not None:
            inc = self.incoming_pids
            if not isinstance(inc, torch.Tensor) or inc.shape != (n, 2) or inc.is_floating_point():
                got = tuple(inc.shape) if isinstance(inc, torch.Tensor) else type(inc).__name__
                raise ValueError(
                    f"incoming_pids: expected an integer tensor of shape ({n}, 2), got {got}"
                )
        if self.process_ids is not None:
            ids = self.process_ids
            if not isinstance(ids, torch.Tensor) or ids.shape != (n,) or ids.is_floating_point() \
                    or ids.dtype == torch.bool:
                got = f"{ids.dtype} {tuple(ids.shape)}" if isinstance(ids, torch.Tensor) else \
                    type(ids).__name__
                raise ValueError(f"process_ids: expected an integer tensor of shape ({n},), "
                                 f"got {got}")
        if self.reco is not None:
            if not isinstance(self.reco, RecoEvents):
                raise TypeError(f"reco: expected RecoEvents, got {type(self.reco).__name__}")
            if len(self.reco) and (
                int(self.reco.hard_index.min()) < 0 or int(self.reco.hard_index.max()) >= n
            ):
                raise ValueError(f"reco.hard_index: expected indices in [0, {n}), got outside")
        self.parameters = _json_ready("parameters", self.parameters)
        self.settings = _json_ready("settings", self.settings)
        self.metadata = _json_ready("metadata", self.metadata)
        for name in ("cross_section", "cross_section_error"):
            v = getattr(self, name)
            if v is not None and not math.isfinite(float(v)):
                raise ValueError(f"{name}: expected a finite number in pb or None, got {v!r}")
        bad_seed = isinstance(self.seed, bool) or not isinstance(self.seed, int)
        if self.seed is not None and bad_seed:
            raise TypeError(f"seed: expected an int or None, got {self.seed!r}")
        if isinstance(self.format_version, bool) or not isinstance(self.format_version, int):
            raise TypeError(f"format_version: expected an int, got {self.format_version!r}")

    def __len__(self) -> int:
        return self.momenta.shape[0]

    @property
    def hard_events(self) -> HardEvents:
        """The hard events as :class:`~forward.events.HardEvents`."""
        return HardEvents(self.momenta, self.x1, self.x2, self.sqrt_s)

    def objects(self) -> ParticleObjects:
        """Particle-level objects made from the hard final state (input of the detector)."""
        return ParticleObjects.from_hard(self.hard_events, self.pids)

    @property
    def pids_per_event(self) -> torch.Tensor:
        """Final-state PDG ids broadcast to shape (n, k)."""
        return self.pids.expand(len(self), self.momenta.shape[1])

    def to_awkward(self):
        """The hard events as an awkward array of records with ``vector`` behaviours.

        One record per event with the fields ``particles`` (k ``Momentum4D`` records
        ``E, px, py, pz`` in GeV with ``pid``, so ``.pt``, ``.eta``, ``.mass`` and sums
        work), ``x1``, ``x2``, ``weight`` (pb), ``weights_named`` (a record of the named
        weights, when any), ``incoming_pids`` (2 ids, when known) and ``process_id``
        (when known). Reconstructed events are not included (they are indexed by
        ``reco.hard_index``). Values are CPU copies with the tensors' dtypes.

        Returns:
            ``awkward.Array`` of length n.

        Raises:
            ImportError: awkward or vector is missing (the message has the pip command).
        """
        try:
            import awkward as ak
            import vector
        except ImportError as err:
            raise ImportError(
                "EventSet.to_awkward needs awkward and vector: pip install awkward vector "
                "(both come with the io extra, pip install 'invsim[io]')") from err
        vector.register_awkward()
        p = self.momenta.detach().cpu().numpy()
        particles = ak.zip({"E": p[..., 0], "px": p[..., 1], "py": p[..., 2], "pz": p[..., 3],
                            "pid": self.pids_per_event.cpu().numpy()},
                           with_name="Momentum4D", depth_limit=None)
        fields = {"particles": particles, "x1": self.x1.detach().cpu().numpy(),
                  "x2": self.x2.detach().cpu().numpy(),
                  "weight": self.weights.detach().cpu().numpy()}
        if self.weights_named:
            fields["weights_named"] = ak.zip(
                {k: w.detach().cpu().numpy() for k, w in self.weights_named.items()})
        if self.incoming_pids is not None:
            fields["incoming_pids"] = self.incoming_pids.cpu().numpy()
        if self.process_ids is not None:
            fields["process_id"] = self.process_ids.cpu().numpy()
        return ak.zip(fields, depth_limit=1)


def sample_flavours(
    channel_weights: torch.Tensor,
    flavour_channels: Sequence[tuple[int, int]],
    *,
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw the incoming parton flavours of each event in proportion to its channel weights.

    Args:
        channel_weights: non-negative contribution of each flavour channel (PDFs x |M|²),
            shape (n, c), e.g. the per-channel integrand of ``forward.integrand``.
        flavour_channels: (pid from beam 1, pid from beam 2) per column, length c (a
            process's ``flavour_channels``).
        seed, generator: randomness (one of them; see :func:`forward.detector.make_generator`).

    Returns:
        PDG ids, shape (n, 2) int64.

    Raises:
        ValueError: shapes that do not match, negative or non-finite weights, or an event
            whose weights are all zero.
    """
    from forward.detector.smearing import make_generator

    w = as_tensor("channel_weights", channel_weights)
    check_floating("channel_weights", w)
    check_finite("channel_weights", w)
    chans = torch.as_tensor(list(flavour_channels), dtype=torch.int64, device=w.device)
    if w.ndim != 2 or chans.ndim != 2 or chans.shape != (w.shape[1], 2):
        raise ValueError(
            f"channel_weights, flavour_channels: expected shapes (n, c) and c pairs, got "
            f"{tuple(w.shape)} and {tuple(chans.shape)}"
        )
    if bool((w < 0).any()) or bool((w.sum(-1) <= 0).any()):
        raise ValueError("channel_weights: expected weights >= 0 with a positive sum per event")
    g = make_generator(seed, generator, w.device)
    idx = torch.multinomial(w, 1, generator=g)[:, 0]
    return chans[idx]
