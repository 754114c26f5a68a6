"""Tutorial 2: a machine-learned matrix-element likelihood and a scan of the Z′ mass.

What you learn:

1. train the three networks of the ML matrix-element method (transfer r(x_reco | x_hard),
   acceptance ε(x_hard), unfolder q(x_hard | x_reco)) with the ready recipe
   :func:`invsim.mem.recipe.build_dilepton_model`, on Drell–Yan ℓℓ with a 2 TeV Z′
   (1500 < m_ℓℓ < 2500 GeV) seen by a Gaussian lepton detector;
2. make pseudo-data at a hidden Z′ mass (a Poisson number of events for a luminosity);
3. bind the events to an :class:`invsim.mem.MEMLikelihood` and read its per-event
   diagnostics (Monte Carlo error, effective sample size, Pareto k̂, flagged events), and
   see how a reco-centred proposal mixed into the unfolder improves them;
4. scan −2Δlog L in the Z′ mass (1D, coupling fixed) and in mass × coupling (2D, with
   the extended Poisson term), print the intervals and plot them;
5. save the trained model and load it back (same numbers).

Sizes are small so that it runs in a few minutes on one CPU core; the intervals are
wider and less accurate than with the sizes of ``invsim demo --preset default``.

    python3 tutorials/02_likelihood_scan.py                # writes into a temp folder
    python3 tutorials/02_likelihood_scan.py out/ --trials 400000 --epochs 8
"""

# %% imports and settings
from __future__ import annotations

import argparse
import time

# tutorials/_common.py: the Z′ process, detector, options and pseudo-data of tutorials 2–4
import _common as common
import numpy as np
import torch

from invsim.mem import MEMLikelihood, MEMModel, StratifiedMixtureProposal
from invsim.mem.recipe import build_dilepton_model
from invsim.mem.reco_proposal import RecoGaussianProposal
from invsim.scan import scan

__all__ = ["main"]

#: the hidden truth of the pseudo-data (the networks are trained at mzp = 2000, gzp = 1)
TRUTH = {"mzp": 2030.0, "gzp": 1.0}
NAMES = ("mzp", "gzp")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = common.tutorial_parser(__doc__, n_samples=800)
    parser.add_argument("--luminosity", type=float, default=3000.0, help="pb^-1")
    return parser.parse_args(argv)


def _diagnostics(label: str, res) -> dict:
    """Print and return the median ESS, Pareto k̂, MC error and the flagged count."""
    row = {"median_ess": float(res.ess.median()), "median_pareto_k": float(res.pareto_k.median()),
           "median_error": float(res.error.median()), "flagged": int(res.flagged.sum()),
           "events": int(res.log_p.numel())}
    print(f"  {label:<22} median ESS {row['median_ess']:7.1f} | median k̂ "
          f"{row['median_pareto_k']:5.2f} | median error of log p {row['median_error']:.3f} | "
          f"flagged {row['flagged']}/{row['events']}")
    return row


def main(argv: list[str] | None = None) -> dict:
    """Run the tutorial; returns the numbers written to ``results.json``."""
    args = _parse(argv)
    out = common.output_folder(args.out, prefix="invsim_tutorial02_")
    results: dict = {"truth": TRUTH, "luminosity_pb": args.luminosity}
    t_start = time.perf_counter()

    # %% 1. train the ML-MEM pieces on pairs simulated at the process defaults
    process = common.zprime_process()     # Drell–Yan ℓℓ + Z′, 1500 < m_ℓℓ < 2500 GeV
    detector = common.lepton_detector()   # Gaussian: σ(pT)/pT = 3 %, σ(η) = σ(φ) = 0.02
    print(f"process: {process!r}\ndetector: {detector}")
    model, info = build_dilepton_model(process, detector, n_trials=args.trials,
                                       epochs=args.epochs, seed=args.seed)
    print(f"trained on {info['train_accepted']} accepted of {info['train_events']} events "
          f"in {info['train_seconds']:.0f} s")
    results["training"] = info
    model_dir = out / "mem_model"
    model.save(model_dir, overwrite=True)
    print(f"model saved to {model_dir}: {sorted(p.name for p in model_dir.iterdir())}")

    # %% 2. pseudo-data at the hidden truth: N ~ Poisson(σ_fid(θ_true) · L) accepted events
    # the reco (pT [GeV], η, φ) of ℓ⁻ then ℓ⁺ of the accepted events: shape (n, 6)
    pool = common.accepted_events(process, detector, TRUTH, seed=args.seed + 1)
    truth_t = {k: torch.tensor(v, dtype=torch.float64) for k, v in TRUTH.items()}
    sigma_fid = common.fiducial_cross_section(model, pool[:2], truth_t, names=NAMES,
                                              seed=args.seed + 2)
    n_obs = common.poisson_count(sigma_fid * args.luminosity, seed=args.seed + 3)
    data = pool[:n_obs]
    print(f"σ_fid(θ_true) = {sigma_fid * 1e3:.2f} fb -> {n_obs} events at "
          f"{args.luminosity:g} pb⁻¹ (from {pool.shape[0]} simulated)")
    results["n_events"] = n_obs
    results["sigma_fid_pb"] = sigma_fid

    # %% 3. the per-event likelihood and its diagnostics at the truth
    print("per-event importance-sampling diagnostics at the truth:")
    lik_plain = MEMLikelihood(model, data, n_samples=args.n_samples, parameter_names=NAMES,
                              n_fiducial=40_000, seed=args.seed + 4, on_flagged="ignore")
    with torch.no_grad():
        results["diagnostics_unfolder"] = _diagnostics("unfolder proposal",
                                                       lik_plain.evaluate(truth_t))
    # the unfolder is trained on few events; a reco-centred Student-t proposal mixed in
    # (multiple importance sampling) bounds the weights where the unfolder is too narrow
    model.proposal = StratifiedMixtureProposal(
        [model.proposal, RecoGaussianProposal(detector, process.sqrt_s)], [0.5, 0.5])
    lik = MEMLikelihood(model, data, n_samples=args.n_samples, parameter_names=NAMES,
                        n_fiducial=40_000, seed=args.seed + 4, on_flagged="ignore")
    with torch.no_grad():
        at_truth = lik.evaluate(truth_t)
    results["diagnostics_mixture"] = _diagnostics("unfolder + reco t mix", at_truth)
    print(f"  log L(θ_true) = {float(at_truth.log_p.sum()):.2f} ± "
          f"{float(at_truth.error.pow(2).sum().sqrt()):.2f} (MC error)")

    # %% 4a. 1D scan of the Z′ mass, coupling fixed at its default (= the truth, gzp = 1)
    grid_m = torch.linspace(1960.0, 2100.0, 29, dtype=torch.float64)   # 5 GeV steps
    sc1 = scan(lik, {"mzp": grid_m}, fixed={"gzp": 1.0})
    sc1.plot(out / "scan_mzp.png", overwrite=True)
    m2d = sc1.dataset["m2dlogl"].values
    at_true = float(np.interp(TRUTH["mzp"], grid_m.numpy(), m2d))
    print(f"1D scan: best fit mzp = {sc1.best_fit['mzp']:.1f} GeV "
          f"(truth {TRUTH['mzp']:g}), -2Δlog L at the truth = {at_true:.2f}")
    for iv in sc1.intervals:
        print(f"  {100 * iv.cl:.1f} % CL: mzp in [{iv.lower:.1f}, {iv.upper:.1f}] GeV")
    results["scan_1d"] = sc1.summary()
    results["scan_1d"]["m2dlogl_at_truth"] = at_true

    # %% 4b. 2D scan mzp × gzp with the extended term (the event count constrains σ_fid)
    grid_m2 = torch.linspace(1995.0, 2095.0, 21, dtype=torch.float64)
    grid_g = torch.linspace(0.75, 1.35, 13, dtype=torch.float64)
    sc2 = scan(lik, {"mzp": grid_m2, "gzp": grid_g}, luminosity=args.luminosity)
    sc2.plot(out / "scan_mzp_gzp.png", overwrite=True)
    print(f"2D scan: best fit mzp = {sc2.best_fit['mzp']:.1f} GeV, "
          f"gzp = {sc2.best_fit['gzp']:.3f}; at edge: {sc2.at_edge}")
    for c in sc2.contours:
        print(f"  {100 * c.cl:.1f} % CL contour: area {c.area:.1f} GeV, closed {c.closed}")
    results["scan_2d"] = sc2.summary()

    # %% 5. load the saved model back: the same likelihood to the last digit
    loaded = MEMModel.load(model_dir)
    lik_loaded = MEMLikelihood(loaded, data, n_samples=args.n_samples, parameter_names=NAMES,
                               n_fiducial=40_000, seed=args.seed + 4, on_flagged="ignore")
    with torch.no_grad():
        diff = (lik_loaded.log_prob(truth_t) - lik_plain.log_prob(truth_t)).abs().max()
    print(f"loaded {loaded!r}\n  max |Δ log p| vs the trained model: {float(diff):.2e}")
    results["reload_max_abs_diff"] = float(diff)

    common.write_results(results, out, t_start)
    print(f"done in {results['seconds']:.0f} s; plots, model and results.json in {out}")
    return results


if __name__ == "__main__":
    main()
