"""invsim: probabilistic inference by inverse simulation at the LHC.

Conditional flows, cINN unfolding, transfer functions, the ML matrix-element-method
likelihood, likelihood scans and Pyro posteriors returned as ArviZ InferenceData.
The forward simulation lives in the sister package :mod:`forward`.
"""

from forward import __version__

CITATION = f"""@software{{invsim,
  title   = {{invsim: probabilistic inference by inverse simulation at the LHC}},
  author  = {{{{The invsim developers}}}},
  version = {{{__version__}}},
  year    = {{2026}},
}}"""

__all__ = ["CITATION", "__version__"]
