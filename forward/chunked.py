"""Event generation in chunks, on one process or many: the same events for any number.

:func:`generate_events_chunked` splits a run of ``n_events`` into chunks of
``chunk_size`` events (the last one shorter). The multi-channel NIS sampler is trained
once, here, with a generator seeded with ``seed`` (exactly as
:func:`forward.generate.generate_events` does); then every chunk k unweights its events,
draws their flavours and final-state ids, showers them (optionally) and applies the
detector with its own generator seeded with :func:`forward.distributed.chunk_seed`
``(seed, k)``, and returns its :class:`~forward.eventset.EventSet` (in memory: no chunk
files, so the workers need no file system shared with this process). The chunks run
through :func:`forward.distributed.map_tasks`: in this process (``client=None``), on an
executor or on a Dask cluster (also one still starting in the background: a
:class:`concurrent.futures.Future` of the client, waited for only after the training),
and are merged in chunk order, so the events do not depend on how many workers ran
them (one included).

**Parallel determinism contract.** For a given (process, settings, parameters,
detector, seed, train_calls, overweight, chunk_size) the merged event set is the same,
event by event and bit by bit on the same platform, whatever the client and its number
of workers. It differs from the unchunked :func:`~forward.generate.generate_events`
(which draws all events from one stream), statistically equivalent to it.

The cross section is the inverse-variance combination of every weighted batch of every
chunk (in order); the weights are ``σ w / Σ w`` over all events, w the unweighting
weights. A chunk that fails (its worker died on every retry, or it raised) leaves no
merged set: the error propagates.

**Cost.** The training runs once, here, before any chunk (the serial part: on 2 cores
``benchmarks/scaleout.py`` measures it with the phase ``timings`` this function can
report); the chunks are the parallel part. Each worker receives the shared objects
(process, integrand with its PDF grid, detector, trained sampler: about 6 MB for
Drell-Yan) once, and sends back its chunks' events.
"""

from __future__ import annotations

import concurrent.futures
import math
import os
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from forward.distributed import chunk_seed, map_tasks

__all__ = ["DEFAULT_CHUNK_SIZE", "WORKER_MODULES", "chunk_sizes", "generate_events_chunked"]

#: events per chunk unless told otherwise (8 chunks for 200 000 events)
DEFAULT_CHUNK_SIZE = 25_000

#: modules a worker needs for a chunk (:func:`forward.distributed.dask_client`'s
#: ``preload``: imported before the first chunk arrives)
WORKER_MODULES = ("forward.chunked", "forward.generate", "forward.detector",
                  "forward.eventset", "forward.nis.multichannel")


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


def _run_chunk(shared: _Shared, chunk: _Chunk) -> tuple:
    """Generate one chunk; return its EventSet and its MC statistics."""
    from forward.generate import detected_event_set, unweighted_events

    gen = torch.Generator(device=shared.device).manual_seed(chunk.seed)
    res = unweighted_events(shared.sampler, shared.integrand, chunk.n_events, generator=gen,
                            overweight=shared.overweight)
    events = detected_event_set(shared.process, shared.proc, shared.integrand,
                                shared.detector, res, settings=shared.settings, generator=gen,
                                seed=chunk.seed, shower=shared.shower,
                                overweight=shared.overweight, variations=shared.variations)
    return events, {"event_weights": res.event_weights.to(torch.float64).cpu(),
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
    timings: dict | None = None,
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
            :class:`concurrent.futures.Executor`, a ``dask.distributed.Client``, or a
            :class:`concurrent.futures.Future` of one (a cluster starting while the
            sampler trains, e.g. ``dask_client(..., background=True)``).
        chunk_dir: deprecated and ignored (the chunks no longer go through files; it
            goes in the next release): an existing folder, or None.
        progress: progress bars of the training.
        timings: a dict to receive the wall time in seconds of each phase, in order:
            ``setup`` (checks, process, PDF, detector), ``train`` (the NIS sampler),
            ``wait_client`` (waiting for a client still starting), ``chunks`` (all
            chunks, on the client, results back here) and ``merge``; or None.

    Returns:
        A :class:`~forward.eventset.EventSet` with ``reco`` filled, its weights summing
        to the cross section in pb; ``metadata`` records ``chunk_size``, ``n_chunks``
        and the summed statistics of the chunks.

    Raises:
        ValueError: bad arguments (as :func:`~forward.generate.generate_events`), a bad
            ``chunk_size``, more events than fit in memory, or a ``chunk_dir`` that is
            not a folder.
        TypeError: ``timings`` is not a dict.
        forward.distributed.TaskFailedError: a chunk whose worker died on every retry.
        ConnectionError: a client future whose cluster did not start.
    """
    from forward._validation import check_memory
    from forward.generate import BYTES_PER_EVENT, setup_generation
    from forward.nis.multichannel import MultiChannelConfig, fit_multichannel, hadronic_channels
    from forward.provenance import provenance

    clock = _Clock(timings)
    for name, v in (("n_events", n_events), ("chunk_size", chunk_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name}: expected an integer >= 1, got {v!r}")
    if chunk_dir is not None:
        if not os.path.isdir(chunk_dir):
            raise ValueError(f"chunk_dir: {chunk_dir} is not an existing folder")
        warnings.warn("generate_events_chunked: chunk_dir is ignored (the chunks are returned "
                      "in memory, not written to files) and goes in the next release",
                      FutureWarning, stacklevel=2)
    # every chunk comes back to this process and is merged here
    check_memory("n_events", n_events, BYTES_PER_EVENT, device=device, what="events")
    sizes = chunk_sizes(n_events, chunk_size)
    from forward.variations import check_variations

    variations = tuple(check_variations(variations))
    if isinstance(train_calls, bool) or not isinstance(train_calls, int) or train_calls < 1000:
        raise ValueError(f"train_calls: expected an integer >= 1000, got {train_calls!r}")
    proc, det, integrand, settings = setup_generation(
        process, settings=settings, params=params, detector=detector, seed=seed,
        overweight=overweight, device=device)
    clock.lap("setup")
    gen = torch.Generator(device=device).manual_seed(seed)
    f, maps = hadronic_channels(integrand)
    cfg = MultiChannelConfig(calls=train_calls, rounds=min(10, max(2, train_calls // 20_000)))
    sampler = fit_multichannel(f, maps, cfg, generator=gen, device=gen.device,
                               progress=progress)
    clock.lap("train")
    shared = _Shared(process, proc, integrand, det, sampler, settings, bool(shower),
                     float(overweight), str(torch.device(device)), variations)
    if isinstance(client, concurrent.futures.Future):
        client = client.result()
    clock.lap("wait_client")
    chunks = [_Chunk(k, n, chunk_seed(seed, k)) for k, n in enumerate(sizes)]
    results = map_tasks(_run_chunk, chunks, shared=shared, client=client, what="chunk")
    clock.lap("chunks")
    parts = [events for events, _ in results]  # on `device`, where the chunks made them
    stats = [s for _, s in results]
    del results
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
    clock.lap("merge")
    return merged


class _Clock:
    """Wall time of consecutive phases into a dict (nothing when it is None)."""

    def __init__(self, timings: dict | None):
        if timings is not None and not isinstance(timings, dict):
            raise TypeError(f"timings: expected a dict or None, got {type(timings).__name__}")
        self.timings = timings
        self.t = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        if self.timings is not None:
            self.timings[phase] = now - self.t
        self.t = now
