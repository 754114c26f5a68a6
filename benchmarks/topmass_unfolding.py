"""Top mass from unfolded t t̄ → dilepton events: naive vs prior-independent cINN, IBU, OmniFold.

Forward side: ``TTbar(decays="dilepton", leptons="all")`` (LO, narrow width, Pythia 8.317
widths and BRs) through the card detector ``Detector("cms")`` with the default selection
(two opposite-sign leptons pT > 20 GeV, |η| < 2.5; two b-tagged jets pT > 30 GeV,
|η| < 2.5; MET), observables ``RecoObservables.for_process`` (14 columns).

Unfolding to the six-particle hard final state (16 coordinates of the top-pair decay
map built at m_t = 169.5 GeV with 25-width windows, so the events of every mass used lie
inside):

* **naive**: :class:`invsim.unfold.Unfolder` trained on the pairs at 172.5 GeV only;
* **prior-independent** (:class:`invsim.unfold_prior.PriorIndependentUnfolder`): trained
  on the pairs at 169.5, 172.5 and 175.5 GeV, conditioned besides x_reco on the data set's
  calibrated mean (``--aggregate``; its error is ~17 % below the median's here) of the
  reco m(bℓ) (minimax pairing, :mod:`invsim.ttbar_mass`).

m_t from the unfolded events: unbinned Voigt (Γ_t/2 fixed) + flat fit of the unfolded
m(bℓν) of both tops in [160, 185] GeV (:func:`invsim.peak_fit.fit_peak`); 68 % width =
the standard deviation over bootstrap replicates of the reco events (each re-unfolded,
the summary recomputed). The "truth" row fits the pseudo-data's true hard events (the
floor, analytic error). The prior-independent rows also give the calibration's Monte
Carlo error (θ̂ of the data when the training samples are resampled) and the total.

Baselines on one binned observable, the per-event mean top mass m̄_t = (m_t + m_t̄)/2 in
1 GeV bins on [160, 185] GeV, unfolded from the reco m(bℓ) statistic (5 GeV bins on
[20, 180] GeV): **IBU** (``pyunfold.iterative_unfold``, response and prior from the 172.5
GeV pairs, 4 iterations), **OmniFold** (the ``omnifold`` package's ``MultiFold`` with
its MLP classifiers: step 1 on the 14 reco columns, step 2 on (m_t, m_t̄); 3 iterations;
MC = the 172.5 GeV pairs) and the prior-independent cINN's unfolded m̄_t histogram. Each
unfolded histogram gets the same template fit: χ² against the truth m̄_t histograms of
the three training masses, interpolated quadratically per bin in m_t; widths from
bootstrap replicates of the reco data (IBU, cINN: ``--n-boot``; OmniFold:
``--omnifold-boot`` retrainings, 0 = point estimate only).

The baselines are benchmark-only: ``pyunfold`` and ``omnifold`` (which needs
``tensorflow``) are imported here and nowhere else; a missing one is reported and its
rows are skipped. They install into a separate environment that sees the project's
packages::

    python3 -m venv --system-site-packages /tmp/venv-unfold
    /tmp/venv-unfold/bin/pip install pyunfold omnifold
    OMP_NUM_THREADS=1 PYTHONPATH=$PWD /tmp/venv-unfold/bin/python \\
        benchmarks/topmass_unfolding.py --out benchmarks/results/topmass_unfolding.json

Small sizes by default (2 CPU cores shared with other jobs): 10k selected pairs per
training mass, 5k selected pseudo-data events per mass (independent seeds), 15 epochs,
one unfolded sample per reco event, 30 bootstrap replicates; see ``--help``. Run it on
one thread per process (``OMP_NUM_THREADS=1``) on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import tempfile
import time

import numpy as np
import torch

__all__ = ["main", "simulate_selected", "train_unfolders", "unfolded_peak"]

TRAIN_MASSES = (169.5, 172.5, 175.5)
DATA_MASSES = (169.5, 172.5, 174.1, 175.5)
FIT_WINDOW = (160.0, 185.0)
TRUTH_EDGES = np.linspace(160.0, 185.0, 26)
RECO_EDGES = np.linspace(20.0, 180.0, 33)


# -- simulation -----------------------------------------------------------------------
def simulate_selected(process, detector, observables, mt: float, n_selected: int,
                      seed: int, chunk_trials: int = 600_000):
    """Selected (hard, x_reco) pairs at m_t, at least n_selected, in chunks of trials."""
    from invsim.pairs import simulate

    hards, xs, k = [], [], 0
    while sum(len(h) for h in hards) < n_selected:
        sim = simulate(process, detector, chunk_trials, {"mt": mt}, observables=observables,
                       seed=seed * 1000 + k)
        hards.append(sim.hard[sim.passed])
        xs.append(sim.x_reco[sim.passed])
        k += 1
    hard = cat_events(hards)[:n_selected]
    return hard, torch.cat(xs)[:n_selected]


def cat_events(parts):
    from forward.events import HardEvents

    return HardEvents(torch.cat([h.momenta for h in parts]), torch.cat([h.x1 for h in parts]),
                      torch.cat([h.x2 for h in parts]), parts[0].sqrt_s)


# -- binned template fit --------------------------------------------------------------
class Templates:
    """Truth m̄_t histograms (unit area) at the training masses, quadratic in m_t per bin."""

    def __init__(self, truth_by_mass: dict[float, np.ndarray]):
        self.masses = np.array(sorted(truth_by_mass))
        h = [np.histogram(truth_by_mass[m], TRUTH_EDGES)[0].astype(float) for m in self.masses]
        self.h = np.array([x / x.sum() for x in h])                   # (3, bins)
        self.coef = np.polyfit(self.masses, self.h, 2)                 # (3, bins)

    def __call__(self, mt: float) -> np.ndarray:
        return np.clip(self.coef[0] * mt**2 + self.coef[1] * mt + self.coef[2], 1e-6, None)

    def fit(self, counts: np.ndarray) -> float:
        """m_t minimising χ² = Σ (u - T(m))² / T(m) · U (shape only; u = counts/U)."""
        from scipy.optimize import minimize_scalar

        counts = np.asarray(counts, dtype=float)
        total = counts.sum()
        u = counts / total

        def chi2(mt):
            t = self(mt)
            t = t / t.sum()
            return float(((u - t) ** 2 / t).sum() * total)

        return float(minimize_scalar(chi2, bounds=(163.0, 182.0), method="bounded",
                                     options={"xatol": 1e-4}).x)


def mean_top_mass(events) -> np.ndarray:
    from invsim.ttbar_mass import top_masses

    return top_masses(events).mean(-1).numpy()


# -- methods --------------------------------------------------------------------------
def peak_location(events) -> float:
    from forward.processes.top_decays import top_width
    from invsim.peak_fit import fit_peak
    from invsim.ttbar_mass import top_masses

    gamma = float(top_width(172.5)) / 2
    return fit_peak(top_masses(events).flatten(), FIT_WINDOW, gamma=gamma).location


def cinn_rows(unfold, x_data, templates, n_boot, seed):
    """Unbinned peak fit and binned template fit of one unfolder, bootstrap widths."""
    from invsim.unfold_prior import bootstrap_unfolded

    binned = []

    def estimator(events):
        binned.append(templates.fit(np.histogram(mean_top_mass(events), TRUTH_EDGES)[0]))
        return peak_location(events)

    res = bootstrap_unfolded(unfold, estimator, x_data, n_boot=n_boot, seed=seed)
    return ({"mt": res.estimate, "width": res.error},
            {"mt": binned[0], "width": float(np.std(binned[1:], ddof=1))})


def ibu(x_stat_mc, truth_mc, x_stat_data, n_boot, templates, seed, iterations=4):
    """IBU with pyunfold: response and prior from MC; template fit; bootstrap width."""
    from pyunfold import iterative_unfold

    rng = np.random.default_rng(seed)
    h2, _, _ = np.histogram2d(x_stat_mc, truth_mc, (RECO_EDGES, TRUTH_EDGES))
    n_true = h2.sum(0)
    response = h2 / np.where(n_true > 0, n_true, 1)                  # P(reco | truth, sel.)
    resp_err = np.sqrt(h2) / np.where(n_true > 0, n_true, 1)
    eff = np.ones(len(TRUTH_EDGES) - 1)
    prior = n_true / n_true.sum()

    def unfold(x):
        d = np.histogram(x, RECO_EDGES)[0].astype(float)
        out = iterative_unfold(data=d, data_err=np.sqrt(d), response=response,
                               response_err=resp_err, efficiencies=eff,
                               efficiencies_err=np.zeros_like(eff), prior=prior,
                               ts="ks", ts_stopping=0.0, max_iter=iterations)
        return templates.fit(out["unfolded"])

    est = unfold(x_stat_data)
    reps = [unfold(x_stat_data[rng.integers(0, len(x_stat_data), len(x_stat_data))])
            for _ in range(n_boot)]
    return {"mt": est, "width": float(np.std(reps, ddof=1)), "iterations": iterations}


def omnifold_fit(reco_mc, gen_mc, reco_data, templates, truth_mc, seed, n_boot, epochs):
    """OmniFold (omnifold.MultiFold, MLP classifiers); weighted MC truth -> template fit."""
    import keras
    import tensorflow as tf
    from omnifold import MLP, DataLoader, MultiFold
    from omnifold.net import weighted_binary_crossentropy

    # omnifold 0.1.36 compiles its classifiers with this loss and then clones them, which
    # Keras >= 3 refuses ("Could not locate function 'weighted_binary_crossentropy'")
    # unless the function is registered
    keras.saving.get_custom_objects()["weighted_binary_crossentropy"] = (
        weighted_binary_crossentropy)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # already initialised by an earlier call
        pass

    mu, sd = reco_mc.mean(0), reco_mc.std(0)
    gmu, gsd = gen_mc.mean(0), gen_mc.std(0)
    r_mc, r_data, g_mc = (reco_mc - mu) / sd, (reco_data - mu) / sd, (gen_mc - gmu) / gsd

    def run(k, data_rows):
        tf.keras.utils.set_random_seed(seed + k)
        with tempfile.TemporaryDirectory() as tmp:
            data = DataLoader(reco=r_data[data_rows].astype(np.float32), normalize=True)
            mc = DataLoader(reco=r_mc.astype(np.float32), gen=g_mc.astype(np.float32),
                            normalize=True)
            mf = MultiFold(f"topmass{k}", MLP(r_mc.shape[1]), MLP(g_mc.shape[1]), data, mc,
                           weights_folder=tmp, log_folder=tmp, niter=3, epochs=epochs,
                           batch_size=512, lr=1e-3, early_stop=3, verbose=False)
            mf.Unfold()
            w = mf.weights_push
        h = np.histogram(truth_mc, TRUTH_EDGES, weights=w)[0]
        return templates.fit(h)

    rng = np.random.default_rng(seed)
    est = run(0, np.arange(len(r_data)))
    reps = [run(k + 1, rng.integers(0, len(r_data), len(r_data))) for k in range(n_boot)]
    return {"mt": est, "width": float(np.std(reps, ddof=1)) if n_boot >= 2 else None,
            "bootstrap": n_boot}


def train_unfolders(process, observables, train: dict, *, epochs: int = 15,
                    aggregate: str = "mean", naive_mass: float = 172.5):
    """The naive and the prior-independent cINN unfolders (module docstring).

    Args:
        process: the t t̄ dilepton process of the training pairs.
        observables: their :class:`~invsim.observables.RecoObservables`.
        train: training mass (GeV) -> (HardEvents, x_reco (n, d)) of selected pairs, the
            same n at every mass; ``naive_mass`` among them.
        epochs: training epochs of both flows.
        aggregate: aggregate of the per-event m(bℓ) in the data-set summary.
        naive_mass: the naive unfolder's one training mass.

    Returns:
        (naive :class:`~invsim.unfold.Unfolder`, :class:`~invsim.unfold_prior.
        PriorIndependentUnfolder`, info dict with both TrainResults and seconds).
    """
    from forward.phasespace import HadronicMap, PowerLawSampling
    from forward.processes.top_decays import TopPairDecayMap
    from invsim.flows import FlowConfig, TrainConfig, observable_preprocessing
    from invsim.hardspace import HardCoordinates
    from invsim.ttbar_mass import mbl_statistic
    from invsim.unfold import Unfolder
    from invsim.unfold_prior import DatasetSummary, PriorIndependentUnfolder

    masses = sorted(train)
    coords = HardCoordinates(HadronicMap(process.sqrt_s, TopPairDecayMap(169.5, bw_cut=25.0),
                                         PowerLawSampling(2.5)))
    flow = FlowConfig(transforms=4, hidden_features=(64, 64), conditional_affine=True)
    cfg = TrainConfig(epochs=epochs, batch_size=512, lr=2e-3, patience=None)
    t0 = time.perf_counter()
    naive = Unfolder(coords, observable_preprocessing(observables.kinds), flow, seed=1)
    h0, x0 = train[naive_mass]
    res_naive = naive.fit(h0, x0, config=cfg, seed=2, progress=False)
    t_naive = time.perf_counter() - t0
    t0 = time.perf_counter()
    summary = DatasetSummary(mbl_statistic(observables), name="mt", aggregate=aggregate)
    pi = PriorIndependentUnfolder(coords, observable_preprocessing(observables.kinds), summary,
                                  flow, seed=1)
    hard = cat_events([train[m][0] for m in masses])
    x = torch.cat([train[m][1] for m in masses])
    theta = torch.cat([torch.full((len(train[m][1]),), m, dtype=torch.float64)
                       for m in masses])
    res_pi = pi.fit(hard, x, theta, config=cfg, seed=2, progress=False)
    t_pi = time.perf_counter() - t0
    return naive, pi, {"naive": res_naive, "prior_independent": res_pi,
                       "seconds_naive": t_naive, "seconds_prior_independent": t_pi,
                       "train_masses": masses, "naive_mass": naive_mass}


def unfolded_peak(unfold, x_data, n_boot: int, seed: int) -> dict:
    """m_t of the unfolded peak (:func:`peak_location`) with its bootstrap width.

    Args:
        unfold: ``unfold(x_reco, generator) -> HardEvents``.
        x_data: the reco data set (m, d).
        n_boot: bootstrap replicates (>= 2).
        seed: seeds the resampling and the unfolding.

    Returns:
        dict: ``mt`` (GeV) and ``width`` (the replicates' standard deviation, GeV).
    """
    from invsim.unfold_prior import bootstrap_unfolded

    res = bootstrap_unfolded(unfold, peak_location, x_data, n_boot=n_boot, seed=seed)
    return {"mt": res.estimate, "width": res.error}


def calibration_width(summary, train_x, x_data, n: int, seed: int) -> float:
    """Spread of θ̂(data) when the training samples behind the calibration are resampled
    (the calibration's Monte Carlo error, common to all data sets; not in the bootstrap
    over the data)."""
    from invsim.unfold_prior import DatasetSummary

    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n):
        s = DatasetSummary(summary.statistic, name=summary.name, aggregate=summary.aggregate)
        s.fit([x[torch.as_tensor(rng.integers(0, len(x), len(x)))] for x in train_x],
              list(TRAIN_MASSES))
        values.append(s(x_data))
    return float(np.std(values, ddof=1))


# -- main -----------------------------------------------------------------------------
def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train-per-mass", type=int, default=10_000,
                    help="selected training pairs per training mass")
    ap.add_argument("--data-events", type=int, default=5_000,
                    help="selected pseudo-data events per mass")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--samples", type=int, default=1, help="unfolded samples per reco event")
    ap.add_argument("--n-boot", type=int, default=30, help="bootstrap replicates (cINN, IBU)")
    ap.add_argument("--omnifold-boot", type=int, default=0,
                    help="OmniFold bootstrap retrainings (0: point estimate only)")
    ap.add_argument("--omnifold-epochs", type=int, default=5)
    ap.add_argument("--masses", type=float, nargs="+", default=list(DATA_MASSES),
                    help=f"pseudo-data masses to evaluate, of {list(DATA_MASSES)}")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", default=None, help="torch file caching the simulated pairs")
    ap.add_argument("--aggregate", default="mean", choices=("mean", "median"),
                    help="aggregate of the per-event m(bℓ) in the data-set summary")
    ap.add_argument("--out", default="benchmarks/results/topmass_unfolding.json",
                    help="JSON results file ('' for none)")
    args = ap.parse_args(argv)
    bad = sorted(set(args.masses) - set(DATA_MASSES))
    if bad:
        ap.error(f"--masses: {bad} are not pseudo-data masses {list(DATA_MASSES)}")

    from forward.detector import Detector
    from forward.processes.top_decays import top_width
    from forward.processes.ttbar import TTbar
    from invsim.observables import RecoObservables
    from invsim.peak_fit import fit_peak
    from invsim.ttbar_mass import mbl_statistic, top_masses

    torch.manual_seed(args.seed)
    if os.environ.get("OMP_NUM_THREADS") == "1":
        torch.set_num_threads(1)
    t_start = time.perf_counter()
    process = TTbar(decays="dilepton", leptons="all")
    observables = RecoObservables.for_process(process)
    detector = Detector("cms")

    # 1. pairs
    if args.cache and os.path.exists(args.cache):
        sims = torch.load(args.cache, weights_only=False)
    else:
        sims = {"train": {}, "data": {}}
        for i, mt in enumerate(TRAIN_MASSES):
            sims["train"][mt] = simulate_selected(process, detector, observables, mt,
                                                  args.train_per_mass, args.seed * 100 + i)
        for i, mt in enumerate(DATA_MASSES):
            sims["data"][mt] = simulate_selected(process, detector, observables, mt,
                                                 args.data_events, args.seed * 100 + 50 + i)
        if args.cache:
            torch.save(sims, args.cache)
    t_sim = time.perf_counter() - t_start
    print(f"pairs: {args.train_per_mass} per training mass, {args.data_events} per pseudo-data "
          f"mass ({t_sim:.0f} s)")

    # 2. unfolders
    train = {m: sims["train"][m] for m in TRAIN_MASSES}
    naive, pi, info = train_unfolders(process, observables, train, epochs=args.epochs,
                                      aggregate=args.aggregate)
    res_naive, res_pi = info["naive"], info["prior_independent"]
    t_naive, t_pi, summary = info["seconds_naive"], info["seconds_prior_independent"], pi.summary
    h0, x0 = sims["train"][172.5]
    print(f"trained: naive {t_naive:.0f} s (val loss {res_naive.best_val_loss:.3f}), "
          f"prior-independent {t_pi:.0f} s (val loss {res_pi.best_val_loss:.3f}); "
          f"summary {summary}")

    truth_train = {m: mean_top_mass(sims["train"][m][0]) for m in TRAIN_MASSES}
    templates = Templates(truth_train)
    stat = mbl_statistic(observables)
    stat_mc = stat(x0).numpy()

    try:
        import pyunfold  # noqa: F401
        ibu_error = None
    except ImportError as exc:
        ibu_error = f"pyunfold not importable: {exc}"
    try:
        import omnifold  # noqa: F401
        of_error = None
    except ImportError as exc:
        of_error = f"omnifold not importable ({exc}); it needs tensorflow>=2.15"

    rows = []
    for i, mt in enumerate(DATA_MASSES):
        if mt not in args.masses:
            continue
        h_d, x_d = sims["data"][mt]
        floor = fit_peak(top_masses(h_d).flatten(), FIT_WINDOW, gamma=0.5 * float(top_width(172.5)))
        row = {"mt_true": mt, "truth": {"mt": floor.location, "width": floor.error},
               "summary": {"mt": pi.condition(x_d)}}
        t0 = time.perf_counter()
        row["naive"], row["naive_binned"] = cinn_rows(
            lambda xr, g: naive.sample(xr, args.samples, generator=g), x_d, templates,
            args.n_boot, args.seed + 10 * i)
        row["prior_independent"], row["prior_independent_binned"] = cinn_rows(
            lambda xr, g: pi.sample(xr, args.samples, generator=g), x_d, templates,
            args.n_boot, args.seed + 10 * i + 1)
        row["cinn_seconds"] = time.perf_counter() - t0
        pi_row = row["prior_independent"]
        pi_row["width_calibration"] = calibration_width(
            summary, [sims["train"][m][1] for m in TRAIN_MASSES], x_d, 50, args.seed + i)
        pi_row["width_total"] = math.hypot(pi_row["width"], pi_row["width_calibration"])
        if ibu_error is None:
            row["ibu"] = ibu(stat_mc, mean_top_mass(h0), stat(x_d).numpy(), args.n_boot,
                             templates, args.seed + i)
        if of_error is None:
            t0 = time.perf_counter()
            gen_mc = top_masses(h0).numpy()
            row["omnifold"] = omnifold_fit(x0.numpy(), gen_mc, x_d.numpy(), templates,
                                           mean_top_mass(h0), args.seed + i,
                                           args.omnifold_boot, args.omnifold_epochs)
            row["omnifold"]["seconds"] = time.perf_counter() - t0
        for val in row.values():
            if isinstance(val, dict) and "mt" in val:
                val["bias"] = val["mt"] - mt
                w = val.get("width")
                val["pull"] = val["bias"] / w if w else None
        rows.append(row)
        print(f"m_t = {mt}: done ({row['cinn_seconds']:.0f} s cINN)")

    methods = ["truth", "summary", "naive", "prior_independent", "naive_binned",
               "prior_independent_binned", "ibu", "omnifold"]
    print("\nm_t fits [GeV]: fitted value ± 68 % width (bootstrap; truth: analytic), "
          "bias, pull = bias/width")
    heads = [f"m_t = {r['mt_true']}" for r in rows]
    print(f"{'method':<26}" + "".join(f"{h:>28}" for h in heads))
    for name in methods:
        cells = []
        for row in rows:
            v = row.get(name)
            if v is None:
                cells.append(f"{'—':>28}")
                continue
            w = v.get("width")
            txt = f"{v['mt']:.2f}" + (f"±{w:.2f}" if w else "")
            txt += f" ({v['bias']:+.2f}" + (f", {v['pull']:+.1f}σ)" if v.get("pull") is not None
                                             else ")")
            cells.append(f"{txt:>28}")
        print(f"{name:<26}" + "".join(cells))
    print("\nprior_independent widths: bootstrap over data ⊕ calibration (training samples "
          "resampled) = total; pull on the total")
    for r in rows:
        v = r["prior_independent"]
        v["pull_total"] = v["bias"] / v["width_total"]
        print(f"  m_t = {r['mt_true']}: {v['width']:.2f} ⊕ {v['width_calibration']:.2f} = "
              f"{v['width_total']:.2f} GeV, bias {v['bias']:+.2f}, pull {v['pull_total']:+.1f}σ")
    within = [abs(r["prior_independent"]["bias"]) <= r["prior_independent"]["width"]
              for r in rows if r["mt_true"] in TRAIN_MASSES]
    within_total = [abs(r["prior_independent"]["pull_total"]) <= 1
                    for r in rows if r["mt_true"] in TRAIN_MASSES]
    print(f"\nprior-independent within 1σ of the truth at the training masses: {within} "
          f"(bootstrap width), {within_total} (total width)")
    if ibu_error:
        print("IBU skipped:", ibu_error)
    if of_error:
        print("OmniFold skipped:", of_error)

    result = {
        "benchmark": "topmass_unfolding",
        "platform": platform.platform(), "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "sizes": {"train_per_mass": args.train_per_mass, "data_events": args.data_events,
                  "epochs": args.epochs, "samples_per_event": args.samples,
                  "n_boot": args.n_boot, "omnifold_boot": args.omnifold_boot,
                  "aggregate": args.aggregate},
        "train_masses": list(TRAIN_MASSES), "fit_window": list(FIT_WINDOW),
        "summary_calibration": summary.to_dict(),
        "seconds": {"simulation": t_sim, "train_naive": t_naive, "train_prior_independent": t_pi,
                    "total": time.perf_counter() - t_start},
        "skipped": {"ibu": ibu_error, "omnifold": of_error},
        "within_1sigma_at_training_masses": within,
        "within_1sigma_total_at_training_masses": within_total,
        "rows": rows,
    }
    print(json.dumps(result))
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
