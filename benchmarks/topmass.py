r"""Top-quark mass from t t̄ → dilepton events: every method on the same pseudo-experiments.

The issue's ``benchmarks/topmass.py`` (issue 15 item 5). Rows (``--methods``, a
comma-separated list; default the cheap ones, ``parton,template,npe``):

* ``parton``: the **parton-level floor**, the likelihood of the pool's true hard events
  (:class:`PartonFloor`; m_t only, JES does not act on partons);
* ``template``: the **classical template fit** of the reco m(bℓ) minimax statistic
  (:class:`TemplateMethod`, :mod:`invsim.template_fit`; flat-prior posterior);
* ``npe``: **sbi NPE on summary statistics** (:class:`NPEMethod`);
* ``mem``: **ML-MEM, JES fixed** and **JES free** (:class:`MEMMethod`, below);
* ``unfold-naive``, ``unfold-pi``: **naive / prior-independent cINN unfolding + peak
  fit** (:class:`UnfoldingMethods`, imported from ``topmass_unfolding.py``).

All rows run on one pool of selected events at m_t = 174.1 GeV (JES = 1) cut into
``--experiments`` disjoint pseudo-experiments of ``--events`` selected events (defaults
50 × 500: the cheap rows are cheap at that size; ML-MEM at ~4 ms per event per θ point
wants fewer, e.g. ``--experiments 50 --events 100``). Columns: mean full width of the
68 % central interval, mean bias of the posterior mean (± its error), coverage of the
68.27 % and 95.45 % intervals (with the binomial 2σ band in the JSON), and wall seconds
per pseudo-experiment (the method's run on the pool plus its one-off preparation:
training, templates, NPE simulations, shared out). Unfolding gives a point estimate ±
bootstrap width: its intervals are ±1 and ±2 widths. ``--bias-table`` adds the bias of
every selected method at m_t = 169.5, 172.5, 175.5 GeV (``--bias-experiments`` each),
each method trained as in the main table, its training masses listed: "trained only at
172.5" applies to the naive unfolding; the template fit and NPE need several masses
(templates at 165–180, NPE over its prior), ML-MEM is trained on m_t ∈ {165, 172.5,
180}; the floor needs no training.

ML-MEM rows:

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

    OMP_NUM_THREADS=1 python3 benchmarks/topmass.py --bias-table --out topmass.json
    OMP_NUM_THREADS=1 python3 benchmarks/topmass.py --methods mem,parton --experiments 10 \
        --events 100 --out topmass_mem.json
    OMP_NUM_THREADS=1 python3 benchmarks/topmass.py --methods unfold-naive,unfold-pi \
        --experiments 10 --events 1000
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
    if "edge" in rows[0]:  # grid posteriors: the largest density at the grid's ends
        out["max_edge"] = float(max(r["edge"] for r in rows))
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


# -- helpers shared by the methods ---------------------------------------------------
def _unfolding_module():
    """benchmarks/topmass_unfolding.py, imported from this script's folder (no copy)."""
    import importlib.util
    import sys

    name = "benchmark_topmass_unfolding"
    if name not in sys.modules:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "topmass_unfolding.py")
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


def _chunk_trials(n_selected: int) -> int:
    # ≈ 0.6 % of the trials give a selected event (3.6 % unweighting × 17 % selection)
    return int(min(600_000, max(20_000, 220 * n_selected)))


def simulate_pool(setup: dict, mt: float, n: int, seed: int):
    """n selected (hard, x_reco) pairs at m_t (``topmass_unfolding.simulate_selected``)."""
    return _unfolding_module().simulate_selected(
        setup["process"], setup["detector"], setup["obs"], mt, n, seed,
        chunk_trials=_chunk_trials(n))


def _gaussian_row(mean: float, width: float) -> dict:
    """A point estimate ± 68 % width as intervals ±1 and ±2 widths (68.27 %, 95.45 %)."""
    return {"mean": float(mean), "std": float(width), "ci68": [mean - width, mean + width],
            "ci95": [mean - 2 * width, mean + 2 * width]}


def _draws_row(draws: np.ndarray) -> dict:
    q = np.quantile(draws, [0.5 - 0.6827 / 2, 0.5 + 0.6827 / 2, 0.5 - 0.9545 / 2,
                            0.5 + 0.9545 / 2])
    return {"mean": float(draws.mean()), "std": float(draws.std(ddof=1)),
            "ci68": [float(q[0]), float(q[1])], "ci95": [float(q[2]), float(q[3])]}


def posterior_1d(x: np.ndarray, loglik: np.ndarray) -> dict:
    """Flat-prior posterior summaries from log L on a fine grid (no spline).

    Args:
        x: grid (g,), increasing, fine enough for the posterior (trapezoid rule).
        loglik: log L (g,); -inf where L = 0 (e.g. beyond a kinematic threshold).

    Returns:
        dict: mean, std, 68 %/95 % central intervals, and ``edge``: the density at the
        grid's ends over its maximum (the grid must hold the posterior: ≪ 1).
    """
    ll = np.where(np.isfinite(loglik), loglik, -np.inf)
    if not np.isfinite(ll).any():
        raise ValueError("loglik: no finite value on the grid")
    p = np.exp(ll - ll.max())
    p /= np.trapezoid(p, x)
    mean = float(np.trapezoid(x * p, x))
    std = math.sqrt(float(np.trapezoid((x - mean) ** 2 * p, x)))
    lo68, hi68 = _central(x, p, 0.6827)
    lo95, hi95 = _central(x, p, 0.9545)
    return {"mean": mean, "std": std, "ci68": [lo68, hi68], "ci95": [lo95, hi95],
            "edge": float(max(p[0], p[-1]) / p.max())}


def _experiments(n_exp: int, n_events: int):
    return [slice(e * n_events, (e + 1) * n_events) for e in range(n_exp)]


# -- the methods ----------------------------------------------------------------------
class Method:
    """A row of the table: ``prepare()`` once (training, templates), then ``run`` on the
    pseudo-experiments of a pool; ``rows`` -> per-experiment posterior summaries."""

    names: tuple[str, ...] = ()
    trained_at = ""

    def __init__(self, setup: dict, args) -> None:
        self.setup, self.args = setup, args
        self.prepare_s = None
        self.info: dict = {}

    def prepare(self) -> None:
        if self.prepare_s is None:
            t0 = time.perf_counter()
            self._prepare()
            self.prepare_s = time.perf_counter() - t0

    def _prepare(self) -> None:
        pass

    def run(self, hard, x, truth: float) -> dict[str, list[dict]]:
        raise NotImplementedError


class PartonFloor(Method):
    """p(hard | m_t) of the pool's true hard events (:class:`invsim.mem.PartonLikelihood`).

    Selected events: σ_fid(m_t) includes the selection, estimated on the fiducial sample
    with ``--parton-draws`` detector draws per event (an unbiased ε̂ = passes / draws; the
    observed events' own ε is θ-independent and cancels, set to 1). The process's
    Breit–Wigner windows are widened from ±15 to ±20 widths in the likelihood (the data's
    ±15 windows would otherwise cut θ, not the line shape); its m_t default (the
    fiducial sample's phase-space point) is set to the pool's truth. Fine grid: truth ±
    ``--parton-halfwidth`` GeV, 101 points, flat prior (``edge`` in the JSON checks that
    it holds the posterior).
    """

    names = ("parton-level floor",)
    trained_at = "none (true hard events)"

    def run(self, hard, x, truth):
        import dataclasses

        from forward.processes import get_process
        from invsim.mem import PartonLikelihood

        a, s = self.args, self.setup
        proc = get_process("ttbar", decays="dilepton", leptons="all", scale=172.5,
                           bw_cut=20.0)
        proc.parameters = {**proc.parameters,
                           "mt": dataclasses.replace(proc.parameters["mt"], default=truth)}
        gen = torch.Generator().manual_seed(a.seed + 31)
        observed = hard.momenta

        def log_acceptance(ev):
            if len(ev) == len(observed) and torch.equal(ev.momenta, observed.to(ev.momenta)):
                return torch.zeros(len(ev), dtype=torch.float64)
            k = torch.zeros(len(ev), dtype=torch.float64)
            for _ in range(a.parton_draws):
                pids = proc.sample_final_state(len(ev), generator=gen)
                reco = s["detector"].reconstruct(ev, pids, generator=gen)
                k += s["obs"].extract(reco).selected.double()
            return torch.log(k / a.parton_draws)

        lik = PartonLikelihood(proc, hard, parameter_names=["mt"], n_fiducial=a.parton_fiducial,
                               seed=a.seed + 32, log_acceptance=log_acceptance)
        grid = truth + np.linspace(-a.parton_halfwidth, a.parton_halfwidth, 101)
        with torch.no_grad():
            lp = np.stack([lik.log_prob({"mt": torch.tensor(m, dtype=torch.float64)}).numpy()
                           for m in grid])
            err = [float(lik.log_sigma_fid_error({"mt": torch.tensor(m, dtype=torch.float64)}))
                   for m in (grid[0], truth, grid[-1])]
        self.info[f"mt={truth}"] = {"log_sigma_fid_error_low_truth_high": err,
                                    "grid": [grid[0], grid[-1], len(grid)]}
        return {self.names[0]: [posterior_1d(grid, lp[:, sl].sum(-1))
                                for sl in _experiments(a.experiments, a.events)]}


TEMPLATE_MASSES = tuple(float(m) for m in np.arange(165.0, 180.01, 2.5))
MBL_EDGES = np.linspace(20.0, 180.0, 33)


class TemplateMethod(Method):
    """Template fit of the reco m(bℓ) minimax statistic (:mod:`invsim.template_fit`):
    templates at 165, 167.5, …, 180 GeV (JES = 1) of ``--template-events`` selected events
    each (``--template-smear`` detector draws per hard event), 5 GeV bins on [20, 180],
    per-bin quadratic in m_t; Poisson binned likelihood, flat-prior posterior on
    [165, 180]."""

    names = ("template fit m(bℓ)",)
    trained_at = "165-180 GeV (7 templates)"

    def _prepare(self):
        from invsim.pairs import simulate
        from invsim.template_fit import TemplateFit
        from invsim.ttbar_mass import mbl_statistic

        a, s = self.args, self.setup
        stat = mbl_statistic(s["obs"])
        samples = {}
        for j, m in enumerate(TEMPLATE_MASSES):
            vals, k = [], 0
            gen = torch.Generator().manual_seed(a.seed * 1000 + 500 + j)
            while sum(len(v) for v in vals) < a.template_events:
                n_left = a.template_events - sum(len(v) for v in vals)
                sim = simulate(s["process"], s["detector"],
                               _chunk_trials(max(1, n_left // a.template_smear)), {"mt": m},
                               observables=s["obs"], seed=a.seed * 1000 + 100 * j + k)
                vals.append(stat(sim.x_reco[sim.passed]))
                for _ in range(a.template_smear - 1):
                    pids = s["process"].sample_final_state(len(sim.hard), generator=gen)
                    ex = s["obs"].extract(s["detector"].reconstruct(sim.hard, pids,
                                                                    generator=gen))
                    vals.append(stat(ex.x))
                k += 1
            samples[m] = torch.cat(vals)[: a.template_events].numpy()
        self.fit = TemplateFit.from_samples(samples, MBL_EDGES)
        self.stat = stat

    def run(self, hard, x, truth):
        self.prepare()
        v = self.stat(x).numpy()
        return {self.names[0]: [self.fit.fit(v[sl]).to_dict()
                                for sl in _experiments(self.args.experiments, self.args.events)]}


def summary_features(x: torch.Tensor, obs) -> torch.Tensor:
    """Summary statistics of a data set (m, d): mean and quartiles of the m(bℓ) minimax
    statistic, mean lepton pT and mean b-jet pT (GeV), shape (6,) float64."""
    from invsim.ttbar_mass import mbl_statistic

    t = mbl_statistic(obs)(x)
    col = {c: i for i, c in enumerate(obs.columns)}
    lep = x[:, [col["lminus_pt"], col["lplus_pt"]]].mean()
    bj = x[:, [col["bjet1_pt"], col["bjet2_pt"]]].mean()
    q = torch.quantile(t, torch.tensor([0.25, 0.5, 0.75], dtype=t.dtype))
    return torch.cat([t.mean()[None], q, lep[None], bj[None]]).to(torch.float64)


class NPEMethod(Method):
    """sbi NPE (:func:`invsim.baselines.train_npe`, zuko NSF) on :func:`summary_features`
    of data sets of ``--events`` selected events, ``--npe-sims`` of them at m_t drawn from
    Uniform(165, 180) (JES = 1), each simulated afresh; features standardised with
    location and spread from a pilot at 172.5 GeV, then one learned linear layer as the
    embedding; posterior from 2000 draws."""

    names = ("sbi NPE (summaries)",)
    trained_at = "prior Uniform(165, 180)"

    def _prepare(self):
        from invsim.baselines import train_npe

        a, s = self.args, self.setup
        n = a.events
        _, pilot = simulate_pool(s, 172.5, max(4 * n, 400), a.seed + 900)
        g = torch.Generator().manual_seed(a.seed + 901)
        subs = torch.stack([summary_features(pilot[torch.randint(len(pilot), (n,),
                                                                 generator=g)], s["obs"])
                            for _ in range(30)])
        self.loc, self.scale = summary_features(pilot, s["obs"]), subs.std(0)

        def simulate_set(theta, gen):
            seed = int(torch.randint(0, 2**20, (1,), generator=gen))
            _, xs = simulate_pool(s, float(theta["mt"]), n, seed)
            return self.features(xs)

        prior = {"mt": torch.distributions.Uniform(torch.tensor(MT_RANGE[0]),
                                                   torch.tensor(MT_RANGE[1]))}
        self.npe = train_npe(prior, simulate_set, n_simulations=a.npe_sims, seed=a.seed + 902,
                             embedding=torch.nn.Sequential(torch.nn.Flatten(),
                                                           torch.nn.Linear(6, 6)),
                             max_epochs=a.npe_epochs)

    def features(self, x):
        return ((summary_features(x, self.setup["obs"]) - self.loc) / self.scale)[None]

    def run(self, hard, x, truth):
        self.prepare()
        out = []
        for e, sl in enumerate(_experiments(self.args.experiments, self.args.events)):
            d = self.npe.sample(self.features(x[sl]), 2000, seed=self.args.seed + e)["mt"]
            out.append(_draws_row(d.numpy()))
        return {self.names[0]: out}


class UnfoldingMethods(Method):
    """Naive (172.5 GeV) and prior-independent (169.5, 172.5, 175.5 GeV) cINN unfolding
    + unbinned peak fit (``topmass_unfolding.train_unfolders`` / ``unfolded_peak``):
    ``--unfold-train`` selected pairs per training mass, ``--unfold-epochs``, one
    unfolded sample per reco event, 68 % width from ``--unfold-boot`` bootstrap
    replicates (intervals ±1 and ±2 widths)."""

    names = ("unfolding naive + fit", "unfolding prior-indep. + fit")
    trained_at = "naive 172.5; prior-indep. 169.5/172.5/175.5"

    def __init__(self, setup, args, which):
        super().__init__(setup, args)
        self.which = which

    def _prepare(self):
        u = _unfolding_module()
        a, s = self.args, self.setup
        train = {m: simulate_pool(s, m, a.unfold_train, a.seed * 100 + 70 + i)
                 for i, m in enumerate(u.TRAIN_MASSES)}
        self.naive, self.pi, info = u.train_unfolders(s["process"], s["obs"], train,
                                                      epochs=a.unfold_epochs)
        self.info = {"seconds_naive": info["seconds_naive"],
                     "seconds_prior_independent": info["seconds_prior_independent"]}

    def run(self, hard, x, truth):
        self.prepare()
        u = _unfolding_module()
        a = self.args
        unf = {self.names[0]: self.naive.sample, self.names[1]: self.pi.sample}
        out = {}
        for name in self.which:
            sample = unf[name]
            out[name] = []
            for e, sl in enumerate(_experiments(a.experiments, a.events)):
                r = u.unfolded_peak(lambda xr, g, f=sample: f(xr, 1, generator=g), x[sl],
                                    a.unfold_boot, a.seed + 7 * e)
                out[name].append(_gaussian_row(r["mt"], r["width"]))
        return out


class MEMMethod(Method):
    """ML-MEM with JES fixed and JES free (module docstring)."""

    names = ("ML-MEM, JES fixed", "ML-MEM, JES free")
    trained_at = "165-180 GeV (3 points), JES 0.95-1.05"

    def _prepare(self):
        from invsim.mem import MEMModel
        from invsim.mem.recipe import build_model

        a, s = self.args, self.setup
        if a.model_dir and os.path.exists(os.path.join(a.model_dir, "mem.json")):
            self.model, train_info = MEMModel.load(a.model_dir), {"loaded": a.model_dir}
        else:
            self.model, train_info = build_model(
                s["process"], s["detector"], n_trials=a.trials, epochs=a.epochs,
                observables=s["obs"], seed=a.seed, ranges={"mt": MT_RANGE, "jes": JES_RANGE},
                hidden=(a.hidden, a.hidden), min_accepted=0)
            if a.model_dir:
                self.model.save(a.model_dir)
        self.info["train"] = {k: v for k, v in train_info.items() if k in (
            "train_events", "train_accepted", "transfer_val_loss", "acceptance_val_loss",
            "unfolder_val_loss", "train_seconds", "unfolder_outside_map", "loaded")}
        print(f"ML-MEM model: {train_info.get('train_accepted', '?')} accepted training "
              "events", flush=True)

    def timing(self, x_time):
        self.prepare()
        return _timing(self.model, x_time)

    def run(self, hard, x, truth):
        from invsim.mem import MEMLikelihood

        self.prepare()
        a = self.args
        jes_free = a.jes_points > 1
        lik = MEMLikelihood(self.model, x, n_samples=a.samples, parameter_names=["mt"],
                            nuisances=("jes",) if jes_free else (), n_fiducial=a.fiducial,
                            on_flagged="ignore", seed=a.seed + 1)
        with torch.no_grad():
            res = lik.evaluate({"mt": truth, **({"jes": 1.0} if jes_free else {})})
        health = {"median_ess": float(res.ess.median()),
                  "median_error": float(res.error.median()),
                  "flagged_fraction": float(res.flagged.double().mean())}
        print(f"ML-MEM importance sampling at mt={truth}: median ESS "
              f"{health['median_ess']:.1f} of {a.samples}, median error of log p "
              f"{health['median_error']:.2f}, {100 * health['flagged_fraction']:.0f} % flagged",
              flush=True)
        mt = np.linspace(*MT_RANGE, a.mt_points)
        jes = np.linspace(*JES_RANGE, a.jes_points) if jes_free else np.array([1.0])
        lp = np.empty((len(mt), len(jes), len(x)))
        with torch.no_grad():
            for i, m in enumerate(mt):
                theta = {"mt": torch.full((len(jes),), float(m), dtype=torch.float64)}
                if jes_free:
                    theta["jes"] = torch.as_tensor(jes)
                lp[i] = lik.log_prob(theta).numpy()
        bad = ~np.isfinite(lp).all((0, 1))
        if a.save_loglik:
            np.savez_compressed(a.save_loglik, mt=mt, jes=jes, loglik=lp)
        self.info[f"mt={truth}"] = {"importance_sampling": health,
                                    "events_nonfinite": int(bad.sum()),
                                    "mt_grid": mt.tolist(), "jes_grid": jes.tolist()}
        rows = {self.names[0]: [], **({self.names[1]: []} if jes_free else {})}
        for sl in _experiments(a.experiments, a.events):
            ll = lp[:, :, sl][:, :, ~bad[sl]].sum(-1)
            rows[self.names[0]].append(grid_posterior(mt, jes, ll, jes_free=False))
            if jes_free:
                rows[self.names[1]].append(grid_posterior(mt, jes, ll, jes_free=True))
        return rows


METHODS = ("parton", "template", "npe", "mem", "unfold-naive", "unfold-pi")
DEFAULT_METHODS = "parton,template,npe"
BIAS_MASSES = (169.5, 172.5, 175.5)


def build_methods(names: list[str], setup: dict, args) -> list[Method]:
    """The :class:`Method` objects of ``--methods`` (one for both unfoldings)."""
    out: list[Method] = []
    simple = {"parton": PartonFloor, "template": TemplateMethod, "npe": NPEMethod,
              "mem": MEMMethod}
    for n in names:
        if n in simple:
            out.append(simple[n](setup, args))
    unf = [UnfoldingMethods.names[i] for i, n in enumerate(("unfold-naive", "unfold-pi"))
           if n in names]
    if unf:
        out.append(UnfoldingMethods(setup, args, unf))
    return out


def run_methods(methods: list[Method], hard, x, truth: float) -> tuple[dict, dict]:
    """Every method on the pool's pseudo-experiments: rows and wall seconds per method."""
    rows, seconds = {}, {}
    for m in methods:
        m.prepare()
        t0 = time.perf_counter()
        out = m.run(hard, x, truth)
        dt = time.perf_counter() - t0
        for name, r in out.items():
            rows[name] = r
            seconds[name] = {"run_s": dt, "prepare_s": m.prepare_s, "trained_at": m.trained_at}
        print(f"{type(m).__name__} at mt = {truth}: prepare {m.prepare_s:.0f} s, run "
              f"{dt:.0f} s", flush=True)
    return rows, seconds


def _print_table(table: dict, title: str) -> None:
    print(f"\n{title}")
    print(f"{'method':30s} {'width68':>8s} {'bias':>15s} {'cov68':>6s} {'cov95':>6s} "
          f"{'s/PE':>7s}  extra")
    for name, s in table.items():
        extra = (f"jes {s['mean_jes_mean']:.4f} ± {s['mean_jes_std']:.4f}, "
                 f"corr(mt, jes) {s['mean_corr']:+.2f}" if "mean_corr" in s else "")
        print(f"{name:30s} {s['mean_width68']:8.3f} {s['mean_bias']:+7.3f} ± "
              f"{s['bias_error']:5.3f} {s['coverage68']:6.2f} {s['coverage95']:6.2f} "
              f"{s['wall_s_per_experiment']:7.2f}  {extra}")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default=DEFAULT_METHODS,
                    help=f"comma-separated rows to run, of {','.join(METHODS)} "
                         f"(default: the cheap ones, {DEFAULT_METHODS})")
    ap.add_argument("--experiments", type=int, default=50)
    ap.add_argument("--events", type=int, default=500, help="selected events per experiment")
    ap.add_argument("--bias-table", action="store_true",
                    help=f"also the bias at m_t = {BIAS_MASSES} GeV")
    ap.add_argument("--bias-experiments", type=int, default=10,
                    help="pseudo-experiments per mass of the bias table")
    g = ap.add_argument_group("parton-level floor")
    g.add_argument("--parton-fiducial", type=int, default=100_000)
    g.add_argument("--parton-draws", type=int, default=4,
                   help="detector draws per fiducial event for the acceptance")
    g.add_argument("--parton-halfwidth", type=float, default=0.5,
                   help="the fine m_t grid: truth ± this (GeV)")
    g = ap.add_argument_group("template fit")
    g.add_argument("--template-events", type=int, default=20_000,
                   help="selected events per template mass")
    g.add_argument("--template-smear", type=int, default=4,
                   help="detector draws per simulated hard event")
    g = ap.add_argument_group("sbi NPE")
    g.add_argument("--npe-sims", type=int, default=200, help="training data sets")
    g.add_argument("--npe-epochs", type=int, default=200, help="most training epochs")
    g = ap.add_argument_group("unfolding")
    g.add_argument("--unfold-train", type=int, default=10_000,
                   help="selected pairs per training mass")
    g.add_argument("--unfold-epochs", type=int, default=15)
    g.add_argument("--unfold-boot", type=int, default=20, help="bootstrap replicates")
    g = ap.add_argument_group("ML-MEM")
    g.add_argument("--trials", type=int, default=1_500_000, help="training trials")
    g.add_argument("--epochs", type=int, default=12)
    g.add_argument("--hidden", type=int, default=64)
    g.add_argument("--samples", type=int, default=200, help="importance samples per event")
    g.add_argument("--fiducial", type=int, default=50_000)
    g.add_argument("--mt-points", type=int, default=31)
    g.add_argument("--save-loglik", default=None, help="write the per-event log p grid (.npz)")
    g.add_argument("--jes-points", type=int, default=9,
                   help="odd: the grid holds JES = 1; 1: JES fixed only (JES not in θ, the "
                        "cached factors evaluated at JES = 1 only: 9 times cheaper setup)")
    g.add_argument("--timing-events", type=int, default=8)
    g.add_argument("--model-dir", default=None, help="reuse (or write) the trained model")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="JSON results file")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.methods.split(",") if n.strip()]
    unknown = sorted(set(names) - set(METHODS))
    if unknown or not names:
        ap.error(f"--methods: expected names of {list(METHODS)}, got {args.methods!r}")
    if args.jes_points % 2 == 0 or args.jes_points < 1:
        ap.error("--jes-points: expected an odd number (the grid must hold JES = 1)")
    for k in ("experiments", "events", "bias_experiments", "parton_draws", "template_smear",
              "template_events", "npe_sims", "unfold_boot"):
        if getattr(args, k) < (2 if k in ("experiments", "unfold_boot") else 1):
            ap.error(f"--{k.replace('_', '-')}: expected a positive count, got "
                     f"{getattr(args, k)}")

    from forward.detector import Detector
    from forward.processes import get_process
    from invsim.observables import RecoObservables

    t_start = time.perf_counter()
    process = get_process("ttbar", decays="dilepton", leptons="all", scale=172.5)
    setup = {"process": process, "obs": RecoObservables.for_process(process, met=False),
             "detector": Detector("cms")}
    methods = build_methods(names, setup, args)

    # the pool of selected events at the truth, JES = 1
    n_pool = args.experiments * args.events
    mem = [m for m in methods if isinstance(m, MEMMethod)]
    n_time = args.timing_events if mem else 0
    hard, pool = simulate_pool(setup, TRUTH, n_pool + n_time, 10 + args.seed)
    x_time, pool, hard = pool[:n_time], pool[n_time:], hard[n_time:]
    print(f"data: {n_pool} selected events at mt = {TRUTH} GeV, {args.experiments} "
          f"pseudo-experiments of {args.events}", flush=True)
    timing = mem[0].timing(x_time) if mem and n_time else {}
    if timing:
        print(f"speed (1 thread, {timing['n_samples']} samples, both assignments): setup "
              f"{timing['setup_ms_per_event']:.0f} ms/event, per θ "
              f"{timing['per_theta_ms_per_event']:.2f} ms/event (with gradient "
              f"{timing['per_theta_grad_ms_per_event']:.2f})", flush=True)

    rows, seconds = run_methods(methods, hard, pool, TRUTH)
    table = {name: {**_summary(r, TRUTH), **seconds[name],
                    "wall_s_per_experiment": (seconds[name]["run_s"]
                                              + seconds[name]["prepare_s"]) / len(r)}
             for name, r in rows.items()}
    _print_table(table, f"{args.experiments} pseudo-experiments x {args.events} selected "
                        f"events at mt = {TRUTH} GeV (s/PE: run + preparation share)")

    bias = {}
    if args.bias_table:
        b_args = argparse.Namespace(**{**vars(args), "experiments": args.bias_experiments})
        for m in methods:
            m.args = b_args
        for i, mt in enumerate(BIAS_MASSES):
            h, x = simulate_pool(setup, mt, args.bias_experiments * args.events,
                                 20 + 10 * i + args.seed)
            r, sec = run_methods(methods, h, x, mt)
            for name, rr in r.items():
                s = _summary(rr, mt)
                bias.setdefault(name, {"trained_at": sec[name]["trained_at"]})[str(mt)] = {
                    k: s[k] for k in ("mean_bias", "bias_error", "mean_width68",
                                      "coverage68", "coverage95", "n")}
        print(f"\nbias [GeV] at m_t = {BIAS_MASSES}, {args.bias_experiments} "
              f"pseudo-experiments x {args.events} events each (± error of the mean bias)")
        for name, b in bias.items():
            cells = " ".join(f"{b[str(mt)]['mean_bias']:+7.3f} ± {b[str(mt)]['bias_error']:5.3f}"
                             for mt in BIAS_MASSES)
            print(f"{name:30s} {cells}   trained at: {b['trained_at']}")

    result = {
        "truth_mt": TRUTH, "experiments": args.experiments, "events": args.events,
        "methods": names, "table": table, "bias_table": bias, "per_experiment": rows,
        "timing": timing, "method_info": {type(m).__name__: m.info for m in methods},
        "settings": vars(args), "wall_s": time.perf_counter() - t_start,
        "platform": platform.platform(), "torch_threads": torch.get_num_threads(),
    }
    print(json.dumps({k: result[k] for k in ("table", "bias_table", "timing")}))
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=1)
    return result


if __name__ == "__main__":
    main()
