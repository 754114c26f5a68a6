"""Files carry their integrity: HDF5 event files and model directories are verified on
reading (hashes, counts, dtypes, ranges), LHE files are line-checked, and outputs are
checked and locked before any work (``forward.files.check_output``).

The byte-flip sweeps define *corrupting* as follows. Event file: a flip of any byte
after the 4096-byte user block (HDF5's own structures, attributes and the data: the
integrity block covers every one of them, and HDF5 is not asked to parse a corrupted
file, since it can crash on one), and a flip in the user block that changes the parsed
integrity block; flips in the block's unused padding are not corrupting and must load
to exactly the events written. Model directory: any byte of a file other than the
manifest, or a change of the manifest's parsed JSON. Every corrupting flip must be
refused with a ValueError naming the file (and, for a flip inside a dataset's stored
bytes, the dataset).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from _helpers import reseal_hdf5, small_mem_model, unseal_hdf5
from click.testing import CliRunner
from test_io import _assert_same, _event_set

from forward.files import (
    MANIFEST,
    OutputBusyError,
    atomic_target,
    check_output,
    clean_stale,
    temp_name,
)
from forward.io import load_hdf5, read_lhe, save_hdf5, write_lhe

# ---------------------------------------------------------------- HDF5 event files


def _spans(path) -> dict[str, tuple[int, int]]:
    """Byte range of each dataset's stored data, from the file's integrity block."""
    head = Path(path).read_bytes()[:4096]
    table = json.loads(head[head.index(b"\n") + 1:].split(b"\n")[0])
    return {k: (v[0], v[0] + v[1]) for k, v in table["datasets"].items()}


@pytest.mark.parametrize("n_flips", [
    240, pytest.param(3000, marks=pytest.mark.slow, id="3000-slow")])
def test_hdf5_byte_flip_sweep_refuses_every_corrupting_flip(tmp_path, n_flips):
    """Single-byte flips (random nonzero XOR mask) of a 30-event file with reco: half at
    uniform positions over the file, half inside the datasets' data."""
    events = _event_set(n=30)
    good = save_hdf5(events, tmp_path / "good.h5")
    data = good.read_bytes()
    head = data[:4096]
    block_end = head.index(b"\n", head.index(b"\n") + 1) + 1  # magic line + JSON line
    spans = _spans(good)
    rng = np.random.default_rng(18)
    inside = np.concatenate([np.arange(a, b) for a, b in spans.values()])
    positions = np.concatenate([rng.integers(0, len(data), n_flips // 2),
                                rng.choice(inside, n_flips - n_flips // 2)])
    counts = {"tried": 0, "corrupting": 0, "corrupting_refused": 0, "harmless_loaded": 0,
              "named_dataset": 0}
    bad = tmp_path / "flip.h5"
    for pos in positions:
        flipped = bytearray(data)
        flipped[pos] ^= int(rng.integers(1, 256))
        bad.write_bytes(bytes(flipped))
        corrupting = bool(pos >= 4096 or pos < block_end)
        counts["tried"] += 1
        counts["corrupting"] += corrupting
        try:
            back = load_hdf5(bad)
        except ValueError as err:
            assert "flip.h5" in str(err)
            assert corrupting, f"flip at byte {pos} (user-block padding) was refused: {err}"
            counts["corrupting_refused"] += 1
            hit = [k for k, (a, b) in spans.items() if a <= pos < b]
            if hit:
                assert f"dataset {hit[0]!r}" in str(err), (pos, str(err))
                counts["named_dataset"] += 1
            continue
        assert not corrupting, f"flip at byte {pos} was accepted"
        _assert_same(back, events)
        counts["harmless_loaded"] += 1
    print(f"\nHDF5 byte-flip sweep ({len(data)} bytes): {counts}")
    assert counts["corrupting_refused"] == counts["corrupting"] > n_flips // 2
    assert counts["named_dataset"] >= n_flips - n_flips // 2
    assert counts["tried"] == n_flips


def _edit(path, key, fn, mode):
    with h5py.File(path, "a") as f:
        data = fn(f[key][()])
        del f[key]
        f[key] = data
    if mode == "resealed":  # as a writer that sealed bad content would
        reseal_hdf5(path)
    elif mode == "old":  # an older invsim's file: only the content checks protect it
        unseal_hdf5(path)


@pytest.mark.parametrize("mode", ["edited", "resealed", "old"])
@pytest.mark.parametrize(("key", "fn", "message"), [
    ("hard/x1", lambda a: np.where(np.arange(len(a)) == 3, np.nan, a), "non-finite"),
    ("hard/x1", lambda a: np.where(np.arange(len(a)) == 3, 5.0, a), r"\(0, 1\]"),
    ("hard/x2", lambda a: np.where(np.arange(len(a)) == 0, 0.0, a), r"\(0, 1\]"),
    ("reco/met", lambda a: np.where(np.arange(a.size).reshape(a.shape) == 4, np.nan, a),
     "non-finite"),
    ("hard/pids", lambda a: a.astype(np.float64) + 0.5, "integer"),
    ("hard/momenta", lambda a: a + np.where(np.arange(a.size).reshape(a.shape) == 9, np.inf, 0),
     "non-finite"),
    ("hard/momenta", lambda a: a * np.array([-1.0, 1, 1, 1]), "negative energy"),
    ("reco/momenta", lambda a: a * np.array([0.5, 1, 1, 1]), "mass"),
    ("hard/weights", lambda a: a[:-1], r"shape \(30,\)"),
    ("reco/hard_index", lambda a: a + 100, r"indices in \[0, 30\)"),
])
def test_hdf5_bad_content_is_refused_naming_file_and_dataset(tmp_path, key, fn, message, mode):
    """Edited after writing: the digests refuse it; sealed with bad content or an older
    file: the content checks refuse it, naming the dataset."""
    path = save_hdf5(_event_set(n=30), tmp_path / "ev.h5")
    _edit(path, key, fn, mode)
    expected = ("SHA-256|changed after invsim wrote it" if mode == "edited"
                else f"'{key}'.*{message}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with pytest.raises(ValueError, match=expected) as info:
            load_hdf5(path)
    assert "ev.h5" in str(info.value)


def test_hdf5_attributes_and_counts_are_verified(tmp_path):
    path = save_hdf5(_event_set(n=30), tmp_path / "ev.h5")
    with h5py.File(path, "a") as f:
        f.attrs["process"] = "drell-yam"
    with pytest.raises(ValueError, match="changed after invsim wrote it"):
        load_hdf5(path)
    with h5py.File(path, "a") as f:
        f.attrs["process"] = "drell-yan"
        f.attrs["n_events"] = 29
    reseal_hdf5(path)
    with pytest.raises(ValueError, match="n_events = 29 but the datasets hold 30"):
        load_hdf5(path)
    with open(path, "r+b") as fh:  # the block's first line damaged: the attribute says
        fh.write(b"X")
    with pytest.raises(ValueError, match="integrity block .* is missing or damaged"):
        load_hdf5(path)


def test_hdf5_old_files_without_hashes_load_with_one_warning(tmp_path):
    events = _event_set(n=30)
    path = save_hdf5(events, tmp_path / "old.h5")
    unseal_hdf5(path)
    with pytest.warns(UserWarning, match="without content hashes"):
        back = load_hdf5(path)
    _assert_same(back, events)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_hdf5(path)  # once per file


def test_hdf5_not_a_file_and_truncated_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_hdf5(tmp_path / "none.h5")
    path = save_hdf5(_event_set(n=30), tmp_path / "ev.h5")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="ev.h5.*truncated"):
        load_hdf5(path)


def test_hdf5_empty_event_set_round_trips_verified(tmp_path):
    # an empty dataset has no storage in HDF5 (undefined offset): the seal must still hold
    from forward.eventset import EventSet
    from forward.io.hdf5 import verify_hdf5

    empty = EventSet(process="drell-yan", momenta=torch.zeros(0, 2, 4, dtype=torch.float64),
                     x1=torch.zeros(0, dtype=torch.float64),
                     x2=torch.zeros(0, dtype=torch.float64), pids=torch.tensor([11, -11]),
                     sqrt_s=13000.0, seed=3)
    path = save_hdf5(empty, tmp_path / "empty.h5")
    assert verify_hdf5(path)
    back = load_hdf5(path)
    assert len(back) == 0 and back.momenta.shape == (0, 2, 4)


# ---------------------------------------------------------------- model directories


@pytest.mark.parametrize("per_file", [
    20, pytest.param(200, marks=pytest.mark.slow, id="200-slow")])
def test_model_directory_byte_flip_sweep(tmp_path, per_file):
    """``per_file`` flips in each file of a saved model directory: every flip outside the manifest
    changes a file's bytes (corrupting), and a manifest flip is corrupting when the
    parsed manifest changes; every corrupting flip is refused."""
    from invsim.mem import MEMModel

    small_mem_model().save(tmp_path / "m")
    folder = tmp_path / "m"
    files = sorted(p.name for p in folder.iterdir())
    assert MANIFEST in files and "mem.json" in files and len(files) == 6
    manifest = json.loads((folder / MANIFEST).read_text())
    rng = np.random.default_rng(8)
    counts = {"tried": 0, "corrupting": 0, "corrupting_refused": 0, "harmless_loaded": 0}
    for name in files:
        file = folder / name
        data = file.read_bytes()
        for pos in rng.integers(0, len(data), per_file):
            flipped = bytearray(data)
            flipped[pos] ^= int(rng.integers(1, 256))
            file.write_bytes(bytes(flipped))
            corrupting = name != MANIFEST
            if not corrupting:
                try:
                    corrupting = json.loads(bytes(flipped)) != manifest
                except ValueError:
                    corrupting = True
            counts["tried"] += 1
            counts["corrupting"] += corrupting
            try:
                MEMModel.load(folder)
            except ValueError as err:
                assert str(folder) in str(err)
                counts["corrupting_refused"] += corrupting
            else:
                assert not corrupting, f"flip at byte {pos} of {name} was accepted"
                counts["harmless_loaded"] += 1
            file.write_bytes(data)
    print(f"\nmodel-directory byte-flip sweep ({len(files)} files): {counts}")
    assert counts["tried"] == 6 * per_file
    assert counts["corrupting_refused"] == counts["corrupting"] >= 5 * per_file
    MEMModel.load(folder)  # restored: loads again


def test_model_directory_mixture_of_two_saves_is_refused(tmp_path):
    from invsim.mem import MEMModel

    a, b = small_mem_model(), small_mem_model()
    b.params = {"mzp": 2100.0}
    a.save(tmp_path / "a")
    b.save(tmp_path / "b")
    (tmp_path / "a" / "mem.json").write_bytes((tmp_path / "b" / "mem.json").read_bytes())
    with pytest.raises(ValueError, match="'mem.json' is corrupted"):
        MEMModel.load(tmp_path / "a")
    a.save(tmp_path / "a", overwrite=True)
    (tmp_path / "a" / "stray.pt").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"\['stray.pt'\] are not in"):
        MEMModel.load(tmp_path / "a")


# ---------------------------------------------------------------- LHE


def _lhe(tmp_path, n=50):
    ev = _event_set(n=n, with_reco=False)
    path = write_lhe(ev, tmp_path / "ev.lhe")
    return path, path.read_text().splitlines(keepends=True)


def _line_of(lines, text, nth=0):
    return [i for i, s in enumerate(lines) if s.strip().startswith(text)][nth]


def test_lhe_truncated_anywhere_is_an_error_naming_the_line(tmp_path):
    path, lines = _lhe(tmp_path)
    assert len(read_lhe(path)) == 50
    cut = tmp_path / "cut.lhe"
    for stop, message in [
        (len(lines) // 2, r"ends inside the event started at line \d+"),
        (_line_of(lines, "</event>", 21) + 1, "no </LesHouchesEvents>"),
        (len(lines) - 1, "no </LesHouchesEvents>"),
        (_line_of(lines, "<init>") + 2, r"ends inside the <init> block started at line \d+"),
        (_line_of(lines, "<header>") + 1, "no </LesHouchesEvents>"),
    ]:
        cut.write_text("".join(lines[:stop]))
        with pytest.raises(ValueError, match=message) as info:
            read_lhe(cut)
        assert "cut.lhe" in str(info.value)
    text = "".join(lines)
    cut.write_text(text[: text.index("</invsim>") - 20])  # inside the JSON header
    with pytest.raises(ValueError, match="ends inside the <invsim> block started at line 3"):
        read_lhe(cut)
    cut.write_text(text[: text.index("</init>") - 3])  # mid-line of the <init> block
    with pytest.raises(ValueError, match=r"line \d+: malformed <init>"):
        read_lhe(cut)


def test_lhe_particle_count_mismatches_and_malformed_lines(tmp_path):
    path, lines = _lhe(tmp_path, n=5)
    bad = tmp_path / "bad.lhe"
    # third event: <event> at index ev (line ev + 1), header line ev + 2, particles on
    # lines ev + 3 .. ev + 6, #pdf on line ev + 7, </event> on line ev + 8
    ev = _line_of(lines, "<event", 2)
    cases = [
        # an extra particle line (a copy of the first final-state particle)
        (lines[: ev + 4] + [lines[ev + 4]] + lines[ev + 4:],
         rf"line {ev + 7}: a particle line beyond the NUP = 4 particles the event header "
         rf"\(line {ev + 2}\)"),
        # a particle line missing: the #pdf line is read where the 4th particle should be
        (lines[: ev + 5] + lines[ev + 6:], rf"line {ev + 6}: .* fewer than NUP = 4"),
        # particle lines missing up to </event>
        (lines[: ev + 4] + lines[ev + 7:], rf"line {ev + 2}: the event header says NUP = 4 "
                                           "particles, the event has 2 lines"),
        # a malformed particle line
        (lines[: ev + 3] + [" 11 1 1 2 0 0 abc 0 0 0 0 0. 9.\n"] + lines[ev + 4:],
         rf"line {ev + 4}: malformed particle line"),
        # a malformed event header line
        (lines[: ev + 1] + [" four 1 1.0 91 0.0078 0.118\n"] + lines[ev + 2:],
         rf"line {ev + 2}: malformed event header"),
        # non-finite momentum
        (lines[: ev + 3] + [lines[ev + 3].replace(lines[ev + 3].split()[6], "nan", 1)]
         + lines[ev + 4:], rf"line {ev + 4}: non-finite momentum"),
        # a missing </event>: the next <event> opens inside it
        (lines[: ev + 7] + lines[ev + 8:], r"<event> inside the event started at line"),
        # x out of range on the #pdf line
        (lines[: ev + 6] + ["#pdf 2 -2 1.5 0.1 91 0 0\n"] + lines[ev + 7:],
         rf"line {ev + 7}: #pdf line"),
    ]
    assert lines[ev + 7].strip() == "</event>" and lines[ev + 6].startswith("#pdf")
    for content, message in cases:
        bad.write_text("".join(content))
        with pytest.raises(ValueError, match=message) as info:
            read_lhe(bad)
        assert "bad.lhe" in str(info.value)


def test_lhe_cut_in_the_header_is_not_a_bare_stop_iteration(tmp_path):
    _, lines = _lhe(tmp_path, n=2)
    bad = tmp_path / "head.lhe"
    for stop in range(1, _line_of(lines, "<event")):
        bad.write_text("".join(lines[:stop]))
        with pytest.raises(ValueError, match="head.lhe"):
            read_lhe(bad)


# ---------------------------------------------------------------- outputs


def test_check_output_refuses_before_any_work(tmp_path):
    ev = tmp_path / "ev.h5"
    ev.write_bytes(b"data")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_output(tmp_path / "no" / "sub" / "out.h5")
    with pytest.raises(FileExistsError, match="pass --overwrite"):
        check_output(ev)
    with pytest.raises(ValueError, match="is the input"):
        check_output(ev, inputs=[ev], overwrite=True)
    link = tmp_path / "link.h5"
    link.symlink_to(ev)
    with pytest.raises(ValueError, match="is the input"):
        check_output(link, inputs=[ev], overwrite=True)
    with pytest.raises(ValueError, match="or contains it"):
        check_output(tmp_path, inputs=[ev], overwrite=True, directory=True)
    with pytest.raises(FileExistsError, match="is a directory"):
        check_output(tmp_path, overwrite=True)
    if os.geteuid() != 0:  # root may write anywhere
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        with pytest.raises(PermissionError, match="not writable"):
            check_output(ro / "out.h5")
    assert ev.read_bytes() == b"data"


def test_lock_of_a_live_process_is_an_error_and_a_stale_one_is_taken(tmp_path):
    out = tmp_path / "out.h5"
    lock = tmp_path / ".out.h5.lock"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock.write_text(f"{other.pid}\n")
        with pytest.raises(OutputBusyError, match=rf"process {other.pid} \(lock file"):
            check_output(out)
        with pytest.raises(OutputBusyError, match=f"process {other.pid}"):
            save_hdf5(_event_set(n=3, with_reco=False), out)
    finally:
        other.kill()
        other.wait()
    with check_output(out) as held:  # the writer is gone: a stale lock is taken over
        assert lock.read_text().split() == [str(os.getpid())]
        save_hdf5(_event_set(n=3, with_reco=False), out)  # the holder may write
        assert held.lock == lock
    assert not lock.exists()


def test_stale_temp_files_are_removed_at_the_next_write(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "ev.h5"
    stale = tmp_path / f".ev.h5.{dead.pid}-0a1b2c3d.tmp"
    stale.write_bytes(b"x" * 1000)
    legacy = tmp_path / f".ev.h5.{dead.pid}.tmp"  # the name older releases used
    legacy.write_bytes(b"z")
    live = temp_name(out)  # this (live) process: another write going on, kept
    live.write_bytes(b"y")
    with pytest.warns(UserWarning, match="left by an interrupted run"):
        save_hdf5(_event_set(n=3, with_reco=False), out)
    assert not stale.exists() and not legacy.exists() and live.exists()
    live.unlink()
    assert clean_stale(out) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ev.h5"]


def test_atomic_target_removes_the_temp_file_on_error(tmp_path):
    out = tmp_path / "a.json"
    with pytest.raises(RuntimeError), atomic_target(out, False, ".json") as tmp:
        tmp.write_text("half")
        raise RuntimeError("stop")
    assert list(tmp_path.iterdir()) == []


def test_cli_refuses_bad_outputs_before_work(tmp_path):
    from invsim.cli import cli as main

    ev = save_hdf5(_event_set(n=5), tmp_path / "ev.h5")
    before = ev.read_bytes()
    runner = CliRunner()
    res = runner.invoke(main, ["posterior", str(ev), "--likelihood", "nosuch:fn", "-o", str(ev),
                               "--overwrite"])
    assert res.exit_code == 2 and "is the input" in res.output
    assert ev.read_bytes() == before
    res = runner.invoke(main, ["generate", "drell-yan", "--events", "10", "-o",
                               str(tmp_path / "nodir" / "sub" / "out.h5")])
    assert res.exit_code == 2 and "does not exist" in res.output
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / ".out.h5.lock").write_text(f"{other.pid}\n")
        res = runner.invoke(main, ["generate", "drell-yan", "--events", "10", "-o",
                                   str(tmp_path / "out.h5")])
        assert res.exit_code == 1 and f"process {other.pid}" in res.output
    finally:
        other.kill()
        other.wait()
    assert not (tmp_path / "out.h5").exists()
    assert torch.equal(load_hdf5(ev).momenta, _event_set(n=5).momenta)


def test_verify_hdf5_checks_every_byte_without_hdf5(tmp_path):
    from forward.io.hdf5 import verify_hdf5

    path = save_hdf5(_event_set(n=30), tmp_path / "ev.h5")
    assert verify_hdf5(path)
    data = bytearray(path.read_bytes())
    name, (start, _) = sorted(_spans(path).items())[0]
    data[start] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=f"dataset '{name}': content differs"):
        verify_hdf5(path)
    unseal_hdf5(path)
    assert not verify_hdf5(path)
