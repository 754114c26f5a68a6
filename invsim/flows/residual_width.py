r"""A per-event width model of residuals, to standardise them before a flow.

A detector's resolution varies by orders of magnitude across (pT, η) (the card's muons:
σ_pT/pT from 1 % to 35 %, in steps at |η| = 0.5 and 1.5). A flow of the raw residuals
u = x_reco − x_hard then has to learn that scale as a function of the hard event, and
its errors grow with it. :class:`ResidualWidth` is a known scale s > 0 per residual
column, a function of a few features of the column's object (for leptons: log pT and
|η|), so that v = u / s is O(1) everywhere and what is left to learn is an O(1)
correction (or nothing, for Gaussian resolutions). The change of variables is exact:

.. math:: \log p_u(u \mid x) = \log p_v(u / s(x) - \delta \mid x) - \sum_j \log s_j(x).

The model of column j, with features f = (f_0, ..., f_{m-1}) and the binned feature
f_b (|η|),

.. math:: \log s_j = \operatorname{clamp}\bigl(a_j[\text{bin}(f_b)]
          + \beta_j \cdot \phi(f_{\neg b}),\ \ell^\text{lo}_j, \ell^\text{hi}_j\bigr),

a level per bin of f_b (detector regions have sharp edges in |η|) plus a polynomial
φ without constant term in the other features up to ``degree`` (smooth in log pT).
The bins start ``bin_width`` wide and adjacent bins whose levels agree within
``merge_z`` standard errors are merged, one pair at a time, so a uniform detector ends
with one bin (few coefficients, little noise) and a detector with regions keeps their
edges to within ``bin_width``. Everything is fitted by Gaussian maximum likelihood
(Newton's method); the shift δ is the mean of u / s. The clamp keeps the scale within
the fitted range (widened by one unit in log s) for events outside the training sample.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping

import torch

from forward._validation import as_tensor, check_finite

__all__ = ["ResidualWidth"]

#: a floor of |u − mean| in the starting least squares (log 0 would be −inf)
_TINY = 1e-30


def _monomials(c: torch.Tensor, degree: int) -> torch.Tensor:
    """c_i, c_i c_k, ... from degree 1 up to ``degree``, shape (n, p), for c (n, m)."""
    cols = []
    for deg in range(1, degree + 1):
        for idx in itertools.combinations_with_replacement(range(c.shape[1]), deg):
            t = c[:, idx[0]]
            for i in idx[1:]:
                t = t * c[:, i]
            cols.append(t)
    return torch.stack(cols, -1) if cols else c.new_zeros(c.shape[0], 0)


class ResidualWidth:
    """Per-column widths s(f) of residuals; see the module docstring.

    Args:
        edges: per column, the inner bin edges of the binned feature, increasing
            (a list of d sequences; k_j edges give k_j + 1 levels).
        levels: per column, the level a of every bin (a list of d sequences).
        coef: β, shape (p, d), p the number of monomials of degree 1 to ``degree`` of
            the m − 1 other features.
        low, high: clamp of log s per column, shape (d,) each, low <= high.
        degree: polynomial degree in the other features (>= 0).
        shift: δ per column, shape (d,) (default 0).
        bin_feature: index of the binned feature among the m features.
    """

    def __init__(self, edges, levels, coef, low, high, degree: int = 2, shift=None,
                 bin_feature: int = 1) -> None:
        _check_int("degree", degree, 0)
        _check_int("bin_feature", bin_feature, 0)
        self.degree, self.bin_feature = degree, bin_feature
        self.coef = as_tensor("coef", coef).to(torch.float64)
        if self.coef.ndim != 2:
            raise ValueError(f"coef: expected shape (p, d), got {tuple(self.coef.shape)}")
        d = self.coef.shape[1]
        self.low = as_tensor("low", low).to(torch.float64).flatten()
        self.high = as_tensor("high", high).to(torch.float64).flatten()
        self.shift = (torch.zeros(d, dtype=torch.float64) if shift is None else
                      as_tensor("shift", shift).to(torch.float64).flatten())
        if len(edges) != d or len(levels) != d:
            raise ValueError(f"edges, levels: expected {d} entries (one per column), got "
                             f"{len(edges)} and {len(levels)}")
        self.edges = [as_tensor("edges", e).to(torch.float64).flatten() for e in edges]
        self.levels = [as_tensor("levels", a).to(torch.float64).flatten() for a in levels]
        for j, (e, a) in enumerate(zip(self.edges, self.levels, strict=True)):
            if a.numel() != e.numel() + 1:
                raise ValueError(f"levels: column {j} has {e.numel()} edges, expected "
                                 f"{e.numel() + 1} levels, got {a.numel()}")
            if e.numel() > 1 and not bool((e[1:] > e[:-1]).all()):
                raise ValueError(f"edges: column {j} is not increasing: {e.tolist()}")
            check_finite("edges", e)
            check_finite("levels", a)
        for name in ("coef", "low", "high", "shift"):
            check_finite(name, getattr(self, name))
        if self.low.shape != (d,) or self.high.shape != (d,) or self.shift.shape != (d,):
            raise ValueError(f"low, high, shift: expected shape ({d},) each, got "
                             f"{tuple(self.low.shape)}, {tuple(self.high.shape)} and "
                             f"{tuple(self.shift.shape)}")
        if not bool((self.low <= self.high).all()):
            raise ValueError("low, high: expected low <= high in every column")

    @property
    def columns(self) -> int:
        """Number of residual columns d."""
        return self.coef.shape[1]

    @classmethod
    def fit(cls, u, features, *, degree: int = 2, groups=None, bin_feature: int = 1,
            bin_width: float = 0.1, merge_z: float = 4.0,
            iterations: int = 30) -> ResidualWidth:
        """Fit the width model on training residuals by maximum likelihood.

        Args:
            u: residuals, shape (n, d), finite.
            features: per-column features, shape (n, d, m), finite (m >= 1).
            degree: polynomial degree in the features other than the binned one (>= 0).
            groups: one label per column (d,); columns with one label share their model,
                fitted on their pooled residuals (e.g. the same quantity of several
                objects with one detector response: twice the data for two leptons).
                None: every column its own group.
            bin_feature: index of the binned feature (< m).
            bin_width: width of the starting bins of the binned feature (> 0).
            merge_z: adjacent bins whose levels differ by less than this many standard
                errors are merged (>= 0).
            iterations: Newton steps per fit (>= 1).

        Returns:
            The fitted :class:`ResidualWidth`.
        """
        _check_int("degree", degree, 0)
        _check_int("iterations", iterations, 1)
        _check_int("bin_feature", bin_feature, 0)
        for name, v, strict in (("bin_width", bin_width, True), ("merge_z", merge_z, False)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                    or v < 0 or (strict and v == 0):
                raise ValueError(f"{name}: expected a finite number {'>' if strict else '>='} "
                                 f"0, got {v!r}")
        u = as_tensor("u", u).detach().to(torch.float64)
        f = as_tensor("features", features).detach().to(device=u.device, dtype=torch.float64)
        if u.ndim != 2 or f.ndim != 3 or f.shape[:2] != u.shape or f.shape[2] < 1:
            raise ValueError(f"u, features: expected shapes (n, d) and (n, d, m >= 1), got "
                             f"{tuple(u.shape)} and {tuple(f.shape)}")
        if bin_feature >= f.shape[2]:
            raise ValueError(f"bin_feature: expected an index below {f.shape[2]}, got "
                             f"{bin_feature}")
        check_finite("u", u)
        check_finite("features", f)
        d = u.shape[1]
        groups = list(range(d)) if groups is None else [int(g) for g in groups]
        if len(groups) != d:
            raise ValueError(f"groups: expected {d} labels (one per column), got {len(groups)}")
        p = math.comb(f.shape[2] - 1 + degree, degree) - 1
        if u.shape[0] < 10 * (p + 1):
            raise ValueError(f"u: {u.shape[0]} rows, too few for {p + 1} coefficients per "
                             f"column (need >= {10 * (p + 1)})")
        edges: list = [None] * d
        levels: list = [None] * d
        coef = torch.zeros(p, d, dtype=torch.float64)
        shift = torch.zeros(d, dtype=torch.float64)
        others = [i for i in range(f.shape[2]) if i != bin_feature]
        for g in sorted(set(groups)):
            cols = [j for j in range(d) if groups[j] == g]
            ug = u[:, cols].T.reshape(-1)  # the group's columns stacked
            fg = f[:, cols].transpose(0, 1).reshape(-1, f.shape[2])
            phi = _monomials(fg[:, others], degree)
            e, a, beta = _fit_binned(ug - ug.mean(), fg[:, bin_feature].contiguous(), phi,
                                     bin_width,
                                     merge_z, iterations)
            log_s = _evaluate(fg[:, bin_feature], phi, e, a, beta)
            shift[cols] = float((ug * torch.exp(-log_s)).mean())
            for j in cols:
                edges[j], levels[j] = e.cpu(), a.cpu()
            coef[:, cols] = beta.cpu()[:, None]
        obj = cls(edges, levels, coef, torch.zeros(d), torch.zeros(d), degree, shift,
                  bin_feature)
        log_s = obj._unclamped(f)
        obj.low, obj.high = (log_s.min(0).values - 1.0).cpu(), (log_s.max(0).values + 1.0).cpu()
        return obj

    def _unclamped(self, f: torch.Tensor) -> torch.Tensor:
        others = [i for i in range(f.shape[2]) if i != self.bin_feature]
        out = [_evaluate(f[:, j, self.bin_feature], _monomials(f[:, j][:, others], self.degree),
                         self.edges[j].to(f.device), self.levels[j].to(f.device),
                         self.coef[:, j].to(f.device)) for j in range(self.columns)]
        return torch.stack(out, -1)

    def log_scale(self, features) -> torch.Tensor:
        """log s, shape (n, d), float64, for per-column features of shape (n, d, m)."""
        f = as_tensor("features", features).to(torch.float64)
        d, p = self.columns, self.coef.shape[0]
        if f.ndim != 3 or f.shape[1] != d or f.shape[2] <= self.bin_feature or \
                math.comb(f.shape[2] - 1 + self.degree, self.degree) - 1 != p:
            raise ValueError(f"features: expected shape (n, {d}, m) with {p} monomials of "
                             f"degree 1 to {self.degree} in m - 1 features, got "
                             f"{tuple(f.shape)}")
        log_s = self._unclamped(f)
        return torch.minimum(torch.maximum(log_s, self.low.to(f.device)), self.high.to(f.device))

    def to_dict(self) -> dict:
        """JSON-ready content (lists of floats)."""
        return {"degree": self.degree, "bin_feature": self.bin_feature,
                "edges": [e.tolist() for e in self.edges],
                "levels": [a.tolist() for a in self.levels], "coef": self.coef.tolist(),
                "low": self.low.tolist(), "high": self.high.tolist(),
                "shift": self.shift.tolist()}

    @classmethod
    def from_dict(cls, data: Mapping) -> ResidualWidth:
        """Inverse of :meth:`to_dict`."""
        missing = sorted({"degree", "bin_feature", "edges", "levels", "coef", "low", "high",
                          "shift"} - set(data))
        if missing:
            raise ValueError(f"residual width: missing {missing}")
        t = lambda x: torch.tensor(x, dtype=torch.float64)  # noqa: E731
        coef = t(data["coef"])
        if coef.ndim == 1:  # p = 0: a list of d empty lists is read as shape (0,)
            coef = coef.reshape(0, len(data["low"]))
        return cls([t(e) for e in data["edges"]], [t(a) for a in data["levels"]], coef,
                   t(data["low"]), t(data["high"]), int(data["degree"]), t(data["shift"]),
                   int(data["bin_feature"]))

    def __repr__(self) -> str:
        bins = [e.numel() + 1 for e in self.edges]
        return (f"ResidualWidth({self.columns} columns, bins {bins}, degree {self.degree})")


def _evaluate(fb, phi, edges, levels, beta) -> torch.Tensor:
    """log s (unclamped) of rows with binned feature fb (n,) and monomials phi (n, p)."""
    return levels[torch.bucketize(fb.contiguous(), edges, right=True)] + phi @ beta


def _fit_binned(dev, fb, phi, bin_width: float, merge_z: float, iterations: int):
    """(edges, levels, β) of the width of ``dev`` (mean-free residuals, (n,)), binned
    in ``fb`` and polynomial in ``phi`` (n, p), with adjacent bins merged while their
    levels agree within ``merge_z`` standard errors."""
    lo, hi = float(fb.min()), float(fb.max())
    k = max(1, math.ceil((hi - lo) / bin_width))
    edges = torch.tensor([lo + bin_width * i for i in range(1, k)], dtype=dev.dtype,
                         device=dev.device)
    # drop bins with too few rows to fit a level (merge them into the next one)
    while True:
        counts = torch.bincount(torch.bucketize(fb, edges, right=True),
                                minlength=edges.numel() + 1)
        small = (counts < 50).nonzero().flatten()
        if edges.numel() == 0 or small.numel() == 0:
            break
        i = int(small[0])
        edges = torch.cat([edges[:i], edges[i + 1:]]) if i < edges.numel() else edges[:-1]
    theta = None
    while True:
        idx = torch.bucketize(fb, edges, right=True)
        onehot = torch.nn.functional.one_hot(idx, edges.numel() + 1).to(dev.dtype)
        x = torch.cat([onehot, phi], -1)
        theta, cov = _newton(dev, x, iterations, theta)
        nb = edges.numel() + 1
        if nb == 1:
            break
        a, c = theta[:nb], cov[:nb, :nb]
        diff = a[1:] - a[:-1]
        var = c.diagonal()[1:] + c.diagonal()[:-1] - 2 * c.diagonal(1)
        z = diff.abs() / var.clamp(min=1e-300).sqrt()
        # merge every pair that agrees, the closest first, none twice in one round
        drop: set[int] = set()
        for i in torch.argsort(z).tolist():
            if float(z[i]) >= merge_z:
                break
            if i - 1 not in drop and i + 1 not in drop:
                drop.add(i)
        if not drop:
            break
        keep = [i for i in range(edges.numel()) if i not in drop]
        edges = edges[keep]
        # the merged bin starts at the left level
        theta = torch.cat([a[[0] + [i + 1 for i in keep]], theta[nb:]])
    return edges, theta[:nb], theta[nb:]


def _newton(dev: torch.Tensor, x: torch.Tensor, iterations: int, start=None):
    """θ maximising Σ_i log N(dev_i; 0, exp(x_i θ)) and its covariance (inverse
    Hessian), for dev (n,), design x (n, q); from ``start`` (q,) when given, else from
    the least squares of log|dev|."""
    q = x.shape[1]
    eye = torch.eye(q, dtype=x.dtype, device=x.device)
    normal = x.T @ x
    if start is None:
        target = torch.log(dev.abs().clamp(min=_TINY)) + 0.635  # E log|z| = -0.635
        theta = torch.linalg.solve(normal + 1e-9 * normal.diagonal().mean() * eye,
                                   x.T @ target)
    else:
        theta = start
    sq = dev * dev
    for _ in range(iterations):  # Newton on Σ log s + dev²/(2 s²)
        w = sq * torch.exp(-2 * (x @ theta))
        hess = (x * (2 * w)[:, None]).T @ x
        step = torch.linalg.solve(hess + 1e-9 * hess.diagonal().mean() * eye, x.T @ (1 - w))
        theta = theta - step
        if float(step.abs().max()) < 1e-8:
            break
    # at the optimum E[w] = 1: the Fisher information is 2 xᵀx
    return theta, torch.linalg.inv(2 * normal + 1e-9 * normal.diagonal().mean() * eye)


def _check_int(name: str, v, low: int) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise ValueError(f"{name}: expected an integer >= {low}, got {v!r}")
