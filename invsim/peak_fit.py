r"""Unbinned likelihood fit of a resonance peak: location of a Voigt line on a flat background.

Used to extract a mass (e.g. the top mass from unfolded m(bℓν), see
:mod:`invsim.unfold_prior`) from a sample of values in a window [lo, hi]:

.. math:: f(m) = (1 - b)\, \frac{V(m - \mu; \sigma, \gamma)}{\int_{lo}^{hi} V}
          + \frac{b}{hi - lo},

with V the Voigt profile (a Breit–Wigner of half width γ convolved with a Gaussian of
width σ; ``scipy.special.voigt_profile``), μ the peak location, σ ≥ 0 and the background
fraction b ∈ [0, 1) free, and γ fixed (the known physical half width, e.g. Γ_t/2; 0 gives
a Gaussian peak). The Gaussian part absorbs any resolution left in the sample (an
unfolding's imperfection), the flat part the tails; μ stays the pole location.

**Errors.** :attr:`PeakFit.error` is the analytic error from the inverse Hessian of the
negative log-likelihood. It is valid for *independent* values (e.g. true hard events);
for unfolded samples (several per reco event, all depending on the same data) use a
bootstrap over the reco events instead (:func:`invsim.unfold_prior.bootstrap_unfolded`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

from forward._validation import as_float_array

__all__ = ["PeakFit", "fit_peak"]

_GRID = 1001  # points of the normalisation integral on the window


@dataclass(frozen=True)
class PeakFit:
    """Result of :func:`fit_peak`.

    Attributes:
        location: fitted peak location μ (units of the values, e.g. GeV).
        error: its analytic 68 % error (inverse Hessian; independent values only).
        sigma: fitted Gaussian width σ (≥ 0).
        gamma: the fixed Breit–Wigner half width γ.
        background: fitted flat-background fraction b in [0, 1).
        n: number of values inside the window that were fitted.
        nll: negative log-likelihood at the minimum.
    """

    location: float
    error: float
    sigma: float
    gamma: float
    background: float
    n: int
    nll: float


def _window(window) -> tuple[float, float]:
    ok = isinstance(window, (tuple, list)) and len(window) == 2
    if ok:
        lo, hi = (float(w) for w in window)
        ok = math.isfinite(lo) and math.isfinite(hi) and lo < hi
    if not ok:
        raise ValueError(f"window: expected (lo, hi) with finite lo < hi, got {window!r}")
    return lo, hi


def _location_error(h: np.ndarray) -> float:
    """√(H⁻¹)₀₀, dropping nuisance parameters the likelihood does not constrain (a Gaussian
    width σ → 0 on an exact Breit–Wigner sample, or no background): their Hessian rows
    vanish, and the error is then that of the remaining parameters."""
    for keep in ([0, 1, 2], [0, 2], [0, 1], [0]):
        sub = h[np.ix_(keep, keep)]
        if not np.isfinite(sub).all():
            continue
        try:
            var = float(np.linalg.inv(sub)[0, 0])
        except np.linalg.LinAlgError:
            continue
        if var > 0 and np.all(np.linalg.eigvalsh(sub) > 1e-9 * abs(sub).max()):
            return math.sqrt(var)
    return math.nan


def fit_peak(values, window, *, gamma: float = 0.0, min_values: int = 50) -> PeakFit:
    """Maximum-likelihood fit of a Voigt peak on a flat background (module docstring).

    Args:
        values: the sample, shape (n,) (tensor or array; e.g. masses in GeV); only the
            values inside ``window`` enter the fit.
        window: (lo, hi), the fit range.
        gamma: the fixed Breit–Wigner half width γ (≥ 0; e.g. Γ_t/2 for a top mass).
        min_values: least number of values inside the window (>= 10).

    Returns:
        :class:`PeakFit`.

    Raises:
        ValueError: bad shapes, non-finite values, a bad window or γ, or fewer than
            ``min_values`` values in the window.
    """
    v = as_float_array("values", values, 1)
    lo, hi = _window(window)
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not (
            math.isfinite(gamma) and gamma >= 0):
        raise ValueError(f"gamma: expected a finite number >= 0, got {gamma!r}")
    if isinstance(min_values, bool) or not isinstance(min_values, int) or min_values < 10:
        raise ValueError(f"min_values: expected an integer >= 10, got {min_values!r}")
    x = v[(v >= lo) & (v <= hi)]
    if x.size < min_values:
        raise ValueError(f"values: {x.size} of {v.size} lie in the window [{lo}, {hi}], "
                         f"expected at least {min_values}")
    grid = np.linspace(lo, hi, _GRID)
    width = hi - lo
    med = float(np.median(x))
    iqr = float(np.subtract(*np.percentile(x, [75, 25])))

    def nll(p: np.ndarray) -> float:
        mu, log_sigma, logit_b = p
        sigma = math.exp(log_sigma)
        b = special.expit(logit_b)
        norm = np.trapezoid(special.voigt_profile(grid - mu, sigma, gamma), grid)
        if not norm > 0:
            return 1e300
        f = (1 - b) * special.voigt_profile(x - mu, sigma, gamma) / norm + b / width
        return float(-np.log(np.maximum(f, 1e-300)).sum())

    start = np.array([med, math.log(max(iqr / 1.35, 1e-3 * width)), -2.0])
    res = optimize.minimize(nll, start, method="Powell", options={"xtol": 1e-6, "ftol": 1e-9})
    p = res.x
    # numerical Hessian (central differences) for the analytic error
    steps = np.array([1e-3 * max(math.exp(p[1]) + gamma, 1e-6), 1e-3, 1e-3])
    h = np.zeros((3, 3))
    f0 = nll(p)
    for i in range(3):
        for j in range(i, 3):
            ei, ej = np.eye(3)[i] * steps[i], np.eye(3)[j] * steps[j]
            if i == j:
                h[i, i] = (nll(p + ei) - 2 * f0 + nll(p - ei)) / steps[i] ** 2
            else:
                h[i, j] = h[j, i] = (nll(p + ei + ej) - nll(p + ei - ej) - nll(p - ei + ej)
                                     + nll(p - ei - ej)) / (4 * steps[i] * steps[j])
    err = _location_error(h)
    return PeakFit(location=float(p[0]), error=err, sigma=math.exp(p[1]), gamma=float(gamma),
                   background=float(special.expit(p[2])), n=int(x.size), nll=float(f0))
