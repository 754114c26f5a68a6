"""Z′ posterior widths on the demo's data with and without scale nuisance parameters.

The inverse demo's case (``invsim demo``, :mod:`invsim.demo_inverse`): Drell–Yan
1500 < m_ℓℓ < 2500 GeV, θ = (mzp, gzp), the Gaussian lepton detector, the quick
preset's model (the same seeds, so the same networks and data as the demo), its
experiment 0 as the data, the extended likelihood at the preset's luminosity. NUTS runs
twice on the same events and importance samples:

* ``fixed``: μ_R = μ_F = m_ℓℓ (factors 1);
* ``nuisances``: θ also holds log₂ of the μ_R and μ_F factors (``MEMLikelihood``'s
  ``nuisances``), each with a prior Uniform(-1, 1) (factors 1/2 … 2, the range of the
  7-point variation), marginalised by NUTS.

Prints the posterior mean, standard deviation and 68 % central interval of mzp and gzp
in both runs, their ratio, and the nuisances' posteriors; one JSON object at the end.

    OMP_NUM_THREADS=2 python3 benchmarks/scale_nuisances.py
    python3 benchmarks/scale_nuisances.py --draws 300 --warmup 100   # quicker
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

__all__ = ["main"]


def _interval(x: torch.Tensor) -> tuple[float, float]:
    q = torch.quantile(x, torch.tensor([0.16, 0.84], dtype=x.dtype))
    return float(q[0]), float(q[1])


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0, help="the demo's seed")
    ap.add_argument("--draws", type=int, default=600)
    ap.add_argument("--warmup", type=int, default=150)
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--out", default=None, help="JSON results file")
    args = ap.parse_args(argv)

    import pyro.distributions as dist

    from forward.detector import GaussianLeptonDetector
    from forward.processes import get_process
    from invsim.demo_inverse import QUICK, TRUTH, WINDOW
    from invsim.infer import InferenceProblem, build_priors, sample_nuts
    from invsim.mem import MEMLikelihood, StratifiedMixtureProposal
    from invsim.mem.recipe import build_dilepton_model
    from invsim.mem.reco_proposal import RecoGaussianProposal
    from invsim.pairs import simulate

    preset, seed = QUICK, args.seed
    process = get_process("drell-yan", **WINDOW)
    detector = GaussianLeptonDetector(0.03, 0.02, 0.02, 100.0, 2.5)
    t0 = time.perf_counter()
    model, _ = build_dilepton_model(process, detector, n_trials=preset.n_train_trials,
                                    epochs=preset.epochs, seed=seed, progress=False,
                                    batch_size=preset.batch_size)
    model.proposal = StratifiedMixtureProposal(
        [model.proposal, RecoGaussianProposal(detector, process.sqrt_s)], [0.5, 0.5])
    train_s = time.perf_counter() - t0
    # the demo's data: experiment 0 of its pseudo-data (same seeds and Poisson count)
    names = ("mzp", "gzp")
    truth_t = {k: torch.tensor(v, dtype=torch.float64) for k, v in TRUTH.items()}
    sim = simulate(process, detector, 40_000 * preset.experiments, TRUTH, seed=seed + 3)
    pool = sim.x_reco[sim.passed]
    fid = MEMLikelihood(model, pool[:2], n_samples=25, parameter_names=names,
                        n_fiducial=preset.n_fiducial, seed=seed + 4, on_flagged="ignore")
    mu = float(torch.exp(fid.log_sigma_fid(truth_t))) * preset.luminosity
    gen = torch.Generator().manual_seed(seed + 2)
    counts = torch.poisson(torch.full((preset.experiments,), mu, dtype=torch.float64),
                           generator=gen).long()
    data = pool[: int(counts[0])]

    rows = {}
    for label, nuisances in (("fixed", ()), ("nuisances", ("log2_mur", "log2_muf"))):
        lik = MEMLikelihood(model, data, n_samples=preset.n_samples, parameter_names=names,
                            n_fiducial=preset.n_fiducial, seed=seed + 5, on_flagged="ignore",
                            nuisances=nuisances)
        lo_hi = {"mzp": (1900.0, 2200.0), "gzp": (0.3, 2.5)} | {n: (-1.0, 1.0)
                                                               for n in nuisances}
        priors = build_priors(lik.parameters, lik.parameter_names, {
            k: dist.Uniform(torch.tensor(lo, dtype=torch.float64),
                            torch.tensor(hi, dtype=torch.float64))
            for k, (lo, hi) in lo_hi.items()})
        problem = InferenceProblem(lik, priors, luminosity=preset.luminosity,
                                   process="drell-yan")
        t0 = time.perf_counter()
        idata = sample_nuts(problem, num_samples=args.draws, warmup=args.warmup,
                            chains=args.chains, seed=seed + 6, progress=False)
        row = {"seconds": time.perf_counter() - t0,
               "divergences": int(idata.sample_stats["diverging"].values.sum())}
        for k in lik.parameter_names:
            x = torch.as_tensor(idata.posterior[k].values.reshape(-1), dtype=torch.float64)
            row[k] = {"mean": float(x.mean()), "std": float(x.std()),
                      "interval_68": _interval(x)}
        rows[label] = row

    print(f"demo data: {len(data)} events (truth mzp = {TRUTH['mzp']}, gzp = {TRUTH['gzp']}), "
          f"{args.chains} chains x {args.draws} draws; model trained in {train_s:.0f} s")
    print(f"{'parameter':<10} {'fixed: mean ± std':>24} {'nuisances: mean ± std':>26} "
          f"{'std ratio':>10}")
    for k in names:
        a, b = rows["fixed"][k], rows["nuisances"][k]
        print(f"{k:<10} {a['mean']:>12.5g} ± {a['std']:<9.4g} {b['mean']:>14.5g} ± "
              f"{b['std']:<9.4g} {b['std'] / a['std']:>10.3f}")
    for k in ("log2_mur", "log2_muf"):
        b = rows["nuisances"][k]
        print(f"{k:<10} {'(fixed at 0)':>24} {b['mean']:>14.3g} ± {b['std']:<9.3g}")
    result = {"benchmark": "scale_nuisances", "events": len(data), "truth": TRUTH,
              "draws": args.draws, "warmup": args.warmup, "chains": args.chains,
              "seed": seed, "runs": rows,
              "std_ratio": {k: rows["nuisances"][k]["std"] / rows["fixed"][k]["std"]
                            for k in names},
              "machine": platform.processor() or platform.machine(),
              "torch": torch.__version__}
    print(json.dumps(result))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=2)
    return result


if __name__ == "__main__":
    main()
