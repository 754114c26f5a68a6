"""One entry point for writing an event set: :func:`write_events` (format by name or suffix).

=========== ==================== =====================================================
format       suffixes             written by
=========== ==================== =====================================================
``hdf5``     ``.h5``, ``.hdf5``   :func:`~forward.io.hdf5.save_hdf5` (hard + reco, sealed)
``lhe``      ``.lhe``, ``.lhe.gz`` :func:`~forward.io.lhe.write_lhe` (hard events only)
``root``     ``.root``            :func:`~forward.io.root.write_root` (hard + reco)
=========== ==================== =====================================================

Every format keeps the named weights (``EventSet.weights_named``).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["EVENT_FORMATS", "event_format", "write_events"]

#: format name -> the file-name endings that imply it
EVENT_FORMATS: dict[str, tuple[str, ...]] = {
    "hdf5": (".h5", ".hdf5"),
    "lhe": (".lhe", ".lhe.gz"),
    "root": (".root",),
}


def event_format(path: str | os.PathLike, fmt: str | None = None) -> str:
    """The format of an event file: ``fmt`` checked against the name, or from the name.

    Args:
        path: the file name.
        fmt: ``"hdf5"``, ``"lhe"``, ``"root"`` or None (from the suffix).

    Returns:
        The format name.

    Raises:
        ValueError: an unknown ``fmt``; a suffix that implies another format than
            ``fmt``; no ``fmt`` and a suffix that implies none. The message names both.
    """
    if fmt is not None and fmt not in EVENT_FORMATS:
        raise ValueError(f"fmt: expected one of {sorted(EVENT_FORMATS)}, got {fmt!r}")
    name = Path(path).name.lower()
    implied = next((f for f, ends in EVENT_FORMATS.items() if name.endswith(ends)), None)
    if fmt is None and implied is None:
        known = ", ".join(e for ends in EVENT_FORMATS.values() for e in ends)
        raise ValueError(f"fmt: {str(path)!r} has no event-file suffix ({known}); name the "
                         f"format ({', '.join(EVENT_FORMATS)})")
    if fmt is not None and implied is not None and implied != fmt:
        raise ValueError(f"fmt: {fmt!r} does not match the file name {str(path)!r}, which "
                         f"implies {implied!r}")
    return fmt or implied


def write_events(events, path: str | os.PathLike, *, fmt: str | None = None,
                 overwrite: bool = False) -> Path:
    """Write an event set as HDF5, LHE or ROOT (see the module docstring).

    Args:
        events: a :class:`~forward.eventset.EventSet` (LHE needs ``incoming_pids``).
        path: target file.
        fmt: ``"hdf5"``, ``"lhe"``, ``"root"`` or None (from the suffix,
            :func:`event_format`).
        overwrite: replace an existing file.

    Returns:
        The path written.

    Raises:
        ValueError: as :func:`event_format` and the writer chosen.
        FileExistsError: ``path`` exists and ``overwrite`` is False.
    """
    from forward.io.hdf5 import save_hdf5
    from forward.io.lhe import write_lhe
    from forward.io.root import write_root

    writer = {"hdf5": save_hdf5, "lhe": write_lhe, "root": write_root}[event_format(path, fmt)]
    return writer(events, path, overwrite=overwrite)
