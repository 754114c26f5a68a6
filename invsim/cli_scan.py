"""Deprecated alias of :mod:`invsim.cli.scan` (goes in the next release).

Importing a name from here still works and emits a ``FutureWarning`` naming its new path.
"""

from invsim._moved import moved_attributes

__all__ = ["load_factory", "parse_grid", "parse_range", "scan_command"]  # noqa: F822 (provided by __getattr__)

__getattr__ = moved_attributes(__name__, {
    "scan_command": "invsim.cli.scan",
    "load_factory": "invsim.cli",
    "parse_grid": "invsim.cli",
    "parse_range": "invsim.cli",
})
