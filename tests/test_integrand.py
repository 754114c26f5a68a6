"""Hadronic integrand: PDFs × |M|² × flux in pb, cuts, channels, checks, and a quadrature."""

from __future__ import annotations

import math
import time

import pytest
import torch

from forward.events import HardEvents
from forward.integrand import GEV2_TO_PB, HadronicIntegrand
from forward.processes.drell_yan import DrellYan
from forward.processes.electroweak import MZ
from forward.xsec import cross_section

F64 = torch.float64


@pytest.fixture(scope="module")
def z_integrand():
    return HadronicIntegrand(DrellYan(mode="gamma_z"))


def _events(integrand, n, seed):
    r = torch.rand(n, integrand.dim, dtype=F64, generator=torch.Generator().manual_seed(seed))
    return r, integrand.map.forward(r)


class _PythiaPDF:
    """Pythia's own x·f behind the ``xfxQ2_all`` interface (a slow per-point loop)."""

    def __init__(self):
        p8 = pytest.importorskip("pythia8mc")
        self._py = p8.Pythia("", False)
        self._py.readString("Print:quiet = on")
        self._py.readString("PDF:pSet = 18")
        self.pdf = self._py.getPDFPtr(2212)

    def xfxQ2_all(self, x, q2, pids):
        pairs = zip(x.tolist(), q2.tolist(), strict=True)
        rows = [[self.pdf.xf(p, a, b) for p in pids] for a, b in pairs]
        return torch.tensor(rows, dtype=x.dtype)


def test_differential_assembles_pdfs_flux_and_units():
    # dσ/dμ = Σ f_a f_b |M|²/(2ŝ) in pb with f = x·f / x, recomputed by hand from
    # Pythia's PDF values (which Pythia clamps at zero: also checks our clamp is a no-op)
    pdf = _PythiaPDF()
    proc = DrellYan(mode="gamma_z")
    integrand = HadronicIntegrand(proc, pdf=pdf)
    _, (events, _) = _events(integrand, 20, 4)
    ours = integrand.channel_contributions(events)
    me = proc.matrix_element(events, integrand.params)
    for i in range(len(events)):
        x1, x2, s = events.x1[i].item(), events.x2[i].item(), events.shat[i].item()
        for j, (a, b) in enumerate(proc.flavour_channels):
            fa = pdf.pdf.xf(a, x1, s) / x1
            fb = pdf.pdf.xf(b, x2, s) / x2
            ref = fa * fb * me[i, j].item() / (2 * s) * 0.3893793721e9
            assert ours[i, j].item() == pytest.approx(ref, rel=1e-12, abs=1e-300)


def test_negative_pdf_values_count_as_zero():
    class Negative:
        def xfxQ2_all(self, x, q2, pids):
            return -torch.ones(*x.shape, len(pids), dtype=x.dtype)

    integrand = HadronicIntegrand(DrellYan(), pdf=Negative())
    assert bool((integrand(torch.rand(10, 4, dtype=F64)) == 0).all())


def test_weights_are_differential_times_jacobian(z_integrand):
    r, (events, log_jac) = _events(z_integrand, 1000, 5)
    w = z_integrand(r)
    torch.testing.assert_close(w, z_integrand.differential(events) * torch.exp(log_jac))
    contrib = z_integrand.channel_contributions(events)
    assert contrib.shape == (1000, len(z_integrand.process.flavour_channels))
    torch.testing.assert_close(contrib.sum(-1), z_integrand.differential(events))
    assert bool((contrib >= 0).all()) and bool((w > 0).all())


def test_cuts_zero_the_integrand(z_integrand):
    _, (events, _) = _events(z_integrand, 50, 6)
    # scale all momenta: pair masses move outside [60, 120] GeV
    far = HardEvents(events.momenta * 3.0, events.x1, events.x2, events.sqrt_s)
    assert bool((z_integrand.differential(far) == 0).all())


def test_non_finite_weights_are_reported():
    class NaNPDF:
        def xfxQ2_all(self, x, q2, pids):
            out = torch.ones(*x.shape, len(pids), dtype=x.dtype)
            out[3] = float("nan")
            return out

    integrand = HadronicIntegrand(DrellYan(), pdf=NaNPDF())
    with pytest.raises(ValueError, match=r"NaN/inf.*shat=.*parameters"):
        integrand(torch.rand(10, 4, dtype=F64))


def test_bad_arguments():
    proc = DrellYan()
    with pytest.raises(ValueError, match="channel"):
        HadronicIntegrand(proc, channel=7)
    with pytest.raises(TypeError, match="pdf"):
        HadronicIntegrand(proc, pdf=3.0)
    with pytest.raises(ValueError, match="unknown parameter"):
        HadronicIntegrand(proc, params={"mass": 1.0})
    with pytest.raises(ValueError, match="r"):
        HadronicIntegrand(proc)(torch.rand(10, 3, dtype=F64))


def test_parameters_can_change_per_call_and_are_differentiable():
    integrand = HadronicIntegrand(DrellYan(mll_min=1500.0, mll_max=2500.0))
    r = torch.rand(200, 4, dtype=F64, generator=torch.Generator().manual_seed(8))
    gzp = torch.tensor(1.2, dtype=F64, requires_grad=True)
    w = integrand(r, params={"gzp": gzp})
    (grad,) = torch.autograd.grad(w.sum(), gzp)
    assert math.isfinite(grad.item()) and grad.item() != 0
    assert not torch.allclose(w.detach(), integrand(r))


def _quadrature_sigma(proc, n_theta=400, n_y=100):
    """σ by deterministic quadrature in (ŝ, y), the angle done exactly.

    σ = ∫ dτ dy Σ f_a(x1) f_b(x2) σ̂_ab(ŝ), x1,2 = √τ e^{±y}; σ̂ = ∫ dcosθ |M|²/(32πŝ),
    exact with 2-point Gauss–Legendre since |M|² is quadratic in cosθ. ŝ runs over the
    Breit–Wigner angle ϑ (ŝ = M² + MΓ tan ϑ) with Gauss–Legendre nodes, y likewise.
    """
    import numpy as np

    integrand = HadronicIntegrand(proc)
    pars = integrand.params
    gz, _ = proc.widths(pars)
    s, m2, mg = proc.sqrt_s**2, MZ**2, MZ * gz.item()
    lo, hi = math.atan((proc.mll_min**2 - m2) / mg), math.atan((proc.mll_max**2 - m2) / mg)
    gt, wt = np.polynomial.legendre.leggauss(n_theta)
    gy, wy = np.polynomial.legendre.leggauss(n_y)
    theta = torch.tensor(lo + (hi - lo) * (gt + 1) / 2, dtype=F64)
    w_theta = torch.tensor(wt * (hi - lo) / 2, dtype=F64)
    shat = m2 + mg * torch.tan(theta)
    dshat = (shat - m2) ** 2 / mg + mg  # dŝ/dϑ
    total = 0.0
    for c in (-1 / math.sqrt(3), 1 / math.sqrt(3)):
        me = proc._me_from_invariants(shat, torch.full_like(shat, c), pars)
        sig_hat = me / (32 * math.pi * shat.unsqueeze(-1))  # (n_theta, channels)
        tau = shat / s
        ymax = -0.5 * torch.log(tau)
        y = ymax.unsqueeze(-1) * torch.tensor(gy, dtype=F64)  # (n_theta, n_y)
        w_y = ymax.unsqueeze(-1) * torch.tensor(wy, dtype=F64)
        x1 = torch.sqrt(tau).unsqueeze(-1) * torch.exp(y)
        x2 = torch.sqrt(tau).unsqueeze(-1) * torch.exp(-y)
        q2 = shat.unsqueeze(-1).expand_as(x1)
        pids = integrand._pids
        f1 = integrand.pdf.xfxQ2_all(x1, q2, pids).clamp(min=0) / x1.unsqueeze(-1)
        f2 = integrand.pdf.xfxQ2_all(x2, q2, pids).clamp(min=0) / x2.unsqueeze(-1)
        lum = f1[..., integrand._index_a] * f2[..., integrand._index_b]  # (θ, y, ch)
        inner = (lum * sig_hat.unsqueeze(1)).sum(-1)  # (θ, y)
        total += float(((inner * w_y).sum(-1) * dshat / s * w_theta).sum())
    return total * GEV2_TO_PB


def test_monte_carlo_agrees_with_quadrature():
    # an independent check of map Jacobians, flux and units: |MC - quadrature| < 4.5σ
    # fails with probability < 1e-5 for a correct implementation (quadrature converged to ~1e-5)
    proc = DrellYan(mode="gamma_z", mll_min=80.0, mll_max=100.0)
    ref = _quadrature_sigma(proc)
    res = cross_section(proc, 200_000, seed=11, method="vegas")
    assert abs(res.value - ref) < 4.5 * res.error, (res, ref)
    assert res.error / res.value < 1e-3
    plain = cross_section(proc, 100_000, seed=12, channel=1)  # power-law channel
    assert abs(plain.value - ref) < 4.5 * plain.error, (plain, ref)


def test_throughput_report(capsys):
    integrand = HadronicIntegrand(DrellYan())
    r = torch.rand(100_000, 4, dtype=F64, generator=torch.Generator().manual_seed(9))
    integrand(r[:1000])
    t0 = time.perf_counter()
    with torch.no_grad():
        w = integrand(r)
    dt = time.perf_counter() - t0
    assert w.shape == (100_000,)
    with capsys.disabled():
        print(f"\n[integrand throughput] {1e5 / dt:.3g} events/s (CPU, batch 1e5, "
              f"{torch.get_num_threads()} threads)")
