"""Cross sections and distributions against Pythia 8.317 (hard process only, 13 TeV).

Reference numbers are docs/design.md §4 (NNPDF3.1 LO, ``PDF:pSet = 18``). Every comparison
is in units of the combined standard error of our estimate and Pythia's; a threshold
of 4σ fails with probability 6e-5 per comparison when both are right (Gaussian errors).
"""

from __future__ import annotations

import math

import pytest
import torch
from _helpers import pythia_hard_process

from forward import cross_section
from forward.integrand import HadronicIntegrand, load_pdf
from forward.kinematics import collins_soper
from forward.processes.drell_yan import DrellYan
from forward.xsec import CrossSectionResult

F64 = torch.float64

# (settings, n points, Pythia σ, Pythia error), from docs/design.md §4
REFERENCES = {
    "gamma_z_60_120": (dict(mode="gamma_z", mll_min=60.0, mll_max=120.0), 400_000,
                       3060.19, 1.81),
    "full_zp2000": (dict(mode="full", mll_min=1500.0, mll_max=2500.0), 750_000,
                    0.039138, 0.000012),
    "zprime_only_zp2000": (dict(mode="zprime_only", mll_min=1500.0, mll_max=2500.0), 300_000,
                           0.039173, 0.000023),
}


@pytest.mark.parametrize("key", sorted(REFERENCES))
def test_cross_section_matches_pythia_reference(key):
    settings, n, ref, ref_err = REFERENCES[key]
    res = cross_section(DrellYan(**settings), n, method="vegas", seed=2026)
    # our error must not dominate, so the comparison is as sharp as Pythia's number allows
    assert res.error <= ref_err, res
    pull = (res.value - ref) / math.hypot(res.error, ref_err)
    assert abs(pull) < 4.0, (res, ref, ref_err, pull)


# -- the result type and the API -----------------------------------------------------------
def test_result_validation_and_str():
    r = CrossSectionResult(1.5, 0.01, 0.3, 100, 90)
    assert str(r) == "σ = 1.5 ± 0.01 pb"
    assert r.rel_error == pytest.approx(0.01 / 1.5)
    with pytest.raises(ValueError, match="error"):
        CrossSectionResult(1.0, -1.0, 0.1, 10, 10)
    with pytest.raises(ValueError, match="n_nonzero"):
        CrossSectionResult(1.0, 0.1, 0.1, 10, 11)
    with pytest.raises(ValueError, match="value"):
        CrossSectionResult(float("nan"), 0.1, 0.1, 10, 10)
    with pytest.raises(ValueError, match="method"):
        CrossSectionResult(1.0, 0.1, 0.1, 10, 10, method="magic")
    with pytest.raises(AttributeError):
        r.value = 2.0  # frozen


def test_cross_section_arguments_and_reproducibility():
    proc = DrellYan(mode="gamma_z")
    a = cross_section(proc, 20_000, seed=5, batch_size=7_000)
    b = cross_section(proc, 20_000, generator=torch.Generator().manual_seed(5), batch_size=7_000)
    assert a == b and a.n_eval == 20_000 and a.method == "plain" and a.chi2_dof is None
    # batches do not change the result beyond rounding
    c = cross_section(proc, 20_000, seed=5, batch_size=20_000)
    assert c.value == pytest.approx(a.value, rel=1e-12)
    v = cross_section(proc, 20_000, seed=5, method="vegas")
    assert v.method == "vegas" and v.chi2_dof is not None and v.n_eval == 20_000
    # VEGAS (forward.nis.VegasMap) is seeded too, and batches only change rounding
    assert cross_section(proc, 20_000, generator=torch.Generator().manual_seed(5),
                         method="vegas") == v
    vb = cross_section(proc, 20_000, seed=5, method="vegas", batch_size=3_000)
    assert vb.value == pytest.approx(v.value, rel=1e-12) and vb.n_nonzero == v.n_nonzero
    assert v.rel_std < 0.5 * a.rel_std  # the adapted grid flattens the weights
    small = cross_section(proc, 100, seed=5, method="vegas")  # smallest allowed n
    assert small.n_eval == 100 and math.isfinite(small.value)
    with pytest.raises(ValueError, match="at least 100"):
        cross_section(proc, 99, method="vegas")
    with pytest.raises(ValueError, match="method"):
        cross_section(proc, 100, method="miser")
    with pytest.raises(ValueError, match="seed, generator"):
        cross_section(proc, 100, seed=1, generator=torch.Generator())
    with pytest.raises(ValueError, match="n:"):
        cross_section(proc, 1)
    with pytest.raises(ValueError, match="unknown parameter"):
        cross_section(proc, 100, params={"mw": 80.0})


def test_vegas_errors_are_calibrated():
    # spread of independent VEGAS estimates vs their reported errors: the ratio of the
    # sample variance to the mean squared error is χ²_{k-1}/(k-1)-distributed; with
    # k = 16 the bounds [0.25, 2.6] fail with probability < 1e-3
    proc = DrellYan(mode="zprime_only", mll_min=1500.0, mll_max=2500.0)
    pdf = load_pdf(proc.pdf)
    results = [cross_section(proc, 12_000, seed=300 + i, method="vegas", pdf=pdf)
               for i in range(16)]
    vals = torch.tensor([r.value for r in results], dtype=F64)
    errs = torch.tensor([r.error for r in results], dtype=F64)
    ratio = float(vals.var() / (errs**2).mean())
    assert 0.25 < ratio < 2.6, ratio


# -- Pythia runs (slow) --------------------------------------------------------------------
def _zprime_settings(mzp, lo, hi, gmz_mode, couplings):
    out = ["NewGaugeBoson:ffbar2gmZZprime = on", f"Zprime:gmZmode = {gmz_mode}",
           f"32:m0 = {mzp}", "32:onMode = off", "32:onIfAny = 11 13",
           f"PhaseSpace:mHatMin = {lo}", f"PhaseSpace:mHatMax = {hi}"]
    names = {"vnu": "vnue", "anu": "anue"}
    return out + [f"Zprime:{names.get(k, k)} = {v}" for k, v in couplings.items()]


SLOW_CASES = {
    # 3 TeV Z′ with other couplings, full interference
    "zp3000_couplings": (
        dict(mode="full", mll_min=2500.0, mll_max=3500.0),
        {"mzp": 3000.0, "vd": 0.3, "au": 0.5, "ve": 0.7, "ae": -0.4},
        lambda: _zprime_settings(3000, 2500, 3500, 0,
                                 {"vd": 0.3, "au": 0.5, "ve": 0.7, "ae": -0.4}),
    ),
    # a 1 TeV Z′ alone with all couplings scaled by gzp = 1.5 (Pythia: scaled by hand)
    "zp1000_gzp": (
        dict(mode="zprime_only", mll_min=800.0, mll_max=1200.0),
        {"mzp": 1000.0, "gzp": 1.5},
        lambda: _zprime_settings(1000, 800, 1200, 3, {
            k: 1.5 * v for k, v in {"vd": -0.693, "ad": -1.0, "vu": 0.387, "au": 1.0,
                                    "ve": -0.08, "ae": -1.0, "vnu": 1.0, "anu": 1.0}.items()}),
    ),
    # SM γ*/Z → e⁺e⁻ only, 200-1000 GeV (photon continuum), fixed α_EM = α(M_Z)
    "gamma_z_ee_fixed_alpha": (
        dict(mode="gamma_z", leptons="ee", alpha_em="fixed", mll_min=200.0, mll_max=1000.0),
        {},
        lambda: ["WeakSingleBoson:ffbar2gmZ = on", "23:onMode = off", "23:onIfAny = 11",
                 "PhaseSpace:mHatMin = 200", "PhaseSpace:mHatMax = 1000",
                 "SigmaProcess:alphaEMorder = -1"],
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("key", sorted(SLOW_CASES))
def test_cross_section_matches_live_pythia(key):
    settings, params, pythia_settings = SLOW_CASES[key]
    ref, ref_err, _ = pythia_hard_process(pythia_settings(), 400_000)
    res = cross_section(DrellYan(**settings), 600_000, params=params, method="vegas", seed=17)
    pull = (res.value - ref) / math.hypot(res.error, ref_err)
    assert abs(pull) < 4.0, (key, res, ref, ref_err, pull)


def _binned_chi2(sample, weights, events, bins):
    """Two-sample χ² of a weighted sample vs unweighted events, shapes only.

    Args:
        sample, weights: our observable values and weights, shape (n,).
        events: Pythia's observable values, shape (m,).
        bins: bin edges.

    Returns:
        (χ², degrees of freedom) over bins with at least 10 Pythia events.
    """
    w_hist = torch.histogram(sample, bins, weight=weights).hist
    w2_hist = torch.histogram(sample, bins, weight=weights**2).hist
    n_hist = torch.histogram(events, bins).hist
    keep = n_hist >= 10
    big_w, big_n = w_hist.sum(), n_hist.sum()
    p_ours = w_hist[keep] / big_w
    var_ours = w2_hist[keep] / big_w**2
    p_py = n_hist[keep] / big_n
    var_py = n_hist[keep] / big_n**2
    chi2 = ((p_ours - p_py) ** 2 / (var_ours + var_py)).sum()
    return float(chi2), int(keep.sum()) - 1


@pytest.mark.slow
def test_distributions_match_pythia_events():
    # m_ll, Collins–Soper cos θ*, y_ll of weighted events vs Pythia's unweighted hard
    # events, full γ*/Z/Z′ interference around a 2 TeV Z′. Each χ² is compared with the
    # 1 - 1e-4 quantile of χ²_dof: the test fails with probability < 3e-4 when the shapes
    # agree (three observables).
    scipy_stats = pytest.importorskip("scipy.stats")
    settings = _zprime_settings(2000, 1500, 2500, 0, {})
    _, _, mom = pythia_hard_process(settings, 150_000, seed=11, keep_events=True)
    proc = DrellYan(mode="full", mll_min=1500.0, mll_max=2500.0)
    integrand = HadronicIntegrand(proc)
    gen = torch.Generator().manual_seed(23)
    obs, weights = [], []
    for _ in range(6):
        r = torch.rand(200_000, integrand.dim, dtype=F64, generator=gen)
        events, w, _ = integrand.sample(r)
        obs.append(proc.observables(events))
        weights.append(w.sum(-1))
    w = torch.cat(weights)
    ours = {k: torch.cat([o[k] for o in obs]) for k in ("m_ll", "cos_theta_cs", "y_ll")}
    q = mom[:, 0] + mom[:, 1]
    theirs = {
        "m_ll": torch.sqrt(q[:, 0] ** 2 - (q[:, 1:] ** 2).sum(-1)),
        "cos_theta_cs": collins_soper(mom[:, 0], mom[:, 1])[0],
        "y_ll": 0.5 * torch.log((q[:, 0] + q[:, 3]) / (q[:, 0] - q[:, 3])),
    }
    bins = {
        "m_ll": torch.linspace(1500, 2500, 26, dtype=F64),
        "cos_theta_cs": torch.linspace(-1, 1, 21, dtype=F64),
        "y_ll": torch.linspace(-2.5, 2.5, 21, dtype=F64),
    }
    for name in bins:
        chi2, dof = _binned_chi2(ours[name], w, theirs[name], bins[name])
        limit = scipy_stats.chi2.ppf(1 - 1e-4, dof)
        assert chi2 < limit, (name, chi2, dof, limit)
