"""Sampling throughput of the NIS proposal that :func:`forward.nis.fit` returns.

For each dimension a proposal is trained with :func:`forward.nis.fit` (default
pipeline: VEGAS warm start, spline flow on the cube, VEGAS grid as defensive
component) on the camel function, with a small budget (the network's size, not its
training, sets the cost of sampling). Then ``proposal.sample(n)`` (points and their
exact float64 mixture log-densities) and ``proposal.flow.sample(n)`` (the flow alone)
are timed, best of ``--repeats``, for each thread count. Events per second are
printed as a Markdown table and written as JSON.

    python3 benchmarks/nis_sampling.py --threads 1,2 --out benchmarks/results/nis_sampling.json
    python3 benchmarks/nis_sampling.py --device cuda --n 1000000 \\
        --out benchmarks/results/nis_sampling_gpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import torch

from forward.nis import NISConfig, fit
from forward.nis.toys import camel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nis import sampling_rate  # noqa: E402  (benchmarks/nis.py)

__all__ = ["main", "measure"]


def _ints(name: str, text: str) -> list[int]:
    try:
        out = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{name}: expected comma-separated integers, got {text!r}") from None
    if not out or any(v < 1 for v in out):
        raise ValueError(f"{name}: expected integers >= 1, got {text!r}")
    return out


def measure(
    dims: int, threads: list[int], *, n: int, repeats: int, train_calls: int, device: str,
    seed: int = 0,
) -> list[dict]:
    """Train a proposal in ``dims`` dimensions and time its sampling per thread count.

    Args:
        dims: dimensions of the camel integrand.
        threads: torch intra-op thread counts to time (CPU; ignored on CUDA).
        n: points per ``sample`` call.
        repeats: timed calls (the best is kept) after one untimed call.
        train_calls: integrand calls for :func:`forward.nis.fit`.
        device: torch device of the proposal.
        seed: seed of the training and sampling generators.

    Returns:
        One row per thread count with the events per second of the proposal and of the
        flow.
    """
    dev = torch.device(device)
    gen = torch.Generator(device=dev).manual_seed(seed)
    cfg = NISConfig(calls=train_calls)
    nf = fit(camel(dims), dims, cfg, generator=gen, device=dev)
    q = nf.proposal
    rows = []
    for t in threads if dev.type == "cpu" else [torch.get_num_threads()]:
        torch.set_num_threads(t)
        t0 = time.perf_counter()
        q.sample(n, generator=gen)  # untimed first call (allocations)
        rows.append({
            "dims": dims, "device": str(dev), "threads": t, "n": n,
            "first_call_s": time.perf_counter() - t0,
            "train_calls": nf.n_eval, "train_s": nf.seconds,
            "proposal_events_per_s": sampling_rate(q, gen, n, repeats),
            "flow_events_per_s": sampling_rate(q.flow, gen, n, repeats),
        })
    return rows


def markdown(rows: list[dict]) -> str:
    """The rows as a Markdown table."""
    lines = [
        "| dims | device | threads | proposal ev/s (x, log q) | flow ev/s |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dims']} | {r['device']} | {r['threads']} "
            f"| {r['proposal_events_per_s']:.3g} | {r['flow_events_per_s']:.3g} |"
        )
    return "\n".join(lines)


def main(argv=None) -> None:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dims", default="2,4,8", help="comma-separated dimensions")
    ap.add_argument("--threads", default="1,2", help="comma-separated CPU thread counts")
    ap.add_argument("--n", type=int, default=200_000, help="points per sample call")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--train-calls", type=int, default=100_000)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default="benchmarks/results/nis_sampling.json")
    args = ap.parse_args(argv)
    dims = _ints("--dims", args.dims)
    threads = _ints("--threads", args.threads)
    for name in ("n", "repeats", "train_calls"):
        value = getattr(args, name)
        if value < 1:
            raise ValueError(f"--{name.replace('_', '-')}: expected >= 1, got {value}")
    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device: {args.device!r} requested but CUDA is not available")
    rows = []
    t0 = time.perf_counter()
    for d in dims:
        rows += measure(d, threads, n=args.n, repeats=args.repeats,
                        train_calls=args.train_calls, device=args.device)
    table = markdown(rows)
    print(table)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    info = {"torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "seconds": time.perf_counter() - t0}
    if dev.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(dev)
    with open(args.out, "w") as fh:
        json.dump({"rows": rows, "table": table, **info}, fh, indent=1)


if __name__ == "__main__":
    main()
