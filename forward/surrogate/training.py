r"""Training, calibration and boosting of amplitude surrogates.

:func:`train_surrogate` regresses :math:`y = \log|M|^2 - \log R` (float64 targets,
standardised) with Adam and a cosine learning-rate schedule:

* ``"heteroscedastic"`` and each ``"ensemble"`` member: Gaussian NLL
  (:func:`~forward.surrogate.losses.gaussian_nll`); ensemble members differ by their
  initial weights and batch order;
* ``"bayesian"``: the negative ELBO per training point,
  :math:`\langle\ell\rangle_{\text{batch}} + w_\text{KL}\, \mathrm{KL}(q\|p)/N`,
  one weight draw per step;
* ``"mse"``: squared error (the baseline; its σ is the validation RMS afterwards).

A fraction of the data is held out. With ``calibrate=True`` the predictive σ of each
group is multiplied by one factor :math:`c_g = \sqrt{\langle \text{pull}^2\rangle}`
measured on the held-out points (a single number per group, so the *shape* of σ(x)
remains the network's); the test pulls stay an independent check.

:func:`boost_surrogate` continues the training with per-point weights
:math:`1 + e \cdot [\,|\text{pull}| > t \ \text{or}\ \sigma > \sigma_{0.95}\,]`
(pulls and σ of the current surrogate on the training points), which puts emphasis on
the badly described tails; ``emphasis=0`` is the same continued training without it,
the control to compare with.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from forward._validation import check_choice, make_generator, resolve_device
from forward.surrogate.data import TrainingData
from forward.surrogate.features import REFERENCES, identical_permutations, log_reference
from forward.surrogate.losses import gaussian_nll, squared_error
from forward.surrogate.matrix_element import SurrogateMatrixElement, channel_groups
from forward.surrogate.models import KINDS, SYMMETRIES, SymmetricRegressor

__all__ = ["SurrogateConfig", "SurrogateFit", "boost_surrogate", "train_surrogate"]


@dataclass
class SurrogateConfig:
    """Architecture and training settings of a surrogate.

    Attributes:
        kind: ``"bayesian"``, ``"ensemble"``, ``"heteroscedastic"`` or ``"mse"``.
        hidden, layers: width and number of hidden layers.
        members: ensemble size (``kind="ensemble"``).
        epochs: passes over the training points (per member).
        batch_size: points per step.
        lr: initial Adam learning rate; cosine decay to ``lr * lr_final``.
        lr_final: final learning rate relative to ``lr``.
        prior_std: prior width of Bayesian weights.
        kl_weight: factor on the KL term (1 is the ELBO).
        reference: known factor R divided out of |M|² (see ``features.REFERENCES``).
        val_fraction: fraction of the points held out for validation and calibration.
        calibrate: rescale σ on the held-out points (see module docstring).
        samples: weight draws per prediction of Bayesian nets.
        dtype: of the networks; device: of the networks (default: the data's).
        symmetry: ``"average"`` over the permutations of identical final-state particles
            (cost k! network passes for k identical particles) or ``"sort"`` them into a
            canonical order (one pass; see :mod:`forward.surrogate.models`).
    """

    kind: str = "bayesian"
    hidden: int = 128
    layers: int = 4
    members: int = 5
    epochs: int = 100
    batch_size: int = 1024
    lr: float = 2e-3
    lr_final: float = 1e-3
    prior_std: float = 1.0
    kl_weight: float = 1.0
    reference: str = "eikonal"
    val_fraction: float = 0.1
    calibrate: bool = True
    samples: int = 10
    dtype: torch.dtype = torch.float32
    device: Any = None
    symmetry: str = "average"

    def __post_init__(self) -> None:
        check_choice("kind", self.kind, KINDS)
        check_choice("symmetry", self.symmetry, SYMMETRIES)
        check_choice("reference", self.reference, REFERENCES)
        for name in ("hidden", "layers", "members", "epochs", "batch_size", "samples"):
            v = getattr(self, name)
            low = 0 if name in ("epochs", "samples") else 1
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ValueError(f"{name}: expected an integer >= {low}, got {v!r}")
        for name in ("lr", "prior_std"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name}: expected a finite positive number, got {v!r}")
        if not (0 < self.lr_final <= 1):
            raise ValueError(f"lr_final: expected a number in (0, 1], got {self.lr_final!r}")
        if not (self.kl_weight >= 0 and math.isfinite(self.kl_weight)):
            raise ValueError(f"kl_weight: expected a finite number >= 0, got {self.kl_weight!r}")
        if not (0 < self.val_fraction < 0.5):
            raise ValueError(
                f"val_fraction: expected a number in (0, 0.5), got {self.val_fraction!r}")
        if self.dtype not in (torch.float32, torch.float64):
            raise TypeError(f"dtype: expected torch.float32 or torch.float64, got {self.dtype}")
        if self.device is not None:
            resolve_device(self.device)


@dataclass
class SurrogateFit:
    """A trained surrogate with the data split and the training record.

    Attributes:
        surrogate: the :class:`SurrogateMatrixElement`.
        config: the settings used.
        train, val: the training and held-out points.
        history: ``loss`` (mean training loss per epoch, per member concatenated),
            ``val_loss`` (held-out loss per epoch), ``seconds`` (wall time), ``sigma_scale``.
    """

    surrogate: SurrogateMatrixElement
    config: SurrogateConfig
    train: TrainingData
    val: TrainingData
    history: dict = field(default_factory=dict)


def _targets(data: TrainingData, references: list[int], reference: str):
    """(y, mask): log|M|² of each group's reference column minus log R, float64 (n, g)."""
    me = data.me2[:, references].to(torch.float64)
    mask = me > 0
    log_r = log_reference(data.events, reference).to(torch.float64).unsqueeze(-1)
    y = torch.where(mask, torch.log(me.clamp(min=1e-300)) - log_r, torch.zeros_like(me))
    return y, mask


def _device_generator(generator: torch.Generator | None, device) -> torch.Generator | None:
    """A generator on ``device`` seeded by a draw from ``generator``.

    None stays None (torch's global RNG, stated here); otherwise the new generator is
    :func:`forward._validation.make_generator` with a seed drawn from ``generator``.
    """
    if generator is None:
        return None  # draw from torch's global RNG
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    return make_generator(seed, device=device)


def _loss(reg, k, feats, y, mask, weight, kind, generator, n_train, kl_weight):
    mean, log_sigma = reg.member_output(k, feats, sample=kind == "bayesian",
                                        generator=generator)
    if kind == "mse":
        return squared_error(mean, y, weight, mask)
    loss = gaussian_nll(mean, log_sigma, y, weight, mask)
    if kind == "bayesian":
        loss = loss + kl_weight * reg.nets[k].kl() / n_train
    return loss


def _fit_members(reg, feats, y, mask, weight, val, *, epochs, lr, lr_final, batch_size,
                 kind, kl_weight, generator, dgen, progress, history, desc):
    """Adam + cosine schedule for every member on standardised (feats, y, mask)."""
    n = y.shape[0]
    steps_per_epoch = max(1, math.ceil(n / batch_size))
    bar = None
    if progress:
        from forward.progress import progress_bar

        bar = progress_bar(total=epochs * len(reg.nets), desc=desc, unit="epoch")
    for k in range(len(reg.nets)):
        params = list(reg.nets[k].parameters())
        opt = torch.optim.Adam(params, lr=lr)
        total = max(1, epochs * steps_per_epoch)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s, t=total: lr_final + (1 - lr_final) * 0.5 * (1 + math.cos(
                math.pi * min(s, t) / t)))
        for _ in range(epochs):
            perm = torch.randperm(n, generator=generator).to(y.device)
            acc = 0.0
            for b in range(steps_per_epoch):
                idx = perm[b * batch_size:(b + 1) * batch_size]
                loss = _loss(reg, k, feats[:, idx], y[idx], mask[idx],
                             None if weight is None else weight[idx], kind, dgen, n,
                             kl_weight)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                acc += float(loss.detach())
            history.setdefault("loss", []).append(acc / steps_per_epoch)
            if val is not None:
                with torch.no_grad():
                    vf, vy, vm = val
                    history.setdefault("val_loss", []).append(float(
                        _loss(reg, k, vf, vy, vm, None, kind, dgen, n, kl_weight)))
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{history['loss'][-1]:.4f}")
    if bar is not None:
        bar.close()


def _set_scales(reg, config, val, vy, vm):
    """Post-training σ: the MSE baseline's constant, then the calibration factor."""
    reg.sigma_scale.fill_(1.0)
    if config.kind == "mse":
        with torch.no_grad():
            mean, _ = reg.member_output(0, reg.features(val.events))
            ystd = (vy - reg.y_scaler.mean) / reg.y_scaler.std
            res2 = torch.where(vm, (mean.to(torch.float64) - ystd) ** 2, 0.0)
            rms = (res2.sum(0) / vm.sum(0).clamp(min=1)).sqrt()
            reg.nets[0].mse_log_sigma.copy_(torch.log(rms.clamp(min=1e-12)))
    if config.calibrate:
        gen = make_generator(0, device=reg.device)
        with torch.no_grad():
            mean, var = reg.predict(val.events, samples=config.samples, generator=gen)
        pull2 = torch.where(vm, (mean - vy) ** 2 / var, 0.0)
        scale = (pull2.sum(0) / vm.sum(0).clamp(min=1)).sqrt()
        reg.sigma_scale.copy_(torch.where(torch.isfinite(scale) & (scale > 0), scale, 1.0))


def train_surrogate(
    process,
    data: TrainingData,
    config: SurrogateConfig | None = None,
    *,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> SurrogateFit:
    """Train a surrogate of ``process.matrix_element`` on ``data``.

    Args:
        process: the process the data came from (final state and channels are taken
            from it).
        data: :class:`~forward.surrogate.data.TrainingData` (at least 10 points).
        config: settings; default :class:`SurrogateConfig()`.
        generator: CPU random generator for the split, initial weights, batch order and
            weight draws (a device generator is seeded from it); None uses torch's
            global one.
        progress: show tqdm progress bars.

    Returns:
        A :class:`SurrogateFit`.

    Raises:
        TypeError: ``data`` or ``config`` of the wrong type. ValueError: too few points
        or data that do not match the process.
    """
    config = SurrogateConfig() if config is None else config
    if not isinstance(config, SurrogateConfig):
        raise TypeError(f"config: expected a SurrogateConfig, got {type(config).__name__}")
    if not isinstance(data, TrainingData):
        raise TypeError(f"data: expected TrainingData, got {type(data).__name__}")
    if len(data) < 10:
        raise ValueError(f"data: expected at least 10 points, got {len(data)}")
    k_out = len(process.final_state)
    if data.events.momenta.shape[1] != k_out or data.me2.shape[1] != len(
            process.flavour_channels):
        raise ValueError(
            f"data: expected momenta (n, {k_out}, 4) and me2 (n, "
            f"{len(process.flavour_channels)}) for process {process.name!r}, got "
            f"{tuple(data.events.momenta.shape)} and {tuple(data.me2.shape)}"
        )
    device = config.device if config.device is not None else data.me2.device
    t0 = time.perf_counter()
    train, val = data.split(config.val_fraction, generator=generator)
    groups, references, ratios = channel_groups(data.me2)
    if not references:
        raise ValueError("data: every |M|² column is zero; nothing to learn")
    perms = identical_permutations(process.final_state)
    reg = SymmetricRegressor(
        k_out, perms, len(references), kind=config.kind, members=config.members,
        hidden=config.hidden, layers=config.layers, prior_std=config.prior_std,
        dtype=config.dtype, generator=generator, symmetry=config.symmetry,
        final_state=tuple(process.final_state),
    ).to(device)
    y, mask = _targets(train, references, config.reference)
    vy, vm = _targets(val, references, config.reference)
    y, mask, vy, vm = (t.to(device) for t in (y, mask, vy, vm))
    reg.x_scaler.fit(reg.raw_features(train.events)[0])
    ym = torch.where(mask, y, 0.0).sum(0) / mask.sum(0).clamp(min=1)
    ys = (torch.where(mask, (y - ym) ** 2, 0.0).sum(0) / mask.sum(0).clamp(min=1)).sqrt()
    reg.y_scaler.mean.copy_(ym)
    reg.y_scaler.std.copy_(torch.where(ys > 0, ys, 1.0))
    feats = reg.features(train.events)
    ystd = ((y - ym) / reg.y_scaler.std).to(config.dtype)
    vfeats = reg.features(val.events)
    vstd = ((vy - ym) / reg.y_scaler.std).to(config.dtype)
    history: dict = {}
    dgen = _device_generator(generator, device)
    reg.train()
    _fit_members(reg, feats, ystd, mask, None, (vfeats, vstd, vm), epochs=config.epochs,
                 lr=config.lr, lr_final=config.lr_final, batch_size=config.batch_size,
                 kind=config.kind, kl_weight=config.kl_weight, generator=generator,
                 dgen=dgen, progress=progress, history=history,
                 desc=f"surrogate {config.kind}")
    reg.eval()
    _set_scales(reg, config, val, vy, vm)
    history["seconds"] = time.perf_counter() - t0
    history["sigma_scale"] = reg.sigma_scale.tolist()
    surrogate = SurrogateMatrixElement(
        reg, groups=groups, references=references, ratios=ratios,
        reference=config.reference, final_state=tuple(process.final_state),
        flavour_channels=tuple(process.flavour_channels),
        params={k: float(v.detach().reshape(-1)[0]) for k, v in data.params.items()},
        process_name=process.name, samples=config.samples,
    )
    return SurrogateFit(surrogate, config, train, val, history)


def boost_surrogate(
    fit: SurrogateFit,
    *,
    epochs: int,
    emphasis: float = 4.0,
    threshold: float = 2.0,
    lr: float | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> SurrogateFit:
    """Continue training with emphasis on the badly described points (module docstring).

    Args:
        fit: from :func:`train_surrogate` (left unchanged; the result is a copy).
        epochs: further passes over the training points (>= 1).
        emphasis: extra weight e >= 0 of emphasised points (0: plain continued training).
        threshold: |pull| above which a point is emphasised.
        lr: initial learning rate of the continued training; default config.lr / 4.
        generator: CPU random generator for batch order and weight draws.
        progress: show a tqdm progress bar.

    Returns:
        A new :class:`SurrogateFit`; ``history["emphasised"]`` is the fraction of
        emphasised training points.
    """
    if not isinstance(fit, SurrogateFit):
        raise TypeError(f"fit: expected a SurrogateFit, got {type(fit).__name__}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs: expected an integer >= 1, got {epochs!r}")
    if not (math.isfinite(emphasis) and emphasis >= 0):
        raise ValueError(f"emphasis: expected a finite number >= 0, got {emphasis!r}")
    if not (math.isfinite(threshold) and threshold > 0):
        raise ValueError(f"threshold: expected a finite positive number, got {threshold!r}")
    config = fit.config
    t0 = time.perf_counter()
    surrogate = copy.deepcopy(fit.surrogate)
    reg = surrogate.regressor
    device = reg.device
    y, mask = _targets(fit.train, surrogate.references, config.reference)
    vy, vm = _targets(fit.val, surrogate.references, config.reference)
    y, mask, vy, vm = (t.to(device) for t in (y, mask, vy, vm))
    with torch.no_grad():
        gen = make_generator(0, device=device)
        mean, var = reg.predict(fit.train.events, samples=config.samples, generator=gen)
    sigma = var.sqrt()
    pull = torch.where(mask, (mean - y) / sigma, 0.0)
    big_sigma = sigma > torch.quantile(sigma, 0.95, dim=0)
    flag = ((pull.abs() > threshold) | big_sigma).any(-1)
    weight = 1.0 + emphasis * flag.to(torch.float64)
    weight = (weight / weight.mean()).to(config.dtype)
    feats = reg.features(fit.train.events)
    ystd = ((y - reg.y_scaler.mean) / reg.y_scaler.std).to(config.dtype)
    vstd = ((vy - reg.y_scaler.mean) / reg.y_scaler.std).to(config.dtype)
    history: dict = {"emphasised": float(flag.to(torch.float64).mean())}
    reg.train()
    _fit_members(reg, feats, ystd, mask, weight, (reg.features(fit.val.events), vstd, vm),
                 epochs=epochs, lr=config.lr / 4 if lr is None else lr,
                 lr_final=config.lr_final, batch_size=config.batch_size, kind=config.kind,
                 kl_weight=config.kl_weight, generator=generator,
                 dgen=_device_generator(generator, device), progress=progress,
                 history=history, desc="boosting")
    reg.eval()
    _set_scales(reg, config, fit.val, vy, vm)
    history["seconds"] = time.perf_counter() - t0
    history["sigma_scale"] = reg.sigma_scale.tolist()
    return SurrogateFit(surrogate, config, fit.train, fit.val, history)
