r"""Prior-independent cINN unfolding: condition on a calibrated per-data-set reco summary.

An :class:`~invsim.unfold.Unfolder` trained on events simulated at one parameter point
θ₀ learns the posterior p(x_hard | x_reco) under the prior dσ(θ₀)/dμ. Where a single
event's reco observables constrain θ poorly (the top mass: m_t ± ~15 GeV per event
against a 1.3 GeV line shape), that posterior is dominated by the prior, and the unfolded
distribution of a data set at θ ≠ θ₀ stays close to θ₀ (the bias of the "naive"
unfolding; arXiv:2501.12363).

**Why a per-data-set condition.** Training on several points θ_k mixes their priors,
which does not help by itself: the per-event posterior under the mixture still averages
over the θ_k with weights the event hardly changes. Adding a per-event reco quantity t(x_reco)
(e.g. an m(bℓ) estimator) to the condition does not change this either: t is a
function of x_reco, already in the condition, so the Bayes posterior is the same (it
only eases the network's learning). What identifies the data's θ is the whole data set.
So :class:`PriorIndependentUnfolder` conditions the flow, besides x_reco, on a
**per-data-set summary** s(D) = aggregate_i t(x_reco,i) (median by default) of a
per-event reco statistic t, calibrated linearly to the parameter scale on the training
points (:class:`DatasetSummary`): θ̂(D) = (s(D) − a)/b. In training, every event is
conditioned on θ̂ of its own training sample (or of a random subset of it of a given
size, to show the network the summary's statistical noise); applied to data, on θ̂ of the
data set. The flow thus learns q(x_hard | x_reco, θ̂) ≈ p(x_hard | x_reco, θ = θ̂): the
posterior under the prior *the data select*, which moves with the data and not with
the training mixture. Between and near the training points it relies on the smoothness
of the flow in θ̂ (three points 3 GeV apart for the top mass); far outside them it
extrapolates and is not to be trusted.

The statistical error of anything measured on the unfolded events must include the
noise of θ̂(D): :func:`bootstrap_unfolded` resamples the reco events, recomputes the
summary, re-unfolds and re-measures.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from forward._validation import as_tensor, make_generator
from forward.events import HardEvents
from invsim.flows.builders import FlowConfig
from invsim.flows.preprocessing import Preprocessing
from invsim.flows.training import TrainConfig, TrainResult, read_file, write_file
from invsim.hardspace import HardCoordinates
from invsim.unfold import Unfolder

__all__ = ["BootstrapResult", "DatasetSummary", "PriorIndependentUnfolder",
           "bootstrap_unfolded"]

_AGGREGATES = ("median", "mean")
_KIND = "prior_independent_unfolder"
_PROBE_ROWS = 32


def _check_int(name: str, v, low: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise ValueError(f"{name}: expected an integer >= {low}, got {v!r}")
    return v


class DatasetSummary:
    """s(D) = aggregate over events of t(x_reco), calibrated to a parameter θ.

    Args:
        statistic: per-event reco statistic, ``statistic(x_reco) -> (m,)`` tensor for
            x_reco of shape (m, *reco_event_shape) (e.g. an m(bℓ) estimator in GeV).
            Non-finite values (events where it is undefined) are left out of the
            aggregate.
        name: the parameter's name (an identifier, e.g. ``"mt"``).
        aggregate: ``"median"`` (robust to tails; default) or ``"mean"``.
        min_events: least number of events with a finite statistic in a data set (>= 2).

    Attributes:
        intercept, slope: the linear calibration s = intercept + slope · θ, fitted by
            :meth:`fit` (None before).
    """

    def __init__(self, statistic: Callable[[torch.Tensor], torch.Tensor], *, name: str = "theta",
                 aggregate: str = "median", min_events: int = 10) -> None:
        if not callable(statistic):
            raise TypeError(f"statistic: expected a callable x_reco -> (m,) tensor, got "
                            f"{type(statistic).__name__}")
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"name: expected an identifier, got {name!r}")
        if aggregate not in _AGGREGATES:
            raise ValueError(f"aggregate: expected one of {list(_AGGREGATES)}, got {aggregate!r}")
        self.statistic = statistic
        self.name = name
        self.aggregate = aggregate
        self.min_events = _check_int("min_events", min_events, 2)
        self.intercept: float | None = None
        self.slope: float | None = None

    def raw(self, x_reco) -> float:
        """The uncalibrated summary s(D) of a data set x_reco, shape (m, ...)."""
        x = as_tensor("x_reco", x_reco, dtype=torch.float64)
        if x.ndim < 2:
            raise ValueError(f"x_reco: expected shape (m, ...) with one row per event, got "
                             f"{tuple(x.shape)}")
        t = torch.as_tensor(self.statistic(x)).detach().to("cpu", torch.float64)
        if t.shape != (x.shape[0],):
            raise ValueError(f"statistic: expected shape ({x.shape[0]},) for x_reco of shape "
                             f"{tuple(x.shape)}, got {tuple(t.shape)}")
        t = t[torch.isfinite(t)]
        if t.numel() < self.min_events:
            raise ValueError(f"x_reco: {t.numel()} of {x.shape[0]} events have a finite "
                             f"statistic, expected at least {self.min_events}")
        return float(t.median() if self.aggregate == "median" else t.mean())

    def fit(self, samples: Sequence, theta: Sequence[float]) -> DatasetSummary:
        """Least-squares linear calibration s = a + b θ on samples at known θ.

        Args:
            samples: reco data sets x_reco, one per parameter point (at least 2).
            theta: their parameter values, as many as samples, at least 2 distinct.

        Returns:
            self.
        """
        theta = [float(t) for t in theta]
        if len(samples) != len(theta) or len(samples) < 2:
            raise ValueError(f"samples, theta: expected as many samples as θ values, at least "
                             f"2, got {len(samples)} and {len(theta)}")
        if len(set(theta)) < 2:
            raise ValueError(f"theta: expected at least 2 distinct values, got {theta}")
        s = np.array([self.raw(x) for x in samples])
        slope, intercept = np.polyfit(np.asarray(theta), s, 1)
        span = float(np.ptp(theta)) * abs(slope)
        if not (math.isfinite(slope) and span > 1e-9 * max(1.0, float(np.abs(s).max()))):
            raise ValueError(f"statistic: its {self.aggregate} does not depend on "
                             f"{self.name} (slope {slope}); it cannot calibrate it")
        self.intercept, self.slope = float(intercept), float(slope)
        return self

    @property
    def fitted(self) -> bool:
        """Whether :meth:`fit` has run."""
        return self.slope is not None

    def __call__(self, x_reco) -> float:
        """The calibrated summary θ̂(D) = (s(D) − a)/b of a data set x_reco."""
        if not self.fitted:
            raise RuntimeError("DatasetSummary: not calibrated; call fit() first")
        return (self.raw(x_reco) - self.intercept) / self.slope

    def to_dict(self) -> dict:
        """The calibration (name, aggregate, intercept, slope); the statistic is code."""
        return {"name": self.name, "aggregate": self.aggregate, "min_events": self.min_events,
                "intercept": self.intercept, "slope": self.slope}

    def __repr__(self) -> str:
        return (f"DatasetSummary(name={self.name!r}, aggregate={self.aggregate!r}, "
                f"intercept={self.intercept}, slope={self.slope})")


class PriorIndependentUnfolder:
    """q(x_hard | x_reco, θ̂(D)): a cINN conditioned on a calibrated data-set summary.

    See the module docstring. Wraps an :class:`~invsim.unfold.Unfolder` whose only θ is
    the summary's name (``self.unfolder``; its densities, efficiency and fake models are
    available there with ``theta={name: θ̂}``).

    Args:
        coordinates: hard-event coordinates (as for :class:`~invsim.unfold.Unfolder`); their
            support must hold the hard events of every training point.
        reco_preprocessing: preprocessing of the reco observables.
        summary: the per-data-set statistic (calibrated by :meth:`fit`).
        config: flow architecture.
        seed: seed of the initial weights.
        dtype: parameter dtype of the networks.
        azimuth: as for :class:`~invsim.unfold.Unfolder`.

    Example::

        summary = DatasetSummary(mbl_minmax_statistic, name="mt")
        unf = PriorIndependentUnfolder(coords, observable_preprocessing(obs.kinds), summary)
        unf.fit(hard, x_reco, mt_per_event)        # events at 169.5, 172.5, 175.5 GeV
        events = unf.sample(x_reco_data, 10)       # follows the data's m_t
    """

    def __init__(self, coordinates: HardCoordinates, reco_preprocessing: Preprocessing,
                 summary: DatasetSummary, config: FlowConfig | None = None, *, seed: int = 0,
                 dtype: torch.dtype = torch.float32,
                 azimuth: tuple[int, int] | None = None) -> None:
        if not isinstance(summary, DatasetSummary):
            raise TypeError(f"summary: expected a DatasetSummary, got {type(summary).__name__}")
        self.summary = summary
        self.unfolder = Unfolder(coordinates, reco_preprocessing, config,
                                 theta_names=(summary.name,), seed=seed, dtype=dtype,
                                 azimuth=azimuth)
        self._probe: torch.Tensor | None = None  # training reco rows checking the statistic

    @property
    def name(self) -> str:
        """The parameter's name (the summary's)."""
        return self.summary.name

    def fit(self, hard: HardEvents, x_reco, theta, *, subset_size: int | None = None,
            config: TrainConfig | None = None, seed: int = 0,
            progress: bool = True) -> TrainResult:
        """Calibrate the summary on the training points and train the flow.

        Args:
            hard: hard events that passed reco, n of them (momenta (n, k, 4) in GeV).
            x_reco: their reco observables, shape (n, *reco_event_shape).
            theta: the parameter value each event was simulated at, shape (n,); at least
                2 distinct values (the training points), each with at least
                ``summary.min_events`` events.
            subset_size: None (default): every event is conditioned on θ̂ of its whole
                training point's sample. A number m: each point's events are split at
                random into subsets of about m events (the size of the data to unfold) and
                conditioned on θ̂ of their subset, so the flow sees the summary's noise.
            config: training settings (default ``TrainConfig()``).
            seed: seeds the subsets, the split and the batch order.
            progress: show a tqdm bar.

        Returns:
            The flow's :class:`~invsim.flows.TrainResult`.
        """
        if not isinstance(hard, HardEvents):
            raise TypeError(f"hard: expected HardEvents, got {type(hard).__name__}")
        n = self.unfolder._reco(x_reco).shape[0]
        t = as_tensor("theta", theta)
        if n != len(hard) or t.shape != (len(hard),):
            raise ValueError(f"hard, x_reco, theta: expected {len(hard)} events each and theta "
                             f"of shape ({len(hard)},), got x_reco with {n} rows and theta "
                             f"{tuple(t.shape)}")
        cond = self.training_condition(x_reco, theta, subset_size=subset_size, seed=seed)
        return self.unfolder.fit(hard, x_reco, {self.name: cond}, config=config, seed=seed,
                                 progress=progress)

    def training_condition(self, x_reco, theta, *, subset_size: int | None = None,
                           seed: int = 0) -> torch.Tensor:
        """Calibrate the summary on the training points; the condition θ̂ of each event.

        Args:
            x_reco, theta, subset_size, seed: as for :meth:`fit`.

        Returns:
            θ̂ per event, shape (n,) float64: the calibrated summary of the event's
            training point's sample, or of its random subset with ``subset_size``.
        """
        x = self.unfolder._reco(x_reco)
        t = as_tensor("theta", theta, dtype=torch.float64).detach().cpu()
        if t.shape != (x.shape[0],):
            raise ValueError(f"theta: expected shape ({x.shape[0]},) to match x_reco, got "
                             f"{tuple(t.shape)}")
        if not bool(torch.isfinite(t).all()):
            raise ValueError("theta: expected finite parameter values")
        points = torch.unique(t)
        if len(points) < 2:
            raise ValueError(f"theta: expected at least 2 training points, got the single "
                             f"value {float(points[0])} (use Unfolder for one point)")
        if subset_size is not None:
            _check_int("subset_size", subset_size, self.summary.min_events)
        x_cpu = x.detach().cpu()
        groups = [torch.nonzero(t == p).squeeze(1) for p in points]
        self.summary.fit([x_cpu[i] for i in groups], points.tolist())
        self._probe = x_cpu[:_PROBE_ROWS].to(torch.float64).clone()
        cond = torch.empty(len(t), dtype=torch.float64)
        g = make_generator(seed)
        for idx in groups:
            if subset_size is None or subset_size >= len(idx):
                cond[idx] = self.summary(x_cpu[idx])
                continue
            perm = idx[torch.randperm(len(idx), generator=g)]
            k = max(1, len(idx) // subset_size)
            for part in torch.tensor_split(perm, k):
                cond[part] = self.summary(x_cpu[part])
        return cond

    def condition(self, x_reco) -> float:
        """θ̂(D) of a reco data set x_reco, shape (m, *reco_event_shape)."""
        return self.summary(self.unfolder._reco(x_reco).detach().cpu())

    def sample(self, x_reco, n: int, *, generator: torch.Generator | None = None) -> HardEvents:
        """Draw n hard events per reco event, conditioned on the data set's θ̂(D).

        Args:
            x_reco: the data set, m reco events, shape (m, *reco_event_shape).
            n: samples per reco event (>= 1).
            generator: random generator on the flow's device.

        Returns:
            HardEvents of m * n events, event-major (see :meth:`Unfolder.sample`).
        """
        return self.unfolder.sample(x_reco, n, {self.name: self.condition(x_reco)},
                                    generator=generator)

    # -- persistence -------------------------------------------------------------------
    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Save the unfolder, the summary's calibration and a probe of its statistic.

        One file, written atomically (:func:`invsim.flows.training.write_file`), holding
        tensors, numbers and strings only (read back with ``torch.load(weights_only=True)``;
        no module paths): the :class:`~invsim.unfold.Unfolder` checkpoint, the summary's
        :meth:`DatasetSummary.to_dict`, and the first 32 training reco rows with the
        statistic's values there, so that :meth:`load` can check the statistic it is
        given. The statistic itself is code and is not saved.

        Args:
            path: the file.
            overwrite: replace an existing file.

        Raises:
            RuntimeError: not trained (no calibration).
            FileExistsError: ``path`` exists and ``overwrite`` is False.
        """
        if not self.summary.fitted or self._probe is None:
            raise RuntimeError("PriorIndependentUnfolder: not trained; call fit() first")
        values = torch.as_tensor(self.summary.statistic(self._probe)).detach().to(
            "cpu", torch.float64)
        write_file(path, {"kind": _KIND, "unfolder": self.unfolder._payload(),
                          "summary": self.summary.to_dict(),
                          "probe_x_reco": self._probe, "probe_statistic": values},
                   overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike, statistic: Callable[[torch.Tensor], torch.Tensor],
             *, coordinates: HardCoordinates | None = None,
             map_location=None) -> PriorIndependentUnfolder:
        """Load an unfolder written by :meth:`save`.

        Args:
            path: the file.
            statistic: the per-event reco statistic the summary was calibrated with
                (checked against the saved probe values: equal within 1e-9 relative).
            coordinates: the hard coordinates it was trained with (as for
                :meth:`Unfolder.load <invsim.unfold.Unfolder.load>`).
            map_location: device to load onto (as for ``torch.load``).

        Raises:
            FileNotFoundError: no such file.
            ValueError: not a prior-independent unfolder file; coordinates that differ
                from the saved ones; a statistic whose values on the probe differ.
            TypeError: ``statistic`` not callable.
        """
        d = read_file(path, _KIND, map_location=map_location)
        s = d["summary"]
        summary = DatasetSummary(statistic, name=s["name"], aggregate=s["aggregate"],
                                 min_events=s["min_events"])
        probe = d["probe_x_reco"].to("cpu", torch.float64)
        want = d["probe_statistic"].to("cpu", torch.float64)
        got = torch.as_tensor(statistic(probe)).detach().to("cpu", torch.float64)
        if got.shape != want.shape or not torch.allclose(got, want, rtol=1e-9, atol=1e-12,
                                                          equal_nan=True):
            raise ValueError(f"statistic: its values on the saved probe rows of {path} differ "
                             "from those of the statistic the unfolder was calibrated with")
        summary.intercept, summary.slope = float(s["intercept"]), float(s["slope"])
        obj = cls.__new__(cls)
        obj.summary = summary
        obj.unfolder = Unfolder._from_payload(d["unfolder"], map_location, coordinates)
        if obj.unfolder.theta_names != (summary.name,):
            raise ValueError(f"path: {path} holds an unfolder conditioned on "
                             f"{obj.unfolder.theta_names}, not on ({summary.name!r},)")
        obj._probe = probe
        return obj

    def __repr__(self) -> str:
        return f"PriorIndependentUnfolder({self.summary!r}, {self.unfolder!r})"


@dataclass(frozen=True)
class BootstrapResult:
    """Result of :func:`bootstrap_unfolded`.

    Attributes:
        estimate: the estimator on the unfolding of the full data set.
        error: standard deviation of the bootstrap replicates (the 68 % error).
        replicates: the replicates' estimates, shape (n_boot,) float64.
    """

    estimate: float
    error: float
    replicates: torch.Tensor

    @property
    def interval(self) -> tuple[float, float]:
        """The 68 % interval estimate ± error."""
        return self.estimate - self.error, self.estimate + self.error


def bootstrap_unfolded(
    unfold: Callable[[torch.Tensor, torch.Generator], HardEvents],
    estimator: Callable[[HardEvents], float],
    x_reco,
    n_boot: int = 50,
    *,
    seed: int = 0,
) -> BootstrapResult:
    """Estimate on unfolded events with a bootstrap error over the reco events.

    Each replicate resamples the m reco events with replacement, unfolds them afresh
    (so a per-data-set condition such as :meth:`PriorIndependentUnfolder.condition` is
    recomputed) and applies the estimator. The spread covers the data's statistical
    noise and the unfolding's sampling noise, not the network's training uncertainty.

    Args:
        unfold: ``unfold(x_reco, generator) -> HardEvents``, e.g.
            ``lambda x, g: unf.sample(x, 4, generator=g)``.
        estimator: ``estimator(events) -> float``, e.g. a peak fit's location.
        x_reco: the reco data set, shape (m, ...).
        n_boot: number of replicates (>= 2).
        seed: seeds the resampling and the unfolding.

    Returns:
        :class:`BootstrapResult`.
    """
    if not callable(unfold) or not callable(estimator):
        raise TypeError("unfold, estimator: expected callables")
    _check_int("n_boot", n_boot, 2)
    x = as_tensor("x_reco", x_reco, dtype=torch.float64)
    if x.ndim < 2 or x.shape[0] < 2:
        raise ValueError(f"x_reco: expected shape (m, ...) with m >= 2, got {tuple(x.shape)}")
    g = make_generator(seed)
    estimate = float(estimator(unfold(x, g)))
    reps = []
    for _ in range(n_boot):
        idx = torch.randint(x.shape[0], (x.shape[0],), generator=g)
        reps.append(float(estimator(unfold(x[idx], g))))
    r = torch.tensor(reps, dtype=torch.float64)
    return BootstrapResult(estimate, float(r.std()), r)
