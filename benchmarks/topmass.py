r"""Top-quark mass from t t̄ → dilepton events: ML-MEM with JES fixed and JES free.

The issue's ``benchmarks/topmass.py`` (issue 15 item 5), started with its ML-MEM rows:

* **process**: t t̄ → b ℓ⁺ ν b̄ ℓ⁻ ν̄, ℓ = e, μ (ee, μμ, eμ, μe), LO, NNPDF3.1 LO, with a
  fixed numeric scale μ = 172.5 GeV (``scale=172.5``: the PDFs then do not depend on
  m_t and the likelihood keeps its PDF × flux cache; the default ``scale="fixed"``,
  μ = m_t, costs ×2.5 per θ);
* **detector**: the CMS-like card (``Detector("cms")``) with its b-tag efficiency and a
  jet energy scale factor; **observables**: ℓ⁻, ℓ⁺ and two b-jets (pT, η, φ), the
  default t t̄ selection (leptons pT > 20 GeV, |η| < 2.5; two b-tagged jets pT > 30 GeV,
  |η| < 2.5); no MET column (the card's MET is minus the sum of these four objects:
  no information beyond them, and a degenerate density);
* **model**: :func:`invsim.mem.recipe.build_model` over m_t ∈ [165, 180] GeV (3 points)
  and JES ∈ [0.95, 1.05] (one uniform factor per event), the b-jets truth-matched for
  training and summed over both assignments in the likelihood;
* **data**: a pool of selected events at m_t = 174.1 GeV (not a training mass), JES = 1,
  cut into disjoint pseudo-experiments;
* **posterior**: on a (m_t, JES) grid — the per-event log p̂ of the whole pool at every
  grid point once (common random numbers), then per pseudo-experiment the sum,
  × prior (m_t uniform on [165, 180], JES Normal(1, 0.02) truncated to [0.95, 1.05]),
  cubic-spline refined in m_t. *JES fixed*: the JES = 1 slice. *JES free*: JES
  marginalised. Reported per method: the mean 68 % width (full width of the central
  interval), the mean bias of the posterior mean, the 68 %/95 % coverage of the central
  intervals, and the wall time per pseudo-experiment (grid likelihood share + setup
  share); for JES free also the mean posterior mean/std of JES and the (m_t, JES)
  correlation.
* **speed**: the likelihood per event per θ on one CPU thread with 1000 importance
  samples (both assignments, 500 drawn under each): the one-off setup per event (draws,
  ε and r at the JES interpolation nodes) and the per-θ cost (dσ re-evaluation and
  interpolation; forward, and forward + backward as NUTS needs), the fiducial sample
  excluded (it is shared by all events).

NUTS is not used here (the CLI path is tested on a tiny model in
``tests/test_ttbar_cli.py``): at ~4 ms per event per θ a NUTS run per pseudo-experiment
is out of reach of a two-core machine, while the grid gives the same posterior
summaries of a two-parameter problem.

    OMP_NUM_THREADS=1 python3 benchmarks/topmass.py --out topmass.json
    python3 benchmarks/topmass.py --trials 200000 --experiments 2 --events 50 --quick
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time

import numpy as np
import torch

__all__ = ["grid_posterior", "main"]

TRUTH = 174.1
MT_RANGE = (165.0, 180.0)
JES_RANGE = (0.95, 1.05)


def _central(x: np.ndarray, pdf: np.ndarray, q: float) -> tuple[float, float]:
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (pdf[1:] + pdf[:-1]) * np.diff(x))])
    cdf /= cdf[-1]
    return (float(np.interp(0.5 - q / 2, cdf, x)), float(np.interp(0.5 + q / 2, cdf, x)))


def grid_posterior(mt: np.ndarray, jes: np.ndarray, loglik: np.ndarray, *,
                   jes_free: bool, fine: int = 601) -> dict:
    """Posterior summaries from log L on a (m_t, JES) grid.

    Args:
        mt: m_t grid (a,), GeV, increasing; jes: JES grid (b,), increasing, holding 1.
        loglik: log L, shape (a, b).
        jes_free: marginalise JES with its prior (else the JES = 1 slice).
        fine: points of the cubic-spline refinement in m_t.

    Returns:
        dict: mean, std, 68 %/95 % central intervals of m_t; with ``jes_free`` also
        the mean and std of JES and corr(m_t, JES).
    """
    from scipy.interpolate import CubicSpline

    from invsim.mem.detector_nuisances import default_prior

    x = np.linspace(mt[0], mt[-1], fine)
    if jes_free:
        prior = default_prior("jes", float(jes[0]), float(jes[-1]))
        lp = loglik + prior.log_prob(torch.as_tensor(jes)).numpy()[None, :]
        cols = CubicSpline(mt, lp, axis=0)(x)  # (fine, b)
        cols -= cols.max()
        post = np.exp(cols)
        post /= np.trapezoid(np.trapezoid(post, jes, axis=1), x)
        p_mt = np.trapezoid(post, jes, axis=1)
        p_jes = np.trapezoid(post, x, axis=0)
        m_mt = np.trapezoid(x * p_mt, x)
        m_j = np.trapezoid(jes * p_jes, jes)
        v_mt = np.trapezoid((x - m_mt) ** 2 * p_mt, x)
        v_j = np.trapezoid((jes - m_j) ** 2 * p_jes, jes)
        cov = np.trapezoid(np.trapezoid(post * (jes[None, :] - m_j), jes, axis=1)
                           * (x - m_mt), x)
        out = {"jes_mean": float(m_j), "jes_std": float(math.sqrt(v_j)),
               "corr": float(cov / math.sqrt(v_mt * v_j))}
    else:
        i1 = int(np.argmin(np.abs(jes - 1.0)))
        if abs(jes[i1] - 1.0) > 1e-12:
            raise ValueError("jes: the grid must hold 1.0 for the JES-fixed slice")
        col = CubicSpline(mt, loglik[:, i1])(x)
        p_mt = np.exp(col - col.max())
        p_mt /= np.trapezoid(p_mt, x)
        m_mt = np.trapezoid(x * p_mt, x)
        v_mt = np.trapezoid((x - m_mt) ** 2 * p_mt, x)
        out = {}
    lo68, hi68 = _central(x, p_mt, 0.6827)
    lo95, hi95 = _central(x, p_mt, 0.9545)
    return {"mean": float(m_mt), "std": float(math.sqrt(v_mt)), "ci68": [lo68, hi68],
            "ci95": [lo95, hi95], **out}


def _summary(rows: list[dict], truth: float) -> dict:
    w = [r["ci68"][1] - r["ci68"][0] for r in rows]
    bias = [r["mean"] - truth for r in rows]
    c68 = [r["ci68"][0] <= truth <= r["ci68"][1] for r in rows]
    c95 = [r["ci95"][0] <= truth <= r["ci95"][1] for r in rows]
    n = len(rows)
    out = {"n": n, "mean_width68": float(np.mean(w)), "mean_bias": float(np.mean(bias)),
           "bias_error": float(np.std(bias, ddof=1) / math.sqrt(n)) if n > 1 else math.nan,
           "mean_std": float(np.mean([r["std"] for r in rows])),
           "coverage68": float(np.mean(c68)), "coverage95": float(np.mean(c95)),
           # binomial 2σ band of the coverage over n pseudo-experiments
           "band68": [0.6827 - 2 * math.sqrt(0.6827 * 0.3173 / n),
                      0.6827 + 2 * math.sqrt(0.6827 * 0.3173 / n)],
           "band95": [0.9545 - 2 * math.sqrt(0.9545 * 0.0455 / n),
                      min(1.0, 0.9545 + 2 * math.sqrt(0.9545 * 0.0455 / n))]}
    if "corr" in rows[0]:
        for k in ("jes_mean", "jes_std", "corr"):
            out[f"mean_{k}"] = float(np.mean([r[k] for r in rows]))
    return out


def _timing(model, x: torch.Tensor, n_samples: int = 1000) -> dict:
    """ms per event: setup, and per θ forward / forward + backward (one thread)."""
    from invsim.mem import MEMLikelihood

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        m = len(x)
        t0 = time.perf_counter()
        lik = MEMLikelihood(model, x, n_samples=n_samples, parameter_names=["mt"],
                            nuisances=("jes",), n_fiducial=2, on_flagged="ignore", seed=11)
        setup = time.perf_counter() - t0
        reps = 3
        with torch.no_grad():
            lik.log_prob({"mt": 173.0, "jes": 1.0})
            t0 = time.perf_counter()
            for i in range(reps):
                lik.log_prob({"mt": 172.0 + i, "jes": 1.0 + 0.01 * i})
            fwd = (time.perf_counter() - t0) / reps
        t0 = time.perf_counter()
        for i in range(reps):
            th = {"mt": torch.tensor(172.0 + i, dtype=torch.float64, requires_grad=True),
                  "jes": torch.tensor(1.0 + 0.01 * i, dtype=torch.float64, requires_grad=True)}
            lik.log_prob(th).sum().backward()
        both = (time.perf_counter() - t0) / reps
    finally:
        torch.set_num_threads(threads)
    return {"events": m, "n_samples": n_samples, "assignments": len(lik.assignments),
            "jes_nodes": lik._cheb.k, "setup_ms_per_event": 1e3 * setup / m,
            "per_theta_ms_per_event": 1e3 * fwd / m,
            "per_theta_grad_ms_per_event": 1e3 * both / m, "threads": 1}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=1_500_000, help="training trials")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--experiments", type=int, default=10)
    ap.add_argument("--events", type=int, default=200, help="selected events per experiment")
    ap.add_argument("--samples", type=int, default=200, help="importance samples per event")
    ap.add_argument("--fiducial", type=int, default=50_000)
    ap.add_argument("--mt-points", type=int, default=31)
    ap.add_argument("--save-loglik", default=None, help="write the per-event log p grid (.npz)")
    ap.add_argument("--jes-points", type=int, default=9,
                    help="odd: the grid holds JES = 1; 1: JES fixed only (JES not in θ, the "
                         "cached factors evaluated at JES = 1 only: 9 times cheaper setup)")
    ap.add_argument("--timing-events", type=int, default=8)
    ap.add_argument("--model-dir", default=None, help="reuse (or write) the trained model")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="JSON results file")
    args = ap.parse_args(argv)
    if args.jes_points % 2 == 0 or args.jes_points < 1:
        ap.error("--jes-points: expected an odd number (the grid must hold JES = 1)")

    from forward.detector import Detector
    from forward.processes import get_process
    from invsim.mem import MEMLikelihood, MEMModel
    from invsim.mem.recipe import build_model
    from invsim.observables import RecoObservables
    from invsim.pairs import simulate

    t_start = time.perf_counter()
    process = get_process("ttbar", decays="dilepton", leptons="all", scale=172.5)
    obs = RecoObservables.for_process(process, met=False)
    detector = Detector("cms")
    t0 = time.perf_counter()
    if args.model_dir and os.path.exists(os.path.join(args.model_dir, "mem.json")):
        model, train_info = MEMModel.load(args.model_dir), {"loaded": args.model_dir}
    else:
        model, train_info = build_model(
            process, detector, n_trials=args.trials, epochs=args.epochs, observables=obs,
            seed=args.seed, ranges={"mt": MT_RANGE, "jes": JES_RANGE},
            hidden=(args.hidden, args.hidden), min_accepted=0)
        if args.model_dir:
            model.save(args.model_dir)
    train_s = time.perf_counter() - t0
    print(f"model: {train_info.get('train_accepted', '?')} accepted training events, "
          f"{train_s:.0f} s", flush=True)

    # the pool of selected events at the truth, JES = 1
    need = args.experiments * args.events + args.timing_events
    xs, n_read, failed, k = [], 0, {}, 0
    while sum(len(x) for x in xs) < need:
        sim = simulate(process, detector, 400_000, {"mt": TRUTH}, observables=obs,
                       seed=10_000 + args.seed + k)
        xs.append(sim.x_reco[sim.passed])
        n_read += len(sim)
        for key, v in sim.failed.items():
            failed[key] = failed.get(key, 0) + v
        k += 1
    pool = torch.cat(xs)[:need]
    x_time, pool = pool[:args.timing_events], pool[args.timing_events:]
    print(f"data: {len(pool)} selected events of {n_read} simulated at mt={TRUTH} "
          f"(dropped: {failed})", flush=True)

    timing = _timing(model, x_time) if args.timing_events else {}
    if timing:
        print(f"speed (1 thread, {timing['n_samples']} samples, both assignments): setup "
              f"{timing['setup_ms_per_event']:.0f} ms/event, per θ "
              f"{timing['per_theta_ms_per_event']:.2f} ms/event (with gradient "
              f"{timing['per_theta_grad_ms_per_event']:.2f})", flush=True)

    t0 = time.perf_counter()
    jes_free = args.jes_points > 1
    lik = MEMLikelihood(model, pool, n_samples=args.samples, parameter_names=["mt"],
                        nuisances=("jes",) if jes_free else (), n_fiducial=args.fiducial,
                        on_flagged="ignore", seed=args.seed + 1)
    setup_s = time.perf_counter() - t0
    # importance-sampling health at the truth: effective sample size per event
    with torch.no_grad():
        at = {"mt": TRUTH, **({"jes": 1.0} if jes_free else {})}
        res = lik.evaluate(at)
    health = {"median_ess": float(res.ess.median()), "median_error": float(res.error.median()),
              "flagged_fraction": float(res.flagged.double().mean())}
    print(f"importance sampling at mt={TRUTH}: median ESS {health['median_ess']:.1f} of "
          f"{args.samples}, median error of log p {health['median_error']:.2f}, "
          f"{100 * health['flagged_fraction']:.0f} % flagged", flush=True)
    mt = np.linspace(*MT_RANGE, args.mt_points)
    jes = np.linspace(*JES_RANGE, args.jes_points) if jes_free else np.array([1.0])
    t0 = time.perf_counter()
    lp = np.empty((len(mt), len(jes), len(pool)))
    with torch.no_grad():
        for i, m in enumerate(mt):
            theta = {"mt": torch.full((len(jes),), float(m), dtype=torch.float64)}
            if jes_free:
                theta["jes"] = torch.as_tensor(jes)
            out = lik.log_prob(theta)
            lp[i] = out.numpy()
    grid_s = time.perf_counter() - t0
    bad = ~np.isfinite(lp).all((0, 1))
    if args.save_loglik:
        np.savez_compressed(args.save_loglik, mt=mt, jes=jes, loglik=lp)
    print(f"likelihood: setup {setup_s:.0f} s, grid {grid_s:.0f} s; {int(bad.sum())} events "
          "with a non-finite log p dropped", flush=True)
    rows = {"ML-MEM, JES fixed": [], **({"ML-MEM, JES free": []} if jes_free else {})}
    for e in range(args.experiments):
        sl = slice(e * args.events, (e + 1) * args.events)
        ll = lp[:, :, sl][:, :, ~bad[sl]].sum(-1)
        rows["ML-MEM, JES fixed"].append(grid_posterior(mt, jes, ll, jes_free=False))
        if jes_free:
            rows["ML-MEM, JES free"].append(grid_posterior(mt, jes, ll, jes_free=True))
    per_pe = (setup_s + grid_s) / args.experiments
    table = {name: {**_summary(r, TRUTH), "wall_s_per_experiment": per_pe}
             for name, r in rows.items()}
    print(f"\n{args.experiments} pseudo-experiments x {args.events} events at mt = {TRUTH} "
          f"GeV ({args.samples} importance samples per event)")
    print(f"{'method':20s} {'width68':>8s} {'bias':>14s} {'cov68':>6s} {'cov95':>6s} "
          f"{'s/PE':>6s}  extra")
    for name, s in table.items():
        extra = (f"jes {s['mean_jes_mean']:.4f} ± {s['mean_jes_std']:.4f}, "
                 f"corr(mt, jes) {s['mean_corr']:+.2f}" if "mean_corr" in s else "")
        print(f"{name:20s} {s['mean_width68']:8.2f} {s['mean_bias']:+7.2f} ± "
              f"{s['bias_error']:4.2f} {s['coverage68']:6.2f} {s['coverage95']:6.2f} "
              f"{s['wall_s_per_experiment']:6.0f}  {extra}")
    result = {
        "truth_mt": TRUTH, "experiments": args.experiments, "events": args.events,
        "importance_samples": args.samples, "fiducial": args.fiducial,
        "mt_grid": mt.tolist(), "jes_grid": jes.tolist(), "table": table,
        "per_experiment": rows, "timing": timing, "importance_sampling": health,
        "train": {k: v for k, v in train_info.items() if k in (
            "train_events", "train_accepted", "transfer_val_loss", "acceptance_val_loss",
            "unfolder_val_loss", "train_seconds", "unfolder_outside_map", "loaded")},
        "settings": vars(args), "data_dropped": failed, "events_nonfinite": int(bad.sum()),
        "wall_s": time.perf_counter() - t_start, "platform": platform.platform(),
        "torch_threads": torch.get_num_threads(),
    }
    print(json.dumps({k: result[k] for k in ("table", "timing")}))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=1)
    return result


if __name__ == "__main__":
    main()
