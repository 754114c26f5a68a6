"""invsim.transfer: learned transfer function and acceptance against analytic toys."""

from __future__ import annotations

import math

import pytest
import torch
from _helpers import save_refusing_overwrite

from invsim.flows import FlowConfig, TrainConfig, observable_preprocessing
from invsim.transfer import AcceptanceClassifier, SelectedTransfer, TransferFunction, reliability

F64 = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")  # one torch thread (conftest.py)


# ---------------------------------------------------------------- transfer function
def _sigma(h):
    return 0.1 * torch.exp(0.25 * h)


def _smearing_toy(g, n):
    """Hard h ~ U(-2, 2); reco r = h + σ(h) ε, ε ~ N(0, 1): Gaussian smearing, known r(r|h)."""
    h = 4 * torch.rand(n, 1, generator=g, dtype=F64) - 2
    return h, h + _sigma(h) * torch.randn(n, 1, generator=g, dtype=F64)


def _log_r_true(r, h):
    return torch.distributions.Normal(h, _sigma(h)).log_prob(r).sum(-1)


def _transfer(kind="autoregressive", hidden=(32, 32), transforms=2):
    return TransferFunction(
        observable_preprocessing(["real"]),
        observable_preprocessing(["real"]),
        FlowConfig(kind=kind, transforms=transforms, hidden_features=hidden),
    )


@pytest.mark.slow
def test_transfer_matches_gaussian_smearing():
    """Learned log r within 0.05 nats RMS of the analytic Gaussian on 5000 held-out points."""
    g = torch.Generator().manual_seed(31)
    h, r = _smearing_toy(g, 40000)
    tf = _transfer()
    cfg = TrainConfig(epochs=60, batch_size=256, lr=3e-3, patience=None)
    tf.fit(h, r, config=cfg, seed=0, progress=False)
    ht, rt = _smearing_toy(g, 5000)
    with torch.no_grad():
        d = tf.log_prob(rt, ht).double() - _log_r_true(rt, ht)
    rms = float(d.pow(2).mean().sqrt())
    print(f"transfer: RMS(log r_learned - log r_true) = {rms:.4f} nats, "
          f"mean = {float(d.mean()):.4f}")
    assert rms < 0.05, rms


def test_transfer_api_save_load_and_sampling(tmp_path):
    g = torch.Generator().manual_seed(32)
    h, r = _smearing_toy(g, 600)
    tf = _transfer(kind="coupling", hidden=(16,))
    res = tf.fit(h, r, config=TrainConfig(epochs=3, batch_size=100), seed=0, progress=False)
    assert len(res.train_loss) == 3
    with torch.no_grad():
        lp = tf.log_prob(r[:7], h[:7])
        assert lp.shape == (7,)
        assert torch.allclose(tf(h[:7]).log_prob(r[:7].float()), lp)
    s1 = tf.sample(h[:4], 5, generator=torch.Generator().manual_seed(1))
    s2 = tf.sample(h[:4], 5, generator=torch.Generator().manual_seed(1))
    assert s1.shape == (5, 4, 1) and torch.equal(s1, s2)
    path = tmp_path / "tf.pt"
    save_refusing_overwrite(tf, path)
    loaded = TransferFunction.load(path)
    with torch.no_grad():
        assert torch.equal(loaded.log_prob(r[:7], h[:7]), lp)
    with pytest.raises(ValueError, match="same number of events"):
        tf.log_prob(r[:7], h[:6])
    with pytest.raises(ValueError, match=r"x_hard: expected shape \(n, 1\)"):
        tf.fit(h.repeat(1, 2), r, config=TrainConfig(epochs=1), progress=False)
    with pytest.raises(ValueError, match="is not an invsim 'acceptance' file"):
        AcceptanceClassifier.load(path)


# ---------------------------------------------------------------- acceptance
def _eps_true(x):
    return 0.9 * torch.sigmoid(2.0 * x[:, 0] - 0.5)


def _check_binned_acceptance(eps, xt, x, draws_per_event: int = 1) -> None:
    """ε̂ in 12 bins of x within 4 binomial σ of the truth (σ from the training counts)."""
    bins = ((xt[:, 0] + 3) / 0.5).long().clamp(0, 11)
    n_train = draws_per_event * torch.bincount(((x[:, 0] + 3) / 0.5).long().clamp(0, 11),
                                               minlength=12).double()
    truth = _eps_true(xt)
    for b in range(12):
        m = bins == b
        e_hat, e_true = float(eps[m].mean()), float(truth[m].mean())
        sigma = math.sqrt(e_true * (1 - e_true) / float(n_train[b]))
        assert abs(e_hat - e_true) < 4 * sigma, (b, e_hat, e_true, sigma)


def _acceptance_toy(g, n):
    x = 6 * torch.rand(n, 1, generator=g, dtype=F64) - 3
    return x, torch.rand(n, generator=g, dtype=F64) < _eps_true(x)


def test_acceptance_matches_known_efficiency(tmp_path):
    """ε(x) = 0.9 σ(2x - 0.5) on x ~ U(-3, 3), 20000 training events.

    Per bin of x (12 bins), the classifier's mean ε must agree with the true mean ε within
    4 binomial standard deviations of the training events in that bin: the pulls of a
    fit no worse than a per-bin count are ~N(0, 1) (observed spread ≈ 1, largest 2.2, over
    seeds 41, 43, 44), so a correct fit fails with probability < 1e-3. Reliability on
    20000 independent events: observed - predicted = (observed - true) + (true - predicted),
    the second term no larger than the binomial error of an equal-size training sample, so
    chi2 / 2 is at most a chi2(ndof) variable and the bound ndof + 5 sqrt(2 ndof) on it
    fails with probability < 1e-4."""
    g = torch.Generator().manual_seed(41)
    x, passed = _acceptance_toy(g, 20000)
    clf = AcceptanceClassifier(observable_preprocessing(["real"]), hidden_features=(32, 32))
    cfg = TrainConfig(epochs=15, batch_size=256, lr=3e-3, patience=5, validation_fraction=0.2)
    clf.fit(x, passed, config=cfg, seed=0, progress=False)
    xt, pt = _acceptance_toy(g, 20000)
    with torch.no_grad():
        eps = clf(xt).double()
    assert eps.shape == (20000,)
    _check_binned_acceptance(eps, xt, x)
    rel = reliability(eps, pt, bins=10)
    assert rel.ndof >= 8
    assert rel.chi2 / 2 < rel.ndof + 5 * math.sqrt(2 * rel.ndof), rel
    # save / load
    path = tmp_path / "acc.pt"
    clf.save(path)
    loaded = AcceptanceClassifier.load(path)
    with torch.no_grad():
        assert torch.equal(loaded(xt[:50]), clf(xt[:50]))


def test_reliability_detects_miscalibration():
    g = torch.Generator().manual_seed(42)
    eps = torch.rand(20000, generator=g, dtype=F64)
    outcome = torch.rand(20000, generator=g, dtype=F64) < eps
    good = reliability(eps, outcome)
    # chi2 with 10 dof: P(chi2 > 10 + 5 sqrt(20)) < 1e-4 for calibrated predictions
    assert good.chi2 < 10 + 5 * math.sqrt(20)
    bad = reliability(eps.sqrt(), outcome)  # over-confident in the passing direction
    assert bad.chi2 > 100
    assert torch.allclose(good.counts.sum(), torch.tensor(20000))


def test_acceptance_bad_input():
    clf = AcceptanceClassifier(observable_preprocessing(["real"]), hidden_features=(4,))
    x = torch.randn(50, 1, dtype=F64)
    with pytest.raises(ValueError, match=r"passed: expected shape \(50,\)"):
        clf.fit(x, torch.ones(49, dtype=torch.bool), progress=False)
    with pytest.raises(ValueError, match="0/1"):
        clf.fit(x, torch.full((50,), 2.0), progress=False)
    bad = x.clone()
    bad[0, 0] = math.inf
    with pytest.raises(ValueError, match="x_hard: 0 NaN and 1 infinite"):
        clf.fit(bad, torch.ones(50, dtype=torch.bool), progress=False)
    with pytest.raises(ValueError, match="validation_fraction"):
        clf.fit(x, torch.ones(50, dtype=torch.bool),
                config=TrainConfig(validation_fraction=0.0), progress=False)
    with pytest.raises(ValueError, match="eps: expected probabilities"):
        reliability(torch.tensor([0.5, 1.5]), torch.tensor([True, False]))


def test_constructors_reject_non_preprocessing_arguments():
    from invsim.flows.builders import ConditionalFlow
    from invsim.transfer import AcceptanceClassifier, TransferFunction

    with pytest.raises(TypeError, match="hard_preprocessing: expected a Preprocessing, got dict"):
        AcceptanceClassifier({})
    with pytest.raises(TypeError, match="hard_preprocessing: expected a Preprocessing"):
        TransferFunction(None, "not a pipeline")
    with pytest.raises(TypeError, match="x_preprocessing: expected a Preprocessing, got int"):
        ConditionalFlow(3)


def test_acceptance_learns_from_pass_fractions():
    """Soft targets: the pass fraction of 4 detector draws per event (same toy as above).

    The per-bin check of the 0/1 test with the binomial error of all 4 x 20000 draws; the
    cross-entropy with fractions has the same minimiser ε, so a correct fit fails with
    probability < 1e-3 as there."""
    g = torch.Generator().manual_seed(45)
    x = 6 * torch.rand(20000, 1, generator=g, dtype=F64) - 3
    frac = (torch.rand(4, 20000, generator=g, dtype=F64) < _eps_true(x)).double().mean(0)
    clf = AcceptanceClassifier(observable_preprocessing(["real"]), hidden_features=(32, 32))
    cfg = TrainConfig(epochs=15, batch_size=256, lr=3e-3, patience=5, validation_fraction=0.2)
    clf.fit(x, frac, config=cfg, seed=0, progress=False)
    xt = torch.linspace(-2.99, 2.99, 12000, dtype=F64)[:, None]
    with torch.no_grad():
        eps = clf(xt).double()
    _check_binned_acceptance(eps, xt, x, draws_per_event=4)
    with pytest.raises(ValueError, match="pass fractions in"):
        clf.fit(x[:50], torch.full((50,), 1.5), progress=False)


def test_selected_transfer_cancels_the_acceptance(tmp_path):
    """r of selected events = r_det / ε: ε·r is the response before the selection exactly,
    whatever the (here barely trained) acceptance network says; save/load round trip."""
    g = torch.Generator().manual_seed(33)
    h, r = _smearing_toy(g, 2000)
    passed = r[:, 0] > 0.5  # a cut on the reco observable
    response = _transfer(kind="coupling", hidden=(16,))
    response.fit(h, r, config=TrainConfig(epochs=2, batch_size=200), seed=0, progress=False)
    acc = AcceptanceClassifier(observable_preprocessing(["real"]), hidden_features=(8,))
    acc.fit(h, passed, config=TrainConfig(epochs=2, batch_size=200), seed=0, progress=False)
    sel = SelectedTransfer(response, acc)
    hs, rs = h[passed][:50], r[passed][:50]
    with torch.no_grad():
        lp = sel.log_prob(rs, hs)
        log_eps = torch.nn.functional.logsigmoid(acc.logits(hs))
        assert lp.shape == (50,)
        assert torch.allclose(lp + log_eps, response.log_prob(rs, hs), atol=1e-5)
    path = tmp_path / "sel.pt"
    save_refusing_overwrite(sel, path)
    loaded = SelectedTransfer.load(path)
    with torch.no_grad():
        assert torch.equal(loaded.log_prob(rs, hs), lp)
    with pytest.raises(ValueError, match="is not an invsim 'transfer' file"):
        TransferFunction.load(path)
    with pytest.raises(TypeError, match="response: expected a TransferFunction"):
        SelectedTransfer(acc, acc)
    with pytest.raises(TypeError, match="acceptance: expected an AcceptanceClassifier"):
        SelectedTransfer(response, response)


@pytest.mark.slow
def test_dilepton_recipe_with_selected_response_and_smearings(tmp_path):
    """build_dilepton_model(smearings=2, selected_response=True): twice the pairs for the
    response (all of them, selected or not), and ε·r in the MEM model is the response's
    density exactly, independent of the acceptance network; the model saves and loads.
    About 20 s on one core."""
    from forward.detector import GaussianLeptonDetector
    from forward.processes import get_process
    from invsim.mem import MEMModel
    from invsim.mem.recipe import build_dilepton_model
    from invsim.unfold import Unfolder

    process = get_process("drell-yan", mll_min=1500.0, mll_max=2500.0)
    detector = GaussianLeptonDetector(0.03, 0.02, 0.02, 100.0, 2.5)
    model, info = build_dilepton_model(process, detector, n_trials=20_000, epochs=1,
                                       smearings=2, selected_response=True,
                                       acceptance_hidden=(16,), acceptance_epochs=2)
    assert info["transfer_pairs"] == 2 * info["train_events"]
    assert isinstance(model.transfer, SelectedTransfer)
    assert model.transfer.acceptance is model.acceptance
    assert model.acceptance.hidden_features == (16,)
    assert isinstance(model.proposal, Unfolder) and model.proposal.azimuth == (3, 2)
    x_reco = torch.tensor([[600.0, 0.3, 1.0, 590.0, -0.8, -2.1]], dtype=F64)
    events = model.proposal.sample(x_reco, 30, generator=torch.Generator().manual_seed(0))
    xr = x_reco.expand(30, -1)
    with torch.no_grad():
        both = model.log_acceptance(events) + model.log_transfer(xr, events)
        direct = model.transfer.response.log_prob(xr, model.hard_features(events)).double()
    assert torch.allclose(both, direct, atol=1e-5)
    model.save(tmp_path / "m")
    loaded = MEMModel.load(tmp_path / "m")
    with torch.no_grad():
        assert torch.allclose(loaded.log_acceptance(events) + loaded.log_transfer(xr, events),
                              both, atol=1e-12)
    with pytest.raises(ValueError, match="smearings: expected an integer >= 1"):
        build_dilepton_model(process, detector, n_trials=100, epochs=1, smearings=0)


def test_recipe_mixture_shares_favour_the_best_component():
    """The component of the largest median ESS gets 1 - 0.05 (k - 1), the others 0.05."""
    from invsim.mem.recipe import _mixture_weights

    assert _mixture_weights([4.0, 40.0]) == pytest.approx([0.05, 0.95])
    assert _mixture_weights([30.0, 2.0, 10.0]) == pytest.approx([0.9, 0.05, 0.05])
    with pytest.raises(ValueError, match="ess"):
        _mixture_weights([])
