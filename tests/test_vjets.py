"""The ``z-jets`` and ``w-jets`` processes (forward.processes.vjets).

* n = 0: z-jets |M|² per channel equals the hand-written Drell–Yan (1e-10);
* n = 1: the |M|² of every channel averaged over the lepton directions in the V rest frame
  (six directions ±x̂, ±ŷ, ±ẑ: exact for the quadratic dependence) against the textbook
  q q̄ → V g and q g → V q with (4/3) q² (-g + qq/q²) for the lepton tensor, for z-jets
  (γ*/Z, and γ* alone) and w-jets (1e-10);
* beam-mirror symmetry for n = 2; channel strings, cuts, bad input (NaN, collinear jets,
  a lepton along the beam), float32, registry, CLI ``xsec`` and ``generate``;
* slow: σ(Z/γ* → e⁺e⁻ + 1 jet) against Pythia 8.317 ``WeakBosonAndParton:qqbar2gmZg``,
  ``qg2gmZq`` within 4 combined standard errors (a false failure with probability 6e-5
  when both numbers are right, Gaussian errors).
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from _helpers import seeded
from click.testing import CliRunner

from forward.events import HardEvents
from forward.kinematics import boost_from_rest_frame, mass2
from forward.processes import get_process, process_settings
from forward.processes.drell_yan import DrellYan
from forward.processes.electroweak import CKM, MW, MZ, alpha_em, kappa
from forward.processes.qcd_coupling import OneLoopAlphaS
from forward.processes.vjets import WJets, ZJets, vjets_channel_names
from forward.xsec import cross_section
from invsim.cli import cli

F64 = torch.float64

#: Pythia 8.317 at 13 TeV, ``WeakBosonAndParton:qqbar2gmZg = on``, ``qg2gmZq = on``,
#: ``WeakZ0:gmZmode = 0`` (γ*/Z with interference), ``23:onMode = off``,
#: ``23:onIfAny = 11``, ``23:mMin = 60``, ``23:mMax = 120``, ``PhaseSpace:pTHatMin = 20``,
#: ``SigmaProcess:alphaSvalue = 0.118`` (alphaSorder = 1, α_EM running at first order,
#: default scales renormScale2 = 2, factorScale2 = 1), ``PDF:pSet = 18``,
#: ``PartonLevel:all = off``, ``HadronLevel:all = off``, ``Random:seed = 2026``,
#: 10⁶ events (tests/_helpers.pythia_hard_process): σ and its error in pb.
PYTHIA_ZJ_PT20 = (380.672, 0.188)
#: Pythia 8.317 as PYTHIA_ZJ_PT20 with ``WeakBosonAndParton:qqbar2Wg = on``,
#: ``qg2Wq = on``, ``24:onMode = off``, ``24:onIfAny = 11`` (W⁺ + W⁻ → eν, ``24:mMin`` =
#: 10 GeV), ``PhaseSpace:pTHatMin = 20``, 10⁶ events: σ and its error in pb.
PYTHIA_WJ_PT20 = (3630.62, 1.89)
#: the invsim set-up of that run (sum of both charges); α_EM(M_W²) at the W vertex as
#: Pythia's branching ratio
WJ_PT20_SETTINGS = {"n_jets": 1, "pt_min": 20.0, "eta_max": None, "lepton": "e",
                    "scale": "pythia", "alpha_em_decay": "mass"}
#: the invsim set-up of the Z run
ZJ_PT20_SETTINGS = {"n_jets": 1, "pt_min": 20.0, "eta_max": None, "mll_min": 60.0,
                    "mll_max": 120.0, "mode": "gamma_z", "lepton": "e", "scale": "pythia"}


def _events(proc, npts: int, seed: int, channel: int = 0) -> HardEvents:
    gen = seeded(seed)
    ps = proc.phase_space()[channel]
    r = torch.rand(npts, ps.dim, generator=gen, dtype=F64)
    events, _ = ps.forward(r)
    return events


def _sq(k):
    return k[..., 0] ** 2 - (k[..., 1:] ** 2).sum(-1)


# -- n = 0: Drell–Yan ----------------------------------------------------------------


def test_z_plus_zero_jets_equals_drell_yan():
    proc = ZJets(n_jets=0)
    dy = DrellYan(leptons="ee", mode="gamma_z")
    events = _events(proc, 300, 1)
    me = proc.matrix_element(events, proc.params())
    ref = dy.matrix_element(events, dy.params())
    for col, pair in enumerate(dy.flavour_channels):
        torch.testing.assert_close(me[:, proc.flavour_channels.index(pair)], ref[:, col],
                                   rtol=1e-10, atol=0)
    assert bool((me.sum(-1) > 0).all())


# -- n = 1: lepton-angle average against the textbook V + jet ----------------------------


def _six_directions(events: HardEvents) -> list[HardEvents]:
    """The events with the leptons along ±x̂, ±ŷ, ±ẑ in the V rest frame (same V, jets)."""
    q = events.momenta[:, 0] + events.momenta[:, 1]
    half = 0.5 * mass2(q).sqrt()
    out = []
    for axis in range(3):
        for sign in (1.0, -1.0):
            n = torch.zeros(len(events), 4, dtype=F64)
            n[:, 0] = half
            n[:, 1 + axis] = sign * half
            nbar = n.clone()
            nbar[:, 1:] *= -1
            leptons = boost_from_rest_frame(torch.stack([n, nbar], 1), q.unsqueeze(1))
            mom = torch.cat([leptons, events.momenta[:, 2:]], 1)
            out.append(HardEvents(mom, events.x1, events.x2, events.sqrt_s))
    return out


def _textbook_average(proc, events, pair, couplings):
    """(1/states) Σ|c|²/4 · (4/3) q² · 4π α_s · (∓32)(...)/(...) for channel ``pair``."""
    ea, eb = events.x1 * events.sqrt_s / 2, events.x2 * events.sqrt_s / 2
    zero = torch.zeros_like(ea)
    pa = torch.stack([ea, zero, zero, ea], -1)
    pb = torch.stack([eb, zero, zero, -eb], -1)
    kj = events.momenta[:, 2]
    q = events.momenta[:, 0] + events.momenta[:, 1]
    q2 = _sq(q)
    s = _sq(pa + pb)
    _, mu_r2 = proc.hard_scales(events, proc.params())
    als = OneLoopAlphaS()(torch.tensor(0.118, dtype=F64), mu_r2)
    a, b = pair
    if a != 21 and b != 21:  # q q̄ → V g
        t, u = _sq(pa - kj), _sq(pb - kj)
        hadronic = 32 * (t * t + u * u + 2 * s * q2) / (t * u) / 36.0
    else:  # q g → V q (either beam): t from the quark, u from the gluon
        pq, pg = (pa, pb) if a != 21 else (pb, pa)
        t, u = _sq(pq - kj), _sq(pg - kj)
        hadronic = -32 * (s * s + u * u + 2 * t * q2) / (s * u) / 96.0
    return couplings / 4 * (4.0 / 3.0) * q2 * 4 * math.pi * als * hadronic


def _z_couplings(quark, q2, alpha, mode):
    from forward.processes.electroweak import axial_coupling, charge, vector_coupling, z_width
    gz = float(z_width("running"))
    chi = q2 / torch.complex(q2 - MZ**2, q2 * gz / MZ)
    total = torch.zeros_like(q2)
    for gq in (vector_coupling(quark) + axial_coupling(quark),
               vector_coupling(quark) - axial_coupling(quark)):
        for gl in (vector_coupling(11) + axial_coupling(11),
                   vector_coupling(11) - axial_coupling(11)):
            c = charge(quark) * charge(11) + (0 if mode == "gamma" else 1) * kappa() * gq * gl * chi
            total = total + (c.abs() * 4 * math.pi * alpha / q2) ** 2
    return total


@pytest.mark.parametrize("mode", ["gamma_z", "gamma"])
def test_z_plus_one_jet_against_textbook(mode):
    proc = ZJets(n_jets=1, pt_min=20.0, eta_max=None, mode=mode)
    events = _events(proc, 200, 2)
    events = HardEvents(events.momenta[proc.cuts(events)], events.x1[proc.cuts(events)],
                        events.x2[proc.cuts(events)], events.sqrt_s)
    avg = sum(proc.matrix_element(ev, proc.params()) for ev in _six_directions(events)) / 6
    q2 = _sq(events.momenta[:, 0] + events.momenta[:, 1])
    _, mu_r2 = proc.hard_scales(events, proc.params())
    alpha = alpha_em(mu_r2)
    assert len(events) > 50
    for col, pair in enumerate(proc.flavour_channels):
        quark = abs(next(p for p in pair if p != 21))
        ref = _textbook_average(proc, events, pair, _z_couplings(quark, q2, alpha, mode))
        torch.testing.assert_close(avg[:, col], ref, rtol=1e-10, atol=0)


@pytest.mark.parametrize("charge", ["plus", "minus"])
def test_w_plus_one_jet_against_textbook(charge):
    proc = WJets(n_jets=1, pt_min=20.0, eta_max=None, charge=charge)
    events = _events(proc, 300, 3)
    keep = proc.cuts(events)
    events = HardEvents(events.momenta[keep], events.x1[keep], events.x2[keep], events.sqrt_s)
    avg = sum(proc.matrix_element(ev, proc.params()) for ev in _six_directions(events)) / 6
    q2 = _sq(events.momenta[:, 0] + events.momenta[:, 1])
    _, mu_r2 = proc.hard_scales(events, proc.params())
    e2 = 4 * math.pi * alpha_em(mu_r2)
    bw = (q2 - MW**2) ** 2 + (q2 * proc._w_width / MW) ** 2
    sign = 1 if charge == "plus" else -1
    for col, pair in enumerate(proc.flavour_channels):
        # Σ over the flavours the jet can take: |V|² of the line's (up, down) pairs
        quarks = [p for p in pair if p != 21]
        if len(quarks) == 2:
            up, down = sorted((abs(p) for p in quarks), key=lambda f: f % 2)
            ckm2 = CKM[(up, down)] ** 2
            assert sign * (quarks[0] + quarks[1]) != 0
        else:
            f = abs(quarks[0])
            ckm2 = sum(v * v for (u, d), v in CKM.items() if u != 6 and f in (u, d))
        cpl = e2**2 * ckm2 / (4 * 0.2312**2) / bw
        ref = _textbook_average(proc, events, pair, cpl)
        torch.testing.assert_close(avg[:, col], ref, rtol=1e-10, atol=0)


def test_w_channels_have_the_charge():
    for charge, sign in (("plus", 1), ("minus", -1)):
        proc = WJets(n_jets=0, charge=charge)
        for a, b in proc.flavour_channels:
            # W⁺: the incoming charge is +1 (u d̄, c s̄, ...)
            q = sum((2 / 3 if abs(p) % 2 == 0 else -1 / 3) * (1 if p > 0 else -1)
                    for p in (a, b))
            assert math.isclose(q, sign)


# -- symmetry, channels, cuts, bad input ------------------------------------------------


def test_beam_mirror_symmetry_two_jets():
    proc = ZJets(n_jets=2, pt_min=20.0)
    events = _events(proc, 200, 4)
    me = proc.matrix_element(events, proc.params())
    flip = torch.tensor([1.0, 1.0, 1.0, -1.0], dtype=F64)
    mirrored = HardEvents(events.momenta * flip, events.x2, events.x1, events.sqrt_s)
    me_m = proc.matrix_element(mirrored, proc.params())
    for col, (a, b) in enumerate(proc.flavour_channels):
        torch.testing.assert_close(me_m[:, proc.flavour_channels.index((b, a))], me[:, col],
                                   rtol=1e-9, atol=0)
    assert bool((me.sum(-1) > 0).any())


def test_channel_strings():
    assert vjets_channel_names("z", 1) == ("qg>Vq", "qqbar>Vg")
    full = ZJets(n_jets=1)
    assert ZJets(n_jets=1, channels="qqbar>Vg, gq>qV").channels == full.channels
    only = ZJets(n_jets=1, channels="qqbar>Vg")
    assert all(21 not in pair for pair in only.flavour_channels)
    assert WJets(n_jets=2, channels="gg>Vqqbar'").flavour_channels == ((21, 21),)
    with pytest.raises(ValueError, match="channels"):
        ZJets(n_jets=1, channels="qg>Vqq")
    with pytest.raises(ValueError, match="channels"):
        ZJets(n_jets=1, channels="ud~>e+ve g")
    with pytest.raises(ValueError, match="channels"):
        ZJets(n_jets=1, channels="qg>q")
    with pytest.raises(TypeError, match="channels"):
        ZJets(n_jets=1, channels=3)
    with pytest.raises(ValueError, match="lepton"):
        ZJets(lepton="tau")
    with pytest.raises(ValueError, match="charge"):
        WJets(charge="+")
    with pytest.raises(ValueError, match="n_jets"):
        ZJets(n_jets=4)
    with pytest.raises(ValueError, match="delta_r_min"):
        WJets(n_jets=2, delta_r_min=0.0)
    with pytest.raises(ValueError, match="mll_max"):
        ZJets(mll_min=100.0, mll_max=90.0)
    with pytest.raises(ValueError, match="scale"):
        ZJets(scale="mt")


def test_cuts_and_bad_points():
    proc = ZJets(n_jets=2, pt_min=20.0, delta_r_min=0.4)
    events = _events(proc, 400, 5)
    me = proc.matrix_element(events, proc.params())
    keep = proc.cuts(events)
    assert bool((me[~keep] == 0).all()) and bool((me[keep].sum(-1) > 0).all())
    # two collinear jets (ΔR = 0 < cut): zero, finite
    mom = events.momenta.clone()
    total = mom[:, 2] + mom[:, 3]
    mom[:, 2], mom[:, 3] = 0.5 * total, 0.5 * total
    coll = HardEvents(mom, events.x1, events.x2, events.sqrt_s)
    me_c = proc.matrix_element(coll, proc.params())
    assert bool(torch.isfinite(me_c).all()) and bool((me_c == 0).all())
    # a lepton exactly along the beam: flagged (|M|² = 0), never NaN
    mom = events.momenta[keep][:4].clone()
    lep = mom[:, 0] + mom[:, 1]
    ev = HardEvents(mom, events.x1[keep][:4], events.x2[keep][:4], events.sqrt_s)
    e0 = mom[:, 0, 0]
    mom[:, 0] = torch.stack([e0, 0 * e0, 0 * e0, e0], -1)
    mom[:, 1] = lep - mom[:, 0]
    beam = HardEvents(mom, ev.x1, ev.x2, ev.sqrt_s)
    me_b = proc.matrix_element(beam, proc.params())
    assert bool(torch.isfinite(me_b).all())
    # NaN momenta: a clear error
    bad = events.momenta.clone()
    bad[0, 2, 1] = float("nan")
    with pytest.raises(ValueError, match="events.momenta"):
        proc.matrix_element(HardEvents(bad, events.x1, events.x2, events.sqrt_s),
                            proc.params())
    with pytest.raises(ValueError, match="events"):
        proc.matrix_element(HardEvents(events.momenta[:, :3], events.x1, events.x2,
                                       events.sqrt_s), proc.params())


def test_float32_matches_float64():
    proc = WJets(n_jets=1, pt_min=20.0)
    events = _events(proc, 200, 6)
    ref = proc.matrix_element(events, proc.params())
    ev32 = HardEvents(events.momenta.float(), events.x1.float(), events.x2.float(),
                      events.sqrt_s)
    got = proc.matrix_element(ev32, proc.params(dtype=torch.float32))
    assert got.dtype == torch.float32
    keep = ref.sum(-1) > 0
    torch.testing.assert_close(got[keep].double(), ref[keep], rtol=5e-3, atol=0)


def test_phase_space_channels_invert():
    for proc in (ZJets(n_jets=3), WJets(n_jets=2), ZJets(n_jets=0)):
        maps = proc.phase_space()
        assert len(maps) == (2 if isinstance(proc, ZJets) else 1)
        for ps in maps:
            assert ps.dim == 3 * (proc.n_jets + 2) - 2
            r = torch.rand(64, ps.dim, generator=seeded(7), dtype=F64)
            events, lj = ps.forward(r)
            back, lj_inv = ps.inverse(events)
            torch.testing.assert_close(back, r, rtol=0, atol=1e-8)
            torch.testing.assert_close(lj_inv, -lj, rtol=1e-8, atol=1e-8)


def test_registry_and_settings():
    proc = get_process("z-jets", n_jets=2, lepton="mu")
    assert proc.final_state == (13, -13, 21, 21)
    settings = process_settings(proc, strict=True)
    assert settings["channels"] == "gg>Vqqbar,qg>Vqg,qqbar>Vgg"
    again = get_process("z-jets", **settings)
    assert again.flavour_channels == proc.flavour_channels
    w = get_process("w-jets", charge="minus", n_jets=1)
    assert w.final_state == (11, -12, 21)
    assert process_settings(w, strict=True)["charge"] == "minus"


def test_cli_xsec_and_generate(tmp_path):
    res = CliRunner().invoke(cli, ["xsec", "z-jets", "--set", "n_jets=1", "--set",
                                   "pt_min=30", "--set", "channels=qqbar>Vg", "--events",
                                   "4000", "--seed", "1", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["process"] == "z-jets" and out["settings"]["channels"] == "qqbar>Vg"
    assert 0 < out["error_pb"] < out["sigma_pb"]
    bad = CliRunner().invoke(cli, ["xsec", "w-jets", "--set", "channels=qq>Vg", "--events",
                                   "10"])
    assert bad.exit_code != 0 and "channels" in bad.output
    path = tmp_path / "wj.h5"
    res = CliRunner().invoke(cli, ["generate", "w-jets", "--events", "30", "--set",
                                   "n_jets=1", "--train-calls", "4000", "--seed", "2", "-o",
                                   str(path)])
    assert res.exit_code == 0, res.output
    assert path.stat().st_size > 0 and "w-jets: 30 events" in res.output


# -- against Pythia ---------------------------------------------------------------------


@pytest.mark.slow
def test_z_plus_jet_cross_section_against_pythia():
    """Z/γ*(→ e⁺e⁻) + 1 jet, p_T > 20 GeV, 60 < m_ee < 120 GeV (PYTHIA_ZJ_PT20)."""
    ref, ref_err = PYTHIA_ZJ_PT20
    proc = get_process("z-jets", **ZJ_PT20_SETTINGS)
    res = cross_section(proc, 1_500_000, seed=2026, method="vegas")
    pull = (res.value - ref) / math.hypot(res.error, ref_err)
    assert abs(pull) < 4.0, (res, ref, ref_err, pull)


def test_scales():
    proc = ZJets(n_jets=1, eta_max=None)
    events = _events(proc, 50, 8)
    q = events.momenta[:, 0] + events.momenta[:, 1]
    pt2 = events.momenta[:, 2, 1] ** 2 + events.momenta[:, 2, 2] ** 2
    mt2_v = _sq(q) + q[:, 1] ** 2 + q[:, 2] ** 2
    mu_f2, mu_r2 = proc.scales(events)
    # Pythia's 2 -> 2 defaults: μ_F² = min(m_T3², m_T4²), μ_R² = m_T3 m_T4
    torch.testing.assert_close(mu_f2, torch.minimum(pt2, mt2_v), rtol=1e-10, atol=0)
    torch.testing.assert_close(mu_r2, (pt2 * mt2_v).sqrt(), rtol=1e-10, atol=0)
    ht = ZJets(n_jets=1, scale="ht").scales(events)[0]
    torch.testing.assert_close(ht, (0.5 * (mt2_v.sqrt() + pt2.sqrt())) ** 2, rtol=1e-10,
                               atol=0)
    zero = ZJets(n_jets=0)
    ev0 = _events(zero, 20, 9)
    torch.testing.assert_close(zero.scales(ev0)[1], ev0.shat, rtol=1e-10, atol=0)
    fixed = ZJets(n_jets=1, scale="fixed", mu_fixed=50.0).scales(events)
    assert bool((fixed[0] == 2500.0).all()) and bool((fixed[1] == 2500.0).all())


def test_alpha_em_at_the_boson_mass():
    base = WJets(n_jets=1, pt_min=20.0)
    alt = WJets(n_jets=1, pt_min=20.0, alpha_em_decay="mass")
    events = _events(base, 100, 10)
    _, mu_r2 = base.hard_scales(events, base.params())
    ratio = alpha_em(torch.full_like(mu_r2, MW**2)) / alpha_em(mu_r2)
    torch.testing.assert_close(alt.matrix_element(events, alt.params()),
                               base.matrix_element(events, base.params()) * ratio[:, None],
                               rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="alpha_em_decay"):
        ZJets(alpha_em_decay="mz")


@pytest.mark.slow
def test_w_plus_jet_cross_section_against_pythia():
    """W⁺ + W⁻ (→ eν) + 1 jet, p_T > 20 GeV (PYTHIA_WJ_PT20), both charges summed."""
    ref, ref_err = PYTHIA_WJ_PT20
    value, var = 0.0, 0.0
    for charge in ("plus", "minus"):
        proc = get_process("w-jets", charge=charge, **WJ_PT20_SETTINGS)
        res = cross_section(proc, 600_000, seed=2026, method="vegas")
        value, var = value + res.value, var + res.error**2
    pull = (value - ref) / math.hypot(math.sqrt(var), ref_err)
    assert abs(pull) < 4.0, (value, math.sqrt(var), ref, ref_err, pull)


def test_partonic_phase_space_volume():
    """The n = 1 decay chain integrates to Φ₃ with 60 < m_ℓℓ < 120 GeV: ∫ dm²/2π Φ₂ Φ₂ =
    [Δm² - Δm⁴/(2ŝ)]/(128π³); MC mean within 4 standard errors (false failure 6e-5)."""
    s = 300.0**2
    m1, m2 = 60.0**2, 120.0**2
    exact = ((m2 - m1) - (m2**2 - m1**2) / (2 * s)) / (128 * math.pi**3)
    for ps in ZJets(n_jets=1).phase_space():
        chain = ps.partonic
        n = 100_000
        r = torch.rand(n, chain.dim, generator=seeded(12), dtype=F64)
        big_p = torch.tensor([[300.0, 0, 0, 0]], dtype=F64).expand(n, 4)
        _, log_w = chain.forward(big_p, r, torch.full((n,), s, dtype=F64))
        w = log_w.exp()
        assert abs(float(w.mean()) - exact) < 4 * float(w.std()) / math.sqrt(n)
