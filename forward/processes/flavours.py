"""Per-event flavour assignments of processes whose |M|² sums several final states.

A process such as Drell–Yan with ``leptons="both"`` or t t̄ → dilepton with
``leptons="all"`` sums its matrix element over flavour assignments that have equal
shares of it (massless leptons); generators then draw each event's PDG ids with
:func:`draw_final_states`, the one implementation of that draw.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["draw_final_states"]


def draw_final_states(
    rows: Sequence[Sequence[int]],
    n: int,
    *,
    generator: torch.Generator | None = None,
    device=None,
) -> torch.Tensor:
    """Each event's PDG ids drawn with equal probability from ``rows``.

    One integer per event is drawn from ``generator`` (on its device) even when there
    is a single row, so a seed gives the same stream whatever the flavour setting.

    Args:
        rows: the flavour assignments, m rows of k PDG ids each (m >= 1).
        n: number of events (>= 0).
        generator: torch generator for the draw.
        device: device of the result.

    Returns:
        Integer tensor of shape (n, k).

    Raises:
        ValueError: empty or ragged ``rows``, or negative ``n``.
    """
    table = [tuple(int(i) for i in r) for r in rows]
    if not table or len({len(r) for r in table}) != 1 or not table[0]:
        raise ValueError(f"rows: expected m >= 1 rows of equal length k >= 1, got {rows!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n: expected an integer >= 0, got {n!r}")
    ids = torch.tensor(table, device=device)
    pick = torch.randint(len(table), (n,), generator=generator,
                         device=generator.device if generator is not None else device)
    return ids[pick.to(ids.device)]
