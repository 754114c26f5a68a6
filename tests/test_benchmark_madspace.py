"""benchmarks/madspace.py: madspace 0.2.1's mappings with our |M|² against our own samplers.

Skipped when madspace is not installed (a benchmark-only dependency). Statistical
checks are pulls in units of the combined Monte-Carlo error, |pull| < 4: a false-failure
rate of 6e-5 per check for Gaussian estimates (fixed seeds, so a pass is reproducible).
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch

pytest.importorskip("madspace")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "madspace.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("benchmark_madspace", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _pull(a: torch.Tensor, b: torch.Tensor) -> float:
    ea, eb = float(a.std()) / math.sqrt(a.numel()), float(b.std()) / math.sqrt(b.numel())
    return (float(a.mean()) - float(b.mean())) / math.hypot(ea, eb)


def test_madspace_jacobian_is_our_two_body_measure():
    """A massless 2 → 2 leptonic madspace map: ∫ dΦ_2 = 1/(8π) with the 2π factors."""
    import madspace as ms

    m = ms.PhaseSpaceMapping([0.0, 0.0, 0.0, 0.0], 13000.0, leptonic=True)
    r = torch.rand(20_000, m.random_dim(), generator=torch.Generator().manual_seed(1),
                   dtype=torch.float64)
    p, _, _, det = (torch.from_dlpack(t) for t in m.map_forward([r]))
    assert p.shape == (20_000, 4, 4)
    torch.testing.assert_close(p[:, 0] + p[:, 1], p[:, 2:].sum(1), rtol=0, atol=1e-8)
    assert torch.all(p[:, 0, 3] > 0)  # beam 1 along +z, incoming first
    err = float(det.std()) / math.sqrt(det.numel())
    assert abs(float(det.mean()) - 1 / (8 * math.pi)) < 4 * err + 1e-12


def test_drell_yan_cross_section_agrees_with_ours(bench):
    """σ(DY, 60 < m_ℓℓ < 120 GeV) through madspace's mapping (flat and with its VEGAS grid)
    equals ours on our Breit–Wigner map, within 4 combined σ; the mapped events are
    physical (momentum conservation in the lab frame, m_ℓℓ inside the window)."""
    from forward.integrand import HadronicIntegrand

    proc = bench._process("drell-yan")
    integrand = HadronicIntegrand(proc, channel=0)
    ctx = bench._context()
    ms_map = bench.MadspaceMap(bench.madspace_map("drell-yan", proc), proc.sqrt_s, ctx)
    g = torch.Generator().manual_seed(3)
    n = 40_000
    r = torch.rand(n, ms_map.dim, generator=g, dtype=torch.float64)
    events, log_jac = ms_map.forward(r)
    mll = torch.sqrt(events.shat)
    assert float(mll.min()) >= proc.mll_min and float(mll.max()) <= proc.mll_max
    pin = (events.x1 - events.x2) * proc.sqrt_s / 2
    torch.testing.assert_close(events.momenta[..., 3].sum(1), pin, rtol=1e-9, atol=1e-6)
    w_ms = bench._weights_on_map(integrand, ms_map, r)
    torch.testing.assert_close(w_ms, integrand.differential(events) * log_jac.exp())
    w_ours = integrand(torch.rand(n, integrand.dim, generator=g, dtype=torch.float64))
    assert abs(_pull(w_ms, w_ours)) < 4

    vegas = bench.MadspaceVegas(ms_map.dim, 32, ctx, "test_dy")
    for _ in range(3):
        u = torch.rand(10_000, ms_map.dim, generator=g, dtype=torch.float64)
        vegas.add_data(u, bench._weights_on_map(integrand, ms_map, u, vegas))
        vegas.optimize()
    u = torch.rand(n, ms_map.dim, generator=g, dtype=torch.float64)
    w_vegas = bench._weights_on_map(integrand, ms_map, u, vegas)
    assert abs(_pull(w_vegas, w_ours)) < 4
    # the trained grid is a real change of variables (bins moved) and not a worse sampler
    assert float(w_vegas.std()) < float(w_ms.std())


def test_madspace_integrand_with_our_matrix_element(bench):
    """madspace's compiled Integrand (its PDFs, scale, flux, flavour sampling) calling our
    Drell-Yan |M|² through the UMAMI shim: the momenta it hands over are lab-frame
    (x1 from the beams equals the mapping's), and σ equals ours within 4 combined σ."""
    import shutil

    if not any(shutil.which(c) for c in ("cc", "gcc", "clang")):
        pytest.skip("no C compiler for the UMAMI shim")
    from forward.integrand import HadronicIntegrand

    proc = bench._process("drell-yan")
    mi = bench.MadspaceIntegrand("drell-yan", proc, bench._context(), bins=16, name="t")
    ev = mi(20_000)
    assert mi.me.points > 0 and mi.me.error is None
    w, p = ev["weight"], ev["momenta"]
    assert w.shape == (20_000,) and bool(torch.isfinite(w).all())
    # madspace keeps the LO set's negative x·f (s, s̄ at large x), we clamp them to zero as
    # Pythia: negative weights only where one x is large, a few per mille of σ
    # (checked with our own PDF reader: at every negative weight one of the two sampled
    # partons has x·f < 0)
    neg = w < 0
    assert 0 < float(-w[neg].sum() / w.abs().sum()) < 0.01
    from forward.integrand import load_pdf

    x = torch.stack([p[neg, 0, 0], p[neg, 1, 0]]) * 2 / proc.sqrt_s  # (2, k)
    shat = (x[0] * x[1] * proc.sqrt_s**2).repeat(2)
    pids = sorted({q for ch in proc.flavour_channels for q in ch})
    xf = load_pdf(proc.pdf).xfxQ2_all(x.reshape(-1), shat, pids=pids).reshape(2, -1, len(pids))
    chans = torch.tensor([[pids.index(q) for q in ch] for ch in proc.flavour_channels])
    which = chans[ev["flavor_index"][neg].long()]  # (k, 2) columns into pids
    fa = xf[0].gather(1, which[:, :1]).squeeze(1)
    fb = xf[1].gather(1, which[:, 1:]).squeeze(1)
    assert bool(((fa < 0) ^ (fb < 0)).all())
    w = w.clamp(min=0)  # = our convention, event by event (|M|² >= 0, one x large at most)
    assert torch.all(p[:, 0, 3] > 0) and torch.all(p[:, 1, 3] < 0)
    torch.testing.assert_close(p[:, :2].sum(1), p[:, 2:].sum(1), rtol=1e-9, atol=1e-6)
    integrand = HadronicIntegrand(proc, channel=0)
    g = torch.Generator().manual_seed(5)
    w_ours = integrand(torch.rand(40_000, integrand.dim, generator=g, dtype=torch.float64))
    assert abs(_pull(w, w_ours)) < 4


def test_vegas_rebin_against_references(bench):
    """Flat statistics leave a uniform grid unchanged; a density piled into one bin
    pulls edges towards it; edges stay increasing from 0 to 1."""
    edges = torch.linspace(0, 1, 9, dtype=torch.float64).repeat(2, 1)
    counts = torch.full((2, 8), 10)
    flat = bench.vegas_rebin(edges, torch.ones(2, 8), counts, 0.2)
    torch.testing.assert_close(flat, edges)
    values = torch.ones(2, 8)
    values[1, 2] = 1e4
    new = bench.vegas_rebin(edges, values, counts, 0.5)
    torch.testing.assert_close(new[0], edges[0])
    assert torch.all(new[1].diff() > 0) and new[1, 0] == 0 and new[1, -1] == 1
    # by hand: smoothing spreads bin 2 over bins 1-3 (r = 1/3 each, 1e-4 elsewhere),
    # damped amounts ((1 - r) / -ln r)^0.5 = 0.779 and 0.3295, total 3.984, so 0.498 per new
    # bin; bins 1-3 ([0.125, 0.5]) start at amount 0.3295 and end at 2.667: the targets
    # 0.498, 0.996, 1.494, 1.992, 2.490 put 5 edges strictly inside (2 before)
    inside = ((new[1] > 0.125) & (new[1] < 0.5)).sum()
    assert int(inside) == 5
    with pytest.raises(ValueError, match="values"):
        bench.vegas_rebin(edges, torch.ones(2, 7), counts, 0.2)


def test_quick_summary_has_ratios(bench):
    """summarise(): medians, pulls and ratios against the named baselines."""
    rows = []
    for seed in (0, 1):
        for m, eff, rate, v in (("madspace-vegas", 0.2, 100.0, 1.0),
                                ("ours-vegas", 0.4, 300.0, 1.1)):
            rows.append({"problem": "drell-yan", "method": m, "seed": seed, "status": "ok",
                         "train_calls": 10, "train_s": 1.0, "gen_s": 1.0, "value": v,
                         "error": 0.05, "rel_std": 1.0, "unweighting_efficiency": eff,
                         "unweighted_per_s": rate, "unweighted_per_s_with_training": rate / 2})
    summary = {s["method"]: s for s in bench.summarise(rows)}
    s = summary["ours-vegas"]
    assert math.isclose(s["efficiency_ratio_vs_madspace-vegas"], 2.0)
    assert math.isclose(s["rate_ratio_vs_madspace-vegas"], 3.0)
    assert math.isclose(s["pull_vs_madspace-vegas"], 0.1 / math.hypot(0.05, 0.05))
    assert "pull_vs_madspace-vegas" not in summary["madspace-vegas"]
    assert "| ours-vegas |" in bench.markdown(bench.summarise(rows))
