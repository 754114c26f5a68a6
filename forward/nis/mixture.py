r"""Proposals for importance sampling: a flow with a defensive component, optionally on VEGAS.

:class:`MixtureProposal` samples in the flow space :math:`u \in [0, 1]^d` from

.. math:: q_u(u) = (1 - \lambda)\, q_\text{flow}(u) + \lambda \cdot 1,

and maps :math:`u` through an optional fixed VEGAS grid :math:`x = V(u)`, so that
:math:`q(x) = q_u(u) / J_V(u)`. The defensive component is uniform in :math:`u`,
i.e. the VEGAS density in :math:`x` (uniform without a grid), and never vanishes,
so neither does :math:`q` wherever the integrand lives. The mixture log-density is
computed exactly with ``logaddexp``.

A *proposal* is any object with ``dims``, ``sample(n, *, generator) -> (x, log_q)``
and ``log_prob(x) -> log_q`` (``x`` of shape (n, d), ``log_q`` float64 of shape (n,));
:class:`forward.nis.VegasMap` is one too.
"""

from __future__ import annotations

import math
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from forward._validation import check_range
from forward.nis._evaluate import check_count, check_points
from forward.nis.flows import CubeFlow
from forward.nis.vegas import VegasMap

__all__ = ["ComponentSample", "MixtureProposal", "Proposal"]


@runtime_checkable
class Proposal(Protocol):
    """What :func:`forward.nis.integrate` and :class:`forward.nis.Trainer` need."""

    dims: int

    def sample(
        self, n: int, *, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def log_prob(self, x: torch.Tensor) -> torch.Tensor: ...


class ComponentSample(tuple):
    """``(x, log_q, log_q_flow, log_q_defensive, defensive)`` from
    :meth:`MixtureProposal.sample_components`; all densities are in ``x`` and float64,
    ``defensive`` (bool, shape (n,)) marks points drawn from the defensive component."""

    __slots__ = ()

    def __new__(cls, x, log_q, log_q_flow, log_q_defensive, defensive):
        return super().__new__(cls, (x, log_q, log_q_flow, log_q_defensive, defensive))

    x = property(lambda self: self[0])
    log_q = property(lambda self: self[1])
    log_q_flow = property(lambda self: self[2])
    log_q_defensive = property(lambda self: self[3])
    defensive = property(lambda self: self[4])


class MixtureProposal(nn.Module):
    """Defensive mixture of a cube flow and the uniform (or VEGAS) density.

    Args:
        flow: the flow on [0, 1]^d (trainable).
        lam: weight λ of the defensive component, 0 < λ <= 1.
        vegas: optional fixed VEGAS grid of the same dimension.
        compose: with a grid, True puts the flow on top of it (``x = V(u)``, the flow
            lives in the grid's ``u`` space); False keeps the flow on the plain cube and
            uses the grid only as the defensive density,
            ``q(x) = (1 - λ) q_flow(x) + λ q_VEGAS(x)`` (smooth flow density, no grid
            kinks in the weights).
        dtype: dtype of the returned points (float64 advised).
    """

    def __init__(
        self,
        flow: CubeFlow,
        lam: float = 0.05,
        vegas: VegasMap | None = None,
        *,
        compose: bool = True,
        dtype=torch.float64,
    ) -> None:
        super().__init__()
        if not isinstance(flow, CubeFlow):
            raise TypeError(f"flow: expected a CubeFlow, got {type(flow).__name__}")
        if vegas is not None:
            if not isinstance(vegas, VegasMap):
                raise TypeError(f"vegas: expected a VegasMap or None, got {type(vegas).__name__}")
            if vegas.dims != flow.dims:
                raise ValueError(
                    f"vegas: expected a grid with dims={flow.dims} like the flow, got {vegas.dims}"
                )
        self.flow = flow
        self.vegas = vegas
        self.compose = bool(compose)
        self.dims = flow.dims
        self.out_dtype = dtype
        self.lam = lam

    @property
    def lam(self) -> float:
        """Defensive weight λ."""
        return self._lam

    @lam.setter
    def lam(self, value: float) -> None:
        check_range("lam", float(value), 0.0, 1.0, low_open=True)
        self._lam = float(value)

    def _to_x(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Map u to x; returns x (out dtype) and log J_V (float64, 0 without a grid)."""
        u = u.to(self.out_dtype)
        if self.vegas is None or not self.compose:
            return u, torch.zeros(u.shape[0], dtype=torch.float64, device=u.device)
        x, log_jac = self.vegas(u)
        return x.to(self.out_dtype), log_jac.to(torch.float64)

    def _mix(self, log_q_flow: torch.Tensor, log_q_def: torch.Tensor) -> torch.Tensor:
        """Mixture log-density from the components' log-densities (float64)."""
        lq = log_q_flow.to(torch.float64)
        if self._lam == 1.0:
            return log_q_def
        return torch.logaddexp(lq + math.log1p(-self._lam), log_q_def + math.log(self._lam))

    def _log_q_def(self, x: torch.Tensor, log_jac: torch.Tensor) -> torch.Tensor:
        """Defensive log-density at x (log_jac: the composed grid's log-Jacobian at u)."""
        if self.vegas is None:
            return torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
        if self.compose:
            return -log_jac
        return self.vegas.log_prob(x).to(torch.float64)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact mixture log-density at ``x``.

        Args:
            x: points of [0, 1]^d, shape (n, d).

        Returns:
            ``log q(x)``, float64, shape (n,); differentiable in the flow's parameters.
        """
        u, log_jac = self._to_u(x)
        lqf = self.flow.log_prob(u).to(torch.float64) - log_jac
        return self._mix(lqf, self._log_q_def(x, log_jac))

    def log_prob_flow(self, x: torch.Tensor) -> torch.Tensor:
        """Log-density of the flow component alone (no defensive part) at ``x``.

        Training this density (``TrainingConfig(density="flow")``) makes the flow itself
        approximate the target, whatever the current defensive weight λ.

        Args:
            x: points of [0, 1]^d, shape (n, d).

        Returns:
            ``log q_flow(x)``, float64, shape (n,); differentiable in the flow's parameters.
        """
        u, log_jac = self._to_u(x)
        return self.flow.log_prob(u).to(torch.float64) - log_jac

    def _to_u(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Map x back to the flow space; returns u and log J_V (float64)."""
        check_points("x", x, self.dims)
        if self.vegas is None or not self.compose:
            return x, torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
        u, log_jac = self.vegas.inverse(x)
        return u, log_jac.to(torch.float64)

    @torch.no_grad()
    def sample_components(
        self, n: int, *, generator: torch.Generator | None = None
    ) -> ComponentSample:
        """Draw from the mixture and report each component's density.

        Args:
            n: number of points.
            generator: random generator on the flow's device; None uses torch's global one.

        Returns:
            A :class:`ComponentSample` ``(x, log_q, log_q_flow, log_q_defensive, defensive)``
            with ``x`` of shape (n, d) and the rest of shape (n,).
        """
        check_count("n", n)
        dev, dt = self.flow.device, self.flow.dtype
        z = torch.rand(n, self.dims, generator=generator, dtype=dt, device=dev)
        defensive = torch.rand(n, generator=generator, dtype=torch.float64, device=dev) < self._lam
        if self.vegas is not None and not self.compose:
            return self._sample_side_by_side(z, defensive)
        u = z.clone()
        log_qf = torch.empty(n, dtype=dt, device=dev)
        if bool((~defensive).any()):
            u_f, lq_f = self.flow.transform(z[~defensive])
            u[~defensive] = u_f
            log_qf[~defensive] = lq_f
        if bool(defensive.any()):
            log_qf[defensive] = self.flow.log_prob(z[defensive])
        x, log_jac = self._to_x(u)
        log_qf = log_qf.to(torch.float64) - log_jac
        log_qd = self._log_q_def(x, log_jac)
        return ComponentSample(x, self._mix(log_qf, log_qd), log_qf, log_qd, defensive)

    def _sample_side_by_side(self, z: torch.Tensor, defensive: torch.Tensor) -> ComponentSample:
        """Flow points from the flow, defensive points from the grid (``compose=False``)."""
        n = z.shape[0]
        x = torch.empty(n, self.dims, dtype=self.out_dtype, device=z.device)
        log_qf = torch.empty(n, dtype=torch.float64, device=z.device)
        log_qd = torch.empty(n, dtype=torch.float64, device=z.device)
        fl = ~defensive
        if bool(fl.any()):
            x_f, lq_f = self.flow.transform(z[fl])
            x_f = x_f.to(self.out_dtype)
            x[fl] = x_f
            log_qf[fl] = lq_f.to(torch.float64)
            log_qd[fl] = self.vegas.log_prob(x_f).to(torch.float64)
        if bool(defensive.any()):
            x_d, log_jac = self.vegas(z[defensive].to(self.vegas.edges.dtype))
            x_d = x_d.to(self.out_dtype)
            x[defensive] = x_d
            log_qd[defensive] = -log_jac.to(torch.float64)
            log_qf[defensive] = self.flow.log_prob(x_d).to(torch.float64)
        return ComponentSample(x, self._mix(log_qf, log_qd), log_qf, log_qd, defensive)

    def sample(
        self, n: int, *, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw points from the mixture.

        Args:
            n: number of points.
            generator: random generator on the flow's device; None uses torch's global one.

        Returns:
            ``(x, log_q)``: points, shape (n, d), and their float64 log-density, shape (n,).
        """
        s = self.sample_components(n, generator=generator)
        return s.x, s.log_q

    def get_extra_state(self) -> dict:
        return {"lam": self._lam, "compose": self.compose}

    def set_extra_state(self, state: dict) -> None:
        self.lam = state["lam"]
        self.compose = bool(state.get("compose", True))
