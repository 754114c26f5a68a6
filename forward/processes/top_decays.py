r"""Top-quark decays t → b W⁺ → b f̄₁ f₂ in the narrow-width approximation.

**Widths and branching ratios** as Pythia 8.317 computes them at initialisation
(:func:`forward.processes.electroweak.w_partial_widths`,
:func:`~forward.processes.electroweak.top_partial_widths`: α_EM(M²), sin²θ_W = 0.2312,
the CKM matrix, quark and τ masses in the phase space, QCD factors 3(1 + α_s/π) for
W → q q̄′ and 1 - 2.5 α_s/π for t → W q). At α_s(M_Z) = 0.118: Γ_W = 2.08691 GeV,
BR(W → eν) = BR(W → μν) = 0.108380 (to 3·10⁻⁶ relative), BR(W → hadrons) = 0.674939,
Γ_t(172.5) = 1.35475 GeV, BR(t → W b) = 0.998197. The branching ratio of a mode
(:func:`branching_ratio`) is BR(t → W b)² times the W branching ratios of the chosen
lepton flavours (and hadrons); it depends on m_t and on the α_s(M_Z) parameter of the
process (differentiably), as Pythia's widths depend on ``SigmaProcess:alphaSvalue``.
The Breit–Wigner line shapes and windows use Γ_t(m_t) and Γ_W at α_s(M_Z) = 0.118
(:data:`ALPHA_S_LINE_SHAPE`); they do not change σ (narrow-width normalisation below).
The W⁺ → q q̄′ channels with a b̄ (0.06 %) are counted as hadronic and labelled d̄ u.

**Lepton flavours.** ``leptons`` = ``"e"``, ``"mu"`` or ``"all"`` (e and μ; τ is not
included). For ``"all"`` the dilepton mode has the flavour combinations (ℓ⁺ from the
top, ℓ⁻ from the antitop) ee, μμ, eμ, μe and the semileptonic mode e and μ; the
branching ratio sums them and each event's flavours are drawn with equal probability
(:attr:`DecayModeInfo.final_states`; the matrix element is flavour-blind for massless
leptons and BR(W → eν) = BR(W → μν) to 3·10⁻⁶).

**Modes and final-state order.** Each decayed top contributes three momenta
(b, f̄₁, f₂), f̄₁ f₂ the W⁺ decay with f̄₁ the down-type antifermion; the antitop
contributes (b̄, f₁, f̄₂). ``"dilepton"``: (5, -ℓ, ν, -5, ℓ, -ν); ``"semileptonic"``:
t → b ℓ⁺ ν, t̄ → b̄ d ū, (5, -ℓ, ν, -5, 1, -2); ``"hadronic"``: (5, -1, 2, -5, 1, -2).
Quark ids of hadronic W decays are representative (d, u): the matrix element and
the branching ratio sum all light flavours (massless, unitary CKM). The charge-
conjugate semileptonic mode has the same LO cross section.

**Decay matrix element.** Summed over spins (averaged over the top spin, so
spin correlations between t and t̄ are neglected), the LO matrix element is
:math:`\propto (p_t\cdot p_{\bar f_1})(p_b\cdot p_{f_2}) / [(q^2 - m_W^2)^2 + m_W^2\Gamma_W^2]`,
q = f̄₁ + f₂ (charged lepton ↔ top momentum, as for muon decay). With
:math:`\int d\Phi_2(q; f_1, f_2)\, k_1^\mu k_2^\nu
= \frac{1}{8\pi}\frac{q^2 g^{\mu\nu} + 2q^\mu q^\nu}{12}`
its three-body integral at top mass² M² is :math:`N(M^2) / (3072\pi^3 M^2)`, with
:math:`N(M^2) = \int dq^2\, \mathrm{BW}_W(q^2)\,(M^2 - q^2)^2 (M^2 + 2q^2)` over the W window
(closed form, :func:`w_line_integral`).

**Narrow-width normalisation.** The 2 → 6 weight relative to dμ = dx1 dx2 dΦ₆ is
the on-shell production |M|²(ŝ, θ*; m_t) times

.. math::
    F = \mathrm{BR}\;\frac{\beta_0}{\beta_{12}}\;
        \prod_{i=t,\bar t} 2\pi\rho_t(p_i^2)\, D(p_i \to b f \bar f'),

where β₀ = (1 - 4m_t²/ŝ)^{1/2}, β₁₂ = λ^{1/2}(ŝ, p_t², p_t̄²)/ŝ, ρ_t is the top
Breit–Wigner normalised to one on p² ∈ [m_lo², m_hi²] with m_lo = m_t - c Γ_t and
m_hi = min(m_t + c Γ_t, √ŝ/2) (c = ``bw_cut``), and D is the decay matrix element
divided by its three-body integral, so that ∫ dΦ₃ D = 1 at every top mass. Since
dΦ₆ = dΦ₂(m₁, m₂) dp_t²/2π dΦ₃ dp_t̄²/2π dΦ₃ and dΦ₂(m₁, m₂) β₀/β₁₂ = dΦ₂(m_t, m_t) at
fixed angles, the inclusive cross section is σ(t t̄; m_t) × BR exactly, while the
momenta have Breit–Wigner top and W line shapes and the LO decay angular
distributions. Top masses outside the window (or ŝ < 4 m_t²) and W masses outside
[m_W - c Γ_W, m_W + c Γ_W] have zero weight.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from forward.events import HardEvents
from forward.kinematics import dot, mass2
from forward.phasespace import BreitWignerSampling
from forward.phasespace.two_body import decay_angles, decay_momenta
from forward.processes.electroweak import MW, top_partial_widths, w_partial_widths

__all__ = [
    "ALPHA_S_LINE_SHAPE",
    "DECAY_MODES",
    "LEPTON_SETS",
    "FERMI_CONSTANT",
    "W_MASS",
    "DecayModeInfo",
    "TopPairDecayMap",
    "branching_ratio",
    "bw_integral",
    "decay_mode_info",
    "top_decay_density",
    "top_mass_window",
    "top_pair_decay_factor",
    "top_width",
    "w_line_integral",
    "w_width",
]

#: Fermi constant in GeV⁻²
FERMI_CONSTANT = 1.1663787e-5
#: W pole mass in GeV (Pythia 8 default)
W_MASS = MW
#: decay modes of the t t̄ pair
DECAY_MODES = ("dilepton", "semileptonic", "hadronic")
#: ``leptons`` setting -> charged-lepton PDG ids of leptonic W decays
LEPTON_SETS: dict[str, tuple[int, ...]] = {"e": (11,), "mu": (13,), "all": (11, 13)}
#: α_s(M_Z) of the widths in the Breit–Wigner line shapes and windows
ALPHA_S_LINE_SHAPE = 0.118

_W_LEPTONIC = {11: (12, 11), 13: (14, 13)}


def top_width(mt, mw: float = W_MASS, alpha_s_mz=ALPHA_S_LINE_SHAPE):
    """Total top width Γ_t = Σ_q Γ(t → W q) in GeV, Pythia's conventions; differentiable.

    Args:
        mt: top mass in GeV, a number or tensor of any shape (> mw).
        mw: W mass in GeV.
        alpha_s_mz: α_s(M_Z) of the QCD factor (number or tensor broadcastable).

    Returns:
        A tensor of the broadcast shape (float64 for number inputs).
    """
    return sum(top_partial_widths(mt, alpha_s_mz, mw).values())


def w_width(mw: float = W_MASS, alpha_s_mz: float = ALPHA_S_LINE_SHAPE) -> float:
    """Total W width in GeV, Pythia's conventions (2.08691 at α_s(M_Z) = 0.118)."""
    return _w_width(float(mw), float(alpha_s_mz))


@functools.lru_cache(maxsize=16)
def _w_width(mw: float, alpha_s_mz: float) -> float:
    return float(sum(w_partial_widths(alpha_s_mz, mw).values()))


def _lepton_set(leptons) -> tuple[int, ...]:
    """Charged-lepton ids of a ``leptons`` setting; 11 and 13 are accepted as e and mu."""
    if leptons in (11, 13) and not isinstance(leptons, bool):
        return (int(leptons),)
    if isinstance(leptons, str) and leptons in LEPTON_SETS:
        return LEPTON_SETS[leptons]
    raise ValueError(f"leptons: expected one of {list(LEPTON_SETS)}, got {leptons!r}")


def branching_ratio(mode: str, leptons="e", alpha_s_mz=ALPHA_S_LINE_SHAPE,
                    mt=172.5) -> torch.Tensor:
    """BR(t t̄ → the final states of ``mode``) in Pythia's conventions (module docstring).

    Args:
        mode: one of :data:`DECAY_MODES`.
        leptons: ``"e"``, ``"mu"`` or ``"all"`` (or 11, 13).
        alpha_s_mz: α_s(M_Z), a number or tensor of shape () or (n,); differentiable.
        mt: top mass in GeV, a number or tensor broadcastable with ``alpha_s_mz``.

    Returns:
        The branching ratio, broadcast shape of ``alpha_s_mz`` and ``mt``.
    """
    if mode not in DECAY_MODES:
        raise ValueError(f"decays: expected one of {list(DECAY_MODES)}, got {mode!r}")
    ids = _lepton_set(leptons)
    ref = next((x for x in (alpha_s_mz, mt) if isinstance(x, torch.Tensor)), None)
    kw = {"dtype": torch.float64} if ref is None else {"dtype": ref.dtype, "device": ref.device}
    w = w_partial_widths(torch.as_tensor(alpha_s_mz, **kw))
    total = sum(w.values())
    br_lep = sum(w[_W_LEPTONIC[i]] for i in ids) / total
    br_had = sum(v for (up, _), v in w.items() if up < 10) / total
    t = top_partial_widths(torch.as_tensor(mt, **kw), torch.as_tensor(alpha_s_mz, **kw))
    br_top = t[5] / sum(t.values())
    w_part = {"dilepton": br_lep * br_lep, "semileptonic": br_lep * br_had,
              "hadronic": br_had * br_had}[mode]
    return br_top * br_top * w_part


@dataclass(frozen=True)
class DecayModeInfo:
    """Final states and branching ratio of a t t̄ decay mode.

    Attributes:
        final_state: six PDG ids (b, f̄₁, f₂, b̄, f₁, f̄₂) of the first flavour
            combination, see the module docstring.
        branching_ratio: BR(t t̄ → any of ``final_states``) at the default α_s(M_Z) =
            0.118 and m_t = 172.5 GeV (dimensionless; :func:`branching_ratio` for others).
        final_states: every flavour combination, each six PDG ids (equally likely).
    """

    final_state: tuple[int, ...]
    branching_ratio: float
    final_states: tuple[tuple[int, ...], ...] = ()


def decay_mode_info(mode: str, leptons="e") -> DecayModeInfo:
    """Final states and branching ratio of ``mode`` for the lepton flavours ``leptons``.

    Args:
        mode: one of :data:`DECAY_MODES`.
        leptons: ``"e"``, ``"mu"`` or ``"all"`` (11 and 13 are accepted as e and mu).

    Raises:
        ValueError: unknown mode or lepton setting.
    """
    if mode not in DECAY_MODES:
        raise ValueError(f"decays: expected one of {list(DECAY_MODES)}, got {mode!r}")
    ids = _lepton_set(leptons)
    had_t = (5, -1, 2)
    had_tb = (-5, 1, -2)

    def lep_t(lep):
        return (5, -lep, lep + 1)

    def lep_tb(lep):
        return (-5, lep, -(lep + 1))

    if mode == "dilepton":
        pairs = [(a, a) for a in ids] + [(a, b) for a in ids for b in ids if a != b]
        states = tuple(lep_t(a) + lep_tb(b) for a, b in pairs)
    elif mode == "semileptonic":
        states = tuple(lep_t(a) + had_tb for a in ids)
    else:
        states = (had_t + had_tb,)
    return DecayModeInfo(states[0], float(branching_ratio(mode, ids[0] if len(ids) == 1
                                                          else "all")), states)


def bw_integral(low2, high2, mass, width):
    r"""∫ dp² / ((p² - m²)² + m²Γ²) from ``low2`` to ``high2`` (GeV⁻²), broadcast shape.

    Args:
        low2, high2: bounds in GeV² (numbers or tensors).
        mass, width: pole mass and width in GeV (numbers or tensors).
    """
    ref = next((x for x in (low2, high2, mass, width) if isinstance(x, torch.Tensor)), None)
    kw = {"dtype": torch.float64} if ref is None else {"dtype": ref.dtype, "device": ref.device}
    low2, high2 = torch.as_tensor(low2, **kw), torch.as_tensor(high2, **kw)
    g = mass * width
    return (torch.atan((high2 - mass**2) / g) - torch.atan((low2 - mass**2) / g)) / g


def w_line_integral(m2_top, low2, high2, mw: float = W_MASS, gw: float | None = None):
    r"""N(M²) = ∫ dq² BW_W(q²) (M² - q²)² (M² + 2q²) over [low2, high2], in GeV⁴.

    BW_W(q²) = 1/((q² - m_W²)² + m_W²Γ_W²). Closed form: with u = q² - m_W²,
    A = M² - m_W², B = M² + 2m_W² the numerator is
    A²B + 2A(A - B)u + (B - 4A)u² + 2u³, integrated against 1/(u² + g²), g = m_WΓ_W.

    Args:
        m2_top: top mass squared M² in GeV², shape (...).
        low2, high2: the W window in GeV² (numbers or tensors broadcastable).
        mw, gw: W mass and width in GeV (width default :func:`w_width`).
    """
    gw = w_width(mw) if gw is None else gw
    g = mw * gw
    a = m2_top - mw**2
    b = m2_top + 2 * mw**2
    c0, c1, c2, c3 = a * a * b, 2 * a * (a - b), b - 4 * a, 2.0
    ua = torch.as_tensor(low2 - mw**2, dtype=m2_top.dtype, device=m2_top.device)
    ub = torch.as_tensor(high2 - mw**2, dtype=m2_top.dtype, device=m2_top.device)
    d_atan = torch.atan(ub / g) - torch.atan(ua / g)
    d_log = torch.log((ub**2 + g * g) / (ua**2 + g * g))
    return (
        c0 / g * d_atan
        + 0.5 * c1 * d_log
        + c2 * ((ub - ua) - g * d_atan)
        + c3 * (0.5 * (ub**2 - ua**2) - 0.5 * g * g * d_log)
    )


def _w_window(bw_cut: float, mw: float = W_MASS) -> tuple[float, float]:
    gw = w_width(mw)
    low = mw - bw_cut * gw
    if low <= 0:
        raise ValueError(f"bw_cut: W window starts at {low:.3g} GeV <= 0; use a smaller bw_cut")
    return low**2, (mw + bw_cut * gw) ** 2


def top_mass_window(mt, shat, bw_cut: float):
    """Top-mass window (m_lo, m_hi) in GeV: m_t ∓ c Γ_t, the upper end at most √ŝ/2.

    Args:
        mt: top pole mass in GeV, shape () or (n,).
        shat: ŝ in GeV², shape (n,).
        bw_cut: c, in widths.

    Returns:
        (m_lo, m_hi), each broadcast to shape (n,).

    Raises:
        ValueError: if the lower end is below the upper end of the W window (the top
            could not decay into every W mass of the window).
    """
    gt = top_width(mt)
    m_lo = mt - bw_cut * gt
    w_hi = math.sqrt(_w_window(bw_cut)[1])
    if bool((m_lo <= w_hi).any()):
        raise ValueError(
            f"bw_cut: top window starts at {float(torch.as_tensor(m_lo).min()):.4g} GeV, below "
            f"the W window's end {w_hi:.4g} GeV; use a smaller bw_cut"
        )
    m_hi = torch.minimum(mt + bw_cut * gt, 0.5 * shat.clamp(min=0).sqrt())
    return torch.broadcast_tensors(m_lo, m_hi)


def top_decay_density(p_b, p_f1, p_f2, bw_cut: float = 15.0) -> torch.Tensor:
    r"""Normalised LO decay density D of t → b f̄₁ f₂ relative to dΦ₃, in GeV⁻².

    D = (p_t·p_f̄₁)(p_b·p_f₂) BW_W(q²) 3072π³ M² / N(M²) inside the W window, zero
    outside, so that ∫ dΦ₃ D = 1 for every top mass M² = (p_b + p_f̄₁ + p_f₂)².
    For the antitop pass (b̄, f₁, f̄₂) (same form by CP).

    Args:
        p_b, p_f1, p_f2: momenta, each shape (n, 4) in GeV (massless).
        bw_cut: half-width of the W window in W widths.

    Returns:
        D, shape (n,).
    """
    p_t = p_b + p_f1 + p_f2
    m2 = mass2(p_t)
    q2 = mass2(p_f1 + p_f2)
    low2, high2 = _w_window(bw_cut)
    gw = w_width()
    bw = 1.0 / ((q2 - W_MASS**2) ** 2 + (W_MASS * gw) ** 2)
    norm = w_line_integral(m2, low2, high2)
    inside = (q2 >= low2) & (q2 <= high2)
    d = dot(p_t, p_f1) * dot(p_b, p_f2) * bw * (3072 * math.pi**3) * m2 / norm
    return torch.where(inside, d, torch.zeros_like(d))


def top_pair_decay_factor(
    events: HardEvents, mt: torch.Tensor, mode: str, shat: torch.Tensor, bw_cut: float = 15.0,
    *, leptons="e", alpha_s_mz=ALPHA_S_LINE_SHAPE,
) -> torch.Tensor:
    r"""The narrow-width factor F of the module docstring, in GeV⁻⁸.

    Args:
        events: hard events with six momenta (b, f̄₁, f₂, b̄, f₁, f̄₂), shape (n, 6, 4).
        mt: top pole mass in GeV, shape () or (n,); differentiable.
        mode: one of :data:`DECAY_MODES` (sets the branching ratio).
        shat: ŝ in GeV², shape (n,).
        bw_cut: window half-widths for tops and W's, in widths.
        leptons: lepton flavours summed in the branching ratio (``"e"``, ``"mu"``,
            ``"all"``).
        alpha_s_mz: α_s(M_Z) of the branching ratio, shape () or (n,); differentiable.

    Returns:
        F, shape (n,); zero outside the windows and below ŝ = 4 m_t².
    """
    br = branching_ratio(mode, leptons, alpha_s_mz, mt)
    p = events.momenta
    p1, p2 = p[:, 0:3].sum(1), p[:, 3:6].sum(1)
    m1s, m2s = mass2(p1), mass2(p2)
    m_lo, m_hi = top_mass_window(mt, shat, bw_cut)
    gt = top_width(mt)
    ok = (shat > 4 * mt**2) & (m1s >= m_lo**2) & (m1s <= m_hi**2)
    ok = ok & (m2s >= m_lo**2) & (m2s <= m_hi**2)
    # keep masked-out entries finite so that gradients stay finite
    hi2 = torch.where(ok, m_hi**2, m_lo**2 + 1.0)
    s_safe = torch.where(ok, shat, 4 * mt**2 + 1.0)
    norm = bw_integral(m_lo**2, hi2, mt, gt)
    rho1 = 1.0 / (((m1s - mt**2) ** 2 + (mt * gt) ** 2) * norm)
    rho2 = 1.0 / (((m2s - mt**2) ** 2 + (mt * gt) ** 2) * norm)
    beta0 = (1 - 4 * mt**2 / s_safe).sqrt()
    lam = ((s_safe - m1s - m2s) ** 2 - 4 * m1s * m2s).clamp(min=1e-300)
    beta12 = lam.sqrt() / s_safe
    d1 = top_decay_density(p[:, 0], p[:, 1], p[:, 2], bw_cut)
    d2 = top_decay_density(p[:, 3], p[:, 4], p[:, 5], bw_cut)
    f = br * beta0 / beta12 * (2 * math.pi * rho1) * (2 * math.pi * rho2) * d1 * d2
    return torch.where(ok, f, torch.zeros_like(f))


class TopPairDecayMap:
    """Partonic map P → (t → b f̄₁ f₂)(t̄ → b̄ f₁ f̄₂), shaped like the NWA weight.

    Coordinates r ∈ [0, 1]^14: (cos θ, φ) of the top in P's rest frame; the two top
    masses² by Breit–Wigner on the window of :func:`top_mass_window`; per top: the W
    mass² by Breit–Wigner on the W window, (cos θ, φ) of the W in the top rest frame,
    (cos θ, φ) of f̄₁ (f₁) in the W rest frame. Angles follow the frame convention of
    :mod:`forward.phasespace.two_body`. ``log_w`` is relative to dΦ₆(P; ...).

    Args:
        mt: top pole mass in GeV (a number: the map is built per parameter point).
        bw_cut: window half-widths in widths, as in :func:`top_pair_decay_factor`.

    Attributes:
        dim: 14; n_out: 6; threshold: 4 m_t² (the weight vanishes below).
    """

    dim = 14
    n_out = 6

    def __init__(self, mt: float, bw_cut: float = 15.0) -> None:
        mt = float(mt)
        if not (math.isfinite(mt) and mt > W_MASS):
            raise ValueError(f"mt: expected a top mass above m_W = {W_MASS} GeV, got {mt}")
        self.mt = mt
        self.bw_cut = float(bw_cut)
        self.threshold = 4 * mt**2
        self.gamma_t = float(top_width(mt))
        self._top_bw = BreitWignerSampling(mt, self.gamma_t)
        self._w_bw = BreitWignerSampling(W_MASS, w_width())
        self._w_lo2, self._w_hi2 = _w_window(self.bw_cut)
        top_mass_window(torch.tensor(mt), torch.tensor([4 * mt**2]), self.bw_cut)  # checks

    def _top_bounds(self, m2):
        m_lo, m_hi = top_mass_window(torch.tensor(self.mt, dtype=m2.dtype), m2, self.bw_cut)
        return (m_lo**2).to(m2.device), (m_hi**2).to(m2.device)

    def _decay_forward(self, p_top, m2_top, r):
        q2, lj = self._w_bw.forward(r[:, 0], self._w_lo2, self._w_hi2)
        b, w, lv1 = decay_momenta(
            p_top, 0.0, q2.sqrt(), 2 * r[:, 1] - 1, 2 * math.pi * r[:, 2], m2_parent=m2_top
        )
        f1, f2, lv2 = decay_momenta(
            w, 0.0, 0.0, 2 * r[:, 3] - 1, 2 * math.pi * r[:, 4], m2_parent=q2
        )
        return (b, f1, f2), lj + lv1 + lv2 - math.log(2 * math.pi)

    def _decay_inverse(self, b, f1, f2):
        w = f1 + f2
        p_top = b + w
        q2 = mass2(w)
        r0, lj = self._w_bw.inverse(q2, self._w_lo2, self._w_hi2)
        c1, phi1 = decay_angles(p_top, b)
        c2, phi2 = decay_angles(w, f1)
        m2 = mass2(p_top)
        lv1 = torch.log((m2 - q2) / m2) - math.log(8 * math.pi)
        lv2 = -math.log(8 * math.pi)
        r = torch.stack(
            [r0, (c1 + 1) / 2, phi1 / (2 * math.pi), (c2 + 1) / 2, phi2 / (2 * math.pi)], dim=-1
        )
        return r, lj - lv1 - lv2 + math.log(2 * math.pi)

    def forward(
        self, P: torch.Tensor, r: torch.Tensor, m2: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Momenta from hypercube points.

        Args:
            P: total momentum, shape (n, 4) in GeV, with P² > threshold.
            r: points in [0, 1], shape (n, 14).
            m2: P² in GeV², shape (n,), if known more accurately than from P.

        Returns:
            (momenta, log_w): shape (n, 6, 4) in P's frame, and log(dΦ₆/dr), shape (n,).
        """
        m2 = mass2(P) if m2 is None else m2
        lo2, hi2 = self._top_bounds(m2)
        m1s, lj1 = self._top_bw.forward(r[:, 2], lo2, hi2)
        m2s, lj2 = self._top_bw.forward(r[:, 3], lo2, hi2)
        t, tb, lv = decay_momenta(
            P, m1s.sqrt(), m2s.sqrt(), 2 * r[:, 0] - 1, 2 * math.pi * r[:, 1], m2_parent=m2
        )
        dt, ljt = self._decay_forward(t, m1s, r[:, 4:9])
        db, ljb = self._decay_forward(tb, m2s, r[:, 9:14])
        log_w = lv + lj1 + lj2 - 2 * math.log(2 * math.pi) + ljt + ljb
        return torch.stack([*dt, *db], dim=-2), log_w

    def inverse(
        self, P: torch.Tensor, momenta: torch.Tensor, m2: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Hypercube points from momenta (the inverse of :meth:`forward`).

        Args:
            P: total momentum, shape (n, 4) in GeV.
            momenta: shape (n, 6, 4) in P's frame, order (b, f̄₁, f₂, b̄, f₁, f̄₂).
            m2: P² in GeV², shape (n,), if known more accurately than from P.

        Returns:
            (r, log_w): r shape (n, 14) (outside [0, 1] where the map has no support),
            log_w = -(forward log_w), shape (n,).
        """
        if momenta.ndim != 3 or momenta.shape[1:] != (6, 4):
            raise ValueError(f"momenta: expected shape (n, 6, 4), got {tuple(momenta.shape)}")
        m2 = mass2(P) if m2 is None else m2
        t = momenta[:, 0:3].sum(1)
        tb = momenta[:, 3:6].sum(1)
        m1s, m2s = mass2(t), mass2(tb)
        lo2, hi2 = self._top_bounds(m2)
        r2, lj1 = self._top_bw.inverse(m1s, lo2, hi2)
        r3, lj2 = self._top_bw.inverse(m2s, lo2, hi2)
        c, phi = decay_angles(P, t)
        lam = ((m2 - m1s - m2s) ** 2 - 4 * m1s * m2s).clamp(min=0)
        lv = torch.log(lam.sqrt() / m2) - math.log(8 * math.pi)
        rt, ljt = self._decay_inverse(momenta[:, 0], momenta[:, 1], momenta[:, 2])
        rb, ljb = self._decay_inverse(momenta[:, 3], momenta[:, 4], momenta[:, 5])
        head = torch.stack([(c + 1) / 2, phi / (2 * math.pi), r2, r3], dim=-1)
        r = torch.cat([head, rt, rb], dim=-1)
        return r, -lv + lj1 + lj2 + 2 * math.log(2 * math.pi) + ljt + ljb

    def __repr__(self) -> str:
        return f"TopPairDecayMap(mt={self.mt:g}, bw_cut={self.bw_cut:g})"
