"""invsim: probabilistic inference by inverse simulation at the LHC.

Conditional flows, cINN unfolding, transfer functions, the ML matrix-element-method
likelihood, likelihood scans and Pyro posteriors returned as ArviZ InferenceData.
The forward simulation lives in the sister package :mod:`forward`.
"""

from forward import __version__

CITATION = """@software{invsim,
  title   = {invsim: probabilistic inference by inverse simulation at the LHC},
  author  = {{The invsim developers}},
  version = {%s},
  year    = {2026},
}""" % __version__

__all__ = ["CITATION", "__version__"]
