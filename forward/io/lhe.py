"""Les Houches Event files (version 3.0): writer and reader of hard events.

Written per event: the two incoming partons (status -1, energy ``x * sqrt_s / 2`` along
±z), the final state (status 1, mothers 1 2), a leading-colour flow for quarks and
gluons (:func:`colour_flow`), the event weight, a ``#pdf id1 id2 x1 x2 scale 0 0`` line
carrying x1 and x2 exactly, and the event's index in the set as the ``<event>``
attribute ``index`` (Pythia 8 exposes it as ``info.getEventAttribute("index")``).
Numbers are printed with 17 significant digits, so float64 values read back bit-exact.
The process name, parameters, settings, σ, seed and metadata go to an ``<invsim>``
block in the header (JSON). Files ending in ``.gz`` are gzip-compressed.
"""

from __future__ import annotations

import gzip
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import escape, unescape

import torch

from forward._validation import check_path, check_range
from forward.events import order_final_state
from forward.eventset import FORMAT_VERSION, EventSet
from forward.files import atomic_target

__all__ = ["colour_flow", "read_lhe", "write_lhe"]

_FIRST_TAG = 501


def _num(x: float) -> str:
    return f"{x: .16e}"


def _open(path: Path, mode: str):
    if path.suffix == ".gz":
        return gzip.open(path, mode + "t", encoding="utf-8")
    return open(path, mode, encoding="utf-8")


def _colour_class(pid: int, incoming: bool) -> str | None:
    """'q' (triplet), 'a' (antitriplet), 'g' (octet) in the all-outgoing frame, or None."""
    a = abs(pid)
    if a == 21:
        return "g"
    if 1 <= a <= 6:
        triplet = (pid > 0) != incoming
        return "q" if triplet else "a"
    return None


def colour_flow(incoming: Sequence[int], outgoing: Sequence[int]) -> list[tuple[int, int]]:
    """A leading-colour flow (ICOLUP tags) for a hard process with quarks and gluons.

    Crossing every parton to the final state, each quark is joined to an antiquark by a
    chain of colour lines through the gluons. Pairing rules, in order: adjacent
    final-state quark-antiquark pairs of different light flavours (W decay products)
    form colour singlets; a final-state (anti)quark joins an initial-state one (the
    s-channel flow of q q̄ -> t t̄); the rest pair up in order. All gluons go into the
    first chain that is not a W-decay singlet, or form a closed loop when there are no
    quarks (g g -> g g, g g -> colour singlets).

    Args:
        incoming: PDG ids of the two incoming partons.
        outgoing: PDG ids of the final state.

    Returns:
        (colour, anticolour) tags per particle, incoming first; 0 for no tag; tags start
        at 501.

    Raises:
        ValueError: the colours cannot be balanced (e.g. one quark and no antiquark).
    """
    pids = [int(p) for p in incoming] + [int(p) for p in outgoing]
    n_in = len(incoming)
    cls = [_colour_class(p, i < n_in) for i, p in enumerate(pids)]
    q_free = [i for i, c in enumerate(cls) if c == "q"]
    a_free = [i for i, c in enumerate(cls) if c == "a"]
    gluons = [i for i, c in enumerate(cls) if c == "g"]
    if len(q_free) != len(a_free) or (not q_free and len(gluons) == 1):
        raise ValueError(
            f"incoming, outgoing: colours do not balance for {list(incoming)} -> {list(outgoing)}"
        )
    chains: list[tuple[int, int, bool]] = []  # (quark, antiquark, is a decay singlet)
    for i in range(n_in, len(pids) - 1):
        for x, y in ((i, i + 1), (i + 1, i)):
            light = abs(pids[x]) <= 5 and abs(pids[y]) <= 5 and abs(pids[x]) != abs(pids[y])
            if x in q_free and y in a_free and light:
                chains.append((x, y, True))
                q_free.remove(x)
                a_free.remove(y)
    for x in list(q_free):
        other = [y for y in a_free if (x < n_in) != (y < n_in)]
        if other:
            chains.append((x, other[0], False))
            q_free.remove(x)
            a_free.remove(other[0])
    chains += [(x, y, False) for x, y in zip(q_free, a_free, strict=True)]

    tags = [[0, 0] for _ in pids]
    tag = _FIRST_TAG
    open_chain = next((k for k, c in enumerate(chains) if not c[2]), None)
    if open_chain is None and gluons and chains:
        open_chain = 0
    for k, (x, y, _) in enumerate(chains):
        tags[x][0] = tag
        for gl in gluons if k == open_chain else ():
            tags[gl][1] = tag
            tag += 1
            tags[gl][0] = tag
        tags[y][1] = tag
        tag += 1
    if not chains and gluons:  # closed loop of gluons
        first = tag
        for gl in gluons:
            tags[gl][1] = tag
            tag += 1
            tags[gl][0] = tag
        tags[gluons[-1]][0] = first
    for i in range(n_in):  # cross back: colour <-> anticolour for incoming partons
        tags[i].reverse()
    return [(c, a) for c, a in tags]


def write_lhe(
    events: EventSet,
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    scales: torch.Tensor | None = None,
    beam_pid: int = 2212,
    alpha_qed: float = 1.0 / 128.0,
    alpha_s: float = 0.118,
) -> Path:
    """Write the hard events of an event set as an LHE v3 file.

    Args:
        events: event set with ``incoming_pids`` (n, 2) set (see
            :func:`forward.eventset.sample_flavours`).
        path: target file (``.lhe`` or ``.lhe.gz``).
        overwrite: replace an existing file; without it an existing file is an error.
        scales: SCALUP per event in GeV, shape (n,) (the shower starting scale); default
            sqrt(x1 x2 s), the mass of the final state.
        beam_pid: PDG id of both beams.
        alpha_qed, alpha_s: AQEDUP and AQCDUP written in every event.

    Returns:
        The path written.

    Raises:
        ValueError: ``incoming_pids`` missing, a bad ``scales`` shape, colours that do not
            balance. FileExistsError: ``path`` exists and ``overwrite`` is False.
    """
    if not isinstance(events, EventSet):
        raise TypeError(f"events: expected an EventSet, got {type(events).__name__}")
    if events.incoming_pids is None:
        raise ValueError(
            "events.incoming_pids: LHE files need the incoming parton flavours, shape (n, 2); "
            "draw them with forward.eventset.sample_flavours"
        )
    path = check_path(path)
    n, k = events.momenta.shape[:2]
    p = events.momenta.detach().to("cpu", torch.float64)
    x1 = events.x1.detach().to("cpu", torch.float64)
    x2 = events.x2.detach().to("cpu", torch.float64)
    if scales is None:
        scales = torch.sqrt(x1 * x2) * events.sqrt_s
    scales = torch.as_tensor(scales, dtype=torch.float64).cpu()
    if scales.shape != (n,):
        raise ValueError(f"scales: expected shape ({n},), got {tuple(scales.shape)}")
    check_range("scales", scales, 0.0, math.inf, low_open=True, high_open=True)
    if isinstance(beam_pid, bool) or not isinstance(beam_pid, int):
        raise TypeError(f"beam_pid: expected an integer PDG id, got {beam_pid!r}")
    for name, v in (("alpha_qed", alpha_qed), ("alpha_s", alpha_s)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < math.inf:
            raise ValueError(f"{name}: expected a finite coupling >= 0, got {v!r}")
    w = events.weights.detach().to("cpu", torch.float64)
    unweighted = bool((w == w[0]).all()) and n > 0 and float(w[0]) > 0
    idwtup = 3 if unweighted else -4
    xsec = events.cross_section if events.cross_section is not None else float(w.mean()) if n else 0
    xerr = events.cross_section_error or 0.0
    e_beam = 0.5 * events.sqrt_s
    mass = (p[..., 0] ** 2 - (p[..., 1:] ** 2).sum(-1)).clamp(min=0).sqrt()
    pids = events.pids_per_event.cpu().tolist()
    inc = events.incoming_pids.cpu().tolist()
    header = {
        "format_version": FORMAT_VERSION,
        "process": events.process,
        "parameters": events.parameters,
        "settings": events.settings,
        "cross_section": events.cross_section,
        "cross_section_error": events.cross_section_error,
        "seed": events.seed,
        "metadata": events.metadata,
    }
    flows: dict[tuple, list] = {}
    with atomic_target(path, overwrite, suffix=path.suffix) as tmp:
        with _open(tmp, "w") as f:
            f.write('<LesHouchesEvents version="3.0">\n<header>\n')
            f.write(f"<invsim>{escape(json.dumps(header))}</invsim>\n</header>\n<init>\n")
            f.write(f" {beam_pid} {beam_pid} {_num(e_beam)} {_num(e_beam)} 0 0 0 0 {idwtup} 1\n")
            wmax = float(w.abs().max()) if n else 0.0
            f.write(f" {_num(xsec)} {_num(xerr)} {_num(wmax)} 1\n</init>\n")
            for i in range(n):
                key = (*inc[i], *pids[i])
                if key not in flows:
                    flows[key] = colour_flow(inc[i], pids[i])
                cols = flows[key]
                lines = [f'<event index="{i}">',
                         f" {k + 2} 1 {_num(float(w[i]))} {_num(float(scales[i]))} "
                         f"{_num(alpha_qed)} {_num(alpha_s)}"]
                beams = ((inc[i][0], x1[i], 1), (inc[i][1], x2[i], -1))
                for j, (pid, xj, sign) in enumerate(beams):
                    e = float(xj) * e_beam
                    c, a = cols[j]
                    lines.append(f" {pid} -1 0 0 {c} {a} {_num(0.0)} {_num(0.0)} "
                                 f"{_num(sign * e)} {_num(e)} {_num(0.0)} 0. 9.")
                for j in range(k):
                    e, px, py, pz = p[i, j].tolist()
                    c, a = cols[2 + j]
                    lines.append(f" {pids[i][j]} 1 1 2 {c} {a} {_num(px)} {_num(py)} {_num(pz)} "
                                 f"{_num(e)} {_num(float(mass[i, j]))} 0. 9.")
                lines.append(f"#pdf {inc[i][0]} {inc[i][1]} {_num(float(x1[i]))} "
                             f"{_num(float(x2[i]))} {_num(float(scales[i]))} 0 0")
                lines.append("</event>\n")
                f.write("\n".join(lines))
            f.write("</LesHouchesEvents>\n")
    return path


def read_lhe(
    path: str | os.PathLike,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
    final_state: Sequence[int] | torch.Tensor | None = None,
) -> EventSet:
    """Read an LHE file (ours or another generator's) into an :class:`EventSet`.

    Final-state particles are those with status 1 (intermediate resonances are dropped);
    every event must have the same number of them. They keep the file's order unless
    ``final_state`` is given: then each event is put into that order
    (:func:`forward.events.order_final_state`), so a MadGraph file listing ℓ⁺ before ℓ⁻
    reads as the process expects, e.g. ``final_state=process.final_state``.
    x1, x2 come from the ``#pdf`` line when present, else from the incoming energies.
    Provenance comes from our ``<invsim>`` header block when present; otherwise σ is
    taken from the ``<init>`` block.

    Args:
        path: ``.lhe`` or ``.lhe.gz`` file.
        dtype, device: of the returned tensors.
        final_state: k PDG ids giving the order of the returned particles, or None
            (file order). Lepton flavours may differ per event (see
            :func:`~forward.events.final_state_permutation`).

    Raises:
        ValueError: malformed file, unequal beam energies, varying final-state
            multiplicity, an ``<invsim>`` block of a newer format version, or events
            that do not fit ``final_state`` (the message names the event).
    """
    path = check_path(path)
    try:
        header, init, events = _scan(path)
    except (UnicodeDecodeError, EOFError, OSError) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise ValueError(f"{str(path)!r}: not a readable LHE file ({type(err).__name__}: "
                         f"{err})") from err
    moms, x1s, x2s, ws, pid_rows, inc_rows = [], [], [], [], [], []
    for ev in events:
        for store, val in zip((moms, x1s, x2s, ws, pid_rows, inc_rows), ev, strict=True):
            store.append(val)
    if not init:
        raise ValueError(f"{str(path)!r}: no <init> block; not an LHE file")
    version = header.get("format_version", FORMAT_VERSION)
    if version > FORMAT_VERSION:
        raise ValueError(f"{str(path)!r}: invsim LHE header of format version {version}; this "
                         f"code reads versions up to {FORMAT_VERSION}")
    k_set = {len(r) for r in pid_rows}
    if len(k_set) > 1:
        raise ValueError(f"{str(path)!r}: final-state multiplicity varies between events "
                         f"({sorted(k_set)}); an EventSet needs a fixed k")
    k = k_set.pop() if k_set else 0
    kw = {"dtype": dtype, "device": device}
    pids = torch.tensor(pid_rows, dtype=torch.int64, device=device).reshape(len(pid_rows), k)
    momenta = torch.tensor(moms, **kw).reshape(len(moms), k, 4)
    if final_state is not None:
        try:
            momenta, pids = order_final_state(momenta, pids, final_state)
        except ValueError as err:
            raise ValueError(f"{str(path)!r}: {err}") from None
    if len(pids) and bool((pids == pids[0]).all()):
        pids = pids[0].clone()
    xs = header.get("cross_section", float(init[1][0]) if len(init) > 1 else None)
    xe = header.get("cross_section_error", float(init[1][1]) if len(init) > 1 else None)
    return EventSet(
        process=header.get("process", "unknown"),
        momenta=momenta,
        x1=torch.tensor(x1s, **kw),
        x2=torch.tensor(x2s, **kw),
        pids=pids,
        sqrt_s=float(init[0][2]) + float(init[0][3]),
        weights=torch.tensor(ws, **kw),
        incoming_pids=torch.tensor(inc_rows, dtype=torch.int64, device=device).reshape(-1, 2),
        parameters=header.get("parameters", {}),
        settings=header.get("settings", {}),
        cross_section=xs,
        cross_section_error=xe,
        seed=header.get("seed"),
        metadata=header.get("metadata", {}),
    )


class _Malformed(ValueError):
    """A malformed line; ``line`` is its number (1-based)."""

    def __init__(self, line: int, msg: str) -> None:
        super().__init__(msg)
        self.line = line


def _scan(path: Path) -> tuple[dict, list[list[str]], list]:
    """Header dict, ``<init>`` rows and parsed events of an LHE file, line-checked.

    Raises:
        ValueError: naming the file and the line: a file cut in the header or in an event
            (no ``</invsim>``, ``</init>``, ``</event>`` or ``</LesHouchesEvents>``), a
            nested ``<event>``, a malformed ``<init>`` or event line, or an event whose
            particle lines do not match its NUP.
    """
    where = f"{str(path)!r}"
    header: dict = {}
    init: list[list[str]] = []
    events = []
    state, start, block = None, 0, []
    seen_root = closed = False
    line_no = 0
    with _open(path, "r") as f:
        lines = enumerate(f, 1)
        for line_no, line in lines:
            s = line.strip()
            if closed:
                if s:
                    raise ValueError(f"{where}, line {line_no}: text after </LesHouchesEvents>")
                continue
            if state == "event":
                if s.startswith("</event"):
                    try:
                        events.append(_parse_event(block, init))
                    except _Malformed as err:
                        raise ValueError(f"{where}, line {err.line}: {err}") from None
                    state = None
                elif s.startswith("<event"):
                    raise ValueError(f"{where}, line {line_no}: <event> inside the event started "
                                     f"at line {start} (its </event> is missing)")
                elif s.startswith("</LesHouchesEvents"):
                    raise ValueError(f"{where}, line {line_no}: the event started at line {start} "
                                     "has no </event>")
                elif s:
                    block.append((line_no, s))
                continue
            if s.startswith("<LesHouchesEvents"):
                seen_root = True
            elif s.startswith("</LesHouchesEvents"):
                closed = True
            elif s.startswith("<invsim>"):
                first, text = line_no, s[len("<invsim>"):]
                while "</invsim>" not in text:
                    nxt = next(lines, None)
                    if nxt is None:
                        raise ValueError(f"{where}: the file ends inside the <invsim> block "
                                         f"started at line {first} (truncated header)")
                    text += nxt[1].strip()
                try:
                    header = json.loads(unescape(text[: text.index("</invsim>")]))
                except json.JSONDecodeError as err:
                    raise ValueError(f"{where}, line {first}: malformed <invsim> block "
                                     f"({err})") from None
                if not isinstance(header, dict):
                    raise ValueError(f"{where}, line {first}: malformed <invsim> block (not a "
                                     "JSON object)")
            elif s.startswith("<init"):
                if init or state == "init":
                    raise ValueError(f"{where}, line {line_no}: a second <init> block")
                state, start = "init", line_no
            elif s.startswith("</init"):
                if state != "init":
                    raise ValueError(f"{where}, line {line_no}: </init> without <init>")
                if not init:
                    raise ValueError(f"{where}, line {line_no}: empty <init> block")
                state = None
            elif s.startswith("<event"):
                if not init or state == "init":
                    raise ValueError(f"{where}, line {line_no}: <event> before a complete "
                                     "<init> block")
                state, start, block = "event", line_no, []
            elif s.startswith("</event"):
                raise ValueError(f"{where}, line {line_no}: </event> without <event>")
            elif state == "init" and s and not s.startswith(("#", "<")):
                _init_row(where, line_no, s, first=not init)
                init.append(s.split())
    if not seen_root and not init:
        raise ValueError(f"{where}: no <LesHouchesEvents> and no <init> block; not an LHE file")
    if state == "init":
        raise ValueError(f"{where}: the file ends inside the <init> block started at line "
                         f"{start} (truncated header; last line {line_no})")
    if state == "event":
        raise ValueError(f"{where}: the file ends inside the event started at line {start} "
                         f"(no </event>; truncated after line {line_no})")
    if seen_root and not closed:
        raise ValueError(f"{where}: no </LesHouchesEvents> (the file is truncated after line "
                         f"{line_no})")
    return header, init, events


def _init_row(where: str, line_no: int, s: str, first: bool) -> None:
    t = s.split()
    want = 10 if first else 4
    try:
        ok = len(t) >= want and all(math.isfinite(float(v)) for v in t[:want])
    except ValueError:
        ok = False
    if not ok:
        what = "beam line (IDBMUP, EBMUP, PDFGUP, PDFSUP, IDWTUP, NPRUP)" if first else \
            "process line (XSECUP, XERRUP, XMAXUP, LPRUP)"
        raise ValueError(f"{where}, line {line_no}: malformed <init> {what}: expected {want} "
                         f"numbers, got {s!r}")


def _particle(t: list[str]):
    """(pid, status, px, py, pz, E) of a particle line's tokens, or None if not one."""
    if len(t) < 13:
        return None
    try:
        ints = [int(v) for v in t[:6]]
        floats = [float(v) for v in t[6:13]]
    except ValueError:
        return None
    return ints[0], ints[1], *floats[:4]


def _parse_event(block: list[tuple[int, str]], init: list[list[str]]):
    """(momenta k x 4, x1, x2, weight, pids, incoming pids) of one <event> block.

    ``block`` holds (line number, stripped text) of the lines between ``<event>`` and
    ``</event>`` that are not tags; raises :class:`_Malformed` naming the line.
    """
    e1, e2 = float(init[0][2]), float(init[0][3])
    body = [(n, s) for n, s in block if not s.startswith("<")]
    if not body:
        raise _Malformed(block[0][0] if block else 0, "empty event (no header line)")
    first, head_text = body[0]
    if not math.isclose(e1, e2, rel_tol=1e-15):
        raise _Malformed(first, f"beam energies {e1} and {e2} differ; hard events need "
                                "symmetric beams")
    head = head_text.split()
    try:
        nup, weight = int(head[0]), float(head[2])
        [float(v) for v in head[1:6]]
        if len(head) < 6 or nup < 1 or not math.isfinite(weight):
            raise ValueError
    except (ValueError, IndexError):
        raise _Malformed(first, f"malformed event header line (NUP IDPRUP XWGTUP SCALUP AQEDUP "
                                f"AQCDUP, NUP >= 1, finite weight): {head_text!r}") from None
    particles = body[1: 1 + nup]
    if len(particles) < nup:
        raise _Malformed(first, f"the event header says NUP = {nup} particles, the event has "
                                f"{len(particles)} lines after it")
    mom, pids, inc, x = [], [], [], None
    for n, s in particles:
        p = _particle(s.split())
        if p is None:
            raise _Malformed(n, f"malformed particle line (13 fields: IDUP ISTUP MOTHUP(2) "
                                f"ICOLUP(2) PUP(5) VTIMUP SPINUP) or fewer than NUP = {nup} "
                                f"particle lines: {s!r}")
        pid, status, px, py, pz, e = p
        if not all(math.isfinite(v) for v in (px, py, pz, e)):
            raise _Malformed(n, f"non-finite momentum in particle line {s!r}")
        if status == -1:
            inc.append((pid, e))
        elif status == 1:
            mom.append([e, px, py, pz])
            pids.append(pid)
    for n, s in body[1 + nup:]:
        t = s.split()
        if _particle(t) is not None:
            raise _Malformed(n, f"a particle line beyond the NUP = {nup} particles the event "
                                f"header (line {first}) announces")
        if t[0] == "#pdf":
            try:
                x = (float(t[3]), float(t[4]))
            except (IndexError, ValueError):
                raise _Malformed(n, f"malformed '#pdf id1 id2 x1 x2 scale' line: {s!r}") from None
            if not all(0 < v <= 1 for v in x):
                raise _Malformed(n, f"#pdf line: x1, x2 must lie in (0, 1], got {x}")
    if len(inc) != 2:
        raise _Malformed(first, f"expected 2 incoming partons (status -1), got {len(inc)}")
    if x is None:
        x = (inc[0][1] / e1, inc[1][1] / e2)
    return mom, x[0], x[1], weight, pids, [inc[0][0], inc[1][0]]
