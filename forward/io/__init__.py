"""Event I/O: :class:`~forward.eventset.EventSet` to and from HDF5, LHE and ROOT.

* :func:`save_hdf5` / :func:`load_hdf5`: lossless, versioned storage of hard and reco
  events (h5py).
* :func:`write_lhe` / :func:`read_lhe`: Les Houches Event files v3 (hard events, for
  Pythia and other tools).
* :func:`write_root` / :func:`read_root`: flat TTrees through uproot (optional extra).
* :func:`read_nanoaod`: reconstructed events from NanoAOD-style ROOT/HDF5 files.
* :func:`read_events`: one entry point for any of these files (format detected).
* :func:`write_events`: HDF5, LHE or ROOT by format name or file suffix.

Writers never replace an existing file unless ``overwrite=True``.
"""

from forward.io.hdf5 import load_hdf5, save_hdf5
from forward.io.lhe import colour_flow, read_lhe, write_lhe
from forward.io.nanoaod import read_nanoaod
from forward.io.read import read_events
from forward.io.root import read_root, write_root
from forward.io.write import EVENT_FORMATS, event_format, write_events

__all__ = [
    "EVENT_FORMATS",
    "colour_flow",
    "event_format",
    "load_hdf5",
    "read_events",
    "read_lhe",
    "read_nanoaod",
    "read_root",
    "save_hdf5",
    "write_events",
    "write_lhe",
    "write_root",
]
