"""forward.alphas: running α_s against an ODE solution, Pythia 8, and its own invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from forward.alphas import RunningAlphaS, beta_coefficients

MZ = 91.188
THRESHOLDS = (1.5, 4.8, 171.0)


def _ode_alphas(alpha_mz: float, q: float, order: int, nf_max: int = 6) -> float:
    """α_s(Q) by integrating the β-function numerically, flavour region by region."""
    edges = [2 * math.log(m) for m in THRESHOLDS[: nf_max - 3]]

    def nf_at(log_q2: float) -> int:
        return 3 + sum(1 for e in edges if log_q2 > e)

    def rhs(_, a, nf):
        b0 = 11 - 2 * nf / 3
        b1 = (102 - 38 * nf / 3) if order == 2 else 0.0
        return [-b0 * a[0] ** 2 / (4 * math.pi) - b1 * a[0] ** 3 / (4 * math.pi) ** 2]

    start, stop = 2 * math.log(MZ), 2 * math.log(q)
    # Break the path at the thresholds it crosses.
    cuts = sorted({e for e in edges if min(start, stop) < e < max(start, stop)},
                  reverse=stop < start)
    points = [start, *cuts, stop]
    a = alpha_mz
    for lo, hi in zip(points[:-1], points[1:], strict=True):
        nf = nf_at(0.5 * (lo + hi))
        sol = solve_ivp(rhs, (lo, hi), [a], args=(nf,), rtol=1e-12, atol=1e-15, method="DOP853")
        a = float(sol.y[0, -1])
    return a


@pytest.mark.parametrize("order", [1, 2])
def test_running_matches_numerical_ode(order):
    als = RunningAlphaS(0.118, order=order)
    qs = np.geomspace(1.1, 1.0e4, 25).tolist() + [1.5 * 1.001, 4.8 * 0.999, 171.0 * 1.01, 172.5]
    ours = als.alphasQ(torch.tensor(qs, dtype=torch.float64))
    ref = torch.tensor([_ode_alphas(0.118, q, order) for q in qs], dtype=torch.float64)
    rel = ((ours - ref) / ref).abs()
    assert float(rel.max()) < 1e-6, f"max relative difference {float(rel.max()):.2e}"


def test_one_loop_equals_pythia_alphastrong():
    pythia8mc = pytest.importorskip("pythia8mc")
    py = pythia8mc.AlphaStrong()
    py.init(0.118, 1, 6, False)  # value, order, nf_max, CMW
    als = RunningAlphaS(0.118, order=1)
    qs = np.geomspace(1.2, 5.0e3, 40)
    ours = als.alphasQ(torch.tensor(qs, dtype=torch.float64))
    ref = torch.tensor([py.alphaS(q * q) for q in qs], dtype=torch.float64)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=0)


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("mz", [MZ, 91.1876])
def test_value_at_mz_is_the_input(order, mz):
    als = RunningAlphaS(0.1234, order=order, mz=mz)
    assert abs(float(als.alphasQ2(mz * mz)) - 0.1234) < 1e-15


@pytest.mark.parametrize("order", [1, 2])
def test_continuous_across_thresholds_and_nf_steps(order):
    als = RunningAlphaS(0.118, order=order)
    for m in THRESHOLDS:
        eps = 1e-9
        q2 = torch.tensor([m * m * (1 - eps), m * m * (1 + eps)], dtype=torch.float64)
        below, above = als.alphasQ2(q2)
        # |dα/d ln Q²| = β₀α²/4π + ... < α for α < 0.5, so a continuous α_s moves less
        # than 2·eps·α over the 2·eps step in ln Q²; a mismatch in the matching would
        # show as a jump of order 1e-3.
        assert abs(float(above - below)) < 2 * eps * float(below)
        nf = als.nf(q2)
        assert int(nf[1]) == int(nf[0]) + 1


@pytest.mark.parametrize("order", [1, 2])
def test_gradient_is_the_beta_function(order):
    als = RunningAlphaS(0.118, order=order)
    q2 = torch.tensor([3.0, 20.0, 500.0, 1.0e5], dtype=torch.float64, requires_grad=True)
    a = als.alphasQ2(q2)
    (grad,) = torch.autograd.grad(a.sum(), q2)
    dlog = grad * q2  # dα/d ln Q²
    nf = als.nf(q2.detach())
    expected = []
    for ai, n in zip(a.detach().tolist(), nf.tolist(), strict=True):
        b0, b1 = beta_coefficients(int(n))
        b1 = b1 if order == 2 else 0.0
        expected.append(-b0 * ai**2 / (4 * math.pi) - b1 * ai**3 / (4 * math.pi) ** 2)
    torch.testing.assert_close(dlog.detach(), torch.tensor(expected, dtype=torch.float64),
                               rtol=1e-9, atol=0)


def test_gradient_in_alpha_s_mz_matches_finite_difference():
    a0 = torch.tensor(0.118, dtype=torch.float64, requires_grad=True)
    q2 = torch.tensor([2.0, 30.0, 4.0e4], dtype=torch.float64)
    (g,) = torch.autograd.grad(RunningAlphaS(a0, order=2).alphasQ2(q2).sum(), a0)
    h = 1e-6
    up = RunningAlphaS(0.118 + h, order=2).alphasQ2(q2).sum()
    dn = RunningAlphaS(0.118 - h, order=2).alphasQ2(q2).sum()
    assert abs(float(g) - float(up - dn) / (2 * h)) < 1e-6 * abs(float(g))


def test_frozen_below_q_min_and_dtype_follows_input():
    als = RunningAlphaS(0.118, order=2, q_min=1.0)
    frozen = als.alphasQ(torch.tensor([0.3, 0.7, 1.0], dtype=torch.float64))
    assert torch.all(frozen == frozen[-1])
    assert als.alphasQ2(torch.tensor([100.0], dtype=torch.float32)).dtype == torch.float32
    assert als.alphasQ2(100.0).dtype == torch.float64


def test_bad_input():
    with pytest.raises(ValueError, match="order"):
        RunningAlphaS(0.118, order=3)
    with pytest.raises(ValueError, match="alpha_s_mz"):
        RunningAlphaS(1.5)
    with pytest.raises(ValueError, match="thresholds"):
        RunningAlphaS(0.118, thresholds=(4.8, 1.5, 171.0))
    with pytest.raises(ValueError, match="nf_max"):
        RunningAlphaS(0.118, nf_max=7)
    als = RunningAlphaS(0.118)
    with pytest.raises(ValueError, match="q2"):
        als.alphasQ2(torch.tensor([-1.0, 10.0]))
    with pytest.raises(ValueError, match="q2"):
        als.alphasQ2(torch.tensor([float("nan")]))
    with pytest.raises(TypeError, match="q2"):
        als.alphasQ2(torch.tensor([10, 20]))
    with pytest.raises(TypeError, match="q2"):
        als.alphasQ2("100")
