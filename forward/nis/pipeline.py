r"""The default NIS pipeline: VEGAS warm start, then a flow on the VEGAS grid.

:func:`fit` spends a budget of integrand calls in three stages:

1. **VEGAS warm start** (``vegas_fraction`` of the calls, in ``vegas_iters`` rounds).
   The grid is separable, so for a multi-peaked integrand it puts mass at every
   corner of the product of the per-dimension peaks: all true peaks are among them,
   whichever were found first. Every call is stored in the trainer's buffer.
2. **Flow training with an annealed defensive weight.** A :class:`~forward.nis.CubeFlow`
   (on the plain cube, or on the grid with ``vegas_layer=True``) is trained by the
   importance-weighted forward KL (mass covering) on samples of the defensive mixture
   ``(1 - λ) q_flow + λ q_VEGAS``; λ starts large (the VEGAS component keeps every
   peak in every batch, so training cannot forget one) and decreases geometrically
   to ``lam``.
3. **Final stage** (``final_fraction`` of the flow steps) with the ``final_loss``
   (default: the variance loss, which targets the weight spread directly) at the
   final λ.

The result is a :class:`~forward.nis.MixtureProposal`; integrate it with
:func:`forward.nis.integrate` (``check=True`` runs the lost-region diagnostic).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field

import torch

from forward._validation import check_choice, check_range
from forward.nis._evaluate import Integrand, check_count
from forward.nis.flows import CubeFlow
from forward.nis.mixture import MixtureProposal
from forward.nis.training import LOSSES, Trainer, TrainingConfig
from forward.nis.vegas import VegasMap
from forward.seeding import seeded_init

__all__ = ["NISConfig", "NISFit", "fit", "vegas_bins"]


def vegas_bins(
    dims: int, n_per_iter: int, *, calls_per_bin: int = 100, max_bins: int = 256
) -> int:
    """VEGAS bins per dimension: ``n_per_iter / (calls_per_bin * dims)``, in [16, max_bins].

    Two uses want different resolutions. As a warm start and defensive density of a
    flow (the default, about 100 calls per dimension and bin, at most 256) the grid
    should stay broad: a sharp grid is a poor defensive component in the tails of a
    peak the flow has not yet learned (camel-8D, one seed: rel. weight std of the final
    proposal 1.25 with 25 bins, 1.75 with 250). Alone, VEGAS
    wants the resolution of ``vegas`` 6.4.1 (``calls_per_bin=10, max_bins=1000``: a Z
    resonance in one variable needs hundreds of bins); :class:`~forward.nis.VegasMap`'s
    collapse guard then limits the resolution where a round's calls carry too little
    information for that many bins.

    Args:
        dims: number of dimensions.
        n_per_iter: integrand calls per VEGAS round.
        calls_per_bin: target calls per dimension and bin.
        max_bins: upper limit (>= 16).

    Returns:
        The number of bins per dimension.
    """
    check_count("dims", dims)
    check_count("n_per_iter", n_per_iter)
    check_count("calls_per_bin", calls_per_bin)
    check_count("max_bins", max_bins, 16)
    return max(16, min(max_bins, n_per_iter // (calls_per_bin * dims)))


@dataclass(frozen=True)
class NISConfig:
    """Settings of :func:`fit`.

    Attributes:
        calls: total integrand calls for training (VEGAS warm start included).
        vegas_fraction: share of ``calls`` for the VEGAS warm start (0 disables VEGAS:
            the flow then lives on the plain cube with a uniform defensive component).
        vegas_iters: VEGAS rounds; None: as many as keep at least ``2500 * dims`` calls
            per round, at most 4 (at least 1). Too few calls per round can drop a peak
            that only a few points saw, and so can many rounds that feed back on each
            other (camel-8D: 5 rounds of 20 000 lost a peak silently in 1 of
            30 seeds; with 1M calls, 4 rounds of 50 000 kept both in 6 of 6, rel. std
            0.42–0.69); small budgets keep several rounds for a good defensive grid.
        vegas_bins: VEGAS bins per dimension; None picks :func:`vegas_bins`.
        vegas_alpha: VEGAS damping exponent (0.25: a warm start must not lose a peak;
            with the squared-weight amounts of :class:`~forward.nis.VegasMap` it
            responds like 0.5 on square-root amounts; with 0.5 the camel-8D warm start
            of 5 x 20 000 calls dropped a peak in 4 of 30 seeds, with 0.25 in 1).
        vegas_layer: put the flow on top of the grid (``MixtureProposal(compose=True)``);
            default False: the flow lives on the plain cube and the grid is only the
            warm-start sampler and the defensive density (the grid's piecewise-constant
            density would otherwise put kinks into the weights and cost unweighting
            efficiency).
        flow_bins: spline bins of the flow (10: on camel-4D with 1M calls the weight
            spread equals that of 16 bins, rel. std 0.196 both, in 20 % less time).
        hidden: hidden layer widths of each coupling network.
        layers: coupling layers; None: :meth:`flow_layers`.
        loss: main training loss, one of :data:`forward.nis.LOSSES`.
        final_loss: loss of the final stage.
        final_fraction: share of the flow steps spent in the final stage.
        lam: final defensive weight λ.
        lam_start: initial defensive weight.
        anneal_fraction: share of the flow steps over which λ decreases to ``lam``.
        batch_size: points per online step (2048 with ``lr`` 4.5e-3 trains camel-4D
            to the weight spread of 1024 with 3e-3, rel. std 0.197 against 0.196, in
            2/3 of the time: fewer, larger steps cost less per point on the CPU; 4096
            lost quality, rel. std 0.39).
        buffered_steps: extra gradient steps on buffer points per online step.
        buffer_capacity: points kept in the buffer.
        lr: initial learning rate.
        lr_final: final learning rate (cosine schedule).
        density: ``"flow"`` trains the flow component alone, ``"proposal"`` the mixture.
        flow_dtype: dtype of the flow's parameters.
    """

    calls: int = 1_000_000
    vegas_fraction: float = 0.2
    vegas_iters: int | None = None
    vegas_bins: int | None = None
    vegas_alpha: float = 0.25
    vegas_layer: bool = False
    flow_bins: int = 10
    hidden: tuple[int, ...] = (32, 32)
    layers: int | None = None
    loss: str = "kl"
    final_loss: str = "variance"
    final_fraction: float = 0.5
    lam: float = 0.02
    lam_start: float = 0.5
    anneal_fraction: float = 0.5
    batch_size: int = 2048
    buffered_steps: int = 1
    buffer_capacity: int = 200_000
    lr: float = 4.5e-3
    lr_final: float = 1e-4
    density: str = "flow"
    flow_dtype: torch.dtype = field(default=torch.float32)

    def __post_init__(self) -> None:
        check_count("calls", self.calls, 2)
        check_count("batch_size", self.batch_size, 2)
        check_range("vegas_fraction", self.vegas_fraction, 0.0, 1.0, high_open=True)
        if self.vegas_iters is not None:
            check_count("vegas_iters", self.vegas_iters)
        if self.vegas_bins is not None:
            check_count("vegas_bins", self.vegas_bins)
        check_range("vegas_alpha", self.vegas_alpha, 0.0)
        check_choice("loss", self.loss, LOSSES)
        check_choice("final_loss", self.final_loss, LOSSES)
        check_range("final_fraction", self.final_fraction, 0.0, 1.0, high_open=True)
        check_range("lam", self.lam, 0.0, 1.0, low_open=True)
        check_range("lam_start", self.lam_start, self.lam, 1.0)
        check_range("anneal_fraction", self.anneal_fraction, 0.0, 1.0)
        check_choice("density", self.density, ("proposal", "flow"))
        check_count("flow_bins", self.flow_bins)
        check_count("buffered_steps", self.buffered_steps)
        check_count("buffer_capacity", self.buffer_capacity)
        if self.layers is not None:
            check_count("layers", self.layers)
        if not isinstance(self.hidden, (tuple, list)) or not self.hidden:
            raise ValueError(f"hidden: expected a non-empty tuple of layer widths, got "
                             f"{self.hidden!r}")
        for width in self.hidden:
            check_count("hidden", width)
        for name in ("lr", "lr_final"):
            check_range(name, getattr(self, name), 0.0, math.inf, low_open=True,
                        high_open=True)
        if not isinstance(self.flow_dtype, torch.dtype) or not self.flow_dtype.is_floating_point:
            raise TypeError(f"flow_dtype: expected a floating dtype, got {self.flow_dtype}")
        if self.calls - self.vegas_calls < self.batch_size:
            raise ValueError(
                f"calls: expected at least {self.vegas_calls + self.batch_size} "
                f"(VEGAS warm start plus one flow batch of {self.batch_size}), got {self.calls}"
            )

    @property
    def vegas_calls(self) -> int:
        """Integrand calls of the VEGAS warm start."""
        return int(self.calls * self.vegas_fraction)

    def vegas_rounds(self, dims: int) -> int:
        """VEGAS rounds used in ``dims`` dimensions (``vegas_iters`` or the automatic choice)."""
        if self.vegas_iters is not None:
            return self.vegas_iters
        return max(1, min(4, self.vegas_calls // (2500 * dims)))

    def flow_layers(self, dims: int) -> int:
        """Coupling layers in ``dims`` dimensions: ``layers``, or ``2 ceil(log2 dims)``.

        Each pair of layers moves every coordinate once, and the pairs split the
        coordinates by the bits of their index (:func:`forward.nis.coupling_masks`), so
        every two coordinates are split at least once. In 2 dimensions that is one pair,
        as in madnis; the :class:`~forward.nis.CubeFlow` default of two pairs took twice
        the time on the ring-2D toy for a smaller weight spread (1M calls, one seed:
        20 s and rel. std 0.18 against 10 s and 0.21-0.23; with one pair the default
        pipeline still beats madnis on time and spread, see ``benchmarks/nis.py``).
        """
        if self.layers is not None:
            return self.layers
        return 2 * max(1, math.ceil(math.log2(dims)))

    @property
    def flow_steps(self) -> int:
        """Online flow training steps."""
        return (self.calls - self.vegas_calls) // self.batch_size

    def lam_at(self, step: int) -> float:
        """Defensive weight at online step ``step``: geometric from ``lam_start`` to ``lam``."""
        n = self.anneal_fraction * self.flow_steps
        if n <= 0 or step >= n:
            return self.lam
        return self.lam_start * (self.lam / self.lam_start) ** (step / n)


@dataclass
class NISFit:
    """What :func:`fit` returns.

    Attributes:
        proposal: the trained proposal (flow on the VEGAS grid with defensive VEGAS part).
        vegas: the VEGAS grid (None without warm start).
        trainer: the :class:`forward.nis.Trainer` (history, buffer, checkpoints).
        n_eval: integrand calls used for training.
        seconds: wall time of the training.
    """

    proposal: MixtureProposal
    vegas: VegasMap | None
    trainer: Trainer
    n_eval: int
    seconds: float


def fit(
    f: Integrand,
    dims: int,
    config: NISConfig | None = None,
    *,
    generator: torch.Generator | None = None,
    device=None,
    progress: bool = False,
    vegas: VegasMap | None = None,
) -> NISFit:
    """Train a NIS proposal for ``f`` on [0, 1]^dims with the default pipeline.

    Args:
        f: integrand, ``f(x)`` with ``x`` of shape (n, dims) returning shape (n,)
            (signed allowed: the proposal follows |f|).
        dims: number of dimensions (>= 2).
        config: an :class:`NISConfig` (default settings if None).
        generator: random generator on ``device``; None creates one seeded with 0.
        device: device of the grid and the flow.
        progress: show progress bars.
        vegas: an already adapted :class:`~forward.nis.VegasMap` of ``dims`` dimensions
            (e.g. a channel grid of :func:`forward.nis.fit_multichannel`) to use
            instead of the warm start: stage 1 is skipped, all ``calls`` go to the flow
            (``vegas_fraction`` is ignored) and the grid is the defensive density (and
            the flow's base with ``vegas_layer``). It is not adapted further.

    Returns:
        An :class:`NISFit` (``vegas`` is the given grid when one was given).

    Raises:
        TypeError: ``vegas`` not a VegasMap.
        ValueError: ``vegas`` of another dimension than ``dims``.
    """
    check_count("dims", dims, 2)
    cfg = config or NISConfig()
    if not isinstance(cfg, NISConfig):
        raise TypeError(f"config: expected an NISConfig or None, got {type(cfg).__name__}")
    if vegas is not None:
        if not isinstance(vegas, VegasMap):
            raise TypeError(f"vegas: expected a VegasMap or None, got {type(vegas).__name__}")
        if vegas.dims != dims:
            raise ValueError(f"vegas: expected a grid of dims={dims}, got dims={vegas.dims}")
        cfg = dataclasses.replace(cfg, vegas_fraction=0.0)
    gen = generator or torch.Generator(device=device or "cpu").manual_seed(0)
    t0 = time.perf_counter()
    vm = vegas
    rounds = cfg.vegas_rounds(dims)
    per_iter = cfg.vegas_calls // rounds
    if vm is None and per_iter >= 2:
        vm = VegasMap(dims, bins=cfg.vegas_bins or vegas_bins(dims, per_iter), device=device)
    with seeded_init(gen, device):  # the flow's initial weights come from gen
        flow = CubeFlow(
            dims,
            layers=cfg.flow_layers(dims),
            bins=cfg.flow_bins,
            hidden=cfg.hidden,
            dtype=cfg.flow_dtype,
            device=device,
        )
    proposal = MixtureProposal(flow, lam=cfg.lam_start, vegas=vm, compose=cfg.vegas_layer)
    tcfg = TrainingConfig(
        loss=cfg.loss,
        steps=cfg.flow_steps,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        lr_final=cfg.lr_final,
        buffered_steps=cfg.buffered_steps,
        buffer_capacity=cfg.buffer_capacity,
        density=cfg.density if vm is not None or cfg.density == "proposal" else "flow",
    )
    trainer = Trainer(f, proposal, tcfg, generator=gen, progress=progress)
    if vm is not None and vegas is None:
        vm.adapt(
            f, rounds, per_iter, alpha=cfg.vegas_alpha, generator=gen,
            callback=trainer.add_samples,
        )
    n_final = int(cfg.final_fraction * cfg.flow_steps)
    chunk = max(1, cfg.flow_steps // 100)
    while trainer.step < cfg.flow_steps:
        proposal.lam = cfg.lam_at(trainer.step)
        final = trainer.step >= cfg.flow_steps - n_final
        n = min(chunk, cfg.flow_steps - trainer.step)
        if not final:
            n = min(n, cfg.flow_steps - n_final - trainer.step)
        trainer.train(n, loss=cfg.final_loss if final else cfg.loss)
    proposal.lam = cfg.lam
    return NISFit(proposal, vm, trainer, trainer.n_eval, time.perf_counter() - t0)
