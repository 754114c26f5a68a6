r"""cINN unfolding: a conditional flow q(x_hard | x_reco [, θ]) over hard events.

The :class:`Unfolder` learns the posterior of the hard event given its reconstructed
observables from paired simulated events. It models the unconstrained coordinates
z of a :class:`~invsim.hardspace.HardCoordinates` (4 for a 2 → 2 process), conditioned
on the preprocessed reco observables and, optionally, on theory parameters θ (both
standardised), so that

.. math:: \log q_\mu(x_\text{hard} \mid x_\text{reco}, \theta)
          = \log q_z(z \mid x_\text{reco}, \theta) + \log\Big|\frac{\partial z}{\partial\mu}\Big|

is a density w.r.t. the one hard-event measure dμ = dx1 dx2 dΦ_n of
:mod:`forward.events`; :meth:`Unfolder.sample_and_log_prob` makes an unfolder a valid
proposal of the matrix-element method.

Trained on events simulated at one parameter point, the posterior carries that point's
prior dσ(θ)/dμ; trained on several points with ``theta_names``, the prior is the one
of the θ given at sampling time.

**Efficiency and fakes.** The flow is trained on events that pass reconstruction, so
it unfolds to the hard distribution *of accepted events*. Two optional classifiers
(:class:`~invsim.transfer.AcceptanceClassifier`, reused) correct for that:

* ε(x_hard) = P(pass | x_hard), trained on all simulated hard events by
  :meth:`Unfolder.fit_efficiency`; weighting unfolded samples with 1/ε restores the
  full hard distribution (Σ_i q(x | r_i)/ε(x) → N_total p(x));
* π(x_reco) = P(the reco event has a hard partner | x_reco), trained on signal and
  fake reco events by :meth:`Unfolder.fit_fakes`; weighting reco events by π removes
  the expected fakes (for the signal-to-fake mixture of the training sample).

:meth:`Unfolder.sample_weighted` returns samples with both weights.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from forward._validation import as_tensor, check_finite
from forward.events import HardEvents
from invsim.flows.builders import ConditionalFlow, FlowConfig
from invsim.flows.preprocessing import (
    Preprocessing,
    Standardize,
    observable_preprocessing,
    preprocessing_from_dict,
    require_preprocessing,
)
from invsim.flows.training import (
    TrainConfig,
    TrainResult,
    read_file,
    split_indices,
    train_flow,
    write_file,
)
from invsim.hardspace import HardCoordinates
from invsim.transfer import AcceptanceClassifier

__all__ = ["Unfolder"]

# fixed hypercube points whose mapped momenta are stored with a saved unfolder, so that
# loading with other coordinates than those it was trained with is detected
_PROBE_SEED = 20260617
_PROBE_POINTS = 5


def _probe(coordinates: HardCoordinates) -> torch.Tensor:
    g = torch.Generator().manual_seed(_PROBE_SEED)
    r = 0.1 + 0.8 * torch.rand(_PROBE_POINTS, coordinates.dim, generator=g, dtype=torch.float64)
    events, _ = coordinates.map.forward(r)
    return torch.cat([events.momenta.flatten(1), events.x1[:, None], events.x2[:, None]], 1)


def _process_description(process, params, channel: int) -> dict | None:
    """Plain description (registry name, settings, params, channel) or None if not plain."""
    from forward.processes import process_name, process_settings

    try:
        name = process_name(process)
        settings = process_settings(process, strict=True)
    except TypeError:
        return None
    plain = {}
    for key, value in dict(params or {}).items():
        t = torch.as_tensor(value)
        if t.numel() != 1:
            return None
        plain[key] = float(t)
    return {"name": name, "settings": settings, "params": plain, "channel": channel}


def _check_azimuth(azimuth, dim: int, reco: Preprocessing) -> tuple[int, int] | None:
    """Checked ``azimuth`` option of :class:`Unfolder`: (hard coordinate, reco column)."""
    if azimuth is None:
        return None
    ok = (isinstance(azimuth, (tuple, list)) and len(azimuth) == 2
          and all(isinstance(i, int) and not isinstance(i, bool) for i in azimuth))
    if ok and len(reco.event_shape) != 1:
        raise ValueError(f"azimuth: needs flat reco observables, got event shape "
                         f"{reco.event_shape}")
    if not ok or not (0 <= azimuth[0] < dim and 0 <= azimuth[1] < reco.features):
        raise ValueError(f"azimuth: expected (j, c) with hard coordinate j in [0, {dim}) and "
                         f"reco column c in [0, {reco.features}), got {azimuth!r}")
    return int(azimuth[0]), int(azimuth[1])


class Unfolder(nn.Module):
    """q(x_hard | x_reco [, θ]): a conditional normalising flow over hard events.

    Args:
        coordinates: hard-event coordinates z (the flow models z; densities w.r.t. dμ).
        reco_preprocessing: preprocessing of the reco observables, event shape e.g.
            (d,) observables or (k, 4) momenta; its standardisation is fitted on the
            training split by :meth:`fit` if not already fitted.
        config: flow architecture (default ``FlowConfig()``).
        theta_names: names of the conditioning parameters θ (e.g. ``("mzp",)``); empty
            for an unfolder at one parameter point.
        seed: seed of the initial weights (the global RNG is left untouched).
        dtype: parameter dtype of the networks (hard events come out in float64).
        azimuth: ``(j, c)`` or None. Hard coordinate j is an azimuth read as
            r_j = φ/2π (mod 1) on the map's unit cube (for Drell–Yan's channel: j = 3, the
            φ of the first lepton), and column c of the flat reco observables holds the
            reconstructed azimuth of the same object in radians. The flow then models r_j
            rotated by the reco azimuth, r'_j = (r_j - φ_reco/2π + 1/2) mod 1: a rotation of
            the circle (unit Jacobian, exact at fixed x_reco) that centres the posterior
            at 1/2, so it never straddles the map's cut at φ = 0 and no longer depends on
            φ_reco.

    Example::

        process = get_process("drell-yan", mll_min=60, mll_max=120)
        unf = Unfolder(HardCoordinates.from_process(process),
                       observable_preprocessing(["log", "real", "phi"] * 2))
        unf.fit(hard, x_reco)                           # hard: HardEvents (n,), x_reco (n, 6)
        events = unf.sample(x_reco_obs, 100)            # HardEvents (m * 100,)
    """

    def __init__(
        self,
        coordinates: HardCoordinates,
        reco_preprocessing: Preprocessing,
        config: FlowConfig | None = None,
        *,
        theta_names: Sequence[str] = (),
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
        azimuth: tuple[int, int] | None = None,
    ):
        super().__init__()
        if not isinstance(coordinates, HardCoordinates):
            raise TypeError(
                f"coordinates: expected a HardCoordinates, got {type(coordinates).__name__}"
            )
        require_preprocessing("reco_preprocessing", reco_preprocessing)
        if isinstance(theta_names, str):
            raise TypeError(f"theta_names: expected a sequence of names, got {theta_names!r}")
        names = tuple(theta_names)
        if not all(isinstance(s, str) and s.isidentifier() for s in names) or len(
            set(names)
        ) != len(names):
            raise ValueError(f"theta_names: expected distinct identifiers, got {names!r}")
        self.coordinates = coordinates
        self.reco_preprocessing = reco_preprocessing
        self.theta_names = names
        self.azimuth = _check_azimuth(azimuth, coordinates.dim, reco_preprocessing)
        n_ctx = reco_preprocessing.features + len(names)
        self.flow = ConditionalFlow(
            observable_preprocessing(["real"] * coordinates.dim),
            Preprocessing([Standardize(n_ctx)]),
            config,
            seed=seed,
            dtype=dtype,
        )
        self.efficiency_model: AcceptanceClassifier | None = None
        self.purity_model: AcceptanceClassifier | None = None
        self._description: dict | None = None

    @classmethod
    def from_process(
        cls,
        process,
        reco_preprocessing: Preprocessing,
        config: FlowConfig | None = None,
        *,
        params: Mapping | None = None,
        channel: int = 0,
        theta_names: Sequence[str] = (),
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
        azimuth: tuple[int, int] | None = None,
    ) -> Unfolder:
        """An unfolder on a process's phase-space channel (see ``HardCoordinates.from_process``).

        Unlike the constructor, it remembers the process (registry name and plain
        settings), so :meth:`load` can rebuild the coordinates without being given them.

        Args:
            process: a built-in :class:`~forward.processes.Process`.
            reco_preprocessing, config, theta_names, seed, dtype, azimuth: as for the
                constructor.
            params: parameter values fixing the channel's map (numbers); defaults if None.
            channel: index into ``process.phase_space(params)``.
        """
        obj = cls(HardCoordinates.from_process(process, params, channel), reco_preprocessing,
                  config, theta_names=theta_names, seed=seed, dtype=dtype, azimuth=azimuth)
        obj._description = _process_description(process, params, channel)
        return obj

    # -- inputs ------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """Number of hard coordinates modelled."""
        return self.coordinates.dim

    def _theta(self, theta, m: int) -> torch.Tensor | None:
        """θ as a float64 tensor of shape (m, len(theta_names)) (None without θ)."""
        k = len(self.theta_names)
        if k == 0:
            if theta is not None:
                raise ValueError("theta: this unfolder is not conditioned on θ, expected None")
            return None
        if theta is None:
            raise ValueError(f"theta: this unfolder is conditioned on {self.theta_names}; "
                             "give their values")
        if isinstance(theta, Mapping):
            missing = [s for s in self.theta_names if s not in theta]
            extra = sorted(set(theta) - set(self.theta_names))
            if missing or extra:
                raise ValueError(
                    f"theta: expected the names {list(self.theta_names)}, missing {missing}, "
                    f"unknown {extra}"
                )
            cols = []
            for s in self.theta_names:
                v = as_tensor(f"theta[{s!r}]", theta[s], dtype=torch.float64).detach()
                if v.ndim > 1 or (v.ndim == 1 and v.shape[0] not in (1, m)):
                    raise ValueError(
                        f"theta[{s!r}]: expected a number or shape ({m},), got {tuple(v.shape)}"
                    )
                cols.append(v.reshape(-1).expand(m))
            t = torch.stack(cols, -1)
        else:
            t = as_tensor("theta", theta, dtype=torch.float64).detach()
            if t.ndim == 1 and t.shape[0] == k:
                t = t.expand(m, k)
            if t.shape != (m, k):
                raise ValueError(
                    f"theta: expected shape ({k},) or ({m}, {k}) for {list(self.theta_names)}, "
                    f"got {tuple(t.shape)}"
                )
        check_finite("theta", t)
        return t.cpu()

    def _reco(self, x_reco) -> torch.Tensor:
        return self.reco_preprocessing.check_events("x_reco", x_reco)

    def _context(self, x_reco: torch.Tensor, theta) -> torch.Tensor:
        """Unstandardised context [reco features, θ], shape (m, n_ctx) float64 on CPU."""
        if not self.reco_preprocessing.fitted:
            raise RuntimeError("Unfolder: reco preprocessing is not fitted; call fit() first")
        y, _ = self.reco_preprocessing.features_of("x_reco", x_reco)
        y = y.detach().to("cpu", torch.float64)
        t = self._theta(theta, y.shape[0])
        return y if t is None else torch.cat([y, t], -1)

    def _hard_z(self, name: str, hard) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(hard, HardEvents):
            raise TypeError(f"{name}: expected HardEvents, got {type(hard).__name__}")
        check_finite(f"{name}.momenta", hard.momenta)
        return self.coordinates.features(hard.to(torch.float64))

    def _rotate(self, z: torch.Tensor, log_det: torch.Tensor, x_reco: torch.Tensor,
                inverse: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Map coordinates z to the flow's z' (``azimuth``), or back with ``inverse``.

        Returns the mapped coordinates, shape (n, dim), and log|∂z'/∂μ| from log|∂z/∂μ|
        (forward) or from the log_det of the mapped-back z (inverse), shape (n,).
        """
        if self.azimuth is None:
            return z, log_det
        j, c = self.azimuth
        ref = x_reco[:, c].to(device=z.device, dtype=torch.float64) / (2 * math.pi)
        zj = z[:, j].to(torch.float64)
        r = torch.sigmoid(zj)
        shift = 0.5 - ref if not inverse else ref - 0.5
        r_new = torch.remainder(r + shift, 1.0).clamp(1e-15, 1 - 1e-15)
        z_new = torch.log(r_new) - torch.log1p(-r_new)
        out = z.clone()
        out[:, j] = z_new.to(z.dtype)
        # log r(1 - r) of both sides; dz'/dz = r(1 - r) / (r'(1 - r'))
        log_old = -(F.softplus(-zj) + F.softplus(zj))
        log_new = torch.log(r_new) + torch.log1p(-r_new)
        flow_side, hard_side = (log_new, log_old) if not inverse else (log_old, log_new)
        return out, log_det + (hard_side - flow_side).to(log_det)

    def _inside(self, name: str, z: torch.Tensor, log_det: torch.Tensor) -> torch.Tensor:
        bad = ~torch.isfinite(log_det)
        if bool(bad.any()):
            i = int(bad.nonzero()[0, 0])
            raise ValueError(
                f"{name}: {int(bad.sum())} of {len(bad)} hard events lie outside the support "
                f"of the coordinates' phase-space map (e.g. m_ll outside its window); first "
                f"is event {i}"
            )
        return z

    @staticmethod
    def _same_n(a: int, b: int, names: str) -> None:
        if a != b:
            raise ValueError(f"{names}: expected the same number of events, got {a} and {b}")

    # -- training ------------------------------------------------------------------------
    def fit(
        self,
        hard: HardEvents,
        x_reco,
        theta=None,
        *,
        config: TrainConfig | None = None,
        seed: int = 0,
        progress: bool = True,
        checkpoint: str | os.PathLike | None = None,
    ) -> TrainResult:
        """Maximum-likelihood training on paired (hard, reco) events that pass reco.

        Args:
            hard: hard events, n of them (momenta (n, k, 4) in GeV), all inside the
                coordinates' support.
            x_reco: their reco observables, shape (n, *reco_event_shape).
            theta: the parameters each event was simulated with: shape (n, len(theta_names))
                or a mapping name -> number or (n,) tensor; None without ``theta_names``.
            config: training settings (default ``TrainConfig()``).
            seed: seeds the train/validation split and batch order.
            progress: show a tqdm bar.
            checkpoint: resumable training-state file (see :func:`invsim.flows.fit_module`).

        Returns:
            The :class:`~invsim.flows.TrainResult`; losses are -log q_z in nats per event
            (w.r.t. dz; add the mean log|∂z/∂μ| for nats w.r.t. dμ).
        """
        config = config or TrainConfig()
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config: expected a TrainConfig, got {type(config).__name__}")
        z, log_det = self._hard_z("hard", hard)
        z = self._inside("hard", z, log_det)
        x_reco = self._reco(x_reco)
        self._same_n(len(z), x_reco.shape[0], "hard, x_reco")
        z, _ = self._rotate(z, log_det, x_reco)
        if not self.reco_preprocessing.fitted:
            train_idx, _ = split_indices(len(z), config.validation_fraction, seed)
            self.reco_preprocessing.fit(x_reco[train_idx])
        context = self._context(x_reco, theta)
        y_dim = self.reco_preprocessing.features
        for j, name in enumerate(self.theta_names):
            col = context[:, y_dim + j]
            if bool((col == col[0]).all()):
                raise ValueError(
                    f"theta: {name!r} takes one value ({float(col[0])}) in all training events; "
                    "the unfolder cannot learn a dependence on it (drop it from theta_names)"
                )
        return train_flow(self.flow, z, context, config=config, seed=seed, progress=progress,
                          checkpoint=checkpoint)

    def fit_efficiency(
        self,
        hard: HardEvents,
        passed,
        *,
        hidden_features: tuple[int, ...] = (64, 64),
        config: TrainConfig | None = None,
        seed: int = 0,
        progress: bool = True,
    ) -> TrainResult:
        """Train ε(x_hard) = P(pass reco | x_hard) on the hard coordinates z.

        Args:
            hard: all simulated hard events (passing or not), n of them.
            passed: whether each passed reconstruction and selection, shape (n,).
            hidden_features: MLP widths of the classifier.
            config: training settings (default ``TrainConfig()``; needs a validation
                split for the Platt calibration).
            seed: seeds the weights, split and batch order.
            progress: show a tqdm bar.

        Returns:
            The classifier's :class:`~invsim.flows.TrainResult`.
        """
        z, log_det = self._hard_z("hard", hard)
        z = self._inside("hard", z, log_det)
        clf = AcceptanceClassifier(observable_preprocessing(["real"] * self.dim),
                                   hidden_features, seed=seed, dtype=self.flow.dtype)
        result = clf.fit(z, passed, config=config, seed=seed, progress=progress)
        self.efficiency_model = clf.to(self.flow.device)
        return result

    def fit_fakes(
        self,
        x_reco,
        matched,
        *,
        hidden_features: tuple[int, ...] = (64, 64),
        config: TrainConfig | None = None,
        seed: int = 0,
        progress: bool = True,
    ) -> TrainResult:
        """Train π(x_reco) = P(has a hard partner | x_reco) on signal and fake reco events.

        π is valid for the signal-to-fake mixture of the training sample.

        Args:
            x_reco: reco observables of signal and fake events, shape (n, *reco_event_shape).
            matched: whether each reco event has a hard partner (False: fake), shape (n,).
            hidden_features, config, seed, progress: as for :meth:`fit_efficiency`.

        Returns:
            The classifier's :class:`~invsim.flows.TrainResult`.
        """
        x_reco = self._reco(x_reco)
        labels = as_tensor("matched", matched)
        if labels.shape != (x_reco.shape[0],):  # named here: the classifier says "passed"
            raise ValueError(f"matched: expected shape ({x_reco.shape[0]},) to match x_reco, "
                             f"got {tuple(labels.shape)}")
        pre = preprocessing_from_dict(self.reco_preprocessing.to_dict())  # an own copy
        clf = AcceptanceClassifier(pre, hidden_features, seed=seed, dtype=self.flow.dtype)
        result = clf.fit(x_reco, matched, config=config, seed=seed, progress=progress)
        self.purity_model = clf.to(self.flow.device)
        return result

    # -- densities and samples ---------------------------------------------------------
    def log_prob(self, hard: HardEvents, x_reco, theta=None) -> torch.Tensor:
        """log q(x_hard | x_reco, θ) w.r.t. dμ = dx1 dx2 dΦ_n.

        Args:
            hard: m hard events (momenta (m, k, 4) in GeV).
            x_reco: reco observables, shape (m, *reco_event_shape), one per hard event.
            theta: parameters, shape (len(theta_names),), (m, len(theta_names)) or a
                mapping name -> value; None without ``theta_names``.

        Returns:
            float64 tensor of shape (m,); -inf for hard events outside the support.
        """
        z, log_det = self._hard_z("hard", hard)
        x_reco = self._reco(x_reco)
        self._same_n(len(z), x_reco.shape[0], "hard, x_reco")
        context = self._context(x_reco, theta)
        inside = torch.isfinite(log_det)
        z, log_det = self._rotate(z, torch.where(inside, log_det, torch.zeros_like(log_det)),
                                  x_reco)
        lq = self.flow.log_prob(z, context).to(torch.float64) + log_det.to(self.flow.device)
        return torch.where(inside.to(lq.device), lq, torch.full_like(lq, -math.inf))

    def sample_and_log_prob(
        self,
        x_reco,
        n: int,
        theta=None,
        *,
        generator: torch.Generator | None = None,
    ) -> tuple[HardEvents, torch.Tensor]:
        """Draw n hard events per reco event, with their log-density w.r.t. dμ.

        Args:
            x_reco: m reco events, shape (m, *reco_event_shape).
            n: samples per reco event (>= 1).
            theta: parameters (see :meth:`log_prob`); one value or one per reco event.
            generator: random generator on the flow's device (None: torch's global one).

        Returns:
            (events, log_q): HardEvents of m * n events in float64, event-major (reco event
            i's samples are rows i*n:(i+1)*n); log q(x_hard | x_reco, θ) w.r.t. dμ, shape
            (m, n) float64. No autograd graph is kept.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n: expected an integer >= 1, got {n!r}")
        x_reco = self._reco(x_reco)
        context = self._context(x_reco, theta)
        m = context.shape[0]
        with torch.no_grad():
            z, lq_z = self.flow.sample_and_log_prob(context, n, generator=generator)  # (n, m)
            z = z.transpose(0, 1).reshape(m * n, self.dim).to(torch.float64)
            lq_z = lq_z.transpose(0, 1).reshape(m * n)
            if self.azimuth is not None:
                rep = x_reco.repeat_interleave(n, 0)
                z_hard, _ = self._rotate(z, torch.zeros(m * n, dtype=torch.float64,
                                                        device=z.device), rep, inverse=True)
                events, log_det = self.coordinates.events(z_hard)
                _, log_det = self._rotate(z_hard, log_det, rep)
            else:
                events, log_det = self.coordinates.events(z)
            log_q = lq_z.to(torch.float64) + log_det.to(lq_z.device)
        return events, log_q.reshape(m, n)

    def sample(
        self,
        x_reco,
        n: int,
        theta=None,
        *,
        generator: torch.Generator | None = None,
    ) -> HardEvents:
        """Draw n hard events per reco event (see :meth:`sample_and_log_prob`).

        Returns:
            HardEvents of m * n events, event-major.
        """
        return self.sample_and_log_prob(x_reco, n, theta, generator=generator)[0]

    def efficiency(self, hard: HardEvents) -> torch.Tensor:
        """ε(x_hard) from the classifier of :meth:`fit_efficiency`, shape (n,) float64."""
        if self.efficiency_model is None:
            raise RuntimeError("Unfolder: no efficiency model; call fit_efficiency() first")
        z, log_det = self._hard_z("hard", hard)
        inside = torch.isfinite(log_det)
        with torch.no_grad():
            eps = self.efficiency_model(z).to(torch.float64)
        return torch.where(inside.to(eps.device), eps, torch.zeros_like(eps))

    def purity(self, x_reco) -> torch.Tensor:
        """π(x_reco) = P(has a hard partner) from :meth:`fit_fakes`, shape (m,) float64."""
        if self.purity_model is None:
            raise RuntimeError("Unfolder: no fake model; call fit_fakes() first")
        with torch.no_grad():
            return self.purity_model(self._reco(x_reco)).to(torch.float64)

    def sample_weighted(
        self,
        x_reco,
        n: int,
        theta=None,
        *,
        min_efficiency: float = 1e-3,
        generator: torch.Generator | None = None,
    ) -> tuple[HardEvents, torch.Tensor]:
        """Unfolded samples with weights for the efficiency and fakes.

        The weight of sample j of reco event i is π(r_i) / (n · max(ε(x_ij), min_efficiency)),
        with π = 1 without a fake model and ε = 1 without an efficiency model; summed over
        all samples the weights estimate the number of hard events behind the reco sample.

        Args:
            x_reco: m reco events, shape (m, *reco_event_shape).
            n: samples per reco event.
            theta: parameters (see :meth:`log_prob`).
            min_efficiency: lower bound on ε in the weights, in (0, 1] (regions where
                almost nothing is reconstructed cannot be unfolded).
            generator: random generator on the flow's device.

        Returns:
            (events, weights): HardEvents of m * n events (event-major) and weights of
            shape (m, n) float64.
        """
        if not (isinstance(min_efficiency, (int, float)) and 0 < min_efficiency <= 1):
            raise ValueError(f"min_efficiency: expected a value in (0, 1], got {min_efficiency!r}")
        x_reco = self._reco(x_reco)
        events, log_q = self.sample_and_log_prob(x_reco, n, theta, generator=generator)
        m = log_q.shape[0]
        w = torch.full((m, n), 1.0 / n, dtype=torch.float64, device=log_q.device)
        if self.efficiency_model is not None:
            eps = self.efficiency(events).reshape(m, n).to(w.device)
            w = w / eps.clamp(min=float(min_efficiency))
        if self.purity_model is not None:
            w = w * self.purity(x_reco).to(w.device).unsqueeze(-1)
        return events, w

    # -- persistence -------------------------------------------------------------------
    @staticmethod
    def _classifier_dict(clf: AcceptanceClassifier | None) -> dict | None:
        if clf is None:
            return None
        return {"hidden_features": list(clf.hidden_features), "seed": clf.seed,
                "preprocessing": clf.preprocessing.to_dict(), "state": clf.state_dict()}

    def _classifier_from(self, d: dict | None) -> AcceptanceClassifier | None:
        if d is None:
            return None
        clf = AcceptanceClassifier(preprocessing_from_dict(d["preprocessing"]),
                                   tuple(d["hidden_features"]), seed=d["seed"],
                                   dtype=self.flow.dtype)
        clf.load_state_dict(d["state"])
        return clf

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Save the flow, the preprocessing states, the classifiers and the coordinates' id.

        Raises:
            FileExistsError: if ``path`` exists and ``overwrite`` is False.
        """
        write_file(path, self._payload(), overwrite=overwrite)

    def _payload(self) -> dict:
        """The checkpoint dict of :meth:`save` (tensors, numbers, strings only)."""
        return {
            "kind": "unfolder",
            "flow_init": self.flow.init_kwargs(),
            "flow_state": self.flow.state_dict(),
            "reco_preprocessing": self.reco_preprocessing.to_dict(),
            "theta_names": list(self.theta_names),
            "azimuth": None if self.azimuth is None else list(self.azimuth),
            "process": self._description,
            "probe": _probe(self.coordinates),
            "efficiency": self._classifier_dict(self.efficiency_model),
            "purity": self._classifier_dict(self.purity_model),
        }

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        map_location=None,
        *,
        coordinates: HardCoordinates | None = None,
    ) -> Unfolder:
        """Load an unfolder written by :meth:`save`.

        Args:
            path: the file.
            map_location: device to load onto (as for ``torch.load``).
            coordinates: the hard coordinates it was trained with; needed unless it was
                built by :meth:`from_process` (then they are rebuilt from the process).

        Raises:
            ValueError: not an unfolder file, missing coordinates, or coordinates whose
                map differs from the saved one.
        """
        d = read_file(path, "unfolder", map_location=map_location)
        return cls._from_payload(d, map_location, coordinates)

    @classmethod
    def _from_payload(cls, d: dict, map_location=None,
                      coordinates: HardCoordinates | None = None) -> Unfolder:
        """The unfolder of a :meth:`_payload` dict (arguments as for :meth:`load`)."""
        from forward.processes import get_process

        desc = d["process"]
        if coordinates is None:
            if desc is None:
                raise ValueError(
                    "coordinates: this unfolder was not built by Unfolder.from_process; pass "
                    "the HardCoordinates it was trained with"
                )
            process = get_process(desc["name"], **desc["settings"])
            coordinates = HardCoordinates.from_process(process, desc["params"] or None,
                                                       desc["channel"])
        elif not isinstance(coordinates, HardCoordinates):
            raise TypeError(
                f"coordinates: expected a HardCoordinates, got {type(coordinates).__name__}"
            )
        saved = d["probe"].to("cpu", torch.float64)
        probe = _probe(coordinates)
        if probe.shape != saved.shape or not torch.allclose(probe, saved, rtol=1e-9, atol=1e-9):
            raise ValueError(
                "coordinates: their phase-space map differs from the one the unfolder was "
                "trained with"
            )
        flow = ConditionalFlow.from_init_kwargs(d["flow_init"])
        obj = cls.__new__(cls)
        nn.Module.__init__(obj)
        obj.coordinates = coordinates
        obj.reco_preprocessing = preprocessing_from_dict(d["reco_preprocessing"])
        obj.theta_names = tuple(d["theta_names"])
        obj.flow = flow
        flow.load_state_dict(d["flow_state"])
        obj._description = desc
        az = d.get("azimuth")  # files written before the option have none
        obj.azimuth = _check_azimuth(None if az is None else tuple(az), coordinates.dim,
                                     obj.reco_preprocessing)
        obj.efficiency_model = obj._classifier_from(d["efficiency"])
        obj.purity_model = obj._classifier_from(d["purity"])
        if map_location is not None:
            obj.to(map_location)
        return obj

    def __repr__(self) -> str:
        return (f"Unfolder(dim={self.dim}, reco_features={self.reco_preprocessing.features}, "
                f"theta_names={self.theta_names}, azimuth={self.azimuth}, "
                f"config={self.flow.config})")
