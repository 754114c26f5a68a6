"""Per-event isolation in the likelihood (issue 18, item 6).

An event with zero likelihood (a reco point the transfer gives density 0) or with a NaN
from the networks is reported by index and never breaks the estimates or diagnostics
of the others; ``on_flagged="drop"`` leaves it out, every other choice fails naming it.
The MEM toy of ``test_mem`` (every piece Gaussian) is the likelihood: its transfer does
not consume random numbers, so a likelihood with one spoiled event draws the same
proposal samples as the unspoiled one and the other events' values agree bit for bit.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from test_mem import (
    MEMModel,
    ToyAcceptance,
    ToyPDF,
    ToyProcess,
    ToyProposal,
    ToyTransfer,
    toy_reco,
)

from invsim.infer import InferenceProblem, build_priors
from invsim.infer.flags import FlaggedEventsError, FlaggedEventsWarning, non_finite_events
from invsim.infer.likelihood import check_event_log_prob
from invsim.infer.toys import GaussianMean
from invsim.mem import MEMLikelihood, MEMWarning
from invsim.scan import scan

BAD = 3
N = 20
GRID = {"mu": torch.linspace(0.4, 0.6, 5, dtype=torch.float64)}


class SpoiledTransfer(ToyTransfer):
    """The toy transfer, but ``value`` (-inf: zero density; NaN) for one reco event."""

    def __init__(self, x_bad: float, value: float) -> None:
        self.x_bad, self.value = x_bad, value

    def log_prob(self, x_reco, x_hard):
        lp = super().log_prob(x_reco, x_hard)
        return torch.where(x_reco[:, 0] == self.x_bad, torch.full_like(lp, self.value), lp)


def _lik(x, transfer=None, **kw):
    model = MEMModel(ToyProcess(), ToyProposal(), transfer or ToyTransfer(), ToyAcceptance(),
                     pdf=ToyPDF())
    return MEMLikelihood(model, x, n_samples=200, n_fiducial=5000, seed=2, **kw)


@pytest.fixture(scope="module")
def likelihoods():
    x = toy_reco(N, seed=1)
    good = _lik(x, on_flagged="ignore")
    zero = _lik(x, SpoiledTransfer(float(x[BAD, 0]), -math.inf), on_flagged="ignore")
    with pytest.warns(MEMWarning, match=rf"indices \[{BAD}\]"):
        nan = _lik(x, SpoiledTransfer(float(x[BAD, 0]), math.nan), on_flagged="warn")
    return good, zero, nan


@pytest.mark.parametrize("which, reason", [(1, "-inf"), (2, "NaN")])
def test_bad_event_reported_by_index_others_untouched(likelihoods, which, reason):
    good, bad = likelihoods[0], likelihoods[which]
    theta = {"mu": torch.tensor(0.5, dtype=torch.float64)}
    rg, rb = good.evaluate(theta), bad.evaluate(theta)
    assert non_finite_events(rb.log_p) == {BAD: non_finite_events(rb.log_p)[BAD]}
    assert reason in non_finite_events(rb.log_p)[BAD]
    assert bool(rb.flagged[BAD]) and bool(rb.flag_reasons["non-finite log p"][BAD])
    others = torch.arange(N) != BAD
    # the other events: same values and diagnostics, Pareto k̂ included
    for field in ("log_p", "error", "ess", "pareto_k"):
        torch.testing.assert_close(getattr(rb, field)[others], getattr(rg, field)[others],
                                   rtol=0, atol=0)
    assert math.isinf(float(rb.pareto_k[BAD])) and float(rb.pareto_k[BAD]) > 0


def test_nan_in_constructor_with_on_flagged_error_names_the_event():
    x = toy_reco(N, seed=1)
    with pytest.raises(FlaggedEventsError, match=rf"indices \[{BAD}\]"):
        _lik(x, SpoiledTransfer(float(x[BAD, 0]), math.nan), on_flagged="error")


@pytest.mark.parametrize("which", [1, 2])
def test_scan_fails_naming_event_or_drops_it(likelihoods, which):
    good, bad = likelihoods[0], likelihoods[which]
    for mode in ("error", "warn", "ignore"):
        with pytest.raises(FlaggedEventsError, match=rf"\[{BAD} \(log p = .*on_flagged='drop'"):
            scan(bad, GRID, on_flagged=mode)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MEMWarning)
        with pytest.warns(FlaggedEventsWarning, match=rf"left out 1 of {N} events \[{BAD}"):
            res = scan(bad, GRID, on_flagged="drop")
    assert res.n_events == N - 1
    # the reference: the unspoiled likelihood's values summed over the other events
    keep = torch.arange(N) != BAD
    want = torch.stack([good.log_prob({"mu": m})[keep].sum() for m in GRID["mu"]])
    log_l = torch.as_tensor(res.dataset["log_l"].values)
    torch.testing.assert_close(log_l - log_l.max(), want - want.max(), rtol=0, atol=1e-9)


def test_inference_problem_drops_or_fails(likelihoods):
    _, bad, _ = likelihoods
    priors = build_priors(bad.parameters, bad.parameter_names)
    with pytest.raises(FlaggedEventsError, match=rf"\[{BAD} "):
        InferenceProblem(bad, priors, on_flagged="warn")
    with pytest.warns(FlaggedEventsWarning, match="left out"):
        prob = InferenceProblem(bad, priors, on_flagged="drop")
    assert prob.n_events == N - 1 and list(prob.dropped) == [BAD]


class ShortLikelihood(GaussianMean):
    """Scores one event fewer than it has: 49 values for 50 events."""

    @property
    def n_events(self) -> int:
        return int(self.x.shape[0])

    def log_prob(self, theta):
        return super().log_prob(theta)[..., :-1]


def test_wrong_number_of_values_refused():
    x = torch.linspace(-1, 1, 50, dtype=torch.float64)
    lik = ShortLikelihood(x, 1.0)
    with pytest.raises(ValueError, match="expected 50 values .* got 49"):
        scan(lik, {"mu": torch.linspace(-0.5, 0.5, 5, dtype=torch.float64)})
    with pytest.raises(ValueError, match="expected 50 values .* got 49"):
        InferenceProblem(lik, build_priors(lik.parameters, lik.parameter_names))


def test_no_events_refused():
    with pytest.raises(ValueError, match="no events"):
        check_event_log_prob(torch.zeros(0, dtype=torch.float64), None, None)
    class NoEvents(GaussianMean):
        def log_prob(self, theta):
            return super().log_prob(theta)[..., :0]

    lik = NoEvents(torch.zeros(3, dtype=torch.float64), 1.0)
    with pytest.raises(ValueError, match="no events"):
        scan(lik, {"mu": torch.linspace(-0.5, 0.5, 5, dtype=torch.float64)})


def test_cli_scan_on_a_file_without_events_is_an_error(tmp_path, capsys):
    pytest.importorskip("h5py")
    from forward.eventset import EventSet
    from forward.io import save_hdf5
    from invsim.cli import main

    ev = EventSet(process="drell-yan", momenta=torch.zeros(0, 2, 4, dtype=torch.float64),
                  x1=torch.zeros(0, dtype=torch.float64), x2=torch.zeros(0, dtype=torch.float64),
                  pids=torch.tensor([11, -11]), sqrt_s=13000.0, seed=3)
    path = tmp_path / "empty.h5"
    try:
        save_hdf5(ev, path)
    except ValueError:
        pytest.skip("the writer refuses an empty event set (nothing to scan then)")
    factory = tmp_path / "lik.py"
    factory.write_text("from invsim.infer.toys import GaussianMean\n\n"
                       "def make(events):\n"
                       "    return GaussianMean(events.momenta[:, 0, 3], 1.0)\n")
    with pytest.raises(SystemExit) as info:
        main(["scan", "--data", str(path), "--likelihood", f"{factory}:make",
              "--param", "mu=-1:1:5", "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "no events" in err and "Traceback" not in err, err
    assert not (tmp_path / "out" / "scan.json").exists()
