r"""Conditional normalising flows on zuko, wrapped with observable preprocessing.

:class:`ConditionalFlow` is an ``nn.Module`` whose ``forward(context)`` returns a
:class:`torch.distributions.TransformedDistribution` over the *physical* variables:
a zuko flow over standardised features (conditioned on preprocessed context
features) pushed through ``preprocessing.inv``. Its ``log_prob`` is therefore a
density with respect to the preprocessing's documented measure (for four-momenta:
:math:`\prod d^3p_i`, see :mod:`invsim.flows.momenta`), and Pyro and sbi can use it as
any torch distribution. The module works in one dtype (``flow.dtype``, float32 by
default); :meth:`ConditionalFlow.log_prob` and :meth:`ConditionalFlow.sample` convert
their inputs, the raw distribution from ``forward`` expects values of that dtype.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import zuko
from torch import nn
from torch.distributions import Independent, Normal, TransformedDistribution

from forward._validation import check_choice, make_generator
from forward.seeding import seeded_init
from invsim.flows.preprocessing import (
    Preprocessing,
    preprocessing_from_dict,
    require_preprocessing,
)

__all__ = ["FLOW_KINDS", "ConditionalFlow", "FlowConfig", "build_flow"]

#: ``"coupling"``: RQ-spline coupling layers (zuko NSF, passes=2);
#: ``"autoregressive"``: fully autoregressive RQ splines (zuko NSF);
#: ``"affine"``: masked affine autoregressive (zuko MAF)
FLOW_KINDS = ("coupling", "autoregressive", "affine")


@dataclass(frozen=True)
class FlowConfig:
    """Architecture of a conditional flow.

    Attributes:
        kind: one of :data:`FLOW_KINDS`.
        transforms: number of flow layers (>= 1).
        hidden_features: widths of each layer's MLP hidden layers.
        bins: spline bins K (spline kinds), >= 2.
        randperm: random feature orders between layers instead of alternating ones.
        conditional_affine: put a context-conditional element-wise affine layer in
            front of the flow's layers (x -> (x - m(c)) e^{-s(c)}, m and s from an MLP of
            the context with ``hidden_features``, initialised to the identity). The
            flow's layers then only learn the shape left after a context-dependent
            location and scale, which makes narrow conditional densities (posteriors,
            resolutions) far easier to learn precisely. Ignored without a context.
    """

    kind: str = "coupling"
    transforms: int = 3
    hidden_features: tuple[int, ...] = (64, 64)
    bins: int = 8
    randperm: bool = False
    conditional_affine: bool = False

    def __post_init__(self) -> None:
        check_choice("kind", self.kind, FLOW_KINDS)
        if not (isinstance(self.transforms, int) and self.transforms >= 1):
            raise ValueError(f"transforms: expected an integer >= 1, got {self.transforms!r}")
        hf = tuple(self.hidden_features)
        if not hf or not all(isinstance(h, int) and h >= 1 for h in hf):
            raise ValueError(
                f"hidden_features: expected a non-empty tuple of positive ints, got {hf!r}"
            )
        object.__setattr__(self, "hidden_features", hf)
        if not isinstance(self.conditional_affine, bool):
            raise TypeError(
                f"conditional_affine: expected a bool, got {type(self.conditional_affine).__name__}"
            )
        if not (isinstance(self.bins, int) and self.bins >= 2):
            raise ValueError(f"bins: expected an integer >= 2, got {self.bins!r}")


def build_flow(features: int, context: int, config: FlowConfig) -> zuko.flows.Flow:
    """A zuko flow over ``features`` dimensions conditioned on ``context`` dimensions.

    With a single feature, coupling falls back to the (then purely
    context-conditional) autoregressive layer.

    Args:
        features: number of modelled features (>= 1).
        context: number of context features (0: unconditional).
        config: the architecture.

    Returns:
        A ``zuko.flows.Flow``; ``flow(c)`` with c of shape (..., context) is a
        distribution over shape (..., features).
    """
    for name, v, low in (("features", features, 1), ("context", context, 0)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{name}: expected an int >= {low}, got {v!r}")
        if v < low:
            raise ValueError(f"{name}: expected an int >= {low}, got {v}")
    if not isinstance(config, FlowConfig):
        raise TypeError(f"config: expected a FlowConfig, got {type(config).__name__}")
    common = dict(
        features=features,
        context=context,
        transforms=config.transforms,
        hidden_features=config.hidden_features,
        randperm=config.randperm,
    )
    if config.kind == "affine":
        flow = zuko.flows.MAF(**common)
    else:
        passes = 2 if config.kind == "coupling" and features > 1 else None
        flow = zuko.flows.NSF(**common, bins=config.bins, passes=passes)
    if config.conditional_affine and context > 0:
        flow = zuko.flows.Flow([_conditional_affine(features, context, config.hidden_features),
                                *flow.transform.transforms], flow.base)
    return flow


def _conditional_affine(features: int, context: int, hidden: tuple[int, ...]):
    """Element-wise affine layer whose shift and log-scale are an MLP of the context.

    A masked autoregressive transform with one pass: no feature depends on another, so
    it is element-wise; the MLP's last layer starts at zero (the identity map).
    """
    layer = zuko.flows.MaskedAutoregressiveTransform(
        features, context, passes=1, hidden_features=hidden
    )
    last = layer.hyper[-1]
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return layer


class ConditionalFlow(nn.Module):
    """q(x | c): a zuko flow over preprocessed x, conditioned on preprocessed c.

    Args:
        x_preprocessing: maps physical x (event shape e.g. (k, 4) or (d,)) to features.
        context_preprocessing: maps physical context to features (only its forward
            map is used, no Jacobian); None for an unconditional flow.
        config: flow architecture.
        seed: seed of the initial weights (the global RNG is left untouched).
        dtype: parameter dtype.
    """

    def __init__(
        self,
        x_preprocessing: Preprocessing,
        context_preprocessing: Preprocessing | None = None,
        config: FlowConfig | None = None,
        *,
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        require_preprocessing("x_preprocessing", x_preprocessing)
        require_preprocessing("context_preprocessing", context_preprocessing, optional=True)
        self.config = config if config is not None else FlowConfig()
        if not isinstance(self.config, FlowConfig):
            raise TypeError(f"config: expected a FlowConfig, got {type(config).__name__}")
        self.x_preprocessing = x_preprocessing
        self.context_preprocessing = context_preprocessing
        n_ctx = 0 if context_preprocessing is None else context_preprocessing.features
        make_generator(seed)  # an int >= 0 (refuses 1.5 instead of truncating it)
        with seeded_init(int(seed)):
            self.flow = build_flow(x_preprocessing.features, n_ctx, self.config).to(dtype)
        self.seed = int(seed)

    # -- shapes and dtype ---------------------------------------------------------------
    @property
    def dtype(self) -> torch.dtype:
        """dtype of the parameters."""
        return next(self.flow.parameters()).dtype

    @property
    def device(self) -> torch.device:
        """device of the parameters."""
        return next(self.flow.parameters()).device

    @property
    def conditional(self) -> bool:
        """Whether the flow takes a context."""
        return self.context_preprocessing is not None

    @property
    def event_shape(self) -> tuple[int, ...]:
        """Shape of one physical x."""
        return self.x_preprocessing.event_shape

    # -- preprocessing ------------------------------------------------------------------
    def _cast(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(dtype=self.dtype, device=self.device)

    def context_features(self, context, name: str = "context") -> torch.Tensor | None:
        """Checked preprocessed context, shape (n, d_c) (None for unconditional flows)."""
        if self.context_preprocessing is None:
            if context is not None:
                raise ValueError(f"{name}: this flow is unconditional, expected None")
            return None
        if context is None:
            raise ValueError(f"{name}: this flow is conditional, a context is required")
        c, _ = self.context_preprocessing.features_of(name, context)
        return self._cast(c)

    def fit_preprocessing(self, x, context=None) -> None:
        """Fit the unfitted standardisations on training data (x: (n, *event_shape))."""
        if not self.x_preprocessing.fitted:
            self.x_preprocessing.fit(x)
        if self.context_preprocessing is not None and not self.context_preprocessing.fitted:
            self.context_preprocessing.fit(context)

    def feature_log_prob(self, y: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        """log q(y | c) over features (no preprocessing Jacobian), shape (n,)."""
        return self.flow(c).log_prob(y)

    # -- distributions ------------------------------------------------------------------
    def forward(self, context=None) -> TransformedDistribution:
        """The distribution of physical x given ``context``.

        Args:
            context: physical context, shape (n, *context_event_shape), or None for an
                unconditional flow.

        Returns:
            A ``TransformedDistribution`` with batch shape (n,) (or () unconditional) and
            event shape ``event_shape``; values must have dtype ``self.dtype``.
        """
        base = self.flow(self.context_features(context))
        return TransformedDistribution(base, [self.x_preprocessing.inv])

    def log_prob(self, x, context=None) -> torch.Tensor:
        """log q(x | c) w.r.t. the preprocessing's measure.

        Args:
            x: physical events, shape (n, *event_shape).
            context: physical context, shape (n, ...), or None if unconditional.

        Returns:
            Tensor of shape (n,) in the flow's dtype; -inf for events outside the
            preprocessing's support (e.g. pT below its threshold).
        """
        x = self.x_preprocessing.check_events("x", x)
        c = self.context_features(context)
        if c is not None and c.shape[0] != x.shape[0]:
            raise ValueError(
                f"x, context: expected the same number of events, got {x.shape[0]} and "
                f"{c.shape[0]}"
            )
        y, ladj = self.x_preprocessing.call_and_ladj(self._cast(x))
        ok = torch.isfinite(y).all(-1) & torch.isfinite(ladj)
        y = torch.where(ok.unsqueeze(-1), y, torch.zeros_like(y))
        lp = self.feature_log_prob(y, c) + torch.where(ok, ladj, torch.zeros_like(ladj))
        return torch.where(ok, lp, torch.full_like(lp, -math.inf))

    def _base_draw(
        self, context, n: int, generator: torch.Generator | None
    ) -> tuple[zuko.distributions.NormalizingFlow, torch.Tensor]:
        """The feature distribution at ``context`` and n base draws u, (n, *batch, d)."""
        if isinstance(n, bool) or not (isinstance(n, int) and n >= 1):
            raise ValueError(f"n: expected an integer >= 1, got {n!r}")
        dist = self.flow(self.context_features(context))
        base = dist.base
        if not (isinstance(base, Independent) and isinstance(base.base_dist, Normal)):
            raise TypeError(f"cannot sample with a generator from base {type(base).__name__}")
        shape = (n, *base.batch_shape, *base.event_shape)
        eps = torch.randn(shape, generator=generator, dtype=self.dtype, device=self.device)
        return dist, base.base_dist.loc + base.base_dist.scale * eps

    def sample(
        self, context=None, n: int = 1, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Draw physical events.

        Args:
            context: physical context, shape (m, ...), or None if unconditional.
            n: number of draws per context.
            generator: random generator on the flow's device (None: torch's global one).

        Returns:
            Tensor of shape (n, m, *event_shape) ((n, *event_shape) unconditional),
            in the flow's dtype.
        """
        dist, u = self._base_draw(context, n, generator)
        with torch.no_grad():
            y = dist.transform.inv(u)
            return self.x_preprocessing.inv(y)

    def sample_and_log_prob(
        self, context=None, n: int = 1, *, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw physical events and their log-density, in one inverse pass of the flow.

        Cheaper than :meth:`sample` followed by :meth:`log_prob` (no forward pass), and
        the same draws as :meth:`sample` for the same generator state.

        Args:
            context: physical context, shape (m, ...), or None if unconditional.
            n: number of draws per context (>= 1).
            generator: random generator on the flow's device (None: torch's global one).

        Returns:
            (x, log_q): physical events, shape (n, m, *event_shape) ((n, *event_shape)
            unconditional), and log q(x | c) w.r.t. the preprocessing's measure (as
            :meth:`log_prob`), shape (n, m) ((n,) unconditional); both in the flow's dtype
            and differentiable in the flow's parameters (wrap in ``torch.no_grad()`` to
            sample without a graph).
        """
        dist, u = self._base_draw(context, n, generator)
        y, ladj = dist.transform.inv.call_and_ladj(u)
        if ladj.shape == y.shape:  # element-wise transforms report per-feature terms
            ladj = ladj.sum(-1)
        x = self.x_preprocessing.inv(y)
        _, pre_ladj = self.x_preprocessing.call_and_ladj(x)
        return x, dist.base.log_prob(u) - ladj + pre_ladj

    # -- persistence --------------------------------------------------------------------
    def get_extra_state(self) -> dict:
        """Preprocessing state stored in ``state_dict`` (plain types and tensors)."""
        c = self.context_preprocessing
        return {
            "x_preprocessing": self.x_preprocessing.to_dict(),
            "context_preprocessing": None if c is None else c.to_dict(),
        }

    def set_extra_state(self, state: dict) -> None:
        """Restore the preprocessing state saved by :meth:`get_extra_state`."""
        self.x_preprocessing = preprocessing_from_dict(state["x_preprocessing"])
        c = state["context_preprocessing"]
        self.context_preprocessing = None if c is None else preprocessing_from_dict(c)

    def init_kwargs(self) -> dict:
        """Constructor arguments as plain types (for :func:`invsim.flows.save_flow`)."""
        st = self.get_extra_state()
        return {
            **st,
            "config": asdict(self.config),
            "seed": self.seed,
            "dtype": str(self.dtype).removeprefix("torch."),
        }

    @classmethod
    def from_init_kwargs(cls, kw: dict) -> ConditionalFlow:
        """Rebuild an (untrained) flow from :meth:`init_kwargs`."""
        c = kw["context_preprocessing"]
        cfg = dict(kw["config"])
        cfg["hidden_features"] = tuple(cfg["hidden_features"])
        return cls(
            preprocessing_from_dict(kw["x_preprocessing"]),
            None if c is None else preprocessing_from_dict(c),
            FlowConfig(**cfg),
            seed=kw["seed"],
            dtype=getattr(torch, kw["dtype"]),
        )
