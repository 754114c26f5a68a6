r"""The inverse half of ``invsim demo``: from reco events to a calibrated posterior.

Physics case: Drell–Yan ℓ⁻ℓ⁺ (e + μ) at 13 TeV in the window 1500 < m_ℓℓ < 2500 GeV
with the γ*/Z/Z′ interference, θ = (``mzp``, ``gzp``): the Z′ mass and the global scale
of its couplings (the width follows from them). The detector is the closed-form
Gaussian lepton smearing of :mod:`invsim.bruteforce`; the networks never see it in
closed form, only simulated (hard, reco) pairs.

Steps (each reported in ``summary.md`` and ``results.json``):

1. **Train** a transfer flow r(x_reco | x_hard), an acceptance classifier ε(x_hard)
   and a cINN unfolder q(x_hard | x_reco) on pairs simulated at the process defaults
   (mzp = 2000 GeV, gzp = 1); saved as a :class:`~invsim.mem.MEMModel` folder.
2. **Pseudo-data** at a truth not used in training (mzp = 2030 GeV, gzp = 1.1):
   ``experiments`` independent data sets, each with a Poisson number of events of mean
   σ_fid(θ_true) × luminosity. Experiment 0 is "the data".
3. **ML-MEM likelihood** of every event (importance sampling with the unfolder mixed
   with a reco-centred proposal, common random numbers over θ), with its per-event
   diagnostics (flagged events are counted and excluded from nothing silently: they
   are reported).
4. **Likelihood scan** of the data over (mzp, gzp) with the extended term, plotted.
5. **NUTS posterior** of the data (Pyro, several chains) as ArviZ InferenceData,
   saved as NetCDF, with trace and pair plots and ``az.summary`` (r̂, ESS).
6. **Calibration**: the posterior of every pseudo-experiment on a grid (exact
   quadrature of prior × likelihood, the same likelihood as NUTS) and the coverage of
   its 68 %/95 % central credible intervals, with a calibration plot.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from forward._validation import make_generator, resolve_device

__all__ = ["InversePreset", "run_inverse"]

TRUTH = {"mzp": 2030.0, "gzp": 1.1}
WINDOW = {"mll_min": 1500.0, "mll_max": 2500.0}


@dataclass(frozen=True)
class InversePreset:
    """Sizes of the inverse demo.

    Attributes:
        n_train_trials: weighted trial points for the training pairs.
        epochs: training epochs of each network.
        batch_size: events per optimiser step of the networks.
        luminosity: integrated luminosity in pb⁻¹ (sets the events per experiment).
        experiments: pseudo-experiments for the calibration (experiment 0 is the data).
        n_samples: importance samples per event of the ML-MEM.
        n_fiducial: fixed-sample size of σ_fid(θ).
        grid: points per parameter of the calibration grid.
        chains, warmup, draws: NUTS settings.
    """

    n_train_trials: int = 200_000
    epochs: int = 4
    batch_size: int = 1024
    luminosity: float = 2000.0
    experiments: int = 10
    n_samples: int = 50
    n_fiducial: int = 5_000
    grid: int = 17
    chains: int = 2
    warmup: int = 150
    draws: int = 600

    def __post_init__(self) -> None:
        for name in ("n_train_trials", "epochs", "batch_size", "experiments", "n_samples",
                     "n_fiducial", "grid", "chains", "warmup", "draws"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: expected a positive integer, got {v!r}")
        if not (math.isfinite(self.luminosity) and self.luminosity > 0):
            raise ValueError(f"luminosity: expected a positive number in pb^-1, "
                             f"got {self.luminosity!r}")


QUICK = InversePreset()
# GPU preset, sized from one H200 run of an earlier version (batch 1024, 500 samples per
# event): transfer 85 s and unfolder 109 s for 20 epochs (about 18 ms per step,
# launch-bound), hence batch 4096; the 100-experiment grid evaluation had not finished
# when that run was stopped after 7 minutes, hence 250 samples. Not yet timed itself.
DEFAULT = InversePreset(n_train_trials=2_000_000, epochs=20, batch_size=4096,
                        luminosity=6000.0, experiments=100, n_samples=250,
                        n_fiducial=400_000, grid=25, chains=4, warmup=500, draws=750)


def _refine_grid(log_post: torch.Tensor, axes: list[torch.Tensor], factor: int = 8
                 ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Bicubic-spline interpolation of tabulated log posteriors onto a finer grid.

    The likelihood is smooth in θ (common random numbers), so the cubic spline of the
    log posterior through the coarse nodes is accurate where a piecewise-constant
    posterior on cells of about one standard deviation would widen the intervals.

    Args:
        log_post: log posteriors, shape (experiments, g1, g2), finite.
        axes: the two grid axes, shapes (g1,) and (g2,).
        factor: refinement factor per axis.

    Returns:
        (fine log posteriors of shape (experiments, f1, f2), the two fine axes).
    """
    from scipy.interpolate import RectBivariateSpline

    fine = [torch.linspace(float(a[0]), float(a[-1]), factor * (len(a) - 1) + 1,
                           dtype=torch.float64) for a in axes]
    out = [torch.as_tensor(RectBivariateSpline(axes[0].numpy(), axes[1].numpy(),
                                               lp.numpy())(fine[0].numpy(), fine[1].numpy()))
           for lp in log_post.detach()]
    return torch.stack(out), fine


def _grid_posterior_draws(log_post: torch.Tensor, axes: list[torch.Tensor], n: int,
                          generator: torch.Generator) -> torch.Tensor:
    """Draws (n, 2) from a posterior tabulated on a 2D grid (uniform jitter in a cell)."""
    p = torch.softmax(log_post.flatten(), 0)
    idx = torch.multinomial(p, n, replacement=True, generator=generator)
    i, j = idx // log_post.shape[1], idx % log_post.shape[1]
    steps = [float(a[1] - a[0]) for a in axes]
    jitter = torch.rand(n, 2, generator=generator, dtype=torch.float64) - 0.5
    return torch.stack([axes[0][i] + jitter[:, 0] * steps[0],
                        axes[1][j] + jitter[:, 1] * steps[1]], dim=-1)


def run_inverse(out: Path, preset: InversePreset, *, seed: int = 0, echo=print,
                progress: bool = True, device="cpu") -> dict:
    """Run steps 1–6 of the module docstring, writing files into ``out``.

    Args:
        out: the report folder (exists, checked by the caller).
        preset: sizes (:data:`QUICK` or :data:`DEFAULT`).
        seed: seed of every stochastic step.
        echo: message hook.
        progress: show progress bars.
        device: torch device of the simulation, the networks, the likelihood and NUTS.

    Returns:
        The numbers for ``results.json``.
    """
    import arviz as az
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pyro.distributions as dist

    from forward.detector import GaussianLeptonDetector
    from forward.processes import get_process
    from invsim.calibration import coverage, plot_calibration
    from invsim.infer import InferenceProblem, build_priors, sample_nuts, save_inference
    from invsim.infer.likelihood import extended_poisson_term
    from invsim.mem import MEMLikelihood, StratifiedMixtureProposal
    from invsim.mem.recipe import build_dilepton_model
    from invsim.mem.reco_proposal import RecoGaussianProposal
    from invsim.pairs import simulate
    from invsim.scan import scan

    device = resolve_device(device)
    # hard events per matrix-element/network call: on a GPU, 200k-event chunks leave
    # it launch-bound (the default preset's grid evaluation stalled on them on an H200)
    chunk = 2_000_000 if device.type == "cuda" else 200_000
    results: dict = {"truth": TRUTH, "window_GeV": WINDOW, "preset": preset.__dict__,
                     "device": str(device)}
    process = get_process("drell-yan", **WINDOW)
    detector = GaussianLeptonDetector(0.03, 0.02, 0.02, 100.0, 2.5)
    results["detector"] = detector.__dict__

    echo("  training transfer, acceptance and unfolding networks")
    t0 = time.perf_counter()
    model, info = build_dilepton_model(process, detector, n_trials=preset.n_train_trials,
                                       epochs=preset.epochs, seed=seed, progress=progress,
                                       batch_size=preset.batch_size, device=device)
    model.save(out / "mem_model", overwrite=True)
    results["training"] = info
    model.proposal = StratifiedMixtureProposal(
        [model.proposal, RecoGaussianProposal(detector, process.sqrt_s)], [0.5, 0.5])

    echo("  pseudo-data at the hidden truth")
    names = ("mzp", "gzp")
    truth_t = {k: torch.tensor(v, dtype=torch.float64) for k, v in TRUTH.items()}
    trials = 40_000 * preset.experiments
    sim = simulate(process, detector, trials, TRUTH, seed=seed + 3, device=device)
    pool = sim.x_reco[sim.passed]
    # σ_fid(θ_true) from the same fixed-sample estimate the likelihood uses
    fid = MEMLikelihood(model, pool[:2], n_samples=25, parameter_names=names,
                        n_fiducial=preset.n_fiducial, seed=seed + 4, on_flagged="ignore",
                        chunk_size=chunk)
    mu = float(torch.exp(fid.log_sigma_fid(truth_t))) * preset.luminosity
    gen = make_generator(seed + 2)
    counts = torch.poisson(torch.full((preset.experiments,), mu, dtype=torch.float64),
                           generator=gen).long()
    need = int(counts.sum())
    if pool.shape[0] < need:
        raise RuntimeError(f"pseudo-data: {pool.shape[0]} accepted events from {trials} "
                           f"trials, {need} needed; raise the trials")
    pool = pool[:need]
    bounds = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])
    results["pseudo_data"] = {"mean_events": mu, "events": counts.tolist(),
                              "luminosity_pb": preset.luminosity}

    echo(f"  ML-MEM likelihood of {need} events ({preset.n_samples} samples each)")
    t0 = time.perf_counter()
    lik = MEMLikelihood(model, pool, n_samples=preset.n_samples, parameter_names=names,
                        n_fiducial=preset.n_fiducial, seed=seed + 4, on_flagged="ignore",
                        progress=progress, chunk_size=chunk)
    half = {"mzp": 80.0, "gzp": 0.5}
    axes = [torch.linspace(TRUTH[k] - half[k], TRUTH[k] + half[k], preset.grid,
                           dtype=torch.float64) for k in names]
    mg, gg = torch.meshgrid(*axes, indexing="ij")
    flat = {"mzp": mg.flatten(), "gzp": gg.flatten()}
    with torch.no_grad():
        lp, log_sig = lik.log_prob_and_log_sigma_fid(flat)  # (G, n_pool), (G,)
        at_truth = lik.evaluate(truth_t)
    lp, log_sig = lp.cpu(), log_sig.cpu()
    results["mem"] = {
        "seconds": time.perf_counter() - t0, "events": need,
        "flagged_at_truth": int(at_truth.flagged.sum()),
        "median_ess_at_truth": float(at_truth.ess.median()),
        "median_error_at_truth": float(at_truth.error.median()),
        "median_pareto_k_at_truth": float(at_truth.pareto_k.median()),
    }

    echo("  likelihood scan of the data")
    data = pool[bounds[0]:bounds[1]]
    lik0 = MEMLikelihood(model, data, n_samples=preset.n_samples, parameter_names=names,
                         n_fiducial=preset.n_fiducial, seed=seed + 5, on_flagged="ignore",
                         chunk_size=chunk)
    sc = scan(lik0, {k: axes[i] for i, k in enumerate(names)}, luminosity=preset.luminosity)
    sc.plot(out / "scan.png", overwrite=True)
    data_log_l = torch.as_tensor(sc.dataset["log_l"].transpose(*names).values)
    results["scan"] = sc.summary()

    echo(f"  NUTS posterior of the data ({preset.chains} chains)")
    t0 = time.perf_counter()

    def bound(v: float) -> torch.Tensor:
        return torch.tensor(v, dtype=torch.float64, device=device)

    priors = build_priors(process.parameters, names, {
        "mzp": dist.Uniform(bound(1900.0), bound(2200.0)),
        "gzp": dist.Uniform(bound(0.3), bound(2.5))}, device=device)
    problem = InferenceProblem(lik0, priors, luminosity=preset.luminosity,
                               process="drell-yan")
    idata = sample_nuts(problem, num_samples=preset.draws, warmup=preset.warmup,
                        chains=preset.chains, seed=seed + 6, progress=progress)
    save_inference(idata, out / "posterior.nc", overwrite=True)
    summary = az.summary(idata, var_names=list(names), hdi_prob=0.68)
    results["posterior"] = {
        "seconds": time.perf_counter() - t0,
        "summary": {k: {c: float(summary.loc[k, c]) for c in summary.columns}
                    for k in names},
    }
    az.plot_trace(idata, var_names=list(names))
    plt.gcf().savefig(out / "trace.png", dpi=100)
    plt.close("all")
    az.plot_pair(idata, var_names=list(names), kind="kde", marginals=True,
                 reference_values=TRUTH)
    plt.gcf().savefig(out / "posterior.png", dpi=100)
    plt.close("all")

    echo(f"  calibration over {preset.experiments} pseudo-experiments")
    lo_hi = [(float(priors[k].low), float(priors[k].high)) for k in names]
    inside = torch.ones_like(log_sig, dtype=torch.bool)
    for (lo, hi), k in zip(lo_hi, names, strict=True):
        inside &= (flat[k] >= lo) & (flat[k] <= hi)

    # log posterior of every pseudo-experiment on the grid (uniform prior x extended
    # likelihood), computed once for the coverage draws and the grid-edge check
    log_post = torch.stack([
        torch.where(inside, lp[:, bounds[k]:bounds[k + 1]].sum(-1)
                    + extended_poisson_term(log_sig, int(counts[k]), preset.luminosity),
                    torch.tensor(-math.inf, dtype=lp.dtype))
        for k in range(preset.experiments)]).view(-1, preset.grid, preset.grid)

    if not bool(torch.isfinite(log_post).all()):
        raise RuntimeError("calibration: the grid must lie inside the prior's support")
    fine_post, fine_axes = _refine_grid(log_post, axes)

    def infer(k: int, s: int) -> dict[str, torch.Tensor]:
        g = make_generator(s)
        draws = _grid_posterior_draws(fine_post[k], fine_axes, 4000, g)
        return {name: draws[:, i] for i, name in enumerate(names)}

    experiment = iter(range(preset.experiments))
    cov = coverage(lambda _theta, _gen: next(experiment), infer, TRUTH,
                   n_experiments=preset.experiments, seed=seed + 7)
    plot_calibration(out / "calibration.png", coverage_result=cov, overwrite=True)
    results["calibration"] = {
        "experiments": cov.n_experiments, "levels": cov.levels.tolist(),
        "covered": {k: cov.counts[k].tolist() for k in names},
        "fraction": {k: cov.fraction(k).tolist() for k in names},
        "error": {k: cov.error(k).tolist() for k in names},
        "grid_edge_posterior_mass": _edge_mass(log_post),
        # the data's posterior by quadrature of the scan (the likelihood object NUTS
        # sampled, same importance samples): NUTS must agree with it
        "data_grid_moments": _grid_moments(*_refine_grid(data_log_l[None], axes), names),
    }
    return results


def _grid_moments(log_post: torch.Tensor, axes: list[torch.Tensor], names) -> dict:
    """Posterior mean and sd per parameter from a log posterior tabulated on a 2D grid.

    Args:
        log_post: unnormalised log posterior, shape (g1, g2) or (1, g1, g2).
        axes: the grid axes, shapes (g1,) and (g2,).
        names: the two parameter names.
    """
    p = torch.softmax(log_post.flatten(), 0).view(len(axes[0]), len(axes[1]))
    out = {}
    for i, (name, ax) in enumerate(zip(names, axes, strict=True)):
        marginal = p.sum(1 - i)
        mean = (marginal * ax).sum()
        out[name] = {"mean": float(mean),
                     "sd": float(((marginal * (ax - mean) ** 2).sum()).sqrt())}
    return out


def _edge_mass(log_post: torch.Tensor) -> float:
    """Largest posterior mass on the border of the grid over experiments (should be ≈ 0).

    Args:
        log_post: unnormalised log posteriors, shape (experiments, g, g).
    """
    p = torch.softmax(log_post.flatten(1), -1).view_as(log_post)
    border = p.sum((1, 2)) - p[:, 1:-1, 1:-1].sum((1, 2))
    return float(border.max())


def inverse_markdown(res: dict) -> list[str]:
    """Markdown lines of the inverse half for ``summary.md``."""
    t, tr, mem = res["truth"], res["training"], res["mem"]
    lines = ["## Inverse simulation: Z′ mass and coupling from reco events", "",
             f"Drell–Yan ℓℓ, {res['window_GeV']['mll_min']:g} < m_ℓℓ < "
             f"{res['window_GeV']['mll_max']:g} GeV; Gaussian lepton smearing "
             f"(σ_pT/pT = {res['detector']['sigma_pt']:g}, σ_η = σ_φ = "
             f"{res['detector']['sigma_eta']:g}); networks trained at mzp = 2000 GeV, "
             f"gzp = 1; hidden truth mzp = {t['mzp']:g} GeV, gzp = {t['gzp']:g}; "
             f"luminosity {res['pseudo_data']['luminosity_pb']:g} pb⁻¹ "
             f"(mean {res['pseudo_data']['mean_events']:.1f} events per experiment).", "",
             f"- training: {tr.get('train_accepted', '?')} accepted pairs, "
             f"{tr.get('train_seconds', float('nan')):.0f} s",
             f"- ML-MEM: {mem['events']} events in {mem['seconds']:.0f} s; at the truth "
             f"median ESS {mem['median_ess_at_truth']:.0f}, median Pareto k̂ "
             f"{mem['median_pareto_k_at_truth']:.2f}, median MC error of log p "
             f"{mem['median_error_at_truth']:.3f}, flagged events "
             f"{mem['flagged_at_truth']} of {mem['events']} (error of log p > 0.1, ESS < 20 "
             f"or k̂ > 0.7 with {res['preset']['n_samples']} samples per event; the same "
             "samples serve every θ (common random numbers); the calibration below is the "
             "end-to-end check)", "",
             "### Posterior of the data (NUTS)", "",
             "| parameter | truth | mean | sd | 68 % HDI | r̂ | bulk ESS |",
             "|---|---|---|---|---|---|---|"]
    for k, row in res["posterior"]["summary"].items():
        lo = row.get("hdi_16%", float("nan"))
        hi = row.get("hdi_84%", float("nan"))
        lines.append(f"| {k} | {t[k]:g} | {row['mean']:.4g} | {row['sd']:.3g} | "
                     f"[{lo:.4g}, {hi:.4g}] | {row['r_hat']:.3f} | {row['ess_bulk']:.0f} |")
    cal = res["calibration"]
    grid = cal.get("data_grid_moments")
    if grid:
        lines += ["", "Cross-check by quadrature on the (spline-refined) grid: " + ", ".join(
            f"{k} mean {v['mean']:.4g}, sd {v['sd']:.3g}" for k, v in grid.items()) + "."]
    lines += ["", f"### Calibration over {cal['experiments']} pseudo-experiments", "",
              "| parameter | " + " | ".join(f"{int(round(100 * q))} % coverage"
                                          for q in cal["levels"]) + " |",
              "|---|" + "---|" * len(cal["levels"])]
    for k in cal["covered"]:
        cells = [f"{c}/{cal['experiments']} ({100 * f:.0f} ± {100 * e:.0f} %)"
                 for c, f, e in zip(cal["covered"][k], cal["fraction"][k], cal["error"][k],
                                    strict=True)]
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    lines += ["", "![scan](scan.png) ![posterior](posterior.png)", "",
              "![trace](trace.png) ![calibration](calibration.png)", "",
              "Files: `posterior.nc` (ArviZ InferenceData), `mem_model/` (trained networks).",
              ""]
    return lines
