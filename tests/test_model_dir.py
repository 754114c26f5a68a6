"""Model directories: format 2 by registry keys, format-1 directories still load, the
save is atomic (an interrupted save leaves the old model whole), and bad directories
are refused with the file named."""

from __future__ import annotations

import json
import os

import pytest
import torch
from _helpers import small_mem_model

from forward.detector import Detector
from forward.files import MANIFEST, write_manifest
from forward.processes import get_process
from invsim.exact import ExactAcceptance, ExactTransfer
from invsim.mem import MEMModel
from invsim.mem.reco_proposal import RecoGaussianProposal
from invsim.observables import RecoObservables


@pytest.fixture
def model():
    return small_mem_model(RecoObservables(leptons=2, lepton_pt_min=100.0))


def _x():
    return torch.tensor([[600.0, 0.3, 0.5, 590.0, -0.4, 0.5 - 3.1]], dtype=torch.float64)


def test_round_trip_keeps_every_piece(model, tmp_path):
    model.save(tmp_path / "m")
    desc = json.loads((tmp_path / "m" / "mem.json").read_text())
    assert desc["format"] == "invsim-mem-model" and desc["format_version"] == 2
    assert desc["components"]["proposal"]["kind"] == "mixture"
    assert [p["kind"] for p in desc["components"]["proposal"]["parts"]] == [
        "reco-gaussian-proposal"] * 2
    back = MEMModel.load(tmp_path / "m")
    assert back.ranges == model.ranges and back.observables == model.observables
    assert back.params == {"mzp": 2050.0}
    assert back.proposal.weights == pytest.approx([0.7, 0.3])
    hard = _x()
    torch.testing.assert_close(back.transfer.log_prob(_x(), hard),
                               model.transfer.log_prob(_x(), hard))


def test_card_detector_exact_pieces_save_and_load(tmp_path):
    det = Detector("cms")
    t = ExactTransfer(det, 2, [((13, -13), 1.0)], pt_min=20.0)
    t.save(tmp_path / "t.pt")
    back = ExactTransfer.load(tmp_path / "t.pt")
    torch.testing.assert_close(back.log_prob(_x(), _x()), t.log_prob(_x(), _x()))


def test_format_1_directories_still_load(model, tmp_path):
    """A directory as invsim 0.1 wrote it: components by module path (classes that
    have moved since), no ranges or observables."""
    model.proposal = model.proposal.components[0]
    model.save(tmp_path / "m")
    meta = tmp_path / "m" / "mem.json"
    desc = json.loads(meta.read_text())
    old = {"format": "invsim-mem-model-1", "process": desc["process"], "pdf": desc["pdf"],
           "params": desc["params"], "channel": 0, "hard_observables": "lepton_pt_eta_phi",
           "components": {
               "proposal": {"class": "invsim.bruteforce:RecoGaussianProposal",
                            "file": "proposal.pt"},
               "transfer": {"class": "invsim.bruteforce:ExactTransfer", "file": "transfer.pt"},
               "acceptance": {"class": "invsim.exact:ExactAcceptance",
                              "file": "acceptance.pt"}}}
    meta.write_text(json.dumps(old))
    (tmp_path / "m" / MANIFEST).unlink()  # old directories have no manifest
    with pytest.warns(UserWarning, match="without a MANIFEST"):
        back = MEMModel.load(tmp_path / "m")
    assert isinstance(back.proposal, RecoGaussianProposal) and back.observables is None
    old["components"]["transfer"]["class"] = "os:system"
    meta.write_text(json.dumps(old))
    with pytest.raises(ValueError, match="untrusted class os:system"):
        MEMModel.load(tmp_path / "m")


def test_interrupted_save_leaves_the_old_model(model, tmp_path, monkeypatch):
    model.save(tmp_path / "m")
    before = {p.name: p.read_bytes() for p in (tmp_path / "m").iterdir()}

    def broken(self, path, *, overwrite=False):
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(ExactAcceptance, "save", broken)
    with pytest.raises(KeyboardInterrupt):
        model.save(tmp_path / "m", overwrite=True)
    after = {p.name: p.read_bytes() for p in (tmp_path / "m").iterdir()}
    assert after == before
    assert sorted(os.listdir(tmp_path)) == ["m"]  # no temporary directory left


def test_bad_directories_are_refused_by_name(model, tmp_path):
    with pytest.raises(FileNotFoundError, match="no mem.json"):
        MEMModel.load(tmp_path)
    model.save(tmp_path / "m")
    meta = tmp_path / "m" / "mem.json"
    desc = json.loads(meta.read_text())
    meta.write_text(json.dumps({**desc, "format_version": 99}))
    with pytest.raises(ValueError, match="'mem.json' is corrupted"):  # the manifest sees it
        MEMModel.load(tmp_path / "m")
    write_manifest(tmp_path / "m")  # as if written so: the content checks refuse it
    with pytest.raises(ValueError, match="format version 99"):
        MEMModel.load(tmp_path / "m")
    meta.write_text(json.dumps({**desc, "components": {
        **desc["components"], "transfer": {"kind": "no-such-kind", "file": "x.pt"}}}))
    write_manifest(tmp_path / "m")
    with pytest.raises(ValueError, match="unknown kind 'no-such-kind'"):
        MEMModel.load(tmp_path / "m")
    meta.write_text("{not json")
    write_manifest(tmp_path / "m")
    with pytest.raises(ValueError, match="not valid JSON"):
        MEMModel.load(tmp_path / "m")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a saved MEM model"):
        model.save(tmp_path / "other", overwrite=True)


def test_observables_of_a_process_follow_its_visible_final_state():
    tt = RecoObservables.for_process(get_process("ttbar", decays="dilepton"), jet_pt_min=30.0)
    assert (tt.leptons, tt.bjets, tt.jets, tt.met) == (2, 2, 0, False)
    assert tt.columns[:6] == ["lminus_pt", "lminus_eta", "lminus_phi", "lplus_pt",
                              "lplus_eta", "lplus_phi"]
    with pytest.raises(ValueError, match="decay them first"):
        RecoObservables.for_process(get_process("ttbar"))
