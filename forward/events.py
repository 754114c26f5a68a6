r"""Hard events and the one measure every density over them refers to.

A *hard event* of a hadron-collider process :math:`p p \to k_1 \dots k_n` is the
final-state momenta in the hadronic centre-of-mass (lab) frame together with the
momentum fractions :math:`x_1, x_2` of the incoming partons. Beam 1 moves along
:math:`+z`, each beam carries :math:`\sqrt{s}/2`, so the incoming partons are

.. math::  p_a = x_1 \tfrac{\sqrt s}{2} (1, 0, 0, 1), \qquad
           p_b = x_2 \tfrac{\sqrt s}{2} (1, 0, 0, -1).

**The measure** (docs/design.md §2.1). Every density over hard events, from
:math:`d\sigma/d\mu` in ``forward.integrand`` to a flow's ``log_prob``, and every
phase-space map's log-Jacobian, is taken with respect to

.. math::  d\mu = dx_1\, dx_2\, d\Phi_n(p_a + p_b; k_1, \dots, k_n),
           \qquad d\Phi_n = (2\pi)^4 \delta^4\!\big(p_a + p_b - \textstyle\sum_i k_i\big)
           \prod_{i=1}^n \frac{d^3 k_i}{(2\pi)^3\, 2 E_i},

the Lorentz-invariant n-body phase space with its :math:`2\pi` factors (so the
massless two-body volume is :math:`1/(8\pi)`), in GeV\ :sup:`2n-4`. A map
``forward(r) -> (event, log_jac)`` from the unit hypercube satisfies
:math:`\int f\, d\mu = \int_{[0,1]^d} f(\mathrm{event}(r))\, e^{\mathrm{log\_jac}(r)}\, dr`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from forward._validation import check_event_momenta

__all__ = ["HardEvents", "incoming_momenta"]


def incoming_momenta(x1: torch.Tensor, x2: torch.Tensor, sqrt_s: float) -> torch.Tensor:
    """Momenta of the two incoming partons in the lab frame.

    Args:
        x1: momentum fraction of the parton from beam 1 (moving along +z), shape (n,).
        x2: momentum fraction of the parton from beam 2 (along -z), shape (n,).
        sqrt_s: hadronic centre-of-mass energy in GeV.

    Returns:
        Tensor of shape (n, 2, 4) as (E, px, py, pz) in GeV.
    """
    e1 = x1 * (0.5 * sqrt_s)
    e2 = x2 * (0.5 * sqrt_s)
    z = torch.zeros_like(e1)
    pa = torch.stack([e1, z, z, e1], dim=-1)
    pb = torch.stack([e2, z, z, -e2], dim=-1)
    return torch.stack([pa, pb], dim=-2)


@dataclass
class HardEvents:
    """A batch of hard events: final-state momenta and the partons' momentum fractions.

    Attributes:
        momenta: final-state momenta in the lab frame, shape (n, k, 4) as (E, px, py, pz)
            in GeV; the particle order is the process's ``final_state``.
        x1: momentum fraction of the parton from beam 1, shape (n,).
        x2: momentum fraction of the parton from beam 2, shape (n,).
        sqrt_s: hadronic centre-of-mass energy in GeV.
    """

    momenta: torch.Tensor
    x1: torch.Tensor
    x2: torch.Tensor
    sqrt_s: float

    def __post_init__(self) -> None:
        check_event_momenta("momenta", self.momenta)
        n = self.momenta.shape[0]
        for name in ("x1", "x2"):
            x = getattr(self, name)
            if not isinstance(x, torch.Tensor) or x.shape != (n,):
                got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
                raise ValueError(f"{name}: expected shape ({n},) to match momenta, got {got}")
        if not self.sqrt_s > 0:
            raise ValueError(f"sqrt_s: expected a positive energy in GeV, got {self.sqrt_s}")

    def __len__(self) -> int:
        return self.momenta.shape[0]

    @property
    def incoming(self) -> torch.Tensor:
        """Incoming parton momenta, shape (n, 2, 4) in GeV."""
        return incoming_momenta(self.x1, self.x2, self.sqrt_s)

    @property
    def shat(self) -> torch.Tensor:
        """Partonic centre-of-mass energy squared x1 x2 s, shape (n,) in GeV²."""
        return self.x1 * self.x2 * self.sqrt_s**2

    def to(self, *args, **kwargs) -> HardEvents:
        """Move/convert every tensor like ``torch.Tensor.to``."""
        return HardEvents(
            self.momenta.to(*args, **kwargs),
            self.x1.to(*args, **kwargs),
            self.x2.to(*args, **kwargs),
            self.sqrt_s,
        )

    def __getitem__(self, index) -> HardEvents:
        """Select events by index, slice or boolean mask."""
        return HardEvents(self.momenta[index], self.x1[index], self.x2[index], self.sqrt_s)
