r"""A VEGAS adaptive grid in torch: a separable, piecewise-linear map of the unit cube.

Each dimension :math:`j` has ``bins`` intervals with edges
:math:`0 = e_{j,0} < e_{j,1} < \dots < e_{j,N} = 1`. A uniform point :math:`u` is
mapped bin by bin, :math:`x_j = e_{j,i} + (N u_j - i)\,\Delta_{j,i}` with
:math:`i = \lfloor N u_j \rfloor`, so the map's Jacobian is
:math:`J(u) = \prod_j N \Delta_{j,i_j}` and the sampling density of :math:`x` is
:math:`1/J`.

Refinement (Lepage 1978, 2021). Per dimension and bin the grid accumulates the mean
:math:`d_{j,i}` of :math:`w^2 = (f J)^2` over the points whose :math:`x_j` fell into the
bin, and treats :math:`d_{j,i}` as the amount of "importance" carried by the old bin
(spread evenly over it). The new edges split the total amount into ``bins`` equal
shares. At the fixed point every :math:`d_{j,i}` is equal, which is where the bins
are narrow in proportion to the projected :math:`|f|`. Before rebinning the amounts
are smoothed with their neighbours (weights 1, 6, 1; 7, 1 at the ends), normalised
to fractions :math:`r` and compressed by the damping :math:`((1 - r)/\ln(1/r))^\alpha`,
which keeps the iteration stable.

Collapse guard. A bin's :math:`d_{j,i}` is an average of squared weights, and when
few points carry most of the weight (a peak in many dimensions seen by a handful of
points, or many bins for the calls) most bins hold no information: their amounts are
noise, a region the integrand populates can be emptied by one unlucky round and is
then never sampled again. The grid's resolution is therefore limited by the data:
with :math:`n_{\rm eff} = (\sum |w|)^2 / \sum w^2` the effective number of points of
the round, the amounts are first averaged over a window of :math:`2h + 1` bins with
:math:`h = \lceil c\,N / n_{\rm eff} \rceil` (``smoothing`` :math:`= c`), so that every
window holds about :math:`2c` effective points. Well-sampled rounds
(:math:`n_{\rm eff} \gg N`) are left untouched.

The map is usable on its own (:meth:`VegasMap.sample` is a proposal for
:func:`forward.nis.integrate`), as a warm start (its training samples can fill a
flow's buffer) and as a fixed first layer under a flow
(:class:`forward.nis.MixtureProposal` with ``vegas=...``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from forward._validation import check_range
from forward.nis._evaluate import Integrand, check_count, check_points, evaluate
from forward.nis.moments import RunningMoments

__all__ = ["VegasMap"]


class VegasMap(nn.Module):
    """Adaptive VEGAS grid on [0, 1]^dims, a bijection u -> x with exact inverse.

    Args:
        dims: number of dimensions d.
        bins: number of bins per dimension.
        smoothing: collapse guard ``c`` >= 0: before rebinning, the per-bin amounts are
            averaged over ``2h + 1`` bins with ``h = ceil(c * bins / n_eff)``, ``n_eff``
            the effective number of points of the round (see the module docstring);
            0 switches the guard off.
        dtype: floating dtype of the grid and of returned points (float64 advised).
        device: device of the grid.

    Attributes:
        edges: bin edges, shape (d, bins + 1), each row increasing from 0 to 1.
    """

    def __init__(
        self, dims: int, bins: int = 64, *, smoothing: float = 2.0, dtype=torch.float64,
        device=None,
    ) -> None:
        super().__init__()
        self.dims = check_count("dims", dims)
        self.bins = check_count("bins", bins)
        check_range("smoothing", float(smoothing), 0.0)
        self.smoothing = float(smoothing)
        if not dtype.is_floating_point:
            raise TypeError(f"dtype: expected a floating dtype, got {dtype}")
        edges = torch.linspace(0.0, 1.0, bins + 1, dtype=dtype, device=device)
        self.register_buffer("edges", edges.expand(dims, bins + 1).clone())
        self.register_buffer("_sum_w2", torch.zeros(dims, bins, dtype=torch.float64, device=device))
        self.register_buffer("_count", torch.zeros(dims, bins, dtype=torch.float64, device=device))
        # sum |w| and sum w^2 of the accumulated points (their effective number)
        self.register_buffer(
            "_moments", torch.zeros(2, dtype=torch.float64, device=device), persistent=False
        )

    # ------------------------------------------------------------------ the map
    def forward(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Map uniform points to the grid.

        Args:
            u: points of the unit cube, shape (n, d).

        Returns:
            ``(x, log_jac)``: mapped points, shape (n, d), in the grid's dtype, and the
            log-Jacobian ``log |det dx/du|``, shape (n,).
        """
        check_points("u", u, self.dims)
        u = u.to(self.edges.dtype)
        y = u * self.bins
        i = y.floor().clamp(0, self.bins - 1).long()
        widths = self.edges.diff(dim=1)  # (d, bins)
        e_lo = self.edges[torch.arange(self.dims, device=u.device), i]
        w = widths[torch.arange(self.dims, device=u.device), i]
        x = (e_lo + (y - i) * w).clamp(0.0, 1.0)
        log_jac = torch.log(w * self.bins).sum(dim=1)
        return x, log_jac

    def inverse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Invert the map.

        Args:
            x: points of the unit cube, shape (n, d).

        Returns:
            ``(u, log_jac)``: the preimages, shape (n, d), and the log-Jacobian of the
            *forward* map at ``u``, shape (n,), so the grid density is ``exp(-log_jac)``.
        """
        i, w = self._bin_of(x)
        x = x.to(self.edges.dtype)
        ar = torch.arange(self.dims, device=x.device)
        e_lo = self.edges[ar, i]
        u = ((i + (x - e_lo) / w) / self.bins).clamp(0.0, 1.0)
        return u, torch.log(w * self.bins).sum(dim=1)

    def _bin_of(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Bin index (n, d) of every coordinate and the bin widths (n, d)."""
        check_points("x", x, self.dims)
        xt = x.to(self.edges.dtype).T.contiguous()  # (d, n)
        i = torch.searchsorted(self.edges.contiguous(), xt, right=True) - 1
        i = i.clamp(0, self.bins - 1).T
        w = self.edges.diff(dim=1)[torch.arange(self.dims, device=x.device), i]
        return i, w

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Log of the grid's sampling density at ``x``, shape (n,) for ``x`` of shape (n, d)."""
        return -torch.log(self._bin_of(x)[1] * self.bins).sum(dim=1)

    @torch.no_grad()
    def sample(
        self, n: int, *, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw points from the grid density.

        Args:
            n: number of points.
            generator: random generator (on the grid's device); None uses torch's global one.

        Returns:
            ``(x, log_q)``: points, shape (n, d), and their log-density, shape (n,), float64.
        """
        check_count("n", n)
        u = torch.rand(
            n, self.dims, generator=generator, dtype=self.edges.dtype, device=self.edges.device
        )
        x, log_jac = self.forward(u)
        return x, (-log_jac).to(torch.float64)

    # ---------------------------------------------------------------- adaptation
    @torch.no_grad()
    def add_training_data(self, x: torch.Tensor, weights: torch.Tensor) -> None:
        """Accumulate ``weights**2`` per dimension and bin for the next :meth:`refine`.

        Args:
            x: points, shape (n, d).
            weights: importance weights ``f(x)/q(x)`` of those points, shape (n,)
                (signed allowed; only their squares enter).
        """
        i, _ = self._bin_of(x)
        if not isinstance(weights, torch.Tensor) or weights.shape != (x.shape[0],):
            got = tuple(weights.shape) if isinstance(weights, torch.Tensor) else type(weights)
            raise ValueError(f"weights: expected shape ({x.shape[0]},), got {got}")
        w = weights.to(torch.float64)
        bad = ~torch.isfinite(w)
        if bool(bad.any()):
            raise ValueError(
                f"weights: expected finite values, got {int(bad.sum())} NaN/inf "
                f"out of {w.numel()}"
            )
        w2 = w.square()
        offset = (torch.arange(self.dims, device=x.device) * self.bins)[None, :]
        flat = (i + offset).reshape(-1)
        self._sum_w2.view(-1).index_add_(0, flat, w2[:, None].expand(-1, self.dims).reshape(-1))
        self._count.view(-1).index_add_(0, flat, torch.ones_like(flat, dtype=torch.float64))
        self._moments += torch.stack([w.abs().sum(), w2.sum()])

    def _window(self) -> int:
        """Half-width ``h`` of the collapse guard's averaging window for the accumulated data."""
        s1, s2 = (float(v) for v in self._moments)
        if self.smoothing == 0 or s2 <= 0:
            return 0
        n_eff = s1 * s1 / s2
        h = math.ceil(self.smoothing * self.bins / max(n_eff, 1.0))
        # wider windows would merge separate peaks (bins between peaks are few)
        return min(h, self.bins // 16)

    @staticmethod
    def _box(a: torch.Tensor, h: int) -> torch.Tensor:
        """Moving average of each row of ``a`` (d, N) over 2h + 1 bins, reflected at the ends."""
        if h <= 0:
            return a
        p = torch.cat([a[:, :h].flip(1), a, a[:, -h:].flip(1)], dim=1)
        c = torch.cat([torch.zeros_like(p[:, :1]), p.cumsum(dim=1)], dim=1)
        return (c[:, 2 * h + 1:] - c[:, : -2 * h - 1]) / (2 * h + 1)

    @torch.no_grad()
    def refine(self, alpha: float = 0.5) -> None:
        """Move the bin edges using the accumulated data, then clear it.

        Args:
            alpha: damping exponent >= 0; 0 freezes the grid, larger values adapt faster.
        """
        check_range("alpha", float(alpha), 0.0)
        amount = torch.where(self._count > 0, self._sum_w2 / self._count.clamp(min=1), 0.0)
        h = min(self._window(), (self.bins - 1) // 2)
        self._sum_w2.zero_()
        self._count.zero_()
        self._moments.zero_()
        if alpha == 0 or self.bins == 1:
            return
        amount = self._box(amount, h)
        # neighbour smoothing, weights (1, 6, 1) / 8 inside and (7, 1) / 8 at the ends
        padded = torch.cat([amount[:, :1], amount, amount[:, -1:]], dim=1)
        smooth = (padded[:, :-2] + 6.0 * padded[:, 1:-1] + padded[:, 2:]) / 8.0
        total = smooth.sum(dim=1, keepdim=True)
        active = (total[:, 0] > 0) & torch.isfinite(total[:, 0])
        r = smooth / torch.where(total > 0, total, 1.0)
        tiny = torch.finfo(torch.float64).tiny
        r = r.clamp(min=tiny, max=1.0 - 1e-15)
        damped = ((1.0 - r) / torch.log(1.0 / r)) ** alpha
        cum = torch.cat([torch.zeros_like(damped[:, :1]), damped.cumsum(dim=1)], dim=1)
        k = torch.arange(1, self.bins, dtype=torch.float64, device=cum.device)
        targets = (k[None, :] / self.bins) * cum[:, -1:]  # (d, bins - 1)
        j = torch.searchsorted(cum.contiguous(), targets.contiguous(), right=True) - 1
        j = j.clamp(0, self.bins - 1)
        old = self.edges.to(torch.float64)
        widths = old.diff(dim=1)
        frac = (targets - cum.gather(1, j)) / damped.gather(1, j)
        inner = old.gather(1, j) + frac.clamp(0.0, 1.0) * widths.gather(1, j)
        new = torch.cat([old[:, :1], inner, old[:, -1:]], dim=1)
        new = torch.cummax(new, dim=1).values  # guard monotonicity against round-off
        self.edges.copy_(torch.where(active[:, None], new, old).to(self.edges.dtype))

    def adapt(
        self,
        f: Integrand,
        n_iter: int = 10,
        n_per_iter: int = 10_000,
        *,
        alpha: float = 0.5,
        generator: torch.Generator | None = None,
        callback: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None] | None = None,
        batch_size: int | None = None,
    ) -> list[tuple[float, float]]:
        """Train the grid on ``f``: ``n_iter`` rounds of sampling and refinement.

        Args:
            f: integrand, ``f(x)`` with ``x`` of shape (n, d) returning shape (n,).
            n_iter: number of refinement rounds.
            n_per_iter: integrand calls per round.
            alpha: damping exponent passed to :meth:`refine`.
            generator: random generator; None uses torch's global one.
            callback: called with ``(x, f(x), log_q)`` (shapes (n, d), (n,), (n,)) for
                every chunk of every round, e.g. a flow trainer's ``add_samples`` to
                reuse the calls.
            batch_size: points sampled and evaluated at once; a round of ``n_per_iter``
                calls runs in chunks of at most this many, so memory is bounded by
                ``batch_size`` and not by ``n_per_iter``. None: one chunk per round.

        Returns:
            Per round, the plain estimate and its standard error ``(value, error)``
            (biased combinations of them are the caller's choice; the final grid is
            what this method is for).
        """
        check_count("n_iter", n_iter)
        check_count("n_per_iter", n_per_iter, 2)
        chunk = n_per_iter if batch_size is None else check_count("batch_size", batch_size)
        out = []
        for _ in range(n_iter):
            moments = RunningMoments()
            for start in range(0, n_per_iter, chunk):
                x, log_q = self.sample(min(chunk, n_per_iter - start), generator=generator)
                fx = evaluate(f, x)
                w = fx * torch.exp(-log_q)
                moments.add(w)
                if callback is not None:
                    callback(x, fx, log_q)
                self.add_training_data(x, w)
            out.append((moments.mean, moments.error))
            self.refine(alpha)
        return out
