"""Tutorial 5: measure the top-quark mass from dilepton t t̄ events, on the command line.

What you learn, as a top-mass analyst:

1. make pseudo-data with ``invsim generate``: t t̄ → b ℓ⁺ ν b̄ ℓ⁻ ν̄ with every lepton
   flavour combination (ee, μμ, eμ, μe), a fixed scale μ = 172.5 GeV, at a top mass
   m_t = 174.1 GeV that the model is *not* trained at, through the CMS-like card
   detector (jets smeared with the card's response, b-tagging, leptons);
2. train the ML-MEM with ``invsim train`` over m_t ∈ [165, 180] GeV (training points
   165, 172.5, 180) and a jet-energy-scale factor JES ∈ [0.95, 1.05], a detector
   nuisance the networks get as one more condition;
3. scan −2Δlog L in m_t with ``invsim scan`` (JES held at 1: the statistical part
   only) and sample the posterior of (m_t, JES) with ``invsim posterior --nuisance
   jes`` (NUTS; JES has the prior Normal(1, 0.02) truncated to the trained range and is
   marginalised: the reported m_t includes the JES uncertainty);
4. read the flagged-event warnings and the per-event effective sample size (ESS) of the
   importance sampling before trusting any interval;
5. cross-check with a classical statistic that needs no machine learning: the median of
   m(bℓ) (:func:`invsim.ttbar_mass.mbl_statistic`) calibrated on simulated templates.

What the numbers mean:

* The likelihood is *shape only*: without ``--luminosity`` the event count is not used.
  With it, the steeply falling σ(m_t) would add a (theory-dependent, here leading-order)
  constraint that a top-mass measurement usually keeps separate.
* Each event's likelihood sums over the two b-jet ↔ b/b̄ assignments (the b-tag does not
  tell the charge) and integrates over the unseen neutrinos by importance sampling.
* Events without two opposite-sign leptons or two b-jets are dropped with a count
  (printed as ``dropped: {...}``); they are never silently mis-assigned.
* **Known limitation (docs/design.md §5.6):** the t t̄ importance-sampling proposal
  reaches an ESS of only a few draws per event, so log p̂ of an event is close to one
  draw's product of the narrow top and W Breit–Wigners. invsim then *flags* the event
  (MC error > 0.1, ESS < 20, Pareto k̂ > 0.7) and the scan and posterior say
  ``reliable: false``. Read these warnings: with flagged events the intervals are too
  narrow and biased (in §5.6 by about +5 GeV with a 1 GeV width), whatever the number
  of events. The m(bℓ) cross-check is the sanity check to hold the ML-MEM against.

Sizes: the defaults take about 4 minutes of one CPU core (9 minutes of wall time on a
loaded two-core machine), most of it likelihood evaluations (each costs events × importance
samples × 2 assignments; the spiky likelihood of flagged events makes long
trajectories), and its chains are far too short to pass the convergence checks (the
posterior says so). One such run (136 selected events, truth 174.1 GeV): scan best fit
165.4 GeV with a 0.1 GeV interval, NUTS 172.52 ± 0.07 GeV, m(bℓ) 178.6 ± 2.9 GeV, every
event flagged with a median ESS of 1.6 of 50 draws: the ML-MEM numbers are the
limitation above, not a measurement. The test suite
runs it in about 40 s of one core's time with ``--events 400 --trials 20000 --epochs 1
--n-samples 25 --fiducial-samples 2000 --grid-points 16 --chains 1 --draws 6 --warmup 6
--template-trials 60000 --train-calls 20000``.

    python3 tutorials/05_measure_top_mass.py              # writes into a temp folder
    python3 tutorials/05_measure_top_mass.py out/ --events 3000 --trials 3000000 --draws 200

The same by hand (what the tutorial runs, with its default sizes)::

    invsim generate ttbar --events 1000 --set decays=dilepton --set leptons=all \\
        --set scale=172.5 --set mt=174.1 --detector cms --train-calls 100000 --seed 1 \\
        -o pseudo_data.h5
    invsim train ttbar --set decays=dilepton --set leptons=all --set scale=172.5 \\
        --detector cms --param mt=165:180 --param jes=0.95:1.05 --epochs 6 -o tt_model
    invsim scan --model tt_model --data pseudo_data.h5 --param mt=165:180:31 \\
        --samples-per-event 50 --fiducial-samples 20000 -o scan_mt
    invsim posterior --model tt_model --data pseudo_data.h5 --nuisance jes \\
        --samples-per-event 50 --fiducial-samples 20000 --chains 2 --samples 40 \\
        --warmup 40 -o posterior.nc
"""

# %% imports and settings
from __future__ import annotations

import contextlib
import io
import json
import time

# tutorials/_common.py: options, output folder and results of the tutorials
import _common as common
import numpy as np
import torch

from invsim.cli import cli

__all__ = ["TRUTH", "main", "mbl_calibration", "run_invsim"]

#: the hidden top mass of the pseudo-data (GeV): not a training point
TRUTH = {"mt": 174.1}
#: the trained ranges: m_t in GeV (3 training points), JES a dimensionless factor
MT_RANGE, JES_RANGE = (165.0, 180.0), (0.95, 1.05)
#: process settings shared by the pseudo-data, the training and the templates
SETTINGS = {"decays": "dilepton", "leptons": "all", "scale": 172.5}


def run_invsim(*args: str) -> str:
    """Run ``invsim ARGS`` in this process (as typed in a shell), echo and return its output.

    Errors propagate as exceptions (``standalone_mode=False``); the output files record
    the command line ``["invsim", *args]`` in their provenance.
    """
    print("$ invsim " + " ".join(args), flush=True)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        cli.main(list(args), prog_name="invsim", standalone_mode=False)
    text = buf.getvalue()
    shown = text if len(text) < 1500 else text[:600] + " [...] " + text[-600:]
    print("  " + shown.strip().replace("\n", "\n  "), flush=True)
    return text


def _settings() -> list[str]:
    return [a for k, v in SETTINGS.items() for a in ("--set", f"{k}={v}")]


def _last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


# %% the m(bℓ) cross-check: median of the per-event statistic, calibrated on templates
def mbl_calibration(process, observables, masses, *, trials: int, seed: int,
                    n_boot: int = 200) -> dict:
    """Median m(bℓ) [GeV] of simulated events at each top mass in ``masses`` [GeV].

    The templates come from :func:`invsim.pairs.simulate` (hit-or-miss unweighted events
    of the same process through the same card detector, JES = 1), ``trials`` weighted
    trial points per mass. The median's error is the bootstrap standard deviation
    (``n_boot`` resamples, seeded). Returns the masses, medians, errors and a straight
    line median = a + b (m_t − 172.5 GeV) fitted by weighted least squares, with the
    covariance of (a, b).
    """
    from forward.detector import Detector
    from invsim.pairs import simulate
    from invsim.ttbar_mass import mbl_statistic

    stat = mbl_statistic(observables)
    med, err, counts = [], [], []
    for i, m in enumerate(masses):
        sim = simulate(process, Detector("cms"), trials, {"mt": float(m)},
                       observables=observables, seed=seed + i)
        values = stat(sim.x_reco[sim.passed])
        med_i, err_i = _median_and_error(values, seed=seed + 100 + i, n_boot=n_boot)
        med.append(med_i)
        err.append(err_i)
        counts.append(len(values))
    x = np.asarray(masses, dtype=float) - 172.5
    design = np.stack([np.ones_like(x), x], 1)
    w = 1.0 / np.asarray(err) ** 2
    cov = np.linalg.inv(design.T @ (design * w[:, None]))
    a, b = cov @ design.T @ (w * np.asarray(med))
    return {"masses": [float(m) for m in masses], "medians": med, "errors": err,
            "selected": counts, "a": float(a), "b": float(b), "cov": cov.tolist()}


def _median_and_error(values: torch.Tensor, *, seed: int, n_boot: int) -> tuple[float, float]:
    """Median of ``values`` (m,) and its bootstrap standard deviation."""
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(len(values), (n_boot, len(values)), generator=gen)
    return float(values.median()), float(values[idx].median(-1).values.std())


def _invert(cal: dict, median: float, error: float) -> tuple[float, float]:
    """m_t [GeV] where the calibration line reaches ``median``, with its error from the
    data median's error and the line's covariance (linear propagation)."""
    a, b = cal["a"], cal["b"]
    dm = (median - a) / b
    grad = np.array([-1.0 / b, -dm / b])       # d m_t / d(a, b)
    var = (error / b) ** 2 + grad @ np.asarray(cal["cov"]) @ grad
    return 172.5 + dm, float(np.sqrt(var))


def main(argv: list[str] | None = None) -> dict:
    """Run the tutorial; returns the numbers written to ``results.json``."""
    parser = common.tutorial_parser(__doc__, n_samples=50)
    parser.set_defaults(trials=1_000_000, epochs=6)
    parser.add_argument("--events", type=int, default=1000,
                        help="generated pseudo-data events (about 1 in 6 is selected)")
    parser.add_argument("--train-calls", type=int, default=100_000,
                        help="NIS training calls of `invsim generate`")
    parser.add_argument("--fiducial-samples", type=int, default=20_000)
    parser.add_argument("--grid-points", type=int, default=31, help="m_t scan points")
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--draws", type=int, default=40, help="NUTS draws per chain")
    parser.add_argument("--warmup", type=int, default=40)
    parser.add_argument("--template-trials", type=int, default=400_000,
                        help="simulation trials per template mass of the m(bℓ) check")
    args = parser.parse_args(argv)
    out = common.output_folder(args.out, prefix="invsim_tutorial05_")
    results: dict = {"truth": TRUTH, "sizes": {k: v for k, v in vars(args).items()
                                               if k != "out"}}
    t_start = time.perf_counter()
    data, model = out / "pseudo_data.h5", out / "tt_model"
    likelihood_sizes = ["--samples-per-event", str(args.n_samples),
                        "--fiducial-samples", str(args.fiducial_samples)]

    # %% 1. pseudo-data at a mass the model is not trained at
    gen = _last_json(run_invsim(
        "generate", "ttbar", "--events", str(args.events), *_settings(),
        "--set", f"mt={TRUTH['mt']}", "--detector", "cms", "--train-calls",
        str(args.train_calls), "--seed", str(args.seed + 1), "-o", str(data), "--overwrite",
        "--json"))
    results["generate"] = {k: gen[k] for k in ("n_events", "sigma_pb", "error_pb",
                                               "n_passed")}

    # %% 2. train transfer, acceptance and proposal over (m_t, JES)
    train = _last_json(run_invsim(
        "train", "ttbar", *_settings(), "--detector", "cms",
        "--param", f"mt={MT_RANGE[0]}:{MT_RANGE[1]}",
        "--param", f"jes={JES_RANGE[0]}:{JES_RANGE[1]}",
        "--trials", str(args.trials), "--epochs", str(args.epochs),
        "--seed", str(args.seed + 2), "-o", str(model), "--overwrite", "--json"))
    results["train"] = {k: train.get(k) for k in ("train_events", "train_accepted",
                                                  "train_seconds", "observables")}

    # %% 3a. scan of m_t with JES = 1 (shape only, statistical uncertainty)
    scan_dir = out / "scan_mt"
    scan = _last_json(run_invsim(
        "scan", "--model", str(model), "--data", str(data),
        "--param", f"mt={MT_RANGE[0]}:{MT_RANGE[1]}:{args.grid_points}", *likelihood_sizes,
        "--seed", str(args.seed + 3), "--on-flagged", "warn", "-o", str(scan_dir),
        "--overwrite", "--json"))
    grid, m2d = _scan_curve(scan_dir / "scan.csv")
    results["scan"] = {k: scan[k] for k in ("best_fit", "intervals", "at_edge", "n_events",
                                            "n_flagged", "flag_reasons", "reliable",
                                            "flag_message", "provenance", "inputs")}
    results["scan"]["m2dlogl_at_truth"] = float(np.interp(TRUTH["mt"], grid, m2d))
    _explain_flags("scan", scan)

    # %% 3b. posterior of (m_t, JES) by NUTS, JES marginalised with its prior
    post = _last_json(run_invsim(
        "posterior", "--model", str(model), "--data", str(data), "--nuisance", "jes",
        *likelihood_sizes, "--chains", str(args.chains), "--samples", str(args.draws),
        "--warmup", str(args.warmup), "--seed", str(args.seed + 4), "--on-flagged", "warn",
        "-o", str(out / "posterior.nc"), "--overwrite", "--json"))
    results["posterior"] = {k: post[k] for k in ("parameters", "correlation", "n_events",
                                                 "n_flagged", "reliable", "warnings",
                                                 "provenance")}
    mt_post = post["parameters"]["mt"]
    print(f"posterior: m_t = {mt_post['mean']:.2f} ± {mt_post['sd']:.2f} GeV (JES "
          f"marginalised; JES = {post['parameters']['jes']['mean']:.4f} ± "
          f"{post['parameters']['jes']['sd']:.4f}, corr(m_t, JES) = "
          f"{post['correlation']['mt']['jes']:+.2f})")
    _explain_flags("posterior", post)

    # %% 4. the per-event importance-sampling diagnostics behind the flags
    results["diagnostics"] = _diagnostics(model, data, args, scan["best_fit"]["mt"])

    # %% 5. cross-check: median m(bℓ) of the data against templates
    from forward.processes import get_process
    from invsim.data import load_observed
    from invsim.observables import RecoObservables
    from invsim.ttbar_mass import mbl_statistic

    process = get_process("ttbar", **SETTINGS)
    observables = RecoObservables.for_process(process)   # as `invsim train` uses
    observed = load_observed(data, observables)
    data_mbl = mbl_statistic(observables)(observed.x)
    med, med_err = _median_and_error(data_mbl, seed=args.seed + 5, n_boot=200)
    cal = mbl_calibration(process, observables, np.linspace(*MT_RANGE, 5),
                          trials=args.template_trials, seed=args.seed + 6)
    mt_mbl, mt_mbl_err = _invert(cal, med, med_err)
    print(f"m(bℓ) cross-check: median {med:.2f} ± {med_err:.2f} GeV over "
          f"{len(data_mbl)} events; templates rise by {cal['b']:.3f} GeV per GeV of m_t "
          f"-> m_t = {mt_mbl:.1f} ± {mt_mbl_err:.1f} GeV")
    results["mbl"] = {"median": med, "median_error": med_err, "n_events": len(data_mbl),
                      "calibration": cal, "mt": mt_mbl, "mt_error": mt_mbl_err}

    # %% the three numbers side by side: only the ones without flags are a measurement
    iv68 = next(iv for iv in scan["intervals"] if abs(iv["level"] - 1.0) < 1e-9)
    print(f"\nm_t [GeV], truth {TRUTH['mt']}:")
    print(f"  ML-MEM scan, JES = 1     {scan['best_fit']['mt']:8.2f}  68 % CL "
          f"[{iv68['lower'] or float('nan'):.2f}, {iv68['upper'] or float('nan'):.2f}]"
          f"{'  (flagged events: unreliable)' if scan['reliable'] is False else ''}")
    print(f"  ML-MEM NUTS, JES marg.   {mt_post['mean']:8.2f} ± {mt_post['sd']:.2f}"
          f"{'  (flagged events: unreliable)' if post['reliable'] is False else ''}")
    print(f"  median m(bℓ) templates   {mt_mbl:8.2f} ± {mt_mbl_err:.2f}")
    _plot(out / "top_mass.png", grid, m2d, out / "posterior.nc", data_mbl, cal,
          (mt_mbl, mt_mbl_err))
    common.write_results(results, out, t_start)
    print(f"done in {results['seconds']:.0f} s; files in {out}")
    return results


def _scan_curve(csv_path) -> tuple[np.ndarray, np.ndarray]:
    """m_t grid and −2Δlog L from the scan's CSV (one row per grid point)."""
    import csv

    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    return (np.array([float(r["mt"]) for r in rows]),
            np.array([float(r["m2dlogl"]) for r in rows]))


def _explain_flags(what: str, summary: dict) -> None:
    """Print the flag summary of a scan or posterior and what it implies."""
    if summary["reliable"] is False:
        print(f"  {what}: {summary['flag_message']}\n  -> the importance sampling of these "
              "events is not converged (docs/design.md §5.6): treat the interval as a "
              "demonstration of the workflow, not as a measurement.")
    else:
        print(f"  {what}: no flagged events")


def _diagnostics(model, data, args, mt: float) -> dict:
    """Per-event ESS, MC error and flags of the ML-MEM at m_t = ``mt`` (JES = 1), from
    the Python API the commands use (:func:`invsim.data.model_likelihood`)."""
    from invsim.data import model_likelihood

    lik, _ = model_likelihood(model, data, n_samples=args.n_samples,
                              n_fiducial=args.fiducial_samples, seed=args.seed + 3,
                              on_flagged="ignore")
    with torch.no_grad():
        res = lik.evaluate({"mt": torch.tensor(mt, dtype=torch.float64)})
    ess = res.ess.reshape(-1)
    out = {"mt": mt, "median_ess": float(ess.median()), "n_samples": args.n_samples,
           "n_flagged": int(res.flagged.sum()), "n_events": int(ess.numel())}
    print(f"diagnostics at m_t = {mt:.2f} GeV: median ESS {out['median_ess']:.1f} of "
          f"{args.n_samples} draws per event; {out['n_flagged']} of {out['n_events']} events "
          "flagged")
    return out


def _plot(path, grid, m2d, posterior_nc, data_mbl, cal, mt_mbl) -> None:
    """Scan and posterior of m_t, and the m(bℓ) calibration, in one figure."""
    import arviz as az
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    draws = az.from_netcdf(str(posterior_nc)).posterior["mt"].values.reshape(-1)
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(13, 3.8))
    ax1.plot(grid, m2d, "o-", ms=3, label="scan, JES = 1")
    ax1.axhline(1.0, color="grey", lw=0.5)
    ax1.axvline(TRUTH["mt"], color="k", ls=":", label="truth")
    ax1.set(xlabel="m_t [GeV]", ylabel="−2Δlog L", ylim=(0, 12))
    ax1.legend(fontsize=8)
    ax2.hist(draws, bins=20, color="C1", alpha=0.7, label="NUTS, JES marginalised")
    ax2.axvline(TRUTH["mt"], color="k", ls=":")
    ax2.set(xlabel="m_t [GeV]", ylabel="draws")
    ax2.legend(fontsize=8)
    x = np.asarray(cal["masses"])
    ax3.errorbar(x, cal["medians"], cal["errors"], fmt="o", label="templates")
    ax3.plot(x, cal["a"] + cal["b"] * (x - 172.5), "-", color="C0")
    ax3.errorbar([mt_mbl[0]], [float(data_mbl.median())], xerr=[mt_mbl[1]], fmt="s",
                 color="C3", label="pseudo-data")
    ax3.axvline(TRUTH["mt"], color="k", ls=":")
    ax3.set(xlabel="m_t [GeV]", ylabel="median m(bℓ) [GeV]")
    ax3.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
