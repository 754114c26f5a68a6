"""Input checks shared by the phase-space modules (unit-hypercube points, masses)."""

from __future__ import annotations

import torch

from forward._validation import check_finite, check_floating

__all__ = ["check_unit_points", "clamp_unit"]


def check_unit_points(name: str, r: torch.Tensor, dim: int) -> torch.Tensor:
    """Check that ``r`` is a floating tensor of shape (n, dim) with entries in [0, 1].

    Raises:
        TypeError: not a floating-point tensor.
        ValueError: wrong shape, NaN/inf, or entries outside [0, 1].
    """
    check_floating(name, r)
    if r.ndim != 2 or r.shape[1] != dim:
        raise ValueError(f"{name}: expected shape (n, {dim}), got {tuple(r.shape)}")
    check_finite(name, r)
    bad = (r < 0) | (r > 1)
    if bool(bad.any()):
        raise ValueError(
            f"{name}: expected entries in [0, 1], got {int(bad.sum())} outside, "
            f"e.g. {r[bad][:3].tolist()}"
        )
    return r


def clamp_unit(r: torch.Tensor) -> torch.Tensor:
    """Clamp into [eps, 1 - eps] with eps the dtype's machine epsilon.

    The maps call this on their input so that points exactly on the faces of the
    hypercube (r = 0 or 1) give finite momenta and log-Jacobians instead of NaN or
    -inf (e.g. a pair exactly at threshold or rapidity at the kinematic limit).
    """
    eps = torch.finfo(r.dtype).eps
    return r.clamp(eps, 1.0 - eps)
