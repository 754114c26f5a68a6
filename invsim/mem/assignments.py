r"""Jet–parton assignments: the likelihood sums over the ways reco objects can be matched.

The b-tag does not tell b from b̄, so in t t̄ → b ℓ⁺ ν b̄ ℓ⁻ ν̄ the two b-jets of a reco
event (ordered by pT, :class:`~invsim.observables.RecoObservables`) can be either
(b, b̄) or (b̄, b). Each *assignment* is a permutation π of the columns of x_reco
(:attr:`RecoObservables.assignments`, identity first).

**Normalisation.** The networks are trained on *matched* pairs: the b-jet columns in
the order of the process's b and b̄ (:func:`truth_order`, by ΔR), so the transfer
r(x_m | y) is a density of the matched observables x_m. The observed x is x_m with its
b-jets sorted by pT: the map x_m ↦ x is two-to-one with unit Jacobian, so the density
of the observed (sorted) x is the **sum** over the assignments,

.. math:: r_\text{obs}(x \mid y) = \sum_\pi r(\pi x \mid y),

on the region where the b-jets are pT-ordered (an average would describe unordered
jets; the two differ by log 2 per event, a constant in θ). :class:`MEMLikelihood`
uses it for every event of a model whose observables have ``assign_bjets`` (t t̄ by
default, :meth:`RecoObservables.for_process`).

**Proposal.** :class:`AssignmentMixture` symmetrises the proposal: with P
assignments it draws n/P samples from q(y | π x) for each π (stratified) and uses the
mixture density :math:`\bar q(y \mid x) = \sum_\pi w_\pi\, q(y \mid \pi x)`,
:math:`w_\pi = n_\pi / n`, in the weights (the balance heuristic: unbiased, and each
assignment's peak is covered by its own draws).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from forward.events import HardEvents

__all__ = ["AssignmentMixture", "canonical_order", "check_assignments", "log_transfer_sum",
           "truth_order"]


def check_assignments(assignments, dim: int) -> tuple[tuple[int, ...], ...]:
    """Validate column permutations of x_reco (identity first).

    Args:
        assignments: a sequence of permutations of ``range(dim)`` (sequences of ints);
            an empty sequence means the identity only.
        dim: number of columns d of x_reco.

    Returns:
        A tuple of permutations, the identity first, no duplicates.

    Raises:
        TypeError, ValueError: not a sequence of permutations of range(dim).
    """
    if isinstance(assignments, (str, bytes)) or not isinstance(assignments, Sequence):
        raise TypeError(f"assignments: expected a sequence of column permutations, got "
                        f"{assignments!r}")
    ident = tuple(range(dim))
    out = [ident]
    for perm in assignments:
        try:
            p = tuple(int(i) for i in perm)
        except (TypeError, ValueError):
            raise TypeError(f"assignments: expected permutations of range({dim}), got "
                            f"{perm!r}") from None
        if sorted(p) != list(ident):
            raise ValueError(f"assignments: expected permutations of range({dim}), got {p}")
        if p not in out:
            out.append(p)
    return tuple(out)


def canonical_order(x_reco: torch.Tensor, perms: Sequence[Sequence[int]]) -> torch.Tensor:
    """Each row replaced by the lexicographically largest of its permutations.

    The likelihood of a row is a sum over the permutations, so it does not depend on
    which of them is given; taking one representative also makes the proposal draws
    (and so the Monte Carlo estimate) the same for every ordering of the input: the
    log p of an event with its two b-jets swapped is the same to rounding. For the
    b-jet swap of t t̄ the representative has the b-jets in descending pT, the
    canonical order of :class:`~invsim.observables.RecoObservables`.

    Args:
        x_reco: shape (m, d).
        perms: the assignments (identity first).

    Returns:
        Tensor (m, d).
    """
    best = x_reco
    for perm in perms[1:]:
        cand = x_reco[:, list(perm)]
        diff = cand - best
        nz = diff != 0
        first = nz.to(torch.int64).argmax(-1, keepdim=True)  # first differing column
        larger = (diff.gather(1, first)[:, 0] > 0) & nz.any(-1)
        best = torch.where(larger[:, None], cand, best)
    return best


def truth_order(x_reco: torch.Tensor, x_hard: torch.Tensor, observables,
                final_state) -> torch.Tensor:
    """x_reco with the b-jet columns in the order of the process's b and b̄ (by ΔR).

    For each event, of the assignments (:attr:`RecoObservables.assignments`) the one of
    the smallest Σ ΔR² between the b-jets and the b-quarks of the hard event is kept.

    Args:
        x_reco: reco observables, shape (n, d) float64 (NaN rows pass through).
        x_hard: hard (pT, η, φ) per final-state particle, shape (n, 3k).
        observables: the :class:`~invsim.observables.RecoObservables` of x_reco.
        final_state: the process's PDG ids (k,); b-quarks are ±5, in this order.

    Returns:
        Tensor (n, d), the matched observables.
    """
    perms = observables.assignments
    if len(perms) <= 1:
        return x_reco
    cols = observables.bjet_columns
    slots = [i for i, pid in enumerate(final_state) if abs(int(pid)) == 5]
    if len(slots) != len(cols):
        raise ValueError(f"final_state: expected {len(cols)} b-quarks to match the b-jets, "
                         f"got ids {tuple(final_state)}")
    cost = []
    for perm in perms:
        xp = x_reco[:, list(perm)]
        c = torch.zeros(len(x_reco), dtype=x_reco.dtype, device=x_reco.device)
        for (i_eta, i_phi), s in zip(((c0 + 1, c0 + 2) for c0 in cols), slots, strict=True):
            deta = xp[:, i_eta] - x_hard[:, 3 * s + 1]
            dphi = torch.remainder(xp[:, i_phi] - x_hard[:, 3 * s + 2] + math.pi,
                                   2 * math.pi) - math.pi
            c = c + deta ** 2 + dphi ** 2
        cost.append(torch.nan_to_num(c, nan=0.0))
    best = torch.stack(cost, 0).argmin(0)  # (n,)
    index = torch.tensor(perms, device=x_reco.device)[best]  # (n, d)
    return x_reco.gather(1, index)


def log_transfer_sum(log_transfer, x_reco: torch.Tensor, events: HardEvents,
                     perms: Sequence[Sequence[int]]) -> torch.Tensor:
    """log Σ_π r(π x | y) for paired rows.

    Args:
        log_transfer: callable (x_reco (n, d), events) -> log r (n,).
        x_reco: shape (n, d); events: n hard events.
        perms: the assignments (identity first).

    Returns:
        Tensor (n,) float64.
    """
    parts = [log_transfer(x_reco[:, list(p)], events) for p in perms]
    return parts[0] if len(parts) == 1 else torch.logsumexp(torch.stack(parts), 0)


class AssignmentMixture:
    """A proposal symmetrised over assignments (see the module docstring).

    Args:
        proposal: ``sample_and_log_prob(x_reco, n, theta, *, generator)`` and
            ``log_prob(hard, x_reco, theta)`` (e.g. :class:`~invsim.unfold.Unfolder`).
        perms: the assignments, identity first (:func:`check_assignments`).
    """

    def __init__(self, proposal, perms: Sequence[Sequence[int]]) -> None:
        if not callable(getattr(proposal, "log_prob", None)):
            raise TypeError(f"proposal: the assignment mixture needs log_prob(hard, x_reco), "
                            f"which {type(proposal).__name__} lacks")
        self.proposal = proposal
        self.perms = [list(p) for p in perms]

    def _counts(self, n: int) -> list[int]:
        p = len(self.perms)
        return [n // p + (i < n % p) for i in range(p)]

    def _log_mix(self, hard: HardEvents, x_rep: torch.Tensor, theta, shares) -> torch.Tensor:
        parts = [self.proposal.log_prob(hard, x_rep[:, perm], theta).to(torch.float64)
                 + math.log(w) for perm, w in zip(self.perms, shares, strict=True) if w > 0]
        return torch.logsumexp(torch.stack(parts), 0)

    def sample_and_log_prob(self, x_reco: torch.Tensor, n: int, theta=None, *,
                            generator=None) -> tuple[HardEvents, torch.Tensor]:
        """n draws per reco event (n_π from each assignment) and the mixture log q̄.

        Returns:
            (HardEvents of m * n events, event-major; log q̄ of shape (m, n)).
        """
        m = x_reco.shape[0]
        counts = self._counts(n)
        shares = [c / n for c in counts]
        moms, x1s, x2s = [], [], []
        sqrt_s = None
        for perm, c in zip(self.perms, counts, strict=True):
            if c == 0:
                continue
            ev, _ = self.proposal.sample_and_log_prob(x_reco[:, perm], c, theta,
                                                      generator=generator)
            k = ev.momenta.shape[1]
            moms.append(ev.momenta.view(m, c, k, 4))
            x1s.append(ev.x1.view(m, c))
            x2s.append(ev.x2.view(m, c))
            sqrt_s = ev.sqrt_s
        k = moms[0].shape[2]
        events = HardEvents(torch.cat(moms, 1).reshape(m * n, k, 4),
                            torch.cat(x1s, 1).reshape(-1), torch.cat(x2s, 1).reshape(-1),
                            sqrt_s)
        with torch.no_grad():
            x_rep = x_reco.repeat_interleave(n, 0)
            lq = self._log_mix(events, x_rep, theta, shares)
        return events, lq.view(m, n)

    def log_prob(self, hard: HardEvents, x_reco: torch.Tensor, theta=None, *,
                 n: int | None = None) -> torch.Tensor:
        """The mixture density log q̄(y | x) of paired rows, shape (rows,); equal shares
        unless ``n`` (the draws per event, giving the stratified shares) is given."""
        p = len(self.perms)
        shares = [1.0 / p] * p if n is None else [c / n for c in self._counts(n)]
        return self._log_mix(hard, x_reco, theta, shares)
