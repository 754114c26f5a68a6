r"""Drell–Yan lepton pairs through γ*/Z/Z′ with full interference, at leading order.

Partonic process :math:`q(p_a)\, \bar q(p_b) \to \ell^-(k_1)\, \ell^+(k_2)` for the
five light quark flavours, in both beam orders, with massless leptons and quarks.
For massless fermions of helicities X, Y ∈ {L, R} the amplitudes are

.. math::  A_{XY}(\hat s) = e_q e_\ell
           + \kappa\, g^Z_{qX} g^Z_{\ell Y}\, \chi_Z(\hat s)
           + \kappa\, g^{Z'}_{qX} g^{Z'}_{\ell Y}\, \chi_{Z'}(\hat s), \qquad
           \chi_V = \frac{\hat s}{\hat s - M_V^2 + i \hat s \Gamma_V / M_V},

with the running-width propagator, :math:`g_L = v + a`, :math:`g_R = v - a` and κ of
:mod:`forward.processes.electroweak`; the Z′ couplings are ``gzp`` times
(v, a). Averaged over initial spins (1/4) and colours (1/3), summed over final
helicities,

.. math::  \overline{|M|^2} = \frac{(4\pi\alpha)^2}{12} \sum_{X,Y} |A_{XY}|^2\,
           (1 + \lambda_{XY} \cos\theta)^2, \qquad \lambda_{XY} = \pm 1
           \text{ for } X = Y \text{ or } X \ne Y,

where θ is the angle between the incoming **quark** and the outgoing ℓ⁻ in the
partonic rest frame and α = α_EM(μ_R²) with μ_R² = ``mur_factor``² · ŝ, as Pythia's
α_EM(Q²_ren) (so with ``alpha_em="running"`` σ moves with ``mur_factor`` although there
is no α_s at this order; with ``"fixed"`` it does not). This is Pythia 8's ``Sigma1ffbar2gmZZprime``
(and ``Sigma1ffbar2gmZ``) cross section for massless leptons.

Final state: ``momenta[:, 0]`` is ℓ⁻ and ``momenta[:, 1]`` is ℓ⁺ (``final_state``
e.g. ``(11, -11)``). With ``leptons="both"`` the matrix element is summed over e
and μ (a factor 2 for massless leptons); ``final_state`` then names the electron
pair and ``lepton_pids`` lists both flavours, which are equally likely for every event.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from forward._validation import check_choice
from forward.events import HardEvents
from forward.kinematics import collins_soper, pseudorapidity, pt, rapidity
from forward.phasespace import BreitWignerSampling, PowerLawSampling, SChannelMap
from forward.processes.base import Parameter, Process, _finite_positive, check_hard_events
from forward.processes.electroweak import (
    MZ,
    ZPRIME_DEFAULT_COUPLINGS,
    alpha_em,
    axial_coupling,
    charge,
    kappa,
    vector_coupling,
    z_width,
    zprime_fermion_couplings,
    zprime_width,
)
from forward.processes.flavours import draw_final_states

__all__ = ["DrellYan", "MODES"]

#: interference modes and the Pythia ``Zprime:gmZmode`` each matches
MODES: dict[str, str] = {
    "full": "γ*/Z/Z′ with all interference (Pythia Zprime:gmZmode = 0)",
    "gamma_z": "γ*/Z only, the SM (Pythia WeakSingleBoson:ffbar2gmZ, or gmZmode = 4)",
    "zprime_only": "|Z′|² only (Pythia Zprime:gmZmode = 3)",
}

_LEPTONS = {"ee": (11,), "mumu": (13,), "both": (11, 13)}
_QUARKS = (1, 2, 3, 4, 5)


def _propagator(shat, mass, width):
    """Real and imaginary parts of χ = ŝ / (ŝ − M² + i ŝ Γ / M) (running width)."""
    den = (shat - mass * mass) ** 2 + (shat * width / mass) ** 2
    return shat * (shat - mass * mass) / den, -shat * shat * (width / mass) / den


def _chiral(v, a):
    """(g_L, g_R) = (v + a, v − a) from vector and axial couplings."""
    return (v + a, v - a)
_COUPLING_RANGE = (-5.0, 5.0)


def _parameters() -> dict[str, Parameter]:
    pars = [
        Parameter("mzp", 2000.0, 500.0, 6000.0, "GeV", "Z′ pole mass"),
        Parameter("gzp", 1.0, 0.0, 10.0, "", "global scale of all Z′ couplings"),
    ]
    text = {"d": "down-type quarks", "u": "up-type quarks", "e": "charged leptons",
            "nu": "neutrinos (width only)"}
    for name, default in ZPRIME_DEFAULT_COUPLINGS.items():
        kind = "vector" if name[0] == "v" else "axial"
        pars.append(Parameter(name, default, *_COUPLING_RANGE, "",
                              f"Z′ {kind} coupling to {text[name[1:]]}"))
    return {p.name: p for p in pars}


class DrellYan(Process):
    """p p → γ*/Z/Z′ → ℓ⁻ ℓ⁺ at leading order (see the module docstring).

    Parameters (``DrellYan().parameters``): ``mzp`` (GeV), ``gzp``, and the Z′
    couplings ``vd, ad, vu, au, ve, ae, vnu, anu`` in Pythia's normalisation,
    universal over generations, defaulting to Pythia's.

    Args:
        sqrt_s: hadronic centre-of-mass energy in GeV.
        leptons: ``"ee"``, ``"mumu"`` or ``"both"`` (e⁺e⁻ + μ⁺μ⁻ summed).
        mll_min, mll_max: window in the lepton-pair mass in GeV (phase space and cuts).
        mode: ``"full"``, ``"gamma_z"`` or ``"zprime_only"`` (see ``MODES``).
        alpha_em: ``"running"`` (α_EM(ŝ), Pythia's first-order running) or
            ``"fixed"`` (α_EM(M_Z²) = 0.00781751 everywhere, widths included).
        zprime_width: fixed Γ_Z′ in GeV; default ``None`` computes it from the
            couplings (differentiable in them).
        zprime_coup_ww: Z′ → W⁺W⁻ coupling in the width (Pythia ``Zprime:coup2WW``, 0).
        pdf: PDF set name (or a PDF object) used by the hadronic integrand.

    Raises:
        ValueError: bad settings, naming the setting and the allowed values.
    """

    name = "drell-yan"

    def __init__(
        self,
        sqrt_s: float = 13000.0,
        leptons: str = "both",
        mll_min: float = 60.0,
        mll_max: float = 120.0,
        mode: str = "full",
        alpha_em: str = "running",
        zprime_width: float | None = None,
        zprime_coup_ww: float = 0.0,
        pdf="NNPDF31_lo_as_0118",
    ) -> None:
        self.sqrt_s = _finite_positive("sqrt_s", sqrt_s)
        check_choice("leptons", leptons, tuple(_LEPTONS))
        check_choice("mode", mode, tuple(MODES))
        check_choice("alpha_em", alpha_em, ("running", "fixed"))
        self.mll_min = float(mll_min)
        if not (math.isfinite(self.mll_min) and self.mll_min > 0):
            raise ValueError(f"mll_min: expected a finite positive mass in GeV, got {mll_min!r}")
        self.mll_max = _finite_positive("mll_max", mll_max)
        if not self.mll_min < self.mll_max <= self.sqrt_s:
            raise ValueError(
                f"mll_max: expected mll_min < mll_max <= sqrt_s = {self.sqrt_s} GeV, "
                f"got mll_min={self.mll_min}, mll_max={self.mll_max}"
            )
        self.leptons = leptons
        self.lepton_pids = _LEPTONS[leptons]
        self.mode = mode
        self.alpha_em = alpha_em
        self.zprime_width = None if zprime_width is None else _finite_positive(
            "zprime_width", zprime_width)
        self.zprime_coup_ww = float(zprime_coup_ww)
        if not math.isfinite(self.zprime_coup_ww):
            raise ValueError(f"zprime_coup_ww: expected a finite number, got {zprime_coup_ww!r}")
        self.pdf = pdf
        self._z_width: dict = {}
        self.parameters = _parameters()
        self.final_state = (self.lepton_pids[0], -self.lepton_pids[0])
        self.flavour_channels = tuple(
            ch for q in _QUARKS for ch in ((q, -q), (-q, q))
        )

    # -- couplings and widths -----------------------------------------------------------
    def widths(self, params: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Z and Z′ total widths used in the propagators.

        Args:
            params: parameter tensors from :meth:`params`, shape () or (n,).

        Returns:
            (Γ_Z, Γ_Z′) in GeV; Γ_Z has shape (), Γ_Z′ the shape of the parameters.
        """
        mzp = params["mzp"]
        key = (mzp.dtype, mzp.device)
        if key not in self._z_width:  # a constant: computed once per dtype and device
            self._z_width[key] = z_width(self.alpha_em, dtype=mzp.dtype, device=mzp.device)
        gz = self._z_width[key]
        if self.zprime_width is not None:
            return gz, torch.full_like(mzp, self.zprime_width)
        gzp = zprime_width(mzp, params, params["gzp"], alpha_em_mode=self.alpha_em,
                           coup_ww=self.zprime_coup_ww)
        return gz, gzp

    # -- matrix element -----------------------------------------------------------------
    def matrix_element(
        self, events: HardEvents, params: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        """Spin- and colour-averaged |M|² per flavour channel (see the module docstring).

        Args:
            events: hard events with momenta (n, 2, 4) as (ℓ⁻, ℓ⁺) in GeV.
            params: parameter tensors from :meth:`params`, each shape () or (n,).

        Returns:
            |M|², shape (n, len(flavour_channels)), dimensionless, summed over the
            lepton flavours of ``lepton_pids``.

        Raises:
            ValueError: wrong momentum shape, NaN/inf momenta or x.
        """
        shat, cos_q1 = self._kinematics(events)
        return self._me_from_invariants(shat, cos_q1, params,
                                        self.hard_scales(events, params)[1])

    def weighted_matrix_element(self, events: HardEvents, weights: torch.Tensor):
        """Σ_c w_c |M|²_c at fixed events, with all θ-independent work done once.

        Each helicity amplitude is A = Z + s χ_Z′ with Z = e_q e_ℓ + κ g^Z_q g^Z_ℓ χ_Z
        fixed at fixed ŝ and s = κ g^{Z′}_q g^{Z′}_ℓ a number per parameter point, so
        |A|² = |Z|² + 2 s Re(Z* χ_Z′) + s² |χ_Z′|². Summed over helicities, quark types
        and channels with the weights, only χ_Z′(ŝ; M_Z′, Γ_Z′) and three (n, 8)
        matrix-vector products remain per parameter point.

        Args:
            events: hard events, momenta (n, 2, 4) as (ℓ⁻, ℓ⁺) in GeV.
            weights: per-channel weights, shape (n, len(flavour_channels)).

        Returns:
            A function ``params -> (n,)``, params of shape () (batched parameters fall
            back to :meth:`matrix_element`).
        """
        shat, cos_q1 = self._kinematics(events)
        mu_r2 = self.hard_scales(events, None)[1]  # independent of θ
        gz, _ = self.widths(self.params(None, dtype=shat.dtype, device=shat.device))
        chi_z = torch.complex(*_propagator(shat, MZ, gz))
        use_gamma_z = 0.0 if self.mode == "zprime_only" else 1.0
        use_zp = 0.0 if self.mode == "gamma_z" else 1.0
        kap = kappa()
        lep = 11
        gz_l = _chiral(vector_coupling(lep), axial_coupling(lep))
        pref = (4.0 * math.pi * alpha_em(mu_r2, self.alpha_em)) ** 2 / 12.0 * len(self.lepton_pids)
        plus, minus = (1.0 + cos_q1) ** 2, (1.0 - cos_q1) ** 2
        # weight of each (quark type, same/opposite helicity) summed over its channels
        w_same = {1: 0.0, 2: 0.0}
        w_opp = {1: 0.0, 2: 0.0}
        for col, (qa, _qb) in enumerate(self.flavour_channels):
            t = 2 - abs(qa) % 2
            w = weights[:, col]
            w_same[t] = w_same[t] + w * (plus if qa > 0 else minus)
            w_opp[t] = w_opp[t] + w * (minus if qa > 0 else plus)
        k0 = torch.zeros_like(shat)
        k1, k2, k3 = [], [], []
        for t in (1, 2):
            gz_q = _chiral(vector_coupling(t), axial_coupling(t))
            for x in range(2):
                for y in range(2):
                    z = use_gamma_z * (charge(t) * charge(lep) + kap * gz_q[x] * gz_l[y] * chi_z)
                    w = pref * (w_same[t] if x == y else w_opp[t])
                    k0 = k0 + w * (z.real**2 + z.imag**2)
                    k1.append(w * z.real)
                    k2.append(w * z.imag)
                    k3.append(w)
        k1, k2, k3 = torch.stack(k1, -1), torch.stack(k2, -1), torch.stack(k3, -1)

        def evaluate(params: Mapping[str, torch.Tensor]) -> torch.Tensor:
            if any(v.ndim for v in params.values()):
                return (weights * self.matrix_element(events, params)).sum(-1)
            _, gzp_width = self.widths(params)
            re_p, im_p = (use_zp * c for c in _propagator(shat, params["mzp"], gzp_width))
            zcpl = zprime_fermion_couplings(params, params["gzp"])
            gp_l = _chiral(*zcpl["e"])
            s = torch.stack([kap * gp_q[x] * gp_l[y]
                             for gp_q in (_chiral(*zcpl["d"]), _chiral(*zcpl["u"]))
                             for x in range(2) for y in range(2)]).to(shat.dtype)
            return (k0 + 2.0 * (re_p * (k1 @ s) + im_p * (k2 @ s))
                    + (re_p * re_p + im_p * im_p) * (k3 @ (s * s)))

        return evaluate

    def _kinematics(self, events: HardEvents) -> tuple[torch.Tensor, torch.Tensor]:
        """ŝ (n,) in GeV² and cos θ (n,) between the beam-1 parton and ℓ⁻."""
        check_hard_events(events, 2, "(l-, l+)")
        shat = events.shat
        k1, k2 = events.momenta[:, 0], events.momenta[:, 1]
        # t = (p_a - k1)², u = (p_a - k2)² for massless p_a = x1 √s/2 (1, 0, 0, 1)
        ea = events.x1 * (0.5 * events.sqrt_s)
        t = -2.0 * ea * (k1[:, 0] - k1[:, 3])
        u = -2.0 * ea * (k2[:, 0] - k2[:, 3])
        return shat, (u - t) / (t + u)

    def _me_from_invariants(
        self, shat: torch.Tensor, cos_q1: torch.Tensor, params: Mapping[str, torch.Tensor],
        mu_r2: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """|M|² (n, n_channels) from ŝ (n,) in GeV² and cos θ(beam-1 parton, ℓ⁻) (n,).

        α_EM is taken at ``mu_r2`` (n,) in GeV², the μ_R² of :meth:`hard_scales`;
        None means ŝ (the default scale without ``mur_factor``).
        """
        kap = kappa()
        gz, gzp = self.widths(params)
        mzp = params["mzp"]
        # propagator factors χ = ŝ / (ŝ - M² + i ŝ Γ/M) as real and imaginary parts
        re_z, im_z = _propagator(shat, MZ, gz)
        re_p, im_p = _propagator(shat, mzp, gzp)
        use_gamma_z = 0.0 if self.mode == "zprime_only" else 1.0
        use_zp = 0.0 if self.mode == "gamma_z" else 1.0
        zcpl = zprime_fermion_couplings(params, params["gzp"])

        lep = 11
        e_l = charge(lep)
        gz_l = _chiral(vector_coupling(lep), axial_coupling(lep))
        gp_l = _chiral(*zcpl["e"])
        alpha = alpha_em(shat if mu_r2 is None else mu_r2, self.alpha_em)
        pref = (4.0 * math.pi * alpha) ** 2 / 12.0 * len(self.lepton_pids)
        columns = {}
        for q in (1, 2):  # down- and up-type quarks: d, s, b (and u, c) share couplings
            e_q = charge(q)
            gz_q = _chiral(vector_coupling(q), axial_coupling(q))
            gp_q = _chiral(*zcpl["u" if q % 2 == 0 else "d"])
            # same (+) and opposite (-) helicity sums of |A_XY|²
            same = 0.0
            opposite = 0.0
            for x in range(2):
                for y in range(2):
                    re = use_gamma_z * (e_q * e_l + kap * gz_q[x] * gz_l[y] * re_z)
                    im = use_gamma_z * kap * gz_q[x] * gz_l[y] * im_z
                    re = re + use_zp * kap * gp_q[x] * gp_l[y] * re_p
                    im = im + use_zp * kap * gp_q[x] * gp_l[y] * im_p
                    a2 = re * re + im * im
                    if x == y:
                        same = same + a2
                    else:
                        opposite = opposite + a2
            columns[q] = (same, opposite)
        plus, minus = (1.0 + cos_q1) ** 2, (1.0 - cos_q1) ** 2
        # one column per (quark type, beam order); the flavour channels repeat them
        distinct = {}
        for q, (same, opposite) in columns.items():
            distinct[q, True] = pref * (same * plus + opposite * minus)
            distinct[q, False] = pref * (same * minus + opposite * plus)
        out = [distinct[2 - abs(qa) % 2, qa > 0] for qa, _qb in self.flavour_channels]
        return torch.stack(torch.broadcast_tensors(*out), dim=-1)

    # -- phase space, scales, cuts, observables ----------------------------------------
    def phase_space(self, params: Mapping[str, torch.Tensor] | None = None) -> list:
        """Phase-space channels for the lepton-pair mass window.

        Channels: Breit–Wigner in ŝ for the Z′ (unless ``mode="gamma_z"``) and the Z
        (unless ``mode="zprime_only"``) with the widths at ``params`` (defaults if
        None; the mean of a batch), and a power law ŝ^-2 for the photon continuum.
        The first (default) channel is the Breit–Wigner of a resonance whose pole
        lies inside [mll_min, mll_max] (the Z′ first), else the power law.

        Returns:
            list of :class:`~forward.phasespace.SChannelMap` with dim 4.
        """
        params = self.params(params)
        gz, gzp = self.widths(params)
        mzp = float(params["mzp"].detach().mean())
        gzp = float(gzp.detach().mean())
        window = dict(m_min=self.mll_min, m_max=self.mll_max)
        power = SChannelMap(self.sqrt_s, PowerLawSampling(2.0), **window)
        resonant = []
        if self.mode != "gamma_z" and gzp > 0:
            resonant.append((mzp, SChannelMap(self.sqrt_s, BreitWignerSampling(mzp, gzp),
                                              **window)))
        if self.mode != "zprime_only":
            resonant.append((MZ, SChannelMap(self.sqrt_s, BreitWignerSampling(MZ, float(gz)),
                                             **window)))
        inside = [m for mass, m in resonant if self.mll_min <= mass <= self.mll_max]
        others = [m for mass, m in resonant if not self.mll_min <= mass <= self.mll_max]
        if inside:
            return [inside[0], power, *inside[1:], *others]
        return [power, *others]

    def sample_final_state(
        self, n: int, *, generator: torch.Generator | None = None, device=None
    ) -> torch.Tensor:
        """Lepton flavours per event: with ``leptons="both"`` e⁺e⁻ or μ⁺μ⁻ with equal
        probability (massless leptons: equal shares of |M|²), else the chosen one.

        Returns:
            Integer tensor of shape (n, 2) as (ℓ⁻, ℓ⁺) PDG ids.
        """
        return draw_final_states([(lep, -lep) for lep in self.lepton_pids], n,
                                 generator=generator, device=device)

    def scales(
        self, events: HardEvents, params: Mapping[str, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Default scales μ_F² = μ_R² = ŝ, each shape (n,) in GeV² (PDFs at μ_F, α_EM at
        μ_R; :meth:`hard_scales` applies ``muf_factor``/``mur_factor``)."""
        shat = events.shat
        return shat, shat

    def cuts(self, events: HardEvents) -> torch.Tensor:
        """Lepton-pair mass inside [mll_min, mll_max]: boolean mask of shape (n,)."""
        q = events.momenta.sum(dim=1)
        m2 = q[:, 0] ** 2 - (q[:, 1:] ** 2).sum(-1)
        return (m2 >= self.mll_min**2) & (m2 <= self.mll_max**2)

    def observables(self, events: HardEvents) -> dict[str, torch.Tensor]:
        """Standard observables, each shape (n,).

        Returns:
            ``m_ll`` (GeV), ``y_ll``, ``pt_ll`` (GeV; 0 at LO), ``cos_theta_cs`` and
            ``phi_cs`` (Collins–Soper angles of ℓ⁻), ``pt_lminus``, ``eta_lminus``,
            ``pt_lplus``, ``eta_lplus`` (GeV / dimensionless).
        """
        lm, lp = events.momenta[:, 0], events.momenta[:, 1]
        q = lm + lp
        m2 = q[:, 0] ** 2 - (q[:, 1:] ** 2).sum(-1)
        cos_cs, phi_cs = collins_soper(lm, lp)
        return {
            "m_ll": torch.sqrt(m2.clamp(min=0)),
            "y_ll": rapidity(q),
            "pt_ll": pt(q),
            "cos_theta_cs": cos_cs,
            "phi_cs": phi_cs,
            "pt_lminus": pt(lm),
            "eta_lminus": pseudorapidity(lm),
            "pt_lplus": pt(lp),
            "eta_lplus": pseudorapidity(lp),
        }
