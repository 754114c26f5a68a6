r"""Pieces shared by likelihoods that reweight fixed hard-event samples to any θ.

* :func:`parameter_points`: checks a θ mapping (one point or a batch) and completes
  every point with the fixed and default parameters of the process;
* :class:`FiducialSample`: a fixed uniform sample of a phase-space map, drawn once, for

  .. math:: \hat\sigma_\text{fid}(\theta) = \frac1N \sum_i
            \frac{d\sigma(\theta)}{d\mu}(y_i)\, \varepsilon(y_i)\, e^{\text{log\_jac}_i},

  with common random numbers across θ (smooth and differentiable in θ) and its
  delta-method error.

Used by :class:`~invsim.mem.MEMLikelihood` (reco level) and
:class:`~invsim.mem.parton.PartonLikelihood` (parton level).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

from forward._validation import as_tensor, check_finite, check_floating, check_memory
from forward.events import HardEvents
from invsim.mem.estimator import summarize_weights

__all__ = ["FiducialSample", "parameter_points"]


def parameter_points(process, names: Sequence[str], fixed: Mapping[str, float], theta,
                     device) -> tuple[list[dict[str, torch.Tensor]], bool]:
    """Complete parameters per θ point, and whether θ was batched.

    Args:
        process: the :class:`~forward.processes.Process`.
        names: the θ components, in order.
        fixed: values of other parameters (numbers); the rest keep their defaults.
        theta: mapping of every name to a number or a tensor of shape () or (b,).
        device: device of the returned tensors.

    Returns:
        (one dict of complete parameter tensors of shape () per point (from
        ``process.params``, float64, keeping θ's autograd graph), batched).

    Raises:
        TypeError, ValueError: not a mapping, missing or unknown names, mismatched
            batch sizes, non-finite values.
    """
    if not isinstance(theta, Mapping):
        raise TypeError(f"theta: expected a mapping of {list(names)} to tensors, "
                        f"got {type(theta).__name__}")
    missing = [p for p in names if p not in theta]
    extra = [p for p in theta if p not in names]
    if missing or extra:
        raise ValueError(f"theta: expected exactly the parameters {list(names)}, "
                         f"missing {missing}, unexpected {extra}")
    vals = {}
    batch = None
    for p in names:
        v = as_tensor(p, theta[p], dtype=None if isinstance(theta[p], torch.Tensor)
                      else torch.float64, device=device)
        check_floating(p, v)
        if v.ndim > 1:
            raise ValueError(f"{p}: expected shape () or (b,), got {tuple(v.shape)}")
        check_finite(p, v.detach())
        if v.ndim == 1:
            if batch is not None and v.shape[0] != batch:
                raise ValueError(f"{p}: expected shape ({batch},) like the other "
                                 f"parameters, got {tuple(v.shape)}")
            batch = v.shape[0]
        vals[p] = v.to(device=device, dtype=torch.float64)
    b = 1 if batch is None else batch
    points = []
    for i in range(b):
        point = {p: (v[i] if v.ndim else v) for p, v in vals.items()}
        points.append(process.params({**fixed, **point}, device=device))
    return points, batch is not None


class FiducialSample:
    """A fixed uniform sample of a phase-space map for σ_fid(θ) by reweighting.

    Args:
        phase_map: a map with ``dim`` and ``forward(r) -> (HardEvents, log_jac)``, the
            log-Jacobian w.r.t. dμ = dx1 dx2 dΦ_n.
        n: sample size N (>= 2).
        generator: draws the uniform points (float64).
        log_acceptance: θ-independent log ε(events) -> (n,) with values in [-inf, 0],
            or None for ε = 1 (σ_fid = σ after the process's cuts).
        chunk_size: events per acceptance call.
        device: device of the sample.
        what: name of the acceptance in error messages.

    Attributes:
        events: the N hard events (HardEvents, float64).
        log_b: log ε + log_jac per event, shape (N,), no autograd graph.

    Raises:
        ValueError: NaN in the acceptance.
    """

    def __init__(self, phase_map, n: int, generator: torch.Generator, *,
                 log_acceptance: Callable[[HardEvents], torch.Tensor] | None = None,
                 chunk_size: int = 200_000, device=None, what: str = "acceptance") -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 2:
            raise ValueError(f"n_fiducial: expected an integer >= 2, got {n!r}")
        # the points, their events and weights are held at once
        check_memory("n_fiducial", n, 8 * (phase_map.dim + 64), device=device,
                     what="fiducial points")
        r = torch.rand(n, phase_map.dim, generator=generator, dtype=torch.float64,
                       device=device)
        with torch.no_grad():
            ev, log_jac = phase_map.forward(r)
            lb = log_jac
            if log_acceptance is not None:
                parts = [log_acceptance(ev[s : s + chunk_size]) for s in range(0, n, chunk_size)]
                lb = torch.cat(parts).to(lb.device) + log_jac
        if bool(torch.isnan(lb).any()):
            raise ValueError(f"{what}: NaN at the fiducial sample")
        self.events = ev
        self.log_b = lb
        self.n = n

    def log_sigma(self, log_dsigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """log(σ_fid / pb) and its delta-method standard error from log dσ/dμ.

        Args:
            log_dsigma: log dσ(θ)/dμ at :attr:`events`, shape (N,) (-inf where zero).

        Returns:
            (log σ_fid, shape (), differentiable; its error, shape (), no graph).
        """
        s = summarize_weights(log_dsigma + self.log_b)
        return s.log_mean, s.error
