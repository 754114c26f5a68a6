r"""A reco-centred importance-sampling proposal for t t̄ → b ℓ⁺ ν b̄ ℓ⁻ ν̄ (ML-MEM).

The hard event of t t̄ → dilepton has two neutrinos the detector does not see and four
narrow lines (two W's, Γ_W ≈ 2.1 GeV; two tops, Γ_t ≈ 1.35 GeV). A flow on the
coordinates of the decay map resolves neither the lepton directions (mrad) nor the
lines, so :class:`TTbarDileptonProposal` generates the event the way the matrix
element and the detector shape it (the "block D" change of variables of MoMEMta):

* the four visible particles (b, ℓ⁺, b̄, ℓ⁻, massless) in u = (log pT, η, φ), each a
  product of Student-t distributions centred on its reco object, with widths ``scale``
  times the detector's resolutions at that object
  (:class:`~invsim.mem.resolution.ResolutionTable`, one for the leptons, one for the
  b-jets); the b-jets of x_reco are taken as (b, b̄) in their given order (the
  likelihood's :class:`~invsim.mem.assignments.AssignmentMixture` supplies both orders);
* the invariant masses squared s = (s_W⁺, s_W⁻, s_t, s_t̄) from Breit–Wigners in the
  tan-mapped variable: the W's at (m_W, Γ_W) on the process's W window, the tops a
  mixture over ``top_width_factors`` × Γ_t(m_t) (defensive widths: one draw serves a
  whole m_t scan) on the windows of the m_t range;
* the neutrinos solved from the four mass constraints and zero total transverse
  momentum of the six final-state particles: each neutrino lies on a conic in the
  transverse plane, their intersection is the root of a quartic (companion-matrix
  eigenvalues, Newton-refined); one of the 0–4 solutions of positive energies is
  picked uniformly;
* x₁, x₂ = (E ± p_z)/√s of the six particles.

**Density.** With dμ = dx1 dx2 dΦ₆ (:mod:`forward.events`), integrating the
δ-function over x₁, x₂ (Jacobian 2/s) and the transverse one over the neutrinos'
coordinates of the mass constraints,

.. math:: d\mu = \frac{2}{s\,(2\pi)^{14}} \prod_{i \in \text{vis}} \frac{p_{T,i}^2}{2}
          \, du_i\;\; \frac{d^4 s}{4 E_\nu E_{\bar\nu}\, |J|},
          \qquad J = \det\frac{\partial(s_{W^+}, s_{W^-}, s_t, s_{\bar t}, P_x, P_y)}
                              {\partial(\vec p_\nu, \vec p_{\bar\nu})},

on each solution branch, so q(y | x) = q_u q_s / N_sol × (s/2)(2π)¹⁴ Π (2/p_T²) ·
4 E_ν E_ν̄ |J|, N_sol the number of solutions at (u, s). Every hard event with
massless particles lies on some branch, so :meth:`TTbarDileptonProposal.log_prob` is
finite on the whole phase space (full-support t distributions) except outside the mass
windows. Draws without a solution become a stand-in event (the visible particles, the
missing pT split between the neutrinos, x₁ = x₂ = 2): dσ/dμ = 0 there, so it carries
zero weight (the proposal's mass outside the solvable region is lost, which keeps
E_q[f/q] = ∫ f dμ); :attr:`TTbarDileptonProposal.last_failed` counts them, and the
density of events with x₁ > 1 or x₂ > 1 (zero weight whatever q) is reported as a
finite stand-in, 0.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import torch

from forward.events import HardEvents
from forward.processes.top_decays import W_MASS, top_width, w_width
from invsim.flows.training import read_file, write_file
from invsim.mem.resolution import ResolutionTable

__all__ = ["TTbarDileptonProposal", "neutrino_jacobian", "neutrino_solutions"]

#: x_reco columns of ℓ⁻, ℓ⁺, the b-jet taken as b, the one taken as b̄ ((pT, η, φ) each)
_LMINUS, _LPLUS, _B, _BBAR = slice(0, 3), slice(3, 6), slice(6, 9), slice(9, 12)
#: final-state slots (b, ℓ⁺, ν, b̄, ℓ⁻, ν̄) of the visible particles, in the order b, ℓ⁺, b̄, ℓ⁻
_VIS_SLOTS = (0, 1, 3, 4)
_STAND_IN_X = 2.0  # momentum fraction of the stand-in events (dσ/dμ = 0 beyond 1)
_SCALE = 100.0  # GeV: the quartic is solved in these units


def _massless(pt, eta, phi) -> torch.Tensor:
    """(E, px, py, pz) of massless particles, shape (..., 4)."""
    return torch.stack([pt * torch.cosh(eta), pt * torch.cos(phi), pt * torch.sin(phi),
                        pt * torch.sinh(eta)], -1)


def _dot(a, b):
    return a[..., 0] * b[..., 0] - (a[..., 1:] * b[..., 1:]).sum(-1)


def _conic(lep, b, s_w, s_t):
    """Coefficients of the conic of one neutrino's (px, py) and its linear (E, pz).

    The constraints 2ℓ·ν = s_W and 2b·ν = s_t − s_W − 2b·ℓ are linear in (E, pz) at
    fixed (px, py); E² = px² + py² + pz² is then the conic
    A x² + B xy + C y² + D x + E y + F = 0.

    Returns:
        (conic (N, 6), lin (N, 6)): lin = (e0, ex, ey, z0, zx, zy) with E = e0 + ex x +
        ey y, pz = z0 + zx x + zy y.
    """
    r10 = 0.5 * s_w
    r20 = 0.5 * (s_t - s_w) - _dot(b, lep)
    det = -lep[:, 0] * b[:, 3] + lep[:, 3] * b[:, 0]
    # [ℓE −ℓz; bE −bz] (E, pz) = (r10 + ℓx x + ℓy y, r20 + bx x + by y)
    def solve(r1, r2):
        return (-b[:, 3] * r1 + lep[:, 3] * r2) / det, (lep[:, 0] * r2 - b[:, 0] * r1) / det

    e0, z0 = solve(r10, r20)
    ex, zx = solve(lep[:, 1], b[:, 1])
    ey, zy = solve(lep[:, 2], b[:, 2])
    conic = torch.stack([ex * ex - 1 - zx * zx, 2 * (ex * ey - zx * zy), ey * ey - 1 - zy * zy,
                         2 * (e0 * ex - z0 * zx), 2 * (e0 * ey - z0 * zy), e0 * e0 - z0 * z0], -1)
    return conic, torch.stack([e0, ex, ey, z0, zx, zy], -1)


def _shift(c, a, b):
    """The conic c(x', y') written in (x, y) with x' = a − x, y' = b − y."""
    A, B, C, D, E, F = c.unbind(-1)
    return torch.stack([A, B, C, -2 * a * A - b * B - D, -a * B - 2 * b * C - E,
                        A * a * a + B * a * b + C * b * b + D * a + E * b + F], -1)


def _polymul(p, q):
    """Product of polynomials with ascending coefficients, shapes (N, i), (N, j)."""
    out = p.new_zeros(p.shape[0], p.shape[1] + q.shape[1] - 1)
    for i in range(p.shape[1]):
        out[:, i:i + q.shape[1]] += p[:, i:i + 1] * q
    return out


def _pad(p, k):
    return torch.nn.functional.pad(p, (0, k - p.shape[1]))


def _eval_conic(c, x, y):
    return (c[..., 0] * x * x + c[..., 1] * x * y + c[..., 2] * y * y + c[..., 3] * x
            + c[..., 4] * y + c[..., 5])


def neutrino_solutions(vis: torch.Tensor, s: torch.Tensor, *, newton: int = 3):
    """Neutrino momenta of t t̄ → b ℓ⁺ ν b̄ ℓ⁻ ν̄ from the visible particles and masses.

    Solves (ℓ⁺ + ν)² = s_W⁺, (ℓ⁻ + ν̄)² = s_W⁻, (b + ℓ⁺ + ν)² = s_t,
    (b̄ + ℓ⁻ + ν̄)² = s_t̄, p_T(ν) + p_T(ν̄) = −Σ p_T(visible), ν² = ν̄² = 0.

    Args:
        vis: massless (b, ℓ⁺, b̄, ℓ⁻) momenta, shape (N, 4, 4) as (E, px, py, pz) in GeV,
            float64.
        s: (s_W⁺, s_W⁻, s_t, s_t̄) in GeV², shape (N, 4).
        newton: Newton refinements of each root of the quartic.

    Returns:
        (nu, valid): nu of shape (N, 4, 2, 4), up to four solutions (ν, ν̄) in GeV;
        valid (N, 4) bool marks real, converged solutions with positive neutrino
        energies (distinct ones: duplicates of a double root are counted once).
    """
    v = vis / _SCALE
    s = s / _SCALE**2
    b, lp, bb, lm = v.unbind(1)
    c1, lin1 = _conic(lp, b, s[:, 0], s[:, 2])
    c2p, lin2 = _conic(lm, bb, s[:, 1], s[:, 3])
    px, py = -v[..., 1].sum(1), -v[..., 2].sum(1)
    c2 = _shift(c2p, px, py)
    # as quadratics in y: a y² + b(x) y + c(x); resultant in y, a quartic in x
    def parts(c):
        one = torch.ones_like(c[:, 0])
        return (c[:, 2:3] * one[:, None], torch.stack([c[:, 4], c[:, 1]], -1),
                torch.stack([c[:, 5], c[:, 3], c[:, 0]], -1))

    a1, b1, k1 = parts(c1)
    a2, b2, k2 = parts(c2)
    u = a1 * k2 - a2 * k1  # (N, 3)
    w = a1 * b2 - a2 * b1  # (N, 2)
    t = _polymul(b1, k2) - _polymul(b2, k1)  # (N, 4)
    quartic = _pad(_polymul(u, u), 5) - _pad(_polymul(w, t), 5)  # ascending, (N, 5)
    lead = quartic[:, 4]
    norm = quartic.abs().amax(-1).clamp(min=1e-300)
    safe = lead.abs() > 1e-12 * norm
    monic = quartic[:, :4] / torch.where(safe, lead, torch.ones_like(lead))[:, None]
    comp = torch.zeros(len(v), 4, 4, dtype=v.dtype, device=v.device)
    comp[:, 1:, :3] = torch.eye(3, dtype=v.dtype, device=v.device)
    comp[:, :, 3] = -monic
    comp = torch.nan_to_num(comp, nan=0.0, posinf=0.0, neginf=0.0)
    roots = torch.linalg.eigvals(comp)  # (N, 4) complex
    x = roots.real
    real = (roots.imag.abs() <= 1e-6 * (1 + roots.real.abs())) & safe[:, None]
    # y from the linear combination a2 Q1 − a1 Q2 = 0
    wx = w[:, :1] + w[:, 1:2] * x
    ux = u[:, :1] + u[:, 1:2] * x + u[:, 2:3] * x * x
    y = torch.where(wx.abs() > 0, -ux / torch.where(wx.abs() > 0, wx, torch.ones_like(wx)),
                    torch.zeros_like(wx))
    c1e, c2e = c1[:, None, :], c2[:, None, :]
    for _ in range(newton):  # Newton on (conic 1, conic 2) in (x, y)
        f1, f2 = _eval_conic(c1e, x, y), _eval_conic(c2e, x, y)
        g1x = 2 * c1e[..., 0] * x + c1e[..., 1] * y + c1e[..., 3]
        g1y = c1e[..., 1] * x + 2 * c1e[..., 2] * y + c1e[..., 4]
        g2x = 2 * c2e[..., 0] * x + c2e[..., 1] * y + c2e[..., 3]
        g2y = c2e[..., 1] * x + 2 * c2e[..., 2] * y + c2e[..., 4]
        det = g1x * g2y - g1y * g2x
        ok = det.abs() > 1e-300
        det = torch.where(ok, det, torch.ones_like(det))
        x = x - torch.where(ok, (f1 * g2y - f2 * g1y) / det, torch.zeros_like(x))
        y = y - torch.where(ok, (g1x * f2 - g2x * f1) / det, torch.zeros_like(y))
    e1 = lin1[:, None, 0] + lin1[:, None, 1] * x + lin1[:, None, 2] * y
    z1 = lin1[:, None, 3] + lin1[:, None, 4] * x + lin1[:, None, 5] * y
    xb, yb = px[:, None] - x, py[:, None] - y
    e2 = lin2[:, None, 0] + lin2[:, None, 1] * xb + lin2[:, None, 2] * yb
    z2 = lin2[:, None, 3] + lin2[:, None, 4] * xb + lin2[:, None, 5] * yb
    nu = torch.stack([torch.stack([e1, x, y, z1], -1), torch.stack([e2, xb, yb, z2], -1)], 2)
    # converged: both neutrinos massless to 1e-7 of their energy squared
    scale2 = (e1 * e1 + e2 * e2).clamp(min=1e-300)
    resid = (_eval_conic(c1e, x, y).abs() + _eval_conic(c2e, x, y).abs()) / scale2
    valid = real & (resid < 1e-7) & (e1 > 0) & (e2 > 0) & torch.isfinite(nu).all(-1).all(-1)
    # duplicates (a double root split by rounding): keep the first
    for i in range(1, 4):
        for j in range(i):
            same = ((x[:, i] - x[:, j]).abs() + (y[:, i] - y[:, j]).abs()
                    <= 1e-7 * (1 + x[:, i].abs() + y[:, i].abs()))
            valid[:, i] &= ~(same & valid[:, j])
    return nu * _SCALE, valid


def neutrino_jacobian(vis: torch.Tensor, nu: torch.Tensor) -> torch.Tensor:
    r"""log|det ∂(s_W⁺, s_W⁻, s_t, s_t̄, P_x, P_y)/∂(p⃗_ν, p⃗_ν̄)| of massless neutrinos.

    Args:
        vis: (b, ℓ⁺, b̄, ℓ⁻) momenta, shape (N, 4, 4), GeV.
        nu: (ν, ν̄) momenta, shape (N, 2, 4), GeV (E = |p⃗|).

    Returns:
        log|J| in log GeV⁴, shape (N,).
    """
    b, lp, bb, lm = vis.unbind(1)
    n1, n2 = nu.unbind(1)
    jac = vis.new_zeros(len(vis), 6, 6)

    def grad(k, n):  # ∂(k + ν)²/∂p⃗_ν = 2 (k_E p⃗_ν/E_ν − k⃗)
        return 2 * (k[:, :1] * n[:, 1:] / n[:, :1] - k[:, 1:])

    jac[:, 0, :3] = grad(lp, n1)
    jac[:, 1, 3:] = grad(lm, n2)
    jac[:, 2, :3] = grad(lp + b, n1)
    jac[:, 3, 3:] = grad(lm + bb, n2)
    jac[:, 4, 0] = jac[:, 4, 3] = 1.0
    jac[:, 5, 1] = jac[:, 5, 4] = 1.0
    return torch.linalg.slogdet(jac).logabsdet


class _BreitWigner:
    """A mixture of Breit–Wigners in s = m² (Cauchy in s), truncated to [s_lo, s_hi].

    Each component k: s = M² + M Γ_k tan ρ, ρ uniform on (ρ_lo, ρ_hi); density
    M Γ_k / ((ρ_hi − ρ_lo)((s − M²)² + M² Γ_k²)).
    """

    def __init__(self, mass: float, widths: Sequence[float], lo: float, hi: float) -> None:
        self.mass, self.widths, self.lo, self.hi = float(mass), [float(g) for g in widths], lo, hi

    def _rho(self, g):
        mg = self.mass * g
        return (math.atan((self.lo**2 - self.mass**2) / mg),
                math.atan((self.hi**2 - self.mass**2) / mg))

    def sample(self, shape, generator, dtype, device):
        k = torch.randint(len(self.widths), shape, generator=generator, device=device)
        r = torch.rand(shape, generator=generator, dtype=dtype, device=device)
        out = torch.empty(shape, dtype=dtype, device=device)
        for i, g in enumerate(self.widths):
            lo, hi = self._rho(g)
            out = torch.where(k == i, self.mass**2 + self.mass * g * torch.tan(lo + (hi - lo) * r),
                              out)
        return out.clamp(self.lo**2, self.hi**2)

    def log_prob(self, s):
        parts = []
        for g in self.widths:
            lo, hi = self._rho(g)
            mg = self.mass * g
            parts.append(math.log(mg / ((hi - lo) * len(self.widths)))
                         - torch.log((s - self.mass**2) ** 2 + mg * mg))
        lp = torch.logsumexp(torch.stack(parts), 0)
        inside = (s >= self.lo**2) & (s <= self.hi**2)
        return torch.where(inside, lp, torch.full_like(lp, -math.inf))


class TTbarDileptonProposal:
    """q(hard | x_reco) for t t̄ → b ℓ⁺ ν b̄ ℓ⁻ ν̄ centred on the reco event (module docstring).

    Args:
        leptons: resolutions of the charged leptons (a
            :class:`~invsim.mem.resolution.ResolutionTable` on (pT, η, φ) pairs).
        jets: resolutions of the b-jets (a ResolutionTable of b-jets against b-quarks).
        sqrt_s: hadronic centre-of-mass energy in GeV.
        mt: top mass (GeV) of the top lines when θ is None.
        mt_range: (lo, hi) in GeV: the top lines are truncated to [lo − c Γ_t(lo),
            hi + c Γ_t(hi)] (c = ``bw_cut``), the union of the process's top windows
            over the range; default (mt, mt).
        bw_cut: the process's window half-width in widths (``TTbar.bw_cut``).
        scale: width factor on the resolutions of the visible particles (> 0).
        jet_scale: width factor of the b-jets (> 0); default ``scale``.
        df: degrees of freedom of the t distributions (integer >= 1).
        top_width_factors: the top lines' widths in units of Γ_t(m_t), an equal-weight
            mixture (all > 0): factors > 1 keep one draw useful across an m_t scan.

    Attributes:
        last_failed: draws of the last :meth:`sample_and_log_prob` with no neutrino
            solution (stand-in events of zero weight), and ``last_draws`` their total.
    """

    kind = "ttbar-dilepton-proposal"

    def __init__(self, leptons: ResolutionTable, jets: ResolutionTable,
                 sqrt_s: float = 13000.0, *, mt: float = 172.5,
                 mt_range: tuple[float, float] | None = None, bw_cut: float = 15.0,
                 scale: float = 1.5, jet_scale: float | None = None, df: int = 5,
                 top_width_factors: Sequence[float] = (3.0,)) -> None:
        for name, t in (("leptons", leptons), ("jets", jets)):
            if not isinstance(t, ResolutionTable):
                raise TypeError(f"{name}: expected a ResolutionTable, got {type(t).__name__}")
        jet_scale = scale if jet_scale is None else jet_scale
        for name, v in (("sqrt_s", sqrt_s), ("mt", mt), ("bw_cut", bw_cut), ("scale", scale),
                        ("jet_scale", jet_scale)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (
                    math.isfinite(v) and v > 0):
                raise ValueError(f"{name}: expected a finite positive number, got {v!r}")
        if isinstance(df, bool) or not isinstance(df, int) or df < 1:
            raise ValueError(f"df: expected an integer >= 1, got {df!r}")
        factors = [float(f) for f in top_width_factors]
        if not factors or not all(math.isfinite(f) and f > 0 for f in factors):
            raise ValueError(f"top_width_factors: expected finite positive numbers, got "
                             f"{list(top_width_factors)!r}")
        lo, hi = (float(mt), float(mt)) if mt_range is None else map(float, mt_range)
        if not (math.isfinite(lo) and math.isfinite(hi) and W_MASS < lo <= hi):
            raise ValueError(f"mt_range: expected {W_MASS} < LO <= HI in GeV, got {mt_range!r}")
        self.leptons, self.jets = leptons, jets
        self.sqrt_s, self.mt, self.mt_range = float(sqrt_s), float(mt), (lo, hi)
        self.bw_cut, self.scale, self.jet_scale, self.df = float(bw_cut), float(scale), \
            float(jet_scale), df
        self.top_width_factors = tuple(factors)
        gw = w_width()
        self._w_line = _BreitWigner(W_MASS, [gw], W_MASS - bw_cut * gw, W_MASS + bw_cut * gw)
        self._top_lo = lo - bw_cut * float(top_width(lo))
        self._top_hi = hi + bw_cut * float(top_width(hi))
        if self._top_lo <= W_MASS + bw_cut * gw:
            raise ValueError(f"mt_range, bw_cut: the top window starts at {self._top_lo:.4g} "
                             "GeV, inside the W window")
        self.last_failed, self.last_draws = 0, 0

    # -- pieces --------------------------------------------------------------------------
    def _top_line(self, theta) -> _BreitWigner:
        mt = self.mt
        if theta is not None:
            if not isinstance(theta, Mapping):
                raise TypeError(f"theta: expected a mapping with 'mt' or None, got "
                                f"{type(theta).__name__}")
            if "mt" in theta:
                v = torch.as_tensor(theta["mt"])
                if v.numel() != 1 or not bool(torch.isfinite(v).all()) or float(v) <= W_MASS:
                    raise ValueError(f"theta: expected one finite top mass 'mt' > {W_MASS} "
                                     f"GeV, got {theta['mt']!r}")
                mt = float(v)
        gt = float(top_width(mt))
        return _BreitWigner(mt, [f * gt for f in self.top_width_factors], self._top_lo,
                            self._top_hi)

    def _reco(self, x_reco) -> torch.Tensor:
        if not isinstance(x_reco, torch.Tensor):
            x_reco = torch.as_tensor(x_reco)
        if x_reco.ndim != 2 or x_reco.shape[1] not in (12, 14):
            raise ValueError(f"x_reco: expected shape (m, 12) (ℓ⁻, ℓ⁺, b-jet, b-jet as (pT, η, "
                             f"φ)) or (m, 14) (+ MET), got {tuple(x_reco.shape)}")
        x = x_reco.to(torch.float64)
        if not bool(torch.isfinite(x[:, :12]).all()) or not bool((x[:, [0, 3, 6, 9]] > 0).all()):
            raise ValueError("x_reco: expected finite values and positive pT")
        return x

    def centre(self, x_reco) -> tuple[torch.Tensor, torch.Tensor]:
        """(loc, width) in u = (log pT, η, φ) of (b, ℓ⁺, b̄, ℓ⁻), each shape (m, 4, 3)."""
        x = self._reco(x_reco)
        objs = torch.stack([x[:, _B], x[:, _LPLUS], x[:, _BBAR], x[:, _LMINUS]], 1)
        loc = torch.stack([torch.log(objs[..., 0]), objs[..., 1], objs[..., 2]], -1)
        wl = self.leptons.lookup(torch.cat([x[:, _LPLUS], x[:, _LMINUS]], -1)).to(x.device)
        wj = self.jets.lookup(torch.cat([x[:, _B], x[:, _BBAR]], -1)).to(x.device)
        width = torch.stack([self.jet_scale * wj[:, 0], self.scale * wl[:, 0],
                             self.jet_scale * wj[:, 1], self.scale * wl[:, 1]], 1)
        return loc, width

    def _log_t(self, t):
        df = torch.tensor(float(self.df), dtype=t.dtype, device=t.device)
        return torch.distributions.StudentT(df, validate_args=False).log_prob(t)

    def _log_q_u(self, u, loc, width):
        """log q(u) of (..., 4, 3) visible coordinates (φ wrapped, summed over ±2π)."""
        t = (u - loc) / width
        dphi = torch.remainder(u[..., 2] - loc[..., 2] + math.pi, 2 * math.pi) - math.pi
        dphi, span = dphi / width[..., 2], 2 * math.pi / width[..., 2]
        lphi = torch.logsumexp(torch.stack([self._log_t(dphi - span), self._log_t(dphi),
                                            self._log_t(dphi + span)], -1), -1)
        return (self._log_t(t[..., :2]).sum(-1) + lphi - torch.log(width).sum(-1)).sum(-1)

    def _log_density(self, log_qu, log_qs, n_sol, vis, nu):
        """log q w.r.t. dμ on a solution branch (see the module docstring)."""
        pt2 = vis[..., 1] ** 2 + vis[..., 2] ** 2
        return (log_qu + log_qs - torch.log(n_sol) + math.log(self.sqrt_s**2 / 2)
                + 14 * math.log(2 * math.pi) + (math.log(2) - torch.log(pt2)).sum(-1)
                + math.log(4) + torch.log(nu[:, 0, 0]) + torch.log(nu[:, 1, 0])
                + neutrino_jacobian(vis, nu))

    def _log_q_s(self, s, top):
        return (self._w_line.log_prob(s[..., 0]) + self._w_line.log_prob(s[..., 1])
                + top.log_prob(s[..., 2]) + top.log_prob(s[..., 3]))

    # -- proposal interface --------------------------------------------------------------
    def sample_and_log_prob(self, x_reco, n: int, theta=None, *,
                            generator: torch.Generator | None = None):
        """n draws per reco event.

        Args:
            x_reco: reco events, shape (m, 12) or (m, 14) (the MET columns are not used).
            n: draws per event (>= 1).
            theta: None or a mapping with ``mt`` (GeV, one value): the top lines' mass.
            generator: torch generator of the draws.

        Returns:
            (HardEvents of m*n events, event-major, particles (b, ℓ⁺, ν, b̄, ℓ⁻, ν̄);
            log q w.r.t. dμ, shape (m, n) float64, finite).
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n: expected an integer >= 1, got {n!r}")
        top = self._top_line(theta)
        loc, width = self.centre(x_reco)
        m, dev, dt = loc.shape[0], loc.device, loc.dtype
        z = torch.randn(m, n, 4, 3, generator=generator, dtype=dt, device=dev)
        chi2 = (torch.randn(m, n, 4, 3, self.df, generator=generator, dtype=dt,
                            device=dev) ** 2).sum(-1)
        u = loc[:, None] + width[:, None] * z / torch.sqrt(chi2 / self.df)
        u[..., 2] = torch.remainder(u[..., 2] + math.pi, 2 * math.pi) - math.pi
        log_qu = self._log_q_u(u, loc[:, None], width[:, None]).reshape(-1)
        u = u.reshape(m * n, 4, 3)
        vis = _massless(torch.exp(u[..., 0]), u[..., 1], u[..., 2])
        shape = (m * n,)
        s = torch.stack([self._w_line.sample(shape, generator, dt, dev),
                         self._w_line.sample(shape, generator, dt, dev),
                         top.sample(shape, generator, dt, dev),
                         top.sample(shape, generator, dt, dev)], -1)
        log_qs = self._log_q_s(s, top)
        sols, valid = neutrino_solutions(vis, s)
        n_sol = valid.sum(-1)
        # one valid solution uniformly: the k-th valid one, k uniform in [0, n_sol)
        pick = (torch.rand(shape, generator=generator, dtype=dt, device=dev)
                * n_sol.clamp(min=1)).floor().long()
        rank = valid.long().cumsum(-1) - 1
        chosen = (valid & (rank == pick[:, None])).long().argmax(-1)
        nu = sols[torch.arange(len(sols), device=dev), chosen]  # (N, 2, 4)
        ok = n_sol > 0
        # stand-in neutrinos of draws without a solution: the missing pT split in two
        miss = -vis[..., 1:3].sum(1) / 2
        stand = torch.cat([miss.norm(dim=-1, keepdim=True).clamp(min=1e-3), miss,
                           torch.zeros_like(miss[:, :1])], -1)
        nu = torch.where(ok[:, None, None], nu, stand[:, None, :].expand(-1, 2, -1))
        mom = torch.stack([vis[:, 0], vis[:, 1], nu[:, 0], vis[:, 2], vis[:, 3], nu[:, 1]], 1)
        tot = mom.sum(1)
        x1 = (tot[:, 0] + tot[:, 3]) / self.sqrt_s
        x2 = (tot[:, 0] - tot[:, 3]) / self.sqrt_s
        lq = self._log_density(log_qu, log_qs, n_sol.clamp(min=1).to(dt), vis, nu)
        unphysical = ~ok | (x1 > 1) | (x2 > 1) | ~torch.isfinite(lq)
        x1 = torch.where(ok, x1, torch.full_like(x1, _STAND_IN_X))
        x2 = torch.where(ok, x2, torch.full_like(x2, _STAND_IN_X))
        lq = torch.where(unphysical, torch.zeros_like(lq), lq)
        self.last_failed, self.last_draws = int((~ok).sum()), m * n
        return HardEvents(mom, x1, x2, self.sqrt_s), lq.view(m, n)

    def log_prob(self, hard: HardEvents, x_reco, theta=None) -> torch.Tensor:
        """log q(hard | x_reco) w.r.t. dμ, shape (m,) float64, for paired rows.

        Events with x₁ > 1 or x₂ > 1 (dσ/dμ = 0) get the stand-in 0; events whose
        masses lie outside the lines' windows get -inf.

        Args:
            hard: m hard events of the final state (b, ℓ⁺, ν, b̄, ℓ⁻, ν̄).
            x_reco: the paired reco events, shape (m, 12) or (m, 14).
            theta: as for :meth:`sample_and_log_prob`.
        """
        if not isinstance(hard, HardEvents):
            raise TypeError(f"hard: expected HardEvents, got {type(hard).__name__}")
        if hard.momenta.shape[1] != 6:
            raise ValueError(f"hard: expected momenta of shape (m, 6, 4) (b, ℓ⁺, ν, b̄, ℓ⁻, "
                             f"ν̄), got {tuple(hard.momenta.shape)}")
        loc, width = self.centre(x_reco)
        if loc.shape[0] != len(hard):
            raise ValueError(f"x_reco: expected {len(hard)} rows to pair with hard, got "
                             f"{loc.shape[0]}")
        top = self._top_line(theta)
        p = hard.momenta.to(torch.float64).to(loc.device)
        vis4 = p[:, list(_VIS_SLOTS)]
        pt = torch.hypot(vis4[..., 1], vis4[..., 2])
        eta = torch.asinh(vis4[..., 3] / pt)
        phi = torch.atan2(vis4[..., 2], vis4[..., 1])
        u = torch.stack([torch.log(pt), eta, phi], -1)
        vis = _massless(pt, eta, phi)
        nu = p[:, [2, 5]]
        nu = torch.cat([nu[..., 1:].norm(dim=-1, keepdim=True), nu[..., 1:]], -1)
        b, lp, bb, lm = vis.unbind(1)
        s = torch.stack([_msq(lp + nu[:, 0]), _msq(lm + nu[:, 1]), _msq(b + lp + nu[:, 0]),
                         _msq(bb + lm + nu[:, 1])], -1)
        _, valid = neutrino_solutions(vis, s)
        n_sol = valid.sum(-1).clamp(min=1).to(torch.float64)
        lq = self._log_density(self._log_q_u(u, loc, width), self._log_q_s(s, top), n_sol,
                               vis, nu)
        x1, x2 = hard.x1.to(lq.device), hard.x2.to(lq.device)
        lq = torch.where(torch.isnan(lq), torch.full_like(lq, -math.inf), lq)
        return torch.where((x1 > 1) | (x2 > 1), torch.zeros_like(lq), lq)

    # -- files ---------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Save the settings and resolution tables (refuses to overwrite unless asked)."""
        write_file(path, {"kind": self.kind, "leptons": self.leptons.to_dict(),
                          "jets": self.jets.to_dict(), "sqrt_s": self.sqrt_s, "mt": self.mt,
                          "mt_range": list(self.mt_range), "bw_cut": self.bw_cut,
                          "scale": self.scale, "jet_scale": self.jet_scale, "df": self.df,
                          "top_width_factors": list(self.top_width_factors)},
                   overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike, *, map_location=None) -> TTbarDileptonProposal:
        """Load what :meth:`save` wrote."""
        d = read_file(path, cls.kind, map_location=map_location)
        return cls(ResolutionTable.from_dict(d["leptons"]), ResolutionTable.from_dict(d["jets"]),
                   d["sqrt_s"], mt=d["mt"], mt_range=tuple(d["mt_range"]), bw_cut=d["bw_cut"],
                   scale=d["scale"], jet_scale=d["jet_scale"], df=d["df"],
                   top_width_factors=tuple(d["top_width_factors"]))

    def __repr__(self) -> str:
        return (f"TTbarDileptonProposal(mt={self.mt}, mt_range={self.mt_range}, scale="
                f"{self.scale}, jet_scale={self.jet_scale}, df={self.df}, top_width_factors="
                f"{self.top_width_factors})")


def _msq(p):
    return p[..., 0] ** 2 - (p[..., 1:] ** 2).sum(-1)
