"""Checked evaluation of a user integrand on points of the unit hypercube.

Every integrand call in ``forward.nis`` goes through :func:`evaluate`, so a wrong
output shape or a NaN is reported with the number of bad points and example inputs
instead of silently poisoning an integral or a training step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from forward._validation import check_count

__all__ = ["Integrand", "check_count", "check_points", "evaluate"]

#: An integrand: ``f(x)`` with ``x`` of shape (n, d) on [0, 1]^d returning shape (n,).
Integrand = Callable[[torch.Tensor], torch.Tensor]


def check_points(name: str, x, dims: int) -> torch.Tensor:
    """Raise unless ``x`` is a floating tensor of shape (n, dims).

    Args:
        name: argument name for the message.
        x: points, expected shape (n, dims).
        dims: number of dimensions.

    Returns:
        ``x`` unchanged.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"{name}: expected a torch.Tensor of shape (n, {dims}), got {type(x).__name__}"
        )
    if not x.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got {x.dtype}")
    if x.ndim != 2 or x.shape[1] != dims:
        raise ValueError(f"{name}: expected shape (n, {dims}), got {tuple(x.shape)}")
    return x


def evaluate(f: Integrand, x: torch.Tensor) -> torch.Tensor:
    """Evaluate ``f`` on ``x`` and check its output.

    Args:
        f: integrand, ``f(x)`` with ``x`` of shape (n, d) returning shape (n,).
        x: points on the unit hypercube, shape (n, d).

    Returns:
        ``f(x)`` as float64, shape (n,), on ``x``'s device.

    Raises:
        TypeError: if ``f`` does not return a tensor.
        ValueError: if the output has the wrong shape or holds NaN/inf; the message
            names how many points are bad and shows up to three of their inputs.
    """
    with torch.no_grad():
        y = f(x)
    if not isinstance(y, torch.Tensor):
        raise TypeError(
            f"integrand: expected f(x) to return a torch.Tensor, got {type(y).__name__}"
        )
    n = x.shape[0]
    if y.shape != (n,):
        raise ValueError(
            f"integrand: expected f(x) of shape ({n},) for x of shape {tuple(x.shape)}, "
            f"got {tuple(y.shape)}"
        )
    y = y.to(dtype=torch.float64, device=x.device)
    bad = ~torch.isfinite(y)
    if bool(bad.any()):
        n_nan = int(torch.isnan(y).sum())
        n_inf = int(bad.sum()) - n_nan
        examples = x[bad][:3].tolist()
        raise ValueError(
            f"integrand: f(x) returned {n_nan} NaN and {n_inf} infinite values out of {n} points, "
            f"e.g. at x = {examples}"
        )
    return y
