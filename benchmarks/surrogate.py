"""Benchmark of forward.surrogate: accuracy, calibration, boosting, speed, exact unweighting.

For q q̄ → γγg ("diphoton-jet") and on-shell tt̄ ("ttbar") at default parameters:

* accuracy of a Bayesian (Bayes-by-backprop) surrogate and of a plain MSE MLP of the
  same size on held-out test points: fractions with |Δ| < 0.1 %, 1 %, 10 %, tail
  |Δ| > 10 %, pull mean and width, as a function of the training-set size;
* boosting (diphoton-jet): continued training with emphasis on |pull| > 2 / large σ,
  against the same continued training without emphasis (the control);
* speed: |M|² evaluations per second, exact vs surrogate (CPU; CUDA when available);
* two-stage unweighting (diphoton-jet) with the surrogate: KS tests of observables
  against events unweighted with the exact |M|², exact-|M|² calls saved, wall times.

Targets: log|M|² minus the eikonal factor (``reference="eikonal"``, see
``forward.surrogate.features``), float64 targets, float32 networks, Adam with a cosine
schedule; inputs log(s_ij/ŝ), log ŝ, m²/ŝ, symmetrised over the two photons.

    OMP_NUM_THREADS=1 python3 benchmarks/surrogate.py --quick
    OMP_NUM_THREADS=1 python3 benchmarks/surrogate.py --out benchmarks/results/surrogate.json

Prints a Markdown table and writes JSON (and PNG diagnostics next to it).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import torch

from forward.processes import get_process
from forward.surrogate import (
    SurrogateConfig,
    boost_surrogate,
    generate_training_data,
    plot_precision,
    precision_summary,
    train_surrogate,
    two_stage_events,
)

__all__ = ["main", "run_process", "speed", "unweighting_check"]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _evaluate(surrogate, test, group_columns, batch: int = 200_000):
    """Precision summaries of each group's reference column on the test points."""
    preds, sigmas = [], []
    for i in range(0, len(test), batch):
        p, s = surrogate.predict(test.events[i:i + batch])
        preds.append(p)
        sigmas.append(s)
    pred, sigma = torch.cat(preds), torch.cat(sigmas)
    out = {}
    for name, c in group_columns.items():
        out[name] = precision_summary(pred[:, c], sigma[:, c], test.me2[:, c])[0]
    return out


def _rate(fn, n: int, repeats: int = 3) -> float:
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return n / best


def speed(process, surrogate, events, params) -> dict:
    """|M|² evaluations per second: exact (float64) and surrogate, CPU and CUDA."""
    out = {}
    with torch.no_grad():
        out["exact_cpu"] = _rate(lambda: process.matrix_element(events, params), len(events))
        out["surrogate_cpu"] = _rate(lambda: surrogate.predict(events), len(events))
        out["surrogate_cpu_mean_weights"] = _rate(
            lambda: surrogate.predict(events, samples=0), len(events))
        if torch.cuda.is_available():
            ev = events.to("cuda")
            pc = {k: v.to("cuda") for k, v in params.items()}
            process.matrix_element(ev, pc)
            out["exact_cuda"] = _rate(lambda: process.matrix_element(ev, pc), len(ev))
            surrogate.regressor.to("cuda")
            out["surrogate_cuda"] = _rate(lambda: surrogate.predict(ev), len(ev))
            surrogate.regressor.to("cpu")
    return out


def unweighting_check(process, surrogate, n_proposed: int, seed: int) -> dict:
    """Two-stage unweighting with the surrogate vs plain unweighting with the exact |M|²."""
    from scipy import stats

    from forward.integrand import HadronicIntegrand
    from forward.nis import unweight

    exact_int = HadronicIntegrand(process)
    dim = exact_int.dim

    # exact: weights of every proposal with the exact |M|², then standard unweighting
    g = _gen(seed)
    t0 = time.perf_counter()
    r = torch.rand(n_proposed, dim, generator=g, dtype=torch.float64)
    ev_e, w_e, _ = exact_int.sample(r)
    res = unweight(w_e.sum(-1), overweight=1e-3, generator=g)
    t_exact = time.perf_counter() - t0
    kept_exact = ev_e[res.indices]

    # two-stage: surrogate weights for every proposal, exact |M|² for stage-1 survivors
    # (forward.surrogate.two_stage_events, which reuses the PDFs and Jacobians)
    two_ev = two_stage_events(process, surrogate, n_proposed, overweight=1e-3,
                              ratio_overweight=0.0, generator=_gen(seed + 1))
    two = two_ev.result
    t_two = two_ev.seconds
    kept_two = two_ev.events
    obs_e = process.observables(kept_exact)
    obs_t = process.observables(kept_two)
    ks = {k: float(stats.ks_2samp(obs_e[k].numpy(), obs_t[k].numpy()).pvalue) for k in obs_e}
    n_e, n_t = len(kept_exact), len(kept_two)
    return {
        "n_proposed": n_proposed,
        "exact_events": n_e,
        "two_stage_events": n_t,
        "exact_me_calls_exact": n_proposed,
        "exact_me_calls_two_stage": two.n_exact,
        "efficiency_first": two.efficiency_first,
        "efficiency_second": two.efficiency_second,
        "ratio_max": two.ratio_max,
        "overweight_fraction_two_stage": two.overweight_fraction,
        "seconds_per_event_exact": t_exact / max(n_e, 1),
        "seconds_per_event_two_stage": t_two / max(n_t, 1),
        "speedup_wall": (t_exact / max(n_e, 1)) / (t_two / max(n_t, 1)),
        "speedup_exact_me_calls": (n_proposed / max(n_e, 1)) / (two.n_exact / max(n_t, 1)),
        "cross_section_two_stage": two_ev.cross_section,
        "error_two_stage": two_ev.error,
        "ks_pvalues": ks,
        "ks_min_pvalue": min(ks.values()),
    }


def run_process(name: str, args) -> dict:
    """Learning curve, MSE baseline, boosting, speed (and unweighting) for one process."""
    proc = get_process(name)
    params = proc.params()
    t0 = time.perf_counter()
    train_all = generate_training_data(proc, max(args.sizes), generator=_gen(1))
    test = generate_training_data(proc, args.n_test, generator=_gen(2))
    t_data = time.perf_counter() - t0
    from forward.surrogate import channel_groups

    _, refs, _ = channel_groups(train_all.me2)
    names = {c: f"{proc.flavour_channels[c][0]},{proc.flavour_channels[c][1]}" for c in refs}
    cols = {names[c]: c for c in refs}
    out = {"process": name, "data_seconds": t_data, "n_test": len(test), "rows": []}
    deltas, pulls, summaries = {}, {}, []
    last_fit = None
    for size in args.sizes:
        for kind in ("bayesian", "mse") if size == max(args.sizes) else ("bayesian",):
            cfg = SurrogateConfig(kind=kind, hidden=args.hidden, layers=args.layers,
                                  epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                  samples=args.samples)
            fit = train_surrogate(proc, train_all[:size], cfg, generator=_gen(3),
                                  progress=args.progress)
            res = _evaluate(fit.surrogate, test, cols)
            for grp, s in res.items():
                out["rows"].append({"process": name, "group": grp, "kind": kind,
                                    "n_train": size, "train_seconds": fit.history["seconds"],
                                    "sigma_scale": fit.history["sigma_scale"], **s.as_dict()})
            if kind == "bayesian":
                first = next(iter(cols.values()))
                _, d, p = precision_summary(*[
                    t[:, first] for t in fit.surrogate.predict(test.events[:200_000])],
                    test.me2[:200_000, first])
                deltas[f"{size}"] = d
                pulls[f"{size}"] = p
                summaries.append(res[next(iter(cols))])
                if size == max(args.sizes):
                    last_fit = fit
    if args.plot_dir:
        plot_precision(Path(args.plot_dir) / f"surrogate_{name}.png", deltas, pulls,
                       sizes=list(args.sizes), summaries=summaries,
                       title=f"{name}: Bayesian surrogate", overwrite=True)
    if args.boost_epochs > 0 and name == "diphoton-jet":
        boosted = {}
        for label, emph in (("boosted", args.emphasis), ("control", 0.0)):
            b = boost_surrogate(last_fit, epochs=args.boost_epochs, emphasis=emph,
                                generator=_gen(4), progress=args.progress)
            res = _evaluate(b.surrogate, test, cols)
            boosted[label] = {"emphasised": b.history["emphasised"],
                              "seconds": b.history["seconds"],
                              **next(iter(res.values())).as_dict()}
        out["boosting"] = {"before": next(r for r in out["rows"] if r["kind"] == "bayesian"
                                          and r["n_train"] == max(args.sizes)),
                           **boosted}
    n_speed = min(100_000, len(test))
    out["speed"] = speed(proc, last_fit.surrogate, test.events[:n_speed], params)
    if args.unweight > 0 and name == "diphoton-jet":
        out["unweighting"] = unweighting_check(proc, last_fit.surrogate, args.unweight, 5)
    return out


def _table(results: list[dict]) -> str:
    lines = [
        "| process | group | kind | n_train | <0.1% | <1% | <10% | tail >10% | pull mean "
        "| pull std | pull w68 | train s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for res in results:
        for r in res["rows"]:
            f = r["frac_below"]
            lines.append(
                f"| {r['process']} | {r['group']} | {r['kind']} | {r['n_train']} | "
                f"{f[0]:.3f} | {f[1]:.3f} | {f[2]:.4f} | {r['tail']:.2e} | "
                f"{r['pull_mean']:+.3f} | {r['pull_std']:.3f} | {r['pull_width68']:.3f} | "
                f"{r['train_seconds']:.0f} |"
            )
    for res in results:
        if "boosting" in res:
            b = res["boosting"]
            lines.append("")
            lines.append(f"boosting ({res['process']}): tail |Δ|>10 %: before "
                         f"{b['before']['tail']:.2e}, continued without emphasis "
                         f"{b['control']['tail']:.2e}, boosted {b['boosted']['tail']:.2e}; "
                         f"<1 %: {b['before']['frac_below'][1]:.3f} / "
                         f"{b['control']['frac_below'][1]:.3f} / "
                         f"{b['boosted']['frac_below'][1]:.3f}; pull std "
                         f"{b['control']['pull_std']:.3f} / {b['boosted']['pull_std']:.3f}")
        s = res["speed"]
        lines.append(f"speed ({res['process']}), |M|²/s: " + ", ".join(
            f"{k} {v:.3g}" for k, v in s.items()))
        if "unweighting" in res:
            u = res["unweighting"]
            lines.append(
                f"two-stage unweighting ({res['process']}): {u['two_stage_events']} events "
                f"(exact: {u['exact_events']}), KS p-values "
                + ", ".join(f"{k} {v:.2f}" for k, v in u["ks_pvalues"].items())
                + f"; exact-|M|² calls per event saved x{u['speedup_exact_me_calls']:.1f}, "
                f"wall-time speed-up x{u['speedup_wall']:.2f}"
            )
    return "\n".join(lines)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--processes", default="diphoton-jet,ttbar")
    ap.add_argument("--sizes", default="10000,100000",
                    help="training-set sizes (the largest also trains the MSE baseline)")
    ap.add_argument("--n-test", type=int, default=1_000_000)
    ap.add_argument("--epochs", type=int, default=80)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--boost-epochs", type=int, default=20)
    ap.add_argument("--emphasis", type=float, default=4.0)
    ap.add_argument("--unweight", type=int, default=1_000_000,
                    help="proposals for the two-stage unweighting check (0: skip)")
    ap.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("--out", default="")
    ap.add_argument("--plot-dir", default="")
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes, args.n_test, args.epochs, args.hidden = "2000,5000", 20_000, 5, 32
        args.boost_epochs, args.unweight = 2, 100_000
    args.sizes = [int(s) for s in args.sizes.split(",")]
    if args.out and not args.plot_dir:
        args.plot_dir = str(Path(args.out).parent)
    if args.plot_dir:
        Path(args.plot_dir).mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    results = [run_process(p, args) for p in args.processes.split(",")]
    report = {
        "settings": {k: v for k, v in vars(args).items()},
        "threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "cuda": torch.cuda.is_available(),
        "seconds": time.perf_counter() - t0,
        "results": results,
    }
    print(_table(results))
    print(f"\ntotal {report['seconds']:.0f} s, torch threads {report['threads']}")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1, default=str))
    return report


if __name__ == "__main__":
    main()
