r"""Networks that regress log |M|² with a predicted uncertainty.

:class:`SurrogateNet` is an MLP (SiLU) from standardised invariant features to, per
output group g, a mean :math:`\mu_g` and a log-width :math:`\log\sigma_g` of the
standardised target. Kinds:

* ``"heteroscedastic"``: deterministic weights, Gaussian likelihood with learned σ;
* ``"bayesian"``: every layer a :class:`~forward.surrogate.layers.BayesianLinear`
  (Bayes by backprop); the predictive spread of drawn networks adds the epistemic
  part to the learned (aleatoric) σ;
* ``"mse"``: the plain baseline, trained on the squared error; its σ is one constant
  per group (the validation RMS), set after training.

:class:`SymmetricRegressor` holds the feature and target standardisation, the
permutations of identical particles and one network (or the members of a deep
ensemble), and turns events into the predictive mean and variance of
:math:`y = \log|M|^2 - \log R` per group. For each drawn network the outputs are
averaged over the permutations of identical final-state particles, summing the
per-permutation values in sorted order, so the prediction is *bit-for-bit* invariant
under exchanging identical particles (``symmetry="average"``). With
``symmetry="sort"`` the identical particles are instead read in the canonical order of
:func:`~forward.surrogate.features.canonical_order` (one network pass instead of k!
for k identical particles, e.g. 120 for five jets), equally bit-for-bit invariant.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from forward._validation import check_choice
from forward.events import HardEvents
from forward.surrogate.features import (
    FeatureScaler,
    canonical_order,
    invariant_features,
    n_features,
)
from forward.surrogate.layers import BayesianLinear

__all__ = ["KINDS", "SYMMETRIES", "SurrogateNet", "SymmetricRegressor"]

#: network kinds; "ensemble" is a SymmetricRegressor of several "heteroscedastic" nets
KINDS = ("heteroscedastic", "bayesian", "ensemble", "mse")
#: ways to make a surrogate symmetric under exchanging identical final-state particles
SYMMETRIES = ("average", "sort")

_LOG_SIGMA_MIN, _LOG_SIGMA_MAX = -14.0, 3.0


class SurrogateNet(nn.Module):
    """MLP: features (n, n_in) -> (mean, log_sigma), each shape (n, n_groups).

    Args:
        n_in: number of input features.
        n_groups: number of regressed outputs (independent flavour groups).
        hidden: width of the hidden layers.
        layers: number of hidden layers (>= 1).
        kind: ``"heteroscedastic"``, ``"bayesian"`` or ``"mse"``.
        prior_std: prior width of the Bayesian layers.
        dtype, device: of the parameters.
    """

    def __init__(
        self,
        n_in: int,
        n_groups: int,
        *,
        hidden: int = 128,
        layers: int = 4,
        kind: str = "heteroscedastic",
        prior_std: float = 1.0,
        dtype: torch.dtype = torch.float32,
        device=None,
    ) -> None:
        super().__init__()
        check_choice("kind", kind, ("heteroscedastic", "bayesian", "mse"))
        for name, v, lo in (("n_in", n_in, 1), ("n_groups", n_groups, 1),
                            ("hidden", hidden, 1), ("layers", layers, 1)):
            if not isinstance(v, int) or v < lo:
                raise ValueError(f"{name}: expected an integer >= {lo}, got {v!r}")
        self.kind = kind
        self.n_groups = n_groups
        widths = [n_in] + [hidden] * layers + [2 * n_groups]
        mods = []
        for a, b in zip(widths[:-1], widths[1:], strict=True):
            if kind == "bayesian":
                mods.append(BayesianLinear(a, b, prior_std=prior_std, dtype=dtype, device=device))
            else:
                mods.append(nn.Linear(a, b, dtype=dtype, device=device))
        self.linears = nn.ModuleList(mods)
        self.act = nn.SiLU()
        self.register_buffer("mse_log_sigma", torch.zeros(n_groups, dtype=dtype, device=device))

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator) -> None:
        """Redraw the (mean) weights uniformly in ±1/√fan_in, biases likewise, from
        ``generator`` (CPU), as torch's default initialisation does from its global RNG."""
        for lin in self.linears:
            w = lin.weight_mu if self.bayesian else lin.weight
            b = lin.bias_mu if self.bayesian else lin.bias
            bound = 1.0 / w.shape[1] ** 0.5
            for t in (w, b):
                u = torch.rand(t.shape, generator=generator, dtype=torch.float64)
                t.copy_(((2 * u - 1) * bound).to(t.dtype))

    @property
    def bayesian(self) -> bool:
        return self.kind == "bayesian"

    def draw(self, generator: torch.Generator | None = None) -> list | None:
        """One draw of all weights of a Bayesian net (None for deterministic nets)."""
        if not self.bayesian:
            return None
        return [lin.draw(generator) for lin in self.linears]

    def forward(
        self, x: torch.Tensor, weights: list | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log σ of the standardised target.

        Args:
            x: standardised features, shape (n, n_in), the parameters' dtype.
            weights: for Bayesian nets a draw from :meth:`draw` (one network for the whole
                batch); None uses the posterior means.

        Returns:
            (mean, log_sigma), each shape (n, n_groups).
        """
        h = x
        last = len(self.linears) - 1
        for i, lin in enumerate(self.linears):
            h = lin(h, None if weights is None else weights[i]) if self.bayesian else lin(h)
            if i < last:
                h = self.act(h)
        mean, raw = h[:, : self.n_groups], h[:, self.n_groups :]
        if self.kind == "mse":
            return mean, self.mse_log_sigma.expand_as(mean)
        # σ starts near e^-2 of the target's spread; soft clamp into [MIN, MAX]
        log_sigma = _LOG_SIGMA_MAX - F.softplus(_LOG_SIGMA_MAX - (raw - 2.0))
        log_sigma = _LOG_SIGMA_MIN + F.softplus(log_sigma - _LOG_SIGMA_MIN)
        return mean, log_sigma

    def kl(self) -> torch.Tensor:
        """KL(q || prior) of all Bayesian layers (zero for deterministic nets)."""
        if not self.bayesian:
            return torch.zeros((), dtype=self.linears[0].weight.dtype)
        return sum(lin.kl() for lin in self.linears)


def _sorted_mean(values: torch.Tensor) -> torch.Tensor:
    """Mean over dim 0 summing in sorted order: invariant under permuting dim 0."""
    if values.shape[0] == 1:
        return values[0]
    return torch.sort(values, dim=0).values.sum(0) / values.shape[0]


class SymmetricRegressor(nn.Module):
    """Events -> predictive mean and variance of y = log|M|² - log R per output group.

    Args:
        n_out: number of final-state particles.
        permutations: permutations of the final state to symmetrise over (the identity
            included), from :func:`~forward.surrogate.features.identical_permutations`;
            with ``symmetry="sort"`` only their number matters for validation, the
            network reads one canonical order.
        n_groups: number of regressed outputs.
        kind: one of ``KINDS``.
        members: ensemble size (``kind="ensemble"``), else 1.
        hidden, layers, prior_std: of each :class:`SurrogateNet`.
        dtype: of the networks (features and targets are standardised in float64 first).
        device: of the networks.
        generator: random generator (CPU) of the initial weights; None uses torch's
            global one.
        symmetry: ``"average"`` (over ``permutations``) or ``"sort"`` (canonical order of
            the particles with equal ``final_state`` ids; needs ``final_state``).
        final_state: PDG ids of the final state (``symmetry="sort"``).
    """

    def __init__(
        self,
        n_out: int,
        permutations: Sequence[Sequence[int]],
        n_groups: int,
        *,
        kind: str = "heteroscedastic",
        members: int = 1,
        hidden: int = 128,
        layers: int = 4,
        prior_std: float = 1.0,
        dtype: torch.dtype = torch.float32,
        device=None,
        generator: torch.Generator | None = None,
        symmetry: str = "average",
        final_state: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        check_choice("kind", kind, KINDS)
        check_choice("symmetry", symmetry, SYMMETRIES)
        if symmetry == "sort":
            if final_state is None or len(final_state) != int(n_out):
                raise ValueError(
                    f"final_state: expected {int(n_out)} PDG ids for symmetry='sort', "
                    f"got {final_state!r}")
            final_state = [int(x) for x in final_state]
            permutations = [tuple(range(int(n_out)))]
        if not isinstance(members, int) or members < 1:
            raise ValueError(f"members: expected an integer >= 1, got {members!r}")
        if kind != "ensemble":
            members = 1
        self.kind = kind
        self.n_out = int(n_out)
        self.permutations = [tuple(int(i) for i in p) for p in permutations]
        self.n_groups = int(n_groups)
        self.symmetry = symmetry
        self.final_state = None if final_state is None else [int(x) for x in final_state]
        self.config = {"hidden": hidden, "layers": layers, "prior_std": prior_std,
                       "members": members, "symmetry": symmetry,
                       "final_state": self.final_state}
        n_in = n_features(self.n_out)
        net_kind = "heteroscedastic" if kind == "ensemble" else kind
        self.nets = nn.ModuleList(
            SurrogateNet(n_in, n_groups, hidden=hidden, layers=layers, kind=net_kind,
                         prior_std=prior_std, dtype=dtype, device=device)
            for _ in range(members)
        )
        if generator is not None:
            for net in self.nets:
                net.reset_parameters(generator)
        self.x_scaler = FeatureScaler(n_in)
        self.y_scaler = FeatureScaler(n_groups)
        self.register_buffer("sigma_scale", torch.ones(n_groups, dtype=torch.float64))

    @property
    def dtype(self) -> torch.dtype:
        return next(self.nets.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return self.x_scaler.mean.device

    def raw_features(self, events: HardEvents) -> torch.Tensor:
        """Unscaled features for every permutation read, shape (P, n, n_features), float64
        (P = 1 with ``symmetry="sort"``)."""
        if self.symmetry == "sort":
            events = canonical_order(events, self.final_state)
        x = torch.stack([invariant_features(events, p) for p in self.permutations])
        return x.to(self.device, torch.float64)

    def features(self, events: HardEvents) -> torch.Tensor:
        """Standardised features for every permutation, shape (P, n, n_features), net dtype."""
        return self.x_scaler(self.raw_features(events)).to(self.dtype)

    def member_output(
        self,
        k: int,
        feats: torch.Tensor,
        *,
        sample: bool = False,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Symmetrised (mean, log σ) of member ``k`` in standardised units, each (n, g).

        Args:
            k: member index.
            feats: from :meth:`features`, shape (P, n, n_features).
            sample: draw the weights of a Bayesian member (one draw for all permutations
                and events, so the drawn function is exactly symmetric).
            generator: random generator of the draw.
        """
        net = self.nets[k]
        weights = net.draw(generator) if sample else None
        # one call per permutation, with the same batch layout: a row's value must not
        # depend on where it sits in the batch (BLAS and vectorised kernels may treat
        # tails differently), so that the sorted mean below is bit-for-bit symmetric
        means, variances = [], []
        for i in range(feats.shape[0]):
            m, ls = net(feats[i], weights)
            means.append(m)
            variances.append(torch.exp(2 * ls))
        var = _sorted_mean(torch.stack(variances))
        return _sorted_mean(torch.stack(means)), 0.5 * torch.log(var)

    def predict(
        self,
        events: HardEvents,
        *,
        samples: int = 20,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Predictive mean and variance of y = log|M|² - log R.

        Ensembles: the mixture of the members' Gaussians; Bayesian nets: the mixture
        over ``samples`` weight draws (``samples=0``: mean weights, aleatoric σ only).
        The calibration factor ``sigma_scale`` multiplies the total σ.

        Args:
            events: hard events, momenta (n, n_out, 4) in GeV.
            samples: weight draws of a Bayesian net.
            generator: random generator of the draws (on the networks' device).

        Returns:
            (mean, var), each float64 of shape (n, n_groups), in units of log|M|².
        """
        feats = self.features(events)
        draws = []
        for k in range(len(self.nets)):
            if self.kind == "bayesian" and samples > 0:
                draws += [self.member_output(k, feats, sample=True, generator=generator)
                          for _ in range(samples)]
            else:
                draws.append(self.member_output(k, feats))
        mu = torch.stack([d[0] for d in draws]).to(torch.float64)
        s2 = torch.stack([torch.exp(2 * d[1]) for d in draws]).to(torch.float64)
        mean = mu.mean(0)
        var = s2.mean(0) + (mu.var(0, unbiased=False) if mu.shape[0] > 1 else 0.0)
        std_y = self.y_scaler.std
        mean = self.y_scaler.inverse(mean)
        var = var * (std_y * self.sigma_scale) ** 2
        return mean, var
