"""Built-in processes and the registry that finds processes by name.

``get_process("drell-yan", mll_min=60, mll_max=120)`` builds a process with its
settings; parameters are given later, per evaluation, through ``Process.params``.
User processes join the registry with :func:`register_process` (or an entry point in
the group ``invsim.processes``); see :mod:`forward.processes.registry`.
"""

from __future__ import annotations

from forward.processes.base import SCALE_FACTOR_SETTINGS, Parameter, Process
from forward.processes.registry import (
    BUILTIN_PROCESSES,
    ENTRY_POINT_GROUP,
    available_processes,
    get_process,
    process_class,
    process_name,
    process_settings,
    register_process,
    unregister_process,
)

__all__ = [
    "BUILTIN_PROCESSES",
    "ENTRY_POINT_GROUP",
    "SCALE_FACTOR_SETTINGS",
    "Parameter",
    "Process",
    "available_processes",
    "get_process",
    "process_class",
    "process_name",
    "process_settings",
    "register_process",
    "unregister_process",
]
