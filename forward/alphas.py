"""The running strong coupling α_s(Q²) from α_s(M_Z), at one or two loops, in torch.

The coupling obeys the truncated renormalisation-group equation

    dα_s / d ln Q² = -β₀ α_s² / (4π) - β₁ α_s³ / (4π)²,
    β₀ = 11 - 2 n_f / 3,   β₁ = 102 - 38 n_f / 3,

with ``β₁ = 0`` at one loop. The number of active flavours ``n_f`` steps by one at
each quark-mass threshold ``Q = m_q`` (3 below m_c, up to ``nf_max`` above m_t).

Threshold matching: α_s is *continuous* at every threshold (leading-order matching,
no decoupling constant). Written with a Λ parameter per flavour number, this is the
usual "Λ matching": each Λ_{n_f} is fixed so that the n_f and n_f ± 1 couplings agree
at Q = m_q, which is what Pythia 8's ``AlphaStrong`` does. At one loop the solution
is the closed form α(Q²) = α₀ / (1 + β₀ α₀ ln(Q²/Q₀²) / 4π) from the anchor (Q₀², α₀)
of the flavour region, identical to ``12π / ((33 - 2 n_f) ln(Q²/Λ²_{n_f}))`` with
Pythia's Λ values. At two loops we solve the equation *exactly* (not the usual
expansion in 1/ln(Q²/Λ²), which differs at the 10⁻³ level): integrating it gives the
implicit relation F(a) = F(a₀) + ln(Q²/Q₀²) with a = α_s / 4π and
F(a) = 1/(β₀ a) + (β₁/β₀²) ln(a / (β₀ + β₁ a)), solved by Newton's method.

The defaults (M_Z = 91.188 GeV, thresholds 1.5, 4.8, 171.0 GeV, up to 6 flavours) are
those of Pythia 8's hard-process coupling, so ``RunningAlphaS(0.118, order=1)`` gives
Pythia's ``SigmaProcess:alphaSorder = 1`` value. Results are differentiable in Q² and,
when ``alpha_s_mz`` is a tensor that requires grad, in α_s(M_Z) (the last Newton step
carries the implicit-function derivative).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from forward._validation import as_tensor, check_finite, check_floating, check_range

__all__ = ["RunningAlphaS", "beta_coefficients"]

_NEWTON_STEPS = 40


def beta_coefficients(nf: int) -> tuple[float, float]:
    """β-function coefficients (β₀, β₁) for ``nf`` active flavours.

    Normalised as dα_s/d ln Q² = -β₀ α_s²/(4π) - β₁ α_s³/(4π)².

    Args:
        nf: number of active quark flavours, 0 to 6.

    Returns:
        ``(11 - 2 nf / 3, 102 - 38 nf / 3)``.
    """
    if not isinstance(nf, int) or not 0 <= nf <= 6:
        raise ValueError(f"nf: expected an integer in [0, 6], got {nf!r}")
    return 11.0 - 2.0 * nf / 3.0, 102.0 - 38.0 * nf / 3.0


def _implicit_f(a: torch.Tensor, b0: float, b1: float) -> torch.Tensor:
    """F(a) = 1/(β₀ a) + (β₁/β₀²) ln(a/(β₀ + β₁ a)); dF/d ln Q² = 1 along a solution."""
    return 1.0 / (b0 * a) + (b1 / b0**2) * torch.log(a / (b0 + b1 * a))


def _run(a0: torch.Tensor, dlog: torch.Tensor, nf: int, order: int) -> torch.Tensor:
    """Evolve a = α_s/4π from a0 over ``dlog = ln(Q²/Q₀²)`` with fixed ``nf``.

    Args:
        a0: starting coupling a₀ = α_s(Q₀²)/4π, a tensor broadcastable with ``dlog``.
        dlog: ln(Q²/Q₀²), any shape.
        nf: active flavours.
        order: 1 or 2 loops.

    Returns:
        a(Q²), broadcast shape of the inputs.
    """
    b0, b1 = beta_coefficients(nf)
    one_loop = a0 / (1.0 + b0 * a0 * dlog)
    if order == 1:
        return one_loop
    target = _implicit_f(a0, b0, b1) + dlog
    with torch.no_grad():
        a = one_loop.detach().clone()
        tgt = target.detach()
        for _ in range(_NEWTON_STEPS):
            # Newton on G(a) = F(a) - target, G'(a) = -1 / (a² (β₀ + β₁ a)).
            a = a + (_implicit_f(a, b0, b1) - tgt) * a * a * (b0 + b1 * a)
    # One last step outside no_grad: at the root it carries the exact first derivative
    # -(∂G/∂θ)/G' with respect to everything ``target`` depends on.
    return a + (_implicit_f(a, b0, b1) - target) * a * a * (b0 + b1 * a)


class RunningAlphaS:
    """α_s(Q²) from α_s(M_Z) at one or two loops with quark-mass thresholds.

    Args:
        alpha_s_mz: α_s(M_Z²), a float or a 0-dim tensor (differentiable).
        order: loops in the β-function, 1 or 2.
        mz: Z mass in GeV, the reference scale.
        thresholds: (m_c, m_b, m_t) in GeV, increasing; n_f steps at Q = m_q.
        nf_max: largest number of active flavours, 3 to 6 (Pythia's default 6).
        q_min: below this scale in GeV the coupling is frozen at α_s(q_min²), keeping
            clear of the Landau pole. Must lie above Λ_QCD for three flavours.
        device: device of the returned tensors when inputs are Python numbers.
        dtype: floating dtype for Python-number inputs and the internal constants.

    Example:
        >>> als = RunningAlphaS(0.118, order=1)
        >>> als(torch.tensor([91.188**2, 172.5**2]))  # α_s at M_Z and m_t
    """

    def __init__(
        self,
        alpha_s_mz: float | torch.Tensor = 0.118,
        *,
        order: int = 2,
        mz: float = 91.188,
        thresholds: Sequence[float] = (1.5, 4.8, 171.0),
        nf_max: int = 6,
        q_min: float = 1.0,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        if order not in (1, 2):
            raise ValueError(f"order: expected 1 or 2 (loops), got {order!r}")
        if not isinstance(nf_max, int) or not 3 <= nf_max <= 6:
            raise ValueError(f"nf_max: expected an integer in [3, 6], got {nf_max!r}")
        if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise TypeError(f"dtype: expected a floating torch dtype, got {dtype!r}")
        masses = [float(m) for m in thresholds]
        if len(masses) != 3 or not all(math.isfinite(m) and m > 0 for m in masses):
            raise ValueError(
                f"thresholds: expected three positive masses (m_c, m_b, m_t) in GeV, got "
                f"{tuple(thresholds)!r}"
            )
        if not masses[0] < masses[1] < masses[2]:
            raise ValueError(f"thresholds: expected m_c < m_b < m_t, got {tuple(masses)}")
        if not (math.isfinite(mz) and mz > 0):
            raise ValueError(f"mz: expected a positive mass in GeV, got {mz!r}")
        if not (math.isfinite(q_min) and 0 < q_min < mz):
            raise ValueError(f"q_min: expected a scale in (0, mz={mz}) GeV, got {q_min!r}")
        alpha = as_tensor("alpha_s_mz", alpha_s_mz, dtype=dtype, device=device)
        if alpha.ndim != 0:
            raise ValueError(f"alpha_s_mz: expected a scalar, got shape {tuple(alpha.shape)}")
        check_floating("alpha_s_mz", alpha)
        check_range("alpha_s_mz", alpha.detach(), 0.0, 1.0, low_open=True, high_open=True)

        self.alpha_s_mz = alpha
        self.order = order
        self.mz = float(mz)
        self.thresholds = tuple(masses)
        self.nf_max = nf_max
        self.q_min = float(q_min)
        self.dtype = dtype
        self.device = alpha.device
        # Flavour regions: (nf, lower ln Q², upper ln Q²); the last is open above.
        edges = [2.0 * math.log(m) for m in masses[: nf_max - 3]]
        self._log_edges = edges
        self._nf = list(range(3, 3 + len(edges) + 1))
        self._log_qmin2 = 2.0 * math.log(self.q_min)
        if self._log_qmin2 >= (edges[0] if edges else math.inf):
            raise ValueError(f"q_min: expected a scale below m_c = {masses[0]} GeV, got {q_min}")
        self._anchors = self._region_anchors()
        # Catch a Landau pole above q_min (α_s(M_Z) too large for the chosen q_min).
        a_min = self._evaluate(self._scalar(self._log_qmin2)).detach()
        if not bool(torch.isfinite(a_min)) or float(a_min) <= 0 or float(a_min) > 4 * math.pi:
            raise ValueError(
                f"q_min: α_s has a Landau pole above q_min = {q_min} GeV for alpha_s_mz = "
                f"{float(alpha.detach())}; raise q_min"
            )

    def _scalar(self, value: float) -> torch.Tensor:
        return torch.tensor(value, dtype=self.dtype, device=self.device)

    def _region_anchors(self) -> list[tuple[float, torch.Tensor]]:
        """For each flavour region, a point (ln Q₀², a₀) on the coupling inside it."""
        log_mz2 = 2.0 * math.log(self.mz)
        ref = sum(1 for e in self._log_edges if log_mz2 > e)
        a_mz = self.alpha_s_mz / (4.0 * math.pi)
        anchors: list[tuple[float, torch.Tensor] | None] = [None] * len(self._nf)
        anchors[ref] = (log_mz2, a_mz)
        for r in range(ref + 1, len(self._nf)):  # upwards: start at the lower edge
            log0, a0 = anchors[r - 1]
            edge = self._log_edges[r - 1]
            anchors[r] = (edge, _run(a0, self._scalar(edge - log0), self._nf[r - 1], self.order))
        for r in range(ref - 1, -1, -1):  # downwards: start at the upper edge
            log0, a0 = anchors[r + 1]
            edge = self._log_edges[r]
            anchors[r] = (edge, _run(a0, self._scalar(edge - log0), self._nf[r + 1], self.order))
        return anchors  # type: ignore[return-value]

    def _evaluate(self, log_q2: torch.Tensor) -> torch.Tensor:
        """α_s at ln Q² (already validated), frozen below q_min."""
        log_q2 = torch.clamp(log_q2, min=self._log_qmin2)
        out = torch.zeros_like(log_q2)
        bounds = [-math.inf, *self._log_edges, math.inf]
        for r, nf in enumerate(self._nf):
            lo, hi = bounds[r], bounds[r + 1]
            # Clamp into the region so that unused branches stay finite (no NaN gradients).
            lq = torch.clamp(log_q2, min=max(lo, self._log_qmin2), max=hi)
            log0, a0 = self._anchors[r]
            a = _run(a0, lq - log0, nf, self.order)
            inside = (log_q2 > lo) & (log_q2 <= hi) if r > 0 else log_q2 <= hi
            out = torch.where(inside, a, out)
        return 4.0 * math.pi * out

    def nf(self, q2: torch.Tensor | float) -> torch.Tensor:
        """Number of active flavours at Q², shape of ``q2``, int64."""
        q2 = self._check_q2(q2)
        edges = torch.tensor([math.exp(e) for e in self._log_edges], dtype=q2.dtype)
        return 3 + (q2.unsqueeze(-1) > edges.to(q2.device)).sum(-1)

    def _check_q2(self, q2) -> torch.Tensor:
        t = as_tensor("q2", q2, dtype=None if isinstance(q2, torch.Tensor) else self.dtype,
                      device=None if isinstance(q2, torch.Tensor) else self.device)
        check_floating("q2", t)
        check_finite("q2", t.detach())
        check_range("q2", t.detach(), 0.0, math.inf, low_open=True)
        return t

    def alphasQ2(self, q2: torch.Tensor | float) -> torch.Tensor:  # noqa: N802 (LHAPDF name)
        """α_s at the squared scale.

        Args:
            q2: Q² in GeV², any shape, floating and positive.

        Returns:
            α_s(Q²), same shape, dtype and device as ``q2`` (the instance's for numbers).
        """
        t = self._check_q2(q2)
        return self._evaluate(torch.log(t)).to(t.dtype)

    def alphasQ(self, q: torch.Tensor | float) -> torch.Tensor:  # noqa: N802 (LHAPDF name)
        """α_s at the scale Q in GeV (any shape, positive); see :meth:`alphasQ2`."""
        t = as_tensor("q", q, dtype=None if isinstance(q, torch.Tensor) else self.dtype,
                      device=None if isinstance(q, torch.Tensor) else self.device)
        check_floating("q", t)
        check_finite("q", t.detach())
        check_range("q", t.detach(), 0.0, math.inf, low_open=True)
        return self.alphasQ2(t * t)

    __call__ = alphasQ2

    def __repr__(self) -> str:
        return (
            f"RunningAlphaS(alpha_s_mz={float(self.alpha_s_mz.detach()):.6g}, order={self.order}, "
            f"mz={self.mz}, thresholds={self.thresholds}, nf_max={self.nf_max})"
        )
