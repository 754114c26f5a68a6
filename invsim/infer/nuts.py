"""NUTS posterior sampling with Pyro: independent chains, reproducible seeds, any device.

Chains run one after another in this process (no multiprocessing, so any likelihood
object works, on CPU or GPU). Each chain seeds torch's generator for the chain's device
inside :func:`torch.random.fork_rng`, so the caller's global random state is untouched.
"""

from __future__ import annotations

import torch
from pyro.infer import MCMC, NUTS

from invsim.infer.model import InferenceProblem
from invsim.infer.results import to_inference_data

__all__ = ["sample_nuts"]


def _positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")
    return value


def sample_nuts(
    problem: InferenceProblem,
    *,
    num_samples: int = 1000,
    warmup: int = 1000,
    chains: int = 4,
    seed: int = 0,
    target_accept: float = 0.8,
    max_tree_depth: int = 10,
    full_mass: bool = False,
    progress: bool = False,
    observed_data=None,
):
    """Sample the posterior with NUTS and return ``arviz.InferenceData``.

    Args:
        problem: priors, likelihood and extended term (:class:`InferenceProblem`).
        num_samples: draws kept per chain.
        warmup: adaptation steps per chain (step size and diagonal mass matrix).
        chains: number of independent chains (≥ 2 for r̂).
        seed: chain c uses seed ``seed + c``.
        target_accept: NUTS target acceptance probability, in (0, 1).
        max_tree_depth: maximum NUTS tree depth.
        full_mass: adapt a dense mass matrix (for strongly correlated parameters)
            instead of a diagonal one.
        progress: show Pyro's progress bar.
        observed_data: extra entries for the ``observed_data`` group.

    Returns:
        ``arviz.InferenceData`` (see :mod:`invsim.infer.results`); sample_stats hold
        ``lp``, ``diverging`` and ``step_size``; the ``sample_stats`` attributes hold the
        acceptance rate of each chain. ``az.summary(idata)`` reports r̂ and ESS.
    """
    if not isinstance(problem, InferenceProblem):
        raise TypeError(f"problem: expected an InferenceProblem, got {type(problem).__name__}")
    _positive_int("num_samples", num_samples)
    _positive_int("warmup", warmup, 0)
    _positive_int("chains", chains)
    _positive_int("seed", seed, 0)
    if not 0 < float(target_accept) < 1:
        raise ValueError(f"target_accept: expected a value in (0, 1), got {target_accept!r}")
    device = next(iter(problem.reference_point().values())).device
    draws = {n: [] for n in problem.names}
    diverging, step_size, accept = [], [], []
    for c in range(chains):
        fork = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=fork):
            torch.manual_seed(seed + c)
            kernel = NUTS(problem.model, target_accept_prob=float(target_accept),
                          max_tree_depth=max_tree_depth, full_mass=bool(full_mass),
                          jit_compile=False)
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
        step_size.append(torch.full((num_samples,), float(kernel.step_size), dtype=torch.float64))
        accept.append(float(diag["acceptance rate"]["chain 0"]))
    idata = to_inference_data(
        problem, {n: torch.stack(v) for n, v in draws.items()}, method="nuts",
        seeds=[seed + c for c in range(chains)],
        sample_stats={"diverging": torch.stack(diverging), "step_size": torch.stack(step_size)},
        observed_data=observed_data,
        attrs={"num_samples": num_samples, "warmup": warmup, "chains": chains,
               "target_accept": float(target_accept), "full_mass": int(bool(full_mass))},
    )
    idata.sample_stats.attrs["acceptance_rate"] = accept
    return idata
