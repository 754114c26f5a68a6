"""Input checks shared by every public function: clear errors naming the argument.

These raise ``TypeError``/``ValueError`` (never ``assert``) with the argument's name,
what was expected and what was given.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch

__all__ = [
    "as_tensor",
    "check_finite",
    "check_choice",
    "check_floating",
    "check_event_momenta",
    "check_last_dim",
    "check_range",
    "make_generator",
]


def as_tensor(name: str, x, *, dtype: torch.dtype | None = None, device=None) -> torch.Tensor:
    """Convert ``x`` to a tensor, rejecting strings, None and non-numeric data.

    Args:
        name: argument name used in error messages.
        x: a tensor, a number or a (nested) sequence of numbers.
        dtype: dtype to convert to; default keeps a tensor's dtype or uses torch's default.
        device: device to move to; default keeps a tensor's device.

    Returns:
        A tensor with the same shape as ``x``.
    """
    if isinstance(x, torch.Tensor):
        if dtype is not None or device is not None:
            x = x.to(dtype=dtype or x.dtype, device=device or x.device)
        return x
    if x is None or isinstance(x, (str, bytes)):
        raise TypeError(f"{name}: expected a tensor or numbers, got {type(x).__name__}")
    try:
        return torch.as_tensor(x, dtype=dtype or torch.get_default_dtype(), device=device)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"{name}: expected a tensor or numbers, got {type(x).__name__}") from err


def check_floating(name: str, x: torch.Tensor) -> torch.Tensor:
    """Raise ``TypeError`` unless ``x`` is a floating-point tensor."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"{name}: expected a floating-point tensor (float32/float64), got {x.dtype}"
        )
    return x


def check_event_momenta(name: str, x: torch.Tensor, objects: str = "k") -> torch.Tensor:
    """Raise unless ``x`` is a floating tensor of per-event four-momenta, shape (n, k, 4).

    Args:
        name: argument name used in the message.
        x: the tensor to check.
        objects: letter naming the object axis in the message (``"k"``, ``"m"``, ...).
    """
    check_floating(name, x)
    if x.ndim != 3 or x.shape[-1] != 4:
        raise ValueError(
            f"{name}: expected shape (n, {objects}, 4) as (E, px, py, pz), got {tuple(x.shape)}"
        )
    return x


def check_last_dim(name: str, x: torch.Tensor, size: int, what: str = "") -> torch.Tensor:
    """Raise ``ValueError`` unless ``x.shape[-1] == size``."""
    if x.ndim == 0 or x.shape[-1] != size:
        hint = f" ({what})" if what else ""
        raise ValueError(f"{name}: expected shape (..., {size}){hint}, got {tuple(x.shape)}")
    return x


def check_finite(name: str, x: torch.Tensor) -> torch.Tensor:
    """Raise ``ValueError`` if ``x`` holds NaN or infinity, saying how many entries do."""
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        n_nan = int(torch.isnan(x).sum())
        n_inf = int(bad.sum()) - n_nan
        raise ValueError(f"{name}: {n_nan} NaN and {n_inf} infinite entries out of {x.numel()}")
    return x


def check_range(
    name: str,
    x: torch.Tensor | float,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """Raise ``ValueError`` unless every entry lies in the given interval.

    Args:
        name: argument name used in the message.
        x: tensor or number to check; NaN always fails.
        low, high: bounds.
        low_open, high_open: exclude the bound itself.
    """
    t = torch.as_tensor(x)
    lo_ok = t > low if low_open else t >= low
    hi_ok = t < high if high_open else t <= high
    ok = lo_ok & hi_ok
    if not bool(ok.all()):
        bad = t[~ok] if t.ndim else t
        lb = "(" if low_open else "["
        hb = ")" if high_open else "]"
        first = bad.flatten()[:3].tolist()
        raise ValueError(
            f"{name}: expected values in {lb}{low}, {high}{hb}, got {int((~ok).sum())} outside, "
            f"e.g. {first}"
        )


def check_choice(name: str, value, choices: Sequence) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name}: expected one of {list(choices)}, got {value!r}")


def make_generator(
    seed: int | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Generator:
    """The one seed -> ``torch.Generator`` rule of the package.

    * ``generator`` given: it is returned as is (checked: a ``torch.Generator`` on
      ``device``'s type when ``device`` is given);
    * ``seed`` an int >= 0: a new generator on ``device`` seeded with it (reproducible);
    * ``seed=None`` (and no generator): a new generator on ``device`` with a fresh
      **non-deterministic** seed (``Generator.seed()``: OS entropy), so two calls draw
      different numbers. Call sites that want another meaning of None (torch's global
      RNG, or a fixed default seed) must say so themselves, e.g.
      ``make_generator(0 if seed is None else seed)``.

    Args:
        seed: int >= 0 (Python or numpy integer), or None.
        generator: an existing generator; exclusive with ``seed``.
        device: device of the new generator (default CPU), and the device type an
            existing ``generator`` must have when given.

    Returns:
        A ``torch.Generator``.

    Raises:
        ValueError: both ``seed`` and ``generator`` given; a negative seed; a generator
            on another device type than ``device``.
        TypeError: a seed that is not an integer (bools refused), a generator that is not
            a ``torch.Generator``.
    """
    if seed is not None and generator is not None:
        raise ValueError("seed, generator: give at most one of them, not both")
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise TypeError(
                f"generator: expected a torch.Generator, got {type(generator).__name__}"
            )
        if device is not None and \
                torch.device(generator.device).type != torch.device(device).type:
            raise ValueError(
                f"generator: expected a generator on {device} (the inputs' device), "
                f"got one on {generator.device}"
            )
        return generator
    gen = torch.Generator(device=torch.device("cpu") if device is None else device)
    if seed is None:
        gen.seed()
        return gen
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed: expected an int >= 0 or None, got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed: expected an int >= 0 or None, got {seed!r}")
    gen.manual_seed(int(seed))
    return gen
