"""Cube flows, the defensive mixture, training, checkpoints and the lost-region warning.

Monte Carlo checks use |pull| < 5 (fails with probability ~6e-7 per check for a
correct implementation when the estimate is Gaussian).
"""

import math
import warnings

import pytest
import torch

from forward.nis import (
    CubeFlow,
    MixtureProposal,
    NISWarning,
    Trainer,
    TrainingConfig,
    VegasMap,
    integrate,
    uniform_check,
    unit_rqs,
)
from forward.nis.toys import camel, signed_camel


def gen(seed):
    return torch.Generator().manual_seed(seed)


def random_flow(dims=3, seed=0, std=0.5, dtype=torch.float64):
    torch.manual_seed(seed)
    f = CubeFlow(dims, bins=8, hidden=(16,), dtype=dtype)
    with torch.no_grad():
        for p in f.parameters():
            p.normal_(0.0, std, generator=gen(seed))
    return f


def test_unit_rqs_inverse_and_derivative():
    g = gen(0)
    x = torch.rand(500, dtype=torch.float64, generator=g).requires_grad_(True)
    w, h = (torch.randn(500, 6, generator=g, dtype=torch.float64) * 2 for _ in range(2))
    d = torch.randn(500, 7, generator=g, dtype=torch.float64)
    y, log_slope = unit_rqs(x, w, h, d)
    (dy,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(log_slope, dy.log(), rtol=1e-9, atol=1e-9)
    x2, log_slope2 = unit_rqs(y.detach(), w, h, d, inverse=True)
    torch.testing.assert_close(x2, x.detach(), rtol=0, atol=1e-10)
    torch.testing.assert_close(log_slope2, log_slope.detach(), rtol=1e-8, atol=1e-8)
    ends = unit_rqs(torch.tensor([0.0, 1.0], dtype=torch.float64), w[:2], h[:2], d[:2])[0]
    torch.testing.assert_close(ends, torch.tensor([0.0, 1.0], dtype=torch.float64))


def _spline_by_autograd(x, wh, slopes):
    """Forward spline through differentiable torch operations (autograd's backward)."""
    from forward.nis.flows import _bin, _rational

    _, _, _, _, _, x0, y0, w, h, d0, d1 = _bin(x, wh, slopes, 0, 1e-3, 1e-3)
    s = h / w
    xi = ((x - x0) / w).clamp(0.0, 1.0)
    t, den, _, log_slope = _rational(xi, s, d0, d1)
    return (y0 + h * (s * xi * xi + d0 * t) / den).clamp(0.0, 1.0), log_slope


def test_forward_spline_backward_vs_gradcheck_and_autograd():
    from forward.nis.flows import _ForwardRQS

    g = gen(4)
    wh = (torch.randn(40, 2, 2, 6, generator=g, dtype=torch.float64) * 2).requires_grad_(True)
    slopes = torch.randn(40, 2, 7, generator=g, dtype=torch.float64).requires_grad_(True)
    x = torch.rand(40, 2, generator=g, dtype=torch.float64).requires_grad_(True)

    def spline(x, wh, slopes):
        return _ForwardRQS.apply(x, wh, slopes, 1e-3, 1e-3)

    assert torch.autograd.gradcheck(spline, (x, wh, slopes))
    # end points of the cube (one-sided there, so not for finite differences) included
    x_ends = x.detach().clone()
    x_ends[0, 0], x_ends[1, 1] = 0.0, 1.0
    x_ends.requires_grad_(True)
    a = spline(x_ends, wh, slopes)
    b = _spline_by_autograd(x_ends, wh, slopes)
    for u, v in zip(a, b, strict=True):
        torch.testing.assert_close(u, v, rtol=0, atol=1e-14)
    c = torch.randn(2, 40, 2, generator=g, dtype=torch.float64)
    ga = torch.autograd.grad((c[0] * a[0] + c[1] * a[1]).sum(), (x_ends, wh, slopes))
    gb = torch.autograd.grad((c[0] * b[0] + c[1] * b[1]).sum(), (x_ends, wh, slopes))
    for u, v in zip(ga, gb, strict=True):
        torch.testing.assert_close(u, v, rtol=1e-10, atol=1e-12)


def test_flow_cpu_blocks_give_the_same_results():
    # without gradient, the CPU evaluates in blocks of block_rows; with gradient at once
    flow = random_flow(4, std=0.3)
    n = 2 * flow.block_rows + 17
    z = torch.rand(n, 4, generator=gen(6), dtype=torch.float64)
    with torch.no_grad():
        u, log_q = flow.transform(z)
        lp = flow.log_prob(u)
    u2, log_q2 = flow.transform(z)
    torch.testing.assert_close(u, u2.detach(), rtol=0, atol=1e-12)
    torch.testing.assert_close(log_q, log_q2.detach(), rtol=0, atol=1e-10)
    torch.testing.assert_close(lp, flow.log_prob(u).detach(), rtol=0, atol=1e-10)
    torch.testing.assert_close(lp, log_q, rtol=0, atol=1e-8)


def test_flow_log_prob_vs_autograd_jacobian():
    flow = random_flow(3)
    z = torch.rand(20, 3, generator=gen(1), dtype=torch.float64)
    u, log_q = flow.transform(z)
    torch.testing.assert_close(flow.log_prob(u), log_q, rtol=1e-9, atol=1e-9)
    for i in range(5):
        # density of u is |det dz/du| with z = forward(u)
        def fwd(v):
            out = v[None]
            for layer in flow.layers:
                out, _ = layer(out)
            return out[0]

        jac = torch.autograd.functional.jacobian(fwd, u[i])
        torch.testing.assert_close(log_q[i], torch.linalg.slogdet(jac)[1], rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("with_vegas, compose", [(False, True), (True, True), (True, False)])
def test_mixture_normalised_on_cube(with_vegas, compose):
    # E_uniform[q(x)] = 1 over [0,1]^3; fails w.p. ~6e-7
    vm = None
    if with_vegas:
        vm = VegasMap(3, bins=16)
        vm.adapt(camel(3), n_iter=2, n_per_iter=2000, generator=gen(2))
    q = MixtureProposal(random_flow(3, std=0.3), lam=0.1, vegas=vm, compose=compose)
    x = torch.rand(100_000, 3, generator=gen(3), dtype=torch.float64)
    with torch.no_grad():
        dens = q.log_prob(x).exp()
    err = float(dens.std()) / math.sqrt(dens.numel())
    assert abs(float(dens.mean()) - 1) < 5 * err
    assert err < 0.05


def test_mixture_support_never_zero():
    # a wild flow: the mixture density still is >= lam everywhere (uniform component)
    lam = 0.05
    q = MixtureProposal(random_flow(3, std=3.0), lam=lam)
    bits = [[i & 1, (i >> 1) & 1, (i >> 2) & 1] for i in range(8)]
    corners = torch.tensor(bits, dtype=torch.float64)
    x = torch.cat([torch.rand(20_000, 3, generator=gen(4), dtype=torch.float64), corners])
    with torch.no_grad():
        lq = q.log_prob(x)
    assert torch.isfinite(lq).all()
    assert float(lq.min()) >= math.log(lam) - 1e-9


@pytest.mark.parametrize("compose", [True, False])
def test_mixture_sampling_consistent_and_reproducible(compose):
    vm = VegasMap(3, bins=16)
    vm.adapt(camel(3), n_iter=2, n_per_iter=2000, generator=gen(2))
    q = MixtureProposal(random_flow(3, std=0.3), lam=0.3, vegas=vm, compose=compose)
    s1 = q.sample_components(2000, generator=gen(5))
    s2 = q.sample_components(2000, generator=gen(5))
    assert torch.equal(s1.x, s2.x) and torch.equal(s1.log_q, s2.log_q)
    assert s1.x.dtype == torch.float64 and s1.x.min() >= 0 and s1.x.max() <= 1
    with torch.no_grad():
        torch.testing.assert_close(q.log_prob(s1.x), s1.log_q, rtol=1e-9, atol=1e-9)
    mix = torch.logaddexp(math.log(0.7) + s1.log_q_flow, math.log(0.3) + s1.log_q_defensive)
    torch.testing.assert_close(mix, s1.log_q)
    with torch.no_grad():
        torch.testing.assert_close(q.log_prob_flow(s1.x), s1.log_q_flow, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(vm.log_prob(s1.x[s1.defensive]), s1.log_q_defensive[s1.defensive])
    frac = float(s1.defensive.double().mean())
    assert abs(frac - 0.3) < 5 * math.sqrt(0.3 * 0.7 / 2000)


def small_config(**kw):
    base = dict(steps=6, batch_size=128, buffered_steps=2, buffer_capacity=1000)
    base.update(kw)
    return TrainingConfig(**base)


def test_checkpoint_resume_reproduces_state(tmp_path):
    f = camel(2)

    def fresh():
        torch.manual_seed(0)
        q = MixtureProposal(CubeFlow(2, bins=8, hidden=(16,)), lam=0.1)
        return Trainer(f, q, small_config(), generator=gen(8), progress=False)

    straight = fresh()
    straight.train(6)
    first = fresh()
    first.train(3)
    path = tmp_path / "ck.pt"
    first.save(path)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        first.save(path)
    resumed = fresh()
    resumed.load(path)
    assert resumed.step == 3 and resumed.n_eval == first.n_eval
    resumed.train(3)
    for a, b in zip(straight.proposal.parameters(), resumed.proposal.parameters(), strict=True):
        assert torch.equal(a, b)
    assert straight.history == resumed.history
    first.save(path, overwrite=True)


def test_bad_input_errors():
    with pytest.raises(ValueError, match="dims"):
        CubeFlow(1)
    flow = CubeFlow(3, bins=4, hidden=(8,))
    with pytest.raises(ValueError, match=r"expected shape \(n, 3\), got \(4, 2\)"):
        flow.log_prob(torch.rand(4, 2))
    with pytest.raises(ValueError, match="lam"):
        MixtureProposal(flow, lam=0.0)
    with pytest.raises(ValueError, match="vegas"):
        MixtureProposal(flow, vegas=VegasMap(2))
    with pytest.raises(ValueError, match="loss"):
        TrainingConfig(loss="hinge")

    def nan_f(x):
        y = x.sum(1).double()
        y[::2] = math.nan
        return y

    tr = Trainer(nan_f, MixtureProposal(flow), small_config(batch_size=8), progress=False)
    msg = r"4 NaN and 0 infinite values out of 8 points, e\.g\. at x"
    with pytest.raises(ValueError, match=msg):
        tr.train(1)


def train_proposal(f, steps, seed, lam=0.05, loss="kl"):
    torch.manual_seed(seed)
    q = MixtureProposal(CubeFlow(2, bins=8, hidden=(32,)), lam=lam)
    cfg = TrainingConfig(loss=loss, steps=steps, batch_size=256, buffered_steps=2, lr=5e-3)
    Trainer(f, q, cfg, generator=gen(seed), progress=False).train()
    return q


def one_peak(x):
    x = x.double()
    return torch.exp(-((x - 1 / 3) ** 2).sum(1) / 0.01)


def test_lost_region_warning_fires_on_broken_and_not_on_good():
    f = camel(2)
    broken = train_proposal(one_peak, 60, seed=9)  # never saw the peak at 2/3
    with pytest.warns(NISWarning, match="lost a region"):
        r = integrate(f, broken, 40_000, generator=gen(10))
    assert r.diagnostics.z_local > 5
    good = train_proposal(f, 60, seed=11)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NISWarning)
        r = integrate(f, good, 40_000, generator=gen(12))
    assert abs(r.pull(1.0)) < 5 and r.diagnostics.z_local < 5


def vegas_first_layer_proposal(f, grid, seed):
    """A VEGAS + flow proposal (flow on the grid, grid as defensive part) trained on f."""
    torch.manual_seed(seed)
    q = MixtureProposal(CubeFlow(2, bins=8, hidden=(32,)), lam=0.05, vegas=grid, compose=True)
    cfg = TrainingConfig(loss="kl", steps=40, batch_size=256, buffered_steps=2, lr=5e-3,
                         density="flow")
    Trainer(f, q, cfg, generator=gen(seed + 1), progress=False).train()
    return q


def test_uniform_check_sees_a_peak_the_vegas_grid_dropped():
    """The flow/defensive comparison is blind when the VEGAS grid itself lost a peak; the
    uniform-point check is not. Over 100 integration seeds (this setup, 20 000 uniform
    points) z_uniform exceeded 5 in 99 of the blind cases (the other one hit the dropped
    corner and got the heavy-weight-tail warning instead; median z 24) and in 0 of the
    healthy ones (max 2.5); a correct proposal passes z < 5 with probability ~1 - 3e-7
    (Gaussian tail). Fixed seeds make the test deterministic."""
    f = camel(2)
    blind = VegasMap(2, bins=1000)  # 999 bins on [0, 0.5], one on [0.5, 1]: P(corner) = 1e-6
    edges = torch.cat([torch.linspace(0, 0.5, 1000, dtype=torch.float64), torch.ones(1)])
    blind.edges.copy_(edges.expand(2, -1))
    broken = vegas_first_layer_proposal(f, blind, seed=2)
    with pytest.warns(NISWarning, match="uniform points of the cube"):
        r = integrate(f, broken, 40_000, n_uniform=20_000, generator=gen(100))
    d = r.diagnostics
    assert d.z_uniform > 5 and abs(r.pull(1.0)) > 5  # silently wrong (~0.5) without it
    assert d.z_global < 5 and d.z_local < 5  # the flow/grid comparison sees nothing
    healthy = VegasMap(2, bins=32)
    healthy.adapt(f, 5, 4000, generator=gen(1))
    good = vegas_first_layer_proposal(f, healthy, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NISWarning)
        r = integrate(f, good, 40_000, n_uniform=20_000, generator=gen(100))
    assert abs(r.pull(1.0)) < 5 and abs(r.diagnostics.z_uniform) < 5


def test_uniform_check_input_errors():
    with pytest.raises(TypeError, match="f_uniform"):
        uniform_check([1.0, 2.0], torch.ones(3))
    with pytest.raises(ValueError, match="weights"):
        uniform_check(torch.ones(3), torch.ones(3, 1))
    with pytest.raises(ValueError, match="n_uniform"):
        integrate(camel(2), VegasMap(2), 100, n_uniform=-1)


@pytest.mark.slow
def test_trained_flow_camel_and_signed_toy():
    f = camel(2)
    q = train_proposal(f, 300, seed=13)
    r = integrate(f, q, 100_000, generator=gen(14))
    assert abs(r.pull(1.0)) < 5
    assert r.rel_std < 0.5  # plain sampling has ~3.9
    assert r.unweighting_efficiency > 0.3
    s = signed_camel(2)
    qs = train_proposal(s, 300, seed=15, loss="variance")
    r = integrate(s, qs, 100_000, generator=gen(16))
    assert abs(r.value) < 5 * r.error and r.error < 0.02
