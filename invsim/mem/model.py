"""The θ-independent trained pieces of a matrix-element-method likelihood, and their files.

A :class:`MEMModel` bundles

* the **process** (its dσ(θ)/dμ is re-evaluated per θ) with its settings,
* a phase-space **channel** of it (for the fiducial cross section and the optional
  defensive mixture component of the proposal),
* the **proposal** q(x_hard | x_reco): anything with
  ``sample_and_log_prob(x_reco, n, theta=None, *, generator=None) -> (HardEvents, log_q)``
  (e.g. :class:`invsim.unfold.Unfolder`),
* the **transfer** function r(x_reco | x_hard) (``log_prob(x_reco, x_hard)``, e.g.
  :class:`invsim.transfer.TransferFunction`) and the **acceptance** ε(x_hard)
  (``logits(x_hard)``, e.g. :class:`invsim.transfer.AcceptanceClassifier`), both taking
  the hard observables named by ``hard_observables`` (:data:`HARD_OBSERVABLES`).

:meth:`MEMModel.save` writes a directory: ``mem.json`` (format version, process by
registry name with its settings, reference point, parameter ranges, analysis
observables, detector, training numbers, provenance, and each component by its
registry key in :data:`COMPONENTS`) and one file per component (each component's own
``save``/``load``), and ``MANIFEST.sha256.json``, the SHA-256 of every file, that
:meth:`MEMModel.load` verifies. The directory is written beside its target and swapped
in at the end, so an interrupted save leaves the old model whole. Directories of format 1 (which
named components by ``module:Class``) still load.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import warnings
from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F

from forward.events import HardEvents
from forward.files import MANIFEST, verify_manifest
from forward.integrand import HadronicIntegrand
from invsim.hardspace import HardCoordinates
from invsim.observables import RecoObservables, hard_pt_eta_phi

__all__ = ["COMPONENTS", "HARD_OBSERVABLES", "MEMModel", "lepton_pt_eta_phi",
           "register_component"]

_FORMAT = "invsim-mem-model"
_FORMAT_VERSION = 2
_FORMAT_V1 = "invsim-mem-model-1"
_ROLES = ("proposal", "transfer", "acceptance")
# mem.json "integrity": the directory carries a SHA-256 manifest (forward.files)
_INTEGRITY = "sha256-manifest"
_WARNED: set[str] = set()
# format-1 files name classes by module path: only these packages are re-imported
_TRUSTED_PACKAGES = ("invsim.", "forward.")

#: registry key -> "module:Class" of the saveable components (imported when loading)
COMPONENTS: dict[str, str] = {
    "unfolder": "invsim.unfold:Unfolder",
    "transfer-flow": "invsim.transfer:TransferFunction",
    "selected-transfer": "invsim.transfer:SelectedTransfer",
    "acceptance-classifier": "invsim.transfer:AcceptanceClassifier",
    "exact-transfer": "invsim.exact:ExactTransfer",
    "exact-acceptance": "invsim.exact:ExactAcceptance",
    "reco-gaussian-proposal": "invsim.mem.reco_proposal:RecoGaussianProposal",
    "ttbar-dilepton-proposal": "invsim.mem.ttbar_proposal:TTbarDileptonProposal",
}
#: format-1 class paths of components that moved -> their registry key
_MOVED_CLASSES = {
    "invsim.bruteforce:ExactTransfer": "exact-transfer",
    "invsim.bruteforce:ExactAcceptance": "exact-acceptance",
    "invsim.bruteforce:RecoGaussianProposal": "reco-gaussian-proposal",
}

lepton_pt_eta_phi = hard_pt_eta_phi  # the name of invsim 0.1


def register_component(key: str, cls: type) -> None:
    """Make a component class saveable in model directories under ``key``.

    Args:
        key: registry key (letters, digits and '-').
        cls: a class with ``save(path, overwrite=)`` and classmethod ``load(path,
            map_location=)``, importable by its module path.

    Raises:
        ValueError: a malformed key or one taken by another class.
    """
    if not (isinstance(key, str) and key and all(c.isalnum() or c == "-" for c in key)):
        raise ValueError(f"key: expected letters, digits and '-', got {key!r}")
    _require_methods("cls", cls, ("save", "load"))
    path = f"{cls.__module__}:{cls.__qualname__}"
    if COMPONENTS.get(key, path) != path:
        raise ValueError(f"key: {key!r} is taken by {COMPONENTS[key]}")
    COMPONENTS[key] = path


def _component_key(role: str, obj) -> str:
    path = f"{type(obj).__module__}:{type(obj).__qualname__}"
    for key, p in COMPONENTS.items():
        if p == path:
            return key
    raise TypeError(f"{role}: {type(obj).__name__} is not a registered component "
                    f"(known: {sorted(COMPONENTS)}; see register_component)")


def _import(path: str):
    module, _, qual = path.partition(":")
    obj = importlib.import_module(module)
    for part in qual.split("."):
        obj = getattr(obj, part)
    return obj


def _momenta(events: HardEvents) -> torch.Tensor:
    return events.momenta


#: name -> function HardEvents -> hard observables fed to the transfer and acceptance:
#: ``"momenta"`` the (n, k, 4) momenta, ``"pt_eta_phi"`` (n, 3k) (pT, η, φ) of every
#: final-state particle (``"lepton_pt_eta_phi"``: its name in invsim 0.1)
HARD_OBSERVABLES: dict[str, Callable[[HardEvents], torch.Tensor]] = {
    "momenta": _momenta,
    "pt_eta_phi": hard_pt_eta_phi,
    "lepton_pt_eta_phi": hard_pt_eta_phi,
}


def _require_methods(name: str, obj, methods: tuple[str, ...]) -> None:
    for m in methods:
        if not callable(getattr(obj, m, None)):
            raise TypeError(f"{name}: expected an object with {m}(...), got {type(obj).__name__}")


class MEMModel:
    """Process, channel, proposal, transfer and acceptance of an ML-MEM (no θ, no data).

    Args:
        process: a :class:`~forward.processes.Process` (built-in with plain settings for
            :meth:`save`).
        proposal: object with ``sample_and_log_prob(x_reco, n, theta=None, *,
            generator=None)`` returning (HardEvents of m*n events, event-major; log q
            w.r.t. dμ of shape (m, n)); ``log_prob(hard, x_reco)`` is needed for a
            defensive mixture.
        transfer: object with ``log_prob(x_reco, x_hard) -> (n,)``, the normalised
            density r of reco observables of accepted events.
        acceptance: object with ``logits(x_hard) -> (n,)`` (logit of ε); None for ε = 1.
        hard_observables: key of :data:`HARD_OBSERVABLES` turning HardEvents into the
            transfer's and acceptance's hard input.
        params: parameter values (numbers) fixing the phase-space channel's map.
        channel: index into ``process.phase_space(params)``.
        pdf: PDF set name or object; default the process's.
        device: device of the integrand (PDF tables, parameters); default that of the
            transfer's parameters when it is a torch module, else CPU.
        observables: the analysis's :class:`~invsim.observables.RecoObservables` (how
            reco events become x_reco); None for models trained on observables directly.
        ranges: name -> (lo, hi): the parameter ranges the model was trained over
            (likelihoods refuse θ outside them): process parameters and detector
            nuisances (:data:`~invsim.mem.detector_nuisances.DETECTOR_NUISANCES`, e.g.
            ``jes``); the transfer and the acceptance of a model with detector nuisances
            take their values as extra hard-feature columns (:meth:`hard_features`).
        detector: JSON-ready description of the detector it was trained with
            (:func:`forward.detector.describe_detector`), for provenance.
        info: JSON-ready training numbers and provenance.

    Attributes:
        coordinates: the channel as a :class:`~invsim.hardspace.HardCoordinates`.
        integrand: the :class:`~forward.integrand.HadronicIntegrand` of the process.
    """

    def __init__(
        self,
        process,
        proposal,
        transfer,
        acceptance=None,
        *,
        hard_observables: str = "momenta",
        params: Mapping[str, float] | None = None,
        channel: int = 0,
        pdf=None,
        device=None,
        observables: RecoObservables | None = None,
        ranges: Mapping[str, tuple[float, float]] | None = None,
        detector: Mapping | None = None,
        info: Mapping | None = None,
    ) -> None:
        _require_methods("proposal", proposal, ("sample_and_log_prob",))
        if observables is not None and not isinstance(observables, RecoObservables):
            raise TypeError(f"observables: expected RecoObservables or None, got "
                            f"{type(observables).__name__}")
        ranges = {k: (float(lo), float(hi)) for k, (lo, hi) in dict(ranges or {}).items()}
        from invsim.mem.detector_nuisances import DETECTOR_NUISANCES

        for k, (lo, hi) in ranges.items():
            if (k not in process.parameters and k not in DETECTOR_NUISANCES) or not lo < hi:
                raise ValueError(f"ranges: expected LO < HI for parameters of the process, got "
                                 f"{k}=({lo}, {hi})")
        _require_methods("transfer", transfer, ("log_prob",))
        if acceptance is not None:
            _require_methods("acceptance", acceptance, ("logits",))
        if hard_observables not in HARD_OBSERVABLES:
            raise ValueError(
                f"hard_observables: expected one of {sorted(HARD_OBSERVABLES)}, "
                f"got {hard_observables!r}"
            )
        self.process = process
        self.proposal = proposal
        self.transfer = transfer
        self.acceptance = acceptance
        self.hard_observables = hard_observables
        self.params = {k: float(v) for k, v in dict(params or {}).items()}
        self.channel = channel
        self.observables = observables
        self.ranges = ranges
        self.detector = dict(detector) if detector is not None else None
        self.info = json.loads(json.dumps(dict(info or {}), default=str))
        self.coordinates = HardCoordinates.from_process(process, self.params or None, channel)
        if device is None and isinstance(transfer, torch.nn.Module):
            device = next(iter(transfer.parameters()), torch.empty(0)).device
        self.integrand = HadronicIntegrand(process, pdf, device=device)

    # -- pieces of the integrand ---------------------------------------------------------
    @property
    def detector_nuisances(self) -> tuple[str, ...]:
        """The detector nuisances the transfer and acceptance are conditioned on (those
        of ``ranges``, in the order of ``DETECTOR_NUISANCES``)."""
        from invsim.mem.detector_nuisances import detector_nuisance_names

        return detector_nuisance_names(self.ranges)

    def hard_features(self, events: HardEvents, nuisances=None) -> torch.Tensor:
        """The transfer's and acceptance's hard input for ``events`` (see ``hard_observables``).

        Args:
            events: n hard events.
            nuisances: values of the model's :attr:`detector_nuisances` (name -> number
                or tensor of shape () or (n,)); missing ones at their defaults (1 for
                ``jes``). Ignored by a model without detector nuisances.

        Returns:
            Tensor (n, features [+ one column per detector nuisance]).
        """
        x = HARD_OBSERVABLES[self.hard_observables](events)
        names = self.detector_nuisances
        if not names:
            return x
        from invsim.mem.detector_nuisances import DETECTOR_NUISANCES

        nuisances = dict(nuisances or {})
        cols = [torch.as_tensor(nuisances.get(n, DETECTOR_NUISANCES[n].default),
                                dtype=x.dtype, device=x.device).expand(len(x))
                for n in names]
        return torch.cat([x, torch.stack(cols, -1)], -1)

    def log_acceptance(self, events: HardEvents, nuisances=None) -> torch.Tensor:
        """log ε(x_hard [, detector nuisances]), shape (n,) float64 (zeros without an
        acceptance model)."""
        if self.acceptance is None:
            return torch.zeros(len(events), dtype=torch.float64, device=events.momenta.device)
        logits = self.acceptance.logits(self.hard_features(events, nuisances))
        return F.logsigmoid(logits.to(torch.float64))

    def log_transfer(self, x_reco: torch.Tensor, events: HardEvents,
                     nuisances=None) -> torch.Tensor:
        """log r(x_reco | x_hard [, detector nuisances]) for paired rows, shape (n,)
        float64."""
        return self.transfer.log_prob(x_reco, self.hard_features(events, nuisances)).to(
            torch.float64)

    # -- files ---------------------------------------------------------------------------
    def _description(self) -> dict:
        from forward.processes import process_name, process_settings

        name = process_name(self.process)
        settings = process_settings(self.process, strict=True)
        pdf = self.integrand.pdf
        comps = {}
        for c in _ROLES:
            obj = getattr(self, c)
            if obj is None:
                comps[c] = None
                continue
            comps[c] = _component_entry(c, obj, c)
        return {
            "format": _FORMAT,
            "format_version": _FORMAT_VERSION,
            "process": {"name": name, "settings": settings},
            "pdf": getattr(pdf, "set_name", None) or getattr(self.process, "pdf", None),
            "params": self.params,
            "ranges": {k: list(v) for k, v in self.ranges.items()},
            "channel": self.channel,
            "hard_observables": self.hard_observables,
            "observables": None if self.observables is None else self.observables.to_dict(),
            "detector": self.detector,
            "components": comps,
            "info": self.info,
            "provenance": _provenance(self),
        }

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Write the model into directory ``path``, atomically.

        Everything is written into a new directory beside ``path`` first, a manifest of
        every file's SHA-256 (``MANIFEST.sha256.json``) last, and the directory is swapped
        in at the end (:func:`forward.files.atomic_directory`), so an interrupted save
        (an error, Ctrl-C, SIGTERM or SIGKILL) leaves the old model whole and no mixture of
        old and new files.

        Raises:
            FileExistsError: ``path`` exists and is not empty, unless ``overwrite`` (and
                then only if it holds a saved MEM model).
            FileNotFoundError: the folder of ``path`` does not exist.
            forward.files.OutputBusyError: another running process writes ``path``.
            TypeError: a process or component that cannot be saved.
        """
        from forward.files import atomic_directory

        desc = self._description()
        desc["integrity"] = _INTEGRITY
        with atomic_directory(path, overwrite, replaceable=lambda p: (p / "mem.json").exists(),
                              kind="saved MEM model") as tmp:
            for c, entry in desc["components"].items():
                if entry is not None:
                    _save_component(getattr(self, c), entry, os.fspath(tmp))
            with open(os.path.join(tmp, "mem.json"), "w") as f:
                json.dump(desc, f, indent=1)

    @classmethod
    def load(cls, path: str | os.PathLike, *, map_location=None) -> MEMModel:
        """Load a model written by :meth:`save` (formats 1 and 2).

        Args:
            path: the directory.
            map_location: device for the networks (as for ``torch.load``).

        Every file is checked against the directory's SHA-256 manifest first; a
        directory written before manifests existed loads with a one-time warning.

        Raises:
            FileNotFoundError: no ``mem.json`` in ``path``.
            ValueError: not a MEM model directory, a newer format, an unknown component
                kind or an untrusted component class; a file that differs from the
                manifest, is missing from it or is not listed (a corrupted directory or a
                mixture of two saves: the message names the file).
        """
        from forward.processes import get_process

        path = os.fspath(path)
        meta = os.path.join(path, "mem.json")
        if not os.path.exists(meta):
            raise FileNotFoundError(f"path: no mem.json in {path}; not an invsim model directory")
        checked = verify_manifest(path, required=False)
        try:
            with open(meta) as f:
                desc = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"path: {meta} is not valid JSON ({err})") from None
        fmt = desc.get("format") if isinstance(desc, dict) else None
        if fmt == _FORMAT:
            version = desc.get("format_version")
            if not isinstance(version, int) or version > _FORMAT_VERSION:
                raise ValueError(f"path: {meta} has format version {version!r}; this invsim "
                                 f"reads versions up to {_FORMAT_VERSION}")
        elif fmt != _FORMAT_V1:
            raise ValueError(f"path: {meta} is not an invsim MEM model description")
        if not checked:
            if desc.get("integrity") == _INTEGRITY:
                raise ValueError(f"path: {path} lacks its {MANIFEST} (mem.json says it has "
                                 "one); the directory is incomplete")
            _warn_unverified(path)
        process = get_process(desc["process"]["name"], **desc["process"]["settings"])
        coords = HardCoordinates.from_process(process, desc["params"] or None, desc["channel"])
        comps = {}
        for c in _ROLES:
            entry = desc["components"].get(c)
            comps[c] = None if entry is None else _load_component(c, entry, path, coords,
                                                                  map_location)
        obs = desc.get("observables")
        return cls(process, comps["proposal"], comps["transfer"], comps["acceptance"],
                   hard_observables=desc["hard_observables"], params=desc["params"],
                   channel=desc["channel"], pdf=desc["pdf"],
                   observables=None if obs is None else RecoObservables.from_dict(obs),
                   ranges={k: tuple(v) for k, v in (desc.get("ranges") or {}).items()},
                   detector=desc.get("detector"), info=desc.get("info"))

    def __repr__(self) -> str:
        return (f"MEMModel(process={self.process!r}, proposal={type(self.proposal).__name__}, "
                f"transfer={type(self.transfer).__name__}, "
                f"acceptance={type(self.acceptance).__name__}, "
                f"hard_observables={self.hard_observables!r})")


def _component_entry(role: str, obj, stem: str) -> dict:
    """mem.json entry of a component: its registry key and file; a mixture of proposals
    (:class:`~invsim.mem.StratifiedMixtureProposal`) lists its parts and weights."""
    from invsim.mem.proposals import StratifiedMixtureProposal

    if isinstance(obj, StratifiedMixtureProposal):
        return {"kind": "mixture", "weights": list(obj.weights),
                "parts": [_component_entry(f"{role}[{i}]", part, f"{stem}-{i}")
                          for i, part in enumerate(obj.components)]}
    _require_methods(role, obj, ("save",))
    return {"kind": _component_key(role, obj), "file": f"{stem}.pt"}


def _save_component(obj, entry: Mapping, folder: str) -> None:
    if entry["kind"] == "mixture":
        for part, e in zip(obj.components, entry["parts"], strict=True):
            _save_component(part, e, folder)
    else:
        obj.save(os.path.join(folder, entry["file"]))


def _load_component(role: str, entry: Mapping, path: str, coords, map_location):
    if entry.get("kind") == "mixture":
        from invsim.mem.proposals import StratifiedMixtureProposal

        parts = [_load_component(f"{role}[{i}]", e, path, coords, map_location)
                 for i, e in enumerate(entry["parts"])]
        return StratifiedMixtureProposal(parts, entry["weights"])
    klass = _import(_class_path(role, entry))
    kwargs = {"map_location": map_location}
    if "coordinates" in inspect.signature(klass.load).parameters:
        kwargs["coordinates"] = coords
    file = os.path.join(path, entry["file"])
    if not os.path.exists(file):
        raise FileNotFoundError(f"path: {path} lacks the {role} file {entry['file']}")
    return klass.load(file, **kwargs)


def _class_path(role: str, entry: Mapping) -> str:
    """The class of a component entry: a registry key (format 2) or a module path (1)."""
    if "kind" in entry:
        if entry["kind"] not in COMPONENTS:
            raise ValueError(f"path: component {role} has unknown kind {entry['kind']!r}; "
                             f"known: {sorted(COMPONENTS)} (register_component)")
        return COMPONENTS[entry["kind"]]
    path = entry["class"]
    if path in _MOVED_CLASSES:
        return COMPONENTS[_MOVED_CLASSES[path]]
    if not path.partition(":")[0].startswith(_TRUSTED_PACKAGES):
        raise ValueError(f"path: component {role} has untrusted class {path}")
    return path


def _warn_unverified(path: str) -> None:
    key = os.path.abspath(path)
    if key not in _WARNED:
        _WARNED.add(key)
        warnings.warn(f"{path}: model directory without a {MANIFEST} (written by an older "
                      "invsim); its files are not verified. Save it again to add one",
                      UserWarning, stacklevel=3)


def _provenance(model: MEMModel) -> dict:
    """The model's :func:`forward.provenance.provenance` record; the keys ``invsim``,
    ``written`` (and ``torch``, ``python``) of format 2 files are kept beside it."""
    from forward.provenance import provenance

    info = model.info or {}
    seed = info.get("seed")
    record = provenance(process=model.process, parameters=model.params,
                        pdf=model.integrand.pdf,
                        seed=seed if isinstance(seed, int) and not isinstance(seed, bool)
                        else None,
                        device=model.integrand.device)
    return {**record, "invsim": record["invsim_version"], "written": record["created_utc"]}
