"""The process registry: registry names -> :class:`~forward.processes.base.Process` classes.

Three sources, looked up in this order:

1. the built-in processes (:data:`BUILTIN_PROCESSES`, imported on first use);
2. classes registered at run time with :func:`register_process`;
3. entry points of installed packages in the group ``invsim.processes`` (name = registry
   name, value = ``module:Class``), discovered on the first lookup of a name that the
   first two do not know and imported when their name is looked up.

A user's process therefore works everywhere a name is taken (:func:`get_process`,
``invsim xsec NAME``, ``invsim generate NAME``, files that record a process by name)::

    from forward.processes import Process, register_process

    @register_process("my-zprime")
    class MyZPrime(Process):
        ...

or, in a package's ``pyproject.toml``::

    [project.entry-points."invsim.processes"]
    my-zprime = "mypkg.processes:MyZPrime"

A class has one registry name (its ``name`` class attribute is set to it) and a name
one class: registering another class under a known name raises ``ValueError``;
registering the same class again is a no-op. :func:`unregister_process` undoes a
registration (for tests).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect

from forward.processes.base import Process

__all__ = [
    "BUILTIN_PROCESSES",
    "ENTRY_POINT_GROUP",
    "available_processes",
    "get_process",
    "process_class",
    "process_name",
    "process_settings",
    "register_process",
    "unregister_process",
]

#: registry name -> (module, class) of the built-in processes; imported on first use
BUILTIN_PROCESSES: dict[str, tuple[str, str]] = {
    "drell-yan": ("forward.processes.drell_yan", "DrellYan"),
    "ttbar": ("forward.processes.ttbar", "TTbar"),
    "diphoton-jet": ("forward.processes.diphoton_jet", "DiphotonJet"),
    "jets": ("forward.processes.jets", "Jets"),
    "z-jets": ("forward.processes.vjets", "ZJets"),
    "w-jets": ("forward.processes.vjets", "WJets"),
}

#: entry-point group searched for processes of installed packages
ENTRY_POINT_GROUP = "invsim.processes"

# registry name -> class, for built-ins already imported and run-time registrations
_classes: dict[str, type[Process]] = {}
# names registered with register_process (not built-ins), with whether we set cls.name
_registered: dict[str, bool] = {}
# entry points of the group by name; None until first discovered
_entry_points: dict[str, importlib.metadata.EntryPoint] | None = None


def _check_name(name) -> str:
    if not isinstance(name, str):
        raise TypeError(f"name: expected a str, got {type(name).__name__}")
    if not name.strip() or name != name.strip():
        raise ValueError(f"name: expected a non-empty name without surrounding spaces, "
                         f"got {name!r}")
    return name


def _check_class(name: str, cls) -> type[Process]:
    if not (isinstance(cls, type) and issubclass(cls, Process)):
        raise TypeError(f"process {name!r}: expected a subclass of forward.processes.Process, "
                        f"got {cls!r}")
    if inspect.isabstract(cls):
        missing = sorted(getattr(cls, "__abstractmethods__", ()))
        raise TypeError(f"process {name!r}: {cls.__name__} is abstract; it must implement "
                        f"{missing}")
    return cls


def _builtin(name: str) -> type[Process]:
    module, cls_name = BUILTIN_PROCESSES[name]
    cls = getattr(importlib.import_module(module), cls_name)
    _classes[name] = cls
    return cls


def _discover() -> dict[str, importlib.metadata.EntryPoint]:
    global _entry_points
    if _entry_points is None:
        _entry_points = {ep.name: ep for ep in
                         importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
    return _entry_points


def _known(name: str) -> type[Process] | None:
    """The class of a built-in or registered name, without looking at entry points."""
    if name in _classes:
        return _classes[name]
    if name in BUILTIN_PROCESSES:
        return _builtin(name)
    return None


def register_process(name: str, cls: type[Process] | None = None):
    """Register a :class:`Process` subclass under a registry name.

    Use as a class decorator, ``@register_process("my-process")``, or call
    ``register_process("my-process", MyProcess)``. The class's ``name`` attribute is
    set to ``name`` when the class does not define one itself.

    Args:
        name: registry name, e.g. ``"my-zprime"`` (what ``get_process`` and the CLI take).
        cls: the class; omitted for decorator use.

    Returns:
        ``cls`` (so the decorator leaves the class unchanged), or the decorator.

    Raises:
        TypeError: ``name`` is not a str, ``cls`` is not a concrete ``Process`` subclass.
        ValueError: ``name`` is empty, taken by another class (built-in, registered or an
            installed entry point already loaded), or ``cls`` declares a different ``name``.
    """
    _check_name(name)
    if cls is None:
        return lambda c: register_process(name, c)
    _check_class(name, cls)
    current = _known(name)
    if current is cls:
        return cls
    if current is not None:
        raise ValueError(f"process {name!r} is already registered as "
                         f"{current.__module__}.{current.__qualname__}; cannot register "
                         f"{cls.__module__}.{cls.__qualname__} under the same name")
    declared = cls.__dict__.get("name", "")
    if declared and declared != name:
        raise ValueError(f"name: {cls.__qualname__} declares name = {declared!r} but is "
                         f"registered as {name!r}; use the same name")
    _registered[name] = not declared
    if not declared:
        cls.name = name
    _classes[name] = cls
    return cls


def unregister_process(name: str) -> None:
    """Remove a process registered with :func:`register_process` (test clean-up).

    The ``name`` attribute that registration set on the class is removed again.

    Raises:
        ValueError: ``name`` is a built-in or was not registered.
    """
    _check_name(name)
    if name in BUILTIN_PROCESSES:
        raise ValueError(f"name: {name!r} is a built-in process and cannot be unregistered")
    if name not in _registered:
        raise ValueError(f"name: no process registered as {name!r}; registered: "
                         f"{sorted(_registered)}")
    cls = _classes.pop(name)
    if _registered.pop(name) and "name" in cls.__dict__:
        del cls.name


def process_class(name: str) -> type[Process]:
    """The :class:`Process` subclass registered under ``name``.

    Installed entry points (group ``invsim.processes``) are discovered the first time a
    name is not a built-in or run-time registration, and imported when named.

    Raises:
        TypeError: ``name`` is not a str, or its entry point is not a ``Process`` subclass.
        ValueError: unknown name (the message lists the available ones), or its entry
            point cannot be imported.
    """
    _check_name(name)
    cls = _known(name)
    if cls is not None:
        return cls
    ep = _discover().get(name)
    if ep is None:
        raise ValueError(f"process: expected one of {available_processes()}, got {name!r}")
    try:
        loaded = ep.load()
    except (ImportError, AttributeError) as err:
        raise ValueError(f"process {name!r}: cannot import its entry point {ep.value!r} "
                         f"(group {ENTRY_POINT_GROUP!r}): {err}") from err
    return register_process(name, loaded)


def available_processes() -> list[str]:
    """Sorted registry names: built-ins, run-time registrations and installed entry points."""
    return sorted(set(BUILTIN_PROCESSES) | set(_classes) | set(_discover()))


def process_name(process: Process) -> str:
    """The registry name of a process instance (for files that record a process by name).

    Args:
        process: an instance of a registered class; instances of unregistered
            subclasses of a registered class are refused (loading would build the parent).

    Raises:
        TypeError: ``process`` is not a ``Process``, or its class is not registered.
    """
    if not isinstance(process, Process):
        raise TypeError(f"process: expected a forward.processes.Process, got "
                        f"{type(process).__name__}")
    cls = type(process)
    name = cls.__dict__.get("name") or ""
    if name:
        try:
            found = process_class(name)
        except ValueError:
            found = None
        if found is cls:
            return name
    raise TypeError(f"process: {cls.__module__}.{cls.__qualname__} is not a registered "
                    f"process; register it with forward.processes.register_process(name) "
                    f"(or an entry point in the group {ENTRY_POINT_GROUP!r})")


def process_settings(process: Process, *, strict: bool = False) -> dict:
    """The constructor settings of a process as plain values (for files).

    Args:
        process: a process instance.
        strict: raise on a setting that is not a plain value (None, str, int, float,
            bool); otherwise such settings are left out.

    Returns:
        name -> value for every name of ``setting_names()`` the instance holds.

    Raises:
        TypeError: with ``strict``, a setting that is not plain (the process cannot be
            rebuilt from a file).
    """
    out = {}
    for key in process.setting_names():
        if not hasattr(process, key):
            if strict:
                raise TypeError(f"process: setting {key!r} is not stored on the instance; "
                                "it cannot be rebuilt from a file")
            continue
        value = getattr(process, key)
        if value is None or isinstance(value, (str, int, float, bool)):
            out[key] = value
        elif strict:
            raise TypeError(f"process: setting {key!r} is a {type(value).__name__}, not a plain "
                            "value; only processes with plain settings can be saved")
    return out


def get_process(name: str, **settings) -> Process:
    """Build a process by registry name.

    Args:
        name: a name of :func:`available_processes` (``"drell-yan"``, ``"ttbar"``, ...,
            or one registered with :func:`register_process` or an entry point).
        **settings: constructor settings of that process (cuts, flavours, sqrt_s, ...).

    Raises:
        ValueError: unknown process name or unknown setting.
    """
    cls = process_class(name)
    unknown = sorted(set(settings) - set(cls.setting_names()))
    if unknown:
        raise ValueError(
            f"unknown setting(s) {unknown} for process {name!r}; known: {cls.setting_names()}"
        )
    return cls(**settings)
