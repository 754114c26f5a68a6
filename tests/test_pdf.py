"""forward.pdf: LHAPDF6 grids in torch, checked against the grid nodes, an independent
scalar re-implementation of LHAPDF's log-bicubic scheme (scipy splines), Pythia 8's own
reader, and its API contract (shapes, dtypes, autograd, errors, discovery)."""

from __future__ import annotations

import math
import shutil
import sys
import types

import numpy as np
import pytest
import torch
from scipy.interpolate import CubicHermiteSpline

from forward.alphas import RunningAlphaS
from forward.pdf import PDFSetNotFoundError, available_sets, mkPDF, search_places
from forward.pdf.discovery import find_member
from forward.pdf.grid import read_info, read_lhagrid1
from forward.pdf.interpolation import LogBicubicTable

SET = "NNPDF31_lo_as_0118"


@pytest.fixture(scope="module")
def pdf():
    return mkPDF(SET)


@pytest.fixture(scope="module")
def grid():
    return read_lhagrid1(find_member(SET).data_file)


# --------------------------------------------------------------------------- helpers
def _fd_slopes(y: np.ndarray, t: np.ndarray) -> np.ndarray:
    """LHAPDF's knot slopes along axis 0: mean of both quotients inside, one-sided at ends."""
    q = np.diff(y, axis=0) / np.diff(t).reshape(-1, *([1] * (y.ndim - 1)))
    return np.concatenate([q[:1], 0.5 * (q[:-1] + q[1:]), q[-1:]], axis=0)


def _reference_xf(x_knots, subgrids, x: float, q2: float) -> float:
    """Scalar LHAPDF-style log-bicubic value with our extrapolation policy.

    ``subgrids`` is a list of (Q knots, values of shape (n_x, n_q)) for one flavour.
    """
    logx = np.log(x_knots)
    x = min(max(x, x_knots[0]), x_knots[-1])
    q2 = min(max(q2, subgrids[0][0][0] ** 2), subgrids[-1][0][-1] ** 2)
    s = max(i for i, (q, _) in enumerate(subgrids) if q[0] ** 2 <= q2)
    q, vals = subgrids[s]
    lq = np.log(q**2)
    if len(q) == 2:  # bilinear fallback
        j = min(np.searchsorted(logx, math.log(x), side="right") - 1, len(logx) - 2)
        tx = (math.log(x) - logx[j]) / (logx[j + 1] - logx[j])
        rows = vals[j] + tx * (vals[j + 1] - vals[j])
        tq = (math.log(q2) - lq[0]) / (lq[1] - lq[0])
        return float(rows[0] + tq * (rows[1] - rows[0]))
    rows = CubicHermiteSpline(logx, vals, _fd_slopes(vals, logx), axis=0)(math.log(x))
    return float(CubicHermiteSpline(lq, rows, _fd_slopes(rows, lq))(math.log(q2)))


def _log_uniform(n, lo, hi, generator, dtype=torch.float64):
    u = torch.rand(n, dtype=dtype, generator=generator)
    return torch.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))


# ------------------------------------------------------------------ interpolation
def test_grid_nodes_reproduced_exactly(pdf, grid):
    """Every (x_i, Q_j) knot of every flavour and subgrid returns the tabulated value.

    A Q knot shared by two subgrids belongs to the upper one (as in LHAPDF)."""
    n_sub = len(grid.subgrids)
    assert n_sub >= 2
    for s, sg in enumerate(grid.subgrids):
        q = sg.q if s == n_sub - 1 else sg.q[:-1]  # the joint knot is checked with s + 1
        out = pdf.xfxQ2_all(grid.x.reshape(-1, 1), (q**2).reshape(1, -1), list(grid.pids))
        assert out.shape == (len(grid.x), len(q), len(grid.pids))
        torch.testing.assert_close(out, sg.values[:, : len(q)], rtol=1e-15, atol=0)


def test_matches_independent_scalar_reference(pdf, grid, generator):
    """Vectorised gathers vs a per-point scipy-spline version, incl. extrapolation."""
    n = 150
    x = _log_uniform(n, 3e-10, 1.0, generator)
    q = _log_uniform(n, 1.0, 2.0e5, generator)  # below Q_min = 1.65 and above 1e5 too
    joint = grid.subgrids[0].q[-1].item()
    q = torch.cat([q, torch.tensor([joint, joint * (1 - 1e-7), joint * (1 + 1e-7), 1.65, 1e5])])
    x = torch.cat([x, torch.tensor([0.01, 0.2, 0.5, 1e-9, 1.0], dtype=torch.float64)])
    q2 = q * q
    for pid in (21, 2, -1, 4, 5):
        col = grid.pids.index(pid)
        subgrids = [(sg.q.numpy(), sg.values[:, :, col].numpy()) for sg in grid.subgrids]
        ref = torch.tensor(
            [_reference_xf(grid.x.numpy(), subgrids, xi, qi)
             for xi, qi in zip(x.tolist(), q2.tolist(), strict=True)],
            dtype=torch.float64,
        )
        ours = pdf.xfxQ2(pid, x, q2)
        torch.testing.assert_close(ours, ref, rtol=1e-11, atol=1e-13)


def test_synthetic_grid_with_two_knot_subgrid(generator):
    """Random values on subgrids of 4, 2 and 5 Q knots (the 2-knot one is bilinear)."""
    x_knots = torch.cat([torch.logspace(-6, -1, 12, dtype=torch.float64),
                         torch.linspace(0.15, 1.0, 8, dtype=torch.float64)])
    qs = [torch.tensor([1.0, 1.5, 2.0, 3.0]), torch.tensor([3.0, 5.0]),
          torch.tensor([5.0, 10.0, 30.0, 100.0, 1000.0])]
    qs = [q.to(torch.float64) for q in qs]
    vals = [torch.rand(len(x_knots), len(q), 2, dtype=torch.float64, generator=generator)
            for q in qs]
    table = LogBicubicTable(x_knots, qs, vals)
    x = _log_uniform(300, 1e-6, 1.0, generator)
    q2 = _log_uniform(300, 0.8, 1.2e6, generator)
    ours = table.evaluate(x, q2, table.select(torch.tensor([1, 0, 2])))
    assert torch.all(ours[:, 2] == 0)  # the extra zero column
    for c in (0, 1):
        subgrids = [(q.numpy(), v[:, :, c].numpy()) for q, v in zip(qs, vals, strict=True)]
        ref = torch.tensor([_reference_xf(x_knots.numpy(), subgrids, a, b)
                            for a, b in zip(x.tolist(), q2.tolist(), strict=True)],
                           dtype=torch.float64)
        torch.testing.assert_close(ours[:, 1 - c], ref, rtol=1e-11, atol=1e-13)


def test_against_pythia8_reader(pdf, generator):
    """10⁴ log-uniform points, 1e-5 < x < 0.9, 10 < Q < 5000 GeV, vs Pythia's ``xf``.

    Pythia interpolates the same grid with 4-point Lagrange cubics in (ln x, ln Q), we
    with LHAPDF's Hermite cubics, so values differ at the 1e-5 level; Pythia also clips
    x·f at 0, which we apply to our values before comparing.
    """
    pythia8mc = pytest.importorskip("pythia8mc")
    py = pythia8mc.Pythia("", False)
    assert py.readString("PDF:pSet = 18")
    ref_pdf = py.getPDFPtr(2212)
    n = 10_000
    x = _log_uniform(n, 1e-5, 0.9, generator)
    q2 = _log_uniform(n, 10.0, 5000.0, generator) ** 2
    pids = [21, 2, 1, -2, -1]
    ours = pdf.xfxQ2_all(x, q2, pids).clamp(min=0)
    ref = torch.tensor(
        [[ref_pdf.xf(p, xi, qi) for p in pids] for xi, qi in zip(x.tolist(), q2.tolist(),
                                                                strict=True)],
        dtype=torch.float64,
    )
    rel = (ours - ref).abs() / ref.abs().clamp(min=1e-300)
    for j, pid in enumerate(pids):
        median = float(rel[:, j].median())
        assert median <= 1e-4, f"pid {pid}: median relative difference {median:.2e}"
        # The two cubic schemes differ most where the x grid turns from logarithmic
        # to linear spacing (x ≈ 0.1) and at large x; 99% of points agree within 1e-2.
        assert float(rel[:, j].quantile(0.99)) < 1e-2


# ------------------------------------------------------------------------- API
def test_mkpdf_from_pip_files_batch_shapes_and_dtypes(pdf, device):
    p = pdf.to(device)
    assert p.set_name == SET and p.member == 0
    assert p.x_min == pytest.approx(1e-9) and p.x_max == 1.0
    assert p.q2_min == pytest.approx(1.65**2) and p.q2_max == pytest.approx(1e10)
    x = torch.tensor([[1e-4], [1e-2], [0.3]], dtype=torch.float64, device=device)
    q2 = torch.tensor([10.0, 1e2, 1e4, 1e6], dtype=torch.float64, device=device)
    g = p.xfxQ2(21, x, q2)
    assert g.shape == (3, 4) and g.dtype == torch.float64 and g.device == p.device
    assert torch.all(torch.isfinite(g)) and torch.all(g > 0)
    p32 = p.to(dtype=torch.float32)
    assert p32.grid is p.grid  # no re-parsing
    g32 = p32.xfxQ2(21, x.float(), q2.float())
    assert g32.dtype == torch.float32
    torch.testing.assert_close(g32.double(), g, rtol=2e-5, atol=0)
    assert p.xfxQ(21, x, q2.sqrt()).allclose(g, rtol=1e-13, atol=0)
    assert float(p.xfxQ2(2, 0.1, 100.0)) == pytest.approx(float(pdf.xfxQ2(2, 0.1, 100.0)))


def test_all_flavours_equals_single_calls(pdf, generator):
    x = _log_uniform(64, 1e-6, 0.95, generator).reshape(8, 8)
    q2 = _log_uniform(8, 2.0, 1e7, generator)
    assert pdf.flavors() == [-5, -4, -3, -2, -1, 1, 2, 3, 4, 5, 21]
    allf = pdf.xfxQ2_all(x, q2)
    assert allf.shape == (8, 8, 11)
    for j, pid in enumerate(pdf.flavors()):
        assert torch.equal(allf[..., j], pdf.xfxQ2(pid, x, q2))
    custom = pdf.xfxQ2_all(x, q2, [0, 6, -2, 22, 21])
    assert torch.equal(custom[..., 0], custom[..., 4])  # 0 is the gluon
    assert torch.all(custom[..., 1] == 0) and torch.all(custom[..., 3] == 0)  # not in grid
    assert torch.equal(custom[..., 2], pdf.xfxQ2(-2, x, q2))


def test_extrapolation_policy(pdf):
    """Q² frozen at the grid's ends, x frozen below x_min (Pythia's default)."""
    x = torch.tensor([1e-3, 0.1], dtype=torch.float64)
    lo, hi = pdf.q2_min, pdf.q2_max
    assert torch.equal(pdf.xfxQ2(21, x, lo * 0.1), pdf.xfxQ2(21, x, lo))
    assert torch.equal(pdf.xfxQ2(2, x, hi * 10), pdf.xfxQ2(2, x, hi))
    assert torch.equal(pdf.xfxQ2(1, 1e-12, 100.0), pdf.xfxQ2(1, pdf.x_min, 100.0))


def test_autograd_in_x_and_q2(pdf):
    x = torch.tensor([3e-4, 0.012, 0.27, 0.63], dtype=torch.float64, requires_grad=True)
    q2 = torch.tensor([30.0, 8.0e3, 150.0, 4.0e5], dtype=torch.float64, requires_grad=True)
    out = pdf.xfxQ2_all(x, q2)
    gx, gq = torch.autograd.grad(out.sum(), (x, q2))
    assert torch.all(torch.isfinite(gx)) and torch.all(torch.isfinite(gq))
    assert torch.autograd.gradcheck(lambda a, b: pdf.xfxQ2_all(a, b, [21, 2, -1]), (x, q2))


# ------------------------------------------------------------------------- α_s
def test_alphas_from_name_runs_at_two_loops(pdf):
    assert float(pdf.alphasQ2(91.188**2)) == pytest.approx(0.118, abs=1e-15)
    q = torch.tensor([2.0, 10.0, 500.0], dtype=torch.float64)
    ref = RunningAlphaS(0.118, order=2, nf_max=5).alphasQ(q)
    torch.testing.assert_close(pdf.alphasQ(q), ref, rtol=1e-14, atol=0)
    other = mkPDF(SET, alphas_mz=0.125)
    assert float(other.alphasQ2(91.188**2)) == pytest.approx(0.125, abs=1e-15)


def test_alphas_missing_needs_explicit_value():
    p = mkPDF("GKG18_DPDF_FitA_LO")  # no .info, no as_XXXX in the name
    assert torch.all(torch.isfinite(p.xfxQ2(21, 0.01, 100.0)))
    with pytest.raises(ValueError, match="alphas_mz"):
        p.alphasQ2(100.0)
    assert float(mkPDF("GKG18_DPDF_FitA_LO", alphas_mz=0.12).alphasQ2(91.188**2)) == (
        pytest.approx(0.12, abs=1e-15)
    )


@pytest.fixture
def lhapdf_folder(tmp_path, monkeypatch, grid):
    """An LHAPDF-style set folder with a .info holding an α_s table with thresholds."""
    name = "TestSet_as_0120"
    folder = tmp_path / name
    folder.mkdir()
    shutil.copy(grid.path, folder / f"{name}_0000.dat")
    # Two runs split at the b threshold, where the knot 4.92 GeV repeats.
    qs = np.geomspace(1.65, 4.92, 8).tolist() + np.geomspace(4.92, 1e5, 30).tolist()
    run = RunningAlphaS(0.118, order=2, thresholds=(1.51, 4.92, 172.5), nf_max=5)
    vals = run.alphasQ(torch.tensor(qs, dtype=torch.float64)).tolist()
    (folder / f"{name}.info").write_text(
        "SetDesc: 'a copy for tests' # comment\n"
        "Format: lhagrid1\nNumMembers: 1\nFlavors: [-5, -4, -3, -2, -1, 1, 2, 3, 4, 5, 21]\n"
        "MZ: 91.188\nMCharm: 1.51\nMBottom: 4.92\nMTop: 172.5\n"
        f"AlphaS_Qs: [{', '.join(map(repr, qs[:6]))},\n   {', '.join(map(repr, qs[6:]))}]\n"
        f"AlphaS_Vals: [{', '.join(repr(v) for v in vals)}]\n"
    )
    monkeypatch.setenv("LHAPDF_DATA_PATH", f"/nonexistent/path:{tmp_path}")
    return name, qs, vals, run


def test_set_folder_with_info_and_ipol_alphas(lhapdf_folder, pdf):
    name, qs, vals, run = lhapdf_folder
    assert name in available_sets() and SET in available_sets()
    p = mkPDF(f"{name}/0")
    info = read_info(find_member(name).info_file)
    assert info["AlphaS_Qs"] == qs and info["SetDesc"] == "a copy for tests"
    x = torch.tensor([1e-3, 0.3], dtype=torch.float64)
    assert torch.equal(p.xfxQ2(2, x, 1e3), pdf.xfxQ2(2, x, 1e3))
    # Knots are reproduced; a repeated knot (threshold) belongs to the upper run.
    at_knots = p.alphasQ(torch.tensor(qs, dtype=torch.float64))
    torch.testing.assert_close(at_knots, torch.tensor(vals, dtype=torch.float64),
                               rtol=1e-15, atol=0)
    # Between knots: an independent Hermite spline per run, and close to the truth.
    q = _log_uniform(200, 1.7, 9.9e4, torch.Generator().manual_seed(3))
    lq = np.log(np.array(qs) ** 2)
    runs = [(0, 8), (8, 38)]
    ref = np.empty(len(q))
    for i, qi in enumerate(q.tolist()):
        a, b = runs[0] if qi < qs[8] else runs[1]
        spl = CubicHermiteSpline(lq[a:b], vals[a:b], _fd_slopes(np.array(vals[a:b]), lq[a:b]))
        ref[i] = spl(math.log(qi * qi))
    torch.testing.assert_close(p.alphasQ(q), torch.tensor(ref), rtol=1e-13, atol=0)
    # Close to the function tabulated: ~1e-6 typically; the one-sided slope at the first
    # knot above the threshold (LHAPDF's choice) costs ~1.4e-3 on that coarse interval.
    rel = ((p.alphasQ(q) - run.alphasQ(q)) / run.alphasQ(q)).abs()
    assert float(rel.median()) < 1e-5 and float(rel.max()) < 2e-3
    # Frozen above the last knot, power-law continuation below the first.
    assert float(p.alphasQ(2e5)) == pytest.approx(vals[-1], abs=1e-15)
    slope = math.log(vals[1] / vals[0]) / math.log(qs[1] ** 2 / qs[0] ** 2)
    assert float(p.alphasQ(1.0)) == pytest.approx(vals[0] * (1.0 / qs[0] ** 2) ** slope, rel=1e-13)


# --------------------------------------------------------------------- errors
def test_bad_input_errors(pdf):
    good = torch.tensor([0.1], dtype=torch.float64)
    for bad_x in (0.0, -0.2, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"x: expected momentum fractions in \(0, 1\]"):
            pdf.xfxQ2(21, torch.tensor([0.1, bad_x], dtype=torch.float64), 100.0)
    with pytest.raises(ValueError, match="q2"):
        pdf.xfxQ2(21, good, -5.0)
    with pytest.raises(ValueError, match="q2"):
        pdf.xfxQ2_all(good, float("nan"))
    with pytest.raises(TypeError, match="x"):
        pdf.xfxQ2(21, torch.tensor([1, 2]), 100.0)
    with pytest.raises(TypeError, match="q2"):
        pdf.xfxQ2(21, good, torch.tensor([100]))
    with pytest.raises(ValueError, match="pid"):
        pdf.xfxQ2(11, good, 100.0)
    with pytest.raises(TypeError, match="pid"):
        pdf.xfxQ2("g", good, 100.0)
    with pytest.raises(ValueError, match="x, q2"):
        pdf.xfxQ2(21, torch.full((3,), 0.1, dtype=torch.float64), torch.full((4,), 10.0,
                                                                              dtype=torch.float64))
    with pytest.raises(ValueError, match="pids"):
        pdf.xfxQ2_all(good, 100.0, [])
    with pytest.raises(ValueError, match="q2"):
        pdf.alphasQ2(0.0)
    with pytest.raises(ValueError, match="backend"):
        mkPDF(SET, backend="numpy")
    with pytest.raises(ValueError, match="member"):
        mkPDF(SET, member=-1)
    with pytest.raises(ValueError, match="alphas_mz"):
        mkPDF(SET, alphas_mz=2.0)
    with pytest.raises(TypeError, match="dtype"):
        mkPDF(SET, dtype=torch.int64)


def test_missing_set_lists_every_searched_place(tmp_path, monkeypatch):
    monkeypatch.setenv("LHAPDF_DATA_PATH", str(tmp_path))
    with pytest.raises(PDFSetNotFoundError) as err:
        mkPDF("NoSuchSet_as_0118")
    msg = str(err.value)
    assert isinstance(err.value, FileNotFoundError)
    for origin, folder in search_places():
        assert origin in msg and (folder is None or str(folder) in msg)
    assert str(tmp_path) in msg and "pythia8mc" in msg
    assert "pip install 'invsim[pythia]'" in msg and "LHAPDF_DATA_PATH" in msg
    with pytest.raises(PDFSetNotFoundError, match="member 7"):
        mkPDF(SET, member=7)


def test_other_pythia_grids_load(generator):
    """Pythia's copies with odd layouts: a repeated x knot (CT14qed), four subgrids."""
    x = _log_uniform(100, 1e-4, 0.8, generator)
    q2 = _log_uniform(100, 4.0, 1e6, generator)
    for name in ("CT14qed_proton", "GKG18_DPDF_FitB_NLO", "NNPDF23_lo_as_0130_qed"):
        p = mkPDF(name)
        out = p.xfxQ2_all(x, q2)
        assert out.shape == (100, len(p.flavors())) and torch.all(torch.isfinite(out))


# --------------------------------------------------------------- LHAPDF backend
def test_lhapdf_backend(pdf, monkeypatch):
    """Without lhapdf: a clear ImportError. With it: agreement with our reader."""
    try:
        import lhapdf  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="LHAPDF") as err:
            mkPDF(SET, backend="lhapdf")
        assert "backend='torch'" in str(err.value)
        return
    p = mkPDF(SET, backend="lhapdf")
    g = torch.Generator().manual_seed(5)
    x = _log_uniform(200, 1e-6, 0.9, g)
    q2 = _log_uniform(200, 3.0, 1e8, g)
    torch.testing.assert_close(p.xfxQ2_all(x, q2), pdf.xfxQ2_all(x, q2), rtol=1e-10, atol=1e-12)


def test_lhapdf_wrapper_plumbing_with_a_stand_in_module(pdf, monkeypatch):
    """The wrapper's calls, shapes and column order, through a stand-in ``lhapdf``."""

    class StandIn:
        xMin, xMax, q2Min, q2Max = pdf.x_min, pdf.x_max, pdf.q2_min, pdf.q2_max

        def flavors(self):
            return [0 if p == 21 else p for p in pdf.flavors()]

        def xfxQ2(self, pid, x, q2):
            return float(pdf.xfxQ2(pid, x, q2))

        def alphasQ2(self, q2):
            return float(pdf.alphasQ2(q2))

    fake = types.ModuleType("lhapdf")
    fake.mkPDF = lambda name, member: StandIn()
    monkeypatch.setitem(sys.modules, "lhapdf", fake)
    p = mkPDF(SET, backend="lhapdf", dtype=torch.float32)
    x = torch.tensor([[1e-3, 0.2]], dtype=torch.float64)
    q2 = torch.tensor([[50.0], [5e3]], dtype=torch.float64)
    out = p.xfxQ2_all(x, q2, [2, 21, -1])
    assert out.shape == (2, 2, 3) and out.dtype == torch.float32
    torch.testing.assert_close(out, pdf.xfxQ2_all(x, q2, [2, 21, -1]).float())
    assert p.flavors() == pdf.flavors()
    torch.testing.assert_close(p.alphasQ2(q2), pdf.alphasQ2(q2).float())


def test_pythia_grids_found_beside_a_target_install(tmp_path, monkeypatch):
    """``pip install --target DIR pythia8mc`` puts the module in DIR and the grids in
    DIR/share/Pythia8/pdfdata (as on a machine that gets packages that way)."""
    import importlib.machinery
    import importlib.util

    pytest.importorskip("pythia8mc")
    origin = tmp_path / "pythia8mc.cpython-312-x86_64-linux-gnu.so"
    spec = importlib.machinery.ModuleSpec("pythia8mc", None, origin=str(origin))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: spec if name == "pythia8mc" else real(name, *a))
    folders = [f for _, f in search_places()]
    assert (tmp_path / "share" / "Pythia8" / "pdfdata").resolve() in folders
