"""Per-event weights of scale and PDF variations: generation, file formats, command line.

The statistical test compares the generated sample's named weights with
:func:`forward.variations.cross_section_variations` (independent points): per
variation, the ratio Σ w_var / Σ w and the absolute Σ w_var, each within 5 standard
errors of their difference (16 comparisons, |z| < 5: false-failure rate < 1e-5).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from forward.chunked import generate_events_chunked
from forward.events import HardEvents
from forward.eventset import EventSet
from forward.generate import generate_events
from forward.io import (
    event_format,
    load_hdf5,
    read_events,
    read_lhe,
    read_root,
    save_hdf5,
    write_events,
    write_lhe,
    write_root,
)
from forward.processes import get_process
from forward.variations import (
    cross_section_variations,
    event_set_weights,
    pdf_variations,
    scale_variations,
    variation_weights,
)
from invsim.cli import cli

DY = {"mll_min": 60.0, "mll_max": 120.0}
PDF_ALT = "NNPDF31_lo_as_0130"  # ships with pythia8mc


@pytest.fixture(scope="module")
def variations():
    return scale_variations() + pdf_variations([PDF_ALT])


@pytest.fixture(scope="module")
def sample(variations):
    return generate_events("drell-yan", 4000, settings=DY, train_calls=20_000, seed=5,
                           overweight=0.01, variations=variations)


def test_named_weights_sum_to_the_varied_cross_sections(sample, variations):
    assert list(sample.weights_named) == [v.name for v in variations]
    assert sample.metadata["weight_variations"]["mur2_muf1"] == \
        {"mur_factor": 2.0, "muf_factor": 1.0, "pdf": None, "params": {}}
    ref = cross_section_variations(get_process("drell-yan", **DY), variations, 100_000,
                                   seed=7)
    n = len(sample)
    sigma, sigma_err = sample.cross_section, sample.cross_section_error
    assert math.isclose(float(sample.weights.sum()), sigma, rel_tol=1e-12)
    for name, w in sample.weights_named.items():
        # Σ w_var / Σ w and its error (events weighted: overweight events have w > 1)
        w0 = sample.weights.to(torch.float64)
        r = w.to(torch.float64) / w0
        ratio = float((w0 * r).sum() / w0.sum())
        ratio_err = float(torch.sqrt((w0 ** 2 * (r - ratio) ** 2).sum() * n / (n - 1))
                          / w0.sum())
        ref_ratio = ref.results[name].value / ref.central.value
        ref_ratio_err = ref.shift_errors[name] / ref.central.value
        if name == "mur1_muf1":  # the central: factor 1 exactly
            assert bool((r == 1).all())
            continue
        z = (ratio - ref_ratio) / math.hypot(ratio_err, ref_ratio_err)
        assert abs(z) < 5, (name, ratio, ref_ratio, z)
        # the absolute σ of the variation: Σ w_var = σ · mean(r)
        total = float(w.sum())
        err = math.hypot(sigma_err * ratio, sigma * ratio_err, ref.results[name].error)
        assert abs(total - ref.results[name].value) < 5 * err, (name, total, ref.results[name])
    # the variations move σ by much more than the test's resolution
    low = float(sample.weights_named["mur0.5_muf0.5"].sum()) / sigma
    assert low < 0.95


def test_named_weights_are_the_recomputed_factors(sample, variations):
    proc = get_process("drell-yan", **DY)
    hard = sample.hard_events
    factors = variation_weights(proc, HardEvents(hard.momenta.double(), hard.x1.double(),
                                                 hard.x2.double(), hard.sqrt_s),
                                variations, params=sample.parameters, batch_size=700)
    for name, f in factors.items():
        torch.testing.assert_close(sample.weights_named[name], sample.weights * f,
                                   rtol=1e-12, atol=0)
    # batching does not change the factors
    again = event_set_weights(proc, sample, variations, batch_size=10_000)
    for name in factors:
        torch.testing.assert_close(again[name], sample.weights_named[name], rtol=1e-14, atol=0)


@pytest.mark.parametrize("suffix", [".h5", ".lhe", ".lhe.gz", ".root"])
def test_round_trips_keep_the_named_weights(sample, tmp_path, suffix):
    path = write_events(sample, tmp_path / f"dy{suffix}")
    back = read_events(path)
    assert list(back.weights_named) == list(sample.weights_named)
    for name, w in sample.weights_named.items():
        assert torch.equal(back.weights_named[name], w), name
    assert torch.equal(back.weights, sample.weights)
    if suffix.startswith(".lhe"):  # both LHE readers
        own = read_lhe(path, reader="invsim")
        for name, w in sample.weights_named.items():
            assert torch.equal(own.weights_named[name], w), name


def test_process_ids_round_trip(sample, tmp_path):
    ids = torch.arange(len(sample)) % 3 + 7
    es = EventSet(**{**sample.__dict__, "process_ids": ids})
    for path, read in ((save_hdf5(es, tmp_path / "a.h5"), load_hdf5),
                       (write_root(es, tmp_path / "a.root"), read_root),
                       (write_lhe(es, tmp_path / "a.lhe"), read_lhe)):
        back = read(path)
        assert torch.equal(back.process_ids, ids), path
    # LHE: one <init> process line per id, σ apportioned by the weights
    back = read_lhe(tmp_path / "a.lhe")
    assert back.cross_section == sample.cross_section  # from the <invsim> header
    with pytest.raises(ValueError, match=r"process_ids: expected an integer tensor of shape"):
        EventSet(**{**sample.__dict__, "process_ids": ids.double()})


def test_hdf5_named_weights_are_sealed(sample, tmp_path):
    from forward.io.hdf5 import _integrity_block

    path = save_hdf5(sample, tmp_path / "dy.h5")
    offset, length, _ = _integrity_block(path)["hard/weights_named"]
    data = bytearray(path.read_bytes())
    data[offset + length // 2] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="'hard/weights_named'.*differs from its SHA-256"):
        load_hdf5(path)


def test_event_set_refuses_bad_named_weights(sample):
    n = len(sample)
    fields = dict(sample.__dict__)
    with pytest.raises(ValueError, match=rf"weights_named\['a'\]: expected shape \({n},\)"):
        EventSet(**{**fields, "weights_named": {"a": torch.ones(n + 1, dtype=torch.float64)}})
    with pytest.raises(TypeError, match=r"weights_named\['a'\]: expected a floating-point"):
        EventSet(**{**fields, "weights_named": {"a": torch.ones(n, dtype=torch.int64)}})
    with pytest.raises(ValueError, match=r"weights_named\['a'\]: 1 NaN"):
        w = torch.ones(n, dtype=torch.float64)
        w[3] = math.nan
        EventSet(**{**fields, "weights_named": {"a": w}})
    with pytest.raises(ValueError, match="weights_named: expected non-empty names"):
        EventSet(**{**fields, "weights_named": {"": torch.ones(n, dtype=torch.float64)}})
    with pytest.raises(TypeError, match="variations: expected Variation objects"):
        generate_events("drell-yan", 10, settings=DY, variations=["mur2_muf2"])


def test_chunked_generation_keeps_the_factors(variations, tmp_path):
    proc = get_process("drell-yan", **DY)
    es = generate_events_chunked("drell-yan", 500, settings=DY, train_calls=20_000, seed=2,
                                 chunk_size=200, variations=variations[:3])
    assert es.metadata["n_chunks"] == 3 and list(es.weights_named) == \
        [v.name for v in variations[:3]]
    factors = event_set_weights(proc, es, variations[:3])
    for name, w in factors.items():
        torch.testing.assert_close(es.weights_named[name], w, rtol=1e-12, atol=0)


def test_event_format_from_suffix_and_mismatch():
    assert event_format("a.h5") == "hdf5" and event_format("a.HDF5") == "hdf5"
    assert event_format("a.lhe.gz") == "lhe" and event_format("x/a.root") == "root"
    assert event_format("a.dat", "lhe") == "lhe"
    with pytest.raises(ValueError, match="fmt: 'root' does not match the file name 'a.h5'"):
        event_format("a.h5", "root")
    with pytest.raises(ValueError, match="fmt: 'a.dat' has no event-file suffix"):
        event_format("a.dat")
    with pytest.raises(ValueError, match="fmt: expected one of"):
        event_format("a.h5", "csv")


def test_cli_generate_formats_and_variations(tmp_path):
    base = ["generate", "drell-yan", "--events", "150", "--set", "mll_min=60", "--set",
            "mll_max=120", "--train-calls", "20000", "--overweight", "0.01", "--seed", "4"]
    runner = CliRunner()
    # a format that contradicts the suffix: one-line usage error, before any work
    bad = runner.invoke(cli, [*base, "--format", "root", "-o", str(tmp_path / "x.h5")])
    assert bad.exit_code == 2 and "--format" in bad.output and "'hdf5'" in bad.output
    assert not (tmp_path / "x.h5").exists()
    bad = runner.invoke(cli, [*base, "-o", str(tmp_path / "x.dat")])
    assert bad.exit_code == 2 and "no event-file suffix" in bad.output
    bad = runner.invoke(cli, [*base, "--pdf-variation", "NO_SUCH_SET", "-o",
                              str(tmp_path / "y.h5")])
    assert bad.exit_code == 2 and "NO_SUCH_SET" in bad.output
    out = tmp_path / "dy.lhe"
    res = runner.invoke(cli, [*base, "--scale-variations", "--pdf-variation", "315200",
                              "-o", str(out)])
    assert res.exit_code == 0, res.output
    text = out.read_text()
    assert "8 named weights" in res.output
    assert "<initrwgt>" in text and text.count("<rwgt>") == 150
    es = read_lhe(out)
    assert list(es.weights_named) == [v.name for v in scale_variations()] + ["315200"]
    assert es.metadata["weight_variations"]["315200"]["pdf"] == 315200
    # the same run as ROOT (format named, suffix agreeing) holds the same events
    res = runner.invoke(cli, [*base, "--scale-variations", "--pdf-variation", "315200",
                              "--format", "root", "-o", str(tmp_path / "dy.root")])
    assert res.exit_code == 0, res.output
    root = read_root(tmp_path / "dy.root")
    assert root.reco is not None
    np.testing.assert_array_equal(root.weights_named["mur2_muf2"].numpy(),
                                  es.weights_named["mur2_muf2"].numpy())


def test_to_awkward_has_vector_behaviours(sample, monkeypatch):
    ak = pytest.importorskip("awkward")
    pytest.importorskip("vector")
    from forward import kinematics as kin

    arr = sample.to_awkward()
    assert len(arr) == len(sample)
    assert ak.to_numpy(arr.weight).tolist() == sample.weights.tolist()
    assert ak.fields(arr.weights_named) == list(sample.weights_named)
    assert ak.to_numpy(arr.weights_named["mur2_muf2"]).tolist() == \
        sample.weights_named["mur2_muf2"].tolist()
    assert ak.to_numpy(arr.particles.pid).tolist() == sample.pids_per_event.tolist()
    assert ak.to_numpy(arr.incoming_pids).tolist() == sample.incoming_pids.tolist()
    # vector's pT and pair mass against forward.kinematics (independent code)
    np.testing.assert_allclose(ak.to_numpy(arr.particles.pt),
                               kin.pt(sample.momenta).numpy(), rtol=1e-12)
    pair = arr.particles[:, 0] + arr.particles[:, 1]
    np.testing.assert_allclose(ak.to_numpy(pair.mass),
                               kin.mass(sample.momenta.sum(1)).numpy(), rtol=1e-9)
    monkeypatch.setitem(__import__("sys").modules, "vector", None)
    with pytest.raises(ImportError, match="pip install awkward vector"):
        sample.to_awkward()
