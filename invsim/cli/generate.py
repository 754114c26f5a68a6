"""``invsim generate``: unweighted hard events, optional shower, detector, paired HDF5 file.

Example::

    invsim generate drell-yan --events 10000 --set mll_min=60 --set mll_max=120 \\
        --detector cms --train-calls 200000 --seed 1 -o dy.h5

    invsim generate drell-yan --events 10000 --set mll_min=60 --set mll_max=120 \\
        --scale-variations --pdf-variation NNPDF31_lo_as_0130 -o dy.lhe

PROCESS is any registered name (see ``invsim xsec --list``). The events come from
:func:`forward.generate.generate_events` (multi-channel NIS training and unweighting,
optional Pythia 8 + fastjet shower, detector); ``reco.hard_index`` links every
reconstructed event to its hard event. The file's ``metadata["provenance"]`` records
how it was made (:mod:`forward.provenance`). ``--json`` prints one JSON object
(``process, n_events, sigma_pb, error_pb, efficiency, n_overweight, n_passed, seed,
named_weights, output, provenance``).

``--format hdf5|lhe|root`` picks the file format; by default the output's suffix does
(``.h5``/``.hdf5``, ``.lhe``/``.lhe.gz``, ``.root``), and a format that contradicts the
suffix is a usage error. HDF5 and ROOT hold hard and reconstructed events, LHE the hard
events only.

``--scale-variations`` adds the 7-point μ_R/μ_F variation (factors in {½, 1, 2}, without
the opposite corners) and ``--pdf-variation PDF`` (repeatable; a set name,
``NAME/MEMBER`` or an LHAPDF id) other PDFs as named weights of every event
(:func:`forward.variations.event_set_weights`: the event's weight times dσ_var/dμ ÷
dσ/dμ at its own hard point, so each named weight sums to the variation's σ). Names:
``mur0.5_muf1``, ... and the PDF as given; written as the dataset
``hard/weights_named`` (HDF5), ``<rwgt>`` weights declared in ``<initrwgt>`` (LHE) and
the branches ``weight_0``, ... (ROOT).

With ``--workers N`` (a local Dask cluster of N single-threaded processes) or
``--scheduler ADDRESS`` (a running ``dask scheduler``) the events are generated in
chunks of ``--chunk-size`` events by :func:`forward.chunked.generate_events_chunked`:
chunk k is seeded with ``forward.distributed.chunk_seed(seed, k)``, so the file is the
same for any number of workers, ``--workers 1`` included. Without either option the
events come from one stream (the unchunked path: a different, statistically equivalent
file). The local cluster starts (its workers forked from a process that has imported
torch and invsim once) while the sampler trains; workers of a running scheduler import
them meanwhile. The chunks' events come back to this process (no shared file system
is needed) and are written to OUTPUT atomically; a failed chunk leaves no OUTPUT. With
``--json`` the result also holds ``timings_s``, the wall time of each phase. Workers
started by hand for ``--scheduler`` run the chunks faster with glibc's adaptive malloc
thresholds (docs/design.md §2.9)::

    MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=67108864 \\
        DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False dask worker ADDRESS --nthreads 1
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from invsim.cli._common import (
    DEVICE,
    Count,
    claim_output,
    file_inputs,
    one_line,
    option_message,
    parameter_names,
    parse_assignments,
    parse_value,
    process_class_argument,
    show_progress,
    verbosity_options,
)

__all__ = ["generate"]


@click.command("generate")
@click.argument("process_name", metavar="PROCESS")
@click.option("--events", "n_events", type=Count(1), required=True,
              help="Number of unweighted hard events.")
@click.option("--set", "assignments", multiple=True, metavar="NAME=VALUE",
              help="Process parameter or setting, repeatable (e.g. --set mll_min=60).")
@click.option("--shower", is_flag=True, help="Shower and hadronise with Pythia 8 + fastjet.")
@click.option("--detector", "card", default="cms", show_default=True, metavar="CARD",
              help="Detector card: 'cms' or a JSON/YAML file.")
@click.option("--seed", type=click.IntRange(min=0, max=899_999_999), default=0,
              show_default=True, help="Seed of every random number (Pythia gets seed + 1).")
@click.option("--device", type=DEVICE, default="cpu", show_default=True, help="Torch device.")
@click.option("--train-calls", type=Count(1000), default=200_000, show_default=True,
              help="Integrand calls for training the multi-channel NIS sampler.")
@click.option("--overweight", type=click.FloatRange(min=0.0, max=1.0, max_open=True),
              default=1e-3, show_default=True,
              help="Allowed fraction of the total weight above the maximum weight.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Event file to write (.h5, .lhe, .lhe.gz or .root).")
@click.option("--format", "fmt", type=click.Choice(["hdf5", "lhe", "root"]), default=None,
              help="File format [default: from the OUTPUT suffix].")
@click.option("--scale-variations", is_flag=True,
              help="Add per-event weights of the 7-point mu_R/mu_F variation (factors 1/2, 1, 2).")
@click.option("--pdf-variation", "pdf_variations", multiple=True, metavar="PDF",
              help="Add per-event weights for this PDF (set name, NAME/MEMBER or LHAPDF id), "
                   "repeatable.")
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Generate in chunks on a local Dask cluster of this many processes.")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Generate in chunks on a running Dask scheduler (tcp://host:8786).")
@click.option("--chunk-size", type=click.IntRange(min=1), default=None,
              help="Events per chunk with --workers/--scheduler [default: 25000].")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@verbosity_options
def generate(process_name, n_events, assignments, shower, card, seed, device, train_calls,
             overweight, output, fmt, scale_variations, pdf_variations, overwrite, workers,
             scheduler, chunk_size, as_json) -> None:
    """Generate N unweighted events of PROCESS, apply the detector, write hard/reco pairs."""
    from forward import variations as var
    from forward.io import event_format, write_events

    if workers is not None and scheduler is not None:
        raise click.UsageError("--workers, --scheduler: give one of them, not both")
    if chunk_size is not None and workers is None and scheduler is None:
        raise click.UsageError("--chunk-size: only with --workers or --scheduler")
    try:
        fmt = event_format(output, fmt)
    except ValueError as err:
        raise click.UsageError(option_message(err, {"fmt": "--format"})) from err
    claim_output(output, inputs=file_inputs(card), overwrite=overwrite)
    cls = process_class_argument(process_name)
    params, settings = parse_assignments(assignments, parameter_names(cls),
                                         cls.setting_names())
    variations = (var.scale_variations() if scale_variations else []) + \
        var.pdf_variations([parse_value(p) for p in pdf_variations])
    kwargs = dict(settings=settings, params=params, detector=card, shower=shower, seed=seed,
                  device=device, train_calls=train_calls, overweight=overweight,
                  progress=show_progress(as_json), variations=variations or None)
    timings: dict = {}
    try:
        if workers is None and scheduler is None:
            from forward.generate import generate_events

            t0 = time.perf_counter()
            events = generate_events(process_name, n_events, **kwargs)
            timings["generate"] = time.perf_counter() - t0
        else:
            events = _generate_chunked(process_name, n_events, kwargs, workers, scheduler,
                                       chunk_size, output, timings)
    except (ValueError, TypeError, FileNotFoundError) as err:  # PDFSetNotFoundError too
        raise click.UsageError(option_message(
            err, {"n_events": "--events", "train_calls": "--train-calls",
                  "variations": "--pdf-variation"})) from err
    t0 = time.perf_counter()
    write_events(events, output, fmt=fmt, overwrite=overwrite)
    timings["write"] = time.perf_counter() - t0
    meta = events.metadata
    passed = int(events.reco.passed.sum())
    if as_json:
        click.echo(json.dumps({
            "process": process_name, "n_events": n_events, "sigma_pb": events.cross_section,
            "error_pb": events.cross_section_error, "efficiency": meta["efficiency"],
            "n_overweight": meta["n_overweight"], "n_passed": passed, "seed": seed,
            "named_weights": list(events.weights_named or {}), "output": str(output),
            "provenance": meta.get("provenance"),
            "timings_s": {k: round(v, 4) for k, v in timings.items()}}))
        return
    click.echo(f"{process_name}: {n_events} events, σ = {events.cross_section:.6g} ± "
               f"{events.cross_section_error:.2g} pb, unweighting efficiency "
               f"{meta['efficiency']:.3g}, {meta['n_overweight']} overweight; {passed} pass "
               f"the selection" + (f"; {len(events.weights_named)} named weights"
                                   if events.weights_named else "") + f" -> {output}")


def _generate_chunked(process_name, n_events, kwargs, workers, scheduler, chunk_size, output,
                      timings):
    """Chunked generation on a Dask client started (or connected) in the background while
    the sampler trains; connection and worker failures as one line. Fills ``timings``
    (seconds) with the phases of :func:`~forward.chunked.generate_events_chunked` and
    ``close`` (stopping the local cluster)."""
    from forward.chunked import DEFAULT_CHUNK_SIZE, WORKER_MODULES, generate_events_chunked
    from forward.distributed import TaskFailedError, dask_client

    try:
        # invsim.cli too: a worker process re-runs the main module (python -m invsim), and
        # its imports then come from the forkserver instead of costing each worker seconds
        cm = dask_client(workers=workers, scheduler=scheduler,
                         preload=(*WORKER_MODULES, "invsim.cli"), background=True)
        with cm as client:
            events = generate_events_chunked(
                process_name, n_events, chunk_size=chunk_size or DEFAULT_CHUNK_SIZE,
                client=client, timings=timings, **kwargs)
            t0 = time.perf_counter()
        timings["close"] = time.perf_counter() - t0
        return events
    except (ConnectionError, ImportError, TaskFailedError) as err:
        raise click.ClickException(f"{one_line(err)}; {output} was not written") from err
