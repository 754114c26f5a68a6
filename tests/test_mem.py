"""invsim.mem: the importance-sampling MEM likelihood, its diagnostics and files.

The estimator is checked on a toy whose every piece is Gaussian, so that
p(x_reco | θ) and σ_fid(θ) are known in closed form; the Pareto k̂ on samples of known
tail index and against ArviZ; the PDF-caching dσ/dμ against the hadronic integrand.
"""

from __future__ import annotations

import math

import pytest
import torch

from forward.detector import GaussianLeptonDetector
from forward.events import HardEvents
from forward.integrand import GEV2_TO_PB, HadronicIntegrand
from forward.processes import Parameter, Process, get_process
from invsim.exact import ExactAcceptance, ExactTransfer
from invsim.infer.flags import FlaggedEventsError, FlaggedEventsWarning
from invsim.mem import (
    DifferentialCache,
    MEMLikelihood,
    MEMModel,
    MEMWarning,
    gpd_fit,
    pareto_khat,
    summarize_weights,
)
from invsim.mem.reco_proposal import RecoGaussianProposal
from invsim.pairs import simulate
from invsim.scan import scan

# -- an all-Gaussian toy ------------------------------------------------------------------
# hard event h = (x1, x2) with measure dx1 dx2 (one "particle" carrying p_a + p_b, a map
# with log-Jacobian 0); dσ/dμ = A N(h; (μ, 1 - μ), S_H² I); ε(h) = exp(-c |h - h0|²);
# reco x = h + N(0, S_R² I). Per dimension p(x | μ) = N(x; m1, v1 + S_R²) with
# m1 = (m e + h0 a)/(a + e), v1 = a e/(a + e), a = S_H², e = 1/(2c).
SQRT_S, AMP, S_H, S_R, C_EPS, H0 = 100.0, 3.0, 0.05, 0.03, 40.0, 0.45


def _h(events: HardEvents) -> torch.Tensor:
    return torch.stack([events.x1, events.x2], -1)


def _toy_events(h: torch.Tensor) -> HardEvents:
    x1, x2 = h[:, 0], h[:, 1]
    e = 0.5 * SQRT_S
    p = torch.stack([e * (x1 + x2), 0 * x1, 0 * x1, e * (x1 - x2)], -1).unsqueeze(1)
    return HardEvents(p, x1, x2, SQRT_S)


class ToyMap:
    dim = 2

    def forward(self, r):
        return _toy_events(r), torch.zeros(r.shape[0], dtype=r.dtype)

    def inverse(self, events):
        return _h(events), torch.zeros(len(events), dtype=events.x1.dtype)


class ToyPDF:
    """f(x) = 1 for every parton."""

    def xfxQ2_all(self, x, q2, pids):
        return x.unsqueeze(-1).expand(-1, len(pids))


class ToyProcess(Process):
    name = "toy-gauss"

    def __init__(self):
        self.sqrt_s = SQRT_S
        self.parameters = {"mu": Parameter("mu", 0.5, 0.2, 0.8)}
        self.final_state = (0,)
        self.flavour_channels = ((1, -1),)

    def means(self, params):
        mu = params["mu"]
        return torch.stack([mu, 1 - mu], -1)

    def matrix_element(self, events, params):
        h = _h(events)
        d = (h - self.means(params)) / S_H
        g = AMP * torch.exp(-0.5 * (d * d).sum(-1)) / (2 * math.pi * S_H**2)
        return (g * 2 * events.shat / GEV2_TO_PB).unsqueeze(-1)

    def phase_space(self, params=None):
        return [ToyMap()]

    def scales(self, events, params):
        return events.shat, events.shat


class ToyTransfer:
    def log_prob(self, x_reco, x_hard):
        h = torch.stack([(x_hard[:, 0, 0] + x_hard[:, 0, 3]), (x_hard[:, 0, 0] - x_hard[:, 0, 3])],
                        -1) / SQRT_S
        d = (x_reco - h) / S_R
        return -0.5 * (d * d).sum(-1) - 2 * math.log(S_R) - math.log(2 * math.pi)


class ToyAcceptance:
    def logits(self, x_hard):
        h = torch.stack([(x_hard[:, 0, 0] + x_hard[:, 0, 3]), (x_hard[:, 0, 0] - x_hard[:, 0, 3])],
                        -1) / SQRT_S
        le = -C_EPS * ((h - H0) ** 2).sum(-1)
        return le - torch.log(-torch.expm1(le))


class ToyProposal:
    """Gaussian around the reco point, width ``width``, shifted by ``offset``."""

    def __init__(self, width=0.04, offset=0.0):
        self.width, self.offset = width, offset

    def _logq(self, h, xr):
        d = (h - xr - self.offset) / self.width
        return -0.5 * (d * d).sum(-1) - 2 * math.log(self.width) - math.log(2 * math.pi)

    def sample_and_log_prob(self, x_reco, n, theta=None, *, generator=None):
        m = x_reco.shape[0]
        z = torch.randn(m, n, 2, generator=generator, dtype=torch.float64)
        h = x_reco.unsqueeze(1) + self.offset + self.width * z
        lq = self._logq(h, x_reco.unsqueeze(1))
        return _toy_events(h.reshape(m * n, 2)), lq

    def log_prob(self, hard, x_reco, theta=None):
        return self._logq(_h(hard), x_reco)


def exact_log_p(x: torch.Tensor, mu: float) -> torch.Tensor:
    a, e = S_H**2, 1 / (2 * C_EPS)
    m = torch.tensor([mu, 1 - mu], dtype=torch.float64)
    m1 = (m * e + H0 * a) / (a + e)
    v = a * e / (a + e) + S_R**2
    return (-0.5 * (x - m1) ** 2 / v - 0.5 * math.log(2 * math.pi * v)).sum(-1)


def exact_log_sigma_fid(mu: float) -> float:
    a, e = S_H**2, 1 / (2 * C_EPS)
    out = math.log(AMP)
    for m in (mu, 1 - mu):
        out += 0.5 * math.log(2 * math.pi * e) - 0.5 * (m - H0) ** 2 / (a + e) - 0.5 * math.log(
            2 * math.pi * (a + e))
    return out


def toy_model(proposal=None) -> MEMModel:
    return MEMModel(ToyProcess(), proposal or ToyProposal(), ToyTransfer(), ToyAcceptance(),
                    pdf=ToyPDF())


def toy_reco(m: int, seed: int = 0, mu: float = 0.5) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    h = torch.tensor([mu, 1 - mu], dtype=torch.float64) + 0.06 * torch.randn(
        m, 2, generator=g, dtype=torch.float64)
    return h + S_R * torch.randn(m, 2, generator=g, dtype=torch.float64)


def test_toy_integrand_is_the_gaussian():
    integ = HadronicIntegrand(ToyProcess(), ToyPDF())
    h = torch.tensor([[0.5, 0.5], [0.55, 0.4]], dtype=torch.float64)
    got = integ.differential(_toy_events(h), {"mu": 0.5})
    d = (h - torch.tensor([0.5, 0.5], dtype=torch.float64)) / S_H
    want = AMP * torch.exp(-0.5 * (d * d).sum(-1)) / (2 * math.pi * S_H**2)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=0)


def test_estimator_equals_exact_integral_on_gaussian_toy():
    x = toy_reco(20)
    lik = MEMLikelihood(toy_model(), x, n_samples=2000, n_fiducial=400_000, seed=1)
    mus = torch.tensor([0.45, 0.5, 0.56], dtype=torch.float64)
    res = lik.evaluate({"mu": mus})
    assert res.log_p.shape == (3, 20) and not bool(res.flagged.any())
    for i, mu in enumerate(mus.tolist()):
        sf = exact_log_sigma_fid(mu)
        # 5σ: each of the 63 comparisons fails with probability < 6e-7 if the estimator
        # is unbiased with the reported (delta-method) error
        assert abs(float(res.log_sigma_fid[i]) - sf) < 5 * float(res.sigma_fid_error[i])
        err = torch.sqrt(res.error[i] ** 2 + res.sigma_fid_error[i] ** 2)
        pull = (res.log_p[i] - exact_log_p(x, mu)) / err
        assert float(pull.abs().max()) < 5, pull
    # the errors are honest: the pulls of all 60 (event, θ) values are not all tiny
    assert float(res.error.median()) > 1e-4


def test_log_prob_matches_evaluate_and_batches():
    x = toy_reco(5, seed=3)
    lik = MEMLikelihood(toy_model(), x, n_samples=200, n_fiducial=10_000, seed=2)
    one = lik.log_prob({"mu": torch.tensor(0.52, dtype=torch.float64)})
    batch = lik.log_prob({"mu": torch.tensor([0.48, 0.52], dtype=torch.float64)})
    assert one.shape == (5,) and batch.shape == (2, 5)
    torch.testing.assert_close(batch[1], one, rtol=1e-13, atol=0)
    torch.testing.assert_close(lik.evaluate({"mu": 0.52}).log_p, one, rtol=1e-13, atol=0)
    assert lik.log_sigma_fid({"mu": 0.5}).shape == ()


def test_gradient_matches_finite_differences():
    x = toy_reco(8, seed=4)
    lik = MEMLikelihood(toy_model(), x, n_samples=500, n_fiducial=20_000, seed=3)
    mu = torch.tensor(0.53, dtype=torch.float64, requires_grad=True)
    total = lik.log_prob({"mu": mu}).sum()
    (grad,) = torch.autograd.grad(total, mu)
    h = 1e-5

    def f(v):
        return float(lik.log_prob({"mu": torch.tensor(v, dtype=torch.float64)}).sum())

    fd = (f(0.53 + h) - f(0.53 - h)) / (2 * h)
    assert abs(float(grad) - fd) < 1e-6 * max(1.0, abs(fd))
    assert abs(fd) > 1.0  # a gradient that could be wrong


def test_common_random_numbers_make_log_p_smooth():
    x = toy_reco(4, seed=5)
    grid = torch.linspace(0.48, 0.52, 21, dtype=torch.float64)
    crn = MEMLikelihood(toy_model(), x, n_samples=300, n_fiducial=20_000, seed=4)
    lp = crn.log_prob({"mu": grid})
    err = crn.evaluate({"mu": grid[10]}).error
    d2 = (lp[2:] - 2 * lp[1:-1] + lp[:-2]).abs().max(0).values
    # exact curvature of log p over a step of 0.002 is ~1e-3; the MC error is ~0.05
    assert bool((d2 < 0.05 * err).all()), (d2, err)
    # without common random numbers (fresh draws per θ) the same differences are noise
    fresh = torch.stack([MEMLikelihood(toy_model(), x, n_samples=300, n_fiducial=20_000,
                                       seed=100 + i).log_prob({"mu": g})
                         for i, g in enumerate(grid[8:13])])
    d2_fresh = (fresh[2:] - 2 * fresh[1:-1] + fresh[:-2]).abs().max(0).values
    assert bool((d2_fresh > d2).all())


def test_bad_proposal_is_flagged_and_warned():
    x = toy_reco(6, seed=6)
    bad = MEMLikelihood(toy_model(ToyProposal(width=0.004, offset=0.02)), x, n_samples=500,
                        n_fiducial=10_000, seed=5)
    res = bad.evaluate({"mu": 0.5})
    assert bool(res.flagged.all())
    assert float(res.pareto_k.median()) > 0.7 and float(res.ess.median()) < 20
    with pytest.warns(MEMWarning, match="events have poor importance-sampling"):
        bad.log_prob({"mu": 0.5})
    strict = MEMLikelihood(toy_model(ToyProposal(width=0.004, offset=0.02)), x, n_samples=500,
                           n_fiducial=10_000, seed=5, on_flagged="raise")
    with pytest.raises(ValueError, match="poor importance-sampling"):
        strict.log_prob({"mu": 0.5})
    with pytest.raises(FlaggedEventsError, match="poor importance-sampling"):
        strict.log_prob({"mu": 0.5})  # the ValueError subclass shared with scans
    # the reasons: one mask per criterion, their union is `flagged`
    assert set(res.flag_reasons) == {"non-finite log p", "MC error > 0.1", "ESS < 20",
                                     "Pareto k > 0.7"}
    union = torch.stack(list(res.flag_reasons.values())).any(0)
    assert torch.equal(union, res.flagged)
    assert torch.equal(res.flag_reasons["ESS < 20"], res.ess < 20)
    assert torch.equal(res.flag_reasons["Pareto k > 0.7"], res.pareto_k > 0.7)
    # a scan over it says how many events and why
    with pytest.warns(FlaggedEventsWarning, match="6 of 6 events flagged .*ESS < 20: "):
        sc = scan(bad, {"mu": torch.tensor([0.45, 0.5, 0.55], dtype=torch.float64)})
    assert sc.summary()["n_flagged"] == 6 and sc.summary()["reliable"] is False
    good = MEMLikelihood(toy_model(), x, n_samples=500, n_fiducial=10_000, seed=5)
    r = good.evaluate({"mu": 0.5})
    assert not bool(r.flagged.any()) and float(r.pareto_k.max()) < 0.5
    assert not any(bool(m.any()) for m in r.flag_reasons.values())


def test_defensive_mixture_is_unbiased():
    x = toy_reco(10, seed=7)
    lik = MEMLikelihood(toy_model(), x, n_samples=2000, n_fiducial=400_000, seed=8,
                        defensive=0.2)
    res = lik.evaluate({"mu": 0.5})
    err = torch.sqrt(res.error**2 + res.sigma_fid_error**2)
    # 10 comparisons at 5σ: false failure < 6e-6
    assert float(((res.log_p - exact_log_p(x, 0.5)) / err).abs().max()) < 5


# -- Pareto k̂ -----------------------------------------------------------------------------
@pytest.mark.parametrize("xi", [0.3, 0.7])
def test_gpd_fit_recovers_known_shape(xi):
    g = torch.Generator().manual_seed(11)
    n = 20_000
    u = torch.rand(n, generator=g, dtype=torch.float64)
    y = 2.0 * ((1 - u) ** (-xi) - 1) / xi  # GPD(ξ, σ = 2) by inversion
    k, sigma = gpd_fit(torch.sort(y).values)
    # the asymptotic s.d. of the MLE of ξ is (1 + ξ)/√n; 5σ: fails with prob. < 6e-7
    assert abs(float(k) - xi) < 5 * (1 + xi) / math.sqrt(n)
    assert abs(float(sigma) - 2.0) < 0.1


def test_pareto_khat_on_pareto_weights():
    g = torch.Generator().manual_seed(12)
    # weights w = U^(-ξ) have a Pareto tail with index ξ
    lw = -0.8 * torch.log(torch.rand(4, 20_000, generator=g, dtype=torch.float64))
    k = pareto_khat(lw)
    assert bool(((k - 0.8).abs() < 0.15).all()), k
    light = pareto_khat(0.2 * torch.randn(4, 20_000, generator=g, dtype=torch.float64))
    assert bool((light < 0.3).all())


@pytest.mark.slow  # importing ArviZ alone takes ~15 s
def test_pareto_khat_equals_arviz():
    az = pytest.importorskip("arviz")
    g = torch.Generator().manual_seed(15)
    lw = -0.6 * torch.log(torch.rand(5, 3000, generator=g, dtype=torch.float64))
    lw = lw + 0.1 * torch.randn(5, 3000, generator=g, dtype=torch.float64)
    _, k_az = az.psislw(lw.numpy().copy(), reff=1.0)
    torch.testing.assert_close(pareto_khat(lw), torch.as_tensor(k_az), rtol=1e-8, atol=1e-10)


def test_pareto_khat_edge_cases():
    lw = torch.full((2, 100), -math.inf, dtype=torch.float64)
    lw[0, :5] = 0.0
    lw[1] = 0.0
    k = pareto_khat(lw)
    assert float(k[0]) == math.inf and float(k[1]) == -math.inf
    with pytest.raises(ValueError, match="at least 25"):
        pareto_khat(torch.zeros(10, dtype=torch.float64))
    with pytest.raises(ValueError, match="NaN"):
        pareto_khat(torch.full((30,), math.nan, dtype=torch.float64))


def test_summarize_weights_matches_definitions():
    g = torch.Generator().manual_seed(13)
    w = torch.rand(3, 50, generator=g, dtype=torch.float64) + 0.1
    s = summarize_weights(torch.log(w))
    torch.testing.assert_close(s.log_mean, w.mean(-1).log())
    torch.testing.assert_close(s.error, w.std(-1) / math.sqrt(50) / w.mean(-1))
    torch.testing.assert_close(s.ess, w.sum(-1) ** 2 / (w * w).sum(-1))


# -- real process: dσ/dμ cache and files ---------------------------------------------------
@pytest.fixture(scope="module")
def drell_yan():
    return get_process("drell-yan", mll_min=1500.0, mll_max=2500.0)


def test_differential_cache_equals_integrand(drell_yan):
    integ = HadronicIntegrand(drell_yan)
    g = torch.Generator().manual_seed(14)
    events, _ = integ.map.forward(torch.rand(300, 4, generator=g, dtype=torch.float64))
    x1 = events.x1.clone()
    x1[:5] = 1.5  # unphysical momentum fractions: dσ/dμ = 0 there
    events = HardEvents(events.momenta, x1, events.x2, events.sqrt_s)
    cache = DifferentialCache(integ, events, chunk_size=128)
    assert cache.lumi is not None
    params = drell_yan.params({"mzp": 2100.0, "gzp": 1.3})
    got = cache(params)
    assert bool((got[:5] == -math.inf).all())
    want = integ.differential(events[5:], params).log()
    torch.testing.assert_close(got[5:], want, rtol=1e-12, atol=1e-12)


def _dy_model(process, detector):
    return MEMModel(process, RecoGaussianProposal(detector, process.sqrt_s),
                    ExactTransfer(detector), ExactAcceptance(detector),
                    hard_observables="lepton_pt_eta_phi")


def test_model_save_load_round_trip(tmp_path, drell_yan):
    det = GaussianLeptonDetector()
    model = _dy_model(drell_yan, det)
    sim = simulate(drell_yan, det, 4000, seed=2)
    x = sim.x_reco[sim.passed][:3]
    path = tmp_path / "model"
    model.save(path)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        model.save(path)
    model.save(path, overwrite=True)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "file.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a saved MEM model"):
        model.save(tmp_path / "other", overwrite=True)
    loaded = MEMModel.load(path)
    assert loaded.process.mll_min == 1500.0 and loaded.hard_observables == "lepton_pt_eta_phi"
    kw = dict(n_samples=100, n_fiducial=2000, parameter_names=["mzp"], seed=9,
              on_flagged="ignore")
    a = MEMLikelihood(model, x, **kw).log_prob({"mzp": 2010.0})
    b = MEMLikelihood(loaded, x, **kw).log_prob({"mzp": 2010.0})
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(FileNotFoundError, match="no mem.json"):
        MEMModel.load(tmp_path / "other")


def test_bad_inputs_raise_clear_errors(drell_yan):
    x = toy_reco(3)
    model = toy_model()
    bad = x.clone()
    bad[1, 0] = math.nan
    with pytest.raises(ValueError, match="x_reco: 1 NaN"):
        MEMLikelihood(model, bad, n_samples=50, n_fiducial=100)
    with pytest.raises(ValueError, match="n_samples: expected an integer >= 25"):
        MEMLikelihood(model, x, n_samples=10)
    with pytest.raises(ValueError, match="parameter_names"):
        MEMLikelihood(model, x, n_samples=50, n_fiducial=100, parameter_names=["nope"])
    with pytest.raises(ValueError, match="defensive"):
        MEMLikelihood(model, x, n_samples=50, n_fiducial=100, defensive=1.0)
    lik = MEMLikelihood(model, x, n_samples=50, n_fiducial=100)
    assert lik.parameter_names == ("mu",)
    with pytest.raises(ValueError, match="missing \\['mu'\\]"):
        lik.log_prob({"sigma": 1.0})
    with pytest.raises(TypeError, match="theta: expected a mapping"):
        lik.log_prob(torch.tensor([0.5]))
    with pytest.raises(ValueError, match="mu: expected shape \\(\\) or \\(b,\\)"):
        lik.log_prob({"mu": torch.full((2, 2), 0.5, dtype=torch.float64)})
    with pytest.raises(ValueError, match="mu: 1 NaN"):
        lik.log_prob({"mu": torch.tensor(math.nan, dtype=torch.float64)})
    with pytest.raises(ValueError, match="mu: expected values in"):
        lik.log_prob({"mu": 0.95})
    with pytest.raises(TypeError, match="proposal: expected an object with sample_and_log_prob"):
        MEMModel(ToyProcess(), object(), ToyTransfer(), pdf=ToyPDF())
    with pytest.raises(ValueError, match="hard_observables"):
        MEMModel(ToyProcess(), ToyProposal(), ToyTransfer(), pdf=ToyPDF(), hard_observables="x")
    with pytest.raises(TypeError, match="not a registered process"):
        model.save("/tmp/never-written-invsim-mem")


def test_nan_from_networks_is_reported():
    class NaNTransfer(ToyTransfer):
        def log_prob(self, x_reco, x_hard):
            out = super().log_prob(x_reco, x_hard)
            out[0] = math.nan
            return out

    model = MEMModel(ToyProcess(), ToyProposal(), NaNTransfer(), ToyAcceptance(), pdf=ToyPDF())
    # the event is isolated (issue 18): named by index, an error only with on_flagged="error"
    with pytest.raises(ValueError, match=r"acceptance or transfer returned NaN.*indices \[0\]"):
        MEMLikelihood(model, toy_reco(2), n_samples=50, n_fiducial=100, on_flagged="error")
    with pytest.warns(MEMWarning, match=r"indices \[0\]"):
        lik = MEMLikelihood(model, toy_reco(2), n_samples=50, n_fiducial=100)
    assert list(lik.invalid_events) == [0]


def test_mixture_proposal_is_unbiased_and_tames_a_bad_component():
    from invsim.mem import StratifiedMixtureProposal as MixtureProposal

    x = toy_reco(10, seed=9)
    mix = MixtureProposal([ToyProposal(width=0.004, offset=0.02), ToyProposal()], [0.5, 0.5])
    assert mix.counts(2000) == [1000, 1000]
    lik = MEMLikelihood(toy_model(mix), x, n_samples=2000, n_fiducial=400_000, seed=10)
    res = lik.evaluate({"mu": 0.5})
    err = torch.sqrt(res.error**2 + res.sigma_fid_error**2)
    # 10 comparisons at 5σ: false failure < 6e-6
    assert float(((res.log_p - exact_log_p(x, 0.5)) / err).abs().max()) < 5
    assert not bool(res.flagged.any())
    with pytest.raises(ValueError, match="weights"):
        MixtureProposal([ToyProposal()], [0.0])
    with pytest.raises(TypeError, match="has no sample_and_log_prob"):
        MixtureProposal([object()], [1.0])


def test_pareto_khat_of_an_event_with_only_zero_weights_is_infinite():
    """An event whose every importance weight is zero (e.g. all draws outside the
    acceptance) gets k̂ = +inf and does not break the other rows' fits."""
    lw = torch.randn(3, 100, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    lw[1] = -math.inf
    lw[2, :60] = -math.inf
    k = pareto_khat(lw)
    assert math.isinf(float(k[1])) and float(k[1]) > 0
    assert math.isfinite(float(k[0])) and math.isfinite(float(k[2]))
    torch.testing.assert_close(k[0], pareto_khat(lw[:1])[0])
