"""Scikit-HEP conventions: ``hist.Hist`` results, ``ax=`` on every plot, mplhep's style.

Histogram contents are compared with ``torch.histogram`` (an independent binning) on
seeded samples: exact equality up to float64 summation order. Plots are drawn into
caller-made Axes; the test checks artists were added there and that no file appears.
"""

from __future__ import annotations

import os
import subprocess
import sys

import matplotlib
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import AutoMinorLocator, NullLocator

from forward.plotting import hep_style, plot_axes
from forward.surrogate.diagnostics import plot_precision, precision_summary
from invsim.calibration import CoverageResult, SBCResult, plot_calibration
from invsim.histograms import axis_label, bin_counts, to_hist
from invsim.scan import plot_scan, scan
from invsim.unfold_diagnostics import (
    Calibration,
    histogram_ratio,
    plot_coverage,
    plot_histogram_ratios,
    plot_rank_histograms,
)

hist = pytest.importorskip("hist")

RTOL = 1e-12  # float64 sums of O(1000) terms in a different order


def _torch_hist(x, edges, w=None):
    """Reference: torch.histogram of the weights and of the squared weights."""
    w = torch.ones_like(x) if w is None else w
    return (torch.histogram(x, edges, weight=w).hist,
            torch.histogram(x, edges, weight=w * w).hist)


def _axes(n=1, rows=1):
    fig = Figure()
    FigureCanvasAgg(fig)
    return fig, fig.subplots(rows, n, squeeze=False).reshape(-1)


def _n_artists(ax) -> int:
    return len(ax.lines) + len(ax.patches) + len(ax.collections) + len(ax.texts)


def _calibration(m=400, k=2, seed=3) -> Calibration:
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(m, k, generator=g, dtype=torch.float64)
    names = tuple(f"obs{j}" for j in range(k))
    return Calibration(names, 99, (u * 100).long(), u, dict.fromkeys(names, 0.5),
                       (0.68,), dict.fromkeys(names, (0.68,)), (0.02,))


def _sbc(n=300, s=49, seed=4) -> SBCResult:
    g = torch.Generator().manual_seed(seed)
    ranks = torch.randint(0, s + 1, (n, 2), generator=g)
    alpha = torch.linspace(0, 1, 11, dtype=torch.float64)
    return SBCResult(("mu", "sigma"), torch.zeros(n, 2), ranks, s,
                     torch.tensor([0.4, 0.6]), None, None, alpha, alpha, 0.0, 0.9)


class _Gauss:
    """x_i ~ N(mu, 1 GeV): a 1-parameter likelihood for a fast scan."""

    parameter_names = ("mu",)

    def __init__(self):
        from forward.processes.base import Parameter

        self.parameters = {"mu": Parameter("mu", 0.0, -5.0, 5.0, "GeV")}
        self.x = torch.randn(50, generator=torch.Generator().manual_seed(5),
                             dtype=torch.float64)

    def log_prob(self, theta):
        return -0.5 * (self.x - theta["mu"].unsqueeze(-1)) ** 2


# ------------------------------------------------------------------------ hist.Hist
def test_histogram_ratio_to_hist_equals_torch_histogram():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(3000, generator=g, dtype=torch.float64)
    b = torch.randn(2000, generator=g, dtype=torch.float64)
    w = torch.rand(3000, generator=g, dtype=torch.float64) + 0.5
    r = histogram_ratio(a, b, 15, range=(-3.0, 3.0), weights_a=w)
    ref_a, ref_a2 = _torch_hist(a, r.edges, w)
    ref_b, ref_b2 = _torch_hist(b, r.edges)
    ha = r.to_hist("a", name="m_ll", label="lepton-pair mass", unit="GeV")
    assert isinstance(ha, hist.Hist)
    assert isinstance(ha.storage_type(), hist.storage.Weight)  # errors known: Weight()
    assert ha.axes.name == ("m_ll",) and ha.axes[0].label == "lepton-pair mass [GeV]"
    assert ha.axes[0].traits.underflow is False and ha.axes[0].traits.overflow is False
    assert torch.equal(torch.as_tensor(ha.axes[0].edges), r.edges)
    torch.testing.assert_close(torch.as_tensor(ha.values()), ref_a, rtol=RTOL, atol=0)
    torch.testing.assert_close(torch.as_tensor(ha.variances()), ref_a2, rtol=RTOL, atol=0)
    hb = r.to_hist("b", name="m_ll", unit="GeV")
    assert hb.axes[0].label == "m_ll [GeV]"
    torch.testing.assert_close(torch.as_tensor(hb.values()), ref_b, rtol=RTOL, atol=0)
    torch.testing.assert_close(torch.as_tensor(hb.variances()), ref_b2, rtol=RTOL, atol=0)
    hr = r.to_hist("ratio")
    torch.testing.assert_close(torch.as_tensor(hr.values()), ref_a / ref_b, rtol=1e-12, atol=0)
    torch.testing.assert_close(torch.as_tensor(hr.variances()), r.ratio_error**2, rtol=0,
                               atol=0)
    with pytest.raises(ValueError, match="sample"):
        r.to_hist("c")


def test_grouped_counts_variance_is_sum_of_squared_group_sums():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(40, 8, generator=g, dtype=torch.float64)
    edges = torch.linspace(-2, 2, 9, dtype=torch.float64)
    counts, var = bin_counts(x, edges)
    per_group = torch.stack([torch.histogram(row, edges).hist for row in x])
    torch.testing.assert_close(counts, per_group.sum(0), rtol=0, atol=0)
    torch.testing.assert_close(var, (per_group**2).sum(0), rtol=0, atol=0)


def test_rank_hists_equal_torch_histogram():
    cal = _calibration()
    h = cal.rank_hist(10)
    assert h.axes.name == ("observable", "u") and list(h.axes["observable"]) == ["obs0", "obs1"]
    edges = torch.linspace(0, 1, 11, dtype=torch.float64)
    for j, name in enumerate(cal.names):
        ref, ref2 = _torch_hist(cal.u[:, j], edges)
        torch.testing.assert_close(torch.as_tensor(h[name, :].values()), ref, rtol=0, atol=0)
        torch.testing.assert_close(torch.as_tensor(h[name, :].variances()), ref2, rtol=0, atol=0)
    sbc = _sbc()
    hs = sbc.rank_hist(5)
    assert hs.axes.name == ("parameter", "rank") and hs.sum().value == 2 * 300
    edges = torch.linspace(0, 50, 6, dtype=torch.float64)
    for i, name in enumerate(sbc.names):
        ref, _ = _torch_hist(sbc.ranks[:, i].double(), edges)
        torch.testing.assert_close(torch.as_tensor(hs[name, :].values()), ref, rtol=0, atol=0)


def test_to_hist_storage_and_input_errors(monkeypatch):
    edges = torch.tensor([0.0, 1.0, 3.0])
    h = to_hist(edges, torch.tensor([2.0, 5.0]), name="pt", unit="GeV", value_label="jets")
    assert isinstance(h.storage_type(), hist.storage.Double)  # no errors given
    assert h.label == "jets" and h.axes["pt"].label == "pt [GeV]"
    assert h.values().tolist() == [2.0, 5.0]
    assert axis_label("eta") == "eta" and axis_label("E", "GeV") == "E [GeV]"
    with pytest.raises(ValueError, match=r"counts: expected shape \(2,\)"):
        to_hist(edges, torch.ones(3))
    with pytest.raises(ValueError, match="variances"):
        to_hist(edges, torch.ones(2), -torch.ones(2))
    with pytest.raises(ValueError, match="edges"):
        to_hist(torch.tensor([0.0, 2.0, 1.0]), torch.ones(2))
    with pytest.raises(ValueError, match="categories"):
        to_hist(edges, torch.ones(2, 2), categories=["a", "a"])
    monkeypatch.setitem(sys.modules, "hist", None)
    with pytest.raises(ImportError, match="pip install hist"):
        to_hist(edges, torch.ones(2))


# ------------------------------------------------------------------------- plots
def _plot_calls():
    """(name, panels, call(ax, path)) for every plot function."""
    cal = _calibration()
    ratio = histogram_ratio(cal.u[:, 0], cal.u[:, 1], 8, range=(0.0, 1.0))
    sbc = _sbc()
    cov = CoverageResult(("mu",), torch.tensor([0.5, 0.9], dtype=torch.float64),
                         {"mu": torch.tensor([48, 91])}, 100, {"mu": 0.0})
    true = torch.linspace(1, 2, 50, dtype=torch.float64)
    summary, delta, pull = precision_summary(true * 1.01, true * 0.01, true)
    res = scan(_Gauss(), {"mu": torch.linspace(-1, 1, 9, dtype=torch.float64)})
    return [
        ("plot_rank_histograms", 2, lambda ax, p: plot_rank_histograms(cal, p, ax=ax)),
        ("plot_coverage", 1, lambda ax, p: plot_coverage(cal, p, ax=ax)),
        ("plot_histogram_ratios", 2,
         lambda ax, p: plot_histogram_ratios({"u": ratio}, p, units={"u": "1"}, ax=ax)),
        ("plot_calibration", 4,
         lambda ax, p: plot_calibration(p, sbc=sbc, coverage_result=cov, ax=ax)),
        ("plot_precision", 3,
         lambda ax, p: plot_precision(p, {"a": delta}, {"a": pull}, sizes=[10],
                                      summaries=[summary], title="toy", ax=ax)),
        ("plot_scan", 1, lambda ax, p: plot_scan(res, p, ax=ax)),
        ("ScanResult.plot", 1, lambda ax, p: res.plot(p, ax=ax)),
    ]


def test_every_plot_draws_into_given_axes_and_writes_no_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, panels, call in _plot_calls():
        fig, axes = _axes(panels)
        before = [_n_artists(a) for a in axes]
        out = call(axes if panels > 1 else axes[0], None)
        assert out is fig, name
        assert all(_n_artists(a) > b for a, b in zip(axes, before, strict=True)), name
        assert list(tmp_path.iterdir()) == [], name
        # with a path as well, the caller's figure is also saved
        call(axes if panels > 1 else axes[0], tmp_path / f"{name}.png")
        assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG", name
        (tmp_path / f"{name}.png").unlink()
        with pytest.raises(ValueError, match="ax: this plot has"):
            call(_axes(panels + 1)[1], None)
    with pytest.raises(TypeError, match="ax: expected a matplotlib Axes"):
        plot_coverage(_calibration(), ax="not axes")


def test_mplhep_style_applied_when_installed_and_absent_safe(monkeypatch):
    pytest.importorskip("mplhep")
    rc_before = dict(matplotlib.rcParams)
    cal = _calibration()
    fig = plot_coverage(cal)  # a new figure, nothing written
    ax = fig.axes[0]
    assert ax.yaxis.get_tick_params()["right"]  # mplhep ROOT: ticks on all sides
    assert isinstance(ax.yaxis.get_minor_locator(), AutoMinorLocator)  # and minor ticks
    with hep_style():
        assert matplotlib.rcParams["xtick.direction"] == "in"
        assert matplotlib.rcParams["font.size"] == 10.0  # sized for few-inch panels
    assert dict(matplotlib.rcParams) == rc_before  # no global style leaks out
    monkeypatch.setitem(sys.modules, "mplhep", None)  # import mplhep now fails
    fig = plot_coverage(cal)
    assert not fig.axes[0].yaxis.get_tick_params()["right"]  # matplotlib's default
    assert isinstance(fig.axes[0].yaxis.get_minor_locator(), NullLocator)
    with hep_style():
        assert matplotlib.rcParams["xtick.direction"] == rc_before["xtick.direction"]
    with plot_axes(None, 2, rows=1, figsize=(4, 2)) as (fig, axes, own):
        assert own and len(axes) == 2 and fig.get_size_inches().tolist() == [4, 2]


def test_plots_and_imports_need_neither_hist_nor_mplhep(monkeypatch, tmp_path):
    calls = _plot_calls()
    monkeypatch.setitem(sys.modules, "hist", None)
    monkeypatch.setitem(sys.modules, "mplhep", None)
    for name, _, call in calls:
        fig = call(None, None)
        assert isinstance(fig, Figure) and fig.axes, name
    code = ("import sys; sys.modules['hist'] = sys.modules['mplhep'] = None\n"
            "import invsim, invsim.histograms, invsim.unfold_diagnostics, invsim.calibration,"
            " invsim.scan, forward.plotting, forward.surrogate.diagnostics")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=tmp_path)
