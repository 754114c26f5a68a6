"""Deprecated alias of :mod:`invsim.cli.xsec` (goes in the next release).

Importing a name from here still works and emits a ``FutureWarning`` naming its new path.
"""

from invsim._moved import moved_attributes

__all__ = ["parse_assignments", "xsec"]  # noqa: F822 (provided by __getattr__)

__getattr__ = moved_attributes(__name__, {
    "xsec": "invsim.cli.xsec",
    "parse_assignments": "invsim.cli",
})
