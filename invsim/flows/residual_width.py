r"""A smooth per-event width model of residuals, to standardise them before a flow.

A detector's resolution varies by orders of magnitude across (pT, η) (the card's muons:
σ_pT/pT from 1 % to 35 %). A flow of the raw residuals u = x_reco − x_hard then has to
learn that scale as a function of the hard event, and its errors grow with it.
:class:`ResidualWidth` is a known scale s(c) > 0 per residual column, a function of the
(preprocessed) hard event c, so that v = u / s(c) is O(1) everywhere and a flow of v
only learns an O(1) correction. The change of variables is exact:

.. math:: \log p_u(u \mid c) = \log p_v(u / s(c) \mid c) - \sum_j \log s_j(c).

The model is

.. math:: \log s_j(c) = \operatorname{clamp}\bigl(\beta_j \cdot \phi(c),
          \ell^\text{lo}_j, \ell^\text{hi}_j\bigr),

with φ(c) the monomials of c up to ``degree`` (1, c_i, c_i c_k, ...), β fitted by least
squares of log|u_j − median(u_j)| on φ(c) (a regression of the log absolute deviation,
whose mean is log σ up to a constant for any location-scale family), the constant then
set so that the robust width (1.4826 × the median absolute deviation) of every column of
v is 1. The clamp keeps the scale within the fitted range (widened by one unit in
log s) for hard events outside the training sample.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping

import torch

from forward._validation import as_tensor, check_finite

__all__ = ["ResidualWidth"]

#: a floor of |u − median| in the regression (log 0 would be −inf)
_TINY = 1e-30


def _monomials(c: torch.Tensor, degree: int) -> torch.Tensor:
    """1, c_i, c_i c_k, ... up to ``degree``, shape (n, p), for c of shape (n, m)."""
    cols = [torch.ones_like(c[:, 0])]
    for deg in range(1, degree + 1):
        for idx in itertools.combinations_with_replacement(range(c.shape[1]), deg):
            t = c[:, idx[0]]
            for i in idx[1:]:
                t = t * c[:, i]
            cols.append(t)
    return torch.stack(cols, -1)


class ResidualWidth:
    """s = exp(clamp(φ(f_j) β_j)), the width of every residual column; see the module.

    Column j of the residuals has its own features f_j (e.g. log pT and |η| of the
    object it belongs to), so a width is a function of a few variables, fitted with few
    coefficients (their noise is what remains of the model's error).

    Args:
        coef: β, shape (p, d) with p = C(m + degree, degree) the number of monomials of
            m features per column up to ``degree``.
        low, high: clamp of log s per column, shape (d,) each, low <= high.
        degree: polynomial degree in the features (>= 0).
        shift: location of the standardised residuals per column, shape (d,): the
            standardised residual is v = u / s − shift (default 0).
    """

    def __init__(self, coef, low, high, degree: int = 2, shift=None) -> None:
        _check_degree(degree)
        self.degree = degree
        self.coef = as_tensor("coef", coef).to(torch.float64)
        self.low = as_tensor("low", low).to(torch.float64).flatten()
        self.high = as_tensor("high", high).to(torch.float64).flatten()
        d = self.coef.shape[-1] if self.coef.ndim else 0
        self.shift = (torch.zeros(d, dtype=torch.float64) if shift is None else
                      as_tensor("shift", shift).to(torch.float64).flatten())
        for name in ("coef", "low", "high", "shift"):
            check_finite(name, getattr(self, name))
        if self.coef.ndim != 2:
            raise ValueError(f"coef: expected shape (p, d), got {tuple(self.coef.shape)}")
        d = self.coef.shape[1]
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
    def fit(cls, u, features, *, degree: int = 2, iterations: int = 20,
            groups=None) -> ResidualWidth:
        """Fit the width model on training residuals by maximum likelihood.

        Each column's log width is a polynomial of its features; its coefficients
        maximise the Gaussian likelihood of the column's residuals about their mean
        (Newton's method from the least-squares fit of log|u − mean(u)|, which is
        log σ up to a constant for any location-scale family); the shift is the mean
        of u / s. Columns of one group share their coefficients and shift, fitted on
        their pooled residuals (e.g. the same quantity of several objects with one
        detector response: twice the data for two leptons).

        Args:
            u: residuals, shape (n, d), finite.
            features: per-column features, shape (n, d, m), finite.
            degree: polynomial degree in the features (>= 0).
            iterations: Newton steps of the likelihood fit (>= 0).
            groups: one label per column (d,); None: every column its own group.

        Returns:
            The fitted :class:`ResidualWidth`.
        """
        _check_degree(degree)
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
            raise ValueError(f"iterations: expected an integer >= 0, got {iterations!r}")
        u = as_tensor("u", u).detach().to(torch.float64)
        f = as_tensor("features", features).detach().to(device=u.device, dtype=torch.float64)
        if u.ndim != 2 or f.ndim != 3 or f.shape[:2] != u.shape:
            raise ValueError(f"u, features: expected shapes (n, d) and (n, d, m), got "
                             f"{tuple(u.shape)} and {tuple(f.shape)}")
        check_finite("u", u)
        check_finite("features", f)
        p = math.comb(f.shape[2] + degree, degree)
        if u.shape[0] < 10 * p:
            raise ValueError(f"u: {u.shape[0]} rows, too few for {p} coefficients per column "
                             f"(need >= {10 * p})")
        d = u.shape[1]
        groups = list(range(d)) if groups is None else [int(g) for g in groups]
        if len(groups) != d:
            raise ValueError(f"groups: expected {d} labels (one per column), got {len(groups)}")
        coef = torch.zeros(p, d, dtype=torch.float64, device=u.device)
        shift = torch.zeros(d, dtype=torch.float64, device=u.device)
        for g in sorted(set(groups)):
            cols = [j for j in range(d) if groups[j] == g]
            ug = u[:, cols].T.reshape(-1)  # the group's columns stacked
            phi = _monomials(f[:, cols].transpose(0, 1).reshape(-1, f.shape[2]), degree)
            beta = _fit_log_width(ug - ug.mean(), phi, iterations)
            shift[cols] = (ug * torch.exp(-(phi @ beta))).mean()
            coef[:, cols] = beta[:, None]
        log_s = cls._poly(f, coef, degree)
        low, high = log_s.min(0).values - 1.0, log_s.max(0).values + 1.0
        return cls(coef.cpu(), low.cpu(), high.cpu(), degree, shift.cpu())

    @staticmethod
    def _poly(f: torch.Tensor, coef: torch.Tensor, degree: int) -> torch.Tensor:
        return torch.stack([_monomials(f[:, j], degree) @ coef[:, j].to(f.device)
                            for j in range(coef.shape[1])], -1)

    def log_scale(self, features) -> torch.Tensor:
        """log s, shape (n, d), float64, for per-column features of shape (n, d, m)."""
        f = as_tensor("features", features).to(torch.float64)
        d, p = self.columns, self.coef.shape[0]
        if f.ndim != 3 or f.shape[1] != d or math.comb(f.shape[2] + self.degree,
                                                        self.degree) != p:
            raise ValueError(f"features: expected shape (n, {d}, m) with C(m + {self.degree}, "
                             f"{self.degree}) = {p}, got {tuple(f.shape)}")
        log_s = self._poly(f, self.coef, self.degree)
        return torch.minimum(torch.maximum(log_s, self.low.to(f.device)), self.high.to(f.device))

    def to_dict(self) -> dict:
        """JSON-ready content (lists of floats)."""
        return {"degree": self.degree, "coef": self.coef.tolist(), "low": self.low.tolist(),
                "high": self.high.tolist(), "shift": self.shift.tolist()}

    @classmethod
    def from_dict(cls, data: Mapping) -> ResidualWidth:
        """Inverse of :meth:`to_dict`."""
        missing = sorted({"degree", "coef", "low", "high"} - set(data))
        if missing:
            raise ValueError(f"residual width: missing {missing}")
        return cls(torch.tensor(data["coef"], dtype=torch.float64),
                   torch.tensor(data["low"], dtype=torch.float64),
                   torch.tensor(data["high"], dtype=torch.float64), int(data["degree"]),
                   None if data.get("shift") is None else
                   torch.tensor(data["shift"], dtype=torch.float64))

    def __repr__(self) -> str:
        return (f"ResidualWidth({self.columns} columns, degree {self.degree}, "
                f"{self.coef.shape[0]} monomials each)")


def _fit_log_width(dev: torch.Tensor, phi: torch.Tensor, iterations: int) -> torch.Tensor:
    """β maximising Σ_i log N(dev_i; 0, exp(φ_i β)), shape (p,), for dev (n,), φ (n, p)."""
    p = phi.shape[1]
    eye = torch.eye(p, dtype=phi.dtype, device=phi.device)
    normal = phi.T @ phi
    target = torch.log(dev.abs().clamp(min=_TINY))
    beta = torch.linalg.solve(normal + 1e-9 * normal.diagonal().mean() * eye, phi.T @ target)
    beta[0] = beta[0] + 0.635  # E log|z| = -0.635 for a unit Gaussian z
    sq = dev * dev
    for _ in range(iterations):  # Newton on Σ log s + dev²/(2 s²)
        w = sq * torch.exp(-2 * (phi @ beta))
        hess = (phi * (2 * w)[:, None]).T @ phi
        step = torch.linalg.solve(hess + 1e-9 * hess.diagonal().mean() * eye,
                                  phi.T @ (1 - w))
        beta = beta - step
        if float(step.abs().max()) < 1e-10:
            break
    return beta


def _check_degree(degree) -> None:
    if isinstance(degree, bool) or not isinstance(degree, int) or degree < 0:
        raise ValueError(f"degree: expected an integer >= 0, got {degree!r}")
