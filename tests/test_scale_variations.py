"""Scale factors (mur_factor/muf_factor), PDF and α_s variations, LHAPDF ids, envelopes.

The fast tests check the mechanics against independent references (α_s running,
Drell–Yan's μ_R dependence only through α_EM(μ_R²) and none with a fixed α_EM, weights
recomputed by hand). The slow test is the
issue's must-show: Drell–Yan 60 < m_ℓℓ < 120 GeV, the 7-point scale envelope and the
α_s(0.118 → 0.130) PDF shift, each against Pythia 8.317 runs with the same factors and
set. Each comparison is in units of the combined standard error, |pull| < 4 (false
failure 6e-5 per comparison, < 1e-3 for the test's 11 comparisons).
"""

from __future__ import annotations

import inspect
import json
import math
import shutil

import pytest
import torch
from _helpers import pythia_hard_process, seeded
from click.testing import CliRunner

from forward import cross_section
from forward.integrand import HadronicIntegrand
from forward.pdf import PDFSetNotFoundError, mkPDF, mkPDFs, resolve_lhapdf_id
from forward.pdf.discovery import find_member, installed_members
from forward.processes import (
    SCALE_FACTOR_SETTINGS,
    Process,
    get_process,
    process_settings,
)
from forward.processes.diphoton_jet import DiphotonJet
from forward.processes.drell_yan import DrellYan
from forward.processes.electroweak import alpha_em
from forward.processes.ttbar import TTbar, running_alpha_s
from forward.variations import (
    SEVEN_POINT,
    Variation,
    cross_section_variations,
    pdf_variations,
    scale_variations,
    variation_weights,
)
from invsim.cli import cli

F64 = torch.float64
BUILTINS = ("drell-yan", "ttbar", "diphoton-jet")


def _events(proc, n=64, seed=3):
    m = proc.phase_space()[0]
    ev, _ = m.forward(torch.rand(n, m.dim, generator=seeded(seed), dtype=F64))
    return ev


# -- the settings --------------------------------------------------------------------------
@pytest.mark.parametrize("name", BUILTINS)
def test_every_builtin_takes_the_factors_as_settings(name):
    proc = get_process(name, mur_factor=0.5, muf_factor=2)
    assert (proc.mur_factor, proc.muf_factor) == (0.5, 2.0)
    cls = type(proc)
    for key in SCALE_FACTOR_SETTINGS:
        assert key in cls.setting_names()
        assert inspect.signature(cls).parameters[key].default == 1.0
    settings = process_settings(proc, strict=True)
    assert settings["mur_factor"] == 0.5 and settings["muf_factor"] == 2.0
    rebuilt = get_process(name, **settings)  # what a saved file does
    assert (rebuilt.mur_factor, rebuilt.muf_factor) == (0.5, 2.0)
    default = get_process(name)
    assert (default.mur_factor, default.muf_factor) == (1.0, 1.0)


@pytest.mark.parametrize(("value", "error"), [(0.0, ValueError), (-1.0, ValueError),
                                               (math.inf, ValueError), (math.nan, ValueError),
                                               ("2", TypeError), (True, TypeError)])
def test_bad_factors_are_refused_naming_the_setting(value, error):
    with pytest.raises(error, match="mur_factor"):
        DrellYan(mur_factor=value)
    with pytest.raises(error, match="muf_factor"):
        TTbar(muf_factor=value)
    proc = DrellYan()
    with pytest.raises(error, match="muf_factor"):
        proc.muf_factor = value
    with pytest.raises(error, match="mur_factor"):
        Variation("x", mur_factor=value)


def test_user_processes_get_the_factors_too():
    class Wrapped(Process):
        """A user process that delegates to Drell–Yan (only its own constructor)."""

        def __init__(self, mll_min=60.0):
            self._dy = DrellYan(mode="gamma_z", mll_min=mll_min)
            self.mll_min = mll_min
            self.sqrt_s, self.parameters = self._dy.sqrt_s, self._dy.parameters
            self.final_state = self._dy.final_state
            self.flavour_channels = self._dy.flavour_channels
            self.pdf = self._dy.pdf

        def matrix_element(self, events, params):
            return self._dy.matrix_element(events, params)

        def phase_space(self, params=None):
            return self._dy.phase_space(params)

        def scales(self, events, params):
            return self._dy.scales(events, params)

    class Child(Wrapped):
        def __init__(self, **kw):
            super().__init__(**kw)

    assert Wrapped.setting_names() == ["mll_min", "mur_factor", "muf_factor"]
    proc = Child(mll_min=70.0, muf_factor=2.0)
    assert proc.mll_min == 70.0 and proc.muf_factor == 2.0 and proc.mur_factor == 1.0
    ev = _events(proc)
    mu_f2, mu_r2 = proc.hard_scales(ev, proc.params())
    assert torch.equal(mu_f2, 4.0 * ev.shat) and torch.equal(mu_r2, ev.shat)


# -- where the factors enter ---------------------------------------------------------------
@pytest.mark.parametrize("cls", [DrellYan, TTbar, DiphotonJet])
def test_hard_scales_are_the_default_scales_times_the_squared_factors(cls):
    base = cls()
    varied = cls(mur_factor=0.5, muf_factor=3.0)
    ev = _events(base)
    params = base.params()
    f0, r0 = base.scales(ev, params)
    f1, r1 = varied.hard_scales(ev, params)
    torch.testing.assert_close(f1, 9.0 * f0, rtol=1e-15, atol=0)
    torch.testing.assert_close(r1, 0.25 * r0, rtol=1e-15, atol=0)
    # the default scales themselves do not move
    f2, r2 = varied.scales(ev, params)
    assert torch.equal(f2, f0) and torch.equal(r2, r0)
    assert base.hard_scales(ev, params)[0] is not None


@pytest.mark.parametrize(("cls", "power"), [(TTbar, 2), (DiphotonJet, 1)])
def test_mur_factor_moves_alpha_s_in_the_matrix_element(cls, power):
    # |M|² ∝ α_s(μ_R)^power: the ratio is (α_s(4 μ²) / α_s(μ²))^power for mur_factor = 2
    base, varied = cls(), cls(mur_factor=2.0)
    ev = _events(base)
    params = base.params()
    ratio = varied.matrix_element(ev, params) / base.matrix_element(ev, params)
    _, mu_r2 = base.scales(ev, params)
    als = running_alpha_s(params["alpha_s"], mu_r2, 1)
    als4 = running_alpha_s(params["alpha_s"], 4.0 * mu_r2, 1)
    keep = torch.isfinite(ratio).all(-1)
    assert int(keep.sum()) > 10
    expected = ((als4 / als) ** power)[keep].unsqueeze(-1).expand_as(ratio[keep])
    torch.testing.assert_close(ratio[keep], expected, rtol=1e-12, atol=0)
    # muf_factor leaves |M|² alone
    assert torch.equal(cls(muf_factor=2.0).matrix_element(ev, params),
                       base.matrix_element(ev, params))


def test_drell_yan_mu_r_enters_only_through_alpha_em():
    # no α_s at LO; α_EM runs at μ_R² = mur_factor² ŝ as in Pythia (α_EM(Q²_ren))
    base, varied = DrellYan(), DrellYan(mur_factor=2.0)
    ev = _events(base)
    params = base.params()
    ratio = varied.matrix_element(ev, params) / base.matrix_element(ev, params)
    expected = (alpha_em(4.0 * ev.shat) / alpha_em(ev.shat)) ** 2
    torch.testing.assert_close(ratio, expected.unsqueeze(-1).expand_as(ratio), rtol=1e-12,
                               atol=0)
    assert float((expected - 1).abs().min()) > 1e-3  # a real effect
    # the θ-precomputed form (MEM, scans) applies the same scale
    w = torch.rand(len(ev), len(base.flavour_channels), generator=seeded(1), dtype=F64)
    torch.testing.assert_close(varied.weighted_matrix_element(ev, w)(params),
                               (w * varied.matrix_element(ev, params)).sum(-1), rtol=1e-12,
                               atol=0)


def test_drell_yan_fixed_alpha_em_does_not_depend_on_mu_r_but_on_mu_f():
    dy = DrellYan(mode="gamma_z", alpha_em="fixed")
    res = cross_section_variations(dy, scale_variations(), 4_000, method="plain", seed=4)
    by = {(v.mur_factor, v.muf_factor): res.results[v.name] for v in scale_variations()}
    for (mur, muf), r in by.items():
        # no coupling runs with μ_R: the μ_R variation is exactly nothing, at the same points
        assert r.value == by[(1.0, muf)].value, (mur, muf)
    for mur in (0.5, 2.0):
        assert res.shift(f"mur{mur:g}_muf1") == (0.0, 0.0)
    for muf in (0.5, 2.0):
        shift, err = res.shift(f"mur1_muf{muf:g}")
        assert abs(shift) > 20 * err > 0  # μ_F moves σ, far beyond the MC error
    assert res.shift("mur1_muf2")[0] > 0 > res.shift("mur1_muf0.5")[0]
    # factors on the process multiply those of a variation
    pre = DrellYan(mode="gamma_z", alpha_em="fixed", muf_factor=2.0)
    assert cross_section(pre, 4_000, method="plain", seed=4).value == pytest.approx(
        by[(1.0, 2.0)].value, rel=1e-13)


@pytest.mark.parametrize("method", ["plain", "vegas"])
def test_central_is_cross_section_and_shift_errors_match_a_hand_computation(method):
    dy = DrellYan(mode="gamma_z")
    res = cross_section_variations(dy, [Variation("up", muf_factor=2.0)], 3_000,
                                   method=method, seed=11, batch_size=1_000)
    assert res.central == cross_section(dy, 3_000, method=method, seed=11, batch_size=1_000)
    if method != "plain":
        return
    # by hand: the same uniform points through both integrands
    r = torch.rand(3_000, 4, generator=seeded(11), dtype=F64)
    w0 = HadronicIntegrand(dy)(r)
    w1 = HadronicIntegrand(DrellYan(mode="gamma_z", muf_factor=2.0))(r)
    assert res.results["up"].value == pytest.approx(float(w1.mean()), rel=1e-12)
    d = w1 - w0
    assert res.shift_errors["up"] == pytest.approx(float(d.std() / math.sqrt(len(d))), rel=1e-9)


def test_per_event_weights_reproduce_the_varied_cross_sections():
    dy = DrellYan(mode="gamma_z")
    variations = scale_variations() + pdf_variations([315200])
    res = cross_section_variations(dy, variations, 3_000, method="plain", seed=6)
    # the same uniform points, mapped to events: σ_k = mean(w_0 · factor_k)
    integrand = HadronicIntegrand(dy)
    r = torch.rand(3_000, integrand.dim, generator=seeded(6), dtype=F64)
    events, log_jac = integrand.map.forward(r)
    w0 = integrand(r)
    factors = variation_weights(dy, events, variations)
    assert set(factors) == set(res.results)
    assert torch.equal(factors["mur1_muf1"], (w0 > 0).to(F64))
    for name, f in factors.items():
        assert f.shape == (3_000,) and bool((f >= 0).all())
        assert float((w0 * f).mean()) == pytest.approx(res.results[name].value, rel=1e-12)
    assert float((factors["mur1_muf2"] - 1).abs().max()) > 0.05  # a real per-event effect
    with pytest.raises(TypeError, match="events"):
        variation_weights(dy, r, variations)


def test_envelope_and_json_table():
    res = cross_section_variations(DrellYan(mode="gamma_z"), scale_variations(), 2_000,
                                   method="plain", seed=2)
    env = res.envelope()
    values = {n: r.value for n, r in res.results.items()}
    assert env.low == min(values.values()) and env.high == max(values.values())
    assert values[env.low_name] == env.low and values[env.high_name] == env.high
    assert env.low_error == res.shift_errors[env.low_name]
    table = res.to_dict()
    assert set(table) == {f"mur{a:g}_muf{b:g}" for a, b in SEVEN_POINT}
    assert table["mur2_muf2"]["mur_factor"] == 2.0 and table["mur0.5_muf1"]["muf_factor"] == 1.0
    with pytest.raises(ValueError, match="name"):
        res.envelope(["nope"])
    with pytest.raises(ValueError, match="distinct"):
        cross_section_variations(DrellYan(), [Variation("a"), Variation("a")], 100)
    with pytest.raises(TypeError, match="Variation"):
        cross_section_variations(DrellYan(), [(2.0, 1.0)], 100)
    with pytest.raises(ValueError, match="distinct"):
        scale_variations([(1, 1), (1.0, 1.0)])


# -- PDFs: ids, members, α_s sets ----------------------------------------------------------
def test_mkpdf_by_lhapdf_id_and_the_alpha_s_sets():
    x = torch.tensor([1e-3, 0.1, 0.5], dtype=F64)
    by_name = mkPDF("NNPDF31_lo_as_0118")
    for spec in (315000, "315000"):
        p = mkPDF(spec)
        assert (p.set_name, p.member) == ("NNPDF31_lo_as_0118", 0)
        assert torch.equal(p.xfxQ2(2, x, 1e4), by_name.xfxQ2(2, x, 1e4))
    assert resolve_lhapdf_id(315200) == ("NNPDF31_lo_as_0130", 0)
    assert resolve_lhapdf_id(315013) == ("NNPDF31_lo_as_0118", 13)
    # both α_s grids ship with pythia8mc; each runs its own α_s(M_Z)
    a118, a130 = mkPDF(315000), mkPDF(315200)
    assert float(a118.alphasQ2(91.1876**2)) == pytest.approx(0.118, abs=2e-4)
    assert float(a130.alphasQ2(91.1876**2)) == pytest.approx(0.130, abs=2e-4)
    assert not torch.equal(a118.xfxQ2(21, x, 1e4), a130.xfxQ2(21, x, 1e4))
    with pytest.raises(PDFSetNotFoundError, match="member 1"):
        mkPDF(315001)  # Pythia ships member 0 only
    with pytest.raises(PDFSetNotFoundError, match="LHAPDF id 7"):
        mkPDF(7)
    with pytest.raises(ValueError, match="member"):
        mkPDF(315000, member=2)
    with pytest.raises(ValueError, match="lhapdf_id"):
        resolve_lhapdf_id(-5)
    with pytest.raises(TypeError, match="name"):
        mkPDF(1.5)
    assert [p.member for p in mkPDFs("NNPDF31_lo_as_0130")] == [0]


@pytest.fixture
def lhapdf_set(tmp_path, monkeypatch):
    """A set folder with two members, a .info with SetIndex, and a pdfsets.index."""
    src = find_member("NNPDF31_lo_as_0118").data_file
    name = "TestSet_lo_as_0118"
    folder = tmp_path / name
    folder.mkdir()
    for m in (0, 1):
        shutil.copy(src, folder / f"{name}_{m:04d}.dat")
    (folder / f"{name}.info").write_text("SetIndex: 990000\nNumMembers: 2\nFormat: lhagrid1\n")
    (tmp_path / "pdfsets.index").write_text("880000 IndexOnlySet 1\n")
    monkeypatch.setenv("LHAPDF_DATA_PATH", str(tmp_path))
    return name


def test_ids_from_info_and_index_and_all_members(lhapdf_set):
    assert installed_members(lhapdf_set) == [0, 1]
    pdfs = mkPDFs(lhapdf_set)
    assert [(p.set_name, p.member) for p in pdfs] == [(lhapdf_set, 0), (lhapdf_set, 1)]
    assert resolve_lhapdf_id(990001) == (lhapdf_set, 1)
    assert mkPDF(990001).member == 1
    with pytest.raises(PDFSetNotFoundError):
        resolve_lhapdf_id(990002)  # beyond NumMembers
    assert resolve_lhapdf_id(880004) == ("IndexOnlySet", 4)
    with pytest.raises(PDFSetNotFoundError, match="NoSuchSet"):
        mkPDFs("NoSuchSet")


def test_pdf_variation_changes_only_the_pdf():
    dy = DrellYan(mode="gamma_z")
    res = cross_section_variations(
        dy, pdf_variations(["NNPDF31_lo_as_0118", 315200]), 3_000, method="plain", seed=8)
    assert res.results["NNPDF31_lo_as_0118"].value == res.central.value
    assert res.shift_errors["NNPDF31_lo_as_0118"] == 0.0
    direct = cross_section(DrellYan(mode="gamma_z", pdf="NNPDF31_lo_as_0130"), 3_000,
                           method="plain", seed=8)
    assert res.results["315200"].value == pytest.approx(direct.value, rel=1e-13)
    # parameter overrides go with a variation (α_s of a hard process that has one)
    tt = TTbar()
    res = cross_section_variations(
        tt, pdf_variations([315200], params={"alpha_s": 0.130}), 2_000, method="plain",
        seed=8)
    direct = cross_section(TTbar(pdf="NNPDF31_lo_as_0130"), 2_000, params={"alpha_s": 0.130},
                           method="plain", seed=8)
    assert res.results["315200"].value == pytest.approx(direct.value, rel=1e-13)


# -- the command line ----------------------------------------------------------------------
def test_cli_scale_and_pdf_variations_json():
    args = ["xsec", "drell-yan", "--set", "mode=gamma_z", "--events", "3000", "--method",
            "plain", "--seed", "5", "--scale-variations", "--pdf-variation", "315200"]
    res = CliRunner().invoke(cli, [*args, "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    direct = cross_section_variations(
        DrellYan(mode="gamma_z"), scale_variations() + pdf_variations([315200]), 3000,
        method="plain", seed=5)
    assert out["sigma_pb"] == direct.central.value
    assert set(out["scale_variations"]) == {v.name for v in scale_variations()}
    row = out["scale_variations"]["mur0.5_muf0.5"]
    assert row["sigma_pb"] == direct.results["mur0.5_muf0.5"].value
    assert row["mur_factor"] == 0.5 and row["muf_factor"] == 0.5
    env = out["scale_envelope"]
    assert env["low"] == min(r["sigma_pb"] for r in out["scale_variations"].values())
    assert env["high_name"] in out["scale_variations"] and env["low_rel"] < 0 < env["high_rel"]
    assert out["pdf_variations"]["315200"]["pdf"] == 315200
    assert out["pdf_variations"]["315200"]["shift_pb"] > 0
    assert out["settings"]["mur_factor"] == 1.0
    text = CliRunner().invoke(cli, args)
    assert text.exit_code == 0 and "scale envelope: [" in text.output
    bad = CliRunner().invoke(cli, ["xsec", "drell-yan", "--events", "200",
                                   "--pdf-variation", "7"])
    assert bad.exit_code == 2 and "LHAPDF id 7" in bad.output
    bad = CliRunner().invoke(cli, ["xsec", "drell-yan", "--events", "200", "--set",
                                   "mur_factor=-2"])
    assert bad.exit_code == 2 and "mur_factor" in bad.output


# -- against Pythia 8.317 (slow) -----------------------------------------------------------
_DY_PYTHIA = ["WeakSingleBoson:ffbar2gmZ = on", "PhaseSpace:mHatMin = 60",
              "PhaseSpace:mHatMax = 120", "23:onMode = off", "23:onIfAny = 11 13"]


@pytest.mark.slow
def test_drell_yan_scale_envelope_and_alpha_s_shift_match_pythia(capsys):
    dy = DrellYan(mode="gamma_z", mll_min=60.0, mll_max=120.0)
    scale = scale_variations()
    res = cross_section_variations(dy, scale + pdf_variations(["NNPDF31_lo_as_0130"]),
                                   400_000, method="vegas", seed=2026)
    rows = []
    pythia = {}
    for v in scale:
        # Pythia's MultFac multiplies μ², our factors μ
        sig, err, _ = pythia_hard_process(
            _DY_PYTHIA + [f"SigmaProcess:renormMultFac = {v.mur_factor**2:g}",
                          f"SigmaProcess:factorMultFac = {v.muf_factor**2:g}"], 100_000,
            seed=31)
        pythia[v.name] = (sig, err)
        ours = res.results[v.name]
        pull = (ours.value - sig) / math.hypot(ours.error, err)
        rows.append((v.name, ours.value, ours.error, sig, err, pull))
    env = res.envelope([v.name for v in scale])
    py_low = min(pythia.values())
    py_high = max(pythia.values())
    # α_s(M_Z) 0.118 -> 0.130: NNPDF31_lo_as_0130 is Pythia's PDF:pSet = 17
    sig130, err130 = pythia_hard_process(_DY_PYTHIA + ["PDF:pSet = 17"], 100_000, seed=32)[:2]
    ours130 = res.results["NNPDF31_lo_as_0130"]
    shift, shift_err = res.shift("NNPDF31_lo_as_0130")
    py_shift = sig130 - pythia["mur1_muf1"][0]
    py_shift_err = math.hypot(err130, pythia["mur1_muf1"][1])
    rows.append(("as_0130", ours130.value, ours130.error, sig130, err130,
                 (ours130.value - sig130) / math.hypot(ours130.error, err130)))
    rows.append(("envelope low", env.low, res.results[env.low_name].error, *py_low,
                 (env.low - py_low[0]) / math.hypot(res.results[env.low_name].error,
                                                    py_low[1])))
    rows.append(("envelope high", env.high, res.results[env.high_name].error, *py_high,
                 (env.high - py_high[0]) / math.hypot(res.results[env.high_name].error,
                                                      py_high[1])))
    rows.append(("as shift", shift, shift_err, py_shift, py_shift_err,
                 (shift - py_shift) / math.hypot(shift_err, py_shift_err)))
    with capsys.disabled():
        print("\nDY 60-120 GeV, 13 TeV, NNPDF31_lo: ours (400k VEGAS) vs Pythia 8.317 (100k)")
        for name, a, ea, b, eb, pull in rows:
            print(f"  {name:14s} {a:10.2f} ± {ea:5.2f}  Pythia {b:10.2f} ± {eb:5.2f}"
                  f"  pull {pull:+.2f}")
    for row in rows:
        assert abs(row[-1]) < 4.0, row
    # the envelope is not trivially small: μ_F moves σ by about ±12%
    assert env.high / env.low > 1.15
