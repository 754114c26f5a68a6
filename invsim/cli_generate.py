"""Deprecated alias of :mod:`invsim.cli.generate` (goes in the next release).

Importing a name from here still works and emits a ``FutureWarning`` naming its new path.
"""

from invsim._moved import moved_attributes

__all__ = ["GeneratedEvents", "generate", "generate_hard_events"]  # noqa: F822 (provided by __getattr__)

__getattr__ = moved_attributes(__name__, {
    "generate": "invsim.cli.generate",
    "GeneratedEvents": "forward.generate",
    "generate_hard_events": "forward.generate",
})
