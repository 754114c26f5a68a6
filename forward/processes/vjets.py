r"""Vector boson + jets at tree level: Z/γ*(→ ℓ⁻ℓ⁺) + n jets and W(→ ℓν) + n jets, n = 0 … 3.

Usage (registry names ``"z-jets"`` and ``"w-jets"``)::

    from forward.processes import get_process
    z1 = get_process("z-jets", n_jets=1, pt_min=20.0, lepton="e")
    w2 = get_process("w-jets", n_jets=2, charge="minus", channels="qqbar'>Vgg")
    from forward.xsec import cross_section
    cross_section(z1, 200_000, seed=1, method="vegas")      # σ in pb

or ``invsim xsec z-jets --set n_jets=1 --set pt_min=20``.

**Final state.** ``momenta[:, 0:2]`` are the leptons, then the n jets (partons). z-jets:
(ℓ⁻, ℓ⁺), ``final_state`` (11, -11, 21, …) or (13, -13, 21, …) for ``lepton="mu"``;
w-jets: (charged lepton, neutrino), (-11, 12, 21, …) for ``charge="plus"`` (W⁺) and
(11, -12, 21, …) for ``"minus"`` (W⁻): one charge per process (run both and add for W±).
The jets' flavours are summed (21: placeholders, as for ``jets``).

**Channels** (setting ``channels``: ``"all"`` or a comma list), the flavour-blind names
of :func:`forward.processes.qcd_channels.channel_name` of the partons with ``V``
written first on the right: for z-jets ``qqbar>V`` + n g, ``qg>Vq`` + (n-1) g,
``gg>Vqqbar`` + (n-2) g (e.g. ``qqbar>Vg,qg>Vq`` for n = 1); for w-jets the quark and
antiquark of the line differ in flavour: ``qqbar'>Vg``, ``qg>Vq'``, ``gg>Vqqbar'``. Only
channels with **one quark line** are included (the amplitudes of
:mod:`forward.amplitudes.vector_bosons`): for n >= 2 the four-quark channels (q q̄ →
V q' q̄', q q' → V q q', …) are **not included**, so ``"all"`` there is not all of
the process. Incoming partons: g and d … b (massless, five flavours); W couplings
with Pythia's CKM moduli (:data:`forward.processes.electroweak.CKM`), no top.

**Matrix element.** |M|² = g_s^{2n} Σ_{XY} |c_{XY}(q²)|² S_{XY} with the line sums S of
:func:`forward.amplitudes.vector_boson_line_sums` (full colour, summed over helicities)
and the γ*/Z or W couplings of :mod:`forward.amplitudes.vector_bosons`; averaged over
initial colours and helicities (16 per gluon, 6 per quark); g_s² = 4π α_s(μ_R²) (the
one-loop α_s of :mod:`forward.processes.qcd_coupling` from the parameter ``alpha_s`` =
α_s(M_Z)), α_EM = α_EM(μ_R²) (``alpha_em="running"``, Pythia's; or ``"fixed"``) at both vertices, or
with ``alpha_em_decay="mass"`` α_EM(M_V²) at the lepton vertex (Pythia's W + jet, whose
W branching ratio carries α_EM(M_W²); its γ*/Z + jet uses μ_R² at both).
Z: M_Z = 91.1876 GeV and the SM width of :func:`forward.processes.electroweak.z_width`
(2.50419 GeV), running-width propagator; ``mode`` ``"gamma_z"`` (default), ``"gamma"``,
``"z"`` as Pythia's ``WeakZ0:gmZmode`` 0, 1, 2. W: M_W = 80.385 GeV and the width of
:func:`forward.processes.electroweak.w_partial_widths` (α_s = 0.13 in its QCD factor, as
Pythia's widths), propagator 1/(q² - M_W² + i q² Γ_W/M_W). One line sum S is evaluated
per (quark leg, antiquark leg) pattern of the crossed momenta and shared by every
flavour. Final-state flavours on the labelled jet momenta: each multiset summed over its
distinct orderings with weight 1/n! (the identical-particle factor, as ``jets``).

**Cuts**: every jet p_T > ``pt_min``, |η| < ``eta_max`` (None: none), ΔR > ``delta_r_min``
between jets (> 0 for n >= 2); the lepton pair mass in [``mll_min``, ``mll_max``]. The
matrix element is evaluated only at points that pass and that are regular (no pair of
the 4 + n momenta with a vanishing invariant to rounding, e.g. a lepton exactly along
the beam: |M|² = 0 there, a set of measure zero); NaN/inf momenta raise ``ValueError``.

**Scales** μ_F, μ_R (``scale``): ``"pythia"`` (default) as Pythia's 2 → 1 and 2 → 2
defaults: n = 0 μ² = m_ℓℓ²; n >= 1 μ_R² = geometric mean of the m_T² of V and the jets
(``SigmaProcess:renormScale2 = 2``) and μ_F² = the smallest of them
(``factorScale2 = 1``), with m_T,V² = m_ℓℓ² + p_T,V²; ``"ht"``: μ = (m_T,V + Σ p_T,j)/2;
``"fixed"``: μ = ``mu_fixed``.

**Phase space** (one channel per propagator structure): the V decay and the jets as a
:class:`~forward.phasespace.DecayChain` (V's mass² by a Breit–Wigner, the jet
sub-system masses by ŝ^-1 power laws above 2 p_T,min ΔR_min/π, a lower bound of any
pair mass passing the cuts), ŝ ∝ ŝ^-1.5 above (m_ℓℓ,min + n p_T,min)²; z-jets adds a
γ* channel with m_ℓℓ² ∝ 1/m_ℓℓ². For n = 0 the ŝ sampling is the V's.
3(n + 2) - 2 random numbers.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Mapping

import torch

from forward._validation import check_choice
from forward.amplitudes import (
    charged_current_couplings,
    minkowski_dot,
    neutral_current_couplings,
    vector_boson_line_sums,
)
from forward.events import HardEvents
from forward.kinematics import delta_r, mass, mass2, pseudorapidity, pt, rapidity
from forward.phasespace import (
    BreitWignerSampling,
    DecayChain,
    HadronicMap,
    PowerLawSampling,
    Resonance,
    SChannelMap,
)
from forward.processes.base import Parameter, Process, _finite_positive, check_hard_events
from forward.processes.electroweak import (
    ALPHA_S_WIDTH,
    CKM,
    MW,
    MZ,
    alpha_em,
    w_partial_widths,
    z_width,
)
from forward.processes.qcd_channels import (
    FLAVOURS,
    canonical_channel,
    channel_name,
    select_channels,
)
from forward.processes.qcd_coupling import OneLoopAlphaS

__all__ = ["MAX_VJETS", "VJets", "WJets", "ZJets", "vjets_channel_names"]

#: the largest number of jets of z-jets and w-jets
MAX_VJETS = 3
_SCALES = ("pythia", "ht", "fixed")
_LEPTONS = {"e": 11, "mu": 13}
_SHAT_POWER = 1.5
_PARTONS = (21, *range(1, FLAVOURS + 1), *range(-1, -FLAVOURS - 1, -1))


def _conj(p: int) -> int:
    return p if p == 21 else -p


def _average(pid: int) -> float:
    return 16.0 if pid == 21 else 6.0


def _coupling_key(boson: str, quark: int, antiquark: int):
    """The coupling class of the line (outgoing quark, outgoing antiquark), or None.

    z: same flavour, key = quark type (1 down, 2 up); w+ (W⁺ emitted): outgoing quark
    down-type and antiquark up-type, key (up, down); w-: the opposite.
    """
    q, qb = abs(quark), abs(antiquark)
    if boson == "z":
        return (2 - q % 2) if q == qb else None
    up, down = (qb, q) if boson == "w+" else (q, qb)
    if up % 2 or not down % 2 or (up, down) not in CKM or up == 6:
        return None
    return (up, down)


@functools.lru_cache(maxsize=32)
def _subprocesses(boson: str, n_jets: int) -> tuple:
    """(initial, final, name, key) of every one-quark-line subprocess (final: a sorted
    multiset of jet pids; key: the coupling class)."""
    out = []
    for a in _PARTONS:
        for b in _PARTONS:
            for final in itertools.combinations_with_replacement(_PARTONS, n_jets):
                legs = (_conj(a), _conj(b), *final)
                quarks = [p for p in legs if p != 21 and p > 0]
                antis = [p for p in legs if p != 21 and p < 0]
                if len(quarks) != 1 or len(antis) != 1:
                    continue
                key = _coupling_key(boson, quarks[0], antis[0])
                if key is None:
                    continue
                name = channel_name((a, b), final)
                lhs, rhs = name.split(">")
                out.append(((a, b), tuple(sorted(final)), f"{lhs}>V{rhs}", key))
    return tuple(out)


def vjets_channel_names(boson: str, n_jets: int) -> tuple[str, ...]:
    """The channel names of V + n jets (module docstring), sorted.

    Args:
        boson: ``"z"``, ``"w+"`` or ``"w-"``.
        n_jets: 0 … :data:`MAX_VJETS`.
    """
    check_choice("boson", boson, ("z", "w+", "w-"))
    return tuple(sorted({name for _, _, name, _ in _subprocesses(boson, n_jets)}))


def _canonical(entry: str) -> str:
    """A user's channel entry with V first on the right and the partons ordered."""
    text = entry.strip()
    if text.count(">") != 1 or text.split(">")[1].count("V") != 1:
        raise ValueError(f"channels: expected entries like 'qqbar>Vg' or 'qg>Vq' (one 'V' "
                         f"right of '>'), got {entry!r}")
    lhs, rhs = text.split(">")
    rest = rhs.replace("V", "")
    if rest.strip():
        lhs, rest = canonical_channel(f"{lhs}>{rest}").split(">")
    else:
        lhs = canonical_channel(f"{lhs}>{lhs}").split(">")[0]
    return f"{lhs}>V{rest}"


def _parse_channels(spec, boson: str, n_jets: int) -> tuple[str, ...]:
    return select_channels(spec, vjets_channel_names(boson, n_jets), _canonical,
                           f"V + {n_jets} jets", "qqbar>Vg,qg>Vq")


def _plan(boson: str, n_jets: int, selected):
    """Beam pairs, (quark leg, antiquark leg) patterns, coupling keys and the weights
    W[channel, pattern, key] of ME[:, c] = Σ_{p,k} W[c, p, k] Σ_XY |c_XY^k|² S_XY^p."""
    chosen = set(selected)
    terms: dict = {}
    for initial, final, name, key in _subprocesses(boson, n_jets):
        if name not in chosen:
            continue
        a, b = initial
        w = 1.0 / (math.factorial(n_jets) * _average(a) * _average(b))
        for order in sorted(set(itertools.permutations(final))):
            legs = (_conj(a), _conj(b), *order)
            iq = next(i for i, p in enumerate(legs) if p != 21 and p > 0)
            iqb = next(i for i, p in enumerate(legs) if p != 21 and p < 0)
            t = (initial, (iq, iqb), key)
            terms[t] = terms.get(t, 0.0) + w
    pairs = tuple(sorted({t[0] for t in terms}))
    patterns = tuple(sorted({t[1] for t in terms}))
    keys = tuple(sorted({t[2] for t in terms}, key=str))
    weights = torch.zeros(len(pairs), len(patterns), len(keys), dtype=torch.float64)
    for (initial, pat, key), w in terms.items():
        weights[pairs.index(initial), patterns.index(pat), keys.index(key)] += w
    return pairs, patterns, keys, weights


def _number(name: str, value, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__}")
    v = float(value)
    if allow_zero:
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")
        return v
    return _finite_positive(name, v)


def _regular(k: torch.Tensor) -> torch.Tensor:
    """Points whose every pair has an invariant above rounding (the criterion of
    :func:`forward.amplitudes.check_gluon_momenta`), shape (N,)."""
    eps = torch.finfo(k.dtype).eps
    n = k.shape[1]
    i, j = torch.triu_indices(n, n, 1, device=k.device)
    sij = minkowski_dot(k[:, i], k[:, j]).abs()
    ee = (k[:, i, 0] * k[:, j, 0]).abs()
    return (sij > 10.0 * eps * ee).all(-1)


class VJets(Process):
    """V + n jets (module docstring); use :class:`ZJets` or :class:`WJets`.

    Subclasses set ``_boson`` (``"z"``, ``"w+"``, ``"w-"``), the lepton ids, the V
    mass window and the couplings (:meth:`_couplings`).
    """

    _boson = "z"

    def _setup(self, sqrt_s, n_jets, pt_min, eta_max, delta_r_min, scale, mu_fixed, pdf,
               channels, alpha_em_mode, m_min, m_max, alpha_em_decay) -> None:
        self.sqrt_s = _finite_positive("sqrt_s", sqrt_s)
        if isinstance(n_jets, bool) or not isinstance(n_jets, int) or not (
                0 <= n_jets <= MAX_VJETS):
            raise ValueError(f"n_jets: expected an integer in 0..{MAX_VJETS}, got {n_jets!r}")
        self.n_jets = n_jets
        self.pt_min = _number("pt_min", pt_min)
        self.eta_max = None if eta_max is None else _number("eta_max", eta_max)
        self.delta_r_min = _number("delta_r_min", delta_r_min, allow_zero=True)
        if n_jets >= 2 and self.delta_r_min == 0:
            raise ValueError(f"delta_r_min: expected > 0 for n_jets = {n_jets} >= 2 (the "
                             "collinear limit of two jets diverges), got 0")
        check_choice("scale", scale, _SCALES)
        self.scale = scale
        self.mu_fixed = _number("mu_fixed", mu_fixed)
        if not isinstance(pdf, str) or not pdf:
            raise TypeError(f"pdf: expected an LHAPDF set name (str), got {pdf!r}")
        self.pdf = pdf
        check_choice("alpha_em", alpha_em_mode, ("running", "fixed"))
        self.alpha_em = alpha_em_mode
        check_choice("alpha_em_decay", alpha_em_decay, ("mu_r", "mass"))
        self.alpha_em_decay = alpha_em_decay
        self._m_min = m_min
        self._m_max = m_max
        if not m_min + n_jets * self.pt_min < self.sqrt_s:
            raise ValueError(f"pt_min: the threshold {m_min} + n_jets · pt_min GeV must lie "
                             f"below sqrt_s = {self.sqrt_s} GeV")
        selected = _parse_channels(channels, self._boson, n_jets)
        self.channels = ",".join(selected)
        self.parameters = {
            "alpha_s": Parameter("alpha_s", 0.118, 0.1, 0.14, "", "strong coupling α_s(M_Z)"),
        }
        self.flavour_channels, self._patterns, self._keys, self._weights = _plan(
            self._boson, n_jets, selected)
        self._alpha_s = OneLoopAlphaS()

    # -- couplings (subclasses) ---------------------------------------------------------
    def _couplings(self, key, q2: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _lepton_legs(self, momenta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(outgoing fermion, outgoing antifermion) momenta (N, 4) each."""
        return momenta[:, 0], momenta[:, 1]

    # -- matrix element ---------------------------------------------------------------
    def _check_events(self, events: HardEvents) -> None:
        check_hard_events(events, 2 + self.n_jets, f"(two leptons, {self.n_jets} jets)")

    def matrix_element(
        self, events: HardEvents, params: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        """Averaged |M|² per initial pair, final flavours summed; zero failing :meth:`cuts`.

        Args:
            events: momenta (n, 2 + n_jets, 4) in GeV (leptons, jets), lab frame, x1, x2.
            params: from :meth:`params`: ``alpha_s`` of shape () or (n,).

        Returns:
            Shape (n, len(flavour_channels)), in GeV^(-2 n_jets) (dimensionless for n = 0).

        Raises:
            TypeError, ValueError: not HardEvents, wrong shape, NaN/inf momenta or x.
        """
        self._check_events(events)
        _, mu_r2 = self.hard_scales(events, params)
        keep = self.cuts(events)
        weights = self._weights.to(dtype=mu_r2.dtype, device=mu_r2.device)
        out = torch.zeros(mu_r2.shape[0], weights.shape[0], dtype=mu_r2.dtype,
                          device=mu_r2.device)
        from forward.processes.jets import outgoing_momenta

        legs = outgoing_momenta(HardEvents(events.momenta[:, 2:], events.x1, events.x2,
                                           events.sqrt_s))
        f, fb = self._lepton_legs(events.momenta)
        full = torch.cat([legs[:, :2], f.unsqueeze(1), fb.unsqueeze(1), legs[:, 2:]], 1)
        keep = keep & _regular(full)
        if not bool(keep.any()):
            return out
        idx = keep.nonzero()[:, 0]
        k, legs = full[idx], legs[idx]
        q2 = mass2(f[idx] + fb[idx])
        alpha = alpha_em(mu_r2[idx], self.alpha_em)
        if self.alpha_em_decay == "mass":  # e² = 4π √(α(μ_R²) α(M_V²)): the decay at M_V²
            alpha = (alpha * alpha_em(torch.full_like(alpha, self._v_mass**2),
                                      self.alpha_em)).sqrt()
        als = self._alpha_s(params["alpha_s"], mu_r2).expand_as(mu_r2)[idx]
        sums = []
        n_legs = 2 + self.n_jets
        for iq, iqb in self._patterns:
            rest = [i for i in range(n_legs) if i not in (iq, iqb)]
            mom = torch.cat([legs[:, [iq, iqb]], k[:, 2:4], legs[:, rest]], 1)
            sums.append(vector_boson_line_sums(mom))
        sums = torch.stack(sums)  # (P, n, 2, 2)
        coup = torch.stack([self._couplings(key, q2, alpha) for key in self._keys])
        coup = coup.real**2 + coup.imag**2  # (K, n, 2, 2)
        me = torch.einsum("cpk,pnxy,knxy->nc", weights, sums, coup)
        me = me * (4.0 * math.pi * als).pow(self.n_jets).unsqueeze(-1)
        return out.index_put((idx,), me)

    # -- scales, phase space, cuts, observables -------------------------------------------
    def scales(
        self, events: HardEvents, params: Mapping[str, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ_F², μ_R²) in GeV², each shape (n,) (``scale`` setting, module docstring)."""
        p = events.momenta
        vec = p[:, 0] + p[:, 1]
        m2_v = mass2(vec).clamp(min=0.0)
        if self.scale == "fixed":
            mu2 = torch.full_like(events.x1, self.mu_fixed**2)
            return mu2, mu2
        mt2_v = m2_v + pt(vec) ** 2
        pt2_j = pt(p[:, 2:]) ** 2
        if self.scale == "ht":
            mu2 = (0.5 * (mt2_v.sqrt() + pt2_j.sqrt().sum(-1))) ** 2
            return mu2, mu2
        if self.n_jets == 0:
            return m2_v, m2_v
        mt2 = torch.cat([mt2_v.unsqueeze(-1), pt2_j], -1).clamp(min=torch.finfo(p.dtype).tiny)
        return mt2.amin(-1), torch.exp(torch.log(mt2).mean(-1))

    def _v_samplings(self) -> list:
        raise NotImplementedError

    def phase_space(self, params: Mapping[str, torch.Tensor] | None = None) -> list:
        """One map per V propagator structure (module docstring); dim 3(n + 2) - 2."""
        n = self.n_jets
        m_max = None if self._m_max is None else min(self._m_max, self.sqrt_s)
        if n == 0:
            return [SChannelMap(self.sqrt_s, s, m_min=self._m_min, m_max=m_max)
                    for s in self._v_samplings()]
        m_jj = max(2.0 * self.pt_min * self.delta_r_min / math.pi, 1e-3)
        if n == 1:
            jets = 2
        elif n == 2:
            jets = Resonance((2, 3), PowerLawSampling(1.0), m_min=m_jj)
        else:
            jets = Resonance((2, Resonance((3, 4), PowerLawSampling(1.0), m_min=m_jj)),
                             PowerLawSampling(1.0), m_min=m_jj)
        maps = []
        for s in self._v_samplings():
            v = Resonance((0, 1), s, m_min=self._m_min,
                          m_max=math.inf if m_max is None else m_max)
            chain = DecayChain((v, jets), (0.0,) * (2 + n))
            maps.append(HadronicMap(self.sqrt_s, chain, PowerLawSampling(_SHAT_POWER),
                                    m_min=self._m_min + n * self.pt_min))
        return maps

    def cuts(self, events: HardEvents) -> torch.Tensor:
        """Jets: p_T > pt_min, |η| < eta_max, pairwise ΔR > delta_r_min; lepton-pair mass
        in the window: mask of shape (n,)."""
        p = events.momenta
        m_v = mass(p[:, 0] + p[:, 1])
        keep = m_v >= self._m_min
        if self._m_max is not None:
            keep &= m_v <= self._m_max
        jets = p[:, 2:]
        if self.n_jets:
            keep &= (pt(jets) > self.pt_min).all(-1)
            if self.eta_max is not None:
                keep &= (pseudorapidity(jets).abs() < self.eta_max).all(-1)
        for i in range(self.n_jets):
            for j in range(i + 1, self.n_jets):
                keep &= delta_r(jets[:, i], jets[:, j]) > self.delta_r_min
        return keep

    def observables(self, events: HardEvents) -> dict[str, torch.Tensor]:
        """``m_ll``, ``pt_ll``, ``y_ll`` (the lepton pair), ``pt_l1``, ``eta_l1`` (first
        lepton), and for n >= 1 ``pt_j1``, ``eta_j1`` (leading jet), ``ht`` (Σ p_T of the
        jets); for n >= 2 ``pt_j2``, ``m_jj``. GeV or dimensionless, shape (n,)."""
        p = events.momenta
        v = p[:, 0] + p[:, 1]
        out = {"m_ll": mass(v), "pt_ll": pt(v), "y_ll": rapidity(v), "pt_l1": pt(p[:, 0]),
               "eta_l1": pseudorapidity(p[:, 0])}
        if self.n_jets:
            jets = p[:, 2:]
            order = pt(jets).argsort(-1, descending=True)
            js = torch.gather(jets, 1, order.unsqueeze(-1).expand_as(jets))
            out.update(pt_j1=pt(js[:, 0]), eta_j1=pseudorapidity(js[:, 0]),
                       ht=pt(jets).sum(-1))
            if self.n_jets >= 2:
                out.update(pt_j2=pt(js[:, 1]), m_jj=mass(js[:, 0] + js[:, 1]))
        return out


class ZJets(VJets):
    """p p → Z/γ*(→ ℓ⁻ℓ⁺) + n jets at tree level (module docstring of
    :mod:`forward.processes.vjets`).

    Args:
        sqrt_s: hadronic centre-of-mass energy in GeV.
        n_jets: number of jets, 0 … :data:`MAX_VJETS`.
        pt_min: jet p_T cut in GeV (> 0).
        eta_max: jet |η| cut (> 0) or None.
        delta_r_min: ΔR cut between jets (>= 0; > 0 for n_jets >= 2).
        scale: ``"pythia"``, ``"ht"`` or ``"fixed"``.
        mu_fixed: the scale in GeV for ``scale="fixed"``.
        pdf: LHAPDF set name.
        channels: ``"all"`` or a comma list (e.g. ``"qqbar>Vg,qg>Vq"``); stored resolved.
        lepton: ``"e"`` or ``"mu"``.
        mll_min, mll_max: lepton-pair mass window in GeV.
        mode: ``"gamma_z"``, ``"gamma"`` or ``"z"`` (Pythia ``WeakZ0:gmZmode`` 0, 1, 2).
        alpha_em: ``"running"`` (α_EM(μ_R²)) or ``"fixed"`` (α_EM(M_Z²)).
        alpha_em_decay: ``"mu_r"`` (α_EM at μ_R² at both vertices, as Pythia's γ*/Z + jet)
            or ``"mass"`` (α_EM(M_V²) at the lepton vertex, as the W branching ratios of
            Pythia's W + jet).

    Parameters: ``alpha_s`` = α_s(M_Z) (default 0.118, range 0.1–0.14).

    Raises:
        TypeError, ValueError: bad settings, naming the setting and what is allowed.
    """

    name = "z-jets"
    _boson = "z"

    def __init__(
        self,
        sqrt_s: float = 13000.0,
        n_jets: int = 1,
        pt_min: float = 20.0,
        eta_max: float | None = 4.5,
        delta_r_min: float = 0.4,
        scale: str = "pythia",
        mu_fixed: float = 91.188,
        pdf: str = "NNPDF31_lo_as_0118",
        channels: str = "all",
        lepton: str = "e",
        mll_min: float = 60.0,
        mll_max: float = 120.0,
        mode: str = "gamma_z",
        alpha_em: str = "running",
        alpha_em_decay: str = "mu_r",
    ) -> None:
        check_choice("lepton", lepton, tuple(_LEPTONS))
        check_choice("mode", mode, ("gamma_z", "gamma", "z"))
        lo, hi = _number("mll_min", mll_min), _number("mll_max", mll_max)
        if not lo < hi:
            raise ValueError(f"mll_max: expected mll_min < mll_max, got {lo}, {hi}")
        self.lepton, self.mode, self.mll_min, self.mll_max = lepton, mode, lo, hi
        self._v_mass = MZ
        self._setup(sqrt_s, n_jets, pt_min, eta_max, delta_r_min, scale, mu_fixed, pdf,
                    channels, alpha_em, lo, hi, alpha_em_decay)
        lep = _LEPTONS[lepton]
        self.final_state = (lep, -lep) + (21,) * n_jets
        self._z_width = float(z_width(alpha_em))

    def _couplings(self, key, q2, alpha):
        return neutral_current_couplings(q2, key, _LEPTONS[self.lepton], alpha,
                                         z_mass=MZ, z_width=self._z_width, mode=self.mode)

    def _v_samplings(self) -> list:
        samplings = [] if self.mode == "gamma" else [BreitWignerSampling(MZ, self._z_width)]
        if self.mode != "z":
            samplings.append(PowerLawSampling(1.0))
        return samplings


class WJets(VJets):
    """p p → W(→ ℓν) + n jets at tree level, one W charge (module docstring of
    :mod:`forward.processes.vjets`).

    Args:
        sqrt_s, n_jets, pt_min, eta_max, delta_r_min, scale, mu_fixed, pdf, channels,
            lepton, alpha_em, alpha_em_decay: as for :class:`ZJets` (channels e.g.
            ``"qqbar'>Vg"``; ``alpha_em_decay="mass"`` for the comparison with Pythia's
            ``WeakBosonAndParton:qqbar2Wg``, ``qg2Wq``).
        charge: ``"plus"`` (W⁺ → ℓ⁺ν) or ``"minus"`` (W⁻ → ℓ⁻ν̄).
        mlnu_min: lower cut on the ℓν mass in GeV (> 0; Pythia's ``24:mMin`` = 10).
        mlnu_max: upper cut in GeV, or None (none; Pythia's ``24:mMax`` = 0).

    Parameters: ``alpha_s`` = α_s(M_Z).
    """

    name = "w-jets"

    def __init__(
        self,
        sqrt_s: float = 13000.0,
        n_jets: int = 1,
        pt_min: float = 20.0,
        eta_max: float | None = 4.5,
        delta_r_min: float = 0.4,
        scale: str = "pythia",
        mu_fixed: float = 80.385,
        pdf: str = "NNPDF31_lo_as_0118",
        channels: str = "all",
        lepton: str = "e",
        charge: str = "plus",
        mlnu_min: float = 10.0,
        mlnu_max: float | None = None,
        alpha_em: str = "running",
        alpha_em_decay: str = "mu_r",
    ) -> None:
        check_choice("lepton", lepton, tuple(_LEPTONS))
        check_choice("charge", charge, ("plus", "minus"))
        lo = _number("mlnu_min", mlnu_min)
        hi = None if mlnu_max is None else _number("mlnu_max", mlnu_max)
        if hi is not None and not lo < hi:
            raise ValueError(f"mlnu_max: expected mlnu_min < mlnu_max, got {lo}, {hi}")
        self.lepton, self.charge, self.mlnu_min, self.mlnu_max = lepton, charge, lo, hi
        self._boson = "w+" if charge == "plus" else "w-"
        self._v_mass = MW
        self._setup(sqrt_s, n_jets, pt_min, eta_max, delta_r_min, scale, mu_fixed, pdf,
                    channels, alpha_em, lo, hi, alpha_em_decay)
        lep = _LEPTONS[lepton]
        sign = 1 if charge == "plus" else -1
        self.final_state = (-sign * lep, sign * (lep + 1)) + (21,) * n_jets
        self._w_width = float(sum(w_partial_widths(ALPHA_S_WIDTH).values()))

    def _lepton_legs(self, momenta):
        # W⁺ → ν(f) ℓ⁺(f̄); W⁻ → ℓ⁻(f) ν̄(f̄); momenta = (charged lepton, neutrino)
        if self.charge == "plus":
            return momenta[:, 1], momenta[:, 0]
        return momenta[:, 0], momenta[:, 1]

    def _couplings(self, key, q2, alpha):
        return charged_current_couplings(q2, CKM[key], alpha, w_mass=MW,
                                         w_width=self._w_width)

    def _v_samplings(self) -> list:
        return [BreitWignerSampling(MW, self._w_width)]
