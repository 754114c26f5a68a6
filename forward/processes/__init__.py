"""Built-in processes and the registry that finds them by name.

``get_process("drell-yan", mll_min=60, mll_max=120)`` builds a process with its
settings; parameters are given later, per evaluation, through ``Process.params``.
"""

from __future__ import annotations

import importlib

from forward.processes.base import Parameter, Process

__all__ = ["BUILTIN_PROCESSES", "Parameter", "Process", "get_process"]

#: registry name -> (module, class); imported on first use
BUILTIN_PROCESSES: dict[str, tuple[str, str]] = {
    "drell-yan": ("forward.processes.drell_yan", "DrellYan"),
    "ttbar": ("forward.processes.ttbar", "TTbar"),
    "diphoton-jet": ("forward.processes.diphoton_jet", "DiphotonJet"),
}


def get_process(name: str, **settings) -> Process:
    """Build a built-in process by registry name.

    Args:
        name: one of ``BUILTIN_PROCESSES`` (``"drell-yan"``, ``"ttbar"``, ...).
        **settings: constructor settings of that process (cuts, flavours, sqrt_s, ...).

    Raises:
        ValueError: unknown process name or unknown setting.
    """
    if name not in BUILTIN_PROCESSES:
        raise ValueError(f"process: expected one of {sorted(BUILTIN_PROCESSES)}, got {name!r}")
    module, cls_name = BUILTIN_PROCESSES[name]
    cls = getattr(importlib.import_module(module), cls_name)
    unknown = sorted(set(settings) - set(cls.setting_names()))
    if unknown:
        raise ValueError(
            f"unknown setting(s) {unknown} for process {name!r}; known: {cls.setting_names()}"
        )
    return cls(**settings)
