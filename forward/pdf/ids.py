"""LHAPDF set ids: ``315000`` -> ``("NNPDF31_lo_as_0118", 0)``, as ``lhapdf.mkPDF(id)``.

LHAPDF numbers every member of every set: a set's ``SetIndex`` is the id of its member
0 and member m has the id ``SetIndex + m``. The ids are resolved from, in order:

1. ``pdfsets.index`` files (LHAPDF's list, lines ``ID NAME VERSION``) in the searched
   places (:func:`forward.pdf.discovery.search_places`);
2. the ``SetIndex`` and ``NumMembers`` of the ``.info`` files of installed set folders;
3. :data:`KNOWN_SET_IDS`, the ids of the sets that ``pythia8mc`` ships as bare member
   files without a ``.info`` (taken from LHAPDF's published index).

Nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

from forward.pdf.discovery import PDFSetNotFoundError, search_places
from forward.pdf.grid import read_info

__all__ = ["KNOWN_SET_IDS", "lhapdf_id", "resolve_lhapdf_id", "set_ids"]

#: set name -> (SetIndex, NumMembers) from LHAPDF's index, for sets Pythia ships bare
KNOWN_SET_IDS: dict[str, tuple[int, int]] = {
    "NNPDF31_lo_as_0118": (315000, 101),
    "NNPDF31_lo_as_0130": (315200, 101),
    "NNPDF23_lo_as_0130_qed": (247000, 101),
}


def _read_index(path: Path) -> dict[str, tuple[int, int | None]]:
    """Sets of a ``pdfsets.index`` file: name -> (SetIndex, None)."""
    out: dict[str, tuple[int, int | None]] = {}
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return out
    for line in lines:
        parts = line.split()
        if len(parts) >= 2 and parts[0].isdigit():
            out.setdefault(parts[1], (int(parts[0]), None))
    return out


def set_ids() -> dict[str, tuple[int, int | None]]:
    """Every set whose LHAPDF id is known here: name -> (SetIndex, NumMembers or None).

    Earlier sources (see the module docstring) win over later ones.
    """
    found: dict[str, tuple[int, int | None]] = {}
    folders = [f for _, f in search_places() if f is not None and f.is_dir()]
    for folder in folders:
        for name, entry in _read_index(folder / "pdfsets.index").items():
            found.setdefault(name, entry)
    for folder in folders:
        for info_file in folder.glob("*/*.info"):
            if info_file.stem != info_file.parent.name or info_file.stem in found:
                continue
            try:
                info = read_info(info_file)
            except (OSError, ValueError, UnicodeDecodeError):
                continue
            index = info.get("SetIndex")
            if isinstance(index, int) and not isinstance(index, bool):
                members = info.get("NumMembers")
                found[info_file.stem] = (index, members if isinstance(members, int) else None)
    for name, entry in KNOWN_SET_IDS.items():
        found.setdefault(name, entry)
    return found


def resolve_lhapdf_id(lhapdf_id: int) -> tuple[str, int]:
    """The (set name, member) of an LHAPDF id.

    Args:
        lhapdf_id: an LHAPDF id >= 0, e.g. 315000 (NNPDF31_lo_as_0118, member 0).

    Returns:
        (set name, member number); the member need not be installed.

    Raises:
        TypeError: not an int.
        ValueError: negative.
        PDFSetNotFoundError: no known set has that id (the message says where ids come
            from).
    """
    if isinstance(lhapdf_id, bool) or not isinstance(lhapdf_id, int):
        raise TypeError(f"lhapdf_id: expected an int, got {type(lhapdf_id).__name__}")
    if lhapdf_id < 0:
        raise ValueError(f"lhapdf_id: expected an id >= 0, got {lhapdf_id}")
    # as LHAPDF: the set with the largest SetIndex <= id, if the id is among its members
    best = None
    for name, (index, members) in set_ids().items():
        if index <= lhapdf_id and (best is None or index > best[1]):
            best = (name, index, members)
    if best is not None and best[2] is not None and lhapdf_id >= best[1] + best[2]:
        best = None
    if best is None:
        known = ", ".join(f"{n}: {i}" for n, (i, _) in KNOWN_SET_IDS.items())
        raise PDFSetNotFoundError(
            f"lhapdf_id: no known PDF set has the LHAPDF id {lhapdf_id}. Ids come from "
            "pdfsets.index files and the SetIndex of .info files in the searched places "
            "(forward.pdf.search_places()), and for Pythia's bare copies from "
            f"forward.pdf.ids.KNOWN_SET_IDS ({known}). "
            "Load the set by name instead, or install its LHAPDF folder with its .info."
        )
    return best[0], lhapdf_id - best[1]


def lhapdf_id(name: str, member: int = 0) -> int | None:
    """The LHAPDF id of a member of a set, or None when the set's id is not known here."""
    entry = set_ids().get(name)
    return None if entry is None else entry[0] + int(member)
