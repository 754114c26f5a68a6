"""Wall time of ``invsim generate --workers N`` (Dask) and identity of the event files.

Runs the command line once per worker count (a fresh local Dask cluster each time,
its start-up included in the wall time, as a user sees it), optionally once against a
running scheduler (``--scheduler``), and checks that every file holds the same events
as the first: all datasets equal element by element, the same attributes, and whether
the files are also byte-identical (they are not: the provenance records the time and
the command line, which the data comparison leaves out). Prints a table and one JSON object.

    # the issue's measurement, on an otherwise idle 2-core machine:
    OMP_NUM_THREADS=1 python3 benchmarks/scaleout.py --events 200000 --workers 1 2
    # against a separately started cluster (dask scheduler + 2 x dask worker):
    python3 benchmarks/scaleout.py --events 200000 --workers 1 --scheduler tcp://127.0.0.1:8786
    # a quick check that it works:
    python3 benchmarks/scaleout.py --events 3000 --train-calls 5000 --chunk-size 1000

The speed-up is bounded by Amdahl's law: the NIS sampler is trained once, in the
launching process, before the chunks run in parallel (see ``forward/chunked.py``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["compare_files", "main"]


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


def _run(args: argparse.Namespace, out: Path, extra: list[str]) -> float:
    cmd = [sys.executable, "-m", "invsim", "generate", args.process, "--events",
           str(args.events), "--train-calls", str(args.train_calls), "--seed", str(args.seed),
           "--chunk-size", str(args.chunk_size), "-o", str(out), *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return wall


def main(argv=None) -> dict:
    """Run the benchmark; returns the JSON-ready result."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--process", default="drell-yan")
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--train-calls", type=int, default=200_000)
    ap.add_argument("--chunk-size", type=int, default=25_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--scheduler", default=None, help="also run against this scheduler")
    ap.add_argument("--out", type=Path, default=None, help="write the JSON here too")
    args = ap.parse_args(argv)

    runs = []
    with tempfile.TemporaryDirectory(prefix="invsim-scaleout-") as tmp:
        for w in args.workers:
            path = Path(tmp) / f"workers{w}.h5"
            runs.append({"mode": f"--workers {w}", "file": path,
                         "wall_s": _run(args, path, ["--workers", str(w)])})
        if args.scheduler:
            path = Path(tmp) / "scheduler.h5"
            runs.append({"mode": f"--scheduler {args.scheduler}", "file": path,
                         "wall_s": _run(args, path, ["--scheduler", args.scheduler])})
        ref_file, ref_wall = runs[0]["file"], runs[0]["wall_s"]
        for r in runs:
            r.update(compare_files(ref_file, r["file"]))
            r["speedup"] = ref_wall / r["wall_s"]
        for r in runs:
            r["file"] = r["file"].name
    result = {
        "benchmark": "scaleout", "process": args.process, "events": args.events,
        "train_calls": args.train_calls, "chunk_size": args.chunk_size, "seed": args.seed,
        "cpu_count": os.cpu_count(), "platform": platform.platform(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "runs": runs,
        "all_identical": all(r["same_data"] for r in runs),
    }
    print(f"invsim generate {args.process} --events {args.events} "
          f"(train calls {args.train_calls}, chunks of {args.chunk_size})")
    print(f"{'mode':<40} {'wall [s]':>9} {'speed-up':>9} {'same data':>10} {'same bytes':>11}")
    for r in runs:
        print(f"{r['mode']:<40} {r['wall_s']:>9.2f} {r['speedup']:>9.2f} "
              f"{str(r['same_data']):>10} {str(r['same_bytes']):>11}")
    print(json.dumps(result))
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
