"""Per-event standardisation of transfer residuals: the width model, the exact
log-Jacobian of the standardisation (against autograd) and save/load."""

from __future__ import annotations

import math

import pytest
import torch

from invsim.flows import FlowConfig, TrainConfig, observable_preprocessing
from invsim.flows.residual_width import ResidualWidth
from invsim.transfer import TransferFunction

F64 = torch.float64

pytestmark = pytest.mark.usefixtures("one_thread")  # one torch thread (conftest.py)

SIG_PT, SIG_ETA, SIG_PHI = 0.05, 0.01, 0.02


def _pairs(g, n):
    """Two leptons: hard (pT, η, φ) and reco with σ_pT = 5 % pT (Gaussian in pT), σ_η,
    σ_φ; the exact log r w.r.t. dpT dη dφ (φ residuals far below π, no wrapping)."""
    pt = 100 * torch.exp(2 * torch.rand(n, 2, generator=g, dtype=F64))
    eta = 4 * torch.rand(n, 2, generator=g, dtype=F64) - 2
    phi = (2 * torch.rand(n, 2, generator=g, dtype=F64) - 1) * math.pi
    hard = torch.stack([pt, eta, phi], -1)  # (n, 2, 3)
    sig = torch.stack([SIG_PT * pt, torch.full_like(eta, SIG_ETA),
                       torch.full_like(phi, SIG_PHI)], -1)
    reco = hard + sig * torch.randn(hard.shape, generator=g, dtype=F64)
    reco[..., 2] = torch.remainder(reco[..., 2] + math.pi, 2 * math.pi) - math.pi
    d = reco - hard
    d[..., 2] = torch.remainder(d[..., 2] + math.pi, 2 * math.pi) - math.pi
    log_r = torch.distributions.Normal(0.0, sig).log_prob(d).sum((-1, -2))
    return hard.flatten(1), reco.flatten(1), log_r


def _transfer(correction: bool, dtype=F64):
    return TransferFunction(
        observable_preprocessing(["real", "real", "real"] * 2),
        observable_preprocessing(["log", "real", "phi"] * 2),
        FlowConfig(transforms=1, hidden_features=(16,), conditional_affine=True),
        seed=3, dtype=dtype, residual=True, periodic=(2, 5), standardize=True,
        correction=correction)


def _fit(tf, g, n=20000, epochs=1):
    h, r, _ = _pairs(g, n)
    tf.fit(h, r, config=TrainConfig(epochs=epochs, batch_size=1024, lr=1e-3, patience=None),
           seed=0, progress=False)
    return tf


def test_width_model_recovers_a_known_width():
    """Fitted log s against the truth log σ = -3 + 0.5 f0 + 0.4 [f1 > 1] (a detector
    region edge in the binned feature f1, smooth in f0), two pooled columns.

    With n = 40000 rows per column pooled (80000 values) and 4 coefficients (two
    levels, f0, f0²), the error of log s at a point is about sqrt(4 / (2 · 40000))
    = 0.007 (Gaussian MLE, half the rows per level); the bound 0.04 is about 6 of those
    at the worst grid point (fixed seed; false-failure rate far below 1e-6). The 20
    starting bins of width 0.1 merge to the two regions, the edge within 0.1 of 1."""
    g = torch.Generator().manual_seed(5)
    n = 40000
    f = torch.rand(n, 2, 2, generator=g, dtype=F64) * 2

    def truth(f):
        return -3 + 0.5 * f[..., 0] + 0.4 * (f[..., 1] > 1.0).to(F64)

    u = 0.3 + torch.exp(truth(f)) * torch.randn(n, 2, generator=g, dtype=F64)
    w = ResidualWidth.fit(u, f, degree=2, groups=[0, 0])
    assert [e.numel() for e in w.edges] == [1, 1]
    assert abs(float(w.edges[0][0]) - 1.0) <= 0.1
    grid = torch.stack(torch.meshgrid(torch.linspace(0, 2, 5, dtype=F64),
                                      torch.tensor([0.3, 0.8, 1.2, 1.7], dtype=F64),
                                      indexing="ij"), -1).reshape(-1, 1, 2).expand(-1, 2, 2)
    err = w.log_scale(grid) - truth(grid)
    assert float(err.abs().max()) < 0.04, err
    # the shift is the mean of u / s: 0.3 / σ with σ <= e^-1.6, well above 1
    assert float(w.shift[0]) > 1.0
    assert torch.equal(w.coef[:, 0], w.coef[:, 1])  # one group: shared coefficients
    w2 = ResidualWidth.from_dict(w.to_dict())
    assert torch.equal(w2.log_scale(grid), w.log_scale(grid))
    # a uniform width ends with one bin
    u1 = torch.exp(-2 + 0.0 * f[..., 0]) * torch.randn(n, 2, generator=g, dtype=F64)
    assert [e.numel() for e in ResidualWidth.fit(u1, f, groups=[0, 0]).edges] == [0, 0]


def test_width_model_bad_input():
    with pytest.raises(ValueError, match="u, features"):
        ResidualWidth.fit(torch.randn(100, 2), torch.randn(100, 3, 2))
    with pytest.raises(ValueError, match="too few"):
        ResidualWidth.fit(torch.randn(20, 1), torch.rand(20, 1, 2))
    with pytest.raises(ValueError, match="groups"):
        ResidualWidth.fit(torch.randn(100, 2), torch.rand(100, 2, 2), groups=[0])
    with pytest.raises(ValueError, match="degree"):
        ResidualWidth.fit(torch.randn(100, 2), torch.rand(100, 2, 2), degree=-1)
    with pytest.raises(ValueError, match="bin_feature"):
        ResidualWidth.fit(torch.randn(100, 2), torch.rand(100, 2, 2), bin_feature=2)
    with pytest.raises(ValueError, match="bin_width"):
        ResidualWidth.fit(torch.randn(100, 2), torch.rand(100, 2, 2), bin_width=0.0)
    w = ResidualWidth.fit(torch.randn(200, 2), torch.rand(200, 2, 2), degree=1)
    with pytest.raises(ValueError, match="features"):
        w.log_scale(torch.randn(5, 2, 3))
    with pytest.raises(ValueError, match="missing"):
        ResidualWidth.from_dict({"coef": [[1.0]]})


def test_standardize_arguments_are_checked():
    pre = observable_preprocessing(["real", "real", "real"] * 2)
    hard = observable_preprocessing(["log", "real", "phi"] * 2)
    with pytest.raises(ValueError, match="standardize"):
        TransferFunction(pre, hard, standardize=True)
    with pytest.raises(ValueError, match="correction"):
        TransferFunction(pre, hard, residual=True, correction=False)
    with pytest.raises(ValueError, match="width_degree"):
        TransferFunction(pre, hard, residual=True, standardize=True, width_degree=-2)


@pytest.mark.parametrize("correction", [False, True])
def test_standardized_log_prob_has_the_exact_jacobian(correction):
    """log r = log q(v | x_hard) + log|det ∂v/∂x_reco|, the Jacobian by autograd."""
    g = torch.Generator().manual_seed(11)
    tf = _fit(_transfer(correction), g, n=5000)
    h, r, _ = _pairs(g, 6)
    with torch.no_grad():
        lp = tf.log_prob(r, h)
    for i in range(h.shape[0]):
        def v_of(x, i=i):
            return tf._residual(x[None], h[i:i + 1])[0][0]

        jac = torch.autograd.functional.jacobian(v_of, r[i])
        logdet = torch.linalg.slogdet(jac)[1]
        v = v_of(r[i])[None]
        with torch.no_grad():
            base = (tf.flow.log_prob(v, h[i:i + 1]) if correction else
                    torch.distributions.Normal(0.0, 1.0).log_prob(v).sum(-1))
        assert float(lp[i]) == pytest.approx(float(base[0] + logdet), abs=1e-9)
    # the distribution of forward() is the same density, and samples come back finite
    with torch.no_grad():
        dist = tf(h)
        assert torch.allclose(dist.log_prob(r), lp, atol=1e-8)
        x = tf.sample(h, 3, generator=torch.Generator().manual_seed(0))
    assert x.shape == (3, 6, 6) and bool(torch.isfinite(x).all())


def test_gaussian_residual_transfer_is_accurate_and_survives_save_load(tmp_path):
    """Without a flow correction, on Gaussian resolutions (σ_pT ∝ pT, pooled over the two
    leptons): |Δ log r| against the exact density. With 20000 pairs (40000 per
    quantity) and 6 coefficients per quantity, the error of each log s is about
    sqrt(6 / 80000) ≈ 0.009, so Δ log r ≈ Σ δ (z² − 1) has a spread of about 0.03; the
    bounds (median 0.05, 99 % 0.25) hold with a wide margin (fixed seed), while an
    untrained or misscaled model is off by O(1)."""
    g = torch.Generator().manual_seed(21)
    tf = _fit(_transfer(False), g)
    h, r, exact = _pairs(g, 3000)
    with torch.no_grad():
        d = tf.log_prob(r, h) - exact
    assert float(d.abs().median()) < 0.05, float(d.abs().median())
    assert float(d.abs().quantile(0.99)) < 0.25
    path = tmp_path / "tf.pt"
    tf.save(path)
    back = TransferFunction.load(path)
    assert back.standardize and not back.correction and back.width is not None
    with torch.no_grad():
        assert torch.equal(back.log_prob(r, h), tf.log_prob(r, h))


def test_files_without_the_width_fields_still_load(tmp_path):
    """A payload written before the standardisation (no width keys) loads unstandardised."""
    tf = TransferFunction(observable_preprocessing(["log", "real", "real"] * 2),
                          observable_preprocessing(["log", "real", "phi"] * 2),
                          FlowConfig(transforms=1, hidden_features=(8,)), residual=True,
                          periodic=(2, 5))
    g = torch.Generator().manual_seed(2)
    h, r, _ = _pairs(g, 500)
    tf.fit(h, r, config=TrainConfig(epochs=1, batch_size=256, patience=None), progress=False)
    payload = tf._payload()
    for key in ("standardize", "width_degree", "correction", "shared_width", "width"):
        payload.pop(key)
    back = TransferFunction._from_payload(payload)
    assert not back.standardize and back.width is None and back.correction
    with torch.no_grad():
        assert torch.equal(back.log_prob(r.float(), h), tf.log_prob(r.float(), h))
