"""Upper limits of the inference loops' counts, checked up front (API and CLI alike).

Each NUTS draw or SVI step costs at least one likelihood evaluation over all events, so
beyond these counts a run cannot finish (10^7 steps at 1 ms each is about 3 hours; the
limits leave room for fast likelihoods and refuse typos such as ``--steps 1e23``).
"""

from __future__ import annotations

__all__ = ["MAX_CHAINS", "MAX_DRAWS", "MAX_STEPS"]

#: largest ``steps`` of :func:`invsim.infer.fit_svi` (``invsim posterior --steps``)
MAX_STEPS = 10_000_000
#: largest ``num_samples`` and ``warmup`` per chain (``--samples``, ``--warmup``)
MAX_DRAWS = 10_000_000
#: largest number of chains (``--chains``)
MAX_CHAINS = 1024
