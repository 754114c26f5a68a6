"""Vectorised LHAPDF-style interpolation in torch: log-bicubic x·f(x, Q²) and 1-D α_s(Q²).

The scheme follows LHAPDF6's ``logcubic`` interpolator (our own implementation):

* In ln x: cubic Hermite between the two neighbouring knots, with the slope at each
  knot estimated by finite differences over the whole x grid: the plain average of the
  left and right difference quotients at inner knots, one-sided at the first and last.
* In ln Q²: within the subgrid that holds Q² (a Q² on a subgrid boundary belongs to the
  upper subgrid), the x-interpolated values on the Q² knots i-1, i, i+1, i+2 give the
  slopes at knots i and i+1 in the same way: average of the neighbouring difference
  quotients, one-sided at the subgrid's ends, never across a subgrid boundary. A cubic
  Hermite in ln Q² joins them. A subgrid with only two knots falls back to bilinear
  interpolation in (ln x, ln Q²), as in LHAPDF.

At a knot (x_i, Q²_j) the interpolant returns the tabulated value exactly.

Extrapolation (the grid's own range is [x_min, x_max] × [Q²_min, Q²_max]):

* Q² outside the grid is frozen at the nearest boundary, Q²_min or Q²_max. This is what
  Pythia 8's ``LHAGrid1`` reader does (LHAPDF's default "continuation" extrapolator
  differs).
* x < x_min is frozen at x_min, as Pythia 8 does by default (``PDF:extrapolate = off``).
* x_max < x ≤ 1 (only for grids that stop short of x = 1) gives 0.

All evaluations are batched: one pass of gathers over all points and the requested
flavours, no Python loop over points.
"""

from __future__ import annotations

import torch

from forward._validation import resolve_device

__all__ = ["HermiteAlphaS", "LogBicubicTable", "hermite_basis"]

# Points x flavours per block in LogBicubicTable.evaluate.
_CPU_BLOCK = 1 << 17
_ACCELERATOR_BLOCK = 1 << 22


def hermite_basis(t: torch.Tensor) -> torch.Tensor:
    """Cubic Hermite basis (h00, h10, h01, h11) at ``t``, shape (*t.shape, 4).

    The interpolant on [0, 1] is ``h00 v0 + h10 d0 + h01 v1 + h11 d1`` with end values
    v0, v1 and end slopes d0, d1 (slopes per unit t). At t = 0 and t = 1 the basis is
    exactly (1, 0, 0, 0) and (0, 0, 1, 0).
    """
    s = 1.0 - t
    t2 = t * t
    return torch.stack(
        (s * s * (1.0 + 2.0 * t), s * s * t, t2 * (3.0 - 2.0 * t), -t2 * s), dim=-1
    )


def _knot_slopes(values: torch.Tensor, logk: torch.Tensor, dim: int) -> torch.Tensor:
    """Finite-difference slopes d values / d logk at every knot along ``dim``.

    Average of the left and right difference quotients inside, one-sided at the ends.
    """
    v = values.movedim(dim, 0)
    shape = (-1,) + (1,) * (v.ndim - 1)
    q = (v[1:] - v[:-1]) / (logk[1:] - logk[:-1]).reshape(shape)
    d = torch.empty_like(v)
    d[0] = q[0]
    d[-1] = q[-1]
    d[1:-1] = 0.5 * (q[:-1] + q[1:])
    return d.movedim(0, dim)


class LogBicubicTable:
    """Precomputed tables for log-bicubic interpolation of x·f over Q subgrids.

    Args:
        x: x knots, shape (n_x,), increasing.
        q_subgrids: Q knots in GeV of each subgrid, increasing; consecutive subgrids
            share their boundary knot.
        values: x·f per subgrid, each of shape (n_x, n_q_s, n_flavours).
        device: where to keep the tables.
        dtype: floating dtype of the tables.

    The tables are built in float64 on the CPU, then moved. One extra all-zero flavour
    column (index ``n_flavours``) serves partons absent from the grid.

    How a point is evaluated: with t_x, t_q its fractional positions in its (ln x, ln Q²)
    cell and rows j-1, j, j+1, j+2 the Q² knots around it, the result is linear in the
    16 numbers (v_i, Δ·d_i, v_{i+1}, Δ·d_{i+1}) of those four rows (the x Hermite data),
    with weights = (Q weight of the row) × (x Hermite basis). The Q weights fold the
    LHAPDF-style Q slopes (which combine neighbouring rows) into one weight per row, so
    one gather of 16·k numbers and one small matrix product per point do all the work.
    """

    def __init__(
        self,
        x: torch.Tensor,
        q_subgrids: list[torch.Tensor],
        values: list[torch.Tensor],
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        x = x.to(torch.float64).cpu()
        logx = torch.log(x)
        q2 = torch.cat([q.to(torch.float64).cpu() ** 2 for q in q_subgrids])
        logq2 = torch.log(q2)
        vals = torch.cat([v.to(torch.float64).cpu() for v in values], dim=1)  # (nx, nQ, nf)
        nx, nq, nf = vals.shape
        vals = torch.cat([vals, vals.new_zeros(nx, nq, 1)], dim=2)
        # Per x interval i: (v_i, d_i·Δ, v_{i+1}, d_{i+1}·Δ), shape (nx-1, nQ, 4, nf+1).
        dx = (logx[1:] - logx[:-1]).reshape(-1, 1, 1)
        slope = _knot_slopes(vals, logx, 0)
        table = torch.stack((vals[:-1], slope[:-1] * dx, vals[1:], slope[1:] * dx), dim=2)
        # Q intervals j (knots j, j+1; zero-width ones at subgrid joints are never used).
        ends = torch.tensor([len(q) for q in q_subgrids]).cumsum(0)
        first = torch.zeros(nq, dtype=torch.bool)
        last = torch.zeros(nq, dtype=torch.bool)
        first[ends[:-1]] = True
        first[0] = True
        last[ends - 1] = True
        lower = first[:-1]  # knot j opens its subgrid: no knot j-1 to use
        upper = last[1:]  # knot j+1 closes its subgrid: no knot j+2 to use
        dq = logq2[1:] - logq2[:-1]  # (nQ-1,)
        r_lo = torch.zeros(nq - 1, dtype=torch.float64)  # Δ_j / Δ_{j-1}
        r_hi = torch.zeros(nq - 1, dtype=torch.float64)  # Δ_j / Δ_{j+1}
        r_lo[1:] = dq[1:] / dq[:-1]
        r_hi[:-1] = dq[:-1] / dq[1:]
        r_lo = torch.where(lower, 0.0, torch.nan_to_num(r_lo, posinf=0.0, neginf=0.0))
        r_hi = torch.where(upper, 0.0, torch.nan_to_num(r_hi, posinf=0.0, neginf=0.0))
        # Scaled slopes at knots j and j+1 as combinations of rows (j-1, j, j+1, j+2):
        # one-sided (v_{j+1} - v_j) at a subgrid end, else the mean of both quotients.
        h_lo = torch.where(lower, 1.0, 0.5)
        h_hi = torch.where(upper, 1.0, 0.5)
        zero = torch.zeros_like(dq)
        slope_lo = torch.stack((-0.5 * r_lo, -h_lo + 0.5 * r_lo, h_lo, zero), dim=-1)
        slope_hi = torch.stack((zero, -h_hi, h_hi - 0.5 * r_hi, 0.5 * r_hi), dim=-1)

        self.n_x, self.n_q, self.n_flavours = nx, nq, nf
        self.has_linear_fallback = bool((lower & upper & (dq > 0)).any())
        self.device = resolve_device(device)
        self.dtype = dtype
        put = {"device": self.device, "dtype": dtype}
        self.logx = logx.to(**put)
        self.logq2 = logq2.to(**put)
        self.dlogx = (logx[1:] - logx[:-1]).to(**put)
        self.dlogq2 = torch.where(dq > 0, dq, 1.0).to(**put)
        self.table = table.to(**put)
        self.slope_lo = slope_lo.to(**put)  # (nQ-1, 4)
        self.slope_hi = slope_hi.to(**put)
        self.linear = (lower & upper).to(self.device)
        self.x_min, self.x_max = float(x[0]), float(x[-1])
        self.q2_min, self.q2_max = float(q2[0]), float(q2[-1])

    def select(self, columns: torch.Tensor) -> torch.Tensor:
        """The table restricted to flavour ``columns``, shape ((nx-1)·nQ, 4·k).

        Args:
            columns: flavour column indices, shape (k,), int64; ``n_flavours`` is zero.
        """
        sel = self.table.index_select(3, columns.to(self.device))
        return sel.reshape((self.n_x - 1) * self.n_q, -1)

    def evaluate(self, x: torch.Tensor, q2: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """Interpolate x·f at points for the flavours of ``table``.

        Large batches are processed in blocks (about ten thousand points on the CPU,
        where this keeps the temporaries in cache and is several times faster; about a
        million on accelerators, to bound memory).

        Args:
            x: momentum fractions, shape (n,), in (0, 1], on the table's device/dtype.
            q2: Q² in GeV², shape (n,), non-negative.
            table: from :meth:`select`, shape ((nx-1)·nQ, 4·k).

        Returns:
            x·f, shape (n, k).
        """
        block = _CPU_BLOCK if x.device.type == "cpu" else _ACCELERATOR_BLOCK
        block = max(block // max(table.shape[1] // 4, 1), 1024)
        if x.shape[0] <= block:
            return self._evaluate_block(x, q2, table)
        parts = [
            self._evaluate_block(xb, qb, table)
            for xb, qb in zip(x.split(block), q2.split(block), strict=True)
        ]
        return torch.cat(parts)

    def _evaluate_block(self, x, q2, table) -> torch.Tensor:
        n, k = x.shape[0], table.shape[1] // 4
        lx = torch.log(torch.clamp(x, min=self.x_min, max=self.x_max))
        lq = torch.log(torch.clamp(q2, min=self.q2_min, max=self.q2_max))
        ix = torch.searchsorted(self.logx, lx.detach(), right=True) - 1
        ix = ix.clamp_(0, self.n_x - 2)
        iq = torch.searchsorted(self.logq2, lq.detach(), right=True) - 1
        iq = iq.clamp_(0, self.n_q - 2)
        tx = (lx - self.logx[ix]) / self.dlogx[ix]
        tq = (lq - self.logq2[iq]) / self.dlogq2[iq]
        hx = hermite_basis(tx)  # (n, 4)
        hq = hermite_basis(tq)  # (n, 4): weights of v_j, slope_j, v_{j+1}, slope_{j+1}
        # Weights of rows j-1, j, j+1, j+2, shape (n, 4).
        wq = hq[:, 1:2] * self.slope_lo[iq] + hq[:, 3:4] * self.slope_hi[iq]
        wq = wq + torch.stack((torch.zeros_like(tq), hq[:, 0], hq[:, 2], torch.zeros_like(tq)), 1)
        w = (wq.unsqueeze(-1) * hx.unsqueeze(-2)).reshape(n, 1, 16)
        if self.has_linear_fallback:  # two-knot subgrids: bilinear in (ln x, ln Q²)
            zero = torch.zeros_like(tx)
            lin_x = torch.stack((1.0 - tx, zero, tx, zero), 1)
            lin_q = torch.stack((zero, 1.0 - tq, tq, zero), 1)
            lin = (lin_q.unsqueeze(-1) * lin_x.unsqueeze(-2)).reshape(n, 1, 16)
            w = torch.where(self.linear[iq].reshape(n, 1, 1), lin, w)
        rows = (ix * self.n_q + iq).unsqueeze(-1) + torch.arange(-1, 3, device=ix.device)
        rows = rows.clamp_(min=0, max=table.shape[0] - 1)  # unused rows (weight 0) may clip
        data = table.index_select(0, rows.reshape(-1)).view(n, 16, k)
        out = torch.bmm(w, data).squeeze(1)
        if self.x_max < 1.0:
            out = torch.where((x <= self.x_max).unsqueeze(-1), out, torch.zeros_like(out))
        return out


class HermiteAlphaS:
    """α_s(Q²) interpolated from tabulated points like LHAPDF's ``ipol`` α_s.

    Cubic Hermite in ln Q² with finite-difference slopes (average of neighbouring
    quotients, one-sided at the ends) within each run of knots; a repeated Q knot starts
    a new run (flavour threshold) and a Q² on it belongs to the upper run. Below the
    first knot the coupling continues as a power law α_s ∝ (Q²)^p with p from the first
    two distinct knots; above the last knot it is frozen.

    Args:
        q: Q knots in GeV, shape (n,), non-decreasing (repeats mark thresholds).
        alphas: α_s at the knots, shape (n,).
        device, dtype: where and how to keep the tables.
    """

    def __init__(self, q, alphas, *, device=None, dtype=torch.float64) -> None:
        q = torch.as_tensor(q, dtype=torch.float64).cpu()
        a = torch.as_tensor(alphas, dtype=torch.float64).cpu()
        if q.ndim != 1 or q.shape != a.shape or len(q) < 2:
            raise ValueError(
                f"AlphaS_Qs/AlphaS_Vals: expected two 1-D lists of equal length >= 2, got "
                f"shapes {tuple(q.shape)} and {tuple(a.shape)}"
            )
        if not bool((q[1:] >= q[:-1]).all()) or not bool((q > 0).all()):
            raise ValueError("AlphaS_Qs: expected positive, non-decreasing Q values")
        logq2 = torch.log(q * q)
        n = len(q)
        dq = logq2[1:] - logq2[:-1]
        joint = dq == 0
        quot = (a[1:] - a[:-1]) / torch.where(joint, torch.ones_like(dq), dq)
        quot = torch.where(joint, torch.zeros_like(dq), quot)
        first = torch.zeros(n, dtype=torch.bool)  # knot opens a run: no left neighbour
        last = torch.zeros(n, dtype=torch.bool)  # knot closes a run: no right neighbour
        first[0] = True
        first[1:] = joint
        last[-1] = True
        last[:-1] = joint
        left = torch.cat([quot[:1], quot])  # difference quotient left of knot i
        right = torch.cat([quot, quot[-1:]])  # and right of it
        slope = torch.where(first, right, torch.where(last, left, 0.5 * (left + right)))
        if bool((first & last).any()):
            raise ValueError("AlphaS_Qs: every run between repeated knots needs >= 2 knots")
        # Power-law continuation below the first knot, from the first two distinct knots.
        j = int(torch.nonzero(q > q[0])[0]) if bool((q > q[0]).any()) else 1
        self.low_power = float(torch.log(a[j] / a[0]) / (logq2[j] - logq2[0]))
        put = {"device": device, "dtype": dtype}
        self.logq2 = logq2.to(**put)
        self.alphas = a.to(**put)
        self.slope = slope.to(**put)
        self.dlogq2 = torch.where(joint, torch.ones_like(dq), dq).to(**put)
        self.q2_min, self.q2_max = float(q[0] ** 2), float(q[-1] ** 2)
        self.n = n

    def __call__(self, q2: torch.Tensor) -> torch.Tensor:
        """α_s at ``q2`` (GeV², any shape, positive), same shape."""
        lq_raw = torch.log(q2)
        lq = torch.clamp(lq_raw, min=float(self.logq2[0]), max=float(self.logq2[-1]))
        i = (torch.searchsorted(self.logq2, lq.detach().reshape(-1), right=True) - 1)
        i = i.clamp_(0, self.n - 2).reshape(lq.shape)
        d = self.dlogq2[i]
        t = (lq - self.logq2[i]) / d
        h = hermite_basis(t)
        val = (
            h[..., 0] * self.alphas[i]
            + h[..., 1] * self.slope[i] * d
            + h[..., 2] * self.alphas[i + 1]
            + h[..., 3] * self.slope[i + 1] * d
        )
        below = self.alphas[0] * torch.exp(self.low_power * (lq_raw - self.logq2[0]))
        return torch.where(lq_raw < self.logq2[0], below, val)
