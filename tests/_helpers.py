"""Helpers that several test modules share; fixtures are in ``conftest.py``.

pytest puts ``tests/`` on ``sys.path`` (the folder is not a package), so a test module
imports them as ``from _helpers import ...``.
"""

from __future__ import annotations

import itertools

import pytest
import torch


def seeded(seed: int) -> torch.Generator:
    """A new CPU generator seeded with ``seed``."""
    return torch.Generator().manual_seed(seed)


def save_refusing_overwrite(obj, path) -> None:
    """``obj.save(path)``, and check that saving again to the same path raises
    ``FileExistsError``."""
    obj.save(path)
    with pytest.raises(FileExistsError):
        obj.save(path)


def five_gluon_parke_taylor(k, nc=3):
    """Σ over colours and helicities of |M|² of five gluons, all outgoing k (n, 5, 4).

    g⁶ N³(N²-1) · 2 Σ_{i<j} s_ij⁴ · Σ_{σ ∈ S_4} 1/|s_1σ2 s_σ2σ3 s_σ3σ4 s_σ4σ5 s_σ5 1|, g = 1.

    The factor 2 counts the MHV-bar helicities; Tr(T^a T^b) = δ^ab.
    """
    def sij(k, a, b):
        return 2.0 * (k[:, a, 0] * k[:, b, 0] - (k[:, a, 1:] * k[:, b, 1:]).sum(-1))

    num = sum(sij(k, a, b) ** 4 for a, b in itertools.combinations(range(5), 2))
    den = sum(1.0 / (sij(k, 0, p[0]) * sij(k, p[0], p[1]) * sij(k, p[1], p[2])
                     * sij(k, p[2], p[3]) * sij(k, p[3], 0)).abs()
              for p in itertools.permutations(range(1, 5)))
    return nc**3 * (nc**2 - 1) * 2 * num * den
