r"""Lorentz-invariant inputs of the amplitude surrogates, and physics-informed targets.

**Inputs.** For a hard event with incoming partons :math:`p_a, p_b` and final-state
momenta :math:`k_1 \dots k_n` (the order of the process's ``final_state``), label the
n + 2 momenta :math:`q_0 = p_a, q_1 = p_b, q_{i+2} = k_i` and use every pair
invariant :math:`s_{ij} = 2\, q_i \cdot q_j` (i < j) through

.. math:: \phi_{ij} = \log(s_{ij} / \hat s), \qquad \text{plus } \log(\hat s / 1\,\text{GeV}^2)

and, for each final-state particle, :math:`m_i^2/\hat s` (zero for massless ones,
constant for on-shell ones, a line shape for off-shell decay products). All are
invariant under Lorentz transformations of the event. Constant columns are kept (their
standard deviation is set to one by :class:`FeatureScaler`).

**Identical particles.** A permutation of identical final-state particles (same PDG id)
permutes the :math:`\phi_{ij}`; :func:`identical_permutations` lists the permutations
of the final state that a surrogate averages over (see
:class:`forward.surrogate.models.SurrogateNet`), which makes it exactly symmetric.

**Targets.** The surrogates regress :math:`y = \log|M|^2 - \log R` with a simple known
factor R that carries the singular and dimensionful behaviour
(:func:`log_reference`): ``"eikonal"`` is

.. math:: R = \hat s^{\,2 - n} \prod_{i\ \text{massless}}
              \frac{\hat s^2}{s_{a i}\, s_{b i}},

the product of the initial-state emission denominators of every massless final-state
particle (for :math:`q\bar q \to \gamma\gamma g` exactly the propagator structure of the
tree amplitude, which leaves a bounded, smooth remainder); ``"dimension"`` keeps only
:math:`\hat s^{\,2-n}` (|M|² of a 2 → n process has mass dimension 4 − 2n);
``"parke-taylor"`` is the helicity-summed Parke–Taylor (MHV) form of m = n + 2 gluons
summed over the colour orderings,

.. math:: R = \Big(\sum_{i<j} s_{ij}^4\Big) \sum_{\sigma \in S_{m-1}/\mathbb{Z}_2}
              \prod_{k=1}^{m} \frac{1}{s_{\sigma_k \sigma_{k+1}}}
              \qquad (\sigma_{m+1} = \sigma_1 = 0),

over all momenta (incoming included; with :math:`s_{ij} = 2 |q_i\cdot q_j|` each cyclic
product has the sign of the all-outgoing one). For 4 and 5 gluons the full-colour,
helicity-summed tree |M|² is exactly proportional to it (up to the couplings), for
more gluons it carries every soft and collinear pole of the MHV part, which leaves a
smooth remainder for multi-jet processes (:mod:`forward.processes.jets`).

**Canonical order.** Instead of averaging over the permutations of identical particles
(whose number grows as k!), a surrogate can read them in a canonical order
(:func:`canonical_order`): identical particles sorted by decreasing energy in the
partonic centre-of-mass frame, :math:`(p_a + p_b)\cdot k_i`, a Lorentz invariant
computed from each particle alone, so the features (and the prediction) are
bit-for-bit invariant under exchanging identical particles, at the cost of one
network pass instead of k!.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import nn

from forward._validation import check_choice, check_event_momenta, check_finite
from forward.events import HardEvents

__all__ = [
    "REFERENCES",
    "FeatureScaler",
    "canonical_order",
    "identical_permutations",
    "invariant_features",
    "log_reference",
    "n_features",
]

#: known factors R of the regression target log|M|² - log R
REFERENCES = ("eikonal", "dimension", "none", "parke-taylor")


def _check_events(events: HardEvents, n_out: int | None = None) -> None:
    if not isinstance(events, HardEvents):
        raise TypeError(f"events: expected HardEvents, got {type(events).__name__}")
    check_event_momenta("events.momenta", events.momenta)
    if n_out is not None and events.momenta.shape[1] != n_out:
        raise ValueError(
            f"events: expected momenta of shape (n, {n_out}, 4), "
            f"got {tuple(events.momenta.shape)}"
        )


def n_features(n_out: int) -> int:
    """Number of input features for ``n_out`` final-state particles: pairs + 1 + n_out."""
    m = n_out + 2
    return m * (m - 1) // 2 + 1 + n_out


def _pair_invariants(q: torch.Tensor) -> torch.Tensor:
    """2 q_i·q_j for i < j, shape (n, m(m-1)/2), from momenta of shape (n, m, 4)."""
    metric = torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=q.dtype, device=q.device)
    gram = torch.einsum("nid,njd->nij", q * metric, q)
    i, j = torch.triu_indices(q.shape[1], q.shape[1], offset=1, device=q.device)
    return 2 * gram[:, i, j]


def invariant_features(events: HardEvents, permutation: Sequence[int] | None = None):
    """Lorentz-invariant features of hard events (see the module docstring).

    Args:
        events: hard events, momenta of shape (n, k, 4) as (E, px, py, pz) in GeV.
        permutation: order in which to read the k final-state particles (a permutation
            of range(k)); default the given order.

    Returns:
        Features of shape (n, n_features(k)), same dtype as the momenta:
        log(s_ij/ŝ) for the pairs of (p_a, p_b, k_1..k_k) in row-major order, then
        log(ŝ/GeV²), then m_i²/ŝ.

    Raises:
        ValueError: non-physical events (s_ij <= 0 or ŝ <= 0), naming how many.
    """
    _check_events(events)
    p = events.momenta
    if permutation is not None:
        perm = list(permutation)
        if sorted(perm) != list(range(p.shape[1])):
            raise ValueError(
                f"permutation: expected a permutation of range({p.shape[1]}), got {perm}"
            )
        p = p[:, perm]
    q = torch.cat([events.incoming.to(p.dtype), p], dim=1)
    shat = events.shat.to(p.dtype)
    s = _pair_invariants(q)
    bad = ~(s > 0).all(dim=-1) | ~(shat > 0)
    if bool(bad.any()):
        raise ValueError(
            f"events: {int(bad.sum())} of {len(bad)} events have a pair invariant "
            "2 p_i.p_j <= 0 or shat <= 0 (unphysical momenta)"
        )
    m2 = p[..., 0] ** 2 - (p[..., 1:] ** 2).sum(-1)
    feats = torch.cat(
        [torch.log(s / shat.unsqueeze(-1)), torch.log(shat).unsqueeze(-1),
         m2 / shat.unsqueeze(-1)],
        dim=-1,
    )
    return check_finite("features", feats)


def canonical_order(events: HardEvents, final_state: Sequence[int]) -> HardEvents:
    """The events with identical final-state particles sorted by decreasing CM energy.

    Args:
        events: hard events, momenta (n, k, 4) as (E, px, py, pz) in GeV.
        final_state: PDG ids of the k final-state particles; particles with the same id
            are sorted among their own positions, the others stay in place.

    Returns:
        HardEvents with the momenta reordered per event (same x1, x2, sqrt_s); the key
        (p_a + p_b)·k_i is invariant and depends on particle i alone, so any
        permutation of identical particles in the input gives the same output (ties
        aside, which have measure zero).
    """
    _check_events(events, len(final_state))
    p = events.momenta
    pin = events.incoming.to(p.dtype).sum(1, keepdim=True)  # (n, 1, 4)
    metric = torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=p.dtype, device=p.device)
    key = (p * (pin * metric)).sum(-1)  # (n, k)
    index = torch.arange(p.shape[1], device=p.device).expand(p.shape[0], -1).clone()
    groups: dict[int, list[int]] = {}
    for i, pid in enumerate(final_state):
        groups.setdefault(int(pid), []).append(i)
    for pos in groups.values():
        if len(pos) < 2:
            continue
        cols = torch.tensor(pos, device=p.device)
        order = torch.argsort(key[:, cols], dim=-1, descending=True, stable=True)
        index[:, cols] = cols[order]
    moved = torch.gather(p, 1, index.unsqueeze(-1).expand_as(p))
    return HardEvents(moved, events.x1, events.x2, events.sqrt_s)


def identical_permutations(final_state: Sequence[int]) -> list[tuple[int, ...]]:
    """All permutations of the final state that only exchange identical particles.

    Args:
        final_state: PDG ids of the final-state particles, e.g. (22, 22, 21).

    Returns:
        Permutations of range(k), the identity first; e.g. [(0, 1, 2), (1, 0, 2)].
    """
    fs = [int(x) for x in final_state]
    groups: dict[int, list[int]] = {}
    for i, pid in enumerate(fs):
        groups.setdefault(pid, []).append(i)
    perms = []
    for choice in itertools.product(*(itertools.permutations(g) for g in groups.values())):
        perm = list(range(len(fs)))
        for g, image in zip(groups.values(), choice, strict=True):
            for i, j in zip(g, image, strict=True):
                perm[i] = j
        perms.append(tuple(perm))
    return perms


def log_reference(events: HardEvents, kind: str = "eikonal", *, massless_tol: float = 1e-6):
    """log R of the known factor divided out of |M|² (see the module docstring).

    Args:
        events: hard events, momenta (n, k, 4) in GeV.
        kind: ``"eikonal"``, ``"dimension"``, ``"none"`` or ``"parke-taylor"``.
        massless_tol: a particle counts as massless where |m²| < massless_tol · ŝ.

    Returns:
        log R, shape (n,), R in GeV^(4-2k).
    """
    check_choice("kind", kind, REFERENCES)
    _check_events(events)
    p = events.momenta
    n_out = p.shape[1]
    shat = events.shat.to(p.dtype)
    if kind == "none":
        return torch.zeros_like(shat)
    out = (2 - n_out) * torch.log(shat)
    if kind == "dimension":
        return out
    if kind == "parke-taylor":
        return _log_parke_taylor(events)
    pin = events.incoming.to(p.dtype)
    metric = torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=p.dtype, device=p.device)
    s_a = 2 * (p * (pin[:, :1] * metric)).sum(-1)  # (n, k)
    s_b = 2 * (p * (pin[:, 1:] * metric)).sum(-1)
    m2 = p[..., 0] ** 2 - (p[..., 1:] ** 2).sum(-1)
    massless = m2.abs() < massless_tol * shat.unsqueeze(-1)
    terms = 2 * torch.log(shat).unsqueeze(-1) - torch.log(s_a) - torch.log(s_b)
    return out + torch.where(massless, terms, torch.zeros_like(terms)).sum(-1)


def _cyclic_orders(m: int) -> torch.Tensor:
    """Cyclic orders of m labels up to reflection, each starting at 0: ((m-1)!/2, m)."""
    rows = [(0, *perm) for perm in itertools.permutations(range(1, m))
            if m < 3 or perm[0] < perm[-1]]
    return torch.tensor(rows, dtype=torch.long)


def _log_parke_taylor(events: HardEvents) -> torch.Tensor:
    """log of the summed Parke–Taylor form (module docstring), shape (n,)."""
    p = events.momenta
    q = torch.cat([events.incoming.to(p.dtype), p], dim=1)  # (n, m, 4)
    m = q.shape[1]
    metric = torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=q.dtype, device=q.device)
    s = 2 * torch.einsum("nid,njd->nij", q * metric, q).abs()  # (n, m, m), 2|q_i.q_j|
    shat = events.shat.to(p.dtype)
    i, j = torch.triu_indices(m, m, offset=1, device=q.device)
    # scale by ŝ so that the sums stay O(1) in float64 for any m
    x = s / shat[:, None, None]
    num = torch.log((x[:, i, j] ** 4).sum(-1))
    orders = _cyclic_orders(m).to(q.device)
    a, b = orders, orders.roll(-1, dims=1)
    log_x = torch.log(x)
    chain = log_x[:, a, b].sum(-1)  # (n, orders): log Π x_{σk σk+1}
    den = torch.logsumexp(-chain, dim=-1)
    return num + den + (4 - m) * torch.log(shat)


class FeatureScaler(nn.Module):
    """Standardisation x -> (x - mean) / std with statistics from training inputs.

    Columns with zero spread (e.g. log s_ab/ŝ = 0) get std = 1.

    Args:
        n: number of columns.
    """

    def __init__(self, n: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n, dtype=torch.float64))
        self.register_buffer("std", torch.ones(n, dtype=torch.float64))

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> FeatureScaler:
        """Set mean and std from data ``x`` of shape (n, columns); returns self."""
        x = x.to(torch.float64)
        mean = x.mean(0)
        std = x.std(0) if x.shape[0] > 1 else torch.ones_like(mean)
        std = torch.where(std > 1e-12 * (1 + mean.abs()), std, torch.ones_like(std))
        self.mean.copy_(mean)
        self.std.copy_(std)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised ``x``, same shape and dtype."""
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """``z * std + mean``, same shape and dtype."""
        return z * self.std.to(z.dtype) + self.mean.to(z.dtype)
