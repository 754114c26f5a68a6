"""Provenance records (forward.provenance) in an event file, a model directory, a posterior
NetCDF and a scan; the recorded input hashes follow the input files."""

from __future__ import annotations

import datetime
import hashlib
import json

import arviz as az
import torch
from _helpers import save_toy_events
from click.testing import CliRunner

from forward.io import load_hdf5
from forward.io.hdf5 import verify_hdf5
from forward.provenance import (
    command_line,
    describe_pdf,
    input_hashes,
    path_sha256,
    provenance,
    recording_command,
)
from invsim.cli import cli

FACTORY = "invsim.infer.toys:gaussian_mean_factory"  # x = pz of particle 0 ~ N(mu, 10 GeV)
KEYS = {"provenance_version", "invsim_version", "python", "torch", "process", "settings",
        "parameters", "pdf", "seed", "device", "command", "created_utc", "inputs"}


def _sha(path) -> str:
    """Independent reference: hashlib over the whole file at once."""
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _pdf_file_sha() -> str:
    from forward.pdf.discovery import find_member

    return _sha(find_member("NNPDF31_lo_as_0118", 0).data_file)


def _check_common(rec: dict, *, process: str, seed, device="cpu") -> None:
    assert KEYS <= set(rec), KEYS - set(rec)
    from forward import __version__

    assert rec["provenance_version"] == 1 and rec["invsim_version"] == __version__
    assert rec["torch"] == torch.__version__
    assert rec["process"] == process and rec["seed"] == seed and rec["device"] == device
    assert rec["pdf"] == {"set": "NNPDF31_lo_as_0118", "member": 0, "sha256": _pdf_file_sha()}
    when = datetime.datetime.fromisoformat(rec["created_utc"])
    assert when.utcoffset() == datetime.timedelta(0)
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((now - when).total_seconds()) < 600
    text = json.dumps(rec)  # host-independent: no host or user names
    import getpass
    import socket

    assert socket.gethostname() not in text and f"/{getpass.getuser()}/" not in text


def test_event_file_records_full_provenance(tmp_path):
    from forward.detector import Detector

    card = tmp_path / "card.json"
    card.write_text(json.dumps(Detector("cms").card.to_dict()))
    out = tmp_path / "dy.h5"
    args = ["generate", "drell-yan", "--events", "40", "--set", "mll_min=60", "--set",
            "mll_max=120", "--train-calls", "2000", "--overweight", "0.01", "--seed", "3",
            "--detector", str(card), "-o", str(out)]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert verify_hdf5(out)  # the record is inside the sealed metadata
    rec = load_hdf5(out).metadata["provenance"]
    _check_common(rec, process="drell-yan", seed=3)
    assert rec["settings"] == {"mll_min": 60, "mll_max": 120}
    assert rec["parameters"]["mzp"] == 2000.0 and set(rec["parameters"]) >= {"mzp", "gzp"}
    assert rec["command"] == ["invsim", *args]
    assert rec["inputs"] == {str(card): _sha(card)}
    assert command_line() is None  # the command line is forgotten when the command ends


def test_model_directory_records_full_provenance(tmp_path):
    from invsim.mem import MEMModel
    from tests._helpers import small_mem_model

    model = small_mem_model()
    model.info = {"seed": 7}
    model.save(tmp_path / "m")
    rec = json.loads((tmp_path / "m" / "mem.json").read_text())["provenance"]
    _check_common(rec, process="drell-yan", seed=7)
    assert rec["settings"]["mll_min"] == 1500.0 and rec["settings"]["mll_max"] == 2500.0
    assert rec["parameters"] == {"mzp": 2050.0}
    assert rec["command"] is None and rec["inputs"] == {}  # saved by a script, no inputs
    assert rec["invsim"] == rec["invsim_version"]  # the key of older model files kept
    MEMModel.load(tmp_path / "m")  # the manifest still verifies
    with recording_command(["invsim", "train", "drell-yan"]):
        model.save(tmp_path / "m", overwrite=True)
    rec = json.loads((tmp_path / "m" / "mem.json").read_text())["provenance"]
    assert rec["command"] == ["invsim", "train", "drell-yan"]


def test_posterior_netcdf_records_provenance_and_input_hash(tmp_path):
    data, out = tmp_path / "toy.h5", tmp_path / "post.nc"
    save_toy_events(data, seed=4)
    args = ["posterior", "--data", str(data), "--likelihood", FACTORY, "--chains", "1",
            "--samples", "30", "--warmup", "30", "--seed", "5", "-o", str(out), "--json"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    rec = json.loads(az.from_netcdf(out).attrs["provenance"])
    _check_common(rec, process="drell-yan", seed=5)
    assert rec["command"] == ["invsim", *args]
    assert rec["method"] == "nuts" and rec["chains"] == 1 and rec["samples"] == 30
    assert rec["inputs"] == {str(data): _sha(data)}
    assert json.loads(res.stdout)["provenance"] == rec
    first = rec["inputs"][str(data)]
    save_toy_events(data, seed=6)  # the same file name, other events
    res = CliRunner().invoke(cli, [*args, "--overwrite"])
    assert res.exit_code == 0, res.output
    rec = json.loads(az.from_netcdf(out).attrs["provenance"])
    assert rec["inputs"][str(data)] == _sha(data) != first


def test_scan_outputs_record_provenance(tmp_path):
    import xarray as xr

    data = tmp_path / "toy.h5"
    save_toy_events(data, seed=4)
    args = ["scan", "--data", str(data), "--likelihood", FACTORY, "--param", "mu=40:60:5",
            "--seed", "2", "-o", str(tmp_path / "s"), "--quiet"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    rec = json.loads((tmp_path / "s" / "scan.json").read_text())["provenance"]
    _check_common(rec, process="drell-yan", seed=2)
    assert rec["grid"] == {"mu": [40.0, 60.0, 5]} and rec["inputs"] == {str(data): _sha(data)}
    with xr.open_dataset(tmp_path / "s" / "scan.nc") as ds:
        assert json.loads(ds.attrs["provenance"]) == rec


def test_library_saves_add_a_minimal_record(tmp_path):
    from invsim.infer import load_inference, save_inference

    idata = az.from_dict(posterior={"mu": torch.zeros(1, 5).numpy()})
    save_inference(idata, tmp_path / "p.nc")
    rec = json.loads(load_inference(tmp_path / "p.nc").attrs["provenance"])
    assert KEYS <= set(rec) and rec["command"] is None and rec["process"] is None


def test_path_sha256_of_files_and_directories(tmp_path):
    d = tmp_path / "d"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_text("alpha")
    (d / "sub" / "b.bin").write_bytes(b"\x00\x01")
    assert path_sha256(d / "a.txt") == hashlib.sha256(b"alpha").hexdigest()
    ref = hashlib.sha256(
        f"a.txt\t{hashlib.sha256(b'alpha').hexdigest()}\n"
        f"sub/b.bin\t{hashlib.sha256(bytes([0, 1])).hexdigest()}\n".encode()).hexdigest()
    assert path_sha256(d) == ref
    (d / "sub" / "b.bin").write_bytes(b"\x00\x02")  # one byte of one file
    assert path_sha256(d) != ref
    hashes = input_hashes([d / "a.txt", None, "cms", f"{d / 'a.txt'}:make"])
    assert hashes == {str(d / "a.txt"): path_sha256(d / "a.txt"),
                      f"{d / 'a.txt'}:make": path_sha256(d / "a.txt")}


def test_describe_pdf_forms():
    sha = _pdf_file_sha()
    ref = {"set": "NNPDF31_lo_as_0118", "member": 0, "sha256": sha}
    assert describe_pdf("NNPDF31_lo_as_0118") == ref
    assert describe_pdf("NNPDF31_lo_as_0118/0") == ref
    assert describe_pdf(315000) == {"lhapdf_id": 315000, **ref}
    assert describe_pdf(None) is None
    rec = provenance(process="drell-yan", seed=1)
    assert rec["pdf"] == ref and rec["command"] is None
