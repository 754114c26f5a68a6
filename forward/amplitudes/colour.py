r"""Colour algebra for n-gluon amplitudes: SU(N) generators, colour bases and matrices.

**Normalisation.** The generators in the colour decompositions are
T^a = √2 t^a with Tr(t^a t^b) = δ^{ab}/2, i.e. **Tr(T^a T^b) = δ^{ab}**, and
f̃^{abc} = Tr([T^a, T^b] T^c) = i√2 f^{abc}. With the colour-ordered amplitudes A of
:mod:`forward.amplitudes.recursion` and the usual g_s (α_s = g_s²/4π):

* **fundamental-trace basis**, (n-1)! orderings (1, σ),
  M = g_s^{n-2} Σ_{σ ∈ S_{n-1}} Tr(T^{a_1} T^{a_{σ_2}} ··· T^{a_{σ_n}}) A(1, σ_2, ..., σ_n);
* **DDM basis** (Del Duca, Dixon, Maltoni, hep-ph/9910563), (n-2)! orderings (1, σ, n),
  M = g_s^{n-2} Σ_{σ ∈ S_{n-2}} (F^{a_{σ_2}} ··· F^{a_{σ_{n-1}}})_{a_1 a_n} A(1, σ, n),
  (F^b)_{ac} = f̃^{abc}.

The colour matrix C_{στ} = Σ_{colours} c_σ c_τ^* of the colour factors c gives
Σ_colours |M|² = g_s^{2n-4} Σ_{στ} A_σ C_{στ} A_τ^*. It is computed numerically:
since relabelling the summed adjoint indices leaves the sum unchanged,
C_{στ} = C_{id, σ⁻¹τ}, so only the first row is computed, each entry as one
contraction of the tensor network of the two colour factors (generators T[a, i, j]
or f̃ tensors) with ``torch.einsum``. Cached per (n, basis, N); n ≤ 7.
"""

from __future__ import annotations

import functools
import itertools
import math

import torch

__all__ = ["BASES", "MAX_FULL_COLOUR_GLUONS", "MAX_QUARK_LINE_GLUONS", "colour_matrix",
           "orderings", "quark_line_colour_matrix", "quark_line_orderings", "su_n_generators",
           "structure_constants"]

#: the colour bases of :func:`colour_matrix`
BASES = ("ddm", "trace")
#: the largest n for which :func:`colour_matrix` builds the full colour matrix
MAX_FULL_COLOUR_GLUONS = 7
#: the largest number of gluons on one quark line for :func:`quark_line_colour_matrix`
MAX_QUARK_LINE_GLUONS = 5


def _check_nc(nc) -> int:
    if isinstance(nc, bool) or not isinstance(nc, int) or nc < 2:
        raise ValueError(f"nc: expected an integer number of colours >= 2, got {nc!r}")
    return nc


def su_n_generators(nc: int = 3) -> torch.Tensor:
    """The generalised Gell-Mann generators t^a of SU(N), Tr(t^a t^b) = δ^{ab}/2.

    Args:
        nc: N >= 2.

    Returns:
        Shape (N²-1, N, N), complex128, Hermitian and traceless.
    """
    nc = _check_nc(nc)
    gens = []
    for j in range(nc):
        for k in range(j + 1, nc):
            s = torch.zeros(nc, nc, dtype=torch.complex128)
            s[j, k] = s[k, j] = 0.5
            a = torch.zeros(nc, nc, dtype=torch.complex128)
            a[j, k], a[k, j] = -0.5j, 0.5j
            gens += [s, a]
    for d in range(1, nc):
        diag = torch.zeros(nc, dtype=torch.complex128)
        diag[:d] = 1.0
        diag[d] = -d
        gens.append(torch.diag(diag) / math.sqrt(2.0 * d * (d + 1)))
    return torch.stack(gens)


def structure_constants(nc: int = 3) -> torch.Tensor:
    """f̃^{abc} = Tr([T^a, T^b] T^c) = i√2 f^{abc} with T = √2 t; shape (N²-1,)*3, complex128."""
    big_t = math.sqrt(2.0) * su_n_generators(nc)
    comm = torch.einsum("aij,bjk->abik", big_t, big_t) - torch.einsum(
        "bij,ajk->abik", big_t, big_t)
    return torch.einsum("abij,cji->abc", comm, big_t)


def _check_n(n, low: int = 3) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < low:
        raise ValueError(f"n: expected an integer number of gluons >= {low}, got {n!r}")
    return n


def orderings(n: int, basis: str = "ddm") -> torch.Tensor:
    """The colour orderings of a basis, as leg indices 0..n-1.

    Args:
        n: number of gluons (>= 3).
        basis: ``"ddm"``, (n-2)! orderings (0, σ, n-1), or ``"trace"``, (n-1)!
            orderings (0, σ).

    Returns:
        Shape (n_orderings, n), int64, in lexicographic order of σ (the rows and
        columns of :func:`colour_matrix`); the first row is the identity.
    """
    n = _check_n(n)
    if basis == "ddm":
        rows = [(0, *p, n - 1) for p in itertools.permutations(range(1, n - 1))]
    elif basis == "trace":
        rows = [(0, *p) for p in itertools.permutations(range(1, n))]
    else:
        raise ValueError(f"basis: expected one of {list(BASES)}, got {basis!r}")
    return torch.tensor(rows, dtype=torch.int64)


_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _factor_network(n: int, basis: str, nc: int, legs, offset: int):
    """Operands and subscripts of the colour factor of the ordering ``legs``.

    Adjoint index of leg l is ``_LETTERS[l]``; internal indices start at ``offset``.
    """
    if basis == "trace":
        big_t = math.sqrt(2.0) * su_n_generators(nc)  # T[a, i, j]
        ring = [_LETTERS[offset + k] for k in range(n)]
        subs = [_LETTERS[leg] + ring[k] + ring[(k + 1) % n] for k, leg in enumerate(legs)]
        return [big_t] * n, subs
    mat = structure_constants(nc).permute(1, 0, 2)  # (F^b)_{ac} as [a, b, c]
    chain = [_LETTERS[legs[0]]] + [_LETTERS[offset + k] for k in range(n - 3)] + [
        _LETTERS[legs[-1]]]
    subs = [chain[k] + _LETTERS[leg] + chain[k + 1] for k, leg in enumerate(legs[1:-1])]
    return [mat] * (n - 2), subs


def _colour_overlap(n: int, basis: str, nc: int, legs) -> torch.Tensor:
    """Σ_colours c_id c_legs^* by one tensor contraction (complex128 scalar)."""
    ops1, subs1 = _factor_network(n, basis, nc, list(range(n)), n)
    ops2, subs2 = _factor_network(n, basis, nc, list(legs), 2 * n)
    expr = ",".join(subs1 + subs2) + "->"
    return torch.einsum(expr, *ops1, *[o.conj() for o in ops2])


@functools.lru_cache(maxsize=16)
def _colour_matrix(n: int, basis: str, nc: int) -> torch.Tensor:
    rows = orderings(n, basis)
    first = torch.stack([_colour_overlap(n, basis, nc, row) for row in rows.tolist()])
    if float(first.imag.abs().max()) > 1e-9 * float(first.real.abs().max()):
        raise RuntimeError("colour matrix: unexpected imaginary part")  # pragma: no cover
    first = first.real
    index = {tuple(r): i for i, r in enumerate(rows.tolist())}
    size = rows.shape[0]
    mat = torch.empty(size, size, dtype=torch.float64)
    for s, sig in enumerate(rows.tolist()):
        inv = [0] * n
        for pos, leg in enumerate(sig):
            inv[leg] = pos
        for t, tau in enumerate(rows.tolist()):
            # C_{στ} = C_{id, σ⁻¹∘τ}
            mat[s, t] = first[index[tuple(inv[leg] for leg in tau)]]
    # C_{id,π} and C_{id,π⁻¹} are equal up to rounding (different contraction orders)
    return 0.5 * (mat + mat.T)


def colour_matrix(n: int, basis: str = "ddm", nc: int = 3) -> torch.Tensor:
    """The colour matrix C_{στ} = Σ_colours c_σ c_τ^* of a colour basis (module docstring).

    Args:
        n: number of gluons, 3 <= n <= :data:`MAX_FULL_COLOUR_GLUONS`.
        basis: ``"ddm"`` or ``"trace"``; rows follow :func:`orderings`.
        nc: number of colours N (>= 2).

    Returns:
        Shape (n_orderings, n_orderings), float64, symmetric (cached; a fresh copy is
        returned).

    Raises:
        ValueError: n outside the range, unknown basis, bad nc.
    """
    n = _check_n(n)
    if n > MAX_FULL_COLOUR_GLUONS:
        raise ValueError(
            f"n: the full colour matrix is built for n <= {MAX_FULL_COLOUR_GLUONS} gluons, "
            f"got {n} (use colour='leading')"
        )
    if basis not in BASES:
        raise ValueError(f"basis: expected one of {list(BASES)}, got {basis!r}")
    return _colour_matrix(n, basis, _check_nc(nc)).clone()


@functools.lru_cache(maxsize=16)
def _quark_line_colour_matrix(n: int, nc: int) -> torch.Tensor:
    big_t = math.sqrt(2.0) * su_n_generators(nc)  # T[a, i, j]
    rows = [list(p) for p in itertools.permutations(range(n))]
    # chain (T^{a_l0} ... T^{a_l(n-1)})_{ij}: quark index i (letter n), antiquark j (n+1)
    def chain(legs, offset):
        idx = [_LETTERS[n]] + [_LETTERS[offset + k] for k in range(n - 1)] + [_LETTERS[n + 1]]
        return [_LETTERS[leg] + idx[k] + idx[k + 1] for k, leg in enumerate(legs)]

    subs1 = chain(list(range(n)), n + 2)
    first = []
    for row in rows:
        subs2 = chain(row, 2 * n + 2)
        expr = ",".join(subs1 + subs2) + "->"
        first.append(torch.einsum(expr, *([big_t] * n), *([big_t.conj()] * n)))
    first = torch.stack(first)
    if float(first.imag.abs().max()) > 1e-9 * float(first.real.abs().max()):
        raise RuntimeError("colour matrix: unexpected imaginary part")  # pragma: no cover
    first = first.real
    index = {tuple(r): i for i, r in enumerate(rows)}
    size = len(rows)
    mat = torch.empty(size, size, dtype=torch.float64)
    for s, sig in enumerate(rows):
        inv = [0] * n
        for pos, leg in enumerate(sig):
            inv[leg] = pos
        for t, tau in enumerate(rows):
            mat[s, t] = first[index[tuple(inv[leg] for leg in tau)]]
    return 0.5 * (mat + mat.T)


def quark_line_colour_matrix(n: int, nc: int = 3) -> torch.Tensor:
    """Colour matrix of one quark line with n gluons, C_{στ} = Σ_colours c_σ c_τ^*.

    The colour factors are c_σ = (T^{a_{σ_1}} ··· T^{a_{σ_n}})_{i j̄} (quark colour i,
    antiquark colour j̄, Tr(T^a T^b) = δ^{ab}) for the n! orderings σ of
    :func:`quark_line_orderings`, computed numerically like :func:`colour_matrix`
    (C_{στ} = C_{id, σ⁻¹τ}, one einsum per entry of the first row). For n = 1,
    C = N² - 1; for n = 2, C = [[(N²-1)²/N, -(N²-1)/N], [..., ...]] (16·4/3, -8/3 at N = 3).

    Args:
        n: number of gluons, 1 <= n <= :data:`MAX_QUARK_LINE_GLUONS`.
        nc: number of colours N (>= 2).

    Returns:
        Shape (n!, n!), float64, symmetric (a fresh copy of a cached matrix).

    Raises:
        ValueError: n outside the range, bad nc.
    """
    n = _check_n(n, 1)
    if n > MAX_QUARK_LINE_GLUONS:
        raise ValueError(f"n: the quark-line colour matrix is built for n <= "
                         f"{MAX_QUARK_LINE_GLUONS} gluons, got {n}")
    return _quark_line_colour_matrix(n, _check_nc(nc)).clone()


def quark_line_orderings(n: int) -> torch.Tensor:
    """The n! gluon orderings of one quark line (rows of :func:`quark_line_colour_matrix`).

    Returns:
        Shape (n!, n), int64, permutations of 0..n-1 in lexicographic order (first: the
        identity); entry k is the gluon at position k counted from the quark.
    """
    n = _check_n(n, 1)
    return torch.tensor(list(itertools.permutations(range(n))), dtype=torch.int64)
