"""Event sets to and from HDF5: lossless, versioned, never overwriting by accident.

Layout (format version 1)::

    /                 attrs: format = "invsim.EventSet", format_version, process, sqrt_s,
                             seed, cross_section, cross_section_error (NaN = none),
                             parameters, settings, metadata (JSON text)
    /hard/momenta     (n, k, 4)   /hard/x1, /hard/x2, /hard/weights  (n,)
    /hard/pids        (k,) or (n, k)   /hard/incoming_pids (n, 2), optional
    /hard/process_ids (n,), optional: per-event process id (EventSet.process_ids)
    /hard/weights_named (n, m), optional: the m named weights in pb (EventSet.weights_named),
                      their names in the root attribute ``weight_names`` (JSON list, in
                      column order); sealed like every dataset
    /reco/<field>     every tensor field of RecoEvents, optional group

Arrays are stored with their dtype (float64 stays float64), so a round trip is bit-exact.

Integrity (files written since this release; still format version 1, older readers
ignore it): the file starts with a 4096-byte HDF5 *user block* (bytes HDF5 leaves to the
application) holding ``invsim-integrity 1`` and a JSON line: the file's size, the
SHA-256 of each dataset's stored bytes with their offset and length, and the SHA-256 of
every other byte after the user block (HDF5 headers, attributes, B-trees). The root has
``integrity = "sha256-userblock"`` and the counts ``n_events`` and ``n_reco`` (-1
without reco). :func:`load_hdf5` checks the digests *before* HDF5 parses the file (a
corrupted file can crash the HDF5 library), naming the dataset whose bytes changed,
then checks every file's content (dtypes, counts, x1, x2 in (0, 1], finite momenta,
weights and MET, integer ids, masses >= 0). Files without the block (older invsim)
load after the content checks, with a one-time warning.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from forward._validation import check_path
from forward.detector.objects import RecoEvents
from forward.eventset import FORMAT_VERSION, EventSet
from forward.files import atomic_target

__all__ = ["load_hdf5", "save_hdf5", "verify_hdf5"]

_FORMAT = "invsim.EventSet"
_HARD = ("momenta", "x1", "x2", "weights", "pids")
_INTEGRITY = "sha256-userblock"
_USERBLOCK = 4096
_MAGIC = b"invsim-integrity 1\n"
_CHUNK = 1 << 23
_PROVENANCE = ("format", "format_version", "process", "sqrt_s", "seed", "has_seed",
               "cross_section", "cross_section_error", "parameters", "settings", "metadata")
# reco fields stored as integers / booleans (the rest are floating point)
_RECO_INTEGER = ("types", "charges", "particle_index", "counts", "hard_index")
_RECO_BOOL = ("mask", "passed")
_WARNED: set[str] = set()


def _hash_range(fh, start: int, end: int, h=None):
    """SHA-256 object updated with bytes [start, end) of the open file ``fh``."""
    h = hashlib.sha256() if h is None else h
    fh.seek(start)
    while start < end:
        block = fh.read(min(_CHUNK, end - start))
        if not block:
            break
        h.update(block)
        start += len(block)
    return h


def _array_digest(array: np.ndarray) -> str:
    """Hex SHA-256 of a C-contiguous array's raw bytes (= the bytes HDF5 stores for it:
    contiguous layout, native dtype)."""
    return hashlib.sha256(memoryview(np.ascontiguousarray(array)).cast("B")
                          if array.size else b"").hexdigest()


def _other_digest(fh, size: int, spans: dict[str, tuple[int, int]]) -> str:
    """SHA-256 of every byte after the user block outside the datasets' ``spans``
    (offset, length): HDF5's headers, attributes and B-trees."""
    rest = hashlib.sha256()
    pos = _USERBLOCK
    for start, length in sorted(spans.values()):
        _hash_range(fh, pos, start, rest)
        pos = start + length
    _hash_range(fh, pos, size, rest)
    return rest.hexdigest()


def _seal(path: Path, spans: dict[str, tuple[int, int]], digests: dict[str, str]) -> None:
    """Write the integrity block into the user block of the closed file ``path``.

    Args:
        path: the file.
        spans: (offset, length) of each dataset's stored bytes.
        digests: SHA-256 of each dataset's bytes (from the arrays written).
    """
    with open(path, "r+b") as fh:
        size = os.fstat(fh.fileno()).st_size
        table = {"size": size, "other": _other_digest(fh, size, spans),
                 "datasets": {k: [*spans[k], digests[k]] for k in spans}}
        text = _MAGIC + json.dumps(table, separators=(",", ":")).encode() + b"\n"
        if len(text) > _USERBLOCK:
            raise RuntimeError(f"{str(path)!r}: integrity block of {len(text)} bytes does not fit "
                               f"the {_USERBLOCK}-byte user block")
        fh.seek(0)
        fh.write(text)


def _integrity_block(path: Path) -> dict | None:
    """The file's integrity block, its size and HDF5 structures verified; None if none.

    Returns:
        ``{dataset: (offset, length, sha256)}`` of the block, or None when the file does
        not start with it.
    """
    with open(path, "rb") as fh:
        head = fh.read(_USERBLOCK)
        if not head.startswith(_MAGIC):
            return None
        where = f"{str(path)!r}"
        try:
            line = head[len(_MAGIC): head.index(b"\n", len(_MAGIC))]
            table = json.loads(line)
            size, rest = int(table["size"]), str(table["other"])
            datasets = {str(k): (int(v[0]), int(v[1]), str(v[2]))
                        for k, v in table["datasets"].items()}
            ok = all(_USERBLOCK <= o and o + n <= size for o, n, _ in datasets.values())
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as err:
            raise ValueError(f"{where}: the integrity block is damaged ({err}); the file is "
                             "corrupted") from None
        if not ok:
            raise ValueError(f"{where}: the integrity block is damaged (a dataset outside the "
                             "file); the file is corrupted")
        actual = os.fstat(fh.fileno()).st_size
        if actual != size:
            raise ValueError(f"{where}: {actual} bytes, its integrity block says {size}; "
                             + ("the file is truncated" if actual < size else
                                "the file is corrupted or was changed after invsim wrote it"))
        spans = {k: (o, n) for k, (o, n, _) in datasets.items()}
        if _other_digest(fh, size, spans) != rest:
            raise ValueError(f"{where}: HDF5 headers or attributes differ from their SHA-256; "
                             "the file is corrupted or was changed after invsim wrote it")
    return datasets


def verify_hdf5(path: str | os.PathLike) -> bool:
    """Check every byte of an event file against the integrity block in its user block.

    Reads the file without HDF5 (see the module docstring); :func:`load_hdf5` does the
    same, checking the datasets' bytes as it reads them.

    Args:
        path: the HDF5 file.

    Returns:
        True if verified, False if the file has no integrity block (an older file, or a
        block whose first line is damaged: :func:`load_hdf5` then looks at the root
        attribute ``integrity``).

    Raises:
        ValueError: the file's size or bytes differ from the block (the message names the
            dataset whose bytes changed, or says that HDF5's own structures did), or the
            block is damaged.
    """
    path = check_path(path)
    datasets = _integrity_block(path)
    if datasets is None:
        return False
    with open(path, "rb") as fh:
        bad = sorted(k for k, (o, n, d) in datasets.items()
                     if _hash_range(fh, o, o + n).hexdigest() != d)
    _refuse_datasets(path, bad)
    return True


def _refuse_datasets(path: Path, bad: list[str]) -> None:
    if bad:
        raise ValueError(f"{str(path)!r}, dataset {bad[0]!r}"
                         + (f" (and {bad[1:]})" if len(bad) > 1 else "")
                         + ": content differs from its SHA-256; the file is corrupted")


def _h5py():
    try:
        import h5py
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("HDF5 event files need h5py: pip install 'invsim[io]'") from err
    return h5py


def save_hdf5(events: EventSet, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write an event set to an HDF5 file.

    The file is written next to ``path`` under a temporary name and moved into place
    when complete (:func:`forward.files.atomic_target`), so an interrupted write never
    leaves a half-written ``path``. Every dataset carries the SHA-256 of its content
    and the root the counts and the SHA-256 of the provenance (module docstring).

    Args:
        events: the event set (tensors on any device; written from CPU copies).
        path: target file.
        overwrite: replace an existing file; without it an existing file is an error.

    Returns:
        The path written.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False.
        forward.files.OutputBusyError: another running process writes ``path``.
    """
    h5py = _h5py()
    if not isinstance(events, EventSet):
        raise TypeError(f"events: expected an EventSet, got {type(events).__name__}")
    path = check_path(path)
    arrays = {f"hard/{name}": getattr(events, name) for name in _HARD}
    if events.incoming_pids is not None:
        arrays["hard/incoming_pids"] = events.incoming_pids
    if events.process_ids is not None:
        arrays["hard/process_ids"] = events.process_ids
    if events.weights_named:
        arrays["hard/weights_named"] = torch.stack(list(events.weights_named.values()), -1)
    if events.reco is not None:
        arrays |= {f"reco/{name}": getattr(events.reco, name)
                   for name in RecoEvents.field_names()}
    arrays = {k: np.ascontiguousarray(t.detach().cpu().numpy()) for k, t in arrays.items()}
    with atomic_target(path, overwrite) as tmp, _pool() as pool:
        digests = {k: pool.submit(_array_digest, a) for k, a in arrays.items()}
        with h5py.File(tmp, "w", userblock_size=_USERBLOCK) as f:
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
            if events.weights_named:
                f.attrs["weight_names"] = json.dumps(list(events.weights_named))
            f.attrs["integrity"] = _INTEGRITY
            f.attrs["n_events"] = len(events)
            f.attrs["n_reco"] = -1 if events.reco is None else len(events.reco)
            spans = {}
            for key, data in arrays.items():
                ds = f.create_dataset(key, data=data)
                # an empty dataset has no storage (HDF5 then reports an undefined
                # offset); its zero bytes need no span
                if ds.id.get_storage_size() > 0 and ds.id.get_offset() is not None:
                    spans[key] = (ds.id.get_offset(), ds.id.get_storage_size())
        _seal(tmp, spans, {k: digests[k].result() for k in spans})
    return path


def _pool() -> ThreadPoolExecutor:
    """Threads hashing datasets while others are written or checked (hashlib releases
    the GIL on large buffers)."""
    return ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1))


def _dataset(f, key: str, path: Path) -> np.ndarray:
    """The array of dataset ``key``."""
    where = f"{str(path)!r}, dataset {key!r}"
    try:
        if key not in f:
            raise ValueError(f"{str(path)!r}: missing required dataset {key!r}; the file is "
                             "incomplete")
        ds = f[key]
        data = ds[()]
    except (OSError, KeyError, RuntimeError, TypeError) as err:
        raise ValueError(f"{where}: unreadable, the file is corrupted ({err})") from None
    if not isinstance(data, np.ndarray):
        raise ValueError(f"{where}: expected an array, got a scalar {data!r}")
    return data


def _check(path: Path, key: str, data: np.ndarray, kind: str, shape: tuple) -> None:
    """Dtype kind ('f' float, 'i' integer, 'b' bool) and shape (None = any) of a dataset."""
    where = f"{str(path)!r}, dataset {key!r}"
    ok = {"f": np.issubdtype(data.dtype, np.floating),
          "i": np.issubdtype(data.dtype, np.integer),
          "b": data.dtype == np.bool_}[kind]
    if not ok:
        want = {"f": "floating point", "i": "integer", "b": "boolean"}[kind]
        raise ValueError(f"{where}: expected {want} values, got dtype {data.dtype}")
    if len(shape) != data.ndim or any(w is not None and w != g for w, g in zip(shape, data.shape,
                                                                              strict=True)):
        want = "(" + ", ".join("*" if w is None else str(w) for w in shape) + \
            ("," if len(shape) == 1 else "") + ")"
        raise ValueError(f"{where}: expected shape {want}, got {data.shape}")
    # one reduction instead of a boolean array: NaN and inf propagate into the sum (a
    # finite overflow only triggers the exact check below)
    if kind == "f" and not np.isfinite(np.add.reduce(data, axis=None)) and \
            not np.isfinite(data).all():
        bad = int(np.argwhere(~np.isfinite(data))[0][0])
        raise ValueError(f"{where}: non-finite value (NaN or inf) in row {bad}")


def _check_masses(path: Path, key: str, p: np.ndarray) -> None:
    """E >= 0 and m² = E² - |p|² >= 0 (within rounding: -1e-4 E²)."""
    e = p[..., 0]
    with np.errstate(over="ignore", invalid="ignore"):  # huge values: refused, not warned
        slack = np.square(p) @ np.array([1 + 1e-4, -1, -1, -1], dtype=p.dtype)
    if not slack.min(initial=0.0) >= 0 or e.min(initial=0.0) < 0:
        with np.errstate(over="ignore", invalid="ignore"):
            m2 = e * e - p[..., 1] ** 2 - p[..., 2] ** 2 - p[..., 3] ** 2
        bad = (e < 0) | ~(slack >= 0)
        row = int(np.argwhere(bad)[0][0])
        worst = float(m2[np.unravel_index(np.argmax(bad), bad.shape)])
        raise ValueError(f"{str(path)!r}, dataset {key!r}: negative energy or mass² < 0 "
                         f"(E² - |p|² = {worst:.6g} GeV²) in row {row}")


def _validated(f, path: Path, block: dict | None) -> tuple[dict, np.ndarray | None,
                                                           dict | None]:
    """The hard, incoming and reco arrays of an open file, verified against the
    integrity ``block`` (hashed in threads while :func:`_checked` runs) and checked."""
    keys = [f"hard/{name}" for name in _HARD]
    for name in ("incoming_pids", "process_ids", "weights_named"):
        if f"hard/{name}" in f:
            keys.append(f"hard/{name}")
    if "reco" in f:
        keys += [f"reco/{name}" for name in RecoEvents.field_names()]
    arrays = {k: _dataset(f, k, path) for k in keys}
    if block is None:
        return _checked(f, path, arrays, False)
    with _pool() as pool:
        digests = {k: pool.submit(_array_digest, arrays[k]) for k in block if k in arrays}
        try:
            result, error = _checked(f, path, arrays, True), None
        except ValueError as err:
            result, error = None, err
        unlisted = sorted(k for k, a in arrays.items() if a.size and k not in block)
        _refuse_datasets(path, sorted(k for k, d in digests.items()
                                      if d.result() != block[k][2]) + unlisted)
    if error is not None:
        raise error
    return result


def _checked(f, path: Path, arrays: dict, verify: bool):
    """Dtypes, shapes, counts and ranges of the arrays read by :func:`_validated`."""
    hard = {name: arrays[f"hard/{name}"] for name in _HARD}
    mom = hard["momenta"]
    _check(path, "hard/momenta", mom, "f", (None, None, 4))
    n, k = mom.shape[:2]
    for name in ("x1", "x2", "weights"):
        _check(path, f"hard/{name}", hard[name], "f", (n,))
    for name in ("x1", "x2"):
        x = hard[name]
        if ((x <= 0) | (x > 1)).any():
            row = int(np.argwhere((x <= 0) | (x > 1))[0][0])
            raise ValueError(f"{str(path)!r}, dataset 'hard/{name}': expected momentum "
                             f"fractions in (0, 1], got {float(x[row])!r} in row {row}")
    _check(path, "hard/pids", hard["pids"], "i", (k,) if hard["pids"].ndim == 1 else (n, k))
    _check_masses(path, "hard/momenta", mom)
    incoming = arrays.get("hard/incoming_pids")
    if incoming is not None:
        _check(path, "hard/incoming_pids", incoming, "i", (n, 2))
    if "hard/process_ids" in arrays:
        hard["process_ids"] = arrays["hard/process_ids"]
        _check(path, "hard/process_ids", hard["process_ids"], "i", (n,))
    named = arrays.get("hard/weights_named")
    if named is not None:
        names = _weight_names(f, path)
        _check(path, "hard/weights_named", named, "f", (n, len(names)))
        hard["weights_named"] = dict(zip(names, named.T, strict=True))
    elif "weight_names" in f.attrs:
        raise ValueError(f"{str(path)!r}: attribute weight_names without the dataset "
                         "'hard/weights_named'; the file is incomplete")
    reco = None
    if "reco/momenta" in arrays:
        reco = {name: arrays[f"reco/{name}"] for name in RecoEvents.field_names()}
        _check(path, "reco/momenta", reco["momenta"], "f", (None, None, 4))
        nr, m = reco["momenta"].shape[:2]
        shapes = {"types": (nr, m), "charges": (nr, m), "mask": (nr, m),
                  "particle_index": (nr, m), "met": (nr, 2), "counts": (nr, None),
                  "passed": (nr,), "hard_index": (nr,)}
        for name, shape in shapes.items():
            kind = "i" if name in _RECO_INTEGER else "b" if name in _RECO_BOOL else "f"
            _check(path, f"reco/{name}", reco[name], kind, shape)
        _check_masses(path, "reco/momenta", reco["momenta"])
        hi = reco["hard_index"]
        if nr and (int(hi.min()) < 0 or int(hi.max()) >= n):
            raise ValueError(f"{str(path)!r}, dataset 'reco/hard_index': expected indices in "
                             f"[0, {n}), got values in [{int(hi.min())}, {int(hi.max())}]")
    if verify:
        counts = {"n_events": n, "n_reco": -1 if reco is None else len(reco["momenta"])}
        for key, got in counts.items():
            value = f.attrs.get(key)
            value = value.item() if isinstance(value, np.generic) else value
            if not isinstance(value, int) or value != got:
                raise ValueError(f"{str(path)!r}: attribute {key} = {value!r} but the "
                                 f"datasets hold {got} rows; the file is corrupted")
    return hard, incoming, reco


def _weight_names(f, path: Path) -> list[str]:
    """The names of the columns of ``hard/weights_named`` (root attribute
    ``weight_names``, a JSON list of distinct strings)."""
    text = f.attrs.get("weight_names")
    try:
        names = json.loads(text) if isinstance(text, str) else None
    except json.JSONDecodeError:
        names = None
    if not isinstance(names, list) or not all(isinstance(x, str) for x in names) or \
            len(set(names)) != len(names):
        raise ValueError(f"{str(path)!r}: attribute weight_names: expected a JSON list of "
                         f"distinct names of the columns of 'hard/weights_named', got {text!r}")
    return names


def load_hdf5(path: str | os.PathLike, *, device: torch.device | str | None = None) -> EventSet:
    """Read an event set written by :func:`save_hdf5`.

    Args:
        path: the HDF5 file.
        device: device of the returned tensors (default CPU).

    Returns:
        The :class:`~forward.eventset.EventSet`, dtypes as written.

    Raises:
        ValueError: not an invsim event file, a newer/unknown format version (the message
            says which version the file has and which this code reads), a missing
            required dataset, or a corrupted file: content that differs from its
            SHA-256, counts that do not match, a wrong dtype or shape, x1 or x2 outside
            (0, 1], non-finite momenta, weights or MET, negative masses. The message
            names the file and the dataset.
    """
    h5py = _h5py()
    path = check_path(path)
    device = torch.device("cpu") if device is None else device
    if not path.exists():
        raise FileNotFoundError(f"{str(path)!r}: no such file")
    block = _integrity_block(path)  # HDF5 structures checked before HDF5 parses them
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        if not path.exists():
            raise FileNotFoundError(f"{str(path)!r}: no such file") from None
        raise ValueError(f"{str(path)!r}: not a readable HDF5 file ({err})") from None
    try:
        return _load(f, path, device, block)
    except (OSError, KeyError, RuntimeError, UnicodeDecodeError, json.JSONDecodeError,
            TypeError) as err:
        raise ValueError(f"{str(path)!r}: unreadable, the file is corrupted "
                         f"({type(err).__name__}: {err})") from None
    finally:
        f.close()


def _load(f, path: Path, device, block: dict | None) -> EventSet:
    """The event set of an open invsim HDF5 file (see :func:`load_hdf5`)."""
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
    integrity = f.attrs.get("integrity")
    sealed = block is not None
    verify = integrity is not None or sealed
    if verify and not sealed:
        raise ValueError(f"{str(path)!r}: the integrity block in the file's first "
                         f"{_USERBLOCK} bytes is missing or damaged (the root attribute "
                         f"integrity = {integrity!r} says it has one); the file is corrupted")
    if verify and integrity != _INTEGRITY:
        raise ValueError(f"{str(path)!r}: unknown integrity scheme {integrity!r}; the file "
                         "is corrupted or newer than this invsim")
    if not verify and str(path.resolve()) not in _WARNED:
        _WARNED.add(str(path.resolve()))
        warnings.warn(f"{str(path)!r}: event file without content hashes (written by an "
                      "older invsim); its content is range-checked but not verified. Write "
                      "it again with save_hdf5 to add them", UserWarning, stacklevel=3)
    hard_np, inc_np, reco_np = _validated(f, path, block)

    def tensor(a):
        return torch.from_numpy(a).to(device)

    named_np = hard_np.pop("weights_named", {})
    hard = {k: tensor(v) for k, v in hard_np.items()}
    hard["weights_named"] = {k: tensor(np.ascontiguousarray(v)) for k, v in named_np.items()}
    incoming = None if inc_np is None else tensor(inc_np)
    reco = None
    if reco_np is not None:
        try:
            reco = RecoEvents(**{k: tensor(v) for k, v in reco_np.items()})
        except (ValueError, TypeError) as err:
            raise ValueError(f"{str(path)!r}, group 'reco': {err}") from None
    attrs = f.attrs
    xs = [float(attrs.get(k, math.nan)) for k in ("cross_section", "cross_section_error")]
    return _event_set(path, dict(
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
    ))


def _event_set(path: Path, fields: dict) -> EventSet:
    try:
        return EventSet(**fields)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{str(path)!r}: {err}") from None
