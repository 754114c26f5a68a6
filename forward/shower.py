"""Optional Pythia 8 bridge: shower and hadronise hard events, return particle-level objects.

The hard events of an :class:`~forward.eventset.EventSet` go to Pythia 8 through a
Les Houches Event file (``Beams:frameType = 4``, ``Beams:LHEF``); Pythia adds initial-
and final-state showers, multi-parton interactions and hadronisation (each switchable)
and decays unstable particles (tops, W, Z, hadrons). From the final state:

* **isolated leptons** (e, μ; dressed with the photons within ΔR < ``dress_r``) and
  **photons**: pT above threshold, |η| < ``eta_max``, and
  the scalar pT sum of the other visible final-state particles within ΔR <
  ``isolation_r`` below ``isolation_max`` x pT;
* **jets**: anti-kT (``jet_r`` = 0.4, fastjet) of all other visible final-state particles
  with |η| < ``eta_max`` (neutrinos excluded), pT > ``jet_pt_min``; the PDG id of a jet is
  its flavour: 5 when a b quark of the final parton level (pT > 5 GeV) lies within ΔR <
  ``jet_r`` of its axis, else 4 for a c quark, else 21.

The result is a :class:`~forward.detector.ParticleObjects` set (the detector's input)
whose ``event_index`` is the index of the hard event each showered event came from
(read back from the LHE ``<event index=...>`` attribute, so failed events never shift
the link). Needs ``pip install pythia8mc fastjet`` (or ``pip install 'invsim[shower]'``).
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from forward.detector.objects import ParticleObjects
from forward.eventset import EventSet
from forward.io.lhe import write_lhe

__all__ = ["ShowerResult", "ShowerSettings", "shower"]

_INSTALL = "pip install pythia8mc fastjet  (or: pip install 'invsim[shower]')"
_NEUTRINOS = (12, 14, 16)


def _imports():
    try:
        import pythia8mc
    except ImportError as err:
        raise ImportError(f"forward.shower needs Pythia 8's Python bindings: {_INSTALL}") from err
    try:
        import awkward as ak
        import fastjet
    except ImportError as err:
        raise ImportError(f"forward.shower needs fastjet (and awkward): {_INSTALL}") from err
    return pythia8mc, fastjet, ak


@dataclass(frozen=True)
class ShowerSettings:
    """What Pythia does and how the final state becomes objects.

    Attributes:
        isr, fsr, mpi, hadronisation: switch initial-state shower, final-state shower,
            multi-parton interactions and hadronisation (``PartonLevel:ISR/FSR/MPI``,
            ``HadronLevel:all``).
        pdf_set: Pythia's ``PDF:pSet`` string (default ``"18"``, the NNPDF3.1 LO grid of
            the project's conventions, docs/design.md §3).
        jet_r: anti-kT radius parameter.
        jet_pt_min: minimum jet pT in GeV.
        lepton_pt_min, photon_pt_min: minimum pT of isolated leptons and photons in GeV.
        eta_max: |η| range of objects and of the clustering input.
        isolation_r: cone of the isolation sum.
        isolation_max: maximum (Σ pT in the cone) / pT of an isolated lepton or photon.
        dress_r: photons within this ΔR of a lepton are added to it (0: no dressing).
        extra: more Pythia settings as ``"Key = value"`` strings, read last.
    """

    isr: bool = True
    fsr: bool = True
    mpi: bool = True
    hadronisation: bool = True
    pdf_set: str = "18"
    jet_r: float = 0.4
    jet_pt_min: float = 20.0
    lepton_pt_min: float = 10.0
    photon_pt_min: float = 10.0
    eta_max: float = 5.0
    isolation_r: float = 0.3
    isolation_max: float = 0.15
    dress_r: float = 0.1
    extra: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        for name in ("isr", "fsr", "mpi", "hadronisation"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name}: expected True or False, got {getattr(self, name)!r}")
        for name in ("jet_r", "eta_max", "isolation_r"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name}: expected a finite number > 0, got {v!r}")
        for name in ("jet_pt_min", "lepton_pt_min", "photon_pt_min", "isolation_max", "dress_r"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"{name}: expected a finite number >= 0, got {v!r}")
        if isinstance(self.extra, str) or not all(isinstance(s, str) for s in self.extra):
            raise TypeError(f"extra: expected a tuple of 'Key = value' strings, got {self.extra!r}")

    def pythia_settings(self, lhe_path: str, seed: int) -> list[str]:
        """The Pythia settings strings for reading ``lhe_path`` with random seed ``seed``."""
        onoff = {True: "on", False: "off"}
        return [
            "Beams:frameType = 4",
            f"Beams:LHEF = {lhe_path}",
            f"PDF:pSet = {self.pdf_set}",
            f"PartonLevel:ISR = {onoff[self.isr]}",
            f"PartonLevel:FSR = {onoff[self.fsr]}",
            f"PartonLevel:MPI = {onoff[self.mpi]}",
            f"HadronLevel:all = {onoff[self.hadronisation]}",
            "Random:setSeed = on",
            f"Random:seed = {seed}",
            "Print:quiet = on",
            *self.extra,
        ]


@dataclass
class ShowerResult:
    """Particle-level objects of the showered events, and what went wrong.

    Attributes:
        objects: leptons, photons and jets, momenta (n_ok, m, 4) in GeV (float64), with
            ``event_index`` = index of the hard event in the input set.
        failed: indices of hard events Pythia could not process, shape (n_failed,).
        n_final: number of visible final-state particles per showered event, shape (n_ok,).
    """

    objects: ParticleObjects
    failed: torch.Tensor
    n_final: torch.Tensor


def _delta_r(eta1, phi1, eta2, phi2):
    dphi = np.remainder(phi1 - phi2 + np.pi, 2 * np.pi) - np.pi
    return np.hypot(eta1 - eta2, dphi)


def _eta_phi(px, py, pz):
    pt = np.hypot(px, py)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.arcsinh(np.where(pt > 0, pz / np.where(pt > 0, pt, 1.0), np.sign(pz) * 1e9))
    return pt, eta, np.arctan2(py, px)


def _read_event(event):
    """Final visible particles (id, E, px, py, pz) and heavy partons (id, px, py, pz)."""
    final, heavy = [], []
    for i in range(event.size()):
        p = event[i]
        a = p.idAbs()
        if p.isFinal():
            if a not in _NEUTRINOS and p.isVisible():
                final.append((p.id(), p.e(), p.px(), p.py(), p.pz()))
        if a in (4, 5) and (p.isFinal() or p.isFinalPartonLevel()):
            heavy.append((a, p.px(), p.py(), p.pz()))
    return np.array(final, dtype=np.float64).reshape(-1, 5), np.array(heavy).reshape(-1, 4)


def _leptons_and_photons(parts, s: ShowerSettings):
    """Dressed isolated leptons and isolated photons; returns (objects, remaining particles).

    Photons within ΔR < ``dress_r`` of a lepton are added to the nearest one (QED FSR
    recombination); the remaining particles feed the jet clustering.
    """
    ids = parts[:, 0].astype(np.int64)
    _, eta, phi = _eta_phi(parts[:, 2], parts[:, 3], parts[:, 4])
    leptons = np.flatnonzero((np.abs(ids) == 11) | (np.abs(ids) == 13))
    photons = np.flatnonzero(ids == 22)
    used = np.zeros(len(parts), dtype=bool)
    dressed = parts.copy()
    if len(leptons) and len(photons) and s.dress_r > 0:
        dr = _delta_r(eta[photons, None], phi[photons, None], eta[None, leptons],
                      phi[None, leptons])
        nearest = dr.argmin(axis=1)
        close = dr[np.arange(len(photons)), nearest] < s.dress_r
        for g, lep in zip(photons[close], leptons[nearest[close]], strict=True):
            dressed[lep, 1:] += parts[g, 1:]
            used[g] = True
    pt, eta, phi = _eta_phi(dressed[:, 2], dressed[:, 3], dressed[:, 4])
    is_lep = np.zeros(len(parts), dtype=bool)
    is_lep[leptons] = True
    cand = np.flatnonzero(
        ~used
        & (np.abs(eta) < s.eta_max)
        & ((is_lep & (pt > s.lepton_pt_min)) | ((ids == 22) & (pt > s.photon_pt_min)))
    )
    keep = np.zeros(len(parts), dtype=bool)
    free_pt = np.where(used, 0.0, pt)
    for c in cand:
        cone = float(free_pt[_delta_r(eta, phi, eta[c], phi[c]) < s.isolation_r].sum() - pt[c])
        keep[c] = cone < s.isolation_max * pt[c]
    return dressed[keep], parts[~keep & ~used]


def shower(
    events: EventSet,
    settings: ShowerSettings | None = None,
    *,
    seed: int = 1,
    scales: torch.Tensor | None = None,
    workdir: str | Path | None = None,
    progress: bool = False,
) -> ShowerResult:
    """Shower, hadronise and cluster hard events with Pythia 8 and fastjet.

    Args:
        events: hard events with ``incoming_pids`` (see
            :func:`forward.eventset.sample_flavours`); written to a temporary LHE file.
        settings: shower and object definitions; default :class:`ShowerSettings`.
        seed: Pythia's random seed, an int in [1, 900000000]; same seed, same output.
        scales: shower starting scales (LHE SCALUP) per event in GeV, shape (n,);
            default sqrt(x1 x2 s).
        workdir: directory for the temporary LHE file (default: the system's temp dir).
        progress: show a tqdm progress bar.

    Returns:
        :class:`ShowerResult`; objects sorted by type (leptons, photons, jets), padded
        to the largest multiplicity.

    Raises:
        ImportError: pythia8mc or fastjet missing (message has the pip command).
        ValueError: a bad seed or Pythia failing to initialise.
    """
    pythia8mc, fastjet, ak = _imports()
    settings = ShowerSettings() if settings is None else settings
    if not isinstance(settings, ShowerSettings):
        raise TypeError(f"settings: expected ShowerSettings, got {type(settings).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 1 <= seed <= 900_000_000:
        raise ValueError(f"seed: expected an int in [1, 900000000] (Pythia's range), got {seed!r}")
    if not isinstance(events, EventSet):
        raise TypeError(f"events: expected an EventSet, got {type(events).__name__}")
    n = len(events)
    rows, heavy_rows, index, n_final = [], [], [], []
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        lhe = Path(tmp) / "hard.lhe"
        write_lhe(events, lhe, scales=scales)
        pythia = pythia8mc.Pythia("", False)
        for line in settings.pythia_settings(str(lhe), seed):
            if not pythia.readString(line):
                raise ValueError(f"settings: Pythia rejected the setting {line!r}")
        if not pythia.init():
            raise ValueError("Pythia failed to initialise with the LHE file; see its log")
        bar = None
        if progress:
            from forward.progress import progress_bar

            bar = progress_bar(total=n, desc="shower", unit="ev")
        while True:
            ok = pythia.next()
            info = pythia.infoPython()  # a snapshot: fetch it after every next()
            if not ok:
                if info.atEndOfFile():
                    break
                continue
            parts, heavy = _read_event(pythia.event)
            rows.append(parts)
            heavy_rows.append(heavy)
            index.append(int(info.getEventAttribute("index", True)))
            n_final.append(len(parts))
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
    index_t = torch.tensor(index, dtype=torch.int64)
    failed = torch.ones(n, dtype=torch.bool)
    failed[index_t] = False
    objects = _objects(rows, heavy_rows, index_t, settings, fastjet, ak)
    return ShowerResult(objects, torch.nonzero(failed)[:, 0], torch.tensor(n_final))


def _objects(rows, heavy_rows, index, s: ShowerSettings, fastjet, ak) -> ParticleObjects:
    """Isolated leptons/photons and flavour-labelled anti-kT jets of every event."""
    iso, jet_inputs = [], []
    for parts in rows:
        found, rest = _leptons_and_photons(parts, s)
        iso.append(found)
        _, eta, _ = _eta_phi(rest[:, 2], rest[:, 3], rest[:, 4])
        rest = rest[np.abs(eta) < s.eta_max]
        jet_inputs.append({"E": rest[:, 1], "px": rest[:, 2], "py": rest[:, 3], "pz": rest[:, 4]})
    counts = [len(j["E"]) for j in jet_inputs]
    flat = {c: np.concatenate([j[c] for j in jet_inputs]) if rows else np.zeros(0)
            for c in ("px", "py", "pz", "E")}
    arr = ak.unflatten(ak.zip(flat, with_name="Momentum4D"), counts)
    jetdef = fastjet.JetDefinition(fastjet.antikt_algorithm, s.jet_r)
    jets = fastjet.ClusterSequence(arr, jetdef).inclusive_jets(min_pt=s.jet_pt_min).to_list()

    objs = []
    for lep, js, heavy in zip(iso, jets, heavy_rows, strict=True):
        ev = [(int(r[0]), r[1], r[2], r[3], r[4]) for r in lep]
        hpt, heta, hphi = _eta_phi(heavy[:, 1], heavy[:, 2], heavy[:, 3])
        for j in js:
            pt, eta, phi = _eta_phi(np.array(j["px"]), np.array(j["py"]), np.array(j["pz"]))
            if abs(float(eta)) >= s.eta_max:
                continue
            near = (hpt > 5.0) & (_delta_r(heta, hphi, eta, phi) < s.jet_r)
            flav = 5 if (near & (heavy[:, 0] == 5)).any() else 4 if near.any() else 21
            ev.append((flav, j["E"], j["px"], j["py"], j["pz"]))
        objs.append(ev)
    m = max((len(o) for o in objs), default=0)
    n_ok = len(objs)
    mom = torch.zeros(n_ok, m, 4, dtype=torch.float64)
    pids = torch.zeros(n_ok, m, dtype=torch.int64)
    mask = torch.zeros(n_ok, m, dtype=torch.bool)
    for i, ev in enumerate(objs):
        if ev:
            t = torch.tensor([o[1:] for o in ev], dtype=torch.float64)
            mom[i, : len(ev)] = t
            pids[i, : len(ev)] = torch.tensor([o[0] for o in ev])
            mask[i, : len(ev)] = True
    pids = torch.where(mask, pids, torch.full_like(pids, 22))  # padding: any modelled id
    return ParticleObjects(mom, pids, mask, index)
