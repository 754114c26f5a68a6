r"""One training loop for every model of the inverse side, and flow checkpoints.

:func:`fit_module` minimises a per-batch loss with AdamW on a seeded train/validation
split: a cosine or reduce-on-plateau learning-rate schedule, gradient-norm clipping,
early stopping on the validation loss with the best weights restored, a tqdm bar, a
resumable checkpoint file and a clear error naming the epoch and batch of a
non-finite loss. :func:`train_flow` uses it to maximise the likelihood of a
:class:`~invsim.flows.builders.ConditionalFlow`; its losses are the mean negative
log-density of the *physical* events (nats per event, w.r.t. the preprocessing's
measure), so they are comparable across preprocessings.

Reproducibility: the split and every epoch's batch order come from generators seeded
with ``seed`` (and the epoch), never from the global RNG; the same initial weights,
data, config and seed give the same trained weights, and a run resumed from its
checkpoint gives the same weights as one that was not interrupted.

Data-parallel training: in a ``torch.distributed`` process group of more than one
process (``torchrun``, :func:`forward.ddp.init_from_env`; gloo on CPUs, NCCL on GPUs)
every process holds all events and draws the same split and batch order; each global
batch of ``batch_size`` events is dealt out round-robin (process r takes positions
r, r + P, ...), every process backpropagates its share of the batch mean and the
gradients are summed over the processes (:func:`forward.ddp.all_reduce_gradients`).
The gradient of each step is therefore the single-process gradient up to float rounding
(the sum is taken in another order), the losses and early-stopping decisions are
reduced the same way, and only rank 0 shows progress and writes the checkpoint. Outside
a group nothing changes.
"""

from __future__ import annotations

import math
import os
import pickle
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import torch

from forward import ddp
from forward._validation import check_choice, make_generator
from forward.progress import progress_bar
from invsim.flows.builders import ConditionalFlow

__all__ = [
    "SCHEDULERS",
    "LoadedFlow",
    "TrainConfig",
    "TrainResult",
    "fit_module",
    "load_flow",
    "read_file",
    "save_flow",
    "split_indices",
    "train_flow",
    "write_file",
]

SCHEDULERS = ("cosine", "plateau", "none")
_FORMAT = "invsim/1"


@dataclass(frozen=True)
class TrainConfig:
    """Settings of :func:`fit_module` / :func:`train_flow`.

    Attributes:
        epochs: maximum number of passes over the training split (>= 1).
        batch_size: events per optimiser step (>= 1).
        lr: AdamW learning rate (> 0).
        weight_decay: AdamW weight decay (>= 0).
        validation_fraction: share of events held out for early stopping, in [0, 1);
            0 disables early stopping (the last weights are kept).
        patience: epochs without a validation improvement before stopping (>= 1), or
            None to run all epochs (the best weights are still restored).
        scheduler: ``"cosine"`` (annealed to 0 over ``epochs``), ``"plateau"`` (halve
            the rate after ``plateau_patience`` epochs without improvement) or ``"none"``.
        plateau_patience: epochs for the ``"plateau"`` scheduler (>= 0).
        clip_grad_norm: maximum gradient 2-norm (> 0), or None for no clipping.
        min_delta: improvement of the validation loss (nats) that resets the patience.
    """

    epochs: int = 100
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    validation_fraction: float = 0.1
    patience: int | None = 10
    scheduler: str = "cosine"
    plateau_patience: int = 3
    clip_grad_norm: float | None = 5.0
    min_delta: float = 0.0

    def __post_init__(self) -> None:
        def _int(name, low):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ValueError(f"{name}: expected an integer >= {low}, got {v!r}")

        _int("epochs", 1)
        _int("batch_size", 1)
        _int("plateau_patience", 0)
        if self.patience is not None:
            _int("patience", 1)
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr: expected a finite learning rate > 0, got {self.lr!r}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay: expected a finite value >= 0, got {self.weight_decay}")
        if not (0 <= self.validation_fraction < 1):
            raise ValueError(
                f"validation_fraction: expected a value in [0, 1), got {self.validation_fraction}"
            )
        check_choice("scheduler", self.scheduler, SCHEDULERS)
        if self.clip_grad_norm is not None and not (
            math.isfinite(self.clip_grad_norm) and self.clip_grad_norm > 0
        ):
            raise ValueError(
                f"clip_grad_norm: expected a finite value > 0 or None, got {self.clip_grad_norm}"
            )
        if not (math.isfinite(self.min_delta) and self.min_delta >= 0):
            raise ValueError(f"min_delta: expected a finite value >= 0, got {self.min_delta}")


@dataclass
class TrainResult:
    """Loss history of a training run.

    Attributes:
        train_loss: mean training loss per epoch (nats per event for flows).
        val_loss: mean validation loss per epoch (empty without a validation split).
        lr: learning rate used in each epoch.
        best_epoch: 1-based epoch whose weights were restored (the last one without a
            validation split).
        best_val_loss: validation loss of that epoch (nan without a validation split).
        epochs_run: number of epochs trained in total (across resumed calls).
        stopped_early: whether the patience ran out before ``epochs``.
        seconds: wall time of the training epochs in this call.
    """

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    best_epoch: int = 0
    best_val_loss: float = math.nan
    epochs_run: int = 0
    stopped_early: bool = False
    seconds: float = 0.0


def split_indices(
    n: int, validation_fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded random split of ``range(n)`` into (train, validation) index tensors.

    At least one event goes to each side when ``validation_fraction > 0``.
    """
    g = make_generator(seed)
    perm = torch.randperm(n, generator=g)
    n_val = 0 if validation_fraction == 0 else min(max(1, round(validation_fraction * n)), n - 1)
    return perm[n_val:], perm[:n_val]


def write_file(path: str | os.PathLike, payload: dict, *, overwrite: bool = False) -> None:
    """Write a checkpoint dict atomically with ``torch.save`` (:func:`forward.files.atomic_target`).

    Raises:
        FileExistsError: if ``path`` exists and ``overwrite`` is False.
    """
    from pathlib import Path

    from forward.files import atomic_target

    with atomic_target(Path(os.fspath(path)), overwrite) as tmp:
        torch.save({"format": _FORMAT, **payload}, tmp)


def read_file(path: str | os.PathLike, kind: str, map_location=None) -> dict:
    """Read a file written by :func:`write_file` and check its ``kind`` entry."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"path: no such file {path}")
    if not os.path.isfile(path):
        raise ValueError(f"path: {path} is not a file (expected an invsim {kind!r} file)")
    try:
        d = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, EOFError, RuntimeError, ValueError, OSError) as err:
        raise ValueError(f"path: {path} is not a readable invsim {kind!r} file "
                         f"({type(err).__name__}: {str(err).splitlines()[0][:120]})") from err
    if not isinstance(d, dict) or d.get("format") != _FORMAT or d.get("kind") != kind:
        got = d.get("kind") if isinstance(d, dict) else type(d).__name__
        raise ValueError(f"path: {path} is not an invsim {kind!r} file (found {got!r})")
    return d


def _epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


def _copy_state(module: torch.nn.Module) -> dict:
    return {k: (v.detach().clone() if isinstance(v, torch.Tensor) else v)
            for k, v in module.state_dict().items()}


def fit_module(
    module: torch.nn.Module,
    loss_fn: Callable[[Sequence[torch.Tensor]], torch.Tensor],
    data: Sequence[torch.Tensor],
    *,
    config: TrainConfig,
    seed: int,
    progress: bool = True,
    checkpoint: str | os.PathLike | None = None,
    epoch_limit: int | None = None,
    desc: str = "training",
) -> TrainResult:
    """Minimise the mean of ``loss_fn`` over batches of ``data``.

    Args:
        module: the model; its parameters are optimised in place.
        loss_fn: maps a batch (tensors indexed like ``data``) to a scalar mean loss.
        data: tensors with the same first dimension n (events).
        config: the settings.
        seed: seeds the split and the batch order.
        progress: show a tqdm bar.
        checkpoint: file to resume from if it exists and to update after every epoch
            (it must come from the same config and seed).
        epoch_limit: end this call after this many epochs in total (a later call with
            the same checkpoint resumes); the schedule still follows ``config.epochs``.
        desc: label of the progress bar.

    Returns:
        A :class:`TrainResult`; ``module`` holds the best (or last) weights.

    Raises:
        FloatingPointError: a non-finite loss, naming the epoch and batch.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config: expected a TrainConfig, got {type(config).__name__}")
    if checkpoint is not None and not os.path.isdir(os.path.dirname(
            os.path.abspath(os.fspath(checkpoint)))):
        raise FileNotFoundError(f"checkpoint: the folder of {os.fspath(checkpoint)!r} does not "
                                "exist")
    n = data[0].shape[0]
    train_idx, val_idx = split_indices(n, config.validation_fraction, seed)
    if len(train_idx) == 0:
        raise ValueError(f"data: too few events ({n}) for a validation split")
    params = [p for p in module.parameters() if p.requires_grad]
    device = params[0].device if params else torch.device("cpu")
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    n_batches = math.ceil(len(train_idx) / config.batch_size)
    if config.scheduler == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.epochs * n_batches)
    elif config.scheduler == "plateau":
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, factor=0.5, patience=config.plateau_patience
        )
    else:
        sched = None

    rank, world = ddp.world()
    ddp.broadcast_module(module)
    result = TrainResult()
    best_state, bad_epochs, done = None, 0, False
    if checkpoint is not None and os.path.exists(checkpoint):
        ck = read_file(checkpoint, "training", map_location=next(iter(params)).device)
        if ck["config"] != asdict(config) or ck["seed"] != int(seed) or ck["n"] != n:
            raise ValueError(
                f"checkpoint: {checkpoint} belongs to another run (config, seed or number of "
                "events differ); remove it or pass another path"
            )
        module.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        if sched is not None:
            sched.load_state_dict(ck["scheduler"])
        result = TrainResult(**ck["result"])
        best_state, bad_epochs, done = ck["best_state"], ck["bad_epochs"], ck["done"]

    def save_checkpoint() -> None:
        if checkpoint is None or rank != 0:
            return
        write_file(checkpoint, {
            "kind": "training", "config": asdict(config), "seed": int(seed), "n": n,
            "model": module.state_dict(), "optimizer": opt.state_dict(),
            "scheduler": None if sched is None else sched.state_dict(),
            "result": asdict(result), "best_state": best_state, "bad_epochs": bad_epochs,
            "done": done,
        }, overwrite=True)

    def reduced(value: torch.Tensor) -> float:
        """A per-process partial sum summed over the processes (float64)."""
        if world == 1:
            return float(value)
        return float(ddp.all_reduce_sum(value.detach().to(torch.float64).reshape(1)))

    def val_loss() -> float:
        module.eval()
        total = torch.zeros((), dtype=torch.float64, device=device)
        with torch.no_grad():
            for i in range(0, len(val_idx), config.batch_size):
                idx = val_idx[i: i + config.batch_size][rank::world]
                if len(idx):
                    total += loss_fn([t[idx] for t in data]).to(torch.float64) * len(idx)
        module.train()
        return reduced(total) / len(val_idx)

    last = config.epochs if epoch_limit is None else min(config.epochs, int(epoch_limit))
    start = time.perf_counter()
    bar = progress_bar(total=config.epochs, initial=result.epochs_run, desc=desc,
                       progress=progress and rank == 0, leave=False)
    module.train()
    while not done and result.epochs_run < last:
        epoch = result.epochs_run + 1
        order = train_idx[_epoch_order(len(train_idx), seed, epoch)]
        total = 0.0
        result.lr.append(opt.param_groups[0]["lr"])
        for b in range(n_batches):
            idx = order[b * config.batch_size: (b + 1) * config.batch_size]
            where = (f"at epoch {epoch}, batch {b + 1}/{n_batches} (learning rate "
                     f"{opt.param_groups[0]['lr']:.3g}); check the data, lower lr or set "
                     "clip_grad_norm")
            try:
                loss = _local_loss(loss_fn, data, idx, rank, world, params)
            except ValueError as err:
                # with torch's distribution validation on (pyro switches it on at import,
                # zuko off), NaN parameters fail inside log_prob instead of in the loss
                if all(bool(torch.isfinite(p).all()) for p in params):
                    raise
                bar.close()
                raise FloatingPointError(f"{desc}: non-finite parameters {where}") from err
            batch_loss = loss.detach() if world == 1 else reduced(loss)
            if not math.isfinite(float(batch_loss)):
                bar.close()
                raise FloatingPointError(f"{desc}: non-finite loss {float(batch_loss)} {where}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            ddp.all_reduce_gradients(params)
            if config.clip_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(params, config.clip_grad_norm)
            opt.step()
            if isinstance(sched, torch.optim.lr_scheduler.CosineAnnealingLR):
                sched.step()
            total += float(batch_loss) * len(idx)
        result.train_loss.append(total / len(train_idx))
        result.epochs_run = epoch
        if len(val_idx):
            v = val_loss()
            if not math.isfinite(v):
                bar.close()
                raise FloatingPointError(f"{desc}: non-finite validation loss at epoch {epoch}")
            result.val_loss.append(v)
            if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
                sched.step(v)
            if best_state is None or v < result.best_val_loss - config.min_delta:
                result.best_val_loss, result.best_epoch = v, epoch
                best_state, bad_epochs = _copy_state(module), 0
            else:
                bad_epochs += 1
            if config.patience is not None and bad_epochs >= config.patience:
                result.stopped_early = True
                done = True
        else:
            result.best_epoch = epoch
        done = done or epoch >= config.epochs
        bar.update(1)
        bar.set_postfix(train=f"{result.train_loss[-1]:.4f}",
                        val=f"{result.val_loss[-1]:.4f}" if result.val_loss else "-")
        save_checkpoint()
    bar.close()
    result.seconds = time.perf_counter() - start
    if done and best_state is not None:
        module.load_state_dict(best_state)
    return result


def _local_loss(loss_fn, data, idx: torch.Tensor, rank: int, world: int, params):
    """This process's share of the batch mean: loss_fn(own rows) × own rows / batch rows.

    Summed over the processes it is the batch mean, and so are its gradients. A process
    without rows returns a zero connected to the parameters (its gradients are zeros).
    """
    if world == 1:
        return loss_fn([t[idx] for t in data])
    own = idx[rank::world]
    if len(own) == 0:
        return sum(p.sum() for p in params) * 0.0
    return loss_fn([t[own] for t in data]) * (len(own) / len(idx))


def _check_pair(flow: ConditionalFlow, x, context) -> tuple[torch.Tensor, torch.Tensor | None]:
    x = flow.x_preprocessing.check_events("x", x)
    if flow.conditional:
        if context is None:
            raise ValueError("context: this flow is conditional, a context is required")
        context = flow.context_preprocessing.check_events("context", context)
        if context.shape[0] != x.shape[0]:
            raise ValueError(
                f"x, context: expected the same number of events, got {x.shape[0]} and "
                f"{context.shape[0]}"
            )
    elif context is not None:
        raise ValueError("context: this flow is unconditional, expected None")
    return x, context


def train_flow(
    flow: ConditionalFlow,
    x,
    context=None,
    *,
    config: TrainConfig,
    seed: int,
    progress: bool = True,
    checkpoint: str | os.PathLike | None = None,
    epoch_limit: int | None = None,
) -> TrainResult:
    """Maximum-likelihood training of a conditional flow.

    Unfitted standardisations of the preprocessing are first fitted on the training
    split. The loss is the mean of -log q(x | c) over events, in nats w.r.t. the
    preprocessing's measure.

    Args:
        flow: the flow, trained in place.
        x: physical events, shape (n, *flow.event_shape).
        context: physical context, shape (n, ...), or None for unconditional flows.
        config: training settings.
        seed: seeds the split and batch order.
        progress: show a tqdm bar.
        checkpoint: resumable training-state file (see :func:`fit_module`).
        epoch_limit: end this call after this many epochs in total.

    Returns:
        A :class:`TrainResult`.
    """
    if not isinstance(flow, ConditionalFlow):
        raise TypeError(f"flow: expected a ConditionalFlow, got {type(flow).__name__}")
    x, context = _check_pair(flow, x, context)
    train_idx, _ = split_indices(x.shape[0], config.validation_fraction, seed)
    flow.fit_preprocessing(x[train_idx], None if context is None else context[train_idx])
    y, ladj = flow.x_preprocessing.features_of("x", x)
    data = [flow._cast(y), flow._cast(ladj)]
    if context is not None:
        data.append(flow.context_features(context))

    def loss_fn(batch):
        c = batch[2] if len(batch) > 2 else None
        return -(flow.feature_log_prob(batch[0], c) + batch[1]).mean()

    return fit_module(flow, loss_fn, data, config=config, seed=seed, progress=progress,
                      checkpoint=checkpoint, epoch_limit=epoch_limit, desc="flow")


@dataclass
class LoadedFlow:
    """What :func:`load_flow` returns.

    Attributes:
        flow: the trained flow (preprocessing state included).
        config: the training config saved with it, or None.
        result: the training history saved with it, or None.
    """

    flow: ConditionalFlow
    config: TrainConfig | None
    result: TrainResult | None


def save_flow(
    path: str | os.PathLike,
    flow: ConditionalFlow,
    *,
    config: TrainConfig | None = None,
    result: TrainResult | None = None,
    overwrite: bool = False,
) -> None:
    """Save a flow, its preprocessing state and optionally its training config/history.

    Raises:
        FileExistsError: if ``path`` exists and ``overwrite`` is False.
    """
    if not isinstance(flow, ConditionalFlow):
        raise TypeError(f"flow: expected a ConditionalFlow, got {type(flow).__name__}")
    write_file(path, {
        "kind": "flow", "init": flow.init_kwargs(), "state": flow.state_dict(),
        "config": None if config is None else asdict(config),
        "result": None if result is None else asdict(result),
    }, overwrite=overwrite)


def load_flow(path: str | os.PathLike, *, map_location=None) -> LoadedFlow:
    """Load a flow saved by :func:`save_flow` (``torch.load`` with weights_only=True)."""
    d = read_file(path, "flow", map_location=map_location)
    flow = ConditionalFlow.from_init_kwargs(d["init"])
    flow.load_state_dict(d["state"])
    if map_location is not None:
        flow.to(map_location)
    cfg = d["config"]
    if cfg is not None:
        cfg = TrainConfig(**cfg)
    res = d["result"]
    return LoadedFlow(flow, cfg, None if res is None else TrainResult(**res))
