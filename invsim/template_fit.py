r"""Classical binned template fit of one parameter (e.g. the top mass from reco m(bℓ)).

Templates are histograms of an observable simulated at several values θ_j of a parameter
(e.g. m_t = 165, 167.5, …, 180 GeV), normalised to unit area. Per bin, the probability
p_i(θ) is interpolated by a least-squares polynomial in θ (quadratic by default; with
three template points it passes through them). A data histogram n_i (N = Σ n_i events)
is compared with the Poisson binned likelihood

.. math:: \log L(\theta) = \sum_i n_i \log \nu_i(\theta) - \nu_i(\theta),
          \qquad \nu_i = N\, p_i(\theta),

i.e. the expected total fixed to its maximum-likelihood value N (the normalisation
profiled out; the shape alone measures θ, as the multinomial likelihood does).
:meth:`TemplateFit.fit` returns the **flat-prior posterior** on the template range
[θ_min, θ_max] evaluated on a fine grid: its mean, standard deviation, central 68.27 %
and 95.45 % intervals, and the maximum-likelihood value. The statistical error of the
templates themselves is not propagated (make them from samples much larger than the
data). Interpolated probabilities are floored at 1e-12 and renormalised.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from forward._validation import as_float_array

__all__ = ["TemplateFit", "TemplateFitResult"]


@dataclass(frozen=True)
class TemplateFitResult:
    """Result of :meth:`TemplateFit.fit` (units of θ, e.g. GeV).

    Attributes:
        mean: flat-prior posterior mean.
        std: posterior standard deviation.
        ci68: central 68.27 % interval (lo, hi).
        ci95: central 95.45 % interval (lo, hi).
        mle: maximum-likelihood θ (grid maximum refined by a parabola through its
            neighbours).
        n: events in the data histogram.
    """

    mean: float
    std: float
    ci68: tuple[float, float]
    ci95: tuple[float, float]
    mle: float
    n: int

    def to_dict(self) -> dict:
        return {"mean": self.mean, "std": self.std, "ci68": list(self.ci68),
                "ci95": list(self.ci95), "mle": self.mle, "n": self.n}


class TemplateFit:
    """Per-bin polynomial interpolation of unit-area templates in θ; binned Poisson fit.

    Args:
        edges: bin edges, shape (bins + 1,), increasing (units of the observable, e.g.
            GeV). Values outside [edges[0], edges[-1]] are not counted.
        thetas: the template points θ_j, shape (k,), distinct, k > ``degree``.
        probabilities: template bin probabilities, shape (k, bins), each row ≥ 0 with a
            positive sum (normalised here).
        degree: polynomial degree of the per-bin interpolation (default 2).

    Use :meth:`from_samples` to build the templates from simulated values.
    """

    def __init__(self, edges, thetas, probabilities, *, degree: int = 2) -> None:
        self.edges = as_float_array("edges", edges, 1)
        if self.edges.size < 2 or not (np.diff(self.edges) > 0).all():
            raise ValueError(f"edges: expected at least 2 increasing values, got "
                             f"{self.edges.tolist()}")
        self.thetas = as_float_array("thetas", thetas, 1)
        if isinstance(degree, bool) or not isinstance(degree, int) or degree < 0:
            raise ValueError(f"degree: expected an integer >= 0, got {degree!r}")
        if len(np.unique(self.thetas)) != self.thetas.size or self.thetas.size <= degree:
            raise ValueError(f"thetas: expected more than degree={degree} distinct values, "
                             f"got {self.thetas.tolist()}")
        p = as_float_array("probabilities", probabilities, 2)
        bins = self.edges.size - 1
        if p.shape != (self.thetas.size, bins):
            raise ValueError(f"probabilities: expected shape ({self.thetas.size}, {bins}) "
                             f"(thetas, bins), got {p.shape}")
        if (p < 0).any() or not (p.sum(1) > 0).all():
            raise ValueError("probabilities: expected non-negative rows with a positive sum")
        order = np.argsort(self.thetas)
        self.thetas = self.thetas[order]
        self.probabilities = (p / p.sum(1, keepdims=True))[order]
        self.degree = degree
        # coefficients (degree + 1, bins), highest power first; θ centred for conditioning
        self._centre = float(self.thetas.mean())
        self._coef = np.polyfit(self.thetas - self._centre, self.probabilities, degree)

    @classmethod
    def from_samples(cls, samples: Mapping[float, object], edges, *, weights=None,
                     degree: int = 2) -> TemplateFit:
        """Templates from simulated values of the observable at each θ_j.

        Args:
            samples: θ_j -> values, shape (n_j,) (array or tensor; units of ``edges``).
            edges: bin edges (bins + 1,).
            weights: optional θ_j -> event weights (n_j,).
            degree: per-bin polynomial degree.
        """
        if not isinstance(samples, Mapping) or not samples:
            raise TypeError("samples: expected a non-empty mapping theta -> values")
        e = as_float_array("edges", edges, 1)
        thetas, rows = [], []
        for t, v in samples.items():
            x = as_float_array(f"samples[{t}]", v, 1)
            w = None if weights is None else as_float_array(f"weights[{t}]", weights[t], 1)
            if w is not None and w.shape != x.shape:
                raise ValueError(f"weights[{t}]: expected shape {x.shape}, got {w.shape}")
            h = np.histogram(x, e, weights=w)[0].astype(float)
            if not h.sum() > 0:
                raise ValueError(f"samples[{t}]: no value inside [{e[0]}, {e[-1]}]")
            thetas.append(float(t))
            rows.append(h)
        return cls(e, thetas, np.array(rows), degree=degree)

    @property
    def range(self) -> tuple[float, float]:
        """(θ_min, θ_max) of the templates: the fit's prior range."""
        return float(self.thetas[0]), float(self.thetas[-1])

    def probabilities_at(self, theta) -> np.ndarray:
        """Interpolated bin probabilities, shape (*theta.shape, bins), rows summing to 1."""
        t = np.asarray(theta, dtype=np.float64) - self._centre
        p = np.zeros(t.shape + (self._coef.shape[1],))
        for c in self._coef:  # Horner
            p = p * t[..., None] + c
        p = np.maximum(p, 1e-12)
        return p / p.sum(-1, keepdims=True)

    def histogram(self, values) -> np.ndarray:
        """Counts of ``values`` (n,) in the template bins, shape (bins,)."""
        return np.histogram(as_float_array("values", values, 1), self.edges)[0].astype(float)

    def log_likelihood(self, counts, theta) -> np.ndarray:
        """Poisson binned log L (module docstring; constants dropped) at each θ.

        Args:
            counts: data histogram n_i, shape (bins,), ≥ 0.
            theta: θ values, shape (g,) (or a scalar).

        Returns:
            log L, shape (g,) (or a scalar).
        """
        n = as_float_array("counts", counts, 1)
        if n.size != self.edges.size - 1 or (n < 0).any():
            raise ValueError(f"counts: expected {self.edges.size - 1} non-negative counts, "
                             f"got shape {n.shape}")
        total = n.sum()
        nu = total * self.probabilities_at(theta)
        return (n * np.log(nu)).sum(-1) - nu.sum(-1)

    def fit(self, values=None, *, counts=None, points: int = 1501) -> TemplateFitResult:
        """Flat-prior posterior of θ on the template range for one data set.

        Args:
            values: the data's observable values, shape (n,); or
            counts: its histogram in the template bins, shape (bins,) (exactly one of
                the two).
            points: grid points on [θ_min, θ_max] (>= 101).

        Returns:
            :class:`TemplateFitResult`.
        """
        if (values is None) == (counts is None):
            raise ValueError("values, counts: expected exactly one of the two")
        if isinstance(points, bool) or not isinstance(points, int) or points < 101:
            raise ValueError(f"points: expected an integer >= 101, got {points!r}")
        n = self.histogram(values) if counts is None else as_float_array("counts", counts, 1)
        if not n.sum() > 0:
            raise ValueError("values: no value inside the template range "
                             f"[{self.edges[0]}, {self.edges[-1]}]")
        x = np.linspace(*self.range, points)
        ll = self.log_likelihood(n, x)
        post = np.exp(ll - ll.max())
        post /= np.trapezoid(post, x)
        mean = float(np.trapezoid(x * post, x))
        std = math.sqrt(float(np.trapezoid((x - mean) ** 2 * post, x)))
        cdf = np.concatenate([[0.0], np.cumsum(0.5 * (post[1:] + post[:-1]) * np.diff(x))])
        cdf /= cdf[-1]

        def central(q):
            return (float(np.interp(0.5 - q / 2, cdf, x)), float(np.interp(0.5 + q / 2, cdf, x)))

        k = int(np.clip(np.argmax(ll), 1, points - 2))
        curv = ll[k - 1] - 2 * ll[k] + ll[k + 1]
        step = 0.5 * (ll[k - 1] - ll[k + 1]) / curv if curv < 0 else 0.0
        mle = float(np.clip(x[k] + float(np.clip(step, -1, 1)) * (x[1] - x[0]), *self.range))
        return TemplateFitResult(mean=mean, std=std, ci68=central(0.6827),
                                 ci95=central(0.9545), mle=mle,
                                 n=int(n.sum()))

    def __repr__(self) -> str:
        return (f"TemplateFit(bins={self.edges.size - 1}, thetas={self.thetas.tolist()}, "
                f"degree={self.degree})")
