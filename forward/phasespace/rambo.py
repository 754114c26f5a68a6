r"""n-body phase space by RAMBO "on diet" (Plätzer 2013, arXiv:1308.2922), massless and massive.

**Massless.** In the rest frame of P (√s = M_1) the n momenta are produced by n - 1
successive two-body decays Q_i → p_i + Q_{i+1} (p_i massless, Q_1 = P, Q_n = p_n),
each in the rest frame of Q_i reached by a pure boost from P's rest frame, with the
decay angles of p_i from two random numbers (cos θ = 2r - 1, φ = 2π r) as in
:mod:`~forward.phasespace.two_body`. With M_n = 0 and v_j = M_j²/M_{j-1}², the
recursion dΦ_n = Π_i dΦ_2(Q_i; p_i, Q_{i+1}) Π_j dM_j²/(2π) gives the density
∝ Π_{j=2}^{n-1} v_j^{n-1-j} (1 - v_j) dv_j: independent variables, each drawn by
inverting its CDF

.. math:: u_j(v) = (n + 1 - j)\, v^{n-j} - (n - j)\, v^{n+1-j} = r_j ,

(solved by bisection to machine precision; the inverse is the closed form u_j).
The density of the map is therefore exactly uniform: every point has the weight

.. math:: \Phi_n(s) = (2\pi)^{4-3n} (\pi/2)^{n-1} \frac{s^{n-2}}{(n-1)!\,(n-2)!}.

Random numbers: r[:, :n-2] -> v_2..v_{n-1}, then (cos θ_i, φ_i) pairs for i = 1..n-1;
3n - 4 in all.

**Massive** (Kleiss, Stirling, Ellis 1986). The massless momenta q_i are rescaled in
P's rest frame, k_i = (sqrt(m_i² + ξ²|q⃗_i|²), ξ q⃗_i), with ξ from
Σ_i sqrt(m_i² + ξ²|q⃗_i|²) = M (Newton's method from ξ = 1, monotonic as the sum is
convex in ξ; the gradient comes from the implicit function theorem). The inverse is
closed form, ξ = Σ|k⃗_i| / M. The weight relative to dΦ_n is

.. math:: \Phi_n(s) \Big(\frac{\sum|\vec k_i|}{M}\Big)^{2n-3}
          \prod_i \frac{|\vec k_i|}{k_i^0}\; \frac{M}{\sum_i |\vec k_i|^2 / k_i^0}.
"""

from __future__ import annotations

import math

import torch

from forward.kinematics import boost_from_rest_frame, boost_to_rest_frame, mass2
from forward.phasespace.two_body import decay_angles, decay_momenta

__all__ = ["Rambo", "log_massless_volume"]

_MANTISSA_BITS = {torch.float64: 53, torch.float32: 24, torch.float16: 11, torch.bfloat16: 8}


def log_massless_volume(s: torch.Tensor, n: int) -> torch.Tensor:
    """log Φ_n(s) of n massless particles, shape of ``s`` (GeV², > 0); units GeV^(2n-4)."""
    const = (
        (4 - 3 * n) * math.log(2 * math.pi)
        + (n - 1) * math.log(math.pi / 2)
        - math.lgamma(n)
        - math.lgamma(n - 1)
    )
    return const + (n - 2) * torch.log(s)


def _mass_cdf(v: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """u(v) = (k+1) v^k - k v^(k+1), k = n - j (the CDF of v_j)."""
    return (k + 1) * v**k - k * v ** (k + 1)


def _mass_pdf(v: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    return k * (k + 1) * v ** (k - 1) * (1 - v)


def _solve_mass_ratios(r: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Solve u(v) = r for v ∈ [0, 1] by bisection (u is increasing), batched.

    The value is exact to the dtype's precision; the gradient w.r.t. r is dv/dr = 1/u'(v)
    (implicit function theorem), attached without changing the value.
    """
    with torch.no_grad():
        lo = torch.zeros_like(r)
        hi = torch.ones_like(r)
        for _ in range(_MANTISSA_BITS.get(r.dtype, 53) + 3):
            mid = 0.5 * (lo + hi)
            below = _mass_cdf(mid, k) < r
            lo = torch.where(below, mid, lo)
            hi = torch.where(below, hi, mid)
        v = 0.5 * (lo + hi)
    if r.requires_grad:
        slope = _mass_pdf(v, k).clamp(min=torch.finfo(r.dtype).tiny)
        v = v + (r - r.detach()) / slope
    return v


def _safe_div(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a / b with 0 where b == 0 (a massless particle with zero momentum contributes 0)."""
    return torch.where(b > 0, a / torch.where(b > 0, b, 1.0), 0.0)


def _solve_xi(q: torch.Tensor, m: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
    """ξ with Σ_i sqrt(m_i² + ξ² q_i²) = total; q: |q⃗_i| shape (N, n), m: (n,), total: (N,)."""
    def excess(xi, q_):
        return torch.sqrt(m**2 + (xi * q_) ** 2).sum(-1) - total

    with torch.no_grad():
        qd, tot = q.detach(), total.detach()
        xi = torch.ones_like(tot)
        tol = 4 * torch.finfo(q.dtype).eps
        for _ in range(200):
            e = torch.sqrt(m**2 + (xi.unsqueeze(-1) * qd) ** 2)
            f = e.sum(-1) - tot
            df = _safe_div(xi.unsqueeze(-1) * qd**2, e).sum(-1)
            step = f / df
            xi = (xi - step).clamp(min=0.0)
            if bool((step.abs() <= tol * xi).all()):
                break
    if q.requires_grad or total.requires_grad:
        e = torch.sqrt(m**2 + (xi.unsqueeze(-1) * q.detach()) ** 2)
        df = _safe_div(xi.unsqueeze(-1) * q.detach() ** 2, e).sum(-1)
        xi = xi - (excess(xi.unsqueeze(-1), q) - excess(xi.unsqueeze(-1), q.detach())) / df
    return xi


class Rambo:
    """n-body phase space P → k_1 ... k_n (RAMBO on diet, massive by rescaling).

    Args:
        masses: the n >= 2 final-state masses in GeV, each >= 0.

    Attributes:
        dim: 3n - 4 random numbers.
        n_out: n.
        masses: the masses.
        threshold: (Σ m_i)² in GeV².
    """

    def __init__(self, masses) -> None:
        masses = tuple(float(m) for m in masses)
        if len(masses) < 2:
            raise ValueError(f"masses: expected at least 2 masses, got {len(masses)}")
        for i, m in enumerate(masses):
            if not (math.isfinite(m) and m >= 0):
                raise ValueError(f"masses[{i}]: expected a finite mass >= 0 GeV, got {m}")
        self.masses = masses
        self.n_out = len(masses)
        self.dim = 3 * self.n_out - 4
        self.threshold = sum(masses) ** 2
        self.massive = any(m > 0 for m in masses)

    # -- massless core in P's rest frame --------------------------------------------
    def _massless(self, M2: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        n = self.n_out
        N = r.shape[0]
        k = torch.arange(n - 2, 0, -1, dtype=r.dtype, device=r.device)  # n - j, j = 2..n-1
        v = _solve_mass_ratios(r[:, : n - 2], k)
        zero = torch.zeros(N, dtype=r.dtype, device=r.device)
        Q = torch.stack([M2.sqrt(), zero, zero, zero], -1)
        Mi2 = M2
        out = []
        for i in range(n - 1):
            Mnext2 = Mi2 * v[:, i] if i < n - 2 else zero
            ct = 2 * r[:, n - 2 + 2 * i] - 1
            ph = 2 * math.pi * r[:, n - 1 + 2 * i]
            p, Q, _ = decay_momenta(Q, 0.0, Mnext2.sqrt(), ct, ph, m2_parent=Mi2)
            out.append(p)
            Mi2 = Mnext2
        out.append(Q)
        q = torch.stack(out, -2)
        # exactly on the light cone (rounding in the boosts can leave E != |p⃗|)
        return torch.cat([q[..., 1:].norm(dim=-1, keepdim=True), q[..., 1:]], -1)

    def _massless_inverse(self, M2: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        n = self.n_out
        k = torch.arange(n - 2, 0, -1, dtype=q.dtype, device=q.device)
        rest = q.flip(-2).cumsum(-2).flip(-2)  # rest[:, i] = Σ_{j >= i} q_j = Q_{i+1}
        Mi2 = M2
        r_mass, r_ang = [], []
        for i in range(n - 1):
            ct, ph = decay_angles(rest[:, i], q[:, i])
            r_ang += [(ct + 1) / 2, ph / (2 * math.pi)]
            if i < n - 2:
                Mnext2 = mass2(rest[:, i + 1]).clamp(min=0.0)
                r_mass.append(_mass_cdf(Mnext2 / Mi2, k[i]))
                Mi2 = Mnext2
        return torch.stack(r_mass + r_ang, -1)

    def _log_massive_factor(self, kvec: torch.Tensor, M: torch.Tensor) -> torch.Tensor:
        """log of the massive/massless weight ratio from the massive momenta (P rest frame)."""
        n = self.n_out
        m = torch.tensor(self.masses, dtype=kvec.dtype, device=kvec.device)
        pabs = kvec[..., 1:].norm(dim=-1)
        e = torch.sqrt(m**2 + pabs**2)
        # |k|/E = 1 for massless particles, also at zero momentum
        ratio = torch.where(m > 0, pabs / e, 1.0)
        return (
            (2 * n - 3) * torch.log(pabs.sum(-1) / M)
            + torch.log(ratio).sum(-1)
            + torch.log(M)
            - torch.log((pabs * ratio).sum(-1))
        )

    # -- public map -------------------------------------------------------------------
    def forward(
        self, P: torch.Tensor, r: torch.Tensor, m2: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Momenta from hypercube points.

        Args:
            P: total momentum, shape (N, 4) in GeV, with P² > threshold.
            r: points in [0, 1], shape (N, 3n - 4).
            m2: P² in GeV², shape (N,), if known more accurately than from P.

        Returns:
            (momenta, log_w): shape (N, n, 4) in P's frame, and the log-density relative
            to dΦ_n, shape (N,).
        """
        M2 = mass2(P) if m2 is None else m2
        q = self._massless(M2, r)
        log_w = log_massless_volume(M2, self.n_out)
        if self.massive:
            m = torch.tensor(self.masses, dtype=q.dtype, device=q.device)
            qabs = q[..., 0]
            M = M2.sqrt()
            xi = _solve_xi(qabs, m, M)
            k3 = xi[:, None, None] * q[..., 1:]
            e = torch.sqrt(m**2 + (xi.unsqueeze(-1) * qabs) ** 2)
            q = torch.cat([e.unsqueeze(-1), k3], -1)
            log_w = log_w + self._log_massive_factor(q, M)
        return boost_from_rest_frame(q, P.unsqueeze(-2)), log_w

    def inverse(
        self, P: torch.Tensor, momenta: torch.Tensor, m2: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Hypercube points from momenta (the inverse of :meth:`forward`).

        Args:
            P: total momentum, shape (N, 4) in GeV.
            momenta: shape (N, n, 4) in P's frame.
            m2: P² in GeV², shape (N,), if known more accurately than from P.

        Returns:
            (r, log_w): r shape (N, 3n - 4), log_w = -(forward log_w), shape (N,).
        """
        if momenta.ndim != 3 or momenta.shape[1:] != (self.n_out, 4):
            raise ValueError(
                f"momenta: expected shape (N, {self.n_out}, 4), got {tuple(momenta.shape)}"
            )
        M2 = mass2(P) if m2 is None else m2
        k = boost_to_rest_frame(momenta, P.unsqueeze(-2))
        log_w = log_massless_volume(M2, self.n_out)
        if self.massive:
            M = M2.sqrt()
            log_w = log_w + self._log_massive_factor(k, M)
            k3 = k[..., 1:]
            xi = k3.norm(dim=-1).sum(-1) / M
            q3 = k3 / xi[:, None, None]
            k = torch.cat([q3.norm(dim=-1, keepdim=True), q3], -1)
        else:
            # massless: put the particles exactly on the light cone
            k = torch.cat([k[..., 1:].norm(dim=-1, keepdim=True), k[..., 1:]], -1)
        return self._massless_inverse(M2, k), -log_w

    def __repr__(self) -> str:
        return f"Rambo(masses={self.masses})"
