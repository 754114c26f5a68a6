r"""θ-conditional neural importance sampling: one proposal for a whole parameter range.

A :class:`ConditionalNIS` holds one :class:`~forward.nis.CubeFlow` whose coupling
networks also see the process parameters θ (scaled to :math:`[-1, 1]` within their
ranges), mixed with a θ-independent defensive density (a VEGAS grid adapted to the
θ-averaged, per-θ normalised integrand, or the uniform density):

.. math:: q(r \mid \theta) = (1 - \lambda)\, q_\text{flow}(r \mid \theta)
          + \lambda\, q_\text{VEGAS}(r), \qquad r \in [0, 1]^d .

Training (:meth:`ConditionalNIS.fit`) follows :func:`forward.nis.fit` (VEGAS warm
start, forward KL with an annealed defensive weight, a final variance stage), with
one change: every batch holds ``theta_per_batch`` parameter points (a Latin
hypercube, denser towards the ends of the ranges) with ``batch_size /
theta_per_batch`` points each, and every θ block is normalised by its own integral
estimate (:func:`forward.nis.nis_loss` with ``groups``), so a θ with a small cross
section is learnt as well as one with a large one. Whatever the distribution of the
training θ, the optimum is :math:`q(r|\theta) \propto |f(r; \theta)|` for
every θ. Every integrand call is kept in a buffer of θ blocks and reused.

After training, σ(θ) and events for any θ in the ranges come from the one model:
:meth:`~ConditionalNIS.integrate` (one θ, an
:class:`~forward.nis.IntegrationResult` with the lost-region diagnostics),
:meth:`~ConditionalNIS.cross_section` (a batch of θ, a :class:`CrossSectionScan`),
:meth:`~ConditionalNIS.sample` and :meth:`~ConditionalNIS.log_prob`.

The integrand is ``f(r, params)`` with ``r`` of shape (n, d) and ``params`` a mapping
of parameter names to tensors of shape (n,) (e.g. :class:`forward.integrand.HadronicIntegrand`;
parameters not conditioned on keep the integrand's defaults).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from forward._validation import as_tensor, check_finite, check_range, make_generator
from forward.files import atomic_target
from forward.nis._evaluate import check_count, check_points, evaluate
from forward.nis.flows import CubeFlow
from forward.nis.mixture import ComponentSample
from forward.nis.pipeline import NISConfig, vegas_bins
from forward.nis.results import IntegrationResult, integrate
from forward.nis.training import nis_loss
from forward.nis.vegas import VegasMap
from forward.progress import progress_bar
from forward.seeding import seeded_init

__all__ = [
    "ConditionalIntegrand",
    "ConditionalNIS",
    "ConditionalProposal",
    "CrossSectionScan",
    "ParameterBox",
]

#: ``f(r, params)``: r of shape (n, d), params name -> tensor of shape (n,); returns (n,)
ConditionalIntegrand = Callable[[torch.Tensor, Mapping[str, torch.Tensor]], torch.Tensor]


class ParameterBox:
    """Named parameter ranges and the map between parameter values and the unit box.

    Args:
        ranges: parameter name -> ``(low, high)`` with finite ``low < high``, in the
            parameters' units (e.g. ``{"mzp": (1000.0, 3000.0)}`` in GeV).

    Attributes:
        names: parameter names in the order of the columns of θ tensors.
        low, high: float64 tensors of shape (k,).
    """

    def __init__(self, ranges: Mapping[str, tuple[float, float]]) -> None:
        if not isinstance(ranges, Mapping) or not ranges:
            raise TypeError(
                f"param_ranges: expected a non-empty mapping name -> (low, high), "
                f"got {ranges!r}"
            )
        lows, highs = [], []
        for name, rng in ranges.items():
            if not isinstance(name, str):
                raise TypeError(f"param_ranges: expected string names, got {name!r}")
            try:
                lo, hi = (float(v) for v in rng)
            except (TypeError, ValueError) as err:
                raise TypeError(
                    f"param_ranges[{name!r}]: expected (low, high) numbers, got {rng!r}"
                ) from err
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise ValueError(
                    f"param_ranges[{name!r}]: expected finite low < high, got ({lo}, {hi})"
                )
            lows.append(lo)
            highs.append(hi)
        self.names = tuple(ranges)
        self.low = torch.tensor(lows, dtype=torch.float64)
        self.high = torch.tensor(highs, dtype=torch.float64)

    @property
    def dims(self) -> int:
        """Number of parameters k."""
        return len(self.names)

    def ranges(self) -> dict[str, tuple[float, float]]:
        """The ranges as given: name -> (low, high)."""
        return {
            n: (float(lo), float(hi))
            for n, lo, hi in zip(self.names, self.low, self.high, strict=True)
        }

    def values(self, theta, device=None) -> torch.Tensor:
        """Parameter points as a float64 tensor of shape (b, k), checked against the ranges.

        Args:
            theta: a mapping name -> number or tensor of shape () or (b,) (every name of
                the box, no other), or a tensor of shape (k,) or (b, k) with columns in
                the order of :attr:`names`.
            device: device of the result.

        Raises:
            TypeError, ValueError: wrong names, shapes, non-finite values or values
                outside the ranges.
        """
        if isinstance(theta, Mapping):
            missing = [n for n in self.names if n not in theta]
            extra = sorted(set(theta) - set(self.names))
            if missing or extra:
                raise ValueError(
                    f"theta: expected exactly the parameters {list(self.names)}, "
                    f"missing {missing}, unknown {extra}"
                )
            cols = [
                as_tensor(f"theta[{n!r}]", theta[n], dtype=torch.float64, device=device)
                for n in self.names
            ]
            for n, c in zip(self.names, cols, strict=True):
                if c.ndim > 1:
                    raise ValueError(
                        f"theta[{n!r}]: expected shape () or (b,), got {tuple(c.shape)}"
                    )
            try:
                cols = torch.broadcast_tensors(*[c.reshape(-1) for c in cols])
            except RuntimeError as err:
                shapes = [tuple(c.shape) for c in cols]
                raise ValueError(f"theta: values of unequal lengths {shapes}") from err
            t = torch.stack(cols, dim=-1)
        else:
            t = as_tensor("theta", theta, dtype=torch.float64, device=device)
            if t.ndim == 1:
                t = t.unsqueeze(0)
            if t.ndim != 2 or t.shape[1] != self.dims:
                raise ValueError(
                    f"theta: expected shape ({self.dims},) or (b, {self.dims}) with columns "
                    f"{list(self.names)}, got {tuple(t.shape)}"
                )
        if t.shape[0] == 0:
            raise ValueError("theta: expected at least one parameter point, got none")
        check_finite("theta", t)
        for j, n in enumerate(self.names):
            check_range(f"theta[{n!r}]", t[:, j], float(self.low[j]), float(self.high[j]))
        return t

    def to_unit(self, values: torch.Tensor) -> torch.Tensor:
        """Map values (b, k) in the ranges to the unit box [0, 1]^k."""
        lo, hi = self.low.to(values.device), self.high.to(values.device)
        return (values - lo) / (hi - lo)

    def from_unit(self, u: torch.Tensor) -> torch.Tensor:
        """Map points (b, k) of the unit box to parameter values."""
        lo, hi = self.low.to(u.device), self.high.to(u.device)
        return lo + u.to(torch.float64) * (hi - lo)

    def as_params(self, values: torch.Tensor) -> dict[str, torch.Tensor]:
        """Values (b, k) as the integrand's mapping name -> tensor of shape (b,)."""
        return {n: values[:, j] for j, n in enumerate(self.names)}


class ConditionalProposal(nn.Module):
    """Defensive mixture of a θ-conditional cube flow and a θ-independent density.

    Args:
        flow: a :class:`CubeFlow` with ``context`` equal to the number of parameters k.
        lam: defensive weight λ in (0, 1].
        vegas: θ-independent defensive grid, or None for the uniform density.
        dtype: dtype of the returned points (float64 advised).

    All ``theta_unit`` arguments are parameter points in the unit box, shape (1 or n, k).
    """

    def __init__(
        self, flow: CubeFlow, lam: float = 0.02, vegas: VegasMap | None = None,
        *, dtype=torch.float64,
    ) -> None:
        super().__init__()
        if not isinstance(flow, CubeFlow) or flow.context < 1:
            raise TypeError(f"flow: expected a CubeFlow with context >= 1, got {flow!r}")
        if vegas is not None and (not isinstance(vegas, VegasMap) or vegas.dims != flow.dims):
            raise ValueError(f"vegas: expected a VegasMap with dims={flow.dims} or None")
        self.flow = flow
        self.vegas = vegas
        self.dims = flow.dims
        self.out_dtype = dtype
        self.lam = lam

    @property
    def lam(self) -> float:
        """Defensive weight λ."""
        return self._lam

    @lam.setter
    def lam(self, value: float) -> None:
        check_range("lam", float(value), 0.0, 1.0, low_open=True)
        self._lam = float(value)

    def _ctx(self, theta_unit: torch.Tensor) -> torch.Tensor:
        return (2.0 * theta_unit - 1.0).to(self.flow.dtype)

    def _log_q_def(self, x: torch.Tensor) -> torch.Tensor:
        if self.vegas is None:
            return torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
        return self.vegas.log_prob(x).to(torch.float64)

    def _mix(self, log_q_flow: torch.Tensor, log_q_def: torch.Tensor) -> torch.Tensor:
        if self._lam == 1.0:
            return log_q_def
        return torch.logaddexp(
            log_q_flow + math.log1p(-self._lam), log_q_def + math.log(self._lam)
        )

    def log_prob_flow(self, x: torch.Tensor, theta_unit: torch.Tensor) -> torch.Tensor:
        """``log q_flow(x | θ)``, float64 shape (n,), differentiable in the flow's parameters.

        Args:
            x: points of [0, 1]^d, shape (n, d).
            theta_unit: parameter points in the unit box, shape (1 or n, k).
        """
        check_points("x", x, self.dims)
        return self.flow.log_prob(x, self._ctx(theta_unit)).to(torch.float64)

    def log_prob(self, x: torch.Tensor, theta_unit: torch.Tensor) -> torch.Tensor:
        """Exact mixture log-density ``log q(x | θ)``, float64 shape (n,).

        Args:
            x: points of [0, 1]^d, shape (n, d).
            theta_unit: parameter points in the unit box, shape (1 or n, k).
        """
        return self._mix(self.log_prob_flow(x, theta_unit), self._log_q_def(x))

    @torch.no_grad()
    def sample_components(
        self, theta_unit: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> ComponentSample:
        """One point per parameter point, with each component's density.

        Args:
            theta_unit: parameter points in the unit box, shape (n, k).
            generator: random generator on the flow's device; None uses torch's global one.

        Returns:
            A :class:`forward.nis.ComponentSample` ``(x, log_q, log_q_flow,
            log_q_defensive, defensive)``, ``x`` of shape (n, d), the rest (n,).
        """
        n = theta_unit.shape[0]
        dev, dt = self.flow.device, self.flow.dtype
        z = torch.rand(n, self.dims, generator=generator, dtype=dt, device=dev)
        defensive = torch.rand(n, generator=generator, dtype=torch.float64, device=dev) < self._lam
        ctx = self._ctx(theta_unit)
        x = torch.empty(n, self.dims, dtype=self.out_dtype, device=dev)
        log_qf = torch.empty(n, dtype=torch.float64, device=dev)
        fl = ~defensive
        if bool(fl.any()):
            x_f, lq_f = self.flow.transform(z[fl], ctx[fl])
            x[fl] = x_f.to(self.out_dtype)
            log_qf[fl] = lq_f.to(torch.float64)
        if bool(defensive.any()):
            zd = z[defensive].to(torch.float64)
            x[defensive] = (zd if self.vegas is None else self.vegas(zd)[0]).to(self.out_dtype)
            log_qf[defensive] = self.flow.log_prob(x[defensive], ctx[defensive]).to(
                torch.float64
            )
        log_qd = self._log_q_def(x)
        return ComponentSample(x, self._mix(log_qf, log_qd), log_qf, log_qd, defensive)

    def get_extra_state(self) -> dict:
        return {"lam": self._lam}

    def set_extra_state(self, state: dict) -> None:
        self.lam = state["lam"]


class _AtTheta:
    """A :class:`ConditionalProposal` at one fixed θ: an ordinary proposal for
    :func:`forward.nis.integrate` (with ``sample_components`` for its diagnostics)."""

    def __init__(self, proposal: ConditionalProposal, theta_unit: torch.Tensor) -> None:
        self.proposal = proposal
        self.theta_unit = theta_unit  # (1, k)
        self.dims = proposal.dims

    def sample_components(self, n: int, *, generator=None) -> ComponentSample:
        return self.proposal.sample_components(
            self.theta_unit.expand(n, -1), generator=generator
        )

    def sample(self, n: int, *, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.sample_components(n, generator=generator)
        return s.x, s.log_q

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return self.proposal.log_prob(x, self.theta_unit)


@dataclass(frozen=True)
class CrossSectionScan:
    """Integrals at a batch of parameter points (:meth:`ConditionalNIS.cross_section`).

    Attributes:
        params: parameter name -> values, each float64 shape (b,).
        value: estimates, shape (b,) (pb for a hadronic integrand).
        error: their standard errors, shape (b,).
        rel_std: relative weight standard deviations ``std(w)/<|w|>``, shape (b,).
        ess_fraction: effective sample size per point ``(Σ|w|)²/(n Σw²)``, shape (b,).
        n_eval: integrand calls per parameter point.
    """

    params: dict[str, torch.Tensor]
    value: torch.Tensor
    error: torch.Tensor
    rel_std: torch.Tensor
    ess_fraction: torch.Tensor
    n_eval: int

    def __len__(self) -> int:
        return self.value.shape[0]

    def result(self, i: int) -> IntegrationResult:
        """The ``i``-th point's estimate as an :class:`IntegrationResult`."""
        return IntegrationResult(
            value=float(self.value[i]),
            error=float(self.error[i]),
            n_eval=self.n_eval,
            rel_std=float(self.rel_std[i]),
            ess_fraction=float(self.ess_fraction[i]),
        )


def _training_thetas(g: int, k: int, generator, device) -> torch.Tensor:
    """``g`` training points of the unit box, shape (g, k): a Latin hypercube (one point
    per stratum in every coordinate) mapped by ``(1 - cos(π u)) / 2``, which puts more
    points near the ends of every range, where a conditional network otherwise learns
    least (it sees θ on one side only); the optimum q(r|θ) does not depend on this."""
    u = torch.rand(g, k, generator=generator, dtype=torch.float64, device=device)
    perm = torch.argsort(torch.rand(g, k, generator=generator, device=device), dim=0)
    return 0.5 - 0.5 * torch.cos(math.pi * (perm.to(torch.float64) + u) / g)


class _BlockBuffer:
    """Ring buffer of evaluated θ blocks: x (B, m, d), θ (B, k), f and log g (B, m)."""

    def __init__(self, blocks: int, m: int, d: int, k: int, device) -> None:
        self.x = torch.empty(blocks, m, d, dtype=torch.float64, device=device)
        self.theta = torch.empty(blocks, k, dtype=torch.float64, device=device)
        self.f = torch.empty(blocks, m, dtype=torch.float64, device=device)
        self.lg = torch.empty(blocks, m, dtype=torch.float64, device=device)
        self.size = self.pos = 0

    def add(self, x, theta, f, lg) -> None:
        cap = self.x.shape[0]
        b = min(x.shape[0], cap)
        idx = (self.pos + torch.arange(b, device=x.device)) % cap
        self.x[idx], self.theta[idx] = x[-b:], theta[-b:]
        self.f[idx], self.lg[idx] = f[-b:], lg[-b:]
        self.pos = (self.pos + b) % cap
        self.size = min(cap, self.size + b)

    def draw(self, g: int, generator) -> tuple[torch.Tensor, ...]:
        idx = torch.randint(self.size, (g,), generator=generator, device=self.x.device)
        return self.x[idx], self.theta[idx], self.f[idx], self.lg[idx]


class ConditionalNIS:
    """A trained θ-conditional proposal and the integrand it was trained for.

    Build it with :meth:`fit` (or :meth:`load`). ``theta`` arguments are a mapping
    name -> number or tensor of shape () or (b,), or a tensor of shape (k,) / (b, k)
    in the order of :attr:`names`; every value must lie in the trained ranges.

    Args:
        proposal: the :class:`ConditionalProposal`.
        box: the :class:`ParameterBox` of the trained ranges.
        integrand: ``f(r, params)``, or None (then pass one to the methods that evaluate).
        history: training history (per online step: step, loss, rel_std, n_eval, lam).
        n_eval: integrand calls spent on training.
        seconds: training wall time.
    """

    def __init__(
        self,
        proposal: ConditionalProposal,
        box: ParameterBox,
        integrand: ConditionalIntegrand | None = None,
        *,
        history: list[dict] | None = None,
        n_eval: int = 0,
        seconds: float = 0.0,
    ) -> None:
        if not isinstance(proposal, ConditionalProposal):
            raise TypeError(
                f"proposal: expected a ConditionalProposal, got {type(proposal).__name__}"
            )
        if proposal.flow.context != box.dims:
            raise ValueError(
                f"box: expected {proposal.flow.context} parameters like the flow's context, "
                f"got {box.dims}"
            )
        self.proposal = proposal
        self.box = box
        self.integrand = integrand
        self.history = list(history or [])
        self.n_eval = int(n_eval)
        self.seconds = float(seconds)

    @property
    def names(self) -> tuple[str, ...]:
        """Conditioned parameter names (the columns of θ tensors)."""
        return self.box.names

    @property
    def dims(self) -> int:
        """Dimension d of the integration cube."""
        return self.proposal.dims

    @property
    def device(self) -> torch.device:
        """Device of the flow."""
        return self.proposal.flow.device

    # --------------------------------------------------------------------- fit
    @classmethod
    def fit(
        cls,
        integrand: ConditionalIntegrand,
        param_ranges: Mapping[str, tuple[float, float]],
        dims: int | None = None,
        config: NISConfig | None = None,
        *,
        theta_per_batch: int = 64,
        generator: torch.Generator | None = None,
        device=None,
        progress: bool = False,
    ) -> ConditionalNIS:
        """Train one proposal for ``integrand`` over the parameter box.

        Args:
            integrand: ``f(r, params)``, r of shape (n, dims) on the unit cube, params a
                mapping name -> tensor of shape (n,); returns shape (n,) (signed allowed).
            param_ranges: name -> (low, high) of the parameters to condition on; for an
                integrand with a ``process`` (a :class:`~forward.integrand.HadronicIntegrand`)
                they must be parameters of the process, inside their allowed ranges.
            dims: cube dimension; default ``integrand.dim``.
            config: an :class:`forward.nis.NISConfig` (calls, VEGAS warm start, flow
                size, losses, λ schedule, learning rate); ``vegas_layer`` must be False.
                ``batch_size`` is the points per step over all θ blocks.
            theta_per_batch: parameter points per batch (a divisor of ``batch_size``).
            generator: random generator on ``device``; None creates one seeded with 0.
            device: device of the flow and grid.
            progress: show a progress bar.

        Returns:
            A trained :class:`ConditionalNIS`.
        """
        if not callable(integrand):
            raise TypeError(f"integrand: expected f(r, params), got {type(integrand).__name__}")
        box = ParameterBox(param_ranges)
        _check_against_process(integrand, box)
        if dims is None:
            dims = getattr(integrand, "dim", None)
            if dims is None:
                raise ValueError("dims: the integrand has no .dim; pass dims=")
        check_count("dims", dims, 2)
        cfg = config or NISConfig()
        if not isinstance(cfg, NISConfig):
            raise TypeError(f"config: expected an NISConfig or None, got {type(cfg).__name__}")
        if cfg.vegas_layer:
            raise ValueError("config.vegas_layer: a θ-conditional flow needs vegas_layer=False")
        check_count("theta_per_batch", theta_per_batch)
        if cfg.batch_size % theta_per_batch or cfg.batch_size // theta_per_batch < 2:
            raise ValueError(
                f"theta_per_batch: expected a divisor of config.batch_size={cfg.batch_size} "
                f"leaving >= 2 points per θ, got {theta_per_batch}"
            )
        # no generator: a fixed seed 0 (reproducible fits by default), stated here
        gen = make_generator(0 if generator is None else None, generator, device)
        return _Fitter(integrand, box, dims, cfg, theta_per_batch, gen, device, progress).run()

    # ------------------------------------------------------------ evaluation
    def _integrand(self, integrand) -> ConditionalIntegrand:
        f = integrand if integrand is not None else self.integrand
        if f is None:
            raise ValueError("integrand: this model has none attached; pass integrand=")
        return f

    def _one(self, theta) -> torch.Tensor:
        t = self.box.values(theta, device=self.device)
        if t.shape[0] != 1:
            raise ValueError(f"theta: expected one parameter point, got {t.shape[0]}")
        return t

    def sample(
        self, theta, n: int, *, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw points of the cube from ``q(r | θ)``.

        Args:
            theta: one parameter point, or ``n`` points (one per drawn point).
            n: number of points.
            generator: random generator on the model's device; None uses torch's global one.

        Returns:
            ``(r, log_q)``: points, float64 shape (n, d), and their log-density, shape (n,).
        """
        check_count("n", n)
        t = self.box.values(theta, device=self.device)
        if t.shape[0] not in (1, n):
            raise ValueError(f"theta: expected 1 or n={n} parameter points, got {t.shape[0]}")
        s = self.proposal.sample_components(
            self.box.to_unit(t).expand(n, -1), generator=generator
        )
        return s.x, s.log_q

    def log_prob(self, r: torch.Tensor, theta) -> torch.Tensor:
        """``log q(r | θ)``, float64 shape (n,), for points r of shape (n, d).

        Args:
            r: points of the cube, shape (n, d).
            theta: one parameter point, or n points.
        """
        check_points("r", r, self.dims)
        t = self.box.values(theta, device=self.device)
        if t.shape[0] not in (1, r.shape[0]):
            raise ValueError(
                f"theta: expected 1 or n={r.shape[0]} parameter points, got {t.shape[0]}"
            )
        with torch.no_grad():
            return self.proposal.log_prob(r, self.box.to_unit(t))

    def integrate(
        self,
        theta,
        n: int,
        *,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        n_iter: int = 1,
        check: bool = True,
        integrand: ConditionalIntegrand | None = None,
    ) -> IntegrationResult:
        """σ(θ) at one parameter point by importance sampling from ``q(· | θ)``.

        Args:
            theta: one parameter point.
            n: integrand calls per iteration.
            seed: seed of a fresh generator; exclusive with ``generator``; with both
                None, torch's global RNG is used.
            generator: random generator on the model's device.
            n_iter: iterations combined by :func:`forward.nis.combine_estimates`.
            check: run the weight and lost-region diagnostics (may warn
                :class:`forward.nis.NISWarning`).
            integrand: overrides the attached integrand.

        Returns:
            An :class:`forward.nis.IntegrationResult` (value in the integrand's unit, pb).
        """
        f = self._integrand(integrand)
        t = self._one(theta)
        gen = _generator(generator, seed, self.device)
        params = self.box.as_params(t)

        def f_theta(r: torch.Tensor) -> torch.Tensor:
            return f(r, {k: v.expand(r.shape[0]) for k, v in params.items()})

        return integrate(
            f_theta, _AtTheta(self.proposal, self.box.to_unit(t)), n, n_iter=n_iter,
            generator=gen, check=check,
        )

    def cross_section(
        self,
        theta,
        n: int = 20_000,
        *,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        batch_size: int = 100_000,
        integrand: ConditionalIntegrand | None = None,
    ) -> CrossSectionScan:
        """σ(θ) at a batch of parameter points, ``n`` integrand calls each.

        Args:
            theta: b parameter points.
            n: integrand calls per point (>= 2).
            seed, generator: randomness as in :meth:`integrate`.
            batch_size: points evaluated per integrand call (bounds memory).
            integrand: overrides the attached integrand.

        Returns:
            A :class:`CrossSectionScan` with tensors of shape (b,).
        """
        f = self._integrand(integrand)
        check_count("n", n, 2)
        check_count("batch_size", batch_size)
        t = self.box.values(theta, device=self.device)
        gen = _generator(generator, seed, self.device)
        b = t.shape[0]
        tu = self.box.to_unit(t).repeat_interleave(n, dim=0)
        tv = t.repeat_interleave(n, dim=0)
        w = torch.empty(b * n, dtype=torch.float64, device=self.device)
        for s in range(0, b * n, batch_size):
            e = min(b * n, s + batch_size)
            x, log_q = self.proposal.sample_components(tu[s:e], generator=gen)[:2]
            params = self.box.as_params(tv[s:e])
            fx = evaluate(lambda r, p=params: f(r, p), x)
            w[s:e] = fx * torch.exp(-log_q)
        w = w.view(b, n)
        a = w.abs()
        mean_abs = a.mean(dim=1)
        std = w.std(dim=1)
        s2 = (a * a).sum(dim=1)
        ess = torch.where(s2 > 0, a.sum(dim=1).square() / s2.clamp(min=1e-300) / n, math.nan)
        return CrossSectionScan(
            params={k: v.clone() for k, v in self.box.as_params(t).items()},
            value=w.mean(dim=1),
            error=std / math.sqrt(n),
            rel_std=torch.where(mean_abs > 0, std / mean_abs.clamp(min=1e-300), math.nan),
            ess_fraction=ess,
            n_eval=n,
        )

    # ------------------------------------------------------------- save/load
    def state_dict(self) -> dict:
        """Everything needed to rebuild the model (not the integrand)."""
        flow = self.proposal.flow
        return {
            "ranges": self.box.ranges(),
            "flow_config": dict(flow.config),
            "vegas_bins": None if self.proposal.vegas is None else self.proposal.vegas.bins,
            "proposal": self.proposal.state_dict(),
            "history": [dict(h) for h in self.history],
            "n_eval": self.n_eval,
            "seconds": self.seconds,
        }

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Write the model with ``torch.save`` (atomically), with its
        :func:`forward.provenance.provenance` record (JSON text under ``"provenance"``).

        Args:
            path: file to write.
            overwrite: replace an existing file; otherwise an existing file raises.

        Raises:
            FileExistsError: if ``path`` exists and ``overwrite`` is False.
        """
        import json

        from forward.provenance import provenance

        state = self.state_dict()  # the record as JSON text: plain for weights_only loading
        state["provenance"] = json.dumps(provenance(
            process=getattr(self.integrand, "process", None), ranges=state["ranges"]))
        with atomic_target(Path(path), overwrite, ".pt") as tmp:
            torch.save(state, tmp)

    @classmethod
    def load(
        cls, path: str | os.PathLike, integrand: ConditionalIntegrand | None = None,
        *, device=None,
    ) -> ConditionalNIS:
        """Rebuild a model written by :meth:`save`.

        Args:
            path: file written by :meth:`save`.
            integrand: the integrand to attach (the file holds none).
            device: device to load onto (default CPU).
        """
        state = torch.load(os.fspath(path), map_location=device or "cpu", weights_only=True)
        box = ParameterBox(state["ranges"])
        fc = dict(state["flow_config"])
        flow = CubeFlow(
            fc["dims"], layers=fc["layers"], bins=fc["bins"], hidden=tuple(fc["hidden"]),
            context=fc["context"], slope=fc["slope"],
            dtype=getattr(torch, fc["dtype"]), device=device,
        )
        vm = None
        if state["vegas_bins"] is not None:
            vm = VegasMap(fc["dims"], bins=state["vegas_bins"], device=device)
        proposal = ConditionalProposal(flow, 1.0, vm)
        proposal.load_state_dict(state["proposal"])
        return cls(
            proposal, box, integrand, history=state["history"], n_eval=state["n_eval"],
            seconds=state["seconds"],
        )


def _generator(generator, seed, device) -> torch.Generator | None:
    """``generator``, else one seeded with ``seed``; None when both are None.

    Here ``seed=None`` without a generator keeps torch's global RNG (the historical
    meaning for these methods), stated explicitly; every other case is
    :func:`forward._validation.make_generator`.
    """
    if generator is None and seed is None:
        return None  # draw from torch's global RNG
    return make_generator(seed, generator, device)


def _check_against_process(integrand, box: ParameterBox) -> None:
    """Names and ranges must be the process's own when the integrand has a process."""
    pars = getattr(getattr(integrand, "process", None), "parameters", None)
    if not isinstance(pars, Mapping):
        return
    for j, name in enumerate(box.names):
        if name not in pars:
            raise ValueError(
                f"param_ranges: {name!r} is not a parameter of the process; "
                f"known: {sorted(pars)}"
            )
        p = pars[name]
        lo, hi = float(box.low[j]), float(box.high[j])
        if lo < p.low or hi > p.high:
            raise ValueError(
                f"param_ranges[{name!r}]: expected a range inside the allowed "
                f"[{p.low}, {p.high}], got ({lo}, {hi})"
            )


class _Fitter:
    """The training loop of :meth:`ConditionalNIS.fit` (one use)."""

    def __init__(self, f, box, dims, cfg, theta_per_batch, gen, device, progress) -> None:
        self.f, self.box, self.dims, self.cfg = f, box, dims, cfg
        self.g = theta_per_batch
        self.m = cfg.batch_size // theta_per_batch
        self.gen, self.device, self.progress = gen, device, progress
        self.n_eval = 0

    def _eval(self, x: torch.Tensor, theta_unit: torch.Tensor) -> torch.Tensor:
        """f at points x (G, m, d) with one θ (unit box, (G, k)) per block -> (G, m)."""
        g, m, d = x.shape
        tv = self.box.from_unit(theta_unit).repeat_interleave(m, dim=0)
        params = self.box.as_params(tv)
        fx = evaluate(lambda r: self.f(r, params), x.reshape(g * m, d))
        self.n_eval += g * m
        return fx.view(g, m)

    def _vegas(self, buf: _BlockBuffer) -> VegasMap | None:
        cfg, k = self.cfg, self.box.dims
        rounds = cfg.vegas_rounds(self.dims)
        blocks = cfg.vegas_calls // rounds // self.m
        if blocks < 1:
            return None
        vm = VegasMap(
            self.dims, bins=cfg.vegas_bins or vegas_bins(self.dims, blocks * self.m),
            device=self.device,
        )
        for _ in range(rounds):
            tu = _training_thetas(blocks, k, self.gen, self.device)
            x, log_q = vm.sample(blocks * self.m, generator=self.gen)
            x = x.view(blocks, self.m, self.dims)
            log_q = log_q.view(blocks, self.m)
            fx = self._eval(x, tu)
            w = fx * torch.exp(-log_q)
            norm = w.abs().mean(dim=1, keepdim=True)
            # per-θ normalised weights: the grid follows the θ-average of |f| / σ(θ)
            w_n = torch.where(norm > 0, w / norm.clamp(min=1e-300), 0.0)
            vm.add_training_data(x.reshape(-1, self.dims), w_n.reshape(-1))
            vm.refine(cfg.vegas_alpha)
            buf.add(x, tu, fx, log_q)
        return vm

    def run(self) -> ConditionalNIS:
        cfg, k = self.cfg, self.box.dims
        t0 = time.perf_counter()
        buf = _BlockBuffer(max(1, cfg.buffer_capacity // self.m), self.m, self.dims, k,
                           self.device)
        vm = self._vegas(buf)
        with seeded_init(self.gen, self.device):  # initial weights from the generator
            flow = CubeFlow(
                self.dims, layers=cfg.flow_layers(self.dims), bins=cfg.flow_bins,
                hidden=cfg.hidden, context=k, dtype=cfg.flow_dtype, device=self.device,
            )
        prop = ConditionalProposal(flow, cfg.lam_start, vm)
        log_prob = prop.log_prob_flow if cfg.density == "flow" else prop.log_prob
        steps = (cfg.calls - self.n_eval) // cfg.batch_size
        if steps < 1:
            raise ValueError(
                f"config.calls: no calls left for flow training after {self.n_eval} VEGAS calls"
            )
        opt = torch.optim.Adam(flow.parameters(), lr=cfg.lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(
            opt, T_max=steps * (1 + cfg.buffered_steps), eta_min=cfg.lr_final
        )
        n_final = int(cfg.final_fraction * steps)
        n_anneal = cfg.anneal_fraction * steps
        history = []

        def step(x, tu, fx, lg, loss_name) -> float:
            opt.zero_grad(set_to_none=True)
            tu_pts = tu.repeat_interleave(self.m, dim=0)
            lq = log_prob(x.reshape(-1, self.dims), tu_pts)
            loss = nis_loss(loss_name, lq, fx.reshape(-1), lg.reshape(-1), groups=tu.shape[0])
            if not bool(torch.isfinite(loss)):
                raise FloatingPointError(
                    f"training loss is {float(loss.detach())}; lower lr or check the integrand"
                )
            loss.backward()
            torch.nn.utils.clip_grad_norm_(flow.parameters(), 10.0)
            opt.step()
            sched.step()
            return float(loss.detach())

        bar = progress_bar(total=steps, progress=self.progress, desc="train θ-NIS", unit="step")
        for i in range(steps):
            prop.lam = (
                cfg.lam if i >= n_anneal
                else cfg.lam_start * (cfg.lam / cfg.lam_start) ** (i / n_anneal)
            )
            loss_name = cfg.final_loss if i >= steps - n_final else cfg.loss
            tu = _training_thetas(self.g, k, self.gen, flow.device)
            s = prop.sample_components(tu.repeat_interleave(self.m, dim=0), generator=self.gen)
            x = s.x.view(self.g, self.m, self.dims)
            lg = s.log_q.view(self.g, self.m)
            fx = self._eval(x, tu)
            buf.add(x, tu, fx, lg)
            loss = step(x, tu, fx, lg, loss_name)
            for _ in range(cfg.buffered_steps):
                step(*buf.draw(self.g, self.gen), loss_name)
            w = fx * torch.exp(-lg)
            norm = w.abs().mean(dim=1, keepdim=True)
            rel = (w.std(dim=1, keepdim=True) / norm.clamp(min=1e-300))[norm > 0]
            history.append({
                "step": i, "loss": loss, "rel_std": float(rel.median()) if rel.numel() else
                math.nan, "n_eval": self.n_eval, "lam": prop.lam,
            })
            bar.update(1)
        bar.close()
        prop.lam = cfg.lam
        return ConditionalNIS(
            prop, self.box, self.f, history=history, n_eval=self.n_eval,
            seconds=time.perf_counter() - t0,
        )

