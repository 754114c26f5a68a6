"""SimulatedAcceptance (ε̂ from the detector itself) and MEMLikelihood(fiducial_acceptance=).

The reference is the Gaussian detector's closed-form acceptance. The paired estimator
test compares Σ dσ·ε̂ with Σ dσ·ε on the same fiducial points in units of the
difference's own standard error: |z| < 4 fails by chance with probability 6e-5.
"""

from __future__ import annotations

import math

import pytest
import torch
from _helpers import small_mem_model

from forward.detector import GaussianLeptonDetector, describe_detector
from invsim.mem import MEMLikelihood
from invsim.mem.reweight import FiducialSample
from invsim.mem.simulated_acceptance import SimulatedAcceptance
from invsim.observables import RecoObservables, hard_pt_eta_phi
from invsim.pairs import simulate

DET = GaussianLeptonDetector(0.05, 0.03, 0.03, 100.0, 2.5)


def _paired_z(acc, n=20_000, seed=3):
    """z of mean(dσ·(ε̂ - ε)·jac) on one fiducial sample, and the share ε̂ = 0."""
    model = small_mem_model()
    fid = FiducialSample(model.coordinates.map, n, torch.Generator().manual_seed(seed))
    ev = fid.events
    ds = model.integrand.differential(ev, model.process.params({"mzp": 2050.0}))
    w = ds * torch.exp(fid.log_b)
    eps = torch.exp(DET.log_acceptance(hard_pt_eta_phi(ev)))
    d = w * (torch.exp(acc(ev)) - eps)
    return float(d.mean() / (d.std() / math.sqrt(n))), float(w.mean()), float(d.mean())


@pytest.mark.parametrize("observables", [None, RecoObservables(leptons=2)],
                         ids=["smear", "reconstruct"])
def test_pass_fraction_is_unbiased_against_closed_form(observables):
    acc = SimulatedAcceptance(small_mem_model().process, DET, observables, smearings=4, seed=5)
    z, sigma, diff = _paired_z(acc)
    assert abs(z) < 4.0, (z, sigma, diff)
    assert sigma > 0


def test_values_are_fractions_of_the_smearings():
    model = small_mem_model()
    fid = FiducialSample(model.coordinates.map, 500, torch.Generator().manual_seed(1))
    acc = SimulatedAcceptance(model.process, DET, smearings=3, seed=2)
    k = acc.passes(fid.events)
    assert k.shape == (500,)
    assert set(k.unique().tolist()) <= {0.0, 1.0, 2.0, 3.0}
    # the same seed gives the same pass counts; log ε̂ = log(k/3), -inf where none passed
    log_e = SimulatedAcceptance(model.process, DET, smearings=3, seed=2)(fid.events)
    assert torch.equal(torch.isinf(log_e), k == 0)
    assert torch.allclose(log_e[k > 0], torch.log(k[k > 0] / 3), rtol=0, atol=1e-15)
    assert bool((k == 0).any()) and bool((k == 3).any())


def test_bad_arguments_are_named():
    process = small_mem_model().process
    with pytest.raises(ValueError, match="smearings"):
        SimulatedAcceptance(process, DET, smearings=0)
    with pytest.raises(TypeError, match="detector"):
        SimulatedAcceptance(process, object())
    with pytest.raises(TypeError, match="observables"):
        SimulatedAcceptance(process, DET, observables="leptons")
    with pytest.raises(TypeError, match="events"):
        SimulatedAcceptance(process, DET)(torch.zeros(3, 2, 4))


def _x():
    return torch.tensor([[600.0, 0.3, 0.5, 590.0, -0.4, 0.5 - 3.1]], dtype=torch.float64)


def test_likelihood_fiducial_acceptance_choices():
    model = small_mem_model()
    kw = dict(n_samples=50, parameter_names=["mzp"], n_fiducial=20_000, seed=4)
    net = MEMLikelihood(model, _x(), **kw)
    assert net.fiducial_acceptance == "network"  # auto: the model knows no detector
    with pytest.raises(ValueError, match="fiducial_acceptance"):
        MEMLikelihood(model, _x(), fiducial_acceptance="detector", **kw)
    with pytest.raises(ValueError, match="fiducial_acceptance"):
        MEMLikelihood(model, _x(), fiducial_acceptance="exact", **kw)
    with pytest.raises(ValueError, match="fiducial_smearings"):
        MEMLikelihood(model, _x(), fiducial_smearings=0, **kw)
    # a callable; then the model's detector rebuilt: both agree with the exact ε
    sim = MEMLikelihood(model, _x(), fiducial_acceptance=SimulatedAcceptance(
        model.process, DET, smearings=4, seed=9), **kw)
    assert sim.fiducial_acceptance == "callable"
    model.detector = describe_detector(DET)
    det = MEMLikelihood(model, _x(), fiducial_acceptance="detector", **kw)
    assert det.fiducial_acceptance == "detector"
    theta = {"mzp": torch.tensor(2050.0, dtype=torch.float64)}
    ref = net.log_sigma_fid(theta)
    for lik in (sim, det):
        val = lik.log_sigma_fid(theta)
        err = float(lik.evaluate({"mzp": 2050.0}).sigma_fid_error)
        assert abs(float(val - ref)) < 4 * math.hypot(err, err), (float(val), float(ref), err)


def _event_acceptance_z(model, x, detector, smearings=8):
    """z of the mean over events of p̂(detector ε̂)/p̂(exact ε) − 1 on the same proposal
    draws (the per-draw ε̂ are independent across events: the mean's standard error is
    the spread over events / √m), and the likelihood."""
    kw = dict(n_samples=200, parameter_names=["mzp"], n_fiducial=5000, seed=4,
              fiducial_acceptance="network", on_flagged="ignore")
    exact = MEMLikelihood(model, x, event_acceptance="network", **kw)  # exact ε here
    model.detector = describe_detector(detector)
    sim = MEMLikelihood(model, x, event_acceptance="detector", event_smearings=smearings, **kw)
    assert torch.equal(sim.events.momenta, exact.events.momenta)  # the same draws
    theta = {"mzp": 2050.0}
    d = torch.expm1(sim.evaluate(theta).log_p - exact.evaluate(theta).log_p)
    return float(d.mean() / (d.std() / math.sqrt(len(d)))), sim


def test_likelihood_event_acceptance_from_the_detector_is_unbiased():
    """p̂ with the detector's ε̂ per proposal draw against the exact ε on the same draws:
    |z| < 4 (false failure 6e-5); a detector with |η| < 1.5 instead of 2.5 is caught."""
    sim = simulate(small_mem_model().process, DET, 6000, seed=21)
    x = sim.x_reco[sim.passed][:150]
    z, lik = _event_acceptance_z(small_mem_model(), x, DET)
    assert lik.event_acceptance == "detector"
    assert abs(z) < 4, z
    z_wrong, _ = _event_acceptance_z(small_mem_model(), x,
                                     GaussianLeptonDetector(0.05, 0.03, 0.03, 100.0, 1.5))
    assert z_wrong < -4, z_wrong


def test_likelihood_event_acceptance_choices():
    model = small_mem_model()
    kw = dict(n_samples=50, parameter_names=["mzp"], n_fiducial=2000, seed=4)
    assert MEMLikelihood(model, _x(), **kw).event_acceptance == "network"  # no detector
    with pytest.raises(ValueError, match="event_acceptance"):
        MEMLikelihood(model, _x(), event_acceptance="detector", **kw)
    with pytest.raises(ValueError, match="event_acceptance"):
        MEMLikelihood(model, _x(), event_acceptance="exact", **kw)
    with pytest.raises(ValueError, match="event_smearings"):
        MEMLikelihood(model, _x(), event_smearings=0, **kw)
    model.detector = describe_detector(DET)
    assert MEMLikelihood(model, _x(), **kw).event_acceptance == "detector"  # auto
    call = MEMLikelihood(model, _x(), event_acceptance=lambda ev: torch.zeros(len(ev)), **kw)
    assert call.event_acceptance == "callable"
