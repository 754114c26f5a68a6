"""Parton densities from LHAPDF6 grids, evaluated in torch on any device.

The API mirrors LHAPDF's Python module::

    from forward import pdf
    p = pdf.mkPDF("NNPDF31_lo_as_0118")         # Pythia's copy works too (no .info)
    xg = p.xfxQ2(21, x, q2)                      # x·f, shape = broadcast(x, q2)
    xf = p.xfxQ2_all(x, q2)                      # shape (*batch, len(p.flavors()))
    als = p.alphasQ2(q2)
    p = pdf.mkPDF(315000)                        # by LHAPDF id (forward.pdf.ids)
    members = pdf.mkPDFs("NNPDF31_lo_as_0118")   # every installed member

Modules: :mod:`~forward.pdf.grid` (file parsing), :mod:`~forward.pdf.interpolation`
(log-bicubic interpolation and extrapolation policy), :mod:`~forward.pdf.discovery`
(where sets are found), :mod:`~forward.pdf.ids` (LHAPDF ids),
:mod:`~forward.pdf.gridpdf` (the torch reader), :mod:`~forward.pdf.lhapdf_backend`
(LHAPDF wrapper), :mod:`~forward.pdf.factory` (``mkPDF``, ``mkPDFs``).
"""

from forward.pdf.base import PDF, STANDARD_PARTONS
from forward.pdf.discovery import PDFSetNotFoundError, available_sets, search_places
from forward.pdf.factory import mkPDF, mkPDFs
from forward.pdf.gridpdf import GridPDF
from forward.pdf.ids import resolve_lhapdf_id
from forward.pdf.lhapdf_backend import LHAPDFBackend

__all__ = [
    "PDF",
    "STANDARD_PARTONS",
    "GridPDF",
    "LHAPDFBackend",
    "PDFSetNotFoundError",
    "available_sets",
    "mkPDF",
    "mkPDFs",
    "resolve_lhapdf_id",
    "search_places",
]
