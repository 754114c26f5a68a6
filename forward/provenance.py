"""Provenance records: how an output was made, stored in every file invsim writes.

:func:`provenance` returns one JSON-ready dict (format ``provenance_version`` 1)::

    {"provenance_version": 1,
     "invsim_version": "0.1.0", "python": "3.11.4", "torch": "2.3.1",
     "process": "drell-yan", "settings": {...}, "parameters": {"mzp": 2000.0, ...},
     "pdf": {"set": "NNPDF31_lo_as_0118", "member": 0, "sha256": "..."},
     "seed": 1, "device": "cpu",
     "command": ["invsim", "generate", "drell-yan", ...],
     "created_utc": "2026-12-07T12:00:00+00:00",
     "inputs": {"card.json": "<sha256>", "model_dir": "<sha256 of its files>"},
     ...extra keys}

It is host-independent: no host name, user, working directory or process id, so two
runs of the same command on two machines differ only in ``created_utc`` (and in the
input paths when they are given differently). ``command`` is the command line when the
output is made by the ``invsim`` command (:func:`command_line`), else None. Input
files are hashed with SHA-256; a directory (a model directory) is hashed as the SHA-256
of the sorted lines ``relative/path<TAB>sha256`` of its files, so it changes when any
file changes.

Where it is stored: event files (``metadata["provenance"]``, inside the HDF5 root's
``metadata`` attribute that the integrity block seals), model directories
(``mem.json["provenance"]``), scans (``scan.json["provenance"]`` and the ``scan.nc``
attribute ``provenance``, JSON text), posteriors (the NetCDF root attribute
``provenance``, JSON text) and the demo report (``results.json["provenance"]``).
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = [
    "PROVENANCE_VERSION",
    "command_line",
    "describe_pdf",
    "input_hashes",
    "path_sha256",
    "provenance",
    "recording_command",
]

#: format version of the record
PROVENANCE_VERSION = 1

#: the command line of the ``invsim`` command now running (None outside it)
_COMMAND: list[str] | None = None


def command_line() -> list[str] | None:
    """The ``invsim`` command line being run (``["invsim", "generate", ...]``), or None
    when no ``invsim`` command is running (library use)."""
    return None if _COMMAND is None else list(_COMMAND)


@contextlib.contextmanager
def recording_command(argv: Iterable[str]):
    """Within the block, :func:`command_line` returns ``argv`` (used by the CLI).

    Args:
        argv: the command line, program name first.

    Raises:
        TypeError: ``argv`` is not an iterable of strings.
    """
    global _COMMAND
    argv = list(argv)
    if not all(isinstance(a, str) for a in argv):
        raise TypeError(f"argv: expected strings, got {argv!r}")
    old, _COMMAND = _COMMAND, argv
    try:
        yield
    finally:
        _COMMAND = old


def path_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, or of a directory's files (see the module docstring).

    Raises:
        FileNotFoundError: ``path`` does not exist.
    """
    from forward.files import sha256_file

    p = Path(path)
    if p.is_dir():
        h = hashlib.sha256()
        for f in sorted(q for q in p.rglob("*") if q.is_file()):
            h.update(f"{f.relative_to(p).as_posix()}\t{sha256_file(f)}\n".encode())
        return h.hexdigest()
    if not p.exists():
        raise FileNotFoundError(f"path: no such file or directory {os.fspath(path)!r}")
    return sha256_file(p)


def input_hashes(inputs: Iterable | Mapping | None) -> dict[str, str]:
    """``{path as given: SHA-256}`` of the existing files and directories in ``inputs``.

    Args:
        inputs: paths (None entries and entries that are not existing paths, such as
            the card name ``"cms"`` or ``module:function``, are skipped; for
            ``file.py:function`` the file is hashed), or a mapping label -> path.

    Returns:
        The hashes, in the order given.
    """
    if inputs is None:
        return {}
    items = inputs.items() if isinstance(inputs, Mapping) else ((None, i) for i in inputs)
    out = {}
    for label, item in items:
        if item is None or not isinstance(item, (str, os.PathLike)):
            continue
        text = os.fspath(item)
        for candidate in (text, text.rpartition(":")[0]):
            if candidate and os.path.exists(candidate):
                out[text if label is None else str(label)] = path_sha256(candidate)
                break
    return out


def describe_pdf(pdf) -> dict | None:
    """Set name, member and grid-file SHA-256 of a PDF object, name or LHAPDF id.

    Args:
        pdf: an object with ``set_name`` and ``member`` (:class:`forward.pdf.PDF`), a set
            name ``"NAME"`` / ``"NAME/MEMBER"``, an LHAPDF id (int), or None.

    Returns:
        ``{"set": str, "member": int, "sha256": str | None}`` (``"lhapdf_id"`` too for an
        id; ``sha256`` None when the grid file is not found), or None for None or an
        object that names no set.
    """
    if pdf is None or isinstance(pdf, bool):
        return None
    out: dict = {}
    if isinstance(pdf, str) and pdf.strip().isdigit():
        pdf = int(pdf.strip())
    if hasattr(pdf, "set_name"):
        out = {"set": str(pdf.set_name), "member": int(getattr(pdf, "member", 0))}
    elif isinstance(pdf, int):
        out = {"lhapdf_id": int(pdf)}
        with contextlib.suppress(Exception):  # an unknown id is reported elsewhere
            from forward.pdf.ids import resolve_lhapdf_id

            name, member = resolve_lhapdf_id(pdf)
            out |= {"set": name, "member": int(member)}
    elif isinstance(pdf, str):
        name, sep, member = pdf.strip().partition("/")
        out = {"set": name, "member": int(member) if sep and member.isdigit() else 0}
    else:
        return {"set": None, "member": None, "object": type(pdf).__name__, "sha256": None}
    out["sha256"] = None
    if "set" in out:
        with contextlib.suppress(Exception):  # a missing grid is reported elsewhere
            from forward.pdf.discovery import find_member

            out["sha256"] = path_sha256(find_member(out["set"], out["member"]).data_file)
    return out


def _plain(value):
    """A JSON-safe copy: containers recursively, numbers and tensors as floats/lists."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return _plain(tolist())
    return str(value)


def provenance(*, process=None, settings: Mapping | None = None,
               parameters: Mapping | None = None, pdf=None, seed: int | None = None,
               device=None, inputs: Iterable | Mapping | None = None,
               command: list[str] | None = None, **extra) -> dict:
    """The provenance record of an output (format in the module docstring).

    Args:
        process: registry name of the process, or a process object (its registered
            name and, unless given, its settings and ``pdf`` setting are recorded).
        settings: the process's settings.
        parameters: parameter values (floats, GeV where masses).
        pdf: PDF object, set name or LHAPDF id (see :func:`describe_pdf`); default the
            process's ``pdf`` setting.
        seed: the seed of the run.
        device: the torch device.
        inputs: the input files and directories (see :func:`input_hashes`).
        command: the command line; default :func:`command_line`.
        **extra: more JSON-ready entries (e.g. ``method="nuts"``).

    Returns:
        The record, a JSON-serialisable dict.

    Raises:
        TypeError: ``seed`` is not an integer or None.
        FileNotFoundError: an input disappeared while being hashed.
    """
    import torch

    from forward import __version__

    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise TypeError(f"seed: expected an integer or None, got {seed!r}")
    name = process
    if process is not None and not isinstance(process, str):
        from forward.processes import process_name, process_settings

        with contextlib.suppress(Exception):
            settings = process_settings(process) if settings is None else settings
        try:
            name = process_name(process)
        except Exception:  # an unregistered process object
            name = type(process).__name__
        if pdf is None:
            pdf = getattr(process, "pdf", None)
    elif pdf is None and settings:
        pdf = settings.get("pdf")
    if pdf is None and isinstance(name, str):
        with contextlib.suppress(Exception):  # the registered class's default pdf
            from forward.processes import get_process

            pdf = getattr(get_process(name, **dict(settings or {})), "pdf", None)
    record = {
        "provenance_version": PROVENANCE_VERSION,
        "invsim_version": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "process": name,
        "settings": _plain(dict(settings or {})),
        "parameters": _plain(dict(parameters or {})),
        "pdf": describe_pdf(pdf),
        "seed": seed,
        "device": None if device is None else str(device),
        "command": command_line() if command is None else list(command),
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"),
        "inputs": input_hashes(inputs),
    }
    record.update({k: _plain(v) for k, v in extra.items()})
    return record
