"""Posterior inference over process parameters from a per-event likelihood.

* :class:`EventLikelihood`: the protocol a likelihood follows (the ML-MEM satisfies it).
* :func:`build_priors`, :func:`parse_prior`: named priors, uniform over the declared
  ranges by default, overridable with any univariate Pyro distribution.
* :class:`InferenceProblem`: priors x likelihood [x Poisson term], also as a Pyro model.
* :func:`sample_nuts` (Pyro NUTS, several chains started near the mode found by
  :func:`find_mode`; r̂/ESS/divergence checks with a :class:`ConvergenceWarning`) and
  :func:`fit_svi` (full-rank Gaussian variational fit) return ``arviz.InferenceData``.
* :func:`save_inference` / :func:`load_inference`: NetCDF, never overwriting by accident.
* :func:`profile_likelihood`: a 1D profile-likelihood interval for comparison (a thin
  wrapper of :func:`invsim.scan.scan`).
* :mod:`invsim.infer.flags`: events the likelihood flags (``on_flagged``,
  :class:`FlaggedEventsWarning`, :class:`FlaggedEventsError`).

Example::

    priors = build_priors(process, likelihood.parameter_names)
    problem = InferenceProblem(likelihood, priors, luminosity=140e3, process="drell-yan")
    idata = sample_nuts(problem, chains=4, num_samples=1000, warmup=1000, seed=1)
    az.summary(idata)            # r_hat, ess_bulk, ess_tail
    az.loo(idata)                # per-event log-likelihood group
    save_inference(idata, "posterior.nc")
"""

from invsim.infer.flags import FlaggedEventsError, FlaggedEventsWarning
from invsim.infer.init import ModeResult, find_mode, initial_points
from invsim.infer.likelihood import EventLikelihood, check_likelihood
from invsim.infer.model import InferenceProblem
from invsim.infer.nuts import ConvergenceWarning, convergence_diagnostics, sample_nuts
from invsim.infer.priors import build_priors, declared_parameters, parse_prior
from invsim.infer.profile import ProfileResult, profile_likelihood
from invsim.infer.results import load_inference, save_inference, to_inference_data
from invsim.infer.variational import GaussianGuide, fit_svi

__all__ = [
    "ConvergenceWarning",
    "EventLikelihood",
    "FlaggedEventsError",
    "FlaggedEventsWarning",
    "GaussianGuide",
    "InferenceProblem",
    "ModeResult",
    "ProfileResult",
    "build_priors",
    "check_likelihood",
    "convergence_diagnostics",
    "declared_parameters",
    "find_mode",
    "fit_svi",
    "initial_points",
    "load_inference",
    "parse_prior",
    "profile_likelihood",
    "sample_nuts",
    "save_inference",
    "to_inference_data",
]
