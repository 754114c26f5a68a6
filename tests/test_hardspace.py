"""HardCoordinates: round trip, Jacobian against autograd, and normalisation w.r.t. dμ."""

import math

import pytest
import torch

from forward.events import HardEvents
from forward.processes import get_process
from invsim.hardspace import HardCoordinates


@pytest.fixture(scope="module")
def coords():
    process = get_process("drell-yan", mll_min=1500.0, mll_max=2500.0)
    return HardCoordinates.from_process(process)


def test_round_trip(coords):
    g = torch.Generator().manual_seed(1)
    z = torch.randn(500, coords.dim, generator=g, dtype=torch.float64) * 2
    events, log_det = coords.events(z)
    z2, log_det2 = coords.features(events)
    assert torch.allclose(z2, z, atol=1e-7)
    assert torch.allclose(log_det2, log_det, atol=1e-7)


def test_density_is_normalised_over_dmu(coords):
    # q_z = standard normal; ∫ q_μ dμ = E_{r ~ U}[q_μ(map(r)) e^{log_jac(r)}] must be 1.
    # Plain MC with 2e5 points; |mean - 1| < 5 standard errors (false-failure rate ~6e-7).
    g = torch.Generator().manual_seed(2)
    r = torch.rand(200_000, coords.dim, generator=g, dtype=torch.float64)
    r = r.clamp(1e-9, 1 - 1e-9)
    events, log_jac = coords.map.forward(r)
    z, log_det = coords.features(events)
    log_qz = -0.5 * (z**2).sum(-1) - 0.5 * coords.dim * math.log(2 * math.pi)
    w = torch.exp(log_qz + log_det + log_jac)
    mean, err = w.mean().item(), (w.std() / math.sqrt(len(w))).item()
    assert abs(mean - 1) < 5 * err, (mean, err)


def test_log_det_matches_autograd(coords):
    # log|∂z/∂r| part: the logit's derivative checked by autograd on r -> z
    r = torch.tensor([[0.3, 0.6, 0.2, 0.9]], dtype=torch.float64)
    events, log_jac = coords.map.forward(r)
    z, log_det = coords.features(events)
    jac = torch.autograd.functional.jacobian(lambda u: torch.log(u) - torch.log1p(-u), r[0])
    expected = torch.logdet(jac) - log_jac[0]
    assert torch.allclose(log_det[0], expected, atol=1e-10)


def test_outside_support_has_zero_density(coords):
    # an event at m_ll = 100 GeV is outside the 1.5-2.5 TeV window of the map
    e = 50.0
    p = torch.tensor([[[e, 0, e * 0.6, e * 0.8], [e, 0, -e * 0.6, -e * 0.8]]], dtype=torch.float64)
    x = torch.tensor([100.0 / 13000.0], dtype=torch.float64)
    _, log_det = coords.features(HardEvents(p, x, x, 13000.0))
    assert log_det.item() == -math.inf


def test_bad_input(coords):
    with pytest.raises(TypeError, match="phase_map"):
        HardCoordinates(object())
    with pytest.raises(ValueError, match="z"):
        coords.events(torch.zeros(3, coords.dim + 1, dtype=torch.float64))
    with pytest.raises(TypeError, match="events"):
        coords.features(torch.zeros(3, 2, 4))
    with pytest.raises(ValueError, match="channel"):
        HardCoordinates.from_process(get_process("drell-yan"), channel=7)
