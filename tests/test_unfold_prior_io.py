"""PriorIndependentUnfolder.save / load: a round trip gives the same condition and the
same unfolded events; bad files, statistics and coordinates are refused."""

from __future__ import annotations

import pytest
import torch

from invsim.flows import FlowConfig, TrainConfig, observable_preprocessing
from invsim.hardspace import HardCoordinates
from invsim.unfold import Unfolder
from invsim.unfold_prior import DatasetSummary, PriorIndependentUnfolder
from tests.test_unfold_prior import ToyMap, cat, reco_mass, toy

pytestmark = pytest.mark.usefixtures("one_thread")

F64 = torch.float64


class ShiftedMap(ToyMap):
    """The toy map with another mass range: a different phase-space map."""

    def forward(self, r):
        return super().forward(r * 0.5)


@pytest.fixture(scope="module")
def trained():
    g = torch.Generator().manual_seed(3)
    parts = [toy(t, 400, g) for t in (95.0, 105.0)]
    hard = cat([h for h, _ in parts])
    x = torch.cat([x for _, x in parts])
    theta = torch.tensor([95.0, 105.0], dtype=F64).repeat_interleave(400)
    pi = PriorIndependentUnfolder(
        HardCoordinates(ToyMap()), observable_preprocessing(["real", "real"]),
        DatasetSummary(reco_mass, name="m0", aggregate="mean"),
        FlowConfig(transforms=2, hidden_features=(16, 16), conditional_affine=True), seed=1)
    pi.fit(hard, x, theta, config=TrainConfig(epochs=1, batch_size=256, patience=None),
           seed=2, progress=False)
    return pi, toy(101.0, 200, g)[1]


def test_round_trip(trained, tmp_path):
    pi, x = trained
    path = tmp_path / "pi.pt"
    pi.save(path)
    back = PriorIndependentUnfolder.load(path, reco_mass, coordinates=HardCoordinates(ToyMap()))
    assert back.summary.to_dict() == pi.summary.to_dict()
    assert back.condition(x) == pi.condition(x)
    a = pi.sample(x, 2, generator=torch.Generator().manual_seed(5))
    b = back.sample(x, 2, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a.momenta, b.momenta)
    # log q of the same events under both
    cond = {"m0": pi.condition(x)}
    ev = pi.sample(x[:20], 1, generator=torch.Generator().manual_seed(6))
    assert torch.allclose(pi.unfolder.log_prob(ev, x[:20], cond),
                          back.unfolder.log_prob(ev, x[:20], cond), rtol=0, atol=0)
    # the loaded one saves again, and refuses to overwrite by default
    back.save(tmp_path / "again.pt")
    with pytest.raises(FileExistsError):
        back.save(tmp_path / "again.pt")
    back.save(tmp_path / "again.pt", overwrite=True)


def test_refusals(trained, tmp_path):
    pi, _ = trained
    path = tmp_path / "pi.pt"
    pi.save(path)
    coords = HardCoordinates(ToyMap())
    with pytest.raises(ValueError, match="statistic: its values"):
        PriorIndependentUnfolder.load(path, lambda x: x[:, 0] + 1.0, coordinates=coords)
    with pytest.raises(TypeError, match="statistic"):
        PriorIndependentUnfolder.load(path, "median", coordinates=coords)
    with pytest.raises(ValueError, match="coordinates"):
        PriorIndependentUnfolder.load(path, reco_mass, coordinates=HardCoordinates(ShiftedMap()))
    with pytest.raises(FileNotFoundError):
        PriorIndependentUnfolder.load(tmp_path / "none.pt", reco_mass, coordinates=coords)
    pi.unfolder.save(tmp_path / "plain.pt")  # an Unfolder file is not this kind
    with pytest.raises(ValueError, match="prior_independent_unfolder"):
        PriorIndependentUnfolder.load(tmp_path / "plain.pt", reco_mass, coordinates=coords)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="readable"):
        PriorIndependentUnfolder.load(tmp_path / "junk.pt", reco_mass, coordinates=coords)
    fresh = PriorIndependentUnfolder(coords, observable_preprocessing(["real", "real"]),
                                     DatasetSummary(reco_mass, name="m0"))
    with pytest.raises(RuntimeError, match="not trained"):
        fresh.save(tmp_path / "fresh.pt")
    assert isinstance(Unfolder.load(tmp_path / "plain.pt", coordinates=coords), Unfolder)
