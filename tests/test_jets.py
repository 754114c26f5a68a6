"""The ``jets`` process (p p -> n jets through forward.amplitudes): |M|² per initial
pair against the textbook 2 -> 2 forms (ESW Table 7.1) summed over final flavours, the
g g -> g g form and five-gluon Parke–Taylor, channel selection, cuts, symmetry, bad
input, registry and CLI, and σ against Pythia 8.317 (g g -> g g, and all 2 -> 2 QCD).

The Pythia comparisons are in units of the combined standard error; |pull| < 4 fails
with probability 6e-5 per test when both numbers are right (Gaussian errors).
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from _helpers import five_gluon_parke_taylor, seeded
from click.testing import CliRunner

from forward.events import HardEvents
from forward.processes import get_process, process_settings
from forward.processes.jets import Jets, outgoing_momenta
from forward.processes.qcd_channels import channel_name, channel_names, parse_channels
from forward.processes.ttbar import running_alpha_s
from forward.xsec import cross_section
from invsim.cli import cli

F64 = torch.float64

#: Pythia 8.317 at 13 TeV with ``HardQCD:gg2gg = on``, ``PhaseSpace:pTHatMin = 100``,
#: ``PDF:pSet = 18``, ``SigmaProcess:alphaSvalue = 0.118`` (alphaSorder = 1; μ_R = μ_F =
#: p_T by default), ``PartonLevel:all = off``, ``HadronLevel:all = off``,
#: ``Random:seed = 2026``, 2·10⁶ events: σ and its error in pb (docs/design.md §4).
#: Not in forward.references.PYTHIA_REFERENCES, which ``invsim demo`` runs in full.
PYTHIA_GG2GG_PT100 = (530079.99, 187.08)
#: Pythia 8.317 as PYTHIA_GG2GG_PT100 with ``HardQCD:gg2gg, gg2qqbar, qg2qg, qq2qq,
#: qqbar2gg, qqbar2qqbarNew = on``, ``HardQCD:nQuarkNew = 5`` (all of massless 2 -> 2
#: QCD, five flavours), ``Random:seed = 2026``, 4·10⁶ events: σ and its error in pb.
PYTHIA_QCD_PT100 = (1144855.20, 301.11)
#: the invsim set-up of that run
QCD_PT100_SETTINGS = {"n_jets": 2, "pt_min": 100.0, "eta_max": None, "delta_r_min": 0.0,
                      "channels": "all", "n_quark_new": 5}
#: the invsim set-up of the g g -> g g run
GG2GG_PT100_SETTINGS = {"n_jets": 2, "pt_min": 100.0, "eta_max": None, "delta_r_min": 0.0,
                        "channels": "gg>gg"}



def _events(proc: Jets, npts: int, seed: int) -> HardEvents:
    gen = seeded(seed)
    r = torch.rand(npts, proc.phase_space()[0].dim, generator=gen, dtype=F64)
    events, _ = proc.phase_space()[0].forward(r)
    return events


def test_two_jets_against_textbook_gg_to_gg():
    proc = Jets(n_jets=2, pt_min=30.0, eta_max=None, delta_r_min=0.0, channels="gg>gg")
    assert proc.flavour_channels == ((21, 21),)
    events = _events(proc, 4000, 1)
    keep = proc.cuts(events)
    assert 100 < int(keep.sum()) < 4000  # both branches exercised
    params = proc.params({"alpha_s": 0.125})
    me = proc.matrix_element(events, params)[:, 0]
    k = outgoing_momenta(events)

    def inv(a, b):
        return 2.0 * (k[:, a, 0] * k[:, b, 0] - (k[:, a, 1:] * k[:, b, 1:]).sum(-1))

    s, t, u = inv(0, 1), inv(0, 2), inv(0, 3)
    mu2 = proc.scales(events, params)[1]
    als = running_alpha_s(torch.tensor(0.125, dtype=F64), mu2, 1)
    # averaged |M|² = g⁴ (9/2)(3 - tu/s² - su/t² - st/u²), times 1/2! for the identical gluons
    ref = 0.5 * (4 * math.pi * als) ** 2 * 4.5 * (3 - t * u / s**2 - s * u / t**2
                                                  - s * t / u**2)
    assert ((me[keep] - ref[keep]).abs() / ref[keep]).max() < 1e-10
    assert torch.equal(me[~keep], torch.zeros_like(me[~keep]))
    # μ = p_T of either gluon for 2 -> 2
    pts = torch.hypot(events.momenta[..., 1], events.momenta[..., 2])
    assert torch.allclose(mu2, pts[:, 0] ** 2, rtol=1e-12)


def _textbook_column(a, b, s, t, u, nf=5):
    """Averaged Σ_final |M|²/g⁴ of the initial pair (a, b) on labelled momenta, from ESW
    Table 7.1 (t = (p_a - k_1)²): distinct final partons give (f(t, u) + f(u, t))/2 over
    the two orderings, identical ones f/2."""
    from test_quark_amplitudes import TEXTBOOK

    def f(name, tt, uu):
        return TEXTBOOK[name][2](s, tt, uu)

    def sym(name):
        return 0.5 * (f(name, t, u) + f(name, u, t))

    if a == b == 21:
        return 0.5 * f("gg>gg", t, u) + nf * sym("gg>qqbar")
    if 21 in (a, b):
        return sym("qg>qg")
    if a == b:
        return 0.5 * f("qq>qq", t, u)
    if a == -b:
        return 0.5 * f("qqbar>gg", t, u) + sym("qqbar>qqbar") + (nf - 1) * sym(
            "qqbar>q'qbar'")
    return sym("qq'>qq'")  # q q', q̄ q̄' and q q̄' (4/9 (s² + u²)/t² for all three)


def test_two_jets_all_channels_against_textbook():
    proc = Jets(n_jets=2, pt_min=30.0, eta_max=None, delta_r_min=0.0)
    assert proc.channels.split(",") == list(channel_names(2)) and len(channel_names(2)) == 9
    assert len(proc.flavour_channels) == 11 * 11  # g, 5 quarks, 5 antiquarks per beam
    events = _events(proc, 1500, 5)
    keep = proc.cuts(events)
    params = proc.params({"alpha_s": 0.125})
    me = proc.matrix_element(events, params)
    assert me.shape == (1500, 121)
    k = outgoing_momenta(events)

    def inv(i, j):
        return 2.0 * (k[:, i, 0] * k[:, j, 0] - (k[:, i, 1:] * k[:, j, 1:]).sum(-1))

    s, t, u = inv(0, 1)[keep], inv(0, 2)[keep], inv(0, 3)[keep]
    mu2 = proc.scales(events, params)[1][keep]
    g4 = (4 * math.pi * running_alpha_s(torch.tensor(0.125, dtype=F64), mu2, 1)) ** 2
    for col, (a, b) in enumerate(proc.flavour_channels):
        ref = g4 * _textbook_column(a, b, s, t, u)
        assert ((me[keep, col] - ref).abs() / ref).max() < 1e-10, (a, b)
    assert torch.equal(me[~keep], torch.zeros_like(me[~keep]))
    # channels add up: the gluon-initiated and the quark-initiated selections
    parts = [Jets(n_jets=2, pt_min=30.0, eta_max=None, delta_r_min=0.0, channels=c)
             for c in ("gg>gg,gg>qqbar,qg>qg", "qq>qq,qq'>qq',qqbar'>qqbar',qqbar>gg,"
                       "qqbar>qqbar,qqbar>q'qbar'")]
    total = torch.zeros_like(me)
    for part in parts:
        cols = [proc.flavour_channels.index(c) for c in part.flavour_channels]
        total[:, cols] += part.matrix_element(events, params)
    assert torch.allclose(total, me, rtol=1e-12, atol=0)
    # fewer new flavours: g g -> q q̄ scales with n_quark_new
    three = Jets(n_jets=2, pt_min=30.0, eta_max=None, delta_r_min=0.0,
                 channels="gg>qqbar", n_quark_new=3)
    five = Jets(n_jets=2, pt_min=30.0, eta_max=None, delta_r_min=0.0, channels="gg>qqbar")
    assert torch.allclose(5 * three.matrix_element(events, params),
                          3 * five.matrix_element(events, params), rtol=1e-12)


def test_channel_names():
    assert channel_name((2, -2), (1, -1)) == channel_name((-1, 1), (3, -3)) == "qqbar>q'qbar'"
    assert channel_name((21, -3), (-3, 21)) == channel_name((2, 21), (21, 2)) == "qg>qg"
    assert channel_name((2, -1), (-1, 2)) == "qqbar'>qqbar'"
    assert channel_name((-2, -1), (-1, -2)) == "qq'>qq'"
    assert channel_names(3) == ("gg>ggg", "gg>qqbarg", "qg>qgg", "qqbar>ggg")
    assert parse_channels(" gq>qg , gg>gg", 2) == ("gg>gg", "qg>qg")
    assert parse_channels("all", 2) == channel_names(2)


def test_three_jets_quark_channels_finite():
    proc = Jets(n_jets=3, pt_min=20.0)
    assert proc.channels == "gg>ggg,gg>qqbarg,qg>qgg,qqbar>ggg"
    events = _events(proc, 300, 6)
    keep = proc.cuts(events)
    me = proc.matrix_element(events, proc.params())
    assert int(keep.sum()) > 10
    assert bool(torch.isfinite(me).all()) and bool((me[keep] > 0).all())
    # the g g column of "all" = gg>ggg + gg>qqbarg
    gg = proc.flavour_channels.index((21, 21))
    parts = sum(Jets(n_jets=3, pt_min=20.0, channels=c).matrix_element(
        events, proc.params())[:, 0] for c in ("gg>ggg", "gg>qqbarg"))
    assert torch.allclose(me[:, gg], parts, rtol=1e-12, atol=0)


def test_three_jets_symmetric_and_finite():
    proc = Jets(n_jets=3, pt_min=20.0, channels="gg>ggg")
    events = _events(proc, 600, 2)
    params = proc.params()
    me = proc.matrix_element(events, params)[:, 0]
    keep = proc.cuts(events)
    assert int(keep.sum()) > 20
    assert bool(torch.isfinite(me).all()) and bool((me[keep] > 0).all())
    # normalisation: the Parke–Taylor five-gluon sum, averaged over 256 initial states,
    # with 1/3! for the identical gluons and g_s⁶ at μ_R
    mu2 = proc.scales(events, params)[1]
    g2 = 4 * math.pi * running_alpha_s(torch.tensor(0.118, dtype=F64), mu2, 1)
    ref = five_gluon_parke_taylor(outgoing_momenta(events)) * g2**3 / (256 * 6)
    assert ((me[keep] - ref[keep]).abs() / ref[keep]).max() < 1e-10
    perm = HardEvents(momenta=events.momenta[:, [2, 0, 1]], x1=events.x1, x2=events.x2,
                      sqrt_s=events.sqrt_s)
    assert torch.allclose(proc.matrix_element(perm, params)[:, 0], me, rtol=1e-10, atol=0)
    # α_s enters as α_s³ at fixed scale
    fixed = Jets(n_jets=3, pt_min=20.0, scale="fixed", mu_fixed=91.188, channels="gg>ggg")
    a = fixed.matrix_element(events, fixed.params({"alpha_s": 0.11}))[:, 0]
    b = fixed.matrix_element(events, fixed.params({"alpha_s": 0.13}))[:, 0]
    assert torch.allclose(b[keep], a[keep] * (0.13 / 0.11) ** 3, rtol=1e-10)


def test_alpha_s_gradient():
    proc = Jets(n_jets=2, pt_min=30.0)
    events = _events(proc, 200, 3)
    a = torch.tensor(0.12, dtype=F64, requires_grad=True)
    me = proc.matrix_element(events, proc.params({"alpha_s": a}))
    me.sum().backward()
    assert a.grad is not None and float(a.grad) > 0


def test_bad_input_and_registry():
    with pytest.raises(ValueError, match="process: expected one of"):
        get_process("jetz")
    with pytest.raises(ValueError, match="channels"):
        Jets(channels="gg>ggg")  # a 3-jet channel for 2 jets
    with pytest.raises(ValueError, match="channels"):
        Jets(channels="qq>gg")  # not a flavour assignment of QCD
    with pytest.raises(ValueError, match="channels"):
        Jets(channels="gg>gx")
    with pytest.raises(ValueError, match="channels"):
        Jets(channels=" , ")
    with pytest.raises(TypeError, match="channels"):
        Jets(channels=["gg>gg"])
    with pytest.raises(ValueError, match="channels"):
        Jets(n_jets=3, channels="qqbar>q'qbar'g")  # two pairs and a gluon: not provided
    with pytest.raises(ValueError, match="n_quark_new"):
        Jets(n_quark_new=6)
    with pytest.raises(ValueError, match="channels"):
        Jets(channels="gg>qqbar", n_quark_new=0)
    with pytest.raises(ValueError, match="delta_r_min"):
        Jets(n_jets=3, delta_r_min=0.0)
    with pytest.raises(ValueError, match="n_jets"):
        Jets(n_jets=6)
    with pytest.raises(ValueError, match="n_jets"):
        Jets(n_jets=1)
    with pytest.raises(ValueError, match="pt_min"):
        Jets(pt_min=-1.0)
    with pytest.raises(ValueError, match="scale"):
        Jets(scale="mt")
    proc = get_process("jets", n_jets=3, pt_min=40.0)
    assert isinstance(proc, Jets) and proc.final_state == (21, 21, 21)
    assert process_settings(proc, strict=True)["pt_min"] == 40.0
    events = _events(proc, 10, 4)
    bad = events.momenta.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        proc.matrix_element(HardEvents(momenta=bad, x1=events.x1, x2=events.x2,
                                       sqrt_s=events.sqrt_s), proc.params())
    with pytest.raises(ValueError, match="shape"):
        proc.matrix_element(HardEvents(momenta=events.momenta[:, :2], x1=events.x1,
                                       x2=events.x2, sqrt_s=events.sqrt_s), proc.params())
    x1 = events.x1.clone()
    x1[3] = float("nan")
    with pytest.raises(ValueError, match="x1"):
        proc.matrix_element(HardEvents(momenta=events.momenta, x1=x1, x2=events.x2,
                                       sqrt_s=events.sqrt_s), proc.params())
    # a collinear pair (ΔR = 0 < delta_r_min) is cut: zero weight, never NaN
    col = events.momenta.clone()
    col[:, 1] = col[:, 0] * 0.5
    col[:, 2] = -(col[:, 0] * 1.5 - events.momenta.sum(1))  # keep Σk (E and p) balanced
    ev = HardEvents(momenta=col, x1=events.x1, x2=events.x2, sqrt_s=events.sqrt_s)
    me = proc.matrix_element(ev, proc.params())
    assert not bool(proc.cuts(ev).any()) and torch.equal(me, torch.zeros_like(me))


def test_cli_xsec_jets():
    res = CliRunner().invoke(cli, ["xsec", "jets", "--set", "n_jets=2", "--set", "pt_min=100",
                                   "--set", "channels=qg>gq,gg>gg", "--events", "5000",
                                   "--seed", "1", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["process"] == "jets" and out["settings"]["n_jets"] == 2
    assert out["settings"]["channels"] == "gg>gg,qg>qg"
    assert out["sigma_pb"] > 0 and out["error_pb"] < out["sigma_pb"]
    bad = CliRunner().invoke(cli, ["xsec", "jets", "--set", "channels=gg>qq", "--events", "10"])
    assert bad.exit_code != 0 and "channels" in bad.output


@pytest.mark.slow
def test_gg_to_gg_cross_section_against_pythia():
    """Pythia 8.317 HardQCD:gg2gg with pTHatMin = 100 GeV (docs/design.md §4)."""
    ref, ref_err = PYTHIA_GG2GG_PT100
    proc = get_process("jets", **GG2GG_PT100_SETTINGS)
    res = cross_section(proc, 800_000, seed=2026, method="vegas")
    pull = (res.value - ref) / math.hypot(res.error, ref_err)
    assert abs(pull) < 4.0, (res, ref, ref_err, pull)


@pytest.mark.slow
def test_qcd_cross_section_against_pythia():
    """All 2 -> 2 QCD, p_T > 100 GeV, against Pythia 8.317 (PYTHIA_QCD_PT100)."""
    ref, ref_err = PYTHIA_QCD_PT100
    proc = get_process("jets", **QCD_PT100_SETTINGS)
    res = cross_section(proc, 1_000_000, seed=2026, method="vegas")
    pull = (res.value - ref) / math.hypot(res.error, ref_err)
    assert abs(pull) < 4.0, (res, ref, ref_err, pull)


def test_cli_generate_jets(tmp_path):
    out = tmp_path / "jets.h5"
    res = CliRunner().invoke(cli, ["generate", "jets", "--events", "50", "--set", "n_jets=2",
                                   "--set", "pt_min=50", "--train-calls", "5000", "--seed", "2",
                                   "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert out.stat().st_size > 0 and "jets: 50 events" in res.output
