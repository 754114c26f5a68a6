r"""Normalising flows on the unit hypercube from rational-quadratic-spline couplings.

A :class:`CubeFlow` is a stack of coupling layers. Each layer keeps a subset
:math:`u_a` of the coordinates and moves the others, :math:`u_b`, by monotonic
rational-quadratic splines (Durkan et al. 2019, as in
``zuko.transforms.MonotonicRQSTransform``) whose knots come from a small network
(``zuko.nn.MLP``) of :math:`u_a` (and of an optional context, e.g. the parameters θ
of :mod:`forward.nis.conditional`). The splines here map :math:`[0, 1]` onto itself
with learnable slopes at both ends, and their inverse returns the log-Jacobian in the
same pass (sampling with densities costs one network call per layer). Every layer is a bijection of
:math:`[0, 1]^d`, so the flow density has exactly the cube as support:

.. math:: q(u) = \prod_{\text{layers}} \left|\det \frac{\partial z_{l+1}}{\partial z_l}\right|,
          \qquad z_0 = u,\quad z_L \sim \mathcal U[0, 1]^d .

The splits follow the bits of the coordinate index (layer pairs use bit ``b`` and
its complement), so every pair of coordinates is split at least once within
``2 ceil(log2 d)`` layers. The last linear layer of each network starts at zero,
so an untrained flow is the uniform density.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from zuko.nn import MLP

from forward.nis._evaluate import check_count, check_points

__all__ = ["CubeFlow", "SplineCoupling", "coupling_masks", "unit_rqs"]

# softplus(_D_SHIFT) = 1: a zero network output gives unit knot slopes (identity spline)
_D_SHIFT = math.log(math.e - 1.0)
# rows per block when sampling without gradient on the CPU (keeps the spline in cache)
_CPU_CHUNK = 8192


def unit_rqs(
    x: torch.Tensor,
    widths: torch.Tensor,
    heights: torch.Tensor,
    slopes: torch.Tensor,
    *,
    inverse: bool = False,
    min_width: float = 1e-3,
    min_slope: float = 1e-3,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Monotonic rational-quadratic spline of [0, 1] onto [0, 1], or its inverse.

    Args:
        x: inputs in [0, 1], shape (...,).
        widths: unconstrained bin widths, shape (..., K).
        heights: unconstrained bin heights, shape (..., K).
        slopes: unconstrained knot slopes, shape (..., K + 1) (both end points included).
        inverse: evaluate the inverse spline instead.
        min_width: smallest bin width and height.
        min_slope: smallest knot slope.

    Returns:
        ``(y, log_slope)``: outputs, shape (...,), and the log-derivative of the
        *forward* spline at the (forward) input, shape (...,).
    """
    wh = torch.stack([widths, heights], dim=-2)
    return _rqs_packed(x, wh, slopes, inverse, min_width, min_slope)


def _rqs_packed(
    x: torch.Tensor,
    wh: torch.Tensor,
    slopes: torch.Tensor,
    inverse: bool,
    min_width: float,
    min_slope: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`unit_rqs` with widths and heights packed as ``wh`` of shape (..., 2, K).

    One softmax and one cumulative sum serve both the bin search and the knots: the
    upper knot of bin j is ``min_width (j + 1) + scale C_j`` with ``C`` the cumulative
    softmax; only the source axis's inner knots are formed in full, the bin's own
    width, height and lower knots are gathered.
    """
    k = wh.shape[-1]
    scale = 1 - min_width * k
    sm = torch.softmax(wh, dim=-1)
    cum = torch.cumsum(sm, dim=-1)
    src = 1 if inverse else 0
    ramp = torch.arange(1, k, dtype=wh.dtype, device=wh.device) * min_width
    # bin index: number of inner upper knots <= x (K is small, a compare beats a search)
    knots = torch.add(ramp, cum[..., src, :-1], alpha=scale)
    i = (knots <= x.unsqueeze(-1)).sum(dim=-1, keepdim=True)
    i2 = i.unsqueeze(-2).expand(*i.shape[:-1], 2, 1)
    e_i = sm.gather(-1, i2).squeeze(-1)  # (..., 2): softmax of width and height at the bin
    c_i = cum.gather(-1, i2).squeeze(-1)
    wh_i = e_i * scale + min_width  # (..., 2): width, height
    lo = (c_i - e_i) * scale + i.to(wh.dtype) * min_width  # (..., 2): lower knots
    x0, y0 = lo[..., 0], lo[..., 1]
    wi, hi = wh_i[..., 0], wh_i[..., 1]
    d01 = min_slope + F.softplus(slopes.gather(-1, torch.cat([i, i + 1], dim=-1)) + _D_SHIFT)
    d0, d1 = d01[..., 0], d01[..., 1]
    s = hi / wi
    if inverse:
        dy = (x - y0).clamp(min=0.0)
        b2 = d0 + d1 - 2 * s
        a = hi * (s - d0) + dy * b2
        b = hi * d0 - dy * b2
        c = -s * dy
        xi = (2 * c / (-b - torch.sqrt((b * b - 4 * a * c).clamp(min=0.0)))).clamp(0.0, 1.0)
        out = x0 + xi * wi
    else:
        xi = ((x - x0) / wi).clamp(0.0, 1.0)
    t = xi * (1 - xi)
    den = s + (d0 + d1 - 2 * s) * t
    if not inverse:
        out = y0 + hi * (s * xi * xi + d0 * t) / den
    log_slope = torch.log(s * s * (d1 * xi * xi + 2 * s * t + d0 * (1 - xi) ** 2) / (den * den))
    return out.clamp(0.0, 1.0), log_slope


def coupling_masks(dims: int, layers: int) -> torch.Tensor:
    """Boolean masks of the kept coordinates, shape (layers, dims).

    Layer ``2k`` keeps the coordinates whose index has bit ``k mod nbits`` unset and
    layer ``2k + 1`` the complement, with ``nbits = ceil(log2 dims)``.
    """
    check_count("dims", dims, 2)
    check_count("layers", layers)
    nbits = max(1, math.ceil(math.log2(dims)))
    idx = torch.arange(dims)
    masks = []
    for layer in range(layers):
        bit = (layer // 2) % nbits
        keep = (idx >> bit) & 1 == 0
        masks.append(keep if layer % 2 == 0 else ~keep)
    return torch.stack(masks)


class SplineCoupling(nn.Module):
    """One coupling layer: splines on the moved coordinates, knots from a network.

    Args:
        mask: which coordinates are kept (conditioners), bool shape (d,); both the kept
            and the moved set must be non-empty.
        context: number of context features (0 for an unconditional flow).
        bins: spline bins K.
        hidden: hidden layer widths of the network.
        slope: minimum knot slope of the splines.
    """

    def __init__(
        self,
        mask: torch.Tensor,
        context: int = 0,
        bins: int = 16,
        hidden: tuple[int, ...] = (64, 64),
        slope: float = 1e-3,
    ) -> None:
        super().__init__()
        mask = torch.as_tensor(mask, dtype=torch.bool)
        n_a = int(mask.sum())
        n_b = mask.numel() - n_a
        if n_a == 0 or n_b == 0:
            raise ValueError(f"mask: expected both kept and moved coordinates, got {mask.tolist()}")
        self.register_buffer("idx_a", mask.nonzero().squeeze(-1))
        self.register_buffer("idx_b", (~mask).nonzero().squeeze(-1))
        self.bins = check_count("bins", bins, 2)
        self.slope = float(slope)
        self.context = context
        self.net = MLP(n_a + context, n_b * (3 * bins + 1), hidden_features=list(hidden))
        last = self.net[-1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def _params(self, u_a: torch.Tensor, c: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        """Packed widths/heights, shape (n, n_b, 2, K), and slopes, shape (n, n_b, K + 1)."""
        h = u_a if c is None else torch.cat([u_a, c.expand(u_a.shape[0], -1)], dim=-1)
        phi = self.net(h)
        n_b, k = self.idx_b.numel(), self.bins
        # output layout [widths and heights of every moved coordinate | their slopes]:
        # the spline's exp/max/cumsum then run on one block with unit inner stride
        wh = phi[:, : 2 * k * n_b].unflatten(-1, (n_b, 2, k))
        return wh, phi[:, 2 * k * n_b :].unflatten(-1, (n_b, k + 1))

    def forward(
        self, u: torch.Tensor, c: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Data -> base direction: ``(z, log|det dz/du|)``, shapes (n, d) and (n,)."""
        wh, d = self._params(u.index_select(1, self.idx_a), c)
        z_b, ladj = _rqs_packed(u.index_select(1, self.idx_b), wh, d, False, 1e-3, self.slope)
        return u.index_copy(1, self.idx_b, z_b), ladj.sum(dim=-1)

    def inverse(
        self, z: torch.Tensor, c: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Base -> data direction: ``(u, log|det dz/du|)`` with the forward log-Jacobian at u."""
        wh, d = self._params(z.index_select(1, self.idx_a), c)
        u_b, ladj = _rqs_packed(z.index_select(1, self.idx_b), wh, d, True, 1e-3, self.slope)
        return z.index_copy(1, self.idx_b, u_b), ladj.sum(dim=-1)


class CubeFlow(nn.Module):
    """A normalising flow with support exactly [0, 1]^dims and uniform base density.

    Args:
        dims: number of dimensions d >= 2.
        layers: number of coupling layers; default ``2 * max(2, ceil(log2 d))``.
        bins: spline bins per coordinate.
        hidden: hidden layer widths of each coupling network.
        context: number of context features (e.g. the θ of a conditional flow).
        slope: minimum spline slope.
        dtype: parameter dtype (float32 is faster, float64 more precise).
        device: parameter device.
    """

    def __init__(
        self,
        dims: int,
        *,
        layers: int | None = None,
        bins: int = 16,
        hidden: tuple[int, ...] = (64, 64),
        context: int = 0,
        slope: float = 1e-3,
        dtype=torch.float32,
        device=None,
    ) -> None:
        super().__init__()
        self.dims = check_count("dims", dims, 2)
        if layers is None:
            layers = 2 * max(2, math.ceil(math.log2(dims)))
        self.context = check_count("context", context, 0)
        self.layers = nn.ModuleList(
            SplineCoupling(m, context, bins, tuple(hidden), slope)
            for m in coupling_masks(dims, layers)
        )
        self.to(dtype=dtype, device=device)
        self._config = {
            "dims": self.dims, "layers": int(layers), "bins": int(bins),
            "hidden": [int(h) for h in hidden], "context": self.context, "slope": float(slope),
        }

    @property
    def config(self) -> dict:
        """Constructor arguments (``dtype`` as a name such as ``"float32"``): enough to
        rebuild an equal flow for :meth:`load_state_dict`."""
        return {**self._config, "dtype": str(self.dtype).removeprefix("torch.")}

    @property
    def dtype(self) -> torch.dtype:
        """Parameter dtype."""
        return next(self.parameters()).dtype

    @property
    def device(self) -> torch.device:
        """Parameter device."""
        return next(self.parameters()).device

    def _context(self, c: torch.Tensor | None, n: int) -> torch.Tensor | None:
        if self.context == 0:
            if c is not None:
                raise ValueError("context: this flow takes no context, got a tensor")
            return None
        if not isinstance(c, torch.Tensor):
            raise TypeError(
                f"context: expected a tensor of shape (1 or {n}, {self.context}), "
                f"got {type(c).__name__}"
            )
        if c.ndim != 2 or c.shape[1] != self.context or c.shape[0] not in (1, n):
            raise ValueError(
                f"context: expected shape (1 or {n}, {self.context}), got {tuple(c.shape)}"
            )
        return c.to(self.dtype)

    def _run(
        self, x: torch.Tensor, c: torch.Tensor | None, inverse: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Pass through every layer (reversed for ``inverse``); returns points and log q."""
        total = torch.zeros(x.shape[0], dtype=self.dtype, device=x.device)
        for layer in reversed(self.layers) if inverse else self.layers:
            x, ladj = layer.inverse(x, c) if inverse else layer(x, c)
            total = total + ladj
        return x, total

    def _chunked(
        self, x: torch.Tensor, c: torch.Tensor | None, inverse: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`_run` in row blocks of :data:`_CPU_CHUNK` when no gradient is recorded
        on the CPU (intermediates then stay in cache: ~2x faster sampling)."""
        n = x.shape[0]
        if torch.is_grad_enabled() or x.device.type != "cpu" or n <= 2 * _CPU_CHUNK:
            return self._run(x, c, inverse)
        out = torch.empty_like(x)
        total = torch.empty(n, dtype=self.dtype, device=x.device)
        for s in range(0, n, _CPU_CHUNK):
            e = min(n, s + _CPU_CHUNK)
            cc = c if c is None or c.shape[0] == 1 else c[s:e]
            out[s:e], total[s:e] = self._run(x[s:e], cc, inverse)
        return out, total

    def log_prob(self, u: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Log-density of points of the cube.

        Args:
            u: points of [0, 1]^d, shape (n, d) (cast to the flow's dtype).
            context: context features, shape (1 or n, context), or None.

        Returns:
            ``log q(u)``, shape (n,), in the flow's dtype; differentiable in the parameters.
        """
        check_points("u", u, self.dims)
        c = self._context(context, u.shape[0])
        return self._chunked(u.to(self.dtype), c, inverse=False)[1]

    def transform(
        self, z: torch.Tensor, context: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Map base points to the flow: ``(u, log q(u))``, shapes (n, d) and (n,).

        Args:
            z: points of the uniform base, shape (n, d).
            context: context features, shape (1 or n, context), or None.
        """
        check_points("z", z, self.dims)
        c = self._context(context, z.shape[0])
        return self._chunked(z.to(self.dtype), c, inverse=True)

    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        context: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw points from the flow (no gradient).

        Args:
            n: number of points.
            generator: random generator on the flow's device; None uses torch's global one.
            context: context features, shape (1 or n, context), or None.

        Returns:
            ``(u, log_q)``: points, shape (n, d), and their log-density, shape (n,).
        """
        check_count("n", n)
        z = torch.rand(n, self.dims, generator=generator, dtype=self.dtype, device=self.device)
        with torch.no_grad():
            return self.transform(z, context)
