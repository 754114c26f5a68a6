"""Event generation in chunks, on one process or many: the same events for any number.

:func:`generate_events_chunked` splits a run of ``n_events`` into chunks of
``chunk_size`` events (the last one shorter). The multi-channel NIS sampler is trained
once, here, with a generator seeded with ``seed`` (exactly as
:func:`forward.generate.generate_events` does); then every chunk k unweights its events,
draws their flavours and final-state ids, showers them (optionally) and applies the
detector with its own generator seeded with :func:`forward.distributed.chunk_seed`
``(seed, k)``, and writes them to a chunk file. The chunks run through
:func:`forward.distributed.map_tasks`: in this process (``client=None``), on an executor
or on a Dask cluster, and their files are read back and merged in chunk order, so the
events do not depend on how many workers ran them (one included).

**Parallel determinism contract.** For a given (process, settings, parameters,
detector, seed, train_calls, overweight, chunk_size) the merged event set is the same,
event by event and bit by bit on the same platform, whatever the client and its number
of workers. It differs from the unchunked :func:`~forward.generate.generate_events`
(which draws all events from one stream), statistically equivalent to it.

The cross section is the inverse-variance combination of every weighted batch of every
chunk (in order); the weights are ``σ w / Σ w`` over all events, w the unweighting
weights. A chunk that fails (its worker died on every retry, or it raised) leaves no
merged set: the error propagates and the chunk folder is removed.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from forward.distributed import chunk_seed, map_tasks

__all__ = ["DEFAULT_CHUNK_SIZE", "chunk_sizes", "generate_events_chunked"]

#: events per chunk unless told otherwise (8 chunks for 200 000 events)
DEFAULT_CHUNK_SIZE = 25_000


#: the least an event takes in a chunk file: two four-momenta in float64
_MIN_BYTES_PER_EVENT = 64


def chunk_sizes(n_events: int, chunk_size: int) -> list[int]:
    """Events per chunk: ``chunk_size`` each, the last one the remainder.

    Raises:
        ValueError: counts that are not integers >= 1.
    """
    for name, v in (("n_events", n_events), ("chunk_size", chunk_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name}: expected an integer >= 1, got {v!r}")
    n_chunks = math.ceil(n_events / chunk_size)
    return [min(chunk_size, n_events - k * chunk_size) for k in range(n_chunks)]


@dataclass(frozen=True)
class _Shared:
    """What every chunk needs: sent once to each worker."""

    process: str
    proc: Any
    integrand: Any
    detector: Any
    sampler: Any
    settings: dict
    shower: bool
    overweight: float
    device: str
    variations: tuple = ()


@dataclass(frozen=True)
class _Chunk:
    index: int
    n_events: int
    seed: int
    path: str


def _run_chunk(shared: _Shared, chunk: _Chunk) -> dict:
    """Generate one chunk, write it to ``chunk.path``; return its MC statistics."""
    from forward.generate import detected_event_set, unweighted_events
    from forward.io import save_hdf5

    gen = torch.Generator(device=shared.device).manual_seed(chunk.seed)
    res = unweighted_events(shared.sampler, shared.integrand, chunk.n_events, generator=gen,
                            overweight=shared.overweight)
    events = detected_event_set(shared.process, shared.proc, shared.integrand,
                                shared.detector, res, settings=shared.settings, generator=gen,
                                seed=chunk.seed, shower=shared.shower,
                                overweight=shared.overweight, variations=shared.variations)
    save_hdf5(events, chunk.path, overwrite=True)
    return {"event_weights": res.event_weights.to(torch.float64).cpu(),
            "values": res.batch_values, "errors": res.batch_errors, "n_eval": res.n_eval,
            "n_overweight": res.n_overweight, "efficiency": res.efficiency,
            "overweight_fraction": res.overweight_fraction,
            "shower_failed": events.metadata.get("shower_failed")}


def _merge(parts: list, stats: list[dict], template_meta: dict):
    """One EventSet from the chunks' sets (in order), reco ``hard_index`` offset."""
    from forward.detector.objects import RecoEvents
    from forward.eventset import EventSet
    from forward.nis import combine_estimates

    first = parts[0]
    values = [v for s in stats for v in s["values"]]
    errors = [e for s in stats for e in s["errors"]]
    value, error, _ = combine_estimates(values, errors)
    w = torch.cat([s["event_weights"] for s in stats]).to(first.momenta.device)
    pids = torch.cat([p.pids.expand(len(p), -1) for p in parts]) \
        if any(p.pids.ndim == 2 for p in parts) or \
        any(not torch.equal(p.pids, first.pids) for p in parts) else first.pids
    offsets = [0]
    for p in parts[:-1]:
        offsets.append(offsets[-1] + len(p))
    reco = None
    if first.reco is not None:
        fields = {}
        for name in RecoEvents.field_names():
            fields[name] = torch.cat([
                getattr(p.reco, name) + off if name == "hard_index" else getattr(p.reco, name)
                for p, off in zip(parts, offsets, strict=True)])
        reco = RecoEvents(**fields)
    meta = dict(template_meta)
    meta.update({
        "n_eval": sum(s["n_eval"] for s in stats),
        "n_overweight": sum(s["n_overweight"] for s in stats),
        "efficiency": sum(s["efficiency"] for s in stats) / len(stats),
        "overweight_fraction": sum(s["overweight_fraction"] for s in stats) / len(stats),
    })
    if meta.get("shower"):
        meta["shower_failed"] = [f for s in stats for f in (s["shower_failed"] or [])]
    incoming = None if first.incoming_pids is None else \
        torch.cat([p.incoming_pids for p in parts])
    weights = value * w / w.sum()
    # named weights: each chunk's factor w_var / w_central on the merged weights
    named = {}
    for name in first.weights_named:
        factor = torch.cat([torch.where(p.weights != 0, p.weights_named[name] / p.weights,
                                        torch.zeros_like(p.weights)) for p in parts])
        named[name] = weights * factor.to(weights.device, weights.dtype)
    return EventSet(
        process=first.process, momenta=torch.cat([p.momenta for p in parts]),
        x1=torch.cat([p.x1 for p in parts]), x2=torch.cat([p.x2 for p in parts]), pids=pids,
        sqrt_s=first.sqrt_s, weights=weights, incoming_pids=incoming, reco=reco,
        parameters=first.parameters, settings=first.settings, cross_section=value,
        cross_section_error=error, seed=None, metadata=meta, weights_named=named)


def generate_events_chunked(
    process: str,
    n_events: int,
    *,
    settings: Mapping[str, Any] | None = None,
    params: Mapping[str, float] | None = None,
    detector="cms",
    shower: bool = False,
    seed: int = 0,
    device: torch.device | str = "cpu",
    train_calls: int = 200_000,
    overweight: float = 1e-3,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    client=None,
    chunk_dir: str | os.PathLike | None = None,
    progress: bool = False,
    variations=None,
):
    """Unweighted events with their detector response, generated chunk by chunk.

    The arguments shared with :func:`forward.generate.generate_events` mean the same;
    see the module docstring for the chunking and its determinism contract.

    Args:
        process: registry name of the process.
        n_events: number of unweighted hard events (>= 1).
        settings, params, detector, shower, device, train_calls, overweight,
            variations: as in :func:`~forward.generate.generate_events`.
        seed: seeds the sampler's training; chunk k uses ``chunk_seed(seed, k)``
            (recorded per chunk nowhere; the merged set's ``seed`` is the run's).
        chunk_size: events per chunk (>= 1); part of the contract, not of the cluster.
        client: where the chunks run: None (this process, one after the other), a
            :class:`concurrent.futures.Executor` or a ``dask.distributed.Client``.
        chunk_dir: folder in which a temporary folder for the chunk files is made (it
            must be visible to the workers: same machine or a shared file system);
            default the system's temporary folder. Removed at the end, success or not.
        progress: progress bars of the training.

    Returns:
        A :class:`~forward.eventset.EventSet` with ``reco`` filled, its weights summing
        to the cross section in pb; ``metadata`` records ``chunk_size``, ``n_chunks``
        and the summed statistics of the chunks.

    Raises:
        ValueError: bad arguments (as :func:`~forward.generate.generate_events`) or a bad
            ``chunk_size``.
        forward.distributed.TaskFailedError: a chunk whose worker died on every retry.
    """
    from forward.generate import setup_generation
    from forward.nis.multichannel import MultiChannelConfig, fit_multichannel, hadronic_channels
    from forward.provenance import provenance

    for name, v in (("n_events", n_events), ("chunk_size", chunk_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name}: expected an integer >= 1, got {v!r}")
    if chunk_dir is not None and not Path(chunk_dir).is_dir():
        raise ValueError(f"chunk_dir: {chunk_dir} is not an existing folder")
    # refused before any work: the chunk files need at least the momenta on disk
    where = chunk_dir if chunk_dir is not None else tempfile.gettempdir()
    free = shutil.disk_usage(where).free
    if n_events * _MIN_BYTES_PER_EVENT > free:
        raise ValueError(f"n_events: {n_events} events need at least "
                         f"{n_events * _MIN_BYTES_PER_EVENT / 2**30:.3g} GiB of disk for the "
                         f"chunks ({_MIN_BYTES_PER_EVENT} bytes each), more than the "
                         f"{free / 2**30:.3g} GiB free in {where}")
    sizes = chunk_sizes(n_events, chunk_size)
    from forward.variations import check_variations

    variations = tuple(check_variations(variations))
    if isinstance(train_calls, bool) or not isinstance(train_calls, int) or train_calls < 1000:
        raise ValueError(f"train_calls: expected an integer >= 1000, got {train_calls!r}")
    proc, det, integrand, settings = setup_generation(
        process, settings=settings, params=params, detector=detector, seed=seed,
        overweight=overweight, device=device)
    gen = torch.Generator(device=device).manual_seed(seed)
    f, maps = hadronic_channels(integrand)
    cfg = MultiChannelConfig(calls=train_calls, rounds=min(10, max(2, train_calls // 20_000)))
    sampler = fit_multichannel(f, maps, cfg, generator=gen, device=gen.device,
                               progress=progress)
    shared = _Shared(process, proc, integrand, det, sampler, settings, bool(shower),
                     float(overweight), str(torch.device(device)), variations)
    folder = tempfile.mkdtemp(prefix=".invsim-chunks-", dir=chunk_dir)
    try:
        chunks = [_Chunk(k, n, chunk_seed(seed, k), os.path.join(folder, f"chunk-{k:05d}.h5"))
                  for k, n in enumerate(sizes)]
        stats = map_tasks(_run_chunk, chunks, shared=shared, client=client, what="chunk")
        from forward.io import load_hdf5

        parts = [load_hdf5(c.path, device=device) for c in chunks]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    meta = dict(parts[0].metadata)
    meta.update({"generator": "invsim generate (multi-channel NIS unweighting, chunked)",
                 "train_calls": sampler.n_eval, "chunk_size": chunk_size,
                 "n_chunks": len(sizes), "chunk_seeds": "forward.distributed.chunk_seed(seed, k)",
                 "provenance": provenance(process=process, settings=settings,
                                          parameters=integrand.params, pdf=integrand.pdf,
                                          seed=seed, device=device, inputs=[detector],
                                          chunk_size=chunk_size, n_chunks=len(sizes))})
    merged = _merge(parts, stats, meta)
    merged.seed = seed
    return merged
