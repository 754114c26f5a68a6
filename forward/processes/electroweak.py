r"""Electroweak couplings, running α_EM and resonance widths in Pythia 8's conventions.

Normalisation (as in Pythia 8.317, ``StandardModel.cc``/``ResonanceWidths.cc``): the
photon couples to a fermion with its charge :math:`e_f`; the Z and Z′ couple with

.. math::  \frac{e}{4 s_W c_W}\,\gamma^\mu (v_f - a_f \gamma_5),

i.e. relative to the photon with :math:`\kappa = 1/(16\, s_W^2 c_W^2)` in the squared
amplitude. SM couplings are :math:`a_f = \pm 1` (:math:`2 T_3`) and
:math:`v_f = a_f - 4 e_f \sin^2\bar\theta_W`, with two different values of the
mixing angle as in Pythia: :math:`\sin^2\theta_W = 0.2312` in κ and
:math:`\sin^2\bar\theta_W = 0.2315` in :math:`v_f`. The chiral couplings are
:math:`g_L = v + a`, :math:`g_R = v - a`.

Widths are computed from the couplings at lowest order, with a first-order QCD
factor :math:`3 (1 + \alpha_s/\pi)` for quarks, the fermion-mass phase-space factors
:math:`\beta (1 + 2 m_f^2/M^2)` (vector) and :math:`\beta^3` (axial), and the channel
closed when :math:`M < 2 m_f + 0.1` GeV, as Pythia does at initialisation:

.. math::  \Gamma(V \to f\bar f) = \frac{\alpha_{EM}(M^2)\, \kappa\, M}{3}\,
           \beta \big[v_f^2 (1 + 2 m_f^2/M^2) + a_f^2 \beta^2\big]\, N_f.

With Pythia's defaults this gives Γ_Z = 2.50419 GeV and Γ_Z′(2 TeV) = 63.0939 GeV.
Every function here is plain torch: widths are differentiable in the Z′ mass and
couplings.

**W and top widths** as Pythia's ``ResonanceW`` and ``ResonanceTop`` compute them at
initialisation (mass M = m_W or m_t, m_i the masses of :data:`FERMION_MASSES`,
r_i = m_i²/M², λ = (1 - r₁ - r₂)² - 4 r₁ r₂, channels closed when M < m₁ + m₂ + 0.1 GeV):

.. math::
    \Gamma(W^+ \to f_1 \bar f_2) = \frac{\alpha_{EM}(m_W^2)\, m_W}{12 \sin^2\theta_W}
        \lambda^{1/2}\big[1 - \tfrac12 (r_1 + r_2) - \tfrac12 (r_1 - r_2)^2\big]
        \times 3\big(1 + \tfrac{\alpha_s(m_W^2)}{\pi}\big) |V_{f_1 f_2}|^2
        \ \text{(quarks)},

.. math::
    \Gamma(t \to W^+ q) = \frac{\alpha_{EM}(m_t^2)}{16 \sin^2\theta_W}
        \frac{m_t^3}{m_W^2} \lambda^{1/2}\big[(1 - r_q)^2 + (1 + r_q) r_W - 2 r_W^2\big]
        \big(1 - 2.5\,\tfrac{\alpha_s(m_t^2)}{\pi}\big) |V_{tq}|^2,

with q = d, s, b, the running α_EM of :func:`alpha_em`, α_s at one loop from
α_s(M_Z) (Pythia's ``SigmaProcess:alphaSvalue``; the widths depend on it), the CKM
moduli :data:`CKM` and sin²θ_W = 0.2312. W channels: u d̄, c d̄, u s̄, c s̄, u b̄, c b̄,
e ν, μ ν, τ ν. With α_s(M_Z) = 0.118 this gives Γ_W = 2.08691 GeV,
BR(W → eν) = 0.108380 and Γ_t(172.5) = 1.35475 GeV, BR(t → W b) = 0.998197 (Pythia
8.317 after ``init()``, tested); Pythia's default α_s(M_Z) = 0.13 gives BR(W → eν) =
0.1081.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from forward._validation import check_choice
from forward.alphas import RunningAlphaS

__all__ = [
    "ALPHA_EM_0",
    "ALPHA_EM_MZ",
    "ALPHA_S_WIDTH",
    "CKM",
    "FERMION_MASSES",
    "MW",
    "MZ",
    "W_CHANNELS",
    "SIN2_THETA_W",
    "SIN2_THETA_W_BAR",
    "ZPRIME_DEFAULT_COUPLINGS",
    "alpha_em",
    "alpha_s_width",
    "axial_coupling",
    "charge",
    "fermion_pair_width",
    "kappa",
    "top_partial_widths",
    "vector_coupling",
    "w_partial_widths",
    "z_width",
    "zprime_fermion_couplings",
    "zprime_width",
]

#: sin²θ_W in the Z coupling normalisation κ (Pythia ``StandardModel:sin2thetaW``)
SIN2_THETA_W = 0.2312
#: effective sin²θ_W in the SM vector couplings (Pythia ``StandardModel:sin2thetaWbar``)
SIN2_THETA_W_BAR = 0.2315
#: α_EM(Q² = 0) (Pythia ``StandardModel:alphaEM0``)
ALPHA_EM_0 = 0.00729735
#: α_EM(M_Z²) (Pythia ``StandardModel:alphaEMmZ``); also the value of "fixed" α_EM
ALPHA_EM_MZ = 0.00781751
#: Z mass in GeV (Pythia's particle data, ``23:m0``)
MZ = 91.1876
#: W mass in GeV (Pythia's particle data, ``24:m0``)
MW = 80.385
#: CKM moduli |V_ij| by (up-type, down-type) quark id (Pythia 8.317
#: ``StandardModel:Vud`` ... ``Vtb``)
CKM: dict[tuple[int, int], float] = {
    (2, 1): 0.97383, (2, 3): 0.2272, (2, 5): 0.00396,
    (4, 1): 0.2271, (4, 3): 0.97296, (4, 5): 0.04221,
    (6, 1): 0.00814, (6, 3): 0.04161, (6, 5): 0.9991,
}
#: W⁺ decay channels as (up-type fermion, down-type antifermion id magnitude), the
#: order of Pythia's decay table: u d̄, c d̄, u s̄, c s̄, u b̄, c b̄, e ν, μ ν, τ ν
W_CHANNELS: tuple[tuple[int, int], ...] = (
    (2, 1), (4, 1), (2, 3), (4, 3), (2, 5), (4, 5), (12, 11), (14, 13), (16, 15),
)
#: α_s(M_Z) of the one-loop running used in the QCD factor of widths
#: (Pythia ``SigmaProcess:alphaSvalue``, ``alphaSorder = 1``)
ALPHA_S_WIDTH = 0.13

#: fermion masses in GeV used in width phase-space factors (Pythia's ``m0`` values)
FERMION_MASSES: dict[int, float] = {
    1: 0.33, 2: 0.33, 3: 0.5, 4: 1.5, 5: 4.8, 6: 173.0,
    11: 0.000511, 12: 0.0, 13: 0.10566, 14: 0.0, 15: 1.77682, 16: 0.0,
}

#: Pythia's default Z′ couplings (``Zprime:vd, ad, vu, au, ve, ae, vnue, anue``),
#: universal over generations
ZPRIME_DEFAULT_COUPLINGS: dict[str, float] = {
    "vd": -0.693, "ad": -1.0, "vu": 0.387, "au": 1.0,
    "ve": -0.08, "ae": -1.0, "vnu": 1.0, "anu": 1.0,
}

# scale of Pythia's α_EM matching and α_s reference (its AlphaEM/AlphaStrong use 91.188)
_MZ_REF = 91.188
# α_EM running: effective thresholds in GeV² (e, μ, light quarks, τ + c, b) and slopes
# Σ charge² / (3π), slightly enhanced for quarks (Pythia's AlphaEM)
_AEM_Q2_STEPS = (0.26e-6, 0.011, 0.25, 3.5, 90.0)
_AEM_SLOPES = (0.1061, 0.2122, 0.460, 0.700, 0.725)
# a channel is closed when M < m1 + m2 + this margin (GeV)
_MASS_MARGIN = 0.1


def charge(pid: int) -> float:
    """Electric charge in units of e of a quark (1..6) or lepton (11..16); sign of pid ignored."""
    a = abs(int(pid))
    if 1 <= a <= 6:
        return -1.0 / 3.0 if a % 2 else 2.0 / 3.0
    if 11 <= a <= 16:
        return -1.0 if a % 2 else 0.0
    raise ValueError(f"pid: expected a quark (1..6) or lepton (11..16) code, got {pid}")


def axial_coupling(pid: int) -> float:
    """SM axial coupling a_f = 2 T_3 = ±1 (Pythia normalisation)."""
    a = abs(int(pid))
    if not (1 <= a <= 6 or 11 <= a <= 16):
        raise ValueError(f"pid: expected a quark (1..6) or lepton (11..16) code, got {pid}")
    return -1.0 if a % 2 else 1.0


def vector_coupling(pid: int) -> float:
    """SM vector coupling v_f = a_f − 4 e_f sin²θ̄_W (Pythia normalisation)."""
    return axial_coupling(pid) - 4.0 * charge(pid) * SIN2_THETA_W_BAR


def kappa() -> float:
    """Z/Z′ coupling normalisation κ = 1/(16 sin²θ_W cos²θ_W), dimensionless."""
    return 1.0 / (16.0 * SIN2_THETA_W * (1.0 - SIN2_THETA_W))


def _alpha_em_steps() -> tuple[list[float], list[float]]:
    """α_EM at the lower edge of each running region and the matched slopes."""
    b = list(_AEM_SLOPES)
    q2 = _AEM_Q2_STEPS
    a = [0.0] * 5
    a[4] = ALPHA_EM_MZ / (1.0 + ALPHA_EM_MZ * b[4] * math.log(_MZ_REF**2 / q2[4]))
    a[3] = a[4] / (1.0 - a[4] * b[3] * math.log(q2[3] / q2[4]))
    a[0] = ALPHA_EM_0
    a[1] = a[0] / (1.0 - a[0] * b[0] * math.log(q2[1] / q2[0]))
    a[2] = a[1] / (1.0 - a[1] * b[1] * math.log(q2[2] / q2[1]))
    # the light-quark slope is fitted so that the running joins smoothly
    b[2] = (1.0 / a[3] - 1.0 / a[2]) / math.log(q2[2] / q2[3])
    return a, b


def alpha_em(q2: torch.Tensor, mode: str = "running") -> torch.Tensor:
    """Electromagnetic coupling at the scale q².

    ``"running"``: first-order running with effective lepton and quark thresholds,
    normalised to α_EM(M_Z²) = 0.00781751 and α_EM(0) = 0.00729735 (as Pythia's
    ``AlphaEM`` with order 1). ``"fixed"``: α_EM(M_Z²) at every scale (Pythia order −1).

    Args:
        q2: scale squared, shape (*), in GeV².
        mode: ``"running"`` or ``"fixed"``.

    Returns:
        α_EM, shape (*), dimensionless, same dtype/device as ``q2``.
    """
    check_choice("alpha_em", mode, ("running", "fixed"))
    if mode == "fixed":
        return torch.full_like(q2, ALPHA_EM_MZ)
    a, b = _alpha_em_steps()
    out = torch.full_like(q2, ALPHA_EM_0)
    # walk regions from low to high so the highest region passed wins
    for i in range(5):
        above = q2 > _AEM_Q2_STEPS[i]
        safe = torch.where(above, q2, torch.full_like(q2, _AEM_Q2_STEPS[i]))
        val = a[i] / (1.0 - b[i] * a[i] * torch.log(safe / _AEM_Q2_STEPS[i]))
        out = torch.where(above, val, out)
    return out


def alpha_s_width(q2: torch.Tensor, alpha_s_mz: float = ALPHA_S_WIDTH) -> torch.Tensor:
    """One-loop α_s with flavour thresholds, as used for the QCD factor of widths.

    Pythia's hard-process coupling at first order (``SigmaProcess:alphaSvalue = 0.13``,
    thresholds 1.5, 4.8, 171 GeV, n_f ≤ 6), from :class:`forward.alphas.RunningAlphaS`.

    Args:
        q2: scale squared, shape (*), in GeV².
        alpha_s_mz: α_s at 91.188 GeV.

    Returns:
        α_s, shape (*), dimensionless, dtype/device of ``q2``.
    """
    return RunningAlphaS(alpha_s_mz, order=1, dtype=q2.dtype, device=q2.device)(q2)


def fermion_pair_width(
    mass: torch.Tensor,
    m_f: float | torch.Tensor,
    v: torch.Tensor | float,
    a: torch.Tensor | float,
    *,
    quark: bool,
    alpha_em_mode: str = "running",
    alpha_s: torch.Tensor | None = None,
) -> torch.Tensor:
    """Partial width of a neutral vector boson into f f̄ at lowest order.

    Args:
        mass: boson mass, shape (*), in GeV.
        m_f: fermion mass in GeV, a number or a tensor broadcastable with ``mass``.
        v, a: vector and axial couplings in Pythia's normalisation, broadcastable with
            ``mass``.
        quark: apply the colour and QCD factor 3 (1 + α_s(M²)/π).
        alpha_em_mode: ``"running"`` (α_EM at M²) or ``"fixed"``.
        alpha_s: α_s(M²) for the QCD factor, shape broadcastable with ``mass``; default
            :func:`alpha_s_width` of M² (pass it to share one coupling over channels).

    Returns:
        Partial width, shape (*), in GeV; zero below the threshold 2 m_f + 0.1 GeV.
    """
    m2 = mass * mass
    mr = m_f**2 / m2
    is_open = mass > 2.0 * m_f + _MASS_MARGIN
    beta = torch.sqrt(torch.where(is_open, 1.0 - 4.0 * mr, torch.ones_like(mr)))
    pref = alpha_em(m2, alpha_em_mode) * kappa() * mass / 3.0
    width = pref * beta * (v * v * (1.0 + 2.0 * mr) + a * a * beta * beta)
    if quark:
        als = alpha_s_width(m2) if alpha_s is None else alpha_s
        width = width * 3.0 * (1.0 + als / math.pi)
    return torch.where(is_open, width, torch.zeros_like(width))


def z_width(
    alpha_em_mode: str = "running", *, dtype: torch.dtype = torch.float64, device=None
) -> torch.Tensor:
    """Total Z width from the SM couplings: d, u, s, c, b and three lepton generations.

    The top channel is closed (as in Pythia's ``ResonanceGmZ``).

    Returns:
        Γ_Z, shape (), in GeV (2.50419 with running α_EM).
    """
    mz = torch.tensor(MZ, dtype=dtype, device=device)
    als = alpha_s_width(mz * mz)  # one coupling for the five quark channels
    total = torch.zeros((), dtype=dtype, device=device)
    for pid in (1, 2, 3, 4, 5, 11, 12, 13, 14, 15, 16):
        total = total + fermion_pair_width(
            mz, FERMION_MASSES[pid], vector_coupling(pid), axial_coupling(pid),
            quark=pid < 10, alpha_em_mode=alpha_em_mode, alpha_s=als,
        )
    return total


def zprime_fermion_couplings(
    couplings: Mapping[str, torch.Tensor | float], gzp: torch.Tensor | float = 1.0
) -> dict[str, tuple]:
    """Z′ (vector, axial) couplings per fermion type, scaled by the global factor gzp.

    Args:
        couplings: ``vd, ad, vu, au, ve, ae`` and optionally ``vnu, anu`` (default 1, 1,
            Pythia's ``Zprime:vnue/anue``), each a number or tensor of shape () or (n,).
        gzp: global coupling scale, shape () or (n,).

    Returns:
        ``{"d": (v, a), "u": (v, a), "e": (v, a), "nu": (v, a)}``.
    """
    out = {}
    for kind, (vk, ak) in {"d": ("vd", "ad"), "u": ("vu", "au"), "e": ("ve", "ae"),
                           "nu": ("vnu", "anu")}.items():
        v = couplings.get(vk, ZPRIME_DEFAULT_COUPLINGS[vk])
        a = couplings.get(ak, ZPRIME_DEFAULT_COUPLINGS[ak])
        out[kind] = (gzp * v, gzp * a)
    return out


def _kind(pid: int) -> str:
    a = abs(pid)
    if a <= 6:
        return "d" if a % 2 else "u"
    return "e" if a % 2 else "nu"


def zprime_width(
    mass: torch.Tensor,
    couplings: Mapping[str, torch.Tensor | float],
    gzp: torch.Tensor | float = 1.0,
    *,
    alpha_em_mode: str = "running",
    coup_ww: float = 0.0,
) -> torch.Tensor:
    """Total Z′ width from its couplings, universal over three generations.

    Sums f f̄ for the six quarks (top with m_t = 173 GeV) and six leptons, plus
    optionally W⁺W⁻ with Pythia's ``Zprime:coup2WW`` (default 0, channel off):
    :math:`\\Gamma_{WW} = \\frac{\\alpha\\kappa M}{3} (g_{WW} c_W^2)^2 \\beta^3
    (1 + 20 r + 12 r^2)`, r = m_W²/M².

    Args:
        mass: Z′ mass, shape () or (n,), in GeV.
        couplings: see :func:`zprime_fermion_couplings`.
        gzp: global coupling scale, shape () or (n,).
        alpha_em_mode: ``"running"`` or ``"fixed"``.
        coup_ww: Z′ W⁺W⁻ coupling relative to the SM Z's.

    Returns:
        Γ_Z′, shape broadcast of the inputs, in GeV (63.0939 at 2 TeV with defaults).
    """
    cpl = zprime_fermion_couplings(couplings, gzp)
    als = alpha_s_width(mass * mass)[..., None]  # one coupling for the six quark channels
    total = torch.zeros_like(mass)
    # quarks and leptons each in one vectorised call (fermion index last)
    for pids, quark in (((1, 2, 3, 4, 5, 6), True), ((11, 12, 13, 14, 15, 16), False)):
        m_f = torch.tensor([FERMION_MASSES[p] for p in pids], dtype=mass.dtype,
                           device=mass.device)
        v, a = (torch.stack(torch.broadcast_tensors(
            *[torch.as_tensor(cpl[_kind(p)][i], dtype=mass.dtype, device=mass.device)
              for p in pids]), -1) for i in (0, 1))
        total = total + fermion_pair_width(
            mass[..., None], m_f, v, a, quark=quark, alpha_em_mode=alpha_em_mode,
            alpha_s=als,
        ).sum(-1)
    if coup_ww != 0.0:
        mw = MW
        is_open = mass > 2.0 * mw + _MASS_MARGIN
        r = mw**2 / (mass * mass)
        beta = torch.sqrt(torch.where(is_open, 1.0 - 4.0 * r, torch.ones_like(r)))
        pref = alpha_em(mass * mass, alpha_em_mode) * kappa() * mass / 3.0
        ww = pref * (coup_ww * (1.0 - SIN2_THETA_W)) ** 2 * beta**3 * (1 + 20 * r + 12 * r * r)
        total = total + torch.where(is_open, ww, torch.zeros_like(ww))
    return total


def _alpha_s_one_loop(alpha_s_mz: torch.Tensor, q2: torch.Tensor) -> torch.Tensor:
    """One-loop α_s(q²) from α_s(M_Z) of any shape broadcastable with ``q2`` (GeV²)."""
    from forward.processes.ttbar import running_alpha_s  # the one implementation

    a, q = torch.broadcast_tensors(alpha_s_mz, q2)
    return running_alpha_s(a.reshape(-1), q.reshape(-1), 1).reshape(a.shape)


def _two_body(mass: torch.Tensor, m1: float, m2: float):
    """(r₁, r₂, λ^{1/2}, open) of a two-body decay at ``mass`` (GeV), Pythia's margin."""
    r1, r2 = m1**2 / (mass * mass), m2**2 / (mass * mass)
    is_open = mass > m1 + m2 + _MASS_MARGIN
    lam = (1.0 - r1 - r2) ** 2 - 4.0 * r1 * r2
    ps = torch.sqrt(torch.where(is_open, lam, torch.ones_like(lam)).clamp(min=0.0))
    return r1, r2, ps, is_open


def w_partial_widths(
    alpha_s_mz: torch.Tensor | float = 0.118,
    mass: float = MW,
    *,
    dtype: torch.dtype = torch.float64,
    device=None,
) -> dict[tuple[int, int], torch.Tensor]:
    """Partial widths of W⁺ in Pythia's conventions (module docstring).

    Args:
        alpha_s_mz: α_s(M_Z) of the one-loop coupling in the QCD factor, a number or a
            tensor of shape () or (n,); differentiable.
        mass: W mass in GeV.
        dtype, device: of the result when ``alpha_s_mz`` is a number.

    Returns:
        Channel of :data:`W_CHANNELS` -> width in GeV, shape of ``alpha_s_mz``.
    """
    if isinstance(alpha_s_mz, torch.Tensor):
        dtype, device = alpha_s_mz.dtype, alpha_s_mz.device
    a_mz = torch.as_tensor(alpha_s_mz, dtype=dtype, device=device)
    m = torch.tensor(mass, dtype=dtype, device=device)
    pref = alpha_em(m * m) * m / (12.0 * SIN2_THETA_W)
    als = _alpha_s_one_loop(a_mz, m * m)
    out = {}
    for up, down in W_CHANNELS:
        r1, r2, ps, is_open = _two_body(m, FERMION_MASSES[up], FERMION_MASSES[down])
        width = pref * ps * (1.0 - 0.5 * (r1 + r2) - 0.5 * (r1 - r2) ** 2)
        width = torch.where(is_open, width, torch.zeros_like(width))
        if up < 10:
            width = width * 3.0 * (1.0 + als / math.pi) * CKM[(up, down)] ** 2
        out[(up, down)] = width * torch.ones_like(a_mz)
    return out


def top_partial_widths(
    mt: torch.Tensor | float,
    alpha_s_mz: torch.Tensor | float = 0.118,
    mw: float = MW,
) -> dict[int, torch.Tensor]:
    """Partial widths Γ(t → W⁺ q) for q = d, s, b in Pythia's conventions (module docstring).

    Args:
        mt: top mass in GeV, a number or tensor of shape () or (n,); differentiable.
        alpha_s_mz: α_s(M_Z) of the one-loop coupling in the QCD factor, a number or
            tensor broadcastable with ``mt``; differentiable.
        mw: W mass in GeV.

    Returns:
        Down-type quark id (1, 3, 5) -> width in GeV, broadcast shape of the inputs.
    """
    ref = next((x for x in (mt, alpha_s_mz) if isinstance(x, torch.Tensor)), None)
    kw = {"dtype": torch.float64} if ref is None else {"dtype": ref.dtype, "device": ref.device}
    mt = torch.as_tensor(mt, **kw)
    a_mz = torch.as_tensor(alpha_s_mz, **kw)
    mt, a_mz = torch.broadcast_tensors(mt, a_mz)
    m2 = mt * mt
    pref = alpha_em(m2) / (16.0 * SIN2_THETA_W) * mt**3 / mw**2
    als = _alpha_s_one_loop(a_mz, m2)
    colour = 1.0 - 2.5 * als / math.pi
    out = {}
    for q in (1, 3, 5):
        rw, rq, ps, is_open = _two_body(mt, mw, FERMION_MASSES[q])
        width = pref * ps * ((1.0 - rq) ** 2 + (1.0 + rq) * rw - 2.0 * rw * rw)
        width = width * colour * CKM[(6, q)] ** 2
        out[q] = torch.where(is_open, width, torch.zeros_like(width))
    return out
