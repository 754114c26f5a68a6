"""Parsing shared by the ``invsim`` commands: option values, processes, factories.

Everything here turns command-line text into Python objects and reports bad text as a
click usage error (exit status 2) naming the option; the work itself is done by
library functions.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
from pathlib import Path

import click
import torch

__all__ = [
    "COUNT_MAX",
    "Count",
    "DEVICE",
    "DeviceType",
    "claim_output",
    "file_inputs",
    "call_factory",
    "declared_parameters",
    "echo_info",
    "echo_inputs",
    "inference_inputs",
    "model_paths",
    "likelihood_options",
    "jsonable",
    "load_factory",
    "one_line",
    "option_message",
    "parameter_names",
    "parse_assignments",
    "parse_fixed",
    "parse_float",
    "parse_grid",
    "parse_range",
    "parse_value",
    "process_class_argument",
    "quiet",
    "run_provenance",
    "show_progress",
    "verbose",
    "verbosity_options",
]


#: largest count any option accepts (events, steps, samples): beyond it a run cannot
#: finish in a human lifetime on one machine; commands check their own, lower, limits
COUNT_MAX = 10**12


class Count(click.ParamType):
    """An integer count option: digits only (``1e6`` and ``1.5`` are refused, never
    rounded), within ``[minimum, maximum]``; the message names the option and the range.
    """

    name = "integer"

    def __init__(self, minimum: int = 1, maximum: int = COUNT_MAX) -> None:
        self.minimum, self.maximum = int(minimum), int(maximum)

    def convert(self, value, param, ctx):
        if isinstance(value, int) and not isinstance(value, bool):
            n = value
        else:
            text = str(value).strip().replace("_", "")
            if not text.lstrip("+").isdigit():
                self.fail(f"expected an integer in [{self.minimum}, {self.maximum}] written "
                          f"with digits, got {value!r}", param, ctx)
            n = int(text)
        if not self.minimum <= n <= self.maximum:
            self.fail(f"expected an integer in [{self.minimum}, {self.maximum}], got {n}",
                      param, ctx)
        return n

    def __repr__(self) -> str:
        return f"Count({self.minimum}, {self.maximum})"


class DeviceType(click.ParamType):
    """A ``--device`` value checked once by :func:`forward._validation.resolve_device`:
    an unknown device or CUDA without CUDA is a usage error (exit status 2)."""

    name = "device"

    def convert(self, value, param, ctx):
        from forward._validation import resolve_device

        if value is None or isinstance(value, torch.device):
            return value if value is None else resolve_device(value, "--device")
        try:
            resolve_device(value, "--device")
        except (ValueError, TypeError) as err:  # click names the option already
            self.fail(one_line(err).removeprefix("--device: "), param, ctx)
        return str(value).strip()


#: the ``--device`` option type of every command
DEVICE = DeviceType()


# -- values -------------------------------------------------------------------------------
def parse_value(text: str):
    """A number if ``text`` parses as one, None for 'none'/'null', else the text itself."""
    low = text.strip().lower()
    if low in ("none", "null"):
        return None
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def parse_float(text: str, what: str) -> float:
    """``float(text)``; ``what`` names the option in the error.

    Raises:
        click.BadParameter: not a number, or NaN.
    """
    try:
        v = float(text)
    except ValueError:
        raise click.BadParameter(f"{what}: expected a number, got {text!r}") from None
    if math.isnan(v):
        raise click.BadParameter(f"{what}: expected a number, got NaN")
    return v


def jsonable(value):
    """A JSON-safe form of a setting value: plain values kept, inf/NaN and objects as text."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return str(value)


def parse_assignments(
    items: tuple[str, ...], parameter_names, setting_names
) -> tuple[dict, dict]:
    """Split ``NAME=VALUE`` strings (``--set``) into parameter values and settings.

    Args:
        items: the ``--set`` arguments.
        parameter_names: names of the process's parameters (values must be numbers).
        setting_names: names of its constructor settings.

    Returns:
        (parameters, settings) as dicts; parameter values as float, settings as
        :func:`parse_value` reads them.

    Raises:
        click.UsageError: malformed item, unknown name (listing the known ones) or a
            non-numeric parameter value.
    """
    params, settings = {}, {}
    for item in items:
        name, sep, raw = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise click.UsageError(f"--set: expected NAME=VALUE, got {item!r}")
        value = parse_value(raw)
        if name in parameter_names:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise click.UsageError(
                    f"--set {name}: parameter values must be numbers, got {raw!r}"
                )
            params[name] = float(value)
        elif name in setting_names:
            settings[name] = value
        else:
            raise click.UsageError(
                f"--set: unknown name {name!r}; parameters: {sorted(parameter_names)}; "
                f"settings: {sorted(setting_names)}"
            )
    return params, settings


def parse_grid(item: str) -> tuple[str, torch.Tensor]:
    """Parse ``NAME=LO:HI:N`` (``--param``) into the name and N equally spaced values.

    Returns:
        (name, values), values of shape (N,) float64.

    Raises:
        click.BadParameter: malformed item, non-finite bounds, LO >= HI or N < 3.
    """
    name, sep, spec = item.partition("=")
    parts = spec.split(":")
    if not sep or not name.strip() or len(parts) != 3:
        raise click.BadParameter(f"expected NAME=LO:HI:N, got {item!r}", param_hint="--param")
    lo, hi = (parse_float(p, f"--param {name}") for p in parts[:2])
    try:
        n = int(parts[2])
    except ValueError:
        raise click.BadParameter(f"expected an integer number of points N, got {parts[2]!r}",
                                 param_hint="--param") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi) or n < 3:
        raise click.BadParameter(f"{name}: expected finite LO < HI and N >= 3, got {spec!r}",
                                 param_hint="--param")
    return name.strip(), torch.linspace(lo, hi, n, dtype=torch.float64)


def parse_range(item: str) -> tuple[str, tuple[float, float] | None]:
    """Parse ``NAME`` or ``NAME=LO:HI`` (``--profile``; ±inf allowed as bounds).

    Raises:
        click.BadParameter: empty name, not two bounds, or LO >= HI.
    """
    name, sep, spec = item.partition("=")
    if not name.strip():
        raise click.BadParameter(f"expected NAME or NAME=LO:HI, got {item!r}",
                                 param_hint="--profile")
    if not sep:
        return name.strip(), None
    parts = spec.split(":")
    if len(parts) != 2:
        raise click.BadParameter(f"expected NAME=LO:HI, got {item!r}", param_hint="--profile")
    lo, hi = (parse_float(p, f"--profile {name}") for p in parts)
    if not lo < hi:
        raise click.BadParameter(f"{name}: expected LO < HI, got {spec!r}",
                                 param_hint="--profile")
    return name.strip(), (lo, hi)


def parse_fixed(items) -> dict[str, float]:
    """Parse ``NAME=VALUE`` items (``--fix``) into a dict of floats.

    Raises:
        click.BadParameter: malformed item or a value that is not a number.
    """
    out = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint="--fix")
        out[name.strip()] = parse_float(raw, f"--fix {name}")
    return out


# -- processes ----------------------------------------------------------------------------
def process_class_argument(name: str):
    """The registered process class named by the PROCESS argument.

    Raises:
        click.BadParameter: unknown name (listing the registered ones) or an entry point
            that cannot be imported.
    """
    from forward.processes import process_class

    try:
        return process_class(name)
    except (ValueError, TypeError) as err:
        raise click.BadParameter(str(err), param_hint="PROCESS") from err


def parameter_names(cls) -> list[str]:
    """Parameter names of a process class (from an instance with default settings).

    Raises:
        click.ClickException: the class cannot be built with its default settings.
    """
    try:
        return list(cls().parameters)
    except (TypeError, ValueError) as err:
        raise click.ClickException(
            f"cannot build {cls.__name__} with default settings: {err}") from err


# -- likelihood factories -----------------------------------------------------------------
def load_factory(spec: str, option: str = "--likelihood"):
    """Import the callable named by ``module:function`` or ``path/to/file.py:function``.

    The module must be importable (e.g. on ``PYTHONPATH``); a ``.py`` file is executed
    as a fresh module. The last colon separates the function, so Windows paths work.

    Args:
        spec: the option's text.
        option: the option's name, for messages.

    Returns:
        The callable.

    Raises:
        click.BadParameter: malformed spec, module or file that cannot be imported, no
            such callable.
    """
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr.isidentifier():
        raise click.BadParameter(f"expected MODULE:FUNCTION or FILE.py:FUNCTION, got {spec!r}",
                                 param_hint=option)
    try:
        if target.endswith(".py"):
            path = Path(target)
            if not path.is_file():
                raise FileNotFoundError(f"no such file {target!r}")
            mod_spec = importlib.util.spec_from_file_location(
                f"_invsim_factory_{path.stem}", path)
            module = importlib.util.module_from_spec(mod_spec)
            mod_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except (ImportError, OSError, SyntaxError) as err:
        raise click.BadParameter(f"cannot import {target!r}: {err}",
                                 param_hint=option) from err
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise click.BadParameter(f"{target!r} has no callable {attr!r}", param_hint=option)
    return factory


def call_factory(factory, events, spec: str, option: str = "--likelihood"):
    """Call a factory from :func:`load_factory` with the events.

    Args:
        factory: the callable.
        events: the :class:`~forward.eventset.EventSet` passed to it.
        spec: the option's text, for messages.
        option: the option's name, for messages.

    Returns:
        What the factory returns (an :class:`~invsim.infer.EventLikelihood`).

    Raises:
        click.UsageError: the factory raised ValueError or TypeError.
    """
    try:
        return factory(events)
    except (ValueError, TypeError) as err:
        raise click.UsageError(f"{option}: {spec} failed: {err}") from err


def declared_parameters(likelihood, events):
    """Declared parameters (name -> Parameter) of a likelihood or the events' process.

    The likelihood's ``parameters`` attribute if it has one, else the parameters of the
    process the event file records (built by registry name with its settings).

    Raises:
        ValueError: neither gives parameters.
    """
    params = getattr(likelihood, "parameters", None)
    if params is not None:
        return params
    from forward.processes import get_process

    try:
        return get_process(events.process, **events.settings).parameters
    except (KeyError, ValueError, TypeError) as err:
        raise ValueError(f"the likelihood has no 'parameters' and the event file's process "
                         f"{events.process!r} gives none: {err}") from None


def likelihood_options(command):
    """The options ``invsim scan`` and ``invsim posterior`` share to name the likelihood:
    ``--model``, ``--likelihood`` (``factory_spec``), ``--samples-per-event``
    (``n_samples``), ``--tree``, ``--fiducial-samples`` (``n_fiducial``), ``--nuisance``
    (``nuisances``) and ``--on-flagged``."""
    options = [
        click.option("--model", "model", multiple=True, callback=_model_option,
                     metavar="[NAME=]DIR",
                     help="Model directory from 'invsim train'; repeat as NAME=DIR for "
                          "channels of disjoint selections (e.g. ee=dy_ee mumu=dy_mumu), "
                          "one likelihood summed over them."),
        click.option("--likelihood", "factory_spec", default=None, metavar="MODULE:FUNCTION",
                     help="Instead of --model: a factory called with the EventSet, returning "
                          "an EventLikelihood (module:function or file.py:function)."),
        click.option("--samples-per-event", "n_samples", type=Count(25, 10_000_000),
                     default=1000, show_default=True,
                     help="Importance samples per event (--model)."),
        click.option("--tree", default=None,
                     help="Tree (ROOT) or group (HDF5) of a NanoAOD-style file; default "
                          "Events."),
        click.option("--fiducial-samples", "n_fiducial", type=Count(2, 100_000_000),
                     default=100_000, show_default=True,
                     help="Fixed sample for sigma_fid(theta) of the extended term (--model)."),
        click.option("--nuisance", "nuisances", multiple=True,
                     type=click.Choice(["log2_mur", "log2_muf", "jes"]),
                     help="Nuisance parameter added to θ (--model): log2 of the factor "
                          "on mu_R or mu_F, range [-1, 1], or the jet energy scale jes of a "
                          "model trained over a JES range; repeatable. scan profiles it, "
                          "posterior marginalises it (uniform prior unless --prior; jes: "
                          "Normal(1, 0.02) truncated to the trained range)."),
        click.option("--on-flagged", type=click.Choice(["error", "warn", "ignore", "drop"]),
                     default="warn", show_default=True,
                     help="When the likelihood flags events: stop with an error, warn in the "
                          "summary, or say nothing (the counts are recorded in any case); "
                          "'drop' warns and also leaves out events whose log p is NaN or "
                          "-inf (zero likelihood), which are an error otherwise."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _model_option(ctx, param, values):
    """``--model`` values -> None, one directory (Path) or channel name -> directory."""
    if not values:
        return None
    named = {}
    for v in values:
        name, sep, path = v.partition("=") if "=" in v else ("", "", v)
        if sep and not name:
            raise click.BadParameter(f"expected NAME=DIR or DIR, got {v!r}", ctx, param)
        path = Path(path)
        if not path.is_dir():
            raise click.BadParameter(f"{str(path)!r} is not a model directory", ctx, param)
        if name in named:
            raise click.BadParameter(f"channel {name!r} given twice", ctx, param)
        named[name] = path
    if len(named) == 1 and "" in named:
        return named[""]
    if "" in named:
        raise click.BadParameter("with several models name each channel: NAME=DIR", ctx, param)
    return named


def model_paths(model) -> list:
    """The model directories of a parsed ``--model`` (none, one or one per channel)."""
    if model is None:
        return []
    return list(model.values()) if isinstance(model, dict) else [model]


def inference_inputs(*, data, factory_spec, model, parameters, n_samples: int, seed: int,
                     tree, on_flagged: str, device: str, progress: bool, nuisances=(),
                     n_fiducial: int = 100_000):
    """The likelihood of ``invsim scan``/``posterior`` from a factory or a model directory.

    Exactly one of ``factory_spec`` (``--likelihood``, called with the EventSet of an
    invsim HDF5 file) and ``model`` (``--model``, with ``--data`` any events file that
    :func:`invsim.data.load_observed` reads) must be given. ``nuisances``
    (``--nuisance``, model only) are appended to θ; ``parameters`` may name them.

    Returns:
        (likelihood, source, process): the likelihood, a JSON-ready description of the
        inputs (paths, hashes, selected and dropped events) and the process name or None.

    Raises:
        click.UsageError: both or neither given, or unusable inputs (one line).
    """
    if data is None:
        raise click.UsageError("--data: give the events file")
    if (factory_spec is None) == (model is None):
        raise click.UsageError("give either --model MODEL_DIR or --likelihood MODULE:FUNCTION")
    nuisances = tuple(nuisances)
    if nuisances and model is None:
        raise click.UsageError("--nuisance: only with --model (a factory's likelihood declares "
                               "its own parameters)")
    if parameters is not None:
        parameters = [p for p in parameters if p not in nuisances] or None
    if model is not None:
        from invsim.data import channel_likelihood, model_likelihood

        build = channel_likelihood if isinstance(model, dict) else model_likelihood
        try:
            lik, observed = build(
                model, data, parameters=parameters or None, n_samples=n_samples, seed=seed,
                tree=tree, on_flagged=on_flagged, progress=progress, device=device,
                nuisances=nuisances, n_fiducial=n_fiducial)
        except (ValueError, TypeError, OSError) as err:
            raise click.UsageError(one_line(err)) from err
        if isinstance(model, dict):
            source = {"models": {k: str(v) for k, v in model.items()},
                      "channels": {k: o.provenance() for k, o in observed.items()}}
        else:
            source = {"model": str(model), **observed.provenance()}
        return lik, source, getattr(lik.process, "name", None)
    from forward.io import load_hdf5

    factory = load_factory(factory_spec)
    try:
        events = load_hdf5(data, device=device)
    except (ValueError, OSError) as err:
        raise click.UsageError(f"--data: {one_line(err)}") from err
    if len(events) == 0:
        raise click.UsageError(f"--data: {data} holds no events; nothing to infer from")
    lik = call_factory(factory, events, factory_spec)
    _check_event_count(lik, events, factory_spec)
    return lik, {"events_file": str(data), "likelihood_factory": factory_spec}, events.process


def _check_event_count(likelihood, events, spec: str) -> None:
    """Refuse a factory's likelihood that scores another number of events than the file's.

    Uses ``likelihood.n_events`` when it has one, else the length of ``log_prob`` at the
    declared defaults of its parameters (one evaluation).

    Raises:
        click.UsageError: the counts differ.
    """
    n = getattr(likelihood, "n_events", None)
    if not isinstance(n, int):
        from invsim.infer import check_likelihood

        try:
            names = check_likelihood(likelihood)
            declared = declared_parameters(likelihood, events)
            theta = {p: torch.tensor(float(declared[p].default), dtype=torch.float64,
                                     device=events.momenta.device) for p in names}
            with torch.no_grad():
                lp = likelihood.log_prob(theta)
        except (ValueError, TypeError, KeyError, AttributeError):
            return  # the scan or posterior reports what is wrong with it
        n = int(lp.shape[-1]) if isinstance(lp, torch.Tensor) and lp.ndim >= 1 else None
    if n is not None and n != len(events):
        raise click.UsageError(f"--likelihood: {spec} scores {n} events but the file holds "
                               f"{len(events)}; it must return one log p per event")


# -- verbosity and provenance ------------------------------------------------------------
_VERBOSITY = "invsim.verbosity"


def _set_verbosity(ctx: click.Context, param, value: bool):
    """Callback of ``--quiet``/``--verbose``: record the level and set the progress-bar
    mode (:func:`forward.progress.progress_mode`) until the command ends."""
    from forward.progress import progress_mode

    if not value:
        return
    level = "quiet" if param.name == "quiet" else "verbose"
    if ctx.meta.get(_VERBOSITY, level) != level:
        raise click.UsageError("--quiet, --verbose: give one of them, not both")
    ctx.meta[_VERBOSITY] = level
    ctx.with_resource(progress_mode(level == "verbose"))


def verbosity_options(command):
    """Add ``-q/--quiet`` (only the result; no progress bars, no informational lines) and
    ``-v/--verbose`` (progress bars even when stderr is not a terminal, and the
    provenance record on stderr) to a command. Without either, progress bars are drawn
    only when stderr is a terminal; ``TQDM_DISABLE=1`` turns them off in every case."""
    for name, short, text in (
            ("verbose", "-v", "Progress bars even when stderr is not a terminal (unless "
                              "TQDM_DISABLE is set) and the provenance record on stderr."),
            ("quiet", "-q", "Print only the result: no progress bars, no informational "
                            "lines.")):
        command = click.option(short, f"--{name}", name, is_flag=True, expose_value=False,
                               callback=_set_verbosity, help=text)(command)
    return command


def _level() -> str:
    ctx = click.get_current_context(silent=True)
    return "normal" if ctx is None else ctx.meta.get(_VERBOSITY, "normal")


def quiet() -> bool:
    """True when the running command has ``--quiet``."""
    return _level() == "quiet"


def verbose() -> bool:
    """True when the running command has ``--verbose``."""
    return _level() == "verbose"


def show_progress(as_json: bool = False) -> bool:
    """The ``progress`` argument a command passes to library calls: False with ``--quiet``
    or ``--json`` (unless ``--verbose``), else whether bars may be drawn
    (:func:`forward.progress.progress_enabled`)."""
    from forward.progress import progress_enabled

    if quiet() or (as_json and not verbose()):
        return False
    return progress_enabled(True)


def echo_info(message: str, *, err: bool = False) -> None:
    """Print an informational line (not part of the result); nothing with ``--quiet``."""
    if not quiet():
        click.echo(message, err=err)


def run_provenance(**kwargs) -> dict:
    """The command's :func:`forward.provenance.provenance` record (the command line is
    recorded by the ``invsim`` group); printed on stderr with ``--verbose``.

    Args:
        **kwargs: as for :func:`forward.provenance.provenance`.
    """
    import json

    from forward.provenance import provenance

    record = provenance(**kwargs)
    if verbose():
        click.echo("provenance: " + json.dumps(record), err=True)
    return record


def echo_inputs(source: dict) -> None:
    """Print the events file's selected and dropped counts (model inputs only; nothing
    with ``--quiet``)."""
    if quiet():
        return
    for name, part in source.get("channels", {"": source}).items():
        if "n_selected" in part:
            dropped = {k: v for k, v in part["dropped"].items() if v}
            click.echo((f"channel {name}: " if name else "")
                       + f"{part['path']}: {part['n_selected']} of {part['n_read']} events "
                       "selected" + (f" (dropped: {dropped})" if dropped else ""))


def claim_output(path, *, inputs=(), overwrite: bool = False, directory: bool = False):
    """Check and lock a command's output before any work (:func:`forward.files.check_output`).

    The lock is released when the command ends (the click context closes), also on
    Ctrl-C and SIGTERM.

    Args:
        path: the output file (directory with ``directory``).
        inputs: files the command reads (None entries skipped).
        overwrite: the command's ``--overwrite``.
        directory: the output is a directory.

    Returns:
        The :class:`forward.files.OutputLock`.

    Raises:
        click.UsageError: a missing or read-only folder, an existing output without
            ``--overwrite``, an output that is an input (exit status 2).
        click.ClickException: another running process writes the output (status 1).
    """
    from forward.files import OutputBusyError, check_output

    try:
        lock = check_output(path, inputs=inputs, overwrite=overwrite, directory=directory)
    except OutputBusyError as err:
        raise click.ClickException(str(err)) from None
    except (OSError, ValueError) as err:
        raise click.UsageError(f"-o: {err}") from None
    return click.get_current_context().with_resource(lock)


def file_inputs(*specs) -> list:
    """Existing files among option values (a detector card, ``path/file.py:function``)."""
    import os

    out = []
    for spec in specs:
        if spec is None:
            continue
        spec = os.fspath(spec)
        for candidate in (spec, spec.rpartition(":")[0]):
            if candidate and os.path.isfile(candidate):
                out.append(candidate)
                break
    return out


def one_line(err: BaseException) -> str:
    """An exception's message on one line."""
    return " ".join(str(err).split())


def option_message(err: BaseException, options: dict[str, str]) -> str:
    """:func:`one_line` of an API error, its leading argument name replaced by the option.

    Args:
        err: the exception, whose message starts ``"name: ..."`` by the package's rule.
        options: API argument name -> command-line option, e.g. ``{"n": "--events"}``.
    """
    text = one_line(err)
    name, sep, rest = text.partition(": ")
    return f"{options[name]} ({name}): {rest}" if sep and name in options else text
