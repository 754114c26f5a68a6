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
import re
from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr, unescape

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

    Final-state slots with PDG id 0 (the padding of a merged sample read with
    ``read_lhe(..., pad=True)``) are left out, so such a set is written back as a
    merged sample of varying multiplicity.

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
    named = {name: v.detach().to("cpu", torch.float64).tolist()
             for name, v in events.weights_named.items()}
    wgt_ids = {name: quoteattr(name) for name in named}
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
    if events.process_ids is None:
        ids = [1] * n
        procs = [(1, xsec, xerr, float(w.abs().max()) if n else 0.0)]
    else:
        ids = events.process_ids.cpu().tolist()
        procs = []
        for pid in sorted(set(ids)):  # σ and its error apportioned by the weights
            sel = torch.tensor([i == pid for i in ids])
            share = float(w[sel].sum() / w.sum()) if float(w.sum()) else 0.0
            procs.append((pid, xsec * share, xerr * share, float(w[sel].abs().max())))
    flows: dict[tuple, list] = {}
    with atomic_target(path, overwrite, suffix=path.suffix) as tmp:
        with _open(tmp, "w") as f:
            f.write('<LesHouchesEvents version="3.0">\n<header>\n')
            f.write(f"<invsim>{escape(json.dumps(header))}</invsim>\n")
            f.write(_initrwgt(events))
            f.write("</header>\n<init>\n")
            f.write(f" {beam_pid} {beam_pid} {_num(e_beam)} {_num(e_beam)} 0 0 0 0 {idwtup} "
                    f"{len(procs)}\n")
            for pid, sx, se, wmax in procs:
                f.write(f" {_num(sx)} {_num(se)} {_num(wmax)} {pid}\n")
            f.write("</init>\n")
            for i in range(n):
                slots = [j for j in range(k) if pids[i][j] != 0]  # id 0: padding
                out = [pids[i][j] for j in slots]
                key = (*inc[i], *out)
                if key not in flows:
                    flows[key] = colour_flow(inc[i], out)
                cols = flows[key]
                lines = [f'<event index="{i}">',
                         f" {len(slots) + 2} {ids[i]} {_num(float(w[i]))} "
                         f"{_num(float(scales[i]))} "
                         f"{_num(alpha_qed)} {_num(alpha_s)}"]
                beams = ((inc[i][0], x1[i], 1), (inc[i][1], x2[i], -1))
                for j, (pid, xj, sign) in enumerate(beams):
                    e = float(xj) * e_beam
                    c, a = cols[j]
                    lines.append(f" {pid} -1 0 0 {c} {a} {_num(0.0)} {_num(0.0)} "
                                 f"{_num(sign * e)} {_num(e)} {_num(0.0)} 0. 9.")
                for slot, j in enumerate(slots):
                    e, px, py, pz = p[i, j].tolist()
                    c, a = cols[2 + slot]
                    lines.append(f" {pids[i][j]} 1 1 2 {c} {a} {_num(px)} {_num(py)} {_num(pz)} "
                                 f"{_num(e)} {_num(float(mass[i, j]))} 0. 9.")
                lines.append(f"#pdf {inc[i][0]} {inc[i][1]} {_num(float(x1[i]))} "
                             f"{_num(float(x2[i]))} {_num(float(scales[i]))} 0 0")
                if named:
                    lines.append("<rwgt>")
                    lines += [f"<wgt id={wgt_ids[name]}> {_num(v[i])} </wgt>"
                              for name, v in named.items()]
                    lines.append("</rwgt>")
                lines.append("</event>\n")
                f.write("\n".join(lines))
            f.write("</LesHouchesEvents>\n")
    return path


def _initrwgt(events: EventSet) -> str:
    """The ``<initrwgt>`` header block declaring the named weights ('' without any).

    One ``<weightgroup name="invsim">``; each ``<weight id=NAME>`` has as text the
    variation's definition from ``metadata["weight_variations"]`` when recorded
    (``mur_factor=0.5 muf_factor=1 pdf=...``), else its name.
    """
    if not events.weights_named:
        return ""
    known = events.metadata.get("weight_variations", {})
    lines = ["<initrwgt>", '<weightgroup name="invsim" combine="none">']
    for name in events.weights_named:
        d = known.get(name) if isinstance(known, dict) else None
        text = name if not isinstance(d, dict) else " ".join(
            f"{k}={json.dumps(v) if isinstance(v, dict) else v}" for k, v in d.items()
            if v is not None and v != {})
        lines.append(f"<weight id={quoteattr(name)}>{escape(text)}</weight>")
    lines += ["</weightgroup>", "</initrwgt>", ""]
    return "\n".join(lines)


def read_lhe(
    path: str | os.PathLike,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
    final_state: Sequence[int] | torch.Tensor | None = None,
    reader: str = "auto",
    pad: bool = False,
) -> EventSet:
    """Read an LHE file (ours or another generator's) into an :class:`EventSet`.

    Final-state particles are those with status 1 (intermediate resonances are dropped).
    They keep the file's order unless ``final_state`` is given: then each event is put
    into that order (:func:`forward.events.order_final_state`), so a MadGraph file
    listing ℓ⁺ before ℓ⁻ reads as the process expects, e.g.
    ``final_state=process.final_state``. x1, x2 come from the ``#pdf`` line when
    present, else from the incoming energies. Provenance comes from our ``<invsim>``
    header block when present; otherwise σ is the sum of the ``<init>`` block's XSECUP
    over its processes (errors added in quadrature), and ``metadata["lhe_processes"]``
    lists every process (``id``, ``cross_section``, ``error``, ``xmax`` in pb).

    Per event: IDPRUP becomes ``process_ids``; the ``<rwgt>`` weights (``<wgt id=...>``,
    or a ``<weights>`` block with pylhe) become ``weights_named`` (every event must
    carry the same ids). Merged samples (the number of final-state particles varies
    between events, e.g. 0, 1 and 2 extra jets) need ``pad=True``: events are padded to
    the largest multiplicity with id 0 and zero four-momenta at the end.

    The file is parsed by `pylhe <https://github.com/scikit-hep/pylhe>`_ when it is
    installed (``reader="auto"``), else by invsim's own line reader; both give the
    same event set. A file pylhe cannot read, or whose content is malformed, is
    re-read by invsim's reader for a message naming the line.

    Args:
        path: ``.lhe`` or ``.lhe.gz`` file.
        dtype, device: of the returned tensors.
        final_state: k PDG ids giving the order of the returned particles, or None
            (file order). Lepton flavours may differ per event (see
            :func:`~forward.events.final_state_permutation`). Not with ``pad``.
        reader: ``"auto"`` (pylhe when installed), ``"pylhe"`` or ``"invsim"``.
        pad: pad events of a varying multiplicity (see above) instead of refusing them.

    Raises:
        ValueError: malformed file (naming the line), unequal beam energies, varying
            final-state multiplicity without ``pad``, events with different weight ids,
            an ``<invsim>`` block of a newer format version, events that do not fit
            ``final_state`` (the message names the event), or a bad ``reader``.
        ImportError: ``reader="pylhe"`` without pylhe installed.
    """
    path = check_path(path)
    if reader not in ("auto", "pylhe", "invsim"):
        raise ValueError(f"reader: expected 'auto', 'pylhe' or 'invsim', got {reader!r}")
    if pad and final_state is not None:
        raise ValueError("final_state, pad: a padded (merged) sample has no fixed final state; "
                         "give one of them")
    use_pylhe = reader == "pylhe" or (reader == "auto" and _have_pylhe())
    try:
        if use_pylhe:
            header, init, events = _read_pylhe(path)
        else:
            header, init, events = _scan(path)
    except (UnicodeDecodeError, EOFError, OSError) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise ValueError(f"{str(path)!r}: not a readable LHE file ({type(err).__name__}: "
                         f"{err})") from err
    return _event_set(path, header, init, events, dtype=dtype, device=device,
                      final_state=final_state, pad=pad)


def _event_set(path: Path, header: dict, init: list[list[str]], events: list, *, dtype,
               device, final_state, pad: bool) -> EventSet:
    """The :class:`EventSet` of parsed events (tuples of :func:`_record`)."""
    where = f"{str(path)!r}"
    if not init:
        raise ValueError(f"{where}: no <init> block; not an LHE file")
    version = header.get("format_version", FORMAT_VERSION)
    if version > FORMAT_VERSION:
        raise ValueError(f"{where}: invsim LHE header of format version {version}; this "
                         f"code reads versions up to {FORMAT_VERSION}")
    moms, x1s, x2s, ws, pid_rows, inc_rows, idprup, named = (
        [list(col) for col in zip(*events, strict=True)] if events else [[] for _ in range(8)])
    k_set = {len(r) for r in pid_rows}
    if len(k_set) > 1 and not pad:
        raise ValueError(f"{where}: final-state multiplicity varies between events "
                         f"({sorted(k_set)}), as in a merged sample; an EventSet needs a fixed "
                         "k: read it with pad=True (pads with id 0 and zero momenta)")
    k = max(k_set) if k_set else 0
    if len(k_set) > 1:
        for i, row in enumerate(pid_rows):
            fill = k - len(row)
            pid_rows[i] = row + [0] * fill
            moms[i] = moms[i] + [[0.0, 0.0, 0.0, 0.0]] * fill
    kw = {"dtype": dtype, "device": device}
    pids = torch.tensor(pid_rows, dtype=torch.int64, device=device).reshape(len(pid_rows), k)
    momenta = torch.tensor(moms, **kw).reshape(len(moms), k, 4)
    if final_state is not None:
        try:
            momenta, pids = order_final_state(momenta, pids, final_state)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
    if len(pids) and bool((pids == pids[0]).all()):
        pids = pids[0].clone()
    procs = [{"id": int(float(r[3])), "cross_section": float(r[0]), "error": float(r[1]),
              "xmax": float(r[2])} for r in init[1:]]
    xs = header.get("cross_section", sum(p["cross_section"] for p in procs) if procs else None)
    xe = header.get("cross_section_error",
                    math.sqrt(sum(p["error"] ** 2 for p in procs)) if procs else None)
    metadata = header.get("metadata", {})
    if "metadata" not in header:
        metadata = {"lhe_processes": procs}
        if len(k_set) > 1:
            metadata["lhe_multiplicities"] = sorted(k_set)
    names = list(named[0]) if named else []
    # one declared process carried by every event: no per-event ids (its id is in
    # metadata["lhe_processes"] for other generators' files)
    one = len(procs) == 1 and all(i == procs[0]["id"] for i in idprup)
    return EventSet(
        process=header.get("process", "unknown"),
        momenta=momenta,
        x1=torch.tensor(x1s, **kw),
        x2=torch.tensor(x2s, **kw),
        pids=pids,
        sqrt_s=float(init[0][2]) + float(init[0][3]),
        weights=torch.tensor(ws, **kw),
        incoming_pids=torch.tensor(inc_rows, dtype=torch.int64, device=device).reshape(-1, 2),
        process_ids=None if one else torch.tensor(idprup, dtype=torch.int64, device=device),
        parameters=header.get("parameters", {}),
        settings=header.get("settings", {}),
        cross_section=xs,
        cross_section_error=xe,
        seed=header.get("seed"),
        metadata=metadata,
        weights_named={name: torch.tensor([d[name] for d in named], **kw) for name in names},
    )


def _have_pylhe() -> bool:
    try:
        import pylhe  # noqa: F401
    except ImportError:
        return False
    return True


def _read_pylhe(path: Path) -> tuple[dict, list[list[str]], list]:
    """Header dict, ``<init>`` rows and events (:func:`_record` tuples) read by pylhe.

    Anything pylhe reports (an XML parse error: a truncated or malformed file; a line
    it cannot convert) or that :func:`_record` refuses sends the file through
    :func:`_scan`: its message names the line, or it reads the file.
    """
    try:
        import pylhe
    except ImportError as err:
        raise ImportError("reader='pylhe' needs pylhe: pip install pylhe (or "
                          "pip install 'invsim[test]')") from err
    import warnings
    from xml.etree.ElementTree import ParseError

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            lhef = pylhe.LHEFile.fromfile(str(path), generator=False)
        if not any("Parse Error" in str(w.message) for w in caught):
            header = {}
            for el in (lhef.header.extra_elements if lhef.header is not None else ()):
                if el.tag == "invsim":
                    header = json.loads(el.text or "")
            info = lhef.init.initInfo
            init = [[str(v) for v in (info.beamA, info.beamB, info.energyA, info.energyB,
                                      info.PDFgroupA, info.PDFgroupB, info.PDFsetA,
                                      info.PDFsetB, info.weightingStrategy,
                                      info.numProcesses)]]
            init += [[str(p.xSection), str(p.error), str(p.unitWeight), str(p.procId)]
                     for p in lhef.init.procInfo]
            e1, e2 = float(init[0][2]), float(init[0][3])
            events, names = [], None
            for ev in lhef.events:
                info_ev = ev.eventinfo
                if info_ev.nparticles != len(ev.particles):
                    raise _Malformed(0, "NUP differs from the particle lines")
                parts = [(0, (int(q.id), int(q.status), q.px, q.py, q.pz, q.e))
                         for q in ev.particles]
                extra = [(0, t) for t in ev.optional]
                named = {str(key): float(v) for key, v in (ev.weights or {}).items()}
                if names is None:
                    names = list(named)
                elif sorted(named) != sorted(names):
                    raise _Malformed(0, "weight ids differ between events")
                events.append(_record(0, parts, float(info_ev.weight), int(info_ev.pid),
                                      extra, named, e1, e2))
            return header, init, events
    except (_Malformed, ParseError, ValueError, TypeError, IndexError, KeyError,
            AttributeError, json.JSONDecodeError):
        pass
    # invsim's reader names the line of a malformed file, or reads what pylhe did not
    return _scan(path)


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
                    if sorted(events[-1][-1]) != sorted(events[0][-1]):
                        raise ValueError(f"{where}, line {start}: the event's weight ids "
                                         f"{sorted(events[-1][-1])} differ from the first "
                                         f"event's {sorted(events[0][-1])}")
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
            elif _is_tag(s, "<init"):
                if init or state == "init":
                    raise ValueError(f"{where}, line {line_no}: a second <init> block")
                state, start = "init", line_no
            elif _is_tag(s, "</init"):
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


def _is_tag(s: str, tag: str) -> bool:
    """Whether the line ``s`` starts with the tag ``tag`` (``"<init"`` but not
    ``"<initrwgt"``)."""
    return s.startswith(tag) and (len(s) == len(tag) or s[len(tag)] in " \t>/")


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


_WGT = re.compile(r"""<wgt\s+id\s*=\s*(["'])(.*?)\1\s*>\s*([^<\s]+)\s*</wgt>""")


def _parse_event(block: list[tuple[int, str]], init: list[list[str]]):
    """The :func:`_record` tuple of one <event> block (invsim's own reader).

    ``block`` holds (line number, stripped text) of the lines between ``<event>`` and
    ``</event>``; raises :class:`_Malformed` naming the line.
    """
    e1, e2 = float(init[0][2]), float(init[0][3])
    body = [(n, s) for n, s in block if not s.startswith("<")]
    if not body:
        raise _Malformed(block[0][0] if block else 0, "empty event (no header line)")
    first, head_text = body[0]
    head = head_text.split()
    try:
        nup, idprup, weight = int(head[0]), int(head[1]), float(head[2])
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
    parts = []
    for n, s in particles:
        p = _particle(s.split())
        if p is None:
            raise _Malformed(n, f"malformed particle line (13 fields: IDUP ISTUP MOTHUP(2) "
                                f"ICOLUP(2) PUP(5) VTIMUP SPINUP) or fewer than NUP = {nup} "
                                f"particle lines: {s!r}")
        parts.append((n, p))
    extra = []
    for n, s in body[1 + nup:]:
        if _particle(s.split()) is not None:
            raise _Malformed(n, f"a particle line beyond the NUP = {nup} particles the event "
                                f"header (line {first}) announces")
        extra.append((n, s))
    named = {}
    for n, s in block:
        if s.startswith("<wgt"):
            m = _WGT.fullmatch(s)
            try:
                value = float(m.group(3)) if m else math.nan
            except ValueError:
                value = math.nan
            if not math.isfinite(value):
                raise _Malformed(n, f"malformed weight line (<wgt id=\"NAME\"> number </wgt>, "
                                    f"finite): {s!r}")
            named[unescape(m.group(2), {"&quot;": '"', "&apos;": "'"})] = value
    return _record(first, parts, weight, idprup, extra, named, e1, e2)


def _record(first: int, parts: list, weight: float, idprup: int, extra: list, named: dict,
            e1: float, e2: float):
    """(momenta k x 4, x1, x2, weight, pids, incoming pids, IDPRUP, named weights) of an
    event, checked; raises :class:`_Malformed` naming the line (0 when unknown).

    Args:
        first: line number of the event header line.
        parts: (line number, (pid, status, px, py, pz, E)) per particle.
        weight, idprup: XWGTUP and IDPRUP.
        extra: (line number, text) of the lines after the particles (``#pdf`` etc.).
        named: weight id -> value.
        e1, e2: beam energies in GeV.
    """
    if not math.isclose(e1, e2, rel_tol=1e-15):
        raise _Malformed(first, f"beam energies {e1} and {e2} differ; hard events need "
                                "symmetric beams")
    if not math.isfinite(weight):
        raise _Malformed(first, f"non-finite event weight {weight}")
    mom, pids, inc, x = [], [], [], None
    for n, (pid, status, px, py, pz, e) in parts:
        if not all(math.isfinite(v) for v in (px, py, pz, e)):
            raise _Malformed(n, f"non-finite momentum {(e, px, py, pz)} of particle {pid}")
        if status == -1:
            inc.append((pid, e))
        elif status == 1:
            mom.append([e, px, py, pz])
            pids.append(pid)
    for n, s in extra:
        t = s.split()
        if t and t[0] == "#pdf":
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
    return mom, x[0], x[1], weight, pids, [inc[0][0], inc[1][0]], idprup, named
