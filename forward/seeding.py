"""Network initialisation from a seed or a ``torch.Generator``: one rule for the package.

torch's layers (``nn.Linear``, zuko's flows, ...) draw their initial weights from
torch's *global* random state, so a network built by a stochastic API would depend on
whatever ran before in the process. Every API that builds networks does it inside
:func:`seeded_init`, which forks the global state (restored on exit, so the caller's
stream is untouched) and seeds it from the API's ``seed`` or ``generator``::

    with seeded_init(generator):
        flow = CubeFlow(...)          # same weights in every process for that generator
"""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Iterator

import torch

__all__ = ["seed_from", "seeded_init"]


def seed_from(generator: torch.Generator) -> int:
    """One 62-bit seed drawn from ``generator`` (advancing it), for a derived stream."""
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator: expected a torch.Generator, got {type(generator).__name__}")
    return int(torch.randint(0, 2**62, (), generator=generator, device=generator.device))


@contextlib.contextmanager
def seeded_init(source, device=None) -> Iterator[None]:
    """Run the body with torch's global random state forked and seeded from ``source``.

    Args:
        source: an int seed >= 0 (used as is) or a ``torch.Generator`` (one seed is drawn
            from it, see :func:`seed_from`, so the generator advances by one draw).
        device: device the networks are built on; for a CUDA device its random state
            is forked and seeded too (CPU's always is).

    Raises:
        TypeError, ValueError: ``source`` is neither a generator nor an int >= 0.
    """
    if isinstance(source, torch.Generator):
        seed = seed_from(source)
    elif isinstance(source, numbers.Integral) and not isinstance(source, bool) and source >= 0:
        seed = int(source)
    elif isinstance(source, numbers.Integral) and not isinstance(source, bool):
        raise ValueError(f"seed: expected an int >= 0, got {source!r}")
    else:
        raise TypeError(f"seed: expected an int >= 0 or a torch.Generator, got "
                        f"{type(source).__name__}")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    fork = [dev] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=fork):
        torch.manual_seed(seed)
        yield
