"""NUTS posterior sampling with Pyro: mode-started chains, convergence checks, any device.

Chains run one after another in this process (no multiprocessing, so any likelihood
object works, on CPU or GPU). Each chain seeds torch's generator for the chain's device
inside :func:`torch.random.fork_rng`, so the caller's global random state is untouched.

Starting points (:mod:`invsim.infer.init`): by default every chain starts near the
posterior mode found by L-BFGS, dispersed by twice the Laplace scale; ``init`` fixes
them; ``init_strategy="prior"`` keeps Pyro's default (uniform in (-2, 2) on the
unconstrained scale).

Convergence (:func:`convergence_diagnostics`), computed after every run with ArviZ and
recorded as JSON in ``idata.posterior.attrs["convergence"]``; a
:class:`ConvergenceWarning` names every parameter failing a threshold:

* split r̂ (rank-normalised, Vehtari et al. 2021) > :data:`RHAT_MAX` = 1.01 (needs
  ≥ 2 chains);
* bulk or tail ESS < :data:`ESS_PER_CHAIN` = 100 per chain (Vehtari et al.'s
  recommendation: 400 for 4 chains);
* any divergent transition after warm-up (reported per chain; a divergence is a
  property of a trajectory, not of one parameter).
"""

from __future__ import annotations

import json
import math
import warnings

import torch
from pyro.infer import MCMC, NUTS
from pyro.infer.autoguide.initialization import init_to_uniform, init_to_value

from forward._validation import check_count
from forward.seeding import seeded_init
from invsim.infer.init import initial_points
from invsim.infer.limits import MAX_CHAINS, MAX_DRAWS
from invsim.infer.model import InferenceProblem
from invsim.infer.results import prior_draws, to_inference_data

__all__ = ["ESS_PER_CHAIN", "RHAT_MAX", "ConvergenceWarning", "convergence_diagnostics",
           "sample_nuts"]

#: largest acceptable split r̂
RHAT_MAX = 1.01
#: smallest acceptable bulk and tail ESS, per chain
ESS_PER_CHAIN = 100


class ConvergenceWarning(UserWarning):
    """The chains did not converge: large r̂, small ESS or divergent transitions."""


class _EnergyNUTS(NUTS):
    """Pyro's NUTS, also recording the Hamiltonian H = U(q) + K(p) of every transition.

    H is taken at the start of each transition, after the momentum is drawn (the value
    the trajectory conserves up to integration error; Betancourt's "energy", what
    ``arviz.bfmi`` and ``arviz.plot_energy`` read), with U = −log joint density on the
    unconstrained scale. Step-size searches (``r_presample_*`` draws) are not recorded.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.energies: list[float] = []

    def _sample_r(self, name):
        r, r_unscaled = super()._sample_r(name)
        if name.startswith("r_t="):
            self.energies.append(float(self._kinetic_energy(r_unscaled)
                                       + self._potential_energy_last))
        return r, r_unscaled


def _positive_int(name: str, value, minimum: int = 1, maximum: int | None = None) -> int:
    try:
        return check_count(name, value, minimum, maximum)
    except TypeError as err:  # historical: non-integers are ValueErrors here
        raise ValueError(str(err)) from None


def convergence_diagnostics(idata, *, rhat_max: float = RHAT_MAX,
                            ess_per_chain: float = ESS_PER_CHAIN) -> dict:
    """r̂, bulk/tail ESS per parameter, divergences per chain, and what fails.

    Args:
        idata: ``arviz.InferenceData`` with a ``posterior`` group (dims chain, draw) and
            optionally ``sample_stats.diverging``.
        rhat_max: largest acceptable split r̂.
        ess_per_chain: smallest acceptable bulk and tail ESS per chain.

    Returns:
        A JSON-serialisable dict: ``r_hat``, ``ess_bulk``, ``ess_tail`` (name -> number;
        r̂ is None with one chain), ``divergences`` (list, one count per chain),
        ``thresholds`` ({"r_hat_max", "ess_min"}), ``failed`` (name -> list of reasons)
        and ``converged`` (bool).
    """
    import arviz as az

    post = idata.posterior
    chains = int(post.sizes["chain"])
    names = [str(n) for n in post.data_vars]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # arviz warns about few chains/draws itself
        rhat = az.rhat(post) if chains > 1 else None
        bulk = az.ess(post, method="bulk")
        tail = az.ess(post, method="tail")

    def num(ds, n):
        if ds is None:
            return None
        v = float(ds[n].values)
        return v if math.isfinite(v) else None

    ess_min = float(ess_per_chain) * chains
    out = {"r_hat": {n: num(rhat, n) for n in names},
           "ess_bulk": {n: num(bulk, n) for n in names},
           "ess_tail": {n: num(tail, n) for n in names},
           "thresholds": {"r_hat_max": float(rhat_max), "ess_min": ess_min},
           "chains": chains, "draws": int(post.sizes["draw"])}
    failed: dict[str, list[str]] = {}
    for n in names:
        r = out["r_hat"][n]
        if chains > 1 and (r is None or r > rhat_max):
            failed.setdefault(n, []).append(
                f"r_hat {'nan' if r is None else f'{r:.3f}'} > {rhat_max:g}")
        for kind in ("ess_bulk", "ess_tail"):
            e = out[kind][n]
            if e is None or e < ess_min:
                failed.setdefault(n, []).append(
                    f"{kind} {'nan' if e is None else f'{e:.0f}'} < {ess_min:g}")
    div = []
    stats = getattr(idata, "sample_stats", None)
    if stats is not None and "diverging" in stats:
        div = [int(x) for x in stats["diverging"].values.reshape(chains, -1).sum(-1)]
    out["divergences"] = div
    out["failed"] = failed
    out["converged"] = not failed and sum(div) == 0
    return out


def _warn(diag: dict) -> None:
    if diag["converged"]:
        return
    parts = [f"{n}: {', '.join(r)}" for n, r in diag["failed"].items()]
    if sum(diag["divergences"]):
        parts.append(f"{sum(diag['divergences'])} divergent transitions after warm-up "
                     f"(per chain {diag['divergences']})")
    warnings.warn(
        "NUTS chains did not converge; " + "; ".join(parts) + ". Run longer chains, raise "
        "target_accept, check for several modes (init=, init_strategy='mode') or "
        "reparametrise.", ConvergenceWarning, stacklevel=3)


def sample_nuts(
    problem: InferenceProblem,
    *,
    num_samples: int = 1000,
    warmup: int = 1000,
    chains: int = 4,
    seed: int = 0,
    init=None,
    init_strategy: str = "mode",
    target_accept: float = 0.8,
    max_tree_depth: int = 10,
    full_mass: bool = False,
    progress: bool | None = None,
    observed_data=None,
    prior_samples: int | None = None,
):
    """Sample the posterior with NUTS and return ``arviz.InferenceData``.

    Args:
        problem: priors, likelihood and extended term (:class:`InferenceProblem`).
        num_samples: draws kept per chain.
        warmup: adaptation steps per chain (step size and diagonal mass matrix).
        chains: number of independent chains (≥ 2 for r̂).
        seed: chain c uses seed ``seed + c``; the mode search and the starting points
            use a generator derived from ``seed`` (:func:`invsim.infer.init.init_generator`).
            Two runs with the same arguments give identical draws.
        init: starting values: None, a mapping name -> value (every chain), or a list
            of ``chains`` mappings (one per chain). Values must lie in the priors'
            supports; names left out come from ``init_strategy``.
        init_strategy: ``"mode"`` (default): find the posterior mode (L-BFGS from the
            prior median and 3 prior draws, in the unconstrained space) and start the
            chains at Gaussian draws around it with 2 × the Laplace standard deviation;
            ``"prior"``: Pyro's default, uniform in (-2, 2) on the unconstrained scale.
        target_accept: NUTS target acceptance probability, in (0, 1).
        max_tree_depth: maximum NUTS tree depth.
        full_mass: adapt a dense mass matrix (for strongly correlated parameters)
            instead of a diagonal one.
        progress: show Pyro's tqdm progress bar per chain when
            :func:`forward.progress.progress_enabled` allows it (stderr a terminal or
            ``invsim --verbose``, no ``TQDM_DISABLE``); False: never.
        observed_data: extra entries for the ``observed_data`` group.
        prior_samples: draws per chain for the ``prior`` group (default
            ``num_samples``; 0 for none), from a generator seeded with ``seed``.

    Returns:
        ``arviz.InferenceData`` (see :mod:`invsim.infer.results`); sample_stats hold
        ``lp``, ``diverging``, ``energy`` (the Hamiltonian of each transition, so
        ``az.bfmi`` and ``az.plot_energy`` work) and ``step_size``; a ``prior`` group
        (dims chain, draw) holds draws from the priors; the ``sample_stats`` attributes hold the
        acceptance rate of each chain; ``posterior.attrs["convergence"]`` (and
        ``idata.attrs``) the JSON text of :func:`convergence_diagnostics`;
        ``posterior.attrs["init"]`` the JSON starting values per chain.

    Warns:
        ConvergenceWarning: a parameter with r̂ > 1.01, bulk or tail ESS < 100 per
            chain, or divergent transitions.
    """
    if not isinstance(problem, InferenceProblem):
        raise TypeError(f"problem: expected an InferenceProblem, got {type(problem).__name__}")
    _positive_int("num_samples", num_samples, 1, MAX_DRAWS)
    _positive_int("warmup", warmup, 0, MAX_DRAWS)
    _positive_int("chains", chains, 1, MAX_CHAINS)
    _positive_int("seed", seed, 0)
    prior_samples = num_samples if prior_samples is None else _positive_int(
        "prior_samples", prior_samples, 0)
    if not 0 < float(target_accept) < 1:
        raise ValueError(f"target_accept: expected a value in (0, 1), got {target_accept!r}")
    from forward.progress import progress_enabled

    progress = progress_enabled(progress)
    starts, mode = initial_points(problem, chains, init=init, strategy=init_strategy,
                                  seed=seed)
    device = next(iter(problem.reference_point().values())).device
    draws = {n: [] for n in problem.names}
    diverging, step_size, accept, energy = [], [], [], []
    for c in range(chains):
        with seeded_init(seed + c, device):
            strategy = (init_to_value(values=starts[c], fallback=init_to_uniform)
                        if starts[c] else init_to_uniform)
            kernel = _EnergyNUTS(problem.model, target_accept_prob=float(target_accept),
                          max_tree_depth=max_tree_depth, full_mass=bool(full_mass),
                          jit_compile=False, init_strategy=strategy)
            mcmc = MCMC(kernel, num_samples=num_samples, warmup_steps=warmup, num_chains=1,
                        disable_progbar=not progress)
            mcmc.run()
        samples = mcmc.get_samples()
        for n in problem.names:
            draws[n].append(samples[n].detach().reshape(num_samples))
        diag = mcmc.diagnostics()
        div = torch.zeros(num_samples, dtype=torch.bool)
        div_idx = torch.as_tensor(diag["divergences"]["chain 0"], dtype=torch.long)
        div[div_idx[(div_idx >= 0) & (div_idx < num_samples)]] = True
        diverging.append(div)
        energy.append(torch.tensor(kernel.energies[-num_samples:], dtype=torch.float64))
        step_size.append(torch.full((num_samples,), float(kernel.step_size), dtype=torch.float64))
        accept.append(float(diag["acceptance rate"]["chain 0"]))
    init_info = {"strategy": init_strategy,
                 "values": [{n: float(v) for n, v in s.items()} for s in starts]}
    if mode is not None:
        init_info["mode"] = {n: float(v) for n, v in mode.theta.items()}
        init_info["mode_log_density"] = mode.log_density
        init_info["laplace_ok"] = mode.laplace_ok
    idata = to_inference_data(
        problem, {n: torch.stack(v) for n, v in draws.items()}, method="nuts",
        seeds=[seed + c for c in range(chains)],
        sample_stats={"diverging": torch.stack(diverging), "step_size": torch.stack(step_size),
                      "energy": torch.stack(energy)},
        observed_data=observed_data,
        prior=prior_draws(problem, chains, prior_samples, seed) if prior_samples else None,
        attrs={"num_samples": num_samples, "warmup": warmup, "chains": chains,
               "target_accept": float(target_accept), "full_mass": int(bool(full_mass)),
               "init_strategy": init_strategy},
    )
    idata.sample_stats.attrs["acceptance_rate"] = accept
    conv = convergence_diagnostics(idata)
    text = json.dumps(conv)
    idata.posterior.attrs["convergence"] = text
    idata.posterior.attrs["init"] = json.dumps(init_info)
    idata.attrs["convergence"] = text
    _warn(conv)
    return idata
