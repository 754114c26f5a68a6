r"""Detector response learned from simulated (hard, reco) pairs.

The probability of observing reconstructed observables :math:`x_\text{reco}` for a
hard event :math:`x_\text{hard}` factorises into

.. math:: p(x_\text{reco}, \text{pass} \mid x_\text{hard})
          = \varepsilon(x_\text{hard})\; r(x_\text{reco} \mid x_\text{hard}),

the acceptance :math:`\varepsilon` (probability that the event is reconstructed and
passes the selection) and the transfer function :math:`r`, a normalised density over
reco observables for accepted events.

* :class:`TransferFunction`: :math:`r` as a :class:`~invsim.flows.ConditionalFlow` over
  the reco observables conditioned on the hard ones, both through their preprocessing;
  its ``log_prob`` is w.r.t. the reco preprocessing's measure (for four-momenta
  :math:`\prod d^3p_i`, see :mod:`invsim.flows.momenta`). Train it on accepted events only.
  With ``residual`` it models reco-minus-hard residuals; with ``standardize`` these are
  first divided by a per-event width fitted on the pairs
  (:class:`~invsim.flows.residual_width.ResidualWidth`), and with ``correction=False``
  the standardised residuals are unit Gaussians (no flow: exact for Gaussian
  resolutions up to the width model's few coefficients).
* :class:`AcceptanceClassifier`: :math:`\varepsilon` as an MLP classifier trained with the
  binary cross-entropy, whose probabilities are then calibrated by Platt scaling on the
  validation split; :func:`reliability` compares predicted and observed pass rates per
  bin (a reliability diagram with the exact Poisson-binomial errors).
* :class:`SelectedTransfer`: when the selection is a cut on the reco observables
  themselves, :math:`\varepsilon(x_\text{hard})\, r(x_\text{reco} \mid x_\text{hard})
  = r_\text{det}(x_\text{reco} \mid x_\text{hard})` for selected :math:`x_\text{reco}`,
  with :math:`r_\text{det}` the detector response *before* the selection (a
  :class:`TransferFunction` trained on all simulated events). It returns
  :math:`\log r = \log r_\text{det} - \log \varepsilon`, so that in the MEM integrand
  ε·r is the smooth, untruncated response and the acceptance network's errors cancel;
  ε is then only needed for the fiducial cross section.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import AffineTransform, Independent, Normal, TransformedDistribution
from zuko.nn import MLP

from forward._validation import as_tensor, check_finite
from forward.seeding import seeded_init
from invsim.flows.builders import ConditionalFlow, FlowConfig
from invsim.flows.preprocessing import (
    Preprocessing,
    Standardize,
    observable_preprocessing,
    preprocessing_from_dict,
    require_preprocessing,
)
from invsim.flows.residual_width import ResidualWidth
from invsim.flows.training import (
    TrainConfig,
    TrainResult,
    fit_module,
    read_file,
    split_indices,
    train_flow,
    write_file,
)

__all__ = [
    "AcceptanceClassifier",
    "Reliability",
    "SelectedTransfer",
    "TransferFunction",
    "reliability",
]


class TransferFunction(nn.Module):
    """r(x_reco | x_hard) as a conditional flow.

    Args:
        reco_preprocessing: preprocessing of the reco observables (event shape e.g.
            (k, 4) momenta or (d,) observables).
        hard_preprocessing: preprocessing of the hard observables (the context).
        config: flow architecture.
        seed: seed of the initial weights.
        dtype: parameter dtype.
        residual: model the residual u = P(x_reco) - P(x_hard) of the reco
            preprocessing P applied to both (which needs equal event shapes), standardised
            and conditioned on the hard observables. The shift has log-det 0, so
            log r = log q(u | x_hard) + log|∂P/∂x_reco|; a resolution-like detector then
            is a near-identity flow, far easier to learn accurately.
        periodic: with ``residual``, columns of flat observables that are angles in
            radians (e.g. φ), left unchanged by the preprocessing except for its
            standardisation; their residual is wrapped into one period (an exact
            bijection at fixed x_hard), so φ near ±π needs no special care.
        standardize: with ``residual``, divide the residuals by a per-event width
            s(x_hard) (:class:`~invsim.flows.residual_width.ResidualWidth`, a smooth
            model fitted on the training residuals by :meth:`fit`), so that the flow
            models v = u / s, O(1) wherever the resolution is; log r gains the exact
            -Σ log s. A detector whose width varies strongly with pT and η (or σ_pT ∝ pT
            with a linear pT residual) is then again a near-identity flow.
        width_degree: polynomial degree of the width model in log pT of each object
            (``standardize`` only; it is binned in |η|, see
            :class:`~invsim.flows.residual_width.ResidualWidth`).
        correction: with ``standardize``, train the flow on the standardised residuals
            (True), or take them as independent unit Gaussians (False: no flow is
            trained, r is the width model's Gaussian in the residual preprocessing's
            coordinates, untruncated by any selection). For a detector with Gaussian
            resolutions the latter is exact up to the width model's few coefficients,
            while a flow's log-density carries the noise of its many weights.
        shared_width: with ``standardize``, every object (lepton) has one response: the
            width model of each quantity (pT, η, φ) is fitted on all objects' residuals
            pooled (False: one model per column).
    """

    def __init__(
        self,
        reco_preprocessing: Preprocessing,
        hard_preprocessing: Preprocessing,
        config: FlowConfig | None = None,
        *,
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
        residual: bool = False,
        periodic: tuple[int, ...] = (),
        standardize: bool = False,
        width_degree: int = 2,
        correction: bool = True,
        shared_width: bool = True,
    ):
        super().__init__()
        require_preprocessing("hard_preprocessing", hard_preprocessing)
        require_preprocessing("reco_preprocessing", reco_preprocessing)
        self.residual_preprocessing: Preprocessing | None = None
        if residual:
            require_preprocessing("reco_preprocessing", reco_preprocessing)
            if reco_preprocessing.event_shape != hard_preprocessing.event_shape:
                raise ValueError(
                    "residual: needs reco and hard observables of one event shape, got "
                    f"{reco_preprocessing.event_shape} and {hard_preprocessing.event_shape}"
                )
            self.residual_preprocessing = reco_preprocessing
            reco_preprocessing = observable_preprocessing(["real"] * reco_preprocessing.features)
        self.periodic = _periodic_columns(periodic, self.residual_preprocessing)
        if standardize and not residual:
            raise ValueError("standardize: only used with residual=True")
        if standardize and (len(self.residual_preprocessing.event_shape) != 1
                            or self.residual_preprocessing.features % 3):
            raise ValueError("standardize: needs flat observables (pT, η, φ) per object, shape "
                             f"(3k,), got event shape {self.residual_preprocessing.event_shape}")
        if isinstance(width_degree, bool) or not isinstance(width_degree, int) or \
                width_degree < 0:
            raise ValueError(f"width_degree: expected an integer >= 0, got {width_degree!r}")
        if not correction and not standardize:
            raise ValueError("correction: False needs standardize=True")
        self.standardize = bool(standardize)
        self.correction = bool(correction)
        self.shared_width = bool(shared_width)
        self.width_degree = width_degree
        #: the fitted width model (set by :meth:`fit` when ``standardize``)
        self.width: ResidualWidth | None = None
        self.flow = ConditionalFlow(
            reco_preprocessing, hard_preprocessing, config, seed=seed, dtype=dtype
        )

    @property
    def residual(self) -> bool:
        """Whether the flow models reco-minus-hard residuals (see the constructor)."""
        return self.residual_preprocessing is not None

    def _log_width(self, x_hard: torch.Tensor) -> torch.Tensor | None:
        """log s(x_hard), shape (n, d), float64; None without a width model."""
        if self.width is None:
            return None
        log_s = self.width.log_scale(_width_features(x_hard))
        return log_s - torch.log(self._column_scale()).to(log_s)

    def _column_scale(self) -> torch.Tensor:
        """Scale of each residual column's standardisation in the reco preprocessing,
        shape (d,), float64 (u × scale is the residual before it)."""
        scale = torch.ones(self.residual_preprocessing.features, dtype=torch.float64)
        for part in self.residual_preprocessing.parts:
            if isinstance(part, Standardize):
                scale = scale * part.scale
        return scale

    def _residual(self, x_reco: torch.Tensor, x_hard: torch.Tensor, scaled: bool = True):
        """(v, log|∂v/∂x_reco|, ok) for the residual mode; ok marks finite rows.

        v = u / s(x_hard) with u = P(x_reco) - P(x_hard) (φ wrapped) when a width model
        is fitted and ``scaled``, else u.
        """
        pre = self.residual_preprocessing
        y_r, ladj = pre.call_and_ladj(x_reco)
        y_h, _ = pre.call_and_ladj(x_hard.to(x_reco.dtype))
        u = y_r - y_h
        if self.periodic:
            idx = list(self.periodic)
            period = (2 * math.pi / self._column_scale()[idx]).to(u)
            u = u.clone()
            u[..., idx] = u[..., idx] - period * torch.round(u[..., idx] / period)
        log_s = self._log_width(x_hard) if scaled else None
        if log_s is not None:
            u = u * torch.exp(-log_s).to(u) - self.width.shift.to(u)
            ladj = ladj - log_s.sum(-1).to(ladj)
        ok = torch.isfinite(u).all(-1) & torch.isfinite(ladj)
        return torch.where(ok.unsqueeze(-1), u, torch.zeros_like(u)), ladj, ok

    def fit(
        self,
        x_hard,
        x_reco,
        *,
        config: TrainConfig | None = None,
        seed: int = 0,
        progress: bool = True,
        checkpoint: str | os.PathLike | None = None,
    ) -> TrainResult:
        """Train on accepted events by maximum likelihood (see :func:`invsim.flows.train_flow`).

        Args:
            x_hard: hard observables, shape (n, *hard_event_shape).
            x_reco: reco observables of the same events, shape (n, *reco_event_shape).
            config: training settings (default ``TrainConfig()``).
            seed: seeds the split and batch order.
            progress: show a tqdm bar.
            checkpoint: resumable training-state file.

        Returns:
            The :class:`~invsim.flows.TrainResult` (losses in nats per event).
        """
        x_reco, x_hard = self._check(x_reco, x_hard)
        config = config or TrainConfig()
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config: expected a TrainConfig, got {type(config).__name__}")
        if self.residual:
            pre = self.residual_preprocessing
            if not pre.fitted:
                train_idx, _ = split_indices(x_reco.shape[0], config.validation_fraction, seed)
                pre.fit(x_reco[train_idx])
            pre.features_of("x_reco", x_reco)
            pre.features_of("x_hard (in the reco preprocessing)", x_hard)
            if self.standardize:
                train_idx, _ = split_indices(x_reco.shape[0], config.validation_fraction, seed)
                self.width = None
                u, _, ok = self._residual(x_reco, x_hard, scaled=False)
                use = train_idx.to(ok.device)[ok[train_idx.to(ok.device)]]
                scale = self._column_scale().to(u)
                groups = [j % 3 for j in range(u.shape[1])] if self.shared_width else None
                self.width = ResidualWidth.fit(u[use] * scale, _width_features(x_hard[use]),
                                               degree=self.width_degree, groups=groups)
            x_reco, _, _ = self._residual(x_reco, x_hard)
            if not self.correction:
                return self._fit_gaussian(x_reco, x_hard, config, seed)
        return train_flow(
            self.flow, x_reco, x_hard, config=config, seed=seed,
            progress=progress, checkpoint=checkpoint,
        )

    def _fit_gaussian(self, v, x_hard, config: TrainConfig, seed: int) -> TrainResult:
        """No flow to train: fit its preprocessing (kept for saving) and report the
        validation loss of the unit Gaussian in v (nats per event, without the
        log-Jacobian of the standardisation)."""
        train_idx, val_idx = split_indices(v.shape[0], config.validation_fraction, seed)
        self.flow.fit_preprocessing(v[train_idx], x_hard[train_idx])
        lp = _std_normal_log_prob(v[val_idx])
        val = float(-lp[torch.isfinite(lp)].mean()) if len(val_idx) else math.nan
        return TrainResult(val_loss=[val], best_val_loss=val, best_epoch=1, epochs_run=0)

    def _base(self, x_hard: torch.Tensor):
        """The distribution of v given x_hard: the flow, or unit Gaussians."""
        if self.correction:
            return self.flow(x_hard)
        loc = torch.zeros(x_hard.shape[0], self.flow.x_preprocessing.features,
                          dtype=self.flow.dtype, device=self.flow.device)
        return Independent(Normal(loc, torch.ones_like(loc)), 1)

    def forward(self, x_hard) -> TransformedDistribution:
        """The distribution of reco observables given hard ones, batch shape (n,)."""
        if not self.residual:
            return self.flow(x_hard)
        pre = self.residual_preprocessing
        x_hard = self.flow.context_preprocessing.check_events("x_hard", x_hard)
        y_h = pre(x_hard.to(self.flow.dtype))
        log_s = self._log_width(x_hard)
        scale = 1.0 if log_s is None else torch.exp(log_s).to(y_h)
        if log_s is not None:
            y_h = y_h + scale * self.width.shift.to(y_h)
        shift = AffineTransform(y_h.to(self.flow.dtype), scale, event_dim=1)
        return TransformedDistribution(self._base(x_hard), [shift, pre.inv])

    def log_prob(self, x_reco, x_hard) -> torch.Tensor:
        """log r(x_reco | x_hard), shape (n,); -inf outside the reco support.

        Args:
            x_reco: reco observables, shape (n, *reco_event_shape).
            x_hard: hard observables, shape (n, *hard_event_shape).
        """
        x_reco, x_hard = self._check(x_reco, x_hard)
        if not self.residual:
            return self.flow.log_prob(x_reco, x_hard)
        x_reco = self.flow._cast(x_reco)
        u, ladj, ok = self._residual(x_reco, x_hard)
        base = self.flow.log_prob(u, x_hard) if self.correction else _std_normal_log_prob(u)
        lp = base + torch.where(ok, ladj, torch.zeros_like(ladj))
        return torch.where(ok, lp, torch.full_like(lp, -math.inf))

    def _check(self, x_reco, x_hard) -> tuple[torch.Tensor, torch.Tensor]:
        reco_pre = self.residual_preprocessing or self.flow.x_preprocessing
        x_reco = reco_pre.check_events("x_reco", x_reco)
        x_hard = self.flow.context_preprocessing.check_events("x_hard", x_hard)
        if x_reco.shape[0] != x_hard.shape[0]:
            raise ValueError(
                f"x_reco, x_hard: expected the same number of events, got {x_reco.shape[0]} "
                f"and {x_hard.shape[0]}"
            )
        return x_reco, x_hard

    def sample(self, x_hard, n: int = 1, *, generator: torch.Generator | None = None):
        """Draw reco observables, shape (n, m, *reco_event_shape), for m hard events.

        Args:
            x_hard: hard observables, shape (m, *hard_event_shape).
            n: draws per hard event.
            generator: random generator on the flow's device (None: global RNG).
        """
        x_hard = self.flow.context_preprocessing.check_events("x_hard", x_hard)
        if self.correction:
            out = self.flow.sample(x_hard, n, generator=generator)
        else:
            out = torch.randn((n, x_hard.shape[0], self.flow.x_preprocessing.features),
                              generator=generator, dtype=self.flow.dtype, device=self.flow.device)
        if not self.residual:
            return out
        pre = self.residual_preprocessing
        with torch.no_grad():
            log_s = self._log_width(x_hard)
            if log_s is not None:
                out = (out + self.width.shift.to(out)) * torch.exp(log_s).to(out)
            x = pre.inv(out + pre(x_hard.to(out)).unsqueeze(0))
            if self.periodic:
                idx = list(self.periodic)
                x[..., idx] = math.pi - torch.remainder(math.pi - x[..., idx], 2 * math.pi)
            return x

    def _payload(self) -> dict:
        res = self.residual_preprocessing
        return {"kind": "transfer", "init": self.flow.init_kwargs(),
                "state": self.flow.state_dict(),
                "residual": None if res is None else res.to_dict(),
                "periodic": list(self.periodic),
                "standardize": self.standardize, "width_degree": self.width_degree,
                "correction": self.correction, "shared_width": self.shared_width,
                "width": None if self.width is None else self.width.to_dict()}

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Save to ``path`` (refuses to replace an existing file unless ``overwrite``)."""
        write_file(path, self._payload(), overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike, *, map_location=None) -> TransferFunction:
        """Load a transfer function written by :meth:`save`."""
        return cls._from_payload(read_file(path, "transfer", map_location=map_location),
                                 map_location)

    @classmethod
    def _from_payload(cls, d: dict, map_location=None) -> TransferFunction:
        flow = ConditionalFlow.from_init_kwargs(d["init"])
        flow.load_state_dict(d["state"])
        obj = cls.__new__(cls)
        nn.Module.__init__(obj)
        obj.flow = flow
        res = d.get("residual")
        obj.residual_preprocessing = None if res is None else preprocessing_from_dict(res)
        obj.periodic = tuple(d.get("periodic", ()))
        # files written before the width standardisation have none of these keys
        obj.standardize = bool(d.get("standardize", False))
        obj.width_degree = int(d.get("width_degree", 2))
        obj.correction = bool(d.get("correction", True))
        obj.shared_width = bool(d.get("shared_width", True))
        width = d.get("width")
        obj.width = None if width is None else ResidualWidth.from_dict(width)
        if map_location is not None:
            obj.to(map_location)
        return obj


def _std_normal_log_prob(v: torch.Tensor) -> torch.Tensor:
    """Σ_j log N(v_j; 0, 1), shape (n,), for v of shape (n, d)."""
    return -0.5 * (v * v).sum(-1) - 0.5 * v.shape[-1] * math.log(2 * math.pi)


def _width_features(x_hard: torch.Tensor) -> torch.Tensor:
    """(log pT, |η|) of the object of every column, shape (n, 3k, 2), float64, for hard
    observables (n, 3k) as (pT [GeV], η, φ) per object."""
    y = x_hard.to(torch.float64).reshape(x_hard.shape[0], -1, 3)
    f = torch.stack([torch.log(y[..., 0].clamp(min=1e-300)), y[..., 1].abs()], -1)
    return f.repeat_interleave(3, dim=1)


def _periodic_columns(periodic, pre: Preprocessing | None) -> tuple[int, ...]:
    """Checked periodic columns: only with a residual, on flat observables left affine."""
    cols = tuple(int(c) for c in periodic)
    if not cols:
        return ()
    if pre is None:
        raise ValueError("periodic: only used with residual=True")
    d = pre.features
    if len(pre.event_shape) != 1 or any(not 0 <= c < d for c in cols) or len(set(cols)) != len(
        cols
    ):
        raise ValueError(
            f"periodic: expected distinct columns in [0, {d}) of flat observables, got {cols}"
        )
    for part in pre.parts:
        if not isinstance(part, Standardize) and set(part.columns) & set(cols):
            raise ValueError(
                f"periodic: columns {sorted(set(part.columns) & set(cols))} are transformed "
                f"by {type(part).__name__}; use the 'real' kind for angles given as periodic"
            )
    return cols


def _passed(name: str, passed, n: int, fractions: bool = False) -> torch.Tensor:
    t = as_tensor(name, passed)
    if t.shape != (n,):
        raise ValueError(f"{name}: expected shape ({n},) to match x_hard, got {tuple(t.shape)}")
    if t.dtype != torch.bool:
        check_finite(name, t.double())
        if fractions and not bool(((t >= 0) & (t <= 1)).all()):
            raise ValueError(f"{name}: expected booleans, 0/1 values or pass fractions in [0, 1]")
        if not fractions and not bool(((t == 0) | (t == 1)).all()):
            raise ValueError(f"{name}: expected booleans or 0/1 values")
    return t.to(torch.float64)


class AcceptanceClassifier(nn.Module):
    """ε(x_hard) = P(pass reco | x_hard): an MLP on preprocessed hard observables.

    Args:
        hard_preprocessing: preprocessing of the hard observables (its standardisation
            is fitted on the training split by :meth:`fit`).
        hidden_features: widths of the MLP's hidden layers.
        seed: seed of the initial weights.
        dtype: parameter dtype.
    """

    def __init__(
        self,
        hard_preprocessing: Preprocessing,
        hidden_features: tuple[int, ...] = (64, 64),
        *,
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        require_preprocessing("hard_preprocessing", hard_preprocessing)
        hf = tuple(hidden_features)
        if not hf or not all(isinstance(h, int) and h >= 1 for h in hf):
            raise ValueError(f"hidden_features: expected positive ints, got {hf!r}")
        self.preprocessing = hard_preprocessing
        self.hidden_features = hf
        self.seed = int(seed)
        with seeded_init(self.seed):
            self.net = MLP(hard_preprocessing.features, 1, hf).to(dtype)
        # Platt scaling of the logit: a * logit + b
        self.register_buffer("platt", torch.tensor([1.0, 0.0], dtype=dtype))

    def _features(self, x_hard, name: str = "x_hard") -> torch.Tensor:
        y, _ = self.preprocessing.features_of(name, x_hard)
        p = self.platt
        return y.to(dtype=p.dtype, device=p.device)

    def _raw_logits(self, y: torch.Tensor) -> torch.Tensor:
        return self.net(y).squeeze(-1)

    def logits(self, x_hard) -> torch.Tensor:
        """Calibrated logit of ε, shape (n,), for x_hard of shape (n, *event_shape)."""
        a, b = self.platt
        return a * self._raw_logits(self._features(x_hard)) + b

    def forward(self, x_hard) -> torch.Tensor:
        """ε(x_hard) in [0, 1], shape (n,), for x_hard of shape (n, *event_shape)."""
        return torch.sigmoid(self.logits(x_hard))

    def fit(
        self,
        x_hard,
        passed,
        *,
        config: TrainConfig | None = None,
        seed: int = 0,
        progress: bool = True,
        calibrate: bool = True,
        checkpoint: str | os.PathLike | None = None,
    ) -> TrainResult:
        """Train with the binary cross-entropy, then Platt-scale on the validation split.

        Args:
            x_hard: hard observables of all simulated events, shape (n, *event_shape).
            passed: whether each event passed reconstruction and selection, shape (n,),
                bool or 0/1; or the pass fraction of each hard event over several detector
                simulations of it, in [0, 1] (the cross-entropy with these soft targets has
                the same minimum, ε, with less noise than one simulation per event).
            config: training settings (default ``TrainConfig()``); ``calibrate`` needs
                ``validation_fraction > 0``.
            seed: seeds the split and batch order.
            progress: show a tqdm bar.
            calibrate: fit the Platt scaling (a, b) on the validation split afterwards.
            checkpoint: resumable training-state file.

        Returns:
            The :class:`~invsim.flows.TrainResult` (losses: mean BCE in nats, before the
            Platt scaling).
        """
        config = config or TrainConfig()
        x_hard = self.preprocessing.check_events("x_hard", x_hard)
        target = _passed("passed", passed, x_hard.shape[0], fractions=True)
        if calibrate and config.validation_fraction == 0:
            raise ValueError("config: calibrate=True needs validation_fraction > 0")
        train_idx, val_idx = split_indices(x_hard.shape[0], config.validation_fraction, seed)
        if not self.preprocessing.fitted:
            self.preprocessing.fit(x_hard[train_idx])
        with torch.no_grad():
            self.platt.copy_(torch.tensor([1.0, 0.0]))
        y = self._features(x_hard)
        t = target.to(y)

        def loss_fn(batch):
            return F.binary_cross_entropy_with_logits(self._raw_logits(batch[0]), batch[1])

        result = fit_module(self, loss_fn, [y, t], config=config, seed=seed, progress=progress,
                            checkpoint=checkpoint, desc="acceptance")
        if calibrate:
            self._platt_fit(y[val_idx], t[val_idx])
        return result

    def _platt_fit(self, y: torch.Tensor, t: torch.Tensor) -> None:
        with torch.no_grad():
            z = self._raw_logits(y).double()
        ab = torch.tensor([1.0, 0.0], dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([ab], max_iter=100, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = F.binary_cross_entropy_with_logits(ab[0] * z + ab[1], t.double())
            loss.backward()
            return loss

        opt.step(closure)
        if bool(torch.isfinite(ab).all()):
            with torch.no_grad():
                self.platt.copy_(ab.detach())

    def get_extra_state(self) -> dict:
        """Preprocessing state stored in ``state_dict``."""
        return {"preprocessing": self.preprocessing.to_dict()}

    def set_extra_state(self, state: dict) -> None:
        """Restore the preprocessing state saved by :meth:`get_extra_state`."""
        self.preprocessing = preprocessing_from_dict(state["preprocessing"])

    def _payload(self) -> dict:
        return {"kind": "acceptance", "hidden_features": list(self.hidden_features),
                "seed": self.seed, "dtype": str(self.platt.dtype).removeprefix("torch."),
                "state": self.state_dict()}

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Save to ``path`` (refuses to replace an existing file unless ``overwrite``)."""
        write_file(path, self._payload(), overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike, *, map_location=None) -> AcceptanceClassifier:
        """Load a classifier written by :meth:`save`."""
        return cls._from_payload(read_file(path, "acceptance", map_location=map_location),
                                 map_location)

    @classmethod
    def _from_payload(cls, d: dict, map_location=None) -> AcceptanceClassifier:
        pre = preprocessing_from_dict(d["state"]["_extra_state"]["preprocessing"])
        obj = cls(pre, tuple(d["hidden_features"]), seed=d["seed"],
                  dtype=getattr(torch, d["dtype"]))
        obj.load_state_dict(d["state"])
        if map_location is not None:
            obj.to(map_location)
        return obj


class SelectedTransfer(nn.Module):
    """r(x_reco | x_hard) of selected events from the response before the selection.

    For a selection S that is a cut on the reco observables, the probability density of
    observing x_reco and passing is r_det(x_reco | x_hard) 1[x_reco ∈ S], so for selected
    events log r = log r_det - log ε(x_hard). ``log_prob`` returns exactly that (it does
    not check x_reco ∈ S: give it selected events, as the MEM does), so ε·r in the MEM
    integrand is r_det whatever the acceptance network's error, when ``acceptance`` is
    the same object as the MEM model's.

    Args:
        response: r_det, e.g. a :class:`TransferFunction` fitted on *all* simulated events
            (:meth:`TransferFunction.fit` with every (x_hard, x_reco) pair, selected or
            not).
        acceptance: the :class:`AcceptanceClassifier` of ε(x_hard) = P(x_reco ∈ S | x_hard).
    """

    def __init__(self, response: TransferFunction, acceptance: AcceptanceClassifier):
        super().__init__()
        if not isinstance(response, TransferFunction):
            raise TypeError(f"response: expected a TransferFunction, got "
                            f"{type(response).__name__}")
        if not isinstance(acceptance, AcceptanceClassifier):
            raise TypeError(f"acceptance: expected an AcceptanceClassifier, got "
                            f"{type(acceptance).__name__}")
        self.response = response
        self.acceptance = acceptance

    def log_prob(self, x_reco, x_hard) -> torch.Tensor:
        """log r(x_reco | x_hard) = log r_det - log ε, shape (n,), for selected x_reco.

        Args:
            x_reco: selected reco observables, shape (n, *reco_event_shape).
            x_hard: hard observables, shape (n, *hard_event_shape).
        """
        lp = self.response.log_prob(x_reco, x_hard)
        log_eps = F.logsigmoid(self.acceptance.logits(x_hard))
        return lp - log_eps.to(lp)

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Save both networks to one file (refuses to overwrite unless ``overwrite``)."""
        write_file(path, {"kind": "selected-transfer", "response": self.response._payload(),
                          "acceptance": self.acceptance._payload()}, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike, *, map_location=None) -> SelectedTransfer:
        """Load what :meth:`save` wrote."""
        d = read_file(path, "selected-transfer", map_location=map_location)
        return cls(TransferFunction._from_payload(d["response"], map_location),
                   AcceptanceClassifier._from_payload(d["acceptance"], map_location))


@dataclass
class Reliability:
    """Predicted vs observed pass rates per bin of predicted probability.

    Attributes:
        edges: bin edges in predicted probability, shape (bins + 1,).
        counts: events per bin, shape (bins,).
        predicted: mean predicted probability per bin, shape (bins,).
        observed: observed pass fraction per bin, shape (bins,).
        error: standard deviation of the observed fraction if the predictions are
            right (Poisson-binomial: sqrt(Σ ε(1-ε))/N), shape (bins,).
        chi2: Σ ((observed - predicted)/error)² over non-empty bins.
        ndof: number of non-empty bins with error > 0.
    """

    edges: torch.Tensor
    counts: torch.Tensor
    predicted: torch.Tensor
    observed: torch.Tensor
    error: torch.Tensor
    chi2: float
    ndof: int


def reliability(eps, passed, bins: int = 10) -> Reliability:
    """Reliability diagram of predicted probabilities against outcomes.

    Args:
        eps: predicted pass probabilities in [0, 1], shape (n,).
        passed: outcomes, shape (n,), bool or 0/1.
        bins: number of equal-width bins of predicted probability.

    Returns:
        A :class:`Reliability` (NaN entries for empty bins).
    """
    eps = as_tensor("eps", eps).detach().to(torch.float64)
    if eps.ndim != 1:
        raise ValueError(f"eps: expected shape (n,), got {tuple(eps.shape)}")
    check_finite("eps", eps)
    if bool(((eps < 0) | (eps > 1)).any()):
        raise ValueError("eps: expected probabilities in [0, 1]")
    t = _passed("passed", passed, eps.shape[0]).to(eps.device)
    if not (isinstance(bins, int) and bins >= 1):
        raise ValueError(f"bins: expected an integer >= 1, got {bins!r}")
    edges = torch.linspace(0, 1, bins + 1, dtype=torch.float64)
    idx = (eps * bins).long().clamp(max=bins - 1).cpu()
    counts = torch.bincount(idx, minlength=bins).to(torch.float64)
    s_eps = torch.bincount(idx, weights=eps.cpu(), minlength=bins)
    s_pass = torch.bincount(idx, weights=t.cpu(), minlength=bins)
    s_var = torch.bincount(idx, weights=(eps * (1 - eps)).cpu(), minlength=bins)
    predicted = s_eps / counts
    observed = s_pass / counts
    error = s_var.sqrt() / counts
    use = (counts > 0) & (error > 0)
    chi2 = float((((observed - predicted) / error)[use] ** 2).sum())
    return Reliability(edges, counts.long(), predicted, observed, error, chi2, int(use.sum()))

