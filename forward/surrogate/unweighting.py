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

**On any process.** :func:`two_stage_events` runs the algorithm on a
:class:`~forward.processes.base.Process` (e.g. ``jets``) with a trained
:class:`~forward.surrogate.matrix_element.SurrogateMatrixElement`: proposals flat on
the cube of one of its phase-space maps, :math:`w_s` the hadronic weight
(:class:`~forward.integrand.HadronicIntegrand`) with the surrogate |M|², and for the
stage-1 survivors :math:`w_e = \sum_c w_{s,c}\, |M|^2_{e,c} / |M|^2_{s,c}` (flavour
channels c), which reuses the PDFs and Jacobians of the first pass. Points that fail
the process's cuts have :math:`w_s = w_e = 0` and never reach either |M|². The weighted
kept sample estimates σ: :math:`\hat\sigma = \frac{W X}{N}\sum_{\text{kept}} u_i`
over N proposals, with its standard error from the per-proposal values.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from forward._validation import check_finite, check_range
from forward.events import HardEvents
from forward.nis.unweighting import max_weight

__all__ = ["TwoStageEvents", "TwoStageResult", "two_stage_events", "two_stage_unweight"]


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


@dataclass
class TwoStageEvents:
    """Events of :func:`two_stage_events`.

    Attributes:
        events: the kept hard events (momenta (m, k, 4) in GeV).
        weights: their residual weights u, shape (m,) float64 (1 unless overweight).
        result: the :class:`TwoStageResult` on the proposals that pass the cuts (its
            ``index`` points into those, its efficiencies are relative to them).
        n_proposed: all proposed points (cube points), cuts included.
        n_pass: proposals that pass the cuts (w_s > 0).
        cross_section, error: σ̂ = W X Σ u / n_proposed and its standard error, in pb.
        seconds_surrogate: wall time of everything but the exact |M|² (proposals, PDFs,
            surrogate, accept steps), in s.
        seconds_exact: wall time of the exact |M|² of the stage-1 survivors, in s.
    """

    events: HardEvents
    weights: torch.Tensor
    result: TwoStageResult
    n_proposed: int
    n_pass: int
    cross_section: float
    error: float
    seconds_surrogate: float
    seconds_exact: float

    @property
    def seconds(self) -> float:
        """Total wall time in s (training not included)."""
        return self.seconds_surrogate + self.seconds_exact


def two_stage_events(
    process,
    surrogate,
    n_proposed: int,
    *,
    params: Mapping[str, Any] | None = None,
    pdf=None,
    channel: int = 0,
    overweight: float = 1e-3,
    ratio_overweight: float = 0.0,
    surrogate_max: float | None = None,
    ratio_max: float | None = None,
    batch_size: int = 100_000,
    sampler=None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
) -> TwoStageEvents:
    """Unweighted events of ``process`` by two-stage unweighting with ``surrogate``.

    See the module docstring ("On any process"). The proposal is flat on the unit cube
    of ``process.phase_space(params)[channel]`` or ``sampler``'s density on it (e.g. a
    :class:`~forward.nis.VegasMap` adapted to the surrogate integrand), drawn in
    batches of ``batch_size``.

    Args:
        process: the exact :class:`~forward.processes.base.Process`.
        surrogate: a :class:`~forward.surrogate.matrix_element.SurrogateMatrixElement`
            trained on it (same final state and flavour channels, same parameters).
        n_proposed: number of proposed points (>= 1).
        params: process parameters (defaults for those not given); must be the
            surrogate's training values.
        pdf: PDF object or set name; default the process's.
        channel: index of the phase-space map.
        overweight, ratio_overweight, surrogate_max, ratio_max: as in
            :func:`two_stage_unweight` (default: no stage-2 overweight).
        batch_size: proposals per batch (memory), >= 1.
        sampler: None (flat) or a proposal on the map's cube with
            ``sample(n, *, generator) -> (r (n, dim), log_q (n,))``; weights are divided
            by its density q.
        generator: CPU random generator of the proposals and both accept steps.
        dtype: of the proposals and momenta (float64 recommended for the exact |M|²).

    Returns:
        A :class:`TwoStageEvents`.

    Raises:
        TypeError, ValueError: bad counts, a surrogate that does not fit the process,
        or no proposal passing the cuts.
    """
    from forward.integrand import HadronicIntegrand
    from forward.surrogate.matrix_element import SurrogateProcess

    for name, v in (("n_proposed", n_proposed), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name}: expected an integer >= 1, got {v!r}")
    t0 = time.perf_counter()
    surr_int = HadronicIntegrand(SurrogateProcess(process, surrogate), pdf, params,
                                 channel=channel, dtype=dtype)
    exact_params = surr_int.params
    parts, ws_parts = [], []
    for start in range(0, n_proposed, batch_size):
        m = min(batch_size, n_proposed - start)
        if sampler is None:
            r = torch.rand(m, surr_int.dim, generator=generator, dtype=dtype)
            log_q = None
        else:
            r, log_q = sampler.sample(m, generator=generator)
            r = r.to(dtype)
        ev, w_ch, _ = surr_int.sample(r)
        if log_q is not None:
            w_ch = w_ch * torch.exp(-log_q.to(w_ch)).unsqueeze(-1)
        keep = w_ch.sum(-1) > 0
        idx = keep.nonzero()[:, 0]
        parts.append(ev[idx])
        ws_parts.append(w_ch[idx].to(torch.float64))
    if not any(len(p) for p in parts):
        raise ValueError(f"n_proposed: none of the {n_proposed} proposals passes the cuts "
                         f"of {process.name!r}; propose more points")
    events = HardEvents(torch.cat([p.momenta for p in parts]), torch.cat([p.x1 for p in parts]),
                        torch.cat([p.x2 for p in parts]), process.sqrt_s)
    w_s_ch = torch.cat(ws_parts)
    timing = {"exact": 0.0}

    def exact_weights(idx: torch.Tensor) -> torch.Tensor:
        t1 = time.perf_counter()
        if idx.numel() == 0:
            return torch.zeros(0, dtype=torch.float64)
        ev = events[idx]
        with torch.no_grad():
            me_e = process.matrix_element(ev, exact_params).to(torch.float64)
            me_s = surrogate.matrix_element(ev, None).to(torch.float64)
        ratio = torch.where(me_s > 0, me_e / me_s.clamp(min=1e-300), 0.0)
        out = (w_s_ch[idx] * ratio).sum(-1)
        timing["exact"] += time.perf_counter() - t1
        return out

    res = two_stage_unweight(
        w_s_ch.sum(-1), exact_weights, surrogate_max=surrogate_max, ratio_max=ratio_max,
        overweight=overweight, ratio_overweight=ratio_overweight, generator=generator)
    scale = res.surrogate_max * res.ratio_max
    total = float(res.weights.sum())
    sigma = scale * total / n_proposed
    second = scale**2 * float((res.weights**2).sum()) / n_proposed
    error = math.sqrt(max(second - sigma**2, 0.0) / n_proposed)
    seconds = time.perf_counter() - t0
    return TwoStageEvents(
        events=events[res.index], weights=res.weights, result=res, n_proposed=n_proposed,
        n_pass=len(events), cross_section=sigma, error=error,
        seconds_surrogate=seconds - timing["exact"], seconds_exact=timing["exact"],
    )
