"""Benchmark of forward.pdf: PDF evaluations per second, all flavours at once.

Compares our torch reader (``forward.pdf.mkPDF(...).xfxQ2_all``, one vectorised call on
a batch of 10⁶ points, CPU and CUDA when available) with Pythia 8's own ``LHAGrid1``
reader through ``pythia8mc``, which has no vectorised path: its ``PDF`` object only
offers scalar ``xf(id, x, Q2)`` / ``xfUpdate(id, x, Q2)``. Pythia is therefore timed on
a subsample of points called one by one from Python, and its rate extrapolated to the
full batch (the cost per point is flat). Two Pythia variants:

* ``xf`` per flavour: ``pdf.xf(pid, x, Q2)`` for each of the 11 flavours (the first call
  fills all flavours, the other 10 hit Pythia's cache);
* ``xfUpdate`` + attributes: one C++ update, then the 11 values read as attributes.

Points are log-uniform in 1e-5 < x < 0.9 and 10 < Q < 5000 GeV. A "point" is one
(x, Q²) with all 11 flavours; flavour values per second = 11 × points per second.

    OMP_NUM_THREADS=1 python3 benchmarks/pdf.py
    python3 benchmarks/pdf.py --n 1000000 --pythia-n 20000 --out benchmarks/results/pdf.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time

import torch

from forward.pdf import mkPDF

__all__ = ["main"]

SET = "NNPDF31_lo_as_0118"
_ATTR = {21: "xg", 1: "xd", 2: "xu", 3: "xs", 4: "xc", 5: "xb",
         -1: "xdbar", -2: "xubar", -3: "xsbar", -4: "xcbar", -5: "xbbar"}


def _points(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(2, n, dtype=torch.float64, generator=g)
    x = torch.exp(math.log(1e-5) + u[0] * (math.log(0.9) - math.log(1e-5)))
    q = torch.exp(math.log(10.0) + u[1] * (math.log(5000.0) - math.log(10.0)))
    return x, q * q


def _best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def bench_torch(x, q2, device: str, repeats: int) -> dict:
    pdf = mkPDF(SET, device=device)
    xd, qd = x.to(device), q2.to(device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def run():
        pdf.xfxQ2_all(xd, qd)
        sync()

    pdf.xfxQ2_all(xd[:1000], qd[:1000])  # warm-up
    sync()
    sec = _best_of(run, repeats)
    return {"method": f"torch ({device})", "n_points": len(x), "seconds": sec,
            "points_per_s": len(x) / sec, "extrapolated": False}


def bench_pythia(x, q2, n_sub: int, pids: list[int]) -> list[dict]:
    try:
        import pythia8mc
    except ImportError:
        return []
    py = pythia8mc.Pythia("", False)
    py.readString("PDF:pSet = 18")
    pdf = py.getPDFPtr(2212)
    xs, qs = x[:n_sub].tolist(), q2[:n_sub].tolist()

    def per_flavour():
        for xi, qi in zip(xs, qs, strict=True):
            for p in pids:
                pdf.xf(p, xi, qi)

    attrs = [_ATTR[p] for p in pids]

    def update_then_read():
        for xi, qi in zip(xs, qs, strict=True):
            pdf.xfUpdate(0, xi, qi)
            for a in attrs:
                getattr(pdf, a)

    out = []
    for name, fn in (("Pythia 8 xf per flavour", per_flavour),
                     ("Pythia 8 xfUpdate + attributes", update_then_read)):
        sec = _best_of(fn, 2)
        out.append({"method": name, "n_points": n_sub, "seconds": sec,
                    "points_per_s": n_sub / sec, "extrapolated": True,
                    "seconds_for_full_batch": sec * len(x) / n_sub})
    return out


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark, print a Markdown table and write JSON; returns the results."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="batch size (points)")
    ap.add_argument("--pythia-n", type=int, default=20_000, help="Pythia subsample size")
    ap.add_argument("--repeats", type=int, default=3, help="torch timings: best of")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/results/pdf.json")
    args = ap.parse_args(argv)

    x, q2 = _points(args.n, args.seed)
    pids = mkPDF(SET).flavors()
    rows = [bench_torch(x, q2, "cpu", args.repeats)]
    if torch.cuda.is_available():
        rows.append(bench_torch(x, q2, "cuda", args.repeats))
    rows += bench_pythia(x, q2, min(args.pythia_n, args.n), pids)
    ref = next((r for r in rows if r["method"].startswith("Pythia 8 xf ")), rows[0])
    for r in rows:
        r["flavour_values_per_s"] = r["points_per_s"] * len(pids)
        r["speed_vs_pythia_xf"] = r["points_per_s"] / ref["points_per_s"]

    print(f"PDF {SET}, {len(pids)} flavours per point, batch {args.n:,} points, "
          f"torch threads {torch.get_num_threads()}\n")
    print("| method | points timed | time [s] | points/s | flavour values/s | vs Pythia xf |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        note = " (extrapolated from subsample)" if r["extrapolated"] else ""
        print(f"| {r['method']}{note} | {r['n_points']:,} | {r['seconds']:.3f} | "
              f"{r['points_per_s']:.3g} | {r['flavour_values_per_s']:.3g} | "
              f"{r['speed_vs_pythia_xf']:.2f}x |")
    if not any(r["method"].startswith("Pythia") for r in rows):
        print("\npythia8mc not installed: no Pythia comparison.")
    print("\npythia8mc has no vectorised PDF path (only scalar xf/xfUpdate), so Pythia is "
          "called point by point from Python; its rate is measured on the subsample.")

    result = {
        "set": SET, "n_points": args.n, "n_flavours": len(pids), "seed": args.seed,
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "torch": torch.__version__, "python": platform.python_version(),
        "machine": platform.machine(), "rows": rows,
    }
    out_dir = os.path.dirname(args.out)
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(result, fh, indent=2)
    print(f"\nwrote {args.out}")
    return result


if __name__ == "__main__":
    main()
