"""Event sets to and from HDF5: lossless, versioned, never overwriting by accident.

Layout (format version 1)::

    /                 attrs: format = "invsim.EventSet", format_version, process, sqrt_s,
                             seed, cross_section, cross_section_error (NaN = none),
                             parameters, settings, metadata (JSON text)
    /hard/momenta     (n, k, 4)   /hard/x1, /hard/x2, /hard/weights  (n,)
    /hard/pids        (k,) or (n, k)   /hard/incoming_pids (n, 2), optional
    /reco/<field>     every tensor field of RecoEvents, optional group

Arrays are stored with their dtype (float64 stays float64), so a round trip is bit-exact.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch

from forward.detector.objects import RecoEvents
from forward.eventset import FORMAT_VERSION, EventSet
from forward.files import atomic_target

__all__ = ["load_hdf5", "save_hdf5"]

_FORMAT = "invsim.EventSet"
_HARD = ("momenta", "x1", "x2", "weights", "pids")


def _h5py():
    try:
        import h5py
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("HDF5 event files need h5py: pip install 'invsim[io]'") from err
    return h5py


def save_hdf5(events: EventSet, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write an event set to an HDF5 file.

    The file is written next to ``path`` under a temporary name and moved into place
    when complete, so an interrupted write never leaves a half-written ``path``.

    Args:
        events: the event set (tensors on any device; written from CPU copies).
        path: target file.
        overwrite: replace an existing file; without it an existing file is an error.

    Returns:
        The path written.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False.
    """
    h5py = _h5py()
    if not isinstance(events, EventSet):
        raise TypeError(f"events: expected an EventSet, got {type(events).__name__}")
    path = Path(path)
    with atomic_target(path, overwrite) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = _FORMAT
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["process"] = events.process
            f.attrs["sqrt_s"] = float(events.sqrt_s)
            f.attrs["seed"] = -1 if events.seed is None else int(events.seed)
            f.attrs["has_seed"] = events.seed is not None
            for name in ("cross_section", "cross_section_error"):
                v = getattr(events, name)
                f.attrs[name] = math.nan if v is None else float(v)
            for name in ("parameters", "settings", "metadata"):
                f.attrs[name] = json.dumps(getattr(events, name))
            hard = f.create_group("hard")
            for name in _HARD:
                hard.create_dataset(name, data=getattr(events, name).detach().cpu().numpy())
            if events.incoming_pids is not None:
                hard.create_dataset("incoming_pids", data=events.incoming_pids.cpu().numpy())
            if events.reco is not None:
                reco = f.create_group("reco")
                for name in RecoEvents.field_names():
                    reco.create_dataset(name, data=getattr(events.reco, name).cpu().numpy())
    return path


def _dataset(f, key: str, path: Path, device) -> torch.Tensor:
    if key not in f:
        raise ValueError(f"{str(path)!r}: missing required dataset {key!r}; the file is incomplete")
    return torch.from_numpy(f[key][()]).to(device)


def load_hdf5(path: str | os.PathLike, *, device: torch.device | str | None = None) -> EventSet:
    """Read an event set written by :func:`save_hdf5`.

    Args:
        path: the HDF5 file.
        device: device of the returned tensors (default CPU).

    Returns:
        The :class:`~forward.eventset.EventSet`, dtypes as written.

    Raises:
        ValueError: not an invsim event file, a newer/unknown format version (the message
            says which version the file has and which this code reads), or a missing
            required dataset.
    """
    h5py = _h5py()
    path = Path(path)
    device = torch.device("cpu") if device is None else device
    with h5py.File(path, "r") as f:
        if f.attrs.get("format") != _FORMAT:
            raise ValueError(f"{str(path)!r}: not an invsim event file (no format={_FORMAT!r})")
        version = f.attrs.get("format_version")
        if version is None or int(version) != version or not 1 <= int(version) <= FORMAT_VERSION:
            raise ValueError(
                f"{str(path)!r}: event-file format version {version} is not supported; this "
                f"version of invsim reads format versions 1 to {FORMAT_VERSION} (upgrade invsim "
                "to read newer files)"
            )
        for key in ("process", "sqrt_s", "parameters", "settings", "metadata"):
            if key not in f.attrs:
                raise ValueError(f"{str(path)!r}: missing required attribute {key!r}")
        hard = {name: _dataset(f, f"hard/{name}", path, device) for name in _HARD}
        incoming = (
            _dataset(f, "hard/incoming_pids", path, device) if "hard/incoming_pids" in f else None
        )
        reco = None
        if "reco" in f:
            reco = RecoEvents(
                **{n: _dataset(f, f"reco/{n}", path, device) for n in RecoEvents.field_names()}
            )
        attrs = f.attrs
        xs = [float(attrs.get(k, math.nan)) for k in ("cross_section", "cross_section_error")]
        return EventSet(
            process=str(attrs["process"]),
            sqrt_s=float(attrs["sqrt_s"]),
            incoming_pids=incoming,
            reco=reco,
            parameters=json.loads(attrs["parameters"]),
            settings=json.loads(attrs["settings"]),
            metadata=json.loads(attrs["metadata"]),
            cross_section=None if math.isnan(xs[0]) else xs[0],
            cross_section_error=None if math.isnan(xs[1]) else xs[1],
            seed=int(attrs["seed"]) if bool(attrs.get("has_seed", False)) else None,
            format_version=int(version),
            **hard,
        )
