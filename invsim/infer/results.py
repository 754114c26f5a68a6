"""Posterior draws as ``arviz.InferenceData``, and NetCDF files that are never overwritten.

Groups written by :func:`to_inference_data`:

* ``posterior``: one variable per parameter, dims (chain, draw);
* ``sample_stats``: ``lp`` (log prior + log likelihood) and whatever the sampler adds
  (NUTS: ``diverging``, ``energy``, ``step_size``; ``log_poisson`` for the extended
  likelihood);
* ``prior``: draws from the priors, one variable per parameter, dims (chain, draw),
  when the sampler passes them (:func:`prior_draws`; NUTS and SVI do);
* ``log_likelihood``: ``events``, the per-event log p(x_i | θ), dims (chain, draw, event),
  so ``az.loo`` and ``az.waic`` work;
* ``observed_data``: ``n_events`` and anything the caller passes;
* attributes: process, luminosity (pb⁻¹, -1 for none), n_events, method, seeds,
  parameter names, priors, package versions; when the likelihood reports flagged
  events (``evaluate(theta).flagged``, e.g. the ML-MEM): ``n_flagged`` (events flagged
  at one or more draws), ``flag_reasons`` (JSON: criterion -> events), ``reliable``
  (0/1) and ``flag_message``; ``sample_stats`` then also holds ``n_flagged`` per draw.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch

from forward.files import atomic_target
from invsim.infer.flags import FlagCounter, handle_flags
from invsim.infer.likelihood import check_event_log_prob
from invsim.infer.model import InferenceProblem

__all__ = ["load_inference", "prior_draws", "save_inference", "to_inference_data", "versions"]


def versions() -> dict[str, str]:
    """Versions of invsim and the inference stack, for provenance attributes."""
    import arviz
    import pyro

    from invsim import __version__

    return {"invsim_version": __version__, "torch_version": str(torch.__version__),
            "pyro_version": str(pyro.__version__), "arviz_version": str(arviz.__version__)}


def prior_draws(problem: InferenceProblem, chains: int, draws: int,
                seed: int) -> dict[str, torch.Tensor]:
    """Independent draws from the priors for the ``prior`` group.

    Args:
        problem: the inference problem (its ``priors``).
        chains, draws: the shape of each parameter's draws, (chains, draws).
        seed: seeds torch's generator of the priors' device inside
            :func:`torch.random.fork_rng` (the caller's random state is untouched).

    Returns:
        name -> tensor of shape (chains, draws).
    """
    devices = sorted({v.device for v in problem.reference_point().values()
                      if v.device.type == "cuda"}, key=str)
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        with torch.no_grad():
            return {n: p.sample((chains, draws)) for n, p in problem.priors.items()}


def _batched_event_ll(problem: InferenceProblem, flat: Mapping[str, torch.Tensor],
                      batch_size: int):
    """Per-event log p (draws, n_events), Poisson term (draws,), and the flags.

    The flags come from ``likelihood.evaluate(theta)`` at every draw when the likelihood
    has it (the values stay those of ``log_prob``, which the sampler used): returns
    (FlagCounter, per-draw counts) or (None, None).
    """
    n_draws = next(iter(flat.values())).shape[0]
    evaluate = getattr(problem.likelihood, "evaluate", None)
    counter = FlagCounter(problem.n_events) if callable(evaluate) else None
    ev, poisson, counts = [], [], []
    with torch.no_grad():
        for start in range(0, n_draws, batch_size):
            theta = {k: v[start:start + batch_size] for k, v in flat.items()}
            lp = problem.event_log_likelihood(theta)
            ev.append(lp)
            poisson.append(problem.extended_log_term(theta))
            if counter is not None:
                res = evaluate(theta)
                check_event_log_prob(getattr(res, "log_p", None), lp.shape[0], lp.shape[-1])
                c = counter.add(res, lp.shape)
                if c is not None:
                    counts.append(c.reshape(-1))
    if counter is None or not counter.seen:
        return torch.cat(ev), torch.cat(poisson), None, None
    return torch.cat(ev), torch.cat(poisson), counter, torch.cat(counts)


def to_inference_data(
    problem: InferenceProblem,
    draws: Mapping[str, torch.Tensor],
    *,
    method: str,
    seeds: list[int] | None = None,
    sample_stats: Mapping[str, torch.Tensor] | None = None,
    observed_data: Mapping | None = None,
    attrs: Mapping | None = None,
    batch_size: int = 256,
    prior: Mapping[str, torch.Tensor] | None = None,
):
    """Package posterior draws with per-event log-likelihoods as ``arviz.InferenceData``.

    Args:
        problem: the inference problem the draws come from.
        draws: parameter name -> draws, shape (chains, draws_per_chain).
        method: sampler name recorded in the attributes (``"nuts"``, ``"svi"``).
        seeds: seeds used (one per chain for NUTS), recorded in the attributes.
        sample_stats: extra per-draw statistics, each shape (chains, draws_per_chain).
        observed_data: extra observed quantities (arrays or numbers) for the
            ``observed_data`` group, next to ``n_events``.
        attrs: extra attributes (numbers or text).
        batch_size: θ points per batched likelihood call.
        prior: draws from the priors for the ``prior`` group (name -> (chains', draws'),
            every parameter), e.g. from :func:`prior_draws`; None for no group.

    Returns:
        ``arviz.InferenceData`` with the groups listed in the module docstring.

    Raises:
        FlaggedEventsError: the likelihood flags events at the draws and
            ``problem.on_flagged`` is ``"error"`` (with ``"warn"``: a
            :class:`~invsim.infer.flags.FlaggedEventsWarning`).
    """
    import arviz as az

    names = problem.names
    if set(draws) != set(names):
        raise ValueError(f"draws: expected the parameters {list(names)}, got {sorted(draws)}")
    shape = tuple(draws[names[0]].shape)
    if len(shape) != 2 or any(tuple(draws[n].shape) != shape for n in names):
        raise ValueError("draws: expected every parameter of the same shape (chains, draws), "
                         f"got { {n: tuple(draws[n].shape) for n in names} }")
    flat = {n: draws[n].detach().reshape(-1) for n in names}
    ev_ll, poisson, counter, n_flag = _batched_event_ll(problem, flat, batch_size)
    flags = None if counter is None else counter.report(
        f"at one or more of {shape[0] * shape[1]} posterior draws", "the posterior")
    handle_flags(flags, problem.on_flagged, stacklevel=2)
    with torch.no_grad():
        lp = torch.cat([problem.log_prior({k: v[s:s + batch_size] for k, v in flat.items()})
                        for s in range(0, shape[0] * shape[1], batch_size)])
    lp = lp + ev_ll.sum(-1) + poisson

    def np_(t: torch.Tensor):
        return t.detach().cpu().numpy()

    stats = {"lp": np_(lp.reshape(shape))}
    if problem.extended:
        stats["log_poisson"] = np_(poisson.reshape(shape))
    if n_flag is not None:
        stats["n_flagged"] = np_(n_flag.reshape(shape))
    for k, v in (sample_stats or {}).items():
        v = torch.as_tensor(v)
        if tuple(v.shape) != shape:
            raise ValueError(f"sample_stats[{k!r}]: expected shape {shape}, got {tuple(v.shape)}")
        stats[k] = np_(v)
    observed = {"n_events": np_(torch.tensor([problem.n_events]))}
    for k, v in (observed_data or {}).items():
        observed[k] = np_(torch.as_tensor(v))
    info = {
        "process": problem.process, "method": method, "n_events": int(problem.n_events),
        "luminosity_pb": -1.0 if problem.luminosity is None else float(problem.luminosity),
        "extended_likelihood": int(problem.extended), "parameter_names": ",".join(names),
        "priors": "; ".join(f"{n}: {p!r}" for n, p in problem.priors.items()),
        "seeds": [int(s) for s in (seeds or [])], **versions(),
        **({} if flags is None else flags.to_attrs()), **dict(attrs or {}),
    }
    if prior is not None:
        if set(prior) != set(names):
            raise ValueError(f"prior: expected the parameters {list(names)}, got {sorted(prior)}")
        pshape = tuple(prior[names[0]].shape)
        if len(pshape) != 2 or any(tuple(prior[n].shape) != pshape for n in names):
            raise ValueError("prior: expected every parameter of the same shape (chains, "
                             f"draws), got { {n: tuple(prior[n].shape) for n in names} }")
    return az.from_dict(
        posterior={n: np_(draws[n]) for n in names},
        prior=None if prior is None else {n: np_(prior[n]) for n in names},
        sample_stats=stats,
        log_likelihood={"events": np_(ev_ll.reshape(*shape, -1))},
        observed_data=observed,
        dims={"events": ["event"], "n_events": ["n_events_dim"]},
        attrs=info,
    )


def save_inference(idata, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write InferenceData to a NetCDF file, atomically.

    Args:
        idata: the ``arviz.InferenceData``.
        path: target ``.nc`` file.
        overwrite: replace an existing file; without it an existing file is an error.

    Returns:
        The path written. Without a root attribute ``provenance`` (JSON text; ``invsim
        posterior`` writes the full record), a minimal
        :func:`forward.provenance.provenance` record (versions, command line, time) is
        added to ``idata.attrs`` first.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False.
        TypeError: ``idata`` is not InferenceData.
    """
    import arviz as az

    if not isinstance(idata, az.InferenceData):
        raise TypeError(f"idata: expected arviz.InferenceData, got {type(idata).__name__}")
    if "provenance" not in idata.attrs:
        import json

        from forward.provenance import provenance

        idata.attrs["provenance"] = json.dumps(provenance())
    path = Path(path)
    with atomic_target(path, overwrite, suffix=".nc") as tmp:
        idata.to_netcdf(str(tmp))
    return path


def load_inference(path: str | os.PathLike):
    """Read InferenceData written by :func:`save_inference`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file has no ``posterior`` group.
    """
    import arviz as az

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: {str(path)!r} does not exist")
    try:
        idata = az.from_netcdf(str(path))
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(f"path: {str(path)!r} is not a readable NetCDF posterior file "
                         f"({type(err).__name__}: {str(err).splitlines()[0][:120]})") from err
    if "posterior" not in idata.groups():
        raise ValueError(f"{str(path)!r}: no posterior group; not an invsim posterior file")
    return idata
