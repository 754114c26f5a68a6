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

:meth:`MEMModel.save` writes a directory: ``mem.json`` (process, settings, channel,
names of the component classes) and one file per component (each component's own
``save``/``load``).
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F

from forward import kinematics as kin
from forward.events import HardEvents
from forward.integrand import HadronicIntegrand
from invsim.hardspace import HardCoordinates

__all__ = ["HARD_OBSERVABLES", "MEMModel", "lepton_pt_eta_phi"]

_FORMAT = "invsim-mem-model-1"
_COMPONENTS = ("proposal", "transfer", "acceptance")
# component classes are only re-imported from these packages when loading
_TRUSTED_PACKAGES = ("invsim.", "forward.")


def lepton_pt_eta_phi(events: HardEvents) -> torch.Tensor:
    """(pT, η, φ) of each final-state particle, flattened.

    Args:
        events: hard events, momenta (n, k, 4) in GeV.

    Returns:
        Tensor of shape (n, 3k): (pT [GeV], η, φ [rad, in (-π, π]]) per particle in the
        order of ``final_state`` (for Drell–Yan: ℓ⁻ then ℓ⁺).
    """
    p = events.momenta
    return torch.stack([kin.pt(p), kin.pseudorapidity(p), kin.phi(p)], dim=-1).flatten(1)


def _momenta(events: HardEvents) -> torch.Tensor:
    return events.momenta


#: name -> function HardEvents -> hard observables fed to the transfer and acceptance:
#: ``"momenta"`` the (n, k, 4) momenta, ``"lepton_pt_eta_phi"`` (n, 3k) (pT, η, φ)
HARD_OBSERVABLES: dict[str, Callable[[HardEvents], torch.Tensor]] = {
    "momenta": _momenta,
    "lepton_pt_eta_phi": lepton_pt_eta_phi,
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
    ) -> None:
        _require_methods("proposal", proposal, ("sample_and_log_prob",))
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
        self.coordinates = HardCoordinates.from_process(process, self.params or None, channel)
        if device is None and isinstance(transfer, torch.nn.Module):
            device = next(iter(transfer.parameters()), torch.empty(0)).device
        self.integrand = HadronicIntegrand(process, pdf, device=device)

    # -- pieces of the integrand ---------------------------------------------------------
    def hard_features(self, events: HardEvents) -> torch.Tensor:
        """The transfer's and acceptance's hard input for ``events`` (see ``hard_observables``)."""
        return HARD_OBSERVABLES[self.hard_observables](events)

    def log_acceptance(self, events: HardEvents) -> torch.Tensor:
        """log ε(x_hard), shape (n,) float64 (zeros without an acceptance model)."""
        if self.acceptance is None:
            return torch.zeros(len(events), dtype=torch.float64, device=events.momenta.device)
        logits = self.acceptance.logits(self.hard_features(events))
        return F.logsigmoid(logits.to(torch.float64))

    def log_transfer(self, x_reco: torch.Tensor, events: HardEvents) -> torch.Tensor:
        """log r(x_reco | x_hard) for paired rows, shape (n,) float64."""
        return self.transfer.log_prob(x_reco, self.hard_features(events)).to(torch.float64)

    # -- files ---------------------------------------------------------------------------
    def _description(self) -> dict:
        from forward.processes import BUILTIN_PROCESSES

        name = getattr(self.process, "name", None)
        if name not in BUILTIN_PROCESSES:
            raise TypeError(
                f"process: only built-in processes ({sorted(BUILTIN_PROCESSES)}) can be "
                f"saved, got {type(self.process).__name__}"
            )
        settings = {}
        for key in self.process.setting_names():
            value = getattr(self.process, key, None)
            if not (value is None or isinstance(value, (str, int, float, bool))):
                raise TypeError(
                    f"process: setting {key!r} is a {type(value).__name__}, not a plain "
                    "value; only processes with plain settings can be saved"
                )
            settings[key] = value
        pdf = self.integrand.pdf
        comps = {}
        for c in _COMPONENTS:
            obj = getattr(self, c)
            if obj is None:
                comps[c] = None
                continue
            cls = type(obj)
            if not cls.__module__.startswith(_TRUSTED_PACKAGES):
                raise TypeError(
                    f"{c}: only invsim/forward classes can be saved, got {cls.__module__}."
                    f"{cls.__qualname__}"
                )
            _require_methods(c, obj, ("save",))
            comps[c] = {"class": f"{cls.__module__}:{cls.__qualname__}", "file": f"{c}.pt"}
        return {
            "format": _FORMAT,
            "process": {"name": name, "settings": settings},
            "pdf": getattr(pdf, "set_name", None) or getattr(self.process, "pdf", None),
            "params": self.params,
            "channel": self.channel,
            "hard_observables": self.hard_observables,
            "components": comps,
        }

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Write the model into directory ``path``.

        Raises:
            FileExistsError: ``path`` exists and is not empty, unless ``overwrite`` (and
                then only if it holds a saved MEM model).
            TypeError: a process or component that cannot be saved.
        """
        path = os.fspath(path)
        desc = self._description()
        if os.path.exists(path):
            if not os.path.isdir(path):
                raise FileExistsError(f"path: {path} exists and is not a directory")
            if os.listdir(path):
                if not overwrite:
                    raise FileExistsError(
                        f"path: {path} exists and is not empty; pass overwrite=True to replace"
                    )
                if not os.path.exists(os.path.join(path, "mem.json")):
                    raise FileExistsError(
                        f"path: {path} is not a saved MEM model; refusing to overwrite it"
                    )
        os.makedirs(path, exist_ok=True)
        for c, info in desc["components"].items():
            if info is not None:
                getattr(self, c).save(os.path.join(path, info["file"]), overwrite=overwrite)
        tmp = os.path.join(path, "mem.json.tmp")
        with open(tmp, "w") as f:
            json.dump(desc, f, indent=1)
        os.replace(tmp, os.path.join(path, "mem.json"))

    @classmethod
    def load(cls, path: str | os.PathLike, *, map_location=None) -> MEMModel:
        """Load a model written by :meth:`save`.

        Args:
            path: the directory.
            map_location: device for the networks (as for ``torch.load``).

        Raises:
            FileNotFoundError: no ``mem.json`` in ``path``.
            ValueError: not a MEM model directory, or an untrusted component class.
        """
        from forward.processes import get_process

        path = os.fspath(path)
        meta = os.path.join(path, "mem.json")
        if not os.path.exists(meta):
            raise FileNotFoundError(f"path: no mem.json in {path}")
        with open(meta) as f:
            desc = json.load(f)
        if not isinstance(desc, dict) or desc.get("format") != _FORMAT:
            raise ValueError(f"path: {meta} is not an invsim MEM model description")
        process = get_process(desc["process"]["name"], **desc["process"]["settings"])
        coords = HardCoordinates.from_process(process, desc["params"] or None, desc["channel"])
        comps = {}
        for c in _COMPONENTS:
            info = desc["components"].get(c)
            if info is None:
                comps[c] = None
                continue
            module, _, qual = info["class"].partition(":")
            if not module.startswith(_TRUSTED_PACKAGES):
                raise ValueError(f"path: component {c} has untrusted class {info['class']}")
            klass = getattr(importlib.import_module(module), qual)
            kwargs = {"map_location": map_location}
            if "coordinates" in inspect.signature(klass.load).parameters:
                kwargs["coordinates"] = coords
            comps[c] = klass.load(os.path.join(path, info["file"]), **kwargs)
        return cls(process, comps["proposal"], comps["transfer"], comps["acceptance"],
                   hard_observables=desc["hard_observables"], params=desc["params"],
                   channel=desc["channel"], pdf=desc["pdf"])

    def __repr__(self) -> str:
        return (f"MEMModel(process={self.process!r}, proposal={type(self.proposal).__name__}, "
                f"transfer={type(self.transfer).__name__}, "
                f"acceptance={type(self.acceptance).__name__}, "
                f"hard_observables={self.hard_observables!r})")
