r"""The hadronic integrand: PDFs × |M|² × flux, in pb per unit of the hard-event measure.

For a process with flavour channels (a, b) (parton a from beam 1, b from beam 2)

.. math::  \frac{d\sigma}{d\mu} = \sum_{ab} f_a(x_1, \mu_F^2)\, f_b(x_2, \mu_F^2)\,
           \frac{\overline{|M_{ab}|^2}}{2 \hat s}\; \Theta_\text{cuts}
           \times 0.3893793721 \cdot 10^{9}\ \text{pb GeV}^2,

with respect to dμ = dx1 dx2 dΦ_n of :mod:`forward.events`, f = (x f)/x from the
PDF set, with negative x·f (leading-order sets at large x) set to zero as Pythia 8
does, μ_F² from :meth:`~forward.processes.base.Process.hard_scales` (the process's
scale times ``muf_factor``²), and 1/(2ŝ) the flux of massless partons. On the unit
hypercube of a phase-space map the weight is
:math:`w(r) = d\sigma/d\mu(\text{map}(r))\, e^{\text{log\_jac}(r)}`,
whose mean over uniform r is the cross section in pb.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from forward._validation import check_floating, check_process, resolve_device
from forward.events import HardEvents

__all__ = ["GEV2_TO_PB", "HadronicIntegrand", "load_pdf"]

#: (ħc)² in pb GeV²: converts a cross section in GeV⁻² to pb
GEV2_TO_PB = 0.3893793721e9


def load_pdf(pdf, *, dtype: torch.dtype = torch.float64, device=None):
    """A PDF object from a set name, or the object itself.

    Args:
        pdf: an LHAPDF6 set name (``"NNPDF31_lo_as_0118"``, ``"NAME/MEMBER"``), an
            LHAPDF id (int, e.g. 315000), or an object with ``xfxQ2_all(x, q2, pids)``.
        dtype, device: for a set loaded by name.

    Raises:
        TypeError: neither a name nor a PDF-like object.
    """
    if isinstance(pdf, str) or (isinstance(pdf, int) and not isinstance(pdf, bool)):
        from forward.pdf import mkPDF  # the grid reader is loaded on first use

        return mkPDF(pdf, 0, device=device, dtype=dtype)
    if not hasattr(pdf, "xfxQ2_all"):
        raise TypeError(
            f"pdf: expected a PDF set name, an LHAPDF id or an object with "
            f"xfxQ2_all(x, q2, pids), "
            f"got {type(pdf).__name__}"
        )
    return pdf


class HadronicIntegrand:
    """dσ/dμ of a process, and its weight on the unit hypercube of a phase-space map.

    Args:
        process: a :class:`~forward.processes.base.Process`.
        pdf: PDF object or set name; default the process's ``pdf`` setting.
        params: parameter values by name (numbers or tensors of shape () or (n,));
            defaults for the rest. Can be overridden per call.
        channel: phase-space map used by :meth:`__call__`: an index into
            ``process.phase_space(params)`` or a map object.
        dtype, device: of the default parameters and of a PDF loaded by name.

    Raises:
        ValueError: unknown parameter names or values outside their ranges.
    """

    def __init__(
        self,
        process,
        pdf=None,
        params: Mapping[str, Any] | None = None,
        *,
        channel=0,
        dtype: torch.dtype = torch.float64,
        device=None,
    ) -> None:
        self.process = check_process(process)
        self.dtype = dtype
        self.device = device = resolve_device(device)
        self.params = process.params(params, dtype=dtype, device=device)
        if pdf is None:
            pdf = getattr(process, "pdf", None)
            if pdf is None:
                raise ValueError("pdf: the process has no default PDF; pass pdf=<set name>")
        self.pdf = load_pdf(pdf, dtype=dtype, device=device)
        if isinstance(channel, int):
            maps = process.phase_space(self.params)
            if not 0 <= channel < len(maps):
                raise ValueError(
                    f"channel: expected an index in [0, {len(maps) - 1}] into "
                    f"{type(process).__name__}.phase_space(), got {channel}"
                )
            channel = maps[channel]
        self.map = channel
        self.dim = int(channel.dim)
        pids = sorted({p for ch in process.flavour_channels for p in ch})
        self._pids = pids
        self._index_a = [pids.index(a) for a, _ in process.flavour_channels]
        self._index_b = [pids.index(b) for _, b in process.flavour_channels]

    def _params(self, params) -> dict[str, torch.Tensor]:
        return self.params if params is None else self.process.params(
            params, dtype=self.dtype, device=self.device)

    def channel_contributions(
        self, events: HardEvents, params: Mapping[str, Any] | None = None
    ) -> torch.Tensor:
        """dσ/dμ split by flavour channel (the summands over (a, b)).

        Args:
            events: hard events, momenta (n, k, 4) in GeV.
            params: parameter values; default those given at construction.

        Returns:
            Tensor of shape (n, len(process.flavour_channels)) in pb per unit of
            dx1 dx2 dΦ_n; zero for events failing the cuts.
        """
        if not isinstance(events, HardEvents):
            raise TypeError(f"events: expected HardEvents, got {type(events).__name__}")
        check_floating("events.momenta", events.momenta)
        params = self._params(params)
        me = self.process.matrix_element(events, params)
        mu_f2, _ = self.process.hard_scales(events, params)
        n = len(events)
        x = torch.cat([events.x1, events.x2])
        xf = self.pdf.xfxQ2_all(x, torch.cat([mu_f2, mu_f2]), pids=self._pids)
        # negative x·f (LO sets at large x) count as zero, as in Pythia's PDF::xf
        f = xf.clamp(min=0) / x.unsqueeze(-1)
        fa = f[:n, self._index_a]
        fb = f[n:, self._index_b]
        flux = 0.5 / events.shat
        dsig = fa * fb * me * (flux * GEV2_TO_PB).unsqueeze(-1)
        keep = self.process.cuts(events)
        return torch.where(keep.unsqueeze(-1), dsig, torch.zeros_like(dsig))

    def differential(
        self, events: HardEvents, params: Mapping[str, Any] | None = None
    ) -> torch.Tensor:
        """dσ/dμ summed over flavour channels, shape (n,) in pb per unit of dx1 dx2 dΦ_n."""
        return self.channel_contributions(events, params).sum(-1)

    def sample(
        self, r: torch.Tensor, params: Mapping[str, Any] | None = None
    ) -> tuple[HardEvents, torch.Tensor, torch.Tensor]:
        """Map hypercube points to events and their per-channel weights.

        Args:
            r: points of the unit hypercube, shape (n, dim).
            params: parameter values; default those given at construction.

        Returns:
            (events, channel_weights, log_jac): HardEvents; weights per flavour channel
            dσ/dμ · exp(log_jac), shape (n, n_channels) in pb; log_jac shape (n,).

        Raises:
            ValueError: non-finite weights, with the region (ŝ, x1, x2) and parameters.
        """
        events, log_jac = self.map.forward(r)
        contrib = self.channel_contributions(events, params)
        weights = contrib * torch.exp(log_jac).unsqueeze(-1)
        self._check_weights(weights, events, params)
        return events, weights, log_jac

    def __call__(self, r: torch.Tensor, params: Mapping[str, Any] | None = None) -> torch.Tensor:
        """Weights on the hypercube, dσ/dμ(map(r)) · exp(log_jac(r)).

        Args:
            r: points of the unit hypercube, shape (n, dim); dtype/device of the result.
            params: parameter values; default those given at construction.

        Returns:
            Weights of shape (n,) in pb; their mean over uniform r is σ.
        """
        _, weights, _ = self.sample(r, params)
        return weights.sum(-1)

    def _check_weights(self, weights, events, params) -> None:
        bad = ~torch.isfinite(weights).all(dim=-1)
        if bool(bad.any()):
            i = int(torch.nonzero(bad)[0])
            shown = {k: v.detach().flatten()[:1].tolist()
                     for k, v in self._params(params).items()}
            raise ValueError(
                f"{type(self.process).__name__}: {int(bad.sum())} of {len(bad)} weights are "
                f"NaN/inf, e.g. at shat={float(events.shat[i]):.6g} GeV², "
                f"x1={float(events.x1[i]):.6g}, x2={float(events.x2[i]):.6g}, "
                f"parameters {shown}"
            )

    def __repr__(self) -> str:
        return f"HadronicIntegrand({self.process!r}, map={self.map!r})"
