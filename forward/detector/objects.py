"""Particle-level object sets (the detector's input) and reconstructed events (its output).

Particle level: momenta (n, k, 4), PDG ids, a validity mask for variable multiplicity
and, per event, the index of the hard event it came from. Quarks and gluons stand for
the jets they make (|pid| 5: b jet; 4: c jet; 1-3, 21: light jet), 11/13 for
electrons and muons, 22 for photons, 12/14/16 for neutrinos (invisible). Other ids
(tops, W, Z, τ) must be decayed before the detector sees them.

Reconstructed objects carry a type code (:class:`ObjectType`): 0 electron, 1 muon,
2 photon, 3 jet (not b-tagged), 4 b-tagged jet; -1 marks an empty slot.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from forward._validation import as_tensor, check_event_momenta, check_finite
from forward.events import HardEvents

__all__ = ["ObjectType", "ParticleObjects", "RecoEvents", "particle_class"]


class ObjectType(enum.IntEnum):
    """Type codes of reconstructed objects in ``RecoEvents.types`` (-1: empty slot)."""

    ELECTRON = 0
    MUON = 1
    PHOTON = 2
    JET = 3
    BJET = 4


#: particle classes (internal codes of :func:`particle_class`)
_ELECTRON, _MUON, _PHOTON, _LIGHT, _CHARM, _BOTTOM, _INVISIBLE = range(7)
_CLASS_OF_ABS_PID = {
    11: _ELECTRON, 13: _MUON, 22: _PHOTON, 1: _LIGHT, 2: _LIGHT, 3: _LIGHT, 21: _LIGHT,
    4: _CHARM, 5: _BOTTOM, 12: _INVISIBLE, 14: _INVISIBLE, 16: _INVISIBLE,
}


def particle_class(pids: torch.Tensor) -> torch.Tensor:
    """Detector class of each particle: 0 e, 1 μ, 2 γ, 3 light jet, 4 c jet, 5 b jet, 6 ν.

    Args:
        pids: PDG ids, integer tensor of any shape.

    Returns:
        int64 tensor of the same shape.

    Raises:
        ValueError: an id the detector does not model (tops, W/Z, τ, hadrons, ...).
    """
    a = pids.abs()
    out = torch.full_like(pids, -1, dtype=torch.int64)
    for apid, cls in _CLASS_OF_ABS_PID.items():
        out = torch.where(a == apid, torch.full_like(out, cls), out)
    if bool((out < 0).any()):
        bad = sorted(set(pids[out < 0].tolist()))[:5]
        raise ValueError(
            f"pids: the detector models e, μ, γ, ν, quarks (1-5) and gluons only; got {bad}. "
            "Decay tops, W/Z and τ first (or give them as their decay products)."
        )
    return out


@dataclass
class ParticleObjects:
    """Particle-level objects, one row per event, padded to a common multiplicity k.

    Attributes:
        momenta: shape (n, k, 4) as (E, px, py, pz) in GeV; padded slots hold zeros.
        pids: PDG ids, shape (n, k) int64 (a (k,) tensor or sequence is broadcast).
        mask: True for real objects, shape (n, k) bool.
        event_index: index of the hard event each row came from, shape (n,) int64.
    """

    momenta: torch.Tensor
    pids: torch.Tensor
    mask: torch.Tensor
    event_index: torch.Tensor

    def __post_init__(self) -> None:
        check_event_momenta("momenta", self.momenta)
        check_finite("momenta", self.momenta)
        n, k = self.momenta.shape[:2]
        dev = self.momenta.device
        pids = as_tensor("pids", self.pids, dtype=torch.int64, device=dev)
        if pids.is_floating_point() or pids.dtype == torch.bool:
            raise TypeError(f"pids: expected integer PDG ids, got {pids.dtype}")
        pids = pids.to(torch.int64)
        if pids.shape == (k,):
            pids = pids.expand(n, k)
        if pids.shape != (n, k):
            raise ValueError(f"pids: expected shape ({k},) or ({n}, {k}), got {tuple(pids.shape)}")
        mask = as_tensor("mask", self.mask, dtype=torch.bool, device=dev)
        if mask.dtype != torch.bool or mask.shape != (n, k):
            raise ValueError(
                f"mask: expected a bool tensor of shape ({n}, {k}), got {mask.dtype} "
                f"{tuple(mask.shape)}"
            )
        idx = as_tensor("event_index", self.event_index, dtype=torch.int64, device=dev)
        if idx.shape != (n,) or idx.is_floating_point():
            raise ValueError(
                f"event_index: expected an integer tensor of shape ({n},), got {idx.dtype} "
                f"{tuple(idx.shape)}"
            )
        particle_class(pids[mask])  # raises on unmodelled ids
        self.pids, self.mask, self.event_index = pids, mask, idx.to(torch.int64)

    def __len__(self) -> int:
        return self.momenta.shape[0]

    def to(self, device: torch.device | str) -> ParticleObjects:
        """Move every tensor to ``device``."""
        return ParticleObjects(self.momenta.to(device), self.pids.to(device),
                               self.mask.to(device), self.event_index.to(device))

    @classmethod
    def from_hard(
        cls, events: HardEvents, final_state: Sequence[int] | torch.Tensor
    ) -> ParticleObjects:
        """Objects from hard events: each final-state particle is one object.

        Args:
            events: hard events, momenta (n, k, 4) in GeV.
            final_state: PDG ids in the order of ``events.momenta``, shape (k,)
                (a process's ``final_state``) or (n, k).

        Returns:
            Objects with every slot valid and ``event_index = arange(n)``.
        """
        if not isinstance(events, HardEvents):
            raise TypeError(f"events: expected HardEvents, got {type(events).__name__}")
        n, k = events.momenta.shape[:2]
        dev = events.momenta.device
        pids = as_tensor("final_state", final_state, dtype=torch.int64, device=dev)
        return cls(
            events.momenta,
            pids,
            torch.ones(n, k, dtype=torch.bool, device=dev),
            torch.arange(n, device=dev),
        )


@dataclass
class RecoEvents:
    """Reconstructed events, row i made from particle-level row i.

    Objects are sorted by reconstructed pT (descending) and packed to the front; the
    width m equals the input multiplicity k (empty slots: ``mask`` False, type -1,
    zero momenta, ``particle_index`` -1).

    Attributes:
        momenta: reconstructed four-momenta, shape (n, m, 4) as (E, px, py, pz) in GeV.
        types: :class:`ObjectType` codes, shape (n, m) int64, -1 for empty slots.
        charges: electric charge of leptons (±1), 0 for photons, jets and empty slots,
            shape (n, m) int64.
        mask: True for reconstructed objects, shape (n, m) bool.
        particle_index: slot of the particle-level object each reco object came from,
            shape (n, m) int64 (-1 for empty slots).
        met: missing transverse momentum vector (MET_x, MET_y) = minus the vector sum
            of the reconstructed objects' pT, shape (n, 2) in GeV.
        counts: multiplicity per type code, shape (n, 5) int64 (column = ObjectType).
        passed: event selection, shape (n,) bool.
        hard_index: index of the hard event each row came from, shape (n,) int64.
    """

    momenta: torch.Tensor
    types: torch.Tensor
    charges: torch.Tensor
    mask: torch.Tensor
    particle_index: torch.Tensor
    met: torch.Tensor
    counts: torch.Tensor
    passed: torch.Tensor
    hard_index: torch.Tensor

    def __post_init__(self) -> None:
        check_event_momenta("momenta", self.momenta, objects="m")
        n, m = self.momenta.shape[:2]
        shapes = {
            "types": (n, m), "charges": (n, m), "mask": (n, m), "particle_index": (n, m),
            "met": (n, 2), "counts": (n, len(ObjectType)), "passed": (n,), "hard_index": (n,),
        }
        for name, shape in shapes.items():
            t = getattr(self, name)
            if not isinstance(t, torch.Tensor) or tuple(t.shape) != shape:
                got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                raise ValueError(f"{name}: expected shape {shape}, got {got}")

    def __len__(self) -> int:
        return self.momenta.shape[0]

    @property
    def n_objects(self) -> torch.Tensor:
        """Number of reconstructed objects per event, shape (n,) int64."""
        return self.mask.sum(-1)

    @property
    def met_pt(self) -> torch.Tensor:
        """Magnitude of the missing transverse momentum, shape (n,) in GeV."""
        return torch.hypot(self.met[:, 0], self.met[:, 1])

    def __getitem__(self, index) -> RecoEvents:
        """Select events by index, slice or boolean mask (``reco[reco.passed]``)."""
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return RecoEvents(**{k: getattr(self, k)[index] for k in self.field_names()})

    def to(self, device: torch.device | str) -> RecoEvents:
        """Move every tensor to ``device`` (dtypes unchanged)."""
        return RecoEvents(**{k: getattr(self, k).to(device) for k in self.field_names()})

    @staticmethod
    def field_names() -> tuple[str, ...]:
        """Names of the tensor fields, in constructor order."""
        return ("momenta", "types", "charges", "mask", "particle_index", "met", "counts",
                "passed", "hard_index")
