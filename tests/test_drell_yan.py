"""Drell–Yan γ*/Z/Z′: couplings, widths, α_EM, |M|² against independent forms, gradients."""

from __future__ import annotations

import math

import pytest
import torch

from forward.events import HardEvents
from forward.processes import get_process
from forward.processes.drell_yan import DrellYan
from forward.processes.electroweak import (
    ALPHA_EM_MZ,
    MZ,
    SIN2_THETA_W,
    SIN2_THETA_W_BAR,
    alpha_em,
    charge,
    fermion_pair_width,
    z_width,
    zprime_width,
)

F64 = torch.float64


def _pythia(settings: list[str]):
    p8 = pytest.importorskip("pythia8mc")
    py = p8.Pythia("", False)
    for s in ["Print:quiet = on", "PDF:pSet = 18", "Beams:eCM = 13000",
              "PartonLevel:all = off", "HadronLevel:all = off", *settings]:
        assert py.readString(s), s
    assert py.init()
    return py


# -- widths and couplings ----------------------------------------------------------------
def test_widths_match_pythia_published_values():
    # Pythia 8.317 recomputes these at initialisation (docs/design.md §3)
    assert z_width().item() == pytest.approx(2.50419, rel=1e-4)
    mzp = torch.tensor(2000.0, dtype=F64)
    assert zprime_width(mzp, {}).item() == pytest.approx(63.094, rel=1e-4)


def test_widths_match_live_pythia_for_other_couplings():
    couplings = {"vd": 0.3, "au": 0.5, "ve": 0.7, "ae": -0.4, "vnu": 0.2}
    settings = ["NewGaugeBoson:ffbar2gmZZprime = on", "32:m0 = 3000"]
    settings += [f"Zprime:{k if k[1:] != 'nu' else k + 'e'} = {v}" for k, v in couplings.items()]
    py = _pythia(settings)
    ours = zprime_width(torch.tensor(3000.0, dtype=F64), couplings)
    assert ours.item() == pytest.approx(py.particleData.mWidth(32), rel=1e-9)
    assert z_width().item() == pytest.approx(py.particleData.mWidth(23), rel=1e-9)


def test_alpha_em_running_matches_pythia():
    py = _pythia(["WeakSingleBoson:ffbar2gmZ = on"])
    q2 = [1e-3, 0.1, 1.0, 10.0, 91.188**2, 1e4, 4e6, 1e8]
    ours = alpha_em(torch.tensor(q2, dtype=F64))
    ref = torch.tensor([py.coupSM.alphaEM(x) for x in q2], dtype=F64)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=0)
    assert alpha_em(torch.tensor(91.188**2, dtype=F64)).item() == pytest.approx(ALPHA_EM_MZ)
    assert torch.all(alpha_em(torch.tensor(q2, dtype=F64), "fixed") == ALPHA_EM_MZ)


def test_leptonic_width_textbook():
    # Γ(Z → ν ν̄) = G_F M³ / (12 √2 π) · (v² + a²)/... in Pythia's normalisation:
    # α κ M / 3 · (v² + a²) with v = a = 1 for neutrinos
    mz = torch.tensor(MZ, dtype=F64)
    kap = 1 / (16 * SIN2_THETA_W * (1 - SIN2_THETA_W))
    a = alpha_em(mz * mz).item()
    assert fermion_pair_width(mz, 0.0, 1.0, 1.0, quark=False).item() == pytest.approx(
        a * kap * MZ / 3 * 2, rel=1e-14)


# -- |M|² against independent forms -------------------------------------------------------
def _pdg_dsigma_dcos(shat, c, q, bosons, alpha):
    """Textbook dσ̂/dcosθ for q q̄ → ℓ⁻ℓ⁺ via γ and neutral vector bosons (PDG normalisation).

    Couplings g_V = T3/2 - Q s², g_A = T3/2 with vertex -i e/(s_W c_W) γ^μ (g_V - g_A γ5);
    dσ/dΩ = α²/(4 ŝ N_c) · ¼ Σ_XY |A_XY|² (1 ± cosθ)² with chiral couplings, which for
    the photon alone is α²/(4ŝ N_c) (1 + cos²θ) (PDG "Cross-section formulae",
    e⁺e⁻ → f f̄, generalised to several bosons).
    ``bosons``: list of (M, Γ, (gV_q, gA_q), (gV_l, gA_l), norm) with norm = 1/(s_W² c_W²).
    """
    terms = {}
    for x, sx in (("L", 1), ("R", -1)):
        for y, sy in (("L", 1), ("R", -1)):
            amp = complex(charge(q) * (-1.0), 0.0)
            for m, g, (vq, aq), (vl, al), norm in bosons:
                prop = shat / complex(shat - m * m, shat * g / m)
                amp += norm * (vq + sx * aq) * (vl + sy * al) * prop
            terms[x + y] = abs(amp) ** 2
    same = terms["LL"] + terms["RR"]
    opp = terms["LR"] + terms["RL"]
    # dσ/dΩ → dσ/dcosθ: × 2π; per colour-averaged q q̄: 1/N_c
    return 2 * math.pi * alpha**2 / (16 * shat) / 3 * (same * (1 + c) ** 2 + opp * (1 - c) ** 2)


def _sm_pdg(pid):
    t3 = 0.5 if pid in (2, 4, 12) else -0.5
    return t3 / 2 - charge(pid) * SIN2_THETA_W_BAR, t3 / 2


def _me_to_dsigma(me, shat):
    # dσ̂/dcosθ = |M|² / (32 π ŝ) for massless 2 → 2
    return me / (32 * math.pi * shat)


@pytest.mark.parametrize("mode", ["gamma_z", "zprime_only", "full"])
def test_matrix_element_against_textbook_form(mode):
    proc = DrellYan(leptons="mumu", mode=mode, alpha_em="running")
    pars = proc.params({"mzp": 1700.0, "vu": 0.2, "ae": -0.6})
    gz, gzp = proc.widths(pars)
    shat = torch.tensor([70.0, 91.1876, 105.0, 700.0, 1650.0, 1700.0, 2100.0], dtype=F64) ** 2
    cos = torch.tensor([-0.9, -0.3, 0.0, 0.2, 0.55, 0.8, 0.99], dtype=F64)
    me = proc._me_from_invariants(shat, cos, pars)
    norm = 1 / (SIN2_THETA_W * (1 - SIN2_THETA_W))
    zp = {"d": (-0.693, -1.0), "u": (0.2, 1.0), "e": (-0.08, -0.6)}
    for j, (qa, _qb) in enumerate(proc.flavour_channels):
        q = abs(qa)
        bosons = []
        if mode != "zprime_only":
            bosons.append((MZ, gz.item(), _sm_pdg(q), _sm_pdg(11), norm))
        if mode != "gamma_z":
            # Pythia's Z′ couplings are 4× the PDG-normalised ones, like the SM ones
            vq, aq = zp["u" if q % 2 == 0 else "d"]
            bosons.append((1700.0, gzp.item(), (vq / 4, aq / 4), (-0.08 / 4, -0.6 / 4), norm))
        for i in range(len(shat)):
            s, c = shat[i].item(), cos[i].item()
            c_quark = c if qa > 0 else -c  # angle from the incoming quark
            alpha = alpha_em(shat[i]).item()
            ref = _pdg_dsigma_dcos(s, c_quark, q, bosons, alpha)
            if mode == "zprime_only":  # no photon: remove the e_q e_l term
                ref = _pdg_dsigma_dcos_no_photon(s, c_quark, q, bosons, alpha)
            assert _me_to_dsigma(me[i, j], s).item() == pytest.approx(ref, rel=1e-10)


def _pdg_dsigma_dcos_no_photon(shat, c, q, bosons, alpha):
    same = opp = 0.0
    for sx in (1, -1):
        for sy in (1, -1):
            amp = 0j
            for m, g, (vq, aq), (vl, al), norm in bosons:
                amp += norm * (vq + sx * aq) * (vl + sy * al) * shat / complex(shat - m * m,
                                                                               shat * g / m)
            if sx == sy:
                same += abs(amp) ** 2
            else:
                opp += abs(amp) ** 2
    return 2 * math.pi * alpha**2 / (16 * shat) / 3 * (same * (1 + c) ** 2 + opp * (1 - c) ** 2)


def test_pure_photon_limit_of_textbook_helper():
    # the helper's photon term integrates to σ̂ = 4πα² e_q² / (9 ŝ) (colour-averaged)
    c = torch.linspace(-1, 1, 20001, dtype=F64)
    vals = torch.tensor([_pdg_dsigma_dcos(100.0, x, 2, [], 0.01) for x in c.tolist()])
    assert torch.trapezoid(vals, c).item() == pytest.approx(
        4 * math.pi * 0.01**2 * (2 / 3) ** 2 / (9 * 100.0), rel=1e-7)


def test_zprime_peak_cross_section_from_partial_widths():
    # at ŝ = M² the pure resonance gives σ̂ = 12π Γ_ee Γ_qq / (N_c M² Γ²) with Γ_qq the
    # width into one colour without QCD correction: a relation between |M|² and widths
    proc = DrellYan(leptons="ee", mode="zprime_only")
    pars = proc.params({"mzp": 2500.0, "gzp": 1.3})
    _, gam = proc.widths(pars)
    m = torch.tensor(2500.0, dtype=F64)
    c = torch.linspace(-1, 1, 4001, dtype=F64)
    me = proc._me_from_invariants(torch.full_like(c, 2500.0**2), c, pars)
    sigma = torch.trapezoid(_me_to_dsigma(me, 2500.0**2), c, dim=0)
    g_ee = fermion_pair_width(m, 0.0, -0.08 * 1.3, -1.0 * 1.3, quark=False)
    for j, (qa, _) in enumerate(proc.flavour_channels):
        v, a = (0.387, 1.0) if abs(qa) % 2 == 0 else (-0.693, -1.0)
        g_qq = fermion_pair_width(m, 0.0, v * 1.3, a * 1.3, quark=False)
        ref = 12 * math.pi * g_ee * g_qq / (3 * 2500.0**2 * gam**2)
        assert sigma[j].item() == pytest.approx(ref.item(), rel=1e-6)


def test_forward_backward_asymmetry_sign_flips_with_beam_order():
    proc = DrellYan(mode="gamma_z")
    pars = proc.params()
    shat = torch.full((2,), 200.0**2, dtype=F64)
    cos = torch.tensor([0.6, -0.6], dtype=F64)
    me = proc._me_from_invariants(shat, cos, pars)
    # column (q, q̄) at +c equals column (q̄, q) at -c; and A_FB > 0 above the Z for u ū
    torch.testing.assert_close(me[0, 0::2], me[1, 1::2], rtol=1e-14, atol=0)
    iu = proc.flavour_channels.index((2, -2))
    assert me[0, iu] > me[1, iu]


def test_matrix_element_from_events_uses_lab_momenta():
    proc = DrellYan(mode="full")
    pars = proc.params()
    maps = proc.phase_space()
    r = torch.rand(64, 4, dtype=F64, generator=torch.Generator().manual_seed(1))
    events, _ = maps[0].forward(r)
    me = proc.matrix_element(events, pars)
    # cos θ in the partonic frame from the map's own angle coordinate (θ from beam 1)
    cos = 2 * r[:, 2] - 1
    ref = proc._me_from_invariants(events.shat, cos, pars)
    torch.testing.assert_close(me, ref, rtol=1e-9, atol=0)
    assert me.shape == (64, len(proc.flavour_channels))
    assert bool((me > 0).all())


def test_gradcheck_parameters():
    proc = DrellYan(mode="full", mll_min=1500.0, mll_max=2500.0)
    names = list(proc.parameters)
    shat = torch.tensor([1600.0, 1990.0, 2010.0, 2400.0], dtype=F64) ** 2
    cos = torch.tensor([-0.7, 0.1, 0.5, 0.9], dtype=F64)
    x0 = torch.tensor([2000.0, 1.1, -0.6, -0.9, 0.4, 1.1, -0.1, -0.9, 0.8, 1.2], dtype=F64)
    assert len(x0) == len(names)

    def f(x):
        pars = proc.params(dict(zip(names, x, strict=True)))
        return proc._me_from_invariants(shat, cos, pars)

    assert torch.autograd.gradcheck(f, (x0.clone().requires_grad_(),), eps=1e-6, atol=1e-8,
                                    rtol=1e-5)
    # the width depends on every coupling, including the neutrinos'
    x = x0.clone().requires_grad_()
    gw = zprime_width(x[0], dict(zip(names[2:], x[2:], strict=True)), x[1])
    (grad,) = torch.autograd.grad(gw, x)
    assert bool((grad != 0).all())


def test_gradcheck_width_batched_parameters():
    mzp = torch.tensor([900.0, 2000.0, 4000.0], dtype=F64, requires_grad=True)
    ve = torch.tensor([-0.1, 0.3, 0.7], dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda m, v: zprime_width(m, {"ve": v}), (mzp, ve))


# -- phase space, observables --------------------------------------------------------------
def test_default_channel_follows_the_mass_window():
    def first(**kw):
        return DrellYan(**kw).phase_space()[0].s_sampling

    assert first(mll_min=60.0, mll_max=120.0).mass == pytest.approx(MZ)
    zp = first(mll_min=1500.0, mll_max=2500.0)
    assert zp.mass == 2000.0 and zp.width == pytest.approx(63.094, rel=1e-4)
    assert type(first(mll_min=200.0, mll_max=1000.0)).__name__ == "PowerLawSampling"
    assert len(DrellYan(mode="gamma_z").phase_space()) == 2
    assert len(DrellYan(mode="full").phase_space()) == 3


def test_observables_and_cuts():
    proc = DrellYan(mll_min=70.0, mll_max=110.0)
    r = torch.rand(500, 4, dtype=F64, generator=torch.Generator().manual_seed(2))
    events, _ = proc.phase_space()[0].forward(r)
    obs = proc.observables(events)
    assert bool(proc.cuts(events).all())
    assert bool(((obs["m_ll"] > 70 - 1e-9) & (obs["m_ll"] < 110 + 1e-9)).all())
    torch.testing.assert_close(obs["pt_ll"], torch.zeros(500, dtype=F64), atol=1e-7, rtol=0)
    torch.testing.assert_close(obs["y_ll"], 0.5 * torch.log(events.x1 / events.x2))
    # Collins–Soper z axis follows the pair: cos θ* = sign(y) cos θ(beam 1, ℓ⁻) at LO
    cos = 2 * r[:, 2] - 1
    torch.testing.assert_close(obs["cos_theta_cs"], torch.sign(obs["y_ll"]) * cos,
                               atol=1e-9, rtol=0)
    outside = HardEvents(events.momenta * 2.0, events.x1 * 2, events.x2 * 2, events.sqrt_s)
    assert not bool(proc.cuts(outside).any())


# -- bad input -----------------------------------------------------------------------------
def test_bad_input():
    proc = DrellYan()
    with pytest.raises(ValueError, match="unknown parameter"):
        proc.params({"mzprime": 2000.0})
    with pytest.raises(ValueError, match="mzp"):
        proc.params({"mzp": 100.0})
    with pytest.raises(ValueError, match="leptons"):
        DrellYan(leptons="tautau")
    with pytest.raises(ValueError, match="mode"):
        DrellYan(mode="z_only")
    with pytest.raises(ValueError, match="mll_max"):
        DrellYan(mll_min=200.0, mll_max=100.0)
    with pytest.raises(ValueError, match="unknown setting"):
        get_process("drell-yan", mll=3)
    ev, _ = proc.phase_space()[0].forward(torch.rand(4, 4, dtype=F64))
    mom = ev.momenta.clone()
    mom[1, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="momenta.*NaN"):
        proc.matrix_element(HardEvents(mom, ev.x1, ev.x2, ev.sqrt_s), proc.params())
    with pytest.raises(ValueError, match=r"\(n, 2, 4\)"):
        proc.matrix_element(HardEvents(torch.zeros(3, 3, 4, dtype=F64), ev.x1[:3], ev.x2[:3],
                                       ev.sqrt_s), proc.params())


def test_sample_final_state_draws_lepton_flavours():
    gen = torch.Generator().manual_seed(11)
    pids = DrellYan(leptons="both").sample_final_state(4000, generator=gen)
    assert pids.shape == (4000, 2) and bool((pids[:, 0] == -pids[:, 1]).all())
    # Binomial(4000, 1/2) is outside 2000 ± 5·31.6 with probability < 6e-7
    assert abs(int((pids[:, 0] == 13).sum()) - 2000) < 5 * 31.6
    only_mu = DrellYan(leptons="mumu").sample_final_state(5, generator=gen)
    assert bool((only_mu == torch.tensor([13, -13])).all())


@pytest.mark.parametrize("mode", ["full", "gamma_z", "zprime_only"])
@pytest.mark.parametrize("zprime_width", [None, 50.0])
def test_weighted_matrix_element_equals_the_channel_sum(mode, zprime_width):
    # the precomputed θ-expansion must reproduce Σ_c w_c |M|²_c and its gradient in every
    # parameter (couplings included) to rounding
    from forward.processes.base import Process

    p = get_process("drell-yan", mll_min=1500.0, mll_max=2500.0, mode=mode,
                    zprime_width=zprime_width)
    gen = torch.Generator().manual_seed(5)
    ev, _ = p.phase_space()[0].forward(torch.rand(2000, 4, dtype=F64, generator=gen))
    w = torch.rand(2000, len(p.flavour_channels), dtype=F64, generator=gen)
    fast, plain = p.weighted_matrix_element(ev, w), Process.weighted_matrix_element(p, ev, w)
    for values in (None, {"mzp": 2100.0, "gzp": 0.7, "vd": 0.3, "au": -0.4}):
        params = {k: v.clone().requires_grad_(True)
                  for k, v in p.params(values, dtype=F64).items()}
        a, b = fast(params), plain(params)
        torch.testing.assert_close(a, b, rtol=1e-12, atol=0.0)
        ga = torch.autograd.grad(a.sum(), list(params.values()), allow_unused=True)
        gb = torch.autograd.grad(b.sum(), list(params.values()), allow_unused=True)
        for x, y in zip(ga, gb, strict=True):
            if y is None:
                assert x is None or float(x) == 0.0
            else:
                torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-12 * float(y.abs()))
    # batched parameters fall back to the plain sum
    batch = {k: v.expand(2000) for k, v in p.params(None, dtype=F64).items()}
    torch.testing.assert_close(fast(batch), plain(batch))
