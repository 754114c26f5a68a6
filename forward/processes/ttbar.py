r"""Top-quark pair production p p → t t̄ at leading order, with optional top decays.

**Matrix elements.** The two LO partonic channels, averaged over initial spins and
colours and summed over final ones, written with :math:`\tau_1 = (m_t^2 - \hat t)/\hat s`,
:math:`\tau_2 = (m_t^2 - \hat u)/\hat s`, :math:`\rho = 4 m_t^2/\hat s` and
:math:`g_s^2 = 4\pi\alpha_s` (Combridge 1979; Glück, Owens & Reya 1978):

.. math::
    \overline{|M|^2}_{q\bar q} = g_s^4\, \tfrac{4}{9}\,
        \big(\tau_1^2 + \tau_2^2 + \tfrac{\rho}{2}\big),
    \qquad
    \overline{|M|^2}_{gg} = g_s^4 \Big(\frac{1}{6\tau_1\tau_2} - \frac38\Big)
        \Big(\tau_1^2 + \tau_2^2 + \rho - \frac{\rho^2}{4\tau_1\tau_2}\Big).

Integrated over the scattering angle they give the textbook partonic cross sections
:math:`\hat\sigma_{q\bar q} = \frac{8\pi\alpha_s^2}{27\hat s}\beta(1 + \rho/2)` and
:math:`\hat\sigma_{gg} = \frac{\pi\alpha_s^2}{3\hat s}[(1 + \rho + \rho^2/16)
\ln\frac{1+\beta}{1-\beta} - \beta(\frac74 + \frac{31}{16}\rho)]` (tested).

**Channels.** ``flavour_channels`` are g g and q q̄, q̄ q for q = d, u, s, c, b (as
Pythia's ``PDFinProcess:nQuarkIn = 5``), eleven columns of :meth:`TTbar.matrix_element`.

**Coupling and scales.** α_s(M_Z) (parameter ``alpha_s``) is run to μ_R with
:class:`forward.alphas.RunningAlphaS` (one loop by default, thresholds 1.5, 4.8,
171 GeV and up to six flavours: Pythia's ``SigmaProcess:alphaSorder = 1``); at one
loop through the α_s(M_Z)-independent shift of 1/α_s, with one coupling object built
per process, dtype and device.
``scale="fixed"``: μ_R = μ_F = m_t of the parameters (Pythia ``renormScale2 =
factorScale2 = 5`` with the fixed scale m_t²); ``scale="mt_transverse"``: μ² = m_t² +
p_T,t² (Pythia's default choice 1 for 2 → 2 with equal masses); a number μ in GeV
(e.g. ``scale=172.5``, ``--set scale=172.5`` on the command line): μ_R = μ_F = μ at
every top mass (Pythia ``renormScale2 = factorScale2 = 5`` with ``renormFixScale =
factorFixScale = μ²``). ``mur_factor``/``muf_factor`` multiply each choice
(:meth:`~forward.processes.base.Process.hard_scales`).

**Final state.** ``decays=None``: on-shell tops, ``final_state = (6, -6)``, momenta
(t, t̄), events from :class:`~forward.phasespace.TwoToTwoMap` with both masses m_t.
With decays the final state has six particles, (b, f̄₁, f₂) from the top and
(b̄, f₁, f̄₂) from the antitop, where f̄₁ f₂ is the W⁺ decay with f̄₁ the down-type
antifermion (charged lepton ℓ⁺ or d̄) and f₂ the up-type fermion (ν or u); see
:mod:`forward.processes.top_decays` for the modes, widths and the narrow-width
normalisation, which makes the inclusive cross section exactly σ(tt̄) × BR with
Pythia 8.317's widths and branching ratios. ``leptons`` (``"e"``, ``"mu"``, ``"all"``)
chooses the lepton flavours of leptonic W decays; with ``"all"`` the dilepton mode sums
ee, μμ, eμ and μe, ``final_state`` names the ee assignment, ``lepton_pids`` is
(11, 13) and :meth:`TTbar.sample_final_state` draws each event's flavours.

**Reco.** Through a card detector (:class:`forward.detector.Detector`) the b quarks
become jets smeared with the card's b-jet response and b-tagged with its efficiency,
the leptons are smeared with theirs, and the missing pT is minus the vector sum of the
reconstructed objects (the neutrinos' pT when every visible object is reconstructed,
plus the smearing). :attr:`TTbar.reco_cuts` is the default selection that
:meth:`invsim.observables.RecoObservables.for_process` applies: for dilepton exactly
two opposite-sign leptons with pT > 20 GeV, |η| < 2.5, at least two b-tagged jets with
pT > 30 GeV, |η| < 2.5 (the two leading used) and the MET; other events are dropped
and counted per failed requirement (``ExtractedObservables.failed``).

**On-shell projection.** The production matrix element and the dynamic scale are
evaluated at the on-shell point with the same ŝ and the same top scattering angle
θ* (partonic centre-of-mass frame, from beam 1) as the event, with the mass m_t of the
parameters. For on-shell events with top mass m_t this is the exact LO result; with
decays it is the narrow-width approximation (tops off shell by a Breit–Wigner only in
the decay factors).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping

import torch

from forward._validation import check_choice
from forward.alphas import RunningAlphaS
from forward.events import HardEvents
from forward.kinematics import dot, mass2, pt, rapidity
from forward.phasespace import PowerLawSampling, TwoToTwoMap
from forward.processes.base import Parameter, Process, _finite_positive
from forward.processes.flavours import draw_final_states
from forward.processes.top_decays import (
    DECAY_MODES,
    LEPTON_SETS,
    W_MASS,
    TopPairDecayMap,
    decay_mode_info,
    top_pair_decay_factor,
    top_width,
    w_width,
)

__all__ = [
    "FLAVOUR_CHANNELS",
    "TTbar",
    "cos_theta_star",
    "me2_gg_ttbar",
    "me2_qqbar_ttbar",
    "running_alpha_s",
]

#: (beam-1 parton, beam-2 parton) PDG ids: g g, then q q̄ and q̄ q for d, u, s, c, b
FLAVOUR_CHANNELS: tuple[tuple[int, int], ...] = ((21, 21),) + tuple(
    pair for q in (1, 2, 3, 4, 5) for pair in ((q, -q), (-q, q))
)

_SCALES = ("fixed", "mt_transverse")
_INITIAL_STATES = ("all", "gg", "qqbar")


def _taus(shat, that, uhat, mt2):
    return (mt2 - that) / shat, (mt2 - uhat) / shat, 4 * mt2 / shat


def me2_gg_ttbar(shat, that, uhat, mt2, alpha_s) -> torch.Tensor:
    r"""Spin- and colour-averaged |M|² of g g → t t̄ at LO.

    Args:
        shat: ŝ in GeV², shape (...).
        that: t̂ = (p_g1 - p_t)² in GeV², shape (...).
        uhat: û = (p_g1 - p_t̄)² in GeV², shape (...).
        mt2: top mass squared m_t² in GeV², broadcastable.
        alpha_s: strong coupling at the renormalisation scale, broadcastable.

    Returns:
        Dimensionless |M|², broadcast shape; ŝ + t̂ + û = 2 m_t² is assumed.
    """
    t1, t2, rho = _taus(shat, that, uhat, mt2)
    g4 = (4 * math.pi * alpha_s) ** 2
    t12 = t1 * t2
    return g4 * (1 / (6 * t12) - 0.375) * (t1**2 + t2**2 + rho - rho**2 / (4 * t12))


def me2_qqbar_ttbar(shat, that, uhat, mt2, alpha_s) -> torch.Tensor:
    r"""Spin- and colour-averaged |M|² of q q̄ → t t̄ at LO (massless q).

    Args:
        shat: ŝ in GeV², shape (...).
        that: t̂ = (p_q - p_t)² in GeV², shape (...).
        uhat: û = (p_q - p_t̄)² in GeV², shape (...).
        mt2: m_t² in GeV², broadcastable.
        alpha_s: strong coupling at the renormalisation scale, broadcastable.

    Returns:
        Dimensionless |M|², broadcast shape.
    """
    t1, t2, rho = _taus(shat, that, uhat, mt2)
    g4 = (4 * math.pi * alpha_s) ** 2
    return g4 * (4.0 / 9.0) * (t1**2 + t2**2 + 0.5 * rho)


def cos_theta_star(events: HardEvents, p_top: torch.Tensor, p_antitop: torch.Tensor):
    r"""Cosine of the top scattering angle from beam 1 in the partonic c.m. frame.

    Lorentz-invariant form :math:`\cos\theta^* = [2 p_a\cdot(p_2 - p_1) - (m_2^2 - m_1^2)]
    / \lambda^{1/2}(\hat s, m_1^2, m_2^2)` with p_a the beam-1 parton, valid for
    off-shell tops too.

    Args:
        events: hard events (supplies x1, x2, √s).
        p_top, p_antitop: top and antitop momenta, shape (n, 4) in GeV, lab frame.

    Returns:
        cos θ*, shape (n,).
    """
    pa = events.incoming[:, 0]
    shat = events.shat
    m1s, m2s = mass2(p_top), mass2(p_antitop)
    lam = (shat - m1s - m2s) ** 2 - 4 * m1s * m2s
    num = 2 * dot(pa, p_antitop - p_top) - (m2s - m1s)
    return (num / lam.clamp(min=0).sqrt()).clamp(-1.0, 1.0)


def running_alpha_s(
    alpha_s_mz: torch.Tensor,
    mu2: torch.Tensor,
    order: int,
    *,
    reference: RunningAlphaS | None = None,
) -> torch.Tensor:
    """α_s(μ²) from α_s(M_Z), with Pythia's hard-process thresholds (see module doc).

    At one loop 1/α_s(μ²) − 1/α_s(M_Z) does not depend on α_s(M_Z) (the Λ-matched
    one-loop solution is 1/α = 1/α_s(M_Z) + Σ β₀ Δln Q² / 4π), so one reference
    coupling serves every value of α_s(M_Z), scalar or per event, with exact gradients.
    At two loops a coupling is built for each value.

    Args:
        alpha_s_mz: α_s(M_Z), shape () or (n,) (one value per event); differentiable.
        mu2: renormalisation scale squared in GeV², shape (n,).
        order: loops, 1 or 2.
        reference: for ``order=1``, a one-loop :class:`~forward.alphas.RunningAlphaS`
            with these thresholds (any α_s(M_Z)) to reuse; built here when None.

    Returns:
        α_s(μ²), shape (n,).
    """
    if order == 1:
        if reference is None:
            reference = _one_loop_reference(mu2.dtype, mu2.device)
        elif not isinstance(reference, RunningAlphaS) or reference.order != 1:
            raise ValueError(f"reference: expected a one-loop RunningAlphaS, got {reference!r}")
        shift = 1.0 / reference(mu2) - 1.0 / reference.alpha_s_mz.to(mu2.dtype)
        return 1.0 / (1.0 / alpha_s_mz + shift)
    if alpha_s_mz.ndim == 0:
        return RunningAlphaS(alpha_s_mz, order=order, dtype=mu2.dtype, device=mu2.device)(mu2)
    out = [
        RunningAlphaS(a, order=order, dtype=mu2.dtype, device=mu2.device)(m.reshape(1))
        for a, m in zip(alpha_s_mz.unbind(0), mu2.unbind(0), strict=True)
    ]
    return torch.cat(out)


def _one_loop_reference(dtype: torch.dtype, device) -> RunningAlphaS:
    """A one-loop coupling with the default α_s(M_Z) = 0.118, for the shift above."""
    return RunningAlphaS(0.118, order=1, dtype=dtype, device=device)


#: default reco selection of decayed t t̄ (see :attr:`TTbar.reco_cuts`), GeV for pT
_RECO_CUTS = {"lepton_pt_min": 20.0, "lepton_eta_max": 2.5, "jet_pt_min": 30.0,
              "jet_eta_max": 2.5}


class TTbar(Process):
    """p p → t t̄ at LO (g g and q q̄), on-shell tops or decayed in the narrow-width limit.

    Args:
        sqrt_s: hadronic centre-of-mass energy in GeV.
        scale: ``"fixed"`` (μ_R = μ_F = m_t), ``"mt_transverse"`` (μ² = m_t² + p_T²)
            or a positive number μ in GeV (μ_R = μ_F = μ, whatever m_t).
        alpha_s_order: loops of the α_s running, 1 (Pythia's hard process) or 2.
        decays: None (on-shell t t̄) or one of ``"dilepton"``, ``"semileptonic"``
            (t → b ℓ⁺ ν, t̄ → b̄ q q̄′), ``"hadronic"``.
        pdf: LHAPDF set name used by the hadronic integrand.
        initial_states: ``"all"``, ``"gg"`` or ``"qqbar"``: the other channels' columns
            of the matrix element are zero (for checks against per-channel references).
        leptons: lepton flavours of leptonic W decays: ``"e"``, ``"mu"`` or ``"all"``
            (e and μ: dilepton ee, μμ, eμ, μe; semileptonic e, μ).
        lepton: deprecated (FutureWarning): 11 or 13, the same as ``leptons="e"`` or
            ``"mu"``; removed in the next release.
        bw_cut: Breit–Wigner windows of the decaying tops and W's, in widths on each
            side of the pole mass.

    Parameters (see :meth:`params`): ``mt`` in GeV (default 172.5, range 150–200) and
    ``alpha_s`` = α_s(M_Z) (default 0.118, range 0.1–0.14).
    """

    name = "ttbar"

    def __init__(
        self,
        sqrt_s: float = 13000.0,
        scale: str = "fixed",
        alpha_s_order: int = 1,
        decays: str | None = None,
        pdf: str = "NNPDF31_lo_as_0118",
        initial_states: str = "all",
        lepton: int | None = None,
        bw_cut: float = 15.0,
        leptons: str = "e",
    ) -> None:
        self.sqrt_s = _finite_positive("sqrt_s", sqrt_s)
        if isinstance(scale, bool) or not (
                scale in _SCALES or (isinstance(scale, (int, float)) and math.isfinite(scale)
                                     and scale > 0)):
            raise ValueError(f"scale: expected one of {list(_SCALES)} or a positive number "
                             f"(μ in GeV), got {scale!r}")
        scale = scale if isinstance(scale, str) else float(scale)
        check_choice("alpha_s_order", alpha_s_order, (1, 2))
        check_choice("decays", decays, (None, *DECAY_MODES))
        check_choice("initial_states", initial_states, _INITIAL_STATES)
        check_choice("leptons", leptons, tuple(LEPTON_SETS))
        if lepton is not None:
            check_choice("lepton", lepton, (11, 13))
            warnings.warn("TTbar(lepton=...) is deprecated; use leptons='e' or 'mu' "
                          "(forward.processes.ttbar.TTbar)", FutureWarning, stacklevel=3)
            implied = {11: "e", 13: "mu"}[lepton]
            if leptons not in ("e", implied):
                raise ValueError(f"lepton: {lepton} contradicts leptons={leptons!r}")
            leptons = implied
        if not isinstance(pdf, str) or not pdf:
            raise TypeError(f"pdf: expected an LHAPDF set name (str), got {pdf!r}")
        self.bw_cut = _finite_positive("bw_cut", bw_cut)
        self.scale = scale
        self.alpha_s_order = alpha_s_order
        self.decays = decays
        self.pdf = pdf
        self.initial_states = initial_states
        self.lepton = None  # deprecated alias, folded into ``leptons``
        self.leptons = leptons
        self.lepton_pids = LEPTON_SETS[leptons]
        self.parameters = {
            "mt": Parameter("mt", 172.5, 150.0, 200.0, "GeV", "top-quark pole mass"),
            "alpha_s": Parameter("alpha_s", 0.118, 0.1, 0.14, "", "strong coupling α_s(M_Z)"),
        }
        self.flavour_channels = FLAVOUR_CHANNELS
        if decays is None:
            self.final_state = (6, -6)
            self._final_states = (self.final_state,)
        else:
            info = decay_mode_info(decays, leptons)
            self.final_state = info.final_state
            self._final_states = info.final_states
        mask = [
            initial_states == "all" or (initial_states == "gg") == (a == 21)
            for a, _ in FLAVOUR_CHANNELS
        ]
        self._channel_mask = tuple(mask)
        # couplings built once and reused (construction checks the Landau pole and syncs
        # the device): the one-loop reference by (dtype, device), and at two loops the
        # coupling of the last fixed (no-grad, scalar) α_s(M_Z) value
        self._alpha_s_reference: dict = {}
        self._alpha_s_fixed: dict = {}
        if decays is not None:  # windows must fit for every top mass in range
            TopPairDecayMap(self.parameters["mt"].low, bw_cut=self.bw_cut)

    # -- kinematics -----------------------------------------------------------------
    def top_momenta(self, events: HardEvents) -> tuple[torch.Tensor, torch.Tensor]:
        """Top and antitop momenta, each shape (n, 4) in GeV (sums of decay products)."""
        self._check_events(events)
        p = events.momenta
        if self.decays is None:
            return p[:, 0], p[:, 1]
        return p[:, 0:3].sum(1), p[:, 3:6].sum(1)

    def _check_events(self, events: HardEvents) -> None:
        if not isinstance(events, HardEvents):
            raise TypeError(f"events: expected HardEvents, got {type(events).__name__}")
        k = len(self.final_state)
        if events.momenta.shape[1] != k:
            raise ValueError(
                f"events: expected momenta of shape (n, {k}, 4) for final state "
                f"{self.final_state}, got {tuple(events.momenta.shape)}"
            )

    def _onshell(self, events, params):
        """On-shell projection: (ŝ, t̂, û, m_t², above) with ŝ kept finite below threshold.

        ``above`` (bool, shape (n,)) marks ŝ > 4 m_t²; below it ŝ is replaced by a
        finite dummy value (the caller zeroes those entries) so gradients stay finite.
        """
        p_t, p_tb = self.top_momenta(events)
        c = cos_theta_star(events, p_t, p_tb)
        mt2 = params["mt"] ** 2
        shat = events.shat
        above = shat > 4 * mt2
        shat = torch.where(above, shat, 4 * mt2 + 1.0)
        beta = (1 - 4 * mt2 / shat).sqrt()
        that = mt2 - 0.5 * shat * (1 - beta * c)
        uhat = mt2 - 0.5 * shat * (1 + beta * c)
        return shat, that, uhat, mt2, above

    # -- physics --------------------------------------------------------------------
    def scales(self, events: HardEvents, params: Mapping[str, torch.Tensor]):
        """μ_F² and μ_R² in GeV², each shape (n,); see the class docstring."""
        mt2 = params["mt"] ** 2
        n = len(events)
        if not isinstance(self.scale, str):
            mu2 = torch.full((n,), self.scale**2, dtype=events.momenta.dtype,
                             device=events.momenta.device)
        elif self.scale == "fixed":
            mu2 = mt2 * torch.ones(n, dtype=events.momenta.dtype, device=events.momenta.device)
        else:
            shat, that, uhat, mt2, _ = self._onshell(events, params)
            # p_T² of the on-shell top: (t̂ û - m_t⁴)/ŝ
            mu2 = mt2 + ((that * uhat - mt2**2) / shat).clamp(min=0)
        return mu2, mu2

    def matrix_element(
        self, events: HardEvents, params: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        """|M|² per flavour channel, shape (n, 11) (see ``flavour_channels``).

        For on-shell tops (n, 2, 4) momenta: the dimensionless LO |M|², zero below
        threshold ŝ < 4 m_t². With decays, (n, 6, 4) momenta: the narrow-width
        2 → 6 |M|² in GeV⁻⁸ (production × Breit–Wigners × decays, see
        :func:`forward.processes.top_decays.top_pair_decay_factor`).

        Args:
            events: hard events in the order of ``final_state``.
            params: from :meth:`params`: ``mt`` and ``alpha_s``, shape () or (n,).
        """
        shat, that, uhat, mt2, above = self._onshell(events, params)
        _, mu_r2 = self.hard_scales(events, params)
        als = self._running_alpha_s(params["alpha_s"], mu_r2)
        gg = me2_gg_ttbar(shat, that, uhat, mt2, als)
        # q from beam 1: t̂ as defined; q̄ from beam 1: t̂ ↔ û
        qq = me2_qqbar_ttbar(shat, that, uhat, mt2, als)
        qbq = me2_qqbar_ttbar(shat, uhat, that, mt2, als)
        zero = torch.zeros_like(gg)
        cols = []
        for (a, _), keep in zip(FLAVOUR_CHANNELS, self._channel_mask, strict=True):
            col = gg if a == 21 else (qq if a > 0 else qbq)
            cols.append(col if keep else zero)
        me2 = torch.stack(cols, dim=-1) * above.unsqueeze(-1)
        if self.decays is None:
            return me2
        factor = top_pair_decay_factor(
            events, params["mt"], self.decays, events.shat, bw_cut=self.bw_cut,
            leptons=self.leptons, alpha_s_mz=params["alpha_s"],
        )
        return me2 * factor.unsqueeze(-1)

    def _running_alpha_s(self, alpha_s_mz: torch.Tensor, mu2: torch.Tensor) -> torch.Tensor:
        """:func:`running_alpha_s` at this process's order with cached couplings."""
        key = (mu2.dtype, mu2.device)
        if self.alpha_s_order == 1:
            if key not in self._alpha_s_reference:
                self._alpha_s_reference[key] = _one_loop_reference(*key)
            return running_alpha_s(alpha_s_mz, mu2, 1, reference=self._alpha_s_reference[key])
        if alpha_s_mz.ndim == 0 and not alpha_s_mz.requires_grad:
            key = (float(alpha_s_mz), *key)
            if key not in self._alpha_s_fixed:
                self._alpha_s_fixed = {key: RunningAlphaS(
                    alpha_s_mz, order=2, dtype=mu2.dtype, device=mu2.device)}
            return self._alpha_s_fixed[key](mu2)
        return running_alpha_s(alpha_s_mz, mu2, 2)

    def phase_space(self, params: Mapping[str, torch.Tensor] | None = None) -> list:
        """Phase-space channels at the parameters' top mass (default 172.5 GeV).

        The ŝ sampling is ∝ ŝ^-2.5 from threshold (close to the falling parton
        luminosity times σ̂), the rapidity of the pair uniform.

        Returns:
            On-shell tops: ``[TwoToTwoMap]`` with masses (m_t, m_t). With decays: two
            maps, ``[HadronicMap(TopPairDecayMap), HadronicMap(DecayChain)]``: the first
            samples exactly the narrow-width windows and line shapes of the weight (the
            default), the second is the generic Breit–Wigner decay chain of
            :mod:`forward.phasespace.decays` restricted to the same windows.
        """
        params = self.params(params)
        mt = float(params["mt"].detach().reshape(-1)[0])
        s_sampling = PowerLawSampling(2.5)
        if self.decays is None:
            return [TwoToTwoMap(self.sqrt_s, (mt, mt), s_sampling=s_sampling)]
        from forward.phasespace import BreitWignerSampling, HadronicMap
        from forward.phasespace.decays import DecayChain, Resonance

        gt, gw = float(top_width(mt)), w_width()
        c = self.bw_cut
        w_res = {
            "sampling": BreitWignerSampling(W_MASS, gw),
            "m_min": W_MASS - c * gw,
            "m_max": W_MASS + c * gw,
        }
        top_bw = BreitWignerSampling(mt, gt)
        tree = (
            Resonance((0, Resonance((1, 2), **w_res)), top_bw, mt - c * gt, mt + c * gt),
            Resonance((3, Resonance((4, 5), **w_res)), top_bw, mt - c * gt, mt + c * gt),
        )
        return [
            HadronicMap(self.sqrt_s, TopPairDecayMap(mt, bw_cut=c), s_sampling),
            HadronicMap(self.sqrt_s, DecayChain(tree, (0.0,) * 6), PowerLawSampling(2.5)),
        ]

    @property
    def reco_cuts(self) -> dict[str, float]:
        """The default reco selection of the decayed modes, the object cuts that
        :meth:`invsim.observables.RecoObservables.for_process` applies unless told
        otherwise: charged leptons pT > 20 GeV and |η| < 2.5, jets (b-tagged or not)
        pT > 30 GeV and |η| < 2.5 (GeV; empty without decays)."""
        if self.decays is None:
            return {}
        return dict(_RECO_CUTS)

    def sample_final_state(
        self, n: int, *, generator: torch.Generator | None = None, device=None
    ) -> torch.Tensor:
        """Each event's PDG ids: with ``leptons="all"`` one of the lepton-flavour
        assignments of the mode (dilepton: ee, μμ, eμ, μe) with equal probability,
        else ``final_state`` (see :mod:`forward.processes.top_decays`).

        Args:
            n: number of events.
            generator: torch generator for the draw.
            device: device of the result.

        Returns:
            Integer tensor of shape (n, len(final_state)).
        """
        return draw_final_states(self._final_states, n, generator=generator, device=device)

    def observables(self, events: HardEvents) -> dict[str, torch.Tensor]:
        """Observables by name, each shape (n,), GeV for masses and momenta.

        ``m_tt`` (pair mass), ``pt_t``, ``y_t`` (top p_T and rapidity), ``cos_theta_star``
        (top angle from beam 1 in the partonic frame); with decays also ``m_t``, ``m_w``
        (reconstructed top and W⁺ masses), ``pt_b``, ``pt_f1``, ``eta_f1`` (b and f̄₁ =
        ℓ⁺ or d̄ from the top), ``pt_bbar``, ``pt_f1bar``, ``eta_f1bar`` (from the antitop).
        """
        from forward.kinematics import mass, pseudorapidity

        p_t, p_tb = self.top_momenta(events)
        out = {
            "m_tt": mass(p_t + p_tb),
            "pt_t": pt(p_t),
            "y_t": rapidity(p_t),
            "cos_theta_star": cos_theta_star(events, p_t, p_tb),
        }
        if self.decays is not None:
            p = events.momenta
            out.update(
                m_t=mass(p_t),
                m_w=mass(p[:, 1] + p[:, 2]),
                pt_b=pt(p[:, 0]),
                pt_f1=pt(p[:, 1]),
                eta_f1=pseudorapidity(p[:, 1]),
                pt_bbar=pt(p[:, 3]),
                pt_f1bar=pt(p[:, 4]),
                eta_f1bar=pseudorapidity(p[:, 4]),
            )
        return out
