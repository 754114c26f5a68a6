r"""Unconstrained coordinates for hard events, with densities w.r.t. the one measure dμ.

Networks on the inverse side (the unfolding cINN, proposals of the MEM) model hard
events in d unconstrained real coordinates z, while every density over hard events
must be taken w.r.t. dμ = dx1 dx2 dΦ_n of :mod:`forward.events` (docs/design.md §2.1). A
:class:`HardCoordinates` does the conversion through an invertible phase-space map
(``forward(r) -> (events, log_jac)``, ``inverse(events) -> (r, -log_jac)`` with the
log-Jacobian to dμ, e.g. a process's :class:`~forward.phasespace.HadronicMap`) and an
element-wise logit:

.. math:: z = \operatorname{logit}(r), \qquad
          q_\mu(x) = q_z(z)\, \Big|\frac{\partial z}{\partial \mu}\Big|, \qquad
          \log\Big|\frac{\partial z}{\partial \mu}\Big|
          = \sum_j \big[-\log r_j - \log(1 - r_j)\big] - \text{log\_jac}(r).

Momentum conservation is built into the map, so z has exactly as many components as
the hard events have degrees of freedom (4 for a 2 → 2 process), and a density in z
is a normalised density of events. Any map gives correct densities; a map that
flattens the resonances (the process's Breit–Wigner channel) makes them easier to
learn.
"""

from __future__ import annotations

import torch

from forward._validation import check_floating, check_last_dim, check_process
from forward.events import HardEvents

__all__ = ["HardCoordinates"]


class HardCoordinates:
    """Hard events ↔ unconstrained coordinates z ∈ R^dim via a phase-space map.

    Args:
        phase_map: an invertible map with ``dim``, ``forward(r) -> (HardEvents, log_jac)``
            and ``inverse(HardEvents) -> (r, log_jac)``, log-Jacobians w.r.t. dμ.

    Attributes:
        dim: number of coordinates (the map's ``dim``).

    Example::

        process = get_process("drell-yan", mll_min=1500, mll_max=2500)
        coords = HardCoordinates.from_process(process)
        z, log_det = coords.features(events)          # z: (n, 4)
        log_q_mu = flow.log_prob(z) + log_det         # density w.r.t. dμ
    """

    def __init__(self, phase_map) -> None:
        for attr in ("dim", "forward", "inverse"):
            if not hasattr(phase_map, attr):
                raise TypeError(
                    f"phase_map: expected a map with dim, forward(r) and inverse(events), "
                    f"got {type(phase_map).__name__} without {attr!r}"
                )
        self.map = phase_map
        self.dim = int(phase_map.dim)

    @classmethod
    def from_process(cls, process, params=None, channel: int = 0) -> HardCoordinates:
        """Coordinates from one of a process's phase-space channels.

        Args:
            process: a :class:`~forward.processes.Process`.
            params: parameter values that fix the channel (e.g. the Z′ mass and width
                of its Breit–Wigner); defaults if None. The map is frozen afterwards.
            channel: index into ``process.phase_space(params)`` (0: the default channel).
        """
        maps = check_process(process).phase_space(params)
        if not isinstance(channel, int) or not 0 <= channel < len(maps):
            raise ValueError(
                f"channel: expected an integer in [0, {len(maps) - 1}], got {channel!r}"
            )
        return cls(maps[channel])

    def features(self, events: HardEvents) -> tuple[torch.Tensor, torch.Tensor]:
        """Coordinates of hard events and the log-density conversion factor.

        Args:
            events: hard events, momenta of shape (n, k, 4) in GeV.

        Returns:
            (z, log_det): z of shape (n, dim) and log|∂z/∂μ| of shape (n,), so that
            log q_μ(event) = log q_z(z) + log_det. Events outside the map's support
            (r outside (0, 1)) get z = 0 and log_det = -inf (density zero).
        """
        if not isinstance(events, HardEvents):
            raise TypeError(f"events: expected HardEvents, got {type(events).__name__}")
        r, log_jac_inv = self.map.inverse(events)
        inside = ((r > 0) & (r < 1)).all(-1) & torch.isfinite(log_jac_inv)
        r_safe = torch.where(inside.unsqueeze(-1), r, torch.full_like(r, 0.5))
        z = torch.log(r_safe) - torch.log1p(-r_safe)
        log_det = log_jac_inv - (torch.log(r_safe) + torch.log1p(-r_safe)).sum(-1)
        log_det = torch.where(inside, log_det, torch.full_like(log_det, -torch.inf))
        return z, log_det

    def events(self, z: torch.Tensor) -> tuple[HardEvents, torch.Tensor]:
        """Hard events at coordinates z (the inverse of :meth:`features`).

        Args:
            z: coordinates, shape (n, dim), any real values.

        Returns:
            (events, log_det): HardEvents with momenta (n, k, 4) in GeV and
            log|∂z/∂μ| at those events, shape (n,) (same convention as :meth:`features`).
        """
        check_floating("z", z)
        check_last_dim("z", z, self.dim)
        if z.ndim != 2:
            raise ValueError(f"z: expected shape (n, {self.dim}), got {tuple(z.shape)}")
        r = torch.sigmoid(z)
        # log r + log(1 - r) = -softplus(-z) - softplus(z), stable for large |z|
        log_r_1mr = -(torch.nn.functional.softplus(-z) + torch.nn.functional.softplus(z))
        events, log_jac = self.map.forward(r)
        return events, -log_jac - log_r_1mr.sum(-1)

    def __repr__(self) -> str:
        return f"HardCoordinates(dim={self.dim}, map={self.map!r})"
