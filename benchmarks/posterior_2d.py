"""A two-parameter posterior (mzp, ae) on Drell–Yan pseudo-data away from the training
point: convergence from mode starts against prior starts, and the parton-level floor.

Set-up: Drell–Yan ℓ⁺ℓ⁻ (e + μ), 1500 < m_ℓℓ < 2500 GeV, the Gaussian lepton detector
(σ_pT/pT = 3 %, σ_η = σ_φ = 0.02, pT > 100 GeV, |η| < 2.5); the ML-MEM is trained with
:func:`invsim.mem.recipe.build_model` over mzp ∈ [1800, 2300] GeV, ae ∈ [-2, 1]
(reference point at the centre: 2050 GeV, -0.5); pseudo-data at mzp = ``--mzp``, ae =
``--ae`` (defaults 2120 GeV, -1.2: neither a training point nor the reference). Three
posteriors with ``--chains`` chains of NUTS, uniform priors over the trained ranges:

1. the ML-MEM with chains started around the posterior mode (the default of
   :func:`invsim.infer.sample_nuts`);
2. the same likelihood with prior starts (the behaviour before mode starts);
3. the parton-level likelihood of the true hard events (the floor,
   :class:`invsim.mem.PartonLikelihood`), mode starts.

Reported per posterior and parameter: mean, sd, 95 % interval, whether the truth is
inside, r̂, bulk ESS, divergences, wall time and seconds per log-density gradient.

    OMP_NUM_THREADS=2 python3 benchmarks/posterior_2d.py            # the reported run
    OMP_NUM_THREADS=2 python3 benchmarks/posterior_2d.py --quick    # a smaller one
    python3 benchmarks/posterior_2d.py --runs parton_mode --draws 1000  # one posterior

Prints a table and writes ``benchmarks/results/posterior_2d.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings

import torch

__all__ = ["main"]

RANGES = {"mzp": (1800.0, 2300.0), "ae": (-2.0, 1.0)}


def _summarise(idata, truth: dict, seconds: float, per_grad: float) -> dict:
    import arviz as az

    summ = az.summary(idata, hdi_prob=0.95, round_to="none")
    div = int(idata.sample_stats["diverging"].values.sum()) \
        if "diverging" in idata.sample_stats else None
    out = {"seconds": seconds, "seconds_per_gradient": per_grad, "divergences": div}
    for name, value in truth.items():
        row = summ.loc[name]
        out[name] = {"mean": float(row["mean"]), "sd": float(row["sd"]),
                     "hdi_95": [float(row["hdi_2.5%"]), float(row["hdi_97.5%"])],
                     "truth_inside_95": bool(row["hdi_2.5%"] <= value <= row["hdi_97.5%"]),
                     "r_hat": float(row["r_hat"]), "ess_bulk": float(row["ess_bulk"])}
    return out


def _per_gradient(lik, names) -> float:
    theta = {n: torch.tensor(0.5 * sum(RANGES[n]), dtype=torch.float64, requires_grad=True)
             for n in names}
    lik.log_prob(theta).sum().backward()
    t0 = time.perf_counter()
    for _ in range(5):
        theta = {n: t.detach().requires_grad_() for n, t in theta.items()}
        lik.log_prob(theta).sum().backward()
    return (time.perf_counter() - t0) / 5


def main(argv=None) -> dict:
    from forward.detector import GaussianLeptonDetector
    from forward.processes import get_process
    from invsim.infer import InferenceProblem, build_priors, sample_nuts
    from invsim.mem import MEMLikelihood, PartonLikelihood
    from invsim.mem.recipe import build_model
    from invsim.pairs import simulate

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--mzp", type=float, default=2120.0)
    ap.add_argument("--ae", type=float, default=-1.2)
    ap.add_argument("--events", type=int, default=300)
    ap.add_argument("--samples-per-event", type=int, default=300)
    ap.add_argument("--trials", type=int, default=600_000)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--draws", type=int, default=400)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--runs", default="ml_mem_mode,ml_mem_prior,parton_mode",
                    help="comma list of the posteriors to run (default all three)")
    ap.add_argument("--out", default="benchmarks/results/posterior_2d.json")
    args = ap.parse_args(argv)
    if args.quick:
        args.events, args.samples_per_event, args.trials, args.epochs = 120, 150, 200_000, 3
        args.draws, args.warmup = 200, 150
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    process = get_process("drell-yan", mll_min=1500.0, mll_max=2500.0)
    det = GaussianLeptonDetector(0.03, 0.02, 0.02, 100.0, 2.5)
    truth = {"mzp": args.mzp, "ae": args.ae}
    out: dict = {"args": vars(args), "truth": truth, "ranges": RANGES}
    known = ("ml_mem_mode", "ml_mem_prior", "parton_mode")
    runs = tuple(tuple(r.rsplit("_", 1)) for r in args.runs.split(","))
    if not runs or any("_".join(r) not in known for r in runs):
        raise SystemExit(f"--runs: expected a comma list of {', '.join(known)}; "
                         f"got {args.runs!r}")
    from invsim.observables import RecoObservables

    obs = RecoObservables(leptons=2)
    if any(r[0] == "ml_mem" for r in runs):
        t0 = time.perf_counter()
        model, info = build_model(process, det, observables=obs, n_trials=args.trials,
                                  epochs=args.epochs, seed=args.seed, ranges=RANGES,
                                  points_per_axis=3, min_accepted=0)
        out["training_seconds"] = time.perf_counter() - t0
        out["proposal_weights"] = info.get("proposal_weights")
    sim = simulate(process, det, 50 * args.events, truth, observables=obs, seed=args.seed + 1)
    keep = sim.passed.nonzero().squeeze(-1)[: args.events]
    x_reco, hard = sim.x_reco[keep], sim.hard[keep]
    out["n_events"] = len(keep)
    names = list(RANGES)
    liks = {}
    if any(r[0] == "ml_mem" for r in runs):
        liks["ml_mem"] = MEMLikelihood(model, x_reco, n_samples=args.samples_per_event,
                                       parameter_names=names, seed=args.seed + 2,
                                       n_fiducial=200_000, on_flagged="ignore")
    if any(r[0] == "parton" for r in runs):
        liks["parton"] = PartonLikelihood(process, hard, parameter_names=names,
                                          seed=args.seed + 3, n_fiducial=200_000)
    for lik_name, strategy in runs:
        lik = liks[lik_name]
        priors = build_priors(lik.parameters, names, {}, dtype=torch.float64)
        problem = InferenceProblem(lik, priors, on_flagged="ignore")
        per_grad = _per_gradient(lik, names)
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            idata = sample_nuts(problem, num_samples=args.draws, warmup=args.warmup,
                                chains=args.chains, seed=args.seed, init_strategy=strategy,
                                progress=False)
        row = _summarise(idata, truth, time.perf_counter() - t0, per_grad)
        row["warnings"] = sorted({str(w.message)[:160] for w in caught
                                  if "onvergence" in type(w.message).__name__})
        out[f"{lik_name}_{strategy}"] = row
        print(json.dumps({f"{lik_name}_{strategy}": row}), flush=True)
    if "parton_mode" in out and "ml_mem_mode" in out:
        floor, ml = out["parton_mode"], out["ml_mem_mode"]
        out["ae_within_1sd_of_floor"] = \
            abs(ml["ae"]["mean"] - floor["ae"]["mean"]) <= ml["ae"]["sd"]
    print("| posterior | parameter | mean ± sd | 95 % interval | truth in | r̂ | ESS | s/gradient |")
    print("|---|---|---|---|---|---|---|---|")
    for key in ("_".join(r) for r in runs):
        for n in names:
            r = out[key][n]
            print(f"| {key} | {n} | {r['mean']:.4g} ± {r['sd']:.3g} | [{r['hdi_95'][0]:.4g}, "
                  f"{r['hdi_95'][1]:.4g}] | {r['truth_inside_95']} | {r['r_hat']:.3f} | "
                  f"{r['ess_bulk']:.0f} | {out[key]['seconds_per_gradient']:.3f} |")
    if "ae_within_1sd_of_floor" in out:
        print(f"ae of the ML-MEM within 1 sd of the floor's: {out['ae_within_1sd_of_floor']}")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    main()
