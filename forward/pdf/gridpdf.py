"""``GridPDF``: an LHAPDF6 grid member evaluated in torch on any device."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch

from forward._validation import resolve_device
from forward.alphas import RunningAlphaS
from forward.pdf.base import PDF
from forward.pdf.grid import LHAGrid
from forward.pdf.interpolation import HermiteAlphaS, LogBicubicTable

__all__ = ["AlphaSSpec", "GridPDF", "canonical_device"]

_TABLE_CACHE_SIZE = 8


def canonical_device(device) -> torch.device:
    """``device`` with its index filled in (``"cuda"`` -> ``cuda:0``); None means CPU.

    Raises:
        ValueError, TypeError: see :func:`forward._validation.resolve_device`.
    """
    return resolve_device(device)


@dataclass(frozen=True)
class AlphaSSpec:
    """How a set gets α_s.

    Attributes:
        kind: ``"ipol"`` (tabulated AlphaS_Qs/AlphaS_Vals), ``"running"`` (from
            α_s(M_Z) via :class:`forward.alphas.RunningAlphaS`) or ``"missing"``.
        qs: Q knots in GeV for ``"ipol"``.
        values: α_s at ``qs`` for ``"ipol"``.
        running: keyword arguments of :class:`RunningAlphaS` for ``"running"``.
        message: for ``"missing"``, what to do about it.
    """

    kind: str
    qs: tuple[float, ...] = ()
    values: tuple[float, ...] = ()
    running: tuple[tuple[str, object], ...] = ()
    message: str = ""

    def build(self, device, dtype):
        """The α_s callable for ``device``/``dtype``, or None when missing."""
        if self.kind == "ipol":
            return HermiteAlphaS(self.qs, self.values, device=device, dtype=dtype)
        if self.kind == "running":
            return RunningAlphaS(**dict(self.running), device=device, dtype=dtype)
        return None


class GridPDF(PDF):
    """x·f(x, Q²) of one LHAPDF6 grid member, interpolated log-bicubically in torch.

    Build it with :func:`forward.pdf.mkPDF`. The parsed grid is kept (on the CPU) so
    :meth:`to` does not read the file again. Interpolation and extrapolation follow
    :mod:`forward.pdf.interpolation`; negative grid values are returned as they are
    (LHAPDF does the same; Pythia 8 clips x·f at zero).

    Args:
        grid: the parsed member.
        set_name: name of the set.
        member: member number.
        info: the set's ``.info`` entries (empty when there is none).
        alphas: how to get α_s.
        device: device of the tables and results.
        dtype: floating dtype of the tables and results.
    """

    def __init__(
        self,
        grid: LHAGrid,
        *,
        set_name: str,
        member: int,
        info: dict,
        alphas: AlphaSSpec,
        device=None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise TypeError(f"dtype: expected a floating torch dtype, got {dtype!r}")
        self.grid = grid
        self.info = dict(info)
        self.set_name = set_name
        self.member = member
        self.device = canonical_device(device)
        self.dtype = dtype
        self._alphas_spec = alphas
        self._alphas_fn = alphas.build(self.device, dtype)
        self._table = LogBicubicTable(
            grid.x,
            [sg.q for sg in grid.subgrids],
            [sg.values for sg in grid.subgrids],
            device=self.device,
            dtype=dtype,
        )
        self.x_min, self.x_max = self._table.x_min, self._table.x_max
        self.q2_min, self.q2_max = self._table.q2_min, self._table.q2_max
        self._column = {pid: i for i, pid in enumerate(grid.pids)}
        self._flavors = sorted(grid.pids)
        # Flavour-selected tables, keyed by the pid tuple: a small per-object LRU.
        self._selected: OrderedDict[tuple[int, ...], torch.Tensor] = OrderedDict()

    def flavors(self) -> list[int]:
        """PDG ids held by the grid, sorted (21 for the gluon)."""
        return list(self._flavors)

    def _table_for(self, pids: list[int]) -> torch.Tensor:
        key = tuple(pids)
        table = self._selected.get(key)
        if table is None:
            zero = self._table.n_flavours
            cols = torch.tensor([self._column.get(p, zero) for p in pids], dtype=torch.long)
            table = self._table.select(cols)
            self._selected[key] = table
            if len(self._selected) > _TABLE_CACHE_SIZE:
                self._selected.popitem(last=False)
        else:
            self._selected.move_to_end(key)
        return table

    def _xf_columns(self, x, q2, pids):
        return self._table.evaluate(x, q2, self._table_for(pids))

    def _alphas(self, q2):
        if self._alphas_fn is None:
            raise ValueError(self._alphas_spec.message)
        return self._alphas_fn(q2).to(q2.dtype)

    def to(self, device=None, dtype: torch.dtype | None = None) -> GridPDF:
        """A copy on ``device`` with ``dtype`` (None keeps the current one); no re-parsing.

        Args:
            device: target device.
            dtype: target floating dtype.

        Returns:
            A new :class:`GridPDF` (``self`` when nothing changes).
        """
        device = self.device if device is None else canonical_device(device)
        dtype = self.dtype if dtype is None else dtype
        if device == self.device and dtype == self.dtype:
            return self
        return GridPDF(
            self.grid,
            set_name=self.set_name,
            member=self.member,
            info=self.info,
            alphas=self._alphas_spec,
            device=device,
            dtype=dtype,
        )
