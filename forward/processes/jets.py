r"""Multi-jet production, p p → n jets, at tree level: every QCD channel (n = 2), or the
channels with at most one quark pair (n >= 3), full colour.

Usage (registry name ``"jets"``)::

    from forward.processes import get_process
    proc = get_process("jets", n_jets=3, pt_min=50.0)
    gg_only = get_process("jets", n_jets=2, channels="gg>gg")   # g g → g g alone
    from forward.xsec import cross_section
    cross_section(proc, 200_000, seed=1, method="vegas")      # σ in pb

or ``invsim xsec jets --set n_jets=2 --set pt_min=100``.

**Channels** (setting ``channels``: ``"all"`` or a comma list such as
``"gg>gg,qg>qg"``; names of :mod:`forward.processes.qcd_channels`, flavour-blind and
beam-symmetric). For n = 2: ``gg>gg``, ``gg>qqbar``, ``qg>qg``, ``qq>qq``,
``qq'>qq'``, ``qqbar'>qqbar'``, ``qqbar>gg``, ``qqbar>qqbar``, ``qqbar>q'qbar'`` (all
of QCD, ESW Table 7.1). For n >= 3 the amplitudes cover gluons with at most one quark
pair (``gg>ggg``, ``gg>qqbarg``, ``qg>qgg``, ``qqbar>ggg`` for n = 3); channels with
two quark pairs and gluons are **not included**, so ``"all"`` there is not all of
QCD. Incoming partons: g and the five massless quarks and antiquarks (d … b);
``n_quark_new`` (default 5) flavours can be produced as new pairs (Pythia's
``HardQCD:nQuarkNew``). ``flavour_channels`` lists the initial pairs (beam 1, beam 2)
with at least one selected channel; the **final-state flavours are summed** in
:meth:`Jets.matrix_element` (``final_state`` is (21, …, 21): jet placeholders).

**Matrix element.** |M|² from :func:`forward.amplitudes.qcd_me2` (Berends–Giele
recursion with **full colour**), summed over all helicities and colours and averaged
over the initial states (16 for a gluon, 6 for a quark), with
g_s² = 4π α_s(μ_R) (α_s(M_Z) = ``alpha_s`` run at one loop with Pythia's
hard-process thresholds, :func:`forward.processes.ttbar.running_alpha_s`). The
incoming partons p_a, p_b enter the all-outgoing amplitude as -p_a, -p_b with the
antiparticle's code (crossing).
The phase space is the labelled one: each final-state flavour multiset is summed over
its distinct orderings on the n momenta with weight 1/n!, which gives the
identical-particle factor 1/S (as Pythia's g g → g g, q q → q q). One |M|² is
evaluated per flavour-relabelled pattern (:func:`~forward.processes.qcd_channels.relabelled`)
and shared by all channels with it. With ``channels="gg>gg"`` the σ is that of Pythia's
``HardQCD:gg2gg``; with all channels and ``n_quark_new=5``, of ``HardQCD:gg2gg, gg2qqbar,
qg2qg, qq2qq, qqbar2gg, qqbar2qqbarNew`` with ``HardQCD:nQuarkNew = 5`` (with
``n_quark_new`` < 5, q q̄ → q q̄ keeps its s-channel for every incoming flavour here,
while Pythia drops it for flavours above ``nQuarkNew``).

**Cuts** (settings): p_T > ``pt_min`` for every parton, |η| < ``eta_max`` (``None``:
no η cut), ΔR > ``delta_r_min`` between every pair. They keep σ finite: the
matrix element is evaluated only at points that pass (zero elsewhere), so soft or
collinear points never reach the amplitude. For n >= 3, ``delta_r_min`` must be > 0
(otherwise σ diverges in the collinear limit of two final partons).

**Scales** μ_F = μ_R = μ: ``scale="pt"`` (default) μ² = geometric mean of the partons'
p_T² (for 2 → 2 the p_T of either parton, Pythia's default ``renormScale2 = 2``,
``factorScale2 = 1`` for massless partons); ``"ht"``: μ = H_T/2; ``"fixed"``:
μ = ``mu_fixed``.

**Phase space.** :class:`~forward.phasespace.HadronicMap` with a flat massless n-body
:class:`~forward.phasespace.Rambo`, ŝ ∝ ŝ^-ν (ν = 1.5) above (n · pt_min)² (the
invariant mass of n massless partons with zero total p_T is at least Σ p_T); 3n - 2
random numbers, exact inverse.

**Cost.** One gluon |M|² at n = 2, 3, 4, 5 costs about 0.04, 0.5, 12, 180 ms per point
on one CPU thread (``benchmarks/amplitudes.py``, n + 2 gluons, full colour); the quark
channels add one |M|² per relabelled pattern (``benchmarks/amplitudes.py --quarks``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping

import torch

from forward._validation import check_choice
from forward.amplitudes import qcd_me2
from forward.events import HardEvents
from forward.kinematics import delta_r, mass, pseudorapidity, pt
from forward.phasespace import HadronicMap, PowerLawSampling, Rambo
from forward.processes.base import Parameter, Process, _finite_positive, check_hard_events
from forward.processes.qcd_channels import (
    FLAVOURS,
    parse_channels,
    relabelled,
    subprocesses,
)
from forward.processes.qcd_coupling import OneLoopAlphaS

__all__ = ["Jets", "MAX_JETS", "outgoing_momenta"]

#: the largest number of jets (n + 2 = 7 gluons: the largest full colour matrix)
MAX_JETS = 5
_SCALES = ("pt", "ht", "fixed")
_SHAT_POWER = 1.5


def outgoing_momenta(events: HardEvents) -> torch.Tensor:
    """All-outgoing momenta (n, 2 + k, 4) of a 2 → k event: (-p_a, -p_b, k_1, ..., k_k).

    p_a = x1 √s/2 (1, 0, 0, 1) from beam 1 and p_b = x2 √s/2 (1, 0, 0, -1), massless,
    in GeV, followed by the final-state momenta as given (lab frame; events of the
    phase-space maps conserve p_a + p_b = Σ k_i).
    """
    ea = events.x1 * (0.5 * events.sqrt_s)
    eb = events.x2 * (0.5 * events.sqrt_s)
    zero = torch.zeros_like(ea)
    pa = torch.stack([ea, zero, zero, ea], -1)
    pb = torch.stack([eb, zero, zero, -eb], -1)
    return torch.cat([-pa.unsqueeze(1), -pb.unsqueeze(1), events.momenta], 1)


def _average(pid: int) -> float:
    """Colour × helicity states of an incoming parton (N = 3)."""
    return 16.0 if pid == 21 else 6.0


def _plan(n_jets: int, n_quark_new: int, selected):
    """Initial pairs, |M|² patterns and weights: ME[:, c] = Σ_p |M|²_p W[c, p].

    Returns:
        ``(pairs, patterns, weights)``: the initial pairs with a selected subprocess;
        the relabelled outgoing codes evaluated once each; weights (pairs, patterns)
        float64: 1 / (n! · states(a) · states(b)) per distinct ordering of the final
        flavours on the labelled momenta.
    """
    chosen = set(selected)
    columns: dict = {}
    for initial, final, name in subprocesses(n_jets, n_quark_new):
        if name not in chosen:
            continue
        a, b = initial
        col = columns.setdefault(initial, {})
        w = 1.0 / (math.factorial(n_jets) * _average(a) * _average(b))
        for order in sorted(set(itertools.permutations(final))):
            key = relabelled((a if a == 21 else -a, b if b == 21 else -b, *order))
            col[key] = col.get(key, 0.0) + w
    pairs = tuple(columns)
    patterns = tuple(sorted({key for col in columns.values() for key in col}))
    weights = torch.tensor([[columns[p].get(key, 0.0) for key in patterns] for p in pairs],
                           dtype=torch.float64)
    return pairs, patterns, weights


def _number(name: str, value, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__}")
    v = float(value)
    if allow_zero:
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")
        return v
    return _finite_positive(name, v)


class Jets(Process):
    """p p → n jets at tree level, full colour, summed over channels (module docstring).

    Args:
        sqrt_s: hadronic centre-of-mass energy in GeV.
        n_jets: number of final-state partons, 2 ... :data:`MAX_JETS`.
        pt_min: lower p_T cut on every parton in GeV (> 0).
        eta_max: upper cut on |η| of every parton (> 0), or None for no η cut.
        delta_r_min: lower cut on ΔR between every pair (>= 0; > 0 for n_jets >= 3).
        scale: ``"pt"``, ``"ht"`` or ``"fixed"`` (μ_F = μ_R).
        mu_fixed: the scale in GeV for ``scale="fixed"``.
        pdf: LHAPDF set name used by the hadronic integrand.
        channels: ``"all"`` or a comma list of channel names (module docstring); stored
            as the resolved comma list.
        n_quark_new: quark flavours 1..n_quark_new produced as new pairs (0 ... 5).

    Parameters: ``alpha_s`` = α_s(M_Z) (default 0.118, range 0.1–0.14).

    Raises:
        TypeError, ValueError: bad settings, naming the setting and what is allowed.
    """

    name = "jets"

    def __init__(
        self,
        sqrt_s: float = 13000.0,
        n_jets: int = 2,
        pt_min: float = 50.0,
        eta_max: float | None = 4.5,
        delta_r_min: float = 0.4,
        scale: str = "pt",
        mu_fixed: float = 91.188,
        pdf: str = "NNPDF31_lo_as_0118",
        channels: str = "all",
        n_quark_new: int = FLAVOURS,
    ) -> None:
        self.sqrt_s = _finite_positive("sqrt_s", sqrt_s)
        if isinstance(n_jets, bool) or not isinstance(n_jets, int) or not (
                2 <= n_jets <= MAX_JETS):
            raise ValueError(f"n_jets: expected an integer in 2..{MAX_JETS}, got {n_jets!r}")
        self.n_jets = n_jets
        self.pt_min = _number("pt_min", pt_min)
        self.eta_max = None if eta_max is None else _number("eta_max", eta_max)
        self.delta_r_min = _number("delta_r_min", delta_r_min, allow_zero=True)
        if n_jets >= 3 and self.delta_r_min == 0:
            raise ValueError(f"delta_r_min: expected > 0 for n_jets = {n_jets} >= 3 (the "
                             "collinear limit of two final partons diverges), got 0")
        if isinstance(n_quark_new, bool) or not isinstance(n_quark_new, int) or not (
                0 <= n_quark_new <= FLAVOURS):
            raise ValueError(f"n_quark_new: expected an integer in 0..{FLAVOURS}, "
                             f"got {n_quark_new!r}")
        self.n_quark_new = n_quark_new
        selected = parse_channels(channels, n_jets, n_quark_new)
        self.channels = ",".join(selected)
        check_choice("scale", scale, _SCALES)
        self.scale = scale
        self.mu_fixed = _number("mu_fixed", mu_fixed)
        if not isinstance(pdf, str) or not pdf:
            raise TypeError(f"pdf: expected an LHAPDF set name (str), got {pdf!r}")
        self.pdf = pdf
        self.m_min = n_jets * self.pt_min
        if not self.m_min < self.sqrt_s:
            raise ValueError(f"pt_min: n_jets · pt_min = {self.m_min} GeV must lie below "
                             f"sqrt_s = {self.sqrt_s} GeV")
        self.parameters = {
            "alpha_s": Parameter("alpha_s", 0.118, 0.1, 0.14, "", "strong coupling α_s(M_Z)"),
        }
        self.final_state = (21,) * n_jets
        self.flavour_channels, self._patterns, self._weights = _plan(
            n_jets, n_quark_new, selected)
        self._alpha_s = OneLoopAlphaS()

    def _check_events(self, events: HardEvents) -> None:
        check_hard_events(events, self.n_jets, f"({self.n_jets} partons)")

    def matrix_element(
        self, events: HardEvents, params: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        """Averaged |M|² per initial pair, final flavours summed; zero failing :meth:`cuts`.

        Args:
            events: momenta (n, n_jets, 4) in GeV, lab frame, with x1, x2.
            params: from :meth:`params`: ``alpha_s`` of shape () or (n,).

        Returns:
            Shape (n, len(flavour_channels)), in GeV^(4 - 2 n_jets) (dimensionless for
            2 → 2).

        Raises:
            TypeError, ValueError: not HardEvents, wrong shape, NaN/inf momenta or x.
        """
        self._check_events(events)
        keep = self.cuts(events)
        _, mu_r2 = self.scales(events, params)
        als = self._alpha_s(params["alpha_s"], mu_r2).expand_as(mu_r2)
        weights = self._weights.to(dtype=mu_r2.dtype, device=mu_r2.device)
        out = torch.zeros(mu_r2.shape[0], weights.shape[0], dtype=mu_r2.dtype,
                          device=mu_r2.device)
        if bool(keep.any()):
            g_s = torch.sqrt(4.0 * math.pi * als[keep])
            k = outgoing_momenta(events)[keep]
            me = torch.stack([qcd_me2(k, pids, g_s=g_s) for pids in self._patterns], -1)
            out = out.index_put((keep.nonzero()[:, 0],), me @ weights.T)
        return out

    def scales(
        self, events: HardEvents, params: Mapping[str, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """μ_F² = μ_R² in GeV², each shape (n,) (``scale`` setting)."""
        pts = pt(events.momenta)
        if self.scale == "pt":
            mu2 = torch.exp(2.0 * torch.log(pts.clamp(min=torch.finfo(pts.dtype).tiny)).mean(-1))
        elif self.scale == "ht":
            mu2 = (0.5 * pts.sum(-1)) ** 2
        else:
            mu2 = torch.full_like(events.x1, self.mu_fixed**2)
        return mu2, mu2

    def phase_space(self, params: Mapping[str, torch.Tensor] | None = None) -> list:
        """``[HadronicMap]``: ŝ ∝ ŝ^-1.5 above (n pt_min)², flat massless RAMBO; dim 3n - 2."""
        return [HadronicMap(self.sqrt_s, Rambo((0.0,) * self.n_jets),
                            PowerLawSampling(_SHAT_POWER), m_min=self.m_min)]

    def cuts(self, events: HardEvents) -> torch.Tensor:
        """p_T > pt_min, |η| < eta_max, pairwise ΔR > delta_r_min: mask of shape (n,)."""
        p = events.momenta
        keep = (pt(p) > self.pt_min).all(-1)
        if self.eta_max is not None:
            keep &= (pseudorapidity(p).abs() < self.eta_max).all(-1)
        for i in range(self.n_jets):
            for j in range(i + 1, self.n_jets):
                keep &= delta_r(p[:, i], p[:, j]) > self.delta_r_min
        return keep

    def observables(self, events: HardEvents) -> dict[str, torch.Tensor]:
        """``pt_j1``, ``eta_j1``, ``pt_j2``, ``eta_j2`` (leading jets by p_T), ``ht`` (Σ p_T),
        ``m_jj`` (mass of the leading pair), all in GeV or dimensionless, shape (n,)."""
        p = events.momenta
        order = pt(p).argsort(-1, descending=True)
        ps = torch.gather(p, 1, order.unsqueeze(-1).expand_as(p))
        return {
            "pt_j1": pt(ps[:, 0]),
            "eta_j1": pseudorapidity(ps[:, 0]),
            "pt_j2": pt(ps[:, 1]),
            "eta_j2": pseudorapidity(ps[:, 1]),
            "ht": pt(p).sum(-1),
            "m_jj": mass(ps[:, 0] + ps[:, 1]),
        }
