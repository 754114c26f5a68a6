"""Wall time of ``invsim generate --workers N`` (Dask) and identity of the event files.

Runs the command line (a new process each time, its imports, the start and stop of its
local Dask cluster included in the wall time, as a user sees it) for every mode:
``--workers N`` for each N, optionally the unchunked path without Dask (``--plain``)
and ``--scheduler ADDRESS`` against a running scheduler (given, or started here with
``--start-cluster N``: ``dask scheduler`` and N ``dask worker ADDRESS --nthreads 1``
processes with :data:`WORKER_ENV`, stopped at the end). The modes alternate within each
of ``--rounds`` rounds, so that the load of a shared machine hits all of them alike;
the table gives the median wall time per mode, its speed-up over the median of the
first ``--workers`` mode, and the median of every phase the command reports (``timings_s`` of
``invsim generate --json``: setup, train, wait_client, chunks, merge, close, write;
``other`` is the rest of the wall time: interpreter start, imports, the cluster's
start when it is not hidden behind the training). Every chunked file is compared with
the first: all datasets equal element by element, the same attributes (the
provenance's time and command line left out), and whether the bytes are equal too.
Prints a table and one JSON object.

    # the issue's measurement (2-core machine):
    OMP_NUM_THREADS=1 python3 benchmarks/scaleout.py --events 200000 --workers 1 2 --plain
    # against a separately started cluster (dask scheduler + 2 x dask worker):
    OMP_NUM_THREADS=1 python3 benchmarks/scaleout.py --events 200000 --workers 1 \\
        --start-cluster 2
    # a quick check that it works:
    python3 benchmarks/scaleout.py --events 3000 --train-calls 5000 --chunk-size 1000 \\
        --rounds 1

The speed-up is bounded by Amdahl's law: the process start and imports (torch alone
takes seconds), the NIS training and the writing of the file run once, in the
launching process; only the chunks run in parallel (see ``forward/chunked.py``).
``serial_s`` and ``parallel_s`` in the JSON split the median wall time of the first
mode accordingly, and ``amdahl_bound`` is the best speed-up that split allows with
the largest number of workers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["WORKER_ENV", "compare_files", "main"]

#: environment of the ``dask worker`` processes started by ``--start-cluster``: glibc's
#: adaptive malloc thresholds at their 64-bit caps (Dask's nanny sets
#: ``MALLOC_TRIM_THRESHOLD_=65536``, which turns the adaptation off: every tensor above
#: 128 kB becomes a fresh mmap, 2.5 times the CPU time per chunk) and no statistical
#: profiler; what docs/design.md §2.9 recommends for workers started by hand
WORKER_ENV = {"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "67108864",
              "DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": "False"}


def compare_files(a: Path, b: Path) -> dict:
    """Whether two invsim HDF5 files hold the same data (and the same bytes).

    Returns:
        ``{"same_data": bool, "same_bytes": bool, "differences": [names]}``.
    """
    import h5py
    import numpy as np

    diffs = []
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        if dict(fa.attrs).keys() != dict(fb.attrs).keys():
            diffs.append("attrs")
        for k in fa.attrs:
            va, vb = fa.attrs[k], fb.attrs.get(k)
            if k == "metadata":  # the provenance's time and command line differ by design
                va, vb = (_same_run(json.loads(v)) for v in (va, vb))
                if va != vb:
                    diffs.append(f"attr {k}")
            elif not np.array_equal(np.asarray(va), np.asarray(vb)):
                diffs.append(f"attr {k}")
        names_a, names_b = [], []
        fa.visit(names_a.append)
        fb.visit(names_b.append)
        if sorted(names_a) != sorted(names_b):
            diffs.append("layout")
        for name in names_a:
            if isinstance(fa[name], h5py.Dataset) and name in fb:
                if not np.array_equal(fa[name][()], fb[name][()]):
                    diffs.append(name)
    same_bytes = _sha256(a) == _sha256(b)
    return {"same_data": not diffs, "same_bytes": same_bytes, "differences": diffs}


def _same_run(metadata: dict) -> dict:
    """Metadata without the provenance's time, command line and worker options."""
    prov = {k: v for k, v in metadata.get("provenance", {}).items()
            if k not in ("created_utc", "command")}
    return {**metadata, "provenance": prov}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _run(args: argparse.Namespace, out: Path, extra: list[str]) -> dict:
    """One ``invsim generate`` run: its wall time and the phases it reports."""
    cmd = [sys.executable, "-m", "invsim", "generate", args.process, "--events",
           str(args.events), "--train-calls", str(args.train_calls), "--seed", str(args.seed),
           "-o", str(out), "--overwrite", "--json", *extra]
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    # CPU of the command's own process (and of the children it waited for; not of the
    # forkserver's workers, which it does not wait for): on a loaded machine the wall
    # time of its serial part is this CPU time stretched by the load
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    timings = json.loads(proc.stdout.strip().splitlines()[-1])["timings_s"]
    timings["other"] = wall - sum(timings.values())
    return {"wall_s": wall, "cpu_s": cpu, "timings_s": timings, "command": " ".join(cmd[1:])}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_cluster(n_workers: int, log_dir: Path, env: dict[str, str]
                   ) -> tuple[str, list[subprocess.Popen]]:
    """``dask scheduler`` and ``n_workers`` x ``dask worker --nthreads 1``, in the background,
    the workers with ``env`` added to their environment."""
    dask = shutil.which("dask") or "dask"
    address = f"tcp://127.0.0.1:{_free_port()}"
    procs = [subprocess.Popen(
        [dask, "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1],
         "--dashboard-address", ":0"], stdout=subprocess.DEVNULL,
        stderr=open(log_dir / "scheduler.log", "w"))]
    deadline = time.time() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", int(address.rsplit(":", 1)[1])), 1).close()
            break
        except OSError:
            if time.time() > deadline or procs[0].poll() is not None:
                _stop(procs)
                raise SystemExit("dask scheduler did not start; see scheduler.log") from None
            time.sleep(0.2)
    for k in range(n_workers):
        procs.append(subprocess.Popen(
            [dask, "worker", address, "--nthreads", "1", "--dashboard-address", ":0"],
            stdout=subprocess.DEVNULL, stderr=open(log_dir / f"worker{k}.log", "w"),
            env={**os.environ, **env}))
    from distributed import Client

    with Client(address, timeout="60s") as client:
        client.wait_for_workers(n_workers, timeout=120)
    return address, procs


def _stop(procs: list[subprocess.Popen]) -> None:
    """Stop the processes started by :func:`_start_cluster` (workers first)."""
    for p in reversed(procs):
        p.terminate()
    for p in reversed(procs):
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()


def main(argv=None) -> dict:
    """Run the benchmark; returns the JSON-ready result."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--process", default="drell-yan")
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--train-calls", type=int, default=200_000)
    ap.add_argument("--chunk-size", type=int, default=25_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=3, help="runs of every mode (alternating)")
    ap.add_argument("--plain", action="store_true", help="also time the path without Dask")
    ap.add_argument("--scheduler", default=None, help="also run against this scheduler")
    ap.add_argument("--start-cluster", type=int, default=None, metavar="N",
                    help="start a dask scheduler and N workers (1 thread each) and also "
                         "run against them")
    ap.add_argument("--default-worker-env", action="store_true",
                    help="start the --start-cluster workers without WORKER_ENV (Dask's "
                         "MALLOC_TRIM_THRESHOLD_=65536 and profiler)")
    ap.add_argument("--out", type=Path, default=None, help="write the JSON here too")
    args = ap.parse_args(argv)
    if args.scheduler and args.start_cluster:
        ap.error("--scheduler, --start-cluster: give one of them")

    chunk = ["--chunk-size", str(args.chunk_size)]
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="invsim-scaleout-") as tmp:
        tmp = Path(tmp)
        try:
            scheduler = args.scheduler
            if args.start_cluster:
                scheduler, procs = _start_cluster(
                    args.start_cluster, tmp, {} if args.default_worker_env else WORKER_ENV)
            modes = [(f"--workers {w}", ["--workers", str(w), *chunk], f"workers{w}")
                     for w in args.workers]
            if scheduler:
                n = f" ({args.start_cluster} workers)" if args.start_cluster else ""
                modes.append((f"--scheduler{n}", ["--scheduler", scheduler, *chunk],
                              "scheduler"))
            if args.plain:
                modes.append(("plain (no Dask, one stream)", [], "plain"))
            runs = {label: [] for label, _, _ in modes}
            for r in range(args.rounds):
                # alternate the order so that no mode always runs first (cold caches)
                for label, extra, stem in (modes if r % 2 == 0 else modes[::-1]):
                    res = _run(args, tmp / f"{stem}-{r}.h5", extra)
                    res["file"] = tmp / f"{stem}-{r}.h5"
                    runs[label].append(res)
                    print(f"round {r}: {label:<32} {res['wall_s']:7.2f} s", file=sys.stderr,
                          flush=True)
        finally:
            _stop(procs)
        ref_label = modes[0][0]
        ref_file = runs[ref_label][0]["file"]
        rows = []
        for label, _, stem in modes:
            walls = [x["wall_s"] for x in runs[label]]
            phases = {}
            for x in runs[label]:
                for k, v in x["timings_s"].items():
                    phases.setdefault(k, []).append(v)
            same = [compare_files(ref_file, x["file"]) for x in runs[label]] \
                if stem != "plain" else None
            rows.append({
                "mode": label, "command": runs[label][0]["command"].replace(str(tmp), "TMP"),
                "wall_s": walls, "median_wall_s": statistics.median(walls),
                "cpu_s": [x["cpu_s"] for x in runs[label]],
                "median_cpu_s": statistics.median(x["cpu_s"] for x in runs[label]),
                "median_phases_s": {k: statistics.median(v) for k, v in phases.items()},
                "same_data": None if same is None else all(c["same_data"] for c in same),
                "same_bytes": None if same is None else all(c["same_bytes"] for c in same),
                "differences": None if same is None else sorted(
                    {d for c in same for d in c["differences"]}),
            })
    ref = rows[0]["median_wall_s"]
    for row in rows:
        row["speedup_vs_first"] = ref / row["median_wall_s"]
    ph = rows[0]["median_phases_s"]
    parallel = ph.get("chunks", 0.0)
    serial = rows[0]["median_wall_s"] - parallel
    n_max = max(args.workers + ([args.start_cluster] if args.start_cluster else []))
    result = {
        "benchmark": "scaleout", "process": args.process, "events": args.events,
        "train_calls": args.train_calls, "chunk_size": args.chunk_size, "seed": args.seed,
        "rounds": args.rounds, "cpu_count": os.cpu_count(), "platform": platform.platform(),
        "load_average": os.getloadavg(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "worker_env": None if not args.start_cluster else
        ({} if args.default_worker_env else WORKER_ENV), "runs": rows,
        "all_identical": all(r["same_data"] for r in rows if r["same_data"] is not None),
        "serial_s": serial, "parallel_s": parallel,
        "amdahl_bound": (serial + parallel) / (serial + parallel / n_max),
    }
    print(f"invsim generate {args.process} --events {args.events} (train calls "
          f"{args.train_calls}, chunks of {args.chunk_size}); medians of {args.rounds} "
          f"alternating rounds")
    names = sorted({k for r in rows for k in r["median_phases_s"]},
                   key=lambda k: ["setup", "train", "wait_client", "chunks", "merge", "close",
                                  "generate", "write", "other"].index(k)
                   if k in ("setup", "train", "wait_client", "chunks", "merge", "close",
                            "generate", "write", "other") else 99)
    print(f"{'mode':<30} {'wall [s]':>8} {'speed-up':>8} {'same data':>9} {'cpu [s]':>8} " +
          " ".join(f"{n[:8]:>8}" for n in names))
    for r in rows:
        print(f"{r['mode']:<30} {r['median_wall_s']:>8.2f} {r['speedup_vs_first']:>8.2f} "
              f"{str(r['same_data']):>9} {r['median_cpu_s']:>8.2f} " + " ".join(
                  f"{r['median_phases_s'][n]:>8.2f}" if n in r["median_phases_s"] else
                  f"{'-':>8}" for n in names))
    print(f"serial {serial:.2f} s + parallel (chunks) {parallel:.2f} s in {ref_label}: "
          f"Amdahl bound with {n_max} workers {result['amdahl_bound']:.2f}x")
    print(json.dumps(result))
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
