"""Cost of the exact n-gluon |M|² from forward.amplitudes as a function of n (one CPU thread).

For g g -> (n-2) g, n = 4 ... 7, at RAMBO points (√ŝ = 1 TeV), the time per phase-space
point of

* one colour-ordered amplitude for one helicity configuration (Berends–Giele, O(n⁴));
* |M|² summed over helicities at leading colour ((n-1)! orderings);
* |M|² summed over helicities and colours with the DDM colour matrix ((n-2)! orderings;
  the colour matrix is built once per n and cached, its build time is listed apart).

The single amplitude is timed on 2000 points, the sums on 2000, 500, 100, 10 points
for n = 4, 5, 6, 7.

Each time is the fastest of ``--repeats`` runs over a batch of points. The summed
|M|² cost is (number of orderings) × (number of helicity configurations) × (cost of
one recursion, O(n⁴) arithmetic); the table lists the configurations evaluated and
the time per configuration and point, so the factorial growth of the colour sum and
the polynomial growth of the recursion are seen apart. The scaling exponent is the
least-squares slope of log(time) against log(n), with the growth factor per gluon.

Measured (one thread of a shared 2-core CPU, so ±50 % between runs; float64, full
colour in the DDM basis, parity-halved non-vanishing helicities):

| n | one A(σ,h) | full colour | configurations | per configuration | leading colour |
|---|---|---|---|---|---|
| 4 | 1.4 µs | 0.04 ms | 6 | 7 µs | 0.07 ms |
| 5 | 8.9 µs | 0.5 ms | 60 | 9 µs | 1.2 ms |
| 6 | 17 µs | 12 ms | 600 | 21 µs | 27 ms |
| 7 | 24 µs | 180 ms | 6720 | 26 µs | 520 ms |

Scaling: the full-colour |M|² grows by 13–24× per extra gluon (≈ n^15 over n = 4..7):
the (n-2)! orderings times 2^(n-1) helicity configurations, each a Berends–Giele
recursion whose cost grows like n^3 here (O(n⁴) arithmetic, partly hidden by fixed
per-call overhead at small n). Leading colour is not cheaper in this implementation:
it needs (n-1)!/2 orderings against (n-2)! for the DDM full-colour sum.

With ``--quarks``, the cost of the quark amplitudes instead: |M|² of q q̄ + n gluons
(``quark_gluon_me2``, full colour: n! orderings × 2^n helicities × 2 chiralities, each
a Berends–Giele recursion plus the quark line), four quarks (``four_quark_me2``), and
the ``jets`` process's |M|² per point for 2 → 2 with all channels (121 initial
pairs, 16 flavour-relabelled |M|² patterns). Measured (same machine, one thread,
float64, minimum of 3 repeats):

| legs | process | configurations | full colour |
|---|---|---|---|
| 4 | q q̄ + 2 g | 16 | 0.023 ms |
| 5 | q q̄ + 3 g | 96 | 0.20 ms |
| 6 | q q̄ + 4 g | 768 | 2.2 ms |
| 7 | q q̄ + 5 g | 7680 | 65 ms |
| 4 | four quarks, identical flavours | 4 + 4 | 7.4 µs |
| 4 | ``jets`` 2 → 2, all channels, |M|² of all 121 initial pairs | 16 patterns | 0.34 ms |

The quark line grows by 9–30× per extra gluon (n! orderings × 2^n helicities); the
per-configuration cost, 1.4–8.5 µs, is below the gluon one.

With ``--vjets``, V + n jets (n = 0 … 3): the line sums of q q̄ → ℓ⁻ℓ⁺ + n g
(:func:`forward.amplitudes.vector_boson_line_sums`: n! orderings × 2^n gluon
helicities × 2 quark × 2 lepton chiralities, one Berends–Giele recursion per ordering
and helicity and two vector insertions per chirality) and the exact |M|² per point of
the ``z-jets`` and ``w-jets`` processes (all one-quark-line channels, every initial
pair; one line sum per (quark leg, antiquark leg) pattern: 2, 6, 12, 20 patterns for
n = 0 … 3), at points that pass the cuts (p_T > 20 GeV, ΔR > 0.4). Measured (one
thread of the shared 2-core CPU under load from other jobs, float64, minimum of 3
repeats; ``--vjets --out``):

| n jets | line-sum configurations | one line sum | patterns | z-jets |M|² | w-jets |M|² |
|---|---|---|---|---|---|
| 0 | 4 | 0.025 ms | 2 | 0.094 ms | 0.105 ms |
| 1 | 8 | 0.093 ms | 6 | 0.53 ms | 0.39 ms |
| 2 | 32 | 0.30 ms | 12 | 2.9 ms | 3.2 ms |
| 3 | 192 | 3.3 ms | 20 | 53 ms | 73 ms |

Scaling: the z-jets |M|² per point grows by 5.6×, 5.6×, 18× per extra jet (patterns
2 → 6 → 12 → 20 times the line sum, whose configurations grow as n! 2^n).

    OMP_NUM_THREADS=1 python3 benchmarks/amplitudes.py
    OMP_NUM_THREADS=1 python3 benchmarks/amplitudes.py --out benchmarks/results/amplitudes.json
    OMP_NUM_THREADS=1 python3 benchmarks/amplitudes.py --quarks --n-max 6
    OMP_NUM_THREADS=1 python3 benchmarks/amplitudes.py --vjets --out vjets.json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time

import torch

from forward.amplitudes import (
    colour_matrix,
    colour_ordered_amplitude,
    four_quark_me2,
    gluon_me2,
    helicity_configurations,
    orderings,
    polarisation_vectors,
    quark_gluon_me2,
)
from forward.phasespace.rambo import Rambo

__all__ = ["collision_points", "main", "quark_rows", "time_per_point", "vjets_rows"]


def collision_points(n: int, npts: int, seed: int, sqrt_s: float = 1000.0) -> torch.Tensor:
    """All-outgoing momenta (npts, n, 4) of g g -> (n-2) g: crossed beams, then RAMBO."""
    gen = torch.Generator().manual_seed(seed)
    r = torch.rand(npts, 3 * (n - 2) - 4, generator=gen, dtype=torch.float64)
    big_p = torch.tensor([sqrt_s, 0, 0, 0], dtype=torch.float64).expand(npts, 4)
    out, _ = Rambo([0.0] * (n - 2)).forward(big_p, r)
    e = 0.5 * sqrt_s
    beams = torch.tensor([[-e, 0, 0, -e], [-e, 0, 0, e]], dtype=torch.float64)
    return torch.cat([beams.expand(npts, 2, 4), out], 1)


def time_per_point(fn, npts: int, repeats: int) -> float:
    """Fastest wall time of ``fn()`` over ``repeats`` runs, divided by ``npts`` (seconds).

    The minimum, not the median: on a shared machine other jobs only ever add time.
    """
    fn()  # warm-up (caches, allocator)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times) / npts


def quark_rows(n_max: int, repeats: int) -> dict:
    """Seconds per point of the quark |M|² (module docstring), legs n = 4 ... n_max."""
    from forward.processes.jets import Jets

    rows = []
    for n in range(4, n_max + 1):
        npts = {4: 2000, 5: 500, 6: 50, 7: 5}.get(n, 2)
        k = collision_points(n, npts, seed=200 + n)  # (q, q̄) = the crossed beams
        rows.append({"n": n, "gluons": n - 2, "points": npts,
                     "configurations": math.factorial(n - 2) * 2 ** (n - 2) * 2,
                     "quark_gluon_s": time_per_point(lambda k=k: quark_gluon_me2(k), npts,
                                                     repeats)})
        print(f"| {n} | q q̄ + {n - 2} g | {rows[-1]['configurations']} "
              f"| {1e3 * rows[-1]['quark_gluon_s']:.3f} ms |", flush=True)
    k4 = collision_points(4, 2000, seed=300)
    out = {"rows": rows,
           "four_quark_s": time_per_point(lambda: four_quark_me2(k4, identical=True), 2000,
                                          repeats)}
    proc = Jets(n_jets=2, pt_min=20.0, eta_max=None, delta_r_min=0.0)
    gen = torch.Generator().manual_seed(301)
    events, _ = proc.phase_space()[0].forward(
        torch.rand(2000, proc.phase_space()[0].dim, generator=gen, dtype=torch.float64))
    events = events[proc.cuts(events)]
    params = proc.params()
    out["jets_2to2_all_channels_s"] = time_per_point(
        lambda: proc.matrix_element(events, params), len(events), repeats)
    print(f"four quarks: {1e6 * out['four_quark_s']:.1f} µs/pt; jets 2 -> 2, all channels "
          f"(|M|² per initial pair): {1e6 * out['jets_2to2_all_channels_s']:.1f} µs/pt")
    return out


def vjets_rows(n_max: int, repeats: int) -> dict:
    """Seconds per point of the V + n jets |M|² (module docstring), n = 0 ... n_max."""
    from forward.amplitudes import vector_boson_line_sums
    from forward.processes.vjets import WJets, ZJets

    rows = []
    for n in range(0, n_max + 1):
        npts = {0: 2000, 1: 2000, 2: 500, 3: 100}.get(n, 20)
        k = collision_points(4 + n, npts, seed=400 + n)  # (q, q̄) = the crossed beams
        row = {"n_jets": n, "points": npts,
               "configurations": math.factorial(n) * 2**n * 4,
               "line_sums_s": time_per_point(lambda k=k: vector_boson_line_sums(k), npts,
                                             repeats)}
        for name, cls in (("z_jets", ZJets), ("w_jets", WJets)):
            proc = cls(n_jets=n, pt_min=20.0, delta_r_min=0.4)
            ps = proc.phase_space()[0]
            gen = torch.Generator().manual_seed(500 + n)
            events, _ = ps.forward(torch.rand(8 * npts, ps.dim, generator=gen,
                                              dtype=torch.float64))
            events = events[proc.cuts(events)][:npts]
            params = proc.params()
            row[f"{name}_patterns"] = len(proc._patterns)
            row[f"{name}_channels"] = len(proc.flavour_channels)
            row[f"{name}_s"] = time_per_point(
                lambda p=proc, e=events, q=params: p.matrix_element(e, q), len(events), repeats)
        rows.append(row)
        print(f"| {n} | {row['configurations']} | {1e3 * row['line_sums_s']:.4f} ms "
              f"| {row['z_jets_patterns']} | {1e3 * row['z_jets_s']:.3f} ms "
              f"| {1e3 * row['w_jets_s']:.3f} ms |", flush=True)
    growth = [rows[i + 1]["z_jets_s"] / rows[i]["z_jets_s"] for i in range(len(rows) - 1)]
    print("z-jets |M|² growth per extra jet: " + ", ".join(f"{g:.1f}×" for g in growth))
    return {"rows": rows, "z_jets_growth_per_jet": growth}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-max", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quarks", action="store_true", help="time the quark amplitudes")
    parser.add_argument("--vjets", action="store_true", help="time V + 0..3 jets")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.vjets:
        print("| n jets | line-sum configurations | line sums [per point] | patterns "
              "| z-jets |M|² [per point] | w-jets |M|² [per point] |\n|---|---|---|---|---|---|")
        result = {"threads": 1, **vjets_rows(min(args.n_max, 3), args.repeats)}
        if args.out:
            with open(args.out, "w") as fh:
                json.dump(result, fh, indent=2)
        return result
    if args.quarks:
        print("| legs | process | configurations | full colour [per point] |\n|---|---|---|---|")
        result = {"threads": 1, **quark_rows(args.n_max, args.repeats)}
        if args.out:
            with open(args.out, "w") as fh:
                json.dump(result, fh, indent=2)
        return result
    rows = []
    for n in range(4, args.n_max + 1):
        npts = {4: 2000, 5: 500, 6: 100, 7: 10}.get(n, 4)
        k = collision_points(n, npts, seed=n)
        k_many = collision_points(n, 2000, seed=100 + n)  # one amplitude: a large batch
        eps = polarisation_vectors(k_many, k_many.roll(-1, dims=1))
        hel = torch.tensor([0, 0] + [1] * (n - 2))
        e_one = eps[:, torch.arange(n), hel]
        t0 = time.perf_counter()
        colour_matrix(n, "ddm")
        build = time.perf_counter() - t0
        row = {
            "n": n,
            "points": npts,
            "points_one_amplitude": 2000,
            "one_amplitude_s": time_per_point(
                lambda k=k_many, e=e_one: colour_ordered_amplitude(k, e), 2000, args.repeats),
            "leading_colour_s": time_per_point(
                lambda k=k: gluon_me2(k, colour="leading"), npts, args.repeats),
            "full_colour_s": time_per_point(lambda k=k: gluon_me2(k), npts, args.repeats),
            "colour_matrix_build_s": build,
            "full_colour_configurations": orderings(n, "ddm").shape[0]
            * helicity_configurations(n, parity=True).shape[0],
        }
        row["full_colour_per_configuration_s"] = (row["full_colour_s"]
                                                  / row["full_colour_configurations"])
        rows.append(row)
        print(f"n={n}: done", flush=True)
    keys = ("one_amplitude_s", "leading_colour_s", "full_colour_s",
            "full_colour_per_configuration_s")
    print("\n| n | one A(σ,h) [µs/pt] | leading colour [ms/pt] | full colour [ms/pt] "
          "| full-colour configurations | per configuration [µs/pt] | colour matrix [s] |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['n']} | {1e6 * r['one_amplitude_s']:.2f} | {1e3 * r['leading_colour_s']:.3f} "
              f"| {1e3 * r['full_colour_s']:.3f} | {r['full_colour_configurations']} "
              f"| {1e6 * r['full_colour_per_configuration_s']:.1f} "
              f"| {r['colour_matrix_build_s']:.2f} |")
    scaling = {}
    for key in keys:
        xs = [math.log(r["n"]) for r in rows]
        ys = [math.log(r[key]) for r in rows]
        mx, my = statistics.fmean(xs), statistics.fmean(ys)
        cov = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
        slope = cov / sum((x - mx) ** 2 for x in xs)
        growth = [rows[i + 1][key] / rows[i][key] for i in range(len(rows) - 1)]
        scaling[key] = {"log_log_slope": slope, "growth_per_extra_gluon": growth}
        print(f"{key}: time ∝ n^{slope:.1f} over n = 4..{rows[-1]['n']}; growth per extra "
              f"gluon " + ", ".join(f"{g:.1f}×" for g in growth))
    result = {"threads": torch.get_num_threads(), "rows": rows, "scaling": scaling}
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=2)
    return result


if __name__ == "__main__":
    main()
