"""The one-loop strong coupling of the QCD processes, cached per dtype and device.

One implementation for every process whose |M|² carries α_s(μ_R²) at one loop with
Pythia's hard-process thresholds (:func:`forward.processes.ttbar.running_alpha_s`).
"""

from __future__ import annotations

import torch

from forward.alphas import RunningAlphaS
from forward.processes.ttbar import running_alpha_s

__all__ = ["OneLoopAlphaS"]


class OneLoopAlphaS:
    """α_s(μ²) at one loop for any α_s(M_Z), scalar or per event, with exact gradients.

    At one loop 1/α_s(μ²) − 1/α_s(M_Z) does not depend on α_s(M_Z), so one reference
    coupling per (dtype, device), built on first use, serves every value.
    """

    def __init__(self) -> None:
        self._reference: dict = {}

    def __call__(self, alpha_s_mz: torch.Tensor, mu2: torch.Tensor) -> torch.Tensor:
        """α_s(μ²).

        Args:
            alpha_s_mz: α_s(M_Z), shape () or (n,); differentiable.
            mu2: renormalisation scale squared in GeV², shape (n,).

        Returns:
            α_s(μ²), shape (n,), the dtype and device of ``mu2``.
        """
        key = (mu2.dtype, mu2.device)
        if key not in self._reference:
            self._reference[key] = RunningAlphaS(0.118, order=1, dtype=mu2.dtype,
                                                 device=mu2.device)
        return running_alpha_s(alpha_s_mz, mu2, 1, reference=self._reference[key])
