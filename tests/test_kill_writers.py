"""Writers killed mid-write: the old file survives, and the next run leaves no temp file.

Each case starts a subprocess that replaces an existing output with a large one,
waits until its temporary file (``.<name>.<pid>-<token>.tmp``) appears, waits a random
0-150 ms more (a seeded draw) and kills it, always before the commit (the writer's
``os.replace`` is held back a minute, so a loaded machine cannot let the write finish
first): SIGKILL (nothing can clean up; the next
write removes the leftover) or SIGTERM (the writer removes its own temporary file and
exits with status 143). The NetCDF, CSV, JSON and plot writers share the event file's
code path (:func:`forward.files.atomic_target`), so the HDF5 case covers them.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from _helpers import small_mem_model
from test_io import _assert_same, _event_set

from forward.io import load_hdf5, save_hdf5

#: every writer's commit (os.replace of its temporary file or folder) first waits a
#: minute, so a kill at a random time after the temporary file appears always lands
#: before the commit, even when a loaded machine delays the signal
_GATE = """
import os, time
_replace = os.replace
def _gated(*a, **k):
    time.sleep(60)
    return _replace(*a, **k)
os.replace = _gated
"""

_HDF5_WRITER = _GATE + """
import sys, torch
from forward.eventset import EventSet
from forward.io import save_hdf5
n = int(sys.argv[2])
g = torch.Generator().manual_seed(1)
p = torch.rand(n, 2, 4, generator=g, dtype=torch.float64)
p[..., 0] = 10 + p[..., 1:].norm(dim=-1)
x = 0.01 + 0.5 * torch.rand(n, 2, generator=g, dtype=torch.float64)
es = EventSet(process="drell-yan", momenta=p, x1=x[:, 0], x2=x[:, 1],
              pids=torch.tensor([11, -11]), sqrt_s=13000.0)
print("ready", flush=True)
save_hdf5(es, sys.argv[1], overwrite=True)
print("done", flush=True)
"""

_MODEL_WRITER = _GATE + """
import sys
sys.path.insert(0, sys.argv[3])
from _helpers import small_mem_model
m = small_mem_model()
m.info = {"padding": list(range(int(sys.argv[2])))}
print("ready", flush=True)
m.save(sys.argv[1], overwrite=True)
print("done", flush=True)
"""


def _interrupt(script: str, target: Path, size: int, sig: int, rng) -> subprocess.Popen:
    """Run ``script`` replacing ``target``; send ``sig`` while its temp file exists."""
    proc = subprocess.Popen([sys.executable, "-c", script, str(target), str(size),
                             str(Path(__file__).parent)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.{proc.pid}-[0-9a-f]+\.tmp")
    deadline = time.monotonic() + 60
    while not any(pattern.match(p.name) for p in target.parent.iterdir()):
        assert proc.poll() is None, f"the writer ended before writing: {proc.stderr.read()}"
        assert time.monotonic() < deadline, "no temporary file appeared"
        time.sleep(0.002)
    time.sleep(float(rng.uniform(0, 0.15)))
    proc.send_signal(sig)
    proc.wait(timeout=60)
    out, err = proc.stdout.read(), proc.stderr.read()
    assert out.strip() == "", f"the write finished before the kill: {err[-2000:]}"
    return proc


def _temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("kills", [1, pytest.param(10, marks=pytest.mark.slow, id="10-slow")])
def test_hdf5_writer_killed_mid_write(tmp_path, kills):
    rng = np.random.default_rng(81)
    old = _event_set(n=40)
    path = save_hdf5(old, tmp_path / "ev.h5")
    before = path.read_bytes()
    for _ in range(kills):
        proc = _interrupt(_HDF5_WRITER, path, 1_000_000, signal.SIGKILL, rng)
        assert proc.returncode == -signal.SIGKILL
        assert path.read_bytes() == before
        _assert_same(load_hdf5(path), old)
        assert len(_temps(tmp_path)) == 1  # the killed writer's temporary file
        with pytest.warns(UserWarning, match="left by an interrupted run"):
            save_hdf5(old, tmp_path / "ev.h5", overwrite=True)  # the next run
        assert _temps(tmp_path) == []
        before = path.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ev.h5"]


def test_hdf5_writer_terminated_cleans_up(tmp_path):
    rng = np.random.default_rng(82)
    old = _event_set(n=40)
    path = save_hdf5(old, tmp_path / "ev.h5")
    before = path.read_bytes()
    proc = _interrupt(_HDF5_WRITER, path, 1_000_000, signal.SIGTERM, rng)
    assert proc.returncode == 128 + signal.SIGTERM
    assert path.read_bytes() == before and _temps(tmp_path) == []


@pytest.mark.parametrize("kills", [1, pytest.param(10, marks=pytest.mark.slow, id="10-slow")])
def test_model_directory_save_killed_mid_write(tmp_path, kills):
    from invsim.mem import MEMModel

    rng = np.random.default_rng(83)
    small_mem_model().save(tmp_path / "m")
    folder = tmp_path / "m"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    for _ in range(kills):
        proc = _interrupt(_MODEL_WRITER, folder, 1_000_000, signal.SIGKILL, rng)
        assert proc.returncode == -signal.SIGKILL
        assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
        back = MEMModel.load(folder)
        assert back.params == {"mzp": 2050.0} and "padding" not in json.dumps(back.info)
        assert len(_temps(tmp_path)) == 1
        with pytest.warns(UserWarning, match="left by an interrupted run"):
            small_mem_model().save(folder, overwrite=True)
        assert _temps(tmp_path) == []
        before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


@pytest.mark.slow
def test_model_directory_save_terminated_cleans_up(tmp_path):
    rng = np.random.default_rng(84)
    _model_dir = tmp_path / "m"
    small_mem_model().save(_model_dir)
    before = {p.name: p.read_bytes() for p in _model_dir.iterdir()}
    proc = _interrupt(_MODEL_WRITER, _model_dir, 1_000_000, signal.SIGTERM, rng)
    assert proc.returncode == 128 + signal.SIGTERM
    assert {p.name: p.read_bytes() for p in _model_dir.iterdir()} == before
    assert _temps(tmp_path) == []
