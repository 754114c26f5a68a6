r"""Diphoton plus jet, p p → γ γ g, through q q̄ → γ γ g at tree level (massless quarks).

Usage (registry name ``"diphoton-jet"``)::

    from forward.processes import get_process
    proc = get_process("diphoton-jet")            # default cuts, √s = 13 TeV
    params = proc.params()                         # {"alpha_s": 0.118, "alpha_em": 1/137.036}
    cube_map = proc.phase_space()[0]               # HadronicMap, dim 7, invertible
    events, log_jac = cube_map.forward(r)          # r: (n, 7); log_jac w.r.t. dx1 dx2 dΦ_3
    me2 = proc.matrix_element(events, params)      # (n, 10): |M|²/2! per flavour channel, GeV⁻²
    keep = proc.cuts(events)                       # (n,) bool
    from forward.xsec import cross_section
    cross_section(proc, 200_000, seed=1)           # σ in pb with its error

**Matrix element.** For :math:`q(p_1)\,\bar q(p_2) \to \gamma(k_1)\,\gamma(k_2)\,g(k_3)`
only six diagrams contribute: the three bosons are radiated from the single quark
line in any order. The gluon enters through one colour matrix :math:`T^a_{ij}` common
to all six, so, colour aside, it couples like a third photon and the amplitude has
the structure of :math:`e^+e^- \to \gamma\gamma\gamma` (Berends, Kleiss et al.).
With :math:`s = (p_1 + p_2)^2`, :math:`t_i = (p_1 - k_i)^2 = -2 p_1\cdot k_i` and
:math:`u_i = (p_2 - k_i)^2 = -2 p_2\cdot k_i`, the sum over all spins and
polarisations of that abelian amplitude with unit couplings is

.. math::  \sum |A|^2 = 16\, s \sum_{i=1}^{3} \frac{t_i u_i\, (t_i^2 + u_i^2)}
           {\prod_{j=1}^{3} t_j u_j}
           = 16\, s \sum_{i=1}^{3} \frac{t_i^2 + u_i^2}{\prod_{j \ne i} t_j u_j}

(the second form is the one evaluated: no cancellation of large factors).
Couplings: :math:`(e\, e_q)^4 g_s^2` with :math:`e^2 = 4\pi\alpha_\text{EM}` and
:math:`g_s^2 = 4\pi\alpha_s`. Colour: the colour sum is
:math:`\sum_{a,i,j} |T^a_{ij}|^2 = \mathrm{Tr}(T^a T^a) = C_F N_c = \tfrac43 \cdot 3 = 4`;
averaging over the :math:`N_c^2 = 9` initial colour states gives 4/9 (the q q̄ → γγ
colour factor is :math:`N_c / N_c^2 = 1/3`, so one gluon multiplies it by C_F).
Averaging over the four initial spin states,

.. math::  \overline{|M|^2} = \frac14 \cdot \frac49 \cdot 16\,
           (4\pi\alpha_\text{EM})^2 e_q^4\, (4\pi\alpha_s)\;
           s \sum_{i} \frac{t_i^2 + u_i^2}{\prod_{j \ne i} t_j u_j}
           = \frac{16}{9} e_q^4 e^4 g_s^2 \; s \sum_i \frac{t_i^2 + u_i^2}
           {\prod_{j \ne i} t_j u_j} \quad [\mathrm{GeV}^{-2}].

It is symmetric under any permutation of (k_1, k_2, k_3) and under
:math:`p_1 \leftrightarrow p_2` (t ↔ u), so the q q̄ and q̄ q columns are equal for the
same momenta. In the soft-gluon limit it tends to
:math:`C_F g_s^2 \, 4 s / (t_3 u_3) \times \overline{|M|^2}(q\bar q \to \gamma\gamma)`
with :math:`\overline{|M|^2}(q\bar q\to\gamma\gamma) = \tfrac23 e_q^4 e^4 (t/u + u/t)`.
The tests compare it with a numerical evaluation of the six Feynman diagrams.

**Identical photons.** The phase-space maps cover the labelled phase space, where
(k_1, k_2) and (k_2, k_1) are distinct points. :meth:`DiphotonJet.matrix_element`
therefore returns :math:`\overline{|M|^2} / 2!` (``SYMMETRY_FACTOR = 1/2``), so that
the hadronic integrand over dμ = dx1 dx2 dΦ_3 gives σ directly and every density over
hard events is symmetric in the two photons (events may list them in any order).
:func:`me2_qqbar_aag` is the plain averaged |M|² without that factor.

**Couplings and scales.** Parameters: ``alpha_s`` = α_s(M_Z) (default 0.118, range
0.1–0.14), run at one loop to μ_R with Pythia's hard-process thresholds
(:func:`forward.processes.ttbar.running_alpha_s`), and ``alpha_em`` (default
1/137.036, the Thomson-limit value suited to real photons, range 0.007–0.0082),
fixed, not run. Scales μ_F = μ_R = μ with ``scale="ht"`` (default): μ = H_T/2 = ½ Σ p_T
of the three final-state partons; ``scale="shat"``: μ² = ŝ; ``scale="fixed"``:
μ = ``mu_fixed`` GeV.

**Channels.** ``flavour_channels`` are q q̄ and q̄ q for q = d, u, s, c, b (ten
columns); the q g → q γγ and g g channels are not included (this is the q q̄-initiated
process only).

**Cuts** (constructor settings; they keep σ finite): p_T(γ) > ``pt_photon_min``,
p_T(g) > ``pt_gluon_min``, |η| < ``eta_max`` for all three, and ΔR > ``delta_r_min``
between every pair (photon isolation is this ΔR cut). Soft and collinear-to-beam
bosons are the only singularities at tree level, so the p_T and η cuts alone make σ
finite; the ΔR cut is an isolation, not a regulator.

**Phase space.** :class:`~forward.phasespace.HadronicMap` with a massless three-body
:class:`~forward.phasespace.Rambo` (exactly flat: the weight is Φ_3 = ŝ/(256π³)) in
the partonic frame, ŝ drawn ∝ ŝ^-ν (ν = 1.5) above
:math:`\hat s_\text{min} = (2\,p_{T,\gamma}^\text{min} + p_{T,g}^\text{min})^2`: a lower
bound for events passing the p_T cuts, since the invariant mass of massless particles
with zero total p_T is at least the sum of their p_T. Seven random numbers; the map
has an exact inverse.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from forward._validation import check_choice
from forward.events import HardEvents
from forward.kinematics import delta_r, mass, pseudorapidity, pt
from forward.phasespace import HadronicMap, PowerLawSampling, Rambo
from forward.processes.base import Parameter, Process, _finite_positive, check_hard_events
from forward.processes.electroweak import charge
from forward.processes.qcd_coupling import OneLoopAlphaS

__all__ = [
    "ALPHA_EM_THOMSON",
    "FLAVOUR_CHANNELS",
    "SYMMETRY_FACTOR",
    "DiphotonJet",
    "abelian_three_boson_sum",
    "me2_qqbar_aag",
    "production_invariants",
]

#: fine-structure constant in the Thomson limit (default of the ``alpha_em`` parameter)
ALPHA_EM_THOMSON = 1.0 / 137.036
#: 1/2! for the two identical photons, included in ``DiphotonJet.matrix_element``
SYMMETRY_FACTOR = 0.5
#: (beam-1 parton, beam-2 parton) PDG ids: q q̄ and q̄ q for d, u, s, c, b
FLAVOUR_CHANNELS: tuple[tuple[int, int], ...] = tuple(
    pair for q in (1, 2, 3, 4, 5) for pair in ((q, -q), (-q, q))
)

_SCALES = ("ht", "shat", "fixed")
#: ν of the ŝ^-ν sampling of the default channel: with the default cuts the weight spread
#: std/mean is 4.3 for ν = 1.5, 4.4 for 1.25, 5.9 for 1.0, 5.7 for 2.0 and 11 for 2.5
_SHAT_POWER = 1.5


def _light_cone(p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(E - pz, E + pz) of massless momenta (..., 4), each accurate also along the beam.

    The smaller of the two is computed as p_T²/(larger), avoiding the cancellation in
    E ∓ pz for particles close to the ±z axis.
    """
    e, pz = p[..., 0], p[..., 3]
    pt2 = p[..., 1] ** 2 + p[..., 2] ** 2
    plus = e + pz
    minus = e - pz
    tiny = torch.finfo(p.dtype).tiny
    minus_acc = torch.where(pz > 0, pt2 / plus.clamp(min=tiny), minus)
    plus_acc = torch.where(pz < 0, pt2 / minus.clamp(min=tiny), plus)
    return minus_acc, plus_acc


def production_invariants(events: HardEvents) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ŝ and the invariants t_i = (p_a - k_i)², u_i = (p_b - k_i)² of a 2 → 3 event.

    p_a is the parton from beam 1 (+z), p_b from beam 2; massless partons and final
    state are assumed.

    Args:
        events: hard events with momenta (n, 3, 4) in GeV.

    Returns:
        (s, t, u): ŝ of shape (n,) in GeV², t and u of shape (n, 3) in GeV² (≤ 0).
    """
    minus, plus = _light_cone(events.momenta)
    ea = (events.x1 * (0.5 * events.sqrt_s)).unsqueeze(-1)
    eb = (events.x2 * (0.5 * events.sqrt_s)).unsqueeze(-1)
    # p_a·k = E_a (E - pz), p_b·k = E_b (E + pz)
    return events.shat, -2.0 * ea * minus, -2.0 * eb * plus


def abelian_three_boson_sum(s: torch.Tensor, t: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    r"""Σ over all spins and polarisations of |A|² for f f̄ → V V V, unit couplings.

    :math:`16\, s \sum_i (t_i^2 + u_i^2) / \prod_{j\ne i} t_j u_j` (module docstring),
    for massless fermions and three abelian vector bosons.

    Args:
        s: (p_1 + p_2)², shape (...) in GeV².
        t: (p_1 - k_i)², shape (..., 3) in GeV².
        u: (p_2 - k_i)², shape (..., 3) in GeV².

    Returns:
        Shape (...), in GeV⁻².
    """
    tu = t * u
    total = 0.0
    for i in range(3):
        j, k = (i + 1) % 3, (i + 2) % 3
        total = total + (t[..., i] ** 2 + u[..., i] ** 2) / (tu[..., j] * tu[..., k])
    return 16.0 * s * total


def me2_qqbar_aag(
    s: torch.Tensor,
    t: torch.Tensor,
    u: torch.Tensor,
    quark_charge: float,
    alpha_s: torch.Tensor | float,
    alpha_em: torch.Tensor | float,
) -> torch.Tensor:
    r"""Spin- and colour-averaged |M|² of q q̄ → γ γ g at tree level, no symmetry factor.

    :math:`\frac{16}{9} e_q^4 (4\pi\alpha_\text{EM})^2 (4\pi\alpha_s)\,
    s \sum_i (t_i^2 + u_i^2)/\prod_{j\ne i} t_j u_j` (module docstring). Symmetric in
    the three final-state momenta and under t ↔ u (q q̄ ↔ q̄ q).

    Args:
        s: ŝ, shape (...) in GeV².
        t: t_i = (p_q - k_i)² for (γ, γ, g), shape (..., 3) in GeV².
        u: u_i = (p_q̄ - k_i)², shape (..., 3) in GeV².
        quark_charge: e_q in units of e (e.g. 2/3 for u).
        alpha_s: strong coupling at the renormalisation scale, broadcastable with s.
        alpha_em: fine-structure constant, broadcastable with s.

    Returns:
        |M|², shape (...), in GeV⁻².
    """
    e2 = 4.0 * math.pi * alpha_em
    gs2 = 4.0 * math.pi * alpha_s
    colour_spin = (4.0 / 9.0) / 4.0
    return colour_spin * quark_charge**4 * e2 * e2 * gs2 * abelian_three_boson_sum(s, t, u)


def _check_cut(name: str, value, *, allow_zero: bool = False) -> float:
    v = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if v is None:
        raise TypeError(f"{name}: expected a number, got {type(value).__name__}")
    if allow_zero:
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")
        return v
    return _finite_positive(name, v)


class DiphotonJet(Process):
    """p p → γ γ g through q q̄ → γ γ g at tree level, with fiducial cuts.

    See the module docstring for the matrix element, the 1/2! of the identical photons
    (included in :meth:`matrix_element`), scales and phase space.

    Args:
        sqrt_s: hadronic centre-of-mass energy in GeV.
        pt_photon_min: lower p_T cut on each photon in GeV (> 0).
        pt_gluon_min: lower p_T cut on the gluon in GeV (> 0).
        eta_max: upper cut on |η| of every final-state particle (> 0).
        delta_r_min: lower cut on ΔR between every pair (>= 0; the photon isolation).
        scale: ``"ht"`` (μ = H_T/2), ``"shat"`` (μ² = ŝ) or ``"fixed"`` (μ = ``mu_fixed``);
            μ_F = μ_R = μ.
        mu_fixed: the fixed scale in GeV for ``scale="fixed"``.
        pdf: LHAPDF set name used by the hadronic integrand.

    Parameters (see :meth:`params`): ``alpha_s`` = α_s(M_Z) (default 0.118, range
    0.1–0.14) and ``alpha_em`` (default 1/137.036, range 0.007–0.0082).

    Raises:
        ValueError, TypeError: bad settings, naming the setting and what is allowed.
    """

    name = "diphoton-jet"

    def __init__(
        self,
        sqrt_s: float = 13000.0,
        pt_photon_min: float = 20.0,
        pt_gluon_min: float = 20.0,
        eta_max: float = 2.5,
        delta_r_min: float = 0.4,
        scale: str = "ht",
        mu_fixed: float = 91.188,
        pdf: str = "NNPDF31_lo_as_0118",
    ) -> None:
        self.sqrt_s = _finite_positive("sqrt_s", sqrt_s)
        self.pt_photon_min = _check_cut("pt_photon_min", pt_photon_min)
        self.pt_gluon_min = _check_cut("pt_gluon_min", pt_gluon_min)
        self.eta_max = _check_cut("eta_max", eta_max)
        self.delta_r_min = _check_cut("delta_r_min", delta_r_min, allow_zero=True)
        check_choice("scale", scale, _SCALES)
        self.scale = scale
        self.mu_fixed = _check_cut("mu_fixed", mu_fixed)
        if not isinstance(pdf, str) or not pdf:
            raise TypeError(f"pdf: expected an LHAPDF set name (str), got {pdf!r}")
        self.pdf = pdf
        self.m_min = 2.0 * self.pt_photon_min + self.pt_gluon_min
        if not self.m_min < self.sqrt_s:
            raise ValueError(
                f"pt_photon_min, pt_gluon_min: 2 pt_photon_min + pt_gluon_min = {self.m_min} "
                f"GeV must lie below sqrt_s = {self.sqrt_s} GeV"
            )
        self.parameters = {
            "alpha_s": Parameter("alpha_s", 0.118, 0.1, 0.14, "", "strong coupling α_s(M_Z)"),
            "alpha_em": Parameter("alpha_em", ALPHA_EM_THOMSON, 0.007, 0.0082, "",
                                  "fine-structure constant (fixed, not run)"),
        }
        self.final_state = (22, 22, 21)
        self.flavour_channels = FLAVOUR_CHANNELS
        self._charges4 = tuple(charge(a) ** 4 for a, _ in FLAVOUR_CHANNELS)
        self._alpha_s = OneLoopAlphaS()

    # -- checks and kinematics ----------------------------------------------------------
    def _check_events(self, events: HardEvents) -> None:
        check_hard_events(events, 3, "(γ, γ, g)")

    # -- physics --------------------------------------------------------------------
    def matrix_element(
        self, events: HardEvents, params: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        """|M|² / 2! per flavour channel (the photon symmetry factor included).

        Args:
            events: hard events with momenta (n, 3, 4) as (γ, γ, g), (E, px, py, pz) in
                GeV, lab frame.
            params: from :meth:`params`: ``alpha_s`` (α_s(M_Z)) and ``alpha_em``, each
                shape () or (n,); differentiable.

        Returns:
            Shape (n, 10) in GeV⁻², columns in the order of ``flavour_channels``; the
            q q̄ and q̄ q columns of a flavour are equal.

        Raises:
            TypeError, ValueError: not HardEvents, wrong shape, NaN/inf momenta or x.
        """
        self._check_events(events)
        s, t, u = production_invariants(events)
        _, mu_r2 = self.hard_scales(events, params)
        als = self._alpha_s(params["alpha_s"], mu_r2)
        unit = me2_qqbar_aag(s, t, u, 1.0, als, params["alpha_em"]) * SYMMETRY_FACTOR
        q4 = torch.tensor(self._charges4, dtype=unit.dtype, device=unit.device)
        return unit.unsqueeze(-1) * q4

    def scales(
        self, events: HardEvents, params: Mapping[str, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """μ_F² = μ_R² in GeV², each shape (n,) (``scale`` setting, see the class)."""
        if self.scale == "ht":
            mu2 = (0.5 * pt(events.momenta).sum(-1)) ** 2
        elif self.scale == "shat":
            mu2 = events.shat
        else:
            mu2 = torch.full_like(events.x1, self.mu_fixed**2)
        return mu2, mu2

    def phase_space(self, params: Mapping[str, torch.Tensor] | None = None) -> list:
        """Phase-space channels (independent of the parameters).

        Returns:
            ``[HadronicMap]``: ŝ ∝ ŝ^-1.5 above (2 p_T,γ^min + p_T,g^min)², uniform
            rapidity, flat massless 3-body RAMBO; ``dim`` 7, with ``inverse``.
        """
        return [HadronicMap(self.sqrt_s, Rambo((0.0, 0.0, 0.0)),
                            PowerLawSampling(_SHAT_POWER), m_min=self.m_min)]

    def cuts(self, events: HardEvents) -> torch.Tensor:
        """p_T, |η| and pairwise ΔR cuts (settings): boolean mask of shape (n,)."""
        p = events.momenta
        pts = pt(p)
        eta = pseudorapidity(p)
        keep = (pts[:, 0] > self.pt_photon_min) & (pts[:, 1] > self.pt_photon_min)
        keep &= pts[:, 2] > self.pt_gluon_min
        keep &= (eta.abs() < self.eta_max).all(-1)
        for i, j in ((0, 1), (0, 2), (1, 2)):
            keep &= delta_r(p[:, i], p[:, j]) > self.delta_r_min
        return keep

    def observables(self, events: HardEvents) -> dict[str, torch.Tensor]:
        """Observables by name, each shape (n,); masses and momenta in GeV.

        ``m_aa``, ``pt_aa`` (diphoton mass and p_T), ``pt_a1``, ``eta_a1``, ``pt_a2``,
        ``eta_a2`` (leading and subleading photon by p_T), ``pt_g``, ``eta_g`` (gluon),
        ``dr_aa`` (ΔR of the photons), ``m_aag`` (mass of the three, √ŝ at LO).
        """
        p = events.momenta
        pa = p[:, 0] + p[:, 1]
        pts = pt(p[:, :2])
        lead = (pts[:, 1] > pts[:, 0]).long()
        idx = torch.arange(len(events), device=p.device)
        a1, a2 = p[idx, lead], p[idx, 1 - lead]
        return {
            "m_aa": mass(pa),
            "pt_aa": pt(pa),
            "pt_a1": pt(a1),
            "eta_a1": pseudorapidity(a1),
            "pt_a2": pt(a2),
            "eta_a2": pseudorapidity(a2),
            "pt_g": pt(p[:, 2]),
            "eta_g": pseudorapidity(p[:, 2]),
            "dr_aa": delta_r(p[:, 0], p[:, 1]),
            "m_aag": mass(p.sum(1)),
        }
