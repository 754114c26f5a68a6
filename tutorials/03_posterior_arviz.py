"""Tutorial 3: a Bayesian posterior of the Z′ mass and coupling, analysed with ArviZ.

What you learn:

1. turn an ML matrix-element likelihood (:class:`invsim.mem.MEMLikelihood`) into a
   posterior: named Pyro priors (:func:`invsim.infer.build_priors`) and the extended
   Poisson term (:class:`invsim.infer.InferenceProblem`);
2. sample it with NUTS (:func:`invsim.infer.sample_nuts`, 2 chains) and read the
   convergence diagnostics of ``az.summary`` (r̂, bulk and tail ESS), with
   ``az.plot_posterior`` and ``az.plot_pair``;
3. check the model with ``az.loo`` on the per-event log-likelihood that invsim stores in
   the ``log_likelihood`` group (PSIS-LOO, with its own Pareto k̂ per event);
4. fit the fast alternative, variational inference (:func:`invsim.infer.fit_svi`, a
   full-rank Gaussian), and compare it with NUTS;
5. save the posterior as NetCDF and load it back;
6. put the 95 % credible interval of the Z′ mass next to the 95 % profile-likelihood
   interval from a scan (:func:`invsim.scan.scan` with the coupling profiled).

The trained networks come from tutorial 2 when its model folder is given, otherwise a
small model is trained here (same detector and process as tutorial 2):

    python3 tutorials/03_posterior_arviz.py                         # trains its own
    python3 tutorials/03_posterior_arviz.py out/ --model out02/mem_model
"""

# %% imports and settings
from __future__ import annotations

import argparse
import time
from pathlib import Path

# tutorials/_common.py: the Z′ process, detector, options and pseudo-data of tutorials 2–4
import _common as common
import arviz as az
import matplotlib
import pyro.distributions as dist
import torch

from invsim.infer import (
    InferenceProblem,
    build_priors,
    fit_svi,
    load_inference,
    sample_nuts,
    save_inference,
)
from invsim.mem import MEMLikelihood, MEMModel, StratifiedMixtureProposal
from invsim.mem.recipe import build_dilepton_model
from invsim.mem.reco_proposal import RecoGaussianProposal
from invsim.scan import scan

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file backend)

__all__ = ["main"]

TRUTH = {"mzp": 2030.0, "gzp": 1.0}
NAMES = ("mzp", "gzp")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = common.tutorial_parser(__doc__, n_samples=200)
    parser.add_argument("--model", default=None,
                        help="a MEM model folder saved by tutorial 2 (else train one here)")
    parser.add_argument("--luminosity", type=float, default=3000.0, help="pb^-1")
    parser.add_argument("--warmup", type=int, default=60, help="NUTS warm-up steps per chain")
    parser.add_argument("--draws", type=int, default=100, help="NUTS draws per chain")
    return parser.parse_args(argv)


def _save(fig_or_axes, path: Path) -> None:
    """Save the figure behind an ArviZ return value (axes array or figure) and close it."""
    fig = plt.gcf() if not hasattr(fig_or_axes, "savefig") else fig_or_axes
    fig.savefig(path, dpi=100)
    plt.close("all")


def main(argv: list[str] | None = None) -> dict:
    """Run the tutorial; returns the numbers written to ``results.json``."""
    args = _parse(argv)
    out = common.output_folder(args.out, prefix="invsim_tutorial03_")
    results: dict = {"truth": TRUTH, "luminosity_pb": args.luminosity}
    t_start = time.perf_counter()

    # %% 1. the trained ML-MEM pieces: loaded from tutorial 2, or trained here
    process = common.zprime_process()     # Drell–Yan ℓℓ + Z′, 1500 < m_ℓℓ < 2500 GeV
    detector = common.lepton_detector()   # Gaussian: σ(pT)/pT = 3 %, σ(η) = σ(φ) = 0.02
    if args.model:
        model = MEMModel.load(args.model)
        print(f"loaded {model!r}")
    else:
        model, info = build_dilepton_model(process, detector, n_trials=args.trials,
                                           epochs=args.epochs, seed=args.seed)
        print(f"trained on {info['train_accepted']} accepted events in "
              f"{info['train_seconds']:.0f} s")
    model.proposal = StratifiedMixtureProposal(
        [model.proposal, RecoGaussianProposal(detector, process.sqrt_s)], [0.5, 0.5])

    # %% 2. pseudo-data at the hidden truth and the likelihood bound to it
    pool = common.accepted_events(process, detector, TRUTH, seed=args.seed + 1)
    truth_t = {k: torch.tensor(v, dtype=torch.float64) for k, v in TRUTH.items()}
    mu = common.fiducial_cross_section(model, pool, truth_t, names=NAMES,
                                       seed=args.seed + 2) * args.luminosity
    data = pool[:common.poisson_count(mu, seed=args.seed + 3)]
    lik = MEMLikelihood(model, data, n_samples=args.n_samples, parameter_names=NAMES,
                        n_fiducial=20_000, seed=args.seed + 4, on_flagged="ignore")
    with torch.no_grad():
        diag = lik.evaluate(truth_t)
    print(f"{lik!r}: {len(data)} events (mean {mu:.1f}); at the truth median ESS "
          f"{float(diag.ess.median()):.0f}, flagged {int(diag.flagged.sum())}")
    results["n_events"] = len(data)

    # %% 3. priors (any univariate Pyro distribution) and the posterior with NUTS
    f64 = {"dtype": torch.float64}
    priors = build_priors(process.parameters, NAMES, {
        "mzp": dist.Uniform(torch.tensor(1900.0, **f64), torch.tensor(2200.0, **f64)),
        "gzp": dist.Uniform(torch.tensor(0.3, **f64), torch.tensor(2.5, **f64)),
    })
    problem = InferenceProblem(lik, priors, luminosity=args.luminosity, process="drell-yan")
    t0 = time.perf_counter()
    idata = sample_nuts(problem, num_samples=args.draws, warmup=args.warmup, chains=2,
                        seed=args.seed + 5, max_tree_depth=6)
    results["nuts_seconds"] = time.perf_counter() - t0
    summary = az.summary(idata, var_names=list(NAMES), hdi_prob=0.95)
    print(f"NUTS, 2 chains × {args.draws} draws in {results['nuts_seconds']:.0f} s "
          f"({int(idata.sample_stats['diverging'].sum())} divergences):")
    print(summary.to_string())
    results["nuts"] = {k: {c: float(summary.loc[k, c]) for c in summary.columns} for k in NAMES}
    _save(az.plot_posterior(idata, var_names=list(NAMES), hdi_prob=0.95,
                            ref_val={k: [{"ref_val": v}] for k, v in TRUTH.items()}),
          out / "posterior.png")
    _save(az.plot_pair(idata, var_names=list(NAMES), kind="kde", marginals=True,
                       reference_values=TRUTH), out / "pair.png")
    _save(az.plot_trace(idata, var_names=list(NAMES)), out / "trace.png")

    # %% 4. PSIS-LOO on the per-event log-likelihood: are single events too influential?
    loo = az.loo(idata, pointwise=True)
    k_hat = loo.pareto_k.values
    print(f"PSIS-LOO: elpd_loo = {loo.elpd_loo:.1f} ± {loo.se:.1f}, p_loo = {loo.p_loo:.2f} "
          f"(effective parameters), events with k̂ > 0.7: {int((k_hat > 0.7).sum())}")
    results["loo"] = {"elpd_loo": float(loo.elpd_loo), "se": float(loo.se),
                      "p_loo": float(loo.p_loo), "n_khat_above_0.7": int((k_hat > 0.7).sum())}

    # %% 5. variational inference: a full-rank Gaussian, much faster than NUTS
    t0 = time.perf_counter()
    idata_svi, guide = fit_svi(problem, steps=150, particles=2, lr=0.05, num_samples=2000,
                               seed=args.seed + 6)
    results["svi_seconds"] = time.perf_counter() - t0
    svi = az.summary(idata_svi, var_names=list(NAMES), kind="stats", hdi_prob=0.95)
    print(f"SVI in {results['svi_seconds']:.0f} s (ELBO {guide.elbo:.1f}) vs NUTS:")
    results["svi"] = {}
    for k in NAMES:
        m_n, s_n = results["nuts"][k]["mean"], results["nuts"][k]["sd"]
        m_v, s_v = float(svi.loc[k, "mean"]), float(svi.loc[k, "sd"])
        print(f"  {k}: SVI {m_v:.4g} ± {s_v:.3g} | NUTS {m_n:.4g} ± {s_n:.3g} | "
              f"shift {(m_v - m_n) / s_n:+.2f} NUTS sd")
        results["svi"][k] = {"mean": m_v, "sd": s_v}
    _save(az.plot_density([idata, idata_svi], data_labels=["NUTS", "SVI"],
                          var_names=list(NAMES), hdi_prob=0.95), out / "nuts_vs_svi.png")

    # %% 6. NetCDF: the posterior, per-event log-likelihoods and provenance in one file
    path = save_inference(idata, out / "posterior.nc", overwrite=True)
    back = load_inference(path)
    same = bool((back.posterior["mzp"].values == idata.posterior["mzp"].values).all())
    print(f"saved {path.name} ({path.stat().st_size // 1024} KiB), groups {back.groups()}, "
          f"identical draws after loading: {same}; attributes: method="
          f"{back.attrs['method']}, seeds={back.attrs['seeds']}")
    results["reload_identical"] = same

    # %% 7. profile likelihood (coupling profiled) next to the credible interval
    grid = torch.linspace(1990.0, 2100.0, 12, dtype=torch.float64)   # 10 GeV steps
    prof = scan(lik, {"mzp": grid}, profile=["gzp"], luminosity=args.luminosity,
                bounds={"gzp": (0.2, 3.0)})
    prof.plot(out / "profile_mzp.png", overwrite=True)
    iv95 = next(i for i in prof.intervals if abs(i.cl - 0.95) < 1e-9)
    lo, hi = results["nuts"]["mzp"]["hdi_2.5%"], results["nuts"]["mzp"]["hdi_97.5%"]
    print(f"mzp, 95 %: profile-likelihood [{iv95.lower:.1f}, {iv95.upper:.1f}] GeV | "
          f"NUTS HDI [{lo:.1f}, {hi:.1f}] GeV | truth {TRUTH['mzp']:g} GeV")
    results["profile"] = prof.summary()

    common.write_results(results, out, t_start)
    print(f"done in {results['seconds']:.0f} s; files in {out}")
    return results


if __name__ == "__main__":
    main()
