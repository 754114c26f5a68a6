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
    path = Path(path)
    n, k = events.momenta.shape[:2]
    p = events.momenta.detach().to("cpu", torch.float64)
    x1 = events.x1.detach().to("cpu", torch.float64)
    x2 = events.x2.detach().to("cpu", torch.float64)
    if scales is None:
        scales = torch.sqrt(x1 * x2) * events.sqrt_s
    scales = torch.as_tensor(scales, dtype=torch.float64).cpu()
    if scales.shape != (n,):
        raise ValueError(f"scales: expected shape ({n},), got {tuple(scales.shape)}")
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
    path = Path(path)
    header: dict = {}
    init: list[list[str]] = []
    moms, x1s, x2s, ws, pid_rows, inc_rows = [], [], [], [], [], []
    state = None
    block: list[str] = []
    with _open(path, "r") as f:
        for line_no, line in enumerate(f, 1):
            s = line.strip()
            if s.startswith("<invsim>"):
                text = s[len("<invsim>"):]
                while "</invsim>" not in text:
                    text += next(f).strip()
                header = json.loads(unescape(text[: text.index("</invsim>")]))
            elif s.startswith("<init"):
                state = "init"
            elif s.startswith("</init"):
                state = None
            elif s.startswith("<event"):
                state, block = "event", []
            elif s.startswith("</event"):
                try:
                    ev = _parse_event(block, init)
                except (ValueError, IndexError) as err:
                    raise ValueError(f"{str(path)!r}: malformed event ending at line {line_no}: "
                                     f"{err}") from None
                for store, val in zip((moms, x1s, x2s, ws, pid_rows, inc_rows), ev, strict=True):
                    store.append(val)
                state = None
            elif state == "init" and s and not s.startswith("#") and not s.startswith("<"):
                init.append(s.split())
            elif state == "event" and s and not s.startswith("<"):
                block.append(s)
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


def _parse_event(block: list[str], init: list[list[str]]):
    """(momenta k x 4, x1, x2, weight, pids, incoming pids) of one <event> block."""
    e1, e2 = float(init[0][2]), float(init[0][3])
    if not math.isclose(e1, e2, rel_tol=1e-15):
        raise ValueError(f"beam energies {e1} and {e2} differ; hard events need symmetric beams")
    head = block[0].split()
    nup, weight = int(head[0]), float(head[2])
    mom, pids, inc, x = [], [], [], None
    for s in block[1: 1 + nup]:
        t = s.split()
        pid, status = int(t[0]), int(t[1])
        px, py, pz, e = (float(v) for v in t[6:10])
        if status == -1:
            inc.append((pid, e))
        elif status == 1:
            mom.append([e, px, py, pz])
            pids.append(pid)
    for s in block[1 + nup:]:
        t = s.split()
        if t[0] == "#pdf":
            x = (float(t[3]), float(t[4]))
    if len(inc) != 2:
        raise ValueError(f"expected 2 incoming partons (status -1), got {len(inc)}")
    if x is None:
        x = (inc[0][1] / e1, inc[1][1] / e2)
    return mom, x[0], x[1], weight, pids, [inc[0][0], inc[1][0]]
