"""invsim.flows: preprocessing bijections and Jacobians, flow normalisation, training loop."""

from __future__ import annotations

import math

import pytest
import torch

from forward import kinematics as kin
from invsim.flows import (
    ConditionalFlow,
    FlowConfig,
    LogShift,
    MomentumFeatures,
    ObjectSpec,
    PeriodicLogit,
    Standardize,
    TrainConfig,
    load_flow,
    log_invariant_factor,
    momentum_preprocessing,
    observable_preprocessing,
    preprocessing_from_dict,
    save_flow,
    split_indices,
    train_flow,
)

F64 = torch.float64
TINY = FlowConfig(kind="coupling", transforms=2, hidden_features=(16,), bins=4)


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _momenta(g, n, objects):
    k = len(objects)
    pt = 25 + 60 * torch.rand(n, k, generator=g, dtype=F64)
    eta = 2 * torch.randn(n, k, generator=g, dtype=F64)
    phi = (2 * torch.rand(n, k, generator=g, dtype=F64) - 1) * math.pi * 0.999
    m = torch.stack(
        [
            (3 + 20 * torch.rand(n, generator=g, dtype=F64)) if o.mass is None
            else torch.full((n,), o.mass, dtype=F64)
            for o in objects
        ],
        dim=-1,
    )
    return kin.from_pt_eta_phi_m(pt, eta, phi, m)


OBJECTS = [
    ObjectSpec(mass=0.0, pt_min=20.0, name="l1"),
    ObjectSpec(mass=None, pt_min=20.0, m_min=1.0, name="j"),
    ObjectSpec(mass=172.5, pt_min=0.0, name="t"),
]


def _autograd_logdet(fn, x):
    """log|det| of the Jacobian of fn: R^d -> R^d at each row of x, shape (n,)."""
    out = []
    for row in x:
        jac = torch.autograd.functional.jacobian(fn, row)
        out.append(torch.linalg.slogdet(jac.reshape(row.numel(), -1))[1])
    return torch.stack(out)


# ---------------------------------------------------------------- column transforms
def _column_cases(g):
    x = torch.randn(6, 4, generator=g, dtype=F64)
    x[:, 1] = 5 + torch.rand(6, generator=g, dtype=F64) * 50  # above the shift 5
    x[:, 3] = (2 * torch.rand(6, generator=g, dtype=F64) - 1) * 3.1
    std = Standardize(4, loc=[0.1, 20.0, -1.0, 0.0], scale=[2.0, 10.0, 0.5, 1.5])
    return x, [LogShift(4, [1], 5.0), PeriodicLogit(4, [3]), std]


def test_column_transforms_invert_and_match_autograd(generator):
    x, transforms = _column_cases(generator)
    for t in transforms:
        y = t(x)
        assert torch.allclose(t.inv(y), x, rtol=0, atol=1e-10), type(t).__name__
        ladj = t.log_abs_det_jacobian(x, y)
        assert ladj.shape == (6,)
        ref = _autograd_logdet(lambda r, t=t: t(r[None])[0], x)
        assert torch.allclose(ladj, ref, rtol=0, atol=1e-10), type(t).__name__


def test_periodic_logit_wraps_angles_and_rejects_pi(generator):
    t = PeriodicLogit(1, [0])
    phi = (2 * torch.rand(50, 1, generator=generator, dtype=F64) - 1) * 3.1
    assert torch.allclose(t(phi + 2 * math.pi), t(phi), atol=1e-9)
    assert torch.allclose(t(phi - 4 * math.pi), t(phi), atol=1e-9)
    pre = observable_preprocessing(["phi"], standardize=False)
    with pytest.raises(ValueError, match="outside the preprocessing's support"):
        pre.features_of("x", torch.tensor([[math.pi]], dtype=F64))


def test_log_shift_support_is_reported():
    pre = observable_preprocessing(["log", "real"], shifts=[20.0, 0.0], standardize=False)
    with pytest.raises(ValueError, match="event 1"):
        pre.features_of("x", torch.tensor([[25.0, 0.0], [19.0, 1.0]], dtype=F64))


# ---------------------------------------------------------------- momenta
def test_momentum_features_jacobian_against_autograd(generator):
    """log|det ∂(pT, η, φ[, m])/∂p| to the measure Π d³p (fixed mass) Π d⁴p (free mass)."""
    mf = MomentumFeatures(OBJECTS)
    p = _momenta(generator, 5, OBJECTS)
    feats, ladj = mf.call_and_ladj(p)
    assert feats.shape == (5, 3 + 4 + 3)
    assert torch.allclose(mf.inv(feats), p, rtol=0, atol=1e-10 * p.abs().max())

    def to_features(v):  # v: the measure's variables (px, py, pz) or (E, px, py, pz)
        vecs, i = [], 0
        for o in OBJECTS:
            if o.mass is None:
                vecs.append(v[i: i + 4])
                i += 4
            else:
                q = v[i: i + 3]
                vecs.append(torch.cat([torch.sqrt((q**2).sum() + o.mass**2)[None], q]))
                i += 3
        return mf(torch.stack(vecs)[None])[0]

    variables = torch.stack(
        [torch.cat([p[j, i] if o.mass is None else p[j, i, 1:] for i, o in enumerate(OBJECTS)])
         for j in range(5)]
    )
    assert torch.allclose(ladj, _autograd_logdet(to_features, variables), rtol=0, atol=1e-10)
    # closed form: Σ -log(pT² cosh η) - Σ_free log(m/E)
    pt, eta = kin.pt(p), kin.pseudorapidity(p)
    ref = -(torch.log(pt**2 * torch.cosh(eta))).sum(-1) - torch.log(kin.mass(p[:, 1]) / p[:, 1, 0])
    assert torch.allclose(ladj, ref, rtol=0, atol=1e-10)


def test_momentum_pipeline_roundtrip_and_jacobian(generator):
    pre = momentum_preprocessing(OBJECTS)
    p = _momenta(generator, 200, OBJECTS)
    pre.fit(p)
    y, ladj = pre.call_and_ladj(p)
    assert y.shape == (200, 10) and ladj.shape == (200,)
    assert torch.allclose(y.mean(0), torch.zeros(10, dtype=F64), atol=1e-10)
    assert torch.allclose(pre.inv(y), p, rtol=0, atol=1e-10 * p.abs().max())
    # composition: log-Jacobian = momenta part + the column maps' parts, each checked above;
    # here the whole chain against autograd on the measure's variables (free-mass object j)
    mf = pre.parts[0]
    rest = pre.parts[1:]

    def chain(f):
        for t in rest:
            f = t(f[None])[0]
        return f

    feats = mf(p[:4])
    col_ref = _autograd_logdet(chain, feats)
    assert torch.allclose(ladj[:4] - mf.log_abs_det_jacobian(p[:4], feats), col_ref, atol=1e-10)
    # serialisation keeps the fitted state
    again = preprocessing_from_dict(pre.to_dict())
    assert torch.equal(again(p), y)


def test_log_invariant_factor(generator):
    p = _momenta(generator, 7, OBJECTS)
    e = p[..., 0]
    ref = (3 * math.log(2 * math.pi) + torch.log(2 * e[:, [0, 2]])).sum(-1)
    assert torch.allclose(log_invariant_factor(p, OBJECTS), ref, rtol=1e-12)


# ---------------------------------------------------------------- flows
def _flow_2d(seed=0):
    pre = observable_preprocessing(["log", "phi"], shifts=[20.0, 0.0])
    g = torch.Generator().manual_seed(5)
    pts = 20 + torch.distributions.Exponential(1 / 30.0).sample((500,))
    phis = (2 * torch.rand(500, generator=g, dtype=F64) - 1) * 3
    pre.fit(torch.stack([pts.to(F64), phis], -1))
    return ConditionalFlow(pre, None, TINY, seed=seed, dtype=F64)


def test_flow_density_is_normalised_in_physical_variables():
    """∫∫ q(pT, φ) dpT dφ = 1 by quadrature for a random-weight spline flow + preprocessing.

    pT is integrated with the substitution pT = 20 + e^u (the analytic Jacobian e^u,
    independent of the code's), φ over (-π, π); trapezoid rules on 601 x 601 nodes."""
    flow = _flow_2d()
    pre = flow.x_preprocessing
    loc, scale = pre.parts[-1].loc[0], pre.parts[-1].scale[0]
    u = torch.linspace(float(loc - 12 * scale), float(loc + 12 * scale), 601, dtype=F64)
    phi = torch.linspace(-math.pi, math.pi, 603, dtype=F64)[1:-1]
    uu, ff = torch.meshgrid(u, phi, indexing="ij")
    x = torch.stack([20 + uu.exp(), ff], -1).reshape(-1, 2)
    with torch.no_grad():
        dens = (flow.log_prob(x).exp() * (x[:, 0] - 20)).reshape(uu.shape)
    integral = torch.trapezoid(torch.trapezoid(dens, phi, dim=1), u)
    assert abs(float(integral) - 1) < 2e-3
    # the torch distribution gives the same log_prob
    with torch.no_grad():
        assert torch.allclose(flow().log_prob(x[:100]), flow.log_prob(x[:100]), atol=1e-12)


def test_conditional_flow_normalised_per_context():
    pre_x = observable_preprocessing(["real"])
    pre_c = observable_preprocessing(["real"])
    g = torch.Generator().manual_seed(3)
    pre_x.fit(torch.randn(100, 1, generator=g, dtype=F64))
    pre_c.fit(torch.randn(100, 1, generator=g, dtype=F64))
    flow = ConditionalFlow(pre_x, pre_c, TINY, seed=1, dtype=F64)
    x = torch.linspace(-15, 15, 6001, dtype=F64)[:, None]
    for c in (-2.0, 0.0, 1.5):
        with torch.no_grad():
            q = flow.log_prob(x, torch.full_like(x, c)).exp()
        assert abs(float(torch.trapezoid(q, x[:, 0])) - 1) < 1e-3


def _gaussian_toy(g, n):
    c = 4 * torch.rand(n, 1, generator=g, dtype=F64) - 2
    x = 1.5 * c + 0.5 + 0.7 * torch.randn(n, 1, generator=g, dtype=F64)
    return x, c


def _log_p_true(x, c):
    return torch.distributions.Normal(1.5 * c + 0.5, 0.7).log_prob(x).sum(-1)


def _toy_flow(kind, seed=0):
    return ConditionalFlow(
        observable_preprocessing(["real"]),
        observable_preprocessing(["real"]),
        FlowConfig(kind=kind, transforms=2, hidden_features=(32, 32)),
        seed=seed,
    )


def _check_recovers_gaussian(flow, g):
    xt, ct = _gaussian_toy(g, 4000)
    with torch.no_grad():
        d = flow.log_prob(xt, ct).double() - _log_p_true(xt, ct)
        s = flow.sample(ct, 1, generator=g)[0].double()
        r = flow.log_prob(s, ct).double() - _log_p_true(s, ct)
    kl_fwd, kl_fwd_err = float(-d.mean()), float(d.std() / math.sqrt(len(d)))
    kl_rev, kl_rev_err = float(r.mean()), float(r.std() / math.sqrt(len(r)))
    # KL(p||q) and KL(q||p) estimates: an accurate flow is within 0.03 nats of the truth
    assert kl_fwd - 4 * kl_fwd_err < 0.03, (kl_fwd, kl_fwd_err)
    assert kl_rev - 4 * kl_rev_err < 0.03, (kl_rev, kl_rev_err)
    assert float(d.pow(2).mean().sqrt()) < 0.2  # pointwise log-density error (RMS, nats)
    print(f"toy: KL(p||q) = {kl_fwd:.4f} ± {kl_fwd_err:.4f}, "
          f"KL(q||p) = {kl_rev:.4f} ± {kl_rev_err:.4f}")
    return kl_fwd, kl_rev


def test_training_recovers_conditional_gaussian():
    """x | c ~ N(1.5 c + 0.5, 0.7²): affine autoregressive flow, 3000 events, ~5 s."""
    g = torch.Generator().manual_seed(11)
    x, c = _gaussian_toy(g, 3000)
    flow = _toy_flow("affine")
    cfg = TrainConfig(epochs=30, batch_size=128, lr=3e-3, patience=10)
    res = train_flow(flow, x, c, config=cfg, seed=0, progress=False)
    assert res.val_loss[res.best_epoch - 1] == res.best_val_loss
    _check_recovers_gaussian(flow, g)


@pytest.mark.slow
def test_spline_training_recovers_conditional_gaussian():
    g = torch.Generator().manual_seed(12)
    x, c = _gaussian_toy(g, 8000)
    flow = _toy_flow("autoregressive")
    cfg = TrainConfig(epochs=60, batch_size=256, lr=2e-3, patience=15)
    train_flow(flow, x, c, config=cfg, seed=0, progress=False)
    _check_recovers_gaussian(flow, g)


def _small_training(seed_model=0, seed=3, **kw):
    g = torch.Generator().manual_seed(21)
    x, c = _gaussian_toy(g, 400)
    flow = ConditionalFlow(observable_preprocessing(["real"]), observable_preprocessing(["real"]),
                           TINY, seed=seed_model)
    cfg = TrainConfig(**{"epochs": 6, "batch_size": 64, "patience": None, **kw})
    return flow, x, c, cfg


def test_same_seed_same_weights():
    runs = []
    for seed in (3, 3, 4):
        flow, x, c, cfg = _small_training()
        train_flow(flow, x, c, config=cfg, seed=seed, progress=False)
        runs.append(flow.state_dict())
    keys = [k for k in runs[0] if k != "_extra_state"]
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in keys)
    assert not all(torch.equal(runs[0][k], runs[2][k]) for k in keys)


def test_checkpoint_resume_reproduces(tmp_path):
    flow, x, c, cfg = _small_training(scheduler="cosine")
    straight = train_flow(flow, x, c, config=cfg, seed=3, progress=False)
    ck = tmp_path / "ck.pt"
    flow2, *_ = _small_training()
    part = train_flow(flow2, x, c, config=cfg, seed=3, progress=False, checkpoint=ck,
                      epoch_limit=3)
    assert part.epochs_run == 3
    flow3, *_ = _small_training(seed_model=9)  # different init: everything comes from the file
    resumed = train_flow(flow3, x, c, config=cfg, seed=3, progress=False, checkpoint=ck)
    assert resumed.epochs_run == 6
    assert resumed.train_loss == straight.train_loss
    assert resumed.val_loss == straight.val_loss
    sd1, sd3 = flow.state_dict(), flow3.state_dict()
    assert all(torch.equal(sd1[k], sd3[k]) for k in sd1 if k != "_extra_state")
    other = TrainConfig(epochs=7, batch_size=64, patience=None)
    with pytest.raises(ValueError, match="belongs to another run"):
        train_flow(flow3, x, c, config=other, seed=3, progress=False, checkpoint=ck)


def test_early_stopping_restores_best_state():
    g = torch.Generator().manual_seed(8)
    x, c = _gaussian_toy(g, 120)  # tiny data set and a big network: overfits quickly
    flow = ConditionalFlow(observable_preprocessing(["real"]), observable_preprocessing(["real"]),
                           FlowConfig(transforms=2, hidden_features=(64, 64)), seed=0)
    cfg = TrainConfig(epochs=300, batch_size=32, lr=1e-2, patience=5, scheduler="plateau",
                      validation_fraction=0.3)
    res = train_flow(flow, x, c, config=cfg, seed=1, progress=False)
    assert res.stopped_early and res.epochs_run == res.best_epoch + 5 < 300
    assert min(res.val_loss) == res.best_val_loss
    _, val = split_indices(len(x), 0.3, 1)
    with torch.no_grad():
        v = float(-flow.log_prob(x[val], c[val]).mean())
    assert abs(v - res.best_val_loss) < 1e-5


def test_nan_loss_is_reported():
    flow, x, c, cfg = _small_training()
    with torch.no_grad():
        next(flow.flow.parameters()).fill_(math.nan)
    with pytest.raises(FloatingPointError, match="epoch 1, batch 1/"):
        train_flow(flow, x, c, config=cfg, seed=0, progress=False)


def test_save_load_roundtrip(tmp_path):
    flow, x, c, cfg = _small_training(epochs=2)
    res = train_flow(flow, x, c, config=cfg, seed=0, progress=False)
    path = tmp_path / "flow.pt"
    save_flow(path, flow, config=cfg, result=res)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_flow(path, flow)
    save_flow(path, flow, config=cfg, result=res, overwrite=True)
    loaded = load_flow(path)
    assert loaded.config == cfg and loaded.result.train_loss == res.train_loss
    with torch.no_grad():
        assert torch.equal(loaded.flow.log_prob(x, c), flow.log_prob(x, c))
    g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    s1, s2 = flow.sample(c[:5], 3, generator=g1), loaded.flow.sample(c[:5], 3, generator=g2)
    assert torch.equal(s1, s2)
    assert flow.sample(c[:5], 3).shape == (3, 5, 1)


def test_momentum_flow_distribution_composes(generator):
    """A flow over (k, 4) momenta: the torch distribution's log_prob is the flow + Jacobian."""
    objs = OBJECTS[:2]
    pre = momentum_preprocessing(objs)
    p = _momenta(generator, 64, objs)
    pre.fit(p)
    flow = ConditionalFlow(pre, None, TINY, dtype=F64)
    y, ladj = pre.call_and_ladj(p)
    with torch.no_grad():
        lp = flow().log_prob(p)
        assert torch.allclose(lp, flow.flow().log_prob(y) + ladj, atol=1e-10)
        s = flow.sample(None, 10, generator=generator)
    assert s.shape == (10, 2, 4)
    assert bool((kin.mass2(s[:, 0]).abs() < 1e-12 * s[:, 0, 0] ** 2).all())  # massless lepton


# ---------------------------------------------------------------- bad input
def test_bad_input_is_rejected():
    flow, x, c, cfg = _small_training()
    with pytest.raises(ValueError, match=r"x: expected shape \(n, 1\)"):
        train_flow(flow, x.repeat(1, 2), c, config=cfg, seed=0, progress=False)
    with pytest.raises(ValueError, match="same number of events"):
        train_flow(flow, x, c[:-1], config=cfg, seed=0, progress=False)
    bad = x.clone()
    bad[3, 0] = math.nan
    with pytest.raises(ValueError, match="x: 1 NaN"):
        train_flow(flow, bad, c, config=cfg, seed=0, progress=False)
    with pytest.raises(ValueError, match="context is required"):
        flow.log_prob(x)
    with pytest.raises(TypeError, match="floating"):
        flow.log_prob(torch.ones(3, 1, dtype=torch.long), c[:3])
    for kw, name in [({"epochs": 0}, "epochs"), ({"lr": -1.0}, "lr"),
                     ({"validation_fraction": 1.0}, "validation_fraction"),
                     ({"scheduler": "step"}, "scheduler"), ({"patience": 0}, "patience"),
                     ({"clip_grad_norm": 0.0}, "clip_grad_norm")]:
        with pytest.raises(ValueError, match=name):
            TrainConfig(**kw)
    with pytest.raises(ValueError, match="kind"):
        FlowConfig(kind="glow")
    with pytest.raises(ValueError, match="mass"):
        ObjectSpec(mass=-1.0)
    with pytest.raises(ValueError, match="kinds"):
        observable_preprocessing(["log", "angle"])
    with pytest.raises(ValueError, match="scale"):
        Standardize(2).fit(torch.ones(5, 2, dtype=F64))
    with pytest.raises(RuntimeError, match="not fitted"):
        observable_preprocessing(["real"])(torch.zeros(2, 1))
    with pytest.raises(ValueError, match=r"p: expected shape \(\.\.\., 3, 4\)"):
        MomentumFeatures(OBJECTS)(torch.ones(2, 2, 4, dtype=F64))


def test_conditional_affine_layer_starts_at_identity_and_is_normalised():
    """The conditional affine front layer: identity at initialisation (same density as
    the flow without it), then, with random weights, a normalised density per context
    whose log_prob agrees with the sampler's."""
    pre_x, pre_c = observable_preprocessing(["real"] * 2), observable_preprocessing(["real"])
    g = torch.Generator().manual_seed(5)
    pre_x.fit(torch.randn(100, 2, generator=g, dtype=F64))
    pre_c.fit(torch.randn(100, 1, generator=g, dtype=F64))
    cfg = dict(transforms=2, hidden_features=(16,), bins=4)
    plain = ConditionalFlow(pre_x, pre_c, FlowConfig(**cfg), seed=1, dtype=F64)
    front = ConditionalFlow(pre_x, pre_c, FlowConfig(**cfg, conditional_affine=True), seed=1,
                            dtype=F64)
    assert len(front.flow.transform.transforms) == len(plain.flow.transform.transforms) + 1
    x = torch.randn(50, 2, generator=g, dtype=F64)
    c = torch.randn(50, 1, generator=g, dtype=F64)
    with torch.no_grad():
        assert torch.allclose(front.log_prob(x, c), plain.log_prob(x, c), atol=1e-12)
        last = front.flow.transform.transforms[0].hyper[-1]
        last.weight.normal_(0, 0.5, generator=g)
        last.bias.normal_(0, 0.5, generator=g)
        assert not torch.allclose(front.log_prob(x, c), plain.log_prob(x, c), atol=1e-3)
        s, lq = front.sample_and_log_prob(c[:4], 3, generator=g)
        assert torch.allclose(front.log_prob(s.reshape(12, 2), c[:4].repeat(3, 1)),
                              lq.reshape(12), atol=1e-9)
        # ∫ q(x | c) dx = 1 on a grid wide enough for the shifted, rescaled density
        grid = torch.linspace(-12, 12, 481, dtype=F64)
        xx = torch.cartesian_prod(grid, grid)
        for cv in (-1.5, 0.7):
            q = front.log_prob(xx, torch.full((len(xx), 1), cv, dtype=F64)).exp()
            integral = torch.trapezoid(torch.trapezoid(q.view(481, 481), grid), grid)
            assert abs(float(integral) - 1) < 2e-3, (cv, float(integral))
    with pytest.raises(TypeError, match="conditional_affine"):
        FlowConfig(conditional_affine=1)


def test_conditional_affine_training_recovers_conditional_gaussian():
    """x | c ~ N(1.5 c + 0.5, 0.7²) with a spline coupling flow behind the affine layer."""
    g = torch.Generator().manual_seed(13)
    x, c = _gaussian_toy(g, 3000)
    flow = ConditionalFlow(observable_preprocessing(["real"]), observable_preprocessing(["real"]),
                           FlowConfig(transforms=1, hidden_features=(32, 32),
                                      conditional_affine=True), seed=0)
    cfg = TrainConfig(epochs=30, batch_size=128, lr=3e-3, patience=10)
    train_flow(flow, x, c, config=cfg, seed=0, progress=False)
    kl_fwd, _ = _check_recovers_gaussian(flow, g)
