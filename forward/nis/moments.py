"""Mean and variance of weights accumulated chunk by chunk (bounded memory).

One implementation for every loop that sees its weights in chunks:
:meth:`forward.nis.VegasMap.adapt` and :func:`forward.xsec.cross_section`.
"""

from __future__ import annotations

import math

import torch

__all__ = ["RunningMoments"]


class RunningMoments:
    """Count, mean, sum of squared deviations and non-zero count of weights, merged
    chunk by chunk with the pairwise (Chan et al.) update, in float64.

    Attributes:
        count: number of weights seen.
        mean: their mean.
        m2: sum of squared deviations from the mean.
        nonzero: number of non-zero weights.
    """

    def __init__(self) -> None:
        self.count, self.mean, self.m2, self.nonzero = 0, 0.0, 0.0, 0

    def add(self, w: torch.Tensor) -> None:
        """Merge the weights ``w`` (any shape; float64 advised) into the moments."""
        size = w.numel()
        if size == 0:
            return
        w = w.to(torch.float64)
        b_mean = float(w.mean())
        b_m2 = float(((w - b_mean) ** 2).sum())
        delta = b_mean - self.mean
        total = self.count + size
        self.mean += delta * size / total
        self.m2 += b_m2 + delta * delta * self.count * size / total
        self.count = total
        self.nonzero += int((w != 0).sum())

    @property
    def std(self) -> float:
        """Sample standard deviation of the weights (n - 1 in the denominator)."""
        return math.sqrt(max(self.m2 / (self.count - 1), 0.0)) if self.count > 1 else 0.0

    @property
    def error(self) -> float:
        """Standard error of the mean, ``std / sqrt(count)``."""
        return self.std / math.sqrt(self.count) if self.count else 0.0
