"""Helpers that several test modules share; fixtures are in ``conftest.py``.

pytest puts ``tests/`` on ``sys.path`` (the folder is not a package), so a test module
imports them as ``from _helpers import ...``.
"""

from __future__ import annotations

import pytest
import torch


def seeded(seed: int) -> torch.Generator:
    """A new CPU generator seeded with ``seed``."""
    return torch.Generator().manual_seed(seed)


def save_refusing_overwrite(obj, path) -> None:
    """``obj.save(path)``, and check that saving again to the same path raises
    ``FileExistsError``."""
    obj.save(path)
    with pytest.raises(FileExistsError):
        obj.save(path)


def small_mem_model():
    """A Drell-Yan :class:`~invsim.mem.MEMModel` of exact pieces (no training): a
    two-part proposal mixture, exact transfer and acceptance; five small files saved."""
    from forward.detector import GaussianLeptonDetector
    from forward.processes import get_process
    from invsim.exact import ExactAcceptance, ExactTransfer
    from invsim.mem import MEMModel, StratifiedMixtureProposal
    from invsim.mem.reco_proposal import RecoGaussianProposal

    process = get_process("drell-yan", mll_min=1500.0, mll_max=2500.0)
    det = GaussianLeptonDetector(0.05, 0.03, 0.03, 100.0, 2.5)
    proposal = StratifiedMixtureProposal(
        [RecoGaussianProposal(det, process.sqrt_s),
         RecoGaussianProposal(GaussianLeptonDetector(0.1, 0.05, 0.05), process.sqrt_s)],
        [0.7, 0.3])
    return MEMModel(process, proposal, ExactTransfer(det), ExactAcceptance(det),
                    hard_observables="pt_eta_phi", params={"mzp": 2050.0},
                    ranges={"mzp": (1800.0, 2300.0)})


def reseal_hdf5(path) -> None:
    """Recompute the integrity block of an event file edited with h5py, as if invsim had
    written it so (to test the checks behind the digests)."""
    import hashlib
    from pathlib import Path

    import h5py

    from forward.io.hdf5 import _seal

    spans = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda k, o: spans.__setitem__(k, (o.id.get_offset(),
                                                        o.id.get_storage_size()))
                     if isinstance(o, h5py.Dataset) and o.id.get_offset() is not None else None)
    data = Path(path).read_bytes()
    _seal(Path(path), spans, {k: hashlib.sha256(data[o: o + n]).hexdigest()
                              for k, (o, n) in spans.items()})


def unseal_hdf5(path) -> None:
    """Make an event file look as an older invsim wrote it: no integrity block, no
    ``integrity`` and count attributes."""
    import h5py

    with h5py.File(path, "a") as f:
        for name in ("integrity", "n_events", "n_reco"):
            f.attrs.pop(name, None)
    with open(path, "r+b") as fh:
        fh.write(b"\0" * 4096)
