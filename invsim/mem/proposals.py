r"""Combining MEM proposals: a fixed-weight mixture sampled in strata.

:class:`StratifiedMixtureProposal` (formerly ``invsim.mem.MixtureProposal``, a name
kept for one release with a FutureWarning; not to be confused with
:class:`forward.nis.MixtureProposal`, the flow + defensive-component proposal of NIS)
draws round(n·w_k) samples per reco event from component k
(the rest from the first) and scores every draw with the mixture density
:math:`q = \sum_k w_k q_k`. With the counts fixed at the weights, the importance
weights f/q are unbiased (multiple importance sampling with the balance heuristic),
and no component can make them blow up where another one covers the integrand:
f/q ≤ f/(w_k q_k) for every k.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from forward.events import HardEvents
from invsim._moved import moved_attributes

__all__ = ["StratifiedMixtureProposal"]


class StratifiedMixtureProposal:
    """q(x_hard | x_reco) = Σ_k w_k q_k(x_hard | x_reco), a MEM proposal sampled in strata.

    Fixed weights, a fixed number of draws per component (stratified sampling), every
    draw scored with the whole mixture (balance heuristic).

    Args:
        components: proposals with ``sample_and_log_prob(x_reco, n, theta=None, *,
            generator=None)`` and ``log_prob(hard, x_reco, theta=None)`` (densities
            w.r.t. dμ).
        weights: mixture weights, positive, one per component (normalised here).

    Raises:
        ValueError/TypeError: empty or mismatched components and weights.
    """

    def __init__(self, components: Sequence, weights: Sequence[float]) -> None:
        comps = list(components)
        w = [float(x) for x in weights]
        if not comps or len(comps) != len(w):
            raise ValueError(
                f"components, weights: expected equal non-zero lengths, got {len(comps)} and "
                f"{len(w)}"
            )
        for i, c in enumerate(comps):
            for m in ("sample_and_log_prob", "log_prob"):
                if not callable(getattr(c, m, None)):
                    raise TypeError(f"components[{i}]: {type(c).__name__} has no {m}()")
        if not all(math.isfinite(x) and x > 0 for x in w):
            raise ValueError(f"weights: expected finite positive numbers, got {w}")
        total = sum(w)
        self.components = comps
        self.weights = [x / total for x in w]

    def counts(self, n: int) -> list[int]:
        """Draws per component for n per reco event (each >= 1, summing to n)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < len(self.components):
            raise ValueError(f"n: expected an integer >= {len(self.components)}, got {n!r}")
        c = [max(1, round(n * w)) for w in self.weights[1:]]
        first = n - sum(c)
        if first < 1:
            raise ValueError(f"n: {n} draws cannot serve the weights {self.weights}")
        return [first, *c]

    def log_prob(self, hard: HardEvents, x_reco, theta=None) -> torch.Tensor:
        """log Σ_k w_k q_k(hard | x_reco), shape (m,) float64, for paired rows."""
        parts = [c.log_prob(hard, x_reco, theta).to(torch.float64) + math.log(w)
                 for c, w in zip(self.components, self.weights, strict=True)]
        return torch.logsumexp(torch.stack(parts, -1), -1)

    def sample_and_log_prob(self, x_reco, n: int, theta=None, *,
                            generator: torch.Generator | None = None):
        """n draws per reco event in strata, scored with the mixture density.

        Returns:
            (HardEvents of m*n events, event-major; log q, shape (m, n) float64). With
            strata the unbiased weights use the mixture density with the realised
            shares n_k/n, which are the weights up to rounding; those shares are used.
        """
        counts = self.counts(n)
        shares = [k / n for k in counts]
        drawn = []
        m = None
        for comp, k in zip(self.components, counts, strict=True):
            ev, _ = comp.sample_and_log_prob(x_reco, k, theta, generator=generator)
            ev = ev.to(torch.float64)
            m = len(ev) // k
            drawn.append(ev)
        mom = torch.cat([e.momenta.reshape(m, k, *e.momenta.shape[1:])
                         for e, k in zip(drawn, counts, strict=True)], 1)
        x1 = torch.cat([e.x1.reshape(m, k) for e, k in zip(drawn, counts, strict=True)], 1)
        x2 = torch.cat([e.x2.reshape(m, k) for e, k in zip(drawn, counts, strict=True)], 1)
        events = HardEvents(mom.flatten(0, 1), x1.flatten(), x2.flatten(), drawn[0].sqrt_s)
        xr = torch.as_tensor(x_reco)
        x_rep = xr.repeat_interleave(n, 0)
        parts = [c.log_prob(events, x_rep.to(_device_of(c, xr)), theta).to(torch.float64).cpu()
                 + math.log(s) for c, s in zip(self.components, shares, strict=True)]
        log_q = torch.logsumexp(torch.stack(parts, -1), -1).view(m, n)
        return events, log_q.to(events.momenta.device)


def _device_of(component, default: torch.Tensor):
    try:
        return next(component.parameters()).device
    except (AttributeError, StopIteration):
        return default.device


__getattr__ = moved_attributes(
    __name__, {"MixtureProposal": "invsim.mem.proposals:StratifiedMixtureProposal"})
