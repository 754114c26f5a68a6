"""The detector protocol, and detectors by name or description.

A detector is anything with

* ``reconstruct(events, final_state, *, seed=None, generator=None) -> RecoEvents``:
  hard events (momenta (n, k, 4) in GeV) and their PDG ids (k,) or (n, k) in,
  reconstructed objects, missing pT and the selection out;
* optionally ``closed_form(n_leptons, flavours, *, pt_min, eta_max)`` returning a
  :class:`~forward.detector.closed_form.GaussianClosedForm` with the exact acceptance
  and transfer of lepton observables (for validation: the brute-force MEM);
* a ``name`` for provenance.

Both built-in detectors follow it: the card detector
(:class:`~forward.detector.smearing.Detector`) and the Gaussian lepton detector
(:class:`~forward.detector.gaussian.GaussianLeptonDetector`).
:func:`get_detector` builds one from a command-line string, :func:`describe_detector`
and :func:`detector_from_description` turn one into a JSON-ready dict and back (model
directories and event files record the detector that made them).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

from forward.detector.card import DetectorCard, load_card
from forward.detector.gaussian import GaussianLeptonDetector
from forward.detector.objects import RecoEvents
from forward.detector.smearing import Detector
from forward.events import HardEvents

__all__ = ["DetectorModel", "describe_detector", "detector_from_description", "get_detector"]


@runtime_checkable
class DetectorModel(Protocol):
    """What the inverse chain needs of a detector (see the module docstring)."""

    def reconstruct(self, events: HardEvents, final_state, *, seed: int | None = None,
                    generator: torch.Generator | None = None) -> RecoEvents:
        """Reconstructed events of hard events (n,) with ids ``final_state``."""


def _parse_gaussian(text: str) -> GaussianLeptonDetector:
    fields = {f.name for f in dataclasses.fields(GaussianLeptonDetector)}
    kwargs: dict[str, float] = {}
    body = text.partition(":")[2]
    for item in filter(None, (s.strip() for s in body.split(","))):
        key, sep, value = item.partition("=")
        if not sep or key.strip() not in fields:
            raise ValueError(f"detector: expected gaussian:NAME=VALUE,... with NAME in "
                             f"{sorted(fields)}, got {item!r}")
        try:
            kwargs[key.strip()] = float(value)
        except ValueError:
            raise ValueError(f"detector: {key.strip()} expects a number, got {value!r}") from None
    return GaussianLeptonDetector(**kwargs)


def get_detector(spec) -> Any:
    """A detector from a name, a card or a description.

    Args:
        spec: a detector object (returned as is); ``"cms"`` (the default card); a path
            to a JSON/YAML card; ``"gaussian"`` or ``"gaussian:sigma_pt=0.05,sigma_eta=0.01,
            sigma_phi=0.01,pt_min=20,eta_max=2.5"`` (a :class:`GaussianLeptonDetector`,
            unnamed fields at their defaults); a :class:`DetectorCard` or a dict
            overlaid on the default card; a dict written by :func:`describe_detector`.

    Raises:
        ValueError: an unknown name or malformed text. FileNotFoundError: a card path
            that does not exist. TypeError: anything else.
    """
    if isinstance(spec, DetectorModel):
        return spec
    if isinstance(spec, Mapping) and "kind" in spec:
        return detector_from_description(spec)
    if isinstance(spec, str):
        if spec == "gaussian" or spec.startswith("gaussian:"):
            return _parse_gaussian(spec)
        if spec != "cms" and not Path(spec).exists():
            raise ValueError(f"detector: expected 'cms', 'gaussian[:NAME=VALUE,...]' or a card "
                             f"file, got {spec!r} (no such file)")
    if isinstance(spec, (str, Path, DetectorCard, Mapping)) or spec is None:
        return Detector(load_card(spec))
    raise TypeError(f"detector: expected a detector, 'cms', 'gaussian:...', a card or a card "
                    f"file, got {type(spec).__name__}")


def describe_detector(detector) -> dict:
    """A JSON-ready description that :func:`detector_from_description` turns back.

    Raises:
        TypeError: a detector of another class (it cannot be rebuilt from a file).
    """
    if isinstance(detector, GaussianLeptonDetector):
        return {"kind": "gaussian-lepton", "settings": dataclasses.asdict(detector)}
    if isinstance(detector, Detector):
        return {"kind": "card", "card": detector.card.to_dict()}
    raise TypeError(f"detector: only the built-in detectors (Detector, GaussianLeptonDetector) "
                    f"can be described, got {type(detector).__name__}")


def detector_from_description(description: Mapping) -> Any:
    """The detector that :func:`describe_detector` described.

    Raises:
        ValueError: an unknown kind or bad settings.
    """
    kind = description.get("kind") if isinstance(description, Mapping) else None
    if kind == "gaussian-lepton":
        return GaussianLeptonDetector(**dict(description["settings"]))
    if kind == "card":
        return Detector(DetectorCard.from_dict(json.loads(json.dumps(description["card"]))))
    raise ValueError(f"detector: unknown description kind {kind!r}; expected 'gaussian-lepton' "
                     f"or 'card'")
