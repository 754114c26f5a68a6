"""Where PDF sets live: LHAPDF data folders and the grids the ``pythia8mc`` wheel installs.

Places searched, in this order (each read when called, nothing cached):

1. ``LHAPDF_DATA_PATH`` (colon-separated folders), then the older ``LHAPDF_DATA_PREFIX``;
2. the paths of the LHAPDF installation, when the ``lhapdf`` module is importable;
3. the ``share/Pythia8/pdfdata`` folder of the installed ``pythia8mc`` distribution
   (located from its installed-files record, then from the interpreter's data
   prefixes; ``PYTHIA8DATA`` pointing at Pythia's ``xmldoc`` also works).

A set ``NAME`` is found either as an LHAPDF set folder ``<place>/NAME/`` holding
``NAME.info`` and ``NAME_0000.dat``, ``NAME_0001.dat``, ... or, as in Pythia's
``pdfdata``, as a bare member file ``<place>/NAME_0000.dat`` (no ``.info``).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import site
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "PDFSetNotFoundError",
    "SetLocation",
    "available_sets",
    "find_member",
    "installed_members",
    "search_places",
]

_MEMBER = re.compile(r"^(?P<name>.+)_(?P<member>\d{4})\.dat$")


class PDFSetNotFoundError(FileNotFoundError):
    """A PDF set or member is in none of the searched places."""


@dataclass(frozen=True)
class SetLocation:
    """Files of one set member.

    Attributes:
        set_name: the set's name.
        member: member number.
        data_file: the member's ``lhagrid1`` file.
        info_file: the set's ``.info`` file, or None (Pythia's bare copies).
    """

    set_name: str
    member: int
    data_file: Path
    info_file: Path | None


def _pythia_pdfdata() -> list[Path]:
    """Candidate ``share/Pythia8/pdfdata`` folders of the ``pythia8mc`` wheel."""
    found: list[Path] = []
    try:
        dist = importlib.metadata.distribution("pythia8mc")
    except importlib.metadata.PackageNotFoundError:
        dist = None
    if dist is not None:
        for f in dist.files or ():
            if "pdfdata" in f.parts:
                parts = f.parts[: f.parts.index("pdfdata") + 1]
                found.append(Path(dist.locate_file(Path(*parts))).resolve())
                break
    env = os.environ.get("PYTHIA8DATA")
    if env:
        found.append((Path(env) / ".." / "pdfdata").resolve())
    prefixes = [sysconfig.get_path("data"), sys.prefix, sys.base_prefix, site.getuserbase()]
    spec = importlib.util.find_spec("pythia8mc") if dist is not None else None
    if spec is not None and spec.origin and len(Path(spec.origin).resolve().parents) > 3:
        # <prefix>/lib/pythonX.Y/site-packages/pythia8mc*.so -> <prefix>
        prefixes.append(str(Path(spec.origin).resolve().parents[3]))
    if spec is not None and spec.origin:
        # ``pip install --target DIR``: DIR/pythia8mc*.so beside DIR/share
        prefixes.append(str(Path(spec.origin).resolve().parent))
    for prefix in prefixes:
        if prefix:
            found.append(Path(prefix) / "share" / "Pythia8" / "pdfdata")
    return found


def search_places() -> list[tuple[str, Path | None]]:
    """Every place searched for PDF sets, in order, as (origin, folder).

    A folder is None when its origin is absent (e.g. ``LHAPDF_DATA_PATH`` unset);
    duplicates are dropped. Folders are listed whether or not they exist.
    """
    places: list[tuple[str, Path | None]] = []
    for var in ("LHAPDF_DATA_PATH", "LHAPDF_DATA_PREFIX"):
        value = os.environ.get(var)
        if value:
            places += [(var, Path(p)) for p in value.split(os.pathsep) if p]
        elif var == "LHAPDF_DATA_PATH":
            places.append((f"{var} (not set)", None))
    if importlib.util.find_spec("lhapdf") is not None:
        try:
            import lhapdf  # type: ignore[import-not-found]

            places += [("lhapdf.paths()", Path(p)) for p in lhapdf.paths()]
        except Exception as err:  # a broken installation should not stop the search
            places.append((f"lhapdf module (failed: {err})", None))
    else:
        places.append(("lhapdf module (not installed)", None))
    pythia = _pythia_pdfdata()
    if pythia:
        places += [("pythia8mc pdfdata", p) for p in pythia]
    else:
        places.append(("pythia8mc pdfdata (pythia8mc not installed)", None))
    seen: set[Path] = set()
    out = []
    for origin, path in places:
        if path is not None:
            key = path.resolve() if path.exists() else path
            if key in seen:
                continue
            seen.add(key)
        out.append((origin, path))
    return out


def _describe(places: list[tuple[str, Path | None]]) -> str:
    lines = []
    for origin, path in places:
        if path is None:
            lines.append(f"  - {origin}")
        else:
            lines.append(f"  - {origin}: {path}" + ("" if path.is_dir() else " (missing)"))
    return "\n".join(lines)


def find_member(name: str, member: int = 0) -> SetLocation:
    """Locate member ``member`` of set ``name``.

    Args:
        name: set name, e.g. ``"NNPDF31_lo_as_0118"``.
        member: member number, >= 0.

    Returns:
        The member's files.

    Raises:
        PDFSetNotFoundError: the set or member is nowhere; the message lists every
            searched place and how to get sets.
    """
    fname = f"{name}_{member:04d}.dat"
    places = search_places()
    set_seen: list[Path] = []
    for _, folder in places:
        if folder is None or not folder.is_dir():
            continue
        set_dir = folder / name
        if set_dir.is_dir():
            info = set_dir / f"{name}.info"
            if (set_dir / fname).is_file():
                return SetLocation(name, member, set_dir / fname, info if info.is_file() else None)
            set_seen.append(set_dir)
        if (folder / fname).is_file():
            info = folder / f"{name}.info"
            return SetLocation(name, member, folder / fname, info if info.is_file() else None)
        if (folder / f"{name}_0000.dat").is_file():
            set_seen.append(folder)
    what = f"member {member} ({fname}) of PDF set {name!r}" if set_seen else f"PDF set {name!r}"
    hint = (
        f"\nThe set exists in {', '.join(map(str, set_seen))} but not this member."
        if set_seen
        else ""
    )
    raise PDFSetNotFoundError(
        f"Could not find {what}. Searched:\n{_describe(places)}{hint}\n"
        "To get sets: `pip install 'invsim[pythia]'` (Pythia 8 ships NNPDF31_lo_as_0118 and "
        "others in share/Pythia8/pdfdata), or download an LHAPDF6 set and set "
        "LHAPDF_DATA_PATH to the folder that holds it. forward.pdf.available_sets() lists "
        "the sets found."
    )


def installed_members(name: str) -> list[int]:
    """Member numbers of set ``name`` installed in the first place that holds the set.

    Member files ``NAME_NNNN.dat`` are counted in the set folder ``<place>/NAME/`` or,
    for Pythia's bare copies, beside ``NAME_0000.dat`` in ``<place>`` (the place
    :func:`find_member` would use).

    Args:
        name: set name, e.g. ``"NNPDF31_lo_as_0118"``.

    Returns:
        Sorted member numbers, at least one.

    Raises:
        PDFSetNotFoundError: no member of the set is installed anywhere (the message
            lists every searched place).
    """
    if not isinstance(name, str) or not name.strip():
        raise TypeError(f"name: expected a PDF set name (str), got {name!r}")
    for _, folder in search_places():
        if folder is None or not folder.is_dir():
            continue
        for where in (folder / name, folder):
            if not where.is_dir():
                continue
            members = sorted(
                int(m["member"]) for entry in where.glob(f"{_glob_escape(name)}_*.dat")
                if (m := _MEMBER.match(entry.name)) and m["name"] == name)
            if members:
                return members
    find_member(name, 0)  # raises with the list of searched places
    raise PDFSetNotFoundError(f"PDF set {name!r}: no member files found")  # pragma: no cover


def _glob_escape(text: str) -> str:
    """``text`` with the glob metacharacters ``*?[`` escaped for :meth:`Path.glob`."""
    return re.sub(r"([*?\[])", r"[\1]", text)


def available_sets() -> list[str]:
    """Names of the ``lhagrid1`` sets found in :func:`search_places`, sorted, unique."""
    names: set[str] = set()
    for _, folder in search_places():
        if folder is None or not folder.is_dir():
            continue
        for entry in folder.iterdir():
            if entry.is_dir():
                if (entry / f"{entry.name}.info").is_file() or (
                    entry / f"{entry.name}_0000.dat"
                ).is_file():
                    names.add(entry.name)
            else:
                m = _MEMBER.match(entry.name)
                if m and m["member"] == "0000" and _is_lhagrid1(entry):
                    names.add(m["name"])
    return sorted(names)


def _is_lhagrid1(path: Path) -> bool:
    """Whether a member file's header declares (or defaults to) ``Format: lhagrid1``."""
    try:
        with path.open() as fh:
            for _ in range(50):
                line = fh.readline()
                if not line or line.strip() == "---":
                    return True
                if line.startswith("Format:"):
                    return line.split(":", 1)[1].strip() == "lhagrid1"
    except (OSError, UnicodeDecodeError):
        return False
    return False
