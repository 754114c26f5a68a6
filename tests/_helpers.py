"""Helpers that several test modules share; fixtures are in ``conftest.py``.

pytest puts ``tests/`` on ``sys.path`` (the folder is not a package), so a test module
imports them as ``from _helpers import ...``.
"""

from __future__ import annotations

import itertools

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


def pythia_hard_process(
    settings: list[str], n_events: int, seed: int = 7, keep_events: bool = False
):
    """σ ± error in pb from Pythia 8's hard process alone (13 TeV, NNPDF3.1 LO α_s = 0.118
    by default: later ``settings`` such as ``PDF:pSet = 17`` override the base ones);
    optionally the (ℓ⁻, ℓ⁺) momenta of the events, shape (n, 2, 4) in GeV."""
    p8 = pytest.importorskip("pythia8mc")
    py = p8.Pythia("", False)
    base = ["Print:quiet = on", "Next:numberCount = 0", "PDF:pSet = 18", "Beams:eCM = 13000",
            "PartonLevel:all = off", "HadronLevel:all = off", "Random:setSeed = on",
            f"Random:seed = {seed}"]
    for s in base + settings:
        assert py.readString(s), s
    assert py.init()
    leptons = []
    for _ in range(n_events):
        if not py.next():
            continue
        if keep_events:
            ev = py.process
            final = [ev[j] for j in range(ev.size()) if ev[j].isFinal()]
            lm = next(p for p in final if p.id() > 0)
            lp = next(p for p in final if p.id() < 0)
            leptons.append([[lm.e(), lm.px(), lm.py(), lm.pz()],
                            [lp.e(), lp.px(), lp.py(), lp.pz()]])
    info = py.infoPython()
    mom = torch.tensor(leptons, dtype=torch.float64) if keep_events else None
    return info.sigmaGen() * 1e9, info.sigmaErr() * 1e9, mom


def five_gluon_parke_taylor(k, nc=3):
    """Σ over colours and helicities of |M|² of five gluons, all outgoing k (n, 5, 4).

    g⁶ N³(N²-1) · 2 Σ_{i<j} s_ij⁴ · Σ_{σ ∈ S_4} 1/|s_1σ2 s_σ2σ3 s_σ3σ4 s_σ4σ5 s_σ5 1|, g = 1.

    The factor 2 counts the MHV-bar helicities; Tr(T^a T^b) = δ^ab.
    """
    def sij(k, a, b):
        return 2.0 * (k[:, a, 0] * k[:, b, 0] - (k[:, a, 1:] * k[:, b, 1:]).sum(-1))

    num = sum(sij(k, a, b) ** 4 for a, b in itertools.combinations(range(5), 2))
    den = sum(1.0 / (sij(k, 0, p[0]) * sij(k, p[0], p[1]) * sij(k, p[1], p[2])
                     * sij(k, p[2], p[3]) * sij(k, p[3], 0)).abs()
              for p in itertools.permutations(range(1, 5)))
    return nc**3 * (nc**2 - 1) * 2 * num * den


def small_mem_model(observables=None):
    """A Drell-Yan :class:`~invsim.mem.MEMModel` of exact pieces (no training): a
    two-part proposal mixture, exact transfer and acceptance; five small files saved.
    ``observables`` (a :class:`~invsim.observables.RecoObservables`) is stored on it."""
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
                    observables=observables, ranges={"mzp": (1800.0, 2300.0)})


def save_toy_events(path, seed: int, n: int = 30):
    """A tiny Drell-Yan event file: n back-to-back e⁻e⁺ pairs of pT 30 GeV and
    pz ~ N(50, 10) GeV (drawn from ``seed``), x1 = x2 = 0.01, written sealed to ``path``.

    Returns:
        The drawn pz, shape (n,) float64 GeV.
    """
    from forward.eventset import EventSet
    from forward.io import save_hdf5

    g = torch.Generator().manual_seed(seed)
    pz = 50.0 + 10.0 * torch.randn(n, dtype=torch.float64, generator=g)
    pt = 30.0 * torch.ones(n, dtype=torch.float64)
    z = torch.zeros(n, dtype=torch.float64)
    p = [torch.stack([torch.hypot(pt, pz), s * pt, z, pz], -1) for s in (1, -1)]
    ev = EventSet(process="drell-yan", momenta=torch.stack(p, 1),
                  x1=torch.full((n,), 0.01, dtype=torch.float64),
                  x2=torch.full((n,), 0.01, dtype=torch.float64),
                  pids=torch.tensor([11, -11]), sqrt_s=13000.0, seed=seed)
    save_hdf5(ev, path, overwrite=True)
    return pz


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
