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

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from forward._validation import check_event_momenta

__all__ = ["HardEvents", "final_state_permutation", "incoming_momenta", "order_final_state"]


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


def _lepton_class(pids: torch.Tensor) -> torch.Tensor:
    """Flavour-blind lepton class of PDG ids: ±1 charged lepton (pid sign), ±2 neutrino,
    0 anything else; shape and dtype of ``pids``."""
    a = pids.abs()
    sign = torch.sign(pids)
    charged = (a == 11) | (a == 13) | (a == 15)
    neutral = (a == 12) | (a == 14) | (a == 16)
    return torch.where(charged, sign, torch.where(neutral, 2 * sign, torch.zeros_like(pids)))


def _as_ids(name: str, x, device) -> torch.Tensor:
    """PDG ids as an int64 tensor on ``device``; TypeError for non-integer input."""
    if not isinstance(x, torch.Tensor):
        if x is None or isinstance(x, (str, bytes)):
            raise TypeError(f"{name}: expected integer PDG ids, got {type(x).__name__}")
        try:
            x = torch.as_tensor(x)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(f"{name}: expected integer PDG ids, got {type(x).__name__}") from err
    if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
        raise TypeError(f"{name}: expected integer PDG ids, got {x.dtype}")
    return x.to(device=device, dtype=torch.int64)


def final_state_permutation(
    momenta: torch.Tensor,
    pids: torch.Tensor | Sequence[int],
    final_state: torch.Tensor | Sequence[int],
) -> torch.Tensor:
    """Per event, which particle goes to each slot of ``final_state``.

    Slots are filled in order of ``final_state``, first by exact PDG id, then (for
    events whose multiset of ids differs from ``final_state``) charged leptons and
    neutrinos of another flavour fill a slot of the same kind and id sign (e⁻ ↔ μ⁻ ↔ τ⁻,
    ν_e ↔ ν_μ ↔ ν_τ, likewise for antiparticles); when several particles fit, the one
    with the largest pT takes the earliest slot (so identical ids end up pT-ordered,
    descending). Vectorised over events (a loop over the k slots only).

    Args:
        momenta: shape (n, k, 4) as (E, px, py, pz) in GeV (for the pT order).
        pids: PDG ids of ``momenta``'s particles, shape (k,) or (n, k), integer.
        final_state: the target order, k PDG ids (e.g. a process's ``final_state``).

    Returns:
        int64 tensor ``perm`` of shape (n, k): slot j of event i takes particle
        ``perm[i, j]``.

    Raises:
        ValueError: shapes that do not match, or an event whose particles cannot fill
            ``final_state`` (the message names the first such event and its ids).
        TypeError: non-integer ids.
    """
    check_event_momenta("momenta", momenta)
    n, k = momenta.shape[:2]
    dev = momenta.device
    pids, target = _as_ids("pids", pids, dev), _as_ids("final_state", final_state, dev)
    if target.shape != (k,):
        raise ValueError(f"final_state: expected {k} PDG ids to match momenta "
                         f"{tuple(momenta.shape)}, got shape {tuple(target.shape)}")
    if pids.shape == (k,):
        pids = pids.expand(n, k)
    if pids.shape != (n, k):
        raise ValueError(f"pids: expected shape ({k},) or ({n}, {k}), got {tuple(pids.shape)}")
    pt2 = momenta[..., 1] ** 2 + momenta[..., 2] ** 2
    neg = torch.full_like(pt2, -1.0)
    free = torch.ones(n, k, dtype=torch.bool, device=dev)
    perm = torch.full((n, k), -1, dtype=torch.int64, device=dev)
    rows = torch.arange(n, device=dev)
    cls, target_cls = _lepton_class(pids), _lepton_class(target)
    passes = ((pids, target), (cls, target_cls))
    for pass_no, (have, want) in enumerate(passes):
        for j in range(k):
            if pass_no == 1 and int(target_cls[j]) == 0:
                continue  # only leptons change flavour
            cand = free & (have == want[j]) & (perm[:, j] < 0)[:, None]
            pick = torch.where(cand, pt2, neg).argmax(-1)
            ok = cand.any(-1)
            perm[:, j] = torch.where(ok, pick, perm[:, j])
            free[rows[ok], pick[ok]] = False
    bad = (perm < 0).any(-1)
    if bool(bad.any()):
        i = int(bad.nonzero()[0])
        raise ValueError(
            f"pids: event {i} has ids {pids[i].tolist()}, which cannot be put in the order of "
            f"final_state {target.tolist()} ({int(bad.sum())} of {n} events fail; only charged "
            "leptons and neutrinos may differ in flavour)"
        )
    return perm


def order_final_state(
    momenta: torch.Tensor,
    pids: torch.Tensor | Sequence[int],
    final_state: torch.Tensor | Sequence[int],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Put each event's particles into the order of ``final_state``.

    Generators list the final state in their own order (MadGraph's LHE files put ℓ⁺
    before ℓ⁻); invsim's processes and flows expect their ``final_state`` order, e.g.
    ``(11, -11)`` for Drell–Yan or ``(5, -11, 12, -5, 11, -12)`` for dileptonic t t̄.
    The matching rules are those of :func:`final_state_permutation`: exact ids first,
    then lepton flavours may differ (Drell–Yan with ``leptons="both"`` names
    ``(11, -11)`` but has μ⁺μ⁻ events too), identical ids by pT descending.

    Args:
        momenta: shape (n, k, 4) as (E, px, py, pz) in GeV.
        pids: PDG ids, shape (k,) or (n, k), integer.
        final_state: the target order, k PDG ids.

    Returns:
        ``(momenta, pids)`` permuted per event: shapes (n, k, 4) (dtype of ``momenta``)
        and (n, k) int64; ``pids[i]`` are event i's own ids (e.g. (13, -13) for a μ⁺μ⁻
        event ordered as (11, -11)).

    Raises:
        ValueError: shapes that do not match or an event that cannot be matched (the
            message names its index and ids).

    Example:
        >>> p, ids = order_final_state(momenta, torch.tensor([-11, 11]), (11, -11))
    """
    perm = final_state_permutation(momenta, pids, final_state)
    n, k = perm.shape
    ids = _as_ids("pids", pids, momenta.device).expand(n, k).gather(1, perm)
    return momenta.gather(1, perm[..., None].expand(n, k, 4)), ids
