"""Event I/O: :class:`~forward.eventset.EventSet` to and from HDF5, LHE and ROOT.

* :func:`save_hdf5` / :func:`load_hdf5`: lossless, versioned storage of hard and reco
  events (h5py).
* :func:`write_lhe` / :func:`read_lhe`: Les Houches Event files v3 (hard events, for
  Pythia and other tools).
* :func:`write_root` / :func:`read_root`: flat TTrees through uproot (optional extra).

Writers never replace an existing file unless ``overwrite=True``.
"""

from forward.io.hdf5 import load_hdf5, save_hdf5
from forward.io.lhe import colour_flow, read_lhe, write_lhe
from forward.io.root import read_root, write_root

__all__ = [
    "colour_flow",
    "load_hdf5",
    "read_lhe",
    "read_root",
    "save_hdf5",
    "write_lhe",
    "write_root",
]
