r"""Training data for amplitude surrogates: (phase-space point, |M|²) pairs from a process.

Points r of the unit hypercube of one of the process's phase-space maps are drawn

* ``sampler=None``: uniformly (flat in the map's coordinates), or
* ``sampler=<proposal>``: from any object with ``sample(n, *, generator) -> (r, log_q)``
  on that cube (a :class:`forward.nis.MixtureProposal`, a :class:`forward.nis.CubeFlow`
  wrapped by one, a :class:`forward.nis.VegasMap`),

mapped to hard events, and kept only where ``process.cuts`` passes and the summed
|M|² is positive and finite. With ``oversample=(f, q)`` a fraction f of the kept points
is drawn from the same sampling restricted to the region where the summed |M|²
exceeds its q-quantile (estimated on the plain points first): the rare high-|M|² corners
get 1 + f / ((1 - f)(1 - q)) times their share. Every point carries ``log_q``, the
log-density of the sampling that produced it on the cube before the cuts, so that
weighted averages over the plain sampling remain available (weight ``q_base / q``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from forward._validation import check_finite, check_memory, check_process, resolve_device
from forward.events import HardEvents

__all__ = ["TrainingData", "generate_training_data"]


@dataclass
class TrainingData:
    """(phase-space point, |M|²) pairs of one process at fixed parameters.

    Attributes:
        events: hard events that pass the cuts, momenta (n, k, 4) in GeV.
        me2: exact |M|² per flavour channel, shape (n, n_channels), float64.
        r: the points of the map's unit hypercube, shape (n, dim).
        log_q: log-density of the sampling on the cube (before cuts), shape (n,).
        params: the process parameters the |M|² was evaluated at (name -> tensor).
        process_name: registry name of the process.
    """

    events: HardEvents
    me2: torch.Tensor
    r: torch.Tensor
    log_q: torch.Tensor
    params: dict
    process_name: str = ""

    def __post_init__(self) -> None:
        n = len(self.events)
        for name in ("me2", "r", "log_q"):
            t = getattr(self, name)
            if not isinstance(t, torch.Tensor) or t.shape[0] != n:
                got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                raise ValueError(f"{name}: expected {n} rows to match events, got {got}")

    def __len__(self) -> int:
        return len(self.events)

    def __getitem__(self, index) -> TrainingData:
        """Select points by index, slice or boolean mask."""
        return TrainingData(self.events[index], self.me2[index], self.r[index],
                            self.log_q[index], self.params, self.process_name)

    def split(self, fraction: float, *, generator: torch.Generator | None = None):
        """Random split into (rest, held-out) with ``fraction`` of the points held out."""
        if not 0 < fraction < 1:
            raise ValueError(f"fraction: expected a number in (0, 1), got {fraction!r}")
        perm = torch.randperm(len(self), generator=generator).to(self.me2.device)
        k = int(round(fraction * len(self)))
        return self[perm[k:]], self[perm[:k]]


def _draw(process, ps_map, sampler, n, params, generator, dtype, device):
    """n raw points: (events, me2, r, log_q, keep)."""
    if sampler is None:
        r = torch.rand(n, ps_map.dim, generator=generator, dtype=dtype, device=device)
        log_q = torch.zeros(n, dtype=torch.float64, device=device)
    else:
        r, log_q = sampler.sample(n, generator=generator)
        r = r.to(dtype=dtype, device=device)
        log_q = log_q.to(torch.float64).to(device)
    events, _ = ps_map.forward(r)
    with torch.no_grad():
        me2 = process.matrix_element(events, params).to(torch.float64)
    total = me2.sum(-1)
    keep = process.cuts(events) & torch.isfinite(total) & (total > 0)
    return events, me2, r, log_q, keep


def generate_training_data(
    process,
    n: int,
    *,
    params: Mapping[str, Any] | None = None,
    sampler=None,
    channel: int = 0,
    oversample: tuple[float, float] | None = None,
    batch_size: int | None = None,
    max_batches: int = 10_000,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    device=None,
    progress: bool = False,
) -> TrainingData:
    """Draw ``n`` points that pass the cuts, with their exact |M|² (see module docstring).

    Args:
        process: a :class:`~forward.processes.base.Process`.
        n: number of points to return (>= 1).
        params: process parameters (defaults for those not given).
        sampler: None (flat on the cube) or a proposal with ``sample(n, *, generator)``
            returning points of shape (n, dim) and log-densities of shape (n,).
        channel: index into ``process.phase_space(params)``.
        oversample: None or (fraction f in [0, 1), quantile q in (0, 1)).
        batch_size: points drawn per batch; default 4 n, between 1024 and 100 000.
        max_batches: give up (ValueError) after this many batches, e.g. when the cuts
            reject nearly everything.
        generator: random generator (on ``device``) for every draw.
        dtype, device: of the points and momenta (float64 recommended for the exact |M|²).
        progress: show a tqdm progress bar.

    Returns:
        :class:`TrainingData` with exactly ``n`` points.

    Raises:
        ValueError: bad ``n``, ``channel``, ``oversample``, or too few points pass.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected an integer >= 1, got {n!r}")
    if batch_size is None:
        batch_size = max(1024, min(100_000, 4 * n))
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected an integer >= 1, got {batch_size!r}")
    if oversample is not None:
        if len(oversample) != 2:
            raise ValueError(f"oversample: expected (fraction, quantile), got {oversample!r}")
        f, qt = float(oversample[0]), float(oversample[1])
        if not (0 <= f < 1 and 0 < qt < 1):
            raise ValueError(
                f"oversample: expected fraction in [0, 1) and quantile in (0, 1), "
                f"got {oversample!r}"
            )
    else:
        f, qt = 0.0, 0.5
    check_process(process)
    device = resolve_device(device)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator: expected a torch.Generator or None, got "
                        f"{type(generator).__name__}")
    # the points, their momenta and |M|² are held at once
    check_memory("n", n, 8 * 64, device=device, what="training points")
    pars = process.params(params, dtype=dtype, device=device)
    maps = process.phase_space(pars)
    if isinstance(channel, bool) or not isinstance(channel, int) or not 0 <= channel < len(maps):
        raise ValueError(
            f"channel: expected an index in [0, {len(maps) - 1}] into phase_space(), "
            f"got {channel!r}"
        )
    ps_map = maps[channel]
    n_rare = int(math.floor(f * n))
    n_plain = n - n_rare
    bar = None
    if progress:
        from forward.progress import progress_bar

        bar = progress_bar(total=n, desc=f"|M|² data ({process.name})", unit="pt")

    def collect(count, threshold):
        parts, got, batches = [], 0, 0
        while got < count:
            if batches >= max_batches:
                raise ValueError(
                    f"max_batches: only {got} of {count} points passed the cuts"
                    f"{' and the high-|M|² threshold' if threshold is not None else ''} "
                    f"after {batches} batches of {batch_size}"
                )
            ev, me2, r, log_q, keep = _draw(process, ps_map, sampler, batch_size, pars,
                                            generator, dtype, device)
            if threshold is not None:
                keep = keep & (me2.sum(-1) > threshold)
            idx = torch.nonzero(keep).squeeze(-1)[: count - got]
            parts.append((ev[idx], me2[idx], r[idx], log_q[idx]))
            got += len(idx)
            batches += 1
            if bar is not None:
                bar.update(len(idx))
        return parts

    parts = collect(n_plain, None)
    log_q_extra = None
    if n_rare > 0:
        plain_total = torch.cat([p[1] for p in parts]).sum(-1)
        threshold = float(torch.quantile(plain_total[:1_000_000], qt))
        parts += collect(n_rare, threshold)
        # density of the mixture relative to the base sampling: (1-f) + f·1[high]/(1-q)
        log_q_extra = (f, qt, threshold)
    if bar is not None:
        bar.close()
    events = HardEvents(
        torch.cat([p[0].momenta for p in parts]), torch.cat([p[0].x1 for p in parts]),
        torch.cat([p[0].x2 for p in parts]), process.sqrt_s,
    )
    me2 = torch.cat([p[1] for p in parts])
    r = torch.cat([p[2] for p in parts])
    log_q = torch.cat([p[3] for p in parts])
    if log_q_extra is not None:
        f, qt, thr = log_q_extra
        high = (me2.sum(-1) > thr).to(torch.float64)
        log_q = log_q + torch.log((1 - f) + f * high / (1 - qt))
    check_finite("me2", me2)
    return TrainingData(events, me2, r, log_q, pars, process.name)
