r"""Invertible observable preprocessing with exact log-Jacobians.

Flows learn best on unbounded, roughly standardised features. Each map here is a
:class:`torch.distributions.Transform` from physical observables to features that
reports :math:`\log|\det \partial y/\partial x|`, so a density :math:`q_y` learned
over features gives the density over physical observables

.. math:: \log q_x(x) = \log q_y(y(x)) + \log\left|\det \frac{\partial y}{\partial x}\right| ,

and a flow over features composed with ``preprocessing.inv`` (a
:class:`torch.distributions.TransformedDistribution`) is a distribution over the
physical variables with the correct ``log_prob``.

Column maps act on feature vectors of shape (..., d) (event dimension 1) and change
only the columns they are given:

* :class:`LogShift`: :math:`y = \log(x - a)` for positive quantities with a threshold
  :math:`a` (pT above a cut, masses above a floor); support :math:`x > a`.
* :class:`PeriodicLogit`: an azimuth :math:`\varphi` is a point on the circle; it is read
  in :math:`(-\pi, \pi]` (any real angle is first wrapped there, so
  :math:`\varphi` and :math:`\varphi + 2\pi` give the same feature) and mapped by
  :math:`y = \log\frac{\pi + \varphi}{\pi - \varphi}` (the logit of
  :math:`(\varphi + \pi)/2\pi`), a bijection of the open interval onto
  :math:`\mathbb R` with :math:`dy/d\varphi = 2\pi / ((\pi+\varphi)(\pi-\varphi))`.
  A uniform azimuth becomes a logistic feature (light tails). The single point
  :math:`\varphi = \pi` (a set of measure zero) maps to :math:`+\infty` and is
  rejected by :meth:`Preprocessing.features`; the inverse returns angles in
  :math:`(-\pi, \pi)`.
* η, rapidities and other real observables pass through unchanged.
* :class:`Standardize`: :math:`y = (x - \mu)/\sigma` with :math:`\mu, \sigma` fitted on
  training data (:meth:`Preprocessing.fit`).

:class:`Preprocessing` composes such maps (and optionally a leading
:class:`~invsim.flows.momenta.MomentumFeatures` that turns four-momenta into
observables) into one transform with a single-pass :meth:`Preprocessing.call_and_ladj`,
serialisable with :meth:`Preprocessing.to_dict` / :func:`preprocessing_from_dict`.
Tensors held by the maps follow the inputs' device and dtype.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch.distributions import Transform, constraints

from forward._validation import as_tensor, check_choice, check_finite, check_floating

__all__ = [
    "OBSERVABLE_KINDS",
    "ColumnTransform",
    "LogShift",
    "PeriodicLogit",
    "Preprocessing",
    "Standardize",
    "observable_preprocessing",
    "preprocessing_from_dict",
    "require_preprocessing",
]

def require_preprocessing(name: str, obj, *, optional: bool = False) -> None:
    """Raise ``TypeError`` unless ``obj`` is a :class:`Preprocessing` (or None if optional)."""
    if optional and obj is None:
        return
    if not isinstance(obj, Preprocessing):
        expected = "a Preprocessing or None" if optional else "a Preprocessing"
        raise TypeError(f"{name}: expected {expected}, got {type(obj).__name__}")


#: kinds of flat observables understood by :func:`observable_preprocessing`
OBSERVABLE_KINDS = ("real", "log", "phi")

_FEATURES = constraints.independent(constraints.real, 1)


def _columns(name: str, columns: Sequence[int], dim: int) -> tuple[int, ...]:
    cols = tuple(int(c) for c in columns)
    if any(c < 0 or c >= dim for c in cols) or len(set(cols)) != len(cols):
        raise ValueError(f"{name}: expected distinct column indices in [0, {dim}), got {cols}")
    return cols


class ColumnTransform(Transform):
    """Base class: a bijection of feature vectors (..., dim) acting on some columns.

    Subclasses implement ``_forward_cols(x) -> (y, ladj)`` and ``_inverse_cols(y)``
    on the selected columns, shape (..., len(columns)), where ``ladj`` is the
    elementwise log-derivative, shape (..., len(columns)).

    Args:
        dim: number of features d.
        columns: indices of the columns the map changes; the others pass through.
    """

    domain = _FEATURES
    codomain = _FEATURES
    bijective = True

    def __init__(self, dim: int, columns: Sequence[int]):
        super().__init__(cache_size=0)
        if int(dim) < 1:
            raise ValueError(f"dim: expected a positive number of features, got {dim}")
        self.dim = int(dim)
        self.columns = _columns("columns", columns, self.dim)

    def _index(self, x: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(self.columns, dtype=torch.long, device=x.device)

    def _forward_cols(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _inverse_cols(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def call_and_ladj(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features and log|det J| in one pass: shapes (..., d) and (...)."""
        if not self.columns:
            return x, x.new_zeros(x.shape[:-1])
        idx = self._index(x)
        yc, ladj = self._forward_cols(x.index_select(-1, idx))
        y = x.index_copy(-1, idx, yc)
        return y, ladj.sum(-1)

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        return self.call_and_ladj(x)[0]

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        if not self.columns:
            return y
        idx = self._index(y)
        return y.index_copy(-1, idx, self._inverse_cols(y.index_select(-1, idx)))

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """log|det ∂y/∂x|, shape (...) for x of shape (..., d)."""
        return self.call_and_ladj(x)[1]

    def to_dict(self) -> dict:
        """Plain description (types, numbers, tensors) for :func:`preprocessing_from_dict`."""
        return {"type": type(self).__name__, "dim": self.dim, "columns": list(self.columns)}


class LogShift(ColumnTransform):
    """y = log(x - shift) on the given columns (pT above a threshold, masses above a floor).

    Args:
        dim: number of features d.
        columns: columns to transform.
        shifts: threshold a per column (same units as x, e.g. GeV), a number or a
            sequence of len(columns); the support is x > a.
    """

    def __init__(self, dim: int, columns: Sequence[int], shifts: float | Sequence[float] = 0.0):
        super().__init__(dim, columns)
        s = torch.as_tensor(shifts, dtype=torch.float64).flatten()
        if s.numel() == 1:
            s = s.expand(len(self.columns)).clone()
        if s.numel() != len(self.columns):
            raise ValueError(
                f"shifts: expected a number or {len(self.columns)} values (one per column), "
                f"got {s.numel()}"
            )
        check_finite("shifts", s)
        self.shifts = s

    def _forward_cols(self, x):
        y = torch.log(x - self.shifts.to(x))
        return y, -y

    def _inverse_cols(self, y):
        return torch.exp(y) + self.shifts.to(y)

    def to_dict(self) -> dict:
        return {**super().to_dict(), "shifts": self.shifts.clone()}


class PeriodicLogit(ColumnTransform):
    """Azimuths φ (radians, wrapped into (-π, π]) to log((π + φ)/(π - φ)) on the given columns.

    See the module docstring: exact bijection of the open interval (-π, π) onto the
    real line, log-derivative log 2π - log(π + φ) - log(π - φ).
    """

    def _forward_cols(self, x):
        phi = math.pi - torch.remainder(math.pi - x, 2 * math.pi)  # wrap into (-pi, pi]
        lo = torch.log(math.pi + phi)
        hi = torch.log(math.pi - phi)
        return lo - hi, math.log(2 * math.pi) - lo - hi

    def _inverse_cols(self, y):
        return math.pi * torch.tanh(0.5 * y)


class Standardize(ColumnTransform):
    """Affine y = (x - loc) / scale on every column, loc and scale fitted on data.

    Args:
        dim: number of features d.
        loc: shift, shape (d,); default: unfitted (call :meth:`fit`).
        scale: positive scale, shape (d,); default: unfitted.
    """

    def __init__(self, dim: int, loc=None, scale=None):
        super().__init__(dim, range(dim))
        self.loc = None
        self.scale = None
        if (loc is None) != (scale is None):
            raise ValueError("loc, scale: give both or neither")
        if loc is not None:
            self._set(as_tensor("loc", loc, dtype=torch.float64),
                      as_tensor("scale", scale, dtype=torch.float64))

    def _set(self, loc: torch.Tensor, scale: torch.Tensor) -> None:
        for name, t in (("loc", loc), ("scale", scale)):
            if t.shape != (self.dim,):
                raise ValueError(f"{name}: expected shape ({self.dim},), got {tuple(t.shape)}")
            check_finite(name, t)
        if not bool((scale > 0).all()):
            raise ValueError(
                f"scale: expected positive values, got {scale.tolist()} (a constant feature "
                "cannot be standardised; drop it or give loc/scale)"
            )
        self.loc = loc.detach().to("cpu", torch.float64)
        self.scale = scale.detach().to("cpu", torch.float64)

    @property
    def fitted(self) -> bool:
        """Whether loc and scale are set."""
        return self.loc is not None

    def fit(self, y: torch.Tensor) -> Standardize:
        """Set loc and scale to the mean and standard deviation of ``y``, shape (n, d)."""
        if y.ndim != 2 or y.shape[1] != self.dim or y.shape[0] < 2:
            raise ValueError(
                f"y: expected shape (n >= 2, {self.dim}) to fit the standardisation, "
                f"got {tuple(y.shape)}"
            )
        y = y.detach().to(torch.float64)
        self._set(y.mean(0), y.std(0))
        return self

    def _require(self) -> None:
        if not self.fitted:
            raise RuntimeError("Standardize is not fitted: call Preprocessing.fit(x) first")

    def _forward_cols(self, x):
        self._require()
        scale = self.scale.to(x)
        return (x - self.loc.to(x)) / scale, (-torch.log(scale)).expand_as(x)

    def _inverse_cols(self, y):
        self._require()
        return y * self.scale.to(y) + self.loc.to(y)

    def to_dict(self) -> dict:
        d = {"type": "Standardize", "dim": self.dim}
        if self.fitted:
            d.update(loc=self.loc.clone(), scale=self.scale.clone())
        return d


def _part_from_dict(d: dict) -> Transform:
    from invsim.flows.momenta import MomentumFeatures, ObjectSpec

    kind = d.get("type")
    if kind == "LogShift":
        return LogShift(d["dim"], d["columns"], d["shifts"])
    if kind == "PeriodicLogit":
        return PeriodicLogit(d["dim"], d["columns"])
    if kind == "Standardize":
        return Standardize(d["dim"], d.get("loc"), d.get("scale"))
    if kind == "MomentumFeatures":
        return MomentumFeatures([ObjectSpec(**o) for o in d["objects"]])
    raise ValueError(f"preprocessing: unknown part type {kind!r}")


class Preprocessing(Transform):
    """A composition of preprocessing maps: physical observables -> features.

    The first part may change the event shape (four-momenta (..., k, 4) -> (..., d));
    the others are column maps on (..., d).

    Args:
        parts: the maps, applied in order.

    Attributes:
        event_shape: shape of one physical event, e.g. (k, 4) or (d,).
        features: number of output features d.
    """

    bijective = True
    codomain = _FEATURES

    def __init__(self, parts: Sequence[Transform]):
        super().__init__(cache_size=0)
        parts = list(parts)
        if not parts:
            raise ValueError("parts: expected at least one transform")
        for i, p in enumerate(parts):
            if not hasattr(p, "call_and_ladj") or not hasattr(p, "to_dict"):
                raise TypeError(f"parts[{i}]: expected an invsim preprocessing map, got {p!r}")
            if i > 0 and not isinstance(p, ColumnTransform):
                raise TypeError(f"parts[{i}]: only the first part may change the event shape")
        self.parts = parts
        first = parts[0]
        self.event_shape = (first.dim,) if isinstance(first, ColumnTransform) else tuple(
            first.event_shape
        )
        d = first.dim if isinstance(first, ColumnTransform) else first.features
        for i, p in enumerate(parts[1:], 1):
            if p.dim != d:
                raise ValueError(f"parts[{i}]: expects {p.dim} features, gets {d}")
        self.features = d

    @property
    def domain(self):
        return constraints.independent(constraints.real, len(self.event_shape))

    def forward_shape(self, shape):
        n = len(self.event_shape)
        return tuple(shape[: len(shape) - n]) + (self.features,)

    def inverse_shape(self, shape):
        return tuple(shape[:-1]) + self.event_shape

    @property
    def fitted(self) -> bool:
        """Whether every :class:`Standardize` part is fitted."""
        return all(p.fitted for p in self.parts if isinstance(p, Standardize))

    def fit(self, x: torch.Tensor) -> Preprocessing:
        """Fit every :class:`Standardize` part on the data as it reaches that part.

        Args:
            x: training events, shape (n, *event_shape), physical units.

        Returns:
            ``self``.
        """
        y = self.check_events("x", x)
        for p in self.parts:
            if isinstance(p, Standardize):
                p.fit(y)
            y = p(y)
        check_finite("x (features)", y)
        return self

    def call_and_ladj(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features and log|det ∂y/∂x| in one pass.

        Args:
            x: physical events, shape (..., *event_shape).

        Returns:
            ``(y, ladj)`` of shapes (..., d) and (...).
        """
        total = 0.0
        for p in self.parts:
            x, ladj = p.call_and_ladj(x)
            total = total + ladj
        return x, total

    def _call(self, x):
        return self.call_and_ladj(x)[0]

    def _inverse(self, y):
        for p in reversed(self.parts):
            y = p.inv(y)
        return y

    def log_abs_det_jacobian(self, x, y):
        """log|det ∂y/∂x| to the documented measure, shape (...)."""
        return self.call_and_ladj(x)[1]

    def check_events(self, name: str, x) -> torch.Tensor:
        """Validate user events: a finite floating tensor of shape (n, *event_shape).

        Returns:
            ``x`` as a tensor.
        """
        x = as_tensor(name, x)
        check_floating(name, x)
        want = self.event_shape
        if x.ndim != 1 + len(want) or tuple(x.shape[1:]) != want:
            raise ValueError(
                f"{name}: expected shape (n, {', '.join(map(str, want))}), got {tuple(x.shape)}"
            )
        check_finite(name, x)
        return x

    def features_of(self, name: str, x) -> tuple[torch.Tensor, torch.Tensor]:
        """Checked :meth:`call_and_ladj`: raises if events fall outside the support.

        Args:
            name: argument name for messages.
            x: physical events, shape (n, *event_shape).

        Returns:
            ``(y, ladj)`` of shapes (n, d) and (n,).
        """
        x = self.check_events(name, x)
        y, ladj = self.call_and_ladj(x)
        bad = ~(torch.isfinite(y).all(-1) & torch.isfinite(ladj))
        if bool(bad.any()):
            i = int(bad.nonzero()[0, 0])
            raise ValueError(
                f"{name}: {int(bad.sum())} of {x.shape[0]} events lie outside the "
                f"preprocessing's support (e.g. pT or mass at/below its threshold, phi = pi); "
                f"first is event {i}: {x[i].tolist()}"
            )
        return y, ladj

    def to_dict(self) -> dict:
        """Plain description of the parts and their fitted state."""
        return {"type": "Preprocessing", "parts": [p.to_dict() for p in self.parts]}


def preprocessing_from_dict(d: dict) -> Preprocessing:
    """Rebuild a :class:`Preprocessing` from :meth:`Preprocessing.to_dict`."""
    if not isinstance(d, dict) or d.get("type") != "Preprocessing":
        raise ValueError(f"d: expected a Preprocessing description, got {type(d).__name__}")
    return Preprocessing([_part_from_dict(p) for p in d["parts"]])


def observable_preprocessing(
    kinds: Sequence[str],
    *,
    shifts: Sequence[float] | None = None,
    standardize: bool = True,
) -> Preprocessing:
    """Preprocessing of flat observables, one kind per column.

    Args:
        kinds: per column, ``"real"`` (η, y, ... passed through), ``"log"``
            (log(x - shift): pT, masses, energies) or ``"phi"`` (azimuth in radians).
        shifts: threshold per column for ``"log"`` columns (ignored elsewhere),
            length len(kinds); default 0.
        standardize: append a :class:`Standardize` (fit it with :meth:`Preprocessing.fit`).

    Returns:
        A :class:`Preprocessing` with event shape (len(kinds),).
    """
    kinds = list(kinds)
    if not kinds:
        raise ValueError("kinds: expected at least one observable kind")
    for i, k in enumerate(kinds):
        check_choice(f"kinds[{i}]", k, OBSERVABLE_KINDS)
    d = len(kinds)
    if shifts is None:
        shifts = [0.0] * d
    shifts = list(shifts)
    if len(shifts) != d:
        raise ValueError(f"shifts: expected {d} values (one per column), got {len(shifts)}")
    log_cols = [i for i, k in enumerate(kinds) if k == "log"]
    phi_cols = [i for i, k in enumerate(kinds) if k == "phi"]
    parts: list[Transform] = [
        LogShift(d, log_cols, [float(shifts[i]) for i in log_cols] or 0.0),
        PeriodicLogit(d, phi_cols),
    ]
    if standardize:
        parts.append(Standardize(d))
    return Preprocessing(parts)
