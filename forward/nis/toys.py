r"""Toy integrands on the unit hypercube with known integrals, for tests and benchmarks.

* :func:`camel`: two Gaussians :math:`\exp(-|x - \mu|^2/a^2)` at 1/3 and 2/3 of the
  diagonal, normalised so that the integral over :math:`[0, 1]^d` is exactly 1
  (the normalisation uses ``erf``).
* :func:`ring`: a thin Gaussian ring in 2D, normalised to 1 on the unit square by a
  one-dimensional quadrature of its radial profile (the ring lies well inside).
* :func:`signed_camel`: a positive and a negative Gaussian with exact integral 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from forward.nis._evaluate import check_count

__all__ = ["camel", "ring", "signed_camel"]


def _gauss_cube_norm(mu: float, a: float, dims: int) -> float:
    """Integral of exp(-|x - mu 1|^2 / a^2) over [0, 1]^dims."""
    one = 0.5 * a * math.sqrt(math.pi) * (math.erf((1 - mu) / a) + math.erf(mu / a))
    return one**dims


def camel(dims: int, a: float = 0.1) -> Callable[[torch.Tensor], torch.Tensor]:
    """Camel function on [0, 1]^dims, normalised to integral 1.

    Args:
        dims: number of dimensions d.
        a: Gaussian width parameter (``exp(-r^2/a^2)``).

    Returns:
        ``f(x)``, ``x`` of shape (n, d) -> shape (n,), float64.
    """
    check_count("dims", dims)
    z = 0.5 * (_gauss_cube_norm(1 / 3, a, dims) + _gauss_cube_norm(2 / 3, a, dims))

    def f(x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float64)
        g1 = torch.exp(-((x - 1 / 3) ** 2).sum(dim=1) / a**2)
        g2 = torch.exp(-((x - 2 / 3) ** 2).sum(dim=1) / a**2)
        return 0.5 * (g1 + g2) / z

    return f


def signed_camel(dims: int, a: float = 0.1) -> Callable[[torch.Tensor], torch.Tensor]:
    """A positive Gaussian at 1/3 and a negative one at 2/3 of the diagonal; integral 0.

    Args:
        dims: number of dimensions d.
        a: Gaussian width parameter.

    Returns:
        ``f(x)``, ``x`` of shape (n, d) -> shape (n,), float64, each lobe with |integral| 1.
    """
    check_count("dims", dims)
    z = _gauss_cube_norm(1 / 3, a, dims)

    def f(x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float64)
        g1 = torch.exp(-((x - 1 / 3) ** 2).sum(dim=1) / a**2)
        g2 = torch.exp(-((x - 2 / 3) ** 2).sum(dim=1) / a**2)
        return (g1 - g2) / z

    return f


def ring(radius: float = 0.3, width: float = 0.02) -> Callable[[torch.Tensor], torch.Tensor]:
    """A Gaussian ring around (1/2, 1/2) in 2D, normalised to integral 1.

    Args:
        radius: ring radius; must leave ``radius + 8 width <= 1/2``.
        width: Gaussian width of the radial profile ``exp(-(r - R)^2 / (2 w^2))``.

    Returns:
        ``f(x)``, ``x`` of shape (n, 2) -> shape (n,), float64.
    """
    if not (width > 0 and radius - 8 * width > 0 and radius + 8 * width <= 0.5):
        raise ValueError(
            f"radius, width: expected the ring (radius ± 8 width) inside (0, 0.5), "
            f"got radius={radius}, width={width}"
        )
    # 2 pi \int r exp(-(r-R)^2/2w^2) dr over r >= 0 (tails beyond 8 w are < 1e-14)
    norm = (
        2
        * math.pi
        * (
            radius
            * width
            * math.sqrt(2 * math.pi)
            * 0.5
            * (1 + math.erf(radius / (width * math.sqrt(2))))
            + width**2 * math.exp(-(radius**2) / (2 * width**2))
        )
    )

    def f(x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float64)
        r = torch.sqrt(((x - 0.5) ** 2).sum(dim=1))
        return torch.exp(-((r - radius) ** 2) / (2 * width**2)) / norm

    return f
