r"""Unweighting: from weighted to unit-weight events, with a controlled overweight.

For weights :math:`w_i` (importance weights :math:`f/q`; signed ones enter through
:math:`|w_i|`) with total :math:`S = \sum_i |w_i|`, the maximum weight is the smallest
:math:`w_\text{max}` whose *overweight*

.. math:: \frac{1}{S} \sum_i \big(|w_i| - w_\text{max}\big)_+ \le \epsilon,

i.e. at most the fraction :math:`\epsilon` of the total weight lies above it (but
never below the mean :math:`\langle|w|\rangle`). Events are kept with probability
:math:`\min(1, |w_i|/w_\text{max})`; kept events carry the weight
:math:`\operatorname{sign}(w_i)\max(1, |w_i|/w_\text{max})` (in units of
:math:`w_\text{max}`), so the unweighted sample stays unbiased. The unweighting
efficiency is :math:`\langle|w|\rangle / w_\text{max}`.

Only the largest weights are ever sorted (``torch.topk``), so the cost is
:math:`O(n \log m)` with :math:`m \ll n` the number of weights near the top.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from forward._validation import check_finite, check_range

__all__ = ["UnweightingResult", "max_weight", "unweight", "unweighting_efficiency"]


def _abs_weights(weights) -> torch.Tensor:
    if not isinstance(weights, torch.Tensor):
        raise TypeError(
            f"weights: expected a torch.Tensor of shape (n,), got {type(weights).__name__}"
        )
    if weights.ndim != 1 or weights.numel() == 0:
        raise ValueError(
            f"weights: expected a non-empty tensor of shape (n,), got {tuple(weights.shape)}"
        )
    check_finite("weights", weights)
    a = weights.to(torch.float64).abs()
    if not bool((a > 0).any()):
        raise ValueError("weights: all weights are zero; nothing to unweight")
    return a


def max_weight(weights: torch.Tensor, overweight: float = 1e-3) -> float:
    """The smallest maximum weight with at most ``overweight`` of the total weight above it.

    Args:
        weights: event weights, shape (n,) (signed allowed: |w| is used).
        overweight: allowed fraction ε in [0, 1) of the total |weight| above the maximum.

    Returns:
        ``w_max`` (a Python float, >= the mean |w|).
    """
    check_range("overweight", float(overweight), 0.0, 1.0, high_open=True)
    a = _abs_weights(weights)
    n = a.numel()
    total = a.sum()
    allowed = overweight * total
    m = min(n, 1024)
    while True:
        top = torch.topk(a, m, sorted=True).values  # descending
        cum = top.cumsum(0)
        k1 = torch.arange(1, m + 1, dtype=torch.float64, device=a.device)
        excess = cum - k1 * top  # overweight if the maximum were top[k]
        if bool(excess[-1] > allowed) or m == n:
            break
        m = min(n, 4 * m)
    ok = excess <= allowed
    k = int(ok.sum()) - 1  # last index whose excess is allowed (excess increases with k)
    t = float((cum[k] - allowed) / (k + 1))
    if k + 1 < m:
        t = max(t, float(top[k + 1]))
    return max(t, float(total / n))


def unweighting_efficiency(weights: torch.Tensor, overweight: float = 1e-3) -> float:
    """``<|w|> / w_max`` with ``w_max`` from :func:`max_weight`.

    Args:
        weights: event weights, shape (n,).
        overweight: allowed overweight fraction ε.

    Returns:
        The unweighting efficiency in (0, 1].
    """
    a = _abs_weights(weights)
    return float(a.mean()) / max_weight(weights, overweight)


@dataclass(frozen=True)
class UnweightingResult:
    """Outcome of :func:`unweight`.

    Attributes:
        indices: indices of the kept events into the input, shape (k,), int64.
        event_weights: weights of the kept events in units of ``w_max``, shape (k,):
            ±1, or ±|w|/w_max > 1 for overweight events.
        w_max: the maximum weight used.
        efficiency: ``<|w|> / w_max``.
        overweight_fraction: fraction of the total |weight| above ``w_max``.
        n_overweight: number of events with |w| > w_max.
    """

    indices: torch.Tensor
    event_weights: torch.Tensor
    w_max: float
    efficiency: float
    overweight_fraction: float
    n_overweight: int

    def __post_init__(self) -> None:
        if not (self.w_max > 0 and 0 < self.efficiency <= 1 + 1e-12):
            raise ValueError(
                f"UnweightingResult: expected w_max > 0 and efficiency in (0, 1], "
                f"got w_max={self.w_max}, efficiency={self.efficiency}"
            )
        if not (0 <= self.overweight_fraction < 1):
            raise ValueError(
                f"overweight_fraction: expected [0, 1), got {self.overweight_fraction}"
            )
        if self.indices.shape != self.event_weights.shape:
            raise ValueError("indices and event_weights: expected the same shape")


def unweight(
    weights: torch.Tensor,
    overweight: float = 1e-3,
    *,
    generator: torch.Generator | None = None,
) -> UnweightingResult:
    """Select unit-weight events by accept/reject.

    Args:
        weights: event weights, shape (n,) (signed allowed).
        overweight: allowed fraction ε of the total |weight| above ``w_max``.
        generator: random generator on the weights' device; None uses torch's global one.

    Returns:
        An :class:`UnweightingResult`.
    """
    w_max = max_weight(weights, overweight)
    a = _abs_weights(weights)
    r = torch.rand(a.shape, generator=generator, dtype=torch.float64, device=a.device)
    keep = r * w_max < a
    idx = keep.nonzero().squeeze(-1)
    ratio = a[idx] / w_max
    sign = torch.sign(weights[idx].to(torch.float64))
    above = (a - w_max).clamp(min=0.0)
    return UnweightingResult(
        indices=idx,
        event_weights=sign * ratio.clamp(min=1.0),
        w_max=w_max,
        efficiency=float(a.mean()) / w_max,
        overweight_fraction=float(above.sum() / a.sum()),
        n_overweight=int((a > w_max).sum()),
    )
