"""Reconstructed events from NanoAOD-style files (ROOT or HDF5) as :class:`RecoEvents`.

For a physicist's own reco-level events (data or a full simulation): objects are read
from flat, jagged, per-collection branches as in CMS NanoAOD,

========== ==================================================================
collection branches (``n<C>`` counts the objects of collection C per event)
========== ==================================================================
Electron   ``nElectron``, ``Electron_pt``, ``_eta``, ``_phi``, ``_charge``
           (``Electron_mass`` optional: 0.000511 GeV)
Muon       ``nMuon``, ``Muon_pt``, ``_eta``, ``_phi``, ``_charge``
           (``Muon_mass`` optional: 0.10566 GeV)
Photon     ``nPhoton``, ``Photon_pt``, ``_eta``, ``_phi`` (massless)
Jet        ``nJet``, ``Jet_pt``, ``_eta``, ``_phi``, ``_mass``, ``Jet_btag`` (a 0/1
           integer or bool flag, or a float discriminant: tagged when >= threshold)
MET        ``MET_pt``, ``MET_phi`` (one value per event)
========== ==================================================================

pT and masses in GeV, φ in radians; float32 or float64 (cast to ``dtype``).

**ROOT layout** (read through uproot): a TTree (default ``Events``) with an integer
counter branch ``nElectron`` and jagged branches ``Electron_pt``, ... (one entry per
event), as NanoAOD has and as ``uproot`` writes with ``mktree(...,
field_name=lambda c, f: f"{c}_{f}", counter_name=lambda c: f"n{c}")`` from a dict
``{"Electron": ak.zip({"pt": ..., ...}), "MET_pt": ...}``. An RNTuple of that name is
read too, as ``uproot.recreate(path)["Events"] = {"Electron": ak.zip(...), ...}``
writes it with uproot 5.7 (a record field ``Electron`` with sub-fields
``Electron.pt``, ..., no counter): the counts then come from the jagged fields.

**HDF5 layout** (read through h5py): a group named ``tree`` (default ``Events``; the
file's root group when there is no such group) holding, per collection, a counts
dataset ``nElectron`` of shape (n,) (integers) and flat datasets ``Electron_pt``, ...
of shape (sum of the counts,) with the objects of event 0 first, then event 1, ...;
and per-event datasets ``MET_pt``, ``MET_phi`` of shape (n,).

Output (:class:`~forward.detector.objects.RecoEvents`): every object (electron type 0,
muon 1, photon 2, jet 3, b-tagged jet 4) packed to the front of its row and sorted by
pT, descending (as :mod:`forward.detector` does); momenta (E, px, py, pz) from
(pT, η, φ, m); lepton charges ±1 (0 for photons and jets); ``particle_index`` -1 (no
truth); ``met`` from ``MET_pt``, ``MET_phi``; every event ``passed``; ``hard_index =
arange(n)``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from forward import kinematics as kin
from forward.detector.objects import ObjectType, RecoEvents

__all__ = ["COLLECTIONS", "read_nanoaod"]

#: collections :func:`read_nanoaod` understands, in the order objects are gathered
COLLECTIONS = ("Electron", "Muon", "Photon", "Jet", "MET")

_TYPE = {"Electron": ObjectType.ELECTRON, "Muon": ObjectType.MUON,
         "Photon": ObjectType.PHOTON, "Jet": ObjectType.JET}
_FIELDS = {
    "Electron": ("pt", "eta", "phi", "charge"),
    "Muon": ("pt", "eta", "phi", "charge"),
    "Photon": ("pt", "eta", "phi"),
    "Jet": ("pt", "eta", "phi", "mass", "btag"),
}
_DEFAULT_MASS = {"Electron": 0.000511, "Muon": 0.10566, "Photon": 0.0}
_ROOT_MAGIC = b"root"


def _container_format(path: Path) -> str | None:
    """``"root"`` or ``"hdf5"`` from the file's first bytes, None for anything else."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head == _ROOT_MAGIC:
        return "root"
    if head[:4] == b"\x89HDF" or _is_hdf5(path):
        return "hdf5"
    return None


def _is_hdf5(path: Path) -> bool:
    """h5py's test (also finds files with a user block); False without h5py."""
    try:
        import h5py
    except ImportError:  # pragma: no cover - depends on the environment
        return False
    return bool(h5py.is_hdf5(path))


class _Source:
    """Branches of one tree/group: names, per-event arrays and (flat values, counts)."""

    noun = "branch"

    def __init__(self, path: Path) -> None:
        self.path = path

    def where(self, name: str) -> str:
        return f"{str(self.path)!r}: {self.noun} {name!r}"


class _RootSource(_Source):
    def __init__(self, path: Path, f, tree: str) -> None:
        super().__init__(path)
        if tree not in f or not hasattr(f[tree], "num_entries"):
            trees = [k.split(";")[0] for k, c in f.classnames().items()
                     if c == "TTree" or "RNTuple" in c]
            raise ValueError(f"{str(path)!r}: no TTree or RNTuple {tree!r}; the file has "
                             f"{trees}")
        self.tree = f[tree]
        self.keys = set(self.tree.keys())
        self.n = int(self.tree.num_entries)

    def has_collection(self, c: str) -> bool:
        return f"n{c}" in self.keys or c in self.keys

    def name(self, c: str, field: str) -> str | None:
        for name in (f"{c}_{field}", f"{c}.{field}"):
            if name in self.keys:
                return name
        return None

    def per_event(self, name: str) -> np.ndarray:
        a = self.tree[name].array(library="np")
        if a.dtype == object:
            raise ValueError(f"{self.where(name)}: expected one number per event, got a "
                             "jagged branch")
        return a

    def jagged(self, name: str) -> tuple[np.ndarray, np.ndarray | None]:
        import awkward as ak

        a = self.tree[name].array(library="ak")
        if a.ndim != 2:
            raise ValueError(f"{self.where(name)}: expected a jagged branch (a list of numbers "
                             f"per event), got type {a.type}")
        return ak.to_numpy(ak.flatten(a)), ak.to_numpy(ak.num(a)).astype(np.int64)


class _H5Source(_Source):
    noun = "dataset"

    def __init__(self, path: Path, f, tree: str) -> None:
        super().__init__(path)
        self.group = f[tree] if tree in f and hasattr(f[tree], "keys") else f
        self.keys = {k for k, v in self.group.items() if hasattr(v, "shape")}
        self.n = None  # from the first per-event dataset read

    def has_collection(self, c: str) -> bool:
        return f"n{c}" in self.keys

    def name(self, c: str, field: str) -> str | None:
        name = f"{c}_{field}"
        return name if name in self.keys else None

    def _read(self, name: str) -> np.ndarray:
        a = self.group[name][()]
        if np.ndim(a) != 1:
            raise ValueError(f"{self.where(name)}: expected a 1-d dataset, got shape "
                             f"{np.shape(a)}")
        return a

    def per_event(self, name: str) -> np.ndarray:
        return self._read(name)

    def jagged(self, name: str) -> tuple[np.ndarray, np.ndarray | None]:
        return self._read(name), None


def _numeric(src: _Source, name: str, a: np.ndarray) -> np.ndarray:
    if a.dtype.kind not in "biuf":
        raise ValueError(f"{src.where(name)}: expected numbers, got dtype {a.dtype}")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        bad = int((~np.isfinite(a)).sum())
        raise ValueError(f"{src.where(name)}: {bad} non-finite (NaN or infinite) values out of "
                         f"{a.size}")
    return a


def _per_event(src: _Source, name: str, n: int) -> np.ndarray:
    a = _numeric(src, name, src.per_event(name))
    if len(a) != n:
        raise ValueError(f"{src.where(name)}: expected {n} entries (one per event), got {len(a)}")
    return a


def _counts(src: _Source, name: str, n: int) -> np.ndarray:
    a = _per_event(src, name, n)
    if a.dtype.kind == "f" and not (a == np.round(a)).all():
        bad = a[a != np.round(a)][:3].tolist()
        raise ValueError(f"{src.where(name)}: an object counter must hold integers, got float "
                         f"values such as {bad}")
    if (a < 0).any():
        raise ValueError(f"{src.where(name)}: counts must be >= 0, got {int((a < 0).sum())} "
                         f"negative, e.g. {a[a < 0][:3].tolist()}")
    return a.astype(np.int64)


def _values(src: _Source, name: str, counts: np.ndarray) -> np.ndarray:
    flat, own = src.jagged(name)
    flat = _numeric(src, name, flat)
    if own is not None:
        if len(own) != len(counts) or not np.array_equal(own, counts):
            bad = int(np.flatnonzero(own != counts)[0]) if len(own) == len(counts) else None
            detail = (f"event {bad} has {own[bad]} values but the counter says {counts[bad]}"
                      if bad is not None else f"{len(own)} events instead of {len(counts)}")
            raise ValueError(f"{src.where(name)}: lengths do not match the counter ({detail})")
    elif len(flat) != int(counts.sum()):
        raise ValueError(f"{src.where(name)}: expected {int(counts.sum())} values (the sum of "
                         f"the counts), got {len(flat)}")
    return flat


def _collection(src: _Source, c: str, n: int, btag_threshold: float):
    """(counts (n,), pt, eta, phi, mass, charge, type) of one collection, numpy."""
    names = {}
    for field in _FIELDS[c]:
        names[field] = src.name(c, field)
        if names[field] is None:
            raise ValueError(f"{str(src.path)!r}: collection {c} needs the {src.noun} "
                             f"'{c}_{field}', which the file does not have")
    counter = f"n{c}"
    if counter in src.keys:
        counts = _counts(src, counter, n)
    else:  # RNTuple record layout: counts from the jagged field itself
        counts = src.jagged(names["pt"])[1]
    vals = {f: _values(src, nm, counts) for f, nm in names.items()}
    pt = vals["pt"]
    if (pt < 0).any():
        raise ValueError(f"{src.where(names['pt'])}: pT must be >= 0 GeV, got "
                         f"{int((pt < 0).sum())} negative values, e.g. {pt[pt < 0][:3].tolist()}")
    if "mass" not in vals:
        mass_name = src.name(c, "mass")
        if mass_name is not None:
            vals["mass"] = _values(src, mass_name, counts)
        else:
            vals["mass"] = np.full(len(pt), _DEFAULT_MASS[c])
    mass = vals["mass"]
    if (mass < 0).any():
        nm = src.name(c, "mass")
        raise ValueError(f"{src.where(nm)}: masses must be >= 0 GeV, got "
                         f"{int((mass < 0).sum())} negative, e.g. {mass[mass < 0][:3].tolist()}")
    if "charge" in vals:
        q = vals["charge"]
        if not np.isin(q, (-1, 1)).all():
            raise ValueError(f"{src.where(names['charge'])}: lepton charges must be +1 or -1, "
                             f"got {sorted(set(q[~np.isin(q, (-1, 1))].tolist()))[:5]}")
        charge = q.astype(np.int64)
    else:
        charge = np.zeros(len(pt), dtype=np.int64)
    types = np.full(len(pt), int(_TYPE[c]), dtype=np.int64)
    if c == "Jet":
        b = vals["btag"]
        tagged = b >= btag_threshold if b.dtype.kind == "f" else b != 0
        types = np.where(tagged, int(ObjectType.BJET), types)
    return counts, pt, vals["eta"], vals["phi"], mass, charge, types


def _requested(src: _Source, collections: Sequence[str] | None) -> list[str]:
    def present(c: str) -> bool:
        return "MET_pt" in src.keys if c == "MET" else src.has_collection(c)

    if collections is None:
        chosen = [c for c in COLLECTIONS if present(c)]
        if not chosen:
            raise ValueError(
                f"{str(src.path)!r}: no collection found: expected a counter {src.noun} such as "
                f"'nElectron', 'nMuon', 'nPhoton', 'nJet' or 'MET_pt'"
            )
        return chosen
    if isinstance(collections, str):
        collections = [collections]
    chosen = list(collections)
    unknown = [c for c in chosen if c not in COLLECTIONS]
    if unknown or not chosen:
        raise ValueError(f"collections: expected a non-empty subset of {list(COLLECTIONS)}, got "
                         f"{chosen}")
    for c in chosen:
        if not present(c):
            need = "MET_pt" if c == "MET" else f"n{c}"
            raise ValueError(f"{str(src.path)!r}: collection {c} requested but the {src.noun} "
                             f"{need!r} is missing")
    return [c for c in COLLECTIONS if c in chosen]


def _build(src: _Source, collections, btag_threshold, dtype, device) -> RecoEvents:
    chosen = _requested(src, collections)
    if src.n is None:  # HDF5: the first collection's counter (or MET_pt) sets n
        src.n = len(src.per_event("MET_pt" if chosen[0] == "MET" else f"n{chosen[0]}"))
    n = src.n
    if n == 0:
        raise ValueError(f"{str(src.path)!r}: the file contains zero events")
    parts = [_collection(src, c, n, btag_threshold) for c in chosen if c != "MET"]

    def t(a, dt=dtype):
        return torch.as_tensor(np.ascontiguousarray(a)).to(device=device, dtype=dt)

    i64 = torch.int64
    if parts:
        counts = np.stack([p[0] for p in parts]).sum(0)
        ev = t(np.concatenate([np.repeat(np.arange(n), p[0]) for p in parts]), i64)
        pt, eta, phi, mass = (t(np.concatenate([p[j] for p in parts])) for j in range(1, 5))
        charge, types = (t(np.concatenate([p[j] for p in parts]), i64) for j in (5, 6))
    else:
        counts = np.zeros(n, dtype=np.int64)
        ev = torch.zeros(0, dtype=i64, device=device)
        pt = eta = phi = mass = torch.zeros(0, dtype=dtype, device=device)
        charge = types = torch.zeros(0, dtype=i64, device=device)
    p4 = kin.from_pt_eta_phi_m(pt, eta, phi, mass)
    # sort by event, then pT descending (stable: collection order breaks ties)
    order = torch.argsort(pt, descending=True, stable=True)
    order = order[torch.argsort(ev[order], stable=True)]
    ev_s = ev[order]
    counts_t = t(counts, i64)
    start = torch.cumsum(counts_t, 0) - counts_t
    slot = torch.arange(len(ev_s), device=ev_s.device) - start[ev_s]
    m = int(counts.max()) if n else 0
    momenta = torch.zeros(n, m, 4, dtype=dtype, device=device)
    momenta[ev_s, slot] = p4[order]
    type_s = torch.full((n, m), -1, dtype=i64, device=device)
    type_s[ev_s, slot] = types[order]
    charge_s = torch.zeros(n, m, dtype=i64, device=device)
    charge_s[ev_s, slot] = charge[order]
    mask = type_s >= 0
    if "MET" in chosen:
        met_pt = _per_event(src, "MET_pt", n)
        if (met_pt < 0).any():
            raise ValueError(f"{src.where('MET_pt')}: MET must be >= 0 GeV, got "
                             f"{int((met_pt < 0).sum())} negative values")
        if "MET_phi" not in src.keys:
            raise ValueError(f"{str(src.path)!r}: collection MET needs the {src.noun} 'MET_phi', "
                             "which the file does not have")
        met_phi = t(_per_event(src, "MET_phi", n))
        met_pt = t(met_pt)
        met = torch.stack([met_pt * torch.cos(met_phi), met_pt * torch.sin(met_phi)], -1)
    else:
        met = -momenta[..., 1:3].sum(1)
    return RecoEvents(
        momenta=momenta,
        types=type_s,
        charges=charge_s,
        mask=mask,
        particle_index=torch.full((n, m), -1, dtype=i64, device=device),
        met=met,
        counts=torch.stack([(type_s == c).sum(-1) for c in range(len(ObjectType))], -1),
        passed=torch.ones(n, dtype=torch.bool, device=device),
        hard_index=torch.arange(n, device=device),
    )


def read_nanoaod(
    path: str | os.PathLike,
    *,
    tree: str = "Events",
    collections: Sequence[str] | None = None,
    btag_threshold: float = 0.5,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> RecoEvents:
    """Read reconstructed events from a NanoAOD-style ROOT or HDF5 file.

    See the module docstring for the branch names and both layouts. The container is
    recognised by its first bytes (ROOT or HDF5), not by the file name.

    Args:
        path: the ``.root`` or ``.h5``/``.hdf5`` file.
        tree: TTree/RNTuple name (ROOT) or group name (HDF5; the root group when absent).
        collections: which of ``("Electron", "Muon", "Photon", "Jet", "MET")`` to read;
            default every collection whose counter (``nElectron``, ...) or ``MET_pt``
            the file has. Without MET, ``met`` is minus the vector sum of the objects'
            pT (the convention of :mod:`forward.detector`).
        btag_threshold: a float ``Jet_btag`` discriminant tags a jet as b when
            ``>= btag_threshold``; integer/bool flags tag when non-zero.
        dtype: floating dtype of the momenta and ``met`` (float32 branches are cast).
        device: device of the returned tensors (default CPU).

    Returns:
        :class:`~forward.detector.objects.RecoEvents` with n events and width m = the
        largest number of objects in an event.

    Raises:
        ValueError: not a ROOT/HDF5 file, a missing tree, no collection, a requested
            collection with a missing branch, counts that are negative, non-integer or
            do not match the values, non-finite values, pT, masses or MET below 0,
            lepton charges other than ±1, or zero events; the message names the file
            and the branch (dataset).
        FileNotFoundError: ``path`` does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r}: no such file")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype: expected a floating torch dtype, got {dtype!r}")
    kind = _container_format(path)
    if kind == "root":
        try:
            import uproot
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError("ROOT files need uproot and awkward: pip install 'invsim[io]'"
                              ) from err
        with uproot.open(path) as f:
            return _build(_RootSource(path, f, tree), collections, btag_threshold, dtype, device)
    if kind == "hdf5":
        from forward.io.hdf5 import _h5py

        with _h5py().File(path, "r") as f:
            return _build(_H5Source(path, f, tree), collections, btag_threshold, dtype, device)
    raise ValueError(f"{str(path)!r}: neither a ROOT nor an HDF5 file (read_nanoaod reads "
                     "NanoAOD-style ROOT TTrees and HDF5 groups)")
