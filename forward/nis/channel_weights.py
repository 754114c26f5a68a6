r"""Channel weights :math:`\alpha_i(x)` of a multi-channel sampler: prior and learned correction.

.. math:: \alpha_i(x) = \frac{a_i\, g_i^0(x)\, e^{h_i(\phi(x))}}
                             {\sum_{j \in A} a_j\, g_j^0(x)\, e^{h_j(\phi(x))}},
          \qquad i \in A,

and :math:`\alpha_i = 0` for channels outside the active set :math:`A`. Here
:math:`g_j^0` is the density of channel j's phase-space map (its propagator shape:
a Breit–Wigner channel's density is the resonance's line shape), :math:`a_j` fixed
prior weights and :math:`h` a small network of features :math:`\phi(x)` whose last
layer starts at zero, so an untrained :class:`ChannelWeights` is the classic
propagator prior :math:`\alpha_i \propto a_i g_i^0`. By construction
:math:`\alpha_i \ge 0`, :math:`\sum_i \alpha_i = 1`, and :math:`\alpha_i(x) = 0`
wherever :math:`g_i^0(x) = 0`: the property the unbiasedness of
:mod:`forward.nis.multichannel` rests on.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from forward.nis._evaluate import check_count

__all__ = ["ChannelWeights"]


class ChannelWeights(nn.Module):
    """Prior times learned channel weights, normalised over the active channels.

    Args:
        channels: number of channels K.
        features: number of features F of φ(x) (0: no network, the prior alone).
        hidden: hidden layer widths of the network.
        prior: prior weights a_j, shape (K,), positive (default uniform).
        dtype: dtype of the network (float32 is enough: its output is a correction).
        device: device of the network and buffers.

    Attributes:
        active: bool buffer of shape (K,); dropped channels are False.
    """

    def __init__(
        self,
        channels: int,
        features: int = 0,
        hidden: tuple[int, ...] = (32, 32),
        *,
        prior: torch.Tensor | None = None,
        dtype: torch.dtype = torch.float32,
        device=None,
    ) -> None:
        super().__init__()
        self.channels = check_count("channels", channels)
        self.features = check_count("features", features, 0)
        if prior is None:
            prior = torch.full((channels,), 1.0 / channels, dtype=torch.float64)
        prior = torch.as_tensor(prior, dtype=torch.float64)
        if prior.shape != (channels,) or not bool((prior > 0).all() & prior.isfinite().all()):
            raise ValueError(
                f"prior: expected {channels} positive finite weights, got {prior.tolist()}"
            )
        self.register_buffer("log_prior", (prior / prior.sum()).log().to(device))
        self.register_buffer("active", torch.ones(channels, dtype=torch.bool, device=device))
        self.net = None
        if features > 0:
            layers: list[nn.Module] = []
            width = features
            for h in hidden:
                layers += [nn.Linear(width, h), nn.SiLU()]
                width = h
            last = nn.Linear(width, channels)
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
            self.net = nn.Sequential(*layers, last).to(dtype=dtype, device=device)

    def drop(self, channel: int) -> None:
        """Deactivate ``channel`` (its α becomes 0, the others are renormalised).

        Raises:
            ValueError: an index out of range, or dropping the last active channel.
        """
        if not 0 <= channel < self.channels:
            raise ValueError(
                f"channel: expected an index in [0, {self.channels - 1}], got {channel}"
            )
        if int(self.active.sum()) == 1 and bool(self.active[channel]):
            raise ValueError("channel: cannot drop the last active channel")
        self.active[channel] = False

    def log_alpha(self, log_g0: torch.Tensor, phi: torch.Tensor | None = None) -> torch.Tensor:
        """Log channel weights.

        Args:
            log_g0: log-densities of the channel maps at the points, shape (n, K),
                float64, -inf where a map cannot reach the point.
            phi: features, shape (n, F), or None without a network.

        Returns:
            ``log α``, shape (n, K), float64; -inf for inactive channels and outside a
            channel's support. Differentiable in the network's parameters.
        """
        if log_g0.ndim != 2 or log_g0.shape[1] != self.channels:
            raise ValueError(
                f"log_g0: expected shape (n, {self.channels}), got {tuple(log_g0.shape)}"
            )
        logits = log_g0.to(torch.float64) + self.log_prior
        if self.net is not None:
            if phi is None or phi.shape != (log_g0.shape[0], self.features):
                got = None if phi is None else tuple(phi.shape)
                raise ValueError(f"phi: expected shape ({log_g0.shape[0]}, {self.features}), "
                                 f"got {got}")
            first = next(self.net.parameters())
            logits = logits + self.net(phi.to(dtype=first.dtype)).to(torch.float64)
        logits = logits.masked_fill(~self.active, -math.inf)
        return torch.log_softmax(logits, dim=-1)
