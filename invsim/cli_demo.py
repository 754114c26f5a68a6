"""Deprecated alias of :mod:`invsim.cli.demo` (goes in the next release).

Importing a name from here still works and emits a ``FutureWarning`` naming its new path.
"""

from invsim._moved import moved_attributes

__all__ = ["demo", "run_demo"]  # noqa: F822 (provided by __getattr__)

__getattr__ = moved_attributes(__name__, {
    "demo": "invsim.cli.demo",
    "run_demo": "invsim.demo",
})
