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
