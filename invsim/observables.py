"""The observables of an analysis: which reco objects, in which canonical order.

:class:`RecoObservables` describes the reconstructed objects an analysis uses (charged
leptons, b-tagged jets, other jets, photons, missing pT) and their object cuts, and
turns :class:`~forward.detector.objects.RecoEvents` into the flat float64 tensor
``x_reco`` of shape (n, d) that the transfer function, the proposal and the likelihood
take. Every reader of events (invsim's own files, NanoAOD-style ROOT/HDF5, detector
simulation) goes through :meth:`RecoObservables.extract`, so the same events give the
same tensor whatever order a file lists the objects in.

**Canonical order** (columns, each object as (pT [GeV], η, φ [rad])):

1. charged leptons (e and μ together), ordered by charge, negative first, then by
   descending pT: for two opposite-sign leptons ℓ⁻ then ℓ⁺ (as Drell–Yan's
   ``final_state``);
2. b-tagged jets by descending pT;
3. other jets by descending pT;
4. photons by descending pT;
5. missing pT as (MET [GeV], φ_MET [rad]).

**Selection.** Objects count when they pass the object cuts (``*_pt_min``,
``*_eta_max``). An event is selected when the detector's own selection passed, it has
exactly ``leptons`` leptons (opposite-sign when two; exactly ``electrons`` of them
electrons when that is set, the rest muons), at least ``bjets`` b-jets, at
least ``jets`` other jets and at least ``photons`` photons; the leading ones by pT are
used. :meth:`RecoObservables.extract` reports how many events fail each requirement.

The hard final state's canonical order is the process's ``final_state``
(:func:`forward.events.order_final_state` puts files in it); its features are
(pT, η, φ) of every final-state particle in that order (:func:`hard_pt_eta_phi`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from forward import kinematics as kin
from forward.detector.objects import ObjectType, RecoEvents
from forward.events import HardEvents

__all__ = ["ExtractedObservables", "RecoObservables", "hard_pt_eta_phi"]


def hard_pt_eta_phi(events: HardEvents) -> torch.Tensor:
    """(pT, η, φ) of each final-state particle, flattened.

    Args:
        events: hard events, momenta (n, k, 4) in GeV.

    Returns:
        Tensor of shape (n, 3k): (pT [GeV], η, φ [rad, in (-π, π]]) per particle in the
        order of ``final_state`` (for Drell–Yan: ℓ⁻ then ℓ⁺).
    """
    p = events.momenta
    return torch.stack([kin.pt(p), kin.pseudorapidity(p), kin.phi(p)], dim=-1).flatten(1)


@dataclass
class ExtractedObservables:
    """The result of :meth:`RecoObservables.extract`.

    Attributes:
        x: observables of the selected events, shape (m, d) float64.
        selected: which input events were selected, shape (n,) bool.
        failed: requirement -> number of input events failing it (an event may fail
            several; the counts are of first failures in the order listed).
    """

    x: torch.Tensor
    selected: torch.Tensor
    failed: dict[str, int] = field(default_factory=dict)

    @property
    def n_read(self) -> int:
        """Number of input events."""
        return int(self.selected.shape[0])

    def summary(self) -> str:
        """One line, e.g. ``'812 of 1000 events selected (188 fail: 2 leptons: 150, ...)'``."""
        m = int(self.selected.sum())
        text = f"{m} of {self.n_read} events selected"
        bad = {k: v for k, v in self.failed.items() if v}
        if bad:
            text += " (" + ", ".join(f"{k}: {v}" for k, v in bad.items()) + ")"
        return text


def _count(name: str, v) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ValueError(f"{name}: expected an integer >= 0, got {v!r}")
    return v


def _cut(name: str, v, *, allow_inf: bool) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v) or v < 0 or (
            math.isinf(v) and not allow_inf):
        kind = "a number >= 0 (inf allowed)" if allow_inf else "a finite number >= 0"
        raise ValueError(f"{name}: expected {kind}, got {v!r}")
    return float(v)


@dataclass(frozen=True)
class RecoObservables:
    """Which reconstructed objects an analysis uses; see the module docstring.

    Attributes:
        leptons: exact number of charged leptons (e, μ).
        electrons: exact number of electrons among them (the rest are muons), e.g. 2
            for an ee channel, 0 for μμ, 1 for eμ; None (default) takes any mixture.
            Detectors resolve electrons and muons differently, so an analysis of both
            flavours is best split into channels of one flavour content each (see
            :class:`~invsim.mem.ChannelLikelihood`).
        bjets: minimum number of b-tagged jets (the leading ones are used).
        jets: minimum number of other jets (the leading ones are used).
        photons: minimum number of photons (the leading ones are used).
        met: whether the missing pT (MET, φ_MET) is an observable.
        lepton_pt_min, jet_pt_min, photon_pt_min: object pT cuts in GeV (b-jets use
            the jet cuts).
        lepton_eta_max, jet_eta_max, photon_eta_max: object |η| cuts.
        assign_bjets: the two b-jets are not told apart by charge: likelihoods sum over
            both assignments of them to the process's b and b̄ (:attr:`assignments`,
            :mod:`invsim.mem.assignments`) and training pairs put them in the order of
            the hard b-quarks. Needs ``bjets == 2``; :meth:`for_process` sets it for a
            final state with b and b̄ (t t̄).
    """

    leptons: int = 2
    electrons: int | None = None
    bjets: int = 0
    jets: int = 0
    photons: int = 0
    met: bool = False
    lepton_pt_min: float = 0.0
    lepton_eta_max: float = math.inf
    jet_pt_min: float = 0.0
    jet_eta_max: float = math.inf
    photon_pt_min: float = 0.0
    photon_eta_max: float = math.inf
    assign_bjets: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.assign_bjets, bool):
            raise TypeError(f"assign_bjets: expected a bool, got {self.assign_bjets!r}")
        if self.assign_bjets and self.bjets != 2:
            raise ValueError(f"assign_bjets: needs bjets=2 (the two b-jets swapped), got "
                             f"bjets={self.bjets}")
        for name in ("leptons", "bjets", "jets", "photons"):
            _count(name, getattr(self, name))
        if self.electrons is not None:
            _count("electrons", self.electrons)
            if self.electrons > self.leptons:
                raise ValueError(f"electrons: expected at most leptons={self.leptons}, got "
                                 f"{self.electrons}")
        if not isinstance(self.met, bool):
            raise TypeError(f"met: expected a bool, got {self.met!r}")
        for f in dataclasses.fields(self):
            if f.name.endswith(("_pt_min", "_eta_max")):
                object.__setattr__(self, f.name, _cut(f.name, getattr(self, f.name),
                                                      allow_inf=f.name.endswith("_eta_max")))
        if self.leptons + self.bjets + self.jets + self.photons == 0 and not self.met:
            raise ValueError("RecoObservables: expected at least one object or met=True")

    # -- description -------------------------------------------------------------------
    def _groups(self) -> list[tuple[str, int]]:
        return [("lep", self.leptons), ("bjet", self.bjets), ("jet", self.jets),
                ("photon", self.photons)]

    @property
    def columns(self) -> list[str]:
        """Column names of ``x_reco``, e.g. ``['lminus_pt', 'lminus_eta', ...]``."""
        out = []
        for group, k in self._groups():
            for i in range(k):
                if group == "lep" and self.leptons == 2:
                    stem = ("lminus", "lplus")[i]
                else:
                    stem = f"{group}{i + 1}"
                out += [f"{stem}_pt", f"{stem}_eta", f"{stem}_phi"]
        if self.met:
            out += ["met_pt", "met_phi"]
        return out

    @property
    def dim(self) -> int:
        """Number of columns d."""
        return len(self.columns)

    @property
    def kinds(self) -> list[str]:
        """Preprocessing kind per column (``"log"`` pT, ``"real"`` η, ``"phi"`` azimuths),
        for :func:`invsim.flows.observable_preprocessing`."""
        return [{"pt": "log", "eta": "real", "phi": "phi"}[c.rpartition("_")[2]]
                for c in self.columns]

    @property
    def periodic(self) -> tuple[int, ...]:
        """Indices of the azimuth columns."""
        return tuple(i for i, k in enumerate(self.kinds) if k == "phi")

    @property
    def bjet_columns(self) -> tuple[int, ...]:
        """Index of the first column (pT) of each b-jet, in order."""
        cols = self.columns
        return tuple(cols.index(f"bjet{i + 1}_pt") for i in range(self.bjets))

    @property
    def assignments(self) -> tuple[tuple[int, ...], ...]:
        """Column permutations of x_reco that the likelihood sums over, identity first:
        with ``assign_bjets`` the identity and the swap of the two b-jets' (pT, η, φ)
        blocks, else the identity only."""
        ident = list(range(self.dim))
        if not self.assign_bjets:
            return (tuple(ident),)
        a, b = self.bjet_columns
        swap = list(ident)
        swap[a:a + 3], swap[b:b + 3] = ident[b:b + 3], ident[a:a + 3]
        return (tuple(ident), tuple(swap))

    @property
    def leptons_only(self) -> bool:
        """True when the observables are charged leptons and nothing else."""
        return (self.leptons > 0 and not (self.bjets or self.jets or self.photons)
                and not self.met)

    def to_dict(self) -> dict:
        """JSON-ready settings (``inf`` as the string ``"inf"``)."""
        return {k: ("inf" if isinstance(v, float) and math.isinf(v) else v)
                for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping) -> RecoObservables:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"observables: unknown setting(s) {unknown}; known: {sorted(known)}")
        return cls(**{k: (math.inf if v == "inf" else v) for k, v in data.items()})

    @classmethod
    def for_process(cls, process, **cuts) -> RecoObservables:
        """Default observables of a process's visible final state.

        Charged leptons of ``process.final_state`` count as leptons, b quarks as
        b-jets, other quarks and gluons as jets and photons as photons. The missing pT
        is left out (``met=False``) unless asked for: both built-in detectors
        reconstruct it as minus the vector sum of the reconstructed objects, so with
        every visible final-state object among the observables it is a function of the
        other columns, a degenerate direction no transfer density can have (pass
        ``met=True`` for a detector with its own missing-pT response). The number of
        electrons is fixed when the process has one lepton flavour content (a process
        whose ``lepton_pids`` lists several flavours, as Drell–Yan with
        ``leptons="both"``, takes any). The object cuts
        are the process's default selection ``process.reco_cuts`` (a mapping of cut
        names to values, when the process has one: t t̄ with decays has leptons
        pT > 20 GeV, |η| < 2.5 and jets, b-tagged or not, pT > 30 GeV, |η| < 2.5), else
        none; keyword arguments override them (and may override ``electrons``, ``met`` and
        ``assign_bjets``, which is set when the final state has a b and a b̄ and two
        b-jets are used).
        """
        cuts = {**dict(getattr(process, "reco_cuts", None) or {}), **cuts}
        ids = [abs(int(i)) for i in process.final_state]
        several = len(tuple(getattr(process, "lepton_pids", ()) or ())) > 1
        counts = {"leptons": sum(i in (11, 13) for i in ids),
                  "bjets": sum(i == 5 for i in ids),
                  "jets": sum(i in (1, 2, 3, 4, 21) for i in ids),
                  "photons": sum(i == 22 for i in ids),
                  "met": False}
        if counts["leptons"] and not several:
            counts["electrons"] = sum(i == 11 for i in ids)
        signed = [int(i) for i in process.final_state]
        counts["assign_bjets"] = counts["bjets"] == 2 and 5 in signed and -5 in signed
        counts.update({k: cuts.pop(k) for k in ("electrons", "assign_bjets", "met") if k in cuts})
        unknown = sorted({i for i in ids if i not in (1, 2, 3, 4, 5, 11, 12, 13, 14, 16, 21, 22)})
        if unknown:
            raise ValueError(f"process: final state {tuple(process.final_state)} has ids "
                             f"{unknown} with no reco object (decay them first, e.g. "
                             f"--set decays=dilepton)")
        return cls(**counts, **cuts)

    # -- extraction --------------------------------------------------------------------
    def extract(self, reco: RecoEvents) -> ExtractedObservables:
        """The observables of the selected events, in the canonical order.

        Args:
            reco: reconstructed events (n,), e.g. from a detector or
                :func:`forward.io.read_events`.

        Returns:
            :class:`ExtractedObservables` with x of shape (m, d) float64 for the m
            selected events.
        """
        if not isinstance(reco, RecoEvents):
            raise TypeError(f"reco: expected RecoEvents, got {type(reco).__name__}")
        p = reco.momenta.to(torch.float64)
        n, k = reco.mask.shape
        pt = kin.pt(p)
        safe = torch.where(reco.mask[..., None], p, p.new_tensor([1.0, 1.0, 0.0, 0.0]))
        eta, phi = kin.pseudorapidity(safe), kin.phi(safe)
        t = reco.types
        lep = reco.mask & ((t == ObjectType.ELECTRON) | (t == ObjectType.MUON))
        lep &= (pt >= self.lepton_pt_min) & (eta.abs() <= self.lepton_eta_max)
        jet_cut = (pt >= self.jet_pt_min) & (eta.abs() <= self.jet_eta_max)
        bjet = reco.mask & (t == ObjectType.BJET) & jet_cut
        jet = reco.mask & (t == ObjectType.JET) & jet_cut
        pho = reco.mask & (t == ObjectType.PHOTON) & (pt >= self.photon_pt_min) & (
            eta.abs() <= self.photon_eta_max)
        ok = reco.passed.clone()
        failed: dict[str, int] = {}

        def require(name: str, cond: torch.Tensor) -> None:
            nonlocal ok
            failed[name] = int((ok & ~cond).sum())
            ok = ok & cond

        failed["detector selection"] = int((~reco.passed).sum())
        n_lep = lep.sum(-1)
        if self.leptons:
            require(f"exactly {self.leptons} leptons", n_lep == self.leptons)
        if self.electrons is not None:
            n_el = (lep & (t == ObjectType.ELECTRON)).sum(-1)
            require(f"exactly {self.electrons} electron(s) among them", n_el == self.electrons)
        # charge first (negative first), then pT descending: sort by pT, then stably
        # by charge
        ch = reco.charges.to(torch.int64)
        order = torch.argsort(torch.where(lep, pt, -1.0), dim=1, descending=True, stable=True)
        key2 = torch.where(lep.gather(1, order), ch.gather(1, order), 10)
        order = order.gather(1, torch.argsort(key2, dim=1, stable=True))
        if self.leptons == 2:
            c = ch.gather(1, order[:, :2])
            require("opposite-sign leptons", c.sum(-1) == 0)
        parts = [self._take(order, self.leptons, pt, eta, phi)]
        for name, sel, want in (("b-jets", bjet, self.bjets), ("jets", jet, self.jets),
                                ("photons", pho, self.photons)):
            if want:
                require(f"at least {want} {name}", sel.sum(-1) >= want)
            o = torch.argsort(torch.where(sel, pt, -1.0), dim=1, descending=True, stable=True)
            parts.append(self._take(o, want, pt, eta, phi))
        if self.met:
            met = reco.met.to(torch.float64)
            parts.append(torch.stack([torch.hypot(met[:, 0], met[:, 1]),
                                      torch.atan2(met[:, 1], met[:, 0])], -1))
        x = torch.cat(parts, -1)[ok]
        return ExtractedObservables(x, ok, failed)

    @staticmethod
    def _take(order: torch.Tensor, want: int, pt, eta, phi) -> torch.Tensor:
        n = order.shape[0]
        if want == 0:
            return pt.new_zeros(n, 0)
        k = order.shape[1]
        idx = order[:, :min(want, k)]
        cols = torch.stack([pt.gather(1, idx), eta.gather(1, idx), phi.gather(1, idx)], -1)
        if want > k:  # fewer slots than wanted: those events are not selected anyway
            cols = torch.cat([cols, cols.new_zeros(n, want - k, 3)], 1)
        return cols.flatten(1)
