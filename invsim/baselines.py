"""Amortised baseline: sbi neural posterior estimation on whole event sets, and comparisons.

:func:`train_npe` trains sbi's NPE with a zuko neural spline flow
(``posterior_nn(model="zuko_nsf")``) on simulated (θ, event set) pairs, embedding each
event set with a permutation-invariant DeepSets network (sbi's
``PermutationInvariantEmbedding``: a per-event MLP, mean-pooled, then an MLP). The
result draws posterior samples for any observed event set without re-running inference,
to be compared with the ML-MEM posterior by :func:`comparison_table`: interval widths,
bias against θ_true, and width relative to a reference (e.g. the true-likelihood
posterior). sbi works in float32; draws are returned as float64.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch

from forward._validation import check_finite, check_memory
from forward.seeding import seeded_init
from invsim.calibration import (
    _check_callables,
    _check_count,
    _check_priors,
    posterior_draws,
    sample_priors,
)

__all__ = ["NPEBaseline", "comparison_table", "format_table", "set_embedding", "train_npe"]



class _SilentTracker:
    """An sbi experiment tracker that records nothing (no files in the working folder)."""

    log_dir = None

    def log_metric(self, name, value, step=None) -> None:
        pass

    def log_metrics(self, metrics, step=None) -> None:
        pass

    def log_params(self, params) -> None:
        pass

    def add_figure(self, name, figure, step=None) -> None:
        pass

    def flush(self) -> None:
        pass

def set_embedding(event_dim: int, *, hidden: int = 64, output_dim: int = 16) -> torch.nn.Module:
    """DeepSets embedding of an event set: per-event MLP, mean over events, MLP.

    Args:
        event_dim: features per event d.
        hidden: width of the per-event and pooled MLPs.
        output_dim: size of the set summary.

    Returns:
        A module mapping (batch, n_events, d) to (batch, output_dim).
    """
    from sbi.neural_nets.embedding_nets import PermutationInvariantEmbedding

    for name, v in (("event_dim", event_dim), ("hidden", hidden), ("output_dim", output_dim)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name}: expected an int >= 1, got {v!r}")
    trial = torch.nn.Sequential(
        torch.nn.Linear(event_dim, hidden), torch.nn.ReLU(),
        torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
    )
    return PermutationInvariantEmbedding(trial, hidden, aggregation_fn="mean",
                                         num_hiddens=hidden, num_layers=2,
                                         output_dim=output_dim)


def _as_events(name: str, x, event_dim: int | None = None) -> torch.Tensor:
    x = torch.as_tensor(x)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or (event_dim is not None and x.shape[1] != event_dim):
        d = "d" if event_dim is None else event_dim
        raise ValueError(f"{name}: expected an event set of shape (n_events,) or (n_events, "
                         f"{d}), got {tuple(x.shape)}")
    check_finite(name, x)
    return x.to(torch.float32)


def _sbi_prior(priors: Mapping[str, torch.distributions.Distribution]):
    from sbi.utils import MultipleIndependent

    cols = []
    for name, p in priors.items():
        try:
            args = {k: p.__dict__[k].detach().to("cpu", torch.float32).reshape(1)
                    for k in p.arg_constraints if k in p.__dict__}
            cols.append(type(p)(**args))
        except (TypeError, KeyError, ValueError) as err:
            raise TypeError(f"priors[{name!r}]: cannot convert {type(p).__name__} to float32 "
                            f"for sbi ({err}); use a Uniform, Normal or LogNormal prior") from None
    if len(cols) == 1:
        return torch.distributions.Independent(cols[0], 1)
    return MultipleIndependent(cols)


@dataclass
class NPEBaseline:
    """A trained neural posterior estimator over named parameters.

    Attributes:
        names: parameter names (order of the flow's dimensions).
        posterior: sbi ``DirectPosterior``.
        event_dim: features per event the embedding expects.
        n_simulations: training simulations.
    """

    names: tuple[str, ...]
    posterior: object
    event_dim: int
    n_simulations: int

    def sample(self, events, num_samples: int = 2000, *, seed: int = 0) -> dict:
        """Posterior draws for an observed event set.

        Args:
            events: shape (n_events,) or (n_events, event_dim).
            num_samples: draws.
            seed: seeds torch's global generator inside ``fork_rng`` (sbi samples from it).

        Returns:
            name -> draws, shape (num_samples,) float64.
        """
        x = _as_events("events", events, self.event_dim)
        with seeded_init(seed):
            z = self.posterior.sample((num_samples,), x=x[None], show_progress_bars=False)
        return {n: z[:, i].to(torch.float64) for i, n in enumerate(self.names)}

    def __call__(self, events, seed: int) -> dict:
        """``infer(data, seed)`` form for :mod:`invsim.calibration`."""
        return self.sample(events, seed=seed)


def train_npe(
    priors: Mapping[str, torch.distributions.Distribution],
    simulate: Callable,
    *,
    n_simulations: int = 2000,
    seed: int = 0,
    embedding: torch.nn.Module | None = None,
    density_estimator: str = "zuko_nsf",
    max_epochs: int = 200,
    batch_size: int = 128,
    progress: bool = False,
) -> NPEBaseline:
    """Train sbi NPE on event sets simulated from the priors.

    θ_k is drawn from the priors by inverse CDF with a generator seeded by ``seed``;
    ``simulate(θ_k, generator)`` returns an event set of fixed shape (n_events,) or
    (n_events, d). Network initialisation and training run under
    ``torch.random.fork_rng`` seeded with ``seed`` (the caller's RNG state is kept).

    Args:
        priors: name -> univariate distribution (Uniform, Normal, LogNormal).
        simulate: ``simulate(theta, generator) -> events``.
        n_simulations: training pairs.
        seed: seed of the simulations and the training.
        embedding: event-set embedding; default :func:`set_embedding`.
        density_estimator: ``posterior_nn`` model name, a zuko flow by default.
        max_epochs: cap on training epochs (early stopping on a validation split).
        batch_size: training batch size.
        progress: show sbi's progress output.

    Returns:
        :class:`NPEBaseline`.
    """
    from sbi.inference import NPE
    from sbi.neural_nets import posterior_nn


    if isinstance(n_simulations, bool) or not isinstance(n_simulations, int) \
            or n_simulations < 20:
        raise ValueError(f"n_simulations: expected an int >= 20, got {n_simulations!r}")
    _check_priors(priors)
    _check_callables(simulate=simulate)
    _check_count("max_epochs", max_epochs, 1)
    _check_count("batch_size", batch_size, 1)
    _check_count("seed", seed, 0)
    check_memory("n_simulations", n_simulations, 8 * (len(priors) + 1000),
                 what="simulations")
    if embedding is not None and not isinstance(embedding, torch.nn.Module):
        raise TypeError(f"embedding: expected a torch.nn.Module or None, got "
                        f"{type(embedding).__name__}")
    from sbi.neural_nets.factory import model_builders

    if density_estimator not in model_builders:
        raise ValueError(f"density_estimator: expected one of {sorted(model_builders)}, got "
                         f"{density_estimator!r}")
    names = tuple(priors)
    prior = _sbi_prior(priors)
    gen = torch.Generator().manual_seed(seed)
    thetas = sample_priors(priors, n_simulations, gen)
    xs = []
    for k in range(n_simulations):
        xs.append(_as_events("simulate(...)", simulate(
            {n: thetas[k, i] for i, n in enumerate(names)}, gen)))
    shapes = {tuple(x.shape) for x in xs}
    if len(shapes) != 1:
        raise ValueError(f"simulate(...): expected event sets of one fixed shape, got {shapes}")
    x = torch.stack(xs)
    event_dim = x.shape[-1]
    with seeded_init(seed):
        emb = set_embedding(event_dim) if embedding is None else embedding
        builder = posterior_nn(model=density_estimator, embedding_net=emb, z_score_x="none")
        # a silent tracker: sbi's default writes TensorBoard logs into ./sbi-logs
        npe = NPE(prior=prior, density_estimator=builder, show_progress_bars=progress,
                  tracker=_SilentTracker())
        npe.append_simulations(thetas.float(), x)
        estimator = npe.train(training_batch_size=batch_size, max_num_epochs=max_epochs,
                              show_train_summary=False)
        posterior = npe.build_posterior(estimator)
    return NPEBaseline(names, posterior, int(event_dim), n_simulations)


def comparison_table(
    posteriors: Mapping[str, object],
    theta_true: Mapping[str, float],
    *,
    reference_widths: Mapping[str, float] | None = None,
    level: float = 0.68,
) -> list[dict]:
    """Central-interval widths and biases of several posteriors for the same data.

    Args:
        posteriors: method name (e.g. ``"ML-MEM"``, ``"NPE"``) -> draws (mapping name ->
            (s,) tensor, or InferenceData).
        theta_true: parameter name -> true value (the bias is mean - true).
        reference_widths: parameter name -> width of the reference interval at the same
            level (e.g. from the true likelihood); adds ``width_ratio``.
        level: credibility level of the central interval.

    Returns:
        One row per (method, parameter): dicts with keys ``method, parameter, mean, sd,
        low, high, width, bias, bias_over_sd`` and ``width_ratio`` (NaN without a
        reference).
    """
    if not 0 < float(level) < 1:
        raise ValueError(f"level: expected a value in (0, 1), got {level!r}")
    if not isinstance(posteriors, Mapping) or not posteriors:
        raise TypeError("posteriors: expected a non-empty mapping method -> draws")
    names = tuple(theta_true)
    refs = dict(reference_widths or {})
    unknown = sorted(set(refs) - set(names))
    if unknown:
        raise ValueError(f"reference_widths: unknown parameter(s) {unknown}; expected among "
                         f"{list(names)}")
    q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)
    rows = []
    for method, result in posteriors.items():
        draws = posterior_draws(result, names)
        for n in names:
            d = draws[n]
            lo, hi = (float(v) for v in torch.quantile(d, q))
            mean, sd = float(d.mean()), float(d.std())
            rows.append({
                "method": str(method), "parameter": n, "mean": mean, "sd": sd, "low": lo,
                "high": hi, "width": hi - lo, "bias": mean - float(theta_true[n]),
                "bias_over_sd": (mean - float(theta_true[n])) / sd,
                "width_ratio": (hi - lo) / refs[n] if n in refs else float("nan"),
            })
    return rows


def format_table(rows: Sequence[dict]) -> str:
    """Plain-text table of :func:`comparison_table` rows."""
    head = f"{'method':<12} {'parameter':<10} {'mean':>11} {'width':>11} {'bias':>11} " \
           f"{'bias/sd':>8} {'width/ref':>9}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['method']:<12} {r['parameter']:<10} {r['mean']:>11.5g} "
                     f"{r['width']:>11.5g} {r['bias']:>11.3g} {r['bias_over_sd']:>8.2f} "
                     f"{r['width_ratio']:>9.3f}")
    return "\n".join(lines)
