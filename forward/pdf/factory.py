"""``mkPDF``/``mkPDFs``: load PDF members by name or LHAPDF id, like LHAPDF's ``lhapdf.mkPDF``."""

from __future__ import annotations

import math
import re

import torch

from forward._validation import check_choice
from forward.pdf.base import PDF
from forward.pdf.discovery import find_member, installed_members
from forward.pdf.grid import LHAGrid, read_info, read_lhagrid1
from forward.pdf.gridpdf import AlphaSSpec, GridPDF
from forward.pdf.ids import resolve_lhapdf_id
from forward.pdf.lhapdf_backend import LHAPDFBackend

__all__ = ["alphas_spec", "alphas_mz_from_name", "mkPDF", "mkPDFs", "parse_pdf_spec"]

_AS_IN_NAME = re.compile(r"(?:^|_)as_?(\d{4})(?:_|$)")


def alphas_mz_from_name(name: str) -> float | None:
    """α_s(M_Z) encoded in a set name (``..._as_0118...`` -> 0.118), or None."""
    m = _AS_IN_NAME.search(name)
    return int(m.group(1)) / 1000.0 if m else None


def alphas_spec(name: str, info: dict, grid: LHAGrid, alphas_mz: float | None) -> AlphaSSpec:
    """Decide where a set's α_s comes from.

    In order: an explicit ``alphas_mz`` (2-loop running); the ``.info`` table
    ``AlphaS_Qs``/``AlphaS_Vals`` (interpolated like LHAPDF's ``ipol``); the ``.info``
    ``AlphaS_MZ``; α_s(M_Z) from the set's name (``as_0118``). Running uses 2 loops,
    ``MZ`` and quark masses ``MCharm``/``MBottom``/``MTop`` from the ``.info`` when given
    (else :class:`forward.alphas.RunningAlphaS` defaults) and as many flavours as the
    ``.info``'s ``NumFlavors`` or, without it, the heaviest quark in the grid.
    """
    qs, vals = info.get("AlphaS_Qs"), info.get("AlphaS_Vals")
    if alphas_mz is None and isinstance(qs, list) and isinstance(vals, list) and qs:
        return AlphaSSpec("ipol", qs=tuple(map(float, qs)), values=tuple(map(float, vals)))
    value = alphas_mz
    if value is None and "AlphaS_MZ" in info:
        value = float(info["AlphaS_MZ"])
    if value is None:
        value = alphas_mz_from_name(name)
    if value is None:
        return AlphaSSpec(
            "missing",
            message=(
                f"PDF set {name!r} gives no α_s: no .info with AlphaS_Qs/AlphaS_Vals or "
                "AlphaS_MZ, and no 'as_XXXX' in its name. Pass alphas_mz=... to "
                "forward.pdf.mkPDF to run α_s from α_s(M_Z) at 2 loops."
            ),
        )
    kwargs: dict = {"alpha_s_mz": float(value), "order": 2}
    if "MZ" in info:
        kwargs["mz"] = float(info["MZ"])
    masses = [info.get(k) for k in ("MCharm", "MBottom", "MTop")]
    if all(isinstance(m, (int, float)) for m in masses):
        kwargs["thresholds"] = tuple(float(m) for m in masses)
    quarks = [abs(p) for p in grid.pids if 1 <= abs(p) <= 6]
    nf = info.get("NumFlavors", max(quarks, default=5))
    kwargs["nf_max"] = int(min(max(int(nf), 3), 6))
    return AlphaSSpec("running", running=tuple(kwargs.items()))


def parse_pdf_spec(name, member: int = 0) -> tuple[str, int]:
    """(set name, member) from the forms ``mkPDF`` takes.

    Args:
        name: a set name (``"NNPDF31_lo_as_0118"``), ``"NAME/MEMBER"``, an LHAPDF id
            (int, e.g. 315000) or its decimal text (``"315000"``).
        member: member number when ``name`` is a plain set name; must stay 0 for the
            other forms.

    Raises:
        TypeError: ``name`` is neither a str nor an int.
        ValueError: a member given twice, or a member < 0.
        PDFSetNotFoundError: an unknown LHAPDF id.
    """
    if isinstance(member, bool) or not isinstance(member, int) or member < 0:
        raise ValueError(f"member: expected an integer >= 0, got {member!r}")
    if isinstance(name, str) and name.strip().isdigit():
        name = int(name.strip())
    if isinstance(name, int) and not isinstance(name, bool):
        if member != 0:
            raise ValueError(f"member: given both by the LHAPDF id {name} and as "
                             f"member={member}")
        return resolve_lhapdf_id(name)
    if not isinstance(name, str) or not name.strip():
        raise TypeError(f"name: expected a PDF set name (str) or an LHAPDF id (int), "
                        f"got {name!r}")
    name = name.strip()
    if "/" in name and name.rsplit("/", 1)[1].isdigit():
        if member != 0:
            raise ValueError(f"member: given both in name {name!r} and as member={member}")
        name, mem = name.rsplit("/", 1)
        member = int(mem)
    return name, member


def mkPDF(  # noqa: N802 (LHAPDF name)
    name: str | int,
    member: int = 0,
    *,
    backend: str = "torch",
    device=None,
    dtype: torch.dtype = torch.float64,
    alphas_mz: float | None = None,
) -> PDF:
    """Load member ``member`` of the PDF set ``name``.

    Args:
        name: set name, e.g. ``"NNPDF31_lo_as_0118"`` (``"NAME/3"`` selects member 3,
            as in LHAPDF), or an LHAPDF id such as ``315000`` (resolved by
            :mod:`forward.pdf.ids`). Searched as described in :mod:`forward.pdf.discovery`.
        member: member number, >= 0.
        backend: ``"torch"`` (our grid reader; any device) or ``"lhapdf"`` (the LHAPDF
            library, CPU, when its Python module is importable).
        device: device of tables and results (default CPU).
        dtype: floating dtype of tables and results.
        alphas_mz: α_s(M_Z) for 2-loop running α_s, overriding the set's own α_s.
            Needed only for sets that give none (no ``.info``, no ``as_XXXX`` in the
            name) and only when α_s is asked for.

    Returns:
        A :class:`forward.pdf.PDF`.

    Raises:
        PDFSetNotFoundError: the set is not found (the message lists where we looked),
            or an unknown LHAPDF id.
        ImportError: ``backend="lhapdf"`` without the ``lhapdf`` module.
    """
    name, member = parse_pdf_spec(name, member)
    check_choice("backend", backend, ("torch", "lhapdf"))
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"dtype: expected a floating torch dtype, got {dtype!r}")
    if alphas_mz is not None:
        if isinstance(alphas_mz, bool) or not isinstance(alphas_mz, (int, float)):
            raise TypeError(f"alphas_mz: expected a float, got {type(alphas_mz).__name__}")
        if not (math.isfinite(alphas_mz) and 0 < alphas_mz < 1):
            raise ValueError(f"alphas_mz: expected a value in (0, 1), got {alphas_mz}")
    if backend == "lhapdf":
        return LHAPDFBackend(name, member, device=device, dtype=dtype, alphas_mz=alphas_mz)
    loc = find_member(name, member)
    info = read_info(loc.info_file) if loc.info_file is not None else {}
    grid = read_lhagrid1(loc.data_file)
    return GridPDF(
        grid,
        set_name=name,
        member=member,
        info=info,
        alphas=alphas_spec(name, info, grid, alphas_mz),
        device=device,
        dtype=dtype,
    )


def mkPDFs(  # noqa: N802 (LHAPDF name)
    name: str,
    *,
    backend: str = "torch",
    device=None,
    dtype: torch.dtype = torch.float64,
    alphas_mz: float | None = None,
) -> list[PDF]:
    """Every installed member of the PDF set ``name``, like LHAPDF's ``mkPDFs``.

    Pythia's copies hold member 0 only; an LHAPDF set folder holds all its members.

    Args:
        name: set name, e.g. ``"NNPDF31_lo_as_0118"``.
        backend, device, dtype, alphas_mz: as for :func:`mkPDF`.

    Returns:
        The members in increasing member number (``pdf.member``).

    Raises:
        PDFSetNotFoundError: no member of the set is installed.
    """
    if not isinstance(name, str) or not name.strip():
        raise TypeError(f"name: expected a PDF set name (str), got {name!r}")
    name = name.strip()
    return [mkPDF(name, m, backend=backend, device=device, dtype=dtype, alphas_mz=alphas_mz)
            for m in installed_members(name)]
