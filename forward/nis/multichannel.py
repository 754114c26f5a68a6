r"""Multi-channel importance sampling with learned channel weights (Kleiss–Pittau, MadNIS).

**Set-up.** A target density :math:`f(x)` over a space with measure :math:`d\mu`
(hard events with dμ = dx1 dx2 dΦ_n, or any toy space) and K channel maps
:math:`x = \Phi_i(r)`, :math:`r \in [0, 1]^{d_i}`, each with
``forward(r) -> (x, log|dx/dr|)`` and ``inverse(x) -> (r, -log|dx/dr|)`` (r outside
the cube where the map cannot reach x). Each channel samples r from its own adaptive
cube density :math:`q_i(r)` (a :class:`~forward.nis.VegasMap`, optionally replaced by
a flow proposal from :func:`forward.nis.fit`), so its density over x is
:math:`g_i(x) = q_i(r)\, |dr/dx|`. Channel weights :math:`\alpha_i(x) \ge 0`,
:math:`\sum_i \alpha_i = 1`, come from :class:`~forward.nis.channel_weights.ChannelWeights`:
the propagator prior :math:`\alpha_i \propto a_i g^0_i` (:math:`g^0_i` the density of
map i alone) times a learned correction.

**Estimator (decided: the single-channel-weight estimator of MadNIS).** Channel i
gets :math:`n_i` points :math:`x \sim g_i` and the weights
:math:`w_i = \alpha_i(x) f(x) / g_i(x)`; the estimate is
:math:`\hat I = \sum_i \frac{1}{n_i} \sum_{x \in i} w_i(x)` with variance
:math:`\sum_i \operatorname{Var}_{g_i}(w_i)/n_i`. Only :math:`g_i` of the sampled
channel enters a weight, so channels can have different dimensions and any sampler;
with the prior :math:`\alpha_i = a_i g_i / \sum_j a_j g_j` and :math:`n_i = a_i n`
it reduces to the Kleiss–Pittau multi-channel weight :math:`f / \sum_j a_j g_j`.

*Unbiasedness.* Let :math:`S_i = \{g_i > 0\}`. For every channel,
:math:`E_{g_i}[w_i] = \int_{S_i} \alpha_i f\, d\mu = \int \alpha_i f\, d\mu`, because
:math:`\alpha_i = 0` outside the support of map i (its prior factor :math:`g_i^0`
vanishes there, and :math:`q_i > 0` on the whole cube, so :math:`S_i` is the map's
range). Summing, :math:`E[\hat I] = \int f \sum_i \alpha_i\, d\mu = \int f\, d\mu`
wherever some active channel reaches x, i.e. for every f that vanishes outside the
union of the active maps' ranges. This holds for *any* α of this form, learned or
not, and for any allocation :math:`n_i \ge 1`: learning α and the allocation only
changes the variance. **Channel dropping** sets :math:`\alpha_i \equiv 0` and
renormalises the others, so the estimator stays unbiased as long as the remaining
channels still cover f; :meth:`MultiChannel.train` only drops a channel whose share
of the integral is below ``drop_threshold`` *and* all of whose non-zero points lie in
another active channel's range.

**Training** (:func:`fit_multichannel`): ``rounds`` rounds; in each, the calls are
split over the active channels by the allocation, every channel's VEGAS grid is
refined on its weights :math:`w_i`, the allocation is set to
:math:`n_i \propto \sqrt{E_{g_i}[w_i^2]}` (floored at ``min_share / K``), which
minimises the variance of the pooled weights :math:`W`,
:math:`\sum_i E_{g_i}[w_i^2]/p_i - I^2` (the unweighting efficiency and the weight
spread depend on W; the estimator's own variance, minimised by
:math:`\sqrt{\operatorname{Var}(w_i)}`, differs from it by
:math:`\sum_i I_i^2/p_i - I^2 \ge 0`), the channel-weight network takes gradient steps on the
variance loss :math:`\sum_i \frac{1}{p_i} E_{g_i}[w_i^2] / I^2` (the variance of
:math:`\hat I` up to constants, exact since the round's samples come from the current
:math:`g_i`), and negligible channels are dropped. Optionally a flow per channel
(:func:`forward.nis.fit` on the channel's cube integrand
:math:`\alpha_i f\, |dx/dr|`, started from the channel's adapted grid with
``flow_on_grid``) replaces the grid with ``flow_fraction`` of the calls.

**Events.** :meth:`MultiChannel.sample` pools the channels with the weights
:math:`W = w_i\, n / n_i` (so :math:`\hat I = \langle W \rangle`);
:meth:`MultiChannel.unweight` unweights them with :func:`forward.nis.unweight`.
Since channel i's points with weights :math:`w_i / n_i` represent :math:`\alpha_i f`,
the kept events are distributed as :math:`\sum_i \alpha_i f = f`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from forward._validation import check_finite, check_range, make_generator, resolve_device
from forward.events import HardEvents
from forward.nis._evaluate import check_count
from forward.nis.channel_weights import ChannelWeights
from forward.nis.diagnostics import check_weights
from forward.nis.pipeline import NISConfig, fit, vegas_bins
from forward.nis.results import IntegrationResult, combine_estimates
from forward.nis.unweighting import UnweightingResult, unweight, unweighting_efficiency
from forward.nis.vegas import VegasMap
from forward.progress import progress_bar
from forward.seeding import seeded_init

__all__ = [
    "MultiChannel",
    "MultiChannelConfig",
    "UnweightedSample",
    "WeightedSample",
    "concat_points",
    "fit_multichannel",
    "hadronic_channels",
]


@dataclass(frozen=True)
class MultiChannelConfig:
    """Settings of :func:`fit_multichannel`.

    Attributes:
        calls: total target calls for training.
        rounds: VEGAS / allocation / channel-weight rounds.
        vegas_bins: VEGAS bins per dimension (64: the maps already flatten the peaks,
            and 64 bins gave a 1.8 times smaller weight spread than 16 on Drell-Yan at 200k
            calls); None picks :func:`forward.nis.vegas_bins` from the calls per channel
            and round.
        vegas_alpha: VEGAS damping exponent.
        learn_weights: train the channel-weight network (else the propagator prior).
        hidden: hidden layer widths of the channel-weight network.
        weight_steps: gradient steps of the network per round.
        weight_batch: points per gradient step (drawn from the round's samples).
        lr: learning rate (Adam) of the network.
        warmup_rounds: rounds before the network is trained and channels are dropped.
        settle_rounds: final rounds without network steps, in which the grids adapt to
            the final channel weights.
        min_share: floor of every active channel's share of the calls, in units of 1/K.
        drop_threshold: channels with a smaller share of the integral are dropped (0,
            the default: never). A channel can be negligible for the integral and still
            essential for the maximum weight: with 1e-6 and learned weights, Drell-Yan
            50-3000 GeV drops its Z′ channel (share ~1e-6 after training).
        flow_fraction: share of ``calls`` for training one flow per active channel with
            :func:`forward.nis.fit` (0: VEGAS grids only).
        flow_config: settings of those fits (``calls`` is replaced per channel).
        flow_on_grid: start each channel's flow from the channel's adapted VEGAS grid
            (``fit(..., vegas=grid)``: no second warm start, the grid is the defensive
            density, and the flow's base with ``flow_config.vegas_layer``); False: each
            fit runs its own warm start as ``flow_config`` says. W + 2 jets, 100k calls
            (half for the flow), one seed, unweighting efficiency at 0.1 % overweight:
            0.0009 with False and ``vegas_fraction=0`` (a flow on the plain cube), 0.0022
            with True, 0.0055 with True and ``vegas_layer=True`` (madnis 1.0.0: 0.0015).
    """

    calls: int = 1_000_000
    rounds: int = 10
    vegas_bins: int | None = 64
    vegas_alpha: float = 1.0
    learn_weights: bool = True
    hidden: tuple[int, ...] = (32, 32)
    weight_steps: int = 20
    weight_batch: int = 4096
    lr: float = 3e-3
    warmup_rounds: int = 2
    settle_rounds: int = 3
    min_share: float = 0.03
    drop_threshold: float = 0.0
    flow_fraction: float = 0.0
    flow_config: NISConfig = field(default_factory=lambda: NISConfig(calls=100_000))
    flow_on_grid: bool = True

    def __post_init__(self) -> None:
        check_count("calls", self.calls, 2)
        check_count("rounds", self.rounds)
        if self.vegas_bins is not None:
            check_count("vegas_bins", self.vegas_bins)
        check_range("vegas_alpha", self.vegas_alpha, 0.0)
        check_count("weight_steps", self.weight_steps, 0)
        check_count("weight_batch", self.weight_batch, 2)
        check_range("lr", self.lr, 0.0, low_open=True)
        check_count("warmup_rounds", self.warmup_rounds, 0)
        check_count("settle_rounds", self.settle_rounds, 0)
        check_range("min_share", self.min_share, 0.0, 1.0, low_open=True)
        check_range("drop_threshold", self.drop_threshold, 0.0, 1.0, high_open=True)
        check_range("flow_fraction", self.flow_fraction, 0.0, 1.0, high_open=True)
        if not isinstance(self.flow_on_grid, bool):
            raise TypeError(
                f"flow_on_grid: expected a bool, got {type(self.flow_on_grid).__name__}"
            )
        if not isinstance(self.flow_config, NISConfig):
            raise TypeError(
                f"flow_config: expected an NISConfig, got {type(self.flow_config).__name__}"
            )

    @property
    def vegas_calls(self) -> int:
        """Calls of the VEGAS / channel-weight rounds."""
        return self.calls - int(self.calls * self.flow_fraction)


@dataclass(frozen=True)
class WeightedSample:
    """Pooled weighted points of all channels (:meth:`MultiChannel.sample`).

    Attributes:
        points: the points (HardEvents or a tensor of shape (n, ...)), channel by channel.
        weights: pooled weights W, shape (n,), float64, with mean the integral estimate
            (units of f times the measure).
        channel: the channel each point came from, shape (n,), int64.
        result: the :class:`~forward.nis.IntegrationResult` of this sample.
    """

    points: object
    weights: torch.Tensor
    channel: torch.Tensor
    result: IntegrationResult


@dataclass(frozen=True)
class UnweightedSample:
    """Unweighted points (:meth:`MultiChannel.unweight`), in random order.

    Attributes:
        points: kept points (HardEvents or a tensor), k of them.
        event_weights: their weights in units of w_max, shape (k,): 1, or > 1 for
            overweight points (see :func:`forward.nis.unweight`).
        channel: channel of each kept point, shape (k,), int64.
        unweighting: the :class:`~forward.nis.UnweightingResult` (efficiency, w_max, ...).
        result: integral estimate and diagnostics of the weighted sample.
    """

    points: object
    event_weights: torch.Tensor
    channel: torch.Tensor
    unweighting: UnweightingResult
    result: IntegrationResult


def concat_points(parts: list):
    """Concatenate batches of points: tensors along dim 0, or HardEvents event-wise.

    Args:
        parts: non-empty list of tensors of shape (n_k, ...) or of HardEvents.

    Returns:
        One tensor or HardEvents with Σ n_k points, in order.
    """
    if not parts:
        raise ValueError("parts: expected at least one batch of points, got none")
    if isinstance(parts[0], HardEvents):
        return HardEvents(
            torch.cat([p.momenta for p in parts]), torch.cat([p.x1 for p in parts]),
            torch.cat([p.x2 for p in parts]), parts[0].sqrt_s,
        )
    return torch.cat(parts)


class MultiChannel(nn.Module):
    """A multi-channel sampler of ``f`` with one map per channel (see the module docstring).

    Args:
        f: target density, ``f(x) -> (n,)`` for points x of the maps (n of them), in
            units per unit of the maps' measure; must vanish outside their ranges.
        maps: the channel maps (``dim``, ``forward``, ``inverse`` as in the module
            docstring), e.g. ``process.phase_space(params)``.
        learn_weights: give the channel weights a network (features: the clamped
            cube coordinates of every channel, Σ d_i of them).
        hidden: hidden widths of that network.
        bins: VEGAS bins per dimension of every channel's grid.
        device: device of the grids and the network (and of sampled points).

    Attributes:
        weights: the :class:`~forward.nis.channel_weights.ChannelWeights`.
        samplers: per channel the cube proposal (``sample(n, generator) -> (r, log_q)``).
        shares: allocation of calls over the channels, shape (K,), float64, sums to 1.
        history: per training round ``{"round", "value", "error", "shares", "active",
            "n_eval"}``.
        n_eval: target calls spent in training.
        seconds: wall time of the training in :func:`fit_multichannel`.
    """

    def __init__(
        self,
        f: Callable,
        maps: Sequence,
        *,
        learn_weights: bool = True,
        hidden: tuple[int, ...] = (32, 32),
        bins: int | Sequence[int] = 64,
        device=None,
    ) -> None:
        super().__init__()
        if not callable(f):
            raise TypeError(f"f: expected a callable target density, got {type(f).__name__}")
        maps = list(maps)
        if not maps:
            raise ValueError("maps: expected at least one channel map, got none")
        for k, m in enumerate(maps):
            if not all(hasattr(m, a) for a in ("dim", "forward", "inverse")):
                raise TypeError(
                    f"maps[{k}]: expected a map with dim, forward and inverse, "
                    f"got {type(m).__name__}"
                )
        self.f = f
        self.maps = maps
        self.dims = [int(m.dim) for m in maps]
        k = len(maps)
        bins = [bins] * k if isinstance(bins, int) else list(bins)
        if len(bins) != k:
            raise ValueError(f"bins: expected one number per channel ({k}), got {len(bins)}")
        self.device = resolve_device(device)
        self.weights = ChannelWeights(
            k, sum(self.dims) if learn_weights and k > 1 else 0, hidden, device=self.device
        )
        self.samplers = nn.ModuleList(
            VegasMap(d, bins=b, device=self.device) for d, b in zip(self.dims, bins, strict=True)
        )
        self.register_buffer("shares", torch.full((k,), 1.0 / k, dtype=torch.float64,
                                                   device=self.device))
        self.history: list[dict] = []
        self.n_eval = 0
        self.seconds = 0.0

    @property
    def channels(self) -> int:
        """Number of channels K (dropped ones included)."""
        return len(self.maps)

    @property
    def active(self) -> torch.Tensor:
        """Active channels, bool shape (K,)."""
        return self.weights.active

    # ------------------------------------------------------------- evaluation
    def _target(self, x, n: int) -> torch.Tensor:
        with torch.no_grad():
            y = self.f(x)
        if not isinstance(y, torch.Tensor) or y.shape != (n,):
            got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            raise ValueError(f"f: expected f(x) to return shape ({n},), got {got}")
        return check_finite("f(x)", y.to(torch.float64))

    def _densities(self, x, own: int, r: torch.Tensor, log_jac: torch.Tensor):
        """Log map densities (n, K) at x (-inf out of range / inactive) and features."""
        n = r.shape[0]
        cols, feats = [], []
        want_phi = self.weights.net is not None
        for j, m in enumerate(self.maps):
            if j == own:
                cols.append(-log_jac.to(torch.float64))
                feats.append(r)
                continue
            if not bool(self.active[j]):
                cols.append(torch.full((n,), -math.inf, dtype=torch.float64, device=r.device))
                feats.append(torch.zeros(n, self.dims[j], dtype=r.dtype, device=r.device))
                continue
            with torch.no_grad():
                rj, lj = m.inverse(x)
            rj, lj = rj.to(r.dtype), lj.to(torch.float64)
            inside = ((rj >= 0) & (rj <= 1)).all(dim=-1) & rj.isfinite().all(dim=-1)
            inside &= lj.isfinite()
            cols.append(torch.where(inside, lj, -math.inf))
            feats.append(torch.nan_to_num(rj, nan=0.0).clamp(0.0, 1.0))
        phi = torch.cat(feats, dim=-1) if want_phi else None
        return torch.stack(cols, dim=-1), phi

    def _channel_batch(self, i: int, n: int, generator) -> dict:
        """Draw n points of channel i and evaluate everything about them."""
        r, log_q = self.samplers[i].sample(n, generator=generator)
        r = r.to(torch.float64)
        x, lj = self.maps[i].forward(r)
        fx = self._target(x, n)
        log_g0, phi = self._densities(x, i, r, lj)
        with torch.no_grad():
            log_a = self.weights.log_alpha(log_g0, phi)[:, i]
        log_rest = lj.to(torch.float64) - log_q.to(torch.float64)
        w = fx * torch.exp(log_a + log_rest)
        return {"x": x, "r": r, "f": fx, "log_g0": log_g0, "phi": phi, "log_rest": log_rest,
                "w": w, "log_q": log_q.to(torch.float64), "log_jac": lj.to(torch.float64)}

    def cube_integrand(self, i: int) -> Callable[[torch.Tensor], torch.Tensor]:
        """Channel i's integrand on its cube, ``r -> α_i f |dx/dr|``, shape (n, d_i) -> (n,).

        Its integral over the cube is channel i's share of the integral; the channel
        weights are those of the moment of the call.
        """

        def fi(r: torch.Tensor) -> torch.Tensor:
            r = r.to(torch.float64)
            x, lj = self.maps[i].forward(r)
            fx = self._target(x, r.shape[0])
            log_g0, phi = self._densities(x, i, r, lj)
            with torch.no_grad():
                log_a = self.weights.log_alpha(log_g0, phi)[:, i]
            return fx * torch.exp(log_a + lj.to(torch.float64))

        return fi

    def alphas(self, x) -> torch.Tensor:
        """Channel weights α at points x (n of them): shape (n, K), float64, rows sum to 1.

        Raises:
            ValueError: a point that no active channel map reaches.
        """
        cols, feats = [], []
        for j, m in enumerate(self.maps):
            rj, lj = m.inverse(x)
            rj = rj.to(torch.float64)
            inside = ((rj >= 0) & (rj <= 1)).all(dim=-1) & lj.isfinite() & bool(self.active[j])
            cols.append(torch.where(inside, lj.to(torch.float64), -math.inf))
            feats.append(torch.nan_to_num(rj, nan=0.0).clamp(0.0, 1.0))
        log_g0 = torch.stack(cols, dim=-1)
        if bool((log_g0 == -math.inf).all(dim=-1).any()):
            raise ValueError("x: some points lie outside every active channel map's range")
        phi = torch.cat(feats, dim=-1) if self.weights.net is not None else None
        with torch.no_grad():
            return self.weights.log_alpha(log_g0, phi).exp()

    def _allocate(self, n: int) -> list[int]:
        """Split n calls over the active channels by ``shares`` (each active >= 2)."""
        act = self.active.tolist()
        k_act = sum(act)
        if n < 2 * k_act:
            raise ValueError(f"n: expected at least {2 * k_act} (2 per active channel), got {n}")
        p = torch.where(self.active, self.shares, 0.0)
        p = p / p.sum()
        raw = (p * (n - 2 * k_act)).tolist()
        counts = [int(math.floor(v)) + (2 if a else 0) for v, a in zip(raw, act, strict=True)]
        frac = sorted(range(len(raw)), key=lambda j: raw[j] - math.floor(raw[j]), reverse=True)
        left = n - sum(counts)
        for j in frac:
            if left == 0:
                break
            if act[j]:
                counts[j] += 1
                left -= 1
        return counts

    # ---------------------------------------------------------------- training
    def _set_shares(self, sds: dict[int, float], min_share: float) -> None:
        act = [j for j in range(self.channels) if bool(self.active[j])]
        s = torch.zeros(self.channels, dtype=torch.float64, device=self.shares.device)
        tot = sum(sds.get(j, 0.0) for j in act)
        floor = min_share / len(act)
        for j in act:
            s[j] = sds.get(j, 0.0) / tot if tot > 0 else 1.0 / len(act)
        s[act] = s[act].clamp(min=floor)
        self.shares.copy_(s / s.sum())

    def _train_weights(self, batches: dict[int, dict], cfg: MultiChannelConfig, opt, gen):
        """Variance-loss steps of the channel-weight network on one round's samples.

        The loss ``Σ_i (1/p_i) (1/n_i) Σ_{x∈i} (w_i/I)²`` is estimated on a uniform
        subset of ``weight_batch`` of the round's N points, scaled by N/m.
        """
        total = sum(float(b["w"].mean()) for b in batches.values())
        if not total > 0:
            return
        chans = list(batches)
        f = torch.cat([batches[i]["f"] for i in chans]) / total
        log_g0 = torch.cat([batches[i]["log_g0"] for i in chans])
        phi = torch.cat([batches[i]["phi"] for i in chans])
        log_rest = torch.cat([batches[i]["log_rest"] for i in chans])
        own = torch.cat([torch.full_like(batches[i]["f"], i, dtype=torch.int64) for i in chans])
        inv = torch.cat([torch.full_like(batches[i]["f"], 1.0 / (
            float(self.shares[i]) * batches[i]["f"].shape[0])) for i in chans])
        big = f.shape[0]
        m = min(big, cfg.weight_batch)
        for _ in range(cfg.weight_steps):
            idx = torch.randint(big, (m,), generator=gen, device=f.device)
            log_a = self.weights.log_alpha(log_g0[idx], phi[idx])
            log_a = log_a.gather(1, own[idx].unsqueeze(-1)).squeeze(-1)
            w = f[idx] * torch.exp(log_a + log_rest[idx])
            loss = (w * w * inv[idx]).sum() * (big / m)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    def _maybe_drop(self, batches: dict[int, dict], values: dict[int, float], thr: float):
        tot = sum(abs(v) for v in values.values())
        if thr <= 0 or not tot > 0:
            return
        for i in sorted(values, key=lambda j: abs(values[j])):
            if abs(values[i]) / tot >= thr or int(self.active.sum()) == 1:
                continue
            b = batches[i]
            others = self.active.clone()
            others[i] = False
            covered = (b["log_g0"][:, others] > -math.inf).any(dim=-1) | (b["f"] == 0)
            if bool(covered.all()):
                self.weights.drop(i)
                self.shares[i] = 0.0
                self.shares.div_(self.shares.sum())

    def train_channels(
        self,
        config: MultiChannelConfig | None = None,
        *,
        generator: torch.Generator | None = None,
        progress: bool = False,
    ) -> list[dict]:
        """Adapt grids, allocation and channel weights (see the module docstring).

        Args:
            config: a :class:`MultiChannelConfig` (defaults if None).
            generator: random generator on the sampler's device; None: seeded with 0.
            progress: show a progress bar over rounds.

        Returns:
            The history entries of the rounds.
        """
        cfg = config or MultiChannelConfig()
        if not isinstance(cfg, MultiChannelConfig):
            raise TypeError(f"config: expected a MultiChannelConfig, got {type(cfg).__name__}")
        gen = generator or torch.Generator(device=self.device).manual_seed(0)
        per_round = cfg.vegas_calls // cfg.rounds
        opt = None
        if cfg.learn_weights and self.weights.net is not None:
            opt = torch.optim.Adam(self.weights.net.parameters(), lr=cfg.lr)
        out = []
        rounds = progress_bar(range(cfg.rounds), progress=progress, desc="multi-channel",
                              unit="round")
        for rnd in rounds:
            counts = self._allocate(per_round)
            batches, values, sds, var = {}, {}, {}, 0.0
            for i, n_i in enumerate(counts):
                if n_i == 0:
                    continue
                b = self._channel_batch(i, n_i, gen)
                self.n_eval += n_i
                sampler = self.samplers[i]
                if isinstance(sampler, VegasMap) and rnd < cfg.rounds - 1:
                    sampler.add_training_data(b["r"], b["w"])
                    sampler.refine(cfg.vegas_alpha)
                batches[i] = b
                values[i] = float(b["w"].mean())
                sds[i] = float(b["w"].square().mean().sqrt())
                var += float(b["w"].var()) / n_i
            self._set_shares(sds, cfg.min_share)
            if opt is not None and cfg.warmup_rounds <= rnd + 1 < cfg.rounds - cfg.settle_rounds:
                self._train_weights(batches, cfg, opt, gen)
            if rnd + 1 >= cfg.warmup_rounds:
                self._maybe_drop(batches, values, cfg.drop_threshold)
            entry = {"round": rnd, "value": sum(values.values()), "error": math.sqrt(var),
                     "shares": self.shares.tolist(), "active": self.active.tolist(),
                     "n_eval": self.n_eval}
            self.history.append(entry)
            out.append(entry)
        if cfg.flow_fraction > 0:
            self._train_flows(cfg, gen, progress)
        return out

    def _train_flows(self, cfg: MultiChannelConfig, gen, progress: bool) -> None:
        """Replace every active channel's grid by a flow proposal from :func:`fit`
        (started from that grid with ``flow_on_grid``)."""
        budget = cfg.calls - cfg.vegas_calls
        act = [j for j in range(self.channels) if bool(self.active[j])]
        p = self.shares[act] / self.shares[act].sum()
        for j, share in zip(act, p.tolist(), strict=True):
            grid = self.samplers[j]
            grid = grid if cfg.flow_on_grid and isinstance(grid, VegasMap) else None
            fc = cfg.flow_config
            if grid is not None:  # the channel's grid replaces the warm start
                fc = NISConfig(**{**fc.__dict__, "vegas_fraction": 0.0})
            calls = max(int(budget * share), fc.vegas_calls + 2 * fc.batch_size)
            sub = NISConfig(**{**fc.__dict__, "calls": calls})
            nf = fit(self.cube_integrand(j), self.dims[j], sub, generator=gen,
                     device=self.device, progress=progress, vegas=grid)
            self.samplers[j] = nf.proposal
            self.n_eval += nf.n_eval

    # --------------------------------------------------------------- estimates
    def _draw(self, n: int, generator, keep_points: bool):
        counts = self._allocate(n)
        vals, variances, ws, chans, pts = [], [], [], [], []
        for i, n_i in enumerate(counts):
            if n_i == 0:
                continue
            b = self._channel_batch(i, n_i, generator)
            w = b["w"]
            vals.append(float(w.mean()))
            variances.append(float(w.var()) / n_i)
            ws.append(w * (n / n_i))
            chans.append(torch.full((n_i,), i, dtype=torch.int64, device=w.device))
            if keep_points:
                pts.append(b["x"])
        return sum(vals), math.sqrt(sum(variances)), torch.cat(ws), torch.cat(chans), pts

    def _result(self, values, errors, w: torch.Tensor, n_eval: int, overweight, check):
        value, error, chi2 = combine_estimates(values, errors)
        a = w.abs()
        mean_abs = float(a.mean())
        s2 = float((a * a).sum())
        return IntegrationResult(
            value=value, error=error, n_eval=n_eval,
            rel_std=float(w.std()) / mean_abs if mean_abs > 0 else math.nan,
            chi2_dof=chi2, n_iter=len(values),
            ess_fraction=mean_abs * mean_abs * a.numel() / s2 if s2 > 0 else math.nan,
            unweighting_efficiency=(unweighting_efficiency(w, overweight)
                                    if overweight is not None and mean_abs > 0 else None),
            overweight=1e-3 if overweight is None else float(overweight),
            diagnostics=check_weights(w) if check else None,
        )

    def integrate(
        self,
        n: int,
        *,
        n_iter: int = 1,
        generator: torch.Generator | None = None,
        overweight: float | None = 1e-3,
        check: bool = True,
    ) -> IntegrationResult:
        """Estimate ∫ f dμ with stratified sampling over the channels.

        Args:
            n: target calls per iteration (split by ``shares``, >= 2 per active channel).
            n_iter: iterations, combined with inverse-variance weights (χ²/dof reported).
            generator: random generator on the sampler's device; None: torch's global one.
            overweight: overweight fraction for the unweighting efficiency; None skips it.
            check: warn (:class:`forward.nis.NISWarning`) on heavy weight tails.

        Returns:
            An :class:`~forward.nis.IntegrationResult` (units of f times the measure; for
            hard events in pb); ``rel_std`` and the efficiency refer to the pooled W.
        """
        check_count("n", n, 2)
        check_count("n_iter", n_iter)
        values, errors, ws = [], [], []
        for _ in range(n_iter):
            v, e, w, _, _ = self._draw(n, generator, False)
            values.append(v)
            errors.append(e)
            ws.append(w)
        return self._result(values, errors, torch.cat(ws), n * n_iter, overweight, check)

    def sample(
        self, n: int, *, generator: torch.Generator | None = None, overweight: float = 1e-3
    ) -> WeightedSample:
        """Weighted points of all channels, pooled.

        Args:
            n: target calls (points), split over the channels by ``shares``.
            generator: random generator; None uses torch's global one.
            overweight: for the unweighting efficiency in the result.

        Returns:
            A :class:`WeightedSample` whose weights average to the integral estimate.
        """
        check_count("n", n, 2)
        v, e, w, ch, pts = self._draw(n, generator, True)
        res = self._result([v], [e], w, n, overweight, True)
        return WeightedSample(concat_points(pts), w, ch, res)

    def unweight(
        self,
        n: int,
        overweight: float = 1e-3,
        *,
        generator: torch.Generator | None = None,
    ) -> UnweightedSample:
        """Unit-weight points from n weighted ones (accept-reject, :func:`forward.nis.unweight`).

        Args:
            n: weighted points to draw (the number kept is about n × efficiency).
            overweight: allowed fraction of the total weight above the maximum weight.
            generator: random generator; None uses torch's global one.

        Returns:
            An :class:`UnweightedSample`, its points in random order (any leading subset
            is an unbiased subsample).
        """
        ws = self.sample(n, generator=generator, overweight=overweight)
        u = unweight(ws.weights, overweight, generator=generator)
        perm = torch.randperm(u.indices.numel(), generator=generator,
                              device=u.indices.device)
        idx = u.indices[perm]
        return UnweightedSample(ws.points[idx], u.event_weights[perm], ws.channel[idx], u,
                                ws.result)


def fit_multichannel(
    f: Callable,
    maps: Sequence,
    config: MultiChannelConfig | None = None,
    *,
    generator: torch.Generator | None = None,
    device=None,
    progress: bool = False,
) -> MultiChannel:
    """Build and train a :class:`MultiChannel` sampler of ``f``.

    Args:
        f: target density, ``f(x) -> (n,)`` for n points x of the maps.
        maps: channel maps (``dim``, ``forward``, ``inverse``).
        config: a :class:`MultiChannelConfig` (defaults if None).
        generator: random generator on ``device``; None creates one seeded with 0.
        device: device of the sampler.
        progress: show progress bars.

    Returns:
        The trained :class:`MultiChannel`; ``seconds`` holds the training wall time.
    """
    cfg = config or MultiChannelConfig()
    if not isinstance(cfg, MultiChannelConfig):
        raise TypeError(f"config: expected a MultiChannelConfig or None, got {type(cfg).__name__}")
    maps = list(maps)
    per_channel = max(2, cfg.vegas_calls // cfg.rounds // max(1, len(maps)))
    bins = cfg.vegas_bins or [vegas_bins(int(m.dim), per_channel) for m in maps]
    t0 = time.perf_counter()
    # no generator: a fixed seed 0 (reproducible fits by default)
    gen = make_generator(0 if generator is None else None, generator, resolve_device(device))
    with seeded_init(gen, device):  # the channel-weight network's initial weights
        mc = MultiChannel(f, maps, learn_weights=cfg.learn_weights, hidden=cfg.hidden,
                          bins=bins, device=device)
    mc.train_channels(cfg, generator=gen, progress=progress)
    mc.seconds = time.perf_counter() - t0
    return mc


def hadronic_channels(integrand) -> tuple[Callable, list]:
    """Target and channel maps of a :class:`forward.integrand.HadronicIntegrand`.

    Args:
        integrand: the hadronic integrand (its process, parameters and PDF).

    Returns:
        ``(f, maps)``: ``f(events)`` = dσ/dμ in pb per unit of dx1 dx2 dΦ_n, shape (n,),
        and ``process.phase_space(params)``, one map per resonance plus the continuum.
    """
    if not hasattr(integrand, "differential") or not hasattr(integrand, "process"):
        raise TypeError(
            f"integrand: expected a HadronicIntegrand, got {type(integrand).__name__}"
        )
    return integrand.differential, list(integrand.process.phase_space(integrand.params))
