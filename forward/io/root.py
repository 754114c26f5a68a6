"""Event sets to ROOT files through ``uproot`` (flat TTrees), and back.

Trees (one branch per variable; objects as jagged branches with a counter):

* ``hard``: ``event_index``, ``weight``, ``x1``, ``x2``, ``incoming_pid1/2`` (when
  known), ``process_id`` (when known), ``nhard`` and ``hard_pid``, ``hard_E``,
  ``hard_px``, ``hard_py``, ``hard_pz``; the named weights (``EventSet.weights_named``)
  as ``weight_0``, ``weight_1``, ... in order, their names in the provenance
  (``weight_names``), since names such as ``NNPDF31_lo_as_0130/3`` are not branch
  names.
* ``reco`` (when present): ``hard_index``, ``passed``, ``met_x``, ``met_y``, ``nreco`` and
  ``reco_E``, ``reco_px``, ``reco_py``, ``reco_pz``, ``reco_type``, ``reco_charge``,
  ``reco_particle_index`` (reconstructed objects only, pT-ordered).
* ``invsim``: a TObjString with the provenance as JSON (process, parameters, settings,
  σ, seed, sqrt_s, metadata, format version).

Values keep their dtype, so :func:`read_root` gives back the same numbers bit for bit.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from forward._validation import check_path
from forward.detector.objects import RecoEvents
from forward.eventset import FORMAT_VERSION, EventSet
from forward.files import atomic_target

__all__ = ["read_root", "write_root"]


def _modules():
    try:
        import awkward as ak
        import uproot
    except ImportError as err:
        raise ImportError(
            "ROOT export needs uproot and awkward: pip install uproot awkward "
            "(or pip install 'invsim[io]')"
        ) from err
    return uproot, ak


def write_root(events: EventSet, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write an event set to a ROOT file with flat TTrees (see module docstring).

    Args:
        events: the event set.
        path: target ``.root`` file.
        overwrite: replace an existing file; without it an existing file is an error.

    Raises:
        ImportError: uproot/awkward missing (message has the pip command).
        FileExistsError: ``path`` exists and ``overwrite`` is False.
    """
    uproot, ak = _modules()
    if not isinstance(events, EventSet):
        raise TypeError(f"events: expected an EventSet, got {type(events).__name__}")
    path = check_path(path)
    n, k = events.momenta.shape[:2]
    p = events.momenta.detach().cpu().numpy()

    def jag(a, counts):
        return ak.unflatten(a.reshape(-1), counts)

    counts = [k] * n
    hard = {
        "event_index": torch.arange(n).numpy(),
        "weight": events.weights.detach().cpu().numpy(),
        "x1": events.x1.detach().cpu().numpy(),
        "x2": events.x2.detach().cpu().numpy(),
        "hard": ak.zip({
            "pid": jag(events.pids_per_event.cpu().numpy(), counts),
            "E": jag(p[..., 0], counts), "px": jag(p[..., 1], counts),
            "py": jag(p[..., 2], counts), "pz": jag(p[..., 3], counts),
        }),
    }
    if events.incoming_pids is not None:
        hard["incoming_pid1"] = events.incoming_pids[:, 0].cpu().numpy()
        hard["incoming_pid2"] = events.incoming_pids[:, 1].cpu().numpy()
    if events.process_ids is not None:
        hard["process_id"] = events.process_ids.cpu().numpy()
    for j, w in enumerate(events.weights_named.values()):
        hard[f"weight_{j}"] = w.detach().cpu().numpy()
    prov = {
        "format_version": FORMAT_VERSION, "process": events.process,
        "sqrt_s": events.sqrt_s, "parameters": events.parameters, "settings": events.settings,
        "cross_section": events.cross_section, "cross_section_error": events.cross_section_error,
        "seed": events.seed, "metadata": events.metadata,
        "weight_names": list(events.weights_named),
    }
    with atomic_target(path, overwrite, suffix=".root") as tmp:
        with uproot.recreate(tmp) as f:
            _write_tree(f, "hard", hard)
            if events.reco is not None:
                r = events.reco
                mask = r.mask.cpu().numpy()
                c = mask.sum(-1)
                rp = r.momenta.detach().cpu().numpy()[mask]
                _write_tree(f, "reco", {
                    "hard_index": r.hard_index.cpu().numpy(),
                    "passed": r.passed.cpu().numpy(),
                    "met_x": r.met[:, 0].detach().cpu().numpy(),
                    "met_y": r.met[:, 1].detach().cpu().numpy(),
                    "reco": ak.zip({
                        "E": ak.unflatten(rp[:, 0], c), "px": ak.unflatten(rp[:, 1], c),
                        "py": ak.unflatten(rp[:, 2], c), "pz": ak.unflatten(rp[:, 3], c),
                        "type": ak.unflatten(r.types.cpu().numpy()[mask], c),
                        "charge": ak.unflatten(r.charges.cpu().numpy()[mask], c),
                        "particle_index": ak.unflatten(r.particle_index.cpu().numpy()[mask], c),
                    }),
                })
            f["invsim"] = json.dumps(prov)
    return path


def _write_tree(f, name: str, data: dict) -> None:
    """One TTree with flat branch names: records of jagged arrays become ``<outer>_<field>``
    with the counter ``n<outer>``."""
    types = {k: v.type if hasattr(v, "layout") else v.dtype for k, v in data.items()}
    tree = f.mktree(name, types, field_name=lambda outer, inner: f"{outer}_{inner}",
                    counter_name=lambda outer: f"n{outer}")
    tree.extend(data)


def read_root(path: str | os.PathLike, *, device: torch.device | str | None = None) -> EventSet:
    """Read a file written by :func:`write_root` back into an :class:`EventSet`.

    Reco objects come back packed to the front of m = k slots (as :mod:`forward.detector`
    writes them); per-type counts are recomputed from the types.

    Raises:
        ValueError: no ``invsim`` provenance string or a newer format version.
    """
    uproot, ak = _modules()
    path = check_path(path)
    with uproot.open(path) as f:
        if "invsim" not in f:
            raise ValueError(f"{str(path)!r}: no 'invsim' provenance; not written by write_root")
        prov = json.loads(str(f["invsim"]))
        if prov.get("format_version", 0) > FORMAT_VERSION:
            raise ValueError(f"{str(path)!r}: format version {prov['format_version']}; this code "
                             f"reads versions up to {FORMAT_VERSION}")
        h = f["hard"].arrays(library="ak")
        reco_arr = f["reco"].arrays(library="ak") if "reco" in f else None

    def t(a):
        return torch.from_numpy(ak.to_numpy(a).copy()).to(device)

    n = len(h)
    k = int(ak.max(ak.num(h["hard_pid"]))) if n else 0
    mom = torch.stack([t(ak.flatten(h[f"hard_{c}"])) for c in ("E", "px", "py", "pz")], -1)
    pids = t(ak.flatten(h["hard_pid"])).reshape(n, k)
    if n and bool((pids == pids[0]).all()):
        pids = pids[0].clone()
    inc = None
    if "incoming_pid1" in h.fields:
        inc = torch.stack([t(h["incoming_pid1"]), t(h["incoming_pid2"])], -1)
    ids = t(h["process_id"]) if "process_id" in h.fields else None
    names = prov.get("weight_names", [])
    missing = [f"weight_{j}" for j in range(len(names)) if f"weight_{j}" not in h.fields]
    if missing:
        raise ValueError(f"{str(path)!r}: tree 'hard' lacks the branches {missing} of the "
                         f"named weights {names}; the file is incomplete")
    named = {name: t(h[f"weight_{j}"]) for j, name in enumerate(names)}
    reco = None
    if reco_arr is not None:
        reco = _reco_from_arrays(reco_arr, k, mom.dtype, device, t, ak)
    return EventSet(
        process=prov["process"], momenta=mom.reshape(n, k, 4), x1=t(h["x1"]), x2=t(h["x2"]),
        pids=pids, sqrt_s=prov["sqrt_s"], weights=t(h["weight"]), incoming_pids=inc, reco=reco,
        parameters=prov["parameters"], settings=prov["settings"],
        cross_section=prov["cross_section"], cross_section_error=prov["cross_section_error"],
        seed=prov["seed"], metadata=prov["metadata"], format_version=prov["format_version"],
        weights_named=named, process_ids=ids,
    )


def _reco_from_arrays(r, m, dtype, device, t, ak) -> RecoEvents:
    n = len(r)
    counts = t(ak.num(r["reco_E"])).to(torch.int64)
    mask = torch.arange(m, device=device)[None, :] < counts[:, None]
    mom = torch.zeros(n, m, 4, dtype=dtype, device=device)
    mom[mask] = torch.stack([t(ak.flatten(r[f"reco_{c}"])) for c in ("E", "px", "py", "pz")], -1)

    def slots(name, fill):
        flat = t(ak.flatten(r[name]))
        out = torch.full((n, m), fill, dtype=flat.dtype, device=device)
        out[mask] = flat
        return out

    types = slots("reco_type", -1)
    per_type = torch.stack([(types == c).sum(-1) for c in range(5)], -1)
    return RecoEvents(
        momenta=mom, types=types, charges=slots("reco_charge", 0), mask=mask,
        particle_index=slots("reco_particle_index", -1),
        met=torch.stack([t(r["met_x"]), t(r["met_y"])], -1), counts=per_type,
        passed=t(r["passed"]), hard_index=t(r["hard_index"]),
    )
