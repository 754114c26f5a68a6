r"""Two-stage unweighting: generate with a surrogate, stay exact in distribution.

Points :math:`x_i` are drawn from a proposal density q (flat on a phase-space cube, a
NIS flow, ...). Let :math:`f_e` be the exact target density (e.g. dσ/dμ with the exact
|M|²) and :math:`f_s` the same with the surrogate |M|², and write the weights
:math:`w_s = f_s/q`, :math:`w_e = f_e/q` and the ratio :math:`\rho = w_e/w_s`.

**Algorithm.**

1. Keep each point with probability :math:`\min(1, w_s/W)` (W: the surrogate's maximum
   weight); only the survivors need the exact |M|².
2. Keep each survivor with probability :math:`\min(1, \rho/X)` (X: the maximum ratio).

Kept points carry the residual weight :math:`u = \max(1, w_s/W)\,\max(1, \rho/X)`,
which is 1 unless a weight exceeded its maximum (an *overweight* point).

**Proof of exactness.** For a proposed point x the kept indicator K satisfies

.. math:: \mathrm{E}[u K \mid x] = \max(1, \tfrac{w_s}{W}) \min(1, \tfrac{w_s}{W})\;
          \max(1, \tfrac{\rho}{X}) \min(1, \tfrac{\rho}{X})
          = \frac{w_s}{W} \frac{\rho}{X} = \frac{w_e(x)}{W X},

since :math:`\max(1, a)\min(1, a) = a` for a >= 0. Averaging over x ~ q,
:math:`\mathrm{E}[\sum_i u_i K_i g(x_i)] = \frac{N}{W X}\int f_e\, g\, dx` for any
observable g: the weighted kept sample is distributed exactly as :math:`f_e`, whatever
the surrogate, as long as :math:`w_s > 0` wherever :math:`f_e > 0` (a surrogate
|M|² = exp(network) is positive everywhere). If no weight exceeds its maximum (all
u = 1) the kept points are *unweighted* events from :math:`f_e` exactly; otherwise the
fraction of overweight points is reported. The exact |M|² is needed only for the
fraction :math:`\langle w_s\rangle/W` of the points that survive stage 1, and stage 2
keeps on average :math:`\langle\rho\rangle/X`: the closer the surrogate, the closer X
to 1 and the fewer exact evaluations per event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from forward._validation import check_finite, check_range
from forward.nis.unweighting import max_weight

__all__ = ["TwoStageResult", "two_stage_unweight"]


@dataclass
class TwoStageResult:
    """Outcome of :func:`two_stage_unweight`.

    Attributes:
        index: indices of the kept points into the proposed ones, shape (m,).
        weights: residual weights u of the kept points, shape (m,) (1 unless overweight).
        n_proposed: number of proposed points.
        n_exact: exact evaluations made (stage-1 survivors).
        surrogate_max: W, the stage-1 maximum weight.
        ratio_max: X, the stage-2 maximum ratio.
        efficiency_first, efficiency_second: kept fractions of stages 1 and 2.
        overweight_fraction: fraction of kept points with u > 1.
    """

    index: torch.Tensor
    weights: torch.Tensor
    n_proposed: int
    n_exact: int
    surrogate_max: float
    ratio_max: float
    efficiency_first: float
    efficiency_second: float
    overweight_fraction: float


def _check_weights(name: str, w) -> torch.Tensor:
    if not isinstance(w, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor of shape (n,), got {type(w).__name__}")
    if w.ndim != 1 or w.numel() == 0:
        raise ValueError(f"{name}: expected a non-empty tensor of shape (n,), got "
                         f"{tuple(w.shape)}")
    check_finite(name, w)
    if bool((w < 0).any()):
        raise ValueError(f"{name}: expected weights >= 0, got {int((w < 0).sum())} negative")
    return w.detach().to(torch.float64)


def two_stage_unweight(
    surrogate_weights: torch.Tensor,
    exact_weights: Callable[[torch.Tensor], torch.Tensor],
    *,
    surrogate_max: float | None = None,
    ratio_max: float | None = None,
    overweight: float = 1e-3,
    ratio_overweight: float | None = None,
    generator: torch.Generator | None = None,
) -> TwoStageResult:
    """Unweight with a surrogate, then correct with the exact weights (module docstring).

    Args:
        surrogate_weights: w_s = f_s/q of the proposed points, shape (n,), >= 0.
        exact_weights: callable mapping indices (m,) of stage-1 survivors to their exact
            weights w_e = f_e/q, shape (m,), >= 0; called once.
        surrogate_max: W; default the maximum of ``surrogate_weights`` with at most
            ``overweight`` of their sum above it (:func:`forward.nis.max_weight`).
        ratio_max: X; default the same rule applied to the ratios of the survivors.
        overweight: allowed overweight fraction for the default maxima, in [0, 1).
        ratio_overweight: the same for the default X only (default ``overweight``); 0
            takes the largest ratio, so that stage 2 has no overweight points.
        generator: random generator on the weights' device for both accept steps.

    Returns:
        A :class:`TwoStageResult`.

    Raises:
        TypeError, ValueError: bad weights (shape, NaN/inf, negative), a callable that
        returns the wrong shape, or non-positive maxima. Points with w_s = 0 are never
        kept: the caller must make sure w_s > 0 wherever w_e > 0.
    """
    ws = _check_weights("surrogate_weights", surrogate_weights)
    if not callable(exact_weights):
        raise TypeError(f"exact_weights: expected a callable, got {type(exact_weights).__name__}")
    check_range("overweight", float(overweight), 0.0, 1.0, high_open=True)
    ratio_overweight = overweight if ratio_overweight is None else float(ratio_overweight)
    check_range("ratio_overweight", ratio_overweight, 0.0, 1.0, high_open=True)
    n = ws.numel()
    big_w = max_weight(ws, overweight) if surrogate_max is None else float(surrogate_max)
    if not big_w > 0:
        raise ValueError(f"surrogate_max: expected a positive number, got {surrogate_max!r}")
    u1 = torch.rand(n, generator=generator, dtype=torch.float64, device=ws.device)
    keep1 = u1 * big_w < ws
    idx1 = torch.nonzero(keep1).squeeze(-1)
    we = exact_weights(idx1)
    we = _check_weights("exact_weights(index)", torch.as_tensor(we))
    if we.shape != idx1.shape:
        raise ValueError(
            f"exact_weights: expected {idx1.numel()} weights for the stage-1 survivors, "
            f"got shape {tuple(we.shape)}"
        )
    ws1 = ws[idx1]  # > 0: a point with w_s = 0 never survives stage 1
    rho = we / ws1
    if ratio_max is None:
        big_x = max_weight(rho, ratio_overweight) if bool((rho > 0).any()) else 1.0
    else:
        big_x = float(ratio_max)
    if not big_x > 0:
        raise ValueError(f"ratio_max: expected a positive number, got {ratio_max!r}")
    u2 = torch.rand(idx1.numel(), generator=generator, dtype=torch.float64, device=ws.device)
    keep2 = u2 * big_x < rho
    index = idx1[keep2]
    weights = (ws1[keep2] / big_w).clamp(min=1.0) * (rho[keep2] / big_x).clamp(min=1.0)
    m1, m2 = idx1.numel(), index.numel()
    return TwoStageResult(
        index=index,
        weights=weights,
        n_proposed=n,
        n_exact=m1,
        surrogate_max=big_w,
        ratio_max=big_x,
        efficiency_first=m1 / n,
        efficiency_second=m2 / m1 if m1 else 0.0,
        overweight_fraction=float((weights > 1).to(torch.float64).mean()) if m2 else 0.0,
    )
