"""Deprecated alias of :mod:`invsim.cli.posterior` (goes in the next release).

Importing a name from here still works and emits a ``FutureWarning`` naming its new path.
"""

from invsim._moved import moved_attributes

__all__ = ["load_factory", "posterior"]  # noqa: F822 (provided by __getattr__)

__getattr__ = moved_attributes(__name__, {
    "posterior": "invsim.cli.posterior",
    "load_factory": "invsim.cli",
})
