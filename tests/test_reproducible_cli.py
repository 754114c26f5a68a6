"""The command line is reproducible from its seed: `invsim generate`, `invsim train` and
`invsim posterior` run twice, each in a fresh Python process, give identical data
(event datasets, every tensor of the model directory, every posterior draw and sample
statistic). Only the provenance (time written, output name, wall times) may differ.

Deterministic: no statistical tolerance, so no false failures; slow (six processes).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.slow

h5py = pytest.importorskip("h5py")
az = pytest.importorskip("arviz")

ROOT = Path(__file__).resolve().parents[1]
DETECTOR = "gaussian:sigma_pt=0.03,sigma_eta=0.02,sigma_phi=0.02,pt_min=100,eta_max=2.5"
WINDOW = ["--set", "mll_min=1500", "--set", "mll_max=2500", "--set", "leptons=mumu"]


def _invsim(*args) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", TQDM_DISABLE="1")
    res = subprocess.run([sys.executable, "-m", "invsim", *map(str, args)], env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]


def _datasets(path) -> dict[str, np.ndarray]:
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda k, v: out.__setitem__(k, v[()]) if isinstance(v, h5py.Dataset)
                     else None)
    return out


def _tensors(obj, prefix=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _tensors(v, f"{prefix}/{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _tensors(v, f"{prefix}/{i}")
    else:
        yield prefix, obj


def test_generate_train_posterior_identical_in_two_processes(tmp_path):
    for run in ("a", "b"):
        d = tmp_path / run
        d.mkdir()
        _invsim("generate", "drell-yan", "--events", 200, "--train-calls", 5000, *WINDOW,
                "--seed", 3, "-o", d / "gen.h5")
        _invsim("train", "drell-yan", "--detector", DETECTOR, *WINDOW, "--param",
                "mzp=1800:2300", "--trials", 20000, "--epochs", 1, "--points-per-axis", 2,
                "--seed", 5, "-o", d / "model")
        _invsim("posterior", "--model", d / "model", "--data", d / "gen.h5", "--samples", 20,
                "--warmup", 20, "--chains", 2, "--samples-per-event", 50, "--seed", 9,
                "-o", d / "post.nc")
    a, b = tmp_path / "a", tmp_path / "b"
    ga, gb = _datasets(a / "gen.h5"), _datasets(b / "gen.h5")
    assert ga.keys() == gb.keys() and len(ga) >= 4
    for k in ga:
        assert np.array_equal(ga[k], gb[k]), k
    files = sorted(p.name for p in (a / "model").glob("*.pt"))
    assert files and files == sorted(p.name for p in (b / "model").glob("*.pt"))
    for name in files:
        ta = dict(_tensors(torch.load(a / "model" / name, weights_only=False)))
        tb = dict(_tensors(torch.load(b / "model" / name, weights_only=False)))
        assert ta.keys() == tb.keys()
        for k, x in ta.items():
            same = torch.equal(x, tb[k]) if isinstance(x, torch.Tensor) else x == tb[k]
            assert same, f"{name}{k}"
    pa, pb = az.from_netcdf(a / "post.nc"), az.from_netcdf(b / "post.nc")
    for group in ("posterior", "sample_stats", "log_likelihood"):
        for v in getattr(pa, group).data_vars:
            assert np.array_equal(np.asarray(getattr(pa, group)[v]),
                                  np.asarray(getattr(pb, group)[v]), equal_nan=True), (group, v)
