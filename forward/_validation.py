"""Input checks shared by every public function: clear errors naming the argument.

These raise ``TypeError``/``ValueError`` (never ``assert``) with the argument's name,
what was expected and what was given.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Sequence
from pathlib import Path

import torch

__all__ = [
    "as_float_array",
    "as_tensor",
    "check_finite",
    "check_choice",
    "check_count",
    "check_memory",
    "check_path",
    "check_process",
    "check_floating",
    "check_event_momenta",
    "check_last_dim",
    "check_range",
    "device_memory_bytes",
    "make_generator",
    "resolve_device",
]

#: device types the package runs on
DEVICE_TYPES = ("cpu", "cuda", "mps")


def as_float_array(name: str, values, ndim: int):
    """A finite float64 numpy array of ``ndim`` dimensions from a tensor or sequence.

    Args:
        name: argument name used in error messages.
        values: a tensor (detached, moved to the CPU) or an array-like of numbers.
        ndim: the number of dimensions required.

    Returns:
        ``numpy.ndarray`` of float64.

    Raises:
        TypeError: not numbers; ValueError: wrong dimensions or non-finite values.
    """
    import numpy as np

    if isinstance(values, torch.Tensor):
        values = values.detach().to("cpu", torch.float64).numpy()
    try:
        v = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name}: expected an array of numbers, got "
                        f"{type(values).__name__}") from exc
    if v.ndim != ndim:
        want = "(" + ", ".join("nkl"[:ndim]) + ("," if ndim == 1 else "") + ")"
        raise ValueError(f"{name}: expected shape {want} (a {ndim}-D array), got shape "
                         f"{v.shape}")
    if not np.isfinite(v).all():
        raise ValueError(f"{name}: {int((~np.isfinite(v)).sum())} of {v.size} values are "
                         "not finite")
    return v


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


def check_path(path, name: str = "path") -> Path:
    """``path`` as a :class:`~pathlib.Path`; ``TypeError`` naming ``name`` unless it is a
    non-empty str or ``os.PathLike`` (pathlib's own message names no argument)."""
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise TypeError(f"{name}: expected a file path (str or os.PathLike), got {path!r}")
    return Path(path)


def check_process(process, name: str = "process"):
    """Return ``process``, raising ``TypeError`` unless it behaves as a
    :class:`~forward.processes.Process` (``params`` and ``phase_space`` methods)."""
    if not (callable(getattr(process, "params", None))
            and callable(getattr(process, "phase_space", None))):
        raise TypeError(f"{name}: expected a forward.processes.Process (e.g. "
                        f"get_process('drell-yan')), got {type(process).__name__}")
    return process


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


def check_count(name: str, n, minimum: int = 1, maximum: int | None = None) -> int:
    """Return ``n`` as an int, raising unless it is an integer in ``[minimum, maximum]``.

    Python and numpy integers are accepted; bools, floats (even ``1e6``) and strings are
    not, so a count never silently loses digits.

    Args:
        name: argument name used in the message.
        n: the count.
        minimum: smallest allowed value.
        maximum: largest allowed value; None for no upper limit.

    Raises:
        TypeError: ``n`` is not an integer.
        ValueError: ``n`` is outside the range.
    """
    top = "" if maximum is None else f" and <= {maximum}"
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"{name}: expected an integer >= {minimum}{top}, got {n!r} "
                        f"({type(n).__name__})")
    n = int(n)
    if n < minimum or (maximum is not None and n > maximum):
        raise ValueError(f"{name}: expected an integer >= {minimum}{top}, got {n}")
    return n


def resolve_device(device, argument: str = "device") -> torch.device:
    """The one device check of the package: a usable ``torch.device`` or a clear error.

    Args:
        device: None (CPU), a ``torch.device`` or a string such as ``"cpu"``,
            ``"cuda"``, ``"cuda:1"``, ``"mps"``.
        argument: name of the argument or option, used in the messages (e.g.
            ``"--device"``).

    Returns:
        The device, with its index filled in for CUDA (``"cuda"`` -> ``cuda:0``).

    Raises:
        TypeError: ``device`` is neither None, a string nor a ``torch.device``.
        ValueError: an unknown device string, a device type the package does not run
            on, CUDA (or MPS) that this machine does not have, or a CUDA index beyond
            the GPUs present.
    """
    expected = "expected 'cpu', 'cuda', 'cuda:N' or 'mps'"
    if device is None:
        return torch.device("cpu")
    if isinstance(device, str):
        try:
            dev = torch.device(device.strip())
        except (RuntimeError, ValueError):
            raise ValueError(f"{argument}: unknown device {device!r}; {expected}") from None
    elif isinstance(device, torch.device):
        dev = device
    else:
        raise TypeError(f"{argument}: {expected} (a string or torch.device), got "
                        f"{type(device).__name__}")
    if dev.type not in DEVICE_TYPES:
        raise ValueError(f"{argument}: device type {dev.type!r} is not supported; {expected}")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{argument}: {str(device)!r} needs CUDA, which is not available "
                             "on this machine (torch.cuda.is_available() is False); use 'cpu'")
        count = torch.cuda.device_count()
        index = torch.cuda.current_device() if dev.index is None else dev.index
        if index >= count:
            raise ValueError(f"{argument}: {str(device)!r} names GPU {index}, but this machine "
                             f"has {count} (cuda:0 to cuda:{count - 1})")
        return torch.device("cuda", index)
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{argument}: {str(device)!r} needs Apple MPS, which is not "
                         "available on this machine; use 'cpu'")
    return dev


def device_memory_bytes(device=None) -> int:
    """Total memory of ``device`` in bytes: the GPU's for CUDA, the machine's RAM otherwise."""
    dev = resolve_device(device)
    if dev.type == "cuda":
        return int(torch.cuda.get_device_properties(dev).total_memory)
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # not POSIX: assume 16 GiB
        return 16 * 2**30


def _gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.3g} GiB"


def check_memory(name: str, n: int, bytes_per_item: float, *, device=None,
                 what: str = "items") -> None:
    """Refuse up front a size whose memory cannot fit on the device.

    Args:
        name: argument (or option) holding the size, for the message.
        n: the size (number of events, points, ...).
        bytes_per_item: estimated bytes held per item at the peak.
        device: where they are held (default CPU).
        what: what is counted, for the message.

    Raises:
        ValueError: ``n * bytes_per_item`` exceeds the device's total memory; the
            message gives the estimate and the largest size that fits.
    """
    need = float(n) * float(bytes_per_item)
    have = device_memory_bytes(device)
    if need > have:
        fits = int(have // bytes_per_item)
        raise ValueError(
            f"{name}: {n} {what} need about {_gib(need)} of memory ({bytes_per_item:.0f} "
            f"bytes each), more than the {_gib(have)} of {resolve_device(device)}; use at "
            f"most {fits} (or a smaller batch, or split the run)"
        )
