r"""Partonic channels of p p → n jets: flavour enumeration, channel names, selection.

Usage::

    from forward.processes.qcd_channels import subprocesses, channel_names
    subs = subprocesses(2, n_quark_new=5)       # every (a, b) → final-state multiset
    channel_names(2)                            # ('gg>gg', 'gg>qqbar', 'qg>qg', ...)

A **subprocess** is an initial pair (a, b) of PDG codes (beam 1, beam 2; 21 or ±1 … ±5,
massless) and a multiset of n final-state partons conserving every quark flavour, in
which a quark flavour absent from the initial state (a *new* pair) is at most
``n_quark_new`` (Pythia's ``HardQCD:nQuarkNew``). Its **channel name** is flavour-blind
and beam-symmetric: the quark flavours are labelled q, q', q'', … in the order they
first appear (initial partons by |pid|, then the final ones), the whole process
charge-conjugated if the first quark is an antiquark, and each side written in the
order q, qbar, q', qbar', …, g. So u ū → d d̄ and d̄ d → s s̄ are both
``qqbar>q'qbar'``, u g → u g and g ū → g ū are ``qg>qg``, u d̄ → u d̄ is
``qqbar'>qqbar'`` (ESW Table 7.1 up to crossing, for n = 2).

Only subprocesses whose |M|² :func:`forward.amplitudes.qcd_me2` provides are listed:
for n = 2 all of QCD; for n >= 3 those with at most one quark pair among all n + 2
partons (two quark pairs with gluons are not implemented).
"""

from __future__ import annotations

import functools
import itertools
import re

__all__ = [
    "FLAVOURS",
    "canonical_channel",
    "channel_name",
    "channel_names",
    "parse_channels",
    "relabelled",
    "select_channels",
    "subprocesses",
    "supported",
]

#: light quark flavours of the proton (d, u, s, c, b: massless, five-flavour scheme)
FLAVOURS = 5
_PARTONS = (21, *range(1, FLAVOURS + 1), *range(-1, -FLAVOURS - 1, -1))
_TOKEN = re.compile(r"qbar'*|q'*|g")


def supported(outgoing_pids) -> bool:
    """Whether :func:`forward.amplitudes.qcd_me2` provides |M|² for these outgoing codes:
    gluons only, one quark pair with gluons, or two quark pairs and no gluon."""
    quarks = sum(1 for p in outgoing_pids if p != 21 and p > 0)
    gluons = sum(1 for p in outgoing_pids if p == 21)
    return quarks <= 1 or (quarks == 2 and gluons == 0)


def relabelled(outgoing_pids) -> tuple[int, ...]:
    """Outgoing codes with quark flavours renamed 1, 2, … in order of appearance, of
    the codes or of their charge conjugates (the smaller tuple): equal tuples have equal
    QCD |M|² at equal momenta (QCD is flavour-blind and C-invariant)."""
    def rename(pids):
        names: dict[int, int] = {}
        out = []
        for p in pids:
            if p == 21:
                out.append(21)
                continue
            f = names.setdefault(abs(p), len(names) + 1)
            out.append(f if p > 0 else -f)
        return tuple(out)

    pids = tuple(int(p) for p in outgoing_pids)
    return min(rename(pids), rename(tuple(p if p == 21 else -p for p in pids)))


def channel_name(initial, final) -> str:
    """The flavour-blind channel name of a subprocess (module docstring).

    Args:
        initial: (a, b) PDG codes of the incoming partons.
        final: PDG codes of the outgoing partons (any order).

    Returns:
        e.g. ``"qg>qg"``, ``"qqbar>q'qbar'"``, ``"gg>qqbarg"``.
    """
    def key(p):
        return (0, 0) if p == 21 else (abs(p), 0 if p > 0 else 1)

    order = sorted(initial, key=key) + sorted(final, key=key)
    first = next((p for p in order if p != 21), None)
    sign = -1 if first is not None and first < 0 else 1
    index: dict[int, int] = {}
    for p in order:
        if p != 21:
            index.setdefault(abs(p), len(index))

    def label(p):
        return None if p == 21 else (index[abs(p)], sign * p < 0)

    # the prime count is the flavour index
    def text(side):
        labs = sorted((label(p) for p in side),
                      key=lambda lab: 10**6 if lab is None else 2 * lab[0] + lab[1])
        return "".join("g" if lab is None else ("qbar" if lab[1] else "q") + "'" * lab[0]
                       for lab in labs)

    return f"{text(initial)}>{text(final)}"


def canonical_channel(name: str) -> str:
    """A user's channel string with each side re-ordered (q, qbar, q', qbar', …, g).

    Raises:
        ValueError: not of the form ``<partons>><partons>`` with partons g, q, qbar,
            q', qbar', … (naming ``channels``).
    """
    if not isinstance(name, str) or name.count(">") != 1:
        raise ValueError(f"channels: expected entries like 'gg>gg' or 'qg>qg', got {name!r}")
    sides = []
    for side in name.strip().split(">"):
        tokens = _TOKEN.findall(side)
        if not tokens or "".join(tokens) != side.strip():
            raise ValueError(f"channels: cannot read {name!r}; expected partons g, q, qbar, "
                             "q', qbar', ... on each side of '>'")
        tokens.sort(key=lambda t: 10**6 if t == "g" else 2 * t.count("'") + t.startswith(
            "qbar"))
        sides.append("".join(tokens))
    return ">".join(sides)


@functools.lru_cache(maxsize=32)
def subprocesses(n_jets: int, n_quark_new: int = FLAVOURS) -> tuple:
    """Every supported subprocess of p p → n partons.

    Args:
        n_jets: number of final-state partons (>= 2).
        n_quark_new: flavours 1..n_quark_new may be produced as new pairs.

    Returns:
        Tuple of ``(initial, final, name)``: initial (a, b) PDG codes, final a sorted
        tuple of n PDG codes (a multiset), name of :func:`channel_name`.
    """
    out = []
    for a in _PARTONS:
        for b in _PARTONS:
            net = {f: [a, b].count(f) - [a, b].count(-f) for f in range(1, FLAVOURS + 1)}
            present = {abs(p) for p in (a, b) if p != 21}
            for final in itertools.combinations_with_replacement(_PARTONS, n_jets):
                if any(final.count(f) - final.count(-f) != net[f] for f in net):
                    continue
                if any(abs(p) > n_quark_new and abs(p) not in present
                       for p in final if p != 21):
                    continue
                outgoing = (_conj(a), _conj(b), *final)
                if not supported(outgoing):
                    continue
                out.append(((a, b), tuple(sorted(final)), channel_name((a, b), final)))
    return tuple(out)


def _conj(p: int) -> int:
    return p if p == 21 else -p


def channel_names(n_jets: int, n_quark_new: int = FLAVOURS) -> tuple[str, ...]:
    """The names of :func:`subprocesses`, gluon channels first, then sorted."""
    names = {name for _, _, name in subprocesses(n_jets, n_quark_new)}
    return tuple(sorted(names, key=lambda s: (not s.startswith("gg>g"), s)))


def parse_channels(spec, n_jets: int, n_quark_new: int = FLAVOURS) -> tuple[str, ...]:
    """The channels selected by a setting string.

    Args:
        spec: ``"all"`` or a comma list of channel names (:func:`canonical_channel`
            applies; e.g. ``"gg>gg,qg>qg"``).
        n_jets, n_quark_new: as for :func:`subprocesses`.

    Returns:
        The selected names in the order of :func:`channel_names`.

    Raises:
        TypeError: spec not a string.
        ValueError: an empty list, or a name that is not a channel at this multiplicity
            (the error lists the available ones), naming ``channels``.
    """
    return select_channels(spec, channel_names(n_jets, n_quark_new), canonical_channel,
                           f"{n_jets} jets (n_quark_new = {n_quark_new})", "gg>gg,qg>qg")


def select_channels(spec, available: tuple[str, ...], canonical, what: str,
                    example: str) -> tuple[str, ...]:
    """The channels of ``available`` that a ``channels`` setting string selects.

    Args:
        spec: ``"all"`` or a comma list of channel names.
        available: every channel name, in the order to keep.
        canonical: maps one written name to its canonical form.
        what: the process in error messages (e.g. ``"3 jets"``).
        example: a valid comma list for the TypeError's message.

    Returns:
        The selected names, in the order of ``available``.

    Raises:
        TypeError: spec not a string.
        ValueError: an empty list or an unknown name (the error lists the available
            ones), naming ``channels``.
    """
    if not isinstance(spec, str):
        raise TypeError(f"channels: expected 'all' or a comma list like '{example}', "
                        f"got {type(spec).__name__}")
    if spec.strip() == "all":
        return available
    wanted = {canonical(s) for s in spec.split(",") if s.strip()}
    if not wanted:
        raise ValueError(f"channels: expected 'all' or a comma list of {list(available)}, "
                         f"got {spec!r}")
    unknown = sorted(wanted - set(available))
    if unknown:
        raise ValueError(f"channels: {unknown} not among the channels of {what}: "
                         f"{list(available)}")
    return tuple(name for name in available if name in wanted)
