r"""The acceptance ε(y) of hard events estimated by running the detector itself.

The fiducial cross section in the ML-MEM's normalisation,

.. math:: \sigma_\text{fid}(\theta) = \int d\mu\, \frac{d\sigma(\theta)}{d\mu}(y)\, \varepsilon(y),

needs the probability ε(y) that a hard event y is reconstructed and selected. A
trained acceptance network gives a smooth ε with a small learned error, and that
error does not cancel: a slope of its error across the phase space tilts
σ_fid(θ), and with it the summed log-likelihood of m events, by m × Δ log σ_fid(θ).
:class:`SimulatedAcceptance` replaces the network by the detector: every hard event
of the fixed fiducial sample is passed through the detector and the analysis
selection ``smearings`` times, and ε̂(y) is the fraction that passed. ε̂ is unbiased,
so σ̂_fid(θ) is an unbiased estimate of σ_fid(θ) whose error (the binomial noise
included) is in the delta-method error of :class:`~invsim.mem.reweight.FiducialSample`;
it is fixed once for all θ (common random numbers), so σ̂_fid stays smooth in θ.

For a model whose transfer is a :class:`~invsim.transfer.SelectedTransfer` (the
response learned before the selection, divided by the network's ε) it is the only
consistent choice: there ε_net · r = r_all in the numerator, which integrates over the
selected x to the true ε. For a transfer trained on selected events, the network still
enters the numerator, but only through ε at each event's own hard configurations,
nearly independent of θ, while its error in σ_fid(θ) tilts the whole log-likelihood
and the expected event count. ``MEMLikelihood(fiducial_acceptance="auto")`` therefore
uses the detector whenever the model knows it (``benchmarks/mem.py``, Gaussian
detector 5 %/0.01, 1000 events, a model of 3·10⁵ trials: the largest deviation of the
summed −2Δlog L from the brute force within ±3σ went from 2.19 to 1.14).
"""

from __future__ import annotations

import math

import torch

from forward._validation import check_count, check_process, make_generator
from forward.events import HardEvents
from invsim.observables import RecoObservables, hard_pt_eta_phi

__all__ = ["SimulatedAcceptance"]


class SimulatedAcceptance:
    """log ε̂(y): the pass fraction of ``smearings`` detector simulations of each event.

    Args:
        process: the :class:`~forward.processes.Process` (draws each event's final-state
            flavours, :meth:`~forward.processes.Process.sample_final_state`).
        detector: a detector of the protocol of :mod:`forward.detector`
            (``reconstruct(events, pids, generator=)``), or one with
            ``smear(x_hard, generator=) -> (x_reco, passed)`` on the final state's
            (pT, η, φ) (then ``observables`` must be None).
        observables: the analysis's :class:`~invsim.observables.RecoObservables`
            (its selection decides what passes); default that of the process's final
            state for protocol detectors.
        smearings: detector simulations per hard event (>= 1); ε̂ takes the values
            0, 1/k, …, 1.
        seed: seed of the detector's random numbers (an int or a torch.Generator).

    Calling it on hard events (n,) returns log ε̂, shape (n,) float64 in [-inf, 0]
    (-inf where no simulation passed).

    Example::

        acc = SimulatedAcceptance(process, Detector("cms"), observables, smearings=4)
        lik = MEMLikelihood(model, x_reco, fiducial_acceptance=acc)
    """

    def __init__(self, process, detector, observables: RecoObservables | None = None, *,
                 smearings: int = 4, seed=0) -> None:
        self.process = check_process(process)
        self.smearings = check_count("smearings", smearings)
        self._use_smear = observables is None and callable(getattr(detector, "smear", None))
        if not self._use_smear and not callable(getattr(detector, "reconstruct", None)):
            raise TypeError(f"detector: expected reconstruct(events, pids) or smear(x_hard), "
                            f"got {type(detector).__name__}")
        if observables is not None and not isinstance(observables, RecoObservables):
            raise TypeError(f"observables: expected RecoObservables or None, got "
                            f"{type(observables).__name__}")
        if not self._use_smear and observables is None:
            observables = RecoObservables.for_process(process)
        self.detector = detector
        self.observables = observables
        if isinstance(seed, torch.Generator):
            self._seed, self._gen = None, seed
        else:
            make_generator(seed)  # checks it
            self._seed, self._gen = seed, None

    def _generator(self, device) -> torch.Generator:
        if self._gen is None or (self._seed is not None
                                 and self._gen.device.type != torch.device(device).type):
            self._gen = make_generator(self._seed, device=device)
        return self._gen

    def passes(self, events: HardEvents) -> torch.Tensor:
        """Number of the ``smearings`` simulations of each event that passed, shape (n,)."""
        if not isinstance(events, HardEvents):
            raise TypeError(f"events: expected HardEvents, got {type(events).__name__}")
        dev = events.momenta.device
        gen = self._generator(dev)
        count = torch.zeros(len(events), dtype=torch.float64, device=dev)
        for _ in range(self.smearings):
            if self._use_smear:
                _, ok = self.detector.smear(hard_pt_eta_phi(events), generator=gen)
            else:
                pids = self.process.sample_final_state(len(events), generator=gen, device=dev)
                ok = self.observables.extract(
                    self.detector.reconstruct(events, pids, generator=gen)).selected
            count += ok.to(device=dev, dtype=torch.float64)
        return count

    def __call__(self, events: HardEvents) -> torch.Tensor:
        """log ε̂ of hard events (n,), shape (n,) float64, -inf where none passed."""
        return torch.log(self.passes(events)) - math.log(self.smearings)
