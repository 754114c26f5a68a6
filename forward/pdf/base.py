"""The ``PDF`` interface shared by the torch grid reader and the LHAPDF wrapper.

Method names mirror LHAPDF's Python module (``xfxQ2``, ``alphasQ2``, ``flavors``...)
so code written against either reads the same. Every method takes tensors of any
broadcastable batch shape and checks its input once, with errors naming the argument.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch

from forward._validation import as_tensor, check_floating

__all__ = ["PDF", "STANDARD_PARTONS"]

#: Partons every PDF answers for: quarks ±1..±6, the gluon (21, alias 0) and the photon.
#: Those absent from a set's grid have x·f = 0, as in LHAPDF.
STANDARD_PARTONS = frozenset({*range(-6, 0), *range(1, 7), 0, 21, 22})


def _raise_scale(name: str, value: torch.Tensor, bad: torch.Tensor, expected: str) -> None:
    sample = value.detach()[bad].flatten()[:3].tolist()
    raise ValueError(
        f"{name}: expected {expected}, got {int(bad.sum())} of {value.numel()} entries "
        f"outside (NaN/inf included), e.g. {sample}"
    )


class PDF(ABC):
    """Parton densities of one PDF member on torch tensors.

    Attributes:
        set_name: the set's name, e.g. ``"NNPDF31_lo_as_0118"``.
        member: member number.
        x_min, x_max: x range of the grid.
        q2_min, q2_max: Q² range of the grid in GeV².
        device: device of returned tensors (inputs must live there).
        dtype: floating dtype of returned tensors.
    """

    set_name: str
    member: int
    x_min: float
    x_max: float
    q2_min: float
    q2_max: float
    device: torch.device
    dtype: torch.dtype

    # ----------------------------------------------------------------- to implement
    @abstractmethod
    def flavors(self) -> list[int]:
        """PDG ids held by the set, sorted (21 for the gluon)."""

    @abstractmethod
    def _xf_columns(self, x: torch.Tensor, q2: torch.Tensor, pids: list[int]) -> torch.Tensor:
        """x·f for validated flat ``x``, ``q2`` (shape (n,)) and pids; shape (n, len(pids))."""

    @abstractmethod
    def _alphas(self, q2: torch.Tensor) -> torch.Tensor:
        """α_s at validated Q² (any shape)."""

    @abstractmethod
    def to(self, device=None, dtype: torch.dtype | None = None) -> PDF:
        """A copy on ``device`` with ``dtype`` (None keeps the current one)."""

    # ------------------------------------------------------------------- checking
    def _input(self, name: str, value) -> torch.Tensor:
        if isinstance(value, torch.Tensor):
            check_floating(name, value)
            if value.device != self.device:
                raise ValueError(
                    f"{name}: tensor on {value.device} but the PDF lives on {self.device}; "
                    f"move the input or use pdf.to({str(value.device)!r})"
                )
            return value.to(self.dtype)
        if isinstance(value, bool):
            raise TypeError(f"{name}: expected a floating tensor or numbers, got bool")
        return as_tensor(name, value, dtype=self.dtype, device=self.device)

    def _check_pid(self, pid) -> int:
        if isinstance(pid, torch.Tensor) and pid.ndim == 0 and not pid.is_floating_point():
            pid = int(pid)
        if isinstance(pid, bool) or not isinstance(pid, int):
            raise TypeError(f"pid: expected an integer PDG id, got {type(pid).__name__} {pid!r}")
        if pid not in STANDARD_PARTONS and pid not in self.flavors():
            raise ValueError(
                f"pid: expected a parton PDG id, one of {sorted(STANDARD_PARTONS - {0})} "
                f"(0 is an alias of 21), got {pid}"
            )
        return 21 if pid == 0 else pid

    def _points(self, x, q2) -> tuple[torch.Tensor, torch.Tensor, torch.Size]:
        """Validate (x, Q²) and return flat broadcast copies and the batch shape."""
        xt = self._input("x", x)
        qt = self._input("q2", q2)
        bad_x = ~((xt > 0) & (xt <= 1))
        bad_q = ~(torch.isfinite(qt) & (qt >= 0))
        if bool(bad_x.any() | bad_q.any()):  # one device sync on the good path
            if bool(bad_x.any()):
                sample = xt.detach()[bad_x].flatten()[:3].tolist()
                raise ValueError(
                    f"x: expected momentum fractions in (0, 1], got {int(bad_x.sum())} of "
                    f"{xt.numel()} outside (NaN included), e.g. {sample}"
                )
            _raise_scale("q2", qt, bad_q, "finite Q² >= 0 in GeV²")
        try:  # (torch.broadcast_shapes would import torch.fx: a second on first use)
            xb, qb = torch.broadcast_tensors(xt, qt)
        except RuntimeError as err:
            raise ValueError(
                f"x, q2: shapes {tuple(xt.shape)} and {tuple(qt.shape)} do not broadcast"
            ) from err
        return xb.reshape(-1), qb.reshape(-1), xb.shape

    # ------------------------------------------------------------------ public API
    def xfxQ2_all(self, x, q2, pids: Sequence[int] | None = None) -> torch.Tensor:  # noqa: N802
        """x·f for several flavours in one vectorised pass.

        Args:
            x: momentum fractions in (0, 1], any shape broadcastable with ``q2``.
            q2: factorisation scale Q² in GeV², ≥ 0.
            pids: PDG ids of the columns (0 = 21 = gluon); default :meth:`flavors`.
                Standard partons missing from the set give zeros.

        Returns:
            x·f(x, Q²), shape (*batch, len(pids)) with batch the broadcast shape of
            ``x`` and ``q2``, on the PDF's device and dtype.
        """
        if pids is None:
            pids = self.flavors()
        if isinstance(pids, (int, str)) or not isinstance(pids, Sequence):
            raise TypeError(f"pids: expected a sequence of PDG ids, got {type(pids).__name__}")
        if len(pids) == 0:
            raise ValueError("pids: expected at least one PDG id, got an empty sequence")
        ids = [self._check_pid(p) for p in pids]
        xf, qf, shape = self._points(x, q2)
        return self._xf_columns(xf, qf, ids).reshape(*shape, len(ids))

    def xfxQ2(self, pid: int, x, q2) -> torch.Tensor:  # noqa: N802 (LHAPDF name)
        """x·f for one flavour.

        Args:
            pid: PDG id (0 or 21 for the gluon).
            x: momentum fractions in (0, 1], any shape broadcastable with ``q2``.
            q2: Q² in GeV², ≥ 0.

        Returns:
            x·f(x, Q²), broadcast shape of ``x`` and ``q2``.
        """
        ident = self._check_pid(pid)
        xf, qf, shape = self._points(x, q2)
        return self._xf_columns(xf, qf, [ident]).reshape(shape)

    def xfxQ(self, pid: int, x, q) -> torch.Tensor:  # noqa: N802 (LHAPDF name)
        """x·f at the scale Q in GeV (≥ 0); see :meth:`xfxQ2`."""
        qt = self._input("q", q)
        bad = ~(torch.isfinite(qt) & (qt >= 0))
        if bool(bad.any()):
            _raise_scale("q", qt, bad, "finite Q >= 0 in GeV")
        return self.xfxQ2(pid, x, qt * qt)

    def alphasQ2(self, q2) -> torch.Tensor:  # noqa: N802 (LHAPDF name)
        """α_s of the set at Q².

        Args:
            q2: Q² in GeV², > 0, any shape.

        Returns:
            α_s(Q²), shape of ``q2``.
        """
        qt = self._input("q2", q2)
        bad = ~(torch.isfinite(qt) & (qt > 0))
        if bool(bad.any()):
            _raise_scale("q2", qt, bad, "finite Q² > 0 in GeV²")
        return self._alphas(qt)

    def alphasQ(self, q) -> torch.Tensor:  # noqa: N802 (LHAPDF name)
        """α_s at the scale Q in GeV (> 0); see :meth:`alphasQ2`."""
        qt = self._input("q", q)
        bad = ~(torch.isfinite(qt) & (qt > 0))
        if bool(bad.any()):
            _raise_scale("q", qt, bad, "finite Q > 0 in GeV")
        return self._alphas(qt * qt)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.set_name!r}, member={self.member}, "
            f"device={self.device}, dtype={self.dtype})"
        )
