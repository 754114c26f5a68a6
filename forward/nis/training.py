r"""Training a proposal's density on an integrand, reusing integrand calls.

Every loss is estimated from points :math:`x_i` drawn from some *sampling* density
:math:`g` (the current proposal, an earlier one stored in the buffer, or a VEGAS
warm-up), with :math:`p = |f|/I` the target and :math:`q_\theta` the proposal:

* ``"variance"``: :math:`\langle (|f|/I)^2 / (g\,q_\theta) \rangle_g`, an estimate of
  :math:`E_q[(w/I)^2] = 1 + \mathrm{Var}_q(w)/I^2`;
* ``"kl"`` (forward KL, importance-weighted):
  :math:`-\langle (|f|/(g I)) \log q_\theta \rangle_g`;
* ``"reverse_kl"``: the score-function estimator of
  :math:`\nabla_\theta \mathrm{KL}(q_\theta\|p)`, i.e.
  :math:`\langle (q/g)\,[\log q - \log p - b]\, \log q_\theta \rangle_g` with the
  bracket and :math:`q/g` held fixed and a baseline :math:`b` (no integrand gradient
  needed).

:math:`I` is the batch's own estimate :math:`\langle |f|/g \rangle`, held fixed, so
the losses are O(1) whatever the integrand's scale. All weights are float64.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from forward import ddp
from forward._validation import check_choice, check_range
from forward.files import atomic_target
from forward.nis._evaluate import Integrand, check_count, check_points, evaluate
from forward.progress import progress_bar

__all__ = ["LOSSES", "Trainer", "TrainingConfig", "nis_loss"]

LOSSES = ("variance", "kl", "reverse_kl")


def nis_loss(
    name: str,
    log_q: torch.Tensor,
    f: torch.Tensor,
    log_g: torch.Tensor,
    *,
    groups: int = 1,
) -> torch.Tensor:
    """One of the training losses on a batch.

    Args:
        name: ``"variance"``, ``"kl"`` or ``"reverse_kl"``.
        log_q: the proposal's log-density at the points, shape (n,), differentiable.
        f: integrand values, shape (n,) (|f| is the target).
        log_g: log-density the points were sampled from, shape (n,).
        groups: number of consecutive, equally long blocks of the batch that are
            normalised separately (each block's own ``<|f|/g>`` is its ``I``), e.g. one
            block per parameter point θ of a conditional proposal, so that every θ
            counts alike whatever its integral; ``n`` must be a multiple of it. Blocks
            whose integrand values are all zero are left out.

    Returns:
        A scalar loss (float64).
    """
    check_choice("name", name, LOSSES)
    check_count("groups", groups)
    n = f.shape[0]
    if n % groups:
        raise ValueError(f"groups: expected a divisor of the batch size {n}, got {groups}")
    shape = (groups, n // groups)
    log_q = log_q.to(torch.float64).view(shape)
    a = f.to(torch.float64).abs().view(shape)
    log_g = log_g.to(torch.float64).view(shape)
    w_g = a * torch.exp(-log_g)
    norm = w_g.mean(dim=1, keepdim=True)
    live = norm > 0
    n_live = int(live.sum())
    if n_live == 0:
        raise ValueError("f: all integrand values in the batch are zero; cannot train on it")
    norm = torch.where(live, norm, 1.0)
    count = n_live * shape[1]
    pos = a > 0
    log_p = torch.where(pos, torch.log(torch.where(pos, a, 1.0)) - torch.log(norm), -math.inf)
    if name == "variance":
        t = torch.where(pos, torch.exp(2 * log_p - log_g - log_q), 0.0)
        return t.sum() / count
    if name == "kl":
        return -((w_g / norm) * log_q).sum() / count
    r = torch.exp(log_q - log_g).detach()
    h = (log_q.detach() - log_p).clamp(max=50.0)
    b = (r * h).sum(dim=1, keepdim=True) / r.sum(dim=1, keepdim=True)
    return torch.where(live, r * (h - b) * log_q, 0.0).sum() / count


def _adam_kernel(params: list[torch.Tensor]) -> dict:
    """Adam's fastest implementation for these parameters: fused on CPU and CUDA."""
    devices = {p.device.type for p in params}
    if devices <= {"cpu", "cuda"} and all(p.is_floating_point() for p in params):
        return {"fused": True}
    return {"foreach": True}


@dataclass(frozen=True)
class TrainingConfig:
    """Settings of :class:`Trainer`.

    Attributes:
        loss: one of :data:`LOSSES`.
        steps: online steps planned (each draws ``batch_size`` new integrand calls);
            sets the learning-rate schedule's length.
        batch_size: points per step.
        lr: initial learning rate (Adam).
        lr_final: learning rate at the end of a cosine schedule.
        schedule: ``"cosine"`` or ``"constant"``.
        buffered_steps: extra steps per online step on points drawn from the buffer.
        buffer_capacity: points kept for reuse (oldest dropped first).
        grad_clip: maximum gradient norm.
        density: which density the loss trains: ``"proposal"`` (``proposal.log_prob``)
            or ``"flow"`` (``proposal.log_prob_flow``, the flow component of a
            :class:`forward.nis.MixtureProposal` alone, independent of λ).
    """

    loss: str = "kl"
    steps: int = 500
    batch_size: int = 1024
    lr: float = 3e-3
    lr_final: float = 1e-4
    schedule: str = "cosine"
    buffered_steps: int = 3
    buffer_capacity: int = 100_000
    grad_clip: float = 10.0
    density: str = "proposal"

    def __post_init__(self) -> None:
        check_choice("loss", self.loss, LOSSES)
        check_choice("density", self.density, ("proposal", "flow"))
        check_choice("schedule", self.schedule, ("cosine", "constant"))
        check_count("steps", self.steps)
        check_count("batch_size", self.batch_size, 2)
        check_count("buffered_steps", self.buffered_steps, 0)
        check_count("buffer_capacity", self.buffer_capacity, 2)
        check_range("lr", self.lr, 0.0, low_open=True)
        check_range("lr_final", self.lr_final, 0.0)
        check_range("grad_clip", self.grad_clip, 0.0, low_open=True)


class Trainer:
    """Buffered training of a proposal (e.g. :class:`forward.nis.MixtureProposal`).

    Args:
        f: integrand, ``f(x)`` with ``x`` of shape (n, d) returning shape (n,).
        proposal: an ``nn.Module`` with ``dims``, ``sample(n, *, generator)`` and a
            differentiable ``log_prob(x)``.
        config: a :class:`TrainingConfig`.
        generator: random generator (on the proposal's device) for sampling and buffer
            draws; its state is part of checkpoints. None creates one seeded with 0.
        progress: show a tqdm progress bar (rank 0 only in a process group).

    Data-parallel training: in a ``torch.distributed`` process group of P > 1 processes
    (``torchrun``, :func:`forward.ddp.init_from_env`) the proposal's parameters are
    broadcast from rank 0, process r samples with its own generator seeded
    ``forward.distributed.chunk_seed(generator.initial_seed(), r)`` and keeps its own
    buffer, and after every backward pass the gradients (of each process's batch loss)
    are averaged over the processes, so that a step sees P × ``batch_size`` points. The
    loss checked for NaN is the average too (every process stops together);
    ``history``, ``n_eval`` and the buffer are per process. Outside a group nothing
    changes.

    Attributes:
        n_eval: integrand calls so far (including those added by :meth:`add_samples`).
        step: online steps done.
        history: per online step ``{"step", "loss", "value", "rel_std", "n_eval"}``.
    """

    def __init__(
        self,
        f: Integrand,
        proposal: torch.nn.Module,
        config: TrainingConfig | None = None,
        *,
        generator: torch.Generator | None = None,
        progress: bool = True,
    ) -> None:
        if not callable(f):
            raise TypeError(f"f: expected a callable integrand, got {type(f).__name__}")
        self.f = f
        self.proposal = proposal
        self.config = config or TrainingConfig()
        params = [p for p in proposal.parameters() if p.requires_grad]
        if not params:
            raise ValueError("proposal: has no trainable parameters")
        self.device = params[0].device
        if self.config.density == "flow" and not hasattr(proposal, "log_prob_flow"):
            raise TypeError(
                f"proposal: density='flow' needs a log_prob_flow method (a MixtureProposal), "
                f"got {type(proposal).__name__}"
            )
        self._log_prob = (
            proposal.log_prob_flow if self.config.density == "flow" else proposal.log_prob
        )
        self.generator = generator or torch.Generator(device=self.device).manual_seed(0)
        self._world = ddp.world()
        if self._world[1] > 1:
            from forward.distributed import chunk_seed

            ddp.broadcast_module(proposal)
            seed = chunk_seed(self.generator.initial_seed() % 2**63, self._world[0])
            self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.progress = progress and self._world[0] == 0
        # one fused kernel per step instead of a Python loop over parameters (4 ms -> <1 ms
        # per step for a small flow on the CPU); same update
        self.optimizer = torch.optim.Adam(params, lr=self.config.lr, **_adam_kernel(params))
        total = self.config.steps * (1 + self.config.buffered_steps)
        if self.config.schedule == "cosine":
            self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
                self.optimizer, T_max=total, eta_min=self.config.lr_final
            )
        else:
            self.scheduler = torch.optim.lr_scheduler.ConstantLR(self.optimizer, factor=1.0)
        self.step = 0
        self.n_eval = 0
        self.history: list[dict] = []
        self._buf_x: torch.Tensor | None = None
        self._buf_f = torch.empty(0, dtype=torch.float64)
        self._buf_lg = torch.empty(0, dtype=torch.float64)
        self._buf_size = 0
        self._buf_pos = 0

    # ------------------------------------------------------------------ buffer
    @torch.no_grad()
    def add_samples(self, x: torch.Tensor, fx: torch.Tensor, log_g: torch.Tensor) -> None:
        """Store evaluated points for reuse (e.g. from :meth:`forward.nis.VegasMap.adapt`).

        Args:
            x: points, shape (n, d).
            fx: integrand values at ``x``, shape (n,); counted in :attr:`n_eval`.
            log_g: log of the density ``x`` was drawn from, shape (n,).
        """
        check_points("x", x, self.proposal.dims)
        n = n_calls = x.shape[0]
        for name, t in (("fx", fx), ("log_g", log_g)):
            if t.shape != (n,):
                raise ValueError(f"{name}: expected shape ({n},), got {tuple(t.shape)}")
        cap = self.config.buffer_capacity
        if self._buf_x is None:
            self._buf_x = torch.empty(cap, x.shape[1], dtype=x.dtype, device=x.device)
            self._buf_f = torch.empty(cap, dtype=torch.float64, device=x.device)
            self._buf_lg = torch.empty(cap, dtype=torch.float64, device=x.device)
        if n > cap:
            x, fx, log_g = x[-cap:], fx[-cap:], log_g[-cap:]
            n = cap
        idx = (self._buf_pos + torch.arange(n, device=x.device)) % cap
        self._buf_x[idx] = x.to(self._buf_x.dtype)
        self._buf_f[idx] = fx.to(torch.float64)
        self._buf_lg[idx] = log_g.to(torch.float64)
        self._buf_pos = (self._buf_pos + n) % cap
        self._buf_size = min(cap, self._buf_size + n)
        self.n_eval += n_calls

    # ---------------------------------------------------------------- training
    def _gradient_step(
        self, x: torch.Tensor, fx: torch.Tensor, log_g: torch.Tensor, loss_name: str
    ) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        loss = nis_loss(loss_name, self._log_prob(x), fx, log_g)
        size = self._world[1]
        checked = loss.detach() if size == 1 else \
            ddp.all_reduce_sum(loss.detach().reshape(1))[0] / size
        if not bool(torch.isfinite(checked)):
            raise FloatingPointError(
                f"training loss is {float(checked)} at step {self.step}; "
                "lower lr or check the integrand"
            )
        loss.backward()
        ddp.all_reduce_gradients(self.optimizer.param_groups[0]["params"], average=True)
        torch.nn.utils.clip_grad_norm_(
            self.optimizer.param_groups[0]["params"], self.config.grad_clip, foreach=True
        )
        self.optimizer.step()
        self.scheduler.step()
        return float(checked)

    def train(self, steps: int | None = None, *, loss: str | None = None) -> list[dict]:
        """Run online steps (each followed by ``buffered_steps`` buffer steps).

        Args:
            steps: online steps to run; default: the rest of ``config.steps``.
            loss: loss for these steps (one of :data:`LOSSES`); default ``config.loss``
                (e.g. a final ``"variance"`` stage after ``"kl"``).

        Returns:
            The history entries of these steps.
        """
        if steps is None:
            steps = max(0, self.config.steps - self.step)
        else:
            check_count("steps", steps, 0)
        cfg = self.config
        loss_name = cfg.loss if loss is None else loss
        check_choice("loss", loss_name, LOSSES)
        out = []
        bar = progress_bar(total=steps, progress=self.progress, desc="train", unit="step")
        for _ in range(steps):
            x, log_g = self.proposal.sample(cfg.batch_size, generator=self.generator)
            fx = evaluate(self.f, x)
            self.add_samples(x, fx, log_g)
            loss = self._gradient_step(x, fx, log_g, loss_name)
            for _ in range(cfg.buffered_steps):
                idx = torch.randint(
                    self._buf_size, (cfg.batch_size,), generator=self.generator, device=self.device
                )
                self._gradient_step(
                    self._buf_x[idx], self._buf_f[idx], self._buf_lg[idx], loss_name
                )
            w = fx.abs() * torch.exp(-log_g)
            mean = float(w.mean())
            entry = {
                "step": self.step,
                "loss": loss,
                "value": float((fx * torch.exp(-log_g)).mean()),
                "rel_std": float(w.std()) / mean if mean > 0 else math.nan,
                "n_eval": self.n_eval,
            }
            self.history.append(entry)
            out.append(entry)
            self.step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4g}", rel_std=f"{entry['rel_std']:.3g}")
        bar.close()
        return out

    # ------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict:
        """Everything needed to resume: proposal, optimiser, schedule, buffer, generator."""
        n = self._buf_size
        return {
            "config": asdict(self.config),
            "proposal": self.proposal.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "step": self.step,
            "n_eval": self.n_eval,
            "history": [dict(h) for h in self.history],
            "buffer": {
                "x": None if self._buf_x is None else self._buf_x[:n].clone(),
                "f": self._buf_f[:n].clone(),
                "log_g": self._buf_lg[:n].clone(),
                "pos": self._buf_pos,
            },
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict` (the trainer must have the same config and model)."""
        if state["config"] != asdict(self.config):
            raise ValueError(
                f"state: saved with config {state['config']}, "
                f"this trainer has {asdict(self.config)}"
            )
        self.proposal.load_state_dict(state["proposal"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        self.n_eval = int(state["n_eval"])
        self.history = [dict(h) for h in state["history"]]
        buf = state["buffer"]
        self._buf_x = None
        self._buf_size = self._buf_pos = 0
        if buf["x"] is not None:
            cap = self.config.buffer_capacity
            n = buf["x"].shape[0]
            self._buf_x = torch.empty(
                cap, buf["x"].shape[1], dtype=buf["x"].dtype, device=self.device
            )
            self._buf_f = torch.empty(cap, dtype=torch.float64, device=self.device)
            self._buf_lg = torch.empty(cap, dtype=torch.float64, device=self.device)
            self._buf_x[:n] = buf["x"]
            self._buf_f[:n] = buf["f"]
            self._buf_lg[:n] = buf["log_g"]
            self._buf_size = n
            self._buf_pos = int(buf["pos"])
        self.generator.set_state(state["generator"])

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Write a checkpoint (``torch.save`` of :meth:`state_dict`).

        Args:
            path: file to write.
            overwrite: replace an existing file; otherwise an existing file raises.

        Raises:
            FileExistsError: if ``path`` exists and ``overwrite`` is False.
        """
        with atomic_target(Path(path), overwrite, ".pt") as tmp:
            torch.save(self.state_dict(), tmp)

    def load(self, path: str | os.PathLike) -> None:
        """Resume from a checkpoint written by :meth:`save`.

        Args:
            path: checkpoint file.
        """
        state = torch.load(os.fspath(path), map_location=self.device, weights_only=True)
        self.load_state_dict(state)
