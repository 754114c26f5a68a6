r"""Parke–Taylor MHV amplitudes: the closed-form reference of the recursion.

.. math:: A(1, ..., n) = i \frac{⟨ij⟩^4}{⟨12⟩⟨23⟩ \cdots ⟨n1⟩}

for gluons i and j of negative helicity and all others positive (all outgoing), in the
spinor conventions of :mod:`forward.amplitudes.spinors` and the normalisation of
:mod:`forward.amplitudes.recursion` (Tr(T^a T^b) = δ^{ab}).
"""

from __future__ import annotations

import torch

from forward._validation import check_floating
from forward.amplitudes.spinors import angle_product, spinors

__all__ = ["parke_taylor"]


def parke_taylor(momenta: torch.Tensor, negative: tuple[int, int]) -> torch.Tensor:
    """MHV colour-ordered amplitude A(1, ..., n) in the leg order of ``momenta``.

    Args:
        momenta: outgoing massless momenta, shape (..., n, 4) in GeV, n >= 4.
        negative: the two (0-based) legs of negative helicity, distinct, in 0..n-1.

    Returns:
        Shape (...), complex, in GeV^(4-n).

    Raises:
        TypeError, ValueError: bad momenta shape/dtype or legs.
    """
    check_floating("momenta", momenta)
    if momenta.ndim < 2 or momenta.shape[-1] != 4 or momenta.shape[-2] < 4:
        raise ValueError(f"momenta: expected shape (..., n, 4) with n >= 4, "
                         f"got {tuple(momenta.shape)}")
    n = momenta.shape[-2]
    try:
        i, j = (int(x) for x in negative)
    except (TypeError, ValueError) as err:
        raise ValueError(f"negative: expected two distinct leg indices, got {negative!r}") from err
    if i == j or not (0 <= i < n and 0 <= j < n):
        raise ValueError(f"negative: expected two distinct legs in 0..{n - 1}, got {negative!r}")
    lam, _ = spinors(momenta)
    den = angle_product(lam[..., 0, :], lam[..., 1, :])
    for a in range(1, n):
        den = den * angle_product(lam[..., a, :], lam[..., (a + 1) % n, :])
    return 1j * angle_product(lam[..., i, :], lam[..., j, :]) ** 4 / den
