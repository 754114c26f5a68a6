"""Module ``__getattr__`` for old import paths that moved (one release of warnings)."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Mapping

__all__ = ["moved_attributes"]


def moved_attributes(old: str, new: Mapping[str, str]):
    """A module ``__getattr__`` forwarding moved names with a ``FutureWarning``.

    Args:
        old: the old module's name (``__name__`` of the shim).
        new: attribute name -> the module it now lives in, or ``"module:NewName"`` when
            it was renamed too.

    Returns:
        A function to assign to the shim's ``__getattr__``.
    """

    def __getattr__(name: str):
        target = new.get(name)
        if target is None:
            raise AttributeError(f"module {old!r} has no attribute {name!r}")
        module, _, new_name = target.partition(":")
        new_name = new_name or name
        warnings.warn(f"{old}.{name} moved to {module}.{new_name}; import it from there "
                      f"(the old path will be removed in the next release)", FutureWarning,
                      stacklevel=2)
        return getattr(importlib.import_module(module), new_name)

    return __getattr__
