"""``LHAPDFBackend``: the LHAPDF6 C++ library behind the same :class:`PDF` interface.

LHAPDF is not on PyPI; it is optional and used only with ``mkPDF(..., backend="lhapdf")``.
It evaluates point by point on the CPU (a Python loop over points), so it is a reference
for checks, not a fast path; results come back as tensors on the requested device.
"""

from __future__ import annotations

import importlib

import torch

from forward.alphas import RunningAlphaS
from forward.pdf.base import PDF
from forward.pdf.gridpdf import canonical_device

__all__ = ["LHAPDFBackend", "import_lhapdf"]


def import_lhapdf():
    """Import the ``lhapdf`` module or raise an ``ImportError`` that says how to get it."""
    try:
        return importlib.import_module("lhapdf")
    except ImportError as err:
        raise ImportError(
            "backend='lhapdf' needs the LHAPDF6 Python module `lhapdf`, which is not "
            "importable here. It is not on PyPI: install LHAPDF 6 from https://lhapdf.hepforge.org "
            "(or conda-forge: `conda install -c conda-forge lhapdf`), or use the default "
            "backend='torch', which reads the same grids."
        ) from err


class LHAPDFBackend(PDF):
    """A member loaded through LHAPDF's own Python module.

    Args:
        set_name: LHAPDF set name.
        member: member number.
        device: device of returned tensors.
        dtype: floating dtype of returned tensors.
        alphas_mz: when given, α_s comes from :class:`RunningAlphaS` (2 loops) with this
            α_s(M_Z) instead of LHAPDF's own α_s.
    """

    def __init__(
        self,
        set_name: str,
        member: int = 0,
        *,
        device=None,
        dtype: torch.dtype = torch.float64,
        alphas_mz: float | None = None,
    ) -> None:
        lhapdf = import_lhapdf()
        if hasattr(lhapdf, "setVerbosity"):
            lhapdf.setVerbosity(0)
        self._pdf = lhapdf.mkPDF(set_name, member)
        self.set_name = set_name
        self.member = member
        self.device = canonical_device(device)
        self.dtype = dtype
        self._alphas_mz = alphas_mz
        self._running = (
            RunningAlphaS(alphas_mz, order=2, device=self.device, dtype=dtype)
            if alphas_mz is not None
            else None
        )
        self.x_min, self.x_max = float(self._pdf.xMin), float(self._pdf.xMax)
        self.q2_min, self.q2_max = float(self._pdf.q2Min), float(self._pdf.q2Max)
        self._flavors = sorted(21 if p == 0 else int(p) for p in self._pdf.flavors())

    def flavors(self) -> list[int]:
        """PDG ids of the set, sorted."""
        return list(self._flavors)

    def _xf_columns(self, x, q2, pids):
        xs = x.detach().cpu().double().tolist()
        qs = q2.detach().cpu().double().tolist()
        rows = [[self._pdf.xfxQ2(p, xi, qi) for p in pids] for xi, qi in zip(xs, qs, strict=True)]
        out = torch.tensor(rows, dtype=torch.float64).reshape(len(xs), len(pids))
        return out.to(device=self.device, dtype=self.dtype)

    def _alphas(self, q2):
        if self._running is not None:
            return self._running(q2).to(q2.dtype)
        flat = q2.detach().cpu().double().reshape(-1).tolist()
        out = torch.tensor([self._pdf.alphasQ2(v) for v in flat], dtype=torch.float64)
        return out.reshape(q2.shape).to(device=self.device, dtype=self.dtype)

    def to(self, device=None, dtype: torch.dtype | None = None) -> LHAPDFBackend:
        """A copy returning tensors on ``device`` with ``dtype``."""
        return LHAPDFBackend(
            self.set_name,
            self.member,
            device=self.device if device is None else device,
            dtype=self.dtype if dtype is None else dtype,
            alphas_mz=self._alphas_mz,
        )
