r"""Interval widths on one parameter: ML-MEM vs sbi NPE vs the parton-level likelihood.

Set-up (as ``benchmarks/mem.py`` and the demo): ``drell-yan`` ℓ⁻ℓ⁺ (e + μ), 13 TeV,
1500 < m_ℓℓ < 2500 GeV, γ*/Z/Z′ with interference; θ = ``mzp`` only (all other
parameters at their defaults), truth mzp = 2030 GeV, prior U(1950, 2110) GeV for every
method. Detector: :class:`forward.detector.GaussianLeptonDetector` (σ_pT/pT = 3 %,
σ_η = σ_φ = 0.02, pT > 100 GeV, |η| < 2.5). ``--datasets`` independent data sets of
``--events`` accepted reco events each (unweighted events of
:func:`invsim.pairs.simulate` at the truth); every method sees the same sets, with
the event count fixed (shape information only, no extended term).

1. **ML-MEM**: the trained :class:`~invsim.mem.MEMModel` of ``benchmarks/mem.py``
   (loaded from ``--model-dir``, else trained by
   :func:`~invsim.mem.recipe.build_dilepton_model` at mzp = 2000 GeV), proposal = the
   unfolder mixed 50/50 with :class:`~invsim.mem.reco_proposal.RecoGaussianProposal`; the
   per-event log p(x_reco | θ) summed over a data set on a θ grid.
2. **sbi NPE** (:func:`invsim.baselines.train_npe`, DeepSets embedding): the simulator
   draws ``--events`` accepted reco events at θ by importance resampling of ONE pool of
   hard events drawn uniformly on the process's phase-space map (channel 0, built at the
   defaults): multinomial draws with probabilities ∝ dσ(θ)/dμ / q at the pool points,
   then the detector. The pool's effective sample size (Σw)²/Σw² is tabulated over the
   prior range and reported (it must stay ≫ ``--events``).
3. **Parton level**: :class:`invsim.mem.parton.PartonLikelihood`, the exact
   log L(θ) = Σ_i [log ε(y_i) + log dσ(θ)/dμ(y_i)] − N log σ_fid(θ) at the true hard
   events y_i of the same data set, with σ_fid(θ) = ∫ dσ(θ) ε by fixed-sample
   reweighting (its fiducial sample is the NPE pool's uniform points: same seed and
   size) and the detector's closed-form acceptance ε (the data sets are the accepted
   events, so this is the exact likelihood of their hard events; ε itself does not
   depend on θ). No smearing: the floor on the width. The variant normalised by the
   total σ(θ) (no ε at all) is reported in the JSON as well.

For 1 and 3 the posterior is the likelihood times the uniform prior on a grid
(``--grid`` points, log L interpolated by a cubic spline onto a 0.1 GeV grid); for
NPE, 4000 draws. Per data set: the central 68 % interval, its width, the bias
(posterior mean − truth) and whether it covers the truth.

    OMP_NUM_THREADS=1 python3 benchmarks/inference.py           # the reported run
    OMP_NUM_THREADS=1 python3 benchmarks/inference.py --tiny    # seconds, for the test

Writes ``benchmarks/results/inference.json`` (``--out``) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import torch

__all__ = ["PRIOR", "TRUTH", "grid_interval", "main", "npe_features", "ResamplingPool"]

TRUTH = 2030.0
PRIOR = (1950.0, 2110.0)
LEVEL = 0.68


def npe_features(x_reco: torch.Tensor) -> torch.Tensor:
    """Per-event NPE inputs from reco lepton observables.

    Args:
        x_reco: shape (n, 6) as (pT [GeV], η, φ [rad]) of ℓ⁻ then ℓ⁺.

    Returns:
        Shape (n, 6), float32: log(pT₁/TeV), η₁, log(pT₂/TeV), η₂, cos Δφ and
        5 log(m_ℓℓ / 2 TeV) (the reco invariant mass, of order one over the window). The
        overall azimuth is dropped (the process is symmetric under it).
    """
    if x_reco.ndim != 2 or x_reco.shape[1] != 6:
        raise ValueError(f"x_reco: expected shape (n, 6), got {tuple(x_reco.shape)}")
    pt1, eta1, phi1, pt2, eta2, phi2 = x_reco.unbind(-1)
    cdphi = torch.cos(phi1 - phi2)
    m2 = 2 * pt1 * pt2 * (torch.cosh(eta1 - eta2) - cdphi)
    return torch.stack([torch.log(pt1 / 1000), eta1, torch.log(pt2 / 1000), eta2, cdphi,
                        2.5 * torch.log(m2 / 4e6)], -1).float()


class ResamplingPool:
    """A fixed pool of hard events, reweighted to any mzp (common random numbers).

    Args:
        process: the Drell–Yan process.
        n: pool size (uniform points on the channel-0 map of the default parameters).
        seed: seeds the pool.

    Attributes:
        events: the pool's hard events with dσ/dμ > 0 (cuts are θ-independent).
        x_hard: their lepton observables, shape (m, 6).
        log_q: log density of the map w.r.t. the hard measure μ, shape (m,).
        n_total: the number of uniform points drawn (including those failing cuts).
    """

    def __init__(self, process, n: int, *, seed: int) -> None:
        from forward.integrand import HadronicIntegrand
        from invsim.mem.likelihood import DifferentialCache
        from invsim.mem.model import lepton_pt_eta_phi

        self.process = process
        integrand = HadronicIntegrand(process)
        gen = torch.Generator().manual_seed(seed)
        r = torch.rand(n, integrand.dim, generator=gen, dtype=torch.float64)
        events, log_jac = integrand.map.forward(r)
        with torch.no_grad():
            keep = integrand.differential(events) > 0
        self.n_total = n
        self.events = events[keep]
        self.log_q = -log_jac[keep]
        self.x_hard = lepton_pt_eta_phi(self.events)
        self._cache = DifferentialCache(integrand, self.events)

    def log_weights(self, mzp: float) -> torch.Tensor:
        """log[dσ(mzp)/dμ / q] at the pool points, shape (m,), log pb."""
        with torch.no_grad():
            return self._cache(self.process.params({"mzp": float(mzp)})) - self.log_q

    def ess(self, mzp: float) -> float:
        """Effective sample size (Σw)²/Σw² of the pool at mzp."""
        lw = self.log_weights(mzp)
        return float(torch.exp(2 * torch.logsumexp(lw, 0) - torch.logsumexp(2 * lw, 0)))

    def log_sigma(self, mzp: float, log_eps: torch.Tensor | None = None) -> float:
        """log of σ (or σ_fid = ∫ dσ ε with ``log_eps`` (m,)) in pb by the pool's mean."""
        lw = self.log_weights(mzp)
        if log_eps is not None:
            lw = lw + log_eps
        return float(torch.logsumexp(lw, 0) - math.log(self.n_total))

    def simulator(self, detector, n_events: int):
        """``simulate(theta, generator) -> features (n_events, 6)`` for :func:`train_npe`."""

        def simulate(theta, generator):
            p = torch.softmax(self.log_weights(float(theta["mzp"])), 0)
            got = []
            have = 0
            while have < n_events:
                idx = torch.multinomial(p, 2 * n_events, replacement=True,
                                        generator=generator)
                x_reco, passed = detector.smear(self.x_hard[idx], generator=generator)
                got.append(x_reco[passed])
                have += int(passed.sum())
            return npe_features(torch.cat(got)[:n_events])

        return simulate


def grid_interval(grid: torch.Tensor, log_like: torch.Tensor, level: float = LEVEL) -> dict:
    """Posterior summary of a log likelihood on a θ grid with a uniform prior.

    Args:
        grid: θ values, shape (g,), increasing, in GeV.
        log_like: log L at the grid, shape (g,).
        level: credibility of the central interval.

    Returns:
        dict with ``mean``, ``low``, ``high``, ``width`` (GeV) and ``edge_mass`` (the
        posterior mass in the outermost 1 % of the range at each end; should be ≈ 0).
    """
    from scipy.interpolate import CubicSpline

    spline = CubicSpline(grid.numpy(), (log_like - log_like.max()).numpy())
    fine = torch.arange(float(grid[0]), float(grid[-1]) + 1e-9, 0.1, dtype=torch.float64)
    ll = torch.as_tensor(spline(fine.numpy()))
    p = torch.softmax(ll, 0)
    cdf = torch.cumsum(p, 0) - 0.5 * p  # midpoint rule
    q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)
    i = torch.searchsorted(cdf, q).clamp(1, len(fine) - 1)
    frac = (q - cdf[i - 1]) / (cdf[i] - cdf[i - 1])
    lo, hi = (fine[i - 1] + frac * (fine[i] - fine[i - 1])).tolist()
    k = max(1, len(fine) // 100)
    return {"mean": float((p * fine).sum()), "low": lo, "high": hi, "width": hi - lo,
            "edge_mass": float(p[:k].sum() + p[-k:].sum())}


def _summarise(rows: list[dict]) -> dict:
    w = torch.tensor([r["width"] for r in rows], dtype=torch.float64)
    b = torch.tensor([r["mean"] - TRUTH for r in rows], dtype=torch.float64)
    cov = sum(int(r["low"] <= TRUTH <= r["high"]) for r in rows)
    n = len(rows)
    return {"mean_width": float(w.mean()),
            "width_error": float(w.std() / math.sqrt(n)) if n > 1 else float("nan"),
            "mean_abs_bias": float(b.abs().mean()), "mean_bias": float(b.mean()),
            "bias_spread": float(b.std()) if n > 1 else float("nan"),
            "covered": cov, "datasets": n, "per_dataset": rows}


def _parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tiny", action="store_true", help="seconds-long smoke run (for tests)")
    ap.add_argument("--datasets", type=int, default=20)
    ap.add_argument("--events", type=int, default=100, help="accepted reco events per set")
    ap.add_argument("--model-dir", default="benchmarks/results/mem_model")
    ap.add_argument("--train-trials", type=int, default=1_200_000,
                    help="trials to train the MEM model if --model-dir has none")
    ap.add_argument("--train-epochs", type=int, default=15)
    ap.add_argument("--n-samples", type=int, default=400, help="ML-MEM IS samples per event")
    ap.add_argument("--n-fiducial", type=int, default=200_000, help="ML-MEM σ_fid sample")
    ap.add_argument("--pool", type=int, default=60_000, help="hard-event pool of the NPE "
                    "simulator and of σ(θ) at parton level")
    ap.add_argument("--simulations", type=int, default=3000, help="NPE training sets")
    ap.add_argument("--npe-epochs", type=int, default=100)
    ap.add_argument("--grid", type=int, default=81, help="θ grid points over the prior")
    ap.add_argument("--out", default="benchmarks/results/inference.json")
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args(argv)
    if args.tiny:
        args.datasets, args.events, args.n_samples, args.n_fiducial = 2, 20, 25, 2000
        args.pool, args.simulations, args.npe_epochs, args.grid = 4000, 40, 2, 17
        args.train_trials, args.train_epochs, args.model_dir = 6000, 1, ""
    for name in ("datasets", "events", "n_samples", "n_fiducial", "pool", "simulations",
                 "npe_epochs", "grid", "train_trials", "train_epochs"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')}: expected a positive integer, got "
                             f"{getattr(args, name)}")
    return args


def main(argv=None) -> dict:
    """Run the comparison; returns (and writes to ``--out``) the results dict."""
    import pyro.distributions as dist

    from forward.detector import GaussianLeptonDetector
    from forward.processes import get_process
    from invsim.baselines import train_npe
    from invsim.mem import MEMLikelihood, MEMModel, StratifiedMixtureProposal
    from invsim.mem.model import lepton_pt_eta_phi
    from invsim.mem.parton import PartonLikelihood
    from invsim.mem.recipe import build_dilepton_model
    from invsim.mem.reco_proposal import RecoGaussianProposal
    from invsim.pairs import simulate

    args = _parse(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    t_start = time.perf_counter()
    process = get_process("drell-yan", mll_min=1500.0, mll_max=2500.0)
    detector = GaussianLeptonDetector(0.03, 0.02, 0.02, 100.0, 2.5)
    out: dict = {"args": vars(args), "truth": {"mzp": TRUTH},
                 "prior": {"mzp": list(PRIOR)}, "level": LEVEL,
                 "detector": detector.__dict__, "threads": torch.get_num_threads(),
                 "seconds": {}}

    # the trained ML-MEM model
    t0 = time.perf_counter()
    if args.model_dir and os.path.exists(os.path.join(args.model_dir, "mem.json")):
        model = MEMModel.load(args.model_dir)
        out["model"] = {"loaded": args.model_dir}
    else:
        model, info = build_dilepton_model(process, detector, n_trials=args.train_trials,
                                           epochs=args.train_epochs, seed=args.seed)
        out["model"] = {"trained": info}
        if args.model_dir:
            model.save(args.model_dir, overwrite=True)
    model.proposal = StratifiedMixtureProposal(
        [model.proposal, RecoGaussianProposal(detector, process.sqrt_s)], [0.5, 0.5])
    out["seconds"]["model"] = time.perf_counter() - t0

    # pseudo-data: the first datasets × events accepted events at the truth
    need = args.datasets * args.events
    trials = 6 * need
    while True:
        sim = simulate(process, detector, trials, {"mzp": TRUTH}, seed=args.seed + 1)
        if int(sim.passed.sum()) >= need:
            break
        trials *= 2
    sel = torch.nonzero(sim.passed).squeeze(-1)[:need]
    x_reco, hard = sim.x_reco[sel], sim.hard[sel]
    sets = [slice(k * args.events, (k + 1) * args.events) for k in range(args.datasets)]
    grid = torch.linspace(*PRIOR, args.grid, dtype=torch.float64)
    out["grid"] = {"low": PRIOR[0], "high": PRIOR[1], "points": args.grid}

    # the pool: NPE simulator and σ(θ) at parton level
    t0 = time.perf_counter()
    pool = ResamplingPool(process, args.pool, seed=args.seed + 2)
    log_eps_pool = detector.log_acceptance(pool.x_hard)
    ess = torch.tensor([pool.ess(float(t)) for t in grid])
    out["pool"] = {"points": args.pool, "nonzero": len(pool.events),
                   "min_ess": float(ess.min()), "min_ess_at": float(grid[ess.argmin()]),
                   "max_ess": float(ess.max()), "ess_at_truth": pool.ess(TRUTH),
                   "sigma_pb_at_truth": math.exp(pool.log_sigma(TRUTH)),
                   "acceptance_at_truth": math.exp(pool.log_sigma(TRUTH, log_eps_pool)
                                                   - pool.log_sigma(TRUTH))}
    out["seconds"]["pool"] = time.perf_counter() - t0

    # 3. parton level: exact dσ/dμ at the true hard events, σ on the pool's points
    t0 = time.perf_counter()
    rows = {}
    for key, acc in (("fid", lambda ev: detector.log_acceptance(lepton_pt_eta_phi(ev))),
                     ("tot", None)):
        parton = PartonLikelihood(process, hard, parameter_names=["mzp"],
                                  n_fiducial=args.pool, seed=args.seed + 2,
                                  log_acceptance=acc)
        with torch.no_grad():
            lp = torch.cat([parton.log_prob({"mzp": grid[i:i + 16]})
                            for i in range(0, len(grid), 16)])  # (g, n)
        rows[key] = [grid_interval(grid, lp[:, s].sum(-1)) for s in sets]
    rows_fid, rows_tot = rows["fid"], rows["tot"]
    out["seconds"]["parton"] = time.perf_counter() - t0

    # 1. ML-MEM
    t0 = time.perf_counter()
    lik = MEMLikelihood(model, x_reco, n_samples=args.n_samples, parameter_names=["mzp"],
                        n_fiducial=args.n_fiducial, seed=args.seed + 3, on_flagged="ignore")
    with torch.no_grad():
        lp = torch.cat([lik.log_prob({"mzp": grid[i:i + 8]})
                        for i in range(0, len(grid), 8)])  # (g, n)
    i_truth = int((grid - TRUTH).abs().argmin())
    with torch.no_grad():
        at = lik.evaluate({"mzp": grid[i_truth]})
    rows_mem = [grid_interval(grid, lp[:, s].sum(-1)) for s in sets]
    out["mem_diagnostics"] = {"n_samples": args.n_samples,
                              "flagged_near_truth": int(at.flagged.sum()),
                              "median_ess_near_truth": float(at.ess.median()),
                              "median_error_near_truth": float(at.error.median())}
    out["seconds"]["mem"] = time.perf_counter() - t0

    # 2. sbi NPE on importance-resampled simulations
    t0 = time.perf_counter()
    priors = {"mzp": dist.Uniform(torch.tensor(PRIOR[0], dtype=torch.float64),
                                  torch.tensor(PRIOR[1], dtype=torch.float64))}
    npe = train_npe(priors, pool.simulator(detector, args.events),
                    n_simulations=args.simulations, seed=args.seed + 4,
                    max_epochs=args.npe_epochs)
    rows_npe = []
    for k, s in enumerate(sets):
        d = npe.sample(npe_features(x_reco[s]), 4000, seed=args.seed + 5 + k)["mzp"]
        lo, hi = torch.quantile(d, torch.tensor([(1 - LEVEL) / 2, (1 + LEVEL) / 2],
                                                dtype=torch.float64)).tolist()
        rows_npe.append({"mean": float(d.mean()), "low": lo, "high": hi, "width": hi - lo})
    out["seconds"]["npe"] = time.perf_counter() - t0

    out["methods"] = {"parton-level": _summarise(rows_fid), "ML-MEM": _summarise(rows_mem),
                      "sbi NPE": _summarise(rows_npe)}
    out["parton_level_total_sigma"] = _summarise(rows_tot)
    out["max_grid_edge_mass"] = max(r["edge_mass"] for r in rows_fid + rows_mem + rows_tot)
    out["seconds"]["total"] = time.perf_counter() - t_start
    out["markdown"] = markdown(out)
    print(out["markdown"], flush=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    return out


def markdown(out: dict) -> str:
    """The Markdown table of the results dict."""
    a, p = out["args"], out["pool"]
    lines = [f"θ = mzp, truth {TRUTH:g} GeV, prior U{PRIOR}; {a['datasets']} data sets of "
             f"{a['events']} accepted events; central {int(100 * LEVEL)} % intervals", "",
             "| method | mean 68 % width [GeV] | mean abs bias [GeV] | mean bias [GeV] | "
             "coverage |", "|---|---|---|---|---|"]
    for name, m in out["methods"].items():
        lines.append(f"| {name} | {m['mean_width']:.2f} ± {m['width_error']:.2f} | "
                     f"{m['mean_abs_bias']:.2f} | {m['mean_bias']:+.2f} | "
                     f"{m['covered']}/{m['datasets']} |")
    lines += ["", f"pool: {p['nonzero']} of {p['points']} points; ESS over the prior range "
              f"{p['min_ess']:.0f} (min, at {p['min_ess_at']:g} GeV) to {p['max_ess']:.0f}; "
              f"max posterior mass at the grid edges {out['max_grid_edge_mass']:.1e}"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
