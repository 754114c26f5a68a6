"""One entry point for a physicist's own events file: :func:`read_events`.

The format comes from the file name, the reader from the file's content:

============================ ============================================================
file                          read as
============================ ============================================================
``*.lhe``, ``*.lhe.gz``       parton-level :class:`~forward.eventset.EventSet`
                              (:func:`~forward.io.lhe.read_lhe`, any generator)
``*.root``                    invsim's own file (has the ``invsim`` key):
                              :func:`~forward.io.root.read_root`; else NanoAOD-style
                              reco events (:func:`~forward.io.nanoaod.read_nanoaod`)
``*.h5``, ``*.hdf5``          invsim's own file (root attribute ``format =
                              "invsim.EventSet"``): :func:`~forward.io.hdf5.load_hdf5`;
                              else NanoAOD-style reco events
============================ ============================================================
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from forward.detector.objects import RecoEvents
from forward.events import final_state_permutation
from forward.eventset import EventSet
from forward.io.hdf5 import _FORMAT as _HDF5_FORMAT
from forward.io.hdf5 import load_hdf5
from forward.io.lhe import read_lhe
from forward.io.nanoaod import _container_format, read_nanoaod
from forward.io.root import read_root

__all__ = ["ACCEPTED_FORMATS", "read_events"]

#: what :func:`read_events` accepts, for messages and documentation
ACCEPTED_FORMATS = (
    "LHE (.lhe, .lhe.gz), ROOT (.root: invsim's own or NanoAOD-style) and HDF5 (.h5, .hdf5: "
    "invsim's own or NanoAOD-style)"
)


def _refuse(path: Path, why: str, err: BaseException | None = None) -> ValueError:
    detail = f" ({type(err).__name__}: {err})" if err is not None else ""
    return ValueError(f"{str(path)!r}: {why}{detail}; read_events accepts {ACCEPTED_FORMATS}")


def _in_order(events: EventSet, final_state, path: Path) -> EventSet:
    """The event set with each hard event in the order of ``final_state``.

    ``reco.particle_index`` is remapped to the new slots when the reco objects were made
    from the hard final state (no shower: ``metadata["shower"]`` false and width k).
    """
    try:
        perm = final_state_permutation(events.momenta, events.pids, final_state)
    except ValueError as err:
        raise ValueError(f"{str(path)!r}: {err}") from None
    n, k = perm.shape
    momenta = events.momenta.gather(1, perm[..., None].expand(n, k, 4))
    pids = events.pids_per_event.gather(1, perm)
    if n and bool((pids == pids[0]).all()):
        pids = pids[0].clone()
    reco = events.reco
    if reco is not None and not events.metadata.get("shower") and reco.momenta.shape[1] == k:
        inverse = torch.empty_like(perm)
        inverse.scatter_(1, perm, torch.arange(k, device=perm.device).expand(n, k))
        old = reco.particle_index
        new = inverse[reco.hard_index].gather(1, old.clamp(min=0))
        reco = dataclasses.replace(reco, particle_index=torch.where(old >= 0, new, old))
    return dataclasses.replace(events, momenta=momenta, pids=pids, reco=reco)


def _is_invsim_root(path: Path) -> bool:
    import uproot

    try:
        with uproot.open(path) as f:
            return "invsim" in f
    except Exception as err:  # noqa: BLE001 - any failure means: not a readable ROOT file
        raise _refuse(path, "not a readable ROOT file", err) from err


def _has_integrity_block(path: Path) -> bool:
    """Whether the file starts with invsim's integrity block (:mod:`forward.io.hdf5`)."""
    from forward.io.hdf5 import _MAGIC

    with open(path, "rb") as f:
        return f.read(len(_MAGIC)) == _MAGIC


def _is_invsim_hdf5(path: Path) -> bool:
    from forward.io.hdf5 import _h5py

    try:
        with _h5py().File(path, "r") as f:
            return f.attrs.get("format") == _HDF5_FORMAT
    except OSError as err:
        raise _refuse(path, "not a readable HDF5 file", err) from err


def read_events(
    path: str | os.PathLike,
    *,
    tree: str | None = None,
    final_state: Sequence[int] | torch.Tensor | None = None,
    device: torch.device | str | None = None,
    **kw,
) -> EventSet | RecoEvents:
    """Read an events file of any format invsim knows (see the module docstring).

    Args:
        path: the file; its suffix picks the format (``.lhe``, ``.lhe.gz``, ``.root``,
            ``.h5``, ``.hdf5``), its content picks invsim's own reader or the
            NanoAOD-style one.
        tree: TTree (ROOT) or group (HDF5) of a NanoAOD-style file (default
            ``"Events"``); not used by the other formats (giving it is an error).
        final_state: k PDG ids: hard events (LHE and invsim files) come back in this
            order (:func:`forward.events.order_final_state`), e.g. a process's
            ``final_state``; an invsim file's ``reco.particle_index`` follows the new
            slots (unless its reco objects came from a shower, ``metadata["shower"]``).
            Not for NanoAOD-style (reco-only) files.
        device: device of the returned tensors (default CPU).
        **kw: passed on: ``dtype``, ``reader`` and ``pad`` to
            :func:`~forward.io.lhe.read_lhe`; ``collections``,
            ``btag_threshold``, ``dtype`` to :func:`~forward.io.nanoaod.read_nanoaod`.
            invsim's own files take none.

    Returns:
        An :class:`~forward.eventset.EventSet` (LHE and invsim files) or
        :class:`~forward.detector.objects.RecoEvents` (NanoAOD-style files).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: an unknown suffix, a file whose content does not match its suffix or
            cannot be read (the message names the path and the formats accepted), or
            any error of the reader used.
        TypeError: keywords the chosen reader does not take.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a str or os.PathLike, got {type(path).__name__}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{str(path)!r}: no such file")
    if not path.is_file():
        raise _refuse(path, "not a file")
    name = path.name.lower()
    if name.endswith((".lhe", ".lhe.gz")):
        if tree is not None:
            raise ValueError(f"tree: names the TTree/group of a NanoAOD-style file; {str(path)!r} "
                             f"is an LHE file, got tree={tree!r}")
        try:
            return read_lhe(path, final_state=final_state, device=device, **kw)
        except (UnicodeDecodeError, OSError, EOFError) as err:
            raise _refuse(path, "not a readable LHE file", err) from err
        except ValueError as err:  # read_lhe's wrapping of the errors above
            cause = err.__cause__
            if isinstance(cause, (UnicodeDecodeError, OSError, EOFError)):
                raise _refuse(path, "not a readable LHE file", cause) from cause
            raise
    if name.endswith((".root", ".h5", ".hdf5")):
        want = "root" if name.endswith(".root") else "hdf5"
        sealed = want == "hdf5" and _has_integrity_block(path)  # verified before parsing
        if not sealed and _container_format(path) != want:
            raise _refuse(path, f"not {'a ROOT' if want == 'root' else 'an HDF5'} file (its first "
                                "bytes do not match)")
        own = sealed or (_is_invsim_root(path) if want == "root" else _is_invsim_hdf5(path))
        if own:
            if tree is not None or kw:
                given = (["tree"] if tree is not None else []) + sorted(kw)
                raise TypeError(f"{given}: not used for invsim's own event files ({str(path)!r}); "
                                "read_events takes only final_state and device for them")
            events = read_root(path, device=device) if want == "root" else load_hdf5(
                path, device=device)
            return events if final_state is None else _in_order(events, final_state, path)
        if final_state is not None:
            raise ValueError(f"final_state: orders hard (parton-level) events; {str(path)!r} is a "
                             "NanoAOD-style file of reconstructed events")
        return read_nanoaod(path, tree="Events" if tree is None else tree, device=device, **kw)
    raise _refuse(path, f"unknown file type {''.join(path.suffixes) or '(no suffix)'!r}")
