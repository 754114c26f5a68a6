"""Progress bars that stay out of logs: one switch for every tqdm bar of the package.

A bar is shown only when all of these hold:

* the caller asked for one (``progress=True``);
* the environment variable ``TQDM_DISABLE`` is unset, empty, ``0`` or ``false``;
* the mode set by :func:`progress_mode` allows it: ``True`` (``invsim --verbose``)
  forces bars on, ``False`` (``invsim --quiet``) forces them off, ``None`` (the
  default) shows them only when standard error is a terminal, so ``2> log`` gets no
  carriage-return updates.

Every progress bar of :mod:`forward` and :mod:`invsim` is made by :func:`progress_bar`
(or asks :func:`progress_enabled`, e.g. Pyro's NUTS bar).
"""

from __future__ import annotations

import contextlib
import os
import sys

__all__ = ["progress_bar", "progress_enabled", "progress_mode"]

#: None: bars only on a terminal; True: always (unless TQDM_DISABLE); False: never
_MODE: bool | None = None


def _env_disabled() -> bool:
    value = os.environ.get("TQDM_DISABLE", "").strip().lower()
    return value not in ("", "0", "false", "no", "off")


def progress_enabled(progress: bool | None = True, stream=None) -> bool:
    """Whether a progress bar should be drawn (see the module docstring).

    Args:
        progress: the caller's request; False never shows a bar, None and True defer to
            the environment and the mode.
        stream: the stream the bar writes to (default ``sys.stderr``).

    Returns:
        True when the bar should be shown.
    """
    if progress is False or _env_disabled() or _MODE is False:
        return False
    if _MODE is True:
        return True
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except (ValueError, OSError):  # a closed stream
        return False


def progress_bar(iterable=None, *, progress: bool | None = True, **kwargs):
    """A ``tqdm.auto.tqdm`` bar, disabled unless :func:`progress_enabled` says otherwise.

    Args:
        iterable: what to iterate over (None for a manual bar with ``total=``).
        progress: the caller's request (a function's ``progress`` argument).
        **kwargs: passed to tqdm (``total``, ``desc``, ``unit``, ...); ``disable`` is
            not accepted, use ``progress``.

    Returns:
        The tqdm object (a no-op bar when disabled).

    Raises:
        TypeError: ``disable`` given.
    """
    from tqdm.auto import tqdm

    if "disable" in kwargs:
        raise TypeError("disable: not accepted by progress_bar; pass progress=False instead")
    return tqdm(iterable, disable=not progress_enabled(progress, kwargs.get("file")),
                **kwargs)


@contextlib.contextmanager
def progress_mode(mode: bool | None):
    """Set the process-wide mode within a ``with`` block (the CLI's ``--quiet/--verbose``).

    Args:
        mode: True (always show, unless ``TQDM_DISABLE``), False (never), None (only on
            a terminal).

    Raises:
        TypeError: ``mode`` is not a bool or None.
    """
    global _MODE
    if mode is not None and not isinstance(mode, bool):
        raise TypeError(f"mode: expected True, False or None, got {mode!r}")
    old, _MODE = _MODE, mode
    try:
        yield
    finally:
        _MODE = old
