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
# bytes of one coupling network's output per block when evaluating without gradient on
# the CPU: blocks whose intermediates stay in the core's cache are ~2x faster (2-core
# AMD EPYC, 4 dims: 2.7e5/s in blocks of 4096 rows, 1.3e5/s in blocks of 8192)
_CPU_BLOCK_BYTES = 2_000_000


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

    The forward direction runs as one autograd node (:class:`_ForwardRQS`, analytic
    backward); the inverse direction, used for sampling, is differentiable through
    its operations.
    """
    if not inverse:
        return _ForwardRQS.apply(x, wh, slopes, min_width, min_slope)
    _, i, _, _, _, x0, y0, wi, hi, d0, d1 = _bin(x, wh, slopes, 1, min_width, min_slope)
    s = hi / wi
    dy = (x - y0).clamp(min=0.0)
    b2 = d0 + d1 - 2 * s
    a = hi * (s - d0) + dy * b2
    b = hi * d0 - dy * b2
    c = -s * dy
    xi = (2 * c / (-b - torch.sqrt((b * b - 4 * a * c).clamp(min=0.0)))).clamp(0.0, 1.0)
    log_slope = _rational(xi, s, d0, d1)[3]
    return (x0 + xi * wi).clamp(0.0, 1.0), log_slope


def _bin(
    x: torch.Tensor,
    wh: torch.Tensor,
    slopes: torch.Tensor,
    src: int,
    min_width: float,
    min_slope: float,
) -> tuple[torch.Tensor, ...]:
    """The bin of every input and the spline's knots there.

    One softmax and one cumulative sum serve both the bin search and the knots: the
    upper knot of bin j is ``min_width (j + 1) + scale C_j`` with ``C`` the cumulative
    softmax; only the source axis's (``src``: 0 for x, 1 for y) inner knots are formed
    in full, the bin's own width, height and lower knots are gathered.

    Returns:
        ``(softmax, i, e, c, r, x0, y0, w, h, d0, d1)``: the softmax (..., 2, K), the
        bin index (..., 1), the softmax and cumulative softmax at the bin (..., 2) for
        (width, height), the shifted raw slopes at its ends (..., 2), and its lower
        knot, width, height and end slopes (...,).
    """
    k = wh.shape[-1]
    scale = 1 - min_width * k
    sm = torch.softmax(wh, dim=-1)
    cum = torch.cumsum(sm, dim=-1)
    ramp = torch.arange(1, k, dtype=wh.dtype, device=wh.device) * min_width
    # bin index: number of inner upper knots <= x (K is small, a compare beats a search)
    knots = torch.add(ramp, cum[..., src, :-1], alpha=scale)
    i = (knots <= x.unsqueeze(-1)).sum(dim=-1, keepdim=True)
    i2 = i.unsqueeze(-2).expand(*i.shape[:-1], 2, 1)
    e = sm.gather(-1, i2).squeeze(-1)  # (..., 2): softmax of width and height at the bin
    c = cum.gather(-1, i2).squeeze(-1)
    # unbind, not indexing: one backward node per pair instead of one zero-filled
    # gradient tensor per component
    wi, hi = (e * scale + min_width).unbind(-1)  # bin width and height
    x0, y0 = torch.add(i.to(wh.dtype) * min_width, c - e, alpha=scale).unbind(-1)  # lower knots
    r = slopes.gather(-1, torch.cat([i, i + 1], dim=-1)) + _D_SHIFT
    d0, d1 = (min_slope + F.softplus(r)).unbind(-1)
    return sm, i, e, c, r, x0, y0, wi, hi, d0, d1


def _rational(
    xi: torch.Tensor, s: torch.Tensor, d0: torch.Tensor, d1: torch.Tensor
) -> tuple[torch.Tensor, ...]:
    """``(t, den, p, log_slope)`` of the rational-quadratic segment at relative position
    ``xi`` (bin slope ``s``, end slopes ``d0``, ``d1``): ``t = xi (1 - xi)``, the
    denominator, the numerator of the derivative and the log-derivative."""
    t = xi * (1 - xi)
    den = s + (d0 + d1 - 2 * s) * t
    p = d1 * xi * xi + 2 * s * t + d0 * (1 - xi) ** 2
    return t, den, p, torch.log(s * s * p / (den * den))


class _ForwardRQS(torch.autograd.Function):
    """Forward spline ``(x, wh, slopes) -> (y, log_slope)`` with an analytic backward.

    Training evaluates the forward direction with gradients; as one node, forward and
    backward take 2/3 to 3/4 of the time of autograd through the ~60 operations of the
    spline (checked against autograd and by ``gradcheck`` in ``tests/test_nis_flow.py``).
    """

    @staticmethod
    def forward(ctx, x, wh, slopes, min_width, min_slope):
        sm, i, e, c, r, x0, y0, wi, hi, d0, d1 = _bin(x, wh, slopes, 0, min_width, min_slope)
        s = hi / wi
        xr = (x - x0) / wi
        xi = xr.clamp(0.0, 1.0)
        t, den, p, log_slope = _rational(xi, s, d0, d1)
        num = s * xi * xi + d0 * t
        y = y0 + hi * num / den
        ctx.save_for_backward(sm, i, e, c, r, xr, xi, wi, hi, d0, d1, den, num, p, y)
        ctx.scale = 1 - min_width * wh.shape[-1]
        return y.clamp(0.0, 1.0), log_slope

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_out, g_log):
        sm, i, e, c, r, xr, xi, wi, hi, d0, d1, den, num, p, y = ctx.saved_tensors
        scale = ctx.scale
        g_y = torch.where((y >= 0) & (y <= 1), g_out, 0.0)  # clamp of the output
        s = hi / wi
        om = 1 - xi
        t = xi * om
        b2 = d0 + d1 - 2 * s
        one2 = 1 - 2 * xi
        g_num = g_y * hi / den  # y = y0 + h num / den
        g_den = -g_y * hi * num / (den * den) - 2 * g_log / den  # and log_slope: -2 log den
        g_p = g_log / p  # log_slope: + log p + 2 log s
        # partial derivatives of num, den and p in xi, s, d0, d1
        g_xi = (
            g_num * (2 * s * xi + d0 * one2)
            + g_den * b2 * one2
            + g_p * 2 * (d1 * xi + s * one2 - d0 * om)
        )
        g_s = g_num * xi * xi + g_den * (1 - 2 * t) + g_p * 2 * t + 2 * g_log / s
        g_d0 = (g_num + g_den) * t + g_p * om * om
        g_d1 = g_den * t + g_p * xi * xi
        g_xr = torch.where((xr >= 0) & (xr <= 1), g_xi, 0.0) / wi  # xi = clamp((x - x0) / w)
        g_h = g_y * num / den + g_s / wi  # s = h / w
        g_w = -g_xr * xr - g_s * s / wi
        # (w, h) = e * scale + min_width, (x0, y0) = (c - e) * scale + i * min_width
        g_c = torch.stack([-g_xr, g_y], dim=-1) * scale
        g_e = torch.stack([g_w, g_h], dim=-1) * scale - g_c
        # softmax and its cumulative sum at bin i, in the logits z_j:
        # dL/dz_j = sm_j (g_c [j <= i] - g_e e - g_c c) + [j = i] g_e e
        i2 = i.unsqueeze(-2).expand(*i.shape[:-1], 2, 1)
        below = torch.arange(sm.shape[-1], device=sm.device) <= i2
        ge_e = g_e * e
        g_wh = sm * (torch.where(below, g_c.unsqueeze(-1), 0.0) - (ge_e + g_c * c).unsqueeze(-1))
        g_wh.scatter_add_(-1, i2, ge_e.unsqueeze(-1))
        # d = min_slope + softplus(r): dd/dr = sigmoid(r)
        g_slopes = torch.zeros(*i.shape[:-1], sm.shape[-1] + 1, dtype=sm.dtype, device=sm.device)
        g_d = torch.stack([g_d0, g_d1], dim=-1) * torch.sigmoid(r)
        g_slopes.scatter_(-1, torch.cat([i, i + 1], dim=-1), g_d)
        return g_xr, g_wh, g_slopes, None, None


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
        wh, d = phi.split([2 * k * n_b, (k + 1) * n_b], dim=-1)
        return wh.unflatten(-1, (n_b, 2, k)), d.unflatten(-1, (n_b, k + 1))

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

    @property
    def block_rows(self) -> int:
        """Rows per block when evaluating without gradient on the CPU: a power of two in
        [1024, 4096] that keeps one coupling network's output below about 2 MB."""
        row = max(c.idx_b.numel() * (3 * c.bins + 1) for c in self.layers) * self.dtype.itemsize
        rows = 1 << max(0, int(_CPU_BLOCK_BYTES // max(row, 1)).bit_length() - 1)
        return min(4096, max(1024, rows))

    def _chunked(
        self, x: torch.Tensor, c: torch.Tensor | None, inverse: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`_run` in row blocks of :attr:`block_rows` when no gradient is recorded
        on the CPU (intermediates then stay in cache: ~2x faster sampling)."""
        n = x.shape[0]
        block = self.block_rows
        if torch.is_grad_enabled() or x.device.type != "cpu" or n <= block:
            return self._run(x, c, inverse)
        out = torch.empty_like(x)
        total = torch.empty(n, dtype=self.dtype, device=x.device)
        for s in range(0, n, block):
            e = min(n, s + block)
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
