r"""Sequential two-body decay chains: a tree of resonances with sampled invariant masses.

A chain P → ... → k_1 ... k_n is described by a tree: the root (the total momentum P)
and every :class:`Resonance` decay into exactly two children, each either an ``int``
(the index of a final-state particle in the output) or another :class:`Resonance`.
The map uses the factorisation

.. math:: d\Phi_n(P; p_1 \dots p_n) = d\Phi_{n-1}(P; q, p_3 \dots p_n)\,
          \frac{dq^2}{2\pi}\, d\Phi_2(q; p_1, p_2)

at every resonance: its mass squared is drawn by its ``sampling`` (e.g. a
Breit–Wigner) and every decay's angles as in :mod:`~forward.phasespace.two_body`
(in the rest frame of the decaying momentum reached by a pure boost from P's frame).
The weight is relative to the full dΦ_n: it integrates to the n-body volume whatever
the samplings (they only redistribute points).

**Ranges.** At a decay X → A B with mass m_X: m_A² runs over
[max(m_min_A, μ_A)², min(m_max_A, m_X - μ_B)²] and then m_B² over
[max(m_min_B, μ_B)², min(m_max_B, m_X - m_A)²], where μ is the smallest mass a
subtree can have (the sum of its final-state masses, or the resonance's ``m_min`` if
larger). Every kinematically allowed configuration is covered once.

**Random numbers** are consumed depth-first: at each decay, first the masses of its
resonance children (first child first), then its (cos θ, φ), then the first child's
subtree, then the second's. Example: t t̄ → (b (ℓ⁺ ν)) (b̄ (ℓ⁻ ν̄)) uses
r0 = m_t, r1 = m_t̄, r2..3 = tt̄ angles, r4 = m_W+, r5..6 = t angles, r7..8 = W+ angles,
r9 = m_W-, r10..11 = t̄ angles, r12..13 = W- angles (3n - 4 = 14).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from forward.kinematics import mass2
from forward.phasespace.invariants import BreitWignerSampling, InvariantSampling
from forward.phasespace.two_body import decay_angles, decay_momenta, log_two_body_volume

__all__ = ["DecayChain", "Resonance", "top_decay_tree", "ttbar_decay_tree"]

_LOG_2PI = math.log(2 * math.pi)


@dataclass(frozen=True)
class Resonance:
    """An intermediate particle of a decay chain.

    Attributes:
        children: two entries, each a final-state index (int) or a Resonance.
        sampling: sampling of its invariant mass squared, e.g. ``BreitWignerSampling(m, Γ)``.
        m_min: lower cut on its invariant mass in GeV (default: the children's threshold).
        m_max: upper cut on its invariant mass in GeV (default: none but kinematics).
    """

    children: tuple
    sampling: InvariantSampling
    m_min: float = 0.0
    m_max: float = math.inf

    def __post_init__(self) -> None:
        if not isinstance(self.children, tuple) or len(self.children) != 2:
            raise ValueError(f"children: expected a tuple of two children, got {self.children!r}")
        if not isinstance(self.sampling, InvariantSampling):
            raise TypeError(
                f"sampling: expected an InvariantSampling, got {type(self.sampling).__name__}"
            )
        if not (self.m_min >= 0 and self.m_max > self.m_min):
            raise ValueError(
                f"m_min, m_max: expected 0 <= m_min < m_max, got {self.m_min}, {self.m_max}"
            )


def top_decay_tree(
    m_w: float = 80.385, width_w: float = 2.085, b: int = 0, up: int = 1, down: int = 2
) -> tuple:
    """Children of a top quark for t → b W(→ f f̄'), for :class:`DecayChain`.

    Args:
        m_w, width_w: W mass and width in GeV (Breit–Wigner sampling of m_W²).
        b, up, down: output indices of the b quark and the W's two daughters
            (e.g. ℓ⁺ and ν for t → b ℓ⁺ ν).

    Returns:
        ``(b, Resonance((up, down), BreitWignerSampling(m_w, width_w)))``.
    """
    return (b, Resonance((up, down), BreitWignerSampling(m_w, width_w)))


def ttbar_decay_tree(
    m_top: float = 172.5,
    width_top: float = 1.4,
    m_w: float = 80.385,
    width_w: float = 2.085,
) -> tuple:
    """Root children of t t̄ → (b f1 f̄2)(b̄ f3 f̄4), output order (b, f1, f̄2, b̄, f3, f̄4).

    For the dilepton channel the order is (b, ℓ⁺, ν, b̄, ℓ⁻, ν̄); for lepton+jets use
    quarks in place of one lepton pair. Defaults are Pythia 8's W and top widths and
    the reference m_t of docs/design.md §4.

    Returns:
        A tuple of two :class:`Resonance` (t and t̄) for ``DecayChain(tree, masses)``.
    """
    top = BreitWignerSampling(m_top, width_top)
    return (
        Resonance(top_decay_tree(m_w, width_w, 0, 1, 2), top),
        Resonance(top_decay_tree(m_w, width_w, 3, 4, 5), top),
    )


class DecayChain:
    """Partonic map for a tree of sequential two-body decays (see the module docstring).

    Args:
        tree: the root's two children (ints or :class:`Resonance`).
        masses: final-state masses in GeV, indexed by the ints in the tree (each index
            0..n-1 exactly once).

    Attributes:
        dim: (number of resonances) + 2 (number of decays) = 3n - 4.
        n_out: n.
        threshold: smallest allowed P² in GeV².
    """

    def __init__(self, tree: tuple, masses) -> None:
        masses = tuple(float(m) for m in masses)
        for i, m in enumerate(masses):
            if not (math.isfinite(m) and m >= 0):
                raise ValueError(f"masses[{i}]: expected a finite mass >= 0 GeV, got {m}")
        if not isinstance(tree, tuple) or len(tree) != 2:
            raise ValueError(f"tree: expected a tuple of the root's two children, got {tree!r}")
        leaves: list[int] = []
        n_res = self._walk(tree, leaves)
        if sorted(leaves) != list(range(len(masses))):
            raise ValueError(
                f"tree: expected final-state indices 0..{len(masses) - 1} once each "
                f"(one per mass), got {sorted(leaves)}"
            )
        self.tree = tree
        self.masses = masses
        self.n_out = len(masses)
        self.dim = n_res + 2 * (n_res + 1)
        self.threshold = (self._mu(tree[0]) + self._mu(tree[1])) ** 2

    def _walk(self, children, leaves) -> int:
        n = 0
        for c in children:
            if isinstance(c, Resonance):
                n += 1 + self._walk(c.children, leaves)
            elif isinstance(c, int) and not isinstance(c, bool):
                leaves.append(c)
            else:
                raise TypeError(f"tree: expected ints or Resonance as children, got {c!r}")
        return n

    def _mu(self, node) -> float:
        """Smallest invariant mass of a subtree in GeV."""
        if isinstance(node, int):
            return self.masses[node]
        mu = max(node.m_min, self._mu(node.children[0]) + self._mu(node.children[1]))
        if not node.m_max > mu:
            raise ValueError(f"m_max: resonance cut {node.m_max} GeV is below its threshold {mu}")
        return mu

    # -- forward --------------------------------------------------------------------
    def forward(
        self, P: torch.Tensor, r: torch.Tensor, m2: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Momenta from hypercube points.

        Args:
            P: total momentum, shape (N, 4) in GeV, with P² > threshold.
            r: points in [0, 1], shape (N, dim).
            m2: P² in GeV², shape (N,), if known more accurately than from P.

        Returns:
            (momenta, log_w): shape (N, n, 4) in P's frame, and the log-density relative
            to dΦ_n, shape (N,).
        """
        m2 = mass2(P) if m2 is None else m2
        out: list = [None] * self.n_out
        cursor = iter(range(self.dim))
        log_w = self._forward_node(self.tree, P, m2, r, cursor, out)
        return torch.stack(out, -2), log_w

    def _child_bounds(self, node, m_parent, m_sibling, like):
        """Allowed range of a resonance child's mass squared."""
        low = torch.full_like(like, self._mu(node) ** 2)
        high = (m_parent - m_sibling).clamp(min=0.0)
        if math.isfinite(node.m_max):
            high = high.clamp(max=node.m_max)
        # on the faces of the cube a range can close up: keep it non-empty (measure ~0)
        gap = math.sqrt(torch.finfo(low.dtype).tiny)  # stays > 0 through the samplings
        next_up = torch.nextafter(low, torch.full_like(low, math.inf))
        high = torch.maximum(high**2, torch.maximum(next_up, low + gap))
        return low, high

    def _forward_node(self, children, P, m2, r, cursor, out) -> torch.Tensor:
        a, b = children
        m_parent = m2.sqrt()
        log_w = torch.zeros_like(m2)
        m_a2 = m_b2 = None
        if isinstance(a, Resonance):
            low, high = self._child_bounds(a, m_parent, torch.full_like(m2, self._mu(b)), m2)
            m_a2, lj = a.sampling.forward(r[:, next(cursor)], low, high)
            log_w = log_w + lj - _LOG_2PI
        m_a = m_a2.sqrt() if m_a2 is not None else torch.full_like(m2, self.masses[a])
        if isinstance(b, Resonance):
            low, high = self._child_bounds(b, m_parent, m_a, m2)
            m_b2, lj = b.sampling.forward(r[:, next(cursor)], low, high)
            log_w = log_w + lj - _LOG_2PI
        m_b = m_b2.sqrt() if m_b2 is not None else torch.full_like(m2, self.masses[b])
        ct = 2 * r[:, next(cursor)] - 1
        ph = 2 * math.pi * r[:, next(cursor)]
        p_a, p_b, lv = decay_momenta(P, m_a, m_b, ct, ph, m2_parent=m2)
        log_w = log_w + lv
        for child, p, mc2 in ((a, p_a, m_a2), (b, p_b, m_b2)):
            if isinstance(child, Resonance):
                log_w = log_w + self._forward_node(child.children, p, mc2, r, cursor, out)
            else:
                out[child] = p
        return log_w

    # -- inverse --------------------------------------------------------------------
    def inverse(
        self, P: torch.Tensor, momenta: torch.Tensor, m2: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Hypercube points from momenta (the inverse of :meth:`forward`).

        Args:
            P: total momentum, shape (N, 4) in GeV.
            momenta: shape (N, n, 4) in P's frame, in the tree's index order.
            m2: P² in GeV², shape (N,), if known more accurately than from P.

        Returns:
            (r, log_w): r shape (N, dim), log_w = -(forward log_w), shape (N,).
        """
        if momenta.ndim != 3 or momenta.shape[1:] != (self.n_out, 4):
            raise ValueError(
                f"momenta: expected shape (N, {self.n_out}, 4), got {tuple(momenta.shape)}"
            )
        m2 = mass2(P) if m2 is None else m2
        cols: list = [None] * self.dim
        cursor = iter(range(self.dim))
        log_w = self._inverse_node(self.tree, P, m2, momenta, cursor, cols)
        return torch.stack(cols, -1), log_w

    def _momentum(self, node, momenta) -> torch.Tensor:
        if isinstance(node, int):
            return momenta[:, node]
        return self._momentum(node.children[0], momenta) + self._momentum(
            node.children[1], momenta
        )

    def _inverse_node(self, children, P, m2, momenta, cursor, cols) -> torch.Tensor:
        a, b = children
        m_parent = m2.sqrt()
        p_a, p_b = self._momentum(a, momenta), self._momentum(b, momenta)
        log_w = torch.zeros_like(m2)
        m_a2 = m_b2 = None
        if isinstance(a, Resonance):
            m_a2 = mass2(p_a)
            low, high = self._child_bounds(a, m_parent, torch.full_like(m2, self._mu(b)), m2)
            cols[next(cursor)], lj = a.sampling.inverse(m_a2, low, high)
            log_w = log_w + lj + _LOG_2PI
        m_a = m_a2.clamp(min=0).sqrt() if m_a2 is not None else torch.full_like(m2, self.masses[a])
        if isinstance(b, Resonance):
            m_b2 = mass2(p_b)
            low, high = self._child_bounds(b, m_parent, m_a, m2)
            cols[next(cursor)], lj = b.sampling.inverse(m_b2, low, high)
            log_w = log_w + lj + _LOG_2PI
        m_b = m_b2.clamp(min=0).sqrt() if m_b2 is not None else torch.full_like(m2, self.masses[b])
        ct, ph = decay_angles(P, p_a)
        cols[next(cursor)] = (ct + 1) / 2
        cols[next(cursor)] = ph / (2 * math.pi)
        # two-body volume from the masses as given (the forward used the sampled ones)
        log_w = log_w - log_two_body_volume(m2, m_a, m_b)
        for child, p, mc2 in ((a, p_a, m_a2), (b, p_b, m_b2)):
            if isinstance(child, Resonance):
                log_w = log_w + self._inverse_node(child.children, p, mc2, momenta, cursor, cols)
        return log_w

    def __repr__(self) -> str:
        return f"DecayChain(tree={self.tree!r}, masses={self.masses})"
