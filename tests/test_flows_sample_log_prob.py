"""ConditionalFlow.sample_and_log_prob: the returned log q is the flow's density at its samples.

The reference is :meth:`ConditionalFlow.log_prob`, which evaluates the density by the
forward pass (preprocessing, then the zuko flow); the sampler gets it from the inverse
pass. Both are float64 flows with random (untrained) weights, so the agreement is to
rounding.
"""

from __future__ import annotations

import math

import pytest
import torch

from forward import kinematics as kin
from invsim.flows import (
    ConditionalFlow,
    FlowConfig,
    ObjectSpec,
    momentum_preprocessing,
    observable_preprocessing,
)

F64 = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")  # one torch thread (conftest.py)


def _observable_flow(kind: str) -> tuple[ConditionalFlow, torch.Tensor]:
    """q(pT, η, φ | c) with log/real/phi preprocessing (non-trivial Jacobian); 5 contexts."""
    g = torch.Generator().manual_seed(7)
    x = torch.stack([20 + 40 * torch.rand(500, generator=g, dtype=F64),
                     torch.randn(500, generator=g, dtype=F64),
                     (2 * torch.rand(500, generator=g, dtype=F64) - 1) * 3.0], -1)
    c = torch.randn(500, 2, generator=g, dtype=F64)
    pre_x = observable_preprocessing(["log", "real", "phi"], shifts=[10.0, 0.0, 0.0]).fit(x)
    pre_c = observable_preprocessing(["real", "real"]).fit(c)
    cfg = FlowConfig(kind=kind, transforms=2, hidden_features=(16,), bins=4)
    return ConditionalFlow(pre_x, pre_c, cfg, seed=3, dtype=F64), c[:5]


@pytest.mark.parametrize("kind", ["coupling", "autoregressive", "affine"])
def test_log_q_equals_log_prob_of_the_samples(kind):
    flow, c = _observable_flow(kind)
    x, log_q = flow.sample_and_log_prob(c, 7, generator=torch.Generator().manual_seed(1))
    assert x.shape == (7, 5, 3) and log_q.shape == (7, 5)
    assert x.dtype == F64 and log_q.dtype == F64
    assert bool(torch.isfinite(log_q).all())
    with torch.no_grad():
        ref = flow.log_prob(x.reshape(35, 3), c.repeat(7, 1)).reshape(7, 5)
    assert torch.allclose(log_q, ref, rtol=0, atol=1e-9), (log_q - ref).abs().max()
    # the same draws as sample() for the same generator seed
    s = flow.sample(c, 7, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(s, x, rtol=0, atol=1e-12)
    # the sampler's log q is a distinct function of the draws: other seeds, other values
    _, other = flow.sample_and_log_prob(c, 7, generator=torch.Generator().manual_seed(2))
    assert not torch.allclose(other, log_q)


def test_momentum_flow_unconditional():
    """(k, 4) momenta through the momentum preprocessing (its Jacobian to ∏ d³p)."""
    objs = [ObjectSpec(mass=0.0, pt_min=20.0, name="l"), ObjectSpec(mass=None, pt_min=20.0,
                                                                     m_min=1.0, name="j")]
    g = torch.Generator().manual_seed(5)
    n = 200
    pt = 25 + 60 * torch.rand(n, 2, generator=g, dtype=F64)
    eta = 2 * torch.randn(n, 2, generator=g, dtype=F64)
    phi = (2 * torch.rand(n, 2, generator=g, dtype=F64) - 1) * math.pi * 0.99
    mass = torch.stack([torch.zeros(n, dtype=F64), 3 + 20 * torch.rand(n, generator=g,
                                                                         dtype=F64)], -1)
    p = kin.from_pt_eta_phi_m(pt, eta, phi, mass)
    flow = ConditionalFlow(momentum_preprocessing(objs).fit(p), None,
                           FlowConfig(transforms=2, hidden_features=(16,), bins=4), dtype=F64)
    x, log_q = flow.sample_and_log_prob(None, 11, generator=torch.Generator().manual_seed(4))
    assert x.shape == (11, 2, 4) and log_q.shape == (11,)
    with torch.no_grad():
        ref = flow.log_prob(x)
    assert torch.allclose(log_q, ref, rtol=0, atol=1e-9), (log_q - ref).abs().max()


def test_log_q_is_differentiable_and_normalised():
    """The returned log q carries gradients to the weights, and E_q[1/q · h] = ∫ h = 1 for
    a normalised h (a wide Gaussian in the features' physical space): fails w.p. ~6e-7 at
    5 standard errors."""
    flow, c = _observable_flow("coupling")
    x, log_q = flow.sample_and_log_prob(c[:1], 4, generator=torch.Generator().manual_seed(0))
    log_q.sum().backward()
    grads = [p.grad for p in flow.parameters() if p.grad is not None]
    assert grads and any(bool(gr.abs().sum() > 0) for gr in grads)
    with torch.no_grad():
        x, log_q = flow.sample_and_log_prob(c[:1], 40000,
                                            generator=torch.Generator().manual_seed(9))
    x, log_q = x[:, 0], log_q[:, 0]
    # h: log-normal in pT - 10 around the samples' median, Gaussian in η, uniform in φ
    lpt = torch.log(x[:, 0] - 10)
    h = (torch.distributions.Normal(lpt.median(), 1.5 * lpt.std()).log_prob(lpt) - lpt
         + torch.distributions.Normal(x[:, 1].median(), 1.5 * x[:, 1].std()).log_prob(x[:, 1])
         - math.log(2 * math.pi))
    w = torch.exp(h - log_q)
    mean, err = float(w.mean()), float(w.std() / math.sqrt(len(w)))
    assert abs(mean - 1) < 5 * err and err < 0.05, (mean, err)


def test_bad_input():
    flow, c = _observable_flow("affine")
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="n: expected an integer >= 1"):
            flow.sample_and_log_prob(c, bad)
    with pytest.raises(ValueError, match="context: this flow is conditional"):
        flow.sample_and_log_prob(None, 2)
    nan = c.clone()
    nan[0, 0] = math.nan
    with pytest.raises(ValueError, match="context"):
        flow.sample_and_log_prob(nan, 2)
