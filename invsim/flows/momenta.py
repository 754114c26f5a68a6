r"""Four-momenta of a fixed list of objects <-> flat observables, with the exact Jacobian.

Each object is described by an :class:`ObjectSpec`. An object of *fixed* mass
(leptons, jets treated as massless, on-shell tops) has three observables
:math:`(p_T, \eta, \varphi)`; an object of *free* mass (``mass=None``: a jet with its
mass, an off-shell resonance) has four, :math:`(p_T, \eta, \varphi, m)`.

**The measure.** Densities over momenta are taken with respect to the Cartesian
measure

.. math:: \prod_{\text{fixed}} d^3 p_i \prod_{\text{free}} d^4 p_i , \qquad
          d^3p = dp_x\, dp_y\, dp_z,\quad d^4 p = dE\, d^3 p ,

in GeV\ :sup:`3` (GeV\ :sup:`4`) per object. With :math:`p_x = p_T\cos\varphi`,
:math:`p_y = p_T \sin\varphi`, :math:`p_z = p_T\sinh\eta` and, at fixed
:math:`\vec p`, :math:`E = \sqrt{|\vec p|^2 + m^2}`:

.. math:: d^3 p = p_T^2 \cosh\eta \; dp_T\, d\eta\, d\varphi, \qquad
          d^4 p = p_T^2 \cosh\eta\, \frac{m}{E}\; dp_T\, d\eta\, d\varphi\, dm ,

so :class:`MomentumFeatures` reports
:math:`\log|\det\partial(\text{obs})/\partial p| = -\sum_i [2\log p_T + \log\cosh\eta]
- \sum_{\text{free}} [\log m - \log E]`. For a fixed-mass object the energy component of
the input is not used (it is implied by the mass). The Lorentz-invariant measure
:math:`d^3p / ((2\pi)^3\, 2E)` of ``forward.events`` follows with
:func:`log_invariant_factor`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch.distributions import Transform, constraints

from forward import kinematics as kin
from forward._validation import check_floating, check_last_dim
from invsim.flows.preprocessing import LogShift, PeriodicLogit, Preprocessing, Standardize

__all__ = ["MomentumFeatures", "ObjectSpec", "log_invariant_factor", "momentum_preprocessing"]


@dataclass(frozen=True)
class ObjectSpec:
    """One final-state object of a fixed-multiplicity event.

    Attributes:
        mass: fixed mass in GeV (>= 0), or None for a free mass (4th observable).
        pt_min: threshold in GeV for the log(pT - pt_min) feature; pT must exceed it.
        m_min: threshold in GeV for the log(m - m_min) feature of a free-mass object.
        name: label used in messages and feature names.
    """

    mass: float | None = 0.0
    pt_min: float = 0.0
    m_min: float = 0.0
    name: str = ""

    def __post_init__(self) -> None:
        if self.mass is not None and not (math.isfinite(self.mass) and self.mass >= 0):
            raise ValueError(f"mass: expected a finite mass >= 0 in GeV or None, got {self.mass}")
        if not (math.isfinite(self.pt_min) and self.pt_min >= 0):
            raise ValueError(f"pt_min: expected a finite threshold >= 0 GeV, got {self.pt_min}")
        if not (math.isfinite(self.m_min) and self.m_min >= 0):
            raise ValueError(f"m_min: expected a finite threshold >= 0 GeV, got {self.m_min}")

    @property
    def n_features(self) -> int:
        """3 for a fixed mass (pT, η, φ), 4 for a free mass (pT, η, φ, m)."""
        return 3 if self.mass is not None else 4


def _specs(objects) -> tuple[ObjectSpec, ...]:
    objs = tuple(objects)
    if not objs or not all(isinstance(o, ObjectSpec) for o in objs):
        raise TypeError(f"objects: expected a non-empty sequence of ObjectSpec, got {objects!r}")
    return objs


def _log_cosh(eta: torch.Tensor) -> torch.Tensor:
    a = eta.abs()
    return a + torch.log1p(torch.exp(-2 * a)) - math.log(2.0)


class MomentumFeatures(Transform):
    """Four-momenta (..., k, 4) as (E, px, py, pz) in GeV -> observables (..., d).

    Per object, in order: pT [GeV], η, φ [rad], and m [GeV] for free-mass objects.
    ``log_abs_det_jacobian`` is taken to the measure of the module docstring.

    Args:
        objects: one :class:`ObjectSpec` per object, k = len(objects).
    """

    domain = constraints.independent(constraints.real, 2)
    codomain = constraints.independent(constraints.real, 1)
    bijective = True

    def __init__(self, objects: Sequence[ObjectSpec]):
        super().__init__(cache_size=0)
        self.objects = _specs(objects)
        self.event_shape = (len(self.objects), 4)
        starts = [0]
        for o in self.objects:
            starts.append(starts[-1] + o.n_features)
        self.starts = tuple(starts[:-1])
        self.features = starts[-1]

    @property
    def free(self) -> list[int]:
        """Indices of the free-mass objects."""
        return [i for i, o in enumerate(self.objects) if o.mass is None]

    @property
    def pt_columns(self) -> list[int]:
        """Feature columns holding pT."""
        return [s for s in self.starts]

    @property
    def phi_columns(self) -> list[int]:
        """Feature columns holding φ."""
        return [s + 2 for s in self.starts]

    @property
    def mass_columns(self) -> list[int]:
        """Feature columns holding the mass of free-mass objects."""
        return [self.starts[i] + 3 for i in self.free]

    def feature_names(self) -> list[str]:
        """Names like ``"l1_pt"`` for every feature column."""
        names = []
        for i, o in enumerate(self.objects):
            tag = o.name or f"obj{i}"
            names += [f"{tag}_{v}" for v in ("pt", "eta", "phi", "m")[: o.n_features]]
        return names

    def forward_shape(self, shape):
        return tuple(shape[:-2]) + (self.features,)

    def inverse_shape(self, shape):
        return tuple(shape[:-1]) + self.event_shape

    def call_and_ladj(self, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Observables and log|det ∂obs/∂p|.

        Args:
            p: momenta, shape (..., k, 4) as (E, px, py, pz) in GeV.

        Returns:
            ``(obs, ladj)`` of shapes (..., d) and (...).
        """
        check_floating("p", p)
        check_last_dim("p", p, 4, "as (E, px, py, pz)")
        if p.ndim < 2 or p.shape[-2] != len(self.objects):
            raise ValueError(
                f"p: expected shape (..., {len(self.objects)}, 4), got {tuple(p.shape)}"
            )
        pt, eta, phi = kin.pt(p), kin.pseudorapidity(p), kin.phi(p)
        ladj = -(2 * torch.log(pt) + _log_cosh(eta)).sum(-1)
        cols = []
        for i, o in enumerate(self.objects):
            cols += [pt[..., i], eta[..., i], phi[..., i]]
            if o.mass is None:
                m = kin.mass(p[..., i, :])
                cols.append(m)
                ladj = ladj - torch.log(m) + torch.log(p[..., i, 0])
        return torch.stack(cols, dim=-1), ladj

    def _call(self, p):
        return self.call_and_ladj(p)[0]

    def _inverse(self, y):
        vecs = []
        for o, s in zip(self.objects, self.starts, strict=True):
            m = y[..., s + 3] if o.mass is None else torch.full_like(y[..., s], o.mass)
            vecs.append(kin.from_pt_eta_phi_m(y[..., s], y[..., s + 1], y[..., s + 2], m))
        return torch.stack(vecs, dim=-2)

    def log_abs_det_jacobian(self, x, y):
        """log|det ∂obs/∂p| to the documented measure, shape (...)."""
        return self.call_and_ladj(x)[1]

    def to_dict(self) -> dict:
        """Plain description for :func:`invsim.flows.preprocessing_from_dict`."""
        return {"type": "MomentumFeatures", "objects": [asdict(o) for o in self.objects]}


def log_invariant_factor(p: torch.Tensor, objects: Sequence[ObjectSpec]) -> torch.Tensor:
    r"""log of :math:`\prod_{\text{fixed}} (2\pi)^3\, 2E_i`, the ratio of measures
    :math:`d^3p \,/\, [d^3p/((2\pi)^3 2E)]`.

    A density over momenta w.r.t. the Cartesian measure becomes one w.r.t. the
    Lorentz-invariant measure :math:`\prod d^3p_i/((2\pi)^3 2E_i)` of ``forward.events``
    by adding this. Free-mass objects contribute nothing (:math:`d^4p` is invariant).

    Args:
        p: momenta, shape (..., k, 4) as (E, px, py, pz) in GeV.
        objects: the k object specs.

    Returns:
        Tensor of shape (...).
    """
    objs = _specs(objects)
    check_floating("p", p)
    if p.ndim < 2 or tuple(p.shape[-2:]) != (len(objs), 4):
        raise ValueError(f"p: expected shape (..., {len(objs)}, 4), got {tuple(p.shape)}")
    fixed = [i for i, o in enumerate(objs) if o.mass is not None]
    e = torch.sqrt(
        (p[..., fixed, 1:] ** 2).sum(-1)
        + torch.tensor([objs[i].mass for i in fixed], dtype=p.dtype, device=p.device) ** 2
    )
    return (3 * math.log(2 * math.pi) + torch.log(2 * e)).sum(-1)


def momentum_preprocessing(
    objects: Sequence[ObjectSpec], *, standardize: bool = True
) -> Preprocessing:
    """Four-momenta -> standardised flow features.

    The chain is :class:`MomentumFeatures`, then log(pT - pt_min) and
    log(m - m_min), then :class:`~invsim.flows.preprocessing.PeriodicLogit` on φ, η
    passed through, then an optional :class:`~invsim.flows.preprocessing.Standardize`
    (fit it with :meth:`Preprocessing.fit`).

    Args:
        objects: one :class:`ObjectSpec` per object.
        standardize: append the fitted affine standardisation.

    Returns:
        A :class:`Preprocessing` with event shape (k, 4) and d = Σ (3 or 4) features.
    """
    mf = MomentumFeatures(objects)
    d = mf.features
    free = mf.free
    log_cols = mf.pt_columns + mf.mass_columns
    shifts = [o.pt_min for o in mf.objects] + [mf.objects[i].m_min for i in free]
    parts: list[Transform] = [mf, LogShift(d, log_cols, shifts), PeriodicLogit(d, mf.phi_columns)]
    if standardize:
        parts.append(Standardize(d))
    return Preprocessing(parts)
