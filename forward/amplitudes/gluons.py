r"""Helicity- and colour-summed |M|² of n gluons from the Berends–Giele amplitudes.

Usage::

    from forward.amplitudes import gluon_me2
    me2 = gluon_me2(k, g_s=1.2)        # k: (N, n, 4) outgoing momenta, Σ_i k_i = 0

``gluon_me2`` returns |M|² **summed** (not averaged) over the colours and helicities
of all n gluons; a 2 → n-2 process divides by 4 · (N²-1)² = 256 for g g initial
states. Incoming gluons enter as outgoing ones with momentum -p (negative energy);
the result for a physical process is then obtained by relabelling (crossing).

**Colour** (generators Tr(T^a T^b) = δ^{ab}, :mod:`forward.amplitudes.colour`):

* ``colour="full"``: Σ_colours |M|² = g_s^{2n-4} Σ_h Σ_{στ} A_σ(h) C_{στ} A_τ(h)^*,
  with the DDM basis ((n-2)! orderings, default) or the trace basis ((n-1)!);
  n ≤ 7.
* ``colour="leading"`` — **leading colour only**: g_s^{2n-4} N^{n-2}(N²-1)
  Σ_h Σ_{σ ∈ S_{n-1}} |A(1, σ)(h)|² (the (n-1)!/2 orderings up to reflection,
  counted twice). Exact for n ≤ 5 (tested against the full sum), missing relative
  O(1/N²) terms for n ≥ 6; any n.

**Helicities.** By default the sum runs over the configurations with at least two
gluons of each helicity (the others vanish at tree level for n ≥ 4; tested), using
parity, |A(-h)| = |A(h)|, to evaluate only those with h_1 = -1 and count them twice
(``parity=False`` evaluates both). Polarisation vectors ε_±(k_i; k_{i+1}) (reference
momentum: the next leg, cyclically); the result is independent of that choice.
"""

from __future__ import annotations

import itertools
import math

import torch

from forward._validation import check_choice, check_event_momenta, check_finite
from forward.amplitudes.colour import BASES, colour_matrix, orderings
from forward.amplitudes.recursion import colour_ordered_amplitude
from forward.amplitudes.spinors import complex_dtype, minkowski_dot, polarisation_vectors

__all__ = [
    "COLOUR_MODES",
    "check_gluon_momenta",
    "gluon_amplitudes",
    "gluon_me2",
    "helicity_configurations",
]

#: the colour treatments of :func:`gluon_me2`
COLOUR_MODES = ("full", "leading")
#: points × configurations evaluated at once by default: small enough on a CPU for the
#: currents to stay in cache (2× faster at n = 6 than 2^16), large on a GPU
_DEFAULT_MAX_BATCH = {"cpu": 1 << 12, "cuda": 1 << 20}


def _max_batch(max_batch, device: torch.device) -> int:
    if max_batch is None:
        return _DEFAULT_MAX_BATCH.get(device.type, 1 << 16)
    if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
        raise ValueError(f"max_batch: expected a positive int or None, got {max_batch!r}")
    return max_batch


def _plan_configurations(leg_orders: torch.Tensor, helicities: torch.Tensor, n: int,
                        n_points: int, device: torch.device, max_batch: int | None):
    """Check orderings and helicities of n legs and plan the (points, configurations) chunks.

    One implementation for every batched amplitude (gluons, quark lines, vector bosons).

    Args:
        leg_orders: orderings (n_orderings, n), int64, permutations of 0..n-1.
        helicities: helicities ±1 (n_helicities, n), int64, of legs 0..n-1.
        n: number of ordered legs.
        n_points: number of phase-space points.
        device: device of the momenta (the plan's tensors are moved there).
        max_batch: points × configurations at once, or None (by device: 4096 on a CPU,
            2^20 on CUDA).

    Returns:
        ``(legs, hel_index, pt_chunk, conf_chunk)``: legs (C, n) int64 the leg at each
        position of each configuration (C = n_orderings · n_helicities, orderings
        outer), hel_index (C, n) the helicity index (0: -, 1: +) of the leg at each
        position, and the chunk sizes.

    Raises:
        ValueError: shapes other than (m, n), entries not ±1, rows not permutations, or
            a bad ``max_batch`` (naming the argument).
    """
    for name, t in (("leg_orders", leg_orders), ("helicities", helicities)):
        if not isinstance(t, torch.Tensor) or t.ndim != 2 or t.shape[1] != n:
            got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"{name}: expected an integer tensor of shape (m, {n}), got {got}")
    if bool(((helicities != 1) & (helicities != -1)).any()):
        raise ValueError("helicities: expected entries ±1")
    sorted_orders = leg_orders.sort(-1).values
    if bool((sorted_orders != torch.arange(n, device=leg_orders.device)).any()):
        raise ValueError(f"leg_orders: expected permutations of 0..{n - 1}")
    max_batch = _max_batch(max_batch, device)
    n_ord, n_hel = leg_orders.shape[0], helicities.shape[0]
    legs = leg_orders.to(device).repeat_interleave(n_hel, 0)  # (C, n)
    hel_index = ((helicities.to(device) + 1) // 2).repeat(n_ord, 1)  # (C, n), legs 0..n-1
    hel_index = torch.gather(hel_index, 1, legs)  # helicity index of the leg at each position
    n_conf = legs.shape[0]
    conf_chunk = max(1, min(n_conf, max_batch // max(1, n_points)))
    pt_chunk = max(1, min(max(1, n_points), max_batch // conf_chunk))
    return legs, hel_index, pt_chunk, conf_chunk


def helicity_configurations(n: int, *, nonvanishing: bool = True, parity: bool = False
                            ) -> torch.Tensor:
    """Helicity configurations of n gluons.

    Args:
        n: number of gluons (>= 3).
        nonvanishing: keep only configurations with at least two gluons of each
            helicity (all others vanish at tree level for n >= 4).
        parity: keep only those with h_1 = -1 (the others follow by parity).

    Returns:
        Shape (n_configurations, n), int64, entries ±1, in lexicographic order.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 3:
        raise ValueError(f"n: expected an integer number of gluons >= 3, got {n!r}")
    rows = []
    for h in itertools.product((-1, 1), repeat=n):
        minus = h.count(-1)
        if nonvanishing and (minus < 2 or n - minus < 2):
            continue
        if parity and h[0] != -1:
            continue
        rows.append(h)
    return torch.tensor(rows, dtype=torch.int64).reshape(-1, n)


def check_gluon_momenta(momenta: torch.Tensor) -> torch.Tensor:
    """Check outgoing massless momenta (N, n, 4), n >= 4, Σ_i k_i = 0, no vanishing s_ij.

    Tolerances: |k_i²| and |Σ_i k_i| up to 100 √ε (ε of the dtype) relative to the
    largest |E|² (|E|) of the point; a pair fails when |s_ij| <= 10 ε · 2|E_i E_j|
    (1 - cos θ_ij at rounding level: the invariant carries no significant digit).

    Returns:
        ``momenta``.

    Raises:
        TypeError: not a float32/float64 tensor.
        ValueError: wrong shape, NaN/inf, off-shell, not conserved, or a pair with
            s_ij = 0 (collinear or soft), naming how many points fail.
    """
    check_event_momenta("momenta", momenta, "n")
    complex_dtype(momenta.dtype)
    if momenta.shape[1] < 4:
        raise ValueError(f"momenta: expected at least 4 gluons, got shape "
                         f"{tuple(momenta.shape)}")
    check_finite("momenta", momenta)
    eps = torch.finfo(momenta.dtype).eps
    scale = momenta[..., 0].abs().amax(-1).clamp(min=torch.finfo(momenta.dtype).tiny)
    tol = 100.0 * math.sqrt(eps)
    offshell = (minkowski_dot(momenta, momenta).abs() / scale[:, None] ** 2).amax(-1)
    if bool((offshell > tol).any()):
        raise ValueError(f"momenta: {int((offshell > tol).sum())} points have |k_i²| above "
                         f"{tol:.1e} E_max² (massless gluons expected)")
    imbalance = momenta.sum(1).abs().amax(-1) / scale
    if bool((imbalance > tol).any()):
        raise ValueError(f"momenta: {int((imbalance > tol).sum())} points violate Σ_i k_i = 0 "
                         f"(all-outgoing momenta expected; incoming as -p)")
    n = momenta.shape[1]
    i, j = torch.triu_indices(n, n, 1)
    # s_ij = 2 E_i E_j (1 - cos θ_ij): below 10 ε of 2 E_i E_j it is rounding noise
    sij = minkowski_dot(momenta[:, i], momenta[:, j]).abs()
    ee = (momenta[:, i, 0] * momenta[:, j, 0]).abs()
    small = (sij <= 10.0 * eps * ee).any(-1)
    if bool(small.any()):
        raise ValueError(f"momenta: {int(small.sum())} points have a pair with s_ij = 0 "
                         f"(collinear or soft gluons: the amplitude is singular)")
    return momenta


def gluon_amplitudes(
    momenta: torch.Tensor,
    leg_orders: torch.Tensor,
    helicities: torch.Tensor,
    *,
    max_batch: int | None = None,
) -> torch.Tensor:
    """Colour-ordered amplitudes A(σ)(h) for every ordering σ and helicity configuration h.

    Args:
        momenta: outgoing momenta (N, n, 4) in GeV, float32/float64 (checked with
            :func:`check_gluon_momenta`).
        leg_orders: orderings as leg indices, shape (n_orderings, n), int64 (e.g.
            :func:`forward.amplitudes.orderings`).
        helicities: helicities ±1 of legs 0..n-1, shape (n_helicities, n), int64.
        max_batch: points × configurations evaluated at once (memory and cache); None:
            4096 on a CPU, 2^20 on CUDA.

    Returns:
        Shape (N, n_orderings, n_helicities), complex, in GeV^(4-n).
    """
    check_gluon_momenta(momenta)
    n = momenta.shape[1]
    device = momenta.device
    n_pts = momenta.shape[0]
    legs, hel_index, pt_chunk, conf_chunk = _plan_configurations(
        leg_orders, helicities, n, n_pts, device, max_batch)
    n_ord, n_hel = leg_orders.shape[0], helicities.shape[0]
    n_conf = legs.shape[0]
    eps_all = polarisation_vectors(momenta, momenta.roll(-1, dims=1))  # (N, n, 2, 4)
    out = torch.empty(n_pts, n_conf, dtype=complex_dtype(momenta.dtype), device=device)
    for p0 in range(0, n_pts, pt_chunk):
        mom_p, eps_p = momenta[p0:p0 + pt_chunk], eps_all[p0:p0 + pt_chunk]
        for c0 in range(0, n_conf, conf_chunk):
            lg, hx = legs[c0:c0 + conf_chunk], hel_index[c0:c0 + conf_chunk]
            out[p0:p0 + pt_chunk, c0:c0 + conf_chunk] = colour_ordered_amplitude(
                mom_p[:, lg], eps_p[:, lg, hx])
    return out.reshape(n_pts, n_ord, n_hel)


def gluon_me2(
    momenta: torch.Tensor,
    *,
    colour: str = "full",
    basis: str = "ddm",
    nc: int = 3,
    g_s: torch.Tensor | float = 1.0,
    helicities: torch.Tensor | None = None,
    parity: bool = True,
    max_batch: int | None = None,
) -> torch.Tensor:
    """|M|² of n gluons summed over all colours and helicities (module docstring).

    Args:
        momenta: outgoing momenta (N, n, 4) as (E, px, py, pz) in GeV, Σ_i k_i = 0,
            float32/float64, any device; incoming gluons as -p.
        colour: ``"full"`` (colour matrix, n <= 7) or ``"leading"`` (leading colour
            only, labelled as such).
        basis: colour basis of the full sum, ``"ddm"`` or ``"trace"``.
        nc: number of colours N.
        g_s: strong coupling g_s = √(4π α_s), a number or a tensor broadcastable to (N,).
        helicities: configurations (m, n) of ±1 to sum over; default all that do not
            vanish (with ``parity``, those with h_1 = -1, counted twice).
        parity: use |A(-h)| = |A(h)| when ``helicities`` is None.
        max_batch: points × configurations evaluated at once (None: by device, see
            :func:`gluon_amplitudes`).

    Returns:
        Shape (N,), real, in GeV^(8-2n) (GeV⁰ for 2 → 2).

    Raises:
        TypeError, ValueError: bad momenta (see :func:`check_gluon_momenta`), unknown
            colour mode or basis, n > 7 with ``colour="full"``.
    """
    check_choice("colour", colour, COLOUR_MODES)
    check_choice("basis", basis, BASES)
    check_gluon_momenta(momenta)
    n = momenta.shape[1]
    factor = 1.0
    if helicities is None:
        helicities = helicity_configurations(n, parity=parity)
        factor = 2.0 if parity else 1.0
    if colour == "leading":
        # reflection: A(1, σ_n, ..., σ_2) = (-1)^n A(1, σ_2, ..., σ_n), so only the
        # orderings with σ_2 < σ_n are evaluated, each counted twice
        rows = orderings(n, "trace")
        rows = rows[rows[:, 1] < rows[:, -1]]
        amps = gluon_amplitudes(momenta, rows, helicities, max_batch=max_batch)
        summed = (amps.real**2 + amps.imag**2).sum((1, 2)) * float(
            2 * nc ** (n - 2) * (nc**2 - 1))
    else:
        cmat = colour_matrix(n, basis, nc).to(dtype=momenta.dtype, device=momenta.device)
        amps = gluon_amplitudes(momenta, orderings(n, basis), helicities, max_batch=max_batch)
        re, im = amps.real, amps.imag
        summed = (torch.einsum("nsh,st,nth->n", re, cmat, re)
                  + torch.einsum("nsh,st,nth->n", im, cmat, im))
    return factor * summed * torch.as_tensor(g_s, dtype=momenta.dtype,
                                             device=momenta.device) ** (2 * n - 4)
