"""Observed events for inference: anyone's events file -> the analysis observables.

:func:`load_observed` reads a file with :func:`forward.io.read_events` (invsim's own
HDF5/ROOT event files, NanoAOD-style ROOT/HDF5 ntuples, LHE) and applies the analysis
observables of a model (:class:`~invsim.observables.RecoObservables`), so the same
events give the same tensor whatever the file's object order. Every dropped event is
counted with its reason; a file whose events all fail the selection is an error that
names it. The file's SHA-256 is recorded for provenance.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch

from forward._validation import (
    check_count,
    check_path,
    check_process,
    make_generator,
    resolve_device,
)
from forward.detector.objects import RecoEvents
from forward.events import HardEvents, order_final_state
from forward.eventset import EventSet
from forward.files import sha256_file as file_sha256  # one implementation; name kept
from invsim.observables import RecoObservables

__all__ = ["ObservedEvents", "PartonLevelData", "channel_likelihood", "file_sha256",
           "load_observed", "load_parton",
           "model_likelihood"]


class PartonLevelData(ValueError):
    """The file holds parton-level events only (no reco objects)."""


@dataclass
class ObservedEvents:
    """Events of a file as analysis observables.

    Attributes:
        x: reco observables of the selected events, shape (m, d) float64, in the
            canonical order of the observables.
        path: the file.
        n_read: events in the file.
        failed: selection requirement -> events failing it.
        sha256: the file's SHA-256.
        process: the process named by an invsim event file, or None.
        columns: names of the d columns.
        hard: for parton-level files (LHE, invsim files without reco events), the
            selected hard events in the process's final-state order; else None.
    """

    x: torch.Tensor
    path: str
    n_read: int
    failed: dict[str, int] = field(default_factory=dict)
    sha256: str = ""
    process: str | None = None
    columns: list[str] = field(default_factory=list)
    hard: HardEvents | None = None

    @property
    def n_selected(self) -> int:
        """Number of selected events m."""
        return int(self.x.shape[0])

    def summary(self) -> str:
        """One line: ``'f.root: 812 of 1000 events selected (exactly 2 leptons: 150, ...)'``."""
        text = f"{self.path}: {self.n_selected} of {self.n_read} events selected"
        bad = {k: v for k, v in self.failed.items() if v}
        if bad:
            text += " (dropped: " + ", ".join(f"{k}: {v}" for k, v in bad.items()) + ")"
        return text

    def provenance(self) -> dict:
        """JSON-ready record of the input: path, hash, counts."""
        return {"path": self.path, "sha256": self.sha256, "n_read": self.n_read,
                "n_selected": self.n_selected, "dropped": dict(self.failed)}


def load_observed(path: str | os.PathLike, observables: RecoObservables, *,
                  tree: str | None = None, device=None) -> ObservedEvents:
    """Read an events file and extract the analysis observables of its selected events.

    Args:
        path: invsim HDF5/ROOT event file with reco events, or a NanoAOD-style ROOT/HDF5
            file (see :func:`forward.io.read_events`).
        observables: the analysis observables (a model's ``observables``).
        tree: tree (ROOT) or group (HDF5) of a NanoAOD-style file; default ``Events``.
        device: torch device of the result.

    Returns:
        :class:`ObservedEvents`.

    Raises:
        FileNotFoundError: no such file. ValueError: an unreadable file, a missing
            branch, parton-level events only, or no event passing the selection (the
            message names the file and the reasons).
    """
    device = None if device is None else resolve_device(device)
    from forward.io import read_events

    if not isinstance(observables, RecoObservables):
        raise TypeError(f"observables: expected RecoObservables, got "
                        f"{type(observables).__name__}")
    p = check_path(path)
    if not p.is_file():
        raise FileNotFoundError(f"data: no such file {str(p)!r}")
    if str(p).lower().endswith((".lhe", ".lhe.gz")):
        raise PartonLevelData(f"data: {str(p)!r} is an LHE file: parton-level events, no "
                              "reco objects")
    kw = {} if tree is None else {"tree": tree}
    events = read_events(p, device=device, **kw)
    process = None
    if isinstance(events, EventSet):
        process = events.process or None
        if events.reco is None:
            raise PartonLevelData(f"data: {str(p)!r} holds parton-level events only (no reco "
                             "objects); the MEM needs reconstructed events (pass them through a "
                             "detector, e.g. invsim generate --detector cms)")
        reco = events.reco
    elif isinstance(events, RecoEvents):
        reco = events
    else:  # pragma: no cover - read_events returns one of the two
        raise TypeError(f"data: unexpected reader result {type(events).__name__}")
    ex = observables.extract(reco)
    out = ObservedEvents(ex.x.to(device) if device is not None else ex.x, str(p), ex.n_read,
                         ex.failed, file_sha256(p), process, observables.columns)
    if out.n_selected == 0:
        raise ValueError(f"data: no event of {str(p)!r} passes the selection: "
                         + out.summary().partition(": ")[2])
    return out


def load_parton(path: str | os.PathLike, process, *, device=None) -> ObservedEvents:
    """Read parton-level events (LHE, or an invsim file's hard events) for a process.

    The particles of every event are put in the process's ``final_state`` order
    (:func:`forward.events.order_final_state`, so an LHE file listing ℓ⁺ first reads
    like one listing ℓ⁻ first), and events outside the process's cuts (e.g. its m_ℓℓ
    window) are dropped with a count.

    Returns:
        :class:`ObservedEvents` with ``hard`` set and x = (pT, η, φ) per particle.

    Raises:
        FileNotFoundError, ValueError: as :func:`load_observed`; ids that do not match
            the process's final state (the message names the event); no event inside
            the cuts.
    """
    device = None if device is None else resolve_device(device)
    from forward.io import read_events
    from invsim.observables import hard_pt_eta_phi

    check_process(process)
    p = check_path(path)
    if not p.is_file():
        raise FileNotFoundError(f"data: no such file {str(p)!r}")
    events = read_events(p, device=device)
    if not isinstance(events, EventSet):
        raise ValueError(f"data: {str(p)!r} holds reco objects only, not parton-level events")
    try:
        momenta, _ = order_final_state(events.momenta, events.pids, process.final_state)
    except ValueError as err:
        raise ValueError(f"data: {str(p)!r}: {err}") from None
    hard = HardEvents(momenta.to(torch.float64), events.x1.to(torch.float64),
                      events.x2.to(torch.float64), events.sqrt_s)
    if abs(hard.sqrt_s - process.sqrt_s) > 1e-6 * process.sqrt_s:
        raise ValueError(f"data: {str(p)!r} has sqrt(s) = {hard.sqrt_s:g} GeV, the process "
                         f"{process.sqrt_s:g} GeV")
    inside = process.cuts(hard)
    hard = hard[inside]
    out = ObservedEvents(hard_pt_eta_phi(hard), str(p), len(inside),
                         {"process cuts": int((~inside).sum())}, file_sha256(p),
                         events.process or None, [], hard)
    if out.n_selected == 0:
        raise ValueError(f"data: no event of {str(p)!r} lies inside the process's cuts")
    return out


def model_likelihood(model, data: str | os.PathLike, *, parameters=None,
                     n_samples: int = 1000, seed: int = 0, tree: str | None = None,
                     on_flagged: str = "warn", n_fiducial: int = 100_000,
                     progress: bool = False, device=None, nuisances=()):
    """The ML-MEM likelihood of a model directory for the events of a file.

    Args:
        model: a :class:`~invsim.mem.MEMModel` or the path of a model directory.
        data: events file (see :func:`load_observed`).
        parameters: names of θ; default the model's trained ranges (else every process
            parameter). Other parameters stay at the process defaults.
        n_samples: importance samples per event.
        seed: seeds the proposal draws and the fiducial sample.
        tree: NanoAOD tree or group name.
        on_flagged: ``"error"``, ``"warn"`` or ``"ignore"`` (see :class:`MEMLikelihood`).
        n_fiducial: size of the fiducial sample for σ_fid(θ).
        nuisances: nuisance parameters appended to θ (names of
            :data:`invsim.mem.likelihood.SCALE_NUISANCES`, e.g. ``("log2_mur",
            "log2_muf")``, or ``"jes"`` for a model trained over a JES range,
            :mod:`invsim.mem.detector_nuisances`); reco-level models only.
        progress: progress bars while drawing.
        device: torch device.

    Returns:
        (likelihood, observed): the :class:`~invsim.mem.MEMLikelihood` and the
        :class:`ObservedEvents`. For parton-level files (LHE, invsim files without
        reco events) the likelihood is the model process's parton-level one
        (:class:`~invsim.mem.PartonLikelihood`, the floor), on the events inside the
        process's cuts.

    Raises:
        ValueError: a model without observables, data from another process, or a
            parameter the model's process does not have (each message names it).
    """
    device = None if device is None else resolve_device(device)
    from forward.processes import process_name
    from invsim.infer.flags import check_on_flagged
    from invsim.mem import MEMLikelihood

    # the arguments are checked before any file is read (issue 18)
    check_count("n_samples", n_samples)
    check_count("n_fiducial", n_fiducial, 2)
    make_generator(seed)
    check_on_flagged(on_flagged)
    if isinstance(nuisances, str) or not all(isinstance(n, str) for n in nuisances):
        raise TypeError(f"nuisances: expected a sequence of names, got {nuisances!r}")
    from invsim.mem.detector_nuisances import DETECTOR_NUISANCES
    from invsim.mem.likelihood import SCALE_NUISANCES

    known = [*SCALE_NUISANCES, *DETECTOR_NUISANCES]
    if any(n not in known for n in nuisances):
        raise ValueError(f"nuisances: expected names of {known}, got {list(nuisances)}")
    model = _load_model(model, device)
    if parameters is not None:
        if isinstance(parameters, str):
            raise TypeError(f"parameters: expected a sequence of names, got {parameters!r}")
        unknown = [p for p in parameters if p not in model.process.parameters]
        if unknown:
            raise ValueError(f"parameters: {unknown} are not parameters of the model's process "
                             f"{process_name(model.process)!r}; known: "
                             f"{sorted(model.process.parameters)}")
    name = process_name(model.process)
    obs = model.observables
    if obs is None:
        if len(model.process.final_state) != 2:
            raise ValueError("model: it was trained on observables directly (no "
                             "RecoObservables recorded); pass x_reco from Python instead")
        obs = RecoObservables(leptons=2)
    if parameters is None:  # the trained process parameters (detector nuisances: nuisances=)
        parameters = [k for k in model.ranges if k in model.process.parameters] or None
    try:
        observed = load_observed(data, obs, tree=tree, device=device)
        if len(observed.x) == 0:
            raise ValueError(f"data: {observed.path!r}: none of its {observed.n_read} events "
                             "passes the selection; nothing to infer from")
    except PartonLevelData:
        from invsim.mem.parton import PartonLikelihood

        if tuple(nuisances):
            raise ValueError(f"nuisances: {data!s} holds parton-level events; the scale "
                             "nuisances need a reco-level events file") from None
        observed = load_parton(data, model.process, device=device)
        lik = PartonLikelihood(model.process, observed.hard, parameter_names=parameters,
                               n_fiducial=n_fiducial, seed=seed, device=device)
        return lik, observed
    if observed.process is not None and observed.process != name:
        raise ValueError(f"data: {observed.path!r} holds {observed.process!r} events but the "
                         f"model was trained for {name!r}")
    if parameters is not None:
        unknown = [p for p in parameters if p not in model.process.parameters]
        if unknown:
            raise ValueError(f"parameters: {unknown} are not parameters of the model's process "
                             f"{name!r}; known: {sorted(model.process.parameters)}")
    lik = MEMLikelihood(model, observed.x, n_samples=n_samples, parameter_names=parameters,
                        seed=seed, on_flagged="raise" if on_flagged == "error" else on_flagged,
                        n_fiducial=n_fiducial, progress=progress, device=device,
                        nuisances=nuisances)
    return lik, observed



def _overlap(a: RecoObservables, b: RecoObservables) -> bool:
    """Whether one event can pass both selections (their exact lepton counts and, when
    both are set, electron counts decide; other objects are 'at least' requirements)."""
    if a.leptons != b.leptons:
        return False
    return a.electrons is None or b.electrons is None or a.electrons == b.electrons


def _load_model(model, device, name: str = "model"):
    """A :class:`~invsim.mem.MEMModel` as given, or loaded from its directory."""
    from invsim.mem import MEMModel

    if isinstance(model, MEMModel):
        return model
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"{name}: expected a MEMModel or a model directory, got "
                        f"{type(model).__name__}")
    return MEMModel.load(model, map_location=device)


def channel_likelihood(models, data: str | os.PathLike, **options):
    """One likelihood of an events file split into channels, one model each.

    Each model's observables select its own events from ``data`` (for example
    ``electrons=2`` and ``electrons=0`` for the ee and μμ channels of Drell–Yan; see
    :class:`~invsim.mem.ChannelLikelihood`), so the selections must be disjoint.

    Args:
        models: channel name -> :class:`~invsim.mem.MEMModel` or model directory.
        data: a reco-level events file (see :func:`load_observed`).
        **options: as for :func:`model_likelihood` (parameters, n_samples, seed, ...);
            the same for every channel.

    Returns:
        (likelihood, observed): the :class:`~invsim.mem.ChannelLikelihood` and a dict
        channel name -> :class:`ObservedEvents`.

    Raises:
        ValueError: fewer than one model, overlapping selections, parton-level data or
            a channel with no selected events (each message names the channel).
    """
    from invsim.mem import ChannelLikelihood
    from invsim.mem.parton import PartonLikelihood

    if not isinstance(models, dict) or not models:
        raise ValueError(f"models: expected a non-empty dict name -> model, got {models!r}")
    device = options.get("device")
    loaded = {k: _load_model(m, device, f"models[{k!r}]") for k, m in models.items()}
    names = list(loaded)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            oa, ob = loaded[a].observables, loaded[b].observables
            if oa is None or ob is None or _overlap(oa, ob):
                raise ValueError(f"models: the selections of channels {a!r} and {b!r} overlap "
                                 "(an event could be counted twice); give each channel "
                                 "observables of its own lepton flavour content "
                                 "(RecoObservables.electrons, e.g. a process with "
                                 "--set leptons=ee and one with leptons=mumu)")
    liks, observed = {}, {}
    for name, model in loaded.items():
        try:
            lik, obs = model_likelihood(model, data, **options)
        except ValueError as err:
            raise ValueError(f"channel {name!r}: {err}") from err
        if isinstance(lik, PartonLikelihood):
            raise ValueError(f"channel {name!r}: {data!s} holds parton-level events; channels "
                             "split reco-level events")
        liks[name], observed[name] = lik, obs
    return ChannelLikelihood(liks), observed
