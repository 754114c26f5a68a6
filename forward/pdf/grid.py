"""Parsing of LHAPDF6 files: the set's ``.info`` metadata and ``lhagrid1`` member grids.

An ``lhagrid1`` member file is a short header (``Key: value`` lines) closed by a
``---`` line, then one block per Q subgrid, each closed by ``---``:

* a line of x knots (the same in every block),
* a line of Q knots in GeV (consecutive blocks share their boundary knot),
* a line of PDG ids (21 or 0 for the gluon),
* ``n_x · n_Q`` lines of x·f values, x-major: the line for (i_x, i_Q) is number
  ``i_x · n_Q + i_Q`` of the block, one column per PDG id.

The ``.info`` file is YAML; we read the flat ``Key: value`` subset LHAPDF sets use
(numbers, strings and flow lists ``[a, b, ...]`` that may span lines) with a small
parser of our own, so no YAML dependency is needed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

__all__ = ["LHAGrid", "Subgrid", "parse_info", "read_info", "read_lhagrid1"]


@dataclass(frozen=True)
class Subgrid:
    """One Q subgrid of a member file.

    Attributes:
        q: Q knots in GeV, shape (n_q,), float64, increasing.
        values: x·f at the knots, shape (n_x, n_q, n_flavours), float64, columns in
            the order of :attr:`LHAGrid.pids`.
    """

    q: torch.Tensor
    values: torch.Tensor


@dataclass(frozen=True)
class LHAGrid:
    """A parsed ``lhagrid1`` member: knots and values on the CPU in float64.

    Attributes:
        path: the file it came from.
        header: the member's header entries (e.g. ``PdfType``, ``Format``).
        x: x knots, shape (n_x,), increasing, in (0, 1].
        pids: PDG ids of the value columns (gluon as 21).
        subgrids: the Q subgrids, increasing in Q.
    """

    path: Path
    header: dict
    x: torch.Tensor
    pids: tuple[int, ...]
    subgrids: tuple[Subgrid, ...] = field(repr=False)

    @property
    def q_min(self) -> float:
        """Lowest Q knot in GeV."""
        return float(self.subgrids[0].q[0])

    @property
    def q_max(self) -> float:
        """Highest Q knot in GeV."""
        return float(self.subgrids[-1].q[-1])


def _scalar(text: str):
    """A YAML-like scalar: int, float, bool or string (quotes removed)."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def parse_info(text: str, source: str = "<string>") -> dict:
    """Parse the ``Key: value`` YAML subset of LHAPDF ``.info`` files and headers.

    Args:
        text: file contents.
        source: name used in error messages.

    Returns:
        A dict from key to int, float, bool, str or list of those.
    """
    out: dict = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].rstrip()
        i += 1
        if not line.strip() or line.strip() == "---" or line.lstrip().startswith("#"):
            continue
        line = re.sub(r"\s+#[^'\"]*$", "", line)  # trailing comment
        if ":" not in line:
            raise ValueError(f"{source}: cannot read line {i} as 'Key: value': {line!r}")
        key, value = line.split(":", 1)
        value = value.strip()
        if value.startswith("["):
            while "]" not in value and i < len(lines):
                value += " " + lines[i].strip()
                i += 1
            if "]" not in value:
                raise ValueError(f"{source}: unterminated list for key {key.strip()!r}")
            inner = value[1 : value.index("]")]
            out[key.strip()] = [_scalar(v) for v in inner.split(",") if v.strip()]
        else:
            out[key.strip()] = _scalar(value)
    return out


def read_info(path: str | Path) -> dict:
    """Read a set's ``.info`` file; see :func:`parse_info`."""
    path = Path(path)
    return parse_info(path.read_text(), str(path))


_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _floats(line: str, what: str, source: str) -> list[float]:
    """Numbers of a line. Some files (e.g. Pythia's CT14qed copy) lack the space between
    numbers such as ``0.0e+000.0e+00``; like C's ``strtod`` we then read a number greedily
    and restart after it."""
    try:
        return [float(v) for v in line.split()]
    except ValueError:
        pass
    tokens = line.split()
    if not all(_NUMBER.fullmatch(tok) or _NUMBER.match(tok) for tok in tokens):
        raise ValueError(f"{source}: cannot read the {what} line: {line[:80]!r}")
    numbers = [float(v) for v in _NUMBER.findall(line)]
    if len("".join(_NUMBER.findall(line))) != len("".join(tokens)):
        raise ValueError(f"{source}: cannot read the {what} line: {line[:80]!r}")
    return numbers


def read_lhagrid1(path: str | Path) -> LHAGrid:
    """Read an LHAPDF6 ``lhagrid1`` member file.

    Args:
        path: the ``.dat`` file.

    Returns:
        The parsed grid, tensors in float64 on the CPU.

    Raises:
        ValueError: the file is not ``lhagrid1`` or is malformed (mismatched x knots or
            ids between subgrids, wrong number of values, missing ``---``).
    """
    path = Path(path)
    src = str(path)
    lines = path.read_text().splitlines()
    seps = [i for i, ln in enumerate(lines) if ln.strip() == "---"]
    if len(seps) < 2:
        raise ValueError(f"{src}: not an LHAPDF6 grid (expected a header and '---' blocks)")
    header = parse_info("\n".join(lines[: seps[0]]), src)
    fmt = str(header.get("Format", "lhagrid1"))
    if fmt != "lhagrid1":
        raise ValueError(f"{src}: expected Format lhagrid1, got {fmt!r}")

    x_ref: list[float] | None = None
    pids_ref: tuple[int, ...] | None = None
    subgrids = []
    for b0, b1 in zip(seps[:-1], seps[1:], strict=True):
        block = lines[b0 + 1 : b1]
        if len(block) < 4:
            raise ValueError(f"{src}: subgrid after line {b0 + 1} is too short")
        x = _floats(block[0], "x knots", src)
        q = _floats(block[1], "Q knots", src)
        try:
            pids = tuple(21 if int(v) == 0 else int(v) for v in block[2].split())
        except ValueError as err:
            raise ValueError(f"{src}: cannot read the flavour line {block[2]!r}") from err
        if x_ref is None:
            x_ref, pids_ref = x, pids
        elif x != x_ref:
            raise ValueError(f"{src}: x knots differ between subgrids (line {b0 + 2})")
        elif pids != pids_ref:
            raise ValueError(f"{src}: flavour ids differ between subgrids (line {b0 + 4})")
        data = _floats(" ".join(block[3:]), "x·f values", src)
        expected = len(x) * len(q) * len(pids)
        if len(data) != expected:
            raise ValueError(
                f"{src}: subgrid after line {b0 + 1} has {len(data)} values, expected "
                f"n_x·n_Q·n_flavours = {len(x)}·{len(q)}·{len(pids)} = {expected}"
            )
        if len(q) < 2:
            raise ValueError(f"{src}: a Q subgrid needs at least 2 knots, got {len(q)}")
        qt = torch.tensor(q, dtype=torch.float64)
        if not bool((qt[1:] > qt[:-1]).all()):
            raise ValueError(f"{src}: Q knots are not increasing in subgrid after line {b0 + 1}")
        if subgrids and abs(q[0] / float(subgrids[-1].q[-1]) - 1.0) > 1e-5:
            raise ValueError(
                f"{src}: subgrid starts at Q = {q[0]} but the previous one ends at "
                f"{float(subgrids[-1].q[-1])}"
            )
        values = torch.tensor(data, dtype=torch.float64).reshape(len(x), len(q), len(pids))
        subgrids.append(Subgrid(q=qt, values=values))

    xt = torch.tensor(x_ref, dtype=torch.float64)
    repeated = torch.zeros(len(x_ref), dtype=torch.bool)
    repeated[1:] = xt[1:] == xt[:-1]
    if bool(repeated.any()):  # a knot written twice (Pythia's CT14qed copy): keep the first
        xt = xt[~repeated]
        subgrids = [Subgrid(q=sg.q, values=sg.values[~repeated]) for sg in subgrids]
    if len(xt) < 2 or not bool((xt[1:] > xt[:-1]).all()) or not 0 < xt[0] <= xt[-1] <= 1:
        raise ValueError(f"{src}: x knots must be increasing in (0, 1] with at least 2 of them")
    if len(set(pids_ref)) != len(pids_ref):
        raise ValueError(f"{src}: repeated flavour ids {pids_ref}")
    return LHAGrid(path=path, header=header, x=xt, pids=pids_ref, subgrids=tuple(subgrids))
