"""Named priors on process parameters: uniform over the declared range unless overridden.

Every prior is a univariate Pyro (torch) distribution; its support must lie inside the
parameter's declared range ``[low, high]`` (the likelihood may be undefined outside).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pyro.distributions as dist
import torch

from forward._validation import resolve_device
from forward.processes.base import Parameter, Process

__all__ = ["build_priors", "declared_parameters", "parse_prior", "support_bounds"]

#: prior families accepted by :func:`parse_prior`, with their argument names
PRIOR_FAMILIES = {
    "uniform": ("low", "high"),
    "normal": ("loc", "scale"),
    "lognormal": ("loc", "scale"),
}


def declared_parameters(source) -> dict[str, Parameter]:
    """Normalise a parameter declaration to ``{name: Parameter}``.

    Args:
        source: a :class:`~forward.processes.Process` (its ``parameters``), a mapping
            name -> :class:`Parameter`, or a sequence of :class:`Parameter`.

    Raises:
        TypeError: anything else, or entries that are not ``Parameter``.
    """
    if isinstance(source, Process):
        source = source.parameters
    if isinstance(source, Mapping):
        items = list(source.values())
    elif isinstance(source, Sequence) and not isinstance(source, str):
        items = list(source)
    else:
        raise TypeError(
            "parameters: expected a Process, a mapping name -> Parameter or a list of "
            f"Parameter, got {type(source).__name__}"
        )
    for p in items:
        if not isinstance(p, Parameter):
            raise TypeError(f"parameters: expected Parameter entries, got {type(p).__name__}")
    return {p.name: p for p in items}


def support_bounds(prior: torch.distributions.Distribution) -> tuple[float, float]:
    """(lower, upper) bound of a univariate distribution's support (±inf if open-ended)."""
    support = prior.support
    while hasattr(support, "base_constraint"):  # independent(...) wrappers
        support = support.base_constraint
    lo = getattr(support, "lower_bound", -math.inf)
    hi = getattr(support, "upper_bound", math.inf)
    lo = float(torch.as_tensor(lo).min()) if not isinstance(lo, float) else lo
    hi = float(torch.as_tensor(hi).max()) if not isinstance(hi, float) else hi
    return lo, hi


def _check_prior(name: str, prior, par: Parameter) -> None:
    if not isinstance(prior, torch.distributions.Distribution):
        raise TypeError(
            f"priors[{name!r}]: expected a pyro/torch Distribution, got {type(prior).__name__}"
        )
    if tuple(prior.batch_shape) != () or tuple(prior.event_shape) != ():
        raise ValueError(
            f"priors[{name!r}]: expected a univariate distribution (batch and event shape ()), "
            f"got batch_shape {tuple(prior.batch_shape)}, event_shape {tuple(prior.event_shape)}"
        )
    lo, hi = support_bounds(prior)
    if lo < par.low or hi > par.high:
        unit = f" {par.unit}" if par.unit else ""
        raise ValueError(
            f"priors[{name!r}]: support [{lo:g}, {hi:g}] reaches outside the declared range "
            f"[{par.low:g}, {par.high:g}]{unit} of parameter {name!r}; choose a prior inside it"
        )


def build_priors(
    parameters,
    names: Sequence[str] | None = None,
    overrides: Mapping[str, torch.distributions.Distribution] | None = None,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> dict[str, torch.distributions.Distribution]:
    """Priors for the inferred parameters, in the order of ``names``.

    Args:
        parameters: declared parameters (see :func:`declared_parameters`).
        names: the parameters to infer (e.g. ``likelihood.parameter_names``); default all.
        overrides: name -> univariate Pyro distribution replacing the default
            ``Uniform(low, high)``; its support must lie inside ``[low, high]``.
        dtype, device: of the default uniform priors' bounds.

    Returns:
        name -> distribution.

    Raises:
        ValueError: unknown names in ``names`` or ``overrides`` (the message lists the
            declared ones), a default prior over an unbounded range, a prior reaching
            outside the declared range.
        TypeError: an override that is not a Distribution.
    """
    if device is not None:
        device = resolve_device(device)
    declared = declared_parameters(parameters)
    names = tuple(declared) if names is None else tuple(names)
    unknown = [n for n in names if n not in declared]
    if unknown:
        raise ValueError(f"names: unknown parameter(s) {unknown}; declared: {sorted(declared)}")
    overrides = dict(overrides or {})
    extra = sorted(set(overrides) - set(names))
    if extra:
        raise ValueError(
            f"priors: prior(s) given for {extra}, which are not inferred; inferred: {list(names)}"
        )
    out = {}
    for n in names:
        par = declared[n]
        if n in overrides:
            prior = overrides[n]
        else:
            if not (math.isfinite(par.low) and math.isfinite(par.high)):
                raise ValueError(
                    f"priors: parameter {n!r} has the unbounded range [{par.low}, {par.high}]; "
                    "give it an explicit prior"
                )
            kw = {"dtype": dtype, "device": device}
            prior = dist.Uniform(torch.tensor(par.low, **kw), torch.tensor(par.high, **kw))
        _check_prior(n, prior, par)
        out[n] = prior
    return out


def parse_prior(
    spec: str, *, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
) -> tuple[str, torch.distributions.Distribution]:
    """Parse ``"name=family:a,b"`` (e.g. ``"mzp=uniform:1500,2500"``) into a prior.

    Families: ``uniform:low,high``, ``normal:loc,scale``, ``lognormal:loc,scale``.

    Returns:
        (parameter name, distribution).

    Raises:
        ValueError: malformed text, an unknown family, wrong number of numbers, or
            invalid arguments (low >= high, scale <= 0).
    """
    if not isinstance(spec, str):
        raise TypeError(f"prior: expected text 'name=family:a,b', got {type(spec).__name__}")
    name, sep, rest = spec.partition("=")
    family, sep2, args = rest.partition(":")
    name, family = name.strip(), family.strip().lower()
    if not sep or not sep2 or not name.isidentifier():
        raise ValueError(f"prior: expected 'name=family:a,b' (e.g. 'mzp=uniform:1500,2500'), "
                         f"got {spec!r}")
    if family not in PRIOR_FAMILIES:
        raise ValueError(f"prior {spec!r}: unknown family {family!r}; expected one of "
                         f"{sorted(PRIOR_FAMILIES)}")
    try:
        values = [float(v) for v in args.split(",")]
    except ValueError:
        raise ValueError(f"prior {spec!r}: expected numbers after ':', got {args!r}") from None
    want = PRIOR_FAMILIES[family]
    if len(values) != len(want) or not all(math.isfinite(v) for v in values):
        raise ValueError(f"prior {spec!r}: {family} takes {len(want)} finite numbers "
                         f"{','.join(want)}, got {args!r}")
    device = resolve_device(device)
    a, b = (torch.tensor(v, dtype=dtype, device=device) for v in values)
    if family == "uniform":
        if not values[0] < values[1]:
            raise ValueError(f"prior {spec!r}: expected low < high, got {values}")
        return name, dist.Uniform(a, b)
    if not values[1] > 0:
        raise ValueError(f"prior {spec!r}: expected scale > 0, got {values[1]}")
    return name, (dist.Normal(a, b) if family == "normal" else dist.LogNormal(a, b))
